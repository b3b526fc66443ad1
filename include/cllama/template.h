/* template.h — Ollama's prompt templates (a subset of Go's text/template)
 * and the prompt assembly rules of /api/generate and /api/chat.
 *
 * Owns: cll_template, a parsed template (immutable once parsed; any number
 * of threads may execute it at once). Rendering builds the template data
 * from the plain structs below, runs the template and returns a new string.
 *
 * The language is the subset Ollama's templates use (OLLAMA_API.md §5.2):
 * text and {{ }} actions with {{- / -}} trimming and comments (a slash-star
 * comment alone in an action);
 * pipelines with `|`, parentheses, variables ($x := / $x = / $), field
 * chains; if / else if / else, range (one or two variables, else, break,
 * continue, over lists, maps in key order, and integers), with / else;
 * the functions and, or, not, eq, ne, lt, le, gt, ge, len, index, slice,
 * print, printf, println, json, currentDate, yesterdayDate and
 * toTypeScriptType. define, template and block, and the functions html,
 * js, urlquery and call are parse errors that name the construct: a prompt
 * is never silently wrong.
 *
 * Data (Ollama's Template.Execute): the root is a map with System, Messages,
 * Tools, Prompt, Suffix, Response, Think, ThinkLevel, IsThinkSet (a missing
 * key is empty, and prints as "<no value>" as in Go). A message has Role,
 * Content, Thinking, Images, ToolCalls, ToolName, ToolCallID; a tool call
 * has ID and Function.{Index, Name, Arguments}; Arguments, a tool, the tool
 * list and Properties print as compact JSON (Go's encoding: sorted map
 * keys, <>& escaped). One deliberate difference: Ollama prints a bare
 * `.Function` of a tool in Go's struct syntax (its template-side struct
 * lost its String method); we print it as JSON, which is what templates
 * like qwen2.5's `{"type": "function", "function": {{ .Function }}}` mean.
 *
 * Threads: any; nothing blocks. Returned strings are new (free them). */
#ifndef CLLAMA_TEMPLATE_H
#define CLLAMA_TEMPLATE_H

#include "cllama/common.h"

#include <stdbool.h>
#include <stddef.h>

struct json_t; /* jansson */

typedef struct cll_template cll_template;

/* Parses len bytes of template text. *out is new. Fills err (CLL_EPARSE with
 * "template: line N: ...") on a syntax error or a construct outside the
 * subset. As Ollama does, a template that references neither .Messages nor
 * .Response gets `{{ .Response }}` appended. */
int cll_template_parse(const char *text, size_t len, cll_template **out, cll_err *err);
void cll_template_free(cll_template *t); /* NULL is a no-op */

/* The source text (borrowed). */
const char *cll_template_source(const cll_template *t);

/* Whether the template names an identifier (case-insensitive, as Ollama's
 * Template.Vars: field names and variables, e.g. "messages", "suffix",
 * "tools", "response"). Capabilities use it: insert = uses "suffix", tools =
 * uses "tools". */
bool cll_template_uses(const cll_template *t, const char *ident);

/* Ollama's tool-call tag (OLLAMA_API.md §5.4): the first text inside the
 * template's `{{ if .ToolCalls }}` block, cut before any '{' and trimmed;
 * "{" when there is none. Copies at most cap-1 bytes to buf. */
void cll_template_tool_tag(const cll_template *t, char *buf, size_t cap);

/* Ollama's thinking tags (thinking.InferTags, OLLAMA_API.md §5.6): for a
 * `.Thinking` field used inside a range over .Messages, the first and last
 * text of the enclosing list, trimmed (e.g. "<think>" and "</think>"); the
 * last such use wins. Empty strings when the template shows no thinking. */
void cll_template_think_tags(const cll_template *t, char *open, size_t open_cap, char *close,
                             size_t close_cap);

/* ---------------------------------------------------------------- data */

struct cll_tmpl_tool_call {
  const char *id;                 /* may be NULL */
  int index;                      /* function.index */
  const char *name;               /* function.name */
  const struct json_t *arguments; /* JSON object (borrowed), or NULL for {} */
};

struct cll_tmpl_message {
  const char *role;    /* lower-case: system, user, assistant, tool */
  const char *content; /* NULL = "" */
  const char *thinking;
  size_t n_images; /* .Images has this many (empty) entries */
  const struct cll_tmpl_tool_call *tool_calls;
  size_t n_tool_calls;
  const char *tool_name;
  const char *tool_call_id;
};

struct cll_tmpl_values {
  const struct cll_tmpl_message *messages; /* borrowed */
  size_t n_messages;
  const struct json_t *tools; /* request "tools" (JSON array, borrowed) or NULL */
  const char *prompt;         /* generate with suffix only */
  const char *suffix;
  bool think;
  const char *think_level; /* "" / NULL when unset; "medium" for think:true */
  bool is_think_set;
};

/* Builds the message array from a request's "messages" (a JSON array of
 * {role, content, thinking, images, tool_calls, tool_name, tool_call_id}).
 * Roles are lower-cased (as Ollama's decoder does); every other string and
 * each tool call's arguments are borrowed from messages, which must outlive
 * the result. *out is new: one block, release it with free(). CLL_EINVAL
 * with err filled when an element or field has the wrong JSON type. */
