/* scheduler.c — continuous batching over one model context.
 *
 * DESIGN. The scheduler lives on the loop thread. It owns
 *   - a FIFO of waiting sequences (bounded: max_waiting, optionally shared
 *     with other schedulers so the server has one queue),
 *   - up to n_parallel active sequences, in admission order,
 *   - n_slots KV slots (the engine's sequence ids). A slot is FREE, ACTIVE
 *     (owned by a running sequence) or CACHED (holds the KV of a finished
 *     sequence, kept for prefix reuse and evicted least-recently-used first).
 *     Each slot mirrors the token ids its KV holds, so prefix matching is a
 *     plain comparison on the loop thread.
 * A step is planned on the loop thread (pump): reap cancelled sequences,
 * admit waiting ones (finding the longest cached prefix: take the cached slot
 * over when its whole content is reused, else copy its KV into a free slot),
 * then build one batch: first the pending token of every decoding sequence
 * that is not paused, then prompt chunks of prefilling sequences in admission
 * order until the step's token budget is spent (the oldest prompt finishes
 * first, so nobody starves; decoding streams never wait for a long prompt
 * beyond one step). KV operations planned on the loop (trim, copy, shift) are
 * queued and applied inside the step, before the forward, because the
 * backend context belongs to the step while it runs.
 * The step (uv_queue_work) applies the KV operations, runs the forward,
 * samples every sequence that has a logits row (each sequence's sampler is
 * its own, so this is thread-safe) and accumulates embedding rows.
 * after_work (loop thread) advances every sequence, records the tokens now in
 * KV, delivers sampled tokens through on_token, finishes sequences (STOP,
 * length, cancelled, embedding done), and pumps again.
 * Hand-off rule: while step_running, the step owns the backend context, the
 * batch arrays and the step_* fields of the sequences in the step; the loop
 * thread touches only flags (cancelled, paused) and the waiting queue. */
#include "cllama/scheduler.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum slot_state { SLOT_FREE = 0, SLOT_ACTIVE, SLOT_CACHED };
enum seq_state { SQ_WAITING = 0, SQ_PREFILL, SQ_DECODE };
enum op_kind { OP_TRIM, OP_COPY, OP_SHIFT };

struct kv_op {
  int kind;
  int32_t a, b, n; /* TRIM(seq a, from n) COPY(src a, dst b, n) SHIFT(seq a, p0 b, n) */
};

struct slot {
  int state;
  int32_t *tok; /* (n_ctx) token ids held in this slot's KV, positions 0..n-1 */
  int32_t n;
  uint64_t lru; /* larger = used more recently */
  bool pinned;  /* copy source in the step being planned: not evicted */
};

struct cll_seq {
  cll_sched *s;
  struct cll_seq_desc d; /* callbacks and parameters; d.prompt is not used */
  int32_t *prompt;       /* (n_prompt) owned copy, after truncation */
  int32_t n_prompt;
  int32_t n_ctx, n_keep, n_predict;
  int state;
  int32_t slot;    /* -1 while waiting */
  int32_t n_done;  /* prompt tokens in KV */
  int32_t pending; /* sampled token not yet fed (decode) */
  bool paused, cancelled;
  /* step_*: written while planning, read by the step and after_work */
  bool in_step;
  int32_t step_row0, step_nrows; /* rows of the batch */
  int32_t step_k0, step_nwant;   /* wanted-row indices k0..k0+nwant-1 */
  int32_t step_token;            /* sampled by the step, -1 when none */
  float *embd;                   /* (n_embd) pooled sum, embedding sequences */
  struct cll_seq_stats st;
  uint64_t t_submit, t_prompt0, t_first;
  cll_seq *prev, *next; /* waiting list or active list */
};

struct seq_list {
  cll_seq *head, *tail;
  int32_t n;
};

struct cll_sched {
  uv_loop_t *loop;
  struct cll_sched_params p;
  const struct cll_sched_backend *be;
  void *bctx;
  char name[64];

  struct seq_list waiting, active;
  int32_t own_waiting; /* counter used when p.shared_waiting is NULL */
  int32_t *n_waiting_total;
  struct slot *slots; /* (n_slots) */
  uint64_t lru_clock;
  int64_t cells_used; /* sum of slot lengths (conservative: ignores sharing) */
  int64_t cells_phys; /* the backend's count of cells in use after the last step */

  struct kv_op *ops; /* pending KV operations, applied at the start of the next step */
  int32_t n_ops, cap_ops;

  /* batch of the step in flight */
  int32_t *b_tok, *b_pos, *b_seq; /* (n_batch + n_parallel) */
  uint8_t *b_want;
  int32_t b_n;
  cll_seq **step_seqs; /* (n_parallel) */
  int32_t n_step_seqs;
  struct kv_op *step_ops; /* ops handed to the step */
  int32_t n_step_ops, cap_step_ops;
  int step_status;
  cll_err step_err;
  bool evict_all_next; /* after CLL_EFULL */

