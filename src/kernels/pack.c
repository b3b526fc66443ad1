/* pack.c — Q4_0, Q8_0, Q4_K, Q5_K and Q6_K matrices repacked at load into
 * panels of 16 rows (CLL_PACK_ROWS): the pack and pack_bytes slots of
 * every table that reads these panels (avx512: avx512_packed.c; avx2:
 * x86_packed.h). Plain C, compiled without ISA flags, so the AVX2 table
 * never runs an instruction its CPU may lack; the loops copy 4-byte
 * dwords, and packing costs little next to reading the file.
 *
 * The layouts (scalar twins in ref_matmul.c; test/kernels_checks.h
 * compares every table's pack output with them byte for byte). Each
 * 64-byte group holds 4 consecutive quant bytes of each of the 16 rows
 * (dword j = row j), so one 512-bit vector, or two 256-bit ones (rows
 * 0-7, rows 8-15), multiply 4 activation bytes into 16 rows at once:
 *
 * Q4_0, panel p (rows 16p..16p+15), nb blocks per row:
 *   quants: nb x 256 bytes. Block i is 4 groups of 64 bytes; dword j of
 *           group g holds bytes 4g..4g+3 of row j's qs, so its low
 *           nibbles are elements 4g..4g+3 and its high nibbles elements
 *           16+4g..16+4g+3;
 *   scales: nb x 16 fp16, block-major (d[i * 16 + j]).
 * Panels are rounded up to 64 bytes, so every quant vector is aligned.
 * The packed matrix is the same size as the GGUF one (18 bytes a block).
 *
 * Q8_0: as Q4_0 with 8 groups a block (512 bytes), dword j of group g =
 *   bytes 4g..4g+3 of row j's qs, each byte + 128 (so unsigned, for
 *   vpdpbusd; the offset leaves as 128 * sum(y)). 34 bytes a block.
 *
 * Q4_K, per super-block of a panel (PK4_SB = 2368 bytes, 37 cache lines):
 *   quants: 4 chunks c of 8 groups: dword j of group (c, g) = bytes
 *           32c + 4g .. 32c + 4g + 3 of row j's qs (low nibbles: elements
 *           64c + 4g.., sub-block 2c; high nibbles: 64c + 32 + 4g..,
 *           sub-block 2c + 1), 2048 bytes;
 *   scales: 8 x 16 bytes, sc[s * 16 + j] = 6-bit scale of sub-block s of
 *           row j;
 *   mins:   4 x 32 bytes, mn[p * 32 + 2j + e] = min of sub-block 2p + e;
 *   d, dmin: 16 fp16 each.
 *   (GGUF: 16 x 144 = 2304 bytes; 3% more.)
 *
 * Q5_K: as Q4_K, with the fifth bits between the quants and the scales: 8
 *   groups at 2048, dword j of group g = qh[4g..4g+3] of row j (bit 2c of
 *   a byte: the element of chunk c's low nibble, bit 2c + 1: its high
 *   nibble); scales at 2560, mins at 2688, d at 2816, dmin at 2848. 2880
 *   bytes a super-block (GGUF: 2816).
 *
 * Q6_K, per super-block (PK6_SB = 3392 bytes, 53 cache lines; GGUF: 16 x
 * 210 = 3360):
 *   ql: 4 chunks c of 8 groups at 0: dword j of group (c, g) = ql[32c +
 *       4g .. 32c + 4g + 3] of row j. With n = c / 2 and e = c % 2, the
 *       low nibbles are elements 128n + 32e + 4g.. and the high nibbles
 *       128n + 64 + 32e + 4g..;
 *   qh: 16 groups at 2048: dword j of group v = qh[4v .. 4v + 3] of row
 *       j; for chunk c, group 8n + g holds the top 2 bits of the low
 *       nibbles' elements at bits 2e, 2e + 1 and of the high nibbles' at
 *       4 + 2e, 5 + 2e;
 *   scales: 8 x 32 bytes at PK6_SC, sc[p * 32 + 2j + k] = int8 scale 2p + k
 *       of row j (int16 pairs after one sign extension);
 *   d: 16 fp16 at PK6_D; 32 zero bytes to the next line. */
#include "kernels/packed.h"

#include <string.h>

size_t cll__pack_bytes_q4_0(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * p4_panel_bytes(n_in / SB_QK);
}

size_t cll__pack_bytes_q8_0(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * p8_panel_bytes(n_in / SB_QK);
}

/* Q4_0 (q4) or Q8_0 rows into panels p0..p1: the fp16 scale and the qs
 * bytes in dwords (Q8_0: each byte + 128, xor 0x80 on 4 bytes at once). */
