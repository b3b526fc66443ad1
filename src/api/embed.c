/* embed.c — POST /api/embed and the legacy POST /api/embeddings (§1.6).
 *
 * One request: acquire the runner, tokenize every input on a work item,
 * submit one embedding sequence per input to the scheduler (they batch with
 * whatever else runs), gather the pooled vectors (pooling from the GGUF:
 * mean unless the model says CLS or last), L2-normalise for /api/embed
 * (cut to `dimensions` first), answer when the last one is done. */
#include "emb_req.h"
#include "metrics.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The pooled vector of one input. */
struct emb_vec {
  float *v; /* (n) new */
  int32_t n;
};

struct emb {
  struct cll__emb b; /* first: the shared request (emb_req.h) */
  bool legacy, truncate;
  int64_t dimensions;
  struct emb_vec *vecs; /* (b.n_items) new, one per item */
  size_t next_submit;   /* items before this one are submitted */
  int pooling;
};

static void submit_more(struct emb *e);

static void emb_destroy(struct cll__emb *b) {
  struct emb *e = (struct emb *)b;
  for (size_t i = 0; e->vecs && i < b->n_items; i++)
    free(e->vecs[i].v);
  free(e->vecs);
  cll__emb_clear(b);
  free(e);
}

static void emb_error(struct emb *e, int status, const char *msg) {
  cll__emb_fail(&e->b, status, msg);
}

/* The vector of item it. */
static struct emb_vec *vec_of(struct cll__emb_item *it) {
  struct emb *e = (struct emb *)it->owner;
  return &e->vecs[it - e->b.items];
}

static json_t *vec_json(const float *v, int32_t n) {
  json_t *a = json_array();
  for (int32_t i = 0; i < n; i++)
    json_array_append_new(a, json_real(v[i]));
  return a;
}

static void answer(struct cll__emb *b) {
  struct emb *e = (struct emb *)b;
  uint64_t now = uv_hrtime();
  if (e->legacy) {
    json_t *v = e->b.n_items ? vec_json(e->vecs[0].v, e->vecs[0].n) : json_array();
    cll_api_json(e->b.req, 200, json_pack("{s:o}", "embedding", v));
    emb_destroy(b);
    return;
  }
  json_t *all = json_array();
  for (size_t i = 0; i < e->b.n_items; i++) {
    struct emb_vec *it = &e->vecs[i];
    int32_t n = it->n;
    if (e->dimensions > 0 && e->dimensions < n)
      n = (int32_t)e->dimensions;
    double ss = 0;
    for (int32_t k = 0; k < n; k++)
      ss += (double)it->v[k] * it->v[k];
    double norm = sqrt(ss);
    for (int32_t k = 0; k < n; k++)
      it->v[k] = norm > 0 ? (float)(it->v[k] / norm) : 0.0f;
    json_array_append_new(all, vec_json(it->v, n));
  }
  json_t *o = json_pack("{s:s,s:o}", "model", e->b.model_req, "embeddings", all);
  if (e->b.n_items) {
    json_object_set_new(o, "total_duration", json_integer((json_int_t)(now - e->b.t0)));
    json_object_set_new(o, "load_duration", json_integer((json_int_t)(e->b.t_loaded - e->b.t0)));
    json_object_set_new(o, "prompt_eval_count", json_integer(e->b.prompt_tokens));
  }
  cll_api_json(e->b.req, 200, o);
  emb_destroy(b);
}

static void on_vec(void *ud, cll_seq *s, const float *v, int32_t n) {
  struct cll__emb_item *it = ud;
  struct emb_vec *out = vec_of(it);
  out->v = malloc((size_t)n * sizeof(float));
  if (!out->v)
    return;
  bool finite = true;
  for (int32_t i = 0; i < n; i++) {
    out->v[i] = v[i];
    finite = finite && isfinite(v[i]);
  }
  out->n = n;
  if (!finite) {
    it->owner->failed = true;
    it->owner->fail_status = 500;
    cll_err_set(&it->owner->err, CLL_ERANGE, "embedding contains NaN or Inf values");
  }
}

