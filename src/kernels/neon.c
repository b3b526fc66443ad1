/* neon.c — AArch64 Advanced SIMD kernels (with the dotprod extension where
 * the compiler targets it). Compiled to nothing on other architectures.
 * Entries left NULL fall back to ref.c (dispatch.c). */
#include "kernels/quant.h"

#if defined(__aarch64__)

const cll_kernels cll__kernels_neon = {
    .isa = "neon",
};

#else
typedef int cll__neon_unused; /* ISO C wants a non-empty translation unit */
#endif
