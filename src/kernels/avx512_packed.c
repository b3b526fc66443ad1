/* avx512_packed.c — products with Q4_0, Q8_0, Q4_K, Q5_K and Q6_K
 * matrices repacked at load, for the avx512 table (its matmul_packed
 * slots; the pack and pack_bytes slots are pack.c's, shared with the
 * avx2 table, and the layouts are written down there). Compiled with the
 * avx512 flags.
 *
 * Why: at decode the in-place kernels do one row at a time, so every
 * weight block costs its own scale conversion, shuffles and horizontal
 * work, and on CPUs with fewer execution ports per byte of bandwidth
 * than Zen 5 (Intel Xeons at 2 threads) they ran out of instructions
 * before the memory bus was full (issue 16: Q4_K_M at 0.55x, Q8_0 at
 * 0.75x of llama.cpp's best). Packed 16 rows to a panel, one 64-byte
 * vector holds 4 consecutive quants of each of the 16 rows, so a single
 * vpdpbusd with 4 broadcast activation bytes does 64 multiply-adds for 16
 * rows at once and no horizontal sums are needed; the scales of 16 rows
 * sit together and convert in one instruction. The layouts are written
 * down in pack.c and, scalar, in ref_matmul.c (the twins test_matmul
 * compares with); in short:
 *
 * Q8_0, panel of 16 rows, nb blocks per row:
 *   quants: nb x 512 bytes; block i is 8 vectors of 64 bytes, dword j of
 *           vector g = bytes 4g..4g+3 of row j's qs, each byte + 128 (so
 *           unsigned, for vpdpbusd; the offset leaves as 128 * sum(y));
 *   scales: nb x 16 fp16, block-major. Panel rounded up to 64 bytes; the
 *           packed matrix has the GGUF matrix's size (34 bytes a block).
 *
 * Q4_K, panel of 16 rows, per super-block (2368 bytes, 37 cache lines):
 *   quants: 4 chunks c of 8 vectors: dword j of vector (c, g) = bytes
 *           32c + 4g .. 32c + 4g + 3 of row j's qs (low nibbles: elements
 *           64c + 4g.., sub-block 2c; high nibbles: 64c + 32 + 4g..,
 *           sub-block 2c + 1), 2048 bytes;
 *   scales: 8 x 16 bytes, sc[s * 16 + j] = 6-bit scale of sub-block s of
 *           row j;
 *   mins:   4 x 32 bytes, mn[p * 32 + 2j + e] = min of sub-block 2p + e;
 *   d, dmin: 16 fp16 each.
 *   (GGUF: 16 x 144 = 2304 bytes; 3% more.)
 *
 * Q5_K: as Q4_K plus the fifth bits (pack.c).
 *
 * Q6_K: 4-bit and 2-bit parts apart, int8 scales in pairs (its section).
 *
 * Tokens go through in tiles (Q8_0: 8, Q4_K: 4), so the same kernels
 * serve decode (1 token), batched decode and prefill; within a chunk of
 * 64 tokens a panel is read from memory once and from L1/L2 after. */
#if defined(__x86_64__)

#include "kernels/avx512_internal.h"

/* ---------------------------------------------------------------- Q4_0 and Q8_0
 *
 * Q4_0, panel p (rows 16p..16p+15), nb blocks per row:
 *   quants: nb x 256 bytes. Block i is 4 vectors of 64 bytes; dword j of
 *           vector g holds bytes 4g..4g+3 of row j's qs, so its low
 *           nibbles are elements 4g..4g+3 and its high nibbles elements
 *           16+4g..16+4g+3: after (v & 15) and (v >> 4 & 15) the 8 vectors
 *           meet the activation's dwords 0..7 in vpdpbusd, as in the GEMM
 *           panels of avx512_gemm.c;
 *   scales: nb x 16 fp16, row order.
 * Panels are rounded up to 64 bytes, so every quant vector is aligned.
 * The packed matrix is the same size as the GGUF one (18 bytes a block).
 * Q8_0 is laid out the same way with 8 vectors a block (the layout at
 * the top of this file). */

