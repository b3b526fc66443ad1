/* ref_matmul.c — the scalar twin of every optional kernel-table slot
 * (ggml's _generic habit): vec_dot_rows, gemm, matmul_few, and pack /
 * pack_bytes / matmul_packed with exactly the packed layouts the SIMD
 * tables use. They are the specification those kernels are tested
 * against (test_matmul compares every filled slot of every table with
 * its twin here, on odd sizes) and the portable statement of each packed
 * layout. dispatch.c never chooses this table: the reference table keeps
 * the plain vec_dot path, so CLLAMA_KERNELS=ref computes exactly as
 * before. Everything is built on cll__kernels_ref's vec_dot, so a twin
 * differs from the plain path only in float summation order.
 *
 * Nothing here allocates; every function may run on any thread. */
#include "kernels/matmul_internal.h"
#include "kernels/simd.h"

#include <string.h>

/* ------------------------------------------------------------ plain loops */

static void rows_generic(int64_t n, const void *w, size_t w_stride, const void *a, float *out,
                         uint32_t t) {
  for (int j = 0; j < CLL_DOT_ROWS; j++)
    cll__kernels_ref.vec_dot[t](n, (const char *)w + (size_t)j * w_stride, a, &out[j]);
}

static void rows_q4_0(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_Q4_0);
}
static void rows_q8_0(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_Q8_0);
}
static void rows_q4_K(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_Q4_K);
}
static void rows_q5_K(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_Q5_K);
}
static void rows_f16(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_F16);
}
static void rows_bf16(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_BF16);
}
static void rows_q6_K(int64_t n, const void *w, size_t w_stride, const void *a, float *out) {
  rows_generic(n, w, w_stride, a, out, CLL_TYPE_Q6_K);
}

/* The int8 GEMM: every row of [r0, r1) against every quantized token. */
static void gemm_generic(const cll_matmul_args *a) {
  void (*dot)(int64_t, const void *, const void *, float *) = cll__kernels_ref.vec_dot[a->wtype];
  for (int64_t t = 0; t < a->n_tok; t++)
    for (int64_t r = a->r0; r < a->r1; r++)
      dot(a->n_in, (const char *)a->w + (size_t)r * a->w_stride,
          (const char *)a->xq + (size_t)t * a->xq_stride, &a->y[t * a->y_stride + r]);
}

static size_t gemm_scratch_none(int64_t n_in) {
  (void)n_in;
  return 0;
}

/* Few float tokens against F16 rows. */
static void few_f16(const cll_matmul_args *a) {
  for (int64_t t = 0; t < a->n_tok; t++)
    for (int64_t r = a->r0; r < a->r1; r++)
      cll__kernels_ref.vec_dot[CLL_TYPE_F16](a->n_in, (const char *)a->w + (size_t)r * a->w_stride,
                                             a->x + t * a->x_stride, &a->y[t * a->y_stride + r]);
}

/* ------------------------------------------------------------ Q4_0 and Q8_0 packed
 *
 * Panel p holds rows 16p..16p+15 (CLL_PACK_ROWS) of nb blocks each:
 *   quants: block i is 4 (Q4_0) or 8 (Q8_0) groups of 64 bytes, and bytes
 *           4j..4j+3 of group g are bytes 4g..4g+3 of row j's qs (Q4_0:
 *           low nibbles elements 4g..4g+3, high 16+4g..16+4g+3; Q8_0:
 *           elements 4g..4g+3, each q + 128);
 *   scales: nb x 16 fp16 after the quants, block-major (d[i * 16 + j]).
 * Each panel is rounded up to 64 bytes. The packed matrix is no larger
 * than the GGUF one. q4: Q4_0, else Q8_0; both blocks are {fp16 d; qs}. */

static size_t pq_block_bytes(int q4) {
  return q4 ? sizeof(cll_block_q4_0) : sizeof(cll_block_q8_0);
}

