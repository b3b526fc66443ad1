/* test_encoder_api.c — encoder models end to end over HTTP: /api/embed and
 * /v1/embeddings on a BERT model (batches equal single calls, truncate both
 * ways, llama.cpp's embeddings), /api/rerank and /v1/rerank on a reranker
 * (llama.cpp's scores), capabilities, and the refusals Ollama gives.
 * Models: test/models/mkenc (bert-tiny: 128 positions; rerank-tiny). */
#include "api_harness.h"

#include <math.h>

static char gen_dir[400];

static void setup(void) {
  make_store();
  const char *b = getenv("CLLAMA_BUILD");
  char cmd[1200], p[600];
  snprintf(gen_dir, sizeof(gen_dir), "%s/gen", H.dir);
  snprintf(cmd, sizeof(cmd), "%s/test/models/mkenc %s", b && *b ? b : "build/release", gen_dir);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
  snprintf(p, sizeof(p), "%s/bert-tiny.gguf", gen_dir);
  add_model("minilm", p, NULL, NULL, NULL);
  snprintf(p, sizeof(p), "%s/rerank-tiny.gguf", gen_dir);
  add_model("reranker", p, NULL, NULL, NULL);
  start_server(NULL);
}
static void teardown(void) {
  stop_server();
}

TestSuite(encoder_api, .init = setup, .fini = teardown, .timeout = 120);

static json_t *load_ref(const char *name) {
  char p[300];
  snprintf(p, sizeof(p), "test/models/ref/enc/%s.json", name);
  json_error_t je;
  json_t *r = json_load_file(p, 0, &je);
  cr_assert_not_null(r, "%s: %s", p, je.text);
  return r;
}

static double cosine(json_t *a, json_t *b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < json_array_size(a); i++) {
    double x = json_number_value(json_array_get(a, i)), y = json_number_value(json_array_get(b, i));
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return ab / sqrt(aa * bb);
}

/* 16 inputs in one request give what 16 single requests give (1e-6), each
 * L2-normalised and equal in direction to llama.cpp's (the ref's inputs).
 * Together they are more than one step's 512 tokens: the scheduler must
 * keep each input whole (a split one would attend to half of itself). */
Test(encoder_api, batch_of_16_equals_singles) {
  json_t *ref = load_ref("bert-tiny");
  json_t *inputs = json_array();
  for (int i = 0; i < 16; i++) {
    json_t *src = json_object_get(ref, "inputs");
    json_array_append(inputs, json_array_get(src, (size_t)i % json_array_size(src)));
    if (i >= 5) { /* more distinct texts, about 100 tokens each: 16 of them
                   * take several steps of 512 tokens, each input whole */
      char t[1024];
      int n = 0;
      for (int k = 0; k < 8; k++)
        n += snprintf(t + n, sizeof(t) - (size_t)n, "the quick fox %d jumps over %d dogs. ", i,
                      i * 7 + k);
      json_array_set_new(inputs, (size_t)i, json_string(t));
    }
  }
  json_t *req = json_pack("{s:s,s:O}", "model", "minilm", "input", inputs);
  char *body = json_dumps(req, 0);
  json_t *all = post_json("/api/embed", body, 200);
  free(body);
  json_t *embs = json_object_get(all, "embeddings");
  cr_assert_eq(json_array_size(embs), 16);
  for (size_t i = 0; i < 16; i++) {
    json_t *one_req = json_pack("{s:s,s:O}", "model", "minilm", "input", json_array_get(inputs, i));
    char *ob = json_dumps(one_req, 0);
    json_t *one = post_json("/api/embed", ob, 200);
    json_t *a = json_array_get(embs, i), *b = json_array_get(json_object_get(one, "embeddings"), 0);
    cr_assert_eq(json_array_size(a), 256);
    cr_assert_eq(json_array_size(b), 256);
    double ss = 0;
    for (size_t k = 0; k < 256; k++) {
      double x = json_number_value(json_array_get(a, k)),
             y = json_number_value(json_array_get(b, k));
      cr_assert(fabs(x - y) <= 1e-6, "input %zu dim %zu: %.9f vs %.9f", i, k, x, y);
      ss += x * x;
    }
    cr_assert(fabs(sqrt(ss) - 1.0) < 1e-5, "not normalised: %f", sqrt(ss));
    if (i < 5) {
      double c = cosine(a, json_array_get(json_object_get(ref, "embeddings"), i));
      cr_assert(c >= 0.99999, "input %zu: cosine %.8f to llama.cpp", i, c);
    }
    free(ob);
    json_decref(one);
    json_decref(one_req);
  }
  json_decref(all);
  json_decref(req);
  json_decref(inputs);
  json_decref(ref);
}

/* bert-tiny has 128 positions: a longer input is cut to 128 tokens
 * ([CLS] + 126 + [SEP]) by default, refused with truncate:false. */
