/* test_openai.c — the OpenAI-compatible endpoints (OLLAMA_API.md §1.13)
 * and the Anthropic Messages API (/v1/messages) through a real `cllama
 * serve` on the shared stories260K model: chat completions (JSON and SSE),
 * legacy completions, embeddings, the model list, messages (JSON and SSE
 * events), the error shapes, and the official openai and @anthropic-ai/sdk
 * JavaScript clients when test/js-openai/node_modules is installed. */
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

TestSuite(openai, .init = setup, .fini = teardown, .timeout = 120);

/* ---------------------------------------------------------------- helpers */

/* Parses an SSE body: every event must be "data: ...\n\n" and the last one
 * "data: [DONE]". Returns the JSON events as an array (new). */
static json_t *sse_events(const char *body) {
  json_t *out = json_array();
  const char *p = body;
  bool done = false;
  while (*p) {
    cr_assert(!done, "data after [DONE]: %s", p);
    cr_assert(strncmp(p, "data: ", 6) == 0, "not an SSE data line: %.60s", p);
    p += 6;
    const char *end = strstr(p, "\n\n");
    cr_assert(end, "event not ended by a blank line: %.60s", p);
    if ((size_t)(end - p) == 6 && strncmp(p, "[DONE]", 6) == 0) {
      done = true;
    } else {
      json_error_t e;
      json_t *v = json_loadb(p, (size_t)(end - p), 0, &e);
      cr_assert(v, "bad event %.*s", (int)(end - p), p);
      json_array_append_new(out, v);
    }
    p = end + 2;
  }
  cr_assert(done, "the stream did not end with data: [DONE]");
  return out;
}

/* Checks the OpenAI error shape and returns the message (borrowed). */
static const char *expect_error(json_t *v, const char *type) {
  json_t *e = json_object_get(v, "error");
  cr_assert(json_is_object(e), "no error object");
  cr_expect_str_eq(jstr(e, "type"), type);
  cr_expect(json_is_null(json_object_get(e, "param")));
  cr_expect(json_is_null(json_object_get(e, "code")));
  cr_expect(json_object_get(e, "param") && json_object_get(e, "code"));
  return jstr(e, "message");
}

static const char *CHAT = "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":"
                          "\"Once upon a time\"}],\"temperature\":0,\"max_tokens\":16%s}";

static char *chat_body(const char *extra) {
  static char buf[1024];
  snprintf(buf, sizeof(buf), CHAT, extra);
  return buf;
}

/* ---------------------------------------------------------------- chat */

Test(openai, chat_non_stream_shape_and_usage) {
  NEED_SHARED();
  struct resp r = http("POST", "/v1/chat/completions", chat_body(""));
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_expect_str_eq(r.ctype, "application/json");
  json_t *v = jparse(r.body);
  cr_expect(strncmp(jstr(v, "id"), "chatcmpl-", 9) == 0, "%s", jstr(v, "id"));
  cr_expect_str_eq(jstr(v, "object"), "chat.completion");
  cr_expect_str_eq(jstr(v, "model"), "stories");
  cr_expect_str_eq(jstr(v, "system_fingerprint"), "fp_ollama");
  cr_expect_gt(json_integer_value(json_object_get(v, "created")), 1600000000);
  json_t *c = json_array_get(json_object_get(v, "choices"), 0);
  cr_expect_eq(json_integer_value(json_object_get(c, "index")), 0);
  cr_expect_str_eq(jstr(c, "finish_reason"), "length");
  json_t *m = json_object_get(c, "message");
  cr_expect_str_eq(jstr(m, "role"), "assistant");
  cr_expect_gt(strlen(jstr(m, "content")), 10);
  json_t *u = json_object_get(v, "usage");
  json_int_t pt = json_integer_value(json_object_get(u, "prompt_tokens"));
  json_int_t ct = json_integer_value(json_object_get(u, "completion_tokens"));
  cr_expect_gt(pt, 0);
  cr_expect_eq(ct, 16);
  cr_expect_eq(json_integer_value(json_object_get(u, "total_tokens")), pt + ct);
  json_decref(v);
  free(r.body);
}

