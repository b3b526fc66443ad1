/* pull.c — pulling a model from an Ollama registry into the store
 * (OLLAMA_API.md §4).
 *
 * DESIGN. Three kinds of object, all living on the loop thread:
 *
 *  - hreq: one small registry request (manifest GET, blob HEAD, the GET
 *    that finds the blob host) with the 401 handling: parse the Bearer
 *    challenge, get a token (Ollama's signed flow when the realm is on the
 *    registry host, the anonymous OCI flow otherwise) and retry once.
 *  - job: one pull of one name. It has the waiters (API clients), fetches
 *    the manifest, then takes each layer and the config in turn: a cache hit
 *    is reported and skipped, anything else waits on a blob download. Last it
 *    writes the manifest (atomically, bytes as received) and removes layers
 *    the replaced manifest used and nothing uses now. A 60 ms timer sends
 *    progress to the waiters while a blob downloads.
 *  - blob: one download of one digest, shared by every job that wants it.
 *    PREPARE (work item: resume from <blob>-partial-N state files, or learn
 *    the size with HEAD and create the -partial file and the part files) ->
 *    DIRECT (find the blob host: GET without following a redirect to another
 *    host) -> RUN (ranged GETs, one per part, up to max_parts at once) ->
 *    HASH (work item: SHA-256 of the file, then rename into place or delete).
 *
 * Writes never block the loop: each part fills a buffer while the previous
 * one is written with uv_fs_write at its offset; a part whose buffer is full
 * while its write is still running is paused (CURL_WRITEFUNC_PAUSE) and
 * resumed when the write completes. After each data write the part's state
 * file (fixed 128 bytes, rewritten in place) records how many bytes are on
 * disk, so the state never claims bytes that are not in the file: a pull
 * killed at any moment resumes from the last recorded byte.
 *
 * Failure: a part with no bytes for stall_ms is restarted without using an
 * attempt; other errors use an attempt (the count resets when an attempt
 * made progress) and back off 1 s, 2 s, 4 s...; a failed file write (ENOSPC,
 * EACCES, ...) fails the blob at once. A blob stops when no job waits for it:
 * transfers are removed, buffered bytes flushed, state written, files
 * closed; a job that arrives meanwhile revives it. */
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
  bool closing;
};

static uint64_t now_ms(cll_registry *reg) {
  return uv_now(reg->loop);
}

/* The store wants "sha256:<hex>"; we keep bare hex. */
static const char *dg(const char *hex, char buf[80]) {
  snprintf(buf, 80, "sha256:%s", hex);
  return buf;
}

static char *xstrdup(const char *s) {
  return s ? strdup(s) : NULL;
}

/* ================================================================== hreq */

struct hreq;
typedef void (*hreq_done_fn)(struct hreq *r, void *arg);

enum { PHASE_MAIN, PHASE_SIGN, PHASE_TOKEN };

struct hreq {
  cll_registry *reg;
  CURL *easy;
  struct curl_slist *hdrs;
  char *url;        /* the request URL */
  bool head;        /* HEAD instead of GET */
  bool follow;      /* follow redirects (any host) */
  bool keep_body;   /* keep up to MANIFEST_MAX_BYTES; else stop at the first body byte */
  const char *accept;
  char *token;      /* Bearer token, owned; may come from the caller */
  int phase;
  bool auth_tried, body_cut, work_pending, cancelled;
  char *body;
  size_t body_len, body_cap;
  char *location, *www_auth;
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

static void hreq_free(struct hreq *r) {
  if (r == NULL)
    return;
  if (r->easy) {
    cll_curl_uv_remove(r->reg->cu, r->easy);
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->hdrs);
  free(r->url);
  free(r->token);
  free(r->body);
  free(r->location);
  free(r->www_auth);
  free(r);
}

/* Stops r; its done callback will not run. */
static void hreq_cancel(struct hreq *r) {
  if (r == NULL)
    return;
  if (r->work_pending) {
    r->cancelled = true; /* freed by the work item's after-work */
    if (r->easy)
      cll_curl_uv_remove(r->reg->cu, r->easy);
    return;
  }
  hreq_free(r);
}

static size_t on_hreq_header(char *buf, size_t size, size_t n, void *arg) {
  struct hreq *r = arg;
  size_t len = size * n;
  if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) { /* a new response (redirects) */
    free(r->location);
    free(r->www_auth);
    r->location = r->www_auth = NULL;
    return len;
  }
  const char *colon = memchr(buf, ':', len);
  if (colon == NULL)
    return len;
  size_t klen = (size_t)(colon - buf);
  const char *v = colon + 1;
  size_t vlen = len - klen - 1;
  while (vlen && (*v == ' ' || *v == '\t'))
    v++, vlen--;
  while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
    vlen--;
  char **dst = NULL;
  if (klen == 8 && strncasecmp(buf, "Location", 8) == 0)
    dst = &r->location;
  else if (klen == 16 && strncasecmp(buf, "WWW-Authenticate", 16) == 0)
    dst = &r->www_auth;
  if (dst) {
    free(*dst);
    *dst = strndup(v, vlen);
  }
  return len;
}

static size_t on_hreq_body(char *buf, size_t size, size_t n, void *arg) {
  struct hreq *r = arg;
  size_t len = size * n;
  if (!r->keep_body && r->phase == PHASE_MAIN) {
    r->body_cut = true; /* we only wanted the status and headers */
    return 0;
  }
  if (r->body_len + len > MANIFEST_MAX_BYTES)
    return 0;
  if (r->body_len + len + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap * 2 : 4096;
    while (cap < r->body_len + len + 1)
      cap *= 2;
    char *nb = realloc(r->body, cap);
    if (nb == NULL)
      return 0;
    r->body = nb;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, buf, len);
  r->body_len += len;
  r->body[r->body_len] = '\0';
  return len;
}

static void on_hreq_done(CURL *easy, CURLcode result, void *arg);
static void reg_maybe_free(cll_registry *reg);

/* (Re)starts the transfer of the current phase. */
static int hreq_send(struct hreq *r) {
  cll_registry *reg = r->reg;
  if (r->easy == NULL && (r->easy = curl_easy_init()) == NULL)
    return CLL_ENOMEM;
  curl_easy_reset(r->easy);
  curl_slist_free_all(r->hdrs);
  r->hdrs = NULL;
  r->body_len = 0;
  r->body_cut = false;
  free(r->location);
  free(r->www_auth);
  r->location = r->www_auth = NULL;
  char h[2600];
  CURL *e = r->easy;
  if (r->phase == PHASE_MAIN) {
    curl_easy_setopt(e, CURLOPT_URL, r->url);
    if (r->head)
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, r->follow ? 1L : 0L);
    if (r->accept) {
      snprintf(h, sizeof(h), "Accept: %s", r->accept);
      r->hdrs = curl_slist_append(r->hdrs, h);
    }
    if (r->token) {
      snprintf(h, sizeof(h), "Authorization: Bearer %s", r->token);
      r->hdrs = curl_slist_append(r->hdrs, h);
    }
  } else {
    curl_easy_setopt(e, CURLOPT_URL, r->token_url);
    if (r->signature[0]) {
      snprintf(h, sizeof(h), "Authorization: %s", r->signature);
      r->hdrs = curl_slist_append(r->hdrs, h);
    }
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
  curl_easy_setopt(e, CURLOPT_USERAGENT, reg->opts.user_agent);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_hreq_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_hreq_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 120000L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  return cll_curl_uv_add(reg->cu, e, on_hreq_done, r);
}

static void hreq_finish(struct hreq *r, int rc) {
  r->rc = rc;
  r->done(r, r->arg);
}

static void sign_work(uv_work_t *w) {
  struct hreq *r = w->data;
  r->rc = cll_registry_sign(r->reg->opts.key_dir, r->sign_input, strlen(r->sign_input),
                            r->signature, sizeof(r->signature), &r->err);
}

