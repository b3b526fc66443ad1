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

typedef struct {
  float dy;   /* the token block's scale */
  int32_t sy; /* off * sum of its 32 quants */
} tok_block;

static size_t gemm_panel_bytes(int64_t nb) {
  return (size_t)nb * (GEMM_ROWS * SB_QK + GEMM_ROWS * sizeof(float));
}

size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in, int64_t n_tok) {
  const int64_t nb = n_in / SB_QK;
  return gemm_panel_bytes(nb) + (size_t)(n_tok * nb) * sizeof(tok_block) + 64;
}

static inline int32_t load_i32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Rows [r, r + nr) of W into the panel: quants at q[i][g][row][4], scales
 * at d[i][row]; missing rows (nr < 16) are zero. */
static void gemm_pack(const cll_matmul_args *a, int64_t r, int64_t nr, int64_t nb, uint8_t *q,
                      float *d) {
  const int is_q4 = a->wtype == CLL_TYPE_Q4_0;
  for (int64_t j = 0; j < GEMM_ROWS; j++) {
    const char *w = (const char *)a->w + (size_t)(r + j) * a->w_stride;
    for (int64_t i = 0; i < nb; i++) {
      uint8_t *dst = q + i * (GEMM_ROWS * SB_QK) + 4 * j;
      uint8_t b[32];
      float dv = 0.0f;
      if (j >= nr) {
        memset(b, is_q4 ? 0 : 128, sizeof b);
      } else if (is_q4) {
        const sb_q4_0 *x = (const sb_q4_0 *)w + i;
        _mm256_storeu_si256((__m256i *)b, unpack_nibbles16(x->qs));
        dv = h2f(x->d);
      } else {
        const sb_q8_0 *x = (const sb_q8_0 *)w + i;
        _mm256_storeu_si256((__m256i *)b,
                            _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)x->qs),
                                             _mm256_set1_epi8((char)0x80)));
        dv = h2f(x->d);
      }
      for (int g = 0; g < 8; g++) memcpy(dst + g * (GEMM_ROWS * 4), b + 4 * g, 4);
      d[i * GEMM_ROWS + j] = dv;
    }
  }
}

/* T tokens (t0..t0+T) times one packed panel; writes rows [r, r + nr). */
static inline __attribute__((always_inline)) void
gemm_tile(const int T, const cll_matmul_args *a, int64_t nb, const uint8_t *q, const float *d,
          const tok_block *tb, int64_t t0, int64_t r, __mmask16 mask) {
  __m512 acc[GEMM_TOK];
  const sb_q8_0 *yrow[GEMM_TOK];
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_0 *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
  }
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *qi = q + i * (GEMM_ROWS * SB_QK);
    __m512i w[8];
    for (int g = 0; g < 8; g++) w[g] = _mm512_loadu_si512(qi + 64 * g);
    const __m512 dx = _mm512_loadu_ps(d + i * GEMM_ROWS);
    for (int t = 0; t < T; t++) {
      const tok_block *b = &tb[(t0 + t) * nb + i];
      const int8_t *yq = yrow[t][i].qs;
      __m512i s = _mm512_set1_epi32(-b->sy);
      for (int g = 0; g < 8; g++)
        s = _mm512_dpbusd_epi32(s, w[g], _mm512_set1_epi32(load_i32(yq + 4 * g)));
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(b->dy)), _mm512_cvtepi32_ps(s),
                               acc[t]);
    }
  }
  for (int t = 0; t < T; t++)
    _mm512_mask_storeu_ps(a->y + (t0 + t) * a->y_stride + r, mask, acc[t]);
}

void cll__gemm_q8_0_avx512(const cll_matmul_args *a) {
  const int64_t nb = a->n_in / SB_QK;
  uint8_t *q = a->scratch;
  float *d = (float *)(q + (size_t)nb * GEMM_ROWS * SB_QK);
  tok_block *tb = (tok_block *)((char *)a->scratch + gemm_panel_bytes(nb));
  const int32_t off = a->wtype == CLL_TYPE_Q4_0 ? 8 : 128;
  /* Per token and block: scale and off * sum(quants). The sum comes from
   * vpsadbw on the quants biased to unsigned (sum(y + 128) - 32 * 128). */
  for (int64_t t = 0; t < a->n_tok; t++) {
    const sb_q8_0 *y = (const sb_q8_0 *)((const char *)a->xq + (size_t)t * a->xq_stride);
    for (int64_t i = 0; i < nb; i++) {
      const __m256i u = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)y[i].qs),
                                         _mm256_set1_epi8((char)0x80));
      const __m256i s4 = _mm256_sad_epu8(u, _mm256_setzero_si256());
      const __m128i s2 = _mm_add_epi64(_mm256_castsi256_si128(s4), _mm256_extracti128_si256(s4, 1));
      const int64_t sum = _mm_cvtsi128_si64(_mm_add_epi64(s2, _mm_unpackhi_epi64(s2, s2))) - 4096;
      tb[t * nb + i] = (tok_block){h2f(y[i].d), (int32_t)(off * sum)};
    }
  }
  for (int64_t r = a->r0; r < a->r1; r += GEMM_ROWS) {
    const int64_t nr = a->r1 - r < GEMM_ROWS ? a->r1 - r : GEMM_ROWS;
    const __mmask16 mask = (__mmask16)((1u << nr) - 1u);
    gemm_pack(a, r, nr, nb, q, d);
    int64_t t0 = 0;
    for (; t0 + GEMM_TOK <= a->n_tok; t0 += GEMM_TOK) gemm_tile(GEMM_TOK, a, nb, q, d, tb, t0, r, mask);
    switch (a->n_tok - t0) {
    case 7: gemm_tile(7, a, nb, q, d, tb, t0, r, mask); break;
    case 6: gemm_tile(6, a, nb, q, d, tb, t0, r, mask); break;
    case 5: gemm_tile(5, a, nb, q, d, tb, t0, r, mask); break;
    case 4: gemm_tile(4, a, nb, q, d, tb, t0, r, mask); break;
    case 3: gemm_tile(3, a, nb, q, d, tb, t0, r, mask); break;
    case 2: gemm_tile(2, a, nb, q, d, tb, t0, r, mask); break;
    case 1: gemm_tile(1, a, nb, q, d, tb, t0, r, mask); break;
    default: break;
    }
  }
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
