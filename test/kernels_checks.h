/* kernels_checks.h — the kernel test cases, shared by the Criterion test
 * (test_kernels.c) and the standalone driver that is cross-compiled for
 * aarch64 and run under qemu (kernels_standalone.c, `make test-neon`).
 *
 * Each check_* function returns the number of failed expectations and
 * prints one line per failure; it needs only libc and the kernel sources. */
#ifndef CLLAMA_TEST_KERNELS_CHECKS_H
#define CLLAMA_TEST_KERNELS_CHECKS_H

#include "cllama/kernels.h"
#include "kernels/matmul_internal.h"
#include "kernels/quant.h"
#include "kernels/simd.h"

#include <math.h>
#include <stdio.h>
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
#endif
#include <stdlib.h>
#include <string.h>

#define KC_EXPECT(fails, cond, ...)                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      (fails)++;                                                                                   \
      fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);                            \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

/* Deterministic xorshift generator, so failures reproduce. */
typedef struct {
  uint64_t s;
} kc_rng;

static inline uint32_t kc_u32(kc_rng *r) {
  r->s ^= r->s << 13;
  r->s ^= r->s >> 7;
  r->s ^= r->s << 17;
  return (uint32_t)(r->s >> 16);
}

static inline float kc_unif(kc_rng *r) {
  return (float)(kc_u32(r) >> 8) / 16777216.0f;
}

static inline float kc_gauss(kc_rng *r) {
  float u = kc_unif(r) + 1e-7f, v = kc_unif(r);
  return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

static const uint32_t kc_all_types[] = {
    CLL_TYPE_F32,  CLL_TYPE_F16,  CLL_TYPE_BF16, CLL_TYPE_Q4_0, CLL_TYPE_Q4_1,
    CLL_TYPE_Q5_0, CLL_TYPE_Q5_1, CLL_TYPE_Q8_0, CLL_TYPE_Q8_1, CLL_TYPE_Q2_K,
    CLL_TYPE_Q3_K, CLL_TYPE_Q4_K, CLL_TYPE_Q5_K, CLL_TYPE_Q6_K, CLL_TYPE_Q8_K,
};
#define KC_N_TYPES (sizeof kc_all_types / sizeof kc_all_types[0])

/* ---------------------------------------------------------------- fp16 */

static inline int check_fp16(void) {
  int f = 0;
  struct {
    float v;
    uint16_t h;
  } cases[] = {
      {0.0f, 0x0000},
      {-0.0f, 0x8000},
      {1.0f, 0x3C00},
      {-2.0f, 0xC000},
      {65504.0f, 0x7BFF},
      {65519.0f, 0x7BFF},
      {65520.0f, 0x7C00},
      {1e9f, 0x7C00},
      {0x1p-24f, 0x0001},
      {0x1p-25f, 0x0000},
      {0x1.8p-25f, 0x0001},
      {0x1.8p-24f, 0x0002},
      {0x1p-14f, 0x0400},
      {0.1f, 0x2E66},
      {1.0009765625f, 0x3C01},
      {1.00048828125f, 0x3C00},
      /* tie -> even */ {1.00146484375f, 0x3C02}, /* tie -> even */
      {INFINITY, 0x7C00},
      {-INFINITY, 0xFC00},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint16_t h = cll_fp32_to_fp16(cases[i].v);
    KC_EXPECT(f, h == cases[i].h, "fp16(%a) = %04x, want %04x", cases[i].v, h, cases[i].h);
  }
  KC_EXPECT(f, (cll_fp32_to_fp16(NAN) & 0x7FFF) > 0x7C00, "NaN stays NaN");
  /* Every finite half converts to float and back exactly. */
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7C00) == 0x7C00)
      continue;
    float v = cll_fp16_to_fp32((uint16_t)h);
    if (cll_fp32_to_fp16(v) != h) {
      KC_EXPECT(f, 0, "fp16 round trip of %04x via %a", h, v);
      break;
    }
  }
  KC_EXPECT(f, cll_fp16_to_fp32(0x0001) == 0x1p-24f, "smallest subnormal");
  KC_EXPECT(f, cll_fp16_to_fp32(0xFC00) == -INFINITY, "-inf");
  /* bf16: exact round trips and round-to-nearest-even. */
  for (uint32_t h = 0; h < 0x10000; h += 7) {
    if ((h & 0x7F80) == 0x7F80)
      continue;
    KC_EXPECT(f, cll_fp32_to_bf16(cll_bf16_to_fp32((uint16_t)h)) == h, "bf16 %04x", h);
  }
  KC_EXPECT(f, cll_fp32_to_bf16(1.0f) == 0x3F80, "bf16 1");
  KC_EXPECT(f, cll_fp32_to_bf16(1.00390625f) == 0x3F80, "bf16 tie to even");
  KC_EXPECT(f, cll_fp32_to_bf16(1.01171875f) == 0x3F82, "bf16 tie to even (up)");
  KC_EXPECT(f, (cll_fp32_to_bf16(NAN) & 0x7FFF) > 0x7F80, "bf16 NaN");
  return f;
}

