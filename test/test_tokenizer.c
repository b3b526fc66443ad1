/* test_tokenizer.c — the tokenizers (include/cllama/tokenizer.h) against
 * llama.cpp's outputs: every vector of ../shared/testdata/tokenizer (plain,
 * extra, and with special-token text recognised), decode(encode(s)) == s,
 * the prompt token ids and greedy texts of ../shared/ref, a slice of the
 * war-and-peace corpus, segments with and without special tokens, and the
 * incremental detokenizer. */
#include "cllama/gguf.h"
#include "cllama/tokenizer.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *shared_dir(void) {
  const char *d = getenv("CLLAMA_SHARED");
  return d && *d ? d : "../shared";
}

static bool have_shared(void) {
  struct stat st;
  char p[1024];
  snprintf(p, sizeof(p), "%s/testdata/tokenizer", shared_dir());
  if (stat(p, &st) == 0)
    return true;
  fprintf(stderr, "SKIP: CLLAMA_SHARED not found (%s)\n", shared_dir());
  return false;
}

#define NEED_SHARED()                                                                              \
  do {                                                                                             \
    if (!have_shared())                                                                            \
      cr_skip("SKIP: CLLAMA_SHARED not found");                                                    \
  } while (0)

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  fclose(f);
  buf[got] = 0;
  *len = got;
  return buf;
}

struct vocab {
  cll_gguf *g;
  cll_tokenizer *t;
};

static struct vocab load(const char *path) {
  struct vocab v = {0};
  cll_err err = {0};
  int rc = cll_gguf_open(path, &v.g, &err);
  cr_assert_eq(rc, 0, "open %s: %s", path, err.msg);
  rc = cll_tokenizer_new(v.g, &v.t, &err);
  cr_assert_eq(rc, 0, "tokenizer %s: %s", path, err.msg);
  return v;
}

static void unload(struct vocab *v) {
  cll_tokenizer_free(v->t);
  cll_gguf_close(v->g);
}

static struct vocab load_vocab(const char *name) {
  char p[1024];
  snprintf(p, sizeof(p), "%s/testdata/tokenizer/%s", shared_dir(), name);
  return load(p);
}

/* Test strings of a .inp file: split on the 21-byte separator. */
struct strs {
  char *buf;
  const char *s[256];
  size_t len[256];
  size_t n;
};

static void read_inp(const char *name, struct strs *out) {
  char p[1400];
  if (name[0] == '/') /* an absolute path */
    snprintf(p, sizeof(p), "%s", name);
  else
    snprintf(p, sizeof(p), "%s/testdata/tokenizer/%s", shared_dir(), name);
  size_t len;
  out->buf = slurp(p, &len);
  cr_assert_not_null(out->buf, "read %s", p);
  static const char sep[] = "\n__ggml_vocab_test__\n";
  size_t sl = sizeof(sep) - 1, pos = 0;
  out->n = 0;
  while (pos < len) {
    const char *m = memmem(out->buf + pos, len - pos, sep, sl);
    cr_assert_not_null(m);
    cr_assert_lt(out->n, 256);
    out->s[out->n] = out->buf + pos;
    out->len[out->n] = (size_t)(m - (out->buf + pos));
    out->n++;
    pos = (size_t)(m - out->buf) + sl;
  }
}

static const char *const vocab_names[] = {
    "vocab-llama3.gguf",      "vocab-qwen2style.gguf",          "ggml-vocab-llama-spm.gguf",
    "ggml-vocab-gpt-2.gguf",  "ggml-vocab-deepseek-coder.gguf", "ggml-vocab-starcoder.gguf",
    "ggml-vocab-falcon.gguf",
};

/* Compares the ids of every string of inp with the lines of out; returns
 * the number of mismatches (printing the first few). */
