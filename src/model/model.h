/* model.h — internal: the layout of a loaded model, shared by model.c (which
 * builds it from a GGUF file) and the engine (src/engine/forward.c, which
 * computes with it). Not a public header: the public face is engine.h.
 *
 * A cll_model is immutable after cll_model_load returns; every weight points
 * into the read-only mapping of the GGUF file, and, where the kernels have a
 * faster layout for its type, also to a copy in that layout made at load. */
#ifndef CLLAMA_MODEL_MODEL_H
#define CLLAMA_MODEL_MODEL_H

#include "cllama/engine.h"
#include "cllama/gguf.h"
#include "cllama/kernels.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A weight matrix (or vector: n_out = 1) in place in the mapping. */
struct cll__weight {
  const void *data; /* NULL when the tensor is absent (optional ones) */
  uint32_t type;    /* enum cll_type */
  int64_t n_in;     /* ne[0]: elements per row */
  int64_t n_out;    /* ne[1]: rows */
  size_t row_bytes; /* bytes between rows */
  /* The same matrix repacked at load for the kernel table in use (rows
   * 0..packed_rows), or NULL; owned by the model (see pack_weights). */
  const void *packed;
  int64_t packed_rows;
};

/* What distinguishes one architecture from another. A new architecture is
 * one entry in the table in model.c plus, where it has an operation the
 * others lack, a flag here and the few lines in forward.c that honour it. */
struct cll__arch {
  const char *name; /* general.architecture */
  bool rope_neox;   /* rotate (x[i], x[i+d/2]) instead of (x[2i], x[2i+1]) */
  bool qkv_bias;    /* attn_{q,k,v}.bias present (optional per tensor) */
  bool qk_norm;     /* per-head RMSNorm of q and k before RoPE (qwen3, gemma3) */
  bool tied_output; /* output.weight may be absent: reuse token_embd */
  bool gemma;       /* embeddings times sqrt(n_embd); RMSNorm after attention and
                       after the FFN too (post_attention_norm, post_ffw_norm);
                       GeGLU (tanh GELU) instead of SwiGLU */
  bool fused;       /* attn_qkv (q, k, v rows) and ffn_up (gate, up rows) (phi3) */
  bool moe;         /* FFN = top-k of expert_count experts, softmax routing */
  /* Sliding-window layers: every layer il with il % swa_period <
   * swa_period - 1 attends only its last n_swa positions (0: none). The
   * window comes from <arch>.attention.sliding_window, else swa_default. */
  int swa_period;
  int swa_default;
  float attn_softcap;  /* default of <arch>.attn_logit_softcapping (0: none) */
  float final_softcap; /* default of <arch>.final_logit_softcapping (0: none) */
};

struct cll__layer {
  struct cll__weight attn_norm;      /* (n_embd) F32 */
  struct cll__weight wq;             /* (n_head*head_dim rows, n_embd) */
  struct cll__weight wk;             /* (n_head_kv*head_dim rows, n_embd) */
  struct cll__weight wv;             /* (n_head_kv*head_dim rows, n_embd) */
  struct cll__weight bq, bk, bv;     /* biases (same lengths) F32, or absent */
  struct cll__weight q_norm, k_norm; /* (head_dim) F32, qk_norm archs only */
  struct cll__weight wo;             /* (n_embd rows, n_head*head_dim) */
  struct cll__weight ffn_norm;       /* (n_embd) F32 */
  struct cll__weight w_gate;         /* (n_ff rows, n_embd) */
  struct cll__weight w_up;           /* (n_ff rows, n_embd) */
  struct cll__weight w_down;         /* (n_embd rows, n_ff) */
  struct cll__weight attn_post_norm; /* (n_embd) F32, gemma */
  struct cll__weight ffn_post_norm;  /* (n_embd) F32, gemma */
  /* MoE (qwen3moe): the router and, for each expert, views of its rows in
   * the 3-D expert tensors (n_expert entries each, allocated by model.c). */
  struct cll__weight router;    /* (n_expert rows, n_embd) */
  struct cll__weight *exp_gate; /* (n_ff_exp rows, n_embd) each */
  struct cll__weight *exp_up;   /* (n_ff_exp rows, n_embd) each */
  struct cll__weight *exp_down; /* (n_embd rows, n_ff_exp) each */
  bool swa;                     /* sliding-window layer */
};

/* Encoder architectures (bert, nomic-bert; XLM-RoBERTa is bert with a t5
 * vocabulary): loaded by src/model/encoder.c, computed by
 * src/engine/encoder.c. Post-norm layers: x = LN(x + attn(x)); x = LN(x +
 * ffn(x)), LayerNorms with bias. */
