/* packed.h — the packed weight layouts that more than one kernel table
 * reads (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K panels of CLL_PACK_ROWS rows): their
 * sizes, and the pack functions of pack.c that write them. The layouts are
 * written down in pack.c and, scalar, in ref_matmul.c (the twins the tests
 * compare every table's pack output with, byte for byte). The avx512 table
 * (avx512_packed.c) reads a 64-byte group as one zmm register, the avx2
 * table (x86_packed.h) as two ymm registers: rows 0-7 and rows 8-15.
 *
 * pack.c is compiled without ISA flags, so any table may point at it. */
#ifndef CLLAMA_KERNELS_PACKED_H
#define CLLAMA_KERNELS_PACKED_H

#include "kernels/simd.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Quant bytes of one block of a Q4_0 (q4) or Q8_0 panel: 256 or 512. */
#define PQ_BYTES(q4) ((q4) ? 256 : 512)

/* Bytes of one Q4_0 / Q8_0 panel of nb blocks a row, rounded up to 64 so
 * every quant vector is aligned. */
static inline size_t p4_panel_bytes(int64_t nb) {
  return ((size_t)nb * (CLL_PACK_ROWS * sizeof(sb_q4_0)) + 63) & ~(size_t)63;
}
static inline size_t p8_panel_bytes(int64_t nb) {
  return ((size_t)nb * (CLL_PACK_ROWS * sizeof(sb_q8_0)) + 63) & ~(size_t)63;
}

#define PK4_SB 2368 /* bytes of one super-block of a Q4_K panel */
#define PK5_SB 2880 /* the same for Q5_K */
#define PK6_SB 3392 /* the same for Q6_K */
#define PK6_SC 3072 /* where a Q6_K super-block's scales start */
#define PK6_D 3328  /* where its d start */

size_t cll__pack_bytes_q4_0(int64_t n_in, int64_t n_rows);
void cll__pack_q4_0(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst);
size_t cll__pack_bytes_q8_0(int64_t n_in, int64_t n_rows);
void cll__pack_q8_0(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst);
size_t cll__pack_bytes_q4_K(int64_t n_in, int64_t n_rows);
void cll__pack_q4_K(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst);
size_t cll__pack_bytes_q5_K(int64_t n_in, int64_t n_rows);
void cll__pack_q5_K(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst);
size_t cll__pack_bytes_q6_K(int64_t n_in, int64_t n_rows);
void cll__pack_q6_K(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst);

/* ---------------------------------------------------------------- tiling helpers
 * of the kernels that read panels (packed at load or per call), any ISA. */

/* Tokens per chunk of the int8 kernels: a chunk's activations stay in L2
 * while the weight panels pass over them. */
#define TOK_CHUNK 64

static inline int32_t ld32(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Tiles of at most max_t tokens over [tc, te), as even as possible (41
 * by 8: 7 7 7 7 7 6), so no tile is a lone token when several share. */
#define FOR_TILES(tc, te, max_t, t0, t1)                                                           \
  for (int64_t n_t_ = ((te) - (tc) + (max_t)-1) / (max_t), k_ = 0; k_ < n_t_; k_++)                \
    for (int64_t t0 = (tc) + ((te) - (tc)) * k_ / n_t_,                                            \
                 t1 = (tc) + ((te) - (tc)) * (k_ + 1) / n_t_, once_ = 1;                           \
         once_; once_ = 0)

/* switch (n) calling F(k, ...) for the tile size n, with k a constant, so
 * the always_inline tile functions get one unrolled copy per size:
 * SWITCH_TILES8 for n in 1..8, SWITCH_TILES7 1..7 (the remainder after
 * whole tiles of 8), SWITCH_TILES4 1..4, SWITCH_TILES3 1..3. */
#define TILE_CASE_(k, F, ...)                                                                      \
  case k:                                                                                          \
    F(k, __VA_ARGS__);                                                                             \
    break;
#define TILE_CASES_3_1_(F, ...)                                                                    \
  TILE_CASE_(3, F, __VA_ARGS__) TILE_CASE_(2, F, __VA_ARGS__) TILE_CASE_(1, F, __VA_ARGS__)
#define TILE_CASES_7_4_(F, ...)                                                                    \
  TILE_CASE_(7, F, __VA_ARGS__)                                                                    \
  TILE_CASE_(6, F, __VA_ARGS__) TILE_CASE_(5, F, __VA_ARGS__) TILE_CASE_(4, F, __VA_ARGS__)
#define SWITCH_TILES3(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }
#define SWITCH_TILES4(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASE_(4, F, __VA_ARGS__)                                                                  \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }
#define SWITCH_TILES7(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASES_7_4_(F, __VA_ARGS__)                                                                \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }
#define SWITCH_TILES8(n, F, ...)                                                                   \
  switch (n) {                                                                                     \
    TILE_CASE_(8, F, __VA_ARGS__)                                                                  \
    TILE_CASES_7_4_(F, __VA_ARGS__)                                                                \
    TILE_CASES_3_1_(F, __VA_ARGS__)                                                                \
  default:                                                                                         \
    break;                                                                                         \
  }

#endif
