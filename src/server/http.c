/* http.c — connections: accept, read, llhttp parsing with limits,
 * dispatch through the router, and writing full or streamed responses.
 *
 * DESIGN. One libuv loop; every function runs on it. Each connection owns
 * an input buffer, one llhttp parser and at most one request at a time:
 * when a message is complete the parser is paused, the request goes to its
 * handler, and the rest of the input (pipelined requests) waits in the
 * buffer until the handler answers. That keeps responses in order without
 * a response queue. Reading continues meanwhile (so a disconnect is seen
 * and reported through the cancel callback) until the buffered input
 * exceeds a cap.
 *
 * Output goes straight to uv_write; each write owns its buffer. The
 * connection counts queued bytes; the handler sees them through
 * cll_stream_writable() and the drain callback, and a peer that lets more
 * than max_queued_bytes pile up is dropped, so one slow reader costs only
 * its own memory and never delays other clients.
 *
 * Lifetimes: a request belongs to its handler until answered, even after
 * the socket is gone; the connection struct therefore lives until both its
 * handle is closed and its request is answered (deferred free, as redis
 * does). The server is freed once its listener and every connection are. */
#include "internal.h"

#include <assert.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define INPUT_CAP_ACTIVE (128 * 1024) /* buffered pipelined input while a request runs */
#define SHUTDOWN_GRACE_MS 5000
#define EOF_PROBE_MS 200 /* how often a half-closed connection is checked for a reset */

struct hdr {
  size_t name_off, value_off; /* into req->head */
};

enum req_state { REQ_PARSING, REQ_HANDLER, REQ_STREAMING, REQ_DONE };

struct cll_request {
  struct conn *conn;
  enum req_state state;
  cll_buf head;  /* url, header names and values, each NUL-terminated */
  size_t url_len;        /* bytes of url in head (before the first header) */
  int url_done;
  struct hdr *hdrs;
  size_t n_hdrs, cap_hdrs;
  int in_value;          /* parser is inside a header value */
  char method[24];
  char *path, *query;    /* split copy of the url */
  cll_buf body;
  struct cll__match match;
  char **param_values;
  int http_major, http_minor;
  int keep_alive;
  int is_head;
  int upgrade;           /* Upgrade/CONNECT asked: answered as plain HTTP, then closed */
  int stream_body;       /* a streamed-body route: dispatched at the end of the head */
  int body_open;         /* ... and its body is still being parsed */
  int body_paused;       /* cll_request_pause_body(req, true) */
  cll_body_fn on_body_fn;
  void *body_ud;
  int chunked_out;       /* streaming with chunked framing */
  int status;
  cll_buf extra; /* extra response header lines */
  const char *cors_origin; /* Origin to echo, borrowed from headers */
  cll_drain_fn on_drain;
  void *drain_ud;
  int drain_wanted;      /* writable() went false; call on_drain when below low water */
  cll_cancel_fn on_cancel;
  void *cancel_ud;
  int cancelled_gone, cancelled_shutdown; /* the reason is known (writes dropped when gone) */
  int cancel_pending;    /* bits 1<<reason whose callback is still to run */
  void *data;
  uint64_t t_start_ns;
  /* cll_request_forward(): the inner handler's answer goes to filter while
   * in_filter is 0; fstate is that handler's view of the answer. */
  const cll_filter *filter;
  void *filter_ud;
  enum req_state fstate;
  int in_filter;
};

enum conn_flags {
  CONN_CLOSING = 1,     /* uv_close called */
  CONN_CLOSED = 2,      /* close callback ran */
  CONN_EOF = 4,         /* peer sent FIN or errored */
  CONN_READ_STOPPED = 8,
  CONN_NO_KEEPALIVE = 16, /* close once the current response is flushed */
  CONN_PENDING = 32,    /* on the server's to-process list */
  CONN_ABANDONED = 64,  /* answered in the middle of a streamed body: parse no more */
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  cll_server *srv;
  struct conn *prev, *next;       /* server's connection list */
  struct conn *pend_next;         /* server's to-process list */
  llhttp_t parser;
  cll_buf in;             /* unparsed input */
  size_t in_pos;                  /* parsed up to here */
  cll_request *req;               /* being parsed or being answered */
  int flags;
  int handles_open;               /* tcp + timer */
  size_t queued;                  /* bytes handed to uv_write, not yet written */
  int error_status;               /* a limit was hit while parsing: 413/431/400 */
  int dispatching;                /* inside process_input */
  int busy;                       /* inside a callback that may free it: defer the free */
  int eof_probe;                  /* FIN seen mid-request: watching for the peer's reset */
  SSL *ssl;                       /* TLS: memory BIOs between the socket and the parser */
  int tls_seen;                   /* the first bytes were looked at */
};

struct cll_server {
  uv_loop_t *loop;
  cll_server_opts opts;
  uv_tcp_t listener;
  uv_idle_t idle;      /* runs process_input for connections whose request ended */
  uv_timer_t grace;    /* shutdown grace period */
  int handles_open;
  int grace_closed;
  int closing;
  int port;
  struct cll__route *routes;
  struct cll__cors cors;
  SSL_CTX *tls;        /* HTTPS only when set */
  char **api_keys;     /* copies of opts.api_keys */
  size_t n_api_keys;
  struct conn *conns;
  size_t n_conns;      /* conn structs alive */
  struct conn *pending;
  size_t total_queued; /* output queued on every connection together */
  void *data;
  cll_request_observer_fn observer; /* metrics: each answered request */
  void *observer_ud;
  void (*on_closed)(void *);
  void *closed_ud;
  llhttp_settings_t settings;
  char date[64];
  time_t date_sec;
  char readbuf[64 * 1024]; /* shared by every connection's reads */
};

static void conn_close(struct conn *c);
static void process_input(struct conn *c);
static void conn_arm_timer(struct conn *c);
static void server_maybe_free(cll_server *srv);
static void on_idle(uv_idle_t *h);
static void conn_start_read(struct conn *c);

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cll_server_opts_defaults(cll_server_opts *o) {
  memset(o, 0, sizeof(*o));
  o->host = "127.0.0.1";
  o->port = 11434;
  o->max_head_bytes = 64 * 1024;
  o->max_headers = 128;
  o->max_body_bytes = 64u * 1024 * 1024;
  o->max_queued_bytes = 64u * 1024 * 1024;
  o->max_total_queued_bytes = 256u * 1024 * 1024;
  o->high_water_bytes = 256 * 1024;
  o->low_water_bytes = 64 * 1024;
  o->header_timeout_ms = 30000;
  o->idle_timeout_ms = 300000;
  o->backlog = 4096;
  o->host_check = true;
}

