/* test_modelfile.c — the Modelfile parser (src/api/modelfile.c). */
#include "cllama/api.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(modelfile, every_instruction) {
  const char *mf = "# a comment\n"
                   "FROM llama3.2\n"
                   "TEMPLATE \"\"\"{{ .System }}\n{{ .Prompt }}\"\"\"\n"
                   "system You are \"terse\".\n"
                   "PARAMETER temperature 0.5\n"
                   "PARAMETER num_ctx 2048\n"
                   "PARAMETER stop \"<|eot|>\"\n"
                   "PARAMETER stop </s>\n"
                   "MESSAGE user Hi\n"
                   "MESSAGE assistant \"\"\"Hello\nthere\"\"\"\n"
                   "LICENSE MIT\n"
                   "LICENSE \"\"\"Apache\"\"\"\n";
  json_t *r = NULL;
  cll_err e = {0};
  cr_assert_eq(cll_modelfile_parse(mf, ".", NULL, &r, &e), 0, "%s", e.msg);
  cr_expect_str_eq(json_string_value(json_object_get(r, "from")), "llama3.2");
  cr_expect_str_eq(json_string_value(json_object_get(r, "template")),
                   "{{ .System }}\n{{ .Prompt }}");
  cr_expect_str_eq(json_string_value(json_object_get(r, "system")), "You are \"terse\".");
  json_t *p = json_object_get(r, "parameters");
  cr_expect_float_eq(json_real_value(json_object_get(p, "temperature")), 0.5, 1e-9);
  cr_expect_eq(json_integer_value(json_object_get(p, "num_ctx")), 2048);
  cr_expect_eq(json_array_size(json_object_get(p, "stop")), 2);
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(p, "stop"), 0)), "<|eot|>");
  json_t *m = json_object_get(r, "messages");
  cr_assert_eq(json_array_size(m), 2);
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(m, 1), "content")),
                   "Hello\nthere");
  cr_expect_eq(json_array_size(json_object_get(r, "license")), 2);
  json_decref(r);
}

Test(modelfile, errors) {
  json_t *r = NULL;
  cll_err e = {0};
  cr_expect_eq(cll_modelfile_parse("SYSTEM hi\n", ".", NULL, &r, &e), CLL_EPARSE);
  cr_expect_str_eq(e.msg, "no FROM line");
  cr_expect_eq(cll_modelfile_parse("FROM x\nPARAMETER foo 1\n", ".", NULL, &r, &e), CLL_EINVAL);
  cr_expect_str_eq(e.msg, "unknown parameter 'foo'");
  cr_expect_eq(cll_modelfile_parse("FROM x\nTEMPLATE \"\"\"open\n", ".", NULL, &r, &e), CLL_EPARSE);
  cr_expect_eq(cll_modelfile_parse("FROM x\nPARAMETER num_ctx big\n", ".", NULL, &r, &e),
               CLL_EINVAL);
  cr_expect_eq(cll_modelfile_parse("FROM ./missing.gguf\n", "/tmp", NULL, &r, &e), CLL_ENOENT);
  cr_expect_eq(cll_modelfile_parse("FROM x\nMESSAGE robot hi\n", ".", NULL, &r, &e), CLL_EPARSE);
}

Test(modelfile, escapes_and_refusals) {
  json_t *r = NULL;
  cll_err e = {0};
  cr_assert_eq(
      cll_modelfile_parse("FROM x\nPARAMETER stop \"\\n\\nUser:\\t\\\"q\\\" \\\\ \\u003c\"\n"
                          "SYSTEM \"C:\\models\\x\"\n",
                          ".", NULL, &r, &e),
      0, "%s", e.msg);
  json_t *stop = json_object_get(json_object_get(r, "parameters"), "stop");
  cr_expect_str_eq(json_string_value(json_array_get(stop, 0)), "\n\nUser:\t\"q\" \\ <");
  cr_expect_str_eq(json_string_value(json_object_get(r, "system")), "C:\\models\\x");
  json_decref(r);
  cr_expect_eq(cll_modelfile_parse("FROM x\nADAPTER ./lora.gguf\n", ".", NULL, &r, &e),
               CLL_EUNSUPPORTED);
  cr_expect(strstr(e.msg, "ADAPTER is not supported"), "%s", e.msg);
  cr_expect_eq(cll_modelfile_parse("FROM x\nREQUIRES 0.9.0\n", ".", NULL, &r, &e),
               CLL_EUNSUPPORTED);
  cr_expect(strstr(e.msg, "REQUIRES is not supported"), "%s", e.msg);
}

/* ---------------------------------------------------------------- round trip
 * The edit-a-model workflow through the real binary and server: a Modelfile
 * with every instruction and awkward text is created, `show --modelfile`'s
 * output is fed back to `create`, and the second model shows the same
 * Modelfile, template, system, parameters, license and messages as the
 * first, which are the ones written. */
