/* embed.c — POST /api/embed and the legacy POST /api/embeddings (§1.6).
 *
 * One request: acquire the runner, tokenize every input on a work item,
 * submit one embedding sequence per input to the scheduler (they batch with
 * whatever else runs), gather the pooled vectors (pooling from the GGUF:
 * mean unless the model says CLS or last), L2-normalise for /api/embed
 * (cut to `dimensions` first), answer when the last one is done. */
#include "cllama/api.h"
#include "gen.h"
#include "metrics.h"
#include "resolve.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct emb_item {
  struct emb *e;
  char *text;
  int32_t *toks;
  int32_t n_toks;
  float *vec; /* (n) pooled */
  int32_t n;
  cll_seq *seq;
  bool done;
};

struct emb {
  cll_api *api;
  cll_request *req;
  bool legacy;
  char *model_req;
  struct cll__model_ref ref;
  struct cll__gen_opts opts;
  int64_t keep_alive_ns;
  bool keep_alive_set, truncate;
  int64_t dimensions;
  struct emb_item *items;
  size_t n_items, n_done;
  int32_t prompt_tokens;
  cll_acquire *acq;
  cll_runner *runner;
  uint64_t t0, t_loaded;
  bool gone, failed;
  int fail_status;
  cll_err err;
  uv_work_t work;
  int prep_rc;
  size_t next_submit; /* items before this one are submitted */
  int pooling;
};

static void submit_more(struct emb *e);

static void emb_free(struct emb *e) {
  if (e->runner)
    cll_runner_release(e->runner);
  for (size_t i = 0; i < e->n_items; i++) {
    free(e->items[i].text);
    free(e->items[i].toks);
    free(e->items[i].vec);
  }
  free(e->items);
  cll__model_ref_free(&e->ref);
  cll__gen_opts_free(&e->opts);
  free(e->model_req);
  free(e);
}

static void emb_error(struct emb *e, int status, const char *msg) {
  cll_api_error(e->req, status, msg);
  emb_free(e);
}

static void on_cancel(cll_request *req, int reason, void *ud) {
  struct emb *e = ud;
  e->gone = true;
  if (e->acq)
    cll_acquire_cancel(e->acq);
  for (size_t i = 0; i < e->n_items; i++)
    if (e->items[i].seq && !e->items[i].done)
      cll_seq_cancel(e->items[i].seq);
}

static json_t *vec_json(const float *v, int32_t n) {
  json_t *a = json_array();
  for (int32_t i = 0; i < n; i++)
    json_array_append_new(a, json_real(v[i]));
  return a;
}

static void answer(struct emb *e) {
  uint64_t now = uv_hrtime();
  if (e->legacy) {
    json_t *v = e->n_items ? vec_json(e->items[0].vec, e->items[0].n) : json_array();
    cll_api_json(e->req, 200, json_pack("{s:o}", "embedding", v));
    emb_free(e);
    return;
  }
  json_t *all = json_array();
  for (size_t i = 0; i < e->n_items; i++) {
    struct emb_item *it = &e->items[i];
    int32_t n = it->n;
    if (e->dimensions > 0 && e->dimensions < n)
      n = (int32_t)e->dimensions;
    double ss = 0;
    for (int32_t k = 0; k < n; k++)
      ss += (double)it->vec[k] * it->vec[k];
    double norm = sqrt(ss);
    for (int32_t k = 0; k < n; k++)
      it->vec[k] = norm > 0 ? (float)(it->vec[k] / norm) : 0.0f;
    json_array_append_new(all, vec_json(it->vec, n));
  }
  json_t *o = json_pack("{s:s,s:o}", "model", e->model_req, "embeddings", all);
  if (e->n_items) {
    json_object_set_new(o, "total_duration", json_integer((json_int_t)(now - e->t0)));
    json_object_set_new(o, "load_duration", json_integer((json_int_t)(e->t_loaded - e->t0)));
    json_object_set_new(o, "prompt_eval_count", json_integer(e->prompt_tokens));
  }
  cll_api_json(e->req, 200, o);
  emb_free(e);
}

