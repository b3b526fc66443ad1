/* response.c — writing answers: the output budget and back-pressure,
 * uv_write and TLS record output, response heads, full and streamed
 * (chunked) responses, forward filters, and finishing a request. */
#include "http_internal.h"

#include <assert.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* ---------------------------------------------------------------- output */

struct wreq {
  uv_write_t w;
  struct conn *c;
  size_t len;
  char data[];
};

/* Whether c may start its next request: its output has drained below the
 * high-water mark and all connections together are under the global
 * budget (a connection with nothing queued may always go on). A peer that
 * pipelines requests and never reads therefore holds at most about one
 * answer plus high_water_bytes, and many of them at most the budget. */
int cll__conn_output_ok(const struct conn *c) {
  const cll_server_opts *o = &c->srv->opts;
  return c->queued == 0 ||
         (c->queued < o->high_water_bytes && c->srv->total_queued < o->max_total_queued_bytes);
}

static void on_write(uv_write_t *w, int status) {
  struct wreq *wr = (struct wreq *)w;
  struct conn *c = wr->c;
  c->queued -= wr->len;
  c->srv->total_queued -= wr->len;
  free(wr);
  c->busy++;
  if (status < 0 && !(c->flags & CONN_CLOSING)) {
    if (c->req)
      cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    cll__conn_close(c);
  }
  cll_request *r = c->req;
  if (r && r->drain_wanted && c->queued <= c->srv->opts.low_water_bytes && !r->cancelled_gone) {
    r->drain_wanted = 0;
    if (r->on_drain)
      r->on_drain(r, r->drain_ud);
  }
  c->busy--;
  if (c->flags & CONN_CLOSED) {
    cll__conn_unref_maybe_free(c);
    return;
  }
  /* Response done and flushed on a connection that must close. */
  if (c->req == NULL && c->queued == 0 && (c->flags & CONN_NO_KEEPALIVE)) {
    cll__conn_close(c);
    return;
  }
  cll__conn_arm_timer(c);
  /* Pipelined requests held back while this connection's output waited. */
  if (c->req == NULL && c->in.len > c->in_pos && cll__conn_output_ok(c))
    cll__conn_schedule(c);
}

/* Queues len bytes from up to three pieces as one uv_write. */
int cll__conn_send(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                   const void *d, size_t nd);

/* Sends what TLS has to send (records, alerts) from the write BIO. */
int cll__tls_flush(struct conn *c) {
  BIO *wbio = SSL_get_wbio(c->ssl);
  size_t pend;
  while ((pend = BIO_ctrl_pending(wbio)) > 0) {
    char *tmp = malloc(pend);
    if (tmp == NULL)
      return CLL_ENOMEM;
    int n = BIO_read(wbio, tmp, (int)pend);
    int rc = n > 0 ? cll__conn_send(c, tmp, (size_t)n, NULL, 0, NULL, 0) : 0;
    free(tmp);
    if (rc != 0)
      return rc;
    if (n <= 0)
      break;
  }
  return 0;
}

int cll__conn_write3(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                     const void *d, size_t nd) {
  if (c->flags & (CONN_CLOSING | CONN_CLOSED))
    return CLL_ECANCELED;
  size_t len = na + nb + nd;
  if (len == 0)
    return 0;
  if (c->queued + len > c->srv->opts.max_queued_bytes) {
    /* The peer does not read: drop it rather than buffer without bound. */
    if (c->req)
      cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    cll__conn_close(c);
    return CLL_ECANCELED;
  }
  if (c->ssl == NULL)
    return cll__conn_send(c, a, na, b, nb, d, nd);
  const void *piece[3] = {a, b, d};
  size_t plen[3] = {na, nb, nd};
  for (int i = 0; i < 3; i++)
    if (plen[i] > 0 && SSL_write(c->ssl, piece[i], (int)plen[i]) != (int)plen[i]) {
      ERR_clear_error();
      if (c->req)
        cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
      cll__conn_close(c);
      return CLL_ECANCELED;
    }
  return cll__tls_flush(c);
}

/* Queues bytes for the socket as one uv_write. */
int cll__conn_send(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                   const void *d, size_t nd) {
  if (c->flags & (CONN_CLOSING | CONN_CLOSED))
    return CLL_ECANCELED;
  size_t len = na + nb + nd;
  if (len == 0)
    return 0;
  struct wreq *wr = malloc(sizeof(*wr) + len);
  if (wr == NULL)
    return CLL_ENOMEM;
  wr->c = c;
  wr->len = len;
  if (na)
    memcpy(wr->data, a, na);
  if (nb)
    memcpy(wr->data + na, b, nb);
  if (nd)
    memcpy(wr->data + na + nb, d, nd);
  uv_buf_t buf = uv_buf_init(wr->data, (unsigned)len);
  int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(wr);
    if (c->req)
      cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    cll__conn_close(c);
    return CLL_ECANCELED;
  }
  c->queued += len;
  c->srv->total_queued += len;
  return 0;
}

