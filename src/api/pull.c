/* pull.c — POST /api/pull (OLLAMA_API.md §1.11, §4): validates the request,
 * hands the name to the registry module and turns its progress events into
 * NDJSON lines (or, with "stream": false, one final object).
 *
 * The registry object is created when the route is registered and closed by
 * cll_api_pull_close() at shutdown. A client that goes away detaches from
 * its pull; the download stops when no client waits for it. */
#include "progress.h"
#include "cllama/registry.h"

#include <stdlib.h>
#include <string.h>

struct pull_req {
  cll__progress pg; /* the answer: NDJSON lines or one object */
  cll_pull_waiter *w;
};

static void on_pull_event(const cll_pull_event *ev, void *arg) {
  struct pull_req *pr = arg;
  if (cll__progress_event(&pr->pg, ev))
    free(pr); /* the last event: the registry forgets us after this call */
}

static void on_pull_cancel(cll_request *req, int reason, void *ud) {
  struct pull_req *pr = ud;
  if (pr->pg.finished)
    return;
  pr->pg.finished = true;
  cll_registry_pull_cancel(pr->w);
  cll__progress_cancel(&pr->pg, reason);
  free(pr);
}

static void on_pull(cll_request *req, void *ud) {
  cll_api *api = ud;
  json_t *body = cll_api_body_object(req);
  if (body == NULL)
    return;
  bool failed = false;
  const char *model = cll_api_opt_string(req, body, "model", &failed);
  if (failed)
    goto out;
  if (model == NULL || !*model)
    model = cll_api_opt_string(req, body, "name", &failed);
  if (failed)
    goto out;
  cll_name name;
  if (model == NULL || !*model || cll_name_parse(model, &name) != 0) {
    cll_api_error(req, 400, "invalid model name");
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
  struct pull_req *pr = calloc(1, sizeof(*pr));
  if (pr == NULL) {
    cll_api_error(req, 500, "out of memory");
    goto out;
  }
  pr->pg.req = req;
  pr->pg.stream = stream == 1;
  cll_request_on_cancel(req, on_pull_cancel, pr);
  cll_err err = {0};
  /* pr->w is set before the first event; pr may be freed by the time the
   * call returns (a pull that ends at once), so it is not touched after. */
  int rc =
      cll_registry_pull(api->registry, &name, json_is_true(ins), on_pull_event, pr, &pr->w, &err);
  if (rc != 0) {
    cll_request_on_cancel(req, NULL, NULL);
    free(pr);
    cll_api_error(req, cll_api_status(rc), err.msg[0] ? err.msg : cll_strerror(rc));
    goto out;
  }
out:
  json_decref(body);
}

int cll_api_pull_register(cll_api *api) {
  if (api->registry == NULL) {
    cll_registry_opts opts;
    cll_registry_opts_defaults(&opts);
    const cll_config *cfg = api->cfg; /* the environment's say, validated in one place */
    snprintf(opts.key_dir, sizeof(opts.key_dir), "%.1000s/.ollama", cfg->home);
    if (cfg->pull_part_bytes > 0)
      opts.part_min_bytes = opts.part_max_bytes = cfg->pull_part_bytes;
    if (cfg->pull_parts > 0)
      opts.max_parts = cfg->pull_parts;
    if (cfg->pull_stall_ms > 0)
      opts.stall_ms = (uint64_t)cfg->pull_stall_ms;
    if (cfg->pull_retry_ms > 0)
      opts.retry_base_ms = (uint64_t)cfg->pull_retry_ms;
    opts.prune = !cfg->noprune;
    cll_err err = {0};
    int rc = cll_registry_new(api->loop, api->store, &opts, &api->registry, &err);
    if (rc != 0)
      return rc;
  }
  return cll_server_route(api->server, "POST", "/api/pull", on_pull, api);
}

void cll_api_pull_close(cll_api *api) {
  cll_registry_close(api->registry);
  api->registry = NULL;
}
