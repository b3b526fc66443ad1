/* test_gguf.c — the GGUF reader and writer (include/cllama/gguf.h): a
 * hand-built file with every value type (nested arrays, v2 and v3), a
 * writer round trip, the shared test models, and a corpus of corrupt files
 * (truncated at every byte, huge counts, bad offsets, wrong types) that must
 * fail with a clean error. */
#include "cllama/gguf.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- a tiny byte builder for hand-made files */
struct bb {
  uint8_t b[4096];
  size_t n;
};
static void b_raw(struct bb *b, const void *p, size_t n) {
  cr_assert(b->n + n <= sizeof(b->b));
  memcpy(b->b + b->n, p, n);
  b->n += n;
}
static void b_u8(struct bb *b, uint8_t v) {
  b_raw(b, &v, 1);
}
static void b_u32(struct bb *b, uint32_t v) {
  b_raw(b, &v, 4);
}
static void b_u64(struct bb *b, uint64_t v) {
  b_raw(b, &v, 8);
}
static void b_str(struct bb *b, const char *s) {
  b_u64(b, strlen(s));
  b_raw(b, s, strlen(s));
}
static void b_key(struct bb *b, const char *k, uint32_t t) {
  b_str(b, k);
  b_u32(b, t);
}

/* Offsets of interesting fields in the file built by build_sample(). */
struct sample_offs {
  size_t n_tensors, n_kv, arr_count, t0_type, t0_offset, t0_ne0, nested_count;
};

/* A v2/v3 file: every scalar type, a string, a string array, a nested
 * array, and two F32 tensors (2x3 and 4). */
static void build_sample(struct bb *b, uint32_t version, struct sample_offs *o) {
  b->n = 0;
  b_raw(b, "GGUF", 4);
  b_u32(b, version);
  o->n_tensors = b->n;
  b_u64(b, 2);
  o->n_kv = b->n;
  b_u64(b, 15);
  b_key(b, "u8", CLL_GGUF_U8), b_u8(b, 200);
  b_key(b, "i8", CLL_GGUF_I8), b_u8(b, 0xff);
  b_key(b, "u16", CLL_GGUF_U16), b_u8(b, 0x34), b_u8(b, 0x12);
  b_key(b, "i16", CLL_GGUF_I16), b_u8(b, 0xfe), b_u8(b, 0xff);
  b_key(b, "u32", CLL_GGUF_U32), b_u32(b, 4000000000u);
  b_key(b, "i32", CLL_GGUF_I32), b_u32(b, (uint32_t)-7);
  float f = 1.5f;
  b_key(b, "f32", CLL_GGUF_F32), b_raw(b, &f, 4);
  b_key(b, "bool", CLL_GGUF_BOOL), b_u8(b, 1);
  b_key(b, "str", CLL_GGUF_STRING), b_str(b, "h\"i\n");
  b_key(b, "u64", CLL_GGUF_U64), b_u64(b, 1ull << 40);
  b_key(b, "i64", CLL_GGUF_I64), b_u64(b, (uint64_t)-5);
  double d = -2.25;
  b_key(b, "f64", CLL_GGUF_F64), b_raw(b, &d, 8);
  b_key(b, "tokens", CLL_GGUF_ARRAY), b_u32(b, CLL_GGUF_STRING);
  o->arr_count = b->n;
  b_u64(b, 3), b_str(b, "a"), b_str(b, ""), b_str(b, "ccc");
  b_key(b, "nested", CLL_GGUF_ARRAY), b_u32(b, CLL_GGUF_ARRAY);
  o->nested_count = b->n;
  b_u64(b, 2);
  b_u32(b, CLL_GGUF_I32), b_u64(b, 2), b_u32(b, 1), b_u32(b, 2);
  b_u32(b, CLL_GGUF_STRING), b_u64(b, 1), b_str(b, "x");
  b_key(b, "general.alignment", CLL_GGUF_U32), b_u32(b, 32);
  /* tensors */
  b_str(b, "w");
  b_u32(b, 2);
  o->t0_ne0 = b->n;
  b_u64(b, 3), b_u64(b, 2);
  o->t0_type = b->n;
  b_u32(b, 0);
  o->t0_offset = b->n;
  b_u64(b, 0);
  b_str(b, "v"), b_u32(b, 1), b_u64(b, 4), b_u32(b, 0), b_u64(b, 32);
  while (b->n % 32)
    b_u8(b, 0);
  for (int i = 0; i < 6; i++) {
    float v = (float)i;
    b_raw(b, &v, 4);
  }
  for (int i = 0; i < 2; i++)
    b_u32(b, 0); /* pad to 32 */
  for (int i = 0; i < 4; i++) {
    float v = 10.0f + (float)i;
    b_raw(b, &v, 4);
  }
}

