#!/usr/bin/env bash
# shellcheck disable=SC2015,SC2086  # "cond && cond || die" is meant; $DRV / $STATS are
# "python3 script" (two words on purpose)
# bench/do.sh - Durable Objects on a standalone edgekv (default sync = fsync), in one run;
#               forward: on a cluster (primary + 2 edges).
#
#   (a) storage  small put+get pairs (100-byte JSON values) on ONE object: alternating
#                POST .../storage/put {"entries":{"k<n>":"vvv..."}} and POST .../storage/get
#                {"keys":["k<n>"]}; the same spread over 64 objects; and as the peer, in the
#                same run on the same edgekv, KV PUT+GET of one key (PUT .../values/{key}, GET
#                it). Goal printed (never enforced): >= 5,000 put+get ops/s on one object.
#   (b) call     POST .../objects/{id}/fetch/ping forwarded to a trivial upstream answering
#                200 "ok" (nginx-light `return 200`, or node with UPSTREAM=node): on one object
#                (the object runs its calls one at a time) and over 64 objects; the peer is
#                wrk straight to the same upstream (POST /ping).
#   (c) alarm    ALARMS objects (10,000; 1,000 with SMALL=1) each get an alarm for the same
#                second T; a node upstream records when each POST /__edgekv/alarm arrives:
#                lateness (arrival - T) p50/p99/max, time until all arrived; every alarm
#                must arrive exactly once, answered 2xx, no retry (else exit 1 at the end).
#   (d) forward  OPT-IN (not in the default SCENARIOS: it adds ~2.5 minutes): a cluster of a primary
#                (--sync fsync) and two edges e1, e2 (Durable Objects owned by edges). The storage
#                put+get load of (a) on ONE object owned by e1 (ids from names until do-owner
#                says e1), and over OBJECTS objects owned by e1: own1obj / own64obj through e1
#                (the owner), fwd1obj / fwd64obj through e2 (every call forwarded to e1 over the
#                internal link); order reversed every other round. Ratio forwarded/owner of the
#                medians; e2's edgekv_do_forwarded_calls_total must grow by at least the requests
#                wrk counted through it and e2 run no storage op itself, e1's counter must not
#                grow, the table must not change, puts read back via the other edge (else exit 1).
#
# Usage: bench/do.sh            (about 3.3 minutes with the defaults; DURATION=5 ROUNDS=3: ~2.5)
#        SCENARIOS=forward bench/do.sh   (about 2.5 minutes with the defaults)
# Env:   DURATION=5   seconds per measured wrk run      ROUNDS=5   alternating rounds
#        CONNS=64     wrk connections                    THREADS=1  wrk threads
#        WARMUP=2     seconds of unrecorded warm-up per config before the rounds
#        SCENARIOS=storage,call,alarm   which parts to run (add forward for (d))
#        OBJECTS=64   objects of the "spread" configs of storage, call and forward
#        UPSTREAM=nginx   call: the trivial upstream, nginx (nginx-light) or node
#        ALARMS=10000     alarm: objects (and alarms); SMALL=1 makes the default 1000
#        ALARM_LEAD=5     alarm: T = now + max(2 s, 4 x the time the ids took) + ALARM_LEAD s,
#                         rounded up to a whole second (the margin left is printed)
#        ALARM_THREADS=16 alarm: client threads (keep-alive connections) creating ids and alarms
#        ALARM_TIMEOUT=60 alarm: seconds after T to wait for every delivery (then fail)
#        PIN=1        wrk on CPU 0 (servers are not pinned: edgekv is multi-threaded)
#        NICE=-10     servers and wrk run at this nice level (default -10 as root, else 0)
#        EDGEKV_BIN=path  use this binary instead of building build/edgekv    KEEP=1 keep the temp dir
# Output: tables and one "BENCH ..." line per part, also written to bench/results/<ts>-do.txt
#         (raw wrk outputs and edgekv's DO counters in <ts>-do.raw.txt).
# See bench/README.md ("Durable Objects: bench/do.sh") for the method and how to read it.
set -euo pipefail

# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

bench_params
SCENARIOS=${SCENARIOS:-storage,call,alarm}
SMALL=${SMALL:-0}
OBJECTS=${OBJECTS:-64}
UPSTREAM=${UPSTREAM:-nginx}
ALARMS=${ALARMS:-$([ "$SMALL" = 1 ] && echo 1000 || echo 10000)}
ALARM_LEAD=${ALARM_LEAD:-5}
ALARM_THREADS=${ALARM_THREADS:-16}
ALARM_TIMEOUT=${ALARM_TIMEOUT:-60}
STORAGE_GOAL=5000 # put+get ops/s on one object (the issue's goal; Cloudflare's soft limit: 1,000 req/s)
VALUE_SIZE=100
for v in OBJECTS ALARMS ALARM_LEAD ALARM_THREADS ALARM_TIMEOUT; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 1 ] || die "$v must be an integer >= 1 (got '${!v}')"
done
case "$UPSTREAM" in nginx|node) ;; *) die "UPSTREAM must be nginx or node (got '$UPSTREAM')" ;; esac

STATS="python3 $BENCH_DIR/lib/wrkstats.py"
DRV="python3 $BENCH_DIR/lib/dodriver.py"
LUA="$BENCH_DIR/lua/do_bench.lua"
CLK_TCK=$(getconf CLK_TCK)

has() { [[ ,$SCENARIOS, == *,$1,* ]]; }

bench_install_trap
need=(wrk:wrk curl:curl python3:python3)
has alarm && need+=(node:nodejs)
has call && [ "$UPSTREAM" = node ] && need+=(node:nodejs)
has call && [ "$UPSTREAM" = nginx ] && need+=(nginx:nginx-light)
bench_need "${need[@]}"
NGINX=$(bench_nginx_bin)
bench_mkwork

CLIENT_CPU=""
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
    CLIENT_CPU=0
fi

bench_results "-do"
bench_build_edgekv
export DO_TOKEN=$EKV_TOKEN

