#!/usr/bin/env bash
# shellcheck disable=SC2015  # "cond && cond || die" is meant
# bench/perf.sh - where does edgekv spend its time under the bench load?
#
# Usage: bench/perf.sh [get|put]      (default get; about 30 s)
# Runs the same load as bench/run.sh against edgekv alone and records:
#   1. perf record (cpu-clock, all edgekv threads, DWARF call graphs) -> flat + caller reports
#      (falls back to valgrind --tool=callgrind under a lighter load when perf cannot record);
#   2. strace -c -f: syscalls per request type (how many syscalls a request costs);
#   3. edgekv /metrics counters before/after (cache hits, commit batches, fsyncs).
# Env: DURATION=8 (seconds of load per step) CONNS=64 THREADS=1 PIN=1 EDGEKV_BIN=... KEEP=1
#      PERF_CALLGRAPH=dwarf (or fp, lbr, none)  PERF_FREQ=999  STRACE=1 (0 to skip step 2)
# Output: bench/results/<timestamp>-perf-<mode>.txt
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

MODE=${1:-get}
case "$MODE" in get|put) ;; *) die "usage: bench/perf.sh [get|put]" ;; esac
DURATION=${DURATION:-8}; DURATION=${DURATION%s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
PIN=${PIN:-1}
PERF_CALLGRAPH=${PERF_CALLGRAPH:-dwarf}
PERF_FREQ=${PERF_FREQ:-999}
STRACE=${STRACE:-1}
VALUE_SIZE=100

bench_install_trap
bench_need wrk:wrk curl:curl python3:python3
bench_mkwork
bench_build_edgekv

CLIENT_CPU=""; SERVER_CPU=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    CLIENT_CPU=0
    [ "$MODE" = get ] && SERVER_CPU=1   # as in run.sh: GET server pinned, PUT server not
fi

TS=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$BENCH_DIR/results"
OUT="$BENCH_DIR/results/$TS-perf-$MODE.txt"
: >"$OUT"
say() { printf '%s\n' "$*" | tee -a "$OUT"; }

read -r port <<<"$(bench_free_ports 1)"
bench_start_edgekv edgekv "$SERVER_CPU" "$BENCH_WORK/edgekv-data" "$port"
ns=$(bench_edgekv_namespace "$EKV_URL" bench)
printf '%0*d' "$VALUE_SIZE" 0 >"$BENCH_WORK/v100"
bench_edgekv_put "$EKV_URL" "$ns" bench-get "$BENCH_WORK/v100"
[ "$(bench_edgekv_get "$EKV_URL" "$ns" bench-get /dev/null)" = 200 ] || die "GET after PUT failed"

values="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$ns/values/"
export EDGEKV_BENCH_VALUES=$values EDGEKV_BENCH_TOKEN=$EKV_TOKEN BENCH_VALUE_SIZE=$VALUE_SIZE
if [ "$MODE" = get ]; then
    WRK_TARGET=(-H "Authorization: Bearer $EKV_TOKEN" "$EKV_URL${values}bench-get")
else
    WRK_TARGET=(-s "$BENCH_DIR/lua/edgekv_put.lua" "$EKV_URL")
fi

# load SECONDS LABEL [extra wrk args] - run wrk in the background, sets LOAD_PID
load() {
    local secs=$1 label=$2; shift 2
    export BENCH_PREFIX="$label"
    timeout $((secs + 30)) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s --latency "$@" "${WRK_TARGET[@]}" \
        >"$BENCH_WORK/wrk-$label.txt" 2>&1 &
    LOAD_PID=$!
}
wrk_summary() {
    python3 "$BENCH_DIR/lib/wrkstats.py" parse "$BENCH_WORK/wrk-$1.txt" |
        awk '{printf "%.0f req/s, p50 %.2f ms, p99 %.2f ms, %d requests, non-2xx %d, socket errors %d\n", $1, $2, $3, $4, $5, $6}'
}
metrics() {
    curl -s --max-time 5 "$EKV_URL/metrics" | grep -v '^#' |
        grep -Ei 'cache|commit|fsync|sync|reader|queue|http_requests_total' | head -60 || true
}

say "edgekv perf  $TS  mode=$MODE  load: wrk -t$THREADS -c$CONNS -d${DURATION}s${CLIENT_CPU:+ (client cpu $CLIENT_CPU${SERVER_CPU:+, server cpu $SERVER_CPU})}"
say "binary: $EDGEKV_BIN"
metrics >"$BENCH_WORK/metrics-before.txt"

# warm-up
load 2 warm; wait "$LOAD_PID" || die "wrk warm-up failed"

# --- 1. perf record, or callgrind -------------------------------------------------------------
perf_ok=0
if command -v perf >/dev/null 2>&1 && perf record -e cpu-clock -o "$BENCH_WORK/probe.data" -- true >/dev/null 2>&1; then
    perf_ok=1
fi
if [ "$perf_ok" = 1 ]; then
    cg=(); [ "$PERF_CALLGRAPH" != none ] && cg=(--call-graph "$PERF_CALLGRAPH")
    load "$DURATION" perf
    sleep 0.5
    perf record -e cpu-clock -F "$PERF_FREQ" "${cg[@]}" -p "$EKV_PID" -o "$BENCH_WORK/perf.data" \
        -- sleep $((DURATION > 2 ? DURATION - 1 : 1)) >"$BENCH_WORK/perf-record.log" 2>&1 ||
        { cat "$BENCH_WORK/perf-record.log" >&2; die "perf record failed"; }
    wait "$LOAD_PID" || die "wrk failed"
    say ""
    say "== load during perf record: $(wrk_summary perf)"
    say ""
    say "== perf: per thread (comm) =="
    perf report -i "$BENCH_WORK/perf.data" --stdio --no-children --sort comm --percent-limit 1 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -20 | tee -a "$OUT"
    say ""
    say "== perf: flat profile, self time by symbol (top 45) =="
    perf report -i "$BENCH_WORK/perf.data" --stdio --no-children --sort dso,sym -g none --percent-limit 0.4 2>/dev/null |
        grep -v '^#' | grep -v '^$' | head -45 | tee -a "$OUT"
    if [ "$PERF_CALLGRAPH" != none ]; then
        say ""
        say "== perf: inclusive time (children) by symbol, top 40 =="
        perf report -i "$BENCH_WORK/perf.data" --stdio --children --sort sym -g none --percent-limit 2 2>/dev/null |
            grep -v '^#' | grep -v '^$' | head -40 | tee -a "$OUT"
        perf report -i "$BENCH_WORK/perf.data" --stdio --no-children --sort sym -g caller,0.5,callee --percent-limit 3 \
            >"$BENCH_WORK/perf-callgraph.txt" 2>/dev/null || true
        say ""
        say "== perf: call graphs of the hottest symbols (first 120 lines) =="
        grep -v '^#' "$BENCH_WORK/perf-callgraph.txt" | grep -v '^$' | head -120 | tee -a "$OUT"
    fi
else
    say "perf cannot record here: profiling with callgrind (4 connections, slow by design)"
    bench_need valgrind:valgrind
    bench_stop "$EKV_PID"
    read -r port <<<"$(bench_free_ports 1)"
    EDGEKV_ACCOUNT_ID=$EKV_ACCOUNT EDGEKV_ROOT_TOKEN=$EKV_TOKEN \
        bench_start edgekv-cg "" "$BENCH_WORK/edgekv-cg.log" valgrind --tool=callgrind \
        --callgrind-out-file="$BENCH_WORK/callgrind.out" "$EDGEKV_BIN" serve \
        --listen "127.0.0.1:$port" --data-dir "$BENCH_WORK/edgekv-data"
    EKV_PID=$BENCH_LAST_PID; EKV_URL="http://127.0.0.1:$port"
    bench_wait_http "$EKV_URL/healthz" "$EKV_PID" 120 || die "edgekv under valgrind did not start"
    bench_edgekv_get "$EKV_URL" "$ns" bench-get /dev/null >/dev/null
    CONNS=4 THREADS=1 load "$DURATION" callgrind
    wait "$LOAD_PID" || true
    bench_stop "$EKV_PID"
    say "== load under callgrind: $(wrk_summary callgrind)"
    callgrind_annotate --inclusive=no "$BENCH_WORK/callgrind.out" 2>/dev/null | head -60 | tee -a "$OUT"
    exit 0
fi

# --- 2. syscalls per request ------------------------------------------------------------------
if [ "$STRACE" = 1 ] && command -v strace >/dev/null 2>&1; then
    secs=$((DURATION > 4 ? 4 : DURATION))
    # strace spans the whole load, so syscalls/request = total calls / requests answered
    timeout $((secs + 20)) strace -c -f -p "$EKV_PID" -o "$BENCH_WORK/strace.txt" 2>/dev/null &
    st_pid=$!
    sleep 0.5
    load "$secs" strace
    wait "$LOAD_PID" || true
    kill -INT "$st_pid" 2>/dev/null || true
    wait "$st_pid" 2>/dev/null || true
    reqs=$(python3 "$BENCH_DIR/lib/wrkstats.py" parse "$BENCH_WORK/wrk-strace.txt" | awk '{print $4}')
    say ""
    say "== strace -c -f (slows the server a lot; read the counts, not the times) =="
    say "   load under strace: $(wrk_summary strace)"
    head -25 "$BENCH_WORK/strace.txt" | tee -a "$OUT"
    calls=$(awk '$NF=="total"{print $(NF-2)}' "$BENCH_WORK/strace.txt" | head -1)
    if [ -n "$calls" ] && [ "${reqs:-0}" -gt 0 ]; then
        say "   ~$(awk -v c="$calls" -v r="$reqs" 'BEGIN{printf "%.2f", c/r}') syscalls per request (all threads)"
    fi
fi

# --- 3. counters --------------------------------------------------------------------------------
say ""
say "== edgekv /metrics (selected), after the runs =="
metrics | tee -a "$OUT"
say ""
say "report: ${OUT#"$REPO_DIR"/}"
