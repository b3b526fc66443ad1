/* emb_req.h — what /api/embed (embed.c) and /api/rerank (rerank.c) share:
 * a request with a list of text inputs that resolves its model, applies the
 * options, acquires a runner, has the endpoint tokenize its inputs on a work
 * item, and runs one embedding sequence per input through the scheduler.
 * The endpoint keeps what differs: reading the request, tokenizing,
 * submitting, gathering the results and the answer.
 *
 * An endpoint's request struct starts with a struct cll__emb (so a
 * struct cll__emb * is also a pointer to it); ops->destroy frees the whole.
 *
 * Threads: loop thread, except the ops' prep work (a uv work item, which
 * may touch the items' toks and e->err / e->prep_rc only). */
#ifndef CLLAMA_API_EMB_REQ_H
#define CLLAMA_API_EMB_REQ_H

#include "cllama/api.h"
#include "gen.h"
#include "resolve.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct cll__emb;

/* One input and its sequence. */
struct cll__emb_item {
  struct cll__emb *owner;
  char *text;     /* the input (new) */
  int32_t *toks;  /* (n_toks) new; filled by the endpoint's prep work */
  int32_t n_toks; /* */
  cll_seq *seq;   /* borrowed while its sequence runs, else NULL */
  bool done;      /* its sequence ended, or it will never run */
};

struct cll__emb_ops {
  const char *what;      /* "<model> does not support <what>" */
  bool rank;             /* the model must (true) or must not (false) have rank pooling */
  int bad_option_status; /* status for an option of the wrong type (Ollama: 500 embed) */
  void (*answer)(struct cll__emb *e);  /* answers 200 and destroys e */
  void (*destroy)(struct cll__emb *e); /* cll__emb_clear, the endpoint's own part, free */
  uv_work_cb prep;                     /* tokenizes the items (a work item) */
  uv_after_work_cb prepared;           /* then, on the loop: submit the sequences */
};

struct cll__emb {
  const struct cll__emb_ops *ops;
  cll_api *api;
  cll_request *req;
  char *model_req; /* the model as asked (new) */
  struct cll__model_ref ref;
  struct cll__gen_opts opts;
  int64_t keep_alive_ns;
  bool keep_alive_set;
  struct cll__emb_item *items; /* (n_items) new */
  size_t n_items, n_done;
  int32_t prompt_tokens;
  cll_acquire *acq;
  cll_runner *runner; /* held from acquire to destroy */
  uint64_t t0, t_loaded;
  bool gone, failed;
  int fail_status;
  cll_err err;
  uv_work_t work;
  int prep_rc;
};

/* Sets up the shared part (default options, t0 = now); model is copied. */
void cll__emb_init(struct cll__emb *e, const struct cll__emb_ops *ops, cll_api *api,
                   cll_request *req, const char *model);
/* Appends an input (text copied). 0 or CLL_ENOMEM. */
int cll__emb_add_item(struct cll__emb *e, const char *text);
/* Frees the shared part (releases the runner); e itself is the caller's. */
void cll__emb_clear(struct cll__emb *e);
/* Answers {"error": msg} with status and destroys e. */
void cll__emb_fail(struct cll__emb *e, int status, const char *msg);
/* Cancels every item whose sequence still runs. */
void cll__emb_cancel_running(struct cll__emb *e);
/* keep_alive, the model (resolved from e->model_req), its parameters and
 * the request's options from body (borrowed), then the runner: the ops'
 * prep work runs when it is there (answer at once when there are no
 * items). On an error it answers and destroys e. */
void cll__emb_start(struct cll__emb *e, json_t *body);
/* The scheduler's description of one item's sequence: its tokens, the
 * request's num_ctx, embedding output, ud = it. The caller sets truncate,
 * pooling and the callbacks. */
void cll__emb_seq_desc(const struct cll__emb *e, struct cll__emb_item *it, struct cll_seq_desc *d);

#endif
