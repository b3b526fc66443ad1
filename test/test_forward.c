/* test_forward.c — the engine (include/cllama/engine.h) against the
 * llama.cpp reference outputs in ../shared/ref: final logits and greedy
 * continuations from the reference prompt_tokens, decode vs prefill, several
 * sequences in one batch vs each alone, and the KV pool's copy/shift. */
#include "cllama/engine.h"
#include "engine/ctx.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s ? s : "../shared";
}

static bool have_shared(void) {
  char p[512];
  snprintf(p, sizeof(p), "%s/ref/README.md", shared_dir());
  if (access(p, R_OK) == 0)
    return true;
  printf("SKIP: CLLAMA_SHARED not found\n");
  return false;
}

#define NEED_SHARED()                                                                              \
  do {                                                                                             \
    if (!have_shared())                                                                            \
      cr_skip("CLLAMA_SHARED not found");                                                          \
  } while (0)

struct ref {
  int32_t prompt[256];
  int n_prompt;
  int32_t greedy[64];
  int n_greedy;
  float *logits; /* (n_vocab) */
  int64_t n_vocab;
};

static void load_ref(const char *model, int prompt, const char *kv, struct ref *r) {
  char path[512];
  snprintf(path, sizeof(path), "%s/ref/%s/p%d.%s.json", shared_dir(), model, prompt, kv);
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  cr_assert_not_null(j, "%s: %s", path, je.text);
  json_t *pt = json_object_get(j, "prompt_tokens"), *gt = json_object_get(j, "greedy_tokens");
  r->n_prompt = (int)json_array_size(pt);
  r->n_greedy = (int)json_array_size(gt);
  cr_assert(r->n_prompt > 0 && r->n_prompt <= 256 && r->n_greedy <= 64);
  for (int i = 0; i < r->n_prompt; i++)
    r->prompt[i] = (int32_t)json_integer_value(json_array_get(pt, (size_t)i));
  for (int i = 0; i < r->n_greedy; i++)
    r->greedy[i] = (int32_t)json_integer_value(json_array_get(gt, (size_t)i));
  r->n_vocab = json_integer_value(json_object_get(j, "n_vocab"));
  json_decref(j);
  snprintf(path, sizeof(path), "%s/ref/%s/p%d.%s.logits.f32", shared_dir(), model, prompt, kv);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  r->logits = malloc((size_t)r->n_vocab * sizeof(float));
  cr_assert_eq(fread(r->logits, sizeof(float), (size_t)r->n_vocab, f), (size_t)r->n_vocab);
  fclose(f);
}

static cll_model *load_model(const char *name) {
  char path[512];
  snprintf(path, sizeof(path), "%s/models/%s.gguf", shared_dir(), name);
  cll_model *m;
  cll_err err = {0};
  int rc = cll_model_load(path, &m, &err);
  cr_assert_eq(rc, 0, "%s: %s", name, err.msg);
  return m;
}

static cll_ctx *new_ctx(cll_model *m, enum cll_kv_type kv, int n_seq, int n_threads) {
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = 512;
  p.n_seq_max = n_seq;
  p.n_batch_max = 256;
  p.kv_type = kv;
  p.n_threads = n_threads;
  cll_ctx *c;
  cll_err err = {0};
  cr_assert_eq(cll_ctx_new(m, &p, &c, &err), 0, "%s", err.msg);
  return c;
}

/* Feeds n tokens of seq starting at pos0 in one batch; returns the last
 * row's logits. */
static const float *feed(cll_ctx *c, const int32_t *tok, int n, int32_t seq, int32_t pos0) {
  int32_t pos[256], sq[256];
  for (int i = 0; i < n; i++) {
    pos[i] = pos0 + i;
    sq[i] = seq;
  }
  struct cll_batch b = {n, tok, pos, sq, NULL};
  cll_err err = {0};
  cr_assert_eq(cll_forward(c, &b, &err), 0, "%s", err.msg);
  return cll_ctx_logits(c, 0);
}

static int32_t argmax(const float *x, int64_t n) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (x[i] > x[best])
      best = (int32_t)i;
  return best;
}

static double max_abs_diff(const float *a, const float *b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; i++)
    m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

/* rms(a-b)/rms(b) and cosine(a, b). */
static void compare(const float *a, const float *b, int64_t n, double *rel, double *cosine) {
  double d2 = 0, b2 = 0, a2 = 0, ab = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = (double)a[i] - b[i];
    d2 += d * d;
    b2 += (double)b[i] * b[i];
    a2 += (double)a[i] * a[i];
    ab += (double)a[i] * b[i];
  }
  *rel = sqrt(d2 / b2);
  *cosine = ab / sqrt(a2 * b2);
}