static void check_sample(const cll_gguf *g, uint32_t version) {
  cr_assert_eq(cll_gguf_version(g), version);
  cr_assert_eq(cll_gguf_n_kv(g), 15);
  uint32_t u32;
  uint64_t u64;
  int64_t i64;
  float f;
  bool bo;
  cll_gguf_str s;
  cr_expect_eq(cll_gguf_get_u32(g, "u8", &u32), 0);
  cr_expect_eq(u32, 200);
  cr_expect_eq(cll_gguf_get_i64(g, "i8", &i64), 0);
  cr_expect_eq(i64, -1);
  cr_expect_eq(cll_gguf_get_u32(g, "i8", &u32), CLL_EINVAL, "negative does not fit u32");
  cr_expect_eq(cll_gguf_get_u32(g, "u16", &u32), 0);
  cr_expect_eq(u32, 0x1234);
  cr_expect_eq(cll_gguf_get_i64(g, "i16", &i64), 0);
  cr_expect_eq(i64, -2);
  cr_expect_eq(cll_gguf_get_u32(g, "u32", &u32), 0);
  cr_expect_eq(u32, 4000000000u);
  cr_expect_eq(cll_gguf_get_i64(g, "i32", &i64), 0);
  cr_expect_eq(i64, -7);
  cr_expect_eq(cll_gguf_get_f32(g, "f32", &f), 0);
  cr_expect_eq(f, 1.5f);
  cr_expect_eq(cll_gguf_get_f32(g, "f64", &f), 0);
  cr_expect_eq(f, -2.25f);
  cr_expect_eq(cll_gguf_get_bool(g, "bool", &bo), 0);
  cr_expect(bo);
  cr_expect_eq(cll_gguf_get_u64(g, "u64", &u64), 0);
  cr_expect_eq(u64, 1ull << 40);
  cr_expect_eq(cll_gguf_get_u32(g, "u64", &u32), CLL_EINVAL, "too big for u32");
  cr_expect_eq(cll_gguf_get_i64(g, "i64", &i64), 0);
  cr_expect_eq(i64, -5);
  cr_expect_eq(cll_gguf_get_str(g, "str", &s), 0);
  cr_expect(s.len == 4 && memcmp(s.ptr, "h\"i\n", 4) == 0);
  cr_expect_eq(cll_gguf_get_str(g, "u8", &s), CLL_EINVAL);
  cr_expect_eq(cll_gguf_get_str(g, "missing", &s), CLL_ENOENT);
  enum cll_gguf_vtype et;
  cr_expect_eq(cll_gguf_get_arr(g, "tokens", &et, &u64), 0);
  cr_expect(et == CLL_GGUF_STRING && u64 == 3);
  cr_expect_eq(cll_gguf_get_arr_str(g, "tokens", 2, &s), 0);
  cr_expect(s.len == 3 && memcmp(s.ptr, "ccc", 3) == 0);
  cr_expect_eq(cll_gguf_get_arr_str(g, "tokens", 1, &s), 0);
  cr_expect_eq(s.len, 0);
  cr_expect_eq(cll_gguf_get_arr_str(g, "tokens", 3, &s), CLL_ERANGE);
  cr_expect_eq(cll_gguf_get_arr(g, "nested", &et, &u64), 0);
  cr_expect(et == CLL_GGUF_ARRAY && u64 == 2);
  char buf[256];
  int n = cll_gguf_kv_to_json(g, cll_gguf_find_key(g, "nested"), buf, sizeof(buf), 10);
  cr_expect_gt(n, 0);
  cr_expect_str_eq(buf, "[[1,2],[\"x\"]]");
  n = cll_gguf_kv_to_json(g, cll_gguf_find_key(g, "str"), buf, sizeof(buf), 10);
  cr_expect_str_eq(buf, "\"h\\\"i\\n\"");
  n = cll_gguf_kv_to_json(g, cll_gguf_find_key(g, "tokens"), buf, sizeof(buf), 2);
  cr_expect_str_eq(buf, "[\"a\",\"\",\"...\"]");
  cr_expect_eq(cll_gguf_kv_to_json(g, cll_gguf_find_key(g, "tokens"), buf, 4, 10), CLL_ETOOBIG);
  cr_assert_eq(cll_gguf_n_tensors(g), 2);
  const cll_gguf_tensor *t = cll_gguf_find_tensor(g, "w");
  cr_assert_not_null(t);
  cr_expect(t->ne[0] == 3 && t->ne[1] == 2 && t->n_dims == 2 && t->n_bytes == 24);
  cr_expect_eq(((const float *)t->data)[5], 5.0f);
  t = cll_gguf_find_tensor(g, "v");
  cr_assert_not_null(t);
  cr_expect_eq(((const float *)t->data)[3], 13.0f);
  cr_expect_null(cll_gguf_find_tensor(g, "nope"));
}