  uv_work_t work;
  uv_timer_t kick;
  bool step_running, kick_pending, closing, closed_handles;
  /* Step statistics since the last stats line (stats_interval_s > 0):
   * what the steps carried and where their time went. */
  struct {
    uint64_t t0, queued, fwd0, fwd1, sampled; /* this step's instants */
    uint64_t since, last_done;
    uint64_t fwd_ns, sample_ns, queue_ns, loop_ns, idle_ns;
    int64_t steps, decode_tok, prompt_tok;
  } st;
  uint64_t n_steps;
  void (*close_cb)(void *);
  void *close_ud;
  void (*idle_cb)(void *);
  void *idle_ud;
  bool was_idle;
};

static void pump(cll_sched *s);

const char *cll_done_reason_str(int reason) {
  switch (reason) {
  case CLL_DONE_STOP:
    return "stop";
  case CLL_DONE_LENGTH:
    return "length";
  case CLL_DONE_CANCEL:
    return "cancel";
  case CLL_DONE_EMBED:
    return "stop";
  default:
    return "error";
  }
}

void cll_seq_desc_init(struct cll_seq_desc *d) {
  memset(d, 0, sizeof(*d));
  d->n_keep = 4;
  d->n_predict = -1;
  d->shift = true;
  d->truncate = true;
  d->pooling = CLL_POOL_MEAN;
}

struct cll_sched_params cll_sched_params_defaults(void) {
  struct cll_sched_params p = {0};
  p.n_parallel = 1;
  p.n_slots = 2;
  p.n_ctx = 4096;
  p.n_cells = 4096;
  p.n_batch = 512;
  /* 56, not 64: at 16 streams a step carrying a full chunk then costs
   * about 3x a decode-only step instead of 3.5-4x (token gap p99/p50 2.6-3.2
   * against 3.4-3.6, bench/concurrency's load run alternately against two
   * servers), with the same throughput. */
  p.n_batch_decoding = 56;
  p.max_waiting = 512;
  p.name = "";
  return p;
}

/* ---------------------------------------------------------------- lists */

static void list_push(struct seq_list *l, cll_seq *q) {
  q->next = NULL;
  q->prev = l->tail;
  if (l->tail)
    l->tail->next = q;
  else
    l->head = q;
  l->tail = q;
  l->n++;
}

static void list_remove(struct seq_list *l, cll_seq *q) {
  if (q->prev)
    q->prev->next = q->next;
  else
    l->head = q->next;
  if (q->next)
    q->next->prev = q->prev;
  else
    l->tail = q->prev;
  q->prev = q->next = NULL;
  l->n--;
}

/* ---------------------------------------------------------------- kv ops */

static int push_op(cll_sched *s, int kind, int32_t a, int32_t b, int32_t n) {
  if (s->n_ops == s->cap_ops) {
    int32_t cap = s->cap_ops ? 2 * s->cap_ops : 16;
    struct kv_op *o = realloc(s->ops, (size_t)cap * sizeof(*o));
    if (!o)
      return CLL_ENOMEM;
    s->ops = o;
    s->cap_ops = cap;
  }
  s->ops[s->n_ops++] = (struct kv_op){kind, a, b, n};
  return 0;
}

/* Empties slot i (KV trimmed at the next step). */
static void slot_clear(cll_sched *s, int32_t i) {
  struct slot *sl = &s->slots[i];
  if (sl->n > 0)
    push_op(s, OP_TRIM, i, 0, 0);
  s->cells_used -= sl->n;
  sl->n = 0;
  sl->state = SLOT_FREE;
  sl->pinned = false;
}

/* Least recently used cached slot that is not pinned, or -1. */
static int32_t lru_cached(cll_sched *s) {
  int32_t best = -1;
  for (int32_t i = 0; i < s->p.n_slots; i++) {
    struct slot *sl = &s->slots[i];
    if (sl->state == SLOT_CACHED && !sl->pinned && (best < 0 || sl->lru < s->slots[best].lru))
      best = i;
  }
  return best;
}

/* Evicts cached slots until need more cells fit; returns whether they do. */
static bool make_room(cll_sched *s, int64_t need) {
  while (s->cells_used + need > s->p.n_cells) {
    int32_t v = lru_cached(s);
    if (v < 0)
      return false;
    slot_clear(s, v);
  }
  return true;
}

/* ---------------------------------------------------------------- finish */

static void seq_free(cll_seq *q) {
  if (!q)
    return;
  free(q->prompt);
  free(q->embd);
  free(q);
}

static void waiting_dec(cll_sched *s) {
  (*s->n_waiting_total)--;
}

/* Ends q: its slot becomes a cache entry (or is cleared), it leaves the
 * active list, on_done runs, q is freed. */
