/* bench/kernels.c — kernel throughput, measured against this machine's
 * memory bandwidth in the same run.
 *
 *  1. Streaming-read bandwidth, 1 and 2 threads (the decode roofline).
 *  2. vec_dot over a weight matrix larger than the caches (rows of 2048,
 *     one token, as in decode): GB/s of weights read, per format and ISA
 *     table, 1 and 2 threads, and the share of the measured bandwidth.
 *  3. cll_matmul on a 5632 x 2048 matrix (TinyLlama's FFN shape) for
 *     n_tok = 1, 4, 16, 64, 512: GFLOP/s of the fused dot path and of the
 *     BLIS path, 1 thread, activation quantization included; the crossover
 *     between the two is what matmul.c's GEMM_MIN_TOK is set from; and,
 *     where the table repacks the type at load (avx512: Q4_0), the packed
 *     path.
 *  4. (--attn) decode attention's two F16 products as cll_matmul runs them:
 *     keys (rows of 64, a KV head's slice of the cache) times the query
 *     rows of a GQA group, and V^T (64 rows strided like the cache) times
 *     the probabilities, for 4, 8 and 16 query rows.
 *
 *   build/release/bench/kernels            1-3 (about a minute)
 *   build/release/bench/kernels --quick    smaller buffers, fewer shapes
 *   build/release/bench/kernels --attn     4 only
 *   build/release/bench/kernels --peak     the cores' compute peaks (int8
 *                                          dot, fp32 FMA, bf16 dot), to read
 *                                          prefill figures against
 *
 * The machine may be shared: compare ratios within one run. */
#include "cllama/config.h"
#include "cllama/kernels.h"
#include "kernels/matmul_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: single-threaded timings use it, so time
 * slices lost to other processes on a shared machine do not count. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 88172645463325252ULL;
