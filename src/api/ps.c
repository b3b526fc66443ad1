/* ps.c — GET /api/ps (§1.10): the loaded models, and the runners'
 * parameters built from the configuration. */
#include "cllama/api.h"
#include "resolve.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cll_runners_params cll_api_runners_params(const cll_config *cfg) {
  struct cll_runners_params p = cll_runners_params_defaults();
  p.max_loaded = cfg->max_loaded_models > 0 ? cfg->max_loaded_models : 3;
  p.max_queue = cfg->max_queue;
  p.num_parallel = cfg->num_parallel;
  p.keep_alive_ns = cfg->keep_alive_ns;
  p.step_stats_s = cfg->debug >= 1 ? 10 : 0;
  if (cfg->context_length > 0)
    p.num_ctx = cfg->context_length;
  p.on_load = cll__mtext_load;
  p.free_aux = cll__mtext_free;
  return p;
}

static int cmp_expires(const void *a, const void *b) {
  const struct cll_runner_info *x = a, *y = b;
  return x->expires_at_ns < y->expires_at_ns ? 1 : x->expires_at_ns > y->expires_at_ns ? -1 : 0;
}

/* Ollama reports expires_at in local time with an offset; UTC with "Z" is
 * the same instant and every client parses it. Forever is far ahead. */
static void expires_str(int64_t ns, char *buf, size_t size) {
  if (ns == INT64_MAX)
    ns = (int64_t)(292LL * 365 * 86400) * 1000000000LL;
  cll_api_time_rfc3339(ns, buf, size);
}

static json_t *details_of(cll_api *api, const char *name) {
  json_t *d = json_object();
  struct cll__model_ref ref;
  cll_err err;
  if (cll__model_resolve(api->store, name, &ref, &err) == 0) {
    const cll_model_config *c = &ref.man->cfg;
    json_t *fam = json_array();
    for (size_t i = 0; i < c->n_families; i++)
      json_array_append_new(fam, json_string(c->families[i]));
    const cll_layer *ml = cll_manifest_layer(ref.man, CLL_MEDIA_MODEL);
    json_object_set_new(d, "parent_model", json_string(ml && ml->from ? ml->from : ""));
    json_object_set_new(d, "format", json_string(c->format[0] ? c->format : "gguf"));
    json_object_set_new(d, "family", json_string(c->family));
    json_object_set_new(d, "families", c->n_families ? fam : json_null());
    if (!c->n_families)
      json_decref(fam);
    json_object_set_new(d, "parameter_size", json_string(c->parameter_size));
    json_object_set_new(d, "quantization_level", json_string(c->quantization_level));
  }
  cll__model_ref_free(&ref);
  return d;
}

static void on_ps(cll_request *req, void *ud) {
  cll_api *api = ud;
  struct cll_runner_info info[64];
  int n = cll_runners_list(api->runners, info, 64);
  if (n > 64)
    n = 64;
  qsort(info, (size_t)n, sizeof(info[0]), cmp_expires);
  json_t *arr = json_array();
  for (int i = 0; i < n; i++) {
    char exp[64];
    expires_str(info[i].expires_at_ns, exp, sizeof(exp));
    json_t *m =
        json_pack("{s:s,s:s,s:I,s:s,s:o,s:s,s:I,s:I}", "name", info[i].name, "model", info[i].name,
                  "size", (json_int_t)info[i].size_bytes, "digest", info[i].digest, "details",
                  details_of(api, info[i].name), "expires_at", exp, "size_vram", (json_int_t)0,
                  "context_length", (json_int_t)info[i].context_length);
    if (m && info[i].n_threads > 0) /* cllama: the runner's compute threads */
      json_object_set_new(m, "num_thread", json_integer(info[i].n_threads));
    if (m)
      json_array_append_new(arr, m);
    if (api->cfg->debug > 0)
      fprintf(stderr, "level=DEBUG source=ps model=%s active=%d waiting=%d cached=%d\n",
              info[i].name, info[i].sched.n_active, info[i].sched.n_waiting,
              info[i].sched.n_cached);
  }
  json_t *body = json_pack("{s:o}", "models", arr);
  /* cllama extension: the one queue's depth (requests waiting for a model or a slot). */
  json_object_set_new(body, "queue_depth", json_integer(cll_runners_waiting(api->runners)));
  cll_api_json(req, 200, body);
}

int cll_api_ps_register(cll_api *api) {
  return cll_server_route(api->server, "GET", "/api/ps", on_ps, api);
}
