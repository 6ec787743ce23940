#!/usr/bin/env bash
# shellcheck disable=SC2015  # "cond && cond || die" is meant
# bench/scale.sh - how edgekv's cost grows with the data and with the clients (one standalone
# server per part, 127.0.0.1 only). Four parts (PHASES, default all):
#
#   data     per data set size (SIZES): bulk load time; hot GET (one cached key) vs random GET
#            (a uniformly random key of the N) in alternating rounds, their ratio and p99;
#            random PUTs (overwrites); the GETs again after the PUTs; list pages of 1000 keys;
#            server RSS after every step, data dir size and bytes on disk per key
#   restart  time from process start to /healthz 200 after (a) a clean SIGTERM, (b) SIGTERM
#            after RESTART_PUT_S s of random PUTs, (c) SIGKILL in the middle of a write load,
#            every write acknowledged before the kill read back (acked N, lost M); WAL size
#            before each restart
#   idle     10,000 idle keep-alive connections: server RSS before / with / after closing them
#            (sampled every second for 60 s), hot GET with them open vs without
#   burst    10,000 connects at once: time until all are established, per-connection connect
#            time (p50/p99/max, SYN retries), then one GET /healthz on each (count of 200s)
#
# Usage: bench/scale.sh            (about 12-14 minutes with the defaults)
#        PHASES=idle bench/scale.sh
#        SIZES="10000 200000" ROUNDS=1 DURATION=2 WARM_S=2 PUT_S=3 RESTART_PUT_S=5 \
#            IDLE_CONNS=2000 BURST_CONNS=2000 bench/scale.sh        (a quick check, ~3 min)
# Env:   SIZES="10000 1000000 5000000"  data set sizes (keys k%08d, 100-byte values)
#        PHASES=data,restart,idle,burst  which parts
#        ROUNDS=5 DURATION=5  measured rounds x seconds per scenario (hot/random alternating;
#                             5 like the other benches: a median of 3 moved with one noisy round)
#        CONNS=64 THREADS=1   wrk connections and threads (wrk -t1 -c64 as in the issue)
#        SETTLE_MAX_S=120     data: after the load, wait at most this long for the store's
#                             compactions to end (the time waited is reported)
#        WARM_S=10            unrecorded random-GET warm-up before the first rounds of a size
#        PUT_S=10             seconds of random PUTs (data)
#        LOAD_CONNS=4         bulk write requests in flight while loading
#        RESTART_KEYS=1000000 keys of the restart part's own data set
#        RESTART_PUT_S=30     seconds of random PUTs before restart (b)
#        WRITER_S=20 WRITER_CONNS=48 KILL_AT=10   restart (c): writer run time, connections,
#                             second of the writer's run at which the server is SIGKILLed
#        RESTART_TARGET_MS=2000   restart check (informational)
#        IDLE_CONNS=10000 IDLE_SAMPLE_S=60    idle connections; RSS sampling after closing
#        BURST_CONNS=10000 BURST_RUNS=3       connect burst size and runs (median reported)
#        WARMUP=2             idle: unrecorded hot-GET run before the rounds
#        PIN=1                wrk and the Python clients on CPU 0 (servers are not pinned)
#        NICE=-10             servers and clients at this nice level (default -10 as root)
#        EDGEKV_BIN=path      use this binary instead of building build/edgekv
#        KEEP=1               keep the temp dir (logs, data dirs; the 5M data dir is ~1-2 GB)
# Output: tables per part and a summary with PASS/FAIL lines (informational) at the end, also
#         in bench/results/<ts>-scale.txt (raw wrk outputs and details in <ts>-scale.raw.txt).
#         Exit status 1 when something broke: a lost or wrong acknowledged write, a server that
#         died, a refused load request. The PASS/FAIL checks never change the exit status.
# See bench/README.md ("Scaling: bench/scale.sh").
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

ROUNDS=${ROUNDS:-5}
bench_params
SIZES=${SIZES:-"10000 1000000 5000000"}
PHASES=${PHASES:-data,restart,idle,burst}
WARM_S=${WARM_S:-10}; WARM_S=${WARM_S%s}
SETTLE_MAX_S=${SETTLE_MAX_S:-120}; SETTLE_MAX_S=${SETTLE_MAX_S%s}
PUT_S=${PUT_S:-10}; PUT_S=${PUT_S%s}
LOAD_CONNS=${LOAD_CONNS:-4}
RESTART_KEYS=${RESTART_KEYS:-1000000}
RESTART_PUT_S=${RESTART_PUT_S:-30}; RESTART_PUT_S=${RESTART_PUT_S%s}
WRITER_S=${WRITER_S:-20}
WRITER_CONNS=${WRITER_CONNS:-48}
KILL_AT=${KILL_AT:-10}
RESTART_TARGET_MS=${RESTART_TARGET_MS:-2000}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SAMPLE_S=${IDLE_SAMPLE_S:-60}
BURST_CONNS=${BURST_CONNS:-10000}
BURST_RUNS=${BURST_RUNS:-3}
for v in WARM_S SETTLE_MAX_S PUT_S LOAD_CONNS RESTART_KEYS RESTART_PUT_S WRITER_S WRITER_CONNS KILL_AT \
    RESTART_TARGET_MS IDLE_CONNS IDLE_SAMPLE_S BURST_CONNS BURST_RUNS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a non-negative integer (got '${!v}')"
