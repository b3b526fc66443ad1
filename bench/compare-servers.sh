#!/usr/bin/env bash
# bench/compare-servers.sh — the same load against cllama and a llama.cpp
# server on the same GGUF, drawn on one plot (issue 17).
#
#   make bench && bench/compare-servers.sh [LEVELS=1,4,8,16] [REPEAT=2] | tee compare.out
#   (MODEL=FILE.gguf for another model, THREADS=N, REQUESTS=N per connection, LLAMA_SERVER=PATH,
#   LLAMA_ARGS="extra llama-server flags", default --poll 0)
#
# 1. Makes (once, cached in bench/out/) the random-weight TinyLlama-1.1B-shape
#    Q4_0 model that bench/concurrency.sh uses (bench/mkmodel, real LLaMA
#    vocabulary from ../shared so that a word is about one token).
# 2. Starts `cllama serve` (OLLAMA_NUM_PARALLEL=16) and llama.cpp's
#    llama-server (-np 16, 2 threads, continuous batching; LLAMA_SERVER or
#    /work/ext/llama.cpp/build/bin/llama-server, built outside this repo) on
#    that file, both on 127.0.0.1.
# 3. bench/loadgen against each through the same API (OpenAI
#    /v1/completions, streamed, no chat template on either side): prompts of
#    about 128 tokens, 64 new tokens, each connection running 4 requests back
#    to back, at each concurrency level. The servers take turns, level by
#    level and run by run, so that both see the same machine (it is shared).
# 4. Prints one table (output tokens/s, TTFT, ITL, TPOT per server and the
#    ratio), writes bench/out/compare-{cllama,llamacpp}.json (vLLM's result
#    layout) and bench/out/compare-servers.png (both servers on one plot).
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS=${1:-1,4,8,16}
REPEAT=${2:-2}
SHARED=${CLLAMA_SHARED:-../shared}
BIN=build/release/cllama
MK=build/release/bench/mkmodel
LG=build/release/bench/loadgen
LLAMA_SERVER=${LLAMA_SERVER:-/work/ext/llama.cpp/build/bin/llama-server}
THREADS=${THREADS:-2}
# llama.cpp's threads busy-wait for work by default (--poll 50); on a machine
# shared with other jobs that starves them, so they sleep here as ours do.
LLAMA_ARGS=${LLAMA_ARGS:---poll 0}
[ -x "$BIN" ] && [ -x "$MK" ] && [ -x "$LG" ] || { echo "run 'make bench' first" >&2; exit 1; }
[ -x "$LLAMA_SERVER" ] || { echo "SKIP: no llama-server at $LLAMA_SERVER (set LLAMA_SERVER)" >&2; exit 1; }
VOCAB="$SHARED/models/tiny-llama-rand-q4_0.gguf"
[ -f "$VOCAB" ] || { echo "SKIP: $VOCAB not found (set CLLAMA_SHARED)" >&2; exit 1; }

mkdir -p bench/out
model=${MODEL:-bench/out/tinyllama-1.1b-q4_0.gguf}  # MODEL=FILE.gguf: another model
if [ ! -f "$model" ]; then
  echo "== making $model"
  "$MK" tinyllama-1.1b Q4_0 "$model" --vocab-from "$VOCAB"
fi

