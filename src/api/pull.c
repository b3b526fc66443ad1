/* pull.c — POST /api/pull (OLLAMA_API.md §1.11, §4): validates the request,
 * hands the name to the registry module and turns its progress events into
 * NDJSON lines (or, with "stream": false, one final object).
 *
 * The registry object (pulls and pushes) is created when the route is
 * registered and closed by cll_api_pull_close() at shutdown. A client that goes away detaches from
 * its pull; the download stops when no client waits for it. */
#include "progress.h"
#include "cllama/registry.h"

#include <stdlib.h>
#include <string.h>

static void stop_pull(cll__progress_job *j) {
  cll_registry_pull_cancel(j->h.waiter);
}

static void on_pull(cll_request *req, void *ud) {
  cll_api *api = ud;
  json_t *body = cll_api_body_object(req);
  if (body == NULL)
    return;
  const char *model;
  cll_name name;
  bool insecure, stream;
  if (cll__progress_parse(req, body, &model, &name, &insecure, &stream) != 0)
    goto out;
  cll__progress_job *j = cll__progress_job_new(req, stream, stop_pull);
  if (j == NULL)
    goto out;
  cll_err err = {0};
  /* j->h is set before the first event; j may be freed by the time
   * the call returns (a pull that ends at once), so it is not touched after. */
  int rc = cll_registry_pull(api->registry, &name, insecure, cll__progress_job_event, j,
                             &j->h.waiter, &err);
  if (rc != 0)
    cll__progress_job_failed(j, rc, &err);
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
    if (cfg->push_part_bytes > 0) /* CLLAMA_PUSH_PART_BYTES */
      opts.push_part_bytes = cfg->push_part_bytes;
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
