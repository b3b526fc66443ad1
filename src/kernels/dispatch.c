/* dispatch.c — picks the kernel table for this CPU, once.
 *
 * DESIGN: each ISA file (avx2.c, avx512.c, neon.c) defines a const table
 * cll__kernels_<isa> whose NULL entries mean "use the reference". On first
 * use (pthread_once) we build one complete table per ISA that this build
 * contains and this CPU supports, by copying the ISA table and filling its
 * holes from cll__kernels_ref. After that the tables are immutable and may
 * be read from any thread without locks.
 *
 * Choice: avx512 > avx2 > ref on x86-64, neon on aarch64.
 * cll_kernels_init (matmul.c; main calls it with the validated
 * CLLAMA_KERNELS) can force one; a name this build or CPU lacks is refused.
 * This file is the only place that looks at the instruction set: matmul.c
 * chooses its paths by which table slots are filled.
 *
 * Extensions within a table: the avx512 table requires F/BW/VL/DQ + VNNI;
 * its kernels that need AVX512_BF16 (cll__kernels_avx512_bf16) are added
 * to it only where CPUID reports that too. The table without them stays
 * reachable as cll_kernels_by_name("avx512-nobf16"), for the tests (it
 * is what a CPU without AVX512_BF16 runs); it is never chosen. In the
 * same way the avx2 table requires AVX2 + FMA + F16C only, and gets its
 * packed products on AVX-VNNI (cll__kernels_avx2_vnni) where CPUID has
 * that; the table without them is "avx2-novnni" (what Zen 2/3 and Intel
 * before Alder Lake run), for the tests and, through CLLAMA_KERNELS, for
 * benchmarks on a CPU that has AVX-VNNI. On AArch64 the neon table is
 * neon.c built with SDOT (cll__kernels_neon_dotprod) where the CPU
 * reports dotprod, else neon.c as the compiler's default target builds
 * it; the latter stays reachable as "neon-nodot". The avx512 table's
 * packed Q4_0, Q8_0, Q4_K, Q5_K and Q6_K products run on AMX tiles
 * (cll__kernels_amx) where the CPU has AMX-TILE and AMX-INT8, Linux
 * grants the tile state (ARCH_REQ_XCOMP_PERM) and the tiles pass
 * cll__amx_selftest; its BF16 ones (cll__kernels_amx_bf16) where it also
 * has AMX-BF16 and AVX512_BF16 and cll__amx_bf16_selftest passes. The
 * table without them is "avx512-noamx" (what any other AVX-512 CPU runs,
 * and a way to compare on an AMX one). */
#include "kernels/matmul_internal.h"
#include "kernels/quant.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ISA_REF, ISA_AVX2, ISA_AVX512, ISA_NEON, ISA_N };

static const char *const isa_names[ISA_N] = {"ref", "avx2", "avx512", "neon"};

static cll_kernels tables[ISA_N];
static bool have[ISA_N];
/* The table in use: the best this CPU has, or the one CLLAMA_KERNELS
 * names (an extension-less variant included). */
static const cll_kernels *chosen;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__) || defined(__i386__)
/* F16C (CPUID 1, ECX bit 29) and AVX512-VNNI (CPUID 7, ECX bit 11) read
 * directly: clang's __builtin_cpu_supports knows neither name. The OS
 * support for the YMM/ZMM state is covered by the avx2/avx512f checks. */
static bool has_f16c(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && ((c >> 29) & 1);
}

static bool has_avx512_vnni(void) {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 11) & 1);
}

/* AVX512_BF16: CPUID 7 subleaf 1, EAX bit 5 (Zen 4/5, Cooper Lake,
 * Sapphire Rapids and later). */
static bool has_avx512_bf16(void) {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
}

/* AVX-VNNI (vpdpbusd on ymm without AVX-512): CPUID 7 subleaf 1, EAX
 * bit 4. */
static bool has_avx_vnni(void) {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1);
}

/* AMX: CPUID 7, EDX bit 24 (AMX-TILE), 25 (AMX-INT8), 22 (AMX-BF16). */
static bool has_amx(int bit) {
  unsigned a, b, c, d;
  return __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((d >> bit) & 1);
}

/* AMX-TILE, and on Linux the tile data state granted to this process:
 * the kernel enables it per process on request (ARCH_REQ_XCOMP_PERM,
 * XFEATURE_XTILEDATA = 18), and the first tile instruction without it is
 * a SIGILL. The grant covers every thread of the process, those started
 * later included. */
static bool amx_granted(void) {
  if (!has_amx(24))
    return false;
#if defined(__linux__) && defined(__x86_64__)
  enum { GET_XCOMP_SUPP = 0x1021, REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18 };
  unsigned long supported = 0;
  if (syscall(SYS_arch_prctl, GET_XCOMP_SUPP, &supported) != 0 || !(supported & (1UL << XTILEDATA)))
    return false;
  return syscall(SYS_arch_prctl, REQ_XCOMP_PERM, XTILEDATA) == 0;
#else
  return false;
#endif
}
#endif

