/* scheduler.h — continuous batching of many sequences over one model.
 *
 * Owns: for one loaded model, the running sequences, the queue of sequences
 * waiting for a slot, the KV slots of finished sequences kept for prefix
 * reuse, and the step loop. One *step* is one batched forward pass over the
 * next token of every decoding sequence plus chunks of prompt tokens (chunked
 * prefill within a per-step token budget); it runs as a uv_queue_work item,
 * and sampling happens inside it. The after_work callback, on the loop
 * thread, hands each sequence its token, drops cancelled ones, admits waiting
 * ones and queues the next step.
 *
 * Threads: every function here is called on the loop thread, and every
 * callback runs on the loop thread — except cll_seq_desc.sample, which runs
 * on a work-queue thread inside the step. Nothing here blocks; no callback is
 * ever called from inside the function that triggered it (submit, cancel,
 * resume): they run later from the loop.
 *
 * The backend (cll_sched_backend) is the engine's cll_ctx in the server
 * (cll_sched_backend_engine()) and a fake in unit tests.
 *
 * Ownership: a cll_seq returned by cll_sched_submit belongs to the scheduler
 * and stays valid until its on_done callback has returned; after that the
 * pointer is dangling. The prompt passed to submit is copied. */
#ifndef CLLAMA_SCHEDULER_H
#define CLLAMA_SCHEDULER_H

#include "cllama/common.h"
#include "cllama/engine.h"
#include "cllama/grammar.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct cll_sched cll_sched;
typedef struct cll_seq cll_seq;

/* What the loop-thread token callback tells the scheduler. */
enum cll_seq_action {
  CLL_SEQ_CONTINUE = 0, /* keep generating */
  CLL_SEQ_STOP = 1,     /* finished (EOS or stop string): done_reason "stop" */
  CLL_SEQ_PAUSE = 2,    /* client is slow: skip this sequence until cll_seq_resume */
};

enum cll_done_reason {
  CLL_DONE_STOP = 0,   /* on_token returned STOP */
  CLL_DONE_LENGTH = 1, /* num_predict reached, or context full with shift off */
  CLL_DONE_CANCEL = 2, /* cll_seq_cancel or scheduler closed */
  CLL_DONE_ERROR = 3,  /* err holds the reason */
  CLL_DONE_EMBED = 4,  /* an embedding sequence finished (on_embedding ran) */
};
/* "stop", "length", ... as Ollama spells done_reason (static string). */
const char *cll_done_reason_str(int reason);

enum cll_pooling { CLL_POOL_MEAN = 0, CLL_POOL_CLS = 1, CLL_POOL_LAST = 2 };

struct cll_seq_stats {
  int32_t prompt_n;      /* prompt tokens after truncation, reused ones included
                            (Ollama's prompt_eval_count) */
  int32_t prompt_reused; /* of those, taken from another sequence's KV */
  int32_t eval_n;        /* tokens generated (delivered to on_token) */
  int32_t n_shift;       /* context shifts performed */
  bool truncated;        /* the prompt was longer than n_ctx and was cut */
  uint64_t queue_ns;     /* submit -> admitted to a slot */
  uint64_t prompt_ns;    /* first prompt chunk -> first token */
  uint64_t eval_ns;      /* first token -> done */
};

/* Token callback (loop thread): token was sampled for the sequence. */
typedef int (*cll_seq_token_cb)(void *ud, cll_seq *s, int32_t token);
/* Embedding callback (loop thread): the pooled final hidden state, n floats,
 * borrowed for the duration of the call. Not normalised. */
typedef void (*cll_seq_embd_cb)(void *ud, cll_seq *s, const float *v, int32_t n);
/* Done callback (loop thread): runs exactly once per submitted sequence.
 * err is NULL unless reason is CLL_DONE_ERROR. */
typedef void (*cll_seq_done_cb)(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                                const cll_err *err);
/* Sampler (work-queue thread, inside the step): picks the next token from
 * n_vocab logits, which belong to the step and may be modified in place
 * (penalties). NULL means greedy (argmax, lowest id on ties). */
typedef int32_t (*cll_seq_sample_fn)(void *sample_ud, float *logits, int64_t n_vocab);

struct cll_seq_desc {
  const int32_t *prompt; /* (n_prompt) token ids; copied by submit */
  int32_t n_prompt;      /* >= 1 */
  int32_t n_ctx;         /* context window of this sequence (num_ctx); 0 = the scheduler's */
  int32_t n_keep;        /* tokens kept at the start on shift/truncation (num_keep) */
  int32_t n_predict;     /* most tokens to generate; < 0 unbounded (capped at 10 x n_ctx) */
  bool shift;            /* shift the context when full (else done "length") */
  bool truncate;         /* cut a prompt longer than n_ctx (else the submit fails) */
  bool embed;            /* embedding sequence: no generation, pooled hidden state */
  int pooling;           /* enum cll_pooling, for embed */
  cll_seq_sample_fn sample;
  void *sample_ud;            /* used only inside steps while the sequence runs */
  cll_grammar_state *grammar; /* optional constrained decoding (borrowed; the caller
                              frees it after on_done). Inside the step its mask
                              sets disallowed logits to -inf before sample runs
                              (with the tokens left of n_predict as its budget) and
                              the sampled token advances it; a complete value that
                              nothing can extend ends the sequence (STOP); a state
                              that allows no token ends it with an error. */
  cll_seq_token_cb on_token;
  cll_seq_embd_cb on_embedding;
  cll_seq_done_cb on_done;
  void *ud;
};
void cll_seq_desc_init(struct cll_seq_desc *d);