static void on_vec(void *ud, cll_seq *s, const float *v, int32_t n) {
  struct emb_item *it = ud;
  it->vec = malloc((size_t)n * sizeof(float));
  if (!it->vec)
    return;
  bool finite = true;
  for (int32_t i = 0; i < n; i++) {
    it->vec[i] = v[i];
    finite = finite && isfinite(v[i]);
  }
  it->n = n;
  if (!finite) {
    it->e->failed = true;
    it->e->fail_status = 500;
    cll_err_set(&it->e->err, CLL_ERANGE, "embedding contains NaN or Inf values");
  }
}

static void on_seq_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                        const cll_err *err) {
  struct emb_item *it = ud;
  struct emb *e = it->e;
  it->done = true;
  it->seq = NULL;
  e->n_done++;
  e->prompt_tokens += st->prompt_n;
  if (reason != CLL_DONE_EMBED && !e->failed) {
    e->failed = true;
    e->fail_status = reason == CLL_DONE_CANCEL ? 499 : 500;
    cll_err_set(&e->err, CLL_EIO, "%s",
                err && err->msg[0] ? err->msg : "the embedding was not computed");
  }
  if (reason != CLL_DONE_EMBED || !it->vec) {
    /* The others cannot help any more. */
    for (size_t i = 0; i < e->n_items; i++)
      if (e->items[i].seq && !e->items[i].done)
        cll_seq_cancel(e->items[i].seq);
  }
  if (e->n_done < e->n_items) {
    submit_more(e); /* inputs held back while the queue was full */
    if (e->n_done < e->n_items)
      return;
  }
  if (e->gone || e->failed)
    emb_error(e, e->legacy ? 500 : e->fail_status, e->err.msg);
  else
    answer(e);
}

/* Cuts an input of more than limit tokens as Ollama does: the first
 * limit - 1 tokens, then the end-of-text token the vocabulary adds (EOS, or
 * [SEP] for WordPiece) when the input ends with it; without truncate it is
 * an error. */
static int fit(struct emb *e, const cll_tokenizer *tok, struct emb_item *it, int64_t limit) {
  if (it->n_toks <= limit)
    return 0;
  if (!e->truncate)
    return cll_err_set(&e->err, CLL_ERANGE, "the input length exceeds the context length");
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
  const cll__mtext *t = cll_runner_aux(e->runner);
  int64_t limit = cll_runner_n_ctx(e->runner);
  if (e->opts.num_ctx > 0 && e->opts.num_ctx < limit)
    limit = e->opts.num_ctx;
  e->prep_rc = 0;
  for (size_t i = 0; i < e->n_items && e->prep_rc == 0; i++) {
    struct emb_item *it = &e->items[i];
    e->prep_rc =
        cll__tokenize(t, it->text, strlen(it->text), true, true, &it->toks, &it->n_toks, &e->err);
    if (e->prep_rc == 0 && it->n_toks == 0)
      e->prep_rc = cll_err_set(&e->err, CLL_EINVAL, "the input is empty after tokenization");
    if (e->prep_rc == 0)
      e->prep_rc = fit(e, cll__mtext_tok(t), it, limit);
  }
}

static void on_prepared(uv_work_t *w, int status) {
  struct emb *e = w->data;
  if (e->gone) {
    emb_error(e, 499, "request canceled");
    return;
  }
  if (e->prep_rc != 0) {
    emb_error(e, e->legacy ? 500 : 400, e->err.msg);
    return;
  }
  const struct cll_model_info *mi = cll_model_info(cll_runner_model(e->runner));
  e->pooling = mi->pooling == 2 ? CLL_POOL_CLS : mi->pooling == 3 ? CLL_POOL_LAST : CLL_POOL_MEAN;
  submit_more(e);
  if (e->n_done == e->n_items) /* every submit failed */
    emb_error(e, e->legacy ? 500 : e->fail_status, e->err.msg);
}

