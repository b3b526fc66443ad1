/* test_api_generate_tools.c — thinking, tools, logprobs, tool_choice and
 * /v1/responses through HTTP against `cllama serve` on the shared
 * stories260K model (the plain generate and chat cases are in
 * test_api_generate.c). */
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

static void expect_error(const char *path, const char *body, long status, const char *msg) {
  json_t *v = post_json(path, body, status);
  cr_expect_str_eq(jstr(v, "error"), msg, "%s %s", path, body);
  json_decref(v);
}

/* ------------------------------------------------------- thinking and tools */

/* A template that renders thoughts, tools, tool calls and tool results,
 * and opens (or refuses) a thinking block by .Think / .IsThinkSet. */
static const char *THINKER =
    "{{- if .Tools }}Tools: {{ .Tools }}\n{{ end }}"
    "{{- range .Messages }}<|{{ .Role }}|>{{ .Content }}"
    "{{- if .Thinking }}<think>{{ .Thinking }}</think>{{ end }}"
    "{{- if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{\"name\":\"{{ .Function.Name }}\","
    "\"arguments\":{{ .Function.Arguments }}}{{ end }}</tool_call>{{ end }}"
    "{{- if .ToolName }}[{{ .ToolName }}]{{ end }}\n{{ end }}"
    "<|assistant|>{{ if and .IsThinkSet .Think }}<think>{{ else if .IsThinkSet }}<nothink>{{ end "
    "}}";

static void setup_think(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("stories", "stories260K-f32.gguf", NULL, NULL, NULL);
  add_model("thinker", "stories260K-f32.gguf", THINKER, NULL,
            "{\"temperature\":0,\"num_predict\":16}");
  add_model("plain", "stories260K-f32.gguf", "{{ range .Messages }}{{ .Content }}{{ end }}", NULL,
            "{\"temperature\":0,\"num_predict\":16}");
  start_server(NULL);
}

TestSuite(api_think, .init = setup_think, .fini = teardown, .timeout = 120);

static bool has_cap(json_t *show, const char *cap) {
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(show, "capabilities"), i, c) {
    if (strcmp(json_string_value(c), cap) == 0)
      return true;
  }
  return false;
}

/* The prompt the server renders for a chat body (via _debug_render_only). */
static char *rendered(const char *fields) {
  char body[4096];
  snprintf(body, sizeof(body), "{\"model\":\"thinker\",\"_debug_render_only\":true,%s}", fields);
  json_t *v = post_json("/api/chat", body, 200);
  const char *r = jstr(json_object_get(v, "_debug_info"), "rendered_template");
  cr_assert(r, "no rendered_template for %s", body);
  char *s = strdup(r);
  json_decref(v);
  return s;
}

static bool ends_with(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

Test(api_think, capabilities_follow_the_template) {
  NEED_SHARED();
  json_t *v = post_json("/api/show", "{\"model\":\"thinker\"}", 200);
  cr_expect(has_cap(v, "thinking"), "a template that renders thoughts can think");
  cr_expect(has_cap(v, "tools"));
  json_decref(v);
  v = post_json("/api/show", "{\"model\":\"plain\"}", 200);
  cr_expect(!has_cap(v, "thinking"));
  cr_expect(!has_cap(v, "tools"));
  json_decref(v);
  expect_error("/api/chat",
               "{\"model\":\"plain\",\"think\":true,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"hi\"}]}",
               400, "\"plain\" does not support thinking");
  expect_error("/api/chat",
               "{\"model\":\"plain\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
               "\"f\"}}],\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
               400, "registry.ollama.ai/library/plain:latest does not support tools");
  expect_error("/api/chat",
               "{\"model\":\"thinker\",\"think\":\"lots\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}]}",
               400,
               "invalid think value: \"lots\" (must be \"high\", \"medium\", \"low\", "
               "\"max\", true, or false)");
}

Test(api_think, think_values_reach_the_template) {
  NEED_SHARED();
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]";
  char f[1024];
  snprintf(f, sizeof(f), "\"think\":true,%s", msgs);
  char *s = rendered(f);
  cr_expect(ends_with(s, "<|assistant|><think>"), "think true: %s", s);
  free(s);
  snprintf(f, sizeof(f), "\"think\":false,%s", msgs);
  s = rendered(f);
  cr_expect(ends_with(s, "<|assistant|><nothink>"), "think false renders the no-thinking form: %s",
            s);
  free(s);
  s = rendered(msgs);
  cr_expect(ends_with(s, "<|assistant|>"), "no think keeps the template's default: %s", s);
  free(s);
}

