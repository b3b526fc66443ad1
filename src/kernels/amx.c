/* amx.c — prefill and batched-step products of packed Q4_0, Q8_0, Q4_K,
 * Q5_K, Q6_K and BF16 matrices on Intel AMX tiles (Sapphire Rapids and
 * later), for the avx512 table. Compiled with the avx512 flags plus
 * -mamx-tile -mamx-int8 -mamx-bf16; dispatch.c installs these
 * matmul_packed slots (cll__kernels_amx: int8, AMX-INT8;
 * cll__kernels_amx_bf16: AMX-BF16 and AVX512_BF16) only where CPUID
 * reports them, Linux grants the tile state (arch_prctl(
 * ARCH_REQ_XCOMP_PERM)) and the self-tests below agree with the VNNI and
 * AVX512_BF16 kernels. The table without them stays reachable as
 * "avx512-noamx". Speed: not measured yet (no AMX machine so far).
 *
 * Why: one TDPBSUD does 16 x 16 x 64 multiply-adds (on a Sapphire Rapids
 * core 1024 a cycle, against 128 for two vpdpbusd zmm), so prompt
 * processing is no longer bound by the int8 dot products but by the
 * float work per block (scales, offsets) that stays on AVX-512.
 *
 * The weights are the avx512 table's packed panels (pack.c), read as
 * they are: a block of a Q8_0 panel is 8 vectors of 64 bytes, dword j of
 * vector g = bytes 4g..4g+3 of row j (+ 128, unsigned). That is exactly
 * the B operand of a tile product: B row k holds, for each of 16 output
 * columns, the 4 consecutive K-elements 4k..4k+3. So B = one block of 16
 * weight rows, 8 rows x 64 bytes, loaded straight from the panel; A = one
 * block (32 int8 quants) of 16 tokens, loaded from the Q8_0 activation
 * rows with their own stride; C = 16 tokens x 16 weight rows of int32,
 * sum(a * (w + 128)) for Q8_0. A Q4_0 block (4 vectors of nibbles) is
 * unpacked into 8 such rows (v & 15, v >> 4 & 15) first: sum(a * (w + 8)).
 * The per-block epilogue on AVX-512 is the VNNI kernel's, term for term:
 * y += (d_w * d_a) * float(C + o), o = -8 sum(a) or -128 sum(a) from the
 * activation row's cll__q8_sum; the integer sums are exact, so the result
 * is bit-identical to cll__matmul_q{4,8}_0_packed_avx512 (what the
 * self-test and the tests check).
 *
 * Tiles: C 0-3 (16 x 64 bytes), A 4-5 (16 x 32), B 6-7 (8 x 64); one
 * step is two token tiles times two panels. Tokens beyond the last whole
 * tile of 16 (and calls of fewer than 16: decode) go to the VNNI kernels.
 * The K-quants and BF16 have sections of their own below.
 *
 * Tested without AMX hardware: the same file built with
 * -DCLL_AMX_EMULATE replaces the tile instructions with a C model of
 * them (per the Intel SDM: LDTILECFG, TILELOADD, TILESTORED, TILEZERO,
 * TDPBSUD, TDPBF16PS, TILERELEASE, the shape checks included), and test_kernels
 * and test_matmul run that build (cll__kernels_amx_emu) against the
 * reference twins; on an AMX CPU they run the real one too. */
#if defined(__x86_64__)

#include "kernels/avx512_internal.h"
#include "kernels/quant.h"

#include <stdlib.h>

