/* rerank.c — POST /api/rerank and POST /v1/rerank: scoring documents
 * against a query with a cross-encoder reranker (a `bert`/XLM-R model with
 * rank pooling, e.g. bge-reranker-v2-m3).
 *
 * Request: {"model", "query": string, "documents": [string, ...],
 * "top_n"?: int, "return_documents"?: bool, "keep_alive"?, "options"?}.
 * Each document becomes one sequence, tokenized as llama.cpp's server
 * does: [BOS] query [EOS] [SEP] document [EOS] (each special where the
 * vocabulary adds it); the sequences go through the scheduler together, so
 * they share forward passes; the model's classification head over the
 * first token gives the score (raw, as llama.cpp reports it).
 * Response: results sorted by relevance_score, highest first, cut to
 * top_n: {"index", "relevance_score", "document": {"text"} when
 * return_documents}. /api/rerank answers {"model", "results"}; /v1/rerank
 * the Jina/Cohere shape llama.cpp's server uses: {"model", "object":
 * "list", "usage": {"prompt_tokens", "total_tokens"}, "results"}.
 * Errors: a model without rank pooling → 400 "<model> does not support
 * rerank"; a pair longer than the context → 400. */
#include "cllama/api.h"
#include "gen.h"
#include "resolve.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rr_item {
  struct rr *r;
  size_t index;
  char *text;
  int32_t *toks;
  int32_t n_toks;
  float score;
  bool have_score;
  cll_seq *seq;
  bool done;
};

struct rr {
  cll_api *api;
  cll_request *req;
  bool v1;
  char *model_req, *query;
  struct cll__model_ref ref;
  struct cll__gen_opts opts;
  int64_t keep_alive_ns;
  bool keep_alive_set, return_documents;
  int64_t top_n;
  struct rr_item *items;
  size_t n_items, n_done;
  int32_t prompt_tokens;
  cll_acquire *acq;
  cll_runner *runner;
  bool gone, failed;
  int fail_status;
  cll_err err;
  uv_work_t work;
  int prep_rc;
};

static void rr_free(struct rr *r) {
  if (r->runner)
    cll_runner_release(r->runner);
  for (size_t i = 0; i < r->n_items; i++) {
    free(r->items[i].text);
    free(r->items[i].toks);
  }
  free(r->items);
  cll__model_ref_free(&r->ref);
  cll__gen_opts_free(&r->opts);
  free(r->model_req);
  free(r->query);
  free(r);
}

static void rr_error(struct rr *r, int status, const char *msg) {
  cll_api_error(r->req, status, msg);
  rr_free(r);
}

static void on_cancel(cll_request *req, int reason, void *ud) {
  struct rr *r = ud;
  r->gone = true;
  if (r->acq)
    cll_acquire_cancel(r->acq);
  for (size_t i = 0; i < r->n_items; i++)
    if (r->items[i].seq && !r->items[i].done)
      cll_seq_cancel(r->items[i].seq);
}

static int by_score(const void *pa, const void *pb) {
  const struct rr_item *a = *(const struct rr_item *const *)pa;
  const struct rr_item *b = *(const struct rr_item *const *)pb;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

static void answer(struct rr *r) {
  struct rr_item **order = malloc((r->n_items ? r->n_items : 1) * sizeof(*order));
  if (order == NULL) {
    rr_error(r, 500, "out of memory");
    return;
  }
  for (size_t i = 0; i < r->n_items; i++)
    order[i] = &r->items[i];
  qsort(order, r->n_items, sizeof(*order), by_score);
  size_t n = r->top_n > 0 && (size_t)r->top_n < r->n_items ? (size_t)r->top_n : r->n_items;
  json_t *results = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_pack("{s:I,s:f}", "index", (json_int_t)order[i]->index, "relevance_score",
                          (double)order[i]->score);
    if (r->return_documents)
      json_object_set_new(o, "document", json_pack("{s:s}", "text", order[i]->text));
    json_array_append_new(results, o);
  }
  free(order);
  json_t *body;
  if (r->v1)
    body = json_pack("{s:s,s:s,s:{s:i,s:i},s:o}", "model", r->model_req, "object", "list", "usage",
                     "prompt_tokens", r->prompt_tokens, "total_tokens", r->prompt_tokens, "results",
                     results);
  else
    body = json_pack("{s:s,s:o}", "model", r->model_req, "results", results);
  cll_api_json(r->req, 200, body);
  rr_free(r);
}

static void on_vec(void *ud, cll_seq *s, const float *v, int32_t n) {
  struct rr_item *it = ud;
  if (n < 1)
    return;
  it->score = v[0];
  it->have_score = true;
  if (!isfinite(v[0]) && !it->r->failed) {
    it->r->failed = true;
    it->r->fail_status = 500;
    cll_err_set(&it->r->err, CLL_ERANGE, "the score is NaN or Inf");
  }
}

