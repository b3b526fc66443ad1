/* progress.h — Ollama's ProgressResponse stream, shared by /api/pull and
 * /api/push (loop thread only). */
#ifndef CLLAMA_API_PROGRESS_H
#define CLLAMA_API_PROGRESS_H

#include "cllama/api.h"
#include "cllama/registry.h"

#include <stdbool.h>

typedef struct cll__progress {
  cll_request *req; /* borrowed: the request being answered */
  bool stream;      /* NDJSON lines as events come, else one object at the end */
  bool started;     /* the NDJSON head has been sent */
  bool finished;    /* the answer is complete: no event or cancel may answer again */
} cll__progress;

/* Answers one event: an NDJSON line, or with the last event (ev->done) the
 * last line or the one object. Returns true when ev was the last event; the
 * caller then frees its state. */
bool cll__progress_event(cll__progress *p, const cll_pull_event *ev);

/* Answers a request whose client left or whose server stops (reason is a
 * CLL_CANCEL_* code): an error line when streaming, else 499/503. The
 * caller has set p->finished and stopped the transfer. */
void cll__progress_cancel(cll__progress *p, int reason);

#endif
