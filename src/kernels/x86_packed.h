/* x86_packed.h — products with the Q4_0, Q8_0, Q4_K, Q5_K and Q6_K
 * panels of pack.c on 256-bit vectors: the matmul_packed slots of the
 * avx2 table.
 *
 * Included by avx2.c (plain AVX2) and by avx2_vnni.c (built with
 * -mavxvnni as well; dispatch.c adds its slots to the avx2 table where
 * CPUID has AVX-VNNI), so every function here is file-local and the only
 * difference inside is the u8 x s8 dot:
 *  - AVX-VNNI: vpdpbusd on ymm, as the avx512 kernels on zmm;
 *  - plain AVX2: vpmaddubsw (u8 x s8 -> saturating int16 pairs), then
 *    vpmaddwd. 4-bit weights (0..15) times activations (|y| <= 127: the
 *    Q8_0 / Q8_K quantizers never write -128) give pairs of at most
 *    3810, so the int16 results of a block's 8 groups are summed before
 *    one vpmaddwd (30480 < 32767), and Q4_K's vpmaddwd multiplies by the
 *    sub-block scale on the way; Q5_K's 5-bit weights (0..31) give pairs
 *    of 7874, so its groups go to the vpmaddwd 4 at a time (31496), and
 *    Q6_K's 6-bit ones (0..63) pairs of 16002, 2 at a time (32004). Q8_0's packed bytes are q + 128
 * (0..255), and 255 * 127 * 2 overflows int16: the bias comes off (xor 0x80) and the sign goes to
 * the activation (vpsignb), |q| <= 128: pairs of at most 32512, one vpmaddwd per group.
 *
 * One 64-byte group of a panel is two ymm registers: rows 0-7 (bytes
 * 0-31) and rows 8-15 (32-63). With 16 ymm registers a tile is either one
 * token over both halves (decode: the panel streams from memory once, its
 * lines fetched ahead) or up to 4 tokens over one half (XP_TOK; the second
 * half's pass reads the panel from L1/L2), so the same kernels serve
 * decode, batched decode and prefill; a chunk of TOK_CHUNK tokens reads a
 * panel from memory once. */
#ifndef CLLAMA_KERNELS_X86_PACKED_H
#define CLLAMA_KERNELS_X86_PACKED_H

#include "kernels/packed.h"
#include "kernels/x86_inline.h"

#include <immintrin.h>

#define XP_TOK 4        /* tokens per tile over one half of a panel */
#define XP_PF_Q4_0 2048 /* bytes ahead a decode pass over a Q4_0 panel prefetches */
#define XP_PF_SB 3      /* K-quant super-blocks ahead (avx512_packed.c: 3 was best) */
/* Q4_0 decode reads two panels at once (two streams from memory, each
 * activation broadcast feeding both): TinyLlama Q4_0 tg32, 2 threads,
 * alternated, 2 rounds: one panel 47.3/37.6 tok/s (avx2-novnni), 50.0/44.2
 * (AVX-VNNI); two 52.8/49.1 and 54.6/51.8. Q8_0 stays at one panel: two
 * gave 21.8/22.4 -> 23.8/23.0 without VNNI but 27.5/26.4 -> 24.5/22.1 with
 * it, near the memory roofline either way. */
#ifndef XP_DECODE_PANELS
#define XP_DECODE_PANELS 2
#endif

#if defined(__AVXVNNI__)
#define XP_VNNI 1
#else
#define XP_VNNI 0
#endif

/* s + the dot of unsigned bytes w (0..15) and signed bytes y, 4 to a lane:
 * int32 lanes with VNNI, int16 pair sums without (xp_u4_sum widens). */
static inline __m256i xp_u4_acc(__m256i s, __m256i w, __m256i y) {
#if XP_VNNI
  return _mm256_dpbusd_avx_epi32(s, w, y);
#else
  return _mm256_add_epi16(s, _mm256_maddubs_epi16(w, y));
#endif
}

/* xp_u4_acc's sums as int32 lanes, times m (int16 pairs (m, m) per lane
 * without VNNI; int32 with; NULL-like: mul = 0 means times 1). */
