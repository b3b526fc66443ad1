/* neon.c — AArch64 Advanced SIMD kernels, compiled to nothing elsewhere.
 *
 * Same contracts as ref.c (the specification); entries left NULL in the
 * table fall back to ref.c (dispatch.c). The 8-bit products use the dotprod
 * instruction (SDOT) when the compiler targets it (__ARM_FEATURE_DOTPROD,
 * e.g. -march=armv8.2-a+dotprod) and widening multiplies otherwise; both
 * give the exact same integer sums, so the results only differ from ref.c
 * in the order of the float accumulation. A build for plain ARMv8-A (what
 * Debian's gcc targets by default) gets both: this file as it is, and
 * neon_dotprod.c, the same code with SDOT, which dispatch.c chooses where
 * the CPU reports dotprod (Apple M1 and later, Graviton 2+, Cortex-A76+).
 *
 * Loop shape: one iteration per block, integer sums per (sub-)block, scaled
 * in float exactly like ref.c. Nothing here allocates. */
#include "kernels/quant.h"

#if defined(__aarch64__)

#include <arm_neon.h>
#include <string.h>

#define FP16(x) cll_fp16_to_fp32(x)

/* acc + the four sums of four adjacent int8 products of a and b. */
static inline int32x4_t dot_s8(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  int16x8_t hi = vmull_high_s8(a, b);
  return vpadalq_s16(vpadalq_s16(acc, lo), hi);
#endif
}

/* sum(a[0..32) * b[0..32)) for two 16-lane halves each. */
static inline int32_t dot32(int8x16_t a0, int8x16_t a1, int8x16_t b0, int8x16_t b1) {
  return vaddvq_s32(dot_s8(dot_s8(vdupq_n_s32(0), a0, b0), a1, b1));
}

static inline int32_t dot16(int8x16_t a, int8x16_t b) {
  return vaddvq_s32(dot_s8(vdupq_n_s32(0), a, b));
}

/* ------------------------------------------------------------ F16 x F32 */

static void dot_f16_f32_neon(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    uint16x8_t h0 = vld1q_u16(x + i), h1 = vld1q_u16(x + i + 8);
    float16x8_t f0 = vreinterpretq_f16_u16(h0), f1 = vreinterpretq_f16_u16(h1);
    s0 = vfmaq_f32(s0, vcvt_f32_f16(vget_low_f16(f0)), vld1q_f32(y + i));
    s1 = vfmaq_f32(s1, vcvt_high_f32_f16(f0), vld1q_f32(y + i + 4));
    s2 = vfmaq_f32(s2, vcvt_f32_f16(vget_low_f16(f1)), vld1q_f32(y + i + 8));
    s3 = vfmaq_f32(s3, vcvt_high_f32_f16(f1), vld1q_f32(y + i + 12));
  }
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; i++)
    s += cll_fp16_to_fp32(x[i]) * y[i]; /* the same scalar tail as ref */
  *out = s;
}

static void dequant_f16_neon(const void *src, float *dst, int64_t n) {
  const uint16_t *x = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float16x8_t f = vreinterpretq_f16_u16(vld1q_u16(x + i));
    vst1q_f32(dst + i, vcvt_f32_f16(vget_low_f16(f)));
    vst1q_f32(dst + i + 4, vcvt_high_f32_f16(f));
  }
  for (; i < n; i++)
    dst[i] = cll_fp16_to_fp32(x[i]);
}

/* ------------------------------------------------------------ Q8_0, Q4_0 */

static void dot_q8_0_q8_0_neon(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q8_0 *x = w, *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++) {
    int32_t sumi =
        dot32(vld1q_s8(x[b].qs), vld1q_s8(x[b].qs + 16), vld1q_s8(y[b].qs), vld1q_s8(y[b].qs + 16));
    s += (float)sumi * (FP16(x[b].d) * FP16(y[b].d));
  }
  *out = s;
}

static void dot_q4_0_q8_0_neon(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q4_0 *x = w;
  const cll_block_q8_0 *y = a;
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t s8 = vdupq_n_s8(8);
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK4_0; b++) {
    uint8x16_t v = vld1q_u8(x[b].qs);
    int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), s8);  /* elements 0..15 */
    int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), s8); /* 16..31 */
    int32_t sumi = dot32(lo, hi, vld1q_s8(y[b].qs), vld1q_s8(y[b].qs + 16));
    s += (float)sumi * (FP16(x[b].d) * FP16(y[b].d));
  }
  *out = s;
}

