/* model.c — loading a transformer from a GGUF file (cll_model_load and the
 * rest of the model half of include/cllama/engine.h).
 *
 * Design: the architectures cllama knows are rows of arch_table. Loading
 * reads the hyper-parameters under "<arch>." keys, then looks up every
 * tensor the architecture needs by its GGUF name and checks its type
 * (something the kernels can compute with) and its shape (against the
 * hyper-parameters) before any compute can touch it. Weights stay in the
 * read-only mapping, except the matrices the kernel table wants repacked
 * (see pack_weights). */
#include "model/model.h"

#include "engine/threads.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct cll__arch arch_table[] = {
    {.name = "llama", .tied_output = true},
    {.name = "qwen2", .rope_neox = true, .qkv_bias = true, .tied_output = true},
    {.name = "qwen3", .rope_neox = true, .qk_norm = true, .tied_output = true},
    {.name = "qwen3moe", .rope_neox = true, .qk_norm = true, .tied_output = true, .moe = true},
    /* Gemma 2: every other layer local (window 4096 unless the file says),
     * attention and final logit soft-capping. */
    {.name = "gemma2",
     .rope_neox = true,
     .tied_output = true,
     .gemma = true,
     .swa_period = 2,
     .swa_default = 4096,
     .attn_softcap = 50.0f,
     .final_softcap = 30.0f},
    /* Gemma 3: five local layers to one global when the file has a
     * sliding window; local layers rotate with base rope.freq_base_swa
     * (10000) and no scaling. */
    {.name = "gemma3",
     .rope_neox = true,
     .qk_norm = true,
     .tied_output = true,
     .gemma = true,
     .swa_period = 6},
    /* Phi-3 / Phi-4: fused QKV and gate/up; LongRoPE factors when present.
     * Its sliding_window key is ignored, as llama.cpp does. */
    {.name = "phi3", .rope_neox = true, .tied_output = true, .fused = true},
};

static const struct cll__arch *find_arch(const char *name) {
  for (size_t i = 0; i < CLL_ARRAY_LEN(arch_table); i++)
    if (strcmp(arch_table[i].name, name) == 0)
      return &arch_table[i];
  return NULL;
}

/* "<arch>.<suffix>" (in L->key; valid until the next call). */
const char *cll__loader_key(struct cll__loader *L, const char *suffix) {
  snprintf(L->key, sizeof(L->key), "%s.%s", L->m->info.arch, suffix);
  return L->key;
}

int cll__loader_int(struct cll__loader *L, const char *suffix, bool required, int64_t dflt,
                    int64_t *out) {
  const char *k = cll__loader_key(L, suffix);
  int rc = cll_gguf_get_i64(L->m->gguf, k, out);
  if (rc == CLL_ENOENT && !required) {
    *out = dflt;
    return 0;
  }
  if (rc == CLL_ENOENT)
    return cll_err_set(L->err, CLL_EFORMAT, "model metadata lacks %s", k);
  if (rc)
    return cll_err_set(L->err, CLL_EFORMAT, "model metadata %s is not an integer", k);
  if (*out <= 0 || *out > (1 << 24))
    return cll_err_set(L->err, CLL_EFORMAT, "model metadata %s = %" PRId64 " is out of range", k,
                       *out);
  return 0;
}

int cll__loader_float(struct cll__loader *L, const char *suffix, float dflt, float *out) {
  const char *k = cll__loader_key(L, suffix);
  int rc = cll_gguf_get_f32(L->m->gguf, k, out);
  if (rc == CLL_ENOENT) {
    *out = dflt;
    return 0;
  }
  if (rc || !(*out > 0.0f) || *out > 1e30f)
    return cll_err_set(L->err, CLL_EFORMAT, "model metadata %s is not a positive float", k);
  return 0;
}

