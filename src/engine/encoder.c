/* encoder.c — the forward pass of the encoder architectures (bert,
 * nomic-bert; see src/model/encoder.c), behind the same cll_ctx /
 * cll_forward interface as the decoders.
 *
 * DESIGN. A batch holds whole sequences (the scheduler never splits an
 * encoder prompt across steps), each sequence's tokens consecutive, at
 * positions 0..n-1. There is no KV cache: every token attends to every
 * token of its sequence (bidirectional), so a step is complete in itself.
 * Per layer, in data-flow order (llama.cpp's graph for these models):
 *   qkv = Wqkv x (+b) [fused or three products]; rotary on q, k (nomic)
 *   a   = softmax(q k^T / sqrt(d)) v            per sequence and head
 *   x   = LN1(x + Wo a (+b))
 *   f   = gelu(Wup x + b)   or   silu(Wgate x) * (Wup x)   (nomic)
 *   x   = LN2(x + Wdown f (+b))
 * after x = LN0(tok_embd[t] + type_embd[0] + pos_embd[p]). The wanted rows
 * of the last x are the outputs (the scheduler pools them); for a model
 * with rank pooling the classification head (tanh(Wcls h + b), then
 * Wout . + b) is applied to them and the first n_cls_out floats of the
 * row are the scores.
 * Threads: the context's team; each operation is split into equal shares
 * (token rows, matrix rows, or (sequence, head, query chunk) units) and
 * followed by a barrier. The weight products go through cll_matmul, as
 * the decoders' do; attention (short sequences, head_dim 32..64) is plain
 * 8-wide vector loops. Nothing is allocated per forward. */
#include "engine/ctx.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define QCH 64 /* query rows of one attention unit */

struct enc_unit {
  int32_t first; /* batch index of the sequence's first token */
  int32_t n;     /* tokens of the sequence */
  int32_t q0;    /* first query row (relative) of this unit */
  int32_t head;
};

struct cll__enc_ctx {
  int64_t max_tok;  /* n_batch_max */
  float *x;         /* (B, n_embd) residual stream */
  float *tmp;       /* (B, n_embd) projection output */
  float *qkv;       /* (B, 3 n_embd) q | k | v of each token */
  float *att;       /* (B, n_embd) attention output */
  float *up;        /* (B, n_ff) */
  float *gate;      /* (B, n_ff) SwiGLU only */
  float *out;       /* (B, n_embd) outputs of the wanted rows */
  float *head;      /* (B, n_embd) classification head scratch */
  float *rope_cs;   /* (B, head_dim/2, 2) */
  double *inv_freq; /* (head_dim/2) */
  void *xq[2];      /* quantized activations, xq_bytes each */
  size_t xq_bytes;
  void **mm; /* (n_threads) cll_matmul scratch, mm_bytes each */
  size_t mm_bytes;
  float **scores;         /* (n_threads) (QCH, B) */
  struct enc_unit *units; /* (B * n_head / QCH + n_seq * n_head) */
  int32_t n_units;
  int32_t *out_rows; /* (B) */
  int32_t n_out;
  const struct cll_batch *b;
};

/* ---------------------------------------------------------------- helpers */

static void *xalloc(size_t n) {
  void *p = NULL;
  return posix_memalign(&p, 64, n ? n : 64) == 0 ? p : NULL;
}

static void share(int64_t total, int ith, int nth, int64_t align, int64_t *a, int64_t *b) {
  int64_t units = (total + align - 1) / align;
  *a = units * ith / nth * align;
  *b = units * (ith + 1) / nth * align;
  if (*a > total)
    *a = total;
  if (*b > total)
    *b = total;
}

/* LayerNorm of x (n floats) with weight and bias, into out (may alias x). */
static void layernorm(float *out, const float *x, const float *w, const float *bias, int64_t n,
                      float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; i++)
    sum += x[i];
  float mean = (float)(sum / (double)n);
  double ss = 0;
  for (int64_t i = 0; i < n; i++) {
    float d = x[i] - mean;
    ss += (double)d * d;
  }
  float scale = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
  for (int64_t i = 0; i < n; i++)
    out[i] = (x[i] - mean) * scale * w[i] + bias[i];
}

