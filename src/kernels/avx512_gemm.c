/* avx512_gemm.c — the int8 GEMMs of the avx512 table (its gemm and
 * gemm_scratch_bytes slots): many tokens (prefill, batched steps) times
 * Q4_0 / Q8_0, Q4_K or Q6_K weights that stay in GGUF form; each panel of
 * 16 rows is repacked into the caller's scratch once per chunk of tokens.
 * The matrices repacked at load go through avx512_packed.c instead.
 * Compiled with the avx512 flags. */
#if defined(__x86_64__)

#include "kernels/avx512_internal.h"

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

static size_t gemm_panel_bytes(int64_t nb) {
  return (size_t)nb * (GEMM_ROWS * SB_QK + GEMM_ROWS * sizeof(float));
}

size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in) {
  return gemm_panel_bytes(n_in / SB_QK) + 64;
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

/* T tokens (t0..t0+T) times one packed panel; writes rows [r, r + nr).
 * off: the weights' unsigned offset (Q4_0 8, Q8_0 128). */
static inline __attribute__((always_inline)) void gemm_tile(const int T, const cll_matmul_args *a,
                                                            int64_t nb, const uint8_t *q,
                                                            const float *d, int32_t off, int64_t t0,
                                                            int64_t r, __mmask16 mask) {
  __m512 acc[GEMM_TOK];
  const sb_q8_0 *yrow[GEMM_TOK];
  const struct cll__q8_sum *ysum[GEMM_TOK];
  q8_tile_tokens(T, a, nb, t0, acc, yrow, ysum);
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
        s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(ld32(yq + 4 * g)));
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(ysum[t][i].d)),
                               _mm512_cvtepi32_ps(s), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
    _mm512_mask_storeu_ps(a->y + (t0 + t) * a->y_stride + r, mask, acc[t]);
}

void cll__gemm_q8_0_avx512(const cll_matmul_args *a) {
  const int64_t nb = a->n_in / SB_QK;
  uint8_t *q = a->scratch;
  float *d = (float *)(q + (size_t)nb * GEMM_ROWS * SB_QK);
  const int32_t off = a->wtype == CLL_TYPE_Q4_0 ? 8 : 128;
  /* Tokens in chunks whose activations stay in L2 while every panel of
   * the slice passes over them; a panel is repacked once per chunk. */
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t r = a->r0; r < a->r1; r += GEMM_ROWS) {
      const int64_t nr = a->r1 - r < GEMM_ROWS ? a->r1 - r : GEMM_ROWS;
      const __mmask16 mask = (__mmask16)((1u << nr) - 1u);
      gemm_pack(a, r, nr, nb, q, d);
      int64_t t0 = tc;
      for (; t0 + GEMM_TOK <= te; t0 += GEMM_TOK)
        gemm_tile(GEMM_TOK, a, nb, q, d, off, t0, r, mask);
      SWITCH_TILES7(te - t0, gemm_tile, a, nb, q, d, off, t0, r, mask)
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

size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in) {
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
          s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(ld32(yq + 4 * g)));
        si[t] = _mm512_add_epi32(si[t], _mm512_mullo_epi32(s, scv));
        mi[t] = _mm512_dpwssd_epi32(mi[t], mnv, _mm512_set1_epi32(ld32(yrow[t][i].bsums + 2 * sb)));
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

/* ---------------------------------------------------------------- int8 GEMM, Q6_K
 *
 * Q6_K weights times Q8_K activations, as Q4_K: per super-block the panel
 * holds the 6-bit quants (0..63) of 16 rows transposed in 8 groups of 32
 * elements, the 16 int8 scales of each row as int32 (one per 16
 * elements, so a group's first 4 and last 4 vpdpbusd get different
 * scales), the scales again as int16 pairs for the "-32" correction
 * (32 * sum of scale * 16-element sum, by vpdpwssd), and d. */

size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in) {
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
          s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(ld32(yq + 4 * g)));
          s1 = _mm512_dpbusd_epi32(s1, w[g + 4], _mm512_set1_epi32(ld32(yq + 16 + 4 * g)));
        }
        si[t] = _mm512_add_epi32(
            si[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, sc0), _mm512_mullo_epi32(s1, sc1)));
        mi[t] = _mm512_dpwssd_epi32(mi[t], spv, _mm512_set1_epi32(ld32(yrow[t][i].bsums + 2 * G)));
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

/* The K-quant GEMMs: Q4_K (q6 = 0) or Q6_K (q6 = 1) panels of 16 rows,
 * packed once per chunk of tokens, by tiles of 4 tokens. */
#define GEMM_TILE_K(T, q6, ...)                                                                    \
  do {                                                                                             \
    if (q6)                                                                                        \
      gemm_tile_q6_K(T, __VA_ARGS__);                                                              \
    else                                                                                           \
      gemm_tile_q4_K(T, __VA_ARGS__);                                                              \
  } while (0)

/* Tokens [tc, te) times one prepared panel (rows r.., mask), by tiles of
 * 4 and one of the rest. */
static inline __attribute__((always_inline)) void
gemm_k_tiles(const int q6, const cll_matmul_args *a, int64_t nb, const uint8_t *panel, int64_t tc,
             int64_t te, int64_t r, __mmask16 mask) {
  int64_t t0 = tc;
  for (; t0 + 4 <= te; t0 += 4)
    GEMM_TILE_K(4, q6, a, nb, panel, t0, r, mask);
  SWITCH_TILES3(te - t0, GEMM_TILE_K, q6, a, nb, panel, t0, r, mask)
}

static inline __attribute__((always_inline)) void gemm_k(const int q6, const cll_matmul_args *a) {
  const int64_t nb = a->n_in / SB_QK_K;
  uint8_t *panel = a->scratch;
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t r = a->r0; r < a->r1; r += GEMM_ROWS) {
      const int64_t nr = a->r1 - r < GEMM_ROWS ? a->r1 - r : GEMM_ROWS;
      const __mmask16 mask = (__mmask16)((1u << nr) - 1u);
      if (q6)
        gemm_pack_q6_K(a, r, nr, nb, panel);
      else
        gemm_pack_q4_K(a, r, nr, nb, panel);
      gemm_k_tiles(q6, a, nb, panel, tc, te, r, mask);
    }
  }
}

void cll__gemm_q4_K_avx512(const cll_matmul_args *a) {
  gemm_k(0, a);
}

void cll__gemm_q6_K_avx512(const cll_matmul_args *a) {
  gemm_k(1, a);
}

void cll__gemm_q4_K_tiles_avx512(const cll_matmul_args *a, int64_t nb, const uint8_t *panel,
                                 int64_t tc, int64_t te, int64_t r) {
  gemm_k_tiles(0, a, nb, panel, tc, te, r, 0xFFFF);
}

void cll__gemm_q6_K_tiles_avx512(const cll_matmul_args *a, int64_t nb, const uint8_t *panel,
                                 int64_t tc, int64_t te, int64_t r) {
  gemm_k_tiles(1, a, nb, panel, tc, te, r, 0xFFFF);
}

#else
typedef int cll__avx512_gemm_unused; /* ISO C: a translation unit is not empty */
#endif
