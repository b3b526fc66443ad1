/* ctx.h — internal: the layout of a cll_ctx, shared by forward.c (the
 * pass), attention.c (attention, vector math), context.c (allocation) and
 * kv.c (the KV cell pool). Not a public header.
 *
 * Three lifetimes, as in llama2.c: the model (read-only, shared), the
 * context's buffers (sized once in cll_ctx_new for n_batch_max tokens and
 * n_ctx KV cells, reused by every forward), and the per-call batch state
 * (filled by cll_forward before the team runs). */
#ifndef CLLAMA_ENGINE_CTX_H
#define CLLAMA_ENGINE_CTX_H

#include "engine/threads.h"
#include "model/model.h"

#include <stdatomic.h>
#include <stdint.h>

/* One KV cell: the keys and values of one position, in every layer. A cell
 * may belong to several sequences at once (a shared prompt prefix after
 * cll_kv_seq_copy); it is free when seq_mask is 0. */
struct cll__cell {
  int32_t pos;       /* position held (the same for every sequence sharing it) */
  uint64_t seq_mask; /* bit s: sequence s uses this cell */
};

#define CLL__MAX_SEQ 64 /* bits in seq_mask */
#define CLL__XQ_SLOTS 3 /* distinct activation formats prepared from one input */

#define CLL__KV_BLOCK 32 /* cells a sequence claims at a time (kv.c) */

#define CLL__QCHUNK 64 /* query rows (head, token) of one sequence attended together */

/* Scratch private to one compute thread. */
struct cll__tscratch {
  void *mm; /* cll_matmul scratch (mm_bytes) */
  size_t mm_bytes;
  float *qg;      /* (QCHUNK, head_dim) gathered query rows */
  float *scores;  /* (QCHUNK, n_ctx) attention scores / probabilities */
  float *og;      /* (QCHUNK, head_dim) attention output rows */
  int32_t *runs;  /* (n_ctx + 1) first position of each run of consecutive cells */
  int32_t *cellv; /* (n_ctx) row of each position in a ring layer */
  uint8_t *vg;    /* (head_dim, n_ctx) values (transposed) gathered when the
                     sequence's cells are not one run */
};

/* Where one layer's keys and values live. Full layers: rows are the pool's
 * cells (n_ctx). Sliding-window layers, when the context is longer than
 * their windows need: each sequence has a ring of `ring` rows, position p
 * in row seq * ring + p % ring, so those layers cost n_seq_max * ring rows
 * instead of n_ctx (kv.c). */
struct cll__kvlayer {
  uint8_t *k; /* (rows, kv_dim) */
  uint8_t *v; /* (kv_dim, rows): transposed */
  int64_t rows;
  bool ring;
};

/* A run of one sequence's batch tokens attended together (<= QCHUNK). */
struct cll__attn_unit {
  int32_t seq;
  int32_t first; /* index into cll_ctx.seq_toks */
  int32_t n;     /* tokens */
  int32_t n_pos; /* positions attended by the last token (its position + 1) */
};

struct cll__enc_ctx; /* encoder.c */

struct cll_ctx {
  cll_model *m;             /* one reference held */
  struct cll__enc_ctx *enc; /* encoder models: their own buffers, no KV (encoder.c) */
  struct cll_ctx_params p;
  const cll_kernels *K;
  cll__team *team;
  int64_t kv_dim; /* n_head_kv * head_dim */

  /* ---- KV pool (kv.c) */
  struct cll__cell *cells;  /* (n_ctx) */
  int32_t *blk_free;        /* (n_blk) free cells in each block of CLL__KV_BLOCK cells */
  int64_t n_blk;            /* ceil(n_ctx / CLL__KV_BLOCK) */
  int64_t n_blk_whole;      /* blocks with every cell free */
  int64_t n_free;           /* free cells */
  int32_t *seq_cells;       /* (n_seq_max, n_ctx) cell of each position */
  int32_t *seq_len;         /* (n_seq_max) positions held */
  uint32_t kv_type;         /* CLL_TYPE_F16 or CLL_TYPE_F32 */
  size_t kv_row_bytes;      /* bytes of one cell's row in one layer (kv_dim elements) */
  struct cll__kvlayer *kvl; /* (n_layer) each layer's storage (in k_cache/v_cache or
                               k_ring/v_ring) */
  int64_t ring;             /* rows of a sequence's ring (0: no ring layers) */
  int32_t *ring_lo;         /* (n_seq_max) lowest position the rings still hold */
  uint8_t *k_ring, *v_ring; /* the ring layers' storage */
  uint8_t *ring_tmp;        /* (2, ring, kv_dim) of kv_type: scratch of a shift */
  size_t kv_bytes;          /* K and V storage in all */
  uint8_t *k_cache;         /* (full layers, n_ctx, kv_dim) of kv_type */
  uint8_t *v_cache;         /* (n_layer, kv_dim, n_ctx) of kv_type: transposed, so that
                               one dimension of V over a run of cells is a contiguous row
                               (the weights of the P.V product) */
  size_t kv_elt;            /* bytes of one element (2 or 4) */
  double *inv_freq;         /* (n_rot/2) RoPE angle per position for each pair */
  double *inv_freq_swa;     /* the same for sliding-window layers (own base, scale) */
  float rope_mscale;        /* cos and sin times this (LongRoPE attn_factor, else 1) */

