/* avx512.c — the AVX-512 (F/BW/VL/DQ + VNNI + BF16) kernel table.
 *
 * The quantized dot products are the x86.h bodies compiled here with VNNI,
 * so their int8 products go through vpdpbusd on 256-bit registers (the
 * quant blocks are 18..210 bytes, not a multiple of 64, and at decode the
 * kernels are memory-bound, so wider registers would add shuffles without
 * adding speed). Float formats use 512-bit registers. */
#if defined(__x86_64__)

#include "kernels/avx512_internal.h"
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
      acc[k] =
          _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16 * k))),
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

/* BF16 is the top half of an fp32: widen and shift. */
static inline __m512 bf16x16_ps(__m256i h) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

static void dot_bf16_f32_512(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(),
                   _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int k = 0; k < 4; k++)
      acc[k] = _mm512_fmadd_ps(bf16x16_ps(_mm256_loadu_si256((const __m256i *)(x + i + 16 * k))),
                               _mm512_loadu_ps(y + i + 16 * k), acc[k]);
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    acc[0] = _mm512_fmadd_ps(bf16x16_ps(_mm256_maskz_loadu_epi16(m, x + i)),
                             _mm512_maskz_loadu_ps(m, y + i), acc[0]);
  }
  *out = hsum512_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

static void dequant_bf16_512(const void *src, float *dst, int64_t n) {
  const uint16_t *x = src;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(dst + i, m, bf16x16_ps(_mm256_maskz_loadu_epi16(m, x + i)));
  }
}

/* Decode with F16 / BF16 weights: four rows per call share each load of
 * the float activations (one load per 16 elements for four rows instead
 * of one per row), two accumulators per row; the tail is masked. */
static inline __attribute__((always_inline)) void
dot4_half(const int bf, int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  const uint16_t *x[4];
  for (int r = 0; r < 4; r++)
    x[r] = (const uint16_t *)((const char *)w + (size_t)r * w_stride);
  const float *y = a;
  __m512 acc[4][2];
  for (int r = 0; r < 4; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 y0 = _mm512_loadu_ps(y + i), y1 = _mm512_loadu_ps(y + i + 16);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
      const __m256i h0 = _mm256_loadu_si256((const __m256i *)(x[r] + i));
      const __m256i h1 = _mm256_loadu_si256((const __m256i *)(x[r] + i + 16));
      acc[r][0] = _mm512_fmadd_ps(bf ? bf16x16_ps(h0) : _mm512_cvtph_ps(h0), y0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(bf ? bf16x16_ps(h1) : _mm512_cvtph_ps(h1), y1, acc[r][1]);
    }
  }
  for (; i < n; i += 16) {
    const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
    const __m512 y0 = _mm512_maskz_loadu_ps(m, y + i);
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
      const __m256i h0 = _mm256_maskz_loadu_epi16(m, x[r] + i);
      acc[r][0] = _mm512_fmadd_ps(bf ? bf16x16_ps(h0) : _mm512_cvtph_ps(h0), y0, acc[r][0]);
    }
  }
  for (int r = 0; r < 4; r++)
    out[r] = hsum512_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
}

static void dot4_f16_512(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  dot4_half(0, n, w, w_stride, a, out);
}

static void dot4_bf16_512(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  dot4_half(1, n, w, w_stride, a, out);
}

/* ---------------------------------------------------------------- F16 rows, a few tokens
 *
 * Attention's products (keys times the query rows of a GQA group, values
 * times their probabilities) are F16 rows of 64..n_ctx elements against
 * 2..16 float rows. One vec_dot per (row, token) spends more on its
 * horizontal sum than on the products, so here the tokens go in the lanes
 * instead: the token rows are transposed once per call, 512 elements at a
 * time (qt[i] = element i of every token), and a weight row converted to
 * float is then broadcast-FMAs into one vector that holds all its outputs,
 * with no horizontal sums. Eight rows go together: eight independent
 * accumulators, and each qt[i] is loaded once for the eight. */

#define F16S_CHUNK 512
#define F16S_ROWS 8

/* 2..8 tokens: a token takes only half of the 16 lanes, so two weight
 * rows share each vector instead. Lane 2t + r holds row 2p + r times
 * token t: the tokens are transposed with each value twice (qt2[i] =
 * x0 x0 x1 x1 ...), and a pair of rows is converted to float interleaved
 * (unpacklo/hi of the two rows, which leaves the elements of each 16 in
 * the order P2_ORDER), so one 64-bit broadcast of (row 2p, row 2p+1) at
 * element i meets qt2[i] in one FMA that does 16 useful products, where
 * the one-row-per-vector loop below does 8. Eight rows (four pairs) at a
 * time, with two sets of accumulators for even and odd elements so that
 * eight FMA chains are in flight. Decode attention of an 8-head GQA group
 * over 160 positions (scores and P.V, `bench/kernels --attn`): 7.1 us
 * against 8.4 us one row per vector. */
static const int P2_ORDER[16] = {0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15};

static void f16_small_pairs(const cll_matmul_args *a) {
  const int64_t T = a->n_tok;
  float qt[F16S_CHUNK * 16] __attribute__((aligned(64)));
  /* kp[p][k]: rows 2p and 2p+1 at the k-th element in P2_ORDER (per 16). */
  float kp[F16S_ROWS / 2][F16S_CHUNK * 2] __attribute__((aligned(64)));
  for (int64_t i0 = 0; i0 < a->n_in; i0 += F16S_CHUNK) {
    const int64_t n = a->n_in - i0 < F16S_CHUNK ? a->n_in - i0 : F16S_CHUNK;
    const int64_t n16 = (n + 15) & ~(int64_t)15; /* padded with zeros */
    /* qt[i] = x0[i] x0[i] x1[i] x1[i] ...; lanes past 2T and elements
     * past n stay 0. */
    for (int64_t i = 0; i < n16; i++) {
      __m512 v = _mm512_setzero_ps();
      if (i < n)
        for (int64_t t = 0; t < T; t++)
          v = _mm512_mask_mov_ps(v, (__mmask16)(3u << (2 * t)),
                                 _mm512_set1_ps(a->x[t * a->x_stride + i0 + i]));
      _mm512_store_ps(qt + i * 16, v);
    }
    for (int64_t r = a->r0; r < a->r1; r += F16S_ROWS) {
      const int64_t nr = a->r1 - r < F16S_ROWS ? a->r1 - r : F16S_ROWS;
      for (int p = 0; p < F16S_ROWS / 2; p++) {
        /* Rows past the end repeat the last one (results not stored). */
        const int64_t j0 = 2 * p < nr ? 2 * p : nr - 1, j1 = 2 * p + 1 < nr ? 2 * p + 1 : nr - 1;
        const uint16_t *w0 =
            (const uint16_t *)((const char *)a->w + (size_t)(r + j0) * a->w_stride) + i0;
        const uint16_t *w1 =
            (const uint16_t *)((const char *)a->w + (size_t)(r + j1) * a->w_stride) + i0;
        for (int64_t i = 0; i < n16; i += 16) {
          const __mmask16 m = i + 16 <= n ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
          const __m512 f0 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w0 + i));
          const __m512 f1 = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w1 + i));
          _mm512_store_ps(&kp[p][2 * i], _mm512_unpacklo_ps(f0, f1));
          _mm512_store_ps(&kp[p][2 * i + 16], _mm512_unpackhi_ps(f0, f1));
        }
      }
      __m512 acc[2][F16S_ROWS / 2];
      for (int e = 0; e < 2; e++)
        for (int p = 0; p < F16S_ROWS / 2; p++)
          acc[e][p] = _mm512_setzero_ps();
      for (int64_t i = 0; i < n16; i += 16) {
#pragma GCC unroll 16
        for (int k = 0; k < 16; k++) {
          const __m512 qv = _mm512_load_ps(qt + (i + P2_ORDER[k]) * 16);
#pragma GCC unroll 4
          for (int p = 0; p < F16S_ROWS / 2; p++) {
            double pair;
            memcpy(&pair, &kp[p][2 * i + 2 * k], sizeof pair);
            acc[k & 1][p] =
                _mm512_fmadd_ps(_mm512_castpd_ps(_mm512_set1_pd(pair)), qv, acc[k & 1][p]);
          }
        }
      }
      for (int p = 0; p < F16S_ROWS / 2; p++) {
        float out[16];
        _mm512_storeu_ps(out, _mm512_add_ps(acc[0][p], acc[1][p]));
        for (int q = 0; q < 2 && 2 * p + q < nr; q++) {
          float *y = a->y + r + 2 * p + q;
          for (int64_t t = 0; t < T; t++) {
            if (i0 > 0)
              y[t * a->y_stride] += out[2 * t + q];
            else
              y[t * a->y_stride] = out[2 * t + q];
          }
        }
      }
    }
  }
}

