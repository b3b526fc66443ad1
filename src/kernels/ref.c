/* ref.c — the scalar reference kernels: the specification of every format,
 * the test oracle for the SIMD files and the portable fallback.
 *
 * For each format: dequant_row (blocks -> floats), quantize_row where the
 * format is an activation format or a quantizer target, and vec_dot of a
 * weight row against its activation format (kernels.h, cll_type_info:
 * Q8_0 for the 32-element formats, Q8_K for the K-quants, F32 for floats).
 * Integer dot products are exact per block and scaled in float, the way the
 * SIMD kernels do it; float formats accumulate in double.
 *
 * The bit layouts and scale/min arithmetic follow the GGUF/ggml formats
 * (quant.h). The round-to-nearest rules of the simple formats follow ggml's
 * reference quantizers, so Q8_0/Q4_0/... output is bit-identical to
 * llama.cpp's; the K-quant quantizers are our own fit (a small search for
 * each sub-block's scale and min), which any reader decodes the same way.
 *
 * Nothing here allocates; every function may run on any thread. */
#include "kernels/quant.h"

#include <math.h>
#include <string.h>

#define FP16(x) cll_fp16_to_fp32(x)

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }
static int iclamp(int v, int lo, int hi) { return imin(imax(v, lo), hi); }
/* Round to nearest, ties to even (the default FP rounding mode). */
static int nearest(float x) { return (int)lrintf(x); }

/* ------------------------------------------------------------ floats */

static void dequant_f32(const void *src, float *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quantize_f32(const float *src, void *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
  const uint16_t *s = src;
  for (int64_t i = 0; i < n; i++) dst[i] = cll_fp16_to_fp32(s[i]);
}

static void quantize_f16(const float *src, void *dst, int64_t n) {
  uint16_t *d = dst;
  for (int64_t i = 0; i < n; i++) d[i] = cll_fp32_to_fp16(src[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
  const uint16_t *s = src;
  for (int64_t i = 0; i < n; i++) dst[i] = cll_bf16_to_fp32(s[i]);
}

static void quantize_bf16(const float *src, void *dst, int64_t n) {
  uint16_t *d = dst;
  for (int64_t i = 0; i < n; i++) d[i] = cll_fp32_to_bf16(src[i]);
}

static void dot_f32_f32(int64_t n, const void *w, const void *a, float *out) {
  const float *x = w, *y = a;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
  *out = (float)s;
}

static void dot_f16_f32(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)cll_fp16_to_fp32(x[i]) * y[i];
  *out = (float)s;
}

static void dot_bf16_f32(int64_t n, const void *w, const void *a, float *out) {
  const uint16_t *x = w;
  const float *y = a;
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += (double)cll_bf16_to_fp32(x[i]) * y[i];
  *out = (float)s;
}

/* ------------------------------------------------------------ Q8_0, Q8_1 */

static void quantize_q8_0(const float *x, void *dst, int64_t n) {
  cll_block_q8_0 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++, x += CLL_QK8_0) {
    float amax = 0;
    for (int j = 0; j < CLL_QK8_0; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    for (int j = 0; j < CLL_QK8_0; j++) y[b].qs[j] = (int8_t)roundf(x[j] * id);
  }
}

static void dequant_q8_0(const void *src, float *y, int64_t n) {
  const cll_block_q8_0 *x = src;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++) {
    float d = FP16(x[b].d);
    for (int j = 0; j < CLL_QK8_0; j++) *y++ = d * x[b].qs[j];
  }
}

static void dot_q8_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q8_0 *x = w, *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++) {
    int sumi = 0;
    for (int j = 0; j < CLL_QK8_0; j++) sumi += x[b].qs[j] * y[b].qs[j];
    s += (float)sumi * (FP16(x[b].d) * FP16(y[b].d));
  }
  *out = s;
}

static void quantize_q8_1(const float *x, void *dst, int64_t n) {
  cll_block_q8_1 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK8_1; b++, x += CLL_QK8_1) {
    float amax = 0;
    for (int j = 0; j < CLL_QK8_1; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int j = 0; j < CLL_QK8_1; j++) {
      y[b].qs[j] = (int8_t)roundf(x[j] * id);
      sum += y[b].qs[j];
    }
    y[b].d = cll_fp32_to_fp16(d);
    y[b].s = cll_fp32_to_fp16((float)sum * d);
  }
}

