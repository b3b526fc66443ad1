/* test_kernels.c — the kernel checks (kernels_checks.h) under Criterion.
 * The same checks run standalone for aarch64 under qemu: `make test-neon`. */
#include "kernels_checks.h"

#include <criterion/criterion.h>

Test(kernels, fp16_bf16_conversions) { cr_assert_eq(check_fp16(), 0); }

Test(kernels, type_table_and_dispatch) { cr_assert_eq(check_type_info(), 0); }

Test(kernels, ref_quantize_dequantize_error) {
  cr_assert_eq(check_roundtrip_table(cll_kernels_by_name("ref"), 1), 0);
}

Test(kernels, ref_vec_dot_matches_dequantized_dot) {
  cr_assert_eq(check_vec_dot_vs_dequant(cll_kernels_by_name("ref")), 0);
}

Test(kernels, simd_tables_match_ref) {
  int n = 0;
  cr_assert_eq(check_all_tables_vs_ref(&n), 0);
  if (n == 0) printf("kernels: no SIMD table on this CPU/build: only ref checked\n");
}

/* Criterion runs each test in its own process, so dispatch has not run yet. */
Test(kernels, env_forces_reference) {
  setenv("CLLAMA_KERNELS", "ref", 1);
  cr_assert_str_eq(cll_kernels_get()->isa, "ref");
}

Test(kernels, env_unknown_name_falls_back) {
  setenv("CLLAMA_KERNELS", "sse9", 1);
  const cll_kernels *k = cll_kernels_get();
  cr_assert_not_null(k);
  cr_assert_str_neq(k->isa, "sse9");
}
