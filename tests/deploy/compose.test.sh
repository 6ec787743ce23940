#!/usr/bin/env bash
# deploy/docker-compose.yml end to end with podman + podman-compose:
#   1. build the three images (deploy/Dockerfile, etcd.Dockerfile, lb.Dockerfile) under a
#      test tag, removed at the end;
#   2. `up -d` as project ekvtest with a fresh secret, account and token; every container
#      healthy within EDGEKV_COMPOSE_HEALTHY_MAX_S (60) seconds of `up`;
#   3. the official SDK and wrangler (tests/deploy/clients.test.mjs) through the published
#      endpoint 127.0.0.1:PORT (lb -> edges);
#   4. failover: a write loop through the endpoint, SIGKILL of the primary container; writes
#      flow again within EDGEKV_FAILOVER_MAX_S (20) seconds, no acknowledged write is lost,
#      exactly one data node is a writable primary;
#   5. the old primary started again rejoins as a streaming replica;
#   6. nothing was written outside /data (/tmp, /var/tmp of the read-only containers);
#   7. `down -v` (always, also on failure), the network and the test images removed.
# Exits non-zero on any failure. Without podman it skips loudly (exit 0) unless
# EDGEKV_REQUIRE_CONTAINERS=1 (.ci/run sets it).
#
# Env: EDGEKV_CONTAINER_ENV  container-env.sh (default ../shared/tools/ beside the repository)
#      EDGEKV_COMPOSE_FILE   another compose file to test (default deploy/docker-compose.yml)
#      EDGEKV_COMPOSE_PORT   published port (default: a free one)
#      EDGEKV_COMPOSE_KEEP=1 leave the cluster running (no down) for debugging
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROJECT=ekvtest
T0=$(date +%s.%N)
HEALTHY_MAX_S=${EDGEKV_COMPOSE_HEALTHY_MAX_S:-60}
FAILOVER_MAX_S=${EDGEKV_FAILOVER_MAX_S:-20}
TOTAL_MAX_S=${EDGEKV_COMPOSE_TOTAL_MAX_S:-480}

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() { printf '[compose %6ss] %s\n' "$(elapsed "$T0")" "$*"; }
fail() { printf '[compose %6ss] FAILED: %s\n' "$(elapsed "$T0")" "$*" >&2; exit 1; }

# --- containers available? -------------------------------------------------------------------
cenv=${EDGEKV_CONTAINER_ENV:-$REPO/../shared/tools/container-env.sh}
ready=0
if [ -f "$cenv" ]; then
    bash "$cenv" --check >/dev/null 2>&1 && ready=1
elif command -v podman >/dev/null && command -v podman-compose >/dev/null &&
    podman image exists localhost/debian:bookworm-slim 2>/dev/null; then
    ready=1
fi
if [ "$ready" != 1 ]; then
    if [ "${EDGEKV_REQUIRE_CONTAINERS:-0}" = 1 ]; then
        fail "podman, podman-compose or the debian:bookworm-slim image is missing (run $cenv)"
    fi
    echo "############################################################################"
    echo "## SKIPPED tests/deploy/compose.test.sh: no container engine ready."
    echo "## Run $cenv (podman + podman-compose + debian:bookworm-slim),"
    echo "## or set EDGEKV_REQUIRE_CONTAINERS=1 to make this a failure."
    echo "############################################################################"
    exit 0
fi
for tool in node python3 curl; do
    command -v "$tool" >/dev/null || fail "$tool is required"
done

COMPOSE_SRC=${EDGEKV_COMPOSE_FILE:-$REPO/deploy/docker-compose.yml}
[ -f "$COMPOSE_SRC" ] || fail "no compose file $COMPOSE_SRC"
WORK=$(mktemp -d /tmp/edgekv-compose-test.XXXXXX)
# A copy outside deploy/: no deploy/.env of a local cluster leaks into the test (podman-compose
# reads .env beside the file and lets it override the environment). Images are built here,
# so the compose file's build contexts are not used (--no-build).
cp "$COMPOSE_SRC" "$WORK/docker-compose.yml"
PC=(podman-compose -p "$PROJECT" -f "$WORK/docker-compose.yml")
DATA_NODES=(primary replica1 replica2)
SERVICES=(etcd primary replica1 replica2 edge1 edge2 edge3 lb)
ctr() { echo "${PROJECT}_$1_1"; }

