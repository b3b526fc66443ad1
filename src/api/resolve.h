/* resolve.h — a request's model name resolved against the store (see
 * resolve.c). Loop thread; reads only the manifest and its small layers. */
#ifndef CLLAMA_API_RESOLVE_H
#define CLLAMA_API_RESOLVE_H

#include "cllama/server.h"
#include "cllama/store.h"

#include <jansson.h>

struct cll__model_ref {
  cll_name name;         /* on-disk spelling */
  char display[512];     /* "llama3.2:latest" */
  char full[512];        /* "registry.ollama.ai/library/llama3.2:latest" */
  cll_manifest *man;     /* owned */
  char model_path[4096]; /* the GGUF blob */
  char *template_text;   /* owned, NULL when the model has none */
  char *system_text;     /* owned or NULL */
  char *license;         /* owned or NULL (layers joined with "\n") */
  json_t *params;        /* owned or NULL: the params layer */
  json_t *messages;      /* owned or NULL: the messages layer */
};

/* 0, CLL_EINVAL ("invalid model name"), CLL_ENOENT ("model 'x' not found"),
 * or the store's error. out is zeroed first and must be freed with
 * cll__model_ref_free in every case. */
int cll__model_resolve(const cll_store *st, const char *name, struct cll__model_ref *out,
                       cll_err *err);
void cll__model_ref_free(struct cll__model_ref *r);

/* Answers a request whose model failed to resolve with rc: 400 "invalid
 * model name", 404 "model '<ref->display>' not found" (the name as the
 * store spells it, e.g. "x:latest"), or 500 with err's message. */
void cll__model_resolve_answer(cll_request *req, int rc, const struct cll__model_ref *ref,
                               const cll_err *err);

#endif
