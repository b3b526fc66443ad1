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
#include "emb_req.h"
#include "text.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one document's sequence gave. */
struct rr_score {
  float score;
  bool have_score;
};

struct rr {
  struct cll__emb b; /* first: the shared request (emb_req.h); one item a document */
  bool v1, return_documents;
  char *query;
  int64_t top_n;
  struct rr_score *scores; /* (b.n_items) new */
};

static void rr_destroy(struct cll__emb *b) {
  struct rr *r = (struct rr *)b;
  free(r->scores);
  free(r->query);
  cll__emb_clear(b);
  free(r);
}

static void rr_error(struct rr *r, int status, const char *msg) {
  cll__emb_fail(&r->b, status, msg);
}

/* The score of item it. */
static struct rr_score *score_of(struct cll__emb_item *it) {
  struct rr *r = (struct rr *)it->owner;
  return &r->scores[it - r->b.items];
}

static int by_score(const void *pa, const void *pb) {
  const struct rr_score *a = *(const struct rr_score *const *)pa;
  const struct rr_score *b = *(const struct rr_score *const *)pb;
  if (a->score != b->score)
    return a->score > b->score ? -1 : 1;
  return a < b ? -1 : a > b; /* one array: the documents' order */
}

static void answer(struct cll__emb *b) {
  struct rr *r = (struct rr *)b;
  struct rr_score **order = malloc((r->b.n_items ? r->b.n_items : 1) * sizeof(*order));
  if (order == NULL) {
    rr_error(r, 500, "out of memory");
    return;
  }
  for (size_t i = 0; i < r->b.n_items; i++)
    order[i] = &r->scores[i];
  qsort(order, r->b.n_items, sizeof(*order), by_score);
  size_t n = r->top_n > 0 && (size_t)r->top_n < r->b.n_items ? (size_t)r->top_n : r->b.n_items;
  json_t *results = json_array();
  for (size_t i = 0; i < n; i++) {
    size_t index = (size_t)(order[i] - r->scores);
    json_t *o = json_pack("{s:I,s:f}", "index", (json_int_t)index, "relevance_score",
                          (double)order[i]->score);
    if (r->return_documents)
      json_object_set_new(o, "document", json_pack("{s:s}", "text", r->b.items[index].text));
    json_array_append_new(results, o);
  }
  free(order);
  json_t *body;
  if (r->v1)
    body = json_pack("{s:s,s:s,s:{s:i,s:i},s:o}", "model", r->b.model_req, "object", "list",
                     "usage", "prompt_tokens", r->b.prompt_tokens, "total_tokens",
                     r->b.prompt_tokens, "results", results);
  else
    body = json_pack("{s:s,s:o}", "model", r->b.model_req, "results", results);
  cll_api_json(r->b.req, 200, body);
  rr_destroy(b);
}

static void on_vec(void *ud, cll_seq *s, const float *v, int32_t n) {
  struct cll__emb_item *it = ud;
  if (n < 1)
    return;
  score_of(it)->score = v[0];
  score_of(it)->have_score = true;
  if (!isfinite(v[0]) && !it->owner->failed) {
    it->owner->failed = true;
    it->owner->fail_status = 500;
    cll_err_set(&it->owner->err, CLL_ERANGE, "the score is NaN or Inf");
  }
}

static void on_seq_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                        const cll_err *err) {
  struct cll__emb_item *it = ud;
  struct rr *r = (struct rr *)it->owner;
  it->done = true;
  it->seq = NULL;
  r->b.n_done++;
  r->b.prompt_tokens += st->prompt_n;
  if ((reason != CLL_DONE_EMBED || !score_of(it)->have_score) && !r->b.failed) {
    r->b.failed = true;
    r->b.fail_status = reason == CLL_DONE_CANCEL ? 499 : 500;
    cll_err_set(&r->b.err, CLL_EIO, "%s",
                err && err->msg[0] ? err->msg : "the document was not scored");
    cll__emb_cancel_running(&r->b);
  }
  if (r->b.n_done < r->b.n_items)
    return;
  if (r->b.gone || r->b.failed)
    rr_error(r, r->b.gone ? 499 : r->b.fail_status, r->b.err.msg);
  else
    answer(&r->b);
}

/* Appends id when it exists (>= 0). */
static void put(int32_t *dst, int32_t *n, int32_t id) {
  if (id >= 0)
    dst[(*n)++] = id;
}

