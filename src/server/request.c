/* request.c — the cll_request API handlers use: accessors, path
 * parameters, forwarding, streamed request bodies and cancellation. */
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

/* ------------------------------------------------------------- requests */

void cll__req_free(cll_request *r) {
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

const char *cll_request_method(const cll_request *r) {
  return r->method;
}
const char *cll_request_path(const cll_request *r) {
  return r->path;
}
const char *cll_request_query(const cll_request *r) {
  return r->query;
}
void *cll_request_server_data(const cll_request *r) {
  return r->conn->srv->data;
}
void cll_request_set_data(cll_request *r, void *data) {
  r->data = data;
}
void *cll_request_data(const cll_request *r) {
  return r->data;
}
bool cll_request_gone(const cll_request *r) {
  return r->cancelled_gone != 0;
}

void cll_request_read_body(cll_request *r, cll_body_fn fn, void *ud) {
  r->on_body_fn = fn;
  r->body_ud = ud;
}

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
    uv_timer_start(&c->timer, cll__on_conn_timer, c->srv->opts.header_timeout_ms, 0);
    cll__conn_schedule(c); /* parse what is buffered, resume reading */
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

size_t cll_stream_queued_bytes(const cll_request *r) {
  return r->conn->queued;
}

bool cll_stream_writable(const cll_request *r) {
  return r->conn->queued < r->conn->srv->opts.high_water_bytes;
}

/* Records the reason now (so writes after a disconnect are dropped at
 * once) and runs the handler's callback later from the idle handle, so a
 * cancel callback never runs inside a cll_stream_write()/cll_respond()
 * the handler is in the middle of. */
void cll__req_cancel(cll_request *r, int reason) {
  int *sent = reason == CLL_CANCEL_CLIENT_GONE ? &r->cancelled_gone : &r->cancelled_shutdown;
  if (*sent)
    return;
  *sent = 1;
  if (r->state != REQ_HANDLER && r->state != REQ_STREAMING)
    return;
  r->cancel_pending |= 1 << reason;
  cll__conn_schedule(r->conn);
}

/* Runs the pending cancel callbacks of c's request. */
void cll__deliver_cancels(struct conn *c) {
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