Test(encoder_api, truncate_both_ways) {
  char text[4000] = "";
  for (int i = 0; i < 200; i++)
    strcat(text, "dog ");
  char body[4200];
  snprintf(body, sizeof(body), "{\"model\":\"minilm\",\"input\":\"%s\",\"truncate\":false}", text);
  struct resp r = http("POST", "/api/embed", body);
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  cr_assert(strstr(r.body, "the input length exceeds the context length"), "%s", r.body);
  free(r.body);
  snprintf(body, sizeof(body), "{\"model\":\"minilm\",\"input\":\"%s\"}", text);
  json_t *v = post_json("/api/embed", body, 200);
  cr_assert_eq(json_integer_value(json_object_get(v, "prompt_eval_count")), 128);
  /* The cut input is the first 126 words between [CLS] and [SEP]. */
  char cut[4000] = "";
  for (int i = 0; i < 126; i++)
    strcat(cut, "dog ");
  snprintf(body, sizeof(body), "{\"model\":\"minilm\",\"input\":\"%s\"}", cut);
  json_t *w = post_json("/api/embed", body, 200);
  json_t *a = json_array_get(json_object_get(v, "embeddings"), 0),
         *b = json_array_get(json_object_get(w, "embeddings"), 0);
  for (size_t k = 0; k < json_array_size(a); k++)
    cr_assert_float_eq(json_number_value(json_array_get(a, k)),
                       json_number_value(json_array_get(b, k)), 1e-6);
  json_decref(v);
  json_decref(w);
}

Test(encoder_api, openai_embeddings) {
  json_t *v = post_json("/v1/embeddings",
                        "{\"model\":\"minilm\",\"input\":[\"hello world\",\"sky\"]}", 200);
  json_t *data = json_object_get(v, "data");
  cr_assert_eq(json_array_size(data), 2);
  json_t *e = post_json("/api/embed", "{\"model\":\"minilm\",\"input\":\"hello world\"}", 200);
  json_t *a = json_object_get(json_array_get(data, 0), "embedding"),
         *b = json_array_get(json_object_get(e, "embeddings"), 0);
  cr_assert_eq(json_array_size(a), 256);
  for (size_t k = 0; k < 256; k++)
    cr_assert_float_eq(json_number_value(json_array_get(a, k)),
                       json_number_value(json_array_get(b, k)), 1e-6);
  json_decref(v);
  json_decref(e);
}

