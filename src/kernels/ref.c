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

#define FP16(x) cll__fp16_to_fp32(x)

static int imin(int a, int b) {
  return a < b ? a : b;
}
static int imax(int a, int b) {
  return a > b ? a : b;
}
static int iclamp(int v, int lo, int hi) {
  return imin(imax(v, lo), hi);
}
/* Round to nearest, ties to even, for |x| < 2^22: adding 1.5 * 2^23 leaves
 * the rounded integer in the low mantissa bits (no libm call, which matters
 * in the K-quant fitting loops). */
static int nearest(float x) {
  float f = x + 12582912.0f;
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return (i & 0x007FFFFF) - 0x00400000;
}

/* sum(a[i] * b[i]) of n small integers (exact). */
static int dot_i8(const int8_t *a, const int8_t *b, int n) {
  int s = 0;
  for (int i = 0; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static int sum_i8(const int8_t *a, int n) {
  int s = 0;
  for (int i = 0; i < n; i++)
    s += a[i];
  return s;
}

/* ------------------------------------------------------------ floats */

static void dequant_f32(const void *src, float *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quantize_f32(const float *src, void *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

static void dequant_f16(const void *src, float *dst, int64_t n) {
  const uint16_t *s = src;
  for (int64_t i = 0; i < n; i++)
    dst[i] = FP16(s[i]);
}

static void quantize_f16(const float *src, void *dst, int64_t n) {
  uint16_t *d = dst;
  for (int64_t i = 0; i < n; i++)
    d[i] = cll_fp32_to_fp16(src[i]);
}

static void dequant_bf16(const void *src, float *dst, int64_t n) {
  const uint16_t *s = src;
  for (int64_t i = 0; i < n; i++)
    dst[i] = cll__bf16_to_fp32(s[i]);
}

static void quantize_bf16(const float *src, void *dst, int64_t n) {
  uint16_t *d = dst;
  for (int64_t i = 0; i < n; i++)
    d[i] = cll_fp32_to_bf16(src[i]);
}

/* Float dot products accumulate in double (the oracle should be the most
 * accurate path), in 8 lanes so the additions do not wait on each other;
 * the tail goes into lane 0. */
#define FLOAT_DOT(name, wtype, conv)                                                               \
  static void name(int64_t n, const void *w, const void *a, float *out) {                          \
    const wtype *x = w;                                                                            \
    const float *y = a;                                                                            \
    double acc[8] = {0};                                                                           \
    int64_t i = 0;                                                                                 \
    for (; i + 8 <= n; i += 8)                                                                     \
      for (int j = 0; j < 8; j++)                                                                  \
        acc[j] += (double)conv(x[i + j]) * y[i + j];                                               \
    for (; i < n; i++)                                                                             \
      acc[0] += (double)conv(x[i]) * y[i];                                                         \
    *out = (float)(((acc[0] + acc[1]) + (acc[2] + acc[3])) +                                       \
                   ((acc[4] + acc[5]) + (acc[6] + acc[7])));                                       \
  }

#define CONV_F32(v) (v)
#define CONV_BF16(v) cll__bf16_to_fp32(v)
FLOAT_DOT(dot_f32_f32, float, CONV_F32)
FLOAT_DOT(dot_f16_f32, uint16_t, FP16)
FLOAT_DOT(dot_bf16_f32, uint16_t, CONV_BF16)

/* ------------------------------------------------------------ Q8_0, Q8_1 */

static void quantize_q8_0(const float *x, void *dst, int64_t n) {
  cll_block_q8_0 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++, x += CLL_QK8_0) {
    float amax = 0;
    for (int j = 0; j < CLL_QK8_0; j++)
      amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f;
    float id = d != 0 ? 1.0f / d : 0.0f;
    y[b].d = cll_fp32_to_fp16(d);
    for (int j = 0; j < CLL_QK8_0; j++)
      y[b].qs[j] = (int8_t)roundf(x[j] * id);
  }
}

static void dequant_q8_0(const void *src, float *y, int64_t n) {
  const cll_block_q8_0 *x = src;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++) {
    float d = FP16(x[b].d);
    for (int j = 0; j < CLL_QK8_0; j++)
      *y++ = d * x[b].qs[j];
  }
}

static void dot_q8_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q8_0 *x = w, *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK8_0; b++) {
    int sumi = 0;
    for (int j = 0; j < CLL_QK8_0; j++)
      sumi += x[b].qs[j] * y[b].qs[j];
    s += (float)sumi * (FP16(x[b].d) * FP16(y[b].d));
  }
  *out = s;
}

