/* push.c — cll_registry_push (push.h): Ollama's upload protocol as a state
 * machine on the registry's loop.
 *
 * DESIGN. A push walks its blobs in order (the config, then the layers).
 * Each one goes HEAD -> POST -> PUT (monolithic), or HEAD -> POST -> PATCH
 * per part (a 307 sends the part with a PUT to the redirect instead) ->
 * PUT ?digest= (the commit); the manifest PUT comes last. Every request is
 * one hreq (reg_req.c: the Bearer challenge and the token) on the
 * registry's libcurl multi, and its done callback takes the next step.
 * Transient failures (network, 5xx, 408, 429) are sent again from the
 * push's timer with a doubling back-off; the part being sent is read again
 * from its start.
 *
 * The reader streams a byte range of the blob file into libcurl without
 * the loop ever touching the disk: a uv work item preads the next
 * READ_BUF_BYTES into the back buffer (and feeds the part's md5, which
 * Ollama's commit etag needs) while libcurl copies out of the front one;
 * when both are empty the read callback answers CURL_READFUNC_PAUSE and the
 * work item's after-work unpauses the transfer. One work item at a time;
 * a restarted transfer bumps the generation so a stale read is dropped.
 *
 * Lifetime: a push ends by its done event (then teardown), by cancel
 * (teardown from the timer, outside any libcurl callback) or by the
 * registry closing. Teardown cancels the request, unpins the blobs and
 * closes the timer once no work item is out; the close callback frees it. */
#include "cllama/push.h"
#include "pull_internal.h"

#include <openssl/evp.h>
#include <stddef.h>

#define MANIFEST_TYPE "application/vnd.docker.distribution.manifest.v2+json"
#define READ_BUF_BYTES (256 * 1024)

enum step { S_HEAD, S_POST, S_PUT, S_PATCH, S_PART_PUT, S_COMMIT, S_MANIFEST };

struct reader {
  int fd;             /* the blob being pushed, or -1 */
  int64_t start, end; /* the byte range [start, end) being sent */
  int64_t handed;     /* bytes given to libcurl in this attempt */
  int64_t next_off;   /* where the next read starts */
  char *front, *back; /* READ_BUF_BYTES each: libcurl copies from front */
  size_t front_len, front_pos, back_len;
  bool back_ready; /* back holds back_len bytes read at next_off - back_len */
  bool reading;    /* a work item is out (it owns back, md5, the w_ fields) */
  bool paused;     /* the read callback answered CURL_READFUNC_PAUSE */
  unsigned gen, work_gen;
  int err;         /* errno of a failed read; the transfer aborts */
  EVP_MD_CTX *md5; /* md5 of [start, next_off): the part's, for the etag */
  uv_work_t work;
  int64_t w_off; /* the work item's read: w_len bytes at w_off */
  size_t w_len, w_got;
  bool w_init; /* w_off is the range start: restart the md5 */
  int w_errno;
};

struct cll_push {
  cll_registry *reg;
  struct cll_push *next; /* reg->pushes */
  cll_name name;
  bool insecure;
  cll_pull_event_fn fn; /* NULL once done or cancelled */
  void *arg;
  cll_manifest *m;
  size_t n_pinned;
  char base[600]; /* scheme://host */
  char repo[300]; /* ns/model */
  char *token;    /* the registry's Bearer token once one was given */
  int64_t part_bytes;
  /* the blob being pushed */
  size_t cur; /* the next blob: 0 the config, i+1 layer i */
  const cll_layer *l;
  char digest[80], status[32];
  enum step step;
  char *loc;      /* the upload's next URL */
  char *redirect; /* where a redirected part goes (another host) */
  int64_t part_off, part_len;
  int n_parts;
  EVP_MD_CTX *etag; /* md5 over the parts' md5s */
  char etag_hex[48];
  char range_hdr[96];
  const char *hdrs[4];
  /* the request in flight */
  struct hreq *req;
  const char *method;
  bool to_registry; /* req goes to the registry (it gets and keeps its token) */
  int attempt;
  uv_timer_t timer; /* retry back-off; cancel's teardown */
  struct reader rd;
  uint64_t last_event_ms;
  bool cancelled, torn_down;
  cll_err err;
};

