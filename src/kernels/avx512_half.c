/* avx512_half.c — F16 and BF16 matrices repacked at load for the avx512
 * table (its pack, pack_bytes and matmul_packed slots). Compiled with the
 * avx512 flags; the BF16 kernels also use AVX512_BF16 (vdpbf16ps,
 * vcvtne2ps2bf16), which the avx512 table does not require: dispatch.c
 * installs them (cll__kernels_avx512_bf16) only where CPUID has it, and
 * the table keeps the in-place BF16 kernels elsewhere.
 *
 * Why: without packing, prefill dequantized tiles of these rows to fp32
 * and ran BLIS's sgemm on them (TinyLlama-shape pp512 on 2 Zen 5 cores:
 * F16 ~111 tok/s, BF16 ~97), and BF16 decode widened every weight to fp32
 * with two instructions before its FMA (13 tok/s, instruction-bound).
 * Packed 16 rows to a panel, one vector holds the same input elements of
 * all 16 rows, so a register tile of 2 panels x up to 12 tokens needs no
 * horizontal sums and no per-call repacking.
 *
 * F16, panel of 16 rows: n_in vectors of 32 bytes; vector k = element k
 * of rows 0..15 (fp16). One vcvtph2ps makes it 16 fp32 lanes that meet
 * a broadcast activation in an fp32 FMA: the F16 weights keep their full
 * precision (they are not rounded to bf16), and the activations stay
 * fp32 as in the in-place path.
 *
 * BF16, panel of 16 rows: ceil(n_in / 2) vectors of 64 bytes; dword j of
 * vector i = elements 2i (low half) and 2i + 1 (high half) of row j, a
 * zero in the high half of the last vector when n_in is odd. This is
 * vdpbf16ps's layout: one instruction does 32 multiply-adds (16 rows x a
 * pair of elements) against a broadcast pair of bf16 activations. The
 * activations are rounded to bf16 (nearest even) for it, as llama.cpp
 * does for BF16 weights (its vec_dot_type for BF16 is BF16); the
 * products are exact in fp32 and the sums are fp32. The rounding happens
 * here, per K-chunk into a stack buffer or the caller's scratch
 * (PB_SCRATCH_ELEMS), so cll_matmul_prepare and the other tables are
 * unchanged.
 *
 * Both layouts are written down, scalar, in ref_matmul.c (the twins that
 * test_matmul and test_kernels compare with). */
#if defined(__x86_64__)

#include "kernels/avx512_internal.h"

/* Tokens per register tile over two panels: 2 x 12 accumulators, two
 * weight vectors and a broadcast fit the 32 zmm registers. */
#define PH_TOK 12
/* Tokens per chunk: within a chunk a pair of panels is read from memory
 * once and from L2 by the chunk's other tiles (6 tiles of 12). */
#define PH_CHUNK 72
/* bf16 activations of one K-chunk, all tokens of a chunk: a 32 KiB stack
 * buffer, or up to 512 KiB of the caller's scratch where it has one (the
 * engine's prefill scratch is >= 1 MiB a thread). With 32 KiB a chunk of
 * 72 tokens gets K-chunks of 224 elements, and each tile's start and end
 * (24 accumulators loaded from and stored to y, which for a 5632-row
 * slice and 72 tokens is 1.6 MiB, out of L2) came every 112 vdpbf16ps
 * steps. 512 KiB holds n_in = 2048 whole for 72 tokens (5632 in two
 * K-chunks) and still fits L2 (1 MiB) with a pair of panels' K-chunk.
 * Measured with a throwaway cll_matmul harness (5632 x 2048, 512 tokens,
 * one thread, best of 20 calls, alternated 4 times): 261 GFLOP/s with the
 * 32 KiB buffer, 381 with the scratch (vdpbf16ps's peak measured on one
 * core with operands in L1: ~445). */
#define PB_BUF_ELEMS 16384
#define PB_SCRATCH_ELEMS 262144
/* Decode (four panels, one token) fetches each panel 1 KiB ahead, as
 * dot4_half does for rows in place: four streams per core outrun the
 * hardware prefetcher. bench/model tg32, 2 threads, best of 3, alternated
 * in one run: F16 22.4 / 19.9 tok/s without, 25.4 / 24.3 at 1 KiB, 24.9 /
 * 24.0 at 2 KiB; BF16 24.5 / 21.2 without, 25.0 / 24.1 at 1 KiB, 25.4 /
 * 22.5 at 2 KiB (a shared machine: runs differ by up to 10%). */
#define PH_PREFETCH 1024

/* ---------------------------------------------------------------- packing */

static size_t f16_panel_bytes(int64_t n_in) {
  return (size_t)n_in * CLL_PACK_ROWS * 2;
}

