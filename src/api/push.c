/* push.c — POST /api/push (OLLAMA_API.md §1.12): validates the request and
 * streams the push's progress (src/registry/push.c) as Ollama's
 * ProgressResponse lines, or answers once at the end with stream false. */
#include "cllama/api.h"
#include "cllama/push.h"

#include <stdlib.h>
#include <string.h>

struct push_req {
  cll_request *req;
  cll_push *p;
  bool stream, started, finished;
};

static json_t *event_json(const cll_pull_event *ev) {
  if (ev->error)
    return json_pack("{s:s}", "error", ev->error);
  json_t *o = json_pack("{s:s}", "status", ev->status ? ev->status : "");
  if (ev->digest)
    json_object_set_new(o, "digest", json_string(ev->digest));
  if (ev->total)
    json_object_set_new(o, "total", json_integer(ev->total));
  if (ev->completed)
    json_object_set_new(o, "completed", json_integer(ev->completed));
  return o;
}

static void write_line(struct push_req *pr, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  if (s) {
    size_t n = strlen(s);
    s[n] = '\n';
    cll_stream_write(pr->req, s, n + 1);
    free(s);
  }
}

static void on_push_event(const cll_pull_event *ev, void *arg) {
  struct push_req *pr = arg;
  if (!ev->done) {
    if (pr->stream) {
      if (!pr->started) {
        cll_stream_start(pr->req, 200, "application/x-ndjson");
        pr->started = true;
      }
      json_t *o = event_json(ev);
      write_line(pr, o);
      json_decref(o);
    }
    return;
  }
  pr->finished = true;
  json_t *o = event_json(ev);
  if (pr->started) {
    write_line(pr, o);
    json_decref(o);
    cll_stream_end(pr->req);
  } else {
    cll_api_json(pr->req, ev->error ? 500 : 200, o);
  }
  free(pr);
}

static void on_push_cancel(cll_request *req, int reason, void *ud) {
  struct push_req *pr = ud;
  if (pr->finished)
    return;
  pr->finished = true;
  cll_registry_push_cancel(pr->p);
  const char *msg = reason == CLL_CANCEL_SHUTDOWN ? "server is shutting down" : "request canceled";
  if (pr->started) {
    json_t *o = json_pack("{s:s}", "error", msg);
    write_line(pr, o);
    json_decref(o);
    cll_stream_end(req);
  } else {
    cll_api_error(req, reason == CLL_CANCEL_SHUTDOWN ? 503 : 499, msg);
  }
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
  pr->req = req;
  pr->stream = stream == 1;
  cll_registry_opts opts;
  cll_registry_opts_defaults(&opts);
  if (api->cfg->push_part_bytes > 0) /* CLLAMA_PUSH_PART_BYTES, validated in cll_config */
    opts.push_part_bytes = api->cfg->push_part_bytes;
  cll_err err = {0};
  int rc = cll_registry_push(api->loop, api->store, &opts, &found, json_is_true(ins),
                             on_push_event, pr, &pr->p, &err);
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