Test(openai, chat_stream_gives_the_same_text_and_ends_with_done) {
  NEED_SHARED();
  json_t *nv = post_json("/v1/chat/completions", chat_body(""), 200);
  const char *want = jstr(
      json_object_get(json_array_get(json_object_get(nv, "choices"), 0), "message"), "content");
  struct resp r = http("POST", "/v1/chat/completions",
                       chat_body(",\"stream\":true,\"stream_options\":{\"include_usage\":true}"));
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_expect_str_eq(r.ctype, "text/event-stream");
  json_t *ev = sse_events(r.body);
  size_t n = json_array_size(ev);
  cr_assert_gt(n, 3);
  char text[4096] = "";
  json_t *first = json_array_get(ev, 0);
  size_t i;
  json_t *c;
  json_array_foreach(ev, i, c) {
    cr_expect_str_eq(jstr(c, "object"), "chat.completion.chunk");
    cr_expect_str_eq(jstr(c, "id"), jstr(first, "id"));
    cr_expect_eq(json_integer_value(json_object_get(c, "created")),
                 json_integer_value(json_object_get(first, "created")));
    cr_expect_str_eq(jstr(c, "system_fingerprint"), "fp_ollama");
    if (i + 1 == n)
      break; /* the usage chunk */
    json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
    json_t *d = json_object_get(ch, "delta");
    /* The role only on the first chunk. */
    cr_expect_eq(json_object_get(d, "role") != NULL, i == 0, "chunk %zu", i);
    if (i + 2 < n) {
      cr_expect(json_is_null(json_object_get(ch, "finish_reason")));
      cr_expect(json_is_string(json_object_get(d, "content")), "chunk %zu", i);
      strcat(text, jstr(d, "content"));
    } else {
      /* The finish chunk: empty delta. */
      cr_expect_eq(json_object_size(d), 0);
      cr_expect_str_eq(jstr(ch, "finish_reason"), "length");
    }
  }
  cr_expect_str_eq(text, want);
  /* include_usage: choices [] and the same usage as the JSON answer. */
  json_t *last = json_array_get(ev, n - 1);
  cr_expect_eq(json_array_size(json_object_get(last, "choices")), 0);
  cr_expect(json_equal(json_object_get(last, "usage"), json_object_get(nv, "usage")));
  json_decref(ev);
  json_decref(nv);
  free(r.body);
}

Test(openai, chat_stream_without_usage_has_no_usage_chunk) {
  NEED_SHARED();
  struct resp r = http("POST", "/v1/chat/completions", chat_body(",\"stream\":true"));
  cr_assert_eq(r.status, 200);
  json_t *ev = sse_events(r.body);
  size_t i;
  json_t *c;
  json_array_foreach(ev, i, c) {
    cr_expect_null(json_object_get(c, "usage"));
    cr_expect_eq(json_array_size(json_object_get(c, "choices")), 1);
  }
  json_decref(ev);
  free(r.body);
}

Test(openai, chat_matches_native_chat) {
  NEED_SHARED();
  /* temperature 0 here and in the native request: the same greedy text. */
  json_t *o = post_json("/v1/chat/completions", chat_body(""), 200);
  json_t *n = post_json("/api/chat",
                        "{\"model\":\"stories\",\"stream\":false,\"messages\":[{\"role\":\"user\","
                        "\"content\":\"Once upon a time\"}],\"options\":{\"temperature\":0,"
                        "\"num_predict\":16}}",
                        200);
  cr_expect_str_eq(
      jstr(json_object_get(json_array_get(json_object_get(o, "choices"), 0), "message"), "content"),
      jstr(json_object_get(n, "message"), "content"));
  json_decref(o);
  json_decref(n);
}