int cll_tmpl_messages_from_json(const struct json_t *messages, struct cll_tmpl_message **out,
                                size_t *n, cll_err *err);

/* Renders v the way Ollama's Template.Execute does:
 *  - prompt and suffix both non-empty: suffix mode, data {Prompt, Suffix,
 *    Response "", Think, ThinkLevel, IsThinkSet};
 *  - the template uses .Messages: messages are collated (consecutive
 *    same-role messages except tool merged with "\n\n"; System = all system
 *    contents joined with "\n\n") and the template runs once;
 *  - otherwise legacy mode: each (system?, user, assistant) turn is rendered
 *    with .System/.Prompt/.Response, and the last, open turn with the
 *    template cut after its first {{ .Response }}.
 * *out is new (NUL-terminated), *out_len its length (out_len may be NULL).
 * CLL_EINVAL with err filled on an execution error (as Go's: a field that a
 * type lacks, a bad index, a comparison of incompatible values). */
int cll_template_execute(const cll_template *t, const struct cll_tmpl_values *v, char **out,
                         size_t *out_len, cll_err *err);

/* ------------------------------------------------ prompt assembly (§5.3/5.4) */

/* Counts the tokens of a rendered prompt (the tokenizer, supplied by the
 * caller); returns the count or a negative CLL_E* code. */
typedef int (*cll_token_count_fn)(void *ud, const char *text, size_t len);

/* Options of cll_chat_prompt. Fill with cll_chat_prompt_opts_defaults. */
struct cll_chat_prompt_opts {
  bool truncate;            /* drop the oldest messages until the prompt fits */
  int num_ctx;              /* context length the prompt must fit in */
  int image_tokens;         /* tokens counted per image when truncating (0: none;
                               Ollama counts 768 for models with a projector) */
  cll_token_count_fn count; /* required when truncate */
  void *count_ud;
};
void cll_chat_prompt_opts_defaults(struct cll_chat_prompt_opts *o);

/* /api/chat (and /api/generate without a template override): renders
 * v->messages with t as Ollama's chatPrompt does. With truncation, the
 * first i messages are dropped for the smallest i whose render (with the
 * dropped system messages kept in front) fits num_ctx, never dropping the
 * last message. Images get markers: each image of the kept messages is
 * numbered across the request ([img-0], [img-1], ...); a "[img]" in the
 * content is replaced by the next marker, otherwise the markers are
 * prefixed to the content (numbering starts at the first kept message).
 * *first_kept (may be NULL) gets the index of the first request message
 * rendered (system messages before it are still rendered). *out is new. */
int cll_chat_prompt(const cll_template *t, const struct cll_tmpl_values *v,
                    const struct cll_chat_prompt_opts *o, char **out, size_t *out_len,
                    size_t *first_kept, cll_err *err);

/* What /api/generate renders from (not raw mode: a raw prompt is sent as
 * given). All strings borrowed; NULL reads as "". */
struct cll_generate_input {
  const char *prompt;                            /* request prompt */
  const char *suffix;                            /* request suffix (fill-in-the-middle) */
  const char *system;                            /* request system; overrides model_system */
  const char *model_system;                      /* the model's SYSTEM layer */
  const struct cll_tmpl_message *model_messages; /* MESSAGE layer, added when !has_context */
  size_t n_model_messages;
  bool has_context;         /* the request carried `context` ... */
  const char *context_text; /* ... detokenized; prepended to the rendered prompt */
  size_t n_images;          /* images of the request, attached to the user message */
  bool template_override;   /* t came from the request's `template` */
  bool think;
  const char *think_level;
  bool is_think_set;
};

/* /api/generate (OLLAMA_API.md §5.3): with a suffix, t runs in suffix mode;
 * otherwise the messages [system or model system] + [model messages unless
 * context] + [user: prompt, images] are rendered, through cll_chat_prompt
 * (truncation, image markers) when t is the model's template, or by
 * executing t directly when it is the request's override. The detokenized
 * context is prepended. *out is new. */
int cll_generate_prompt(const cll_template *t, const struct cll_generate_input *in,
                        const struct cll_chat_prompt_opts *o, char **out, size_t *out_len,
                        cll_err *err);

/* ---------------------------------------------------- built-in templates */

/* Ollama's prompt-format names for a GGUF tokenizer.chat_template (Jinja):
 * returns the name of the matching built-in format ("chatml",
 * "llama3-instruct", ...) or NULL when none matches. Known Jinja templates
 * are recognised exactly (by hash); others by the markers they use. */
const char *cll_template_name_for_chat_template(const char *jinja);

/* The Go template text of a built-in format (borrowed, static), or NULL. */
const char *cll_template_builtin(const char *name);

/* The stop strings of a built-in format (Ollama's <name>.json "stop"): sets
 * *stops to a static array and returns its length (0 for an unknown name). */
size_t cll_template_builtin_stops(const char *name, const char *const **stops);

/* A model without a template layer: the built-in for its GGUF chat template
 * when one matches, else "{{ .Prompt }}". Never NULL; borrowed, static. */
const char *cll_template_for_chat_template(const char *jinja);

#endif