int cll__loader_weight(struct cll__loader *L, const char *name, int64_t n_in, int64_t n_out,
                       bool required, struct cll__weight *w) {
  memset(w, 0, sizeof(*w));
  const cll_gguf_tensor *t = cll_gguf_find_tensor(L->m->gguf, name);
  if (t == NULL) {
    if (!required)
      return 0;
    return cll_err_set(L->err, CLL_EFORMAT, "model lacks tensor %s", name);
  }
  bool vec = n_out == 0;
  if (n_out < 0 && t->n_dims == 2)
    n_out = (int64_t)t->ne[1];
  if (t->n_dims != (vec ? 1u : 2u) || t->ne[0] != (uint64_t)n_in ||
      (!vec && (n_out <= 0 || n_out > (1 << 24) || t->ne[1] != (uint64_t)n_out)))
    return cll_err_set(L->err, CLL_EFORMAT,
                       "tensor %s has shape [%" PRIu64 ", %" PRIu64 "], expected [%" PRId64
                       ", %" PRId64 "]",
                       name, t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, n_in, vec ? 1 : n_out);
  const struct cll_type_info *ti = cll_type_info(t->type);
  const cll_kernels *K = cll_kernels_get();
  if (vec ? t->type != CLL_TYPE_F32
          : ti == NULL || K->vec_dot[t->type] == NULL || K->dequant_row[t->type] == NULL)
    return cll_err_set(L->err, CLL_EUNSUPPORTED, "tensor %s has type %s (%" PRIu32 "), %s", name,
                       ti ? ti->name : "unknown", t->type,
                       vec ? "expected F32" : "which cllama cannot compute with");
  w->data = t->data;
  w->type = t->type;
  w->n_in = n_in;
  w->n_out = vec ? 1 : n_out;
  w->row_bytes = cll_row_bytes(t->type, n_in);
  return 0;
}

/* What the table's flags need beyond the common keys. */
static int load_arch_hparams(struct cll__loader *L) {
  cll_model *m = L->m;
  const struct cll__arch *A = m->arch;
  struct cll_model_info *I = &m->info;
  int rc;
  int64_t v;
  m->layers = calloc((size_t)I->n_layer, sizeof(*m->layers));
  if (m->layers == NULL)
    return cll_err_set(L->err, CLL_ENOMEM, "out of memory");
  m->attn_scale = 1.0f / sqrtf((float)I->head_dim);
  m->rope_attn_factor = 1.0f;
  if (A->gemma && ((strcmp(A->name, "gemma2") == 0 && I->n_layer == 46) ||
                   (strcmp(A->name, "gemma3") == 0 && I->n_layer == 62)))
    m->attn_scale = 1.0f / sqrtf((float)(I->n_embd / I->n_head)); /* 27B: llama.cpp's rule */
  if ((rc = cll__loader_float(L, "attn_logit_softcapping", A->attn_softcap, &m->attn_softcap)) ||
      (rc = cll__loader_float(L, "final_logit_softcapping", A->final_softcap, &m->final_softcap)))
    return rc;
  if (A->swa_period > 0) {
    int64_t win, period;
    if ((rc = cll__loader_int(L, "attention.sliding_window", false, A->swa_default, &win)) ||
        (rc =
             cll__loader_int(L, "attention.sliding_window_pattern", false, A->swa_period, &period)))
      return rc;
    m->n_swa = win;
    if (win > 0)
      for (int64_t il = 0; il < I->n_layer; il++)
        m->layers[il].swa = il % period < period - 1;
    /* gemma3's local layers have their own base (10000 unless the file
     * says) and no scaling; gemma2's use the global ones. */
    bool own = strcmp(A->name, "gemma3") == 0;
    if ((rc = cll__loader_float(L, "rope.freq_base_swa", own ? 10000.0f : I->rope_freq_base,
                                &m->swa_freq_base)))
      return rc;
    m->swa_freq_scale = own ? 1.0f : I->rope_freq_scale;
  }
  if (A->fused) {
    if ((rc = cll__loader_float(L, "rope.scaling.attn_factor", 1.0f, &m->rope_attn_factor)) ||
        (rc = cll__loader_int(L, "rope.scaling.original_context_length", false, I->n_ctx_train,
                              &m->rope_orig_ctx)))
      return rc;
  }
  if (A->moe) {
    if ((rc = cll__loader_int(L, "expert_count", true, 0, &m->n_expert)) ||
        (rc = cll__loader_int(L, "expert_used_count", true, 0, &m->n_expert_used)))
      return rc;
    if (m->n_expert_used > m->n_expert || m->n_expert_used > 64)
      return cll_err_set(L->err, CLL_EFORMAT, "%" PRId64 " of %" PRId64 " experts used",
                         m->n_expert_used, m->n_expert);
    if ((rc = cll__loader_int(L, "expert_feed_forward_length", false, I->n_ff / m->n_expert_used,
                              &v)))
      return rc;
    m->n_ff_exp = v;
  }
  return 0;
}