static void cll__matmul_f16_small_avx512(const cll_matmul_args *a) {
  if (a->n_tok <= 8) {
    f16_small_pairs(a);
    return;
  }
  const int64_t T = a->n_tok;
  const __mmask16 tm = (__mmask16)((1u << T) - 1u);
  float qt[F16S_CHUNK * 16] __attribute__((aligned(64)));
  /* Eight weight rows converted to float at a time, all of them before
   * any is read back element by element (reading a float just written by
   * a 64-byte store stalls on store forwarding). */
  float kf[F16S_ROWS][F16S_CHUNK] __attribute__((aligned(64)));
  for (int64_t i0 = 0; i0 < a->n_in; i0 += F16S_CHUNK) {
    const int64_t n = a->n_in - i0 < F16S_CHUNK ? a->n_in - i0 : F16S_CHUNK;
    const int64_t n16 = n & ~(int64_t)15;
    /* qt[i][t] = x[t][i0 + i]; lanes past T stay 0. */
    for (int64_t i = 0; i < n; i++) {
      __m512 v = _mm512_setzero_ps();
      for (int64_t t = 0; t < T; t++)
        v = _mm512_mask_mov_ps(v, (__mmask16)(1u << t),
                               _mm512_set1_ps(a->x[t * a->x_stride + i0 + i]));
      _mm512_store_ps(qt + i * 16, v);
    }
    for (int64_t r = a->r0; r < a->r1; r += F16S_ROWS) {
      const int64_t nr = a->r1 - r < F16S_ROWS ? a->r1 - r : F16S_ROWS;
      for (int64_t j = 0; j < F16S_ROWS; j++) {
        /* Rows past the end repeat the last one (results not stored). */
        const uint16_t *w = (const uint16_t *)((const char *)a->w +
                                               (size_t)(r + (j < nr ? j : nr - 1)) * a->w_stride) +
                            i0;
        int64_t i = 0;
        for (; i < n16; i += 16)
          _mm512_store_ps(&kf[j][i], _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + i))));
        for (; i < n; i++)
          kf[j][i] = h2f(w[i]);
      }
      /* acc[j]: row r + j for every token; one load of qt[i] serves the
       * eight rows. */
      __m512 acc[F16S_ROWS];
      for (int j = 0; j < F16S_ROWS; j++)
        acc[j] = _mm512_setzero_ps();
      for (int64_t i = 0; i < n; i++) {
        const __m512 qv = _mm512_load_ps(qt + i * 16);
#pragma GCC unroll 8
        for (int j = 0; j < F16S_ROWS; j++)
          acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(kf[j][i]), qv, acc[j]);
      }
      for (int64_t j = 0; j < nr; j++) {
        __m512 s = acc[j];
        if (i0 > 0) { /* later chunks add to what the earlier ones wrote */
          float prev[16];
          for (int64_t t = 0; t < T; t++)
            prev[t] = a->y[t * a->y_stride + r + j];
          s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(tm, prev));
        }
        float out[16];
        _mm512_storeu_ps(out, s);
        for (int64_t t = 0; t < T; t++)
          a->y[t * a->y_stride + r + j] = out[t];
      }
    }
  }
}

/* ---------------------------------------------------------------- Q4_0 / Q8_0 dots, 512-bit
 *
 * Two blocks per vector and the per-block scales of eight blocks at once:
 * at decode the scalar scale work, not the quants, is what limits the
 * 256-bit kernels. The unsigned operand of vpdpbusd is the weight biased
 * to unsigned (Q4_0: q in 0..15; Q8_0: q + 128); the bias times sum(y) is
 * subtracted per block. Blocks past the last multiple of 8 go through the
 * 256-bit kernel. */

/* dx[k] * dy[k] for 8 consecutive blocks, in the low half of a vector.
 * The fp16 scales are assembled with scalar loads: on Zen 5 this is
 * faster than a dword gather. */
#define SCALES8(x, y)                                                                              \
  _mm512_castps256_ps512(_mm256_mul_ps(                                                            \
      _mm256_cvtph_ps(_mm_setr_epi16((short)(x)[0].d, (short)(x)[1].d, (short)(x)[2].d,            \
                                     (short)(x)[3].d, (short)(x)[4].d, (short)(x)[5].d,            \
                                     (short)(x)[6].d, (short)(x)[7].d)),                           \
      _mm256_cvtph_ps(_mm_setr_epi16((short)(y)[0].d, (short)(y)[1].d, (short)(y)[2].d,            \
                                     (short)(y)[3].d, (short)(y)[4].d, (short)(y)[5].d,            \
                                     (short)(y)[6].d, (short)(y)[7].d))))

static void dot_q4_0_q8_0_512(int64_t n, const void *w, const void *a, float *out) {
  const sb_q4_0 *x = w;
  const sb_q8_0 *y = a;
  const int64_t nb = n / SB_QK;
  const __m512i perm = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m512i eight = _mm512_set1_epi8(8);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const __m512 dd = SCALES8(x + i, y + i);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      const sb_q4_0 *x0 = x + i + 2 * k;
      const sb_q8_0 *y0 = y + i + 2 * k;
      const __m256i q = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)x0[0].qs)),
          _mm_loadu_si128((const __m128i *)x0[1].qs), 1);
      const __m512i lo = _mm512_castsi256_si512(_mm256_and_si256(q, m4));
      const __m512i hi = _mm512_castsi256_si512(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
      const __m512i qq = _mm512_permutex2var_epi64(lo, perm, hi);
      const __m512i yy =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y0[0].qs)),
                             _mm256_loadu_si256((const __m256i *)y0[1].qs), 1);
      const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qq, yy),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, yy));
      const __m512i sel = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * k)),
                                             _mm256_set1_epi32(2 * k + 1), 1);
      const __m512 dv = _mm512_permutexvar_ps(sel, dd);
      if (k & 1)
        acc1 = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(s), acc1);
      else
        acc0 = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(s), acc0);
    }
  }
  float tail = 0.0f;
  if (i < nb)
    dot_q4_0_q8_0((nb - i) * SB_QK, x + i, y + i, &tail);
  *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

