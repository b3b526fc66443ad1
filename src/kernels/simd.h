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

#if defined(__x86_64__)
/* avx512.c: int8 GEMM for prefill, Q4_0 or Q8_0 weights (a->wtype) times
 * Q8_0 activations (a->xq), rows [a->r0, a->r1) for all a->n_tok tokens.
 * Needs a->scratch of cll__gemm_q8_0_scratch_bytes_avx512(n_in, n_tok)
 * bytes; only for CPUs with AVX-512 VNNI (the avx512 table). */
void cll__gemm_q8_0_avx512(const cll_matmul_args *a);
size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in, int64_t n_tok);
/* The same for Q4_K weights times Q8_K activations. */
void cll__gemm_q4_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in);
/* And for Q6_K weights times Q8_K activations. */
void cll__gemm_q6_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in);
/* avx512.c: decode dot of four Q4_0 rows, w + r * w_stride for r < 4,
 * with one Q8_0 activation row a of n elements: out[0..4). */
void cll__dot4_q4_0_avx512(int64_t n, const void *w, size_t w_stride, const void *a, float *out);
#endif

#endif