tmp=$(mktemp -d)
cpid= lpid=
cleanup() {
  [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
  [ -n "$lpid" ] && kill "$lpid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# cllama
OLLAMA_HOST=127.0.0.1:0 OLLAMA_MODELS="$tmp/models" CLLAMA_PORT_FILE="$tmp/port" \
  OLLAMA_NUM_PARALLEL=16 OLLAMA_KEEP_ALIVE=-1 "$BIN" serve 2>"$tmp/cllama.log" &
cpid=$!
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
cport=$(cat "$tmp/port")
printf 'FROM %s\n' "$(realpath "$model")" >"$tmp/Modelfile"
OLLAMA_HOST=127.0.0.1:$cport "$BIN" create tinyllama-q4 -f "$tmp/Modelfile" >/dev/null

# llama.cpp: 16 slots of 512 cells each (a 128-token prompt and 64 new tokens fit)
lport=$(free_port)
"$LLAMA_SERVER" -m "$model" --host 127.0.0.1 --port "$lport" -np 16 -c 8192 -t "$THREADS" \
  -tb "$THREADS" --no-webui $LLAMA_ARGS >"$tmp/llama.log" 2>&1 &
lpid=$!
for _ in $(seq 600); do
  curl -sf "http://127.0.0.1:$lport/health" >/dev/null 2>&1 && break
  kill -0 "$lpid" 2>/dev/null || { echo "llama-server failed:" >&2; tail -20 "$tmp/llama.log" >&2; exit 1; }
  sleep 0.1
done

REQUESTS=${REQUESTS:-4}
common=(--model tinyllama-q4 --api openai-completions --requests "$REQUESTS" --prompt-words 120
        --num-predict 64 --temperature 0.8 --no-probe)
# Warm up both (load, page the weights in).
"$LG" --url "http://127.0.0.1:$cport" "${common[@]}" --levels 1 --requests 1 --num-predict 4 >/dev/null
"$LG" --url "http://127.0.0.1:$lport" "${common[@]}" --levels 1 --requests 1 --num-predict 4 >/dev/null

echo "== $model: cllama (pid $cpid) vs llama.cpp llama-server $LLAMA_ARGS (pid $lpid), $THREADS threads each"
echo "== /v1/completions streamed, ~128-token prompts, 64 new tokens, $REQUESTS requests per connection"
IFS=, read -r -a levels <<<"$LEVELS"
out=bench/out/compare-runs # each load point's loadgen output, kept
rm -rf "$out"
mkdir -p "$out"
for run in $(seq "$REPEAT"); do
  for lv in "${levels[@]}"; do
    for srv in cllama llamacpp; do
      port=$cport pid=$cpid
      [ "$srv" = llamacpp ] && port=$lport pid=$lpid
      # A failed request is counted in the table (errors), not fatal.
      "$LG" --url "http://127.0.0.1:$port" "${common[@]}" --levels "$lv" --label "$srv" \
        --server-pid "$pid" --json "$out/$srv-$run-$lv.json" >"$out/$srv-$run-$lv.txt" 2>&1 || true
      sed -n 5p "$out/$srv-$run-$lv.txt"; grep "first error" "$out/$srv-$run-$lv.txt" || true
    done
  done
done

python3 - "$tmp" "$REPEAT" "$LEVELS" "$out" <<'EOF'
import glob, json, os, sys
tmp, repeat, out = sys.argv[1], int(sys.argv[2]), sys.argv[4]
levels = sorted(int(x) for x in sys.argv[3].split(","))
res = {}
for srv in ("cllama", "llamacpp"):
    pts = []
    for run in range(1, repeat + 1):
        for lv in levels:
            try:
                p = json.load(open(f"{out}/{srv}-{run}-{lv}.json"))[0]
            except (OSError, ValueError, IndexError):
                continue  # that point did not finish
            p["run"] = run
            pts.append(p)
    res[srv] = pts
    json.dump(pts, open(f"bench/out/compare-{srv}.json", "w"), indent=1)
    with open(f"{tmp}/{srv}.dat", "w") as f:
        f.write("# conc out_tok_s ttft_p50_ms itl_p50_ms tpot_mean_ms (median over runs)\n")
        for lv in levels:
            sel = [p for p in pts if p["max_concurrency"] == lv]
            if not sel:
                continue
            med = lambda k: sorted(p[k] for p in sel)[len(sel) // 2]
            f.write("%d %.2f %.2f %.3f %.3f\n" % (lv, med("output_throughput"),
                    med("median_ttft_ms"), med("median_itl_ms"), med("mean_tpot_ms")))
hdr = ("streams", "run", "cllama tok/s", "llama.cpp tok/s", "ratio", "TTFT p50 ms c/l",
       "ITL p50 ms c/l", "TPOT ms c/l", "errors c/l")
print("%7s %3s %13s %15s %6s %17s %15s %13s %10s" % hdr)
for run in range(1, repeat + 1):
    for lv in levels:
        c = next((p for p in res["cllama"] if p["run"] == run and p["max_concurrency"] == lv), None)
        l = next((p for p in res["llamacpp"] if p["run"] == run and p["max_concurrency"] == lv), None)
        if c is None or l is None:
            continue
        print("%7d %3d %13.1f %15.1f %6.2f %8.0f/%-8.0f %7.1f/%-7.1f %6.1f/%-6.1f %4d/%-4d" % (
            lv, run, c["output_throughput"], l["output_throughput"],
            c["output_throughput"] / l["output_throughput"], c["median_ttft_ms"],
            l["median_ttft_ms"], c["median_itl_ms"], l["median_itl_ms"], c["mean_tpot_ms"],
            l["mean_tpot_ms"], c["failed"], l["failed"]))
EOF

cat >"$tmp/plot.gp" <<EOF
set terminal png size 1100,440 noenhanced
set output 'bench/out/compare-servers.png'
set multiplot layout 1,2 title "$(basename "$model"): cllama vs llama.cpp, 128-token prompts, 64 new tokens (median of $REPEAT runs)"
set logscale x 2
set xlabel 'concurrent streams'
set grid
set key left top
set title 'output tokens/s'
plot '$tmp/cllama.dat' using 1:2 with linespoints lw 2 title 'cllama', \
     '$tmp/llamacpp.dat' using 1:2 with linespoints lw 2 title 'llama.cpp'
set title 'latency (ms)'
set logscale y
set key left top
plot '$tmp/cllama.dat' using 1:3 with linespoints title 'cllama TTFT p50', \
     '$tmp/llamacpp.dat' using 1:3 with linespoints title 'llama.cpp TTFT p50', \
     '$tmp/cllama.dat' using 1:4 with linespoints title 'cllama ITL p50', \
     '$tmp/llamacpp.dat' using 1:4 with linespoints title 'llama.cpp ITL p50'
unset multiplot
EOF
if gnuplot "$tmp/plot.gp" 2>/dev/null; then echo "plot: bench/out/compare-servers.png"; fi
echo "json: bench/out/compare-cllama.json bench/out/compare-llamacpp.json"