Test(gguf, every_value_type_v3_and_v2) {
  for (uint32_t v = 2; v <= 3; v++) {
    struct bb b;
    struct sample_offs o;
    build_sample(&b, v, &o);
    cll_gguf *g;
    cll_err err = {0};
    int rc = cll_gguf_open_memory(b.b, b.n, &g, &err);
    cr_assert_eq(rc, 0, "%s", err.msg);
    check_sample(g, v);
    cll_gguf_close(g);
  }
  cll_gguf_close(NULL);
}

/* Opens a corrupted copy and requires a clean error with a message. */
static void expect_bad(const uint8_t *buf, size_t n, const char *want_in_msg) {
  cll_gguf *g = NULL;
  cll_err err = {0};
  int rc = cll_gguf_open_memory(buf, n, &g, &err);
  cr_expect_lt(rc, 0, "corrupt file accepted (expected \"%s\")", want_in_msg);
  cr_expect_null(g);
  cr_expect_neq(err.msg[0], '\0');
  if (want_in_msg != NULL)
    cr_expect(strstr(err.msg, want_in_msg) != NULL, "message \"%s\" lacks \"%s\"", err.msg,
              want_in_msg);
  if (rc == 0)
    cll_gguf_close(g);
}

Test(gguf, truncated_at_every_byte) {
  struct bb b;
  struct sample_offs o;
  build_sample(&b, 3, &o);
  for (size_t n = 0; n < b.n; n++) {
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any over-read */
    memcpy(copy, b.b, n);
    expect_bad(copy, n, NULL);
    free(copy);
  }
}

static void patch_u64(struct bb *b, size_t off, uint64_t v) {
  memcpy(b->b + off, &v, 8);
}
static void patch_u32(struct bb *b, size_t off, uint32_t v) {
  memcpy(b->b + off, &v, 4);
}

