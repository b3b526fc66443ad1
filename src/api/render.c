/* render.c — prompt assembly (see render.h). Until the Go-template engine
 * (include/cllama/template.h) is merged, only Ollama's default template
 * "{{ .Prompt }}" is rendered; any other template is refused with a clear
 * error instead of being guessed at. */
#include "render.h"

#include <stdlib.h>
#include <string.h>

void cll__msgs_free(struct cll__msg *msgs, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(msgs[i].role);
    free(msgs[i].content);
  }
  free(msgs);
}

static bool is_default(const char *tmpl) {
  if (!tmpl)
    return true;
  while (*tmpl == ' ' || *tmpl == '\n')
    tmpl++;
  return strncmp(tmpl, "{{ .Prompt }}", 13) == 0 && tmpl[13 + strspn(tmpl + 13, " \n")] == 0;
}

int cll__render_messages(const char *tmpl, const struct cll__msg *msgs, size_t n, char **out,
                         cll_err *err) {
  if (!is_default(tmpl))
    return cll_err_set(err, CLL_EUNSUPPORTED, "template error: templates are not supported yet");
  /* Legacy mode with {{ .Prompt }}: the last user message is the prompt. */
  const char *prompt = "";
  for (size_t i = 0; i < n; i++)
    if (strcmp(msgs[i].role, "user") == 0)
      prompt = msgs[i].content;
  *out = strdup(prompt);
  return *out ? 0 : cll_err_set(err, CLL_ENOMEM, "out of memory");
}

int cll__render_suffix(const char *tmpl, const char *prompt, const char *suffix, char **out,
                       cll_err *err) {
  return cll_err_set(err, CLL_EUNSUPPORTED, "template error: templates are not supported yet");
}

int cll__template_check(const char *tmpl, cll_err *err) { return 0; }

bool cll__template_has(const char *tmpl, const char *field) {
  if (!tmpl)
    return false;
  char pat[64];
  pat[0] = '.';
  strncpy(pat + 1, field, sizeof(pat) - 2);
  pat[sizeof(pat) - 1] = 0;
  return strstr(tmpl, pat) != NULL;
}
