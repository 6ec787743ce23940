#!/usr/bin/env python3
"""check_layers.py - the include graph of edgekv's C sources stays a layered DAG.

Reads every `#include "..."` line of the .c/.h files under the source folders and fails
(exit 1, one line per finding) on:
  - an include that points up the layer order (a lower layer including a higher one);
  - an include of a project header that does not exist;
  - any cycle between modules.

Layers, lowest first (a file may include its own layer and any layer below):
    common < proto (generated *.pb-c.h) < storage < replication
           < server/http < server/api < server/node < server/cli, server/loadgen < server/main.c

A module is a .c file and its .h (same path without extension); a private header named
X_int.h belongs to module X (storage/store_int.h is part of storage/store). Cycles are
looked for between modules, so "a.c includes b.h while b.c includes a.h" is a cycle even
though no header includes itself.

Usage: check_layers.py [ROOT]   (ROOT defaults to the repository this file lives in)
"""
import os
import re
import sys

LAYERS = [
    ("common/", 0),
    ("storage/", 2),
    ("replication/", 3),
    ("server/http/", 4),
    ("server/api/", 5),
    ("server/node/", 6),
    ("server/cli/", 7),
    ("server/loadgen/", 7),
    ("server/main.c", 8),
]
PROTO_LAYER = 1
LAYER_NAMES = {0: "common", 1: "proto", 2: "storage", 3: "replication", 4: "server/http",
               5: "server/api", 6: "server/node", 7: "server/cli", 8: "main"}
SOURCE_DIRS = ["common", "storage", "replication", "server"]
INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    if path.endswith(".pb-c.h"):
        return PROTO_LAYER
    for prefix, layer in LAYERS:
        if path == prefix or path.startswith(prefix):
            return layer
    return None


def module_of(path):
    base = os.path.splitext(path)[0]
    if base.endswith("_int"):
        base = base[: -len("_int")]
    return base


def scan(root):
    files = {}
    for d in SOURCE_DIRS:
        top = os.path.join(root, d)
        for dirpath, _, names in os.walk(top):
            for n in sorted(names):
                if n.endswith((".c", ".h")):
                    full = os.path.join(dirpath, n)
                    rel = os.path.relpath(full, root).replace(os.sep, "/")
                    with open(full, encoding="utf-8", errors="replace") as f:
                        incs = []
                        for lineno, line in enumerate(f, 1):
                            m = INCLUDE_RE.match(line)
                            if m:
                                incs.append((lineno, m.group(1)))
                    files[rel] = incs
    return files


def find_cycles(graph):
    """Every elementary cycle is not needed: report one cycle per strongly connected
    component with more than one module (or a self-loop), as a readable path."""
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    cycles = []
    for comp in sccs:
        members = set(comp)
        start = comp[0]
        # walk inside the component back to start (BFS for the shortest cycle through start)
        prev = {start: None}
        queue = [start]
        found = None
        while queue and not found:
            v = queue.pop(0)
            for w in sorted(graph.get(v, ())):
                if w == start:
                    found = v
                    break
                if w in members and w not in prev:
                    prev[w] = v
                    queue.append(w)
        path = [start]
        v = found
        while v is not None and v != start:
            path.append(v)
            v = prev[v]
        path = [start] + list(reversed(path[1:])) + [start]
        cycles.append(path)
    return cycles


def check(root):
    files = scan(root)
    problems = []
    graph = {}
    for rel, incs in sorted(files.items()):
        src_layer = layer_of(rel)
        if src_layer is None:
            continue
        mod = module_of(rel)
        graph.setdefault(mod, set())
        for lineno, inc in incs:
            if inc.endswith(".pb-c.h"):
                dst_layer = PROTO_LAYER
            else:
                if inc not in files:
                    problems.append("%s:%d: includes \"%s\", which is not a file of the tree"
                                    % (rel, lineno, inc))
                    continue
                dst_layer = layer_of(inc)
                dmod = module_of(inc)
                if dmod != mod:
                    graph[mod].add(dmod)
            if dst_layer is not None and dst_layer > src_layer:
                problems.append(
                    "%s:%d: includes \"%s\": %s must not depend on %s (layers run "
                    "common <- proto <- storage <- replication <- server/http <- server/api "
                    "<- server/node <- server/cli <- main)"
                    % (rel, lineno, inc, LAYER_NAMES[src_layer], LAYER_NAMES[dst_layer]))
    for cyc in find_cycles(graph):
        problems.append("include cycle between modules: " + " -> ".join(cyc))
    return problems, len(files)


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    problems, nfiles = check(root)
    for p in problems:
        print("check_layers: " + p)
    if problems:
        print("check_layers: FAILED (%d problems in %d files)" % (len(problems), nfiles))
        return 1
    print("check_layers: %d files, no include cycle, no include up the layer order" % nfiles)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
