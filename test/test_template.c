/* test_template.c — the Go-template subset and prompt assembly
 * (include/cllama/template.h). The data-driven part renders every template
 * of ../shared/testdata/templates with every message set of messages.json
 * and compares the bytes with the expected file, as Ollama's TestTemplate
 * does; the rest are cases from Ollama's template_test.go and §5.3. */
#include "cllama/template.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s && *s ? s : "../shared";
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *p = malloc((size_t)n + 1);
  size_t got = fread(p, 1, (size_t)n, f);
  fclose(f);
  p[got] = '\0';
  if (len)
    *len = got;
  return p;
}

static cll_template *parse_ok(const char *text) {
  cll_template *t = NULL;
  cll_err e = {0};
  int rc = cll_template_parse(text, strlen(text), &t, &e);
  cr_assert_eq(rc, 0, "parse failed: %s\n--- template:\n%s", e.msg, text);
  return t;
}

static char *render(const cll_template *t, const struct cll_tmpl_values *v) {
  char *out = NULL;
  cll_err e = {0};
  int rc = cll_template_execute(t, v, &out, NULL, &e);
  cr_assert_eq(rc, 0, "execute failed: %s", e.msg);
  return out;
}

static char *render_msgs(const char *tmpl, const struct cll_tmpl_message *m, size_t n) {
  cll_template *t = parse_ok(tmpl);
  struct cll_tmpl_values v = {.messages = m, .n_messages = n};
  char *s = render(t, &v);
  cll_template_free(t);
  return s;
}

/* ------------------------------------------------------- shared vectors */

Test(template, shared_testdata_renders_exactly) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/testdata/templates", shared_dir());
  char path[2048];
  snprintf(path, sizeof path, "%s/messages.json", dir);
  json_error_t je;
  json_t *sets = json_load_file(path, 0, &je);
  if (sets == NULL) {
    printf("SKIP: CLLAMA_SHARED not found (%s)\n", path);
    cr_skip_test("CLLAMA_SHARED not found");
  }
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  struct dirent *ent;
  int checked = 0, templates = 0;
  while ((ent = readdir(d)) != NULL) {
    size_t nl = strlen(ent->d_name);
    if (nl < 8 || strcmp(ent->d_name + nl - 7, ".gotmpl") != 0)
      continue;
    snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
    size_t len;
    char *text = read_file(path, &len);
    cr_assert_not_null(text);
    cll_template *t = NULL;
    cll_err e = {0};
    cr_assert_eq(cll_template_parse(text, len, &t, &e), 0, "%s: %s", ent->d_name, e.msg);
    templates++;
    const char *set_name;
    json_t *set;
    json_object_foreach(sets, set_name, set) {
      size_t n = json_array_size(set);
      struct cll_tmpl_message *m = calloc(n, sizeof *m);
      for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(set, i);
        m[i].role = json_string_value(json_object_get(o, "role"));
        m[i].content = json_string_value(json_object_get(o, "content"));
      }
      struct cll_tmpl_values v = {.messages = m, .n_messages = n};
      char *out = NULL;
      size_t out_len = 0;
      cr_assert_eq(cll_template_execute(t, &v, &out, &out_len, &e), 0, "%s/%s: %s", ent->d_name,
                   set_name, e.msg);
      /* Ollama's exception: for these five, one trailing space is dropped. */
      static const char *const trim[] = {"chatqa.gotmpl", "llama2-chat.gotmpl",
                                         "mistral-instruct.gotmpl", "openchat.gotmpl",
                                         "vicuna.gotmpl"};
      for (size_t k = 0; k < sizeof trim / sizeof *trim; k++)
        if (strcmp(ent->d_name, trim[k]) == 0 && out_len > 0 && out[out_len - 1] == ' ')
          out[--out_len] = '\0';
      char want_path[2048];
      snprintf(want_path, sizeof want_path, "%s/testdata/%s/%s", dir, ent->d_name, set_name);
      size_t want_len;
      char *want = read_file(want_path, &want_len);
      cr_assert_not_null(want, "missing %s", want_path);
      cr_expect(want_len == out_len && memcmp(want, out, out_len) == 0,
                "%s / %s\n--- got:\n%s\n--- want:\n%s", ent->d_name, set_name, out, want);
      checked++;
      free(want);
      free(out);
      free(m);
    }
    cll_template_free(t);
    free(text);
  }
  closedir(d);
  json_decref(sets);
  cr_expect_eq(templates, 20);
  cr_expect_eq(checked, 60);
}

