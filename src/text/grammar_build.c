/* grammar_build.c — the grammar builder (struct cll__gb): rules, their
 * alternatives and the interned byte sets, as grammar_internal.h declares
 * them; grammar.c turns a finished builder into a cll_grammar. */
#include "grammar_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ builder */

void cll__gb_init(struct cll__gb *b, cll_err *err) {
  memset(b, 0, sizeof(*b));
  b->err = err;
  for (size_t i = 0; i < CLL_ARRAY_LEN(b->cache); i++)
    b->cache[i] = UINT32_MAX;
}

void cll__gseq_free(struct cll__gseq *s) {
  free(s->el);
  s->el = NULL;
  s->n = s->cap = 0;
}

void cll__gb_free(struct cll__gb *b) {
  for (uint32_t i = 0; i < b->n_rule; i++)
    free(b->rule[i].alt);
  free(b->rule);
  for (uint32_t i = 0; i < b->n_alts; i++)
    cll__gseq_free(&b->alts[i]);
  free(b->alts);
  free(b->set);
  memset(b, 0, sizeof(*b));
}

int cll__gb_fail(struct cll__gb *b, int code, const char *fmt, ...) {
  if (b->rc)
    return b->rc;
  b->rc = code;
  if (b->err) {
    b->err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err->msg, sizeof(b->err->msg), fmt, ap);
    va_end(ap);
  }
  return code;
}

bool cll__grow(void **p, uint32_t *cap, uint32_t need, size_t elsz) {
  if (need <= *cap)
    return true;
  uint32_t c = *cap ? *cap : 8;
  while (c < need)
    c *= 2;
  void *q = realloc(*p, (size_t)c * elsz);
  if (!q)
    return false;
  *p = q;
  *cap = c;
  return true;
}

uint32_t cll__gb_rule(struct cll__gb *b) {
  if (b->rc)
    return 0;
  if (!cll__grow((void **)&b->rule, &b->cap_rule, b->n_rule + 1, sizeof(*b->rule))) {
    cll__gb_fail(b, CLL_ENOMEM, "out of memory");
    return 0;
  }
  memset(&b->rule[b->n_rule], 0, sizeof(b->rule[0]));
  return b->n_rule++;
}

void cll__gb_alt(struct cll__gb *b, uint32_t r, struct cll__gseq *s) {
  if (b->rc || r >= b->n_rule) {
    cll__gseq_free(s);
    return;
  }
  struct cll__grule *ru = &b->rule[r];
  if (!cll__grow((void **)&b->alts, &b->cap_alts, b->n_alts + 1, sizeof(*b->alts)) ||
      !cll__grow((void **)&ru->alt, &ru->cap_alt, ru->n_alt + 1, sizeof(uint32_t))) {
    cll__gseq_free(s);
    cll__gb_fail(b, CLL_ENOMEM, "out of memory");
    return;
  }
  b->alts[b->n_alts] = *s;
  ru->alt[ru->n_alt++] = b->n_alts++;
  b->n_el += s->n + 1;
  memset(s, 0, sizeof(*s));
  if (b->n_el > MAX_ELEMENTS)
    cll__gb_fail(b, CLL_ETOOBIG, "the schema is too large to compile");
}

void cll__gseq_push(struct cll__gb *b, struct cll__gseq *s, uint8_t kind, uint32_t a, uint32_t c) {
  if (b->rc)
    return;
  if (!cll__grow((void **)&s->el, &s->cap, s->n + 1, sizeof(*s->el))) {
    cll__gb_fail(b, CLL_ENOMEM, "out of memory");
    return;
  }
  s->el[s->n++] = (struct cll__gel){kind, a, c, 0};
}

void cll__gseq_cls(struct cll__gb *b, struct cll__gseq *s, uint32_t set, uint32_t min,
                   uint32_t max) {
  cll__gseq_push(b, s, GE_CLS, min, max);
  if (!b->rc)
    s->el[s->n - 1].c = set;
}

void cll__gseq_set(struct cll__gb *b, struct cll__gseq *s, const uint64_t set[4]) {
  if (b->rc)
    return;
  uint32_t i = 0;
  for (; i < b->n_set; i++)
    if (memcmp(b->set[i], set, 32) == 0)
      break;
  if (i == b->n_set) {
    if (!cll__grow((void **)&b->set, &b->cap_set, b->n_set + 1, sizeof(*b->set))) {
      cll__gb_fail(b, CLL_ENOMEM, "out of memory");
      return;
    }
    memcpy(b->set[b->n_set++], set, 32);
  }
  cll__gseq_push(b, s, GE_CHR, i, 0);
}

void cll__gseq_range(struct cll__gb *b, struct cll__gseq *s, uint8_t lo, uint8_t hi) {
  uint64_t set[4] = {0};
  for (unsigned c = lo; c <= hi; c++)
    set[c >> 6] |= 1ull << (c & 63);
  cll__gseq_set(b, s, set);
}

void cll__gseq_lit(struct cll__gb *b, struct cll__gseq *s, const char *lit, size_t n) {
  for (size_t i = 0; i < n; i++)
    cll__gseq_range(b, s, (uint8_t)lit[i], (uint8_t)lit[i]);
}

void cll__gseq_ref(struct cll__gb *b, struct cll__gseq *s, uint32_t rule) {
  cll__gseq_push(b, s, GE_REF, rule, 0);
}

uint32_t cll__gb_lit_rule(struct cll__gb *b, const char *lit, size_t n) {
  uint32_t r = cll__gb_rule(b);
  struct cll__gseq s = {0};
  cll__gseq_lit(b, &s, lit, n);
  cll__gb_alt(b, r, &s);
  return r;
}

uint32_t cll__gb_repeat(struct cll__gb *b, uint32_t unit, uint32_t min, uint32_t max) {
  if (max != GE_UNLIMITED && (max < min || max > 100000)) {
    cll__gb_fail(b, CLL_EUNSUPPORTED, "repetition bound %u is too large", max);
    return 0;
  }
  /* tail: "" | unit tail (unbounded), or a chain of max-min optional units */
  uint32_t tail = cll__gb_rule(b);
  struct cll__gseq s = {0};
  cll__gb_alt(b, tail, &s); /* "" */
  if (max == GE_UNLIMITED) {
    cll__gseq_ref(b, &s, unit);
    cll__gseq_ref(b, &s, tail);
    cll__gb_alt(b, tail, &s);
  } else {
    for (uint32_t k = min; k < max; k++) {
      uint32_t t = cll__gb_rule(b);
      cll__gb_alt(b, t, &s);
      cll__gseq_ref(b, &s, unit);
      cll__gseq_ref(b, &s, tail);
      cll__gb_alt(b, t, &s);
      tail = t;
    }
  }
  uint32_t r = cll__gb_rule(b);
  for (uint32_t k = 0; k < min; k++)
    cll__gseq_ref(b, &s, unit);
  cll__gseq_ref(b, &s, tail);
  cll__gb_alt(b, r, &s);
  return r;
}
