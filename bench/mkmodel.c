/* bench/mkmodel.c — writes a random-weight GGUF model of a real shape, for
 * benchmarks and load tests: the tensors, metadata and a made-up but
 * well-formed vocabulary that a real model of that shape has, with
 * N(0, 0.02) weights and unit norms, in any type the kernels can quantize.
 *
 *   build/release/bench/mkmodel tinyllama-1.1b Q4_0 /tmp/tinyllama-q4_0.gguf
 *   build/release/bench/mkmodel --list
 *
 * Types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K and the
 * recipes Q4_K_M / Q5_K_M (attn_v and ffn_down of some layers and the
 * output in Q6_K, as llama.cpp's recipes do). Like llama.cpp's quantized
 * files, output.weight is Q6_K for the 4- and 5-bit types, norms stay F32.
 * Rows that a K-quant cannot hold (n_in not a multiple of 256) fall back to
 * Q5_0 / Q8_0.
 *
 * Every layer's matrix of a given shape and type holds the same random
 * numbers (generated and quantized once): decode speed does not depend on
 * the values, and it keeps making a 1B model to seconds. */
#include "cllama/gguf.h"
#include "cllama/utf8.h"
#include "cllama/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct shape {
  const char *name, *arch, *vocab; /* vocab: "llama" (SPM) or "gpt2" (BPE) */
  int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_vocab, n_ctx;
  float rope_base, eps;
  int tied, qkv_bias;
  int bos, eos;
  /* qwen3 / qwen3moe: per-head q/k norms; experts (0: a dense FFN) */
  int qk_norm;
  int64_t n_expert, n_expert_used, n_ff_exp;
};

static const struct shape shapes[] = {
    {"tinyllama-1.1b", "llama", "llama", 2048, 22, 32, 4, 5632, 32000, 2048,
     10000.0f,         1e-5f,   0,       0,    1,  2,  0, 0,    0,     0},
    {"llama-3.2-1b", "llama", "gpt2", 2048, 16,     32,     8, 8192, 128256, 8192,
     500000.0f,      1e-5f,   1,      0,    128000, 128009, 0, 0,    0,      0},
    {"qwen2.5-0.5b", "qwen2", "gpt2", 896, 24,     14,     2, 4864, 151936, 32768,
     1000000.0f,     1e-6f,   1,      1,   151643, 151645, 0, 0,    0,      0},
    {"tiny",   "llama", "llama", 256, 4, 8, 4, 768, 32000, 2048,
     10000.0f, 1e-5f,   0,       0,   1, 2, 0, 0,   0,     0},
    /* A scaled-down Qwen3-MoE (8 of 128 experts per token) and the dense
     * Qwen3 with the same active size (n_ff = 8 x 384): bench/moe. */
    {"qwen3moe-bench", "qwen3moe", "gpt2", 1024, 8,      16,     4, 3072, 32000, 4096,
     1000000.0f,       1e-6f,      1,      0,    151643, 151645, 1, 128,  8,     384},
    {"qwen3-bench-dense", "qwen3", "gpt2", 1024, 8,      16,     4, 3072, 32000, 4096,
     1000000.0f,          1e-6f,   1,      0,    151643, 151645, 1, 0,    0,     0},
};

/* ---- randomness: xorshift64* and Box-Muller */
static uint64_t rng_state = 0x853c49e6748fea9bull;
static double urand(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return ((double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
}
static float nrand(float sd) {
  double u = urand(), v = urand();
  return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v)) * sd;
}

/* ---- generated tensors, shared between layers with the same shape/type */
struct blob {
  int64_t n_in, n_out;
  uint32_t type;
  float sd;
  void *data;
  size_t bytes;
};
static struct blob blobs[64];
static int n_blobs;

static const struct blob *make_blob(int64_t n_in, int64_t n_out, uint32_t type, float sd) {
  for (int i = 0; i < n_blobs; i++)
    if (blobs[i].n_in == n_in && blobs[i].n_out == n_out && blobs[i].type == type &&
        blobs[i].sd == sd)
      return &blobs[i];
  const cll_kernels *K = cll_kernels_get();
  size_t row = cll_row_bytes(type, n_in);
  struct blob *b = &blobs[n_blobs++];
  b->n_in = n_in;
  b->n_out = n_out;
  b->type = type;
  b->sd = sd;
  b->bytes = row * (size_t)n_out;
  b->data = malloc(b->bytes);
  float *x = malloc((size_t)n_in * sizeof(float));
  if (b->data == NULL || x == NULL || row == 0 || K->quantize_row[type] == NULL) {
    fprintf(stderr, "mkmodel: cannot make a %lld x %lld %s tensor\n", (long long)n_out,
            (long long)n_in, cll_type_info(type) ? cll_type_info(type)->name : "?");
    exit(1);
  }
  for (int64_t r = 0; r < n_out; r++) {
    for (int64_t i = 0; i < n_in; i++)
      x[i] = sd > 0 ? nrand(sd) : 1.0f;
    K->quantize_row[type](x, (char *)b->data + (size_t)r * row, n_in);
  }
  free(x);
  return b;
}