static int load_hparams(struct cll__loader *L) {
  cll_model *m = L->m;
  struct cll_model_info *I = &m->info;
  int64_t v;
  int rc;
  if ((rc = cll__loader_int(L, "embedding_length", true, 0, &I->n_embd)) ||
      (rc = cll__loader_int(L, "block_count", true, 0, &I->n_layer)) ||
      (rc = cll__loader_int(L, "attention.head_count", true, 0, &I->n_head)) ||
      (rc = cll__loader_int(L, "attention.head_count_kv", false, I->n_head, &I->n_head_kv)) ||
      (rc = cll__loader_int(L, "feed_forward_length", true, 0, &I->n_ff)) ||
      (rc = cll__loader_int(L, "context_length", false, 2048, &I->n_ctx_train)))
    return rc;
  if (I->n_head % I->n_head_kv != 0)
    return cll_err_set(L->err, CLL_EFORMAT, "%" PRId64 " heads cannot share %" PRId64 " KV heads",
                       I->n_head, I->n_head_kv);
  if ((rc = cll__loader_int(L, "attention.key_length", false, I->n_embd / I->n_head, &I->head_dim)))
    return rc;
  if ((rc = cll__loader_int(L, "attention.value_length", false, I->head_dim, &v)))
    return rc;
  if (v != I->head_dim)
    return cll_err_set(L->err, CLL_EUNSUPPORTED,
                       "value_length %" PRId64 " differs from key_length %" PRId64, v, I->head_dim);
  if ((rc = cll__loader_int(L, "rope.dimension_count", false, I->head_dim, &m->n_rot)))
    return rc;
  if (m->n_rot > I->head_dim || m->n_rot % 2 != 0)
    return cll_err_set(L->err, CLL_EFORMAT,
                       "rope.dimension_count %" PRId64 " does not fit head_dim %" PRId64, m->n_rot,
                       I->head_dim);
  if ((rc = cll__loader_float(L, "attention.layer_norm_rms_epsilon", 1e-5f, &I->rms_eps)) ||
      (rc = cll__loader_float(L, "rope.freq_base", 10000.0f, &I->rope_freq_base)))
    return rc;
  /* Linear RoPE scaling: positions are multiplied by 1/factor. */
  float factor = 1.0f;
  cll_gguf_str st;
  bool have_type = cll_gguf_get_str(m->gguf, cll__loader_key(L, "rope.scaling.type"), &st) == 0;
  if (have_type && !(st.len == 6 && memcmp(st.ptr, "linear", 6) == 0) &&
      !(st.len == 4 && memcmp(st.ptr, "none", 4) == 0))
    return cll_err_set(L->err, CLL_EUNSUPPORTED, "RoPE scaling \"%.*s\" is not supported",
                       (int)(st.len > 32 ? 32 : st.len), st.ptr);
  if (!have_type || st.len == 6) {
    if ((rc = cll__loader_float(L, "rope.scaling.factor", 1.0f, &factor)))
      return rc;
    if (factor == 1.0f && (rc = cll__loader_float(L, "rope.scale_linear", 1.0f, &factor)))
      return rc;
  }
  I->rope_freq_scale = 1.0f / factor;
  I->rope_neox = m->arch->rope_neox;
  if ((rc = load_arch_hparams(L)))
    return rc;
  int64_t pool;
  if (cll_gguf_get_i64(m->gguf, cll__loader_key(L, "pooling_type"), &pool) == 0 && pool >= 0 &&
      pool <= 3)
    I->pooling = (int)pool;
  uint32_t ft;
  if (cll_gguf_get_u32(m->gguf, "general.file_type", &ft) == 0)
    I->file_type = ft;
  return 0;
}