Test(template, shared_chat_templates_are_named) {
  char path[2048];
  snprintf(path, sizeof path, "%s/testdata/templates/testdata/templates.jsonl", shared_dir());
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    printf("SKIP: CLLAMA_SHARED not found (%s)\n", path);
    cr_skip_test("CLLAMA_SHARED not found");
  }
  char *line = NULL;
  size_t cap = 0;
  int n = 0;
  while (getline(&line, &cap, f) > 0) {
    json_error_t je;
    json_t *o = json_loads(line, 0, &je);
    if (o == NULL)
      continue;
    const char *name;
    json_t *jinja;
    json_object_foreach(o, name, jinja) {
      const char *got = cll_template_name_for_chat_template(json_string_value(jinja));
      cr_expect(got != NULL && strcmp(got, name) == 0, "want %s got %s", name,
                got ? got : "(none)");
      const char *text = cll_template_builtin(name);
      cr_expect_not_null(text, "no built-in text for %s", name);
      n++;
    }
    json_decref(o);
  }
  free(line);
  fclose(f);
  cr_expect_eq(n, 35);
}

/* Our built-in copies of the formats render exactly like the shared files. */
Test(template, builtins_render_like_shared_templates) {
  char dir[1024];
  snprintf(dir, sizeof dir, "%s/testdata/templates", shared_dir());
  char path[2048];
  snprintf(path, sizeof path, "%s/messages.json", dir);
  json_error_t je;
  json_t *sets = json_load_file(path, 0, &je);
  if (sets == NULL) {
    printf("SKIP: CLLAMA_SHARED not found (%s)\n", path);
    cr_skip_test("CLLAMA_SHARED not found");
  }
  DIR *d = opendir(dir);
  struct dirent *ent;
  int n = 0;
  while ((ent = readdir(d)) != NULL) {
    size_t nl = strlen(ent->d_name);
    if (nl < 8 || strcmp(ent->d_name + nl - 7, ".gotmpl") != 0)
      continue;
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)(nl - 7), ent->d_name);
    const char *text = cll_template_builtin(name);
    cr_assert_not_null(text, "no built-in %s", name);
    cll_template *t = parse_ok(text);
    const char *set_name;
    json_t *set;
    json_object_foreach(sets, set_name, set) {
      size_t cnt = json_array_size(set);
      struct cll_tmpl_message *m = calloc(cnt, sizeof *m);
      for (size_t i = 0; i < cnt; i++) {
        json_t *o = json_array_get(set, i);
        m[i].role = json_string_value(json_object_get(o, "role"));
        m[i].content = json_string_value(json_object_get(o, "content"));
      }
      struct cll_tmpl_values v = {.messages = m, .n_messages = cnt};
      char *out = render(t, &v);
      snprintf(path, sizeof path, "%s/testdata/%s/%s", dir, ent->d_name, set_name);
      char *want = read_file(path, NULL);
      size_t ol = strlen(out);
      if (ol > 0 && out[ol - 1] == ' ' && want[strlen(want) - 1] != ' ')
        out[ol - 1] = '\0';
      cr_expect_str_eq(out, want, "built-in %s / %s", name, set_name);
      free(out);
      free(want);
      free(m);
    }
    cll_template_free(t);
    n++;
  }
  closedir(d);
  json_decref(sets);
  cr_expect_eq(n, 20);
}

/* ------------------------------------------------ Ollama template_test.go */

