/* test_outparse.c — the streaming split of model output into thinking,
 * text and tool calls (src/api/outparse.h), per tool-call format. Every
 * case is fed whole, then cut in two at every byte position, then one byte
 * at a time; the pieces must join to the same result each time. */
#include "api/outparse.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct got {
  char text[4096], thinking[4096], calls[4096];
  size_t nt, nk, nc;
};

static void on_out(void *ud, int kind, const char *s, size_t n, const char *name, json_t *args) {
  struct got *g = ud;
  if (kind == CLL__OUT_TEXT) {
    memcpy(g->text + g->nt, s, n);
    g->nt += n;
  } else if (kind == CLL__OUT_THINKING) {
    memcpy(g->thinking + g->nk, s, n);
    g->nk += n;
  } else {
    char *a = json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS);
    g->nc += (size_t)snprintf(g->calls + g->nc, sizeof(g->calls) - g->nc, "%s%s", name, a);
    g->calls[g->nc++] = ';';
    free(a);
  }
}

static json_t *tools_of(const char *names) {
  json_t *a = json_array();
  char buf[256];
  snprintf(buf, sizeof buf, "%s", names);
  for (char *t = strtok(buf, ","); t; t = strtok(NULL, ","))
    json_array_append_new(a, json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", t));
  return a;
}

static void run_cuts(const struct cll__outp_cfg *cfg, const char *in, size_t cut, bool bytewise,
                     struct got *g) {
  cll__outp *p = NULL;
  cr_assert_eq(cll__outp_new(cfg, &p), 0);
  memset(g, 0, sizeof *g);
  size_t n = strlen(in);
  if (bytewise) {
    for (size_t i = 0; i < n; i++)
      cll__outp_feed(p, in + i, 1, on_out, g);
  } else {
    cll__outp_feed(p, in, cut, on_out, g);
    cll__outp_feed(p, in + cut, n - cut, on_out, g);
  }
  cll__outp_finish(p, on_out, g);
  cll__outp_free(p);
  g->text[g->nt] = g->thinking[g->nk] = g->calls[g->nc] = 0;
}

/* Expects (text, thinking, calls "name{args};...") for every split. */
static void check(const struct cll__outp_cfg *cfg, const char *in, const char *text,
                  const char *thinking, const char *calls) {
  size_t n = strlen(in);
  for (size_t cut = 0; cut <= n + 1; cut++) {
    struct got g;
    run_cuts(cfg, in, cut > n ? n : cut, cut == n + 1, &g);
    cr_assert_str_eq(g.text, text, "text, cut at %zu of %s", cut, in);
    cr_assert_str_eq(g.thinking, thinking, "thinking, cut at %zu of %s", cut, in);
    cr_assert_str_eq(g.calls, calls, "calls, cut at %zu of %s", cut, in);
  }
}

Test(outparse, llama3_bare_json) {
  json_t *tools = tools_of("get_weather,add");
  struct cll__outp_cfg c = {.tool_tag = "{", .tools = tools};
  check(&c, "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris {x}\"}}", "", "",
        "get_weather{\"city\":\"Paris {x}\"};");
  check(
      &c,
      "  {\"name\":\"add\",\"parameters\":{\"a\":1}}; {\"name\":\"add\",\"parameters\":{\"a\":2}}",
      "", "", "add{\"a\":1};add{\"a\":2};");
  /* Arguments as a JSON string, and the "arguments" spelling. */
  check(&c, "{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":3}\"}", "", "", "add{\"a\":3};");
  /* Text first: no call (bare JSON calls only start the answer). */
  check(&c, "Sure: {\"name\":\"add\",\"parameters\":{}}",
        "Sure: {\"name\":\"add\",\"parameters\":{}}", "", "");
  /* JSON that is not a call, and an unknown tool, are text. */
  check(&c, "{\"a\": 1} ok", "{\"a\": 1} ok", "", "");
  check(&c, "{\"name\":\"nope\",\"parameters\":{}}", "{\"name\":\"nope\",\"parameters\":{}}", "",
        "");
  /* Never closed: text at the end. */
  check(&c, "{\"name\":\"add\",", "{\"name\":\"add\",", "", "");
  json_decref(tools);
}

