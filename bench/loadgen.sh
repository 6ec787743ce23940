#!/usr/bin/env bash
# bench/loadgen.sh - edgekv-bench next to wrk, in one run, against one standalone edgekv
# (cached GET of one 100-byte key), on the acceptance scenarios of docs/LOADTEST.md:
#   (co)   coordinated omission: 6 s of GETs with the server SIGSTOPped for 1 s at 2.5 s:
#          edgekv-bench open loop at 2,000/s (response and service p99) vs wrk -t1 -c64
#          (closed loop) on the same stall
#   (rate) rate accuracy: edgekv-bench open loop at 10,000/s for DURATION s: achieved / target
#   (max)  closed-loop throughput, 64 connections, 1 thread: edgekv-bench --rate 0 vs wrk,
#          ROUNDS alternating runs, ratio of medians (target >= 0.90)
# Usage: bench/loadgen.sh     Env: DURATION=10 ROUNDS=3 SCENARIOS=co,rate,max KEEP=1
#        PIN=1 (default): the server on CPU 1, edgekv-bench and wrk on CPU 0 (as bench/run.sh),
#        so the two tools get the same core and the comparison is of the tools
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
SCENARIOS=${SCENARIOS:-co,rate,max}
PIN=${PIN:-1}
srvpin=() ; clipin=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ]; then srvpin=(taskset -c 1); clipin=(taskset -c 0); fi
command -v wrk >/dev/null || apt-get install -y -qq wrk >/dev/null
if [ ! -x build/edgekv ] || [ ! -x build/edgekv-bench ]; then
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build -j2 --target edgekv edgekv-bench >/dev/null
fi
tmp=$(mktemp -d /tmp/edgekv-loadgen.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && { kill -CONT "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }
    [ "${KEEP:-0}" = 1 ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
acc=$(openssl rand -hex 16)
tok=$(openssl rand -base64 30 | tr '+/' '-_' | tr -d '=\n')
EDGEKV_ACCOUNT_ID=$acc EDGEKV_ROOT_TOKEN=$tok "${srvpin[@]}" build/edgekv --listen 127.0.0.1:$port \
    --data-dir "$tmp/data" --log-level warn >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
url=http://127.0.0.1:$port
B=("${clipin[@]}" build/edgekv-bench --url "$url" --token "$tok" --account "$acc" --workload get --keys 1 --quiet)
"${B[@]}" --load --rate 100 --duration 1s --warmup 0 >/dev/null 2>&1   # key k000000000000
ns=$(curl -s -H "Authorization: Bearer $tok" "$url/client/v4/accounts/$acc/storage/kv/namespaces" |
    python3 -c 'import json,sys; print([n["id"] for n in json.load(sys.stdin)["result"] if n["title"]=="edgekv-bench"][0])')
path=/client/v4/accounts/$acc/storage/kv/namespaces/$ns/values/k000000000000
[ "$(curl -s -H "Authorization: Bearer $tok" "$url$path" | wc -c)" = 100 ] || { echo "the key is not there"; exit 1; }
wrk_p() { # wrk --latency output -> "rps p50_ms p99_ms"
    python3 -c '
import re, sys
t = sys.stdin.read()
def ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)?$", s)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3, "m": 6e4, None: 1}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
p50 = ms(re.search(r"50%\s+(\S+)", t).group(1)); p99 = ms(re.search(r"99%\s+(\S+)", t).group(1))
print(f"{rps:.0f} {p50:.3f} {p99:.3f}")'
}
summ() { python3 -c "import json,sys; d=json.load(open('$1/summary.json')); r=d['latency_us']['response']; s=d['latency_us']['service']; print(f\"{d['achieved_rps']:.1f} {r['p50']/1e3:.3f} {r['p99']/1e3:.3f} {s['p99']/1e3:.3f} {d['late_sends']}\")"; }
stall() { sleep 2.5; kill -STOP "$pid"; sleep 1; kill -CONT "$pid"; }

if [[ ,$SCENARIOS, == *,co,* ]]; then
    echo "== co: 6 s of GETs, server SIGSTOPped for 1 s at 2.5 s"
    stall & sp=$!
    "${B[@]}" --rate 2000 --connections 64 --duration 6s --warmup 0 --out "$tmp/co" >/dev/null 2>&1; wait "$sp"
    read -r a r50 r99 s99 late < <(summ "$tmp/co")
    stall & sp=$!
    w=$("${clipin[@]}" wrk -t1 -c64 -d6s --latency -H "Authorization: Bearer $tok" "$url$path" | wrk_p); wait "$sp"
    read -r wr w50 w99 <<<"$w"
    printf '  edgekv-bench open loop 2000/s: response p99 %s ms, service p99 %s ms, achieved %s/s, late sends %s\n' "$r99" "$s99" "$a" "$late"
    printf '  wrk -t1 -c64 (closed loop):     p99 %s ms (p50 %s ms), %s req/s\n' "$w99" "$w50" "$wr"
fi
if [[ ,$SCENARIOS, == *,rate,* ]]; then
    echo "== rate: open loop at 10,000/s for ${DURATION}s"
    "${B[@]}" --rate 10000 --connections 64 --duration "${DURATION}s" --warmup 2s --out "$tmp/rate" >/dev/null 2>&1
    read -r a r50 r99 s99 late < <(summ "$tmp/rate")
    python3 -c "print(f'  achieved $a/s = {($a/10000-1)*100:+.2f} % of the target (acceptance: within ±1 %), response p50 $r50 ms p99 $r99 ms, late sends $late')"
fi
if [[ ,$SCENARIOS, == *,max,* ]]; then
    echo "== max: closed loop GET, 64 connections, 1 thread, ${DURATION}s per run, $ROUNDS alternating rounds"
    eb=() ; wk=()
    for i in $(seq "$ROUNDS"); do
        "${B[@]}" --rate 0 --connections 64 --threads 1 --duration "${DURATION}s" --warmup 1s --out "$tmp/max$i" >/dev/null 2>&1
        read -r a _ < <(summ "$tmp/max$i"); eb+=("$a")
        read -r wr _ < <("${clipin[@]}" wrk -t1 -c64 -d"${DURATION}s" -H "Authorization: Bearer $tok" "$url$path" --latency | wrk_p); wk+=("$wr")
        echo "  round $i: edgekv-bench $a/s, wrk $wr/s"
    done
    python3 -c "
import statistics as s
e = s.median([float(x) for x in '${eb[*]}'.split()]); w = s.median([float(x) for x in '${wk[*]}'.split()])
print(f'  medians: edgekv-bench {e:.0f}/s, wrk {w:.0f}/s, ratio {e/w:.2f} (target >= 0.90)')"
fi