Test(template, vars_like_ollama) {
  struct {
    const char *tmpl;
    const char *yes[6];
    const char *no[3];
  } cases[] = {
      {"{{ .Prompt }}", {"prompt", "response"}, {"system", "messages"}},
      {"{{ .System }} {{ .Prompt }}", {"prompt", "response", "system"}, {"tools"}},
      {"{{ with .Tools }}{{ . }}{{ end }} {{ .System }} {{ .Prompt }}",
       {"prompt", "response", "system", "tools"},
       {"messages"}},
      {"{{ range .Messages }}{{ .Role }} {{ .Content }}{{ end }}",
       {"content", "messages", "role"},
       {"response"}},
      {"{{ range $.Messages }}{{ end }}", {"messages", "$"}, {"response"}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    cll_template *t = parse_ok(cases[i].tmpl);
    for (int k = 0; k < 6 && cases[i].yes[k]; k++)
      cr_expect(cll_template_uses(t, cases[i].yes[k]), "%s should use %s", cases[i].tmpl,
                cases[i].yes[k]);
    for (int k = 0; k < 3 && cases[i].no[k]; k++)
      cr_expect(!cll_template_uses(t, cases[i].no[k]), "%s should not use %s", cases[i].tmpl,
                cases[i].no[k]);
    cll_template_free(t);
  }
}

static void expect_parse_error(const char *tmpl, const char *needle) {
  cll_template *t = NULL;
  cll_err e = {0};
  int rc = cll_template_parse(tmpl, strlen(tmpl), &t, &e);
  cr_expect_neq(rc, 0, "expected a parse error for %s", tmpl);
  cr_expect_null(t);
  cr_expect(strstr(e.msg, needle) != NULL, "error for %s is \"%s\", want \"%s\"", tmpl, e.msg,
            needle);
}

Test(template, parse_errors_name_the_construct) {
  expect_parse_error("{{ .Prompt ", "unclosed action");
  expect_parse_error("{{define \"x\"}}{{template \"x\"}}{{end}}{{template \"x\"}}", "define");
  expect_parse_error("{{ template \"x\" }}", "template");
  expect_parse_error("{{ block \"x\" . }}{{ end }}", "block");
  expect_parse_error("{{ html .Prompt }}", "html");
  expect_parse_error("{{ nosuchfunc .Prompt }}", "function \"nosuchfunc\" not defined");
  expect_parse_error("{{ $x }}", "undefined variable \"$x\"");
  expect_parse_error("{{ if .A }}x", "missing {{end}}");
  expect_parse_error("{{ end }}", "unexpected {{end}}");
  expect_parse_error("{{ break }}", "outside {{range}}");
  expect_parse_error("{{ \"abc }}", "unterminated");
  expect_parse_error("{{/* unclosed }}", "unclosed comment");
  expect_parse_error("{{ .A | \"x\" }}", "non executable command");
  expect_parse_error("{{ (.A }}", "paren");
  expect_parse_error("{{ if }}{{ end }}", "missing value");
  expect_parse_error("{{ range$.Messages }}{{ end }}", "bad character");
  expect_parse_error("{{ .1x }}", "bad number");
}

Test(template, execute_with_messages_like_ollama) {
  struct cll_tmpl_message m3[] = {
      {.role = "user", .content = "Hello friend!"},
      {.role = "assistant", .content = "Hello human!"},
      {.role = "user", .content = "What is your name?"},
  };
  const char *mistral[] = {
      "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ",
      "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}",
      ("[INST] {{ if .System }}{{ .System }}\n\n{{ end }}\n{{- range .Messages }}\n{{- if eq .Role "
       "\"user\" }}{{ .Content }}[/INST] {{ else if eq .Role \"assistant\" }}{{ .Content }}[INST] "
       "{{ end }}\n{{- end }}"),
  };
  for (int i = 0; i < 3; i++) {
    char *s = render_msgs(mistral[i], m3, 3);
    cr_expect_str_eq(s, "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] ",
                     "variant %d", i);
    free(s);
  }
  struct cll_tmpl_message m4[] = {
      {.role = "system", .content = "You are a helpful assistant!"},
      {.role = "user", .content = "Hello friend!"},
      {.role = "assistant", .content = "Hello human!"},
      {.role = "user", .content = "What is your name?"},
  };
  for (int i = 0; i < 3; i++) {
    char *s = render_msgs(mistral[i], m4, 4);
    cr_expect_str_eq(s,
                     "[INST] You are a helpful assistant!\n\nHello friend![/INST] Hello "
                     "human![INST] What is your name?[/INST] ",
                     "system variant %d", i);
    free(s);
  }
  struct cll_tmpl_message ma[] = {
      {.role = "user", .content = "Hello friend!"},
      {.role = "assistant", .content = "Hello human!"},
      {.role = "user", .content = "What is your name?"},
      {.role = "assistant", .content = "My name is Ollama and I"},
  };
  const char *asst[] = {
      "[INST] {{ .Prompt }}[/INST] ",
      "[INST] {{ .Prompt }}[/INST] {{ .Response }}",
      ("\n{{- range $i, $m := .Messages }}\n{{- if eq .Role \"user\" }}[INST] {{ .Content "
       "}}[/INST] "
       "{{ else if eq .Role \"assistant\" }}{{ .Content }}{{ end }}\n{{- end }}"),
  };
  for (int i = 0; i < 3; i++) {
    char *s = render_msgs(asst[i], ma, 4);
    cr_expect_str_eq(s,
                     "[INST] Hello friend![/INST] Hello human![INST] What is your name?[/INST] My "
                     "name is Ollama and I",
                     "assistant variant %d", i);
    free(s);
  }
  const char *chatml[] = {
      ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ if .Prompt "
       "}}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}<|im_start|>assistant\n{{ .Response "
       "}}<|im_end|>\n"),
      ("\n{{- range $index, $_ := .Messages }}<|im_start|>{{ .Role }}\n{{ .Content "
       "}}<|im_end|>\n{{ end }}<|im_start|>assistant\n"),
  };
  for (int i = 0; i < 2; i++) {
    char *s = render_msgs(chatml[i], m4, 4);
    cr_expect_str_eq(
        s,
        "<|im_start|>system\nYou are a helpful assistant!<|im_end|>\n<|im_start|>user\n"
        "Hello friend!<|im_end|>\n<|im_start|>assistant\nHello human!<|im_end|>\n"
        "<|im_start|>user\nWhat is your name?<|im_end|>\n<|im_start|>assistant\n",
        "chatml variant %d", i);
    free(s);
  }
}