const char *cll_http_reason(int status) {
  switch (status) {
  case 100: return "Continue";
  case 200: return "OK";
  case 201: return "Created";
  case 204: return "No Content";
  case 301: return "Moved Permanently";
  case 304: return "Not Modified";
  case 307: return "Temporary Redirect";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 411: return "Length Required";
  case 413: return "Request Entity Too Large";
  case 415: return "Unsupported Media Type";
  case 417: return "Expectation Failed";
  case 422: return "Unprocessable Entity";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 499: return "Client Closed Request";
  case 500: return "Internal Server Error";
  case 501: return "Not Implemented";
  case 502: return "Bad Gateway";
  case 503: return "Service Unavailable";
  case 505: return "HTTP Version Not Supported";
  default: return "Unknown";
  }
}

/* ------------------------------------------------------------- requests */

static void req_free(cll_request *r) {
  if (r == NULL)
    return;
  cll_buf_free(&r->head);
  cll_buf_free(&r->body);
  cll_buf_free(&r->extra);
  free(r->hdrs);
  free(r->path);
  if (r->param_values)
    for (size_t i = 0; i < r->match.nparams; i++)
      free(r->param_values[i]);
  free(r->param_values);
  free(r);
}

static const char *req_hdr_name(const cll_request *r, size_t i) {
  return r->head.data + r->hdrs[i].name_off;
}
static const char *req_hdr_value(const cll_request *r, size_t i) {
  return r->head.data + r->hdrs[i].value_off;
}

const char *cll_request_method(const cll_request *r) { return r->method; }
const char *cll_request_path(const cll_request *r) { return r->path; }
const char *cll_request_query(const cll_request *r) { return r->query; }
void *cll_request_server_data(const cll_request *r) { return r->conn->srv->data; }
void cll_request_set_data(cll_request *r, void *data) { r->data = data; }
void *cll_request_data(const cll_request *r) { return r->data; }
bool cll_request_gone(const cll_request *r) { return r->cancelled_gone != 0; }

void cll_request_read_body(cll_request *r, cll_body_fn fn, void *ud) {
  r->on_body_fn = fn;
  r->body_ud = ud;
}

static void conn_schedule(struct conn *c);
static void on_conn_timer(uv_timer_t *t);

void cll_request_pause_body(cll_request *r, bool pause) {
  struct conn *c = r->conn;
  if (!r->body_open || r->body_paused == (int)pause)
    return;
  r->body_paused = pause;
  if (c->flags & CONN_CLOSING)
    return;
  if (pause) {
    uv_timer_stop(&c->timer); /* the handler is working, not the peer */
  } else {
    uv_timer_start(&c->timer, on_conn_timer, c->srv->opts.header_timeout_ms, 0);
    conn_schedule(c); /* parse what is buffered, resume reading */
  }
}

bool cll_request_peer_loopback(const cll_request *r) {
  struct sockaddr_storage ss;
  int len = sizeof(ss);
  if (uv_tcp_getpeername(&r->conn->tcp, (struct sockaddr *)&ss, &len) != 0)
    return false;
  if (ss.ss_family == AF_INET)
    return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
  if (ss.ss_family == AF_INET6) {
    const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a))
      return true;
    return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
  }
  return false;
}

const char *cll_request_param(const cll_request *r, const char *name) {
  for (size_t i = 0; i < r->match.nparams; i++)
    if (strcmp(r->match.param_names[i], name) == 0)
      return r->param_values[i];
  return NULL;
}

/* Fills the ":name" parameter values of a matched path (new strings). */
static int req_set_params(cll_request *r, const char *path) {
  if (r->match.nparams == 0)
    return 0;
  r->param_values = calloc(r->match.nparams, sizeof(char *));
  if (r->param_values == NULL)
    return CLL_ENOMEM;
  for (size_t i = 0; i < r->match.nparams; i++) {
    r->param_values[i] = strndup(path + r->match.param_off[i], r->match.param_len[i]);
    if (r->param_values[i] == NULL)
      return CLL_ENOMEM;
  }
  return 0;
}

int cll_request_forward(cll_request *r, const char *method, const char *path, const void *body,
                        size_t len, const cll_filter *f, void *ud) {
  assert(r->state == REQ_HANDLER && r->filter == NULL);
  if (r->state != REQ_HANDLER || r->filter != NULL || f == NULL)
    return CLL_EINVAL;
  struct cll__match m;
  cll__route_match(r->conn->srv->routes, method, path, &m);
  if (m.route == NULL)
    return CLL_ENOENT;
  cll_buf nb = {0};
  if (cll_buf_append(&nb, body, body ? len : 0) != 0)
    return CLL_ENOMEM;
  if (r->param_values)
    for (size_t i = 0; i < r->match.nparams; i++)
      free(r->param_values[i]);
  free(r->param_values);
  r->param_values = NULL;
  r->match = m;
  if (req_set_params(r, path) != 0) {
    if (r->param_values)
      for (size_t i = 0; i < r->match.nparams; i++)
        free(r->param_values[i]);
    free(r->param_values);
    r->param_values = NULL;
    r->match.nparams = 0;
    cll_buf_free(&nb);
    return CLL_ENOMEM;
  }
  cll_buf_free(&r->body);
  r->body = nb;
  r->filter = f;
  r->filter_ud = ud;
  r->fstate = REQ_HANDLER;
  r->in_filter = 0;
  m.route->fn(r, m.route->ud);
  return 0;
}

const char *cll_request_header(const cll_request *r, const char *name) {
  for (size_t i = 0; i < r->n_hdrs; i++)
    if (strcasecmp(req_hdr_name(r, i), name) == 0)
      return req_hdr_value(r, i);
  return NULL;
}

const char *cll_request_body(const cll_request *r, size_t *len) {
  if (len)
    *len = r->body.len;
  return r->body.data ? r->body.data : "";
}

void cll_request_on_drain(cll_request *r, cll_drain_fn fn, void *ud) {
  r->on_drain = fn;
  r->drain_ud = ud;
}

void cll_request_on_cancel(cll_request *r, cll_cancel_fn fn, void *ud) {
  r->on_cancel = fn;
  r->cancel_ud = ud;
}

size_t cll_stream_queued_bytes(const cll_request *r) { return r->conn->queued; }

bool cll_stream_writable(const cll_request *r) {
  return r->conn->queued < r->conn->srv->opts.high_water_bytes;
}

static void conn_schedule(struct conn *c);

/* Records the reason now (so writes after a disconnect are dropped at
 * once) and runs the handler's callback later from the idle handle, so a
 * cancel callback never runs inside a cll_stream_write()/cll_respond()
 * the handler is in the middle of. */
static void req_cancel(cll_request *r, int reason) {
  int *sent = reason == CLL_CANCEL_CLIENT_GONE ? &r->cancelled_gone : &r->cancelled_shutdown;
  if (*sent)
    return;
  *sent = 1;
  if (r->state != REQ_HANDLER && r->state != REQ_STREAMING)
    return;
  r->cancel_pending |= 1 << reason;
  conn_schedule(r->conn);
}