static int add(cll_gguf_writer *w, const char *name, int64_t n_in, int64_t n_out, uint32_t type,
               float sd) {
  const struct blob *b = make_blob(n_in, n_out, type, sd);
  uint64_t ne[2] = {(uint64_t)n_in, (uint64_t)n_out};
  return cll_gguf_writer_add_tensor(w, name, type, n_out > 1 ? 2 : 1, ne, b->data, b->bytes);
}

/* A 3-D tensor [n_in, n_out, n_exp]: one blob of n_out * n_exp rows. */
static int add3(cll_gguf_writer *w, const char *name, int64_t n_in, int64_t n_out, int64_t n_exp,
                uint32_t type, float sd) {
  const struct blob *b = make_blob(n_in, n_out * n_exp, type, sd);
  uint64_t ne[3] = {(uint64_t)n_in, (uint64_t)n_out, (uint64_t)n_exp};
  return cll_gguf_writer_add_tensor(w, name, type, 3, ne, b->data, b->bytes);
}

/* ---- types and recipes */
struct recipe {
  const char *name;
  uint32_t base;      /* most matrices */
  uint32_t output;    /* output.weight */
  uint32_t more;      /* attn_v / ffn_down of the "more bits" layers */
  uint32_t file_type; /* general.file_type (llama.cpp's LLAMA_FTYPE numbering) */
};

static const struct recipe recipes[] = {
    {"F32", CLL_TYPE_F32, CLL_TYPE_F32, CLL_TYPE_F32, 0},
    {"F16", CLL_TYPE_F16, CLL_TYPE_F16, CLL_TYPE_F16, 1},
    {"BF16", CLL_TYPE_BF16, CLL_TYPE_BF16, CLL_TYPE_BF16, 32},
    {"Q4_0", CLL_TYPE_Q4_0, CLL_TYPE_Q6_K, CLL_TYPE_Q4_0, 2},
    {"Q4_1", CLL_TYPE_Q4_1, CLL_TYPE_Q6_K, CLL_TYPE_Q4_1, 3},
    {"Q8_0", CLL_TYPE_Q8_0, CLL_TYPE_Q8_0, CLL_TYPE_Q8_0, 7},
    {"Q5_0", CLL_TYPE_Q5_0, CLL_TYPE_Q6_K, CLL_TYPE_Q5_0, 8},
    {"Q5_1", CLL_TYPE_Q5_1, CLL_TYPE_Q6_K, CLL_TYPE_Q5_1, 9},
    {"Q4_K", CLL_TYPE_Q4_K, CLL_TYPE_Q6_K, CLL_TYPE_Q4_K, 14},
    {"Q5_K", CLL_TYPE_Q5_K, CLL_TYPE_Q6_K, CLL_TYPE_Q5_K, 16},
    {"Q6_K", CLL_TYPE_Q6_K, CLL_TYPE_Q6_K, CLL_TYPE_Q6_K, 18},
    {"Q4_K_M", CLL_TYPE_Q4_K, CLL_TYPE_Q6_K, CLL_TYPE_Q6_K, 15},
    {"Q5_K_M", CLL_TYPE_Q5_K, CLL_TYPE_Q6_K, CLL_TYPE_Q6_K, 17},
};

/* llama.cpp's rule for which layers get more bits in the _M recipes. */
static int use_more_bits(int64_t il, int64_t n) {
  return il < n / 8 || il >= 7 * n / 8 || (il - n / 8) % 3 == 2;
}

/* K-quants need rows of 256; others fall back like llama.cpp does. */
static uint32_t fit(uint32_t type, int64_t n_in) {
  const struct cll_type_info *ti = cll_type_info(type);
  if (n_in % ti->block_elems == 0)
    return type;
  switch (type) {
  case CLL_TYPE_Q4_K:
  case CLL_TYPE_Q5_K:
    return n_in % 32 == 0 ? CLL_TYPE_Q5_0 : CLL_TYPE_F16;
  default:
    return n_in % 32 == 0 ? CLL_TYPE_Q8_0 : CLL_TYPE_F16;
  }
}