static void add_vec(float *x, const struct cll__weight *b, int64_t n) {
  if (b->data == NULL)
    return;
  const float *v = b->data;
  for (int64_t i = 0; i < n; i++)
    x[i] += v[i];
}

/* F32 -> F16 bits, round to nearest even (what the F16 table below is
 * indexed by). Inline: it runs once per FFN activation. */
static inline uint16_t f32_to_f16_bits(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf, NaN (quiet) */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u) /* rounds beyond 65504 */
    return (uint16_t)(sign | 0x7c00u);
  if (ax < 0x38800000u) { /* below 2^-14: a subnormal half, or 0 */
    if (ax < 0x33000000u)
      return sign;
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u)))
      h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = (ax >> 13) - (112u << 10); /* exponent bias 127 -> 15 */
  const uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u)))
    h++;
  return (uint16_t)(sign | h);
}

/* GELU as llama.cpp computes it for these models (the reference the tests
 * hold us to): the tanh approximation, evaluated on the input rounded to
 * F16 and rounded to F16 again; exact beyond |x| >= 10. Like ggml's CPU
 * backend, a table of all 65536 F16 inputs (built once) makes it one
 * lookup. The rounding moves a reranker's score by about 1e-3, more than
 * the 1e-4 we promise against llama.cpp. */
static float gelu_table[1 << 16];
static pthread_once_t gelu_once = PTHREAD_ONCE_INIT;

static void gelu_init(void) {
  const float c = 0.7978845608028654f; /* sqrt(2/pi) */
  for (uint32_t i = 0; i < (1u << 16); i++) {
    float h = cll_fp16_to_fp32((uint16_t)i);
    float g = 0.5f * h * (1.0f + tanhf(c * h * (1.0f + 0.044715f * h * h)));
    gelu_table[i] = cll_fp16_to_fp32(cll_fp32_to_fp16(g));
  }
}

static inline float gelu(float x) {
  if (x <= -10.0f)
    return 0.0f;
  if (x >= 10.0f)
    return x;
  return gelu_table[f32_to_f16_bits(x)];
}

/* ---------------------------------------------------------------- products */

/* Which activations the two xq slots hold. Every thread keeps its own
 * copy; all threads make the same calls in the same order, so the copies
 * agree. Two slots in turn: a slot is rewritten only after the barrier of
 * the next product, when nobody reads it any more. */
struct pstate {
  const float *src; /* input of the last preparation */
  uint32_t type;    /* its activation type */
  int slot;         /* where it went */
};

/* Quantizes x (n_tok rows, x_stride apart) for w's activation format,
 * this thread's share of the rows; returns the slot, or -1 when w needs no
 * quantized input. reuse: x is unchanged since the last preparation (q, k,
 * v and up, gate read the same input). The caller puts a barrier after. */
static int prep(cll_ctx *c, struct pstate *ps, const struct cll__weight *w, const float *x,
                int64_t x_stride, int64_t n_tok, bool reuse, int ith, int nth) {
  struct cll__enc_ctx *e = c->enc;
  size_t stride;
  if (cll_matmul_xq_bytes(w->type, w->n_in, n_tok, &stride) == 0)
    return -1;
  uint32_t at = cll_type_info(w->type)->act_type;
  if (reuse && ps->src == x && ps->type == at && ps->slot >= 0)
    return ps->slot;
  int s = ps->slot == 0 ? 1 : 0;
  int64_t t0, t1;
  share(n_tok, ith, nth, 1, &t0, &t1);
  if (t1 > t0)
    cll_matmul_prepare(c->K, w->type, x, x_stride, w->n_in, t0, t1, e->xq[s], stride);
  *ps = (struct pstate){x, at, s};
  return s;
}

