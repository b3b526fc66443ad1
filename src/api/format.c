/* format.c — the `format` field of /api/generate and /api/chat (and what
 * /v1's response_format maps to): validated and compiled to a grammar that
 * the scheduler enforces token by token (include/cllama/grammar.h). */
#include "gen_core.h"

#include <stdio.h>
#include <string.h>

/* Go's %q of s into out (as Ollama quotes the raw format in its error). */
static void go_quote(const char *s, char *out, size_t cap) {
  size_t n = 0;
  if (cap < 4)
    return;
  out[n++] = '"';
  for (; *s && n + 4 < cap; s++) {
    if (*s == '"' || *s == '\\')
      out[n++] = '\\';
    out[n++] = *s;
  }
  out[n++] = '"';
  out[n] = 0;
}

bool cll__gen_format(cll__gen *g, const json_t *fmt, const struct cll_grammar_opts *o) {
  if (!fmt || json_is_null(fmt) || (json_is_string(fmt) && json_string_length(fmt) == 0))
    return true;
  bool json_mode = json_is_string(fmt) && strcmp(json_string_value(fmt), "json") == 0;
  if (!json_mode && !json_is_object(fmt)) {
    char *raw = json_dumps(fmt, JSON_COMPACT | JSON_ENCODE_ANY);
    char q[300], msg[400];
    go_quote(raw ? raw : "", q, sizeof(q));
    free(raw);
    snprintf(msg, sizeof(msg),
             "invalid format: %s; expected \"json\" or a valid JSON Schema object", q);
    cll__gen_fail(g, 400, msg);
    return false;
  }
  cll_grammar_free(g->grammar);
  g->grammar = NULL;
  cll_err err = {0};
  int rc = cll_grammar_compile(fmt, o, &g->grammar, &err);
  if (rc != 0) {
    cll__gen_fail(g, rc == CLL_ENOMEM ? 500 : 400, err.msg[0] ? err.msg : cll_strerror(rc));
    return false;
  }
  return true;
}
