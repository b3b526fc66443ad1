/* avx2_vnni.c — the avx2 table's packed products on AVX-VNNI (vpdpbusd
 * on ymm, CPUID 7.1 EAX bit 4: Alder Lake and later, Zen 5), which the
 * avx2 table does not require: dispatch.c adds these slots to it only
 * where CPUID reports the extension, and keeps the table without them
 * reachable as "avx2-novnni" (what a Zen 2/3 or a Skylake runs). The
 * kernel bodies are x86_packed.h's, the same as avx2.c's; this file is
 * compiled with the avx2 flags and -mavxvnni (see the Makefile). */
#if defined(__x86_64__)

#include "kernels/x86_packed.h"

const cll_kernels cll__kernels_avx2_vnni = {
    .isa = "avx2",
    .pack_bytes = {CLL__X86_PACKED_BYTES},
    .pack = {CLL__X86_PACK},
    .matmul_packed = {CLL__X86_MATMUL_PACKED},
};

#else
typedef int cll__avx2_vnni_unused; /* ISO C: a translation unit is not empty */
#endif