/* Submits the inputs not submitted yet. One request takes one place in the
 * queue: when the queue is full and some of this request's inputs are in
 * flight already, the rest wait for them (submitted as they finish) instead
 * of failing with "server busy"; only a first input that finds the queue
 * full makes the request a 503. */
static void submit_more(struct emb *e) {
  if (e->failed || e->gone) {
    /* Count the inputs that will never run as done. */
    for (; e->next_submit < e->n_items; e->next_submit++) {
      e->items[e->next_submit].done = true;
      e->n_done++;
    }
    return;
  }
  for (; e->next_submit < e->n_items; e->next_submit++) {
    size_t i = e->next_submit;
    struct emb_item *it = &e->items[i];
    struct cll_seq_desc d;
    cll_seq_desc_init(&d);
    d.prompt = it->toks;
    d.n_prompt = it->n_toks;
    d.n_ctx = (int32_t)(e->opts.num_ctx > 0 ? e->opts.num_ctx : 0);
    d.truncate = e->truncate;
    d.embed = true;
    d.pooling = e->pooling;
    d.on_embedding = on_vec;
    d.on_done = on_seq_done;
    d.ud = it;
    cll_err err = {0};
    struct cll__metrics_seq *mw = cll__metrics_seq_wrap(&d);
    int rc = cll_sched_submit(cll_runner_sched(e->runner), &d, &it->seq, &err);
    if (rc == CLL_EFULL && e->n_done < i) {
      cll__metrics_seq_unwrap(mw, &d); /* not submitted: its wrapper leaked (make check) */
      return;                          /* some of ours are in flight: go on when one finishes */
    }
    if (rc != 0) {
      cll__metrics_seq_unwrap(mw, &d);
      /* Nothing of this one runs: count it as done with the error. */
      it->done = true;
      e->n_done++;
      if (!e->failed) {
        e->failed = true;
        e->fail_status = rc == CLL_EFULL ? 503 : rc == CLL_ERANGE ? 400 : 500;
        e->err = err;
      }
      for (size_t k = 0; k < i; k++)
        if (e->items[k].seq && !e->items[k].done)
          cll_seq_cancel(e->items[k].seq);
      for (e->next_submit = i + 1; e->next_submit < e->n_items; e->next_submit++) {
        e->items[e->next_submit].done = true;
        e->n_done++;
      }
      break;
    }
  }
}

static void on_acquired(void *ud, cll_runner *r, int status, const cll_err *err) {
  struct emb *e = ud;
  e->acq = NULL;
  e->t_loaded = uv_hrtime();
  if (status != 0) {
    emb_error(e,
              status == CLL_EFULL       ? 503
              : status == CLL_ECANCELED ? 499
                                        : 500,
              err && err->msg[0] ? err->msg : cll_strerror(status));
    return;
  }
  e->runner = r;
  if (e->gone) {
    emb_error(e, 499, "request canceled");
    return;
  }
  if (cll_model_info(cll_runner_model(r))->pooling == 4) {
    /* A reranker's output is a score, not an embedding (/api/rerank). */
    char msg[700];
    snprintf(msg, sizeof(msg), "%s does not support embedding", e->ref.full);
    emb_error(e, 400, msg);
    return;
  }
  if (e->n_items == 0) {
    answer(e);
    return;
  }
  e->work.data = e;
  if (uv_queue_work(e->api->loop, &e->work, on_prep_work, on_prepared) != 0)
    emb_error(e, 500, "cannot queue work");
}

static int add_item(struct emb *e, const char *text) {
  struct emb_item *it = realloc(e->items, (e->n_items + 1) * sizeof(*it));
  if (!it)
    return CLL_ENOMEM;
  e->items = it;
  memset(&it[e->n_items], 0, sizeof(*it));
  it[e->n_items].e = e;
  it[e->n_items].text = strdup(text);
  if (it[e->n_items].text == NULL) /* found by test_chaos */
    return CLL_ENOMEM;
  e->n_items++;
  return 0;
}