static int check_file(struct vocab *v, const char *vname, const char *inp, const char *out,
                      unsigned flags) {
  struct strs in;
  read_inp(inp, &in);
  char p[1400];
  if (out[0] == '/') /* an absolute path */
    snprintf(p, sizeof(p), "%s", out);
  else
    snprintf(p, sizeof(p), "%s/testdata/tokenizer/%s", shared_dir(), out);
  size_t len;
  char *exp = slurp(p, &len);
  cr_assert_not_null(exp, "read %s", p);
  char *line = exp;
  int bad = 0;
  for (size_t i = 0; i < in.n; i++) {
    char *nl = strchr(line, '\n');
    cr_assert_not_null(nl, "%s: too few lines", out);
    *nl = 0;
    cll_tok_buf ids = {0};
    cr_assert_eq(cll_tokenize_append(v->t, in.s[i], in.len[i], flags, &ids), 0);
    size_t k = 0;
    bool ok = true;
    char *q = line;
    while (*q) {
      long id = strtol(q, &q, 10);
      if (k >= ids.n || ids.ids[k] != id)
        ok = false;
      k++;
      while (*q == ' ')
        q++;
    }
    if (k != ids.n)
      ok = false;
    if (!ok) {
      if (bad < 3) {
        fprintf(stderr, "%s %s #%zu: \"%.*s\"\n  want:%s\n  got: ", vname, out, i,
                (int)(in.len[i] > 60 ? 60 : in.len[i]), in.s[i], line);
        for (size_t j = 0; j < ids.n && j < 40; j++)
          fprintf(stderr, " %d", ids.ids[j]);
        fprintf(stderr, "\n");
      }
      bad++;
    }
    cll_tok_buf_free(&ids);
    line = nl + 1;
  }
  free(exp);
  free(in.buf);
  return bad;
}

Test(tokenizer, vectors_match_llama_cpp, .timeout = 120) {
  NEED_SHARED();
  int bad = 0;
  for (size_t i = 0; i < CLL_ARRAY_LEN(vocab_names); i++) {
    const char *n = vocab_names[i];
    char inp[256], out[256];
    struct vocab v = load_vocab(n);
    snprintf(inp, sizeof(inp), "%s.inp", n);
    snprintf(out, sizeof(out), "%s.out", n);
    int b1 = check_file(&v, n, inp, out, 0);
    snprintf(out, sizeof(out), "%s.extra.out", n);
    int b2 = check_file(&v, n, "extra.inp", out, 0);
    snprintf(out, sizeof(out), "%s.special.out", n);
    int b3 = check_file(&v, n, "extra.inp", out, CLL_TOK_PARSE_SPECIAL);
    cr_expect_eq(b1 + b2 + b3, 0, "%s: %d/%d/%d mismatches (inp/extra/special)", n, b1, b2, b3);
    bad += b1 + b2 + b3;
    unload(&v);
  }
  cr_assert_eq(bad, 0);
}

/* Whether the vocabulary can give s back: an SPM vocabulary writes ' ' as
 * U+2581, so a real U+2581 in s comes back as a space; a byte-level BPE
 * vocabulary needs a token for each byte (falcon's has none for 0x0B). */
static bool representable(const cll_tokenizer *t, const char *s, size_t n) {
  if (cll_tok_kind(t) == CLL_TOK_SPM)
    return memmem(s, n, "\xE2\x96\x81", 3) == NULL;
  for (size_t i = 0; i < n; i++) {
    int b = (unsigned char)s[i], cp = b, k = 0;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
      cp = 256;
      for (int x = 0; x < b; x++)
        cp += !((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || x >= 174);
    }
    char u[2];
    if (cp < 0x80) {
      u[k++] = (char)cp;
    } else {
      u[k++] = (char)(0xC0 | (cp >> 6));
      u[k++] = (char)(0x80 | (cp & 0x3F));
    }
    if (cll_tok_find(t, u, (size_t)k) < 0)
      return false;
  }
  return true;
}

/* decode(encode(s)) == s for every test string the vocabulary can
 * represent (all but two of the 7 x 121). */
Test(tokenizer, round_trip, .timeout = 120) {
  NEED_SHARED();
  const char *inps[2] = {NULL, "extra.inp"};
  int bad = 0, skipped = 0;
  for (size_t i = 0; i < CLL_ARRAY_LEN(vocab_names); i++) {
    char inp[256];
    snprintf(inp, sizeof(inp), "%s.inp", vocab_names[i]);
    inps[0] = inp;
    struct vocab v = load_vocab(vocab_names[i]);
    for (int f = 0; f < 2; f++) {
      struct strs in;
      read_inp(inps[f], &in);
      for (size_t k = 0; k < in.n; k++) {
        cll_tok_buf ids = {0};
        cr_assert_eq(cll_tokenize_append(v.t, in.s[k], in.len[k], 0, &ids), 0);
        size_t need = 0;
        cll_detokenize(v.t, ids.ids, ids.n, 0, NULL, 0, &need);
        char *out = malloc(need + 1);
        cr_assert_eq(cll_detokenize(v.t, ids.ids, ids.n, 0, out, need, &need), 0);
        bool same = need == in.len[k] && memcmp(out, in.s[k], need) == 0;
        if (!representable(v.t, in.s[k], in.len[k])) {
          skipped++;
        } else if (!same) {
          if (bad < 5)
            fprintf(stderr, "round trip %s %s #%zu: \"%.*s\" -> \"%.*s\"\n", vocab_names[i],
                    inps[f], k, (int)in.len[k], in.s[k], (int)need, out);
          bad++;
        }
        free(out);
        cll_tok_buf_free(&ids);
      }
      free(in.buf);
    }
    unload(&v);
  }
  cr_assert_eq(bad, 0, "%d strings do not round-trip", bad);
  cr_expect_leq(skipped, 2, "%d strings skipped as not representable", skipped);
}

