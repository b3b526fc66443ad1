/* kernels.h — quantized weight formats and the compute kernels over them.
 *
 * Owns: the GGUF/ggml tensor type table (block sizes, byte sizes), the
 * scalar reference kernels (src/kernels/ref.c: the specification and test
 * oracle), per-ISA SIMD versions (avx2.c, avx512.c, neon.c) chosen once at
 * start-up from CPUID (dispatch.c, the only place an instruction set is
 * chosen; cll_kernels_init can force one), and the matrix-product entry point that the engine's
 * threads call on their slice of rows (matmul.c, the only file that includes BLIS).
 *
 * Kernels never allocate, log or fail: callers pass correctly sized buffers
 * (sizes from cll_row_bytes) and scratch. Everything here may be called from
 * any thread at the same time; the dispatch table is immutable once chosen. */
#ifndef CLLAMA_KERNELS_H
#define CLLAMA_KERNELS_H

#include "cllama/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml type ids, as stored in GGUF tensor infos. */
enum cll_type {
  CLL_TYPE_F32 = 0,
  CLL_TYPE_F16 = 1,
  CLL_TYPE_Q4_0 = 2,
  CLL_TYPE_Q4_1 = 3,
  CLL_TYPE_Q5_0 = 6,
  CLL_TYPE_Q5_1 = 7,
  CLL_TYPE_Q8_0 = 8,
  CLL_TYPE_Q8_1 = 9,
  CLL_TYPE_Q2_K = 10,
  CLL_TYPE_Q3_K = 11,
  CLL_TYPE_Q4_K = 12,
  CLL_TYPE_Q5_K = 13,
  CLL_TYPE_Q6_K = 14,
  CLL_TYPE_Q8_K = 15,
  CLL_TYPE_BF16 = 30,
  CLL_TYPE_COUNT = 40, /* table size; ids above are the ones we know */
};

struct cll_type_info {
  const char *name;       /* "Q4_0", "F16", ... as GGUF tools print them */
  uint32_t block_elems;   /* elements per block (1 for F32/F16/BF16) */
  uint32_t block_bytes;   /* bytes per block */
  enum cll_type act_type; /* what activations are quantized to for vec_dot
                             (Q8_0, Q8_K, or F32 / F16 for float weights) */
};

/* Info for a type id, or NULL when cllama cannot compute with it
 * (borrowed, static). */
const struct cll_type_info *cll_type_info(uint32_t type);
/* Bytes of one row of n elements, or 0 when n is not a multiple of the
 * block size or the type is unknown. */
size_t cll_row_bytes(uint32_t type, int64_t n);

/* Per-ISA kernel table. A NULL entry means "not provided by this ISA":
 * dispatch.c fills it from the reference table, so a table returned by
 * cll_kernels() has every supported type filled. */
struct cll_matmul_args;

