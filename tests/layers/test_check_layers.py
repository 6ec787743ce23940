#!/usr/bin/env python3
"""Tests of check_layers.py itself: it passes a clean tree and fails on each kind of
violation, including a cycle and an up-include added to a copy of the real tree."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_layers.py")
REPO = os.path.dirname(os.path.dirname(HERE))


def run(root):
    p = subprocess.run([sys.executable, CHECKER, root], capture_output=True, text=True)
    return p.returncode, p.stdout


def write(root, rel, *includes):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        for inc in includes:
            f.write('#include "%s"\n' % inc)
        f.write("#include <stdio.h>\n")


class Synthetic(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="layers-")
        write(self.root, "common/buf.h")
        write(self.root, "common/buf.c", "common/buf.h")
        write(self.root, "storage/store.h", "common/buf.h", "changelog.pb-c.h")
        write(self.root, "storage/store_int.h", "storage/store.h")
        write(self.root, "storage/store.c", "storage/store_int.h")
        write(self.root, "server/http/server.h", "common/buf.h")
        write(self.root, "server/api/api.h", "server/http/server.h", "storage/store.h")
        write(self.root, "server/api/a.h", "server/api/api.h")
        write(self.root, "server/api/a.c", "server/api/a.h")
        write(self.root, "server/api/b.h", "server/api/api.h")
        write(self.root, "server/api/b.c", "server/api/b.h", "server/api/a.h")
        write(self.root, "server/node/node.h", "server/api/api.h")
        write(self.root, "server/main.c", "server/node/node.h")

    def tearDown(self):
        shutil.rmtree(self.root)

    def test_clean_tree_passes(self):
        rc, out = run(self.root)
        self.assertEqual(rc, 0, out)
        self.assertIn("no include cycle", out)

    def test_cycle_between_c_files_fails(self):
        write(self.root, "server/api/a.c", "server/api/a.h", "server/api/b.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn("include cycle between modules: server/api/a -> server/api/b -> server/api/a",
                      out)

    def test_header_cycle_fails(self):
        write(self.root, "server/api/x.h", "server/api/y.h")
        write(self.root, "server/api/y.h", "server/api/z.h")
        write(self.root, "server/api/z.h", "server/api/x.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn("server/api/x -> server/api/y -> server/api/z -> server/api/x", out)

    def test_include_up_the_layers_fails(self):
        write(self.root, "storage/store.c", "storage/store_int.h", "server/api/api.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn('storage/store.c:2: includes "server/api/api.h": storage must not depend '
                      "on server/api", out)

    def test_api_including_node_fails(self):
        write(self.root, "server/api/b.c", "server/api/b.h", "server/node/node.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn("server/api must not depend on server/node", out)

    def test_missing_header_fails(self):
        write(self.root, "server/api/b.c", "server/api/nope.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn('includes "server/api/nope.h", which is not a file of the tree', out)

    def test_private_header_is_part_of_its_module(self):
        # store.c -> store_int.h -> store.h is one module, not a cycle
        rc, out = run(self.root)
        self.assertEqual(rc, 0, out)


class RealTree(unittest.TestCase):
    """A copy of the real sources: clean, then with a deliberately added cycle / up-include."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="layers-real-")
        for d in ("common", "storage", "replication", "server"):
            shutil.copytree(os.path.join(REPO, d), os.path.join(self.root, d))

    def tearDown(self):
        shutil.rmtree(self.root)

    def add_include(self, rel, inc):
        path = os.path.join(self.root, rel)
        with open(path) as f:
            text = f.read()
        marker = "#include <"
        i = text.index(marker)
        with open(path, "w") as f:
            f.write(text[:i] + '#include "%s"\n' % inc + text[i:])

    def test_real_tree_passes(self):
        rc, out = run(self.root)
        self.assertEqual(rc, 0, out)

    def test_real_tree_with_a_cycle_fails(self):
        # the value cache calling back into the KV handlers: cache -> kv -> api -> cache
        self.add_include("server/api/cache.h", "server/api/kv/kv.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn("include cycle between modules", out)
        self.assertIn("server/api/cache", out)
        self.assertIn("server/api/kv/kv", out)

    def test_real_tree_with_dispatch_including_the_node_fails(self):
        self.add_include("server/api/dispatch.c", "server/node/node.h")
        rc, out = run(self.root)
        self.assertEqual(rc, 1)
        self.assertIn('server/api/dispatch.c', out)
        self.assertIn("server/api must not depend on server/node", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
