/* forward.c — the batched transformer forward pass (cll_ctx_new, cll_forward
 * and the context half of include/cllama/engine.h).
 *
 * DESIGN. One cll_forward computes every token of a batch (prompt chunks and
 * single decode tokens of several sequences mixed) through every layer. The
 * whole pass runs inside the context's thread team: every thread walks the
 * same list of operations in data-flow order, claims chunks of each (see
 * "work sharing" below) and waits until the operation is complete before
 * the next one. Chunks: matrix products are cut into a few equal runs of
 * output rows per thread (each weight row is read once, by one thread);
 * element-wise work is cut by tokens; attention by (sequence run, KV head),
 * since causal rows have different lengths. Activations are
 * quantized to the weight type's activation format once per operation
 * (cll_matmul_prepare), not once per thread. Nothing here allocates: every
 * buffer was sized in cll_ctx_new for n_batch_max tokens and n_ctx cells
 * (the logits grow only when a batch wants more rows than any before it).
 *
 * Per layer (x is the residual stream, xn the normalized input):
 *   xn = rmsnorm(x) * attn_norm;  q,k,v = Wq xn, Wk xn, Wv xn (+ biases)
 *   rope(q), rope(k); store k, v in the token's KV cell
 *   att = softmax(q k^T / sqrt(d)) v over the sequence's cells 0..pos (GQA)
 *   x += Wo att
 *   xn = rmsnorm(x) * ffn_norm;  x += Wdown (silu(Wgate xn) * Wup xn)
 * then logits = Wout (rmsnorm(x) * out_norm) for the wanted rows only. */
#include "engine/ctx.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static void *xalloc(size_t n) {
  /* 64-byte aligned, so SIMD kernels and rows start on cache lines. */
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0)
    return NULL;
  return p;
}

typedef double v2d __attribute__((vector_size(16)));

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
  /* Sum of squares in double, in four independent lanes (two vectors of
   * two: SSE2/NEON without ISA flags), so it is not one serial add chain. */
  v2d s0 = {0, 0}, s1 = {0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v2d a = {x[i], x[i + 1]}, b = {x[i + 2], x[i + 3]};
    s0 += a * a;
    s1 += b * b;
  }
  double ss = (s0[0] + s0[1]) + (s1[0] + s1[1]);
  for (; i < n; i++)
    ss += (double)x[i] * x[i];
  float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
  for (i = 0; i < n; i++)
    out[i] = x[i] * scale * w[i];
}

/* Rotates the first n_rot dimensions of each head by pos * inv_freq[i]
 * (NORM: adjacent pairs; NEOX: pairs half a rotation apart). */
static void rope_heads(const cll_ctx *c, float *x, int64_t n_heads, const float *cs) {
  int64_t D = c->m->info.head_dim, half = c->m->n_rot / 2;
  bool neox = c->m->arch->rope_neox;
  for (int64_t h = 0; h < n_heads; h++) {
    float *v = x + h * D;
    for (int64_t i = 0; i < half; i++) {
      float co = cs[2 * i], si = cs[2 * i + 1];
      int64_t a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
      float x0 = v[a], x1 = v[b];
      v[a] = x0 * co - x1 * si;
      v[b] = x0 * si + x1 * co;
    }
  }
}

/* cos and sin of pos * scale * inv_freq[i], times mscale (LongRoPE's
 * attention factor; 1 elsewhere). Sliding-window layers (swa) have their
 * own frequencies. */
static void rope_angles(const cll_ctx *c, bool swa, double pos, float mscale, float *cs) {
  int64_t half = c->m->n_rot / 2;
  double scale = swa ? c->m->swa_freq_scale : c->m->info.rope_freq_scale;
  const double *inv = swa ? c->inv_freq_swa : c->inv_freq;
  for (int64_t i = 0; i < half; i++) {
    double th = pos * scale * inv[i];
    cs[2 * i] = (float)cos(th) * mscale;
    cs[2 * i + 1] = (float)sin(th) * mscale;
  }
}

void cll__rope(const cll_ctx *c, int il, float *x, int64_t n_heads, double pos_delta) {
  float cs[2 * 512];
  int64_t half = c->m->n_rot / 2;
  if (half > 512)
    return; /* rejected at load time (head_dim <= 1024) */
  /* A shift rotates by the difference only: no second LongRoPE factor. */
  rope_angles(c, c->m->layers[il].swa, pos_delta, 1.0f, cs);
  rope_heads(c, x, n_heads, cs);
}

/* ---------------------------------------------------------------- matmul glue
 *
 * A weight's input (n_in floats per token) is prepared into the activation
 * format of its type once; several weights reading the same input with the
 * same format share the prepared buffer. */

struct prepared {
  uint32_t act_type[CLL__XQ_SLOTS];
  void *buf[CLL__XQ_SLOTS]; /* where each format was written */
  int n;
};

static int slot_for(const struct prepared *pr, uint32_t wtype) {
  uint32_t at = cll_type_info(wtype)->act_type;
  for (int i = 0; i < pr->n; i++)
    if (pr->act_type[i] == at)
      return i;
  return -1;
}

/* Quantizes rows [t0, t1) of the n_tok rows of x into bufs, for every
 * distinct activation format of the weights ws. Shared buffers: each thread
 * does its share of rows and the caller puts a barrier after; private
 * buffers (few tokens): each thread does all rows, no barrier needed. */
static void prepare(cll_ctx *c, struct prepared *pr, const struct cll__weight *const *ws, int n_w,
                    const float *x, int64_t x_stride, int64_t n_tok, int64_t t0, int64_t t1,
                    void *const *bufs) {
  pr->n = 0;
  for (int i = 0; i < n_w; i++) {
    if (slot_for(pr, ws[i]->type) >= 0)
      continue;
    int s = pr->n++;
    pr->act_type[s] = cll_type_info(ws[i]->type)->act_type;
    pr->buf[s] = bufs[s];
    size_t stride;
    if (cll_matmul_xq_bytes(ws[i]->type, ws[i]->n_in, n_tok, &stride) == 0 || t1 <= t0)
      continue;
    cll_matmul_prepare(c->K, ws[i]->type, x, x_stride, ws[i]->n_in, t0, t1, bufs[s], stride);
  }
}