static void dequant_q8_1(const void *src, float *y, int64_t n) {
  const cll_block_q8_1 *x = src;
  for (int64_t b = 0; b < n / CLL_QK8_1; b++) {
    float d = FP16(x[b].d);
    for (int j = 0; j < CLL_QK8_1; j++) *y++ = d * x[b].qs[j];
  }
}

/* ------------------------------------------------------------ Q4_0, Q4_1 */

static void quantize_q4_0(const float *x, void *dst, int64_t n) {
  cll_block_q4_0 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK4_0; b++, x += CLL_QK4_0) {
    /* The scale maps the value of largest magnitude to -8 exactly. */
    float amax = 0, max = 0;
    for (int j = 0; j < CLL_QK4_0; j++) {
      if (fabsf(x[j]) > amax) {
        amax = fabsf(x[j]);
        max = x[j];
      }
    }
    float d = max / -8.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    for (int j = 0; j < CLL_QK4_0 / 2; j++) {
      int q0 = imin(15, (int8_t)(x[j] * id + 8.5f));
      int q1 = imin(15, (int8_t)(x[j + CLL_QK4_0 / 2] * id + 8.5f));
      y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

static void dequant_q4_0(const void *src, float *y, int64_t n) {
  const cll_block_q4_0 *x = src;
  for (int64_t b = 0; b < n / CLL_QK4_0; b++, y += CLL_QK4_0) {
    float d = FP16(x[b].d);
    for (int j = 0; j < CLL_QK4_0 / 2; j++) {
      y[j] = d * ((x[b].qs[j] & 0xF) - 8);
      y[j + CLL_QK4_0 / 2] = d * ((x[b].qs[j] >> 4) - 8);
    }
  }
}

static void dot_q4_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q4_0 *x = w;
  const cll_block_q8_0 *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK4_0; b++) {
    int sumi = 0;
    for (int j = 0; j < CLL_QK4_0 / 2; j++) {
      sumi += ((x[b].qs[j] & 0xF) - 8) * y[b].qs[j];
      sumi += ((x[b].qs[j] >> 4) - 8) * y[b].qs[j + CLL_QK4_0 / 2];
    }
    s += (float)sumi * (FP16(x[b].d) * FP16(y[b].d));
  }
  *out = s;
}

static void quantize_q4_1(const float *x, void *dst, int64_t n) {
  cll_block_q4_1 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK4_1; b++, x += CLL_QK4_1) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < CLL_QK4_1; j++) {
      min = fminf(min, x[j]);
      max = fmaxf(max, x[j]);
    }
    float d = (max - min) / 15.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    y[b].m = cll_fp32_to_fp16(min);
    for (int j = 0; j < CLL_QK4_1 / 2; j++) {
      int q0 = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
      int q1 = imin(15, (int8_t)((x[j + CLL_QK4_1 / 2] - min) * id + 0.5f));
      y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
    }
  }
}

static void dequant_q4_1(const void *src, float *y, int64_t n) {
  const cll_block_q4_1 *x = src;
  for (int64_t b = 0; b < n / CLL_QK4_1; b++, y += CLL_QK4_1) {
    float d = FP16(x[b].d), m = FP16(x[b].m);
    for (int j = 0; j < CLL_QK4_1 / 2; j++) {
      y[j] = d * (x[b].qs[j] & 0xF) + m;
      y[j + CLL_QK4_1 / 2] = d * (x[b].qs[j] >> 4) + m;
    }
  }
}

