/* test_sampler.c — the sampler chain and the stop-string matcher
 * (include/cllama/sampler.h). */
#include "cllama/sampler.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define V 1000

/* A fixed, bumpy distribution: a few strong tokens over a long noisy tail. */
static void make_logits(float *l, int n, unsigned seed) {
  unsigned x = seed * 2654435761u + 1;
  for (int i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    l[i] = (float)((x >> 8) % 1000) / 250.0f; /* 0 .. 4 */
  }
  l[7] = 9.0f;
  l[300] = 8.5f;
  l[555] = 8.0f;
}

static int argmax(const float *l, int n) {
  int b = 0;
  for (int i = 1; i < n; i++)
    if (l[i] > l[b])
      b = i;
  return b;
}

static cll_sampler *mk(const struct cll_sampler_params *p) {
  cll_sampler *s = NULL;
  cr_assert_eq(cll_sampler_new(p, V, &s), 0);
  return s;
}

/* Samples `n` tokens, feeding each back, over logits that vary with the step. */
static void run(cll_sampler *s, int *out, int n) {
  float l[V];
  for (int i = 0; i < n; i++) {
    make_logits(l, V, (unsigned)i);
    out[i] = cll_sampler_sample(s, l);
    cll_sampler_accept(s, out[i]);
  }
}

Test(sampler, defaults_are_ollamas) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  cr_expect_eq(p.seed, -1);
  cr_expect_float_eq(p.temperature, 0.8f, 1e-6);
  cr_expect_eq(p.top_k, 40);
  cr_expect_float_eq(p.top_p, 0.9f, 1e-6);
  cr_expect_float_eq(p.min_p, 0.0f, 1e-6);
  cr_expect_float_eq(p.typical_p, 1.0f, 1e-6);
  cr_expect_eq(p.repeat_last_n, 64);
  cr_expect_float_eq(p.repeat_penalty, 1.0f, 1e-6);
}

Test(sampler, rejects_bad_params) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  cll_sampler *s = NULL;
  cr_expect_eq(cll_sampler_new(&p, 0, &s), CLL_EINVAL);
  p.top_p = NAN;
  cr_expect_eq(cll_sampler_new(&p, V, &s), CLL_EINVAL);
  cll_sampler_params_defaults(&p);
  p.repeat_last_n = -1;
  cr_expect_eq(cll_sampler_new(&p, V, &s), CLL_EINVAL);
  cr_expect_null(s);
  cll_sampler_free(NULL);
}

Test(sampler, same_seed_same_tokens) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.seed = 42;
  p.temperature = 1.5f;
  p.top_k = 0;
  p.top_p = 0.99f;
  int a[200], b[200], c[200];
  cll_sampler *s1 = mk(&p), *s2 = mk(&p);
  run(s1, a, 200);
  run(s2, b, 200);
  cr_expect_arr_eq(a, b, sizeof a);
  /* reset replays the same draws */
  cll_sampler_reset(s1);
  run(s1, c, 200);
  cr_expect_arr_eq(a, c, sizeof a);
  /* another seed differs somewhere */
  p.seed = 43;
  cll_sampler *s3 = mk(&p);
  run(s3, c, 200);
  cr_expect_neq(memcmp(a, c, sizeof a), 0);
  /* and the draws are not all the argmax: the sampler really samples */
  int distinct = 0;
  for (int i = 0; i < 200; i++)
    distinct += a[i] != 7;
  cr_expect_gt(distinct, 10);
  cll_sampler_free(s1);
  cll_sampler_free(s2);
  cll_sampler_free(s3);
}

Test(sampler, greedy_top_k_1_tiny_top_p_agree) {
  struct cll_sampler_params g, k1, tp;
  cll_sampler_params_defaults(&g);
  g.temperature = 0;
  k1 = g;
  k1.temperature = 1.0f;
  k1.top_k = 1;
  k1.seed = 1;
  tp = k1;
  tp.top_k = 0;
  tp.top_p = 1e-6f;
  cll_sampler *sg = mk(&g), *sk = mk(&k1), *sp = mk(&tp);
  float l[V], l2[V], l3[V];
  for (unsigned step = 0; step < 50; step++) {
    make_logits(l, V, step + 100);
    l[(step * 37) % V] = 20.0f; /* a varying winner */
    memcpy(l2, l, sizeof l);
    memcpy(l3, l, sizeof l);
    int want = argmax(l, V);
    cr_expect_eq(cll_sampler_sample(sg, l), want);
    cr_expect_eq(cll_sampler_sample(sk, l2), want);
    cr_expect_eq(cll_sampler_sample(sp, l3), want);
  }
  cll_sampler_free(sg);
  cll_sampler_free(sk);
  cll_sampler_free(sp);
}

