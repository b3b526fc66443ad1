/* avx2.c — the AVX2 (+FMA, F16C) kernel table.
 *
 * The in-place kernel bodies live in x86.h, shared with avx512.c; the
 * products with Q4_0, Q4_K, Q5_K and Q6_K (and, with AVX-VNNI, Q8_0)
 * matrices repacked at load (pack.c's panels, the avx512 table's
 * layouts) in x86_packed.h, shared with avx2_vnni.c. This file is
 * compiled with -mavx2 -mfma -mf16c (see the Makefile) and exports the
 * table. Entries left NULL are filled from the reference table by
 * dispatch.c.
 *
 * Why the packed slots: the in-place dots do one row at a time and ran
 * out of instructions before the memory bus was full (TinyLlama Q4_0
 * decode on 2 Zen 5 cores with this table: 32.9 tok/s, 38% of the
 * memory roofline, prefill 42.5 tok/s). */
#if defined(__x86_64__)

#include "kernels/x86.h"
#include "kernels/x86_packed.h"

/* 8 F16 (bf = 0) or BF16 (bf = 1) values at p as floats; BF16 is the
 * top half of an fp32: widen and shift. */
static inline __attribute__((always_inline)) __m256 half8_ps(const int bf, const uint16_t *p) {
  const __m128i h = _mm_loadu_si128((const __m128i *)p);
  if (bf)
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

static inline __attribute__((always_inline)) float half_f32(const int bf, uint16_t h) {
  return bf ? cll__bf16_to_fp32(h) : h2f(h);
}

static inline __attribute__((always_inline)) void dot_half(const int bf, int64_t n, const void *w,
                                                           const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; k++)
      acc[k] = _mm256_fmadd_ps(half8_ps(bf, x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8)
    acc[0] = _mm256_fmadd_ps(half8_ps(bf, x + i), _mm256_loadu_ps(y + i), acc[0]);
  float s = hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; i++)
    s += half_f32(bf, x[i]) * y[i];
  *out = s;
}

static inline __attribute__((always_inline)) void dequant_half(const int bf, const void *src,
                                                               float *dst, int64_t n) {
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, half8_ps(bf, x + i));
  for (; i < n; i++)
    dst[i] = half_f32(bf, x[i]);
}

static void dot_f16_f32(int64_t n, const void *w, const void *a, float *out) {
  dot_half(0, n, w, a, out);
}

static void dot_bf16_f32(int64_t n, const void *w, const void *a, float *out) {
  dot_half(1, n, w, a, out);
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
  dequant_half(0, src, dst, n);
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
  dequant_half(1, src, dst, n);
}

const cll_kernels cll__kernels_avx2 = {
    .isa = "avx2",
    .dequant_row = {CLL__X86_DEQUANT, [CLL_TYPE_F16] = dequant_f16, [CLL_TYPE_BF16] = dequant_bf16},
    .quantize_row = {CLL__X86_QUANTIZE},
    .vec_dot = {CLL__X86_VEC_DOT, [CLL_TYPE_F16] = dot_f16_f32, [CLL_TYPE_BF16] = dot_bf16_f32},
    /* Not Q8_0 here: without VNNI its packed decode (vpmaddubsw on the
     * sign-flipped bytes) ran at 18.6-23.8 tok/s on TinyLlama Q8_0 against
     * 23.7-29.0 in place (2 threads, alternated, shared machine), so plain
     * AVX2 keeps the in-place dots for it; the AVX-VNNI set (avx2_vnni.c)
     * packs it. */
    /* Q5_K and Q6_K packed (Q6_K also in Q4_K_M / Q5_K_M files): TinyLlama
     * tg32 / pp512 tok/s, 2 threads, Zen 5 shared, alternated with the
     * in-place build, 2 rounds: Q6_K 36-39 -> 42-47 / 104-121 -> 112-148,
     * Q5_K_M 31-39 -> 47-53 / 108-116 -> 150-155 (with AVX-VNNI: Q6_K
     * 35-38 -> 43-47 / 103-123 -> 175, Q5_K_M 36 -> 40-50 / 113-120 ->
     * 163-187). */
    .pack_bytes = {[CLL_TYPE_Q4_0] = cll__pack_bytes_q4_0,
                   [CLL_TYPE_Q4_K] = cll__pack_bytes_q4_K,
                   [CLL_TYPE_Q5_K] = cll__pack_bytes_q5_K,
                   [CLL_TYPE_Q6_K] = cll__pack_bytes_q6_K},
    .pack = {[CLL_TYPE_Q4_0] = cll__pack_q4_0,
             [CLL_TYPE_Q4_K] = cll__pack_q4_K,
             [CLL_TYPE_Q5_K] = cll__pack_q5_K,
             [CLL_TYPE_Q6_K] = cll__pack_q6_K},
    .matmul_packed = {[CLL_TYPE_Q4_0] = xp_matmul_q4_0_packed,
                      [CLL_TYPE_Q4_K] = xp_matmul_q4_K_packed,
                      [CLL_TYPE_Q5_K] = xp_matmul_q5_K_packed,
                      [CLL_TYPE_Q6_K] = xp_matmul_q6_K_packed},
};

#else
typedef int cll__avx2_unused; /* ISO C: a translation unit is not empty */
#endif
