#!/usr/bin/env bash
# Compares swarmer with wrk in one run, alternating, with the target pinned to one CPU and the
# generator to the other. Reports req/s, requests per generator CPU-second (user+sys from
# /usr/bin/time), peak RSS, and the swarmer/wrk ratios of the medians.
#
#   scripts/bench.sh            # all modes
#   scripts/bench.sh nginx      # 64 keep-alive connections against nginx (worker_processes 1)
#   scripts/bench.sh pipeline   # 16-deep pipelining against the built-in target (the ceiling)
#   scripts/bench.sh memory     # peak RSS at 1,000 and 10,000 connections → bytes per connection
#   scripts/bench.sh scenario   # CPU µs per request of a scenario task (templated path, JSON
#                               # body, JSON check) against a static request to the same endpoint
#   scripts/bench.sh https      # 64 keep-alive HTTPS connections against the built-in target
#                               # serving TLS (swarmer target --tls), wrk vs swarmer; and the
#                               # same with a new connection per request (/close: handshakes)
#   scripts/bench.sh open       # the open model's schedule: at each of RATES (default 200 2000)
#                               # starts/s for DURATION, swarmer --rate against the target's
#                               # /delay/1ms, alternating with the kernel's own wake-up floor
#                               # (benches/wake.rs): achieved rate, start lag p50/p99
#   scripts/bench.sh web        # the web UI's cost: requests per generator CPU-second with the
#                               # UI serving an open page's event stream vs headless, and the web
#                               # thread's own CPU
#   scripts/bench.sh outputs    # the machine-readable outputs' cost: requests per generator
#                               # CPU-second with --json-file, --hdr-log, --csv and /metrics
#                               # scraped every second vs none, alternating
#   scripts/bench.sh dist       # the distributed protocol's cost: requests per CPU-second of
#                               # --processes 2 (a master, 2 workers) vs one 2-thread process
#   scripts/bench.sh har        # converting a ~50 MB recording of 10,000 entries: time and
#                               # peak RSS against the file's size
#   scripts/bench.sh spawn      # how long 10,000 users started at 10,000/s take to connect
#   scripts/bench.sh table      # the README's benchmark table from one alternating run:
#                               # CPU per request of swarmer, its task engine (--no-ring), wrk
#                               # and the floor client (benches/floor.rs) against nginx and the built-in target at
#                               # 64 and 256 connections, pipelined 16 (swarmer vs wrk), memory
#                               # per connection of both, and the time to connect 10,000 users
#   scripts/bench.sh profile    # where the CPU goes: swarmer (RUNS times; with BASELINE=PATH
#                               # alternating with that binary), its task engine (--no-ring),
#                               # wrk and the floor client against
#                               # nginx at CONNS under `perf record -e cpu-clock -g`, µs per
#                               # request by part (scripts/perf-breakdown.py)
#   scripts/bench.sh drivers    # CPU µs per request against nginx: io_uring with and without
#                               # DEFER_TASKRUN, epoll, wrk, and the raw io_uring floor client
#                               # (benches/floor.rs), alternating; with BASELINE=PATH, also
#                               # that swarmer binary (before/after a change, same run)
#
# Environment: RUNS (alternations, default 3), DURATION (seconds per run, default 10),
# CONNS (default 64), TARGET_CPU (default 1), GEN_CPU (default 0).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
TARGET_CPU=${TARGET_CPU:-1}
GEN_CPU=${GEN_CPU:-0}
MODES=${*:-nginx pipeline memory}
source scripts/common.sh bench

need() {
  local missing=()
  command -v wrk >/dev/null || missing+=(wrk)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
  [ -x /usr/bin/time ] || missing+=(time)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]} from Debian" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

need
build_swarmer

