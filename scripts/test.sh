#!/usr/bin/env bash
# Runs every test: unit tests, scripted-server tests, the binary end to end, the allocation
# proof. Release mode: the timing tests and the allocation test measure the real build.
# Ends with one summary line over all test binaries.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release "$@" 2>&1 | tee "$log" || status=$?
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) }
     }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit $status