Test(forward, stories260K_f32_logits_and_greedy) {
  NEED_SHARED();
  cll_model *m = load_model("stories260K-f32");
  for (int p = 1; p <= 3; p++) {
    struct ref r;
    load_ref("stories260K-f32", p, "kvf32", &r);
    cr_assert_eq(r.n_vocab, cll_model_info(m)->n_vocab);
    cll_ctx *c = new_ctx(m, CLL_KV_F32, 1, 2);
    const float *l = feed(c, r.prompt, r.n_prompt, 0, 0);
    double d = max_abs_diff(l, r.logits, r.n_vocab);
    cr_expect_lt(d, 1e-4, "p%d: max abs diff %g", p, d);
    int32_t pos = r.n_prompt;
    for (int i = 0; i < r.n_greedy; i++) {
      int32_t t = argmax(l, r.n_vocab);
      cr_expect_eq(t, r.greedy[i], "p%d: greedy token %d is %d, reference %d", p, i, t,
                   r.greedy[i]);
      if (t != r.greedy[i])
        break;
      l = feed(c, &t, 1, 0, pos++);
    }
    cll_ctx_free(c);
    free(r.logits);
  }
  cll_model_release(m);
}

static void check_quantized(const char *model, const char *kv, enum cll_kv_type kvt) {
  cll_model *m = load_model(model);
  cll_ctx *c = new_ctx(m, kvt, 1, 2);
  for (int p = 1; p <= 3; p++) {
    struct ref r;
    load_ref(model, p, kv, &r);
    cll_kv_seq_trim(c, 0, 0);
    const float *l = feed(c, r.prompt, r.n_prompt, 0, 0);
    double rel, cosine;
    compare(l, r.logits, r.n_vocab, &rel, &cosine);
    cr_expect_lt(rel, 3e-2, "%s p%d %s: relative RMS %g", model, p, kv, rel);
    cr_expect_geq(cosine, 0.999, "%s p%d %s: cosine %g", model, p, kv, cosine);
    free(r.logits);
  }
  cll_ctx_free(c);
  cll_model_release(m);
}

Test(forward, stories260K_q8_0_mixed) {
  NEED_SHARED();
  check_quantized("stories260K-q8_0-mixed", "kvf16", CLL_KV_F16);
}
Test(forward, tiny_llama_f16) {
  NEED_SHARED();
  check_quantized("tiny-llama-rand-f16", "kvf16", CLL_KV_F16);
}
Test(forward, tiny_llama_q8_0) {
  NEED_SHARED();
  check_quantized("tiny-llama-rand-q8_0", "kvf16", CLL_KV_F16);
}
Test(forward, tiny_llama_q4_0) {
  NEED_SHARED();
  check_quantized("tiny-llama-rand-q4_0", "kvf16", CLL_KV_F16);
}
Test(forward, tiny_llama_q4_k_m) {
  NEED_SHARED();
  check_quantized("tiny-llama-rand-q4_k_m", "kvf32", CLL_KV_F32);
}
Test(forward, tiny_qwen2_q8_0) {
  NEED_SHARED();
  check_quantized("tiny-qwen2-rand-q8_0", "kvf16", CLL_KV_F16);
}

Test(forward, stories260K_f16_kv_greedy) {
  NEED_SHARED();
  cll_model *m = load_model("stories260K-f32");
  struct ref r;
  load_ref("stories260K-f32", 1, "kvf16", &r);
  cll_ctx *c = new_ctx(m, CLL_KV_F16, 1, 1);
  const float *l = feed(c, r.prompt, r.n_prompt, 0, 0);
  double rel, cosine;
  compare(l, r.logits, r.n_vocab, &rel, &cosine);
  cr_expect_lt(rel, 1e-3, "relative RMS %g vs the kvf16 reference", rel);
  int32_t pos = r.n_prompt;
  for (int i = 0; i < r.n_greedy; i++) {
    int32_t t = argmax(l, r.n_vocab);
    cr_expect_eq(t, r.greedy[i], "greedy token %d", i);
    if (t != r.greedy[i])
      break;
    l = feed(c, &t, 1, 0, pos++);
  }
  cll_ctx_free(c);
  cll_model_release(m);
  free(r.logits);
}