Test(openai, chat_content_parts_and_stop) {
  NEED_SHARED();
  json_t *a = post_json("/v1/chat/completions", chat_body(""), 200);
  json_t *b = post_json("/v1/chat/completions",
                        "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[{"
                        "\"type\":\"text\",\"text\":\"Once upon a time\"}]}],\"temperature\":0,"
                        "\"max_tokens\":16}",
                        200);
  const char *ta =
      jstr(json_object_get(json_array_get(json_object_get(a, "choices"), 0), "message"), "content");
  const char *tb =
      jstr(json_object_get(json_array_get(json_object_get(b, "choices"), 0), "message"), "content");
  cr_expect_str_eq(ta, tb);
  /* A stop string cuts the answer before it, with finish_reason stop. */
  char stop[64] = "";
  const char *sp = strchr(ta + 1, ' ');
  cr_assert(sp);
  snprintf(stop, sizeof(stop), "%.*s", (int)(strcspn(sp + 1, " ") + 1), sp);
  char body[512];
  snprintf(body, sizeof(body),
           "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a "
           "time\"}],\"temperature\":0,\"max_tokens\":16,\"stop\":\"%s\"}",
           stop);
  json_t *c = post_json("/v1/chat/completions", body, 200);
  json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
  cr_expect_str_eq(jstr(ch, "finish_reason"), "stop");
  cr_expect_eq(strlen(jstr(json_object_get(ch, "message"), "content")), (size_t)(sp - ta),
               "stop %s in %s", stop, ta);
  json_decref(a);
  json_decref(b);
  json_decref(c);
}

Test(openai, chat_client_going_away_mid_stream) {
  NEED_SHARED();
  struct resp r = {0};
  r.abort_after = 400;
  CURL *c =
      mk_easy("POST", "/v1/chat/completions",
              "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"Once\"}],"
              "\"stream\":true,\"max_tokens\":2000}",
              &r);
  curl_easy_perform(c);
  curl_easy_cleanup(c);
  free(r.body);
  /* The server is still fine. */
  json_t *v = post_json("/v1/chat/completions", chat_body(""), 200);
  json_decref(v);
}

/* ---------------------------------------------------------------- completions */

Test(openai, completions_match_native_generate_and_stream) {
  NEED_SHARED();
  const char *req = "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"temperature\":0,"
                    "\"max_tokens\":12}";
  json_t *v = post_json("/v1/completions", req, 200);
  cr_expect(strncmp(jstr(v, "id"), "cmpl-", 5) == 0);
  cr_expect_str_eq(jstr(v, "object"), "text_completion");
  json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
  cr_expect_str_eq(jstr(ch, "finish_reason"), "length");
  cr_expect_eq(json_integer_value(json_object_get(ch, "index")), 0);
  cr_expect_eq(
      json_integer_value(json_object_get(json_object_get(v, "usage"), "completion_tokens")), 12);
  json_t *n = post_json("/api/generate",
                        "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"stream\":false,"
                        "\"options\":{\"temperature\":0,\"num_predict\":12}}",
                        200);
  cr_expect_str_eq(jstr(ch, "text"), jstr(n, "response"));

  struct resp r = http("POST", "/v1/completions",
                       "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"temperature\":0,"
                       "\"max_tokens\":12,\"stream\":true,\"stream_options\":{\"include_usage\":"
                       "true}}");
  cr_assert_eq(r.status, 200);
  cr_expect_str_eq(r.ctype, "text/event-stream");
  json_t *ev = sse_events(r.body);
  size_t cnt = json_array_size(ev), i;
  json_t *c;
  char text[2048] = "";
  json_array_foreach(ev, i, c) {
    cr_expect_str_eq(jstr(c, "object"), "text_completion");
    json_t *u = json_object_get(c, "usage");
    cr_expect(json_is_object(u), "chunk %zu has usage", i);
    if (i + 1 == cnt) {
      cr_expect_eq(json_array_size(json_object_get(c, "choices")), 0);
      cr_expect(json_equal(u, json_object_get(v, "usage")));
      break;
    }
    cr_expect_eq(json_integer_value(json_object_get(u, "total_tokens")), 0);
    json_t *x = json_array_get(json_object_get(c, "choices"), 0);
    strcat(text, jstr(x, "text"));
    if (i + 2 == cnt)
      cr_expect_str_eq(jstr(x, "finish_reason"), "length");
    else
      cr_expect(json_is_null(json_object_get(x, "finish_reason")));
  }
  cr_expect_str_eq(text, jstr(ch, "text"));
  json_decref(ev);
  free(r.body);
  json_decref(v);
  json_decref(n);
}

/* ---------------------------------------------------------------- embeddings */