/* Four Q4_0 rows (w, w + w_stride, ...) times one Q8_0 activation row,
 * out[r] = row r . a. The decode path of matmul.c: the activation loads,
 * its scales and the -8 offset term (8 * sum(a) per block) are computed
 * once for the four rows, which halves the vector work per weight block
 * of the single-row kernel. Blocks past the last multiple of 8 go through
 * the single-row kernel. */
static void cll__dot4_q4_0_avx512(int64_t n, const void *w, size_t w_stride, const void *a,
                                  float *out) {
  const sb_q8_0 *y = a;
  const sb_q4_0 *x[4];
  for (int r = 0; r < 4; r++)
    x[r] = (const sb_q4_0 *)((const char *)w + (size_t)r * w_stride);
  const int64_t nb = n / SB_QK;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const __m512i eight = _mm512_set1_epi8(8);
  const __m512i shv = _mm512_setr_epi64(0, 0, 0x0004000400040004LL, 0x0004000400040004LL, 0, 0,
                                        0x0004000400040004LL, 0x0004000400040004LL);
  __m512 acc[4][2];
  for (int r = 0; r < 4; r++)
    acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const __m256 dy = _mm256_cvtph_ps(
        _mm_setr_epi16((short)y[i].d, (short)y[i + 1].d, (short)y[i + 2].d, (short)y[i + 3].d,
                       (short)y[i + 4].d, (short)y[i + 5].d, (short)y[i + 6].d, (short)y[i + 7].d));
    __m512 dd[4];
    for (int r = 0; r < 4; r++) {
      const sb_q4_0 *xr = x[r] + i;
      dd[r] = _mm512_castps256_ps512(_mm256_mul_ps(
          _mm256_cvtph_ps(_mm_setr_epi16((short)xr[0].d, (short)xr[1].d, (short)xr[2].d,
                                         (short)xr[3].d, (short)xr[4].d, (short)xr[5].d,
                                         (short)xr[6].d, (short)xr[7].d)),
          dy));
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      const sb_q8_0 *y0 = y + i + 2 * k;
      const __m512i yy =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y0[0].qs)),
                             _mm256_loadu_si256((const __m256i *)y0[1].qs), 1);
      const __m512i o = _mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, yy);
      const __m512i sel = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * k)),
                                             _mm256_set1_epi32(2 * k + 1), 1);
#pragma GCC unroll 4
      for (int r = 0; r < 4; r++) {
        const sb_q4_0 *x0 = x[r] + i + 2 * k;
        const __m512i qb = _mm512_mask_broadcast_i32x4(
            _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)x0[0].qs)), 0xFF00,
            _mm_loadu_si128((const __m128i *)x0[1].qs));
        const __m512i qq = _mm512_and_si512(_mm512_srlv_epi16(qb, shv), m4);
        const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qq, yy), o);
        acc[r][k & 1] = _mm512_fmadd_ps(_mm512_permutexvar_ps(sel, dd[r]), _mm512_cvtepi32_ps(s),
                                        acc[r][k & 1]);
      }
    }
  }
  for (int r = 0; r < 4; r++) {
    float tail = 0.0f;
    if (i < nb)
      dot_q4_0_q8_0((nb - i) * SB_QK, x[r] + i, y + i, &tail);
    out[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1])) + tail;
  }
}

static void dot_q8_0_q8_0_512(int64_t n, const void *w, const void *a, float *out) {
  const sb_q8_0 *x = w;
  const sb_q8_0 *y = a;
  const int64_t nb = n / SB_QK;
  const __m512i bias = _mm512_set1_epi8((char)0x80);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const __m512 dd = SCALES8(x + i, y + i);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      const sb_q8_0 *x0 = x + i + 2 * k;
      const sb_q8_0 *y0 = y + i + 2 * k;
      const __m512i xx = _mm512_xor_si512(
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)x0[0].qs)),
                             _mm256_loadu_si256((const __m256i *)x0[1].qs), 1),
          bias);
      const __m512i yy =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y0[0].qs)),
                             _mm256_loadu_si256((const __m256i *)y0[1].qs), 1);
      const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xx, yy),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, yy));
      const __m512i sel = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi32(2 * k)),
                                             _mm256_set1_epi32(2 * k + 1), 1);
      const __m512 dv = _mm512_permutexvar_ps(sel, dd);
      if (k & 1)
        acc1 = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(s), acc1);
      else
        acc0 = _mm512_fmadd_ps(dv, _mm512_cvtepi32_ps(s), acc0);
    }
  }
  float tail = 0.0f;
  if (i < nb)
    dot_q8_0_q8_0((nb - i) * SB_QK, x + i, y + i, &tail);
  *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

/* ---------------------------------------------------------------- int8 GEMM (prefill)
 *
 * Y[t][r] for many tokens with Q4_0 or Q8_0 weights and Q8_0 activations,
 * on VNNI. A panel of 16 weight rows is repacked into the caller's scratch
 * so that one 64-byte vector holds 4 consecutive quants of each of the 16
 * rows (unsigned: Q4_0 as 0..15, Q8_0 as q + 128); vpdpbusd of that with
 * 4 bytes of one token broadcast gives the 16 rows' partial dot products
 * at once, so a block's 32 elements take 8 instructions for 16 rows. The
 * unsigned offset is removed per token and block with off * sum(y), which
 * starts the accumulator. Each panel is reused for every token, 8 tokens
 * at a time (8 vectors of weights + 8 accumulators fit the 32 registers). */

#define GEMM_ROWS 16
#define GEMM_TOK 8
#define GEMM_TOK_CHUNK 64

static size_t gemm_panel_bytes(int64_t nb) {
  return (size_t)nb * (GEMM_ROWS * SB_QK + GEMM_ROWS * sizeof(float));
}

static size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in) {
  return gemm_panel_bytes(n_in / SB_QK) + 64;
}

static inline int32_t load_i32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* 8x8 transpose of 32-bit elements within each 256-bit half of z[0..7]:
 * afterwards dword j of half h of z[g] is dword g of half h of input z[j]. */
static inline void transpose8x8_halves(__m512i z[8]) {
  __m512i t[8], u[8];
#pragma GCC unroll 8
  for (int k = 0; k < 4; k++) {
    t[2 * k] = _mm512_unpacklo_epi32(z[2 * k], z[2 * k + 1]);
    t[2 * k + 1] = _mm512_unpackhi_epi32(z[2 * k], z[2 * k + 1]);
  }
#pragma GCC unroll 8
  for (int k = 0; k < 2; k++) {
    u[4 * k + 0] = _mm512_unpacklo_epi64(t[4 * k], t[4 * k + 2]);     /* dword 0 (4) */
    u[4 * k + 1] = _mm512_unpackhi_epi64(t[4 * k], t[4 * k + 2]);     /* dword 1 (5) */
    u[4 * k + 2] = _mm512_unpacklo_epi64(t[4 * k + 1], t[4 * k + 3]); /* dword 2 (6) */
    u[4 * k + 3] = _mm512_unpackhi_epi64(t[4 * k + 1], t[4 * k + 3]); /* dword 3 (7) */
  }
  const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13);
  const __m512i hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
