/* conn.c — connections: accept, the read loop and TLS input (OpenSSL
 * memory BIOs), timers, close and deferred free, the bearer-key check,
 * dispatch through the router and the input processing loop. */
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

static void conn_start_read(struct conn *c);

/* ------------------------------------------------------------ connections */

static void on_conn_closed(uv_handle_t *h) {
  struct conn *c = h->data;
  if (--c->handles_open > 0)
    return;
  c->flags |= CONN_CLOSED;
  cll__conn_unref_maybe_free(c);
}

/* Frees c once its handles are closed, its writes completed and its
 * request answered. */
void cll__conn_unref_maybe_free(struct conn *c) {
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
  cll__server_maybe_free(srv);
}

void cll__conn_close(struct conn *c) {
  if (c->flags & CONN_CLOSING)
    return;
  c->flags |= CONN_CLOSING;
  /* A request still being parsed has no handler yet: drop it. */
  if (c->req && c->req->state == REQ_PARSING) {
    cll__req_free(c->req);
    c->req = NULL;
  } else if (c->req) {
    cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
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

void cll__on_conn_timer(uv_timer_t *t) {
  struct conn *c = t->data;
  if (c->eof_probe && c->req && !(c->flags & CONN_CLOSING)) {
    if (!peer_reset(c)) {
      uv_timer_start(&c->timer, cll__on_conn_timer, EOF_PROBE_MS, 0);
      return;
    }
    cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
  }
  /* Header/idle timeout, or a peer that stopped reading our output. */
  cll__conn_close(c);
}

void cll__conn_arm_timer(struct conn *c) {
  if (c->flags & CONN_CLOSING)
    return;
  const cll_server_opts *o = &c->srv->opts;
  if (c->req && c->req->state == REQ_PARSING) {
    /* Armed once at message begin; data arriving does not extend it, so a
     * client trickling bytes cannot hold the connection forever. */
    return;
  }
  if (c->req && c->eof_probe) {
    uv_timer_start(&c->timer, cll__on_conn_timer, EOF_PROBE_MS, 0);
    return;
  }
  if (c->req) {
    if (c->queued > 0)
      uv_timer_start(&c->timer, cll__on_conn_timer, o->idle_timeout_ms, 0);
    else
      uv_timer_stop(&c->timer); /* the handler is working */
    return;
  }
  uv_timer_start(&c->timer, cll__on_conn_timer, o->idle_timeout_ms, 0);
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
    cll__respond_plain(r, 500, "out of memory");
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
        cll__respond_plain(r, 403, NULL);
        return;
      }
      r->cors_origin = origin;
      if (strcmp(r->method, "OPTIONS") == 0) {
        cll_buf_printf(&r->extra,
                       "Access-Control-Allow-Methods: %s\r\n"
                       "Access-Control-Allow-Headers: %s\r\n"
                       "Access-Control-Max-Age: 43200\r\n",
                       cll__cors_allow_methods, cll__cors_allow_headers);
        cll__respond_plain(r, 204, NULL);
        return;
      }
    }
  }
  int h = cll__host_allowed(&srv->cors, host);
  if (h == 0) {
    cll__respond_plain(r, 403, NULL);
    return;
  }
  if (h == 2 && strcmp(r->method, "OPTIONS") == 0) {
    cll__respond_plain(r, 204, NULL);
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
      cll__respond_plain(r, 405, "405 method not allowed");
    else
      cll__respond_plain(r, 404, "404 page not found");
    return;
  }
  if (r->match.nparams) {
    r->param_values = calloc(r->match.nparams, sizeof(char *));
    for (size_t i = 0; r->param_values && i < r->match.nparams; i++)
      r->param_values[i] = strndup(r->path + r->match.param_off[i], r->match.param_len[i]);
    for (size_t i = 0; r->param_values && i < r->match.nparams; i++)
      if (r->param_values[i] == NULL) {
        cll__respond_plain(r, 500, "out of memory");
        return;
      }
    if (r->param_values == NULL) {
      cll__respond_plain(r, 500, "out of memory");
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
    if (cll__on_message_begin(&c->parser) != 0) {
      cll__conn_close(c);
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
  cll__respond_plain(r, status, text);
}

/* A streamed body the handler wants now. */
static int body_wanted(const cll_request *r) {
  return r->body_open && !r->body_paused && r->state != REQ_PARSING;
}

/* Parses buffered input and dispatches complete requests, one at a time. */
void cll__process_input(struct conn *c) {
  if (c->dispatching)
    return;
  c->dispatching = 1;
  while (!(c->flags & CONN_CLOSING) && !(c->flags & CONN_NO_KEEPALIVE) &&
         (c->req == NULL || c->req->state == REQ_PARSING || body_wanted(c->req)) &&
         c->in_pos < c->in.len && (c->req != NULL || cll__conn_output_ok(c))) {
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
        /* Not reached (cll__on_headers_complete clears the upgrade); should it
         * be, never parse what follows: close. */
        c->in_pos = c->in.len;
        if (c->req == NULL || c->req->state != REQ_PARSING) {
          cll__conn_close(c);
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
        uv_timer_start(&c->timer, cll__on_conn_timer, c->srv->opts.header_timeout_ms, 0);
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
      cll__conn_close(c);
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

void cll__on_idle(uv_idle_t *h) {
  cll_server *srv = h->data;
  while (srv->pending) {
    struct conn *c = srv->pending;
    srv->pending = c->pend_next;
    c->flags &= ~CONN_PENDING;
    c->busy++;
    cll__deliver_cancels(c);
    if (!(c->flags & CONN_CLOSING) &&
        (c->req == NULL || c->req->state == REQ_PARSING || body_wanted(c->req)))
      cll__process_input(c);
    c->busy--;
    cll__conn_unref_maybe_free(c);
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
    cll__req_free(c->req);
    c->req = NULL;
  }
  if (c->req == NULL && c->queued == 0)
    cll__conn_close(c);
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
      cll__conn_send(c, msg, sizeof(msg) - 1, NULL, 0, NULL, 0);
      conn_finish_output(c);
      return -1;
    }
  }
  if (BIO_write(SSL_get_rbio(c->ssl), data, (int)n) != (int)n) {
    cll__conn_close(c);
    return -1;
  }
  char tmp[16384];
  for (;;) {
    int k = SSL_read(c->ssl, tmp, sizeof(tmp));
    if (k > 0) {
      if (cll_buf_append(&c->in, tmp, (size_t)k) != 0) {
        cll__conn_close(c);
        return -1;
      }
      continue;
    }
    int e = SSL_get_error(c->ssl, k);
    ERR_clear_error();
    cll__tls_flush(c); /* handshake records, tickets, alerts */
    if (c->flags & CONN_CLOSING)
      return -1;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
      return 0;
    if (e == SSL_ERROR_ZERO_RETURN)
      return 1;
    /* A failed handshake or a bad record: the alert goes out, then close. */
    if (c->req && c->req->state != REQ_PARSING)
      cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
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
        cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
      cll__conn_close(c);
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
      if (cll__conn_write3(c, probe, sizeof(probe) - 1, NULL, 0, NULL, 0) == 0)
        cll__conn_arm_timer(c);
      return;
    }
    if (c->req && c->req->state != REQ_PARSING) {
      /* Gone mid-answer (Go's server cancels the request context too). */
      cll__req_cancel(c->req, CLL_CANCEL_CLIENT_GONE);
      cll__conn_close(c);
      return;
    }
    if (c->queued == 0 && c->req == NULL && c->in.len == c->in_pos)
      cll__conn_close(c);
    else if (c->req == NULL)
      cll__process_input(c);
    return;
  }
  if (!decrypted && cll_buf_append(&c->in, buf->base, (size_t)nread) != 0) {
    cll__conn_close(c);
    return;
  }
  if ((c->req && c->req->state != REQ_PARSING && !body_wanted(c->req)) ||
      (c->req == NULL && !cll__conn_output_ok(c))) {
    /* Pipelined input while a request is being answered or while this
     * connection's output waits: keep it, within a cap, and stop reading
     * past it (resumed once the input is consumed). */
    if (c->in.len >= INPUT_CAP_ACTIVE) {
      uv_read_stop(s);
      c->flags |= CONN_READ_STOPPED;
    }
    return;
  }
  cll__process_input(c);
  if (!(c->flags & CONN_CLOSING) && c->req == NULL && c->in.len == 0)
    cll__conn_arm_timer(c);
}

static void conn_start_read(struct conn *c) {
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void cll__on_connection(uv_stream_t *ls, int status) {
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
    cll__conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (srv->tls) {
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    c->ssl = rb && wb ? SSL_new(srv->tls) : NULL;
    if (c->ssl == NULL) {
      BIO_free(rb);
      BIO_free(wb);
      cll__conn_close(c);
      return;
    }
    SSL_set_bio(c->ssl, rb, wb);
    SSL_set_accept_state(c->ssl);
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
  c->parser.data = c;
  uv_timer_start(&c->timer, cll__on_conn_timer, srv->opts.idle_timeout_ms, 0);
  conn_start_read(c);
}
