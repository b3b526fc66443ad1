/* bench/model.c — how fast the engine runs a model, and how close decode
 * comes to the machine's memory roofline, all measured in one run:
 *
 *   1. model load time (mmap + header checks; warm page cache),
 *   2. streaming-read bandwidth with the same number of threads (STREAM-like
 *      sum over a buffer much larger than the caches),
 *   3. decode tokens/s (one sequence, one token per step, KV from 1 token),
 *      and that as a share of the roofline = bandwidth / bytes of weights
 *      read per token (every matrix once; of token_embd only one row unless
 *      the output is tied to it),
 *   4. prompt processing: one batch of --pp tokens (default 512),
 *   5. with --batch N: what the server's scheduler runs at N concurrent
 *      streams: N sequences with 128-token prompts decoding together (one
 *      token each per step, logits for all), alone and with a prompt chunk
 *      in the same step as the scheduler takes it (n_batch_decoding
 *      tokens of a new request's 128-token prompt; a new request each
 *      time one is in); token-forwards/s, ms per step, and the mixed
 *      steps' speed as a share of pure prefill (4).
 *
 *   build/release/bench/model MODEL.gguf [--threads 2] [--tg 32] [--pp 512]
 *                             [--bw-mib 1024] [--kv f16|f32] [--reps 3] [--batch N]
 */
#include "cllama/config.h"
#include "cllama/engine.h"
#include "cllama/scheduler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- streaming read bandwidth */

typedef unsigned long long v2u64 __attribute__((vector_size(16)));

struct bw_job {
  const v2u64 *p;
  size_t n; /* vectors */
  unsigned long long sum;
  size_t pf; /* bytes ahead to prefetch, 0: none */
};

/* The kernels prefetch ahead of their streams, and with two threads a
 * plain read stays below what the bus gives a prefetching one (Zen 5:
 * 40-44 GB/s plain, 48-53 GB/s with each line fetched 8 KiB ahead), so
 * the roofline is the better of the two: no kernel should beat it. */
#define BW_PREFETCH 8192

