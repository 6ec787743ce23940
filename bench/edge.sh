#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2034,SC2086  # "cond && cond || die" is meant; ports read by
# indirection (${!v}); $PROBE / $STATS are "python3 script" (two words on purpose)
# bench/edge.sh - the edge role, in one run, on one topology: 1 primary + 2 replicas + 3 edges.
#
#   (a) get   cache-hit GET of a 100-byte value through an edge vs nginx-light and h2o serving
#             the same 100 bytes (the peer setup, wrk flags, rounds and rotation of run.sh);
#             the primary and the replicas are idle meanwhile
#   (b) conv  convergence under a paced write load: a write acked through edge A, time until the
#             new value is readable through edges B and C; both for fresh keys ("miss") and for
#             keys whose old value B and C had cached ("inval": the change stream's eviction)
#   (c) miss  latency of GETs of keys the edge has not cached (each key read once; the keys were
#             written through the primary) next to cache hits, sequential and concurrent
# Every answer is checked against what was written; wrong answers make the script exit 1 (after
# the tables are written). Targets (GET >= 1.0x nginx, convergence p99 <= 50 ms) are printed,
# never enforced.
#
# Usage: bench/edge.sh            (about 3 minutes with the defaults)
# Env:   DURATION=5   seconds per measured wrk run (get) and of probing per round (conv)
#        ROUNDS=5     alternating rounds (get) and probe rounds (conv)
#        CONNS=64 THREADS=1 WARMUP=2   wrk for get, as in run.sh
#        SCENARIOS=get,conv,miss       which parts to run
#        PIN=1        wrk on CPU 0; get: the edge, nginx and h2o on CPU 1 (as run.sh); miss: the
#                     edge on CPU 1 (the other nodes are never pinned)
#        NICE=-10     servers, wrk and probes at this nice level (default -10 as root, else 0)
#        LOAD_RATE=1000 LOAD_CONNS=8   conv: background writes/s (paced wrk PUTs), connections
#        LOAD_VIA=edge                 conv: the load goes through edge A (edge) or the primary
#        PROBE_MS=20 POLL_MS=1 PROBE_TIMEOUT_MS=1000   conv: probe interval, poll interval, give-up
#        CONV_TARGET_MS=50             conv: informational p99 target
#        MISS_DURATION=2 MISS_ROUNDS=3 MISS_CONNS=16   miss: seconds per run, rounds, connections
#                     of the concurrent runs
#        EDGEKV_BIN=path   use this binary instead of building build/edgekv     KEEP=1 keep the temp dir
# Output: tables and one "BENCH ..." line per part, also written to bench/results/<ts>-edge.txt
#         (raw wrk outputs, probe examples and edge counters in <ts>-edge.raw.txt).
# See bench/README.md ("Edges: bench/edge.sh") for the method and how to read the figures.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

bench_params
SCENARIOS=${SCENARIOS:-get,conv,miss}
LOAD_RATE=${LOAD_RATE:-1000}
LOAD_CONNS=${LOAD_CONNS:-8}
LOAD_VIA=${LOAD_VIA:-edge}
PROBE_MS=${PROBE_MS:-20}
POLL_MS=${POLL_MS:-1}
PROBE_TIMEOUT_MS=${PROBE_TIMEOUT_MS:-1000}
CONV_TARGET_MS=${CONV_TARGET_MS:-50}
MISS_DURATION=${MISS_DURATION:-2}
MISS_ROUNDS=${MISS_ROUNDS:-3}
MISS_CONNS=${MISS_CONNS:-16}
VALUE_SIZE=100
for v in LOAD_RATE LOAD_CONNS PROBE_MS PROBE_TIMEOUT_MS CONV_TARGET_MS MISS_DURATION MISS_ROUNDS MISS_CONNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be an integer >= 1 (got '${!v}')"
done
[[ $POLL_MS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "POLL_MS must be a number (got '$POLL_MS')"
case "$LOAD_VIA" in edge|primary) ;; *) die "LOAD_VIA must be edge or primary (got '$LOAD_VIA')" ;; esac
[[ ,$SCENARIOS, =~ ,(get|conv|miss), ]] || die "SCENARIOS must name get, conv and/or miss (got '$SCENARIOS')"

