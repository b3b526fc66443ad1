/* render.c — prompt assembly (see render.h) over the Go-template engine
 * (include/cllama/template.h). A model without a TEMPLATE layer uses
 * Ollama's default "{{ .Prompt }}". Templates are small: they are parsed
 * per request, on the prepare work item. */
#include "render.h"

#include "cllama/template.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char default_template[] = "{{ .Prompt }}";

void cll__msgs_free(struct cll__msg *msgs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(msgs[i].role);
    free(msgs[i].content);
  }
  free(msgs);
}

static int parse(const char *tmpl, cll_template **t, cll_err *err) {
  if (!tmpl)
    tmpl = default_template;
  int rc = cll_template_parse(tmpl, strlen(tmpl), t, err);
  if (rc != 0 && err && strncmp(err->msg, "template error", 14) != 0) {
    char m[sizeof(err->msg)];
    snprintf(m, sizeof(m), "%s", err->msg);
    cll_err_set(err, CLL_EINVAL, "template error: %s", m);
  }
  return rc != 0 ? CLL_EINVAL : 0;
}

int cll__render_messages(const char *tmpl, const struct cll__msg *msgs, size_t n, char **out,
                         cll_err *err) {
  cll_template *t = NULL;
  int rc = parse(tmpl, &t, err);
  if (rc != 0)
    return rc;
  struct cll_tmpl_message *tm = calloc(n ? n : 1, sizeof(*tm));
  if (!tm) {
    cll_template_free(t);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < n; i++) {
    tm[i].role = msgs[i].role;
    tm[i].content = msgs[i].content;
  }
  struct cll_tmpl_values v = {0};
  v.messages = tm;
  v.n_messages = n;
  rc = cll_template_execute(t, &v, out, NULL, err);
  free(tm);
  cll_template_free(t);
  return rc;
}

int cll__render_suffix(const char *tmpl, const char *prompt, const char *suffix, char **out,
                       cll_err *err) {
  cll_template *t = NULL;
  int rc = parse(tmpl, &t, err);
  if (rc != 0)
    return rc;
  struct cll_tmpl_values v = {0};
  v.prompt = prompt;
  v.suffix = suffix;
  rc = cll_template_execute(t, &v, out, NULL, err);
  cll_template_free(t);
  return rc;
}

int cll__template_check(const char *tmpl, cll_err *err) {
  cll_template *t = NULL;
  int rc = parse(tmpl, &t, err);
  cll_template_free(t);
  return rc;
}

bool cll__template_has(const char *tmpl, const char *field) {
  cll_template *t = NULL;
  if (!tmpl || parse(tmpl, &t, NULL) != 0)
    return false;
  char low[64];
  size_t i = 0;
  for (; field[i] && i < sizeof(low) - 1; i++)
    low[i] = (char)tolower((unsigned char)field[i]);
  low[i] = 0;
  bool r = cll_template_uses(t, low);
  cll_template_free(t);
  return r;
}
