/* router.c — route table: (method, path pattern with ":param" segments) ->
 * handler. A linear list is enough: Ollama has about forty routes, and a
 * match costs a few string compares per route. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cll__route_add(struct cll__route **list, const char *method, const char *pattern,
                   cll_handler_fn fn, void *ud) {
  if (method == NULL || pattern == NULL || fn == NULL || pattern[0] != '/' ||
      strlen(method) >= sizeof(((struct cll__route *)0)->method))
    return CLL_EINVAL;
  struct cll__route *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return CLL_ENOMEM;
  snprintf(r->method, sizeof(r->method), "%s", method);
  r->pattern = strdup(pattern + 1);
  size_t maxseg = 1;
  for (const char *p = pattern; *p; p++)
    maxseg += *p == '/';
  r->segs = calloc(maxseg, sizeof(*r->segs));
  if (r->pattern == NULL || r->segs == NULL) {
    free(r->pattern);
    free(r->segs);
    free(r);
    return CLL_ENOMEM;
  }
  /* "/" has zero segments; "/api/tags" has two. */
  if (r->pattern[0] != '\0') {
    char *s = r->pattern;
    for (;;) {
      r->segs[r->nseg++] = s;
      char *slash = strchr(s, '/');
      if (slash == NULL)
        break;
      *slash = '\0';
      s = slash + 1;
    }
  }
  size_t nparams = 0;
  for (size_t i = 0; i < r->nseg; i++)
    nparams += r->segs[i][0] == ':';
  if (nparams > CLL__MAX_PARAMS) {
    free(r->pattern);
    free(r->segs);
    free(r);
    return CLL_EINVAL;
  }
  r->fn = fn;
  r->ud = ud;
  /* Append, so earlier registrations win on overlap. */
  while (*list)
    list = &(*list)->next;
  *list = r;
  return 0;
}

void cll__routes_free(struct cll__route *list) {
  while (list) {
    struct cll__route *next = list->next;
    free(list->pattern);
    free(list->segs);
    free(list);
    list = next;
  }
}

/* Matches path against r; fills the parameter slots of m on success. */
static int path_matches(const struct cll__route *r, const char *path, struct cll__match *m) {
  const char *p = path + 1; /* skip the leading '/' */
  size_t np = 0;
  if (r->nseg == 0)
    return *p == '\0';
  for (size_t i = 0; i < r->nseg; i++) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *seg = r->segs[i];
    if (seg[0] == ':') {
      if (len == 0)
        return 0;
      m->param_names[np] = seg + 1;
      m->param_off[np] = (size_t)(p - path);
      m->param_len[np] = len;
      np++;
    } else if (strlen(seg) != len || memcmp(seg, p, len) != 0) {
      return 0;
    }
    if (i + 1 < r->nseg) {
      if (end == NULL)
        return 0;
      p = end + 1;
    } else if (end != NULL) {
      return 0;
    }
  }
  m->nparams = np;
  return 1;
}

void cll__route_match(const struct cll__route *list, const char *method, const char *path,
                      struct cll__match *m) {
  memset(m, 0, sizeof(*m));
  if (path[0] != '/')
    return;
  for (const struct cll__route *r = list; r; r = r->next) {
    struct cll__match tmp;
    memset(&tmp, 0, sizeof(tmp));
    if (!path_matches(r, path, &tmp))
      continue;
    if (strcmp(r->method, method) == 0) {
      *m = tmp;
      m->route = r;
      m->path_known = 1;
      return;
    }
    m->path_known = 1;
  }
}