Test(openai, embeddings_dimension_usage_base64) {
  NEED_SHARED();
  json_t *v =
      post_json("/v1/embeddings",
                "{\"model\":\"stories\",\"input\":[\"Once upon a time\",\"The cat\"]}", 200);
  cr_expect_str_eq(jstr(v, "object"), "list");
  cr_expect_str_eq(jstr(v, "model"), "stories");
  json_t *data = json_object_get(v, "data");
  cr_assert_eq(json_array_size(data), 2);
  for (size_t i = 0; i < 2; i++) {
    json_t *d = json_array_get(data, i);
    cr_expect_str_eq(jstr(d, "object"), "embedding");
    cr_expect_eq(json_integer_value(json_object_get(d, "index")), (json_int_t)i);
    cr_expect_eq(json_array_size(json_object_get(d, "embedding")), 64);
  }
  json_t *u = json_object_get(v, "usage");
  cr_expect_gt(json_integer_value(json_object_get(u, "prompt_tokens")), 5);
  cr_expect_eq(json_integer_value(json_object_get(u, "prompt_tokens")),
               json_integer_value(json_object_get(u, "total_tokens")));
  /* base64: little-endian float32 of the same vector. */
  json_t *b = post_json("/v1/embeddings",
                        "{\"model\":\"stories\",\"input\":\"Once upon a time\","
                        "\"encoding_format\":\"base64\"}",
                        200);
  const char *s = jstr(json_array_get(json_object_get(b, "data"), 0), "embedding");
  cr_assert_eq(strlen(s), (64 * 4 + 2) / 3 * 4);
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char raw[64 * 4 + 3];
  size_t o = 0;
  for (size_t i = 0; s[i]; i += 4) {
    uint32_t w = 0;
    for (int k = 0; k < 4; k++)
      w = w << 6 | (s[i + k] == '=' ? 0 : (uint32_t)(strchr(tbl, s[i + k]) - tbl));
    raw[o++] = (unsigned char)(w >> 16);
    raw[o++] = (unsigned char)(w >> 8);
    raw[o++] = (unsigned char)w;
  }
  json_t *fv = json_object_get(json_array_get(data, 0), "embedding");
  for (size_t i = 0; i < 64; i++) {
    uint32_t bits =
        raw[4 * i] | raw[4 * i + 1] << 8 | raw[4 * i + 2] << 16 | (uint32_t)raw[4 * i + 3] << 24;
    float f;
    memcpy(&f, &bits, 4);
    cr_expect_float_eq(f, json_number_value(json_array_get(fv, i)), 1e-5, "component %zu", i);
  }
  json_decref(b);
  /* dimensions */
  json_t *d = post_json("/v1/embeddings",
                        "{\"model\":\"stories\",\"input\":\"x y\",\"dimensions\":16}", 200);
  cr_expect_eq(
      json_array_size(json_object_get(json_array_get(json_object_get(d, "data"), 0), "embedding")),
      16);
  json_decref(d);
  json_decref(v);
}

