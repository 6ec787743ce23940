#!/usr/bin/env python3
"""Helpers for bench/edge.sh: loading keys, waiting for the cluster to converge, convergence
probes through edges, and the convergence summary. 127.0.0.1 only (URLs come from the script).

Keys and values (the same rule as lib/edge_kv.lua): key(i) = PREFIX + "%010d" % i, and
value(k) = the first 100 bytes of k + ":" + "xxx...", so every answer can be checked.
Env for every command that calls the API: EDGE_TOKEN (Bearer token), EDGE_ACCOUNT.

  edgeprobe.py bulk URL NS PREFIX START COUNT
      PUT .../bulk (10,000 pairs a request) key(i) = value(key(i)) for i in START..START+COUNT-1
      -> "seconds"

  edgeprobe.py synced TIMEOUT_S PRIMARY_URL NODE_URL...
      Until every node (replica: replica.applied_seq, edge: stream.applied_seq, from GET
      /_edgekv/replication/status) has applied the primary's last_seq read before.
      -> "ms last_seq"; exit 1 on timeout (the line then names the nodes behind).

  edgeprobe.py probe [options]   (see --help)
      Convergence probes. Edge A takes a write, edges B and C are polled (each from its own
      thread, every --poll-ms, over one keep-alive connection) until they return the new value.
      Every --interval-ms one tick = one probe of each variant (order alternating), for
      --duration seconds' worth of ticks (a probe that times out delays the next ticks; probing
      stops at --duration + --overrun seconds whatever is left):
        miss   a fresh key (never read anywhere) is written through A
        inval  a key whose OLD value B and C have cached (written through the primary and
               read through B and C at the start of the round) is overwritten through A
      Per probe: the write's latency (to the ack), for B and C the time from the ack to the
      answer of the first poll that returned the new value, and the answers seen before it
      (miss: only 404 "key not found"; inval: only the old value; anything else is
      "unexpected"). After the new value is seen each poller reads once more (it must not go
      back: "regressed"), and A is read right after the ack (read-your-writes: "ryw_fail").
      Records (one line per probe) are appended to --out:
        round variant idx status ack_ms conv_b_ms conv_c_ms conv_ms unexpected regressed ryw_ok
      (status ok | timeout | write_failed; conv_ms = max of B and C, -1 when not seen).
      -> one summary line on stdout.

  edgeprobe.py report RECORDS TARGET_P99_MS POLL_MS TIMEOUT_MS
      -> the convergence tables and one "BENCH scenario=edge_convergence ..." line.
"""
import argparse
import http.client
import json
import math
import os
import re
import sys
import threading
import time

PAD = "x" * 100


def value_for(key):
    return (key + ":" + PAD)[:100].encode()


def keyname(prefix, i):
    return f"{prefix}{i:010d}"


def token():
    return os.environ["EDGE_TOKEN"]


def values_path(ns):
    return f"/client/v4/accounts/{os.environ['EDGE_ACCOUNT']}/storage/kv/namespaces/{ns}/values/"


class Conn:
    """One keep-alive HTTP/1.1 connection (http.client sets TCP_NODELAY); reconnects once."""

    def __init__(self, url, timeout=5.0):
        m = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
        if not m:
            sys.exit(f"bad url {url}")
        self.host, self.port, self.timeout, self.c = m.group(1), int(m.group(2)), timeout, None

    def req(self, method, path, body=None, headers=None):
        err = ""
        for _ in (1, 2):
            try:
                if self.c is None:
                    self.c = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.c.request(method, path, body=body, headers=headers or {})
                r = self.c.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.close()
                return r.status, data
            except (OSError, http.client.HTTPException) as e:
                err = str(e)
                self.close()
        return 0, err.encode()

    def close(self):
        if self.c is not None:
            self.c.close()
        self.c = None


def auth():
    return {"Authorization": "Bearer " + token()}


# --- bulk ------------------------------------------------------------------------------------

def bulk_put(url, ns, pairs):
    """pairs: list of (key, value bytes); 10,000 a request."""
    c = Conn(url, timeout=60)
    path = f"/client/v4/accounts/{os.environ['EDGE_ACCOUNT']}/storage/kv/namespaces/{ns}/bulk"
    for i in range(0, len(pairs), 10000):
        body = json.dumps([{"key": k, "value": v.decode()} for k, v in pairs[i:i + 10000]]).encode()
        st, data = c.req("PUT", path, body, {**auth(), "Content-Type": "application/json"})
        ok = False
        if st == 200:
            try:
                ok = json.loads(data).get("success") is True
            except ValueError:
                pass
        if not ok:
            sys.exit(f"bulk write through {url}: HTTP {st} {data[:300]!r}")
    c.close()


