/* metrics.h — the counters behind GET /metrics (src/api/metrics.c). Loop
 * thread only. */
#ifndef CLLAMA_API_METRICS_H
#define CLLAMA_API_METRICS_H

#include "cllama/scheduler.h"

/* Wraps a sequence's callbacks (d->on_token, on_embedding, on_done, ud) so
 * that its tokens, prompt and latencies are counted; call just before
 * cll_sched_submit, and cll__metrics_seq_unwrap when the submit fails (no
 * on_done will come). NULL (out of memory) leaves d as it was. */
struct cll__metrics_seq;
struct cll__metrics_seq *cll__metrics_seq_wrap(struct cll_seq_desc *d);
void cll__metrics_seq_unwrap(struct cll__metrics_seq *w, struct cll_seq_desc *d);

#endif
