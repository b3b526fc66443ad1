/* runners.c — loaded models and their lifecycle (see runners.h).
 *
 * DESIGN. Everything here runs on the loop thread except the bodies of the
 * load and unload work items, which touch only their own runner's model,
 * context and aux object. A runner is LOADING (work item in flight), READY,
 * or UNLOADING (scheduler closing, then a work item freeing the context and
 * the model). Requests wait in one FIFO (process_queue is the only place
 * that hands out runners): a request attaches at once to a READY runner of
 * its model whose context is large enough; otherwise, one load at a time,
 * the model is loaded, first evicting the least recently used idle runner
 * when OLLAMA_MAX_LOADED_MODELS are loaded, or unloading an idle runner of
 * the same model whose context is too small or whose compute team is not
 * the num_thread asked for (Ollama's reload on changed load-time options).
 *
 * Default parallelism (OLLAMA_NUM_PARALLEL unset): as many sequences as
 * there is memory for, counting a full num_ctx of f16 KV per sequence
 * against half of the memory available at load time minus the weights,
 * between 1 and 16. Embedding models run one sequence at a time. */
#include "cllama/runners.h"
#include "threads.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum runner_state { R_LOADING = 0, R_READY, R_UNLOADING };

struct cll_runner {
  cll_runners *rs;
  cll_runner *next;
  char *path, *name, *digest;
  int state;
  bool embedding;
  int32_t n_batch;  /* tokens per step (encoders: at least n_ctx) */
  int64_t want_ctx; /* num_ctx asked by the request that loaded it */
  int64_t n_ctx;    /* per-sequence context, after clamping */
  int n_parallel;
  int want_threads; /* compute threads asked for, resolved (want_threads()) */
  cll_model *model;
  cll_ctx *ctx;
  cll_sched *sched;
  void *aux;
  int refs;
  int64_t keep_alive_ns;
  int64_t expires_at_ns;
  uint64_t last_used;
  uint64_t size_bytes;
  uv_timer_t timer;
  uv_work_t work;
  int load_status;
  cll_err load_err;
};

struct cll_acquire {
  cll_runners *rs;
  cll_acquire *next;
  struct cll_load_req req;
  char *path, *name, *digest;
  cll_acquire_cb cb;
  void *ud;
  bool cancelled;
};

struct cll_runners {
  uv_loop_t *loop;
  struct cll_runners_params p;
  cll_runner *runners;
  cll_acquire *q_head, *q_tail;
  int32_t n_waiting; /* acquires + sequences waiting for a slot (shared with the schedulers) */
  bool loading;      /* one load at a time */
  uv_timer_t kick;
  bool kick_pending, closing;
  int n_open; /* runners still to free during close */
  void (*close_cb)(void *);
  void *close_ud;
  uint64_t clock;
  int default_threads; /* num_thread 0: p.n_threads, else one per physical core */
};

static void process_queue(cll_runners *rs);
static void unload(cll_runner *r);

struct cll_runners_params cll_runners_params_defaults(void) {
  struct cll_runners_params p = {0};
  p.max_loaded = 3;
  p.max_queue = 512;
  p.keep_alive_ns = 5LL * 60 * 1000000000LL;
  p.num_ctx = 4096;
  p.n_batch = 512;
  return p;
}

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static char *dup_or_empty(const char *s) {
  return strdup(s ? s : "");
}

static void on_kick(uv_timer_t *t) {
  cll_runners *rs = t->data;
  rs->kick_pending = false;
  process_queue(rs);
}

static void kick(cll_runners *rs) {
  if (rs->kick_pending || rs->closing)
    return;
  rs->kick_pending = true;
  uv_timer_start(&rs->kick, on_kick, 0, 0);
}