#pragma GCC unroll 8
  for (int g = 0; g < 4; g++) {
    z[g] = _mm512_permutex2var_epi64(u[g], lo, u[4 + g]);
    z[g + 4] = _mm512_permutex2var_epi64(u[g], hi, u[4 + g]);
  }
}

/* Rows [r, r + nr) of W into the panel: quants at q[i][g][row][4], scales
 * at d[i][row]. Rows past nr repeat the last row (their results are
 * masked off at the store), so every load stays inside W. */
static void gemm_pack(const cll_matmul_args *a, int64_t r, int64_t nr, int64_t nb, uint8_t *q,
                      float *d) {
  const int is_q4 = a->wtype == CLL_TYPE_Q4_0;
  const size_t bb = is_q4 ? sizeof(sb_q4_0) : sizeof(sb_q8_0);
  const char *row[GEMM_ROWS];
  for (int j = 0; j < GEMM_ROWS; j++)
    row[j] = (const char *)a->w + (size_t)(r + (j < nr ? j : nr - 1)) * a->w_stride;
  /* Q4_0: 16 bytes broadcast to both 128-bit lanes of a half, the low
   * nibbles kept in the first lane and the high ones in the second. */
  const __m512i shift = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
  const __m512i m4 = _mm512_set1_epi8(0x0F), bias = _mm512_set1_epi8((char)0x80);
  for (int64_t i = 0; i < nb; i++) {
    /* 16 rows stream at once, more than the hardware prefetcher follows
     * well: fetch each row a few cache lines ahead. */
    if ((i & 3) == 0)
      for (int j = 0; j < GEMM_ROWS; j++)
        _mm_prefetch(row[j] + (size_t)(i + 16) * bb, _MM_HINT_T0);
    __m512i z[8];
#pragma GCC unroll 8
    for (int k = 0; k < 8; k++) {
      const char *b0 = row[k] + (size_t)i * bb, *b1 = row[k + 8] + (size_t)i * bb;
      if (is_q4) {
        const __m512i v = _mm512_inserti64x4(
            _mm512_castsi256_si512(
                _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + 2)))),
            _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b1 + 2))), 1);
        z[k] = _mm512_and_si512(_mm512_srlv_epi64(v, shift), m4);
      } else {
        const __m512i v = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b0 + 2))),
            _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1);
        z[k] = _mm512_xor_si512(v, bias);
      }
    }
    transpose8x8_halves(z);
    /* z[g] = [rows 0..7 dword g | rows 8..15 dword g]: lane j is row j. */
    uint8_t *dst = q + i * (GEMM_ROWS * SB_QK);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++)
      _mm512_storeu_si512(dst + 64 * g, z[g]);
    /* The 16 fp16 scales (scalar loads: faster than a gather here). */
    uint16_t h[GEMM_ROWS];
#pragma GCC unroll 16
    for (int j = 0; j < GEMM_ROWS; j++)
      memcpy(&h[j], row[j] + (size_t)i * bb, 2);
    _mm512_storeu_ps(d + i * GEMM_ROWS, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h)));
  }
}

/* The T token rows t0.. of a tile: zeroed accumulators, each token's Q8_0
 * blocks and its per-block scales and sums (cll__q8_sums). */
static inline __attribute__((always_inline)) void tile_tokens(const int T, const cll_matmul_args *a,
                                                              int64_t nb, int64_t t0, __m512 *acc,
                                                              const sb_q8_0 **yrow,
                                                              const struct cll__q8_sum **ysum) {
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_0 *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
    ysum[t] = cll__q8_sums(yrow[t], nb);
  }
}

/* T tokens (t0..t0+T) times one packed panel; writes rows [r, r + nr).
 * off: the weights' unsigned offset (Q4_0 8, Q8_0 128). */
static inline __attribute__((always_inline)) void gemm_tile(const int T, const cll_matmul_args *a,
                                                            int64_t nb, const uint8_t *q,
                                                            const float *d, int32_t off, int64_t t0,
                                                            int64_t r, __mmask16 mask) {
  __m512 acc[GEMM_TOK];
  const sb_q8_0 *yrow[GEMM_TOK];
  const struct cll__q8_sum *ysum[GEMM_TOK];
  tile_tokens(T, a, nb, t0, acc, yrow, ysum);
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *qi = q + i * (GEMM_ROWS * SB_QK);
    __m512i w[8];
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++)
      w[g] = _mm512_loadu_si512(qi + 64 * g);
    const __m512 dx = _mm512_loadu_ps(d + i * GEMM_ROWS);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      const int8_t *yq = yrow[t][i].qs;
      __m512i s = _mm512_set1_epi32(-off * ysum[t][i].s);
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++)
        s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(load_i32(yq + 4 * g)));
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(ysum[t][i].d)),
                               _mm512_cvtepi32_ps(s), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
    _mm512_mask_storeu_ps(a->y + (t0 + t) * a->y_stride + r, mask, acc[t]);
}

static void cll__gemm_q8_0_avx512(const cll_matmul_args *a) {
  const int64_t nb = a->n_in / SB_QK;
  uint8_t *q = a->scratch;
  float *d = (float *)(q + (size_t)nb * GEMM_ROWS * SB_QK);
  const int32_t off = a->wtype == CLL_TYPE_Q4_0 ? 8 : 128;
  /* Tokens in chunks whose activations stay in L2 while every panel of
   * the slice passes over them; a panel is repacked once per chunk. */
  for (int64_t tc = 0; tc < a->n_tok; tc += GEMM_TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < GEMM_TOK_CHUNK ? a->n_tok : tc + GEMM_TOK_CHUNK;
    for (int64_t r = a->r0; r < a->r1; r += GEMM_ROWS) {
      const int64_t nr = a->r1 - r < GEMM_ROWS ? a->r1 - r : GEMM_ROWS;
      const __mmask16 mask = (__mmask16)((1u << nr) - 1u);
      gemm_pack(a, r, nr, nb, q, d);
      int64_t t0 = tc;
      for (; t0 + GEMM_TOK <= te; t0 += GEMM_TOK)
        gemm_tile(GEMM_TOK, a, nb, q, d, off, t0, r, mask);
      switch (te - t0) {
      case 7:
        gemm_tile(7, a, nb, q, d, off, t0, r, mask);
        break;
      case 6:
        gemm_tile(6, a, nb, q, d, off, t0, r, mask);
        break;
      case 5:
        gemm_tile(5, a, nb, q, d, off, t0, r, mask);
        break;
      case 4:
        gemm_tile(4, a, nb, q, d, off, t0, r, mask);
        break;
      case 3:
        gemm_tile(3, a, nb, q, d, off, t0, r, mask);
        break;
      case 2:
        gemm_tile(2, a, nb, q, d, off, t0, r, mask);
        break;
      case 1:
        gemm_tile(1, a, nb, q, d, off, t0, r, mask);
        break;
      default:
        break;
      }
    }
  }
}