# Runs a command pinned to the generator CPU under /usr/bin/time; prints "requests cpu_s rss_kb".
measure() {
  local out=$WORK/out.txt tm=$WORK/time.txt
  taskset -c "$GEN_CPU" /usr/bin/time -f "%U %S %M" -o "$tm" "$@" >"$out" 2>&1 || true
  local requests
  if grep -q "requests in" "$out"; then
    requests=$(awk '/requests in/ {print $1}' "$out")                       # wrk
  else
    requests=$(awk '/^Run time/ {for (i=1;i<=NF;i++) if ($i=="requests,") print $(i-1)}' "$out")  # swarmer
  fi
  read -r user sys rss <"$tm"
  echo "${requests:-0} $(awk -v u="$user" -v s="$sys" 'BEGIN {print u + s}') $rss"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# compare LABEL WRK_ARGS... -- SWARMER_ARGS...
compare() {
  local label=$1; shift
  local wrk_args=() sw_args=()
  while [ "$1" != "--" ]; do wrk_args+=("$1"); shift; done; shift
  sw_args=("$@")
  : >"$WORK/wrk.txt"; : >"$WORK/sw.txt"
  for i in $(seq "$RUNS"); do
    measure wrk "${wrk_args[@]}" >>"$WORK/wrk.txt"
    measure "$SWARMER" "${sw_args[@]}" >>"$WORK/sw.txt"
  done
  echo "== $label ($RUNS alternating runs of ${DURATION}s; generator on CPU $GEN_CPU, target on CPU $TARGET_CPU)"
  printf '%-8s %12s %14s %10s   per run: requests cpu_s rss_kb\n' tool "req/s" "req/CPU-s" "RSS MiB"
  local tool file
  for tool in wrk swarmer; do
    file=$WORK/wrk.txt; [ $tool = swarmer ] && file=$WORK/sw.txt
    local rps cps rss
    rps=$(awk -v d="$DURATION" '{print $1/d}' "$file" | median)
    cps=$(awk '{print $1/$2}' "$file" | median)
    rss=$(awk '{print $3/1024}' "$file" | median)
    printf '%-8s %12.0f %14.0f %10.1f   %s\n' $tool "$rps" "$cps" "$rss" "$(tr '\n' ';' <"$file")"
    eval "${tool}_rps=$rps; ${tool}_cps=$cps"
  done
  awk -v sr="$swarmer_rps" -v wr="$wrk_rps" -v sc="$swarmer_cps" -v wc="$wrk_cps" \
    'BEGIN {printf "ratio swarmer/wrk: req/s %.3f, requests per CPU-second %.3f\n\n", sr / wr, sc / wc}'
}

start_nginx() {
  local port=$1
  mkdir -p "$WORK/nginx"
  cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
worker_rlimit_nofile 20000;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000000;
  keepalive_timeout 300s;
  server { listen 127.0.0.1:$port; location / { return 200 "Hello, World!"; } }
}
CONF
  taskset -c "$TARGET_CPU" nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
  PIDS+=($!)
  sleep 0.5
}

start_target() {
  local port=$1; shift
  taskset -c "$TARGET_CPU" "$SWARMER" target --port "$port" --threads 1 "$@" >/dev/null &
  PIDS+=($!)
  sleep 0.3
}

# Peak RSS of swarmer and wrk at 1,000 and 10,000 connections to URL; prints both and the bytes
# per connection ((RSS@10k - RSS@1k) / 9000), and leaves "swarmer_kib wrk_kib" in $WORK/mem-kib.txt.
memory_per_connection() {
  local url=$1 c sw wk
  : >"$WORK/mem.txt"
  for c in 1000 10000; do
    sw=$(measure "$SWARMER" --threads 1 --cpus "$GEN_CPU" -u $c -r 1000000 -t "${DURATION}s" --only-summary "$url")
    wk=$(measure wrk -t1 -c$c -d"${DURATION}s" "$url")
    echo "$c $sw $wk" >>"$WORK/mem.txt"
    printf '%6d connections: swarmer RSS %7.1f MiB (%s requests), wrk RSS %7.1f MiB (%s requests)\n' \
      $c "$(echo "$sw" | awk '{print $3/1024}')" "$(echo "$sw" | awk '{print $1}')" \
      "$(echo "$wk" | awk '{print $3/1024}')" "$(echo "$wk" | awk '{print $1}')"
  done
  awk 'NR==1 {s1=$4; w1=$7} NR==2 {s2=$4; w2=$7}
       END {printf "%.2f %.2f\n", (s2-s1)/9000, (w2-w1)/9000}' "$WORK/mem.txt" >"$WORK/mem-kib.txt"
  read -r sk wk <"$WORK/mem-kib.txt"
  echo "per connection (RSS@10k - RSS@1k)/9000: swarmer $sk KiB, wrk $wk KiB"
}

