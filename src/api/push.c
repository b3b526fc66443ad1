/* push.c — POST /api/push (OLLAMA_API.md §1.12): validates the request and
 * streams the push's progress (src/registry/push.c) as Ollama's
 * ProgressResponse lines, or answers once at the end with stream false. */
#include "progress.h"
#include "cllama/push.h"

#include <stdlib.h>
#include <string.h>

struct push_req {
  cll__progress pg; /* the answer: NDJSON lines or one object */
  cll_push *p;
};

static void on_push_event(const cll_pull_event *ev, void *arg) {
  struct push_req *pr = arg;
  if (cll__progress_event(&pr->pg, ev))
    free(pr); /* the last event: the registry forgets us after this call */
}

static void on_push_cancel(cll_request *req, int reason, void *ud) {
  struct push_req *pr = ud;
  if (pr->pg.finished)
    return;
  pr->pg.finished = true;
  cll_registry_push_cancel(pr->p);
  cll__progress_cancel(&pr->pg, reason);
  free(pr);
}

static void on_push(cll_request *req, void *ud) {
  cll_api *api = ud;
  json_t *body = cll_api_body_object(req);
  if (body == NULL)
    return;
  bool failed = false;
  const char *model = cll_api_opt_string(req, body, "model", &failed);
  if (!failed && (model == NULL || !*model))
    model = cll_api_opt_string(req, body, "name", &failed);
  if (failed)
    goto out;
  cll_name name, found;
  if (model == NULL || !*model || cll_name_parse(model, &name) != 0) {
    cll_api_error(req, 400, "invalid model name");
    goto out;
  }
  if (cll_store_resolve(api->store, &name, &found) != 0) {
    cll_api_errorf(req, 404, "model '%s' not found", model);
    goto out;
  }
  json_t *ins = json_object_get(body, "insecure");
  if (ins && !json_is_boolean(ins) && !json_is_null(ins)) {
    cll_api_error(req, 400, "json: cannot unmarshal into field \"insecure\" of type bool");
    goto out;
  }
  int stream = cll_api_stream_flag(req, body);
  if (stream < 0)
    goto out;
  struct push_req *pr = calloc(1, sizeof(*pr));
  if (pr == NULL) {
    cll_api_error(req, 500, "out of memory");
    goto out;
  }
  pr->pg.req = req;
  pr->pg.stream = stream == 1;
  cll_registry_opts opts;
  cll_registry_opts_defaults(&opts);
  if (api->cfg->push_part_bytes > 0) /* CLLAMA_PUSH_PART_BYTES, validated in cll_config */
    opts.push_part_bytes = api->cfg->push_part_bytes;
  cll_err err = {0};
  int rc = cll_registry_push(api->loop, api->store, &opts, &found, json_is_true(ins), on_push_event,
                             pr, &pr->p, &err);
  if (rc != 0) {
    free(pr);
    cll_api_error(req, cll_api_status(rc), err.msg);
    goto out;
  }
  cll_request_on_cancel(req, on_push_cancel, pr);
out:
  json_decref(body);
}

int cll_api_push_register(cll_api *api) {
  return cll_server_route(api->server, "POST", "/api/push", on_push, api);
}
