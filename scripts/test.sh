#!/usr/bin/env bash
# Runs every test: unit tests, scripted-server tests, the binary end to end, the allocation
# proof. Release mode: the timing tests and the allocation test measure the real build.
# Every test binary runs even when an earlier one fails (--no-fail-fast); the closing line sums
# the tests of all of them and says how many binaries did not finish (crashed, or never ran
# because the build failed), so a failure cannot hide whole files.
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
awk -v status="$status" '
     /^     Running / { binaries++ }
     /^test result:/ {
       finished++
       for (i = 1; i <= NF; i++) { if ($i == "passed;") p += $(i-1); if ($i == "failed;") f += $(i-1) }
     }
     END {
       missing = binaries - finished
       if (binaries == 0 && status != 0) { print "tests: the build failed; no test ran"; exit }
       printf "tests: %d passed, %d failed; %d of %d test binaries finished", p, f, finished, binaries
       if (missing > 0) printf " (%d did not: see above)", missing
       printf "\n"
     }' "$log"
exit $status
