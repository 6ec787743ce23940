#!/usr/bin/env python3
"""Helpers for bench/repl.sh: replication lag from /metrics, catch-up time, the summary.

  replstats.py hist METRICS_BEFORE METRICS_AFTER
      -> "count p50_le p99_le max_le mean_ms" from the replica's edgekv_repl_apply_lag_ms
         histogram (Prometheus text, cumulative buckets): the deltas between the two scrapes,
         each percentile given as the upper bound of the bucket that holds it ("inf" = +Inf,
         "nan" when no record was applied in between).

  replstats.py catchup PRIMARY_URL REPLICA_URL FIFO GO_TIMEOUT_S CATCHUP_TIMEOUT_S
      Opens FIFO and waits (at most GO_TIMEOUT_S, no CPU used) for one line from it: bash
      writes it the moment wrk has exited. From then on, every 10 ms: the primary's last_seq,
      then the replica's applied_seq (GET /_edgekv/replication/status on both, keep-alive);
      caught up when applied_seq >= last_seq read in the same poll, and over when that held
      for 5 polls in a row with last_seq unchanged (late commits of requests in flight when
      wrk stopped restart the streak).
      -> "catchup_ms primary_last_seq replica_applied_seq polls" (catchup_ms = -1 on timeout;
         exit status 1 then). catchup_ms is from the go line to the reply that showed the
         final catch-up (the first poll of that streak).

  replstats.py report RECORDS_TSV TARGET_LAG_P99_MS CONFIG [CONFIG...]
      RECORDS_TSV lines: config round rps p50_ms p99_ms requests non2xx errors cpu_primary_s
                         cpu_replica_s lag_count lag_p50 lag_p99 lag_max lag_mean catchup_ms seqs
      The first CONFIG is the baseline (standalone); every other config is reported as a
      ratio to it. -> tables on stdout and one "BENCH scenario=repl ..." line.
"""
import http.client
import json
import math
import os
import re
import select
import statistics
import sys
import time

LAG_METRIC = "edgekv_repl_apply_lag_ms"
SETTLE = 5  # catch-up: polls in a row (10 ms apart) that must agree before it is over


def read_hist(path):
    buckets, total, count = {}, 0.0, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(LAG_METRIC + r'_bucket\{le="([^"]+)"\}\s+(\S+)', line)
            if m:
                le = math.inf if m.group(1) == "+Inf" else float(m.group(1))
                buckets[le] = float(m.group(2))
            elif line.startswith(LAG_METRIC + "_sum "):
                total = float(line.split()[1])
            elif line.startswith(LAG_METRIC + "_count "):
                count = int(float(line.split()[1]))
    return buckets, total, count


def fmt_le(le):
    if math.isnan(le):
        return "nan"
    return "inf" if math.isinf(le) else f"{le:g}"


def hist(before, after):
    b0, s0, c0 = read_hist(before)
    b1, s1, c1 = read_hist(after)
    if not b1:
        sys.exit(f"{after}: no {LAG_METRIC}_bucket lines")
    les = sorted(b1)
    delta = [(le, b1[le] - b0.get(le, 0.0)) for le in les]  # cumulative counts
    n = c1 - c0
    if n <= 0:
        print("0 nan nan nan nan")
        return

    def pct(q):
        want = q * n
        for le, cum in delta:
            if cum >= want:
                return le
        return math.inf

    print(f"{n} {fmt_le(pct(0.50))} {fmt_le(pct(0.99))} {fmt_le(pct(1.0))} {(s1 - s0) / n:.3f}")


class Status:
    """GET /_edgekv/replication/status over one keep-alive connection (reconnects on error)."""

    def __init__(self, url):
        m = re.fullmatch(r"http://([^:/]+):(\d+)/?", url)
        if not m:
            sys.exit(f"bad url {url}")
        self.host, self.port, self.conn = m.group(1), int(m.group(2)), None

    def get(self):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=2)
                self.conn.request("GET", "/_edgekv/replication/status")
                resp = self.conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
                return json.loads(body)["result"]
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    return None
        return None