/* ---- vocabulary */

/* GPT-2's byte-to-character map, as UTF-8. */
static void byte_char(int b, char *out) {
  int cp;
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) {
    cp = b;
  } else {
    int k = 0;
    for (int i = 0; i < b; i++)
      if (!((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || (i >= 174 && i <= 255)))
        k++;
    cp = 256 + k;
  }
  out[cll_utf8_encode((uint32_t)cp, out)] = 0;
}

static void word(int64_t i, char *out) {
  /* A pronounceable made-up word, unique per i. */
  static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "shi", "po",
                              "ve", "da", "gi", "fo", "ze", "bu", "ha",  "yo"};
  out[0] = 0;
  do {
    strcat(out, syl[i % 16]);
    i /= 16;
  } while (i > 0);
}

static int write_vocab(cll_gguf_writer *w, const struct shape *s) {
  int64_t V = s->n_vocab;
  char **tok = calloc((size_t)V, sizeof(char *));
  float *scores = malloc((size_t)V * sizeof(float));
  int32_t *types = malloc((size_t)V * sizeof(int32_t));
  char buf[64];
  int spm = strcmp(s->vocab, "llama") == 0;
  int64_t n_merges = 0;
  char **merges = spm ? NULL : calloc(4096, sizeof(char *));
  for (int64_t i = 0; i < V; i++) {
    types[i] = 1;
    scores[i] = -(float)i;
    if (spm) {
      if (i == 0)
        snprintf(buf, sizeof(buf), "<unk>"), types[i] = 2;
      else if (i == 1)
        snprintf(buf, sizeof(buf), "<s>"), types[i] = 3;
      else if (i == 2)
        snprintf(buf, sizeof(buf), "</s>"), types[i] = 3;
      else if (i < 3 + 256)
        snprintf(buf, sizeof(buf), "<0x%02X>", (int)(i - 3)), types[i] = 6;
      else {
        char wd[48];
        word(i - 259, wd);
        snprintf(buf, sizeof(buf), "%s%s", (i & 1) ? "\xe2\x96\x81" : "", wd);
      }
    } else {
      if (i < 256) {
        byte_char((int)i, buf);
      } else if (i >= V - 300) {
        snprintf(buf, sizeof(buf), "<|reserved_%lld|>", (long long)(i - (V - 300)));
        types[i] = 3;
      } else if (i < 256 + 26 * 26 && n_merges < 4096) {
        /* two-letter tokens, each reachable by one merge */
        char a = (char)('a' + (i - 256) / 26), b = (char)('a' + (i - 256) % 26);
        snprintf(buf, sizeof(buf), "%c%c", a, b);
        char m[8] = {a, ' ', b, 0};
        merges[n_merges++] = strdup(m);
      } else {
        char wd[48];
        word(i, wd);
        snprintf(buf, sizeof(buf), "\xc4\xa0%s", wd);
      }
    }
    tok[i] = strdup(buf);
  }
  int rc = cll_gguf_writer_set_str(w, "tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (!spm)
    cll_gguf_writer_set_str(w, "tokenizer.ggml.pre",
                            strcmp(s->arch, "qwen2") == 0 ? "qwen2" : "llama-bpe");
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, (uint64_t)V);
  if (spm)
    cll_gguf_writer_set_arr(w, "tokenizer.ggml.scores", CLL_GGUF_F32, scores, (uint64_t)V);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", CLL_GGUF_I32, types, (uint64_t)V);
  if (!spm)
    cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)merges,
                                (uint64_t)n_merges);
  cll_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)s->bos);
  cll_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)s->eos);
  if (spm)
    cll_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
  rc = cll_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", spm != 0);
  for (int64_t i = 0; i < V; i++)
    free(tok[i]);
  for (int64_t i = 0; i < n_merges; i++)
    free(merges[i]);
  free(merges);
  free(tok);
  free(scores);
  free(types);
  return rc;
}

/* --vocab-from: keeps only the tokenizer.* keys of the source file. */
static bool not_tokenizer_key(const char *key, void *ctx) {
  return strncmp(key, "tokenizer.", 10) != 0;
}

