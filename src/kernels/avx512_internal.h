/* avx512_internal.h — what the AVX-512 kernel files tell each other. The
 * avx512 table lives in avx512.c (float formats, few-token F16, Q4_0 /
 * Q8_0 dots); it lists the int8 GEMMs of avx512_gemm.c (prefill, packed
 * per call: Q4_0/Q8_0, Q4_K, Q6_K) and the kernels of avx512_packed.c
 * (Q4_0, Q8_0, Q4_K, Q5_K and Q6_K matrices repacked at load: pack, pack_bytes
 * and matmul_packed slots; layouts there and, scalar, in ref_matmul.c)
 * and of avx512_half.c (F16 and BF16 matrices repacked at load).
 * Also the small helpers those files share. Only for files built with
 * the avx512 flags. */
#ifndef CLLAMA_KERNELS_AVX512_INTERNAL_H
#define CLLAMA_KERNELS_AVX512_INTERNAL_H

#include "kernels/x86_inline.h"

/* avx512_gemm.c */
size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q8_0_avx512(const cll_matmul_args *a); /* Q4_0 and Q8_0 weights */
size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q4_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q6_K_avx512(const cll_matmul_args *a);

/* avx512_packed.c */
size_t cll__pack_bytes_q4_0_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_q4_0_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_q4_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

size_t cll__pack_bytes_q8_0_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_q8_0_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_q8_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

size_t cll__pack_bytes_q4_K_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_q4_K_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_q4_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

size_t cll__pack_bytes_q5_K_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_q5_K_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_q5_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

/* The Q4_K GEMM's panel, per super-block: the quants (0..15; Q5_K's
 * 0..31 fit too) of 16 rows, 8 sub-blocks s of 8 vectors (dword j of
 * vector (s, g) = elements 32s + 4g .. 32s + 4g + 3 of row j), then each
 * row's scale of sub-block s as an int32 (sc[s * 16 + j]), its min twice
 * as an int16 pair (mn[s * 16 + j]), and d, dmin as 16 floats each. The
 * packed Q4_K and Q5_K kernels unpack into it for many tokens and run the
 * GEMM's tiles on it: tokens [tc, te) times the panel of rows r..r + 15. */
#define K4_SB_BYTES (8 * 8 * 64 + 8 * 64 + 8 * 64 + 2 * 64)
void cll__gemm_q4_K_tiles_avx512(const cll_matmul_args *a, int64_t nb, const uint8_t *panel,
                                 int64_t tc, int64_t te, int64_t r);

/* The Q6_K GEMM's panel, per super-block: the 6-bit quants (0..63) of 16
 * rows, 8 groups G of 8 vectors (dword j of vector (G, g) = elements 32G
 * + 4g .. 32G + 4g + 3 of row j), then the 16 scales of each row as int32
 * (sc[s * 16 + j]), the scales as int16 pairs (sp[p * 16 + j] = scales 2p,
 * 2p + 1), and d as 16 floats. The packed Q6_K kernel unpacks into it for
 * many tokens and runs the GEMM's tiles on it: tokens [tc, te) times the
 * panel of rows r..r + 15. */
#define K6_SB_BYTES (8 * 8 * 64 + 16 * 64 + 8 * 64 + 64)
void cll__gemm_q6_K_tiles_avx512(const cll_matmul_args *a, int64_t nb, const uint8_t *panel,
                                 int64_t tc, int64_t te, int64_t r);

size_t cll__pack_bytes_q6_K_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_q6_K_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_q6_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

/* avx512_half.c (the BF16 kernels need AVX512_BF16: dispatch.c installs
 * them, from cll__kernels_avx512_bf16, only where CPUID has it) */
size_t cll__pack_bytes_f16_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_f16_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                          void *dst);
void cll__matmul_f16_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

size_t cll__pack_bytes_bf16_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_bf16_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_bf16_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

/* ---------------------------------------------------------------- shared helpers */

/* Tokens per chunk of the int8 kernels: a chunk's activations stay in L2
 * while the weight panels pass over them. */
#define TOK_CHUNK 64

static inline int32_t ld32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Tiles of at most max_t tokens over [tc, te), as even as possible (41
 * by 8: 7 7 7 7 7 6), so no tile is a lone token when several share. */
#define FOR_TILES(tc, te, max_t, t0, t1)                                                           \
  for (int64_t n_t_ = ((te) - (tc) + (max_t)-1) / (max_t), k_ = 0; k_ < n_t_; k_++)                \
    for (int64_t t0 = (tc) + ((te) - (tc)) * k_ / n_t_,                                            \
                 t1 = (tc) + ((te) - (tc)) * (k_ + 1) / n_t_, once_ = 1;                           \
         once_; once_ = 0)

/* switch (n) calling F(k, ...) for the tile size n, with k a constant, so
 * the always_inline tile functions get one unrolled copy per size:
 * SWITCH_TILES8 for n in 1..8, SWITCH_TILES7 1..7 (the remainder after
 * whole tiles of 8), SWITCH_TILES4 1..4, SWITCH_TILES3 1..3. */
#define TILE_CASE_(k, F, ...)                                                                      \
  case k:                                                                                          \
    F(k, __VA_ARGS__);                                                                             \
    break;
#define TILE_CASES_3_1_(F, ...)                                                                    \
  TILE_CASE_(3, F, __VA_ARGS__) TILE_CASE_(2, F, __VA_ARGS__) TILE_CASE_(1, F, __VA_ARGS__)
#define TILE_CASES_7_4_(F, ...)                                                                    \
  TILE_CASE_(7, F, __VA_ARGS__)                                                                    \
  TILE_CASE_(6, F, __VA_ARGS__) TILE_CASE_(5, F, __VA_ARGS__) TILE_CASE_(4, F, __VA_ARGS__)
#define SWITCH_TILES3(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }
#define SWITCH_TILES4(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASE_(4, F, __VA_ARGS__)                                                                  \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }
#define SWITCH_TILES7(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASES_7_4_(F, __VA_ARGS__)                                                                \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }
#define SWITCH_TILES8(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASE_(8, F, __VA_ARGS__)                                                                  \
    TILE_CASES_7_4_(F, __VA_ARGS__)                                                                \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }

/* The T token rows t0.. of a Q8_0 tile: zeroed accumulators, each token's
 * blocks and its per-block scales and sums (cll__q8_sums). */
static inline __attribute__((always_inline)) void
q8_tile_tokens(const int T, const cll_matmul_args *a, int64_t nb, int64_t t0, __m512 *acc,
               const sb_q8_0 **yrow, const struct cll__q8_sum **ysum) {
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_0 *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
    ysum[t] = cll__q8_sums(yrow[t], nb);
  }
}

#endif
