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

typedef double v2d __attribute__((vector_size(16)));
typedef float v4f __attribute__((vector_size(16)));

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

/* ---------------------------------------------------------------- the pass */

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

static void gelu_fill(void) {
  for (uint32_t h = 0; h < (1u << 16); h++) {
    float x = cll_fp16_to_fp32((uint16_t)h);
    float g = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * x * (1.0f + 0.044715f * x * x)));
    gelu_table[h] = cll_fp32_to_fp16(g);
  }
}

void cll__gelu_init(void) {
  pthread_once(&gelu_once, gelu_fill);
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
static void post_norm_add(struct worker *w, cll_ctx *c, const struct cll__weight *norm, int64_t T) {
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

/* The T rows of x prepared for the weights ws (prepare), over token
 * chunks, then pr set up for them in every thread. */
static void prepare_all(struct worker *w, struct prepared *pr, const struct cll__weight *const *ws,
                        int n_w, const float *x, int64_t x_stride, int64_t T) {
  int64_t a0, a1;
  int32_t n = tok_chunks(T, w->nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(T, i, n, 1, &a0, &a1);
    prepare(w->c, pr, ws, n_w, x, x_stride, T, a0, a1, w->c->xq);
  }
  op_end(w, n);
  prepare(w->c, pr, ws, n_w, x, x_stride, T, 0, 0, w->c->xq);
}

/* x += W in for the T token rows (in: n_in floats a row; gemma: x +=
 * rmsnorm(W in) * post): in is quantized over token chunks, then the
 * product runs over row chunks with the residual add. */
static void proj_add(struct worker *w, struct prepared *pr, const struct cll__weight *W,
                     const float *in, int64_t n_in, int64_t T, const struct cll__weight *post) {
  cll_ctx *c = w->c;
  const int64_t E = c->m->info.n_embd;
  const bool gemma = c->m->arch->gemma;
  const struct cll__weight *ws[1] = {W};
  int64_t a0, a1;
  prepare_all(w, pr, ws, 1, in, n_in, T);
  int32_t n = row_chunks(E, w->nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(E, i, n, ROW_ALIGN, &a0, &a1);
    matmul(c, pr, W, in, n_in, T, c->xn, E, a0, a1, w->ith);
    if (!gemma)
      for (int64_t t = 0; t < T; t++)
        add_to(c->x + t * E + a0, c->xn + t * E + a0, a1 - a0);
  }
  op_end(w, n);
  if (gemma)
    post_norm_add(w, c, post, T);
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
      cll__swiglu(c->moe_g + s_ * FE + a0, c->moe_u + s_ * FE + a0, a1 - a0);
  }
  op_end(w, n);

  const struct cll__weight *d0[1] = {&L->exp_down[0]};
  prepare_all(w, &pr, d0, 1, c->moe_g, FE, S);
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
    const struct cll__weight *gu[2] = {&L->w_gate, &L->w_up};

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
      cll__store_kv(c, il, a0, a1);
    }
    op_end(w, n);

    /* attention: one chunk per (unit, KV head) */
    n = c->n_units * (int32_t)I->n_head_kv;
    FOR_CHUNKS(w, n, i)
    cll__attend(c, il, &c->units[i / I->n_head_kv], i % I->n_head_kv, &c->ts[ith]);
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
    proj_add(w, &pr, &L->wo, c->att, QD, T, &L->attn_post_norm);

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
          cll__swiglu(c->gate + t * F + a0, c->up + t * F + a0, a1 - a0);
    }
    op_end(w, n);

    /* x += Wdown gate (gemma: x += rmsnorm(Wdown gate) * ffn_post_norm) */
    proj_add(w, &pr, &L->w_down, c->gate, F, T, &L->ffn_post_norm);
  }

  /* Output: only the wanted rows, normalized into xn (kept for
   * cll_ctx_hidden). */
  const struct cll__weight *ow[1] = {&m->output};
  int64_t n_out = c->n_out;
  n = tok_chunks(n_out, nth);
  FOR_CHUNKS(w, n, i) {
    chunk_range(n_out, i, n, 1, &a0, &a1);
    for (int64_t k = a0; k < a1; k++)
      rmsnorm(c->xn + k * E, c->x + (compacted ? k : (int64_t)c->out_rows[k]) * E, m->out_norm.data,
              E, I->rms_eps);
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
    return cll_err_set(err, CLL_EINVAL, "batch of %d tokens (1..%d allowed)", b ? b->n_tokens : 0,
                       c->p.n_batch_max);
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
    float *l = cll__xalloc((size_t)n_out * (size_t)I->n_vocab * sizeof(float));
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