static float frand(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (float)((rng_state >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;
}

/* ---------------------------------------------------------------- threads */

typedef struct job {
  void (*fn)(struct job *);
  int id, n;      /* this thread's index, thread count */
  const void *in; /* shared read-only input */
  size_t bytes;
  double sum; /* keeps the compiler from dropping the work */
  void *ctx;
} job;

static void *job_main(void *p) {
  job *j = p;
  j->fn(j);
  return NULL;
}

/* Runs fn on n threads (n - 1 new, one the caller); returns seconds. */
static double run_threads(int n, void (*fn)(job *), const void *in, size_t bytes, void *ctx) {
  job jobs[8];
  pthread_t th[8];
  for (int i = 0; i < n; i++)
    jobs[i] = (job){fn, i, n, in, bytes, 0.0, ctx};
  /* One thread: its CPU time (see cpu_s); several: wall time. */
  const double t0 = n == 1 ? cpu_s() : now_s();
  for (int i = 1; i < n; i++)
    pthread_create(&th[i], NULL, job_main, &jobs[i]);
  fn(&jobs[0]);
  for (int i = 1; i < n; i++)
    pthread_join(th[i], NULL);
  return (n == 1 ? cpu_s() : now_s()) - t0;
}

/* ---------------------------------------------------------------- bandwidth */

static void read_slice(job *j) {
  const uint64_t *p = j->in;
  const size_t words = j->bytes / 8, per = words / (size_t)j->n;
  const uint64_t *s = p + per * (size_t)j->id;
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  const size_t pf = j->ctx != NULL ? 8192 : 0; /* bytes ahead, as bench/model */
  for (size_t i = 0; i + 4 <= per; i += 4) {
    if (pf && i % 8 == 0)
      __builtin_prefetch((const char *)(s + i) + pf);
    a0 += s[i];
    a1 += s[i + 1];
    a2 += s[i + 2];
    a3 += s[i + 3];
  }
  j->sum = (double)(a0 ^ a1 ^ a2 ^ a3);
}

static double bandwidth_gbs(const void *buf, size_t bytes, int threads) {
  double best = 1e30;
  /* Plain and prefetching reads in turn (see bench/model's BW_PREFETCH). */
  for (int rep = 0; rep < 4; rep++) {
    const double dt = run_threads(threads, read_slice, buf, bytes, rep % 2 ? (void *)buf : NULL);
    if (dt < best)
      best = dt;
  }
  return (double)bytes / best * 1e-9;
}

/* ---------------------------------------------------------------- instruction peaks
 *
 * (--peak) What the cores can compute at most: 24 independent chains of
 * one instruction, register operands only, so neither latency nor memory
 * limits it. Prefill is compute-bound: bench/model prints its GOP/s in
 * the weight products, to set against these. On x86 only; each measured
 * where the CPU has it. */

#if defined(__x86_64__)
#define PEAK_CHAINS 24
#define PEAK_ITERS 4000000L

/* PEAK_CHAINS instructions a step over nch accumulators (nch divides
 * PEAK_CHAINS; fewer where only 16 registers exist, so none spills). */
#define PEAK_BODY(T, ZERO, OP, FIRST, nch)                                                         \
  T acc[nch];                                                                                      \
  for (int k = 0; k < (nch); k++)                                                                  \
    acc[k] = ZERO;                                                                                 \
  for (long i = 0; i < PEAK_ITERS; i++) {                                                          \
    _Pragma("GCC unroll 24") for (int r = 0; r < PEAK_CHAINS / (nch); r++)                         \
        _Pragma("GCC unroll 24") for (int k = 0; k < (nch); k++) acc[k] = OP;                      \
  }                                                                                                \
  double sink = 0;                                                                                 \
  for (int k = 0; k < (nch); k++)                                                                  \
    sink += (double)FIRST(acc[k]);                                                                 \
  j->sum = sink;

#include <immintrin.h>

/* j->ctx: which instruction; ops per instruction are counted by the caller. */
/* One chain step in asm: accumulator a (and temporary t) by name. */
#define DP_STEP(a) "vpdpbusd %[x], %[w], %[" #a "]\n\t"
#define MADD_STEP(t, a)                                                                            \
  "vpmaddubsw %[x], %[w], %[" #t "]\n\t"                                                           \
  "vpmaddwd %[one], %[" #t "], %[" #t "]\n\t"                                                      \
  "vpaddd %[" #t "], %[" #a "], %[" #a "]\n\t"

/* GCC 12 copies every accumulator of _mm512_dpbusd_epi32 to another
 * register and spills it in a loop like PEAK_BODY's (a third of the rate
 * measured); the kernels' loops are not affected (their disassembly has
 * no such copies), so here the chains are written in asm: 12 of them
 * (asm takes at most 30 operands), each twice per iteration, so again
 * PEAK_CHAINS instructions a step. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void peak_vnni512(job *j) {
  const __m512i w = _mm512_set1_epi8(3), x = _mm512_set1_epi8(5), z = _mm512_setzero_si512();
  __m512i a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, a8 = z, a9 = z, a10 = z,
          a11 = z;
  for (long i = 0; i < PEAK_ITERS; i++)
    __asm__ volatile(".rept 2\n\t" DP_STEP(a0) DP_STEP(a1) DP_STEP(a2) DP_STEP(a3) DP_STEP(a4)
                         DP_STEP(a5) DP_STEP(a6) DP_STEP(a7) DP_STEP(a8) DP_STEP(a9) DP_STEP(a10)
                             DP_STEP(a11) ".endr\n\t"
                     : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4),
                       [a5] "+v"(a5), [a6] "+v"(a6), [a7] "+v"(a7), [a8] "+v"(a8), [a9] "+v"(a9),
                       [a10] "+v"(a10), [a11] "+v"(a11)
                     : [w] "v"(w), [x] "v"(x));
  j->sum =
      (double)(_mm512_cvtsi512_si32(a0) + _mm512_cvtsi512_si32(a1) + _mm512_cvtsi512_si32(a2) +
               _mm512_cvtsi512_si32(a3) + _mm512_cvtsi512_si32(a4) + _mm512_cvtsi512_si32(a5) +
               _mm512_cvtsi512_si32(a6) + _mm512_cvtsi512_si32(a7) + _mm512_cvtsi512_si32(a8) +
               _mm512_cvtsi512_si32(a9) + _mm512_cvtsi512_si32(a10) + _mm512_cvtsi512_si32(a11));
}
/* The instruction mix of the int8 tiles (avx512_packed.c pq_tile2): per
 * block and token, 16 vpdpbusd and, for the two panels' per-block scales,
 * 2 vcvtdq2ps, 2 vmulps and 2 vfmadd231ps. Ops counted: the vpdpbusd
 * only, so the row reads as what a tile can reach at most when the float
 * multiplies share the vpdpbusd's ports (Zen 5: they do, the conversions
 * do not). asm's 30 operands: the float steps reuse two temporaries and
 * square their own values (no denormals, no overflow in PEAK_ITERS). */
#define MIX_STEP(a)                                                                                \
  "vcvtdq2ps %[" #a "], %[c]\n\t"                                                                  \
  "vmulps %[c], %[c], %[m]\n\t"                                                                    \
  "vfmadd231ps %[c], %[m], %[f]\n\t"
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void peak_mix512(job *j) {
  const __m512i w = _mm512_set1_epi8(3), x = _mm512_set1_epi8(5), z = _mm512_setzero_si512();
  __m512i a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, a8 = z, a9 = z, a10 = z,
          a11 = z;
  __m512 f = _mm512_setzero_ps(), c, m;
  for (long i = 0; i < PEAK_ITERS; i++)
    __asm__ volatile(".rept 2\n\t" DP_STEP(a0) DP_STEP(a1) DP_STEP(a2) DP_STEP(a3) DP_STEP(a4)
                         DP_STEP(a5) DP_STEP(a6) DP_STEP(a7) DP_STEP(a8) DP_STEP(a9) DP_STEP(a10)
                             DP_STEP(a11) ".endr\n\t" MIX_STEP(a0) MIX_STEP(a4) MIX_STEP(a8)
                     : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4),
                       [a5] "+v"(a5), [a6] "+v"(a6), [a7] "+v"(a7), [a8] "+v"(a8), [a9] "+v"(a9),
                       [a10] "+v"(a10), [a11] "+v"(a11), [f] "+v"(f), [c] "=&v"(c), [m] "=&v"(m)
                     : [w] "v"(w), [x] "v"(x));
  j->sum = (double)_mm512_cvtsi512_si32(a0) + (double)_mm512_cvtss_f32(f);
}
__attribute__((target("avx512f"))) static void peak_fma512(job *j) {
  const __m512 w = _mm512_set1_ps(0.999f), x = _mm512_set1_ps(1e-3f);
  PEAK_BODY(__m512, _mm512_setzero_ps(), _mm512_fmadd_ps(acc[k], w, x), _mm512_cvtss_f32, 24)
}
__attribute__((target("avx512f,avx512bf16"))) static void peak_bf16(job *j) {
  const __m512bh w = (__m512bh)_mm512_set1_epi16(0x3f80), x = (__m512bh)_mm512_set1_epi16(0x3a83);
  PEAK_BODY(__m512, _mm512_setzero_ps(), _mm512_dpbf16_ps(acc[k], w, x), _mm512_cvtss_f32, 24)
}
__attribute__((target("avx2,fma"))) static void peak_fma256(job *j) {
  const __m256 w = _mm256_set1_ps(0.999f), x = _mm256_set1_ps(1e-3f);
  PEAK_BODY(__m256, _mm256_setzero_ps(), _mm256_fmadd_ps(acc[k], w, x), _mm256_cvtss_f32, 12)
}
/* The plain-AVX2 int8 dot (vpmaddubsw, vpmaddwd, vpaddd for 32
 * multiply-adds), in asm too: as intrinsics on constant inputs the
 * compiler hoists the products out of the loop. 6 chains (16 registers),
 * 4 times an iteration: PEAK_CHAINS dot steps. */
__attribute__((target("avx2"))) static void peak_maddubs256(job *j) {
  const __m256i w = _mm256_set1_epi8(3), x = _mm256_set1_epi8(5), one = _mm256_set1_epi16(1),
                z = _mm256_setzero_si256();
  __m256i a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, t0, t1, t2, t3, t4, t5;
  for (long i = 0; i < PEAK_ITERS; i++)
    __asm__ volatile(".rept 4\n\t" MADD_STEP(t0, a0) MADD_STEP(t1, a1) MADD_STEP(t2, a2)
                         MADD_STEP(t3, a3) MADD_STEP(t4, a4) MADD_STEP(t5, a5) ".endr\n\t"
                     : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3), [a4] "+v"(a4),
                       [a5] "+v"(a5), [t0] "=&v"(t0), [t1] "=&v"(t1), [t2] "=&v"(t2),
                       [t3] "=&v"(t3), [t4] "=&v"(t4), [t5] "=&v"(t5)
                     : [w] "v"(w), [x] "v"(x), [one] "v"(one));
  j->sum = (double)(_mm256_cvtsi256_si32(a0) + _mm256_cvtsi256_si32(a1) + _mm256_cvtsi256_si32(a2) +
                    _mm256_cvtsi256_si32(a3) + _mm256_cvtsi256_si32(a4) + _mm256_cvtsi256_si32(a5));
}

