/* test_matmul.c — cll_matmul against a plain double-precision product,
 * for every kernel table this CPU has and every path (fused dot, BLIS on
 * dequantized tiles, int8 GEMM, and the choice cll_matmul makes itself,
 * which adds weights repacked by the table's pack and the F16 few-token
 * kernel),
 * over odd row slices and token counts. The slice R0..R1 starts and ends
 * inside a 16-row panel, so the packed path also reads rows in place, and
 * holds five whole panels: the packed Q4_0 kernel takes two pairs and one
 * panel alone.
 *
 * The fused-dot and int8 paths use the 8-bit activations, so they are
 * compared with the product of the dequantized weights and dequantized
 * activations; the BLIS path uses the float activations. Columns outside
 * the slice must be left untouched. */
#include "cllama/kernels.h"
#include "kernels/matmul_internal.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return (float)((rng >> 40) & 0xFFFFFF) / 16777216.0f * 2.0f - 1.0f;
}

enum { N_IN = 768, N_OUT = 109, MAX_TOK = 70, R0 = 3, R1 = 106 };

/* Returns the number of mismatches of one (table, type, path, n_tok). */
static int check_one(const cll_kernels *k, uint32_t t, int path, int64_t n_tok) {
  const cll_kernels *ref = cll_kernels_by_name("ref");
  const struct cll_type_info *ti = cll_type_info(t);
  const size_t rb = cll_row_bytes(t, N_IN);
  uint8_t *w = malloc(rb * N_OUT);
  float *wf = malloc(sizeof(float) * N_IN * N_OUT);
  float *x = malloc(sizeof(float) * N_IN * MAX_TOK);
  float *xf = malloc(sizeof(float) * N_IN * MAX_TOK);
  float *y = malloc(sizeof(float) * (N_OUT + 5) * MAX_TOK);
  float *row = malloc(sizeof(float) * N_IN);
  for (int r = 0; r < N_OUT; r++) {
    for (int i = 0; i < N_IN; i++)
      row[i] = frand() * (1.0f + (float)(r % 5));
    ref->quantize_row[t](row, w + (size_t)r * rb, N_IN);
    ref->dequant_row[t](w + (size_t)r * rb, wf + (size_t)r * N_IN, N_IN);
  }
  for (int i = 0; i < N_IN * MAX_TOK; i++)
    x[i] = frand();
  size_t xq_stride = 0;
  const size_t xq_bytes = cll_matmul_xq_bytes(t, N_IN, n_tok, &xq_stride);
  void *xq = xq_bytes ? malloc(xq_bytes) : NULL;
  cll_matmul_prepare(k, t, x, N_IN, N_IN, 0, n_tok, xq, xq_stride);
  /* The activations the quantized paths really see. */
  for (int64_t tk = 0; tk < n_tok; tk++) {
    if (ti->act_type == CLL_TYPE_F32 || path == 2)
      memcpy(xf + tk * N_IN, x + tk * N_IN, sizeof(float) * N_IN);
    else
      ref->dequant_row[ti->act_type]((char *)xq + tk * xq_stride, xf + tk * N_IN, N_IN);
  }
  /* Path 4: whatever cll_matmul chooses by itself (the packed matrix
   * where the table packs the type; for F16 and a few tokens, the
   * few-token kernel). */
  void *wp = NULL;
  if (path == 4 && k->pack[t] != NULL) {
    wp = aligned_alloc(64, (k->pack_bytes[t](N_IN, N_OUT) + 63) & ~(size_t)63);
    k->pack[t](w, rb, N_IN, 0, N_OUT / CLL_PACK_ROWS, wp);
  }
  cll__matmul_force_path(path == 4 ? 0 : path);
  const size_t sb = cll_matmul_scratch_bytes(N_IN, MAX_TOK);
  void *scratch = sb ? malloc(sb) : NULL;
  const int64_t ys = N_OUT + 5;
  for (int i = 0; i < ys * MAX_TOK; i++)
    y[i] = 12345.0f;
  cll_matmul_args a = {.wtype = t,
                       .w = w,
                       .w_stride = rb,
                       .n_in = N_IN,
                       .r0 = R0,
                       .r1 = R1,
                       .x = x,
                       .x_stride = N_IN,
                       .xq = xq,
                       .xq_stride = xq_stride,
                       .n_tok = n_tok,
                       .y = y,
                       .y_stride = ys,
                       .scratch = scratch,
                       .scratch_bytes = sb,
                       .wp = wp,
                       .wp_rows = wp ? N_OUT / CLL_PACK_ROWS * CLL_PACK_ROWS : 0};
  cll_matmul(k, &a);
  cll__matmul_force_path(0);
  int bad = 0;
  /* The path asked for is the one that ran, where the table has it. */
  const unsigned ran = cll__matmul_paths_ran();
  int want_path = 0;
  if (path == 1)
    want_path = 1;
  else if (path == 2 && k->dequant_row[t] != NULL)
    want_path = 2;
  else if (path == 3 && k->gemm[t] != NULL)
    want_path = 3;
  else if (path == 4 && wp != NULL)
    want_path = CLL__MATMUL_PACKED;
  if (want_path && !(ran & (1u << want_path))) {
    fprintf(stderr, "%s %s n_tok %lld: path %d asked, paths 0x%x ran\n", k->isa, ti->name,
            (long long)n_tok, want_path, ran);
    bad++;
  }
  for (int64_t tk = 0; tk < n_tok; tk++)
    for (int64_t r = 0; r < ys; r++) {
      const float got = y[tk * ys + r];
      if (r < R0 || r >= R1) {
        if (got != 12345.0f)
          bad++;
        continue;
      }
      double want = 0, mag = 0;
      for (int i = 0; i < N_IN; i++) {
        want += (double)wf[r * N_IN + i] * xf[tk * N_IN + i];
        mag += fabs((double)wf[r * N_IN + i] * xf[tk * N_IN + i]);
      }
      if (fabs(got - want) > 2e-5 * mag + 1e-6) {
        if (bad < 3)
          fprintf(stderr, "%s %s path %d n_tok %lld: y[%lld][%lld] = %.7g, want %.7g\n", k->isa,
                  ti->name, path, (long long)n_tok, (long long)tk, (long long)r, got, want);
        bad++;
      }
    }
  free(w), free(wf), free(x), free(xf), free(y), free(row), free(xq), free(scratch), free(wp);
  return bad;
}

