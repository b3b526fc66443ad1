/* test_api_options.c — generation options and keep_alive parsing
 * (src/api/options.c), against Ollama's messages. */
#include "../src/api/gen.h"

#include <criterion/criterion.h>
#include <string.h>

static json_t *J(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
  cr_assert(v, "bad test JSON %s", s);
  return v;
}

Test(api_options, defaults_and_layers) {
  struct cll__gen_opts o;
  cll__gen_opts_defaults(&o);
  cr_expect_eq(o.num_predict, -1);
  cr_expect_eq(o.top_k, 40);
  cr_expect_float_eq(o.temperature, 0.8, 1e-9);
  cll_err e;
  json_t *model = J("{\"stop\":[\"<|eot|>\",\"</s>\"],\"temperature\":0.6,\"num_ctx\":2048}");
  json_t *req = J("{\"temperature\":0,\"stop\":[\"x\"],\"num_predict\":12.7,\"mirostat\":1,"
                  "\"system\":\"be brief\",\"seed\":42}");
  cr_assert_eq(cll__gen_opts_apply(&o, model, &e), 0);
  cr_expect_eq(o.n_stop, 2);
  cr_assert_eq(cll__gen_opts_apply(&o, req, &e), 0);
  cr_expect_float_eq(o.temperature, 0.0, 1e-9);
  cr_expect_eq(o.num_ctx, 2048);
  cr_expect_eq(o.num_predict, 12);
  cr_expect_eq(o.seed, 42);
  cr_assert_eq(o.n_stop, 1);
  cr_expect_str_eq(o.stop[0], "x");
  cr_expect_str_eq(o.system, "be brief");
  cll__gen_opts_free(&o);
  json_decref(model);
  json_decref(req);
}

Test(api_options, wrong_types_say_so_as_ollama) {
  static const struct {
    const char *json, *msg;
  } cases[] = {
      {"{\"num_ctx\":\"big\"}", "option \"num_ctx\" must be of type integer"},
      {"{\"temperature\":\"hot\"}", "option \"temperature\" must be of type float32"},
      {"{\"use_mmap\":1}", "option \"use_mmap\" must be of type boolean"},
      {"{\"stop\":\"x\"}", "option \"stop\" must be of type array"},
      {"{\"stop\":[1]}", "option \"stop\" must be of an array of strings"},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(cases); i++) {
    struct cll__gen_opts o;
    cll__gen_opts_defaults(&o);
    cll_err e = {0};
    json_t *v = J(cases[i].json);
    cr_expect_eq(cll__gen_opts_apply(&o, v, &e), CLL_EINVAL);
    cr_expect_str_eq(e.msg, cases[i].msg);
    cll__gen_opts_free(&o);
    json_decref(v);
  }
}

Test(api_options, go_durations) {
  static const struct {
    const char *s;
    int64_t ns;
  } ok[] = {{"5m", 300000000000LL},  {"1h30m", 5400000000000LL}, {"0", 0},
            {"-1m", -60000000000LL}, {"1.5s", 1500000000LL},     {"300ms", 300000000LL}};
  for (size_t i = 0; i < CLL_ARRAY_LEN(ok); i++) {
    int64_t ns = 1;
    cll_err e;
    cr_expect_eq(cll__go_duration(ok[i].s, &ns, &e), 0, "%s", ok[i].s);
    cr_expect_eq(ns, ok[i].ns, "%s", ok[i].s);
  }
  int64_t ns;
  cll_err e;
  cr_expect_eq(cll__go_duration("10", &ns, &e), CLL_EINVAL);
  cr_expect_str_eq(e.msg, "time: missing unit in duration \"10\"");
  cr_expect_eq(cll__go_duration("abc", &ns, &e), CLL_EINVAL);
  cr_expect_str_eq(e.msg, "time: invalid duration \"abc\"");
}

Test(api_options, keep_alive_values) {
  int64_t ns;
  bool set;
  cll_err e;
  json_t *v = J("42.5");
  cr_expect_eq(cll__keep_alive_parse(v, &ns, &set, &e), 0);
  cr_expect(set);
  cr_expect_eq(ns, 42500000000LL);
  json_decref(v);
  v = J("-1");
  cr_expect_eq(cll__keep_alive_parse(v, &ns, &set, &e), 0);
  cr_expect_lt(ns, 0);
  json_decref(v);
  v = J("\"0\"");
  cr_expect_eq(cll__keep_alive_parse(v, &ns, &set, &e), 0);
  cr_expect_eq(ns, 0);
  cr_expect(set);
  json_decref(v);
  cr_expect_eq(cll__keep_alive_parse(NULL, &ns, &set, &e), 0);
  cr_expect(!set);
}
