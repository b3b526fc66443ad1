#!/usr/bin/env bash
# bench/http.sh — HTTP layer load figures for a release build.
#
#   make bench && bench/http.sh [DURATION=10s] [CONNECTIONS=256] [IDLE=5000]
#
# 1. Starts `cllama serve` on 127.0.0.1 (port 0, reported via
#    CLLAMA_PORT_FILE) with an empty temporary model store.
# 2. wrk -t2 -c$CONNECTIONS -d$DURATION against GET /api/version; prints
#    wrk's summary (requests/s, latency, errors) and the server's RSS
#    before, right after, and 2 s after the run.
# 3. bench/idle_conns: $IDLE idle keep-alive connections held while GET /
#    is timed on new connections (pass: p99 < 10 ms).
# 4. SIGTERM; the server must exit 0.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10s}
CONNS=${2:-256}
IDLE=${3:-5000}
BIN=build/release/cllama
IDLE_BIN=build/release/bench/idle_conns
[ -x "$BIN" ] && [ -x "$IDLE_BIN" ] || { echo "run 'make bench' first" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((IDLE + 200)) ]; then
  echo "ulimit -n is $(ulimit -n); need $((IDLE + 200)) for $IDLE idle connections" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
OLLAMA_HOST=127.0.0.1:0 OLLAMA_MODELS="$tmp/models" CLLAMA_PORT_FILE="$tmp/port" \
  "$BIN" serve 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }

curl -fsS "http://127.0.0.1:$port/api/version" >/dev/null
rss0=$(rss)
echo "== wrk -t2 -c$CONNS -d$DURATION http://127.0.0.1:$port/api/version"
wrk -t2 -c"$CONNS" -d"$DURATION" "http://127.0.0.1:$port/api/version" | tee "$tmp/wrk.txt"
rss1=$(rss)
sleep 2
rss2=$(rss)
errors=$(grep -E "Socket errors|Non-2xx" "$tmp/wrk.txt" || true)
echo "RSS: start ${rss0} KiB, right after ${rss1} KiB, 2 s later ${rss2} KiB"
echo "errors: ${errors:-none}"

echo "== $IDLE_BIN $port $IDLE"
idle_rc=0
"$IDLE_BIN" "$port" "$IDLE" 200 || idle_rc=$?
rss3=$(rss)
echo "RSS with the idle connections closed: ${rss3} KiB"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
echo "server exit status after SIGTERM: $rc"
[ -z "$errors" ] && [ "$rc" -eq 0 ] && [ "$idle_rc" -eq 0 ]
