/* jsonschema.c — JSON schemas (and the regexes of `pattern` and `format`)
 * compiled to grammar rules (see include/cllama/grammar.h for what is
 * supported); the regex compiler is in jsonschema_regex.c. Every keyword is either enforced, a
 * known annotation, or an error naming it: nothing is dropped silently.
 *
 * Schemas compile to one rule per schema object, memoised by address, so a
 * $ref cycle becomes a recursive rule. Regexes compile in "string" mode
 * (what is matched is the decoded string, the grammar sees the JSON text:
 * quotes, backslashes and control characters become their escapes) or in
 * "raw" mode for our own number syntax. */
#include "jsonschema_internal.h"
#include "cllama/util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cll__schema_fail(struct sctx *c, int code, const char *fmt, const char *arg) {
  return cll__gb_fail(c->b, code, fmt, arg);
}

/* ================================================================ shared rules */

/* "" | " " | "\n" [ \t]{0,20} */
uint32_t cll__schema_ws(struct cll__gb *b) {
  if (b->cache[C_WS] != UINT32_MAX)
    return b->cache[C_WS];
  uint32_t blank = cll__gb_rule(b);
  struct cll__gseq s = {0};
  uint64_t set[4] = {0};
  set[0] = (1ull << ' ') | (1ull << '\t');
  cll__gseq_set(b, &s, set);
  cll__gb_alt(b, blank, &s);
  uint32_t indent = cll__gb_repeat(b, blank, 0, 20);
  uint32_t r = cll__gb_rule(b);
  cll__gb_alt(b, r, &s);
  cll__gseq_lit(b, &s, " ", 1);
  cll__gb_alt(b, r, &s);
  cll__gseq_lit(b, &s, "\n", 1);
  cll__gseq_ref(b, &s, indent);
  cll__gb_alt(b, r, &s);
  b->cache[C_WS] = r;
  return r;
}

/* One multi-byte UTF-8 character (well-formed: no overlongs, surrogates). */
uint32_t cll__schema_utf8(struct cll__gb *b) {
  if (b->cache[C_UTF8] != UINT32_MAX)
    return b->cache[C_UTF8];
  static const uint8_t seqs[][4][2] = {
      {{0xC2, 0xDF}, {0x80, 0xBF}, {0, 0}, {0, 0}},
      {{0xE0, 0xE0}, {0xA0, 0xBF}, {0x80, 0xBF}, {0, 0}},
      {{0xE1, 0xEC}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}},
      {{0xED, 0xED}, {0x80, 0x9F}, {0x80, 0xBF}, {0, 0}},
      {{0xEE, 0xEF}, {0x80, 0xBF}, {0x80, 0xBF}, {0, 0}},
      {{0xF0, 0xF0}, {0x90, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
      {{0xF1, 0xF3}, {0x80, 0xBF}, {0x80, 0xBF}, {0x80, 0xBF}},
      {{0xF4, 0xF4}, {0x80, 0x8F}, {0x80, 0xBF}, {0x80, 0xBF}},
  };
  uint32_t r = cll__gb_rule(b);
  struct cll__gseq s = {0};
  for (size_t i = 0; i < CLL_ARRAY_LEN(seqs); i++) {
    for (int k = 0; k < 4 && seqs[i][k][0]; k++)
      cll__gseq_range(b, &s, seqs[i][k][0], seqs[i][k][1]);
    cll__gb_alt(b, r, &s);
  }
  b->cache[C_UTF8] = r;
  return r;
}

static uint32_t str_rule(struct cll__gb *b, uint32_t min, uint32_t max) {
  uint32_t r = cll__gb_rule(b);
  struct cll__gseq s = {0};
  cll__gseq_lit(b, &s, "\"", 1);
  cll__gseq_push(b, &s, GE_STR, min, max);
  cll__gseq_lit(b, &s, "\"", 1);
  cll__gb_alt(b, r, &s);
  return r;
}
/* ================================================================ numbers */

#define NUM_RX "-?(?:0|[1-9][0-9]{0,15})(?:\\.[0-9]{1,16})?(?:[eE][+-]?[0-9]{1,2})?"
#define INT_RX "-?(?:0|[1-9][0-9]{0,15})"
#define INT_LIMIT 9999999999999999LL /* 16 digits */

/* Decimal strings x..y of equal length (x <= y), as a rule. */
static uint32_t same_len(struct cll__gb *b, const char *x, const char *y, size_t n) {
  uint32_t r = cll__gb_rule(b);
  struct cll__gseq s = {0};
  if (n == 0) {
    cll__gb_alt(b, r, &s);
    return r;
  }
  if (x[0] == y[0]) {
    cll__gseq_lit(b, &s, x, 1);
    if (n > 1)
      cll__gseq_ref(b, &s, same_len(b, x + 1, y + 1, n - 1));
    cll__gb_alt(b, r, &s);
    return r;
  }
  char nines[24], zeros[24];
  memset(nines, '9', sizeof(nines));
  memset(zeros, '0', sizeof(zeros));
  bool xz = memcmp(x + 1, zeros, n - 1) == 0, y9 = memcmp(y + 1, nines, n - 1) == 0;
  char lo = xz ? x[0] : (char)(x[0] + 1), hi = y9 ? y[0] : (char)(y[0] - 1);
  if (!xz) {
    cll__gseq_lit(b, &s, x, 1);
    cll__gseq_ref(b, &s, same_len(b, x + 1, nines, n - 1));
    cll__gb_alt(b, r, &s);
  }
  if (lo <= hi) {
    cll__gseq_range(b, &s, (uint8_t)lo, (uint8_t)hi);
    for (size_t i = 1; i < n; i++)
      cll__gseq_range(b, &s, '0', '9');
    cll__gb_alt(b, r, &s);
  }
  if (!y9) {
    cll__gseq_lit(b, &s, y, 1);
    cll__gseq_ref(b, &s, same_len(b, zeros, y + 1, n - 1));
    cll__gb_alt(b, r, &s);
  }
  return r;
}

/* Non-negative integers a..b without leading zeros: alternatives of r. */
static void pos_range(struct cll__gb *b, uint32_t r, long long a, long long z, bool neg) {
  long long p10 = 1;
  for (int len = 1; len <= 16 && a <= z; len++, p10 *= 10) {
    long long lo = len == 1 ? 0 : p10, hi = p10 * 10 - 1;
    if (lo < a)
      lo = a;
    if (hi > z)
      hi = z;
    if (lo > hi)
      continue;
    char x[24], y[24];
    snprintf(x, sizeof(x), "%0*lld", len, lo);
    snprintf(y, sizeof(y), "%0*lld", len, hi);
    struct cll__gseq s = {0};
    if (neg)
      cll__gseq_lit(b, &s, "-", 1);
    cll__gseq_ref(b, &s, same_len(b, x, y, (size_t)len));
    cll__gb_alt(b, r, &s);
  }
}

static uint32_t int_range(struct cll__gb *b, long long lo, long long hi) {
  uint32_t r = cll__gb_rule(b);
  if (lo < 0)
    pos_range(b, r, hi < -1 ? -hi : 1, -lo, true);
  if (hi >= 0)
    pos_range(b, r, lo > 0 ? lo : 0, hi, false);
  return r;
}

/* ================================================================ schemas */

static const char *const annotations[] = {
    "title",      "description", "default",   "examples", "$schema",     "$id",     "$comment",
    "deprecated", "readOnly",    "writeOnly", "$defs",    "definitions", "$anchor", "nullable",
};

static const char *const keywords[] = {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "prefixItems",
    "minItems",
    "maxItems",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "$ref",
    "pattern",
    "format",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "uniqueItems",
};

static bool in_list(const char *k, const char *const *l, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(k, l[i]) == 0)
      return true;
  return false;
}