/* ---------------------------------------------------------------- types */

static inline int check_type_info(void) {
  int f = 0;
  struct {
    uint32_t t;
    uint32_t elems, bytes;
    const char *name;
  } want[] = {
      {CLL_TYPE_F32, 1, 4, "F32"},       {CLL_TYPE_F16, 1, 2, "F16"},
      {CLL_TYPE_BF16, 1, 2, "BF16"},     {CLL_TYPE_Q4_0, 32, 18, "Q4_0"},
      {CLL_TYPE_Q4_1, 32, 20, "Q4_1"},   {CLL_TYPE_Q5_0, 32, 22, "Q5_0"},
      {CLL_TYPE_Q5_1, 32, 24, "Q5_1"},   {CLL_TYPE_Q8_0, 32, 34, "Q8_0"},
      {CLL_TYPE_Q8_1, 32, 36, "Q8_1"},   {CLL_TYPE_Q2_K, 256, 84, "Q2_K"},
      {CLL_TYPE_Q3_K, 256, 110, "Q3_K"}, {CLL_TYPE_Q4_K, 256, 144, "Q4_K"},
      {CLL_TYPE_Q5_K, 256, 176, "Q5_K"}, {CLL_TYPE_Q6_K, 256, 210, "Q6_K"},
      {CLL_TYPE_Q8_K, 256, 292, "Q8_K"},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const struct cll_type_info *ti = cll_type_info(want[i].t);
    KC_EXPECT(f, ti != NULL, "type %u known", want[i].t);
    if (!ti)
      continue;
    KC_EXPECT(f,
              ti->block_elems == want[i].elems && ti->block_bytes == want[i].bytes &&
                  strcmp(ti->name, want[i].name) == 0,
              "type %s: %u elems %u bytes", ti->name, ti->block_elems, ti->block_bytes);
    KC_EXPECT(f, cll_row_bytes(want[i].t, 4 * want[i].elems) == 4 * want[i].bytes, "row bytes");
    if (want[i].elems > 1)
      KC_EXPECT(f, cll_row_bytes(want[i].t, want[i].elems + 1) == 0, "partial block");
  }
  KC_EXPECT(f, cll_type_info(4) == NULL && cll_type_info(5) == NULL, "removed Q4_2/Q4_3");
  KC_EXPECT(f, cll_type_info(CLL_TYPE_COUNT) == NULL && cll_type_info(999999) == NULL, "range");
  KC_EXPECT(f, cll_row_bytes(999, 32) == 0 && cll_row_bytes(CLL_TYPE_F32, -1) == 0, "bad");
  const cll_kernels *k = cll_kernels_get();
  KC_EXPECT(f, k != NULL && k->isa != NULL, "a table is chosen");
  KC_EXPECT(f, cll_kernels_by_name("ref") != NULL, "ref exists");
  KC_EXPECT(f, cll_kernels_by_name("nope") == NULL && cll_kernels_by_name(NULL) == NULL, "bad");
  /* Every table has every entry the reference has. */
  const char *isas[] = {"ref", "avx2", "avx512", "neon", "neon-nodot"};
  const cll_kernels *ref = cll_kernels_by_name("ref");
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    const cll_kernels *t = cll_kernels_by_name(isas[i]);
    if (!t)
      continue;
    KC_EXPECT(f, strcmp(t->isa, isas[i]) == 0, "isa name %s", t->isa);
    for (int ty = 0; ty < CLL_TYPE_COUNT; ty++) {
      KC_EXPECT(f, !ref->dequant_row[ty] == !t->dequant_row[ty], "%s dequant %d", isas[i], ty);
      KC_EXPECT(f, !ref->vec_dot[ty] == !t->vec_dot[ty], "%s vec_dot %d", isas[i], ty);
      KC_EXPECT(f, !ref->quantize_row[ty] == !t->quantize_row[ty], "%s quant %d", isas[i], ty);
    }
  }
  return f;
}

/* ---------------------------------------------------------------- data */

/* Fills nb blocks of type t with random bits, then gives every scale field
 * a sane positive value (random bits there would be NaN/inf or huge). */
