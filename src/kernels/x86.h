/* x86.h — the x86 SIMD kernel bodies shared by avx2.c and avx512.c.
 *
 * Included by exactly those two files, each compiled with its own ISA
 * flags, so every function here is file-local (static) and becomes an AVX2
 * or an AVX-512 version depending on who includes it. The only difference
 * inside is the int8 dot-product primitive: VNNI (vpdpbusd) when the file
 * is built with AVX512-VNNI, vpmaddubsw + vpmaddwd otherwise. Kernels that
 * profit from 512-bit registers live in avx512.c itself.
 *
 * Structure, as in ref.c: a vector loop over whole blocks (every row is a
 * whole number of blocks, see cll_row_bytes), then the scalar tail where a
 * format allows rows that are not (F16). Dot products accumulate per block
 * in float, like ref.c, so results agree with it to float rounding.
 *
 * Speed notes (Zen 5): at decode these kernels run from memory, and what
 * limits them is instruction count per block, mostly the per-block scales:
 * Q4_0/Q8_0 convert the fp16 scales of 8 blocks at once (scalar loads into
 * one vector; a gather is slower), the K-quants unpack their 6-bit scales
 * with a few 32-bit operations and broadcast them with byte shuffles. */
#ifndef CLLAMA_KERNELS_X86_H
#define CLLAMA_KERNELS_X86_H

#include "kernels/x86_inline.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- Q8_0 / Q8_K quantizers */

static void quantize_row_q8_0(const float *x, void *dst, int64_t n) {
  sb_q8_0 *y = dst;
  const int64_t nb = n / SB_QK;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < nb; i++, x += SB_QK) {
    __m256 v[4], amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; k++) {
      v[k] = _mm256_loadu_ps(x + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    const float max = hmax_ps(amax);
    const float d = max / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[i].d = f2h(d);
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
      q[k] = _mm256_cvtps_epi32(
          _mm256_round_ps(_mm256_mul_ps(v[k], vid), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    _mm256_storeu_si256((__m256i *)y[i].qs, pack32_epi32(q[0], q[1], q[2], q[3]));
  }
}

static void quantize_row_q8_K(const float *x, void *dst, int64_t n) {
  sb_q8_K *y = dst;
  const int64_t nb = n / SB_QK_K;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < nb; i++, x += SB_QK_K) {
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < SB_QK_K; k += 8)
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + k)));
    const float a = hmax_ps(amax);
    if (a == 0.0f) {
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    /* The signed value of largest magnitude (first one, as ref.c). */
    float max = 0.0f;
    for (int k = 0; k < SB_QK_K; k++)
      if (fabsf(x[k]) == a) {
        max = x[k];
        break;
      }
    const float iscale = -127.0f / max;
    const __m256 vis = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int k = 0; k < SB_QK_K; k += 32) {
      __m256i q[4];
      for (int j = 0; j < 4; j++)
        q[j] = _mm256_min_epi32(
            top, _mm256_cvtps_epi32(_mm256_mul_ps(vis, _mm256_loadu_ps(x + k + 8 * j))));
      _mm256_storeu_si256((__m256i *)(y[i].qs + k), pack32_epi32(q[0], q[1], q[2], q[3]));
    }
    for (int g = 0; g < 16; g++) {
      int s = 0;
      for (int k = 0; k < 16; k++)
        s += y[i].qs[16 * g + k];
      y[i].bsums[g] = (int16_t)s;
    }
    y[i].d = 1.0f / iscale;
  }
}

/* ---------------------------------------------------------------- dot products */

/* dx[k] * dy[k] for 8 consecutive Q4_0/Q8_0 blocks x[0..8), y[0..8). The
 * fp16 scales are assembled with scalar loads (faster than a gather on
 * the CPUs we measured, and than 16 separate conversions). */
#define SCALES8_256(x, y)                                                                          \
  _mm256_mul_ps(_mm256_cvtph_ps(_mm_setr_epi16((short)(x)[0].d, (short)(x)[1].d, (short)(x)[2].d,  \
                                               (short)(x)[3].d, (short)(x)[4].d, (short)(x)[5].d,  \
                                               (short)(x)[6].d, (short)(x)[7].d)),                 \
                _mm256_cvtph_ps(_mm_setr_epi16((short)(y)[0].d, (short)(y)[1].d, (short)(y)[2].d,  \
                                               (short)(y)[3].d, (short)(y)[4].d, (short)(y)[5].d,  \
                                               (short)(y)[6].d, (short)(y)[7].d)))

