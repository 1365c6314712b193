# Sourced by bench.sh and scale.sh (from the project root): a scratch directory ($WORK), the
# processes to end on exit (PIDS: only those the script started, by PID), the descriptor limit
# raised to the hard limit, and the release binary built ($SWARMER).
WORK=$(mktemp -d "/tmp/swarmer-$1.XXXXXX")
PIDS=()

cleanup() {
  for pid in "${PIDS[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

ulimit -n "$(ulimit -Hn)"

build_swarmer() {
  cargo build --release --quiet
  SWARMER=$PWD/target/release/swarmer
}
