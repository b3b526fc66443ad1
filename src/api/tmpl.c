/* tmpl.c — parsed templates shared across requests (see tmpl.h).
 *
 * DESIGN. A small process-wide cache, keyed by the template text itself
 * (compared in full, found by a hash), of reference-counted parsed
 * templates. Distinct templates are few (one per model in the store, at
 * most), so a list with a bound is enough: past CACHE_MAX entries the least
 * recently used one that no request holds is dropped. Request-supplied
 * templates (/api/generate's "template") also go through it, so a client
 * sending the same override repeatedly parses it once; the bound keeps
 * a client sending many different ones from growing memory. */
#include "tmpl.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CACHE_MAX 32

static const char default_template[] = "{{ .Prompt }}";

struct cll__tmpl {
  struct cll__tmpl *next;
  uint64_t hash;
  char *text;
  size_t len;
  cll_template *t;
  struct cll__tmpl_caps caps;
  int refs;      /* requests holding it, plus one while it is cached */
  uint64_t used; /* cache clock at the last get */
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct cll__tmpl *cache;
static size_t cache_n;
static uint64_t cache_clock;

static uint64_t fnv1a(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h;
}

static void entry_free(struct cll__tmpl *e) {
  cll_template_free(e->t);
  free(e->text);
  free(e);
}

static int parse_new(const char *text, size_t len, uint64_t h, struct cll__tmpl **out,
                     cll_err *err) {
  struct cll__tmpl *e = calloc(1, sizeof(*e));
  if (!e || !(e->text = malloc(len + 1))) {
    free(e);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  memcpy(e->text, text, len);
  e->text[len] = 0;
  e->len = len;
  e->hash = h;
  int rc = cll_template_parse(text, len, &e->t, err);
  if (rc != 0) {
    if (err && strncmp(err->msg, "template error", 14) != 0) {
      char m[sizeof(err->msg)];
      snprintf(m, sizeof(m), "%s", err->msg);
      cll_err_set(err, CLL_EINVAL, "template error: %s", m);
    }
    entry_free(e);
    return CLL_EINVAL;
  }
  struct cll__tmpl_caps *c = &e->caps;
  c->tools = cll_template_uses(e->t, "tools");
  c->insert = cll_template_uses(e->t, "suffix");
  cll_template_tool_tag(e->t, c->tool_tag, sizeof(c->tool_tag));
  cll_template_think_tags(e->t, c->think_open, sizeof(c->think_open), c->think_close,
                          sizeof(c->think_close));
  c->thinking = c->think_open[0] && c->think_close[0];
  *out = e;
  return 0;
}

int cll__tmpl_get(const char *text, cll__tmpl **out, cll_err *err) {
  *out = NULL;
  if (!text)
    text = default_template;
  size_t len = strlen(text);
  uint64_t h = fnv1a(text, len);
  pthread_mutex_lock(&cache_mu);
  for (struct cll__tmpl *e = cache; e; e = e->next) {
    if (e->hash == h && e->len == len && memcmp(e->text, text, len) == 0) {
      e->refs++;
      e->used = ++cache_clock;
      pthread_mutex_unlock(&cache_mu);
      *out = e;
      return 0;
    }
  }
  pthread_mutex_unlock(&cache_mu);
  /* Parse outside the lock; a racing request may parse the same text, and
   * then the first one inserted wins. */
  struct cll__tmpl *e = NULL;
  int rc = parse_new(text, len, h, &e, err);
  if (rc != 0)
    return rc;
  pthread_mutex_lock(&cache_mu);
  for (struct cll__tmpl *o = cache; o; o = o->next) {
    if (o->hash == h && o->len == len && memcmp(o->text, text, len) == 0) {
      o->refs++;
      o->used = ++cache_clock;
      pthread_mutex_unlock(&cache_mu);
      entry_free(e);
      *out = o;
      return 0;
    }
  }
  if (cache_n >= CACHE_MAX) {
    /* Drop the least recently used entry nobody holds. */
    struct cll__tmpl **victim = NULL;
    for (struct cll__tmpl **p = &cache; *p; p = &(*p)->next)
      if ((*p)->refs == 1 && (!victim || (*p)->used < (*victim)->used))
        victim = p;
    if (victim) {
      struct cll__tmpl *v = *victim;
      *victim = v->next;
      cache_n--;
      entry_free(v);
    }
  }
  e->refs = 2; /* the cache's and the caller's */
  e->used = ++cache_clock;
  e->next = cache;
  cache = e;
  cache_n++;
  pthread_mutex_unlock(&cache_mu);
  *out = e;
  return 0;
}

void cll__tmpl_put(cll__tmpl *t) {
  if (!t)
    return;
  pthread_mutex_lock(&cache_mu);
  bool dead = --t->refs == 0;
  pthread_mutex_unlock(&cache_mu);
  if (dead)
    entry_free(t);
}

const cll_template *cll__tmpl_t(const cll__tmpl *t) {
  return t->t;
}

const struct cll__tmpl_caps *cll__tmpl_caps(const cll__tmpl *t) {
  return &t->caps;
}

int cll__template_check(const char *text, cll_err *err) {
  cll__tmpl *t = NULL;
  int rc = cll__tmpl_get(text, &t, err);
  cll__tmpl_put(t);
  return rc;
}

bool cll__template_has(const char *text, const char *field) {
  cll__tmpl *t = NULL;
  if (!text || cll__tmpl_get(text, &t, NULL) != 0)
    return false;
  bool r;
  if (strcasecmp(field, "thinking") == 0) {
    r = t->caps.thinking;
  } else {
    char low[64];
    size_t i = 0;
    for (; field[i] && i < sizeof(low) - 1; i++)
      low[i] = (char)tolower((unsigned char)field[i]);
    low[i] = 0;
    r = cll_template_uses(t->t, low);
  }
  cll__tmpl_put(t);
  return r;
}
