/* bench/sampler.c — time per sampled token for a Llama-3-sized vocabulary.
 * Usage: build/release/bench/sampler [n_vocab] [iterations] */
#include "cllama/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A peaked, model-like distribution: a Zipf-ish head over noise. */
static void fill(float *l, int n, unsigned seed) {
  unsigned x = seed * 2654435761u + 7;
  for (int i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    float noise = (float)((x >> 9) & 0xffff) / 65536.0f;
    l[i] = 2.0f * noise - 4.0f;
  }
  for (int r = 1; r <= 64; r++) {
    x = x * 1103515245u + 12345u;
    l[(x >> 8) % (unsigned)n] = 12.0f - 3.0f * logf((float)r);
  }
}

static void run(const char *name, struct cll_sampler_params p, int V, int iters, float *l) {
  cll_sampler *s;
  if (cll_sampler_new(&p, V, &s) != 0) {
    fprintf(stderr, "cll_sampler_new failed\n");
    exit(1);
  }
  double t = 0;
  long sum = 0;
  for (int i = 0; i < iters; i++) {
    fill(l, V, (unsigned)i);
    double t0 = now_s();
    int32_t tok = cll_sampler_sample(s, l);
    t += now_s() - t0;
    cll_sampler_accept(s, tok);
    sum += tok;
  }
  printf("%-34s %8.1f us/token  (checksum %ld)\n", name, t / iters * 1e6, sum);
  cll_sampler_free(s);
}

int main(int argc, char **argv) {
  int V = argc > 1 ? atoi(argv[1]) : 128256;
  int iters = argc > 2 ? atoi(argv[2]) : 200;
  float *l = malloc((size_t)V * sizeof *l);
  if (l == NULL)
    return 1;
  printf("n_vocab %d, %d tokens each\n", V, iters);
  struct cll_sampler_params p;
  cll_sampler_params_defaults(&p);
  p.seed = 1;
  run("defaults (top_k 40, top_p 0.9)", p, V, iters, l);
  struct cll_sampler_params g = p;
  g.temperature = 0;
  run("greedy", g, V, iters, l);
  struct cll_sampler_params np = p;
  np.top_k = 0;
  run("top_k off, top_p 0.9", np, V, iters, l);
  np.top_p = 1.0f;
  np.min_p = 0.05f;
  run("top_k off, top_p off, min_p 0.05", np, V, iters, l);
  struct cll_sampler_params pen = p;
  pen.repeat_penalty = 1.1f;
  pen.presence_penalty = 0.5f;
  run("defaults + penalties", pen, V, iters, l);
  free(l);
  return 0;
}