static void mm(cll_ctx *c, int slot, const struct cll__weight *w, const float *x, int64_t x_stride,
               int64_t n_tok, float *y, int64_t y_stride, int64_t r0, int64_t r1, int ith) {
  struct cll__enc_ctx *e = c->enc;
  if (r1 <= r0)
    return;
  size_t xq_stride = 0;
  cll_matmul_xq_bytes(w->type, w->n_in, n_tok, &xq_stride);
  cll_matmul_args a = {
      .wtype = w->type,
      .w = w->data,
      .w_stride = w->row_bytes,
      .n_in = w->n_in,
      .r0 = r0,
      .r1 = r1,
      .x = x,
      .x_stride = x_stride,
      .xq = slot >= 0 ? e->xq[slot] : NULL,
      .xq_stride = xq_stride,
      .n_tok = n_tok,
      .y = y,
      .y_stride = y_stride,
      .scratch = e->mm[ith],
      .scratch_bytes = e->mm_bytes,
  };
  cll_matmul(c->K, &a);
}

/* y = W x for every token, all threads (rows shared), with a barrier
 * between preparing the input and the product. */
static void product(cll_ctx *c, struct pstate *ps, const struct cll__weight *w, const float *x,
                    int64_t x_stride, int64_t n_tok, float *y, int64_t y_stride, bool reuse,
                    int ith, int nth) {
  int s = prep(c, ps, w, x, x_stride, n_tok, reuse, ith, nth);
  cll__team_barrier(c->team);
  int64_t r0, r1;
  share(w->n_out, ith, nth, 32, &r0, &r1);
  mm(c, s, w, x, x_stride, n_tok, y, y_stride, r0, r1, ith);
}

/* ---------------------------------------------------------------- attention */

/* 4-float vectors (GCC/Clang extensions, no ISA flags: one SSE or NEON
 * register each), two at a time, for the attention loops over head
 * dimensions. */
typedef float v4f __attribute__((vector_size(16)));

static inline float dot(const float *a, const float *b, int64_t n) {
  v4f s0 = {0}, s1 = {0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    v4f x0, y0, x1, y1;
    memcpy(&x0, a + i, 16);
    memcpy(&y0, b + i, 16);
    memcpy(&x1, a + i + 4, 16);
    memcpy(&y1, b + i + 4, 16);
    s0 += x0 * y0;
    s1 += x1 * y1;
  }
  s0 += s1;
  float s = (s0[0] + s0[2]) + (s0[1] + s0[3]);
  for (; i < n; i++)
    s += a[i] * b[i];
  return s;
}

static inline void axpy(float *y, float a, const float *x, int64_t n) {
  const v4f av = {a, a, a, a};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    v4f u, v;
    memcpy(&u, y + i, 16);
    memcpy(&v, x + i, 16);
    u += av * v;
    memcpy(y + i, &u, 16);
  }
  for (; i < n; i++)
    y[i] += a * x[i];
}

/* Up to QCH query rows of one head of one sequence against all its keys:
 * scores, softmax, weighted sum of the values. */
static void attend(cll_ctx *c, const struct enc_unit *u, int ith) {
  struct cll__enc_ctx *e = c->enc;
  const struct cll_model_info *I = &c->m->info;
  const int64_t E = I->n_embd, D = I->head_dim, S = 3 * E;
  const int64_t nq = u->n - u->q0 < QCH ? u->n - u->q0 : QCH;
  const float *q = e->qkv + (int64_t)(u->first + u->q0) * S + u->head * D;
  const float *k = e->qkv + (int64_t)u->first * S + E + u->head * D;
  const float *v = e->qkv + (int64_t)u->first * S + 2 * E + u->head * D;
  float *row = e->scores[ith];
  const float scale = 1.0f / sqrtf((float)D);
  for (int64_t t = 0; t < nq; t++) {
    const float *qt = q + t * S;
    float mx = -INFINITY;
    for (int64_t j = 0; j < u->n; j++) {
      row[j] = dot(qt, k + j * S, D) * scale;
      if (row[j] > mx)
        mx = row[j];
    }
    double sum = 0;
    for (int64_t j = 0; j < u->n; j++) {
      row[j] = expf(row[j] - mx);
      sum += row[j];
    }
    const float inv = (float)(1.0 / sum);
    float *o = e->att + (int64_t)(u->first + u->q0 + t) * E + u->head * D;
    memset(o, 0, (size_t)D * sizeof(float));
    for (int64_t j = 0; j < u->n; j++)
      axpy(o, row[j] * inv, v + j * S, D);
  }
}

