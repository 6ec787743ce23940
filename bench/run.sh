#!/usr/bin/env bash
# shellcheck disable=SC2015  # "cond && cond || die" is meant
# bench/run.sh - edgekv side by side with peers, in the same run, reported as ratios.
#
#   (a) get: cached GET of a 100-byte value  - edgekv vs nginx-light vs h2o (static 100-byte file)
#   (b) put: durable 100-byte PUTs, distinct keys - edgekv (default sync = fsync) vs etcd
#            (default durable config, HTTP/JSON gateway POST /v3/kv/put)
#
# Usage: bench/run.sh            (about 2.5 minutes with the defaults)
# Env:   DURATION=5   seconds per measured wrk run      ROUNDS=5   alternating rounds
#        CONNS=64     wrk connections                    THREADS=1  wrk threads
#        WARMUP=2     seconds of unrecorded warm-up per server before the rounds
#        SCENARIOS=get,put   which scenarios             PIN=1  pin client/server CPUs (GET)
#        NICE=-10            servers and wrk run at this nice level (default -10 as root, else 0)
#        EDGEKV_BIN=path     use this binary instead of building build/edgekv
#        SKIP_EDGEKV=1       peers only (to check the peer setups)     KEEP=1 keep the temp dir
# Output: a table and one "BENCH key=value ..." line per scenario, also written to
#         bench/results/<timestamp>.txt (raw wrk outputs in <timestamp>.raw.txt).
# See bench/README.md for the method and how to read the figures.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

bench_params
SCENARIOS=${SCENARIOS:-get,put}
SKIP_EDGEKV=${SKIP_EDGEKV:-0}
VALUE_SIZE=100

STATS="python3 $BENCH_DIR/lib/wrkstats.py"
CLK_TCK=$(getconf CLK_TCK)

bench_install_trap
bench_need wrk:wrk nginx:nginx-light h2o:h2o etcd:etcd-server curl:curl python3:python3
NGINX=$(bench_nginx_bin)
bench_mkwork

# Pinning (GET scenario): the client on CPU 0, each server on CPU 1, so client and server
# never fight for the same core and every server gets exactly one core for its one worker.
CLIENT_CPU=""; SERVER_CPU=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    CLIENT_CPU=0; SERVER_CPU=1
fi

bench_results ""

if [ "$SKIP_EDGEKV" != 1 ]; then
    bench_build_edgekv
fi

# --- header -----------------------------------------------------------------------------------
n_get=0; n_put=0
[[ ,$SCENARIOS, == *,get,* ]] && n_get=3
[[ ,$SCENARIOS, == *,put,* ]] && n_put=2
est=$(((n_get + n_put) * (ROUNDS * DURATION + WARMUP) + 15))
say "edgekv bench  $TS"
say "machine: $(nproc) cpus, $(uname -sr), work dir on $(df -P "$BENCH_WORK" | awk 'NR==2{print $1}'), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "edgekv:  ${EDGEKV_BIN:-skipped} (commit $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo none))"
say "peers:   nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), h2o $(h2o --version | awk 'NR==1{print $3}'), etcd $(etcd --version | awk 'NR==1{print $3}'), wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}')"
say "params:  DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS=$CONNS THREADS=$THREADS WARMUP=${WARMUP}s NICE=${NICE:-0} value=${VALUE_SIZE}B pin=$([ -n "$CLIENT_CPU" ] && echo "client cpu $CLIENT_CPU, GET servers cpu $SERVER_CPU" || echo off)"
log "expected run time ~${est}s"

