/* pull_internal.h — what the pull's three parts share (include only from
 * src/registry): reg_req.c (one authenticated registry request: the 401
 * challenge, a token, one retry), pull_blob.c (the download of one blob:
 * prepare, find the host, ranged parts, hash, commit) and pull.c (jobs:
 * one pull of one name with its waiters, and the registry object); push.c
 * (uploads) runs on the same registry object and requests. */
#ifndef CLLAMA_PULL_INTERNAL_H
#define CLLAMA_PULL_INTERNAL_H

#include "registry_internal.h"

#include "cllama/curl_uv.h"
#include "cllama/version.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_ACCEPT "application/vnd.docker.distribution.manifest.v2+json"
#define MANIFEST_MAX_BYTES (4 << 20)
#define STATE_BYTES 128 /* a part state file: JSON padded with spaces */
#define TICK_MS 100
#define TURN_BUDGET_BYTES (128 * 1024)
#define DIRECT_DEADLINE_MS 30000

struct cll_registry {
  uv_loop_t *loop;
  cll_store *store;
  cll_registry_opts opts;
  cll_curl_uv *cu;
  struct job *jobs;
  struct blob *blobs;
  int n_jobs, n_blobs;
  int n_work; /* signing work items still queued (they reference reg) */
  /* Fairness: a part that took turn_budget_bytes in one go is paused until
   * the next loop iteration (libcurl would otherwise drain a fast socket
   * for many megabytes inside one callback and delay every other client). */
  uv_prepare_t turn;
  struct part **fair; /* parts paused for fairness */
  int n_fair, cap_fair;
  struct cll_push *pushes; /* pushes running (push.c) */
  int n_pushes;            /* pushes not yet freed */
  bool closing;
};

static inline uint64_t now_ms(cll_registry *reg) {
  return uv_now(reg->loop);
}

/* The store wants "sha256:<hex>"; we keep bare hex. */
static inline const char *dg(const char *hex, char buf[80]) {
  snprintf(buf, 80, "sha256:%s", hex);
  return buf;
}

static inline char *xstrdup(const char *s) {
  return s ? strdup(s) : NULL;
}

/* ------------------------------------------------------------ requests */

struct hreq;
typedef void (*hreq_done_fn)(struct hreq *r, void *arg);

enum { PHASE_MAIN, PHASE_SIGN, PHASE_TOKEN };

struct hreq {
  cll_registry *reg;
  CURL *easy;
  struct curl_slist *hdrs;
  char *url;      /* the request URL */
  bool head;      /* HEAD instead of GET */
  bool follow;    /* follow redirects (any host) */
  bool keep_body; /* keep up to MANIFEST_MAX_BYTES; else stop at the first body byte */
  const char *accept;
  char *token; /* Bearer token, owned; may come from the caller */
  int phase;
  bool auth_tried, body_cut, work_pending, cancelled;
  char *body;
  size_t body_len, body_cap;
  char *location, *www_auth;
  char *upload_location; /* Docker-Upload-Location (an upload's next URL) */
  /* A request with a method and a body (the push): method NULL is GET, or
   * HEAD with head. The body is send_mem (send_len bytes, borrowed), or
   * send_size bytes from send_read (CURLOPT_READFUNCTION with send_arg,
   * which may pause; on_send runs before each attempt to rewind it), or
   * empty. extra: more header lines (borrowed, NULL-terminated). progress
   * is a CURLOPT_XFERINFOFUNCTION with send_arg. */
  const char *method;
  const char *const *extra;
  const char *send_mem;
  size_t send_len;
  curl_read_callback send_read;
  void (*on_send)(struct hreq *r);
  curl_xferinfo_callback progress;
  void *send_arg;
  int64_t send_size;
  long status;
  CURLcode result;
  int64_t content_length;
  /* auth */
  struct cll__challenge chal;
  char token_url[2048];
  char sign_input[2200];
  char signature[512];
  uv_work_t work;
  int rc;
  cll_err err;
  hreq_done_fn done;
  void *arg;
};

/* A request to url with token (may be NULL); done runs on the loop. */
struct hreq *cll__hreq_new(cll_registry *reg, const char *url, const char *token, hreq_done_fn done,
                           void *arg);
int cll__hreq_send(struct hreq *r);
void cll__hreq_cancel(struct hreq *r); /* done is not called */
void cll__hreq_free(struct hreq *r);

/* --------------------------------------------------------------- blobs */

struct job;

struct part {
  struct blob *b;
  int n;
  int64_t start, size; /* the byte range [start, start+size) of the blob */
  int64_t received;    /* contiguous bytes taken from the network (incl. buffered) */
  int64_t written;     /* contiguous bytes on disk (what the state file says) */
  CURL *easy;
  struct curl_slist *hdrs;
  bool running, paused, status_ok, bad, complete;
  bool fair_paused;  /* paused for fairness, resumed on the next iteration */
  size_t turn_bytes; /* bytes taken since the last fairness pause */
  long bad_status;
  int attempts;
  int64_t attempt_bytes;
  uint64_t last_data_ms, retry_at_ms, last_flush_ms;
  char *fill, *inflight; /* two write buffers of cap bytes */
  size_t cap, fill_len, inflight_len, inflight_done;
  bool writing;
  uv_fs_t wreq;
  uv_file state_fd;
  uv_fs_t sreq;
  bool state_writing, state_dirty;
  char state_buf[STATE_BYTES];
};

enum blob_state { B_PREPARE, B_HEAD, B_CREATE, B_DIRECT, B_RUN, B_HASH, B_STOPPING };

struct blob {
  cll_registry *reg;
  struct blob *next;
  char digest[65];
  int64_t size; /* from the manifest; the HEAD must agree */
  char *blob_url;
  char *direct_url;
  bool direct_is_registry; /* the registry served the blob itself: send the token */
  char *token;
  char path[4096], partial[4096];
  uv_file fd;
  struct part *parts;
  int n_parts;
  enum blob_state state;
  struct job **waiters;
  int n_waiters, cap_waiters;
  uv_timer_t tick;
  uv_work_t work;
  bool work_pending, failed, finished;
  struct hreq *req;
  int pending_io;
  int direct_tries;
  uint64_t direct_deadline_ms, direct_retry_at_ms;
  bool need_head;
  int rc;
  cll_err err;
};

/* The shared download of digest (new, or the running one). */
struct blob *cll__blob_get(cll_registry *reg, const char *digest, int64_t size,
                           const char *base_url, const char *repo, const char *token);
int cll__blob_attach(struct blob *b, struct job *j);
void cll__blob_detach(struct blob *b, struct job *j);
void cll__blob_stop(struct blob *b);
int64_t cll__blob_completed(const struct blob *b);

/* ---------------------------------------------------------------- jobs */

/* A blob the job waited for is done (rc 0) or failed. */
void cll__job_on_blob(struct job *j, int rc, const cll_err *err);
/* Frees the registry once it is closing and nothing is left. */
void cll__reg_maybe_free(cll_registry *reg);
/* Ends every push with "server is shutting down" (push.c). */
void cll__push_close_all(cll_registry *reg);

#endif
