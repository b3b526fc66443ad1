/* mkarch.h — deterministic tiny random-weight GGUF models of the decoder
 * architectures (qwen3, gemma2, gemma3, phi3, qwen3moe) with the real
 * tensor names and metadata keys, for the llama.cpp reference tests
 * (test/test_arch.c) and test/models/make-refs.sh (through mkarch.c).
 *
 * Everything is F32 and comes from an integer generator (xorshift64*,
 * uniform values), so the same file is written on every machine: the
 * committed reference outputs in test/models/ref/ stay valid for models
 * regenerated at test time. The shapes are small but exercise what each
 * architecture does differently: head_dim * n_head != n_embd, GQA, a
 * sliding window shorter than the test prompts (gemma2/gemma3), soft-caps
 * small enough to bite (gemma2), LongRoPE factors (phi3), 16 experts of
 * which 4 are used (qwen3moe). n_embd is 256 so the K-quant recipes
 * (Q4_K_M) keep their block types.
 *
 * The vocabulary is a made-up SentencePiece one of 512 tokens: control
 * tokens, the 256 byte tokens and syllable words; the gemma models also
 * have <start_of_turn> / <end_of_turn> so their chat template renders to
 * real tokens. */
#ifndef CLLAMA_TEST_MKARCH_H
#define CLLAMA_TEST_MKARCH_H

#include "cllama/gguf.h"
#include "cllama/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MKARCH_VOCAB 512

struct mkarch_rng {
  uint64_t s;
};

/* Uniform in [-a, a), from the top 24 bits of xorshift64*: exact in float. */
static float mkarch_uni(struct mkarch_rng *r, float a) {
  r->s ^= r->s >> 12;
  r->s ^= r->s << 25;
  r->s ^= r->s >> 27;
  uint32_t u = (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 40); /* 24 bits */
  return ((float)u / 8388608.0f - 1.0f) * a;
}

struct mkarch_w {
  cll_gguf_writer *w;
  struct mkarch_rng rng;
  void *bufs[256];
  int n_bufs;
  char key[160];
  const char *arch;
};

static const char *mkarch_key(struct mkarch_w *m, const char *suffix) {
  snprintf(m->key, sizeof(m->key), "%s.%s", m->arch, suffix);
  return m->key;
}

/* A tensor of ne0 x ne1 x ne2 F32 values: uniform(+-a) + center. */
static int mkarch_t(struct mkarch_w *m, const char *name, int64_t ne0, int64_t ne1, int64_t ne2,
                    float center, float a) {
  size_t n = (size_t)ne0 * (size_t)ne1 * (size_t)ne2;
  float *d = malloc(n * sizeof(float));
  if (d == NULL || m->n_bufs == (int)(sizeof(m->bufs) / sizeof(m->bufs[0]))) {
    free(d);
    return -1;
  }
  for (size_t i = 0; i < n; i++)
    d[i] = center + mkarch_uni(&m->rng, a);
  m->bufs[m->n_bufs++] = d;
  uint64_t ne[3] = {(uint64_t)ne0, (uint64_t)ne1, (uint64_t)ne2};
  uint32_t nd = ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1;
  return cll_gguf_writer_add_tensor(m->w, name, CLL_TYPE_F32, nd, ne, d, n * sizeof(float));
}

static int mkarch_blk(struct mkarch_w *m, int il, const char *suffix, int64_t ne0, int64_t ne1,
                      int64_t ne2, float center, float a) {
  char name[96];
  snprintf(name, sizeof(name), "blk.%d.%s", il, suffix);
  return mkarch_t(m, name, ne0, ne1, ne2, center, a);
}