STATS="python3 $BENCH_DIR/lib/wrkstats.py"
PROBE="python3 $BENCH_DIR/lib/edgeprobe.py"
LUA="$BENCH_DIR/lib/edge_kv.lua"
CLK_TCK=$(getconf CLK_TCK)

bench_install_trap
need=(wrk:wrk curl:curl python3:python3)
[[ ,$SCENARIOS, == *,get,* ]] && need+=(nginx:nginx-light h2o:h2o)
bench_need "${need[@]}"
NGINX=$(bench_nginx_bin)
bench_mkwork

CLIENT_CPU=""; SERVER_CPU=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    CLIENT_CPU=0; SERVER_CPU=1
fi

bench_results "-edge"
bench_build_edgekv

has() { [[ ,$SCENARIOS, == *,$1,* ]]; }
est=15
has get && est=$((est + 3 * (ROUNDS * DURATION + WARMUP) + 3))
has conv && est=$((est + ROUNDS * (DURATION + 3)))
has miss && est=$((est + 4 * MISS_ROUNDS * (MISS_DURATION + 1) + 10))
say "edgekv edge bench  $TS"
say "machine: $(nproc) cpus, $(uname -sr), work dir on $(df -P "$BENCH_WORK" | awk 'NR==2{print $1}'), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "edgekv:  $EDGEKV_BIN (commit $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo none))"
peers="wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}' || true)"
if has get; then
    peers="nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///' || true), h2o $(h2o --version | awk 'NR==1{print $3}' || true), $peers"
fi
say "tools:   $peers, $(python3 --version)"
say "params:  SCENARIOS=$SCENARIOS DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS=$CONNS THREADS=$THREADS WARMUP=${WARMUP}s NICE=${NICE:-0} value=${VALUE_SIZE}B pin=$([ -n "$CLIENT_CPU" ] && echo "client cpu $CLIENT_CPU, get servers cpu $SERVER_CPU" || echo off)"
say "         LOAD_RATE=${LOAD_RATE}/s LOAD_CONNS=$LOAD_CONNS LOAD_VIA=$LOAD_VIA PROBE_MS=$PROBE_MS POLL_MS=$POLL_MS PROBE_TIMEOUT_MS=$PROBE_TIMEOUT_MS MISS_DURATION=${MISS_DURATION}s MISS_ROUNDS=$MISS_ROUNDS MISS_CONNS=$MISS_CONNS"
log "expected run time ~${est}s"

WRONG=()   # correctness failures (the script exits 1 at the end when any)

# --- the topology -----------------------------------------------------------------------------

# wait_status URL NAME PID EXPR SECS - until EXPR (python, on the status result r) prints True
wait_status() {
    local url=$1 name=$2 pid=$3 expr=$4 deadline=$((SECONDS + $5)) v=""
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || { tail -20 "$BENCH_WORK/$name.log" >&2; die "$name exited"; }
        v=$(json_get "$url/_edgekv/replication/status" "$expr")
        [ "$v" = True ] && return 0
        sleep 0.2
    done
    tail -20 "$BENCH_WORK/$name.log" >&2
    die "$name: status never satisfied: $expr (last: '$v')"
}

read -r P_API P_REPL R1_API R1_REPL R2_API R2_REPL E1 E2 E3 P_NGX P_H2O <<<"$(bench_free_ports 11)"
declare -A URL PID

bench_start_edgekv p1 "" "$BENCH_WORK/p1-data" "$P_API" --role primary \
    --repl-listen "127.0.0.1:$P_REPL" --node-id p1
URL[p1]=$EKV_URL; PID[p1]=$EKV_PID
for r in 1 2; do
    api_v="R${r}_API"; repl_v="R${r}_REPL"
    mkdir -p "$BENCH_WORK/r$r-data"
    # no account/token env: a replica gets them from its primary
    bench_start "r$r" "" "$BENCH_WORK/r$r.log" "$EDGEKV_BIN" serve --role replica --node-id "r$r" \
        --listen "127.0.0.1:${!api_v}" --repl-listen "127.0.0.1:${!repl_v}" \
        --primary "127.0.0.1:$P_REPL" --data-dir "$BENCH_WORK/r$r-data"
    URL[r$r]="http://127.0.0.1:${!api_v}"; PID[r$r]=$BENCH_LAST_PID