static size_t bf16_panel_bytes(int64_t n_in) {
  return (size_t)((n_in + 1) / 2) * CLL_PACK_ROWS * 4;
}

size_t cll__pack_bytes_f16_avx512(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * f16_panel_bytes(n_in);
}

size_t cll__pack_bytes_bf16_avx512(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * bf16_panel_bytes(n_in);
}

/* F16 (bf = 0) or BF16 rows into panels p0..p1: element k of row j goes
 * to 16-bit slot k * 16 + j (F16) or (k / 2) * 32 + 2j + k % 2 (BF16).
 * Both are a transpose of the rows' dwords (element pairs): one gather
 * collects pair i of the 16 rows, which is BF16's vector i, and F16's
 * vectors 2i and 2i + 1 after one word permutation. Element by element
 * (2 bytes read and written at a time) instead, packing took as long as
 * the kernel's zeroing of the packed pages (perf: 43% each) and loading
 * TinyLlama F16 1.2-1.9 s. */
static void pack_half(const int bf, const void *w, size_t w_stride, int64_t n_in, int64_t p0,
                      int64_t p1, void *dst) {
  const size_t pb = bf ? bf16_panel_bytes(n_in) : f16_panel_bytes(n_in);
  /* Row offsets in bytes for the gather (int32: rows under 128 MiB). */
  const int gather = w_stride <= (size_t)INT32_MAX / CLL_PACK_ROWS;
  const __m512i offs =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                         _mm512_set1_epi32(gather ? (int)w_stride : 0));
  /* Words 0, 2, .., 30 then 1, 3, .., 31: a pair vector as F16's two. */
  const __m512i split =
      _mm512_setr_epi32(0x00020000, 0x00060004, 0x000A0008, 0x000E000C, 0x00120010, 0x00160014,
                        0x001A0018, 0x001E001C, 0x00030001, 0x00070005, 0x000B0009, 0x000F000D,
                        0x00130011, 0x00170015, 0x001B0019, 0x001F001D);
  for (int64_t p = p0; p < p1; p++) {
    uint16_t *d = (uint16_t *)((char *)dst + (size_t)p * pb);
    const char *row0 = (const char *)w + (size_t)(p * CLL_PACK_ROWS) * w_stride;
    int64_t i = 0; /* pairs done */
    if (gather)
      for (; 2 * i + 1 < n_in; i++) {
        __m512i v = _mm512_i32gather_epi32(offs, (const void *)(row0 + 4 * i), 1);
        if (!bf)
          v = _mm512_permutexvar_epi16(split, v);
        _mm512_storeu_si512((void *)(d + 32 * i), v);
      }
    for (int64_t k = 2 * i; k < n_in + (bf && (n_in & 1)); k++)
      for (int j = 0; j < CLL_PACK_ROWS; j++) {
        uint16_t v = 0; /* BF16: the zero after an odd row's end */
        if (k < n_in)
          memcpy(&v, row0 + (size_t)j * w_stride + 2 * k, 2);
        d[bf ? (k / 2) * 32 + 2 * j + (k & 1) : k * CLL_PACK_ROWS + j] = v;
      }
  }
}

void cll__pack_f16_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                          void *dst) {
  pack_half(0, w, w_stride, n_in, p0, p1, dst);
}

void cll__pack_bf16_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst) {
  pack_half(1, w, w_stride, n_in, p0, p1, dst);
}

/* ---------------------------------------------------------------- tiles
 *
 * A tile is NP adjacent panels (q: the first; pb bytes apart) times T
 * tokens; NP = 2 and T <= PH_TOK at prefill, NP = 4 and T = 1 at decode
 * (four independent streams from memory, as p8_tile4_1 in
 * avx512_packed.c), NP = 1 for an odd panel at the end of a slice.
 * y: row 16p of the tile's first token. */

/* F16: every input element k: NP weight vectors converted once, T
 * broadcasts from the float activations, NP x T fp32 FMAs. */
static inline __attribute__((always_inline)) void f16_tile(const int NP, const int T,
                                                           const cll_matmul_args *a,
                                                           const uint8_t *q, size_t pb, int64_t t0,
                                                           float *y) {
  __m512 acc[4][PH_TOK];
  const float *x[PH_TOK];
#pragma GCC unroll 12
  for (int t = 0; t < T; t++) {
    x[t] = a->x + (t0 + t) * a->x_stride;
#pragma GCC unroll 4
    for (int n = 0; n < NP; n++)
      acc[n][t] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < a->n_in; k++) {
    if (NP == 4 && (k & 1) == 0) /* decode: one prefetch per 64-byte line */
#pragma GCC unroll 4
      for (int n = 0; n < NP; n++)
        _mm_prefetch((const char *)(q + (size_t)n * pb + (size_t)k * 32) + PH_PREFETCH,
                     _MM_HINT_T0);
    __m512 w[4];
#pragma GCC unroll 4
    for (int n = 0; n < NP; n++)
      w[n] = _mm512_cvtph_ps(
          _mm256_loadu_si256((const __m256i *)(q + (size_t)n * pb + (size_t)k * 32)));
#pragma GCC unroll 12
    for (int t = 0; t < T; t++) {
      const __m512 b = _mm512_set1_ps(x[t][k]);
#pragma GCC unroll 4
      for (int n = 0; n < NP; n++)
        acc[n][t] = _mm512_fmadd_ps(w[n], b, acc[n][t]);
    }
  }
#pragma GCC unroll 12
  for (int t = 0; t < T; t++)
#pragma GCC unroll 4
    for (int n = 0; n < NP; n++)
      _mm512_storeu_ps(y + t * a->y_stride + n * CLL_PACK_ROWS, acc[n][t]);
}

