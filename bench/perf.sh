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
#      PERF_CALLGRAPH=dwarf (or fp, lbr, none)  PERF_FREQ=1999  STRACE=1 (0 to skip step 2)
#      PROFILER=callgrind (force the valgrind fallback)  NICE=-10 (default as root, as run.sh)
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
PERF_FREQ=${PERF_FREQ:-1999}
STRACE=${STRACE:-1}
PROFILER=${PROFILER:-auto}
if [ -z "${NICE:-}" ]; then
    NICE=0; [ "$(id -u)" -eq 0 ] && NICE=-10
fi
export NICE
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

read -r port <<<"$(bench_free_ports 1)"
bench_start_edgekv edgekv "$SERVER_CPU" "$BENCH_WORK/edgekv-data" "$port"
ns=$(bench_edgekv_namespace "$EKV_URL" bench)
printf '%0*d' "$VALUE_SIZE" 0 >"$BENCH_WORK/v100"
bench_edgekv_put "$EKV_URL" "$ns" bench-get "$BENCH_WORK/v100"
[ "$(bench_edgekv_get "$EKV_URL" "$ns" bench-get /dev/null)" = 200 ] || die "GET after PUT failed"

values="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$ns/values/"
export EDGEKV_BENCH_VALUES=$values EDGEKV_BENCH_TOKEN=$EKV_TOKEN BENCH_VALUE_SIZE=$VALUE_SIZE
# the wrk target for the current EKV_URL (it changes when edgekv restarts under valgrind)
set_target() {
    if [ "$MODE" = get ]; then
        WRK_TARGET=(-H "Authorization: Bearer $EKV_TOKEN" "$EKV_URL${values}bench-get")
    else
        WRK_TARGET=(-s "$BENCH_DIR/lua/edgekv_put.lua" "$EKV_URL")
    fi
}
set_target