/* y[t][r] for rows [r0, r1) of w, every token. */
static void matmul(cll_ctx *c, const struct prepared *pr, const struct cll__weight *w,
                   const float *x, int64_t x_stride, int64_t n_tok, float *y, int64_t y_stride,
                   int64_t r0, int64_t r1, int ith) {
  if (r1 <= r0)
    return;
  size_t xq_stride = 0;
  size_t xq_bytes = cll_matmul_xq_bytes(w->type, w->n_in, n_tok, &xq_stride);
  int s = slot_for(pr, w->type);
  cll_matmul_args a = {
      .wtype = w->type,
      .w = w->data,
      .w_stride = w->row_bytes,
      .wp = w->packed,
      .wp_rows = w->packed_rows,
      .n_in = w->n_in,
      .r0 = r0,
      .r1 = r1,
      .x = x,
      .x_stride = x_stride,
      .xq = xq_bytes ? pr->buf[s] : NULL,
      .xq_stride = xq_stride,
      .n_tok = n_tok,
      .y = y,
      .y_stride = y_stride,
      .scratch = c->ts[ith].mm,
      .scratch_bytes = c->ts[ith].mm_bytes,
  };
  cll_matmul(c->K, &a);
}

/* Like matmul, for n_tok rows starting at row t0 of x (and of the prepared
 * activations), written to rows t0.. of y. */
static void moe_matmul(cll_ctx *c, const struct prepared *pr, const struct cll__weight *w,
                       const float *x, int64_t x_stride, int64_t t0, int64_t n_tok, float *y,
                       int64_t y_stride, int64_t r0, int64_t r1, int ith) {
  if (r1 <= r0 || n_tok <= 0)
    return;
  size_t xq_stride = 0;
  size_t xq_bytes = cll_matmul_xq_bytes(w->type, w->n_in, 1, &xq_stride);
  int s = slot_for(pr, w->type);
  cll_matmul_args a = {
      .wtype = w->type,
      .w = w->data,
      .w_stride = w->row_bytes,
      .wp = w->packed,
      .wp_rows = w->packed_rows,
      .n_in = w->n_in,
      .r0 = r0,
      .r1 = r1,
      .x = x + t0 * x_stride,
      .x_stride = x_stride,
      .xq = xq_bytes ? (char *)pr->buf[s] + (size_t)t0 * xq_stride : NULL,
      .xq_stride = xq_stride,
      .n_tok = n_tok,
      .y = y + t0 * y_stride,
      .y_stride = y_stride,
      .scratch = c->ts[ith].mm,
      .scratch_bytes = c->ts[ith].mm_bytes,
  };
  cll_matmul(c->K, &a);
}

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
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) &&                   \
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
static void attend(cll_ctx *c, int il, const struct cll__attn_unit *u, int64_t kvh,
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
        memcpy(ts->vg + (size_t)(d * n_ctx + j - j0) * e,
               vl + (size_t)(d * L->rows + cells[j]) * e, (size_t)len * e);
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

/* ---------------------------------------------------------------- the pass */

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
      for (int l = 0; l < 4; l++) kh[i + l] = (uint16_t)h[l];
    }
    for (; i < KD; i++) kh[i] = cll_fp32_to_fp16(k[i]);
  }
  /* V four dimensions at a time: each token's four values converted
   * together, then written to the four rows. */
  uint16_t *vh = (uint16_t *)vl;
  int64_t d = 0;
  for (; d + 4 <= KD; d += 4)
    for (int64_t t = t0; t < t1; t++) {
      v4u h = vhalf(vload(c->v + t * KD + d));
      for (int l = 0; l < 4; l++) vh[(d + l) * n_ctx + row_of[t - base]] = (uint16_t)h[l];
    }
  for (; d < KD; d++)
    for (int64_t t = t0; t < t1; t++)
      vh[d * n_ctx + row_of[t - base]] = cll_fp32_to_fp16(c->v[t * KD + d]);
}

static void store_kv(const cll_ctx *c, int il, int64_t t0, int64_t t1) {
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

static void add_bias(float *x, const struct cll__weight *b, int64_t n) {
  if (b->data == NULL)
    return;
  const float *bv = b->data;
  for (int64_t i = 0; i < n; i++)
    x[i] += bv[i];
}

/* y[i] += x[i], four lanes at a time. */
static void add_to(float *restrict y, const float *restrict x, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4f a, b;
    memcpy(&a, y + i, sizeof(a));
    memcpy(&b, x + i, sizeof(b));
    a += b;
    memcpy(y + i, &a, sizeof(a));
  }
  for (; i < n; i++)
    y[i] += x[i];
}

/* ---------------------------------------------------------------- work sharing
 *
 * Every operation of the pass is cut into chunks (rows of a matrix
 * product, runs of tokens, attention heads). Threads claim chunks with an
 * atomic counter and count the ones they finish; before the next operation
 * a thread waits until every chunk of this one is done. Unlike a barrier
 * this does not wait for every thread to arrive: a thread that the OS has
 * descheduled while holding no chunk holds nobody up, the others take its
 * share, and when it runs again it skips the operations that are complete.
 * A chunk of operation k can only be claimed while k is incomplete, so no
 * thread is past k then: each operation may overwrite buffers that earlier
 * ones read. Counters are reset by cll_forward before the team starts. */

struct worker {
  cll_ctx *c;
  int ith, nth;
  int k; /* index of the current operation (the same sequence in every thread) */
};

static bool claim(struct worker *w, int32_t n, int32_t *i) {
  int32_t v = atomic_fetch_add_explicit(&w->c->op_claim[w->k], 1, memory_order_relaxed);
  if (v >= n)
    return false;
  *i = v;
  return true;
}

static void chunk_done(struct worker *w) {
  atomic_fetch_add_explicit(&w->c->op_done[w->k], 1, memory_order_release);
}

/* Waits for every chunk of the current operation, then moves to the next. */
static void op_end(struct worker *w, int32_t n) {
  int spins = 0;
  while (atomic_load_explicit(&w->c->op_done[w->k], memory_order_acquire) < n)
    cll__spin_wait(&spins);
  w->k++;
}

#define FOR_CHUNKS(w, n, i) for (int32_t i; claim((w), (n), &i); chunk_done(w))

