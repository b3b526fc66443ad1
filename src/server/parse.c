/* parse.c — llhttp glue: the parser callbacks that build a request,
 * enforce the head/header/body limits and detect streamed-body routes. */
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

/* ------------------------------------------------------------ llhttp glue */

static cll_request *cur_req(llhttp_t *p) {
  return ((struct conn *)p->data)->req;
}

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

int cll__on_message_begin(llhttp_t *p) {
  struct conn *c = p->data;
  assert(c->req == NULL);
  cll_request *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    c->error_status = 500;
    return HPE_USER;
  }
  r->conn = c;
  r->state = REQ_PARSING;
  r->t_start_ns = cll__now_ns();
  c->req = r;
  uv_timer_start(&c->timer, cll__on_conn_timer, c->srv->opts.header_timeout_ms, 0);
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

int cll__on_headers_complete(llhttp_t *p) {
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
    /* Dispatched now (cll__process_input), the body follows as it arrives. */
    r->stream_body = 1;
    r->body_open = 1;
    const char *expect = cll_request_header(r, "Expect");
    if (expect && r->http_major == 1 && r->http_minor >= 1 &&
        strcasecmp(expect, "100-continue") == 0) {
      static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
      cll__conn_write3(c, cont, sizeof(cont) - 1, NULL, 0, NULL, 0);
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
    cll__conn_write3(c, cont, sizeof(cont) - 1, NULL, 0, NULL, 0);
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct conn *c = p->data;
  cll_request *r = c->req;
  if (r == NULL || (c->flags & CONN_ABANDONED))
    return HPE_USER; /* answered already: the rest is not read */
  if (r->stream_body) {
    uv_timer_start(&c->timer, cll__on_conn_timer, c->srv->opts.header_timeout_ms, 0);
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
  uv_timer_start(&c->timer, cll__on_conn_timer, c->srv->opts.header_timeout_ms, 0);
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

void cll__parser_settings(llhttp_settings_t *s) {
  llhttp_settings_init(s);
  s->on_message_begin = cll__on_message_begin;
  s->on_url = on_url;
  s->on_url_complete = on_url_complete;
  s->on_header_field = on_header_field;
  s->on_header_field_complete = on_header_field_complete;
  s->on_header_value = on_header_value;
  s->on_header_value_complete = on_header_value_complete;
  s->on_headers_complete = cll__on_headers_complete;
  s->on_body = on_body;
  s->on_message_complete = on_message_complete;
}
