/* names.c — model names and digests (OLLAMA_API.md §3.1).
 *
 * A name is parsed from the right: the tag follows the last ':' when it
 * comes after the last '/', then the model, the namespace and the host are
 * the '/'-separated parts from the right. Each part has a character set
 * that excludes '/', "..", and anything else that could step outside the
 * store, so a valid name is always a safe relative path. */
#include "cllama/store.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_word(int ch) {
  return isalnum(ch) || ch == '_';
}

/* first [A-Za-z0-9_], then [A-Za-z0-9_] + extra characters. */
static int part_valid(const char *s, size_t len, size_t max, const char *extra) {
  if (len == 0 || len > max || !is_word((unsigned char)s[0]))
    return 0;
  for (size_t i = 1; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (!is_word(ch) && strchr(extra, ch) == NULL)
      return 0;
  }
  return 1;
}

static void copy_part(char *dst, size_t size, const char *s, size_t len) {
  if (len >= size)
    len = size - 1;
  memcpy(dst, s, len);
  dst[len] = '\0';
}

int cll_name_parse(const char *s, cll_name *out) {
  memset(out, 0, sizeof(*out));
  if (s == NULL)
    return CLL_EINVAL;
  snprintf(out->scheme, sizeof(out->scheme), "https");
  const char *sep = strstr(s, "://");
  if (sep) {
    size_t sl = (size_t)(sep - s);
    if (sl == 4 && strncasecmp(s, "http", 4) == 0)
      snprintf(out->scheme, sizeof(out->scheme), "http");
    else if (!(sl == 5 && strncasecmp(s, "https", 5) == 0))
      return CLL_EINVAL;
    s = sep + 3;
  }
  size_t len = strlen(s);
  if (len == 0 || len > CLL_NAME_HOST_MAX + 3 * CLL_NAME_PART_MAX + 3)
    return CLL_EINVAL;
  const char *last_slash = strrchr(s, '/');
  const char *last_colon = strrchr(s, ':');
  size_t end = len;
  if (last_colon && (last_slash == NULL || last_colon > last_slash)) {
    size_t tl = len - (size_t)(last_colon - s) - 1;
    if (!part_valid(last_colon + 1, tl, CLL_NAME_PART_MAX, "_.-"))
      return CLL_EINVAL;
    copy_part(out->tag, sizeof(out->tag), last_colon + 1, tl);
    end = (size_t)(last_colon - s);
  } else {
    snprintf(out->tag, sizeof(out->tag), "%s", CLL_NAME_DEFAULT_TAG);
  }
  /* Split s[0, end) on '/' from the right: model, namespace, host. */
  const char *parts[3] = {NULL, NULL, NULL};
  size_t lens[3] = {0, 0, 0};
  size_t n = 0, stop = end;
  for (size_t i = end; i-- > 0;) {
    if (s[i] == '/') {
      if (n == 2)
        break; /* everything before belongs to the host */
      parts[n] = s + i + 1;
      lens[n] = stop - i - 1;
      n++;
      stop = i;
    }
  }
  parts[n] = s;
  lens[n] = stop;
  n++;
  /* n parts: [model], [ns, model] or [host(rest), ns, model]. */
  const char *model = parts[0], *ns = n > 1 ? parts[1] : NULL, *host = n > 2 ? parts[2] : NULL;
  if (!part_valid(model, lens[0], CLL_NAME_PART_MAX, "_.-"))
    return CLL_EINVAL;
  copy_part(out->model, sizeof(out->model), model, lens[0]);
  if (ns) {
    if (!part_valid(ns, lens[1], CLL_NAME_PART_MAX, "_-"))
      return CLL_EINVAL;
    copy_part(out->ns, sizeof(out->ns), ns, lens[1]);
  } else {
    snprintf(out->ns, sizeof(out->ns), "%s", CLL_NAME_DEFAULT_NAMESPACE);
  }
  if (host) {
    if (!part_valid(host, lens[2], CLL_NAME_HOST_MAX, "_.:-"))
      return CLL_EINVAL;
    copy_part(out->host, sizeof(out->host), host, lens[2]);
  } else {
    snprintf(out->host, sizeof(out->host), "%s", CLL_NAME_DEFAULT_HOST);
  }
  /* ".." is made of allowed characters; refuse it explicitly as a part. */
  if (strcmp(out->model, "..") == 0 || strcmp(out->tag, "..") == 0 || strcmp(out->host, "..") == 0)
    return CLL_EINVAL;
  return 0;
}

size_t cll_name_display(const cll_name *n, char *buf, size_t size) {
  int r;
  if (strcasecmp(n->host, CLL_NAME_DEFAULT_HOST) == 0) {
    if (strcasecmp(n->ns, CLL_NAME_DEFAULT_NAMESPACE) == 0)
      r = snprintf(buf, size, "%s:%s", n->model, n->tag);
    else
      r = snprintf(buf, size, "%s/%s:%s", n->ns, n->model, n->tag);
  } else {
    r = snprintf(buf, size, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
  }
  return r < 0 ? 0 : (size_t)r;
}

size_t cll_name_full(const cll_name *n, char *buf, size_t size) {
  int r = snprintf(buf, size, "%s/%s/%s:%s", n->host, n->ns, n->model, n->tag);
  return r < 0 ? 0 : (size_t)r;
}

bool cll_name_equal(const cll_name *a, const cll_name *b) {
  return strcasecmp(a->host, b->host) == 0 && strcasecmp(a->ns, b->ns) == 0 &&
         strcasecmp(a->model, b->model) == 0 && strcasecmp(a->tag, b->tag) == 0;
}

int cll_digest_parse(const char *s, char hex[65]) {
  if (s == NULL || strncmp(s, "sha256", 6) != 0 || (s[6] != ':' && s[6] != '-'))
    return CLL_EINVAL;
  s += 7;
  for (int i = 0; i < 64; i++) {
    if (!isxdigit((unsigned char)s[i]))
      return CLL_EINVAL;
    hex[i] = (char)tolower((unsigned char)s[i]);
  }
  if (s[64] != '\0')
    return CLL_EINVAL;
  hex[64] = '\0';
  return 0;
}