/* ---------------------------------------------------------------- the pass */

static void rope(const cll_ctx *c, float *x, const float *cs) {
  const struct cll_model_info *I = &c->m->info;
  const int64_t D = I->head_dim, half = D / 2;
  for (int64_t h = 0; h < I->n_head; h++) {
    float *v = x + h * D;
    for (int64_t i = 0; i < half; i++) {
      float co = cs[2 * i], si = cs[2 * i + 1], x0 = v[i], x1 = v[i + half];
      v[i] = x0 * co - x1 * si;
      v[i + half] = x0 * si + x1 * co;
    }
  }
}

static void enc_worker(void *arg, int ith, int nth) {
  cll_ctx *c = arg;
  struct cll__enc_ctx *e = c->enc;
  const cll_model *m = c->m;
  const struct cll__enc_model *em = m->enc;
  const struct cll_model_info *I = &m->info;
  const struct cll_batch *b = e->b;
  const int64_t T = b->n_tokens, E = I->n_embd, F = I->n_ff, S = 3 * E, half = I->head_dim / 2;
  int64_t t0, t1;
  share(T, ith, nth, 1, &t0, &t1);
  struct pstate ps = {NULL, 0, -1};

  /* x = LN0(tok_embd[t] + type_embd[0] + pos_embd[p]) */
  for (int64_t t = t0; t < t1; t++) {
    float *x = e->x + t * E, *tmp = e->tmp + t * E;
    c->K->dequant_row[m->tok_embd.type](
        (const uint8_t *)m->tok_embd.data + (size_t)b->tokens[t] * m->tok_embd.row_bytes, x, E);
    if (em->type_embd.data != NULL) {
      c->K->dequant_row[em->type_embd.type](em->type_embd.data, tmp, E);
      for (int64_t i = 0; i < E; i++)
        x[i] += tmp[i];
    }
    if (em->pos_embd.data != NULL) {
      c->K->dequant_row[em->pos_embd.type](
          (const uint8_t *)em->pos_embd.data + (size_t)b->pos[t] * em->pos_embd.row_bytes, tmp, E);
      for (int64_t i = 0; i < E; i++)
        x[i] += tmp[i];
    }
    layernorm(x, x, em->tok_norm.data, em->tok_norm_b.data, E, em->norm_eps);
    if (em->rope) {
      float *cs = e->rope_cs + t * half * 2;
      for (int64_t i = 0; i < half; i++) {
        double th = (double)b->pos[t] * e->inv_freq[i];
        cs[2 * i] = (float)cos(th);
        cs[2 * i + 1] = (float)sin(th);
      }
    }
  }
  cll__team_barrier(c->team);

  for (int64_t il = 0; il < I->n_layer; il++) {
    const struct cll__enc_layer *L = &em->layers[il];
    /* q | k | v */
    if (L->wqkv.data != NULL) {
      product(c, &ps, &L->wqkv, e->x, E, T, e->qkv, S, false, ith, nth);
    } else {
      product(c, &ps, &L->wq, e->x, E, T, e->qkv, S, false, ith, nth);
      product(c, &ps, &L->wk, e->x, E, T, e->qkv + E, S, true, ith, nth);
      product(c, &ps, &L->wv, e->x, E, T, e->qkv + 2 * E, S, true, ith, nth);
    }
    cll__team_barrier(c->team);
    for (int64_t t = t0; t < t1; t++) {
      float *r = e->qkv + t * S;
      if (L->wqkv.data != NULL) {
        add_vec(r, &L->bqkv, S);
      } else {
        add_vec(r, &L->bq, E);
        add_vec(r + E, &L->bk, E);
        add_vec(r + 2 * E, &L->bv, E);
      }
      if (em->rope) {
        rope(c, r, e->rope_cs + t * half * 2);
        rope(c, r + E, e->rope_cs + t * half * 2);
      }
    }
    cll__team_barrier(c->team);
    for (int32_t i = ith; i < e->n_units; i += nth)
      attend(c, &e->units[i], ith);
    cll__team_barrier(c->team);
    /* x = LN1(x + Wo a + b) */
    product(c, &ps, &L->wo, e->att, E, T, e->tmp, E, false, ith, nth);
    cll__team_barrier(c->team);
    for (int64_t t = t0; t < t1; t++) {
      float *x = e->x + t * E, *y = e->tmp + t * E;
      add_vec(y, &L->bo, E);
      for (int64_t i = 0; i < E; i++)
        x[i] += y[i];
      layernorm(x, x, L->ln1.data, L->ln1_b.data, E, em->norm_eps);
    }
    cll__team_barrier(c->team);
    /* feed-forward */
    product(c, &ps, &L->up, e->x, E, T, e->up, F, false, ith, nth);
    if (em->swiglu)
      product(c, &ps, &L->gate, e->x, E, T, e->gate, F, true, ith, nth);
    cll__team_barrier(c->team);
    for (int64_t t = t0; t < t1; t++) {
      float *u = e->up + t * F;
      add_vec(u, &L->up_b, F);
      if (em->swiglu) {
        const float *g = e->gate + t * F;
        for (int64_t i = 0; i < F; i++)
          u[i] *= g[i] / (1.0f + expf(-g[i]));
      } else {
        for (int64_t i = 0; i < F; i++)
          u[i] = gelu(u[i]);
      }
    }
    cll__team_barrier(c->team);
    product(c, &ps, &L->down, e->up, F, T, e->tmp, E, false, ith, nth);
    cll__team_barrier(c->team);
    for (int64_t t = t0; t < t1; t++) {
      float *x = e->x + t * E, *y = e->tmp + t * E;
      add_vec(y, &L->down_b, E);
      for (int64_t i = 0; i < E; i++)
        x[i] += y[i];
      layernorm(x, x, L->ln2.data, L->ln2_b.data, E, em->norm_eps);
    }
    cll__team_barrier(c->team);
  }

  /* Outputs: the wanted rows, through the classification head for rank
   * pooling (one thread: a handful of rows). */
  if (ith != 0)
    return;
  const int64_t n_out = e->n_out;
  for (int64_t k = 0; k < n_out; k++)
    memcpy(e->out + k * E, e->x + (int64_t)e->out_rows[k] * E, (size_t)E * sizeof(float));
  if (I->pooling != 4 || n_out == 0)
    return;
  const float *h = e->out;
  if (em->cls.data != NULL) {
    int s = prep(c, &ps, &em->cls, h, E, n_out, false, 0, 1);
    mm(c, s, &em->cls, h, E, n_out, e->head, E, 0, E, 0);
    for (int64_t k = 0; k < n_out; k++) {
      float *r = e->head + k * E;
      add_vec(r, &em->cls_b, E);
      for (int64_t i = 0; i < E; i++)
        r[i] = tanhf(r[i]);
    }
    h = e->head;
  }
  if (em->cls_out.data != NULL) {
    const int64_t C = I->n_cls_out;
    int s = prep(c, &ps, &em->cls_out, h, E, n_out, false, 0, 1);
    float *res = e->tmp; /* (n_out, C) */
    mm(c, s, &em->cls_out, h, E, n_out, res, C, 0, C, 0);
    for (int64_t k = 0; k < n_out; k++) {
      float *r = e->out + k * E;
      memset(r, 0, (size_t)E * sizeof(float));
      memcpy(r, res + k * C, (size_t)C * sizeof(float));
      add_vec(r, &em->cls_out_b, C);
    }
  } else if (h != e->out) {
    memcpy(e->out, h, (size_t)(n_out * E) * sizeof(float));
  }
}