static void send_step(cll_push *p);
static void on_req_done(struct hreq *r, void *arg);

/* ---------------------------------------------------------------- events */

static void emit(cll_push *p, const char *status, const char *digest, int64_t total,
                 int64_t completed) {
  if (p->fn == NULL)
    return;
  cll_pull_event ev = {.status = status, .digest = digest, .total = total, .completed = completed};
  p->last_event_ms = uv_now(p->reg->loop);
  p->fn(&ev, p->arg);
}

static void on_closed(uv_handle_t *h) {
  cll_push *p = h->data;
  cll_registry *reg = p->reg;
  free(p->rd.front);
  free(p->rd.back);
  EVP_MD_CTX_free(p->rd.md5);
  EVP_MD_CTX_free(p->etag);
  free(p->token);
  free(p->loc);
  free(p->redirect);
  free(p);
  reg->n_pushes--;
  cll__reg_maybe_free(reg);
}

/* Frees p once nothing is out: the timer's close callback is the last. */
static void maybe_close(cll_push *p) {
  if (!p->torn_down || p->rd.reading || uv_is_closing((uv_handle_t *)&p->timer))
    return;
  if (p->rd.fd >= 0)
    close(p->rd.fd);
  p->rd.fd = -1;
  uv_close((uv_handle_t *)&p->timer, on_closed);
}

static void teardown(cll_push *p) {
  if (p->torn_down)
    return;
  p->torn_down = true;
  p->fn = NULL;
  if (p->req) {
    cll__hreq_cancel(p->req);
    p->req = NULL;
  }
  uv_timer_stop(&p->timer);
  if (p->m) {
    size_t k = 0;
    if (p->m->config.digest[0] && k < p->n_pinned) {
      cll_store_unpin(p->reg->store, p->m->config.digest);
      k++;
    }
    for (size_t i = 0; i < p->m->n_layers && k < p->n_pinned; i++, k++)
      cll_store_unpin(p->reg->store, p->m->layers[i].digest);
    cll_manifest_free(p->m);
    p->m = NULL;
  }
  for (cll_push **pp = &p->reg->pushes; *pp; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  maybe_close(p);
}

/* The last event ("success" with rc 0, else p->err), then teardown. */
static void finish(cll_push *p, int rc) {
  cll_pull_event_fn fn = p->fn;
  p->fn = NULL;
  if (fn) {
    cll_pull_event ev = {.done = true};
    if (rc == 0)
      ev.status = "success";
    else
      ev.error = p->err.msg[0] ? p->err.msg : cll_strerror(rc);
    fn(&ev, p->arg);
  }
  teardown(p);
}

static void fail(cll_push *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(cll_push *p, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err.msg, sizeof(p->err.msg), fmt, ap);
  va_end(ap);
  p->err.code = code;
  finish(p, code);
}

/* ---------------------------------------------------------------- reader */

static void on_read_work(uv_work_t *w) {
  struct reader *rd = w->data;
  if (rd->w_init)
    EVP_DigestInit_ex(rd->md5, EVP_md5(), NULL);
  size_t got = 0;
  rd->w_errno = 0;
  while (got < rd->w_len) {
    ssize_t k = pread(rd->fd, rd->back + got, rd->w_len - got, (off_t)(rd->w_off + (int64_t)got));
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      rd->w_errno = k < 0 ? errno : EIO; /* a blob shorter than its manifest says */
      break;
    }
    got += (size_t)k;
  }
  rd->w_got = got;
  if (got == rd->w_len)
    EVP_DigestUpdate(rd->md5, rd->back, got);
}

static void after_read_work(uv_work_t *w, int status);

