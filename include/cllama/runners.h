/* runners.h — the loaded models: load on first use, keep-alive, eviction.
 *
 * Owns: every loaded model of the server as a cll_runner (the cll_model, its
 * cll_ctx, its scheduler, and an optional per-model object the API layer
 * builds at load time, e.g. the tokenizer), the bounded queue of requests
 * waiting for a model (shared with the schedulers' queues of sequences
 * waiting for a slot: one bound, OLLAMA_MAX_QUEUE, for everything waiting),
 * keep-alive timers, and least-recently-used eviction under
 * OLLAMA_MAX_LOADED_MODELS.
 *
 * Threads: loop thread only; callbacks run on the loop thread and never from
 * inside the call that queued them. Loading (file I/O, mmap, building the
 * context) and unloading run as uv_queue_work items, one load at a time, so
 * the loop never blocks.
 *
 * Lifetime: cll_runners_acquire() gives the callback a runner with one use
 * counted for the request; the request gives it back with
 * cll_runner_release() once its sequences are done. A runner in use is never
 * unloaded. When the last use ends the keep-alive clock starts: the duration
 * set by the last request (default OLLAMA_KEEP_ALIVE), 0 unloads at once, a
 * negative one keeps the model forever. */
#ifndef CLLAMA_RUNNERS_H
#define CLLAMA_RUNNERS_H

#include "cllama/common.h"
#include "cllama/engine.h"
#include "cllama/scheduler.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct cll_runners cll_runners;
typedef struct cll_runner cll_runner;
typedef struct cll_acquire cll_acquire;

struct cll_runners_params {
  int max_loaded;        /* OLLAMA_MAX_LOADED_MODELS; <= 0: 3 */
  int max_queue;         /* OLLAMA_MAX_QUEUE: requests waiting, all models together */
  int num_parallel;      /* OLLAMA_NUM_PARALLEL; <= 0: from memory (see runners.c) */
  int64_t keep_alive_ns; /* default keep-alive (OLLAMA_KEEP_ALIVE) */
  int64_t num_ctx;       /* default per-sequence context (OLLAMA_CONTEXT_LENGTH or 4096) */
  int32_t n_batch;       /* step token budget (default 512) */
  int32_t n_threads;     /* compute threads; 0 = one per core */
  int32_t step_stats_s;  /* log scheduler step statistics this often (0: never) */
  /* Optional hook run on the load work item after the model is loaded:
   * builds the API layer's per-model object (tokenizer, template...).
   * *aux is freed with free_aux (also on a work item) at unload. */
  int (*on_load)(void *ud, cll_model *m, void **aux, cll_err *err);
  void (*free_aux)(void *aux);
  void *hook_ud;
};
struct cll_runners_params cll_runners_params_defaults(void);

int cll_runners_new(uv_loop_t *loop, const struct cll_runners_params *p, cll_runners **out);
/* Fails every waiting request, unloads every model (waiting for running
 * steps), then calls cb. Requests still holding runners must release them. */
void cll_runners_close(cll_runners *rs, void (*cb)(void *ud), void *ud);

struct cll_load_req {
  const char *path;      /* GGUF file (the model blob); the key of a runner */
  const char *name;      /* display name for /api/ps ("llama3.2:latest") */
  const char *digest;    /* manifest digest for /api/ps (may be "") */
  int64_t num_ctx;       /* wanted per-sequence context; 0 = default */
  int64_t num_thread;    /* compute threads (Ollama's option); 0 = default, see below */
  int64_t keep_alive_ns; /* used when keep_alive_set */
  bool keep_alive_set;
  bool embedding; /* embedding model: one sequence at a time, as Ollama */
};

/* num_thread is a load-time option, as in Ollama: a runner computes with
 * the team it was loaded with, and a request whose num_thread (0: the
 * params' n_threads, else one thread per physical core) differs from
 * that of the loaded runner reloads it once it is idle. */
/* 0 when n is a num_thread a runner can be loaded with (0, or 1 up to the
 * CPUs this process may run on); else CLL_EINVAL and err says why. */
int cll_runners_check_num_thread(int64_t n, cll_err *err);

/* status 0: r is usable (one use counted). Otherwise r is NULL and err says
 * why (CLL_ECANCELED after cll_acquire_cancel, the load error...). */
typedef void (*cll_acquire_cb)(void *ud, cll_runner *r, int status, const cll_err *err);

/* Queues a request for a model. Returns 0 (cb will run exactly once; *out
 * can cancel it until then) or CLL_EFULL when the queue is full, with err
 * holding Ollama's message, or CLL_EINVAL for a bad num_thread; cb never
 * runs then. Strings are copied. */
int cll_runners_acquire(cll_runners *rs, const struct cll_load_req *req, cll_acquire_cb cb,
                        void *ud, cll_acquire **out, cll_err *err);
/* The client went away while waiting: cb runs with CLL_ECANCELED. */
void cll_acquire_cancel(cll_acquire *a);

/* Ends one use of r; the keep-alive clock starts when the last use ends. */
void cll_runner_release(cll_runner *r);
/* Sets the keep-alive of r (last writer wins, as Ollama). */
void cll_runner_set_keep_alive(cll_runner *r, int64_t keep_alive_ns);

cll_model *cll_runner_model(const cll_runner *r); /* borrowed */
cll_sched *cll_runner_sched(const cll_runner *r); /* borrowed */
void *cll_runner_aux(const cll_runner *r);        /* borrowed */
int64_t cll_runner_n_ctx(const cll_runner *r);    /* per-sequence context */

/* keep_alive 0 with an empty prompt: unloads path's model as soon as it is
 * idle (at once when it already is). Returns whether it was loaded. */
bool cll_runners_expire(cll_runners *rs, const char *path);

struct cll_runner_info {
  const char *name, *digest, *path; /* borrowed until the next loop iteration */
  uint64_t size_bytes;              /* weights + KV pool */
  int64_t expires_at_ns;            /* wall clock, ns since the epoch; INT64_MAX = never */
  int64_t context_length;
  int n_parallel;
  int n_threads; /* the runner's compute team (0 while loading) */
  bool loading;
  struct cll_sched_info sched;
};
/* Fills up to max entries; returns the number of loaded (or loading) models. */
int cll_runners_list(cll_runners *rs, struct cll_runner_info *out, int max);
/* Requests waiting (for a model or a slot), all models together. */
int cll_runners_waiting(const cll_runners *rs);

#endif