static inline __m256i xp_u4_sum(__m256i s, const int mul, __m256i m) {
#if XP_VNNI
  return mul ? _mm256_mullo_epi32(s, m) : s;
#else
  return _mm256_madd_epi16(s, mul ? m : _mm256_set1_epi16(1));
#endif
}

/* v, kept as it is at this point: an empty asm the compiler cannot see
 * through. GCC otherwise reassociates a tile's whole chain of int32 sums
 * (si += one scaled sub-block sum, 16 or 32 times per super-block) into
 * one tree at the end, and keeps every term alive until then: 140 ymm
 * spills per Q6_K super-block in the one-token tile. */
static inline __m256i xp_keep(__m256i v) {
  __asm__("" : "+x"(v));
  return v;
}

/* p, as a pointer the compiler cannot relate to p: loads through it are
 * not merged with the same loads through p elsewhere in an unrolled tile.
 * Q5_K's qh vectors serve all 4 chunks of a super-block; GCC loaded each
 * once and kept it across the chunks (16 ymm at decode, both halves),
 * spilling the rest, where a reload from L1 costs nothing. */
static inline const uint8_t *xp_fresh(const uint8_t *p) {
  __asm__("" : "+r"(p));
  return p;
}

/* 8 fp16 at p as floats. */
static inline __m256 xp_h8(const void *p) {
  return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* ---------------------------------------------------------------- Q4_0 and Q8_0 */

/* T tokens (t0..) times H halves (h0.., 8 rows each) of one Q4_0 (q4) or
 * Q8_0 panel q; y: row 16p + 8h0 of token t0; pf: this pass streams the
 * panel from memory (Q4_0: fetch its quants ahead). */
static inline __attribute__((always_inline)) void xp_pq_tile(const int T, const int H, const int q4,
                                                             const cll_matmul_args *a, int64_t nb,
                                                             size_t pb, const uint8_t *q, int h0,
                                                             int64_t t0, float *y, int pf) {
  const size_t qb = PQ_BYTES(q4);
  /* half u: rows 8(h0 + u).. from panel q, the ones after it from the
   * next panel (pb bytes on): H = 4 is two panels */
#define XP_HALF_Q(u) (q + (size_t)((h0 + (u)) / 2) * pb + 32 * (size_t)((h0 + (u)) % 2))
#define XP_HALF_D(u)                                                                               \
  ((const uint16_t *)(q + (size_t)((h0 + (u)) / 2) * pb + (size_t)nb * qb) + 8 * ((h0 + (u)) % 2))
  const __m256i m4 = _mm256_set1_epi8(0x0F), b80 = _mm256_set1_epi8((char)0x80);
  __m256 acc[XP_TOK][4];
  const sb_q8_0 *yrow[XP_TOK];
  const struct cll__q8_sum *ysum[XP_TOK];
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    yrow[t] = (const sb_q8_0 *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
    ysum[t] = cll__q8_sums(yrow[t], nb);
#pragma GCC unroll 8
    for (int h = 0; h < H; h++)
      acc[t][h] = _mm256_setzero_ps();
  }
  for (int64_t i = 0; i < nb; i++) {
    if (q4 && pf)
#pragma GCC unroll 8
      for (int u = 0; u < H; u += 2)
#pragma GCC unroll 8
        for (int l = 0; l < 4; l++)
          _mm_prefetch((const char *)XP_HALF_Q(u) + (size_t)i * qb + XP_PF_Q4_0 + 64 * l,
                       _MM_HINT_T0);
    __m256i s[XP_TOK][4];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
#pragma GCC unroll 8
      for (int h = 0; h < H; h++)
        s[t][h] = _mm256_setzero_si256();
    if (q4) {
/* group g: low nibbles meet activation dword g, high ones g + 4 */
#pragma GCC unroll 8
      for (int g = 0; g < 4; g++)
#pragma GCC unroll 8
        for (int h = 0; h < H; h++) {
          const __m256i v =
              _mm256_load_si256((const __m256i *)(XP_HALF_Q(h) + (size_t)i * qb + 64 * g));
          const __m256i lo = _mm256_and_si256(v, m4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
#pragma GCC unroll 8
          for (int t = 0; t < T; t++) {
            const int8_t *yq = yrow[t][i].qs;
            s[t][h] = xp_u4_acc(s[t][h], lo, _mm256_set1_epi32(ld32(yq + 4 * g)));
            s[t][h] = xp_u4_acc(s[t][h], hi, _mm256_set1_epi32(ld32(yq + 16 + 4 * g)));
          }
        }
    } else {
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++)
#pragma GCC unroll 8
        for (int h = 0; h < H; h++) {
          const __m256i v =
              _mm256_load_si256((const __m256i *)(XP_HALF_Q(h) + (size_t)i * qb + 64 * g));
#if XP_VNNI
#pragma GCC unroll 8
          for (int t = 0; t < T; t++)
            s[t][h] =
                _mm256_dpbusd_avx_epi32(s[t][h], v, _mm256_set1_epi32(ld32(yrow[t][i].qs + 4 * g)));
#else
          const __m256i ws = _mm256_xor_si256(v, b80); /* q, signed */
          const __m256i wa = _mm256_abs_epi8(ws);      /* |q| <= 128, as unsigned */
#pragma GCC unroll 8
          for (int t = 0; t < T; t++) {
            const __m256i yv = _mm256_set1_epi32(ld32(yrow[t][i].qs + 4 * g));
            s[t][h] = _mm256_add_epi32(
                s[t][h], _mm256_madd_epi16(_mm256_maddubs_epi16(wa, _mm256_sign_epi8(yv, ws)),
                                           _mm256_set1_epi16(1)));
          }
#endif
        }
    }
    (void)m4, (void)b80;
#pragma GCC unroll 8
    for (int h = 0; h < H; h++) {
      const __m256 dx = xp_h8(XP_HALF_D(h) + i * CLL_PACK_ROWS);
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        __m256i si;
        if (q4)
          si = _mm256_add_epi32(xp_u4_sum(s[t][h], 0, s[t][h]),
                                _mm256_set1_epi32(-8 * ysum[t][i].s));
        else if (XP_VNNI)
          si = _mm256_add_epi32(s[t][h], _mm256_set1_epi32(-128 * ysum[t][i].s));
        else
          si = s[t][h];
        acc[t][h] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(ysum[t][i].d)),
                                    _mm256_cvtepi32_ps(si), acc[t][h]);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
#pragma GCC unroll 8
    for (int h = 0; h < H; h++)
      _mm256_storeu_ps(y + t * a->y_stride + 8 * h, acc[t][h]);
#undef XP_HALF_Q
#undef XP_HALF_D
}

#define XP_Q4_TILE(T, ...) xp_pq_tile(T, 1, 1, __VA_ARGS__)
#define XP_Q8_TILE(T, ...) xp_pq_tile(T, 1, 0, __VA_ARGS__)

/* One tile of n tokens over half h of a panel (out of line: one copy per
 * tile size, kept out of the panel loop). */
static void xp_pq_half(const int q4, int64_t n, const cll_matmul_args *a, int64_t nb,
                       const uint8_t *q, int h, int64_t t0, float *y, int pf) {
  if (q4) {
    SWITCH_TILES4(n, XP_Q4_TILE, a, nb, 0, q, h, t0, y, pf)
  } else {
    SWITCH_TILES4(n, XP_Q8_TILE, a, nb, 0, q, h, t0, y, pf)
  }
}

static void xp_pq_matmul(const int q4, const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nb = a->n_in / SB_QK;
  const size_t pb = q4 ? p4_panel_bytes(nb) : p8_panel_bytes(nb);
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1; p++) {
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      /* Decode: both halves in one pass; Q4_0 two panels at a time
       * (XP_DECODE_PANELS). */
      if (te - tc == 1 && q4 && XP_DECODE_PANELS == 2 && p + 2 <= p1) {
        xp_pq_tile(1, 4, q4, a, nb, pb, q, 0, tc, y + tc * a->y_stride, 1);
        p++;
        continue;
      }
      if (te - tc == 1) {
        xp_pq_tile(1, 2, q4, a, nb, pb, q, 0, tc, y + tc * a->y_stride, 1);
        continue;
      }
#pragma GCC unroll 8
      for (int h = 0; h < 2; h++)
        FOR_TILES(tc, te, XP_TOK, t0, t1) {
          xp_pq_half(q4, t1 - t0, a, nb, q, h, t0, y + t0 * a->y_stride + 8 * h,
                     h == 0 && t0 == tc);
        }
    }
  }
}