/* out = rows [r0, r0 + n) of w. */
static void view_rows(const struct cll__weight *w, int64_t r0, int64_t n, struct cll__weight *out) {
  *out = *w;
  out->data = (const uint8_t *)w->data + (size_t)r0 * w->row_bytes;
  out->n_out = n;
}

/* A 3-D expert tensor [n_in, n_out, n_exp]: one n_out x n_in view per
 * expert (expert e's rows follow expert e-1's). */
static int get_experts(struct cll__loader *L, const char *name, int64_t n_in, int64_t n_out,
                       int64_t n_exp, struct cll__weight *views) {
  const cll_gguf_tensor *t = cll_gguf_find_tensor(L->m->gguf, name);
  if (t == NULL)
    return cll_err_set(L->err, CLL_EFORMAT, "model lacks tensor %s", name);
  if (t->n_dims != 3 || t->ne[0] != (uint64_t)n_in || t->ne[1] != (uint64_t)n_out ||
      t->ne[2] != (uint64_t)n_exp)
    return cll_err_set(L->err, CLL_EFORMAT,
                       "tensor %s has shape [%" PRIu64 ", %" PRIu64 ", %" PRIu64
                       "], expected [%" PRId64 ", %" PRId64 ", %" PRId64 "]",
                       name, t->ne[0], t->ne[1], t->ne[2], n_in, n_out, n_exp);
  const struct cll_type_info *ti = cll_type_info(t->type);
  if (ti == NULL || cll_kernels_get()->vec_dot[t->type] == NULL)
    return cll_err_set(L->err, CLL_EUNSUPPORTED,
                       "tensor %s has type %s (%" PRIu32 "), which "
                       "cllama cannot compute with",
                       name, ti ? ti->name : "unknown", t->type);
  struct cll__weight all = {.data = t->data,
                            .type = t->type,
                            .n_in = n_in,
                            .n_out = n_out * n_exp,
                            .row_bytes = cll_row_bytes(t->type, n_in)};
  for (int64_t e = 0; e < n_exp; e++)
    view_rows(&all, e * n_out, n_out, &views[e]);
  return 0;
}