static const char *http_date(cll_server *srv) {
  time_t t = time(NULL);
  if (t != srv->date_sec) {
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(srv->date, sizeof(srv->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    srv->date_sec = t;
  }
  return srv->date;
}

/* Builds the status line and headers. body_len < 0 means streamed. */
static int build_head(cll_request *r, cll_buf *h, int status, const char *ctype,
                      long long body_len) {
  struct conn *c = r->conn;
  int minor = r->http_major == 1 ? r->http_minor : 1;
  int rc = cll_buf_printf(h, "HTTP/1.%d %d %s\r\nDate: %s\r\n", minor, status,
                          cll_http_reason(status), http_date(c->srv));
  if (ctype && rc == 0)
    rc = cll_buf_printf(h, "Content-Type: %s\r\n", ctype);
  if (r->cors_origin && rc == 0)
    rc = cll_buf_printf(h, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n", r->cors_origin);
  if (r->extra.len && rc == 0)
    rc = cll_buf_append(h, r->extra.data, r->extra.len);
  if (rc == 0) {
    if (body_len >= 0 && status != 204 && status >= 200)
      rc = cll_buf_printf(h, "Content-Length: %lld\r\n", body_len);
    else if (r->chunked_out)
      rc = cll_buf_printf(h, "Transfer-Encoding: chunked\r\n");
  }
  if (rc == 0) {
    if (!r->keep_alive)
      rc = cll_buf_printf(h, "Connection: close\r\n");
    else if (r->http_minor == 0)
      rc = cll_buf_printf(h, "Connection: keep-alive\r\n");
  }
  if (rc == 0)
    rc = cll_buf_append(h, "\r\n", 2);
  return rc;
}

static void log_request(cll_request *r) {
  cll_server *srv = r->conn->srv;
  if (srv->observer)
    srv->observer(srv->observer_ud, r->method, r->path ? r->path : "", r->status,
                  cll__now_ns() - r->t_start_ns);
  if (!srv->opts.log_requests)
    return;
  double ms = (double)(cll__now_ns() - r->t_start_ns) / 1e6;
  fprintf(stderr, "http: %s %s %d %.3fms\n", r->method, r->path ? r->path : "?", r->status, ms);
}

/* The request is answered: free it and go on with the connection. */
static void req_finish(cll_request *r) {
  struct conn *c = r->conn;
  r->state = REQ_DONE;
  log_request(r);
  if (!r->keep_alive || (c->flags & CONN_EOF))
    c->flags |= CONN_NO_KEEPALIVE;
  if (r->body_open) /* the rest of the body is never read */
    c->flags |= CONN_NO_KEEPALIVE | CONN_ABANDONED;
  c->req = NULL;
  cll__req_free(r);
  if (c->flags & CONN_CLOSED) {
    cll__conn_unref_maybe_free(c);
    return;
  }
  if (c->flags & CONN_CLOSING)
    return;
  if (c->flags & CONN_NO_KEEPALIVE) {
    if (c->queued == 0)
      cll__conn_close(c);
    return;
  }
  cll__conn_arm_timer(c);
  if (c->dispatching)
    return; /* cll__process_input's loop continues with the next request */
  /* Answered later, from some other callback: parse the next pipelined
   * request from the idle handle rather than inside the handler's call. */
  cll__conn_schedule(c);
}

/* Puts c on the list the idle handle works through (cancel callbacks,
 * then the next pipelined request). */
void cll__conn_schedule(struct conn *c) {
  if (c->flags & CONN_PENDING)
    return;
  c->flags |= CONN_PENDING;
  c->pend_next = c->srv->pending;
  c->srv->pending = c;
  uv_idle_start(&c->srv->idle, cll__on_idle);
}

int cll_response_header(cll_request *r, const char *name, const char *value) {
  if (r->state != REQ_HANDLER)
    return CLL_EINVAL;
  /* Header injection guard: no CR/LF in names or values. */
  if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
    return CLL_EINVAL;
  return cll_buf_printf(&r->extra, "%s: %s\r\n", name, value);
}

/* The inner handler of a forwarded request answers: hand it to the filter,
 * which answers the client with the same functions (in_filter set). The
 * terminal callbacks (respond, stream_end) free r, so r is not touched
 * after them. */
static int filter_respond(cll_request *r, int status, const char *ctype, const void *body,
                          size_t len) {
  assert(r->fstate == REQ_HANDLER);
  r->fstate = REQ_DONE;
  r->in_filter = 1;
  r->filter->respond(r, status, ctype, body, len, r->filter_ud);
  return 0;
}

static int filter_stream_start(cll_request *r, int status, const char *ctype) {
  assert(r->fstate == REQ_HANDLER);
  r->fstate = REQ_STREAMING;
  r->in_filter = 1;
  int rc = r->filter->stream_start(r, status, ctype, r->filter_ud);
  r->in_filter = 0;
  return rc;
}

static int filter_stream_write(cll_request *r, const void *data, size_t len) {
  assert(r->fstate == REQ_STREAMING);
  if (r->cancelled_gone)
    return CLL_ECANCELED;
  r->in_filter = 1;
  int rc = r->filter->stream_write(r, data, len, r->filter_ud);
  r->in_filter = 0;
  return rc;
}

static int filter_stream_end(cll_request *r) {
  assert(r->fstate == REQ_STREAMING);
  r->fstate = REQ_DONE;
  r->in_filter = 1;
  r->filter->stream_end(r, r->filter_ud);
  return 0;
}

int cll_respond(cll_request *r, int status, const char *ctype, const void *body, size_t len) {
  if (r->filter && !r->in_filter)
    return filter_respond(r, status, ctype, body, len);
  assert(r->state == REQ_HANDLER);
  if (r->state != REQ_HANDLER)
    return CLL_EINVAL;
  struct conn *c = r->conn;
  r->status = status;
  int rc = 0;
  if (!r->cancelled_gone) {
    if (c->srv->closing)
      r->keep_alive = 0;
    cll_buf h = {0};
    rc = build_head(r, &h, status, ctype, (long long)len);
    if (rc == 0) {
      int nobody = r->is_head || status == 204 || status == 304;
      rc = cll__conn_write3(c, h.data, h.len, body, nobody ? 0 : len, NULL, 0);
    }
    cll_buf_free(&h);
  }
  if (rc != 0 && rc != CLL_ECANCELED)
    r->keep_alive = 0; /* nothing was sent (out of memory): close, never leave the client waiting */
  req_finish(r);
  return rc == CLL_ECANCELED ? 0 : rc;
}

int cll_stream_start(cll_request *r, int status, const char *ctype) {
  if (r->filter && !r->in_filter)
    return filter_stream_start(r, status, ctype);
  assert(r->state == REQ_HANDLER);
  if (r->state != REQ_HANDLER)
    return CLL_EINVAL;
  struct conn *c = r->conn;
  r->status = status;
  r->state = REQ_STREAMING;
  if (r->cancelled_gone)
    return CLL_ECANCELED;
  if (r->http_major == 1 && r->http_minor >= 1)
    r->chunked_out = 1;
  else
    r->keep_alive = 0; /* HTTP/1.0: the end of the body is the end of the connection */
  if (c->srv->closing)
    r->keep_alive = 0;
  cll_buf h = {0};
  int rc = build_head(r, &h, status, ctype, -1);
  if (rc == 0)
    rc = cll__conn_write3(c, h.data, h.len, NULL, 0, NULL, 0);
  cll_buf_free(&h);
  return rc;
}

int cll_stream_write(cll_request *r, const void *data, size_t len) {
  if (r->filter && !r->in_filter)
    return filter_stream_write(r, data, len);
  assert(r->state == REQ_STREAMING);
  if (r->state != REQ_STREAMING)
    return CLL_EINVAL;
  if (r->cancelled_gone)
    return CLL_ECANCELED;
  if (len == 0 || r->is_head)
    return 0;
  int rc;
  if (r->chunked_out) {
    char size[24];
    int n = snprintf(size, sizeof(size), "%zx\r\n", len);
    rc = cll__conn_write3(r->conn, size, (size_t)n, data, len, "\r\n", 2);
  } else {
    rc = cll__conn_write3(r->conn, data, len, NULL, 0, NULL, 0);
  }
  if (rc == 0 && !cll_stream_writable(r))
    r->drain_wanted = 1;
  return rc;
}

int cll_stream_end(cll_request *r) {
  if (r->filter && !r->in_filter)
    return filter_stream_end(r);
  assert(r->state == REQ_STREAMING);
  if (r->state != REQ_STREAMING)
    return CLL_EINVAL;
  if (!r->cancelled_gone && r->chunked_out && !r->is_head)
    cll__conn_write3(r->conn, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
  req_finish(r);
  return 0;
}

/* Answers a request the server rejects itself (limits, CORS, routing). */
void cll__respond_plain(cll_request *r, int status, const char *text) {
  r->state = REQ_HANDLER;
  cll_respond(r, status, text ? "text/plain" : NULL, text, text ? strlen(text) : 0);
}
