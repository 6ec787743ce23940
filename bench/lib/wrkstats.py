#!/usr/bin/env python3
"""Parse wrk output and summarise bench rounds as medians and ratios.

  wrkstats.py parse WRK_OUTPUT_FILE
      -> one line "rps p50_ms p99_ms requests non2xx sock_errors" (wrk --latency output)

  wrkstats.py report RECORDS_TSV SCENARIO SUBJECT PEER[,PEER...] [TARGET_RATIO...]
      RECORDS_TSV lines: scenario server round rps p50_ms p99_ms requests non2xx errors cpu_s
      -> a table on stdout and one machine-readable "BENCH ..." line for the scenario.
"""
import re
import statistics
import sys

UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def to_ms(text):
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * UNITS_MS[m.group(2)]


def parse(path):
    out = {"rps": 0.0, "p50": float("nan"), "p99": float("nan"), "req": 0, "non2xx": 0, "err": 0}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.strip()
            if s.startswith("Requests/sec:"):
                out["rps"] = float(s.split()[1])
            elif re.match(r"^50%\s", s):
                out["p50"] = to_ms(s.split()[1])
            elif re.match(r"^99%\s", s):
                out["p99"] = to_ms(s.split()[1])
            elif re.match(r"^\d+ requests in", s):
                out["req"] = int(s.split()[0])
            elif s.startswith("Non-2xx or 3xx responses:"):
                out["non2xx"] = int(s.split()[-1])
            elif s.startswith("Socket errors:"):
                out["err"] = sum(int(n) for n in re.findall(r"\d+", s))
    print(f'{out["rps"]:.2f} {out["p50"]:.3f} {out["p99"]:.3f} {out["req"]} {out["non2xx"]} {out["err"]}')


def fmt_ratio(x):
    return "n/a" if x is None else f"{x:.2f}x"


def report(records, scenario, subject, peers, targets):
    rows = {}
    with open(records, encoding="utf-8") as f:
        for line in f:
            p = line.split()
            if len(p) < 10 or p[0] != scenario:
                continue
            rows.setdefault(p[1], []).append({
                "round": int(p[2]), "rps": float(p[3]), "p50": float(p[4]), "p99": float(p[5]),
                "req": int(p[6]), "non2xx": int(p[7]), "err": int(p[8]), "cpu": float(p[9]),
            })
    servers = [subject] + peers
    med = {}
    for srv in servers:
        rs = rows.get(srv, [])
        if not rs:
            med[srv] = None
            continue
        req = sum(r["req"] for r in rs)
        cpu = sum(r["cpu"] for r in rs)
        bad = sum(r["non2xx"] + r["err"] for r in rs)
        med[srv] = {
            "rps": statistics.median(r["rps"] for r in rs),
            "rps_min": min(r["rps"] for r in rs),
            "rps_max": max(r["rps"] for r in rs),
            "p50": statistics.median(r["p50"] for r in rs),
            "p99": statistics.median(r["p99"] for r in rs),
            "cpu_us_per_req": (cpu * 1e6 / req) if req else float("nan"),
            "bad": bad,
            "bad_frac": bad / req if req else 1.0,
            "rounds": len(rs),
        }

    print(f"\n== {scenario} ==")
    hdr = f'{"server":<8} {"rounds":>6} {"req/s median":>13} {"(min..max)":>19} {"p50 ms":>8} {"p99 ms":>8} {"CPU us/req":>10} {"errors":>7}'
    print(hdr)
    print("-" * len(hdr))
    for srv in servers:
        m = med[srv]
        if m is None:
            print(f"{srv:<8} {'-':>6} {'not run':>13}")
            continue
        rng = f'{m["rps_min"]:.0f}..{m["rps_max"]:.0f}'
        print(f'{srv:<8} {m["rounds"]:>6} {m["rps"]:>13.0f} {rng:>19} {m["p50"]:>8.2f} {m["p99"]:>8.2f} '
              f'{m["cpu_us_per_req"]:>10.1f} {m["bad"]:>7}')

    kv = [f"scenario={scenario}"]
    valid = True
    s = med[subject]
    for srv in servers:
        m = med[srv]
        if m is None:
            continue
        kv += [f'{srv}_rps={m["rps"]:.0f}', f'{srv}_p99_ms={m["p99"]:.3f}',
               f'{srv}_cpu_us_per_req={m["cpu_us_per_req"]:.2f}']
        if m["bad_frac"] > 0.001:
            valid = False
    print()
    for i, peer in enumerate(peers):
        p = med[peer]
        target = float(targets[i]) if i < len(targets) else None
        if s is None or p is None or p["rps"] <= 0:
            kv.append(f"ratio_{subject}_{peer}=n/a")
            print(f"  {subject}/{peer}: n/a")
            continue
        ratio = s["rps"] / p["rps"]
        # per-round paired ratios (rounds alternate, so each pair saw similar machine noise)
        pr = sorted(a["rps"] / b["rps"] for a in rows[subject] for b in rows[peer]
                    if a["round"] == b["round"] and b["rps"] > 0)
        lat = s["p99"] / p["p99"] if p["p99"] > 0 else None
        cpu = (s["cpu_us_per_req"] / p["cpu_us_per_req"]) if p["cpu_us_per_req"] > 0 else None
        line = f"  {subject}/{peer}:  throughput {fmt_ratio(ratio)}"
        extra = []
        if pr:
            extra.append(f"per-round {pr[0]:.2f}..{pr[-1]:.2f}")
        if target is not None:
            extra.append(f"target >= {target:g}x {'met' if ratio >= target else 'NOT met'}")
        if extra:
            line += " (" + "; ".join(extra) + ")"
        line += f"   p99 {fmt_ratio(lat)}   CPU/req {fmt_ratio(cpu)}   (p99, CPU/req: lower is better)"
        print(line)
        kv.append(f"ratio_{subject}_{peer}={ratio:.3f}")
        if lat is not None:
            kv.append(f"p99_ratio_{subject}_{peer}={lat:.3f}")
        if target is not None:
            kv.append(f"target_{peer}={target:g} met_{peer}={'yes' if ratio >= target else 'no'}")
    if not valid:
        print("  WARNING: > 0.1% of requests failed (non-2xx or socket errors): figures are not comparable")
    kv.append(f"valid={'yes' if valid else 'no'}")
    print()
    print("BENCH " + " ".join(kv))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "parse":
        parse(sys.argv[2])
    elif len(sys.argv) >= 6 and sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split(","), sys.argv[6:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