static void dequant_q4_0_neon(const void *src, float *y, int64_t n) {
  const cll_block_q4_0 *x = src;
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  const int8x16_t s8 = vdupq_n_s8(8);
  for (int64_t b = 0; b < n / CLL_QK4_0; b++, y += CLL_QK4_0) {
    float32x4_t d = vdupq_n_f32(FP16(x[b].d));
    uint8x16_t v = vld1q_u8(x[b].qs);
    int8x16_t q[2] = {vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, m4)), s8),
                      vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), s8)};
    for (int h = 0; h < 2; h++) {
      int16x8_t w0 = vmovl_s8(vget_low_s8(q[h])), w1 = vmovl_high_s8(q[h]);
      vst1q_f32(y + 16 * h + 0, vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(w0)))));
      vst1q_f32(y + 16 * h + 4, vmulq_f32(d, vcvtq_f32_s32(vmovl_high_s16(w0))));
      vst1q_f32(y + 16 * h + 8, vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(w1)))));
      vst1q_f32(y + 16 * h + 12, vmulq_f32(d, vcvtq_f32_s32(vmovl_high_s16(w1))));
    }
  }
}

static void dequant_q8_0_neon(const void *src, float *y, int64_t n) {
  const cll_block_q8_0 *x = src;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++, y += CLL_QK8_0) {
    float32x4_t d = vdupq_n_f32(FP16(x[b].d));
    for (int h = 0; h < 2; h++) {
      int8x16_t q = vld1q_s8(x[b].qs + 16 * h);
      int16x8_t w0 = vmovl_s8(vget_low_s8(q)), w1 = vmovl_high_s8(q);
      vst1q_f32(y + 16 * h + 0, vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(w0)))));
      vst1q_f32(y + 16 * h + 4, vmulq_f32(d, vcvtq_f32_s32(vmovl_high_s16(w0))));
      vst1q_f32(y + 16 * h + 8, vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(w1)))));
      vst1q_f32(y + 16 * h + 12, vmulq_f32(d, vcvtq_f32_s32(vmovl_high_s16(w1))));
    }
  }
}

/* Activation quantizers: the same arithmetic as ref.c (round half away
 * from zero for Q8_0, to nearest even for Q8_K), so the bytes are equal. */
static void quantize_q8_0_neon(const float *x, void *dst, int64_t n) {
  cll_block_q8_0 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++, x += CLL_QK8_0) {
    float32x4_t v[8], m = vdupq_n_f32(0);
    for (int j = 0; j < 8; j++) {
      v[j] = vld1q_f32(x + 4 * j);
      m = vmaxq_f32(m, vabsq_f32(v[j]));
    }
    float d = vmaxvq_f32(m) / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    for (int j = 0; j < 8; j += 2) {
      int32x4_t i0 = vcvtaq_s32_f32(vmulq_n_f32(v[j], id));
      int32x4_t i1 = vcvtaq_s32_f32(vmulq_n_f32(v[j + 1], id));
      int16x8_t h = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1));
      vst1_s8(y[b].qs + 4 * j, vmovn_s16(h));
    }
  }
}

static void quantize_q8_K_neon(const float *x, void *dst, int64_t n) {
  cll_block_q8_K *y = dst;
  for (int64_t b = 0; b < n / CLL_QK_K; b++, x += CLL_QK_K) {
    /* The signed value of largest magnitude (the first one, as in ref.c). */
    float amax = 0, max = 0;
    for (int j = 0; j < CLL_QK_K; j++) {
      float a = x[j] < 0 ? -x[j] : x[j];
      if (a > amax) {
        amax = a;
        max = x[j];
      }
    }
    if (amax == 0) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    float iscale = -127.0f / max;
    const int32x4_t lim = vdupq_n_s32(127);
    for (int j = 0; j < CLL_QK_K; j += 16) {
      int16x8_t h[2];
      for (int k = 0; k < 2; k++) {
        int32x4_t i0 =
            vminq_s32(lim, vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 8 * k), iscale)));
        int32x4_t i1 =
            vminq_s32(lim, vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 8 * k + 4), iscale)));
        h[k] = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1));
      }
      vst1q_s8(y[b].qs + j, vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1])));
      y[b].bsums[j / 16] = (int16_t)vaddvq_s32(vaddq_s32(vpaddlq_s16(h[0]), vpaddlq_s16(h[1])));
    }
    y[b].d = 1.0f / iscale;
  }
}

