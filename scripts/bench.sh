#!/usr/bin/env bash
# Runs the benchmark matrix of docs/BENCHMARKS.md (issue 6) on this
# machine and writes every run's `polysocket bench --json` result, its
# progress log and a note on the machine to a results folder, then draws
# the echo chart. Meant for a quiet machine: it loads every core.
#
#   scripts/bench.sh [OUT]        OUT defaults to bench-results/ (gitignored)
#
# The matrix (64-byte messages; each relay run beside its direct-WebSocket
# baseline where the mode has one):
#   echo   at C = 1, 10, 100, 1000          (polysocket both, spawned per run)
#   stream at C = 1000                      (the target pushes as fast as it can)
#   idle   at 1000 and the most sessions the open-file limit allows (at most 10000)
#   cluster: echo at C = 100 through 2 routers and 3 relays on one Redis,
#            when redis-server and redis-cli are installed
#
# Environment (defaults in brackets):
#   DURATION [10s]   measured time of each run     WARMUP [2s]  unmeasured time before it
#   SIZE [64]        message bytes                 IDLE_TTL [5s]  poll ttl in idle runs
#   ECHO_C ["1 10 100 1000"]  STREAM_C [1000]  IDLE_C ["1000 max"]  CLUSTER_C [100]
#   (an empty list skips that workload; "max" is the open-file bound)
#   CHART [docs/bench-echo.png]  where the chart goes
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-${OUT:-bench-results}}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
SIZE=${SIZE:-64}
IDLE_TTL=${IDLE_TTL:-5s}
ECHO_C=${ECHO_C-1 10 100 1000}
STREAM_C=${STREAM_C-1000}
IDLE_C=${IDLE_C-1000 max}
CLUSTER_C=${CLUSTER_C-100}
CHART=${CHART:-docs/bench-echo.png}

mkdir -p "$OUT"
# Results of an earlier matrix would mix into this one's chart.
rm -f "$OUT"/{echo,stream,idle,cluster}-*.{json,log}
BIN="$OUT/polysocket"
echo "== building $BIN"
go build -o "$BIN" .

# Every idle session costs 2 file descriptors in the relay (the poll's
# connection and the target's) and 2 in the bench (the poll's and the
# target's end; a send connection opens only for the closing health
# check, a few at a time). Both processes take the hard limit as their
# own, so the hard limit bounds the idle run.
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ]; then
  idle_max=10000
else
  idle_max=$(( (hard - 200) / 2 ))
  [ "$idle_max" -gt 10000 ] && idle_max=10000
  [ "$idle_max" -ge 1000 ] && idle_max=$(( idle_max / 100 * 100 ))
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo 2>/dev/null)"
  echo "kernel: $(uname -sr)"
  echo "go: $(go version | cut -d' ' -f3-)"
  echo "open-file limit: $hard (idle max $idle_max sessions)"
  echo "duration: $DURATION, warmup: $WARMUP, size: $SIZE B"
} | tee "$OUT/machine.txt"

failed=0

# field FILE PATH... prints the first value of "key" after each
# preceding key in turn: field f relay msgs_per_sec. The JSON is
# `bench --json`'s own indented output, one key a line.
field() {
  local f=$1; shift
  awk -v keys="$*" 'BEGIN { n = split(keys, k, " "); i = 1 }
    i <= n && index($0, "\"" k[i] "\":") { if (i == n) { v = $0; sub(/^[^:]*: */, "", v); sub(/,$/, "", v); print v; exit } i++ }' "$f"
}

# run NAME ARGS...: one bench run; its JSON goes to $OUT/NAME.json, its
# progress lines to $OUT/NAME.log.
run() {
  local name=$1; shift
  echo "== $name: polysocket bench $*"
  local rc=0
  "$BIN" bench --json --duration "$DURATION" --warmup "$WARMUP" --size "$SIZE" --log-level warn "$@" \
    >"$OUT/$name.json" 2>"$OUT/$name.log" || rc=$?
  if [ ! -s "$OUT/$name.json" ]; then
    echo "   FAILED (exit $rc), no result; see $OUT/$name.log"
    rm -f "$OUT/$name.json"
    failed=$((failed + 1))
    return
  fi
  local path f="$OUT/$name.json"
  for path in relay direct; do
    grep -q "\"$path\": {" "$f" || continue
    printf '   %-6s sessions %s  %.0f msgs/s  p50 %.3f ms  p99 %.3f ms  create %.0f/s (p99 %.1f ms)  errors %s  lost %s  dup %s  reordered %s\n' \
      "$path" "$(field "$f" "$path" sessions)" "$(field "$f" "$path" msgs_per_sec)" \
      "$(field "$f" "$path" latency p50_ms)" "$(field "$f" "$path" latency p99_ms)" \
      "$(field "$f" "$path" create_per_sec)" "$(field "$f" "$path" create_latency p99_ms)" \
      "$(field "$f" "$path" errors)" "$(field "$f" "$path" lost)" \
      "$(field "$f" "$path" duplicated)" "$(field "$f" "$path" reordered)"
  done
  if grep -q '"mode": "idle"' "$f"; then
    echo "   relay RSS/session $(field "$f" relay rss_per_session_kib) KiB, healthy $(field "$f" relay healthy) of $(field "$f" relay concurrency)"
  fi
  if grep -Eq '"(lost|duplicated|reordered)": [1-9]' "$OUT/$name.json"; then
    echo "   FAILED: messages lost, duplicated or reordered"
    failed=$((failed + 1))
  elif [ "$rc" != 0 ]; then
    echo "   FAILED (exit $rc); see $OUT/$name.log"
    failed=$((failed + 1))
  fi
  if grep -q '"warnings"' "$OUT/$name.json"; then
    echo "   warnings: see $OUT/$name.json"
  fi
}

