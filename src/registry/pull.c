/* pull.c — pulling a model from an Ollama registry into the store
 * (OLLAMA_API.md §4).
 *
 * DESIGN. Three kinds of object, all living on the loop thread, in three
 * files sharing pull_internal.h (hreq in reg_req.c, blob in pull_blob.c,
 * jobs and the registry here):
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
#include "pull_internal.h"

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
  bool pinned; /* layers pinned in the store (cll_store_pin) until the job ends */
  int removed; /* layers deleted by the manifest write */
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
  cll_pull_event ev = {
      .status = status, .digest = digest, .total = l->size, .completed = completed};
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
  cll__reg_maybe_free(reg);
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
    cll__blob_detach(b, j);
  }
  cll__hreq_cancel(j->req);
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
    job_layer_progress(j, cll__blob_completed(j->blob));
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
    struct blob *b = cll__blob_get(reg, l->digest, l->size, j->base_url, j->repo, j->token);
    if (b == NULL || cll__blob_attach(b, j) != 0) {
      if (b && b->n_waiters == 0)
        cll__blob_stop(b);
      job_fail(j, CLL_ENOMEM, "out of memory");
      return;
    }
    j->blob = b;
    job_layer_progress(j, cll__blob_completed(b));
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

void cll__job_on_blob(struct job *j, int rc, const cll_err *err) {
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
    cll__hreq_free(r);
    return;
  }
  if (r->status == 404) {
    cll__hreq_free(r);
    job_fail(j, CLL_ENOENT, "pull model manifest: file does not exist");
    return;
  }
  if (r->status >= 400 || r->status < 200) {
    job_fail(j, CLL_ENET, "pull model manifest: %ld: %.300s", r->status, r->body ? r->body : "");
    cll__hreq_free(r);
    return;
  }
  j->manifest = r->body ? r->body : strdup("");
  j->manifest_len = r->body_len;
  r->body = NULL;
  cll__hreq_free(r);
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
  j->req = cll__hreq_new(reg, url, NULL, on_manifest, j);
  if (j->req == NULL) {
    job_fail(j, CLL_ENOMEM, "out of memory");
    return;
  }
  j->req->accept = MANIFEST_ACCEPT;
  j->req->keep_body = true;
  int rc = cll__hreq_send(j->req);
  if (rc != 0)
    job_fail(j, rc, "pull model manifest: cannot start the request");
}

/* ============================================================== registry */

void cll_registry_opts_defaults(cll_registry_opts *o) {
  memset(o, 0, sizeof(*o));
  o->part_min_bytes = 100 * 1000 * 1000;
  o->part_max_bytes = 1000 * 1000 * 1000;
  o->max_parts = 16;
  o->push_part_bytes = 100 * 1000 * 1000;
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

void cll__reg_maybe_free(cll_registry *reg) {
  if (reg->closing && reg->n_jobs == 0 && reg->n_blobs == 0 && reg->n_work == 0 &&
      reg->n_pushes == 0 && reg->cu != NULL) {
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
  cll__push_close_all(reg);
  reg->n_jobs--;
  cll__reg_maybe_free(reg);
}

int cll_registry_active(const cll_registry *reg) {
  return reg ? reg->n_jobs : 0;
}

int cll_registry_pull(cll_registry *reg, const cll_name *name, bool insecure, cll_pull_event_fn fn,
                      void *arg, cll_pull_waiter **out, cll_err *err) {
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
      cll_pull_event p = {.status = status,
                          .digest = digest,
                          .total = l->size,
                          .completed = cll__blob_completed(j->blob)};
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
