#!/usr/bin/env bash
# Fuzzes the response parser and body framer (target `response`), the scenario loader (target
# `scenario`), the distributed master's frame decoder (target `frame`) and the HAR converter
# (target `har`) for a bounded time each, from the committed seeds in fuzz/corpus/. New inputs
# go to a scratch directory, so the committed corpus stays the seeds; a crash leaves its input in
# fuzz/artifacts/TARGET/ and fails the script.
#
#   scripts/fuzz.sh                 # 30 s per target (what CI runs)
#   FUZZ_SECONDS=600 scripts/fuzz.sh    # the 10-minute runs
#   scripts/fuzz.sh scenario        # one target
#
# cargo-fuzz is installed when missing. It needs unstable compiler flags (the sanitizer);
# RUSTC_BOOTSTRAP=1 lets this machine's stable toolchain take them.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECONDS_EACH=${FUZZ_SECONDS:-30}
TARGETS=${*:-response scenario frame har}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
for target in $TARGETS; do
  work=$(mktemp -d /tmp/swarmer-fuzz-$target.XXXXXX)
  log=$work.log
  # The scenario compiler leaks its check and step messages on purpose (once per compiled plan,
  # so failures stay Copy on the hot path); leak detection would report each input's.
  leaks=1
  [ "$target" = scenario ] && leaks=0
  # Decoded failure texts and abort places are interned (bounded, leaked once each).
  [ "$target" = frame ] && leaks=0
  [ "$target" = har ] && leaks=0
  echo "== fuzzing $target for ${SECONDS_EACH}s"
  status=0
  ASAN_OPTIONS=detect_leaks=$leaks cargo fuzz run -O "$target" "$work" "corpus/$target" -- -max_total_time="$SECONDS_EACH" \
    -rss_limit_mb=2048 -timeout=10 -detect_leaks=$leaks -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY)|panicked" "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log" >&2
    echo "fuzz target $target failed (exit $status); the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  rm -rf "$work" "$log"
done
