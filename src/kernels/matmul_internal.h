/* matmul_internal.h — what matmul.c tells the benchmarks and tests about
 * its choices (not part of the public kernels interface). */
#ifndef CLLAMA_KERNELS_MATMUL_INTERNAL_H
#define CLLAMA_KERNELS_MATMUL_INTERNAL_H

/* The BLIS configuration in use ("skx", "zen3", "generic", ...), after the
 * one-time BLIS set-up (borrowed, static). */
const char *cll__matmul_blis_arch(void);
/* Smallest token count that goes through the BLIS path (environment
 * CLLAMA_GEMM_MIN_TOK overrides the measured default, for benchmarks). */
int cll__matmul_gemm_min_tok(void);
/* Benchmarks and tests only, not thread-safe: forces every later call onto
 * one path where it applies (1 fused dot, 2 BLIS, 3 int8 GEMM; 0 = choose
 * by size). cll_matmul_scratch_bytes then sizes for every path. */
void cll__matmul_force_path(int path);

#endif
