/* simd.h — what the x86 SIMD kernel files (avx2.c, avx512.c) share:
 * short names for the GGUF block layouts of quant.h. The tables
 * themselves (cll__kernels_avx2, cll__kernels_avx512) are declared in
 * quant.h next to the reference table. Kernels here never allocate or
 * fail; any thread may call them. */
#ifndef CLLAMA_KERNELS_SIMD_H
#define CLLAMA_KERNELS_SIMD_H

#include "kernels/quant.h"

#define SB_QK CLL_QK8_0  /* elements per Q4_0 / Q8_0 block */
#define SB_QK_K CLL_QK_K /* elements per K-quant super-block */

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
 * 32 quants (also times -8 and -128), which the int8 kernels need to
 * remove the unsigned offset they give the weights. Computed once per token, not per thread. */
struct cll__q8_sum {
  float d;
  int32_t s;
  /* -8 s and -128 s: the offset terms of 4-bit (0..15, offset 8) and
   * 8-bit (q + 128) unsigned weights, ready for a broadcast from memory
   * (a load) instead of a multiply and a move from a general register
   * into a vector one per block and token, which sat on the vector
   * ports the int8 tiles are bound by. */
  int32_t o4, o8;
};
static inline size_t cll__q8_sums_offset(int64_t nb) {
  return ((size_t)nb * sizeof(sb_q8_0) + 63) & ~(size_t)63;
}
static inline const struct cll__q8_sum *cll__q8_sums(const void *xq_row, int64_t nb) {
  return (const struct cll__q8_sum *)((const char *)xq_row + cll__q8_sums_offset(nb));
}
/* Writes the sums of the Q8_0 row xq_row (nb blocks) after its blocks. */
static inline void cll__q8_fill_sums(void *xq_row, int64_t nb) {
  const cll_block_q8_0 *b = (const cll_block_q8_0 *)xq_row;
  struct cll__q8_sum *sum = (struct cll__q8_sum *)((char *)xq_row + cll__q8_sums_offset(nb));
  for (int64_t i = 0; i < nb; i++) {
    int32_t acc = 0;
    for (int j = 0; j < CLL_QK8_0; j++)
      acc += b[i].qs[j];
    sum[i] = (struct cll__q8_sum){cll__fp16_to_fp32(b[i].d), acc, -8 * acc, -128 * acc};
  }
}

#endif
