/* forward.c — the batched transformer forward pass (cll_ctx_new, cll_forward
 * and the context half of include/cllama/engine.h).
 *
 * DESIGN. One cll_forward computes every token of a batch (prompt chunks and
 * single decode tokens of several sequences mixed) through every layer. The
 * whole pass runs inside the context's thread team: every thread walks the
 * same list of operations in data-flow order and does its share of each,
 * meeting the others at a spin barrier where the next operation needs the
 * whole result of the previous one. Shares: matrix products split the
 * output rows evenly (the weights are read once, by one thread each);
 * element-wise work splits the tokens; attention splits (token, head) pairs
 * round-robin because causal rows have different lengths. Activations are
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

#include <math.h>
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

/* [*t0, *t1): the share of n items that thread ith of nth takes. */
static void share(int64_t n, int ith, int nth, int64_t *t0, int64_t *t1) {
  *t0 = n * ith / nth;
  *t1 = n * (ith + 1) / nth;
}

static void rmsnorm(float *out, const float *x, const float *w, int64_t n, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; i++)
    ss += (double)x[i] * x[i];
  float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
  for (int64_t i = 0; i < n; i++)
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

static void rope_angles(const cll_ctx *c, double pos, float *cs) {
  int64_t half = c->m->n_rot / 2;
  double scale = c->m->info.rope_freq_scale;
  for (int64_t i = 0; i < half; i++) {
    double th = pos * scale * c->inv_freq[i];
    cs[2 * i] = (float)cos(th);
    cs[2 * i + 1] = (float)sin(th);
  }
}

void cll__rope(const cll_ctx *c, float *x, int64_t n_heads, double pos_delta) {
  float cs[2 * 512];
  int64_t half = c->m->n_rot / 2;
  if (half > 512)
    return; /* rejected at load time (head_dim <= 1024) */
  rope_angles(c, pos_delta, cs);
  rope_heads(c, x, n_heads, cs);
}

/* ---------------------------------------------------------------- matmul glue
 *
 * A weight's input (n_in floats per token) is prepared into the activation
 * format of its type once; several weights reading the same input with the
 * same format share the prepared buffer. */

struct prepared {
  uint32_t act_type[CLL__XQ_SLOTS];
  int n;
};

static int slot_for(const struct prepared *pr, uint32_t wtype) {
  uint32_t at = cll_type_info(wtype)->act_type;
  for (int i = 0; i < pr->n; i++)
    if (pr->act_type[i] == at)
      return i;
  return -1;
}

/* Quantizes this thread's share of the n_tok rows of x for every distinct
 * activation format of the weights ws. The caller puts a barrier after. */
static void prepare(cll_ctx *c, struct prepared *pr, const struct cll__weight *const *ws, int n_w,
                    const float *x, int64_t x_stride, int64_t n_tok, int ith, int nth) {
  pr->n = 0;
  int64_t t0, t1;
  share(n_tok, ith, nth, &t0, &t1);
  for (int i = 0; i < n_w; i++) {
    if (slot_for(pr, ws[i]->type) >= 0)
      continue;
    int s = pr->n++;
    pr->act_type[s] = cll_type_info(ws[i]->type)->act_type;
    size_t stride;
    if (cll_matmul_xq_bytes(ws[i]->type, ws[i]->n_in, n_tok, &stride) == 0 || t1 <= t0)
      continue;
    cll_matmul_prepare(c->K, ws[i]->type, x, x_stride, ws[i]->n_in, t0, t1, c->xq[s], stride);
  }
}

/* y[t][r] for this thread's share of w's rows, every token. */
static void matmul(cll_ctx *c, const struct prepared *pr, const struct cll__weight *w,
                   const float *x, int64_t x_stride, int64_t n_tok, float *y, int64_t y_stride,
                   int ith, int nth) {
  int64_t r0, r1;
  share(w->n_out, ith, nth, &r0, &r1);
  if (r1 <= r0)
    return;
  size_t xq_stride = 0;
  size_t xq_bytes = cll_matmul_xq_bytes(w->type, w->n_in, n_tok, &xq_stride);
  int s = slot_for(pr, w->type);
  cll_matmul_args a = {
      .wtype = w->type,
      .w = w->data,
      .w_stride = w->row_bytes,
      .n_in = w->n_in,
      .r0 = r0,
      .r1 = r1,
      .x = x,
      .x_stride = x_stride,
      .xq = xq_bytes ? c->xq[s] : NULL,
      .xq_stride = xq_stride,
      .n_tok = n_tok,
      .y = y,
      .y_stride = y_stride,
      .scratch = c->ts[ith].mm,
      .scratch_bytes = c->ts[ith].mm_bytes,
  };
  cll_matmul(c->K, &a);
}

