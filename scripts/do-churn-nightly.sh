#!/usr/bin/env bash
# Nightly Durable Object ownership churn: run the churn test of tests/integration/do_owners.test.mjs
# (SIGKILL / SIGSTOP past the lease / join of edges under CAS increments, the history checked for
# linearizability) RUNS times with consecutive seeds, then print one line per run and a summary.
#
#   scripts/do-churn-nightly.sh [-n RUNS] [-s FIRST_SEED] [-b BIN] [-d SECONDS] [-o LOG_DIR]
#                               [-t TEST_FILE] [--asan]
#
#   -n RUNS        runs (default 10)
#   -s FIRST_SEED  seed of the first run, +1 per run (default: the date as YYYYMMDD * 100, so a
#                  night's seeds differ from the last night's and can be replayed)
#   -b BIN         the edgekv binary (default: $EDGEKV_BIN, else build/edgekv)
#   -d SECONDS     churn length per run (EDGEKV_CHURN_SECONDS; default: the test's, 60 s)
#   -o LOG_DIR     where each run's TAP output goes (default build/do-churn-<date>-<time>)
#   -t TEST_FILE   the test file (default tests/integration/do_owners.test.mjs); its tests whose
#                  name contains "churn" run
#   --asan         the binary is the ASan+UBSan build (EDGEKV_SANITIZED=1: longer timeouts)
#
# A failing run is replayed with: EDGEKV_CHURN_SEED=<seed> EDGEKV_BIN=<bin> \
#   node --test --test-name-pattern=churn tests/integration/do_owners.test.mjs
# Exit status: 0 when every run passed, 1 otherwise, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

runs=10
seed=$(( $(date +%Y%m%d) * 100 ))
bin=${EDGEKV_BIN:-build/edgekv}
secs=${EDGEKV_CHURN_SECONDS:-}
logs=build/do-churn-$(date +%Y%m%d-%H%M%S)
sanitized=0
test_file=tests/integration/do_owners.test.mjs
while [ $# -gt 0 ]; do
  case $1 in
    -n) runs=${2:?}; shift 2 ;;
    -s) seed=${2:?}; shift 2 ;;
    -b) bin=${2:?}; shift 2 ;;
    -d) secs=${2:?}; shift 2 ;;
    -o) logs=${2:?}; shift 2 ;;
    -t) test_file=${2:?}; shift 2 ;;
    --asan) sanitized=1; shift ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ $runs =~ ^[0-9]+$ && $runs -ge 1 ]] || { echo "-n: a positive number" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ ]] || { echo "-s: a non-negative integer" >&2; exit 2; }
[ -f "$test_file" ] || { echo "no test file $test_file" >&2; exit 2; }
[ -x "$bin" ] || { echo "no executable edgekv at $bin (build it, or -b / EDGEKV_BIN)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
mkdir -p "$logs"

echo "do-churn: $runs run(s) from seed $seed, binary $bin, ${secs:-default} s each, logs in $logs"
pass=0
fail=0
failed_seeds=()
fenced_all=()
summary=$logs/summary.txt
: > "$summary"
for (( i = 0; i < runs; i++ )); do
  s=$(( seed + i ))
  log=$logs/run-$s.tap
  start=$(date +%s)
  rc=0
  env EDGEKV_BIN="$bin" EDGEKV_SANITIZED=$sanitized EDGEKV_CHURN_SEED=$s ${secs:+EDGEKV_CHURN_SECONDS=$secs} \
    node --test --test-reporter=tap --test-name-pattern=churn "$test_file" \
    > "$log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  # the test's one-line summary: "churn-summary seed=... fenced=... violations=..."
  line=$(grep -o 'churn-summary .*' "$log" | tail -1 || true)
  field() { local v; v=$(sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" <<< "$line"); echo "${v:-?}"; }
  fenced=$(field fenced)
  if [ "$rc" -eq 0 ]; then
    verdict=PASS
    pass=$(( pass + 1 ))
  else
    verdict=FAIL
    fail=$(( fail + 1 ))
    failed_seeds+=("$s")
  fi
  fenced_all+=("$fenced")
  out="run $(( i + 1 ))/$runs seed $s: $verdict in ${took}s; fenced $fenced, moves $(field moves), expiries $(field expiries), ops $(field ops), ok $(field ok), unknown $(field unknown), violations $(field violations)"
  echo "$out" | tee -a "$summary"
  if [ "$verdict" = FAIL ]; then
    grep -E -A3 '^\s*(not ok|error:)' "$log" | grep -v -E '^\s*(---|duration_ms|location|failureType|--)' |
      head -24 | sed 's/^/    /' || true
  fi
done

echo "do-churn: $pass passed, $fail failed of $runs; fenced per run: ${fenced_all[*]}" | tee -a "$summary"
if [ "$fail" -gt 0 ]; then
  echo "do-churn: failed seeds: ${failed_seeds[*]} (logs: $logs/run-<seed>.tap)" | tee -a "$summary"
  exit 1
fi