static int compile(struct sctx *c, const json_t *s, uint32_t *out);

/* A rule for the JSON text of v (enum/const), compact as jansson prints it. */
static uint32_t literal_rule(struct sctx *c, const json_t *v) {
  char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!t) {
    cll__gb_fail(c->b, CLL_ENOMEM, "out of memory");
    return 0;
  }
  uint32_t r = cll__gb_lit_rule(c->b, t, strlen(t));
  free(t);
  return r;
}

/* Any JSON value (format "json" and the empty schema). */
static uint32_t any_value(struct sctx *c) {
  struct cll__gb *b = c->b;
  if (b->cache[C_ANY] != UINT32_MAX)
    return b->cache[C_ANY];
  uint32_t v = cll__gb_rule(b);
  b->cache[C_ANY] = v;
  uint32_t ws = cll__schema_ws(b);
  uint32_t str = str_rule(b, 0, GE_UNLIMITED);
  struct cll__gseq s = {0};
  /* member ::= string ws ":" ws value ; members ::= member (ws "," ws member)* */
  uint32_t member = cll__gb_rule(b);
  cll__gseq_ref(b, &s, str);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, ":", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_ref(b, &s, v);
  cll__gb_alt(b, member, &s);
  uint32_t more_m = cll__gb_rule(b);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, ",", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_ref(b, &s, member);
  cll__gb_alt(b, more_m, &s);
  uint32_t obj = cll__gb_rule(b);
  cll__gseq_lit(b, &s, "{", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, "}", 1);
  cll__gb_alt(b, obj, &s);
  cll__gseq_lit(b, &s, "{", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_ref(b, &s, member);
  cll__gseq_ref(b, &s, cll__gb_repeat(b, more_m, 0, GE_UNLIMITED));
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, "}", 1);
  cll__gb_alt(b, obj, &s);
  uint32_t more_v = cll__gb_rule(b);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, ",", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_ref(b, &s, v);
  cll__gb_alt(b, more_v, &s);
  uint32_t arr = cll__gb_rule(b);
  cll__gseq_lit(b, &s, "[", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, "]", 1);
  cll__gb_alt(b, arr, &s);
  cll__gseq_lit(b, &s, "[", 1);
  cll__gseq_ref(b, &s, ws);
  cll__gseq_ref(b, &s, v);
  cll__gseq_ref(b, &s, cll__gb_repeat(b, more_v, 0, GE_UNLIMITED));
  cll__gseq_ref(b, &s, ws);
  cll__gseq_lit(b, &s, "]", 1);
  cll__gb_alt(b, arr, &s);
  uint32_t parts[] = {obj,
                      arr,
                      str,
                      cll__regex_rule(c, NUM_RX, strlen(NUM_RX), false),
                      cll__gb_lit_rule(b, "true", 4),
                      cll__gb_lit_rule(b, "false", 5),
                      cll__gb_lit_rule(b, "null", 4)};
  for (size_t i = 0; i < CLL_ARRAY_LEN(parts); i++) {
    cll__gseq_ref(b, &s, parts[i]);
    cll__gb_alt(b, v, &s);
  }
  return v;
}