Test(encoder_api, generate_and_chat_refused) {
  struct resp r = http("POST", "/api/generate", "{\"model\":\"minilm\",\"prompt\":\"hi\"}");
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  cr_assert(strstr(r.body, "\\\"minilm\\\" does not support generate"), "%s", r.body);
  free(r.body);
  r = http("POST", "/api/chat",
           "{\"model\":\"minilm\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  cr_assert(strstr(r.body, "does not support chat"), "%s", r.body);
  free(r.body);
}

Test(encoder_api, capabilities) {
  json_t *v = post_json("/api/show", "{\"model\":\"minilm\"}", 200);
  json_t *c = json_object_get(v, "capabilities");
  cr_assert_eq(json_array_size(c), 1);
  cr_assert_str_eq(json_string_value(json_array_get(c, 0)), "embedding");
  json_decref(v);
  v = post_json("/api/show", "{\"model\":\"reranker\"}", 200);
  c = json_object_get(v, "capabilities");
  cr_assert_eq(json_array_size(c), 1);
  cr_assert_str_eq(json_string_value(json_array_get(c, 0)), "rerank");
  json_decref(v);
}

/* The reranker's scores for the ref's pairs equal llama.cpp's (1e-4),
 * sorted, cut to top_n, in both shapes. */
Test(encoder_api, rerank_matches_llama_cpp) {
  json_t *ref = load_ref("rerank-tiny");
  json_t *inputs = json_object_get(ref, "inputs"), *scores = json_object_get(ref, "scores");
  json_t *docs = json_array();
  char query[256] = "";
  for (size_t i = 0; i < json_array_size(inputs); i++) {
    const char *in = json_string_value(json_array_get(inputs, i)), *tab = strchr(in, '\t');
    cr_assert_not_null(tab);
    if (i == 0)
      snprintf(query, sizeof(query), "%.*s", (int)(tab - in), in);
    cr_assert_eq(strncmp(in, query, strlen(query)), 0, "the ref's pairs share one query");
    json_array_append_new(docs, json_string(tab + 1));
    if (i == 2)
      break; /* the first three pairs have the same query */
  }
  size_t n = json_array_size(docs);
  json_t *req = json_pack("{s:s,s:s,s:O,s:b}", "model", "reranker", "query", query, "documents",
                          docs, "return_documents", 1);
  char *body = json_dumps(req, 0);
  json_t *v = post_json("/api/rerank", body, 200);
  json_t *res = json_object_get(v, "results");
  cr_assert_eq(json_array_size(res), n);
  double prev = INFINITY;
  for (size_t i = 0; i < n; i++) {
    json_t *o = json_array_get(res, i);
    size_t idx = (size_t)json_integer_value(json_object_get(o, "index"));
    double s = json_number_value(json_object_get(o, "relevance_score"));
    double want = json_number_value(json_array_get(scores, idx));
    cr_assert(fabs(s - want) <= 1e-4, "document %zu: %.6f vs llama.cpp %.6f", idx, s, want);
    cr_assert(s <= prev, "not sorted");
    prev = s;
    cr_assert_str_eq(jstr(json_object_get(o, "document"), "text"),
                     json_string_value(json_array_get(docs, idx)));
  }
  free(body);
  json_decref(v);
  json_object_set_new(req, "top_n", json_integer(1));
  body = json_dumps(req, 0);
  v = post_json("/v1/rerank", body, 200);
  cr_assert_str_eq(jstr(v, "object"), "list");
  cr_assert_gt(json_integer_value(json_object_get(json_object_get(v, "usage"), "prompt_tokens")),
               0);
  cr_assert_eq(json_array_size(json_object_get(v, "results")), 1);
  free(body);
  json_decref(v);
  json_decref(req);
  json_decref(docs);
  json_decref(ref);
}

Test(encoder_api, rerank_errors) {
  struct resp r =
      http("POST", "/api/rerank", "{\"model\":\"minilm\",\"query\":\"q\",\"documents\":[\"d\"]}");
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  cr_assert(strstr(r.body, "does not support rerank"), "%s", r.body);
  free(r.body);
  r = http("POST", "/api/rerank", "{\"model\":\"reranker\",\"query\":\"q\",\"documents\":[1]}");
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  free(r.body);
  r = http("POST", "/api/rerank", "{\"model\":\"reranker\",\"documents\":[\"d\"]}");
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  free(r.body);
  r = http("POST", "/api/embed", "{\"model\":\"reranker\",\"input\":\"d\"}");
  cr_assert_eq(r.status, 400, "%ld %s", r.status, r.body);
  cr_assert(strstr(r.body, "does not support embedding"), "%s", r.body);
  free(r.body);
  /* The request set-up rerank shares with embed (emb_req.c), with
   * rerank's statuses: a bad option is a 400 here (a 500 on /api/embed). */
  static const struct {
    const char *body;
    long status;
    const char *error;
  } cases[] = {
      {"{\"query\":\"q\",\"documents\":[\"d\"]}", 400, "model is required"},
      {"{\"model\":\"\",\"query\":\"q\",\"documents\":[\"d\"]}", 400, "model is required"},
      {"{\"model\":7,\"query\":\"q\",\"documents\":[\"d\"]}", 400, "of type string"},
      {"{\"model\":\"nope\",\"query\":\"q\",\"documents\":[\"d\"]}", 404,
       "model \\\"nope\\\" not found, try pulling it first"},
      {"{\"model\":\"Bad Name!\",\"query\":\"q\",\"documents\":[\"d\"]}", 400,
       "invalid model name"},
      {"{\"model\":\"reranker\",\"query\":\"q\",\"documents\":[\"d\"],\"keep_alive\":\"soon\"}",
       400, "time: invalid duration"},
      {"{\"model\":\"reranker\",\"query\":\"q\",\"documents\":[\"d\"],\"options\":{\"num_ctx\":"
       "\"big\"}}",
       400, "num_ctx"},
      {"{\"model\":\"reranker\",\"query\":\"q\",\"documents\":[\"d\"],\"options\":\"x\"}", 400,
       NULL},
      {"{\"model\":\"reranker\",\"query\":\"q\",\"documents\":[\"d\"],\"top_n\":-1}", 400,
       "top_n must be a non-negative integer"},
      {"{\"model\":\"minilm\",\"input\":\"d\",\"options\":{\"num_ctx\":\"big\"}}", 500, "num_ctx"},
      {"{\"model\":\"minilm\",\"input\":\"d\",\"options\":\"x\"}", 400, NULL},
      {"{\"model\":\"minilm\",\"input\":\"d\",\"keep_alive\":\"soon\"}", 400,
       "time: invalid duration"},
      {"{\"model\":\"nope\",\"input\":\"d\"}", 404,
       "model \\\"nope\\\" not found, try pulling it first"},
      {"{\"input\":\"d\"}", 404, "model '' not found"},
      {"{\"model\":\"Bad Name!\",\"input\":\"d\"}", 400, "invalid model name"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *path = strstr(cases[i].body, "\"input\"") ? "/api/embed" : "/api/rerank";
    r = http("POST", path, cases[i].body);
    cr_expect_eq(r.status, cases[i].status, "%s %s: %ld %s", path, cases[i].body, r.status, r.body);
    if (cases[i].error)
      cr_expect(strstr(r.body, cases[i].error), "%s %s: %s", path, cases[i].body, r.body);
    free(r.body);
  }
}
