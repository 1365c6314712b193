#!/usr/bin/env bash
# Holds USERS (default 50,000) concurrent keep-alive users against the built-in target on this
# machine: past one process's 20,000 descriptors (a master and PROCESSES local workers, default 4)
# and past one source address's ~28k ports to one destination (--source-addrs over 127.0.0.0/8).
# The target runs TARGETS processes (default 4) sharing one port with SO_REUSEPORT, each under
# its own descriptor limit. Users request /delay/1s in a loop, so each holds its connection
# open; the run reports users started, requests, failures and the peak established connections.
#
#   scripts/scale.sh                  # 50,000 users, 30 s
#   USERS=30000 DURATION=20 scripts/scale.sh
#
# Loopback only. Ends only the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
USERS=${USERS:-50000}
DURATION=${DURATION:-30}
PROCESSES=${PROCESSES:-4}
TARGETS=${TARGETS:-4}
PORT=${PORT:-18500}
RATE=${RATE:-5000}
source scripts/common.sh scale
build_swarmer
for i in $(seq "$TARGETS"); do
  "$SWARMER" target --port "$PORT" --reuse-port --threads 1 >/dev/null &
  PIDS+=($!)
done
sleep 0.5
# One source address per 12,500 users: each (source, target) pair stays well under its ports.
SOURCES=$(( (USERS + 12499) / 12500 ))
LAST=$(( SOURCES + 1 ))
peak=0
(
  while sleep 1; do
    ss -Htn state established "( dport = :$PORT )" | wc -l
  done
) >"$WORK/established.txt" &
WATCH=$!
PIDS+=($WATCH)
status=0
"$SWARMER" --processes "$PROCESSES" -u "$USERS" -r "$RATE" -t "${DURATION}s" --only-summary \
  --source-addrs "127.0.0.2-127.0.0.$LAST" --timeout 10s --csv "$WORK/run" \
  "http://127.0.0.1:$PORT/delay/1s" >"$WORK/out.txt" 2>&1 || status=$?
kill "$WATCH" 2>/dev/null || true
peak=$(sort -n "$WORK/established.txt" | tail -1)
echo "== $USERS users, $PROCESSES worker processes, $TARGETS target processes, $SOURCES source addresses, ${DURATION}s"
grep -E "^Run time|^All .* users started|Cancelled|error" "$WORK/out.txt" || true
awk -F, '/,Aggregated,/ {printf "requests %s, failures %s\n", $3, $4}' "$WORK/run_stats.csv"
echo "peak established connections to the target: $peak (exit code $status)"