# Starts N users at N/s against the target on PORT (each holding /delay/1s requests) and prints
# the seconds from the command's start until all are connected (established connections sampled
# every 50 ms), or "never"; connect failures and messages go to $WORK/spawn-notes.txt.
time_to_connect() {
  local port=$1 n=$2 t0 watch took
  t0=$(date +%s.%N)
  (while sleep 0.05; do echo "$(date +%s.%N) $(ss -Htn state established "( dport = :$port )" | wc -l)"; done) >"$WORK/est.txt" &
  watch=$!
  "$SWARMER" -u "$n" -r "$n" -t 4s --only-summary "http://127.0.0.1:$port/delay/1s" >"$WORK/spawn.txt" 2>&1 || true
  kill "$watch" 2>/dev/null || true
  wait "$watch" 2>/dev/null || true
  took=$(awk -v n="$n" -v t0="$t0" '$2 >= n {printf "%.2f", $1 - t0; exit}' "$WORK/est.txt")
  echo "connect messages: $(grep -ci "connect" "$WORK/spawn.txt" || true); $(awk '/^Run time/ {print; exit}' "$WORK/spawn.txt")" >"$WORK/spawn-notes.txt"
  echo "${took:-never}"
}

# wrk's Lua script for 16-deep pipelining, at $WORK/pipeline.lua.
pipeline_script() {
  cat >"$WORK/pipeline.lua" <<'LUA'
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
LUA
}

floor_binary() {
  cargo bench --no-run --bench floor 2>&1 | grep -o 'target/release/deps/floor-[0-9a-f]*' | head -1
}

# The README's table: every figure from one alternating run (see the header).
table() {
  start_nginx 18190
  start_target 18191
  local floor
  floor=$(floor_binary)
  pipeline_script
  : >"$WORK/table.txt"
  local i server port c tool r
  for i in $(seq "$RUNS"); do
    for server in nginx target; do
      port=18190; [ $server = target ] && port=18191
      for c in 64 256; do
        for tool in swarmer tasks wrk floor; do
          case $tool in
            swarmer) r=$(measure "$SWARMER" --threads 1 --cpus "$GEN_CPU" -u $c -r 1000000 -t "${DURATION}s" --only-summary "http://127.0.0.1:$port/") ;;
            tasks) r=$(measure "$SWARMER" --no-ring --threads 1 --cpus "$GEN_CPU" -u $c -r 1000000 -t "${DURATION}s" --only-summary "http://127.0.0.1:$port/") ;;
            wrk) r=$(measure wrk -t1 -c$c -d"${DURATION}s" "http://127.0.0.1:$port/") ;;
            floor) r=$(measure "$floor" "127.0.0.1:$port" $c "$DURATION") ;;
          esac
          echo "$server-$c $tool $r" >>"$WORK/table.txt"
        done
      done
    done
    r=$(measure "$SWARMER" --threads 1 --cpus "$GEN_CPU" -u 64 -r 1000000 -t "${DURATION}s" --pipeline 16 --only-summary "http://127.0.0.1:18191/")
    echo "pipelined-64 swarmer $r" >>"$WORK/table.txt"
    r=$(measure wrk -t1 -c64 -d"${DURATION}s" -s "$WORK/pipeline.lua" "http://127.0.0.1:18191/")
    echo "pipelined-64 wrk $r" >>"$WORK/table.txt"
  done
  echo "== memory"
  memory_per_connection http://127.0.0.1:18191/
  echo "== connecting 10,000 users at 10,000/s ($RUNS runs)"
  : >"$WORK/spawn-times.txt"
  for i in $(seq "$RUNS"); do
    time_to_connect 18191 10000 >>"$WORK/spawn-times.txt"
    echo "run $i: $(tail -1 "$WORK/spawn-times.txt") s; $(cat "$WORK/spawn-notes.txt")"
  done
  echo
  echo "Per run (requests cpu_s rss_kb):"
  awk '{printf "  %-13s %-8s %s %s %s\n", $1, $2, $3, $4, $5}' "$WORK/table.txt"
  echo
  echo "$(date -u +%Y-%m-%d), RUNS=$RUNS DURATION=$DURATION scripts/bench.sh table; medians; generator on CPU $GEN_CPU, target on CPU $TARGET_CPU"
  echo
  echo "| load | swarmer req/s | µs CPU/request: swarmer | task engine | wrk | floor | swarmer/floor CPU | swarmer/wrk req per CPU-s |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  local row label us_s us_t us_w us_f rps
  for row in nginx-64 nginx-256 target-64 target-256 pipelined-64; do
    case $row in
      nginx-*) label="nginx, ${row#nginx-} connections" ;;
      target-*) label="built-in target, ${row#target-} connections" ;;
      pipelined-*) label="built-in target, 64 connections, pipelined 16" ;;
    esac
    us_s=$(awk -v r=$row '$1 == r && $2 == "swarmer" {print $4 / $3 * 1e6}' "$WORK/table.txt" | median)
    us_t=$(awk -v r=$row '$1 == r && $2 == "tasks" {print $4 / $3 * 1e6}' "$WORK/table.txt" | median)
    us_w=$(awk -v r=$row '$1 == r && $2 == "wrk" {print $4 / $3 * 1e6}' "$WORK/table.txt" | median)
    us_f=$(awk -v r=$row '$1 == r && $2 == "floor" {print $4 / $3 * 1e6}' "$WORK/table.txt" | median)
    rps=$(awk -v r=$row -v d="$DURATION" '$1 == r && $2 == "swarmer" {print $3 / d}' "$WORK/table.txt" | median)
    awk -v l="$label" -v s="$us_s" -v t="${us_t:-}" -v w="$us_w" -v f="${us_f:-}" -v rps="$rps" 'BEGIN {
      floor = (f == "" || f == 0) ? "—" : sprintf("%.2f", f)
      tasks = (t == "" || t == 0) ? "—" : sprintf("%.2f", t)
      ratio = (f == "" || f == 0) ? "—" : sprintf("%.3f", s / f)
      printf "| %s | %.0f | %.2f | %s | %.2f | %s | %s | %.3f |\n", l, rps, s, tasks, w, floor, ratio, w / s }'
  done
  echo
  echo "Best of $RUNS runs each (the least CPU per request), swarmer/floor (and the task engine's):"
  for row in nginx-64 nginx-256 target-64 target-256; do
    awk -v r=$row '$1 == r {us = $4 / $3 * 1e6; if (!($2 in best) || us < best[$2]) best[$2] = us}
      END {printf "  %-11s %.3f (swarmer %.2f us, floor %.2f us; task engine %.3f)\n", r, best["swarmer"] / best["floor"], best["swarmer"], best["floor"], best["tasks"] / best["floor"]}' "$WORK/table.txt"
  done
  read -r sk wk <"$WORK/mem-kib.txt"
  echo
  echo "Memory per connection (RSS slope, 1,000 to 10,000 connections): swarmer $sk KiB, wrk $wk KiB ($(awk -v s="$sk" -v w="$wk" 'BEGIN {printf "%.2f", s / w}')x)."
  echo "10,000 users started at 10,000/s, all connected after (median of $RUNS): $(median <"$WORK/spawn-times.txt") s."
}

