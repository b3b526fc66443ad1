/* outparse.h — splitting a model's output text, as it streams, into
 * thoughts, answer text and tool calls, by the formats the model's template
 * implies (OLLAMA_API.md §5.4, §5.6):
 *   - thinking between the template's tags (e.g. <think> ... </think>),
 *     whitespace after either tag trimmed, optionally starting inside the
 *     block (the prompt already opened it);
 *   - tool calls after the template's tool-call tag: Qwen 2.5/3
 *     `<tool_call>{"name":..,"arguments":..}</tool_call>`, Mistral
 *     `[TOOL_CALLS][{..},..]` (or `[TOOL_CALLS]name[ARGS]{..}`), any other
 *     tag followed by JSON; with no tag ("{"), Llama 3.x's bare JSON
 *     `{"name":..,"parameters":..}` at the start of the answer (several
 *     separated by ';' or blanks), which is also the generic fallback.
 * Text before a call is kept as text. Input may be cut anywhere (any byte
 * boundary): text that may still become a tag or a call is held back until
 * it is decided, and handed out as text if it never becomes one.
 *
 * Threads: one parser per request, on the thread that feeds it. */
#ifndef CLLAMA_API_OUTPARSE_H
#define CLLAMA_API_OUTPARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum cll__out_kind { CLL__OUT_TEXT = 0, CLL__OUT_THINKING, CLL__OUT_TOOL_CALL };

/* One piece of output. TEXT/THINKING: s[0..n) (borrowed for the call).
 * TOOL_CALL: name (borrowed) and args (a JSON object, borrowed). */
typedef void (*cll__out_fn)(void *ud, int kind, const char *s, size_t n, const char *name,
                            json_t *args);

struct cll__outp_cfg {
  const char *think_open, *think_close; /* NULL/"": no thinking separation */
  bool in_thinking;                     /* the prompt ended with think_open */
  const char *tool_tag;                 /* NULL/"": no tool parsing; "{": bare JSON */
  const json_t *tools;                  /* the request's tools (names are matched) */
};

typedef struct cll__outp cll__outp;

/* *out is new. The strings of cfg are copied; tools is borrowed and must
 * outlive the parser. Returns 0 or CLL_ENOMEM. */
int cll__outp_new(const struct cll__outp_cfg *cfg, cll__outp **out);
void cll__outp_free(cll__outp *p);
/* Feeds n bytes of output; calls fn for each piece now decided. */
void cll__outp_feed(cll__outp *p, const char *s, size_t n, cll__out_fn fn, void *ud);
/* End of output: hands out whatever is held back. */
void cll__outp_finish(cll__outp *p, cll__out_fn fn, void *ud);
/* Tool calls found so far. */
int cll__outp_n_calls(const cll__outp *p);

/* Extracts tool calls from one JSON value the way Ollama's parser does
 * ({"name", "arguments"|"parameters"} objects, arrays of them, {"function":
 * {...}}); names must be among tools when tools is non-empty. Calls fn for
 * each and returns how many were found. */
int cll__tool_calls_from_json(json_t *v, const json_t *tools, cll__out_fn fn, void *ud);

#endif