Test(openai, embeddings_errors) {
  NEED_SHARED();
  json_t *v = post_json("/v1/embeddings", "{\"model\":\"stories\",\"input\":[]}", 400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"), "invalid input");
  json_decref(v);
  v = post_json("/v1/embeddings",
                "{\"model\":\"stories\",\"input\":\"x\",\"encoding_format\":\"int8\"}", 400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"),
                   "Invalid value for 'encoding_format' = int8. Supported values: ['float', "
                   "'base64'].");
  json_decref(v);
  v = post_json("/v1/embeddings", "{\"model\":\"nope\",\"input\":\"x\"}", 404);
  cr_expect(strstr(expect_error(v, "not_found_error"), "not found"));
  json_decref(v);
}

/* ---------------------------------------------------------------- models */

Test(openai, models_list_and_retrieve) {
  NEED_SHARED();
  struct resp r = http("GET", "/v1/models", NULL);
  cr_assert_eq(r.status, 200);
  cr_expect_str_eq(r.ctype, "application/json");
  json_t *v = jparse(r.body);
  cr_expect_str_eq(jstr(v, "object"), "list");
  json_t *data = json_object_get(v, "data");
  cr_assert_eq(json_array_size(data), 1);
  json_t *m = json_array_get(data, 0);
  cr_expect_str_eq(jstr(m, "id"), "stories:latest");
  cr_expect_str_eq(jstr(m, "object"), "model");
  cr_expect_str_eq(jstr(m, "owned_by"), "library");
  json_int_t created = json_integer_value(json_object_get(m, "created"));
  cr_expect_gt(created, 1600000000);
  cr_expect_leq(created, (json_int_t)time(NULL) + 5);
  json_decref(v);
  free(r.body);

  r = http("GET", "/v1/models/stories", NULL);
  cr_assert_eq(r.status, 200, "%s", r.body);
  v = jparse(r.body);
  cr_expect_str_eq(jstr(v, "id"), "stories");
  cr_expect_str_eq(jstr(v, "object"), "model");
  cr_expect_str_eq(jstr(v, "owned_by"), "library");
  cr_expect_eq(json_integer_value(json_object_get(v, "created")), created);
  json_decref(v);
  free(r.body);

  r = http("GET", "/v1/models/nope", NULL);
  cr_assert_eq(r.status, 404);
  v = jparse(r.body);
  cr_expect(strstr(expect_error(v, "not_found_error"), "not found"));
  json_decref(v);
  free(r.body);
}

/* ---------------------------------------------------------------- errors */

#define MSGS "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"

Test(openai, errors_have_the_openai_shape) {
  NEED_SHARED();
  json_t *v =
      post_json("/v1/chat/completions",
                "{\"model\":\"nope\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404);
  cr_expect_str_eq(expect_error(v, "not_found_error"), "model 'nope' not found");
  json_decref(v);
  v = post_json("/v1/completions", "{\"model\":\"nope\",\"prompt\":\"x\"}", 404);
  cr_expect_str_eq(expect_error(v, "not_found_error"), "model 'nope' not found");
  json_decref(v);

  struct resp r = http("POST", "/v1/chat/completions", "{not json");
  cr_expect_eq(r.status, 400);
  cr_expect_str_eq(r.ctype, "application/json");
  v = jparse(r.body);
  expect_error(v, "invalid_request_error");
  json_decref(v);
  free(r.body);

  v = post_json("/v1/chat/completions", "", 400);
  expect_error(v, "invalid_request_error");
  json_decref(v);
  v = post_json("/v1/chat/completions", "{\"model\":\"stories\"}", 400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"), "[] is too short - 'messages'");
  json_decref(v);
  v = post_json("/v1/chat/completions", "{\"model\":\"stories\",\"messages\":[]}", 400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"), "[] is too short - 'messages'");
  json_decref(v);
  v = post_json("/v1/chat/completions",
                "{\"model\":\"\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"), "model is required");
  json_decref(v);
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":1.5}]}", 400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"),
                   "invalid message content type: float64");
  json_decref(v);
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                "\"max_tokens\":\"many\"}",
                400);
  cr_expect(strstr(expect_error(v, "invalid_request_error"), "max_tokens"));
  json_decref(v);
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                "\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]}",
                400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"),
                   "image URLs are not currently supported, please use base64 encoded data "
                   "instead");
  json_decref(v);
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                "\"reasoning_effort\":\"lots\"}",
                400);
  expect_error(v, "invalid_request_error");
  json_decref(v);
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"assistant\",\"content\":null,"
                "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                "\"arguments\":\"{bad\"}}]}]}",
                400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"), "invalid tool call arguments");
  json_decref(v);
  /* tools on a model whose template has none: the native 400. */
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{"
                "\"type\":\"object\",\"properties\":{}}}}]}",
                400);
  cr_expect(strstr(expect_error(v, "invalid_request_error"), "does not support tools"));
  json_decref(v);
  v = post_json("/v1/completions", "{\"model\":\"stories\",\"prompt\":\"x\",\"stop\":[\"a\",1]}",
                400);
  cr_expect_str_eq(expect_error(v, "invalid_request_error"),
                   "invalid type for 'stop' field: float64");
  json_decref(v);
  /* Each field of the wrong JSON type names the Go type it wants. */
  static const char *const typed[][3] = {
      {"/v1/chat/completions", "{\"model\":3,\"messages\":[]}", "string"},
      {"/v1/chat/completions", "{\"model\":\"stories\",\"messages\":\"x\"}", "[]openai.Message"},
      {"/v1/chat/completions", MSGS ",\"response_format\":\"json\"}", "openai.ResponseFormat"},
      {"/v1/chat/completions", MSGS ",\"tools\":{}}", "[]api.Tool"},
      {"/v1/chat/completions", MSGS ",\"stream\":\"yes\"}", "bool"},
      {"/v1/chat/completions", MSGS ",\"stream_options\":1}", "openai.StreamOptions"},
      {"/v1/completions", "{\"model\":\"stories\",\"prompt\":[\"x\"]}", "string"},
      {"/v1/completions", "{\"model\":\"stories\",\"prompt\":\"x\",\"suffix\":1}", "string"},
      {"/v1/completions", "{\"model\":\"stories\",\"prompt\":\"x\",\"stream\":1}", "bool"},
  };
  for (size_t i = 0; i < sizeof(typed) / sizeof(typed[0]); i++) {
    v = post_json(typed[i][0], typed[i][1], 400);
    const char *msg = expect_error(v, "invalid_request_error");
    cr_expect(strstr(msg, typed[i][2]) != NULL, "%s %s: %s", typed[i][0], typed[i][1], msg);
    json_decref(v);
  }
  /* Wrong method on a /v1 route: the router's 405. */
  r = http("GET", "/v1/chat/completions", NULL);
  cr_expect_eq(r.status, 405);
  free(r.body);
}