def cmd_bulk(url, ns, prefix, start, count):
    t0 = time.monotonic()
    keys = [keyname(prefix, i) for i in range(int(start), int(start) + int(count))]
    bulk_put(url, ns, [(k, value_for(k)) for k in keys])
    print(f"{time.monotonic() - t0:.2f}")


# --- synced ----------------------------------------------------------------------------------

def status(conn):
    st, data = conn.req("GET", "/_edgekv/replication/status")
    if st != 200:
        return None
    try:
        return json.loads(data)["result"]
    except (ValueError, KeyError):
        return None


def applied_seq(r):
    if r is None:
        return None
    for k in ("replica", "stream"):
        if isinstance(r.get(k), dict) and "applied_seq" in r[k]:
            return int(r[k]["applied_seq"])
    return None


def wait_synced(primary, nodes, timeout):
    """ms until every node applied the primary's last_seq (read once, first); None on timeout."""
    t0 = time.monotonic()
    pc = Conn(primary, timeout=2)
    p = status(pc)
    pc.close()
    if p is None or "last_seq" not in p:
        return None, 0, nodes
    target = int(p["last_seq"])
    conns = {u: Conn(u, timeout=2) for u in nodes}
    behind = list(nodes)
    while behind:
        behind = [u for u in behind if (applied_seq(status(conns[u])) or -1) < target]
        if not behind:
            break
        if time.monotonic() - t0 > timeout:
            return None, target, behind
        time.sleep(0.005)
    for c in conns.values():
        c.close()
    return (time.monotonic() - t0) * 1000, target, []


def cmd_synced(timeout, primary, *nodes):
    ms, seq, behind = wait_synced(primary, list(nodes), float(timeout))
    if ms is None:
        print(f"-1 {seq} behind: {' '.join(behind)}")
        sys.exit(1)
    print(f"{ms:.1f} {seq}")


# --- probe -----------------------------------------------------------------------------------

class Poller(threading.Thread):
    """Polls one edge for a probe's key until the new value shows (or the deadline)."""

    def __init__(self, name, url, poll_s):
        super().__init__(daemon=True)
        self.name_, self.conn, self.poll_s = name, Conn(url, timeout=2), poll_s
        self.cv = threading.Condition()
        self.job, self.result, self.quit = None, None, False

    def start_job(self, job):
        with self.cv:
            self.job, self.result = job, None
            self.cv.notify_all()

    def wait_result(self, timeout):
        with self.cv:
            self.cv.wait_for(lambda: self.result is not None or self.quit, timeout)
            return self.result

    def stop(self):
        with self.cv:
            self.quit = True
            self.cv.notify_all()

    def run(self):
        while True:
            with self.cv:
                self.cv.wait_for(lambda: self.job is not None or self.quit)
                if self.quit:
                    return
                job = self.job
            res = self.poll(job)
            with self.cv:
                self.job, self.result = None, res
                self.cv.notify_all()

    def poll(self, job):
        path, want, before_ok, t_ack, deadline = job
        unexpected, polls, seen, regressed, examples = 0, 0, None, 0, []
        st = body = None
        nxt = time.monotonic()
        while True:
            st, body = self.conn.req("GET", path, headers=auth())
            t = time.monotonic()
            polls += 1
            if st == 200 and body == want:
                seen = (t - t_ack) * 1000
                break
            if not before_ok(st, body):
                unexpected += 1
                if len(examples) < 2:
                    examples.append(("stale", f"poll {polls}: HTTP {st} {body[:120]!r}"))
            if t >= deadline:
                break
            nxt += self.poll_s
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            else:
                nxt = now
        if seen is not None:
            st, body = self.conn.req("GET", path, headers=auth())
            if not (st == 200 and body == want):
                regressed += 1
                examples.append(("back", f"new value seen at ack +{seen:.1f} ms, the next read: "
                                         f"HTTP {st} {body[:120]!r}"))
        else:
            examples.append(("never", f"{polls} polls, the last answer: HTTP {st} {body[:120]!r}"))
        return {"ms": seen, "polls": polls, "unexpected": unexpected, "regressed": regressed,
                "examples": examples}