struct cll__enc_layer {
  struct cll__weight wqkv, bqkv;   /* fused (3 * n_embd rows, n_embd) and bias, or absent */
  struct cll__weight wq, wk, wv;   /* (n_embd rows, n_embd) when not fused */
  struct cll__weight bq, bk, bv;   /* (n_embd) F32, optional */
  struct cll__weight wo, bo;       /* (n_embd rows, n_embd), bias optional */
  struct cll__weight ln1, ln1_b;   /* attn_output_norm (n_embd) F32 */
  struct cll__weight up, up_b;     /* (n_ff rows, n_embd), bias optional */
  struct cll__weight gate;         /* (n_ff rows, n_embd): SwiGLU archs only */
  struct cll__weight down, down_b; /* (n_embd rows, n_ff), bias optional */
  struct cll__weight ln2, ln2_b;   /* layer_output_norm (n_embd) F32 */
};

struct cll__enc_model {
  bool rope;                               /* rotary positions on q, k (nomic-bert) */
  bool swiglu;                             /* silu(gate) * up (nomic-bert); else gelu(up) */
  float norm_eps;                          /* LayerNorm epsilon */
  struct cll__weight type_embd;            /* (n_types rows, n_embd): row 0 added, or absent */
  struct cll__weight pos_embd;             /* (n_ctx_train rows, n_embd) absolute, or absent */
  struct cll__weight tok_norm, tok_norm_b; /* (n_embd) F32 */
  /* Classification head (rerankers, pooling rank): optional */
  struct cll__weight cls, cls_b;         /* (n_embd rows, n_embd), (n_embd) */
  struct cll__weight cls_out, cls_out_b; /* (n_cls_out rows, n_embd), (n_cls_out) */
  struct cll__enc_layer *layers;         /* (n_layer) */
};

/* src/model/encoder.c */
bool cll__encoder_arch(const char *arch);
/* Reads hyper-parameters and weights of an encoder into m (m->gguf is
 * open, m->info.arch set); fills m->enc. */
int cll__encoder_load(cll_model *m, cll_err *err);
void cll__encoder_free(struct cll__enc_model *e);

struct cll_model {
  atomic_int refs;
  cll_gguf *gguf;               /* owns the mapping */
  const struct cll__arch *arch; /* static */
  struct cll_model_info info;
  int64_t n_rot;                 /* rotary dimensions (<= head_dim, even) */
  struct cll__weight tok_embd;   /* (n_vocab rows, n_embd) */
  struct cll__weight out_norm;   /* (n_embd) F32 */
  struct cll__weight output;     /* (n_vocab rows, n_embd); == tok_embd when tied */
  struct cll__weight rope_freqs; /* (n_rot/2) F32 frequency divisors, or absent */
  struct cll__layer *layers;     /* (n_layer) */
  struct cll__enc_model *enc;    /* encoder architectures only, else NULL */
  /* Architecture extras (zero when unused). */
  int64_t n_swa;       /* sliding window of the swa layers, positions */
  float swa_freq_base; /* RoPE base and scale of the swa layers */
  float swa_freq_scale;
  float attn_scale;       /* query scale (1/sqrt(head_dim) unless the arch says) */
  float attn_softcap;     /* scores -> cap * tanh(scores / cap), 0: off */
  float final_softcap;    /* logits -> cap * tanh(logits / cap), 0: off */
  float rope_attn_factor; /* LongRoPE: cos and sin times this (1: none) */
  struct cll__weight rope_long, rope_short; /* LongRoPE factors (n_rot/2) F32 */
  int64_t rope_orig_ctx;                    /* contexts above this use rope_long */
  int64_t n_expert, n_expert_used, n_ff_exp;
  struct cll__weight *exp_mem; /* every layer's expert views, one allocation */
  void *pack_mem;              /* every packed matrix, one anonymous mapping */
  size_t pack_len;
};

/* model.c: what model.c and encoder.c share while they build a model
 * from its GGUF file (loader thread only). Each fills L->err with the
 * reason and returns a negative CLL_E* code on failure. */
struct cll__loader {
  cll_model *m;
  cll_err *err;
  char key[192];
};
/* "<arch>.<suffix>" (borrowed: L->key, valid until the next call). */
const char *cll__loader_key(struct cll__loader *L, const char *suffix);
/* A positive count (at most 2^24) under "<arch>.<suffix>"; dflt when
 * absent and not required. */
int cll__loader_int(struct cll__loader *L, const char *suffix, bool required, int64_t dflt,
                    int64_t *out);
/* A positive float under "<arch>.<suffix>", dflt when absent. */
int cll__loader_float(struct cll__loader *L, const char *suffix, float dflt, float *out);
/* Tensor name as an n_out x n_in matrix of a type the kernels compute
 * with (n_out = 0: a vector of n_in, F32 only; n_out < 0: any row count,
 * returned in w->n_out); absent and not required: w->data = NULL. */
int cll__loader_weight(struct cll__loader *L, const char *name, int64_t n_in, int64_t n_out,
                       bool required, struct cll__weight *w);

#endif