/* [*a, *b) = chunk i of n over total items, boundaries on multiples of
 * align (matrix rows are cut at ROW_ALIGN so GEMM panels stay whole, and
 * the packed Q4_0 kernel gets them in the pairs it runs fastest). */
#define ROW_ALIGN 32
static void chunk_range(int64_t total, int32_t i, int32_t n, int64_t align, int64_t *a,
                        int64_t *b) {
  *a = total * i / n / align * align;
  *b = i == n - 1 ? total : total * (i + 1) / n / align * align;
}

/* Chunks for a product with n_out rows: eight per thread (so a thread that
 * falls behind costs at most a small tail), at least ROW_ALIGN rows each. */
static int32_t row_chunks(int64_t n_out, int nth) {
  int64_t n = n_out / ROW_ALIGN;
  int64_t want = (int64_t)nth * 8;
  return (int32_t)(n < 1 ? 1 : n < want ? n : want);
}

static int32_t tok_chunks(int64_t n_tok, int nth) {
  int64_t want = (int64_t)nth * 2;
  return (int32_t)(n_tok < want ? (n_tok > 0 ? n_tok : 1) : want);
}

/* GELU in its tanh form, rounded as llama.cpp's CPU backend does it (the
 * engine Ollama runs): the input rounded to half precision, the result
 * looked up in a table of half-precision values (below -10: 0; from 10: x).
 * The rounding (2^-11 relative) is far below any weight quantization's, and
 * with it the F32 logits of the Gemma models agree with llama.cpp's to
 * float accuracy (test_arch) instead of to ~5e-3. */
static uint16_t gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_init(void) {
  for (uint32_t h = 0; h < (1u << 16); h++) {
    float x = cll_fp16_to_fp32((uint16_t)h);
    float g = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
    gelu_table[h] = cll_fp32_to_fp16(g);
  }
}

/* gate[i] = gelu(gate[i]) * up[i] (GeGLU). */
static void geglu(float *restrict gate, const float *restrict up, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    float x = gate[i], g;
    if (x <= -10.0f)
      g = 0.0f;
    else if (x >= 10.0f)
      g = x;
    else
      g = cll_fp16_to_fp32(gelu_table[cll_fp32_to_fp16(x)]);
    gate[i] = g * up[i];
  }
}

/* x[t] += rmsnorm(xn[t]) * norm for the T rows (gemma's post norms): one
 * operation over token chunks. */
static void post_norm_add(struct worker *w, cll_ctx *c, const struct cll__weight *norm,
                          int64_t T) {
  const int64_t E = c->m->info.n_embd;
  int32_t n = tok_chunks(T, w->nth);
  int64_t a0, a1;
  FOR_CHUNKS(w, n, i) {
    chunk_range(T, i, n, 1, &a0, &a1);
    for (int64_t t = a0; t < a1; t++) {
      rmsnorm(c->xn + t * E, c->xn + t * E, norm->data, E, c->m->info.rms_eps);
      add_to(c->x + t * E, c->xn + t * E, E);
    }
  }
  op_end(w, n);
}

/* The mixture-of-experts FFN of layer L for T tokens whose normalized
 * input is in xn (already prepared for the router in xq):
 *   p = softmax(Wr xn); the n_used largest, their weights p / sum(p);
 *   x += sum over them of w_e * Wdown_e (silu(Wgate_e xn) * Wup_e xn)
 * Every token's copy for each chosen expert gets a slot; slots are grouped
 * by expert, so each expert multiplies its tokens as one batch and only
 * the chosen experts' rows are read. */