typedef struct cll_kernels {
  const char *isa; /* "ref", "avx2", "avx512", "neon" */
  /* dst[0..n) = the n weights of one row. */
  void (*dequant_row[CLL_TYPE_COUNT])(const void *src, float *dst, int64_t n);
  /* Quantizes n floats into row format (used for activations and by the
   * quantizer). For the types that have no quantizer, NULL. */
  void (*quantize_row[CLL_TYPE_COUNT])(const float *src, void *dst, int64_t n);
  /* *out = dot(weight row w of type T, activation row a already in
   * info(T)->act_type format), n elements. */
  void (*vec_dot[CLL_TYPE_COUNT])(int64_t n, const void *w, const void *a, float *out);
  /* Load-time repacking, NULL where this ISA has none for the type. A
   * matrix's rows are grouped in panels of CLL_PACK_ROWS (a trailing
   * partial panel is not packed: cll_matmul reads those rows in place).
   * pack_bytes: bytes of the packed form of the full panels of an
   * n_rows x n_in matrix. pack: writes panels [p0, p1) of the matrix whose
   * rows are w, w + w_stride, ... into dst (the start of the packed form),
   * so threads can share the work. */
  size_t (*pack_bytes[CLL_TYPE_COUNT])(int64_t n_in, int64_t n_rows);
  void (*pack[CLL_TYPE_COUNT])(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                               void *dst);
  /* Y for the rows of panels [p0, p1) of a->wp and every token (a->xq
   * prepared as for vec_dot); needs no scratch, but may use a->scratch
   * (a->scratch_bytes of it, float-aligned at least) where there is one, so
   * threads must not share one: Q5_K and Q6_K on avx512 unpack a panel
   * there once per chunk of many tokens (when it holds the type's
   * gemm_scratch_bytes), BF16 rounds the activations into it. Set with
   * pack. For BF16
   * weights it may round the float activations to bf16 (nearest even),
   * as llama.cpp does: ref_matmul.c's twin does. */
  void (*matmul_packed[CLL_TYPE_COUNT])(const struct cll_matmul_args *a, int64_t p0, int64_t p1);

  /* The other optional kernels of cll_matmul's paths (matmul.c), NULL
   * where this ISA has none; like pack, never filled from the reference.
   * Each has a scalar twin in ref_matmul.c (cll__kernels_generic, packed
   * layouts included) that test_matmul compares it with.
   *
   * Decode, CLL_DOT_ROWS weight rows at once (they share the activation
   * work): out[j] = dot(row w + j * w_stride, a) for j < CLL_DOT_ROWS. */
  void (*vec_dot_rows[CLL_TYPE_COUNT])(int64_t n, const void *w, size_t w_stride, const void *a,
                                       float *out);
  /* Prefill: int8 GEMM of rows [a->r0, a->r1), read in place, times every
   * token of a->xq, from gemm_min_tok[T] tokens on; needs
   * gemm_scratch_bytes[T](n_in) bytes of a->scratch for its panels. */
  void (*gemm[CLL_TYPE_COUNT])(const struct cll_matmul_args *a);
  size_t (*gemm_scratch_bytes[CLL_TYPE_COUNT])(int64_t n_in);
  uint8_t gemm_min_tok[CLL_TYPE_COUNT];
  /* Few tokens (few_min_tok[T]..few_max_tok[T]) of float activations
   * (a->x) against rows [a->r0, a->r1) in place; needs no scratch. */
  void (*matmul_few[CLL_TYPE_COUNT])(const struct cll_matmul_args *a);
  uint8_t few_min_tok[CLL_TYPE_COUNT], few_max_tok[CLL_TYPE_COUNT];
} cll_kernels;

/* Rows per vec_dot_rows call. */
#define CLL_DOT_ROWS 4

/* Rows per panel of a packed weight matrix. */
#define CLL_PACK_ROWS 16

/* What the kernels are told at start-up (the environment is read by
 * src/api/config.c, never here). Zero/NULL fields mean the default. */
typedef struct cll_kernels_config {
  const char *isa;    /* CLLAMA_KERNELS: "ref", "avx2", "avx512", "neon";
                         NULL or "" = the best table this CPU has;
                         "avx2-novnni": the avx2 table without its
                         AVX-VNNI kernels (benchmarks); "avx512-noamx":
                         the avx512 table without its AMX tiles;
                         "neon-nodot": the neon table without SDOT */
  bool no_repack;     /* CLLAMA_REPACK=false: compute on weights in place */
  int gemm_min_tok;   /* benchmarks: tokens from which BLIS takes over */
  int int8_min_tok;   /* benchmarks: tokens from which the int8 GEMM runs */
  int gemm_tile_rows; /* benchmarks: rows dequantized per BLIS call */
} cll_kernels_config;

/* One-time set-up, from the main thread before any other thread starts:
 * chooses the kernel table (a named table the build or the CPU lacks is
 * an error, not a fallback), sets BLIS's configuration for this CPU
 * (BLIS_ARCH_TYPE, unless the user set it) and initialises BLIS. Returns 0,
 * CLL_EINVAL for an unknown table name, CLL_EUNSUPPORTED for one this CPU
 * cannot run, or CLL_EBUSY when the kernels were already set up (err says
 * which). cfg may be NULL (defaults). Without this call the first use
 * sets up the defaults, leaving the environment alone. */
