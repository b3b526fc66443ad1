/* test_modelfile.c — the Modelfile parser (src/api/modelfile.c). */
#include "cllama/api.h"

#include <criterion/criterion.h>
#include <string.h>

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
  cr_assert_eq(cll_modelfile_parse(mf, ".", &r, &e), 0, "%s", e.msg);
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
  cr_expect_eq(cll_modelfile_parse("SYSTEM hi\n", ".", &r, &e), CLL_EPARSE);
  cr_expect_str_eq(e.msg, "no FROM line");
  cr_expect_eq(cll_modelfile_parse("FROM x\nPARAMETER foo 1\n", ".", &r, &e), CLL_EINVAL);
  cr_expect_str_eq(e.msg, "unknown parameter 'foo'");
  cr_expect_eq(cll_modelfile_parse("FROM x\nTEMPLATE \"\"\"open\n", ".", &r, &e), CLL_EPARSE);
  cr_expect_eq(cll_modelfile_parse("FROM x\nPARAMETER num_ctx big\n", ".", &r, &e), CLL_EINVAL);
  cr_expect_eq(cll_modelfile_parse("FROM ./missing.gguf\n", "/tmp", &r, &e), CLL_ENOENT);
  cr_expect_eq(cll_modelfile_parse("FROM x\nMESSAGE robot hi\n", ".", &r, &e), CLL_EPARSE);
}