#include "api_harness.h"

static char *sh_out(const char *cmd) {
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  size_t cap = 1 << 16, len = 0, k;
  char *out = malloc(cap);
  while ((k = fread(out + len, 1, cap - len - 1, p)) > 0)
    len += k;
  out[len] = 0;
  cr_assert_eq(pclose(p), 0, "%s failed:\n%s", cmd, out);
  return out;
}

/* The Modelfile without its "#" header lines. */
static char *body_of(const char *mf) {
  char *out = calloc(1, strlen(mf) + 1);
  const char *p = mf;
  size_t n = 0;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
    if (*p != '#') {
      memcpy(out + n, p, len);
      n += len;
    }
    p += len;
  }
  return out;
}

static void rt_setup(void) {
  NEED_SHARED();
  make_store();
  start_server(NULL);
}

Test(modelfile, show_create_show_round_trip, .init = rt_setup, .fini = stop_server,
     .timeout = 120) {
  char gguf[1200], path[600], cmd[4096];
  snprintf(gguf, sizeof(gguf), "%s/models/stories260K-f32.gguf", shared_dir());
  char *abs = realpath(gguf, NULL);
  cr_assert(abs);
  const char *tmpl = "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
                     "<|user|> {{ .Prompt }} & \"quoted\" \\ back\t<|end|>\n<|assistant|>";
  const char *system = "You are \"terse\" <and> & careful.\nSecond line with \"\"\" inside";
  const char *license = "MIT <license> & \"stuff\"\nsecond line \xf0\x9f\x98\x80";
  FILE *f;
  snprintf(path, sizeof(path), "%s/Modelfile.in", H.dir);
  f = fopen(path, "w");
  cr_assert(f);
  fprintf(f,
          "# every instruction\n"
          "FROM %s\n"
          "TEMPLATE \"\"\"%s\"\"\"\n"
          "SYSTEM \"You are \\\"terse\\\" <and> & careful.\\nSecond line with \\\"\\\"\\\" "
          "inside\"\n"
          "PARAMETER temperature 0.25\n"
          "PARAMETER top_k 17\n"
          "PARAMETER top_p 0.9\n"
          "PARAMETER num_ctx 256\n"
          "PARAMETER seed -3\n"
          "PARAMETER use_mmap false\n"
          "PARAMETER repeat_penalty 1.5\n"
          "PARAMETER stop \"<|end|>\"\n"
          "PARAMETER stop \"\\n\\nUser:\"\n"
          "PARAMETER stop \" tab\\there \\\\ \\\"q\\\"\"\n"
          "PARAMETER stop </s>\n"
          "MESSAGE system be brief\n"
          "MESSAGE user \"\"\"two\nlines <b> & \"quotes\\\"\"\"\n"
          "MESSAGE assistant \"ends with a quote: \\\"\"\n"
          "MESSAGE user  spaced words\n"
          "LICENSE \"\"\"%s\"\"\"\n",
          abs, tmpl, license);
  fclose(f);
  free(abs);
  const char *bin = getenv("CLLAMA_BIN");
  snprintf(
      cmd, sizeof(cmd),
      "cd '%s' && export OLLAMA_HOST=127.0.0.1:%d && '%s' create rt1 -f Modelfile.in >/dev/null"
      " && '%s' show rt1 --modelfile > m1 && '%s' create rt2 -f m1 >/dev/null && "
      "'%s' show rt2 --modelfile > m2 && cat m1",
      H.dir, H.port, bin, bin, bin, bin);
  char *m1 = sh_out(cmd);
  snprintf(cmd, sizeof(cmd), "cat '%s/m2'", H.dir);
  char *m2 = sh_out(cmd);
  cr_expect_null(strstr(m1, "\\u003c"), "show --modelfile escaped '<':\n%s", m1);
  cr_expect(strstr(m1, "PARAMETER stop \"<|end|>\""), "%s", m1);
  char *b1 = body_of(m1), *b2 = body_of(m2);
  cr_expect_str_eq(b1, b2, "the Modelfile changed in the round trip");
  free(b1);
  free(b2);
  free(m1);
  free(m2);

  json_t *s1 = post_json("/api/show", "{\"model\":\"rt1\"}", 200);
  json_t *s2 = post_json("/api/show", "{\"model\":\"rt2\"}", 200);
  cr_expect_str_eq(jstr(s1, "template"), tmpl);
  cr_expect_str_eq(jstr(s1, "system"), system);
  cr_expect_str_eq(jstr(s1, "license"), license);
  static const char *same[] = {"template", "system", "license", "parameters"};
  for (size_t i = 0; i < 4; i++)
    cr_expect_str_eq(jstr(s1, same[i]), jstr(s2, same[i]), "%s differs", same[i]);
  cr_expect(json_equal(json_object_get(s1, "messages"), json_object_get(s2, "messages")),
            "messages differ: %s vs %s", json_dumps(json_object_get(s1, "messages"), 0),
            json_dumps(json_object_get(s2, "messages"), 0));
  json_t *msgs = json_object_get(s2, "messages");
  cr_assert_eq(json_array_size(msgs), 4);
  cr_expect_str_eq(jstr(json_array_get(msgs, 1), "content"), "two\nlines <b> & \"quotes\\");
  cr_expect_str_eq(jstr(json_array_get(msgs, 2), "content"), "ends with a quote: \"");
  cr_expect_str_eq(jstr(json_array_get(msgs, 3), "content"), "spaced words");
  /* The parameters as typed, each with its type. */
  const char *p = jstr(s2, "parameters");
  cr_expect(strstr(p, "stop                           \"\\n\\nUser:\""), "%s", p);
  cr_expect(strstr(p, "stop                           \" tab\\there \\\\ \\\"q\\\"\""), "%s", p);
  cr_expect(strstr(p, "stop                           \"</s>\""), "%s", p);
  cr_expect(strstr(p, "use_mmap                       false"), "%s", p);
  cr_expect(strstr(p, "seed                           -3"), "%s", p);
  cr_expect(strstr(p, "temperature                    0.25"), "%s", p);
  json_decref(s1);
  json_decref(s2);
}