done
for r in 1 2; do
    bench_wait_http "${URL[r$r]}/healthz" "${PID[r$r]}" 30 ||
        { tail -20 "$BENCH_WORK/r$r.log" >&2; die "r$r: /healthz never answered 200"; }
    wait_status "${URL[r$r]}" "r$r" "${PID[r$r]}" "r['replica']['state'] == 'streaming'" 30
done
# Edges: e1 (edge A, the one under test in get) pinned like run.sh's GET servers; no data
# dir, no credentials (they come with the change stream).
for e in 1 2 3; do
    port_v="E$e"; cpu=""
    [ "$e" = 1 ] && cpu=$SERVER_CPU
    bench_start "e$e" "$cpu" "$BENCH_WORK/e$e.log" "$EDGEKV_BIN" serve --role edge --node-id "e$e" \
        --listen "127.0.0.1:${!port_v}" --primary "127.0.0.1:$P_REPL" \
        --replicas "127.0.0.1:$R1_REPL,127.0.0.1:$R2_REPL"
    URL[e$e]="http://127.0.0.1:${!port_v}"; PID[e$e]=$BENCH_LAST_PID
done
for e in 1 2 3; do
    wait_status "${URL[e$e]}" "e$e" "${PID[e$e]}" \
        "r['edge']['synced'] is True and r['stream']['state'] == 'streaming'" 30
done
topo="topology: p1 pid ${PID[p1]} (repl 127.0.0.1:$P_REPL), r1 pid ${PID[r1]} (127.0.0.1:$R1_REPL), r2 pid ${PID[r2]} (127.0.0.1:$R2_REPL)"
for e in 1 2 3; do
    topo+=", e$e pid ${PID[e$e]} (stream from $(json_get "${URL[e$e]}/_edgekv/replication/status" "r['stream']['primary_addr']"))"
done
say "$topo"

NS=$(bench_edgekv_namespace "${URL[p1]}" bench-edge)
VALUES="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$NS/values/"
export EDGE_TOKEN=$EKV_TOKEN EDGE_ACCOUNT=$EKV_ACCOUNT EDGE_BASE=$VALUES
# every edge must know the namespace before it is used through it
$PROBE synced 30 "${URL[p1]}" "${URL[r1]}" "${URL[r2]}" "${URL[e1]}" "${URL[e2]}" "${URL[e3]}" >/dev/null ||
    die "the namespace did not reach every node within 30 s"

# edge_counters URL -> "hits misses upstream_fetches coalesced" from /metrics
edge_counters() {
    curl -s --max-time 5 "$1/metrics" | awk '
        $1 == "edgekv_edge_cache_hits_total" { h = $2 }
        $1 == "edgekv_edge_cache_misses_total" { m = $2 }
        $1 == "edgekv_edge_upstream_fetches_total" { f = $2 }
        $1 == "edgekv_edge_coalesced_total" { c = $2 }
        END { printf "%d %d %d %d", h, m, f, c }'
}

# edge_kv_check RAWFILE WHAT - the EDGE_KV line of a wrk run; wrong answers are recorded
edge_kv_check() {
    local line checked bs bb pe
    line=$(grep '^EDGE_KV ' "$1" | tail -1)
    [ -n "$line" ] || { WRONG+=("$2: no EDGE_KV line from the wrk script"); return; }
    checked=$(sed -n 's/.* checked=\([0-9]*\).*/\1/p' <<<"$line")
    bs=$(sed -n 's/.* bad_status=\([0-9]*\).*/\1/p' <<<"$line")
    bb=$(sed -n 's/.* bad_body=\([0-9]*\).*/\1/p' <<<"$line")
    pe=$(sed -n 's/.* past_end=\([0-9]*\).*/\1/p' <<<"$line")
    [ "$bs" = 0 ] && [ "$bb" = 0 ] ||
        WRONG+=("$2: $bs answers not 200, $bb bodies not the value written (of $checked)")
    [ "${pe:-0}" = 0 ] || WRONG+=("$2: $pe requests past the keys written (raise the key count)")
}

