/* test_quantize.c — the quantizer (include/cllama/quantize.h): recipes
 * against the llama.cpp-made files in ../shared/models, and converted
 * tensors against their source. */
#include "cllama/engine.h"
#include "cllama/gguf.h"
#include "cllama/kernels.h"
#include "cllama/quantize.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s ? s : "../shared";
}

static bool have_shared(void) {
  char p[1024];
  snprintf(p, sizeof p, "%s/models/stories260K-f32.gguf", shared_dir());
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

static cll_gguf *open_model(const char *file) {
  char p[1024];
  snprintf(p, sizeof p, "%s/models/%s", shared_dir(), file);
  cll_gguf *g = NULL;
  cll_err err = {0};
  int rc = cll_gguf_open(p, &g, &err);
  cr_assert_eq(rc, 0, "open %s: %s", p, err.msg);
  return g;
}

static const char *tname(uint32_t t) {
  const struct cll_type_info *ti = cll_type_info(t);
  return ti ? ti->name : "?";
}

/* Our plan for src under ftype gives every tensor the type it has in the
 * llama.cpp-made file want. */
static void expect_plan_matches(const char *src_file, const char *ftype_name,
                                const char *want_file) {
  cll_gguf *src = open_model(src_file), *want = open_model(want_file);
  enum cll_ftype ft;
  bool pure;
  cr_assert_eq(cll_quantize_parse(ftype_name, &ft, &pure), 0);
  int64_t n = cll_gguf_n_tensors(src);
  cr_assert_eq(n, cll_gguf_n_tensors(want));
  uint32_t *types = calloc((size_t)n, sizeof *types);
  cr_assert_eq(cll_quantize_plan(src, ft, pure, types), 0);
  int bad = 0;
  for (int64_t i = 0; i < n; i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(src, i);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
    const cll_gguf_tensor *w = cll_gguf_find_tensor(want, name);
    cr_assert_not_null(w, "%s missing in %s", name, want_file);
    if (w->type != types[i]) {
      printf("%s %s: %s plans %s, %s has %s\n", src_file, ftype_name, name, tname(types[i]),
             want_file, tname(w->type));
      bad++;
    }
  }
  free(types);
  cll_gguf_close(src);
  cll_gguf_close(want);
  cr_assert_eq(bad, 0, "%d tensors typed differently", bad);
}

Test(quantize, parse_names) {
  enum cll_ftype ft;
  bool pure;
  cr_assert_eq(cll_quantize_parse("q4_k_m", &ft, &pure), 0);
  cr_assert(ft == CLL_FTYPE_Q4_K_M && !pure);
  cr_assert_eq(cll_quantize_parse("Q5_K", &ft, &pure), 0);
  cr_assert(ft == CLL_FTYPE_Q5_K_S && pure);
  cr_assert_eq(cll_quantize_parse("Q8_0", &ft, &pure), 0);
  cr_assert_eq(ft, CLL_FTYPE_Q8_0);
  cr_assert_eq(cll_quantize_parse("Q3_K_M", &ft, &pure), CLL_EINVAL);
  cr_assert_eq(cll_quantize_parse(NULL, &ft, &pure), CLL_EINVAL);
  cr_assert_str_eq(cll_quantize_ftype_name(CLL_FTYPE_Q5_K_M), "Q5_K_M");
}

Test(quantize, recipes_match_llama_cpp_files) {
  NEED_SHARED();
  expect_plan_matches("tiny-llama-rand-f16.gguf", "Q4_K_M", "tiny-llama-rand-q4_k_m.gguf");
  expect_plan_matches("tiny-llama-rand-f16.gguf", "Q4_0", "tiny-llama-rand-q4_0.gguf");
  expect_plan_matches("tiny-llama-rand-f16.gguf", "Q8_0", "tiny-llama-rand-q8_0.gguf");
  expect_plan_matches("stories260K-f32.gguf", "Q8_0", "stories260K-q8_0-mixed.gguf");
}

/* Relative RMS of dequantized tensor q against source s. */
static double tensor_rel_rms(const cll_gguf_tensor *q, const cll_gguf_tensor *s) {
  const cll_kernels *k = cll_kernels_by_name("ref");
  int64_t ne0 = (int64_t)s->ne[0], rows = (int64_t)(s->ne[1] * s->ne[2] * s->ne[3]);
  float *a = malloc((size_t)ne0 * sizeof(float)), *b = malloc((size_t)ne0 * sizeof(float));
  size_t qb = cll_row_bytes(q->type, ne0), sb = cll_row_bytes(s->type, ne0);
  double e = 0, m = 0;
  for (int64_t r = 0; r < rows; r++) {
    k->dequant_row[q->type]((const uint8_t *)q->data + r * qb, a, ne0);
    k->dequant_row[s->type]((const uint8_t *)s->data + r * sb, b, ne0);
    for (int64_t j = 0; j < ne0; j++) {
      e += ((double)a[j] - b[j]) * ((double)a[j] - b[j]);
      m += (double)b[j] * b[j];
    }
  }
  free(a);
  free(b);
  return m > 0 ? sqrt(e / m) : sqrt(e);
}

static double type_bound(uint32_t t) {
  switch (t) {
  case CLL_TYPE_F32:
    return 0;
  case CLL_TYPE_F16:
    return 1e-3;
  case CLL_TYPE_BF16:
    return 5e-3;
  case CLL_TYPE_Q8_0:
    return 0.01;
  case CLL_TYPE_Q6_K:
    return 0.03;
  case CLL_TYPE_Q5_0:
  case CLL_TYPE_Q5_1:
  case CLL_TYPE_Q5_K:
    return 0.06;
  default:
    return 0.13;
  }
}

/* Quantizes src_file to ftype_name in a temporary file and checks every
 * tensor: same shape, planned type, dequantized within type_bound. */
static void quantize_and_check(const char *src_file, const char *ftype_name, cll_gguf **out_q,
                               char *out_path, size_t cap) {
  char in[1024];
  snprintf(in, sizeof in, "%s/models/%s", shared_dir(), src_file);
  snprintf(out_path, cap, "/tmp/cllama-test-quantize-%d-%s.gguf", (int)getpid(), ftype_name);
  cll_quantize_params p = cll_quantize_defaults();
  cr_assert_eq(cll_quantize_parse(ftype_name, &p.ftype, &p.pure), 0);
  p.n_threads = 2;
  cll_err err = {0};
  cr_assert_eq(cll_quantize_file(in, out_path, &p, &err), 0, "quantize: %s", err.msg);
  cll_gguf *src = open_model(src_file), *q = NULL;
  cr_assert_eq(cll_gguf_open(out_path, &q, &err), 0, "reopen: %s", err.msg);
  uint32_t ft = 0;
  cr_assert_eq(cll_gguf_get_u32(q, "general.file_type", &ft), 0);
  cr_assert_eq(ft, (uint32_t)p.ftype);
  cr_assert_eq(cll_gguf_n_kv(q), cll_gguf_n_kv(src) +
                                     (cll_gguf_find_key(src, "general.file_type") < 0) +
                                     (cll_gguf_find_key(src, "general.quantization_version") < 0));
  int64_t n = cll_gguf_n_tensors(src);
  cr_assert_eq(cll_gguf_n_tensors(q), n);
  for (int64_t i = 0; i < n; i++) {
    const cll_gguf_tensor *s = cll_gguf_tensor_at(src, i), *t = cll_gguf_tensor_at(q, i);
    cr_assert(s->name.len == t->name.len && memcmp(s->name.ptr, t->name.ptr, s->name.len) == 0);
    cr_assert(s->n_dims == t->n_dims && memcmp(s->ne, t->ne, sizeof s->ne) == 0);
    double e = tensor_rel_rms(t, s);
    cr_expect(e <= type_bound(t->type), "%.*s (%s): rel RMS %g", (int)s->name.len, s->name.ptr,
              tname(t->type), e);
  }
  cll_gguf_close(src);
  *out_q = q;
}

Test(quantize, stories_q8_0_matches_llama_cpp_bytes) {
  NEED_SHARED();
  char path[256];
  cll_gguf *q = NULL;
  quantize_and_check("stories260K-f32.gguf", "Q8_0", &q, path, sizeof path);
  /* Q8_0 rounding is fully specified, so tensors that llama.cpp also made
   * Q8_0 must be byte-identical. */
  cll_gguf *want = open_model("stories260K-q8_0-mixed.gguf");
  int n_same = 0;
  for (int64_t i = 0; i < cll_gguf_n_tensors(q); i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(q, i);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.ptr);
    const cll_gguf_tensor *w = cll_gguf_find_tensor(want, name);
    cr_assert_not_null(w);
    cr_expect_eq(w->type, t->type, "%s: %s vs %s", name, tname(t->type), tname(w->type));
    if (w->type == t->type && w->n_bytes == t->n_bytes) {
      cr_expect(memcmp(w->data, t->data, t->n_bytes) == 0, "%s bytes differ", name);
      n_same += t->type == CLL_TYPE_Q8_0;
    }
  }
  cr_expect_gt(n_same, 30);
  cll_gguf_close(want);
  cll_gguf_close(q);
  unlink(path);
}