for mode in $MODES; do
  case $mode in
    nginx)
      start_nginx 18090
      URL=http://127.0.0.1:18090/
      compare "nginx, $CONNS connections" \
        -t1 -c"$CONNS" -d"${DURATION}s" "$URL" -- \
        --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary "$URL"
      ;;
    pipeline)
      start_target 18091
      URL=http://127.0.0.1:18091/
      pipeline_script
      compare "built-in target, $CONNS connections, pipeline 16" \
        -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/pipeline.lua" "$URL" -- \
        --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --pipeline 16 --only-summary "$URL"
      ;;
    memory)
      start_target 18092
      echo "== memory: peak RSS by connection count (built-in target; ${DURATION}s runs)"
      memory_per_connection http://127.0.0.1:18092/
      echo
      ;;
    web)
      # The web UI's cost: the same run headless and with the UI serving a page's event stream
      # (an SSE client reading /events every second, as an open page does; on the target's CPU so
      # it takes nothing from the generator's), alternating. Requests per generator CPU-second of
      # each, and the web thread's own CPU over the run (from /proc, as % of one core).
      start_target 18097
      URL=http://127.0.0.1:18097/
      COMMON=(--threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary)
      : >"$WORK/web.txt"
      for i in $(seq "$RUNS"); do
        echo "headless $(measure "$SWARMER" "${COMMON[@]}" "$URL")" >>"$WORK/web.txt"
        ( sleep 1; taskset -c "$TARGET_CPU" curl -sN http://127.0.0.1:18098/events >"$WORK/events.txt" ) &
        ( sleep $((DURATION + 2)); pid=$(pgrep -f "^$SWARMER --web" | head -1);
          for task in /proc/"$pid"/task/*; do
            [ "$(cat "$task/comm")" = swarmer-web ] && awk '{print $14 + $15}' "$task/stat"
          done >"$WORK/webthread.txt" ) &
        r=$(measure "$SWARMER" --web --autostart --autoquit 4s -P 18098 "${COMMON[@]}" "$URL")
        pkill -f "curl -sN http://127.0.0.1:18098/events" || true; sleep 0.2
        ticks=$(cat "$WORK/webthread.txt" 2>/dev/null); ticks=${ticks:-0}
        echo "ui $r $ticks $(grep -c "^data: " "$WORK/events.txt")" >>"$WORK/web.txt"
      done
      echo "== web UI cost, $CONNS connections ($RUNS alternating runs of ${DURATION}s; generator on CPU $GEN_CPU)"
      for variant in headless ui; do
        cps=$(awk -v v=$variant '$1 == v {print $2 / $3}' "$WORK/web.txt" | median)
        printf '%-9s %12.0f requests per CPU-second (median)\n' $variant "$cps"
        echo "$variant $cps" >>"$WORK/web_cps.txt"
      done
      awk '{c[$1]=$2} END {printf "ratio ui/headless: %.3f (bar: at least 0.97)\n", c["ui"]/c["headless"]}' "$WORK/web_cps.txt"
      hz=$(getconf CLK_TCK)
      awk -v d="$DURATION" -v hz="$hz" '$1 == "ui" {printf "web thread: %.2f%% of one core over the run, %d events sent\n", 100 * $5 / hz / d, $6}' "$WORK/web.txt"
      echo
      ;;
    outputs)
      # The outputs' cost: the same run with none and with all of them (the JSON summary, the
      # HDR log, the CSV files, and /metrics scraped every second by a client on the target's
      # CPU, as Prometheus would), alternating. Everything swarmer does for them (the reporter
      # thread's encoding and writing, the metrics server) runs on the generator's CPU.
      start_target 18099
      URL=http://127.0.0.1:18099/
      COMMON=(--threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary)
      ALL=(--json-file "$WORK/run.json" --hdr-log "$WORK/run.hlog" --csv "$WORK/run" --metrics-port 18100)
      : >"$WORK/outputs.txt"
      # The CPU ticks of the threads that serve the outputs (reporter, metrics server), read from
      # /proc just before the run ends.
      threads() {
        ( sleep "$(awk -v d="$DURATION" 'BEGIN {print d - 0.3}')"; pid=$(pgrep -f "^$SWARMER --threads 1 --cpus $GEN_CPU -u" | head -1)
          for task in /proc/"$pid"/task/*; do
            case "$(cat "$task/comm")" in swarmer-reporte|swarmer-metrics) awk '{s += $14 + $15} END {printf "%d ", s}' "$task/stat" ;; esac
          done >"$WORK/threads.txt" ) &
        reader=$!
      }
      for i in $(seq "$RUNS"); do
        threads
        r=$(measure "$SWARMER" "${COMMON[@]}" "$URL"); wait "$reader"
        echo "none $r $(cat "$WORK/threads.txt")" >>"$WORK/outputs.txt"
        ( sleep 0.5; for s in $(seq $((DURATION - 1))); do
            taskset -c "$TARGET_CPU" curl -s -H 'Accept: application/openmetrics-text' \
              http://127.0.0.1:18100/metrics >>"$WORK/scrapes.txt" || true; sleep 1; done ) &
        scraper=$!
        threads
        r=$(measure "$SWARMER" "${COMMON[@]}" "${ALL[@]}" "$URL")
        wait "$scraper" "$reader"
        echo "all $r $(cat "$WORK/threads.txt")" >>"$WORK/outputs.txt"
      done
      echo "== outputs' cost, $CONNS connections ($RUNS alternating runs of ${DURATION}s; generator on CPU $GEN_CPU)"
      for variant in none all; do
        cps=$(awk -v v=$variant '$1 == v {print $2 / $3}' "$WORK/outputs.txt" | median)
        printf '%-5s %12.0f requests per CPU-second (median)   per run: %s\n' $variant "$cps" \
          "$(awk -v v=$variant '$1 == v {printf "%s %s;", $2, $3}' "$WORK/outputs.txt")"
        echo "$variant $cps" >>"$WORK/outputs_cps.txt"
      done
      awk '{c[$1]=$2} END {printf "ratio all/none: %.3f (bar: at least 0.97)\n", c["all"]/c["none"]}' "$WORK/outputs_cps.txt"
      hz=$(getconf CLK_TCK)
      awk -v d="$DURATION" -v hz="$hz" '{t[$1] += $5 + $6; n[$1]++}
        END {printf "reporter + metrics threads: %.2f%% of one core with none, %.2f%% with all\n", 100 * t["none"] / n["none"] / hz / d, 100 * t["all"] / n["all"] / hz / d}' "$WORK/outputs.txt"
      printf 'scrapes: %d, HDR log lines: %d, JSON summary: %d bytes\n\n' "$(grep -c '^# EOF' "$WORK/scrapes.txt")" \
        "$(grep -vc '^[#"]' "$WORK/run.hlog")" "$(wc -c <"$WORK/run.json")"
      ;;
    drivers)
      start_nginx 18093
      URL=http://127.0.0.1:18093/
      SW=("$SWARMER" --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary "$URL")
      FLOOR=$(floor_binary)
      VARIANTS="default no-defer epoll wrk floor${BASELINE:+ baseline}"
      : >"$WORK/drivers.txt"
      for i in $(seq "$RUNS"); do
        for variant in $VARIANTS; do
          case $variant in
            default) r=$(measure "${SW[@]}") ;;
            baseline) r=$(measure "$BASELINE" "${SW[@]:1}") ;;
            no-defer) r=$(measure "${SW[@]}" --no-defer-taskrun) ;;
            epoll) r=$(measure "${SW[@]}" --io epoll) ;;
            wrk) r=$(measure wrk -t1 -c"$CONNS" -d"${DURATION}s" "$URL") ;;
            floor) r=$(measure "$FLOOR" "127.0.0.1:18093" "$CONNS" "$DURATION") ;;
          esac
          echo "$variant $r" >>"$WORK/drivers.txt"
        done
      done
      echo "== CPU per request against nginx, $CONNS connections ($RUNS alternating runs of ${DURATION}s)"
      for variant in $VARIANTS; do
        us=$(awk -v v=$variant '$1 == v {print $3 / $2 * 1e6}' "$WORK/drivers.txt" | median)
        printf '%-9s %6.2f us CPU per request (median)\n' $variant "$us"
      done
      echo
      ;;
    scenario)
      # The cost of a scenario request: a task with a templated path, a JSON body and a JSON
      # check, against the same endpoint fetched as a static quick-mode request. Same target
      # (the built-in one's /api/echo, which answers the request back as JSON), same users.
      start_target 18094
      HOST=http://127.0.0.1:18094
      cat >"$WORK/scenario.toml" <<TOML
host = "$HOST"
[[user]]
name = "Poster"
[[user.task]]
[user.task.request]
post = "/api/echo/{{ random_int(1, 1000000) }}"
name = "/api/echo/[n]"
json = { title = "post {{ counter }}", userId = "{{ user_index }}", tags = ["a", "b"] }
check = { status = 200, json = [{ path = "/method", eq = "POST" }] }
TOML
      COMMON=(--threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary)
      : >"$WORK/scenario.txt"
      for i in $(seq "$RUNS"); do
        echo "plain $(measure "$SWARMER" "${COMMON[@]}" "$HOST/")" >>"$WORK/scenario.txt"
        echo "static $(measure "$SWARMER" "${COMMON[@]}" "$HOST/api/echo/1")" >>"$WORK/scenario.txt"
        echo "scenario $(measure "$SWARMER" "${COMMON[@]}" -f "$WORK/scenario.toml")" >>"$WORK/scenario.txt"
      done
      echo "== scenario cost: CPU per request, $CONNS users ($RUNS alternating runs of ${DURATION}s; generator on CPU $GEN_CPU)"
      echo "plain: GET / (13-byte body); static: GET /api/echo/1 (the scenario's endpoint, ~300-byte JSON)"
      for variant in plain static scenario; do
        us=$(awk -v v=$variant '$1 == v {print $3 / $2 * 1e6}' "$WORK/scenario.txt" | median)
        printf '%-9s %6.2f us CPU per request (median)\n' $variant "$us"
        echo "$variant $us" >>"$WORK/scenario_us.txt"
      done
      awk '{u[$1]=$2} END {printf "ratio scenario/plain: %.3f, scenario/static: %.3f (bar: at most 1.5)\n\n", u["scenario"]/u["plain"], u["scenario"]/u["static"]}' "$WORK/scenario_us.txt"
      ;;
    https)
      start_target 18096 --tls
      URL=https://localhost:18096/
      compare "HTTPS, built-in target (TLS 1.3, keep-alive), $CONNS connections" \
        -t1 -c"$CONNS" -d"${DURATION}s" "$URL" -- \
        --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary --ca-cert tests/tls/ca.pem "$URL"
      compare "HTTPS, built-in target, a new connection per request (/close), $CONNS connections" \
        -t1 -c"$CONNS" -d"${DURATION}s" "${URL}close" -- \
        --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary --ca-cert tests/tls/ca.pem "${URL}close"
      ;;
    open)
      start_target 18095
      WAKE=$(cargo bench --no-run --bench wake 2>&1 | grep -o 'target/release/deps/wake-[0-9a-f]*' | head -1)
      echo "== open model schedule ($RUNS alternating runs of ${DURATION}s per rate; generator on CPU $GEN_CPU, target on CPU $TARGET_CPU)"
      printf '%-8s %-8s %12s %10s %10s %10s
' rate who "starts/s" "rate err" "lag p50" "lag p99"
      for rate in ${RATES:-200 2000}; do
        for i in $(seq "$RUNS"); do
          taskset -c "$GEN_CPU" "$WAKE" "$rate" "$DURATION" >"$WORK/wake.txt"
          sed -n 's/.*(\([0-9.]*\)\/s); lag p50 \([0-9]*\) us, p99 \([0-9]*\) us.*/\1 \2 \3/p' "$WORK/wake.txt" |
            awk -v r="$rate" '{printf "%-8s %-8s %12.2f %9.3f%% %7d us %7d us\n", r, "floor", $1, ($1 - r) / r * 100, $2, $3}'
          taskset -c "$GEN_CPU" "$SWARMER" --rate "$rate" --threads 1 --cpus "$GEN_CPU" -t "${DURATION}s" \
            --only-summary "http://127.0.0.1:18095/delay/1ms" >"$WORK/open.txt" 2>&1 || true
          # Achieved: the requests that completed or were cancelled at the end, over the run time.
          begun=$(awk '/^Run time/ {for (i=1;i<=NF;i++) if ($i=="requests,") print $(i-1)}' "$WORK/open.txt")
          sed -n 's/.*start lag p50 \([0-9]*\) us, p99 \([0-9]*\) us.*/\1 \2/p' "$WORK/open.txt" |
            awk -v r="$rate" -v n="$begun" -v d="$DURATION" \
              '{a = n / d; printf "%-8s %-8s %12.2f %9.3f%% %7d us %7d us\n", r, "swarmer", a, (a - r) / r * 100, $1, $2}'
        done
      done
      echo
      ;;
    dist)
      # The protocol's cost: one process with 2 threads against a master and 2 local workers of
      # 1 thread each (--processes 2; the CPU of the master and its workers is counted, as
      # /usr/bin/time counts waited-for children), alternating. Both generators may use both
      # CPUs; the target is pinned to TARGET_CPU.
      start_target 18094
      URL=http://127.0.0.1:18094/
      : >"$WORK/dist.txt"
      for i in $(seq "$RUNS"); do
        echo "one $(GEN_CPU=0,1 measure "$SWARMER" --threads 2 -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary "$URL")" >>"$WORK/dist.txt"
        echo "two $(GEN_CPU=0,1 measure "$SWARMER" --processes 2 -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary "$URL")" >>"$WORK/dist.txt"
      done
      echo "== distributed cost, $CONNS connections ($RUNS alternating runs of ${DURATION}s; target on CPU $TARGET_CPU)"
      for variant in one two; do
        cps=$(awk -v v=$variant '$1 == v {print $2 / $3}' "$WORK/dist.txt" | median)
        printf '%-4s %12.0f requests per CPU-second (median)   per run: %s\n' $variant "$cps" \
          "$(awk -v v=$variant '$1 == v {printf "%s %s;", $2, $3}' "$WORK/dist.txt")"
        echo "$variant $cps" >>"$WORK/dist_cps.txt"
      done
      awk '{c[$1]=$2} END {printf "ratio --processes 2 / one process: %.3f (bar: at least 0.95)\n\n", c["two"]/c["one"]}' "$WORK/dist_cps.txt"
      ;;
    har)
      # Converting a big recording: ENTRIES (default 10,000) entries of ~5 KB JSON responses
      # (~50 MB), each POST's created id read back by the GET after it; wall time and peak RSS
      # of `swarmer har`, against the file's size.
      python3 - "$WORK/big.har" "${ENTRIES:-10000}" <<'PY'
