/* registry_internal.h — what pull.c and auth.c share. */
#ifndef CLLAMA_REGISTRY_INTERNAL_H
#define CLLAMA_REGISTRY_INTERNAL_H

#include "cllama/registry.h"

#include <stdbool.h>
#include <stddef.h>

/* A parsed `WWW-Authenticate: Bearer realm=...,service=...,scope=...`. */
struct cll__challenge {
  char realm[1024];
  char service[256];
  char scope[1024];
};

/* 0, or CLL_EPROTO when the header is not a Bearer challenge with a realm. */
int cll__reg_parse_challenge(const char *header, struct cll__challenge *c);

/* The token request URL: realm?service=..&scope=.. (one scope per
 * space-separated scope); with ollama_params also nonce and ts, keys in the
 * sorted order Go's url.Values.Encode gives them, as Ollama signs it. */
int cll__reg_token_url(const struct cll__challenge *c, bool ollama_params, char *out, size_t size);

/* The "host[:port]" part of a URL. */
void cll__reg_url_host(const char *url, char *out, size_t size);

#endif