est=10
has storage && est=$((est + 3 * (ROUNDS * DURATION + WARMUP) + 5))
has call && est=$((est + 3 * (ROUNDS * DURATION + WARMUP) + 5))
has forward && est=$((est + 4 * (ROUNDS * DURATION + WARMUP) + 25))
has alarm && est=$((est + ALARMS * 2 / 1000 + ALARM_LEAD + 10))
say "edgekv durable objects bench  $TS"
say "machine: $(nproc) cpus, $(uname -sr), work dir on $(df -P "$BENCH_WORK" | awk 'NR==2{print $1}'), load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
say "edgekv:  $EDGEKV_BIN (commit $(git -C "$REPO_DIR" describe --always --dirty 2>/dev/null || echo none)), standalone, --sync fsync$(has forward && echo "; forward: primary (--sync fsync) + edges e1, e2" || true)"
tools="wrk $(wrk -v 2>&1 | awk 'NR==1{print $2}' || true), $(python3 --version)"
if has alarm || [ "$UPSTREAM" = node ]; then tools+=", node $(node --version)"; fi
if has call && [ "$UPSTREAM" = nginx ]; then tools+=", nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///' || true)"; fi
say "tools:   $tools"
say "params:  SCENARIOS=$SCENARIOS DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS=$CONNS THREADS=$THREADS WARMUP=${WARMUP}s NICE=${NICE:-0} value=${VALUE_SIZE}B JSON OBJECTS=$OBJECTS UPSTREAM=$UPSTREAM pin=$([ -n "$CLIENT_CPU" ] && echo "client cpu $CLIENT_CPU" || echo off)"
say "         ALARMS=$ALARMS ALARM_LEAD=${ALARM_LEAD}s ALARM_THREADS=$ALARM_THREADS ALARM_TIMEOUT=${ALARM_TIMEOUT}s"
log "expected run time ~${est}s"

WRONG=()   # correctness failures (the script exits 1 at the end when any)

# --- helpers ----------------------------------------------------------------------------------