static void finish(cll_seq *q, int reason, const cll_err *err) {
  cll_sched *s = q->s;
  uint64_t now = uv_hrtime();
  if (q->state == SQ_WAITING) {
    list_remove(&s->waiting, q);
    waiting_dec(s);
  } else {
    list_remove(&s->active, q);
    struct slot *sl = &s->slots[q->slot];
    if (q->d.embed || reason == CLL_DONE_ERROR || sl->n == 0) {
      slot_clear(s, q->slot);
    } else {
      sl->state = SLOT_CACHED;
      sl->lru = ++s->lru_clock;
    }
    if (q->t_first)
      q->st.eval_ns = now - q->t_first;
    else if (q->t_prompt0)
      q->st.prompt_ns = now - q->t_prompt0;
  }
  if (q->d.on_done)
    q->d.on_done(q->d.ud, q, reason, &q->st, reason == CLL_DONE_ERROR ? err : NULL);
  seq_free(q);
}

/* ---------------------------------------------------------------- submit */

static void kick(cll_sched *s);

int cll_sched_submit(cll_sched *s, const struct cll_seq_desc *d, cll_seq **out, cll_err *err) {
  *out = NULL;
  if (s->closing)
    return cll_err_set(err, CLL_ECANCELED, "model is unloading");
  if (!d || !d->prompt || d->n_prompt < 1 || !d->on_done || (!d->embed && !d->on_token) ||
      (d->embed && !d->on_embedding))
    return cll_err_set(err, CLL_EINVAL, "invalid sequence description");
  if (*s->n_waiting_total >= s->p.max_waiting)
    return cll_err_set(err, CLL_EFULL,
                       "server busy, please try again.  maximum pending requests exceeded");
  int32_t n_ctx = d->n_ctx > 0 && d->n_ctx < s->p.n_ctx ? d->n_ctx : s->p.n_ctx;
  if (n_ctx < 8)
    n_ctx = s->p.n_ctx < 8 ? s->p.n_ctx : 8;
  int32_t n_keep = d->n_keep < 0 ? 0 : d->n_keep;
  if (n_keep > n_ctx / 2)
    n_keep = n_ctx / 2;

  cll_seq *q = calloc(1, sizeof(*q));
  if (!q)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  q->s = s;
  q->d = *d;
  q->d.prompt = NULL;
  q->slot = -1;
  q->step_token = -1;
  q->n_ctx = n_ctx;
  q->n_keep = n_keep;
  q->n_predict = d->n_predict < 0 ? 10 * n_ctx : d->n_predict;

  /* A generating sequence needs room for at least one new token. */
  int32_t n = d->n_prompt;
  const int32_t *src = d->prompt;
  bool too_long = d->embed ? n > n_ctx : n >= n_ctx;
  int32_t keep = 0, skip = 0; /* copy src[0..keep) then src[keep+skip..n) */
  if (too_long) {
    if (!d->truncate) {
      free(q);
      return cll_err_set(err, CLL_ERANGE, "%s",
                         d->embed ? "the input length exceeds the context length"
                                  : "the prompt is longer than the context length currently "
                                    "available to the model; shorten the prompt, adjust the "
                                    "context length in settings, or use a model with a longer "
                                    "context length");
    }
    if (d->embed) {
      keep = n_ctx; /* embeddings keep the start */
      skip = n - n_ctx;
    } else {
      /* As llama.cpp's server does: keep n_keep tokens, then drop whole
       * blocks of half the remaining window from the middle. */
      int32_t block = (n_ctx - n_keep) / 2;
      int32_t erased = (n - n_keep - block) / block;
      keep = n_keep;
      skip = erased * block;
    }
    q->st.truncated = true;
    fprintf(stderr,
            "level=WARN source=scheduler msg=\"truncating input prompt\" model=%s "
            "limit=%d prompt=%d keep=%d new=%d\n",
            s->name, n_ctx, n, n_keep, n - skip);
  } else {
    keep = n;
  }
  q->n_prompt = n - skip;
  q->prompt = malloc((size_t)q->n_prompt * sizeof(int32_t));
  if (d->embed)
    q->embd = calloc((size_t)(s->p.n_embd > 0 ? s->p.n_embd : 1), sizeof(float));
  if (!q->prompt || (d->embed && !q->embd)) {
    seq_free(q);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  memcpy(q->prompt, src, (size_t)keep * sizeof(int32_t));
  if (q->n_prompt > keep)
    memcpy(q->prompt + keep, src + keep + skip, (size_t)(q->n_prompt - keep) * sizeof(int32_t));
  q->st.prompt_n = q->n_prompt;
  q->t_submit = uv_hrtime();
  q->state = SQ_WAITING;
  list_push(&s->waiting, q);
  (*s->n_waiting_total)++;
  *out = q;
  kick(s);
  return 0;
}

void cll_seq_cancel(cll_seq *q) {
  if (!q || q->cancelled)
    return;
  q->cancelled = true;
  kick(q->s);
}

void cll_seq_resume(cll_seq *q) {
  if (!q || !q->paused)
    return;
  q->paused = false;
  kick(q->s);
}

/* ---------------------------------------------------------------- admit */

static int32_t lcp(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
  int32_t n = na < nb ? na : nb, i = 0;
  while (i < n && a[i] == b[i])
    i++;
  return i;
}

/* Finds a slot for q and plans the KV operations; returns false when none
 * can be had now. */
static bool admit_one(cll_sched *s, cll_seq *q) {
  int32_t best = -1, best_len = 0, free_slot = -1;
  for (int32_t i = 0; i < s->p.n_slots; i++) {
    struct slot *sl = &s->slots[i];
    if (sl->state == SLOT_FREE && free_slot < 0)
      free_slot = i;
    if (sl->state != SLOT_CACHED || q->d.embed)
      continue;
    /* At least the last prompt token is evaluated, for its logits. */
    int32_t l = lcp(sl->tok, sl->n, q->prompt, q->n_prompt - 1);
    if (l > 0 && s->be->kv_reusable)
      l = s->be->kv_reusable(s->bctx, i, l);
    if (l > best_len) {
      best_len = l;
      best = i;
    }
  }
  /* Copy the shared prefix into another slot when one can be had, so the
   * cache entry stays for the next request with the same start (a common
   * system prompt); take the cached slot over only when none can. */
  if (best >= 0)
    s->slots[best].pinned = true;
  int32_t slot = free_slot;
  if (slot < 0) {
    slot = lru_cached(s);
    if (slot >= 0)
      slot_clear(s, slot);
  }
  if (best >= 0 && slot >= 0 && make_room(s, best_len)) {
    push_op(s, OP_COPY, best, slot, best_len);
    s->slots[best].lru = ++s->lru_clock;
    memcpy(s->slots[slot].tok, s->slots[best].tok, (size_t)best_len * sizeof(int32_t));
    s->slots[slot].n = best_len;
    s->cells_used += best_len;
  } else if (best >= 0) {
    if (slot >= 0)
      s->slots[slot].state = SLOT_FREE;
    slot = best;
    struct slot *bs = &s->slots[slot];
    bs->pinned = false;
    if (bs->n > best_len) {
      push_op(s, OP_TRIM, slot, 0, best_len);
      s->cells_used -= bs->n - best_len;
      bs->n = best_len;
    }
  } else if (slot < 0) {
    return false;
  }
  struct slot *sl = &s->slots[slot];
  sl->state = SLOT_ACTIVE;
  sl->lru = ++s->lru_clock;
  q->slot = slot;
  q->n_done = best_len;
  q->st.prompt_reused = best_len;
  q->st.queue_ns = uv_hrtime() - q->t_submit;
  if (best_len > 0)
    fprintf(stderr,
            "level=INFO source=scheduler msg=\"prompt prefix reused\" model=%s "
            "reused=%d prompt=%d\n",
            s->name, best_len, q->n_prompt);
  return true;
}

static void admit(cll_sched *s) {
  while (s->waiting.head && s->active.n < s->p.n_parallel) {
    cll_seq *q = s->waiting.head;
    if (!admit_one(s, q))
      break;
    list_remove(&s->waiting, q);
    waiting_dec(s);
    q->state = SQ_PREFILL;
    list_push(&s->active, q);
  }
}

/* ---------------------------------------------------------------- plan */

static void add_row(cll_sched *s, int32_t tok, int32_t pos, int32_t seq, bool want) {
  int32_t i = s->b_n++;
  s->b_tok[i] = tok;
  s->b_pos[i] = pos;
  s->b_seq[i] = seq;
  s->b_want[i] = want;
}

static bool embed_wants(const cll_seq *q, int32_t pos) {
  switch (q->d.pooling) {
  case CLL_POOL_CLS:
    return pos == 0;
  case CLL_POOL_LAST:
    return pos == q->n_prompt - 1;
  default:
    return true;
  }
}

/* Builds the next batch; returns the number of rows. Sequences that must end
 * without a step (context full, shift off) are finished here. */
static int32_t plan(cll_sched *s) {
  s->b_n = 0;
  s->n_step_seqs = 0;
  int32_t k = 0;

  /* Decoding sequences: one token each. */
  for (cll_seq *q = s->active.head, *nx; q; q = nx) {
    nx = q->next;
    q->in_step = false;
    if (q->state != SQ_DECODE || q->paused)
      continue;
    struct slot *sl = &s->slots[q->slot];
    if (sl->n >= q->n_ctx) {
      if (!q->d.shift) {
        finish(q, CLL_DONE_LENGTH, NULL);
        continue;
      }
      /* Context shift as llama.cpp does: keep n_keep, drop half the rest. */
      int32_t n_discard = (sl->n - q->n_keep) / 2;
      push_op(s, OP_SHIFT, q->slot, q->n_keep, n_discard);
      memmove(sl->tok + q->n_keep, sl->tok + q->n_keep + n_discard,
              (size_t)(sl->n - q->n_keep - n_discard) * sizeof(int32_t));
      sl->n -= n_discard;
      s->cells_used -= n_discard;
      q->st.n_shift++;
    }
    if (!make_room(s, 1))
      continue; /* cannot happen when n_cells >= n_parallel * n_ctx */
    q->in_step = true;
    q->step_row0 = s->b_n;
    q->step_nrows = 1;
    q->step_k0 = k++;
    q->step_nwant = 1;
    q->step_token = -1;
    add_row(s, q->pending, sl->n, q->slot, true);
    s->cells_used += 1;
    s->step_seqs[s->n_step_seqs++] = q;
  }

  /* Prefilling sequences: chunks in admission order within the budget. A
   * step that carries decoding sequences reads only a small chunk of
   * prompts, so one long prompt (or many new ones) never stalls the running
   * streams for a whole n_batch; with nobody decoding the full budget
   * gives the fastest first token. */
  int32_t budget = s->p.n_batch - s->b_n;
  if (s->b_n > 0 && s->p.n_batch_decoding > 0 && budget > s->p.n_batch_decoding)
    budget = s->p.n_batch_decoding;
  for (cll_seq *q = s->active.head; q && budget > 0; q = q->next) {
    if (q->state != SQ_PREFILL)
      continue;
    int32_t chunk = q->n_prompt - q->n_done;
    if (chunk > budget) {
      if (s->p.whole_prompts)
        break; /* the next step takes it whole (admission order is kept) */
      chunk = budget;
    }
    if (!make_room(s, chunk))
      break;
    if (q->t_prompt0 == 0)
      q->t_prompt0 = uv_hrtime();
    q->in_step = true;
    q->step_row0 = s->b_n;
    q->step_nrows = chunk;
    q->step_k0 = k;
    q->step_nwant = 0;
    q->step_token = -1;
    for (int32_t j = 0; j < chunk; j++) {
      int32_t pos = q->n_done + j;
      bool want = q->d.embed ? embed_wants(q, pos) : pos == q->n_prompt - 1;
      add_row(s, q->prompt[pos], pos, q->slot, want);
      if (want) {
        k++;
        q->step_nwant++;
      }
    }
    s->cells_used += chunk;
    budget -= chunk;
    s->step_seqs[s->n_step_seqs++] = q;
  }
  return s->b_n;
}

/* ---------------------------------------------------------------- step */

/* step_token when the grammar allowed nothing (or the sampler left it). */
#define STEP_NO_TOKEN (-2)

static int32_t argmax(const float *x, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best])
      best = (int32_t)i;
  return best;
}