static int cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit) {
  unsigned r[4] = {0, 0, 0, 0};
  __asm__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
  return (r[reg] >> bit) & 1;
}

static int bench_peak(void) {
  __builtin_cpu_init();
  const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  const struct {
    const char *name;
    void (*fn)(job *);
    double ops; /* per chain step (one instruction, or AVX2's three): 2 x multiply-adds */
    int have;
  } peaks[] = {
      {"int8 vpdpbusd zmm (VNNI)", peak_vnni512, 2.0 * 64, avx512 && cpuid_bit(7, 0, 2, 11)},
      {"int8 tile mix: 16 vpdpbusd + 2x cvt/mul/fma", peak_mix512, 2.0 * 64,
       avx512 && cpuid_bit(7, 0, 2, 11)},
      {"int8 vpmaddubsw+vpmaddwd ymm (AVX2)", peak_maddubs256, 2.0 * 32,
       __builtin_cpu_supports("avx2")},
      {"fp32 FMA zmm", peak_fma512, 2.0 * 16, avx512},
      {"fp32 FMA ymm", peak_fma256, 2.0 * 8,
       __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")},
      {"bf16 vdpbf16ps zmm", peak_bf16, 2.0 * 32, avx512 && cpuid_bit(7, 1, 0, 5)},
  };
  printf("instruction peaks, G ops/s (1 multiply-add = 2 ops; 24 independent chains):\n");
  printf("%-44s %10s %10s\n", "", "1 thread", "2 threads");
  for (size_t i = 0; i < sizeof peaks / sizeof peaks[0]; i++) {
    if (!peaks[i].have) {
      printf("%-44s %10s\n", peaks[i].name, "(absent)");
      continue;
    }
    double g[2];
    for (int th = 1; th <= 2; th++) {
      double best = 1e30;
      for (int rep = 0; rep < 3; rep++) {
        const double dt = run_threads(th, peaks[i].fn, NULL, 0, NULL);
        if (dt < best)
          best = dt;
      }
      g[th - 1] = (double)th * PEAK_ITERS * PEAK_CHAINS * peaks[i].ops / best / 1e9;
    }
    printf("%-44s %10.0f %10.0f\n", peaks[i].name, g[0], g[1]);
  }
  return 0;
}
#else
static int bench_peak(void) {
  printf("instruction peaks: measured on x86 only\n");
  return 0;
}
#endif

/* ---------------------------------------------------------------- vec_dot over rows */

typedef struct dot_ctx {
  const cll_kernels *k;
  uint32_t type;
  int64_t n_in, rows;
  size_t row_bytes;
  const void *act;
} dot_ctx;

static void dot_slice(job *j) {
  const dot_ctx *c = j->ctx;
  const int64_t per = c->rows / j->n, r0 = per * j->id, r1 = r0 + per;
  const char *w = (const char *)j->in + (size_t)r0 * c->row_bytes;
  float s = 0.0f, out;
  for (int64_t r = r0; r < r1; r++, w += c->row_bytes) {
    c->k->vec_dot[c->type](c->n_in, w, c->act, &out);
    s += out;
  }
  j->sum = s;
}

/* Decode as the engine runs it: cll_matmul, one token, each thread on its
 * own run of whole panels (as the engine splits rows), the packed form
 * where the table repacks the type at load. */
typedef struct mm_ctx {
  const cll_kernels *k;
  uint32_t type;
  int64_t n_in, rows;
  size_t row_bytes;
  const void *wp, *xq;
  size_t xq_stride;
  const float *x;
  float *y;
} mm_ctx;

static void matmul_slice(job *j) {
  const mm_ctx *c = j->ctx;
  const int64_t panels = c->rows / CLL_PACK_ROWS;
  cll_matmul_args a = {.wtype = c->type,
                       .w = j->in,
                       .w_stride = c->row_bytes,
                       .wp = c->wp,
                       .wp_rows = c->wp ? c->rows : 0,
                       .n_in = c->n_in,
                       .r0 = panels * j->id / j->n * CLL_PACK_ROWS,
                       .r1 = panels * (j->id + 1) / j->n * CLL_PACK_ROWS,
                       .x = c->x,
                       .x_stride = c->n_in,
                       .xq = c->xq,
                       .xq_stride = c->xq_stride,
                       .n_tok = 1,
                       .y = c->y,
                       .y_stride = c->rows};
  cll_matmul(c->k, &a);
  j->sum = c->y[a.r0];
}

/* Fills rows of type t: 64 distinct quantized random rows, repeated. */
static void fill_rows(const cll_kernels *ref, uint32_t t, void *dst, int64_t n_in, int64_t rows) {
  const size_t rb = cll_row_bytes(t, n_in);
  float *x = malloc((size_t)n_in * sizeof(float));
  const int64_t distinct = rows < 64 ? rows : 64;
  for (int64_t r = 0; r < distinct; r++) {
    for (int64_t i = 0; i < n_in; i++)
      x[i] = frand();
    ref->quantize_row[t](x, (char *)dst + (size_t)r * rb, n_in);
  }
  for (int64_t r = distinct; r < rows; r++)
    memcpy((char *)dst + (size_t)r * rb, (char *)dst + (size_t)(r % distinct) * rb, rb);
  free(x);
}

static const uint32_t types[] = {CLL_TYPE_Q4_0, CLL_TYPE_Q8_0, CLL_TYPE_Q4_K, CLL_TYPE_Q5_K,
                                 CLL_TYPE_Q6_K, CLL_TYPE_F16,  CLL_TYPE_BF16};
#define N_TYPES (sizeof types / sizeof types[0])

/* ---------------------------------------------------------------- matmul */

static double matmul_gflops(const cll_kernels *k, uint32_t t, const void *w, const void *wp,
                            int64_t n_out, int64_t n_in, int64_t n_tok, const float *x, void *xq,
                            float *y, void *scratch, size_t scratch_bytes) {
  size_t xq_stride = 0;
  cll_matmul_xq_bytes(t, n_in, n_tok, &xq_stride);
  cll_matmul_args a = {.wtype = t,
                       .w = w,
                       .w_stride = cll_row_bytes(t, n_in),
                       .n_in = n_in,
                       .r0 = 0,
                       .r1 = n_out,
                       .x = x,
                       .x_stride = n_in,
                       .xq = xq,
                       .xq_stride = xq_stride,
                       .n_tok = n_tok,
                       .y = y,
                       .y_stride = n_out,
                       .scratch = scratch,
                       .scratch_bytes = scratch_bytes,
                       .wp = wp,
                       .wp_rows = wp ? n_out / CLL_PACK_ROWS * CLL_PACK_ROWS : 0};
  double best = 1e30, spent = 0.0;
  for (int rep = 0; rep < 20 && (rep < 3 || spent < 0.2); rep++) {
    const double t0 = cpu_s();
    cll_matmul_prepare(k, t, x, n_in, n_in, 0, n_tok, xq, xq_stride);
    cll_matmul(k, &a);
    const double dt = cpu_s() - t0;
    spent += dt;
    if (dt < best)
      best = dt;
  }
  return 2.0 * (double)n_out * (double)n_in * (double)n_tok / best * 1e-9;
}

/* ---------------------------------------------------------------- attention */

static int bench_attn(void) {
  const cll_kernels *k = cll_kernels_get();
  enum { D = 64, KV_DIM = 256, N_CTX = 4096, MAX_T = 16 };
  uint16_t *K = malloc((size_t)N_CTX * KV_DIM * 2), *V = malloc((size_t)D * N_CTX * 2);
  float *q = malloc(sizeof(float) * MAX_T * D), *sc = malloc(sizeof(float) * MAX_T * N_CTX),
        *o = malloc(sizeof(float) * MAX_T * D);
  for (int64_t i = 0; i < (int64_t)N_CTX * KV_DIM; i++)
    K[i] = cll_fp32_to_fp16(frand());
  for (int64_t i = 0; i < (int64_t)D * N_CTX; i++)
    V[i] = cll_fp32_to_fp16(frand());
  for (int i = 0; i < MAX_T * D; i++)
    q[i] = frand();
  for (int64_t i = 0; i < (int64_t)MAX_T * N_CTX; i++)
    sc[i] = frand();
  const size_t sb = cll_matmul_scratch_bytes(N_CTX, MAX_T);
  void *scr = malloc(sb + 64);
  printf("decode attention, F16 cache, table %s, 1 thread: scores + P.V for one KV head, "
         "us (GFLOP/s)\n",
         k->isa);
  printf("%-10s %-20s %-20s %-20s\n", "positions", "4 query rows", "8 query rows", "16 query rows");
  const int npos[] = {160, 1000, 4000};
  for (size_t pi = 0; pi < sizeof npos / sizeof npos[0]; pi++) {
    printf("%-10d", npos[pi]);
    for (int T = 4; T <= MAX_T; T *= 2) {
      cll_matmul_args s = {.wtype = CLL_TYPE_F16,
                           .w = K,
                           .w_stride = KV_DIM * 2,
                           .n_in = D,
                           .r0 = 0,
                           .r1 = npos[pi],
                           .x = q,
                           .x_stride = D,
                           .n_tok = T,
                           .y = sc,
                           .y_stride = N_CTX,
                           .scratch = scr,
                           .scratch_bytes = sb};
      cll_matmul_args pv = {.wtype = CLL_TYPE_F16,
                            .w = V,
                            .w_stride = (size_t)N_CTX * 2,
                            .n_in = npos[pi],
                            .r0 = 0,
                            .r1 = D,
                            .x = sc,
                            .x_stride = N_CTX,
                            .n_tok = T,
                            .y = o,
                            .y_stride = D,
                            .scratch = scr,
                            .scratch_bytes = sb};
      double best = 1e30;
      const int iters = 200000 / npos[pi];
      for (int rep = 0; rep < 5; rep++) {
        const double t0 = cpu_s();
        for (int it = 0; it < iters; it++) {
          cll_matmul(k, &s);
          cll_matmul(k, &pv);
        }
        const double dt = (cpu_s() - t0) / iters;
        if (dt < best)
          best = dt;
      }
      printf(" %8.2f (%5.1f)     ", best * 1e6, 4.0 * npos[pi] * D * T / best * 1e-9);
    }
    printf("\n");
  }
  free(K), free(V), free(q), free(sc), free(o), free(scr);
  return 0;
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
  int quick = 0, matmul_only = 0;
  const char *only_type = NULL;
  int64_t only_tok = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else if (strcmp(argv[i], "--matmul") == 0)
      matmul_only = 1;
    else if (strcmp(argv[i], "--type") == 0 && i + 1 < argc)
      only_type = argv[++i];
    else if (strcmp(argv[i], "--tok") == 0 && i + 1 < argc)
      only_tok = atoll(argv[++i]);
    else if (strcmp(argv[i], "--attn") == 0)
      return bench_attn();
    else if (strcmp(argv[i], "--peak") == 0)
      return bench_peak();
    else {
      fprintf(stderr, "usage: %s [--quick] [--matmul] [--type Q4_0] [--tok N] [--attn] [--peak]\n",
              argv[0]);
      return 2;
    }
  }
  kernels_init_from_env();
  const cll_kernels *ref = cll_kernels_by_name("ref");
  const char *isas[] = {"ref", "avx2", "avx512", "neon"};

  if (matmul_only)
    goto matmul;
  /* 1. bandwidth */
  const size_t bw_bytes = (size_t)(quick ? 128 : 512) << 20;
  uint64_t *buf = malloc(bw_bytes);
  if (!buf)
    return 1;
  for (size_t i = 0; i < bw_bytes / 8; i++)
    buf[i] = i * 2654435761u;
  const double bw1 = bandwidth_gbs(buf, bw_bytes, 1), bw2 = bandwidth_gbs(buf, bw_bytes, 2);
  free(buf);
  printf("kernels: default table %s%s, BLIS config %s\n", cll_kernels_get()->isa,
         cll_kernels_uses_amx(cll_kernels_get()) ? " (AMX tiles from 16 tokens)" : "",
         cll__matmul_blis_arch());
  printf("memory bandwidth (streaming read, %zu MiB): 1 thread %.1f GB/s, 2 threads %.1f GB/s\n\n",
         bw_bytes >> 20, bw1, bw2);

  /* 2. vec_dot at decode shape: rows of 2048, weights beyond the caches. */
  const int64_t n_in = 2048;
  const size_t target = (size_t)(quick ? 96 : 256) << 20;
  float *xf = malloc((size_t)n_in * sizeof(float));
  for (int64_t i = 0; i < n_in; i++)
    xf[i] = frand();
  static uint8_t act[2048 * 4 + 1024];
  printf("vec_dot, one token, rows of %lld, GB/s of weights read (%% of the bandwidth above)\n",
         (long long)n_in);
  printf("%-6s %-7s %16s %16s\n", "type", "isa", "1 thread", "2 threads");
  for (size_t ti = 0; ti < N_TYPES; ti++) {
    const uint32_t t = types[ti];
    const struct cll_type_info *info = cll_type_info(t);
    if (only_type && strcmp(only_type, info->name) != 0)
      continue;
    const size_t rb = cll_row_bytes(t, n_in);
    const int64_t rows = (int64_t)(target / rb) & ~(int64_t)1;
    void *w = malloc((size_t)rows * rb);
    if (!w)
      return 1;
    fill_rows(ref, t, w, n_in, rows);
    for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
      const cll_kernels *k = cll_kernels_by_name(isas[ii]);
      if (!k)
        continue;
      if (info->act_type == CLL_TYPE_F32)
        memcpy(act, xf, (size_t)n_in * sizeof(float));
      else
        k->quantize_row[info->act_type](xf, act, n_in);
      dot_ctx c = {k, t, n_in, rows, rb, act};
      double g[2];
      for (int th = 1; th <= 2; th++) {
        double best = 1e30;
        for (int rep = 0; rep < 2; rep++) {
          const double dt = run_threads(th, dot_slice, w, 0, &c);
          if (dt < best)
            best = dt;
        }
        g[th - 1] = (double)rows * (double)rb / best * 1e-9;
      }
      printf("%-6s %-7s %7.1f (%3.0f%%) %7.1f (%3.0f%%)\n", info->name, isas[ii], g[0],
             100.0 * g[0] / bw1, g[1], 100.0 * g[1] / bw2);
    }
    /* The default table through cll_matmul, packed where it packs. */
    const cll_kernels *kd = cll_kernels_get();
    const int64_t mrows = rows / (2 * CLL_PACK_ROWS) * (2 * CLL_PACK_ROWS);
    void *wp = NULL;
    if (kd->pack[t] != NULL) {
      wp = aligned_alloc(64, (kd->pack_bytes[t](n_in, mrows) + 63) & ~(size_t)63);
      if (!wp)
        return 1;
      kd->pack[t](w, rb, n_in, 0, mrows / CLL_PACK_ROWS, wp);
    }
    size_t xqs = 0;
    void *xq1 = aligned_alloc(64, cll_matmul_xq_bytes(t, n_in, 1, &xqs) + 64);
    float *y1 = malloc((size_t)mrows * sizeof(float));
    cll_matmul_prepare(kd, t, xf, n_in, n_in, 0, 1, xq1, xqs);
    mm_ctx mc = {kd, t, n_in, mrows, rb, wp, xq1, xqs, xf, y1};
    double g[2];
    for (int th = 1; th <= 2; th++) {
      double best = 1e30;
      for (int rep = 0; rep < 3; rep++) {
        const double dt = run_threads(th, matmul_slice, w, 0, &mc);
        if (dt < best)
          best = dt;
      }
      g[th - 1] = (double)mrows * (double)rb / best * 1e-9;
    }
    printf("%-6s %-7s %7.1f (%3.0f%%) %7.1f (%3.0f%%)  cll_matmul%s\n", info->name, kd->isa, g[0],
           100.0 * g[0] / bw1, g[1], 100.0 * g[1] / bw2, wp ? ", packed at load" : "");
    free(wp), free(xq1), free(y1);
    free(w);
  }
  free(xf);

