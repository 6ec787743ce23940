#!/usr/bin/env python3
"""Tables of bench/scale.sh from its facts and wrk records.

  scale_report.py size FACTS RECORDS N      the data part of one size
  scale_report.py restart FACTS RECORDS     the restart part
  scale_report.py idle FACTS RECORDS        the idle-connections part
  scale_report.py burst FACTS RECORDS       the connect-burst part
  scale_report.py summary FACTS RECORDS PHASES SIZE...
      the cross-size table, phase durations, server log counts and the acceptance checks
      (PASS / FAIL, informational) as the last lines.

FACTS: "tag<TAB>key<TAB>value" lines. RECORDS (one wrk run a line, space separated):
  tag scenario round rps p50_ms p99_ms requests non2xx socket_errors cpu_s cache_hits cache_misses
"""
import math
import re
import statistics
import sys

MB = 1024.0  # facts hold kB (RSS, du) or bytes (WAL, SST); see the helpers below

# acceptance targets (informational)
RAND_HOT_MIN = 0.6
RAND_P99_MAX_MS = 3.0
IDLE_RSS_MAX_MB = 100.0
IDLE_BACK_MB = 20.0
BURST_MAX_MS = 1000.0

SCEN = {
    "hot": "hot GET",
    "rand": "random GET",
    "put": "random PUT",
    "hot2": "hot GET after PUTs",
    "rand2": "random GET after PUTs",
    "list": "list 1000 keys",
    "with": "hot GET, idle conns open",
    "without": "hot GET, no idle conns",
}


def load_facts(path):
    f = {}
    with open(path, encoding="utf-8") as fh:
        for ln in fh:
            p = ln.rstrip("\n").split("\t", 2)
            if len(p) == 3:
                f.setdefault(p[0], {})
                if p[1] in f[p[0]] and p[0] in ("server_log", "broken"):
                    f[p[0]][p[1] + f"#{len(f[p[0]])}"] = p[2]
                else:
                    f[p[0]][p[1]] = p[2]
    return f


def load_records(path):
    rows = []
    with open(path, encoding="utf-8") as fh:
        for ln in fh:
            p = ln.split()
            if len(p) < 12:
                continue
            rows.append({"tag": p[0], "scen": p[1], "round": int(p[2]), "rps": float(p[3]),
                         "p50": float(p[4]), "p99": float(p[5]), "req": int(p[6]),
                         "non2xx": int(p[7]), "err": int(p[8]), "cpu": float(p[9]),
                         "hits": int(p[10]), "misses": int(p[11])})
    return rows


def num(x, default=float("nan")):
    try:
        return float(x)
    except (TypeError, ValueError):
        return default


def kv(line):
    """'WORD a=1 b=x ...' -> {'a': '1', 'b': 'x'}"""
    return dict(m.groups() for m in re.finditer(r"(\w+)=(\S*)", line or ""))