static void moe_ffn(struct worker *w, cll_ctx *c, const struct cll__layer *L, int64_t T) {
  const cll_model *m = c->m;
  const int64_t E = m->info.n_embd, X = m->n_expert, K = m->n_expert_used, FE = m->n_ff_exp;
  const int64_t S = T * K; /* slots */
  const int ith = w->ith, nth = w->nth;
  struct prepared pr;
  int32_t n;
  int64_t a0, a1;
  const struct cll__weight *rw[1] = {&L->router};
  prepare(c, &pr, rw, 1, c->xn, E, T, 0, 0, c->xq);
  n = row_chunks(X, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(X, i, n, ROW_ALIGN, &a0, &a1);
    matmul(c, &pr, &L->router, c->xn, E, T, c->moe_logits, X, a0, a1, ith);
  }
  op_end(w, n);

  /* Routing and slot assignment: one chunk (T * X work, small). */
  FOR_CHUNKS(w, 1, i) {
    (void)i;
    int32_t *cnt = c->moe_start; /* counts first, then first slots */
    memset(cnt, 0, (size_t)(X + 1) * sizeof(int32_t));
    for (int64_t t = 0; t < T; t++) {
      float *lg = c->moe_logits + t * X;
      float mx = lg[0], sum = 0;
      for (int64_t e = 1; e < X; e++)
        mx = lg[e] > mx ? lg[e] : mx;
      for (int64_t e = 0; e < X; e++)
        sum += lg[e] = expf(lg[e] - mx);
      int32_t *sel = c->moe_sel + t * K;
      float *wt = c->moe_w + t * K, wsum = 0;
      for (int64_t k = 0; k < K; k++) { /* selection, largest first */
        int32_t best = -1;
        for (int64_t e = 0; e < X; e++)
          if (lg[e] >= 0 && (best < 0 || lg[e] > lg[best]))
            best = (int32_t)e;
        sel[k] = best;
        wt[k] = lg[best] / sum;
        wsum += wt[k];
        lg[best] = -1.0f; /* taken */
        cnt[best + 1]++;
      }
      wsum = wsum < 6.103515625e-5f ? 6.103515625e-5f : wsum;
      for (int64_t k = 0; k < K; k++)
        wt[k] /= wsum;
    }
    for (int64_t e = 0; e < X; e++)
      cnt[e + 1] += cnt[e];
    /* slots in token order within each expert; moe_start ends as starts */
    for (int64_t t = 0; t < T; t++)
      for (int64_t k = 0; k < K; k++) {
        int32_t e = c->moe_sel[t * K + k], s_ = cnt[e]++;
        c->moe_slot[t * K + k] = s_;
        c->moe_tok[s_] = (int32_t)t;
      }
    for (int64_t e = X; e > 0; e--)
      cnt[e] = cnt[e - 1];
    cnt[0] = 0;
    /* the experts with tokens, after the starts; their count last */
    int32_t *act = cnt + X + 1, n_act = 0;
    for (int64_t e = 0; e < X; e++)
      if (cnt[e + 1] > cnt[e])
        act[n_act++] = (int32_t)e;
    act[X] = n_act;
  }
  op_end(w, 1);
  const int32_t *act = c->moe_start + X + 1, n_act = act[X];

  /* Gather each slot's input row, prepared for the experts' type. */
  const struct cll__weight *g0[2] = {&L->exp_gate[0], &L->exp_up[0]};
  n = tok_chunks(S, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(S, i, n, 1, &a0, &a1);
    for (int64_t s_ = a0; s_ < a1; s_++)
      memcpy(c->moe_x + s_ * E, c->xn + (int64_t)c->moe_tok[s_] * E, (size_t)E * sizeof(float));
    prepare(c, &pr, g0, 2, c->moe_x, E, S, a0, a1, c->xq);
  }
  op_end(w, n);
  prepare(c, &pr, g0, 2, c->moe_x, E, S, 0, 0, c->xq);

  /* gate and up of every expert with tokens: chunks of (expert, rows) */
  const int32_t rc_ = row_chunks(FE, nth) > 4 ? 4 : row_chunks(FE, nth);
  n = n_act * rc_;
  FOR_CHUNKS(w, n, i) {
    int64_t e = act[i / rc_], s0 = c->moe_start[e], ns = c->moe_start[e + 1] - s0;
    chunk_range(FE, i % rc_, rc_, ROW_ALIGN, &a0, &a1);
    moe_matmul(c, &pr, &L->exp_gate[e], c->moe_x, E, s0, ns, c->moe_g, FE, a0, a1, ith);
    moe_matmul(c, &pr, &L->exp_up[e], c->moe_x, E, s0, ns, c->moe_u, FE, a0, a1, ith);
    for (int64_t s_ = s0; s_ < s0 + ns; s_++)
      swiglu(c->moe_g + s_ * FE + a0, c->moe_u + s_ * FE + a0, a1 - a0);
  }
  op_end(w, n);

  const struct cll__weight *d0[1] = {&L->exp_down[0]};
  n = tok_chunks(S, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(S, i, n, 1, &a0, &a1);
    prepare(c, &pr, d0, 1, c->moe_g, FE, S, a0, a1, c->xq);
  }
  op_end(w, n);
  prepare(c, &pr, d0, 1, c->moe_g, FE, S, 0, 0, c->xq);
  const int32_t rd = row_chunks(E, nth) > 4 ? 4 : row_chunks(E, nth);
  n = n_act * rd;
  FOR_CHUNKS(w, n, i) {
    int64_t e = act[i / rd], s0 = c->moe_start[e], ns = c->moe_start[e + 1] - s0;
    chunk_range(E, i % rd, rd, ROW_ALIGN, &a0, &a1);
    moe_matmul(c, &pr, &L->exp_down[e], c->moe_g, FE, s0, ns, c->moe_x, E, a0, a1, ith);
  }
  op_end(w, n);

  /* x[t] += sum_k w[t][k] * out[slot(t, k)], k in selection order */
  n = tok_chunks(T, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(T, i, n, 1, &a0, &a1);
    for (int64_t t = a0; t < a1; t++) {
      float *acc = c->xn + t * E;
      for (int64_t k = 0; k < K; k++) {
        const float *y = c->moe_x + (int64_t)c->moe_slot[t * K + k] * E, wk = c->moe_w[t * K + k];
        for (int64_t j = 0; j < E; j++)
          acc[j] = k == 0 ? y[j] * wk : acc[j] + y[j] * wk;
      }
      add_to(c->x + t * E, acc, E);
    }
  }
  op_end(w, n);
}