/* The tile configuration LDTILECFG reads (palette 1). */
struct amx_cfg {
  uint8_t palette, start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
_Static_assert(sizeof(struct amx_cfg) == 64, "LDTILECFG reads 64 bytes");

#ifdef CLL_AMX_EMULATE
/* ---------------------------------------------------------------- the C model
 * One thread's tile state. A shape the hardware would refuse (#UD) aborts. */
static _Thread_local struct {
  int configured;
  uint8_t rows[8];
  uint16_t colsb[8];
  uint8_t t[8][16 * 64];
} emu;

static void emu_config(const struct amx_cfg *c) {
  if (c->palette != 1 || c->start_row != 0)
    abort();
  for (int i = 0; i < 8; i++) {
    if (c->rows[i] > 16 || c->colsb[i] > 64)
      abort();
    emu.rows[i] = c->rows[i];
    emu.colsb[i] = c->colsb[i];
  }
  memset(emu.t, 0, sizeof emu.t);
  emu.configured = 1;
}
static void emu_load(int t, const void *base, size_t stride) {
  if (!emu.configured || emu.rows[t] == 0)
    abort();
  memset(emu.t[t], 0, sizeof emu.t[t]);
  for (int r = 0; r < emu.rows[t]; r++)
    memcpy(emu.t[t] + 64 * r, (const char *)base + (size_t)r * stride, emu.colsb[t]);
}
static void emu_store(int t, void *base, size_t stride) {
  if (!emu.configured || emu.rows[t] == 0)
    abort();
  for (int r = 0; r < emu.rows[t]; r++)
    memcpy((char *)base + (size_t)r * stride, emu.t[t] + 64 * r, emu.colsb[t]);
}
static void emu_zero(int t) {
  if (!emu.configured)
    abort();
  memset(emu.t[t], 0, sizeof emu.t[t]);
}
/* C[m][n] += sum over k, i of int8 A[m][4k + i] * uint8 B[k][4n + i]. */
static void emu_dpbsud(int c, int a, int b) {
  if (!emu.configured || emu.rows[c] != emu.rows[a] || emu.colsb[a] != 4 * emu.rows[b] ||
      emu.colsb[c] != emu.colsb[b] || c == a || c == b || a == b)
    abort();
  for (int m = 0; m < emu.rows[c]; m++)
    for (int n = 0; n < emu.colsb[c] / 4; n++) {
      uint32_t acc;
      memcpy(&acc, emu.t[c] + 64 * m + 4 * n, 4);
      for (int k = 0; k < emu.rows[b]; k++)
        for (int i = 0; i < 4; i++)
          acc += (uint32_t)((int32_t)(int8_t)emu.t[a][64 * m + 4 * k + i] *
                            (int32_t)emu.t[b][64 * k + 4 * n + i]);
      memcpy(emu.t[c] + 64 * m + 4 * n, &acc, 4);
    }
}
static float emu_bf16(const uint8_t *p) {
  uint16_t h;
  memcpy(&h, p, 2);
  const uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
/* C[m][n] (fp32) += A[m].bf16[2k] B[k].bf16[2n] + A[m].bf16[2k + 1]
 * B[k].bf16[2n + 1] over k (the hardware also flushes denormals; the
 * tests' tolerances cover the order of the sums). */
static void emu_dpbf16ps(int c, int a, int b) {
  if (!emu.configured || emu.rows[c] != emu.rows[a] || emu.colsb[a] != 4 * emu.rows[b] ||
      emu.colsb[c] != emu.colsb[b] || c == a || c == b || a == b)
    abort();
  for (int m = 0; m < emu.rows[c]; m++)
    for (int n = 0; n < emu.colsb[c] / 4; n++) {
      float acc;
      memcpy(&acc, emu.t[c] + 64 * m + 4 * n, 4);
      for (int k = 0; k < emu.rows[b]; k++)
        for (int i = 0; i < 2; i++)
          acc += emu_bf16(emu.t[a] + 64 * m + 4 * k + 2 * i) *
                 emu_bf16(emu.t[b] + 64 * k + 4 * n + 2 * i);
      memcpy(emu.t[c] + 64 * m + 4 * n, &acc, 4);
    }
}
static void emu_release(void) {
  emu.configured = 0;
}
#define TILE_CONFIG(cfg) emu_config(cfg)
#define TILE_LOAD(t, p, s) emu_load(t, p, s)
#define TILE_STORE(t, p, s) emu_store(t, p, s)
#define TILE_ZERO(t) emu_zero(t)
#define TILE_DP(c, a, b) emu_dpbsud(c, a, b)
#define TILE_DP_BF16(c, a, b) emu_dpbf16ps(c, a, b)
#define TILE_RELEASE() emu_release()
#define AMX_NAME(n) n##_emu
#else
/* GCC 12's tile intrinsics do not tell the compiler which memory they
 * read: _tile_loadd has no memory operand or clobber, and
 * _tile_loadconfig names only the configuration's first 8 bytes. Stores
 * into what a tile then loads (the unpacked weights, the rounded
 * activations, the configuration) could be moved after the load or
 * dropped as dead; a compiler barrier before each keeps them (it emits no
 * instruction; clang's builtins need none, and it costs them nothing). */
#define AMX_BARRIER() __asm__ volatile("" ::: "memory")
#define TILE_CONFIG(cfg)                                                                           \
  do {                                                                                             \
    AMX_BARRIER();                                                                                 \
    _tile_loadconfig(cfg);                                                                         \
  } while (0)
#define TILE_LOAD(t, p, s)                                                                         \
  do {                                                                                             \
    AMX_BARRIER();                                                                                 \
    _tile_loadd(t, p, (long)(s));                                                                  \
  } while (0)
#define TILE_STORE(t, p, s) _tile_stored(t, p, (long)(s))
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_DP(c, a, b) _tile_dpbsud(c, a, b)
#define TILE_DP_BF16(c, a, b) _tile_dpbf16ps(c, a, b)
#define TILE_RELEASE() _tile_release()
#define AMX_NAME(n) n
#endif

/* Tokens per A tile, and per chunk (its float sums, 64 tokens x 2 panels
 * x 16 rows, 8 KiB, stay in L1 while the panels pass). */
#define AMX_M 16
#define AMX_CHUNK 64

/* The weight types amx_matmul serves. */
enum { AMX_Q8_0, AMX_Q4_0, AMX_Q4_K, AMX_Q5_K, AMX_Q6_K };

/* Tiles for steps of k bytes of K per row of A: C 0-3 (16 tokens x 16
 * fp32 or int32), A 4-5 (16 tokens x k bytes), B 6-7 (k / 4 rows of 16
 * rows' 4 bytes). int8: k = 32 (a block), Q6_K: 16 (its sub-block),
 * BF16: 64 (32 elements). */
static void amx_configure(int k) {
  struct amx_cfg c __attribute__((aligned(64)));
  memset(&c, 0, sizeof c);
  c.palette = 1;
  for (int t = 0; t < 4; t++)
    c.rows[t] = AMX_M, c.colsb[t] = 64;
  for (int t = 4; t < 6; t++)
    c.rows[t] = AMX_M, c.colsb[t] = (uint16_t)k;
  for (int t = 6; t < 8; t++)
    c.rows[t] = (uint8_t)(k / 4), c.colsb[t] = 64;
  TILE_CONFIG(&c);
}

/* One step of the int8 products: tokens x0.. (A tiles 4 and, with two_m,
 * 5: 16 tokens each, xs bytes apart) times the B tiles 6 and 7 (loaded)
 * into C tiles 0-3 from zero, stored to cbuf (16 x 16 int32 each). */
static inline __attribute__((always_inline)) void
amx_step(const char *x0, size_t xs, const int two_m, int32_t cbuf[4][AMX_M * 16]) {
  TILE_LOAD(4, x0, xs);
  TILE_ZERO(0);
  TILE_DP(0, 4, 6);
  TILE_ZERO(1);
  TILE_DP(1, 4, 7);
  if (two_m) {
    TILE_LOAD(5, x0 + AMX_M * xs, xs);
    TILE_ZERO(2);
    TILE_DP(2, 5, 6);
    TILE_ZERO(3);
    TILE_DP(3, 5, 7);
  }
  TILE_STORE(0, cbuf[0], 64);
  TILE_STORE(1, cbuf[1], 64);
  if (two_m) {
    TILE_STORE(2, cbuf[2], 64);
    TILE_STORE(3, cbuf[3], 64);
  }
}

/* The float sums of tokens [tc, te) (32 a token: panel p, then p + 1
 * where two) into y. */
static void amx_write_y(const cll_matmul_args *a, const float *acc, int64_t tc, int64_t te,
                        int64_t p, const int two) {
  for (int64_t t = tc; t < te; t++) {
    float *y = a->y + t * a->y_stride + p * CLL_PACK_ROWS;
    _mm512_storeu_ps(y, _mm512_load_ps(acc + 32 * (t - tc)));
    if (two)
      _mm512_storeu_ps(y + CLL_PACK_ROWS, _mm512_load_ps(acc + 32 * (t - tc) + 16));
  }
}

/* Tokens [n_full, n_tok) (fewer than a tile, or all of a decode call)
 * on the kernel f of the avx512 table. */
static void vnni_rest(void (*f)(const cll_matmul_args *, int64_t, int64_t),
                      const cll_matmul_args *a, int64_t n_full, int64_t p0, int64_t p1) {
  if (n_full >= a->n_tok)
    return;
  cll_matmul_args rest = *a;
  rest.xq = a->xq != NULL ? (const char *)a->xq + (size_t)n_full * a->xq_stride : NULL;
  rest.x = a->x != NULL ? a->x + n_full * a->x_stride : NULL;
  rest.y = a->y + n_full * a->y_stride;
  rest.n_tok = a->n_tok - n_full;
  f(&rest, p0, p1);
}

/* acc[t][0..16) += (dw * d_a) * float(C[t] + o) for the 16 tokens of one
 * C tile (cbuf, 16 x 16 int32), block i. */
static inline __attribute__((always_inline)) void
amx_epilogue(const int q4, const int32_t *cbuf, __m512 dw, const struct cll__q8_sum *const *sums,
             int64_t i, float *acc) {
#pragma GCC unroll 16
  for (int t = 0; t < AMX_M; t++) {
    const struct cll__q8_sum *s = &sums[t][i];
    const __m512i c = _mm512_add_epi32(_mm512_load_si512((const void *)(cbuf + 16 * t)),
                                       _mm512_set1_epi32(q4 ? s->o4 : s->o8));
    float *at = acc + 32 * t;
    _mm512_store_ps(at, _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(s->d)),
                                        _mm512_cvtepi32_ps(c), _mm512_load_ps(at)));
  }
}