/* sum(x*a) = d_x d_a sum(q_x q_a) + m_x d_a sum(q_a). */
static void dot_q4_1_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q4_1 *x = w;
  const cll_block_q8_0 *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK4_1; b++) {
    int sumi = 0, suma = 0;
    for (int j = 0; j < CLL_QK4_1 / 2; j++) {
      sumi += (x[b].qs[j] & 0xF) * y[b].qs[j] + (x[b].qs[j] >> 4) * y[b].qs[j + CLL_QK4_1 / 2];
      suma += y[b].qs[j] + y[b].qs[j + CLL_QK4_1 / 2];
    }
    float da = FP16(y[b].d);
    s += (float)sumi * (FP16(x[b].d) * da) + (float)suma * (FP16(x[b].m) * da);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q5_0, Q5_1 */

static uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void store_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The 5-bit values of a Q5 block, element order. */
static void q5_unpack(const uint8_t qh4[4], const uint8_t qs[16], int q[32]) {
  uint32_t qh = load_u32(qh4);
  for (int j = 0; j < 16; j++) {
    q[j] = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
    q[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
  }
}

static void q5_pack(const int q[32], uint8_t qh4[4], uint8_t qs[16]) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; j++) {
    qs[j] = (uint8_t)((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    qh |= (uint32_t)((q[j] >> 4) & 1) << j;
    qh |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
  }
  store_u32(qh4, qh);
}

static void quantize_q5_0(const float *x, void *dst, int64_t n) {
  cll_block_q5_0 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK5_0; b++, x += CLL_QK5_0) {
    float amax = 0, max = 0;
    for (int j = 0; j < CLL_QK5_0; j++) {
      if (fabsf(x[j]) > amax) {
        amax = fabsf(x[j]);
        max = x[j];
      }
    }
    float d = max / -16.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    int q[32];
    for (int j = 0; j < CLL_QK5_0; j++) q[j] = imin(31, (int8_t)(x[j] * id + 16.5f));
    q5_pack(q, y[b].qh, y[b].qs);
  }
}

static void dequant_q5_0(const void *src, float *y, int64_t n) {
  const cll_block_q5_0 *x = src;
  for (int64_t b = 0; b < n / CLL_QK5_0; b++) {
    float d = FP16(x[b].d);
    int q[32];
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_0; j++) *y++ = d * (q[j] - 16);
  }
}

static void dot_q5_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_0 *x = w;
  const cll_block_q8_0 *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK5_0; b++) {
    int q[32], sumi = 0;
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_0; j++) sumi += (q[j] - 16) * y[b].qs[j];
    s += (float)sumi * (FP16(x[b].d) * FP16(y[b].d));
  }
  *out = s;
}

static void quantize_q5_1(const float *x, void *dst, int64_t n) {
  cll_block_q5_1 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK5_1; b++, x += CLL_QK5_1) {
    float min = INFINITY, max = -INFINITY;
    for (int j = 0; j < CLL_QK5_1; j++) {
      min = fminf(min, x[j]);
      max = fmaxf(max, x[j]);
    }
    float d = (max - min) / 31.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    y[b].m = cll_fp32_to_fp16(min);
    int q[32];
    for (int j = 0; j < CLL_QK5_1; j++) q[j] = imin(31, (uint8_t)((x[j] - min) * id + 0.5f));
    q5_pack(q, y[b].qh, y[b].qs);
  }
}

static void dequant_q5_1(const void *src, float *y, int64_t n) {
  const cll_block_q5_1 *x = src;
  for (int64_t b = 0; b < n / CLL_QK5_1; b++) {
    float d = FP16(x[b].d), m = FP16(x[b].m);
    int q[32];
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_1; j++) *y++ = d * q[j] + m;
  }
}

static void dot_q5_1_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_1 *x = w;
  const cll_block_q8_0 *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK5_1; b++) {
    int q[32], sumi = 0, suma = 0;
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_1; j++) {
      sumi += q[j] * y[b].qs[j];
      suma += y[b].qs[j];
    }
    float da = FP16(y[b].d);
    s += (float)sumi * (FP16(x[b].d) * da) + (float)suma * (FP16(x[b].m) * da);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q8_K */

static void quantize_q8_K(const float *x, void *dst, int64_t n) {
  cll_block_q8_K *y = dst;
  for (int64_t b = 0; b < n / CLL_QK_K; b++, x += CLL_QK_K) {
    float amax = 0, max = 0;
    for (int j = 0; j < CLL_QK_K; j++) {
      if (fabsf(x[j]) > amax) {
        amax = fabsf(x[j]);
        max = x[j];
      }
    }
    if (amax == 0) {
      memset(&y[b], 0, sizeof y[b]);
      continue;
    }
    /* Signed scale: the largest-magnitude value maps to -127. */
    float iscale = -127.0f / max;
    for (int j = 0; j < CLL_QK_K; j++) y[b].qs[j] = (int8_t)imin(127, nearest(iscale * x[j]));
    for (int j = 0; j < CLL_QK_K / 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++) sum += y[b].qs[16 * j + l];
      y[b].bsums[j] = (int16_t)sum;
    }
    y[b].d = 1.0f / iscale;
  }
}

static void dequant_q8_K(const void *src, float *y, int64_t n) {
  const cll_block_q8_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++)
    for (int j = 0; j < CLL_QK_K; j++) *y++ = x[b].d * x[b].qs[j];
}