import json, sys, uuid
path, n = sys.argv[1], int(sys.argv[2])
headers = [{"name": k, "value": v} for k, v in [
    (":authority", "shop.example"), ("accept", "application/json"), ("user-agent", "Mozilla/5.0 bench"),
    ("sec-ch-ua", '"Chromium";v="120"'), ("sec-fetch-mode", "cors"), ("accept-language", "en")]]
entries = []
for i in range(n):
    item = 100000 + i // 2
    items = [{"id": 200000 + i * 31 + k, "sku": uuid.UUID(int=i * 31 + k).hex, "name": f"item {k}",
              "description": "lorem ipsum dolor sit amet " * 3, "price": k * 3 + 0.5} for k in range(25)]
    if i % 2 == 0:
        request = {"method": "POST", "url": "https://shop.example/api/items", "headers": headers,
                   "postData": {"mimeType": "application/json", "text": json.dumps({"name": f"thing {i}"})}}
        body = {"id": item, "related": items}
        status = 201
    else:
        request = {"method": "GET", "url": f"https://shop.example/api/items/{item}", "headers": headers}
        body = {"id": item, "related": items}
        status = 200
    entries.append({"startedDateTime": f"2024-05-01T01:{i // 600 % 60:02d}:{i // 10 % 60:02d}.{i % 10}00Z", "time": 12,
                    "_resourceType": "fetch", "request": request,
                    "response": {"status": status, "headers": [{"name": "content-type", "value": "application/json"}],
                                 "content": {"mimeType": "application/json", "text": json.dumps(body)}}})
