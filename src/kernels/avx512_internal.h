/* avx512_internal.h — the kernels of avx512_packed.c that the avx512
 * table (avx512.c) lists: Q8_0, Q4_K and Q5_K matrices repacked at load (pack,
 * pack_bytes and matmul_packed slots; layouts in avx512_packed.c and,
 * scalar, in ref_matmul.c). Only for files built with the avx512 flags. */
#ifndef CLLAMA_KERNELS_AVX512_INTERNAL_H
#define CLLAMA_KERNELS_AVX512_INTERNAL_H

#include "kernels/simd.h"

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

#endif
