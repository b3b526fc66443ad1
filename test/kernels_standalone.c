/* kernels_standalone.c — runs the kernel checks without Criterion, so they
 * can be cross-compiled for aarch64 and run under qemu (`make test-neon`).
 * Exit status 0 when every check passes. */
#include "kernels_checks.h"

int main(void) {
  int f = 0, n = 0;
  f += check_fp16();
  f += check_type_info();
  f += check_roundtrip_table(cll_kernels_by_name("ref"), 0);
  f += check_vec_dot_vs_dequant(cll_kernels_by_name("ref"));
  int twins = 0;
  f += check_slots_vs_generic(&cll__kernels_generic, &twins);
  f += check_all_tables_vs_ref(&n);
  f += check_neon_dispatch();
  printf("kernels standalone (%s, %d SIMD table%s): %s\n", cll_kernels_get()->isa, n,
         n == 1 ? "" : "s", f ? "FAILED" : "ok");
  return f ? 1 : 0;
}