Test(quantize, every_target_within_bounds) {
  NEED_SHARED();
  const char *targets[] = {"Q4_0", "Q4_1",   "Q5_0",   "Q5_1", "Q4_K", "Q5_K",
                           "Q6_K", "Q4_K_M", "Q5_K_M", "F16",  "BF16"};
  for (size_t i = 0; i < sizeof targets / sizeof targets[0]; i++) {
    char path[256];
    cll_gguf *q = NULL;
    quantize_and_check("stories260K-f32.gguf", targets[i], &q, path, sizeof path);
    cll_gguf_close(q);
    unlink(path);
  }
}

Test(quantize, k_m_recipe_on_f16_source) {
  NEED_SHARED();
  char path[256];
  cll_gguf *q = NULL;
  quantize_and_check("tiny-llama-rand-f16.gguf", "Q4_K_M", &q, path, sizeof path);
  const cll_gguf_tensor *t = cll_gguf_find_tensor(q, "blk.3.ffn_down.weight");
  cr_assert(t && t->type == CLL_TYPE_Q6_K);
  /* Our K-quant fit is our own: it must be about as accurate as
   * llama.cpp's on the same tensors. */
  cll_gguf *src = open_model("tiny-llama-rand-f16.gguf");
  cll_gguf *ref = open_model("tiny-llama-rand-q4_k_m.gguf");
  for (int64_t i = 0; i < cll_gguf_n_tensors(q); i++) {
    const cll_gguf_tensor *ours = cll_gguf_tensor_at(q, i), *s = cll_gguf_tensor_at(src, i);
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)ours->name.len, ours->name.ptr);
    const cll_gguf_tensor *theirs = cll_gguf_find_tensor(ref, name);
    if (ours->type == CLL_TYPE_F32 || theirs->type != ours->type)
      continue;
    double e_ours = tensor_rel_rms(ours, s), e_theirs = tensor_rel_rms(theirs, s);
    cr_expect(e_ours <= 1.05 * e_theirs, "%s (%s): rel RMS %.5f vs llama.cpp %.5f", name,
              tname(ours->type), e_ours, e_theirs);
    if (i < 8)
      printf("%-28s %-5s rel RMS ours %.5f llama.cpp %.5f\n", name, tname(ours->type), e_ours,
             e_theirs);
  }
  cll_gguf_close(src);
  cll_gguf_close(ref);
  cll_gguf_close(q);
  unlink(path);
}