static size_t pq_quant_bytes(int q4) { /* per block of a panel */
  return (pq_block_bytes(q4) - 2) * CLL_PACK_ROWS;
}

static size_t pq_panel_bytes(int q4, int64_t nb) {
  return ((size_t)nb * (CLL_PACK_ROWS * pq_block_bytes(q4)) + 63) & ~(size_t)63;
}

/* Where byte e of row j's qs in block i lands in the panel. */
static size_t pq_at(int q4, int64_t i, int j, int e) {
  return (size_t)i * pq_quant_bytes(q4) + 64 * (size_t)(e / 4) + 4 * (size_t)j + (size_t)(e % 4);
}

static void pack_pq(int q4, const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst) {
  const int64_t nb = n_in / CLL_QK8_0;
  const size_t bb = pq_block_bytes(q4);
  const uint8_t bias = q4 ? 0 : 128;
  for (int64_t p = p0; p < p1; p++) {
    uint8_t *q = (uint8_t *)dst + (size_t)p * pq_panel_bytes(q4, nb);
    uint8_t *d = q + (size_t)nb * pq_quant_bytes(q4);
    for (int j = 0; j < CLL_PACK_ROWS; j++) {
      const uint8_t *row = (const uint8_t *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride;
      for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = row + (size_t)i * bb;
        memcpy(d + 2 * (size_t)(i * CLL_PACK_ROWS + j), b, 2);
        for (int e = 0; e < (int)bb - 2; e++)
          q[pq_at(q4, i, j, e)] = (uint8_t)(b[2 + e] + bias);
      }
    }
  }
}

/* Block i of row j of a packed panel, back in GGUF form at b. */
static void unpack_pq(int q4, const uint8_t *q, int64_t nb, int64_t i, int j, uint8_t *b) {
  const uint8_t *d = q + (size_t)nb * pq_quant_bytes(q4);
  const uint8_t bias = q4 ? 0 : 128;
  memcpy(b, d + 2 * (size_t)(i * CLL_PACK_ROWS + j), 2);
  for (int e = 0; e < (int)pq_block_bytes(q4) - 2; e++)
    b[2 + e] = (uint8_t)(q[pq_at(q4, i, j, e)] - bias);
}

static void matmul_packed_pq(int q4, const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nb = a->n_in / CLL_QK8_0;
  void (*dot)(int64_t, const void *, const void *, float *) =
      cll__kernels_ref.vec_dot[q4 ? CLL_TYPE_Q4_0 : CLL_TYPE_Q8_0];
  for (int64_t p = p0; p < p1; p++) {
    const uint8_t *q = (const uint8_t *)a->wp + (size_t)p * pq_panel_bytes(q4, nb);
    for (int j = 0; j < CLL_PACK_ROWS; j++)
      for (int64_t t = 0; t < a->n_tok; t++) {
        const cll_block_q8_0 *x =
            (const cll_block_q8_0 *)((const char *)a->xq + (size_t)t * a->xq_stride);
        float s = 0.0f;
        for (int64_t i = 0; i < nb; i++) {
          union {
            cll_block_q4_0 q4;
            cll_block_q8_0 q8;
          } b;
          float part;
          unpack_pq(q4, q, nb, i, j, q4 ? (uint8_t *)&b.q4 : (uint8_t *)&b.q8);
          dot(CLL_QK8_0, q4 ? (const void *)&b.q4 : (const void *)&b.q8, &x[i], &part);
          s += part;
        }
        a->y[t * a->y_stride + p * CLL_PACK_ROWS + j] = s;
      }
  }
}

static size_t pack_bytes_q4_0(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * pq_panel_bytes(1, n_in / CLL_QK4_0);
}
static size_t pack_bytes_q8_0(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * pq_panel_bytes(0, n_in / CLL_QK8_0);
}
static void pack_q4_0(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                      void *dst) {
  pack_pq(1, w, w_stride, n_in, p0, p1, dst);
}
static void pack_q8_0(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                      void *dst) {
  pack_pq(0, w, w_stride, n_in, p0, p1, dst);
}
static void matmul_packed_q4_0(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  matmul_packed_pq(1, a, p0, p1);
}
static void matmul_packed_q8_0(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  matmul_packed_pq(0, a, p0, p1);
}