static void on_step_work(uv_work_t *w) {
  cll_sched *s = w->data;
  void *c = s->bctx;
  s->step_status = 0;
  s->step_err.msg[0] = 0;
  for (int32_t i = 0; i < s->n_step_ops; i++) {
    struct kv_op *o = &s->step_ops[i];
    if (o->kind == OP_TRIM)
      s->be->kv_trim(c, o->a, o->n);
    else if (o->kind == OP_SHIFT)
      s->be->kv_shift(c, o->a, o->b, o->n);
    else if (s->be->kv_copy(c, o->a, o->b, o->n) != 0)
      s->step_status = CLL_EFULL;
  }
  if (s->step_status != 0 || s->b_n == 0)
    return;
  struct cll_batch b = {s->b_n, s->b_tok, s->b_pos, s->b_seq, s->b_want};
  s->st.fwd0 = uv_hrtime();
  int rc = s->be->forward(c, &b, &s->step_err);
  s->st.fwd1 = uv_hrtime();
  if (rc != 0) {
    s->step_status = rc;
    return;
  }
  for (int32_t i = 0; i < s->n_step_seqs; i++) {
    cll_seq *q = s->step_seqs[i];
    if (q->step_nwant == 0)
      continue;
    if (q->d.embed) {
      int64_t ne = s->p.n_embd;
      for (int32_t j = 0; j < q->step_nwant; j++) {
        const float *h = s->be->hidden(c, q->step_k0 + j);
        if (!h)
          continue;
        for (int64_t e = 0; e < ne; e++)
          q->embd[e] += h[e];
      }
      continue;
    }
    const float *lg = s->be->logits(c, q->step_k0);
    if (!lg)
      continue;
    /* The logits buffer is the step's until the next forward; the sampler
     * may apply its penalties in place, the grammar its mask. */
    if (q->d.grammar) {
      int32_t left = q->n_predict - q->st.eval_n;
      if (cll_grammar_apply(q->d.grammar, (float *)lg, s->p.n_vocab, left) == 0) {
        q->step_token = STEP_NO_TOKEN;
        continue;
      }
    }
    q->step_token = q->d.sample ? q->d.sample(q->d.sample_ud, (float *)lg, s->p.n_vocab)
                                : argmax(lg, s->p.n_vocab);
    if (q->d.grammar && !cll_grammar_accept_token(q->d.grammar, q->step_token))
      q->step_token = STEP_NO_TOKEN;
  }
  s->st.sampled = uv_hrtime();
}

