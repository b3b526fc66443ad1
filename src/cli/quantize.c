/* quantize.c — `cllama quantize IN.gguf OUT.gguf TYPE [--threads N]`. */
#include "cllama/cli.h"
#include "cllama/kernels.h"
#include "cllama/quantize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
  fprintf(out, "Usage: cllama quantize IN.gguf OUT.gguf TYPE [--threads N] [--quiet]\n\n"
               "Converts the F32/F16/BF16 weight matrices of IN to TYPE:\n"
               "  Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q5_K Q6_K Q4_K_S Q4_K_M Q5_K_S Q5_K_M F16 BF16\n"
               "Q4_K_M/Q5_K_M give output.weight and some attn_v/ffn_down layers Q6_K;\n"
               "Q4_K/Q5_K use that type everywhere but output.weight (Q6_K).\n");
}

static const char *type_name(uint32_t t) {
  const struct cll_type_info *ti = cll_type_info(t);
  return ti ? ti->name : "?";
}

static void on_progress(void *ctx, int64_t i, int64_t n, const char *name, uint32_t from,
                        uint32_t to) {
  (void)ctx;
  printf("[%4lld/%4lld] %-40s %-5s -> %s\n", (long long)i + 1, (long long)n, name, type_name(from),
         type_name(to));
  fflush(stdout);
}

int cll_cli_quantize(int argc, char **argv) {
  const char *pos[3];
  int n_pos = 0;
  cll_quantize_params p = cll_quantize_defaults();
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      p.n_threads = atoi(argv[++i]);
    } else if (strcmp(argv[i], "--quiet") == 0) {
      quiet = true;
    } else if (argv[i][0] == '-' || n_pos == 3) {
      usage(stderr);
      return 2;
    } else {
      pos[n_pos++] = argv[i];
    }
  }
  if (n_pos != 3) {
    usage(stderr);
    return 2;
  }
  if (cll_quantize_parse(pos[2], &p.ftype, &p.pure) != 0) {
    fprintf(stderr, "cllama quantize: unknown type \"%s\"\n\n", pos[2]);
    usage(stderr);
    return 2;
  }
  if (!quiet)
    p.progress = on_progress;
  cll_err err = {0};
  int rc = cll_quantize_file(pos[0], pos[1], &p, &err);
  if (rc) {
    fprintf(stderr, "cllama quantize: %s\n", err.msg[0] ? err.msg : cll_strerror(rc));
    return 1;
  }
  if (!quiet)
    printf("wrote %s\n", pos[1]);
  return 0;
}