/* ------------------------------------------------------------ Q4_K, Q5_K packed
 *
 * Panel p, per super-block (Q4_K 2368 bytes, Q5_K 2880):
 *   quants: 32 groups of 64 bytes; bytes 4j..4j+3 of group 8c + g are
 *           bytes 32c + 4g .. 32c + 4g + 3 of row j's qs;
 *   Q5_K only, at 2048: 8 groups of 64 bytes; bytes 4j..4j+3 of group g
 *           are qh[4g .. 4g + 3] of row j;
 *   scales: 8 x 16 bytes, sc[s * 16 + j] (6-bit, unpacked), at 2048
 *           (Q5_K: 2560);
 *   mins:   4 x 32 bytes after them, mn[(s / 2) * 32 + 2j + s % 2];
 *   d, dmin: 16 fp16 each after the mins. */

struct pk_layout {
  size_t sb, sc; /* bytes per super-block; offset of the scales */
  int q5;
};
static const struct pk_layout PK4 = {2368, 2048, 0}, PK5 = {2880, 2560, 1};

static size_t pk_bytes(const struct pk_layout *L, int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * (size_t)(n_in / CLL_QK_K) * L->sb;
}

/* The GGUF parts of a Q4_K/Q5_K row block (Q4_K's fields are a prefix of
 * neither, so they are passed apart). */
struct k_parts {
  uint16_t *d, *dmin;
  uint8_t *scales, *qs, *qh;
};

static void pk_put(const struct pk_layout *L, uint8_t *q, int j, struct k_parts b) {
  for (int c = 0; c < 4; c++)
    for (int g = 0; g < 8; g++)
      memcpy(q + (c * 8 + g) * 64 + 4 * j, b.qs + 32 * c + 4 * g, 4);
  if (L->q5)
    for (int g = 0; g < 8; g++)
      memcpy(q + 2048 + g * 64 + 4 * j, b.qh + 4 * g, 4);
  for (int s = 0; s < 8; s++) {
    uint8_t sc, mn;
    cll__scale_min_k4(s, b.scales, &sc, &mn);
    q[L->sc + (size_t)s * 16 + (size_t)j] = sc;
    q[L->sc + 128 + (size_t)(s / 2) * 32 + 2 * (size_t)j + (size_t)(s % 2)] = mn;
  }
  memcpy(q + L->sc + 256 + 2 * j, b.d, 2);
  memcpy(q + L->sc + 288 + 2 * j, b.dmin, 2);
}

/* The inverse: the 6-bit scales and mins packed again as
 * cll__scale_min_k4 reads them. */
static void pk_get(const struct pk_layout *L, const uint8_t *q, int j, struct k_parts b) {
  for (int c = 0; c < 4; c++)
    for (int g = 0; g < 8; g++)
      memcpy(b.qs + 32 * c + 4 * g, q + (c * 8 + g) * 64 + 4 * j, 4);
  if (L->q5)
    for (int g = 0; g < 8; g++)
      memcpy(b.qh + 4 * g, q + 2048 + g * 64 + 4 * j, 4);
  uint8_t sc[8], mn[8];
  for (int s = 0; s < 8; s++) {
    sc[s] = q[L->sc + (size_t)s * 16 + (size_t)j];
    mn[s] = q[L->sc + 128 + (size_t)(s / 2) * 32 + 2 * (size_t)j + (size_t)(s % 2)];
  }
  for (int s = 0; s < 4; s++) {
    b.scales[s] = (uint8_t)((sc[s] & 63) | ((sc[s + 4] >> 4) << 6));
    b.scales[s + 4] = (uint8_t)((mn[s] & 63) | ((mn[s + 4] >> 4) << 6));
    b.scales[s + 8] = (uint8_t)((sc[s + 4] & 15) | ((mn[s + 4] & 15) << 4));
  }
  memcpy(b.d, q + L->sc + 256 + 2 * j, 2);
  memcpy(b.dmin, q + L->sc + 288 + 2 * j, 2);
}