Test(gguf, corrupt_corpus) {
  struct bb b;
  struct sample_offs o;
  const struct {
    const char *name;
    int field; /* 0 u64 at off, 1 u32 at off */
    size_t *off;
    uint64_t value;
    const char *msg;
  } cases[] = {
      {"huge tensor count", 0, &o.n_tensors, UINT64_MAX, "tensors cannot fit"},
      {"huge kv count", 0, &o.n_kv, 1ull << 62, "metadata pairs cannot fit"},
      {"more kvs than present", 0, &o.n_kv, 16, NULL},
      {"huge array count", 0, &o.arr_count, UINT64_MAX / 2, "does not fit"},
      {"huge nested count", 0, &o.nested_count, 1ull << 40, "does not fit"},
      {"bad tensor offset", 0, &o.t0_offset, 1ull << 40, "runs past the end"},
      {"misaligned offset", 0, &o.t0_offset, 4, "alignment"},
      {"tensor offset overflow", 0, &o.t0_offset, UINT64_MAX - 31, "runs past the end"},
      {"unknown tensor type", 1, &o.t0_type, 99, "unknown tensor type"},
      {"Q4_0 row of 3", 1, &o.t0_type, 2, "block size"},
      {"zero dim", 0, &o.t0_ne0, 0, "dimension"},
      {"huge dim", 0, &o.t0_ne0, 1ull << 62, NULL},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(cases); i++) {
    build_sample(&b, 3, &o);
    if (cases[i].field == 0)
      patch_u64(&b, *cases[i].off, cases[i].value);
    else
      patch_u32(&b, *cases[i].off, (uint32_t)cases[i].value);
    expect_bad(b.b, b.n, cases[i].msg);
  }
  /* Header-level damage. */
  build_sample(&b, 3, &o);
  b.b[0] = 'X';
  expect_bad(b.b, b.n, "bad magic");
  build_sample(&b, 1, &o);
  expect_bad(b.b, b.n, "version 1");
  build_sample(&b, 0x03000000u, &o);
  expect_bad(b.b, b.n, "big-endian");
  /* A value type that does not exist: the type of the first key ("u8"). */
  build_sample(&b, 3, &o);
  patch_u32(&b, 24 + 8 + 2, 13);
  expect_bad(b.b, b.n, "unknown value type");
  /* A bool that is 2. */
  build_sample(&b, 3, &o);
  for (size_t k = 0; k + 4 < b.n; k++)
    if (memcmp(b.b + k, "bool", 4) == 0) {
      b.b[k + 8] = 2;
      break;
    }
  expect_bad(b.b, b.n, "bool");
  /* Duplicate key: rename "i8" to "u8". */
  build_sample(&b, 3, &o);
  for (size_t k = 0; k + 2 < b.n; k++)
    if (memcmp(b.b + k, "i8", 2) == 0) {
      b.b[k] = 'u';
      break;
    }
  expect_bad(b.b, b.n, "duplicate metadata key");
  /* Alignment that is not a power of two. */
  build_sample(&b, 3, &o);
  for (size_t k = 0; k + 17 < b.n; k++)
    if (memcmp(b.b + k, "general.alignment", 17) == 0) {
      patch_u32(&b, k + 17 + 4, 24);
      break;
    }
  expect_bad(b.b, b.n, "power of two");
}

static const char *tmp_path(char *buf, size_t cap, const char *stem) {
  snprintf(buf, cap, "/tmp/cllama-test-gguf-%d-%s.gguf", (int)getpid(), stem);
  return buf;
}

Test(gguf, writer_round_trip) {
  char path[256];
  tmp_path(path, sizeof(path), "rt");
  cll_gguf_writer *w;
  cll_err err = {0};
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  cll_gguf_writer_set_str(w, "general.architecture", "llama");
  cll_gguf_writer_set_u32(w, "a.u32", 7);
  cll_gguf_writer_set_i32(w, "a.i32", -3);
  cll_gguf_writer_set_u64(w, "a.u64", 1ull << 50);
  cll_gguf_writer_set_f32(w, "a.f32", 0.25f);
  cll_gguf_writer_set_bool(w, "a.bool", true);
  cll_gguf_writer_set_u32(w, "general.alignment", 64);
  const char *toks[] = {"<s>", "</s>", "hello"};
  cll_gguf_writer_set_arr_str(w, "tok", toks, 3);
  float scores[3] = {0, -1, -2.5f};
  cll_gguf_writer_set_arr(w, "scores", CLL_GGUF_F32, scores, 3);
  float a[6] = {1, 2, 3, 4, 5, 6};
  uint16_t h[64];
  for (int i = 0; i < 64; i++)
    h[i] = (uint16_t)i;
  uint64_t ne_a[2] = {3, 2}, ne_h[1] = {64};
  cr_assert_eq(cll_gguf_writer_add_tensor(w, "a", 0, 2, ne_a, a, sizeof(a)), 0);
  cr_assert_eq(cll_gguf_writer_add_tensor(w, "h", 1, 1, ne_h, h, sizeof(h)), 0);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);

  cll_gguf *g;
  cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s", err.msg);
  cr_expect_eq(cll_gguf_alignment(g), 64);
  uint32_t u;
  int64_t i;
  float f;
  cr_expect(cll_gguf_get_u32(g, "a.u32", &u) == 0 && u == 7);
  cr_expect(cll_gguf_get_i64(g, "a.i32", &i) == 0 && i == -3);
  cr_expect(cll_gguf_get_f32(g, "a.f32", &f) == 0 && f == 0.25f);
  cll_gguf_str s;
  cr_expect(cll_gguf_get_arr_str(g, "tok", 2, &s) == 0 && s.len == 5);
  const void *data;
  uint64_t n;
  enum cll_gguf_vtype et;
  cr_expect_eq(cll_gguf_get_arr_data(g, "scores", &data, &n, &et), 0);
  float sc;
  memcpy(&sc, (const char *)data + 8, 4);
  cr_expect(n == 3 && et == CLL_GGUF_F32 && sc == -2.5f);
  const cll_gguf_tensor *t = cll_gguf_find_tensor(g, "h");
  cr_assert_not_null(t);
  cr_expect_eq(((uintptr_t)t->data) % 64, 0, "tensor data aligned in the mapping");
  cr_expect_eq(memcmp(t->data, h, sizeof(h)), 0);
  cr_expect_eq(memcmp(cll_gguf_find_tensor(g, "a")->data, a, sizeof(a)), 0);

  /* copy_kv into a second file keeps every pair except skipped ones. */
  char path2[256];
  tmp_path(path2, sizeof(path2), "copy");
  cr_assert_eq(cll_gguf_writer_new(path2, &w, &err), 0);
  cr_assert_eq(cll_gguf_writer_copy_kv(w, g, NULL, NULL), 0);
  cr_assert_eq(cll_gguf_writer_finish(w, &err), 0, "%s", err.msg);
  cll_gguf *g2;
  cr_assert_eq(cll_gguf_open(path2, &g2, &err), 0, "%s", err.msg);
  cr_expect_eq(cll_gguf_n_kv(g2), cll_gguf_n_kv(g));
  cr_expect(cll_gguf_get_arr_str(g2, "tok", 1, &s) == 0 && s.len == 4);
  cr_expect_eq(cll_gguf_alignment(g2), 64);
  cll_gguf_close(g2);
  cll_gguf_close(g);
  unlink(path);
  unlink(path2);
}