/* Accounts the step that just finished; every stats_interval_s logs what
 * the steps carried and where the time went: forward, sampling, waiting
 * for a worker thread, the loop's own work between steps, idle. */
static void step_stats(cll_sched *s, uint64_t now) {
  if (s->p.stats_interval_s <= 0)
    return;
  if (s->st.since == 0)
    s->st.since = s->st.t0;
  s->st.steps++;
  for (int32_t i = 0; i < s->n_step_seqs; i++) {
    const cll_seq *q = s->step_seqs[i];
    if (q->state == SQ_DECODE)
      s->st.decode_tok += q->step_nrows;
    else
      s->st.prompt_tok += q->step_nrows;
  }
  if (s->st.fwd1 > s->st.fwd0) {
    s->st.queue_ns += s->st.fwd0 - s->st.queued;
    s->st.fwd_ns += s->st.fwd1 - s->st.fwd0;
    s->st.sample_ns += s->st.sampled > s->st.fwd1 ? s->st.sampled - s->st.fwd1 : 0;
  }
  s->st.loop_ns += s->st.queued - s->st.t0;
  s->st.last_done = now;
  const uint64_t span = now - s->st.since;
  if (span < (uint64_t)s->p.stats_interval_s * 1000000000u)
    return;
  const double ms = 1e-6, n = (double)s->st.steps;
  fprintf(stderr,
          "level=DEBUG source=scheduler msg=\"steps\" model=%s steps=%lld "
          "decode_tokens=%lld prompt_tokens=%lld tokens_per_step=%.1f step_ms=%.2f "
          "forward_ms=%.2f sample_ms=%.2f queue_ms=%.3f loop_ms=%.3f idle_pct=%.1f\n",
          s->name, (long long)s->st.steps, (long long)s->st.decode_tok, (long long)s->st.prompt_tok,
          (double)(s->st.decode_tok + s->st.prompt_tok) / n, (double)span * ms / n,
          (double)s->st.fwd_ns * ms / n, (double)s->st.sample_ns * ms / n,
          (double)s->st.queue_ns * ms / n, (double)s->st.loop_ns * ms / n,
          100.0 * (double)s->st.idle_ns / (double)span);
  memset(&s->st, 0, sizeof(s->st));
}

