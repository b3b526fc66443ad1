/* test/models/mkenc.c — writes the small random-weight encoder models the
 * encoder tests and test/models/make-enc-refs.sh use, deterministically
 * (same bytes on every run and machine: xorshift + Box-Muller in double,
 * stored as F32):
 *
 *   bert-tiny    `bert` (MiniLM shape, small): WordPiece vocabulary,
 *                token types, absolute positions, q/k/v with biases,
 *                GELU, mean pooling
 *   nomic-tiny   `nomic-bert`: rotary positions, fused QKV, SwiGLU, no
 *                biases, mean pooling
 *   xlmr-tiny    `bert` with a t5 (Unigram) vocabulary, the bge-m3 shape:
 *                CLS pooling
 *   rerank-tiny  xlmr-tiny plus a classification head (bge-reranker-v2-m3
 *                shape): rank pooling, one score
 *
 *   build/release/test/models/mkenc OUTDIR        writes OUTDIR/<name>.gguf
 *   build/release/test/models/mkenc OUTDIR bench  the real-size shapes of
 *                                                 bench/embed.c instead
 *
 * The vocabularies are made up but well formed: every lower-case letter,
 * digit and common punctuation mark as a word start and as a
 * continuation, plus the words of the test sentences (so they tokenize to
 * a mix of whole words and pieces). */
#include "cllama/gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static uint64_t rng;
static double urand(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return ((double)((rng * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
}
static float nrand(double sd) {
  double u = urand(), v = urand();
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v) * sd);
}

struct spec {
  const char *name, *arch;
  bool ugm;    /* t5 vocabulary, else WordPiece */
  bool nomic;  /* rotary, fused qkv, SwiGLU, no biases */
  bool rank;   /* classification head, pooling rank */
  int pooling; /* GGUF pooling_type */
  int64_t n_embd, n_layer, n_head, n_ff, n_ctx, n_types;
  int64_t n_vocab_pad; /* pad the vocabulary to this size (bench shapes) */
};

static const struct spec specs[] = {
    {"bert-tiny", "bert", false, false, false, 1, 256, 2, 4, 512, 128, 2, 0},
    {"nomic-tiny", "nomic-bert", false, true, false, 1, 256, 2, 4, 512, 256, 2, 0},
    {"xlmr-tiny", "bert", true, false, false, 2, 256, 2, 4, 512, 128, 1, 0},
    {"rerank-tiny", "bert", true, false, true, 4, 256, 2, 4, 512, 128, 1, 0},
};

/* Real shapes for bench/embed (`mkenc OUTDIR bench`): all-MiniLM-L6-v2 and
 * nomic-embed-text-v1.5, with BERT's 30522-token vocabulary size. */
static const struct spec bench_specs[] = {
    {"minilm-bench", "bert", false, false, false, 1, 384, 6, 12, 1536, 512, 2, 30522},
    {"nomic-bench", "nomic-bert", false, true, false, 1, 768, 12, 12, 3072, 2048, 2, 30522},
};

static const char *const words[] = {
    "the",   "quick",     "brown", "fox",     "jumps",  "over",     "lazy",     "dog",  "hello",
    "world", "embedding", "model", "search",  "query",  "document", "about",    "cats", "and",
    "dogs",  "is",        "a",     "of",      "to",     "in",       "what",     "how",  "why",
    "sky",   "blue",      "paris", "capital", "france", "machine",  "learning", "rain", "sun",
    "river", "city",      "music", "book",    "read",   "run",
};
static const char *const pieces[] = {"ing", "ed", "s", "er", "ly", "tion", "es", "re", "un", "th"};
static const char punct[] = ".,!?;:'\"()-";

/* ---- vocabulary */

struct vocab {
  char **tok;
  float *score;
  int32_t *type;
  int n, cap;
};

static void add(struct vocab *v, const char *s, float score, int32_t type) {
  for (int i = 0; strncmp(s, "[unused", 7) != 0 && i < v->n; i++)
    if (strcmp(v->tok[i], s) == 0)
      return; /* each text once (the padding names are distinct) */
  if (v->n == v->cap) {
    v->cap = v->cap ? v->cap * 2 : 256;
    v->tok = realloc(v->tok, (size_t)v->cap * sizeof(*v->tok));
    v->score = realloc(v->score, (size_t)v->cap * sizeof(*v->score));
    v->type = realloc(v->type, (size_t)v->cap * sizeof(*v->type));
  }
  v->tok[v->n] = strdup(s);
  v->score[v->n] = score;
  v->type[v->n] = type;
  v->n++;
}

#define SP "\xE2\x96\x81" /* U+2581 */

static void wpm_vocab(struct vocab *v) {
  const char *ctl[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  for (int i = 0; i < 5; i++)
    add(v, ctl[i], 0, 3);
  char b[64];
  for (int pass = 0; pass < 2; pass++) { /* word starts, then continuations */
    for (char c = 'a'; c <= 'z'; c++) {
      snprintf(b, sizeof(b), "%s%c", pass ? "" : SP, c);
      add(v, b, 0, 1);
    }
    for (char c = '0'; c <= '9'; c++) {
      snprintf(b, sizeof(b), "%s%c", pass ? "" : SP, c);
      add(v, b, 0, 1);
    }
  }
  for (const char *p = punct; *p; p++) {
    snprintf(b, sizeof(b), SP "%c", *p);
    add(v, b, 0, 1);
  }
  for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++) {
    snprintf(b, sizeof(b), SP "%s", words[i]);
    add(v, b, 0, 1);
  }
  for (size_t i = 0; i < sizeof(pieces) / sizeof(*pieces); i++)
    add(v, pieces[i], 0, 1);
}

static void ugm_vocab(struct vocab *v) {
  add(v, "<s>", 0, 3);
  add(v, "<pad>", 0, 3);
  add(v, "</s>", 0, 3);
  add(v, "<unk>", 0, 2);
  char b[64];
  add(v, SP, -2.0f, 1);
  for (char c = 'a'; c <= 'z'; c++) {
    snprintf(b, sizeof(b), "%c", c);
    add(v, b, -5.0f - (float)(c - 'a') * 0.05f, 1);
    snprintf(b, sizeof(b), SP "%c", c);
    add(v, b, -4.5f - (float)(c - 'a') * 0.05f, 1);
  }
  for (char c = '0'; c <= '9'; c++) {
    snprintf(b, sizeof(b), "%c", c);
    add(v, b, -6.0f, 1);
  }
  for (const char *p = punct; *p; p++) {
    snprintf(b, sizeof(b), "%c", *p);
    add(v, b, -5.5f, 1);
  }
  for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++) {
    snprintf(b, sizeof(b), SP "%s", words[i]);
    add(v, b, -7.0f - (float)(i % 7) * 0.3f, 1);
  }
  for (size_t i = 0; i < sizeof(pieces) / sizeof(*pieces); i++)
    add(v, pieces[i], -6.5f - (float)i * 0.1f, 1);
  add(v, "<mask>", 0, 3);
}

