/* api.h — the Ollama HTTP API: one file per endpoint family in src/api/,
 * each with a cll_api_<family>_register() called from src/api/routes.c,
 * plus the helpers every handler shares (JSON bodies, {"error": ...}
 * answers, the CLL_E* -> HTTP status table).
 *
 * Threads: loop thread only (handlers run there). Nothing here blocks
 * except the small store reads documented in store.h. */
#ifndef CLLAMA_API_H
#define CLLAMA_API_H

#include "cllama/common.h"
#include "cllama/config.h"
#include "cllama/runners.h"
#include "cllama/server.h"
#include "cllama/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

/* What the handlers share; owned by `cllama serve`, borrowed by handlers
 * (reach it with cll_api_from(req)). Modules add their own fields here
 * (e.g. the engine) as they arrive. */
typedef struct cll_api {
  uv_loop_t *loop;
  cll_server *server;
  cll_store *store;
  const cll_config *cfg;
  struct cll_registry *registry; /* pulls; created by cll_api_pull_register */
  cll_runners *runners;          /* loaded models (generation endpoints) */
} cll_api;

/* The cll_api a request's server was registered with (borrowed). */
cll_api *cll_api_from(const cll_request *req);

/* Registers every route of every family (src/api/routes.c). Also sets the
 * server's data pointer to api. */
int cll_api_register_all(cll_api *api);

/* One endpoint of a family, for its cll_api_<family>_register: a stream
 * route gets its body piece by piece (cll_server_route_stream). */
struct cll_api_route {
  const char *method, *path;
  cll_handler_fn fn;
  bool stream;
};
/* Registers the n routes of table, each with api as its ud. 0 or the
 * first error. */
int cll_api_routes(cll_api *api, const struct cll_api_route *table, size_t n);
#define CLL_API_ROUTES(api, table) cll_api_routes((api), (table), CLL_ARRAY_LEN(table))

/* One per endpoint family. */
int cll_api_models_register(cll_api *api); /* /, /api/version, tags, copy, delete */
int cll_api_pull_register(cll_api *api);   /* /api/pull (creates api->registry) */

/* Releases what the families hold (e.g. the registry's transfers) once the
 * server has closed, so the loop can end (src/api/routes.c). */
void cll_api_close_all(cll_api *api);
void cll_api_pull_close(cll_api *api);
int cll_api_generate_register(cll_api *api); /* /api/generate, /api/chat */
int cll_api_embed_register(cll_api *api);    /* /api/embed, /api/embeddings */
int cll_api_rerank_register(cll_api *api);   /* /api/rerank, /v1/rerank */
int cll_api_ps_register(cll_api *api);       /* /api/ps */
int cll_api_show_register(cll_api *api);     /* /api/show */
int cll_api_create_register(cll_api *api);   /* /api/create, /api/blobs/:digest */
int cll_api_openai_register(
    cll_api *api); /* /v1/chat/completions, completions, embeddings, models */
int cll_api_anthropic_register(cll_api *api); /* /v1/messages (Anthropic Messages API) */
int cll_api_metrics_register(cll_api *api);   /* /metrics, /api/ready (src/api/metrics.c) */
int cll_api_tokenize_register(cll_api *api);  /* /api/tokenize, /api/detokenize */
int cll_api_push_register(cll_api *api);      /* /api/push (src/api/push.c) */

/* Parses a Modelfile into the body of a POST /api/create request (without
 * "model"). Relative FROM paths are resolved against base_dir, a leading
 * "~" against home (the client configuration's HOME; NULL: "~" is not expanded). *out is
 * new. CLL_EPARSE/CLL_EINVAL/CLL_ENOENT with err naming the line. Any
 * thread; reads no environment. */
int cll_modelfile_parse(const char *text, const char *base_dir, const char *home, json_t **out,
                        cll_err *err);

/* The runners' parameters from the configuration (OLLAMA_NUM_PARALLEL,
 * OLLAMA_MAX_LOADED_MODELS, OLLAMA_MAX_QUEUE, OLLAMA_KEEP_ALIVE,
 * OLLAMA_CONTEXT_LENGTH) with the API layer's load hook (tokenizer). */
struct cll_runners_params cll_api_runners_params(const cll_config *cfg);

/* The version reported by GET /api/version: a plausible recent Ollama
 * version, because clients compare it. */
#define CLL_API_OLLAMA_VERSION "0.12.0"

/* The HTTP status for a CLL_E* code (404 for CLL_ENOENT, 400 for
 * CLL_EINVAL/CLL_EPARSE, 503 for CLL_EFULL, ...; 500 otherwise). */
int cll_api_status(int code);

/* Answers {"error": msg} with this status (Content-Type application/json;
 * charset=utf-8) and ends the request. */
void cll_api_error(cll_request *req, int status, const char *msg);
/* msg without the model store's absolute path (into out when changed). */
const char *cll__api_scrub(cll_request *req, const char *msg, char *out, size_t cap);
void cll_api_errorf(cll_request *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers with a JSON value (stolen: decref'ed here) and ends the request. */
void cll_api_json(cll_request *req, int status, json_t *body);

/* Parses the request body as a JSON object whatever its Content-Type. On
 * success returns a new reference. On failure it has already answered 400
 * ("missing request body", or the parser's message) and returns NULL. */
json_t *cll_api_body_object(cll_request *req);

/* Reads an optional string field: NULL when absent or null; answers 400
 * and sets *failed when it has another type. Borrowed from obj. */
const char *cll_api_opt_string(cll_request *req, json_t *obj, const char *key, bool *failed);

/* How a handler that names a model starts: the body as cll_api_body_object
 * and its "model" string, or when that is absent or empty the alias key's
 * (Ollama's deprecated "name"; NULL: none). *model is borrowed from the
 * body, NULL when absent or null. Returns the body (new), or NULL when it
 * has answered: no body, not an object, or the name not a string.
 * missing_status says what an absent or empty name is: 0 the caller's to
 * check, 400 "model is required", 404 "model '' not found" (Ollama's
 * answer where it looks the empty name up). */
json_t *cll_api_body_model(cll_request *req, const char *alias, int missing_status,
                           const char **model);

/* The "stream" field: absent or null -> cfg->stream_default; true/false as
 * given; another type answers 400 and returns -1. */
int cll_api_stream_flag(cll_request *req, json_t *obj);

/* Writes an RFC 3339 UTC timestamp with nanoseconds ("2023-08-04T19:22:45.499127Z"). */
void cll_api_time_rfc3339(int64_t ns_since_epoch, char *buf, size_t size);

#endif