static void on_prep_work(uv_work_t *w) {
  struct rr *r = w->data;
  const cll__mtext *t = cll_runner_aux(r->b.runner);
  const cll_tokenizer *tok = cll__mtext_tok(t);
  int32_t *q = NULL, nq = 0;
  r->b.prep_rc = cll__tokenize(t, r->query, strlen(r->query), false, false, &q, &nq, &r->b.err);
  int32_t eos = cll_tok_eos(tok) >= 0 ? cll_tok_eos(tok) : cll_tok_sep(tok);
  for (size_t i = 0; i < r->b.n_items && r->b.prep_rc == 0; i++) {
    struct cll__emb_item *it = &r->b.items[i];
    int32_t *d = NULL, nd = 0;
    r->b.prep_rc = cll__tokenize(t, it->text, strlen(it->text), false, false, &d, &nd, &r->b.err);
    if (r->b.prep_rc != 0)
      break;
    it->toks = malloc(((size_t)nq + (size_t)nd + 4) * sizeof(int32_t));
    if (it->toks == NULL) {
      free(d);
      r->b.prep_rc = cll_err_set(&r->b.err, CLL_ENOMEM, "out of memory");
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
      r->b.prep_rc = cll_err_set(&r->b.err, CLL_EINVAL, "the input is empty after tokenization");
  }
  free(q);
}

static void on_prepared(uv_work_t *w, int status) {
  struct rr *r = w->data;
  if (r->b.gone) {
    rr_error(r, 499, "request canceled");
    return;
  }
  if (r->b.prep_rc != 0) {
    rr_error(r, 400, r->b.err.msg);
    return;
  }
  for (size_t i = 0; i < r->b.n_items; i++) {
    struct cll__emb_item *it = &r->b.items[i];
    struct cll_seq_desc d;
    cll__emb_seq_desc(&r->b, it, &d);
    d.truncate = false;       /* a cut pair would score something else */
    d.pooling = CLL_POOL_CLS; /* the head reads the first token's state */
    d.on_embedding = on_vec;
    d.on_done = on_seq_done;
    cll_err err = {0};
    int rc = cll_sched_submit(cll_runner_sched(r->b.runner), &d, &it->seq, &err);
    if (rc != 0) {
      it->done = true;
      r->b.n_done++;
      if (!r->b.failed) {
        r->b.failed = true;
        r->b.fail_status = rc == CLL_EFULL ? 503 : rc == CLL_ERANGE ? 400 : 500;
        r->b.err = err;
      }
      cll__emb_cancel_running(&r->b);
    }
  }
  if (r->b.n_done == r->b.n_items)
    rr_error(r, r->b.fail_status, r->b.err.msg);
}

static const struct cll__emb_ops rr_ops = {
    .what = "rerank",
    .rank = true,
    .bad_option_status = 400,
    .answer = answer,
    .destroy = rr_destroy,
    .prep = on_prep_work,
    .prepared = on_prepared,
};

static void handle(cll_request *req, cll_api *api, bool v1) {
  const char *model;
  json_t *body = cll_api_body_model(req, NULL, 400, &model);
  if (!body)
    return;
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
  cll__emb_init(&r->b, &rr_ops, api, req, model);
  r->v1 = v1;
  r->query = strdup(json_string_value(query));
  r->top_n = json_is_integer(top_n) ? json_integer_value(top_n) : 0;
  r->return_documents = json_is_true(ret);
  r->scores = calloc(json_array_size(docs), sizeof(*r->scores));
  bool oom = !r->b.model_req || !r->query || !r->scores;
  json_array_foreach(docs, i, x) {
    if (!oom)
      oom = cll__emb_add_item(&r->b, json_string_value(x)) != 0;
  }
  if (oom) {
    json_decref(body);
    rr_error(r, 500, "out of memory");
    return;
  }
  cll__emb_start(&r->b, body); /* answers and frees r on an error */
  json_decref(body);
}

static void on_rerank(cll_request *req, void *ud) {
  handle(req, ud, false);
}
static void on_v1_rerank(cll_request *req, void *ud) {
  handle(req, ud, true);
}

int cll_api_rerank_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"POST", "/api/rerank", on_rerank, false},
      {"POST", "/v1/rerank", on_v1_rerank, false},
  };
  return CLL_API_ROUTES(api, routes);
}
