/* cors.c — the two request filters Ollama runs before routing
 * (OLLAMA_API.md §1.1): the CORS origin check and the Host-header check
 * that guards a loopback-bound server against DNS rebinding.
 *
 * Origin patterns hold at most one '*', which matches any run of characters
 * (so "http://localhost:*" matches every port and "app:// followed by *" every app
 * origin). The fixed defaults are always present; OLLAMA_ORIGINS adds to
 * them, and "*" alone allows every origin. */
#include "internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <ifaddrs.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

const char cll__cors_allow_headers[] =
    "Authorization,Content-Type,User-Agent,Accept,X-Requested-With,OpenAI-Beta,"
    "x-stainless-arch,x-stainless-async,x-stainless-custom-poll-interval,"
    "x-stainless-helper-method,x-stainless-lang,x-stainless-os,"
    "x-stainless-package-version,x-stainless-poll-helper,x-stainless-retry-count,"
    "x-stainless-runtime,x-stainless-runtime-version,x-stainless-timeout";
const char cll__cors_allow_methods[] = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS";

static const char *const default_origins[] = {
    "http://localhost", "https://localhost", "http://localhost:*", "https://localhost:*",
    "http://127.0.0.1", "https://127.0.0.1", "http://127.0.0.1:*", "https://127.0.0.1:*",
    "http://0.0.0.0",   "https://0.0.0.0",   "http://0.0.0.0:*",   "https://0.0.0.0:*",
    "app://*",          "file://*",          "tauri://*",          "vscode-webview://*",
    "vscode-file://*",
};

static int add_origin(struct cll__cors *c, const char *o, size_t len) {
  while (len && isspace((unsigned char)*o))
    o++, len--;
  while (len && isspace((unsigned char)o[len - 1]))
    len--;
  if (len == 0)
    return 0;
  if (len == 1 && o[0] == '*')
    c->allow_all = 1;
  char *copy = strndup(o, len);
  if (copy == NULL)
    return CLL_ENOMEM;
  c->origins[c->n_origins++] = copy;
  return 0;
}

static void collect_local_addrs(struct cll__cors *c) {
  struct ifaddrs *ifa = NULL;
  if (getifaddrs(&ifa) != 0)
    return;
  size_t n = 0;
  for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
    if (i->ifa_addr && (i->ifa_addr->sa_family == AF_INET || i->ifa_addr->sa_family == AF_INET6))
      n++;
  c->local_addrs = calloc(n ? n : 1, sizeof(*c->local_addrs));
  if (c->local_addrs != NULL) {
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
      if (i->ifa_addr == NULL)
        continue;
      if (i->ifa_addr->sa_family == AF_INET)
        memcpy(&c->local_addrs[c->n_local_addrs++], i->ifa_addr, sizeof(struct sockaddr_in));
      else if (i->ifa_addr->sa_family == AF_INET6)
        memcpy(&c->local_addrs[c->n_local_addrs++], i->ifa_addr, sizeof(struct sockaddr_in6));
    }
  }
  freeifaddrs(ifa);
}

int cll__cors_init(struct cll__cors *c, const char *const *origins, size_t n, int host_check) {
  memset(c, 0, sizeof(*c));
  /* OLLAMA_ORIGINS entries may themselves hold commas. */
  size_t cap = CLL_ARRAY_LEN(default_origins);
  for (size_t i = 0; i < n; i++) {
    cap++;
    for (const char *p = origins[i]; *p; p++)
      cap += *p == ',';
  }
  c->origins = calloc(cap, sizeof(*c->origins));
  if (c->origins == NULL)
    return CLL_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const char *s = origins[i];
    for (;;) {
      const char *comma = strchr(s, ',');
      size_t len = comma ? (size_t)(comma - s) : strlen(s);
      if (add_origin(c, s, len) != 0)
        goto err;
      if (comma == NULL)
        break;
      s = comma + 1;
    }
  }
  for (size_t i = 0; i < CLL_ARRAY_LEN(default_origins); i++)
    if (add_origin(c, default_origins[i], strlen(default_origins[i])) != 0)
      goto err;
  c->host_check = host_check;
  if (gethostname(c->hostname, sizeof(c->hostname) - 1) != 0)
    c->hostname[0] = '\0';
  if (host_check)
    collect_local_addrs(c);
  return 0;
err:
  cll__cors_free(c);
  return CLL_ENOMEM;
}