static void xp_matmul_q4_0_packed(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  xp_pq_matmul(1, a, p0, p1);
}

/* unused in avx2.c: plain AVX2 keeps Q8_0 in place (see its table) */
__attribute__((unused)) static void xp_matmul_q8_0_packed(const cll_matmul_args *a, int64_t p0,
                                                          int64_t p1) {
  xp_pq_matmul(0, a, p0, p1);
}

/* ---------------------------------------------------------------- Q4_K and Q5_K */

/* The scale of sub-block s of rows 8h.. of a packed Q4_K / Q5_K
 * super-block (sc: its 8 x 16 scale bytes), as xp_u4_sum's multiplier:
 * int16 pairs (sc, sc) without VNNI, int32 with. */
static inline __m256i xp_k4_scale(const uint8_t *sc, int s, int h) {
  const __m128i b = _mm_loadl_epi64((const __m128i *)(sc + 16 * s + 8 * h));
#if XP_VNNI
  return _mm256_cvtepu8_epi32(b);
#else
  return _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(b, b));
#endif
}

/* Bit `from` of every byte of h moved to bit `to` (other bits: garbage,
 * the caller masks). */
static inline __m256i xp_bit_to(__m256i h, const int from, const int to) {
  if (from < to)
    return _mm256_slli_epi16(h, to - from);
  if (from > to)
    return _mm256_srli_epi16(h, from - to);
  return h;
}