/* ------------------------------------------------------------ Q2_K */

/* The 2-bit value of element e (0..255) of a Q2_K/Q3_K qs array. */
static int q2_at(const uint8_t *qs, int e) {
  int half = e / 128, r = e % 128;
  return (qs[32 * half + r % 32] >> (2 * (r / 32))) & 3;
}

static void dequant_q2_K(const void *src, float *y, int64_t n) {
  const cll_block_q2_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d), dmin = FP16(x[b].dmin);
    for (int e = 0; e < CLL_QK_K; e++) {
      uint8_t sc = x[b].scales[e / 16];
      *y++ = d * (sc & 0xF) * q2_at(x[b].qs, e) - dmin * (sc >> 4);
    }
  }
}

static void dot_q2_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q2_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 16; j++) {
      int sub = 0;
      for (int l = 0; l < 16; l++) sub += q2_at(x[b].qs, 16 * j + l) * y[b].qs[16 * j + l];
      sumi += (x[b].scales[j] & 0xF) * sub;
      summ += (x[b].scales[j] >> 4) * y[b].bsums[j];
    }
    s += y[b].d * (FP16(x[b].d) * (float)sumi - FP16(x[b].dmin) * (float)summ);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q3_K */

static int q3_at(const cll_block_q3_K *x, int e) {
  int half = e / 128, r = e % 128;
  int hbit = (x->hmask[r % 32] >> (4 * half + r / 32)) & 1;
  return q2_at(x->qs, e) - (hbit ? 0 : 4);
}

static void dequant_q3_K(const void *src, float *y, int64_t n) {
  const cll_block_q3_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d);
    int8_t sc[16];
    cll__q3_K_scales(x[b].scales, sc);
    for (int e = 0; e < CLL_QK_K; e++) *y++ = d * sc[e / 16] * q3_at(&x[b], e);
  }
}

static void dot_q3_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q3_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int8_t sc[16];
    cll__q3_K_scales(x[b].scales, sc);
    int sumi = 0;
    for (int j = 0; j < 16; j++) {
      int sub = 0;
      for (int l = 0; l < 16; l++) sub += q3_at(&x[b], 16 * j + l) * y[b].qs[16 * j + l];
      sumi += sc[j] * sub;
    }
    s += y[b].d * FP16(x[b].d) * (float)sumi;
  }
  *out = s;
}

/* ------------------------------------------------------------ K-quant fitting */

/* Fits x[0..n) ~ scale * q - min with q in 0..nmax, scale >= 0, min >= 0:
 * tries a few step sizes around (max - min) / nmax and, for each rounding,
 * solves the least-squares scale and offset; keeps the best. */
static void fit_affine(const float *x, int n, int nmax, float *scale, float *min) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    lo = fminf(lo, x[i]);
    hi = fmaxf(hi, x[i]);
  }
  if (lo > 0) lo = 0; /* the format cannot add a positive offset */
  if (hi <= lo) {
    *scale = 0;
    *min = -lo;
    return;
  }
  float best_err = INFINITY, best_s = (hi - lo) / nmax, best_b = lo;
  for (int step = -6; step <= 12; step++) {
    float iscale = (nmax + 0.1f * step) / (hi - lo);
    if (iscale <= 0) continue;
    double sq = 0, sqq = 0, sx = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest((x[i] - lo) * iscale), 0, nmax);
      sq += q;
      sqq += (double)q * q;
      sx += x[i];
      sqx += (double)q * x[i];
    }
    double det = n * sqq - sq * sq;
    if (det <= 0) continue;
    double s = (n * sqx - sq * sx) / det;
    double bb = (sx - s * sq) / n;
    if (bb > 0) { /* offset must be <= 0: refit the scale alone */
      bb = 0;
      s = sqq > 0 ? sqx / sqq : 0;
    }
    if (s <= 0) continue;
    double err = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest((x[i] - (float)bb) / (float)s), 0, nmax);
      double e = s * q + bb - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = (float)err;
      best_s = (float)s;
      best_b = (float)bb;
    }
  }
  *scale = best_s;
  *min = -best_b;
}

/* Fits x[0..n) ~ scale * q with q in -nmax..nmax-1 (scale may be negative
 * so that the largest magnitude can use -nmax). */
