/* test_kernels.c — the kernel checks (kernels_checks.h) under Criterion.
 * The same checks run standalone for aarch64 under qemu: `make test-neon`. */
#include "kernels_checks.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

Test(kernels, fp16_bf16_conversions) {
  cr_assert_eq(check_fp16(), 0);
}

Test(kernels, type_table_and_dispatch) {
  cr_assert_eq(check_type_info(), 0);
}

Test(kernels, ref_quantize_dequantize_error) {
  cr_assert_eq(check_roundtrip_table(cll_kernels_by_name("ref"), 1), 0);
}

Test(kernels, ref_vec_dot_matches_dequantized_dot) {
  cr_assert_eq(check_vec_dot_vs_dequant(cll_kernels_by_name("ref")), 0);
}

Test(kernels, generic_twins_match_plain_vec_dot) {
  int n = 0;
  cr_assert_eq(check_slots_vs_generic(&cll__kernels_generic, &n), 0);
  cr_assert_gt(n, 0);
}

Test(kernels, simd_tables_match_ref) {
  int n = 0;
  cr_assert_eq(check_all_tables_vs_ref(&n), 0);
  cr_assert_eq(check_neon_dispatch(), 0);
  if (n == 0)
    printf("kernels: no SIMD table on this CPU/build: only ref checked\n");
}

#if defined(__x86_64__)
/* amx.c built with its tile instructions replaced by a C model of them
 * (the Makefile links it into this test as build/.../test/amx_emu.o). */
extern const cll_kernels cll__kernels_amx_emu, cll__kernels_amx_bf16_emu;
int cll__amx_selftest_emu(void);
int cll__amx_bf16_selftest_emu(void);
#endif

/* The AMX products on every CPU with AVX-512, through the model of the
 * tiles: the avx512 table with amx.c's slots (Q4_0, Q8_0, Q4_K, Q5_K,
 * Q6_K; BF16 where the CPU has AVX512_BF16) against the twins, amx.c's
 * own self-tests, and bit-identity with the VNNI kernels. On an AMX CPU
 * simd_tables_match_ref checks the real tiles as well. */
Test(kernels, amx_tiles_emulated) {
#if defined(__x86_64__)
  const cll_kernels *k512 = cll_kernels_by_name("avx512-noamx");
  if (k512 == NULL) {
    printf("kernels: no AVX-512 here: the AMX model is not run\n");
    return;
  }
  cll_kernels k = *k512;
  k.isa = "avx512 (AMX modelled)";
  for (uint32_t t = 0; t < CLL_TYPE_COUNT; t++)
    if (cll__kernels_amx_emu.matmul_packed[t] != NULL)
      cr_assert_eq(cll__kernels_amx_emu.pack[t], k.pack[t], "the VNNI kernels' layout");
  kc_overlay_packed(&k, &cll__kernels_amx_emu);
  /* BF16 where the CPU has AVX512_BF16 (the layout's kernels need it). */
  kc_overlay_packed(&k, &cll__kernels_amx_bf16_emu);
  const int bf16 =
      k.matmul_packed[CLL_TYPE_BF16] == cll__kernels_amx_bf16_emu.matmul_packed[CLL_TYPE_BF16];
  cr_assert_eq(check_amx_slots(&k), 0);
  cr_assert_eq(cll__amx_selftest_emu(), 1);
  if (bf16)
    cr_assert_eq(cll__amx_bf16_selftest_emu(), 1);
  /* Bit for bit the VNNI kernels' results (the integer sums are exact and
   * the float steps the same), on 5 panels (pairs and an odd one) and 53
   * tokens (three whole tiles: a step of two, a step of one; then 5 on
   * VNNI). */
  static const uint32_t types[] = {CLL_TYPE_Q4_0, CLL_TYPE_Q8_0, CLL_TYPE_Q4_K, CLL_TYPE_Q5_K,
                                   CLL_TYPE_Q6_K};
  kc_rng r = {99};
  enum { ROWS = 5 * CLL_PACK_ROWS, T = 37 + 16 };
  for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
    const uint32_t t = types[ti];
    const int64_t n = 2 * 256;
    const size_t rb = cll_row_bytes(t, n), pb = k.pack_bytes[t](n, ROWS);
    uint8_t *w = malloc(rb * ROWS), *wp = aligned_alloc(64, (pb + 63) & ~(size_t)63);
    uint8_t *xq = malloc(ks_xq_stride(cll_type_info(t)->act_type, n) * T);
    float *x = malloc(sizeof(float) * n * T), *y0 = malloc(sizeof(float) * ROWS * T),
          *y1 = malloc(sizeof(float) * ROWS * T);
    size_t xs = 0;
    for (int row = 0; row < ROWS; row++)
      kc_random_blocks(t, w + row * rb, n, &r);
    ks_acts(t, n, T, x, xq, &xs, &r, 0);
    k.pack[t](w, rb, n, 0, ROWS / CLL_PACK_ROWS, wp);
    cll_matmul_args a = {.wtype = t,
                         .w = w,
                         .w_stride = rb,
                         .wp = wp,
                         .wp_rows = ROWS,
                         .n_in = n,
                         .r0 = 0,
                         .r1 = ROWS,
                         .x = x,
                         .x_stride = n,
                         .xq = xq,
                         .xq_stride = xs,
                         .n_tok = T,
                         .y_stride = ROWS};
    a.y = y0;
    k512->matmul_packed[t](&a, 0, ROWS / CLL_PACK_ROWS);
    a.y = y1;
    k.matmul_packed[t](&a, 0, ROWS / CLL_PACK_ROWS);
    cr_expect_eq(memcmp(y0, y1, sizeof(float) * ROWS * T), 0, "%s: AMX (modelled) != VNNI",
                 cll_type_info(t)->name);
    free(w), free(wp), free(xq), free(x), free(y0), free(y1);
  }
  printf("kernels: avx512 table with AMX tiles (modelled): ok; this CPU %s them\n",
         kc_avx512_has_amx() ? "runs" : "does not run");
