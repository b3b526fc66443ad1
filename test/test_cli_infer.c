/* test_cli_infer.c — `cllama infer --prompt TEXT` end to end (issue 4):
 * for every shared model that has reference outputs and every reference
 * prompt, the binary tokenizes the prompt text exactly as llama.cpp did
 * (the "prompt tokens:" line equals prompt_tokens), and for stories260K-f32
 * with an f32 KV cache the greedy continuation is the reference text. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s && *s ? s : "../shared";
}

/* Runs `cllama infer MODEL --prompt <file contents> ...` and returns stdout
 * (new). The prompt goes through a file and $(cat) so its bytes (newline,
 * emoji) reach argv unchanged. */
static char *run_infer(const char *model, const char *prompt_file, const char *extra) {
  const char *bin = getenv("CLLAMA_BIN");
  cr_assert_not_null(bin, "CLLAMA_BIN not set (run through make test)");
  char cmd[4096];
  snprintf(cmd, sizeof(cmd), "'%s' infer '%s' --prompt \"$(cat '%s')\" %s 2>&1", bin, model,
           prompt_file, extra);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t cap = 1 << 16, n = 0;
  char *out = malloc(cap);
  size_t got;
  while ((got = fread(out + n, 1, cap - n - 1, p)) > 0) {
    n += got;
    if (n + 1 >= cap)
      out = realloc(out, cap *= 2);
  }
  out[n] = '\0';
  cr_assert_eq(pclose(p), 0, "cllama infer failed:\n%s", out);
  return out;
}

static void ids_csv(json_t *arr, char *buf, size_t cap) {
  size_t i, o = 0;
  json_t *v;
  buf[0] = '\0';
  json_array_foreach(arr, i, v) {
    o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? "," : "",
                          (long long)json_integer_value(v));
  }
}

Test(cli_infer, prompt_text_gives_reference_ids_and_greedy_text, .timeout = 300) {
  static const char *models[] = {"stories260K-f32",      "stories260K-q8_0-mixed",
                                 "tiny-llama-rand-f16",  "tiny-llama-rand-q8_0",
                                 "tiny-llama-rand-q4_0", "tiny-llama-rand-q4_k_m",
                                 "tiny-qwen2-rand-q8_0"};
  char path[1024];
  snprintf(path, sizeof(path), "%s/ref/prompts/p1.txt", shared_dir());
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "SKIP: CLLAMA_SHARED not found (%s)\n", shared_dir());
    cr_skip("CLLAMA_SHARED not found");
  }
  int checked = 0;
  for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
    for (int p = 1; p <= 3; p++) {
      char ref[1024], model[1024], prompt[1024];
      snprintf(ref, sizeof(ref), "%s/ref/%s/p%d.kvf32.json", shared_dir(), models[m], p);
      snprintf(model, sizeof(model), "%s/models/%s.gguf", shared_dir(), models[m]);
      snprintf(prompt, sizeof(prompt), "%s/ref/prompts/p%d.txt", shared_dir(), p);
      json_error_t jerr;
      json_t *j = json_load_file(ref, 0, &jerr);
      if (j == NULL || stat(model, &st) != 0) {
        json_decref(j);
        continue;
      }
      bool stories = strcmp(models[m], "stories260K-f32") == 0;
      char *out = run_infer(model, prompt, stories ? "-n 32 --kv f32" : "-n 1");
      char want[8192], line[8300];
      ids_csv(json_object_get(j, "prompt_tokens"), want, sizeof(want));
      snprintf(line, sizeof(line), "prompt tokens: %s\n", want);
      cr_expect_not_null(strstr(out, line), "%s p%d: want \"%s\" in:\n%s", models[m], p, line, out);
      if (stories) {
        const char *text = json_string_value(json_object_get(j, "greedy_text"));
        cr_expect_not_null(strstr(out, text), "%s p%d: greedy text \"%s\" not in:\n%s", models[m],
                           p, text, out);
      }
      free(out);
      json_decref(j);
      checked++;
    }
  }
  cr_expect_geq(checked, 18, "only %d model/prompt pairs found", checked);
}