/* Token-by-token decode gives the logits of one-shot prefill. */
static void check_decode_vs_prefill(const char *model, enum cll_kv_type kv) {
  cll_model *m = load_model(model);
  struct ref r;
  load_ref(model, 2, "kvf32", &r);
  int64_t V = r.n_vocab;
  cll_ctx *c = new_ctx(m, kv, 1, 2);
  float *pre = malloc((size_t)V * sizeof(float));
  memcpy(pre, feed(c, r.prompt, r.n_prompt, 0, 0), (size_t)V * sizeof(float));
  cll_kv_seq_trim(c, 0, 0);
  cr_expect_eq(cll_kv_seq_len(c, 0), 0);
  const float *l = NULL;
  for (int i = 0; i < r.n_prompt; i++)
    l = feed(c, &r.prompt[i], 1, 0, i);
  double rel, cosine;
  compare(l, pre, V, &rel, &cosine);
  cr_expect_lt(rel, 1e-4, "%s: decode vs prefill relative RMS %g", model, rel);
  free(pre);
  free(r.logits);
  cll_ctx_free(c);
  cll_model_release(m);
}

Test(forward, decode_equals_prefill) {
  NEED_SHARED();
  check_decode_vs_prefill("stories260K-f32", CLL_KV_F32);
  check_decode_vs_prefill("tiny-llama-rand-f16", CLL_KV_F32);
  check_decode_vs_prefill("tiny-qwen2-rand-q8_0", CLL_KV_F16);
}

/* Three prompts in one batch (interleaved, different lengths) give the
 * logits of each alone, then one decode step with all three. With quantized
 * weights a batch may take another matmul path than a single sequence
 * (BLIS on f32 activations instead of 8-bit activations), so those only
 * agree within the quantization tolerance. */
static void check_batch(const char *model, double tol) {
  cll_model *m = load_model(model);
  struct ref r[3];
  for (int p = 0; p < 3; p++)
    load_ref(model, p + 1, "kvf16", &r[p]);
  int64_t V = r[0].n_vocab;
  float *alone = malloc(3 * (size_t)V * sizeof(float));
  float *alone2 = malloc(3 * (size_t)V * sizeof(float));
  for (int p = 0; p < 3; p++) {
    cll_ctx *c = new_ctx(m, CLL_KV_F16, 1, 2);
    memcpy(alone + p * V, feed(c, r[p].prompt, r[p].n_prompt, 0, 0), (size_t)V * sizeof(float));
    int32_t next = 100 + p;
    memcpy(alone2 + p * V, feed(c, &next, 1, 0, r[p].n_prompt), (size_t)V * sizeof(float));
    cll_ctx_free(c);
  }
  cll_ctx *c = new_ctx(m, CLL_KV_F16, 3, 2);
  int32_t tok[256], pos[256], seq[256];
  uint8_t want[256] = {0};
  int n = 0, idx[3] = {0, 0, 0};
  /* Round-robin interleave. */
  for (bool more = true; more;) {
    more = false;
    for (int p = 0; p < 3; p++)
      if (idx[p] < r[p].n_prompt) {
        tok[n] = r[p].prompt[idx[p]];
        pos[n] = idx[p];
        seq[n] = p;
        want[n] = idx[p] == r[p].n_prompt - 1;
        idx[p]++;
        n++;
        more = true;
      }
  }
  struct cll_batch b = {n, tok, pos, seq, want};
  cll_err err = {0};
  cr_assert_eq(cll_forward(c, &b, &err), 0, "%s", err.msg);
  /* Wanted rows come in batch order: find which sequence each belongs to. */
  int k = 0;
  for (int i = 0; i < n; i++) {
    if (!want[i])
      continue;
    double rel, cosine;
    compare(cll_ctx_logits(c, k), alone + seq[i] * V, V, &rel, &cosine);
    cr_expect_lt(rel, tol, "%s: seq %d in a batch vs alone: relative RMS %g", model, seq[i], rel);
    k++;
  }
  cr_expect_eq(k, 3);
  int32_t t3[3] = {100, 101, 102}, p3[3], s3[3] = {0, 1, 2};
  for (int p = 0; p < 3; p++)
    p3[p] = r[p].n_prompt;
  uint8_t w3[3] = {1, 1, 1};
  struct cll_batch b3 = {3, t3, p3, s3, w3};
  cr_assert_eq(cll_forward(c, &b3, &err), 0, "%s", err.msg);
  for (int p = 0; p < 3; p++) {
    double rel, cosine;
    compare(cll_ctx_logits(c, p), alone2 + p * V, V, &rel, &cosine);
    cr_expect_lt(rel, tol, "%s: decode step, seq %d: relative RMS %g", model, p, rel);
  }
  cll_ctx_free(c);
  free(alone);
  free(alone2);
  for (int p = 0; p < 3; p++)
    free(r[p].logits);
  cll_model_release(m);
}

