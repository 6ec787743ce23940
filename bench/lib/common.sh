# shellcheck shell=bash disable=SC2015
# bench/lib/common.sh - helpers shared by bench/run.sh and bench/perf.sh (sourced, not run).
#
# Everything here talks to 127.0.0.1 only, every wait loop has a deadline, and every process
# started through bench_start is recorded so bench_cleanup (installed as an EXIT trap) stops
# exactly those processes (by pid) and removes the temp dir.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$BENCH_DIR/.." && pwd)

BENCH_PIDS=()      # processes we started (killed in cleanup, newest first)
BENCH_WORK=""      # temp dir (removed in cleanup unless KEEP=1)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- shared knobs -----------------------------------------------------------------------------

# DURATION ROUNDS CONNS THREADS WARMUP PIN NICE with their defaults, validated. NICE: higher
# priority than the machine's other work (root only): per-round spread drops from ~2x to a
# few % on a busy 2-core box; NICE=0 turns it off.
bench_params() {
    DURATION=${DURATION:-5}; DURATION=${DURATION%s}
    ROUNDS=${ROUNDS:-5}
    CONNS=${CONNS:-64}
    THREADS=${THREADS:-1}
    WARMUP=${WARMUP:-2}; WARMUP=${WARMUP%s}
    PIN=${PIN:-1}
    if [ -z "${NICE:-}" ]; then
        NICE=0; [ "$(id -u)" -eq 0 ] && NICE=-10
    fi
    export NICE
    local v
    for v in DURATION ROUNDS CONNS THREADS WARMUP; do
        [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -ge 0 ] || die "$v must be a non-negative integer (got '${!v}')"
    done
    [ "$DURATION" -ge 1 ] && [ "$ROUNDS" -ge 1 ] && [ "$CONNS" -ge "$THREADS" ] ||
        die "need DURATION >= 1, ROUNDS >= 1, CONNS >= THREADS"
}

# Result files: bench/results/<UTC timestamp><suffix>.txt (the report, also on stdout via
# `say`) and .raw.txt (raw tool output); RECORDS is a scratch TSV in the work dir.
bench_results() {
    TS=$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$BENCH_DIR/results"
    OUT="$BENCH_DIR/results/$TS$1.txt"
    RAW="$BENCH_DIR/results/$TS$1.raw.txt"
    RECORDS="$BENCH_WORK/records.tsv"
    : >"$OUT"; : >"$RAW"; : >"$RECORDS"
}
say() { printf '%s\n' "$*" | tee -a "$OUT"; }

# --- tools ------------------------------------------------------------------------------------

# Install the Debian packages whose command is missing (apt-get only when `command -v` fails).
# Args: pairs "command:package".
bench_need() {
    local missing=() pair cmd pkg
    for pair in "$@"; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then
            missing+=("$pkg")
        fi
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing missing packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

# nginx lives in /usr/sbin, which is not on every user's PATH.
bench_nginx_bin() { command -v nginx 2>/dev/null || echo /usr/sbin/nginx; }

# --- temp dir, ports, cleanup -----------------------------------------------------------------

bench_mkwork() {
    BENCH_WORK=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/edgekv-bench.XXXXXX")
    # nginx workers (and h2o) may drop to "nobody": let them read the document root.
    chmod 755 "$BENCH_WORK"
}

# N free TCP ports on 127.0.0.1 (asked from the kernel, so no guessing).
bench_free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
}

# NICE=-10 (root only) runs servers and wrk ahead of other work on a shared machine.
bench_nice_prefix() {
    if [ "${NICE:-0}" != 0 ]; then echo nice -n "$NICE"; fi
}

# bench_start NAME CPUS LOGFILE CMD...   (CPUS "" = no pinning). Sets BENCH_LAST_PID.
bench_start() {
    local name=$1 cpus=$2 logf=$3; shift 3
    # shellcheck disable=SC2046  # the prefix is zero or three words
    set -- $(bench_nice_prefix) "$@"
    if [ -n "$cpus" ] && command -v taskset >/dev/null 2>&1; then
        taskset -c "$cpus" "$@" >"$logf" 2>&1 &
    else
        "$@" >"$logf" 2>&1 &
    fi
    BENCH_LAST_PID=$!
    BENCH_PIDS+=("$BENCH_LAST_PID")
    log "started $name (pid $BENCH_LAST_PID${cpus:+, cpu $cpus})"
}

