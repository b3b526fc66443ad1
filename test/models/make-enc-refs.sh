#!/bin/sh
# make-enc-refs.sh — regenerates test/models/ref/enc/*.json: llama.cpp's
# outputs for the encoder test models that test/models/mkenc.c writes.
#
#   test/models/make-enc-refs.sh LLAMA_BIN_DIR [MKENC [CLLAMA]]
#
# LLAMA_BIN_DIR holds a built llama.cpp's llama-embedding and
# llama-tokenize (this script does not build llama.cpp). MKENC defaults to
# build/release/test/models/mkenc (`make build/release/test/models/mkenc`).
# For each model and prompt the reference holds llama.cpp's token ids (add
# special tokens, as embedding does) and its pooled output without
# normalisation (--embd-normalize -1) and with F32 attention (-fa off: flash
# attention computes with F16 keys and values): the embedding for mean/CLS pooling,
# the score for rank pooling ("query<TAB>document" pairs, which
# llama-embedding joins with the vocabulary's EOS and SEP text).
# <model>-Q8_0.json and <model>-Q4_K_M.json: the same for copies quantized
# by our quantizer (CLLAMA, default build/release/cllama: `cllama quantize`),
# which llama.cpp runs as they are.
set -eu
bin=${1:?usage: $0 LLAMA_BIN_DIR [MKENC]}
mkenc=${2:-build/release/test/models/mkenc}
cllama=${3:-build/release/cllama}
here=$(cd "$(dirname "$0")" && pwd)
out=$here/ref/enc
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
"$mkenc" "$tmp"
for m in bert-tiny nomic-tiny xlmr-tiny rerank-tiny; do
  for q in Q8_0 Q4_K_M; do
    "$cllama" quantize "$tmp/$m.gguf" "$tmp/$m-$q.gguf" $q > /dev/null
  done
done

prompts='hello world
The quick brown fox jumps over the lazy dog.
What is the capital of France? Paris!
  Machine learning, embeddings & search: 123 cats and 45 dogs.
unknownish wordz xyz
Ａ quick brown fox,  the end'
pairs='what is the capital of france	paris is the capital of france
what is the capital of france	the quick brown fox
what is the capital of france	dogs and cats
how does rain form	rain falls from the sky over the river'

for m in bert-tiny nomic-tiny xlmr-tiny rerank-tiny \
         bert-tiny-Q8_0 nomic-tiny-Q8_0 xlmr-tiny-Q8_0 rerank-tiny-Q8_0 \
         bert-tiny-Q4_K_M nomic-tiny-Q4_K_M xlmr-tiny-Q4_K_M rerank-tiny-Q4_K_M; do
  case $m in rerank-tiny*) p=$pairs ;; *) p=$prompts ;; esac
  printf '%s\n' "$p" > "$tmp/prompts.txt"
  # llama-embedding's logger may not flush the end of its output before it
  # exits: one more prompt whose (possibly cut) output is not used.
  { printf '%s\n' "$p"; echo "end of input"; } > "$tmp/prompts-run.txt"
  "$bin/llama-embedding" -m "$tmp/$m.gguf" -f "$tmp/prompts-run.txt" -t 1 --embd-normalize -1 \
    --embd-output-format json -c 512 -b 512 -ub 512 -fa off > "$tmp/$m.emb.json" 2>"$tmp/$m.log" ||
    { cat "$tmp/$m.log"; exit 1; }
  : > "$tmp/$m.ids"
  printf '%s\n' "$p" | while IFS= read -r line; do
    if [ "${m#rerank-tiny}" != "$m" ]; then
      # llama-embedding's pair format: query EOS SEP document (parsed as special text)
      line=$(printf '%s' "$line" | sed 's/\t/<\/s><\/s>/')
    fi
    "$bin/llama-tokenize" -m "$tmp/$m.gguf" -p "$line" --ids --log-disable 2>/dev/null | tail -n 1 >> "$tmp/$m.ids"
  done
  python3 - "$m" "$tmp" "$out" <<'PY'
import json, re, sys
m, tmp, out = sys.argv[1:]
raw = open(f"{tmp}/{m}.emb.json").read()
lines = [l for l in open(f"{tmp}/prompts.txt").read().split("\n") if l]
ids = [json.loads(l) for l in open(f"{tmp}/{m}.ids").read().split("\n") if l.strip()]
vecs = [[float(x) for x in a.split(",")]
        for a in re.findall(r'"embedding": \[([^\]]*)\]', raw)][:len(lines)]
assert len(vecs) == len(lines) == len(ids), (len(vecs), len(lines), len(ids))
ref = {"model": m, "generator": "test/models/make-enc-refs.sh (llama.cpp llama-embedding)",
       "inputs": lines, "ids": ids}
if m.startswith("rerank-tiny"):
    ref["scores"] = [v[0] for v in vecs]
else:
    ref["embeddings"] = vecs
json.dump(ref, open(f"{out}/{m}.json", "w"), indent=1)
print(f"{m}: {len(lines)} inputs")
PY
done