static int load_weights(struct cll__loader *L) {
  cll_model *m = L->m;
  const struct cll_model_info *I = &m->info;
  const cll_gguf_tensor *te = cll_gguf_find_tensor(m->gguf, "token_embd.weight");
  if (te == NULL)
    return cll_err_set(L->err, CLL_EFORMAT, "model lacks tensor token_embd.weight");
  if (te->n_dims != 2 || te->ne[1] > (1u << 24))
    return cll_err_set(L->err, CLL_EFORMAT, "token_embd.weight has a bad shape");
  m->info.n_vocab = (int64_t)te->ne[1];
  int64_t E = I->n_embd, V = I->n_vocab, D = I->head_dim;
  int64_t QD = I->n_head * D, KD = I->n_head_kv * D, F = I->n_ff;
  int rc;
  if ((rc = cll__loader_weight(L, "token_embd.weight", E, V, true, &m->tok_embd)) ||
      (rc = cll__loader_weight(L, "output_norm.weight", E, 0, true, &m->out_norm)) ||
      (rc = cll__loader_weight(L, "output.weight", E, V, !m->arch->tied_output, &m->output)))
    return rc;
  if (cll_kernels_get()->dequant_row[m->tok_embd.type] == NULL)
    return cll_err_set(L->err, CLL_EUNSUPPORTED,
                       "token_embd.weight has type %s, which cllama "
                       "cannot look rows up in",
                       cll_type_info(m->tok_embd.type)->name);
  if (m->output.data == NULL)
    m->output = m->tok_embd;
  if (m->arch->moe) {
    m->exp_mem = calloc((size_t)(I->n_layer * m->n_expert * 3), sizeof(*m->exp_mem));
    if (m->exp_mem == NULL)
      return cll_err_set(L->err, CLL_ENOMEM, "out of memory");
  }
  for (int64_t il = 0; il < I->n_layer; il++) {
    struct cll__layer *l = &m->layers[il];
    char n[96];
#define W_(dst, suffix, n_in, n_out, req)                                                          \
  do {                                                                                             \
    snprintf(n, sizeof(n), "blk.%" PRId64 ".%s", il, suffix);                                      \
    if ((rc = cll__loader_weight(L, n, n_in, n_out, req, &(dst))))                                 \
      return rc;                                                                                   \
  } while (0)
#define W(field, suffix, n_in, n_out, req) W_(l->field, suffix, n_in, n_out, req)
    W(attn_norm, "attn_norm.weight", E, 0, true);
    if (m->arch->fused &&
        cll_gguf_find_tensor(m->gguf,
                             (snprintf(n, sizeof(n), "blk.%" PRId64 ".attn_qkv.weight", il), n))) {
      /* q, k and v are consecutive row ranges of one matrix */
      struct cll__weight qkv;
      W_(qkv, "attn_qkv.weight", E, QD + 2 * KD, true);
      view_rows(&qkv, 0, QD, &l->wq);
      view_rows(&qkv, QD, KD, &l->wk);
      view_rows(&qkv, QD + KD, KD, &l->wv);
    } else {
      W(wq, "attn_q.weight", E, QD, true);
      W(wk, "attn_k.weight", E, KD, true);
      W(wv, "attn_v.weight", E, KD, true);
    }
    W(wo, "attn_output.weight", QD, E, true);
    if (m->arch->qkv_bias) {
      W(bq, "attn_q.bias", QD, 0, false);
      W(bk, "attn_k.bias", KD, 0, false);
      W(bv, "attn_v.bias", KD, 0, false);
    }
    if (m->arch->qk_norm) {
      W(q_norm, "attn_q_norm.weight", D, 0, true);
      W(k_norm, "attn_k_norm.weight", D, 0, true);
    }
    if (m->arch->gemma) {
      W(attn_post_norm, "post_attention_norm.weight", E, 0, true);
      W(ffn_post_norm, "post_ffw_norm.weight", E, 0, true);
    }
    W(ffn_norm, "ffn_norm.weight", E, 0, true);
    if (m->arch->moe) {
      const int64_t X = m->n_expert, FE = m->n_ff_exp;
      W(router, "ffn_gate_inp.weight", E, X, true);
      l->exp_gate = m->exp_mem + (il * 3 + 0) * X;
      l->exp_up = m->exp_mem + (il * 3 + 1) * X;
      l->exp_down = m->exp_mem + (il * 3 + 2) * X;
      snprintf(n, sizeof(n), "blk.%" PRId64 ".ffn_gate_exps.weight", il);
      if ((rc = get_experts(L, n, E, FE, X, l->exp_gate)))
        return rc;
      snprintf(n, sizeof(n), "blk.%" PRId64 ".ffn_up_exps.weight", il);
      if ((rc = get_experts(L, n, E, FE, X, l->exp_up)))
        return rc;
      snprintf(n, sizeof(n), "blk.%" PRId64 ".ffn_down_exps.weight", il);
      if ((rc = get_experts(L, n, FE, E, X, l->exp_down)))
        return rc;
    } else if (m->arch->fused) {
      /* ffn_up holds the gate rows, then the up rows */
      struct cll__weight gu;
      W_(gu, "ffn_up.weight", E, 2 * F, true);
      view_rows(&gu, 0, F, &l->w_gate);
      view_rows(&gu, F, F, &l->w_up);
      W(w_down, "ffn_down.weight", F, E, true);
    } else {
      W(w_gate, "ffn_gate.weight", E, F, true);
      W(w_up, "ffn_up.weight", E, F, true);
      W(w_down, "ffn_down.weight", F, E, true);
    }
#undef W
#undef W_
  }
  /* Llama 3 stores per-dimension RoPE frequency factors; Phi-3's 128k
   * models two sets (LongRoPE), chosen by the context size. */
  if ((rc = cll__loader_weight(L, "rope_freqs.weight", m->n_rot / 2, 0, false, &m->rope_freqs)) ||
      (rc = cll__loader_weight(L, "rope_factors_long.weight", m->n_rot / 2, 0, false,
                               &m->rope_long)) ||
      (rc = cll__loader_weight(L, "rope_factors_short.weight", m->n_rot / 2, 0, false,
                               &m->rope_short)))
    return rc;
  if ((m->rope_long.data == NULL) != (m->rope_short.data == NULL))
    return cll_err_set(L->err, CLL_EFORMAT, "model has only one of rope_factors_long/short");
  for (int64_t i = 0; i < cll_gguf_n_tensors(m->gguf); i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(m->gguf, i);
    m->info.n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    m->info.weight_bytes += t->n_bytes;
  }
  return 0;
}

