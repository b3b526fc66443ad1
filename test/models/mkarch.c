/* mkarch — writes the tiny random-weight models of test/models/mkarch.h.
 *
 *   mkarch ARCH OUT.gguf      (ARCH: qwen3 gemma2 gemma3 phi3 qwen3moe)
 *   mkarch --prompt ARCH N    prints prompt N's token ids, comma-separated
 *   mkarch --quantize TYPE IN.gguf OUT.gguf   our quantizer (Q8_0, Q4_K_M, ...) */
#include "mkarch.h"

#include "cllama/quantize.h"

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "--prompt") == 0) {
    int32_t t[64];
    int p = atoi(argv[3]);
    if (p < 0 || p >= MKARCH_N_PROMPTS)
      return 2;
    int n = mkarch_prompt(argv[2], p, t);
    for (int i = 0; i < n; i++)
      printf("%s%d", i ? "," : "", t[i]);
    printf("\n");
    return 0;
  }
  if (argc == 5 && strcmp(argv[1], "--quantize") == 0) {
    cll_quantize_params q = cll_quantize_defaults();
    bool pure;
    cll_err err = {0};
    if (cll_quantize_parse(argv[2], &q.ftype, &pure) != 0) {
      fprintf(stderr, "mkarch: unknown type %s\n", argv[2]);
      return 2;
    }
    q.pure = pure;
    if (cll_quantize_file(argv[3], argv[4], &q, &err) != 0) {
      fprintf(stderr, "mkarch: %s\n", err.msg);
      return 1;
    }
    return 0;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: mkarch ARCH OUT.gguf | mkarch --prompt ARCH N\n");
    return 2;
  }
  return mkarch_write(argv[1], argv[2]) == 0 ? 0 : 1;
}