/* Runs the pending cancel callbacks of c's request. */
static void deliver_cancels(struct conn *c) {
  for (int reason = CLL_CANCEL_CLIENT_GONE; reason <= CLL_CANCEL_SHUTDOWN; reason++) {
    cll_request *r = c->req;
    if (r == NULL || (r->state != REQ_HANDLER && r->state != REQ_STREAMING))
      return;
    if (!(r->cancel_pending & (1 << reason)))
      continue;
    r->cancel_pending &= ~(1 << reason);
    if (r->on_cancel)
      r->on_cancel(r, reason, r->cancel_ud);
  }
}

/* ---------------------------------------------------------------- output */

struct wreq {
  uv_write_t w;
  struct conn *c;
  size_t len;
  char data[];
};

static void conn_unref_maybe_free(struct conn *c);

/* Whether c may start its next request: its output has drained below the
 * high-water mark and all connections together are under the global
 * budget (a connection with nothing queued may always go on). A peer that
 * pipelines requests and never reads therefore holds at most about one
 * answer plus high_water_bytes, and many of them at most the budget. */
static int conn_output_ok(const struct conn *c) {
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
      req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    conn_close(c);
  }
  cll_request *r = c->req;
  if (r && r->drain_wanted && c->queued <= c->srv->opts.low_water_bytes && !r->cancelled_gone) {
    r->drain_wanted = 0;
    if (r->on_drain)
      r->on_drain(r, r->drain_ud);
  }
  c->busy--;
  if (c->flags & CONN_CLOSED) {
    conn_unref_maybe_free(c);
    return;
  }
  /* Response done and flushed on a connection that must close. */
  if (c->req == NULL && c->queued == 0 && (c->flags & CONN_NO_KEEPALIVE)) {
    conn_close(c);
    return;
  }
  conn_arm_timer(c);
  /* Pipelined requests held back while this connection's output waited. */
  if (c->req == NULL && c->in.len > c->in_pos && conn_output_ok(c))
    conn_schedule(c);
}

/* Queues len bytes from up to three pieces as one uv_write. */
static int conn_send(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                     const void *d, size_t nd);

/* Sends what TLS has to send (records, alerts) from the write BIO. */
static int tls_flush(struct conn *c) {
  BIO *wbio = SSL_get_wbio(c->ssl);
  size_t pend;
  while ((pend = BIO_ctrl_pending(wbio)) > 0) {
    char *tmp = malloc(pend);
    if (tmp == NULL)
      return CLL_ENOMEM;
    int n = BIO_read(wbio, tmp, (int)pend);
    int rc = n > 0 ? conn_send(c, tmp, (size_t)n, NULL, 0, NULL, 0) : 0;
    free(tmp);
    if (rc != 0)
      return rc;
    if (n <= 0)
      break;
  }
  return 0;
}

static int conn_write3(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                       const void *d, size_t nd) {
  if (c->flags & (CONN_CLOSING | CONN_CLOSED))
    return CLL_ECANCELED;
  size_t len = na + nb + nd;
  if (len == 0)
    return 0;
  if (c->queued + len > c->srv->opts.max_queued_bytes) {
    /* The peer does not read: drop it rather than buffer without bound. */
    if (c->req)
      req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    conn_close(c);
    return CLL_ECANCELED;
  }
  if (c->ssl == NULL)
    return conn_send(c, a, na, b, nb, d, nd);
  const void *piece[3] = {a, b, d};
  size_t plen[3] = {na, nb, nd};
  for (int i = 0; i < 3; i++)
    if (plen[i] > 0 && SSL_write(c->ssl, piece[i], (int)plen[i]) != (int)plen[i]) {
      ERR_clear_error();
      if (c->req)
        req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
      conn_close(c);
      return CLL_ECANCELED;
    }
  return tls_flush(c);
}

/* Queues bytes for the socket as one uv_write. */
static int conn_send(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
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
      req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    conn_close(c);
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
    rc = cll_buf_printf(h, "Access-Control-Allow-Origin: %s\r\nVary: Origin\r\n",
                         r->cors_origin);
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
                  now_ns() - r->t_start_ns);
  if (!srv->opts.log_requests)
    return;
  double ms = (double)(now_ns() - r->t_start_ns) / 1e6;
  fprintf(stderr, "http: %s %s %d %.3fms\n", r->method, r->path ? r->path : "?", r->status,
          ms);
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
  req_free(r);
  if (c->flags & CONN_CLOSED) {
    conn_unref_maybe_free(c);
    return;
  }
  if (c->flags & CONN_CLOSING)
    return;
  if (c->flags & CONN_NO_KEEPALIVE) {
    if (c->queued == 0)
      conn_close(c);
    return;
  }
  conn_arm_timer(c);
  if (c->dispatching)
    return; /* process_input's loop continues with the next request */
  /* Answered later, from some other callback: parse the next pipelined
   * request from the idle handle rather than inside the handler's call. */
  conn_schedule(c);
}

/* Puts c on the list the idle handle works through (cancel callbacks,
 * then the next pipelined request). */
static void conn_schedule(struct conn *c) {
  if (c->flags & CONN_PENDING)
    return;
  c->flags |= CONN_PENDING;
  c->pend_next = c->srv->pending;
  c->srv->pending = c;
  uv_idle_start(&c->srv->idle, on_idle);
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
      rc = conn_write3(c, h.data, h.len, body, nobody ? 0 : len, NULL, 0);
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
    rc = conn_write3(c, h.data, h.len, NULL, 0, NULL, 0);
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
    rc = conn_write3(r->conn, size, (size_t)n, data, len, "\r\n", 2);
  } else {
    rc = conn_write3(r->conn, data, len, NULL, 0, NULL, 0);
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
    conn_write3(r->conn, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
  req_finish(r);
  return 0;
}

/* Answers a request the server rejects itself (limits, CORS, routing). */
static void respond_plain(cll_request *r, int status, const char *text) {
  r->state = REQ_HANDLER;
  cll_respond(r, status, text ? "text/plain" : NULL, text, text ? strlen(text) : 0);
}

/* ------------------------------------------------------------ connections */

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  c->flags |= CONN_CLOSED;
  conn_unref_maybe_free(c);
}

/* Frees c once its handles are closed, its writes completed and its
 * request answered. */
static void conn_unref_maybe_free(struct conn *c) {
  if (!(c->flags & CONN_CLOSED) || c->req != NULL || c->queued != 0 || c->busy)
    return;
  cll_server *srv = c->srv;
  if (c->flags & CONN_PENDING) {
    for (struct conn **p = &srv->pending; *p; p = &(*p)->pend_next)
      if (*p == c) {
        *p = c->pend_next;
        break;
      }
  }
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  srv->n_conns--;
  cll_buf_free(&c->in);
  if (c->ssl)
    SSL_free(c->ssl);
  free(c);
  server_maybe_free(srv);
}

