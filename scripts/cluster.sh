#!/usr/bin/env bash
# One-command local edgekv cluster on 127.0.0.1: 1 primary, 2 replicas, 3 edges.
#
#   scripts/cluster.sh up [--no-edges]   start p1, r1, r2, e1..e3 in that order, wait until each
#                                         is healthy (replicas: streaming), print the table and
#                                         the CLOUDFLARE_* export lines
#   scripts/cluster.sh down [--purge]    stop edges, then replicas, then the primary (SIGTERM,
#                                         15 s, then SIGKILL); --purge also deletes data, logs
#                                         and credentials
#   scripts/cluster.sh status            per node: running/stopped, role, last_seq, epoch, lag;
#                                         exit 0 if every node is running, 3 otherwise
#   scripts/cluster.sh logs [NODE]       last 50 lines of NODE's log (default: every node)
#   scripts/cluster.sh env               only the export lines (eval "$(scripts/cluster.sh env)"),
#                                        with EDGEKV_OPERATOR_TOKEN for checksum/promote
#
# Options (anywhere on the command line):
#   --base-port N   (env EDGEKV_CLUSTER_BASE, default 8800)
#   --dir DIR       (env EDGEKV_CLUSTER_DIR, default ./cluster in the repository root)
#   --no-edges      up: start only the primary and the replicas
#   --purge         down: also delete DIR's data, logs, pid files and credentials
# Env: EDGEKV_BIN (default build/edgekv, built like scripts/run.sh when missing),
#      EDGEKV_CLUSTER_TIMEOUT (seconds each node may take to become ready, default 20).
#
# Ports: primary API BASE, replication BASE+100; replica rN API BASE+N, replication BASE+100+N
# (bound only after a promotion); edge eN API BASE+10+N, its Durable Object owner link (where
# other nodes forward calls of the objects it owns) BASE+110+N. Layout of DIR: p1/ r1/ r2/ (data),
# logs/NODE.log, pids/NODE.pid, credentials.env (mode 600: EDGEKV_ACCOUNT_ID and
# EDGEKV_ROOT_TOKEN, generated on the first `up` and reused), cluster.secret (mode 600: the
# cluster secret every node proves on its replication links, --cluster-secret-file; generated
# on the first `up` with `edgekv secret generate` and reused), cluster.env (base port and the
# nodes `up` started). Nodes run in their own session (setsid + nohup) and outlive the script.
set -euo pipefail

CALLER_PWD=$(pwd)
REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ALL_NODES=(p1 r1 r2 e1 e2 e3)
HOST=127.0.0.1

log() { printf '[cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# --- arguments -------------------------------------------------------------------------------

CMD="" NODE_ARG="" NO_EDGES=0 PURGE=0 BASE_SET=0
BASE=${EDGEKV_CLUSTER_BASE:-8800}
DIR=${EDGEKV_CLUSTER_DIR:-}
[ -n "${EDGEKV_CLUSTER_BASE:-}" ] && BASE_SET=1
while [ $# -gt 0 ]; do
    case "$1" in
        --base-port) [ $# -ge 2 ] || usage; BASE=$2; BASE_SET=1; shift ;;
        --base-port=*) BASE=${1#*=}; BASE_SET=1 ;;
        --dir) [ $# -ge 2 ] || usage; DIR=$2; shift ;;
        --dir=*) DIR=${1#*=} ;;
        --no-edges) NO_EDGES=1 ;;
        --purge) PURGE=1 ;;
        -h|--help|help) usage ;;
        -*) log "unknown option $1"; usage ;;
        *)
            if [ -z "$CMD" ]; then CMD=$1
            elif [ -z "$NODE_ARG" ] && [ "$CMD" = logs ]; then NODE_ARG=$1
            else log "unexpected argument $1"; usage
            fi ;;
    esac
    shift
