/* openai.h — what the OpenAI-compatible endpoints share (openai.c,
 * openai_common.c, openai_models.c and responses.c): OpenAI's error shape,
 * request body checks, the mapping of sampling fields and reasoning effort
 * onto a native request, and the per-request state of openai.c's
 * translations.
 *
 * Threads: loop thread only. */
#ifndef CLLAMA_API_OPENAI_H
#define CLLAMA_API_OPENAI_H

#include "cllama/api.h"
#include "gen_core.h"

#include <jansson.h>
#include <stdbool.h>

/* {"error":{"message","type","param":null,"code":null}}. New. */
json_t *cll__oai_error_object(int status, const char *msg);
/* Answers with v (stolen) as application/json and a trailing newline, as
 * Go's json.Encoder writes it; oom is the body when v cannot be encoded. */
void cll__respond_json_nl(cll_request *req, int status, json_t *v, const char *oom);
/* The same with OpenAI's out-of-memory error. */
void cll__oai_respond_json(cll_request *req, int status, json_t *v);
void cll__oai_error(cll_request *req, int status, const char *msg);
/* The body as a JSON object (new), or NULL after answering 400; st names
 * the Go struct in decoder messages. */
json_t *cll__oai_body_object(cll_request *req, const char *st);
/* n_bytes (at most 32) random bytes as 2 * n_bytes lowercase hex digits
 * and a NUL into out: the random part of "msg_…", "resp_…" and "req_…" ids. */
void cll__random_hex(char *out, size_t n_bytes);
/* Type of an optional field ('s','n','i','b','o','a'); false after a 400. */
bool cll__oai_check_field(cll_request *req, json_t *obj, const char *st, const char *key, char t,
                          const char *gotype);
/* A field a request may give, of one JSON type. */
struct cll__oai_field {
  const char *key;
  char type;           /* as cll__oai_check_field */
  const char *go_type; /* for the message */
};
/* cll__oai_check_field over fields (ending with a NULL key), in order. */
bool cll__oai_check_fields(cll_request *req, json_t *obj, const char *st,
                           const struct cll__oai_field *fields);
/* stop, temperature, top_p, seed, penalties, max_tokens -> native options
 * (new), or NULL after a 400. */
json_t *cll__oai_map_options(cll_request *req, json_t *b, const char *st, bool chat);
/* reasoning_effort / reasoning.effort -> native think; false after a 400. */
bool cll__oai_map_think(cll_request *req, json_t *b, json_t *native);

/* cll__oai_error with a printf format. */
void cll__oai_errorf(cll_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Go's name for the type a JSON value decodes to into an `any`. */
const char *cll__oai_go_any_type(const json_t *v);
/* The JSON kind as Go's decoder names it in "cannot unmarshal X into". */
const char *cll__oai_json_kind(const json_t *v);

/* ---- openai.c: the state of one translated request (chat, completion,
 * embeddings, models), freed by the filter's terminal callback. */
enum oai_kind { K_CHAT, K_COMPLETION, K_EMBED, K_LIST, K_RETRIEVE };

struct oai {
  int kind;
  bool stream;        /* the client asked for SSE */
  bool include_usage; /* stream_options.include_usage */
  bool base64;        /* embeddings: encoding_format "base64" */
  char id[32];        /* "chatcmpl-N" / "cmpl-N" */
  int64_t created;    /* unix seconds, the same in every chunk */
  char *model;        /* the model as the client named it */
  bool sse_started, role_sent, saw_tool_calls;
  struct cll__sink sink; /* where the native generation sends its events */
  char *error;           /* a native {"error"} line inside a stream */
  /* Non-stream: the answer gathered over the native objects. */
  json_t *text;       /* string: content / response */
  json_t *reasoning;  /* string: thinking */
  json_t *tool_calls; /* array of OpenAI tool calls */
  char done_reason[32];
  int64_t prompt_tokens, completion_tokens;
};
/* New, with a fresh id and created time; NULL when out of memory. */
struct oai *cll__oai_new(int kind, const char *model);
void cll__oai_free(struct oai *o);
/* The native error body {"error": msg} (or plain text) as OpenAI's. */
void cll__oai_forward_error(cll_request *req, int status, const void *body, size_t len);
/* Runs the native route with body (stolen) through filter f with state o;
 * frees o and answers 500 if it cannot. */
void cll__oai_forward(cll_request *req, const char *method, const char *path, json_t *body,
                      const cll_filter *f, struct oai *o);

/* openai_models.c: POST /v1/embeddings, GET /v1/models,
 * GET /v1/models/:model. */
void cll__oai_on_embeddings(cll_request *req, void *ud);
void cll__oai_on_list(cll_request *req, void *ud);
void cll__oai_on_retrieve(cll_request *req, void *ud);

/* POST /v1/responses (responses.c). */
void cll__on_responses(cll_request *req, void *ud);

#endif