/* ---------------------------------------------------------------- attention */

/* Output of query head h of token t (att row) over its sequence's cells. */
static void attend(cll_ctx *c, int il, int64_t t, int64_t h, struct cll__tscratch *ts) {
  const struct cll_model_info *I = &c->m->info;
  const struct cll_batch *b = c->b;
  int64_t D = I->head_dim;
  int64_t kvh = h / (I->n_head / I->n_head_kv);
  const float *q = c->q + t * I->n_head * D + h * D;
  float *out = c->att + t * I->n_head * D + h * D;
  int32_t n = b->pos[t] + 1;
  const int32_t *cells = c->seq_cells + (size_t)b->seq[t] * (size_t)c->p.n_ctx;
  size_t layer = (size_t)c->p.n_ctx * c->kv_row_bytes;
  const uint8_t *kbase = c->k_cache + (size_t)il * layer + (size_t)kvh * D * (c->kv_type == CLL_TYPE_F16 ? 2 : 4);
  const uint8_t *vbase = c->v_cache + (size_t)il * layer + (size_t)kvh * D * (c->kv_type == CLL_TYPE_F16 ? 2 : 4);
  float scale = 1.0f / sqrtf((float)D);
  float *sc = ts->scores;
  float mx = -INFINITY;
  for (int32_t j = 0; j < n; j++) {
    float s;
    c->K->vec_dot[c->kv_type](D, kbase + (size_t)cells[j] * c->kv_row_bytes, q, &s);
    s *= scale;
    sc[j] = s;
    if (s > mx)
      mx = s;
  }
  double sum = 0.0;
  for (int32_t j = 0; j < n; j++) {
    sc[j] = expf(sc[j] - mx);
    sum += sc[j];
  }
  float inv = (float)(1.0 / sum);
  memset(out, 0, (size_t)D * sizeof(float));
  for (int32_t j = 0; j < n; j++) {
    const uint8_t *vr = vbase + (size_t)cells[j] * c->kv_row_bytes;
    const float *v;
    if (c->kv_type == CLL_TYPE_F32) {
      v = (const float *)vr;
    } else {
      c->K->dequant_row[CLL_TYPE_F16](vr, ts->vrow, D);
      v = ts->vrow;
    }
    float w = sc[j] * inv;
    for (int64_t i = 0; i < D; i++)
      out[i] += w * v[i];
  }
}

/* ---------------------------------------------------------------- the pass */

static void store_kv_row(const cll_ctx *c, uint8_t *dst, const float *src) {
  if (c->kv_type == CLL_TYPE_F32) {
    memcpy(dst, src, c->kv_row_bytes);
  } else {
    uint16_t *h = (uint16_t *)dst;
    for (int64_t i = 0; i < c->kv_dim; i++)
      h[i] = cll_fp32_to_fp16(src[i]);
  }
}

static void add_bias(float *x, const struct cll__weight *b, int64_t n) {
  if (b->data == NULL)
    return;
  const float *bv = b->data;
  for (int64_t i = 0; i < n; i++)
    x[i] += bv[i];
}

static float silu(float x) {
  return x / (1.0f + expf(-x));
}