def is_not_found(st, body):
    return st == 404 and b'"code":10009' in body.replace(b" ", b"")


def cmd_probe(a):
    poll_s = a.poll_ms / 1000.0
    ticks = max(1, int(a.duration * 1000 / a.interval_ms))
    vpath = values_path(a.ns)
    pre = f"cv-r{a.round}-"
    # inval: the old values, written through the primary, read (= cached) through B and C
    old_keys = [keyname(pre + "i-", k) for k in range(ticks)]
    old = {k: value_for(k + ":old") for k in old_keys}
    bulk_put(a.primary, a.ns, list(old.items()))
    ms, _, behind = wait_synced(a.primary, [a.b, a.c], 30)
    if ms is None:
        sys.exit(f"probe: edges {behind} did not apply the old values within 30 s")
    for url in (a.b, a.c):
        conn = Conn(url)
        for k in old_keys:
            st, body = conn.req("GET", vpath + k, headers=auth())
            if st != 200 or body != old[k]:
                sys.exit(f"probe: {url} GET {k} (old value, after sync): HTTP {st} {body[:200]!r}")
        conn.close()

    ca = Conn(a.a)
    pb = Poller("B", a.b, poll_s)
    pc = Poller("C", a.c, poll_s)
    pb.start()
    pc.start()
    out = open(a.out, "a", encoding="utf-8")
    counts = {"ok": 0, "timeout": 0, "write_failed": 0, "unexpected": 0, "regressed": 0, "ryw_fail": 0}
    examples = {}  # kind -> the first few

    def example(kind, text):
        lst = examples.setdefault(kind, [])
        if len(lst) < 3:
            lst.append(text)
    t_start = time.monotonic()
    nxt = t_start
    done = 0
    for k in range(ticks):
        if time.monotonic() - t_start >= a.duration + a.overrun:
            break  # probes that time out delay the later ticks: the round stays bounded
        done += 1
        order = ("miss", "inval") if k % 2 == 0 else ("inval", "miss")
        for variant in order:
            if variant == "miss":
                key = keyname(pre + "m-", k)
                before_ok = is_not_found
            else:
                key = keyname(pre + "i-", k)
                oldv = old[key]
                before_ok = (lambda st, body, oldv=oldv: st == 200 and body == oldv)
            new = value_for(key + ":new")
            t0 = time.monotonic()
            st, body = ca.req("PUT", vpath + key, new,
                              {**auth(), "Content-Type": "application/octet-stream"})
            t_ack = time.monotonic()
            ack_ms = (t_ack - t0) * 1000
            if st != 200 or b'"success":true' not in body.replace(b" ", b""):
                counts["write_failed"] += 1
                example("write", f"{variant} {key}: PUT through A: HTTP {st} {body[:200]!r}")
                out.write(f"{a.round} {variant} {k} write_failed {ack_ms:.3f} -1 -1 -1 0 0 0\n")
                continue
            job = (vpath + key, new, before_ok, t_ack, t_ack + a.timeout_ms / 1000.0)
            pb.start_job(job)
            pc.start_job(job)
            # read-your-writes at the edge that took the write
            st, body = ca.req("GET", vpath + key, headers=auth())
            ryw = st == 200 and body == new
            if not ryw:
                counts["ryw_fail"] += 1
                example("ryw", f"{variant} {key}: read through A right after the ack: HTTP {st} {body[:200]!r}")
            wait = a.timeout_ms / 1000.0 + 5
            rb, rc = pb.wait_result(wait), pc.wait_result(wait)
            if rb is None or rc is None:
                sys.exit("probe: a poller did not report (internal error)")
            unexpected = rb["unexpected"] + rc["unexpected"]
            regressed = rb["regressed"] + rc["regressed"]
            counts["unexpected"] += unexpected
            counts["regressed"] += regressed
            for name, r in (("B", rb), ("C", rc)):
                for kind, e in r["examples"]:
                    example(kind, f"{variant} {key} through {name}: {e}")
            if rb["ms"] is None or rc["ms"] is None:
                status_ = "timeout"
                conv = -1.0
            else:
                status_ = "ok"
                conv = max(rb["ms"], rc["ms"])
            counts[status_] += 1
            fb = -1.0 if rb["ms"] is None else rb["ms"]
            fc = -1.0 if rc["ms"] is None else rc["ms"]
            out.write(f"{a.round} {variant} {k} {status_} {ack_ms:.3f} {fb:.3f} {fc:.3f} {conv:.3f} "
                      f"{unexpected} {regressed} {1 if ryw else 0}\n")
        nxt += a.interval_ms / 1000.0
        now = time.monotonic()
        if nxt > now:
            time.sleep(nxt - now)
        else:
            nxt = now
    elapsed = time.monotonic() - t_start
    pb.stop()
    pc.stop()
    out.close()
    print(f"ticks {done} in {elapsed:.1f}s, probes ok {counts['ok']} timeout {counts['timeout']} "
          f"write_failed {counts['write_failed']} unexpected {counts['unexpected']} "
          f"regressed {counts['regressed']} ryw_fail {counts['ryw_fail']}")
    for kind, lst in examples.items():
        for e in lst:
            print(f"  example ({kind}): {e}")


