/* attention.c — the attention half of a layer in the forward pass:
 * the element-wise vector math it and the FFN share (exp, softmax,
 * SwiGLU, half-precision packing), storing a batch's keys and values in
 * their KV cells, and attention of query heads over a sequence's cells.
 * Called by the pass in forward.c (declarations in ctx.h). */
#include "engine/ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- vector math
 *
 * GCC/Clang vector extensions: SSE2 on x86-64, NEON on AArch64, without ISA
 * flags; 16-byte vectors, the width every such target has). Lanes are
 * selected with bit masks (a vector ?: is C++ only). */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
typedef uint32_t v4u __attribute__((vector_size(16)));

static v4f vsel(v4i m, v4f a, v4f b) {
  return (v4f)((m & (v4i)a) | (~m & (v4i)b));
}

static v4f vload(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof(v));
  return v;
}

/* Wide vectors for the element-wise loops (SwiGLU, softmax): 16 floats.
 * Without ISA flags the compiler splits each operation into four SSE2 /
 * NEON ones; on x86-64 these loops are also compiled for AVX-512 and AVX2
 * (target_clones: the best the CPU has is picked at load time), where one
 * instruction does all 16 or 8 lanes. The arithmetic is the same IEEE
 * operations in the same order in every version (ISO C mode: no FMA
 * contraction), so every version gives the same bits. */
#define VW 16
typedef float vwf __attribute__((vector_size(VW * 4)));
typedef int32_t vwi __attribute__((vector_size(VW * 4)));

/* Not under ThreadSanitizer: the clones' ifunc resolver runs during
 * relocation, before the TSan runtime is up, and crashes the program. */
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) &&                                        \
    (defined(__clang__) ? __clang_major__ >= 14 : __GNUC__ >= 8)
#define WIDE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WIDE_CLONES
#endif

/* Wide vectors are passed by pointer or through macros: Clang refuses a
 * 64-byte vector argument in the AVX2 version even when it is inlined. */
#define VWSEL(m, a, b) ((vwf)(((m) & (vwi)(a)) | (~(m) & (vwi)(b))))
#define VWLOAD(v, p) memcpy(&(v), (p), sizeof(vwf))
#define VWSTORE(p, v) memcpy((p), &(v), sizeof(vwf))

/* e^x in every lane, within 2 ulp of the exact value (Cody-Waite range
 * reduction to r in [-ln2/2, ln2/2], a degree-6 minimax polynomial for e^r
 * (the Cephes expf coefficients), then the exponent added to the bits).
 * Inputs are clamped to [-87.33, 88.37], where e^x is a normal float: below
 * it the result is ~1.2e-38 instead of a subnormal or 0, which changes
 * nothing when it is added to a sum of at least 1. */
static inline __attribute__((always_inline)) void vexp(vwf *px) {
  vwf x = *px;
  x = VWSEL(x > 88.3762626647949f, (vwf){0} + 88.3762626647949f, x);
  x = VWSEL(x < -87.3365447505531f, (vwf){0} - 87.3365447505531f, x);
  /* n = round(x / ln2): adding 1.5 * 2^23 rounds to an integer, which is
   * then the low bits of t. */
  const vwf t = x * 1.44269504088896341f + 12582912.0f;
  const vwf n = t - 12582912.0f;
  vwf r = x - n * 0.693359375f; /* ln2 in two parts: n * hi is exact */
  r = r - n * -2.12194440e-4f;
  vwf p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const vwi scale = ((vwi)t - 0x4B400000 + 127) << 23; /* 2^n */
  *px = p * (vwf)scale;
}

/* The IEEE half of each lane, bit for bit what cll_fp32_to_fp16 gives
 * (round to nearest even; overflow to inf; NaN stays a quiet NaN). */
static v4u vhalf(v4f f) {
  const v4u w = (v4u)f, a = w & 0x7FFFFFFF;
  /* Normal: rebias the exponent (127 -> 15) and round the 13 dropped bits
   * to nearest even; a carry into the exponent is right, up to inf. */
  v4u r = (a - 0x38000000 + 0xFFF + ((a >> 13) & 1)) >> 13;
  /* Subnormal (|f| < 2^-14): |f| * 2^24 rounded to an integer by the
   * float addition of 2^23, whose low bits then hold it. */
  const v4u sub = (v4u)((v4f)a * 16777216.0f + 8388608.0f) - 0x4B000000;
  r = (v4u)vsel(a < 0x38800000, (v4f)sub, (v4f)r);
  r = (v4u)vsel(a >= 0x477FF000, (v4f)((v4u){0} + 0x7C00), (v4f)r);
  r = (v4u)vsel(a > 0x7F800000, (v4f)(0x7E00 | ((a >> 13) & 0x3FF)), (v4f)r);
  return r | ((w >> 16) & 0x8000);
}