TAG=ekvtest-$$
export EDGEKV_IMAGE=localhost/edgekv:$TAG
export EDGEKV_ETCD_IMAGE=localhost/edgekv-etcd:$TAG
export EDGEKV_LB_IMAGE=localhost/edgekv-lb:$TAG
BUILT=()
UP=0

hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
export EDGEKV_CLUSTER_SECRET EDGEKV_ACCOUNT_ID EDGEKV_ROOT_TOKEN EDGEKV_PORT
EDGEKV_CLUSTER_SECRET=$(hex 32)
EDGEKV_ACCOUNT_ID=$(hex 16)
EDGEKV_ROOT_TOKEN=$(hex 20)
EDGEKV_PORT=${EDGEKV_COMPOSE_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
export CLOUDFLARE_API_BASE_URL=http://127.0.0.1:$EDGEKV_PORT/client/v4
export CLOUDFLARE_API_TOKEN=$EDGEKV_ROOT_TOKEN
export CLOUDFLARE_ACCOUNT_ID=$EDGEKV_ACCOUNT_ID

dump_logs() {
    local s
    for s in "${SERVICES[@]}"; do
        echo "---- $(ctr "$s"): $(podman inspect --format '{{.State.Status}} exit={{.State.ExitCode}}' "$(ctr "$s")" 2>/dev/null || echo missing), last 25 log lines"
        podman logs --tail 25 "$(ctr "$s")" 2>&1 | grep -v 'systemd connection' || true
    done
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    set +e
    pkill_writer
    if [ "$rc" != 0 ] && [ "$UP" = 1 ]; then
        echo "== container logs (test failed)" >&2
        dump_logs >&2
    fi
    if [ "${EDGEKV_COMPOSE_KEEP:-0}" = 1 ] && [ "$UP" = 1 ]; then
        step "EDGEKV_COMPOSE_KEEP=1: cluster left running (down: ${PC[*]} down -v; env in $WORK/env)"
        env | grep -E '^EDGEKV_' >"$WORK/env"
        exit "$rc"
    fi
    if [ "$UP" = 1 ]; then
        local t
        t=$(date +%s.%N)
        "${PC[@]}" down -v -t 5 >"$WORK/down.log" 2>&1 || { echo "compose down failed:" >&2; tail -20 "$WORK/down.log" >&2; }
        podman network rm "${PROJECT}_default" >/dev/null 2>&1
        step "down -v: $(elapsed "$t")s"
    fi
    if [ ${#BUILT[@]} -gt 0 ]; then
        podman rmi "${BUILT[@]}" >/dev/null 2>&1
    fi
    rm -rf "$WORK"
    exit "$rc"
}
WRITER_PID=""
pkill_writer() {
    if [ -n "$WRITER_PID" ] && kill -0 "$WRITER_PID" 2>/dev/null; then
        kill "$WRITER_PID" 2>/dev/null
        wait "$WRITER_PID" 2>/dev/null
    fi
    WRITER_PID=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A leftover ekvtest project (an interrupted run) would collide on names.
if podman ps -a --format '{{.Names}}' | grep -q "^${PROJECT}_"; then
    step "removing a leftover $PROJECT project"
    "${PC[@]}" down -v -t 2 >/dev/null 2>&1 || true
    podman ps -a --format '{{.Names}}' | grep "^${PROJECT}_" | xargs -r podman rm -f >/dev/null 2>&1 || true
    podman volume ls -q | grep "^${PROJECT}_" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
    podman network rm "${PROJECT}_default" >/dev/null 2>&1 || true
fi

# --- client dependencies (as tests/clients/run.sh installs them) ----------------------------
if [ ! -x "$REPO/tests/clients/node_modules/.bin/wrangler" ] || [ ! -d "$REPO/tests/clients/node_modules/cloudflare" ]; then
    step "installing the pinned clients (npm ci in tests/clients)"
    (cd "$REPO/tests/clients" &&
        npm ci --ignore-scripts --no-audit --no-fund --no-progress --loglevel=error >/dev/null)
fi

# --- 1. images -------------------------------------------------------------------------------
step "building images (tag $TAG)"
tb=$(date +%s.%N)
build() { # IMAGE DOCKERFILE
    local t
    t=$(date +%s.%N)
    if ! podman build --format docker -f "$REPO/$2" -t "$1" "$REPO" >"$WORK/build-$(basename "$2").log" 2>&1; then
        tail -40 "$WORK/build-$(basename "$2").log" >&2
        fail "podman build -f $2"
    fi
    BUILT+=("$1")
    step "  $1 from $2: $(elapsed "$t")s, $(podman image inspect --format '{{.Size}}' "$1") bytes"
}
build "$EDGEKV_IMAGE" deploy/Dockerfile
build "$EDGEKV_ETCD_IMAGE" deploy/etcd.Dockerfile
build "$EDGEKV_LB_IMAGE" deploy/lb.Dockerfile
BUILD_S=$(elapsed "$tb")
step "images built in ${BUILD_S}s"
size=$(podman image inspect --format '{{.Size}}' "$EDGEKV_IMAGE")
[ "$size" -le 100000000 ] || fail "edgekv image is $size bytes (> 100 MB)"
[ "$(podman image inspect --format '{{.Config.User}}' "$EDGEKV_IMAGE")" = 10001:10001 ] ||
    fail "edgekv image does not run as 10001:10001"
podman image inspect --format '{{json .Config.Healthcheck}}' "$EDGEKV_IMAGE" | grep -q '"/usr/local/bin/edgekv","health"' ||
    fail "edgekv image has no HEALTHCHECK edgekv health"

# --- 2. up, healthy --------------------------------------------------------------------------
step "podman-compose up -d (project $PROJECT, endpoint 127.0.0.1:$EDGEKV_PORT)"
tu=$(date +%s.%N)
UP=1
"${PC[@]}" up -d --no-build >"$WORK/up.log" 2>&1 || { tail -30 "$WORK/up.log" >&2; fail "podman-compose up"; }
step "  up returned after $(elapsed "$tu")s"
# No systemd here: podman schedules no healthchecks, so run them (each updates the status).
pending=("${SERVICES[@]}")
while [ ${#pending[@]} -gt 0 ]; do
    left=()
    for s in "${pending[@]}"; do
        state=$(podman inspect --format '{{.State.Status}}' "$(ctr "$s")" 2>/dev/null || echo missing)
        [ "$state" = running ] || fail "$(ctr "$s") is $state"
        podman healthcheck run "$(ctr "$s")" >/dev/null 2>&1 || left+=("$s")
    done
    pending=(${left[@]+"${left[@]}"})
    [ ${#pending[@]} -eq 0 ] && break
    awk -v e="$(elapsed "$tu")" -v m="$HEALTHY_MAX_S" 'BEGIN { exit !(e > m) }' &&
        fail "not healthy ${HEALTHY_MAX_S}s after up: ${pending[*]}"
    sleep 1
done
HEALTHY_S=$(elapsed "$tu")
for s in "${SERVICES[@]}"; do
    h=$(podman inspect --format '{{.State.Health.Status}}' "$(ctr "$s")")
    [ "$h" = healthy ] || fail "$(ctr "$s") health status is '$h'"
done
step "all ${#SERVICES[@]} containers healthy ${HEALTHY_S}s after up (limit ${HEALTHY_MAX_S}s)"

# Healthy is /healthz; serving clients also needs the edges fed by a replica.
deadline=$((SECONDS + 60))
until [ "$(curl -s -o /dev/null -w '%{http_code}' -m 5 -H "Authorization: Bearer $EDGEKV_ROOT_TOKEN" \
    "$CLOUDFLARE_API_BASE_URL/accounts/$EDGEKV_ACCOUNT_ID/storage/kv/namespaces")" = 200 ]; do
    [ $SECONDS -lt $deadline ] || fail "the endpoint does not serve the preset account 60s after healthy"
    sleep 0.5
done
SERVING_S=$(elapsed "$tu")
step "endpoint serves the API ${SERVING_S}s after up"

# node_status NODE: "role writable state last_seq" of a data node (via edgekv status in it)
node_status() {
    podman exec "$(ctr "$1")" edgekv status --json 2>/dev/null | python3 -c '
import json, sys
r = json.load(sys.stdin)
r = r.get("result", r)
print(r.get("role"), str(r.get("writable")).lower(), (r.get("replica") or {}).get("state") or "-", r.get("last_seq"))
' 2>/dev/null || echo "down - - -"
}
# writable_primaries NODE...: the nodes that report role primary and writable
writable_primaries() {
    local n role w out=()
    for n in "$@"; do
        read -r role w _ _ <<<"$(node_status "$n")"
        [ "$role" = primary ] && [ "$w" = true ] && out+=("$n")
    done
    echo "${out[*]}"
}
p=$(writable_primaries "${DATA_NODES[@]}")
[ "$p" = primary ] || fail "expected exactly one writable primary (primary) after up, got '$p'"
for n in replica1 replica2; do
    deadline=$((SECONDS + 30))
    until [ "$(node_status "$n" | cut -d' ' -f1,3)" = "replica streaming" ]; do
        [ $SECONDS -lt $deadline ] || fail "$n is not a streaming replica: $(node_status "$n")"
        sleep 0.5
    done
done
step "roles: primary is the writable primary, replica1 and replica2 stream from it"

# --- 3. official clients through the endpoint ------------------------------------------------
step "SDK + wrangler through 127.0.0.1:$EDGEKV_PORT (tests/deploy/clients.test.mjs)"
tc=$(date +%s.%N)
node --test --test-concurrency=1 "$REPO/tests/deploy/clients.test.mjs" >"$WORK/clients.log" 2>&1 ||
    { cat "$WORK/clients.log" >&2; fail "client tests"; }
grep -E '^# (pass|fail)' "$WORK/clients.log" | tr '\n' ' '
echo
step "  clients passed in $(elapsed "$tc")s"

# --- 4. failover -----------------------------------------------------------------------------
FO=$WORK/failover
mkdir -p "$FO"
step "failover: write loop through the endpoint, then SIGKILL $(ctr primary)"
node "$REPO/tests/deploy/failover.mjs" write "$FO" >"$FO/writer.log" 2>&1 &
WRITER_PID=$!
deadline=$((SECONDS + 30))
until [ -s "$FO/ns" ]; do
    kill -0 "$WRITER_PID" 2>/dev/null || { cat "$FO/writer.log" >&2; fail "the writer exited"; }
    [ $SECONDS -lt $deadline ] || fail "the writer could not create its namespace"
    sleep 0.2
done
sleep 5
date +%s%3N >"$FO/kill_ms"
tk=$(date +%s.%N)
podman kill -s KILL "$(ctr primary)" >/dev/null
deadline=$((SECONDS + 60))
while :; do
    p=$(writable_primaries replica1 replica2)
    [ -n "$p" ] && break
    [ $SECONDS -lt $deadline ] || fail "no replica became a writable primary within 60s"
    sleep 0.2
done
ELECT_S=$(elapsed "$tk")
step "  $p reports writable primary ${ELECT_S}s after the kill (polled through podman exec: coarse)"
sleep 10
touch "$FO/stop"
wait "$WRITER_PID" || { cat "$FO/writer.log" >&2; WRITER_PID=""; fail "the writer failed"; }
WRITER_PID=""
cat "$FO/writer.log"
read -r RECOVERY_S OUTAGE_S ACKED WPS <<<"$(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["recovery_s"], s["outage_s"], s["acked"], s["writes_per_s"])' "$FO/summary.json")"
step "  writes acknowledged again ${RECOVERY_S}s after the kill (longest outage ${OUTAGE_S}s; $ACKED acked at ~$WPS writes/s)"
[ "$RECOVERY_S" != None ] || fail "no write was acknowledged after the kill"
awk -v r="$RECOVERY_S" -v m="$FAILOVER_MAX_S" 'BEGIN { exit !(r <= m) }' ||
    fail "writes resumed ${RECOVERY_S}s after the kill (limit ${FAILOVER_MAX_S}s)"
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); sys.exit(0 if s["acked_after_kill"] >= 100 else 1)' "$FO/summary.json" ||
    fail "fewer than 100 writes acknowledged after the failover"

step "  reading back every acknowledged write through the endpoint"
node "$REPO/tests/deploy/failover.mjs" verify "$FO" || fail "acknowledged writes were lost"
state=$(podman inspect --format '{{.State.Status}}' "$(ctr primary)")
[ "$state" = exited ] || fail "$(ctr primary) should still be down, is $state"
p=$(writable_primaries "${DATA_NODES[@]}")
[ "$(wc -w <<<"$p")" = 1 ] || fail "expected exactly one writable primary, got '$p'"
NEWP=$p
step "  exactly one writable primary: $NEWP"

# --- 5. the old primary rejoins --------------------------------------------------------------
step "starting the old primary again"
tr0=$(date +%s.%N)
podman start "$(ctr primary)" >/dev/null 2>&1
deadline=$((SECONDS + 60))
until podman healthcheck run "$(ctr primary)" >/dev/null 2>&1 &&
    [ "$(node_status primary | cut -d' ' -f1,3)" = "replica streaming" ]; do
    [ $SECONDS -lt $deadline ] || fail "the old primary did not rejoin as a streaming replica: $(node_status primary)"
    sleep 0.5
done
step "  old primary is a streaming replica $(elapsed "$tr0")s after start"
p=$(writable_primaries "${DATA_NODES[@]}")
[ "$p" = "$NEWP" ] || fail "after the rejoin the writable primaries are '$p' (want only $NEWP)"
seq_p=$(node_status "$NEWP" | cut -d' ' -f4)
deadline=$((SECONDS + 30))
until [ "$(node_status primary | cut -d' ' -f4)" -ge "$seq_p" ] 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || fail "the old primary stays behind: $(node_status primary) vs $NEWP last_seq $seq_p"
    sleep 0.5
done
step "  old primary caught up to last_seq $seq_p"

# --- 6. read-only root: nothing but /data written --------------------------------------------
for s in primary replica1 replica2 edge1 edge2 edge3; do
    podman exec "$(ctr "$s")" touch /usr/local/bin/x 2>/dev/null && fail "$(ctr "$s"): root filesystem is writable"
    files=$(podman exec "$(ctr "$s")" find /tmp /var/tmp -mindepth 1 2>/dev/null || true)
    [ -z "$files" ] || fail "$(ctr "$s") wrote outside /data: $files"
done
step "read-only root: nothing written to /tmp or /var/tmp by any edgekv container"

TOTAL_S=$(elapsed "$T0")
step "passed: build ${BUILD_S}s, up->healthy ${HEALTHY_S}s, up->serving ${SERVING_S}s, new primary seen ${ELECT_S}s, writes resumed ${RECOVERY_S}s after the kill, total ${TOTAL_S}s"
awk -v t="$TOTAL_S" -v m="$TOTAL_MAX_S" 'BEGIN { exit !(t <= m) }' ||
    fail "the test took ${TOTAL_S}s (limit ${TOTAL_MAX_S}s)"