/* One block's int32 partial sums times its scale, added to acc. */
#define Q_BLOCK_FMA(acc, p, scale) acc = _mm256_fmadd_ps((scale), _mm256_cvtepi32_ps(p), acc)

/* Block i of Q4_0 (q4, its q - 8) or Q8_0 weights times block i of y, as
 * int32 partial sums. */
static inline __attribute__((always_inline)) __m256i x_q8_0_block(const int q4, const void *w,
                                                                  int64_t i, const sb_q8_0 *y) {
  const __m256i yv = _mm256_loadu_si256((const __m256i *)y[i].qs);
  if (q4)
    return dot_s8s8(
        _mm256_sub_epi8(unpack_nibbles16(((const sb_q4_0 *)w)[i].qs), _mm256_set1_epi8(8)), yv);
  return dot_s8s8(_mm256_loadu_si256((const __m256i *)((const sb_q8_0 *)w)[i].qs), yv);
}

static inline __attribute__((always_inline)) void dot_x_q8_0(const int q4, int64_t n, const void *w,
                                                             const void *a, float *out) {
  const sb_q8_0 *y = a;
  const int64_t nb = n / SB_QK;
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const __m256 dd = q4 ? SCALES8_256((const sb_q4_0 *)w + i, y + i)
                         : SCALES8_256((const sb_q8_0 *)w + i, y + i);
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const __m256i p = x_q8_0_block(q4, w, i + k, y);
      const __m256 dk = _mm256_permutevar8x32_ps(dd, _mm256_set1_epi32(k));
      if (k & 1)
        Q_BLOCK_FMA(acc1, p, dk);
      else
        Q_BLOCK_FMA(acc0, p, dk);
    }
  }
  for (; i < nb; i++) {
    const uint16_t dx = q4 ? ((const sb_q4_0 *)w)[i].d : ((const sb_q8_0 *)w)[i].d;
    Q_BLOCK_FMA(acc0, x_q8_0_block(q4, w, i, y), _mm256_set1_ps(h2f(dx) * h2f(y[i].d)));
  }
  *out = hsum_ps(_mm256_add_ps(acc0, acc1));
}

static void dot_q4_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  dot_x_q8_0(1, n, w, a, out);
}

static void dot_q8_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  dot_x_q8_0(0, n, w, a, out);
}

/* Scales and mins of a Q4_K/Q5_K block as two arrays of 8 bytes. */
static inline void k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t m[8]) {
  for (int j = 0; j < 8; j++)
    sb_scale_min_k4(j, s, &sc[j], &m[j]);
}

/* The 12 packed scale bytes of a Q4_K/Q5_K block as int16 vectors:
 * *sc = the 8 scales in both 128-bit lanes, *mins = m0 m0 m1 m1 ... m7 m7
 * (each min twice, to pair with the two 16-element bsums of its
 * sub-block). The packing (see cll__scale_min_k4): scales 0..3 and mins
 * 0..3 are the low 6 bits of bytes 0..3 and 4..7; scales/mins 4..7 take
 * their low 4 bits from the nibbles of bytes 8..11 and their top 2 bits
 * from the top of bytes 0..3 / 4..7. */
static inline void k4_scales_vec(const uint8_t *s, __m256i *sc, __m256i *mins) {
  uint32_t u[3], o[4];
  memcpy(u, s, 12);
  const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
  o[0] = u[0] & m6;                                      /* scales 0..3 */
  o[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);        /* scales 4..7 */
  o[2] = u[1] & m6;                                      /* mins 0..3 */
  o[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
  const __m128i v = _mm_loadu_si128((const __m128i *)o);
  *sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(v));
  *mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
}

/* Scale number j (0..7) of k4_scales_vec's *sc in every int16 lane. */
static inline __m256i k4_scale_bcast(__m256i sc, int j) {
  const __m256i idx = _mm256_set1_epi16((short)((2 * j) | ((2 * j + 1) << 8)));
  return _mm256_shuffle_epi8(sc, idx);
}

/* Q4_K (q5 = 0) or Q5_K (q5 = 1, the fifth bit from qh) weights times
 * Q8_K activations. */
