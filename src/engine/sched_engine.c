/* sched_engine.c — the scheduler's backend over the engine's cll_ctx.
 * Kept apart from scheduler.c so the scheduler's unit tests can link with a
 * fake backend without the engine. */
#include "cllama/scheduler.h"

static int be_forward(void *c, const struct cll_batch *b, cll_err *err) {
  return cll_forward(c, b, err);
}
static const float *be_logits(void *c, int32_t k) {
  return cll_ctx_logits(c, k);
}
static const float *be_hidden(void *c, int32_t k) {
  return cll_ctx_hidden(c, k);
}
static void be_trim(void *c, int32_t seq, int32_t p0) {
  cll_kv_seq_trim(c, seq, p0);
}
static int be_copy(void *c, int32_t src, int32_t dst, int32_t n) {
  return cll_kv_seq_copy(c, src, dst, n);
}
static void be_shift(void *c, int32_t seq, int32_t p0, int32_t n) {
  cll_kv_seq_shift(c, seq, p0, n);
}

static int32_t be_reusable(void *c, int32_t seq, int32_t n) {
  return cll_kv_seq_reusable(c, seq, n);
}

static int64_t be_cells_used(void *c) {
  return cll_kv_cells_used(c);
}

static const struct cll_sched_backend engine_backend = {
    be_forward, be_logits, be_hidden, be_trim, be_copy, be_shift, be_reusable, be_cells_used,
};

const struct cll_sched_backend *cll_sched_backend_engine(void) {
  return &engine_backend;
}
