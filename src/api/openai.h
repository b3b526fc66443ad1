/* openai.h — what the OpenAI-compatible endpoints share (openai.c and
 * responses.c): OpenAI's error shape, request body checks, and the mapping
 * of sampling fields and reasoning effort onto a native request.
 *
 * Threads: loop thread only. */
#ifndef CLLAMA_API_OPENAI_H
#define CLLAMA_API_OPENAI_H

#include "cllama/api.h"

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
/* Type of an optional field ('s','n','i','b','o','a'); false after a 400. */
bool cll__oai_check_field(cll_request *req, json_t *obj, const char *st, const char *key, char t,
                          const char *gotype);
/* stop, temperature, top_p, seed, penalties, max_tokens -> native options
 * (new), or NULL after a 400. */
json_t *cll__oai_map_options(cll_request *req, json_t *b, const char *st, bool chat);
/* reasoning_effort / reasoning.effort -> native think; false after a 400. */
bool cll__oai_map_think(cll_request *req, json_t *b, json_t *native);

/* POST /v1/responses (responses.c). */
void cll__on_responses(cll_request *req, void *ud);

#endif