# rotate LIST N: the list rotated left by N (alternate the order between rounds)
rotate() {
    local n=$1; shift
    local a=("$@") i
    for ((i = 0; i < ${#a[@]}; i++)); do printf '%s ' "${a[$(((i + n) % ${#a[@]}))]}"; done
}

cpu_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN{printf "%.3f", t/hz}'; }

# ticks "PID PID..." - CPU ticks of those processes (and their children), summed
ticks() {
    local p s=0
    for p in $1; do s=$((s + $(bench_cpu_ticks "$p"))); done
    echo "$s"
}

# run_one SCEN CONFIG ROUND "PIDS" WRK_ARGS...   (ROUND 0 = warm-up, not recorded). The CPU
# column is that of PIDS (the server side of the config) over the run.
run_one() {
    local scen=$1 cfg=$2 round=$3 pids=$4; shift 4
    local raw="$BENCH_WORK/wrk-$scen-$cfg-$round.txt" dur=$DURATION t0 t1 stats p
    [ "$round" = 0 ] && dur=$WARMUP
    [ "$dur" -ge 1 ] || return 0
    for p in $pids; do kill -0 "$p" 2>/dev/null || die "$cfg: pid $p is not running"; done
    t0=$(ticks "$pids")
    # shellcheck disable=SC2046
    if ! bench_run_bg timeout $((dur + 30)) $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t"$THREADS" -c"$CONNS" -d"${dur}s" --timeout 5s --latency "$@" >"$raw" 2>&1; then
        cat "$raw" >&2
        die "wrk failed ($scen $cfg)"
    fi
    t1=$(ticks "$pids")
    for p in $pids; do kill -0 "$p" 2>/dev/null || die "$cfg: pid $p died during the run"; done
    stats=$($STATS parse "$raw")
    { echo "### $scen $cfg round $round"; cat "$raw"; echo; } >>"$RAW"
    [ "$round" = 0 ] && return 0
    echo "$scen $cfg $round $stats $(cpu_s $((t1 - t0)))" >>"$RECORDS"
    local rps p50 p99 bad err warn=""
    read -r rps p50 p99 _ bad err <<<"$stats"
    [ "$bad" != 0 ] && warn+="  non-2xx=$bad"
    [ "$err" != 0 ] && warn+="  socket-errors=$err"
    log "$scen round $round $(printf '%-6s' "$cfg") $(printf '%9.0f' "$rps") req/s  p50 ${p50} ms  p99 ${p99} ms$warn"
}

# metric URL NAME - one value from edgekv's /metrics ("" when absent)
metric() { curl -s --max-time 5 "$1/metrics" | awk -v n="$2" '$1 == n && !f { print $2; f = 1 }'; }

# do_metrics URL WHAT - edgekv's DO and commit counters into the raw file
do_metrics() {
    { echo "### edgekv /metrics after $2"
      curl -s --max-time 5 "$1/metrics" | awk '!/^#/ && /^edgekv_(do_|commit|committed|fsync)/'
      echo; } >>"$RAW"
}

# commit_note URL - writes per group commit and time per commit (as run.sh prints for put)
commit_note() {
    curl -s --max-time 5 "$1/metrics" | awk '
        $1 == "edgekv_commits_total" { commits = $2 }
        $1 == "edgekv_committed_ops_total" { ops = $2 }
        $1 == "edgekv_commit_seconds_total" { secs = $2 }
        $1 == "edgekv_do_storage_ops_total" { dops = $2 }
        $1 == "edgekv_do_writes_total" { dw = $2 }
        END {
            if (commits > 0)
                printf "edgekv counters: %d DO storage ops (%d writes); %d writes in %d group commits = %.1f writes/commit, %.2f ms/commit (incl. fsync)", dops, dw, ops, commits, ops / commits, secs * 1000 / commits
        }'
}

# do_namespace URL NAME [SCRIPT] -> prints the namespace id
do_namespace() {
    bench_edgekv_create "$1" workers/durable_objects/namespaces \
        "{\"name\":\"$2\",\"class\":\"Bench\"${3:+,\"script\":\"$3\"}}" "DO namespace"
}

# start_node_upstream NAME PORT -> NODE_PID, NODE_URL
start_node_upstream() {
    bench_start "$1" "" "$BENCH_WORK/$1.log" node "$BENCH_DIR/lib/do_upstream.js" "$2"
    NODE_PID=$BENCH_LAST_PID
    NODE_URL="http://127.0.0.1:$2"
    bench_wait_http "$NODE_URL/ping" "$NODE_PID" 20 || { cat "$BENCH_WORK/$1.log" >&2; die "$1 does not answer"; }
}

# start_nginx_upstream PORT -> NGX_PID, NGX_URL: `return 200 "ok"` on every path, tuned as
# run.sh tunes nginx (one worker, no access log, keep-alive never cut)
start_nginx_upstream() {
    mkdir -p "$BENCH_WORK/nginx"
    cat >"$BENCH_WORK/nginx-up.conf" <<EOF
worker_processes 1;
daemon off;
pid $BENCH_WORK/nginx-up.pid;
error_log $BENCH_WORK/nginx-up-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $BENCH_WORK/nginx/body;
    proxy_temp_path $BENCH_WORK/nginx/proxy;
    fastcgi_temp_path $BENCH_WORK/nginx/fastcgi;
    uwsgi_temp_path $BENCH_WORK/nginx/uwsgi;
    scgi_temp_path $BENCH_WORK/nginx/scgi;
    default_type text/plain;
    tcp_nodelay on;
    keepalive_requests 1000000000;
    keepalive_timeout 75s;
    server {
        listen 127.0.0.1:$1;
        location / { return 200 "ok"; }
    }
}
EOF
    bench_start nginx-up "" "$BENCH_WORK/nginx-up.out" \
        "$NGINX" -p "$BENCH_WORK" -c "$BENCH_WORK/nginx-up.conf" -e "$BENCH_WORK/nginx-up-error.log"
    NGX_PID=$BENCH_LAST_PID
    NGX_URL="http://127.0.0.1:$1"
    bench_wait_http "$NGX_URL/ping" "$NGX_PID" 20 ||
        { cat "$BENCH_WORK/nginx-up.out" "$BENCH_WORK/nginx-up-error.log" >&2; die "nginx upstream does not answer"; }
}

# --- (a) storage: put+get pairs on one object / 64 objects / KV one key ----------------------

scenario_storage() {
    local port ns kvns nspath ids one all r c
    port=$(bench_free_ports 1)
    bench_start_edgekv edgekv-storage "" "$BENCH_WORK/edgekv-storage-data" "$port" --sync fsync
    local pid=$EKV_PID url=$EKV_URL
    ns=$(do_namespace "$url" bench-storage)
    nspath="/client/v4/accounts/$EKV_ACCOUNT/workers/durable_objects/namespaces/$ns"
    $DRV ids "$url" "$nspath" s "$OBJECTS" 4 "$BENCH_WORK/storage-ids.txt" >/dev/null || die "storage: object ids failed"
    one=$(head -1 "$BENCH_WORK/storage-ids.txt")
    all=$(paste -sd, "$BENCH_WORK/storage-ids.txt")
    kvns=$(bench_edgekv_namespace "$url" bench-kv)
    # one round trip before the runs
    curl -sf --max-time 10 -X POST -H "Authorization: Bearer $EKV_TOKEN" -H 'Content-Type: application/json' \
        --data '{"entries":{"check":"ok"}}' "$url$nspath/objects/$one/storage/put" >/dev/null || die "storage: put failed"
    curl -sf --max-time 10 -X POST -H "Authorization: Bearer $EKV_TOKEN" -H 'Content-Type: application/json' \
        --data '{"keys":["check"]}' "$url$nspath/objects/$one/storage/get" | grep -q '"check":"ok"' ||
        die "storage: get after put does not give the value"

    export DO_BASE="$nspath/objects/" BENCH_VALUE_SIZE=$VALUE_SIZE
    export EDGEKV_BENCH_VALUES="/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$kvns/values/"
    export EDGEKV_BENCH_TOKEN=$EKV_TOKEN EDGEKV_BENCH_KEY=putget
    local cfgs=(1obj "${OBJECTS}obj" kv1key)
    log "storage: warm-up ${WARMUP}s each, then $ROUNDS rounds x ${DURATION}s, order rotating (1obj, ${OBJECTS}obj: DO put+get; kv1key: KV PUT+GET of one key)"
    for r in $(seq 0 "$ROUNDS"); do
        for c in $(rotate "$r" "${cfgs[@]}"); do
            export BENCH_PREFIX="r$r-$c"
            case "$c" in
                1obj) DO_MODE=storage DO_OBJS=$one run_one do_storage "$c" "$r" "$pid" -s "$LUA" "$url" ;;
                kv1key) run_one do_storage "$c" "$r" "$pid" -s "$BENCH_DIR/lua/edgekv_putget.lua" "$url" ;;
                *) DO_MODE=storage DO_OBJS=$all run_one do_storage "$c" "$r" "$pid" -s "$LUA" "$url" ;;
            esac
        done
    done
    # spot checks: the writes happened (pair 10 of round 1: object 0 for 1obj, object 10 mod N
    # for the spread; wrk builds and drops one request per thread at start-up, so pair 10 is sent)
    $DRV storage-check "$url" "$nspath" "$one" "r1-1obj-k0000000010" "$VALUE_SIZE" ||
        WRONG+=("storage: 1obj key of round 1 not readable after the runs")
    $DRV storage-check "$url" "$nspath" "$(sed -n "$((10 % OBJECTS + 1))p" "$BENCH_WORK/storage-ids.txt")" \
        "r1-${OBJECTS}obj-k0000000010" "$VALUE_SIZE" ||
        WRONG+=("storage: ${OBJECTS}obj key of round 1 not readable after the runs")
    local code
    code=$(bench_edgekv_get "$url" "$kvns" putget "$BENCH_WORK/get.out")
    [ "$code" = 200 ] && [ "$(wc -c <"$BENCH_WORK/get.out")" -eq "$VALUE_SIZE" ] ||
        WRONG+=("storage: KV key putget not readable after the runs (HTTP $code)")
    do_metrics "$url" storage
    local note
    note=$(commit_note "$url")
    bench_stop "$pid"

    $STATS report "$RECORDS" do_storage 1obj "kv1key,${OBJECTS}obj" | tee -a "$OUT"
    python3 - "$RECORDS" "$OBJECTS" "$STORAGE_GOAL" <<'PY' | tee -a "$OUT"