static void mkarch_vocab(struct mkarch_w *m, int gemma) {
  static const char *syl[] = {"ka", "lo", "mi", "ne", "ru", "ta", "shi", "po",
                              "ve", "da", "gi", "fo", "ze", "bu", "ha",  "yo"};
  const int V = MKARCH_VOCAB;
  char **tok = calloc(V, sizeof(char *));
  float *scores = malloc(V * sizeof(float));
  int32_t *types = malloc(V * sizeof(int32_t));
  /* gemma: <pad> <eos> <bos> <unk> <start_of_turn> <end_of_turn>;
   * others: <unk> <s> </s> */
  static const char *g_spec[] = {"<pad>", "<eos>",           "<bos>",
                                 "<unk>", "<start_of_turn>", "<end_of_turn>"};
  static const char *l_spec[] = {"<unk>", "<s>", "</s>"};
  int n_spec = gemma ? 6 : 3;
  for (int i = 0; i < V; i++) {
    char buf[64];
    types[i] = 1;
    scores[i] = -(float)i;
    if (i < n_spec) {
      snprintf(buf, sizeof(buf), "%s", gemma ? g_spec[i] : l_spec[i]);
      types[i] = (gemma ? i == 3 : i == 0) ? 2 : 3;
    } else if (i < n_spec + 256) {
      snprintf(buf, sizeof(buf), "<0x%02X>", i - n_spec);
      types[i] = 6;
    } else {
      int k = i - n_spec - 256;
      buf[0] = 0;
      if (k & 1)
        strcat(buf, "\xe2\x96\x81");
      k >>= 1;
      do {
        strcat(buf, syl[k % 16]);
        k /= 16;
      } while (k > 0);
    }
    tok[i] = strdup(buf);
  }
  cll_gguf_writer *w = m->w;
  cll_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
  cll_gguf_writer_set_str(w, "tokenizer.ggml.pre", "default");
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)tok, V);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.scores", CLL_GGUF_F32, scores, V);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", CLL_GGUF_I32, types, V);
  cll_gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", gemma ? 2 : 1);
  cll_gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", gemma ? 1 : 2);
  cll_gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", gemma ? 3 : 0);
  if (gemma)
    cll_gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
  cll_gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", 1);
  cll_gguf_writer_set_bool(w, "tokenizer.ggml.add_eos_token", 0);
  for (int i = 0; i < V; i++)
    free(tok[i]);
  free(tok);
  free(scores);
  free(types);
}

/* The architectures mkarch_write knows. */
static const char *const mkarch_names[] = {"qwen3", "gemma2", "gemma3", "phi3", "qwen3moe"};

/* Writes the tiny model of arch to path. Returns 0, or -1 (message on
 * stderr). */