/* "~" in FROM is the home given (the server's configuration), never the
 * environment; without one it is a plain relative path. */
Test(modelfile, from_tilde_is_the_given_home) {
  char home[] = "/tmp/cll_mf_home_XXXXXX";
  cr_assert(mkdtemp(home));
  char file[600];
  snprintf(file, sizeof(file), "%s/m.gguf", home);
  FILE *f = fopen(file, "wb");
  cr_assert(f);
  fclose(f);
  char *want = realpath(file, NULL);
  cr_assert(want);
  json_t *r = NULL;
  cll_err e = {0};
  cr_assert_eq(cll_modelfile_parse("FROM ~/m.gguf\n", "/nonexistent", home, &r, &e), 0, "%s",
               e.msg);
  cr_expect_str_eq(json_string_value(json_object_get(r, "from")), want);
  json_decref(r);
  cr_expect_eq(cll_modelfile_parse("FROM ~/m.gguf\n", "/nonexistent", "/nonexistent/home", &r, &e),
               CLL_ENOENT);
  cr_expect(strstr(e.msg, "/nonexistent/home/m.gguf") != NULL, "%s", e.msg);
  cr_expect_eq(cll_modelfile_parse("FROM ~/m.gguf\n", home, NULL, &r, &e), CLL_ENOENT);
  cr_expect(strstr(e.msg, "/~/m.gguf") != NULL, "%s", e.msg);
  free(want);
  remove(file);
  rmdir(home);
}

/* `cllama create` reads "~" in FROM as $HOME (the client configuration),
 * from any directory. */
Test(modelfile, cli_create_from_tilde_is_home, .init = rt_setup, .fini = stop_server,
     .timeout = 120) {
  char home[600], cmd[4096];
  snprintf(home, sizeof(home), "%s/home", H.dir);
  cr_assert_eq(mkdir(home, 0700), 0);
  snprintf(cmd, sizeof(cmd), "cp '%s/models/stories260K-f32.gguf' '%s/tiny.gguf'", shared_dir(),
           home);
  cr_assert_eq(system(cmd), 0);
  char mf[700];
  snprintf(mf, sizeof(mf), "%s/Modelfile.tilde", H.dir);
  FILE *f = fopen(mf, "w");
  cr_assert(f);
  fprintf(f, "FROM ~/tiny.gguf\n");
  fclose(f);
  const char *bin = getenv("CLLAMA_BIN");
  snprintf(cmd, sizeof(cmd),
           "cd / && HOME='%s' OLLAMA_HOST=127.0.0.1:%d '%s' create tilde -f '%s' >/dev/null 2>&1",
           home, H.port, bin, mf);
  cr_expect_eq(system(cmd), 0, "%s", cmd);
  json_t *v = post_json("/api/show", "{\"model\":\"tilde\"}", 200);
  json_decref(v);
  /* Another HOME: the file is not there. */
  snprintf(cmd, sizeof(cmd),
           "cd / && HOME='%s' OLLAMA_HOST=127.0.0.1:%d '%s' create tilde2 -f '%s' 2>&1 | "
           "grep -q '%s/tiny.gguf: no such file'",
           H.dir, H.port, bin, mf, H.dir);
  cr_expect_eq(system(cmd), 0, "%s", cmd);
}