int cll_kernels_init(const cll_kernels_config *cfg, cll_err *err);
/* Whether the model loader should repack weights for the chosen table. */
bool cll_kernels_repack(void);
/* The names of the tables this build and CPU can run, best last, space
 * separated (for messages). Borrowed, static. */
const char *cll_kernels_available(void);

/* The table for this CPU (chosen once; thread-safe). Borrowed, static. */
const cll_kernels *cll_kernels_get(void);
/* A specific table by ISA name, or NULL when this CPU/build lacks it
 * (tests compare every available table against "ref"). Tests may also
 * name "avx512-nobf16": the avx512 table without the kernels that need
 * AVX512_BF16 (what a CPU without that extension runs),
 * "avx512-noamx": the avx512 table without its AMX tile products (the
 * avx512 table itself where the CPU has no AMX), "avx2-novnni": the avx2
 * table without its AVX-VNNI kernels, and "neon-nodot". */
const cll_kernels *cll_kernels_by_name(const char *isa);
/* Whether table k runs some of its packed products on AMX tiles (the
 * avx512 table on a CPU with AMX; dispatch.c). */
bool cll_kernels_uses_amx(const cll_kernels *k);

/* fp16/bf16 <-> fp32 scalar conversions (exact, round-to-nearest-even). */
float cll_fp16_to_fp32(uint16_t h);
uint16_t cll_fp32_to_fp16(float f);
float cll_bf16_to_fp32(uint16_t h);
uint16_t cll_fp32_to_bf16(float f);

/* ---- matrix products (matmul.c)
 *
 * Y[t][r] = sum_k W[r][k] * X[t][k]   for r in [r0, r1), t in [0, n_tok)
 *
 * W: rows of wtype, n_in elements each, w_stride bytes apart (a GGUF matrix
 * with ne = [n_in, n_out]). X: n_tok rows of n_in floats, x_stride floats
 * apart. xq: the same X already quantized to info(wtype)->act_type with
 * cll_matmul_prepare (shared by every thread's slice, so it is done once).
 * Y: y_stride floats between token rows; columns r0..r1 are written.
 * scratch: at least cll_matmul_scratch_bytes(...) bytes, private to the
 * calling thread. The engine's threads each call this on their own slice of
 * rows; the function itself is single-threaded. */
typedef struct cll_matmul_args {
  uint32_t wtype;
  const void *w;
  size_t w_stride;
  /* Optional: the same matrix packed by k->pack[wtype] (rows 0..wp_rows,
   * a multiple of CLL_PACK_ROWS), or NULL. Rows in whole panels are read
   * from it; the others from w. */
  const void *wp;
  int64_t wp_rows;
  int64_t n_in;
  int64_t r0, r1;
  const float *x;
  int64_t x_stride;
  const void *xq;
  size_t xq_stride;
  int64_t n_tok;
  float *y;
  int64_t y_stride;
  void *scratch;
  size_t scratch_bytes;
} cll_matmul_args;

/* Bytes of per-thread scratch cll_matmul needs for up to max_tok tokens and
 * rows of n_in elements. */
size_t cll_matmul_scratch_bytes(int64_t n_in, int64_t max_tok);
/* Bytes of the xq buffer for n_tok rows (0 when wtype needs none). */
size_t cll_matmul_xq_bytes(uint32_t wtype, int64_t n_in, int64_t n_tok, size_t *xq_stride);
/* Quantizes token rows [t0, t1) of X into xq (threads may split tokens). */
void cll_matmul_prepare(const cll_kernels *k, uint32_t wtype, const float *x, int64_t x_stride,
                        int64_t n_in, int64_t t0, int64_t t1, void *xq, size_t xq_stride);
void cll_matmul(const cll_kernels *k, const cll_matmul_args *a);

#endif