static inline void kc_random_blocks(uint32_t t, void *dst, int64_t n, kc_rng *r) {
  const struct cll_type_info *ti = cll_type_info(t);
  size_t bytes = cll_row_bytes(t, n);
  uint8_t *p = dst;
  for (size_t i = 0; i < bytes; i++)
    p[i] = (uint8_t)kc_u32(r);
  int64_t nb = n / ti->block_elems;
  for (int64_t b = 0; b < nb; b++) {
    uint8_t *blk = p + b * ti->block_bytes;
    uint16_t h1 = cll_fp32_to_fp16(0.001f + 0.01f * kc_unif(r));
    uint16_t h2 = cll_fp32_to_fp16(0.001f + 0.01f * kc_unif(r));
    switch (t) {
    case CLL_TYPE_F32: {
      float v = kc_gauss(r);
      memcpy(blk, &v, 4);
      break;
    }
    case CLL_TYPE_F16:
      h1 = cll_fp32_to_fp16(kc_gauss(r));
      memcpy(blk, &h1, 2);
      break;
    case CLL_TYPE_BF16:
      h1 = cll_fp32_to_bf16(kc_gauss(r));
      memcpy(blk, &h1, 2);
      break;
    case CLL_TYPE_Q4_0:
    case CLL_TYPE_Q5_0:
    case CLL_TYPE_Q8_0:
      memcpy(blk, &h1, 2);
      break;
    case CLL_TYPE_Q4_1:
    case CLL_TYPE_Q5_1:
    case CLL_TYPE_Q8_1:
    case CLL_TYPE_Q4_K:
    case CLL_TYPE_Q5_K:
      memcpy(blk, &h1, 2);
      memcpy(blk + 2, &h2, 2);
      break;
    case CLL_TYPE_Q2_K:
      memcpy(blk + 80, &h1, 2);
      memcpy(blk + 82, &h2, 2);
      break;
    case CLL_TYPE_Q3_K:
      memcpy(blk + 108, &h1, 2);
      break;
    case CLL_TYPE_Q6_K:
      memcpy(blk + 208, &h1, 2);
      break;
    case CLL_TYPE_Q8_K: {
      float d = 0.01f * kc_unif(r);
      memcpy(blk, &d, 4);
      cll_block_q8_K *q = (cll_block_q8_K *)(void *)blk;
      for (int j = 0; j < 16; j++) {
        int s = 0;
        for (int l = 0; l < 16; l++)
          s += q->qs[16 * j + l];
        q->bsums[j] = (int16_t)s;
      }
      break;
    }
    default:
      break;
    }
  }
}

/* Gaussian data with a few outliers, like real weights and activations. */
static inline void kc_random_floats(float *x, int64_t n, float scale, kc_rng *r) {
  for (int64_t i = 0; i < n; i++) {
    x[i] = scale * kc_gauss(r);
    if (kc_u32(r) % 97 == 0)
      x[i] *= 6;
  }
}

static inline double kc_rel_rms(const float *a, const float *b, int64_t n) {
  double e = 0, s = 0;
  for (int64_t i = 0; i < n; i++) {
    e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    s += (double)b[i] * b[i];
  }
  return s > 0 ? sqrt(e / s) : sqrt(e);
}

/* ---------------------------------------------------------------- round trip */

/* quantize -> dequantize relative RMS error bound per quantizable type. */
static inline double kc_roundtrip_bound(uint32_t t) {
  switch (t) {
  case CLL_TYPE_F32:
    return 0;
  case CLL_TYPE_F16:
    return 5e-4;
  case CLL_TYPE_BF16:
    return 4e-3;
  case CLL_TYPE_Q8_0:
  case CLL_TYPE_Q8_1:
    return 0.01;
  case CLL_TYPE_Q8_K:
    return 0.025; /* one scale per 256 values */
  case CLL_TYPE_Q6_K:
    return 0.035;
  case CLL_TYPE_Q5_0:
    return 0.07;
  case CLL_TYPE_Q5_1:
  case CLL_TYPE_Q5_K:
    return 0.06;
  case CLL_TYPE_Q4_0:
    return 0.14;
  case CLL_TYPE_Q4_1:
  case CLL_TYPE_Q4_K:
    return 0.12;
  default:
    return 1;
  }
}

static inline int check_roundtrip_table(const cll_kernels *k, int verbose) {
  int f = 0;
  enum { N = 4096 };
  static float x[N], y[N];
  static uint8_t q[N * 4];
  kc_rng r = {0x9E3779B97F4A7C15ull};
  kc_random_floats(x, N, 0.02f, &r);
  for (size_t i = 0; i < KC_N_TYPES; i++) {
    uint32_t t = kc_all_types[i];
    if (!k->quantize_row[t])
      continue;
    k->quantize_row[t](x, q, N);
    k->dequant_row[t](q, y, N);
    double e = kc_rel_rms(y, x, N);
    if (verbose)
      printf("  %-6s %-5s quantize->dequant rel RMS %.5f\n", k->isa, cll_type_info(t)->name, e);
    KC_EXPECT(f, e <= kc_roundtrip_bound(t), "%s %s rel RMS %g > %g", k->isa,
              cll_type_info(t)->name, e, kc_roundtrip_bound(t));
    /* Zeros stay zeros (no NaN from a zero scale). */
    static float z[512];
    memset(z, 0, sizeof z);
    k->quantize_row[t](z, q, 512);
    k->dequant_row[t](q, y, 512);
    int bad = 0;
    for (int j = 0; j < 512; j++)
      bad += y[j] != 0;
    KC_EXPECT(f, bad == 0, "%s %s: zero row gives %d non-zeros", k->isa, cll_type_info(t)->name,
              bad);
  }
  return f;
}

/* ---------------------------------------------------------------- dots */

static inline double kc_dot_tol(uint32_t t) {
  switch (t) {
  case CLL_TYPE_F32:
  case CLL_TYPE_F16:
  case CLL_TYPE_BF16:
    return 1e-5; /* float lanes over up to 16384 terms */
  default:
    return 2e-5;
  }
}