#define P4_TOK 8         /* tokens per tile (8 accumulators + 8 weight vectors) */
#define P4_TOK2 4        /* tokens per tile over two panels */
#define P4_PREFETCH 2048 /* bytes ahead the first tile of a panel prefetches */

/* Block i of a Q4_0 (q4) or Q8_0 panel as the 8 unsigned weight vectors
 * that meet activation dwords 0..7. */
static inline __attribute__((always_inline)) void pq_weights(const int q4, const uint8_t *qi,
                                                             __m512i w[8]) {
  if (q4) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
      const __m512i v = _mm512_loadu_si512((const void *)(qi + 64 * g));
      w[g] = _mm512_and_si512(v, m4);
      w[g + 4] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    }
  } else {
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++)
      w[g] = _mm512_load_si512((const void *)(qi + 64 * g));
  }
}

static inline __attribute__((always_inline)) void prefetch_block(const uint8_t *qi) {
  _mm_prefetch((const char *)qi + P4_PREFETCH, _MM_HINT_T0);
  _mm_prefetch((const char *)qi + P4_PREFETCH + 64, _MM_HINT_T0);
  _mm_prefetch((const char *)qi + P4_PREFETCH + 128, _MM_HINT_T0);
  _mm_prefetch((const char *)qi + P4_PREFETCH + 192, _MM_HINT_T0);
}

/* T tokens (t0..t0+T) times one Q4_0 (q4) or Q8_0 panel q; y points at
 * row 16p of token t0; pf: the first pass over a panel streams from
 * memory, fetch ahead (Q4_0). */
static inline __attribute__((always_inline)) void pq_tile(const int T, const int q4,
                                                          const cll_matmul_args *a, int64_t nb,
                                                          const uint8_t *q, int64_t t0, float *y,
                                                          int pf) {
  const size_t qb = PQ_BYTES(q4);
  const uint16_t *d = (const uint16_t *)(q + (size_t)nb * qb);
  __m512 acc[P4_TOK];
  const sb_q8_0 *yrow[P4_TOK];
  const struct cll__q8_sum *ysum[P4_TOK];
  q8_tile_tokens(T, a, nb, t0, acc, yrow, ysum);
  for (int64_t i = 0; i < nb; i++) {
    const uint8_t *qi = q + (size_t)i * qb;
    if (q4 && pf)
      prefetch_block(qi);
    __m512i w[8];
    pq_weights(q4, qi, w);
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d + i * CLL_PACK_ROWS)));
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
      const int8_t *yq = yrow[t][i].qs;
      /* Two chains, so one token's eight vpdpbusd are not one long
       * dependency chain at decode. */
      __m512i s0 = _mm512_set1_epi32(q4 ? ysum[t][i].o4 : ysum[t][i].o8),
              s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
      for (int g = 0; g < 8; g += 2) {
        s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(ld32(yq + 4 * g)));
        s1 = _mm512_dpbusd_epi32(s1, w[g + 1], _mm512_set1_epi32(ld32(yq + 4 * g + 4)));
      }
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(ysum[t][i].d)),
                               _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc[t]);
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; t++)
    _mm512_storeu_ps(y + t * a->y_stride, acc[t]);
}

/* T (1..4) tokens times two adjacent Q4_0 (q4) or Q8_0 panels (32 rows):
 * each broadcast of a token's 4 activation bytes feeds two vpdpbusd, and
 * the two panels' sums are the two independent chains. With both cores
 * busy this runs 10-20% faster than one panel by 8 tokens (bench/kernels
 * run on both cores at once): the broadcasts, not the vpdpbusd, were what
 * the single panel queued on. Per block and token it takes 16 vpdpbusd
 * and 7 other vector instructions, where one Q8_0 panel took 8 and 6.
 * q: the first panel; pb: bytes per panel; y: row 16p of token t0; pf:
 * fetch the panels ahead (their first tile; Q4_0). */
