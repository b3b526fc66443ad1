/* push.c — cll_registry_push (push.h): Ollama's upload protocol on a thread
 * of its own. The thread does blocking libcurl requests and file reads and
 * hands its events to the loop through a uv_async and a small queue; the
 * loop side delivers them and frees the push once the thread has ended and
 * the handle is closed. */
#include "cllama/push.h"
#include "registry_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MANIFEST_TYPE "application/vnd.docker.distribution.manifest.v2+json"

struct ev {
  char status[96];
  char digest[80];
  int64_t total, completed;
  char *error; /* new, last event only */
  bool done;
};

struct cll_push {
  uv_loop_t *loop;
  cll_store *st;
  cll_registry_opts opts;
  cll_name name;
  bool insecure;
  int64_t part_bytes;
  cll_pull_event_fn fn;
  void *arg;
  atomic_bool cancelled;
  uv_thread_t thread;
  uv_async_t async;
  uv_mutex_t mu;
  struct ev *q; /* events not yet delivered */
  size_t nq, capq;
  bool thread_done; /* under mu: the last event is queued */
  bool delivered_done;

  /* thread side */
  char base[600]; /* scheme://host */
  char repo[300]; /* ns/model */
  char *token;    /* Bearer token once one was given */
  cll_err err;
  /* the request in flight */
  FILE *body_file;
  int64_t body_off, body_len, body_sent;
  const char *body_mem;
  char *resp;
  size_t resp_len;
  char location[2048];
  char www_auth[2048];
  /* progress of the layer being pushed */
  char layer_status[96], layer_digest[80];
  int64_t layer_total, layer_done;
  uint64_t last_event_ms;
};

static uint64_t ms_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- events */

static void emit(cll_push *p, const char *status, const char *digest, int64_t total,
                 int64_t completed, const char *error, bool done) {
  uv_mutex_lock(&p->mu);
  if (p->nq == p->capq) {
    size_t cap = p->capq ? p->capq * 2 : 16;
    struct ev *q = realloc(p->q, cap * sizeof(*q));
    if (!q) {
      uv_mutex_unlock(&p->mu);
      return;
    }
    p->q = q;
    p->capq = cap;
  }
  struct ev *e = &p->q[p->nq++];
  memset(e, 0, sizeof(*e));
  snprintf(e->status, sizeof(e->status), "%s", status ? status : "");
  snprintf(e->digest, sizeof(e->digest), "%s", digest ? digest : "");
  e->total = total;
  e->completed = completed;
  e->error = error ? strdup(error) : NULL;
  e->done = done;
  if (done)
    p->thread_done = true;
  uv_mutex_unlock(&p->mu);
  uv_async_send(&p->async);
}

static void on_closed(uv_handle_t *h) {
  cll_push *p = h->data;
  uv_thread_join(&p->thread);
  for (size_t i = 0; i < p->nq; i++)
    free(p->q[i].error);
  free(p->q);
  uv_mutex_destroy(&p->mu);
  free(p->token);
  free(p);
}

static void on_closed_nothread(uv_handle_t *h) {
  cll_push *p = h->data;
  uv_mutex_destroy(&p->mu);
  free(p);
}

static void on_async(uv_async_t *h) {
  cll_push *p = h->data;
  for (;;) {
    uv_mutex_lock(&p->mu);
    if (p->nq == 0) {
      bool end = p->thread_done;
      uv_mutex_unlock(&p->mu);
      if (end && !uv_is_closing((uv_handle_t *)&p->async))
        uv_close((uv_handle_t *)&p->async, on_closed);
      return;
    }
    struct ev e = p->q[0];
    memmove(p->q, p->q + 1, (p->nq - 1) * sizeof(*p->q));
    p->nq--;
    uv_mutex_unlock(&p->mu);
    if (!atomic_load(&p->cancelled) && p->fn && !p->delivered_done) {
      cll_pull_event pe = {0};
      pe.status = e.error ? NULL : e.status;
      pe.digest = e.digest[0] ? e.digest : NULL;
      pe.total = e.total;
      pe.completed = e.completed;
      pe.error = e.error;
      pe.done = e.done;
      p->fn(&pe, p->arg);
      if (e.done)
        p->delivered_done = true;
    }
    free(e.error);
  }
}

/* ---------------------------------------------------------------- http */

