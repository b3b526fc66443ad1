/* push.h — uploads a model from the store to a registry with Ollama's
 * protocol (OLLAMA_API.md §1.12, the OCI distribution upload flow):
 *
 *   for the config blob and every layer:
 *     HEAD /v2/<ns>/<model>/blobs/<digest>       200: already there, skipped
 *     POST /v2/<ns>/<model>/blobs/uploads/       202 + Location
 *     small blob: PUT <location>?digest=<digest> with the bytes (monolithic)
 *     large blob: PATCH <location> per part (Content-Range: start-end,
 *                 X-Redirect-Uploads: 1), each answer giving the next
 *                 Location (Docker-Upload-Location first); a 307 instead
 *                 sends the part with a PUT to its Location (object
 *                 storage, without the registry's token); then
 *                 PUT <location>?digest=<digest>&etag=<md5 of the part md5s>-<parts>
 *   PUT /v2/<ns>/<model>/manifests/<tag>         last, once every blob is there
 *
 * with Ollama's progress statuses ("retrieving manifest", "pushing <12 hex>"
 * with total/completed, "pushing manifest", "success"). A failed request
 * (network error, 5xx, 408, 429) is retried with a doubling back-off; a 401
 * with a Bearer challenge gets a token (Ollama's signed flow when the realm
 * is on the registry host, else the anonymous one) and is sent again. The
 * blobs are pinned in the store while they are read.
 *
 * Threads: everything runs on the registry's loop thread; the requests go
 * through the registry's libcurl multi (curl_uv.h) like a pull's. Blob bytes
 * are read from the store file by uv work items into two buffers a part at
 * a time, so the loop never reads a file and never holds a whole blob:
 * libcurl's read callback pauses the upload until the next buffer is read. */
#ifndef CLLAMA_PUSH_H
#define CLLAMA_PUSH_H

#include "cllama/registry.h"

typedef struct cll_push cll_push;

/* Starts pushing the local model name (its manifest in the registry's
 * store) to the registry its name points to. fn gets every event on the
 * loop thread, the first ones possibly before this returns, the last one
 * with done set; then the push frees itself and fn never runs again.
 * Options from the registry's: key_dir, user_agent, max_retries,
 * retry_base_ms, progress_ms, push_part_bytes (the part size of a chunked
 * upload; blobs up to that size go in one PUT). Returns 0 and *out (valid
 * until the done event or cancel), or an error (fn never runs). */
int cll_registry_push(cll_registry *reg, const cll_name *name, bool insecure, cll_pull_event_fn fn,
                      void *arg, cll_push **out, cll_err *err);

/* Stops a push (its client went away): fn never runs again; its transfers
 * are aborted and everything is freed on the loop shortly after. */
void cll_registry_push_cancel(cll_push *p);

#endif