static inline __attribute__((always_inline)) void pq_tile2(const int T, const int q4,
                                                           const cll_matmul_args *a, int64_t nb,
                                                           size_t pb, const uint8_t *q, int64_t t0,
                                                           float *y, int pf) {
  const size_t qb = PQ_BYTES(q4);
  const uint8_t *q1 = q + pb;
  const uint16_t *d0 = (const uint16_t *)(q + (size_t)nb * qb),
                 *d1 = (const uint16_t *)(q1 + (size_t)nb * qb);
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
    const uint8_t *qa = q + (size_t)i * qb, *qc = q1 + (size_t)i * qb;
    if (q4 && pf) {
      prefetch_block(qa);
      prefetch_block(qc);
    }
    __m512i wa[8], wb[8];
    pq_weights(q4, qa, wa);
    pq_weights(q4, qc, wb);
    const __m512 dxa =
        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d0 + i * CLL_PACK_ROWS)));
    const __m512 dxb =
        _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d1 + i * CLL_PACK_ROWS)));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const int8_t *yq = yrow[t][i].qs;
      const __m512i o = _mm512_set1_epi32(q4 ? ysum[t][i].o4 : ysum[t][i].o8);
      __m512i sa = o, sb = o;
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++) {
        const __m512i yv = _mm512_set1_epi32(ld32(yq + 4 * g));
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
    _mm512_storeu_ps(y + t * a->y_stride + CLL_PACK_ROWS, acc1[t]);
  }
}

#define P4_TILE2(T, ...) pq_tile2(T, 1, __VA_ARGS__)
#define P8_TILE2(T, ...) pq_tile2(T, 0, __VA_ARGS__)

/* One token times four adjacent Q8_0 panels (decode): four streams from
 * memory at once, each weight vector used once, straight from its load.
 * At decode the Q8_0 panels are read from memory by one stream each, and
 * one stream at a time left a core short of the bandwidth it can have:
 * TinyLlama-shape Q8_0, bench/model tg64 on Zen 5, alternated in one
 * run: 1 thread 21.1-21.5 tok/s with one panel, 23.5-24.1 with two at a
 * time, 24.4-25.4 with four (llama.cpp 19.6-20.0, ik_llama.cpp -rtr
 * 22.2-25.5 in the same session); 2 threads up to 45.7 against 38.8.
 * Software prefetching (512 B to 64 KiB ahead, to L1 or L2) made the
 * one-panel kernel slower instead. */
static void p8_tile4_1(const cll_matmul_args *a, int64_t nb, size_t pb, const uint8_t *q,
                       int64_t t0, float *y) {
  const sb_q8_0 *yrow = (const sb_q8_0 *)((const char *)a->xq + (size_t)t0 * a->xq_stride);
  const struct cll__q8_sum *ysum = cll__q8_sums(yrow, nb);
  __m512 acc[4];
  const uint16_t *d[4];
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++) {
    acc[k] = _mm512_setzero_ps();
    d[k] = (const uint16_t *)(q + (size_t)k * pb + (size_t)nb * 512);
  }
  for (int64_t i = 0; i < nb; i++) {
    const int8_t *yq = yrow[i].qs;
    const __m512i off = _mm512_set1_epi32(ysum[i].o8);
    __m512i s[4] = {off, off, off, off};
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
      const __m512i yv = _mm512_set1_epi32(ld32(yq + 4 * g));
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++)
        s[k] = _mm512_dpbusd_epi32(
            s[k], _mm512_load_si512((const void *)(q + (size_t)k * pb + (size_t)i * 512 + 64 * g)),
            yv);
    }
    const __m512 yd = _mm512_set1_ps(ysum[i].d);
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++)
      acc[k] = _mm512_fmadd_ps(
          _mm512_mul_ps(
              _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d[k] + i * CLL_PACK_ROWS))), yd),
          _mm512_cvtepi32_ps(s[k]), acc[k]);
  }
