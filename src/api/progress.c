/* progress.c — what /api/pull and /api/push share (OLLAMA_API.md §1.11,
 * §1.12): the request's common fields, and Ollama's ProgressResponse
 * stream: each registry event becomes an NDJSON line, or with "stream":
 * false the last one becomes the answer; a client that leaves stops the
 * transfer. */
#include "progress.h"

#include <stdlib.h>
#include <string.h>

/* Ollama's ProgressResponse, zero fields omitted. */
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

static void write_line(cll__progress *p, json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  if (s) {
    size_t n = strlen(s);
    s[n] = '\n'; /* replaces the NUL: the buffer has n+1 bytes */
    cll_stream_write(p->req, s, n + 1);
    free(s);
  }
}

bool cll__progress_event(cll__progress *p, const cll_pull_event *ev) {
  if (!ev->done) {
    if (p->stream) {
      if (!p->started) {
        cll_stream_start(p->req, 200, "application/x-ndjson");
        p->started = true;
      }
      json_t *o = event_json(ev);
      write_line(p, o);
      json_decref(o);
    }
    return false;
  }
  p->finished = true;
  json_t *o = event_json(ev);
  if (p->started) {
    write_line(p, o);
    json_decref(o);
    cll_stream_end(p->req);
  } else {
    cll_api_json(p->req, ev->error ? 500 : 200, o);
  }
  return true;
}

void cll__progress_cancel(cll__progress *p, int reason) {
  const char *msg = reason == CLL_CANCEL_SHUTDOWN ? "server is shutting down" : "request canceled";
  if (p->started) {
    json_t *o = json_pack("{s:s}", "error", msg);
    write_line(p, o);
    json_decref(o);
    cll_stream_end(p->req);
  } else {
    cll_api_error(p->req, reason == CLL_CANCEL_SHUTDOWN ? 503 : 499, msg);
  }
}

int cll__progress_parse(cll_request *req, json_t *body, const char **model, cll_name *name,
                        bool *insecure, bool *stream) {
  bool failed = false;
  *model = cll_api_opt_string(req, body, "model", &failed);
  if (!failed && (*model == NULL || !**model))
    *model = cll_api_opt_string(req, body, "name", &failed);
  if (failed)
    return -1;
  if (*model == NULL || !**model || cll_name_parse(*model, name) != 0) {
    cll_api_error(req, 400, "invalid model name");
    return -1;
  }
  json_t *ins = json_object_get(body, "insecure");
  if (ins && !json_is_boolean(ins) && !json_is_null(ins)) {
    cll_api_error(req, 400, "json: cannot unmarshal into field \"insecure\" of type bool");
    return -1;
  }
  int s = cll_api_stream_flag(req, body);
  if (s < 0)
    return -1;
  *insecure = json_is_true(ins);
  *stream = s == 1;
  return 0;
}

cll__progress_job *cll__progress_job_new(cll_request *req, bool stream,
                                         void (*stop)(cll__progress_job *j)) {
  cll__progress_job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    cll_api_error(req, 500, "out of memory");
    return NULL;
  }
  j->pg.req = req;
  j->pg.stream = stream;
  j->stop = stop;
  cll_request_on_cancel(req, cll__progress_job_cancel, j);
  return j;
}

void cll__progress_job_event(const cll_pull_event *ev, void *arg) {
  cll__progress_job *j = arg;
  if (cll__progress_event(&j->pg, ev))
    free(j); /* the last event: the registry forgets us after this call */
}

void cll__progress_job_cancel(cll_request *req, int reason, void *ud) {
  cll__progress_job *j = ud;
  if (j->pg.finished)
    return;
  j->pg.finished = true;
  j->stop(j);
  cll__progress_cancel(&j->pg, reason);
  free(j);
}

void cll__progress_job_failed(cll__progress_job *j, int rc, const cll_err *err) {
  cll_request *req = j->pg.req;
  cll_request_on_cancel(req, NULL, NULL);
  free(j);
  cll_api_error(req, cll_api_status(rc), err->msg[0] ? err->msg : cll_strerror(rc));
}
