/* progress.c — Ollama's ProgressResponse stream for /api/pull and
 * /api/push (OLLAMA_API.md §1.11, §1.12): each registry event becomes an
 * NDJSON line, or with "stream": false the last one becomes the answer. */
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