/* The K-quant tiles' start: token rows t0..t0+T of the Q8_K activations,
 * and zero sums for halves 0..H. */
static inline __attribute__((always_inline)) void xp_k_tile_start(const int T, const int H,
                                                                  const cll_matmul_args *a,
                                                                  int64_t t0, __m256 acc[][2],
                                                                  const sb_q8_K **yrow) {
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    yrow[t] = (const sb_q8_K *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
#pragma GCC unroll 8
    for (int h = 0; h < H; h++)
      acc[t][h] = _mm256_setzero_ps();
  }
}

/* Every line of the super-block XP_PF_SB ahead of q (sbb bytes each). */
static inline __attribute__((always_inline)) void xp_prefetch_sb(const uint8_t *q, size_t sbb) {
  for (size_t l = 0; l < sbb; l += 64)
    _mm_prefetch((const char *)q + XP_PF_SB * sbb + l, _MM_HINT_T0);
}

/* T tokens (t0..) times H halves (h0..) of one Q4_K (q5 = 0) or Q5_K
 * (q5 = 1) panel; y: row 16p + 8h0 of token t0; pf: this pass streams
 * the panel, fetch ahead. Each 64-element chunk's two sub-blocks (low,
 * high nibbles) go one after the other when the tile holds more than 2
 * token-halves (registers), together otherwise.
 *
 * Q5_K's fifth bit (bit 2c of a qh byte for chunk c's low nibbles, 2c + 1
 * for its high ones) goes to bit 4 of the quant: 0..31. Without VNNI a
 * vpmaddubsw pair is then up to 31 * 127 * 2 = 7874, so only 4 groups
 * (31496) are summed in int16 before the vpmaddwd by the scale, where
 * Q4_K sums all 8 (30480). */
