/* test_arch.c — the decoder architectures (qwen3, gemma2, gemma3, phi3,
 * qwen3moe) against llama.cpp: tiny random-weight models are regenerated
 * here by test/models/mkarch.h and compared with the outputs llama.cpp
 * gave for the same files (test/models/ref/, made by
 * test/models/make-refs.sh): final logits of three prompts with F32
 * weights and an F32 KV cache within 1e-4, greedy continuations identical
 * for 32 tokens, and our own Q8_0 / Q4_K_M quantizations of the models
 * within the quantization bounds of test_forward.c. */
#include "cllama/engine.h"
#include "cllama/quantize.h"
#include "engine/ctx.h"
#include "models/mkarch.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define REF_DIR "test/models/ref"

struct ref {
  int32_t prompt[64];
  int n_prompt;
  int32_t greedy[64];
  int n_greedy;
  int64_t n_ctx;
  float *logits;
  int64_t n_vocab;
};

static void load_ref(const char *arch, const char *name, struct ref *r) {
  char path[512];
  snprintf(path, sizeof(path), REF_DIR "/%s/%s.json", arch, name);
  json_error_t je;
  json_t *j = json_load_file(path, 0, &je);
  cr_assert_not_null(j, "%s: %s", path, je.text);
  json_t *pt = json_object_get(j, "prompt_tokens"), *gt = json_object_get(j, "greedy_tokens");
  r->n_prompt = (int)json_array_size(pt);
  r->n_greedy = (int)json_array_size(gt);
  cr_assert(r->n_prompt > 0 && r->n_prompt <= 64 && r->n_greedy <= 64);
  for (int i = 0; i < r->n_prompt; i++)
    r->prompt[i] = (int32_t)json_integer_value(json_array_get(pt, (size_t)i));
  for (int i = 0; i < r->n_greedy; i++)
    r->greedy[i] = (int32_t)json_integer_value(json_array_get(gt, (size_t)i));
  r->n_vocab = json_integer_value(json_object_get(j, "n_vocab"));
  r->n_ctx = json_integer_value(json_object_get(j, "n_ctx"));
  json_decref(j);
  snprintf(path, sizeof(path), REF_DIR "/%s/%s.logits.f32", arch, name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  r->logits = malloc((size_t)r->n_vocab * sizeof(float));
  cr_assert_eq(fread(r->logits, sizeof(float), (size_t)r->n_vocab, f), (size_t)r->n_vocab);
  fclose(f);
}

/* The arch's tiny model, written to a fresh temporary file (path out). */
static cll_model *make_model(const char *arch, char *path, size_t cap) {
  snprintf(path, cap, "/tmp/cllama-arch-%s-%d.gguf", arch, (int)getpid());
  cr_assert_eq(mkarch_write(arch, path), 0);
  cll_model *m;
  cll_err err = {0};
  cr_assert_eq(cll_model_load(path, &m, &err), 0, "%s: %s", arch, err.msg);
  return m;
}

static cll_model *quantize(const char *src, const char *type, char *path, size_t cap) {
  snprintf(path, cap, "%s.%s.gguf", src, type);
  cll_quantize_params p = cll_quantize_defaults();
  bool pure;
  cr_assert_eq(cll_quantize_parse(type, &p.ftype, &pure), 0);
  p.pure = pure;
  p.n_threads = 2;
  cll_err err = {0};
  cr_assert_eq(cll_quantize_file(src, path, &p, &err), 0, "%s: %s", type, err.msg);
  cll_model *m;
  cr_assert_eq(cll_model_load(path, &m, &err), 0, "%s: %s", type, err.msg);
  return m;
}

static cll_ctx *new_ctx(cll_model *m, int64_t n_ctx, enum cll_kv_type kv, int n_seq) {
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = n_ctx;
  p.n_seq_max = n_seq;
  p.n_batch_max = 128;
  p.kv_type = kv;
  p.n_threads = 2;
  cll_ctx *c;
  cll_err err = {0};
  cr_assert_eq(cll_ctx_new(m, &p, &c, &err), 0, "%s", err.msg);
  return c;
}

static const float *feed(cll_ctx *c, const int32_t *tok, int n, int32_t seq, int32_t pos0) {
  int32_t pos[128], sq[128];
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

/* F32 logits within 1e-4 of llama.cpp and 32 identical greedy tokens.
 *
 * Gemma: within 2e-3. Its GeGLU rounds the GELU's input and output to half
 * precision (llama.cpp's CPU numerics, which forward.c follows: with an
 * exact tanh GELU the difference is 4-5e-3), and that rounding turns the
 * float32 accumulation-order differences of the matrix products (1e-7
 * relative) into a half-precision ulp (1e-3 relative) wherever an
 * activation sits near a rounding boundary: measured 1.4e-4 .. 1.2e-3 on
 * logits of standard deviation ~3. The greedy tokens still agree. */
static void check_f32(cll_model *m, const char *arch, const char *name) {
  const double tol = strncmp(arch, "gemma", 5) == 0 ? 2e-3 : 1e-4;
  struct ref r;
  load_ref(arch, name, &r);
  cr_assert_eq(r.n_vocab, cll_model_info(m)->n_vocab);
  cll_ctx *c = new_ctx(m, r.n_ctx, CLL_KV_F32, 1);
  const float *l = feed(c, r.prompt, r.n_prompt, 0, 0);
  double d = max_abs_diff(l, r.logits, r.n_vocab);
  printf("%s %s: F32 logits max abs diff %.3g\n", arch, name, d);
  cr_expect_lt(d, tol, "%s %s: max abs diff %g", arch, name, d);
  int32_t pos = r.n_prompt;
  for (int i = 0; i < r.n_greedy; i++) {
    int32_t t = argmax(l, r.n_vocab);
    cr_expect_eq(t, r.greedy[i], "%s %s: greedy token %d is %d, llama.cpp %d", arch, name, i, t,
                 r.greedy[i]);
    if (t != r.greedy[i])
      break;
    l = feed(c, &t, 1, 0, pos++);
  }
  cll_ctx_free(c);
  free(r.logits);
}

/* Quantized with our quantizer: relative RMS and cosine against llama.cpp
 * running the same quantized file (F32 KV in both). Both quantize the
 * activations too (differently), hence the tolerance. */
static void check_quant(const char *arch, const char *f32_path, const char *type) {
  char path[512];
  cll_model *m = quantize(f32_path, type, path, sizeof(path));
  for (int p = 0; p < MKARCH_N_PROMPTS; p++) {
    char name[32];
    snprintf(name, sizeof(name), "p%d.%s", p, type);
    struct ref r;
    load_ref(arch, name, &r);
    cll_ctx *c = new_ctx(m, r.n_ctx, CLL_KV_F32, 1);
    const float *l = feed(c, r.prompt, r.n_prompt, 0, 0);
    double rel, cosine;
    compare(l, r.logits, r.n_vocab, &rel, &cosine);
    printf("%s %s %s: relative RMS %.3g, cosine %.6f\n", arch, type, name, rel, cosine);
    cr_expect_lt(rel, 3e-2, "%s %s %s: relative RMS %g", arch, type, name, rel);
    cr_expect_geq(cosine, 0.999, "%s %s %s: cosine %g", arch, type, name, cosine);
    cll_ctx_free(c);
    free(r.logits);
  }
  cll_model_release(m);
  unlink(path);
}

static void check_arch(const char *arch) {
  char path[256];
  cll_model *m = make_model(arch, path, sizeof(path));
  cr_expect_str_eq(cll_model_info(m)->arch, arch);
  for (int p = 0; p < MKARCH_N_PROMPTS; p++) {
    char name[16];
    snprintf(name, sizeof(name), "p%d", p);
    check_f32(m, arch, name);
  }
  if (strcmp(arch, "phi3") == 0)
    check_f32(m, arch, "p1.ctx256");
  cll_model_release(m);
  check_quant(arch, path, "Q8_0");
  check_quant(arch, path, "Q4_K_M");
  unlink(path);
}

Test(arch, qwen3) {
  check_arch("qwen3");
}
Test(arch, gemma2) {
  check_arch("gemma2");
}
Test(arch, gemma3) {
  check_arch("gemma3");
}
Test(arch, phi3) {
  check_arch("phi3");
}
Test(arch, qwen3moe) {
  check_arch("qwen3moe");
}