matmul:;
  /* 3. matmul on 5632 x 2048, 1 thread, dot path vs BLIS path. */
  const int64_t n_in2 = 2048, n_out = 5632, max_tok = 512;
  const int64_t toks[] = {1, 4, 16, 64, 512};
  const size_t n_toks = quick ? 4 : sizeof toks / sizeof toks[0];
  float *x = malloc((size_t)(max_tok * n_in2) * sizeof(float));
  float *y = malloc((size_t)(max_tok * n_out) * sizeof(float));
  size_t xq_stride;
  void *xq = malloc(cll_matmul_xq_bytes(CLL_TYPE_Q8_0, n_in2, max_tok, &xq_stride) +
                    cll_matmul_xq_bytes(CLL_TYPE_Q8_K, n_in2, max_tok, &xq_stride) + 4096);
  cll__matmul_force_path(1); /* size the scratch for every path */
  const size_t scratch_bytes = cll_matmul_scratch_bytes(n_in2, max_tok);
  void *scratch = malloc(scratch_bytes);
  for (int64_t i = 0; i < max_tok * n_in2; i++)
    x[i] = frand();
  const cll_kernels *k = cll_kernels_get();
  printf("\ncll_matmul %lldx%lld, table %s, 1 thread, GFLOP/s: fused dot / BLIS / int8 GEMM"
         " / packed at load\n",
         (long long)n_out, (long long)n_in2, k->isa);
  printf("%-6s", "type");
  for (size_t i = 0; i < n_toks; i++)
    printf("  n_tok=%-3lld dot/blis/int8/packed  ", (long long)toks[i]);
  printf("\n");
  for (size_t ti = 0; ti < N_TYPES; ti++) {
    const uint32_t t = types[ti];
    if (only_type && strcmp(only_type, cll_type_info(t)->name) != 0)
      continue;
    const size_t rb = cll_row_bytes(t, n_in2);
    void *w = malloc((size_t)n_out * rb);
    fill_rows(ref, t, w, n_in2, n_out);
    void *wp = NULL;
    if (k->pack[t] != NULL) {
      wp = aligned_alloc(64, (k->pack_bytes[t](n_in2, n_out) + 63) & ~(size_t)63);
      k->pack[t](w, rb, n_in2, 0, n_out / CLL_PACK_ROWS, wp);
    }
    printf("%-6s", cll_type_info(t)->name);
    for (size_t i = 0; i < n_toks; i++) {
      if (only_tok && toks[i] != only_tok)
        continue;
      double g[4] = {0, 0, 0, 0};
      for (int path = 1; path <= 3; path++) {
        /* The dot path at many tokens is slow and known: skip it unless
         * asked for, to keep the run short. Int8 where the table has it. */
        if (path == 1 && toks[i] > 64 && !only_tok)
          continue;
        if (path == 3 && k->gemm[t] == NULL)
          continue;
        cll__matmul_force_path(path);
        g[path - 1] =
            matmul_gflops(k, t, w, NULL, n_out, n_in2, toks[i], x, xq, y, scratch, scratch_bytes);
      }
      cll__matmul_force_path(0);
      if (wp != NULL)
        g[3] = matmul_gflops(k, t, w, wp, n_out, n_in2, toks[i], x, xq, y, scratch, scratch_bytes);
      printf("  %6.1f/%6.1f/%6.1f/%6.1f", g[0], g[1], g[2], g[3]);
      fflush(stdout);
    }
    cll__matmul_force_path(0);
    printf("\n");
    /* Where the table's packed product runs on AMX tiles (avx512 on an
     * AMX CPU), the same packed matrix on the VNNI kernel, alternated
     * with it: tokens  AMX / VNNI GFLOP/s. */
    const cll_kernels *kv = cll_kernels_by_name("avx512-noamx");
    if (wp != NULL && kv != NULL && kv->matmul_packed[t] != k->matmul_packed[t]) {
      printf("%-6s", "  AMX:");
      for (size_t i = 0; i < n_toks; i++) {
        if ((only_tok && toks[i] != only_tok) || toks[i] < 16)
          continue;
        double amx = 0, vnni = 0;
        for (int r = 0; r < 3; r++) {
          const double ga =
              matmul_gflops(k, t, w, wp, n_out, n_in2, toks[i], x, xq, y, scratch, scratch_bytes);
          const double gv =
              matmul_gflops(kv, t, w, wp, n_out, n_in2, toks[i], x, xq, y, scratch, scratch_bytes);
          amx = ga > amx ? ga : amx;
          vnni = gv > vnni ? gv : vnni;
        }
        printf("  n_tok=%-3lld AMX %6.1f / VNNI %6.1f = %.2fx", (long long)toks[i], amx, vnni,
               amx / vnni);
        fflush(stdout);
      }
      printf("\n");
    }
    free(w);
    free(wp);
  }
  printf("(0.0: not measured or not available for the type. matmul.c takes the packed path "
         "where the weights are packed, else int8 from the table's gemm_min_tok (avx512: 2 for "
         "Q4_0/Q8_0, 4 for Q4_K, 8 for Q6_K); BLIS from %d tokens for float types and 6x that "
         "for other quants; F32 always the dot path)\n",
         cll__matmul_gemm_min_tok());
  free(x), free(y), free(xq), free(scratch);
  return 0;
}