/* ---------------------------------------------------------------- Q4_0 repacked at load
 *
 * The model loader copies each Q4_0 matrix once into panels of 16 rows
 * (cll__pack_q4_0_avx512), so decode and prefill read 16 rows at a time
 * with no per-call packing and no per-block scalar scale assembly, which
 * is what bounds the in-place kernels above at decode. Panel p (rows
 * 16p..16p+15), nb blocks per row:
 *   quants: nb x 256 bytes. Block i is 4 vectors of 64 bytes; dword j of
 *           vector g holds bytes 4g..4g+3 of row j's qs, so its low
 *           nibbles are elements 4g..4g+3 and its high nibbles elements
 *           16+4g..16+4g+3: after (v & 15) and (v >> 4 & 15) the 8 vectors
 *           meet the activation's dwords 0..7 in vpdpbusd, as in the GEMM
 *           panels above;
 *   scales: nb x 16 fp16, row order.
 * Panels are rounded up to 64 bytes, so every quant vector is aligned.
 * The packed matrix is the same size as the GGUF one (18 bytes a block). */

#define P4_ROWS CLL_PACK_ROWS
#define P4_TOK 8         /* tokens per tile (8 accumulators + 8 weight vectors) */
#define P4_PREFETCH 2048 /* bytes ahead the first tile of a panel prefetches */

static size_t p4_panel_bytes(int64_t nb) {
  return ((size_t)nb * (P4_ROWS * sizeof(sb_q4_0)) + 63) & ~(size_t)63;
}

static size_t cll__pack_bytes_q4_0_avx512(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / P4_ROWS) * p4_panel_bytes(n_in / SB_QK);
}

static void cll__pack_q4_0_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0,
                                  int64_t p1, void *dst) {
  const int64_t nb = n_in / SB_QK;
  for (int64_t p = p0; p < p1; p++) {
    uint8_t *q = (uint8_t *)dst + (size_t)p * p4_panel_bytes(nb);
    uint16_t *d = (uint16_t *)(q + (size_t)nb * 256);
    for (int j = 0; j < P4_ROWS; j++) {
      const sb_q4_0 *row =
          (const sb_q4_0 *)((const char *)w + (size_t)(p * P4_ROWS + j) * w_stride);
      for (int64_t i = 0; i < nb; i++) {
        d[i * P4_ROWS + j] = row[i].d;
        for (int g = 0; g < 4; g++)
          memcpy(q + (size_t)i * 256 + 64 * g + 4 * j, row[i].qs + 4 * g, 4);
      }
    }
  }
}

/* T tokens (t0..t0+T) times one packed panel (quants q, scales d); y
 * points at row 16p of token t0. */
static inline __attribute__((always_inline)) void p4_tile(const int T, const cll_matmul_args *a,
                                                          int64_t nb, const uint8_t *q,
                                                          const uint16_t *d, int64_t t0, float *y,
                                                          int pf) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[P4_TOK];
  const sb_q8_0 *yrow[P4_TOK];
  const struct cll__q8_sum *ysum[P4_TOK];
  tile_tokens(T, a, nb, t0, acc, yrow, ysum);
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *qi = q + (size_t)i * 256;
    if (pf) { /* the first pass over a panel streams from memory: fetch ahead */
      _mm_prefetch((const char *)qi + P4_PREFETCH, _MM_HINT_T0);
      _mm_prefetch((const char *)qi + P4_PREFETCH + 64, _MM_HINT_T0);
      _mm_prefetch((const char *)qi + P4_PREFETCH + 128, _MM_HINT_T0);
      _mm_prefetch((const char *)qi + P4_PREFETCH + 192, _MM_HINT_T0);
    }
    __m512i w[8];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
      const __m512i v = _mm512_loadu_si512((const void *)(qi + 64 * g));
      w[g] = _mm512_and_si512(v, m4);
      w[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d + i * P4_ROWS)));
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      const int8_t *yq = yrow[t][i].qs;
      /* Two chains, so one token's eight vpdpbusd are not one long
       * dependency chain at decode. */
      __m512i s0 = _mm512_set1_epi32(-8 * ysum[t][i].s), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 8; g += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(load_i32(yq + 4 * g)));
        s1 = _mm512_dpbusd_epi32(s1, w[g + 1], _mm512_set1_epi32(load_i32(yq + 4 * g + 4)));
      }
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(ysum[t][i].d)),
                               _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
    _mm512_storeu_ps(y + t * a->y_stride, acc[t]);
}

/* T (1..4) tokens times two adjacent packed panels (32 rows): each
 * broadcast of a token's 4 activation bytes feeds two vpdpbusd, and the
 * two panels' sums are the two independent chains. With both cores busy
 * this runs 10-20% faster than one panel by 8 tokens (bench/kernels run
 * on both cores at once): the broadcasts, not the vpdpbusd, were what
 * the single panel queued on. q: the first panel; pb: bytes per panel;
 * y: row 16p of token t0; pf: fetch the panels ahead (their first tile). */
#define P4_TOK2 4
static inline __attribute__((always_inline)) void p4_tile2(const int T, const cll_matmul_args *a,
                                                           int64_t nb, size_t pb, const uint8_t *q,
                                                           int64_t t0, float *y, int pf) {
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  const uint8_t *q1 = q + pb;
  const uint16_t *d0 = (const uint16_t *)(q + (size_t)nb * 256),
                 *d1 = (const uint16_t *)(q1 + (size_t)nb * 256);
  __m512 acc0[P4_TOK2], acc1[P4_TOK2];
  const sb_q8_0 *yrow[P4_TOK2];
  const struct cll__q8_sum *ysum[P4_TOK2];
#pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    acc0[t] = acc1[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_0 *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
    ysum[t] = cll__q8_sums(yrow[t], nb);
  }
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *qa = q + (size_t)i * 256, *qb = q1 + (size_t)i * 256;
    if (pf) {
      _mm_prefetch((const char *)qa + P4_PREFETCH, _MM_HINT_T0);
      _mm_prefetch((const char *)qa + P4_PREFETCH + 64, _MM_HINT_T0);
      _mm_prefetch((const char *)qa + P4_PREFETCH + 128, _MM_HINT_T0);
      _mm_prefetch((const char *)qa + P4_PREFETCH + 192, _MM_HINT_T0);
      _mm_prefetch((const char *)qb + P4_PREFETCH, _MM_HINT_T0);
      _mm_prefetch((const char *)qb + P4_PREFETCH + 64, _MM_HINT_T0);
      _mm_prefetch((const char *)qb + P4_PREFETCH + 128, _MM_HINT_T0);
      _mm_prefetch((const char *)qb + P4_PREFETCH + 192, _MM_HINT_T0);
    }
    __m512i wa[8], wb[8];
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
      const __m512i va = _mm512_loadu_si512((const void *)(qa + 64 * g));
      const __m512i vb = _mm512_loadu_si512((const void *)(qb + 64 * g));
      wa[g] = _mm512_and_si512(va, m4);
      wa[g + 4] = _mm512_and_si512(_mm512_srli_epi16(va, 4), m4);
      wb[g] = _mm512_and_si512(vb, m4);
      wb[g + 4] = _mm512_and_si512(_mm512_srli_epi16(vb, 4), m4);
    }
    const __m512 dxa = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d0 + i * P4_ROWS)));
    const __m512 dxb = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d1 + i * P4_ROWS)));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const int8_t *yq = yrow[t][i].qs;
      const __m512i off = _mm512_set1_epi32(-8 * ysum[t][i].s);
      __m512i sa = off, sb = off;
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++) {
        const __m512i yv = _mm512_set1_epi32(load_i32(yq + 4 * g));
        sa = _mm512_dpbusd_epi32(sa, wa[g], yv);
        sb = _mm512_dpbusd_epi32(sb, wb[g], yv);
      }
      const __m512 yd = _mm512_set1_ps(ysum[t][i].d);
      acc0[t] = _mm512_fmadd_ps(_mm512_mul_ps(dxa, yd), _mm512_cvtepi32_ps(sa), acc0[t]);
      acc1[t] = _mm512_fmadd_ps(_mm512_mul_ps(dxb, yd), _mm512_cvtepi32_ps(sb), acc1[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    _mm512_storeu_ps(y + t * a->y_stride, acc0[t]);
    _mm512_storeu_ps(y + t * a->y_stride + P4_ROWS, acc1[t]);
  }
}

