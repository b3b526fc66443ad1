#!/usr/bin/env bash
# bench/haproxy.sh — three `cllama serve` instances behind HAProxy
# (bench/haproxy.cfg), routed by a hash of each conversation's first message.
#
#   make bench && bench/haproxy.sh [--check]
#
# 1. Starts three instances on one model store (their own ports, 127.0.0.1)
#    and HAProxy in front of them.
# 2. Routing check: 12 two-turn chats through the balancer. Each answer's
#    X-Served-By header names the instance; each instance's /metrics gives
#    the prompt tokens it took from its KV cache. Passes when every second
#    turn went to the instance of its first turn and reused that prefix
#    there, and the conversations were spread over more than one instance.
# 3. Unless --check: bench/loadgen with two-turn chats at 16 concurrent
#    conversations through the balancer (3 instances) and against one
#    instance directly, one after the other: aggregate generated tokens/s
#    and each turn's time to first token. The instances share this machine's
#    cores, so this shows the routing at work rather than a speed-up.
# MODEL=FILE.gguf picks the model (default: bench/out/tinyllama-1.1b-q4_0.gguf
# when bench/concurrency.sh has made it, else ../shared's tiny random model).
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK_ONLY=0
[ "${1:-}" = "--check" ] && CHECK_ONLY=1
SHARED=${CLLAMA_SHARED:-../shared}
BIN=${CLLAMA_BIN:-build/release/cllama}
LG=build/release/bench/loadgen
command -v haproxy >/dev/null || { echo "SKIP: haproxy not installed (apt-get install haproxy)"; exit 77; }
[ -x "$BIN" ] || { echo "run 'make' first" >&2; exit 1; }
model=${MODEL:-}
if [ -z "$model" ]; then
  model=bench/out/tinyllama-1.1b-q4_0.gguf
  [ -f "$model" ] || model="$SHARED/models/tiny-llama-rand-q4_0.gguf"
fi
[ -f "$model" ] || { echo "SKIP: no model ($model; set CLLAMA_SHARED or MODEL)"; exit 77; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

ports=()
for i in 1 2 3; do
  OLLAMA_HOST=127.0.0.1:0 OLLAMA_MODELS="$tmp/models" CLLAMA_PORT_FILE="$tmp/port$i" \
    OLLAMA_NUM_PARALLEL=${OLLAMA_NUM_PARALLEL:-16} OLLAMA_KEEP_ALIVE=-1 \
    "$BIN" serve 2>"$tmp/s$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  for _ in $(seq 200); do [ -s "$tmp/port$i" ] && break; sleep 0.05; done
  ports+=("$(cat "$tmp/port$i")")
done
printf 'FROM %s\n' "$(realpath "$model")" >"$tmp/Modelfile"
OLLAMA_HOST=127.0.0.1:${ports[0]} "$BIN" create lbmodel -f "$tmp/Modelfile" >/dev/null
for p in "${ports[@]}"; do # load it everywhere before measuring
  curl -sf "http://127.0.0.1:$p/api/generate" -d '{"model":"lbmodel"}' >/dev/null
done

export CLLAMA_LB_PORT=$(free_port) CLLAMA_S1_PORT=${ports[0]} CLLAMA_S2_PORT=${ports[1]} \
  CLLAMA_S3_PORT=${ports[2]}
haproxy -db -f bench/haproxy.cfg >"$tmp/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$CLLAMA_LB_PORT/api/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== HAProxy on :$CLLAMA_LB_PORT -> s1 :${ports[0]}, s2 :${ports[1]}, s3 :${ports[2]} ($(basename "$model"))"

python3 - "$CLLAMA_LB_PORT" "${ports[@]}" <<'EOF'
import json, re, sys, urllib.request
lb, ports = sys.argv[1], dict(zip(("s1", "s2", "s3"), sys.argv[2:5]))

def reused(port):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    return int(float(re.search(r"^cllama_prompt_tokens_reused_total (\S+)$", text, re.M).group(1)))

def chat(messages):
    body = json.dumps({"model": "lbmodel", "messages": messages, "stream": False,
                       "options": {"num_predict": 16, "temperature": 0}}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{lb}/api/chat", body,
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.headers["X-Served-By"], json.load(r)

system = {"role": "system", "content": "You are a helpful assistant. " * 8}
print("%4s %8s %8s %16s %18s" % ("conv", "turn 1", "turn 2", "turn-2 prompt", "reused on turn 2"))
bad, used = 0, set()
for i in range(12):
    first = {"role": "user", "content": "Conversation %d: tell me about rivers and boats." % i}
    msgs = [system, first] if i % 2 else [first]
    s1, a1 = chat(msgs)
    before = reused(ports[s1])
    msgs = msgs + [a1["message"], {"role": "user", "content": "And then what happened?"}]
    s2, a2 = chat(msgs)
    got = reused(ports[s2]) - before if s2 == s1 else 0
    used.add(s1)
    ok = s1 == s2 and got > 0
    bad += not ok
    print("%4d %8s %8s %10d tokens %11d tokens %s" % (i, s1, s2, a2["prompt_eval_count"], got,
                                                       "" if ok else "  <-- NOT PINNED"))
print("instances used: %s" % ", ".join(sorted(used)))
if bad or len(used) < 2:
    print("routing check FAILED")
    sys.exit(1)
print("routing check passed: every second turn went to the instance holding its prefix")
EOF
[ "$CHECK_ONLY" = 1 ] && exit 0

[ -x "$LG" ] || { echo "run 'make bench' for the load part" >&2; exit 1; }
echo "== two-turn chats, 16 concurrent conversations, ~128-token first turns, 64 new tokens"
echo "-- through HAProxy (3 instances)"
"$LG" --url "http://127.0.0.1:$CLLAMA_LB_PORT" --model lbmodel --levels 16 --requests 1 --turns 2 \
  --prompt-words 120 --num-predict 64 --no-probe --json bench/out/haproxy-3.json | tail -n +3 || true
echo "-- one instance directly"
"$LG" --url "http://127.0.0.1:${ports[0]}" --model lbmodel --levels 16 --requests 1 --turns 2 \
  --prompt-words 120 --num-predict 64 --no-probe --json bench/out/haproxy-1.json | tail -n +3 || true
python3 - <<'EOF'
import json
a = json.load(open("bench/out/haproxy-3.json"))[0]
b = json.load(open("bench/out/haproxy-1.json"))[0]
print("aggregate output tokens/s: 3 instances %.1f, 1 instance %.1f (ratio %.2f)" % (
    a["output_throughput"], b["output_throughput"], a["output_throughput"] / b["output_throughput"]))
print("TTFT p50 ms, turn 1 / turn 2 (all requests' median, turn 2 alone): 3 instances %.0f / %.0f, 1 instance %.0f / %.0f" % (
    a["median_ttft_ms"], a["turn2_ttft_ms_p50"], b["median_ttft_ms"], b["turn2_ttft_ms_p50"]))
EOF
