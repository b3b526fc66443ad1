/* quant.h — the GGUF/ggml quantized block formats, byte-exact.
 *
 * Each struct below is one block as it sits in a GGUF tensor: rows are plain
 * arrays of these blocks, with no padding between them. The sizes are fixed
 * by the file format, so each struct carries a static_assert. Every field is
 * little-endian (we only build for little-endian hosts); half-precision
 * scales are stored as raw uint16_t bits and converted with cll_fp16_to_fp32.
 *
 * This header is private to src/kernels and the quantizer (src/model); the
 * engine sees only kernels.h. Also declared here: the per-ISA tables that
 * dispatch.c chooses from (cll__kernels_<isa>). */
#ifndef CLLAMA_KERNELS_QUANT_H
#define CLLAMA_KERNELS_QUANT_H

#include "cllama/kernels.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#define CLL_QK4_0 32
#define CLL_QK4_1 32
#define CLL_QK5_0 32
#define CLL_QK5_1 32
#define CLL_QK8_0 32
#define CLL_QK8_1 32
#define CLL_QK_K 256 /* super-block size of the K-quants */
#define CLL_K_SCALE_SIZE 12

/* Q4_0: x = d * (q - 8), q in 0..15. qs[j] holds element j in its low
 * nibble and element j+16 in its high nibble. */
typedef struct {
  uint16_t d; /* fp16 scale */
  uint8_t qs[CLL_QK4_0 / 2];
} cll_block_q4_0;
static_assert(sizeof(cll_block_q4_0) == 18, "Q4_0 block size");

/* Q4_1: x = d * q + m, q in 0..15; nibble order as Q4_0. */
typedef struct {
  uint16_t d; /* fp16 scale */
  uint16_t m; /* fp16 minimum */
  uint8_t qs[CLL_QK4_1 / 2];
} cll_block_q4_1;
static_assert(sizeof(cll_block_q4_1) == 20, "Q4_1 block size");

/* Q5_0: x = d * (q - 16), q in 0..31. Low 4 bits as Q4_0; bit 4 of element
 * j is bit j of the little-endian 32-bit word qh. */
typedef struct {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[CLL_QK5_0 / 2];
} cll_block_q5_0;
static_assert(sizeof(cll_block_q5_0) == 22, "Q5_0 block size");

/* Q5_1: x = d * q + m, q in 0..31; bit layout as Q5_0. */
typedef struct {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[CLL_QK5_1 / 2];
} cll_block_q5_1;
static_assert(sizeof(cll_block_q5_1) == 24, "Q5_1 block size");

/* Q8_0: x = d * q, q in -127..127. */
typedef struct {
  uint16_t d;
  int8_t qs[CLL_QK8_0];
} cll_block_q8_0;
static_assert(sizeof(cll_block_q8_0) == 34, "Q8_0 block size");

/* Q8_1: x = d * q; s = d * sum(q) (an activation format). */
typedef struct {
  uint16_t d;
  uint16_t s;
  int8_t qs[CLL_QK8_1];
} cll_block_q8_1;
static_assert(sizeof(cll_block_q8_1) == 36, "Q8_1 block size");

/* Q2_K: 16 sub-blocks of 16. scales[i]: low nibble = scale, high nibble =
 * min of sub-block i; x = d * sc * q - dmin * m, q in 0..3. qs: for each
 * half (128 elements, 32 bytes), bits 2k..2k+1 of byte l hold element
 * 32k + l of that half. */
typedef struct {
  uint8_t scales[CLL_QK_K / 16];
  uint8_t qs[CLL_QK_K / 4];
  uint16_t d;
  uint16_t dmin;
} cll_block_q2_K;
static_assert(sizeof(cll_block_q2_K) == 84, "Q2_K block size");

/* Q3_K: 16 sub-blocks of 16 with 6-bit signed scales (stored +32, packed in
 * 12 bytes); x = d * (sc - 32) * (q - 4 * !hbit), low 2 bits as Q2_K, the
 * high bit of element 32k + l (k = 0..7 over the whole block) in bit k of
 * hmask[l]. */
typedef struct {
  uint8_t hmask[CLL_QK_K / 8];
  uint8_t qs[CLL_QK_K / 4];
  uint8_t scales[CLL_K_SCALE_SIZE];
  uint16_t d;
} cll_block_q3_K;
static_assert(sizeof(cll_block_q3_K) == 110, "Q3_K block size");

/* Q4_K: 8 sub-blocks of 32 with 6-bit scales and mins packed in 12 bytes
 * (see cll__scale_min_k4); x = d * sc * q - dmin * m, q in 0..15. qs: for
 * each 64 elements, 32 bytes: low nibbles the first 32, high the next 32. */
typedef struct {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[CLL_K_SCALE_SIZE];
  uint8_t qs[CLL_QK_K / 2];
} cll_block_q4_K;
static_assert(sizeof(cll_block_q4_K) == 144, "Q4_K block size");