/* The JSON text of a string (quotes included) that is none of keys (JSON
 * texts of strings, quotes included): a trie over the keys' bytes where
 * leaving the trie at a character boundary is any other string. */
static uint32_t key_not_in(struct sctx *c, char **keys, size_t nk, size_t depth) {
  struct cll__gb *b = c->b;
  uint32_t r = cll__gb_rule(b);
  struct cll__gseq s = {0};
  /* keys all share their first depth bytes; depth >= 1 (past the quote) */
  bool ends = false, mid = false;
  uint64_t used[4] = {0};
  for (size_t i = 0; i < nk; i++) {
    size_t n = strlen(keys[i]);
    if (n == depth + 1) /* only the closing quote left */
      ends = true;
    if (depth > 0 && n > depth) {
      uint8_t ch = (uint8_t)keys[i][depth];
      if (ch >= 0x80 && ch <= 0xBF)
        mid = true;
    }
  }
  if (!ends && !mid && depth > 0) {
    cll__gseq_lit(b, &s, "\"", 1);
    cll__gb_alt(b, r, &s);
  }
  for (size_t i = 0; i < nk; i++) {
    size_t n = strlen(keys[i]);
    if (n <= depth + 1)
      continue;
    uint8_t ch = (uint8_t)keys[i][depth];
    if (used[ch >> 6] >> (ch & 63) & 1)
      continue;
    used[ch >> 6] |= 1ull << (ch & 63);
    /* Past 128 bytes a key's path is not followed further (an extra key
     * may not share that long a prefix with a declared one): bounds the
     * recursion. */
    if (depth >= 128)
      continue;
    char **sub = malloc(nk * sizeof(char *));
    if (!sub) {
      cll__gb_fail(b, CLL_ENOMEM, "out of memory");
      return r;
    }
    size_t ns = 0;
    for (size_t j = 0; j < nk; j++)
      if (strlen(keys[j]) > depth + 1 && (uint8_t)keys[j][depth] == ch)
        sub[ns++] = keys[j];
    cll__gseq_lit(b, &s, (const char *)&ch, 1);
    cll__gseq_ref(b, &s, key_not_in(c, sub, ns, depth + 1));
    cll__gb_alt(b, r, &s);
    free(sub);
  }
  if (!mid) {
    /* Another ASCII character here, then any string. */
    uint64_t other[4] = {0};
    for (unsigned ch = 0x20; ch < 0x80; ch++)
      if (ch != '"' && ch != '\\' && !(used[ch >> 6] >> (ch & 63) & 1))
        other[ch >> 6] |= 1ull << (ch & 63);
    if (depth == 0) {
      memset(other, 0, sizeof(other));
      other[0] = 1ull << '"';
      if (!(used[0] >> '"' & 1)) {
        cll__gseq_set(b, &s, other);
        cll__gseq_push(b, &s, GE_STR, 0, GE_UNLIMITED);
        cll__gseq_lit(b, &s, "\"", 1);
        cll__gb_alt(b, r, &s);
      }
    } else if (other[0] || other[1]) {
      cll__gseq_set(b, &s, other);
      cll__gseq_push(b, &s, GE_STR, 0, GE_UNLIMITED);
      cll__gseq_lit(b, &s, "\"", 1);
      cll__gb_alt(b, r, &s);
    }
  }
  return r;
}