/* A small SentencePiece character map (the precompiled_charsmap format:
 * a 4-byte length, an XOR-compressed compact double array over bytes, then
 * NUL-terminated replacements) mapping U+FF21 (fullwidth A) to "a" and
 * U+00A0 (no-break space) to " ", the kind of rules NFKC maps hold. Entry
 * bits: BASE << 10, LEAF bit 8, LCHECK bits 0..7; value entries have bit 31
 * and the replacement's offset. Every BASE is 0x100, so the walk is
 * root 0 -> 0x100 ^ byte -> ... (indices worked out by hand below). */
static uint8_t *charsmap(uint64_t *n) {
  enum { N = 500 };
  uint32_t e[N] = {0};
  const uint32_t B = 0x100u << 10, LEAF = 1u << 8, VAL = 1u << 31;
  e[0] = B;                   /* root */
  e[0x100 ^ 0xEF] = B | 0xEF; /* EF BC A1 */
  e[0xEF ^ 0xBC] = B | 0xBC;  /* 0x1EF ^ 0x100 = 0xEF, ^ 0xBC */
  e[0x153 ^ 0xA1] = B | LEAF | 0xA1;
  e[(0x153 ^ 0xA1) ^ 0x100] = VAL | 0; /* "a" */
  e[0x100 ^ 0xC2] = B | 0xC2;          /* C2 A0 */
  e[0xC2 ^ 0xA0] = B | LEAF | 0xA0;
  e[(0xC2 ^ 0xA0) ^ 0x100] = VAL | 2; /* " " */
  static const char repl[] = "a\0 ";  /* "a\0 \0" with the terminator */
  *n = 4 + sizeof(e) + sizeof(repl);
  uint8_t *blob = malloc(*n);
  uint32_t len = sizeof(e);
  memcpy(blob, &len, 4);
  memcpy(blob + 4, e, sizeof(e));
  memcpy(blob + 4 + sizeof(e), repl, sizeof(repl));
  return blob;
}