# --- report ----------------------------------------------------------------------------------

def pct(sorted_vals, q):
    """nearest rank; inf for probes that never converged (sorted last)."""
    if not sorted_vals:
        return math.nan
    i = max(0, math.ceil(q * len(sorted_vals)) - 1)
    return sorted_vals[i]


def fmt(x):
    if math.isnan(x):
        return "-"
    return "never" if math.isinf(x) else f"{x:.1f}"


def cmd_report(records, target, poll_ms, timeout_ms):
    target = float(target)
    rows = []
    with open(records, encoding="utf-8") as f:
        for line in f:
            p = line.split()
            if len(p) < 11:
                continue
            rows.append({"round": int(p[0]), "variant": p[1], "status": p[3], "ack": float(p[4]),
                         "b": float(p[5]), "c": float(p[6]), "conv": float(p[7]),
                         "unexpected": int(p[8]), "regressed": int(p[9]), "ryw": int(p[10])})
    rounds = sorted({r["round"] for r in rows})
    variants = [v for v in ("miss", "inval") if any(r["variant"] == v for r in rows)]
    title = {"miss": "miss (a fresh key)", "inval": "inval (B and C had the old value cached)"}

    def summ(rs):
        w = [r for r in rs if r["status"] != "write_failed"]
        conv = sorted(math.inf if r["status"] != "ok" else r["conv"] for r in w)
        okc = sorted(r["conv"] for r in w if r["status"] == "ok")
        per = {e: sorted(math.inf if r[e] < 0 else r[e] for r in w) for e in ("b", "c")}
        ack = sorted(r["ack"] for r in rs)
        return {
            "n": len(rs), "ok": len(okc),
            "never": sum(1 for r in rs if r["status"] == "timeout"),
            "wfail": len(rs) - len(w),
            "p50": pct(conv, 0.5), "p99": pct(conv, 0.99), "max": conv[-1] if conv else math.nan,
            "ok99": pct(okc, 0.99), "okmax": okc[-1] if okc else math.nan,
            "b50": pct(per["b"], 0.5), "c50": pct(per["c"], 0.5),
            "b99": pct(per["b"], 0.99), "c99": pct(per["c"], 0.99),
            "ack50": pct(ack, 0.5), "ack99": pct(ack, 0.99),
            "unexpected": sum(r["unexpected"] for r in w), "regressed": sum(r["regressed"] for r in w),
            "ryw_fail": sum(1 for r in w if not r["ryw"]),
        }

    print(f"\n== convergence: write acked through edge A -> new value readable through edges B and C"
          f" (poll every {poll_ms:g} ms) ==")
    hdr = (f'{"variant":<7} {"round":>5} {"probes":>6} {"p50 ms":>7} {"p99 ms":>7} {"max ms":>7} '
           f'{"B p50/p99":>11} {"C p50/p99":>11} {"write p50/p99":>13} {"never":>5} {"stale":>5} '
           f'{"back":>4} {"ryw":>4}')
    print(hdr)
    print("-" * len(hdr))
    kv = ["scenario=edge_convergence", f"poll_ms={poll_ms:g}", f"target_p99_ms={target:g}"]
    overall = {}
    for v in variants:
        for rd in rounds + ["all"]:
            rs = [r for r in rows if r["variant"] == v and (rd == "all" or r["round"] == rd)]
            if not rs:
                continue
            s = summ(rs)
            print(f'{v if rd in ("all", rounds[0]) else "":<7} {rd:>5} {s["n"]:>6} {fmt(s["p50"]):>7} '
                  f'{fmt(s["p99"]):>7} {fmt(s["max"]):>7} '
                  f'{fmt(s["b50"]) + "/" + fmt(s["b99"]):>11} {fmt(s["c50"]) + "/" + fmt(s["c99"]):>11} '
                  f'{fmt(s["ack50"]) + "/" + fmt(s["ack99"]):>13} {s["never"]:>5} {s["unexpected"]:>5} '
                  f'{s["regressed"]:>4} {s["ryw_fail"]:>4}')
            if rd == "all":
                overall[v] = s
        print()
    print("  p50/p99/max: from the write's ack (through A) to the answer of the first poll that returned")
    print("  the new value through BOTH B and C (the slower one; B, C: each alone); each figure includes")
    print(f"  up to one poll interval ({poll_ms:g} ms) plus one poll round trip. write: the PUT's own latency.")
    print(f"  never: B or C did not return the new value within {timeout_ms:g} ms (counted as infinite).")
    print("  stale: answers before the new value that were neither the old value (inval) nor 404 (miss);")
    print("  back: the read right after the new value was seen did not return it; ryw: the read through")
    print("  A right after its own write's ack did not return the new value (read-your-writes).")
    ok = True
    for v in variants:
        s = overall[v]
        met = s["never"] == 0 and s["p99"] <= target
        p99 = "never (infinite)" if math.isinf(s["p99"]) else f"{s['p99']:.1f} ms"
        line = (f"  {title[v]}: p99 {p99} over {s['n']} probes, target <= {target:g} ms "
                f"{'met' if met else 'NOT met'}")
        if s["never"]:
            line += (f" ({s['never']} never converged within {timeout_ms:g} ms; the {s['ok']} that did: "
                     f"p99 {fmt(s['ok99'])} ms, max {fmt(s['okmax'])} ms)")
        print(line)
        kv += [f"{v}_probes={s['n']}", f"{v}_p50_ms={s['p50']:.2f}", f"{v}_p99_ms={s['p99']:.2f}",
               f"{v}_max_ms={s['max']:.2f}", f"{v}_never={s['never']}",
               f"{v}_converged_p99_ms={s['ok99']:.2f}", f"{v}_ryw_fail={s['ryw_fail']}",
               f"{v}_target_met={'yes' if met else 'no'}"]
        wrong = s["unexpected"] + s["regressed"] + s["ryw_fail"] + s["wfail"] + s["never"]
        if wrong:
            ok = False
            print(f"  {v}: WRONG ANSWERS: {s['never']} probes where B or C kept returning the old value "
                  f"(or 404) for {timeout_ms:g} ms, {s['unexpected']} stale answers, {s['regressed']} went "
                  f"back, {s['ryw_fail']} read-your-writes failures at A, {s['wfail']} failed writes")
    kv.append(f"correct={'yes' if ok else 'no'}")
    print()
    print("BENCH " + " ".join(kv))
    if not ok:
        sys.exit(3)