static inline int mkarch_write(const char *arch, const char *path) {
  struct mkarch_w M = {0}, *m = &M;
  cll_err err = {0};
  int known = 0;
  for (size_t i = 0; i < sizeof(mkarch_names) / sizeof(mkarch_names[0]); i++)
    known |= strcmp(arch, mkarch_names[i]) == 0;
  if (!known) {
    fprintf(stderr, "mkarch: unknown architecture %s\n", arch);
    return -1;
  }
  if (cll_gguf_writer_new(path, &m->w, &err) != 0) {
    fprintf(stderr, "mkarch: %s\n", err.msg);
    return -1;
  }
  m->arch = arch;
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  for (const char *p = arch; *p; p++)
    seed = (seed ^ (uint8_t)*p) * 0x100000001B3ull;
  m->rng.s = seed | 1;
  const int gemma = strncmp(arch, "gemma", 5) == 0;
  const int is_phi3 = strcmp(arch, "phi3") == 0, moe = strcmp(arch, "qwen3moe") == 0;
  const int64_t E = 256, V = MKARCH_VOCAB, NH = 4, D = 64;
  const int64_t HKV = is_phi3 ? 4 : gemma && arch[5] == '3' ? 1 : 2;
  const int64_t F = 512, N_EXP = 16, N_USED = 4, F_EXP = 128;
  const int64_t L = strcmp(arch, "gemma3") == 0 ? 7 : gemma ? 4 : 2;
  cll_gguf_writer *w = m->w;
  char name[64];
  /* (not "phi3": llama.cpp's vocab loader then wants phi-3's own tokens) */
  snprintf(name, sizeof(name), "cllama tiny random model %d", (int)L);
  cll_gguf_writer_set_str(w, "general.architecture", arch);
  cll_gguf_writer_set_str(w, "general.name", name);
  cll_gguf_writer_set_u32(w, "general.file_type", 0);
  cll_gguf_writer_set_u32(w, mkarch_key(m, "context_length"), is_phi3 ? 4096 : 8192);
  cll_gguf_writer_set_u32(w, mkarch_key(m, "embedding_length"), (uint32_t)E);
  cll_gguf_writer_set_u32(w, mkarch_key(m, "block_count"), (uint32_t)L);
  cll_gguf_writer_set_u32(w, mkarch_key(m, "feed_forward_length"), (uint32_t)F);
  cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.head_count"), (uint32_t)NH);
  cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.head_count_kv"), (uint32_t)HKV);
  if (!is_phi3) {
    cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.key_length"), (uint32_t)D);
    cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.value_length"), (uint32_t)D);
  }
  cll_gguf_writer_set_f32(w, mkarch_key(m, "attention.layer_norm_rms_epsilon"), 1e-6f);
  cll_gguf_writer_set_f32(w, mkarch_key(m, "rope.freq_base"),
                          gemma     ? 1000000.0f
                          : is_phi3 ? 10000.0f
                                    : 1000000.0f);
  if (strcmp(arch, "gemma2") == 0) {
    cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.sliding_window"), 6);
    cll_gguf_writer_set_f32(w, mkarch_key(m, "attn_logit_softcapping"), 5.0f);
    cll_gguf_writer_set_f32(w, mkarch_key(m, "final_logit_softcapping"), 6.0f);
  } else if (strcmp(arch, "gemma3") == 0) {
    cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.sliding_window"), 8);
    cll_gguf_writer_set_str(w, mkarch_key(m, "rope.scaling.type"), "linear");
    cll_gguf_writer_set_f32(w, mkarch_key(m, "rope.scaling.factor"), 8.0f);
  } else if (is_phi3) {
    cll_gguf_writer_set_u32(w, mkarch_key(m, "rope.dimension_count"), (uint32_t)D);
    cll_gguf_writer_set_u32(w, mkarch_key(m, "rope.scaling.original_context_length"), 256);
    cll_gguf_writer_set_f32(w, mkarch_key(m, "rope.scaling.attn_factor"), 1.1902380714238083f);
    cll_gguf_writer_set_u32(w, mkarch_key(m, "attention.sliding_window"), 2047);
  } else if (moe) {
    cll_gguf_writer_set_u32(w, mkarch_key(m, "expert_count"), (uint32_t)N_EXP);
    cll_gguf_writer_set_u32(w, mkarch_key(m, "expert_used_count"), (uint32_t)N_USED);
    cll_gguf_writer_set_u32(w, mkarch_key(m, "expert_feed_forward_length"), (uint32_t)F_EXP);
  }
  mkarch_vocab(m, gemma);

  int rc = 0;
  /* uniform(+-a): sd = a / sqrt(3). Small embeddings: with a tied output
   * the input token's own row would otherwise win every greedy step; the
   * output norm scales the logits back up (sd about 4). */
  const float a_emb = 0.05f, a_in = 1.7f / 16.0f;
  rc |= mkarch_t(m, "token_embd.weight", E, V, 1, 0, a_emb);
  rc |= mkarch_t(m, "output_norm.weight", E, 1, 1, 8.0f, 1.0f);
  if (is_phi3) {
    rc |= mkarch_t(m, "output.weight", E, V, 1, 0, a_emb);
    /* LongRoPE: per-dimension divisors of the angles, n_rot / 2 each */
    rc |= mkarch_t(m, "rope_factors_long.weight", D / 2, 1, 1, 4.0f, 3.0f);
    rc |= mkarch_t(m, "rope_factors_short.weight", D / 2, 1, 1, 1.5f, 0.5f);
  }
  for (int il = 0; il < L && rc == 0; il++) {
    rc |= mkarch_blk(m, il, "attn_norm.weight", E, 1, 1, 1.0f, 0.2f);
    if (is_phi3) {
      rc |= mkarch_blk(m, il, "attn_qkv.weight", E, (NH + 2 * HKV) * D, 1, 0, a_in);
    } else {
      rc |= mkarch_blk(m, il, "attn_q.weight", E, NH * D, 1, 0, a_in);
      rc |= mkarch_blk(m, il, "attn_k.weight", E, HKV * D, 1, 0, a_in);
      rc |= mkarch_blk(m, il, "attn_v.weight", E, HKV * D, 1, 0, a_in);
    }
    if (!is_phi3 && strcmp(arch, "gemma2") != 0) {
      rc |= mkarch_blk(m, il, "attn_q_norm.weight", D, 1, 1, 1.0f, 0.2f);
      rc |= mkarch_blk(m, il, "attn_k_norm.weight", D, 1, 1, 1.0f, 0.2f);
    }
    rc |= mkarch_blk(m, il, "attn_output.weight", NH * D, E, 1, 0, a_in);
    if (gemma)
      rc |= mkarch_blk(m, il, "post_attention_norm.weight", E, 1, 1, 1.0f, 0.2f);
    rc |= mkarch_blk(m, il, "ffn_norm.weight", E, 1, 1, 1.0f, 0.2f);
    if (moe) {
      rc |= mkarch_blk(m, il, "ffn_gate_inp.weight", E, N_EXP, 1, 0, 4 * a_in);
      rc |= mkarch_blk(m, il, "ffn_gate_exps.weight", E, F_EXP, N_EXP, 0, a_in);
      rc |= mkarch_blk(m, il, "ffn_up_exps.weight", E, F_EXP, N_EXP, 0, a_in);
      rc |= mkarch_blk(m, il, "ffn_down_exps.weight", F_EXP, E, N_EXP, 0, a_in);
    } else if (is_phi3) {
      rc |= mkarch_blk(m, il, "ffn_up.weight", E, 2 * F, 1, 0, a_in);
      rc |= mkarch_blk(m, il, "ffn_down.weight", F, E, 1, 0, a_in / 1.4f);
    } else {
      rc |= mkarch_blk(m, il, "ffn_gate.weight", E, F, 1, 0, a_in);
      rc |= mkarch_blk(m, il, "ffn_up.weight", E, F, 1, 0, a_in);
      rc |= mkarch_blk(m, il, "ffn_down.weight", F, E, 1, 0, a_in / 1.4f);
    }
    if (gemma)
      rc |= mkarch_blk(m, il, "post_ffw_norm.weight", E, 1, 1, 1.0f, 0.2f);
  }
  if (rc == 0)
    rc = cll_gguf_writer_finish(w, &err);
  else
    cll_gguf_writer_free(w);
  for (int i = 0; i < m->n_bufs; i++)
    free(m->bufs[i]);
  if (rc != 0) {
    fprintf(stderr, "mkarch: writing %s failed: %s\n", path, err.msg);
    return -1;
  }
  return 0;
}

/* The test prompts: token ids (no tokenizer involved), the first being BOS. */
#define MKARCH_N_PROMPTS 3
static inline int mkarch_prompt(const char *arch, int p, int32_t *out) {
  static const int lens[MKARCH_N_PROMPTS] = {6, 19, 41};
  int gemma = strncmp(arch, "gemma", 5) == 0;
  uint32_t s = 12345u + 977u * (uint32_t)p;
  out[0] = gemma ? 2 : 1;
  for (int i = 1; i < lens[p]; i++) {
    s = s * 1103515245u + 12345u;
    out[i] = 6 + (int32_t)((s >> 8) % (MKARCH_VOCAB - 6));
  }
  return lens[p];
}

#endif