void cll__cors_free(struct cll__cors *c) {
  for (size_t i = 0; i < c->n_origins; i++)
    free(c->origins[i]);
  free(c->origins);
  free(c->local_addrs);
  memset(c, 0, sizeof(*c));
}

/* A pattern with at most one '*': prefix*suffix, compared exactly. */
static int pattern_match(const char *pat, const char *s) {
  const char *star = strchr(pat, '*');
  if (star == NULL)
    return strcmp(pat, s) == 0;
  size_t pre = (size_t)(star - pat), suf = strlen(star + 1), len = strlen(s);
  return len >= pre + suf && memcmp(s, pat, pre) == 0 && memcmp(s + len - suf, star + 1, suf) == 0;
}

int cll__cors_origin_allowed(const struct cll__cors *c, const char *origin) {
  if (c->allow_all)
    return 1;
  for (size_t i = 0; i < c->n_origins; i++)
    if (pattern_match(c->origins[i], origin))
      return 1;
  return 0;
}

static int ipv4_private_or_special(uint32_t a) {
  return (a >> 24) == 127 ||                 /* loopback */
         (a >> 24) == 10 ||                  /* 10/8 */
         (a >> 20) == ((172u << 4) | 1) ||   /* 172.16/12 */
         (a >> 16) == ((192u << 8) | 168) || /* 192.168/16 */
         a == 0;                             /* unspecified */
}

static int ip_allowed(const struct cll__cors *c, const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1) {
    if (ipv4_private_or_special(ntohl(a4.s_addr)))
      return 1;
    for (size_t i = 0; i < c->n_local_addrs; i++) {
      const struct sockaddr_in *s = (const struct sockaddr_in *)&c->local_addrs[i];
      if (s->sin_family == AF_INET && s->sin_addr.s_addr == a4.s_addr)
        return 1;
    }
    return 0;
  }
  if (inet_pton(AF_INET6, host, &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6) || IN6_IS_ADDR_UNSPECIFIED(&a6) ||
        (a6.s6_addr[0] & 0xfe) == 0xfc /* fc00::/7 unique local */)
      return 1;
    if (IN6_IS_ADDR_V4MAPPED(&a6)) {
      uint32_t v4;
      memcpy(&v4, &a6.s6_addr[12], 4);
      if (ipv4_private_or_special(ntohl(v4)))
        return 1;
    }
    for (size_t i = 0; i < c->n_local_addrs; i++) {
      const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&c->local_addrs[i];
      if (s->sin6_family == AF_INET6 && memcmp(&s->sin6_addr, &a6, sizeof(a6)) == 0)
        return 1;
    }
    return 0;
  }
  return -1; /* not an IP address */
}

static int has_suffix_ci(const char *s, size_t len, const char *suffix) {
  size_t n = strlen(suffix);
  return len > n && strncasecmp(s + len - n, suffix, n) == 0;
}

int cll__host_allowed(const struct cll__cors *c, const char *host) {
  if (!c->host_check || host == NULL)
    return 1; /* an absent Host (HTTP/1.0) is the empty host, which is allowed */
  char h[512];
  size_t len = strlen(host);
  if (len >= sizeof(h))
    return 0;
  /* Strip the port: "[::1]:11434", "[::1]", "localhost:11434", "localhost". */
  if (host[0] == '[') {
    const char *close = strchr(host, ']');
    if (close == NULL)
      return 0;
    len = (size_t)(close - host - 1);
    memcpy(h, host + 1, len);
  } else {
    const char *colon = strchr(host, ':');
    if (colon && strchr(colon + 1, ':') == NULL)
      len = (size_t)(colon - host);
    memcpy(h, host, len);
  }
  h[len] = '\0';
  int ip = ip_allowed(c, h);
  if (ip >= 0)
    return ip;
  if (len == 0 || strcasecmp(h, "localhost") == 0)
    return 2;
  if (c->hostname[0] && strcasecmp(h, c->hostname) == 0)
    return 2;
  if (has_suffix_ci(h, len, ".localhost") || has_suffix_ci(h, len, ".local") ||
      has_suffix_ci(h, len, ".internal"))
    return 2;
  return 0;
}

int cll__addr_is_loopback(const char *host) {
  struct in_addr a4;
  struct in6_addr a6;
  if (inet_pton(AF_INET, host, &a4) == 1)
    return (ntohl(a4.s_addr) >> 24) == 127;
  if (inet_pton(AF_INET6, host, &a6) == 1)
    return IN6_IS_ADDR_LOOPBACK(&a6);
  return strcasecmp(host, "localhost") == 0;
}