#pragma GCC unroll 4
  for (int k = 0; k < 4; k++)
    _mm512_storeu_ps(y + k * CLL_PACK_ROWS, acc[k]);
}

#define P4_TILE(T, ...) pq_tile(T, 1, __VA_ARGS__)
#define P8_TILE(T, ...) pq_tile(T, 0, __VA_ARGS__)

/* One tile of T tokens: over panels p and p + 1 (pair, T <= 4) or over
 * panel p alone (T <= 8); q: panel p. Not inlined into the loop above:
 * the sixteen tile copies stay out of its way. */
static void p4_tile_any(int pair, int64_t T, const cll_matmul_args *a, int64_t nb, size_t pb,
                        const uint8_t *q, int64_t t0, float *y, int pf) {
  if (pair) {
    SWITCH_TILES4(T, P4_TILE2, a, nb, pb, q, t0, y, pf)
  } else {
    SWITCH_TILES8(T, P4_TILE, a, nb, q, t0, y, pf)
  }
}

void cll__matmul_q4_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nb = a->n_in / SB_QK;
  const size_t pb = p4_panel_bytes(nb);
  /* Within a chunk of tokens each pair of panels (18 bytes x 32 rows a
   * block) is read once per 4 tokens, from L1/L2 after the first tile.
   * Panels two at a time (tiles of at most 4 tokens), the odd one alone
   * (tiles of at most 8); the first tile prefetches the panels. */
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1;) {
      const int pair = p + 2 <= p1;
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      FOR_TILES(tc, te, pair ? P4_TOK2 : P4_TOK, t0, t1) {
        p4_tile_any(pair, t1 - t0, a, nb, pb, q, t0, y + t0 * a->y_stride, t0 == tc);
      }
      p += pair ? 2 : 1;
    }
  }
}

void cll__matmul_q8_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nb = a->n_in / SB_QK;
  const size_t pb = p8_panel_bytes(nb);
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1;) {
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      if (te - tc == 1 && p + 4 <= p1) { /* decode: four panels, four streams */
        p8_tile4_1(a, nb, pb, q, tc, y + tc * a->y_stride);
        p += 4;
        continue;
      }
      /* Pairs of panels as for Q4_0: bench/kernels cll_matmul 5632 x 2048,
       * 1 thread, alternated: 64 tokens 372-417 GFLOP/s with one panel
       * by 8 tokens, 465-483 with two by 4; 4 tokens 346-427 / 437-452. */
      const int pair = p + 2 <= p1;
      FOR_TILES(tc, te, pair ? P4_TOK2 : P4_TOK, t0, t1) {
        float *yt = y + t0 * a->y_stride;
        if (pair) {
          SWITCH_TILES4(t1 - t0, P8_TILE2, a, nb, pb, q, t0, yt, 0)
        } else {
          SWITCH_TILES8(t1 - t0, P8_TILE, a, nb, q, t0, yt, 0)
        }
      }
      p += pair ? 2 : 1;
    }
  }
}

/* ---------------------------------------------------------------- Q4_K */

#define PK4_TOK 4
/* The first tile over a panel (the one that streams it from memory)
 * prefetches every line of the super-block this many ahead. A panel is
 * one sequential stream of 37-45 lines a super-block, and the hardware
 * prefetcher alone left a core at half the bandwidth: bench/kernels
 * cll_matmul one token on 96 MiB, Zen 5, alternated: Q4_K 12-20 GB/s
 * without, 23-28 one ahead, 27-33 two, 30-37 three, 30-33 four (1
 * thread); Q5_K 12-22 without, 32-36 three ahead. Four panels at once
 * instead (four streams, as p8_tile4_1) were slower than one. */
#define PK_PREFETCH_SB 3

/* Every line of the super-block PK_PREFETCH_SB ahead of q (sbb bytes a
 * super-block), into L1. */