static size_t on_header(char *buf, size_t size, size_t n, void *arg) {
  cll_push *p = arg;
  size_t len = size * n;
  char line[2100];
  size_t k = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
  memcpy(line, buf, k);
  line[k] = 0;
  while (k && (line[k - 1] == '\r' || line[k - 1] == '\n'))
    line[--k] = 0;
  if (!strncasecmp(line, "HTTP/", 5)) { /* a new response (after a redirect): start over */
    p->location[0] = p->www_auth[0] = 0;
  } else if (!strncasecmp(line, "Location:", 9) && !p->location[0]) {
    snprintf(p->location, sizeof(p->location), "%s", line + 9 + strspn(line + 9, " \t"));
  } else if (!strncasecmp(line, "Docker-Upload-Location:", 23)) {
    snprintf(p->location, sizeof(p->location), "%s", line + 23 + strspn(line + 23, " \t"));
  } else if (!strncasecmp(line, "WWW-Authenticate:", 17)) {
    snprintf(p->www_auth, sizeof(p->www_auth), "%s", line + 17 + strspn(line + 17, " \t"));
  }
  return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg) {
  cll_push *p = arg;
  size_t len = size * n;
  if (p->resp_len + len > (1u << 20))
    return len; /* an error page: the start is enough */
  char *r = realloc(p->resp, p->resp_len + len + 1);
  if (!r)
    return 0;
  p->resp = r;
  memcpy(p->resp + p->resp_len, buf, len);
  p->resp_len += len;
  p->resp[p->resp_len] = 0;
  return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg) {
  cll_push *p = arg;
  if (atomic_load(&p->cancelled))
    return CURL_READFUNC_ABORT;
  size_t want = size * n;
  int64_t left = p->body_len - p->body_sent;
  if ((int64_t)want > left)
    want = (size_t)left;
  if (want == 0)
    return 0;
  if (p->body_mem) {
    memcpy(buf, p->body_mem + p->body_sent, want);
  } else {
    size_t got = fread(buf, 1, want, p->body_file);
    if (got != want)
      return CURL_READFUNC_ABORT;
  }
  p->body_sent += (int64_t)want;
  return want;
}

static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  cll_push *p = arg;
  if (atomic_load(&p->cancelled))
    return 1;
  if (p->layer_status[0] && p->body_file) {
    int64_t done = p->layer_done + p->body_sent;
    uint64_t t = ms_now();
    if (t - p->last_event_ms >= 100 && done < p->layer_total) {
      p->last_event_ms = t;
      emit(p, p->layer_status, p->layer_digest, p->layer_total, done, NULL, false);
    }
  }
  return 0;
}