/* Advances q by its rows of the finished step and delivers its token. */
static void step_done_seq(cll_sched *s, cll_seq *q, uint64_t now) {
  struct slot *sl = &s->slots[q->slot];
  memcpy(sl->tok + sl->n, s->b_tok + q->step_row0, (size_t)q->step_nrows * sizeof(int32_t));
  sl->n += q->step_nrows;
  sl->lru = ++s->lru_clock;
  if (q->state == SQ_PREFILL)
    q->n_done += q->step_nrows;
  if (q->cancelled) {
    finish(q, CLL_DONE_CANCEL, NULL);
    return;
  }
  if (q->state == SQ_PREFILL && q->n_done < q->n_prompt)
    return;
  if (q->d.embed) {
    int32_t n_rows = q->d.pooling == CLL_POOL_MEAN ? q->n_prompt : 1;
    for (int64_t e = 0; e < s->p.n_embd; e++)
      q->embd[e] /= (float)n_rows;
    q->st.prompt_ns = now - q->t_prompt0;
    q->t_prompt0 = 0;
    q->d.on_embedding(q->d.ud, q, q->embd, (int32_t)s->p.n_embd);
    finish(q, CLL_DONE_EMBED, NULL);
    return;
  }
  if (q->state == SQ_PREFILL) {
    q->state = SQ_DECODE;
    q->t_first = now;
    q->st.prompt_ns = now - q->t_prompt0;
  }
  if (q->step_token < 0) {
    cll_err e;
    if (q->step_token == STEP_NO_TOKEN)
      cll_err_set(&e, CLL_EIO,
                  "no token of the vocabulary can continue the output the format "
                  "requires");
    else
      cll_err_set(&e, CLL_EIO, "the model produced no logits");
    finish(q, CLL_DONE_ERROR, &e);
    return;
  }
  int32_t tok = q->step_token;
  q->st.eval_n++;
  int act = q->d.on_token(q->d.ud, q, tok);
  if (q->cancelled)
    finish(q, CLL_DONE_CANCEL, NULL);
  else if (act == CLL_SEQ_STOP || (q->d.grammar && cll_grammar_done(q->d.grammar)))
    finish(q, CLL_DONE_STOP, NULL);
  else if (q->st.eval_n >= q->n_predict)
    finish(q, CLL_DONE_LENGTH, NULL);
  else {
    q->pending = tok;
    q->paused = act == CLL_SEQ_PAUSE;
  }
}