static void on_seq_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                        const cll_err *err) {
  struct cll__emb_item *it = ud;
  struct emb *e = (struct emb *)it->owner;
  it->done = true;
  it->seq = NULL;
  e->b.n_done++;
  e->b.prompt_tokens += st->prompt_n;
  if (reason != CLL_DONE_EMBED && !e->b.failed) {
    e->b.failed = true;
    e->b.fail_status = reason == CLL_DONE_CANCEL ? 499 : 500;
    cll_err_set(&e->b.err, CLL_EIO, "%s",
                err && err->msg[0] ? err->msg : "the embedding was not computed");
  }
  if (reason != CLL_DONE_EMBED || !vec_of(it)->v)
    cll__emb_cancel_running(&e->b); /* the others cannot help any more */
  if (e->b.n_done < e->b.n_items) {
    submit_more(e); /* inputs held back while the queue was full */
    if (e->b.n_done < e->b.n_items)
      return;
  }
  if (e->b.gone || e->b.failed)
    emb_error(e, e->legacy ? 500 : e->b.fail_status, e->b.err.msg);
  else
    answer(&e->b);
}

/* Cuts an input of more than limit tokens as Ollama does: the first
 * limit - 1 tokens, then the end-of-text token the vocabulary adds (EOS, or
 * [SEP] for WordPiece) when the input ends with it; without truncate it is
 * an error. */
static int fit(struct emb *e, const cll_tokenizer *tok, struct cll__emb_item *it, int64_t limit) {
  if (it->n_toks <= limit)
    return 0;
  if (!e->truncate)
    return cll_err_set(&e->b.err, CLL_ERANGE, "the input length exceeds the context length");
  int32_t last = it->toks[it->n_toks - 1];
  bool tail = (cll_tok_kind(tok) == CLL_TOK_WPM && last == cll_tok_sep(tok)) ||
              (cll_tok_add_eos(tok) && last == cll_tok_eos(tok));
  if (tail && limit >= 2) {
    it->toks[limit - 1] = last;
  }
  it->n_toks = (int32_t)limit;
  return 0;
}

static void on_prep_work(uv_work_t *w) {
  struct emb *e = w->data;
  const cll__mtext *t = cll_runner_aux(e->b.runner);
  int64_t limit = cll_runner_n_ctx(e->b.runner);
  if (e->b.opts.num_ctx > 0 && e->b.opts.num_ctx < limit)
    limit = e->b.opts.num_ctx;
  e->b.prep_rc = 0;
  for (size_t i = 0; i < e->b.n_items && e->b.prep_rc == 0; i++) {
    struct cll__emb_item *it = &e->b.items[i];
    e->b.prep_rc =
        cll__tokenize(t, it->text, strlen(it->text), true, true, &it->toks, &it->n_toks, &e->b.err);
    if (e->b.prep_rc == 0 && it->n_toks == 0)
      e->b.prep_rc = cll_err_set(&e->b.err, CLL_EINVAL, "the input is empty after tokenization");
    if (e->b.prep_rc == 0)
      e->b.prep_rc = fit(e, cll__mtext_tok(t), it, limit);
  }
}

static void on_prepared(uv_work_t *w, int status) {
  struct emb *e = w->data;
  if (e->b.gone) {
    emb_error(e, 499, "request canceled");
    return;
  }
  if (e->b.prep_rc != 0) {
    emb_error(e, e->legacy ? 500 : 400, e->b.err.msg);
    return;
  }
  const struct cll_model_info *mi = cll_model_info(cll_runner_model(e->b.runner));
  e->pooling = mi->pooling == 2 ? CLL_POOL_CLS : mi->pooling == 3 ? CLL_POOL_LAST : CLL_POOL_MEAN;
  submit_more(e);
  if (e->b.n_done == e->b.n_items) /* every submit failed */
    emb_error(e, e->legacy ? 500 : e->b.fail_status, e->b.err.msg);
}

/* Submits the inputs not submitted yet. One request takes one place in the
 * queue: when the queue is full and some of this request's inputs are in
 * flight already, the rest wait for them (submitted as they finish) instead
 * of failing with "server busy"; only a first input that finds the queue
 * full makes the request a 503. */
