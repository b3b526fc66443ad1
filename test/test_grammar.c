/* test_grammar.c — the grammar engine (include/cllama/grammar.h): schema
 * compilation and its errors, byte-at-a-time acceptance, masks against a
 * brute-force check over the vocabulary, random walks that must end in a
 * complete value within the token budget. */
#include "cllama/grammar.h"
#include "cllama/gguf.h"
#include "cllama/tokenizer.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cll_grammar *compile_str(const char *schema) {
  json_error_t je;
  json_t *j = json_loads(schema, JSON_DECODE_ANY, &je);
  cr_assert(j, "bad test schema: %s", schema);
  cll_grammar *g = NULL;
  cll_err err = {0};
  int rc = cll_grammar_compile(j, NULL, &g, &err);
  json_decref(j);
  cr_assert_eq(rc, 0, "compile %s: %s", schema, err.msg);
  return g;
}

static int compile_err(const char *schema, cll_err *err) {
  json_t *j = json_loads(schema, JSON_DECODE_ANY, NULL);
  cr_assert(j);
  cll_grammar *g = NULL;
  int rc = cll_grammar_compile(j, NULL, &g, err);
  json_decref(j);
  cll_grammar_free(g);
  return rc;
}

/* Whole text accepted and complete? Fed one byte at a time. */
static bool accepts(cll_grammar *g, const char *text) {
  cll_grammar_state *s = NULL;
  cr_assert_eq(cll_grammar_state_new(g, NULL, &s), 0);
  bool ok = true;
  for (size_t i = 0; text[i] && ok; i++)
    ok = cll_grammar_accept_bytes(s, text + i, 1);
  ok = ok && cll_grammar_accepting(s);
  cll_grammar_state_free(s);
  return ok;
}

#define YES(g, t) cr_expect(accepts(g, t), "should accept: %s", t)
#define NO(g, t) cr_expect(!accepts(g, t), "should reject: %s", t)

Test(grammar, json_mode) {
  cll_grammar *g = compile_str("\"json\"");
  YES(g, "{}");
  YES(g, "{\"a\": [1, 2.5e3, -0.5, true, null, \"x\\n\\u00e9\"], \"b\": {}}");
  YES(g, "{\n  \"k\": \"caf\xc3\xa9\"\n}");
  NO(g, "[]");
  NO(g, "1");
  NO(g, "{\"a\":01}");
  NO(g, "{\"a\": \"\x01\"}");
  NO(g, "{\"a\": \"\xc3\"}"); /* truncated UTF-8 */
  NO(g, "{\"a\":   1}");      /* three blanks: bounded whitespace */
  NO(g, "{} ");
  cll_grammar_free(g);
}

Test(grammar, objects_required_optional) {
  cll_grammar *g = compile_str(
      "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":"
      "\"string\"},\"c\":{\"type\":\"boolean\"}},\"required\":[\"b\"],\"additionalProperties\":"
      "false}");
  YES(g, "{\"b\":\"x\"}");
  YES(g, "{\"a\":1,\"b\":\"x\"}");
  YES(g, "{\"a\": 1, \"b\": \"x\", \"c\": true}");
  YES(g, "{\"b\":\"\",\"c\":false}");
  NO(g, "{}");
  NO(g, "{\"a\":1}");
  NO(g, "{\"b\":\"x\",\"d\":1}");
  NO(g, "{\"b\":1}");
  cll_grammar_free(g);
  g = compile_str("{\"type\":\"object\"}"); /* nothing declared: any object */
  YES(g, "{}");
  YES(g, "{\"x\":[1,{\"y\":null}]}");
  NO(g, "[]");
  cll_grammar_free(g);
  g = compile_str("{\"properties\":{\"a\":{\"type\":\"integer\"}},\"additionalProperties\":"
                  "{\"type\":\"string\"}}");
  YES(g, "{\"a\":1,\"ab\":\"x\",\"zz\":\"y\"}");
  YES(g, "{\"b\":\"x\"}");
  NO(g, "{\"a\":1,\"a\":\"x\"}");
  NO(g, "{\"b\":1}");
  cll_grammar_free(g);
}

