/* test_encoder.c — the encoder architectures against llama.cpp.
 *
 * test/models/mkenc writes four small random-weight models (bert,
 * nomic-bert, XLM-R with a t5 vocabulary, an XLM-R reranker); the
 * committed test/models/ref/enc/<model>.json hold llama.cpp's token ids
 * and pooled outputs for them (test/models/make-enc-refs.sh). Here: the
 * same ids from our WordPiece / Unigram tokenizers, the same embeddings
 * (cosine >= 0.99999 in F32), the same rerank scores (1e-4), quantized
 * copies (our quantizer) within bounds, and batching that changes nothing. */
#include "cllama/engine.h"
#include "cllama/gguf.h"
#include "cllama/quantize.h"
#include "cllama/tokenizer.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char model_dir[256];

/* Writes the models once per process (the generator is deterministic). */
static const char *models(void) {
  if (model_dir[0])
    return model_dir;
  const char *b = getenv("CLLAMA_BUILD");
  char gen[512];
  snprintf(gen, sizeof(gen), "%s/test/models/mkenc", b && *b ? b : "build/release");
  cr_assert(access(gen, X_OK) == 0, "%s not built (make %s)", gen, gen);
  snprintf(model_dir, sizeof(model_dir), "/tmp/cllama-enc-%d", (int)getpid());
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "%s %s", gen, model_dir);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
  return model_dir;
}

static void cleanup(void) {
  if (model_dir[0]) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", model_dir);
    if (system(cmd) != 0)
      fprintf(stderr, "cannot remove %s\n", model_dir);
  }
}

static json_t *load_ref(const char *name) {
  char p[512];
  snprintf(p, sizeof(p), "test/models/ref/enc/%s.json", name);
  json_error_t je;
  json_t *r = json_load_file(p, 0, &je);
  cr_assert_not_null(r, "%s: %s", p, je.text);
  return r;
}

struct run {
  cll_model *m;
  cll_ctx *c;
  cll_gguf *g;
  cll_tokenizer *t;
};

static struct run open_model(const char *path) {
  struct run r = {0};
  cll_err err = {0};
  cr_assert_eq(cll_model_load(path, &r.m, &err), 0, "%s: %s", path, err.msg);
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = 512;
  p.n_seq_max = 16;
  p.n_batch_max = 512;
  p.n_threads = 2;
  p.embeddings = true;
  cr_assert_eq(cll_ctx_new(r.m, &p, &r.c, &err), 0, "%s", err.msg);
  cr_assert_eq(cll_gguf_open(path, &r.g, &err), 0, "%s", err.msg);
  cr_assert_eq(cll_tokenizer_new(r.g, &r.t, &err), 0, "%s", err.msg);
  return r;
}

static void close_model(struct run *r) {
  cll_tokenizer_free(r->t);
  cll_gguf_close(r->g);
  cll_ctx_free(r->c);
  cll_model_release(r->m);
}

/* Tokenizes input i the way llama-embedding does (a rerank pair
 * "query<TAB>doc" becomes query EOS SEP doc, special text parsed). */
static void tokenize(const struct run *r, const char *in, cll_tok_buf *ids) {
  char buf[1024];
  const char *tab = strchr(in, '\t');
  if (tab != NULL) {
    size_t n;
    const char *eos = cll_tok_text(r->t, cll_tok_eos(r->t), &n);
    int k = snprintf(buf, sizeof(buf), "%.*s%.*s", (int)(tab - in), in, (int)n, eos);
    if (cll_tok_add_sep(r->t)) {
      const char *sep = cll_tok_text(r->t, cll_tok_sep(r->t), &n);
      k += snprintf(buf + k, sizeof(buf) - (size_t)k, "%.*s", (int)n, sep);
    }
    snprintf(buf + k, sizeof(buf) - (size_t)k, "%s", tab + 1);
    in = buf;
  }
  cr_assert_eq(
      cll_tokenize_append(r->t, in, strlen(in), CLL_TOK_ADD_SPECIAL | CLL_TOK_PARSE_SPECIAL, ids),
      0);
}

