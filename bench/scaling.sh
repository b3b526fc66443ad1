#!/usr/bin/env bash
# bench/scaling.sh — decode and prompt speed against the thread count,
# cllama and llama.cpp's llama-bench taking turns on the same GGUF files,
# and, where the CPU has AMX, cllama's prompt speed with the tiles and
# without them (CLLAMA_KERNELS=avx512-noamx) in the same run.
#
#   bench/scaling.sh [--bin DIR] [--llama PATH] [--models DIR]
#                    [--threads "1 2 4 8 16"] [--types "Q4_0 Q4_K_M Q8_0"]
#                    [--tg 32] [--pp 512]
#
#   --bin     where bench/model and bench/mkmodel are (default
#             build/release/bench; `make bench-static` makes static ones in
#             build/release/static for a machine without the packages)
#   --llama   llama.cpp's llama-bench (built outside the repo; static for
#             such a machine), or none: its columns show "-"
#   --models  where tinyllama-TYPE.gguf are ($CLLAMA_BENCH_MODELS or
#             /tmp/cllama-bench-models); missing ones are made with
#             mkmodel tinyllama-1.1b TYPE
#   --threads thread counts (default: 1 2 4 ... up to the CPUs here)
#
# Needs only bash, awk and sed (no python), so it runs where the static
# binaries are carried. Nothing here is a test: the numbers depend on the
# machine and on what else runs on it. Decode is also printed as a share
# of the roofline bench/model measures just before it (the bandwidth of
# that thread count over the bytes read per token), so where decode stops
# scaling one can see whether the memory bus is full.
set -euo pipefail

cd "$(dirname "$0")/.."
BIN=build/release/bench
LLAMA=${LLAMA_BENCH:-}
MODELS=${CLLAMA_BENCH_MODELS:-/tmp/cllama-bench-models}
TYPES="Q4_0 Q4_K_M Q8_0"
TG=32 PP=512
ncpu=$(nproc)
THREADS=""
for t in 1 2 4 8 16 32 64; do
  [ "$t" -le "$ncpu" ] && THREADS="$THREADS $t"
done
while [ $# -gt 0 ]; do
  case "$1" in
  --bin) BIN=$2; shift 2 ;;
  --llama) LLAMA=$2; shift 2 ;;
  --models) MODELS=$2; shift 2 ;;
  --threads) THREADS=$2; shift 2 ;;
  --types) TYPES=$2; shift 2 ;;
  --tg) TG=$2; shift 2 ;;
  --pp) PP=$2; shift 2 ;;
  -h | --help) sed -n '2,25p' "$0"; exit 0 ;;
  *) echo "scaling.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for p in "$BIN/model" "$BIN/mkmodel"; do
  [ -x "$p" ] || { echo "scaling.sh: $p missing (make build-all, or make bench-static and --bin build/release/static)" >&2; exit 2; }
done
if [ -n "$LLAMA" ] && [ ! -x "$LLAMA" ]; then
  echo "scaling.sh: $LLAMA is not an executable" >&2
  exit 2
fi
mkdir -p "$MODELS"
for t in $TYPES; do
  f="$MODELS/tinyllama-$t.gguf"
  if [ ! -f "$f" ]; then
    echo "making $f ..." >&2
    "$BIN/mkmodel" tinyllama-1.1b "$t" "$f.tmp" >&2 && mv "$f.tmp" "$f"
  fi
done

# Whether the default table runs AMX tiles (bench/model says so).
amx=0
if "$BIN/model" "$MODELS/tinyllama-$(echo $TYPES | cut -d' ' -f1).gguf" --threads 1 --tg 0 \
  --pp 1 --reps 1 --bw-mib 8 2>/dev/null | grep -q 'AMX tiles'; then
  amx=1
fi

# ours: "decode tok/s, prefill tok/s, roofline tok/s"
ours() { # file threads [env...]
  local f=$1 n=$2 out
  shift 2
  out=$(env "$@" "$BIN/model" "$f" --threads "$n" --tg "$TG" --pp "$PP" --reps 1 --bw-mib 256 2>&1) ||
    { echo "- - -"; return; }
  echo "$out" | awk '/^decode:/ {d = $2} /^prefill:/ {p = $2} /^roofline:/ {r = $2}
    END {print (d == "" ? "-" : d), (p == "" ? "-" : p), (r == "" ? "-" : r)}'
}
ours_pp() { # the prefill alone, with env
  local f=$1 n=$2
  shift 2
  env "$@" "$BIN/model" "$f" --threads "$n" --tg 0 --pp "$PP" --reps 1 --bw-mib 8 2>/dev/null |
    awk '/^prefill:/ {p = $2} END {print (p == "" ? "-" : p)}'
}
# theirs: llama-bench's JSON lines, avg_ts of the pp and tg rows.
theirs() { # file threads
  [ -n "$LLAMA" ] || { echo "- -"; return; }
  "$LLAMA" -m "$1" -t "$2" -p "$PP" -n "$TG" -r 1 -o jsonl 2>/dev/null |
    sed -n 's/.*"n_prompt": *\([0-9]*\), *"n_gen": *\([0-9]*\),.*"avg_ts": *\([0-9.e+]*\).*/\1 \2 \3/p' |
    awk -v pp="$PP" -v tg="$TG" '$1 == pp && $2 == 0 {p = $3} $1 == 0 && $2 == tg {d = $3}
      END {printf "%s %s\n", (d == "" ? "-" : sprintf("%.2f", d)), (p == "" ? "-" : sprintf("%.1f", p))}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'; }
share() { awk -v d="$1" -v r="$2" 'BEGIN { if (d == "-" || r == "-" || r + 0 == 0) print "-"; else printf "%.0f%%\n", 100 * d / r }'; }

echo "threads:$THREADS  types: $TYPES  tg$TG pp$PP  $(nproc) CPUs  $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
echo "AMX tiles in the default table: $([ $amx = 1 ] && echo yes || echo no)${LLAMA:+; llama.cpp: $LLAMA}"
echo
hdr="| type | threads | decode cllama | (roofline share) | llama.cpp | ratio | pp$PP cllama | llama.cpp | ratio |"
sep="|---|---:|---:|---:|---:|---:|---:|---:|---:|"
if [ $amx = 1 ]; then
  hdr="$hdr pp$PP without AMX | AMX gain |"
  sep="$sep---:|---:|"
fi
echo "$hdr"
echo "$sep"
for t in $TYPES; do
  f="$MODELS/tinyllama-$t.gguf"
  for n in $THREADS; do
    read -r od op roof < <(ours "$f" "$n")
    read -r ld lp < <(theirs "$f" "$n")
    row="| $t | $n | $od | $(share "$od" "$roof") | $ld | $(ratio "$od" "$ld") | $op | $lp | $(ratio "$op" "$lp") |"
    if [ $amx = 1 ]; then
      np=$(ours_pp "$f" "$n" CLLAMA_KERNELS=avx512-noamx)
      row="$row $np | $(ratio "$op" "$np") |"
    fi
    echo "$row"
  done
done