def fmt(x, spec=".0f", na="-"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return na
    return format(x, spec)


def scen_stats(rows, tag, scen):
    rs = [r for r in rows if r["tag"] == tag and r["scen"] == scen]
    if not rs:
        return None
    req = sum(r["req"] for r in rs)
    hm = sum(r["hits"] + r["misses"] for r in rs)
    return {
        "runs": len(rs),
        "rps": statistics.median(r["rps"] for r in rs),
        "min": min(r["rps"] for r in rs), "max": max(r["rps"] for r in rs),
        "p50": statistics.median(r["p50"] for r in rs),
        "p99": statistics.median(r["p99"] for r in rs),
        "p99max": max(r["p99"] for r in rs),
        "cpu_us": (sum(r["cpu"] for r in rs) * 1e6 / req) if req else float("nan"),
        "hit": (100.0 * sum(r["hits"] for r in rs) / hm) if hm else float("nan"),
        "bad": sum(r["non2xx"] + r["err"] for r in rs),
        "bad_frac": (sum(r["non2xx"] + r["err"] for r in rs) / req) if req else 1.0,
        "by_round": {r["round"]: r["rps"] for r in rs},
        "p99s": [r["p99"] for r in sorted(rs, key=lambda r: r["round"])],
    }


def ratio(rows, tag, a, b):
    """-> (ratio of medians, (min, max) of the per-round paired ratios) or (None, None)"""
    sa, sb = scen_stats(rows, tag, a), scen_stats(rows, tag, b)
    if not sa or not sb or sb["rps"] <= 0:
        return None, None
    pr = sorted(sa["by_round"][k] / sb["by_round"][k] for k in sa["by_round"]
                if k in sb["by_round"] and sb["by_round"][k] > 0)
    return sa["rps"] / sb["rps"], ((pr[0], pr[-1]) if pr else None)


def scen_table(rows, tag, scens):
    hdr = (f'{"scenario":<25} {"runs":>4} {"req/s median":>12} {"(min..max)":>17} {"p50 ms":>7} '
           f'{"p99 ms":>7} {"CPU us/req":>10} {"cache hit":>9} {"errors":>7}')
    print(hdr)
    print("-" * len(hdr))
    warn = False
    for sc in scens:
        s = scen_stats(rows, tag, sc)
        if s is None:
            continue
        rng = f'{s["min"]:.0f}..{s["max"]:.0f}'
        hit = fmt(s["hit"], ".1f") + "%" if not math.isnan(s["hit"]) else "-"
        print(f'{SCEN.get(sc, sc):<25} {s["runs"]:>4} {s["rps"]:>12.0f} {rng:>17} {s["p50"]:>7.2f} '
              f'{s["p99"]:>7.2f} {s["cpu_us"]:>10.1f} {hit:>9} {s["bad"]:>7}')
        warn = warn or s["bad_frac"] > 0.001
    if warn:
        print("  WARNING: > 0.1% of the requests of a scenario failed (non-2xx or socket errors)")


def ratio_line(rows, tag, a, b, label):
    r, pr = ratio(rows, tag, a, b)
    if r is None:
        return f"  {label}: n/a"
    extra = f" (per-round {pr[0]:.2f}..{pr[1]:.2f})" if pr else ""
    return f"  {label}: {r:.2f}x{extra}"


# --- size ------------------------------------------------------------------------------------

STEPS = [("start", "fresh server"), ("load", "after the load"), ("get", "after the GET rounds"),
         ("put", "after the PUTs"), ("get2", "after GET rounds 2"), ("list", "after the list rounds"),
         ("stopped", "after the stop")]


def cmd_size(facts, rows, n):
    tag = f"data-{n}"
    f = facts.get(tag, {})
    n = int(n)
    print(f"\n== data: {n} keys (k00000000..k{n - 1:08d}, 100-byte values) ==")
    ls, lr = num(f.get("load_s")), num(f.get("load_rate"))
    print(f"load: {n} keys in {fmt(ls, '.1f')} s = {fmt(lr)} keys/s ({f.get('load_reqs', '?')} bulk "
          f"requests of <= 10000 pairs, {f.get('load_conns', '?')} in flight)")
    if "settle_s" in f:
        what = "no compaction running" if f.get("settle_done") == "1" else "compactions still running"
        print(f"after the load: {what} after {f['settle_s']} s (the GET rounds start then)")
    scen_table(rows, tag, ["hot", "rand", "put", "hot2", "rand2", "list"])
    print(ratio_line(rows, tag, "rand", "hot", "random/hot GET before the PUTs"))
    print(ratio_line(rows, tag, "rand2", "hot2", "random/hot GET after the PUTs "))
    print()
    hdr = (f'{"step":<22} {"RSS MB":>8} {"du MB":>8} {"files MB":>8} {"WAL MB":>8} {"SST MB":>8} '
           f'{"du B/key":>8} {"files B/key":>11}')
    print(hdr)
    print("-" * len(hdr))
    for st, label in STEPS:
        if f"du_{st}" not in f:
            continue
        rss = num(f.get(f"rss_{st}"), -1)
        du = num(f.get(f"du_{st}"))
        fb = num(f.get(f"files_{st}"))
        print(f'{label:<22} {(fmt(rss / MB, ".1f") if rss >= 0 else "-"):>8} {fmt(du / MB, ".1f"):>8} '
              f'{fmt(fb / 1048576, ".1f"):>8} '
              f'{fmt(num(f.get(f"wal_{st}")) / 1048576, ".1f"):>8} {fmt(num(f.get(f"sst_{st}")) / 1048576, ".1f"):>8} '
              f'{fmt(du * 1024 / n, ".0f"):>8} {fmt(fb / n, ".0f"):>11}')
    print(f"(du = allocated blocks of the data dir, incl. RocksDB's preallocation of the current WAL "
          f"file; files = the sum of its file sizes; B/key = / {n} keys; WAL = DATA_DIR/db/*.log, "
          f"what is not flushed to SST files yet)")


# --- restart ---------------------------------------------------------------------------------

def cmd_restart(facts, rows):
    f = facts.get("restart", {})
    keys = f.get("keys", "?")
    print(f"\n== restart: a standalone server with {keys} keys (its own data set) ==")
    hdr = (f'{"case":<28} {"RSS before MB":>13} {"WAL before MB":>13} {"WAL at start MB":>15} {"stop ms":>8} '
           f'{"start->healthz ms":>17} {"marker":>7}')
    print(hdr)
    print("-" * len(hdr))
    for case, label in (("clean", "(a) clean SIGTERM"), ("afterput", "(b) SIGTERM after PUTs"),
                        ("sigkill", "(c) SIGKILL under writes")):
        if f"restart_ms_{case}" not in f:
            continue
        stop = f.get(f"stop_ms_{case}", "kill")
        print(f'{label:<28} {fmt(num(f.get(f"rss_before_{case}")) / MB, ".1f"):>13} '
              f'{fmt(num(f.get(f"wal_before_{case}")) / 1048576, ".1f"):>13} '
              f'{fmt(num(f.get(f"wal_after_stop_{case}")) / 1048576, ".1f"):>15} {stop:>8} '
              f'{f.get(f"restart_ms_{case}"):>17} {f.get(f"marker_{case}", "-"):>7}')
    s = scen_stats(rows, "restart", "put")
    if s:
        print(f'(b) PUT load before the stop: {s["rps"]:.0f} req/s, p99 {s["p99"]:.2f} ms, errors {s["bad"]}')
    w, v = kv(f.get("writer")), kv(f.get("verify"))
    if w:
        print(f"(c) writer: {f.get('writer', '').replace('WRITER ', '')}")
    if v:
        lost, wrong = int(num(v.get("lost"), -1)), int(num(v.get("wrong"), -1))
        line = f"(c) read back after the restart: acked {v.get('acked')}, lost {lost}, wrong {wrong}"
        if lost != 0 or wrong != 0:
            print("!" * 80)
            print(line + "   <<<<<<<<<< ACKNOWLEDGED WRITES LOST OR WRONG >>>>>>>>>>")
            print("!" * 80)
        else:
            print(line)
    print("(WAL = the *.log files in DATA_DIR/db; 'at start' = what the restart found; stop ms = "
          "SIGTERM to exit; start->healthz = process start to the first /healthz 200, polled every 10 ms)")


# --- idle ------------------------------------------------------------------------------------

def idle_figures(facts):
    f = facts.get("idle", {})
    rd, dn = kv(f.get("ready")), kv(f.get("done"))
    if not rd:
        return None
    samples = {}
    for it in (dn.get("samples") or "").split(","):
        if ":" in it:
            t, v = it.split(":")
            samples[int(t)] = int(v)
    n = int(num(rd.get("n"), 0))
    start, opened = num(rd.get("rss_start_kb")), num(rd.get("rss_open_kb"))

    def at(t):
        if not samples:
            return float("nan")
        k = t if t in samples else max(x for x in samples if x <= t) if any(x <= t for x in samples) else min(samples)
        return float(samples[k])

    return {"n": n, "rd": rd, "dn": dn, "f": f, "start": start, "open": opened,
            "per_conn": (opened - start) * 1024 / n if n else float("nan"),
            "samples": samples, "at": at, "back_s": int(num(dn.get("back_s"), -1)),
            "last_t": max(samples) if samples else 0}


def cmd_idle(facts, rows):
    x = idle_figures(facts)
    print(f"\n== idle: {x['n'] if x else '?'} keep-alive connections, one GET /healthz each, then held open ==")
    if not x:
        print("no result")
        return
    rd, dn, f = x["rd"], x["dn"], x["f"]
    print(f"opened: {rd.get('connected')} connected ({rd.get('connect_fail')} failed), "
          f"{rd.get('ok200')} answered 200 in {rd.get('open_s')} s; the server counted "
          f"{f.get('server_conns', '?')} open connections (after the rounds: "
          f"{f.get('server_conns_after_rounds', '?')}, after closing: {f.get('server_conns_closed', '?')}); "
          f"closed by the server while held: {dn.get('closed_by_server')} (--max-connections "
          f"{f.get('max_connections')})")
    at = x["at"]
    cols = [("fresh", num(f.get("rss_fresh"))), ("start", x["start"]), ("with conns", x["open"]),
            ("before close", num(dn.get("rss_before_close_kb")))]
    for t in (1, 10, 30, 60):
        if t <= x["last_t"]:
            cols.append((f"+{t} s", at(t)))
    if x["last_t"] not in (1, 10, 30, 60) and x["last_t"]:
        cols.append((f"+{x['last_t']} s", at(x["last_t"])))
    print("server RSS MB:  " + "  ".join(f"{k} {fmt(v / MB, '.1f')}" for k, v in cols))
    back = x["back_s"]
    print(f"per idle connection: {fmt(x['per_conn'], '.0f')} bytes ((with conns - start) / {x['n']}); "
          f"back to <= start + {IDLE_BACK_MB:.0f} MB: "
          + (f"after {back} s" if back >= 0 else f"not within {x['last_t']} s"))
    print("(start = after the warm-up and the first rounds without idle connections, just before "
          "opening them; fresh = right after start-up)")
    print()
    scen_table(rows, "idle", ["without", "with"])
    r, _ = ratio(rows, "idle", "with", "without")
    sw, so = scen_stats(rows, "idle", "with"), scen_stats(rows, "idle", "without")
    pr = []
    if sw and so:
        nw = sw["runs"]
        for k, v in sw["by_round"].items():
            around = [so["by_round"][j] for j in (k, k + nw) if j in so["by_round"]]
            if around:
                pr.append(v / statistics.fmean(around))
    pr.sort()
    print(f"  with/without idle connections: {fmt(r, '.2f')}x"
          + (f" (per round {pr[0]:.2f}..{pr[-1]:.2f}: run k with the idle connections against the mean of "
             f"run k before opening them and run k after closing them)" if pr else ""))
    print(f"(without: {so['runs'] if so else 0} runs, half before opening the idle connections and half "
          "after closing them and the RSS sampling)")


# --- burst -----------------------------------------------------------------------------------

def burst_runs(facts):
    f = facts.get("burst", {})
    runs = []
    i = 1
    while f"run_{i}" in f:
        runs.append(kv(f[f"run_{i}"]))
        i += 1
    return f, runs


def cmd_burst(facts, rows):
    f, runs = burst_runs(facts)
    n = runs[0].get("n", "?") if runs else "?"
    print(f"\n== burst: {n} non-blocking connects at once, then GET /healthz on each "
          f"(listen backlog {f.get('listen_backlog') or '?'}) ==")
    hdr = (f'{"run":<7} {"established":>11} {"all in ms":>9} {"issue ms":>8} {"p50 ms":>7} {"p99 ms":>8} '
           f'{"max ms":>8} {">=1s":>5} {"200s":>6} {"fails":>12} {"RSS MB":>7}')
    print(hdr)
    print("-" * len(hdr))
    for i, r in enumerate(runs, 1):
        print(f'{i:<7} {r.get("established"):>11} {r.get("total_ms"):>9} {r.get("issue_ms"):>8} '
              f'{r.get("p50_ms"):>7} {r.get("p99_ms"):>8} {r.get("max_ms"):>8} {r.get("slow1s"):>5} '
              f'{r.get("ok200"):>6} {r.get("connect_fail"):>12} {fmt(num(f.get(f"rss_{i}")) / MB, ".1f"):>7}')
    if runs:
        med = {k: statistics.median(num(r.get(k)) for r in runs)
               for k in ("established", "total_ms", "issue_ms", "p50_ms", "p99_ms", "max_ms", "slow1s", "ok200")}
        print(f'{"median":<7} {med["established"]:>11.0f} {med["total_ms"]:>9.1f} {med["issue_ms"]:>8.1f} '
              f'{med["p50_ms"]:>7.2f} {med["p99_ms"]:>8.2f} {med["max_ms"]:>8.2f} {med["slow1s"]:>5.0f} '
              f'{med["ok200"]:>6.0f}')
    print(f"(all in = first connect() to the last completion; issue = the client's time to call "
          f"connect() {n} times; p50/p99/max: per connection, connect() to writable; >=1s: connects that "
          f"needed a SYN retransmission; server: accepted {f.get('accepted', '?')}, rejected "
          f"{f.get('rejected', '?')} connections in total, RSS at start {fmt(num(f.get('rss_start')) / MB, '.1f')} MB)")


# --- summary ---------------------------------------------------------------------------------

def check(ok, text):
    if ok is None:
        print(f"SKIP  {text}")
    else:
        print(f"{'PASS' if ok else 'FAIL'}  {text}")


def cmd_summary(facts, rows, phases, sizes):
    phases = phases.split(",")
    sizes = [int(s) for s in sizes]
    print("\n== summary ==")
    ph = facts.get("phase", {})
    print("phase durations: " + ", ".join(f"{k} {v} s" for k, v in ph.items() if k != "total")
          + f"; total {ph.get('total', '?')} s")
    if "data" in phases and sizes:
        hdr = (f'{"keys":>9} {"load k/s":>9} {"hot r/s":>8} {"rand r/s":>8} {"rand/hot":>8} {"rand p99":>8} '
               f'{"PUT r/s":>8} {"PUT p99":>8} {"hot2 r/s":>8} {"rand2 r/s":>9} {"r2/h2":>6} {"rand2 p99":>9} '
               f'{"list r/s":>8} {"list p50":>8} {"list p99":>8} {"RSS MB":>7} {"du MB":>6} {"B/key":>6}')
        print("\ndata (req/s medians, p99 in ms; RSS = the highest after any step; du = data dir "
              "after the load, B/key = its file sizes / keys; 2 = after the PUTs):")
        print(hdr)
        print("-" * len(hdr))
        for n in sizes:
            tag = f"data-{n}"
            f = facts.get(tag, {})
            st = {sc: scen_stats(rows, tag, sc) for sc in ("hot", "rand", "put", "hot2", "rand2", "list")}
            g = lambda sc, k, spec=".0f": fmt(st[sc][k], spec) if st[sc] else "-"  # noqa: E731
            r1, _ = ratio(rows, tag, "rand", "hot")
            r2, _ = ratio(rows, tag, "rand2", "hot2")
            rss = max([num(f.get(f"rss_{s}"), -1) for s, _ in STEPS] + [-1])
            du = num(f.get("du_load"))
            fb = num(f.get("files_load"))
            lr = num(f.get("load_rate"))
            print(f'{n:>9} {fmt(lr / 1000, ".0f"):>9} {g("hot", "rps"):>8} {g("rand", "rps"):>8} '
                  f'{fmt(r1, ".2f"):>8} {g("rand", "p99", ".2f"):>8} {g("put", "rps"):>8} {g("put", "p99", ".2f"):>8} '
                  f'{g("hot2", "rps"):>8} {g("rand2", "rps"):>9} {fmt(r2, ".2f"):>6} {g("rand2", "p99", ".2f"):>9} '
                  f'{g("list", "rps"):>8} {g("list", "p50", ".2f"):>8} {g("list", "p99", ".2f"):>8} '
                  f'{(fmt(rss / MB, ".0f") if rss >= 0 else "-"):>7} {fmt(du / MB, ".0f"):>6} {fmt(fb / n, ".0f"):>6}')
    rf = facts.get("restart", {})
    if "restart" in phases and rf:
        v = kv(rf.get("verify"))
        print(f"\nrestart ({rf.get('keys')} keys): start->healthz clean {rf.get('restart_ms_clean', '-')} ms, "
              f"after PUTs {rf.get('restart_ms_afterput', '-')} ms, after SIGKILL {rf.get('restart_ms_sigkill', '-')} ms; "
              f"WAL before: {fmt(num(rf.get('wal_before_clean')) / 1048576, '.0f')} / "
              f"{fmt(num(rf.get('wal_before_afterput')) / 1048576, '.0f')} / "
              f"{fmt(num(rf.get('wal_before_sigkill')) / 1048576, '.0f')} MB; "
              f"acked {v.get('acked', '?')}, lost {v.get('lost', '?')}, wrong {v.get('wrong', '?')}")
    x = idle_figures(facts) if "idle" in phases else None
    if x:
        r, _ = ratio(rows, "idle", "with", "without")
        print(f"idle ({x['n']} conns): RSS start {fmt(x['start'] / MB, '.1f')} MB, with conns "
              f"{fmt(x['open'] / MB, '.1f')} MB ({fmt(x['per_conn'], '.0f')} B/conn), after closing "
              + ", ".join(f"{t} s {fmt(x['at'](t) / MB, '.1f')}" for t in (1, 10, 30, 60) if t <= x["last_t"])
              + f" MB; hot GET with/without {fmt(r, '.2f')}x")
    bf, runs = burst_runs(facts)
    if "burst" in phases and runs:
        med_total = statistics.median(num(r.get("total_ms")) for r in runs)
        print(f"burst ({runs[0].get('n')} connects, {len(runs)} runs): all established in "
              + ", ".join(r.get("total_ms", "?") for r in runs) + f" ms (median {med_total:.0f}); "
              + "took >= 1 s: " + ", ".join(r.get("slow1s", "?") for r in runs)
              + "; 200s: " + ", ".join(r.get("ok200", "?") for r in runs))
    logs = facts.get("server_log", {})
    w = sum(int(v.split()[0]) for v in logs.values())
    e = sum(int(v.split()[1]) for v in logs.values())
    print(f"server logs: {w} warn and {e} error lines over {len(logs)} server runs"
          + (" (see the raw file)" if w or e else ""))

    print("\nchecks (informational):")
    big = max(sizes) if sizes else None
    if "data" in phases and big:
        tag = f"data-{big}"
        for sfx, when in (("", "before the PUTs"), ("2", "after the PUTs")):
            r, _ = ratio(rows, tag, "rand" + sfx, "hot" + sfx)
            s = scen_stats(rows, tag, "rand" + sfx)
            check(None if r is None else r >= RAND_HOT_MIN,
                  f"data {big} keys, {when}: random GET / hot GET = {fmt(r, '.2f')} (>= {RAND_HOT_MIN})")
            check(None if s is None else s["p99"] <= RAND_P99_MAX_MS,
                  f"data {big} keys, {when}: random GET p99 = {fmt(s['p99'] if s else None, '.2f')} ms "
                  f"(<= {RAND_P99_MAX_MS:g} ms)")
            # the same bar for the hot GET of the same rounds, which reads no storage: how
            # often the machine alone (scheduling, the host) puts a p99 over it
            h = scen_stats(rows, tag, "hot" + sfx)
            for name, st in (("random", s), ("hot", h)):
                if st:
                    over = sum(1 for v in st["p99s"] if v > RAND_P99_MAX_MS)
                    print(f"      {name} GET p99 per round: "
                          + " ".join(f"{v:.2f}" for v in st["p99s"])
                          + f" ms; over {RAND_P99_MAX_MS:g} ms in {over} of {len(st['p99s'])}")
    else:
        check(None, "data: not run")
    if x:
        tot = x["open"] / MB
        check(tot <= IDLE_RSS_MAX_MB,
              f"idle: RSS with {x['n']} idle connections = {tot:.1f} MB total (<= {IDLE_RSS_MAX_MB:g} MB)")
        back = x["back_s"]
        check(back >= 0 and back <= 60,
              f"idle: RSS back to <= start + {IDLE_BACK_MB:g} MB ({(x['start'] / MB + IDLE_BACK_MB):.1f} MB) within 60 s of closing: "
              + (f"after {back} s" if back >= 0 else
                 f"no (+{x['last_t']} s: {fmt(x['at'](x['last_t']) / MB, '.1f')} MB)"))
    else:
        check(None, "idle: not run")
    if runs:
        med_total = statistics.median(num(r.get("total_ms"), float("inf")) for r in runs)
        n = int(num(runs[0].get("n"), 0))
        all_est = all(int(num(r.get("established"), 0)) == n for r in runs)
        all_ok = all(int(num(r.get("ok200"), 0)) == n for r in runs)
        check(all_est and med_total <= BURST_MAX_MS,
              f"burst: {n} connects all established within 1 s: median {med_total:.0f} ms over {len(runs)} runs"
              + ("" if all_est else " (NOT all established)"))
        check(all_ok, f"burst: every connection answered GET /healthz with 200: "
              + ", ".join(r.get("ok200", "?") for r in runs) + f" of {n}")
    else:
        check(None, "burst: not run")
    if rf and "restart_ms_clean" in rf:
        ms = [num(rf.get(f"restart_ms_{c}"), float("inf")) for c in ("clean", "afterput", "sigkill")]
        v = kv(rf.get("verify"))
        lost, wrong = int(num(v.get("lost"), -1)), int(num(v.get("wrong"), -1))
        markers = all(rf.get(f"marker_{c}") == "ok" for c in ("clean", "afterput", "sigkill"))
        check(all(m <= 2000 for m in ms),
              "restart: start->healthz <= 2 s in every case: " + " / ".join(fmt(m, ".0f") for m in ms)
              + " ms (clean / after PUTs / SIGKILL)")
        check(lost == 0 and wrong == 0 and markers,
              f"restart: 0 acknowledged writes lost: acked {v.get('acked', '?')}, lost {lost}, wrong {wrong}, "
              f"markers {'ok' if markers else 'LOST'}")
    else:
        check(None, "restart: not run")
    for b in facts.get("broken", {}).values():
        print(f"BROKEN  {b}")


def main():
    a = sys.argv[1:]
    if len(a) >= 3 and a[0] in ("size", "restart", "idle", "burst", "summary"):
        facts, rows = load_facts(a[1]), load_records(a[2])
        if a[0] == "size" and len(a) == 4:
            return cmd_size(facts, rows, a[3])
        if a[0] == "restart":
            return cmd_restart(facts, rows)
        if a[0] == "idle":
            return cmd_idle(facts, rows)
        if a[0] == "burst":
            return cmd_burst(facts, rows)
        if a[0] == "summary" and len(a) >= 4:
            return cmd_summary(facts, rows, a[3], a[4:])
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
