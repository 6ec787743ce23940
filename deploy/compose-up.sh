#!/usr/bin/env bash
# Start the compose cluster (deploy/docker-compose.yml) with a cluster secret and preset
# credentials kept in deploy/.env (mode 600, gitignored), generated on the first run:
#   EDGEKV_CLUSTER_SECRET  64 hex characters, proved on every replication link
#   EDGEKV_ACCOUNT_ID      the account the primary creates on its first start (32 hex)
#   EDGEKV_ROOT_TOKEN      its admin API token
# Values already in the environment are used for a new deploy/.env; an existing deploy/.env
# wins (the data volumes were made with it). Every compose tool reads deploy/.env itself, so
# later `ps`, `logs`, `down` need no environment.
#
#   deploy/compose-up.sh [up options...]     e.g. --build, or service names with docker compose
#
# Env: COMPOSE        the compose command (default: `docker compose`, else docker-compose,
#                     else podman-compose)
#      EDGEKV_PROJECT project name (default edgekv: containers edgekv_<service>_1 or
#                     edgekv-<service>-1, volumes edgekv_primary-data, ...)
#      EDGEKV_PORT    the published client port on 127.0.0.1 (default 8787)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
envf=$here/.env
project=${EDGEKV_PROJECT:-edgekv}

if [ -n "${COMPOSE:-}" ]; then
    read -r -a compose <<<"$COMPOSE"
elif command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null; then
    compose=(docker-compose)
elif command -v podman-compose >/dev/null; then
    compose=(podman-compose)
else
    echo "compose-up: no docker compose, docker-compose or podman-compose found" >&2
    exit 1
fi

hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
getv() { sed -n "s/^$1=//p" "$envf" | tail -n 1; }

if [ ! -s "$envf" ]; then
    secret=${EDGEKV_CLUSTER_SECRET:-$(hex 32)}
    account=${EDGEKV_ACCOUNT_ID:-$(hex 16)}
    token=${EDGEKV_ROOT_TOKEN:-$(hex 20)}
    (
        umask 077
        {
            echo "# written by deploy/compose-up.sh; keep it secret, keep it with the volumes"
            echo "COMPOSE_PROJECT_NAME=$project"
            echo "EDGEKV_CLUSTER_SECRET=$secret"
            echo "EDGEKV_ACCOUNT_ID=$account"
            echo "EDGEKV_ROOT_TOKEN=$token"
        } >"$envf"
    )
    echo "compose-up: wrote $envf (mode 600)"
fi
chmod 600 "$envf"
for v in EDGEKV_CLUSTER_SECRET EDGEKV_ACCOUNT_ID EDGEKV_ROOT_TOKEN; do
    val=$(getv "$v")
    if [ -z "$val" ]; then
        echo "compose-up: $envf has no $v (fix it, or remove the file with the volumes)" >&2
        exit 1
    fi
    if [ -n "${!v:-}" ] && [ "${!v}" != "$val" ]; then
        echo "compose-up: note: $v from $envf is used, not the one in the environment" >&2
    fi
    export "$v=$val"
done

# podman builds OCI images by default, which drop HEALTHCHECK; docker format keeps it
export BUILDAH_FORMAT=docker
"${compose[@]}" -p "$project" -f deploy/docker-compose.yml up -d "$@"

port=${EDGEKV_PORT:-8787}
cat <<EOF

edgekv cluster '$project' started; clients go to http://127.0.0.1:$port (lb -> edge1..edge3).
  export CLOUDFLARE_ACCOUNT_ID=$EDGEKV_ACCOUNT_ID
  export CLOUDFLARE_API_TOKEN=$EDGEKV_ROOT_TOKEN
  export CLOUDFLARE_API_BASE_URL=http://127.0.0.1:$port/client/v4
Status: ${compose[*]} -p $project -f deploy/docker-compose.yml ps
EOF