json.dump({"log": {"version": "1.2", "creator": {"name": "bench"}, "entries": entries}}, open(path, "w"))
PY
      size=$(stat -c %s "$WORK/big.har")
      echo "== converting a recording: ${ENTRIES:-10000} entries, $((size / 1048576)) MiB ($RUNS runs)"
      for i in $(seq "$RUNS"); do
        /usr/bin/time -f "%e %M" -o "$WORK/har-time.txt" "$SWARMER" har "$WORK/big.har" -o "$WORK/big.toml"
        read -r secs rss <"$WORK/har-time.txt"
        awk -v s="$secs" -v r="$rss" -v f="$size" 'BEGIN {printf "%.2f s, peak RSS %.0f MiB = %.2fx the file\n", s, r / 1024, r * 1024 / f}'
      done
      echo "$(grep -c '^\[\[user.task.steps\]\]' "$WORK/big.toml") steps, $(grep -c '^capture' "$WORK/big.toml") captures written"
      echo
      ;;
    spawn)
      start_target 18093
      for i in $(seq "$RUNS"); do
        took=$(time_to_connect 18093 "${SPAWN_USERS:-10000}")
        echo "run $i: all ${SPAWN_USERS:-10000} users connected $took s after the command started; $(cat "$WORK/spawn-notes.txt")"
      done
      echo
      ;;
    table)
      table
      ;;
    profile)
      command -v perf >/dev/null || { echo "profile needs perf (apt-get install linux-perf)" >&2; exit 2; }
      start_nginx 18094
      floor=$(floor_binary)
      specs=()
      # With BASELINE=PATH, that swarmer binary too (before/after a change), alternating RUNS times.
      tools=""
      for i in $(seq "${RUNS}"); do tools="$tools swarmer$i${BASELINE:+ baseline$i}"; done
      for tool in $tools tasks wrk floor; do
        case $tool in
          tasks) cmd=("$SWARMER" --no-ring --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary http://127.0.0.1:18094/) ;;
          swarmer*) cmd=("$SWARMER" --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary http://127.0.0.1:18094/) ;;
          baseline*) cmd=("$BASELINE" --threads 1 --cpus "$GEN_CPU" -u "$CONNS" -r 1000000 -t "${DURATION}s" --only-summary http://127.0.0.1:18094/) ;;
          wrk) cmd=(wrk -t1 -c"$CONNS" -d"${DURATION}s" http://127.0.0.1:18094/) ;;
          floor) cmd=("$floor" 127.0.0.1:18094 "$CONNS" "$DURATION") ;;
        esac
        # One sample per 100 µs of CPU: samples x 100 µs is the CPU the run took.
        taskset -c "$GEN_CPU" perf record -q -e cpu-clock -c 100000 -g -o "$WORK/$tool.data" -- "${cmd[@]}" >"$WORK/$tool.out" 2>&1
        requests=$(awk '/requests in/ {print $1} /^Run time/ {for (i=1;i<=NF;i++) if ($i=="requests,") print $(i-1)}' "$WORK/$tool.out" | head -1)
        specs+=("$tool=$WORK/$tool.data:$requests")
      done
      echo "== where the CPU goes: nginx, $CONNS connections, ${DURATION}s each (perf record -e cpu-clock -g)"
      python3 scripts/perf-breakdown.py 100 "${specs[@]}"
      echo
      ;;
    *) echo "unknown mode $mode (table, nginx, pipeline, memory, drivers, scenario, open, https, web, outputs, dist, har, spawn)" >&2; exit 2 ;;
  esac
done
