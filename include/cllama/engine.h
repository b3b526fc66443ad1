/* engine.h — a loaded model and the batched forward pass over it.
 *
 * Owns: cll_model (weights mmapped from a GGUF file, the architecture's
 * hyper-parameters; immutable once loaded, reference-counted) and cll_ctx
 * (one KV cache pool shared by up to n_seq_max sequences, the compute
 * scratch, and a persistent team of compute threads).
 *
 * Threads: loading and cll_forward block (file I/O, compute): call them from
 * a uv work-queue item or a CLI, never from the loop thread. A cll_model may
 * be shared by any number of threads; a cll_ctx is used by one thread at a
 * time (the scheduler hands it to the work item running the step).
 *
 * The batch interface follows the shape of llama.cpp's public API (tokens
 * with positions and sequence ids, a flag for the rows whose logits are
 * wanted) because that is what continuous batching needs: one step carries
 * the next token of every running sequence plus prompt chunks. */
#ifndef CLLAMA_ENGINE_H
#define CLLAMA_ENGINE_H

#include "cllama/common.h"
#include "cllama/gguf.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cll_model cll_model;
typedef struct cll_ctx cll_ctx;

/* Hyper-parameters read from GGUF metadata (transparent, read-only). */
struct cll_model_info {
  char arch[32];  /* "llama", "qwen2", ... */
  char name[128]; /* general.name, may be empty */
  int64_t n_vocab;
  int64_t n_ctx_train; /* <arch>.context_length */
  int64_t n_embd;
  int64_t n_layer;
  int64_t n_head;
  int64_t n_head_kv;
  int64_t n_ff;
  int64_t head_dim;
  float rms_eps;
  float rope_freq_base;
  float rope_freq_scale; /* 1 / linear scaling factor */
  int rope_neox;         /* 1: NEOX pairs (x[i], x[i+d/2]); 0: adjacent pairs */
  uint32_t file_type;    /* general.file_type, for /api/show quantization_level */
  uint64_t n_params;     /* sum of tensor elements */
  uint64_t weight_bytes; /* bytes of tensor data */
  int pooling;           /* embeddings: 0 none/mean, 1 mean, 2 cls, 3 last, 4 rank
                            (GGUF pooling_type) */
  bool encoder;          /* bidirectional encoder (bert family): embeddings only, no
                            KV cache; a batch holds whole sequences */
  int64_t n_cls_out;     /* rank pooling: scores per input (classifier outputs) */
};

/* Loads path (mmap, checks every tensor's type and shape against the
 * architecture). *out is new with one reference. Fills err on failure. */
int cll_model_load(const char *path, cll_model **out, cll_err *err);
/* Adds a reference; returns m. */
cll_model *cll_model_retain(cll_model *m);
/* Drops a reference; the last one unmaps. NULL is a no-op. */
void cll_model_release(cll_model *m);
const struct cll_model_info *cll_model_info(const cll_model *m); /* borrowed */
const cll_gguf *cll_model_gguf(const cll_model *m);              /* borrowed */

enum cll_kv_type { CLL_KV_F16 = 0, CLL_KV_F32 = 1 };

struct cll_ctx_params {
  int64_t n_ctx;       /* KV cells in the pool, shared by all sequences */
  int32_t n_seq_max;   /* sequence ids are 0..n_seq_max-1 */
  int32_t n_batch_max; /* most tokens in one cll_forward */
  enum cll_kv_type kv_type;
  int32_t n_threads; /* compute threads; 0 = one per core */
  bool embeddings;   /* also keep the final hidden states (for embed) */
  int64_t n_ctx_seq; /* longest sequence (0: n_ctx); picks Phi-3's LongRoPE factors */
};
struct cll_ctx_params cll_ctx_params_defaults(void);

/* New context over model m (takes a reference on m, dropped by free). */
int cll_ctx_new(cll_model *m, const struct cll_ctx_params *p, cll_ctx **out, cll_err *err);
void cll_ctx_free(cll_ctx *c);

/* One batched step. Token i is tokens[i] at position pos[i] of sequence
 * seq[i]; rows with want[i] != 0 get logits. Every sequence's tokens in the
 * batch must be at positions after those already in its KV. Allocates
 * nothing once the context exists. Returns CLL_EFULL when the KV pool has
 * no room (nothing is changed then). */
struct cll_batch {
  int32_t n_tokens;
  const int32_t *tokens; /* (n_tokens) */
  const int32_t *pos;    /* (n_tokens) */
  const int32_t *seq;    /* (n_tokens) */
  const uint8_t *want;   /* (n_tokens) or NULL: only the last row */
};
int cll_forward(cll_ctx *c, const struct cll_batch *b, cll_err *err);
/* Logits of the k-th wanted row of the last forward (n_vocab floats,
 * borrowed until the next forward), or NULL. */
const float *cll_ctx_logits(const cll_ctx *c, int32_t k);
/* Final hidden state (after output_norm) of the k-th wanted row, n_embd
 * floats; only with params.embeddings. */
const float *cll_ctx_hidden(const cll_ctx *c, int32_t k);

/* KV cache management, for the scheduler (prefix reuse, context shift). */
/* Positions held for seq (0 when empty); they are always 0..n-1. */
int32_t cll_kv_seq_len(const cll_ctx *c, int32_t seq);
/* Drops positions [p0, end) of seq. */
void cll_kv_seq_trim(cll_ctx *c, int32_t seq, int32_t p0);
/* Makes dst hold the first n positions of src (dst is trimmed first);
 * shares memory where the pool allows. */
int cll_kv_seq_copy(cll_ctx *c, int32_t src, int32_t dst, int32_t n);
/* Context shift: drops positions [p0, p0+n_discard) of seq and moves the
 * later ones down by n_discard (re-rotating their keys). */
void cll_kv_seq_shift(cll_ctx *c, int32_t seq, int32_t p0, int32_t n_discard);
/* Free KV cells in the pool. */
int64_t cll_kv_free_cells(const cll_ctx *c);
/* The longest prefix (<= n) of seq that a continuation may keep: all of
 * it, except when sliding-window layers keep only a ring of recent
 * positions and the window before n is no longer in it (then 0). */
int32_t cll_kv_seq_reusable(const cll_ctx *c, int32_t seq, int32_t n);
/* Bytes of K and V storage of the context (all layers, all cells). */
size_t cll_ctx_kv_bytes(const cll_ctx *c);
/* KV cells that hold some sequence's position: a cell several sequences
 * share (a prefix given by cll_kv_seq_copy) counts once. */
int64_t cll_kv_cells_used(const cll_ctx *c);
/* Threads in c's compute team (what n_threads resolved to). */
int cll_ctx_n_threads(const cll_ctx *c);
/* Rows of each sequence's ring in sliding-window layers (window plus one
 * batch), or 0 when every layer keeps n_ctx cells. */
int64_t cll_ctx_kv_ring(const cll_ctx *c);

#endif