/* For weight type t: vec_dot(w, a) against the double dot of the two
 * dequantized rows, relative to sum |w_i a_i|. Weights either quantized from
 * floats (when t has a quantizer) or random bits. */
static inline int check_vec_dot_vs_dequant(const cll_kernels *k) {
  int f = 0;
  enum { N = 8192 };
  static float x[N], wf[N], af[N];
  static uint8_t wq[N * 4], aq[N * 4];
  kc_rng r = {12345};
  for (size_t i = 0; i < KC_N_TYPES; i++) {
    uint32_t t = kc_all_types[i];
    if (!k->vec_dot[t])
      continue;
    uint32_t at = cll_type_info(t)->act_type;
    for (int mode = 0; mode < 2; mode++) {
      if (mode == 0 && !k->quantize_row[t])
        continue;
      if (mode == 0) {
        kc_random_floats(x, N, 0.05f, &r);
        k->quantize_row[t](x, wq, N);
      } else {
        kc_random_blocks(t, wq, N, &r);
      }
      kc_random_floats(x, N, 1.0f, &r);
      k->quantize_row[at](x, aq, N);
      k->dequant_row[t](wq, wf, N);
      k->dequant_row[at](aq, af, N);
      double want = 0, mag = 0;
      for (int j = 0; j < N; j++) {
        want += (double)wf[j] * af[j];
        mag += fabs((double)wf[j] * af[j]);
      }
      float got;
      k->vec_dot[t](N, wq, aq, &got);
      double tol = kc_dot_tol(t) * mag + 1e-30;
      KC_EXPECT(f, fabs(got - want) <= tol, "%s %s (%s): dot %.9g want %.9g (tol %.3g)", k->isa,
                cll_type_info(t)->name, mode ? "random bits" : "quantized", got, want, tol);
    }
  }
  return f;
}

/* ---------------------------------------------------------------- SIMD vs ref */

static inline int check_table_vs_ref(const cll_kernels *k) {
  int f = 0;
  const cll_kernels *ref = cll_kernels_by_name("ref");
  enum { LONG = 16384 };
  static float x[LONG], y0[LONG], y1[LONG];
  static uint8_t w[LONG * 4], a0[LONG * 4], a1[LONG * 4];
  const int blocks[] = {1, 2, 3, 7, 17, 33, -1};
  kc_rng r = {777};
  for (size_t i = 0; i < KC_N_TYPES; i++) {
    uint32_t t = kc_all_types[i];
    const struct cll_type_info *ti = cll_type_info(t);
    for (size_t bi = 0; bi < sizeof blocks / sizeof blocks[0]; bi++) {
      /* Float types have no blocks: 32 elements per "block" plus an odd
       * tail so vector loops meet every remainder. */
      int64_t b = blocks[bi];
      int64_t n = b < 0 ? LONG : ti->block_elems == 1 ? 32 * b + b % 7 : b * ti->block_elems;
      /* dequant_row: must agree to the last bit (plain products of the
       * same fp16/fp32 numbers), up to one rounding for fused forms. */
      if (k->dequant_row[t]) {
        kc_random_blocks(t, w, n, &r);
        ref->dequant_row[t](w, y0, n);
        k->dequant_row[t](w, y1, n);
        int bad = 0;
        for (int64_t j = 0; j < n; j++)
          bad += fabsf(y0[j] - y1[j]) > 1e-6f * fabsf(y0[j]) + 1e-30f;
        KC_EXPECT(f, bad == 0, "%s dequant %s n=%lld: %d differ", k->isa, ti->name, (long long)n,
                  bad);
      }
      /* quantize_row: dequantized results within one quantization step of
       * each other (a SIMD rounding may differ on exact ties). */
      if (k->quantize_row[t] && ref->quantize_row[t]) {
        kc_random_floats(x, n, 0.1f, &r);
        ref->quantize_row[t](x, a0, n);
        k->quantize_row[t](x, a1, n);
        ref->dequant_row[t](a0, y0, n);
        ref->dequant_row[t](a1, y1, n);
        double e0 = kc_rel_rms(y0, x, n), e1 = kc_rel_rms(y1, x, n);
        KC_EXPECT(f, e1 <= e0 * 1.05 + 1e-7, "%s quantize %s n=%lld: error %g vs ref %g", k->isa,
                  ti->name, (long long)n, e1, e0);
      }
      /* vec_dot over the same activation bytes. */
      if (k->vec_dot[t]) {
        uint32_t at = ti->act_type;
        kc_random_blocks(t, w, n, &r);
        kc_random_floats(x, n, 1.0f, &r);
        ref->quantize_row[at](x, a0, n);
        float d0, d1;
        ref->vec_dot[t](n, w, a0, &d0);
        k->vec_dot[t](n, w, a0, &d1);
        ref->dequant_row[t](w, y0, n);
        ref->dequant_row[at](a0, y1, n);
        double mag = 0;
        for (int64_t j = 0; j < n; j++)
          mag += fabs((double)y0[j] * y1[j]);
        double tol = kc_dot_tol(t) * mag + 1e-30;
        KC_EXPECT(f, fabs((double)d0 - d1) <= tol, "%s vec_dot %s n=%lld: %.9g vs ref %.9g", k->isa,
                  ti->name, (long long)n, d1, d0);
      }
    }
  }
  return f;
}