def catchup(primary_url, replica_url, fifo, go_timeout, timeout):
    # O_RDWR: never blocks and never sees EOF (we hold a writer ourselves).
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    ready, _, _ = select.select([fd], [], [], float(go_timeout))
    t0 = time.monotonic()
    if not ready:
        print("-1 0 0 0")
        sys.exit("catchup: no go signal")
    os.read(fd, 64)
    prim, repl = Status(primary_url), Status(replica_url)
    deadline = t0 + float(timeout)
    polls, last, applied = 0, 0, 0
    nxt = t0
    # Requests wrk sent just before it closed its connections can still commit on the primary
    # after a first "caught up" poll, so the end is SETTLE polls in a row with last_seq
    # unchanged and applied_seq >= last_seq; the catch-up time is the first poll of that streak.
    streak, t_ok, prev_last = 0, 0.0, -1
    while True:
        polls += 1
        p = prim.get()
        r = repl.get()
        if p is not None and r is not None and r.get("replica"):
            last = int(p["last_seq"])
            applied = int(r["replica"]["applied_seq"])
            if applied >= last and last == prev_last and streak > 0:
                streak += 1
            elif applied >= last:
                streak, t_ok = 1, time.monotonic()
            else:
                streak = 0
            prev_last = last
            if streak >= SETTLE:
                print(f"{(t_ok - t0) * 1000:.1f} {last} {applied} {polls}")
                return
        nxt += 0.010
        now = time.monotonic()
        if now >= deadline:
            print(f"-1 {last} {applied} {polls}")
            sys.exit(1)
        if nxt > now:
            time.sleep(nxt - now)


def num(s):
    return float(s)


