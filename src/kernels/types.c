/* types.c — the ggml type table and the scalar fp16/bf16 conversions.
 *
 * The table is static and immutable; every function here is pure and may be
 * called from any thread. The conversions are exact bit manipulations (no
 * compiler half-float support needed) with round-to-nearest-even. */
#include "kernels/quant.h"

#include <string.h>

static const struct cll_type_info type_table[CLL_TYPE_COUNT] = {
    [CLL_TYPE_F32] = {"F32", 1, 4, CLL_TYPE_F32},
    [CLL_TYPE_F16] = {"F16", 1, 2, CLL_TYPE_F32},
    [CLL_TYPE_BF16] = {"BF16", 1, 2, CLL_TYPE_F32},
    [CLL_TYPE_Q4_0] = {"Q4_0", CLL_QK4_0, sizeof(cll_block_q4_0), CLL_TYPE_Q8_0},
    [CLL_TYPE_Q4_1] = {"Q4_1", CLL_QK4_1, sizeof(cll_block_q4_1), CLL_TYPE_Q8_0},
    [CLL_TYPE_Q5_0] = {"Q5_0", CLL_QK5_0, sizeof(cll_block_q5_0), CLL_TYPE_Q8_0},
    [CLL_TYPE_Q5_1] = {"Q5_1", CLL_QK5_1, sizeof(cll_block_q5_1), CLL_TYPE_Q8_0},
    [CLL_TYPE_Q8_0] = {"Q8_0", CLL_QK8_0, sizeof(cll_block_q8_0), CLL_TYPE_Q8_0},
    [CLL_TYPE_Q8_1] = {"Q8_1", CLL_QK8_1, sizeof(cll_block_q8_1), CLL_TYPE_Q8_1},
    [CLL_TYPE_Q2_K] = {"Q2_K", CLL_QK_K, sizeof(cll_block_q2_K), CLL_TYPE_Q8_K},
    [CLL_TYPE_Q3_K] = {"Q3_K", CLL_QK_K, sizeof(cll_block_q3_K), CLL_TYPE_Q8_K},
    [CLL_TYPE_Q4_K] = {"Q4_K", CLL_QK_K, sizeof(cll_block_q4_K), CLL_TYPE_Q8_K},
    [CLL_TYPE_Q5_K] = {"Q5_K", CLL_QK_K, sizeof(cll_block_q5_K), CLL_TYPE_Q8_K},
    [CLL_TYPE_Q6_K] = {"Q6_K", CLL_QK_K, sizeof(cll_block_q6_K), CLL_TYPE_Q8_K},
    [CLL_TYPE_Q8_K] = {"Q8_K", CLL_QK_K, sizeof(cll_block_q8_K), CLL_TYPE_Q8_K},
};

const struct cll_type_info *cll_type_info(uint32_t type) {
  if (type >= CLL_TYPE_COUNT || type_table[type].name == NULL)
    return NULL;
  return &type_table[type];
}

size_t cll_row_bytes(uint32_t type, int64_t n) {
  const struct cll_type_info *ti = cll_type_info(type);
  if (ti == NULL || n < 0 || n % ti->block_elems != 0)
    return 0;
  /* n is bounded by callers (tensor shapes checked by gguf.c); guard the
   * multiplication anyway so a wild n cannot wrap. */
  uint64_t blocks = (uint64_t)n / ti->block_elems;
  if (blocks > SIZE_MAX / ti->block_bytes)
    return 0;
  return (size_t)blocks * ti->block_bytes;
}

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

float cll_fp16_to_fp32(uint16_t h) {
  return cll__fp16_to_fp32(h);
}

uint16_t cll_fp32_to_fp16(float f) {
  uint32_t u = f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a >= 0x7F800000u) /* inf or NaN (keep NaN quiet and non-zero) */
    return (uint16_t)(sign | 0x7C00 | (a > 0x7F800000u ? 0x200 | ((a >> 13) & 0x3FF) : 0));
  if (a >= 0x477FF000u)
    return (uint16_t)(sign | 0x7C00); /* rounds to >= 65536: inf */
  if (a < 0x38800000u) {
    /* Result is subnormal (or zero): value / 2^-24, rounded to nearest even. */
    if (a < 0x33000000u)
      return sign; /* below half the smallest subnormal */
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126 - e; /* 14..24: value = m * 2^(e-150) = (m >> shift) * 2^-24 */
    uint32_t q = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1)))
      q++;
    return (uint16_t)(sign | q);
  }
  /* Normal: rebias the exponent and round the mantissa (a carry into the
   * exponent is the correct result, including up to inf). */
  uint32_t r = a - 0x38000000u; /* exponent 127 -> 15 */
  uint32_t q = r >> 13;
  uint32_t rem = r & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1)))
    q++;
  return (uint16_t)(sign | q);
}

float cll_bf16_to_fp32(uint16_t h) {
  return cll__bf16_to_fp32(h);
}

uint16_t cll_fp32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u)
    return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
  u += 0x7FFFu + ((u >> 16) & 1);
  return (uint16_t)(u >> 16);
}