static inline __attribute__((always_inline)) void xp_k4_tile(const int T, const int H, const int q5,
                                                             const cll_matmul_args *a, int64_t nsb,
                                                             const uint8_t *panel, int h0,
                                                             int64_t t0, float *y, int pf) {
  const int NE = T * H <= 2 ? 2 : 1;       /* sub-blocks of a chunk at once */
  const int FOLD = q5 && !XP_VNNI ? 4 : 8; /* groups summed before the scale */
  const size_t sbb = q5 ? PK5_SB : PK4_SB;
  const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
  __m256 acc[XP_TOK][2];
  const sb_q8_K *yrow[XP_TOK];
  xp_k_tile_start(T, H, a, t0, acc, yrow);
  for (int64_t i = 0; i < nsb; i++) {
    const uint8_t *q = panel + (size_t)i * sbb;
    if (pf)
      xp_prefetch_sb(q, sbb);
    const uint8_t *qh = q + 2048, *sc = q + (q5 ? 2560 : 2048), *mn = sc + 128;
    const uint16_t *dh = (const uint16_t *)(mn + 128);
    __m256i si[XP_TOK][2];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
#pragma GCC unroll 8
      for (int h = 0; h < H; h++)
        si[t][h] = _mm256_setzero_si256();
#pragma GCC unroll 8
    for (int c = 0; c < 4; c++)
#pragma GCC unroll 8
      for (int e0 = 0; e0 < 2; e0 += NE) {
        const uint8_t *qhc = xp_fresh(qh); /* chunk c's own loads of the qh */
        __m256i s[XP_TOK][2][2];
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
          if (g % FOLD == 0)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 8
              for (int h = 0; h < H; h++)
#pragma GCC unroll 8
                for (int e = 0; e < NE; e++)
                  s[t][h][e] = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int h = 0; h < H; h++) {
            const __m256i v =
                _mm256_load_si256((const __m256i *)(q + (c * 8 + g) * 64 + 32 * (h0 + h)));
            __m256i vh = _mm256_setzero_si256();
            if (q5)
              vh = _mm256_load_si256((const __m256i *)(qhc + g * 64 + 32 * (h0 + h)));
#pragma GCC unroll 8
            for (int e = 0; e < NE; e++) {
              __m256i w = (e0 + e) ? _mm256_and_si256(_mm256_srli_epi16(v, 4), m4)
                                   : _mm256_and_si256(v, m4);
              if (q5)
                w = _mm256_or_si256(w, _mm256_and_si256(xp_bit_to(vh, 2 * c + e0 + e, 4), b4));
#pragma GCC unroll 8
              for (int t = 0; t < T; t++)
                s[t][h][e] = xp_keep(xp_u4_acc(
                    s[t][h][e], w,
                    _mm256_set1_epi32(ld32(yrow[t][i].qs + 64 * c + 32 * (e0 + e) + 4 * g))));
            }
          }
          if (g % FOLD == FOLD - 1)
#pragma GCC unroll 8
            for (int h = 0; h < H; h++)
#pragma GCC unroll 8
              for (int e = 0; e < NE; e++) {
                const __m256i m = xp_k4_scale(sc, 2 * c + e0 + e, h0 + h);
#pragma GCC unroll 8
                for (int t = 0; t < T; t++)
                  si[t][h] = xp_keep(_mm256_add_epi32(si[t][h], xp_u4_sum(s[t][h][e], 1, m)));
              }
        }
      }
#pragma GCC unroll 8
    for (int h = 0; h < H; h++) {
      const __m256 dx = xp_h8(dh + 8 * (h0 + h)), dmx = xp_h8(dh + 16 + 8 * (h0 + h));
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        /* mins: sub-block pairs (2p, 2p + 1) of the mins as int16 pairs,
         * times the pairs of the token's 32-element sums */
        const __m128i b0 = _mm_loadu_si128((const __m128i *)yrow[t][i].bsums);
        const __m128i b1 = _mm_loadu_si128((const __m128i *)(yrow[t][i].bsums + 8));
        const __m128i bs = _mm_hadd_epi16(b0, b1); /* dword p: sums 2p, 2p + 1 */
        int32_t bsp[4];
        _mm_storeu_si128((__m128i *)bsp, bs);
        __m256i mi = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int pr = 0; pr < 4; pr++) {
          const __m256i mv = _mm256_cvtepu8_epi16(
              _mm_loadu_si128((const __m128i *)(mn + 32 * pr + 16 * (h0 + h))));
          mi = _mm256_add_epi32(mi, _mm256_madd_epi16(mv, _mm256_set1_epi32(bsp[pr])));
        }
        const __m256 dy = _mm256_set1_ps(yrow[t][i].d);
        acc[t][h] = _mm256_fmadd_ps(_mm256_mul_ps(dx, dy), _mm256_cvtepi32_ps(si[t][h]), acc[t][h]);
        acc[t][h] = _mm256_fnmadd_ps(_mm256_mul_ps(dmx, dy), _mm256_cvtepi32_ps(mi), acc[t][h]);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
