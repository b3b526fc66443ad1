/* buf.c — the growable byte buffer and the JSON string escaper that writes
 * into it (include/cllama/util.h). */
#include "cllama/util.h"
#include "cllama/utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cll_buf_init(cll_buf *b, size_t max_bytes) {
  memset(b, 0, sizeof(*b));
  b->max = max_bytes;
}

int cll_buf_reserve(cll_buf *b, size_t extra) {
  if (b->err)
    return b->err;
  if (extra > SIZE_MAX / 2 - b->len || (b->max && b->len + extra > b->max))
    return b->err = CLL_ETOOBIG;
  size_t need = b->len + extra + 1;
  if (need <= b->cap)
    return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  char *d = realloc(b->data, cap);
  if (d == NULL)
    return b->err = CLL_ENOMEM;
  b->data = d;
  b->cap = cap;
  return 0;
}

int cll_buf_append(cll_buf *b, const void *p, size_t n) {
  int rc = cll_buf_reserve(b, n);
  if (rc)
    return rc;
  if (n)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = '\0';
  return 0;
}

int cll_buf_puts(cll_buf *b, const char *s) {
  return cll_buf_append(b, s, strlen(s));
}

int cll_buf_putc(cll_buf *b, char c) {
  return cll_buf_append(b, &c, 1);
}

int cll_buf_printf(cll_buf *b, const char *fmt, ...) {
  if (b->err)
    return b->err;
  char tmp[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n < 0)
    return CLL_EINVAL; /* a bad format: the caller's mistake, not the buffer's */
  if ((size_t)n < sizeof(tmp))
    return cll_buf_append(b, tmp, (size_t)n);
  int rc = cll_buf_reserve(b, (size_t)n);
  if (rc)
    return rc;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
  return 0;
}

void cll_buf_reset(cll_buf *b) {
  b->len = 0;
  b->err = 0;
  if (b->data)
    b->data[0] = '\0';
}

char *cll_buf_steal(cll_buf *b) {
  if (b->err) {
    cll_buf_free(b);
    return NULL;
  }
  char *s = b->data ? b->data : calloc(1, 1);
  size_t max = b->max;
  memset(b, 0, sizeof(*b));
  b->max = max;
  return s;
}

void cll_buf_free(cll_buf *b) {
  if (b == NULL)
    return;
  free(b->data);
  size_t max = b->max;
  memset(b, 0, sizeof(*b));
  b->max = max;
}

/* ------------------------------------------------------------ JSON strings */

int cll_json_escape(cll_buf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  /* Worst case 6 output bytes per input byte, plus the quotes: reserving it
   * once keeps the loop free of checks. */
  if (n > (SIZE_MAX - 2) / 6)
    return b->err = b->err ? b->err : CLL_ETOOBIG;
  int rc = cll_buf_reserve(b, n * 6 + 2);
  if (rc)
    return rc;
  char *o = b->data + b->len;
  *o++ = '"';
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      i++;
      switch (c) {
      case '"':
        *o++ = '\\', *o++ = '"';
        break;
      case '\\':
        *o++ = '\\', *o++ = '\\';
        break;
      case '\n':
        *o++ = '\\', *o++ = 'n';
        break;
      case '\r':
        *o++ = '\\', *o++ = 'r';
        break;
      case '\t':
        *o++ = '\\', *o++ = 't';
        break;
      case '\b':
        *o++ = '\\', *o++ = 'b';
        break;
      case '\f':
        *o++ = '\\', *o++ = 'f';
        break;
      default:
        if (c < 0x20 || c == '<' || c == '>' || c == '&') { /* Go's encoder escapes these */
          *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0';
          *o++ = hex[c >> 4], *o++ = hex[c & 15];
        } else {
          *o++ = (char)c;
        }
      }
      continue;
    }
    uint32_t cp;
    size_t len = cll_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (cp == 0xFFFD && len == 1) {
      memcpy(o, "\\ufffd", 6), o += 6;
    } else if (cp == 0x2028 || cp == 0x2029) {
      memcpy(o, cp == 0x2028 ? "\\u2028" : "\\u2029", 6), o += 6;
    } else {
      memcpy(o, s + i, len), o += len;
    }
    i += len;
  }
  *o++ = '"';
  b->len = (size_t)(o - b->data);
  b->data[b->len] = '\0';
  return 0;
}