int cll_runners_new(uv_loop_t *loop, const struct cll_runners_params *p, cll_runners **out) {
  cll_runners *rs = calloc(1, sizeof(*rs));
  if (!rs)
    return CLL_ENOMEM;
  rs->loop = loop;
  rs->p = *p;
  if (rs->p.max_loaded <= 0)
    rs->p.max_loaded = 3;
  if (rs->p.max_queue <= 0)
    rs->p.max_queue = 512;
  if (rs->p.num_ctx <= 0)
    rs->p.num_ctx = 4096;
  if (rs->p.n_batch <= 0)
    rs->p.n_batch = 512;
  rs->default_threads = rs->p.n_threads > 0 ? rs->p.n_threads : cll__cpu_count();
  uv_timer_init(loop, &rs->kick);
  rs->kick.data = rs;
  *out = rs;
  return 0;
}

/* ---------------------------------------------------------------- queue */

static void q_remove(cll_runners *rs, cll_acquire *a) {
  cll_acquire **pp = &rs->q_head, *prev = NULL;
  while (*pp && *pp != a) {
    prev = *pp;
    pp = &(*pp)->next;
  }
  if (!*pp)
    return;
  *pp = a->next;
  if (rs->q_tail == a)
    rs->q_tail = prev;
  rs->n_waiting--;
}

static void acquire_done(cll_acquire *a, cll_runner *r, int status, const cll_err *err) {
  q_remove(a->rs, a);
  cll_acquire_cb cb = a->cb;
  void *ud = a->ud;
  free(a->path);
  free(a->name);
  free(a->digest);
  free(a);
  cb(ud, r, status, err);
}

int cll_runners_check_num_thread(int64_t n, cll_err *err) {
  if (n < 0)
    return cll_err_set(err, CLL_EINVAL,
                       "invalid num_thread %lld: use a positive thread count, or 0 for one "
                       "thread per physical core",
                       (long long)n);
  int max = cll__cpu_logical();
  if (n > max)
    return cll_err_set(err, CLL_EINVAL,
                       "invalid num_thread %lld: this server may run on %d CPUs, so at most %d "
                       "threads",
                       (long long)n, max, max);
  return 0;
}

/* The compute threads a request asks for: its num_thread, else the
 * default. */
static int want_threads(const cll_runners *rs, const struct cll_load_req *req) {
  return req->num_thread > 0 ? (int)req->num_thread : rs->default_threads;
}

int cll_runners_acquire(cll_runners *rs, const struct cll_load_req *req, cll_acquire_cb cb,
                        void *ud, cll_acquire **out, cll_err *err) {
  *out = NULL;
  if (rs->closing)
    return cll_err_set(err, CLL_ECANCELED, "server is shutting down");
  int rc = cll_runners_check_num_thread(req->num_thread, err);
  if (rc != 0)
    return rc;
  if (rs->n_waiting >= rs->p.max_queue)
    return cll_err_set(err, CLL_EFULL,
                       "server busy, please try again.  maximum pending requests exceeded");
  cll_acquire *a = calloc(1, sizeof(*a));
  if (!a)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  a->rs = rs;
  a->req = *req;
  a->path = dup_or_empty(req->path);
  a->name = dup_or_empty(req->name);
  a->digest = dup_or_empty(req->digest);
  a->req.path = a->path;
  a->req.name = a->name;
  a->req.digest = a->digest;
  a->cb = cb;
  a->ud = ud;
  if (rs->q_tail)
    rs->q_tail->next = a;
  else
    rs->q_head = a;
  rs->q_tail = a;
  rs->n_waiting++;
  *out = a;
  kick(rs);
  return 0;
}

void cll_acquire_cancel(cll_acquire *a) {
  if (!a || a->cancelled)
    return;
  a->cancelled = true;
  kick(a->rs);
}

int cll_runners_waiting(const cll_runners *rs) {
  return rs->n_waiting;
}

/* ---------------------------------------------------------------- runner */

cll_model *cll_runner_model(const cll_runner *r) {
  return r->model;
}
cll_sched *cll_runner_sched(const cll_runner *r) {
  return r->sched;
}
void *cll_runner_aux(const cll_runner *r) {
  return r->aux;
}
int64_t cll_runner_n_ctx(const cll_runner *r) {
  return r->n_ctx;
}