#pragma GCC unroll 8
    for (int h = 0; h < H; h++)
      _mm256_storeu_ps(y + t * a->y_stride + 8 * h, acc[t][h]);
}

#define XP_K4_TILE(T, ...) xp_k4_tile(T, 1, __VA_ARGS__)

static void xp_k4_half(const int q5, int64_t n, const cll_matmul_args *a, int64_t nsb,
                       const uint8_t *q, int h, int64_t t0, float *y, int pf) {
  if (q5) {
    SWITCH_TILES4(n, XP_K4_TILE, 1, a, nsb, q, h, t0, y, pf)
  } else {
    SWITCH_TILES4(n, XP_K4_TILE, 0, a, nsb, q, h, t0, y, pf)
  }
}

static inline __attribute__((always_inline)) void
xp_k4_matmul(const int q5, const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nsb = a->n_in / SB_QK_K;
  const size_t pb = (size_t)nsb * (q5 ? PK5_SB : PK4_SB);
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1; p++) {
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      if (te - tc == 1) {
        xp_k4_tile(1, 2, q5, a, nsb, q, 0, tc, y + tc * a->y_stride, 1);
        continue;
      }
#pragma GCC unroll 8
      for (int h = 0; h < 2; h++)
        FOR_TILES(tc, te, XP_TOK, t0, t1) {
          xp_k4_half(q5, t1 - t0, a, nsb, q, h, t0, y + t0 * a->y_stride + 8 * h,
                     h == 0 && t0 == tc);
        }
    }
  }
}

static void xp_matmul_q4_K_packed(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  xp_k4_matmul(0, a, p0, p1);
}

static void xp_matmul_q5_K_packed(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  xp_k4_matmul(1, a, p0, p1);
}

/* ---------------------------------------------------------------- Q6_K
 *
 * The quants go in unsigned (0..63: 4 bits of ql, 2 of qh at bits 4-5)
 * and the format's "- 32" comes off once per super-block as 32 * the sum
 * over the 16 sub-blocks of scale * the token's 16-element sum (bsums),
 * one vpmaddwd on the int16 scale pairs (sc 2p, sc 2p + 1) of the panel
 * per pair of sub-blocks.
 *
 * A 16-element sub-block is 4 groups. Without VNNI a vpmaddubsw pair is
 * up to 63 * 127 * 2 = 16002, so two groups are summed in int16 (32004 <
 * 32767) and each such sum meets the int8 scale in one vpmaddwd (int16
 * pairs (sc, sc)); four would overflow. With VNNI the 4 groups go into
 * int32 lanes by vpdpbusd and one vpmulld applies the scale. The int32
 * sums stay far from overflow: |scale| <= 128, so a super-block's weight
 * sum is at most 256 * 63 * 127 * 128 = 2.6e8 and its correction 32 *
 * 16 * 128 * 2032 = 1.3e8. */

/* Int8 scale k (0, 1) of the scale pair pr of rows 8h.. of a packed
 * Q6_K super-block q, as xp_u4_sum's multiplier: int16 pairs (sc, sc)
 * without VNNI, int32 with. */