/* Tokens [0, n_full) (whole tiles of 16) times panels [p0, p1). */
static void amx_tiles(const int q4, const cll_matmul_args *a, int64_t p0, int64_t p1,
                      int64_t n_full) {
  const int64_t nb = a->n_in / SB_QK;
  const size_t qb = PQ_BYTES(q4), pb = q4 ? p4_panel_bytes(nb) : p8_panel_bytes(nb);
  int32_t cbuf[4][AMX_M * 16] __attribute__((aligned(64)));
  uint8_t wbuf[2][512] __attribute__((aligned(64)));
  float acc[AMX_CHUNK * 32] __attribute__((aligned(64)));
  const struct cll__q8_sum *sums[AMX_CHUNK];
  amx_configure(SB_QK);
  for (int64_t tc = 0; tc < n_full; tc += AMX_CHUNK) {
    const int64_t te = n_full - tc < AMX_CHUNK ? n_full : tc + AMX_CHUNK;
    for (int64_t t = tc; t < te; t++)
      sums[t - tc] = cll__q8_sums((const char *)a->xq + (size_t)t * a->xq_stride, nb);
    for (int64_t p = p0; p < p1; p += 2) {
      const int two = p + 1 < p1; /* a second panel in this step */
      const uint8_t *q0 = (const uint8_t *)a->wp + (size_t)p * pb, *q1 = q0 + (two ? pb : 0);
      const uint16_t *d0 = (const uint16_t *)(q0 + (size_t)nb * qb),
                     *d1 = (const uint16_t *)(q1 + (size_t)nb * qb);
      memset(acc, 0, sizeof(float) * 32 * (size_t)(te - tc));
      for (int64_t i = 0; i < nb; i++) {
        if (q4) {
          const __m512i m4 = _mm512_set1_epi8(0x0F);
          for (int h = 0; h < 2; h++) {
            const uint8_t *qi = (h ? q1 : q0) + (size_t)i * qb;
#pragma GCC unroll 4
            for (int g = 0; g < 4; g++) {
              const __m512i v = _mm512_loadu_si512((const void *)(qi + 64 * g));
              _mm512_store_si512((void *)(wbuf[h] + 64 * g), _mm512_and_si512(v, m4));
              _mm512_store_si512((void *)(wbuf[h] + 64 * (g + 4)),
                                 _mm512_and_si512(_mm512_srli_epi16(v, 4), m4));
            }
          }
          TILE_LOAD(6, wbuf[0], 64);
          TILE_LOAD(7, wbuf[1], 64);
        } else {
          TILE_LOAD(6, q0 + (size_t)i * qb, 64);
          TILE_LOAD(7, q1 + (size_t)i * qb, 64);
        }
        const __m512 dw0 =
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d0 + i * CLL_PACK_ROWS)));
        const __m512 dw1 =
            _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(d1 + i * CLL_PACK_ROWS)));
        for (int64_t m = tc; m < te; m += 2 * AMX_M) {
          const int two_m = m + AMX_M < te;
          const char *x0 = (const char *)a->xq + (size_t)m * a->xq_stride +
                           (size_t)i * sizeof(sb_q8_0) + offsetof(sb_q8_0, qs);
          amx_step(x0, a->xq_stride, two_m, cbuf);
          float *am = acc + 32 * (m - tc);
          amx_epilogue(q4, cbuf[0], dw0, sums + (m - tc), i, am);
          if (two)
            amx_epilogue(q4, cbuf[1], dw1, sums + (m - tc), i, am + 16);
          if (two_m) {
            amx_epilogue(q4, cbuf[2], dw0, sums + (m - tc) + AMX_M, i, am + 32 * AMX_M);
            if (two)
              amx_epilogue(q4, cbuf[3], dw1, sums + (m - tc) + AMX_M, i, am + 32 * AMX_M + 16);
          }
        }
      }
      amx_write_y(a, acc, tc, te, p, two);
    }
  }
  TILE_RELEASE();
}

