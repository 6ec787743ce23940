#!/usr/bin/env bash
# Build and run bench/micro/htab_bench.c: common/htab vs the storage/htab it replaced.
#   bench/micro/htab_bench.sh [keys=1000000] [lookups/round=5000000] [rounds=5]
# The old table is taken from git history (the last commit that had storage/htab.c) and
# renamed old_htab_*; the new one is compiled from common/ with the build's flags (-O2 -g).
# Everything goes into one temp dir, removed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

del=$(git -C "$root" log -1 --format=%H --diff-filter=D -- storage/htab.c)
rev=${OLD_REV:-${del:+$del^}}
rev=${rev:-HEAD}
git -C "$root" show "$rev:storage/htab.h" | sed 's/ekv_htab/old_htab/g; s/EKV_STORAGE_HTAB_H/OLD_HTAB_H/' >"$tmp/old_htab.h"
git -C "$root" show "$rev:storage/htab.c" |
    sed 's/ekv_htab/old_htab/g; s|#include "storage/htab.h"|#include "old_htab.h"|' >"$tmp/old_htab.c"

cc=${CC:-cc}
flags="-std=c11 -O2 -g -DNDEBUG -D_GNU_SOURCE -I$root -I$tmp -Wall -Wextra"
$cc $flags -o "$tmp/htab_bench" "$root/bench/micro/htab_bench.c" "$tmp/old_htab.c" \
    "$root/common/htab.c" "$root/common/log.c" "$root/common/errors.c" "$root/common/clock.c" \
    $(pkg-config --cflags --libs libxxhash libuv) -lpthread
"$tmp/htab_bench" "$@"