/* gate[i] = silu(gate[i]) * up[i] = gate / (1 + e^-gate) * up. The last
 * partial vector is padded, so every element goes through the same
 * arithmetic wherever a chunk boundary falls. */
static inline __attribute__((always_inline)) void swiglu_vw(float *gate, const float *up) {
  vwf g, u, e;
  VWLOAD(g, gate);
  VWLOAD(u, up);
  e = -g;
  vexp(&e);
  g = g / (1.0f + e) * u;
  VWSTORE(gate, g);
}

WIDE_CLONES static void swiglu(float *restrict gate, const float *restrict up, int64_t n) {
  int64_t i = 0;
  for (; i + VW <= n; i += VW)
    swiglu_vw(gate + i, up + i);
  if (i < n) {
    float gp[VW] = {0}, upp[VW] = {0};
    const size_t bytes = (size_t)(n - i) * sizeof(float);
    memcpy(gp, gate + i, bytes);
    memcpy(upp, up + i, bytes);
    swiglu_vw(gp, upp);
    memcpy(gate + i, gp, bytes);
  }
}

/* The entry point for forward.c: a multiversioned function is called
 * through its resolver only from its own file (clang does not make one
 * symbol of the clones that another file can link to). */
void cll__swiglu(float *restrict gate, const float *restrict up, int64_t n) {
  swiglu(gate, up, n);
}

/* row[j] = e^((row[j] - max) * scale) for j < n; returns the sum. */
WIDE_CLONES static float softmax_exp(float *row, int32_t n, float scale) {
  vwf v, mv = (vwf){0} - INFINITY;
  int32_t j = 0;
  for (; j + VW <= n; j += VW) {
    VWLOAD(v, row + j);
    mv = VWSEL(v > mv, v, mv);
  }
  float mx = -INFINITY;
  for (int l = 0; l < VW; l++)
    mx = mv[l] > mx ? mv[l] : mx;
  for (; j < n; j++)
    mx = row[j] > mx ? row[j] : mx;
  vwf sum = {0};
  for (j = 0; j + VW <= n; j += VW) {
    VWLOAD(v, row + j);
    v = (v - mx) * scale;
    vexp(&v);
    VWSTORE(row + j, v);
    sum += v;
  }
  if (j < n) {
    float t[VW];
    for (int l = 0; l < VW; l++)
      t[l] = j + l < n ? row[j + l] : mx - 1e30f; /* e^-huge: ~0 */
    VWLOAD(v, t);
    v = (v - mx) * scale;
    vexp(&v);
    for (int l = 0; j + l < n; l++) {
      row[j + l] = v[l];
      sum[l] += v[l];
    }
  }
  /* Pairwise, in the same order in every version. */
  float h[VW];
  memcpy(h, &sum, sizeof(h));
  for (int w = VW / 2; w > 0; w /= 2)
    for (int l = 0; l < w; l++)
      h[l] += h[l + w];
  return h[0];
}

/* ---------------------------------------------------------------- attention
 *
 * One work item = one KV head over a run of up to QCHUNK tokens of one
 * sequence (a unit), for all the query heads that share that KV head
 * (GQA). The sequence's positions 0..n_pos-1 live in runs of consecutive
 * cells (kv.c places a sequence's cells in blocks of CLL__KV_BLOCK, so a
 * long sequence has a few runs, usually one per block). The keys of a run
 * are a strided matrix in the K cache, so the scores are computed run by
 * run without copying. The transposed V of a run is a strided matrix too,
 * but splitting O = V^T P^T by runs would cut the dot products short, so
 * when there are several runs they are copied next to each other first
 * (head_dim copies per run, once per KV head). Then, with the group's
 * (head, token) pairs as the rows of Q (at most QCHUNK at once; a decode
 * token brings all its group's heads into one product),
 *   S = K Q^T (n_pos rows of head_dim: a matrix product, through the same
 *   cll_matmul as the weights), causal softmax of each row, O = V^T P^T
 * where V^T (head_dim rows of n_pos) is read from the transposed
 * V cache. */

