/* test_api_generate.c — /api/generate, /api/chat, /api/ps and the error
 * cases of OLLAMA_API.md §2, through HTTP against `cllama serve` on the
 * shared stories260K model: greedy and seeded text, stop strings,
 * load/unload, batching, the model template, the queue. Thinking, tools,
 * logprobs, tool_choice and /v1/responses are in
 * test_api_generate_tools.c. */
#include "api_harness.h"

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

TestSuite(api_generate, .init = setup, .fini = teardown, .timeout = 120);

static const char *GREEDY =
    "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"options\":{\"temperature\":0,"
    "\"num_predict\":32}}";

Test(api_generate, greedy_text_equals_reference) {
  NEED_SHARED();
  json_t *v = post_json("/api/generate", GREEDY, 200);
  cr_expect_str_eq(jstr(v, "response"), ref_greedy_text());
  cr_expect_str_eq(jstr(v, "model"), "stories");
  cr_expect(json_is_true(json_object_get(v, "done")));
  cr_expect_str_eq(jstr(v, "done_reason"), "length");
  /* Statistics present and plausible. */
  json_int_t total = json_integer_value(json_object_get(v, "total_duration"));
  json_int_t ev = json_integer_value(json_object_get(v, "eval_duration"));
  json_int_t pev = json_integer_value(json_object_get(v, "prompt_eval_duration"));
  cr_expect_eq(json_integer_value(json_object_get(v, "prompt_eval_count")), 5);
  cr_expect_eq(json_integer_value(json_object_get(v, "eval_count")), 32);
  cr_expect_gt(ev, 0);
  cr_expect_gt(pev, 0);
  cr_expect_geq(total, ev + pev);
  cr_expect_gt(json_integer_value(json_object_get(v, "load_duration")), 0);
  /* context = prompt tokens + the answer's tokens. */
  cr_expect_eq(json_array_size(json_object_get(v, "context")), 5 + 32);
  const char *created = jstr(v, "created_at");
  cr_expect(strlen(created) > 20 && created[strlen(created) - 1] == 'Z', "%s", created);
  json_decref(v);
}

Test(api_generate, stream_and_non_stream_give_the_same_text) {
  NEED_SHARED();
  struct resp r = http("POST", "/api/generate",
                       "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"stream\":true,"
                       "\"options\":{\"temperature\":0,\"num_predict\":32}}");
  cr_assert_eq(r.status, 200);
  cr_expect(strstr(r.ctype, "application/x-ndjson") != NULL, "%s", r.ctype);
  char text[4096];
  int n;
  json_t *last = ndjson_collect(r.body, text, sizeof(text), &n);
  cr_expect_str_eq(text, ref_greedy_text());
  cr_expect_gt(n, 10);
  cr_expect(json_is_true(json_object_get(last, "done")));
  cr_expect_str_eq(jstr(last, "done_reason"), "length");
  cr_expect_str_eq(jstr(last, "response"), "");
  cr_expect_eq(json_integer_value(json_object_get(last, "eval_count")), 32);
  json_decref(last);
  free(r.body);
}

/* The sampled answer (temperature 1) for a seed; seed < 0: no seed. */
static char *sampled_text(int seed) {
  char req[300], opt[32] = "";
  if (seed >= 0)
    snprintf(opt, sizeof(opt), "\"seed\":%d,", seed);
  snprintf(req, sizeof(req),
           "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"options\":"
           "{%s\"temperature\":1.0,\"num_predict\":24}}",
           opt);
  json_t *v = post_json("/api/generate", req, 200);
  char *s = strdup(jstr(v, "response"));
  json_decref(v);
  return s;
}

/* A seed fixes the sampled text; another seed, or none, gives another one
 * (24 tokens at temperature 1: a different stream of draws changes the text
 * all but surely; three tries each keep a coincidence from failing it). */
Test(api_generate, same_seed_same_text) {
  NEED_SHARED();
  char *a = sampled_text(1234), *b = sampled_text(1234);
  cr_expect_str_eq(a, b, "the same seed gave two texts");
  int other_seed_differs = 0, no_seed_differs = 0;
  char *prev = sampled_text(-1);
  for (int i = 0; i < 3; i++) {
    char *o = sampled_text(1235 + i);
    other_seed_differs += strcmp(o, a) != 0;
    free(o);
    char *n = sampled_text(-1);
    no_seed_differs += strcmp(n, prev) != 0;
    free(prev);
    prev = n;
  }
  free(prev);
  cr_expect_gt(other_seed_differs, 0, "seeds 1235..1237 all gave seed 1234's text: \"%s\"", a);
  cr_expect_gt(no_seed_differs, 0,
               "without a seed every answer was the same: a fixed seed is used");
  free(a);
  free(b);
}