def main():
    av = sys.argv
    if len(av) == 7 and av[1] == "bulk":
        cmd_bulk(*av[2:])
    elif len(av) >= 5 and av[1] == "synced":
        cmd_synced(*av[2:])
    elif len(av) == 6 and av[1] == "report":
        cmd_report(av[2], av[3], float(av[4]), float(av[5]))
    elif len(av) >= 2 and av[1] == "probe":
        ap = argparse.ArgumentParser(prog="edgeprobe.py probe")
        ap.add_argument("--a", required=True, help="URL of edge A (takes the writes)")
        ap.add_argument("--b", required=True, help="URL of edge B (polled)")
        ap.add_argument("--c", required=True, help="URL of edge C (polled)")
        ap.add_argument("--primary", required=True, help="URL of the primary (old values, seqs)")
        ap.add_argument("--ns", required=True)
        ap.add_argument("--round", type=int, required=True)
        ap.add_argument("--duration", type=float, required=True, help="seconds of probing")
        ap.add_argument("--interval-ms", type=float, default=20)
        ap.add_argument("--poll-ms", type=float, default=1)
        ap.add_argument("--timeout-ms", type=float, default=1000)
        ap.add_argument("--overrun", type=float, default=10,
                        help="seconds the ticks may run late (after probes that timed out)")
        ap.add_argument("--out", required=True)
        cmd_probe(ap.parse_args(av[2:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