Test(grammar, arrays) {
  cll_grammar *g = compile_str("{\"type\":\"array\",\"items\":{\"type\":\"integer\",\"minimum\":"
                               "-5,\"maximum\":120},\"minItems\":2,\"maxItems\":3}");
  YES(g, "[1,2]");
  YES(g, "[-5, 120, 0]");
  NO(g, "[1]");
  NO(g, "[1,2,3,4]");
  NO(g, "[121,1]");
  NO(g, "[-6,1]");
  NO(g, "[-0,1]");
  cll_grammar_free(g);
  g = compile_str("{\"prefixItems\":[{\"type\":\"string\"},{\"type\":\"null\"}],\"items\":false}");
  YES(g, "[]");
  YES(g, "[\"a\"]");
  YES(g, "[\"a\",null]");
  NO(g, "[\"a\",null,1]");
  NO(g, "[null]");
  cll_grammar_free(g);
}

Test(grammar, integer_ranges_exhaustive) {
  static const int ranges[][2] = {{0, 0}, {-3, 7}, {5, 105}, {-1000, -17}, {99, 1001}, {7, 7}};
  for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
    char sc[200];
    snprintf(sc, sizeof(sc), "{\"type\":\"integer\",\"minimum\":%d,\"maximum\":%d}", ranges[r][0],
             ranges[r][1]);
    cll_grammar *g = compile_str(sc);
    for (int v = -1200; v <= 1200; v++) {
      char t[16];
      snprintf(t, sizeof(t), "%d", v);
      bool in = v >= ranges[r][0] && v <= ranges[r][1];
      cr_expect_eq(accepts(g, t), in, "%s: %d", sc, v);
    }
    cll_grammar_free(g);
  }
  cll_grammar *g = compile_str("{\"type\":\"integer\",\"exclusiveMinimum\":0}");
  NO(g, "0");
  YES(g, "1");
  YES(g, "9999999999999999");
  cll_grammar_free(g);
}

Test(grammar, enum_const_anyof_ref) {
  cll_grammar *g = compile_str("{\"enum\":[\"red\",\"green\",3,null,{\"a\":[1]}]}");
  YES(g, "\"red\"");
  YES(g, "3");
  YES(g, "null");
  YES(g, "{\"a\":[1]}");
  NO(g, "\"blue\"");
  cll_grammar_free(g);
  g = compile_str("{\"anyOf\":[{\"type\":\"string\",\"maxLength\":2},{\"type\":\"object\","
                  "\"properties\":{\"x\":{\"const\":1}},\"required\":[\"x\"]}]}");
  YES(g, "\"ab\"");
  YES(g, "{\"x\":1}");
  NO(g, "\"abc\"");
  NO(g, "{\"x\":2}");
  cll_grammar_free(g);
  g = compile_str("{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":"
                  "\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\""
                  "}}},\"required\":[\"v\"]}},\"$ref\":\"#/$defs/node\"}");
  YES(g, "{\"v\":1}");
  YES(g, "{\"v\":1,\"kids\":[{\"v\":2,\"kids\":[{\"v\":3}]},{\"v\":4}]}");
  NO(g, "{\"v\":1,\"kids\":[{}]}");
  cll_grammar_free(g);
}