Test(forward, batch_of_sequences_equals_each_alone) {
  NEED_SHARED();
  check_batch("tiny-llama-rand-f16", 1e-4);
  check_batch("stories260K-f32", 1e-4);
  check_batch("tiny-llama-rand-q4_0", 3e-2);
}

Test(forward, bad_batches_change_nothing) {
  NEED_SHARED();
  cll_model *m = load_model("stories260K-f32");
  cll_ctx *c = new_ctx(m, CLL_KV_F32, 2, 1);
  int32_t tok[2] = {1, 403}, pos[2] = {0, 2}, seq[2] = {0, 0};
  struct cll_batch b = {2, tok, pos, seq, NULL};
  cll_err err = {0};
  int64_t free0 = cll_kv_free_cells(c);
  cr_expect_eq(cll_forward(c, &b, &err), CLL_EINVAL, "a gap in positions");
  pos[1] = 1;
  tok[1] = 999;
  cr_expect_eq(cll_forward(c, &b, &err), CLL_EINVAL, "token out of vocabulary");
  tok[1] = 403;
  seq[1] = 7;
  cr_expect_eq(cll_forward(c, &b, &err), CLL_EINVAL, "sequence out of range");
  cr_expect_eq(cll_kv_free_cells(c), free0);
  cr_expect_eq(cll_kv_seq_len(c, 0), 0);
  cll_ctx_free(c);
  /* A pool of 4 cells: the fifth token does not fit. */
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = 4;
  p.n_threads = 1;
  p.n_batch_max = 8;
  cr_assert_eq(cll_ctx_new(m, &p, &c, &err), 0);
  int32_t t5[5] = {1, 2, 3, 4, 5}, p5[5] = {0, 1, 2, 3, 4}, s5[5] = {0};
  struct cll_batch b5 = {5, t5, p5, s5, NULL};
  cr_expect_eq(cll_forward(c, &b5, &err), CLL_EFULL);
  cr_expect_eq(cll_kv_free_cells(c), 4);
  cll_ctx_free(c);
  cll_model_release(m);
}

/* A copied prefix is shared (no new cells) and continues exactly as the
 * original would. */
Test(forward, kv_seq_copy_reuses_prefix) {
  NEED_SHARED();
  cll_model *m = load_model("stories260K-f32");
  struct ref r;
  load_ref("stories260K-f32", 1, "kvf32", &r);
  cll_ctx *c = new_ctx(m, CLL_KV_F32, 2, 2);
  int64_t V = r.n_vocab;
  float *want = malloc((size_t)V * sizeof(float));
  memcpy(want, feed(c, r.prompt, r.n_prompt, 0, 0), (size_t)V * sizeof(float));
  int64_t free_before = cll_kv_free_cells(c);
  cr_assert_eq(cll_kv_seq_copy(c, 0, 1, r.n_prompt - 1), 0);
  cr_expect_eq(cll_kv_free_cells(c), free_before, "copy shares cells");
  cr_expect_eq(cll_kv_seq_len(c, 1), r.n_prompt - 1);
  const float *l = feed(c, &r.prompt[r.n_prompt - 1], 1, 1, r.n_prompt - 1);
  cr_expect_lt(max_abs_diff(l, want, V), 1e-5);
  cll_kv_seq_trim(c, 0, 0);
  /* seq 1 took one cell for its last token; seq 0's unshared last cell came back. */
  cr_expect_eq(cll_kv_free_cells(c), free_before, "shared cells stay with seq 1");
  cr_expect_eq(cll_kv_seq_len(c, 1), r.n_prompt);
  cll_kv_seq_trim(c, 1, 0);
  cr_expect_eq(cll_kv_free_cells(c), 512);
  cr_expect_eq(cll_kv_seq_copy(c, 0, 1, 3), CLL_EINVAL, "copy beyond the source's length");
  free(want);
  free(r.logits);
  cll_ctx_free(c);
  cll_model_release(m);
}