/* ---------------------------------------------------------------- optional slots vs their twins
 *
 * Every optional slot of table k (vec_dot_rows, gemm, matmul_few, pack /
 * matmul_packed) against its scalar twin in cll__kernels_generic
 * (ref_matmul.c), on odd sizes: rows 3..42 of 45 (two whole 16-row panels
 * and a partial one), row lengths that are no multiple of 8 blocks, and
 * 1, 3, 8 and 13 tokens. Packed forms must be byte-identical to the
 * twin's. For k = the generic table itself, the twins are checked against
 * plain vec_dot. Activations are laid out as cll_matmul_prepare does
 * (Q8_0 rows carry their block sums, rows 64-byte aligned). */

enum { KS_ROWS = 45, KS_R0 = 3, KS_R1 = 42, KS_MAXTOK = 13 };

static inline size_t ks_xq_stride(uint32_t at, int64_t n) {
  size_t row = cll_row_bytes(at, n);
  if (at == CLL_TYPE_Q8_0)
    row = cll__q8_sums_offset(n / CLL_QK8_0) + (size_t)(n / CLL_QK8_0) * sizeof(struct cll__q8_sum);
  return (row + 63) & ~(size_t)63;
}

/* T token rows of activations for weight type t: floats x (stride n) and,
 * for quantized types, xq (stride *xs). extreme: every value of token k
 * is +1 (k even) or -1 (k odd), so every int8 activation is +-127. */
static inline void ks_acts(uint32_t t, int64_t n, int T, float *x, uint8_t *xq, size_t *xs,
                           kc_rng *r, int extreme) {
  const cll_kernels *ref = cll_kernels_by_name("ref");
  const uint32_t at = cll_type_info(t)->act_type;
  kc_random_floats(x, n * T, 1.0f, r);
  if (extreme)
    for (int64_t i = 0; i < n * T; i++)
      x[i] = (i / n) % 2 ? -1.0f : 1.0f;
  *xs = at == CLL_TYPE_F32 ? 0 : ks_xq_stride(at, n);
  if (at == CLL_TYPE_F32)
    return;
  for (int k = 0; k < T; k++) {
    uint8_t *row = xq + (size_t)k * *xs;
    ref->quantize_row[at](x + k * n, row, n);
    if (at == CLL_TYPE_Q8_0)
      cll__q8_fill_sums(row, n / CLL_QK8_0);
  }
}

/* Compares y (the slot's output) with want over rows [r0, r1) of T tokens
 * (stride KS_ROWS + 3), relative to sum |w a| per output; rows outside
 * must still hold the sentinel. Returns the mismatches. */
static inline int ks_compare(const char *what, const cll_kernels *k, uint32_t t, int64_t n, int T,
                             const float *y, const float *want, const float *mag, int64_t r0,
                             int64_t r1) {
  int bad = 0;
  for (int tk = 0; tk < T; tk++)
    for (int64_t row = 0; row < KS_ROWS + 3; row++) {
      const float got = y[tk * (KS_ROWS + 3) + row];
      const float w = want[tk * (KS_ROWS + 3) + row];
      const int inside = row >= r0 && row < r1;
      const int ok =
          inside ? fabs((double)got - w) <= 3e-5 * mag[tk * KS_ROWS + row] + 1e-6 : got == 12345.0f;
      if (!ok && bad++ < 3)
        fprintf(stderr, "%s %s %s n=%lld T=%d row %lld: %.7g, want %.7g%s\n", k->isa, what,
                cll_type_info(t)->name, (long long)n, T, (long long)row, got, w,
                inside ? "" : " (outside the slice)");
    }
  return bad;
}

/* The largest quants of a K-quant row of nb super-blocks (Q4_K 15, Q5_K
 * 31, Q6_K 63), scales left random: with ks_acts' extreme activations
 * this is where int16 sums in the AVX2 kernels would overflow. */
static inline void ks_max_quants(uint32_t t, uint8_t *row, int64_t nb) {
  for (int64_t i = 0; i < nb; i++) {
    if (t == CLL_TYPE_Q4_K) {
      cll_block_q4_K *b = (cll_block_q4_K *)(void *)row + i;
      memset(b->qs, 0xFF, sizeof b->qs);
    } else if (t == CLL_TYPE_Q5_K) {
      cll_block_q5_K *b = (cll_block_q5_K *)(void *)row + i;
      memset(b->qs, 0xFF, sizeof b->qs);
      memset(b->qh, 0xFF, sizeof b->qh);
    } else if (t == CLL_TYPE_Q6_K) {
      cll_block_q6_K *b = (cll_block_q6_K *)(void *)row + i;
      memset(b->ql, 0xFF, sizeof b->ql);
      memset(b->qh, 0xFF, sizeof b->qh);
    }
  }
}

