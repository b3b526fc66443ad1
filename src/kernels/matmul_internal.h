/* matmul_internal.h — what matmul.c and dispatch.c tell each other, the
 * benchmarks and the tests (not part of the public kernels interface). */
#ifndef CLLAMA_KERNELS_MATMUL_INTERNAL_H
#define CLLAMA_KERNELS_MATMUL_INTERNAL_H

#include "cllama/kernels.h"

/* The BLIS configuration in use ("skx", "zen3", "generic", ...), after the
 * one-time BLIS set-up (borrowed, static). */
const char *cll__matmul_blis_arch(void);
/* Smallest token count that goes through the BLIS path (the measured
 * default, or what cll_kernels_init was given, for benchmarks). */
int cll__matmul_gemm_min_tok(void);
/* Benchmarks and tests only, not thread-safe: forces every later call onto
 * one path where it applies (1 fused dot, 2 BLIS, 3 int8 GEMM; 0 = choose
 * by size). cll_matmul_scratch_bytes then sizes for every path. */
void cll__matmul_force_path(int path);
/* Tests: the paths the calling thread's last cll_matmul took, as bits
 * 1 << path (1 fused dot, 2 BLIS, 3 int8 GEMM, 4 few-token kernel, 5 packed
 * panels), so a test can tell which kernel really ran. */
#define CLL__MATMUL_PACKED 5
unsigned cll__matmul_paths_ran(void);
/* dispatch.c, for cll_kernels_init: makes the named table the chosen one
 * (NULL or "": keep the automatic choice); CLL_EINVAL / CLL_EUNSUPPORTED
 * as cll_kernels_init. */
int cll__kernels_select(const char *isa, cll_err *err);
/* dispatch.c: BLIS_ARCH_TYPE for this CPU (matmul.c), or NULL. */
const char *cll__kernels_blis_arch_type(void);
/* dispatch.c: the most scratch any available table's int8 GEMM needs for
 * rows of n_in elements. */
size_t cll__kernels_gemm_scratch_max(int64_t n_in);
/* ref_matmul.c: the scalar twin of every optional slot of the tables
 * (vec_dot_rows, gemm, matmul_few, pack / matmul_packed with the same
 * packed layouts), for tests and benchmarks; never chosen by dispatch. */
extern const cll_kernels cll__kernels_generic;

#endif