/* After a shift, layer 0's keys of the kept tokens are those of a fresh
 * prefill of the kept tokens (layer 0's keys depend only on token and
 * position), and decoding continues. */
Test(forward, kv_seq_shift_rerotates_keys) {
  NEED_SHARED();
  cll_model *m = load_model("tiny-qwen2-rand-q8_0");
  struct ref r;
  load_ref("tiny-qwen2-rand-q8_0", 2, "kvf32", &r);
  const int n_discard = 3, p0 = 1;
  cll_ctx *c = new_ctx(m, CLL_KV_F32, 2, 2);
  feed(c, r.prompt, r.n_prompt, 0, 0);
  cr_assert_eq(cll_kv_seq_copy(c, 0, 1, r.n_prompt), 0); /* shared: forces copy on write */
  cll_kv_seq_shift(c, 0, p0, n_discard);
  int n_kept = r.n_prompt - n_discard;
  cr_assert_eq(cll_kv_seq_len(c, 0), n_kept);
  cr_expect_eq(cll_kv_seq_len(c, 1), r.n_prompt, "the other sequence is untouched");
  int32_t kept[256];
  int k = 0;
  for (int i = 0; i < r.n_prompt; i++)
    if (i < p0 || i >= p0 + n_discard)
      kept[k++] = r.prompt[i];
  cll_ctx *fresh = new_ctx(m, CLL_KV_F32, 1, 2);
  feed(fresh, kept, n_kept, 0, 0);
  for (int pos = 0; pos < n_kept; pos++) {
    int32_t ca = c->seq_cells[pos], cb = fresh->seq_cells[pos];
    const float *ka = (const float *)(c->k_cache + (size_t)ca * c->kv_row_bytes);
    const float *kb = (const float *)(fresh->k_cache + (size_t)cb * fresh->kv_row_bytes);
    cr_expect_lt(max_abs_diff(ka, kb, c->kv_dim), 1e-4, "pos %d", pos);
    cr_expect_eq(c->cells[ca].pos, pos);
  }
  /* seq 1's keys were not re-rotated. */
  const int32_t *s1 = c->seq_cells + c->p.n_ctx;
  cr_expect_eq(c->cells[s1[r.n_prompt - 1]].pos, r.n_prompt - 1);
  int32_t t = 42;
  cr_expect_not_null(feed(c, &t, 1, 0, n_kept));
  cll_ctx_free(fresh);
  cll_ctx_free(c);
  free(r.logits);
  cll_model_release(m);
}

/* Runs of consecutive cells holding positions 0..len-1 of seq. */
static int count_runs(const cll_ctx *c, int32_t seq) {
  const int32_t *map = c->seq_cells + (size_t)seq * (size_t)c->p.n_ctx;
  int runs = 0;
  for (int32_t p = 0; p < cll_kv_seq_len(c, seq); p++)
    runs += p == 0 || map[p] != map[p - 1] + 1;
  return runs;
}

static int32_t test_token(int s, int p) {
  return 1 + (s * 7 + p * 13) % 500;
}

/* Logits of the last of tokens test_token(s, 0..n-1) prefilled alone. */
static void alone_logits(cll_model *m, int s, int n, float *out, int64_t V) {
  cll_ctx *c = new_ctx(m, CLL_KV_F32, 1, 1);
  int32_t tok[256];
  for (int p = 0; p < n; p++)
    tok[p] = test_token(s, p);
  memcpy(out, feed(c, tok, n, 0, 0), (size_t)V * sizeof(float));
  cll_ctx_free(c);
}

/* Eight sequences growing one token per step in the same batches (decode
 * of eight streams) each keep their cells in a few runs, not one cell per
 * step, and attend as if alone. */