done
for n in $SIZES; do
    [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1000 ] && [ "$n" -le 99999999 ] ||
        die "SIZES: every size must be an integer in 1000..99999999 (got '$n')"
done
[ "$RESTART_KEYS" -ge 1000 ] && [ "$RESTART_KEYS" -le 99999999 ] || die "RESTART_KEYS must be in 1000..99999999"
[ "$KILL_AT" -ge 1 ] && [ "$KILL_AT" -lt "$WRITER_S" ] || die "need 1 <= KILL_AT < WRITER_S"
[ "$PUT_S" -ge 1 ] && [ "$IDLE_CONNS" -ge 1 ] && [ "$BURST_CONNS" -ge 1 ] && [ "$BURST_RUNS" -ge 1 ] ||
    die "PUT_S, IDLE_CONNS, BURST_CONNS and BURST_RUNS must be >= 1"
[[ ,$PHASES, =~ ,(data|restart|idle|burst), ]] || die "PHASES must name data, restart, idle and/or burst (got '$PHASES')"
has() { [[ ,$PHASES, == *,$1,* ]]; }

KEEP=${KEEP:-0}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
LIB="$BENCH_DIR/lib"
LUA="$BENCH_DIR/lua"
CLK_TCK=$(getconf CLK_TCK)
VALUE_SIZE=100

# Open files: both sides of the idle and burst parts hold one fd per connection (each its own
# process, so each needs ~N + a few hundred). Raised to >= 30000 when the hard limit allows it
# (root without CAP_SYS_RESOURCE cannot raise the hard limit: then the hard limit it is).
need_fd=0
has idle && [ "$IDLE_CONNS" -gt "$need_fd" ] && need_fd=$IDLE_CONNS
has burst && [ "$BURST_CONNS" -gt "$need_fd" ] && need_fd=$BURST_CONNS
want_fd=$((need_fd + 2000)); [ "$want_fd" -lt 30000 ] && want_fd=30000
FD_NOTE=""
if ! ulimit -n "$want_fd" 2>/dev/null; then
    hard=$(ulimit -Hn)
    if [ "$hard" != unlimited ] && [ "$hard" -lt "$want_fd" ]; then
        ulimit -Sn "$hard" 2>/dev/null || true
        FD_NOTE=" (wanted $want_fd: the hard limit is $hard and cannot be raised here)"
    fi
fi
NOFILE=$(ulimit -n)
if [ "$NOFILE" != unlimited ] && [ "$need_fd" -gt 0 ] && [ "$NOFILE" -lt $((need_fd + 500)) ]; then
    die "open-file limit $NOFILE is too low for $need_fd connections (each side needs ~N + 500)$FD_NOTE"
fi

bench_install_trap
bench_need wrk:wrk curl:curl
bench_mkwork

CLIENT_CPU=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    CLIENT_CPU=0
fi
CLIENT_PREFIX=()   # nice and taskset for the clients (wrk, Python)
read -r -a CLIENT_PREFIX <<<"$(bench_nice_prefix) ${CLIENT_CPU:+taskset -c $CLIENT_CPU}"

bench_results "-scale"
bench_build_edgekv
FACTS="$BENCH_WORK/facts.tsv"; : >"$FACTS"
REPORT=("$PY" "$LIB/scale_report.py")
export SCALE_ACCOUNT=$EKV_ACCOUNT SCALE_TOKEN=$EKV_TOKEN
BROKEN=()   # things that broke (lost writes, refused requests): exit 1 at the end

# --- header ---------------------------------------------------------------------------------
max_size=0
for n in $SIZES; do [ "$n" -gt "$max_size" ] && max_size=$n; done
est=10
if has data; then
    for n in $SIZES; do
        est=$((est + n / 90000 + n / 500000 + WARM_S + 2 * 2 * ROUNDS * (DURATION + 1) + PUT_S + 2 + ROUNDS * (DURATION + 1) + 8))
    done