/* BF16: ni element pairs of a K-chunk (q: its first pair in the first
 * panel); xb: the first token's bf16 activations of the chunk, xbs
 * elements between tokens. The first chunk stores its sums, later ones
 * add to y. pf (prefill, NULL or the same K-chunk of the next pair of
 * panels): fetched into L2 along the way, so that the first tile over the
 * next pair, which reads it from memory, does not wait for it (the later
 * tiles over a pair find it in L1/L2). Same harness as at PB_SCRATCH_ELEMS:
 * 326 GFLOP/s without, 381 with. */
static inline __attribute__((always_inline)) void
bf16_tile(const int NP, const int T, const uint8_t *q, size_t pb, int64_t ni, const uint16_t *xb,
          size_t xbs, float *y, int64_t ys, int first, const uint8_t *pf) {
  __m512 acc[4][PH_TOK];
#pragma GCC unroll 12
  for (int t = 0; t < T; t++)
#pragma GCC unroll 4
    for (int n = 0; n < NP; n++)
      acc[n][t] = first ? _mm512_setzero_ps() : _mm512_loadu_ps(y + t * ys + n * CLL_PACK_ROWS);
  for (int64_t i = 0; i < ni; i++) {
    if (NP == 4) /* decode */
#pragma GCC unroll 4
      for (int n = 0; n < NP; n++)
        _mm_prefetch((const char *)(q + (size_t)n * pb + (size_t)i * 64) + PH_PREFETCH,
                     _MM_HINT_T0);
    if (NP == 2 && pf != NULL) {
      _mm_prefetch((const char *)(pf + (size_t)i * 64), _MM_HINT_T1);
      _mm_prefetch((const char *)(pf + pb + (size_t)i * 64), _MM_HINT_T1);
    }
    __m512i w[4];
#pragma GCC unroll 4
    for (int n = 0; n < NP; n++)
      w[n] = _mm512_loadu_si512((const void *)(q + (size_t)n * pb + (size_t)i * 64));
#pragma GCC unroll 12
    for (int t = 0; t < T; t++) {
      const __m512i b = _mm512_set1_epi32(ld32(xb + (size_t)t * xbs + 2 * (size_t)i));
#pragma GCC unroll 4
      for (int n = 0; n < NP; n++)
        acc[n][t] = _mm512_dpbf16_ps(acc[n][t], (__m512bh)w[n], (__m512bh)b);
    }
  }
#pragma GCC unroll 12
  for (int t = 0; t < T; t++)
#pragma GCC unroll 4
    for (int n = 0; n < NP; n++)
      _mm512_storeu_ps(y + t * ys + n * CLL_PACK_ROWS, acc[n][t]);
}

/* switch (n) calling F(k, ...) for n in 1..12 (k a constant). */
#define SWITCH_TILES12(n, F, ...)                                                                  \
  switch (n) {                                                                                     \
    TILE_CASE_(12, F, __VA_ARGS__)                                                                 \
    TILE_CASE_(11, F, __VA_ARGS__)                                                                 \
    TILE_CASE_(10, F, __VA_ARGS__)                                                                 \
    TILE_CASE_(9, F, __VA_ARGS__)                                                                  \
    TILE_CASE_(8, F, __VA_ARGS__)                                                                  \
    TILE_CASES_7_4_(F, __VA_ARGS__)                                                                \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }

#define F16_TILE1(T, ...) f16_tile(1, T, __VA_ARGS__)
#define F16_TILE2(T, ...) f16_tile(2, T, __VA_ARGS__)
#define BF16_TILE1(T, ...) bf16_tile(1, T, __VA_ARGS__)
#define BF16_TILE2(T, ...) bf16_tile(2, T, __VA_ARGS__)

/* One tile of np (1, 2 or 4: then T = 1) panels by T tokens. Not inlined
 * into the loops below: the 25 tile copies stay out of their way. */