static void on_step_done(uv_work_t *w, int status) {
  cll_sched *s = w->data;
  /* step_running stays set until the sequences are handled, so a callback
   * that closes the scheduler defers the close to the pump below. */
  s->n_steps++;
  if (s->be->kv_cells_used) /* the step is over: the context is ours to read */
    s->cells_phys = s->be->kv_cells_used(s->bctx);
  uint64_t now = uv_hrtime();
  step_stats(s, now);
  if (status == 0 && s->step_status == 0) {
    for (int32_t i = 0; i < s->n_step_seqs; i++) {
      cll_seq *q = s->step_seqs[i];
      q->in_step = false;
      step_done_seq(s, q, now);
    }
  } else {
    /* Nothing of the batch reached the KV: undo the accounting. */
    for (int32_t i = 0; i < s->n_step_seqs; i++) {
      cll_seq *q = s->step_seqs[i];
      q->in_step = false;
      s->cells_used -= q->step_nrows;
    }
    if (s->step_status == CLL_EFULL && lru_cached(s) >= 0) {
      s->evict_all_next = true;
    } else if (s->active.tail) {
      /* The pool cannot hold every active sequence (or the forward failed):
       * fail the youngest so the others can go on. */
      cll_err e = s->step_err;
      if (!e.msg[0])
        cll_err_set(&e, s->step_status ? s->step_status : CLL_EIO,
                    "an error was encountered while running the model: %s",
                    cll_strerror(s->step_status ? s->step_status : status));
      if (s->step_status == CLL_EFULL) {
        finish(s->active.tail, CLL_DONE_ERROR, &e);
      } else {
        /* A failed forward may have left partial KV: fail the whole batch. */
        for (int32_t i = 0; i < s->n_step_seqs; i++)
          finish(s->step_seqs[i], CLL_DONE_ERROR, &e);
      }
    }
  }
  s->n_step_seqs = 0;
  s->step_running = false;
  pump(s);
}

/* ---------------------------------------------------------------- pump */

/* Frees s and what it owns; works on a half-built one (from calloc). */
static void sched_free(cll_sched *s) {
  if (s->slots)
    for (int32_t i = 0; i < s->p.n_slots; i++)
      free(s->slots[i].tok);
  free(s->slots);
  free(s->ops);
  free(s->step_ops);
  free(s->b_tok);
  free(s->b_pos);
  free(s->b_seq);
  free(s->b_want);
  free(s->step_seqs);
  free(s);
}

static void on_close_kick(uv_handle_t *h) {
  cll_sched *s = h->data;
  void (*cb)(void *) = s->close_cb;
  void *ud = s->close_ud;
  sched_free(s);
  if (cb)
    cb(ud);
}

static void do_close(cll_sched *s) {
  while (s->active.head)
    finish(s->active.head, CLL_DONE_CANCEL, NULL);
  while (s->waiting.head)
    finish(s->waiting.head, CLL_DONE_CANCEL, NULL);
  if (!s->closed_handles) {
    s->closed_handles = true;
    uv_close((uv_handle_t *)&s->kick, on_close_kick);
  }
}

static void pump(cll_sched *s) {
  if (s->step_running)
    return;
  if (s->closing) {
    do_close(s);
    return;
  }
  /* Cancelled sequences leave now. */
  for (cll_seq *q = s->waiting.head, *nx; q; q = nx) {
    nx = q->next;
    if (q->cancelled)
      finish(q, CLL_DONE_CANCEL, NULL);
  }
  for (cll_seq *q = s->active.head, *nx; q; q = nx) {
    nx = q->next;
    if (q->cancelled)
      finish(q, CLL_DONE_CANCEL, NULL);
  }
  if (s->closing) { /* a callback closed us */
    do_close(s);
    return;
  }
  if (s->evict_all_next) {
    s->evict_all_next = false;
    for (int32_t v; (v = lru_cached(s)) >= 0;)
      slot_clear(s, v);
  }
  for (int32_t i = 0; i < s->p.n_slots; i++)
    s->slots[i].pinned = false;
  if (s->p.stats_interval_s > 0) {
    s->st.t0 = uv_hrtime();
    /* Time with nothing to run (no step since the last one ended). */
    if (s->was_idle && s->st.last_done != 0) {
      s->st.idle_ns += s->st.t0 - s->st.last_done;
      s->st.last_done = s->st.t0;
    }
  }
  admit(s);
  int32_t n = plan(s);
  if (n > 0 || s->n_ops > 0) {
    /* Hand the planned KV operations to the step. */
    struct kv_op *t = s->step_ops;
    int32_t tc = s->cap_step_ops;
    s->step_ops = s->ops;
    s->n_step_ops = s->n_ops;
    s->cap_step_ops = s->cap_ops;
    s->ops = t;
    s->cap_ops = tc;
    s->n_ops = 0;
    if (n > 0 || s->active.n > 0) {
      s->step_running = true;
      s->work.data = s;
      s->st.queued = uv_hrtime();
      s->st.fwd0 = s->st.fwd1 = 0;
      int rc = uv_queue_work(s->loop, &s->work, on_step_work, on_step_done);
      if (rc != 0) {
        s->step_running = false;
        fprintf(stderr, "level=ERROR source=scheduler msg=\"uv_queue_work: %s\"\n",
                uv_strerror(rc));
      }
      s->was_idle = false;
      return;
    }
    /* Idle with only trims pending: keep them for the next step. */
    for (int32_t i = 0; i < s->n_step_ops; i++)
      push_op(s, s->step_ops[i].kind, s->step_ops[i].a, s->step_ops[i].b, s->step_ops[i].n);
    s->n_step_ops = 0;
  }
  bool idle = s->active.n == 0 && s->waiting.n == 0;
  if (idle && !s->was_idle) {
    s->was_idle = true;
    if (s->idle_cb)
      s->idle_cb(s->idle_ud);
  } else if (!idle) {
    s->was_idle = false;
  }
}

