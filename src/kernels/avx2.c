/* avx2.c — the AVX2 (+FMA, F16C) kernel table.
 *
 * The kernel bodies live in x86.h, shared with avx512.c; this file is
 * compiled with -mavx2 -mfma -mf16c (see the Makefile) and exports the
 * table. Entries left NULL are filled from the reference table by
 * dispatch.c. */
#if defined(__x86_64__)

#include "kernels/x86.h"

static void dot_f16_f32(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; k++)
      acc[k] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i + 8 * k))),
                               _mm256_loadu_ps(y + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8)
    acc[0] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))),
                             _mm256_loadu_ps(y + i), acc[0]);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; i++)
    s += h2f(x[i]) * y[i];
  *out = s;
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
  for (; i < n; i++)
    dst[i] = h2f(x[i]);
}

/* BF16 is the top half of an fp32: widen and shift. */
static inline __m256 bf16x8_ps(const uint16_t *p) {
  return _mm256_castsi256_ps(
      _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static void dot_bf16_f32(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; k++)
      acc[k] = _mm256_fmadd_ps(bf16x8_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8)
    acc[0] = _mm256_fmadd_ps(bf16x8_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; i++)
    s += cll__bf16_to_fp32(x[i]) * y[i];
  *out = s;
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, bf16x8_ps(x + i));
  for (; i < n; i++)
    dst[i] = cll__bf16_to_fp32(x[i]);
}

const cll_kernels cll__kernels_avx2 = {
    .isa = "avx2",
    .dequant_row = {CLL__X86_DEQUANT, [CLL_TYPE_F16] = dequant_f16, [CLL_TYPE_BF16] = dequant_bf16},
    .quantize_row = {CLL__X86_QUANTIZE},
    .vec_dot = {CLL__X86_VEC_DOT, [CLL_TYPE_F16] = dot_f16_f32, [CLL_TYPE_BF16] = dot_bf16_f32},
};

#else
typedef int cll__avx2_unused; /* ISO C: a translation unit is not empty */
#endif
