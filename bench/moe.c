/* bench/moe.c — decode speed of a mixture-of-experts model against a dense
 * model of the same active size, measured alternately in one run:
 *
 *   build/release/bench/mkmodel qwen3moe-bench Q4_0 /tmp/moe.gguf
 *   build/release/bench/mkmodel qwen3-bench-dense Q4_0 /tmp/dense.gguf
 *   build/release/bench/moe /tmp/moe.gguf /tmp/dense.gguf [--threads 2] [--tg 32] [--reps 3]
 *
 * qwen3moe-bench has 128 experts of which 8 run per token, qwen3-bench-dense
 * an FFN as wide as those 8 together; everything else is the same. If the
 * MoE read every expert, its decode would take about total/active times
 * longer; reading only the chosen experts, it runs near the dense model.
 * Prints tokens/s of each (best of --reps), the ratio, and the bytes of
 * weights each reads per token. */
#include "cllama/engine.h"
#include "cllama/gguf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Bytes of weights read per decoded token: every tensor, except that of
 * 3-D expert tensors only used/count of them, and of token_embd one row
 * (unless the output is tied to it). */
static double active_bytes(const cll_model *m) {
  const cll_gguf *g = cll_model_gguf(m);
  const struct cll_model_info *I = cll_model_info(m);
  char key[96];
  int64_t n_exp = 0, n_used = 0;
  snprintf(key, sizeof(key), "%s.expert_count", I->arch);
  cll_gguf_get_i64(g, key, &n_exp);
  snprintf(key, sizeof(key), "%s.expert_used_count", I->arch);
  cll_gguf_get_i64(g, key, &n_used);
  bool tied = cll_gguf_find_tensor(g, "output.weight") == NULL;
  double b = 0;
  for (int64_t i = 0; i < cll_gguf_n_tensors(g); i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(g, i);
    if (t->n_dims == 3 && n_exp > 0)
      b += (double)t->n_bytes * (double)n_used / (double)n_exp;
    else if (t->name.len == 17 && memcmp(t->name.ptr, "token_embd.weight", 17) == 0 && !tied)
      b += (double)t->n_bytes / (double)t->ne[1];
    else
      b += (double)t->n_bytes;
  }
  return b;
}

/* One decode run: an 8-token prompt, then tg single-token steps; tokens/s
 * of the steps. */
static double decode(cll_model *m, int threads, int tg) {
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = 256;
  p.n_batch_max = 16;
  p.n_threads = threads;
  cll_ctx *c;
  cll_err err = {0};
  if (cll_ctx_new(m, &p, &c, &err) != 0) {
    fprintf(stderr, "moe: %s\n", err.msg);
    exit(1);
  }
  int32_t tok[8], pos[8], seq[8] = {0};
  for (int i = 0; i < 8; i++) {
    tok[i] = 300 + 37 * i;
    pos[i] = i;
  }
  struct cll_batch b = {8, tok, pos, seq, NULL};
  if (cll_forward(c, &b, &err) != 0) {
    fprintf(stderr, "moe: %s\n", err.msg);
    exit(1);
  }
  double t0 = now_s();
  for (int i = 0; i < tg; i++) {
    int32_t t = 1000 + 13 * i, ps = 8 + i, sq = 0;
    struct cll_batch d = {1, &t, &ps, &sq, NULL};
    if (cll_forward(c, &d, &err) != 0) {
      fprintf(stderr, "moe: %s\n", err.msg);
      exit(1);
    }
  }
  double dt = now_s() - t0;
  cll_ctx_free(c);
  return tg / dt;
}

int main(int argc, char **argv) {
  int threads = 2, tg = 32, reps = 3;
  const char *paths[2] = {NULL, NULL};
  int np = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--tg") == 0 && i + 1 < argc)
      tg = atoi(argv[++i]);
    else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (np < 2)
      paths[np++] = argv[i];
  }
  if (np != 2 || tg < 1 || reps < 1) {
    fprintf(stderr, "usage: bench/moe MOE.gguf DENSE.gguf [--threads N] [--tg N] [--reps N]\n");
    return 2;
  }
  cll_model *m[2];
  for (int k = 0; k < 2; k++) {
    cll_err err = {0};
    if (cll_model_load(paths[k], &m[k], &err) != 0) {
      fprintf(stderr, "moe: %s: %s\n", paths[k], err.msg);
      return 1;
    }
  }
  double best[2] = {0, 0};
  decode(m[0], threads, 4); /* warm the page cache and the caches */
  decode(m[1], threads, 4);
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < 2; k++) {
      double tps = decode(m[k], threads, tg);
      if (tps > best[k])
        best[k] = tps;
    }
  for (int k = 0; k < 2; k++) {
    const struct cll_model_info *I = cll_model_info(m[k]);
    printf("%-10s %-40s weights %7.1f MiB, read per token %6.1f MiB, decode %7.2f tok/s\n",
           k == 0 ? "moe" : "dense", I->name, (double)I->weight_bytes / 1048576.0,
           active_bytes(m[k]) / 1048576.0, best[k]);
  }
  printf("moe / dense decode speed: %.3f (weights %.1fx, read per token %.2fx)\n",
         best[0] / best[1],
         (double)cll_model_info(m[0])->weight_bytes / (double)cll_model_info(m[1])->weight_bytes,
         active_bytes(m[0]) / active_bytes(m[1]));
  cll_model_release(m[0]);
  cll_model_release(m[1]);
  return 0;
}