/* ---------------------------------------------------------------- client */

/* The official OpenAI JavaScript client (test/js-openai, npm package
 * "openai"), when node and its node_modules are present:
 * `npm install --prefix test/js-openai`. */
Test(openai, openai_js_client) {
  NEED_SHARED();
  const char *b = getenv("CLLAMA_BUILD");
  char root[600], cmd[1500];
  snprintf(root, sizeof(root), "%s/../..", b ? b : ".");
  snprintf(cmd, sizeof(cmd),
           "test -d '%s/test/js-openai/node_modules/openai' && node --version "
           ">/dev/null 2>&1",
           root);
  if (system(cmd) != 0) {
    fprintf(stderr, "SKIP: node or test/js-openai/node_modules missing "
                    "(npm install --prefix test/js-openai)\n");
    cr_skip("node or test/js-openai/node_modules missing");
  }
  snprintf(cmd, sizeof(cmd),
           "cd '%s/test/js-openai' && node client_test.mjs %s stories > '%s/js.out' 2>&1", root,
           H.base, H.dir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof(cmd), "cat '%s/js.out' >&2", H.dir);
    cr_expect_eq(system(cmd), 0);
  }
  cr_expect_eq(rc, 0);
}

/* ---------------------------------------------------------------- anthropic */

/* Whether id is prefix and 24 random lowercase hex digits. */
static bool random_id(const char *id, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(id, prefix, n) == 0 && strlen(id) == n + 24 &&
         strspn(id + n, "0123456789abcdef") == 24;
}

/* Parses "event: T\ndata: {json}\n\n" events into [{"event":T,"data":{...}}]. */
static json_t *anthropic_events(const char *body) {
  json_t *out = json_array();
  const char *p = body;
  while (*p) {
    cr_assert(strncmp(p, "event: ", 7) == 0, "not an event line: %.60s", p);
    const char *nl = strchr(p, '\n');
    cr_assert(nl);
    char type[64];
    snprintf(type, sizeof(type), "%.*s", (int)(nl - p - 7), p + 7);
    p = nl + 1;
    cr_assert(strncmp(p, "data: ", 6) == 0, "no data line: %.60s", p);
    p += 6;
    const char *end = strstr(p, "\n\n");
    cr_assert(end);
    json_error_t e;
    json_t *d = json_loadb(p, (size_t)(end - p), 0, &e);
    cr_assert(d, "bad data %.*s", (int)(end - p), p);
    cr_expect_str_eq(jstr(d, "type"), type);
    json_array_append_new(out, json_pack("{s:s,s:o}", "event", type, "data", d));
    p = end + 2;
  }
  return out;
}