static void after_sign(uv_work_t *w, int status) {
  struct hreq *r = w->data;
  cll_registry *reg = r->reg;
  r->work_pending = false;
  reg->n_work--;
  if (r->cancelled) {
    hreq_free(r);
    reg_maybe_free(reg);
    return;
  }
  if (r->rc != 0) {
    hreq_finish(r, r->rc);
    return;
  }
  r->phase = PHASE_TOKEN;
  int rc = hreq_send(r);
  if (rc != 0)
    hreq_finish(r, cll_err_set(&r->err, rc, "token request failed"));
}

/* 401 with a challenge: get a token, then send the request again. */
static void hreq_auth(struct hreq *r) {
  if (cll__reg_parse_challenge(r->www_auth, &r->chal) != 0) {
    hreq_finish(r, cll_err_set(&r->err, CLL_EACCES, "unauthorized: access denied"));
    return;
  }
  char reg_host[400], realm_host[400];
  cll__reg_url_host(r->url, reg_host, sizeof(reg_host));
  cll__reg_url_host(r->chal.realm, realm_host, sizeof(realm_host));
  bool ollama = strcasecmp(reg_host, realm_host) == 0;
  r->signature[0] = '\0';
  if (cll__reg_token_url(&r->chal, ollama, r->token_url, sizeof(r->token_url)) != 0) {
    hreq_finish(r, cll_err_set(&r->err, CLL_EPROTO, "authentication realm too long"));
    return;
  }
  r->auth_tried = true;
  if (ollama) {
    /* Ollama's flow: sign "GET,<url>,..." with the identity key. Loading
     * or creating the key touches files, so it runs off the loop. */
    cll_registry_sign_input(r->token_url, r->sign_input, sizeof(r->sign_input));
    r->phase = PHASE_SIGN;
    r->work.data = r;
    r->work_pending = true;
    r->reg->n_work++;
    if (uv_queue_work(r->reg->loop, &r->work, sign_work, after_sign) != 0) {
      r->work_pending = false;
      r->reg->n_work--;
      hreq_finish(r, cll_err_set(&r->err, CLL_EIO, "cannot queue signing"));
    }
    return;
  }
  r->phase = PHASE_TOKEN; /* the standard anonymous Bearer flow */
  int rc = hreq_send(r);
  if (rc != 0)
    hreq_finish(r, cll_err_set(&r->err, rc, "token request failed"));
}

static void on_hreq_done(CURL *easy, CURLcode result, void *arg) {
  struct hreq *r = arg;
  r->status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
  if (result == CURLE_WRITE_ERROR && r->body_cut)
    result = CURLE_OK;
  r->result = result;
  if (result != CURLE_OK) {
    hreq_finish(r, cll_err_set(&r->err, CLL_ENET, "%s", curl_easy_strerror(result)));
    return;
  }
  if (r->phase == PHASE_TOKEN) {
    json_t *j = r->status == 200 ? json_loadb(r->body ? r->body : "", r->body_len, 0, NULL)
                                 : NULL;
    const char *tok = json_string_value(json_object_get(j, "token"));
    if (tok == NULL || !*tok)
      tok = json_string_value(json_object_get(j, "access_token"));
    if (tok == NULL || !*tok) {
      json_decref(j);
      hreq_finish(r, cll_err_set(&r->err, CLL_EACCES, "unauthorized: access denied"));
      return;
    }
    free(r->token);
    r->token = strdup(tok);
    json_decref(j);
    r->phase = PHASE_MAIN;
    int rc = hreq_send(r);
    if (rc != 0)
      hreq_finish(r, cll_err_set(&r->err, rc, "request failed"));
    return;
  }
  if (r->status == 401) {
    if (!r->auth_tried && r->www_auth) {
      hreq_auth(r);
      return;
    }
    hreq_finish(r, cll_err_set(&r->err, CLL_EACCES, "unauthorized: access denied"));
    return;
  }
  curl_off_t cl = -1;
  curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  r->content_length = cl;
  hreq_finish(r, 0);
}

static struct hreq *hreq_new(cll_registry *reg, const char *url, const char *token,
                             hreq_done_fn done, void *arg) {
  struct hreq *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  r->reg = reg;
  r->url = strdup(url);
  r->token = xstrdup(token);
  r->done = done;
  r->arg = arg;
  if (r->url == NULL || (token && r->token == NULL)) {
    hreq_free(r);
    return NULL;
  }
  return r;
}

/* ================================================================= blobs */

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
  bool fair_paused;    /* paused for fairness, resumed on the next iteration */
  size_t turn_bytes;   /* bytes taken since the last fairness pause */
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

static void blob_check(struct blob *b);
static void blob_begin(struct blob *b);
static void fair_forget(struct part *p);
static void job_on_blob(struct job *j, int rc, const cll_err *err);

/* Progress counts bytes received (a buffer is on disk a moment later);
 * the part state files count only what is written. */
static int64_t blob_completed(const struct blob *b) {
  int64_t c = 0;
  for (int i = 0; i < b->n_parts; i++)
    c += b->parts[i].received;
  return c;
}

static void part_state_text(struct part *p) {
  int n = snprintf(p->state_buf, sizeof(p->state_buf),
                   "{\"N\":%d,\"Offset\":%lld,\"Size\":%lld,\"Completed\":%lld}", p->n,
                   (long long)p->start, (long long)p->size, (long long)p->written);
  memset(p->state_buf + n, ' ', sizeof(p->state_buf) - (size_t)n - 1);
  p->state_buf[sizeof(p->state_buf) - 1] = '\n';
}

/* The -partial file's name as errors show it (never the absolute path). */
static const char *pname(const struct blob *b) {
  const char *s = strrchr(b->partial, '/');
  return s ? s + 1 : b->partial;
}

static void part_path(const struct blob *b, int n, char *buf, size_t size) {
  snprintf(buf, size, "%s-%d", b->partial, n);
}

/* ---------------------------------------------------------- failure, stop */

static int errcode_from_uv(int uverr) {
  return cll_err_from_errno(-uverr);
}

static void blob_stop(struct blob *b) {
  if (b->state == B_HASH) /* let the hash finish; it commits or deletes */
    return;
  b->state = B_STOPPING;
  for (int i = 0; i < b->n_parts; i++) {
    struct part *p = &b->parts[i];
    if (p->running) {
      cll_curl_uv_remove(b->reg->cu, p->easy);
      p->running = false;
      p->paused = false;
    }
    fair_forget(p);
  }
  if (b->req) {
    hreq_cancel(b->req);
    b->req = NULL;
  }
  blob_check(b);
}

static void blob_fail(struct blob *b, int code, const char *fmt, ...) {
  if (b->failed)
    return;
  b->failed = true;
  b->rc = code;
  b->err.code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(b->err.msg, sizeof(b->err.msg), fmt, ap);
  va_end(ap);
  fprintf(stderr, "pull: %.12s: %s\n", b->digest, b->err.msg);
  blob_stop(b);
}

/* ---------------------------------------------------------- state writes */

static void on_state_written(uv_fs_t *req);

static void part_save_state(struct part *p) {
  struct blob *b = p->b;
  if (p->state_fd < 0)
    return;
  if (p->state_writing) {
    p->state_dirty = true;
    return;
  }
  part_state_text(p);
  p->state_writing = true;
  p->state_dirty = false;
  p->sreq.data = p;
  uv_buf_t buf = uv_buf_init(p->state_buf, sizeof(p->state_buf));
  b->pending_io++;
  if (uv_fs_write(b->reg->loop, &p->sreq, p->state_fd, &buf, 1, 0, on_state_written) != 0) {
    b->pending_io--;
    p->state_writing = false;
    blob_fail(b, CLL_EIO, "write %s-%d: cannot queue", pname(b), p->n);
  }
}