static void on_kick(uv_timer_t *t) {
  cll_sched *s = t->data;
  s->kick_pending = false;
  pump(s);
}

static void kick(cll_sched *s) {
  if (s->kick_pending || s->closed_handles)
    return;
  s->kick_pending = true;
  uv_timer_start(&s->kick, on_kick, 0, 0);
}

/* ---------------------------------------------------------------- life */

int cll_sched_new(uv_loop_t *loop, const struct cll_sched_params *p,
                  const struct cll_sched_backend *be, void *backend_ctx, cll_sched **out,
                  cll_err *err) {
  *out = NULL;
  if (p->n_parallel < 1 || p->n_slots < p->n_parallel || p->n_ctx < 1 || p->n_batch < 1 ||
      p->n_cells < p->n_ctx || p->n_vocab < 1)
    return cll_err_set(err, CLL_EINVAL, "invalid scheduler parameters");
  cll_sched *s = calloc(1, sizeof(*s));
  if (!s)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  s->loop = loop;
  s->p = *p;
  /* Every decoding sequence gets its token each step, whatever the budget. */
  if (s->p.n_batch < s->p.n_parallel)
    s->p.n_batch = s->p.n_parallel;
  s->be = be;
  s->bctx = backend_ctx;
  snprintf(s->name, sizeof(s->name), "%s", p->name ? p->name : "");
  s->n_waiting_total = p->shared_waiting ? p->shared_waiting : &s->own_waiting;
  s->was_idle = true;
  size_t nb = (size_t)s->p.n_batch + (size_t)s->p.n_parallel;
  s->slots = calloc((size_t)p->n_slots, sizeof(*s->slots));
  s->b_tok = malloc(nb * sizeof(int32_t));
  s->b_pos = malloc(nb * sizeof(int32_t));
  s->b_seq = malloc(nb * sizeof(int32_t));
  s->b_want = malloc(nb);
  s->step_seqs = calloc((size_t)p->n_parallel, sizeof(cll_seq *));
  if (!s->slots || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_want || !s->step_seqs)
    goto err;
  for (int32_t i = 0; i < p->n_slots; i++)
    if (!(s->slots[i].tok = malloc((size_t)p->n_ctx * sizeof(int32_t))))
      goto err;
  uv_timer_init(loop, &s->kick);
  s->kick.data = s;
  *out = s;
  return 0;
err:
  sched_free(s);
  return cll_err_set(err, CLL_ENOMEM, "out of memory");
}

void cll_sched_close(cll_sched *s, void (*cb)(void *ud), void *ud) {
  if (!s) {
    if (cb)
      cb(ud);
    return;
  }
  if (s->closing)
    return;
  s->closing = true;
  s->close_cb = cb;
  s->close_ud = ud;
  if (!s->step_running)
    do_close(s);
}

void cll_sched_info(const cll_sched *s, struct cll_sched_info *out) {
  memset(out, 0, sizeof(*out));
  out->n_active = s->active.n;
  out->n_waiting = s->waiting.n;
  for (int32_t i = 0; i < s->p.n_slots; i++)
    out->n_cached += s->slots[i].state == SLOT_CACHED;
  out->n_steps = s->n_steps;
  /* Physical cells (a prefix shared by several slots once) where the
   * backend counts them; cells_used, which admission plans with, counts a
   * shared prefix per slot. */
  out->kv_cells_used = s->be->kv_cells_used ? s->cells_phys : s->cells_used;
  out->kv_cells = s->p.n_cells;
  out->idle = s->active.n == 0 && s->waiting.n == 0 && !s->step_running;
}

void cll_sched_set_idle_cb(cll_sched *s, void (*cb)(void *ud), void *ud) {
  s->idle_cb = cb;
  s->idle_ud = ud;
}