Test(outparse, qwen_tool_call_tags) {
  json_t *tools = tools_of("get_weather");
  struct cll__outp_cfg c = {.tool_tag = "<tool_call>", .tools = tools};
  check(&c,
        "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
        "\"<b>\"}}\n</tool_call>",
        "Let me check.\n", "", "get_weather{\"city\":\"<b>\"};");
  check(&c,
        "<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"c\":1}}</"
        "tool_call>\n<tool_call>{\"name\":\"get_weather\",\"arguments\":{\"c\":2}}</tool_call>",
        "", "", "get_weather{\"c\":1};get_weather{\"c\":2};");
  /* A '<' that is no tag stays text; a tag without a call is text. */
  check(&c, "a < b <tool", "a < b <tool", "", "");
  check(&c, "x <tool_call> hi", "x <tool_call> hi", "", "");
  json_decref(tools);
}

Test(outparse, mistral_tool_calls) {
  json_t *tools = tools_of("add,mul");
  struct cll__outp_cfg c = {.tool_tag = "[TOOL_CALLS]", .tools = tools};
  check(&c,
        "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {\"a\": 1}}, {\"name\": \"mul\", "
        "\"arguments\": {\"b\": [2]}}]",
        "", "", "add{\"a\":1};mul{\"b\":[2]};");
  check(&c, "ok [TOOL_CALLS]mul[ARGS]{\"b\": 3}", "ok ", "", "mul{\"b\":3};");
  check(&c, "[TOOL_CALLS] [1, 2]", "[TOOL_CALLS] [1, 2]", "", "");
  json_decref(tools);
}

Test(outparse, generic_tag) {
  json_t *tools = tools_of("f");
  struct cll__outp_cfg c = {.tool_tag = "<|python_tag|>", .tools = tools};
  check(&c, "hm<|python_tag|>{\"name\":\"f\",\"parameters\":{}}", "hm", "", "f{};");
  json_decref(tools);
}

Test(outparse, thinking) {
  struct cll__outp_cfg c = {.think_open = "<think>", .think_close = "</think>"};
  check(&c, "<think>\nhmm, <b> yes\n</think>\n\nThe answer.", "The answer.", "hmm, <b> yes\n", "");
  check(&c, "  plain answer", "  plain answer", "", "");
  check(&c, "<thi is text", "<thi is text", "", "");
  c.in_thinking = true;
  check(&c, " started inside</think>after", "after", "started inside", "");
  check(&c, "never closed </thin", "", "never closed </thin", "");
}

Test(outparse, thinking_then_tool_call) {
  json_t *tools = tools_of("get_weather");
  struct cll__outp_cfg c = {.think_open = "<think>",
                            .think_close = "</think>",
                            .tool_tag = "<tool_call>",
                            .tools = tools};
  check(&c,
        "<think>need "
        "weather</think>\n<tool_call>{\"name\":\"get_weather\",\"arguments\":{}}</tool_call>",
        "", "need weather", "get_weather{};");
  struct cll__outp_cfg b = {
      .think_open = "<think>", .think_close = "</think>", .tool_tag = "{", .tools = tools};
  check(&b, "<think>x</think> {\"name\":\"get_weather\",\"parameters\":{\"q\":\"}\"}}", "", "x",
        "get_weather{\"q\":\"}\"};");
  json_decref(tools);
}

/* ------------------------------------------------------- template cache */

#include "api/tmpl.h"

/* A template is parsed once and shared: the same text gives the same
 * parsed object (and its capabilities) to every request. */
Test(tmpl_cache, one_parse_per_template_text) {
  const char *text =
      "{{ range .Messages }}{{ .Content }}{{ if .Thinking }}<think>{{ .Thinking }}"
      "</think>{{ end }}{{ if .ToolCalls }}<tool_call>{{ end }}{{ end }}{{ .Tools }}";
  char *copy = strdup(text);
  cll__tmpl *a = NULL, *b = NULL;
  cll_err e = {0};
  cr_assert_eq(cll__tmpl_get(text, &a, &e), 0, "%s", e.msg);
  cr_assert_eq(cll__tmpl_get(copy, &b, &e), 0, "%s", e.msg);
  cr_expect_eq(cll__tmpl_t(a), cll__tmpl_t(b), "parsed once, shared");
  const struct cll__tmpl_caps *c = cll__tmpl_caps(a);
  cr_expect(c->thinking && c->tools);
  cr_expect_str_eq(c->think_open, "<think>");
  cr_expect_str_eq(c->think_close, "</think>");
  cr_expect_str_eq(c->tool_tag, "<tool_call>");
  cll__tmpl_put(a);
  cll__tmpl_put(b);
  free(copy);
  cr_expect_neq(cll__tmpl_get("{{ if }}", &a, &e), 0);
  cr_expect(strncmp(e.msg, "template error", 14) == 0, "%s", e.msg);
}