static void conn_close(struct conn *c) {
  if (c->flags & CONN_CLOSING)
    return;
  c->flags |= CONN_CLOSING;
  /* A request still being parsed has no handler yet: drop it. */
  if (c->req && c->req->state == REQ_PARSING) {
    req_free(c->req);
    c->req = NULL;
  } else if (c->req) {
    req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
  }
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* 1 when the peer of a half-closed connection has reset it (it had closed
 * entirely, and our probe or answer drew an RST). */
static int peer_reset(struct conn *c) {
  uv_os_fd_t fd;
  if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
    return 1;
  int err = 0;
  socklen_t len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0)
    return 1;
  struct tcp_info ti;
  len = sizeof(ti);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE)
    return 1;
  return 0;
}

static void on_conn_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  if (c->eof_probe && c->req && !(c->flags & CONN_CLOSING)) {
    if (!peer_reset(c)) {
      uv_timer_start(&c->timer, on_conn_timer, EOF_PROBE_MS, 0);
      return;
    }
    req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
  }
  /* Header/idle timeout, or a peer that stopped reading our output. */
  conn_close(c);
}

static void conn_arm_timer(struct conn *c) {
  if (c->flags & CONN_CLOSING)
    return;
  const cll_server_opts *o = &c->srv->opts;
  if (c->req && c->req->state == REQ_PARSING) {
    /* Armed once at message begin; data arriving does not extend it, so a
     * client trickling bytes cannot hold the connection forever. */
    return;
  }
  if (c->req && c->eof_probe) {
    uv_timer_start(&c->timer, on_conn_timer, EOF_PROBE_MS, 0);
    return;
  }
  if (c->req) {
    if (c->queued > 0)
      uv_timer_start(&c->timer, on_conn_timer, o->idle_timeout_ms, 0);
    else
      uv_timer_stop(&c->timer); /* the handler is working */
    return;
  }
  uv_timer_start(&c->timer, on_conn_timer, o->idle_timeout_ms, 0);
}

/* ------------------------------------------------------------ llhttp glue */

static cll_request *cur_req(llhttp_t *p) { return ((struct conn *)p->data)->req; }

static int head_append(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  cll_request *r = c->req;
  if (r->head.len + len > c->srv->opts.max_head_bytes) {
    c->error_status = 431;
    return HPE_USER;
  }
  if (cll_buf_append(&r->head, at, len) != 0) {
    c->error_status = 500;
    return HPE_USER;
  }
  return 0;
}

static int on_message_begin(llhttp_t *p) {
  struct conn *c = p->data;
  assert(c->req == NULL);
  cll_request *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    c->error_status = 500;
    return HPE_USER;
  }
  r->conn = c;
  r->state = REQ_PARSING;
  r->t_start_ns = now_ns();
  c->req = r;
  uv_timer_start(&c->timer, on_conn_timer, c->srv->opts.header_timeout_ms, 0);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  int rc = head_append(p, at, len);
  cur_req(p)->url_len += len;
  return rc;
}

static int on_url_complete(llhttp_t *p) {
  cll_request *r = cur_req(p);
  r->url_done = 1;
  return head_append(p, "", 1);
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  cll_request *r = c->req;
  if (r->in_value || r->n_hdrs == 0 || r->hdrs[r->n_hdrs - 1].value_off != 0) {
    /* A new header starts; end the previous value if llhttp did not. */
    if (r->in_value) {
      r->in_value = 0;
      int rc = head_append(p, "", 1);
      if (rc != 0)
        return rc;
    }
    if (r->n_hdrs >= c->srv->opts.max_headers) {
      c->error_status = 431;
      return HPE_USER;
    }
    if (r->n_hdrs == r->cap_hdrs) {
      size_t cap = r->cap_hdrs ? r->cap_hdrs * 2 : 16;
      struct hdr *h = realloc(r->hdrs, cap * sizeof(*h));
      if (h == NULL) {
        c->error_status = 500;
        return HPE_USER;
      }
      r->hdrs = h;
      r->cap_hdrs = cap;
    }
    r->hdrs[r->n_hdrs].name_off = r->head.len;
    r->hdrs[r->n_hdrs].value_off = 0;
    r->n_hdrs++;
    r->in_value = 0;
  }
  return head_append(p, at, len);
}

static int on_header_field_complete(llhttp_t *p) {
  cll_request *r = cur_req(p);
  int rc = head_append(p, "", 1);
  if (rc == 0)
    r->hdrs[r->n_hdrs - 1].value_off = r->head.len; /* value starts here, even if empty */
  r->in_value = 1;
  return rc;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  return head_append(p, at, len);
}

static int on_header_value_complete(llhttp_t *p) {
  cll_request *r = cur_req(p);
  int rc = head_append(p, "", 1);
  r->in_value = 0;
  /* Mark "value done" so the next field starts a new header. */
  return rc;
}

/* Whether the request's method and path (from its url) name a streamed-body
 * route. */
static int streamed_route(cll_server *srv, cll_request *r) {
  int any = 0;
  for (const struct cll__route *rt = srv->routes; rt && !any; rt = rt->next)
    any = rt->stream_body;
  if (!any || r->head.data == NULL)
    return 0;
  char path[2048];
  const char *url = r->head.data;
  if (strncasecmp(url, "http://", 7) == 0 || strncasecmp(url, "https://", 8) == 0) {
    const char *slash = strchr(strstr(url, "//") + 2, '/');
    url = slash ? slash : "/";
  }
  size_t n = strcspn(url, "?");
  if (n >= sizeof(path))
    return 0;
  memcpy(path, url, n);
  path[n] = 0;
  struct cll__match m;
  cll__route_match(srv->routes, r->method, path, &m);
  return m.route && m.route->stream_body;
}