Test(openai, anthropic_messages_json_and_stream) {
  NEED_SHARED();
  const char *req = "{\"model\":\"stories\",\"max_tokens\":16,\"temperature\":0,\"messages\":[{"
                    "\"role\":\"user\",\"content\":\"Once upon a time\"}]%s}";
  char body[512];
  snprintf(body, sizeof(body), req, "");
  struct resp r = http("POST", "/v1/messages", body);
  cr_assert_eq(r.status, 200, "%s", r.body);
  cr_expect_str_eq(r.ctype, "application/json");
  json_t *v = jparse(r.body);
  free(r.body);
  cr_expect(strncmp(jstr(v, "id"), "msg_", 4) == 0);
  cr_expect(random_id(jstr(v, "id"), "msg_"), "%s", jstr(v, "id"));
  cr_expect_str_eq(jstr(v, "type"), "message");
  cr_expect_str_eq(jstr(v, "role"), "assistant");
  cr_expect_str_eq(jstr(v, "model"), "stories");
  cr_expect_str_eq(jstr(v, "stop_reason"), "max_tokens");
  json_t *blk = json_array_get(json_object_get(v, "content"), 0);
  cr_expect_str_eq(jstr(blk, "type"), "text");
  const char *want = jstr(blk, "text");
  cr_expect_gt(strlen(want), 5);
  json_t *u = json_object_get(v, "usage");
  cr_expect_gt(json_integer_value(json_object_get(u, "input_tokens")), 0);
  cr_expect_eq(json_integer_value(json_object_get(u, "output_tokens")), 16);

  snprintf(body, sizeof(body), req, ",\"stream\":true");
  r = http("POST", "/v1/messages", body);
  cr_assert_eq(r.status, 200);
  cr_expect_str_eq(r.ctype, "text/event-stream");
  json_t *ev = anthropic_events(r.body);
  free(r.body);
  size_t n = json_array_size(ev), i;
  cr_assert_gt(n, 5);
  cr_expect_str_eq(jstr(json_array_get(ev, 0), "event"), "message_start");
  cr_expect_str_eq(jstr(json_array_get(ev, 1), "event"), "content_block_start");
  cr_expect_str_eq(jstr(json_array_get(ev, n - 3), "event"), "content_block_stop");
  cr_expect_str_eq(jstr(json_array_get(ev, n - 2), "event"), "message_delta");
  cr_expect_str_eq(jstr(json_array_get(ev, n - 1), "event"), "message_stop");
  char text[2048] = "";
  json_t *e;
  json_array_foreach(ev, i, e) {
    json_t *d = json_object_get(e, "data");
    if (strcmp(jstr(e, "event"), "content_block_delta") == 0) {
      json_t *delta = json_object_get(d, "delta");
      cr_expect_str_eq(jstr(delta, "type"), "text_delta");
      cr_expect_eq(json_integer_value(json_object_get(d, "index")), 0);
      strcat(text, jstr(delta, "text"));
    }
  }
  cr_expect_str_eq(text, want);
  json_t *md = json_object_get(json_array_get(ev, n - 2), "data");
  cr_expect_str_eq(jstr(json_object_get(md, "delta"), "stop_reason"), "max_tokens");
  cr_expect(json_equal(json_object_get(md, "usage"), u));
  json_decref(ev);
  json_decref(v);
}

static void setup_chatty(void) {
  if (!have_shared())
    return;
  make_store();
  /* Every message in the prompt (system and tool ones too). */
  add_model("chatty", "stories260K-f32.gguf",
            "{{ range .Messages }}{{ .Role }}: {{ .Content }}\n{{ end }}", NULL, NULL);
  start_server(NULL);
}

TestSuite(anthropic_prompt, .init = setup_chatty, .fini = teardown, .timeout = 120);

/* input_tokens of a one-token /v1/messages answer: the prompt's length. */
static json_int_t anthropic_input_tokens(const char *rest) {
  char body[2048];
  snprintf(body, sizeof(body), "{\"model\":\"chatty\",\"max_tokens\":1,%s}", rest);
  json_t *v = post_json("/v1/messages", body, 200);
  json_int_t n = json_integer_value(json_object_get(json_object_get(v, "usage"), "input_tokens"));
  json_decref(v);
  return n;
}

/* A system prompt and a tool_result's content may be text blocks: their
 * texts are joined (other blocks add nothing), the same prompt as one
 * string. */