/* ---- ../shared/ref: prompt ids (add_special, parse_special) and greedy text */

static void check_ref_json(const char *model, const char *json_path) {
  json_error_t jerr;
  json_t *j = json_load_file(json_path, 0, &jerr);
  cr_assert_not_null(j, "%s: %s", json_path, jerr.text);
  char p[1024];
  snprintf(p, sizeof(p), "%s/models/%s.gguf", shared_dir(), model);
  struct vocab v = load(p);

  const char *prompt = json_string_value(json_object_get(j, "prompt"));
  cr_assert_not_null(prompt);
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(v.t, prompt, strlen(prompt),
                                   CLL_TOK_ADD_SPECIAL | CLL_TOK_PARSE_SPECIAL, &ids),
               0);
  json_t *want = json_object_get(j, "prompt_tokens");
  cr_expect_eq(ids.n, json_array_size(want), "%s: %zu ids, want %zu", json_path, ids.n,
               json_array_size(want));
  for (size_t i = 0; i < ids.n && i < json_array_size(want); i++)
    cr_expect_eq(ids.ids[i], json_integer_value(json_array_get(want, i)), "%s: id %zu", json_path,
                 i);
  cr_expect_eq(cll_tok_add_bos(v.t), json_is_true(json_object_get(j, "add_bos")));
  cr_expect_eq(cll_tok_bos(v.t), json_integer_value(json_object_get(j, "bos_id")));
  cr_expect_eq(cll_tok_eos(v.t), json_integer_value(json_object_get(j, "eos_id")));

  /* prompt_pieces_hex: token_to_piece(special=true) */
  json_t *ph = json_object_get(j, "prompt_pieces_hex");
  for (size_t i = 0; i < ids.n && i < json_array_size(ph); i++) {
    size_t len;
    const char *piece = cll_tok_piece(v.t, ids.ids[i], true, &len);
    char hex[512] = {0};
    for (size_t k = 0; k < len && 2 * k + 2 < sizeof(hex); k++)
      sprintf(hex + 2 * k, "%02x", (unsigned char)piece[k]);
    cr_expect_str_eq(hex, json_string_value(json_array_get(ph, i)), "%s: piece %zu", json_path, i);
  }

  /* greedy_text_hex: concatenated token_to_piece(special=false), exact bytes;
   * the streaming detokenizer must give the same text when it is valid UTF-8. */
  json_t *gt = json_object_get(j, "greedy_tokens");
  const char *ghex = json_string_value(json_object_get(j, "greedy_text_hex"));
  char *cat = calloc(1, 65536), *stream = calloc(1, 65536 * 3);
  size_t cn = 0, sn = 0;
  cll_detok *d;
  cr_assert_eq(cll_detok_new(v.t, 0, &d), 0);
  for (size_t i = 0; i < json_array_size(gt); i++) {
    int32_t id = (int32_t)json_integer_value(json_array_get(gt, i));
    size_t len;
    const char *piece = cll_tok_piece(v.t, id, false, &len);
    memcpy(cat + cn, piece, len);
    cn += len;
    const char *txt = cll_detok_push(d, id, &len);
    memcpy(stream + sn, txt, len);
    sn += len;
  }
  size_t len;
  const char *tail = cll_detok_flush(d, &len);
  memcpy(stream + sn, tail, len);
  sn += len;
  cll_detok_free(d);
  char *hex = calloc(1, 2 * cn + 1);
  for (size_t k = 0; k < cn; k++)
    sprintf(hex + 2 * k, "%02x", (unsigned char)cat[k]);
  cr_expect_str_eq(hex, ghex, "%s: greedy text", json_path);
  const char *gtext = json_string_value(json_object_get(j, "greedy_text"));
  cr_expect(sn == strlen(gtext) && memcmp(stream, gtext, sn) == 0,
            "%s: streamed text \"%.*s\" != \"%s\"", json_path, (int)sn, stream, gtext);

  /* detokenized_prompt_plus_greedy: llama_detokenize(remove_special=false,
   * unparse_special=false) with the vocabulary's space clean-up. */
  size_t n_all = ids.n + json_array_size(gt);
  int32_t *all = malloc(n_all * sizeof(int32_t));
  memcpy(all, ids.ids, ids.n * sizeof(int32_t));
  for (size_t i = 0; i < json_array_size(gt); i++)
    all[ids.n + i] = (int32_t)json_integer_value(json_array_get(gt, i));
  size_t need;
  cll_detokenize(v.t, all, n_all, CLL_DETOK_CLEAN_SPACES, NULL, 0, &need);
  char *dt = malloc(need + 1);
  cll_detokenize(v.t, all, n_all, CLL_DETOK_CLEAN_SPACES, dt, need, &need);
  dt[need] = 0;
  const char *wdt = json_string_value(json_object_get(j, "detokenized_prompt_plus_greedy"));
  /* The JSON has U+FFFD where the bytes were not UTF-8: compare the valid ones. */
  if (strstr(wdt, "\xEF\xBF\xBD") == NULL)
    cr_expect_str_eq(dt, wdt, "%s: detokenized", json_path);
  free(dt);
  free(all);
  free(hex);
  free(cat);
  free(stream);
  cll_tok_buf_free(&ids);
  unload(&v);
  json_decref(j);
}