static void forward_worker(void *arg, int ith, int nth) {
  cll_ctx *c = arg;
  struct worker W = {c, ith, nth, 0}, *w = &W;
  const cll_model *m = c->m;
  const struct cll_model_info *I = &m->info;
  const struct cll_batch *b = c->b;
  const int64_t E = I->n_embd, D = I->head_dim, F = I->n_ff;
  const int64_t QD = I->n_head * D, KD = c->kv_dim, half = m->n_rot / 2;
  int64_t T = b->n_tokens;
  bool compacted = false; /* rows 0..n_out-1 hold the wanted tokens */
  struct prepared pr;
  int32_t n;
  int64_t a0, a1;

  /* Token embeddings and this batch's RoPE angles. */
  n = tok_chunks(T, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(T, i, n, 1, &a0, &a1);
    for (int64_t t = a0; t < a1; t++) {
      const uint8_t *row =
          (const uint8_t *)m->tok_embd.data + (size_t)b->tokens[t] * m->tok_embd.row_bytes;
      c->K->dequant_row[m->tok_embd.type](row, c->x + t * E, E);
      if (m->arch->gemma) {
        const float sc = sqrtf((float)E);
        for (int64_t j = 0; j < E; j++)
          c->x[t * E + j] *= sc;
      }
      rope_angles(c, false, b->pos[t], c->rope_mscale, c->rope_cs + t * half * 2);
      if (m->n_swa > 0)
        rope_angles(c, true, b->pos[t], c->rope_mscale, c->rope_cs_swa + t * half * 2);
    }
  }
  op_end(w, n);

  for (int il = 0; il < I->n_layer; il++) {
    const struct cll__layer *L = &m->layers[il];
    const struct cll__weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
    const struct cll__weight *wo[1] = {&L->wo};
    const struct cll__weight *gu[2] = {&L->w_gate, &L->w_up};
    const struct cll__weight *dn[1] = {&L->w_down};

    /* xn = rmsnorm(x), quantized for Wq/Wk/Wv */
    n = tok_chunks(T, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(T, i, n, 1, &a0, &a1);
      for (int64_t t = a0; t < a1; t++)
        rmsnorm(c->xn + t * E, c->x + t * E, L->attn_norm.data, E, I->rms_eps);
      prepare(c, &pr, qkv, 3, c->xn, E, T, a0, a1, c->xq);
    }
    op_end(w, n);
    prepare(c, &pr, qkv, 3, c->xn, E, T, 0, 0, c->xq); /* slots only */

    /* q, k, v: one operation over the rows of all three */
    {
      int32_t nq = row_chunks(QD, nth), nk = row_chunks(KD, nth);
      n = nq + 2 * nk;
      FOR_CHUNKS(w, n, i) {
        if (i < nq) {
          chunk_range(QD, i, nq, ROW_ALIGN, &a0, &a1);
          matmul(c, &pr, &L->wq, c->xn, E, T, c->q, QD, a0, a1, ith);
        } else if (i < nq + nk) {
          chunk_range(KD, i - nq, nk, ROW_ALIGN, &a0, &a1);
          matmul(c, &pr, &L->wk, c->xn, E, T, c->k, KD, a0, a1, ith);
        } else {
          chunk_range(KD, i - nq - nk, nk, ROW_ALIGN, &a0, &a1);
          matmul(c, &pr, &L->wv, c->xn, E, T, c->v, KD, a0, a1, ith);
        }
      }
      op_end(w, n);
    }

    /* biases, RoPE, store K and V */
    n = tok_chunks(T, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(T, i, n, 1, &a0, &a1);
      for (int64_t t = a0; t < a1; t++) {
        float *q = c->q + t * QD, *k = c->k + t * KD, *v = c->v + t * KD;
        add_bias(q, &L->bq, QD);
        add_bias(k, &L->bk, KD);
        add_bias(v, &L->bv, KD);
        if (m->arch->qk_norm) {
          for (int64_t h = 0; h < I->n_head; h++)
            rmsnorm(q + h * D, q + h * D, L->q_norm.data, D, I->rms_eps);
          for (int64_t h = 0; h < I->n_head_kv; h++)
            rmsnorm(k + h * D, k + h * D, L->k_norm.data, D, I->rms_eps);
        }
        const float *cs = (L->swa ? c->rope_cs_swa : c->rope_cs) + t * half * 2;
        rope_heads(c, q, I->n_head, cs);
        rope_heads(c, k, I->n_head_kv, cs);
      }
      store_kv(c, il, a0, a1);
    }
    op_end(w, n);

    /* attention: one chunk per (unit, KV head) */
    n = c->n_units * (int32_t)I->n_head_kv;
    FOR_CHUNKS(w, n, i)
    attend(c, il, &c->units[i / I->n_head_kv], i % I->n_head_kv, &c->ts[ith]);
    op_end(w, n);

    if (il == I->n_layer - 1 && c->n_out < T) {
      /* The rest of the last layer only matters for the wanted rows: move
       * them to the front (out_rows ascends, so in place is safe) and go on
       * with n_out rows. One chunk: it is a short copy. */
      FOR_CHUNKS(w, 1, i) {
        (void)i;
        for (int32_t r = 0; r < c->n_out; r++) {
          int32_t from = c->out_rows[r];
          memmove(c->att + r * QD, c->att + (int64_t)from * QD, (size_t)QD * sizeof(float));
          memmove(c->x + r * E, c->x + (int64_t)from * E, (size_t)E * sizeof(float));
        }
      }
      op_end(w, 1);
      T = c->n_out;
      compacted = true;
    }

    /* x += Wo att (gemma: x += rmsnorm(Wo att) * attn_post_norm) */
    const bool gemma = m->arch->gemma;
    n = tok_chunks(T, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(T, i, n, 1, &a0, &a1);
      prepare(c, &pr, wo, 1, c->att, QD, T, a0, a1, c->xq);
    }
    op_end(w, n);
    prepare(c, &pr, wo, 1, c->att, QD, T, 0, 0, c->xq);
    n = row_chunks(E, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(E, i, n, ROW_ALIGN, &a0, &a1);
      matmul(c, &pr, &L->wo, c->att, QD, T, c->xn, E, a0, a1, ith);
      if (!gemma)
        for (int64_t t = 0; t < T; t++)
          add_to(c->x + t * E + a0, c->xn + t * E + a0, a1 - a0);
    }
    op_end(w, n);
    if (gemma)
      post_norm_add(w, c, &L->attn_post_norm, T);

    /* feed-forward: xn = rmsnorm(x); gate = act(Wgate xn) * (Wup xn) */
    n = tok_chunks(T, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(T, i, n, 1, &a0, &a1);
      for (int64_t t = a0; t < a1; t++)
        rmsnorm(c->xn + t * E, c->x + t * E, L->ffn_norm.data, E, I->rms_eps);
      if (m->arch->moe) {
        const struct cll__weight *rw[1] = {&L->router};
        prepare(c, &pr, rw, 1, c->xn, E, T, a0, a1, c->xq);
      } else {
        prepare(c, &pr, gu, 2, c->xn, E, T, a0, a1, c->xq);
      }
    }
    op_end(w, n);
    if (m->arch->moe) {
      moe_ffn(w, c, L, T);
      continue;
    }
    prepare(c, &pr, gu, 2, c->xn, E, T, 0, 0, c->xq);
    n = row_chunks(F, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(F, i, n, ROW_ALIGN, &a0, &a1);
      matmul(c, &pr, &L->w_gate, c->xn, E, T, c->gate, F, a0, a1, ith);
      matmul(c, &pr, &L->w_up, c->xn, E, T, c->up, F, a0, a1, ith);
      for (int64_t t = 0; t < T; t++)
        if (gemma)
          geglu(c->gate + t * F + a0, c->up + t * F + a0, a1 - a0);
        else
          swiglu(c->gate + t * F + a0, c->up + t * F + a0, a1 - a0);
    }
    op_end(w, n);

    /* x += Wdown gate (gemma: x += rmsnorm(Wdown gate) * ffn_post_norm) */
    n = tok_chunks(T, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(T, i, n, 1, &a0, &a1);
      prepare(c, &pr, dn, 1, c->gate, F, T, a0, a1, c->xq);
    }
    op_end(w, n);
    prepare(c, &pr, dn, 1, c->gate, F, T, 0, 0, c->xq);
    n = row_chunks(E, nth);
    FOR_CHUNKS(w, n, i) {
      chunk_range(E, i, n, ROW_ALIGN, &a0, &a1);
      matmul(c, &pr, &L->w_down, c->gate, F, T, c->xn, E, a0, a1, ith);
      if (!gemma)
        for (int64_t t = 0; t < T; t++)
          add_to(c->x + t * E + a0, c->xn + t * E + a0, a1 - a0);
    }
    op_end(w, n);
    if (gemma)
      post_norm_add(w, c, &L->ffn_post_norm, T);
  }

  /* Output: only the wanted rows, normalized into xn (kept for
   * cll_ctx_hidden). */
  const struct cll__weight *ow[1] = {&m->output};
  int64_t n_out = c->n_out;
  n = tok_chunks(n_out, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(n_out, i, n, 1, &a0, &a1);
    for (int64_t k = a0; k < a1; k++)
      rmsnorm(c->xn + k * E, c->x + (compacted ? k : (int64_t)c->out_rows[k]) * E,
              m->out_norm.data, E, I->rms_eps);
    prepare(c, &pr, ow, 1, c->xn, E, n_out, a0, a1, c->xq);
  }
  op_end(w, n);
  prepare(c, &pr, ow, 1, c->xn, E, n_out, 0, 0, c->xq);
  n = row_chunks(I->n_vocab, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(I->n_vocab, i, n, ROW_ALIGN, &a0, &a1);
    matmul(c, &pr, &m->output, c->xn, E, n_out, c->logits, I->n_vocab, a0, a1, ith);
    if (m->final_softcap > 0) /* gemma2: cap * tanh(logit / cap) */
      for (int64_t k = 0; k < n_out; k++)
        for (int64_t j = a0; j < a1; j++) {
          float *l = c->logits + k * I->n_vocab + j;
          *l = tanhf(*l / m->final_softcap) * m->final_softcap;
        }
  }
  op_end(w, n);
  assert(w->k <= c->n_ops);
}