void cll_runner_set_keep_alive(cll_runner *r, int64_t keep_alive_ns) {
  r->keep_alive_ns = keep_alive_ns;
}

static void on_keep_alive(uv_timer_t *t) {
  cll_runner *r = t->data;
  if (r->refs == 0 && r->state == R_READY) {
    fprintf(stderr, "level=INFO source=runners msg=\"keep-alive expired, unloading\" model=%s\n",
            r->name);
    unload(r);
  }
}

static void start_idle_clock(cll_runner *r) {
  r->last_used = ++r->rs->clock;
  if (r->keep_alive_ns == 0) {
    unload(r);
    return;
  }
  if (r->keep_alive_ns < 0) {
    r->expires_at_ns = INT64_MAX;
    return;
  }
  r->expires_at_ns = wall_ns() + r->keep_alive_ns;
  uint64_t ms = (uint64_t)(r->keep_alive_ns / 1000000);
  uv_timer_start(&r->timer, on_keep_alive, ms ? ms : 1, 0);
}

void cll_runner_release(cll_runner *r) {
  if (!r)
    return;
  if (--r->refs == 0 && r->state == R_READY)
    start_idle_clock(r);
  kick(r->rs);
}

bool cll_runners_expire(cll_runners *rs, const char *path) {
  for (cll_runner *r = rs->runners; r; r = r->next) {
    if (strcmp(r->path, path) != 0)
      continue;
    r->keep_alive_ns = 0;
    if (r->state == R_READY && r->refs == 0)
      unload(r);
    return true;
  }
  return false;
}

/* ---------------------------------------------------------------- unload */

static void runner_unlink(cll_runners *rs, cll_runner *r) {
  for (cll_runner **pp = &rs->runners; *pp; pp = &(*pp)->next)
    if (*pp == r) {
      *pp = r->next;
      return;
    }
}

static void on_kick_closed(uv_handle_t *h);

static void on_runner_closed(uv_handle_t *h) {
  cll_runner *r = h->data;
  cll_runners *rs = r->rs;
  free(r->path);
  free(r->name);
  free(r->digest);
  free(r);
  if (rs->closing) {
    if (--rs->n_open == 0)
      uv_close((uv_handle_t *)&rs->kick, on_kick_closed);
    return;
  }
  kick(rs);
}

static void on_unload_work(uv_work_t *w) {
  cll_runner *r = w->data;
  cll_ctx_free(r->ctx);
  if (r->aux && r->rs->p.free_aux)
    r->rs->p.free_aux(r->aux);
  cll_model_release(r->model);
  r->ctx = NULL;
  r->aux = NULL;
  r->model = NULL;
}

static void on_unload_done(uv_work_t *w, int status) {
  cll_runner *r = w->data;
  runner_unlink(r->rs, r);
  uv_close((uv_handle_t *)&r->timer, on_runner_closed);
}

static void on_sched_closed(void *ud) {
  cll_runner *r = ud;
  r->sched = NULL;
  r->work.data = r;
  if (uv_queue_work(r->rs->loop, &r->work, on_unload_work, on_unload_done) != 0) {
    on_unload_work(&r->work);
    on_unload_done(&r->work, 0);
  }
}

static void unload(cll_runner *r) {
  if (r->state != R_READY)
    return;
  r->state = R_UNLOADING;
  uv_timer_stop(&r->timer);
  fprintf(stderr, "level=INFO source=runners msg=\"unloading model\" model=%s\n", r->name);
  cll_sched_close(r->sched, on_sched_closed, r);
}

/* ---------------------------------------------------------------- load */