static inline __attribute__((always_inline)) void
dot_k45_q8_K(const int q5, int64_t n, const void *w, const void *a, float *out) {
  const sb_q4_K *x4 = w;
  const sb_q5_K *x5 = w;
  const sb_q8_K *y = a;
  const int64_t nb = n / SB_QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *scales = q5 ? x5[i].scales : x4[i].scales;
    const uint16_t xd = q5 ? x5[i].d : x4[i].d, xdmin = q5 ? x5[i].dmin : x4[i].dmin;
    __m256i sc, mins;
    k4_scales_vec(scales, &sc, &mins);
    const float d = y[i].d * h2f(xd), dmin = y[i].d * h2f(xdmin);
    const __m256i md = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums), mins);
    accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(md), accm);
    const __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)x5[i].qh) : _mm256_setzero_si256();
    __m256i sumi = _mm256_setzero_si256();
    const uint8_t *q = q5 ? x5[i].qs : x4[i].qs;
    const int8_t *yq = y[i].qs;
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++, q += 32, yq += 64) {
      const __m256i b = _mm256_loadu_si256((const __m256i *)q);
      __m256i lo = _mm256_and_si256(b, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(b, 4), m4);
      if (q5) {
        const __m256i bl = _mm256_set1_epi8((char)(1 << (2 * c)));
        const __m256i bh = _mm256_set1_epi8((char)(2 << (2 * c)));
        lo = _mm256_or_si256(lo,
                             _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), b4));
        hi = _mm256_or_si256(hi,
                             _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), b4));
      }
      const __m256i p0 = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)yq));
      const __m256i p1 = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(yq + 32)));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p0, k4_scale_bcast(sc, 2 * c)));
      sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p1, k4_scale_bcast(sc, 2 * c + 1)));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum_ps(_mm256_sub_ps(acc, accm));
}

static void dot_q4_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  dot_k45_q8_K(0, n, w, a, out);
}

static void dot_q5_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  dot_k45_q8_K(1, n, w, a, out);
}

static void dot_q6_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const sb_q6_K *x = w;
  const sb_q8_K *y = a;
  const int64_t nb = n / SB_QK_K;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < nb; i++) {
    const __m128i s8 = _mm_loadu_si128((const __m128i *)x[i].scales);
    /* 32 * sum_g scale[g] * bsum[g]: the "-32" of every quant at once. */
    const __m256i corr = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)y[i].bsums),
                                           _mm256_cvtepi8_epi16(s8));
    __m256i sumi = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(corr, 5));
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
      __m256i q[4];
      q6_unpack_half(x[i].ql + 64 * h, x[i].qh + 32 * h, q);
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        const int g = 8 * h + 2 * k; /* scales of elements 0..15 and 16..31 */
        const __m128i idx = _mm_set_epi64x((int64_t)(0x0101010101010101ULL * (uint64_t)(g + 1)),
                                           (int64_t)(0x0101010101010101ULL * (uint64_t)g));
        const __m256i scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, idx));
        const __m256i p = _mm256_maddubs_epi16(
            q[k], _mm256_loadu_si256((const __m256i *)(y[i].qs + 128 * h + 32 * k)));
        sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scv));
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * h2f(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  *out = hsum_ps(acc);
}

/* ---------------------------------------------------------------- dequantization */

static void dequant_q4_0(const void *src, float *dst, int64_t n) {
  const sb_q4_0 *x = src;
  const int64_t nb = n / SB_QK;
  const __m256i off = _mm256_set1_epi8(8);
  for (int64_t i = 0; i < nb; i++, dst += SB_QK)
    store32_i8_scaled(_mm256_sub_epi8(unpack_nibbles16(x[i].qs), off), _mm256_set1_ps(h2f(x[i].d)),
                      dst);
}

static void dequant_q8_0(const void *src, float *dst, int64_t n) {
  const sb_q8_0 *x = src;
  const int64_t nb = n / SB_QK;
  for (int64_t i = 0; i < nb; i++, dst += SB_QK)
    store32_i8_scaled(_mm256_loadu_si256((const __m256i *)x[i].qs), _mm256_set1_ps(h2f(x[i].d)),
                      dst);
}