/* Gets a token for the challenge in p->www_auth. 0 or an error. */
static int get_token(cll_push *p, const char *url) {
  struct cll__challenge ch;
  if (cll__reg_parse_challenge(p->www_auth, &ch) != 0)
    return cll_err_set(&p->err, CLL_EACCES, "unauthorized: access denied");
  char reg_host[400], realm_host[400], token_url[4096];
  cll__reg_url_host(url, reg_host, sizeof(reg_host));
  cll__reg_url_host(ch.realm, realm_host, sizeof(realm_host));
  bool ollama = strcasecmp(reg_host, realm_host) == 0;
  if (cll__reg_token_url(&ch, ollama, token_url, sizeof(token_url)) != 0)
    return cll_err_set(&p->err, CLL_EPROTO, "authentication realm too long");
  struct curl_slist *hd = NULL;
  if (ollama) {
    char input[4400], sig[2048], h[2100];
    cll_registry_sign_input(token_url, input, sizeof(input));
    int rc = cll_registry_sign(p->opts.key_dir, input, strlen(input), sig, sizeof(sig), &p->err);
    if (rc != 0)
      return rc;
    snprintf(h, sizeof(h), "Authorization: %s", sig);
    hd = curl_slist_append(hd, h);
  }
  CURL *e = curl_easy_init();
  free(p->resp);
  p->resp = NULL;
  p->resp_len = 0;
  curl_easy_setopt(e, CURLOPT_URL, token_url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(e, CURLOPT_USERAGENT, p->opts.user_agent);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  CURLcode rc = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(e);
  curl_slist_free_all(hd);
  json_t *j = rc == CURLE_OK && status == 200 ? json_loads(p->resp ? p->resp : "", 0, NULL) : NULL;
  const char *tok = json_string_value(json_object_get(j, "token"));
  if (!tok || !*tok)
    tok = json_string_value(json_object_get(j, "access_token"));
  if (!tok || !*tok) {
    json_decref(j);
    return cll_err_set(&p->err, CLL_EACCES, "unauthorized: access denied");
  }
  free(p->token);
  p->token = strdup(tok);
  json_decref(j);
  return 0;
}

/* One request: body from a file range (file != NULL), from memory, or
 * none; retried on network errors, 5xx, 408 and 429; a 401 with a
 * challenge gets a token once. *status is the final status. 0, or an
 * error in p->err (CLL_ECANCELED when cancelled). */
static int request(cll_push *p, const char *method, const char *url, FILE *file, int64_t off,
                   int64_t len, const char *mem, const char *const *headers, long *status) {
  bool auth_tried = false;
  int attempt = 0;
  for (;;) {
    if (atomic_load(&p->cancelled))
      return cll_err_set(&p->err, CLL_ECANCELED, "push cancelled");
    p->location[0] = p->www_auth[0] = 0;
    free(p->resp);
    p->resp = NULL;
    p->resp_len = 0;
    p->body_file = file;
    p->body_mem = mem;
    p->body_off = off;
    p->body_len = len;
    p->body_sent = 0;
    if (file && fseeko(file, (off_t)off, SEEK_SET) != 0)
      return cll_err_set(&p->err, CLL_EIO, "cannot read the blob: %s", strerror(errno));
    CURL *e = curl_easy_init();
    if (!e)
      return cll_err_set(&p->err, CLL_ENOMEM, "out of memory");
    struct curl_slist *hd = NULL;
    char h[2200];
    for (const char *const *x = headers; x && *x; x++)
      hd = curl_slist_append(hd, *x);
    if (p->token) {
      snprintf(h, sizeof(h), "Authorization: Bearer %s", p->token);
      hd = curl_slist_append(hd, h);
    }
    hd = curl_slist_append(hd, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, url);
    if (!strcmp(method, "HEAD")) {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
      curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L); /* a blob may live elsewhere */
    } else if (file || mem) {
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(e, CURLOPT_READDATA, p);
      curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else if (!strcmp(method, "POST")) {
      curl_easy_setopt(e, CURLOPT_POST, 1L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    } else {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
      if (!strcmp(method, "PUT") || !strcmp(method, "PATCH")) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, p);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)0);
      }
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(e, CURLOPT_USERAGENT, p->opts.user_agent);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, p);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    /* A part may be large and the link slow: fail only when it stalls. */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    CURLcode rc = curl_easy_perform(e);
    *status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(e);
    curl_slist_free_all(hd);
    if (atomic_load(&p->cancelled))
      return cll_err_set(&p->err, CLL_ECANCELED, "push cancelled");
    if (rc == CURLE_OK && *status == 401 && !auth_tried && p->www_auth[0]) {
      auth_tried = true;
      int arc = get_token(p, url);
      if (arc != 0)
        return arc;
      continue;
    }
    bool retry = rc != CURLE_OK || *status >= 500 || *status == 408 || *status == 429;
    if (!retry)
      return 0;
    if (++attempt > p->opts.max_retries) {
      if (rc != CURLE_OK)
        return cll_err_set(&p->err, CLL_ENET, "%s %s: %s", method, url, curl_easy_strerror(rc));
      return cll_err_set(&p->err, CLL_EIO, "%s %s: HTTP %ld%s%.200s", method, url, *status,
                         p->resp ? ": " : "", p->resp ? p->resp : "");
    }
    uint64_t wait = p->opts.retry_base_ms << (attempt - 1 < 10 ? attempt - 1 : 10);
    for (uint64_t t0 = ms_now(); ms_now() - t0 < wait && !atomic_load(&p->cancelled);)
      uv_sleep(10);
  }
}

/* The registry's message in an error answer ({"errors":[{"message"}]}). */
static const char *reg_message(cll_push *p, char *buf, size_t size) {
  json_t *j = p->resp ? json_loads(p->resp, 0, NULL) : NULL;
  const char *m = json_string_value(
      json_object_get(json_array_get(json_object_get(j, "errors"), 0), "message"));
  snprintf(buf, size, "%s", m ? m : p->resp ? p->resp : "");
  json_decref(j);
  return buf;
}

/* An upload Location may be relative to the registry. */
static void absolute(cll_push *p, const char *loc, char *out, size_t size) {
  if (!strncmp(loc, "http://", 7) || !strncmp(loc, "https://", 8))
    snprintf(out, size, "%s", loc);
  else
    snprintf(out, size, "%s%s%s", p->base, loc[0] == '/' ? "" : "/", loc);
}