/* Copies the vocabulary of a real model (e.g. the LLaMA SentencePiece vocab
 * of ../shared/models/tiny-llama-rand-*.gguf) so that text prompts tokenize
 * as they would for the real model. Its size must equal the shape's n_vocab. */
static int copy_vocab(cll_gguf_writer *w, const char *path, int64_t n_vocab) {
  cll_gguf *src;
  cll_err err = {0};
  if (cll_gguf_open(path, &src, &err) != 0) {
    fprintf(stderr, "mkmodel: --vocab-from %s: %s\n", path, err.msg);
    return -1;
  }
  enum cll_gguf_vtype et;
  uint64_t n = 0;
  int rc = cll_gguf_get_arr(src, "tokenizer.ggml.tokens", &et, &n);
  if (rc != 0 || (int64_t)n != n_vocab) {
    fprintf(stderr, "mkmodel: --vocab-from %s: %llu tokens, the shape needs %lld\n", path,
            (unsigned long long)n, (long long)n_vocab);
    cll_gguf_close(src);
    return -1;
  }
  rc = cll_gguf_writer_copy_kv(w, src, not_tokenizer_key, NULL);
  cll_gguf_close(src);
  return rc;
}

int main(int argc, char **argv) {
  const char *vocab_from = NULL;
  for (int i = 1; i + 1 < argc; i++)
    if (strcmp(argv[i], "--vocab-from") == 0) {
      vocab_from = argv[i + 1];
      memmove(&argv[i], &argv[i + 2], (size_t)(argc - i - 2) * sizeof(char *));
      argc -= 2;
      break;
    }
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (size_t i = 0; i < CLL_ARRAY_LEN(shapes); i++)
      printf("%s\n", shapes[i].name);
    return 0;
  }
  if (argc < 4) {
    fprintf(stderr, "usage: mkmodel SHAPE TYPE OUT.gguf [SEED] [--vocab-from VOCAB.gguf]\n"
                    "       (mkmodel --list for shapes)\n"
                    "types: F32 F16 BF16 Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K Q4_K_M "
                    "Q5_K_M\n");
    return 2;
  }
  const struct shape *s = NULL;
  for (size_t i = 0; i < CLL_ARRAY_LEN(shapes); i++)
    if (strcmp(shapes[i].name, argv[1]) == 0)
      s = &shapes[i];
  const struct recipe *r = NULL;
  for (size_t i = 0; i < CLL_ARRAY_LEN(recipes); i++)
    if (strcmp(recipes[i].name, argv[2]) == 0)
      r = &recipes[i];
  if (s == NULL || r == NULL) {
    fprintf(stderr, "mkmodel: unknown shape \"%s\" or type \"%s\"\n", argv[1], argv[2]);
    return 2;
  }
  if (argc > 4)
    rng_state ^= strtoull(argv[4], NULL, 10) * 0x9E3779B97F4A7C15ull;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cll_gguf_writer *w;
  cll_err err = {0};
  if (cll_gguf_writer_new(argv[3], &w, &err) != 0) {
    fprintf(stderr, "mkmodel: %s\n", err.msg);
    return 1;
  }
  char key[128], name[96];