/* One tile of T tokens: over panels p and p + 1 (pair, T <= 4) or over
 * panel p alone (T <= 8); q: panel p. */
static void p4_tile_any(int pair, int64_t T, const cll_matmul_args *a, int64_t nb, size_t pb,
                        const uint8_t *q, int64_t t0, float *y, int pf) {
  const uint16_t *d = (const uint16_t *)(q + (size_t)nb * 256);
  if (pair)
    switch (T) {
    case 4:
      p4_tile2(4, a, nb, pb, q, t0, y, pf);
      break;
    case 3:
      p4_tile2(3, a, nb, pb, q, t0, y, pf);
      break;
    case 2:
      p4_tile2(2, a, nb, pb, q, t0, y, pf);
      break;
    case 1:
      p4_tile2(1, a, nb, pb, q, t0, y, pf);
      break;
    default:
      break;
    }
  else
    switch (T) {
    case 8:
      p4_tile(8, a, nb, q, d, t0, y, pf);
      break;
    case 7:
      p4_tile(7, a, nb, q, d, t0, y, pf);
      break;
    case 6:
      p4_tile(6, a, nb, q, d, t0, y, pf);
      break;
    case 5:
      p4_tile(5, a, nb, q, d, t0, y, pf);
      break;
    case 4:
      p4_tile(4, a, nb, q, d, t0, y, pf);
      break;
    case 3:
      p4_tile(3, a, nb, q, d, t0, y, pf);
      break;
    case 2:
      p4_tile(2, a, nb, q, d, t0, y, pf);
      break;
    case 1:
      p4_tile(1, a, nb, q, d, t0, y, pf);
      break;
    default:
      break;
    }
}

static void cll__matmul_q4_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nb = a->n_in / SB_QK;
  const size_t pb = p4_panel_bytes(nb);
  /* Tokens in chunks whose activations stay in L2 while the panels pass
   * over them; within a chunk each pair of panels (18 bytes x 32 rows a
   * block) is read once per 4 tokens, from L1/L2 after the first tile. */
  for (int64_t tc = 0; tc < a->n_tok; tc += GEMM_TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < GEMM_TOK_CHUNK ? a->n_tok : tc + GEMM_TOK_CHUNK;
    /* Panels two at a time (tiles of at most 4 tokens), the odd one
     * alone (tiles of at most 8). Tiles as even as possible (41 tokens by
     * 8: 7 7 7 7 7 6, not 8 8 8 8 8 1); the first prefetches the panels. */
    for (int64_t p = p0; p < p1;) {
      const int pair = p + 2 <= p1;
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * P4_ROWS;
      const int64_t nt = te - tc, max_t = pair ? P4_TOK2 : P4_TOK;
      const int64_t n_tiles = (nt + max_t - 1) / max_t;
      for (int64_t k = 0; k < n_tiles; k++) {
        const int64_t t0 = tc + nt * k / n_tiles, t1 = tc + nt * (k + 1) / n_tiles;
        p4_tile_any(pair, t1 - t0, a, nb, pb, q, t0, y + t0 * a->y_stride, k == 0);
      }
      p += pair ? 2 : 1;
    }
  }
}

/* ---------------------------------------------------------------- int8 GEMM, Q4_K
 *
 * The same scheme for Q4_K weights and Q8_K activations. Per super-block
 * the panel holds, for each of the 8 sub-blocks, the 32 quants of 16 rows
 * transposed as above (8 vectors), each row's 6-bit scale as an int32 and
 * its min twice as an int16 pair; and the 16 rows' d and dmin. For one
 * token, the sub-block's int8 dot (8 vpdpbusd) is multiplied by the scales
 * (vpmulld) and summed; the mins meet the activation's 16-element sums in
 * 8 vpdpwssd (a min times the pair of sums of its sub-block). */

#define K4_SB_BYTES (8 * 8 * 64 + 8 * 64 + 8 * 64 + 2 * 64)

static size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in) {
  return (size_t)(n_in / SB_QK_K) * K4_SB_BYTES + 64;
}

static void gemm_pack_q4_K(const cll_matmul_args *a, int64_t r, int64_t nr, int64_t nb,
                           uint8_t *panel) {
  const char *row[GEMM_ROWS];
  for (int j = 0; j < GEMM_ROWS; j++)
    row[j] = (const char *)a->w + (size_t)(r + (j < nr ? j : nr - 1)) * a->w_stride;
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  for (int64_t i = 0; i < nb; i++) {
    uint8_t *q = panel + (size_t)i * K4_SB_BYTES;
    int32_t *sc = (int32_t *)(q + 8 * 8 * 64);
    int32_t *mn = sc + 8 * GEMM_ROWS;
    float *d = (float *)(mn + 8 * GEMM_ROWS);
    for (int j = 0; j < GEMM_ROWS; j++) {
      const sb_q4_K *x = (const sb_q4_K *)row[j] + i;
      _mm_prefetch((const char *)(x + 2), _MM_HINT_T0);
      _mm_prefetch((const char *)(x + 2) + 64, _MM_HINT_T0);
      _mm_prefetch((const char *)(x + 2) + 128, _MM_HINT_T0);
      uint32_t u[3], o[4];
      memcpy(u, x->scales, 12);
      o[0] = u[0] & 0x3f3f3f3f;
      o[1] = (u[2] & 0x0f0f0f0f) | (((u[0] >> 6) & 0x03030303) << 4);
      o[2] = u[1] & 0x3f3f3f3f;
      o[3] = ((u[2] >> 4) & 0x0f0f0f0f) | (((u[1] >> 6) & 0x03030303) << 4);
      const uint8_t *b = (const uint8_t *)o;
      for (int k = 0; k < 8; k++) {
        sc[k * GEMM_ROWS + j] = b[k];
        mn[k * GEMM_ROWS + j] = (int32_t)((uint32_t)b[8 + k] | ((uint32_t)b[8 + k] << 16));
      }
      d[j] = h2f(x->d);
      d[GEMM_ROWS + j] = h2f(x->dmin);
    }
#pragma GCC unroll 1
    for (int sb = 0; sb < 8; sb++) {
      const int c = sb / 2, shift = 4 * (sb & 1);
      __m512i z[8];
#pragma GCC unroll 8
      for (int k = 0; k < 8; k++) {
        const sb_q4_K *x0 = (const sb_q4_K *)row[k] + i, *x1 = (const sb_q4_K *)row[k + 8] + i;
        const __m512i v = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(x0->qs + 32 * c))),
            _mm256_loadu_si256((const __m256i *)(x1->qs + 32 * c)), 1);
        z[k] = _mm512_and_si512(_mm512_srli_epi16(v, (unsigned)shift), m4);
      }
      transpose8x8_halves(z);
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++)
        _mm512_storeu_si512(q + (sb * 8 + g) * 64, z[g]);
    }
  }
}