Test(tokenizer, ref_prompts_and_greedy_text, .timeout = 120) {
  NEED_SHARED();
  char dir[1024];
  snprintf(dir, sizeof(dir), "%s/ref", shared_dir());
  DIR *dp = opendir(dir);
  cr_assert_not_null(dp);
  struct dirent *de;
  int n = 0;
  while ((de = readdir(dp)) != NULL) {
    if (de->d_name[0] == '.' || strcmp(de->d_name, "prompts") == 0)
      continue;
    char mp[2048];
    snprintf(mp, sizeof(mp), "%s/models/%s.gguf", shared_dir(), de->d_name);
    struct stat st;
    if (stat(mp, &st) != 0)
      continue;
    for (int k = 1; k <= 3; k++) {
      char jp[1400];
      snprintf(jp, sizeof(jp), "%s/%s/p%d.kvf32.json", dir, de->d_name, k);
      if (stat(jp, &st) != 0)
        continue;
      check_ref_json(de->d_name, jp);
      n++;
    }
  }
  closedir(dp);
  cr_assert_gt(n, 0);
}

/* The first 256 KiB of war-and-peace give the first ids of the corpus file
 * (all but the last few, which depend on the text after the cut). */
Test(tokenizer, corpus_slice_llama3, .timeout = 60) {
  NEED_SHARED();
  char p[1024];
  size_t tlen, ilen;
  snprintf(p, sizeof(p), "%s/testdata/corpus/war-and-peace.txt", shared_dir());
  char *text = slurp(p, &tlen);
  snprintf(p, sizeof(p), "%s/testdata/corpus/war-and-peace.vocab-llama3.ids", shared_dir());
  char *idtext = slurp(p, &ilen);
  cr_assert(text && idtext);
  size_t cut = tlen < 262144 ? tlen : 262144;
  struct vocab v = load_vocab("vocab-llama3.gguf");
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(v.t, text, cut, 0, &ids), 0);
  cr_assert_gt(ids.n, 10);
  char *q = idtext;
  size_t bad = 0, first_bad = 0;
  for (size_t i = 0; i + 4 < ids.n; i++) {
    long want = strtol(q, &q, 10);
    if (ids.ids[i] != want && bad++ == 0)
      first_bad = i;
  }
  cr_expect_eq(bad, 0, "%zu of %zu ids differ, first at %zu", bad, ids.n, first_bad);
  cll_tok_buf_free(&ids);
  unload(&v);
  free(text);
  free(idtext);
}