bench_forget() {
    local keep=() p
    for p in "${BENCH_PIDS[@]}"; do [ "$p" != "$1" ] && keep+=("$p"); done
    BENCH_PIDS=("${keep[@]+"${keep[@]}"}")
}

# Stop one process we started: TERM, wait up to 10 s, then KILL.
bench_stop() {
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for i in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    bench_forget "$pid"
}

# bench_run_bg CMD... - run a bounded client command in the background and wait for it, so
# that Ctrl-C / TERM reach the cleanup trap at once (bash defers traps while a foreground
# child runs) and the cleanup stops the client too. Returns the command's status.
bench_run_bg() {
    local pid rc=0
    "$@" &
    pid=$!
    BENCH_PIDS+=("$pid")
    wait "$pid" || rc=$?
    bench_forget "$pid"
    return "$rc"
}

bench_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do
        bench_stop "${BENCH_PIDS[$i]}"
    done
    if [ -n "$BENCH_WORK" ] && [ -d "$BENCH_WORK" ]; then
        if [ "${KEEP:-0}" = 1 ]; then
            log "kept work dir $BENCH_WORK"
        else
            rm -rf "$BENCH_WORK"
        fi
    fi
    exit "$rc"
}

bench_install_trap() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# bench_wait_http URL PID SECONDS [CURL ARGS...] - until URL answers 2xx (bounded).
bench_wait_http() {
    local url=$1 pid=$2 secs=$3; shift 3
    local deadline=$((SECONDS + secs))
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$pid" 2>/dev/null || return 1
        curl -sf -o /dev/null --max-time 1 "$@" "$url" && return 0
        sleep 0.2
    done
    return 1
}

