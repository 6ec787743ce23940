#!/usr/bin/env bash
# Install what is missing, build, and start the standalone server (data in ./data).
# Extra arguments go to `edgekv serve` (e.g. --listen 127.0.0.1:9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEKV_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" --target edgekv
exec build/edgekv serve "$@"