Test(api_think, history_tools_and_results_are_rendered) {
  NEED_SHARED();
  char *s = rendered(
      "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
      "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}}}],"
      "\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"},{\"role\":\"assistant\","
      "\"content\":\"\",\"thinking\":\"need it\",\"tool_calls\":[{\"function\":{\"name\":"
      "\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},{\"role\":\"tool\",\"content\":"
      "\"sunny\",\"tool_name\":\"get_weather\"}]");
  cr_expect(strstr(s, "Tools: [{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"") !=
                NULL,
            "%s", s);
  cr_expect(strstr(s, "<|assistant|><think>need it</think><tool_call>{\"name\":\"get_weather\","
                      "\"arguments\":{\"city\":\"Paris\"}}</tool_call>") != NULL,
            "%s", s);
  cr_expect(strstr(s, "<|tool|>sunny[get_weather]") != NULL, "%s", s);
  free(s);
}

/* The raw continuation of text by the same weights (greedy, 16 tokens). */
static char *raw_of(const char *prompt) {
  json_t *body = json_pack("{s:s,s:b,s:s,s:{s:i,s:i}}", "model", "stories", "raw", 1, "prompt",
                           prompt, "options", "temperature", 0, "num_predict", 16);
  char *b = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  json_t *v = post_json("/api/generate", b, 200);
  free(b);
  char *s = strdup(jstr(v, "response"));
  json_decref(v);
  return s;
}

Test(api_think, think_true_returns_the_thoughts_separately) {
  NEED_SHARED();
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]";
  char f[1024];
  snprintf(f, sizeof(f), "\"think\":true,%s", msgs);
  char *prompt = rendered(f);
  char *raw = raw_of(prompt);
  const char *want = raw;
  while (*want == ' ' || *want == '\n')
    want++; /* blanks after the opening tag are trimmed */
  cr_assert_gt(strlen(want), 0);
  char body[2048];
  snprintf(body, sizeof(body), "{\"model\":\"thinker\",\"stream\":false,%s}", f);
  json_t *v = post_json("/api/chat", body, 200);
  json_t *m = json_object_get(v, "message");
  cr_expect_str_eq(jstr(m, "thinking"), want, "the prompt opened <think>: all output is thought");
  cr_expect_str_eq(jstr(m, "content"), "");
  json_decref(v);
  /* Streamed: thinking chunks join to the same thoughts. */
  snprintf(body, sizeof(body), "{\"model\":\"thinker\",\"stream\":true,%s}", f);
  struct resp r = http("POST", "/api/chat", body);
  cr_assert_eq(r.status, 200);
  char joined[4096] = "";
  for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *c = jparse(line);
    const char *t = jstr(json_object_get(c, "message"), "thinking");
    if (t)
      strncat(joined, t, sizeof(joined) - strlen(joined) - 1);
    json_decref(c);
  }
  cr_expect_str_eq(joined, want);
  free(r.body);
  /* OpenAI: reasoning_effort maps to think; thoughts as reasoning_content. */
  v = post_json("/v1/chat/completions",
                "{\"model\":\"thinker\",\"reasoning_effort\":\"high\",\"temperature\":0,"
                "\"max_tokens\":16,\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a "
                "time\"}]}",
                200);
  json_t *om = json_object_get(json_array_get(json_object_get(v, "choices"), 0), "message");
  cr_expect_str_eq(jstr(om, "reasoning_content"), want);
  cr_expect_str_eq(jstr(om, "content"), "");
  json_decref(v);
  /* think false: no block opened, the output is the answer. */
  snprintf(body, sizeof(body), "{\"model\":\"thinker\",\"stream\":false,\"think\":false,%s}", msgs);
  v = post_json("/api/chat", body, 200);
  m = json_object_get(v, "message");
  cr_expect(json_object_get(m, "thinking") == NULL);
  cr_expect_gt(strlen(jstr(m, "content")), 0);
  json_decref(v);
  free(raw);
  free(prompt);
}