/* ---------------------------------------------------------------- layers */

static int push_blob(cll_push *p, const cll_layer *l) {
  char digest[80], status[96], url[2600], loc[2400], msg[400];
  snprintf(digest, sizeof(digest), "sha256:%s", l->digest);
  snprintf(status, sizeof(status), "pushing %.12s", l->digest);
  long st = 0;
  snprintf(url, sizeof(url), "%s/v2/%s/blobs/%s", p->base, p->repo, digest);
  int rc = request(p, "HEAD", url, NULL, 0, 0, NULL, NULL, &st);
  if (rc != 0)
    return rc;
  if (st == 200) { /* already there */
    emit(p, status, digest, l->size, l->size, NULL, false);
    return 0;
  }
  if (st != 404)
    return cll_err_set(&p->err, CLL_EIO, "checking %s on the registry: HTTP %ld", digest, st);
  char path[4200];
  if (cll_store_blob_path(p->st, digest, path, sizeof(path)) != 0)
    return cll_err_set(&p->err, CLL_EIO, "bad digest %s", l->digest);
  FILE *f = fopen(path, "rb");
  if (!f)
    return cll_err_set(&p->err, CLL_ENOENT, "blob %s is missing from the store", digest);
  snprintf(p->layer_status, sizeof(p->layer_status), "%s", status);
  snprintf(p->layer_digest, sizeof(p->layer_digest), "%s", digest);
  p->layer_total = l->size;
  p->layer_done = 0;
  emit(p, status, digest, l->size, 0, NULL, false);

  snprintf(url, sizeof(url), "%s/v2/%s/blobs/uploads/", p->base, p->repo);
  rc = request(p, "POST", url, NULL, 0, 0, NULL, NULL, &st);
  if (rc == 0 && (st != 202 || !p->location[0]))
    rc = cll_err_set(&p->err, CLL_EIO, "starting the upload of %s: HTTP %ld %s", digest, st,
                     reg_message(p, msg, sizeof(msg)));
  if (rc == 0)
    absolute(p, p->location, loc, sizeof(loc));
  static const char *const octet[] = {"Content-Type: application/octet-stream", NULL};
  if (rc == 0 && l->size <= p->part_bytes) {
    /* Monolithic: the whole blob with the digest. */
    snprintf(url, sizeof(url), "%s%cdigest=%s", loc, strchr(loc, '?') ? '&' : '?', digest);
    rc = request(p, "PUT", url, f, 0, l->size, NULL, octet, &st);
    if (rc == 0 && st != 201 && st != 200 && st != 204)
      rc = cll_err_set(&p->err, CLL_EIO, "uploading %s: HTTP %ld %s", digest, st,
                       reg_message(p, msg, sizeof(msg)));
  } else if (rc == 0) {
    /* Chunked: PATCH part by part, each answer naming where the next goes. */
    for (int64_t off = 0; rc == 0 && off < l->size; off += p->part_bytes) {
      int64_t n = l->size - off < p->part_bytes ? l->size - off : p->part_bytes;
      char range[96];
      snprintf(range, sizeof(range), "Content-Range: %lld-%lld", (long long)off,
               (long long)(off + n - 1));
      const char *hdrs[] = {"Content-Type: application/octet-stream", range, NULL};
      p->layer_done = off;
      rc = request(p, "PATCH", loc, f, off, n, NULL, hdrs, &st);
      if (rc == 0 && st != 202 && st != 204)
        rc = cll_err_set(&p->err, CLL_EIO, "uploading %s (bytes %lld-%lld): HTTP %ld %s", digest,
                         (long long)off, (long long)(off + n - 1), st,
                         reg_message(p, msg, sizeof(msg)));
      if (rc == 0 && p->location[0])
        absolute(p, p->location, loc, sizeof(loc));
      if (rc == 0)
        emit(p, status, digest, l->size, off + n, NULL, false);
    }
    if (rc == 0) {
      snprintf(url, sizeof(url), "%s%cdigest=%s", loc, strchr(loc, '?') ? '&' : '?', digest);
      p->body_file = NULL;
      rc = request(p, "PUT", url, NULL, 0, 0, NULL, NULL, &st);
      if (rc == 0 && st != 201 && st != 200 && st != 204)
        rc = cll_err_set(&p->err, CLL_EIO, "completing the upload of %s: HTTP %ld %s", digest, st,
                         reg_message(p, msg, sizeof(msg)));
    }
  }
  fclose(f);
  p->body_file = NULL;
  p->layer_status[0] = 0;
  if (rc == 0)
    emit(p, status, digest, l->size, l->size, NULL, false);
  return rc;
}

