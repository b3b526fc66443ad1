/* avx512_internal.h — what the AVX-512 kernel files tell each other. The
 * avx512 table lives in avx512.c (float formats, few-token F16, Q4_0 /
 * Q8_0 dots); it lists the int8 GEMMs of avx512_gemm.c (prefill, packed
 * per call: Q4_0/Q8_0, Q4_K, Q6_K) and the kernels of avx512_packed.c
 * (the matmul_packed slots of Q4_0, Q8_0, Q4_K, Q5_K and Q6_K matrices
 * repacked at load by pack.c; layouts there and, scalar, in ref_matmul.c)
 * and of avx512_half.c (F16 and BF16 matrices repacked at load).
 * Also the small helpers those files share. Only for files built with
 * the avx512 flags. */
#ifndef CLLAMA_KERNELS_AVX512_INTERNAL_H
#define CLLAMA_KERNELS_AVX512_INTERNAL_H

#include "kernels/packed.h"
#include "kernels/x86_inline.h"

/* avx512_gemm.c */
size_t cll__gemm_q8_0_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q8_0_avx512(const cll_matmul_args *a); /* Q4_0 and Q8_0 weights */
size_t cll__gemm_q4_K_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q4_K_avx512(const cll_matmul_args *a);
size_t cll__gemm_q6_K_scratch_bytes_avx512(int64_t n_in);
void cll__gemm_q6_K_avx512(const cll_matmul_args *a);

/* avx512_packed.c */
void cll__matmul_q4_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

void cll__matmul_q8_0_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

void cll__matmul_q4_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

void cll__matmul_q5_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

/* The Q4_K GEMM's panel, per super-block: the quants (0..15; Q5_K's
 * 0..31 fit too) of 16 rows, 8 sub-blocks s of 8 vectors (dword j of
 * vector (s, g) = elements 32s + 4g .. 32s + 4g + 3 of row j), then each
 * row's scale of sub-block s as an int32 (sc[s * 16 + j]), its min twice
 * as an int16 pair (mn[s * 16 + j]), and d, dmin as 16 floats each. The
 * packed Q4_K and Q5_K kernels unpack into it for many tokens and run the
 * GEMM's tiles on it: tokens [tc, te) times the panel of rows r..r + 15. */
#define K4_SB_BYTES (8 * 8 * 64 + 8 * 64 + 8 * 64 + 2 * 64)
void cll__gemm_q4_K_tiles_avx512(const cll_matmul_args *a, int64_t nb, const uint8_t *panel,
                                 int64_t tc, int64_t te, int64_t r);

/* The Q6_K GEMM's panel, per super-block: the 6-bit quants (0..63) of 16
 * rows, 8 groups G of 8 vectors (dword j of vector (G, g) = elements 32G
 * + 4g .. 32G + 4g + 3 of row j), then the 16 scales of each row as int32
 * (sc[s * 16 + j]), the scales as int16 pairs (sp[p * 16 + j] = scales 2p,
 * 2p + 1), and d as 16 floats. The packed Q6_K kernel unpacks into it for
 * many tokens and runs the GEMM's tiles on it: tokens [tc, te) times the
 * panel of rows r..r + 15. */
#define K6_SB_BYTES (8 * 8 * 64 + 16 * 64 + 8 * 64 + 64)
void cll__gemm_q6_K_tiles_avx512(const cll_matmul_args *a, int64_t nb, const uint8_t *panel,
                                 int64_t tc, int64_t te, int64_t r);

void cll__matmul_q6_K_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

/* avx512_half.c (the BF16 kernels need AVX512_BF16: dispatch.c installs
 * them, from cll__kernels_avx512_bf16, only where CPUID has it) */
size_t cll__pack_bytes_f16_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_f16_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                          void *dst);
void cll__matmul_f16_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

size_t cll__pack_bytes_bf16_avx512(int64_t n_in, int64_t n_rows);
void cll__pack_bf16_avx512(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                           void *dst);
void cll__matmul_bf16_packed_avx512(const cll_matmul_args *a, int64_t p0, int64_t p1);

/* ---------------------------------------------------------------- shared helpers
 * (TOK_CHUNK, ld32, FOR_TILES, SWITCH_TILES*: packed.h) */

/* The packed K-quant panels' unpacking (layouts: avx512_packed.c), for
 * avx512_packed.c and amx.c. */

/* Bit `from` of every byte of h moved to bit 4 (other bits: garbage). */
static inline __attribute__((always_inline)) __m512i bit_to4(__m512i h, const int from) {
  if (from < 4)
    return _mm512_slli_epi16(h, (unsigned)(4 - from));
  if (from > 4)
    return _mm512_srli_epi16(h, (unsigned)(from - 4));
  return h;
}

/* Chunk c (64 elements: sub-blocks 2c, 2c + 1) of a packed super-block as
 * unsigned quants: lo[g] / hi[g] meet activation dwords 4g and 32 + 4g.
 * Q5_K (q5) adds the fifth bit: bits 2c / 2c + 1 of the qh vectors. */
static inline __attribute__((always_inline)) void pk_unpack(const uint8_t *q, const uint8_t *qh,
                                                            const int c, const int q5,
                                                            __m512i lo[8], __m512i hi[8]) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
