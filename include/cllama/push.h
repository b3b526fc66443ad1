/* push.h — uploads a model from the store to a registry with Ollama's
 * protocol (OLLAMA_API.md §1.12, the OCI distribution upload flow):
 *
 *   for the config blob and every layer:
 *     HEAD /v2/<ns>/<model>/blobs/<digest>       200: already there, skipped
 *     POST /v2/<ns>/<model>/blobs/uploads/       202 + Location
 *     small blob: PUT <location>?digest=<digest> with the bytes (monolithic)
 *     large blob: PATCH <location> per part (Content-Range: start-end), each
 *                 answer giving the next Location, then PUT ?digest= empty
 *   PUT /v2/<ns>/<model>/manifests/<tag>         last, once every blob is there
 *
 * with Ollama's progress statuses ("retrieving manifest", "pushing <12 hex>"
 * with total/completed, "pushing manifest", "success"). A failed request
 * (network error, 5xx, 408, 429) is retried with a doubling back-off; a 401
 * with a Bearer challenge gets a token (Ollama's signed flow when the realm
 * is on the registry host, else the anonymous one) and is sent again. The
 * blobs are pinned in the store while they are read.
 *
 * Threads: a push runs on a thread of its own with blocking libcurl calls
 * (it reads multi-gigabyte files), so the loop never waits on it; events are
 * delivered on the loop thread given to cll_registry_push. */
#ifndef CLLAMA_PUSH_H
#define CLLAMA_PUSH_H

#include "cllama/registry.h"

typedef struct cll_push cll_push;

/* Starts pushing the local model name (its manifest in st) to the registry
 * its name points to. fn gets every event on the loop thread, the last one
 * with done set; then the push frees itself and fn never runs again.
 * Options: opts' key_dir, user_agent, max_retries, retry_base_ms, and
 * CLLAMA_PUSH_PART_BYTES (part size of a chunked upload; blobs up to that
 * size go in one PUT; default 100 MB). Returns 0 and *out (valid until the
 * done event or cancel), or an error (fn never runs). */
int cll_registry_push(uv_loop_t *loop, cll_store *st, const cll_registry_opts *opts,
                      const cll_name *name, bool insecure, cll_pull_event_fn fn, void *arg,
                      cll_push **out, cll_err *err);

/* Stops a push (its client went away): fn never runs again; the thread
 * stops at its next transfer step and everything is freed after it. */
void cll_registry_push_cancel(cll_push *p);

#endif