static void pack_d_qs(const int q4, const void *w, size_t w_stride, int64_t n_in, int64_t p0,
                      int64_t p1, void *dst) {
  const int64_t nb = n_in / SB_QK;
  const size_t bb = q4 ? sizeof(sb_q4_0) : sizeof(sb_q8_0), qb = PQ_BYTES(q4);
  const size_t pb = q4 ? p4_panel_bytes(nb) : p8_panel_bytes(nb);
  const uint32_t bias = q4 ? 0u : 0x80808080u;
  for (int64_t p = p0; p < p1; p++) {
    uint8_t *q = (uint8_t *)dst + (size_t)p * pb;
    uint16_t *d = (uint16_t *)(q + (size_t)nb * qb);
    for (int j = 0; j < CLL_PACK_ROWS; j++) {
      const char *row = (const char *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride;
      for (int64_t i = 0; i < nb; i++) {
        const char *b = row + (size_t)i * bb; /* {uint16_t d; qs[]} */
        memcpy(&d[i * CLL_PACK_ROWS + j], b, 2);
        for (int g = 0; g < (int)(qb / 64); g++) {
          const uint32_t v = (uint32_t)ld32(b + 2 + 4 * g) ^ bias;
          memcpy(q + (size_t)i * qb + 64 * g + 4 * j, &v, 4);
        }
      }
    }
  }
}

void cll__pack_q4_0(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst) {
  pack_d_qs(1, w, w_stride, n_in, p0, p1, dst);
}

void cll__pack_q8_0(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst) {
  pack_d_qs(0, w, w_stride, n_in, p0, p1, dst);
}

size_t cll__pack_bytes_q4_K(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * (size_t)(n_in / SB_QK_K) * PK4_SB;
}

void cll__pack_q4_K(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst) {
  const int64_t nsb = n_in / SB_QK_K;
  for (int64_t p = p0; p < p1; p++) {
    uint8_t *panel = (uint8_t *)dst + (size_t)p * (size_t)nsb * PK4_SB;
    for (int j = 0; j < CLL_PACK_ROWS; j++) {
      const sb_q4_K *row =
          (const sb_q4_K *)((const char *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride);
      for (int64_t i = 0; i < nsb; i++) {
        uint8_t *q = panel + (size_t)i * PK4_SB;
        uint8_t *sc = q + 2048, *mn = sc + 128;
        uint16_t *d = (uint16_t *)(mn + 128);
        for (int c = 0; c < 4; c++)
          for (int g = 0; g < 8; g++)
            memcpy(q + (c * 8 + g) * 64 + 4 * j, row[i].qs + 32 * c + 4 * g, 4);
        for (int s = 0; s < 8; s++) {
          uint8_t scale, min;
          sb_scale_min_k4(s, row[i].scales, &scale, &min);
          sc[s * 16 + j] = scale;
          mn[(s / 2) * 32 + 2 * j + (s & 1)] = min;
        }
        d[j] = row[i].d;
        d[16 + j] = row[i].dmin;
      }
    }
  }
}

size_t cll__pack_bytes_q5_K(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * (size_t)(n_in / SB_QK_K) * PK5_SB;
}

void cll__pack_q5_K(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst) {
  const int64_t nsb = n_in / SB_QK_K;
  for (int64_t p = p0; p < p1; p++)
    for (int j = 0; j < CLL_PACK_ROWS; j++) {
      const sb_q5_K *row =
          (const sb_q5_K *)((const char *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride);
      for (int64_t i = 0; i < nsb; i++) {
        uint8_t *q = (uint8_t *)dst + ((size_t)p * (size_t)nsb + (size_t)i) * PK5_SB;
        for (int c = 0; c < 4; c++)
          for (int g = 0; g < 8; g++)
            memcpy(q + (c * 8 + g) * 64 + 4 * j, row[i].qs + 32 * c + 4 * g, 4);
        for (int g = 0; g < 8; g++)
          memcpy(q + 2048 + g * 64 + 4 * j, row[i].qh + 4 * g, 4);
        for (int s = 0; s < 8; s++) {
          uint8_t scale, min;
          sb_scale_min_k4(s, row[i].scales, &scale, &min);
          q[2560 + s * 16 + j] = scale;
          q[2688 + (s / 2) * 32 + 2 * j + (s & 1)] = min;
        }
        memcpy(q + 2816 + 2 * j, &row[i].d, 2);
        memcpy(q + 2848 + 2 * j, &row[i].dmin, 2);
      }
    }
}

size_t cll__pack_bytes_q6_K(int64_t n_in, int64_t n_rows) {
  return (size_t)(n_rows / CLL_PACK_ROWS) * (size_t)(n_in / SB_QK_K) * PK6_SB;
}

void cll__pack_q6_K(const void *w, size_t w_stride, int64_t n_in, int64_t p0, int64_t p1,
                    void *dst) {
  const int64_t nsb = n_in / SB_QK_K;
  for (int64_t p = p0; p < p1; p++)
    for (int j = 0; j < CLL_PACK_ROWS; j++) {
      const sb_q6_K *row =
          (const sb_q6_K *)((const char *)w + (size_t)(p * CLL_PACK_ROWS + j) * w_stride);
      for (int64_t i = 0; i < nsb; i++) {
        uint8_t *q = (uint8_t *)dst + ((size_t)p * (size_t)nsb + (size_t)i) * PK6_SB;
        for (int g = 0; g < 32; g++)
          memcpy(q + g * 64 + 4 * j, row[i].ql + 4 * g, 4);
        for (int g = 0; g < 16; g++)
          memcpy(q + 2048 + g * 64 + 4 * j, row[i].qh + 4 * g, 4);
        for (int s = 0; s < 16; s++)
          q[PK6_SC + (s / 2) * 32 + 2 * j + (s & 1)] = (uint8_t)row[i].scales[s];
        memcpy(q + PK6_D + 2 * j, &row[i].d, 2);
        if (j == 0)
          memset(q + PK6_D + 32, 0, PK6_SB - PK6_D - 32);
      }
    }
}