/* What the scheduler needs from a model context. The engine version wraps
 * cll_forward and the cll_kv_* functions; every function runs on the thread
 * of the step, except n_vocab/n_embd which are plain values. */
struct cll_sched_backend {
  int (*forward)(void *ctx, const struct cll_batch *b, cll_err *err);
  const float *(*logits)(void *ctx, int32_t k);
  const float *(*hidden)(void *ctx, int32_t k);
  void (*kv_trim)(void *ctx, int32_t seq, int32_t p0);
  int (*kv_copy)(void *ctx, int32_t src, int32_t dst, int32_t n);
  void (*kv_shift)(void *ctx, int32_t seq, int32_t p0, int32_t n_discard);
  /* The longest prefix (<= n) of seq's KV a new prompt may reuse (NULL: n).
   * Sliding-window rings may hold too little of an old prefix. */
  int32_t (*kv_reusable)(void *ctx, int32_t seq, int32_t n);
  /* KV cells in use, a cell that several sequences share counted once
   * (NULL: the scheduler's own count, every sequence's cells). Called on
   * the loop thread between steps. */
  int64_t (*kv_cells_used)(void *ctx);
};
/* The backend over a cll_ctx (pass the cll_ctx as backend_ctx). */
const struct cll_sched_backend *cll_sched_backend_engine(void);

struct cll_sched_params {
  int32_t n_parallel;       /* sequences generating at once (OLLAMA_NUM_PARALLEL) */
  int32_t n_slots;          /* KV sequence ids (>= n_parallel; extras hold finished
                               sequences' KV for prefix reuse); = ctx n_seq_max */
  int32_t n_ctx;            /* default and largest per-sequence context */
  int64_t n_cells;          /* KV cells in the pool (n_parallel * n_ctx is always safe) */
  int32_t n_batch;          /* token budget of one step (<= ctx n_batch_max) */
  bool whole_prompts;       /* a prompt goes into one step whole, never in chunks
                               (encoders: bidirectional attention, no KV cache);
                               n_batch must hold the longest prompt */
  int32_t n_batch_decoding; /* budget of prompt tokens in a step that also carries
                               decoding sequences: keeps their token gaps even
                               while new prompts are read (0 = n_batch) */
  int64_t n_vocab;
  int64_t n_embd;
  int32_t max_waiting;      /* sequences waiting for a slot before submit says EFULL */
  int32_t *shared_waiting;  /* optional counter shared by several schedulers
                               (one bounded queue for the whole server) */
  const char *name;         /* for log lines; borrowed for the scheduler's life */
  int32_t stats_interval_s; /* > 0: a DEBUG log line of step statistics this
                               often while busy (OLLAMA_DEBUG=1) */
};
struct cll_sched_params cll_sched_params_defaults(void);

/* New scheduler on loop. backend_ctx is borrowed (the caller frees it after
 * the close callback). */
int cll_sched_new(uv_loop_t *loop, const struct cll_sched_params *p,
                  const struct cll_sched_backend *be, void *backend_ctx, cll_sched **out,
                  cll_err *err);
/* Cancels everything (each on_done runs with CLL_DONE_CANCEL), waits for a
 * running step, closes the handles, frees, then calls cb (may be NULL). */
void cll_sched_close(cll_sched *s, void (*cb)(void *ud), void *ud);

/* Queues a sequence. Returns 0 and sets *out (its on_done will run), or a
 * negative code and on_done never runs: CLL_EFULL when the waiting queue is
 * full, CLL_EINVAL for a bad description, CLL_ERANGE when the prompt does not
 * fit n_ctx and truncate is false (err says so). */
int cll_sched_submit(cll_sched *s, const struct cll_seq_desc *d, cll_seq **out, cll_err *err);
/* The client went away: the sequence leaves within one step (also during its
 * prompt); on_done runs with CLL_DONE_CANCEL unless it already finished. */
void cll_seq_cancel(cll_seq *q);
/* Resumes a sequence paused by on_token returning CLL_SEQ_PAUSE. */
void cll_seq_resume(cll_seq *q);

struct cll_sched_info {
  int32_t n_active;  /* sequences holding a slot */
  int32_t n_waiting; /* sequences waiting for a slot */
  int32_t n_cached;  /* finished sequences' KV kept for reuse */
  uint64_t n_steps;  /* steps run so far */
  int64_t
      kv_cells_used; /* KV cells held by sequences (a shared prefix once), as of the last step */
  int64_t kv_cells;  /* KV cells in the pool */
  bool idle;         /* no sequence, no step in flight */
};
void cll_sched_info(const cll_sched *s, struct cll_sched_info *out);

/* Called (loop thread) whenever the scheduler becomes idle: no active and no
 * waiting sequence. Used by the model manager to start keep-alive timers. */
void cll_sched_set_idle_cb(cll_sched *s, void (*cb)(void *ud), void *ud);

#endif