fi
has restart && est=$((est + RESTART_KEYS / 90000 + RESTART_PUT_S + WRITER_S + 20))
has idle && est=$((est + WARMUP + 3 * ROUNDS * (DURATION + 1) + IDLE_SAMPLE_S + IDLE_CONNS / 2000 + 10))
has burst && est=$((est + BURST_RUNS * (3 + BURST_CONNS / 2000) + 5))
avail_kb=$(df -Pk "$BENCH_WORK" | awk 'NR==2{print $4}')
say "edgekv scale bench  $TS"
say "machine: $(nproc) cpus, $(uname -sr), $(awk '/MemTotal/{printf "%.1f GiB RAM", $2/1048576}' /proc/meminfo), work dir on $(df -P "$BENCH_WORK" | awk 'NR==2{print $1}') ($((avail_kb / 1048576)) GiB free), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "edgekv:  $EDGEKV_BIN (commit $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo none))"
say "tools:   wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}' || true), $($PY --version 2>&1)"
say "kernel:  net.core.somaxconn=$(cat /proc/sys/net/core/somaxconn) net.ipv4.tcp_max_syn_backlog=$(cat /proc/sys/net/ipv4/tcp_max_syn_backlog) tcp_syncookies=$(cat /proc/sys/net/ipv4/tcp_syncookies) ip_local_port_range=$(tr '\t' '-' </proc/sys/net/ipv4/ip_local_port_range) tcp_tw_reuse=$(cat /proc/sys/net/ipv4/tcp_tw_reuse); open files $NOFILE$FD_NOTE"
say "params:  PHASES=$PHASES SIZES=\"$SIZES\" ROUNDS=$ROUNDS DURATION=${DURATION}s CONNS=$CONNS THREADS=$THREADS WARM_S=${WARM_S}s PUT_S=${PUT_S}s LOAD_CONNS=$LOAD_CONNS value=${VALUE_SIZE}B NICE=${NICE:-0} pin=$([ -n "$CLIENT_CPU" ] && echo "clients cpu $CLIENT_CPU, servers unpinned" || echo off)"
say "         RESTART_KEYS=$RESTART_KEYS RESTART_PUT_S=${RESTART_PUT_S}s WRITER_S=${WRITER_S}s WRITER_CONNS=$WRITER_CONNS KILL_AT=${KILL_AT}s IDLE_CONNS=$IDLE_CONNS IDLE_SAMPLE_S=${IDLE_SAMPLE_S}s BURST_CONNS=$BURST_CONNS BURST_RUNS=$BURST_RUNS"
log "expected run time ~$((est / 60)) min $((est % 60)) s"

if has data; then
    # ~150 B/key of SST + up to 512 MiB of WAL (max_total_wal_size) + the PUT phase's
    # overwrites; one data set at a time (each is deleted after its part unless KEEP=1).
    need_kb=$((max_size * 400 / 1024 + 1024 * 1024))
    if [ "$KEEP" = 1 ]; then
        need_kb=0
        for n in $SIZES; do need_kb=$((need_kb + n * 400 / 1024 + 1024 * 1024)); done
    fi
    [ "$avail_kb" -ge "$need_kb" ] ||
        die "$((avail_kb / 1024)) MiB free in $BENCH_WORK, the data part needs ~$((need_kb / 1024)) MiB (set BENCH_TMPDIR or smaller SIZES)"
fi

# --- helpers --------------------------------------------------------------------------------