/* Output of the query heads of KV head kvh for the tokens of unit u. */
void cll__attend(cll_ctx *c, int il, const struct cll__attn_unit *u, int64_t kvh,
                 struct cll__tscratch *ts) {
  const struct cll_model_info *I = &c->m->info;
  const struct cll_batch *b = c->b;
  const int64_t D = I->head_dim, QD = I->n_head * D, n_ctx = c->p.n_ctx;
  const int64_t G = I->n_head / I->n_head_kv; /* query heads per KV head */
  const struct cll__kvlayer *L = &c->kvl[il];
  const size_t e = c->kv_elt;
  const int32_t *toks = c->seq_toks + u->first;
  const int32_t n_pos = u->n_pos;
  const int32_t *cells = c->seq_cells + (size_t)u->seq * (size_t)n_ctx;
  const uint8_t *kl = L->k + (size_t)(kvh * D) * e;
  const uint8_t *vl = L->v + (size_t)(kvh * D * L->rows) * e;
  /* A sliding-window layer reads only positions j0.. (the window of the
   * unit's first token; in a ring, also no older than what it holds). */
  const int32_t win = c->m->layers[il].swa ? (int32_t)c->m->n_swa : 0;
  int32_t j0 = win > 0 && b->pos[toks[0]] - win + 1 > 0 ? b->pos[toks[0]] - win + 1 : 0;
  if (L->ring) {
    if (j0 < c->ring_lo[u->seq])
      j0 = c->ring_lo[u->seq];
    if (j0 > n_pos - 1)
      j0 = n_pos - 1;
    for (int32_t j = j0; j < n_pos; j++)
      ts->cellv[j] = (int32_t)((int64_t)u->seq * c->ring + j % c->ring);
    cells = ts->cellv;
  }

  /* Runs of consecutive cells: start positions in ts->runs, n_runs + 1
   * entries (the last is n_pos). */
  int32_t n_runs = 0;
  for (int32_t j = j0; j < n_pos; j++)
    if (j == j0 || cells[j] != cells[j - 1] + 1)
      ts->runs[n_runs++] = j;
  ts->runs[n_runs] = n_pos;
  /* V^T over the positions j0..n_pos-1: in place when they are one run,
   * else gathered run by run. */
  const uint8_t *vw = vl + (size_t)cells[j0] * e;
  size_t v_stride = (size_t)L->rows * e;
  if (n_runs > 1) {
    for (int32_t k = 0; k < n_runs; k++) {
      int32_t j = ts->runs[k], len = ts->runs[k + 1] - j;
      for (int64_t d = 0; d < D; d++)
        memcpy(ts->vg + (size_t)(d * n_ctx + j - j0) * e, vl + (size_t)(d * L->rows + cells[j]) * e,
               (size_t)len * e);
    }
    vw = ts->vg;
    v_stride = (size_t)n_ctx * e;
  }

  /* Query rows: heads [h0, h0 + nh) of the group times the unit's tokens,
   * row r = (head h0 + r / n, token r % n). */
  const int32_t n = u->n;
  const int64_t hb = CLL__QCHUNK / n < G ? CLL__QCHUNK / n : G;
  const float scale = c->m->attn_scale, cap = c->m->attn_softcap;
  float inv_sum[CLL__QCHUNK];
  for (int64_t h0 = 0; h0 < G; h0 += hb) {
    const int64_t nh = G - h0 < hb ? G - h0 : hb, rows = nh * n;
    for (int64_t r = 0; r < rows; r++)
      memcpy(ts->qg + r * D, c->q + (int64_t)toks[r % n] * QD + (kvh * G + h0 + r / n) * D,
             (size_t)D * sizeof(float));
    /* Scores run by run: the keys of a run are rows kv_row_bytes apart. */
    for (int32_t k = 0; k < n_runs; k++) {
      int32_t j = ts->runs[k];
      cll_matmul_args a = {
          .wtype = c->kv_type,
          .w = kl + (size_t)cells[j] * c->kv_row_bytes,
          .w_stride = c->kv_row_bytes,
          .n_in = D,
          .r0 = 0,
          .r1 = ts->runs[k + 1] - j,
          .x = ts->qg,
          .x_stride = D,
          .n_tok = rows,
          .y = ts->scores + j,
          .y_stride = n_ctx,
          .scratch = ts->mm,
          .scratch_bytes = ts->mm_bytes,
      };
      cll_matmul(c->K, &a);
    }

    /* Causal softmax of each row, left unnormalized: the 1/sum is applied
     * to the head_dim outputs below instead of the n_pos probabilities. */
    for (int64_t r = 0; r < rows; r++) {
      float *row = ts->scores + r * n_ctx;
      int32_t len = b->pos[toks[r % n]] + 1; /* causal: positions 0..pos */
      /* a sliding-window layer sees only the last win positions */
      int32_t first = win > 0 && len > win ? len - win : 0;
      first = first < j0 ? j0 : first;
      float sc = scale;
      if (cap > 0) { /* soft-capping: cap * tanh(score / cap) */
        for (int32_t j = first; j < len; j++)
          row[j] = tanhf(row[j] * (scale / cap)) * cap;
        sc = 1.0f;
      }
      inv_sum[r] = 1.0f / softmax_exp(row + first, len - first, sc);
      if (first > j0)
        memset(row + j0, 0, (size_t)(first - j0) * sizeof(float));
      if (len < n_pos)
        memset(row + len, 0, (size_t)(n_pos - len) * sizeof(float));
    }

    cll_matmul_args o = {
        .wtype = c->kv_type,
        .w = vw,
        .w_stride = v_stride,
        .n_in = n_pos - j0,
        .r0 = 0,
        .r1 = D,
        .x = ts->scores + j0,
        .x_stride = n_ctx,
        .n_tok = rows,
        .y = ts->og,
        .y_stride = D,
        .scratch = ts->mm,
        .scratch_bytes = ts->mm_bytes,
    };
    cll_matmul(c->K, &o);
    for (int64_t r = 0; r < rows; r++) {
      float *dst = c->att + (int64_t)toks[r % n] * QD + (kvh * G + h0 + r / n) * D;
      for (int64_t d = 0; d < D; d++)
        dst[d] = ts->og[r * D + d] * inv_sum[r];
    }
  }
}

