/* jsonschema_regex.c — the regex compiler behind `pattern` and the string
 * formats: a regex (ECMA-262 subset) compiled to grammar rules in "string"
 * mode (the decoded string is matched, the grammar sees its JSON-escaped
 * text) or in "raw" mode (our own number syntax). */
#include "jsonschema_internal.h"
#include "cllama/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ regex */

struct rx {
  struct sctx *c;
  const char *p, *end;
  bool str; /* string mode: emit the JSON-escaped form of each character */
};

struct cclass {
  uint64_t ascii[2]; /* code points 0..127 */
  uint32_t lit[32];  /* non-ASCII single code points */
  int n_lit;
  bool neg, multi; /* multi: every non-ASCII character (., negated class) */
};

static int rx_fail(struct rx *r, const char *why) {
  char msg[400];
  snprintf(msg, sizeof(msg), "unsupported JSON schema pattern: %s in \"%.*s\"", why,
           (int)(r->end - r->p > 200 ? 200 : r->end - r->p), r->p);
  return cll__gb_fail(r->c->b, CLL_EUNSUPPORTED, "%s", msg);
}

static void cc_add(struct cclass *k, uint32_t lo, uint32_t hi) {
  for (uint32_t c = lo; c <= hi && c < 128; c++)
    k->ascii[c >> 6] |= 1ull << (c & 63);
}

static bool cc_has(const struct cclass *k, uint32_t c) {
  return k->ascii[c >> 6] >> (c & 63) & 1;
}

static void cc_escape(struct cclass *k, char e) {
  switch (e) {
  case 'd':
    cc_add(k, '0', '9');
    break;
  case 'w':
    cc_add(k, '0', '9');
    cc_add(k, 'a', 'z');
    cc_add(k, 'A', 'Z');
    cc_add(k, '_', '_');
    break;
  case 's':
    cc_add(k, ' ', ' ');
    cc_add(k, '\t', '\r');
    break;
  }
}