/* Q5_K: Q4_K plus a fifth bit: bit 2k (low nibble group) and 2k+1 (high
 * nibble group) of qh[l] for the k-th 64-element chunk. */
typedef struct {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[CLL_K_SCALE_SIZE];
  uint8_t qh[CLL_QK_K / 8];
  uint8_t qs[CLL_QK_K / 2];
} cll_block_q5_K;
static_assert(sizeof(cll_block_q5_K) == 176, "Q5_K block size");

/* Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * sc * (q - 32),
 * q in 0..63: low 4 bits in ql, high 2 bits in qh (see ref.c). */
typedef struct {
  uint8_t ql[CLL_QK_K / 2];
  uint8_t qh[CLL_QK_K / 4];
  int8_t scales[CLL_QK_K / 16];
  uint16_t d;
} cll_block_q6_K;
static_assert(sizeof(cll_block_q6_K) == 210, "Q6_K block size");

/* Q8_K: the activation format of the K-quants. d is a float; bsums[i] is
 * the sum of qs[16i .. 16i+15]. */
typedef struct {
  float d;
  int8_t qs[CLL_QK_K];
  int16_t bsums[CLL_QK_K / 16];
} cll_block_q8_K;
static_assert(sizeof(cll_block_q8_K) == 292, "Q8_K block size");

static_assert(sizeof(uint16_t) == 2, "F16/BF16 element size");

/* fp16 -> fp32, exact, without branches (inlined into the kernels; the
 * public cll_fp16_to_fp32 is this). Normal and inf/NaN halves: move the
 * exponent and mantissa into place with the exponent biased by 224, so a
 * maximal exponent (31) lands on 255, then scale by 2^-112 to rebias to
 * 127 - 15 = 112. Subnormal halves: m * 2^-24, computed exactly as
 * (0.5 + m * 2^-24) - 0.5 with the mantissa bits placed in a float of
 * exponent -1. */
static inline float cll__fp16_to_fp32(uint16_t h) {
  uint32_t two_w = (uint32_t)h << 17; /* exponent and mantissa at the top */
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t nb = (two_w >> 4) + (0xE0u << 23), db = (two_w >> 17) | (126u << 23);
  float nf, df;
  memcpy(&nf, &nb, 4);
  memcpy(&df, &db, 4);
  nf *= 0x1p-112f;
  df -= 0.5f;
  uint32_t nr, dr;
  memcpy(&nr, &nf, 4);
  memcpy(&dr, &df, 4);
  uint32_t r = sign | ((h & 0x7C00) ? nr : dr);
  float f;
  memcpy(&f, &r, 4);
  return f;
}

static inline float cll__bf16_to_fp32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Scale and min number j (0..7) of a Q4_K/Q5_K block's 12 packed bytes:
 * j < 4: the low 6 bits of bytes j and j+4; j >= 4: a nibble of byte j+4
 * plus the top two bits of bytes j-4 (scale) and j (min). */
static inline void cll__scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/* The 16 signed scales (-32..31) of a Q3_K block. */
static inline void cll__q3_K_scales(const uint8_t *packed, int8_t out[16]) {
  for (int j = 0; j < 16; j++) {
    int lo = (j < 8) ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
    int hi = (packed[8 + (j % 4)] >> (2 * (j / 4))) & 3;
    out[j] = (int8_t)((lo | (hi << 4)) - 32);
  }
}

/* Per-ISA tables (avx2.c, avx512.c on x86-64; neon.c on AArch64); dispatch.c
 * fills their NULL entries from the reference. dispatch.c references them
 * strongly, which is what pulls those objects out of libcllama.a. */
extern const cll_kernels cll__kernels_ref;
#if defined(__x86_64__)
extern const cll_kernels cll__kernels_avx2;
extern const cll_kernels cll__kernels_avx512;
/* The avx512 table's kernels that need AVX512_BF16 (only those slots are
 * filled): dispatch.c adds them to the avx512 table where CPUID has it. */
extern const cll_kernels cll__kernels_avx512_bf16;
/* The avx2 table's packed products on AVX-VNNI: dispatch.c adds them to
 * the avx2 table where CPUID has it. */
extern const cll_kernels cll__kernels_avx2_vnni;
/* The avx512 table's packed Q4_0 / Q8_0 products on AMX tiles (amx.c),
 * and its check of them against the VNNI kernels (1 = identical):
 * dispatch.c adds them where the CPU has AMX and the check passes. */
extern const cll_kernels cll__kernels_amx;
int cll__amx_selftest(void);
/* The same for BF16 (AMX-BF16 and AVX512_BF16). */
extern const cll_kernels cll__kernels_amx_bf16;
int cll__amx_bf16_selftest(void);
#endif
#if defined(__aarch64__)
extern const cll_kernels cll__kernels_neon;
/* neon.c built with SDOT (neon_dotprod.c): dispatch.c uses it for the neon
 * table where the CPU has dotprod. */
extern const cll_kernels cll__kernels_neon_dotprod;
#endif

#endif
