/* matmul.c — Y = X W^T over a slice of W's rows, the one BLIS bridge.
 *
 * DESIGN. Three paths, chosen per call by the weight type, the kernel
 * table and the number of tokens (thresholds measured with bench/kernels
 * and noted at their definitions):
 *  - fused dequant-dot (any type, few tokens: decode). The activations
 *    were quantized once by cll_matmul_prepare into the weight type's
 *    activation format (xq, shared by all threads); for each weight row the
 *    vec_dot kernel runs over every token while the row is still in L1, so
 *    the weights stream from memory once per call. Needs no scratch.
 *    Where the table has vec_dot_rows for the type, CLL_DOT_ROWS rows
 *    share each call.
 *  - int8 GEMM (the table's gemm slot: on avx512, Q4_0/Q8_0/Q4_K/Q6_K from
 *    gemm_min_tok tokens): the kernel repacks 16 rows at a time into the
 *    scratch and multiplies them with every token on VNNI (3-4x the BLIS
 *    path at prefill sizes).
 *  - few-token kernels (the table's matmul_few slot, e.g. F16 rows against
 *    a GQA group's queries).
 *  - packed weights (pack / matmul_packed slots), repacked once at load.
 *  - BLIS (other types, many tokens: prefill): W's rows are dequantized,
 *    tile_rows at a time, into the caller's scratch as f32 and multiplied
 *    by sgemm, single-threaded (the engine's own threads each call us on
 *    their slice).
 *
 * THE BLIS TRAP. Debian's BLIS 0.9 does not recognise recent CPUs (Zen 4/5
 * among them) and silently falls back to its generic C kernels, about 15%
 * of peak. BLIS reads the configuration to use from the environment
 * variable BLIS_ARCH_TYPE, as a number (an arch_t value of BLIS 0.9:
 * BLIS_ARCH_SKX = 0, BLIS_ARCH_HASWELL = 3, BLIS_ARCH_ZEN3 = 6; a name such
 * as "zen3" parses as 0), once, at its initialisation. cll_kernels_init
 * (main thread, before any other) therefore sets it from CPUID
 * (dispatch.c) before the first BLIS call, unless the user set it. skx is the fastest configuration
 * for the prefill shapes here (bench/blis). The internal symbol for the chosen configuration lets
 * the benchmarks print what BLIS really runs. */
#include "cllama/kernels.h"
#include "kernels/matmul_internal.h"
#include "kernels/simd.h"

#include <blis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows of W dequantized per sgemm call: 128 x n_in floats (1 MiB at
 * n_in = 2048) stays in L2/L3 while BLIS packs it, and the activations are
 * re-packed once per tile, so larger tiles amortise that. */
#define TILE_ROWS_DEFAULT 128
/* At or above this many tokens the BLIS path beats the fused dot path
 * (measured on Zen 5, one thread, cll_matmul on 1024..5632 x 2048): for
 * float weights from about 32 tokens; for the K-quants, whose fused dots
 * are fast, only from about 200. Q4_0/Q8_0 use the int8 GEMM instead. */
#define GEMM_MIN_TOK_DEFAULT 32
#define GEMM_MIN_TOK_QUANT_FACTOR 6

static pthread_once_t blis_once = PTHREAD_ONCE_INIT;
static int gemm_min_tok = GEMM_MIN_TOK_DEFAULT;
static int64_t tile_rows = TILE_ROWS_DEFAULT;
/* 0: each table's gemm_min_tok (measured with bench/kernels, like
 * GEMM_MIN_TOK); > 0: this many tokens for every type (benchmarks). */
static int int8_min_tok;
/* Benchmarks only (cll__matmul_force_path): 0 = choose by size. */
static int forced_path;
static char blis_arch_name[32] = "none";

static void blis_init(void) {
  bli_init();
  snprintf(blis_arch_name, sizeof blis_arch_name, "%s", bli_arch_string(bli_arch_query_id()));
}

static bool no_repack;

int cll_kernels_init(const cll_kernels_config *cfg, cll_err *err) {
  static bool done;
  if (done)
    return cll_err_set(err, CLL_EBUSY, "the kernels are already set up");
  const cll_kernels_config none = {0};
  if (cfg == NULL)
    cfg = &none;
  int rc = cll__kernels_select(cfg->isa, err);
  if (rc != 0)
    return rc;
  done = true;
  no_repack = cfg->no_repack;
  if (cfg->gemm_min_tok > 0)
    gemm_min_tok = cfg->gemm_min_tok;
  if (cfg->int8_min_tok > 0)
    int8_min_tok = cfg->int8_min_tok;
  if (cfg->gemm_tile_rows > 0)
    tile_rows = cfg->gemm_tile_rows;
  const char *arch = cll__kernels_blis_arch_type();
  if (arch != NULL)
    setenv("BLIS_ARCH_TYPE", arch, 0); /* 0: the user's value wins */
  pthread_once(&blis_once, blis_init);
  return 0;
}

bool cll_kernels_repack(void) {
  return !no_repack;
}

