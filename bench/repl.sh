#!/usr/bin/env bash
# shellcheck disable=SC2015  # "cond && cond || die" is meant
# bench/repl.sh - what replication costs and how far a replica trails, in the same run.
#
#   repl   durable 100-byte PUTs (new key each) on a primary with one replica attached
#          (default sync = fsync on both); during each run the replica's apply lag (primary
#          commit -> durable apply on the replica, its /metrics histogram) and after each run
#          the catch-up time (wrk done -> replica applied_seq >= primary last_seq)
#   alone  the same load on a standalone edgekv: "repl/alone" = the cost of replication on
#          the primary's write throughput
#   sync1  (MODE=sync1) a second primary with --sync-replicas 1 (a write is answered only
#          after its replica acked it) and its own replica
# At the end the replica's /_edgekv/replication/checksum must equal its primary's (else exit 1).
#
# Usage: bench/repl.sh            (about 1 minute with the defaults, ~1.5 with MODE=sync1)
# Env:   DURATION=5   seconds per measured wrk run      ROUNDS=5   alternating rounds
#        CONNS=64     wrk connections                    THREADS=1  wrk threads
#        WARMUP=2     seconds of unrecorded warm-up per config before the rounds
#        MODE=sync1   also measure a primary with --sync-replicas 1 (default: off)
#        PIN=1        wrk on CPU 0 (servers are not pinned: all are multi-threaded)
#        NICE=-10     servers and wrk run at this nice level (default -10 as root, else 0)
#        LAG_TARGET_MS=5      informational target for the lag p99 (never a failure)
#        CATCHUP_TIMEOUT=60   seconds a replica may take to catch up after a run (then fail)
#        EDGEKV_BIN=path      use this binary instead of building build/edgekv
#        KEEP=1       keep the temp dir (server logs)
# Output: two tables and one "BENCH scenario=repl ..." line, also written to
#         bench/results/<timestamp>-repl.txt (raw wrk outputs and metrics in <timestamp>-repl.raw.txt).
# See bench/README.md ("Replication: bench/repl.sh") for the method and how to read it.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

bench_params
MODE=${MODE:-}
LAG_TARGET_MS=${LAG_TARGET_MS:-5}
CATCHUP_TIMEOUT=${CATCHUP_TIMEOUT:-60}
VALUE_SIZE=100
[[ $CATCHUP_TIMEOUT =~ ^[0-9]+$ ]] && [ "$CATCHUP_TIMEOUT" -ge 1 ] ||
    die "CATCHUP_TIMEOUT must be an integer >= 1 (got '$CATCHUP_TIMEOUT')"
[[ $LAG_TARGET_MS =~ ^[0-9]+([.][0-9]+)?$ ]] || die "LAG_TARGET_MS must be a number (got '$LAG_TARGET_MS')"
case "$MODE" in ""|sync1) ;; *) die "MODE must be empty or sync1 (got '$MODE')" ;; esac

STATS="python3 $BENCH_DIR/lib/wrkstats.py"
RSTATS="python3 $BENCH_DIR/lib/replstats.py"
CLK_TCK=$(getconf CLK_TCK)

bench_install_trap
bench_need wrk:wrk curl:curl python3:python3
bench_mkwork

CLIENT_CPU=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    CLIENT_CPU=0
fi

bench_results "-repl"

bench_build_edgekv