/* Orders attention units by work (tokens times positions), largest first. */
static int unit_cmp(const void *pa, const void *pb) {
  const struct cll__attn_unit *a = pa, *b = pb;
  int64_t wa = (int64_t)a->n * a->n_pos, wb = (int64_t)b->n * b->n_pos;
  if (wa != wb)
    return wa > wb ? -1 : 1;
  return a->first - b->first; /* distinct: seq_toks indices */
}

int cll_forward(cll_ctx *c, const struct cll_batch *b, cll_err *err) {
  if (c->enc != NULL)
    return cll__encode(c, b, err);
  const struct cll_model_info *I = &c->m->info;
  if (b == NULL || b->n_tokens <= 0 || b->n_tokens > c->p.n_batch_max || b->tokens == NULL ||
      b->pos == NULL || b->seq == NULL)
    return cll_err_set(err, CLL_EINVAL, "batch of %d tokens (1..%d allowed)",
                       b ? b->n_tokens : 0, c->p.n_batch_max);
  int32_t n_out = 0;
  for (int32_t i = 0; i < b->n_tokens; i++) {
    if (b->tokens[i] < 0 || b->tokens[i] >= I->n_vocab)
      return cll_err_set(err, CLL_EINVAL, "token %d is not in the vocabulary (%lld tokens)",
                         b->tokens[i], (long long)I->n_vocab);
    if (b->seq[i] < 0 || b->seq[i] >= c->p.n_seq_max)
      return cll_err_set(err, CLL_EINVAL, "sequence id %d out of range (0..%d)", b->seq[i],
                         c->p.n_seq_max - 1);
    if (b->want ? b->want[i] != 0 : i == b->n_tokens - 1)
      c->out_rows[n_out++] = i;
  }
  if (n_out > c->logits_rows) {
    float *l = xalloc((size_t)n_out * (size_t)I->n_vocab * sizeof(float));
    if (l == NULL)
      return cll_err_set(err, CLL_ENOMEM, "out of memory for %d rows of logits", n_out);
    free(c->logits);
    c->logits = l;
    c->logits_rows = n_out;
  }
  int rc = cll__kv_place(c, b, err);
  if (rc)
    return rc;
  /* Group the batch's tokens by sequence (stable) and cut each group into
   * attention units of at most QCHUNK tokens. */
  int32_t start[CLL__MAX_SEQ + 1] = {0};
  for (int32_t i = 0; i < b->n_tokens; i++)
    start[b->seq[i] + 1]++;
  for (int32_t s = 0; s < c->p.n_seq_max; s++)
    start[s + 1] += start[s];
  int32_t fill[CLL__MAX_SEQ];
  memcpy(fill, start, sizeof(fill));
  for (int32_t i = 0; i < b->n_tokens; i++)
    c->seq_toks[fill[b->seq[i]]++] = i;
  c->n_units = 0;
  for (int32_t s = 0; s < c->p.n_seq_max; s++)
    for (int32_t f = start[s]; f < start[s + 1]; f += CLL__QCHUNK) {
      int32_t n = start[s + 1] - f < CLL__QCHUNK ? start[s + 1] - f : CLL__QCHUNK;
      c->units[c->n_units++] = (struct cll__attn_unit){s, f, n, b->pos[c->seq_toks[f + n - 1]] + 1};
    }
  /* Largest attention work first (tokens times positions attended), so
   * that the threads do not wait at the end of the operation for one that
   * took a prompt chunk last. */
  qsort(c->units, (size_t)c->n_units, sizeof(*c->units), unit_cmp);
  c->n_out = n_out;
  c->b = b;
  /* Small models (or tiny batches of them) run on one thread: below about
   * 8M multiply-adds per step the barriers cost more than the split gains. */
  int n_active = (double)I->n_params * b->n_tokens < 8e6 ? 1 : c->p.n_threads;
  for (int32_t k = 0; k < c->n_ops; k++) {
    atomic_store_explicit(&c->op_claim[k], 0, memory_order_relaxed);
    atomic_store_explicit(&c->op_done[k], 0, memory_order_relaxed);
  }
  cll__team_run(c->team, n_active, forward_worker, c);
  c->b = NULL;
  return 0;
}

const float *cll_ctx_logits(const cll_ctx *c, int32_t k) {
  if (c->enc != NULL)
    return NULL; /* encoders have no logits */
  if (k < 0 || k >= c->n_out)
    return NULL;
  return c->logits + (size_t)k * (size_t)c->m->info.n_vocab;
}

