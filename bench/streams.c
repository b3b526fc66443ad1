/* bench/streams.c — the engine's decode step with many streams, without a
 * server: what one scheduler step costs when --seqs sequences each decode
 * one token per step (and, with --pp-chunk, another sequence also brings a
 * chunk of prompt, as the scheduler mixes them: a prompt of --prompt
 * tokens, started again when it is complete).
 *
 * Each sequence first gets a --prompt token prompt (one batch per sequence),
 * then --steps decode steps run with one token of every sequence per batch;
 * their cells interleave in the KV pool exactly as a server's streams do.
 * Prints the time per step and decode tokens/s (best of --reps runs; every
 * run starts from empty sequences).
 *
 *   build/release/bench/streams MODEL.gguf [--threads 2] [--seqs 16]
 *       [--prompt 128] [--steps 32] [--pp-chunk 0] [--reps 2]
 */
#include "cllama/engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int n_threads = 2, n_seq = 16, prompt = 128, steps = 32, chunk = 0, reps = 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
    if (strcmp(a, "--threads") == 0)
      n_threads = atoi(v), i++;
    else if (strcmp(a, "--seqs") == 0)
      n_seq = atoi(v), i++;
    else if (strcmp(a, "--prompt") == 0)
      prompt = atoi(v), i++;
    else if (strcmp(a, "--steps") == 0)
      steps = atoi(v), i++;
    else if (strcmp(a, "--pp-chunk") == 0)
      chunk = atoi(v), i++;
    else if (strcmp(a, "--reps") == 0)
      reps = atoi(v), i++;
    else if (a[0] != '-')
      path = a;
    else {
      fprintf(stderr, "bench/streams: unknown option %s\n", a);
      return 2;
    }
  }
  if (path == NULL || n_seq < 1 || n_seq > 63 || prompt < 1 || steps < 1 || chunk < 0 ||
      chunk > prompt || reps < 1) {
    fprintf(stderr, "usage: bench/streams MODEL.gguf [--threads N] [--seqs N (1..63)] "
                    "[--prompt N] [--steps N] [--pp-chunk N] [--reps N]\n");
    return 2;
  }
  cll_err err = {0};
  cll_model *m;
  if (cll_model_load(path, &m, &err) != 0) {
    fprintf(stderr, "bench/streams: %s\n", err.msg);
    return 1;
  }
  const int64_t n_vocab = cll_model_info(m)->n_vocab;
  struct cll_ctx_params p = cll_ctx_params_defaults();
  /* The last sequence is the one that gets prompt chunks during decode. */
  int64_t per_seq = prompt + steps + 1;
  p.n_ctx = (n_seq + 1) * per_seq + chunk;
  p.n_seq_max = n_seq + 1;
  p.n_batch_max = (prompt > n_seq + chunk ? prompt : n_seq + chunk);
  p.n_threads = n_threads;
  cll_ctx *c;
  if (cll_ctx_new(m, &p, &c, &err) != 0) {
    fprintf(stderr, "bench/streams: %s\n", err.msg);
    return 1;
  }
  size_t B = (size_t)p.n_batch_max;
  int32_t *tok = malloc(B * sizeof(int32_t)), *pos = malloc(B * sizeof(int32_t));
  int32_t *seq = malloc(B * sizeof(int32_t));
  uint8_t *want = malloc(B);
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    for (int s = 0; s <= n_seq; s++)
      cll_kv_seq_trim(c, s, 0);
    for (int s = 0; s < n_seq; s++) {
      for (int i = 0; i < prompt; i++) {
        tok[i] = (int32_t)((i * 7919 + s * 131 + 13) % n_vocab);
        pos[i] = i;
        seq[i] = s;
      }
      struct cll_batch b = {prompt, tok, pos, seq, NULL};
      if (cll_forward(c, &b, &err) != 0) {
        fprintf(stderr, "bench/streams: %s\n", err.msg);
        return 1;
      }
    }
    double t0 = now_s();
    for (int k = 0; k < steps; k++) {
      int n = 0;
      for (int s = 0; s < n_seq; s++, n++) {
        tok[n] = (int32_t)((k * 31 + s * 17 + 5) % n_vocab);
        pos[n] = prompt + k;
        seq[n] = s;
        want[n] = 1;
      }
      int32_t p0 = cll_kv_seq_len(c, n_seq);
      if (p0 + chunk > prompt) {
        cll_kv_seq_trim(c, n_seq, 0);
        p0 = 0;
      }
      for (int i = 0; i < chunk; i++, n++) {
        tok[n] = (int32_t)((i * 7919 + k) % n_vocab);
        pos[n] = p0 + i;
        seq[n] = n_seq;
        want[n] = i == chunk - 1;
      }
      struct cll_batch b = {n, tok, pos, seq, want};
      if (cll_forward(c, &b, &err) != 0) {
        fprintf(stderr, "bench/streams: %s\n", err.msg);
        return 1;
      }
    }
    double dt = (now_s() - t0) / steps;
    if (dt < best)
      best = dt;
  }
  printf("streams: %d seqs, prompt %d, %d steps, +%d prompt tokens per step, %d threads: "
         "%.1f ms per step, %.1f decode tok/s\n",
         n_seq, prompt, steps, chunk, n_threads, best * 1e3, n_seq / best);
  free(tok);
  free(pos);
  free(seq);
  free(want);
  cll_ctx_free(c);
  cll_model_release(m);
  return 0;
}