/* ---------------------------------------------------------------- Q4_K, Q5_K
 *
 * The packed super-block (pack.c; avx512_packed.c) holds 8 sub-blocks of
 * 32 elements: chunk c's 8 vectors give sub-block 2c in their low nibbles
 * and 2c + 1 in their high ones (Q5_K: plus bits 2c, 2c + 1 of its qh
 * vectors as bit 4). Unpacked, each sub-block is one B tile of unsigned
 * quants (0..15, or 0..31), and A is the same 32 elements of 16 tokens'
 * Q8_K rows. The sub-block's scale multiplies C into an int32 sum per
 * token and row (vpmulld), and the super-block's epilogue is
 * pk4_tile's: y += (d_w d_a) float(sum) - (dmin_w d_a) float(mins . bsums),
 * the mins' dot with the activations' 32-element sums by vpdpwssd. */

/* si[t][0..16) += C[t] * scale for the 16 tokens of one C tile. */
static inline __attribute__((always_inline)) void amx_k_scale(const int32_t *cbuf, __m512i sc,
                                                              int32_t *si) {
#pragma GCC unroll 16
  for (int t = 0; t < AMX_M; t++) {
    int32_t *st = si + 32 * t;
    _mm512_store_si512(
        (void *)st,
        _mm512_add_epi32(_mm512_load_si512((const void *)st),
                         _mm512_mullo_epi32(_mm512_load_si512((const void *)(cbuf + 16 * t)), sc)));
  }
}

/* ---------------------------------------------------------------- Q6_K
 *
 * 16 sub-blocks of 16 elements with int8 scales, so one sub-block per tile
 * step (K = 16: A is 16 tokens x 16 bytes, B 4 rows x 64): a quarter of
 * what a TDPBSUD can do, still twice the VNNI rate. pk6_unpack gives the
 * quants 0..63 (the -32 leaves through the activations' 16-element sums,
 * as in pk6_tile, whose super-block epilogue this is). */

/* The int32 scales of sub-block s of the 16 rows of super-block q. */
static inline __attribute__((always_inline)) __m512i amx_ks_scale(const int kind, const uint8_t *q,
                                                                  int s) {
  if (kind == AMX_Q6_K) {
    const __m512i sp =
        _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(q + PK6_SC + 32 * (s / 2))));
    return s % 2 ? _mm512_srai_epi32(sp, 16) : _mm512_srai_epi32(_mm512_slli_epi32(sp, 16), 16);
  }
  const size_t scoff = kind == AMX_Q5_K ? 2560 : 2048;
  return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(q + scoff + 16 * s)));
}

/* acc (16 rows) += the super-block q's share for the token row yb, from
 * its int32 sum si: pk4_tile's (Q4_K, Q5_K: scaled sums minus the mins
 * times the 32-element activation sums) or pk6_tile's (Q6_K: minus 32
 * times the scales times the 16-element sums). */