#endif
}

/* CLLAMA_KERNELS=<variant>: the table base without an extension's
 * kernels where base exists, refused (as lacking) elsewhere. */
static void check_variant_init(const char *variant, const char *base) {
  const cll_kernels_config c = {.isa = variant};
  cll_err err = {0};
  const int has_base = cll_kernels_by_name(base) != NULL;
  const int rc = cll_kernels_init(&c, &err);
  if (has_base) {
    cr_assert_eq(rc, 0, "%s", err.msg);
    cr_assert_str_eq(cll_kernels_get()->isa, variant);
  } else {
    cr_assert_eq(rc, CLL_EUNSUPPORTED, "%s", err.msg);
    cr_assert_neq(strstr(err.msg, variant), NULL, "%s", err.msg);
  }
}

/* avx512-noamx: the avx512 table without the AMX tiles. */
Test(kernels, init_avx512_noamx) {
  check_variant_init("avx512-noamx", "avx512");
}

/* Criterion runs each test in its own process, so no table is chosen yet. */
Test(kernels, init_forces_reference) {
  const cll_kernels_config c = {.isa = "ref"};
  cll_err err = {0};
  cr_assert_eq(cll_kernels_init(&c, &err), 0, "%s", err.msg);
  cr_assert_str_eq(cll_kernels_get()->isa, "ref");
  cr_assert_eq(cll_kernels_init(&c, &err), CLL_EBUSY); /* once only */
}

Test(kernels, init_refuses_unknown_name) {
  const cll_kernels_config c = {.isa = "bogus"};
  cll_err err = {0};
  cr_assert_eq(cll_kernels_init(&c, &err), CLL_EINVAL);
  cr_assert_neq(strstr(err.msg, "CLLAMA_KERNELS=\"bogus\""), NULL, "%s", err.msg);
  cr_assert_neq(strstr(err.msg, "ref"), NULL, "%s", err.msg); /* says what exists */
}

Test(kernels, init_refuses_table_this_machine_lacks) {
#if defined(__x86_64__)
  const char *absent = "neon";
#else
  const char *absent = "avx2";
#endif
  const cll_kernels_config c = {.isa = absent};
  cll_err err = {0};
  cr_assert_eq(cll_kernels_init(&c, &err), CLL_EUNSUPPORTED);
  cr_assert_neq(strstr(err.msg, absent), NULL, "%s", err.msg);
}

/* The extension-less variant of a table this build lacks is refused as
 * lacking, not as an unknown name. */
Test(kernels, init_refuses_variant_this_build_lacks) {
#if defined(__x86_64__)
  const char *absent = "neon-nodot";
#else
  const char *absent = "avx2-novnni";
#endif
  const cll_kernels_config c = {.isa = absent};
  cll_err err = {0};
  cr_assert_eq(cll_kernels_init(&c, &err), CLL_EUNSUPPORTED);
  cr_assert_neq(strstr(err.msg, "this build lacks it"), NULL, "%s", err.msg);
}

/* avx2-novnni: the avx2 table without its AVX-VNNI kernels. */
Test(kernels, init_avx2_novnni) {
  check_variant_init("avx2-novnni", "avx2");
}

Test(kernels, init_default_repacks) {
  cll_err err = {0};
  cr_assert_eq(cll_kernels_init(NULL, &err), 0, "%s", err.msg);
  cr_assert(cll_kernels_repack());
}

Test(kernels, init_no_repack) {
  const cll_kernels_config c = {.no_repack = true};
  cll_err err = {0};
  cr_assert_eq(cll_kernels_init(&c, &err), 0, "%s", err.msg);
  cr_assert(!cll_kernels_repack());
}