static void quantize_q8_1(const float *x, void *dst, int64_t n) {
  cll_block_q8_1 *y = dst;
  for (int64_t b = 0; b < n / CLL_QK8_1; b++, x += CLL_QK8_1) {
    float amax = 0;
    for (int j = 0; j < CLL_QK8_1; j++)
      amax = fmaxf(amax, fabsf(x[j]));
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
    for (int j = 0; j < CLL_QK8_1; j++)
      *y++ = d * x[b].qs[j];
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
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* The 5-bit values (0..31) of a Q5 block, element order: low nibbles as
 * Q4_0, bit 4 of element j is bit j of the little-endian word qh. */
static void q5_unpack(const uint8_t qh4[4], const uint8_t qs[16], int8_t q[32]) {
  uint32_t qh = load_u32(qh4);
  for (int j = 0; j < 16; j++) {
    q[j] = (int8_t)((qs[j] & 0xF) | (((qh >> j) & 1) << 4));
    q[j + 16] = (int8_t)((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
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
    for (int j = 0; j < CLL_QK5_0; j++)
      q[j] = imin(31, (int8_t)(x[j] * id + 16.5f));
    q5_pack(q, y[b].qh, y[b].qs);
  }
}

static void dequant_q5_0(const void *src, float *y, int64_t n) {
  const cll_block_q5_0 *x = src;
  for (int64_t b = 0; b < n / CLL_QK5_0; b++) {
    float d = FP16(x[b].d);
    int8_t q[32];
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_0; j++)
      *y++ = d * (q[j] - 16);
  }
}

static void dot_q5_0_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_0 *x = w;
  const cll_block_q8_0 *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK5_0; b++) {
    int8_t q[32];
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_0; j++)
      q[j] = (int8_t)(q[j] - 16);
    s += (float)dot_i8(q, y[b].qs, 32) * (FP16(x[b].d) * FP16(y[b].d));
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
    for (int j = 0; j < CLL_QK5_1; j++)
      q[j] = imin(31, (uint8_t)((x[j] - min) * id + 0.5f));
    q5_pack(q, y[b].qh, y[b].qs);
  }
}

static void dequant_q5_1(const void *src, float *y, int64_t n) {
  const cll_block_q5_1 *x = src;
  for (int64_t b = 0; b < n / CLL_QK5_1; b++) {
    float d = FP16(x[b].d), m = FP16(x[b].m);
    int8_t q[32];
    q5_unpack(x[b].qh, x[b].qs, q);
    for (int j = 0; j < CLL_QK5_1; j++)
      *y++ = d * q[j] + m;
  }
}

static void dot_q5_1_q8_0(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_1 *x = w;
  const cll_block_q8_0 *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK5_1; b++) {
    int8_t q[32];
    q5_unpack(x[b].qh, x[b].qs, q);
    int sumi = dot_i8(q, y[b].qs, 32), suma = sum_i8(y[b].qs, 32);
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
    for (int j = 0; j < CLL_QK_K; j++)
      y[b].qs[j] = (int8_t)imin(127, nearest(iscale * x[j]));
    for (int j = 0; j < CLL_QK_K / 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++)
        sum += y[b].qs[16 * j + l];
      y[b].bsums[j] = (int16_t)sum;
    }
    y[b].d = 1.0f / iscale;
  }
}

static void dequant_q8_K(const void *src, float *y, int64_t n) {
  const cll_block_q8_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++)
    for (int j = 0; j < CLL_QK_K; j++)
      *y++ = x[b].d * x[b].qs[j];
}

/* ------------------------------------------------------------ Q2_K */

/* The 2-bit values of a Q2_K/Q3_K qs array, element order: per 128-element
 * half, bits 2k..2k+1 of byte l hold element 32k + l. */
static void unpack_2bit(const uint8_t *qs, int8_t q[CLL_QK_K]) {
  for (int h = 0; h < 2; h++)
    for (int k = 0; k < 4; k++)
      for (int l = 0; l < 32; l++)
        q[128 * h + 32 * k + l] = (int8_t)((qs[32 * h + l] >> (2 * k)) & 3);
}

