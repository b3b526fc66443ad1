/* avx512_internal.h — what the AVX-512 kernel files tell each other. The
 * avx512 table lives in avx512.c (float formats, few-token F16, Q4_0 /
 * Q8_0 dots); it lists the int8 GEMMs of avx512_gemm.c (prefill, packed
 * per call: Q4_0/Q8_0, Q4_K, Q6_K) and the kernels of avx512_packed.c
 * (the matmul_packed slots of Q4_0, Q8_0, Q4_K, Q5_K and Q6_K matrices
 * repacked at load by pack.c; layouts there and, scalar, in ref_matmul.c)
 * and of avx512_half.c (F16 and BF16 matrices repacked at load).
 * Also the small helpers those files share. Only for files built with
 * the avx512 flags. */
#ifndef CLLAMA_KERNELS_AVX512_INTERNAL_H
#define CLLAMA_KERNELS_AVX512_INTERNAL_H

#include "kernels/packed.h"
#include "kernels/x86_inline.h"

/* avx512_gemm.c */
size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q8_0_avx512(const cll_matmul_args *a); /* Q4_0 and Q8_0 weights */
size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q4_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q6_K_avx512(const cll_matmul_args *a);

/* avx512_packed.c */
void cll__matmul_q4_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

void cll__matmul_q8_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

void cll__matmul_q4_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

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

/* ---------------------------------------------------------------- shared helpers
 * (TOK_CHUNK, ld32, FOR_TILES, SWITCH_TILES*: packed.h) */

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