/* ---------------------------------------------------------------- KV store */

/* Writes the K rows and the V columns (of the transposed cache) of batch
 * rows [t0, t1). K row by row; V dimension by dimension, so that the
 * consecutive cells of a prompt chunk fill each V row's cache lines
 * together instead of one line per token in each of kv_dim rows (n_ctx
 * elements apart, so also one page each). */
static void store_rows(const cll_ctx *c, uint8_t *kl, uint8_t *vl, int64_t n_ctx, int64_t KD,
                       const int32_t *row_of, int64_t base, int64_t t0, int64_t t1) {
  if (c->kv_type == CLL_TYPE_F32) {
    for (int64_t t = t0; t < t1; t++)
      memcpy(kl + (size_t)row_of[t - base] * c->kv_row_bytes, c->k + t * KD, c->kv_row_bytes);
    for (int64_t d = 0; d < KD; d++)
      for (int64_t t = t0; t < t1; t++)
        ((float *)vl)[d * n_ctx + row_of[t - base]] = c->v[t * KD + d];
    return;
  }
  for (int64_t t = t0; t < t1; t++) {
    uint16_t *kh = (uint16_t *)(kl + (size_t)row_of[t - base] * c->kv_row_bytes);
    const float *k = c->k + t * KD;
    int64_t i = 0;
    for (; i + 4 <= KD; i += 4) {
      v4u h = vhalf(vload(k + i));
      for (int l = 0; l < 4; l++)
        kh[i + l] = (uint16_t)h[l];
    }
    for (; i < KD; i++)
      kh[i] = cll_fp32_to_fp16(k[i]);
  }
  /* V four dimensions at a time: each token's four values converted
   * together, then written to the four rows. */
  uint16_t *vh = (uint16_t *)vl;
  int64_t d = 0;
  for (; d + 4 <= KD; d += 4)
    for (int64_t t = t0; t < t1; t++) {
      v4u h = vhalf(vload(c->v + t * KD + d));
      for (int l = 0; l < 4; l++)
        vh[(d + l) * n_ctx + row_of[t - base]] = (uint16_t)h[l];
    }
  for (; d < KD; d++)
    for (int64_t t = t0; t < t1; t++)
      vh[d * n_ctx + row_of[t - base]] = cll_fp32_to_fp16(c->v[t * KD + d]);
}

void cll__store_kv(const cll_ctx *c, int il, int64_t t0, int64_t t1) {
  const struct cll__kvlayer *L = &c->kvl[il];
  const int64_t n_ctx = L->rows, KD = c->kv_dim;
  uint8_t *kl = L->k, *vl = L->v;
  /* the row of each token: its cell, or its ring row */
  int32_t rowv[256];
  const int32_t *row_of = c->cell_of;
  if (L->ring) {
    for (int64_t t0b = t0; t0b < t1; t0b += 256) { /* in pieces of 256 tokens */
      int64_t t1b = t1 - t0b < 256 ? t1 : t0b + 256;
      for (int64_t t = t0b; t < t1b; t++)
        rowv[t - t0b] = (int32_t)((int64_t)c->b->seq[t] * c->ring + c->b->pos[t] % c->ring);
      store_rows(c, kl, vl, n_ctx, KD, rowv, t0b, t0b, t1b);
    }
    return;
  }
  store_rows(c, kl, vl, n_ctx, KD, row_of, 0, t0, t1);
}