Test(api_think, images_are_checked_never_ignored) {
  NEED_SHARED();
  expect_error("/api/chat",
               "{\"model\":\"thinker\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\","
               "\"images\":[\"not base64!\"]}]}",
               400, "illegal base64 data at input byte 3");
  expect_error("/api/chat",
               "{\"model\":\"thinker\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\","
               "\"images\":[\"aGVsbG8=\"]}]}",
               400, "\"thinker\" does not support images");
  expect_error("/api/generate",
               "{\"model\":\"thinker\",\"prompt\":\"hi\",\"images\":[\"aGVsbG8=\"]}", 400,
               "\"thinker\" does not support images");
}

/* ---------------------------------------------------------------- logprobs */

TestSuite(api_logprobs, .init = setup, .fini = teardown, .timeout = 120);

/* log-softmax of the reference logits for "Once upon a time" (a float64
 * forward pass; ours differs by float32 rounding), best
 * first: lp[0..5). */
static void ref_top5(double lp[5]) {
  char path[600];
  snprintf(path, sizeof(path), "%s/ref/stories260K-f32/p1.numpy_f64.logits.f32", shared_dir());
  FILE *f = fopen(path, "rb");
  cr_assert(f, "missing %s", path);
  float x[512];
  cr_assert_eq(fread(x, 4, 512, f), 512);
  fclose(f);
  double mx = -1e30, sum = 0;
  for (int i = 0; i < 512; i++)
    mx = x[i] > mx ? x[i] : mx;
  for (int i = 0; i < 512; i++)
    sum += exp(x[i] - mx);
  double lse = mx + log(sum);
  bool used[512] = {false};
  for (int k = 0; k < 5; k++) {
    int best = -1;
    for (int i = 0; i < 512; i++)
      if (!used[i] && (best < 0 || x[i] > x[best]))
        best = i;
    used[best] = true;
    lp[k] = x[best] - lse;
  }
}

/* One entry {token, logprob, bytes, top_logprobs[5]} against the reference. */
static void check_entry(json_t *e, const double want[5]) {
  cr_assert(json_is_object(e));
  double lp = json_number_value(json_object_get(e, "logprob"));
  cr_expect(fabs(lp - want[0]) < 5e-3, "sampled token: %f, want %f", lp, want[0]);
  cr_expect(json_is_array(json_object_get(e, "bytes")));
  json_t *top = json_object_get(e, "top_logprobs");
  cr_assert_eq(json_array_size(top), 5);
  for (size_t k = 0; k < 5; k++) {
    double t = json_number_value(json_object_get(json_array_get(top, k), "logprob"));
    cr_expect(fabs(t - want[k]) < 5e-3, "top %zu: %f, want %f", k, t, want[k]);
  }
  cr_expect_str_eq(jstr(e, "token"), jstr(json_array_get(top, 0), "token"),
                   "greedy picks the most likely token");
}