  /* ---- activations, B = n_batch_max rows each */
  float *x;           /* (B, n_embd) residual stream */
  float *xn;          /* (B, n_embd) normalized input / projection output */
  float *q;           /* (B, n_head*head_dim) */
  float *k;           /* (B, kv_dim) */
  float *v;           /* (B, kv_dim) */
  float *att;         /* (B, n_head*head_dim) attention output */
  float *gate;        /* (B, n_ff) */
  float *up;          /* (B, n_ff) */
  float *rope_cs;     /* (B, n_rot/2, 2) cos, sin of each token's angles */
  float *rope_cs_swa; /* (B, n_rot/2, 2) the same for sliding-window layers */
  /* MoE (n_expert_used routed copies of each token, grouped by expert) */
  int32_t *moe_sel;        /* (B, n_used) chosen experts, best first */
  float *moe_w;            /* (B, n_used) their weights */
  float *moe_logits;       /* (B, n_expert) router logits */
  int32_t *moe_start;      /* (n_expert + 1) first slot of each expert */
  int32_t *moe_slot;       /* (B, n_used) slot of token t's k-th expert */
  int32_t *moe_tok;        /* (B * n_used) token of each slot */
  float *moe_x;            /* (B * n_used, n_embd) gathered inputs, then outputs */
  float *moe_g;            /* (B * n_used, n_ff_exp) gate, then the activation */
  float *moe_u;            /* (B * n_used, n_ff_exp) up */
  void *xq[CLL__XQ_SLOTS]; /* quantized activations, xq_bytes each */
  size_t xq_bytes;
  struct cll__tscratch *ts; /* (n_threads) */

  /* ---- outputs */
  float *logits;       /* (logits_rows, n_vocab) */
  int32_t logits_rows; /* capacity in rows */
  int32_t n_out;       /* wanted rows of the last forward */

  /* ---- the batch being computed (valid during cll_forward) */
  const struct cll_batch *b;
  int32_t *cell_of;             /* (B) KV cell of each token */
  int32_t *out_rows;            /* (B) token index of each wanted row */
  int32_t *seq_toks;            /* (B) batch token indices grouped by sequence */
  struct cll__attn_unit *units; /* (B + n_seq_max) */
  int32_t n_units;
  /* ---- work sharing of one forward (forward.c), reset per forward */
  int32_t n_ops;        /* operations in a pass, upper bound */
  atomic_int *op_claim; /* (n_ops) chunks claimed */
  atomic_int *op_done;  /* (n_ops) chunks finished */
};

/* encoder.c: the context and pass of encoder models (m->enc != NULL);
 * cll_ctx_new, cll_forward, cll_ctx_hidden and cll_ctx_free hand over. */
int cll__enc_ctx_new(cll_model *m, const struct cll_ctx_params *p, cll_ctx **out, cll_err *err);
void cll__enc_ctx_free(cll_ctx *c);
int cll__encode(cll_ctx *c, const struct cll_batch *b, cll_err *err);
const float *cll__enc_hidden(const cll_ctx *c, int32_t k);

/* kv.c */
int cll__kv_init(cll_ctx *c);
void cll__kv_free(cll_ctx *c);
/* Checks the batch against the pool and assigns a cell to every token
 * (fills c->cell_of). On failure nothing changes. */
int cll__kv_place(cll_ctx *c, const struct cll_batch *b, cll_err *err);
/* forward.c: rotates n_heads heads of head_dim floats at x by pos_delta
 * with layer il's frequencies. */
void cll__rope(const cll_ctx *c, int il, float *x, int64_t n_heads, double pos_delta);
/* forward.c: fills the GeGLU table once (gemma models; cll_ctx_new). */
void cll__gelu_init(void);

/* context.c: n bytes aligned to 64 (a cache line); free() releases them. */
void *cll__xalloc(size_t n);

/* attention.c: gate[i] = silu(gate[i]) * up[i] for i < n (SwiGLU). */
void cll__swiglu(float *restrict gate, const float *restrict up, int64_t n);
/* attention.c: writes the keys and values of batch rows [t0, t1) (c->k,
 * c->v) into their cells of layer il. */
void cll__store_kv(const cll_ctx *c, int il, int64_t t0, int64_t t1);
/* attention.c: the output of the query heads of KV head kvh for the
 * tokens of unit u, into c->att. */
void cll__attend(cll_ctx *c, int il, const struct cll__attn_unit *u, int64_t kvh,
                 struct cll__tscratch *ts);

#endif