int cll__encode(cll_ctx *c, const struct cll_batch *b, cll_err *err) {
  struct cll__enc_ctx *e = c->enc;
  const struct cll_model_info *I = &c->m->info;
  if (b == NULL || b->n_tokens <= 0 || b->n_tokens > c->p.n_batch_max || b->tokens == NULL ||
      b->pos == NULL || b->seq == NULL)
    return cll_err_set(err, CLL_EINVAL, "batch of %d tokens (1..%d allowed)", b ? b->n_tokens : 0,
                       c->p.n_batch_max);
  /* Whole sequences, each one's tokens consecutive at positions 0..n-1. */
  int32_t n_out = 0, n_units = 0;
  uint64_t seen[(CLL__MAX_SEQ + 63) / 64] = {0};
  for (int32_t i = 0; i < b->n_tokens;) {
    int32_t s = b->seq[i], j = i;
    if (s < 0 || s >= c->p.n_seq_max)
      return cll_err_set(err, CLL_EINVAL, "sequence id %d out of range (0..%d)", s,
                         c->p.n_seq_max - 1);
    if (seen[s / 64] >> (s % 64) & 1)
      return cll_err_set(err, CLL_EINVAL, "an encoder batch needs each sequence's tokens together");
    seen[s / 64] |= 1ull << (s % 64);
    for (; j < b->n_tokens && b->seq[j] == s; j++) {
      if (b->pos[j] != j - i)
        return cll_err_set(err, CLL_EINVAL,
                           "an encoder batch needs whole sequences "
                           "(positions 0..n-1 in order)");
      if (b->tokens[j] < 0 || b->tokens[j] >= I->n_vocab)
        return cll_err_set(err, CLL_EINVAL, "token %d is not in the vocabulary (%lld tokens)",
                           b->tokens[j], (long long)I->n_vocab);
      if (b->want ? b->want[j] != 0 : j == b->n_tokens - 1)
        e->out_rows[n_out++] = j;
    }
    if (c->m->enc->pos_embd.data != NULL && j - i > c->m->enc->pos_embd.n_out)
      return cll_err_set(err, CLL_EINVAL,
                         "sequence of %d tokens is longer than the model's "
                         "%lld positions",
                         j - i, (long long)c->m->enc->pos_embd.n_out);
    for (int64_t h = 0; h < I->n_head; h++)
      for (int32_t q0 = 0; q0 < j - i; q0 += QCH)
        e->units[n_units++] = (struct enc_unit){i, j - i, q0, (int32_t)h};
    i = j;
  }
  e->n_units = n_units;
  e->n_out = n_out;
  e->b = b;
  int n_active = (double)I->n_params * b->n_tokens < 8e6 ? 1 : c->p.n_threads;
  cll__team_run(c->team, n_active, enc_worker, c);
  e->b = NULL;
  return 0;
}