static inline __attribute__((always_inline)) void amx_ks_epilogue(const int kind, const uint8_t *q,
                                                                  const sb_q8_K *yb,
                                                                  const int32_t *si, float *acc) {
  const __m512 dy = _mm512_set1_ps(yb->d);
  __m512i mi = _mm512_setzero_si512();
  __m512 v = _mm512_load_ps(acc);
  if (kind == AMX_Q6_K) {
    for (int G = 0; G < 8; G++)
      mi = _mm512_dpwssd_epi32(
          mi, _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)(q + PK6_SC + 32 * G))),
          _mm512_set1_epi32(ld32(yb->bsums + 2 * G)));
    const __m512i tot =
        _mm512_sub_epi32(_mm512_load_si512((const void *)si), _mm512_slli_epi32(mi, 5));
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(q + PK6_D)));
    v = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy), _mm512_cvtepi32_ps(tot), v);
  } else {
    const uint8_t *mn = q + (kind == AMX_Q5_K ? 2560 : 2048) + 128;
    int32_t bs[4];
    _mm_storeu_si128((__m128i *)bs,
                     _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)yb->bsums),
                                    _mm_loadu_si128((const __m128i *)(yb->bsums + 8))));
    for (int c = 0; c < 4; c++)
      mi = _mm512_dpwssd_epi32(
          mi, _mm512_cvtepu8_epi16(_mm256_loadu_si256((const __m256i *)(mn + 32 * c))),
          _mm512_set1_epi32(bs[c]));
    const __m512 dx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(mn + 128)));
    const __m512 dmx = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(mn + 160)));
    v = _mm512_fmadd_ps(_mm512_mul_ps(dx, dy),
                        _mm512_cvtepi32_ps(_mm512_load_si512((const void *)si)), v);
    v = _mm512_fnmadd_ps(_mm512_mul_ps(dmx, dy), _mm512_cvtepi32_ps(mi), v);
  }
  _mm512_store_ps(acc, v);
}

/* Q4_K, Q5_K (8 sub-blocks of 32) and Q6_K (16 of 16): tokens [0, n_full)
 * times panels [p0, p1). */
static inline __attribute__((always_inline)) void
amx_ks_tiles(const int kind, const cll_matmul_args *a, int64_t p0, int64_t p1, int64_t n_full) {
  const int64_t nsb = a->n_in / SB_QK_K;
  const int q6 = kind == AMX_Q6_K, n_sub = q6 ? 16 : 8, sub = SB_QK_K / n_sub;
  const size_t sbb = q6 ? PK6_SB : kind == AMX_Q5_K ? PK5_SB : PK4_SB, pb = (size_t)nsb * sbb;
  int32_t cbuf[4][AMX_M * 16] __attribute__((aligned(64)));
  uint8_t wbuf[2][SB_QK_K * 16] __attribute__((aligned(64))); /* a super-block of 16 rows */
  int32_t si[AMX_CHUNK * 32] __attribute__((aligned(64)));
  float acc[AMX_CHUNK * 32] __attribute__((aligned(64)));
  amx_configure(q6 ? 16 : SB_QK);
  for (int64_t tc = 0; tc < n_full; tc += AMX_CHUNK) {
    const int64_t te = n_full - tc < AMX_CHUNK ? n_full : tc + AMX_CHUNK;
    for (int64_t p = p0; p < p1; p += 2) {
      const int two = p + 1 < p1;
      const uint8_t *pan[2] = {(const uint8_t *)a->wp + (size_t)p * pb, NULL};
      pan[1] = pan[0] + (two ? pb : 0);
      memset(acc, 0, sizeof(float) * 32 * (size_t)(te - tc));
      for (int64_t i = 0; i < nsb; i++) {
        const uint8_t *q[2] = {pan[0] + (size_t)i * sbb, pan[1] + (size_t)i * sbb};
        for (int h = 0; h < 2; h++) {
          if (q6)
            pk6_unpack_sb(q[h], wbuf[h]);
          else
            pk_unpack_sb(q[h], kind == AMX_Q5_K, wbuf[h]);
        }
        memset(si, 0, sizeof(int32_t) * 32 * (size_t)(te - tc));
        for (int s = 0; s < n_sub; s++) {
          TILE_LOAD(6, wbuf[0] + (size_t)(sub / 4 * 64 * s), 64);
          TILE_LOAD(7, wbuf[1] + (size_t)(sub / 4 * 64 * s), 64);
          const __m512i sc0 = amx_ks_scale(kind, q[0], s), sc1 = amx_ks_scale(kind, q[1], s);
          for (int64_t m = tc; m < te; m += 2 * AMX_M) {
            const int two_m = m + AMX_M < te;
            const char *x0 = (const char *)a->xq + (size_t)m * a->xq_stride +
                             (size_t)i * sizeof(sb_q8_K) + offsetof(sb_q8_K, qs) +
                             (size_t)(sub * s);
            amx_step(x0, a->xq_stride, two_m, cbuf);
            int32_t *sm = si + 32 * (m - tc);
            amx_k_scale(cbuf[0], sc0, sm);
            amx_k_scale(cbuf[1], sc1, sm + 16);
            if (two_m) {
              amx_k_scale(cbuf[2], sc0, sm + 32 * AMX_M);
              amx_k_scale(cbuf[3], sc1, sm + 32 * AMX_M + 16);
            }
          }
        }
        for (int64_t t = tc; t < te; t++) {
          const sb_q8_K *yb = (const sb_q8_K *)((const char *)a->xq + (size_t)t * a->xq_stride) + i;
          for (int h = 0; h < 1 + two; h++)
            amx_ks_epilogue(kind, q[h], yb, si + 32 * (t - tc) + 16 * h,
                            acc + 32 * (t - tc) + 16 * h);
        }
      }
      amx_write_y(a, acc, tc, te, p, two);
    }
  }
  TILE_RELEASE();
}