#pragma GCC unroll 8
  for (int g = 0; g < 8; g++) {
    const __m512i v = _mm512_load_si512((const void *)(q + (c * 8 + g) * 64));
    lo[g] = _mm512_and_si512(v, m4);
    hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
    if (q5) {
      const __m512i h = _mm512_load_si512((const void *)(qh + g * 64));
      /* a | (b & c) */
      lo[g] = _mm512_ternarylogic_epi32(lo[g], bit_to4(h, 2 * c), b4, 0xF8);
      hi[g] = _mm512_ternarylogic_epi32(hi[g], bit_to4(h, 2 * c + 1), b4, 0xF8);
    }
  }
}

/* Half hi (0: low nibbles, 1: high) of chunk c of a packed Q6_K
 * super-block as unsigned quants 0..63: w[g] meets activation dword g of
 * elements 128n + 64hi + 32e... */
static inline __attribute__((always_inline)) void pk6_unpack(const uint8_t *q, const int c,
                                                             const int hi, __m512i w[8]) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  const int n = c / 2, e = c % 2, bit = 4 * hi + 2 * e; /* of the two qh bits */
#pragma GCC unroll 8
  for (int g = 0; g < 8; g++) {
    __m512i v = _mm512_load_si512((const void *)(q + (c * 8 + g) * 64));
    const __m512i h = _mm512_load_si512((const void *)(q + 2048 + (8 * n + g) * 64));
    if (hi)
      v = _mm512_srli_epi16(v, 4);
    /* (v & 15) | (h' & 0x30), h' = h with the two bits moved to 4, 5 */
    w[g] = _mm512_ternarylogic_epi32(_mm512_and_si512(v, m4), bit_to4(h, bit), m30, 0xF8);
  }
}

/* The quants of a packed Q4_K (q5 = 0) or Q5_K super-block q as bytes
 * (0..15, 0..31), sub-block s (32 elements) at dst + 512 s: dword j of
 * vector g = elements 32s + 4g .. 32s + 4g + 3 of row j (the GEMM's
 * panel layout and AMX's B tiles). */
static inline __attribute__((always_inline)) void pk_unpack_sb(const uint8_t *q, const int q5,
                                                               uint8_t *dst) {
#pragma GCC unroll 1
  for (int c = 0; c < 4; c++) {
    __m512i lo[8], hi[8];
    pk_unpack(q, q + 2048, c, q5, lo, hi);
#pragma GCC unroll 8
    for (int g = 0; g < 8; g++) {
      _mm512_storeu_si512((void *)(dst + (2 * c * 8 + g) * 64), lo[g]);
      _mm512_storeu_si512((void *)(dst + ((2 * c + 1) * 8 + g) * 64), hi[g]);
    }
  }
}

/* The same for a packed Q6_K super-block (0..63): group G (elements
 * 32G.., sub-blocks 2G and 2G + 1) at dst + 512 G. */
static inline __attribute__((always_inline)) void pk6_unpack_sb(const uint8_t *q, uint8_t *dst) {
#pragma GCC unroll 1
  for (int c = 0; c < 4; c++)
#pragma GCC unroll 2
    for (int hi = 0; hi < 2; hi++) {
      __m512i w[8];
      pk6_unpack(q, c, hi, w);
      const int G = 4 * (c / 2) + 2 * hi + c % 2;
#pragma GCC unroll 8
      for (int g = 0; g < 8; g++)
        _mm512_storeu_si512((void *)(dst + (G * 8 + g) * 64), w[g]);
    }
}

/* ---------------------------------------------------------------- bf16 activations
 * (the packed BF16 kernels of avx512_half.c and amx.c) */

static inline __mmask16 first_n(int64_t n) {
  return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1u);
}

/* Elements [e0, e0 + ne) of the float row x, rounded to bf16 (nearest
 * even), into dst[0..), zero from x's end (n_in) up to a multiple of 32. */
static inline void round_bf16(const float *x, int64_t n_in, int64_t e0, int64_t ne, uint16_t *dst) {
  const int64_t have = n_in - e0 < ne ? n_in - e0 : ne;
  for (int64_t e = 0; e < ne; e += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(first_n(have - e), x + e0 + e);
    const __m512 hi = _mm512_maskz_loadu_ps(first_n(have - e - 16), x + e0 + e + 16);
    _mm512_storeu_si512((void *)(dst + e), (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

/* The T token rows t0.. of a Q8_0 tile: zeroed accumulators, each token's
 * blocks and its per-block scales and sums (cll__q8_sums). */
static inline __attribute__((always_inline)) void
q8_tile_tokens(const int T, const cll_matmul_args *a, int64_t nb, int64_t t0, __m512 *acc,
               const sb_q8_0 **yrow, const struct cll__q8_sum **ysum) {
#pragma GCC unroll 8
  for (int t = 0; t < T; t++) {
    acc[t] = _mm512_setzero_ps();
    yrow[t] = (const sb_q8_0 *)((const char *)a->xq + (size_t)(t0 + t) * a->xq_stride);
    ysum[t] = cll__q8_sums(yrow[t], nb);
  }
}

#endif