static void *bw_read(void *arg) {
  struct bw_job *j = arg;
  v2u64 a0 = {0, 0}, a1 = a0, a2 = a0, a3 = a0;
  const v2u64 *p = j->p;
  for (size_t i = 0; i + 4 <= j->n; i += 4) {
    if (j->pf)
      __builtin_prefetch((const char *)(p + i) + j->pf);
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  v2u64 s = a0 + a1 + a2 + a3;
  j->sum = s[0] + s[1];
  return NULL;
}

static double bandwidth_gbs(size_t bytes, int n_threads, int reps) {
  v2u64 *buf = aligned_alloc(64, bytes);
  if (buf == NULL)
    return 0;
  memset(buf, 1, bytes);
  size_t n = bytes / sizeof(v2u64);
  double best = 0;
  struct bw_job jobs[64];
  pthread_t tid[64];
  if (n_threads > 64)
    n_threads = 64;
  /* Plain and prefetching in turn, at least 8 passes: on a shared
   * machine a pass of a few milliseconds is easily caught in a slow
   * moment, and the roofline is the best the bus gave. */
  const int passes = 2 * reps > 8 ? 2 * reps : 8;
  for (int r = 0; r < passes; r++) {
    double t0 = now_s();
    for (int i = 0; i < n_threads; i++) {
      size_t a = n * (size_t)i / (size_t)n_threads, b = n * (size_t)(i + 1) / (size_t)n_threads;
      jobs[i] = (struct bw_job){buf + a, b - a, 0, r % 2 ? BW_PREFETCH : 0};
      if (i > 0)
        pthread_create(&tid[i], NULL, bw_read, &jobs[i]);
    }
    bw_read(&jobs[0]);
    for (int i = 1; i < n_threads; i++)
      pthread_join(tid[i], NULL);
    double t = now_s() - t0;
    unsigned long long sink = 0;
    for (int i = 0; i < n_threads; i++)
      sink += jobs[i].sum;
    if (sink == 42)
      printf(" ");
    double gbs = (double)bytes / t / 1e9;
    if (gbs > best)
      best = gbs;
  }
  free(buf);
  return best;
}

/* Bytes of weights one decode step reads. */
static double bytes_per_token(const cll_model *m) {
  const cll_gguf *g = cll_model_gguf(m);
  const struct cll_model_info *I = cll_model_info(m);
  const cll_gguf_tensor *emb = cll_gguf_find_tensor(g, "token_embd.weight");
  bool tied = cll_gguf_find_tensor(g, "output.weight") == NULL;
  double b = (double)I->weight_bytes;
  if (!tied && emb != NULL)
    b -= (double)emb->n_bytes - (double)emb->n_bytes / (double)emb->ne[1];
  return b;
}

/* Multiply-adds of the weight matrices per token (every 2-D weight but
 * the token embedding, which is a lookup unless the output is tied to
 * it): twice this is the arithmetic of one token's matrix products, so
 * prefill tok/s x it is what the kernels compute (attention excluded), to
 * set against the instruction peaks bench/kernels --peak measures. */
static double macs_per_token(const cll_model *m) {
  const cll_gguf *g = cll_model_gguf(m);
  const bool tied = cll_gguf_find_tensor(g, "output.weight") == NULL;
  double n = 0;
  for (int64_t i = 0; i < cll_gguf_n_tensors(g); i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(g, i);
    const bool emb = t->name.len == 17 && memcmp(t->name.ptr, "token_embd.weight", 17) == 0;
    if (t->n_dims == 2 && t->ne[1] > 1 && (!emb || tied))
      n += (double)t->ne[0] * (double)t->ne[1];
  }
  return n;
}

/* 5. n sequences decoding together, as the scheduler runs them. */
enum { BATCH_PROMPT = 128, BATCH_STEPS = 16 };

/* The mixed steps are what the scheduler builds while n streams decode: a
 * chunk of n_batch_decoding prompt tokens (its default) of a new request
 * with a BATCH_PROMPT-token prompt, which starts over (a new request) once
 * its prompt is in. pp_tps: pure prefill speed measured before, for the
 * share. */
static int bench_batch(cll_model *m, int n, int n_threads, enum cll_kv_type kv, int reps,
                       double pp_tps, int pp) {
  const struct cll_model_info *I = cll_model_info(m);
  const int chunk = cll_sched_params_defaults().n_batch_decoding;
  struct cll_ctx_params p = cll_ctx_params_defaults();
  const int per_seq = BATCH_PROMPT + 2 * reps * BATCH_STEPS + 8;
  p.n_seq_max = n + 1;
  p.n_ctx = (int64_t)(n + 1) * per_seq + BATCH_PROMPT;
  p.n_batch_max = n + chunk > BATCH_PROMPT ? n + chunk : BATCH_PROMPT;
  p.n_threads = n_threads;
  p.kv_type = kv;
  cll_err err = {0};
  cll_ctx *c;
  if (cll_ctx_new(m, &p, &c, &err) != 0) {
    fprintf(stderr, "bench/model: %s\n", err.msg);
    return 1;
  }
  const int cap = p.n_batch_max;
  int32_t *tok = malloc((size_t)cap * sizeof(int32_t)),
          *pos = malloc((size_t)cap * sizeof(int32_t)),
          *seq = malloc((size_t)cap * sizeof(int32_t)),
          *len = calloc((size_t)n + 1, sizeof(int32_t));
  uint8_t *want = malloc((size_t)cap);
  int rc = 0;
  /* Prompts: one batch per sequence. */
  for (int s = 0; s < n && rc == 0; s++) {
    for (int i = 0; i < BATCH_PROMPT; i++)
      tok[i] = (int32_t)((s * 131 + i * 7919 + 13) % I->n_vocab), pos[i] = i, seq[i] = s;
    struct cll_batch b = {BATCH_PROMPT, tok, pos, seq, NULL};
    rc = cll_forward(c, &b, &err);
    len[s] = BATCH_PROMPT;
  }
  double best[2] = {0, 0};
  for (int r = 0; r < reps && rc == 0; r++)
    for (int mixed = 0; mixed < 2 && rc == 0; mixed++) {
      double t = now_s();
      int64_t done = 0;
      for (int k = 0; k < BATCH_STEPS && rc == 0; k++) {
        int nt = 0;
        for (int s = 0; s < n; s++, nt++) {
          tok[nt] = (int32_t)((s + k * 31) % I->n_vocab), pos[nt] = len[s]++, seq[nt] = s;
          want[nt] = 1;
        }
        const int nc = BATCH_PROMPT - len[n] < chunk ? BATCH_PROMPT - len[n] : chunk;
        for (int i = 0; mixed && i < nc; i++, nt++) {
          tok[nt] = (int32_t)((i * 7919 + k) % I->n_vocab), pos[nt] = len[n]++, seq[nt] = n;
          want[nt] = i == nc - 1;
        }
        struct cll_batch b = {nt, tok, pos, seq, want};
        rc = cll_forward(c, &b, &err);
        done += nt;
        if (len[n] == BATCH_PROMPT) { /* that prompt is in: the next request */
          cll_kv_seq_trim(c, n, 0);
          len[n] = 0;
        }
      }
      double tps = (double)done / (now_s() - t);
      if (tps > best[mixed])
        best[mixed] = tps;
    }
  if (rc != 0)
    fprintf(stderr, "bench/model: %s\n", err.msg);
  else
    printf("batch: %d sequences decoding: %.1f token-forwards/s, %.1f ms/step; with prompt "
           "chunks of %d-token prompts (%d a step, the scheduler's): %.1f token-forwards/s = "
           "%.0f%% of pp%d\n",
           n, best[0], 1e3 * n / best[0], BATCH_PROMPT, chunk, best[1],
           pp_tps > 0 ? 100.0 * best[1] / pp_tps : 0.0, pp);
  free(tok), free(pos), free(seq), free(len), free(want);
  cll_ctx_free(c);
  return rc != 0;
}

/* The kernels set up as `cllama` sets them up (CLLAMA_KERNELS, CLLAMA_REPACK,
 * BLIS's configuration), before any thread starts. */
static void kernels_init_from_env(void) {
  cll_kernels_config kc;
  cll_err err = {0};
  if (cll_config_kernels_from_env(&kc, &err) != 0 || cll_kernels_init(&kc, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    exit(2);
  }
}

int main(int argc, char **argv) {
  const char *path = NULL;
  int n_threads = 2, tg = 32, pp = 512, reps = 3, n_par = 0;
  long bw_mib = 1024;
  enum cll_kv_type kv = CLL_KV_F16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
    if (strcmp(a, "--threads") == 0)
      n_threads = atoi(v), i++;
    else if (strcmp(a, "--tg") == 0)
      tg = atoi(v), i++;
    else if (strcmp(a, "--pp") == 0)
      pp = atoi(v), i++;
    else if (strcmp(a, "--reps") == 0)
      reps = atoi(v), i++;
    else if (strcmp(a, "--bw-mib") == 0)
      bw_mib = atol(v), i++;
    else if (strcmp(a, "--batch") == 0)
      n_par = atoi(v), i++;
    else if (strcmp(a, "--kv") == 0)
      kv = strcmp(v, "f32") == 0 ? CLL_KV_F32 : CLL_KV_F16, i++;
    else if (a[0] != '-')
      path = a;
    else {
      fprintf(stderr, "bench/model: unknown option %s\n", a);
      return 2;
    }
  }
  if (path == NULL) {
    fprintf(stderr, "usage: bench/model MODEL.gguf [--threads N] [--tg N] [--pp N] "
                    "[--bw-mib N] [--kv f16|f32] [--reps N] [--batch N]\n");
    return 2;
  }
  kernels_init_from_env();
  cll_err err = {0};
  cll_model *m;
  /* Load twice: the first warms the page cache, the second is what a
   * server sees when it reloads a model it has seen before. */
  if (cll_model_load(path, &m, &err) != 0) {
    fprintf(stderr, "bench/model: %s\n", err.msg);
    return 1;
  }
  cll_model_release(m);
  double t0 = now_s();
  if (cll_model_load(path, &m, &err) != 0) {
    fprintf(stderr, "bench/model: %s\n", err.msg);
    return 1;
  }
  double t_load = now_s() - t0;
  const struct cll_model_info *I = cll_model_info(m);
  double bpt = bytes_per_token(m);
  printf("model: %s  arch %s  %.3f B params  %.1f MiB weights  %.1f MiB read per token\n", I->name,
         I->arch, (double)I->n_params / 1e9, (double)I->weight_bytes / 1048576.0, bpt / 1048576.0);
  printf("load: %.1f ms (warm page cache)\n", t_load * 1e3);
  printf("kernels: %s%s\n", cll_kernels_get()->isa,
         cll_kernels_uses_amx(cll_kernels_get()) ? " with AMX tiles from 16 tokens" : "");

  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = pp + tg + 8;
  p.n_batch_max = pp > 1 ? pp : 1;
  p.n_threads = n_threads;
  p.kv_type = kv;
  cll_ctx *c;
  if (cll_ctx_new(m, &p, &c, &err) != 0) {
    fprintf(stderr, "bench/model: %s\n", err.msg);
    return 1;
  }
  int32_t *tok = malloc((size_t)p.n_batch_max * sizeof(int32_t));
  int32_t *pos = malloc((size_t)p.n_batch_max * sizeof(int32_t));
  int32_t *seq = calloc((size_t)p.n_batch_max, sizeof(int32_t));
  for (int i = 0; i < p.n_batch_max; i++) {
    tok[i] = (int32_t)((i * 7919 + 13) % I->n_vocab);
    pos[i] = i;
  }

  /* Warm-up: two decode steps map every weight page. */
  for (int i = 0; i < 2; i++) {
    struct cll_batch b = {1, &tok[i], &pos[i], seq, NULL};
    cll_forward(c, &b, &err);
  }
  cll_kv_seq_trim(c, 0, 0);

  /* Decode: best of reps runs of tg steps. */
  double best_tg = 0;
  for (int r = 0; r < reps; r++) {
    cll_kv_seq_trim(c, 0, 0);
    struct cll_batch b0 = {1, tok, pos, seq, NULL};
    cll_forward(c, &b0, &err);
    double t = now_s();
    for (int i = 1; i <= tg; i++) {
      int32_t ps = i, t1 = tok[i % p.n_batch_max];
      struct cll_batch b = {1, &t1, &ps, seq, NULL};
      if (cll_forward(c, &b, &err) != 0) {
        fprintf(stderr, "bench/model: %s\n", err.msg);
        return 1;
      }
    }
    double tps = tg / (now_s() - t);
    if (tps > best_tg)
      best_tg = tps;
  }

  double bw = bandwidth_gbs((size_t)bw_mib << 20, n_threads, reps);
  double roof = bw * 1e9 / bpt;
  printf("bandwidth: %.2f GB/s (streaming read, %d threads, %ld MiB)\n", bw, n_threads, bw_mib);
  printf("roofline: %.2f tok/s (bandwidth / bytes per token)\n", roof);
  printf("decode: %.2f tok/s (tg%d, %d threads) = %.0f%% of roofline\n", best_tg, tg, n_threads,
         100.0 * best_tg / roof);

  double best_pp = 0;
  if (pp > 1) {
    for (int r = 0; r < (reps > 2 ? 2 : reps); r++) {
      cll_kv_seq_trim(c, 0, 0);
      struct cll_batch b = {pp, tok, pos, seq, NULL};
      double t = now_s();
      if (cll_forward(c, &b, &err) != 0) {
        fprintf(stderr, "bench/model: %s\n", err.msg);
        return 1;
      }
      double tps = pp / (now_s() - t);
      if (tps > best_pp)
        best_pp = tps;
    }
    printf("prefill: %.1f tok/s (pp%d, one batch, %d threads) = %.0f GOP/s in the weight "
           "products\n",
           best_pp, pp, n_threads, best_pp * 2.0 * macs_per_token(m) / 1e9);
  }
  free(tok);
  free(pos);
  free(seq);
  cll_ctx_free(c);
  int rc = n_par > 0 ? bench_batch(m, n_par, n_threads, kv, reps, best_pp, pp) : 0;
  cll_model_release(m);
  return rc;
}