static void on_state_written(uv_fs_t *req) {
  struct part *p = req->data;
  struct blob *b = p->b;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  b->pending_io--;
  p->state_writing = false;
  if (r < 0)
    blob_fail(b, errcode_from_uv((int)r), "write %s-%d: %s", pname(b), p->n,
              uv_strerror((int)r));
  else if (p->state_dirty)
    part_save_state(p);
  blob_check(b);
}

/* ----------------------------------------------------------- data writes */

static void on_part_written(uv_fs_t *req);

static void part_submit(struct part *p) {
  struct blob *b = p->b;
  uv_buf_t buf = uv_buf_init(p->inflight + p->inflight_done,
                             (unsigned)(p->inflight_len - p->inflight_done));
  int64_t off = p->start + p->written;
  p->wreq.data = p;
  p->writing = true;
  b->pending_io++;
  if (uv_fs_write(b->reg->loop, &p->wreq, b->fd, &buf, 1, off, on_part_written) != 0) {
    b->pending_io--;
    p->writing = false;
    blob_fail(b, CLL_EIO, "write %s: cannot queue", pname(b));
  }
}

/* Hands the filled buffer to a write; requires !writing. */
static void part_flush(struct part *p) {
  if (p->writing || p->fill_len == 0 || p->b->failed)
    return;
  char *t = p->inflight;
  p->inflight = p->fill;
  p->fill = t;
  p->inflight_len = p->fill_len;
  p->inflight_done = 0;
  p->fill_len = 0;
  p->last_flush_ms = now_ms(p->b->reg);
  part_submit(p);
}

static void on_part_written(uv_fs_t *req) {
  struct part *p = req->data;
  struct blob *b = p->b;
  ssize_t r = req->result;
  uv_fs_req_cleanup(req);
  b->pending_io--;
  p->writing = false;
  if (r < 0) {
    int code = errcode_from_uv((int)r);
    blob_fail(b, code, "write %s: %s", pname(b), uv_strerror((int)r));
    blob_check(b);
    return;
  }
  p->written += r;
  p->inflight_done += (size_t)r;
  if (p->inflight_done < p->inflight_len && !b->failed) { /* short write: the rest */
    part_submit(p);
    return;
  }
  p->inflight_len = p->inflight_done = 0;
  part_save_state(p);
  if (p->fill_len > 0 && (!p->running || b->state == B_STOPPING || p->fill_len >= p->cap / 2))
    part_flush(p);
  if (p->paused && p->running && b->state == B_RUN) {
    p->paused = false;
    if (!p->fair_paused) /* else the next iteration resumes it */
      cll_curl_uv_unpause(b->reg->cu, p->easy); /* may deliver data right away */
  }
  blob_check(b);
}

/* --------------------------------------------------------- part transfer */

static void on_turn(uv_prepare_t *h) {
  cll_registry *reg = h->data;
  uv_prepare_stop(h);
  int n = reg->n_fair;
  reg->n_fair = 0;
  for (int i = 0; i < n; i++) {
    struct part *p = reg->fair[i];
    if (p == NULL || !p->fair_paused)
      continue;
    p->fair_paused = false;
    p->turn_bytes = 0;
    if (p->running && !p->paused && p->b->state == B_RUN)
      cll_curl_uv_unpause(reg->cu, p->easy);
  }
}

/* Pauses p until the next loop iteration; false if it cannot. */
static bool fair_pause(struct part *p) {
  cll_registry *reg = p->b->reg;
  if (reg->n_fair == reg->cap_fair) {
    int cap = reg->cap_fair ? reg->cap_fair * 2 : 16;
    struct part **f = realloc(reg->fair, sizeof(*f) * (size_t)cap);
    if (f == NULL)
      return false;
    reg->fair = f;
    reg->cap_fair = cap;
  }
  reg->fair[reg->n_fair++] = p;
  p->fair_paused = true;
  uv_prepare_start(&reg->turn, on_turn);
  return true;
}

/* Forgets p in the fairness list (it is stopping or being freed). */
static void fair_forget(struct part *p) {
  cll_registry *reg = p->b ? p->b->reg : NULL;
  if (reg == NULL)
    return;
  for (int i = 0; i < reg->n_fair; i++)
    if (reg->fair[i] == p)
      reg->fair[i] = NULL;
  p->fair_paused = false;
}

static size_t on_part_data(char *ptr, size_t size, size_t nmemb, void *arg) {
  struct part *p = arg;
  struct blob *b = p->b;
  size_t n = size * nmemb;
  if (b->state != B_RUN)
    return 0;
  if (!p->status_ok) {
    long st = 0;
    curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &st);
    int64_t from = p->start + p->received;
    bool whole = from == 0 && p->size == b->size;
    if (st != 206 && !(st == 200 && whole)) {
      p->bad = true;
      p->bad_status = st;
      return 0;
    }
    p->status_ok = true;
  }
  if (p->received + (int64_t)n > p->size) {
    p->bad = true;
    return 0;
  }
  if (p->fill_len + n > p->cap) {
    if (p->writing) {
      p->paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
    part_flush(p);
    if (n > p->cap) { /* a larger chunk than expected (after a pause): grow */
      char *a = realloc(p->fill, n), *c = realloc(p->inflight, n);
      if (a)
        p->fill = a;
      if (c)
        p->inflight = c;
      if (a == NULL || c == NULL)
        return 0;
      p->cap = n;
    }
  }
  if (p->turn_bytes >= TURN_BUDGET_BYTES && fair_pause(p))
    return CURL_WRITEFUNC_PAUSE;
  memcpy(p->fill + p->fill_len, ptr, n);
  p->fill_len += n;
  p->turn_bytes += n;
  p->received += (int64_t)n;
  p->attempt_bytes += (int64_t)n;
  p->last_data_ms = now_ms(b->reg);
  if (p->fill_len >= p->cap / 2 && !p->writing)
    part_flush(p);
  return n;
}

static void part_start(struct part *p);

static void on_part_done(CURL *easy, CURLcode result, void *arg) {
  struct part *p = arg;
  struct blob *b = p->b;
  p->running = false;
  p->paused = false;
  fair_forget(p);
  if (b->state != B_RUN)
    return;
  if (result == CURLE_OK && !p->bad && p->received == p->size) {
    p->complete = true;
    part_flush(p);
    blob_check(b);
    return;
  }
  char why[256];
  if (p->bad && p->bad_status)
    snprintf(why, sizeof(why), "unexpected status %ld", p->bad_status);
  else if (p->bad)
    snprintf(why, sizeof(why), "server sent more than the requested range");
  else if (result != CURLE_OK)
    snprintf(why, sizeof(why), "%s", curl_easy_strerror(result));
  else
    snprintf(why, sizeof(why), "unexpected EOF");
  if (p->attempt_bytes > 0)
    p->attempts = 0; /* it made progress: resumable, like io.ErrUnexpectedEOF */
  p->attempts++;
  if (p->attempts > b->reg->opts.max_retries) {
    blob_fail(b, CLL_ENET, "max retries exceeded: %s", why);
    return;
  }
  uint64_t delay = b->reg->opts.retry_base_ms << (p->attempts - 1 < 10 ? p->attempts - 1 : 10);
  if (delay > 30000)
    delay = 30000;
  fprintf(stderr, "pull: %.12s part %d attempt %d failed (%s); retrying in %llu ms\n",
          b->digest, p->n, p->attempts, why, (unsigned long long)delay);
  p->retry_at_ms = now_ms(b->reg) + delay;
}