Test(api_generate, stop_string_ends_the_answer) {
  NEED_SHARED();
  json_t *v = post_json("/api/generate",
                        "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"options\":"
                        "{\"temperature\":0,\"num_predict\":32,\"stop\":[\"Lily\"]}}",
                        200);
  cr_expect_str_eq(jstr(v, "response"), ", there was a little girl named ");
  cr_expect_str_eq(jstr(v, "done_reason"), "stop");
  json_decref(v);
}

Test(api_generate, load_unload_and_ps) {
  NEED_SHARED();
  json_t *v = post_json("/api/generate", "{\"model\":\"stories\"}", 200);
  cr_expect_str_eq(jstr(v, "done_reason"), "load");
  json_decref(v);
  struct resp r = http("GET", "/api/ps", NULL);
  json_t *ps = jparse(r.body);
  free(r.body);
  json_t *m = json_array_get(json_object_get(ps, "models"), 0);
  cr_assert(m, "model not in /api/ps");
  cr_expect_str_eq(jstr(m, "name"), "stories:latest");
  cr_expect_eq(strlen(jstr(m, "digest")), 64);
  cr_expect_gt(json_integer_value(json_object_get(m, "size")), 0);
  cr_expect_eq(json_integer_value(json_object_get(m, "context_length")), 128);
  cr_expect(json_object_get(m, "expires_at") && json_object_get(m, "details"));
  json_decref(ps);
  v = post_json("/api/generate", "{\"model\":\"stories\",\"keep_alive\":0}", 200);
  cr_expect_str_eq(jstr(v, "done_reason"), "unload");
  json_decref(v);
  r = http("GET", "/api/ps", NULL);
  cr_expect_str_eq(r.body, "{\"models\":[],\"queue_depth\":0}");
  free(r.body);
}

static bool ps_empty_within(int ms) {
  for (int i = 0; i < ms / 20; i++) {
    struct resp r = http("GET", "/api/ps", NULL);
    bool empty = strstr(r.body, "\"models\":[]") != NULL;
    free(r.body);
    if (empty)
      return true;
    usleep(20000);
  }
  return false;
}

Test(api_generate, keep_alive_zero_unloads_after_the_request) {
  NEED_SHARED();
  json_t *v = post_json("/api/generate",
                        "{\"model\":\"stories\",\"prompt\":\"Once\",\"keep_alive\":0,"
                        "\"options\":{\"num_predict\":4}}",
                        200);
  json_decref(v);
  cr_expect(ps_empty_within(2000), "model still loaded");
}

Test(api_generate, disconnect_mid_stream_frees_the_model) {
  NEED_SHARED();
  struct resp r = {0};
  r.abort_after = 300; /* a few chunks, then the client goes away */
  CURL *c = mk_easy("POST", "/api/generate",
                    "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"stream\":true,"
                    "\"keep_alive\":0,\"options\":{\"num_predict\":100000}}",
                    &r);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  cr_expect_eq(rc, CURLE_WRITE_ERROR);
  free(r.body);
  /* keep_alive 0: the model unloads as soon as the sequence has left. */
  cr_expect(ps_empty_within(3000), "generation kept the model after the client left");
}