/* Runs inputs [i0, i1) of the ref in one batch; out[i] gets the pooled
 * output (n_embd floats). */
static void embed(struct run *r, json_t *ref, size_t i0, size_t i1, float **out) {
  const struct cll_model_info *I = cll_model_info(r->m);
  int32_t tok[512], pos[512], seq[512];
  uint8_t want[512];
  int32_t n = 0;
  size_t first[64], len[64];
  for (size_t i = i0; i < i1; i++) {
    cll_tok_buf ids = {0};
    tokenize(r, json_string_value(json_array_get(json_object_get(ref, "inputs"), i)), &ids);
    first[i] = (size_t)n;
    len[i] = ids.n;
    for (size_t k = 0; k < ids.n; k++, n++) {
      cr_assert_lt(n, 512);
      tok[n] = ids.ids[k];
      pos[n] = (int32_t)k;
      seq[n] = (int32_t)(i - i0);
      want[n] = I->pooling == 1 || I->pooling == 0 ? 1 : k == 0;
    }
    cll_tok_buf_free(&ids);
  }
  struct cll_batch b = {n, tok, pos, seq, want};
  cll_err err = {0};
  cr_assert_eq(cll_forward(r->c, &b, &err), 0, "%s", err.msg);
  int32_t k = 0;
  for (size_t i = i0; i < i1; i++) {
    out[i] = calloc((size_t)I->n_embd, sizeof(float));
    size_t rows = I->pooling == 1 || I->pooling == 0 ? len[i] : 1;
    for (size_t j = 0; j < rows; j++, k++) {
      const float *h = cll_ctx_hidden(r->c, k);
      cr_assert_not_null(h);
      for (int64_t e = 0; e < I->n_embd; e++)
        out[i][e] += h[e] / (float)rows;
    }
    (void)first;
  }
}

static double cosine(const float *a, json_t *b, int64_t n) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t i = 0; i < n; i++) {
    double y = json_number_value(json_array_get(b, (size_t)i));
    ab += a[i] * y;
    aa += (double)a[i] * a[i];
    bb += y * y;
  }
  return ab / sqrt(aa * bb);
}

/* Checks a model file against the reference: token ids exactly, then
 * cosine >= min_cos (embeddings) or |score - ref| <= max_diff (rerank). */
static void check(const char *name, const char *path, double min_cos, double max_diff,
                  bool check_ids) {
  json_t *ref = load_ref(name);
  struct run r = open_model(path);
  json_t *inputs = json_object_get(ref, "inputs"), *ids = json_object_get(ref, "ids");
  size_t n = json_array_size(inputs);
  cr_assert_gt(n, 0);
  for (size_t i = 0; check_ids && i < n; i++) {
    cll_tok_buf got = {0};
    tokenize(&r, json_string_value(json_array_get(inputs, i)), &got);
    json_t *want = json_array_get(ids, i);
    bool same = got.n == json_array_size(want);
    for (size_t k = 0; same && k < got.n; k++)
      same = got.ids[k] == json_integer_value(json_array_get(want, k));
    cr_expect(same, "%s: input %zu tokenizes differently from llama.cpp (%zu vs %zu ids)", name, i,
              got.n, json_array_size(want));
    cll_tok_buf_free(&got);
  }
  float *out[64] = {0};
  embed(&r, ref, 0, n, out);
  const struct cll_model_info *I = cll_model_info(r.m);
  json_t *scores = json_object_get(ref, "scores");
  for (size_t i = 0; i < n; i++) {
    if (scores != NULL) {
      double want = json_number_value(json_array_get(scores, i));
      cr_expect(fabs(out[i][0] - want) <= max_diff, "%s: score %zu is %.6f, llama.cpp %.6f", name,
                i, out[i][0], want);
    } else {
      double c = cosine(out[i], json_array_get(json_object_get(ref, "embeddings"), i), I->n_embd);
      cr_expect(c >= min_cos, "%s: input %zu cosine %.8f < %.8f", name, i, c, min_cos);
    }
    free(out[i]);
  }
  close_model(&r);
  json_decref(ref);
}

