#!/usr/bin/env bash
# bench/concurrency.sh — many concurrent streams, end to end (issue 7's figures).
#
#   make bench && [RAMP_MS=0] [REQUESTS=4] bench/concurrency.sh [LEVELS=1,4,8,16] [REPEAT=3]
#
# 1. Makes (once, cached in bench/out/) a random-weight TinyLlama-1.1B-shape
#    model in Q4_0 with bench/mkmodel, carrying the real LLaMA SentencePiece
#    vocabulary from ../shared/models/tiny-llama-rand-q4_0.gguf so that
#    English prompts tokenize to about one token per word.
# 2. Starts `cllama serve` on 127.0.0.1 (port 0) with a temporary store and
#    registers the model with `cllama create`.
# 3. bench/loadgen: streaming /api/chat at each concurrency level, prompts of
#    about 128 tokens, 64 new tokens, 4 requests one after another on each
#    connection (so ramp-up and drain are a small part of the run), REPEAT
#    runs of the whole load (RSS after each level), then a two-turn
#    conversation with a ~1,000-token first turn (time to first token of
#    turn 2 vs turn 1).
# 4. Writes bench/out/concurrency.json and bench/out/concurrency.png.
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${1:-1,4,8,16}
REPEAT=${2:-3}
# RAMP_MS: start each level's connections evenly over this many ms (the
# steady state; 0: all at once, the cold burst). REQUESTS per connection.
RAMP_MS=${RAMP_MS:-0}
REQUESTS=${REQUESTS:-4}
SHARED=${CLLAMA_SHARED:-../shared}
BIN=build/release/cllama
MK=build/release/bench/mkmodel
LG=build/release/bench/loadgen
[ -x "$BIN" ] && [ -x "$MK" ] && [ -x "$LG" ] || { echo "run 'make bench' first" >&2; exit 1; }
VOCAB="$SHARED/models/tiny-llama-rand-q4_0.gguf"
[ -f "$VOCAB" ] || { echo "SKIP: $VOCAB not found (set CLLAMA_SHARED)" >&2; exit 1; }

mkdir -p bench/out
model=bench/out/tinyllama-1.1b-q4_0.gguf
if [ ! -f "$model" ]; then
  echo "== making $model"
  "$MK" tinyllama-1.1b Q4_0 "$model" --vocab-from "$VOCAB"
fi

tmp=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
OLLAMA_HOST=127.0.0.1:0 OLLAMA_MODELS="$tmp/models" CLLAMA_PORT_FILE="$tmp/port" \
  OLLAMA_NUM_PARALLEL=${OLLAMA_NUM_PARALLEL:-16} OLLAMA_KEEP_ALIVE=-1 \
  "$BIN" serve 2>"$tmp/server.log" &
pid=$!
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
port=$(cat "$tmp/port")
export OLLAMA_HOST=127.0.0.1:$port
printf 'FROM %s\n' "$(realpath "$model")" >"$tmp/Modelfile"
"$BIN" create tinyllama-q4 -f "$tmp/Modelfile" >/dev/null

url=http://127.0.0.1:$port
# Warm up: load the model and page its weights in.
"$LG" --url "$url" --model tinyllama-q4 --levels 1 --requests 1 --num-predict 4 >/dev/null

echo "== concurrency: levels $LEVELS, 128-token prompts, 64 new tokens, $REQUESTS requests per connection, ramp $RAMP_MS ms, $REPEAT runs"
"$LG" --url "$url" --model tinyllama-q4 --levels "$LEVELS" --requests "$REQUESTS" \
  --ramp-ms "$RAMP_MS" --prompt-words 120 --num-predict 64 --repeat "$REPEAT" --server-pid "$pid" \
  --json bench/out/concurrency.json --plot bench/out/concurrency.png

echo "== conversation: ~1,000-token first turn, then a second turn"
"$LG" --url "$url" --model tinyllama-q4 --levels 1 --requests 3 --turns 2 \
  --prompt-words 990 --num-predict 64 --server-pid "$pid" --json bench/out/conversation.json

grep -E "reused|prefix" "$tmp/server.log" | tail -n 3 || true
kill -TERM "$pid"
wait "$pid" || true
pid=