static float fit_symmetric(const float *x, int n, int nmax) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; i++) {
    if (fabsf(x[i]) > amax) {
      amax = fabsf(x[i]);
      max = x[i];
    }
  }
  if (amax == 0) return 0;
  float best_err = INFINITY, best_s = max / -nmax;
  for (int step = -8; step <= 8; step++) {
    float iscale = -(nmax + 0.1f * step) / max;
    double sqq = 0, sqx = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      sqq += (double)q * q;
      sqx += (double)q * x[i];
    }
    if (sqq <= 0) continue;
    float s = (float)(sqx / sqq);
    double err = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest(x[i] / s), -nmax, nmax - 1);
      double e = (double)s * q - x[i];
      err += e * e;
    }
    if (err < best_err) {
      best_err = (float)err;
      best_s = s;
    }
  }
  return best_s;
}

/* Quantizes the 8 sub-block scales and mins of a Q4_K/Q5_K block to 6 bits
 * under the super-block d and dmin, packs them into 12 bytes, and returns
 * the effective per-sub-block scale and min. */
static void pack_k4_scales(const float scales[8], const float mins[8], uint16_t *d16,
                           uint16_t *dmin16, uint8_t packed[12], float eff_d[8],
                           float eff_m[8]) {
  float max_s = 0, max_m = 0;
  for (int j = 0; j < 8; j++) {
    max_s = fmaxf(max_s, scales[j]);
    max_m = fmaxf(max_m, mins[j]);
  }
  *d16 = cll_fp32_to_fp16(max_s / 63.0f);
  *dmin16 = cll_fp32_to_fp16(max_m / 63.0f);
  float d = FP16(*d16), dmin = FP16(*dmin16);
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; j++) {
    ls[j] = (uint8_t)(d > 0 ? iclamp(nearest(scales[j] / d), 0, 63) : 0);
    lm[j] = (uint8_t)(dmin > 0 ? iclamp(nearest(mins[j] / dmin), 0, 63) : 0);
    eff_d[j] = d * ls[j];
    eff_m[j] = dmin * lm[j];
  }
  memset(packed, 0, 12);
  for (int j = 0; j < 8; j++) {
    if (j < 4) {
      packed[j] = ls[j];
      packed[j + 4] = lm[j];
    } else {
      packed[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      packed[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
      packed[j] |= (uint8_t)((lm[j] >> 4) << 6);
    }
  }
}

/* Quantizes one 256-element super-block to L[] in 0..nmax with 8 sub-blocks
 * of 32 (Q4_K: nmax 15, Q5_K: nmax 31). */
static void quantize_k4_levels(const float *x, int nmax, uint16_t *d16, uint16_t *dmin16,
                               uint8_t packed[12], uint8_t L[CLL_QK_K]) {
  float scales[8], mins[8], eff_d[8], eff_m[8];
  for (int j = 0; j < 8; j++) fit_affine(x + 32 * j, 32, nmax, &scales[j], &mins[j]);
  pack_k4_scales(scales, mins, d16, dmin16, packed, eff_d, eff_m);
  for (int j = 0; j < 8; j++) {
    for (int l = 0; l < 32; l++) {
      int q = eff_d[j] > 0 ? nearest((x[32 * j + l] + eff_m[j]) / eff_d[j]) : 0;
      L[32 * j + l] = (uint8_t)iclamp(q, 0, nmax);
    }
  }
}

/* ------------------------------------------------------------ Q4_K */

static void quantize_q4_K(const float *x, void *dst, int64_t n) {
  cll_block_q4_K *y = dst;
  for (int64_t b = 0; b < n / CLL_QK_K; b++, x += CLL_QK_K) {
    uint8_t L[CLL_QK_K];
    quantize_k4_levels(x, 15, &y[b].d, &y[b].dmin, y[b].scales, L);
    for (int c = 0; c < 4; c++)
      for (int l = 0; l < 32; l++)
        y[b].qs[32 * c + l] = (uint8_t)(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

static void dequant_q4_K(const void *src, float *y, int64_t n) {
  const cll_block_q4_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d), dmin = FP16(x[b].dmin);
    for (int c = 0; c < 4; c++) {
      uint8_t sc1, m1, sc2, m2;
      cll__scale_min_k4(2 * c, x[b].scales, &sc1, &m1);
      cll__scale_min_k4(2 * c + 1, x[b].scales, &sc2, &m2);
      const uint8_t *q = x[b].qs + 32 * c;
      for (int l = 0; l < 32; l++) *y++ = d * sc1 * (q[l] & 0xF) - dmin * m1;
      for (int l = 0; l < 32; l++) *y++ = d * sc2 * (q[l] >> 4) - dmin * m2;
    }
  }
}

static void dot_q4_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q4_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      cll__scale_min_k4(j, x[b].scales, &sc, &m);
      const uint8_t *q = x[b].qs + 32 * (j / 2);
      int shift = 4 * (j % 2), sub = 0;
      for (int l = 0; l < 32; l++) sub += ((q[l] >> shift) & 0xF) * y[b].qs[32 * j + l];
      sumi += sc * sub;
      summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    s += y[b].d * (FP16(x[b].d) * (float)sumi - FP16(x[b].dmin) * (float)summ);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q5_K */

static void quantize_q5_K(const float *x, void *dst, int64_t n) {
  cll_block_q5_K *y = dst;
  for (int64_t b = 0; b < n / CLL_QK_K; b++, x += CLL_QK_K) {
    uint8_t L[CLL_QK_K];
    quantize_k4_levels(x, 31, &y[b].d, &y[b].dmin, y[b].scales, L);
    memset(y[b].qh, 0, sizeof y[b].qh);
    for (int c = 0; c < 4; c++) {
      for (int l = 0; l < 32; l++) {
        int lo = L[64 * c + l], hi = L[64 * c + 32 + l];
        y[b].qs[32 * c + l] = (uint8_t)((lo & 0xF) | ((hi & 0xF) << 4));
        y[b].qh[l] |= (uint8_t)(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
      }
    }
  }
}

/* The 5-bit value of element e of a Q5_K block. */
static int q5k_at(const cll_block_q5_K *x, int e) {
  int c = e / 64, r = e % 64, l = r % 32, hi = r / 32;
  int lo4 = (x->qs[32 * c + l] >> (4 * hi)) & 0xF;
  return lo4 | (((x->qh[l] >> (2 * c + hi)) & 1) << 4);
}

static void dequant_q5_K(const void *src, float *y, int64_t n) {
  const cll_block_q5_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d), dmin = FP16(x[b].dmin);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      cll__scale_min_k4(j, x[b].scales, &sc, &m);
      for (int l = 0; l < 32; l++) *y++ = d * sc * q5k_at(&x[b], 32 * j + l) - dmin * m;
    }
  }
}