#if defined(__aarch64__)
/* The dotprod extension (SDOT/UDOT): optional in ARMv8.2, mandatory from
 * ARMv8.4. */
static bool has_dotprod(void) {
#if defined(__linux__)
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1UL << 20)
#endif
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__APPLE__)
  int v = 0;
  size_t len = sizeof v;
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &len, NULL, 0) == 0 && v != 0;
#else
  return false;
#endif
}
#endif

static bool cpu_has(int isa) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
  if (isa == ISA_AVX2)
    return avx2;
  /* avx512.c is built with VNNI and BF16 enabled; it must guard any use of
   * the BF16 instructions itself, so only the common subset is required. */
  if (isa == ISA_AVX512)
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           has_avx512_vnni();
  return false;
#elif defined(__aarch64__)
  return isa == ISA_NEON; /* Advanced SIMD is mandatory on AArch64 */
#else
  (void)isa;
  return false;
#endif
}

/* BLIS's configuration for this CPU, as BLIS 0.9 reads BLIS_ARCH_TYPE (an
 * arch_t number; see matmul.c, THE BLIS TRAP), or NULL to let BLIS
 * detect. skx is the fastest for the prefill shapes here (bench/blis). */
const char *cll__kernels_blis_arch_type(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
    return "0"; /* BLIS_ARCH_SKX */
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return __builtin_cpu_is("amd") ? "6" /* BLIS_ARCH_ZEN3 */ : "3" /* BLIS_ARCH_HASWELL */;
#endif
  return NULL;
}

static const cll_kernels *isa_table(int isa) {
  switch (isa) {
  case ISA_REF:
    return &cll__kernels_ref;
#if defined(__x86_64__)
  case ISA_AVX2:
    return &cll__kernels_avx2;
  case ISA_AVX512:
    return &cll__kernels_avx512;
#endif
#if defined(__aarch64__)
  case ISA_NEON:
    return &cll__kernels_neon;
#endif
  default:
    return NULL;
  }
}

static void fill(cll_kernels *dst, const cll_kernels *src, const cll_kernels *ref) {
  *dst = *src;
  for (int t = 0; t < CLL_TYPE_COUNT; t++) {
    if (!dst->dequant_row[t])
      dst->dequant_row[t] = ref->dequant_row[t];
    if (!dst->quantize_row[t])
      dst->quantize_row[t] = ref->quantize_row[t];
    if (!dst->vec_dot[t])
      dst->vec_dot[t] = ref->vec_dot[t];
  }
}

#if defined(__x86_64__)
/* Copies the pack / pack_bytes / matmul_packed slots that ext fills into
 * dst (an extension's kernels: they come as a set). */
static void add_packed(cll_kernels *dst, const cll_kernels *ext) {
  for (int t = 0; t < CLL_TYPE_COUNT; t++)
    if (ext->pack[t] != NULL) {
      dst->pack[t] = ext->pack[t];
      dst->pack_bytes[t] = ext->pack_bytes[t];
      dst->matmul_packed[t] = ext->matmul_packed[t];
    }
}
#endif

/* The avx512 table without its AVX512_BF16 kernels (tests), the avx2
 * table without its AVX-VNNI kernels (tests, benchmarks), the neon table
 * without SDOT. */
static cll_kernels avx512_nobf16, avx512_noamx, avx2_novnni, neon_nodot;
static bool have_avx512_nobf16, have_avx512_noamx, have_avx2_novnni, have_neon_nodot;

static char available[64];

static void init(void) {
  for (int i = 0; i < ISA_N; i++) {
    const cll_kernels *src = isa_table(i);
    if (src == NULL || (i != ISA_REF && !cpu_has(i)))
      continue;
    fill(&tables[i], src, &cll__kernels_ref);
    tables[i].isa = isa_names[i];
#if defined(__x86_64__)
    if (i == ISA_AVX2) {
      avx2_novnni = tables[i];
      avx2_novnni.isa = "avx2-novnni";
      have_avx2_novnni = true;
      if (has_avx_vnni())
        add_packed(&tables[i], &cll__kernels_avx2_vnni);
    }
    if (i == ISA_AVX512) {
      avx512_nobf16 = tables[i];
      avx512_nobf16.isa = "avx512-nobf16";
      have_avx512_nobf16 = true;
      if (has_avx512_bf16())
        add_packed(&tables[i], &cll__kernels_avx512_bf16);
      avx512_noamx = tables[i];
      avx512_noamx.isa = "avx512-noamx";
      have_avx512_noamx = true;
      if (amx_granted()) {
        if (has_amx(25) && cll__amx_selftest())
          add_packed(&tables[i], &cll__kernels_amx);
        else if (has_amx(25))
          fprintf(stderr, "cllama: the AMX int8 tiles disagree with the VNNI kernels in the "
                          "self-test; using VNNI\n");
        if (has_amx(22) && has_avx512_bf16() && cll__amx_bf16_selftest())
          add_packed(&tables[i], &cll__kernels_amx_bf16);
        else if (has_amx(22) && has_avx512_bf16())
          fprintf(stderr, "cllama: the AMX bf16 tiles disagree with the AVX512_BF16 kernels in "
                          "the self-test; using AVX512_BF16\n");
      }
    }
#endif
#if defined(__aarch64__)
    if (i == ISA_NEON) {
      neon_nodot = tables[i];
      neon_nodot.isa = "neon-nodot";
      have_neon_nodot = true;
      if (has_dotprod()) {
        fill(&tables[i], &cll__kernels_neon_dotprod, &cll__kernels_ref);
        tables[i].isa = isa_names[i];
      }
    }
#endif
    have[i] = true;
    size_t len = strlen(available);
    snprintf(available + len, sizeof available - len, "%s%s", len ? " " : "", isa_names[i]);
  }
  int best = ISA_REF;
  for (int i = ISA_AVX2; i < ISA_N; i++)
    if (have[i])
      best = i; /* enum order = preference order */
  chosen = &tables[best];
}