static inline __attribute__((always_inline)) void prefetch_sb_ahead(const uint8_t *q, size_t sbb) {
  for (size_t l = 0; l < sbb; l += 64)
    _mm_prefetch((const char *)q + PK_PREFETCH_SB * sbb + l, _MM_HINT_T0);
}

/* From this many tokens in a chunk, a Q5_K or Q6_K panel is unpacked once
 * into its GEMM's layout (a->scratch) and the GEMM's tiles run on it;
 * below, and always for Q4_K, each tile unpacks its own. CPU time in the
 * kernels (perf, cpu-clock samples, TinyLlama pp512 at 2 threads on a
 * shared machine, where wall times varied 2x): Q5_K 7.4 G -> 5.1 G and
 * Q6_K 9.1 G -> 7.1 G through the layout, Q4_K 4.7 G -> 5.2 G (so not
 * for Q4_K; bench/kernels cll_matmul 64 tokens agrees: Q4_K 449-467
 * GFLOP/s in its tiles, 305-328 through the layout). Q6_K pp512 wall
 * time, alternated: tiles 202-232 tok/s, through the layout 254-312, the
 * GEMM on the GGUF rows before 264-272. */
#define K_GEMM_TOK 8

/* T tokens (t0..) times one Q4_K (q5 = 0) or Q5_K (q5 = 1) panel; y: row
 * 16p of token t0. sbb: bytes per super-block; the scales follow the
 * quants (and Q5_K's qh) as in the layouts above. */
static inline __attribute__((always_inline)) void pk4_tile(const int T, const int q5,
                                                           const cll_matmul_args *a, int64_t nsb,
                                                           const uint8_t *panel, int64_t t0,
                                                           float *y, int pf) {
  const size_t sbb = q5 ? PK5_SB : PK4_SB;
  __m512 acc[PK4_TOK];
  const sb_q8_K *yrow[PK4_TOK];
#pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_K *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
  }
  for (int64_t i = 0; i < nsb; i++) {
    const uint8_t *q = panel + (size_t)i * sbb;
    if (pf)
      prefetch_sb_ahead(q, sbb);
    const uint8_t *qh = q + 2048, *sc = q + (q5 ? 2560 : 2048), *mn = sc + 128;
    const uint16_t *dh = (const uint16_t *)(mn + 128);
    __m512i si[PK4_TOK], mi[PK4_TOK];
    /* The 8 32-element sums of each token's activations as int16 pairs
     * (sub-blocks 2p, 2p + 1 in dword p), for the mins. */
    int32_t bs[PK4_TOK][4];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      si[t] = mi[t] = _mm512_setzero_si512();
      const __m128i b0 = _mm_loadu_si128((const __m128i *)yrow[t][i].bsums);
      const __m128i b1 = _mm_loadu_si128((const __m128i *)(yrow[t][i].bsums + 8));
      _mm_storeu_si128((__m128i *)bs[t], _mm_hadd_epi16(b0, b1));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
      __m512i lo[8], hi[8];
      pk_unpack(q, qh, c, q5, lo, hi);
      const __m512i scl = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 32 * c)));
      const __m512i sch = _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 32 * c + 16)));
      const __m512i mnv = _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)(mn + 32 * c)));
#pragma GCC unroll 4
      for (int t = 0; t < T; t++) {
        const int8_t *yq = yrow[t][i].qs + 64 * c;
        __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int g = 0; g < 8; g++) {
          s0 = _mm512_dpbusd_epi32(s0, lo[g], _mm512_set1_epi32(ld32(yq + 4 * g)));
          s1 = _mm512_dpbusd_epi32(s1, hi[g], _mm512_set1_epi32(ld32(yq + 32 + 4 * g)));
        }
        si[t] = _mm512_add_epi32(
            si[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, scl), _mm512_mullo_epi32(s1, sch)));
        mi[t] = _mm512_dpwssd_epi32(mi[t], mnv, _mm512_set1_epi32(bs[t][c]));
      }
    }
    const __m512 dx = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)dh));
    const __m512 dmx = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(dh + 16)));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const __m512 dy = _mm512_set1_ps(yrow[t][i].d);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(si[t]), acc[t]);
      acc[t] = _mm512_fnmadd_ps(_mm512_mul_ps(dmx, dy), _mm512_cvtepi32_ps(mi[t]), acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; t++)
    _mm512_storeu_ps(y + t * a->y_stride, acc[t]);
}