static void forward_worker(void *arg, int ith, int nth) {
  cll_ctx *c = arg;
  const cll_model *m = c->m;
  const struct cll_model_info *I = &m->info;
  const struct cll_batch *b = c->b;
  cll__team *team = c->team;
  const int64_t T = b->n_tokens, E = I->n_embd, D = I->head_dim, F = I->n_ff;
  const int64_t QD = I->n_head * D, KD = c->kv_dim, half = m->n_rot / 2;
  const size_t layer_bytes = (size_t)c->p.n_ctx * c->kv_row_bytes;
  struct prepared pr;
  int64_t t0, t1;
  share(T, ith, nth, &t0, &t1);

  /* Token embeddings and this batch's RoPE angles. */
  for (int64_t t = t0; t < t1; t++) {
    const uint8_t *row = (const uint8_t *)m->tok_embd.data + (size_t)b->tokens[t] * m->tok_embd.row_bytes;
    c->K->dequant_row[m->tok_embd.type](row, c->x + t * E, E);
    rope_angles(c, b->pos[t], c->rope_cs + t * half * 2);
  }

  for (int il = 0; il < I->n_layer; il++) {
    const struct cll__layer *L = &m->layers[il];
    /* attention block */
    for (int64_t t = t0; t < t1; t++)
      rmsnorm(c->xn + t * E, c->x + t * E, L->attn_norm.data, E, I->rms_eps);
    const struct cll__weight *qkv[3] = {&L->wq, &L->wk, &L->wv};
    prepare(c, &pr, qkv, 3, c->xn, E, T, ith, nth);
    cll__team_barrier(team);
    matmul(c, &pr, &L->wq, c->xn, E, T, c->q, QD, ith, nth);
    matmul(c, &pr, &L->wk, c->xn, E, T, c->k, KD, ith, nth);
    matmul(c, &pr, &L->wv, c->xn, E, T, c->v, KD, ith, nth);
    cll__team_barrier(team);
    for (int64_t t = t0; t < t1; t++) {
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
      rope_heads(c, q, I->n_head, c->rope_cs + t * half * 2);
      rope_heads(c, k, I->n_head_kv, c->rope_cs + t * half * 2);
      size_t off = (size_t)il * layer_bytes + (size_t)c->cell_of[t] * c->kv_row_bytes;
      store_kv_row(c, c->k_cache + off, k);
      store_kv_row(c, c->v_cache + off, v);
    }
    cll__team_barrier(team);
    for (int64_t i = ith; i < T * I->n_head; i += nth)
      attend(c, il, i / I->n_head, i % I->n_head, &c->ts[ith]);
    cll__team_barrier(team);
    const struct cll__weight *wo[1] = {&L->wo};
    prepare(c, &pr, wo, 1, c->att, QD, T, ith, nth);
    cll__team_barrier(team);
    matmul(c, &pr, &L->wo, c->att, QD, T, c->xn, E, ith, nth);
    {
      int64_t r0, r1;
      share(E, ith, nth, &r0, &r1);
      for (int64_t t = 0; t < T; t++)
        for (int64_t r = r0; r < r1; r++)
          c->x[t * E + r] += c->xn[t * E + r];
    }
    cll__team_barrier(team);

    /* feed-forward block */
    for (int64_t t = t0; t < t1; t++)
      rmsnorm(c->xn + t * E, c->x + t * E, L->ffn_norm.data, E, I->rms_eps);
    const struct cll__weight *gu[2] = {&L->w_gate, &L->w_up};
    prepare(c, &pr, gu, 2, c->xn, E, T, ith, nth);
    cll__team_barrier(team);
    matmul(c, &pr, &L->w_gate, c->xn, E, T, c->gate, F, ith, nth);
    matmul(c, &pr, &L->w_up, c->xn, E, T, c->up, F, ith, nth);
    {
      int64_t r0, r1;
      share(F, ith, nth, &r0, &r1);
      for (int64_t t = 0; t < T; t++)
        for (int64_t r = r0; r < r1; r++)
          c->gate[t * F + r] = silu(c->gate[t * F + r]) * c->up[t * F + r];
    }
    cll__team_barrier(team);
    const struct cll__weight *dn[1] = {&L->w_down};
    prepare(c, &pr, dn, 1, c->gate, F, T, ith, nth);
    cll__team_barrier(team);
    matmul(c, &pr, &L->w_down, c->gate, F, T, c->xn, E, ith, nth);
    {
      int64_t r0, r1;
      share(E, ith, nth, &r0, &r1);
      for (int64_t t = 0; t < T; t++)
        for (int64_t r = r0; r < r1; r++)
          c->x[t * E + r] += c->xn[t * E + r];
    }
    cll__team_barrier(team);
  }

  /* Output: only the wanted rows, gathered into xn. */
  int64_t o0, o1;
  share(c->n_out, ith, nth, &o0, &o1);
  for (int64_t k = o0; k < o1; k++)
    rmsnorm(c->xn + k * E, c->x + (int64_t)c->out_rows[k] * E, m->out_norm.data, E, I->rms_eps);
  const struct cll__weight *ow[1] = {&m->output};
  prepare(c, &pr, ow, 1, c->xn, E, c->n_out, ith, nth);
  cll__team_barrier(team);
  matmul(c, &pr, &m->output, c->xn, E, c->n_out, c->logits, I->n_vocab, ith, nth);
}

