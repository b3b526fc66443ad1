/* pull_blob.c — the download of one blob, shared by every pull job that
 * wants it (the state machine described in pull.c: PREPARE -> HEAD/CREATE
 * -> DIRECT -> RUN -> HASH), with the part files, the fairness turn and
 * settlement. Part of the pull (pull_internal.h). */
#include "pull_internal.h"

static void blob_check(struct blob *b);
static void blob_begin(struct blob *b);
static void fair_forget(struct part *p);

/* Progress counts bytes received (a buffer is on disk a moment later);
 * the part state files count only what is written. While prepare_work
 * runs the parts are the worker's (it builds parts and n_parts): nothing
 * to count yet (found by `make tsan`). Hashing only reads them. */
int64_t cll__blob_completed(const struct blob *b) {
  if (b->work_pending && b->state != B_HASH)
    return 0;
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

void cll__blob_stop(struct blob *b) {
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
    cll__hreq_cancel(b->req);
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
  cll__blob_stop(b);
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
    blob_fail(b, errcode_from_uv((int)r), "write %s-%d: %s", pname(b), p->n, uv_strerror((int)r));
  else if (p->state_dirty)
    part_save_state(p);
  blob_check(b);
}

/* ----------------------------------------------------------- data writes */

static void on_part_written(uv_fs_t *req);

static void part_submit(struct part *p) {
  struct blob *b = p->b;
  uv_buf_t buf =
      uv_buf_init(p->inflight + p->inflight_done, (unsigned)(p->inflight_len - p->inflight_done));
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
    if (!p->fair_paused)                        /* else the next iteration resumes it */
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
  fprintf(stderr, "pull: %.12s part %d attempt %d failed (%s); retrying in %llu ms\n", b->digest,
          p->n, p->attempts, why, (unsigned long long)delay);
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
        if (j == NULL || p->start != next || p->size <= 0 || p->written < 0 || p->written > p->size)
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
    b->rc =
        cll_err_set(&b->err, cll_err_from_errno(errno), "open %s: %s", pname(b), strerror(errno));
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
      b->rc =
          cll_err_set(&b->err, cll_err_from_errno(e), "write %s-%d: %s", pname(b), i, strerror(e));
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
    b->req = cll__hreq_new(b->reg, b->blob_url, b->token, on_head, b);
    if (b->req == NULL) {
      blob_fail(b, CLL_ENOMEM, "out of memory");
      return;
    }
    b->req->head = true;
    b->req->follow = true;
    if (cll__hreq_send(b->req) != 0)
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
  cll__hreq_free(r);
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
    blob_fail(b, CLL_EPROTO, "blob %.12s: registry says %lld bytes, manifest %lld", b->digest,
              (long long)cl, (long long)b->size);
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
  cll__hreq_free(r);
  if (rc == 0 && status >= 300 && status < 400 && loc) {
    char from[400], to[400];
    cll__reg_url_host(url, from, sizeof(from));
    cll__reg_url_host(loc, to, sizeof(to));
    if (strcasecmp(from, to) == 0 && b->direct_tries < 10) {
      /* Same host: follow it ourselves, as Ollama's redirect policy does. */
      b->direct_tries++;
      b->req = cll__hreq_new(b->reg, loc, b->token, on_direct, b);
      free(loc);
      if (b->req == NULL || cll__hreq_send(b->req) != 0)
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
  b->req = cll__hreq_new(b->reg, b->blob_url, b->token, on_direct, b);
  if (b->req == NULL || cll__hreq_send(b->req) != 0)
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
    cll__job_on_blob(w[i], rc, err);
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
  cll__reg_maybe_free(reg);
}

static void blob_free(struct blob *b) {
  cll_registry *reg = b->reg;
  b->finished = true;
  for (struct blob **pp = &reg->blobs; *pp; pp = &(*pp)->next)
    if (*pp == b) {
      *pp = b->next;
      break;
    }
  cll__hreq_cancel(b->req);
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

struct blob *cll__blob_get(cll_registry *reg, const char *digest, int64_t size,
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

int cll__blob_attach(struct blob *b, struct job *j) {
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

void cll__blob_detach(struct blob *b, struct job *j) {
  for (int i = 0; i < b->n_waiters; i++)
    if (b->waiters[i] == j) {
      b->waiters[i] = b->waiters[--b->n_waiters];
      break;
    }
  if (b->n_waiters == 0)
    cll__blob_stop(b);
}