/* A packed Q5_K panel (nsb super-blocks) into the Q4_K GEMM's layout at
 * dst (K4_SB_BYTES a super-block), streaming it. */
static void pk5_to_gemm(const uint8_t *panel, int64_t nsb, uint8_t *dst) {
  const size_t sbb = PK5_SB;
  const __m512i lo16 = _mm512_set1_epi32(0xFFFF);
  for (int64_t i = 0; i < nsb; i++) {
    const uint8_t *q = panel + (size_t)i * sbb;
    uint8_t *o = dst + (size_t)i * K4_SB_BYTES;
    prefetch_sb_ahead(q, PK5_SB);
    const uint8_t *sc = q + 2560, *mn = sc + 128;
    pk_unpack_sb(q, 1, o);
    int32_t *osc = (int32_t *)(o + 8 * 8 * 64), *omn = osc + 8 * CLL_PACK_ROWS;
    float *od = (float *)(omn + 8 * CLL_PACK_ROWS);
#pragma GCC unroll 1
    for (int s = 0; s < 8; s++)
      _mm512_storeu_si512((void *)(osc + s * 16),
                          _mm512_cvtepu8_epi32(_mm_load_si128((const __m128i *)(sc + 16 * s))));
#pragma GCC unroll 1
    for (int pr = 0; pr < 4; pr++) { /* dword j: mins 2pr (low half) and 2pr + 1 of row j */
      const __m512i v = _mm512_cvtepu8_epi16(_mm256_load_si256((const __m256i *)(mn + 32 * pr)));
      const __m512i e = _mm512_and_si512(v, lo16), od16 = _mm512_srli_epi32(v, 16);
      _mm512_storeu_si512((void *)(omn + 2 * pr * 16),
                          _mm512_or_si512(e, _mm512_slli_epi32(e, 16)));
      _mm512_storeu_si512((void *)(omn + (2 * pr + 1) * 16),
                          _mm512_or_si512(od16, _mm512_slli_epi32(od16, 16)));
    }
    const uint16_t *dh = (const uint16_t *)(mn + 128);
    _mm512_storeu_ps(od, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)dh)));
    _mm512_storeu_ps(od + 16, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(dh + 16))));
  }
}

static inline __attribute__((always_inline)) void pk_matmul(const int q5, const cll_matmul_args *a,
                                                            int64_t p0, int64_t p1) {
  const int64_t nsb = a->n_in / SB_QK_K;
  const size_t pb = (size_t)nsb * (q5 ? PK5_SB : PK4_SB);
  const int scratch_ok = a->scratch != NULL && a->scratch_bytes >= (size_t)nsb * K4_SB_BYTES;
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1; p++) {
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      if (q5 && scratch_ok && te - tc >= K_GEMM_TOK) {
        pk5_to_gemm(q, nsb, a->scratch);
        cll__gemm_q4_K_tiles_avx512(a, nsb, a->scratch, tc, te, p * CLL_PACK_ROWS);
        continue;
      }
      FOR_TILES(tc, te, PK4_TOK, t0, t1) {
        float *yt = y + t0 * a->y_stride;
        SWITCH_TILES4(t1 - t0, pk4_tile, q5, a, nsb, q, t0, yt, t0 == tc)
      }
    }
  }
}

void cll__matmul_q4_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  pk_matmul(0, a, p0, p1);
}

