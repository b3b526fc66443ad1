/* test_api_grammar.c — structured outputs end to end: `format` on
 * /api/generate and /api/chat, `response_format` on /v1/chat/completions,
 * against `cllama serve` with the random-weight tiny-llama model (its
 * near-uniform logits make every run a different walk through the grammar).
 * test/grammar_check.py drives the requests and validates every output with
 * python3-jsonschema. */
#include "api_harness.h"

static void setup(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("rand", "tiny-llama-rand-q4_0.gguf", "{{ .Prompt }}", NULL, NULL);
  const char *env[] = {"OLLAMA_NUM_PARALLEL=4", NULL};
  start_server(env);
}
static void teardown(void) {
  stop_server();
}

TestSuite(api_grammar, .init = setup, .fini = teardown, .timeout = 300);

static void repo_root(char *buf, size_t n) {
  const char *b = getenv("CLLAMA_BUILD");
  snprintf(buf, n, "%s/../..", b ? b : ".");
}

Test(api_grammar, schemas_validate_50_each) {
  NEED_SHARED();
  if (system("python3 -c 'import jsonschema' 2>/dev/null") != 0) {
    fprintf(stderr, "SKIP: python3-jsonschema not found\n");
    cr_skip("python3-jsonschema not found");
  }
  char root[600], cmd[1500];
  repo_root(root, sizeof(root));
  /* Under a sanitizer the server runs many times slower: fewer runs there
   * (`make test` runs the full 50 per schema). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  int n = 4;
#else
  int n = getenv("CLLAMA_TEST_SANITIZED_SERVER") ? 4 : 50; /* make tsan: only the server is */
#endif
  snprintf(cmd, sizeof(cmd), "python3 '%s/test/grammar_check.py' %s rand %d > '%s/py.out' 2>&1",
           root, H.base, n, H.dir);
  int rc = system(cmd);
  snprintf(cmd, sizeof(cmd), "cat '%s/py.out' >&2", H.dir);
  system(cmd);
  cr_expect_eq(rc, 0);
}

/* format "json" gives an object; bad formats and keywords are 400s. */
Test(api_grammar, format_json_object_and_errors) {
  NEED_SHARED();
  json_t *r = post_json("/api/generate",
                        "{\"model\":\"rand\",\"prompt\":\"x\",\"stream\":false,\"format\":\"json\","
                        "\"options\":{\"seed\":3,\"num_predict\":64}}",
                        200);
  json_t *v = json_loads(jstr(r, "response"), 0, NULL);
  cr_expect(json_is_object(v), "not an object: %s", jstr(r, "response"));
  cr_expect_str_eq(jstr(r, "done_reason"), "stop");
  json_decref(v);
  json_decref(r);
  r = post_json("/api/chat",
                "{\"model\":\"rand\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                "\"stream\":false,\"format\":{\"type\":\"object\",\"not\":{}}}",
                400);
  cr_expect(strstr(jstr(r, "error"), "not"), "%s", jstr(r, "error"));
  json_decref(r);
  r = post_json("/api/generate", "{\"model\":\"rand\",\"prompt\":\"x\",\"format\":\"yaml\"}", 400);
  cr_expect_str_eq(jstr(r, "error"), "invalid format: \"\\\"yaml\\\"\"; expected \"json\" or a "
                                     "valid JSON Schema object");
  json_decref(r);
  r = post_json("/api/generate", "{\"model\":\"rand\",\"prompt\":\"x\",\"format\":123}", 400);
  cr_expect_str_eq(jstr(r, "error"),
                   "invalid format: \"123\"; expected \"json\" or a valid JSON Schema object");
  json_decref(r);
}