const float *cll__enc_hidden(const cll_ctx *c, int32_t k) {
  if (k < 0 || k >= c->enc->n_out)
    return NULL;
  return c->enc->out + (size_t)k * (size_t)c->m->info.n_embd;
}

void cll__enc_ctx_free(cll_ctx *c) {
  struct cll__enc_ctx *e = c->enc;
  if (e != NULL) {
    free(e->x);
    free(e->tmp);
    free(e->qkv);
    free(e->att);
    free(e->up);
    free(e->gate);
    free(e->out);
    free(e->head);
    free(e->rope_cs);
    free(e->inv_freq);
    free(e->xq[0]);
    free(e->xq[1]);
    for (int i = 0; e->mm && i < c->p.n_threads; i++)
      free(e->mm[i]);
    for (int i = 0; e->scores && i < c->p.n_threads; i++)
      free(e->scores[i]);
    free(e->mm);
    free(e->scores);
    free(e->units);
    free(e->out_rows);
    free(e);
  }
  cll__team_free(c->team);
  cll_model_release(c->m);
  free(c);
}

static size_t max_xq(const cll_model *m, int64_t n_tok) {
  size_t best = 0, stride;
  const struct cll__enc_model *em = m->enc;
  const struct cll__weight *ws[] = {&em->cls, &em->cls_out};
  for (size_t i = 0; i < 2; i++)
    if (ws[i]->data) {
      size_t s = cll_matmul_xq_bytes(ws[i]->type, ws[i]->n_in, n_tok, &stride);
      best = s > best ? s : best;
    }
  for (int64_t il = 0; il < m->info.n_layer; il++) {
    const struct cll__enc_layer *L = &em->layers[il];
    const struct cll__weight *lw[] = {&L->wqkv, &L->wq, &L->wk,   &L->wv,
                                      &L->wo,   &L->up, &L->gate, &L->down};
    for (size_t i = 0; i < CLL_ARRAY_LEN(lw); i++)
      if (lw[i]->data) {
        size_t s = cll_matmul_xq_bytes(lw[i]->type, lw[i]->n_in, n_tok, &stride);
        best = s > best ? s : best;
      }
  }
  return best;
}