static int compile_object(struct sctx *c, const json_t *s, uint32_t *out) {
  struct cll__gb *b = c->b;
  const json_t *props = json_object_get(s, "properties");
  const json_t *req = json_object_get(s, "required");
  const json_t *addl = json_object_get(s, "additionalProperties");
  if (props && !json_is_object(props))
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be an object",
                            "properties");
  if (req && !json_is_array(req))
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be an array", "required");
  if (addl && !json_is_boolean(addl) && !json_is_object(addl))
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a boolean or a schema",
                            "additionalProperties");
  size_t np = json_object_size(props), nr = json_array_size(req);
  size_t cap = np + nr + 1;
  char **keys = calloc(cap, sizeof(char *));
  uint32_t *val = calloc(cap, sizeof(uint32_t));
  bool *must = calloc(cap, sizeof(bool));
  size_t n = 0;
  int rc = 0;
  if (!keys || !val || !must) {
    rc = cll__schema_fail(c, CLL_ENOMEM, "%s", "out of memory");
    goto done;
  }
  const char *k;
  json_t *v;
  json_object_foreach((json_t *)props, k, v) {
    json_t *ks = json_string(k);
    keys[n] = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
    json_decref(ks);
    if (!keys[n]) {
      rc = cll__schema_fail(c, CLL_EINVAL,
                            "invalid JSON schema: property name %s is not valid UTF-8", "");
      goto done;
    }
    if ((rc = compile(c, v, &val[n])) != 0)
      goto done;
    for (size_t i = 0; i < nr; i++)
      if (json_is_string(json_array_get(req, i)) &&
          strcmp(json_string_value(json_array_get(req, i)), k) == 0)
        must[n] = true;
    n++;
  }
  for (size_t i = 0; i < nr; i++) {
    const json_t *rn = json_array_get(req, i);
    if (!json_is_string(rn)) {
      rc = cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must hold strings", "required");
      goto done;
    }
    if (json_object_get(props, json_string_value(rn)))
      continue;
    json_t *ks = json_string(json_string_value(rn));
    keys[n] = ks ? json_dumps(ks, JSON_ENCODE_ANY) : NULL;
    json_decref(ks);
    if (!keys[n]) {
      rc = cll__schema_fail(c, CLL_ENOMEM, "%s", "out of memory");
      goto done;
    }
    if (json_is_object(addl)) {
      if ((rc = compile(c, addl, &val[n])) != 0)
        goto done;
    } else if (json_is_false(addl)) {
      rc = cll__schema_fail(c, CLL_EINVAL,
                            "invalid JSON schema: required property \"%s\" is not allowed by "
                            "additionalProperties false",
                            json_string_value(rn));
      goto done;
    } else {
      val[n] = any_value(c);
    }
    must[n] = true;
    n++;
  }
  uint32_t ws = cll__schema_ws(b);
  uint32_t sep = cll__gb_rule(b);
  struct cll__gseq q = {0};
  cll__gseq_ref(b, &q, ws);
  cll__gseq_lit(b, &q, ",", 1);
  cll__gseq_ref(b, &q, ws);
  cll__gb_alt(b, sep, &q);
  /* Extra members: additionalProperties true or a schema; an object that
   * has no properties keyword and says nothing about others is any object. */
  uint32_t extra_kv = UINT32_MAX;
  if ((addl && !json_is_false(addl)) || (!addl && !props && n == 0)) {
    uint32_t ev = 0;
    if (json_is_object(addl)) {
      if ((rc = compile(c, addl, &ev)) != 0)
        goto done;
    } else {
      ev = any_value(c);
    }
    extra_kv = cll__gb_rule(b);
    cll__gseq_ref(b, &q, n ? key_not_in(c, keys, n, 0) : str_rule(b, 0, GE_UNLIMITED));
    cll__gseq_ref(b, &q, ws);
    cll__gseq_lit(b, &q, ":", 1);
    cll__gseq_ref(b, &q, ws);
    cll__gseq_ref(b, &q, ev);
    cll__gb_alt(b, extra_kv, &q);
  }
  /* rest[i][comma]: members i.. (comma: one came before). */
  uint32_t rest[2] = {0, 0}; /* rules for i+1 */
  for (int comma = 0; comma < 2; comma++) {
    rest[comma] = cll__gb_rule(b);
    cll__gb_alt(b, rest[comma], &q); /* "" */
    if (extra_kv != UINT32_MAX) {
      uint32_t loop = cll__gb_rule(b);
      cll__gb_alt(b, loop, &q);
      cll__gseq_ref(b, &q, sep);
      cll__gseq_ref(b, &q, extra_kv);
      cll__gseq_ref(b, &q, loop);
      cll__gb_alt(b, loop, &q);
      if (comma)
        cll__gseq_ref(b, &q, sep);
      cll__gseq_ref(b, &q, extra_kv);
      cll__gseq_ref(b, &q, loop);
      cll__gb_alt(b, rest[comma], &q);
    }
  }
  for (size_t i = n; i-- > 0;) {
    uint32_t kv = cll__gb_rule(b);
    cll__gseq_lit(b, &q, keys[i], strlen(keys[i]));
    cll__gseq_ref(b, &q, ws);
    cll__gseq_lit(b, &q, ":", 1);
    cll__gseq_ref(b, &q, ws);
    cll__gseq_ref(b, &q, val[i]);
    cll__gb_alt(b, kv, &q);
    uint32_t nr2[2];
    for (int comma = 0; comma < 2; comma++) {
      nr2[comma] = cll__gb_rule(b);
      if (comma)
        cll__gseq_ref(b, &q, sep);
      cll__gseq_ref(b, &q, kv);
      cll__gseq_ref(b, &q, rest[1]);
      cll__gb_alt(b, nr2[comma], &q);
      if (!must[i]) {
        cll__gseq_ref(b, &q, rest[comma]);
        cll__gb_alt(b, nr2[comma], &q);
      }
    }
    rest[0] = nr2[0];
    rest[1] = nr2[1];
  }
  uint32_t obj = cll__gb_rule(b);
  cll__gseq_lit(b, &q, "{", 1);
  cll__gseq_ref(b, &q, ws);
  cll__gseq_ref(b, &q, rest[0]);
  cll__gseq_ref(b, &q, ws);
  cll__gseq_lit(b, &q, "}", 1);
  cll__gb_alt(b, obj, &q);
  *out = obj;