static void part_start(struct part *p) {
  struct blob *b = p->b;
  if (p->easy == NULL && (p->easy = curl_easy_init()) == NULL) {
    blob_fail(b, CLL_ENOMEM, "out of memory");
    return;
  }
  if (p->fill == NULL) {
    p->cap = b->reg->opts.write_buffer_bytes;
    p->fill = malloc(p->cap);
    p->inflight = malloc(p->cap);
    if (p->fill == NULL || p->inflight == NULL) {
      blob_fail(b, CLL_ENOMEM, "out of memory");
      return;
    }
  }
  CURL *e = p->easy;
  curl_easy_reset(e);
  curl_slist_free_all(p->hdrs);
  p->hdrs = NULL;
  char h[2600];
  if (b->direct_is_registry && b->token) {
    snprintf(h, sizeof(h), "Authorization: Bearer %s", b->token);
    p->hdrs = curl_slist_append(p->hdrs, h);
  }
  char range[96];
  snprintf(range, sizeof(range), "%lld-%lld", (long long)(p->start + p->received),
           (long long)(p->start + p->size - 1));
  curl_easy_setopt(e, CURLOPT_URL, b->direct_url);
  curl_easy_setopt(e, CURLOPT_RANGE, range);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs);
  curl_easy_setopt(e, CURLOPT_USERAGENT, b->reg->opts.user_agent);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_part_data);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 32L * 1024);
  p->status_ok = p->bad = false;
  p->bad_status = 0;
  p->attempt_bytes = 0;
  p->last_data_ms = now_ms(b->reg);
  if (cll_curl_uv_add(b->reg->cu, e, on_part_done, p) != 0) {
    blob_fail(b, CLL_ENOMEM, "cannot start a transfer");
    return;
  }
  p->running = true;
}

/* Starts parts that are due, up to max_parts at once. */
static void blob_run_parts(struct blob *b) {
  if (b->state != B_RUN)
    return;
  int running = 0;
  for (int i = 0; i < b->n_parts; i++)
    running += b->parts[i].running;
  uint64_t now = now_ms(b->reg);
  for (int i = 0; i < b->n_parts && running < b->reg->opts.max_parts; i++) {
    struct part *p = &b->parts[i];
    if (p->running || p->complete || p->retry_at_ms > now)
      continue;
    if (p->received >= p->size) {
      p->complete = true;
      continue;
    }
    part_start(p);
    if (b->state != B_RUN)
      return;
    running++;
  }
}

static void blob_settle(struct blob *b);

static void on_tick(uv_timer_t *t) {
  struct blob *b = t->data;
  if (b->finished)
    return;
  if (b->state == B_STOPPING) {
    if (!b->work_pending)
      blob_settle(b);
    return;
  }
  if (b->state == B_DIRECT && b->req == NULL && now_ms(b->reg) >= b->direct_retry_at_ms) {
    blob_begin(b);
    return;
  }
  if (b->state != B_RUN)
    return;
  uint64_t now = now_ms(b->reg);
  for (int i = 0; i < b->n_parts; i++) {
    struct part *p = &b->parts[i];
    if (p->running && !p->paused && !p->fair_paused &&
        now - p->last_data_ms >= b->reg->opts.stall_ms) {
      fprintf(stderr,
              "pull: %.12s part %d stalled; retrying. If this persists, press ctrl-c to "
              "exit, then 'ollama pull' to find a faster connection.\n",
              b->digest, p->n);
      cll_curl_uv_remove(b->reg->cu, p->easy);
      p->running = p->paused = false;
      fair_forget(p);
      p->retry_at_ms = 0; /* at once, without using an attempt */
    }
    /* Slow transfers still record their progress now and then. */
    if (!p->writing && p->fill_len > 0 && now - p->last_flush_ms >= 500)
      part_flush(p);
  }
  blob_run_parts(b);
}

/* -------------------------------------------------------------- prepare */

static void close_files(struct blob *b) {
  uv_fs_t req;
  for (int i = 0; i < b->n_parts; i++)
    if (b->parts[i].state_fd >= 0) {
      uv_fs_close(NULL, &req, b->parts[i].state_fd, NULL);
      uv_fs_req_cleanup(&req);
      b->parts[i].state_fd = -1;
    }
  if (b->fd >= 0) {
    uv_fs_close(NULL, &req, b->fd, NULL);
    uv_fs_req_cleanup(&req);
    b->fd = -1;
  }
}

static void free_parts(struct blob *b) {
  for (int i = 0; i < b->n_parts; i++) {
    struct part *p = &b->parts[i];
    fair_forget(p);
    if (p->easy) {
      if (p->running)
        cll_curl_uv_remove(b->reg->cu, p->easy);
      curl_easy_cleanup(p->easy);
    }
    curl_slist_free_all(p->hdrs);
    free(p->fill);
    free(p->inflight);
  }
  free(b->parts);
  b->parts = NULL;
  b->n_parts = 0;
}

/* Work item: resume from part files, or (need_head false, size known)
 * create a fresh -partial and its part files. Plain blocking file I/O. */
