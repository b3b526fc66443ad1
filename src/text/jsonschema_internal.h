/* jsonschema_internal.h — what jsonschema.c (schemas to rules) and
 * jsonschema_regex.c (the regex compiler of `pattern` and the string
 * formats) share. */
#ifndef CLLAMA_TEXT_JSONSCHEMA_INTERNAL_H
#define CLLAMA_TEXT_JSONSCHEMA_INTERNAL_H

#include "grammar_internal.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Slots of struct cll__gb's cache (rules shared by every schema of a builder). */
enum { C_WS = 0, C_ANY = 1, C_UTF8 = 2, C_STRING = 3 };

struct memo {
  const json_t *s;
  uint32_t rule;
};

struct sctx {
  struct cll__gb *b;
  const json_t *root;
  struct memo *memo;
  uint32_t n_memo, cap_memo;
  int depth;
};

/* Records the error fmt (with arg) in the builder; returns the code. */
int cll__schema_fail(struct sctx *c, int code, const char *fmt, const char *arg);
/* One multi-byte UTF-8 character, well-formed (one rule per builder). */
uint32_t cll__schema_utf8(struct cll__gb *b);

/* jsonschema_regex.c: the rule of regex pat (n bytes); str: string mode
 * (the JSON-escaped form of each character, without the quotes). */
uint32_t cll__regex_rule(struct sctx *c, const char *pat, size_t n, bool str);
/* A JSON string (quotes included) whose decoded text matches pat. */
uint32_t cll__regex_str(struct sctx *c, const char *pat);

#endif