Test(api_logprobs, equal_log_softmax_of_the_logits_in_every_api) {
  NEED_SHARED();
  double want[5];
  ref_top5(want);
  json_t *v = post_json("/api/generate",
                        "{\"model\":\"stories\",\"raw\":true,\"prompt\":\"Once upon a time\","
                        "\"stream\":false,\"logprobs\":true,\"top_logprobs\":5,\"options\":"
                        "{\"temperature\":0,\"num_predict\":3}}",
                        200);
  json_t *lps = json_object_get(v, "logprobs");
  cr_assert_eq(json_array_size(lps), 3);
  check_entry(json_array_get(lps, 0), want);
  json_decref(v);
  /* Streamed: each chunk carries the entries of its tokens. */
  struct resp r = http("POST", "/api/generate",
                       "{\"model\":\"stories\",\"raw\":true,\"prompt\":\"Once upon a time\","
                       "\"stream\":true,\"logprobs\":true,\"top_logprobs\":5,\"options\":"
                       "{\"temperature\":0,\"num_predict\":3}}");
  cr_assert_eq(r.status, 200);
  int n = 0;
  for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
    json_t *c = jparse(line);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(c, "logprobs"), i, e) {
      if (n++ == 0)
        check_entry(e, want);
    }
    json_decref(c);
  }
  cr_expect_eq(n, 3);
  free(r.body);
  /* OpenAI chat: choices[0].logprobs.content. */
  v = post_json("/v1/chat/completions",
                "{\"model\":\"stories\",\"temperature\":0,\"max_tokens\":2,\"logprobs\":true,"
                "\"top_logprobs\":5,\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a "
                "time\"}]}",
                200);
  json_t *content = json_object_get(
      json_object_get(json_array_get(json_object_get(v, "choices"), 0), "logprobs"), "content");
  cr_assert_eq(json_array_size(content), 2);
  check_entry(json_array_get(content, 0), want);
  json_decref(v);
  /* Without logprobs: no field. */
  v = post_json("/api/generate",
                "{\"model\":\"stories\",\"raw\":true,\"prompt\":\"Once upon a time\","
                "\"stream\":false,\"options\":{\"temperature\":0,\"num_predict\":2}}",
                200);
  cr_expect(json_object_get(v, "logprobs") == NULL);
  json_decref(v);
}

/* ---------------------------------------------------------------- tool_choice */

static const char *TOOLS =
    "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":\"Weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"enum\":"
    "[\"Paris\",\"Rome\"]},\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},"
    "\"required\":[\"city\",\"days\"],\"additionalProperties\":false}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"add\",\"parameters\":{\"type\":\"object\","
    "\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"integer\"}},\"required\":"
    "[\"a\",\"b\"],\"additionalProperties\":false}}}]";

static void setup_tools(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("qwenish", "stories260K-f32.gguf", THINKER, NULL, "{\"num_predict\":400}");
  add_model("llamaish", "stories260K-f32.gguf",
            "{{ if .Tools }}{{ .Tools }}\n{{ end }}{{ range .Messages }}{{ .Content }}\n{{ end }}",
            NULL, "{\"num_predict\":400}");
  start_server(NULL);
}

TestSuite(api_tools, .init = setup_tools, .fini = teardown, .timeout = 180);

/* The arguments validate against the tool's schema (exact keys and types). */
static void expect_valid_call(const char *name, json_t *args) {
  cr_assert(json_is_object(args), "arguments of %s are an object", name);
  cr_expect_eq(json_object_size(args), 2, "%s: exactly the declared properties", name);
  if (strcmp(name, "get_weather") == 0) {
    const char *city = jstr(args, "city");
    cr_expect(city && (!strcmp(city, "Paris") || !strcmp(city, "Rome")), "city %s",
              city ? city : "(none)");
    json_t *d = json_object_get(args, "days");
    cr_expect(json_is_integer(d) && json_integer_value(d) >= 1 && json_integer_value(d) <= 7);
  } else {
    cr_expect_str_eq(name, "add");
    cr_expect(json_is_integer(json_object_get(args, "a")));
    cr_expect(json_is_integer(json_object_get(args, "b")));
  }
}

