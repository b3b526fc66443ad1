/* test_scheduler.c — the continuous-batching scheduler over a fake backend.
 *
 * The fake "model" keeps, per sequence id, the tokens its KV holds; the
 * logits of a row are one-hot at a hash of every token before and at that
 * position. So any mistake in positions, prefix reuse, copies or batching
 * changes the generated text, and "batched == alone" is a real check. */
#include "cllama/scheduler.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VOCAB 97
#define EMBD 8
#define MAXSEQ 16
#define CAP 4096

struct fake {
  int32_t kv[MAXSEQ][CAP];
  int32_t len[MAXSEQ];
  float logits[512][VOCAB];
  float hidden[512][EMBD];
  int n_forward;
  int max_rows;
  int delay_us;
  int64_t cells;
  int full_once; /* return CLL_EFULL once */
  int bad;       /* inconsistencies seen on the work thread */
};
/* Criterion asserts belong to the test thread: the fake only counts. */
#define FAKE_CHECK(f, cond) ((cond) ? (void)0 : (void)(f)->bad++)

static int32_t next_of(const int32_t *t, int32_t n) {
  uint32_t h = 2166136261u;
  for (int32_t i = 0; i < n; i++)
    h = (h ^ (uint32_t)t[i]) * 16777619u;
  return (int32_t)(h % VOCAB);
}

static int f_forward(void *c, const struct cll_batch *b, cll_err *err) {
  struct fake *f = c;
  if (f->full_once) {
    f->full_once = 0;
    return cll_err_set(err, CLL_EFULL, "full");
  }
  if (f->delay_us)
    usleep(f->delay_us);
  f->n_forward++;
  if (b->n_tokens > f->max_rows)
    f->max_rows = b->n_tokens;
  int k = 0;
  for (int i = 0; i < b->n_tokens; i++) {
    int s = b->seq[i];
    FAKE_CHECK(f, s >= 0 && s < MAXSEQ && b->pos[i] == f->len[s]);
    if (s < 0 || s >= MAXSEQ)
      return CLL_EINVAL;
    f->kv[s][f->len[s]++] = b->tokens[i];
    if (b->want[i]) {
      memset(f->logits[k], 0, sizeof(f->logits[k]));
      f->logits[k][next_of(f->kv[s], f->len[s])] = 1.0f;
      for (int e = 0; e < EMBD; e++)
        f->hidden[k][e] = (float)(b->tokens[i] % 7 + e);
      k++;
    }
  }
  return 0;
}
static const float *f_logits(void *c, int32_t k) {
  return ((struct fake *)c)->logits[k];
}
static const float *f_hidden(void *c, int32_t k) {
  return ((struct fake *)c)->hidden[k];
}
static void f_trim(void *c, int32_t s, int32_t p0) {
  struct fake *f = c;
  if (f->len[s] > p0)
    f->len[s] = p0;
}
static int f_copy(void *c, int32_t src, int32_t dst, int32_t n) {
  struct fake *f = c;
  FAKE_CHECK(f, n <= f->len[src]);
  memcpy(f->kv[dst], f->kv[src], (size_t)n * sizeof(int32_t));
  f->len[dst] = n;
  return 0;
}
static void f_shift(void *c, int32_t s, int32_t p0, int32_t nd) {
  struct fake *f = c;
  memmove(f->kv[s] + p0, f->kv[s] + p0 + nd, (size_t)(f->len[s] - p0 - nd) * sizeof(int32_t));
  f->len[s] -= nd;
}
static const struct cll_sched_backend fake_be = {f_forward, f_logits, f_hidden, f_trim,
                                                 f_copy,    f_shift,  NULL,     NULL};

/* One request's record. */
struct req {
  int32_t out[1024];
  int n_out;
  int reason;
  int done;
  struct cll_seq_stats st;
  cll_seq *seq;
  int stop_at;   /* STOP after this many tokens (0: never) */
  int pause_at;  /* PAUSE after this many tokens */
  int cancel_at; /* cancel after this many tokens */
  float embd[EMBD];
  int n_embd;
};

static int on_token(void *ud, cll_seq *s, int32_t t) {
  struct req *r = ud;
  r->out[r->n_out++] = t;
  if (r->cancel_at && r->n_out == r->cancel_at)
    cll_seq_cancel(s);
  if (r->stop_at && r->n_out == r->stop_at)
    return CLL_SEQ_STOP;
  if (r->pause_at && r->n_out == r->pause_at)
    return CLL_SEQ_PAUSE;
  return CLL_SEQ_CONTINUE;
}
static void on_embd(void *ud, cll_seq *s, const float *v, int32_t n) {
  struct req *r = ud;
  memcpy(r->embd, v, (size_t)n * sizeof(float));
  r->n_embd = n;
}
static void on_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                    const cll_err *e) {
  struct req *r = ud;
  cr_assert_eq(r->done, 0, "on_done twice");
  r->done = 1;
  r->reason = reason;
  r->st = *st;
}