/* ---- tensors */

struct out {
  cll_gguf_writer *w;
  float **bufs;
  int n_bufs;
};

static float *tensor(struct out *o, const char *name, int64_t n_in, int64_t n_out, double sd,
                     double mean) {
  int64_t n = n_in * (n_out > 0 ? n_out : 1);
  float *d = malloc((size_t)n * sizeof(float));
  for (int64_t i = 0; i < n; i++)
    d[i] = (float)mean + nrand(sd);
  uint64_t ne[2] = {(uint64_t)n_in, (uint64_t)(n_out > 0 ? n_out : 1)};
  cll_gguf_writer_add_tensor(o->w, name, 0 /* F32 */, n_out > 0 ? 2 : 1, ne, d,
                             (uint64_t)n * sizeof(float));
  o->bufs = realloc(o->bufs, (size_t)(o->n_bufs + 1) * sizeof(*o->bufs));
  o->bufs[o->n_bufs++] = d;
  return d;
}

static int write_model(const struct spec *s, const char *dir) {
  char path[1024], key[128];
  snprintf(path, sizeof(path), "%s/%s.gguf", dir, s->name);
  rng = 0x9E3779B97F4A7C15ull;
  for (const char *p = s->name; *p; p++)
    rng = (rng ^ (uint64_t)(unsigned char)*p) * 0x100000001B3ull;
  struct out o = {0};
  cll_err err = {0};
  if (cll_gguf_writer_new(path, &o.w, &err) != 0) {
    fprintf(stderr, "mkenc: %s: %s\n", path, err.msg);
    return 1;
  }
  struct vocab v = {0};
  if (s->ugm)
    ugm_vocab(&v);
  else
    wpm_vocab(&v);
  for (int64_t i = v.n; i < s->n_vocab_pad; i++) {
    char b[32];
    snprintf(b, sizeof(b), "[unused%lld]", (long long)i);
    add(&v, b, 0, 1);
  }
  const char *A = s->arch;
  cll_gguf_writer_set_str(o.w, "general.architecture", A);
  cll_gguf_writer_set_str(o.w, "general.name", s->name);
  cll_gguf_writer_set_u32(o.w, "general.file_type", 0);
#define K(suffix) (snprintf(key, sizeof(key), "%s.%s", A, suffix), key)
  cll_gguf_writer_set_u32(o.w, K("context_length"), (uint32_t)s->n_ctx);
  cll_gguf_writer_set_u32(o.w, K("embedding_length"), (uint32_t)s->n_embd);
  cll_gguf_writer_set_u32(o.w, K("block_count"), (uint32_t)s->n_layer);
  cll_gguf_writer_set_u32(o.w, K("feed_forward_length"), (uint32_t)s->n_ff);
  cll_gguf_writer_set_u32(o.w, K("attention.head_count"), (uint32_t)s->n_head);
  cll_gguf_writer_set_f32(o.w, K("attention.layer_norm_epsilon"), 1e-12f);
  cll_gguf_writer_set_bool(o.w, K("attention.causal"), false);
  cll_gguf_writer_set_u32(o.w, K("pooling_type"), (uint32_t)s->pooling);
  if (s->nomic)
    cll_gguf_writer_set_f32(o.w, K("rope.freq_base"), 1000.0f);
  if (s->rank) {
    const char *labels[] = {"LABEL_0"};
    cll_gguf_writer_set_arr_str(o.w, K("classifier.output_labels"), labels, 1);
  }
  cll_gguf_writer_set_str(o.w, "tokenizer.ggml.model", s->ugm ? "t5" : "bert");
  cll_gguf_writer_set_str(o.w, "tokenizer.ggml.pre", "default");
  cll_gguf_writer_set_arr_str(o.w, "tokenizer.ggml.tokens", (const char *const *)v.tok,
                              (uint64_t)v.n);
  cll_gguf_writer_set_arr(o.w, "tokenizer.ggml.token_type", CLL_GGUF_I32, v.type, (uint64_t)v.n);
  cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.token_type_count", (uint32_t)s->n_types);
  if (s->ugm) {
    cll_gguf_writer_set_arr(o.w, "tokenizer.ggml.scores", CLL_GGUF_F32, v.score, (uint64_t)v.n);
    uint64_t n_map;
    uint8_t *map = charsmap(&n_map);
    cll_gguf_writer_set_arr(o.w, "tokenizer.ggml.precompiled_charsmap", CLL_GGUF_U8, map, n_map);
    free(map);
    cll_gguf_writer_set_bool(o.w, "tokenizer.ggml.add_space_prefix", true);
    cll_gguf_writer_set_bool(o.w, "tokenizer.ggml.remove_extra_whitespaces", true);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.bos_token_id", 0);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.padding_token_id", 1);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.eos_token_id", 2);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.unknown_token_id", 3);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.seperator_token_id", 2);
    cll_gguf_writer_set_bool(o.w, "tokenizer.ggml.add_bos_token", true);
    cll_gguf_writer_set_bool(o.w, "tokenizer.ggml.add_eos_token", true);
    cll_gguf_writer_set_bool(o.w, "tokenizer.ggml.add_sep_token", s->rank);
  } else {
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.padding_token_id", 0);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.unknown_token_id", 1);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.bos_token_id", 2);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.seperator_token_id", 3);
    cll_gguf_writer_set_u32(o.w, "tokenizer.ggml.mask_token_id", 4);
  }