done:
  if (keys)
    for (size_t i = 0; i < cap; i++)
      free(keys[i]);
  free(keys);
  free(val);
  free(must);
  return rc ? rc : b->rc;
}

static bool get_count(struct sctx *c, const json_t *s, const char *key, uint32_t *v) {
  const json_t *x = json_object_get(s, key);
  if (!x)
    return true;
  double d = json_number_value(x);
  if (!json_is_number(x) || d < 0 || d != floor(d)) {
    cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a non-negative integer", key);
    return false;
  }
  if (d > 10000) {
    cll__schema_fail(c, CLL_EUNSUPPORTED, "unsupported JSON schema: %s over 10000", key);
    return false;
  }
  *v = (uint32_t)d;
  return true;
}

static int compile_array(struct sctx *c, const json_t *s, uint32_t *out) {
  struct cll__gb *b = c->b;
  const json_t *items = json_object_get(s, "items");
  const json_t *prefix = json_object_get(s, "prefixItems");
  if (items && !json_is_object(items) && !json_is_boolean(items))
    return cll__schema_fail(c, CLL_EUNSUPPORTED,
                            "unsupported JSON schema: %s must be a schema or a boolean", "items");
  if (prefix && !json_is_array(prefix))
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be an array",
                            "prefixItems");
  uint32_t mn = 0, mx = GE_UNLIMITED;
  if (!get_count(c, s, "minItems", &mn) || !get_count(c, s, "maxItems", &mx))
    return b->rc;
  uint32_t np = (uint32_t)json_array_size(prefix);
  if (json_is_false(items) && mx > np)
    mx = np;
  if (mx != GE_UNLIMITED && mn > mx)
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s is greater than maxItems",
                            "minItems");
  uint32_t item = 0;
  if (json_is_object(items)) {
    int rc = compile(c, items, &item);
    if (rc)
      return rc;
  } else if (!json_is_false(items)) {
    item = any_value(c);
  }
  uint32_t ws = cll__schema_ws(b);
  uint32_t sep = cll__gb_rule(b);
  struct cll__gseq q = {0};
  cll__gseq_ref(b, &q, ws);
  cll__gseq_lit(b, &q, ",", 1);
  cll__gseq_ref(b, &q, ws);
  cll__gb_alt(b, sep, &q);
  uint32_t k = mx != GE_UNLIMITED ? mx : (np > mn ? np : mn);
  /* A_k: the tail; then A_j for j = k-1 .. 0. */
  uint32_t next = cll__gb_rule(b);
  cll__gb_alt(b, next, &q); /* "" */
  if (mx == GE_UNLIMITED) {
    uint32_t loop = cll__gb_rule(b);
    cll__gb_alt(b, loop, &q);
    cll__gseq_ref(b, &q, sep);
    cll__gseq_ref(b, &q, item);
    cll__gseq_ref(b, &q, loop);
    cll__gb_alt(b, loop, &q);
    if (k > 0)
      cll__gseq_ref(b, &q, sep);
    cll__gseq_ref(b, &q, item);
    cll__gseq_ref(b, &q, loop);
    cll__gb_alt(b, next, &q);
  }
  for (uint32_t j = k; j-- > 0;) {
    uint32_t it = item;
    if (j < np) {
      int rc = compile(c, json_array_get(prefix, j), &it);
      if (rc)
        return rc;
    }
    uint32_t a = cll__gb_rule(b);
    if (j >= mn)
      cll__gb_alt(b, a, &q);
    if (j > 0)
      cll__gseq_ref(b, &q, sep);
    cll__gseq_ref(b, &q, it);
    cll__gseq_ref(b, &q, next);
    cll__gb_alt(b, a, &q);
    next = a;
  }
  uint32_t arr = cll__gb_rule(b);
  cll__gseq_lit(b, &q, "[", 1);
  cll__gseq_ref(b, &q, ws);
  cll__gseq_ref(b, &q, next);
  cll__gseq_ref(b, &q, ws);
  cll__gseq_lit(b, &q, "]", 1);
  cll__gb_alt(b, arr, &q);
  *out = arr;
  return b->rc;
}