Test(api_generate, batched_requests_equal_each_alone) {
  NEED_SHARED();
  static const char *prompts[] = {"Once upon a time", "The cat", "Lily and Tom went",
                                  "One day a big dog"};
  enum { N = 4 };
  char bodies[N][256], alone[N][2048];
  for (int i = 0; i < N; i++) {
    snprintf(bodies[i], sizeof(bodies[i]),
             "{\"model\":\"stories\",\"prompt\":\"%s\",\"options\":{\"temperature\":0,"
             "\"num_predict\":40}}",
             prompts[i]);
    json_t *v = post_json("/api/generate", bodies[i], 200);
    snprintf(alone[i], sizeof(alone[i]), "%s", jstr(v, "response"));
    json_decref(v);
  }
  CURLM *m = curl_multi_init();
  struct resp rs[N];
  CURL *cs[N];
  memset(rs, 0, sizeof(rs));
  for (int i = 0; i < N; i++) {
    cs[i] = mk_easy("POST", "/api/generate", bodies[i], &rs[i]);
    curl_multi_add_handle(m, cs[i]);
  }
  int running = 1;
  while (running) {
    curl_multi_perform(m, &running);
    curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  for (int i = 0; i < N; i++) {
    json_t *v = jparse(rs[i].body);
    cr_expect_str_eq(jstr(v, "response"), alone[i], "prompt %d", i);
    json_decref(v);
    free(rs[i].body);
    curl_multi_remove_handle(m, cs[i]);
    curl_easy_cleanup(cs[i]);
  }
  curl_multi_cleanup(m);
}

Test(api_generate, stalled_reader_does_not_stop_the_others) {
  NEED_SHARED();
  /* A raw socket that sends a streaming request and never reads. */
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)H.port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  const char *body = "{\"model\":\"stories\",\"prompt\":\"Once\",\"stream\":true,"
                     "\"options\":{\"num_predict\":100000}}";
  char req[512];
  int n =
      snprintf(req, sizeof(req),
               "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s",
               strlen(body), body);
  cr_assert_eq(write(fd, req, (size_t)n), n);
  usleep(200000);
  /* The loop keeps answering while the engine works (how fast is a
   * benchmark's question, not a test's). */
  for (int i = 0; i < 5; i++) {
    struct resp r = http("GET", "/", NULL);
    cr_expect_eq(r.status, 200);
    free(r.body);
    r = http("GET", "/api/tags", NULL);
    cr_expect_eq(r.status, 200);
    free(r.body);
  }
  json_t *v = post_json("/api/generate", GREEDY, 200);
  cr_expect_str_eq(jstr(v, "response"), ref_greedy_text());
  json_decref(v);
  close(fd);
}

/* ---------------------------------------------------------------- errors */

static void expect_error(const char *path, const char *body, long status, const char *msg) {
  json_t *v = post_json(path, body, status);
  cr_expect_str_eq(jstr(v, "error"), msg, "%s %s", path, body);
  json_decref(v);
}

Test(api_generate, errors_as_ollama) {
  NEED_SHARED();
  struct resp r = http("POST", "/api/generate", "{\"model\":");
  cr_expect_eq(r.status, 400);
  free(r.body);
  expect_error("/api/generate", "", 400, "missing request body");
  expect_error("/api/generate", "{\"prompt\":\"x\"}", 404, "model '' not found");
  expect_error("/api/generate", "{\"model\":\"nope\",\"prompt\":\"x\"}", 404,
               "model 'nope' not found");
  expect_error("/api/chat", "{\"messages\":[]}", 400, "model is required");
  expect_error("/api/chat", "{\"model\":\"nope\",\"messages\":[]}", 404, "model 'nope' not found");
  expect_error("/api/generate", "{\"model\":\"bad name!\",\"prompt\":\"x\"}", 400,
               "invalid model name");
  expect_error("/api/generate",
               "{\"model\":\"stories\",\"prompt\":\"x\",\"options\":{\"temperature\":\"hot\"}}",
               500, "option \"temperature\" must be of type float32");
  expect_error("/api/generate",
               "{\"model\":\"stories\",\"prompt\":\"x\",\"options\":{\"num_predict\":\"a\"}}", 500,
               "option \"num_predict\" must be of type integer");
  expect_error("/api/generate",
               "{\"model\":\"stories\",\"prompt\":\"x\",\"raw\":true,\"template\":\"{{.Prompt}}\"}",
               400, "raw mode does not support template, system, or context");
  expect_error("/api/generate", "{\"model\":\"stories\",\"prompt\":\"x\",\"keep_alive\":\"10\"}",
               400, "time: missing unit in duration \"10\"");
  expect_error("/api/chat",
               "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],"
               "\"think\":true}",
               400, "\"stories\" does not support thinking");
  expect_error("/api/generate", "{\"model\":\"stories\",\"prompt\":\"x\",\"think\":\"lots\"}", 400,
               "invalid think value: \"lots\" (must be \"high\", \"medium\", \"low\", \"max\", "
               "true, or false)");
  expect_error("/api/generate", "{\"model\":\"stories\",\"prompt\":\"x\",\"top_logprobs\":21}", 400,
               "top_logprobs must be between 0 and 20");
  /* Unknown options are ignored. */
  json_t *v = post_json("/api/generate",
                        "{\"model\":\"stories\",\"prompt\":\"Once\",\"options\":{\"mirostat\":1,"
                        "\"num_predict\":2}}",
                        200);
  json_decref(v);
}