static inline __m256i xp_k6_scale(const uint8_t *q, int pr, int h, const int k) {
  const __m128i b = _mm_loadu_si128((const __m128i *)(q + PK6_SC + 32 * pr + 16 * h));
#if XP_VNNI
  const __m256i sp = _mm256_cvtepi8_epi16(b); /* dword j: (sc 2pr, sc 2pr + 1) of row j */
  return k ? _mm256_srai_epi32(sp, 16) : _mm256_srai_epi32(_mm256_slli_epi32(sp, 16), 16);
#else
  const __m128i dup = _mm_setr_epi8(k, k, 2 + k, 2 + k, 4 + k, 4 + k, 6 + k, 6 + k, 8 + k, 8 + k,
                                    10 + k, 10 + k, 12 + k, 12 + k, 14 + k, 14 + k);
  return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(b, dup));
#endif
}

/* T tokens (t0..) times H halves (h0..) of one Q6_K panel; y: row 16p +
 * 8h0 of token t0; pf: this pass streams the panel, fetch ahead. */
static inline __attribute__((always_inline)) void xp_k6_tile(const int T, const int H,
                                                             const cll_matmul_args *a, int64_t nsb,
                                                             const uint8_t *panel, int h0,
                                                             int64_t t0, float *y, int pf) {
  const int FOLD = XP_VNNI ? 4 : 2; /* groups summed before the scale */
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[XP_TOK][2];
  const sb_q8_K *yrow[XP_TOK];
  xp_k_tile_start(T, H, a, t0, acc, yrow);
  for (int64_t i = 0; i < nsb; i++) {
    const uint8_t *q = panel + (size_t)i * PK6_SB;
    if (pf)
      xp_prefetch_sb(q, PK6_SB);
    __m256i si[XP_TOK][2], mi[XP_TOK][2];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++)
#pragma GCC unroll 8
      for (int h = 0; h < H; h++)
        si[t][h] = mi[t][h] = _mm256_setzero_si256();
        /* chunk c of ql, its low (hi = 0) or high nibbles: elements off.. of
         * the super-block, sub-blocks 2pr (groups 0-3) and 2pr + 1 (4-7) */
#pragma GCC unroll 8
    for (int c = 0; c < 4; c++)
#pragma GCC unroll 2
      for (int hi = 0; hi < 2; hi++) {
        const int n = c / 2, e = c % 2, bit = 4 * hi + 2 * e; /* of the two qh bits */
        const int pr = 4 * n + 2 * hi + e, off = 128 * n + 64 * hi + 32 * e;
        __m256i s[XP_TOK][2];
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
          if (g % FOLD == 0)
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
#pragma GCC unroll 8
              for (int h = 0; h < H; h++)
                s[t][h] = _mm256_setzero_si256();
#pragma GCC unroll 8
          for (int h = 0; h < H; h++) {
            __m256i v = _mm256_load_si256((const __m256i *)(q + (c * 8 + g) * 64 + 32 * (h0 + h)));
            const __m256i vh =
                _mm256_load_si256((const __m256i *)(q + 2048 + (8 * n + g) * 64 + 32 * (h0 + h)));
            if (hi)
              v = _mm256_srli_epi16(v, 4);
            const __m256i w = _mm256_or_si256(_mm256_and_si256(v, m4),
                                              _mm256_and_si256(xp_bit_to(vh, bit, 4), m30));
#pragma GCC unroll 8
            for (int t = 0; t < T; t++)
              s[t][h] = xp_u4_acc(s[t][h], w, _mm256_set1_epi32(ld32(yrow[t][i].qs + off + 4 * g)));
          }
          if (g % FOLD == FOLD - 1)
#pragma GCC unroll 8
            for (int h = 0; h < H; h++) {
              const __m256i m = xp_k6_scale(q, pr, h0 + h, g / 4);
#pragma GCC unroll 8
              for (int t = 0; t < T; t++)
                si[t][h] = xp_keep(_mm256_add_epi32(si[t][h], xp_u4_sum(s[t][h], 1, m)));
            }
        }
      }
      /* the "- 32": int16 scale pairs times the token's bsums pairs */
#pragma GCC unroll 8
    for (int pr = 0; pr < 8; pr++)