static void prepare_work(uv_work_t *w) {
  struct blob *b = w->data;
  char pp[4200];
  b->rc = 0;
  if (b->need_head) { /* first pass: try to resume */
    /* Only a plain file of ours is resumed: never write through a link
     * (a symlink, or a hard link to a file outside the store). */
    int fd = open(b->partial, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    struct stat st;
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
        st.st_size == b->size) {
      int n = 0;
      struct part *parts = NULL;
      int64_t next = 0;
      bool ok = true;
      for (;; n++) {
        part_path(b, n, pp, sizeof(pp));
        int sfd = open(pp, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (sfd < 0)
          break;
        struct stat sst;
        if (fstat(sfd, &sst) != 0 || !S_ISREG(sst.st_mode) || sst.st_nlink != 1) {
          close(sfd);
          ok = false;
          break;
        }
        char text[STATE_BYTES + 1];
        ssize_t r = pread(sfd, text, STATE_BYTES, 0);
        json_t *j = r > 0 ? json_loadb(text, (size_t)r, 0, NULL) : NULL;
        struct part *np = realloc(parts, sizeof(*parts) * (size_t)(n + 1));
        if (np == NULL) {
          close(sfd);
          json_decref(j);
          ok = false;
          break;
        }
        parts = np;
        struct part *p = &parts[n];
        memset(p, 0, sizeof(*p));
        p->n = n;
        p->state_fd = sfd;
        p->start = json_integer_value(json_object_get(j, "Offset"));
        p->size = json_integer_value(json_object_get(j, "Size"));
        p->written = json_integer_value(json_object_get(j, "Completed"));
        p->received = p->written;
        if (j == NULL || p->start != next || p->size <= 0 || p->written < 0 ||
            p->written > p->size)
          ok = false;
        next = p->start + p->size;
        json_decref(j);
        if (!ok) {
          n++;
          break;
        }
      }
      if (ok && n > 0 && next == b->size) {
        b->fd = fd;
        b->parts = parts;
        b->n_parts = n;
        b->need_head = false;
        return;
      }
      for (int i = 0; i < n; i++)
        close(parts[i].state_fd);
      free(parts);
    }
    if (fd >= 0)
      close(fd);
    return; /* need_head stays true: HEAD, then create */
  }
  /* Create: drop stale part files, make the -partial and the parts. */
  for (int n = 0;; n++) {
    part_path(b, n, pp, sizeof(pp));
    if (unlink(pp) != 0)
      break;
  }
  /* A fresh file we create ourselves (O_EXCL), whatever was there. */
  unlink(b->partial);
  int fd = open(b->partial, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) {
    b->rc = cll_err_set(&b->err, cll_err_from_errno(errno), "open %s: %s", pname(b),
                        strerror(errno));
    return;
  }
  /* Reserve the space now, so a disk that is too small fails at once. */
  int e = b->size > 0 ? posix_fallocate(fd, 0, b->size) : 0;
  if (e == EOPNOTSUPP || e == ENOSYS || e == EINVAL)
    e = ftruncate(fd, b->size) == 0 ? 0 : errno;
  if (e != 0) {
    close(fd);
    unlink(b->partial);
    b->rc = cll_err_set(&b->err, cll_err_from_errno(e), "write %s: %s", pname(b),
                        uv_strerror(-e)); /* Go's lower-case wording */
    return;
  }
  const cll_registry_opts *o = &b->reg->opts;
  int64_t psize = b->size / o->max_parts;
  if (psize < o->part_min_bytes)
    psize = o->part_min_bytes;
  if (psize > o->part_max_bytes)
    psize = o->part_max_bytes;
  if (psize <= 0)
    psize = 1;
  int n = b->size == 0 ? 0 : (int)((b->size + psize - 1) / psize);
  struct part *parts = calloc((size_t)(n ? n : 1), sizeof(*parts));
  if (parts == NULL) {
    close(fd);
    b->rc = CLL_ENOMEM;
    return;
  }
  for (int i = 0; i < n; i++) {
    struct part *p = &parts[i];
    p->n = i;
    p->start = (int64_t)i * psize;
    p->size = p->start + psize > b->size ? b->size - p->start : psize;
    part_path(b, i, pp, sizeof(pp));
    unlink(pp);
    p->state_fd = open(pp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    part_state_text(p);
    if (p->state_fd < 0 || pwrite(p->state_fd, p->state_buf, STATE_BYTES, 0) != STATE_BYTES) {
      e = errno;
      for (int k = 0; k <= i; k++)
        if (parts[k].state_fd >= 0)
          close(parts[k].state_fd);
      free(parts);
      close(fd);
      b->rc = cll_err_set(&b->err, cll_err_from_errno(e), "write %s-%d: %s", pname(b), i,
                          strerror(e));
      return;
    }
  }
  b->fd = fd;
  b->parts = parts;
  b->n_parts = n;
}

static void start_direct(struct blob *b);
static void on_head(struct hreq *r, void *arg);

static void after_prepare(uv_work_t *w, int status) {
  struct blob *b = w->data;
  b->work_pending = false;
  for (int i = 0; i < b->n_parts; i++) {
    b->parts[i].b = b;
    if (b->parts[i].written == b->parts[i].size)
      b->parts[i].complete = true;
  }
  if (b->state == B_STOPPING) {
    blob_check(b);
    return;
  }
  if (b->rc != 0) {
    int rc = b->rc;
    b->rc = 0;
    blob_fail(b, rc, "%s", b->err.msg);
    return;
  }
  if (b->need_head) {
    b->state = B_HEAD;
    b->req = hreq_new(b->reg, b->blob_url, b->token, on_head, b);
    if (b->req == NULL) {
      blob_fail(b, CLL_ENOMEM, "out of memory");
      return;
    }
    b->req->head = true;
    b->req->follow = true;
    if (hreq_send(b->req) != 0)
      blob_fail(b, CLL_ENOMEM, "cannot start a transfer");
    return;
  }
  start_direct(b);
}

static void queue_prepare(struct blob *b) {
  b->work.data = b;
  b->work_pending = true;
  if (uv_queue_work(b->reg->loop, &b->work, prepare_work, after_prepare) != 0) {
    b->work_pending = false;
    blob_fail(b, CLL_EIO, "cannot queue work");
  }
}

static void on_head(struct hreq *r, void *arg) {
  struct blob *b = arg;
  b->req = NULL;
  if (r->token && (b->token == NULL || strcmp(r->token, b->token) != 0)) {
    free(b->token);
    b->token = xstrdup(r->token);
  }
  int rc = r->rc;
  long status = r->status;
  int64_t cl = r->content_length;
  char msg[sizeof(r->err.msg)];
  snprintf(msg, sizeof(msg), "%s", r->err.msg);
  hreq_free(r);
  bool transient = rc == CLL_ENET || (rc == 0 && status >= 500);
  if (rc == 0 && status >= 400)
    rc = status == 404 ? CLL_ENOENT : CLL_ENET,
    snprintf(msg, sizeof(msg), "%ld: HEAD %.300s", status, b->blob_url);
  if (rc != 0) {
    if (transient && now_ms(b->reg) < b->direct_deadline_ms) {
      b->direct_tries++;
      b->state = B_DIRECT; /* retried from the tick, which re-runs begin */
      b->req = NULL;
      b->direct_retry_at_ms = now_ms(b->reg) + b->reg->opts.retry_base_ms;
      return;
    }
    blob_fail(b, rc, "%s", msg);
    return;
  }
  if (cl >= 0 && b->size >= 0 && cl != b->size) {
    blob_fail(b, CLL_EPROTO, "blob %.12s: registry says %lld bytes, manifest %lld",
              b->digest, (long long)cl, (long long)b->size);
    return;
  }
  b->need_head = false;
  b->state = B_CREATE;
  queue_prepare(b);
}

/* ---------------------------------------------------------- direct URL */

static void on_direct(struct hreq *r, void *arg) {
  struct blob *b = arg;
  b->req = NULL;
  if (r->token && (b->token == NULL || strcmp(r->token, b->token) != 0)) {
    free(b->token);
    b->token = xstrdup(r->token);
  }
  int rc = r->rc;
  long status = r->status;
  char *loc = r->location ? strdup(r->location) : NULL;
  char msg[sizeof(r->err.msg)];
  snprintf(msg, sizeof(msg), "%s", r->err.msg);
  char url[4096];
  snprintf(url, sizeof(url), "%s", r->url);
  hreq_free(r);
  if (rc == 0 && status >= 300 && status < 400 && loc) {
    char from[400], to[400];
    cll__reg_url_host(url, from, sizeof(from));
    cll__reg_url_host(loc, to, sizeof(to));
    if (strcasecmp(from, to) == 0 && b->direct_tries < 10) {
      /* Same host: follow it ourselves, as Ollama's redirect policy does. */
      b->direct_tries++;
      b->req = hreq_new(b->reg, loc, b->token, on_direct, b);
      free(loc);
      if (b->req == NULL || hreq_send(b->req) != 0)
        blob_fail(b, CLL_ENOMEM, "cannot start a transfer");
      return;
    }
    free(b->direct_url);
    b->direct_url = loc;
    b->direct_is_registry = false;
  } else if (rc == 0 && status == 200) {
    /* A registry that serves blobs itself (Ollama would refuse with "http:
     * no Location header in response"); use the blob URL, with the token. */
    free(loc);
    free(b->direct_url);
    b->direct_url = strdup(url);
    b->direct_is_registry = true;
  } else {
    free(loc);
    bool transient = rc == CLL_ENET || (rc == 0 && status >= 500);
    if (rc == 0)
      rc = status == 404 ? CLL_ENOENT : CLL_ENET,
      snprintf(msg, sizeof(msg), "%ld: GET %.300s", status, url);
    if (transient && now_ms(b->reg) < b->direct_deadline_ms) {
      /* Back off n^2 * 10 ms (max 10 s) until the 30 s are over. */
      uint64_t n = (uint64_t)++b->direct_tries;
      uint64_t d = n * n * 10;
      b->direct_retry_at_ms = now_ms(b->reg) + (d > 10000 ? 10000 : d);
      return;
    }
    blob_fail(b, rc, "%s", msg);
    return;
  }
  if (b->direct_url == NULL) {
    blob_fail(b, CLL_ENOMEM, "out of memory");
    return;
  }
  b->state = B_RUN;
  blob_run_parts(b);
  blob_check(b);
}

static void start_direct(struct blob *b) {
  b->state = B_DIRECT;
  b->req = hreq_new(b->reg, b->blob_url, b->token, on_direct, b);
  if (b->req == NULL || hreq_send(b->req) != 0)
    blob_fail(b, CLL_ENOMEM, "cannot start a transfer");
}

/* (Re)starts the download from the beginning of the state machine. */
static void blob_begin(struct blob *b) {
  if (b->parts == NULL) {
    b->state = B_PREPARE;
    b->need_head = true;
    queue_prepare(b);
    return;
  }
  start_direct(b); /* files are open already (revived, or retrying DIRECT) */
}

/* ------------------------------------------------------------------ hash */

static void hash_work(uv_work_t *w) {
  struct blob *b = w->data;
  char got[65];
  b->rc = cll_sha256_file(b->partial, got, NULL, &b->err);
  if (b->rc) {
    /* The shared helper names the path; errors here name only the file. */
    cll_err_set(&b->err, b->rc, "hashing %s failed", pname(b));
    return;
  }
  char pp[4200];
  if (strcmp(got, b->digest) != 0) {
    unlink(b->partial);
    for (int n = 0; n < b->n_parts; n++) {
      part_path(b, n, pp, sizeof(pp));
      unlink(pp);
    }
    b->rc = cll_err_set(&b->err, CLL_EDIGEST,
                        "digest mismatch, file must be downloaded again: want sha256:%s, "
                        "got sha256:%s",
                        b->digest, got);
    return;
  }
  char d[80];
  b->rc = cll_store_blob_commit(b->reg->store, dg(b->digest, d), b->size, &b->err);
  if (b->rc == 0)
    for (int n = 0; n < b->n_parts; n++) {
      part_path(b, n, pp, sizeof(pp));
      unlink(pp);
    }
}

static void blob_free(struct blob *b);

static void blob_finish(struct blob *b, int rc, const cll_err *err) {
  /* The waiters may start other work; take the list first. */
  struct job **w = b->waiters;
  int n = b->n_waiters;
  b->waiters = NULL;
  b->n_waiters = 0;
  blob_free(b);
  for (int i = 0; i < n; i++)
    job_on_blob(w[i], rc, err);
  free(w);
}

static void after_hash(uv_work_t *w, int status) {
  struct blob *b = w->data;
  b->work_pending = false;
  cll_err err = b->err;
  blob_finish(b, b->rc, &err);
}

/* ----------------------------------------------------------- settlement */

static void on_tick_closed(uv_handle_t *h) {
  struct blob *b = h->data;
  cll_registry *reg = b->reg;
  free(b->blob_url);
  free(b->direct_url);
  free(b->token);
  free(b->waiters);
  free(b);
  reg->n_blobs--;
  reg_maybe_free(reg);
}

static void blob_free(struct blob *b) {
  cll_registry *reg = b->reg;
  b->finished = true;
  for (struct blob **pp = &reg->blobs; *pp; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  hreq_cancel(b->req);
  b->req = NULL;
  close_files(b); /* before free_parts(), which forgets the parts' state files */
  free_parts(b);
  uv_timer_stop(&b->tick);
  uv_close((uv_handle_t *)&b->tick, on_tick_closed);
}

/* Moves the state machine on after any event. */
static void blob_check(struct blob *b) {
  if (b->work_pending || b->finished)
    return;
  if (b->state == B_RUN) {
    for (int i = 0; i < b->n_parts; i++) {
      struct part *p = &b->parts[i];
      if (!p->complete || p->written < p->size)
        return;
    }
    if (b->pending_io > 0)
      return;
    /* Every byte is on disk: close the files and verify. */
    int n = b->n_parts;
    close_files(b);
    for (int i = 0; i < n; i++) {
      free(b->parts[i].fill);
      free(b->parts[i].inflight);
      b->parts[i].fill = b->parts[i].inflight = NULL;
    }
    b->state = B_HASH;
    b->work.data = b;
    b->work_pending = true;
    if (uv_queue_work(b->reg->loop, &b->work, hash_work, after_hash) != 0) {
      b->work_pending = false;
      b->state = B_RUN;
      blob_fail(b, CLL_EIO, "cannot queue hashing");
    }
    return;
  }
  /* Stopping settles from the timer, never inside the callback that
   * stopped it, so no caller finds its blob or part freed under it. */
  if (b->state == B_STOPPING)
    uv_timer_start(&b->tick, on_tick, 0, TICK_MS);
}

/* Stopping: flush what is buffered, wait for every write, then finish
 * (failed), restart (a waiter came back) or free. */
static void blob_settle(struct blob *b) {
  for (int i = 0; i < b->n_parts; i++) {
    struct part *p = &b->parts[i];
    if (!b->failed && !p->writing && p->fill_len > 0)
      part_flush(p);
  }
  if (b->pending_io > 0)
    return;
  if (b->failed) {
    cll_err err = b->err;
    blob_finish(b, b->rc ? b->rc : CLL_EIO, &err);
    return;
  }
  if (b->n_waiters > 0 && !b->reg->closing) { /* someone came back meanwhile */
    for (int i = 0; i < b->n_parts; i++) {
      struct part *p = &b->parts[i];
      p->received = p->written; /* anything not on disk is fetched again */
      p->retry_at_ms = 0;
      p->complete = p->written == p->size;
    }
    b->direct_tries = 0;
    b->direct_deadline_ms = now_ms(b->reg) + DIRECT_DEADLINE_MS;
    blob_begin(b);
    return;
  }
  blob_free(b);
}

static struct blob *blob_get(cll_registry *reg, const char *digest, int64_t size,
                             const char *base_url, const char *repo, const char *token) {
  for (struct blob *b = reg->blobs; b; b = b->next)
    if (strcmp(b->digest, digest) == 0)
      return b;
  struct blob *b = calloc(1, sizeof(*b));
  if (b == NULL)
    return NULL;
  b->reg = reg;
  snprintf(b->digest, sizeof(b->digest), "%s", digest);
  b->size = size;
  b->fd = -1;
  char url[4096];
  snprintf(url, sizeof(url), "%s/v2/%s/blobs/sha256:%s", base_url, repo, digest);
  b->blob_url = strdup(url);
  b->token = xstrdup(token);
  char d[80];
  if (b->blob_url == NULL ||
      cll_store_blob_path(reg->store, dg(digest, d), b->path, sizeof(b->path)) != 0 ||
      cll_store_blob_partial_path(reg->store, d, b->partial, sizeof(b->partial)) != 0) {
    free(b->blob_url);
    free(b->token);
    free(b);
    return NULL;
  }
  uv_timer_init(reg->loop, &b->tick);
  b->tick.data = b;
  uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
  b->direct_deadline_ms = now_ms(reg) + DIRECT_DEADLINE_MS;
  b->next = reg->blobs;
  reg->blobs = b;
  reg->n_blobs++;
  blob_begin(b);
  return b;
}

static int blob_attach(struct blob *b, struct job *j) {
  if (b->n_waiters == b->cap_waiters) {
    int cap = b->cap_waiters ? b->cap_waiters * 2 : 4;
    struct job **w = realloc(b->waiters, sizeof(*w) * (size_t)cap);
    if (w == NULL)
      return CLL_ENOMEM;
    b->waiters = w;
    b->cap_waiters = cap;
  }
  b->waiters[b->n_waiters++] = j;
  return 0;
}

static void blob_detach(struct blob *b, struct job *j) {
  for (int i = 0; i < b->n_waiters; i++)
    if (b->waiters[i] == j) {
      b->waiters[i] = b->waiters[--b->n_waiters];
      break;
    }
  if (b->n_waiters == 0)
    blob_stop(b);
}

/* ================================================================== jobs */

struct cll_pull_waiter {
  cll_pull_event_fn fn;
  void *arg;
  struct job *job;
  struct cll_pull_waiter *next;
};

struct jlayer {
  char digest[65];
  int64_t size;
};

struct job {
  cll_registry *reg;
  struct job *next;
  cll_name name;
  bool insecure;
  struct cll_pull_waiter *waiters;
  char base_url[512]; /* scheme://host */
  char repo[200];     /* namespace/model */
  char *token;
  struct hreq *req;
  char *manifest;
  size_t manifest_len;
  struct jlayer *layers;
  int n_layers, cur;
  struct blob *blob;
  uv_timer_t progress;
  uv_work_t work;
  bool work_pending, dead;
  bool pinned;      /* layers pinned in the store (cll_store_pin) until the job ends */
  int removed;      /* layers deleted by the manifest write */
  int rc;
  cll_err err;
};

static void job_emit(struct job *j, const cll_pull_event *ev) {
  for (struct cll_pull_waiter *w = j->waiters; w;) {
    struct cll_pull_waiter *next = w->next;
    w->fn(ev, w->arg);
    w = next;
  }
}

static void job_status(struct job *j, const char *status) {
  cll_pull_event ev = {.status = status};
  job_emit(j, &ev);
}

static void job_layer_progress(struct job *j, int64_t completed) {
  struct jlayer *l = &j->layers[j->cur];
  char status[32], digest[80];
  snprintf(status, sizeof(status), "pulling %.12s", l->digest);
  snprintf(digest, sizeof(digest), "sha256:%s", l->digest);
  cll_pull_event ev = {.status = status, .digest = digest, .total = l->size,
                       .completed = completed};
  job_emit(j, &ev);
}

static void on_job_closed(uv_handle_t *h) {
  struct job *j = h->data;
  cll_registry *reg = j->reg;
  if (j->pinned)
    for (int i = 0; i < j->n_layers; i++)
      cll_store_unpin(reg->store, j->layers[i].digest);
  free(j->token);
  free(j->manifest);
  free(j->layers);
  free(j);
  reg->n_jobs--;
  reg_maybe_free(reg);
}

/* Unlinks and frees the job (waiters must be gone). */
static void job_destroy(struct job *j) {
  cll_registry *reg = j->reg;
  for (struct job **pp = &reg->jobs; *pp; pp = &(*pp)->next)
    if (*pp == j) {
      *pp = j->next;
      break;
    }
  j->dead = true;
  if (j->blob) {
    struct blob *b = j->blob;
    j->blob = NULL;
    blob_detach(b, j);
  }
  hreq_cancel(j->req);
  j->req = NULL;
  if (j->work_pending)
    return; /* after_write_manifest finishes the job */
  uv_timer_stop(&j->progress);
  uv_close((uv_handle_t *)&j->progress, on_job_closed);
}

/* Sends the final event and ends the job. */
static void job_end(struct job *j, int rc, const char *msg) {
  cll_pull_event ev = {.done = true};
  if (rc == 0)
    ev.status = "success";
  else
    ev.error = msg;
  struct cll_pull_waiter *w = j->waiters;
  j->waiters = NULL;
  while (w) {
    struct cll_pull_waiter *next = w->next;
    w->fn(&ev, w->arg);
    free(w);
    w = next;
  }
  job_destroy(j);
}

static void job_fail(struct job *j, int rc, const char *fmt, ...) {
  char msg[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  job_end(j, rc, msg);
}

static void on_progress(uv_timer_t *t) {
  struct job *j = t->data;
  if (j->blob && j->cur < j->n_layers)
    job_layer_progress(j, blob_completed(j->blob));
}

static void write_manifest_work(uv_work_t *w) {
  struct job *j = w->data;
  cll_registry *reg = j->reg;
  cll_manifest *old = NULL;
  if (reg->opts.prune && cll_store_read_manifest(reg->store, &j->name, &old, NULL) != 0)
    old = NULL;
  j->rc = cll_store_write_manifest(reg->store, &j->name, j->manifest, j->manifest_len, &j->err);
  j->removed = 0;
  if (j->rc != 0 || old == NULL) {
    cll_manifest_free(old);
    return;
  }
  /* Layers of the replaced manifest that nothing references (or pins) any
   * more. */
  const char **hexes = malloc((old->n_layers + 1) * sizeof(*hexes));
  size_t nh = 0;
  for (size_t i = 0; hexes && i <= old->n_layers; i++) {
    const char *d = i < old->n_layers ? old->layers[i].digest : old->config.digest;
    bool used = false;
    for (int k = 0; k < j->n_layers && !used; k++)
      used = strcmp(j->layers[k].digest, d) == 0;
    if (!used)
      hexes[nh++] = d;
  }
  int removed = hexes ? cll_store_collect(reg->store, hexes, nh) : 0;
  j->removed = removed > 0 ? removed : 0;
  free(hexes);
  cll_manifest_free(old);
}

static void after_write_manifest(uv_work_t *w, int status) {
  struct job *j = w->data;
  j->work_pending = false;
  if (j->dead) {
    uv_close((uv_handle_t *)&j->progress, on_job_closed);
    return;
  }
  if (j->rc != 0) {
    job_fail(j, j->rc, "%s", j->err.msg[0] ? j->err.msg : cll_strerror(j->rc));
    return;
  }
  if (j->removed > 0)
    job_status(j, "removing unused layers");
  job_end(j, 0, NULL);
}

static void job_next_layer(struct job *j) {
  cll_registry *reg = j->reg;
  for (; j->cur < j->n_layers; j->cur++) {
    struct jlayer *l = &j->layers[j->cur];
    char d[80];
    if (cll_store_blob_exists(reg->store, dg(l->digest, d), l->size)) {
      /* Cache hit: one progress line, no download, no verification. */
      job_layer_progress(j, l->size);
      continue;
    }
    struct blob *b = blob_get(reg, l->digest, l->size, j->base_url, j->repo, j->token);
    if (b == NULL || blob_attach(b, j) != 0) {
      if (b && b->n_waiters == 0)
        blob_stop(b);
      job_fail(j, CLL_ENOMEM, "out of memory");
      return;
    }
    j->blob = b;
    job_layer_progress(j, blob_completed(b));
    uv_timer_start(&j->progress, on_progress, reg->opts.progress_ms, reg->opts.progress_ms);
    return;
  }
  job_status(j, "verifying sha256 digest");
  job_status(j, "writing manifest");
  j->work.data = j;
  j->work_pending = true;
  if (uv_queue_work(reg->loop, &j->work, write_manifest_work, after_write_manifest) != 0) {
    j->work_pending = false;
    job_fail(j, CLL_EIO, "cannot queue the manifest write");
  }
}

static void job_on_blob(struct job *j, int rc, const cll_err *err) {
  j->blob = NULL;
  uv_timer_stop(&j->progress);
  if (rc != 0) {
    if (rc == CLL_EDIGEST)
      job_status(j, "verifying sha256 digest");
    job_fail(j, rc, "%s", err && err->msg[0] ? err->msg : cll_strerror(rc));
    return;
  }
  job_layer_progress(j, j->layers[j->cur].size);
  j->cur++;
  job_next_layer(j);
}

static int add_layer(struct job *j, json_t *obj) {
  const char *d = json_string_value(json_object_get(obj, "digest"));
  json_t *sz = json_object_get(obj, "size");
  struct jlayer *l = &j->layers[j->n_layers];
  if (d == NULL || cll_digest_parse(d, l->digest) != 0 || !json_is_integer(sz) ||
      json_integer_value(sz) < 0)
    return CLL_EFORMAT;
  l->size = json_integer_value(sz);
  for (int i = 0; i < j->n_layers; i++) /* the same blob twice is fetched once */
    if (strcmp(j->layers[i].digest, l->digest) == 0)
      return 0;
  j->n_layers++;
  return 0;
}

static void on_manifest(struct hreq *r, void *arg) {
  struct job *j = arg;
  j->req = NULL;
  if (r->token) {
    free(j->token);
    j->token = xstrdup(r->token);
  }
  if (r->rc != 0) {
    job_fail(j, r->rc, "pull model manifest: %s", r->err.msg);
    hreq_free(r);
    return;
  }
  if (r->status == 404) {
    hreq_free(r);
    job_fail(j, CLL_ENOENT, "pull model manifest: file does not exist");
    return;
  }
  if (r->status >= 400 || r->status < 200) {
    job_fail(j, CLL_ENET, "pull model manifest: %ld: %.300s", r->status,
             r->body ? r->body : "");
    hreq_free(r);
    return;
  }
  j->manifest = r->body ? r->body : strdup("");
  j->manifest_len = r->body_len;
  r->body = NULL;
  hreq_free(r);
  json_error_t jerr;
  json_t *m = json_loadb(j->manifest, j->manifest_len, 0, &jerr);
  json_t *layers = json_object_get(m, "layers");
  json_t *config = json_object_get(m, "config");
  size_t n = json_array_size(layers) + 1;
  j->layers = calloc(n, sizeof(*j->layers));
  int rc = m && json_is_array(layers) && json_is_object(config) && j->layers ? 0 : CLL_EFORMAT;
  for (size_t i = 0; rc == 0 && i < json_array_size(layers); i++)
    rc = add_layer(j, json_array_get(layers, i));
  if (rc == 0)
    rc = add_layer(j, config);
  json_decref(m);
  if (rc != 0) {
    job_fail(j, CLL_EFORMAT, "pull model manifest: invalid manifest");
    return;
  }
  /* From now until the job ends, blob collection (a delete, another
   * pull's prune) leaves these layers alone, cached ones included. */
  for (int i = 0; i < j->n_layers; i++)
    cll_store_pin(j->reg->store, j->layers[i].digest);
  j->pinned = true;
  j->cur = 0;
  job_next_layer(j);
}

static void job_start(struct job *j) {
  cll_registry *reg = j->reg;
  if (strcmp(j->name.scheme, "http") == 0 && !j->insecure) {
    job_fail(j, CLL_EINVAL, "insecure protocol http");
    return;
  }
  snprintf(j->base_url, sizeof(j->base_url), "%s://%s", j->insecure ? "http" : j->name.scheme,
           j->name.host);
  snprintf(j->repo, sizeof(j->repo), "%s/%s", j->name.ns, j->name.model);
  job_status(j, "pulling manifest");
  char url[1200];
  snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", j->base_url, j->repo, j->name.tag);
  j->req = hreq_new(reg, url, NULL, on_manifest, j);
  if (j->req == NULL) {
    job_fail(j, CLL_ENOMEM, "out of memory");
    return;
  }
  j->req->accept = MANIFEST_ACCEPT;
  j->req->keep_body = true;
  int rc = hreq_send(j->req);
  if (rc != 0)
    job_fail(j, rc, "pull model manifest: cannot start the request");
}

/* ============================================================== registry */

void cll_registry_opts_defaults(cll_registry_opts *o) {
  memset(o, 0, sizeof(*o));
  o->part_min_bytes = 100 * 1000 * 1000;
  o->part_max_bytes = 1000 * 1000 * 1000;
  o->max_parts = 16;
  o->stall_ms = 30000;
  o->max_retries = 6;
  o->retry_base_ms = 1000;
  o->progress_ms = 60;
  o->write_buffer_bytes = 1 << 20;
  o->prune = true;
  snprintf(o->key_dir, sizeof(o->key_dir), "./.ollama"); /* the caller sets $HOME/.ollama */
  snprintf(o->user_agent, sizeof(o->user_agent), "ollama/%s (amd64 linux) Go/go1.24.1 cllama/%s",
           "0.12.0", CLLAMA_VERSION);
}

int cll_registry_new(uv_loop_t *loop, cll_store *store, const cll_registry_opts *opts,
                     cll_registry **out, cll_err *err) {
  cll_registry *reg = calloc(1, sizeof(*reg));
  if (reg == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  reg->loop = loop;
  reg->store = store;
  if (opts)
    reg->opts = *opts;
  else
    cll_registry_opts_defaults(&reg->opts);
  if (reg->opts.write_buffer_bytes < 64 * 1024)
    reg->opts.write_buffer_bytes = 64 * 1024;
  if (reg->opts.max_parts < 1)
    reg->opts.max_parts = 1;
  int rc = cll_curl_uv_new(loop, &reg->cu);
  if (rc != 0) {
    free(reg);
    return cll_err_set(err, rc, "libcurl initialisation failed");
  }
  uv_prepare_init(loop, &reg->turn);
  reg->turn.data = reg;
  *out = reg;
  return 0;
}

static void on_turn_closed(uv_handle_t *h) {
  cll_registry *reg = h->data;
  free(reg->fair);
  free(reg);
}

static void reg_maybe_free(cll_registry *reg) {
  if (reg->closing && reg->n_jobs == 0 && reg->n_blobs == 0 && reg->n_work == 0 &&
      reg->cu != NULL) {
    cll_curl_uv_close(reg->cu);
    reg->cu = NULL;
    uv_close((uv_handle_t *)&reg->turn, on_turn_closed);
  }
}

void cll_registry_close(cll_registry *reg) {
  if (reg == NULL || reg->closing)
    return;
  reg->closing = true;
  reg->n_jobs++; /* hold the registry while jobs end */
  while (reg->jobs)
    job_fail(reg->jobs, CLL_ECANCELED, "server is shutting down");
  reg->n_jobs--;
  reg_maybe_free(reg);
}

int cll_registry_active(const cll_registry *reg) {
  return reg ? reg->n_jobs : 0;
}

int cll_registry_pull(cll_registry *reg, const cll_name *name, bool insecure,
                      cll_pull_event_fn fn, void *arg, cll_pull_waiter **out, cll_err *err) {
  if (reg == NULL || name == NULL || fn == NULL || reg->closing)
    return cll_err_set(err, CLL_EINVAL, "invalid argument");
  struct cll_pull_waiter *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  w->fn = fn;
  w->arg = arg;
  struct job *j = reg->jobs;
  for (; j; j = j->next)
    if (j->insecure == insecure && cll_name_equal(&j->name, name) &&
        strcmp(j->name.scheme, name->scheme) == 0)
      break;
  *out = w;
  if (j != NULL) { /* join: this client sees the pull from here on */
    w->job = j;
    w->next = j->waiters;
    j->waiters = w;
    cll_pull_event ev = {.status = "pulling manifest"};
    fn(&ev, arg);
    if (j->blob && j->cur < j->n_layers) {
      struct jlayer *l = &j->layers[j->cur];
      char status[32], digest[80];
      snprintf(status, sizeof(status), "pulling %.12s", l->digest);
      snprintf(digest, sizeof(digest), "sha256:%s", l->digest);
      cll_pull_event p = {.status = status, .digest = digest, .total = l->size,
                          .completed = blob_completed(j->blob)};
      fn(&p, arg);
    }
    return 0;
  }
  j = calloc(1, sizeof(*j));
  if (j == NULL) {
    free(w);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  j->reg = reg;
  j->name = *name;
  j->insecure = insecure;
  uv_timer_init(reg->loop, &j->progress);
  j->progress.data = j;
  j->next = reg->jobs;
  reg->jobs = j;
  reg->n_jobs++;
  w->job = j;
  j->waiters = w;
  job_start(j); /* may end the job at once (then fn has had its done event) */
  return 0;
}

void cll_registry_pull_cancel(cll_pull_waiter *w) {
  if (w == NULL)
    return;
  struct job *j = w->job;
  for (struct cll_pull_waiter **pp = &j->waiters; *pp; pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      break;
    }
  free(w);
  if (j->waiters == NULL)
    job_destroy(j);
}
