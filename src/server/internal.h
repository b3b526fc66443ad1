/* internal.h — what http.c, router.c and cors.c share inside src/server.
 * Nothing outside src/server includes this. */
#ifndef CLLAMA_SERVER_INTERNAL_H
#define CLLAMA_SERVER_INTERNAL_H

#include "cllama/server.h"
#include "cllama/util.h" /* cll_buf */

#include <llhttp.h>
#include <netinet/in.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------ router */

#define CLL__MAX_PARAMS 8

struct cll__route {
  char method[16];
  char *pattern;     /* copy of the pattern, segments NUL-separated after parsing */
  const char **segs; /* nseg pointers into pattern; ":name" marks a parameter */
  size_t nseg;
  cll_handler_fn fn;
  void *ud;
  bool stream_body; /* the handler takes the body as it arrives */
  struct cll__route *next;
};

struct cll__match {
  const struct cll__route *route; /* NULL: see path_known */
  int path_known;                 /* some route has this path under another method */
  size_t nparams;
  const char *param_names[CLL__MAX_PARAMS]; /* borrowed from the route */
  size_t param_off[CLL__MAX_PARAMS];        /* offset/length in the path */
  size_t param_len[CLL__MAX_PARAMS];
};

int cll__route_add(struct cll__route **list, const char *method, const char *pattern,
                   cll_handler_fn fn, void *ud);
void cll__routes_free(struct cll__route *list);
void cll__route_match(const struct cll__route *list, const char *method, const char *path,
                      struct cll__match *m);

/* -------------------------------------------------------------------- cors */

struct cll__cors {
  char **origins; /* copies of the allowed patterns (defaults + OLLAMA_ORIGINS) */
  size_t n_origins;
  int allow_all; /* "*" is in the list */
  /* Host check (DNS-rebinding guard). */
  int host_check;
  char hostname[256];
  struct sockaddr_storage *local_addrs;
  size_t n_local_addrs;
};

int cll__cors_init(struct cll__cors *c, const char *const *origins, size_t n, int host_check);
void cll__cors_free(struct cll__cors *c);
/* 1 when the Origin header value is allowed. */
int cll__cors_origin_allowed(const struct cll__cors *c, const char *origin);
/* 0 when the Host header value fails the loopback guard, 2 when it passes
 * as a host name (OPTIONS then gets 204), 1 otherwise. */
int cll__host_allowed(const struct cll__cors *c, const char *host);
/* 1 when the bind address is a loopback address. */
int cll__addr_is_loopback(const char *host);

/* The request headers Ollama allows in CORS preflight. */
extern const char cll__cors_allow_headers[];
extern const char cll__cors_allow_methods[];

#endif