static const struct {
  const char *name, *rx;
} formats[] = {
#define DATE_RX                                                                                    \
  "[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-" \
  "9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
#define TIME_RX                                                                                    \
  "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-"  \
  "5][0-9])"
    {"date", "^" DATE_RX "$"},
    {"time", "^" TIME_RX "$"},
    {"date-time", "^" DATE_RX "T" TIME_RX "$"},
    {"uuid", "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
    {"email", "^[a-zA-Z0-9._%+-]{1,32}@[a-zA-Z0-9-]{1,32}(?:\\.[a-zA-Z0-9-]{1,32}){0,3}\\.[a-zA-Z]"
              "{2,8}$"},
    {"ipv4", "^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1["
             "0-9][0-9]|[1-9]?[0-9])$"},
};

static int compile_string(struct sctx *c, const json_t *s, uint32_t *out) {
  const json_t *pat = json_object_get(s, "pattern"), *fmt = json_object_get(s, "format");
  uint32_t mn = 0, mx = GE_UNLIMITED;
  if (!get_count(c, s, "minLength", &mn) || !get_count(c, s, "maxLength", &mx))
    return c->b->rc;
  bool lengths = json_object_get(s, "minLength") || json_object_get(s, "maxLength");
  if (pat || fmt) {
    if (pat && fmt)
      return cll__schema_fail(c, CLL_EUNSUPPORTED,
                              "unsupported JSON schema: %s together with format", "pattern");
    if (lengths)
      return cll__schema_fail(c, CLL_EUNSUPPORTED,
                              "unsupported JSON schema: %s together with pattern or "
                              "format",
                              json_object_get(s, "minLength") ? "minLength" : "maxLength");
    if (pat) {
      if (!json_is_string(pat))
        return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a string",
                                "pattern");
      *out = cll__regex_str(c, json_string_value(pat));
      return c->b->rc;
    }
    if (!json_is_string(fmt))
      return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a string", "format");
    for (size_t i = 0; i < CLL_ARRAY_LEN(formats); i++)
      if (strcmp(formats[i].name, json_string_value(fmt)) == 0) {
        *out = cll__regex_str(c, formats[i].rx);
        return c->b->rc;
      }
    return cll__schema_fail(c, CLL_EUNSUPPORTED, "unsupported JSON schema format: \"%s\"",
                            json_string_value(fmt));
  }
  if (mx != GE_UNLIMITED && mn > mx)
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s is greater than maxLength",
                            "minLength");
  *out = str_rule(c->b, mn, mx);
  return c->b->rc;
}

static bool bound(struct sctx *c, const json_t *s, const char *key, bool upper, long long *v) {
  const json_t *x = json_object_get(s, key);
  if (!x)
    return true;
  bool excl = key[0] == 'e';
  if (json_is_boolean(x)) { /* draft 4: exclusiveMinimum: true next to minimum */
    if (json_is_true(x)) {
      if (upper)
        (*v)--;
      else
        (*v)++;
    }
    return true;
  }
  if (!json_is_number(x)) {
    cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a number", key);
    return false;
  }
  double d = json_number_value(x);
  if (d > (double)INT_LIMIT)
    d = (double)INT_LIMIT + 1;
  if (d < -(double)INT_LIMIT)
    d = -(double)INT_LIMIT - 1;
  long long b;
  if (upper)
    b = excl && d == floor(d) ? (long long)d - 1 : (long long)floor(d);
  else
    b = excl && d == floor(d) ? (long long)d + 1 : (long long)ceil(d);
  if (upper ? b < *v : b > *v)
    *v = b;
  return true;
}

static int compile_integer(struct sctx *c, const json_t *s, uint32_t *out) {
  long long lo = -INT_LIMIT, hi = INT_LIMIT;
  bool any = false;
  /* minimum first so a draft-4 boolean exclusiveMinimum adjusts it */
  static const char *const lk[] = {"minimum", "exclusiveMinimum"}, *const hk[] = {
                                                                       "maximum",
                                                                       "exclusiveMaximum"};
  for (int i = 0; i < 2; i++) {
    any |= json_object_get(s, lk[i]) || json_object_get(s, hk[i]);
    if (!bound(c, s, lk[i], false, &lo) || !bound(c, s, hk[i], true, &hi))
      return c->b->rc;
  }
  if (lo > hi)
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s allows no integer",
                            "minimum/maximum");
  if (!any)
    *out = cll__regex_rule(c, INT_RX, strlen(INT_RX), false);
  else
    *out = int_range(c->b, lo, hi);
  return c->b->rc;
}