static void on_seq_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                        const cll_err *err) {
  struct rr_item *it = ud;
  struct rr *r = it->r;
  it->done = true;
  it->seq = NULL;
  r->n_done++;
  r->prompt_tokens += st->prompt_n;
  if ((reason != CLL_DONE_EMBED || !it->have_score) && !r->failed) {
    r->failed = true;
    r->fail_status = reason == CLL_DONE_CANCEL ? 499 : 500;
    cll_err_set(&r->err, CLL_EIO, "%s",
                err && err->msg[0] ? err->msg : "the document was not scored");
    for (size_t i = 0; i < r->n_items; i++)
      if (r->items[i].seq && !r->items[i].done)
        cll_seq_cancel(r->items[i].seq);
  }
  if (r->n_done < r->n_items)
    return;
  if (r->gone || r->failed)
    rr_error(r, r->gone ? 499 : r->fail_status, r->err.msg);
  else
    answer(r);
}

/* Appends id when it exists (>= 0). */
static void put(int32_t *dst, int32_t *n, int32_t id) {
  if (id >= 0)
    dst[(*n)++] = id;
}

static void on_prep_work(uv_work_t *w) {
  struct rr *r = w->data;
  const cll__mtext *t = cll_runner_aux(r->runner);
  const cll_tokenizer *tok = cll__mtext_tok(t);
  int32_t *q = NULL, nq = 0;
  r->prep_rc = cll__tokenize(t, r->query, strlen(r->query), false, false, &q, &nq, &r->err);
  int32_t eos = cll_tok_eos(tok) >= 0 ? cll_tok_eos(tok) : cll_tok_sep(tok);
  for (size_t i = 0; i < r->n_items && r->prep_rc == 0; i++) {
    struct rr_item *it = &r->items[i];
    int32_t *d = NULL, nd = 0;
    r->prep_rc = cll__tokenize(t, it->text, strlen(it->text), false, false, &d, &nd, &r->err);
    if (r->prep_rc != 0)
      break;
    it->toks = malloc(((size_t)nq + (size_t)nd + 4) * sizeof(int32_t));
    if (it->toks == NULL) {
      free(d);
      r->prep_rc = cll_err_set(&r->err, CLL_ENOMEM, "out of memory");
      break;
    }
    int32_t n = 0;
    if (cll_tok_add_bos(tok) || cll_tok_kind(tok) == CLL_TOK_WPM)
      put(it->toks, &n, cll_tok_bos(tok));
    memcpy(it->toks + n, q, (size_t)nq * sizeof(int32_t));
    n += nq;
    if (cll_tok_add_eos(tok))
      put(it->toks, &n, eos);
    if (cll_tok_add_sep(tok))
      put(it->toks, &n, cll_tok_sep(tok));
    memcpy(it->toks + n, d, (size_t)nd * sizeof(int32_t));
    n += nd;
    if (cll_tok_add_eos(tok))
      put(it->toks, &n, eos);
    it->n_toks = n;
    free(d);
    if (n == 0)
      r->prep_rc = cll_err_set(&r->err, CLL_EINVAL, "the input is empty after tokenization");
  }
  free(q);
}

static void on_prepared(uv_work_t *w, int status) {
  struct rr *r = w->data;
  if (r->gone) {
    rr_error(r, 499, "request canceled");
    return;
  }
  if (r->prep_rc != 0) {
    rr_error(r, 400, r->err.msg);
    return;
  }
  for (size_t i = 0; i < r->n_items; i++) {
    struct rr_item *it = &r->items[i];
    struct cll_seq_desc d;
    cll_seq_desc_init(&d);
    d.prompt = it->toks;
    d.n_prompt = it->n_toks;
    d.n_ctx = (int32_t)(r->opts.num_ctx > 0 ? r->opts.num_ctx : 0);
    d.truncate = false; /* a cut pair would score something else */
    d.embed = true;
    d.pooling = CLL_POOL_CLS; /* the head reads the first token's state */
    d.on_embedding = on_vec;
    d.on_done = on_seq_done;
    d.ud = it;
    cll_err err = {0};
    int rc = cll_sched_submit(cll_runner_sched(r->runner), &d, &it->seq, &err);
    if (rc != 0) {
      it->done = true;
      r->n_done++;
      if (!r->failed) {
        r->failed = true;
        r->fail_status = rc == CLL_EFULL ? 503 : rc == CLL_ERANGE ? 400 : 500;
        r->err = err;
      }
      for (size_t k = 0; k < i; k++)
        if (r->items[k].seq && !r->items[k].done)
          cll_seq_cancel(r->items[k].seq);
    }
  }
  if (r->n_done == r->n_items)
    rr_error(r, r->fail_status, r->err.msg);
}

