/* capabilities.h — what a model can do, as Ollama reports it in /api/show
 * and /api/tags ("completion" or "embedding", "tools", "insert",
 * "thinking"), and the GGUF facts /api/tags shows in its details. Defined in
 * src/api/show.c. Any thread (plain reads of the GGUF and the template). */
#ifndef CLLAMA_API_CAPABILITIES_H
#define CLLAMA_API_CAPABILITIES_H

#include "cllama/gguf.h"

#include <jansson.h>
#include <stdint.h>

/* A new array of capability names. template_text may be NULL. */
json_t *cll__capabilities(const cll_gguf *g, const char *template_text);

/* {arch}.context_length and {arch}.embedding_length (0 when absent). */
void cll__gguf_lengths(const cll_gguf *g, int64_t *context_length, int64_t *embedding_length);

/* The parameter count: the elements of every tensor (general.parameter_count
 * in /api/show, the "8B" of a created model's details). */
uint64_t cll__gguf_n_params(const cll_gguf *g);

#endif
