/* emb_req.c — the request set-up /api/embed and /api/rerank share (see
 * emb_req.h). */
#include "emb_req.h"

#include "cllama/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cll__emb_init(struct cll__emb *e, const struct cll__emb_ops *ops, cll_api *api,
                   cll_request *req, const char *model) {
  e->ops = ops;
  e->api = api;
  e->req = req;
  e->t0 = uv_hrtime();
  e->model_req = strdup(model);
  cll__gen_opts_defaults(&e->opts);
}

int cll__emb_add_item(struct cll__emb *e, const char *text) {
  struct cll__emb_item *it = realloc(e->items, (e->n_items + 1) * sizeof(*it));
  if (!it)
    return CLL_ENOMEM;
  e->items = it;
  memset(&it[e->n_items], 0, sizeof(*it));
  it[e->n_items].owner = e;
  it[e->n_items].text = strdup(text);
  if (it[e->n_items].text == NULL) /* found by test_chaos */
    return CLL_ENOMEM;
  e->n_items++;
  return 0;
}

void cll__emb_clear(struct cll__emb *e) {
  if (e->runner)
    cll_runner_release(e->runner);
  e->runner = NULL;
  for (size_t i = 0; i < e->n_items; i++) {
    free(e->items[i].text);
    free(e->items[i].toks);
  }
  free(e->items);
  e->items = NULL;
  e->n_items = 0;
  cll__model_ref_free(&e->ref);
  cll__gen_opts_free(&e->opts);
  free(e->model_req);
  e->model_req = NULL;
}

void cll__emb_fail(struct cll__emb *e, int status, const char *msg) {
  cll_api_error(e->req, status, msg);
  e->ops->destroy(e);
}

void cll__emb_cancel_running(struct cll__emb *e) {
  for (size_t i = 0; i < e->n_items; i++)
    if (e->items[i].seq && !e->items[i].done)
      cll_seq_cancel(e->items[i].seq);
}

static void on_cancel(cll_request *req, int reason, void *ud) {
  struct cll__emb *e = ud;
  e->gone = true;
  if (e->acq)
    cll_acquire_cancel(e->acq);
  cll__emb_cancel_running(e);
}

static void on_acquired(void *ud, cll_runner *r, int status, const cll_err *err) {
  struct cll__emb *e = ud;
  e->acq = NULL;
  e->t_loaded = uv_hrtime();
  if (status != 0) {
    cll__emb_fail(e,
                  status == CLL_EFULL       ? 503
                  : status == CLL_ECANCELED ? 499
                                            : 500,
                  err && err->msg[0] ? err->msg : cll_strerror(status));
    return;
  }
  e->runner = r;
  if (e->gone) {
    cll__emb_fail(e, 499, "request canceled");
    return;
  }
  /* A reranker's output is a score (rank pooling), not an embedding. */
  if ((cll_model_info(cll_runner_model(r))->pooling == 4) != e->ops->rank) {
    char msg[700];
    snprintf(msg, sizeof(msg), "%s does not support %s", e->ref.full, e->ops->what);
    cll__emb_fail(e, 400, msg);
    return;
  }
  if (e->n_items == 0) {
    e->ops->answer(e);
    return;
  }
  e->work.data = e;
  if (uv_queue_work(e->api->loop, &e->work, e->ops->prep, e->ops->prepared) != 0)
    cll__emb_fail(e, 500, "cannot queue work");
}

void cll__emb_start(struct cll__emb *e, json_t *body) {
  cll_err err = {0};
  if (cll__keep_alive_parse(json_object_get(body, "keep_alive"), &e->keep_alive_ns,
                            &e->keep_alive_set, &err) != 0) {
    cll__emb_fail(e, 400, err.msg[0] ? err.msg : "invalid keep_alive");
    return;
  }
  int rc = cll__model_resolve(e->api->store, e->model_req, &e->ref, &err);
  if (rc != 0) {
    if (rc == CLL_EINVAL) {
      cll__emb_fail(e, 400, "invalid model name");
    } else if (rc == CLL_ENOENT) {
      char msg[700];
      snprintf(msg, sizeof(msg), "model \"%s\" not found, try pulling it first", e->model_req);
      cll__emb_fail(e, 404, msg);
    } else {
      cll__emb_fail(e, 500, err.msg);
    }
    return;
  }
  json_t *ro = json_object_get(body, "options");
  if (cll__gen_opts_apply(&e->opts, e->ref.params, &err) != 0 ||
      cll__gen_opts_apply(&e->opts, ro, &err) != 0) {
    /* Options that are not an object: 400; a known key of the wrong type
     * as the endpoint says. */
    cll__emb_fail(e,
                  ro && !json_is_null(ro) && !json_is_object(ro) ? 400 : e->ops->bad_option_status,
                  err.msg);
    return;
  }
  cll_request_on_cancel(e->req, on_cancel, e);
  struct cll_load_req lr = {0};
  lr.path = e->ref.model_path;
  lr.name = e->ref.display;
  lr.digest = e->ref.man->digest;
  lr.num_ctx = e->opts.num_ctx;
  lr.num_thread = e->opts.num_thread;
  lr.keep_alive_ns = e->keep_alive_ns;
  lr.keep_alive_set = e->keep_alive_set;
  rc = cll_runners_acquire(e->api->runners, &lr, on_acquired, e, &e->acq, &err);
  if (rc != 0)
    cll__emb_fail(e, rc == CLL_EFULL ? 503 : rc == CLL_EINVAL ? 400 : 500, err.msg);
}

void cll__emb_seq_desc(const struct cll__emb *e, struct cll__emb_item *it, struct cll_seq_desc *d) {
  cll_seq_desc_init(d);
  d->prompt = it->toks;
  d->n_prompt = it->n_toks;
  d->n_ctx = (int32_t)(e->opts.num_ctx > 0 ? e->opts.num_ctx : 0);
  d->embed = true;
  d->ud = it;
}