static inline __attribute__((always_inline)) void
gemm_tile_q4_K(const int T, const cll_matmul_args *a, int64_t nb, const uint8_t *panel, int64_t t0,
               int64_t r, __mmask16 mask) {
  __m512 acc[GEMM_TOK];
  const sb_q8_K *yrow[GEMM_TOK];
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_K *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
  }
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *q = panel + (size_t)i * K4_SB_BYTES;
    const int32_t *sc = (const int32_t *)(q + 8 * 8 * 64);
    const int32_t *mn = sc + 8 * GEMM_ROWS;
    const float *d = (const float *)(mn + 8 * GEMM_ROWS);
    const __m512 dx = _mm512_loadu_ps(d), dmx = _mm512_loadu_ps(d + GEMM_ROWS);
    __m512i si[GEMM_TOK], mi[GEMM_TOK];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
      si[t] = mi[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int sb = 0; sb < 8; sb++) {
      __m512i w[8];
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++)
        w[g] = _mm512_loadu_si512(q + (sb * 8 + g) * 64);
      const __m512i scv = _mm512_loadu_si512(sc + sb * GEMM_ROWS);
      const __m512i mnv = _mm512_loadu_si512(mn + sb * GEMM_ROWS);
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        const int8_t *yq = yrow[t][i].qs + 32 * sb;
        __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
          s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(load_i32(yq + 4 * g)));
        si[t] = _mm512_add_epi32(si[t], _mm512_mullo_epi32(s, scv));
        mi[t] =
            _mm512_dpwssd_epi32(mi[t], mnv, _mm512_set1_epi32(load_i32(yrow[t][i].bsums + 2 * sb)));
      }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      const __m512 dy = _mm512_set1_ps(yrow[t][i].d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(si[t]), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmx, dy), _mm512_cvtepi32_ps(mi[t]), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
    _mm512_mask_storeu_ps(a->y + (t0 + t) * a->y_stride + r, mask, acc[t]);
}

static void cll__gemm_q4_K_avx512(const cll_matmul_args *a) {
  const int64_t nb = a->n_in / SB_QK_K;
  uint8_t *panel = a->scratch;
  for (int64_t tc = 0; tc < a->n_tok; tc += GEMM_TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < GEMM_TOK_CHUNK ? a->n_tok : tc + GEMM_TOK_CHUNK;
    for (int64_t r = a->r0; r < a->r1; r += GEMM_ROWS) {
      const int64_t nr = a->r1 - r < GEMM_ROWS ? a->r1 - r : GEMM_ROWS;
      const __mmask16 mask = (__mmask16)((1u << nr) - 1u);
      gemm_pack_q4_K(a, r, nr, nb, panel);
      int64_t t0 = tc;
      for (; t0 + 4 <= te; t0 += 4)
        gemm_tile_q4_K(4, a, nb, panel, t0, r, mask);
      switch (te - t0) {
      case 3:
        gemm_tile_q4_K(3, a, nb, panel, t0, r, mask);
        break;
      case 2:
        gemm_tile_q4_K(2, a, nb, panel, t0, r, mask);
        break;
      case 1:
        gemm_tile_q4_K(1, a, nb, panel, t0, r, mask);
        break;
      default:
        break;
      }
    }
  }
}

/* ---------------------------------------------------------------- int8 GEMM, Q6_K
 *
 * Q6_K weights times Q8_K activations, as Q4_K: per super-block the panel
 * holds the 6-bit quants (0..63) of 16 rows transposed in 8 groups of 32
 * elements, the 16 int8 scales of each row as int32 (one per 16
 * elements, so a group's first 4 and last 4 vpdpbusd get different
 * scales), the scales again as int16 pairs for the "-32" correction
 * (32 * sum of scale * 16-element sum, by vpdpwssd), and d. */

#define K6_SB_BYTES (8 * 8 * 64 + 16 * 64 + 8 * 64 + 64)

static size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in) {
  return (size_t)(n_in / SB_QK_K) * K6_SB_BYTES + 64;
}

static void gemm_pack_q6_K(const cll_matmul_args *a, int64_t r, int64_t nr, int64_t nb,
                           uint8_t *panel) {
  const char *row[GEMM_ROWS];
  for (int j = 0; j < GEMM_ROWS; j++)
    row[j] = (const char *)a->w + (size_t)(r + (j < nr ? j : nr - 1)) * a->w_stride;
  uint8_t tmp[GEMM_ROWS][4][32];
  for (int64_t i = 0; i < nb; i++) {
    uint8_t *q = panel + (size_t)i * K6_SB_BYTES;
    int32_t *sc = (int32_t *)(q + 8 * 8 * 64);
    int32_t *sp = sc + 16 * GEMM_ROWS;
    float *d = (float *)(sp + 8 * GEMM_ROWS);
    for (int j = 0; j < GEMM_ROWS; j++) {
      const sb_q6_K *x = (const sb_q6_K *)row[j] + i;
      _mm_prefetch((const char *)(x + 2), _MM_HINT_T0);
      _mm_prefetch((const char *)(x + 2) + 64, _MM_HINT_T0);
      _mm_prefetch((const char *)(x + 2) + 128, _MM_HINT_T0);
      _mm_prefetch((const char *)(x + 2) + 192, _MM_HINT_T0);
      for (int g = 0; g < 16; g++)
        sc[g * GEMM_ROWS + j] = x->scales[g];
      for (int p = 0; p < 8; p++)
        sp[p * GEMM_ROWS + j] = (int32_t)((uint32_t)(uint16_t)x->scales[2 * p] |
                                          ((uint32_t)(uint16_t)x->scales[2 * p + 1] << 16));
      d[j] = h2f(x->d);
    }
    for (int h = 0; h < 2; h++) {
      for (int j = 0; j < GEMM_ROWS; j++) {
        const sb_q6_K *x = (const sb_q6_K *)row[j] + i;
        __m256i v[4];
        q6_unpack_half(x->ql + 64 * h, x->qh + 32 * h, v);
#pragma GCC unroll 4
        for (int k = 0; k < 4; k++)
          _mm256_storeu_si256((__m256i *)tmp[j][k], v[k]);
      }
#pragma GCC unroll 1
      for (int k = 0; k < 4; k++) {
        __m512i z[8];
#pragma GCC unroll 8
        for (int m = 0; m < 8; m++)
          z[m] = _mm512_inserti64x4(
              _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)tmp[m][k])),
              _mm256_loadu_si256((const __m256i *)tmp[m + 8][k]), 1);
        transpose8x8_halves(z);
        const int G = 4 * h + k;
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++)
          _mm512_storeu_si512(q + (G * 8 + g) * 64, z[g]);
      }
    }
  }
}