static int on_headers_complete(llhttp_t *p) {
  struct conn *c = p->data;
  cll_request *r = c->req;
  const cll_server_opts *o = &c->srv->opts;
  if (!r->url_done)
    head_append(p, "", 1);
  if (r->in_value) {
    r->in_value = 0;
    head_append(p, "", 1);
  }
  snprintf(r->method, sizeof(r->method), "%s", llhttp_method_name(p->method));
  if (p->upgrade) {
    /* Upgrade (websocket, h2c) or CONNECT: no protocol switch here. The
     * request is answered as plain HTTP/1.1 (as Go's server does when the
     * handler does not hijack) and the connection closed after it, so the
     * bytes that follow are never read as another protocol or request. */
    r->upgrade = 1;
    p->upgrade = 0;
  }
  r->http_major = p->http_major;
  r->http_minor = p->http_minor;
  if (!r->upgrade && streamed_route(c->srv, r)) {
    /* Dispatched now (process_input), the body follows as it arrives. */
    r->stream_body = 1;
    r->body_open = 1;
    const char *expect = cll_request_header(r, "Expect");
    if (expect && r->http_major == 1 && r->http_minor >= 1 &&
        strcasecmp(expect, "100-continue") == 0) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      conn_write3(c, cont, sizeof(cont) - 1, NULL, 0, NULL, 0);
    }
    return HPE_PAUSED;
  }
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > o->max_body_bytes) {
    c->error_status = 413;
    return HPE_USER;
  }
  const char *expect = cll_request_header(r, "Expect");
  if (expect && r->http_major == 1 && r->http_minor >= 1) {
    if (strcasecmp(expect, "100-continue") != 0) {
      c->error_status = 417;
      return HPE_USER;
    }
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_write3(c, cont, sizeof(cont) - 1, NULL, 0, NULL, 0);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  cll_request *r = c->req;
  if (r == NULL || (c->flags & CONN_ABANDONED))
    return HPE_USER; /* answered already: the rest is not read */
  if (r->stream_body) {
    uv_timer_start(&c->timer, on_conn_timer, c->srv->opts.header_timeout_ms, 0);
    c->busy++;
    if (r->on_body_fn)
      r->on_body_fn(r, at, len, r->body_ud);
    c->busy--;
    if (c->req != r || (c->flags & CONN_ABANDONED))
      return HPE_USER;
    return r->body_paused ? HPE_PAUSED : 0;
  }
  /* A body may take longer than header_timeout_ms as long as it keeps
   * arriving: each piece restarts the timer. */
  uv_timer_start(&c->timer, on_conn_timer, c->srv->opts.header_timeout_ms, 0);
  if (r->body.len + len > c->srv->opts.max_body_bytes) {
    c->error_status = 413;
    return HPE_USER;
  }
  if (cll_buf_append(&r->body, at, len) != 0) {
    c->error_status = 500;
    return HPE_USER;
  }
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct conn *c = p->data;
  cll_request *r = c->req;
  if (r == NULL || (c->flags & CONN_ABANDONED))
    return HPE_USER;
  r->keep_alive = r->upgrade ? 0 : llhttp_should_keep_alive(p);
  if (r->stream_body && r->state != REQ_PARSING) {
    /* The end of a streamed body: the handler may answer in its callback
     * (then c->req changes). */
    r->body_open = 0;
    uv_timer_stop(&c->timer); /* the handler works on what it got */
    if (r->on_body_fn)
      r->on_body_fn(r, NULL, 0, r->body_ud);
  }
  return HPE_PAUSED;
}

/* Constant-time equality of a and b (lengths may differ: the time depends
 * only on the length of b, the configured key). */
static int key_equal(const char *a, size_t na, const char *b) {
  size_t nb = strlen(b);
  unsigned char diff = (unsigned char)(na != nb);
  for (size_t i = 0; i < nb; i++)
    diff |= (unsigned char)(b[i] ^ (i < na ? a[i] : 0));
  return diff == 0;
}

