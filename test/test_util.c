/* test_util.c — the shared pieces in cllama/util.h: the growable buffer
 * (growth, limit, sticky error), the JSON string escaper (Go's rules), hex
 * digits and SHA-256 of memory and of a file. */
#include "cllama/util.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

Test(buf, grows_and_keeps_a_nul) {
  cll_buf b = {0};
  cr_assert_eq(cll_buf_puts(&b, ""), 0);
  cr_assert_not_null(b.data);
  cr_assert_str_eq(b.data, "");
  for (int i = 0; i < 1000; i++)
    cr_assert_eq(cll_buf_printf(&b, "%d,", i), 0);
  cr_assert_eq(b.len, strlen(b.data));
  cr_assert(strncmp(b.data, "0,1,2,", 6) == 0);
  cr_assert(b.cap > b.len);
  /* printf longer than its stack buffer */
  char big[1000];
  memset(big, 'x', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  size_t before = b.len;
  cr_assert_eq(cll_buf_printf(&b, "<%s>", big), 0);
  cr_assert_eq(b.len, before + 1001);
  cr_assert_eq(b.data[b.len - 1], '>');
  cr_assert_eq(cll_buf_putc(&b, 'z'), 0);
  cll_buf_reset(&b);
  cr_assert_eq(b.len, 0);
  cr_assert_str_eq(b.data, "");
  cll_buf_free(&b);
  cr_assert_null(b.data);
  cll_buf_free(NULL);
}

Test(buf, limit_sets_a_sticky_error) {
  cll_buf b;
  cll_buf_init(&b, 10);
  cr_assert_eq(cll_buf_append(&b, "0123456789", 10), 0);
  cr_assert_eq(cll_buf_putc(&b, 'x'), CLL_ETOOBIG);
  cr_assert_eq(b.err, CLL_ETOOBIG);
  cr_assert_eq(cll_buf_puts(&b, ""), CLL_ETOOBIG, "an error stays until reset");
  cr_assert_eq(cll_json_escape(&b, "a", 1), CLL_ETOOBIG);
  cr_assert_str_eq(b.data, "0123456789");
  cr_assert_null(cll_buf_steal(&b), "steal of a failed buffer is NULL");
  cr_assert_null(b.data);
  cr_assert_eq(b.max, 10);
  cr_assert_eq(cll_buf_puts(&b, "ok"), 0);
  char *s = cll_buf_steal(&b);
  cr_assert_str_eq(s, "ok");
  free(s);
  s = cll_buf_steal(&b);
  cr_assert_str_eq(s, "", "an empty buffer steals as \"\"");
  free(s);
}

static char *esc(const char *s, size_t n) {
  cll_buf b = {0};
  cr_assert_eq(cll_json_escape(&b, s, n), 0);
  return cll_buf_steal(&b);
}

Test(json_escape, go_rules) {
  struct {
    const char *in;
    size_t n;
    const char *want;
  } cases[] = {
      {"plain", 5, "\"plain\""},
      {"q\"b\\", 4, "\"q\\\"b\\\\\""},
      {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
      {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
      {"<a&b>", 5, "\"\\u003ca\\u0026b\\u003e\""},
      {"nul\0x", 5, "\"nul\\u0000x\""},
      {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
      {"\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\""},
      {"a\xff"
       "b",
       3, "\"a\\ufffdb\""},
      {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},            /* overlong */
      {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""}, /* surrogate */
      {"\xe2\x82", 2, "\"\\ufffd\\ufffd\""},            /* cut */
      {"", 0, "\"\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char *got = esc(cases[i].in, cases[i].n);
    cr_expect_str_eq(got, cases[i].want, "case %zu", i);
    /* whatever goes in, the output is JSON that parses */
    json_error_t e;
    json_t *v = json_loads(got, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    cr_expect_not_null(v, "case %zu: %s", i, e.text);
    json_decref(v);
    free(got);
  }
}

Test(hex, digits_and_encode) {
  cr_assert_eq(cll_hex_digit('0'), 0);
  cr_assert_eq(cll_hex_digit('9'), 9);
  cr_assert_eq(cll_hex_digit('a'), 10);
  cr_assert_eq(cll_hex_digit('F'), 15);
  cr_assert_eq(cll_hex_digit('g'), -1);
  cr_assert_eq(cll_hex_digit('/'), -1);
  cr_assert_eq(cll_hex_digit(0xC3), -1);
  char hex[9];
  cll_hex_encode((const unsigned char[]){0xde, 0xad, 0x01, 0x00}, 4, hex);
  cr_assert_str_eq(hex, "dead0100");
}

Test(sha256, memory_and_file) {
  char hex[65];
  cll_sha256_hex("", 0, hex);
  cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  cll_sha256_hex("abc", 3, hex);
  cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");

  char path[] = "/tmp/cllama-test-util-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  /* more than one read chunk (1 MiB) */
  size_t n = (3u << 20) + 5;
  char *data = malloc(n);
  for (size_t i = 0; i < n; i++)
    data[i] = (char)(i * 31 + 7);
  cr_assert_eq(write(fd, data, n), (ssize_t)n);
  close(fd);
  char want[65];
  cll_sha256_hex(data, n, want);
  int64_t size = 0;
  cll_err err = {0};
  cr_assert_eq(cll_sha256_file(path, hex, &size, &err), 0, "%s", err.msg);
  cr_assert_str_eq(hex, want);
  cr_assert_eq(size, (int64_t)n);
  unlink(path);
  free(data);
  cr_assert_eq(cll_sha256_file(path, hex, NULL, &err), CLL_ENOENT);
  cr_assert(strstr(err.msg, path) != NULL, "%s", err.msg);
}
