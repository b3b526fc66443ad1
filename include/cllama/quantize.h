/* quantize.h — converting a GGUF model's weights to a quantized type.
 *
 * Owns: the quantization recipes (which tensor gets which type for a target
 * "file type", following llama.cpp's rules so that our Q4_K_M is laid out
 * like theirs) and the file-to-file conversion used by `cllama quantize`
 * and bench/mkmodel.
 *
 * Input tensors in F32, F16 or BF16 are converted; tensors already in a
 * quantized type are copied unchanged. 1-D tensors (norms, biases) and
 * non-weight tensors stay as they are. Rows whose length does not divide
 * into the target's blocks get a fallback type (Q4_K -> Q5_0, Q5_K -> Q5_1,
 * Q6_K -> Q8_0, else the source type). Metadata is copied and
 * general.file_type / general.quantization_version are set.
 *
 * Threads: any thread may call these; cll_quantize_file blocks (file I/O and
 * minutes of computation for a large model) and starts its own worker
 * threads. It holds the whole output in memory until it is written. */
#ifndef CLLAMA_QUANTIZE_H
#define CLLAMA_QUANTIZE_H

#include "cllama/common.h"
#include "cllama/gguf.h"

#include <stdbool.h>
#include <stdint.h>

/* general.file_type values (llama.cpp's llama_ftype numbering). */
enum cll_ftype {
  CLL_FTYPE_ALL_F32 = 0,
  CLL_FTYPE_F16 = 1,
  CLL_FTYPE_Q4_0 = 2,
  CLL_FTYPE_Q4_1 = 3,
  CLL_FTYPE_Q8_0 = 7,
  CLL_FTYPE_Q5_0 = 8,
  CLL_FTYPE_Q5_1 = 9,
  CLL_FTYPE_Q4_K_S = 14,
  CLL_FTYPE_Q4_K_M = 15,
  CLL_FTYPE_Q5_K_S = 16,
  CLL_FTYPE_Q5_K_M = 17,
  CLL_FTYPE_Q6_K = 18,
  CLL_FTYPE_BF16 = 32,
};

/* A target by name, case-insensitive: F32, F16, BF16, Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K (= Q4_K_M's base type everywhere: "mostly Q4_K",
 * stored as file type Q4_K_S), Q4_K_S, Q4_K_M, Q5_K, Q5_K_S, Q5_K_M, Q6_K.
 * *pure is set for the plain Q4_K/Q5_K names (no per-tensor upgrades besides
 * output.weight). Returns 0 or CLL_EINVAL. */
int cll_quantize_parse(const char *name, enum cll_ftype *ftype, bool *pure);
/* The canonical name of a file type ("Q4_K_M"), or NULL (static). */
const char *cll_quantize_ftype_name(enum cll_ftype ftype);

/* The recipe: types[i] = the type tensor i of src gets under ftype (src's
 * own type for tensors that are copied). types has cll_gguf_n_tensors(src)
 * entries. */
int cll_quantize_plan(const cll_gguf *src, enum cll_ftype ftype, bool pure, uint32_t *types);

typedef struct cll_quantize_params {
  enum cll_ftype ftype;
  bool pure;     /* see cll_quantize_parse */
  int n_threads; /* 0: one per online CPU */
  /* Called after each tensor (on the calling thread), or NULL. */
  void (*progress)(void *ctx, int64_t i, int64_t n, const char *name, uint32_t from_type,
                   uint32_t to_type);
  void *progress_ctx;
} cll_quantize_params;

cll_quantize_params cll_quantize_defaults(void);

/* Reads in_path, writes out_path (atomically: a temporary file renamed into
 * place). Returns 0 or a CLL_E* code with err filled. */
int cll_quantize_file(const char *in_path, const char *out_path, const cll_quantize_params *p,
                      cll_err *err);

#endif