static int auto_parallel(const struct cll_model_info *mi, int64_t n_ctx) {
  long pages = sysconf(_SC_AVPHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
  double avail = pages > 0 && psz > 0 ? (double)pages * (double)psz : 4e9;
  double per_seq = (double)n_ctx * (double)mi->n_layer * 2.0 * (double)mi->n_head_kv *
                   (double)mi->head_dim * 2.0;
  double budget = avail / 2 - (double)mi->weight_bytes;
  int n = per_seq > 0 ? (int)(budget / per_seq) : 16;
  return n < 1 ? 1 : n > 16 ? 16 : n;
}

static void on_load_work(uv_work_t *w) {
  cll_runner *r = w->data;
  cll_runners *rs = r->rs;
  r->load_status = cll_model_load(r->path, &r->model, &r->load_err);
  if (r->load_status != 0)
    return;
  const struct cll_model_info *mi = cll_model_info(r->model);
  /* The pool is sized for the larger of the request's num_ctx and the
   * default, so later requests with the default (or anything smaller) fit
   * without a reload: each sequence is limited to its own num_ctx. */
  int64_t n_ctx = r->want_ctx > rs->p.num_ctx ? r->want_ctx : rs->p.num_ctx;
  if (mi->n_ctx_train > 0 && n_ctx > mi->n_ctx_train)
    n_ctx = mi->n_ctx_train;
  if (n_ctx < 4)
    n_ctx = 4;
  r->n_ctx = n_ctx;
  r->n_parallel = r->embedding             ? 1
                  : rs->p.num_parallel > 0 ? rs->p.num_parallel
                                           : auto_parallel(mi, n_ctx);
  /* Encoders (bert family) keep no KV: many inputs share one forward pass,
   * each whole in one step, so a step may need the model's full context. */
  int32_t n_batch = rs->p.n_batch;
  if (mi->encoder) {
    r->n_parallel = 32;
    if (n_batch < n_ctx)
      n_batch = (int32_t)n_ctx;
  }
  r->n_batch = n_batch;
  if (rs->p.on_load) {
    r->load_status = rs->p.on_load(rs->p.hook_ud, r->model, &r->aux, &r->load_err);
    if (r->load_status != 0)
      return;
  }
  struct cll_ctx_params cp = cll_ctx_params_defaults();
  cp.n_ctx = n_ctx * r->n_parallel;
  cp.n_ctx_seq = n_ctx;
  cp.n_seq_max = 2 * r->n_parallel;
  cp.n_batch_max = n_batch;
  cp.n_threads = r->want_threads;
  cp.embeddings = true;
  r->load_status = cll_ctx_new(r->model, &cp, &r->ctx, &r->load_err);
  if (r->load_status == 0) /* weights and K/V as allocated (sliding-window rings included) */
    r->size_bytes = mi->weight_bytes + cll_ctx_kv_bytes(r->ctx);
}

static void fail_waiters(cll_runners *rs, const char *path, int status, const cll_err *err) {
  for (cll_acquire *a = rs->q_head, *nx; a; a = nx) {
    nx = a->next;
    if (strcmp(a->path, path) == 0)
      acquire_done(a, NULL, status, err);
  }
}

static void on_load_done(uv_work_t *w, int status) {
  cll_runner *r = w->data;
  cll_runners *rs = r->rs;
  rs->loading = false;
  if (r->load_status == 0 && !rs->closing) {
    const struct cll_model_info *mi = cll_model_info(r->model);
    struct cll_sched_params sp = cll_sched_params_defaults();
    sp.n_parallel = r->n_parallel;
    sp.n_slots = 2 * r->n_parallel;
    sp.n_ctx = (int32_t)r->n_ctx;
    sp.n_cells = r->n_ctx * r->n_parallel;
    sp.n_batch = r->n_batch;
    sp.whole_prompts = mi->encoder;
    sp.n_vocab = mi->n_vocab;
    sp.n_embd = mi->n_embd;
    sp.max_waiting = rs->p.max_queue;
    sp.shared_waiting = &rs->n_waiting;
    sp.name = r->name;
    sp.stats_interval_s = rs->p.step_stats_s;
    r->load_status =
        cll_sched_new(rs->loop, &sp, cll_sched_backend_engine(), r->ctx, &r->sched, &r->load_err);
  } else if (r->load_status == 0) {
    r->load_status = cll_err_set(&r->load_err, CLL_ECANCELED, "server is shutting down");
  }
  if (r->load_status != 0) {
    fprintf(stderr, "level=ERROR source=runners msg=\"load failed\" model=%s error=\"%s\"\n",
            r->name, r->load_err.msg);
    fail_waiters(rs, r->path, r->load_status, &r->load_err);
    r->state = R_READY; /* so unload frees what was built */
    r->sched = NULL;
    runner_unlink(rs, r);
    r->work.data = r;
    on_unload_work(&r->work);
    uv_close((uv_handle_t *)&r->timer, on_runner_closed);
    return;
  }
  r->state = R_READY;
  r->expires_at_ns = wall_ns() + (r->keep_alive_ns < 0 ? 0 : r->keep_alive_ns);
  fprintf(stderr,
          "level=INFO source=runners msg=\"model loaded\" model=%s n_ctx=%lld "
          "parallel=%d kv_bytes=%zu swa_ring=%lld threads=%d\n",
          r->name, (long long)r->n_ctx, r->n_parallel, cll_ctx_kv_bytes(r->ctx),
          (long long)cll_ctx_kv_ring(r->ctx), cll_ctx_n_threads(r->ctx));
  process_queue(rs);
}

static cll_runner *start_load(cll_runners *rs, const cll_acquire *a) {
  cll_runner *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  r->rs = rs;
  r->path = strdup(a->path);
  r->name = strdup(a->name);
  r->digest = strdup(a->digest);
  r->embedding = a->req.embedding;
  r->want_ctx = a->req.num_ctx;
  r->want_threads = want_threads(rs, &a->req);
  r->keep_alive_ns = a->req.keep_alive_set ? a->req.keep_alive_ns : rs->p.keep_alive_ns;
  r->state = R_LOADING;
  uv_timer_init(rs->loop, &r->timer);
  r->timer.data = r;
  r->next = rs->runners;
  rs->runners = r;
  rs->loading = true;
  r->work.data = r;
  fprintf(stderr, "level=INFO source=runners msg=\"loading model\" model=%s path=%s\n", r->name,
          r->path);
  if (uv_queue_work(rs->loop, &r->work, on_load_work, on_load_done) != 0) {
    r->load_status = cll_err_set(&r->load_err, CLL_EIO, "cannot queue the model load");
    on_load_done(&r->work, 0);
  }
  return r;
}

/* ---------------------------------------------------------------- queue */

static bool fits(const cll_runner *r, const cll_acquire *a) {
  if (want_threads(r->rs, &a->req) != r->want_threads)
    return false;
  int64_t want = a->req.num_ctx > 0 ? a->req.num_ctx : r->rs->p.num_ctx;
  if (want <= r->n_ctx)
    return true;
  /* Asked for more than loaded: fits only if the model cannot give more. */
  const struct cll_model_info *mi = cll_model_info(r->model);
  return mi->n_ctx_train > 0 && r->n_ctx >= mi->n_ctx_train;
}

static cll_runner *lru_idle(cll_runners *rs) {
  cll_runner *best = NULL;
  for (cll_runner *r = rs->runners; r; r = r->next)
    if (r->state == R_READY && r->refs == 0 && (!best || r->last_used < best->last_used))
      best = r;
  return best;
}

static int n_loaded(cll_runners *rs) {
  int n = 0;
  for (cll_runner *r = rs->runners; r; r = r->next)
    n++;
  return n;
}

static void process_queue(cll_runners *rs) {
  if (rs->closing)
    return;
  for (cll_acquire *a = rs->q_head, *nx; a; a = nx) {
    nx = a->next;
    if (a->cancelled) {
      cll_err e;
      cll_err_set(&e, CLL_ECANCELED, "request canceled");
      acquire_done(a, NULL, CLL_ECANCELED, &e);
      continue;
    }
    cll_runner *r = NULL;
    for (cll_runner *x = rs->runners; x; x = x->next)
      if (strcmp(x->path, a->path) == 0)
        r = x;
    if (r && r->state == R_READY && fits(r, a)) {
      r->refs++;
      uv_timer_stop(&r->timer);
      if (a->req.keep_alive_set)
        r->keep_alive_ns = a->req.keep_alive_ns;
      r->expires_at_ns = r->keep_alive_ns < 0 ? INT64_MAX : wall_ns() + r->keep_alive_ns;
      r->last_used = ++rs->clock;
      acquire_done(a, r, 0, NULL);
      continue;
    }
    if (rs->loading || (r && r->state != R_READY))
      continue; /* wait for the load or unload in flight */
    if (r) {
      /* Loaded with a smaller context or another num_thread: reload once
       * idle. */
      if (r->refs == 0)
        unload(r);
      continue;
    }
    if (n_loaded(rs) >= rs->p.max_loaded) {
      cll_runner *v = lru_idle(rs);
      if (v)
        unload(v);
      continue; /* load after the eviction (or when a runner becomes idle) */
    }
    if (!start_load(rs, a)) {
      cll_err e;
      cll_err_set(&e, CLL_ENOMEM, "out of memory");
      acquire_done(a, NULL, CLL_ENOMEM, &e);
    }
  }
}

/* ---------------------------------------------------------------- info */

int cll_runners_list(cll_runners *rs, struct cll_runner_info *out, int max) {
  int n = 0;
  for (cll_runner *r = rs->runners; r; r = r->next) {
    if (r->state == R_UNLOADING)
      continue;
    if (n < max) {
      struct cll_runner_info *i = &out[n];
      memset(i, 0, sizeof(*i));
      i->name = r->name;
      i->digest = r->digest;
      i->path = r->path;
      i->size_bytes = r->size_bytes;
      i->context_length = r->n_ctx;
      i->n_parallel = r->n_parallel;
      i->n_threads = r->ctx && r->state == R_READY ? cll_ctx_n_threads(r->ctx) : 0;
      i->loading = r->state == R_LOADING;
      if (r->refs > 0 || r->state == R_LOADING)
        i->expires_at_ns = r->keep_alive_ns < 0 ? INT64_MAX : wall_ns() + r->keep_alive_ns;
      else
        i->expires_at_ns = r->expires_at_ns;
      if (r->sched)
        cll_sched_info(r->sched, &i->sched);
    }
    n++;
  }
  return n;
}

/* ---------------------------------------------------------------- close */

static void on_kick_closed(uv_handle_t *h) {
  cll_runners *rs = h->data;
  void (*cb)(void *) = rs->close_cb;
  void *ud = rs->close_ud;
  free(rs);
  if (cb)
    cb(ud);
}

void cll_runners_close(cll_runners *rs, void (*cb)(void *ud), void *ud) {
  rs->closing = true;
  uv_timer_stop(&rs->kick);
  while (rs->q_head) {
    cll_err e;
    cll_err_set(&e, CLL_ECANCELED, "server is shutting down");
    acquire_done(rs->q_head, NULL, CLL_ECANCELED, &e);
  }
  rs->close_cb = cb;
  rs->close_ud = ud;
  rs->n_open = 0;
  for (cll_runner *r = rs->runners; r; r = r->next)
    rs->n_open++;
  if (rs->n_open == 0) {
    uv_close((uv_handle_t *)&rs->kick, on_kick_closed);
    return;
  }
  for (cll_runner *r = rs->runners, *nx; r; r = nx) {
    nx = r->next;
    if (r->state == R_READY) {
      r->refs = 0;
      unload(r);
    }
    /* LOADING runners finish their load, see closing, and free themselves. */
  }
}