import statistics, sys
recs, nobj, goal = sys.argv[1], sys.argv[2], float(sys.argv[3])
rows = {}
for line in open(recs):
    p = line.split()
    if len(p) >= 10 and p[0] == "do_storage":
        rows.setdefault(p[1], {})[int(p[2])] = float(p[3])
med = {k: statistics.median(v.values()) for k, v in rows.items()}
spread, one, kv = f"{nobj}obj", med.get("1obj"), med.get("kv1key")
if spread in med and kv:
    pr = sorted(rows[spread][r] / rows["kv1key"][r] for r in rows[spread] if r in rows["kv1key"])
    print(f"  {spread}/kv1key:  throughput {med[spread] / kv:.2f}x (per-round {pr[0]:.2f}..{pr[-1]:.2f})")
if one is not None:
    met = one >= goal
    pairs = one / 2
    print(f"  one object: {one:.0f} put+get ops/s = {pairs:.0f} put+get pairs/s (median of rounds; "
          f"min {min(rows['1obj'].values()):.0f}); goal >= {goal:.0f} ops/s on one object: "
          f"{'met' if met else 'NOT met'} (counted as pairs: {'met' if pairs >= goal else 'NOT met'}); "
          f"Cloudflare's soft limit: 1,000 req/s per object")
    print(f"BENCH scenario=do_storage_goal one_obj_ops={one:.0f} one_obj_pairs={pairs:.0f} goal_ops={goal:.0f} "
          f"met={'yes' if met else 'no'} met_as_pairs={'yes' if pairs >= goal else 'no'}")
PY
    [ -n "$note" ] && say "$note"
    say "  (one request = one storage op: a put of 1 key or a get of 1 key; every put is durable (fsync) before its answer)"
}

# --- (b) forwarded calls: one object / 64 objects / the upstream directly ----------------------

scenario_call() {
    local p_ekv p_up up_url up_pid ns nspath one all r c
    read -r p_ekv p_up <<<"$(bench_free_ports 2)"
    if [ "$UPSTREAM" = nginx ]; then
        start_nginx_upstream "$p_up"; up_url=$NGX_URL; up_pid=$NGX_PID
    else
        start_node_upstream node-call "$p_up"; up_url=$NODE_URL; up_pid=$NODE_PID
    fi
    bench_start_edgekv edgekv-call "" "$BENCH_WORK/edgekv-call-data" "$p_ekv" --sync fsync
    local pid=$EKV_PID url=$EKV_URL
    ns=$(do_namespace "$url" bench-call "$up_url")
    nspath="/client/v4/accounts/$EKV_ACCOUNT/workers/durable_objects/namespaces/$ns"
    $DRV ids "$url" "$nspath" c "$OBJECTS" 4 "$BENCH_WORK/call-ids.txt" >/dev/null || die "call: object ids failed"
    one=$(head -1 "$BENCH_WORK/call-ids.txt")
    all=$(paste -sd, "$BENCH_WORK/call-ids.txt")
    local body code
    body=$(curl -s --max-time 10 -o - -w ' %{http_code}' -X POST -H "Authorization: Bearer $EKV_TOKEN" \
        "$url$nspath/objects/$one/fetch/ping")
    [ "$body" = "ok 200" ] || die "call: fetch/ping through edgekv answered '$body' (want 'ok 200')"
    code=$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X POST "$up_url/ping")
    [ "$code" = 200 ] || die "call: the upstream answered $code"

    export DO_BASE="$nspath/objects/"
    local calls0 errs0
    calls0=$(metric "$url" edgekv_do_calls_total); errs0=$(metric "$url" edgekv_do_call_errors_total)
    local cfgs=(1obj "${OBJECTS}obj" direct)
    log "call: warm-up ${WARMUP}s each, then $ROUNDS rounds x ${DURATION}s, order rotating (upstream: $UPSTREAM $up_url)"
    for r in $(seq 0 "$ROUNDS"); do
        for c in $(rotate "$r" "${cfgs[@]}"); do
            case "$c" in
                1obj) DO_MODE=fetch DO_OBJS=$one run_one do_call "$c" "$r" "$pid $up_pid" -s "$LUA" "$url" ;;
                direct) DO_MODE=direct run_one do_call "$c" "$r" "$up_pid $pid" -s "$LUA" "$up_url" ;;
                *) DO_MODE=fetch DO_OBJS=$all run_one do_call "$c" "$r" "$pid $up_pid" -s "$LUA" "$url" ;;
            esac
        done
    done
    local calls1 errs1 gate
    calls1=$(metric "$url" edgekv_do_calls_total); errs1=$(metric "$url" edgekv_do_call_errors_total)
    gate=$(metric "$url" edgekv_do_call_gate_timeouts_total)
    do_metrics "$url" call
    bench_stop "$pid"; bench_stop "$up_pid"

    $STATS report "$RECORDS" do_call 1obj "direct,${OBJECTS}obj" | tee -a "$OUT"
    python3 - "$RECORDS" "$OBJECTS" <<'PY' | tee -a "$OUT"
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) >= 10 and p[0] == "do_call":
        rows.setdefault(p[1], {})[int(p[2])] = (float(p[3]), float(p[5]))
spread = f"{sys.argv[2]}obj"
if spread in rows and "direct" in rows:
    m = statistics.median(v[0] for v in rows[spread].values())
    d = statistics.median(v[0] for v in rows["direct"].values())
    pr = sorted(rows[spread][r][0] / rows["direct"][r][0] for r in rows[spread] if r in rows["direct"])
    p99 = statistics.median(v[1] for v in rows[spread].values()) / statistics.median(v[1] for v in rows["direct"].values())
    print(f"  {spread}/direct:  throughput {m / d:.2f}x (per-round {pr[0]:.2f}..{pr[-1]:.2f})   p99 {p99:.2f}x")
if "1obj" in rows:
    m = statistics.median(v[0] for v in rows["1obj"].values())
    print(f"  one object: {m:.0f} calls/s, i.e. {1e6 / m:.0f} us per call end to end (the object runs one call at a time)")
PY
    say "edgekv counters over the runs: calls $((${calls1:-0} - ${calls0:-0})), call errors $((${errs1:-0} - ${errs0:-0})), gate timeouts ${gate:-?}"
    say "  (CPU us/req here: edgekv + upstream together, for every config; direct: the upstream's)"
    [ "$((${errs1:-0} - ${errs0:-0}))" = 0 ] || WRONG+=("call: edgekv counted $((errs1 - errs0)) call errors")
}