Test(template, suffix_mode) {
  cll_template *t = parse_ok("{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>\n"
                             "{{- else }}{{ .Prompt }}\n{{- end }}");
  struct cll_tmpl_message m[] = {{.role = "user", .content = "hello"}};
  struct cll_tmpl_values v = {.messages = m, .n_messages = 1};
  char *s = render(t, &v);
  cr_expect_str_eq(s, "hello");
  free(s);
  struct cll_tmpl_values v2 = {.prompt = "def add(", .suffix = "return x"};
  s = render(t, &v2);
  cr_expect_str_eq(s, "<PRE> def add( <SUF>return x <MID>");
  free(s);
  cll_template_free(t);
}

static json_t *args_city(void) {
  return json_pack("{s:s,s:s}", "location", "Tokyo", "unit", "celsius");
}

Test(template, tool_call_arguments_print_and_range) {
  json_t *args = args_city();
  struct cll_tmpl_tool_call call = {.name = "get_weather", .arguments = args};
  struct cll_tmpl_message m[] = {{.role = "assistant", .tool_calls = &call, .n_tool_calls = 1}};
  char *s = render_msgs(
      "{{- range .Messages }}{{- range .ToolCalls }}{{ .Function.Arguments }}{{- end }}{{- end }}",
      m, 1);
  cr_expect_str_eq(s, "{\"location\":\"Tokyo\",\"unit\":\"celsius\"}");
  free(s);
  s = render_msgs("{{- range .Messages }}{{- range .ToolCalls }}{{- range $k, $v := "
                  ".Function.Arguments }}{{ $k }}={{ $v }};{{- end }}{{- end }}{{- end }}",
                  m, 1);
  cr_expect_str_eq(s, "location=Tokyo;unit=celsius;");
  free(s);
  s = render_msgs("{{ range .Messages }}{{ range .ToolCalls }}{\"name\": \"{{ .Function.Name }}\", "
                  "\"index\": {{ .Function.Index }}}{{ end }}{{ end }}",
                  m, 1);
  cr_expect_str_eq(s, "{\"name\": \"get_weather\", \"index\": 0}");
  free(s);
  json_decref(args);
}

static json_t *weather_tools(void) {
  return json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                    "\"description\":\"Get <weather>\",\"parameters\":{\"type\":\"object\","
                    "\"required\":[\"location\"],\"properties\":{\"unit\":{\"type\":\"string\","
                    "\"enum\":[\"c\",\"f\"]},\"location\":{\"type\":\"string\",\"description\":"
                    "\"City name\"}}}}}]",
                    0, NULL);
}

