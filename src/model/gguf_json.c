/* gguf_json.c — one GGUF metadata value as JSON (cll_gguf_kv_to_json), for
 * /api/show's model_info. The value was checked when the file was parsed
 * (gguf.c); strings go through the shared escaper (util.h). */
#include "gguf_internal.h"
#include "cllama/util.h"

#include <inttypes.h>
#include <limits.h>
#include <string.h>

static void put_double(cll_buf *s, double d) {
  if (d != d || d == 1.0 / 0.0 || d == -1.0 / 0.0)
    cll_buf_puts(s, "null"); /* JSON has no NaN/Inf */
  else
    cll_buf_printf(s, "%.9g", d);
}

/* Formats one value at cursor position (already validated by the parser). */
static void dump_value(cll_buf *s, struct cursor *c, uint32_t t, uint64_t max_elems) {
  const uint8_t *p = c->base + c->pos;
  uint64_t u;
  bool neg;
  if (t == CLL_GGUF_F32) {
    float f;
    memcpy(&f, p, 4);
    put_double(s, f);
    c->pos += 4;
  } else if (t == CLL_GGUF_F64) {
    double d;
    memcpy(&d, p, 8);
    put_double(s, d);
    c->pos += 8;
  } else if (t == CLL_GGUF_BOOL) {
    cll_buf_puts(s, p[0] ? "true" : "false");
    c->pos += 1;
  } else if (cll__gguf_read_int(t, p, &u, &neg)) {
    if (neg)
      cll_buf_printf(s, "%" PRId64, (int64_t)u);
    else
      cll_buf_printf(s, "%" PRIu64, u);
    c->pos += cll__gguf_scalar_size(t);
  } else if (t == CLL_GGUF_STRING) {
    cll_gguf_str str;
    cll__gguf_rd_str(c, &str, "");
    cll_json_escape(s, str.ptr, str.len);
  } else { /* array */
    uint32_t et;
    uint64_t n;
    cll__gguf_rd_u32(c, &et, "");
    cll__gguf_rd_u64(c, &n, "");
    cll_buf_putc(s, '[');
    for (uint64_t i = 0; i < n; i++) {
      if (i == max_elems) {
        cll_buf_puts(s, ",\"...\"");
        /* skip the rest without printing */
        for (; i < n; i++)
          cll__gguf_skip_value(c, et, 1, "", NULL, NULL, NULL);
        break;
      }
      if (i)
        cll_buf_putc(s, ',');
      dump_value(s, c, et, max_elems);
    }
    cll_buf_putc(s, ']');
  }
}

int cll_gguf_kv_to_json(const cll_gguf *g, int64_t i, char *buf, size_t cap, uint64_t max_elems) {
  if (i < 0 || i >= g->n_kv || (buf == NULL && cap > 0))
    return CLL_EINVAL;
  if (cap == 0)
    return CLL_ETOOBIG;
  const struct kv *kv = &g->kvs[i];
  cll_buf s;
  cll_buf_init(&s, cap - 1); /* the answer and its NUL fit in buf */
  struct cursor c = {g->base, g->size, (uint64_t)(kv->val - g->base), NULL};
  dump_value(&s, &c, kv->type, max_elems);
  int rc = s.err ? s.err : s.len > INT_MAX ? CLL_ETOOBIG : (int)s.len;
  if (rc >= 0)
    memcpy(buf, s.data ? s.data : "", s.len + 1);
  cll_buf_free(&s);
  return rc;
}