static void f16_tile_any(int np, int64_t T, const cll_matmul_args *a, const uint8_t *q, size_t pb,
                         int64_t t0, float *y) {
  if (np == 4) {
    f16_tile(4, 1, a, q, pb, t0, y);
  } else if (np == 2) {
    SWITCH_TILES12(T, F16_TILE2, a, q, pb, t0, y)
  } else {
    SWITCH_TILES12(T, F16_TILE1, a, q, pb, t0, y)
  }
}

static void bf16_tile_any(int np, int64_t T, const uint8_t *q, size_t pb, int64_t ni,
                          const uint16_t *xb, size_t xbs, float *y, int64_t ys, int first,
                          const uint8_t *pf) {
  if (np == 4) {
    bf16_tile(4, 1, q, pb, ni, xb, xbs, y, ys, first, pf);
  } else if (np == 2) {
    SWITCH_TILES12(T, BF16_TILE2, q, pb, ni, xb, xbs, y, ys, first, pf)
  } else {
    SWITCH_TILES12(T, BF16_TILE1, q, pb, ni, xb, xbs, y, ys, first, pf)
  }
}

/* Panels per tile at panel p of [p, p1) for a chunk of nt tokens. */
static int tile_panels(int64_t p, int64_t p1, int64_t nt) {
  if (nt == 1 && p + 4 <= p1)
    return 4;
  return p + 2 <= p1 ? 2 : 1;
}

/* ---------------------------------------------------------------- products */

void cll__matmul_f16_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const size_t pb = f16_panel_bytes(a->n_in);
  for (int64_t tc = 0; tc < a->n_tok; tc += PH_CHUNK) {
    const int64_t te = a->n_tok - tc < PH_CHUNK ? a->n_tok : tc + PH_CHUNK;
    for (int64_t p = p0; p < p1;) {
      const int np = tile_panels(p, p1, te - tc);
      const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb;
      float *y = a->y + p * CLL_PACK_ROWS;
      FOR_TILES(tc, te, PH_TOK, t0, t1) {
        f16_tile_any(np, t1 - t0, a, q, pb, t0, y + t0 * a->y_stride);
      }
      p += np;
    }
  }
}

void cll__matmul_bf16_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t npair = (a->n_in + 1) / 2;
  const size_t pb = bf16_panel_bytes(a->n_in);
  uint16_t stack_buf[PB_BUF_ELEMS] __attribute__((aligned(64)));
  uint16_t *buf = stack_buf;
  int64_t buf_elems = PB_BUF_ELEMS;
  /* The scratch where it is larger than the stack buffer, from its first
   * 64-byte boundary. */
  if (a->scratch != NULL && a->scratch_bytes >= 2 * PB_BUF_ELEMS + 64) {
    buf = (uint16_t *)(((uintptr_t)a->scratch + 63) & ~(uintptr_t)63);
    buf_elems = (int64_t)((a->scratch_bytes - 64) / 2);
    if (buf_elems > PB_SCRATCH_ELEMS)
      buf_elems = PB_SCRATCH_ELEMS;
  }
  for (int64_t tc = 0; tc < a->n_tok; tc += PH_CHUNK) {
    const int64_t te = a->n_tok - tc < PH_CHUNK ? a->n_tok : tc + PH_CHUNK, nt = te - tc;
    /* Pairs per K-chunk: as many as the buffer holds for nt tokens, a
     * multiple of 16 (so each token's row is whole 64-byte vectors); at
     * decode the whole row. */
    int64_t kc = (buf_elems / 2 / nt) & ~(int64_t)15;
    if (kc > ((npair + 15) & ~(int64_t)15))
      kc = (npair + 15) & ~(int64_t)15;
    const size_t xbs = 2 * (size_t)kc;
    for (int64_t i0 = 0; i0 < npair; i0 += kc) {
      const int64_t ni = npair - i0 < kc ? npair - i0 : kc;
      for (int64_t t = tc; t < te; t++)
        round_bf16(a->x + t * a->x_stride, a->n_in, 2 * i0, 2 * ni, buf + (size_t)(t - tc) * xbs);
      for (int64_t p = p0; p < p1;) {
        const int np = tile_panels(p, p1, nt);
        const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pb + (size_t)i0 * 64;
        float *y = a->y + p * CLL_PACK_ROWS;
        const uint8_t *pf = np == 2 && p + 4 <= p1 ? q + 2 * pb : NULL;
        FOR_TILES(tc, te, PH_TOK, t0, t1) {
          bf16_tile_any(np, t1 - t0, q, pb, ni, buf + (size_t)(t0 - tc) * xbs, xbs,
                        y + t0 * a->y_stride, a->y_stride, i0 == 0, t0 == tc ? pf : NULL);
        }
        p += np;
      }
    }
  }
}

#else
typedef int cll__avx512_half_unused; /* ISO C: a translation unit is not empty */
#endif