Test(sampler, greedy_ties_go_to_lowest_id) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.temperature = 0;
  cll_sampler *s = mk(&p);
  float l[V];
  for (int i = 0; i < V; i++)
    l[i] = 1.0f;
  l[900] = 5.0f;
  l[12] = 5.0f;
  l[400] = 5.0f;
  cr_expect_eq(cll_sampler_sample(s, l), 12);
  p.temperature = 1.0f;
  p.top_k = 1;
  cll_sampler *s2 = mk(&p);
  cr_expect_eq(cll_sampler_sample(s2, l), 12);
  cll_sampler_free(s);
  cll_sampler_free(s2);
}

Test(sampler, top_k_limits_the_support) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.seed = 7;
  p.temperature = 5.0f; /* flatten so the tail would show up */
  p.top_k = 3;
  p.top_p = 1.0f;
  cll_sampler *s = mk(&p);
  float l[V];
  int seen[3] = {0};
  for (int i = 0; i < 300; i++) {
    make_logits(l, V, 1);
    int t = cll_sampler_sample(s, l);
    cr_assert(t == 7 || t == 300 || t == 555, "token %d outside top 3", t);
    seen[t == 7 ? 0 : t == 300 ? 1 : 2]++;
  }
  cr_expect(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
  cll_sampler_free(s);
}

Test(sampler, top_p_and_min_p_cut_the_tail) {
  /* Probabilities 0.5, 0.3, 0.2 (and ~0 for the rest). */
  float base[V];
  for (int i = 0; i < V; i++)
    base[i] = -50.0f;
  base[10] = logf(0.5f);
  base[20] = logf(0.3f);
  base[30] = logf(0.2f);
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.seed = 3;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 0.75f; /* 0.5 + 0.3 >= 0.75: tokens 10 and 20 only */
  cll_sampler *s = mk(&p);
  float l[V];
  int n20 = 0;
  for (int i = 0; i < 400; i++) {
    memcpy(l, base, sizeof l);
    int t = cll_sampler_sample(s, l);
    cr_assert(t == 10 || t == 20, "top_p let %d through", t);
    n20 += t == 20;
  }
  cr_expect(n20 > 80 && n20 < 220, "token 20 drawn %d/400 (expect ~150)", n20);
  cll_sampler_free(s);

  p.top_p = 1.0f;
  p.min_p = 0.5f; /* keeps p >= 0.25: tokens 10 and 20 */
  s = mk(&p);
  for (int i = 0; i < 200; i++) {
    memcpy(l, base, sizeof l);
    int t = cll_sampler_sample(s, l);
    cr_assert(t == 10 || t == 20, "min_p let %d through", t);
  }
  cll_sampler_free(s);
}

Test(sampler, typical_p_keeps_typical_tokens) {
  float base[V];
  for (int i = 0; i < V; i++)
    base[i] = -50.0f;
  base[1] = logf(0.90f);
  base[2] = logf(0.05f);
  base[3] = logf(0.05f);
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.seed = 5;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.typical_p = 0.5f; /* entropy ~0.39 nats; -log 0.9 = 0.105 is closest: token 1 alone */
  cll_sampler *s = mk(&p);
  float l[V];
  for (int i = 0; i < 50; i++) {
    memcpy(l, base, sizeof l);
    cr_expect_eq(cll_sampler_sample(s, l), 1);
  }
  cll_sampler_free(s);
}

/* The greedy choice between token `a` at logit la and a rival at lr (all
 * other tokens far below), after the sampler's penalties. */
static int duel(cll_sampler *s, int a, float la, int rival, float lr) {
  float l[V];
  for (int i = 0; i < V; i++)
    l[i] = -100.0f;
  l[a] = la;
  l[rival] = lr;
  int t = cll_sampler_sample(s, l);
  cr_expect_float_eq(l[a], la, 0, "logits must not be modified");
  return t;
}

