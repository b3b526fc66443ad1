/* bench/embed.c — embeddings per second of our encoder forward pass against
 * llama.cpp's llama-embedding on the same GGUF file, measured alternately
 * in one run (the machine is shared: only the ratio means something).
 *
 *   build/release/test/models/mkenc /tmp/eb bench      (minilm-bench, nomic-bench)
 *   build/release/cllama quantize /tmp/eb/minilm-bench.gguf /tmp/eb/minilm-f16.gguf F16
 *   build/release/bench/embed /tmp/eb/minilm-f16.gguf LLAMA_BIN_DIR [threads] [reps]
 *
 * For batches of 1, 16 and 64 inputs of about 100 tokens each: ours is the
 * time of cll_forward over the batch (sequences packed into steps of up to
 * 2048 tokens and 32 sequences, as the server's scheduler packs them; the
 * model is loaded once, outside the timing); llama.cpp's is the wall time
 * of llama-embedding over the same inputs (one batch: -b/-ub 8192) minus
 * that of a run over one short input (its load). Median of reps runs each,
 * ours and llama.cpp's alternating; printed as inputs per second and the
 * ratio ours/llama.cpp. */
#include "cllama/engine.h"
#include "cllama/gguf.h"
#include "cllama/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static const char *const words[] = {"the",      "quick",    "brown", "fox",    "jumps",
                                    "over",     "lazy",     "dog",   "search", "query",
                                    "document", "about",    "cats",  "and",    "dogs",
                                    "machine",  "learning", "river", "city",   "music"};

/* Input i: about 100 tokens of words (the made-up vocabulary has each of
 * these words as one token). */
static void make_input(int i, char *out, size_t cap) {
  size_t o = 0;
  unsigned x = 2166136261u ^ (unsigned)i;
  for (int w = 0; w < 96 && o + 16 < cap; w++) {
    x = x * 1664525u + 1013904223u;
    o += (size_t)snprintf(out + o, cap - o, "%s ", words[(x >> 16) % 20]);
  }
  out[o ? o - 1 : 0] = 0;
}

/* Our time for inputs 0..n-1: forwards of whole sequences, up to max_tok
 * tokens per forward. */
static double ours(cll_ctx *c, const cll_tokenizer *t, int n, int max_tok) {
  int32_t *tok = malloc((size_t)max_tok * sizeof(int32_t)), *pos = malloc((size_t)max_tok * 4),
          *seq = malloc((size_t)max_tok * 4);
  cll_tok_buf *ids = calloc((size_t)n, sizeof(*ids));
  char text[2048];
  for (int i = 0; i < n; i++) {
    make_input(i, text, sizeof(text));
    cll_tokenize_append(t, text, strlen(text), CLL_TOK_ADD_SPECIAL, &ids[i]);
  }
  double t0 = now_s();
  for (int i = 0; i < n;) {
    int32_t k = 0, s = 0;
    while (i < n && k + (int32_t)ids[i].n <= max_tok && s < 32) {
      for (size_t j = 0; j < ids[i].n; j++, k++) {
        tok[k] = ids[i].ids[j];
        pos[k] = (int32_t)j;
        seq[k] = s;
      }
      s++;
      i++;
    }
    struct cll_batch b = {k, tok, pos, seq, NULL};
    cll_err err = {0};
    if (cll_forward(c, &b, &err) != 0) {
      fprintf(stderr, "forward: %s\n", err.msg);
      exit(1);
    }
  }
  double dt = now_s() - t0;
  for (int i = 0; i < n; i++)
    cll_tok_buf_free(&ids[i]);
  free(ids);
  free(tok);
  free(pos);
  free(seq);
  return dt;
}

/* Wall time of one llama-embedding run over inputs 0..n-1 (n = 0: one
 * three-word input, the baseline), or -1. */
static double llama_run(const char *bin, const char *model, int n, int threads) {
  char file[] = "/tmp/cllama-bench-embed-XXXXXX";
  int fd = mkstemp(file);
  if (fd < 0)
    return -1;
  FILE *f = fdopen(fd, "w");
  char text[2048];
  if (n == 0)
    fprintf(f, "the quick fox\n");
  for (int i = 0; i < n; i++) {
    make_input(i, text, sizeof(text));
    fprintf(f, "%s\n", text);
  }
  fclose(f);
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "%s/llama-embedding -m %s -f %s -t %d -b 8192 -ub 8192 -c 8192 "
           "--embd-output-format json >/dev/null 2>&1",
           bin, model, file, threads);
  double t0 = now_s();
  int rc = system(cmd);
  double dt = now_s() - t0;
  unlink(file);
  return rc == 0 ? dt : -1;
}

/* llama.cpp's time for inputs 0..n-1: a run over them minus a run over one
 * short input (llama-embedding's own timing lines are lost: its logger
 * does not flush them before it exits), so loading the model, which both
 * runs do, cancels out. */
static double theirs(const char *bin, const char *model, int n, int threads) {
  double base = llama_run(bin, model, 0, threads), full = llama_run(bin, model, n, threads);
  return base < 0 || full < 0 ? -1 : full - base;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s MODEL.gguf LLAMA_BIN_DIR [threads=2] [reps=3]\n", argv[0]);
    return 2;
  }
  const char *model = argv[1], *bin = argv[2];
  int threads = argc > 3 ? atoi(argv[3]) : 2, reps = argc > 4 ? atoi(argv[4]) : 3;
  cll_err err = {0};
  cll_model *m;
  cll_gguf *g;
  cll_tokenizer *t;
  if (cll_model_load(model, &m, &err) || cll_gguf_open(model, &g, &err) ||
      cll_tokenizer_new(g, &t, &err)) {
    fprintf(stderr, "%s: %s\n", model, err.msg);
    return 1;
  }
  const int max_tok = 2048;
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = max_tok;
  p.n_seq_max = 32;
  p.n_batch_max = max_tok;
  p.n_threads = threads;
  p.embeddings = true;
  cll_ctx *c;
  if (cll_ctx_new(m, &p, &c, &err)) {
    fprintf(stderr, "ctx: %s\n", err.msg);
    return 1;
  }
  const struct cll_model_info *I = cll_model_info(m);
  printf("model %s (%s, %lld dims, %lld layers), %d threads, median of %d\n", model, I->arch,
         (long long)I->n_embd, (long long)I->n_layer, threads, reps);
  printf("%6s %14s %14s %8s\n", "inputs", "ours inp/s", "llama inp/s", "ratio");
  const int sizes[] = {1, 16, 64};
  ours(c, t, 4, max_tok); /* warm-up */
  for (int si = 0; si < 3; si++) {
    int n = sizes[si];
    double a[16], b[16];
    for (int r = 0; r < reps && r < 16; r++) { /* alternating */
      a[r] = ours(c, t, n, max_tok);
      b[r] = theirs(bin, model, n, threads);
    }
    qsort(a, (size_t)reps, sizeof(double), cmp_d);
    qsort(b, (size_t)reps, sizeof(double), cmp_d);
    double ta = a[reps / 2], tb = b[reps / 2];
    printf("%6d %14.1f %14.1f %8.2f\n", n, n / ta, tb > 0 ? n / tb : 0.0, tb > 0 ? tb / ta : 0.0);
  }
  cll_ctx_free(c);
  cll_tokenizer_free(t);
  cll_gguf_close(g);
  cll_model_release(m);
  return 0;
}