# --- (c) alarms: ALARMS objects, one alarm each, all due at the same second ---------------------

scenario_alarm() {
    local p_ekv p_up ns nspath secs t_ms now_ms res set_s bad errs last_ack
    read -r p_ekv p_up <<<"$(bench_free_ports 2)"
    start_node_upstream node-alarm "$p_up"
    local up_pid=$NODE_PID up_url=$NODE_URL
    # the upstream's alarm handler warmed up (node's JIT), records and counters reset
    # just before the alarms are set
    # shellcheck disable=SC2046
    DO_MODE=alarm bench_run_bg timeout 30 $(bench_nice_prefix) ${CLIENT_CPU:+taskset -c "$CLIENT_CPU"} \
        wrk -t1 -c16 -d2s -s "$LUA" "$up_url" >"$BENCH_WORK/wrk-alarm-warm.txt" 2>&1 ||
        { cat "$BENCH_WORK/wrk-alarm-warm.txt" >&2; die "alarm: warming the upstream failed"; }
    bench_start_edgekv edgekv-alarm "" "$BENCH_WORK/edgekv-alarm-data" "$p_ekv" --sync fsync
    local pid=$EKV_PID url=$EKV_URL
    ns=$(do_namespace "$url" bench-alarm "$up_url")
    nspath="/client/v4/accounts/$EKV_ACCOUNT/workers/durable_objects/namespaces/$ns"
    local ids="$BENCH_WORK/alarm-ids.txt"
    secs=$($DRV ids "$url" "$nspath" a "$ALARMS" "$ALARM_THREADS" "$ids") || die "alarm: object ids failed"
    log "alarm: $ALARMS object ids in ${secs}s"
    # T: a whole second, ALARM_LEAD s after the set-up is expected to end (setting an alarm is a
    # durable write; budgeted at 4x the time the ids took, at least 2 s)
    now_ms=$(date +%s%3N)
    t_ms=$(python3 -c "import math,sys; n,s,l=int(sys.argv[1]),float(sys.argv[2]),int(sys.argv[3]); print(int(math.ceil((n + max(2000, 4000*s) + 1000*l) / 1000)) * 1000)" "$now_ms" "$secs" "$ALARM_LEAD")
    curl -s --max-time 5 -X POST "$up_url/__bench/reset" >/dev/null
    local d0 r0 g0 t0 u0
    d0=$(metric "$url" edgekv_do_alarms_delivered_total); r0=$(metric "$url" edgekv_do_alarm_retries_total)
    g0=$(metric "$url" edgekv_do_alarms_given_up_total)
    res=$($DRV alarms "$url" "$nspath" "$ids" "$t_ms" "$ALARM_THREADS") || die "alarm: setting the alarms failed"
    read -r set_s bad errs last_ack <<<"$res"
    [ "$bad" = 0 ] && [ "$errs" = 0 ] || WRONG+=("alarm: $bad alarm PUTs answered non-200, $errs failed")
    local margin=$((t_ms - last_ack)) sched
    sched=$(metric "$url" edgekv_do_alarms_scheduled)
    log "alarm: $ALARMS alarms set in ${set_s}s ($(awk -v n="$ALARMS" -v s="$set_s" 'BEGIN{printf "%.0f", n/s}')/s), the last acked $((margin))ms before T; $sched scheduled"
    [ "$margin" -ge 1000 ] || WRONG+=("alarm: the last alarm was acked only ${margin} ms before T (raise ALARM_LEAD): lateness is not measured from a quiet start")
    [ "${sched:-0}" = "$ALARMS" ] || WRONG+=("alarm: edgekv has ${sched:-?} alarms scheduled after the PUTs, want $ALARMS")
    # idle until T, then count deliveries (the upstream's cheap counter, 10x/s) until all are
    # in; CPU of edgekv and the upstream from T - 0.5 s on
    local wait_s
    wait_s=$(awk -v t="$t_ms" -v n="$(date +%s%3N)" 'BEGIN{w=(t-n-500)/1000; print (w>0?w:0)}')
    sleep "$wait_s"
    t0=$(bench_cpu_ticks "$pid"); u0=$(bench_cpu_ticks "$up_pid")
    local got t1 u1
    got=$(timeout $((ALARM_TIMEOUT + 30)) $DRV wait "$up_url" "$ALARMS" $((t_ms + ALARM_TIMEOUT * 1000))) || got=0
    t1=$(bench_cpu_ticks "$pid"); u1=$(bench_cpu_ticks "$up_pid")
    [ "$got" -ge "$ALARMS" ] || WRONG+=("alarm: only $got of $ALARMS deliveries within ${ALARM_TIMEOUT}s of T")
    # settle: late duplicates, and the removal of every delivered alarm (a durable write each)
    local i left=-1 objs=-1
    for i in $(seq 50); do
        sleep 0.2
        left=$(metric "$url" edgekv_do_alarms_scheduled)
        objs=$(json_count_objects "$url" "$nspath")
        [ "$left" = 0 ] && [ "$objs" = 0 ] && [ "$i" -ge 10 ] && break
    done
    local d1 r1 g1
    d1=$(metric "$url" edgekv_do_alarms_delivered_total); r1=$(metric "$url" edgekv_do_alarm_retries_total)
    g1=$(metric "$url" edgekv_do_alarms_given_up_total)
    local upconns
    upconns=$(curl -s --max-time 5 "$up_url/__bench/conns")
    curl -s --max-time 30 "$up_url/__bench/alarms" >"$BENCH_WORK/alarms.txt" || die "alarm: cannot read the upstream's records"
    do_metrics "$url" alarm
    { echo "### alarm records (first 20 of $(wc -l <"$BENCH_WORK/alarms.txt"))"; head -20 "$BENCH_WORK/alarms.txt"; echo; } >>"$RAW"
    bench_stop "$pid"; bench_stop "$up_pid"

    local rep_rc=0
    $DRV report "$BENCH_WORK/alarms.txt" "$ids" "$t_ms" >"$BENCH_WORK/alarm-report.txt" || rep_rc=$?
    tee -a "$OUT" <"$BENCH_WORK/alarm-report.txt"
    [ "$rep_rc" = 0 ] || WRONG+=("alarm: not every alarm arrived exactly once (see the table)")
    local dd=$((${d1:-0} - ${d0:-0})) dr=$((${r1:-0} - ${r0:-0})) dg=$((${g1:-0} - ${g0:-0}))
    say "set-up: $ALARMS ids, then $ALARMS alarm PUTs in ${set_s}s with $ALARM_THREADS connections (each a durable write), the last acked ${margin} ms before T"
    say "edgekv counters: alarms delivered (2xx) $dd, retries $dr, given up $dg; after the settle: $left still scheduled, $objs objects with stored data"
    say "CPU from T-0.5s until all arrived: edgekv $(cpu_s $((t1 - t0))) s, upstream (node) $(cpu_s $((u1 - u0))) s; TCP connections the upstream accepted since the alarms were set: $((${upconns:-2} - 2)) (edgekv pools at most 64)"
    [ "$dd" = "$ALARMS" ] || WRONG+=("alarm: edgekv counted $dd alarms delivered with 2xx, want $ALARMS")
    [ "$dr" = 0 ] && [ "$dg" = 0 ] || WRONG+=("alarm: edgekv counted $dr retries, $dg given up")
    [ "$left" = 0 ] || WRONG+=("alarm: $left alarms still scheduled after the deliveries")
    [ "$objs" = 0 ] || WRONG+=("alarm: $objs objects still have stored data (an alarm not removed after its 2xx)")
}