Test(quantize, bad_input_gives_error) {
  cll_quantize_params p = cll_quantize_defaults();
  cll_err err = {0};
  cr_assert_neq(cll_quantize_file("/nonexistent/in.gguf", "/tmp/x.gguf", &p, &err), 0);
  cr_assert(err.msg[0] != '\0');
}

/* ---- end to end: logits of a model we quantized, against llama.cpp's */

/* Final-position logits (n_vocab floats, new) of prompt p's reference
 * tokens through the model at path, with an f32 KV cache. */
static float *run_prompt(const char *path, int p, int64_t *n_vocab) {
  char jpath[1024];
  snprintf(jpath, sizeof jpath, "%s/ref/tiny-llama-rand-f16/p%d.kvf32.json", shared_dir(), p);
  json_error_t jerr;
  json_t *j = json_load_file(jpath, 0, &jerr);
  cr_assert_not_null(j, "%s: %s", jpath, jerr.text);
  json_t *toks = json_object_get(j, "prompt_tokens");
  int32_t tok[256], pos[256], seq[256];
  int n = (int)json_array_size(toks);
  cr_assert(n > 0 && n <= 256);
  for (int i = 0; i < n; i++) {
    tok[i] = (int32_t)json_integer_value(json_array_get(toks, (size_t)i));
    pos[i] = i;
    seq[i] = 0;
  }
  json_decref(j);
  cll_model *m = NULL;
  cll_err err = {0};
  cr_assert_eq(cll_model_load(path, &m, &err), 0, "%s: %s", path, err.msg);
  struct cll_ctx_params cp = cll_ctx_params_defaults();
  cp.n_ctx = 256;
  cp.n_seq_max = 1;
  cp.n_batch_max = 256;
  cp.kv_type = CLL_KV_F32;
  cp.n_threads = 2;
  cll_ctx *c = NULL;
  cr_assert_eq(cll_ctx_new(m, &cp, &c, &err), 0, "%s", err.msg);
  struct cll_batch b = {n, tok, pos, seq, NULL};
  cr_assert_eq(cll_forward(c, &b, &err), 0, "%s", err.msg);
  *n_vocab = cll_model_info(m)->n_vocab;
  float *out = malloc((size_t)*n_vocab * sizeof(float));
  memcpy(out, cll_ctx_logits(c, 0), (size_t)*n_vocab * sizeof(float));
  cll_ctx_free(c);
  cll_model_release(m);
  return out;
}

