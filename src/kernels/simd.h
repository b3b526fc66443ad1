/* simd.h — what the x86 SIMD kernel files (avx2.c, avx512.c) share, and
 * the int8 GEMM kernels of avx512.c that matmul.c calls directly (they
 * are not vec_dot-shaped, so they are not in the cll_kernels table).
 * Short names for the GGUF block layouts of quant.h. The tables
 * themselves (cll__kernels_avx2, cll__kernels_avx512) are declared in
 * quant.h next to the reference table. Kernels here never allocate or
 * fail; any thread may call them. */
#ifndef CLLAMA_KERNELS_SIMD_H
#define CLLAMA_KERNELS_SIMD_H

#include "kernels/quant.h"

#define SB_QK CLL_QK8_0   /* elements per Q4_0 / Q8_0 block */
#define SB_QK_K CLL_QK_K  /* elements per K-quant super-block */

typedef cll_block_q4_0 sb_q4_0;
typedef cll_block_q8_0 sb_q8_0;
typedef cll_block_q4_K sb_q4_K;
typedef cll_block_q5_K sb_q5_K;
typedef cll_block_q6_K sb_q6_K;
typedef cll_block_q8_K sb_q8_K;

#define sb_scale_min_k4 cll__scale_min_k4

/* Every Q8_0 activation row written by cll_matmul_prepare carries, after
 * its blocks (cll__q8_sums_offset(nb) bytes from the row's start), one
 * cll__q8_sum per block: the block's scale as a float and the sum of its
 * 32 quants, which the int8 kernels need to remove the unsigned offset
 * they give the weights. Computed once per token, not per thread. */
struct cll__q8_sum {
  float d;
  int32_t s;
};
static inline size_t cll__q8_sums_offset(int64_t nb) {
  return ((size_t)nb * sizeof(sb_q8_0) + 63) & ~(size_t)63;
}
static inline const struct cll__q8_sum *cll__q8_sums(const void *xq_row, int64_t nb) {
  return (const struct cll__q8_sum *)((const char *)xq_row + cll__q8_sums_offset(nb));
}

#if defined(__x86_64__)
/* avx512.c: int8 GEMM for prefill, Q4_0 or Q8_0 weights (a->wtype) times
 * Q8_0 activations (a->xq), rows [a->r0, a->r1) for all a->n_tok tokens.
 * Needs a->scratch of cll__gemm_q8_0_scratch_bytes_avx512(n_in) bytes;
 * only for CPUs with AVX-512 VNNI (the avx512 table). */
void cll__gemm_q8_0_avx512(const cll_matmul_args *a);
size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in);
/* The same for Q4_K weights times Q8_K activations. */
void cll__gemm_q4_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in);
/* And for Q6_K weights times Q8_K activations. */
void cll__gemm_q6_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in);
/* avx512.c: Q4_0 matrices repacked at load (the avx512 table's pack,
 * pack_bytes and matmul_packed entries for Q4_0). */
size_t cll__pack_bytes_q4_0_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_q4_0_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_q4_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);
/* avx512.c: F16 weights times 2..16 float token rows (a->x), any n_in;
 * needs no scratch. */
void cll__matmul_f16_small_avx512(const cll_matmul_args *a);
/* avx512.c: decode dot of four Q4_0 rows, w + r * w_stride for r < 4,
 * with one Q8_0 activation row a of n elements: out[0..4). */
void cll__dot4_q4_0_avx512(int64_t n, const void *w, size_t w_stride, const void *a, float *out);
#endif

#endif