Test(forward, kv_cells_stay_in_runs) {
  NEED_SHARED();
  cll_model *m = load_model("stories260K-f32");
  const int64_t V = m->info.n_vocab;
  const int n_seq = 8, n_prompt = 5, len = 60;
  cll_ctx *c = new_ctx(m, CLL_KV_F32, n_seq, 1);
  int32_t tok[64], pos[64], seq[64];
  uint8_t want[64];
  cll_err err = {0};
  int n = 0;
  for (int p = 0; p < n_prompt; p++) /* prompts interleaved in one batch */
    for (int s = 0; s < n_seq; s++, n++) {
      tok[n] = test_token(s, p);
      pos[n] = p;
      seq[n] = s;
      want[n] = p == n_prompt - 1;
    }
  struct cll_batch b = {n, tok, pos, seq, want};
  cr_assert_eq(cll_forward(c, &b, &err), 0, "%s", err.msg);
  for (int p = n_prompt; p < len; p++) {
    for (int s = 0; s < n_seq; s++) {
      tok[s] = test_token(s, p);
      pos[s] = p;
      seq[s] = s;
      want[s] = 1;
    }
    struct cll_batch d = {n_seq, tok, pos, seq, want};
    cr_assert_eq(cll_forward(c, &d, &err), 0, "%s", err.msg);
  }
  float *ref = malloc((size_t)V * sizeof(float));
  for (int s = 0; s < n_seq; s++) {
    cr_expect_eq(cll_kv_seq_len(c, s), len);
    int runs = count_runs(c, s);
    cr_expect_leq(runs, (len + CLL__KV_BLOCK - 1) / CLL__KV_BLOCK, "seq %d: %d runs", s, runs);
    alone_logits(m, s, len, ref, V);
    cr_expect_lt(max_abs_diff(cll_ctx_logits(c, s), ref, V), 1e-4, "seq %d", s);
  }
  free(ref);
  cll_ctx_free(c);
  cll_model_release(m);
}

/* With no wholly free block left, tokens still take any free cell until
 * the pool is full; attention over such scattered cells, and over a copy
 * of them, gives the logits of the sequence alone. */
Test(forward, kv_full_pool_places_anywhere) {
  NEED_SHARED();
  cll_model *m = load_model("stories260K-f32");
  const int64_t V = m->info.n_vocab;
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = 2 * CLL__KV_BLOCK;
  p.n_seq_max = 3;
  p.n_batch_max = 64;
  p.kv_type = CLL_KV_F32;
  p.n_threads = 1;
  cll_ctx *c;
  cll_err err = {0};
  cr_assert_eq(cll_ctx_new(m, &p, &c, &err), 0, "%s", err.msg);
  int32_t tok[64];
  const int n0 = 20, n2 = 2 * CLL__KV_BLOCK - 2 * n0;
  for (int s = 0; s < 2; s++) { /* one block each, partly filled */
    for (int i = 0; i < n0; i++)
      tok[i] = test_token(s, i);
    feed(c, tok, n0, s, 0);
  }
  for (int i = 0; i < n2; i++)
    tok[i] = test_token(2, i);
  float *got = malloc((size_t)V * sizeof(float)), *ref = malloc((size_t)V * sizeof(float));
  memcpy(got, feed(c, tok, n2, 2, 0), (size_t)V * sizeof(float));
  cr_expect_eq(cll_kv_free_cells(c), 0);
  cr_expect_geq(count_runs(c, 2), 2, "the rest of both blocks");
  alone_logits(m, 2, n2, ref, V);
  cr_expect_lt(max_abs_diff(got, ref, V), 1e-4);
  int32_t one = 7, pos1 = n0, seq1 = 0;
  struct cll_batch full = {1, &one, &pos1, &seq1, NULL};
  cr_expect_eq(cll_forward(c, &full, &err), CLL_EFULL);
  /* Seq 0 gives its cells back and takes a shared copy of seq 2: both
   * continue with the same token to the same logits. */
  cll_kv_seq_trim(c, 0, 0);
  cr_assert_eq(cll_kv_seq_copy(c, 2, 0, n2), 0);
  cr_expect_eq(cll_kv_free_cells(c), n0);
  int32_t t2[2] = {test_token(2, n2), test_token(2, n2)}, p2[2] = {n2, n2}, s2[2] = {0, 2};
  uint8_t w2[2] = {1, 1};
  struct cll_batch b2 = {2, t2, p2, s2, w2};
  cr_assert_eq(cll_forward(c, &b2, &err), 0, "%s", err.msg);
  alone_logits(m, 2, n2 + 1, ref, V);
  cr_expect_lt(max_abs_diff(cll_ctx_logits(c, 0), ref, V), 1e-4);
  cr_expect_lt(max_abs_diff(cll_ctx_logits(c, 1), ref, V), 1e-4);
  free(got);
  free(ref);
  cll_ctx_free(c);
  cll_model_release(m);
}

Test(forward, load_rejects_bad_models) {
  cll_model *m;
  cll_err err = {0};
  cr_expect_eq(cll_model_load("/nonexistent.gguf", &m, &err), CLL_ENOENT);
  cr_expect_null(m);
  cll_model_release(NULL);
  cll_ctx_free(NULL);
}