const float *cll_ctx_hidden(const cll_ctx *c, int32_t k) {
  if (c->enc != NULL)
    return cll__enc_hidden(c, k);
  if (!c->p.embeddings || k < 0 || k >= c->n_out)
    return NULL;
  return c->xn + (size_t)k * (size_t)c->m->info.n_embd;
}

/* ---------------------------------------------------------------- context */

struct cll_ctx_params cll_ctx_params_defaults(void) {
  struct cll_ctx_params p = {
      .n_ctx = 2048,
      .n_seq_max = 1,
      .n_batch_max = 512,
      .kv_type = CLL_KV_F16,
      .n_threads = 0,
      .embeddings = false,
  };
  return p;
}

/* Largest xq buffer any weight needs for n_tok rows. */
static size_t max_xq(const cll_model *m, int64_t n_tok) {
  size_t best = 0, stride;
#define X(w)                                                                                       \
  do {                                                                                             \
    size_t s_ = cll_matmul_xq_bytes((w).type, (w).n_in, n_tok, &stride);                           \
    if (s_ > best)                                                                                 \
      best = s_;                                                                                   \
  } while (0)
  X(m->output);
  for (int64_t il = 0; il < m->info.n_layer; il++) {
    const struct cll__layer *L = &m->layers[il];
    X(L->wq);
    X(L->wk);
    X(L->wv);
    X(L->wo);
    X(L->w_gate);
    X(L->w_up);
    X(L->w_down);
    if (m->arch->moe) {
      X(L->router);
      /* the experts' rows: n_used copies of each token */
      size_t s_ = cll_matmul_xq_bytes(L->exp_gate[0].type, L->exp_gate[0].n_in,
                                      n_tok * m->n_expert_used, &stride);
      best = s_ > best ? s_ : best;
      s_ = cll_matmul_xq_bytes(L->exp_up[0].type, L->exp_up[0].n_in, n_tok * m->n_expert_used,
                               &stride);
      best = s_ > best ? s_ : best;
      s_ = cll_matmul_xq_bytes(L->exp_down[0].type, L->exp_down[0].n_in,
                               n_tok * m->n_expert_used, &stride);
      best = s_ > best ? s_ : best;
    }
  }
#undef X
  return best;
}