# rotate LIST N: the list rotated left by N (alternate the order between rounds)
rotate() {
    local n=$1; shift
    local a=("$@") i
    for ((i = 0; i < ${#a[@]}; i++)); do printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"; done
}

cpu_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}'; }

# --- (a) cache-hit GET: edge vs nginx vs h2o --------------------------------------------------

# run_get SERVER ROUND PID URL   (ROUND 0 = warm-up, not recorded) - run.sh's run_one
run_get() {
    local srv=$1 round=$2 pid=$3 url=$4
    local raw="$BENCH_WORK/wrk-get-$srv-$round.txt" dur=$DURATION t0 t1 stats
    [ "$round" = 0 ] && dur=$WARMUP
    [ "$dur" -ge 1 ] || return 0
    kill -0 "$pid" 2>/dev/null || die "$srv (pid $pid) is not running"
    t0=$(bench_cpu_ticks "$pid")
    # shellcheck disable=SC2046
    if ! bench_run_bg timeout $((dur + 30)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 5s --latency \
        -H "Authorization: Bearer $EKV_TOKEN" "$url" >"$raw" 2>&1; then
        cat "$raw" >&2
        die "wrk failed against $srv"
    fi
    t1=$(bench_cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || die "$srv (pid $pid) died during the run"
    stats=$($STATS parse "$raw")
    { echo "### get $srv round $round"; cat "$raw"; echo; } >>"$RAW"
    [ "$round" = 0 ] && return 0
    echo "edge_get $srv $round $stats $(cpu_s $((t1 - t0)))" >>"$RECORDS"
    local rps p99 bad err warn=""
    read -r rps _ p99 _ bad err <<<"$stats"
    [ "$bad" != 0 ] && warn+="  non-2xx=$bad"
    [ "$err" != 0 ] && warn+="  socket-errors=$err"
    log "get round $round $(printf '%-6s' "$srv") $(printf '%9.0f' "$rps") req/s  p99 ${p99} ms$warn"
}

scenario_get() {
    # nginx and h2o exactly as bench/run.sh configures them (see bench/README.md, "Fairness").
    bench_static_peers "$P_NGX" "$P_H2O"
    local ngx_pid=$NGX_PID h2o_pid=$H2O_PID ngx_url=$NGX_URL h2o_url=$H2O_URL

    # The value: PUT through the edge, read once through it (a miss: fetched and cached).
    local code c0 c1
    bench_edgekv_put "${URL[e1]}" "$NS" bench-get "$BENCH_WORK/www/v100"
    code=$(bench_edgekv_get "${URL[e1]}" "$NS" bench-get "$BENCH_WORK/get.out")
    [ "$code" = 200 ] && cmp -s "$BENCH_WORK/get.out" "$BENCH_WORK/www/v100" ||
        die "edge GET after PUT through it: HTTP $code, body $(head -c 200 "$BENCH_WORK/get.out")"
    c0=$(edge_counters "${URL[e1]}")
    local edge_url="${URL[e1]}${VALUES}bench-get"
    local -A url=([edge]=$edge_url [nginx]=$ngx_url [h2o]=$h2o_url)
    local -A pid=([edge]=${PID[e1]} [nginx]=$ngx_pid [h2o]=$h2o_pid)
    local servers=(edge nginx h2o) r s
    local p0 p1
    p0=$(for n in p1 r1 r2; do bench_cpu_ticks "${PID[$n]}"; done | awk '{s += $1} END {print s}')
    log "get: warm-up ${WARMUP}s each, then $ROUNDS rounds x ${DURATION}s, order rotating (edge = e1)"
    for r in $(seq 0 "$ROUNDS"); do
        for s in $(rotate "$r" "${servers[@]}"); do
            run_get "$s" "$r" "${pid[$s]}" "${url[$s]}"
        done
    done
    p1=$(for n in p1 r1 r2; do bench_cpu_ticks "${PID[$n]}"; done | awk '{s += $1} END {print s}')
    c1=$(edge_counters "${URL[e1]}")
    code=$(bench_edgekv_get "${URL[e1]}" "$NS" bench-get "$BENCH_WORK/get.out")
    [ "$code" = 200 ] && cmp -s "$BENCH_WORK/get.out" "$BENCH_WORK/www/v100" ||
        WRONG+=("get: the edge's value after the runs: HTTP $code, body $(head -c 100 "$BENCH_WORK/get.out")")
    bench_stop "$h2o_pid"; bench_stop "$ngx_pid"
    # the edge (and later wrk) may use every CPU again for the other parts
    if [ -n "$SERVER_CPU" ]; then
        taskset -a -p -c "0-$(($(nproc) - 1))" "${PID[e1]}" >/dev/null 2>&1 || true
    fi

    $STATS report "$RECORDS" edge_get edge nginx,h2o 1.0 | tee -a "$OUT"
    local h0 m0 f0 h1 m1 f1
    read -r h0 m0 f0 _ <<<"$c0"
    read -r h1 m1 f1 _ <<<"$c1"
    say "edge e1 counters over the runs: cache hits $((h1 - h0)), misses $((m1 - m0)), upstream fetches $((f1 - f0))" \
        "(the TTL is 60 s: a run longer than that refetches the value once); primary+replicas CPU meanwhile $(cpu_s $((p1 - p0))) s"
    { echo "### e1 /metrics after get"; curl -s --max-time 5 "${URL[e1]}/metrics" | grep -E '^edgekv_(edge|repl)_'; echo; } >>"$RAW"
}

# --- (b) convergence under a write load ---------------------------------------------------------

scenario_conv() {
    local load_url delay r lraw praw stats lrate lp99 note probe_rc
    if [ "$LOAD_VIA" = edge ]; then load_url=${URL[e1]}; else load_url=${URL[p1]}; fi
    # paced wrk: each connection waits `delay` ms before each request
    delay=$((LOAD_CONNS * 1000 / LOAD_RATE - 1)) # - ~1 ms: the write's own latency
    [ "$delay" -ge 1 ] || delay=1
    local recs="$BENCH_WORK/conv.tsv"
    : >"$recs"
    log "conv: $ROUNDS rounds; each: load ~${LOAD_RATE} writes/s through $LOAD_VIA ($LOAD_CONNS conns, ${delay} ms pause each), probes every ${PROBE_MS} ms for ${DURATION}s (A=e1, B=e2, C=e3)"
    for r in $(seq 1 "$ROUNDS"); do
        lraw="$BENCH_WORK/wrk-load-$r.txt"; praw="$BENCH_WORK/probe-$r.txt"
        # shellcheck disable=SC2046
        EDGE_MODE=put EDGE_PREFIX="ld-r$r-" EDGE_START=0 EDGE_DELAY_MS=$delay \
            timeout $((DURATION + 40)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
            wrk -t1 -c"$LOAD_CONNS" -d"$((DURATION + 12))s" --timeout 5s --latency -s "$LUA" "$load_url" \
            >"$lraw" 2>&1 &
        local lpid=$!
        BENCH_PIDS+=("$lpid")
        sleep 1
        probe_rc=0
        # shellcheck disable=SC2046
        bench_run_bg timeout $((DURATION + 60 + PROBE_TIMEOUT_MS / 1000)) $(bench_nice_prefix) \
            $PROBE probe --a "${URL[e1]}" --b "${URL[e2]}" --c "${URL[e3]}" --primary "${URL[p1]}" \
            --ns "$NS" --round "$r" --duration "$DURATION" --interval-ms "$PROBE_MS" \
            --poll-ms "$POLL_MS" --timeout-ms "$PROBE_TIMEOUT_MS" --overrun 8 --out "$recs" >"$praw" 2>&1 || probe_rc=$?
        # the load runs until the probe is done: SIGINT makes wrk (through timeout) stop and report
        sleep 0.5
        kill -INT "$lpid" 2>/dev/null || true
        local lrc=0
        wait "$lpid" || lrc=$?
        bench_forget "$lpid"
        { echo "### conv round $r: write load ($LOAD_VIA)"; cat "$lraw"; echo "### conv round $r: probe"; cat "$praw"; echo; } >>"$RAW"
        [ "$probe_rc" = 0 ] || { cat "$praw" >&2; die "conv round $r: the probe failed (exit $probe_rc)"; }
        [ "$lrc" = 0 ] || { cat "$lraw" >&2; die "conv round $r: the write load failed (wrk exit $lrc)"; }
        stats=$($STATS parse "$lraw")
        read -r lrate _ lp99 _ _ _ <<<"$stats"
        edge_kv_check "$lraw" "conv round $r write load"
        note=$(head -1 "$praw")
        echo "$r $stats" >>"$BENCH_WORK/load.tsv"
        log "conv round $r: load $(printf '%.0f' "$lrate") writes/s (p99 $lp99 ms); probe: $note"
        grep '^  example' "$praw" | grep -v '(ryw)' | head -3 >&2 || true
    done
    local rep_rc=0
    $PROBE report "$recs" "$CONV_TARGET_MS" "$POLL_MS" "$PROBE_TIMEOUT_MS" >"$BENCH_WORK/conv-report.txt" || rep_rc=$?
    tee -a "$OUT" <"$BENCH_WORK/conv-report.txt"
    [ "$rep_rc" = 0 ] || WRONG+=("conv: wrong answers through the edges (see the table above and the examples in the raw file)")
    say "$(python3 - "$BENCH_WORK/load.tsv" "$LOAD_VIA" "$LOAD_CONNS" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
rps = [float(r[1]) for r in rows]
p99 = [float(r[3]) for r in rows]
print(f"write load during the probes: through {sys.argv[2]}, {sys.argv[3]} connections, median "
      f"{statistics.median(rps):.0f} writes/s (min {min(rps):.0f}, max {max(rps):.0f}) over the rounds, "
      f"write p99 median {statistics.median(p99):.2f} ms")
PY
)"
    local e
    for e in e2 e3; do
        say "$e: $(json_get "${URL[$e]}/_edgekv/replication/status" "'stream from %s, applied_seq %s, reconnects %s, snapshots %s' % (r['stream']['primary_addr'], r['stream']['applied_seq'], r['stream']['reconnects'], r['stream']['snapshots'])")"
    done
}

# --- (c) miss latency next to hit latency -------------------------------------------------------

# run_lat KIND CONNS ROUND START COUNT - one wrk run through e2, recorded in miss.tsv
run_lat() {
    local kind=$1 conns=$2 round=$3 start=$4 count=$5 c0 c1 t0 t1 stats
    local raw="$BENCH_WORK/wrk-lat-$kind-$conns-$round.txt" exact=0 mode=get
    [ "$conns" = 1 ] && exact=1
    [ "$kind" = hit ] && mode=hit
    c0=$(edge_counters "${URL[e2]}")
    t0=$(bench_cpu_ticks "${PID[e2]}")
    # shellcheck disable=SC2046
    if ! EDGE_MODE=$mode EDGE_PREFIX=miss- EDGE_START=$start EDGE_COUNT=$count EDGE_EXACT=$exact \
        EDGE_KEY=hit-0000000000 \
        bench_run_bg timeout $((MISS_DURATION + 30)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t1 -c"$conns" -d"${MISS_DURATION}s" --timeout 5s --latency -s "$LUA" "${URL[e2]}" >"$raw" 2>&1; then
        cat "$raw" >&2
        die "wrk failed ($kind, $conns connections)"
    fi
    t1=$(bench_cpu_ticks "${PID[e2]}")
    c1=$(edge_counters "${URL[e2]}")
    { echo "### miss: $kind, $conns connections, round $round"; cat "$raw"; echo; } >>"$RAW"
    edge_kv_check "$raw" "miss: $kind c$conns round $round"
    stats=$($STATS parse "$raw")
    local h0 m0 f0 h1 m1 f1
    read -r h0 m0 f0 _ <<<"$c0"
    read -r h1 m1 f1 _ <<<"$c1"
    echo "$kind $conns $round $stats $(cpu_s $((t1 - t0))) $((h1 - h0)) $((m1 - m0)) $((f1 - f0))" >>"$BENCH_WORK/miss.tsv"
    local rps p50 p99
    read -r rps p50 p99 _ <<<"$stats"
    log "miss round $round: $(printf '%-4s' "$kind") c$conns $(printf '%6.0f' "$rps") req/s  p50 $p50 ms  p99 $p99 ms  (edge hits +$((h1 - h0)), misses +$((m1 - m0)))"
}

scenario_miss() {
    # Keys for the miss runs, written through the primary: per run enough for MISS_DURATION
    # seconds at a generous rate (15k/s sequential, 40k/s concurrent; a read past them would
    # be a miss of an absent key: counted and flagged).
    local n1=$((MISS_DURATION * 15000)) nc=$((MISS_DURATION * 40000)) secs ms r kind
    local total=$((MISS_ROUNDS * (n1 + nc)))
    secs=$($PROBE bulk "${URL[p1]}" "$NS" miss- 0 "$total") || die "miss: bulk write failed"
    $PROBE bulk "${URL[p1]}" "$NS" hit- 0 1 >/dev/null || die "miss: bulk write failed"
    ms=$($PROBE synced 60 "${URL[p1]}" "${URL[r1]}" "${URL[r2]}" "${URL[e1]}" "${URL[e2]}" "${URL[e3]}") ||
        die "miss: the keys did not reach every node within 60 s ($ms)"
    log "miss: $((total + 1)) keys written through the primary in ${secs}s, on every node $(cut -d' ' -f1 <<<"$ms") ms later"
    # the hit key: read once through e2 so it is cached
    local code
    code=$(bench_edgekv_get "${URL[e2]}" "$NS" hit-0000000000 "$BENCH_WORK/get.out")
    [ "$code" = 200 ] || die "miss: GET hit-0000000000 through e2: HTTP $code"
    : >"$BENCH_WORK/miss.tsv"
    # as in get: client and edge on different CPUs (sequential latency depends a lot on whether
    # they share one); the replicas answering the misses are not pinned
    if [ -n "$SERVER_CPU" ]; then
        taskset -a -p -c "$SERVER_CPU" "${PID[e2]}" >/dev/null 2>&1 || true
    fi
    log "miss: through e2, $MISS_ROUNDS rounds x (hit c1, miss c1, hit c$MISS_CONNS, miss c$MISS_CONNS) x ${MISS_DURATION}s, order rotating"
    for r in $(seq 1 "$MISS_ROUNDS"); do
        for kind in $(rotate "$((r - 1))" hit1 miss1 hitc missc); do
            case "$kind" in
                hit1) run_lat hit 1 "$r" 0 0 ;;
                miss1) run_lat miss 1 "$r" $(((r - 1) * n1)) "$n1" ;;
                hitc) run_lat hit "$MISS_CONNS" "$r" 0 0 ;;
                missc) run_lat miss "$MISS_CONNS" "$r" $((MISS_ROUNDS * n1 + (r - 1) * nc)) "$nc" ;;
            esac
        done
    done
    if [ -n "$SERVER_CPU" ]; then
        taskset -a -p -c "0-$(($(nproc) - 1))" "${PID[e2]}" >/dev/null 2>&1 || true
    fi
    python3 - "$BENCH_WORK/miss.tsv" "$MISS_CONNS" <<'PY' | tee -a "$OUT"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) < 13:
        continue
    rows.setdefault((p[0], int(p[1])), []).append({
        "rps": float(p[3]), "p50": float(p[4]), "p99": float(p[5]), "req": int(p[6]),
        "bad": int(p[7]) + int(p[8]), "cpu": float(p[9]), "hits": int(p[10]), "misses": int(p[11]),
        "fetches": int(p[12])})
conns = [1, int(sys.argv[2])]
med = {}
print("\n== miss: GETs through edge e2 of keys it has not cached (each key read once), next to cache hits ==")
hdr = (f'{"kind":<5} {"conns":>5} {"runs":>4} {"requests":>9} {"req/s":>8} {"p50 ms":>7} {"p99 ms":>7} '
       f'{"p99 range":>13} {"edge hits":>10} {"misses":>8} {"fetches":>8} {"CPU us/req":>10} {"errors":>6}')
print(hdr)
print("-" * len(hdr))
for c in conns:
    for kind in ("hit", "miss"):
        rs = rows.get((kind, c), [])
        if not rs:
            continue
        req = sum(r["req"] for r in rs)
        m = {"rps": statistics.median(r["rps"] for r in rs), "p50": statistics.median(r["p50"] for r in rs),
             "p99": statistics.median(r["p99"] for r in rs)}
        med[(kind, c)] = m
        rng = f'{min(r["p99"] for r in rs):.2f}..{max(r["p99"] for r in rs):.2f}'
        cpu = sum(r["cpu"] for r in rs) * 1e6 / req if req else float("nan")
        print(f'{kind:<5} {c:>5} {len(rs):>4} {req:>9} {m["rps"]:>8.0f} {m["p50"]:>7.3f} {m["p99"]:>7.3f} '
              f'{rng:>13} {sum(r["hits"] for r in rs):>10} {sum(r["misses"] for r in rs):>8} '
              f'{sum(r["fetches"] for r in rs):>8} {cpu:>10.1f} {sum(r["bad"] for r in rs):>6}')
print()
kv = ["scenario=edge_miss"]
for c in conns:
    h, m = med.get(("hit", c)), med.get(("miss", c))
    if h and m:
        print(f'  c{c}: miss/hit p50 {m["p50"] / h["p50"]:.1f}x ({m["p50"]:.3f} vs {h["p50"]:.3f} ms), '
              f'p99 {m["p99"] / h["p99"]:.1f}x ({m["p99"]:.3f} vs {h["p99"]:.3f} ms)')
    for kind, x in (("hit", h), ("miss", m)):
        if x:
            kv += [f'{kind}_c{c}_p50_ms={x["p50"]:.3f}', f'{kind}_c{c}_p99_ms={x["p99"]:.3f}',
                   f'{kind}_c{c}_rps={x["rps"]:.0f}']
print("  p50, p99, req/s: medians over the runs (p99 range: min..max of the runs). CPU us/req: the edge")
print("  process only (the replica answering a miss works too); fetches: value fetches the edge sent")
print("  upstream (a miss of a key read once is exactly one fetch). At c1 the CPU per request includes")
print("  the edge's wake-ups (it idles between requests).")
print()
print("BENCH " + " ".join(kv))
PY
    # sanity: a miss run must miss on (nearly) every request, a hit run never
    awk '$1 == "miss" && $12 < $7 * 0.99 { printf "miss c%d round %d: only %d misses for %d requests\n", $2, $3, $12, $7 }
         $1 == "hit" && $12 > 1 { printf "hit c%d round %d: %d misses\n", $2, $3, $12 }' "$BENCH_WORK/miss.tsv" |
        while read -r l; do say "  NOTE: $l"; done
}