#pragma GCC unroll 8
      for (int h = 0; h < H; h++) {
        const __m256i sp = _mm256_cvtepi8_epi16(
            _mm_loadu_si128((const __m128i *)(q + PK6_SC + 32 * pr + 16 * (h0 + h))));
#pragma GCC unroll 8
        for (int t = 0; t < T; t++) {
          const __m256i bp = _mm256_set1_epi32(ld32(yrow[t][i].bsums + 2 * pr));
#if XP_VNNI
          mi[t][h] = _mm256_dpwssd_avx_epi32(mi[t][h], sp, bp);
#else
          mi[t][h] = _mm256_add_epi32(mi[t][h], _mm256_madd_epi16(sp, bp));
#endif
        }
      }
#pragma GCC unroll 8
    for (int h = 0; h < H; h++) {
      const __m256 dx = xp_h8((const uint16_t *)(q + PK6_D) + 8 * (h0 + h));
#pragma GCC unroll 8
      for (int t = 0; t < T; t++) {
        const __m256i tot = _mm256_sub_epi32(si[t][h], _mm256_slli_epi32(mi[t][h], 5));
        acc[t][h] = _mm256_fmadd_ps(_mm256_mul_ps(dx, _mm256_set1_ps(yrow[t][i].d)),
                                    _mm256_cvtepi32_ps(tot), acc[t][h]);
      }
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
#pragma GCC unroll 8
    for (int h = 0; h < H; h++)
      _mm256_storeu_ps(y + t * a->y_stride + 8 * h, acc[t][h]);
}

#define XP_K6_TILE(T, ...) xp_k6_tile(T, 1, __VA_ARGS__)

static void xp_k6_half(int64_t n, const cll_matmul_args *a, int64_t nsb, const uint8_t *q, int h,
                       int64_t t0, float *y, int pf) {
  SWITCH_TILES4(n, XP_K6_TILE, a, nsb, q, h, t0, y, pf)
}

static void xp_matmul_q6_K_packed(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nsb = a->n_in / SB_QK_K;
  const size_t pb = (size_t)nsb * PK6_SB;
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1; p++) {
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      if (te - tc == 1) {
        xp_k6_tile(1, 2, a, nsb, q, 0, tc, y + tc * a->y_stride, 1);
        continue;
      }
      for (int h = 0; h < 2; h++)
        FOR_TILES(tc, te, XP_TOK, t0, t1) {
          xp_k6_half(t1 - t0, a, nsb, q, h, t0, y + t0 * a->y_stride + 8 * h, h == 0 && t0 == tc);
        }
    }
  }
}

/* The slots, for the table that includes this file. */
#define CLL__X86_PACKED_BYTES                                                                      \
  [CLL_TYPE_Q4_0] = cll__pack_bytes_q4_0, [CLL_TYPE_Q8_0] = cll__pack_bytes_q8_0,                  \
  [CLL_TYPE_Q4_K] = cll__pack_bytes_q4_K, [CLL_TYPE_Q5_K] = cll__pack_bytes_q5_K,                  \
  [CLL_TYPE_Q6_K] = cll__pack_bytes_q6_K
#define CLL__X86_PACK                                                                              \
  [CLL_TYPE_Q4_0] = cll__pack_q4_0, [CLL_TYPE_Q8_0] = cll__pack_q8_0,                              \
  [CLL_TYPE_Q4_K] = cll__pack_q4_K, [CLL_TYPE_Q5_K] = cll__pack_q5_K,                              \
  [CLL_TYPE_Q6_K] = cll__pack_q6_K
#define CLL__X86_MATMUL_PACKED                                                                     \
  [CLL_TYPE_Q4_0] = xp_matmul_q4_0_packed, [CLL_TYPE_Q8_0] = xp_matmul_q8_0_packed,                \
  [CLL_TYPE_Q4_K] = xp_matmul_q4_K_packed, [CLL_TYPE_Q5_K] = xp_matmul_q5_K_packed,                \
  [CLL_TYPE_Q6_K] = xp_matmul_q6_K_packed

#endif
