/* bench/quant.c — single-thread throughput of every format in every table
 * (bench/kernels.c covers the SIMD formats in depth, with the roofline).
 *
 * vec_dot: one activation row against every row of a weight matrix of
 * about 64 MB (larger than the caches, like decode), reported as GB/s of
 * weights read and as ns per row of 4096 elements; for each table this CPU
 * has (ref, avx2, avx512, neon). quantize_row: M elements/s of the reference
 * quantizers (what `cllama quantize` runs).
 *
 *   build/release/bench/quant              every table and type
 *   build/release/bench/quant avx512 Q4_K  one table, one type
 */
#include "cllama/kernels.h"
#include "kernels/quant.h"

#include <stddef.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const uint32_t types[] = {
    CLL_TYPE_F32,  CLL_TYPE_F16,  CLL_TYPE_BF16, CLL_TYPE_Q8_0, CLL_TYPE_Q4_0,
    CLL_TYPE_Q4_1, CLL_TYPE_Q5_0, CLL_TYPE_Q5_1, CLL_TYPE_Q2_K, CLL_TYPE_Q3_K,
    CLL_TYPE_Q4_K, CLL_TYPE_Q5_K, CLL_TYPE_Q6_K,
};

enum { N_IN = 4096, MATRIX_BYTES = 64 << 20 };

static float frand(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((*s >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
}

static void bench_dot(const cll_kernels *k, uint32_t t, const cll_kernels *ref) {
  const struct cll_type_info *ti = cll_type_info(t);
  size_t rb = cll_row_bytes(t, N_IN);
  int64_t rows = MATRIX_BYTES / (int64_t)rb;
  uint8_t *w = malloc(rb * (size_t)rows);
  float *x = malloc(N_IN * sizeof(float));
  void *xq = malloc(cll_row_bytes(ti->act_type, N_IN) + 64);
  if (!w || !x || !xq) {
    free(w), free(x), free(xq);
    return;
  }
  uint64_t s = 1;
  for (int i = 0; i < N_IN; i++)
    x[i] = frand(&s);
  /* Weights: quantized from floats where a quantizer exists, else the
   * row of another type's bytes is as good as any (timing only). */
  if (ref->quantize_row[t]) {
    ref->quantize_row[t](x, w, N_IN);
    for (int64_t r = 1; r < rows; r++)
      memcpy(w + r * rb, w, rb);
  } else {
    for (size_t i = 0; i < rb * (size_t)rows; i++)
      w[i] = (uint8_t)(i * 131u >> 3);
    /* Give the scale fields a sane half value (random bits may be NaN). */
    size_t off[2] = {SIZE_MAX, SIZE_MAX};
    if (t == CLL_TYPE_Q2_K) {
      off[0] = offsetof(cll_block_q2_K, d);
      off[1] = offsetof(cll_block_q2_K, dmin);
    } else if (t == CLL_TYPE_Q3_K) {
      off[0] = offsetof(cll_block_q3_K, d);
    }
    uint16_t h = cll_fp32_to_fp16(0.01f);
    for (size_t b = 0; b < rb * (size_t)rows / ti->block_bytes; b++)
      for (int f = 0; f < 2; f++)
        if (off[f] != SIZE_MAX)
          memcpy(w + b * ti->block_bytes + off[f], &h, 2);
  }
  ref->quantize_row[ti->act_type](x, xq, N_IN);
  float acc = 0, out;
  double best = 1e9;
  for (int rep = 0; rep < 3; rep++) {
    double t0 = now_s();
    for (int64_t r = 0; r < rows; r++) {
      k->vec_dot[t](N_IN, w + r * rb, xq, &out);
      acc += out;
    }
    double dt = now_s() - t0;
    if (dt < best)
      best = dt;
  }
  printf("%-7s %-5s vec_dot %7.2f GB/s %8.1f ns/row (checksum %g)\n", k->isa, ti->name,
         (double)rb * rows / best / 1e9, best / rows * 1e9, acc);
  free(w), free(x), free(xq);
}

static void bench_quantize(uint32_t t, const cll_kernels *ref) {
  enum { N = 1 << 20 };
  float *x = malloc(N * sizeof(float));
  void *q = malloc(N * sizeof(float));
  if (!x || !q) {
    free(x), free(q);
    return;
  }
  uint64_t s = 7;
  for (int i = 0; i < N; i++)
    x[i] = frand(&s);
  double t0 = now_s();
  ref->quantize_row[t](x, q, N);
  double dt = now_s() - t0;
  printf("ref     %-5s quantize_row %8.1f M elements/s\n", cll_type_info(t)->name, N / dt / 1e6);
  free(x), free(q);
}

int main(int argc, char **argv) {
  const char *only_isa = argc > 1 ? argv[1] : NULL;
  const char *only_type = argc > 2 ? argv[2] : NULL;
  const char *isas[] = {"ref", "avx2", "avx512", "neon"};
  const cll_kernels *ref = cll_kernels_by_name("ref");
  printf("default table: %s; rows of %d elements, %d MB of weights\n", cll_kernels_get()->isa, N_IN,
         MATRIX_BYTES >> 20);
  for (size_t i = 0; i < sizeof isas / sizeof isas[0]; i++) {
    const cll_kernels *k = cll_kernels_by_name(isas[i]);
    if (!k || (only_isa && strcmp(only_isa, isas[i]) != 0))
      continue;
    for (size_t j = 0; j < sizeof types / sizeof types[0]; j++) {
      if (only_type && strcmp(only_type, cll_type_info(types[j])->name) != 0)
        continue;
      bench_dot(k, types[j], ref);
    }
  }
  if (only_isa == NULL || strcmp(only_isa, "ref") == 0) {
    for (size_t j = 0; j < sizeof types / sizeof types[0]; j++) {
      if (only_type && strcmp(only_type, cll_type_info(types[j])->name) != 0)
        continue;
      if (ref->quantize_row[types[j]])
        bench_quantize(types[j], ref);
    }
  }
  return 0;
}