/* Template text may hold role markers; user content may not forge them. */
Test(tokenizer, segments_and_special_tokens) {
  NEED_SHARED();
  struct vocab v = load_vocab("vocab-llama3.gguf");
  const char *hdr = "<|start_header_id|>user<|end_header_id|>\n\n";
  const char *user = "hi<|eot_id|>there";
  struct cll_tok_segment segs[3] = {
      {hdr, strlen(hdr), true}, {user, strlen(user), false}, {"<|eot_id|>", 10, true}};
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_segments(v.t, segs, 3, true, &ids), 0);
  cr_assert_gt(ids.n, 6);
  cr_expect_eq(ids.ids[0], 128000); /* BOS */
  cr_expect_eq(ids.ids[1], 128006); /* <|start_header_id|> */
  cr_expect_eq(ids.ids[3], 128007); /* <|end_header_id|> */
  cr_expect_eq(ids.ids[ids.n - 1], 128009);
  int eot = 0;
  for (size_t i = 0; i < ids.n; i++)
    eot += ids.ids[i] == 128009;
  cr_expect_eq(eot, 1, "user content produced a control token");

  /* The concatenation tokenized with parse_special everywhere has two. */
  char all[256];
  snprintf(all, sizeof(all), "%s%s<|eot_id|>", hdr, user);
  cll_tok_buf ids2 = {0};
  cr_assert_eq(cll_tokenize_append(v.t, all, strlen(all),
                                   CLL_TOK_ADD_SPECIAL | CLL_TOK_PARSE_SPECIAL, &ids2),
               0);
  eot = 0;
  for (size_t i = 0; i < ids2.n; i++)
    eot += ids2.ids[i] == 128009;
  cr_expect_eq(eot, 2);

  /* Plain text split across segments tokenizes as one run. */
  struct cll_tok_segment parts[2] = {{"Hello wor", 9, true}, {"ld", 2, false}};
  cll_tok_buf a = {0}, b = {0};
  cr_assert_eq(cll_tokenize_segments(v.t, parts, 2, false, &a), 0);
  cr_assert_eq(cll_tokenize_append(v.t, "Hello world", 11, 0, &b), 0);
  cr_assert_eq(a.n, b.n);
  cr_expect_eq(memcmp(a.ids, b.ids, a.n * sizeof(int32_t)), 0);

  cr_expect(cll_tok_is_eog(v.t, 128009));
  cr_expect(cll_tok_is_eog(v.t, 128001));
  cr_expect(!cll_tok_is_eog(v.t, 1000));
  cr_expect(cll_tok_is_control(v.t, 128006));
  size_t len;
  cll_tok_piece(v.t, 128006, false, &len);
  cr_expect_eq(len, 0);
  const char *pc = cll_tok_piece(v.t, 128006, true, &len);
  cr_expect(len == 19 && memcmp(pc, "<|start_header_id|>", 19) == 0);
  cr_expect_eq(cll_tok_find(v.t, "<|eot_id|>", 10), 128009);

  /* fixed-size variant */
  int32_t small[2];
  size_t n_out;
  cr_expect_eq(cll_tokenize(v.t, "Hello world again", 17, 0, small, 2, &n_out), CLL_ERANGE);
  cr_expect_eq(n_out, 3);
  cll_tok_buf_free(&a);
  cll_tok_buf_free(&b);
  cll_tok_buf_free(&ids);
  cll_tok_buf_free(&ids2);
  unload(&v);
}

/* The streaming detokenizer never splits a UTF-8 character: SPM byte tokens
 * of an emoji come out as one piece, only when the last byte arrives. */
Test(tokenizer, incremental_detok_utf8) {
  NEED_SHARED();
  struct vocab v = load_vocab("ggml-vocab-llama-spm.gguf");
  const char *text = "Hi \xF0\x9F\x99\x82 caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD!";
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(v.t, text, strlen(text), CLL_TOK_ADD_SPECIAL, &ids), 0);
  cll_detok *d;
  cr_assert_eq(cll_detok_new(v.t, 0, &d), 0);
  char out[256];
  size_t o = 0;
  for (size_t i = 0; i < ids.n; i++) {
    size_t len;
    const char *p = cll_detok_push(d, ids.ids[i], &len);
    /* each chunk is whole characters */
    for (size_t k = 0; k < len;) {
      unsigned char c = (unsigned char)p[k];
      size_t l = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
      cr_assert_leq(k + l, len, "chunk ends inside a character");
      k += l;
    }
    memcpy(out + o, p, len);
    o += len;
  }
  size_t len;
  cll_detok_flush(d, &len);
  cr_expect_eq(len, 0);
  out[o] = 0;
  /* streaming keeps the SPM leading space; BOS prints nothing */
  cr_expect_eq(out[0], ' ');
  cr_expect_str_eq(out + 1, text);

  /* A lone continuation byte and a truncated sequence become U+FFFD. */
  int32_t b80 = cll_tok_find(v.t, "<0x80>", 6), bE4 = cll_tok_find(v.t, "<0xE4>", 6);
  cr_assert(b80 >= 0 && bE4 >= 0);
  cll_detok_reset(d);
  const char *p = cll_detok_push(d, b80, &len);
  cr_expect(len == 3 && memcmp(p, "\xEF\xBF\xBD", 3) == 0);
  p = cll_detok_push(d, bE4, &len);
  cr_expect_eq(len, 0);
  p = cll_detok_flush(d, &len);
  cr_expect(len == 3 && memcmp(p, "\xEF\xBF\xBD", 3) == 0);
  cll_detok_free(d);
  cll_tok_buf_free(&ids);
  unload(&v);
}

/* SPM: BOS, the space prefix, byte fallback, and detokenize dropping the
 * first leading space (as llama_detokenize does). */