static uv_loop_t loop;
static struct fake *fk;

static cll_sched *mk(int n_parallel, int n_ctx, int n_batch) {
  uv_loop_init(&loop);
  fk = calloc(1, sizeof(*fk));
  struct cll_sched_params p = cll_sched_params_defaults();
  p.n_parallel = n_parallel;
  p.n_slots = 2 * n_parallel;
  p.n_ctx = n_ctx;
  p.n_cells = (int64_t)n_parallel * n_ctx;
  p.n_batch = n_batch;
  p.n_vocab = VOCAB;
  p.n_embd = EMBD;
  p.max_waiting = 64;
  p.name = "fake";
  cll_sched *s;
  cll_err e;
  cr_assert_eq(cll_sched_new(&loop, &p, &fake_be, fk, &s, &e), 0);
  return s;
}

static void closed(void *ud) {
  *(int *)ud = 1;
}

static void finish_all(cll_sched *s) {
  int c = 0;
  cll_sched_close(s, closed, &c);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert_eq(c, 1);
  cr_assert_eq(uv_loop_close(&loop), 0);
  cr_expect_eq(fk->bad, 0, "backend saw %d inconsistencies", fk->bad);
  free(fk);
}

static int submit(cll_sched *s, struct req *r, const int32_t *prompt, int n, int n_predict) {
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = prompt;
  d.n_prompt = n;
  d.n_predict = n_predict;
  d.on_token = on_token;
  d.on_done = on_done;
  d.ud = r;
  cll_err e;
  return cll_sched_submit(s, &d, &r->seq, &e);
}

/* The expected greedy continuation, computed directly from the fake rule. */
static void expect_alone(const int32_t *prompt, int n, int n_predict, int32_t *out) {
  int32_t buf[CAP];
  memcpy(buf, prompt, (size_t)n * sizeof(int32_t));
  for (int i = 0; i < n_predict; i++) {
    out[i] = next_of(buf, n + i);
    buf[n + i] = out[i];
  }
}

static void mkprompt(int32_t *p, int n, int seed) {
  for (int i = 0; i < n; i++)
    p[i] = (seed * 31 + i * 7) % VOCAB;
}