Test(grammar, strings_patterns_formats) {
  cll_grammar *g = compile_str("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}");
  YES(g, "\"ab\"");
  YES(g, "\"\xc3\xa9\xc3\xa9\xc3\xa9\"");
  YES(g, "\"a\\\"b\"");
  NO(g, "\"a\"");
  NO(g, "\"abcd\"");
  cll_grammar_free(g);
  g = compile_str("{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{3,4}(x|yz)?$\"}");
  YES(g, "\"AB-123\"");
  YES(g, "\"AB-1234yz\"");
  NO(g, "\"AB-12\"");
  NO(g, "\"ab-123\"");
  NO(g, "\"AB-123y\"");
  cll_grammar_free(g);
  g = compile_str("{\"type\":\"string\",\"pattern\":\"ab\"}"); /* unanchored */
  YES(g, "\"xxabyy\"");
  NO(g, "\"xxayy\"");
  cll_grammar_free(g);
  g = compile_str("{\"type\":\"string\",\"pattern\":\"^[^\\\"]+\\\"$\"}");
  YES(g, "\"ab\\\"\"");
  NO(g, "\"ab\"");
  cll_grammar_free(g);
  g = compile_str("{\"type\":\"string\",\"format\":\"date\"}");
  YES(g, "\"2024-02-28\"");
  NO(g, "\"2024-02-30\"");
  NO(g, "\"2024-13-01\"");
  cll_grammar_free(g);
  g = compile_str("{\"format\":\"date-time\"}");
  YES(g, "\"2024-12-04T16:30:00Z\"");
  YES(g, "\"2024-12-04T16:30:00.123+02:00\"");
  NO(g, "\"2024-12-04 16:30:00Z\"");
  cll_grammar_free(g);
  g = compile_str("{\"format\":\"uuid\"}");
  YES(g, "\"123e4567-e89b-12d3-a456-426614174000\"");
  NO(g, "\"123e4567e89b12d3a456426614174000\"");
  cll_grammar_free(g);
  g = compile_str("{\"format\":\"email\"}");
  YES(g, "\"a.b@example.com\"");
  NO(g, "\"a.b.example.com\"");
  cll_grammar_free(g);
}

/* Rules that loop without consuming anything, and very long keys, compile
 * and run in bounded time and stack. */
Test(grammar, degenerate_schemas) {
  cll_grammar *g =
      compile_str("{\"$defs\":{\"a\":{\"anyOf\":[{\"$ref\":\"#/$defs/b\"},{\"type\":"
                  "\"null\"}]},\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}");
  YES(g, "null");
  NO(g, "1");
  cll_grammar_free(g);
  g = compile_str("{\"type\":\"string\",\"pattern\":\"^(a*)*b(c?)*$\"}");
  YES(g, "\"aaab\"");
  YES(g, "\"bcc\"");
  NO(g, "\"ba\"");
  cll_grammar_free(g);
  char key[3000], sc[7000];
  memset(key, 'k', sizeof(key) - 1);
  key[sizeof(key) - 1] = 0;
  snprintf(sc, sizeof(sc),
           "{\"properties\":{\"%s\":{\"type\":\"null\"}},\"additionalProperties\":"
           "{\"type\":\"integer\"}}",
           key);
  g = compile_str(sc);
  YES(g, "{\"kk\":1}");
  char doc[7000];
  snprintf(doc, sizeof(doc), "{\"%s\":null}", key);
  YES(g, doc);
  snprintf(doc, sizeof(doc), "{\"%s\":1}", key);
  NO(g, doc);
  cll_grammar_free(g);
}

Test(grammar, errors_name_the_keyword) {
  cll_err err = {0};
  cr_expect_eq(compile_err("{\"type\":\"object\",\"patternProperties\":{}}", &err),
               CLL_EUNSUPPORTED);
  cr_expect(strstr(err.msg, "patternProperties"), "%s", err.msg);
  cr_expect_eq(compile_err("{\"allOf\":[{}]}", &err), CLL_EUNSUPPORTED);
  cr_expect(strstr(err.msg, "allOf"), "%s", err.msg);
  cr_expect_eq(compile_err("{\"type\":\"number\",\"minimum\":1}", &err), CLL_EUNSUPPORTED);
  cr_expect(strstr(err.msg, "minimum"), "%s", err.msg);
  cr_expect_eq(compile_err("{\"type\":\"string\",\"format\":\"uri\"}", &err), CLL_EUNSUPPORTED);
  cr_expect(strstr(err.msg, "uri"), "%s", err.msg);
  cr_expect_eq(compile_err("{\"type\":\"string\",\"pattern\":\"(?=a)b\"}", &err), CLL_EUNSUPPORTED);
  cr_expect(strstr(err.msg, "pattern"), "%s", err.msg);
  cr_expect_eq(compile_err("{\"$ref\":\"http://x/y.json\"}", &err), CLL_EUNSUPPORTED);
  cr_expect_eq(compile_err("{\"$ref\":\"#\"}", &err), CLL_EINVAL); /* no finite value */
  cr_expect_eq(compile_err("{\"type\":\"wat\"}", &err), CLL_EINVAL);
  cr_expect_eq(compile_err("\"yaml\"", &err), CLL_EINVAL);
  cr_expect_eq(compile_err("{\"type\":\"array\",\"uniqueItems\":true}", &err), CLL_EUNSUPPORTED);
  cr_expect(strstr(err.msg, "uniqueItems"), "%s", err.msg);
}