/* ---------------------------------------------------------------- repacking
 *
 * Where the kernel table has a packed layout for a matrix's type (avx512:
 * Q4_0, 16 rows interleaved with their scales apart), the matrix is copied
 * into it once here, and cll_matmul reads the copy (kernels.h: pack). The
 * copy is one pass over those weights at load, split over the cores; it
 * costs no extra memory in the end: the packed rows' pages of the file
 * mapping are dropped from this process (MADV_DONTNEED: they stay in the
 * page cache, and fault back in if the in-place rows are ever read).
 * CLLAMA_REPACK=0 (or false) turns repacking off (benchmarks compare the
 * two). */

struct pack_job {
  struct cll__weight *w;
  size_t off; /* of its packed form in pack_mem */
};

struct pack_team {
  cll_model *m;
  const cll_kernels *K;
  struct pack_job *jobs;
  int n_jobs;
  atomic_int next; /* chunk counter: job * PACK_CHUNKS + chunk */
};

#define PACK_CHUNKS 8 /* chunks per matrix, claimed by the threads */

static void pack_chunks(struct pack_team *t) {
  for (;;) {
    int c = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
    if (c >= t->n_jobs * PACK_CHUNKS)
      return;
    const struct pack_job *j = &t->jobs[c / PACK_CHUNKS];
    const int64_t n_panels = j->w->n_out / CLL_PACK_ROWS, k = c % PACK_CHUNKS;
    const int64_t p0 = n_panels * k / PACK_CHUNKS, p1 = n_panels * (k + 1) / PACK_CHUNKS;
    t->K->pack[j->w->type](j->w->data, j->w->row_bytes, j->w->n_in, p0, p1,
                           (char *)t->m->pack_mem + j->off);
  }
}

static void pack_worker(void *arg, int ith, int nth) {
  (void)ith, (void)nth;
  pack_chunks(arg);
}

/* Queues w for packing when the table has a layout for its type; the
 * packed forms follow each other in pack_mem, page aligned. */
static void add_job(const cll_kernels *K, struct cll__weight *w, struct pack_job *jobs, int *n,
                    size_t *total) {
  if (w->data == NULL || w->n_out < CLL_PACK_ROWS || K->pack[w->type] == NULL)
    return; /* pack, pack_bytes and matmul_packed come together */
  jobs[(*n)++] = (struct pack_job){w, *total};
  *total += (K->pack_bytes[w->type](w->n_in, w->n_out) + 4095) & ~(size_t)4095;
}