# --- one measured wrk run ---------------------------------------------------------------------
# run_one SCENARIO SERVER ROUND PID WRK_ARGS...   (ROUND 0 = warm-up, not recorded)
run_one() {
    local scen=$1 srv=$2 round=$3 pid=$4; shift 4
    local raw="$BENCH_WORK/wrk-$scen-$srv-$round.txt" dur=$DURATION t0 t1 stats
    [ "$round" = 0 ] && dur=$WARMUP
    [ "$dur" -ge 1 ] || return 0
    kill -0 "$pid" 2>/dev/null || die "$srv (pid $pid) is not running"
    t0=$(bench_cpu_ticks "$pid")
    # shellcheck disable=SC2046
    if ! bench_run_bg timeout $((dur + 30)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 5s --latency "$@" >"$raw" 2>&1; then
        cat "$raw" >&2
        die "wrk failed against $srv"
    fi
    t1=$(bench_cpu_ticks "$pid")
    kill -0 "$pid" 2>/dev/null || die "$srv (pid $pid) died during the run"
    stats=$($STATS parse "$raw")
    { echo "### $scen $srv round $round"; cat "$raw"; echo; } >>"$RAW"
    [ "$round" = 0 ] && return 0
    echo "$scen $srv $round $stats $(awk -v t=$((t1 - t0)) -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}')" >>"$RECORDS"
    read -r rps _ p99 _ bad err <<<"$stats"
    local warn=""
    [ "$bad" != 0 ] && warn+="  non-2xx=$bad"
    [ "$err" != 0 ] && warn+="  socket-errors=$err"
    log "$scen round $round $(printf '%-6s' "$srv") $(printf '%9.0f' "$rps") req/s  p99 ${p99} ms$warn"
}

# ekv_metrics URL SCENARIO - edgekv's own counters into the raw file, and one summary line
# (cache hits for get; writes per group commit and time per commit for put).
ekv_metrics() {
    local m="$BENCH_WORK/metrics-$2.txt"
    curl -s --max-time 5 "$1/metrics" >"$m" || { : >"$m"; }
    { echo "### edgekv /metrics after $2"
      awk '!/^#/ && tolower($0) ~ /cache|commit|fsync|sync|http_requests_total/' "$m"; echo; } >>"$RAW"
    EKV_NOTE=$(awk -v scen="$2" '
        $1 == "edgekv_cache_hits_total" { hits = $2 }
        $1 == "edgekv_cache_misses_total" { miss = $2 }
        $1 == "edgekv_commits_total" { commits = $2 }
        $1 == "edgekv_committed_ops_total" { ops = $2 }
        $1 == "edgekv_commit_seconds_total" { secs = $2 }
        END {
            if (scen == "get" && hits + miss > 0)
                printf "edgekv counters: cache hits %d, misses %d", hits, miss
            if (scen == "put" && commits > 0)
                printf "edgekv counters: %d writes in %d group commits = %.1f writes/commit, %.2f ms/commit (incl. fsync)", ops, commits, ops / commits, secs * 1000 / commits
        }' "$m")
}
EKV_NOTE=""

# rotate LIST N: the list rotated left by N (alternate the order between rounds)
rotate() {
    local n=$1; shift
    local a=("$@") i
    for ((i = 0; i < ${#a[@]}; i++)); do printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"; done
}

# --- (a) cached GET ---------------------------------------------------------------------------
scenario_get() {
    local p_ekv p_ngx p_h2o
    read -r p_ekv p_ngx p_h2o <<<"$(bench_free_ports 3)"
    bench_static_peers "$p_ngx" "$p_h2o"
    local ngx_pid=$NGX_PID h2o_pid=$H2O_PID ngx_url=$NGX_URL h2o_url=$H2O_URL

    local servers=(nginx h2o) ekv_url="" ekv_pid=""
    if [ "$SKIP_EDGEKV" != 1 ]; then
        bench_start_edgekv edgekv-get "$SERVER_CPU" "$BENCH_WORK/edgekv-get-data" "$p_ekv"
        ekv_pid=$EKV_PID
        local ns code
        ns=$(bench_edgekv_namespace "$EKV_URL" bench)
        bench_edgekv_put "$EKV_URL" "$ns" bench-get "$BENCH_WORK/www/v100"
        code=$(bench_edgekv_get "$EKV_URL" "$ns" bench-get "$BENCH_WORK/get.out")
        [ "$code" = 200 ] && cmp -s "$BENCH_WORK/get.out" "$BENCH_WORK/www/v100" ||
            die "edgekv GET after PUT: HTTP $code, body $(head -c 200 "$BENCH_WORK/get.out")"
        bench_edgekv_get "$EKV_URL" "$ns" bench-get /dev/null >/dev/null # warm the cache
        ekv_url="$EKV_URL/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$ns/values/bench-get"
        servers=(edgekv nginx h2o)
    fi

    local -A url=([edgekv]=$ekv_url [nginx]=$ngx_url [h2o]=$h2o_url)
    local -A pid=([edgekv]=$ekv_pid [nginx]=$ngx_pid [h2o]=$h2o_pid)
    # Every server gets the very same request headers (nginx and h2o ignore Authorization).
    local auth="Authorization: Bearer $EKV_TOKEN" r s
    log "get: warm-up ${WARMUP}s each, then $ROUNDS rounds x ${DURATION}s, order rotating"
    for r in $(seq 0 "$ROUNDS"); do
        for s in $(rotate "$r" "${servers[@]}"); do
            run_one get "$s" "$r" "${pid[$s]}" -H "$auth" "${url[$s]}"
        done
    done
    if [ -n "$ekv_pid" ]; then
        ekv_metrics "$EKV_URL" get
        bench_stop "$ekv_pid"
    fi
    bench_stop "$h2o_pid"; bench_stop "$ngx_pid"
    $STATS report "$RECORDS" get edgekv nginx,h2o 1.0 | tee -a "$OUT"
    if [ -n "$EKV_NOTE" ]; then say "$EKV_NOTE"; fi
    EKV_NOTE=""
}

# --- (b) durable PUT --------------------------------------------------------------------------
scenario_put() {
    local p_ekv p_etcd p_peer
    read -r p_ekv p_etcd p_peer <<<"$(bench_free_ports 3)"
    local etcd_url="http://127.0.0.1:$p_etcd"
    # etcd: single member, defaults otherwise (WAL fsync'd before each acknowledged commit).
    # Servers are not pinned here: both use several threads (etcd GOMAXPROCS = all CPUs;
    # edgekv event loop + committer + RocksDB). Only the client stays on CPU 0.
    bench_start etcd "" "$BENCH_WORK/etcd.log" etcd --name bench --data-dir "$BENCH_WORK/etcd-data" \
        --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
        --listen-peer-urls "http://127.0.0.1:$p_peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$p_peer" \
        --initial-cluster "bench=http://127.0.0.1:$p_peer" \
        --logger zap --log-outputs stderr --log-level warn
    local etcd_pid=$BENCH_LAST_PID
    bench_wait_http "$etcd_url/health" "$etcd_pid" 30 || { tail -20 "$BENCH_WORK/etcd.log" >&2; die "etcd not healthy"; }
    curl -sf --max-time 5 -X POST "$etcd_url/v3/kv/put" -d '{"key":"YmVuY2g=","value":"eA=="}' \
        | grep -q '"revision"' || die "etcd: POST /v3/kv/put does not work"

    local servers=(etcd) ekv_pid="" ekv_url=""
    if [ "$SKIP_EDGEKV" != 1 ]; then
        bench_start_edgekv edgekv-put "" "$BENCH_WORK/edgekv-put-data" "$p_ekv"
        ekv_pid=$EKV_PID; ekv_url=$EKV_URL
        local ns
        ns=$(bench_edgekv_namespace "$EKV_URL" bench)
        export EDGEKV_BENCH_VALUES="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$ns/values/"
        export EDGEKV_BENCH_TOKEN=$EKV_TOKEN
        servers=(edgekv etcd)
    fi
    export BENCH_VALUE_SIZE=$VALUE_SIZE

    local r s
    local args_edgekv=(-s "$BENCH_DIR/lua/edgekv_put.lua" "$ekv_url")
    local args_etcd=(-s "$BENCH_DIR/lua/etcd_put.lua" "$etcd_url")
    log "put: warm-up ${WARMUP}s each, then $ROUNDS rounds x ${DURATION}s, order alternating"
    for r in $(seq 0 "$ROUNDS"); do
        export BENCH_PREFIX="r$r"
        for s in $(rotate "$r" "${servers[@]}"); do
            if [ "$s" = edgekv ]; then run_one put edgekv "$r" "$ekv_pid" "${args_edgekv[@]}"
            else run_one put etcd "$r" "$etcd_pid" "${args_etcd[@]}"; fi
        done
    done

    # Spot checks: the benchmark really wrote what it claims (a key of round 1; wrk builds and
    # drops one request per thread at start-up, so key 1 is never sent).
    local k="r1-t0-0000000010"
    local kb64
    kb64=$(printf '%s' "$k" | base64)
    curl -s --max-time 5 -X POST "$etcd_url/v3/kv/range" -d "{\"key\":\"$kb64\"}" | grep -q '"kvs"' ||
        die "etcd: key $k missing after the run"
    if [ -n "$ekv_pid" ]; then
        local code
        code=$(bench_edgekv_get "$ekv_url" "$ns" "$k" "$BENCH_WORK/get.out")
        [ "$code" = 200 ] && [ "$(wc -c <"$BENCH_WORK/get.out")" -eq "$VALUE_SIZE" ] ||
            die "edgekv: key $k not readable after the run (HTTP $code)"
        ekv_metrics "$ekv_url" put
        bench_stop "$ekv_pid"
    fi
    bench_stop "$etcd_pid"
    $STATS report "$RECORDS" put edgekv etcd 3.0 | tee -a "$OUT"
    if [ -n "$EKV_NOTE" ]; then say "$EKV_NOTE"; fi
    EKV_NOTE=""
}

[ "$n_get" -gt 0 ] && scenario_get
[ "$n_put" -gt 0 ] && scenario_put

say "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine widens the per-round spread; re-run when it is quiet)"
say "results: ${OUT#"$REPO_DIR"/} (raw wrk output: ${RAW#"$REPO_DIR"/})"
