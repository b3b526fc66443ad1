#!/bin/sh
# make-refs.sh — regenerates test/models/ref/ (llama.cpp's outputs for the
# tiny models of test/models/mkarch.h) with a reference program built
# elsewhere against llama.cpp's libllama (never part of this repo):
#
#   test/models/make-refs.sh ORACLE [MKARCH]
#
# ORACLE MODEL.gguf OUTPREFIX N_CTX N_PREDICT TOK,TOK,... must decode the
# tokens in one batch (F32 weights as stored, F32 K and V cache, flash
# attention off), write the last position's logits to OUTPREFIX.logits.f32
# (n_vocab little-endian floats) and OUTPREFIX.json with n_vocab, n_ctx,
# prompt_tokens and greedy_tokens (argmax, each fed back alone, N_PREDICT
# steps). MKARCH defaults to build/release/test/models/mkarch (make).
set -eu
oracle=$1
mkarch=${2:-build/release/test/models/mkarch}
here=$(dirname "$0")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for arch in qwen3 gemma2 gemma3 phi3 qwen3moe; do
  "$mkarch" "$arch" "$tmp/$arch.gguf"
  mkdir -p "$here/ref/$arch"
  for p in 0 1 2; do
    "$oracle" "$tmp/$arch.gguf" "$here/ref/$arch/p$p" 512 32 "$("$mkarch" --prompt "$arch" $p)"
  done
  # our own quantizations of the same file, run by llama.cpp: logits only
  for q in Q8_0 Q4_K_M; do
    "$mkarch" --quantize $q "$tmp/$arch.gguf" "$tmp/$arch.$q.gguf"
    for p in 0 1 2; do
      "$oracle" "$tmp/$arch.$q.gguf" "$here/ref/$arch/p$p.$q" 512 0 \
        "$("$mkarch" --prompt "$arch" $p)"
    done
  done
done
# phi3 with a context within the original one (256; llama.cpp rounds
# contexts up to multiples of 256): the short LongRoPE factors
"$oracle" "$tmp/phi3.gguf" "$here/ref/phi3/p1.ctx256" 256 32 "$("$mkarch" --prompt phi3 1)"