Test(grammar, prefix_suffix_alternatives_trigger) {
  json_t *a = json_loads("{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"f\"},"
                         "\"arguments\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":"
                         "\"integer\"}},\"required\":[\"x\"]}},\"required\":[\"name\","
                         "\"arguments\"]}",
                         0, NULL);
  json_t *b = json_loads("{\"type\":\"object\",\"properties\":{\"name\":{\"const\":\"g\"},"
                         "\"arguments\":{\"type\":\"object\"}},\"required\":[\"name\","
                         "\"arguments\"]}",
                         0, NULL);
  const json_t *alts[] = {a, b};
  struct cll_grammar_opts o;
  cll_grammar_opts_defaults(&o);
  o.prefix = "<tool_call>\n";
  o.suffix = "\n</tool_call>";
  cll_grammar *g = NULL;
  cll_err err = {0};
  cr_assert_eq(cll_grammar_compile_any(alts, 2, &o, &g, &err), 0, "%s", err.msg);
  YES(g, "<tool_call>\n{\"name\":\"f\",\"arguments\":{\"x\":3}}\n</tool_call>");
  YES(g, "<tool_call>\n{\"name\":\"g\",\"arguments\":{}}\n</tool_call>");
  NO(g, "<tool_call>\n{\"name\":\"f\",\"arguments\":{}}\n</tool_call>");
  NO(g, "{\"name\":\"g\",\"arguments\":{}}");
  cll_grammar_free(g);

  o.prefix = o.suffix = NULL;
  o.trigger = "</think>";
  cr_assert_eq(cll_grammar_compile_any(alts, 1, &o, &g, &err), 0, "%s", err.msg);
  cll_grammar_state *s = NULL;
  cr_assert_eq(cll_grammar_state_new(g, NULL, &s), 0);
  cr_expect(!cll_grammar_active(s));
  const char *think = "<think>anything { goes </thi";
  cr_expect(cll_grammar_accept_bytes(s, think, strlen(think)));
  cr_expect(!cll_grammar_active(s));
  const char *mid = "nk>\n{\"name\":";
  cr_expect(cll_grammar_accept_bytes(s, mid, strlen(mid)));
  cr_expect(cll_grammar_active(s));
  cr_expect(!cll_grammar_accept_bytes(s, "1", 1));
  const char *rest = "\"f\",\"arguments\":{\"x\":12}}";
  cr_expect(cll_grammar_accept_bytes(s, rest, strlen(rest)));
  cr_expect(cll_grammar_done(s));
  cll_grammar_state_free(s);
  cll_grammar_free(g);
  json_decref(a);
  json_decref(b);
}

/* ---------------------------------------------------------------- masks */

/* A synthetic vocabulary: every byte, JSON punctuation runs, words, digit
 * runs, multi-byte characters split across tokens, one EOG and one control. */
struct vocab {
  char **p;
  size_t *len;
  uint8_t *flags;
  int32_t n;
};

static void vadd(struct vocab *v, const char *s, size_t n, uint8_t f) {
  v->p[v->n] = malloc(n + 1);
  memcpy(v->p[v->n], s, n);
  v->len[v->n] = n;
  v->flags[v->n] = f;
  v->n++;
}