static inline int check_slots_one(const cll_kernels *k, uint32_t t, int64_t n, int T, kc_rng *r,
                                  int extreme) {
  const cll_kernels *g = &cll__kernels_generic, *ref = cll_kernels_by_name("ref");
  const int self = k == g;
  const struct cll_type_info *ti = cll_type_info(t);
  const size_t rb = cll_row_bytes(t, n);
  const int64_t ys = KS_ROWS + 3;
  uint8_t *w = malloc(rb * KS_ROWS);
  float *x = malloc(sizeof(float) * (size_t)(n * T));
  uint8_t *xq = malloc(ks_xq_stride(CLL_TYPE_Q8_0, n) * (size_t)T +
                       ks_xq_stride(CLL_TYPE_Q8_K, n) * (size_t)T);
  float *y = malloc(sizeof(float) * (size_t)(ys * T)),
        *want = malloc(sizeof(float) * (size_t)(ys * T));
  float *mag = malloc(sizeof(float) * KS_ROWS * (size_t)T);
  float *wf = malloc(sizeof(float) * (size_t)n), *af = malloc(sizeof(float) * (size_t)n);
  int f = 0;
  size_t xs = 0;
  for (int64_t row = 0; row < KS_ROWS; row++) {
    kc_random_blocks(t, w + row * rb, n, r);
    if (extreme)
      ks_max_quants(t, w + row * rb, n / ti->block_elems);
  }
  ks_acts(t, n, T, x, xq, &xs, r, extreme);
  const int float_act = ti->act_type == CLL_TYPE_F32;
  const uint8_t *act = float_act ? (const uint8_t *)x : xq;
  const size_t as = float_act ? (size_t)n * sizeof(float) : xs;
  /* Magnitudes, and the plain result (ref vec_dot) the twins must give. */
  for (int64_t row = 0; row < KS_ROWS; row++) {
    ref->dequant_row[t](w + row * rb, wf, n);
    for (int tk = 0; tk < T; tk++) {
      if (float_act)
        memcpy(af, x + tk * n, sizeof(float) * (size_t)n);
      else
        ref->dequant_row[ti->act_type](xq + (size_t)tk * xs, af, n);
      double m = 0;
      for (int64_t i = 0; i < n; i++)
        m += fabs((double)wf[i] * af[i]);
      mag[tk * KS_ROWS + row] = (float)m;
    }
  }
  cll_matmul_args a = {.wtype = t,
                       .w = w,
                       .w_stride = rb,
                       .n_in = n,
                       .r0 = KS_R0,
                       .r1 = KS_R1,
                       .x = x,
                       .x_stride = n,
                       .xq = xq,
                       .xq_stride = xs,
                       .n_tok = T,
                       .y_stride = ys};
#define KS_RESET(buf)                                                                              \
  for (int64_t i_ = 0; i_ < ys * T; i_++)                                                          \
  (buf)[i_] = 12345.0f
  /* The expected values: the twin, or (for the twins) plain vec_dot. */
#define KS_WANT(twin_call, r0_, r1_)                                                               \
  do {                                                                                             \
    KS_RESET(want);                                                                                \
    if (self) {                                                                                    \
      for (int tk = 0; tk < T; tk++)                                                               \
        for (int64_t row = (r0_); row < (r1_); row++)                                              \
          ref->vec_dot[t](n, w + row * rb, act + (size_t)tk * as, &want[tk * ys + row]);           \
    } else {                                                                                       \
      a.y = want;                                                                                  \
      twin_call;                                                                                   \
    }                                                                                              \
  } while (0)
  if (k->vec_dot_rows[t]) {
    KS_WANT(
        for (int tk = 0; tk < T; tk++) for (int64_t row = KS_R0; row + CLL_DOT_ROWS <= KS_R1;
                                            row += CLL_DOT_ROWS)
            g->vec_dot_rows[t](n, w + row * rb, rb, act + (size_t)tk * as, &want[tk * ys + row]),
        KS_R0, KS_R0 + (KS_R1 - KS_R0) / CLL_DOT_ROWS * CLL_DOT_ROWS);
    KS_RESET(y);
    for (int tk = 0; tk < T; tk++)
      for (int64_t row = KS_R0; row + CLL_DOT_ROWS <= KS_R1; row += CLL_DOT_ROWS)
        k->vec_dot_rows[t](n, w + row * rb, rb, act + (size_t)tk * as, &y[tk * ys + row]);
    f += ks_compare("vec_dot_rows", k, t, n, T, y, want, mag, KS_R0,
                    KS_R0 + (KS_R1 - KS_R0) / CLL_DOT_ROWS * CLL_DOT_ROWS);
  }
  if (k->gemm[t]) {
    const size_t sb = k->gemm_scratch_bytes[t](n);
    void *scratch = malloc(sb + 64);
    KS_WANT(g->gemm[t](&a), KS_R0, KS_R1);
    KS_RESET(y);
    a.y = y;
    a.scratch = scratch;
    a.scratch_bytes = sb;
    k->gemm[t](&a);
    a.scratch = NULL;
    a.scratch_bytes = 0;
    f += ks_compare("gemm", k, t, n, T, y, want, mag, KS_R0, KS_R1);
    free(scratch);
  }
  if (k->matmul_few[t] && T >= k->few_min_tok[t] && T <= k->few_max_tok[t]) {
    KS_WANT(g->matmul_few[t](&a), KS_R0, KS_R1);
    KS_RESET(y);
    a.y = y;
    k->matmul_few[t](&a);
    f += ks_compare("matmul_few", k, t, n, T, y, want, mag, KS_R0, KS_R1);
  }
  if (k->pack[t]) {
    const int64_t np = KS_ROWS / CLL_PACK_ROWS;
    const size_t pb = k->pack_bytes[t](n, KS_ROWS);
    KC_EXPECT(f, self || (g->pack[t] && g->pack_bytes[t](n, KS_ROWS) == pb),
              "%s pack %s: no twin of the same size", k->isa, ti->name);
    uint8_t *p1 = aligned_alloc(64, (pb + 63) & ~(size_t)63),
            *p2 = aligned_alloc(64, (pb + 63) & ~(size_t)63);
    memset(p1, 0, pb);
    memset(p2, 0, pb);
    k->pack[t](w, rb, n, 0, 1, p1); /* in two parts, as threads would */
    k->pack[t](w, rb, n, 1, np, p1);
    if (!self && g->pack[t]) {
      g->pack[t](w, rb, n, 0, np, p2);
      KC_EXPECT(f, memcmp(p1, p2, pb) == 0, "%s pack %s n=%lld: layout differs from the twin",
                k->isa, ti->name, (long long)n);
    }
    a.wp = p1;
    a.wp_rows = np * CLL_PACK_ROWS;
    /* Packed BF16 products see the activations rounded to bf16
     * (kernels.h, matmul_packed): so must plain vec_dot. */
    float *xr = NULL;
    if (self && t == CLL_TYPE_BF16) {
      xr = malloc(sizeof(float) * (size_t)(n * T));
      for (int64_t i = 0; i < n * T; i++)
        xr[i] = cll_bf16_to_fp32(cll_fp32_to_bf16(x[i]));
      act = (const uint8_t *)xr;
    }
    KS_WANT(g->matmul_packed[t](&a, 0, np), 0, np * CLL_PACK_ROWS);
    act = float_act ? (const uint8_t *)x : xq;
    free(xr);
    KS_RESET(y);
    a.y = y;
    k->matmul_packed[t](&a, 0, np);
    f += ks_compare("matmul_packed", k, t, n, T, y, want, mag, 0, np * CLL_PACK_ROWS);
    a.wp = NULL;
    a.wp_rows = 0;
    free(p1), free(p2);
  }
#undef KS_WANT
#undef KS_RESET
  free(w), free(x), free(xq), free(y), free(want), free(mag), free(wf), free(af);
  return f;
}