int cll__kernels_select(const char *isa, cll_err *err) {
  pthread_once(&once, init);
  if (isa == NULL || isa[0] == '\0')
    return 0;
  /* The variants without an extension: where the base table exists. */
  const struct {
    const char *name;
    int base;
    const cll_kernels *table;
    bool have;
  } variants[] = {{"avx2-novnni", ISA_AVX2, &avx2_novnni, have_avx2_novnni},
                  {"avx512-noamx", ISA_AVX512, &avx512_noamx, have_avx512_noamx},
                  {"neon-nodot", ISA_NEON, &neon_nodot, have_neon_nodot}};
  for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
    if (strcmp(isa, variants[v].name) != 0)
      continue;
    if (!variants[v].have)
      return cll_err_set(err, CLL_EUNSUPPORTED,
                         "CLLAMA_KERNELS=\"%s\": this %s lacks it (available: %s)", isa,
                         isa_table(variants[v].base) == NULL ? "build" : "CPU", available);
    chosen = variants[v].table;
    return 0;
  }
  int forced = -1;
  for (int i = 0; i < ISA_N; i++)
    if (strcmp(isa, isa_names[i]) == 0)
      forced = i;
  if (forced < 0)
    return cll_err_set(err, CLL_EINVAL,
                       "CLLAMA_KERNELS=\"%s\": expected one of ref, avx2, avx2-novnni, avx512, "
                       "avx512-noamx, neon, neon-nodot (this CPU: %s)",
                       isa, available);
  if (!have[forced])
    return cll_err_set(err, CLL_EUNSUPPORTED,
                       "CLLAMA_KERNELS=\"%s\": this %s lacks it (available: %s)", isa,
                       isa_table(forced) == NULL ? "build" : "CPU", available);
  chosen = &tables[forced];
  return 0;
}

const char *cll_kernels_available(void) {
  pthread_once(&once, init);
  return available;
}

const cll_kernels *cll_kernels_get(void) {
  pthread_once(&once, init);
  return chosen;
}

const cll_kernels *cll_kernels_by_name(const char *isa) {
  pthread_once(&once, init);
  if (isa != NULL && strcmp(isa, "avx512-nobf16") == 0)
    return have_avx512_nobf16 ? &avx512_nobf16 : NULL;
  if (isa != NULL && strcmp(isa, "avx512-noamx") == 0)
    return have_avx512_noamx ? &avx512_noamx : NULL;
  if (isa != NULL && strcmp(isa, "avx2-novnni") == 0)
    return have_avx2_novnni ? &avx2_novnni : NULL;
  if (isa != NULL && strcmp(isa, "neon-nodot") == 0)
    return have_neon_nodot ? &neon_nodot : NULL;
  for (int i = 0; isa && i < ISA_N; i++)
    if (strcmp(isa, isa_names[i]) == 0)
      return have[i] ? &tables[i] : NULL;
  return NULL;
}

bool cll_kernels_uses_amx(const cll_kernels *k) {
#if defined(__x86_64__)
  for (int t = 0; k != NULL && t < CLL_TYPE_COUNT; t++)
    if (k->matmul_packed[t] != NULL &&
        (k->matmul_packed[t] == cll__kernels_amx.matmul_packed[t] ||
         k->matmul_packed[t] == cll__kernels_amx_bf16.matmul_packed[t]))
      return true;
#else
  (void)k;
#endif
  return false;
}

size_t cll__kernels_gemm_scratch_max(int64_t n_in) {
  pthread_once(&once, init);
  size_t need = 0;
  for (int i = 0; i < ISA_N; i++)
    for (int t = 0; have[i] && t < CLL_TYPE_COUNT; t++)
      if (tables[i].gemm[t] != NULL && tables[i].gemm_scratch_bytes[t] != NULL) {
        const size_t b = tables[i].gemm_scratch_bytes[t](n_in);
        if (b > need)
          need = b;
      }
  return need;
}