Test(template, tools_print_as_go_json_and_range) {
  json_t *tools = weather_tools();
  struct cll_tmpl_message m[] = {{.role = "user", .content = "test"}};
  struct cll_tmpl_values v = {.messages = m, .n_messages = 1, .tools = tools};
  cll_template *t = parse_ok("{{- range .Messages }}{{- end }}{{- range .Tools }}{{- range $name, "
                             "$prop := .Function.Parameters.Properties }}{{ $name }}:{{ $prop.Type "
                             "}};{{- end }}{{- end }}");
  char *s = render(t, &v);
  cr_expect_str_eq(s, "location:string;unit:string;");
  free(s);
  cll_template_free(t);

  t = parse_ok("{{ if .Messages }}{{ .Tools }}{{ end }}");
  s = render(t, &v);
  cr_expect_str_eq(s, "[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                      "\"description\":\"Get \\u003cweather\\u003e\",\"parameters\":{\"type\":"
                      "\"object\",\"required\":[\"location\"],\"properties\":{\"location\":{"
                      "\"type\":\"string\",\"description\":\"City name\"},\"unit\":{\"type\":"
                      "\"string\",\"enum\":[\"c\",\"f\"]}}}}}]");
  free(s);
  cll_template_free(t);

  t = parse_ok(
      "{{- range .Messages }}{{ end }}{{ range .Tools }}{{ .Function.Parameters.Properties "
      "}}|{{ toTypeScriptType (index .Function.Parameters.Properties \"unit\") }}|{{ "
      "json .Function.Name }}{{ end }}");
  s = render(t, &v);
  cr_expect_str_eq(s, "{\"location\":{\"type\":\"string\",\"description\":\"City name\"},"
                      "\"unit\":{\"type\":\"string\",\"enum\":[\"c\",\"f\"]}}|string|"
                      "\"get_weather\"");
  free(s);
  cll_template_free(t);

  /* No tools: .Tools is empty and prints as null. */
  struct cll_tmpl_values v0 = {.messages = m, .n_messages = 1};
  t = parse_ok(
      "{{ range .Messages }}{{ end }}{{ if .Tools }}yes{{ else }}no{{ end }} {{ .Tools }}");
  s = render(t, &v0);
  cr_expect_str_eq(s, "no null");
  free(s);
  cll_template_free(t);
  json_decref(tools);
}

/* ------------------------------------------------------- language corners */

/* Renders in messages mode (the prefix makes the template use .Messages). */
static void expect_render(const char *tmpl, const char *want) {
  char full[2048];
  snprintf(full, sizeof full, "{{- range .Messages }}{{ end }}%s", tmpl);
  struct cll_tmpl_message m[] = {
      {.role = "system", .content = "S"},
      {.role = "user", .content = "U1"},
      {.role = "assistant", .content = "A1"},
      {.role = "user", .content = "U2"},
  };
  char *s = render_msgs(full, m, 4);
  cr_expect_str_eq(s, want, "template: %s", tmpl);
  free(s);
}

Test(template, language_corners) {
  expect_render("{{ range .Messages }}{{ .Role }},{{ end }}", "system,user,assistant,user,");
  expect_render("{{- range $i, $m := .Messages }}{{ $i }}{{ $m.Content }}{{ end }}", "0S1U12A13U2");
  expect_render("{{ range $m := .Messages }}{{ $m.Role | len }}{{ end }}", "6494");
  expect_render("{{ range .Messages }}{{ if eq .Role \"assistant\" }}{{ break }}{{ end }}{{ "
                ".Content }}{{ end }}",
                "SU1");
  expect_render("{{ range .Messages }}{{ if ne .Role \"user\" }}{{ continue }}{{ end }}{{ .Content "
                "}}{{ end }}",
                "U1U2");
  expect_render("{{ $x := 1 }}{{ range .Messages }}{{ $x = 2 }}{{ end }}{{ $x }}", "2");
  expect_render("{{ with .System }}[{{ . }}]{{ else }}none{{ end }}", "[S]");
  expect_render("{{ with .Missing }}x{{ else with .System }}{{ . }}{{ end }}", "S");
  expect_render("{{ .Missing }}|{{ if .Missing }}y{{ else }}n{{ end }}", "<no value>|n");
  expect_render("{{ len .Messages }} {{ index .Messages 1 | printf \"%v\" | len | lt 0 }}",
                "4 true");
  expect_render("{{ (index .Messages 3).Content }} {{ len (slice .Messages 2) }}", "U2 2");
}

