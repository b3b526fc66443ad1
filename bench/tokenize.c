/* tokenize.c — tokenizer throughput: encodes a text file with a GGUF
 * vocabulary (no BOS, no special-token parsing), prints MB/s, and compares
 * the ids with an expected-ids file (one id per line) when given.
 *
 *   build/release/bench/tokenize [VOCAB.gguf [TEXT [IDS]]] [--runs N]
 * Defaults: $CLLAMA_SHARED (../shared)/testdata/tokenizer/vocab-llama3.gguf,
 * .../corpus/war-and-peace.txt and .../corpus/war-and-peace.vocab-llama3.ids.
 * Reference: llama.cpp does about 6.5-7 MB/s on one core (testdata README). */
#include "cllama/gguf.h"
#include "cllama/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = buf ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  if (buf)
    buf[got] = 0;
  *len = got;
  return buf;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const char *sh = getenv("CLLAMA_SHARED");
  if (sh == NULL || *sh == 0)
    sh = "../shared";
  char vp[1024], tp[1024], ip[1024];
  snprintf(vp, sizeof(vp), "%s/testdata/tokenizer/vocab-llama3.gguf", sh);
  snprintf(tp, sizeof(tp), "%s/testdata/corpus/war-and-peace.txt", sh);
  snprintf(ip, sizeof(ip), "%s/testdata/corpus/war-and-peace.vocab-llama3.ids", sh);
  const char *paths[3] = {vp, tp, ip};
  int np = 0, runs = 3;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (np < 3)
      paths[np++] = argv[i];
  }
  if (np == 2)
    paths[2] = NULL; /* a custom text has no expected ids */

  cll_err err = {0};
  cll_gguf *g;
  cll_tokenizer *t;
  double t0 = now_s();
  if (cll_gguf_open(paths[0], &g, &err) != 0 || cll_tokenizer_new(g, &t, &err) != 0) {
    fprintf(stderr, "bench/tokenize: %s: %s\n", paths[0], err.msg);
    return 1;
  }
  double t_load = now_s() - t0;
  size_t len;
  char *text = slurp(paths[1], &len);
  if (text == NULL) {
    fprintf(stderr, "bench/tokenize: cannot read %s\n", paths[1]);
    return 1;
  }
  cll_tok_buf ids = {0};
  double best = 1e30;
  for (int r = 0; r < runs; r++) {
    ids.n = 0;
    double a = now_s();
    if (cll_tokenize_append(t, text, len, 0, &ids) != 0) {
      fprintf(stderr, "bench/tokenize: encode failed\n");
      return 1;
    }
    double el = now_s() - a;
    if (el < best)
      best = el;
  }
  printf("vocab %s (%s, pre \"%s\"), load %.3f s\n", paths[0],
         cll_tok_kind(t) == CLL_TOK_SPM ? "spm" : "bpe", cll_tok_pre(t), t_load);
  printf("encoded %zu bytes -> %zu tokens: best of %d runs %.3f s, %.2f MB/s\n", len, ids.n, runs,
         best, (double)len / best / 1e6);
  int status = 0;
  if (paths[2] != NULL) {
    size_t ilen;
    char *exp = slurp(paths[2], &ilen);
    if (exp == NULL) {
      fprintf(stderr, "bench/tokenize: cannot read %s\n", paths[2]);
      return 1;
    }
    size_t n = 0, bad = 0, first = 0;
    char *q = exp;
    while (*q) {
      char *e;
      long v = strtol(q, &e, 10);
      if (e == q)
        break;
      if (n >= ids.n || ids.ids[n] != v) {
        if (bad++ == 0)
          first = n;
      }
      n++;
      q = e;
    }
    if (n != ids.n || bad) {
      printf("ids: MISMATCH (%zu expected, %zu got, %zu differ, first at %zu)\n", n, ids.n, bad,
             first);
      status = 1;
    } else {
      printf("ids: all %zu equal to %s\n", n, paths[2]);
    }
    free(exp);
  }
  cll_tok_buf_free(&ids);
  free(text);
  cll_tokenizer_free(t);
  cll_gguf_close(g);
  return status;
}