const char *cll__matmul_blis_arch(void) {
  pthread_once(&blis_once, blis_init);
  return blis_arch_name;
}

int cll__matmul_gemm_min_tok(void) {
  pthread_once(&blis_once, blis_init);
  return gemm_min_tok;
}

/* Bits 1 << path of the calling thread's last cll_matmul (tests). */
static _Thread_local unsigned paths_ran;

unsigned cll__matmul_paths_ran(void) {
  return paths_ran;
}

void cll__matmul_force_path(int path) {
  pthread_once(&blis_once, blis_init);
  forced_path = path;
}

static size_t blis_scratch_bytes(int64_t n_in) {
  return (size_t)tile_rows * (size_t)n_in * sizeof(float);
}

size_t cll_matmul_scratch_bytes(int64_t n_in, int64_t max_tok) {
  pthread_once(&blis_once, blis_init);
  size_t need = 0;
  if (max_tok >= gemm_min_tok || forced_path)
    need = blis_scratch_bytes(n_in);
  /* The int8 GEMMs' panels depend on the row length only; every table's
   * (a caller may use any). */
  if (max_tok >= 2 || forced_path) {
    const size_t i8 = cll__kernels_gemm_scratch_max(n_in);
    if (i8 > need)
      need = i8;
  }
  return need;
}

size_t cll_matmul_xq_bytes(uint32_t wtype, int64_t n_in, int64_t n_tok, size_t *xq_stride) {
  const struct cll_type_info *ti = cll_type_info(wtype);
  size_t row = 0;
  if (ti != NULL && ti->act_type != CLL_TYPE_F32)
    row = cll_row_bytes(ti->act_type, n_in);
  /* Q8_0 rows carry their per-block scales and sums (simd.h). */
  if (ti != NULL && ti->act_type == CLL_TYPE_Q8_0 && row > 0)
    row = cll__q8_sums_offset(n_in / CLL_QK8_0) +
          (size_t)(n_in / CLL_QK8_0) * sizeof(struct cll__q8_sum);
  /* Keep rows 64-byte aligned so each token's blocks start on a cache line. */
  row = (row + 63) & ~(size_t)63;
  if (xq_stride != NULL)
    *xq_stride = row;
  return row * (size_t)(n_tok > 0 ? n_tok : 0);
}

void cll_matmul_prepare(const cll_kernels *k, uint32_t wtype, const float *x, int64_t x_stride,
                        int64_t n_in, int64_t t0, int64_t t1, void *xq, size_t xq_stride) {
  const struct cll_type_info *ti = cll_type_info(wtype);
  if (ti == NULL || ti->act_type == CLL_TYPE_F32)
    return;
  void (*quantize)(const float *, void *, int64_t) = k->quantize_row[ti->act_type];
  for (int64_t t = t0; t < t1; t++) {
    char *row = (char *)xq + (size_t)t * xq_stride;
    quantize(x + t * x_stride, row, n_in);
    if (ti->act_type == CLL_TYPE_Q8_0)
      cll__q8_fill_sums(row, n_in / CLL_QK8_0);
  }
}

/* Few tokens: each weight row is read once and dotted with every token. */
static void matmul_dot(const cll_kernels *k, const cll_matmul_args *a) {
  const struct cll_type_info *ti = cll_type_info(a->wtype);
  void (*dot)(int64_t, const void *, const void *, float *) = k->vec_dot[a->wtype];
  const bool float_act = ti->act_type == CLL_TYPE_F32;
  const char *act = float_act ? (const char *)a->x : (const char *)a->xq;
  const size_t act_stride = float_act ? (size_t)a->x_stride * sizeof(float) : a->xq_stride;
  const char *w = (const char *)a->w + (size_t)a->r0 * a->w_stride;
  int64_t r = a->r0;
  /* Where the table has it, CLL_DOT_ROWS rows per call share the
   * activation work (bench/kernels, cll_matmul n_tok=1). */
  if (k->vec_dot_rows[a->wtype] != NULL) {
    float o[CLL_DOT_ROWS];
    for (; r + CLL_DOT_ROWS <= a->r1; r += CLL_DOT_ROWS, w += CLL_DOT_ROWS * a->w_stride)
      for (int64_t t = 0; t < a->n_tok; t++) {
        k->vec_dot_rows[a->wtype](a->n_in, w, a->w_stride, act + (size_t)t * act_stride, o);
        for (int j = 0; j < CLL_DOT_ROWS; j++)
          a->y[t * a->y_stride + r + j] = o[j];
      }
  }
  for (; r < a->r1; r++, w += a->w_stride)
    for (int64_t t = 0; t < a->n_tok; t++)
      dot(a->n_in, w, act + (size_t)t * act_stride, a->y + t * a->y_stride + r);
}

/* Many tokens: dequantized tiles of W times X through BLIS. For a tile of
 * nr rows starting at r the product is computed transposed,
 * C = Y[:, r..r+nr)^T (nr x n_tok: element (j, t) at y[t * y_stride + r + j])
 * = tile (nr x n_in, row-major) times X^T (n_in x n_tok: element (k, t) at
 * x[t * x_stride + k]), so that BLIS's register tile (32 x 12 for skx) is
 * filled by weight rows even when there are few tokens. */