static void handle(cll_request *req, cll_api *api, bool legacy) {
  json_t *body = cll_api_body_object(req);
  if (!body)
    return;
  bool failed = false;
  const char *model = cll_api_opt_string(req, body, "model", &failed);
  if (failed) {
    json_decref(body);
    return;
  }
  if (!model || !*model) {
    json_decref(body);
    if (legacy)
      cll_api_error(req, 400, "model is required");
    else
      cll_api_error(req, 404, "model '' not found");
    return;
  }
  struct emb *e = calloc(1, sizeof(*e));
  if (!e) {
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return;
  }
  e->api = api;
  e->req = req;
  e->legacy = legacy;
  e->t0 = uv_hrtime();
  e->truncate = true;
  e->model_req = strdup(model);
  cll__gen_opts_defaults(&e->opts);
  cll_err err = {0};
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
      rc = add_item(e, json_string_value(in));
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
        rc = add_item(e, json_string_value(x));
    }
  } else if (in && !json_is_null(in)) {
    json_decref(body);
    emb_error(e, 400,
              legacy ? "json: cannot unmarshal into Go struct field "
                       "EmbeddingRequest.prompt of type string"
                     : "invalid input type");
    return;
  }
  if (rc == 0)
    rc = cll__keep_alive_parse(json_object_get(body, "keep_alive"), &e->keep_alive_ns,
                               &e->keep_alive_set, &err);
  if (rc != 0) {
    json_decref(body);
    emb_error(e, 400, err.msg[0] ? err.msg : "out of memory");
    return;
  }
  model = e->model_req; /* body is released below */
  rc = cll__model_resolve(api->store, model, &e->ref, &err);
  if (rc != 0) {
    json_decref(body);
    if (rc == CLL_EINVAL)
      emb_error(e, 400, "invalid model name");
    else if (rc == CLL_ENOENT) {
      char msg[600];
      snprintf(msg, sizeof(msg), "model \"%s\" not found, try pulling it first", model);
      emb_error(e, 404, msg);
    } else
      emb_error(e, 500, err.msg);
    return;
  }
  if (cll__gen_opts_apply(&e->opts, e->ref.params, &err) != 0 ||
      cll__gen_opts_apply(&e->opts, json_object_get(body, "options"), &err) != 0) {
    json_t *ro = json_object_get(body, "options"); /* not an object: 400 */
    int st = ro && !json_is_null(ro) && !json_is_object(ro) ? 400 : 500;
    json_decref(body);
    emb_error(e, st, err.msg);
    return;
  }
  json_decref(body);
  cll_request_on_cancel(req, on_cancel, e);
  struct cll_load_req lr = {0};
  lr.path = e->ref.model_path;
  lr.name = e->ref.display;
  lr.digest = e->ref.man->digest;
  lr.num_ctx = e->opts.num_ctx;
  lr.num_thread = e->opts.num_thread;
  lr.keep_alive_ns = e->keep_alive_ns;
  lr.keep_alive_set = e->keep_alive_set;
  rc = cll_runners_acquire(api->runners, &lr, on_acquired, e, &e->acq, &err);
  if (rc != 0)
    emb_error(e, rc == CLL_EFULL ? 503 : rc == CLL_EINVAL ? 400 : 500, err.msg);
}

static void on_embed(cll_request *req, void *ud) {
  handle(req, ud, false);
}
static void on_embeddings(cll_request *req, void *ud) {
  handle(req, ud, true);
}

int cll_api_embed_register(cll_api *api) {
  int rc = cll_server_route(api->server, "POST", "/api/embed", on_embed, api);
  if (rc == 0)
    rc = cll_server_route(api->server, "POST", "/api/embeddings", on_embeddings, api);
  return rc;
}