static inline __attribute__((always_inline)) void
gemm_tile_q6_K(const int T, const cll_matmul_args *a, int64_t nb, const uint8_t *panel, int64_t t0,
               int64_t r, __mmask16 mask) {
  __m512 acc[GEMM_TOK];
  const sb_q8_K *yrow[GEMM_TOK];
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_K *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
  }
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *q = panel + (size_t)i * K6_SB_BYTES;
    const int32_t *sc = (const int32_t *)(q + 8 * 8 * 64);
    const int32_t *sp = sc + 16 * GEMM_ROWS;
    const float *d = (const float *)(sp + 8 * GEMM_ROWS);
    __m512i si[GEMM_TOK], mi[GEMM_TOK];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
      si[t] = mi[t] = _mm512_setzero_si512();
#pragma GCC unroll 1
    for (int G = 0; G < 8; G++) {
      __m512i w[8];
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++)
        w[g] = _mm512_loadu_si512(q + (G * 8 + g) * 64);
      const __m512i sc0 = _mm512_loadu_si512(sc + (2 * G) * GEMM_ROWS);
      const __m512i sc1 = _mm512_loadu_si512(sc + (2 * G + 1) * GEMM_ROWS);
      const __m512i spv = _mm512_loadu_si512(sp + G * GEMM_ROWS);
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        const int8_t *yq = yrow[t][i].qs + 32 * G;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int g = 0; g < 4; g++) {
          s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(load_i32(yq + 4 * g)));
          s1 = _mm512_dpbusd_epi32(s1, w[g + 4], _mm512_set1_epi32(load_i32(yq + 16 + 4 * g)));
        }
        si[t] = _mm512_add_epi32(
            si[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
        mi[t] =
            _mm512_dpwssd_epi32(mi[t], spv, _mm512_set1_epi32(load_i32(yrow[t][i].bsums + 2 * G)));
      }
    }
    const __m512 dx = _mm512_loadu_ps(d);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      const __m512i tot = _mm512_sub_epi32(si[t], _mm512_slli_epi32(mi[t], 5));
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(yrow[t][i].d)),
                               _mm512_cvtepi32_ps(tot), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
    _mm512_mask_storeu_ps(a->y + (t0 + t) * a->y_stride + r, mask, acc[t]);
}

static void cll__gemm_q6_K_avx512(const cll_matmul_args *a) {
  const int64_t nb = a->n_in / SB_QK_K;
  uint8_t *panel = a->scratch;
  for (int64_t tc = 0; tc < a->n_tok; tc += GEMM_TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < GEMM_TOK_CHUNK ? a->n_tok : tc + GEMM_TOK_CHUNK;
    for (int64_t r = a->r0; r < a->r1; r += GEMM_ROWS) {
      const int64_t nr = a->r1 - r < GEMM_ROWS ? a->r1 - r : GEMM_ROWS;
      const __mmask16 mask = (__mmask16)((1u << nr) - 1u);
      gemm_pack_q6_K(a, r, nr, nb, panel);
      int64_t t0 = tc;
      for (; t0 + 4 <= te; t0 += 4)
        gemm_tile_q6_K(4, a, nb, panel, t0, r, mask);
      switch (te - t0) {
      case 3:
        gemm_tile_q6_K(3, a, nb, panel, t0, r, mask);
        break;
      case 2:
        gemm_tile_q6_K(2, a, nb, panel, t0, r, mask);
        break;
      case 1:
        gemm_tile_q6_K(1, a, nb, panel, t0, r, mask);
        break;
      default:
        break;
      }
    }
  }
}

const cll_kernels cll__kernels_avx512 = {
    .isa = "avx512",
    .dequant_row =
        {CLL__X86_DEQUANT, [CLL_TYPE_F16] = dequant_f16_512, [CLL_TYPE_BF16] = dequant_bf16_512},
    .quantize_row = {CLL__X86_QUANTIZE},
    .vec_dot =
        {CLL__X86_VEC_DOT_K, [CLL_TYPE_F16] = dot_f16_f32_512, [CLL_TYPE_BF16] = dot_bf16_f32_512,
         [CLL_TYPE_Q4_0] = dot_q4_0_q8_0_512, [CLL_TYPE_Q8_0] = dot_q8_0_q8_0_512},
    .pack_bytes = {[CLL_TYPE_Q4_0] = cll__pack_bytes_q4_0_avx512,
                   [CLL_TYPE_Q8_0] = cll__pack_bytes_q8_0_avx512,
                   [CLL_TYPE_Q4_K] = cll__pack_bytes_q4_K_avx512,
                   [CLL_TYPE_Q5_K] = cll__pack_bytes_q5_K_avx512},
    .pack = {[CLL_TYPE_Q4_0] = cll__pack_q4_0_avx512,
             [CLL_TYPE_Q8_0] = cll__pack_q8_0_avx512,
             [CLL_TYPE_Q4_K] = cll__pack_q4_K_avx512,
             [CLL_TYPE_Q5_K] = cll__pack_q5_K_avx512},
    .matmul_packed = {[CLL_TYPE_Q4_0] = cll__matmul_q4_0_packed_avx512,
                      [CLL_TYPE_Q8_0] = cll__matmul_q8_0_packed_avx512,
                      [CLL_TYPE_Q4_K] = cll__matmul_q4_K_packed_avx512,
                      [CLL_TYPE_Q5_K] = cll__matmul_q5_K_packed_avx512},
    .vec_dot_rows = {[CLL_TYPE_Q4_0] = cll__dot4_q4_0_avx512,
                     [CLL_TYPE_F16] = dot4_f16_512,
                     [CLL_TYPE_BF16] = dot4_bf16_512},
    .gemm = {[CLL_TYPE_Q4_0] = cll__gemm_q8_0_avx512,
             [CLL_TYPE_Q8_0] = cll__gemm_q8_0_avx512,
             [CLL_TYPE_Q4_K] = cll__gemm_q4_K_avx512,
             [CLL_TYPE_Q6_K] = cll__gemm_q6_K_avx512},
    .gemm_scratch_bytes = {[CLL_TYPE_Q4_0] = cll__gemm_q8_0_scratch_bytes_avx512,
                           [CLL_TYPE_Q8_0] = cll__gemm_q8_0_scratch_bytes_avx512,
                           [CLL_TYPE_Q4_K] = cll__gemm_q4_K_scratch_bytes_avx512,
                           [CLL_TYPE_Q6_K] = cll__gemm_q6_K_scratch_bytes_avx512},
    /* From how many tokens the int8 GEMM beats the fused dots (bench/kernels,
     * one thread): Q4_0/Q8_0 from 2 (81 vs 49 GFLOP/s; 1: 63 vs 70); the
     * K-quant panels cost more to pack: Q4_K from 4 (86 vs 60; 2: 47 vs
     * 60), Q6_K from 8 (4: 60 vs 66; 16: 146 vs 56). */
    .gemm_min_tok =
        {[CLL_TYPE_Q4_0] = 2, [CLL_TYPE_Q8_0] = 2, [CLL_TYPE_Q4_K] = 4, [CLL_TYPE_Q6_K] = 8},
    /* F16 rows against a few tokens (attention of a GQA group): tokens in
     * the lanes, no horizontal sums (bench/kernels: F16 n_tok=4, 8, 16). */
    .matmul_few = {[CLL_TYPE_F16] = cll__matmul_f16_small_avx512},
    .few_min_tok = {[CLL_TYPE_F16] = 2},
    .few_max_tok = {[CLL_TYPE_F16] = 16},
};

#else
typedef int cll__avx512_unused; /* ISO C: a translation unit is not empty */
#endif