static void make_vocab(struct vocab *v) {
  v->p = calloc(4096, sizeof(char *));
  v->len = calloc(4096, sizeof(size_t));
  v->flags = calloc(4096, 1);
  v->n = 0;
  vadd(v, "", 0, CLL_GV_EOG);
  vadd(v, "<ctl>", 5, CLL_GV_CONTROL);
  for (int c = 1; c < 256; c++) {
    char b = (char)c;
    vadd(v, &b, 1, 0);
  }
  static const char *words[] = {
      "{\"",      "\":",      "\": ",
      "\",",      "\", \"",   "\"}",
      "\"]",      "},",       "}]",
      "[{",       ", ",       ",\n  ",
      "\n",       "  ",       "   ",
      "true",     "false",    "null",
      "name",     "age",      "items",
      "kids",     "\"v\"",    "\"v\":",
      " {",       "{\n",      "\n}",
      "\\\"",     "\\n",      "\\u00",
      "e9",       "AB",       "-1",
      "12",       "123",      "2024",
      "-02-",     "28",       "T16",
      ":30:",     "00Z",      "@ex",
      "ample",    ".com",     "caf",
      "\xc3",     "\xa9\"",   "\xc3\xa9",
      "\xe2\x82", "\xac",     "\xe2\x82\xac\"",
      "hello",    " world",   "\"hi\"",
      "0.",       "5e",       "+3",
      "]}",       "\"}}",     "x\":",
      "\"red\"",  "gr",       "een",
      "\"a\":[",  "],\"b\":", "ef\"",
      "ghx\"",    "abmn\",",  "AB-12",
      "Z9\"",
  };
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    vadd(v, words[i], strlen(words[i]), 0);
}

static void free_vocab(struct vocab *v) {
  for (int32_t i = 0; i < v->n; i++)
    free(v->p[i]);
  free(v->p);
  free(v->len);
  free(v->flags);
}

/* Mask == for each token, whether accepting it succeeds on a copy. */
static void check_mask(cll_grammar_state *s, const cll_grammar_vocab *gv) {
  int32_t n = cll_grammar_vocab_n(gv);
  uint64_t *bits = calloc(((size_t)n + 63) / 64, 8);
  int32_t na = cll_grammar_mask(s, -1, bits);
  int32_t cnt = 0;
  for (int32_t t = 0; t < n; t++) {
    cll_grammar_state *c = NULL;
    cr_assert_eq(cll_grammar_state_copy(s, &c), 0);
    bool ok = cll_grammar_accept_token(c, t);
    cll_grammar_state_free(c);
    bool m = bits[t >> 6] >> (t & 63) & 1;
    cr_assert_eq(m, ok, "token %d mask %d brute force %d", t, m, ok);
    cnt += ok;
  }
  cr_assert_eq(na, cnt);
  free(bits);
}

static uint64_t rng_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

/* Random walks over allowed tokens; every step's mask is checked by brute
 * force; with a budget the value must be complete by its end. */