/* ---------------------------------------------------------------- BF16
 *
 * (AMX-BF16.) The packed BF16 panel (avx512_half.c: dword j of vector i =
 * elements 2i, 2i + 1 of row j) is TDPBF16PS's B layout, 16 vectors = 32
 * elements a tile; A is 16 tokens' activations rounded to bf16 (nearest
 * even, as the VNNI kernel rounds them) and zero-padded to whole tiles.
 * No scales: the C tiles (fp32) sum over a K-chunk of AMX_BF16_KC
 * elements and go to y and back between chunks; within a chunk a pair
 * of panels (16 KiB) stays in L1 while every token tile passes. The
 * tile hardware flushes bf16 denormals to zero; vdpbf16ps keeps them. */
#define AMX_BF16_KC 256
#define AMX_BF16_BUF 32768 /* bytes of rounded activations on the stack */

static void amx_bf16_tiles(const cll_matmul_args *a, int64_t p0, int64_t p1, int64_t n_full) {
  const int64_t npair = (a->n_in + 1) / 2, npad = (a->n_in + 31) / 32 * 32;
  const size_t pb = (size_t)npair * 64, ys = (size_t)a->y_stride * sizeof(float);
  uint16_t stack_buf[AMX_BF16_BUF / 2] __attribute__((aligned(64)));
  uint8_t btail[2][16 * 64] __attribute__((aligned(64)));
  uint16_t *buf = stack_buf;
  size_t buf_bytes = sizeof stack_buf;
  /* The caller's scratch where it holds more tokens (fewer passes of the
   * weights from memory). */
  if (a->scratch != NULL && a->scratch_bytes >= 2 * AMX_BF16_BUF + 64) {
    buf = (uint16_t *)(((uintptr_t)a->scratch + 63) & ~(uintptr_t)63);
    buf_bytes = a->scratch_bytes - 64;
  }
  int64_t tchunk = (int64_t)(buf_bytes / (2 * AMX_BF16_KC)) / (2 * AMX_M) * (2 * AMX_M);
  if (tchunk > 512)
    tchunk = 512;
  amx_configure(64);
  for (int64_t tc = 0; tc < n_full; tc += tchunk) {
    const int64_t te = n_full - tc < tchunk ? n_full : tc + tchunk;
    for (int64_t e0 = 0; e0 < npad; e0 += AMX_BF16_KC) {
      const int64_t ne = npad - e0 < AMX_BF16_KC ? npad - e0 : AMX_BF16_KC, steps = ne / 32;
      for (int64_t t = tc; t < te; t++)
        round_bf16(a->x + t * a->x_stride, a->n_in, e0, ne, buf + (size_t)(t - tc) * ne);
      const size_t as = (size_t)ne * 2;
      for (int64_t p = p0; p < p1; p += 2) {
        const int two = p + 1 < p1;
        const uint8_t *q[2] = {(const uint8_t *)a->wp + (size_t)p * pb, NULL};
        q[1] = q[0] + (two ? pb : 0);
        /* The chunk's last step past the panel's end: its pairs, then
         * zeros (the activations there are zeros too, but what lies past
         * the panel need not be a number). */
        const int64_t last = e0 / 2 + 16 * (steps - 1), tail = npair - last;
        if (tail < 16)
          for (int h = 0; h < 2; h++) {
            memset(btail[h], 0, sizeof btail[h]);
            memcpy(btail[h], q[h] + (size_t)last * 64, (size_t)tail * 64);
          }
        for (int64_t m = tc; m < te; m += 2 * AMX_M) {
          const int two_m = m + AMX_M < te;
          float *y0 = a->y + m * a->y_stride + p * CLL_PACK_ROWS, *y1 = y0 + AMX_M * a->y_stride;
          if (e0 == 0) {
            TILE_ZERO(0);
            TILE_ZERO(1);
            TILE_ZERO(2);
            TILE_ZERO(3);
          } else {
            TILE_LOAD(0, y0, ys);
            if (two)
              TILE_LOAD(1, y0 + CLL_PACK_ROWS, ys);
            if (two_m) {
              TILE_LOAD(2, y1, ys);
              if (two)
                TILE_LOAD(3, y1 + CLL_PACK_ROWS, ys);
            }
          }
          const uint16_t *x0 = buf + (size_t)(m - tc) * (size_t)ne;
          for (int64_t k = 0; k < steps; k++) {
            const int64_t i = e0 / 2 + 16 * k;
            if (k == steps - 1 && tail < 16) {
              TILE_LOAD(6, btail[0], 64);
              TILE_LOAD(7, btail[1], 64);
            } else {
              TILE_LOAD(6, q[0] + (size_t)i * 64, 64);
              TILE_LOAD(7, q[1] + (size_t)i * 64, 64);
            }
            TILE_LOAD(4, x0 + 32 * k, as);
            TILE_DP_BF16(0, 4, 6);
            TILE_DP_BF16(1, 4, 7);
            if (two_m) {
              TILE_LOAD(5, x0 + AMX_M * (size_t)ne + 32 * k, as);
              TILE_DP_BF16(2, 5, 6);
              TILE_DP_BF16(3, 5, 7);
            }
          }
          TILE_STORE(0, y0, ys);
          if (two)
            TILE_STORE(1, y0 + CLL_PACK_ROWS, ys);
          if (two_m) {
            TILE_STORE(2, y1, ys);
            if (two)
              TILE_STORE(3, y1 + CLL_PACK_ROWS, ys);
          }
        }
      }
    }
  }
  TILE_RELEASE();
}

void AMX_NAME(cll__matmul_bf16_packed_amx)(const cll_matmul_args *a, int64_t p0, int64_t p1);
void AMX_NAME(cll__matmul_bf16_packed_amx)(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t n_full = a->n_tok / AMX_M * AMX_M;
  if (n_full > 0 && p1 > p0)
    amx_bf16_tiles(a, p0, p1, n_full);
  vnni_rest(cll__matmul_bf16_packed_avx512, a, n_full, p0, p1);
}