/* JSON pointer lookup ("#", "#/$defs/x", "#/properties/a/items"). */
static const json_t *resolve_ref(const json_t *root, const char *ref) {
  if (ref[0] != '#')
    return NULL;
  const json_t *cur = root;
  const char *p = ref + 1;
  while (*p == '/') {
    p++;
    char tok[256];
    size_t n = 0;
    while (*p && *p != '/' && n + 1 < sizeof(tok)) {
      if (p[0] == '~' && p[1] == '1') {
        tok[n++] = '/';
        p += 2;
      } else if (p[0] == '~' && p[1] == '0') {
        tok[n++] = '~';
        p += 2;
      } else {
        tok[n++] = *p++;
      }
    }
    tok[n] = 0;
    if (json_is_object(cur))
      cur = json_object_get(cur, tok);
    else if (json_is_array(cur)) {
      char *e;
      unsigned long i = strtoul(tok, &e, 10);
      cur = *e ? NULL : json_array_get(cur, i);
    } else
      cur = NULL;
    if (!cur)
      return NULL;
  }
  return *p ? NULL : cur;
}

static int type_rule(struct sctx *c, const json_t *s, const char *t, uint32_t *out) {
  struct cll__gb *b = c->b;
  if (strcmp(t, "object") == 0)
    return compile_object(c, s, out);
  if (strcmp(t, "array") == 0)
    return compile_array(c, s, out);
  if (strcmp(t, "string") == 0)
    return compile_string(c, s, out);
  if (strcmp(t, "integer") == 0)
    return compile_integer(c, s, out);
  if (strcmp(t, "number") == 0) {
    static const char *const nk[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"};
    for (size_t i = 0; i < CLL_ARRAY_LEN(nk); i++)
      if (json_object_get(s, nk[i]))
        return cll__schema_fail(
            c, CLL_EUNSUPPORTED,
            "unsupported JSON schema keyword: %s (only integers can have bounds)", nk[i]);
    *out = cll__regex_rule(c, NUM_RX, strlen(NUM_RX), false);
    return b->rc;
  }
  if (strcmp(t, "boolean") == 0) {
    *out = cll__gb_rule(b);
    struct cll__gseq q = {0};
    cll__gseq_lit(b, &q, "true", 4);
    cll__gb_alt(b, *out, &q);
    cll__gseq_lit(b, &q, "false", 5);
    cll__gb_alt(b, *out, &q);
    return b->rc;
  }
  if (strcmp(t, "null") == 0) {
    *out = cll__gb_lit_rule(b, "null", 4);
    return b->rc;
  }
  return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: unknown type \"%s\"", t);
}

static int compile_body(struct sctx *c, const json_t *s, uint32_t r) {
  struct cll__gb *b = c->b;
  struct cll__gseq q = {0};
  const char *k;
  json_t *v;
  size_t n_constraint = 0;
  const char *first_constraint = NULL;
  json_object_foreach((json_t *)s, k, v) {
    if (in_list(k, annotations, CLL_ARRAY_LEN(annotations)))
      continue;
    if (!in_list(k, keywords, CLL_ARRAY_LEN(keywords)))
      return cll__schema_fail(c, CLL_EUNSUPPORTED, "unsupported JSON schema keyword: %s", k);
    if (strcmp(k, "uniqueItems") == 0) {
      if (json_is_true(v))
        return cll__schema_fail(c, CLL_EUNSUPPORTED, "unsupported JSON schema keyword: %s", k);
      continue;
    }
    if (strcmp(k, "$ref") && strcmp(k, "anyOf") && strcmp(k, "oneOf") && strcmp(k, "enum") &&
        strcmp(k, "const")) {
      n_constraint++;
      if (!first_constraint)
        first_constraint = k;
    }
  }
  if (json_is_true(json_object_get(s, "nullable"))) {
    cll__gseq_ref(b, &q, cll__gb_lit_rule(b, "null", 4));
    cll__gb_alt(b, r, &q);
  }
  const json_t *ref = json_object_get(s, "$ref");
  const json_t *any = json_object_get(s, "anyOf");
  const json_t *one = json_object_get(s, "oneOf");
  const json_t *en = json_object_get(s, "enum");
  const json_t *cn = json_object_get(s, "const");
  int n_comb = !!ref + !!any + !!one + !!en + !!cn;
  if (n_comb > 1 || (n_comb && n_constraint && !en && !cn))
    return cll__schema_fail(c, CLL_EUNSUPPORTED,
                            "unsupported JSON schema: %s combined with other keywords",
                            ref   ? "$ref"
                            : any ? "anyOf"
                            : one ? "oneOf"
                            : en  ? "enum"
                                  : "const");
  if (ref) {
    if (!json_is_string(ref))
      return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a string", "$ref");
    const json_t *t = resolve_ref(c->root, json_string_value(ref));
    if (!t)
      return cll__schema_fail(c, CLL_EUNSUPPORTED,
                              "unsupported JSON schema $ref: \"%s\" (only local "
                              "references like #/$defs/name)",
                              json_string_value(ref));
    uint32_t tr = 0;
    int rc = compile(c, t, &tr);
    if (rc)
      return rc;
    cll__gseq_ref(b, &q, tr);
    cll__gb_alt(b, r, &q);
    return b->rc;
  }
  if (any || one) {
    const json_t *l = any ? any : one;
    if (!json_is_array(l) || json_array_size(l) == 0)
      return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a non-empty array",
                              any ? "anyOf" : "oneOf");
    for (size_t i = 0; i < json_array_size(l); i++) {
      uint32_t ar = 0;
      int rc = compile(c, json_array_get(l, i), &ar);
      if (rc)
        return rc;
      cll__gseq_ref(b, &q, ar);
      cll__gb_alt(b, r, &q);
    }
    return b->rc;
  }
  if (en || cn) {
    if (en && (!json_is_array(en) || json_array_size(en) == 0))
      return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a non-empty array",
                              "enum");
    size_t n = en ? json_array_size(en) : 1;
    for (size_t i = 0; i < n; i++) {
      cll__gseq_ref(b, &q, literal_rule(c, en ? json_array_get(en, i) : cn));
      cll__gb_alt(b, r, &q);
    }
    return b->rc;
  }
  const json_t *type = json_object_get(s, "type");
  const char *types[8];
  size_t nt = 0;
  if (json_is_string(type)) {
    types[nt++] = json_string_value(type);
  } else if (json_is_array(type)) {
    for (size_t i = 0; i < json_array_size(type) && nt < CLL_ARRAY_LEN(types); i++) {
      if (!json_is_string(json_array_get(type, i)))
        return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must hold strings", "type");
      types[nt++] = json_string_value(json_array_get(type, i));
    }
    if (nt == 0)
      return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s is empty", "type");
  } else if (type) {
    return cll__schema_fail(c, CLL_EINVAL, "invalid JSON schema: %s must be a string or an array",
                            "type");
  } else if (json_object_get(s, "properties") || json_object_get(s, "required") ||
             json_object_get(s, "additionalProperties")) {
    types[nt++] = "object";
  } else if (json_object_get(s, "items") || json_object_get(s, "prefixItems") ||
             json_object_get(s, "minItems") || json_object_get(s, "maxItems")) {
    types[nt++] = "array";
  } else if (json_object_get(s, "pattern") || json_object_get(s, "format") ||
             json_object_get(s, "minLength") || json_object_get(s, "maxLength")) {
    types[nt++] = "string";
  } else if (n_constraint) {
    types[nt++] = "integer";
  }
  if (nt == 0) {
    cll__gseq_ref(b, &q, any_value(c));
    cll__gb_alt(b, r, &q);
    return b->rc;
  }
  for (size_t i = 0; i < nt; i++) {
    uint32_t tr = 0;
    int rc = type_rule(c, s, types[i], &tr);
    if (rc)
      return rc;
    cll__gseq_ref(b, &q, tr);
    cll__gb_alt(b, r, &q);
  }
  return b->rc;
}

