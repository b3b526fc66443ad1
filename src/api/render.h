/* render.h — prompt assembly for generate and chat (OLLAMA_API.md §5.1–5.3)
 * over the text module's Go-template engine. Pure functions; any thread
 * (they run on the prepare work item). */
#ifndef CLLAMA_API_RENDER_H
#define CLLAMA_API_RENDER_H

#include "cllama/common.h"

#include <stdbool.h>
#include <stddef.h>

struct cll__msg {
  char *role;    /* lower-cased */
  char *content;
};

/* Renders messages with the Go template tmpl (NULL: Ollama's default
 * "{{ .Prompt }}"), ending where the model should continue. *out is new. */
int cll__render_messages(const char *tmpl, const struct cll__msg *msgs, size_t n, char **out,
                         cll_err *err);
/* Suffix (fill-in-the-middle) mode: data {Prompt, Suffix, Response: ""}. */
int cll__render_suffix(const char *tmpl, const char *prompt, const char *suffix, char **out,
                       cll_err *err);
/* Checks that tmpl parses (create, show); fills err with "template error: ...". */
int cll__template_check(const char *tmpl, cll_err *err);
/* Whether the template references .Suffix (capability "insert") / .Tools. */
bool cll__template_has(const char *tmpl, const char *field);

void cll__msgs_free(struct cll__msg *msgs, size_t n);

#endif
