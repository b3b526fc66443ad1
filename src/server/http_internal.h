/* http_internal.h — what the files of the HTTP layer (http.c, conn.c,
 * parse.c, request.c, response.c) share: the server, connection and
 * request structs and the cll__ functions that cross files. Nothing
 * outside src/server includes this. */
#ifndef CLLAMA_SERVER_HTTP_INTERNAL_H
#define CLLAMA_SERVER_HTTP_INTERNAL_H

#include "internal.h"

#include <openssl/ssl.h>
#include <stdint.h>
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
  cll_buf head;   /* url, header names and values, each NUL-terminated */
  size_t url_len; /* bytes of url in head (before the first header) */
  int url_done;
  struct hdr *hdrs;
  size_t n_hdrs, cap_hdrs;
  int in_value; /* parser is inside a header value */
  char method[24];
  char *path, *query; /* split copy of the url */
  cll_buf body;
  struct cll__match match;
  char **param_values;
  int http_major, http_minor;
  int keep_alive;
  int is_head;
  int upgrade;     /* Upgrade/CONNECT asked: answered as plain HTTP, then closed */
  int stream_body; /* a streamed-body route: dispatched at the end of the head */
  int body_open;   /* ... and its body is still being parsed */
  int body_paused; /* cll_request_pause_body(req, true) */
  cll_body_fn on_body_fn;
  void *body_ud;
  int chunked_out; /* streaming with chunked framing */
  int status;
  cll_buf extra;           /* extra response header lines */
  const char *cors_origin; /* Origin to echo, borrowed from headers */
  cll_drain_fn on_drain;
  void *drain_ud;
  int drain_wanted; /* writable() went false; call on_drain when below low water */
  cll_cancel_fn on_cancel;
  void *cancel_ud;
  int cancelled_gone, cancelled_shutdown; /* the reason is known (writes dropped when gone) */
  int cancel_pending;                     /* bits 1<<reason whose callback is still to run */
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
  CONN_CLOSING = 1, /* uv_close called */
  CONN_CLOSED = 2,  /* close callback ran */
  CONN_EOF = 4,     /* peer sent FIN or errored */
  CONN_READ_STOPPED = 8,
  CONN_NO_KEEPALIVE = 16, /* close once the current response is flushed */
  CONN_PENDING = 32,      /* on the server's to-process list */
  CONN_ABANDONED = 64,    /* answered in the middle of a streamed body: parse no more */
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  cll_server *srv;
  struct conn *prev, *next; /* server's connection list */
  struct conn *pend_next;   /* server's to-process list */
  llhttp_t parser;
  cll_buf in;       /* unparsed input */
  size_t in_pos;    /* parsed up to here */
  cll_request *req; /* being parsed or being answered */
  int flags;
  int handles_open; /* tcp + timer */
  size_t queued;    /* bytes handed to uv_write, not yet written */
  int error_status; /* a limit was hit while parsing: 413/431/400 */
  int dispatching;  /* inside process_input */
  int busy;         /* inside a callback that may free it: defer the free */
  int eof_probe;    /* FIN seen mid-request: watching for the peer's reset */
  SSL *ssl;         /* TLS: memory BIOs between the socket and the parser */
  int tls_seen;     /* the first bytes were looked at */
};

struct cll_server {
  uv_loop_t *loop;
  cll_server_opts opts;
  uv_tcp_t listener;
  uv_idle_t idle;   /* runs process_input for connections whose request ended */
  uv_timer_t grace; /* shutdown grace period */
  int handles_open;
  int grace_closed;
  int closing;
  int port;
  struct cll__route *routes;
  struct cll__cors cors;
  SSL_CTX *tls;    /* HTTPS only when set */
  char **api_keys; /* copies of opts.api_keys */
  size_t n_api_keys;
  struct conn *conns;
  size_t n_conns; /* conn structs alive */
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

/* Cross-file internals. */
void cll__conn_arm_timer(struct conn *c);
void cll__conn_close(struct conn *c);
int cll__conn_output_ok(const struct conn *c);
void cll__conn_schedule(struct conn *c);
int cll__conn_send(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                   const void *d, size_t nd);
void cll__conn_unref_maybe_free(struct conn *c);
int cll__conn_write3(struct conn *c, const void *a, size_t na, const void *b, size_t nb,
                     const void *d, size_t nd);
void cll__deliver_cancels(struct conn *c);
uint64_t cll__now_ns(void);
void cll__on_conn_timer(uv_timer_t *t);
void cll__on_connection(uv_stream_t *ls, int status);
int cll__on_headers_complete(llhttp_t *p);
void cll__on_idle(uv_idle_t *h);
int cll__on_message_begin(llhttp_t *p);
void cll__process_input(struct conn *c);
void cll__req_cancel(cll_request *r, int reason);
void cll__req_free(cll_request *r);
void cll__respond_plain(cll_request *r, int status, const char *text);
void cll__server_maybe_free(cll_server *srv);
int cll__tls_flush(struct conn *c);
void cll__parser_settings(llhttp_settings_t *s);

#endif