/* Decodes one UTF-8 code point at *p (advancing it). */
static uint32_t utf8_next(const char **p, const char *end) {
  const uint8_t *s = (const uint8_t *)*p;
  uint32_t c = s[0];
  int n = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if ((const char *)s + n > end)
    n = 1;
  if (n == 2)
    c = (c & 0x1F) << 6 | (s[1] & 0x3F);
  else if (n == 3)
    c = (c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
  else if (n == 4)
    c = (c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
        (s[3] & 0x3F);
  *p += n;
  return c;
}

static size_t utf8_put(uint32_t c, char *o) {
  if (c < 0x80) {
    o[0] = (char)c;
    return 1;
  }
  if (c < 0x800) {
    o[0] = (char)(0xC0 | c >> 6);
    o[1] = (char)(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    o[0] = (char)(0xE0 | c >> 12);
    o[1] = (char)(0x80 | (c >> 6 & 0x3F));
    o[2] = (char)(0x80 | (c & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | c >> 18);
  o[1] = (char)(0x80 | (c >> 12 & 0x3F));
  o[2] = (char)(0x80 | (c >> 6 & 0x3F));
  o[3] = (char)(0x80 | (c & 0x3F));
  return 4;
}

/* The JSON text of one character inside a string. */
static size_t json_char(uint32_t c, char *o) {
  switch (c) {
  case '"':
    return (size_t)snprintf(o, 8, "\\\"");
  case '\\':
    return (size_t)snprintf(o, 8, "\\\\");
  case '\n':
    return (size_t)snprintf(o, 8, "\\n");
  case '\t':
    return (size_t)snprintf(o, 8, "\\t");
  case '\r':
    return (size_t)snprintf(o, 8, "\\r");
  case '\b':
    return (size_t)snprintf(o, 8, "\\b");
  case '\f':
    return (size_t)snprintf(o, 8, "\\f");
  default:
    if (c < 0x20)
      return (size_t)snprintf(o, 8, "\\u%04x", (unsigned)c);
    return utf8_put(c, o);
  }
}

/* Appends class k to s: inline when it is one byte set, else as a rule. */
static void cc_emit(struct rx *r, struct cclass *k, struct cll__gseq *s) {
  struct cll__gb *b = r->c->b;
  if (k->neg) {
    k->ascii[0] = ~k->ascii[0];
    k->ascii[1] = ~k->ascii[1];
    k->multi = true;
    if (k->n_lit)
      rx_fail(r, "a negated class with non-ASCII characters");
  }
  uint64_t plain[4] = {0};
  bool extra = k->multi || k->n_lit > 0;
  for (uint32_t c = 0; c < 128; c++) {
    if (!cc_has(k, c))
      continue;
    if (r->str && (c < 0x20 || c == '"' || c == '\\')) {
      extra = true;
      continue;
    }
    plain[c >> 6] |= 1ull << (c & 63);
  }
  bool any_plain = plain[0] || plain[1];
  if (!extra) {
    if (!any_plain)
      rx_fail(r, "an empty character class");
    cll__gseq_set(b, s, plain);
    return;
  }
  uint32_t rule = cll__gb_rule(b);
  struct cll__gseq t = {0};
  if (any_plain) {
    cll__gseq_set(b, &t, plain);
    cll__gb_alt(b, rule, &t);
  }
  char tmp[8];
  if (r->str) {
    /* Escaped forms; of the control characters only \n \t \r. */
    static const uint32_t esc[] = {'"', '\\', '\n', '\t', '\r'};
    for (size_t i = 0; i < CLL_ARRAY_LEN(esc); i++) {
      if (!cc_has(k, esc[i]))
        continue;
      cll__gseq_lit(b, &t, tmp, json_char(esc[i], tmp));
      cll__gb_alt(b, rule, &t);
    }
  }
  for (int i = 0; i < k->n_lit; i++) {
    cll__gseq_lit(b, &t, tmp, utf8_put(k->lit[i], tmp));
    cll__gb_alt(b, rule, &t);
  }
  if (k->multi && r->str) {
    cll__gseq_ref(b, &t, cll__schema_utf8(b));
    cll__gb_alt(b, rule, &t);
  }
  cll__gseq_ref(b, s, rule);
}

static uint32_t rx_alt(struct rx *r, int depth);

/* An escape after '\' as a code point, or a class (returns false). */
static bool rx_escape(struct rx *r, uint32_t *cp, struct cclass *k) {
  if (r->p >= r->end) {
    rx_fail(r, "a trailing backslash");
    return true;
  }
  char e = *r->p++;
  switch (e) {
  case 'd':
  case 'w':
  case 's':
    cc_escape(k, e);
    return false;
  case 'D':
  case 'W':
  case 'S':
    cc_escape(k, (char)(e + 32));
    k->neg = true;
    return false;
  case 'n':
    *cp = '\n';
    return true;
  case 't':
    *cp = '\t';
    return true;
  case 'r':
    *cp = '\r';
    return true;
  case 'f':
    *cp = '\f';
    return true;
  case 'v':
    *cp = '\v';
    return true;
  case 'x':
  case 'u': {
    int n = e == 'x' ? 2 : 4;
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
      int h = r->p < r->end ? cll_hex_digit(*r->p) : -1;
      if (h < 0) {
        rx_fail(r, "a malformed \\x or \\u escape");
        return true;
      }
      v = v * 16 + (uint32_t)h;
      r->p++;
    }
    *cp = v;
    return true;
  }
  default:
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
      char w[40];
      snprintf(w, sizeof(w), "the escape \\%c", e);
      rx_fail(r, w);
      return true;
    }
    r->p--;
    *cp = utf8_next(&r->p, r->end);
    return true;
  }
}

static void rx_class(struct rx *r, struct cclass *k) {
  if (r->p < r->end && *r->p == '^') {
    k->neg = true;
    r->p++;
  }
  bool first = true;
  while (r->p < r->end && (*r->p != ']' || first)) {
    first = false;
    uint32_t lo;
    struct cclass sub = {0};
    if (*r->p == '\\') {
      r->p++;
      if (!rx_escape(r, &lo, &sub)) {
        if (sub.neg)
          rx_fail(r, "a negated escape inside a class");
        k->ascii[0] |= sub.ascii[0];
        k->ascii[1] |= sub.ascii[1];
        continue;
      }
    } else {
      lo = utf8_next(&r->p, r->end);
    }
    uint32_t hi = lo;
    if (r->p + 1 < r->end && *r->p == '-' && r->p[1] != ']') {
      r->p++;
      if (*r->p == '\\') {
        r->p++;
        if (!rx_escape(r, &hi, &sub))
          rx_fail(r, "a class escape as a range end");
      } else {
        hi = utf8_next(&r->p, r->end);
      }
    }
    if (hi < lo)
      rx_fail(r, "a reversed range");
    else if (hi >= 128 && lo != hi)
      rx_fail(r, "a non-ASCII range");
    else if (lo >= 128) {
      if (k->n_lit < (int)CLL_ARRAY_LEN(k->lit))
        k->lit[k->n_lit++] = lo;
      else
        rx_fail(r, "too many non-ASCII characters in a class");
    } else {
      cc_add(k, lo, hi);
    }
  }
  if (r->p >= r->end)
    rx_fail(r, "an unclosed class");
  else
    r->p++;
}

/* Parses a quantifier at r->p; returns false when there is none. */
static bool rx_quant(struct rx *r, uint32_t *mn, uint32_t *mx) {
  if (r->p >= r->end)
    return false;
  char q = *r->p;
  if (q == '*' || q == '+' || q == '?') {
    r->p++;
    *mn = q == '+' ? 1 : 0;
    *mx = q == '?' ? 1 : GE_UNLIMITED;
  } else if (q == '{') {
    const char *p = r->p + 1;
    char *e;
    unsigned long a = strtoul(p, &e, 10);
    if (e == p)
      return false;
    unsigned long z = a;
    if (*e == ',') {
      p = e + 1;
      if (*p == '}') {
        z = GE_UNLIMITED;
        e = (char *)p;
      } else {
        z = strtoul(p, &e, 10);
        if (e == p)
          return false;
      }
    }
    if (*e != '}')
      return false;
    if (a > 10000 || (z != GE_UNLIMITED && (z > 10000 || z < a))) {
      rx_fail(r, "a repetition bound over 10000 or reversed");
      return false;
    }
    r->p = e + 1;
    *mn = (uint32_t)a;
    *mx = (uint32_t)z;
  } else {
    return false;
  }
  if (r->p < r->end && (*r->p == '?' || *r->p == '+'))
    r->p++; /* lazy/possessive: the same language */
  return true;
}

static void rx_concat(struct rx *r, struct cll__gseq *s, int depth) {
  struct cll__gb *b = r->c->b;
  while (r->p < r->end && *r->p != '|' && *r->p != ')' && !b->rc) {
    struct cll__gseq atom = {0};
    char ch = *r->p;
    if (ch == '(') {
      r->p++;
      if (r->p < r->end && *r->p == '?') {
        if (r->p + 1 < r->end && r->p[1] == ':')
          r->p += 2;
        else if (r->p + 2 < r->end && (r->p[1] == 'P' || r->p[1] == '<') &&
                 r->p[1 + (r->p[1] == 'P')] == '<' && r->p[2 + (r->p[1] == 'P')] != '=' &&
                 r->p[2 + (r->p[1] == 'P')] != '!') {
          const char *gt = memchr(r->p, '>', (size_t)(r->end - r->p));
          if (!gt) {
            rx_fail(r, "an unclosed group name");
            break;
          }
          r->p = gt + 1;
        } else {
          rx_fail(r, "a lookaround or inline flag");
          break;
        }
      }
      uint32_t g = rx_alt(r, depth + 1);
      if (r->p >= r->end || *r->p != ')') {
        rx_fail(r, "an unclosed group");
        break;
      }
      r->p++;
      cll__gseq_ref(b, &atom, g);
    } else if (ch == '[') {
      r->p++;
      struct cclass k = {0};
      rx_class(r, &k);
      cc_emit(r, &k, &atom);
    } else if (ch == '.') {
      r->p++;
      struct cclass k = {0};
      cc_add(&k, 0, 127);
      k.ascii[0] &= ~(1ull << '\n');
      k.multi = true;
      cc_emit(r, &k, &atom);
    } else if (ch == '^' || ch == '$') {
      rx_fail(r, "an anchor inside the pattern");
      break;
    } else if (ch == '*' || ch == '+' || ch == '?') {
      rx_fail(r, "a quantifier with nothing to repeat");
      break;
    } else {
      uint32_t cp;
      struct cclass k = {0};
      bool lit = true;
      if (ch == '\\') {
        r->p++;
        lit = rx_escape(r, &cp, &k);
      } else {
        cp = utf8_next(&r->p, r->end);
      }
      if (lit) {
        char tmp[8];
        size_t n = r->str ? json_char(cp, tmp) : utf8_put(cp, tmp);
        cll__gseq_lit(b, &atom, tmp, n);
      } else {
        cc_emit(r, &k, &atom);
      }
    }
    uint32_t mn, mx;
    bool quant = rx_quant(r, &mn, &mx);
    if (quant && atom.n == 1 && atom.el[0].kind == GE_CHR) {
      cll__gseq_cls(b, s, atom.el[0].a, mn, mx); /* one byte set repeated: counted */
      cll__gseq_free(&atom);
    } else if (quant) {
      uint32_t unit = cll__gb_rule(b);
      cll__gb_alt(b, unit, &atom);
      cll__gseq_ref(b, s, cll__gb_repeat(b, unit, mn, mx));
    } else {
      for (uint32_t i = 0; i < atom.n; i++)
        cll__gseq_push(b, s, atom.el[i].kind, atom.el[i].a, atom.el[i].b);
      cll__gseq_free(&atom);
    }
  }
}

static uint32_t rx_alt(struct rx *r, int depth) {
  struct cll__gb *b = r->c->b;
  uint32_t rule = cll__gb_rule(b);
  if (depth > 64) {
    rx_fail(r, "groups nested too deeply");
    return rule;
  }
  for (;;) {
    struct cll__gseq s = {0};
    rx_concat(r, &s, depth);
    cll__gb_alt(b, rule, &s);
    if (r->p < r->end && *r->p == '|' && !b->rc) {
      r->p++;
      continue;
    }
    break;
  }
  return rule;
}

/* A rule for what the pattern matches (JSON-escaped in string mode, with
 * the search semantics of JSON Schema: unanchored ends may have anything). */
uint32_t cll__regex_rule(struct sctx *c, const char *pat, size_t n, bool str) {
  struct cll__gb *b = c->b;
  struct rx r = {c, pat, pat + n, str};
  bool bol = n > 0 && pat[0] == '^';
  if (bol)
    r.p++;
  bool eol = false;
  if (r.end > r.p && r.end[-1] == '$') {
    size_t bs = 0;
    for (const char *q = r.end - 2; q >= r.p && *q == '\\'; q--)
      bs++;
    if (bs % 2 == 0) {
      eol = true;
      r.end--;
    }
  }
  uint32_t body = rx_alt(&r, 0);
  if (r.p < r.end && !b->rc)
    rx_fail(&r, "an unbalanced ')'");
  uint32_t rule = cll__gb_rule(b);
  struct cll__gseq s = {0};
  if (!bol && str)
    cll__gseq_push(b, &s, GE_STR, 0, GE_UNLIMITED);
  cll__gseq_ref(b, &s, body);
  if (!eol && str)
    cll__gseq_push(b, &s, GE_STR, 0, GE_UNLIMITED);
  cll__gb_alt(b, rule, &s);
  return rule;
}

uint32_t cll__regex_str(struct sctx *c, const char *pat) {
  struct cll__gb *b = c->b;
  uint32_t body = cll__regex_rule(c, pat, strlen(pat), true);
  uint32_t r = cll__gb_rule(b);
  struct cll__gseq s = {0};
  cll__gseq_lit(b, &s, "\"", 1);
  cll__gseq_ref(b, &s, body);
  cll__gseq_lit(b, &s, "\"", 1);
  cll__gb_alt(b, r, &s);
  return r;
}
