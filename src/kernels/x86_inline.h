/* x86_inline.h — the inline helpers of the x86 kernel files: fp16
 * conversion, horizontal sums, nibble and 6-bit unpacking, the int8 dot
 * primitive. Only static inline functions, so any file built with the
 * AVX2 (or AVX-512) flags may include it without pulling in kernels:
 * x86.h (the shared kernel bodies of avx2.c and avx512.c) and the
 * AVX-512 files that do not use those bodies (avx512_gemm.c,
 * avx512_packed.c). */
#ifndef CLLAMA_KERNELS_X86_INLINE_H
#define CLLAMA_KERNELS_X86_INLINE_H

#include "kernels/simd.h"

#include <immintrin.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static inline float h2f(uint16_t h) {
  return _cvtsh_ss(h);
}
static inline uint16_t f2h(float f) {
  return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}

static inline float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

static inline float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* 16 bytes of packed nibbles -> 32 bytes: low nibbles first, then high
 * nibbles (the element order of Q4_0 and of a Q4_K 64-element chunk's
 * halves). */
static inline __m256i unpack_nibbles16(const uint8_t *p) {
  const __m128i b = _mm_loadu_si128((const __m128i *)p);
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

/* int32 lanes: sums of 4 products of unsigned bytes u and signed bytes s.
 * Without VNNI the pairs go through int16: callers keep |u*s| pairs below
 * 32768 (u <= 127, or u <= 63 with any s). */
static inline __m256i dot_u8s8(__m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

/* int32 lanes: sums of 4 products of signed bytes x and y. */
static inline __m256i dot_s8s8(__m256i x, __m256i y) {
  return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* 8 int8 values at p widened to floats. */
static inline __m256 load8_i8_ps(const void *p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* 32 signed bytes -> 4 x 8 floats scaled by d, stored at dst. */
static inline void store32_i8_scaled(__m256i q, __m256 d, float *dst) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  _mm256_storeu_ps(dst + 0, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
  _mm256_storeu_ps(
      dst + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
  _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
  _mm256_storeu_ps(
      dst + 24, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
}

/* 32 unsigned bytes q -> d*q - m for 32 floats at dst. */
static inline void store32_u8_affine(__m256i q, __m256 d, __m256 m, float *dst) {
  const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
  const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
  for (int k = 0; k < 4; k++) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(parts[k]));
    _mm256_storeu_ps(dst + 8 * k, _mm256_fmsub_ps(d, v, m));
  }
}

/* Packs 32 int32 (four vectors, element order) into 32 int8 with
 * saturation. */
static inline __m256i pack32_epi32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_packs_epi32(a, b); /* lanes interleave by 128 */
  const __m256i cd = _mm256_packs_epi32(c, d);
  const __m256i q = _mm256_packs_epi16(ab, cd);
  return _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* The four 32-element groups of one 128-element half of a Q6_K block as
 * unsigned 6-bit values (0..63; the format subtracts 32). */
static inline void q6_unpack_half(const uint8_t *ql, const uint8_t *qh, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
  const __m256i l0 = _mm256_loadu_si256((const __m256i *)ql);
  const __m256i l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
  const __m256i h = _mm256_loadu_si256((const __m256i *)qh);
  q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(h, m2), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 2), m2), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 4), m2), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(h, 6), m2), 4));
}

#endif