static void dequant_q2_K(const void *src, float *y, int64_t n) {
  const cll_block_q2_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d), dmin = FP16(x[b].dmin);
    int8_t q[CLL_QK_K];
    unpack_2bit(x[b].qs, q);
    for (int j = 0; j < 16; j++) {
      float dl = d * (x[b].scales[j] & 0xF), ml = dmin * (x[b].scales[j] >> 4);
      for (int l = 0; l < 16; l++)
        *y++ = dl * q[16 * j + l] - ml;
    }
  }
}

static void dot_q2_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q2_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int8_t q[CLL_QK_K];
    unpack_2bit(x[b].qs, q);
    int sumi = 0, summ = 0;
    for (int j = 0; j < 16; j++) {
      sumi += (x[b].scales[j] & 0xF) * dot_i8(q + 16 * j, y[b].qs + 16 * j, 16);
      summ += (x[b].scales[j] >> 4) * y[b].bsums[j];
    }
    s += y[b].d * (FP16(x[b].d) * (float)sumi - FP16(x[b].dmin) * (float)summ);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q3_K */

/* Q3_K values (-4..3): the 2-bit value minus 4 where the high bit is clear;
 * the high bit of element 32k + l (k = 0..7 across the block) is bit k of
 * hmask[l]. */
static void unpack_q3_K(const cll_block_q3_K *x, int8_t q[CLL_QK_K]) {
  unpack_2bit(x->qs, q);
  for (int k = 0; k < 8; k++)
    for (int l = 0; l < 32; l++)
      q[32 * k + l] = (int8_t)(q[32 * k + l] - (((x->hmask[l] >> k) & 1) ? 0 : 4));
}

static void dequant_q3_K(const void *src, float *y, int64_t n) {
  const cll_block_q3_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d);
    int8_t sc[16], q[CLL_QK_K];
    cll__q3_K_scales(x[b].scales, sc);
    unpack_q3_K(&x[b], q);
    for (int j = 0; j < 16; j++)
      for (int l = 0; l < 16; l++)
        *y++ = d * sc[j] * q[16 * j + l];
  }
}

static void dot_q3_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q3_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int8_t sc[16], q[CLL_QK_K];
    cll__q3_K_scales(x[b].scales, sc);
    unpack_q3_K(&x[b], q);
    int sumi = 0;
    for (int j = 0; j < 16; j++)
      sumi += sc[j] * dot_i8(q + 16 * j, y[b].qs + 16 * j, 16);
    s += y[b].d * FP16(x[b].d) * (float)sumi;
  }
  *out = s;
}

/* ------------------------------------------------------------ K-quant fitting */

/* Fits x[0..n) ~ scale * q - min with q in 0..nmax, scale >= 0, min >= 0,
 * minimizing sum w[i] * error[i]^2: tries a few step sizes around
 * (max - min) / nmax and, for each rounding, solves the weighted least
 * squares scale and offset; keeps the best. */
static void fit_affine(const float *x, const float *w, int n, int nmax, float *scale, float *min) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    lo = fminf(lo, x[i]);
    hi = fmaxf(hi, x[i]);
  }
  if (lo > 0)
    lo = 0; /* the format cannot add a positive offset */
  if (hi <= lo) {
    *scale = 0;
    *min = -lo;
    return;
  }
  double sw = 0, swx = 0;
  for (int i = 0; i < n; i++) {
    sw += w[i];
    swx += (double)w[i] * x[i];
  }
  float best_err = INFINITY, best_s = (hi - lo) / nmax, best_b = lo;
  for (int step = -6; step <= 12; step++) {
    float iscale = (nmax + 0.1f * step) / (hi - lo);
    double swq = 0, swqq = 0, swqx = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest((x[i] - lo) * iscale), 0, nmax);
      swq += (double)w[i] * q;
      swqq += (double)w[i] * q * q;
      swqx += (double)w[i] * q * x[i];
    }
    double det = sw * swqq - swq * swq;
    if (det <= 0)
      continue;
    double sc = (sw * swqx - swq * swx) / det;
    double bb = (swx - sc * swq) / sw;
    if (bb > 0) { /* offset must be <= 0: refit the scale alone */
      bb = 0;
      sc = swqq > 0 ? swqx / swqq : 0;
    }
    if (sc <= 0)
      continue;
    double err = 0;
    float is = (float)(1.0 / sc);
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest((x[i] - (float)bb) * is), 0, nmax);
      double e = sc * q + bb - x[i];
      err += w[i] * e * e;
    }
    if (err < best_err) {
      best_err = (float)err;
      best_s = (float)sc;
      best_b = (float)bb;
    }
  }
  *scale = best_s;
  *min = -best_b;
}

