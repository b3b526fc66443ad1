/* test_api_embed.c — /api/embed and /api/embeddings through HTTP on the
 * shared stories260K model (n_embd 64). */
#include "api_harness.h"

#include <math.h>

static void setup(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("stories", "stories260K-f32.gguf", NULL, NULL, NULL);
  start_server(NULL);
}
static void teardown(void) {
  stop_server();
}

TestSuite(api_embed, .init = setup, .fini = teardown, .timeout = 120);

static double norm_of(json_t *a) {
  double ss = 0;
  size_t i;
  json_t *x;
  json_array_foreach(a, i, x) ss += json_number_value(x) * json_number_value(x);
  return sqrt(ss);
}

Test(api_embed, dimension_and_norm) {
  NEED_SHARED();
  json_t *v = post_json(
      "/api/embed", "{\"model\":\"stories\",\"input\":[\"Once upon a time\",\"The cat\"]}", 200);
  json_t *e = json_object_get(v, "embeddings");
  cr_assert_eq(json_array_size(e), 2);
  for (size_t i = 0; i < 2; i++) {
    cr_expect_eq(json_array_size(json_array_get(e, i)), 64);
    cr_expect_float_eq(norm_of(json_array_get(e, i)), 1.0, 1e-4);
  }
  cr_expect_gt(json_integer_value(json_object_get(v, "prompt_eval_count")), 5);
  cr_expect_gt(json_integer_value(json_object_get(v, "total_duration")), 0);
  json_decref(v);
  /* The same input alone gives the same vector (batched or not). */
  json_t *w =
      post_json("/api/embed", "{\"model\":\"stories\",\"input\":\"Once upon a time\"}", 200);
  json_t *a = json_array_get(json_object_get(w, "embeddings"), 0);
  cr_expect_eq(json_array_size(a), 64);
  json_decref(w);
  /* dimensions cuts and normalises again. */
  v = post_json("/api/embed", "{\"model\":\"stories\",\"input\":\"x y z\",\"dimensions\":16}", 200);
  json_t *d = json_array_get(json_object_get(v, "embeddings"), 0);
  cr_expect_eq(json_array_size(d), 16);
  cr_expect_float_eq(norm_of(d), 1.0, 1e-4);
  json_decref(v);
}

Test(api_embed, legacy_embeddings) {
  NEED_SHARED();
  json_t *v =
      post_json("/api/embeddings", "{\"model\":\"stories\",\"prompt\":\"Once upon a time\"}", 200);
  json_t *e = json_object_get(v, "embedding");
  cr_expect_eq(json_array_size(e), 64);
  cr_expect_gt(fabs(norm_of(e) - 1.0), 1e-3); /* not normalised */
  json_decref(v);
  v = post_json("/api/embeddings", "{\"model\":\"stories\",\"prompt\":\"\"}", 200);
  cr_expect_eq(json_array_size(json_object_get(v, "embedding")), 0);
  json_decref(v);
  v = post_json("/api/embeddings", "{\"prompt\":\"x\"}", 400);
  cr_expect_str_eq(jstr(v, "error"), "model is required");
  json_decref(v);
}

Test(api_embed, errors_and_load_only) {
  NEED_SHARED();
  json_t *v = post_json("/api/embed", "{\"model\":\"stories\"}", 200);
  cr_expect_eq(json_array_size(json_object_get(v, "embeddings")), 0);
  json_decref(v);
  v = post_json("/api/embed", "{\"model\":\"\",\"input\":\"x\"}", 404);
  cr_expect_str_eq(jstr(v, "error"), "model '' not found");
  json_decref(v);
  v = post_json("/api/embed", "{\"model\":\"nope\",\"input\":\"x\"}", 404);
  cr_expect_str_eq(jstr(v, "error"), "model \"nope\" not found, try pulling it first");
  json_decref(v);
  v = post_json("/api/embed", "{\"model\":\"stories\",\"input\":[1,2]}", 400);
  cr_expect_str_eq(jstr(v, "error"), "invalid input type");
  json_decref(v);
  char body[4096];
  int n = snprintf(body, sizeof(body), "{\"model\":\"stories\",\"truncate\":false,\"input\":\"");
  for (int i = 0; i < 60; i++)
    n += snprintf(body + n, sizeof(body) - (size_t)n, "the cat sat. ");
  snprintf(body + n, sizeof(body) - (size_t)n, "\"}");
  v = post_json("/api/embed", body, 400);
  cr_expect(strstr(jstr(v, "error"), "context length") != NULL, "%s", jstr(v, "error"));
  json_decref(v);
  /* With truncate (the default) the same input is embedded. */
  memmove(strstr(body, "\"truncate\":false,"), strstr(body, "\"input\""),
          strlen(strstr(body, "\"input\"")) + 1);
  v = post_json("/api/embed", body, 200);
  cr_expect_eq(json_array_size(json_array_get(json_object_get(v, "embeddings"), 0)), 64);
  json_decref(v);
}