static int compile(struct sctx *c, const json_t *s, uint32_t *out) {
  struct cll__gb *b = c->b;
  if (b->rc)
    return b->rc;
  if (json_is_true(s)) {
    *out = any_value(c);
    return b->rc;
  }
  if (!json_is_object(s))
    return cll__schema_fail(c, CLL_EUNSUPPORTED,
                            "unsupported JSON schema: %s (a schema must be an object "
                            "or true)",
                            json_is_false(s) ? "false" : "a non-object");
  for (uint32_t i = 0; i < c->n_memo; i++)
    if (c->memo[i].s == s) {
      *out = c->memo[i].rule;
      return 0;
    }
  if (++c->depth > 200)
    return cll__schema_fail(c, CLL_EUNSUPPORTED, "unsupported JSON schema: %s",
                            "nested too deeply");
  uint32_t r = cll__gb_rule(b);
  void *m = c->memo;
  if (c->n_memo == c->cap_memo) {
    uint32_t cap = c->cap_memo ? c->cap_memo * 2 : 32;
    m = realloc(c->memo, cap * sizeof(*c->memo));
    if (!m)
      return cll__schema_fail(c, CLL_ENOMEM, "%s", "out of memory");
    c->memo = m;
    c->cap_memo = cap;
  }
  c->memo[c->n_memo++] = (struct memo){s, r};
  int rc = compile_body(c, s, r);
  c->depth--;
  *out = r;
  return rc ? rc : b->rc;
}

int cll__schema_value(struct cll__gb *b, const json_t *format, uint32_t *rule) {
  struct sctx c = {b, format, NULL, 0, 0, 0};
  int rc;
  if (json_is_string(format) && strcmp(json_string_value(format), "json") == 0) {
    /* Any JSON value with an object at the top. */
    uint32_t any = any_value(&c);
    (void)any;
    json_t *o = json_pack("{s:s}", "type", "object");
    json_object_set_new(o, "additionalProperties", json_true());
    c.root = o;
    rc = compile(&c, o, rule);
    json_decref(o);
  } else if (json_is_object(format)) {
    rc = compile(&c, format, rule);
  } else {
    rc = cll__gb_fail(b, CLL_EINVAL, "invalid format: expected \"json\" or a JSON schema object");
  }
  free(c.memo);
  return rc ? rc : b->rc;
}