Test(tokenizer, spm_basics) {
  NEED_SHARED();
  struct vocab v = load_vocab("ggml-vocab-llama-spm.gguf");
  cr_expect_eq(cll_tok_kind(v.t), CLL_TOK_SPM);
  cr_expect_eq(cll_tok_bos(v.t), 1);
  cr_expect_eq(cll_tok_eos(v.t), 2);
  cr_expect_eq(cll_tok_unk(v.t), 0);
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(v.t, "", 0, CLL_TOK_ADD_SPECIAL, &ids), 0);
  cr_expect(ids.n == 1 && ids.ids[0] == 1);
  ids.n = 0;
  cr_assert_eq(cll_tokenize_append(v.t, "<s>Hello", 8, CLL_TOK_PARSE_SPECIAL, &ids), 0);
  cr_expect(ids.n >= 2 && ids.ids[0] == 1);
  char out[64];
  size_t n;
  cr_assert_eq(cll_detokenize(v.t, ids.ids, ids.n, CLL_DETOK_UNPARSE_SPECIAL, out, sizeof(out), &n),
               0);
  out[n] = 0;
  cr_expect_str_eq(out, "<s> Hello");
  cll_tok_buf_free(&ids);
  unload(&v);
}

Test(tokenizer, rejects_bad_metadata) {
  /* A GGUF with no tokenizer keys fails cleanly. */
  char path[] = "/tmp/cllama-tok-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  cll_err err = {0};
  cll_gguf_writer *w;
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cr_assert_eq(cll_gguf_writer_set_str(w, "general.architecture", "llama"), 0);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
  cll_gguf *g;
  cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s", err.msg);
  cll_tokenizer *t = (cll_tokenizer *)1;
  cr_expect_eq(cll_tokenizer_new(g, &t, &err), CLL_EFORMAT);
  cr_expect_null(t);
  cr_expect(strstr(err.msg, "tokenizer.ggml.model") != NULL);
  cll_gguf_close(g);

  /* An unknown pre-tokenizer is refused, not guessed. */
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cll_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
  cll_gguf_writer_set_str(w, "tokenizer.ggml.pre", "no-such-pre");
  const char *toks[] = {"a", "b", "ab"};
  const char *merges[] = {"a b"};
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
  cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s", err.msg);
  cr_expect_eq(cll_tokenizer_new(g, &t, &err), CLL_EUNSUPPORTED);
  cll_gguf_close(g);

  /* A tiny hand-made BPE vocabulary: merges by rank, unknown bytes dropped. */
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cll_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
  cll_gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt-2");
  const char *toks2[] = {"a", "b", "c", "ab", "abc", "bc"};
  const char *merges2[] = {"b c", "a b", "ab c"};
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks2, 6);
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges2, 3);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
  cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s", err.msg);
  cr_assert_eq(cll_tokenizer_new(g, &t, &err), 0, "%s", err.msg);
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(t, "abc", 3, 0, &ids), 0);
  /* "b c" has the best rank: a + bc, and "a bc" is no merge */
  cr_expect(ids.n == 2 && ids.ids[0] == 0 && ids.ids[1] == 5);
  cll_tok_buf_free(&ids);
  cll_tokenizer_free(t);
  cll_gguf_close(g);
  unlink(path);
}

/* Builds a tiny SPM vocabulary file named name (for behaviours no shared
 * vocabulary shows). Tokens: <unk> <s> </s> <|end|> ▁ a ▁a. */
static void write_tiny_spm(const char *path, const char *name) {
  cll_err err = {0};
  cll_gguf_writer *w;
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cll_gguf_writer_set_str(w, "general.name", name);
  cll_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
  const char *toks[] = {"<unk>",        "<s>", "</s>",         "<|end|>",
                        "\xE2\x96\x81", "a",   "\342\226\201a"}; /* "▁a" */
  int32_t types[] = {2, 3, 3, 3, 1, 1, 1};
  float scores[] = {0, 0, 0, 0, -1, -2, -0.5f};
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 7);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", CLL_GGUF_I32, types, 7);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.scores", CLL_GGUF_F32, scores, 7);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
}

/* phi-3 models strip the white space after special tokens (llama.cpp sets
 * this by model name); other models keep it. */
