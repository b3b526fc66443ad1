/* encoder.c — loading the encoder architectures (BERT family) from a GGUF
 * file: `bert` (MiniLM, BGE, mxbai-embed-large; XLM-RoBERTa models such as
 * bge-m3 and bge-reranker-v2-m3 are `bert` with a t5 vocabulary) and
 * `nomic-bert` (rotary positions, fused QKV, SwiGLU).
 *
 * The tensor names and hyper-parameter keys are those llama.cpp's
 * converter writes. Every tensor's type and shape is checked against the
 * hyper-parameters before any compute can touch it; weights stay in the
 * read-only mapping. The forward pass is src/engine/encoder.c. */
#include "model/model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cll__encoder_arch(const char *arch) {
  return strcmp(arch, "bert") == 0 || strcmp(arch, "nomic-bert") == 0;
}

static int load_hparams(struct cll__loader *L) {
  cll_model *m = L->m;
  struct cll_model_info *I = &m->info;
  struct cll__enc_model *e = m->enc;
  int rc;
  if ((rc = cll__loader_int(L, "embedding_length", true, 0, &I->n_embd)) ||
      (rc = cll__loader_int(L, "block_count", true, 0, &I->n_layer)) ||
      (rc = cll__loader_int(L, "attention.head_count", true, 0, &I->n_head)) ||
      (rc = cll__loader_int(L, "feed_forward_length", true, 0, &I->n_ff)) ||
      (rc = cll__loader_int(L, "context_length", false, 512, &I->n_ctx_train)))
    return rc;
  if ((rc = cll__loader_int(L, "attention.head_count_kv", false, I->n_head, &I->n_head_kv)))
    return rc;
  if (I->n_head_kv != I->n_head || I->n_embd % I->n_head != 0)
    return cll_err_set(L->err, CLL_EUNSUPPORTED,
                       "encoder with %" PRId64 " heads, %" PRId64 " KV heads and %" PRId64
                       " dimensions is not supported",
                       I->n_head, I->n_head_kv, I->n_embd);
  I->head_dim = I->n_embd / I->n_head;
  m->n_rot = I->head_dim;
  if ((rc = cll__loader_float(L, "attention.layer_norm_epsilon", 1e-12f, &e->norm_eps)) ||
      (rc = cll__loader_float(L, "rope.freq_base", 10000.0f, &I->rope_freq_base)))
    return rc;
  I->rms_eps = e->norm_eps;
  I->rope_freq_scale = 1.0f;
  I->rope_neox = 1; /* llama.cpp's rope type for nomic-bert is NEOX */
  int64_t pool;
  if (cll_gguf_get_i64(m->gguf, cll__loader_key(L, "pooling_type"), &pool) == 0 && pool >= 0 &&
      pool <= 4)
    I->pooling = (int)pool;
  enum cll_gguf_vtype et;
  uint64_t n_labels = 0;
  I->n_cls_out = 1;
  if (cll_gguf_get_arr(m->gguf, cll__loader_key(L, "classifier.output_labels"), &et, &n_labels) ==
          0 &&
      n_labels > 0 && n_labels <= (uint64_t)I->n_embd)
    I->n_cls_out = (int64_t)n_labels;
  uint32_t ft;
  if (cll_gguf_get_u32(m->gguf, "general.file_type", &ft) == 0)
    I->file_type = ft;
  I->encoder = true;
  e->rope = strcmp(I->arch, "nomic-bert") == 0;
  e->swiglu = e->rope;
  return 0;
}