done
[ -n "$CMD" ] || usage
if ! { [[ $BASE =~ ^[0-9]+$ ]] && [ "$BASE" -ge 1 ] && [ "$BASE" -le 65422 ]; }; then
    die "--base-port must be 1..65422 (BASE+113 is the last port used), got '$BASE'"
fi
BASE=$((10#$BASE))
TIMEOUT=${EDGEKV_CLUSTER_TIMEOUT:-20}
if ! { [[ $TIMEOUT =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 1 ]; }; then
    die "EDGEKV_CLUSTER_TIMEOUT must be a number of seconds >= 1, got '$TIMEOUT'"
fi

# --dir is relative to the caller's directory; the default lives in the repository root.
if [ -z "$DIR" ]; then DIR=$REPO_DIR/cluster
elif [[ $DIR != /* ]]; then DIR=$CALLER_PWD/$DIR
fi
DIR=${DIR%/}
[ -n "$DIR" ] || die "--dir must not be /"
CREDS=$DIR/credentials.env
SECRET=$DIR/cluster.secret
TOPO=$DIR/cluster.env

# The topology `up` recorded wins for down/status/logs/env (so they need no --base-port).
NODES=("${ALL_NODES[@]}")
if [ "$CMD" != up ] && [ -f "$TOPO" ]; then
    rec_base=$(sed -n 's/^BASE=\([0-9]*\)$/\1/p' "$TOPO")
    rec_nodes=$(sed -n 's/^NODES="\([a-z0-9 ]*\)"$/\1/p' "$TOPO")
    if [ -n "$rec_base" ]; then
        [ "$BASE_SET" = 1 ] && [ "$rec_base" != "$BASE" ] &&
            log "note: $TOPO records base port $rec_base; using it (not $BASE)"
        BASE=$rec_base
    fi
    # shellcheck disable=SC2206  # node names are [a-z0-9] words
    [ -n "$rec_nodes" ] && NODES=($rec_nodes)
fi

# --- nodes -----------------------------------------------------------------------------------

node_role() {
    case "$1" in p*) echo primary ;; r*) echo replica ;; e*) echo edge ;; esac
}
node_port() {
    case "$1" in
        p1) echo "$BASE" ;;
        r*) echo $((BASE + ${1#r})) ;;
        e*) echo $((BASE + 10 + ${1#e})) ;;
    esac
}
node_repl_port() {
    case "$1" in
        p1) echo $((BASE + 100)) ;;
        r*) echo $((BASE + 100 + ${1#r})) ;;
        *) echo "" ;;
    esac
}
node_url() { echo "http://$HOST:$(node_port "$1")"; }
valid_node() {
    local n
    for n in "${ALL_NODES[@]}"; do [ "$n" = "$1" ] && return 0; done
    return 1
}

# alive PID: running and not a zombie (a node that died while `up` still owns it).
alive() {
    local pid=$1 state
    kill -0 "$pid" 2>/dev/null || return 1
    if [ -r "/proc/$pid/stat" ]; then
        state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || return 1
        [ "$state" != Z ] || return 1
    fi
    return 0
}

# node_pid NODE: prints the pid of NODE if its pid file names a live edgekv of that node.
node_pid() {
    local f=$DIR/pids/$1.pid pid cmd
    [ -f "$f" ] || return 1
    pid=$(tr -dc 0-9 <"$f")
    [ -n "$pid" ] && alive "$pid" || return 1
    if [ -r "/proc/$pid/cmdline" ]; then
        cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
        [[ " $cmd " == *" --node-id $1 "* ]] || return 1   # pid reused by something else
    fi
    echo "$pid"
}

# http_code URL: prints the HTTP status (000 when nothing answers).
http_code() {
    curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# repl_fields URL: one line "role last_seq epoch state lag replicas" from the (unauthenticated)
# replication status; "-" for what the node does not report; nothing if it does not answer.
repl_fields() {
    local body
    body=$(curl -s --noproxy '*' --max-time 2 "$1/_edgekv/replication/status" 2>/dev/null) || return 0
    printf '%s' "$body" | python3 -c '
import json, sys
try:
    r = json.load(sys.stdin)["result"]
except Exception:
    sys.exit(0)
rep = r.get("replica") or r.get("stream") or {}
reps = r.get("replicas")
def s(v):
    return "-" if v is None else str(v)
seq = r.get("last_seq") if r.get("role") != "edge" else rep.get("applied_seq")
nrep = "-" if reps is None else len(reps)
print(s(r.get("role")), s(seq), s(r.get("epoch")), s(rep.get("state")),
      s(rep.get("lag_seqs")), nrep)
' 2>/dev/null || true
}

tail_log() {
    local f=$DIR/logs/$1.log
    if [ -s "$f" ]; then
        log "last ${2:-20} lines of $f:"
        tail -n "${2:-20}" "$f" | sed 's/^/    /' >&2
    else
        log "($f is empty or missing)"
    fi
}

# stop_node NODE [PID]: SIGTERM, wait up to 15 s, then SIGKILL; removes the pid file. PID
# (a process this run started) is used as is; otherwise the pid file must name NODE's edgekv.
stop_node() {
    local node=$1 pid=${2:-} i
    if [ -n "$pid" ] && ! alive "$pid"; then pid=""; fi
    if [ -n "$pid" ] || pid=$(node_pid "$node"); then
        log "stopping $node (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            alive "$pid" || break
            sleep 0.1
        done
        if alive "$pid"; then
            log "$node did not exit within 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
        fi
        wait "$pid" 2>/dev/null || true   # reap it when `up` started it
    fi
    rm -f "$DIR/pids/$node.pid"
}

# --- credentials -----------------------------------------------------------------------------

ACCOUNT_ID="" ROOT_TOKEN=""
load_creds() {
    [ -f "$CREDS" ] || return 1
    ACCOUNT_ID=$(sed -n 's/^EDGEKV_ACCOUNT_ID=\([0-9a-f]\{32\}\)$/\1/p' "$CREDS")
    ROOT_TOKEN=$(sed -n 's/^EDGEKV_ROOT_TOKEN=\([A-Za-z0-9_-]\{40\}\)$/\1/p' "$CREDS")
    if [ -z "$ACCOUNT_ID" ] || [ -z "$ROOT_TOKEN" ]; then
        die "$CREDS is malformed (fix or remove it)"
    fi
}
make_creds() {
    load_creds && return 0
    # A primary with data but no credentials file: its token is unknown to us.
    [ ! -d "$DIR/p1" ] || [ -z "$(ls -A "$DIR/p1" 2>/dev/null)" ] ||
        die "$DIR/p1 holds data but $CREDS is missing; restore it or run: $0 down --purge --dir $DIR"
    local out
    out=$(python3 -c '
import secrets, string
alphabet = string.ascii_letters + string.digits + "_-"
print(secrets.token_hex(16))
print("".join(secrets.choice(alphabet) for _ in range(40)))
') || die "python3 failed to generate credentials"
    (
        umask 077
        printf '# edgekv local cluster: preset account and admin token of the primary p1\n' >"$CREDS"
        printf 'EDGEKV_ACCOUNT_ID=%s\nEDGEKV_ROOT_TOKEN=%s\n' \
            "$(sed -n 1p <<<"$out")" "$(sed -n 2p <<<"$out")" >>"$CREDS"
    )
    chmod 600 "$CREDS"
    log "generated credentials in $CREDS (mode 600)"
    load_creds
}
# The cluster secret (docs/REPLICATION.md "Link authentication"), beside the credentials.
make_secret() {
    [ -s "$SECRET" ] && return 0
    ( umask 077; "$BIN" secret generate >"$SECRET" ) || die "edgekv secret generate failed"
    chmod 600 "$SECRET"
    log "generated the cluster secret in $SECRET (mode 600)"
}

# Where clients should go: edge e1 when it runs, else the primary.
client_url() {
    if node_pid e1 >/dev/null; then node_url e1; else node_url p1; fi
}
print_env() {
    local url
    url=$(client_url)
    printf 'export CLOUDFLARE_ACCOUNT_ID=%s\n' "$ACCOUNT_ID"
    printf 'export CLOUDFLARE_API_TOKEN=%s\n' "$ROOT_TOKEN"
    printf 'export CLOUDFLARE_API_BASE_URL=%s/client/v4\n' "$url"
    # the cluster operator token (checksum, promote, /_edgekv/accounts: docs/API.md)
    local bin=${BIN:-${EDGEKV_BIN:-$REPO_DIR/build/edgekv}} op
    if [ -x "$bin" ] && [ -s "$SECRET" ] &&
        op=$("$bin" secret operator-token --cluster-secret-file "$SECRET" 2>/dev/null); then
        printf 'export EDGEKV_OPERATOR_TOKEN=%s\n' "$op"
    fi
}

# --- binary ----------------------------------------------------------------------------------

find_bin() {
    if [ -n "${EDGEKV_BIN:-}" ]; then
        [ -x "$EDGEKV_BIN" ] || die "EDGEKV_BIN=$EDGEKV_BIN is not executable"
        BIN=$EDGEKV_BIN
        return 0
    fi
    BIN=$REPO_DIR/build/edgekv
    [ -x "$BIN" ] && return 0
    log "build/edgekv missing: installing dependencies and building (as scripts/run.sh does)"
    (
        cd "$REPO_DIR"
        scripts/install-deps.sh
        cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEKV_TESTS=OFF >/dev/null
        cmake --build build -j"$(nproc)" --target edgekv
    ) >&2 || die "building edgekv failed"
    [ -x "$BIN" ] || die "build finished but $BIN is missing"
}

# --- up --------------------------------------------------------------------------------------

STARTED=()        # "NODE:PID" started by this run
UP_DONE=0
up_cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    if [ "$UP_DONE" != 1 ] && [ ${#STARTED[@]} -gt 0 ]; then
        log "stopping the nodes this run started"
        for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
            stop_node "${STARTED[$i]%%:*}" "${STARTED[$i]#*:}"
        done
    fi
    exit "$rc"
}

# fail NODE WHY: report, show the log tail, and exit (the EXIT trap stops the started nodes).
fail() {
    log "FAILED: node $1 ($(node_role "$1"), $(node_url "$1")): $2"
    tail_log "$1" 20
    exit 1
}

ports_free() {
    python3 - "$HOST" "$@" <<'PY'
import socket, sys
host, busy = sys.argv[1], []
for p in sys.argv[2:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
    try:
        s.bind((host, int(p)))
    except OSError:
        busy.append(p)
    finally:
        s.close()
if busy:
    print(" ".join(busy))
    sys.exit(1)
PY
}

start_node() {
    local node=$1 role port repl logf pid
    role=$(node_role "$node")
    port=$(node_port "$node")
    repl=$(node_repl_port "$node")
    logf=$DIR/logs/$node.log
    [ -f "$logf" ] && mv -f "$logf" "$logf.prev"
    local args=(serve --role "$role" --node-id "$node" --listen "$HOST:$port"
        --cluster-secret-file "$SECRET")
    local envs=(env -u EDGEKV_ACCOUNT_ID -u EDGEKV_ROOT_TOKEN)
    case "$role" in
        primary)
            args+=(--repl-listen "$HOST:$repl" --data-dir "$DIR/$node")
            envs=(env "EDGEKV_ACCOUNT_ID=$ACCOUNT_ID" "EDGEKV_ROOT_TOKEN=$ROOT_TOKEN") ;;
        replica)
            args+=(--repl-listen "$HOST:$repl" --primary "$HOST:$((BASE + 100))"
                --data-dir "$DIR/$node") ;;
        edge)
            args+=(--primary "$HOST:$((BASE + 100))" --repl-listen "$HOST:$((BASE + 110 + ${node#e}))"
                --replicas "$HOST:$((BASE + 101)),$HOST:$((BASE + 102))") ;;
    esac
    [ "$role" = edge ] || mkdir -p "$DIR/$node"
    # setsid: own session, no controlling terminal; nohup: ignore SIGHUP anyway. As the script
    # is not a process-group leader's job, setsid execs in place and $! is edgekv's pid.
    "${envs[@]}" setsid nohup "$BIN" "${args[@]}" </dev/null >"$logf" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/pids/$node.pid"
    STARTED+=("$node:$pid")
    log "started $node ($role) pid $pid on $HOST:$port, log $logf"

    local deadline=$((SECONDS + TIMEOUT)) code=000
    while :; do
        alive "$pid" || fail "$node" "exited during startup"
        code=$(http_code "$(node_url "$node")/healthz")
        [ "$code" = 200 ] && break
        [ $SECONDS -lt $deadline ] || fail "$node" "GET /healthz did not answer 200 within ${TIMEOUT}s (last: $code)"
        sleep 0.2
    done
    node_pid "$node" >/dev/null || fail "$node" "pid $pid is not the edgekv of node $node"

    if [ "$role" = replica ]; then
        local f state=""
        deadline=$((SECONDS + TIMEOUT))
        while :; do
            alive "$pid" || fail "$node" "exited while connecting to the primary"
            f=$(repl_fields "$(node_url "$node")")
            state=$(cut -d' ' -f4 <<<"$f")
            [ "$state" = streaming ] && break
            [ $SECONDS -lt $deadline ] ||
                fail "$node" "replication state is '${state:-?}', not 'streaming', after ${TIMEOUT}s"
            sleep 0.2
        done
        log "$node is streaming from p1"
    fi
}

cmd_up() {
    local n p running=() want=() ports=() busy
    for n in "${ALL_NODES[@]}"; do
        if p=$(node_pid "$n"); then running+=("$n(pid $p)"); fi
    done
    [ ${#running[@]} -eq 0 ] ||
        die "cluster already running in $DIR: ${running[*]} (stop it with: $0 down --dir $DIR)"
    for n in "${ALL_NODES[@]}"; do
        [ "$NO_EDGES" = 1 ] && [ "$(node_role "$n")" = edge ] && continue
        want+=("$n")
        ports+=("$(node_port "$n")")
        [ -n "$(node_repl_port "$n")" ] && ports+=("$(node_repl_port "$n")")
    done
    busy=$(ports_free "${ports[@]}") || die "ports already in use on $HOST: $busy (pick another --base-port)"

    command -v python3 >/dev/null || die "python3 is required"
    command -v curl >/dev/null || die "curl is required"
    command -v setsid >/dev/null || die "setsid (util-linux) is required"
    find_bin
    mkdir -p "$DIR/logs" "$DIR/pids"
    rm -f "$DIR"/pids/*.pid
    make_creds
    make_secret
    printf '# written by scripts/cluster.sh up\nBASE=%s\nNODES="%s"\n' "$BASE" "${want[*]}" >"$TOPO"

    trap up_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    for n in "${want[@]}"; do start_node "$n"; done
    UP_DONE=1
    trap - EXIT INT TERM

    echo
    printf '%-4s %-8s %-24s %-30s %s\n' NODE ROLE "API URL" "REPL ADDR" "PID"
    for n in "${want[@]}"; do
        local r
        r=$(node_repl_port "$n")
        case "$(node_role "$n")" in
            primary) r="$HOST:$r (listen)" ;;
            replica) r="$HOST:$r (edges)" ;;
            edge) r="-> p1 + r1,r2" ;;
        esac
        printf '%-4s %-8s %-24s %-30s %s\n' "$n" "$(node_role "$n")" "$(node_url "$n")" "$r" \
            "$(node_pid "$n")"
    done
    echo
    echo "Data, logs and pids in $DIR. Credentials (also in $CREDS):"
    echo
    print_env
    echo
    printf 'curl -H "Authorization: Bearer %s" %s/client/v4/accounts/%s/storage/kv/namespaces\n' \
        "$ROOT_TOKEN" "$(client_url)" "$ACCOUNT_ID"
}

# --- down, status, logs, env -----------------------------------------------------------------

cmd_down() {
    local n order=(e3 e2 e1 r2 r1 p1) stopped=0
    for n in "${order[@]}"; do
        if node_pid "$n" >/dev/null; then stop_node "$n"; stopped=$((stopped + 1))
        else rm -f "$DIR/pids/$n.pid"
        fi
    done
    if [ "$stopped" -gt 0 ]; then log "stopped $stopped node(s)"; else log "nothing was running in $DIR"; fi
    if [ "$PURGE" = 1 ]; then
        for n in "${ALL_NODES[@]}"; do rm -rf "${DIR:?}/$n"; done
        rm -rf "${DIR:?}/logs" "${DIR:?}/pids"
        rm -f "$CREDS" "$SECRET" "$TOPO"
        rmdir "$DIR" 2>/dev/null || true
        log "purged data, logs, pid files, credentials and cluster secret in $DIR"
    elif [ -d "$DIR" ]; then
        log "data kept in $DIR (down --purge deletes it)"
    fi
}

cmd_status() {
    local n pid f all=0 role seq epoch rstate lag nrep state repl
    if [ ! -f "$TOPO" ] && [ ! -d "$DIR/pids" ]; then
        log "no cluster in $DIR (start one with: $0 up)"
        exit 3
    fi
    printf '%-4s %-8s %-8s %-24s %-8s %-9s %-6s %s\n' \
        NODE STATE PID "API URL" ROLE LAST_SEQ EPOCH "REPLICATION"
    for n in "${NODES[@]}"; do
        state=stopped role=- seq=- epoch=- repl=-
        if pid=$(node_pid "$n"); then
            state=running
            f=$(repl_fields "$(node_url "$n")")
            if [ -n "$f" ]; then
                read -r role seq epoch rstate lag nrep <<<"$f"
                case "$role" in
                    replica) repl="state=$rstate lag_seqs=$lag" ;;
                    edge) repl="stream=$rstate lag_seqs=$lag" ;;
                    primary) repl="replicas=$nrep" ;;
                esac
            else
                role=$(node_role "$n")
                repl="(no replication status: /healthz $(http_code "$(node_url "$n")/healthz"))"
            fi
        else
            pid=-
            all=3
        fi
        printf '%-4s %-8s %-8s %-24s %-8s %-9s %-6s %s\n' \
            "$n" "$state" "$pid" "$(node_url "$n")" "$role" "$seq" "$epoch" "$repl"
    done
    exit "$all"
}

cmd_logs() {
    local n
    if [ -n "$NODE_ARG" ]; then
        valid_node "$NODE_ARG" || die "unknown node '$NODE_ARG' (nodes: ${ALL_NODES[*]})"
        [ -f "$DIR/logs/$NODE_ARG.log" ] || die "no log for $NODE_ARG in $DIR/logs"
        tail -n 50 "$DIR/logs/$NODE_ARG.log"
        return
    fi
    for n in "${NODES[@]}"; do
        [ -f "$DIR/logs/$n.log" ] || continue
        echo "==> $n ($DIR/logs/$n.log) <=="
        tail -n 50 "$DIR/logs/$n.log"
        echo
    done
}

case "$CMD" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    logs) cmd_logs ;;
    env) load_creds || die "no credentials in $DIR (run: $0 up)"; print_env ;;
    *) log "unknown command '$CMD'"; usage ;;
esac