static void submit_more(struct emb *e) {
  if (e->b.failed || e->b.gone) {
    /* Count the inputs that will never run as done. */
    for (; e->next_submit < e->b.n_items; e->next_submit++) {
      e->b.items[e->next_submit].done = true;
      e->b.n_done++;
    }
    return;
  }
  for (; e->next_submit < e->b.n_items; e->next_submit++) {
    size_t i = e->next_submit;
    struct cll__emb_item *it = &e->b.items[i];
    struct cll_seq_desc d;
    cll__emb_seq_desc(&e->b, it, &d);
    d.truncate = e->truncate;
    d.pooling = e->pooling;
    d.on_embedding = on_vec;
    d.on_done = on_seq_done;
    cll_err err = {0};
    struct cll__metrics_seq *mw = cll__metrics_seq_wrap(&d);
    int rc = cll_sched_submit(cll_runner_sched(e->b.runner), &d, &it->seq, &err);
    if (rc == CLL_EFULL && e->b.n_done < i) {
      cll__metrics_seq_unwrap(mw, &d); /* not submitted: its wrapper leaked (make check) */
      return;                          /* some of ours are in flight: go on when one finishes */
    }
    if (rc != 0) {
      cll__metrics_seq_unwrap(mw, &d);
      /* Nothing of this one runs: count it as done with the error. */
      it->done = true;
      e->b.n_done++;
      if (!e->b.failed) {
        e->b.failed = true;
        e->b.fail_status = rc == CLL_EFULL ? 503 : rc == CLL_ERANGE ? 400 : 500;
        e->b.err = err;
      }
      cll__emb_cancel_running(&e->b);
      for (e->next_submit = i + 1; e->next_submit < e->b.n_items; e->next_submit++) {
        e->b.items[e->next_submit].done = true;
        e->b.n_done++;
      }
      break;
    }
  }
}

static const struct cll__emb_ops emb_ops = {
    .what = "embedding",
    .rank = false,
    .bad_option_status = 500, /* Ollama: it surfaces from the scheduler */
    .answer = answer,
    .destroy = emb_destroy,
    .prep = on_prep_work,
    .prepared = on_prepared,
};

static void handle(cll_request *req, cll_api *api, bool legacy) {
  const char *model;
  json_t *body = cll_api_body_model(req, NULL, legacy ? 400 : 404, &model);
  if (!body)
    return;
  struct emb *e = calloc(1, sizeof(*e));
  if (!e) {
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return;
  }
  cll__emb_init(&e->b, &emb_ops, api, req, model);
  e->legacy = legacy;
  e->truncate = true;
  json_t *in = json_object_get(body, legacy ? "prompt" : "input");
  json_t *tr = json_object_get(body, "truncate");
  if (json_is_boolean(tr))
    e->truncate = json_is_true(tr);
  json_t *dim = json_object_get(body, "dimensions");
  if (json_is_integer(dim))
    e->dimensions = json_integer_value(dim);
  int rc = 0;
  if (in && json_is_string(in)) {
    if (json_string_length(in) > 0)
      rc = cll__emb_add_item(&e->b, json_string_value(in));
  } else if (in && json_is_array(in) && !legacy) {
    size_t i;
    json_t *x;
    json_array_foreach(in, i, x) {
      if (!json_is_string(x)) {
        json_decref(body);
        emb_error(e, 400, "invalid input type");
        return;
      }
      if (rc == 0)
        rc = cll__emb_add_item(&e->b, json_string_value(x));
    }
  } else if (in && !json_is_null(in)) {
    json_decref(body);
    emb_error(e, 400,
              legacy ? "json: cannot unmarshal into Go struct field "
                       "EmbeddingRequest.prompt of type string"
                     : "invalid input type");
    return;
  }
  if (rc == 0 && (e->vecs = calloc(e->b.n_items + 1, sizeof(*e->vecs))) == NULL)
    rc = CLL_ENOMEM;
  if (rc != 0) {
    json_decref(body);
    emb_error(e, 400, "out of memory");
    return;
  }
  cll__emb_start(&e->b, body); /* answers and frees e on an error */
  json_decref(body);
}

static void on_embed(cll_request *req, void *ud) {
  handle(req, ud, false);
}
static void on_embeddings(cll_request *req, void *ud) {
  handle(req, ud, true);
}

int cll_api_embed_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"POST", "/api/embed", on_embed, false},
      {"POST", "/api/embeddings", on_embeddings, false},
  };
  return CLL_API_ROUTES(api, routes);
}