Test(anthropic_prompt, text_blocks_join) {
  NEED_SHARED();
  const char *user = "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]";
  char rest[1024];
  json_int_t none = anthropic_input_tokens(user);
  snprintf(rest, sizeof(rest), "\"system\":\"Lily likes big cats.\",%s", user);
  json_int_t str = anthropic_input_tokens(rest);
  cr_expect_gt(str, none + 2);
  snprintf(rest, sizeof(rest),
           "\"system\":[{\"type\":\"text\",\"text\":\"Lily likes \"},{\"type\":\"image\","
           "\"text\":\"no\"},{\"type\":\"text\",\"text\":\"big cats.\"}],%s",
           user);
  cr_expect_eq(anthropic_input_tokens(rest), str);

  const char *call = "\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"},{\"role\":"
                     "\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":"
                     "\"w\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":"
                     "\"tool_result\",\"tool_use_id\":\"t1\",\"content\":%s}]}]";
  snprintf(rest, sizeof(rest), call, "\"sunny and warm\"");
  json_int_t one = anthropic_input_tokens(rest);
  snprintf(rest, sizeof(rest), call, "\"\"");
  cr_expect_gt(one, anthropic_input_tokens(rest) + 2);
  snprintf(rest, sizeof(rest), call,
           "[{\"type\":\"text\",\"text\":\"sunny \"},{\"type\":\"x\",\"text\":\"no\"},"
           "{\"type\":\"text\",\"text\":\"and warm\"}]");
  cr_expect_eq(anthropic_input_tokens(rest), one);
}

Test(openai, anthropic_errors) {
  NEED_SHARED();
  json_t *v = post_json("/v1/messages",
                        "{\"model\":\"nope\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\","
                        "\"content\":\"x\"}]}",
                        404);
  cr_expect_str_eq(jstr(v, "type"), "error");
  cr_expect(strncmp(jstr(v, "request_id"), "req_", 4) == 0);
  cr_expect(random_id(jstr(v, "request_id"), "req_"), "%s", jstr(v, "request_id"));
  json_t *e = json_object_get(v, "error");
  cr_expect_str_eq(jstr(e, "type"), "not_found_error");
  cr_expect_str_eq(jstr(e, "message"), "model 'nope' not found");
  json_decref(v);
  v = post_json("/v1/messages",
                "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                400);
  cr_expect_str_eq(jstr(json_object_get(v, "error"), "message"),
                   "max_tokens is required and must be positive");
  cr_expect_str_eq(jstr(json_object_get(v, "error"), "type"), "invalid_request_error");
  json_decref(v);
  v = post_json("/v1/messages", "{\"model\":\"stories\",\"max_tokens\":8,\"messages\":[]}", 400);
  cr_expect_str_eq(jstr(json_object_get(v, "error"), "message"), "messages is required");
  json_decref(v);
  v = post_json("/v1/messages", "{\"max_tokens\":8,\"messages\":[]}", 400);
  cr_expect_str_eq(jstr(json_object_get(v, "error"), "message"), "model is required");
  json_decref(v);
  v = post_json("/v1/messages", "{oops", 400);
  cr_expect_str_eq(jstr(json_object_get(v, "error"), "type"), "invalid_request_error");
  json_decref(v);
}

/* The official Anthropic JavaScript client (test/js-openai, npm package
 * "@anthropic-ai/sdk"), when node and its node_modules are present. */
Test(openai, anthropic_js_client) {
  NEED_SHARED();
  const char *b = getenv("CLLAMA_BUILD");
  char root[600], cmd[1500];
  snprintf(root, sizeof(root), "%s/../..", b ? b : ".");
  snprintf(cmd, sizeof(cmd),
           "test -d '%s/test/js-openai/node_modules/@anthropic-ai/sdk' && "
           "node --version >/dev/null 2>&1",
           root);
  if (system(cmd) != 0) {
    fprintf(stderr, "SKIP: node or test/js-openai/node_modules missing "
                    "(npm install --prefix test/js-openai)\n");
    cr_skip("node or test/js-openai/node_modules missing");
  }
  snprintf(cmd, sizeof(cmd),
           "cd '%s/test/js-openai' && node anthropic_test.mjs %s stories > '%s/js.out' 2>&1", root,
           H.base, H.dir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof(cmd), "cat '%s/js.out' >&2", H.dir);
    cr_expect_eq(system(cmd), 0);
  }
  cr_expect_eq(rc, 0);
}