# Sum of user+system CPU ticks of a process and its direct children (nginx master+worker,
# h2o + helper). /proc/PID/stat of a process counts all of its threads.
bench_cpu_ticks() {
    local pid=$1 total=0 p kids
    kids=$(cat /proc/"$pid"/task/*/children 2>/dev/null || true)
    for p in $pid $kids; do
        [ -r /proc/"$p"/stat ] || continue
        # fields after "(comm)": state=1 ... utime=12 stime=13
        total=$((total + $(sed 's/^.*) //' /proc/"$p"/stat | awk '{print $12 + $13}')))
    done
    echo "$total"
}

# --- edgekv -----------------------------------------------------------------------------------

# The cluster secret every bench node proves on its replication links (docs/REPLICATION.md
# "Link authentication"): a mode-600 file in BENCH_WORK, exported as
# EDGEKV_CLUSTER_SECRET_FILE so that every edgekv started from here (primary, replicas,
# edges) reads the same one; EKV_OPERATOR_TOKEN is the cluster operator token derived from it
# (checksum and promote need it, not an account token). Called by bench_build_edgekv.
bench_cluster_secret() {
    local f="$BENCH_WORK/cluster.secret"
    ( umask 077; "$EDGEKV_BIN" secret generate >"$f" ) || die "edgekv secret generate failed"
    export EDGEKV_CLUSTER_SECRET_FILE="$f"
    EKV_OPERATOR_TOKEN=$("$EDGEKV_BIN" secret operator-token --cluster-secret-file "$f") ||
        die "edgekv secret operator-token failed"
    export EKV_OPERATOR_TOKEN
}

# Build edgekv (RelWithDebInfo) unless EDGEKV_BIN points at a binary. Sets EDGEKV_BIN, and
# the cluster secret (bench_cluster_secret).
# A build dir configured Debug or with sanitizers would make the comparison meaningless, so
# then we build into build-bench/ instead.
bench_build_edgekv() {
    if [ -n "${EDGEKV_BIN:-}" ]; then
        [ -x "$EDGEKV_BIN" ] || die "EDGEKV_BIN=$EDGEKV_BIN is not executable"
        bench_cluster_secret
        return 0
    fi
    local bdir="$REPO_DIR/build" cache="$REPO_DIR/build/CMakeCache.txt"
    if [ -f "$cache" ]; then
        local bt san
        bt=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache")
        san=$(sed -n 's/^EKV_SANITIZE:[A-Z]*=//p' "$cache")
        case "$bt" in Release|RelWithDebInfo) ;; *) bdir="$REPO_DIR/build-bench" ;; esac
        case "$san" in ON|on|1|TRUE|true) bdir="$REPO_DIR/build-bench" ;; esac
    fi
    if [ ! -f "$bdir/CMakeCache.txt" ]; then
        log "configuring $bdir (RelWithDebInfo)"
        cmake -S "$REPO_DIR" -B "$bdir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    fi
    log "building edgekv in $bdir"
    cmake --build "$bdir" -j"$(nproc)" --target edgekv >"$BENCH_WORK/build.log" 2>&1 ||
        { tail -30 "$BENCH_WORK/build.log" >&2; die "edgekv does not build"; }
    EDGEKV_BIN="$bdir/edgekv"
    bench_cluster_secret
}

EKV_ACCOUNT=${EKV_ACCOUNT:-0123456789abcdef0123456789abcdef}
EKV_TOKEN=${EKV_TOKEN:-benchtoken0123456789abcdef0123456789}

# bench_start_edgekv NAME CPUS DATADIR PORT [extra serve args] -> EKV_PID, EKV_URL
bench_start_edgekv() {
    local name=$1 cpus=$2 dir=$3 port=$4; shift 4
    mkdir -p "$dir"
    EDGEKV_ACCOUNT_ID=$EKV_ACCOUNT EDGEKV_ROOT_TOKEN=$EKV_TOKEN \
        bench_start "$name" "$cpus" "$BENCH_WORK/$name.log" \
        "$EDGEKV_BIN" serve --listen "127.0.0.1:$port" --data-dir "$dir" "$@"
    EKV_PID=$BENCH_LAST_PID
    EKV_URL="http://127.0.0.1:$port"
    local deadline=$((SECONDS + 30))
    until grep -q 'msg="listening"' "$BENCH_WORK/$name.log" 2>/dev/null; do
        kill -0 "$EKV_PID" 2>/dev/null && [ $SECONDS -lt $deadline ] ||
            { tail -20 "$BENCH_WORK/$name.log" >&2; die "$name did not log msg=\"listening\""; }
        sleep 0.1
    done
    bench_wait_http "$EKV_URL/healthz" "$EKV_PID" 30 ||
        { tail -20 "$BENCH_WORK/$name.log" >&2; die "$name: /healthz never answered 200"; }
}

# bench_edgekv_create URL PATH BODY WHAT -> POSTs the JSON BODY to
# URL/client/v4/accounts/$EKV_ACCOUNT/PATH and prints the result's id
bench_edgekv_create() {
    local out
    out=$(curl -s --max-time 10 -X POST -H "Authorization: Bearer $EKV_TOKEN" \
        -H 'Content-Type: application/json' --data "$3" \
        "$1/client/v4/accounts/$EKV_ACCOUNT/$2") || die "$4 create failed"
    printf '%s' "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["id"])' ||
        die "$4 create: unexpected reply: $out"
}

# bench_edgekv_namespace URL TITLE -> prints the namespace id
bench_edgekv_namespace() {
    bench_edgekv_create "$1" storage/kv/namespaces "{\"title\":\"$2\"}" namespace
}

# bench_edgekv_put URL NS KEY FILE ; bench_edgekv_get URL NS KEY OUTFILE (prints HTTP status)
bench_edgekv_put() {
    local code
    code=$(curl -s -o "$BENCH_WORK/put.out" -w '%{http_code}' --max-time 10 -X PUT \
        -H "Authorization: Bearer $EKV_TOKEN" --data-binary @"$4" \
        "$1/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$2/values/$3")
    [ "$code" = 200 ] || die "PUT $3 -> HTTP $code: $(cat "$BENCH_WORK/put.out")"
}
bench_edgekv_get() {
    curl -s -o "$4" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $EKV_TOKEN" \
        "$1/client/v4/accounts/$EKV_ACCOUNT/storage/kv/namespaces/$2/values/$3"
}

# --- edgekv status -----------------------------------------------------------------------------

# json_get URL EXPR - GET URL (no auth), print EXPR evaluated on its "result" (r), "" on error.
json_get() {
    curl -s --max-time 2 "$1" 2>/dev/null | python3 -c "
import json, sys
try:
    r = json.load(sys.stdin)['result']
    print($2)
except Exception:
    print('')" 2>/dev/null || true
}

# --- static-file peers (nginx, h2o) -----------------------------------------------------------

# Start nginx on port $1 and h2o on port $2 serving the same $VALUE_SIZE bytes as /v100 from
# $BENCH_WORK/www (on $SERVER_CPU, via bench_start), check both serve exactly those bytes.
# Sets NGX_PID H2O_PID NGX_URL H2O_URL. Used by run.sh (get) and edge.sh (get).
bench_static_peers() {
    mkdir -p "$BENCH_WORK/www" "$BENCH_WORK/nginx"
    printf '%0*d' "$VALUE_SIZE" 0 >"$BENCH_WORK/www/v100"
    chmod 755 "$BENCH_WORK/www"; chmod 644 "$BENCH_WORK/www/v100"

    # nginx, tuned in its favour: one worker, no access log, keep-alive never cut short (wrk
    # keeps connections open; the default keepalive_requests=1000 would add reconnects), open
    # fd cache on, and sendfile off (for a 100-byte file pread+writev beats writev+sendfile:
    # ~10% more req/s here).
    cat >"$BENCH_WORK/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $BENCH_WORK/nginx.pid;
error_log $BENCH_WORK/nginx-error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $BENCH_WORK/nginx/body;
    proxy_temp_path $BENCH_WORK/nginx/proxy;
    fastcgi_temp_path $BENCH_WORK/nginx/fastcgi;
    uwsgi_temp_path $BENCH_WORK/nginx/uwsgi;
    scgi_temp_path $BENCH_WORK/nginx/scgi;
    default_type application/octet-stream;
    sendfile off;
    tcp_nodelay on;
    keepalive_requests 1000000000;
    keepalive_timeout 75s;
    open_file_cache max=64 inactive=60s;
    server {
        listen 127.0.0.1:$1;
        root $BENCH_WORK/www;
    }
}
EOF
    # h2o: one worker thread, no access-log directive (= no access log). Started as root it
    # would switch to "nobody" before writing its pid file into our root-owned temp dir.
    local h2o_user=""
    [ "$(id -u)" -eq 0 ] && h2o_user="user: root"
    cat >"$BENCH_WORK/h2o.conf" <<EOF
num-threads: 1
$h2o_user
pid-file: $BENCH_WORK/h2o.pid
error-log: $BENCH_WORK/h2o-error.log
listen:
  host: 127.0.0.1
  port: $2
hosts:
  default:
    paths:
      /:
        file.dir: $BENCH_WORK/www
EOF
    bench_start nginx "$SERVER_CPU" "$BENCH_WORK/nginx.out" \
        "$NGINX" -p "$BENCH_WORK" -c "$BENCH_WORK/nginx.conf" -e "$BENCH_WORK/nginx-error.log"
    NGX_PID=$BENCH_LAST_PID
    bench_start h2o "$SERVER_CPU" "$BENCH_WORK/h2o.out" h2o -c "$BENCH_WORK/h2o.conf"
    H2O_PID=$BENCH_LAST_PID
    NGX_URL="http://127.0.0.1:$1/v100" H2O_URL="http://127.0.0.1:$2/v100"
    bench_wait_http "$NGX_URL" "$NGX_PID" 20 || { cat "$BENCH_WORK/nginx.out" "$BENCH_WORK/nginx-error.log" >&2; die "nginx did not serve the file"; }
    bench_wait_http "$H2O_URL" "$H2O_PID" 20 || { cat "$BENCH_WORK/h2o.out" >&2; die "h2o did not serve the file"; }
    curl -s --max-time 5 "$NGX_URL" | cmp -s - "$BENCH_WORK/www/v100" || die "nginx served other bytes"
    curl -s --max-time 5 "$H2O_URL" | cmp -s - "$BENCH_WORK/www/v100" || die "h2o served other bytes"
}