static void dot_q5_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int sumi = 0, summ = 0;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      cll__scale_min_k4(j, x[b].scales, &sc, &m);
      int sub = 0;
      for (int l = 0; l < 32; l++) sub += q5k_at(&x[b], 32 * j + l) * y[b].qs[32 * j + l];
      sumi += sc * sub;
      summ += m * (y[b].bsums[2 * j] + y[b].bsums[2 * j + 1]);
    }
    s += y[b].d * (FP16(x[b].d) * (float)sumi - FP16(x[b].dmin) * (float)summ);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q6_K */

/* The 6-bit value (0..63) of element e of a Q6_K block: per 128 elements,
 * 64 bytes of ql (elements l and l+64 share byte l, l+32 and l+96 byte
 * l+32) and 32 bytes of qh (2 bits each of l, l+32, l+64, l+96). */
static int q6k_at(const cll_block_q6_K *x, int e) {
  int h = e / 128, r = e % 128, l = r % 32, k = r / 32; /* k: 0..3 */
  int lo4 = (x->ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
  int hi2 = (x->qh[32 * h + l] >> (2 * k)) & 3;
  return lo4 | (hi2 << 4);
}

static void quantize_q6_K(const float *x, void *dst, int64_t n) {
  cll_block_q6_K *y = dst;
  for (int64_t b = 0; b < n / CLL_QK_K; b++, x += CLL_QK_K) {
    float scales[16], amax = 0, max = 0;
    for (int j = 0; j < 16; j++) {
      scales[j] = fit_symmetric(x + 16 * j, 16, 32);
      if (fabsf(scales[j]) > amax) {
        amax = fabsf(scales[j]);
        max = scales[j];
      }
    }
    memset(&y[b], 0, sizeof y[b]);
    if (amax == 0) continue;
    float iscale = -128.0f / max;
    y[b].d = cll_fp32_to_fp16(1.0f / iscale);
    float d = FP16(y[b].d);
    uint8_t L[CLL_QK_K];
    for (int j = 0; j < 16; j++) {
      y[b].scales[j] = (int8_t)imin(127, nearest(iscale * scales[j]));
      float dl = d * y[b].scales[j];
      for (int l = 0; l < 16; l++) {
        int q = dl != 0 ? nearest(x[16 * j + l] / dl) : 0;
        L[16 * j + l] = (uint8_t)(iclamp(q, -32, 31) + 32);
      }
    }
    for (int h = 0; h < 2; h++) {
      const uint8_t *Lh = L + 128 * h;
      for (int l = 0; l < 32; l++) {
        int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
        y[b].ql[64 * h + l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
        y[b].ql[64 * h + l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
        y[b].qh[32 * h + l] =
            (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
  }
}

static void dequant_q6_K(const void *src, float *y, int64_t n) {
  const cll_block_q6_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d);
    for (int e = 0; e < CLL_QK_K; e++) *y++ = d * x[b].scales[e / 16] * (q6k_at(&x[b], e) - 32);
  }
}

static void dot_q6_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q6_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int sumi = 0;
    for (int j = 0; j < 16; j++) {
      int sub = 0;
      for (int l = 0; l < 16; l++) sub += (q6k_at(&x[b], 16 * j + l) - 32) * y[b].qs[16 * j + l];
      sumi += x[b].scales[j] * sub;
    }
    s += y[b].d * FP16(x[b].d) * (float)sumi;
  }
  *out = s;
}

/* ------------------------------------------------------------ the table */

const cll_kernels cll__kernels_ref = {
    .isa = "ref",
    .dequant_row =
        {
            [CLL_TYPE_F32] = dequant_f32,
            [CLL_TYPE_F16] = dequant_f16,
            [CLL_TYPE_BF16] = dequant_bf16,
            [CLL_TYPE_Q4_0] = dequant_q4_0,
            [CLL_TYPE_Q4_1] = dequant_q4_1,
            [CLL_TYPE_Q5_0] = dequant_q5_0,
            [CLL_TYPE_Q5_1] = dequant_q5_1,
            [CLL_TYPE_Q8_0] = dequant_q8_0,
            [CLL_TYPE_Q8_1] = dequant_q8_1,
            [CLL_TYPE_Q2_K] = dequant_q2_K,
            [CLL_TYPE_Q3_K] = dequant_q3_K,
            [CLL_TYPE_Q4_K] = dequant_q4_K,
            [CLL_TYPE_Q5_K] = dequant_q5_K,
            [CLL_TYPE_Q6_K] = dequant_q6_K,
            [CLL_TYPE_Q8_K] = dequant_q8_K,
        },
    .quantize_row =
        {
            [CLL_TYPE_F32] = quantize_f32,
            [CLL_TYPE_F16] = quantize_f16,
            [CLL_TYPE_BF16] = quantize_bf16,
            [CLL_TYPE_Q4_0] = quantize_q4_0,
            [CLL_TYPE_Q4_1] = quantize_q4_1,
            [CLL_TYPE_Q5_0] = quantize_q5_0,
            [CLL_TYPE_Q5_1] = quantize_q5_1,
            [CLL_TYPE_Q8_0] = quantize_q8_0,
            [CLL_TYPE_Q8_1] = quantize_q8_1,
            [CLL_TYPE_Q4_K] = quantize_q4_K,
            [CLL_TYPE_Q5_K] = quantize_q5_K,
            [CLL_TYPE_Q6_K] = quantize_q6_K,
            [CLL_TYPE_Q8_K] = quantize_q8_K,
        },
    .vec_dot =
        {
            [CLL_TYPE_F32] = dot_f32_f32,
            [CLL_TYPE_F16] = dot_f16_f32,
            [CLL_TYPE_BF16] = dot_bf16_f32,
            [CLL_TYPE_Q4_0] = dot_q4_0_q8_0,
            [CLL_TYPE_Q4_1] = dot_q4_1_q8_0,
            [CLL_TYPE_Q5_0] = dot_q5_0_q8_0,
            [CLL_TYPE_Q5_1] = dot_q5_1_q8_0,
            [CLL_TYPE_Q8_0] = dot_q8_0_q8_0,
            [CLL_TYPE_Q2_K] = dot_q2_K_q8_K,
            [CLL_TYPE_Q3_K] = dot_q3_K_q8_K,
            [CLL_TYPE_Q4_K] = dot_q4_K_q8_K,
            [CLL_TYPE_Q5_K] = dot_q5_K_q8_K,
            [CLL_TYPE_Q6_K] = dot_q6_K_q8_K,
        },
};