/* The bearer-token check: "/" and "/api/version" stay open. */
static int authorized(const cll_server *srv, const cll_request *r) {
  if (strcmp(r->path, "/") == 0 || strcmp(r->path, "/api/version") == 0)
    return 1;
  const char *h = cll_request_header(r, "Authorization");
  if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
    return 0;
  const char *tok = h + 7;
  while (*tok == ' ')
    tok++;
  size_t n = strlen(tok);
  while (n > 0 && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
    n--;
  int ok = 0;
  for (size_t i = 0; i < srv->n_api_keys; i++) /* every key, whatever matched */
    ok |= key_equal(tok, n, srv->api_keys[i]);
  return ok;
}

/* Splits the url into path and query and finds the route. */
static void dispatch(struct conn *c) {
  cll_request *r = c->req;
  cll_server *srv = c->srv;
  r->state = REQ_HANDLER;
  if (srv->closing)
    r->keep_alive = 0;
  r->is_head = strcmp(r->method, "HEAD") == 0;
  const char *url = r->head.data ? r->head.data : "";
  r->path = strdup(url);
  if (r->path == NULL) {
    respond_plain(r, 500, "out of memory");
    return;
  }
  char *q = strchr(r->path, '?');
  if (q) {
    *q = '\0';
    r->query = q + 1;
  } else {
    r->query = r->path + strlen(r->path);
  }
  /* Absolute-form request targets ("http://host/path") keep only the path. */
  if (strncasecmp(r->path, "http://", 7) == 0 || strncasecmp(r->path, "https://", 8) == 0) {
    char *slash = strchr(strstr(r->path, "//") + 2, '/');
    memmove(r->path, slash ? slash : "/", strlen(slash ? slash : "/") + 1);
    if (!slash)
      r->query = r->path + 1; /* empty */
  }

  /* CORS first, then the Host guard (Ollama's middleware order). */
  const char *origin = cll_request_header(r, "Origin");
  const char *host = cll_request_header(r, "Host");
  if (origin && origin[0]) {
    int same = 0;
    if (host)
      same = (strncmp(origin, "http://", 7) == 0 && strcmp(origin + 7, host) == 0) ||
             (strncmp(origin, "https://", 8) == 0 && strcmp(origin + 8, host) == 0);
    if (!same) {
      if (!cll__cors_origin_allowed(&srv->cors, origin)) {
        respond_plain(r, 403, NULL);
        return;
      }
      r->cors_origin = origin;
      if (strcmp(r->method, "OPTIONS") == 0) {
        cll_buf_printf(&r->extra,
                        "Access-Control-Allow-Methods: %s\r\n"
                        "Access-Control-Allow-Headers: %s\r\n"
                        "Access-Control-Max-Age: 43200\r\n",
                        cll__cors_allow_methods, cll__cors_allow_headers);
        respond_plain(r, 204, NULL);
        return;
      }
    }
  }
  int h = cll__host_allowed(&srv->cors, host);
  if (h == 0) {
    respond_plain(r, 403, NULL);
    return;
  }
  if (h == 2 && strcmp(r->method, "OPTIONS") == 0) {
    respond_plain(r, 204, NULL);
    return;
  }

  if (srv->n_api_keys > 0 && !authorized(srv, r)) {
    cll_response_header(r, "WWW-Authenticate", "Bearer");
    static const char e[] = "{\"error\":\"unauthorized\"}";
    cll_respond(r, 401, "application/json; charset=utf-8", e, sizeof(e) - 1);
    return;
  }

  cll__route_match(srv->routes, r->method, r->path, &r->match);
  if (r->match.route == NULL) {
    if (r->match.path_known)
      respond_plain(r, 405, "405 method not allowed");
    else
      respond_plain(r, 404, "404 page not found");
    return;
  }
  if (r->match.nparams) {
    r->param_values = calloc(r->match.nparams, sizeof(char *));
    for (size_t i = 0; r->param_values && i < r->match.nparams; i++)
      r->param_values[i] = strndup(r->path + r->match.param_off[i], r->match.param_len[i]);
    for (size_t i = 0; r->param_values && i < r->match.nparams; i++)
      if (r->param_values[i] == NULL) {
        respond_plain(r, 500, "out of memory");
        return;
      }
    if (r->param_values == NULL) {
      respond_plain(r, 500, "out of memory");
      return;
    }
  }
  const struct cll__route *route = r->match.route;
  route->fn(r, route->ud);
}

/* Answers a request the parser rejected and closes after the answer. */
static void reject(struct conn *c, int status) {
  if (c->req == NULL) {
    /* The error came before any message started: make an empty request so
     * the answer can be framed. */
    if (on_message_begin(&c->parser) != 0) {
      conn_close(c);
      return;
    }
  }
  cll_request *r = c->req;
  r->keep_alive = 0;
  r->http_major = 1;
  r->http_minor = 1;
  r->cors_origin = NULL;
  if (r->path == NULL)
    r->path = strdup("?");
  snprintf(r->method, sizeof(r->method), "%s", "?");
  c->flags |= CONN_NO_KEEPALIVE;
  /* Headers given so far are not trusted for framing the answer. */
  r->n_hdrs = 0;
  cll_buf_reset(&r->extra);
  const char *text = status == 431   ? "431 Request Header Fields Too Large"
                     : status == 413 ? "413 Request Entity Too Large"
                     : status == 417 ? "417 Expectation Failed"
                     : status == 500 ? "500 Internal Server Error"
                                     : "400 Bad Request";
  respond_plain(r, status, text);
}

/* A streamed body the handler wants now. */
static int body_wanted(const cll_request *r) {
  return r->body_open && !r->body_paused && r->state != REQ_PARSING;
}

/* Parses buffered input and dispatches complete requests, one at a time. */
static void process_input(struct conn *c) {
  if (c->dispatching)
    return;
  c->dispatching = 1;
  while (!(c->flags & CONN_CLOSING) && !(c->flags & CONN_NO_KEEPALIVE) &&
         (c->req == NULL || c->req->state == REQ_PARSING || body_wanted(c->req)) &&
         c->in_pos < c->in.len && (c->req != NULL || conn_output_ok(c))) {
    const char *data = c->in.data + c->in_pos;
    size_t len = c->in.len - c->in_pos;
    llhttp_errno_t e = llhttp_execute(&c->parser, data, len);
    if (e == HPE_OK) {
      c->in_pos = c->in.len;
      break;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
      const char *pos = llhttp_get_error_pos(&c->parser);
      c->in_pos += (size_t)(pos - data);
      if (e == HPE_PAUSED_UPGRADE) {
        /* Not reached (on_headers_complete clears the upgrade); should it
         * be, never parse what follows: close. */
        c->in_pos = c->in.len;
        if (c->req == NULL || c->req->state != REQ_PARSING) {
          conn_close(c);
          break;
        }
        c->req->keep_alive = 0;
        llhttp_init(&c->parser, HTTP_REQUEST, &c->srv->settings);
        c->parser.data = c;
      } else {
        llhttp_resume(&c->parser);
      }
      if (c->req == NULL || c->req->state != REQ_PARSING)
        continue; /* a streamed body paused, or its end (already dispatched) */
      uv_timer_stop(&c->timer);
      if (c->req->stream_body) /* the head of a streamed-body request */
        uv_timer_start(&c->timer, on_conn_timer, c->srv->opts.header_timeout_ms, 0);
      dispatch(c);
      continue;
    }
    if (c->flags & CONN_ABANDONED) { /* answered mid-body: read no more */
      c->in_pos = c->in.len;
      break;
    }
    int status = c->error_status ? c->error_status : 400;
    c->in_pos = c->in.len;
    reject(c, status);
    break;
  }
  /* Compact the input buffer; give a large empty one back. */
  if (c->in_pos > 0) {
    memmove(c->in.data, c->in.data + c->in_pos, c->in.len - c->in_pos);
    c->in.len -= c->in_pos;
    c->in_pos = 0;
  }
  if (c->in.len == 0 && c->in.cap > 4096)
    cll_buf_free(&c->in);
  c->dispatching = 0;
  if (c->flags & CONN_CLOSING)
    return;
  if (c->req == NULL && (c->flags & CONN_EOF) && c->in.len == 0) {
    if (c->queued == 0)
      conn_close(c);
    else
      c->flags |= CONN_NO_KEEPALIVE;
    return;
  }
  /* Resume reading when a stopped connection has room again. */
  if ((c->flags & CONN_READ_STOPPED) && c->in.len < INPUT_CAP_ACTIVE && !(c->flags & CONN_EOF)) {
    c->flags &= ~CONN_READ_STOPPED;
    conn_start_read(c);
  }
}

static void on_idle(uv_idle_t *h) {
  cll_server *srv = h->data;
  while (srv->pending) {
    struct conn *c = srv->pending;
    srv->pending = c->pend_next;
    c->flags &= ~CONN_PENDING;
    c->busy++;
    deliver_cancels(c);
    if (!(c->flags & CONN_CLOSING) &&
        (c->req == NULL || c->req->state == REQ_PARSING || body_wanted(c->req)))
      process_input(c);
    c->busy--;
    conn_unref_maybe_free(c);
  }
  uv_idle_stop(&srv->idle);
}

/* Every read lands in one server-wide buffer (libuv calls alloc and read
 * back to back on the loop thread) and is then appended to the
 * connection's input, so an idle connection holds no read buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct conn *c = h->data;
  *buf = uv_buf_init(c->srv->readbuf, sizeof(c->srv->readbuf));
}

/* Ends a connection after what is queued is written (an alert, an error
 * answer), reading no more. */
static void conn_finish_output(struct conn *c) {
  c->flags |= CONN_EOF | CONN_NO_KEEPALIVE;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (c->req && c->req->state == REQ_PARSING) {
    req_free(c->req);
    c->req = NULL;
  }
  if (c->req == NULL && c->queued == 0)
    conn_close(c);
}

/* TLS input: decrypts into c->in. 0: go on (maybe with nothing new), 1: the
 * peer closed the TLS session, -1: the connection is being ended. */
static int tls_input(struct conn *c, const char *data, size_t n) {
  if (!c->tls_seen) {
    c->tls_seen = 1;
    if ((unsigned char)data[0] != 0x16) {
      /* Not a TLS handshake: plain HTTP on the HTTPS port (Go's answer). */
      static const char msg[] = "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\n"
                                "Connection: close\r\n\r\n"
                                "Client sent an HTTP request to an HTTPS server.\n";
      conn_send(c, msg, sizeof(msg) - 1, NULL, 0, NULL, 0);
      conn_finish_output(c);
      return -1;
    }
  }
  if (BIO_write(SSL_get_rbio(c->ssl), data, (int)n) != (int)n) {
    conn_close(c);
    return -1;
  }
  char tmp[16384];
  for (;;) {
    int k = SSL_read(c->ssl, tmp, sizeof(tmp));
    if (k > 0) {
      if (cll_buf_append(&c->in, tmp, (size_t)k) != 0) {
        conn_close(c);
        return -1;
      }
      continue;
    }
    int e = SSL_get_error(c->ssl, k);
    ERR_clear_error();
    tls_flush(c); /* handshake records, tickets, alerts */
    if (c->flags & CONN_CLOSING)
      return -1;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
      return 1;
    /* A failed handshake or a bad record: the alert goes out, then close. */
    if (c->req && c->req->state != REQ_PARSING)
      req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
    conn_finish_output(c);
    return -1;
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  struct conn *c = s->data;
  if (nread == 0)
    return;
  int decrypted = 0;
  if (nread > 0 && c->ssl) {
    size_t before = c->in.len;
    int r = tls_input(c, buf->base, (size_t)nread);
    if (r < 0)
      return;
    if (r > 0)
      nread = UV_EOF;
    else if (c->in.len == before)
      return; /* handshake only */
    decrypted = 1;
  }
  if (nread < 0) {
    c->flags |= CONN_EOF;
    uv_read_stop(s);
    if (nread != UV_EOF || (c->req && c->req->state == REQ_PARSING)) {
      /* A reset or read error, or the end in the middle of a request (a
       * body delimited by EOF is not allowed for requests): the peer is
       * gone, and so is the descriptor, now. */
      if (c->req && c->req->state != REQ_PARSING)
        req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
      conn_close(c);
      return;
    }
    if (c->req && c->req->state == REQ_HANDLER && c->req->http_major == 1 &&
        c->req->http_minor >= 1 && !c->req->cancelled_gone) {
      /* FIN before any answer: the client may only have half-closed
       * (shutdown(SHUT_WR)) and still wait for its answer, or it may be
       * gone. A 1xx interim answer (which HTTP/1.1 clients skip) draws a
       * reset from a peer that closed entirely; the timer looks for it
       * while the handler works. */
      static const char probe[] = "HTTP/1.1 102 Processing\r\n\r\n";
      c->eof_probe = 1;
      if (conn_write3(c, probe, sizeof(probe) - 1, NULL, 0, NULL, 0) == 0)
        conn_arm_timer(c);
      return;
    }
    if (c->req && c->req->state != REQ_PARSING) {
      /* Gone mid-answer (Go's server cancels the request context too). */
      req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
      conn_close(c);
      return;
    }
    if (c->queued == 0 && c->req == NULL && c->in.len == c->in_pos)
      conn_close(c);
    else if (c->req == NULL)
      process_input(c);
    return;
  }
  if (!decrypted && cll_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
    conn_close(c);
    return;
  }
  if ((c->req && c->req->state != REQ_PARSING && !body_wanted(c->req)) ||
      (c->req == NULL && !conn_output_ok(c))) {
    /* Pipelined input while a request is being answered or while this
     * connection's output waits: keep it, within a cap, and stop reading
     * past it (resumed once the input is consumed). */
    if (c->in.len >= INPUT_CAP_ACTIVE) {
      uv_read_stop(s);
      c->flags |= CONN_READ_STOPPED;
    }
    return;
  }
  process_input(c);
  if (!(c->flags & CONN_CLOSING) && c->req == NULL && c->in.len == 0)
    conn_arm_timer(c);
}

static void conn_start_read(struct conn *c) {
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *ls, int status) {
  cll_server *srv = ls->data;
  if (status < 0 || srv->closing)
    return;
  struct conn *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    /* Out of memory: drop this client. Returning without uv_accept would
     * make libuv stop accepting altogether (it waits for the accept), so
     * the accepted descriptor it holds is closed here (Unix libuv keeps it
     * in accepted_fd until uv_accept takes it). Found by test_chaos. */
    if (ls->accepted_fd >= 0) {
      close(ls->accepted_fd);
      ls->accepted_fd = -1;
    }
    return;
  }
  c->srv = srv;
  uv_tcp_init(srv->loop, &c->tcp);
  uv_timer_init(srv->loop, &c->timer);
  c->tcp.data = c;
  c->timer.data = c;
  c->handles_open = 2;
  c->next = srv->conns;
  if (srv->conns)
    srv->conns->prev = c;
  srv->conns = c;
  srv->n_conns++;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (srv->tls) {
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    c->ssl = rb && wb ? SSL_new(srv->tls) : NULL;
    if (c->ssl == NULL) {
      BIO_free(rb);
      BIO_free(wb);
      conn_close(c);
      return;
    }
    SSL_set_bio(c->ssl, rb, wb);
    SSL_set_accept_state(c->ssl);
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
  c->parser.data = c;
  uv_timer_start(&c->timer, on_conn_timer, srv->opts.idle_timeout_ms, 0);
  conn_start_read(c);
}

/* ---------------------------------------------------------------- server */

static void server_free(cll_server *srv) {
  void (*cb)(void *) = srv->on_closed;
  void *ud = srv->closed_ud;
  cll__routes_free(srv->routes);
  cll__cors_free(&srv->cors);
  for (size_t i = 0; i < srv->n_api_keys; i++)
    free(srv->api_keys[i]);
  free(srv->api_keys);
  SSL_CTX_free(srv->tls);
  free(srv);
  if (cb)
    cb(ud);
}

static void on_server_handle_closed(uv_handle_t *h);

static void server_maybe_free(cll_server *srv) {
  if (!srv->closing || srv->n_conns != 0)
    return;
  if (!srv->grace_closed) {
    srv->grace_closed = 1;
    uv_close((uv_handle_t *)&srv->grace, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->idle, on_server_handle_closed);
  }
  if (srv->handles_open == 0)
    server_free(srv);
}

static void on_server_handle_closed(uv_handle_t *h) {
  cll_server *srv = h->data;
  srv->handles_open--;
  server_maybe_free(srv);
}

static void on_grace(uv_timer_t *t) {
  cll_server *srv = t->data;
  /* Peers that did not let their last answer through: drop them. */
  for (struct conn *c = srv->conns; c; c = c->next)
    conn_close(c);
}

/* Frees a server that failed before its handles were initialised. */
static void free_early(cll_server *srv) {
  for (size_t i = 0; i < srv->n_api_keys; i++)
    free(srv->api_keys[i]);
  free(srv->api_keys);
  SSL_CTX_free(srv->tls);
  free(srv);
}

int cll_server_new(uv_loop_t *loop, const cll_server_opts *opts, cll_server **out,
                   cll_err *err) {
  *out = NULL;
  cll_server *srv = calloc(1, sizeof(*srv));
  if (srv == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  srv->loop = loop;
  srv->opts = *opts;
  srv->opts.origins = NULL;
  srv->opts.n_origins = 0;
  srv->opts.api_keys = NULL;
  srv->opts.n_api_keys = 0;
  if (opts->n_api_keys > 0) {
    srv->api_keys = calloc(opts->n_api_keys, sizeof(char *));
    for (size_t i = 0; srv->api_keys && i < opts->n_api_keys; i++)
      if ((srv->api_keys[srv->n_api_keys] = strdup(opts->api_keys[i])) != NULL)
        srv->n_api_keys++;
    if (srv->n_api_keys != opts->n_api_keys) {
      for (size_t i = 0; i < srv->n_api_keys; i++)
        free(srv->api_keys[i]);
      free(srv->api_keys);
      free(srv);
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    }
  }
  if (srv->opts.low_water_bytes > srv->opts.high_water_bytes)
    srv->opts.low_water_bytes = srv->opts.high_water_bytes;
  srv->opts.tls_cert_file = srv->opts.tls_key_file = NULL;
  if (opts->tls_cert_file || opts->tls_key_file) {
    const char *why = NULL;
    srv->tls = SSL_CTX_new(TLS_server_method());
    if (!opts->tls_cert_file || !opts->tls_key_file)
      why = "both a certificate and a key are needed";
    else if (srv->tls == NULL || SSL_CTX_set_min_proto_version(srv->tls, TLS1_2_VERSION) != 1)
      why = "cannot set up TLS";
    else if (SSL_CTX_use_certificate_chain_file(srv->tls, opts->tls_cert_file) != 1)
      why = "cannot load the certificate";
    else if (SSL_CTX_use_PrivateKey_file(srv->tls, opts->tls_key_file, SSL_FILETYPE_PEM) != 1)
      why = "cannot load the private key";
    else if (SSL_CTX_check_private_key(srv->tls) != 1)
      why = "the private key does not match the certificate";
    if (why) {
      unsigned long e = ERR_get_error();
      char detail[256] = "";
      if (e)
        ERR_error_string_n(e, detail, sizeof(detail));
      ERR_clear_error();
      SSL_CTX_free(srv->tls);
      for (size_t i = 0; i < srv->n_api_keys; i++)
        free(srv->api_keys[i]);
      free(srv->api_keys);
      free(srv);
      return cll_err_set(err, CLL_EINVAL, "TLS: %s%s%s", why, detail[0] ? ": " : "", detail);
    }
    SSL_CTX_set_mode(srv->tls, SSL_MODE_RELEASE_BUFFERS);
  }
  int loopback = cll__addr_is_loopback(opts->host);
  if (cll__cors_init(&srv->cors, opts->origins, opts->n_origins,
                     opts->host_check && loopback) != 0) {
    free_early(srv);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  llhttp_settings_init(&srv->settings);
  srv->settings.on_message_begin = on_message_begin;
  srv->settings.on_url = on_url;
  srv->settings.on_url_complete = on_url_complete;
  srv->settings.on_header_field = on_header_field;
  srv->settings.on_header_field_complete = on_header_field_complete;
  srv->settings.on_header_value = on_header_value;
  srv->settings.on_header_value_complete = on_header_value_complete;
  srv->settings.on_headers_complete = on_headers_complete;
  srv->settings.on_body = on_body;
  srv->settings.on_message_complete = on_message_complete;

  const char *host = opts->host;
  if (strcasecmp(host, "localhost") == 0)
    host = "127.0.0.1";
  struct sockaddr_storage ss;
  int rc;
  if (strchr(host, ':'))
    rc = uv_ip6_addr(host, opts->port, (struct sockaddr_in6 *)&ss);
  else
    rc = uv_ip4_addr(host, opts->port, (struct sockaddr_in *)&ss);
  if (rc != 0) {
    cll__cors_free(&srv->cors);
    free_early(srv);
    return cll_err_set(err, CLL_EINVAL, "invalid listen address \"%s\"", opts->host);
  }
  uv_tcp_init(loop, &srv->listener);
  uv_idle_init(loop, &srv->idle);
  uv_timer_init(loop, &srv->grace);
  srv->listener.data = srv->idle.data = srv->grace.data = srv;
  srv->handles_open = 3;
  rc = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
  if (rc == 0)
    rc = uv_listen((uv_stream_t *)&srv->listener, opts->backlog, on_connection);
  if (rc != 0) {
    cll_err_set(err, rc == UV_EADDRINUSE ? CLL_EBUSY : CLL_EIO, "listen on %s:%d: %s",
                opts->host, opts->port, uv_strerror(rc));
    srv->closing = 1;
    uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
    uv_close((uv_handle_t *)&srv->idle, on_server_handle_closed);
    srv->grace_closed = 1;
    uv_close((uv_handle_t *)&srv->grace, on_server_handle_closed);
    return err ? err->code : CLL_EIO;
  }
  struct sockaddr_storage bound;
  int blen = sizeof(bound);
  uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &blen);
  srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  *out = srv;
  return 0;
}

int cll_server_port(const cll_server *srv) { return srv->port; }
void cll_server_set_data(cll_server *srv, void *data) { srv->data = data; }
void cll_server_set_observer(cll_server *srv, cll_request_observer_fn fn, void *ud) {
  srv->observer = fn;
  srv->observer_ud = ud;
}
void *cll_server_data(const cll_server *srv) { return srv->data; }

int cll_server_route(cll_server *srv, const char *method, const char *pattern,
                     cll_handler_fn fn, void *ud) {
  return cll__route_add(&srv->routes, method, pattern, fn, ud);
}

int cll_server_route_stream(cll_server *srv, const char *method, const char *pattern,
                            cll_handler_fn fn, void *ud) {
  int rc = cll__route_add(&srv->routes, method, pattern, fn, ud);
  if (rc != 0)
    return rc;
  struct cll__route *last = srv->routes;
  while (last->next)
    last = last->next;
  last->stream_body = true;
  return 0;
}

void cll_server_close(cll_server *srv, void (*on_closed)(void *), void *ud) {
  if (srv->closing)
    return;
  srv->closing = 1;
  srv->on_closed = on_closed;
  srv->closed_ud = ud;
  uv_close((uv_handle_t *)&srv->listener, on_server_handle_closed);
  struct conn *next;
  for (struct conn *c = srv->conns; c; c = next) {
    next = c->next;
    if (c->req && c->req->state != REQ_PARSING) {
      c->flags |= CONN_NO_KEEPALIVE;
      c->req->keep_alive = 0;
      req_cancel(c->req, CLL_CANCEL_SHUTDOWN);
    } else if (c->queued > 0) {
      c->flags |= CONN_NO_KEEPALIVE;
    } else {
      conn_close(c);
    }
  }
  uv_timer_start(&srv->grace, on_grace, SHUTDOWN_GRACE_MS, 0);
  server_maybe_free(srv);
}