void cll__matmul_q5_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  pk_matmul(1, a, p0, p1);
}

/* ---------------------------------------------------------------- Q5_K
 *
 * As Q4_K, with the fifth bits between the quants and the scales: 8
 * vectors at 2048, dword j of vector g = qh[4g..4g+3] of row j (bit 2c of
 * a byte: the element of chunk c's low nibble, bit 2c + 1: its high
 * nibble); scales at 2560, mins at 2688, d at 2816, dmin at 2848. 2880
 * bytes a super-block (GGUF: 2816). */

/* ---------------------------------------------------------------- Q6_K
 *
 * Panel of 16 rows, per super-block (3392 bytes, 53 cache lines; GGUF:
 * 16 x 210 = 3360):
 *   ql: 4 chunks c of 8 vectors at 0: dword j of vector (c, g) = ql[32c +
 *       4g .. 32c + 4g + 3] of row j. With n = c / 2 and e = c % 2, the
 *       low nibbles are elements 128n + 32e + 4g.. and the high nibbles
 *       128n + 64 + 32e + 4g..;
 *   qh: 16 vectors at 2048: dword j of vector v = qh[4v .. 4v + 3] of row
 *       j; for chunk c, vector 8n + g holds the top 2 bits of the low
 *       nibbles' elements at bits 2e, 2e + 1 and of the high nibbles' at
 *       4 + 2e, 5 + 2e;
 *   scales: 8 x 32 bytes at 3072, sc[p * 32 + 2j + k] = int8 scale 2p + k
 *       of row j, so one vpmovsxbw makes the int16 pairs that vpdpwssd
 *       takes for the "- 32" correction (32 * sum of scale * 16-element
 *       activation sum), and two shifts the int32 scales;
 *   d: 16 fp16 at 3328; 32 zero bytes to the next line.
 *
 * Why: the in-place Q6_K dot ran out of instructions before the memory
 * bus was full (TinyLlama Q6_K decode on 2 Zen 5 cores 30.5 tok/s, 26 GB/s
 * of weights, where Q4_K_M's packed kernel streams 37 GB/s). Packed, one
 * token: bench/kernels cll_matmul 1 thread 31-38 GB/s against 16-20 in
 * place; bench/model tg32, 2 threads, alternated: 49.1 / 53.6 tok/s
 * against 37.5 / 38.7. */

/* T tokens (t0..) times one Q6_K panel; y: row 16p of token t0; pf:
 * this tile streams the panel from memory, fetch ahead. */
static inline __attribute__((always_inline)) void pk6_tile(const int T, const cll_matmul_args *a,
                                                           int64_t nsb, const uint8_t *panel,
                                                           int64_t t0, float *y, int pf) {
  __m512 acc[PK4_TOK];
  const sb_q8_K *yrow[PK4_TOK];
#pragma GCC unroll 4
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_K *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
  }
  for (int64_t i = 0; i < nsb; i++) {
    const uint8_t *q = panel + (size_t)i * PK6_SB;
    if (pf)
      prefetch_sb_ahead(q, PK6_SB);
    __m512i si[PK4_TOK], mi[PK4_TOK];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
      si[t] = mi[t] = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
#pragma GCC unroll 2
      for (int hi = 0; hi < 2; hi++) {
        __m512i w[8];
        pk6_unpack(q, c, hi, w);
        /* scales 2p (elements 0..15 of the 32) and 2p + 1 (16..31) */
        const int pr = 4 * (c / 2) + 2 * hi + c % 2;
        const __m512i sp =
            _mm512_cvtepi8_epi16(_mm256_load_si256((const __m256i *)(q + PK6_SC + 32 * pr)));
        const __m512i s_lo = _mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16);
        const __m512i s_hi = _mm512_srai_epi32(sp, 16);
        const int off = 128 * (c / 2) + 64 * hi + 32 * (c % 2);
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
          const int8_t *yq = yrow[t][i].qs + off;
          __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
#pragma GCC unroll 4
          for (int g = 0; g < 4; g++) {
            s0 = _mm512_dpbusd_epi32(s0, w[g], _mm512_set1_epi32(ld32(yq + 4 * g)));
            s1 = _mm512_dpbusd_epi32(s1, w[g + 4], _mm512_set1_epi32(ld32(yq + 16 + 4 * g)));
          }
          si[t] = _mm512_add_epi32(
              si[t], _mm512_add_epi32(_mm512_mullo_epi32(s0, s_lo), _mm512_mullo_epi32(s1, s_hi)));
          mi[t] =
              _mm512_dpwssd_epi32(mi[t], sp, _mm512_set1_epi32(ld32(yrow[t][i].bsums + 2 * pr)));
        }
      }
    }
    const __m512 dx = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + PK6_D)));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
      const __m512i tot = _mm512_sub_epi32(si[t], _mm512_slli_epi32(mi[t], 5));
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(yrow[t][i].d)),
                               _mm512_cvtepi32_ps(tot), acc[t]);
    }
  }