static void dequant_q4_K(const void *src, float *dst, int64_t n) {
  const sb_q4_K *x = src;
  const int64_t nb = n / SB_QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; i++) {
    uint8_t sc[8], m[8];
    k4_scales(x[i].scales, sc, m);
    const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
    for (int c = 0; c < 4; c++, dst += 64) {
      const __m256i b = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
      store32_u8_affine(_mm256_and_si256(b, m4), _mm256_set1_ps(d * sc[2 * c]),
                        _mm256_set1_ps(dmin * m[2 * c]), dst);
      store32_u8_affine(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
                        _mm256_set1_ps(d * sc[2 * c + 1]), _mm256_set1_ps(dmin * m[2 * c + 1]),
                        dst + 32);
    }
  }
}

static void dequant_q5_K(const void *src, float *dst, int64_t n) {
  const sb_q5_K *x = src;
  const int64_t nb = n / SB_QK_K;
  const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
  for (int64_t i = 0; i < nb; i++) {
    uint8_t sc[8], m[8];
    k4_scales(x[i].scales, sc, m);
    const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
    const __m256i qh = _mm256_loadu_si256((const __m256i *)x[i].qh);
    for (int c = 0; c < 4; c++, dst += 64) {
      const __m256i bl = _mm256_set1_epi8((char)(1 << (2 * c)));
      const __m256i bh = _mm256_set1_epi8((char)(2 << (2 * c)));
      const __m256i b = _mm256_loadu_si256((const __m256i *)(x[i].qs + 32 * c));
      const __m256i lo =
          _mm256_or_si256(_mm256_and_si256(b, m4),
                          _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bl), bl), b4));
      const __m256i hi =
          _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b, 4), m4),
                          _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bh), bh), b4));
      store32_u8_affine(lo, _mm256_set1_ps(d * sc[2 * c]), _mm256_set1_ps(dmin * m[2 * c]), dst);
      store32_u8_affine(hi, _mm256_set1_ps(d * sc[2 * c + 1]), _mm256_set1_ps(dmin * m[2 * c + 1]),
                        dst + 32);
    }
  }
}

static void dequant_q6_K(const void *src, float *dst, int64_t n) {
  const sb_q6_K *x = src;
  const int64_t nb = n / SB_QK_K;
  const __m256i off = _mm256_set1_epi8(32);
  for (int64_t i = 0; i < nb; i++) {
    const float d = h2f(x[i].d);
    for (int h = 0; h < 2; h++) {
      __m256i q[4];
      q6_unpack_half(x[i].ql + 64 * h, x[i].qh + 32 * h, q);
      for (int k = 0; k < 4; k++, dst += 32) {
        const int g = 8 * h + 2 * k;
        const __m256i s = _mm256_sub_epi8(q[k], off);
        const __m128i lo = _mm256_castsi256_si128(s), hi = _mm256_extracti128_si256(s, 1);
        const __m256 d0 = _mm256_set1_ps(d * x[i].scales[g]);
        const __m256 d1 = _mm256_set1_ps(d * x[i].scales[g + 1]);
        _mm256_storeu_ps(dst + 0, _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo))));
        _mm256_storeu_ps(
            dst + 8,
            _mm256_mul_ps(d0, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)))));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi))));
        _mm256_storeu_ps(
            dst + 24,
            _mm256_mul_ps(d1, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)))));
      }
    }
  }
}

/* The table entries every x86 file shares; each file adds its F16 ones. */
#define CLL__X86_DEQUANT                                                                           \
  [CLL_TYPE_Q4_0] = dequant_q4_0, [CLL_TYPE_Q8_0] = dequant_q8_0, [CLL_TYPE_Q4_K] = dequant_q4_K,  \
  [CLL_TYPE_Q5_K] = dequant_q5_K, [CLL_TYPE_Q6_K] = dequant_q6_K
#define CLL__X86_QUANTIZE [CLL_TYPE_Q8_0] = quantize_row_q8_0, [CLL_TYPE_Q8_K] = quantize_row_q8_K
#define CLL__X86_VEC_DOT_K                                                                         \
  [CLL_TYPE_Q4_K] = dot_q4_K_q8_K, [CLL_TYPE_Q5_K] = dot_q5_K_q8_K, [CLL_TYPE_Q6_K] = dot_q6_K_q8_K
#define CLL__X86_VEC_DOT                                                                           \
  CLL__X86_VEC_DOT_K, [CLL_TYPE_Q4_0] = dot_q4_0_q8_0, [CLL_TYPE_Q8_0] = dot_q8_0_q8_0

#endif
