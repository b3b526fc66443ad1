/* reg_req.c — one registry request with the 401 handling: parse the Bearer
 * challenge, get a token (Ollama's signed flow when the realm is on the
 * registry host, the anonymous OCI flow otherwise) and send it again once.
 * The pull's requests (manifest GET, blob HEAD, the GET that finds the blob
 * host) and every request of a push (upload POST, PATCHed parts streamed
 * from a read callback, PUTs, the manifest) go through it (pull_internal.h). */
#include "pull_internal.h"

void cll__hreq_free(struct hreq *r) {
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
  free(r->upload_location);
  free(r);
}

/* Stops r; its done callback will not run. */
void cll__hreq_cancel(struct hreq *r) {
  if (r == NULL)
    return;
  if (r->work_pending) {
    r->cancelled = true; /* freed by the work item's after-work */
    if (r->easy)
      cll_curl_uv_remove(r->reg->cu, r->easy);
    return;
  }
  cll__hreq_free(r);
}

static size_t on_hreq_header(char *buf, size_t size, size_t n, void *arg) {
  struct hreq *r = arg;
  size_t len = size * n;
  if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) { /* a new response (redirects) */
    free(r->location);
    free(r->www_auth);
    free(r->upload_location);
    r->location = r->www_auth = r->upload_location = NULL;
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
  else if (klen == 22 && strncasecmp(buf, "Docker-Upload-Location", 22) == 0)
    dst = &r->upload_location;
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

/* (Re)starts the transfer of the current phase. */
int cll__hreq_send(struct hreq *r) {
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
  free(r->upload_location);
  r->location = r->www_auth = r->upload_location = NULL;
  char h[2600];
  CURL *e = r->easy;
  long timeout_ms = 120000;
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
    for (const char *const *x = r->extra; x && *x; x++)
      r->hdrs = curl_slist_append(r->hdrs, *x);
    if (r->send_read) {
      if (r->on_send)
        r->on_send(r);
      curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(e, CURLOPT_READFUNCTION, r->send_read);
      curl_easy_setopt(e, CURLOPT_READDATA, r->send_arg);
      curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->send_size);
      timeout_ms = 0; /* a part may be large and the link slow: fail only on a stall */
      curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
      curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, 60L);
    } else if (r->method && !r->head) {
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->send_len);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->send_mem ? r->send_mem : "");
    }
    if (r->method && !r->head) {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
      r->hdrs = curl_slist_append(r->hdrs, "Expect:"); /* no 100-continue round trip */
    }
    if (r->progress) {
      curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, r->progress);
      curl_easy_setopt(e, CURLOPT_XFERINFODATA, r->send_arg);
      curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
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
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
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
    cll__hreq_free(r);
    cll__reg_maybe_free(reg);
    return;
  }
  if (r->rc != 0) {
    hreq_finish(r, r->rc);
    return;
  }
  r->phase = PHASE_TOKEN;
  int rc = cll__hreq_send(r);
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
  int rc = cll__hreq_send(r);
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
    json_t *j = r->status == 200 ? json_loadb(r->body ? r->body : "", r->body_len, 0, NULL) : NULL;
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
    int rc = cll__hreq_send(r);
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

struct hreq *cll__hreq_new(cll_registry *reg, const char *url, const char *token, hreq_done_fn done,
                           void *arg) {
  struct hreq *r = calloc(1, sizeof(*r));
  if (r == NULL)
    return NULL;
  r->reg = reg;
  r->url = strdup(url);
  r->token = xstrdup(token);
  r->done = done;
  r->arg = arg;
  if (r->url == NULL || (token && r->token == NULL)) {
    cll__hreq_free(r);
    return NULL;
  }
  return r;
}
