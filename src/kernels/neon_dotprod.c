/* neon_dotprod.c — neon.c's kernels compiled with the dotprod extension
 * (the Makefile gives this file -march=armv8.2-a+dotprod on AArch64), as
 * the table cll__kernels_neon_dotprod: its 8-bit products use SDOT, 16
 * multiply-adds an instruction, where plain ARMv8-A needs two widening
 * multiplies and two pairwise adds for the same 16. dispatch.c uses it
 * for the neon table where the CPU reports dotprod (Linux: HWCAP_ASIMDDP;
 * macOS: hw.optional.arm.FEAT_DotProd). Compiled to nothing elsewhere. */
#if defined(__aarch64__)

#if !defined(__ARM_FEATURE_DOTPROD)
#error "neon_dotprod.c must be compiled with the dotprod extension (-march=armv8.2-a+dotprod)"
#endif

#define NEON_TABLE cll__kernels_neon_dotprod
#include "neon.c"

#else
typedef int cll__neon_dotprod_unused; /* ISO C wants a non-empty translation unit */
#endif
