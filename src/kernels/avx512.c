/* avx512.c — the AVX-512 (F/BW/VL/DQ + VNNI + BF16) kernel table.
 *
 * The quantized dot products are the x86.h bodies compiled here with VNNI,
 * so their int8 products go through vpdpbusd on 256-bit registers (the
 * quant blocks are 18..210 bytes, not a multiple of 64, and at decode the
 * kernels are memory-bound, so wider registers would add shuffles without
 * adding speed). Float formats use 512-bit registers. */
#if defined(__x86_64__)

#include "kernels/x86.h"

static inline float hsum512_ps(__m512 v) {
  return _mm512_reduce_add_ps(v);
}

static void dot_f16_f32_512(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int k = 0; k < 4; k++)
      acc[k] = _mm512_fmadd_ps(
          _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16 * k))),
          _mm512_loadu_ps(y + i + 16 * k), acc[k]);
  for (; i + 16 <= n; i += 16)
    acc[0] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))),
                             _mm512_loadu_ps(y + i), acc[0]);
  float s = hsum512_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
  for (; i < n; i++)
    s += h2f(x[i]) * y[i];
  *out = s;
}

static void dequant_f16_512(const void *src, float *dst, int64_t n) {
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i))));
  for (; i < n; i++)
    dst[i] = h2f(x[i]);
}

const cll_kernels cll__kernels_avx512 = {
    .isa = "avx512",
    .dequant_row = {CLL__X86_DEQUANT, [CLL_TYPE_F16] = dequant_f16_512},
    .quantize_row = {CLL__X86_QUANTIZE},
    .vec_dot = {CLL__X86_VEC_DOT, [CLL_TYPE_F16] = dot_f16_f32_512},
};

#else
typedef int cll__avx512_unused; /* ISO C: a translation unit is not empty */
#endif