static void push_thread(void *arg) {
  cll_push *p = arg;
  cll_manifest *m = NULL;
  int rc = 0;
  emit(p, "retrieving manifest", NULL, 0, 0, NULL, false);
  if (strcmp(p->name.scheme, "http") == 0 && !p->insecure)
    rc = cll_err_set(&p->err, CLL_EINVAL, "insecure protocol http");
  if (rc == 0)
    rc = cll_store_read_manifest(p->st, &p->name, &m, &p->err);
  size_t n_pinned = 0;
  if (rc == 0) {
    snprintf(p->base, sizeof(p->base), "%s://%s", p->insecure ? "http" : p->name.scheme,
             p->name.host);
    snprintf(p->repo, sizeof(p->repo), "%s/%s", p->name.ns, p->name.model);
    /* Pinned while read, so that a delete cannot take them mid-upload. */
    if (m->config.digest[0] && cll_store_pin(p->st, m->config.digest) == 0)
      n_pinned++;
    for (size_t i = 0; i < m->n_layers && cll_store_pin(p->st, m->layers[i].digest) == 0; i++)
      n_pinned++;
    if (m->config.digest[0])
      rc = push_blob(p, &m->config);
    for (size_t i = 0; rc == 0 && i < m->n_layers; i++)
      rc = push_blob(p, &m->layers[i]);
  }
  if (rc == 0) {
    emit(p, "pushing manifest", NULL, 0, 0, NULL, false);
    char url[1200], msg[400];
    long st = 0;
    snprintf(url, sizeof(url), "%s/v2/%s/manifests/%s", p->base, p->repo, p->name.tag);
    static const char *const hdrs[] = {"Content-Type: " MANIFEST_TYPE, NULL};
    rc = request(p, "PUT", url, NULL, 0, (int64_t)m->raw_len, m->raw, hdrs, &st);
    if (rc == 0 && st != 201 && st != 200 && st != 204)
      rc = cll_err_set(&p->err, CLL_EIO, "pushing the manifest: HTTP %ld %s", st,
                       reg_message(p, msg, sizeof(msg)));
  }
  if (m) {
    size_t k = 0;
    if (m->config.digest[0] && k < n_pinned) {
      cll_store_unpin(p->st, m->config.digest);
      k++;
    }
    for (size_t i = 0; i < m->n_layers && k < n_pinned; i++, k++)
      cll_store_unpin(p->st, m->layers[i].digest);
    cll_manifest_free(m);
  }
  free(p->resp);
  p->resp = NULL;
  if (rc == 0)
    emit(p, "success", NULL, 0, 0, NULL, true);
  else
    emit(p, NULL, NULL, 0, 0, p->err.msg[0] ? p->err.msg : cll_strerror(rc), true);
}

int cll_registry_push(uv_loop_t *loop, cll_store *st, const cll_registry_opts *opts,
                      const cll_name *name, bool insecure, cll_pull_event_fn fn, void *arg,
                      cll_push **out, cll_err *err) {
  cll_push *p = calloc(1, sizeof(*p));
  if (!p)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  p->loop = loop;
  p->st = st;
  if (opts)
    p->opts = *opts;
  else
    cll_registry_opts_defaults(&p->opts);
  p->name = *name;
  p->insecure = insecure;
  p->fn = fn;
  p->arg = arg;
  p->part_bytes = p->opts.push_part_bytes > 0 ? p->opts.push_part_bytes : 100 * 1000 * 1000;
  atomic_init(&p->cancelled, false);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if (uv_mutex_init(&p->mu) != 0) {
    free(p);
    return cll_err_set(err, CLL_ENOMEM, "cannot create a mutex");
  }
  if (uv_async_init(loop, &p->async, on_async) != 0) {
    uv_mutex_destroy(&p->mu);
    free(p);
    return cll_err_set(err, CLL_ENOMEM, "cannot create an async handle");
  }
  p->async.data = p;
  *out = p;
  if (uv_thread_create(&p->thread, push_thread, p) != 0) {
    *out = NULL;
    uv_close((uv_handle_t *)&p->async, on_closed_nothread);
    return cll_err_set(err, CLL_ENOMEM, "cannot start the push thread");
  }
  return 0;
}

void cll_registry_push_cancel(cll_push *p) {
  if (p)
    atomic_store(&p->cancelled, true);
}