static int load_weights(struct cll__loader *L) {
  cll_model *m = L->m;
  struct cll_model_info *I = &m->info;
  struct cll__enc_model *e = m->enc;
  const cll_gguf_tensor *te = cll_gguf_find_tensor(m->gguf, "token_embd.weight");
  if (te == NULL || te->n_dims != 2 || te->ne[1] == 0 || te->ne[1] > (1u << 24))
    return cll_err_set(L->err, CLL_EFORMAT, "token_embd.weight is missing or has a bad shape");
  I->n_vocab = (int64_t)te->ne[1];
  const int64_t E = I->n_embd, F = I->n_ff;
  int rc;
  if ((rc = cll__loader_weight(L, "token_embd.weight", E, I->n_vocab, true, &m->tok_embd)) ||
      (rc = cll__loader_weight(L, "token_types.weight", E, -1, false, &e->type_embd)) ||
      (rc = cll__loader_weight(L, "position_embd.weight", E, -1, !e->rope, &e->pos_embd)) ||
      (rc = cll__loader_weight(L, "token_embd_norm.weight", E, 0, true, &e->tok_norm)) ||
      (rc = cll__loader_weight(L, "token_embd_norm.bias", E, 0, true, &e->tok_norm_b)) ||
      (rc = cll__loader_weight(L, "cls.weight", E, E, false, &e->cls)) ||
      (rc = cll__loader_weight(L, "cls.bias", E, 0, false, &e->cls_b)) ||
      (rc = cll__loader_weight(L, "cls.output.weight", E, I->n_cls_out, false, &e->cls_out)) ||
      (rc = cll__loader_weight(L, "cls.output.bias", I->n_cls_out, 0, false, &e->cls_out_b)))
    return rc;
  if (I->pooling == 4 && e->cls.data == NULL && e->cls_out.data == NULL)
    return cll_err_set(L->err, CLL_EFORMAT,
                       "a rank-pooling model needs a classification head "
                       "(cls.weight or cls.output.weight)");
  if (e->pos_embd.data != NULL && e->pos_embd.n_out < I->n_ctx_train)
    I->n_ctx_train = e->pos_embd.n_out; /* positions beyond the table have no embedding */
  e->layers = calloc((size_t)I->n_layer, sizeof(*e->layers));
  if (e->layers == NULL)
    return cll_err_set(L->err, CLL_ENOMEM, "out of memory");
  for (int64_t il = 0; il < I->n_layer; il++) {
    struct cll__enc_layer *l = &e->layers[il];
    char n[96];
#define W(field, suffix, n_in, n_out, req)                                                         \
  do {                                                                                             \
    snprintf(n, sizeof(n), "blk.%" PRId64 ".%s", il, suffix);                                      \
    if ((rc = cll__loader_weight(L, n, n_in, n_out, req, &l->field)))                              \
      return rc;                                                                                   \
  } while (0)
    W(wqkv, "attn_qkv.weight", E, 3 * E, false);
    if (l->wqkv.data != NULL) {
      W(bqkv, "attn_qkv.bias", 3 * E, 0, false);
    } else {
      W(wq, "attn_q.weight", E, E, true);
      W(wk, "attn_k.weight", E, E, true);
      W(wv, "attn_v.weight", E, E, true);
      W(bq, "attn_q.bias", E, 0, false);
      W(bk, "attn_k.bias", E, 0, false);
      W(bv, "attn_v.bias", E, 0, false);
    }
    W(wo, "attn_output.weight", E, E, true);
    W(bo, "attn_output.bias", E, 0, false);
    W(ln1, "attn_output_norm.weight", E, 0, true);
    W(ln1_b, "attn_output_norm.bias", E, 0, true);
    W(up, "ffn_up.weight", E, F, true);
    W(up_b, "ffn_up.bias", F, 0, false);
    if (e->swiglu)
      W(gate, "ffn_gate.weight", E, F, true);
    W(down, "ffn_down.weight", F, E, true);
    W(down_b, "ffn_down.bias", E, 0, false);
    W(ln2, "layer_output_norm.weight", E, 0, true);
    W(ln2_b, "layer_output_norm.bias", E, 0, true);
#undef W
  }
  for (int64_t i = 0; i < cll_gguf_n_tensors(m->gguf); i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(m->gguf, i);
    I->n_params += t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    I->weight_bytes += t->n_bytes;
  }
  return 0;
}

int cll__encoder_load(cll_model *m, cll_err *err) {
  m->enc = calloc(1, sizeof(*m->enc));
  if (m->enc == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  cll_gguf_str s;
  if (cll_gguf_get_str(m->gguf, "general.name", &s) == 0) {
    size_t n = s.len < sizeof(m->info.name) - 1 ? (size_t)s.len : sizeof(m->info.name) - 1;
    memcpy(m->info.name, s.ptr, n);
  }
  bool causal;
  char key[64];
  snprintf(key, sizeof(key), "%s.attention.causal", m->info.arch);
  if (cll_gguf_get_bool(m->gguf, key, &causal) == 0 && causal)
    return cll_err_set(err, CLL_EUNSUPPORTED, "%s with causal attention is not supported",
                       m->info.arch);
  struct cll__loader L = {m, err, {0}};
  int rc = load_hparams(&L);
  if (rc == 0)
    rc = load_weights(&L);
  return rc;
}

void cll__encoder_free(struct cll__enc_model *e) {
  if (e == NULL)
    return;
  free(e->layers);
  free(e);
}
