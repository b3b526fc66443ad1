/* bench/grammar.c — what constrained decoding costs, measured in one run:
 *
 *   1. building the vocabulary index (token trie, string tables) for the
 *      Llama 3 vocabulary (128k tokens),
 *   2. the mask per token over that vocabulary while a nested schema's
 *      document is generated (the document is tokenized with the same
 *      vocabulary and fed token by token; each mask is timed as the best of
 *      a few repeats): mean, median, p90 and max, split into steps inside a
 *      string and steps on structure,
 *   3. decode tokens/s of a model with and without a schema (forward +
 *      mask + sampling + advance against forward + sampling), the two
 *      alternated rep by rep so machine noise hits both alike; the ratio is
 *      the schema's cost.
 *
 *   build/release/bench/grammar [--vocab VOCAB.gguf] [--model MODEL.gguf]
 *                               [--tg 64] [--reps 5] [--threads 2]
 * Defaults: $CLLAMA_SHARED (or ../shared)/testdata/tokenizer/vocab-llama3.gguf
 * and models/tiny-llama-rand-q4_0.gguf. */
#include "cllama/engine.h"
#include "cllama/grammar.h"
#include "cllama/sampler.h"
#include "cllama/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{"
    "\"name\":{\"type\":\"string\"},"
    "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":130},"
    "\"email\":{\"type\":\"string\",\"format\":\"email\"},"
    "\"address\":{\"type\":\"object\",\"properties\":{\"street\":{\"type\":\"string\"},"
    "\"city\":{\"type\":\"string\"},\"zip\":{\"type\":\"string\",\"pattern\":\"^[0-9]{5}$\"}},"
    "\"required\":[\"street\",\"city\",\"zip\"]},"
    "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":20},\"maxItems\":8},"
    "\"orders\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
    "\"id\":{\"type\":\"integer\"},\"status\":{\"enum\":[\"open\",\"shipped\",\"closed\"]},"
    "\"total\":{\"type\":\"number\"},\"placed\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"note\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}},"
    "\"required\":[\"id\",\"status\",\"total\"]}}},"
    "\"required\":[\"name\",\"age\",\"address\",\"orders\"]}";

static const char *DOC =
    "{\n  \"name\": \"Ada Lovelace, Countess of Lovelace\",\n  \"age\": 36,\n"
    "  \"email\": \"ada@analytical.engine.org\",\n"
    "  \"address\": {\"street\": \"12 St James's Square\", \"city\": \"London\", \"zip\": "
    "\"12345\"},\n"
    "  \"tags\": [\"mathematics\", \"poetry of science\", \"notes\", \"Bernoulli numbers\"],\n"
    "  \"orders\": [\n    {\"id\": 1843, \"status\": \"shipped\", \"total\": 19.99, \"placed\": "
    "\"1843-07-10\", \"note\": \"Sketch of the Analytical Engine invented by Charles Babbage, "
    "with notes by the translator\"},\n"
    "    {\"id\": 1852, \"status\": \"open\", \"total\": 250.5, \"note\": null}\n  ]\n}";

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n) {
  if (n == 0)
    return;
  double sum = 0;
  for (int i = 0; i < n; i++)
    sum += v[i];
  qsort(v, (size_t)n, sizeof(double), cmp_d);
  printf("  %-10s %4d steps  mean %7.1f us  median %7.1f us  p90 %7.1f us  max %7.1f us\n", what, n,
         sum / n * 1e6, v[n / 2] * 1e6, v[(n * 9) / 10] * 1e6, v[n - 1] * 1e6);
}

