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
#include "kernels_checks.h"

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
  /* Packed BF16 products round the activations to bf16 (kernels.h);
   * the rows outside whole panels are read in place, from the floats. */
  const int round_bf16 = wp != NULL && t == CLL_TYPE_BF16;
  const int64_t pk0 = (R0 + CLL_PACK_ROWS - 1) / CLL_PACK_ROWS * CLL_PACK_ROWS;
  const int64_t pk1 = N_OUT / CLL_PACK_ROWS * CLL_PACK_ROWS;
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
      const int rounded = round_bf16 && r >= pk0 && r < pk1;
      double want = 0, mag = 0;
      for (int i = 0; i < N_IN; i++) {
        float xi = xf[tk * N_IN + i];
        if (rounded)
          xi = cll_bf16_to_fp32(cll_fp32_to_bf16(xi));
        want += (double)wf[r * N_IN + i] * xi;
        mag += fabs((double)wf[r * N_IN + i] * xi);
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
  static const char *isas[] = {"ref",          "avx2-novnni", "avx2",       "avx512-nobf16",
                               "avx512-noamx", "avx512",      "neon-nodot", "neon"};
  int bad = 0, runs = 0;
  for (size_t ii = 0; ii < sizeof isas / sizeof isas[0]; ii++) {
    const cll_kernels *k = cll_kernels_by_name(isas[ii]);
    if (!k)
      continue;
    /* avx512-noamx is the avx512 table where the CPU has no AMX. */
    if (strcmp(isas[ii], "avx512-noamx") == 0 && !kc_avx512_has_amx())
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

#if defined(__x86_64__)
/* amx.c with a C model of the tiles */
extern const cll_kernels cll__kernels_amx_emu, cll__kernels_amx_bf16_emu;
#endif

/* cll_matmul on the avx512 table with amx.c's packed products (Q4_0,
 * Q8_0, Q4_K, Q5_K, Q6_K; BF16 where the CPU has AVX512_BF16), the tiles
 * modelled in C (the real ones run in the test
 * above where the CPU has AMX): whole tiles of 16 tokens, a remainder for
 * the VNNI kernel, and a step with one token tile (16..31 tokens). */
Test(matmul, amx_tiles_emulated) {
#if defined(__x86_64__)
  const cll_kernels *k512 = cll_kernels_by_name("avx512-noamx");
  if (k512 == NULL)
    return;
  cll_kernels k = *k512;
  k.isa = "avx512 (AMX modelled)";
  kc_overlay_packed(&k, &cll__kernels_amx_emu);
  kc_overlay_packed(&k, &cll__kernels_amx_bf16_emu); /* where the CPU has AVX512_BF16 */
  static const int64_t toks[] = {16, 31, 37, 70};
  int bad = 0;
  for (size_t j = 0; j < sizeof toks / sizeof toks[0]; j++)
    for (uint32_t t = 0; t < CLL_TYPE_COUNT; t++)
      if (k.matmul_packed[t] != k512->matmul_packed[t])
        bad += check_one(&k, t, 4, toks[j]);
  cr_expect_eq(bad, 0, "%d mismatching outputs", bad);
#endif
}

/* The packed F16 and BF16 kernels (avx512_half.c) on the shapes their
 * loops split: odd n_in (BF16 pairs with a zero half; F16 any length),
 * K-chunks of the BF16 activations (n_in above what one chunk holds at
 * 72 tokens), 9 whole panels in the slice (decode: four at a time, then
 * one; prefill: pairs and an odd one), a slice that starts and ends
 * inside a panel, and token counts across tile sizes (1..16), a whole
 * chunk (72) and more (513). Compared with the double product of the
 * weights and the activations the kernel sees (bf16-rounded for BF16). */
static int check_half(const cll_kernels *k, uint32_t t, int64_t n_in, int64_t n_tok,
                      size_t scratch_bytes) {
  enum { ROWS = 10 * CLL_PACK_ROWS + 7, HR0 = 5, HR1 = ROWS - 2 };
  const cll_kernels *ref = cll_kernels_by_name("ref");
  const size_t rb = cll_row_bytes(t, n_in);
  uint8_t *w = malloc(rb * ROWS);
  float *wf = malloc(sizeof(float) * (size_t)(n_in * ROWS));
  float *x = malloc(sizeof(float) * (size_t)(n_in * n_tok));
  float *y = malloc(sizeof(float) * (size_t)(ROWS * n_tok));
  /* 4 bytes past a 64-byte boundary (the in-place paths store floats
   * there): the packed BF16 kernel aligns what it uses. */
  char *scratch = scratch_bytes ? malloc(scratch_bytes + 4) : NULL;
  for (int64_t i = 0; i < n_in * ROWS; i++) {
    const float v = frand();
    const uint16_t h = t == CLL_TYPE_BF16 ? cll_fp32_to_bf16(v) : cll_fp32_to_fp16(v);
    memcpy(w + (i / n_in) * rb + 2 * (i % n_in), &h, 2);
  }
  for (int r = 0; r < ROWS; r++)
    ref->dequant_row[t](w + (size_t)r * rb, wf + (size_t)r * n_in, n_in);
  for (int64_t i = 0; i < n_in * n_tok; i++)
    x[i] = frand();
  void *wp = aligned_alloc(64, (k->pack_bytes[t](n_in, ROWS) + 63) & ~(size_t)63);
  k->pack[t](w, rb, n_in, 0, ROWS / CLL_PACK_ROWS, wp);
  for (int64_t i = 0; i < ROWS * n_tok; i++)
    y[i] = 12345.0f;
  cll_matmul_args a = {.wtype = t,
                       .w = w,
                       .w_stride = rb,
                       .wp = wp,
                       .wp_rows = ROWS / CLL_PACK_ROWS * CLL_PACK_ROWS,
                       .n_in = n_in,
                       .r0 = HR0,
                       .r1 = HR1,
                       .x = x,
                       .x_stride = n_in,
                       .n_tok = n_tok,
                       .y = y,
                       .y_stride = ROWS,
                       .scratch = scratch ? scratch + 4 : NULL,
                       .scratch_bytes = scratch_bytes};
  cll_matmul(k, &a);
  int bad = 0;
  if (!(cll__matmul_paths_ran() & (1u << CLL__MATMUL_PACKED))) {
    fprintf(stderr, "%s %s: the packed path did not run\n", k->isa, cll_type_info(t)->name);
    bad++;
  }
  for (int64_t tk = 0; tk < n_tok; tk++)
    for (int64_t r = 0; r < ROWS; r++) {
      const float got = y[tk * ROWS + r];
      if (r < HR0 || r >= HR1) {
        bad += got != 12345.0f;
        continue;
      }
      /* Rows outside whole panels are read in place, from the floats. */
      const int rounded = t == CLL_TYPE_BF16 && r >= CLL_PACK_ROWS && r < a.wp_rows;
      double want = 0, mag = 0;
      for (int64_t i = 0; i < n_in; i++) {
        float xi = x[tk * n_in + i];
        if (rounded)
          xi = cll_bf16_to_fp32(cll_fp32_to_bf16(xi));
        want += (double)wf[r * n_in + i] * xi;
        mag += fabs((double)wf[r * n_in + i] * xi);
      }
      if (fabs(got - want) > 2e-5 * mag + 1e-6) {
        if (bad < 3)
          fprintf(stderr, "%s %s n_in %lld n_tok %lld: y[%lld][%lld] = %.7g, want %.7g\n", k->isa,
                  cll_type_info(t)->name, (long long)n_in, (long long)n_tok, (long long)tk,
                  (long long)r, got, want);
        bad++;
      }
    }
  free(w), free(wf), free(x), free(y), free(wp), free(scratch);
  return bad;
}

Test(matmul, packed_f16_bf16_odd_sizes) {
  static const int64_t lens[] = {1, 77, 1001, 2050};
  static const int64_t toks[] = {1, 2, 3, 5, 8, 11, 12, 13, 16, 72, 73, 513};
  const cll_kernels *k = cll_kernels_by_name("avx512");
  if (k == NULL)
    cr_skip_test("no avx512 table on this CPU");
  /* The avx512 table packs F16 always, BF16 where the CPU has
   * AVX512_BF16; the table for CPUs without it never packs BF16. */
  cr_assert_neq(k->pack[CLL_TYPE_F16], NULL);
  cr_expect_eq(cll_kernels_by_name("avx512-nobf16")->pack[CLL_TYPE_BF16], NULL);
  cr_expect_neq(cll_kernels_by_name("avx512-nobf16")->pack[CLL_TYPE_F16], NULL);
  int bad = 0, runs = 0;
  for (int bf = 0; bf < 2; bf++) {
    const uint32_t t = bf ? CLL_TYPE_BF16 : CLL_TYPE_F16;
    if (k->pack[t] == NULL) {
      printf("packed_f16_bf16_odd_sizes: this CPU lacks AVX512_BF16: BF16 not packed\n");
      continue;
    }
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++)
      for (size_t ti = 0; ti < sizeof toks / sizeof toks[0]; ti++) {
        if (lens[li] > 1001 && toks[ti] > 73)
          continue; /* the double reference is slow; 1001 x 513 covers it */
        /* Without scratch (BF16: the stack buffer, K-chunks from n_in =
         * 1001 at 72 tokens) and with a scratch just over the size from
         * which the kernel takes it (K-chunks of 128 pairs at 72). */
        bad += check_half(k, t, lens[li], toks[ti], 0);
        bad += check_half(k, t, lens[li], toks[ti], 40000);
        runs += 2;
      }
  }
  cr_expect_eq(bad, 0, "%d mismatching outputs over %d runs", bad, runs);
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