fact() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$FACTS"; }
rss_kb() { awk '/^VmRSS:/{print $2; f=1} END{if(!f) print -1}' /proc/"$1"/status 2>/dev/null || echo -1; }
du_kb() { du -sk "$1" 2>/dev/null | awk '{print $1}'; }
# sum of the sizes of DIR/db/*.EXT (log = RocksDB WAL files, sst = table files)
db_bytes() { find "$1/db" -maxdepth 1 -name "*.$2" -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
now_ns() { date +%s%N; }

# apparent size of a directory tree in bytes (sum of file sizes; du counts allocated blocks,
# which include RocksDB's preallocation of the WAL file it is writing)
files_bytes() { find "$1" -type f -printf '%s\n' 2>/dev/null | awk '{s += $1} END {print s + 0}'; }

# footprint TAG STEP PID DIR - RSS, data dir size (du and apparent), WAL and SST bytes as facts
footprint() {
    fact "$1" "rss_$2" "$(rss_kb "$3")"
    fact "$1" "du_$2" "$(du_kb "$4")"
    fact "$1" "files_$2" "$(files_bytes "$4")"
    fact "$1" "wal_$2" "$(db_bytes "$4" log)"
    fact "$1" "sst_$2" "$(db_bytes "$4" sst)"
}

# metric URL NAME - one counter/gauge of edgekv's /metrics ("" when absent)
metric() { curl -s --max-time 5 "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n {print $2; exit}' || true; }

SRV_PID=""; SRV_URL=""; SRV_LOG=""; SRV_NAME=""
crash() {
    [ -n "$SRV_LOG" ] && tail -20 "$SRV_LOG" >&2
    die "$*"
}
alive() { kill -0 "$SRV_PID" 2>/dev/null || crash "$SRV_NAME (pid $SRV_PID) died: $1"; }

# settle TAG - wait until SRV_* runs no compaction (edgekv_rocksdb_running_compactions 0 in
# three polls 0.5 s apart), at most SETTLE_MAX_S, so that the rounds after a bulk load do not
# start inside its compaction tail (low priority: it lasts longer the busier the cores are,
# and how much of it the rounds caught would differ from run to run). Facts settle_s and
# settle_done (0 = gave up). A server without the metric (older builds) counts as settled.
settle() {
    local tag=$1 t0 run zeros=0 done=1
    t0=$(date +%s%N)
    while [ "$zeros" -lt 3 ]; do
        run=$(metric "$SRV_URL" edgekv_rocksdb_running_compactions)
        if [ "${run:-0}" = 0 ]; then zeros=$((zeros + 1)); else zeros=0; fi
        if [ $(($(date +%s%N) - t0)) -ge $((SETTLE_MAX_S * 1000000000)) ]; then done=0; break; fi
        [ "$zeros" -lt 3 ] && sleep 0.5
    done
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN{printf "%.1f", (b - a) / 1e9}')
    fact "$tag" settle_s "$secs"; fact "$tag" settle_done "$done"
    if [ "$done" = 1 ]; then
        log "$tag: no compaction running after ${secs}s"
    else
        log "$tag: compactions still running after ${SETTLE_MAX_S}s; measuring anyway"
    fi
}

# start_server NAME DIR [serve args] - a fresh standalone edgekv on a free port (account and
# root token through the env, as the other scripts); sets SRV_*
start_server() {
    local name=$1 dir=$2 port; shift 2
    port=$(bench_free_ports 1)
    bench_start_edgekv "$name" "" "$dir" "$port" "$@"
    SRV_PID=$EKV_PID; SRV_URL=$EKV_URL; SRV_LOG="$BENCH_WORK/$name.log"; SRV_NAME=$name
}

# wait_gone PID SECS - until PID exited (bounded); prints the ms it took, -1 on timeout
wait_gone() {
    local pid=$1 t0 deadline=$((SECONDS + $2))
    t0=$(now_ns)
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt "$deadline" ] || { echo -1; return 0; }
        sleep 0.01
    done
    echo $((($(now_ns) - t0) / 1000000))
}

# restart_timed NAME DIR PORT [serve args] - start edgekv on DIR/PORT again; RESTART_MS = from
# just before the process is started to the first /healthz 200 (a poller started first,
# every 10 ms); sets SRV_*
restart_timed() {
    local name=$1 dir=$2 port=$3; shift 3
    local rdy="$BENCH_WORK/$name.pollready" out="$BENCH_WORK/$name.poll" ppid t0 t_ok deadline
    rm -f "$rdy"
    "$PY" "$LIB/scale_load.py" healthz "http://127.0.0.1:$port" 120 "$rdy" >"$out" 2>&1 &
    ppid=$!; BENCH_PIDS+=("$ppid")
    deadline=$((SECONDS + 20))
    until [ -e "$rdy" ]; do
        [ $SECONDS -lt $deadline ] && kill -0 "$ppid" 2>/dev/null || die "healthz poller did not start: $(cat "$out")"
        sleep 0.01
    done
    t0=$(now_ns)
    EDGEKV_ACCOUNT_ID=$EKV_ACCOUNT EDGEKV_ROOT_TOKEN=$EKV_TOKEN \
        bench_start "$name" "" "$BENCH_WORK/$name.log" \
        "$EDGEKV_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" "$@"
    SRV_PID=$BENCH_LAST_PID; SRV_URL="http://127.0.0.1:$port"; SRV_LOG="$BENCH_WORK/$name.log"; SRV_NAME=$name
    deadline=$((SECONDS + 130))
    while kill -0 "$ppid" 2>/dev/null; do
        kill -0 "$SRV_PID" 2>/dev/null || crash "$name exited during start-up"
        [ $SECONDS -lt $deadline ] || crash "$name: /healthz not 200 within 120 s"
        sleep 0.01
    done
    wait "$ppid" 2>/dev/null || crash "$name: /healthz not 200: $(cat "$out")"
    bench_forget "$ppid"
    t_ok=$(cat "$out")
    RESTART_MS=$(awk -v a="$t0" -v b="$t_ok" 'BEGIN{printf "%.0f", (b - a) / 1e6}')
}

# wrk_run TAG SCEN ROUND SECS WRK_ARGS... - one wrk run against SRV_*; ROUND 0 = warm-up (not
# recorded). Records: tag scen round rps p50 p99 requests non2xx errors cpu_s cache_hits misses
wrk_run() {
    local tag=$1 scen=$2 round=$3 dur=$4; shift 4
    local raw="$BENCH_WORK/wrk-$tag-$scen-$round.txt" c0 c1 h0 h1 m0 m1 stats
    alive "before $tag $scen round $round"
    h0=$(metric "$SRV_URL" edgekv_cache_hits_total); m0=$(metric "$SRV_URL" edgekv_cache_misses_total)
    c0=$(bench_cpu_ticks "$SRV_PID")
    if ! bench_run_bg timeout $((dur + 30)) "${CLIENT_PREFIX[@]}" \
        wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 5s --latency "$@" >"$raw" 2>&1; then
        cat "$raw" >&2
        alive "during $tag $scen round $round"
        die "wrk failed ($tag $scen round $round)"
    fi
    c1=$(bench_cpu_ticks "$SRV_PID")
    alive "during $tag $scen round $round"
    h1=$(metric "$SRV_URL" edgekv_cache_hits_total); m1=$(metric "$SRV_URL" edgekv_cache_misses_total)
    stats=$("$PY" "$LIB/wrkstats.py" parse "$raw")
    { echo "### $tag $scen round $round"; cat "$raw"; echo; } >>"$RAW"
    local rps p99 bad err
    read -r rps _ p99 _ bad err <<<"$stats"
    local warn=""
    [ "$bad" != 0 ] && warn+="  non-2xx=$bad"
    [ "$err" != 0 ] && warn+="  socket-errors=$err"
    if [ "$round" = 0 ]; then
        log "$tag $scen warm-up $(printf '%9.0f' "$rps") req/s  p99 ${p99} ms$warn"
        return 0
    fi
    echo "$tag $scen $round $stats $(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}') $(( ${h1:-0} - ${h0:-0} )) $(( ${m1:-0} - ${m0:-0} ))" >>"$RECORDS"
    log "$tag $(printf '%-9s' "$scen") round $round $(printf '%9.0f' "$rps") req/s  p99 ${p99} ms$warn"
}

# hot_rand_rounds TAG SUFFIX HOT_URL BASE_URL - ROUNDS rounds of hot GET and random GET, the
# order alternating from round to round (hot first in odd rounds)
hot_rand_rounds() {
    local tag=$1 sfx=$2 hot=$3 url=$4 r
    local auth="Authorization: Bearer $EKV_TOKEN"
    for r in $(seq 1 "$ROUNDS"); do
        if [ $((r % 2)) = 1 ]; then
            wrk_run "$tag" "hot$sfx" "$r" "$DURATION" -H "$auth" "$hot"
            wrk_run "$tag" "rand$sfx" "$r" "$DURATION" -s "$LUA/scale_get.lua" "$url"
        else
            wrk_run "$tag" "rand$sfx" "$r" "$DURATION" -s "$LUA/scale_get.lua" "$url"
            wrk_run "$tag" "hot$sfx" "$r" "$DURATION" -H "$auth" "$hot"
        fi
    done
}

# load_keys TAG N NS - bulk-load k00000000..k(N-1) into SRV_*, facts load_s / load_rate
load_keys() {
    local tag=$1 n=$2 ns=$3 out
    log "$tag: loading $n keys (bulk writes of 10000, $LOAD_CONNS in flight)"
    if ! out=$("${CLIENT_PREFIX[@]}" "$PY" "$LIB/scale_load.py" load "$SRV_URL" "$ns" "$n" "$LOAD_CONNS" 2>&1); then
        alive "while loading"
        BROKEN+=("$tag: bulk load refused: $out")
        die "$tag: bulk load failed: $out"
    fi
    local secs rate reqs
    read -r secs rate reqs <<<"$out"
    fact "$tag" load_s "$secs"; fact "$tag" load_rate "$rate"; fact "$tag" load_reqs "$reqs"
    fact "$tag" load_conns "$LOAD_CONNS"
    log "$tag: loaded $n keys in ${secs}s = $rate keys/s ($reqs requests)"
}

server_log_note() {
    local f=$1 w e
    w=$(grep -c 'level=warn' "$f" 2>/dev/null || true)
    e=$(grep -c 'level=error' "$f" 2>/dev/null || true)
    fact server_log "$(basename "$f" .log)" "${w:-0} ${e:-0}"
    if [ "${w:-0}" != 0 ] || [ "${e:-0}" != 0 ]; then
        { echo "### server log warnings/errors: $f"; grep -E 'level=(warn|error)' "$f" | head -20; echo; } >>"$RAW"
    fi
}

stop_server() {
    bench_stop "$SRV_PID"
    server_log_note "$SRV_LOG"
}

phase_begin() { PHASE_T0=$SECONDS; log "=== $1 ==="; }
phase_end() { fact phase "$1" $((SECONDS - PHASE_T0)); }

# --- data -----------------------------------------------------------------------------------

data_size() {
    local n=$1 tag="data-$1" dir="$BENCH_WORK/data-$1" ns
    phase_begin "data: $n keys"
    start_server "scale-$n" "$dir"
    ns=$(bench_edgekv_namespace "$SRV_URL" "scale-$n")
    footprint "$tag" start "$SRV_PID" "$dir"
    load_keys "$tag" "$n" "$ns"
    footprint "$tag" load "$SRV_PID" "$dir"

    local base="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$ns"
    local hot="$SRV_URL$base/values/k00000000"
    # the loaded values are what they should be (first and last key, one in the middle); the
    # hot key is read twice, so it is in the cache
    for i in 0 $((n / 2)) $((n - 1)) 0; do
        "$PY" "$LIB/scale_load.py" getcheck "$SRV_URL" "$ns" "$i" >/dev/null ||
            { BROKEN+=("$tag: key $i not readable after the load"); die "$tag: GET of key $i after the load failed"; }
    done
    export SCALE_BASE="$base/values/" SCALE_KEYS="$base/keys" SCALE_N=$n SCALE_TOKEN=$EKV_TOKEN

    settle "$tag"
    log "$tag: random GET warm-up ${WARM_S}s, then $ROUNDS rounds x ${DURATION}s hot/random"
    if [ "$WARM_S" -ge 1 ]; then wrk_run "$tag" rand 0 "$WARM_S" -s "$LUA/scale_get.lua" "$SRV_URL"; fi
    hot_rand_rounds "$tag" "" "$hot" "$SRV_URL"
    footprint "$tag" get "$SRV_PID" "$dir"

    log "$tag: random PUT ${PUT_S}s"
    wrk_run "$tag" put 1 "$PUT_S" -s "$LUA/scale_put.lua" "$SRV_URL"
    footprint "$tag" put "$SRV_PID" "$dir"

    hot_rand_rounds "$tag" 2 "$hot" "$SRV_URL"
    footprint "$tag" get2 "$SRV_PID" "$dir"

    # list: one page checked first (1000 keys, first and last of the prefix), last page too
    local pages=$((n / 1000)) p out
    for p in 0 $((pages - 1)); do
        local prefix
        prefix=$(printf 'k%05d' "$p")
        out=$(curl -s --max-time 30 -H "Authorization: Bearer $EKV_TOKEN" \
            "$SRV_URL$base/keys?prefix=$prefix&limit=1000" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
names = [k["name"] for k in r["result"]]
print(len(names), names[0] if names else "-", names[-1] if names else "-")' 2>&1) || out="error $out"
        [ "$out" = "1000 ${prefix}000 ${prefix}999" ] ||
            { BROKEN+=("$tag: list prefix=$prefix limit=1000 returned '$out'"); die "$tag: list check failed: $out"; }
    done
    log "$tag: list check ok (prefix k00000 and k$(printf '%05d' $((pages - 1))): 1000 keys each); $ROUNDS rounds x ${DURATION}s list"
    for p in $(seq 1 "$ROUNDS"); do
        wrk_run "$tag" list "$p" "$DURATION" -s "$LUA/scale_list.lua" "$SRV_URL"
    done
    footprint "$tag" list "$SRV_PID" "$dir"
    { echo "### $tag /metrics at the end"
      curl -s --max-time 5 "$SRV_URL/metrics" | awk '!/^#/ && /cache|rocksdb|commit|connections/'; echo; } >>"$RAW"
    stop_server
    footprint "$tag" stopped "$SRV_PID" "$dir"
    [ "$KEEP" = 1 ] || rm -rf "$dir"
    phase_end "data-$n"
    "${REPORT[@]}" size "$FACTS" "$RECORDS" "$n" | tee -a "$OUT"
}

# --- restart --------------------------------------------------------------------------------

# marker TAG NAME - PUT a marker key (acked by a 200) to read back after the restart
marker_put() {
    printf 'marker %s %s' "$1" "$2" >"$BENCH_WORK/marker.val"
    bench_edgekv_put "$SRV_URL" "$RNS" "marker-$2" "$BENCH_WORK/marker.val"
}
marker_check() {
    local code
    code=$(bench_edgekv_get "$SRV_URL" "$RNS" "marker-$2" "$BENCH_WORK/marker.out")
    if [ "$code" = 200 ] && [ "$(cat "$BENCH_WORK/marker.out")" = "marker $1 $2" ]; then
        fact restart "marker_$2" ok
    else
        fact restart "marker_$2" lost
        BROKEN+=("restart $2: the marker written before the stop is gone (HTTP $code)")
    fi
}

# SIGTERM the running server, wait for its exit, start it again on the same data dir and port,
# timing both; facts under LABEL. Args: TAG LABEL NAME DIR PORT
term_and_restart() {
    local tag=$1 label=$2 name=$3 dir=$4 port=$5 ms
    fact "$tag" "wal_before_$label" "$(db_bytes "$dir" log)"
    fact "$tag" "rss_before_$label" "$(rss_kb "$SRV_PID")"
    kill -TERM "$SRV_PID"
    ms=$(wait_gone "$SRV_PID" 60)
    [ "$ms" != -1 ] || crash "restart ($label): edgekv did not exit within 60 s of SIGTERM"
    bench_stop "$SRV_PID"; server_log_note "$SRV_LOG"
    fact "$tag" "stop_ms_$label" "$ms"
    fact "$tag" "wal_after_stop_$label" "$(db_bytes "$dir" log)"
    restart_timed "$name" "$dir" "$port"
    fact "$tag" "restart_ms_$label" "$RESTART_MS"
    log "restart ($label): stop ${ms} ms, start to /healthz 200: ${RESTART_MS} ms"
}

phase_restart() {
    local dir="$BENCH_WORK/restart" port tag=restart ms
    phase_begin restart
    start_server restart-0 "$dir"
    port=${SRV_URL##*:}
    RNS=$(bench_edgekv_namespace "$SRV_URL" restart)
    load_keys "$tag" "$RESTART_KEYS" "$RNS"
    fact "$tag" keys "$RESTART_KEYS"
    footprint "$tag" load "$SRV_PID" "$dir"

    # (a) clean: SIGTERM, wait for the exit, start again
    marker_put "$tag" clean
    term_and_restart "$tag" clean restart-1 "$dir" "$port"
    marker_check "$tag" clean

    # (b) after RESTART_PUT_S s of random PUTs
    export SCALE_BASE="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$RNS/values/" SCALE_N=$RESTART_KEYS SCALE_TOKEN=$EKV_TOKEN
    log "restart (b): random PUTs ${RESTART_PUT_S}s, then SIGTERM"
    wrk_run "$tag" put 1 "$RESTART_PUT_S" -s "$LUA/scale_put.lua" "$SRV_URL"
    marker_put "$tag" afterput
    term_and_restart "$tag" afterput restart-2 "$dir" "$port"
    marker_check "$tag" afterput

    # (c) SIGKILL in the middle of a write load; every acked write read back afterwards
    local ack="$BENCH_WORK/acked.txt" wout="$BENCH_WORK/writer.out" wpid deadline
    log "restart (c): writer $WRITER_CONNS connections for ${WRITER_S}s, SIGKILL at ${KILL_AT}s"
    marker_put "$tag" sigkill
    "${CLIENT_PREFIX[@]}" "$PY" "$LIB/scale_load.py" writer "$SRV_URL" "$RNS" "$WRITER_CONNS" "$WRITER_S" "$ack" >"$wout" 2>&1 &
    wpid=$!; BENCH_PIDS+=("$wpid")
    deadline=$((SECONDS + KILL_AT))
    while [ $SECONDS -lt $deadline ]; do alive "during the write load"; sleep 0.1; done
    local acked_before
    acked_before=$(wc -l <"$ack" 2>/dev/null || echo 0)
    fact "$tag" wal_before_sigkill "$(db_bytes "$dir" log)"
    fact "$tag" rss_before_sigkill "$(rss_kb "$SRV_PID")"
    kill -KILL "$SRV_PID"
    ms=$(wait_gone "$SRV_PID" 30)
    bench_stop "$SRV_PID"; server_log_note "$SRV_LOG"
    fact "$tag" wal_after_stop_sigkill "$(db_bytes "$dir" log)"
    restart_timed restart-3 "$dir" "$port"
    fact "$tag" restart_ms_sigkill "$RESTART_MS"
    log "restart (c) SIGKILL (~$acked_before writes acked before it): start to /healthz 200: ${RESTART_MS} ms"
    deadline=$((SECONDS + WRITER_S + 40))
    while kill -0 "$wpid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { kill -KILL "$wpid" 2>/dev/null || true; die "restart (c): the writer did not finish"; }
        sleep 0.2
    done
    wait "$wpid" || { cat "$wout" >&2; die "restart (c): the writer failed"; }
    bench_forget "$wpid"
    alive "after the write load"
    local wline vline
    wline=$(grep '^WRITER ' "$wout" || true)
    fact "$tag" writer "$wline"
    log "restart (c): $wline"
    log "restart (c): reading back every acked key (bulk get, 100 keys a request)"
    if ! vline=$("$PY" "$LIB/scale_load.py" verify "$SRV_URL" "$RNS" "$ack" 4 2>"$BENCH_WORK/verify.err"); then
        cat "$BENCH_WORK/verify.err" >&2
        BROKEN+=("restart (c): read-back failed: $(tail -1 "$BENCH_WORK/verify.err")")
        vline="VERIFY acked=$(wc -l <"$ack") lost=-1 wrong=-1"
    fi
    cat "$BENCH_WORK/verify.err" >>"$RAW"
    fact "$tag" verify "$vline"
    log "restart (c): $vline"
    local lost wrong
    lost=$(sed -n 's/.* lost=\([-0-9]*\).*/\1/p' <<<"$vline")
    wrong=$(sed -n 's/.* wrong=\([-0-9]*\).*/\1/p' <<<"$vline")
    if [ "${lost:-1}" != 0 ] || [ "${wrong:-1}" != 0 ]; then
        BROKEN+=("restart (c): ACKNOWLEDGED WRITES LOST after SIGKILL: $vline")
        log "!!!!!!!! ACKNOWLEDGED WRITES LOST: $vline !!!!!!!!"
        head -5 "$BENCH_WORK/verify.err" >&2 || true
    fi
    marker_check "$tag" sigkill
    footprint "$tag" end "$SRV_PID" "$dir"
    stop_server
    [ "$KEEP" = 1 ] || rm -rf "$dir"
    phase_end restart
    "${REPORT[@]}" restart "$FACTS" "$RECORDS" | tee -a "$OUT"
}

# --- idle connections -----------------------------------------------------------------------

phase_idle() {
    local dir="$BENCH_WORK/idle" tag=idle maxc ns
    phase_begin idle
    maxc=$((IDLE_CONNS + CONNS + 1000)); [ "$maxc" -lt 16384 ] && maxc=16384
    # --idle-timeout-ms: the server must not close the idle connections while they are held
    # (the rounds with them open may take longer than the default 60 s)
    start_server scale-idle "$dir" --max-connections "$maxc" --idle-timeout-ms 3600000
    fact "$tag" max_connections "$maxc"
    ns=$(bench_edgekv_namespace "$SRV_URL" idle)
    printf '%0*d' "$VALUE_SIZE" 0 >"$BENCH_WORK/v100"
    bench_edgekv_put "$SRV_URL" "$ns" hot "$BENCH_WORK/v100"
    bench_edgekv_get "$SRV_URL" "$ns" hot /dev/null >/dev/null
    bench_edgekv_get "$SRV_URL" "$ns" hot /dev/null >/dev/null
    local hot="$SRV_URL/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$ns/values/hot"
    local auth="Authorization: Bearer $EKV_TOKEN" r
    fact "$tag" rss_fresh "$(rss_kb "$SRV_PID")"
    if [ "$WARMUP" -ge 1 ]; then wrk_run "$tag" without 0 "$WARMUP" -H "$auth" "$hot"; fi
    log "idle: $ROUNDS rounds hot GET without the idle connections"
    for r in $(seq 1 "$ROUNDS"); do wrk_run "$tag" without "$r" "$DURATION" -H "$auth" "$hot"; done

    local st="$BENCH_WORK/idle.status" rel="$BENCH_WORK/idle.release" cpid deadline port
    port=${SRV_URL##*:}
    rm -f "$st" "$rel"
    log "idle: opening $IDLE_CONNS connections (one GET /healthz each, kept open)"
    "${CLIENT_PREFIX[@]}" "$PY" "$LIB/scale_conns.py" idle 127.0.0.1 "$port" "$IDLE_CONNS" "$SRV_PID" \
        "$st" "$rel" "$IDLE_SAMPLE_S" $((ROUNDS * (DURATION + 5) + 300)) >"$BENCH_WORK/idle.out" 2>&1 &
    cpid=$!; BENCH_PIDS+=("$cpid")
    deadline=$((SECONDS + 300))
    until grep -q '^READY' "$st" 2>/dev/null; do
        kill -0 "$cpid" 2>/dev/null || { cat "$BENCH_WORK/idle.out" >&2; die "idle client exited early"; }
        [ $SECONDS -lt $deadline ] || die "idle: connections not all open within 300 s"
        alive "while the idle connections were opened"
        sleep 0.2
    done
    fact "$tag" ready "$(grep '^READY' "$st")"
    fact "$tag" server_conns "$(metric "$SRV_URL" edgekv_http_connections)"
    log "idle: $(grep '^READY' "$st"); server says $(metric "$SRV_URL" edgekv_http_connections) connections"
    log "idle: $ROUNDS rounds hot GET with the idle connections open"
    for r in $(seq 1 "$ROUNDS"); do wrk_run "$tag" with "$r" "$DURATION" -H "$auth" "$hot"; done
    fact "$tag" server_conns_after_rounds "$(metric "$SRV_URL" edgekv_http_connections)"
    touch "$rel"
    log "idle: closing them; RSS every second for ${IDLE_SAMPLE_S}s"
    deadline=$((SECONDS + IDLE_SAMPLE_S + 120))
    while kill -0 "$cpid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || die "idle client did not finish"
        alive "while the idle connections were closed"
        sleep 0.5
    done
    wait "$cpid" || { cat "$BENCH_WORK/idle.out" >&2; die "idle client failed"; }
    bench_forget "$cpid"
    grep -q '^DONE' "$st" || { cat "$BENCH_WORK/idle.out" >&2; die "idle client: no result"; }
    fact "$tag" "done" "$(grep '^DONE' "$st")"
    fact "$tag" server_conns_closed "$(metric "$SRV_URL" edgekv_http_connections)"
    log "idle: $ROUNDS rounds hot GET without, again"
    for r in $(seq $((ROUNDS + 1)) $((2 * ROUNDS))); do wrk_run "$tag" without "$r" "$DURATION" -H "$auth" "$hot"; done
    fact "$tag" rss_end "$(rss_kb "$SRV_PID")"
    stop_server
    phase_end idle
    "${REPORT[@]}" idle "$FACTS" "$RECORDS" | tee -a "$OUT"
}

# --- connect burst --------------------------------------------------------------------------

phase_burst() {
    local dir="$BENCH_WORK/burst" tag=burst maxc r line port
    phase_begin burst
    maxc=$((BURST_CONNS + 1000)); [ "$maxc" -lt 16384 ] && maxc=16384
    start_server scale-burst "$dir" --max-connections "$maxc"
    port=${SRV_URL##*:}
    fact "$tag" max_connections "$maxc"
    # the accept queue's size as the kernel has it (ss: Send-Q of a listening socket =
    # min(listen(2) backlog, net.core.somaxconn))
    fact "$tag" listen_backlog "$(ss -Hltn "sport = :$port" 2>/dev/null | awk 'NR==1{print $3}' || true)"
    fact "$tag" rss_start "$(rss_kb "$SRV_PID")"
    for r in $(seq 1 "$BURST_RUNS"); do
        alive "before burst run $r"
        line=$(timeout 200 "${CLIENT_PREFIX[@]}" "$PY" "$LIB/scale_conns.py" burst 127.0.0.1 "$port" "$BURST_CONNS" 60) ||
            { alive "during burst run $r"; die "burst client failed (run $r): $line"; }
        alive "during burst run $r"
        fact "$tag" "run_$r" "$line"
        fact "$tag" "rss_$r" "$(rss_kb "$SRV_PID")"
        log "burst run $r: $line"
        # let the server see the resets before the next burst
        sleep 2
    done
    fact "$tag" accepted "$(metric "$SRV_URL" edgekv_http_connections_accepted_total)"
    fact "$tag" rejected "$(metric "$SRV_URL" edgekv_http_connections_rejected_total)"
    fact "$tag" rss_end "$(rss_kb "$SRV_PID")"
    stop_server
    phase_end burst
    "${REPORT[@]}" burst "$FACTS" "$RECORDS" | tee -a "$OUT"
}

# --- main -----------------------------------------------------------------------------------

T_ALL=$SECONDS
if has data; then for n in $SIZES; do data_size "$n"; done; fi
if has restart; then phase_restart; fi
if has idle; then phase_idle; fi
if has burst; then phase_burst; fi
fact phase total $((SECONDS - T_ALL))

say "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg)"
say "results: ${OUT#"$REPO_DIR"/} (raw wrk output and details: ${RAW#"$REPO_DIR"/})"
cp "$FACTS" "${RAW%.raw.txt}.facts.tsv"; cp "$RECORDS" "${RAW%.raw.txt}.records.tsv"
for b in "${BROKEN[@]+"${BROKEN[@]}"}"; do fact broken x "$b"; done
# shellcheck disable=SC2086  # the sizes are separate arguments
"${REPORT[@]}" summary "$FACTS" "$RECORDS" "$PHASES" $SIZES | tee -a "$OUT"
if [ ${#BROKEN[@]} -gt 0 ]; then
    log "something broke (the BROKEN lines above): exit 1"
    exit 1
fi