static int bench_masks(const char *vocab_path) {
  cll_err err = {0};
  cll_gguf *gg = NULL;
  cll_tokenizer *t = NULL;
  if (cll_gguf_open(vocab_path, &gg, &err) != 0 || cll_tokenizer_new(gg, &t, &err) != 0) {
    fprintf(stderr, "bench/grammar: %s: %s\n", vocab_path, err.msg);
    return 1;
  }
  double t0 = now_s();
  cll_grammar_vocab *gv = NULL;
  if (cll_grammar_vocab_new(t, &gv) != 0)
    return 1;
  double t_vocab = now_s() - t0;
  printf("vocabulary: %s, %d tokens; index built in %.1f ms (once per loaded model)\n", vocab_path,
         cll_tok_n_vocab(t), t_vocab * 1e3);
  const char *formats[2] = {SCHEMA, "\"json\""};
  const char *names[2] = {"nested schema", "format \"json\""};
  for (int f = 0; f < 2; f++) {
    json_t *js = json_loads(formats[f], JSON_DECODE_ANY, NULL);
    cll_grammar *g = NULL;
    t0 = now_s();
    if (cll_grammar_compile(js, NULL, &g, &err) != 0) {
      fprintf(stderr, "bench/grammar: %s\n", err.msg);
      return 1;
    }
    double t_comp = now_s() - t0;
    json_decref(js);
    cll_tok_buf tb = {0};
    cll_tokenize_append(t, DOC, strlen(DOC), 0, &tb);
    cll_grammar_state *s = NULL;
    t0 = now_s();
    cll_grammar_state_new(g, gv, &s);
    double t_state = now_s() - t0;
    cll_grammar_state_free(s);
    t0 = now_s();
    cll_grammar_state_new(g, gv, &s);
    double t_state2 = now_s() - t0;
    uint64_t *bits = malloc(((size_t)cll_tok_n_vocab(t) + 63) / 64 * 8);
    double *in_str = malloc(tb.n * sizeof(double)), *structure = malloc(tb.n * sizeof(double));
    double *all = malloc(tb.n * sizeof(double));
    int n_str = 0, n_struct = 0, n_all = 0;
    int64_t allowed_sum = 0;
    /* A string is open when the text so far has an odd number of unescaped quotes. */
    bool open = false, esc = false;
    for (size_t i = 0; i < tb.n; i++) {
      double best = 1e9;
      int32_t na = 0;
      for (int r = 0; r < 5; r++) {
        double a = now_s();
        na = cll_grammar_mask(s, -1, bits);
        double d = now_s() - a;
        if (d < best)
          best = d;
      }
      allowed_sum += na;
      int32_t tok = tb.ids[i];
      if (!(bits[tok >> 6] >> (tok & 63) & 1)) {
        fprintf(stderr, "bench/grammar: the document's token %zu is not allowed\n", i);
        return 1;
      }
      all[n_all++] = best;
      if (open)
        in_str[n_str++] = best;
      else
        structure[n_struct++] = best;
      size_t len;
      const char *p = cll_tok_piece(t, tok, false, &len);
      for (size_t k = 0; k < len; k++) {
        if (esc)
          esc = false;
        else if (p[k] == '\\')
          esc = true;
        else if (p[k] == '"')
          open = !open;
      }
      if (!cll_grammar_accept_token(s, tok)) {
        fprintf(stderr, "bench/grammar: token %zu rejected\n", i);
        return 1;
      }
    }
    printf("%s: compiled in %.2f ms; first state %.2f ms (builds the pattern classes' tables, "
           "kept per vocabulary), next %.3f ms\n  %zu-token document, %.0f tokens allowed per "
           "step on average\n",
           names[f], t_comp * 1e3, t_state * 1e3, t_state2 * 1e3, tb.n,
           (double)allowed_sum / (double)tb.n);
    report("all", all, n_all);
    report("in string", in_str, n_str);
    report("structure", structure, n_struct);
    free(in_str);
    free(structure);
    free(all);
    free(bits);
    cll_tok_buf_free(&tb);
    cll_grammar_state_free(s);
    cll_grammar_free(g);
  }
  cll_grammar_vocab_free(gv);
  cll_tokenizer_free(t);
  cll_gguf_close(gg);
  return 0;
}

/* tg tokens decoded with (g != NULL) or without the grammar; tokens/s. */
static double decode_run(cll_ctx *c, const struct cll_model_info *I, cll_sampler *smp,
                         const cll_grammar *g, const cll_grammar_vocab *gv, int tg, int *n_values) {
  cll_err err = {0};
  cll_kv_seq_trim(c, 0, 0);
  cll_sampler_reset(smp);
  cll_grammar_state *s = NULL;
  if (g)
    cll_grammar_state_new(g, gv, &s);
  int32_t tok = 1, pos = 0, seq = 0;
  float *lg = malloc((size_t)I->n_vocab * sizeof(float));
  double t = now_s();
  for (int i = 0; i < tg; i++) {
    struct cll_batch b = {1, &tok, &pos, &seq, NULL};
    if (cll_forward(c, &b, &err) != 0) {
      fprintf(stderr, "bench/grammar: %s\n", err.msg);
      exit(1);
    }
    pos++;
    memcpy(lg, cll_ctx_logits(c, 0), (size_t)I->n_vocab * sizeof(float));
    if (s && cll_grammar_apply(s, lg, I->n_vocab, -1) == 0) {
      fprintf(stderr, "bench/grammar: the grammar allowed nothing\n");
      exit(1);
    }
    tok = cll_sampler_sample(smp, lg);
    cll_sampler_accept(smp, tok);
    if (s) {
      cll_grammar_accept_token(s, tok);
      if (cll_grammar_done(s) || cll_grammar_accepting(s)) {
        /* a value is complete: start the next one */
        cll_grammar_state_free(s);
        cll_grammar_state_new(g, gv, &s);
        (*n_values)++;
      }
    }
  }
  double tps = tg / (now_s() - t);
  free(lg);
  cll_grammar_state_free(s);
  return tps;
}