/* ------------------------------------------------------------ K-quants */

/* sum_j m[j] * (bsums[2j] + bsums[2j+1]) for the 8 mins of a Q4_K/Q5_K block. */
static inline int32_t mins_dot(const int16_t *bsums, const uint8_t m[8]) {
  int16x8_t b = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
  int16x8_t mm = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
  int32x4_t p = vmull_s16(vget_low_s16(b), vget_low_s16(mm));
  p = vmlal_high_s16(p, b, mm);
  return vaddvq_s32(p);
}

/* The 8 6-bit scales of a Q4_K/Q5_K block into sc, and its mins times the
 * activation's sums (mins_dot). */
static inline int32_t k4_scales_mins(const uint8_t *scales, const int16_t *bsums, uint8_t sc[8]) {
  uint8_t m[8];
  for (int j = 0; j < 8; j++)
    cll__scale_min_k4(j, scales, &sc[j], &m[j]);
  return mins_dot(bsums, m);
}

static void dot_q4_K_q8_K_neon(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q4_K *x = w;
  const cll_block_q8_K *y = a;
  const uint8x16_t m4 = vdupq_n_u8(0x0F);
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    uint8_t sc[8];
    const int32_t summ = k4_scales_mins(x[b].scales, y[b].bsums, sc);
    int32_t sumi = 0;
    const uint8_t *q4 = x[b].qs;
    const int8_t *q8 = y[b].qs;
    for (int c = 0; c < 4; c++, q4 += 32, q8 += 64) {
      uint8x16_t v0 = vld1q_u8(q4), v1 = vld1q_u8(q4 + 16);
      int32_t plo = dot32(vreinterpretq_s8_u8(vandq_u8(v0, m4)),
                          vreinterpretq_s8_u8(vandq_u8(v1, m4)), vld1q_s8(q8), vld1q_s8(q8 + 16));
      int32_t phi =
          dot32(vreinterpretq_s8_u8(vshrq_n_u8(v0, 4)), vreinterpretq_s8_u8(vshrq_n_u8(v1, 4)),
                vld1q_s8(q8 + 32), vld1q_s8(q8 + 48));
      sumi += plo * sc[2 * c] + phi * sc[2 * c + 1];
    }
    s += y[b].d * (FP16(x[b].d) * (float)sumi - FP16(x[b].dmin) * (float)summ);
  }
  *out = s;
}

static void dot_q5_K_q8_K_neon(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_K *x = w;
  const cll_block_q8_K *y = a;
  const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1), two = vdupq_n_u8(2);
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    uint8_t sc[8];
    const int32_t summ = k4_scales_mins(x[b].scales, y[b].bsums, sc);
    int32_t sumi = 0;
    const uint8_t *q5 = x[b].qs;
    const int8_t *q8 = y[b].qs;
    /* Shifted right by 2 per 64-element chunk: bit 0 is then the fifth bit
     * of the low-nibble group, bit 1 that of the high-nibble group. */
    uint8x16_t h0 = vld1q_u8(x[b].qh), h1 = vld1q_u8(x[b].qh + 16);
    for (int c = 0; c < 4; c++, q5 += 32, q8 += 64) {
      uint8x16_t v0 = vld1q_u8(q5), v1 = vld1q_u8(q5 + 16);
      uint8x16_t lo0 = vorrq_u8(vandq_u8(v0, m4), vshlq_n_u8(vandq_u8(h0, one), 4));
      uint8x16_t lo1 = vorrq_u8(vandq_u8(v1, m4), vshlq_n_u8(vandq_u8(h1, one), 4));
      uint8x16_t hi0 = vorrq_u8(vshrq_n_u8(v0, 4), vshlq_n_u8(vandq_u8(h0, two), 3));
      uint8x16_t hi1 = vorrq_u8(vshrq_n_u8(v1, 4), vshlq_n_u8(vandq_u8(h1, two), 3));
      int32_t plo = dot32(vreinterpretq_s8_u8(lo0), vreinterpretq_s8_u8(lo1), vld1q_s8(q8),
                          vld1q_s8(q8 + 16));
      int32_t phi = dot32(vreinterpretq_s8_u8(hi0), vreinterpretq_s8_u8(hi1), vld1q_s8(q8 + 32),
                          vld1q_s8(q8 + 48));
      sumi += plo * sc[2 * c] + phi * sc[2 * c + 1];
      h0 = vshrq_n_u8(h0, 2);
      h1 = vshrq_n_u8(h1, 2);
    }
    s += y[b].d * (FP16(x[b].d) * (float)sumi - FP16(x[b].dmin) * (float)summ);
  }
  *out = s;
}