# load SECONDS LABEL [extra wrk args] - run wrk in the background, sets LOAD_PID
load() {
    local secs=$1 label=$2; shift 2
    export BENCH_PREFIX="$label"
    # shellcheck disable=SC2046
    timeout $((secs + 30)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s --latency "$@" "${WRK_TARGET[@]}" \
        >"$BENCH_WORK/wrk-$label.txt" 2>&1 &
    LOAD_PID=$!
    BENCH_PIDS+=("$LOAD_PID")   # stopped by the cleanup trap if we are interrupted
}
wrk_summary() {
    python3 "$BENCH_DIR/lib/wrkstats.py" parse "$BENCH_WORK/wrk-$1.txt" |
        awk '{printf "%.0f req/s, p50 %.2f ms, p99 %.2f ms, %d requests, non-2xx %d, socket errors %d\n", $1, $2, $3, $4, $5, $6}'
}
metrics() {
    curl -s --max-time 5 "$EKV_URL/metrics" >"$BENCH_WORK/metrics.txt" || true
    awk '!/^#/ && tolower($0) ~ /cache|commit|fsync|sync|reader|queue|http_requests_total/ && n++ < 60' \
        "$BENCH_WORK/metrics.txt"
}

say "edgekv perf  $TS  mode=$MODE  load: wrk -t$THREADS -c$CONNS -d${DURATION}s${CLIENT_CPU:+ (client cpu $CLIENT_CPU${SERVER_CPU:+, server cpu $SERVER_CPU})}"
say "binary: $EDGEKV_BIN"
metrics >"$BENCH_WORK/metrics-before.txt"

# warm-up
# load_wait - wait for the current load; its status
load_wait() {
    local rc=0
    wait "$LOAD_PID" || rc=$?
    bench_forget "$LOAD_PID"
    return "$rc"
}

load 2 warm; load_wait || die "wrk warm-up failed"

# --- 1. perf record, or callgrind -------------------------------------------------------------
perf_ok=0
if [ "$PROFILER" != callgrind ] && command -v perf >/dev/null 2>&1 && perf record -e cpu-clock -o "$BENCH_WORK/probe.data" -- true >/dev/null 2>&1; then
    perf_ok=1
fi
if [ "$perf_ok" = 1 ]; then
    cg=(); [ "$PERF_CALLGRAPH" != none ] && cg=(--call-graph "$PERF_CALLGRAPH")
    load "$DURATION" perf
    sleep 0.5
    perf record -e cpu-clock -F "$PERF_FREQ" "${cg[@]}" -p "$EKV_PID" -o "$BENCH_WORK/perf.data" \
        -- sleep $((DURATION > 2 ? DURATION - 1 : 1)) >"$BENCH_WORK/perf-record.log" 2>&1 ||
        { cat "$BENCH_WORK/perf-record.log" >&2; die "perf record failed"; }
    load_wait || die "wrk failed"
    say ""
    say "== load during perf record: $(wrk_summary perf)"
    # section TITLE MAXLINES perf-report-args... (via a file: no SIGPIPE under pipefail)
    section() {
        local title=$1 max=$2; shift 2
        perf report -i "$BENCH_WORK/perf.data" --stdio "$@" >"$BENCH_WORK/report.txt" 2>/dev/null || true
        say ""
        say "== perf: $title =="
        awk -v max="$max" 'NF && !/^#/ && n++ < max' "$BENCH_WORK/report.txt" | tee -a "$OUT"
    }
    section "CPU by thread" 20 --no-children --sort pid -g none --percent-limit 1
    section "CPU by binary (kernel = syscalls + TCP stack)" 12 --no-children --sort dso -g none --percent-limit 0.5
    section "flat profile, self time by symbol" 40 --no-children --sort dso,sym -g none --percent-limit 0.4
    say ""
    say "== perf: user space only (edgekv, libc, libuv, rocksdb...), self time by symbol =="
    perf report -i "$BENCH_WORK/perf.data" --stdio --no-children --sort dso,sym -g none 2>/dev/null |
        awk '!/^#/ && NF && !/\[k\]/ && n++ < 30' | tee -a "$OUT" || true
    if [ "$PERF_CALLGRAPH" != none ]; then
        section "inclusive time (self + callees) by symbol" 30 --children --sort sym -g none --percent-limit 2
        say ""
        say "== perf: inclusive time of user-space functions (what each step of a request costs) =="
        perf report -i "$BENCH_WORK/perf.data" --stdio --children --sort sym -g none --percent-limit 0.5 2>/dev/null |
            awk '!/^#/ && NF && !/\[k\]/ && !/\] 0x[0-9a-f]+ *$/ && n++ < 45' | tee -a "$OUT" || true
        section "call graphs of the hottest symbols (callers)" 150 --no-children --sort sym \
            -g caller,0.5,callee,function,percent --percent-limit 3
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
    set_target
    bench_edgekv_get "$EKV_URL" "$ns" bench-get /dev/null >/dev/null
    CONNS=4 THREADS=1 load "$DURATION" callgrind
    load_wait || true
    bench_stop "$EKV_PID"
    say "== load under callgrind: $(wrk_summary callgrind)"
    callgrind_annotate --inclusive=no "$BENCH_WORK/callgrind.out" >"$BENCH_WORK/cg.txt" 2>/dev/null || true
    awk 'n++ < 60' "$BENCH_WORK/cg.txt" | tee -a "$OUT"
    exit 0
fi

# --- 2. syscalls per request ------------------------------------------------------------------
if [ "$STRACE" = 1 ] && command -v strace >/dev/null 2>&1; then
    secs=$((DURATION > 4 ? 4 : DURATION))
    # strace spans the whole load, so syscalls/request = total calls / requests answered
    timeout $((secs + 20)) strace -c -f -p "$EKV_PID" -o "$BENCH_WORK/strace.txt" 2>/dev/null &
    st_pid=$!
    BENCH_PIDS+=("$st_pid")
    sleep 0.5
    load "$secs" strace
    load_wait || true
    kill -INT "$st_pid" 2>/dev/null || true
    wait "$st_pid" 2>/dev/null || true
    bench_forget "$st_pid"
    reqs=$(python3 "$BENCH_DIR/lib/wrkstats.py" parse "$BENCH_WORK/wrk-strace.txt" | awk '{print $4}')
    say ""
    say "== strace -c -f (slows the server a lot; read the counts, not the times) =="
    say "   load under strace: $(wrk_summary strace)"
    awk 'n++ < 25' "$BENCH_WORK/strace.txt" | tee -a "$OUT"
    calls=$(awk '$NF=="total"{print $4; exit}' "$BENCH_WORK/strace.txt")
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