static char *chat_body(const char *model, const char *choice, bool stream, int seed) {
  char *b = malloc(8192);
  snprintf(b, 8192,
           "{\"model\":\"%s\",\"stream\":%s,\"tools\":%s,\"tool_choice\":%s,\"options\":"
           "{\"seed\":%d},\"messages\":[{\"role\":\"user\",\"content\":\"Weather in Paris?\"}]}",
           model, stream ? "true" : "false", TOOLS, choice, seed);
  return b;
}

Test(api_tools, tool_choice_makes_a_valid_call_on_api_chat) {
  NEED_SHARED();
  const char *models[] = {"qwenish", "llamaish"};
  for (int m = 0; m < 2; m++) {
    for (int seed = 1; seed <= 3; seed++) {
      char *b = chat_body(models[m], "\"required\"", false, seed);
      json_t *v = post_json("/api/chat", b, 200);
      free(b);
      json_t *calls = json_object_get(json_object_get(v, "message"), "tool_calls");
      cr_assert_eq(json_array_size(calls), 1, "%s seed %d: one call", models[m], seed);
      json_t *fn = json_object_get(json_array_get(calls, 0), "function");
      expect_valid_call(jstr(fn, "name"), json_object_get(fn, "arguments"));
      cr_expect(strncmp(jstr(json_array_get(calls, 0), "id"), "call_", 5) == 0);
      json_decref(v);
    }
    /* A named function: that one. */
    char *b =
        chat_body(models[m], "{\"type\":\"function\",\"function\":{\"name\":\"add\"}}", false, 7);
    json_t *v = post_json("/api/chat", b, 200);
    free(b);
    json_t *fn = json_object_get(
        json_array_get(json_object_get(json_object_get(v, "message"), "tool_calls"), 0),
        "function");
    cr_expect_str_eq(jstr(fn, "name"), "add");
    expect_valid_call("add", json_object_get(fn, "arguments"));
    json_decref(v);
  }
  /* none: the tools are neither shown nor called. */
  char *b = chat_body("qwenish", "\"none\"", false, 1);
  json_t *v = post_json("/api/chat", b, 200);
  free(b);
  cr_expect(json_object_get(json_object_get(v, "message"), "tool_calls") == NULL);
  json_decref(v);
  b = chat_body("qwenish", "{\"type\":\"function\",\"function\":{\"name\":\"nope\"}}", false, 1);
  v = post_json("/api/chat", b, 400);
  cr_expect(strstr(jstr(v, "error"), "nope") != NULL);
  json_decref(v);
  free(b);
}