/* The whole tiles of 16 tokens on AMX, the rest (and decode) on the VNNI
 * kernel. */
static void amx_matmul(const int kind, const cll_matmul_args *a, int64_t p0, int64_t p1) {
  void (*const vnni[5])(const cll_matmul_args *, int64_t,
                        int64_t) = {cll__matmul_q8_0_packed_avx512, cll__matmul_q4_0_packed_avx512,
                                    cll__matmul_q4_K_packed_avx512, cll__matmul_q5_K_packed_avx512,
                                    cll__matmul_q6_K_packed_avx512};
  const int64_t n_full = a->n_tok / AMX_M * AMX_M;
  if (n_full > 0 && p1 > p0) {
    if (kind == AMX_Q6_K)
      amx_ks_tiles(AMX_Q6_K, a, p0, p1, n_full);
    else if (kind == AMX_Q5_K)
      amx_ks_tiles(AMX_Q5_K, a, p0, p1, n_full);
    else if (kind == AMX_Q4_K)
      amx_ks_tiles(AMX_Q4_K, a, p0, p1, n_full);
    else
      amx_tiles(kind == AMX_Q4_0, a, p0, p1, n_full);
  }
  vnni_rest(vnni[kind], a, n_full, p0, p1);
}

/* The matmul_packed slot of each int8 type. */
#define AMX_SLOT(type, kind)                                                                       \
  void AMX_NAME(cll__matmul_##type##_packed_amx)(const cll_matmul_args *a, int64_t p0,             \
                                                 int64_t p1);                                      \
  void AMX_NAME(cll__matmul_##type##_packed_amx)(const cll_matmul_args *a, int64_t p0,             \
                                                 int64_t p1) {                                     \
    amx_matmul(kind, a, p0, p1);                                                                   \
  }
AMX_SLOT(q4_0, AMX_Q4_0)
AMX_SLOT(q8_0, AMX_Q8_0)
AMX_SLOT(q4_K, AMX_Q4_K)
AMX_SLOT(q5_K, AMX_Q5_K)
AMX_SLOT(q6_K, AMX_Q6_K)

/* The slots dispatch.c adds to the avx512 table (the pack slots are the
 * avx512 table's own: the layout is shared). */
const cll_kernels AMX_NAME(cll__kernels_amx) = {
    .isa = "avx512",
    .pack_bytes = {[CLL_TYPE_Q4_0] = cll__pack_bytes_q4_0,
                   [CLL_TYPE_Q8_0] = cll__pack_bytes_q8_0,
                   [CLL_TYPE_Q4_K] = cll__pack_bytes_q4_K,
                   [CLL_TYPE_Q5_K] = cll__pack_bytes_q5_K,
                   [CLL_TYPE_Q6_K] = cll__pack_bytes_q6_K},
    .pack = {[CLL_TYPE_Q4_0] = cll__pack_q4_0,
             [CLL_TYPE_Q8_0] = cll__pack_q8_0,
             [CLL_TYPE_Q4_K] = cll__pack_q4_K,
             [CLL_TYPE_Q5_K] = cll__pack_q5_K,
             [CLL_TYPE_Q6_K] = cll__pack_q6_K},
    .matmul_packed = {[CLL_TYPE_Q4_0] = AMX_NAME(cll__matmul_q4_0_packed_amx),
                      [CLL_TYPE_Q8_0] = AMX_NAME(cll__matmul_q8_0_packed_amx),
                      [CLL_TYPE_Q4_K] = AMX_NAME(cll__matmul_q4_K_packed_amx),
                      [CLL_TYPE_Q5_K] = AMX_NAME(cll__matmul_q5_K_packed_amx),
                      [CLL_TYPE_Q6_K] = AMX_NAME(cll__matmul_q6_K_packed_amx)},
};

/* The BF16 slots (AMX-BF16, and the avx512 table's BF16 layout, which
 * needs AVX512_BF16): dispatch.c adds them where the CPU has both. */
const cll_kernels AMX_NAME(cll__kernels_amx_bf16) = {
    .isa = "avx512",
    .pack_bytes = {[CLL_TYPE_BF16] = cll__pack_bytes_bf16_avx512},
    .pack = {[CLL_TYPE_BF16] = cll__pack_bf16_avx512},
    .matmul_packed = {[CLL_TYPE_BF16] = AMX_NAME(cll__matmul_bf16_packed_amx)},
};

/* ---------------------------------------------------------------- self-test
 * Before dispatch.c installs the slots: 3 panels (a pair and an odd one)
 * of 4 blocks, 37 tokens (two whole tiles, one of them alone in its
 * step, and 5 for the VNNI kernel), Q4_0 and Q8_0 weights of every quant
 * value, against the VNNI kernels bit for bit. A CPU, hypervisor or
 * kernel whose tiles give anything else keeps the VNNI path. */
enum { ST_PANELS = 3, ST_NB = 4, ST_TOK = 37 };