/* Fits x[0..n) ~ scale * q with q in -nmax..nmax-1 (scale may be negative
 * so that the largest magnitude can use -nmax), minimizing the weighted
 * squared error. */
static float fit_symmetric(const float *x, const float *w, int n, int nmax) {
  float amax = 0, max = 0;
  for (int i = 0; i < n; i++) {
    if (fabsf(x[i]) > amax) {
      amax = fabsf(x[i]);
      max = x[i];
    }
  }
  if (amax == 0)
    return 0;
  float best_err = INFINITY, best_s = max / -nmax;
  for (int step = -8; step <= 8; step++) {
    float iscale = -(nmax + 0.1f * step) / max;
    double swqq = 0, swqx = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest(iscale * x[i]), -nmax, nmax - 1);
      swqq += (double)w[i] * q * q;
      swqx += (double)w[i] * q * x[i];
    }
    if (swqq <= 0)
      continue;
    float sc = (float)(swqx / swqq), is = 1.0f / sc;
    double err = 0;
    for (int i = 0; i < n; i++) {
      int q = iclamp(nearest(x[i] * is), -nmax, nmax - 1);
      double e = (double)sc * q - x[i];
      err += w[i] * e * e;
    }
    if (err < best_err) {
      best_err = (float)err;
      best_s = sc;
    }
  }
  return best_s;
}

/* Per-element weights of the K-quant fits: large values matter more (their
 * products dominate dot products), so each element counts by
 * rms(block) + |x|; a zero block gets equal weights. */
static void k_weights(const float *x, float *w) {
  double ss = 0;
  for (int i = 0; i < CLL_QK_K; i++)
    ss += (double)x[i] * x[i];
  float rms = (float)sqrt(ss / CLL_QK_K);
  for (int i = 0; i < CLL_QK_K; i++)
    w[i] = rms + fabsf(x[i]);
  if (rms == 0)
    for (int i = 0; i < CLL_QK_K; i++)
      w[i] = 1;
}

/* Quantizes the 8 sub-block scales and mins of a Q4_K/Q5_K block to 6 bits
 * under the super-block d and dmin, packs them into 12 bytes, and returns
 * the effective per-sub-block scale and min. */
static void pack_k4_scales(const float scales[8], const float mins[8], uint16_t *d16,
                           uint16_t *dmin16, uint8_t packed[12], float eff_d[8], float eff_m[8]) {
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
  float scales[8], mins[8], eff_d[8], eff_m[8], w[CLL_QK_K];
  k_weights(x, w);
  for (int j = 0; j < 8; j++)
    fit_affine(x + 32 * j, w + 32 * j, 32, nmax, &scales[j], &mins[j]);
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

/* Q4_K values (0..15): per 64 elements, 32 bytes; low nibbles first. */
static void unpack_q4_K(const uint8_t *qs, int8_t q[CLL_QK_K]) {
  for (int c = 0; c < 4; c++) {
    for (int l = 0; l < 32; l++) {
      q[64 * c + l] = (int8_t)(qs[32 * c + l] & 0xF);
      q[64 * c + 32 + l] = (int8_t)(qs[32 * c + l] >> 4);
    }
  }
}

static void dequant_q4_K(const void *src, float *y, int64_t n) {
  const cll_block_q4_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d), dmin = FP16(x[b].dmin);
    int8_t q[CLL_QK_K];
    unpack_q4_K(x[b].qs, q);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      cll__scale_min_k4(j, x[b].scales, &sc, &m);
      float dl = d * sc, ml = dmin * m;
      for (int l = 0; l < 32; l++)
        *y++ = dl * q[32 * j + l] - ml;
    }
  }
}

/* The K-quant dot with 8 sub-blocks of 32 and (scale, min) pairs:
 * d_a * (d * sum_j sc_j * dot_j - dmin * sum_j m_j * sum(a in j)). */
static float dot_k4_block(const int8_t q[CLL_QK_K], const uint8_t *scales, uint16_t d,
                          uint16_t dmin, const cll_block_q8_K *y) {
  int sumi = 0, summ = 0;
  for (int j = 0; j < 8; j++) {
    uint8_t sc, m;
    cll__scale_min_k4(j, scales, &sc, &m);
    sumi += sc * dot_i8(q + 32 * j, y->qs + 32 * j, 32);
    summ += m * (y->bsums[2 * j] + y->bsums[2 * j + 1]);
  }
  return y->d * (FP16(d) * (float)sumi - FP16(dmin) * (float)summ);
}