CONFIGS=(alone repl)
[ "$MODE" = sync1 ] && CONFIGS+=(sync1)
est=$((${#CONFIGS[@]} * (ROUNDS * DURATION + ROUNDS / 2 + WARMUP + 1) + 10))
say "edgekv replication bench  $TS"
say "machine: $(nproc) cpus, $(uname -sr), work dir on $(df -P "$BENCH_WORK" | awk 'NR==2{print $1}'), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "edgekv:  $EDGEKV_BIN (commit $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo none)), wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}')"
say "params:  DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS=$CONNS THREADS=$THREADS WARMUP=${WARMUP}s NICE=${NICE:-0} value=${VALUE_SIZE}B configs=${CONFIGS[*]} client cpu ${CLIENT_CPU:-any}, servers unpinned, sync=fsync everywhere"
log "expected run time ~${est}s"

# --- servers ----------------------------------------------------------------------------------

# start_replica NAME DATADIR PORT PRIMARY_REPL_ADDR NODE_ID -> REP_PID, REP_URL
# No account/token env: a replica gets accounts and tokens from its primary.
start_replica() {
    local name=$1 dir=$2 port=$3 prim=$4 id=$5
    mkdir -p "$dir"
    bench_start "$name" "" "$BENCH_WORK/$name.log" "$EDGEKV_BIN" serve --role replica \
        --listen "127.0.0.1:$port" --primary "$prim" --data-dir "$dir" --node-id "$id"
    REP_PID=$BENCH_LAST_PID
    REP_URL="http://127.0.0.1:$port"
    bench_wait_http "$REP_URL/healthz" "$REP_PID" 30 ||
        { tail -20 "$BENCH_WORK/$name.log" >&2; die "$name: /healthz never answered 200"; }
}

# wait_streaming PRIMARY_URL REPLICA_URL NODE_ID NAME - replica streaming, seen from both sides
wait_streaming() {
    local deadline=$((SECONDS + 30)) rs ps
    while [ $SECONDS -lt $deadline ]; do
        rs=$(json_get "$2/_edgekv/replication/status" "r['replica']['state']")
        ps=$(json_get "$1/_edgekv/replication/status" \
            "[x['state'] for x in r['replicas'] if x['node_id'] == '$3'][0]")
        [ "$rs" = streaming ] && [ "$ps" = streaming ] && return 0
        sleep 0.2
    done
    tail -20 "$BENCH_WORK/$4.log" >&2
    die "$4 not streaming after 30 s (replica says '$rs', primary says '$ps')"
}

# wait_caught_up PRIMARY_URL REPLICA_URL NAME SECS - replica applied_seq >= primary last_seq
wait_caught_up() {
    local deadline=$((SECONDS + $4)) last applied
    while [ $SECONDS -lt $deadline ]; do
        last=$(json_get "$1/_edgekv/replication/status" "r['last_seq']")
        applied=$(json_get "$2/_edgekv/replication/status" "r['replica']['applied_seq']")
        [ -n "$last" ] && [ -n "$applied" ] && [ "$applied" -ge "$last" ] && return 0
        sleep 0.1
    done
    die "$3 did not catch up in $4 s (applied_seq '$applied', primary last_seq '$last')"
}

declare -A URL PID NS REPURL REPPID
n_ports=$((1 + 3 * (${#CONFIGS[@]} - 1)))
read -r -a PORTS <<<"$(bench_free_ports "$n_ports")"

bench_start_edgekv alone "" "$BENCH_WORK/alone-data" "${PORTS[0]}"
URL[alone]=$EKV_URL; PID[alone]=$EKV_PID
i=1
for c in "${CONFIGS[@]:1}"; do
    api=${PORTS[$i]} rp=${PORTS[$((i + 1))]} rapi=${PORTS[$((i + 2))]}
    i=$((i + 3))
    extra=()
    [ "$c" = sync1 ] && extra=(--sync-replicas 1)
    bench_start_edgekv "$c-primary" "" "$BENCH_WORK/$c-primary-data" "$api" --role primary \
        --repl-listen "127.0.0.1:$rp" --node-id "$c-p" "${extra[@]+"${extra[@]}"}"
    URL[$c]=$EKV_URL; PID[$c]=$EKV_PID
    start_replica "$c-replica" "$BENCH_WORK/$c-replica-data" "$rapi" "127.0.0.1:$rp" "$c-r"
    REPURL[$c]=$REP_URL; REPPID[$c]=$REP_PID
    wait_streaming "${URL[$c]}" "$REP_URL" "$c-r" "$c-replica"
done

# Namespaces, and a round trip: PUT on the primary, GET the same bytes from its replica.
printf '%0*d' "$VALUE_SIZE" 0 >"$BENCH_WORK/v100"
for c in "${CONFIGS[@]}"; do
    NS[$c]=$(bench_edgekv_namespace "${URL[$c]}" bench)
    bench_edgekv_put "${URL[$c]}" "${NS[$c]}" check "$BENCH_WORK/v100"
    [ "$c" = alone ] && continue
    wait_caught_up "${URL[$c]}" "${REPURL[$c]}" "$c-replica" 30
    code=$(bench_edgekv_get "${REPURL[$c]}" "${NS[$c]}" check "$BENCH_WORK/get.out")
    [ "$code" = 200 ] && cmp -s "$BENCH_WORK/get.out" "$BENCH_WORK/v100" ||
        die "$c: GET from the replica after PUT on the primary: HTTP $code, body $(head -c 200 "$BENCH_WORK/get.out")"
done
export EDGEKV_BENCH_TOKEN=$EKV_TOKEN BENCH_VALUE_SIZE=$VALUE_SIZE

# --- one measured run -------------------------------------------------------------------------

# rocksdb_note URL - memtable / SST sizes and compactions (to spot flushes and stalls)
rocksdb_note() {
    curl -s --max-time 5 "$1/metrics" 2>/dev/null | awk '
        $1 == "edgekv_rocksdb_kvval_memtable_bytes" || $1 == "edgekv_rocksdb_kvmeta_memtable_bytes" { mt += $2 }
        $1 == "edgekv_rocksdb_kvval_sst_bytes" || $1 == "edgekv_rocksdb_kvmeta_sst_bytes" { kv += $2 }
        $1 == "edgekv_rocksdb_log_sst_bytes" { lg = $2 }
        $1 == "edgekv_rocksdb_running_compactions" { rc = $2 }
        $1 == "edgekv_rocksdb_pending_compaction_bytes" { pc = $2 }
        END { printf "memtable %.1f MB, sst kv %.1f MB + log %.1f MB, compactions running %d, pending %.1f MB",
              mt / 1048576, kv / 1048576, lg / 1048576, rc, pc / 1048576 }'
}

# machine_snap -> MSNAP="ns busy iowait steal servers children" ticks: the whole machine
# (/proc/stat), all edgekv processes of this run, and this shell's reaped children (= the wrk
# just run). Not to be called as $(...): `times` in a subshell starts from zero child times.
machine_snap() {
    local srv=0 p
    for p in "${PID[@]}" "${REPPID[@]}"; do srv=$((srv + $(bench_cpu_ticks "$p"))); done
    times >"$BENCH_WORK/times.txt"
    local now cpu kids
    now=$(date +%s%N)
    cpu=$(awk 'NR == 1 { print $2 + $3 + $4 + $7 + $8 + $9, $6, $9; exit }' /proc/stat)
    kids=$(awk -v hz="$CLK_TCK" 'NR == 2 {
        split($1, u, /[ms]/); split($2, s, /[ms]/)
        printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz }' "$BENCH_WORK/times.txt")
    MSNAP="$now $cpu $srv $kids"
}
MSNAP=""

# machine_note SNAP_BEFORE SNAP_AFTER -> "busy% servers% wrk% others% iowait% steal%"
# (percent of one CPU, over the wall time between the snapshots)
machine_note() {
    awk -v a="$1" -v b="$2" -v hz="$CLK_TCK" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        dt = (y[1] - x[1]) / 1e9; if (dt <= 0) dt = 1
        f = 100 / hz / dt
        busy = (y[2] - x[2]) * f; srv = (y[5] - x[5]) * f; wrk = (y[6] - x[6]) * f
        oth = busy - srv - wrk; if (oth < 0) oth = 0
        printf "%.0f %.0f %.0f %.0f %.0f %.1f", busy, srv, wrk, oth, (y[3] - x[3]) * f, (y[4] - x[4]) * f }'
}

# run_one CONFIG ROUND   (ROUND 0 = warm-up, not recorded)
run_one() {
    local c=$1 round=$2 dur=$DURATION
    [ "$round" = 0 ] && dur=$WARMUP
    [ "$dur" -ge 1 ] || return 0
    local raw="$BENCH_WORK/wrk-$c-$round.txt" pid=${PID[$c]} rpid=${REPPID[$c]:-}
    local m0="$BENCH_WORK/metrics-$c-$round-0.txt" m1="$BENCH_WORK/metrics-$c-$round-1.txt"
    local fifo="$BENCH_WORK/go-$c-$round" cu="$BENCH_WORK/catchup-$c-$round.txt"
    local poller="" seq0=0 t0 t1 r0=0 r1=0 stats lag="0 nan nan nan nan" catch="-1 0 0 0"
    kill -0 "$pid" 2>/dev/null || die "$c (pid $pid) is not running"
    export EDGEKV_BENCH_VALUES="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/${NS[$c]}/values/"
    export BENCH_PREFIX="r$round"
    if [ -n "$rpid" ]; then
        kill -0 "$rpid" 2>/dev/null || die "$c-replica (pid $rpid) is not running"
        seq0=$(json_get "${URL[$c]}/_edgekv/replication/status" "r['last_seq']")
        [ -n "$seq0" ] || die "$c: primary status unreadable"
        curl -s --max-time 5 "${REPURL[$c]}/metrics" >"$m0" || die "$c-replica: /metrics unreadable"
        mkfifo "$fifo"
        # Waits for "go" (written the moment wrk exits), then polls both status endpoints
        # every 10 ms until the replica has applied the primary's last_seq (bounded).
        $RSTATS catchup "${URL[$c]}" "${REPURL[$c]}" "$fifo" $((dur + 60)) "$CATCHUP_TIMEOUT" >"$cu" &
        poller=$!
        BENCH_PIDS+=("$poller")
        r0=$(bench_cpu_ticks "$rpid")
    fi
    t0=$(bench_cpu_ticks "$pid")
    local snap0 snap1 mach
    machine_snap; snap0=$MSNAP
    # shellcheck disable=SC2046
    if ! bench_run_bg timeout $((dur + 30)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 5s --latency \
        -s "$BENCH_DIR/lua/edgekv_put.lua" "${URL[$c]}" >"$raw" 2>&1; then
        cat "$raw" >&2
        die "wrk failed against $c"
    fi
    machine_snap; snap1=$MSNAP
    if [ -n "$poller" ]; then
        { exec 3<>"$fifo"; echo go >&3; exec 3>&-; }
        local prc=0
        wait "$poller" || prc=$?
        bench_forget "$poller"
        rm -f "$fifo"
        catch=$(cat "$cu")
        [ "$prc" = 0 ] || die "$c-replica did not catch up within ${CATCHUP_TIMEOUT}s after the run ($catch)"
        curl -s --max-time 5 "${REPURL[$c]}/metrics" >"$m1" || die "$c-replica: /metrics unreadable"
        lag=$($RSTATS hist "$m0" "$m1")
        r1=$(bench_cpu_ticks "$rpid")
    fi
    t1=$(bench_cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || die "$c (pid $pid) died during the run"
    stats=$($STATS parse "$raw")
    local catch_ms last_seq
    read -r catch_ms last_seq _ <<<"$catch"
    local seqs=$((last_seq > seq0 ? last_seq - seq0 : 0))
    local busy srvp wrkp oth iow steal
    mach=$(machine_note "$snap0" "$snap1")
    read -r busy srvp wrkp oth iow steal <<<"$mach"
    {
        echo "### $c round $round"; cat "$raw"
        echo "machine during wrk (% of one cpu, $(nproc) cpus): busy $busy, edgekv servers $srvp, wrk $wrkp, others (other processes, kernel threads) $oth; iowait $iow, steal $steal"
        if [ -n "$poller" ]; then
            echo "replica apply lag (count p50<= p99<= max<= mean_ms): $lag"
            echo "catch-up (ms primary_last_seq replica_applied_seq polls): $catch; records committed: $seqs"
            echo "primary rocksdb: $(rocksdb_note "${URL[$c]}")"
            echo "replica rocksdb: $(rocksdb_note "${REPURL[$c]}")"
        else
            echo "rocksdb: $(rocksdb_note "${URL[$c]}")"
        fi
        echo
    } >>"$RAW"
    [ "$round" = 0 ] && return 0
    echo "$c $round $stats" \
        "$(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
        "$(awk -v t=$((r1 - r0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" \
        "$lag $catch_ms $seqs" >>"$RECORDS"
    local rps p99 bad err warn="" note=""
    read -r rps _ p99 _ bad err <<<"$stats"
    [ "$bad" != 0 ] && warn+="  non-2xx=$bad"
    [ "$err" != 0 ] && warn+="  socket-errors=$err"
    if [ -n "$poller" ]; then
        local n l50 l99 lmax
        read -r n l50 l99 lmax _ <<<"$lag"
        note="  lag p50<=$l50 p99<=$l99 max<=$lmax ms  catch-up ${catch_ms} ms"
        [ "$n" != "$seqs" ] && warn+="  (lag histogram counted $n records, primary committed $seqs)"
    fi
    log "round $round $(printf '%-6s' "$c") $(printf '%9.0f' "$rps") req/s  p99 ${p99} ms$note  (others ${oth}% cpu, iowait ${iow}%)$warn"
}

# rotate LIST N: the list rotated left by N (alternate the order between rounds)
rotate() {
    local n=$1; shift
    local a=("$@") i
    for ((i = 0; i < ${#a[@]}; i++)); do printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"; done
}

log "repl: warm-up ${WARMUP}s per config, then $ROUNDS rounds x ${DURATION}s, order rotating (${CONFIGS[*]})"
for r in $(seq 0 "$ROUNDS"); do
    for c in $(rotate "$r" "${CONFIGS[@]}"); do
        run_one "$c" "$r"
    done
done

# --- checks -----------------------------------------------------------------------------------
# A key of round 1 (wrk builds and drops one request per thread at start-up, so key 1 is
# never sent) must be readable on every server, replicas included; then each replica's
# checksum must equal its primary's.
k="r1-t0-0000000010"
for c in "${CONFIGS[@]}"; do
    code=$(bench_edgekv_get "${URL[$c]}" "${NS[$c]}" "$k" "$BENCH_WORK/get.out")
    [ "$code" = 200 ] && [ "$(wc -c <"$BENCH_WORK/get.out")" -eq "$VALUE_SIZE" ] ||
        die "$c: key $k not readable after the run (HTTP $code)"
    [ "$c" = alone ] && continue
    code=$(bench_edgekv_get "${REPURL[$c]}" "${NS[$c]}" "$k" "$BENCH_WORK/get.out")
    [ "$code" = 200 ] && [ "$(wc -c <"$BENCH_WORK/get.out")" -eq "$VALUE_SIZE" ] ||
        die "$c-replica: key $k not readable after the run (HTTP $code)"
done

CHECK_LINES=(); CHECK_FAIL=0
for c in "${CONFIGS[@]:1}"; do
    wait_caught_up "${URL[$c]}" "${REPURL[$c]}" "$c-replica" "$CATCHUP_TIMEOUT"
    ps=$(curl -s --max-time 60 -H "Authorization: Bearer $EKV_OPERATOR_TOKEN" "${URL[$c]}/_edgekv/replication/checksum" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(r["checksum"], r["keys"], r["last_seq"])' 2>/dev/null || true)
    rs=$(curl -s --max-time 60 -H "Authorization: Bearer $EKV_OPERATOR_TOKEN" "${REPURL[$c]}/_edgekv/replication/checksum" |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(r["checksum"], r["keys"], r["last_seq"])' 2>/dev/null || true)
    read -r pc pk pl <<<"${ps:-? ? ?}"
    read -r rc rk rl <<<"${rs:-? ? ?}"
    verdict=equal
    if [ -z "$ps" ] || [ "$ps" != "$rs" ]; then verdict="DIFFERENT"; CHECK_FAIL=1; fi
    CHECK_LINES+=("checksum $c: primary $pc (keys $pk, last_seq $pl)  replica $rc (keys $rk, last_seq $rl)  -> $verdict")
done

# Group-commit counters of each writer (durable throughput ~ writes per commit / commit time).
COMMIT_LINES=()
for c in "${CONFIGS[@]}"; do
    curl -s --max-time 5 "${URL[$c]}/metrics" >"$BENCH_WORK/metrics-$c-end.txt" || : >"$BENCH_WORK/metrics-$c-end.txt"
    { echo "### $c /metrics at the end"
      awk '!/^#/ && !/^edgekv_http_/ && tolower($0) ~ /commit|fsync|repl|rocksdb/' "$BENCH_WORK/metrics-$c-end.txt"; echo; } >>"$RAW"
    COMMIT_LINES+=("$(awk -v c="$c" '
        $1 == "edgekv_commits_total" { commits = $2 }
        $1 == "edgekv_committed_ops_total" { ops = $2 }
        $1 == "edgekv_commit_seconds_total" { secs = $2 }
        END { if (commits > 0) printf "%-14s %d writes in %d group commits = %.1f writes/commit, %.2f ms/commit (incl. fsync)", c, ops, commits, ops / commits, secs * 1000 / commits }' \
        "$BENCH_WORK/metrics-$c-end.txt")")
    [ "$c" = alone ] && continue
    curl -s --max-time 5 "${REPURL[$c]}/metrics" >"$BENCH_WORK/metrics-$c-replica-end.txt" || : >"$BENCH_WORK/metrics-$c-replica-end.txt"
    { echo "### $c-replica /metrics at the end"
      awk '!/^#/ && !/^edgekv_http_/ && tolower($0) ~ /commit|fsync|repl|rocksdb/' "$BENCH_WORK/metrics-$c-replica-end.txt"; echo; } >>"$RAW"
    # On a replica one commit applies a batch of streamed records (its "ops" are batches).
    COMMIT_LINES+=("$(awk -v c="$c-replica" '
        $1 == "edgekv_commits_total" { commits = $2 }
        $1 == "edgekv_commit_seconds_total" { secs = $2 }
        $1 == "edgekv_repl_apply_lag_ms_count" { recs = $2 }
        END { if (commits > 0) printf "%-14s %d streamed records in %d apply commits = %.1f records/commit, %.2f ms/commit (incl. fsync)", c, recs, commits, recs / commits, secs * 1000 / commits }' \
        "$BENCH_WORK/metrics-$c-replica-end.txt")")
done

for c in "${CONFIGS[@]}"; do
    if [ "$c" != alone ]; then bench_stop "${REPPID[$c]}"; fi
    bench_stop "${PID[$c]}"
done

$RSTATS report "$RECORDS" "$LAG_TARGET_MS" "${CONFIGS[@]}" | tee -a "$OUT"
say "edgekv counters (whole run incl. warm-up):"
for l in "${COMMIT_LINES[@]}"; do if [ -n "$l" ]; then say "  $l"; fi; done
for l in "${CHECK_LINES[@]}"; do say "$l"; done
say "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine widens the per-round spread; re-run when it is quiet)"
say "results: ${OUT#"$REPO_DIR"/} (raw wrk output and metrics: ${RAW#"$REPO_DIR"/})"
[ "$CHECK_FAIL" = 0 ] || die "a replica's checksum differs from its primary's"