#define K(suffix) (snprintf(key, sizeof(key), "%s.%s", s->arch, suffix), key)
  cll_gguf_writer_set_str(w, "general.architecture", s->arch);
  snprintf(name, sizeof(name), "random %s %s", s->name, r->name);
  cll_gguf_writer_set_str(w, "general.name", name);
  cll_gguf_writer_set_u32(w, "general.file_type", r->file_type);
  cll_gguf_writer_set_u32(w, "general.quantization_version", 2);
  cll_gguf_writer_set_u32(w, K("context_length"), (uint32_t)s->n_ctx);
  cll_gguf_writer_set_u32(w, K("embedding_length"), (uint32_t)s->n_embd);
  cll_gguf_writer_set_u32(w, K("block_count"), (uint32_t)s->n_layer);
  cll_gguf_writer_set_u32(w, K("feed_forward_length"), (uint32_t)s->n_ff);
  cll_gguf_writer_set_u32(w, K("attention.head_count"), (uint32_t)s->n_head);
  cll_gguf_writer_set_u32(w, K("attention.head_count_kv"), (uint32_t)s->n_head_kv);
  cll_gguf_writer_set_u32(w, K("rope.dimension_count"), (uint32_t)(s->n_embd / s->n_head));
  cll_gguf_writer_set_f32(w, K("rope.freq_base"), s->rope_base);
  cll_gguf_writer_set_f32(w, K("attention.layer_norm_rms_epsilon"), s->eps);
  if (s->n_expert > 0) {
    cll_gguf_writer_set_u32(w, K("expert_count"), (uint32_t)s->n_expert);
    cll_gguf_writer_set_u32(w, K("expert_used_count"), (uint32_t)s->n_expert_used);
    cll_gguf_writer_set_u32(w, K("expert_feed_forward_length"), (uint32_t)s->n_ff_exp);
  }
  if (vocab_from ? copy_vocab(w, vocab_from, s->n_vocab) != 0 : write_vocab(w, s) != 0) {
    if (!vocab_from)
      fprintf(stderr, "mkmodel: out of memory writing the vocabulary\n");
    cll_gguf_writer_free(w);
    return 1;
  }
  const int64_t E = s->n_embd, D = s->n_embd / s->n_head, QD = s->n_head * D, KD = s->n_head_kv * D,
                F = s->n_ff, V = s->n_vocab;
  const float sd = 0.02f;
  uint32_t emb_type = r->base == CLL_TYPE_F32 || r->base == CLL_TYPE_F16 || r->base == CLL_TYPE_BF16
                          ? r->base
                          : fit(r->base, E);
  add(w, "token_embd.weight", E, V, s->tied ? fit(r->output, E) : emb_type, sd);
  add(w, "output_norm.weight", E, 1, CLL_TYPE_F32, 0);
  if (!s->tied)
    add(w, "output.weight", E, V, fit(r->output, E), sd);
  for (int64_t il = 0; il < s->n_layer; il++) {
    uint32_t vt = use_more_bits(il, s->n_layer) ? r->more : r->base;
#define T3(suffix, n_in, n_out, n_exp, type, sdev)                                                 \
  do {                                                                                             \
    snprintf(name, sizeof(name), "blk.%lld.%s", (long long)il, suffix);                            \
    add3(w, name, n_in, n_out, n_exp, type, sdev);                                                 \
  } while (0)
#define T(suffix, n_in, n_out, type, sdev)                                                         \
  do {                                                                                             \
    snprintf(name, sizeof(name), "blk.%lld.%s", (long long)il, suffix);                            \
    add(w, name, n_in, n_out, type, sdev);                                                         \
  } while (0)
    T("attn_norm.weight", E, 1, CLL_TYPE_F32, 0);
    T("attn_q.weight", E, QD, fit(r->base, E), sd);
    T("attn_k.weight", E, KD, fit(r->base, E), sd);
    T("attn_v.weight", E, KD, fit(vt, E), sd);
    if (s->qkv_bias) {
      T("attn_q.bias", QD, 1, CLL_TYPE_F32, sd);
      T("attn_k.bias", KD, 1, CLL_TYPE_F32, sd);
      T("attn_v.bias", KD, 1, CLL_TYPE_F32, sd);
    }
    T("attn_output.weight", QD, E, fit(r->base, QD), sd);
    if (s->qk_norm) {
      T("attn_q_norm.weight", D, 1, CLL_TYPE_F32, 0);
      T("attn_k_norm.weight", D, 1, CLL_TYPE_F32, 0);
    }
    T("ffn_norm.weight", E, 1, CLL_TYPE_F32, 0);
    if (s->n_expert > 0) {
      /* router, then the experts as 3-D tensors [n_in, n_out, n_expert] */
      const int64_t X = s->n_expert, FE = s->n_ff_exp;
      T("ffn_gate_inp.weight", E, X, CLL_TYPE_F32, sd);
      T3("ffn_gate_exps.weight", E, FE, X, fit(r->base, E), sd);
      T3("ffn_up_exps.weight", E, FE, X, fit(r->base, E), sd);
      T3("ffn_down_exps.weight", FE, E, X, fit(vt, FE), sd);
    } else {
      T("ffn_gate.weight", E, F, fit(r->base, E), sd);
      T("ffn_up.weight", E, F, fit(r->base, E), sd);
      T("ffn_down.weight", F, E, fit(vt, F), sd);
    }
#undef T
#undef T3
  }
  if (cll_gguf_writer_finish(w, &err) != 0) {
    fprintf(stderr, "mkmodel: %s\n", err.msg);
    return 1;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  fprintf(stderr, "mkmodel: wrote %s (%s %s) in %.1f s\n", argv[3], s->name, r->name,
          (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
  for (int i = 0; i < n_blobs; i++)
    free(blobs[i].data);
  return 0;
}