Test(tokenizer, phi3_rstrip) {
  char path[] = "/tmp/cllama-tok-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  const char *names[2] = {"Phi-3 Mini", "tiny"};
  for (int k = 0; k < 2; k++) {
    write_tiny_spm(path, names[k]);
    struct vocab v = load(path);
    cll_tok_buf ids = {0};
    cr_assert_eq(cll_tokenize_append(v.t, "<|end|>  a", 10, CLL_TOK_PARSE_SPECIAL, &ids), 0);
    if (k == 0)
      cr_expect(ids.n == 2 && ids.ids[0] == 3 && ids.ids[1] == 6, "phi-3: %zu ids", ids.n);
    else
      cr_expect(ids.n == 4 && ids.ids[0] == 3 && ids.ids[1] == 4 && ids.ids[2] == 4 &&
                    ids.ids[3] == 6,
                "plain: %zu ids", ids.n);
    cll_tok_buf_free(&ids);
    unload(&v);
  }
  unlink(path);
}

/* Every pre-tokenizer we know compiles and splits text (the shared vectors
 * cover only some of them). */
Test(tokenizer, every_pre_tokenizer_compiles) {
  static const char *const pres[] = {"default",     "llama-bpe",      "dbrx",      "deepseek-llm",
                                     "deepseek-v3", "deepseek-coder", "falcon",    "starcoder",
                                     "gpt-2",       "qwen2",          "poro-chat", "chatglm-bpe",
                                     "viking",      "tekken",         "chameleon", "gpt-4o",
                                     "superbpe",    "bailingmoe",     "seed-coder"};
  char path[] = "/tmp/cllama-tok-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  /* A vocabulary of the printable ASCII characters (GPT-2 maps ' ' to U+0120). */
  char chars[95][3];
  const char *toks[95];
  for (int i = 0; i < 95; i++) {
    int c = 32 + i;
    if (c == ' ') {
      chars[i][0] = (char)0xC4, chars[i][1] = (char)0xA0, chars[i][2] = 0;
    } else {
      chars[i][0] = (char)c, chars[i][1] = 0;
    }
    toks[i] = chars[i];
  }
  const char *merges[] = {"H e"};
  const char *text = "Hello World's 12345 x+y=z   \n\n  <sentinel:1> caf\xC3\xA9 \xE4\xBD\xA0";
  for (size_t k = 0; k < CLL_ARRAY_LEN(pres); k++) {
    cll_err err = {0};
    cll_gguf_writer *w;
    cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
    cll_gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    cll_gguf_writer_set_str(w, "tokenizer.ggml.pre", pres[k]);
    cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 95);
    cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.merges", merges, 1);
    cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
    cll_gguf *g;
    cll_tokenizer *t;
    cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s", err.msg);
    cr_assert_eq(cll_tokenizer_new(g, &t, &err), 0, "%s: %s", pres[k], err.msg);
    cr_expect_str_eq(cll_tok_pre(t), pres[k]);
    cll_tok_buf ids = {0};
    cr_expect_eq(cll_tokenize_append(t, text, strlen(text), 0, &ids), 0, "%s", pres[k]);
    cr_expect_gt(ids.n, 20, "%s: %zu ids", pres[k], ids.n);
    cll_tok_buf_free(&ids);
    cll_tokenizer_free(t);
    cll_gguf_close(g);
  }
  unlink(path);
}

/* llama_detokenize's clean-up of spaces (GPT-2 vocabulary: clean_spaces on). */
Test(tokenizer, detokenize_clean_spaces) {
  NEED_SHARED();
  struct vocab v = load_vocab("ggml-vocab-gpt-2.gguf");
  const char *text = "Hello , world ! It 's a ' test ' .";
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(v.t, text, strlen(text), 0, &ids), 0);
  char out[128];
  size_t n;
  cr_assert_eq(cll_detokenize(v.t, ids.ids, ids.n, 0, out, sizeof(out), &n), 0);
  out[n] = 0;
  cr_expect_str_eq(out, text);
  cr_assert_eq(cll_detokenize(v.t, ids.ids, ids.n, CLL_DETOK_CLEAN_SPACES, out, sizeof(out), &n),
               0);
  out[n] = 0;
  cr_expect_str_eq(out, "Hello, world! It's a'test '."); /* " ' .": the '.' went first */
  /* too small a buffer: CLL_ERANGE and the size needed */
  cr_expect_eq(cll_detokenize(v.t, ids.ids, ids.n, 0, out, 4, &n), CLL_ERANGE);
  cr_expect_eq(n, strlen(text));
  cll_tok_buf_free(&ids);
  unload(&v);
}

/* A SentencePiece vocabulary with a token that spans a word boundary
 * ("a▁") must be merged over the whole text, not word by word. */
