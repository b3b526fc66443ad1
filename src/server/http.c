/* http.c — the server object: options, creation (listener, TLS context,
 * api keys, parser settings), routes, shutdown and freeing; also the
 * status-code reason table. Connections live in conn.c, parsing in
 * parse.c, requests in request.c, responses in response.c.
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

uint64_t cll__now_ns(void) {
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
  case 100:
    return "Continue";
  case 200:
    return "OK";
  case 201:
    return "Created";
  case 204:
    return "No Content";
  case 301:
    return "Moved Permanently";
  case 304:
    return "Not Modified";
  case 307:
    return "Temporary Redirect";
  case 400:
    return "Bad Request";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "Not Found";
  case 405:
    return "Method Not Allowed";
  case 408:
    return "Request Timeout";
  case 409:
    return "Conflict";
  case 411:
    return "Length Required";
  case 413:
    return "Request Entity Too Large";
  case 415:
    return "Unsupported Media Type";
  case 417:
    return "Expectation Failed";
  case 422:
    return "Unprocessable Entity";
  case 429:
    return "Too Many Requests";
  case 431:
    return "Request Header Fields Too Large";
  case 499:
    return "Client Closed Request";
  case 500:
    return "Internal Server Error";
  case 501:
    return "Not Implemented";
  case 502:
    return "Bad Gateway";
  case 503:
    return "Service Unavailable";
  case 505:
    return "HTTP Version Not Supported";
  default:
    return "Unknown";
  }
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

void cll__server_maybe_free(cll_server *srv) {
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
  cll__server_maybe_free(srv);
}

static void on_grace(uv_timer_t *t) {
  cll_server *srv = t->data;
  /* Peers that did not let their last answer through: drop them. */
  for (struct conn *c = srv->conns; c; c = c->next)
    cll__conn_close(c);
}

/* Frees a server that failed before its handles were initialised. */
static void free_early(cll_server *srv) {
  for (size_t i = 0; i < srv->n_api_keys; i++)
    free(srv->api_keys[i]);
  free(srv->api_keys);
  SSL_CTX_free(srv->tls);
  free(srv);
}

int cll_server_new(uv_loop_t *loop, const cll_server_opts *opts, cll_server **out, cll_err *err) {
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
  if (cll__cors_init(&srv->cors, opts->origins, opts->n_origins, opts->host_check && loopback) !=
      0) {
    free_early(srv);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  cll__parser_settings(&srv->settings);

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
    rc = uv_listen((uv_stream_t *)&srv->listener, opts->backlog, cll__on_connection);
  if (rc != 0) {
    cll_err_set(err, rc == UV_EADDRINUSE ? CLL_EBUSY : CLL_EIO, "listen on %s:%d: %s", opts->host,
                opts->port, uv_strerror(rc));
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

int cll_server_port(const cll_server *srv) {
  return srv->port;
}
void cll_server_set_data(cll_server *srv, void *data) {
  srv->data = data;
}
void cll_server_set_observer(cll_server *srv, cll_request_observer_fn fn, void *ud) {
  srv->observer = fn;
  srv->observer_ud = ud;
}
void *cll_server_data(const cll_server *srv) {
  return srv->data;
}

int cll_server_route(cll_server *srv, const char *method, const char *pattern, cll_handler_fn fn,
                     void *ud) {
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
      cll__req_cancel(c->req, CLL_CANCEL_SHUTDOWN);
    } else if (c->queued > 0) {
      c->flags |= CONN_NO_KEEPALIVE;
    } else {
      cll__conn_close(c);
    }
  }
  uv_timer_start(&srv->grace, on_grace, SHUTDOWN_GRACE_MS, 0);
  cll__server_maybe_free(srv);
}
