/* push.c — POST /api/push (OLLAMA_API.md §1.12): validates the request and
 * streams the push's progress (src/registry/push.c, on the registry's
 * loop) as Ollama's ProgressResponse lines, or answers once at the end
 * with stream false (progress.c). */
#include "progress.h"
#include "cllama/push.h"

static void stop_push(cll__progress_job *j) {
  cll_registry_push_cancel(j->h.push);
}

static void on_push(cll_request *req, void *ud) {
  cll_api *api = ud;
  json_t *body = cll_api_body_object(req);
  if (body == NULL)
    return;
  const char *model;
  cll_name name, found;
  bool insecure, stream;
  if (cll__progress_parse(req, body, &model, &name, &insecure, &stream) != 0)
    goto out;
  if (cll_store_resolve(api->store, &name, &found) != 0) {
    cll_api_errorf(req, 404, "model '%s' not found", model);
    goto out;
  }
  if (api->registry == NULL) { /* made by cll_api_pull_register */
    cll_api_error(req, 500, "the registry client is not running");
    goto out;
  }
  cll__progress_job *j = cll__progress_job_new(req, stream, stop_push);
  if (j == NULL)
    goto out;
  cll_err err = {0};
  /* j->h is set before the first event; j may be freed by the time
   * the call returns (a push that ends at once), so it is not touched after. */
  int rc = cll_registry_push(api->registry, &found, insecure, cll__progress_job_event, j,
                             &j->h.push, &err);
  if (rc != 0)
    cll__progress_job_failed(j, rc, &err);
out:
  json_decref(body);
}

int cll_api_push_register(cll_api *api) {
  return cll_server_route(api->server, "POST", "/api/push", on_push, api);
}