static void dot_q6_K_q8_K_neon(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q6_K *x = w;
  const cll_block_q8_K *y = a;
  const uint8x16_t m4 = vdupq_n_u8(0x0F), m3 = vdupq_n_u8(3);
  const int8x16_t s32 = vdupq_n_s8(32);
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int32_t sumi = 0;
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = x[b].ql + 64 * h, *qh = x[b].qh + 32 * h;
      const int8_t *q8 = y[b].qs + 128 * h, *sc = x[b].scales + 8 * h;
      uint8x16_t l0 = vld1q_u8(ql), l1 = vld1q_u8(ql + 16);
      uint8x16_t l2 = vld1q_u8(ql + 32), l3 = vld1q_u8(ql + 48);
      uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16);
      /* Group k (elements 32k..32k+31 of this half): low nibble of ql[l]
       * (k = 0), of ql[l+32] (k = 1), high nibbles (k = 2, 3); the top two
       * bits are bits 2k..2k+1 of qh[l]. */
      uint8x16_t q[4][2] = {
          {vandq_u8(l0, m4), vandq_u8(l1, m4)},
          {vandq_u8(l2, m4), vandq_u8(l3, m4)},
          {vshrq_n_u8(l0, 4), vshrq_n_u8(l1, 4)},
          {vshrq_n_u8(l2, 4), vshrq_n_u8(l3, 4)},
      };
      for (int k = 0; k < 4; k++) {
        uint8x16_t t0 = vshlq_n_u8(vandq_u8(h0, m3), 4), t1 = vshlq_n_u8(vandq_u8(h1, m3), 4);
        int8x16_t a0 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(q[k][0], t0)), s32);
        int8x16_t a1 = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(q[k][1], t1)), s32);
        sumi += dot16(a0, vld1q_s8(q8 + 32 * k)) * sc[2 * k] +
                dot16(a1, vld1q_s8(q8 + 32 * k + 16)) * sc[2 * k + 1];
        h0 = vshrq_n_u8(h0, 2);
        h1 = vshrq_n_u8(h1, 2);
      }
    }
    s += y[b].d * FP16(x[b].d) * (float)sumi;
  }
  *out = s;
}

/* neon_dotprod.c builds this file again with SDOT, under its own name. */
#ifndef NEON_TABLE
#define NEON_TABLE cll__kernels_neon
#endif

const cll_kernels NEON_TABLE = {
    .isa = "neon",
    .dequant_row =
        {
            [CLL_TYPE_F16] = dequant_f16_neon,
            [CLL_TYPE_Q4_0] = dequant_q4_0_neon,
            [CLL_TYPE_Q8_0] = dequant_q8_0_neon,
        },
    .quantize_row =
        {
            [CLL_TYPE_Q8_0] = quantize_q8_0_neon,
            [CLL_TYPE_Q8_K] = quantize_q8_K_neon,
        },
    .vec_dot =
        {
            [CLL_TYPE_F16] = dot_f16_f32_neon,
            [CLL_TYPE_Q4_0] = dot_q4_0_q8_0_neon,
            [CLL_TYPE_Q8_0] = dot_q8_0_q8_0_neon,
            [CLL_TYPE_Q4_K] = dot_q4_K_q8_K_neon,
            [CLL_TYPE_Q5_K] = dot_q5_K_q8_K_neon,
            [CLL_TYPE_Q6_K] = dot_q6_K_q8_K_neon,
        },
};

#else
typedef int cll__neon_unused; /* ISO C wants a non-empty translation unit */
#endif