static float *load_logits(const char *stem, int p, int64_t n) {
  char path[1024];
  snprintf(path, sizeof path, "%s/ref/%s/p%d.kvf32.logits.f32", shared_dir(), stem, p);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s", path);
  float *x = malloc((size_t)n * sizeof(float));
  cr_assert_eq(fread(x, sizeof(float), (size_t)n, f), (size_t)n);
  fclose(f);
  return x;
}

static double rel_rms(const float *a, const float *b, int64_t n) {
  double e = 0, s = 0;
  for (int64_t i = 0; i < n; i++) {
    e += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    s += (double)b[i] * b[i];
  }
  return sqrt(e / s);
}

/* Quantizes tiny-llama-rand-f16 ourselves and checks that the model's
 * logits stay as close to the f16 reference as llama.cpp's own quantized
 * file's do (averaged over the three reference prompts; random weights
 * make logits sensitive, so this measures quantization quality). */
static void end_to_end(const char *type, const char *llama_stem, double slack) {
  char in[1024], out[256];
  snprintf(in, sizeof in, "%s/models/tiny-llama-rand-f16.gguf", shared_dir());
  snprintf(out, sizeof out, "/tmp/cllama-test-e2e-%d-%s.gguf", (int)getpid(), type);
  cll_quantize_params qp = cll_quantize_defaults();
  cr_assert_eq(cll_quantize_parse(type, &qp.ftype, &qp.pure), 0);
  qp.n_threads = 2;
  cll_err err = {0};
  cr_assert_eq(cll_quantize_file(in, out, &qp, &err), 0, "%s", err.msg);
  double ours = 0, theirs = 0;
  for (int p = 1; p <= 3; p++) {
    int64_t nv = 0;
    float *got = run_prompt(out, p, &nv);
    float *f16 = load_logits("tiny-llama-rand-f16", p, nv);
    float *lc = load_logits(llama_stem, p, nv);
    ours += rel_rms(got, f16, nv) / 3;
    theirs += rel_rms(lc, f16, nv) / 3;
    free(got);
    free(f16);
    free(lc);
  }
  unlink(out);
  printf("%s: logits vs f16 reference, mean rel RMS: ours %.4f, llama.cpp %.4f\n", type, ours,
         theirs);
  cr_expect_leq(ours, theirs * slack, "%s: ours %g vs llama.cpp %g", type, ours, theirs);
}

Test(quantize, end_to_end_logits_as_good_as_llama_cpp, .timeout = 300) {
  NEED_SHARED();
  end_to_end("Q8_0", "tiny-llama-rand-q8_0", 1.10);
  end_to_end("Q4_0", "tiny-llama-rand-q4_0", 1.10);
  end_to_end("Q4_K_M", "tiny-llama-rand-q4_k_m", 1.10);
}