Test(template, language_corners_2) {
  expect_render("{{ range $i, $_ := .Messages }}{{ if eq (len (slice $.Messages $i)) 1 }}last={{ "
                ".Content }}{{ end }}{{ end }}",
                "last=U2");
  expect_render("{{ and 1 0 }} {{ or 0 \"\" \"x\" }} {{ not .System }} {{ and .System "
                "\"y\" }}",
                "0 x false y");
  expect_render("{{ eq 1 2 3 1 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt \"b\" \"a\" }} {{ ge 1.5 2.5 }}",
                "true true true true false");
  expect_render("{{ printf \"%s-%d-%q-%5.2f|%-4s|%x\" \"a\" 42 \"q\\\"\" 3.14159 \"b\" 255 }}",
                "a-42-\"q\\\"\"- 3.14|b   |ff");
  expect_render("{{ print 1 2 \"a\" \"b\" 3 }}|{{ println \"x\" 1 }}", "1 2ab3|x 1\n");
  expect_render("{{ json .System }} {{ json 1.5 }} {{ json \"<&>\" }}",
                "\"S\" 1.5 \"\\u003c\\u0026\\u003e\"");
  expect_render("{{ slice \"hello\" 1 3 }} {{ index \"abc\" 1 }}", "el 98");
  expect_render("{{/* a comment */}}x{{- /* trimmed */ -}}  y", "xy");
  expect_render("a  {{- \"b\" -}}  \n c", "abc");
  expect_render("{{ `raw\\n` }}{{ 'a' }}{{ 0x10 }}{{ -3 }}{{ 1e3 }}", "raw\\n9716-31000");
  expect_render("{{ range 3 }}{{ . }}{{ end }}", "012");
  expect_render("{{ range .Nothing }}x{{ else }}empty{{ end }}", "empty");
  expect_render("{{ $.System }}{{ with $s := .System }}{{ $s }}{{ end }}", "SS");
  expect_render("{{ if and (eq (index .Messages 0).Role \"system\") true }}ok{{ end }}", "ok");
  expect_render("{{ (index .Messages 1) }}", "{user U1  [] []  }");
  /* Cases found by comparing with Go's text/template (go1.19) on fuzz inputs. */
  expect_render("{{ .5 }} {{ 1e6 }} {{ 123456.0 }} {{ 1234567.0 }}",
                "0.5 1e+06 123456 1.234567e+06");
  expect_render("{{ printf \"%q|%q|%s|%d\" \"a\\x01<\" 65 .Missing .Missing }}",
                "\"a\\x01<\"|'A'|%!s(<nil>)|%!d(<nil>)");
  expect_render("{{ printf \"%s\" 1 2 .Missing }}", "%!s(int=1)%!(EXTRA int=2, <nil>)");
}

static void expect_exec_error(const char *tmpl, const char *needle) {
  cll_template *t = parse_ok(tmpl);
  struct cll_tmpl_message m[] = {{.role = "user", .content = "U"}};
  struct cll_tmpl_values v = {.messages = m, .n_messages = 1};
  char *out = NULL;
  cll_err e = {0};
  cr_expect_neq(cll_template_execute(t, &v, &out, NULL, &e), 0, "%s should fail", tmpl);
  cr_expect_null(out);
  cr_expect(strstr(e.msg, needle) != NULL, "%s: error \"%s\" lacks \"%s\"", tmpl, e.msg, needle);
  cll_template_free(t);
}

Test(template, execution_errors) {
  expect_exec_error("{{ range .Messages }}{{ .Nope }}{{ end }}", "can't evaluate field Nope");
  expect_exec_error("{{ index .Messages 5 }}", "index out of range");
  expect_exec_error("{{ .Messages | len | eq \"x\" }}", "incompatible types");
  expect_exec_error("{{ .Missing.Field }}", "nil pointer");
  expect_exec_error("{{ range .System }}{{ end }}", "range can't iterate");
  expect_exec_error("{{ .Messages }}{{ range 100000000 }}{{ end }}", "too many loop iterations");
}

/* ------------------------------------------------------- legacy and §5.3 */

static const char *GEN_TMPL = "{{- if .System }}System: {{ .System }} {{ end }}\n"
                              "{{- if .Prompt }}User: {{ .Prompt }} {{ end }}\n"
                              "{{- if .Response }}Assistant: {{ .Response }} {{ end }}\n";

Test(template, legacy_cut_after_response) {
  struct cll_tmpl_message m[] = {{.role = "user", .content = "Hello!"}};
  char *s = render_msgs(GEN_TMPL, m, 1);
  cr_expect_str_eq(s, "User: Hello! ");
  free(s);
  struct cll_tmpl_message m2[] = {{.role = "system", .content = "You are a helpful assistant."},
                                  {.role = "user", .content = "Hello!"}};
  s = render_msgs(GEN_TMPL, m2, 2);
  cr_expect_str_eq(s, "System: You are a helpful assistant. User: Hello! ");
  free(s);
  struct cll_tmpl_message m3[] = {{.role = "user", .content = "Hi"},
                                  {.role = "assistant", .content = "Yo"},
                                  {.role = "user", .content = "Again"}};
  s = render_msgs(GEN_TMPL, m3, 3);
  cr_expect_str_eq(s, "User: Hi Assistant: Yo \nUser: Again ");
  free(s);
  /* A template using neither .Messages nor .Response gets {{ .Response }}. */
  s = render_msgs("<s>{{ .Prompt }}</s>", m3, 3);
  cr_expect_str_eq(s, "<s>Hi</s>Yo<s>Again</s>");
  free(s);
}

static int count_bytes(void *ud, const char *text, size_t len) {
  (void)ud;
  (void)text;
  return (int)len;
}