static void walks(const char *schema, int n_walks, int32_t budget) {
  struct vocab v;
  make_vocab(&v);
  cll_grammar_vocab *gv = NULL;
  cr_assert_eq(cll_grammar_vocab_new_raw((const char *const *)v.p, v.len, v.flags, v.n, &gv), 0);
  cll_grammar *g = compile_str(schema);
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  uint64_t *bits = calloc(((size_t)v.n + 63) / 64, 8);
  for (int w = 0; w < n_walks; w++) {
    cll_grammar_state *s = NULL;
    cr_assert_eq(cll_grammar_state_new(g, gv, &s), 0);
    char out[8192];
    size_t on = 0;
    int32_t left = budget;
    bool ended = false;
    for (int step = 0; step < 4000 && !ended; step++) {
      check_mask(s, gv);
      int32_t na = cll_grammar_mask(s, left, bits);
      cr_assert_gt(na, 0, "no token allowed at step %d after: %.*s", step, (int)on, out);
      int32_t pick = (int32_t)(rng_next(&seed) % (uint64_t)na), t = 0;
      for (;; t++)
        if (bits[t >> 6] >> (t & 63) & 1 && pick-- == 0)
          break;
      cr_assert(cll_grammar_accept_token(s, t));
      if (v.flags[t] & CLL_GV_EOG)
        ended = true;
      else if (on + v.len[t] < sizeof(out)) {
        memcpy(out + on, v.p[t], v.len[t]);
        on += v.len[t];
      }
      if (cll_grammar_done(s))
        ended = true;
      if (left > 0 && --left == 0)
        break;
    }
    if (budget > 0)
      cr_assert(cll_grammar_accepting(s), "budget %d ran out: %.*s", budget, (int)on, out);
    if (ended && !memmem(out, on, "\\u0000", 6)) { /* jansson refuses NUL in keys */
      out[on] = 0;
      json_error_t je;
      json_t *j = json_loads(out, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
      cr_assert(j, "not JSON (%s): %s", je.text, out);
      json_decref(j);
    }
    cll_grammar_state_free(s);
  }
  free(bits);
  cll_grammar_free(g);
  cll_grammar_vocab_free(gv);
  free_vocab(&v);
}

Test(grammar, masks_match_brute_force_json) {
  walks("\"json\"", 20, 60);
}

Test(grammar, masks_match_brute_force_schema) {
  walks("{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":6},"
        "\"age\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":130},\"tags\":{\"type\":"
        "\"array\",\"items\":{\"enum\":[\"red\",\"green\"]},\"maxItems\":3},\"when\":{\"format\":"
        "\"date\"},\"mail\":{\"format\":\"email\"},\"code\":{\"pattern\":\"^[a-z]{2,}[0-9]*$\"},"
        "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#\"},\"maxItems\":2}},"
        "\"required\":[\"name\",\"age\",\"when\",\"mail\",\"code\"]}",
        20, 80);
}

Test(grammar, masks_match_brute_force_strings) {
  walks("{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":3}},"
        "\"required\":[\"s\"],\"additionalProperties\":{\"type\":\"string\"}}",
        20, 50);
  /* classes whose continuation overlaps them (no fast path) and ones that do not */
  walks("{\"type\":\"object\",\"properties\":{\"p\":{\"pattern\":\"^[a-z]+[e-n0-9]{2}x?$\"},"
        "\"q\":{\"pattern\":\"^[A-Z]{1,3}-?[0-9]+$\"}},\"required\":[\"p\",\"q\"]}",
        30, 40);
}

/* The tokenizer's vocabulary (real pieces, byte tokens, EOG). */
Test(grammar, real_vocab_masks) {
  const char *shared = getenv("CLLAMA_SHARED");
  char path[1024];
  snprintf(path, sizeof(path), "%s/testdata/tokenizer/ggml-vocab-llama-spm.gguf",
           shared ? shared : "../shared");
  cll_gguf *gg = NULL;
  cll_err err = {0};
  if (cll_gguf_open(path, &gg, &err) != 0)
    cr_skip_test("no %s", path);
  cll_tokenizer *t = NULL;
  cr_assert_eq(cll_tokenizer_new(gg, &t, &err), 0, "%s", err.msg);
  cll_grammar_vocab *gv = NULL;
  cr_assert_eq(cll_grammar_vocab_new(t, &gv), 0);
  cll_grammar *g = compile_str("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}"
                               ",\"b\":{\"type\":\"array\",\"items\":{\"type\":\"number\"}},"
                               "\"m\":{\"format\":\"email\"}},\"required\":[\"a\",\"b\",\"m\"]}");
  cll_grammar_state *s = NULL;
  cr_assert_eq(cll_grammar_state_new(g, gv, &s), 0);
  const char *steps[] = {"{", "\"a\"", ": \"",  "h\xc3",        "\xa9llo", "\", \"b\": [",
                         "1", ".5",    ", 2",   "], \"m\": \"", "ada",     ".lo",
                         "@", "exam",  "ple.c", "om\""};
  for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
    check_mask(s, gv);
    cr_assert(cll_grammar_accept_bytes(s, steps[i], strlen(steps[i])), "%s", steps[i]);
  }
  check_mask(s, gv);
  cr_assert(cll_grammar_accept_bytes(s, "}", 1));
  cr_assert(cll_grammar_done(s));
  cll_grammar_state_free(s);
  cll_grammar_free(g);
  cll_grammar_vocab_free(gv);
  cll_tokenizer_free(t);
  cll_gguf_close(gg);
}