/* Starts reading the next buffer when back is free and bytes are left. */
static void kick(cll_push *p) {
  struct reader *rd = &p->rd;
  if (rd->reading || rd->back_ready || rd->next_off >= rd->end || rd->err || p->torn_down ||
      p->cancelled)
    return;
  int64_t left = rd->end - rd->next_off;
  rd->w_off = rd->next_off;
  rd->w_len = left < READ_BUF_BYTES ? (size_t)left : READ_BUF_BYTES;
  rd->w_init = rd->next_off == rd->start;
  rd->work_gen = rd->gen;
  rd->work.data = rd;
  rd->reading = true;
  if (uv_queue_work(p->reg->loop, &rd->work, on_read_work, after_read_work) != 0) {
    rd->reading = false;
    rd->err = EIO;
  }
}

static void swap(struct reader *rd) {
  char *t = rd->front;
  rd->front = rd->back;
  rd->back = t;
  rd->front_len = rd->back_len;
  rd->front_pos = 0;
  rd->back_ready = false;
}

/* The transfer waits for data (or for the error that aborts it). */
static void wake(cll_push *p) {
  if (!p->rd.paused)
    return;
  p->rd.paused = false;
  if (p->req && p->req->easy)
    cll_curl_uv_unpause(p->reg->cu, p->req->easy);
}

static void after_read_work(uv_work_t *w, int status) {
  struct reader *rd = w->data;
  cll_push *p = (cll_push *)((char *)rd - offsetof(cll_push, rd));
  rd->reading = false;
  if (p->torn_down) {
    maybe_close(p);
    return;
  }
  if (rd->work_gen != rd->gen) { /* the transfer restarted meanwhile */
    kick(p);
    return;
  }
  if (status != 0 || rd->w_got != rd->w_len) {
    rd->err = status != 0 ? EIO : rd->w_errno;
    wake(p);
    return;
  }
  rd->back_len = rd->w_len;
  rd->back_ready = true;
  rd->next_off += (int64_t)rd->w_len;
  if (rd->front_pos == rd->front_len) {
    swap(rd);
    kick(p);
  }
  wake(p);
}

/* hreq's on_send: every attempt sends the range from its start. */
static void on_send(struct hreq *r) {
  cll_push *p = r->send_arg;
  struct reader *rd = &p->rd;
  rd->gen++;
  rd->handed = 0;
  rd->next_off = rd->start;
  rd->front_len = rd->front_pos = 0;
  rd->back_ready = false;
  rd->paused = false;
  rd->err = 0;
  kick(p);
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  cll_push *p = arg;
  struct reader *rd = &p->rd;
  if (p->cancelled || rd->err)
    return CURL_READFUNC_ABORT;
  int64_t left = rd->end - rd->start - rd->handed;
  if (left <= 0)
    return 0;
  if (rd->front_pos == rd->front_len && rd->back_ready) {
    swap(rd);
    kick(p);
  }
  if (rd->front_pos == rd->front_len) {
    rd->paused = true;
    kick(p);
    return CURL_READFUNC_PAUSE;
  }
  size_t k = size * n;
  if (k > rd->front_len - rd->front_pos)
    k = rd->front_len - rd->front_pos;
  if ((int64_t)k > left)
    k = (size_t)left;
  memcpy(buf, rd->front + rd->front_pos, k);
  rd->front_pos += k;
  rd->handed += (int64_t)k;
  if (rd->front_pos == rd->front_len && rd->back_ready)
    swap(rd);
  kick(p);
  return k;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  cll_push *p = arg;
  if (p->cancelled)
    return 1;
  if (p->step != S_PUT && p->step != S_PATCH && p->step != S_PART_PUT)
    return 0;
  int64_t sent = un < (curl_off_t)p->part_len ? (int64_t)un : p->part_len;
  int64_t done = p->part_off + sent;
  if (uv_now(p->reg->loop) - p->last_event_ms >= p->reg->opts.progress_ms && done < p->l->size)
    emit(p, p->status, p->digest, p->l->size, done);
  return 0;
}

/* ---------------------------------------------------------------- requests */

/* An upload Location may be relative to the registry. New string. */
static char *absolute(cll_push *p, const char *loc) {
  char buf[4096];
  if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8))
    snprintf(buf, sizeof(buf), "%s", loc);
  else
    snprintf(buf, sizeof(buf), "%s%s%s", p->base, loc[0] == '/' ? "" : "/", loc);
  return strdup(buf);
}