static int pack_weights(struct cll__loader *L) {
  cll_model *m = L->m;
  const cll_kernels *K = cll_kernels_get();
  /* CLLAMA_REPACK=false, validated by config.c and passed to
   * cll_kernels_init in main. */
  if (!cll_kernels_repack())
    return 0;
  const int64_t n_w = m->info.n_layer * (7 + 1 + 3 * m->n_expert) + 1;
  struct pack_job *jobs = calloc((size_t)n_w, sizeof(*jobs));
  if (jobs == NULL)
    return cll_err_set(L->err, CLL_ENOMEM, "out of memory");
  int n = 0;
  size_t total = 0;
  for (int64_t il = 0; il < m->info.n_layer; il++) {
    struct cll__layer *l = &m->layers[il];
    struct cll__weight *ws[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
    for (size_t i = 0; i < CLL_ARRAY_LEN(ws); i++)
      add_job(K, ws[i], jobs, &n, &total);
    add_job(K, &l->router, jobs, &n, &total);
    for (int64_t e = 0; e < m->n_expert; e++) { /* experts: each its own matrix */
      add_job(K, &l->exp_gate[e], jobs, &n, &total);
      add_job(K, &l->exp_up[e], jobs, &n, &total);
      add_job(K, &l->exp_down[e], jobs, &n, &total);
    }
  }
  add_job(K, &m->output, jobs, &n, &total);
  int rc = 0;
  if (n == 0)
    goto done;
  void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    rc = cll_err_set(L->err, CLL_ENOMEM, "out of memory repacking %zu MiB of weights", total >> 20);
    goto done;
  }
#ifdef MADV_HUGEPAGE
  madvise(mem, total, MADV_HUGEPAGE); /* fewer TLB misses at decode; advisory */
#endif
  m->pack_mem = mem;
  m->pack_len = total;
  struct pack_team team = {.m = m, .K = K, .jobs = jobs, .n_jobs = n};
  atomic_init(&team.next, 0);
  /* On the engine's compute team, one thread per core (alone when the
   * team cannot start: the chunks are the same either way). */
  cll__team *tm = NULL;
  if (cll__team_new(0, &tm) == 0) {
    cll__team_run(tm, 0, pack_worker, &team);
    cll__team_free(tm);
  } else {
    pack_chunks(&team);
  }
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  for (int i = 0; i < n; i++) {
    struct cll__weight *w = jobs[i].w;
    w->packed = (char *)mem + jobs[i].off;
    w->packed_rows = w->n_out / CLL_PACK_ROWS * CLL_PACK_ROWS;
    if (w->data == m->tok_embd.data)
      continue; /* tied output: token_embd rows are still read in place */
    uintptr_t a = ((uintptr_t)w->data + page - 1) & ~(uintptr_t)(page - 1);
    uintptr_t b =
        ((uintptr_t)w->data + (size_t)w->packed_rows * w->row_bytes) & ~(uintptr_t)(page - 1);
    if (b > a)
      madvise((void *)a, b - a, MADV_DONTNEED);
  }
done:
  free(jobs);
  return rc;
}

int cll_model_load(const char *path, cll_model **out, cll_err *err) {
  *out = NULL;
  cll_model *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  atomic_init(&m->refs, 1);
  int rc = cll_gguf_open(path, &m->gguf, err);
  if (rc)
    goto fail;
  struct cll__loader L = {m, err, {0}};
  cll_gguf_str s;
  if (cll_gguf_get_str(m->gguf, "general.architecture", &s) != 0) {
    rc = cll_err_set(err, CLL_EFORMAT, "%s: no general.architecture", path);
    goto fail;
  }
  if (s.len >= sizeof(m->info.arch)) {
    rc = cll_err_set(err, CLL_EUNSUPPORTED, "%s: architecture name too long", path);
    goto fail;
  }
  memcpy(m->info.arch, s.ptr, s.len);
  if (cll__encoder_arch(m->info.arch)) {
    if ((rc = cll__encoder_load(m, err)))
      goto fail;
    *out = m;
    return 0;
  }
  m->arch = find_arch(m->info.arch);
  if (m->arch == NULL) {
    rc = cll_err_set(err, CLL_EUNSUPPORTED, "%s: architecture \"%s\" is not supported", path,
                     m->info.arch);
    goto fail;
  }
  if (cll_gguf_get_str(m->gguf, "general.name", &s) == 0) {
    size_t n = s.len < sizeof(m->info.name) - 1 ? (size_t)s.len : sizeof(m->info.name) - 1;
    memcpy(m->info.name, s.ptr, n);
  }
  if ((rc = load_hparams(&L)) || (rc = load_weights(&L)) || (rc = pack_weights(&L)))
    goto fail;
  *out = m;
  return 0;
fail:
  cll_model_release(m);
  return rc;
}

cll_model *cll_model_retain(cll_model *m) {
  atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
  return m;
}

void cll_model_release(cll_model *m) {
  if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
    return;
  free(m->layers);
  cll__encoder_free(m->enc);
  free(m->exp_mem);
  if (m->pack_mem != NULL)
    munmap(m->pack_mem, m->pack_len);
  cll_gguf_close(m->gguf);
  free(m);
}

const struct cll_model_info *cll_model_info(const cll_model *m) {
  return &m->info;
}

const cll_gguf *cll_model_gguf(const cll_model *m) {
  return m->gguf;
}