int cll_ctx_new(cll_model *m, const struct cll_ctx_params *p, cll_ctx **out, cll_err *err) {
  *out = NULL;
  if (m->enc != NULL)
    return cll__enc_ctx_new(m, p, out, err);
  const struct cll_model_info *I = &m->info;
  if (p->n_ctx < 1 || p->n_ctx > (1 << 24) || p->n_seq_max < 1 || p->n_seq_max > CLL__MAX_SEQ ||
      p->n_batch_max < 1 || p->n_batch_max > (1 << 16) ||
      (p->kv_type != CLL_KV_F16 && p->kv_type != CLL_KV_F32))
    return cll_err_set(err, CLL_EINVAL,
                       "bad context parameters (n_ctx %lld, n_seq_max %d (<= %d), n_batch_max %d)",
                       (long long)p->n_ctx, p->n_seq_max, CLL__MAX_SEQ, p->n_batch_max);
  if (m->n_rot / 2 > 512)
    return cll_err_set(err, CLL_EUNSUPPORTED, "head_dim %lld too large", (long long)I->head_dim);
  if (m->arch->gemma)
    pthread_once(&gelu_once, gelu_init);
  cll_ctx *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  c->m = cll_model_retain(m);
  c->p = *p;
  c->K = cll_kernels_get();
  c->kv_dim = I->n_head_kv * I->head_dim;
  c->kv_type = p->kv_type == CLL_KV_F32 ? CLL_TYPE_F32 : CLL_TYPE_F16;
  c->kv_elt = c->kv_type == CLL_TYPE_F32 ? 4 : 2;
  c->kv_row_bytes = (size_t)c->kv_dim * c->kv_elt;
  int rc = cll__team_new(p->n_threads, &c->team);
  if (rc) {
    cll_ctx_free(c);
    return cll_err_set(err, rc, "cannot start compute threads");
  }
  c->p.n_threads = cll__team_size(c->team);
  if ((rc = cll__kv_init(c))) {
    cll_ctx_free(c);
    return cll_err_set(err, rc, "out of memory for a KV cache of %lld cells", (long long)p->n_ctx);
  }
  size_t B = (size_t)p->n_batch_max, f = sizeof(float);
  int64_t half = m->n_rot / 2;
  c->inv_freq = calloc((size_t)(half ? half : 1), sizeof(double));
  c->x = xalloc(B * (size_t)I->n_embd * f);
  c->xn = xalloc(B * (size_t)I->n_embd * f);
  c->q = xalloc(B * (size_t)(I->n_head * I->head_dim) * f);
  c->k = xalloc(B * (size_t)c->kv_dim * f);
  c->v = xalloc(B * (size_t)c->kv_dim * f);
  c->att = xalloc(B * (size_t)(I->n_head * I->head_dim) * f);
  c->gate = xalloc(B * (size_t)I->n_ff * f);
  c->up = xalloc(B * (size_t)I->n_ff * f);
  c->rope_cs = xalloc(B * (size_t)(half ? half : 1) * 2 * f);
  c->inv_freq_swa = calloc((size_t)(half ? half : 1), sizeof(double));
  c->rope_cs_swa = xalloc(B * (size_t)(half ? half : 1) * 2 * f);
  bool moe_ok = true;
  if (m->arch->moe) {
    size_t X = (size_t)m->n_expert, K = (size_t)m->n_expert_used;
    c->moe_sel = calloc(B * K, sizeof(int32_t));
    c->moe_w = xalloc(B * K * f);
    c->moe_logits = xalloc(B * X * f);
    c->moe_start = calloc(2 * X + 2, sizeof(int32_t)); /* starts, then the active experts */
    c->moe_slot = calloc(B * K, sizeof(int32_t));
    c->moe_tok = calloc(B * K, sizeof(int32_t));
    c->moe_x = xalloc(B * K * (size_t)I->n_embd * f);
    c->moe_g = xalloc(B * K * (size_t)m->n_ff_exp * f);
    c->moe_u = xalloc(B * K * (size_t)m->n_ff_exp * f);
    moe_ok = c->moe_sel && c->moe_w && c->moe_logits && c->moe_start && c->moe_slot &&
             c->moe_tok && c->moe_x && c->moe_g && c->moe_u;
  }
  c->cell_of = calloc(B, sizeof(int32_t));
  c->out_rows = calloc(B, sizeof(int32_t));
  c->seq_toks = calloc(B, sizeof(int32_t));
  c->units = calloc(B + (size_t)p->n_seq_max, sizeof(*c->units));
  /* embeddings, at most 20 per layer (11; gemma's post norms 2; MoE 7
   * more), the compaction, final norm and output */
  c->n_ops = (int32_t)(I->n_layer * 20 + 4);
  c->op_claim = calloc((size_t)c->n_ops, sizeof(*c->op_claim));
  c->op_done = calloc((size_t)c->n_ops, sizeof(*c->op_done));
  c->xq_bytes = max_xq(m, p->n_batch_max);
  bool ok = c->inv_freq && c->x && c->xn && c->q && c->k && c->v && c->att && c->gate && c->up &&
            c->rope_cs && c->cell_of && c->out_rows && c->seq_toks && c->units && c->op_claim &&
            c->op_done && c->inv_freq_swa && c->rope_cs_swa && moe_ok;
  for (int i = 0; i < CLL__XQ_SLOTS && ok; i++)
    ok = (c->xq[i] = xalloc(c->xq_bytes)) != NULL;
  /* Logits for one row per sequence up front (the usual decode step). */
  c->logits_rows = p->n_seq_max < p->n_batch_max ? p->n_seq_max : p->n_batch_max;
  ok = ok && (c->logits = xalloc((size_t)c->logits_rows * (size_t)I->n_vocab * f)) != NULL;
  c->ts = calloc((size_t)c->p.n_threads, sizeof(*c->ts));
  ok = ok && c->ts != NULL;
  int64_t n_in_max = I->n_embd > I->n_ff ? I->n_embd : I->n_ff;
  if (I->n_head * I->head_dim > n_in_max)
    n_in_max = I->n_head * I->head_dim;
  if (p->n_ctx > n_in_max) /* the P.V product has rows of n_pos <= n_ctx */
    n_in_max = p->n_ctx;
  size_t D = (size_t)I->head_dim, Q = CLL__QCHUNK;
  for (int i = 0; ok && i < c->p.n_threads; i++) {
    struct cll__tscratch *ts = &c->ts[i];
    ts->mm_bytes = cll_matmul_scratch_bytes(n_in_max, p->n_batch_max > (int32_t)Q ? p->n_batch_max
                                                                                  : (int64_t)Q);
    ts->mm = xalloc(ts->mm_bytes);
    ts->qg = xalloc(Q * D * f);
    ts->og = xalloc(Q * D * f);
    ts->scores = xalloc(Q * (size_t)p->n_ctx * f);
    ts->runs = xalloc(((size_t)p->n_ctx + 1) * sizeof(int32_t));
    ts->cellv = xalloc((size_t)p->n_ctx * sizeof(int32_t));
    ts->vg = xalloc((size_t)p->n_ctx * D * c->kv_elt);
    ok = ts->mm && ts->qg && ts->og && ts->scores && ts->runs && ts->vg && ts->cellv;
  }
  if (!ok) {
    cll_ctx_free(c);
    return cll_err_set(err, CLL_ENOMEM, "out of memory for the compute buffers");
  }
  /* theta_i = pos * base^(-2i/n_rot), divided by the model's frequency
   * factors when it has them (Llama 3). */
  /* LongRoPE (phi3 128k): the long factors when a sequence's context is
   * longer than the original one, else the short ones (llama.cpp's choice,
   * by its per-sequence context), and
   * cos/sin scaled by the attention factor. */
  const float *ff = m->rope_freqs.data;
  if (ff == NULL && m->rope_long.data != NULL)
    ff = (p->n_ctx_seq > 0 ? p->n_ctx_seq : p->n_ctx) > m->rope_orig_ctx ? m->rope_long.data
                                                                           : m->rope_short.data;
  c->rope_mscale = m->rope_attn_factor > 0 ? m->rope_attn_factor : 1.0f;
  for (int64_t i = 0; i < half; i++) {
    c->inv_freq[i] = pow((double)I->rope_freq_base, -2.0 * (double)i / (double)m->n_rot);
    if (ff != NULL)
      c->inv_freq[i] /= (double)ff[i];
    c->inv_freq_swa[i] = m->n_swa > 0 ? pow((double)m->swa_freq_base,
                                            -2.0 * (double)i / (double)m->n_rot)
                                      : c->inv_freq[i];
  }
  *out = c;
  return 0;
}

void cll_ctx_free(cll_ctx *c) {
  if (c == NULL)
    return;
  if (c->enc != NULL) {
    cll__enc_ctx_free(c);
    return;
  }
  cll__team_free(c->team);
  cll__kv_free(c);
  if (c->ts != NULL)
    for (int i = 0; i < c->p.n_threads; i++) {
      free(c->ts[i].mm);
      free(c->ts[i].qg);
      free(c->ts[i].og);
      free(c->ts[i].scores);
      free(c->ts[i].runs);
      free(c->ts[i].cellv);
      free(c->ts[i].vg);
    }
  free(c->ts);
  free(c->inv_freq);
  free(c->x);
  free(c->xn);
  free(c->q);
  free(c->k);
  free(c->v);
  free(c->att);
  free(c->gate);
  free(c->up);
  free(c->rope_cs);
  free(c->inv_freq_swa);
  free(c->rope_cs_swa);
  free(c->moe_sel);
  free(c->moe_w);
  free(c->moe_logits);
  free(c->moe_start);
  free(c->moe_slot);
  free(c->moe_tok);
  free(c->moe_x);
  free(c->moe_g);
  free(c->moe_u);
  free(c->cell_of);
  free(c->out_rows);
  free(c->seq_toks);
  free(c->units);
  free(c->op_claim);
  free(c->op_done);
  for (int i = 0; i < CLL__XQ_SLOTS; i++)
    free(c->xq[i]);
  free(c->logits);
  cll_model_release(c->m);
  free(c);
}