Test(sampler, repeat_penalty_divides_positive_multiplies_negative) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.temperature = 0;
  p.repeat_penalty = 2.0f;
  cll_sampler *s = mk(&p);
  cll_sampler_accept(s, 5);
  cll_sampler_accept(s, 5);
  cll_sampler_accept(s, 6);
  /* 4 -> 2 (once, not once per occurrence: twice would give 1) */
  cr_expect_eq(duel(s, 5, 4.0f, 8, 3.0f), 8);
  cr_expect_eq(duel(s, 5, 4.0f, 8, 1.9f), 5);
  cr_expect_eq(duel(s, 5, 4.0f, 8, 2.1f), 8);
  cr_expect_eq(duel(s, 5, 4.0f, 8, 1.1f), 5);
  /* -1 -> -2 */
  cr_expect_eq(duel(s, 6, -1.0f, 8, -1.9f), 8);
  cr_expect_eq(duel(s, 6, -1.0f, 8, -2.1f), 6);
  /* tokens outside the window are untouched */
  cr_expect_eq(duel(s, 9, 3.0f, 8, 2.9f), 9);
  cll_sampler_free(s);
}

Test(sampler, presence_and_frequency_penalties) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.temperature = 0;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.25f;
  cll_sampler *s = mk(&p);
  for (int i = 0; i < 3; i++)
    cll_sampler_accept(s, 9);
  cll_sampler_accept(s, 11);
  /* 9: 2 - 3*0.25 - 0.5 = 0.75; 11: 2 - 0.25 - 0.5 = 1.25 */
  cr_expect_eq(duel(s, 9, 2.0f, 10, 0.70f), 9);
  cr_expect_eq(duel(s, 9, 2.0f, 10, 0.80f), 10);
  cr_expect_eq(duel(s, 11, 2.0f, 10, 1.20f), 11);
  cr_expect_eq(duel(s, 11, 2.0f, 10, 1.30f), 10);
  cll_sampler_free(s);
}

Test(sampler, penalty_window_forgets_old_tokens) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.temperature = 0;
  p.repeat_last_n = 3;
  p.presence_penalty = 1.0f;
  cll_sampler *s = mk(&p);
  cll_sampler_accept(s, 1); /* evicted by the three below */
  cll_sampler_accept(s, 2);
  cll_sampler_accept(s, 3);
  cll_sampler_accept(s, 4);
  cr_expect_eq(duel(s, 1, 1.0f, 8, 0.5f), 1); /* not penalised */
  cr_expect_eq(duel(s, 2, 1.0f, 8, 0.5f), 8); /* 1 - 1 = 0 < 0.5 */
  cr_expect_eq(duel(s, 4, 1.0f, 8, 0.5f), 8);
  /* reset empties the window */
  cll_sampler_reset(s);
  cr_expect_eq(duel(s, 2, 1.0f, 8, 0.5f), 2);
  /* repeat_last_n 0 turns penalties off */
  p.repeat_last_n = 0;
  cll_sampler *s0 = mk(&p);
  cll_sampler_accept(s0, 2);
  cr_expect_eq(duel(s0, 2, 1.0f, 8, 0.5f), 2);
  cll_sampler_free(s);
  cll_sampler_free(s0);
}

Test(sampler, penalties_also_shape_sampling) {
  /* With sampling on, a heavily penalised favourite stops being drawn. */
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.seed = 11;
  p.temperature = 1.0f;
  p.frequency_penalty = 10.0f;
  cll_sampler *s = mk(&p);
  cll_sampler_accept(s, 7);
  float l[V];
  for (int i = 0; i < 100; i++) {
    make_logits(l, V, 1);
    cr_expect_neq(cll_sampler_sample(s, l), 7);
  }
  cll_sampler_free(s);
}

Test(sampler, logprobs_of_raw_distribution) {
  float l[V];
  for (int i = 0; i < V; i++)
    l[i] = -1e9f;
  l[3] = logf(0.5f);
  l[4] = logf(0.25f);
  l[5] = logf(0.25f);
  struct cll_token_logprob top[CLL_MAX_TOP_LOGPROBS];
  float lp;
  cr_assert_eq(cll_logprobs(l, V, 4, 3, top, &lp), 3);
  cr_expect_float_eq(lp, logf(0.25f), 1e-5);
  cr_expect_eq(top[0].token, 3);
  cr_expect_float_eq(top[0].logprob, logf(0.5f), 1e-5);
  cr_expect_eq(top[1].token, 4); /* tie with 5: lower id first */
  cr_expect_eq(top[2].token, 5);
  cr_expect_eq(cll_logprobs(l, V, 4, 0, top, NULL), 0);
  cr_expect_eq(cll_logprobs(l, V, 4, 21, top, NULL), CLL_EINVAL);
  cr_expect_eq(cll_logprobs(l, 2, 0, 5, top, NULL), 2);
}

Test(sampler, nan_logits_never_win) {
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.temperature = 0;
  cll_sampler *s = mk(&p);
  float l[V] = {0};
  l[0] = NAN;
  l[3] = 1.0f;
  cr_expect_eq(cll_sampler_sample(s, l), 3);
  cll_sampler_free(s);
}