static void matmul_gemm(const cll_kernels *k, const cll_matmul_args *a) {
  void (*dequant)(const void *, float *, int64_t) = k->dequant_row[a->wtype];
  float *tile = a->scratch;
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(1, &rntm);
  float one = 1.0f, zero = 0.0f;
  for (int64_t r = a->r0; r < a->r1; r += tile_rows) {
    const int64_t nr = a->r1 - r < tile_rows ? a->r1 - r : tile_rows;
    const char *w = (const char *)a->w + (size_t)r * a->w_stride;
    for (int64_t j = 0; j < nr; j++, w += a->w_stride)
      dequant(w, tile + j * a->n_in, a->n_in);
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, nr, a->n_tok, a->n_in, &one, tile, a->n_in,
                 1, (float *)a->x, 1, a->x_stride, &zero, a->y + r, 1, a->y_stride, NULL, &rntm);
  }
}

/* Which path a call takes: 1 fused dot, 2 BLIS, 3 int8 GEMM, 4 the
 * few-token kernel. */
static int choose_path(const cll_kernels *k, const cll_matmul_args *a) {
  const bool have_scratch = a->scratch != NULL;
  const bool int8_ok = k->gemm[a->wtype] != NULL && have_scratch &&
                       a->scratch_bytes >= k->gemm_scratch_bytes[a->wtype](a->n_in);
  const bool blis_ok = have_scratch && a->scratch_bytes >= blis_scratch_bytes(a->n_in) &&
                       k->dequant_row[a->wtype] != NULL;
  if (forced_path == 3 && int8_ok)
    return 3;
  if (forced_path == 2 && blis_ok)
    return 2;
  if (forced_path != 0)
    return 1;
  const int64_t i8_min = int8_min_tok > 0 ? int8_min_tok : k->gemm_min_tok[a->wtype];
  if (int8_ok && a->n_tok >= i8_min)
    return 3;
  if (k->matmul_few[a->wtype] != NULL && a->n_tok >= k->few_min_tok[a->wtype] &&
      a->n_tok <= k->few_max_tok[a->wtype])
    return 4;
  const struct cll_type_info *ti = cll_type_info(a->wtype);
  const int64_t min_tok = ti != NULL && ti->block_elems > 1
                              ? (int64_t)gemm_min_tok * GEMM_MIN_TOK_QUANT_FACTOR
                              : gemm_min_tok;
  /* F32 weights (small reference models) always take the fused dot path,
   * whose reference kernel accumulates in double: their logits then do not
   * depend on how many tokens share a batch, which the engine's tests
   * check to 1e-5 (BLIS's float sums differ by ~6e-5 there). */
  if (blis_ok && a->n_tok >= min_tok && a->wtype != CLL_TYPE_F32)
    return 2;
  return 1;
}

/* Rows [r0, r1) of a, read in place (wp ignored). */
static void matmul_rows(const cll_kernels *k, const cll_matmul_args *a, int64_t r0, int64_t r1);

void cll_matmul(const cll_kernels *k, const cll_matmul_args *a) {
  pthread_once(&blis_once, blis_init);
  paths_ran = 0;
  if (a->r1 <= a->r0 || a->n_tok <= 0)
    return;
  /* Packed weights: whole panels from wp, the rows before the first and
   * after the last whole panel of [r0, r1) in place. */
  if (a->wp != NULL && k->matmul_packed[a->wtype] != NULL && forced_path == 0) {
    const int64_t lo = (a->r0 + CLL_PACK_ROWS - 1) / CLL_PACK_ROWS * CLL_PACK_ROWS;
    const int64_t hi = (a->r1 < a->wp_rows ? a->r1 : a->wp_rows) / CLL_PACK_ROWS * CLL_PACK_ROWS;
    if (lo < hi) {
      matmul_rows(k, a, a->r0, lo);
      k->matmul_packed[a->wtype](a, lo / CLL_PACK_ROWS, hi / CLL_PACK_ROWS);
      paths_ran |= 1u << CLL__MATMUL_PACKED;
      matmul_rows(k, a, hi, a->r1);
      return;
    }
  }
  matmul_rows(k, a, a->r0, a->r1);
}

static void matmul_rows(const cll_kernels *k, const cll_matmul_args *all, int64_t r0, int64_t r1) {
  if (r1 <= r0)
    return;
  cll_matmul_args sub = *all, *a = &sub;
  sub.r0 = r0;
  sub.r1 = r1;
  const int path = choose_path(k, a);
  paths_ran |= 1u << path;
  switch (path) {
  case 4:
    k->matmul_few[a->wtype](a);
    break;
  case 3:
    k->gemm[a->wtype](a);
    break;
  case 2:
    matmul_gemm(k, a);
    break;
  default:
    matmul_dot(k, a);
    break;
  }
}