Test(api_tools, tool_choice_on_openai_and_anthropic) {
  NEED_SHARED();
  char body[8192];
  snprintf(body, sizeof(body),
           "{\"model\":\"qwenish\",\"seed\":3,\"tools\":%s,\"tool_choice\":\"required\","
           "\"messages\":[{\"role\":\"user\",\"content\":\"Weather?\"}]}",
           TOOLS);
  json_t *v = post_json("/v1/chat/completions", body, 200);
  json_t *ch = json_array_get(json_object_get(v, "choices"), 0);
  cr_expect_str_eq(jstr(ch, "finish_reason"), "tool_calls");
  json_t *tc = json_array_get(json_object_get(json_object_get(ch, "message"), "tool_calls"), 0);
  cr_expect_str_eq(jstr(tc, "type"), "function");
  json_t *fn = json_object_get(tc, "function");
  json_t *args = jparse(jstr(fn, "arguments"));
  expect_valid_call(jstr(fn, "name"), args);
  json_decref(args);
  json_decref(v);
  /* Streamed: the call arrives as a tool_calls delta, then finish_reason. */
  snprintf(
      body, sizeof(body),
      "{\"model\":\"qwenish\",\"stream\":true,\"seed\":4,\"tools\":%s,\"tool_choice\":"
      "{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},\"messages\":[{\"role\":"
      "\"user\",\"content\":\"Weather?\"}]}",
      TOOLS);
  struct resp r = http("POST", "/v1/chat/completions", body);
  cr_assert_eq(r.status, 200);
  int n_calls = 0;
  const char *finish = NULL;
  char fin[32] = "";
  for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "data: {", 7) != 0)
      continue;
    json_t *c = jparse(line + 6);
    json_t *c0 = json_array_get(json_object_get(c, "choices"), 0);
    json_t *d = json_object_get(c0, "delta");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(d, "tool_calls"), i, t) {
      json_t *f = json_object_get(t, "function");
      cr_expect_str_eq(jstr(f, "name"), "get_weather");
      json_t *a = jparse(jstr(f, "arguments"));
      expect_valid_call("get_weather", a);
      json_decref(a);
      n_calls++;
    }
    if ((finish = jstr(c0, "finish_reason")))
      snprintf(fin, sizeof(fin), "%s", finish);
    json_decref(c);
  }
  cr_expect_eq(n_calls, 1);
  cr_expect_str_eq(fin, "tool_calls");
  free(r.body);
  /* Anthropic: tool_choice {type: tool} -> a tool_use block. */
  json_t *tools = jparse(TOOLS), *atools = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    json_t *f = json_object_get(t, "function");
    json_array_append_new(atools, json_pack("{s:O,s:O}", "name", json_object_get(f, "name"),
                                            "input_schema", json_object_get(f, "parameters")));
  }
  json_t *ab = json_pack("{s:s,s:i,s:o,s:{s:s,s:s},s:[{s:s,s:s}]}", "model", "qwenish",
                         "max_tokens", 400, "tools", atools, "tool_choice", "type", "tool", "name",
                         "get_weather", "messages", "role", "user", "content", "Weather?");
  char *abs = json_dumps(ab, JSON_COMPACT);
  v = post_json("/v1/messages", abs, 200);
  cr_expect_str_eq(jstr(v, "stop_reason"), "tool_use");
  json_t *use = NULL;
  json_array_foreach(json_object_get(v, "content"), i, t) {
    if (strcmp(jstr(t, "type"), "tool_use") == 0)
      use = t;
  }
  cr_assert(use, "a tool_use block");
  cr_expect_str_eq(jstr(use, "name"), "get_weather");
  expect_valid_call("get_weather", json_object_get(use, "input"));
  json_decref(v);
  free(abs);
  json_decref(ab);
  json_decref(tools);
}

/* ------------------------------------------------------------ /v1/responses */

/* Whether id is prefix and 24 random lowercase hex digits. */
static bool random_id(const char *id, const char *prefix) {
  size_t n = strlen(prefix);
  return strncmp(id, prefix, n) == 0 && strlen(id) == n + 24 &&
         strspn(id + n, "0123456789abcdef") == 24;
}

