/* tmpl.h — the API layer's parsed prompt templates: each distinct template
 * text (a model's TEMPLATE layer, or the built-in one for its GGUF) is
 * parsed once and shared by every request, capability check and render
 * that uses it, instead of once per request.
 *
 * Threads: any (a mutex guards the cache; renders run on work items while
 * the loop thread checks capabilities). A reference is held from
 * cll__tmpl_get until cll__tmpl_put; the template is immutable meanwhile. */
#ifndef CLLAMA_API_TMPL_H
#define CLLAMA_API_TMPL_H

#include "cllama/common.h"
#include "cllama/template.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cll__tmpl cll__tmpl;

/* The parsed template of text (NULL: Ollama's default "{{ .Prompt }}").
 * *out is a new reference (release with cll__tmpl_put). A parse error is
 * CLL_EINVAL with "template error: ..." in err. */
int cll__tmpl_get(const char *text, cll__tmpl **out, cll_err *err);
void cll__tmpl_put(cll__tmpl *t); /* NULL is a no-op */
/* The template (borrowed for as long as the reference is held). */
const cll_template *cll__tmpl_t(const cll__tmpl *t);

/* What a template says about the model (Ollama's Model.Capabilities):
 * tools (uses .Tools), insert (uses .Suffix), thinking (thinking tags can
 * be inferred), and the tags of its tool calls and thoughts. */
struct cll__tmpl_caps {
  bool tools, insert, thinking;
  char tool_tag[64];                    /* e.g. "<tool_call>", "[TOOL_CALLS]", "{" */
  char think_open[32], think_close[32]; /* e.g. "<think>", "</think>" */
};
const struct cll__tmpl_caps *cll__tmpl_caps(const cll__tmpl *t);

/* Checks that text parses (create); fills err with "template error: ...". */
int cll__template_check(const char *text, cll_err *err);
/* Whether the template of text references .<field> (case-insensitive):
 * "Tools", "Suffix"; "Thinking" answers the thinking capability. */
bool cll__template_has(const char *text, const char *field);

#endif
