#!/usr/bin/env bash
# bench/compare.sh — cllama against llama.cpp and ik_llama.cpp on the same
# GGUF files, decode (tg) and prefill (pp) tokens per second, interleaved
# (ours, then each of theirs, type by type, round by round) so that a busy
# machine slows everyone alike, and printed as a table of ratios.
#
#   bench/compare.sh [--llama PATH] [--ik PATH] [--models DIR] [--threads N]
#                    [--rounds N] [--tg N] [--pp N] [--types "Q4_0 Q8_0 ..."]
#
#   --llama / $LLAMA_BENCH     llama.cpp's llama-bench (built outside the repo)
#   --ik    / $IK_LLAMA_BENCH  ik_llama.cpp's llama-bench (run with -rtr 1 -fa 1,
#                              its fastest CPU settings: repacked weights)
#   --models / $CLLAMA_BENCH_MODELS  where the files are, tinyllama-TYPE.gguf;
#                              missing ones are made with bench/mkmodel
#                              tinyllama-1.1b TYPE (random weights, real shape)
#   --threads (2), --rounds (2), --tg (32), --pp (512); --types (default
#   Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0 F16 BF16).
#   $CLLAMA_BUILD (build/release): where bench/model and bench/mkmodel are.
#
# Either baseline may be left out (its columns show "-"). Ratios are ours
# divided by the best baseline of the same round. Nothing here is a test:
# the numbers depend on the machine and on what else runs on it.
set -euo pipefail

cd "$(dirname "$0")/.."
LLAMA=${LLAMA_BENCH:-}
IK=${IK_LLAMA_BENCH:-}
MODELS=${CLLAMA_BENCH_MODELS:-/tmp/cllama-bench-models}
BUILD=${CLLAMA_BUILD:-build/release}
THREADS=2 ROUNDS=2 TG=32 PP=512
TYPES="Q4_0 Q4_K_M Q5_K_M Q6_K Q8_0 F16 BF16"
while [ $# -gt 0 ]; do
  case "$1" in
  --llama) LLAMA=$2; shift 2 ;;
  --ik) IK=$2; shift 2 ;;
  --models) MODELS=$2; shift 2 ;;
  --threads) THREADS=$2; shift 2 ;;
  --rounds) ROUNDS=$2; shift 2 ;;
  --tg) TG=$2; shift 2 ;;
  --pp) PP=$2; shift 2 ;;
  --types) TYPES=$2; shift 2 ;;
  -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
  *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for b in "$LLAMA" "$IK"; do
  if [ -n "$b" ] && [ ! -x "$b" ]; then echo "compare.sh: $b is not an executable" >&2; exit 2; fi
done
for p in "$BUILD/bench/model" "$BUILD/bench/mkmodel"; do
  [ -x "$p" ] || { echo "compare.sh: $p missing (make build-all)" >&2; exit 2; }
done
mkdir -p "$MODELS"

file_of() { echo "$MODELS/tinyllama-$1.gguf"; }
for t in $TYPES; do
  f=$(file_of "$t")
  if [ ! -f "$f" ]; then
    echo "making $f ..." >&2
    "$BUILD/bench/mkmodel" tinyllama-1.1b "$t" "$f.tmp" >&2 && mv "$f.tmp" "$f"
  fi
done

# ours: "decode: X tok/s", "prefill: Y tok/s" and "roofline: Z tok/s" of
# bench/model: Z is the decode speed at which every weight byte read per
# token streams at the bandwidth bench/model measured just before (256
# MiB, 8x the largest L3 seen here), so any decode's share of it says how
# much room the memory bus leaves.
run_ours() {
  local out
  out=$("$BUILD/bench/model" "$1" --threads "$THREADS" --tg "$TG" --pp "$PP" --reps 1 \
    --bw-mib 256 2>&1) || { echo "- - -"; return; }
  echo "$(echo "$out" | awk '/^decode:/ {print $2}') $(echo "$out" | awk '/^prefill:/ {print $2}') $(echo "$out" | awk '/^roofline:/ {print $2}')" |
    awk '{print ($1 == "" ? "-" : $1), ($2 == "" ? "-" : $2), ($3 == "" ? "-" : $3)}'
}

share() { # decode tok/s, roofline tok/s: "X (N%)"
  awk -v d="$1" -v r="$2" 'BEGIN { if (d == "-" || r == "-" || r + 0 == 0) print d; else printf "%s (%.0f%%)\n", d, 100 * d / r }'
}

# theirs: llama-bench's CSV, avg_ts of the tg and pp rows.
run_theirs() {
  local bin=$1 file=$2
  shift 2
  [ -n "$bin" ] || { echo "- -"; return; }
  # A real CSV reader: ik_llama.cpp's rows hold quoted commas ("-1,0").
  "$bin" -m "$file" -t "$THREADS" -p "$PP" -n "$TG" -r 1 -o csv "$@" 2>/dev/null |
    python3 -c '
import csv, sys
pp, tg = int(sys.argv[1]), int(sys.argv[2])
d = p = "-"
for row in csv.DictReader(sys.stdin):
    try:
        n_p, n_g, ts = int(row["n_prompt"]), int(row["n_gen"]), float(row["avg_ts"])
    except (KeyError, ValueError):
        continue
    if n_p == pp and n_g == 0:
        p = "%.1f" % ts
    if n_p == 0 and n_g == tg:
        d = "%.2f" % ts
print(d, p)' "$PP" "$TG" || echo "- -"
}

ratio() { # ours, then the baselines: ours / best baseline, or "-"
  awk -v o="$1" 'BEGIN { b = 0; for (i = 2; i < ARGC; i++) if (ARGV[i] != "-" && ARGV[i] + 0 > b) b = ARGV[i] + 0
    if (o == "-" || b == 0) print "-"; else printf "%.2f\n", o / b; exit }' "$@"
}

echo "cllama vs llama.cpp${LLAMA:+ ($LLAMA)} vs ik_llama.cpp${IK:+ ($IK, -rtr 1 -fa 1)}"
echo "threads $THREADS, tg$TG, pp$PP, $ROUNDS rounds interleaved; $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
rows=()
for r in $(seq 1 "$ROUNDS"); do
  for t in $TYPES; do
    f=$(file_of "$t")
    read -r od op roof < <(run_ours "$f")
    read -r ld lp < <(run_theirs "$LLAMA" "$f")
    read -r kd kp < <(run_theirs "$IK" "$f" -rtr 1 -fa 1)
    rows+=("$r|$t|$roof|$(share "$od" "$roof")|$(share "$ld" "$roof")|$(share "$kd" "$roof")|$(ratio "$od" "$ld" "$kd")|$op|$lp|$kp|$(ratio "$op" "$lp" "$kp")")
    echo "round $r $t: decode $od / $ld / $kd (roofline $roof), pp $op / $lp / $kp" >&2
  done
done
echo
echo "| round | type | roofline | decode cllama | llama.cpp | ik_llama.cpp | ratio | pp$PP cllama | llama.cpp | ik_llama.cpp | ratio |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for row in "${rows[@]}"; do
  echo "| ${row//|/ | } |"
done
echo
echo "(tokens/s; ratio = cllama / the best of the two in the same round; \"-\" = not run;"
echo " roofline = bandwidth / weight bytes per token, measured by bench/model just before its"
echo " run, and each decode's share of it: no decode can pass ~100%, so where the best"
echo " baseline is near it a ratio >= 1.1 is out of reach on this machine)"