int cll__enc_ctx_new(cll_model *m, const struct cll_ctx_params *p, cll_ctx **out, cll_err *err) {
  *out = NULL;
  const struct cll_model_info *I = &m->info;
  if (p->n_seq_max < 1 || p->n_seq_max > CLL__MAX_SEQ || p->n_batch_max < 1 ||
      p->n_batch_max > (1 << 16))
    return cll_err_set(err, CLL_EINVAL,
                       "bad context parameters (n_seq_max %d (<= %d), "
                       "n_batch_max %d)",
                       p->n_seq_max, CLL__MAX_SEQ, p->n_batch_max);
  cll_ctx *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  c->m = cll_model_retain(m);
  c->p = *p;
  c->K = cll_kernels_get();
  struct cll__enc_ctx *e = c->enc = calloc(1, sizeof(*e));
  int rc = e ? cll__team_new(p->n_threads, &c->team) : CLL_ENOMEM;
  if (rc) {
    cll__enc_ctx_free(c);
    return cll_err_set(err, rc, "cannot start compute threads");
  }
  c->p.n_threads = cll__team_size(c->team);
  const size_t B = (size_t)p->n_batch_max, Ez = (size_t)I->n_embd, Fz = (size_t)I->n_ff,
               f = sizeof(float), half = (size_t)I->head_dim / 2;
  e->max_tok = p->n_batch_max;
  e->x = xalloc(B * Ez * f);
  e->tmp = xalloc(B * Ez * f);
  e->qkv = xalloc(B * 3 * Ez * f);
  e->att = xalloc(B * Ez * f);
  e->up = xalloc(B * Fz * f);
  e->gate = m->enc->swiglu ? xalloc(B * Fz * f) : NULL;
  e->out = xalloc(B * Ez * f);
  e->head = xalloc(B * Ez * f);
  e->rope_cs = xalloc(B * (half ? half : 1) * 2 * f);
  e->inv_freq = calloc(half ? half : 1, sizeof(double));
  e->units = calloc(B * (size_t)I->n_head / QCH + (size_t)p->n_seq_max * (size_t)I->n_head + 1,
                    sizeof(*e->units));
  e->out_rows = calloc(B, sizeof(int32_t));
  e->xq_bytes = max_xq(m, p->n_batch_max);
  e->xq[0] = xalloc(e->xq_bytes);
  e->xq[1] = xalloc(e->xq_bytes);
  e->mm = calloc((size_t)c->p.n_threads, sizeof(*e->mm));
  e->scores = calloc((size_t)c->p.n_threads, sizeof(*e->scores));
  int64_t n_in_max = I->n_ff > I->n_embd ? I->n_ff : I->n_embd;
  e->mm_bytes = cll_matmul_scratch_bytes(n_in_max, p->n_batch_max > QCH ? p->n_batch_max : QCH);
  bool ok = e->x && e->tmp && e->qkv && e->att && e->up && (e->gate || !m->enc->swiglu) && e->out &&
            e->head && e->rope_cs && e->inv_freq && e->units && e->out_rows && e->xq[0] &&
            e->xq[1] && e->mm && e->scores;
  for (int i = 0; ok && i < c->p.n_threads; i++)
    ok = (e->mm[i] = xalloc(e->mm_bytes)) != NULL && (e->scores[i] = xalloc(QCH * B * f)) != NULL;
  if (!ok) {
    cll__enc_ctx_free(c);
    return cll_err_set(err, CLL_ENOMEM, "out of memory for the compute buffers");
  }
  pthread_once(&gelu_once, gelu_init);
  for (size_t i = 0; i < half; i++)
    e->inv_freq[i] = pow((double)I->rope_freq_base, -2.0 * (double)i / (double)I->head_dim);
  *out = c;
  return 0;
}