for c in $ECHO_C; do
  run "echo-c$c" --spawn --mode echo -c "$c" --direct
done
for c in $STREAM_C; do
  run "stream-c$c" --spawn --mode stream -c "$c" --direct
done
idle_done=" "
for c in $IDLE_C; do
  [ "$c" = max ] && c=$idle_max
  case "$idle_done" in *" $c "*) continue ;; esac # "max" may be 1000 too
  idle_done+="$c "
  run "idle-c$c" --spawn --mode idle -c "$c" --ttl "$IDLE_TTL"
done

# The cluster: one Redis, 3 relays and 2 routers, each a process of its
# own on a free loopback port, all stopped by PID when the script ends.
pids=()
tmp=""
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$tmp" ] && rm -rf "$tmp"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# freeport prints a loopback port nothing listens on, below the kernel's
# ephemeral range: after the idle runs thousands of client connections
# hold ports in that range, and a listener there may fail to bind.
freeport() {
  local p i low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  [ "$low" -gt 21000 ] || low=32768
  for i in $(seq 1 100); do
    p=$(( 20000 + RANDOM % (low - 20000) ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port found" >&2
  return 1
}

# waitready URL: waits (at most 20s) for URL to answer 200.
waitready() {
  local i
  for i in $(seq 1 200); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "$1 did not become ready" >&2
  return 1
}

if [ -n "$CLUSTER_C" ] && command -v redis-server >/dev/null && command -v redis-cli >/dev/null && command -v curl >/dev/null; then
  echo "== cluster: redis-server, 3 relays, 2 routers"
  tmp=$(mktemp -d)
  rport=$(freeport)
  redis="redis://127.0.0.1:$rport"
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" \
    >"$OUT/cluster-redis.log" 2>&1 &
  pids+=($!)
  for i in $(seq 1 100); do
    redis-cli -p "$rport" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$rport" ping >/dev/null
  "$BIN" token add bench --target 'ws://127.0.0.1:*' --origin '*' --redis "$redis" >/dev/null
  for i in 1 2 3; do
    p=$(freeport)
    "$BIN" relay --redis "$redis" --listen "127.0.0.1:$p" --fqdn "127.0.0.1:$p" --id "bench-relay-$i" \
      --allow-private --drain-timeout 1s --admin-listen off --log-level warn >"$OUT/cluster-relay-$i.log" 2>&1 &
    pids+=($!)
    waitready "http://127.0.0.1:$p/readyz"
  done
  routers=()
  for i in 1 2; do
    p=$(freeport)
    "$BIN" router --redis "$redis" --listen "127.0.0.1:$p" --create-rate 0 --admin-listen off --log-level warn \
      >"$OUT/cluster-router-$i.log" 2>&1 &
    pids+=($!)
    waitready "http://127.0.0.1:$p/readyz"
    routers+=(--router "http://127.0.0.1:$p")
  done
  # The relays register on the bus (polysocket:relays, see redisbus).
  for i in $(seq 1 100); do
    [ "$(redis-cli -p "$rport" scard polysocket:relays)" = 3 ] && break
    sleep 0.1
  done
  echo "   relays registered: $(redis-cli -p "$rport" scard polysocket:relays)"
  for c in $CLUSTER_C; do
    run "cluster-echo-c$c" "${routers[@]}" --token bench --mode echo -c "$c" --direct
  done
  cleanup
  pids=()
  tmp=""
elif [ -n "$CLUSTER_C" ]; then
  echo "== cluster: skipped (needs redis-server, redis-cli and curl)"
fi

echo "== chart: $CHART"
shopt -s nullglob
echo_results=("$OUT"/echo-c*.json)
if [ ${#echo_results[@]} -gt 0 ]; then
  "$BIN" bench chart --out "$CHART" "${echo_results[@]}"
else
  echo "   no echo results"
fi

if [ "$failed" -gt 0 ]; then
  echo "== $failed run(s) failed; results in $OUT/"
  exit 1
fi
echo "== done; results in $OUT/"