static int bench_decode(const char *path, int tg, int reps, int n_threads) {
  cll_err err = {0};
  cll_model *m = NULL;
  if (cll_model_load(path, &m, &err) != 0) {
    fprintf(stderr, "bench/grammar: %s\n", err.msg);
    return 1;
  }
  const struct cll_model_info *I = cll_model_info(m);
  cll_tokenizer *t = NULL;
  if (cll_tokenizer_new(cll_model_gguf(m), &t, &err) != 0) {
    fprintf(stderr, "bench/grammar: %s\n", err.msg);
    return 1;
  }
  cll_grammar_vocab *gv = NULL;
  cll_grammar_vocab_new(t, &gv);
  json_t *js = json_loads(SCHEMA, 0, NULL);
  cll_grammar *g = NULL;
  cll_grammar_compile(js, NULL, &g, &err);
  json_decref(js);
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = tg + 8;
  p.n_batch_max = 1;
  p.n_threads = n_threads;
  cll_ctx *c = NULL;
  if (cll_ctx_new(m, &p, &c, &err) != 0) {
    fprintf(stderr, "bench/grammar: %s\n", err.msg);
    return 1;
  }
  struct cll_sampler_params sp;
  cll_sampler_params_defaults(&sp);
  sp.seed = 42;
  sp.temperature = 1.0f;
  cll_sampler *smp = NULL;
  cll_sampler_new(&sp, (int32_t)I->n_vocab, &smp);
  int n_values = 0;
  decode_run(c, I, smp, NULL, gv, tg, &n_values); /* warm-up */
  double best_free = 0, best_schema = 0, sum_ratio = 0;
  for (int r = 0; r < reps; r++) {
    double a = decode_run(c, I, smp, NULL, gv, tg, &n_values);
    double b = decode_run(c, I, smp, g, gv, tg, &n_values);
    if (a > best_free)
      best_free = a;
    if (b > best_schema)
      best_schema = b;
    sum_ratio += b / a;
  }
  printf("decode: %s (%lld-token vocabulary), tg%d, %d threads, temperature 1, %d reps "
         "alternated\n",
         I->name, (long long)I->n_vocab, tg, n_threads, reps);
  printf("  without schema %8.1f tok/s (best)\n  with schema    %8.1f tok/s (best; %d complete "
         "values)\n  schema/plain   %8.3f (mean of per-rep ratios; cost %.1f%%)\n",
         best_free, best_schema, n_values, sum_ratio / reps, 100.0 * (1 - sum_ratio / reps));
  cll_sampler_free(smp);
  cll_ctx_free(c);
  cll_grammar_free(g);
  cll_grammar_vocab_free(gv);
  cll_tokenizer_free(t);
  cll_model_release(m);
  return 0;
}

int main(int argc, char **argv) {
  const char *shared = getenv("CLLAMA_SHARED");
  if (!shared || !*shared)
    shared = "../shared";
  char vocab[1024], model[1024];
  snprintf(vocab, sizeof(vocab), "%s/testdata/tokenizer/vocab-llama3.gguf", shared);
  snprintf(model, sizeof(model), "%s/models/tiny-llama-rand-q4_0.gguf", shared);
  int tg = 64, reps = 5, n_threads = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(a, "--vocab") == 0)
      snprintf(vocab, sizeof(vocab), "%s", v), i++;
    else if (strcmp(a, "--model") == 0)
      snprintf(model, sizeof(model), "%s", v), i++;
    else if (strcmp(a, "--tg") == 0)
      tg = atoi(v), i++;
    else if (strcmp(a, "--reps") == 0)
      reps = atoi(v), i++;
    else if (strcmp(a, "--threads") == 0)
      n_threads = atoi(v), i++;
    else {
      fprintf(stderr, "usage: bench/grammar [--vocab F.gguf] [--model F.gguf] [--tg N] "
                      "[--reps N] [--threads N]\n");
      return 2;
    }
  }
  if (tg < 1 || reps < 1)
    return 2;
  int rc = bench_masks(vocab);
  if (rc == 0)
    rc = bench_decode(model, tg, reps, n_threads);
  return rc;
}