Test(scheduler, single_sequence_greedy) {
  cll_sched *s = mk(1, 256, 64);
  int32_t prompt[10], want[20];
  mkprompt(prompt, 10, 1);
  expect_alone(prompt, 10, 20, want);
  struct req r = {0};
  cr_assert_eq(submit(s, &r, prompt, 10, 20), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert(r.done);
  cr_expect_eq(r.reason, CLL_DONE_LENGTH);
  cr_assert_eq(r.n_out, 20);
  cr_expect_arr_eq(r.out, want, sizeof(want));
  cr_expect_eq(r.st.prompt_n, 10);
  cr_expect_eq(r.st.eval_n, 20);
  finish_all(s);
}

Test(scheduler, batched_equals_alone_and_shares_steps) {
  enum { N = 8 };
  cll_sched *s = mk(N, 256, 32);
  static int32_t prompts[N][100];
  static struct req r[N];
  memset(r, 0, sizeof(r));
  for (int i = 0; i < N; i++) {
    mkprompt(prompts[i], 10 + i * 11, i + 3);
    cr_assert_eq(submit(s, &r[i], prompts[i], 10 + i * 11, 16), 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  int total_rows = 0;
  for (int i = 0; i < N; i++) {
    int32_t want[16];
    expect_alone(prompts[i], 10 + i * 11, 16, want);
    cr_assert(r[i].done);
    cr_expect_arr_eq(r[i].out, want, sizeof(want), "seq %d", i);
    total_rows += 10 + i * 11 + 16;
  }
  /* Batched: far fewer forwards than one per token, budget respected. */
  cr_expect_lt(fk->n_forward, total_rows / 4);
  cr_expect_leq(fk->max_rows, 32 + N);
  finish_all(s);
}

Test(scheduler, stop_and_prefix_reuse) {
  cll_sched *s = mk(1, 256, 64);
  int32_t p1[40];
  mkprompt(p1, 40, 9);
  struct req a = {0};
  a.stop_at = 5;
  cr_assert_eq(submit(s, &a, p1, 40, 100), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert(a.done);
  cr_expect_eq(a.reason, CLL_DONE_STOP);
  cr_expect_eq(a.n_out, 5);
  /* Second turn: the first prompt + the answer (minus the last, unfed token) + more. */
  int32_t p2[60];
  memcpy(p2, p1, sizeof(p1));
  memcpy(p2 + 40, a.out, 4 * sizeof(int32_t));
  mkprompt(p2 + 44, 16, 77);
  struct req b = {0};
  cr_assert_eq(submit(s, &b, p2, 60, 8), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  int32_t want[8];
  expect_alone(p2, 60, 8, want);
  cr_expect_arr_eq(b.out, want, sizeof(want));
  cr_expect_eq(b.st.prompt_reused, 44);
  cr_expect_eq(b.st.prompt_n, 60);
  finish_all(s);
}

Test(scheduler, shared_prefix_copied_across_slots) {
  cll_sched *s = mk(2, 256, 64);
  int32_t sys[30], p[2][50];
  mkprompt(sys, 30, 5);
  struct req a = {0};
  cr_assert_eq(submit(s, &a, sys, 30, 1), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  struct req r[2] = {0};
  for (int i = 0; i < 2; i++) {
    memcpy(p[i], sys, sizeof(sys));
    mkprompt(p[i] + 30, 20, 40 + i);
    cr_assert_eq(submit(s, &r[i], p[i], 50, 6), 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  for (int i = 0; i < 2; i++) {
    int32_t want[6];
    expect_alone(p[i], 50, 6, want);
    cr_expect_arr_eq(r[i].out, want, sizeof(want));
    cr_expect_eq(r[i].st.prompt_reused, 30, "req %d reused %d", i, r[i].st.prompt_reused);
  }
  finish_all(s);
}

static cll_sched *g_s;
static struct req *g_cancel;
static void on_cancel_timer(uv_timer_t *t) {
  cll_seq_cancel(g_cancel->seq);
  uv_close((uv_handle_t *)t, NULL);
}

Test(scheduler, cancel_mid_prefill_frees_slot_within_a_step) {
  cll_sched *s = mk(1, 4096, 16);
  g_s = s;
  fk->delay_us = 2000;
  static int32_t big[3000];
  mkprompt(big, 3000, 2);
  struct req a = {0}, b = {0};
  g_cancel = &a;
  cr_assert_eq(submit(s, &a, big, 3000, 4), 0);
  int32_t small[5];
  mkprompt(small, 5, 8);
  cr_assert_eq(submit(s, &b, small, 5, 3), 0);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, on_cancel_timer, 20, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert(a.done);
  cr_expect_eq(a.reason, CLL_DONE_CANCEL);
  cr_expect_eq(a.n_out, 0);
  /* 3000 tokens at 16 per step would be ~190 steps; it left after a few. */
  cr_expect_lt(fk->n_forward, 60, "forwards %d", fk->n_forward);
  cr_assert(b.done);
  cr_expect_eq(b.reason, CLL_DONE_LENGTH);
  int32_t want[3];
  expect_alone(small, 5, 3, want);
  cr_expect_arr_eq(b.out, want, sizeof(want));
  finish_all(s);
}

Test(scheduler, queue_full_says_efull) {
  uv_loop_init(&loop);
  fk = calloc(1, sizeof(*fk));
  struct cll_sched_params p = cll_sched_params_defaults();
  p.n_vocab = VOCAB;
  p.n_ctx = 64;
  p.n_cells = 64;
  p.max_waiting = 2;
  cll_sched *s;
  cll_err e;
  cr_assert_eq(cll_sched_new(&loop, &p, &fake_be, fk, &s, &e), 0);
  int32_t pr[3] = {1, 2, 3};
  struct req r[3] = {0};
  cr_assert_eq(submit(s, &r[0], pr, 3, 2), 0);
  cr_assert_eq(submit(s, &r[1], pr, 3, 2), 0);
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = pr;
  d.n_prompt = 3;
  d.on_token = on_token;
  d.on_done = on_done;
  d.ud = &r[2];
  cr_assert_eq(cll_sched_submit(s, &d, &r[2].seq, &e), CLL_EFULL);
  cr_expect_str_eq(e.msg, "server busy, please try again.  maximum pending requests exceeded");
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect(r[0].done && r[1].done && !r[2].done);
  finish_all(s);
}

static struct req *g_paused;
static void on_resume_timer(uv_timer_t *t) {
  cll_seq_resume(g_paused->seq);
  uv_close((uv_handle_t *)t, NULL);
}

Test(scheduler, paused_reader_does_not_stop_others) {
  cll_sched *s = mk(2, 256, 64);
  int32_t p[2][8];
  mkprompt(p[0], 8, 1);
  mkprompt(p[1], 8, 2);
  struct req a = {0}, b = {0};
  a.pause_at = 2;
  g_paused = &a;
  cr_assert_eq(submit(s, &a, p[0], 8, 10), 0);
  cr_assert_eq(submit(s, &b, p[1], 8, 50), 0);
  /* Run until b is done: a stays paused at 2 tokens meanwhile. */
  while (!b.done)
    uv_run(&loop, UV_RUN_ONCE);
  cr_expect_eq(a.n_out, 2);
  cr_expect(!a.done);
  uv_timer_t t;
  uv_timer_init(&loop, &t);
  uv_timer_start(&t, on_resume_timer, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert(a.done);
  int32_t want[10];
  expect_alone(p[0], 8, 10, want);
  cr_expect_arr_eq(a.out, want, sizeof(want));
  finish_all(s);
}

Test(scheduler, context_shift_and_length) {
  cll_sched *s = mk(1, 32, 64);
  int32_t p[10];
  mkprompt(p, 10, 4);
  struct req a = {0};
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = p;
  d.n_prompt = 10;
  d.n_predict = 60;
  d.on_token = on_token;
  d.on_done = on_done;
  d.ud = &a;
  cll_err e;
  cr_assert_eq(cll_sched_submit(s, &d, &a.seq, &e), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(a.reason, CLL_DONE_LENGTH);
  cr_expect_eq(a.n_out, 60);
  cr_expect_gt(a.st.n_shift, 0);

  struct req b = {0};
  d.shift = false;
  d.ud = &b;
  cr_assert_eq(cll_sched_submit(s, &d, &b.seq, &e), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect_eq(b.reason, CLL_DONE_LENGTH);
  cr_expect_eq(b.n_out, 32 - 10 + 1, "n_out %d", b.n_out);
  finish_all(s);
}

Test(scheduler, long_prompt_truncated_or_refused) {
  cll_sched *s = mk(1, 64, 64);
  int32_t p[200];
  mkprompt(p, 200, 6);
  struct req a = {0};
  cr_assert_eq(submit(s, &a, p, 200, 3), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_expect(a.st.truncated);
  cr_expect_lt(a.st.prompt_n, 64);
  cr_expect_geq(a.st.prompt_n, 32);
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = p;
  d.n_prompt = 200;
  d.truncate = false;
  d.on_token = on_token;
  d.on_done = on_done;
  struct req b = {0};
  d.ud = &b;
  cll_err e;
  cr_expect_eq(cll_sched_submit(s, &d, &b.seq, &e), CLL_ERANGE);
  cr_expect(strstr(e.msg, "longer than the context length") != NULL);
  finish_all(s);
}

Test(scheduler, embedding_mean_pooling) {
  cll_sched *s = mk(1, 64, 4);
  int32_t p[10];
  mkprompt(p, 10, 3);
  struct req a = {0};
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = p;
  d.n_prompt = 10;
  d.embed = true;
  d.on_embedding = on_embd;
  d.on_done = on_done;
  d.ud = &a;
  cll_err e;
  cr_assert_eq(cll_sched_submit(s, &d, &a.seq, &e), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert(a.done);
  cr_expect_eq(a.reason, CLL_DONE_EMBED);
  cr_assert_eq(a.n_embd, EMBD);
  for (int e2 = 0; e2 < EMBD; e2++) {
    float m = 0;
    for (int i = 0; i < 10; i++)
      m += (float)(p[i] % 7 + e2);
    cr_expect_float_eq(a.embd[e2], m / 10, 1e-5);
  }
  finish_all(s);
}

Test(scheduler, efull_evicts_caches_and_retries) {
  cll_sched *s = mk(1, 64, 64);
  int32_t p[10];
  mkprompt(p, 10, 3);
  struct req a = {0}, b = {0};
  cr_assert_eq(submit(s, &a, p, 10, 3), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  fk->full_once = 1;
  mkprompt(p, 10, 4);
  cr_assert_eq(submit(s, &b, p, 10, 3), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  int32_t want[3];
  expect_alone(p, 10, 3, want);
  cr_expect_eq(b.reason, CLL_DONE_LENGTH);
  cr_expect_arr_eq(b.out, want, sizeof(want));
  finish_all(s);
}

Test(scheduler, close_cancels_everything) {
  cll_sched *s = mk(1, 256, 8);
  int32_t p[100];
  mkprompt(p, 100, 3);
  struct req a = {0}, b = {0};
  cr_assert_eq(submit(s, &a, p, 100, 3), 0);
  cr_assert_eq(submit(s, &b, p, 100, 3), 0);
  uv_run(&loop, UV_RUN_NOWAIT);
  finish_all(s);
  cr_expect(a.done && b.done);
  cr_expect_eq(b.reason, CLL_DONE_CANCEL);
}

/* ---------------------------------------------------------------- grammar */

/* A vocabulary for the fake model: token i < 95 is the byte ' ' + i, 95
 * ends generation, 96 is a control token. */
static cll_grammar_vocab *fake_vocab(void) {
  char bytes[VOCAB];
  const char *piece[VOCAB];
  size_t len[VOCAB];
  uint8_t flags[VOCAB] = {0};
  for (int i = 0; i < VOCAB; i++) {
    bytes[i] = (char)(' ' + i);
    piece[i] = &bytes[i];
    len[i] = i < 95 ? 1 : 0;
  }
  flags[95] = CLL_GV_EOG;
  flags[96] = CLL_GV_CONTROL;
  cll_grammar_vocab *v = NULL;
  cr_assert_eq(cll_grammar_vocab_new_raw(piece, len, flags, VOCAB, &v), 0);
  return v;
}

static cll_grammar *fake_grammar(const char *schema) {
  json_t *j = json_loads(schema, JSON_DECODE_ANY, NULL);
  cll_grammar *g = NULL;
  cll_err e = {0};
  cr_assert_eq(cll_grammar_compile(j, NULL, &g, &e), 0, "%s", e.msg);
  json_decref(j);
  return g;
}

static int submit_g(cll_sched *s, struct req *r, const int32_t *prompt, int n, int n_predict,
                    cll_grammar_state *gs) {
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = prompt;
  d.n_prompt = n;
  d.n_predict = n_predict;
  d.grammar = gs;
  d.on_token = on_token;
  d.on_done = on_done;
  d.ud = r;
  cll_err e;
  return cll_sched_submit(s, &d, &r->seq, &e);
}

/* Batched sequences under a schema: every output is the complete value and
 * ends with "stop", also with a budget just big enough; a grammar that no
 * token can satisfy ends the sequence with an error. */
Test(scheduler, grammar_masks_in_the_batch_and_ends_the_value) {
  enum { N = 4 };
  cll_sched *s = mk(N, 256, 32);
  cll_grammar_vocab *v = fake_vocab();
  cll_grammar *g = fake_grammar("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\","
                                "\"minimum\":0,\"maximum\":99},\"b\":{\"enum\":[\"x\",\"yz\"]}},"
                                "\"required\":[\"a\",\"b\"]}");
  static int32_t prompts[N][40];
  static struct req r[N];
  memset(r, 0, sizeof(r));
  cll_grammar_state *gs[N];
  int budget[N] = {200, 200, 200, 15}; /* {"a":0,"b":"x"} is 15 bytes */
  for (int i = 0; i < N; i++) {
    cr_assert_eq(cll_grammar_state_new(g, v, &gs[i]), 0);
    mkprompt(prompts[i], 5 + i * 9, i + 11);
    cr_assert_eq(submit_g(s, &r[i], prompts[i], 5 + i * 9, budget[i], gs[i]), 0);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  for (int i = 0; i < N; i++) {
    cr_assert(r[i].done);
    cr_expect_eq(r[i].reason, CLL_DONE_STOP, "sequence %d ended with %d", i, r[i].reason);
    char text[1100];
    int n = 0;
    for (int k = 0; k < r[i].n_out; k++)
      if (r[i].out[k] < 95)
        text[n++] = (char)(' ' + r[i].out[k]);
    text[n] = 0;
    json_t *j = json_loads(text, 0, NULL);
    cr_expect(json_is_integer(json_object_get(j, "a")), "sequence %d: %s", i, text);
    cr_expect(json_is_string(json_object_get(j, "b")), "sequence %d: %s", i, text);
    json_decref(j);
    cll_grammar_state_free(gs[i]);
  }
  cll_grammar_free(g);

  /* "é" needs bytes this vocabulary does not have. */
  g = fake_grammar("{\"const\":\"\\u00e9\"}");
  cll_grammar_state *bad = NULL;
  cr_assert_eq(cll_grammar_state_new(g, v, &bad), 0);
  struct req rb = {0};
  cr_assert_eq(submit_g(s, &rb, prompts[0], 5, 20, bad), 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  cr_assert(rb.done);
  cr_expect_eq(rb.reason, CLL_DONE_ERROR);
  cr_expect_eq(rb.n_out, 1); /* the opening quote, then nothing fits */
  finish_all(s);
  cll_grammar_state_free(bad);
  cll_grammar_free(g);
  cll_grammar_vocab_free(v);
}