Test(gguf, writer_rejects_bad_tensor) {
  char path[256];
  tmp_path(path, sizeof(path), "bad");
  cll_gguf_writer *w;
  cll_err err = {0};
  cr_assert_eq(cll_gguf_writer_new(path, &w, &err), 0);
  float a[3] = {0};
  uint64_t ne[1] = {3};
  cr_expect_eq(cll_gguf_writer_add_tensor(w, "q", 2 /* Q4_0 */, 1, ne, a, 12), CLL_EINVAL);
  cr_expect_lt(cll_gguf_writer_finish(w, &err), 0);
  cr_expect_eq(access(path, F_OK), -1);
}

Test(gguf, open_errors_name_the_file) {
  cll_gguf *g;
  cll_err err = {0};
  cr_expect_eq(cll_gguf_open("/nonexistent/x.gguf", &g, &err), CLL_ENOENT);
  cr_expect(strstr(err.msg, "/nonexistent/x.gguf") != NULL);
}

static const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s ? s : "../shared";
}

Test(gguf, shared_models_open) {
  char path[512];
  snprintf(path, sizeof(path), "%s/models/stories260K-f32.gguf", shared_dir());
  if (access(path, R_OK) != 0) {
    printf("SKIP: CLLAMA_SHARED not found\n");
    cr_skip("CLLAMA_SHARED not found");
  }
  const char *names[] = {"stories260K-f32",      "stories260K-q8_0-mixed", "tiny-llama-rand-f16",
                         "tiny-llama-rand-q4_0", "tiny-llama-rand-q4_k_m", "tiny-qwen2-rand-q8_0"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(names); i++) {
    snprintf(path, sizeof(path), "%s/models/%s.gguf", shared_dir(), names[i]);
    cll_gguf *g;
    cll_err err = {0};
    cr_assert_eq(cll_gguf_open(path, &g, &err), 0, "%s: %s", names[i], err.msg);
    cll_gguf_str arch;
    cr_expect_eq(cll_gguf_get_str(g, "general.architecture", &arch), 0);
    cr_expect_gt(cll_gguf_n_tensors(g), 10);
    const cll_gguf_tensor *t = cll_gguf_find_tensor(g, "token_embd.weight");
    cr_assert_not_null(t, "%s", names[i]);
    uint64_t nv;
    cr_expect_eq(cll_gguf_get_arr(g, "tokenizer.ggml.tokens", NULL, &nv), 0);
    cr_expect_eq(t->ne[1], nv);
    char buf[128];
    for (int64_t k = 0; k < cll_gguf_n_kv(g); k++)
      cr_expect(cll_gguf_kv_to_json(g, k, buf, sizeof(buf), 3) > 0 ||
                    cll_gguf_kv_type(g, k) == CLL_GGUF_STRING,
                "kv %lld", (long long)k);
    cll_gguf_close(g);
  }
}