Test(template, chat_prompt_truncates_and_tags_images) {
  cll_template *t = parse_ok("{{ range .Messages }}[{{ .Role }}:{{ .Content }}]{{ end }}");
  struct cll_tmpl_message m[] = {
      {.role = "system", .content = "sys"},
      {.role = "user", .content = "first question, long enough to be dropped"},
      {.role = "assistant", .content = "first answer"},
      {.role = "user", .content = "look [img] here", .n_images = 2},
  };
  struct cll_tmpl_values v = {.messages = m, .n_messages = 4};
  struct cll_chat_prompt_opts o;
  cll_chat_prompt_opts_defaults(&o);
  o.count = count_bytes;
  o.num_ctx = 1000;
  char *s;
  size_t first;
  cll_err e;
  cr_assert_eq(cll_chat_prompt(t, &v, &o, &s, NULL, &first, &e), 0, "%s", e.msg);
  cr_expect_eq(first, 0);
  cr_expect_str_eq(s, "[system:sys][user:first question, long enough to be dropped]"
                      "[assistant:first answer][user:[img-1]look [img-0] here]");
  free(s);
  o.num_ctx = 70; /* only the system message and the last turns fit */
  cr_assert_eq(cll_chat_prompt(t, &v, &o, &s, NULL, &first, &e), 0, "%s", e.msg);
  cr_expect_eq(first, 2);
  cr_expect_str_eq(s, "[system:sys][assistant:first answer][user:[img-1]look [img-0] here]");
  free(s);
  o.num_ctx = 1; /* never drops the last message */
  cr_assert_eq(cll_chat_prompt(t, &v, &o, &s, NULL, &first, &e), 0, "%s", e.msg);
  cr_expect_eq(first, 3);
  cr_expect_str_eq(s, "[system:sys][user:[img-1]look [img-0] here]");
  free(s);
  cll_template_free(t);
}

static int count_calls(void *ud, const char *text, size_t len) {
  (void)text;
  ++*(int *)ud;
  return (int)len;
}

/* A long history over num_ctx costs a logarithmic number of renders, not
 * one per dropped message (that was quadratic in the history length). */
Test(template, chat_prompt_truncation_renders_few_times) {
  cll_template *t = parse_ok("{{ range .Messages }}[{{ .Content }}]{{ end }}");
  enum { N = 4000 };
  static struct cll_tmpl_message m[N];
  for (int i = 0; i < N; i++)
    m[i] = (struct cll_tmpl_message){.role = i % 2 ? "assistant" : "user", .content = "0123456789"};
  struct cll_tmpl_values v = {.messages = m, .n_messages = N};
  struct cll_chat_prompt_opts o;
  cll_chat_prompt_opts_defaults(&o);
  int calls = 0;
  o.count = count_calls;
  o.count_ud = &calls;
  o.num_ctx = 12 * 100; /* the last 100 messages fit */
  char *s;
  size_t first;
  cll_err e;
  cr_assert_eq(cll_chat_prompt(t, &v, &o, &s, NULL, &first, &e), 0, "%s", e.msg);
  cr_expect_eq(first, N - 100);
  cr_expect_eq(strlen(s), 12 * 100);
  cr_expect_leq(calls, 14, "%d renders for %d messages", calls, N);
  free(s);
  cll_template_free(t);
}

Test(template, tool_tag) {
  char tag[64];
  cll_template *t = parse_ok("{{ range .Messages }}{{ if .ToolCalls }}<tool_call>\n{\"name\": "
                             "{{ end }}{{ end }}");
  cll_template_tool_tag(t, tag, sizeof tag);
  cr_expect_str_eq(tag, "<tool_call>");
  cll_template_free(t);
  t = parse_ok("{{ range .Messages }}{{ .Content }}{{ end }}");
  cll_template_tool_tag(t, tag, sizeof tag);
  cr_expect_str_eq(tag, "{");
  cll_template_free(t);
}

Test(template, default_for_unknown_chat_template) {
  cr_expect_str_eq(cll_template_for_chat_template(NULL), "{{ .Prompt }}");
  cr_expect_str_eq(cll_template_for_chat_template("{{ nothing we know }}"), "{{ .Prompt }}");
  cr_expect_null(cll_template_builtin("no-such-format"));
}