/* Every optional slot of k against its twin; *n_slots counts the slots
 * that were filled (a table with none checks nothing). */
static inline int check_slots_vs_generic(const cll_kernels *k, int *n_slots) {
  static const int toks[] = {1, 3, 8, 13};
  kc_rng r = {4242};
  int f = 0;
  *n_slots = 0;
  for (uint32_t t = 0; t < CLL_TYPE_COUNT; t++) {
    if (!k->vec_dot_rows[t] && !k->gemm[t] && !k->matmul_few[t] && !k->pack[t])
      continue;
    (*n_slots)++;
    const struct cll_type_info *ti = cll_type_info(t);
    /* Odd block counts: 37 blocks of 32 (not a multiple of 8), 5 super-
     * blocks of 256; float rows of odd length. */
    const int64_t lens[2] = {ti->block_elems == 1    ? 1001
                             : ti->block_elems == 32 ? 37 * 32
                                                     : 5 * 256,
                             ti->block_elems == 1    ? 64
                             : ti->block_elems == 32 ? 3 * 32
                                                     : 256};
    for (int li = 0; li < 2; li++)
      for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++)
        f += check_slots_one(k, t, lens[li], toks[j], &r, 0);
    /* The K-quants again at their largest quants and activations (int16
     * overflow in the vpmaddubsw kernels). */
    if (t == CLL_TYPE_Q4_K || t == CLL_TYPE_Q5_K || t == CLL_TYPE_Q6_K)
      for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++)
        f += check_slots_one(k, t, lens[0], toks[j], &r, 1);
  }
  return f;
}

/* AArch64: the neon table is the SDOT build exactly where the CPU reports
 * dotprod (qemu's default CPU does, -cpu cortex-a53 does not: make
 * test-neon runs both), and neon-nodot never is. Elsewhere neither
 * exists. */
