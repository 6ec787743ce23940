#!/usr/bin/env bash
# Install what is missing, build with -Werror, and run every test:
#   1. release build: unit tests (Criterion), integration tests (real binary over loopback),
#      real-client tests (the official cloudflare SDK and wrangler, pinned in tests/clients);
#   2. ASan+UBSan build: unit tests and the integration suite again against the sanitized binary;
#   3. the libFuzzer targets (tests/fuzz), 15 s each;
#   4. deploy/: static checks of the k8s manifests, compose file and Dockerfile (first, with
#      the format check) and, last, the compose cluster in podman (tests/deploy/compose.test.sh:
#      image build, health, SDK and wrangler through the lb, primary failover; skipped without
#      podman unless EDGEKV_REQUIRE_CONTAINERS=1).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
jobs=$(nproc)
start=$(date +%s)

echo "== format check (clang-format, .clang-format)"
unformatted=$(find common storage replication server tests proto -name '*.[ch]' -not -path '*/node_modules/*' |
  while read -r f; do clang-format --dry-run "$f" 2>&1 | grep -q warning && echo "$f"; done || true)
if [ -n "$unformatted" ]; then
  echo "not clang-formatted (run clang-format -i):" $unformatted >&2
  exit 1
fi

echo "== deploy manifests (k8s, compose, nginx, Dockerfile: static checks)"
# Debian's python3 (install-deps.sh installs python3-yaml for it), not whichever python3 is first in PATH
/usr/bin/python3 tests/deploy/k8s_manifests_test.py

echo "== release build (-Werror)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEKV_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests (release)"
ctest --test-dir build --output-on-failure --no-tests=error -j1

echo "== ASan+UBSan build"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DEKV_WERROR=ON -DEKV_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests (ASan+UBSan: unit + integration)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure --no-tests=error -j1 -L 'unit|integration'

echo "== fuzz (libFuzzer, short run per target)"
scripts/fuzz.sh 15

echo "== compose cluster (podman-compose: build, health, clients, failover)"
bash tests/deploy/compose.test.sh

echo "== all tests passed in $(( $(date +%s) - start ))s"