# --- (d) forward: storage through the owner edge vs through the other edge ----------------------

scenario_forward() {
    local p_api p_repl ns nspath one all r c cfg settled tried
    local -A EPORT EPID EURL
    read -r p_api p_repl "EPORT[e1]" "EPORT[e2]" <<<"$(bench_free_ports 4)"
    local secret=$EDGEKV_CLUSTER_SECRET_FILE
    bench_start_edgekv fwd-p1 "" "$BENCH_WORK/fwd-p1-data" "$p_api" --role primary --node-id p1 \
        --repl-listen "127.0.0.1:$p_repl" --cluster-secret-file "$secret" --sync fsync
    local p1_pid=$EKV_PID p1_url=$EKV_URL
    # edges: no data dir, no credentials (they come with the change stream)
    local e e_pid e_url
    for e in 1 2; do
        bench_start "fwd-e$e" "" "$BENCH_WORK/fwd-e$e.log" "$EDGEKV_BIN" serve --role edge --node-id "e$e" \
            --listen "127.0.0.1:${EPORT[e$e]}" --primary "127.0.0.1:$p_repl" --cluster-secret-file "$secret"
        EPID[e$e]=$BENCH_LAST_PID; EURL[e$e]="http://127.0.0.1:${EPORT[e$e]}"
    done
    for e in 1 2; do
        e_pid=${EPID[e$e]}; e_url=${EURL[e$e]}
        bench_wait_http "$e_url/healthz" "$e_pid" 30 ||
            { tail -20 "$BENCH_WORK/fwd-e$e.log" >&2; die "forward: e$e: /healthz never answered 200"; }
    done
    local pids="$p1_pid ${EPID[e1]} ${EPID[e2]}" e1_url=${EURL[e1]} e2_url=${EURL[e2]}
    # both edges own partitions, nothing pending or left with the primary, one table everywhere
    settled=$($DRV settled 30 e1,e2 "$p1_url" "$e1_url" "$e2_url") ||
        die "forward: the DO partition table did not settle on e1+e2 within 30 s"
    local tv0
    tv0=$(cut -d' ' -f2 <<<"$settled")
    log "forward: DO table v$tv0 settled in $(cut -d' ' -f1 <<<"$settled") ms, partitions per owner $(cut -d' ' -f3 <<<"$settled")"

    ns=$(do_namespace "$p1_url" bench-forward)
    nspath="/client/v4/accounts/$EKV_ACCOUNT/workers/durable_objects/namespaces/$ns"
    # the token and the namespace reach both edges before they are used through them
    python3 "$BENCH_DIR/lib/edgeprobe.py" synced 30 "$p1_url" "$e1_url" "$e2_url" >/dev/null ||
        die "forward: the namespace did not reach e1 and e2 within 30 s"
    tried=$(DO_OP_TOKEN=$EKV_OPERATOR_TOKEN $DRV owned "$p1_url" "$nspath" f "$OBJECTS" e1 "$BENCH_WORK/fwd-ids.txt") ||
        die "forward: could not find $OBJECTS objects owned by e1"
    log "forward: $OBJECTS ids owned by e1 among the first $(cut -d' ' -f1 <<<"$tried") names (in $(cut -d' ' -f2 <<<"$tried") s)"
    one=$(head -1 "$BENCH_WORK/fwd-ids.txt")
    all=$(paste -sd, "$BENCH_WORK/fwd-ids.txt")
    # every node agrees that e1 owns the object, and e1 serves it
    local u o
    for u in "$p1_url" "$e1_url" "$e2_url"; do
        o=$(curl -s --max-time 5 -H "Authorization: Bearer $EKV_OPERATOR_TOKEN" \
            "$u/_edgekv/replication/do-owner?id=$one" |
            python3 -c 'import json,sys; r=json.load(sys.stdin)["result"]; print(r["owner"], r["pending"], r["served_here"], r["partition"])' 2>/dev/null) || o=""
        [ "${o%% *}" = e1 ] || die "forward: do-owner on $u says '$o' for $one (want owner e1)"
        [ "$u" != "$e1_url" ] || [ "$(cut -d' ' -f3 <<<"$o")" = True ] || die "forward: e1 does not serve $one ($o)"
    done
    log "forward: one object ${one:0:16}... (partition ${o##* }) owned by e1"
    # one round trip each way before the runs: written through e2, read through e1
    curl -sf --max-time 10 -X POST -H "Authorization: Bearer $EKV_TOKEN" -H 'Content-Type: application/json' \
        --data '{"entries":{"check":"ok"}}' "$e2_url$nspath/objects/$one/storage/put" >/dev/null ||
        die "forward: put through e2 failed"
    curl -sf --max-time 10 -X POST -H "Authorization: Bearer $EKV_TOKEN" -H 'Content-Type: application/json' \
        --data '{"keys":["check"]}' "$e1_url$nspath/objects/$one/storage/get" | grep -q '"check":"ok"' ||
        die "forward: get through e1 after a put through e2 does not give the value"

    export DO_BASE="$nspath/objects/" BENCH_VALUE_SIZE=$VALUE_SIZE
    local f1_0 f2_0 k1_0 k2_0 s1_0 s2_0
    f1_0=$(metric "$e1_url" edgekv_do_forwarded_calls_total); f2_0=$(metric "$e2_url" edgekv_do_forwarded_calls_total)
    k1_0=$(metric "$e1_url" edgekv_do_calls_parked_total); k2_0=$(metric "$e2_url" edgekv_do_calls_parked_total)
    s1_0=$(metric "$e1_url" edgekv_do_storage_ops_total); s2_0=$(metric "$e2_url" edgekv_do_storage_ops_total)
    [ -n "$f2_0" ] || die "forward: e2's /metrics has no edgekv_do_forwarded_calls_total"
    local spread="${OBJECTS}obj" cfgs order=(own1obj fwd1obj) i
    [ "$OBJECTS" -gt 1 ] && order+=("own$spread" "fwd$spread")   # OBJECTS=1: the spread is the one object
    log "forward: warm-up ${WARMUP}s each, then $ROUNDS rounds x ${DURATION}s, order reversed every other round (own*: through e1, the owner; fwd*: through e2, forwarded to e1)"
    for r in $(seq 0 "$ROUNDS"); do
        cfgs=("${order[@]}")
        if [ $((r % 2)) = 1 ]; then
            cfgs=(); for ((i = ${#order[@]} - 1; i >= 0; i--)); do cfgs+=("${order[$i]}"); done
        fi
        for c in "${cfgs[@]}"; do
            export BENCH_PREFIX="r$r-$c"
            u=$e1_url; [ "${c:0:3}" = fwd ] && u=$e2_url
            cfg=$all; [ "${c:3}" = 1obj ] && cfg=$one
            DO_MODE=storage DO_OBJS=$cfg run_one do_forward "$c" "$r" "$pids" -s "$LUA" "$u"
        done
        # (b) must have been forwarded: e2's counter grows with the first run through it
        if [ "$r" = 0 ] && [ "$WARMUP" -ge 1 ] && [ "$(metric "$e2_url" edgekv_do_forwarded_calls_total)" = "$f2_0" ]; then
            do_metrics "$e2_url" "forward warm-up (e2)"
            die "forward: e2 forwarded no call during the warm-up through it (edgekv_do_forwarded_calls_total stays $f2_0)"
        fi
    done
    local f1_1 f2_1 k1_1 k2_1 s1_1 s2_1 tv1
    f1_1=$(metric "$e1_url" edgekv_do_forwarded_calls_total); f2_1=$(metric "$e2_url" edgekv_do_forwarded_calls_total)
    k1_1=$(metric "$e1_url" edgekv_do_calls_parked_total); k2_1=$(metric "$e2_url" edgekv_do_calls_parked_total)
    s1_1=$(metric "$e1_url" edgekv_do_storage_ops_total); s2_1=$(metric "$e2_url" edgekv_do_storage_ops_total)
    tv1=$(json_get "$p1_url/_edgekv/replication/status" "r['durable_objects']['table_version']")
    # spot checks across the two paths: a put through e1 read through e2 and the other way round
    $DRV storage-check "$e2_url" "$nspath" "$one" "r1-own1obj-k0000000010" "$VALUE_SIZE" ||
        WRONG+=("forward: own1obj key of round 1 (put through e1) not readable through e2")
    $DRV storage-check "$e1_url" "$nspath" "$one" "r1-fwd1obj-k0000000010" "$VALUE_SIZE" ||
        WRONG+=("forward: fwd1obj key of round 1 (put through e2) not readable through e1")
    if [ "$OBJECTS" -gt 1 ]; then
        $DRV storage-check "$e1_url" "$nspath" "$(sed -n "$((10 % OBJECTS + 1))p" "$BENCH_WORK/fwd-ids.txt")" \
            "r1-fwd$spread-k0000000010" "$VALUE_SIZE" ||
            WRONG+=("forward: fwd$spread key of round 1 (put through e2) not readable through e1")
    fi
    do_metrics "$p1_url" "forward (p1)"; do_metrics "$e1_url" "forward (e1)"; do_metrics "$e2_url" "forward (e2)"
    # the primary commits (its DO counters stay 0: the owner e1 runs the objects)
    local note
    note=$(curl -s --max-time 5 "$p1_url/metrics" | awk '
        $1 == "edgekv_commits_total" { commits = $2 }
        $1 == "edgekv_committed_ops_total" { ops = $2 }
        $1 == "edgekv_commit_seconds_total" { secs = $2 }
        END {
            if (commits > 0)
                printf "primary: %d writes in %d group commits = %.1f writes/commit, %.2f ms/commit (incl. fsync)", ops, commits, ops / commits, secs * 1000 / commits
        }')
    bench_stop "${EPID[e2]}"; bench_stop "${EPID[e1]}"; bench_stop "$p1_pid"

    local fwd=$((${f2_1:-0} - ${f2_0:-0})) fwd_e1=$((${f1_1:-0} - ${f1_0:-0}))
    local ops_e1=$((${s1_1:-0} - ${s1_0:-0})) ops_e2=$((${s2_1:-0} - ${s2_0:-0}))
    local parked=$((${k1_1:-0} - ${k1_0:-0} + ${k2_1:-0} - ${k2_0:-0})) sent
    # requests wrk counted through e2 in the recorded rounds (the counter also has the warm-up's)
    sent=$(awk '$1 == "do_forward" && $2 ~ /^fwd/ { s += $7 } END { print s + 0 }' "$RECORDS")
    python3 - "$RECORDS" "$OBJECTS" "$fwd" "$fwd_e1" "$ops_e2" <<'PY' | tee -a "$OUT"
import statistics, sys
recs, nobj, fwd, fwd_e1, ops_e2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rows = {}
for line in open(recs):
    p = line.split()
    if len(p) >= 10 and p[0] == "do_forward":
        rows.setdefault(p[1], {})[int(p[2])] = dict(rps=float(p[3]), p50=float(p[4]), p99=float(p[5]),
                                                   req=int(p[6]), bad=int(p[7]) + int(p[8]), cpu=float(p[9]))
spread = f"{nobj}obj"
cfgs = ["own1obj", "fwd1obj"] + ([f"own{spread}", f"fwd{spread}"] if nobj != "1" else [])
print("\n== do_forward: storage put+get through the owner edge e1 (own*) / through e2, forwarded to e1 (fwd*) ==")
hdr = f'{"config":<10} {"rounds":>6} {"req/s median":>13} {"(min..max)":>19} {"p50 ms":>8} {"p99 ms":>8} {"CPU us/req":>10} {"errors":>7}'
print(hdr)
print("-" * len(hdr))
med, valid = {}, True
for c in cfgs:
    rs = rows.get(c)
    if not rs:
        print(f"{c:<10} {'-':>6} {'not run':>13}")
        continue
    v = list(rs.values())
    req = sum(x["req"] for x in v)
    bad = sum(x["bad"] for x in v)
    m = med[c] = dict(rps=statistics.median(x["rps"] for x in v), p50=statistics.median(x["p50"] for x in v),
                      p99=statistics.median(x["p99"] for x in v),
                      cpu=sum(x["cpu"] for x in v) * 1e6 / req if req else float("nan"), bad=bad)
    if not req or bad / req > 0.001:
        valid = False
    rng = f'{min(x["rps"] for x in v):.0f}..{max(x["rps"] for x in v):.0f}'
    print(f'{c:<10} {len(v):>6} {m["rps"]:>13.0f} {rng:>19} {m["p50"]:>8.2f} {m["p99"]:>8.2f} {m["cpu"]:>10.1f} {bad:>7}')
print()
kv = ["scenario=do_forward"]
for c in cfgs:
    if c in med:
        kv += [f'{c}_rps={med[c]["rps"]:.0f}', f'{c}_p50_ms={med[c]["p50"]:.3f}', f'{c}_p99_ms={med[c]["p99"]:.3f}']
for label in dict.fromkeys(("1obj", spread)):
    o, f = f"own{label}", f"fwd{label}"
    if o not in med or f not in med or med[o]["rps"] <= 0:
        kv.append(f"ratio_{label}=n/a")
        continue
    ratio = med[f]["rps"] / med[o]["rps"]
    pr = sorted(rows[f][r]["rps"] / rows[o][r]["rps"] for r in rows[f] if r in rows[o] and rows[o][r]["rps"] > 0)
    print(f'  {f}/{o}:  throughput {ratio:.2f}x (per-round {pr[0]:.2f}..{pr[-1]:.2f})   '
          f'p50 {med[f]["p50"] / med[o]["p50"]:.2f}x ({med[f]["p50"] - med[o]["p50"]:+.2f} ms)   '
          f'p99 {med[f]["p99"] / med[o]["p99"]:.2f}x   CPU/req {med[f]["cpu"] / med[o]["cpu"]:.2f}x')
    kv.append(f"ratio_{label}={ratio:.3f}")
valid = valid and fwd > 0 and fwd_e1 == 0 and ops_e2 == 0
kv += [f"forwarded_calls={fwd}", f"valid={'yes' if valid else 'no'}"]
if not valid:
    print("  WARNING: > 0.1% of requests failed, or e2 forwarded nothing or ran storage ops itself, or e1 forwarded some: "
          "figures are not comparable")
print()
print("BENCH " + " ".join(kv))
PY
    [ -n "$note" ] && say "$note"
    say "forward counters over the runs (warm-up included): e2 forwarded $fwd calls (wrk counted $sent answered requests through e2 in the recorded rounds), e1 forwarded $fwd_e1; DO storage ops run by e1 $ops_e1, by e2 $ops_e2; calls parked on e1+e2 $parked; DO table v$tv0 -> v${tv1:-?}"
    say "  (CPU us/req: primary + e1 + e2 together, for every config; own*: client -> e1 -> primary; fwd*: client -> e2 -> e1 -> primary)"
    [ "$fwd" -gt 0 ] || WRONG+=("forward: e2's edgekv_do_forwarded_calls_total did not grow: the calls through e2 were not forwarded")
    [ "$fwd" -ge "$sent" ] || WRONG+=("forward: e2 forwarded $fwd calls, fewer than the $sent requests wrk counted through it")
    [ "$ops_e2" = 0 ] || WRONG+=("forward: e2 ran $ops_e2 DO storage ops itself: not every call through it was forwarded")
    [ "$fwd_e1" = 0 ] || WRONG+=("forward: e1 (the owner) forwarded $fwd_e1 calls: the own* runs were not served by e1 alone")
    [ "${tv1:-x}" = "$tv0" ] || WRONG+=("forward: the DO table changed during the runs (v$tv0 -> v${tv1:-?}): an owner moved")
}

# json_count_objects URL NSPATH - objects of the namespace with stored data (one page, <= 10,000)
json_count_objects() {
    curl -s --max-time 10 -H "Authorization: Bearer $EKV_TOKEN" "$1$2/objects?limit=10000" |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print(len(r["result"]) + (1 if r["result_info"]["cursor"] else 0))' 2>/dev/null ||
        echo "?"
}

has storage && scenario_storage
has call && scenario_call
has alarm && scenario_alarm
has forward && scenario_forward

if [ ${#WRONG[@]} -gt 0 ]; then
    say "CORRECTNESS: FAILED"
    for w in "${WRONG[@]}"; do say "  $w"; done
else
    say "correctness: every check passed (storage: the writes read back; call: no call errors; alarm: every alarm arrived exactly once, 2xx, no retry, then removed$(has forward && echo "; forward: e2 forwarded every call, e1 none, the DO table did not change, puts read back through the other edge" || true))"
fi
say "load avg at end: $(cut -d' ' -f1-3 /proc/loadavg) (a busy machine widens the per-round spread; re-run when it is quiet)"
say "results: ${OUT#"$REPO_DIR"/} (raw: ${RAW#"$REPO_DIR"/})"
[ ${#WRONG[@]} -eq 0 ] || exit 1