Test(api_generate, prompt_longer_than_num_ctx_is_truncated_and_says_so) {
  NEED_SHARED();
  char body[8192];
  int n = snprintf(body, sizeof(body), "{\"model\":\"stories\",\"prompt\":\"");
  for (int i = 0; i < 100; i++)
    n += snprintf(body + n, sizeof(body) - (size_t)n, "the cat sat. ");
  snprintf(body + n, sizeof(body) - (size_t)n,
           "\",\"options\":{\"num_ctx\":64,\"num_predict\":4,\"temperature\":0}}");
  json_t *v = post_json("/api/generate", body, 200);
  cr_expect(json_is_true(json_object_get(v, "truncated")));
  cr_expect_lt(json_integer_value(json_object_get(v, "prompt_eval_count")), 64);
  json_decref(v);
  /* With truncate false it is refused. */
  char body2[8300];
  snprintf(body2, sizeof(body2), "%.*s,\"truncate\":false}", (int)strlen(body) - 1, body);
  v = post_json("/api/generate", body2, 400);
  cr_expect(strstr(jstr(v, "error"), "longer than the context length") != NULL);
  json_decref(v);
}

/* ---------------------------------------------------------------- templates */

static void setup_tmpl(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("stories", "stories260K-f32.gguf", NULL, NULL, NULL);
  add_model("legacy", "stories260K-f32.gguf",
            "{{ if .System }}{{ .System }} {{ end }}{{ .Prompt }}", "Once upon a time",
            "{\"temperature\":0,\"num_predict\":16}");
  add_model("msgs", "stories260K-f32.gguf",
            "{{- range .Messages }}{{ if eq .Role \"assistant\" }}, {{ end }}{{ .Content }}"
            "{{ end }}",
            NULL, "{\"temperature\":0,\"num_predict\":16}");
  start_server(NULL);
}

TestSuite(api_chat, .init = setup_tmpl, .fini = teardown, .timeout = 120);

static char *raw_answer(const char *prompt) {
  char body[1024];
  snprintf(body, sizeof(body),
           "{\"model\":\"stories\",\"raw\":true,\"prompt\":\"%s\",\"options\":"
           "{\"temperature\":0,\"num_predict\":16}}",
           prompt);
  json_t *v = post_json("/api/generate", body, 200);
  char *s = strdup(jstr(v, "response"));
  cr_expect(json_object_get(v, "context") == NULL, "raw answers carry no context");
  json_decref(v);
  return s;
}

Test(api_chat, chat_renders_through_the_model_template) {
  NEED_SHARED();
  /* Legacy template with the model's SYSTEM layer and params layer. */
  char *want = raw_answer("Once upon a time there was");
  json_t *v = post_json("/api/chat",
                        "{\"model\":\"legacy\",\"messages\":[{\"role\":\"User\",\"content\":"
                        "\"there was\"}]}",
                        200);
  json_t *msg = json_object_get(v, "message");
  cr_expect_str_eq(jstr(msg, "role"), "assistant");
  cr_expect_str_eq(jstr(msg, "content"), want);
  cr_expect(json_object_get(v, "context") == NULL);
  cr_expect_gt(json_integer_value(json_object_get(v, "prompt_eval_count")), 5);
  json_decref(v);
  free(want);
  /* A request system message replaces the model's. */
  want = raw_answer("The cat there was");
  v = post_json("/api/chat",
                "{\"model\":\"legacy\",\"messages\":[{\"role\":\"system\",\"content\":\"The "
                "cat\"},{\"role\":\"user\",\"content\":\"there was\"}]}",
                200);
  cr_expect_str_eq(jstr(json_object_get(v, "message"), "content"), want);
  json_decref(v);
  free(want);
  /* options.system (the seed's reference) works as a system prompt too. */
  want = raw_answer("Lily there was");
  v = post_json("/api/chat",
                "{\"model\":\"legacy\",\"options\":{\"system\":\"Lily\"},\"messages\":[{\"role\":"
                "\"user\",\"content\":\"there was\"}]}",
                200);
  cr_expect_str_eq(jstr(json_object_get(v, "message"), "content"), want);
  json_decref(v);
  free(want);
}