#pragma GCC unroll 4
  for (int t = 0; t < T; t++)
    _mm512_storeu_ps(y + t * a->y_stride, acc[t]);
}

/* A packed Q6_K panel (nsb super-blocks) into the GEMM's layout at dst
 * (K6_SB_BYTES a super-block), streaming it from memory. */
static void pk6_to_gemm(const uint8_t *panel, int64_t nsb, uint8_t *dst) {
  for (int64_t i = 0; i < nsb; i++) {
    const uint8_t *q = panel + (size_t)i * PK6_SB;
    uint8_t *o = dst + (size_t)i * K6_SB_BYTES;
    prefetch_sb_ahead(q, PK6_SB);
    pk6_unpack_sb(q, o);
    int32_t *sc = (int32_t *)(o + 8 * 8 * 64), *sp = sc + 16 * CLL_PACK_ROWS;
#pragma GCC unroll 1
    for (int pr = 0; pr < 8; pr++) {
      const __m512i v =
          _mm512_cvtepi8_epi16(_mm256_load_si256((const __m256i *)(q + PK6_SC + 32 * pr)));
      _mm512_storeu_si512((void *)(sp + pr * 16), v);
      _mm512_storeu_si512((void *)(sc + 2 * pr * 16),
                          _mm512_srai_epi32(_mm512_slli_epi32(v, 16), 16));
      _mm512_storeu_si512((void *)(sc + (2 * pr + 1) * 16), _mm512_srai_epi32(v, 16));
    }
    _mm512_storeu_ps((float *)(sp + 8 * CLL_PACK_ROWS),
                     _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(q + PK6_D))));
  }
}

void cll__matmul_q6_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nsb = a->n_in / SB_QK_K;
  const size_t pb = (size_t)nsb * PK6_SB;
  const int scratch_ok = a->scratch != NULL && a->scratch_bytes >= (size_t)nsb * K6_SB_BYTES;
  for (int64_t tc = 0; tc < a->n_tok; tc += TOK_CHUNK) {
    const int64_t te = a->n_tok - tc < TOK_CHUNK ? a->n_tok : tc + TOK_CHUNK;
    for (int64_t p = p0; p < p1; p++) {
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      if (scratch_ok && te - tc >= K_GEMM_TOK) {
        pk6_to_gemm(q, nsb, a->scratch);
        cll__gemm_q6_K_tiles_avx512(a, nsb, a->scratch, tc, te, p * CLL_PACK_ROWS);
        continue;
      }
      FOR_TILES(tc, te, PK4_TOK, t0, t1) {
        float *yt = y + t0 * a->y_stride;
        SWITCH_TILES4(t1 - t0, pk6_tile, a, nsb, q, t0, yt, t0 == tc)
      }
    }
  }
}

#else
typedef int cll__avx512_packed_unused; /* ISO C: a translation unit is not empty */
#endif