static struct k_parts parts_q4_K(cll_block_q4_K *b) {
  return (struct k_parts){&b->d, &b->dmin, b->scales, b->qs, NULL};
}
static struct k_parts parts_q5_K(cll_block_q5_K *b) {
  return (struct k_parts){&b->d, &b->dmin, b->scales, b->qs, b->qh};
}

static void pk_pack(const struct pk_layout *L, const void *w, size_t w_stride, int64_t n_in,
                    int64_t p0, int64_t p1, void *dst) {
  const int64_t nsb = n_in / CLL_QK_K;
  const size_t bb = L->q5 ? sizeof(cll_block_q5_K) : sizeof(cll_block_q4_K);
  for (int64_t p = p0; p < p1; p++)
    for (int j = 0; j < CLL_PACK_ROWS; j++)
      for (int64_t i = 0; i < nsb; i++) {
        const char *src =
            (const char *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride + (size_t)i * bb;
        uint8_t *q = (uint8_t *)dst + ((size_t)p * (size_t)nsb + (size_t)i) * L->sb;
        if (L->q5) {
          cll_block_q5_K b;
          memcpy(&b, src, sizeof b);
          pk_put(L, q, j, parts_q5_K(&b));
        } else {
          cll_block_q4_K b;
          memcpy(&b, src, sizeof b);
          pk_put(L, q, j, parts_q4_K(&b));
        }
      }
}

static void pk_matmul(const struct pk_layout *L, uint32_t type, const cll_matmul_args *a,
                      int64_t p0, int64_t p1) {
  const int64_t nsb = a->n_in / CLL_QK_K;
  void (*dot)(int64_t, const void *, const void *, float *) = cll__kernels_ref.vec_dot[type];
  for (int64_t p = p0; p < p1; p++)
    for (int j = 0; j < CLL_PACK_ROWS; j++)
      for (int64_t t = 0; t < a->n_tok; t++) {
        const cll_block_q8_K *x =
            (const cll_block_q8_K *)((const char *)a->xq + (size_t)t * a->xq_stride);
        float s = 0.0f;
        for (int64_t i = 0; i < nsb; i++) {
          const uint8_t *q = (const uint8_t *)a->wp + ((size_t)p * (size_t)nsb + (size_t)i) * L->sb;
          float part;
          if (L->q5) {
            cll_block_q5_K b;
            pk_get(L, q, j, parts_q5_K(&b));
            dot(CLL_QK_K, &b, &x[i], &part);
          } else {
            cll_block_q4_K b;
            pk_get(L, q, j, parts_q4_K(&b));
            dot(CLL_QK_K, &b, &x[i], &part);
          }
          s += part;
        }
        a->y[t * a->y_stride + p * CLL_PACK_ROWS + j] = s;
      }
}

static size_t pack_bytes_q4_K(int64_t n_in, int64_t n_rows) {
  return pk_bytes(&PK4, n_in, n_rows);
}
static size_t pack_bytes_q5_K(int64_t n_in, int64_t n_rows) {
  return pk_bytes(&PK5, n_in, n_rows);
}
static void pack_q4_K(const void *w, size_t ws, int64_t n_in, int64_t p0, int64_t p1, void *dst) {
  pk_pack(&PK4, w, ws, n_in, p0, p1, dst);
}
static void pack_q5_K(const void *w, size_t ws, int64_t n_in, int64_t p0, int64_t p1, void *dst) {
  pk_pack(&PK5, w, ws, n_in, p0, p1, dst);
}
static void matmul_packed_q4_K(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  pk_matmul(&PK4, CLL_TYPE_Q4_K, a, p0, p1);
}
static void matmul_packed_q5_K(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  pk_matmul(&PK5, CLL_TYPE_Q5_K, a, p0, p1);
}

/* ------------------------------------------------------------ Q6_K packed
 *
 * Panel p, per super-block (3392 bytes):
 *   ql: 32 groups of 64 bytes at 0; bytes 4j..4j+3 of group g are
 *       ql[4g .. 4g + 3] of row j;
 *   qh: 16 groups of 64 bytes at 2048; bytes 4j..4j+3 of group g are
 *       qh[4g .. 4g + 3] of row j;
 *   scales: 8 x 32 bytes at 3072, sc[(s / 2) * 32 + 2j + s % 2] = int8
 *       scale s of row j;
 *   d: 16 fp16 at 3328, then 32 zero bytes. */

enum { PK6_SB = 3392, PK6_SC = 3072, PK6_D = 3328 };

static size_t pack_bytes_q6_K(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * (size_t)(n_in / CLL_QK_K) * PK6_SB;
}

static void pack_q6_K(const void *w, size_t ws, int64_t n_in, int64_t p0, int64_t p1, void *dst) {
  const int64_t nsb = n_in / CLL_QK_K;
  for (int64_t p = p0; p < p1; p++)
    for (int64_t i = 0; i < nsb; i++) {
      uint8_t *q = (uint8_t *)dst + ((size_t)p * (size_t)nsb + (size_t)i) * PK6_SB;
      memset(q, 0, PK6_SB);
      for (int j = 0; j < CLL_PACK_ROWS; j++) {
        cll_block_q6_K b;
        memcpy(&b, (const char *)w + (size_t)(p * CLL_PACK_ROWS + j) * ws + (size_t)i * sizeof b,
               sizeof b);
        for (int e = 0; e < CLL_QK_K / 2; e++)
          q[64 * (e / 4) + 4 * j + e % 4] = b.ql[e];
        for (int e = 0; e < CLL_QK_K / 4; e++)
          q[2048 + 64 * (e / 4) + 4 * j + e % 4] = b.qh[e];
        for (int s = 0; s < CLL_QK_K / 16; s++)
          q[PK6_SC + 32 * (s / 2) + 2 * j + s % 2] = (uint8_t)b.scales[s];
        memcpy(q + PK6_D + 2 * j, &b.d, 2);
      }
    }
}

/* Super-block q of a panel, row j, back in GGUF form. */
static void pk6_get(const uint8_t *q, int j, cll_block_q6_K *b) {
  for (int e = 0; e < CLL_QK_K / 2; e++)
    b->ql[e] = q[64 * (e / 4) + 4 * j + e % 4];
  for (int e = 0; e < CLL_QK_K / 4; e++)
    b->qh[e] = q[2048 + 64 * (e / 4) + 4 * j + e % 4];
  for (int s = 0; s < CLL_QK_K / 16; s++)
    b->scales[s] = (int8_t)q[PK6_SC + 32 * (s / 2) + 2 * j + s % 2];
  memcpy(&b->d, q + PK6_D + 2 * j, 2);
}

static void matmul_packed_q6_K(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const int64_t nsb = a->n_in / CLL_QK_K;
  for (int64_t p = p0; p < p1; p++)
    for (int j = 0; j < CLL_PACK_ROWS; j++)
      for (int64_t t = 0; t < a->n_tok; t++) {
        const cll_block_q8_K *x =
            (const cll_block_q8_K *)((const char *)a->xq + (size_t)t * a->xq_stride);
        float s = 0.0f;
        for (int64_t i = 0; i < nsb; i++) {
          cll_block_q6_K b;
          float part;
          pk6_get((const uint8_t *)a->wp + ((size_t)p * (size_t)nsb + (size_t)i) * PK6_SB, j, &b);
          cll__kernels_ref.vec_dot[CLL_TYPE_Q6_K](CLL_QK_K, &b, &x[i], &part);
          s += part;
        }
        a->y[t * a->y_stride + p * CLL_PACK_ROWS + j] = s;
      }
}

/* ------------------------------------------------------------ F16, BF16 packed
 *
 * Panel p holds rows 16p..16p+15 (CLL_PACK_ROWS) of n_in elements:
 *   F16:  n_in groups of 16 fp16 (32 bytes); group k = element k of rows
 *         0..15, so element k of row j is 16-bit slot k * 16 + j;
 *   BF16: ceil(n_in / 2) groups of 16 dwords (64 bytes); dword j of group
 *         i = elements 2i (low half) and 2i + 1 (high half) of row j, so
 *         element k of row j is 16-bit slot (k / 2) * 32 + 2j + k % 2;
 *         the high half of the last group is 0 when n_in is odd.
 * The BF16 product rounds the float activations to bf16 (nearest even)
 * first, as the vdpbf16ps kernel does (kernels.h: matmul_packed). */

#define HALF_CHUNK 256 /* elements unpacked per ref vec_dot call */

static size_t half_panel_bytes(int bf, int64_t n_in) {
  return bf ? (size_t)((n_in + 1) / 2) * 64 : (size_t)n_in * 32;
}

static size_t half_slot(int bf, int64_t k, int j) {
  return bf ? (size_t)(k / 2) * 32 + 2 * (size_t)j + (size_t)(k & 1)
            : (size_t)k * CLL_PACK_ROWS + (size_t)j;
}

static void pack_half(int bf, const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                      void *dst) {
  for (int64_t p = p0; p < p1; p++) {
    uint16_t *d = (uint16_t *)((char *)dst + (size_t)p * half_panel_bytes(bf, n_in));
    for (int j = 0; j < CLL_PACK_ROWS; j++) {
      const uint8_t *row = (const uint8_t *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride;
      for (int64_t k = 0; k < n_in; k++)
        memcpy(&d[half_slot(bf, k, j)], row + 2 * k, 2);
      if (bf && (n_in & 1))
        d[half_slot(bf, n_in, j)] = 0;
    }
  }
}

static void matmul_packed_half(int bf, const cll_matmul_args *a, int64_t p0, int64_t p1) {
  const uint32_t t16 = bf ? CLL_TYPE_BF16 : CLL_TYPE_F16;
  for (int64_t p = p0; p < p1; p++) {
    const uint16_t *d =
        (const uint16_t *)((const char *)a->wp + (size_t)p * half_panel_bytes(bf, a->n_in));
    for (int j = 0; j < CLL_PACK_ROWS; j++)
      for (int64_t t = 0; t < a->n_tok; t++) {
        const float *x = a->x + t * a->x_stride;
        double s = 0;
        for (int64_t k0 = 0; k0 < a->n_in; k0 += HALF_CHUNK) {
          const int64_t n = a->n_in - k0 < HALF_CHUNK ? a->n_in - k0 : HALF_CHUNK;
          uint16_t row[HALF_CHUNK];
          float xr[HALF_CHUNK], part;
          for (int64_t k = 0; k < n; k++) {
            row[k] = d[half_slot(bf, k0 + k, j)];
            xr[k] = bf ? cll_bf16_to_fp32(cll_fp32_to_bf16(x[k0 + k])) : x[k0 + k];
          }
          cll__kernels_ref.vec_dot[t16](n, row, xr, &part);
          s += part;
        }
        a->y[t * a->y_stride + p * CLL_PACK_ROWS + j] = (float)s;
      }
  }
}

static size_t pack_bytes_f16(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * half_panel_bytes(0, n_in);
}
static size_t pack_bytes_bf16(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * half_panel_bytes(1, n_in);
}
static void pack_f16(const void *w, size_t ws, int64_t n_in, int64_t p0, int64_t p1, void *dst) {
  pack_half(0, w, ws, n_in, p0, p1, dst);
}
static void pack_bf16(const void *w, size_t ws, int64_t n_in, int64_t p0, int64_t p1, void *dst) {
  pack_half(1, w, ws, n_in, p0, p1, dst);
}
static void matmul_packed_f16(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  matmul_packed_half(0, a, p0, p1);
}
static void matmul_packed_bf16(const cll_matmul_args *a, int64_t p0, int64_t p1) {
  matmul_packed_half(1, a, p0, p1);
}

const cll_kernels cll__kernels_generic = {
    .isa = "generic",
    .vec_dot_rows = {[CLL_TYPE_Q4_0] = rows_q4_0,
                     [CLL_TYPE_Q8_0] = rows_q8_0,
                     [CLL_TYPE_Q4_K] = rows_q4_K,
                     [CLL_TYPE_Q5_K] = rows_q5_K,
                     [CLL_TYPE_Q6_K] = rows_q6_K,
                     [CLL_TYPE_F16] = rows_f16,
                     [CLL_TYPE_BF16] = rows_bf16},
    .gemm = {[CLL_TYPE_Q4_0] = gemm_generic,
             [CLL_TYPE_Q8_0] = gemm_generic,
             [CLL_TYPE_Q4_K] = gemm_generic,
             [CLL_TYPE_Q5_K] = gemm_generic,
             [CLL_TYPE_Q6_K] = gemm_generic},
    .gemm_scratch_bytes = {[CLL_TYPE_Q4_0] = gemm_scratch_none,
                           [CLL_TYPE_Q8_0] = gemm_scratch_none,
                           [CLL_TYPE_Q4_K] = gemm_scratch_none,
                           [CLL_TYPE_Q5_K] = gemm_scratch_none,
                           [CLL_TYPE_Q6_K] = gemm_scratch_none},
    .gemm_min_tok = {[CLL_TYPE_Q4_0] = 2,
                     [CLL_TYPE_Q8_0] = 2,
                     [CLL_TYPE_Q4_K] = 2,
                     [CLL_TYPE_Q5_K] = 2,
                     [CLL_TYPE_Q6_K] = 2},
    .matmul_few = {[CLL_TYPE_F16] = few_f16},
    .few_min_tok = {[CLL_TYPE_F16] = 1},
    .few_max_tok = {[CLL_TYPE_F16] = 255},
    .pack_bytes = {[CLL_TYPE_Q4_0] = pack_bytes_q4_0,
                   [CLL_TYPE_Q8_0] = pack_bytes_q8_0,
                   [CLL_TYPE_Q4_K] = pack_bytes_q4_K,
                   [CLL_TYPE_Q5_K] = pack_bytes_q5_K,
                   [CLL_TYPE_Q6_K] = pack_bytes_q6_K,
                   [CLL_TYPE_F16] = pack_bytes_f16,
                   [CLL_TYPE_BF16] = pack_bytes_bf16},
    .pack = {[CLL_TYPE_Q4_0] = pack_q4_0,
             [CLL_TYPE_Q8_0] = pack_q8_0,
             [CLL_TYPE_Q4_K] = pack_q4_K,
             [CLL_TYPE_Q5_K] = pack_q5_K,
             [CLL_TYPE_Q6_K] = pack_q6_K,
             [CLL_TYPE_F16] = pack_f16,
             [CLL_TYPE_BF16] = pack_bf16},
    .matmul_packed = {[CLL_TYPE_Q4_0] = matmul_packed_q4_0,
                      [CLL_TYPE_Q8_0] = matmul_packed_q8_0,
                      [CLL_TYPE_Q4_K] = matmul_packed_q4_K,
                      [CLL_TYPE_Q5_K] = matmul_packed_q5_K,
                      [CLL_TYPE_Q6_K] = matmul_packed_q6_K,
                      [CLL_TYPE_F16] = matmul_packed_f16,
                      [CLL_TYPE_BF16] = matmul_packed_bf16},
};