int AMX_NAME(cll__amx_selftest)(void);
int AMX_NAME(cll__amx_selftest)(void) {
  const int64_t n_in = ST_NB * SB_QK, rows = ST_PANELS * CLL_PACK_ROWS;
  const size_t xs = cll__q8_sums_offset(ST_NB) + ST_NB * sizeof(struct cll__q8_sum);
  sb_q8_0 w8[ST_PANELS * CLL_PACK_ROWS * ST_NB];
  sb_q4_0 w4[ST_PANELS * CLL_PACK_ROWS * ST_NB];
  static uint8_t xq[ST_TOK * 256] __attribute__((aligned(64)));
  static uint8_t p8[ST_PANELS * 4 * 34 * CLL_PACK_ROWS + 64] __attribute__((aligned(64)));
  static uint8_t p4[ST_PANELS * 4 * 18 * CLL_PACK_ROWS + 64] __attribute__((aligned(64)));
  static float y0[ST_TOK * ST_PANELS * CLL_PACK_ROWS], y1[ST_TOK * ST_PANELS * CLL_PACK_ROWS];
  if (xs > 256 || cll__pack_bytes_q8_0(n_in, rows) > sizeof p8 ||
      cll__pack_bytes_q4_0(n_in, rows) > sizeof p4)
    return 0;
  uint32_t r = 12345;
  for (int64_t b = 0; b < rows * ST_NB; b++) {
    w8[b].d = w4[b].d = (uint16_t)(0x3000 + (b % 7) * 0x100); /* 0.125 .. 0.375 */
    for (int j = 0; j < SB_QK; j++) {
      r = r * 1103515245u + 12345u;
      w8[b].qs[j] = (int8_t)(r >> 16);
      if (j < SB_QK / 2)
        w4[b].qs[j] = (uint8_t)(r >> 8);
    }
  }
  for (int t = 0; t < ST_TOK; t++) {
    sb_q8_0 *xb = (sb_q8_0 *)(xq + (size_t)t * 256);
    for (int b = 0; b < ST_NB; b++) {
      xb[b].d = (uint16_t)(0x2C00 + ((t + b) % 5) * 0x200);
      for (int j = 0; j < SB_QK; j++) {
        r = r * 1103515245u + 12345u;
        xb[b].qs[j] = (int8_t)(r >> 16);
      }
    }
    cll__q8_fill_sums(xb, ST_NB);
  }
  int same = 1;
  for (int q4 = 0; q4 < 2 && same; q4++) {
    if (q4)
      cll__pack_q4_0(w4, ST_NB * sizeof(sb_q4_0), n_in, 0, ST_PANELS, p4);
    else
      cll__pack_q8_0(w8, ST_NB * sizeof(sb_q8_0), n_in, 0, ST_PANELS, p8);
    cll_matmul_args a = {.wtype = q4 ? CLL_TYPE_Q4_0 : CLL_TYPE_Q8_0,
                         .wp = q4 ? (const void *)p4 : (const void *)p8,
                         .wp_rows = rows,
                         .n_in = n_in,
                         .r0 = 0,
                         .r1 = rows,
                         .xq = xq,
                         .xq_stride = 256,
                         .n_tok = ST_TOK,
                         .y_stride = rows};
    a.y = y0;
    (q4 ? cll__matmul_q4_0_packed_avx512 : cll__matmul_q8_0_packed_avx512)(&a, 0, ST_PANELS);
    a.y = y1;
    amx_matmul(q4 ? AMX_Q4_0 : AMX_Q8_0, &a, 0, ST_PANELS);
    same = memcmp(y0, y1, sizeof y0) == 0;
  }
  return same;
}

/* The BF16 slots' self-test: 3 panels, rows of 300 elements (two
 * K-chunks, the second ending inside a tile step), 37 tokens, small
 * integers (every product and sum exact in fp32, whatever the order),
 * against the vdpbf16ps kernel bit for bit. */
int AMX_NAME(cll__amx_bf16_selftest)(void);
int AMX_NAME(cll__amx_bf16_selftest)(void) {
  enum { N_IN = 300, ROWS = ST_PANELS * CLL_PACK_ROWS };
  static uint16_t w[ROWS * N_IN];
  static uint8_t wp[ST_PANELS * 150 * 64] __attribute__((aligned(64)));
  static float x[ST_TOK * N_IN], y0[ST_TOK * ROWS], y1[ST_TOK * ROWS];
  if (cll__pack_bytes_bf16_avx512(N_IN, ROWS) > sizeof wp)
    return 0;
  uint32_t r = 777;
  for (int i = 0; i < ROWS * N_IN; i++) {
    r = r * 1103515245u + 12345u;
    w[i] = cll_fp32_to_bf16((float)((int)((r >> 16) % 9) - 4));
  }
  for (int i = 0; i < ST_TOK * N_IN; i++) {
    r = r * 1103515245u + 12345u;
    x[i] = (float)((int)((r >> 16) % 7) - 3);
  }
  cll__pack_bf16_avx512(w, N_IN * 2, N_IN, 0, ST_PANELS, wp);
  cll_matmul_args a = {.wtype = CLL_TYPE_BF16,
                       .wp = wp,
                       .wp_rows = ROWS,
                       .n_in = N_IN,
                       .r0 = 0,
                       .r1 = ROWS,
                       .x = x,
                       .x_stride = N_IN,
                       .n_tok = ST_TOK,
                       .y_stride = ROWS};
  a.y = y0;
  cll__matmul_bf16_packed_avx512(&a, 0, ST_PANELS);
  a.y = y1;
  AMX_NAME(cll__matmul_bf16_packed_amx)(&a, 0, ST_PANELS);
  return memcmp(y0, y1, sizeof y0) == 0;
}

#else
typedef int cll__amx_unused; /* ISO C: a translation unit is not empty */
#endif