static void on_acquired(void *ud, cll_runner *run, int status, const cll_err *err) {
  struct rr *r = ud;
  r->acq = NULL;
  if (status != 0) {
    rr_error(r,
             status == CLL_EFULL       ? 503
             : status == CLL_ECANCELED ? 499
                                       : 500,
             err && err->msg[0] ? err->msg : cll_strerror(status));
    return;
  }
  r->runner = run;
  if (r->gone) {
    rr_error(r, 499, "request canceled");
    return;
  }
  if (cll_model_info(cll_runner_model(run))->pooling != 4) {
    char msg[700];
    snprintf(msg, sizeof(msg), "%s does not support rerank", r->ref.full);
    rr_error(r, 400, msg);
    return;
  }
  if (r->n_items == 0) {
    answer(r);
    return;
  }
  r->work.data = r;
  if (uv_queue_work(r->api->loop, &r->work, on_prep_work, on_prepared) != 0)
    rr_error(r, 500, "cannot queue work");
}

static void handle(cll_request *req, cll_api *api, bool v1) {
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
    cll_api_error(req, 400, "model is required");
    return;
  }
  json_t *query = json_object_get(body, "query"), *docs = json_object_get(body, "documents");
  json_t *top_n = json_object_get(body, "top_n"), *ret = json_object_get(body, "return_documents");
  const char *bad = NULL;
  if (!json_is_string(query))
    bad = "query must be a string";
  else if (!json_is_array(docs) || json_array_size(docs) == 0)
    bad = "documents must be a non-empty array of strings";
  else if (top_n && !json_is_null(top_n) &&
           (!json_is_integer(top_n) || json_integer_value(top_n) < 0))
    bad = "top_n must be a non-negative integer";
  else if (ret && !json_is_null(ret) && !json_is_boolean(ret))
    bad = "return_documents must be a boolean";
  size_t i;
  json_t *x;
  json_array_foreach(docs, i, x) if (!bad && !json_is_string(x)) bad =
      "documents must be a non-empty array of strings";
  if (bad) {
    json_decref(body);
    cll_api_error(req, 400, bad);
    return;
  }
  struct rr *r = calloc(1, sizeof(*r));
  if (!r) {
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return;
  }
  r->api = api;
  r->req = req;
  r->v1 = v1;
  r->model_req = strdup(model);
  r->query = strdup(json_string_value(query));
  r->top_n = json_is_integer(top_n) ? json_integer_value(top_n) : 0;
  r->return_documents = json_is_true(ret);
  r->items = calloc(json_array_size(docs), sizeof(*r->items));
  cll__gen_opts_defaults(&r->opts);
  if (!r->model_req || !r->query || !r->items) {
    json_decref(body);
    rr_error(r, 500, "out of memory");
    return;
  }
  json_array_foreach(docs, i, x) {
    struct rr_item *it = &r->items[r->n_items++];
    it->r = r;
    it->index = i;
    it->text = strdup(json_string_value(x));
    if (!it->text) {
      json_decref(body);
      rr_error(r, 500, "out of memory");
      return;
    }
  }
  cll_err err = {0};
  if (cll__keep_alive_parse(json_object_get(body, "keep_alive"), &r->keep_alive_ns,
                            &r->keep_alive_set, &err) != 0) {
    json_decref(body);
    rr_error(r, 400, err.msg[0] ? err.msg : "invalid keep_alive");
    return;
  }
  int rc = cll__model_resolve(api->store, r->model_req, &r->ref, &err);
  if (rc != 0) {
    json_decref(body);
    if (rc == CLL_EINVAL) {
      rr_error(r, 400, "invalid model name");
    } else if (rc == CLL_ENOENT) {
      char msg[600];
      snprintf(msg, sizeof(msg), "model \"%.500s\" not found, try pulling it first", r->model_req);
      rr_error(r, 404, msg);
    } else {
      rr_error(r, 500, err.msg);
    }
    return;
  }
  if (cll__gen_opts_apply(&r->opts, r->ref.params, &err) != 0 ||
      cll__gen_opts_apply(&r->opts, json_object_get(body, "options"), &err) != 0) {
    json_decref(body);
    rr_error(r, 400, err.msg);
    return;
  }
  json_decref(body);
  cll_request_on_cancel(req, on_cancel, r);
  struct cll_load_req lr = {0};
  lr.path = r->ref.model_path;
  lr.name = r->ref.display;
  lr.digest = r->ref.man->digest;
  lr.num_ctx = r->opts.num_ctx;
  lr.num_thread = r->opts.num_thread;
  lr.keep_alive_ns = r->keep_alive_ns;
  lr.keep_alive_set = r->keep_alive_set;
  rc = cll_runners_acquire(api->runners, &lr, on_acquired, r, &r->acq, &err);
  if (rc != 0)
    rr_error(r, rc == CLL_EFULL ? 503 : rc == CLL_EINVAL ? 400 : 500, err.msg);
}

static void on_rerank(cll_request *req, void *ud) {
  handle(req, ud, false);
}
static void on_v1_rerank(cll_request *req, void *ud) {
  handle(req, ud, true);
}

int cll_api_rerank_register(cll_api *api) {
  int rc = cll_server_route(api->server, "POST", "/api/rerank", on_rerank, api);
  if (rc == 0)
    rc = cll_server_route(api->server, "POST", "/v1/rerank", on_v1_rerank, api);
  return rc;
}
