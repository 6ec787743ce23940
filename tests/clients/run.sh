#!/usr/bin/env bash
# Drives a real edgekv binary with the pinned official clients: the `cloudflare` npm SDK
# (sdk.test.mjs) and the `wrangler` CLI (wrangler.test.mjs).
#
#   bash tests/clients/run.sh            # EDGEKV_BIN defaults to <repo>/build/edgekv
#   EDGEKV_BIN=/path/to/edgekv bash tests/clients/run.sh [extra node --test args]
#
# Dependencies are installed with `npm ci` from the committed package-lock.json into
# tests/clients/node_modules, only when missing or when package.json / package-lock.json
# changed since the last install (a stamp file records their hash). Once installed, the
# run needs no network. Needs only node (>= 20.3, wrangler's engines) and npm.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

export EDGEKV_BIN="${EDGEKV_BIN:-$repo/build/edgekv}"
if [[ ! -x "$EDGEKV_BIN" ]]; then
  echo "run.sh: edgekv binary not found or not executable: $EDGEKV_BIN (build it first)" >&2
  exit 1
fi

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "run.sh: '$tool' is required" >&2; exit 1; }
done

# wrangler 4.86.0 declares engines.node >= 20.3.0 (and refuses to start below 20.0), and
# `node --test --test-concurrency` needs 20.10: refuse older nodes with a clear message
# instead of failing obscurely in the middle of a test.
if ! node -e '
  const [maj, min] = process.versions.node.split(".").map(Number);
  process.exit(maj > 20 || (maj === 20 && min >= 10) ? 0 : 1);
'; then
  echo "run.sh: node $(node --version) is too old: these tests need node >= 20.10" >&2
  exit 1
fi

stamp="node_modules/.edgekv-deps.sha256"
want="$(cat package.json package-lock.json | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" || ! -x node_modules/.bin/wrangler || ! -d node_modules/cloudflare ]]; then
  echo "run.sh: installing pinned client dependencies (npm ci)" >&2
  # --ignore-scripts: no install hook is needed for what we run (wrangler's remote KV
  # commands and the SDK), and skipping them keeps the install free of post-install
  # downloads/builds. The .npmrc here keeps registry URLs out of the lock file.
  npm ci --ignore-scripts --no-audit --no-fund --no-progress --loglevel=error >/dev/null
  echo "$want" > "$stamp"
fi

# ctest runs us with a 900 s budget; each test file also has its own timeouts.
exec node --test --test-concurrency=1 "$@" sdk.test.mjs sdk_do.test.mjs wrangler.test.mjs
