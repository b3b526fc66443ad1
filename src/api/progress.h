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

/* What /api/pull and /api/push share of a request: model (or name) parsed
 * into *name (model is borrowed from body), insecure, stream. Returns 0,
 * or -1 once the error is answered. */
int cll__progress_parse(cll_request *req, json_t *body, const char **model, cll_name *name,
                        bool *insecure, bool *stream);

/* A progress answer tied to one registry transfer (a pull's waiter, a
 * push): job_event is the transfer's cll_pull_event_fn (it frees the job
 * with the last event) and job_cancel the request's cancel callback (it
 * stops the transfer with stop(j) and frees the job). */
typedef struct cll__progress_job {
  cll__progress pg;
  union { /* the transfer; set by the registry before its first event */
    struct cll_pull_waiter *waiter;
    struct cll_push *push;
  } h;
  void (*stop)(struct cll__progress_job *j); /* detaches from the transfer: no event after */
} cll__progress_job;

/* New job answering req, registered as req's cancel callback; NULL (500
 * answered) when out of memory. */
cll__progress_job *cll__progress_job_new(cll_request *req, bool stream,
                                         void (*stop)(cll__progress_job *j));
void cll__progress_job_event(const cll_pull_event *ev, void *arg);
void cll__progress_job_cancel(cll_request *req, int reason, void *ud);
/* The transfer did not start (rc, err): answers the error, frees the job. */
void cll__progress_job_failed(cll__progress_job *j, int rc, const cll_err *err);

#endif