/* ------------------------------------------------------------ stop strings */

/* Feeds pieces, concatenating everything emitted; returns whether it matched. */
static bool feed_all(cll_stop *m, const char *const *pieces, char *out) {
  out[0] = '\0';
  for (size_t i = 0; pieces[i] != NULL; i++) {
    const char *e;
    size_t n;
    bool hit = cll_stop_feed(m, pieces[i], strlen(pieces[i]), &e, &n);
    strncat(out, e, n);
    if (hit)
      return true;
  }
  const char *e;
  size_t n;
  cll_stop_flush(m, &e, &n);
  strncat(out, e, n);
  return false;
}

Test(stop, split_across_tokens_is_caught_and_not_emitted) {
  const char *stops[] = {"<|im_end|>", "\nUser:"};
  cll_stop *m;
  cr_assert_eq(cll_stop_new(stops, 2, &m), 0);
  const char *pieces[] = {"Hello", " wor", "ld<", "|im", "_e", "nd|>", "more", NULL};
  char out[256];
  cr_expect(feed_all(m, pieces, out));
  cr_expect_str_eq(out, "Hello world");
  cll_stop_free(m);
}

Test(stop, held_text_is_released_when_match_fails) {
  const char *stops[] = {"</s>"};
  cll_stop *m;
  cr_assert_eq(cll_stop_new(stops, 1, &m), 0);
  const char *e;
  size_t n;
  cr_expect_not(cll_stop_feed(m, "a </", 4, &e, &n));
  cr_expect_eq(n, 2); /* "a " out, "</" held */
  cr_expect_eq(cll_stop_held(m), 2);
  cr_expect_not(cll_stop_feed(m, "b>", 2, &e, &n));
  cr_expect_eq(n, 4);
  cr_expect_eq(memcmp(e, "</b>", 4), 0);
  cr_expect_eq(cll_stop_held(m), 0);
  cll_stop_free(m);
}

Test(stop, flush_releases_tail_at_end) {
  const char *stops[] = {"STOP"};
  cll_stop *m;
  cr_assert_eq(cll_stop_new(stops, 1, &m), 0);
  const char *pieces[] = {"go ", "ST", "O", NULL};
  char out[64];
  cr_expect_not(feed_all(m, pieces, out));
  cr_expect_str_eq(out, "go STO");
  cll_stop_free(m);
}

Test(stop, stop_inside_one_piece_and_earliest_wins) {
  const char *stops[] = {"bb", "a"};
  cll_stop *m;
  cr_assert_eq(cll_stop_new(stops, 2, &m), 0);
  const char *pieces[] = {"xxbbya", NULL};
  char out[64];
  cr_expect(feed_all(m, pieces, out));
  cr_expect_str_eq(out, "xx");
  /* after a match nothing more is emitted */
  const char *e;
  size_t n;
  cr_expect(cll_stop_feed(m, "zz", 2, &e, &n));
  cr_expect_eq(n, 0);
  cll_stop_free(m);
}

Test(stop, overlapping_prefixes) {
  /* "aab" must be found in "aaab" even though the first "aa" fails. */
  const char *stops[] = {"aab"};
  cll_stop *m;
  cr_assert_eq(cll_stop_new(stops, 1, &m), 0);
  const char *pieces[] = {"a", "a", "a", "b", NULL};
  char out[64];
  cr_expect(feed_all(m, pieces, out));
  cr_expect_str_eq(out, "a");
  cll_stop_free(m);
}

Test(stop, no_stops_passes_everything) {
  cll_stop *m;
  cr_assert_eq(cll_stop_new(NULL, 0, &m), 0);
  const char *pieces[] = {"a", "bc", NULL};
  char out[64];
  cr_expect_not(feed_all(m, pieces, out));
  cr_expect_str_eq(out, "abc");
  cll_stop_free(m);
  cll_stop_free(NULL);
}

Test(stop, long_piece_grows_buffer) {
  const char *stops[] = {"END"};
  cll_stop *m;
  cr_assert_eq(cll_stop_new(stops, 1, &m), 0);
  char big[2000];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big + 1500, "EN", 2);
  const char *e;
  size_t n;
  cr_expect_not(cll_stop_feed(m, big, strlen(big), &e, &n));
  cr_expect_eq(n, strlen(big));
  cr_expect(cll_stop_feed(m, "xEND", 4, &e, &n));
  cr_expect_eq(n, 1);
  cll_stop_free(m);
}
