/* test_api_arch.c — gemma3 end to end over HTTP: the tiny generated gemma3
 * (test/models/mkarch.h) with Ollama's gemma3 template answers /api/chat
 * exactly as /api/generate does for the same prompt rendered by hand, and
 * with a 3000-token context its sliding-window layers keep only their
 * rings (the load log's kv_bytes, /api/ps's size). */
#include "api_harness.h"
#include "models/mkarch.h"
#include "cllama/engine.h"

#include <limits.h>

/* Ollama's gemma3 template (../shared/testdata/templates/gemma3-instruct). */
static const char *gemma3_tmpl(void) {
  static char buf[4096];
  char path[1100];
  snprintf(path, sizeof(path), "%s/testdata/templates/gemma3-instruct.gotmpl", shared_dir());
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "%s", path);
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = 0;
  return buf;
}

/* add_model takes a path under ../shared/models: reach the generated file
 * from there. */
static void add_generated(const char *name, const char *gguf_abs, const char *tmpl,
                          const char *params) {
  char models[1100], rel[512] = "";
  snprintf(models, sizeof(models), "%s/models", shared_dir());
  char *abs = realpath(models, NULL);
  cr_assert_not_null(abs);
  size_t n = 0;
  for (const char *p = abs; *p; p++)
    if (*p == '/' && n + 3 < sizeof(rel))
      n += (size_t)snprintf(rel + n, sizeof(rel) - n, "../");
  free(abs);
  cr_assert_lt(n + strlen(gguf_abs), sizeof(rel));
  snprintf(rel + n, sizeof(rel) - n, "%s", gguf_abs + 1);
  add_model(name, rel, tmpl, NULL, params);
}

static void setup(void) {
  if (!have_shared())
    cr_skip("CLLAMA_SHARED not found");
  make_store();
  char path[512];
  snprintf(path, sizeof(path), "%s/gemma3-tiny.gguf", H.dir);
  cr_assert_eq(mkarch_write("gemma3", path), 0);
  add_generated("gemma3-tiny", path, gemma3_tmpl(), "{\"stop\":[\"<end_of_turn>\"]}");
  const char *env[] = {"OLLAMA_NUM_PARALLEL=1", NULL};
  start_server(env);
}

static void teardown(void) {
  stop_server();
}

Test(api_arch, gemma3_chat_uses_its_template, .init = setup, .fini = teardown) {
  json_t *chat = post_json("/api/chat",
                           "{\"model\":\"gemma3-tiny\",\"stream\":false,\"messages\":["
                           "{\"role\":\"system\",\"content\":\"kalo\"},"
                           "{\"role\":\"user\",\"content\":\"mine ruta\"},"
                           "{\"role\":\"assistant\",\"content\":\"shipo\"},"
                           "{\"role\":\"user\",\"content\":\"veda gifo\"}],"
                           "\"options\":{\"temperature\":0,\"num_predict\":12}}",
                           200);
  json_t *msg = json_object_get(chat, "message");
  cr_assert_str_eq(jstr(msg, "role"), "assistant");
  /* The template by hand (as Ollama renders it: the system prompt goes
   * into the first user turn, and the generation prompt ends in a blank
   * line: testdata/gemma3-instruct.gotmpl/system-user-assistant-user). */
  json_t *gen = post_json("/api/generate",
                          "{\"model\":\"gemma3-tiny\",\"stream\":false,\"raw\":true,\"prompt\":"
                          "\"<start_of_turn>user\\nkalo\\n\\nmine ruta<end_of_turn>\\n"
                          "<start_of_turn>model\\nshipo<end_of_turn>\\n"
                          "<start_of_turn>user\\nveda gifo<end_of_turn>\\n"
                          "<start_of_turn>model\\n\\n\","
                          "\"options\":{\"temperature\":0,\"num_predict\":12}}",
                          200);
  cr_expect_eq(json_integer_value(json_object_get(chat, "prompt_eval_count")),
               json_integer_value(json_object_get(gen, "prompt_eval_count")));
  cr_expect_str_eq(jstr(msg, "content"), jstr(gen, "response"));
  cr_expect_gt(json_integer_value(json_object_get(chat, "eval_count")), 0);
  json_decref(chat);
  json_decref(gen);
}

/* num_ctx 3000: the 6 local layers keep rings of window + batch rows per
 * sequence, the global layer n_ctx cells. */
Test(api_arch, gemma3_long_context_keeps_only_the_window, .init = setup, .fini = teardown) {
  json_t *gen = post_json("/api/generate",
                          "{\"model\":\"gemma3-tiny\",\"stream\":false,\"prompt\":\"kalo\","
                          "\"options\":{\"num_ctx\":3000,\"num_predict\":2}}",
                          200);
  json_decref(gen);
  char log[400], line[1024];
  snprintf(log, sizeof(log), "%s/server.log", H.dir);
  FILE *f = fopen(log, "r");
  cr_assert_not_null(f);
  long long n_ctx = 0, ring = -1;
  unsigned long long kv = 0;
  int parallel = 0;
  while (fgets(line, sizeof(line), f)) {
    const char *p = strstr(line, "msg=\"model loaded\"");
    if (p && strstr(p, "gemma3-tiny"))
      cr_assert_eq(sscanf(strstr(p, "n_ctx="), "n_ctx=%lld parallel=%d kv_bytes=%llu swa_ring=%lld",
                          &n_ctx, &parallel, &kv, &ring),
                   4, "%s", line);
  }
  fclose(f);
  cr_assert_geq(n_ctx, 3000);
  cr_assert_eq(parallel, 1);
  cr_assert_gt(ring, 0, "sliding-window layers keep rings");
  cr_assert_lt(ring, n_ctx);
  /* F16 K and V rows of 64 values; 2 sequence ids (1 parallel + 1 cached) */
  const unsigned long long row = 64 * 2;
  cr_expect_eq(kv,
               2 * row * (1ull * (unsigned long long)n_ctx + 6ull * 2 * (unsigned long long)ring));
  printf("gemma3-tiny, n_ctx %lld: KV %llu bytes, rings of %lld rows (all layers full: %llu)\n",
         n_ctx, kv, ring, 2 * row * 7 * (unsigned long long)n_ctx);
  /* /api/ps counts that KV in the model's size */
  struct resp r = http("GET", "/api/ps", NULL);
  cr_assert_eq(r.status, 200);
  json_t *ps = jparse(r.body);
  json_t *m0 = json_array_get(json_object_get(ps, "models"), 0);
  cr_assert_not_null(m0);
  json_int_t size = json_integer_value(json_object_get(m0, "size"));
  char path[512];
  snprintf(path, sizeof(path), "%s/gemma3-tiny.gguf", H.dir);
  cll_model *m;
  cll_err err = {0};
  cr_assert_eq(cll_model_load(path, &m, &err), 0, "%s", err.msg);
  cr_expect_eq(size, (json_int_t)(cll_model_info(m)->weight_bytes + kv), "size %lld",
               (long long)size);
  cll_model_release(m);
  json_decref(ps);
  free(r.body);
}