static inline int check_neon_dispatch(void) {
  int f = 0;
  const cll_kernels *neon = cll_kernels_by_name("neon"), *nodot = cll_kernels_by_name("neon-nodot");
#if defined(__aarch64__)
  KC_EXPECT(f, neon != NULL && nodot != NULL, "neon and neon-nodot exist");
  if (neon == NULL || nodot == NULL)
    return f;
  const int sdot = neon->vec_dot[CLL_TYPE_Q8_0] == cll__kernels_neon_dotprod.vec_dot[CLL_TYPE_Q8_0];
  KC_EXPECT(f, nodot->vec_dot[CLL_TYPE_Q8_0] == cll__kernels_neon.vec_dot[CLL_TYPE_Q8_0],
            "neon-nodot is neon.c's table");
#if defined(__linux__)
  const int cpu = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
  KC_EXPECT(f, sdot == cpu, "neon uses SDOT (%d) iff the CPU has dotprod (%d)", sdot, cpu);
#endif
  printf("kernels: neon table %s SDOT\n", sdot ? "with" : "without");
#else
  KC_EXPECT(f, neon == NULL && nodot == NULL, "no neon tables on this ISA");
#endif
  return f;
}

/* The packed Q4_0, Q8_0, Q4_K, Q5_K and BF16 products of k where they run on AMX tiles
 * (amx.c: whole tiles of 16 tokens, the rest on the VNNI kernels),
 * against their twins: token counts with one and several whole tiles and
 * a remainder (16, 17, 37, 70), rows of 37 and 3 blocks, then the largest
 * quants; 150 tokens. */
static inline int check_amx_slots(const cll_kernels *k) {
  static const int toks[] = {16, 17, 37, 70};
  static const uint32_t types[] = {CLL_TYPE_Q4_0, CLL_TYPE_Q8_0, CLL_TYPE_Q4_K,
                                   CLL_TYPE_Q5_K, CLL_TYPE_Q6_K, CLL_TYPE_BF16};
  kc_rng r = {777};
  int f = 0;
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    if (k->pack[types[ti]] == NULL)
      continue;
    /* Rows of several K-chunks and of one. BF16: 1001 (four K-chunks of
     * 256, the last ending inside a tile step of 32) and 61 (whose last
     * step holds 15 of its 16 pairs: past them lies the panel's end). */
    const int64_t bl = cll_type_info(types[ti])->block_elems;
    const int64_t big = bl == 1 ? 1001 : bl == 32 ? 37 * 32 : 5 * 256;
    const int64_t small = bl == 1 ? 61 : bl == 32 ? 3 * 32 : 256;
    for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++) {
      f += check_slots_one(k, types[ti], big, toks[j], &r, 0);
      f += check_slots_one(k, types[ti], small, toks[j], &r, 0);
      if (bl != 1)
        f += check_slots_one(k, types[ti], small, toks[j], &r, 1);
    }
    /* Several chunks of tokens (int8: 64 a chunk; BF16 without scratch:
     * 64). */
    f += check_slots_one(k, types[ti], small, 150, &r, 0);
  }
  return f;
}

/* Whether dispatch.c gave the avx512 table the AMX slots. */
static inline int kc_avx512_has_amx(void) {
  return cll_kernels_uses_amx(cll_kernels_by_name("avx512"));
}

/* k with the matmul_packed slots of ext (an extension's set, such as
 * amx.c's) where k packs the type with the same layout: what dispatch.c's
 * add_packed does to a table. */
static inline void kc_overlay_packed(cll_kernels *k, const cll_kernels *ext) {
  for (uint32_t t = 0; t < CLL_TYPE_COUNT; t++)
    if (ext->matmul_packed[t] != NULL && k->pack[t] != NULL && k->pack[t] == ext->pack[t])
      k->matmul_packed[t] = ext->matmul_packed[t];
}

/* Runs check_table_vs_ref for every non-reference table this CPU has;
 * returns failures, sets *n_tables. */
static inline int check_all_tables_vs_ref(int *n_tables) {
  int f = 0;
  /* avx512-nobf16: what a CPU without AVX512_BF16 runs, avx2-novnni one
   * without AVX-VNNI, neon-nodot one without SDOT (dispatch.c). */
  const char *isas[] = {"avx2-novnni", "avx2",       "avx512-nobf16", "avx512-noamx",
                        "avx512",      "neon-nodot", "neon"};
  *n_tables = 0;
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    const cll_kernels *k = cll_kernels_by_name(isas[i]);
    if (!k)
      continue;
    (*n_tables)++;
    int slots = 0;
    /* avx512-noamx is the avx512 table on CPUs without AMX: checked once. */
    if (strcmp(isas[i], "avx512-noamx") == 0 && !kc_avx512_has_amx()) {
      (*n_tables)--;
      continue;
    }
    int fi = check_table_vs_ref(k) + check_roundtrip_table(k, 0) + check_vec_dot_vs_dequant(k) +
             check_slots_vs_generic(k, &slots);
    const int amx = cll_kernels_uses_amx(k);
    if (amx)
      fi += check_amx_slots(k);
    printf("kernels: %s%s vs ref (%d types with optional slots): %s\n", isas[i],
           amx ? " (AMX tiles)" : "", slots, fi ? "FAILED" : "ok");
    f += fi;
  }
  return f;
}

#endif