int cll_forward(cll_ctx *c, const struct cll_batch *b, cll_err *err) {
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
  c->n_out = n_out;
  c->b = b;
  cll__team_run(c->team, forward_worker, c);
  c->b = NULL;
  return 0;
}

const float *cll_ctx_logits(const cll_ctx *c, int32_t k) {
  if (k < 0 || k >= c->n_out)
    return NULL;
  return c->logits + (size_t)k * (size_t)c->m->info.n_vocab;
}

const float *cll_ctx_hidden(const cll_ctx *c, int32_t k) {
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
  }
#undef X
  return best;
}

int cll_ctx_new(cll_model *m, const struct cll_ctx_params *p, cll_ctx **out, cll_err *err) {
  *out = NULL;
  const struct cll_model_info *I = &m->info;
  if (p->n_ctx < 1 || p->n_ctx > (1 << 24) || p->n_seq_max < 1 || p->n_seq_max > CLL__MAX_SEQ ||
      p->n_batch_max < 1 || p->n_batch_max > (1 << 16) ||
      (p->kv_type != CLL_KV_F16 && p->kv_type != CLL_KV_F32))
    return cll_err_set(err, CLL_EINVAL,
                       "bad context parameters (n_ctx %lld, n_seq_max %d (<= %d), n_batch_max %d)",
                       (long long)p->n_ctx, p->n_seq_max, CLL__MAX_SEQ, p->n_batch_max);
  if (m->n_rot / 2 > 512)
    return cll_err_set(err, CLL_EUNSUPPORTED, "head_dim %lld too large", (long long)I->head_dim);
  cll_ctx *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  c->m = cll_model_retain(m);
  c->p = *p;
  c->K = cll_kernels_get();
  c->kv_dim = I->n_head_kv * I->head_dim;
  c->kv_type = p->kv_type == CLL_KV_F32 ? CLL_TYPE_F32 : CLL_TYPE_F16;
  c->kv_row_bytes = (size_t)c->kv_dim * (c->kv_type == CLL_TYPE_F32 ? 4 : 2);
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
  c->cell_of = calloc(B, sizeof(int32_t));
  c->out_rows = calloc(B, sizeof(int32_t));
  c->xq_bytes = max_xq(m, p->n_batch_max);
  bool ok = c->inv_freq && c->x && c->xn && c->q && c->k && c->v && c->att && c->gate && c->up &&
            c->rope_cs && c->cell_of && c->out_rows;
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
  for (int i = 0; ok && i < c->p.n_threads; i++) {
    struct cll__tscratch *ts = &c->ts[i];
    ts->mm_bytes = cll_matmul_scratch_bytes(n_in_max, p->n_batch_max);
    ts->mm = xalloc(ts->mm_bytes);
    ts->scores = xalloc((size_t)p->n_ctx * f);
    ts->vrow = xalloc((size_t)I->head_dim * f);
    ok = ts->mm && ts->scores && ts->vrow;
  }
  if (!ok) {
    cll_ctx_free(c);
    return cll_err_set(err, CLL_ENOMEM, "out of memory for the compute buffers");
  }
  /* theta_i = pos * base^(-2i/n_rot), divided by the model's frequency
   * factors when it has them (Llama 3). */
  const float *ff = m->rope_freqs.data;
  for (int64_t i = 0; i < half; i++) {
    c->inv_freq[i] = pow((double)I->rope_freq_base, -2.0 * (double)i / (double)m->n_rot);
    if (ff != NULL)
      c->inv_freq[i] /= (double)ff[i];
  }
  *out = c;
  return 0;
}

void cll_ctx_free(cll_ctx *c) {
  if (c == NULL)
    return;
  cll__team_free(c->team);
  cll__kv_free(c);
  if (c->ts != NULL)
    for (int i = 0; i < c->p.n_threads; i++) {
      free(c->ts[i].mm);
      free(c->ts[i].scores);
      free(c->ts[i].vrow);
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
  free(c->cell_of);
  free(c->out_rows);
  for (int i = 0; i < CLL__XQ_SLOTS; i++)
    free(c->xq[i]);
  free(c->logits);
  cll_model_release(c->m);
  free(c);
}