Test(api_chat, messages_template_and_streaming_chat) {
  NEED_SHARED();
  char *want = raw_answer("Once upon a time, there was");
  const char *req = "{\"model\":\"msgs\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                    "\"content\":\"Once upon a time\"},{\"role\":\"assistant\",\"content\":"
                    "\"there was\"}]}";
  struct resp r = http("POST", "/api/chat", req);
  cr_assert_eq(r.status, 200);
  char text[4096];
  int n;
  json_t *last = ndjson_collect(r.body, text, sizeof(text), &n);
  cr_expect_str_eq(text, want);
  cr_expect(json_is_true(json_object_get(last, "done")));
  cr_expect_str_eq(jstr(json_object_get(last, "message"), "content"), "");
  json_decref(last);
  free(r.body);
  free(want);
  /* Load and unload idioms of chat. */
  json_t *v = post_json("/api/chat", "{\"model\":\"msgs\",\"messages\":[]}", 200);
  cr_expect_str_eq(jstr(v, "done_reason"), "load");
  json_decref(v);
  v = post_json("/api/chat", "{\"model\":\"msgs\",\"messages\":[],\"keep_alive\":0}", 200);
  cr_expect_str_eq(jstr(v, "done_reason"), "unload");
  json_decref(v);
}

/* ---------------------------------------------------------------- queue */

static void setup_queue(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("stories", "stories260K-f32.gguf", NULL, NULL, NULL);
  static const char *const env[] = {"OLLAMA_MAX_QUEUE=1", "OLLAMA_NUM_PARALLEL=1", NULL};
  start_server(env);
}

TestSuite(api_queue, .init = setup_queue, .fini = teardown, .timeout = 120);

/* One sequence slot (OLLAMA_NUM_PARALLEL=1): a generation of ten million
 * tokens (most of an hour) whose client goes away must give its sequence
 * back, or the next request never runs. (The test above cannot tell: its
 * abandoned sequence would end by itself within the wait.) */
Test(api_queue, disconnect_mid_stream_frees_the_sequence) {
  NEED_SHARED();
  struct resp r = {0};
  r.abort_after = 300; /* a few chunks, then the client goes away */
  CURL *c = mk_easy("POST", "/api/generate",
                    "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"stream\":true,"
                    "\"options\":{\"num_predict\":10000000}}",
                    &r);
  CURLcode rc = curl_easy_perform(c);
  curl_easy_cleanup(c);
  cr_expect_eq(rc, CURLE_WRITE_ERROR);
  free(r.body);
  memset(&r, 0, sizeof(r));
  c = mk_easy("POST", "/api/generate",
              "{\"model\":\"stories\",\"prompt\":\"Once\",\"options\":{\"num_predict\":4}}", &r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
  rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(c);
  cr_expect_eq(rc, CURLE_OK, "the next request did not finish: the left sequence kept the slot");
  cr_expect_eq(status, 200, "next request: %ld %s", status, r.body ? r.body : "");
  free(r.body);
}

Test(api_queue, full_queue_answers_503) {
  NEED_SHARED();
  enum { N = 5 };
  CURLM *m = curl_multi_init();
  struct resp rs[N];
  CURL *cs[N];
  memset(rs, 0, sizeof(rs));
  for (int i = 0; i < N; i++) {
    cs[i] = mk_easy("POST", "/api/generate",
                    "{\"model\":\"stories\",\"prompt\":\"Once upon a time\",\"options\":"
                    "{\"num_predict\":100}}",
                    &rs[i]);
    curl_multi_add_handle(m, cs[i]);
  }
  int running = 1;
  while (running) {
    curl_multi_perform(m, &running);
    curl_multi_poll(m, NULL, 0, 100, NULL);
  }
  int n_ok = 0, n_busy = 0;
  for (int i = 0; i < N; i++) {
    long st;
    curl_easy_getinfo(cs[i], CURLINFO_RESPONSE_CODE, &st);
    if (st == 200)
      n_ok++;
    if (st == 503) {
      n_busy++;
      cr_expect_str_eq(rs[i].body, "{\"error\":\"server busy, please try again.  maximum pending "
                                   "requests exceeded\"}");
    }
    free(rs[i].body);
    curl_multi_remove_handle(m, cs[i]);
    curl_easy_cleanup(cs[i]);
  }
  curl_multi_cleanup(m);
  cr_expect_gt(n_ok, 0);
  cr_expect_gt(n_busy, 0);
  cr_expect_eq(n_ok + n_busy, N);
}
