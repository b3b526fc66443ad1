/* curl_uv.h — libcurl's multi *socket* interface driven by a libuv loop.
 *
 * Owns one CURLM handle, one uv_timer and one uv_poll per socket libcurl
 * opens. Transfers run entirely on the loop thread: there is no network
 * thread and nothing here blocks (name resolution uses libcurl's threaded
 * resolver, which libcurl owns and reports through a socket like any other).
 *
 * Thread: every function must be called on the loop thread.
 * Ownership: the caller creates and owns each CURL easy handle; adding it
 * lends it to the multi until its done callback runs or cll_curl_uv_remove
 * returns. After that the caller may reuse or curl_easy_cleanup it.
 * Callbacks: if cll_curl_uv_add returns an error, `done` never runs;
 * otherwise it runs exactly once, unless the caller removes the transfer
 * first (then it never runs). */
#ifndef CLLAMA_CURL_UV_H
#define CLLAMA_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

typedef struct cll_curl_uv cll_curl_uv;

/* Called on the loop thread when a transfer ends; `result` is libcurl's code
 * (CURLE_OK includes HTTP error statuses: read CURLINFO_RESPONSE_CODE). The
 * easy handle is already out of the multi, so the callback may re-add it. */
typedef void (*cll_curl_done_fn)(CURL *easy, CURLcode result, void *arg);

/* Creates the glue on `loop`. *out is new; free it with cll_curl_uv_close.
 * Calls curl_global_init once per process (on first use). */
int cll_curl_uv_new(uv_loop_t *loop, cll_curl_uv **out);

/* Starts `easy`. Returns 0, or CLL_EINVAL / CLL_ENOMEM. */
int cll_curl_uv_add(cll_curl_uv *cu, CURL *easy, cll_curl_done_fn done, void *arg);

/* Stops `easy` if it is running; its done callback will not run. */
void cll_curl_uv_remove(cll_curl_uv *cu, CURL *easy);

/* Resumes a transfer whose write callback returned CURL_WRITEFUNC_PAUSE.
 * Must not be called from inside one of that transfer's callbacks. */
void cll_curl_uv_unpause(cll_curl_uv *cu, CURL *easy);

/* Number of transfers currently added. */
int cll_curl_uv_active(const cll_curl_uv *cu);

/* Removes every transfer (no done callbacks), closes the libuv handles and
 * frees `cu` once they are closed; the loop must keep running until then.
 * NULL is a no-op. */
void cll_curl_uv_close(cll_curl_uv *cu);

#endif