Test(matmul, every_table_path_and_size) {
  static const uint32_t types[] = {CLL_TYPE_F32,  CLL_TYPE_F16,  CLL_TYPE_BF16, CLL_TYPE_Q4_0,
                                   CLL_TYPE_Q8_0, CLL_TYPE_Q4_K, CLL_TYPE_Q5_K, CLL_TYPE_Q6_K};
  static const int64_t toks[] = {1, 2, 3, 8, 13, 37, 70};
  static const char *isas[] = {"ref", "avx2", "avx512", "neon"};
  int bad = 0, runs = 0;
  for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
    const cll_kernels *k = cll_kernels_by_name(isas[ii]);
    if (!k)
      continue;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
      for (int path = 1; path <= 4; path++)
        for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++) {
          bad += check_one(k, types[ti], path, toks[j]);
          runs++;
        }
  }
  cr_expect_eq(bad, 0, "%d mismatching outputs over %d runs", bad, runs);
  /* This CPU has AVX-512: the packed Q4_0 path exists and was tested. */
  const cll_kernels *k512 = cll_kernels_by_name("avx512");
  if (k512 != NULL)
    cr_expect_neq(k512->pack[CLL_TYPE_Q4_0], NULL);
}

Test(matmul, scratch_and_xq_sizes) {
  size_t stride = 0;
  cr_expect_eq(cll_matmul_xq_bytes(CLL_TYPE_F16, 2048, 4, &stride), 0);
  cr_expect_gt(cll_matmul_xq_bytes(CLL_TYPE_Q4_0, 2048, 4, &stride), 0);
  cr_expect_geq(stride, cll_row_bytes(CLL_TYPE_Q8_0, 2048));
  cr_expect_eq(stride % 64, 0);
  cr_expect_geq(cll_matmul_scratch_bytes(2048, 512), 2048 * sizeof(float));
  cr_expect_neq(cll__matmul_blis_arch(), NULL);
}