/* The recipe's special cases on a synthetic file: tied embeddings (no
 * output.weight) get the output type, rows that do not divide into K
 * blocks fall back, rows that fit no block stay in their source type, and
 * 1-D tensors are never touched. */
Test(quantize, plan_fallbacks_and_tied_embeddings) {
  char path[256];
  snprintf(path, sizeof path, "/tmp/cllama-test-plan-%d.gguf", (int)getpid());
  static float data[256 * 16];
  struct {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[2];
    uint32_t want_q4km, want_q8_0;
  } t[] = {
      {"token_embd.weight", 2, {256, 16}, CLL_TYPE_Q6_K, CLL_TYPE_Q8_0},
      {"blk.0.attn_norm.weight", 1, {256, 1}, CLL_TYPE_F32, CLL_TYPE_F32},
      {"blk.0.attn_qkv.weight", 2, {256, 8}, CLL_TYPE_Q5_K, CLL_TYPE_Q8_0},
      {"blk.0.ffn_up.weight", 2, {96, 8}, CLL_TYPE_Q5_0, CLL_TYPE_Q8_0},
      {"blk.0.ffn_gate.weight", 2, {40, 8}, CLL_TYPE_F32, CLL_TYPE_F32},
      {"blk.0.attn_q.bias", 1, {256, 1}, CLL_TYPE_F32, CLL_TYPE_F32},
  };
  size_t n = sizeof t / sizeof t[0];
  cll_gguf_writer *w = NULL;
  cll_err err = {0};
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cll_gguf_writer_set_str(w, "general.architecture", "llama");
  for (size_t i = 0; i < n; i++)
    cll_gguf_writer_add_tensor(w, t[i].name, CLL_TYPE_F32, t[i].n_dims, t[i].ne, data,
                               t[i].ne[0] * t[i].ne[1] * sizeof(float));
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
  cll_gguf *g = NULL;
  cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s", err.msg);
  uint32_t types[8];
  cr_assert_eq(cll_quantize_plan(g, CLL_FTYPE_Q4_K_M, false, types), 0);
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(types[i], t[i].want_q4km, "Q4_K_M %s: %s", t[i].name, tname(types[i]));
  cr_assert_eq(cll_quantize_plan(g, CLL_FTYPE_Q8_0, false, types), 0);
  for (size_t i = 0; i < n; i++)
    cr_expect_eq(types[i], t[i].want_q8_0, "Q8_0 %s: %s", t[i].name, tname(types[i]));
  cll_gguf_close(g);
  unlink(path);
}

/* `cllama quantize` itself (the binary from CLLAMA_BIN, set by make test). */
Test(quantize, cli_quantize_command) {
  NEED_SHARED();
  const char *bin = getenv("CLLAMA_BIN");
  if (bin == NULL) {
    printf("SKIP: CLLAMA_BIN not set\n");
    cr_skip("CLLAMA_BIN not set");
  }
  char out[256], cmd[2048];
  snprintf(out, sizeof out, "/tmp/cllama-test-cli-%d.gguf", (int)getpid());
  snprintf(cmd, sizeof cmd, "'%s' quantize '%s/models/stories260K-f32.gguf' '%s' q5_k_m --quiet",
           bin, shared_dir(), out);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  cll_gguf *g = NULL;
  cll_err err = {0};
  cr_assert_eq(cll_gguf_open(out, &g, &err), 0, "%s", err.msg);
  uint32_t ft = 0;
  cr_assert_eq(cll_gguf_get_u32(g, "general.file_type", &ft), 0);
  cr_assert_eq(ft, (uint32_t)CLL_FTYPE_Q5_K_M);
  cll_gguf_close(g);
  unlink(out);
  snprintf(cmd, sizeof cmd, "'%s' quantize a.gguf b.gguf Q9_9 2>/dev/null", bin);
  int rc = system(cmd);
  cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "bad type: status %d", rc);
  snprintf(cmd, sizeof cmd, "'%s' quantize /nonexistent.gguf '%s' Q8_0 2>/dev/null", bin, out);
  rc = system(cmd);
  cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "missing input: status %d", rc);
}