#undef K
  const int64_t E = s->n_embd, F = s->n_ff;
  tensor(&o, "token_embd.weight", E, v.n, 0.5, 0);
  tensor(&o, "token_types.weight", E, s->n_types, 0.2, 0);
  if (!s->nomic)
    tensor(&o, "position_embd.weight", E, s->n_ctx, 0.2, 0);
  tensor(&o, "token_embd_norm.weight", E, 0, 0.1, 1);
  tensor(&o, "token_embd_norm.bias", E, 0, 0.05, 0);
  const double wsd = 1.0 / sqrt((double)E);
  for (int64_t il = 0; il < s->n_layer; il++) {
    char n[96];
#define T(suffix, n_in, n_out, sd, mean)                                                           \
  (snprintf(n, sizeof(n), "blk.%lld.%s", (long long)il, suffix),                                   \
   tensor(&o, n, n_in, n_out, sd, mean))
    if (s->nomic) {
      T("attn_qkv.weight", E, 3 * E, wsd, 0);
    } else {
      T("attn_q.weight", E, E, wsd, 0);
      T("attn_q.bias", E, 0, 0.05, 0);
      T("attn_k.weight", E, E, wsd, 0);
      T("attn_k.bias", E, 0, 0.05, 0);
      T("attn_v.weight", E, E, wsd, 0);
      T("attn_v.bias", E, 0, 0.05, 0);
    }
    T("attn_output.weight", E, E, wsd, 0);
    if (!s->nomic)
      T("attn_output.bias", E, 0, 0.05, 0);
    T("attn_output_norm.weight", E, 0, 0.1, 1);
    T("attn_output_norm.bias", E, 0, 0.05, 0);
    T("ffn_up.weight", E, F, wsd, 0);
    if (s->nomic)
      T("ffn_gate.weight", E, F, wsd, 0);
    else
      T("ffn_up.bias", F, 0, 0.05, 0);
    T("ffn_down.weight", F, E, 1.0 / sqrt((double)F), 0);
    if (!s->nomic)
      T("ffn_down.bias", E, 0, 0.05, 0);
    T("layer_output_norm.weight", E, 0, 0.1, 1);
    T("layer_output_norm.bias", E, 0, 0.05, 0);
#undef T
  }
  if (s->rank) {
    tensor(&o, "cls.weight", E, E, wsd, 0);
    tensor(&o, "cls.bias", E, 0, 0.05, 0);
    tensor(&o, "cls.output.weight", E, 1, wsd * 4, 0);
    tensor(&o, "cls.output.bias", 1, 0, 0.05, 0);
  }
  int rc = cll_gguf_writer_finish(o.w, &err);
  if (rc != 0)
    fprintf(stderr, "mkenc: %s: %s\n", path, err.msg);
  for (int i = 0; i < o.n_bufs; i++)
    free(o.bufs[i]);
  free(o.bufs);
  for (int i = 0; i < v.n; i++)
    free(v.tok[i]);
  free(v.tok);
  free(v.score);
  free(v.type);
  return rc != 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "bench") != 0)) {
    fprintf(stderr, "usage: %s OUTDIR [bench]\n", argv[0]);
    return 2;
  }
  mkdir(argv[1], 0755);
  int bad = 0;
  if (argc == 3) {
    for (size_t i = 0; i < sizeof(bench_specs) / sizeof(*bench_specs); i++)
      bad |= write_model(&bench_specs[i], argv[1]);
    return bad;
  }
  for (size_t i = 0; i < sizeof(specs) / sizeof(*specs); i++)
    bad |= write_model(&specs[i], argv[1]);
  return bad;
}
