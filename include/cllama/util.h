/* util.h — small pieces every layer shares: the one growable byte buffer,
 * the one JSON string escaper, hex digits, and SHA-256 (of memory and of a
 * file). Any thread; nothing here blocks except cll_sha256_file (it reads a
 * file: call it from a work item, never on the loop thread).
 *
 * The buffer follows jansson's strbuffer and redis' sds: one type, one
 * growth rule (doubling from 256 bytes), one place that checks for
 * overflow. Its error is sticky: after one failed append every later append
 * does nothing and returns the same code, so a writer can append many
 * pieces and check once (cll_buf_append's return value or b->err). */
#ifndef CLLAMA_UTIL_H
#define CLLAMA_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "cllama/common.h"

typedef struct cll_buf {
  char *data; /* (cap) new; data[len] == '\0' once anything was appended; NULL before */
  size_t len; /* bytes held, not counting the terminating NUL */
  size_t cap; /* bytes allocated */
  size_t max; /* 0: no limit; else appending past max bytes fails with CLL_ETOOBIG */
  int err;    /* 0, or the sticky CLL_ENOMEM / CLL_ETOOBIG of a failed append */
} cll_buf;

/* An empty buffer (all zero) needs no init call; this one sets a limit. */
void cll_buf_init(cll_buf *b, size_t max_bytes);
/* Makes room for extra more bytes (and the NUL). 0 or the sticky error. */
int cll_buf_reserve(cll_buf *b, size_t extra);
/* Appends n bytes (p may be NULL when n is 0). 0 or the sticky error. */
int cll_buf_append(cll_buf *b, const void *p, size_t n);
int cll_buf_puts(cll_buf *b, const char *s);
int cll_buf_putc(cll_buf *b, char c);
int cll_buf_printf(cll_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer, keeping its memory; clears the error. */
void cll_buf_reset(cll_buf *b);
/* Returns the contents as a new NUL-terminated string (caller frees; "" when
 * empty) and leaves b empty; NULL when b holds an error or allocation fails. */
char *cll_buf_steal(cll_buf *b);
/* Frees the memory; b is empty afterwards. NULL is a no-op. */
void cll_buf_free(cll_buf *b);

/* Appends s (n bytes) as a quoted JSON string with Go encoding/json's rules
 * (what Ollama writes): \" \\ \n \r \t \b \f, other control characters and
 * < > & as \u00XX, U+2028/U+2029 escaped, invalid UTF-8 as \ufffd. */
int cll_json_escape(cll_buf *b, const char *s, size_t n);

/* The value of one hex digit (0-9, a-f, A-F), or -1. */
int cll_hex_digit(int c);
/* Writes n bytes as 2*n lowercase hex digits and a NUL into out. */
void cll_hex_encode(const void *bytes, size_t n_bytes, char *out);

/* SHA-256 of memory as 64 lowercase hex digits and a NUL. */
void cll_sha256_hex(const void *data, size_t len, char hex[65]);
/* SHA-256 of a file, streamed; *size (may be NULL) gets its length. 0, or
 * CLL_ENOENT / CLL_EIO / CLL_ENOMEM with err filled. Blocks on the file. */
int cll_sha256_file(const char *path, char hex[65], int64_t *size, cll_err *err);

#endif
