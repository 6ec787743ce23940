#!/usr/bin/env bash
# Install what edgekv needs on Debian bookworm (run as root). Idempotent: installs only
# missing packages, runs `apt-get update` at most once.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs (Criterion, node/npm)
#   scripts/install-deps.sh --bench  also the benchmark peers (wrk, nginx-light, h2o, etcd)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libuv1-dev node-llhttp librocksdb-dev libmsgpack-dev
      libprotobuf-c-dev protobuf-c-compiler libjansson-dev libssl-dev libxxhash-dev)
for arg in "$@"; do
  case "$arg" in
    --test) pkgs+=(libcriterion-dev) ;;
    --bench) pkgs+=(wrk nginx-light h2o etcd-server) ;;
    *) echo "usage: $0 [--test] [--bench]" >&2; exit 2 ;;
  esac
done
want_node=0
for arg in "$@"; do [ "$arg" = --test ] && want_node=1; done
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm drive the integration tests and the real clients; any node >= 18 will do
if [ "$want_node" = 1 ] && ! { command -v node >/dev/null && command -v npm >/dev/null; }; then
  missing+=(nodejs npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
