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

/* Each row is prefetched 1 KiB (16 lines) ahead: the four streams per
 * core are more than the hardware prefetcher runs far enough ahead on
 * (bench/model F16, base vs 512/1024/2048 alternated: 1024 best, decode
 * +13-22% on one thread, +4-10% on two). */
#define HALF_PREFETCH 1024

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
      _mm_prefetch((const char *)(x[r] + i) + HALF_PREFETCH, _MM_HINT_T0);
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

/* Q4_0 (q4) or Q8_0 weights times Q8_0 activations; the weights made
 * unsigned (Q4_0: q in 0..15, offset 8; Q8_0: q + 128). */
static inline __attribute__((always_inline)) void
dot_x_q8_0_512(const int q4, int64_t n, const void *w, const void *a, float *out) {
  const sb_q8_0 *y = a;
  const int64_t nb = n / SB_QK;
  const size_t bb = q4 ? sizeof(sb_q4_0) : sizeof(sb_q8_0);
  const __m512i perm = _mm512_setr_epi64(0, 1, 8, 9, 2, 3, 10, 11);
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m512i off = q4 ? _mm512_set1_epi8(8) : _mm512_set1_epi8((char)0x80);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= nb; i += 8) {
    const __m512 dd =
        q4 ? SCALES8((const sb_q4_0 *)w + i, y + i) : SCALES8((const sb_q8_0 *)w + i, y + i);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      const sb_q8_0 *y0 = y + i + 2 * k;
      __m512i xx;
      if (q4) {
        const sb_q4_0 *x0 = (const sb_q4_0 *)w + i + 2 * k;
        const __m256i q = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)x0[0].qs)),
            _mm_loadu_si128((const __m128i *)x0[1].qs), 1);
        const __m512i lo = _mm512_castsi256_si512(_mm256_and_si256(q, m4));
        const __m512i hi = _mm512_castsi256_si512(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4));
        xx = _mm512_permutex2var_epi64(lo, perm, hi);
      } else {
        const sb_q8_0 *x0 = (const sb_q8_0 *)w + i + 2 * k;
        xx = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(
                                                     _mm256_loadu_si256((const __m256i *)x0[0].qs)),
                                                 _mm256_loadu_si256((const __m256i *)x0[1].qs), 1),
                              off);
      }
      const __m512i yy =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)y0[0].qs)),
                             _mm256_loadu_si256((const __m256i *)y0[1].qs), 1);
      const __m512i s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xx, yy),
                                         _mm512_dpbusd_epi32(_mm512_setzero_si512(), off, yy));
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
  if (i < nb) {
    const void *xt = (const char *)w + (size_t)i * bb;
    if (q4)
      dot_q4_0_q8_0((nb - i) * SB_QK, xt, y + i, &tail);
    else
      dot_q8_0_q8_0((nb - i) * SB_QK, xt, y + i, &tail);
  }
  *out = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)) + tail;
}

static void dot_q4_0_q8_0_512(int64_t n, const void *w, const void *a, float *out) {
  dot_x_q8_0_512(1, n, w, a, out);
}

static void dot_q8_0_q8_0_512(int64_t n, const void *w, const void *a, float *out) {
  dot_x_q8_0_512(0, n, w, a, out);
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

const cll_kernels cll__kernels_avx512 = {
    .isa = "avx512",
    .dequant_row =
        {CLL__X86_DEQUANT, [CLL_TYPE_F16] = dequant_f16_512, [CLL_TYPE_BF16] = dequant_bf16_512},
    .quantize_row = {CLL__X86_QUANTIZE},
    .vec_dot =
        {CLL__X86_VEC_DOT_K, [CLL_TYPE_F16] = dot_f16_f32_512, [CLL_TYPE_BF16] = dot_bf16_f32_512,
         [CLL_TYPE_Q4_0] = dot_q4_0_q8_0_512, [CLL_TYPE_Q8_0] = dot_q8_0_q8_0_512},
    .pack_bytes = {[CLL_TYPE_Q4_0] = cll__pack_bytes_q4_0,
                   [CLL_TYPE_Q8_0] = cll__pack_bytes_q8_0,
                   [CLL_TYPE_Q4_K] = cll__pack_bytes_q4_K,
                   [CLL_TYPE_Q5_K] = cll__pack_bytes_q5_K,
                   [CLL_TYPE_Q6_K] = cll__pack_bytes_q6_K,
                   [CLL_TYPE_F16] = cll__pack_bytes_f16_avx512},
    .pack = {[CLL_TYPE_Q4_0] = cll__pack_q4_0,
             [CLL_TYPE_Q8_0] = cll__pack_q8_0,
             [CLL_TYPE_Q4_K] = cll__pack_q4_K,
             [CLL_TYPE_Q5_K] = cll__pack_q5_K,
             [CLL_TYPE_Q6_K] = cll__pack_q6_K,
             [CLL_TYPE_F16] = cll__pack_f16_avx512},
    .matmul_packed = {[CLL_TYPE_Q4_0] = cll__matmul_q4_0_packed_avx512,
                      [CLL_TYPE_Q8_0] = cll__matmul_q8_0_packed_avx512,
                      [CLL_TYPE_Q4_K] = cll__matmul_q4_K_packed_avx512,
                      [CLL_TYPE_Q5_K] = cll__matmul_q5_K_packed_avx512,
                      [CLL_TYPE_Q6_K] = cll__matmul_q6_K_packed_avx512,
                      [CLL_TYPE_F16] = cll__matmul_f16_packed_avx512},
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

/* BF16 matrices packed for vdpbf16ps (avx512_half.c): AVX512_BF16, which
 * the table above does not require; dispatch.c adds these slots to it
 * only where CPUID reports the extension. */
const cll_kernels cll__kernels_avx512_bf16 = {
    .isa = "avx512",
    .pack_bytes = {[CLL_TYPE_BF16] = cll__pack_bytes_bf16_avx512},
    .pack = {[CLL_TYPE_BF16] = cll__pack_bf16_avx512},
    .matmul_packed = {[CLL_TYPE_BF16] = cll__matmul_bf16_packed_avx512},
};

#else
typedef int cll__avx512_unused; /* ISO C: a translation unit is not empty */
#endif