Test(api_tools, responses_api_text_stream_tools_and_format) {
  NEED_SHARED();
  const char *base = "{\"model\":\"llamaish\",\"input\":\"Once upon a time\",\"temperature\":0,"
                     "\"max_output_tokens\":12";
  char body[8192];
  snprintf(body, sizeof(body), "%s}", base);
  json_t *v = post_json("/v1/responses", body, 200);
  cr_expect_str_eq(jstr(v, "object"), "response");
  cr_expect_str_eq(jstr(v, "status"), "completed");
  cr_expect(strncmp(jstr(v, "id"), "resp_", 5) == 0);
  cr_expect(random_id(jstr(v, "id"), "resp_"), "%s", jstr(v, "id"));
  json_t *item = json_array_get(json_object_get(v, "output"), 0);
  cr_expect_str_eq(jstr(item, "type"), "message");
  json_t *part = json_array_get(json_object_get(item, "content"), 0);
  cr_expect_str_eq(jstr(part, "type"), "output_text");
  char *text = strdup(jstr(part, "text"));
  cr_expect_gt(strlen(text), 0);
  cr_expect_eq(json_integer_value(json_object_get(json_object_get(v, "usage"), "output_tokens")),
               12);
  json_decref(v);
  /* Streamed: created first, completed last, deltas joining to the text. */
  snprintf(body, sizeof(body), "%s,\"stream\":true}", base);
  struct resp r = http("POST", "/v1/responses", body);
  cr_assert_eq(r.status, 200);
  char joined[4096] = "", first[64] = "", last[64] = "";
  int64_t seq = -1;
  for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
    if (strncmp(line, "data: ", 6) != 0)
      continue;
    json_t *e = jparse(line + 6);
    const char *type = jstr(e, "type");
    if (!first[0])
      snprintf(first, sizeof(first), "%s", type);
    snprintf(last, sizeof(last), "%s", type);
    cr_expect_eq(json_integer_value(json_object_get(e, "sequence_number")), seq + 1);
    seq = json_integer_value(json_object_get(e, "sequence_number"));
    if (strcmp(type, "response.output_text.delta") == 0)
      strncat(joined, jstr(e, "delta"), sizeof(joined) - strlen(joined) - 1);
    json_decref(e);
  }
  cr_expect_str_eq(first, "response.created");
  cr_expect_str_eq(last, "response.completed");
  cr_expect_str_eq(joined, text);
  free(r.body);
  free(text);
  /* Stateless: previous_response_id is refused, saying why. */
  v = post_json("/v1/responses",
                "{\"model\":\"llamaish\",\"input\":\"hi\",\"previous_response_id\":\"resp_1\"}",
                400);
  cr_expect(strstr(jstr(json_object_get(v, "error"), "message"), "not store") != NULL);
  json_decref(v);
  /* A field of the wrong JSON type names the Go type it wants. */
  static const char *const typed[][2] = {
      {"{\"model\":\"llamaish\",\"input\":\"hi\",\"instructions\":1}", "string"},
      {"{\"model\":\"llamaish\",\"input\":\"hi\",\"stream\":\"y\"}", "bool"},
      {"{\"model\":\"llamaish\",\"input\":\"hi\",\"tools\":{}}", "[]openai.ResponsesTool"},
      {"{\"model\":\"llamaish\",\"input\":\"hi\",\"text\":\"x\"}", "openai.ResponsesText"},
      {"{\"model\":\"llamaish\",\"input\":\"hi\",\"max_output_tokens\":\"x\"}", "int"},
  };
  for (size_t k = 0; k < sizeof(typed) / sizeof(typed[0]); k++) {
    v = post_json("/v1/responses", typed[k][0], 400);
    const char *msg = jstr(json_object_get(v, "error"), "message");
    cr_expect(strstr(msg, typed[k][1]) != NULL, "%s: %s", typed[k][0], msg);
    json_decref(v);
  }
  /* Tools (flat function tools) with tool_choice: a function_call item. */
  json_t *tools = jparse(TOOLS), *flat = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(tools, i, t) {
    json_t *f = json_object_get(t, "function");
    json_array_append_new(flat, json_pack("{s:s,s:O,s:O}", "type", "function", "name",
                                          json_object_get(f, "name"), "parameters",
                                          json_object_get(f, "parameters")));
  }
  json_t *rb = json_pack("{s:s,s:s,s:o,s:s,s:i}", "model", "qwenish", "input", "Weather?", "tools",
                         flat, "tool_choice", "required", "max_output_tokens", 400);
  char *rbs = json_dumps(rb, JSON_COMPACT);
  v = post_json("/v1/responses", rbs, 200);
  json_t *call = NULL;
  json_array_foreach(json_object_get(v, "output"), i, t) {
    if (strcmp(jstr(t, "type"), "function_call") == 0)
      call = t;
  }
  cr_assert(call, "a function_call item");
  cr_expect(strncmp(jstr(call, "call_id"), "call_", 5) == 0);
  json_t *args = jparse(jstr(call, "arguments"));
  expect_valid_call(jstr(call, "name"), args);
  json_decref(args);
  json_decref(v);
  free(rbs);
  json_decref(rb);
  json_decref(tools);
  /* text.format json_schema: the output text is that object. */
  v = post_json("/v1/responses",
                "{\"model\":\"llamaish\",\"input\":\"Weather?\",\"max_output_tokens\":300,\"text\":"
                "{\"format\":{\"type\":\"json_schema\",\"name\":\"w\",\"schema\":{\"type\":"
                "\"object\",\"properties\":{\"city\":{\"type\":\"string\",\"enum\":[\"Paris\","
                "\"Rome\"]},\"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":7}},"
                "\"required\":[\"city\",\"days\"],\"additionalProperties\":false}}}}",
                200);
  json_t *msg = json_array_get(json_object_get(v, "output"), 0);
  json_t *obj = jparse(jstr(json_array_get(json_object_get(msg, "content"), 0), "text"));
  expect_valid_call("get_weather", obj);
  json_decref(obj);
  json_decref(v);
}