static void dot_q4_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q4_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int8_t q[CLL_QK_K];
    unpack_q4_K(x[b].qs, q);
    s += dot_k4_block(q, x[b].scales, x[b].d, x[b].dmin, &y[b]);
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

/* Q5_K values (0..31): Q4_K's nibbles plus, for the k-th 64 elements, bit
 * 2k (first 32) or 2k+1 (next 32) of qh[l]. */
static void unpack_q5_K(const cll_block_q5_K *x, int8_t q[CLL_QK_K]) {
  unpack_q4_K(x->qs, q);
  for (int c = 0; c < 4; c++) {
    for (int l = 0; l < 32; l++) {
      q[64 * c + l] = (int8_t)(q[64 * c + l] | (((x->qh[l] >> (2 * c)) & 1) << 4));
      q[64 * c + 32 + l] = (int8_t)(q[64 * c + 32 + l] | (((x->qh[l] >> (2 * c + 1)) & 1) << 4));
    }
  }
}

static void dequant_q5_K(const void *src, float *y, int64_t n) {
  const cll_block_q5_K *x = src;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    float d = FP16(x[b].d), dmin = FP16(x[b].dmin);
    int8_t q[CLL_QK_K];
    unpack_q5_K(&x[b], q);
    for (int j = 0; j < 8; j++) {
      uint8_t sc, m;
      cll__scale_min_k4(j, x[b].scales, &sc, &m);
      float dl = d * sc, ml = dmin * m;
      for (int l = 0; l < 32; l++)
        *y++ = dl * q[32 * j + l] - ml;
    }
  }
}

static void dot_q5_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q5_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int8_t q[CLL_QK_K];
    unpack_q5_K(&x[b], q);
    s += dot_k4_block(q, x[b].scales, x[b].d, x[b].dmin, &y[b]);
  }
  *out = s;
}

/* ------------------------------------------------------------ Q6_K */

/* Q6_K values (-32..31): per 128 elements, 64 bytes of ql (elements l and
 * l+64 share byte l, l+32 and l+96 byte l+32) and 32 bytes of qh (bits
 * 2k..2k+1 of qh[l] are the top bits of element 32k + l). */
static void unpack_q6_K(const cll_block_q6_K *x, int8_t q[CLL_QK_K]) {
  for (int h = 0; h < 2; h++) {
    for (int k = 0; k < 4; k++) {
      for (int l = 0; l < 32; l++) {
        int lo4 = (x->ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
        int hi2 = (x->qh[32 * h + l] >> (2 * k)) & 3;
        q[128 * h + 32 * k + l] = (int8_t)((lo4 | (hi2 << 4)) - 32);
      }
    }
  }
}

static void quantize_q6_K(const float *x, void *dst, int64_t n) {
  cll_block_q6_K *y = dst;
  for (int64_t b = 0; b < n / CLL_QK_K; b++, x += CLL_QK_K) {
    float scales[16], amax = 0, max = 0, w[CLL_QK_K];
    k_weights(x, w);
    for (int j = 0; j < 16; j++) {
      scales[j] = fit_symmetric(x + 16 * j, w + 16 * j, 16, 32);
      if (fabsf(scales[j]) > amax) {
        amax = fabsf(scales[j]);
        max = scales[j];
      }
    }
    memset(&y[b], 0, sizeof y[b]);
    if (amax == 0)
      continue;
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
    int8_t q[CLL_QK_K];
    unpack_q6_K(&x[b], q);
    for (int j = 0; j < 16; j++) {
      float dl = d * x[b].scales[j];
      for (int l = 0; l < 16; l++)
        *y++ = dl * q[16 * j + l];
    }
  }
}

static void dot_q6_K_q8_K(int64_t n, const void *w, const void *a, float *out) {
  const cll_block_q6_K *x = w;
  const cll_block_q8_K *y = a;
  float s = 0;
  for (int64_t b = 0; b < n / CLL_QK_K; b++) {
    int8_t q[CLL_QK_K];
    unpack_q6_K(&x[b], q);
    int sumi = 0;
    for (int j = 0; j < 16; j++)
      sumi += x[b].scales[j] * dot_i8(q + 16 * j, y[b].qs + 16 * j, 16);
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