/* Sets *dst to loc made absolute; false (the push failed) when out of memory. */
static bool set_url(cll_push *p, char **dst, const char *loc) {
  free(*dst);
  if ((*dst = absolute(p, loc)) != NULL)
    return true;
  fail(p, CLL_ENOMEM, "out of memory");
  return false;
}

/* The registry's message in an error answer ({"errors":[{"message"}]}). */
static const char *reg_message(const struct hreq *r, char *buf, size_t size) {
  json_t *j = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
  const char *m = json_string_value(
      json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
  snprintf(buf, size, "%s", m ? m : r->body ? r->body : "");
  json_decref(j);
  return buf;
}

/* Sends one request of the current step; body: the reader's range
 * [off, off+len) when len >= 0, else mem (mem_len bytes) or nothing. */
static void request(cll_push *p, const char *method, const char *url, bool to_registry, int64_t off,
                    int64_t len, const char *mem, size_t mem_len) {
  struct hreq *r = cll__hreq_new(p->reg, url, to_registry ? p->token : NULL, on_req_done, p);
  if (r == NULL) {
    fail(p, CLL_ENOMEM, "out of memory");
    return;
  }
  p->req = r;
  p->method = method;
  p->to_registry = to_registry;
  r->head = !strcmp(method, "HEAD");
  r->follow = r->head; /* a blob may live elsewhere */
  r->keep_body = !r->head;
  r->method = r->head ? NULL : method;
  r->extra = p->hdrs;
  r->send_arg = p;
  r->progress = on_progress;
  if (len >= 0) {
    if (p->rd.front == NULL && ((p->rd.front = malloc(READ_BUF_BYTES)) == NULL ||
                                (p->rd.back = malloc(READ_BUF_BYTES)) == NULL)) {
      fail(p, CLL_ENOMEM, "out of memory");
      return;
    }
    p->rd.start = off;
    p->rd.end = off + len;
    r->send_read = on_read;
    r->on_send = on_send;
    r->send_size = len;
  } else {
    r->send_mem = mem;
    r->send_len = mem_len;
  }
  int rc = cll__hreq_send(r);
  if (rc != 0)
    fail(p, rc, "%s %s: cannot start the request", method, url);
}

static void on_retry(uv_timer_t *t) {
  send_step(t->data);
}

static void send_step(cll_push *p) {
  char url[4400];
  if (p->req) {
    cll__hreq_free(p->req);
    p->req = NULL;
  }
  static const char *const octet = "Content-Type: application/octet-stream";
  p->hdrs[0] = p->hdrs[1] = p->hdrs[2] = p->hdrs[3] = NULL;
  const char *q = p->loc && strchr(p->loc, '?') ? "&" : "?";
  switch (p->step) {
  case S_HEAD:
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", p->base, p->repo, p->digest);
    request(p, "HEAD", url, true, 0, -1, NULL, 0);
    break;
  case S_POST:
    snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", p->base, p->repo);
    request(p, "POST", url, true, 0, -1, NULL, 0);
    break;
  case S_PUT: /* monolithic: the whole blob with its digest */
    p->hdrs[0] = octet;
    snprintf(url, sizeof(url), "%s%sdigest=%s", p->loc, q, p->digest);
    request(p, "PUT", url, true, 0, p->l->size, NULL, 0);
    break;
  case S_PATCH: /* Ollama's header: the registry may redirect the part */
    snprintf(p->range_hdr, sizeof(p->range_hdr), "Content-Range: %lld-%lld", (long long)p->part_off,
             (long long)(p->part_off + p->part_len - 1));
    p->hdrs[0] = octet;
    p->hdrs[1] = p->range_hdr;
    p->hdrs[2] = "X-Redirect-Uploads: 1";
    request(p, "PATCH", p->loc, true, p->part_off, p->part_len, NULL, 0);
    break;
  case S_PART_PUT: /* another host: never the registry's token */
    p->hdrs[0] = octet;
    request(p, "PUT", p->redirect, false, p->part_off, p->part_len, NULL, 0);
    break;
  case S_COMMIT:
    p->hdrs[0] = octet;
    snprintf(url, sizeof(url), "%s%sdigest=%s&etag=%s", p->loc, q, p->digest, p->etag_hex);
    request(p, "PUT", url, true, 0, -1, NULL, 0);
    break;
  case S_MANIFEST:
    p->hdrs[0] = "Content-Type: " MANIFEST_TYPE;
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", p->base, p->repo, p->name.tag);
    request(p, "PUT", url, true, 0, -1, p->m->raw, p->m->raw_len);
    break;
  }
}

static void go(cll_push *p, enum step s) {
  p->step = s;
  p->attempt = 0;
  send_step(p);
}

/* ---------------------------------------------------------------- blobs */

static void blob_next(cll_push *p) {
  for (;;) {
    size_t i = p->cur++;
    const cll_layer *l = NULL;
    if (i == 0)
      l = p->m->config.digest[0] ? &p->m->config : NULL;
    else if (i - 1 < p->m->n_layers)
      l = &p->m->layers[i - 1];
    else {
      emit(p, "pushing manifest", NULL, 0, 0);
      if (!p->torn_down && !p->cancelled)
        go(p, S_MANIFEST);
      return;
    }
    if (l == NULL)
      continue;
    p->l = l;
    snprintf(p->digest, sizeof(p->digest), "sha256:%s", l->digest);
    snprintf(p->status, sizeof(p->status), "pushing %.12s", l->digest);
    p->part_off = 0;
    p->part_len = 0;
    go(p, S_HEAD);
    return;
  }
}

static void blob_done(cll_push *p) {
  if (p->rd.fd >= 0)
    close(p->rd.fd); /* every read is back: the transfer took all of them */
  p->rd.fd = -1;
  emit(p, p->status, p->digest, p->l->size, p->l->size);
  if (!p->torn_down && !p->cancelled)
    blob_next(p);
}

/* The blob is not on the registry: open it, then start an upload. */
static void blob_upload(cll_push *p) {
  char path[4200];
  if (cll_store_blob_path(p->reg->store, p->digest, path, sizeof(path)) != 0) {
    fail(p, CLL_EIO, "bad digest %s", p->l->digest);
    return;
  }
  /* open(2) reads no data; the bytes come through the reader's work items */
  p->rd.fd = open(path, O_RDONLY | O_CLOEXEC);
  if (p->rd.fd < 0) {
    fail(p, CLL_ENOENT, "blob %s is missing from the store", p->digest);
    return;
  }
  emit(p, p->status, p->digest, p->l->size, 0);
  if (!p->torn_down && !p->cancelled)
    go(p, S_POST);
}

/* A part went up (to the registry or its redirect). */
static void part_done(cll_push *p) {
  unsigned char sum[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(p->rd.md5, sum, &n);
  EVP_DigestUpdate(p->etag, sum, n);
  p->n_parts++;
  p->part_off += p->part_len;
  emit(p, p->status, p->digest, p->l->size, p->part_off);
  if (p->torn_down || p->cancelled)
    return;
  if (p->part_off < p->l->size) {
    int64_t left = p->l->size - p->part_off;
    p->part_len = left < p->part_bytes ? left : p->part_bytes;
    go(p, S_PATCH);
    return;
  }
  EVP_DigestFinal_ex(p->etag, sum, &n);
  int k = 0;
  for (unsigned i = 0; i < n && k + 3 < (int)sizeof(p->etag_hex); i++)
    k += snprintf(p->etag_hex + k, sizeof(p->etag_hex) - (size_t)k, "%02x", sum[i]);
  snprintf(p->etag_hex + k, sizeof(p->etag_hex) - (size_t)k, "-%d", p->n_parts);
  go(p, S_COMMIT);
}

static bool ok_status(long st) {
  return st == 200 || st == 201 || st == 204;
}

static void on_req_done(struct hreq *r, void *arg) {
  cll_push *p = arg;
  if (p->cancelled)
    return; /* the teardown timer frees r */
  if (p->to_registry && r->token && (p->token == NULL || strcmp(p->token, r->token) != 0)) {
    free(p->token);
    p->token = strdup(r->token);
  }
  long st = r->status;
  char msg[400];
  if (p->rd.err) {
    fail(p, CLL_EIO, "cannot read the blob %s: %s", p->digest, strerror(p->rd.err));
    return;
  }
  bool net = r->rc != 0 && r->result != CURLE_OK;
  if (r->rc != 0 && !net) { /* auth: the token request failed or was refused */
    fail(p, r->rc, "%s", r->err.msg[0] ? r->err.msg : cll_strerror(r->rc));
    return;
  }
  if (net || st >= 500 || st == 408 || st == 429) {
    if (++p->attempt > p->reg->opts.max_retries) {
      if (net)
        fail(p, CLL_ENET, "%s %s: %s", p->method, r->url, curl_easy_strerror(r->result));
      else
        fail(p, CLL_EIO, "%s %s: HTTP %ld%s%.200s", p->method, r->url, st, r->body ? ": " : "",
             r->body ? r->body : "");
      return;
    }
    int shift = p->attempt - 1 < 10 ? p->attempt - 1 : 10;
    uv_timer_start(&p->timer, on_retry, p->reg->opts.retry_base_ms << shift, 0);
    return;
  }
  const char *next = r->upload_location ? r->upload_location : r->location;
  switch (p->step) {
  case S_HEAD:
    if (st == 200) {
      emit(p, p->status, p->digest, p->l->size, p->l->size);
      if (!p->torn_down && !p->cancelled)
        blob_next(p);
    } else if (st == 404) {
      blob_upload(p);
    } else {
      fail(p, CLL_EIO, "checking %s on the registry: HTTP %ld", p->digest, st);
    }
    return;
  case S_POST:
    if (st == 201) { /* mounted: the registry has it */
      blob_done(p);
      return;
    }
    if (st != 202 || next == NULL || !*next) {
      fail(p, CLL_EIO, "starting the upload of %s: HTTP %ld %s", p->digest, st,
           reg_message(r, msg, sizeof(msg)));
      return;
    }
    if (!set_url(p, &p->loc, next))
      return;
    if (p->l->size <= p->part_bytes) {
      p->part_off = 0;
      p->part_len = p->l->size;
      go(p, S_PUT);
      return;
    }
    p->part_off = 0;
    p->part_len = p->part_bytes;
    p->n_parts = 0;
    EVP_DigestInit_ex(p->etag, EVP_md5(), NULL);
    go(p, S_PATCH);
    return;
  case S_PUT:
    if (!ok_status(st) || p->rd.handed != p->l->size) {
      fail(p, CLL_EIO, "uploading %s: HTTP %ld %s", p->digest, st,
           reg_message(r, msg, sizeof(msg)));
      return;
    }
    blob_done(p);
    return;
  case S_PATCH:
    if (st == 307 && r->location && *r->location) {
      /* Ollama's redirected upload: the part goes to Location (object
       * storage) with a PUT; Docker-Upload-Location is the next PATCH's. */
      if (!set_url(p, &p->redirect, r->location) ||
          (r->upload_location && !set_url(p, &p->loc, r->upload_location)))
        return;
      go(p, S_PART_PUT);
      return;
    }
    if ((st != 202 && st != 204) || p->rd.handed != p->part_len) {
      fail(p, CLL_EIO, "uploading %s (bytes %lld-%lld): HTTP %ld %s", p->digest,
           (long long)p->part_off, (long long)(p->part_off + p->part_len - 1), st,
           reg_message(r, msg, sizeof(msg)));
      return;
    }
    if (next && *next && !set_url(p, &p->loc, next))
      return;
    part_done(p);
    return;
  case S_PART_PUT:
    if (!ok_status(st) || p->rd.handed != p->part_len) {
      fail(p, CLL_EIO, "uploading %s (bytes %lld-%lld) to the redirected location: HTTP %ld %s",
           p->digest, (long long)p->part_off, (long long)(p->part_off + p->part_len - 1), st,
           reg_message(r, msg, sizeof(msg)));
      return;
    }
    part_done(p);
    return;
  case S_COMMIT:
    if (!ok_status(st)) {
      fail(p, CLL_EIO, "completing the upload of %s: HTTP %ld %s", p->digest, st,
           reg_message(r, msg, sizeof(msg)));
      return;
    }
    blob_done(p);
    return;
  case S_MANIFEST:
    if (!ok_status(st)) {
      fail(p, CLL_EIO, "pushing the manifest: HTTP %ld %s", st, reg_message(r, msg, sizeof(msg)));
      return;
    }
    finish(p, 0);
    return;
  }
}

/* ---------------------------------------------------------------- public */

int cll_registry_push(cll_registry *reg, const cll_name *name, bool insecure, cll_pull_event_fn fn,
                      void *arg, cll_push **out, cll_err *err) {
  if (reg == NULL || name == NULL || fn == NULL || reg->closing)
    return cll_err_set(err, CLL_EINVAL, "invalid argument");
  cll_push *p = calloc(1, sizeof(*p));
  if (p == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  p->etag = EVP_MD_CTX_new();
  p->rd.md5 = EVP_MD_CTX_new();
  if (p->etag == NULL || p->rd.md5 == NULL) {
    EVP_MD_CTX_free(p->etag);
    EVP_MD_CTX_free(p->rd.md5);
    free(p);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  p->reg = reg;
  p->name = *name;
  p->insecure = insecure;
  p->fn = fn;
  p->arg = arg;
  p->rd.fd = -1;
  p->part_bytes = reg->opts.push_part_bytes > 0 ? reg->opts.push_part_bytes : 100 * 1000 * 1000;
  uv_timer_init(reg->loop, &p->timer);
  p->timer.data = p;
  p->next = reg->pushes;
  reg->pushes = p;
  reg->n_pushes++;
  *out = p;

  emit(p, "retrieving manifest", NULL, 0, 0);
  if (p->torn_down || p->cancelled)
    return 0;
  int rc = 0;
  if (strcmp(p->name.scheme, "http") == 0 && !p->insecure)
    rc = cll_err_set(&p->err, CLL_EINVAL, "insecure protocol http");
  if (rc == 0) /* a manifest is a few KiB: read on the loop (store.h) */
    rc = cll_store_read_manifest(reg->store, &p->name, &p->m, &p->err);
  if (rc != 0) {
    finish(p, rc);
    return 0;
  }
  snprintf(p->base, sizeof(p->base), "%s://%s", p->insecure ? "http" : p->name.scheme,
           p->name.host);
  snprintf(p->repo, sizeof(p->repo), "%s/%s", p->name.ns, p->name.model);
  /* Pinned while read, so that a delete cannot take them mid-upload. */
  if (p->m->config.digest[0] && cll_store_pin(reg->store, p->m->config.digest) == 0)
    p->n_pinned++;
  for (size_t i = 0; i < p->m->n_layers && cll_store_pin(reg->store, p->m->layers[i].digest) == 0;
       i++)
    p->n_pinned++;
  p->cur = 0;
  blob_next(p);
  return 0;
}

static void on_cancel_timer(uv_timer_t *t) {
  teardown(t->data);
}

void cll_registry_push_cancel(cll_push *p) {
  if (p == NULL || p->torn_down || p->cancelled)
    return;
  /* Deferred: cancel may come from inside an event, itself inside one of
   * libcurl's callbacks, where the transfer cannot be removed. Until the
   * timer fires, the callbacks see cancelled and abort. */
  p->cancelled = true;
  p->fn = NULL;
  uv_timer_start(&p->timer, on_cancel_timer, 0, 0);
}

void cll__push_close_all(cll_registry *reg) {
  while (reg->pushes) {
    cll_push *p = reg->pushes;
    cll_err_set(&p->err, CLL_ECANCELED, "server is shutting down");
    finish(p, CLL_ECANCELED);
  }
}