static const char *const names[] = {"bert-tiny", "nomic-tiny", "xlmr-tiny", "rerank-tiny"};

Test(encoder, f32_matches_llama_cpp, .fini = cleanup, .timeout = 120) {
  for (size_t i = 0; i < 4; i++) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s.gguf", models(), names[i]);
    check(names[i], p, 0.99999, 1e-4, true);
  }
}

/* Copies quantized by our quantizer, run by both engines: the same file
 * gives the same outputs within the quantized kernels' rounding (both
 * quantize the activations to 8 bits, so a tiny difference before a
 * rounding step can move an 8-bit value: embeddings agree to cosine
 * 0.9999, rerank scores (of size 1..4 here, after two more products) to
 * 0.05). */
Test(encoder, quantized_match_llama_cpp, .fini = cleanup, .timeout = 120) {
  const char *types[] = {"Q8_0", "Q4_K_M"};
  for (size_t q = 0; q < 2; q++)
    for (size_t i = 0; i < 4; i++) {
      char in[512], out[512], ref[128];
      snprintf(in, sizeof(in), "%s/%s.gguf", models(), names[i]);
      snprintf(out, sizeof(out), "%s/%s-%s.gguf", models(), names[i], types[q]);
      snprintf(ref, sizeof(ref), "%s-%s", names[i], types[q]);
      cll_quantize_params qp = cll_quantize_defaults();
      cr_assert_eq(cll_quantize_parse(types[q], &qp.ftype, &qp.pure), 0);
      cll_err err = {0};
      cr_assert_eq(cll_quantize_file(in, out, &qp, &err), 0, "%s: %s", out, err.msg);
      check(ref, out, 0.9999, 0.05, true);
    }
}

/* The same inputs one per forward and all in one forward give the same
 * outputs (F32: the products do not depend on the batch). */
Test(encoder, batch_equals_single, .fini = cleanup, .timeout = 120) {
  for (size_t m = 0; m < 4; m++) {
    char p[512];
    snprintf(p, sizeof(p), "%s/%s.gguf", models(), names[m]);
    json_t *ref = load_ref(names[m]);
    struct run r = open_model(p);
    size_t n = json_array_size(json_object_get(ref, "inputs"));
    float *all[64] = {0}, *one[64] = {0};
    embed(&r, ref, 0, n, all);
    for (size_t i = 0; i < n; i++)
      embed(&r, ref, i, i + 1, one);
    int64_t E = cll_model_info(r.m)->n_embd;
    for (size_t i = 0; i < n; i++) {
      for (int64_t e = 0; e < E; e++)
        cr_assert_float_eq(all[i][e], one[i][e], 1e-6, "%s input %zu dim %lld", names[m], i,
                           (long long)e);
      free(all[i]);
      free(one[i]);
    }
    close_model(&r);
    json_decref(ref);
  }
}

/* An encoder batch must hold whole sequences in order. */
Test(encoder, rejects_split_sequences, .fini = cleanup) {
  char p[512];
  snprintf(p, sizeof(p), "%s/bert-tiny.gguf", models());
  struct run r = open_model(p);
  int32_t tok[4] = {2, 10, 11, 3}, pos[4] = {1, 2, 3, 4}, seq[4] = {0, 0, 0, 0};
  struct cll_batch b = {4, tok, pos, seq, NULL};
  cll_err err = {0};
  cr_assert_eq(cll_forward(r.c, &b, &err), CLL_EINVAL);
  int32_t pos2[4] = {0, 1, 0, 2}, seq2[4] = {0, 0, 1, 0};
  struct cll_batch b2 = {4, tok, pos2, seq2, NULL};
  cr_assert_eq(cll_forward(r.c, &b2, &err), CLL_EINVAL);
  close_model(&r);
}