Test(template, generate_assembly) {
  cll_template *t = parse_ok(GEN_TMPL);
  struct cll_chat_prompt_opts o;
  cll_chat_prompt_opts_defaults(&o);
  o.count = count_bytes;
  char *s;
  cll_err e;
  struct cll_generate_input in = {.prompt = "Hello!"};
  cr_assert_eq(cll_generate_prompt(t, &in, &o, &s, NULL, &e), 0, "%s", e.msg);
  cr_expect_str_eq(s, "User: Hello! ");
  free(s);
  in.model_system = "You are a helpful assistant.";
  cr_assert_eq(cll_generate_prompt(t, &in, &o, &s, NULL, &e), 0, "%s", e.msg);
  cr_expect_str_eq(s, "System: You are a helpful assistant. User: Hello! ");
  free(s);
  in.system = "Be brief.";
  in.has_context = true;
  in.context_text = "earlier text ";
  struct cll_tmpl_message mm[] = {{.role = "user", .content = "stored"}};
  in.model_messages = mm;
  in.n_model_messages = 1; /* skipped: context is present */
  cr_assert_eq(cll_generate_prompt(t, &in, &o, &s, NULL, &e), 0, "%s", e.msg);
  cr_expect_str_eq(s, "earlier text System: Be brief. User: Hello! ");
  free(s);
  cll_template_free(t);

  t = parse_ok("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>");
  struct cll_generate_input fim = {.prompt = "def add(", .suffix = "    return c"};
  cr_assert_eq(cll_generate_prompt(t, &fim, &o, &s, NULL, &e), 0, "%s", e.msg);
  cr_expect_str_eq(s, "<PRE> def add( <SUF>    return c <MID>");
  free(s);
  cr_expect(cll_template_uses(t, "suffix"));
  cll_template_free(t);
}

Test(template, builtin_stops) {
  const char *const *stops;
  cr_expect_eq(cll_template_builtin_stops("llama3-instruct", &stops), 3);
  cr_expect_str_eq(stops[2], "<|eot_id|>");
  cr_expect_eq(cll_template_builtin_stops("nope", &stops), 0);
  cr_expect_str_eq(cll_template_name_for_chat_template("{% for m in messages %}<|im_start|>"
                                                       "{{ m.role }}{% endfor %}"),
                   "chatml");
}

Test(template, think_tags) {
  char o[32], c[32];
  cll_template *t = parse_ok("{{ range .Messages }}{{ if eq .Role \"assistant\" }}{{ if .Thinking "
                             "}}<think>\n{{ .Thinking }}\n</think> {{ end }}{{ .Content }}{{ end "
                             "}}{{ end }}");
  cll_template_think_tags(t, o, sizeof o, c, sizeof c);
  cr_expect_str_eq(o, "<think>");
  cr_expect_str_eq(c, "</think>");
  cll_template_free(t);
  t = parse_ok("{{ .Thinking }}{{ range .Tools }}{{ .Thinking }}{{ end }}");
  cll_template_think_tags(t, o, sizeof o, c, sizeof c);
  cr_expect_str_eq(o, "");
  cr_expect_str_eq(c, "");
  cll_template_free(t);
}

Test(template, messages_from_request_json) {
  json_t *req = json_loads(
      "[{\"role\":\"System\",\"content\":\"be nice\"},{\"role\":\"user\",\"content\":\"hi\","
      "\"images\":[\"aGk=\"]},{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{"
      "\"function\":{\"index\":0,\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}}]},"
      "{\"role\":\"tool\",\"content\":\"20C\",\"tool_name\":\"get_weather\"}]",
      0, NULL);
  cr_assert_not_null(req);
  struct cll_tmpl_message *m;
  size_t n;
  cll_err e;
  cr_assert_eq(cll_tmpl_messages_from_json(req, &m, &n, &e), 0, "%s", e.msg);
  cr_expect_eq(n, 4);
  cr_expect_str_eq(m[0].role, "system");
  cr_expect_eq(m[1].n_images, 1);
  cr_expect_eq(m[2].n_tool_calls, 1);
  cr_expect_str_eq(m[2].tool_calls[0].name, "get_weather");
  cr_expect_str_eq(m[3].tool_name, "get_weather");
  char *s = render_msgs("{{ range .Messages }}{{ .Role }}:{{ .Content }}{{ range .ToolCalls }}"
                        "{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}|{{ end }}",
                        m, n);
  cr_expect_str_eq(s, "system:be nice|user:hi|assistant:get_weather{\"city\":\"Paris\"}|tool:20C|");
  free(s);
  free(m);
  json_t *bad = json_loads("[{\"role\":\"user\",\"content\":5}]", 0, NULL);
  cr_expect_eq(cll_tmpl_messages_from_json(bad, &m, &n, &e), CLL_EINVAL);
  cr_expect(strstr(e.msg, "content") != NULL);
  json_decref(bad);
  json_decref(req);
}
