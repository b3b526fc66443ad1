/* context.c — a decoder context's life: its default parameters, the
 * buffers cll_ctx_new sizes once (activations, scratch, KV pool, RoPE
 * frequencies) and cll_ctx_free. The pass that uses them is forward.c. */
#include "engine/ctx.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

void *cll__xalloc(size_t n) {
  /* 64-byte aligned, so SIMD kernels and rows start on cache lines. */
  void *p = NULL;
  if (posix_memalign(&p, 64, n ? (n + 63) / 64 * 64 : 64) != 0)
    return NULL;
  return p;
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
      s_ = cll_matmul_xq_bytes(L->exp_down[0].type, L->exp_down[0].n_in, n_tok * m->n_expert_used,
                               &stride);
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
    cll__gelu_init();
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
  c->x = cll__xalloc(B * (size_t)I->n_embd * f);
  c->xn = cll__xalloc(B * (size_t)I->n_embd * f);
  c->q = cll__xalloc(B * (size_t)(I->n_head * I->head_dim) * f);
  c->k = cll__xalloc(B * (size_t)c->kv_dim * f);
  c->v = cll__xalloc(B * (size_t)c->kv_dim * f);
  c->att = cll__xalloc(B * (size_t)(I->n_head * I->head_dim) * f);
  c->gate = cll__xalloc(B * (size_t)I->n_ff * f);
  c->up = cll__xalloc(B * (size_t)I->n_ff * f);
  c->rope_cs = cll__xalloc(B * (size_t)(half ? half : 1) * 2 * f);
  c->inv_freq_swa = calloc((size_t)(half ? half : 1), sizeof(double));
  c->rope_cs_swa = cll__xalloc(B * (size_t)(half ? half : 1) * 2 * f);
  bool moe_ok = true;
  if (m->arch->moe) {
    size_t X = (size_t)m->n_expert, K = (size_t)m->n_expert_used;
    c->moe_sel = calloc(B * K, sizeof(int32_t));
    c->moe_w = cll__xalloc(B * K * f);
    c->moe_logits = cll__xalloc(B * X * f);
    c->moe_start = calloc(2 * X + 2, sizeof(int32_t)); /* starts, then the active experts */
    c->moe_slot = calloc(B * K, sizeof(int32_t));
    c->moe_tok = calloc(B * K, sizeof(int32_t));
    c->moe_x = cll__xalloc(B * K * (size_t)I->n_embd * f);
    c->moe_g = cll__xalloc(B * K * (size_t)m->n_ff_exp * f);
    c->moe_u = cll__xalloc(B * K * (size_t)m->n_ff_exp * f);
    moe_ok = c->moe_sel && c->moe_w && c->moe_logits && c->moe_start && c->moe_slot && c->moe_tok &&
             c->moe_x && c->moe_g && c->moe_u;
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
    ok = (c->xq[i] = cll__xalloc(c->xq_bytes)) != NULL;
  /* Logits for one row per sequence up front (the usual decode step). */
  c->logits_rows = p->n_seq_max < p->n_batch_max ? p->n_seq_max : p->n_batch_max;
  ok = ok && (c->logits = cll__xalloc((size_t)c->logits_rows * (size_t)I->n_vocab * f)) != NULL;
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
    ts->mm = cll__xalloc(ts->mm_bytes);
    ts->qg = cll__xalloc(Q * D * f);
    ts->og = cll__xalloc(Q * D * f);
    ts->scores = cll__xalloc(Q * (size_t)p->n_ctx * f);
    ts->runs = cll__xalloc(((size_t)p->n_ctx + 1) * sizeof(int32_t));
    ts->cellv = cll__xalloc((size_t)p->n_ctx * sizeof(int32_t));
    ts->vg = cll__xalloc((size_t)p->n_ctx * D * c->kv_elt);
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
    c->inv_freq_swa[i] = m->n_swa > 0
                             ? pow((double)m->swa_freq_base, -2.0 * (double)i / (double)m->n_rot)
                             : c->inv_freq[i];
  }
  *out = c;
  return 0;
}

int cll_ctx_n_threads(const cll_ctx *c) {
  return c->p.n_threads;
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