Test(tokenizer, spm_token_across_words) {
  char path[] = "/tmp/cllama-tok-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  cll_err err = {0};
  cll_gguf_writer *w;
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cll_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
  const char *toks[] = {"<unk>", "<s>",           "</s>",         "\342\226\201",
                        "a",     "\342\226\201a", "a\342\226\201"};
  int32_t types[] = {2, 3, 3, 1, 1, 1, 1};
  float scores[] = {0, 0, 0, -1, -2, -0.5f, 0};
  cll_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", toks, 7);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.token_type", CLL_GGUF_I32, types, 7);
  cll_gguf_writer_set_arr(w, "tokenizer.ggml.scores", CLL_GGUF_F32, scores, 7);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
  struct vocab v = load(path);
  cll_tok_buf ids = {0};
  cr_assert_eq(cll_tokenize_append(v.t, "a a", 3, 0, &ids), 0);
  /* "▁a▁a": the best pair is "a▁" (score 0) -> ▁ a▁ a */
  cr_expect(ids.n == 3 && ids.ids[0] == 3 && ids.ids[1] == 6 && ids.ids[2] == 4, "%zu ids", ids.n);
  cll_tok_buf_free(&ids);
  unload(&v);
  unlink(path);
}

/* ---- llama.cpp's own vocab-only files and vectors (models/ggml-vocab-*),
 * for vocabularies the shared set lacks: WordPiece (bert-bge) and a few
 * more BPE/SPM ones. Read from $LLAMA_CPP_DIR/models (default
 * /work/ext/llama.cpp), never copied into the repository. */
static bool llama_models_dir(char *out, size_t cap) {
  const char *d = getenv("LLAMA_CPP_DIR");
  snprintf(out, cap, "%s/models", d && *d ? d : "/work/ext/llama.cpp");
  char p[1200];
  snprintf(p, sizeof(p), "%s/ggml-vocab-bert-bge.gguf", out);
  return access(p, R_OK) == 0;
}

Test(tokenizer, llama_cpp_vocab_vectors, .timeout = 120) {
  char dir[1024];
  if (!llama_models_dir(dir, sizeof(dir)))
    cr_skip("SKIP: llama.cpp's models/ggml-vocab-bert-bge.gguf not found (set LLAMA_CPP_DIR)");
  static const char *const names[] = {"bert-bge", "phi-3", "refact", "mpt"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(names); i++) {
    char g[1100], inp[1200], out[1200];
    snprintf(g, sizeof(g), "%.1000s/ggml-vocab-%s.gguf", dir, names[i]);
    snprintf(inp, sizeof(inp), "%s.inp", g);
    snprintf(out, sizeof(out), "%s.out", g);
    struct vocab v = load(g);
    if (strcmp(names[i], "bert-bge") == 0)
      cr_expect_eq(cll_tok_kind(v.t), CLL_TOK_WPM);
    int bad = check_file(&v, names[i], inp, out, 0);
    cr_expect_eq(bad, 0, "%s: %d mismatches", names[i], bad);
    unload(&v);
  }
}

/* WordPiece: [CLS] ... [SEP] with add_special; lower-casing and accent
 * stripping (the bge vocabulary says both); an unknown word is one [UNK]. */
Test(tokenizer, wordpiece_specials_and_normalizer) {
  char dir[1024];
  if (!llama_models_dir(dir, sizeof(dir)))
    cr_skip("SKIP: llama.cpp's models/ggml-vocab-bert-bge.gguf not found (set LLAMA_CPP_DIR)");
  char g[1200];
  snprintf(g, sizeof(g), "%s/ggml-vocab-bert-bge.gguf", dir);
  struct vocab v = load(g);
  cll_tok_buf a = {0}, b = {0};
  cr_assert_eq(cll_tokenize_append(v.t, "Héllo WORLD", 11 + 1, CLL_TOK_ADD_SPECIAL, &a), 0);
  cr_assert_eq(cll_tokenize_append(v.t, "hello world", 11, CLL_TOK_ADD_SPECIAL, &b), 0);
  cr_assert_eq(a.n, b.n);
  cr_assert_eq(memcmp(a.ids, b.ids, a.n * sizeof(int32_t)), 0);
  cr_assert_eq(a.ids[0], cll_tok_bos(v.t));       /* [CLS] */
  cr_assert_eq(a.ids[a.n - 1], cll_tok_sep(v.t)); /* [SEP] */
  cll_tok_buf u = {0};
  cr_assert_eq(cll_tokenize_append(v.t, "\xF0\x9F\x98\x80", 4, 0, &u), 0); /* an emoji */
  cr_assert_eq(u.n, 1);
  cr_assert_eq(u.ids[0], cll_tok_unk(v.t));
  cll_tok_buf_free(&a);
  cll_tok_buf_free(&b);
  cll_tok_buf_free(&u);
  unload(&v);
}