Test(api_think, anthropic_thinking_blocks) {
  NEED_SHARED();
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]";
  char f[1024];
  snprintf(f, sizeof(f), "\"think\":true,%s", msgs);
  char *prompt = rendered(f);
  char *raw = raw_of(prompt);
  const char *want = raw;
  while (*want == ' ' || *want == '\n')
    want++;
  json_t *v = post_json("/v1/messages",
                        "{\"model\":\"thinker\",\"max_tokens\":16,\"temperature\":0,\"thinking\":"
                        "{\"type\":\"enabled\",\"budget_tokens\":1024},\"messages\":[{\"role\":"
                        "\"user\",\"content\":\"Once upon a time\"}]}",
                        200);
  json_t *b0 = json_array_get(json_object_get(v, "content"), 0);
  cr_expect_str_eq(jstr(b0, "type"), "thinking");
  cr_expect_str_eq(jstr(b0, "thinking"), want);
  json_decref(v);
  /* A model that cannot think: dropped quietly, as Ollama's route does. */
  v = post_json("/v1/messages",
                "{\"model\":\"plain\",\"max_tokens\":4,\"thinking\":{\"type\":\"enabled\","
                "\"budget_tokens\":1024},\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                200);
  cr_expect_str_eq(jstr(json_array_get(json_object_get(v, "content"), 0), "type"), "text");
  json_decref(v);
  free(raw);
  free(prompt);
}

/* Where the model thinks, the format applies after the thinking block: the
 * thoughts are the model's own (the same as unconstrained), not JSON. */
Test(api_think, format_waits_for_the_thoughts_to_close) {
  NEED_SHARED();
  const char *msgs = "\"messages\":[{\"role\":\"user\",\"content\":\"Once upon a time\"}]";
  char f[1024];
  snprintf(f, sizeof(f), "\"think\":true,%s", msgs);
  char *prompt = rendered(f);
  char *raw = raw_of(prompt);
  const char *want = raw;
  while (*want == ' ' || *want == '\n')
    want++;
  char body[2048];
  snprintf(body, sizeof(body), "{\"model\":\"thinker\",\"stream\":false,\"format\":\"json\",%s}",
           f);
  json_t *v = post_json("/api/chat", body, 200);
  cr_expect_str_eq(jstr(json_object_get(v, "message"), "thinking"), want);
  json_decref(v);
  /* think unset: the prompt opens no block, so the format applies at once. */
  snprintf(body, sizeof(body),
           "{\"model\":\"thinker\",\"stream\":false,\"format\":\"json\",\"options\":"
           "{\"num_predict\":200},%s}",
           msgs);
  v = post_json("/api/chat", body, 200);
  json_t *obj = jparse(jstr(json_object_get(v, "message"), "content"));
  cr_expect(json_is_object(obj), "content is a JSON object");
  json_decref(obj);
  json_decref(v);
  free(raw);
  free(prompt);
}