def report(records, target, configs):
    rows = {}
    with open(records, encoding="utf-8") as f:
        for line in f:
            p = line.split()
            if len(p) < 17:
                continue
            rows.setdefault(p[0], []).append({
                "round": int(p[1]), "rps": num(p[2]), "p50": num(p[3]), "p99": num(p[4]),
                "req": int(p[5]), "bad": int(p[6]) + int(p[7]), "cpu": num(p[8]), "cpu_r": num(p[9]),
                "lag_n": int(p[10]), "lag50": num(p[11]), "lag99": num(p[12]), "lagmax": num(p[13]),
                "lagmean": num(p[14]), "catchup": num(p[15]), "seqs": int(p[16]),
            })
    base = configs[0]
    med, valid = {}, True
    for c in configs:
        rs = rows.get(c, [])
        if not rs:
            med[c] = None
            continue
        req = sum(r["req"] for r in rs)
        bad = sum(r["bad"] for r in rs)
        if req == 0 or bad / req > 0.001:
            valid = False
        m = {
            "rounds": len(rs),
            "rps": statistics.median(r["rps"] for r in rs),
            "rps_min": min(r["rps"] for r in rs), "rps_max": max(r["rps"] for r in rs),
            "p50": statistics.median(r["p50"] for r in rs),
            "p99": statistics.median(r["p99"] for r in rs),
            "cpu": sum(r["cpu"] for r in rs) * 1e6 / req if req else math.nan,
            "cpu_r": sum(r["cpu_r"] for r in rs) * 1e6 / req if req else math.nan,
            "bad": bad,
        }
        lr = [r for r in rs if r["lag_n"] > 0]
        if lr:
            # median_high keeps the value a bucket bound; the worst round is the max
            m["lag50"] = statistics.median_high(r["lag50"] for r in lr)
            m["lag50w"] = max(r["lag50"] for r in lr)
            m["lag99"] = statistics.median_high(r["lag99"] for r in lr)
            m["lag99w"] = max(r["lag99"] for r in lr)
            m["lagmax"] = max(r["lagmax"] for r in lr)
            m["lagmean"] = statistics.median(r["lagmean"] for r in lr)
            m["lag_n"] = sum(r["lag_n"] for r in lr)
            m["seqs"] = sum(r["seqs"] for r in lr)
            m["lag_met"] = sum(1 for r in lr if r["lag99"] <= target)
            m["lag_rounds"] = len(lr)
            cu = [r["catchup"] for r in lr]
            m["catchup"] = statistics.median(cu) if min(cu) >= 0 else math.nan
            m["catchup_max"] = max(cu) if min(cu) >= 0 else math.nan
        med[c] = m

    print("\n== repl: durable 100-byte PUTs, new key each; primary with one replica vs standalone ==")
    hdr = (f'{"config":<8} {"rounds":>6} {"req/s median":>13} {"(min..max)":>17} {"p50 ms":>7} '
           f'{"p99 ms":>7} {"CPU us/req":>10} {"+replica":>8} {"errors":>7}')
    print(hdr)
    print("-" * len(hdr))
    for c in configs:
        m = med[c]
        if m is None:
            print(f"{c:<8} {'-':>6} {'not run':>13}")
            continue
        rng = f'{m["rps_min"]:.0f}..{m["rps_max"]:.0f}'
        rep = f'{m["cpu_r"]:.1f}' if "lag50" in m else "-"
        print(f'{c:<8} {m["rounds"]:>6} {m["rps"]:>13.0f} {rng:>17} {m["p50"]:>7.2f} {m["p99"]:>7.2f} '
              f'{m["cpu"]:>10.1f} {rep:>8} {m["bad"]:>7}')

    print()
    hdr2 = (f'{"config":<8} {"lag p50 <= ms":>14} {"lag p99 <= ms":>14} {"max <=":>7} {"mean ms":>8} '
            f'{"catch-up ms":>12} {"records":>9}')
    print(hdr2)
    print("-" * len(hdr2) + "   (lag: median round / worst round; catch-up: median / max)")

    def b(x):
        return fmt_le(x)
    for c in configs[1:]:
        m = med[c]
        if m is None or "lag50" not in m:
            continue
        cu = (f'{m["catchup"]:.0f} / {m["catchup_max"]:.0f}' if not math.isnan(m["catchup"])
              else "TIMEOUT")
        rec = "ok" if m["lag_n"] == m["seqs"] else f'{m["lag_n"]}/{m["seqs"]}'
        print(f'{c:<8} {b(m["lag50"]) + " / " + b(m["lag50w"]):>14} {b(m["lag99"]) + " / " + b(m["lag99w"]):>14} '
              f'{b(m["lagmax"]):>7} {m["lagmean"]:>8.2f} {cu:>12} {rec:>9}')

    kv = ["scenario=repl"]
    print()
    s = med[base]
    if s is not None:
        kv += [f'{base}_rps={s["rps"]:.0f}', f'{base}_p99_ms={s["p99"]:.3f}',
               f'{base}_cpu_us_per_req={s["cpu"]:.2f}']
    for c in configs[1:]:
        m = med[c]
        if m is None:
            continue
        kv += [f'{c}_rps={m["rps"]:.0f}', f'{c}_p99_ms={m["p99"]:.3f}', f'{c}_cpu_us_per_req={m["cpu"]:.2f}',
               f'{c}_replica_cpu_us_per_req={m["cpu_r"]:.2f}']
        if s is None or s["rps"] <= 0:
            continue
        ratio = m["rps"] / s["rps"]
        pr = sorted(a["rps"] / x["rps"] for a in rows[c] for x in rows[base]
                    if a["round"] == x["round"] and x["rps"] > 0)
        lat = m["p99"] / s["p99"] if s["p99"] > 0 else math.nan
        cpu = m["cpu"] / s["cpu"] if s["cpu"] > 0 else math.nan
        line = f"  {c}/{base}:  throughput {ratio:.2f}x"
        if pr:
            line += f" (per-round {pr[0]:.2f}..{pr[-1]:.2f})"
        line += f"   p99 {lat:.2f}x   primary CPU/req {cpu:.2f}x   (p99, CPU/req: lower is better)"
        print(line)
        kv += [f"ratio_{c}_{base}={ratio:.3f}", f"p99_ratio_{c}_{base}={lat:.3f}"]
        if "lag50" in m:
            kv += [f'{c}_lag_p50_le_ms={b(m["lag50"])}', f'{c}_lag_p99_le_ms={b(m["lag99"])}',
                   f'{c}_lag_p99_worst_le_ms={b(m["lag99w"])}', f'{c}_lag_max_le_ms={b(m["lagmax"])}',
                   f'{c}_catchup_ms={m["catchup"]:.0f}', f'{c}_catchup_max_ms={m["catchup_max"]:.0f}']
            met = m["lag99"] <= target
            print(f'  {c}: lag p99 target <= {target:g} ms {"met" if met else "NOT met"} '
                  f'(median round; met in {m["lag_met"]}/{m["lag_rounds"]} rounds)')
            kv.append(f'{c}_lag_target_met={"yes" if met else "no"}')
    if not valid:
        print("  WARNING: > 0.1% of requests failed (non-2xx or socket errors): figures are not comparable")
    kv.append(f"lag_target_ms={target:g}")
    kv.append(f"valid={'yes' if valid else 'no'}")
    print()
    print("BENCH " + " ".join(kv))


def main():
    a = sys.argv
    if len(a) == 4 and a[1] == "hist":
        hist(a[2], a[3])
    elif len(a) == 7 and a[1] == "catchup":
        catchup(a[2], a[3], a[4], a[5], a[6])
    elif len(a) >= 5 and a[1] == "report":
        report(a[2], float(a[3]), a[4:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