has get && scenario_get
has conv && scenario_conv
has miss && scenario_miss

# --- the end: every node holds the same data ------------------------------------------------
ms=$($PROBE synced 60 "${URL[p1]}" "${URL[r1]}" "${URL[r2]}" "${URL[e1]}" "${URL[e2]}" "${URL[e3]}") ||
    WRONG+=("end: not every node applied the primary's last seq within 60 s ($ms)")
sums=""
for n in p1 r1 r2; do
    s=$(curl -s --max-time 60 -H "Authorization: Bearer $EKV_OPERATOR_TOKEN" "${URL[$n]}/_edgekv/replication/checksum" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(r["checksum"], r["keys"], r["last_seq"])' 2>/dev/null || echo "? ? ?")
    sums+="$n $s; "
    [ "$n" = p1 ] && p_sum=$s
    [ "$s" = "$p_sum" ] || WRONG+=("end: $n checksum/keys/last_seq ($s) differ from the primary's ($p_sum)")
done
say "checksums (checksum keys last_seq): ${sums%; }"
for n in e1 e2 e3; do
    { echo "### $n /metrics at the end"; curl -s --max-time 5 "${URL[$n]}/metrics" | grep -E '^edgekv_(edge|repl)_'; echo; } >>"$RAW"
done
for n in e3 e2 e1 r2 r1 p1; do bench_stop "${PID[$n]}"; done

if [ ${#WRONG[@]} -gt 0 ]; then
    say "CORRECTNESS: FAILED"
    for w in "${WRONG[@]}"; do say "  $w"; done
else
    say "correctness: every answer checked equals what was written; replicas' checksums equal the primary's"
fi
say "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine widens the spread; re-run when it is quiet)"
say "results: ${OUT#"$REPO_DIR"/} (raw: ${RAW#"$REPO_DIR"/})"
[ ${#WRONG[@]} -eq 0 ] || exit 1
