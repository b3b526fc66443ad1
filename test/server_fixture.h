/* server_fixture.h — the in-process HTTP server the test_server* binaries
 * drive: a cll_server on its own loop thread with test handlers (hello,
 * echo, params, slow, stream, hang, wait, big, upload), bound to 127.0.0.1
 * port 0, and what those handlers saw, for the test thread to read.
 * start_server/stop_server are the suites' init and fini; stop_server
 * checks that every handle closed (uv_loop_close returns 0). Per-suite
 * knobs (header_timeout_ms, suite_keys, tls_cert) are set before
 * start_server. One binary includes it once. */
#ifndef CLLAMA_TEST_SERVER_FIXTURE_H
#define CLLAMA_TEST_SERVER_FIXTURE_H

#include "cllama/server.h"
#include "http_helpers.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <dirent.h>
#include <stdint.h>

static struct {
  uv_loop_t loop;
  uv_async_t stop;
  cll_server *srv;
  pthread_t thread;
  int port;
  int loop_close_rc;
  atomic_int stop_sent;
} S;

static void request_stop(void) {
  if (atomic_exchange(&S.stop_sent, 1) == 0)
    uv_async_send(&S.stop);
}

/* What the handlers saw, read by the test thread. */
static atomic_int cancel_gone, cancel_shutdown;
static atomic_size_t max_queued, stream_bytes_written;
static atomic_int drains;
static atomic_int big_served;
static uint64_t header_timeout_ms = 600; /* per suite */
static const char *const *suite_keys;    /* access control, per suite */
static size_t n_suite_keys;
static char tls_cert[256], tls_key[256]; /* TLS, per suite */

/* -------------------------------------------------------------- handlers */

static void h_hello(cll_request *req, void *ud) {
  cll_respond(req, 200, "text/plain", "hello", 5);
}

static void h_echo(cll_request *req, void *ud) {
  size_t len;
  const char *b = cll_request_body(req, &len);
  const char *ct = cll_request_header(req, "Content-Type");
  cll_response_header(req, "X-Echo-Type", ct ? ct : "none");
  cll_respond(req, 200, "application/octet-stream", b, len);
}

static void h_params(cll_request *req, void *ud) {
  char out[256];
  int n = snprintf(out, sizeof(out), "id=%s x=%s q=%s", cll_request_param(req, "id"),
                   cll_request_param(req, "x"), cll_request_query(req));
  cll_respond(req, 200, "text/plain", out, (size_t)n);
}

struct slow {
  uv_timer_t t;
  cll_request *req;
};
static void on_slow_closed(uv_handle_t *h) {
  free(h->data);
}
static void on_slow(uv_timer_t *t) {
  struct slow *s = t->data;
  cll_respond(s->req, 200, "text/plain", "slow", 4);
  uv_close((uv_handle_t *)t, on_slow_closed);
}
static void h_slow(cll_request *req, void *ud) {
  struct slow *s = calloc(1, sizeof(*s));
  s->req = req;
  uv_timer_init(&S.loop, &s->t);
  s->t.data = s;
  uv_timer_start(&s->t, on_slow, 150, 0);
}

/* /stream?n=N&size=S: N chunks of S bytes, paced by back-pressure. */
struct stream {
  cll_request *req;
  long left, size;
  char *chunk;
  int done;
};
static void stream_pump(struct stream *st);
static void on_stream_drain(cll_request *req, void *ud) {
  atomic_fetch_add(&drains, 1);
  stream_pump(ud);
}
static void stream_finish(struct stream *st) {
  if (st->done)
    return;
  st->done = 1;
  cll_stream_end(st->req);
  free(st->chunk);
  free(st);
}
static void on_stream_cancel(cll_request *req, int reason, void *ud) {
  if (reason == CLL_CANCEL_CLIENT_GONE)
    atomic_fetch_add(&cancel_gone, 1);
  else
    atomic_fetch_add(&cancel_shutdown, 1);
  /* Ending inside the cancel callback is allowed: the handler owns req. */
  if (reason == CLL_CANCEL_CLIENT_GONE)
    stream_finish(ud);
}
static void stream_pump(struct stream *st) {
  while (st->left > 0) {
    if (cll_stream_write(st->req, st->chunk, (size_t)st->size) != 0)
      return; /* gone: the cancel callback ends it */
    atomic_fetch_add(&stream_bytes_written, (size_t)st->size);
    st->left--;
    size_t q = cll_stream_queued_bytes(st->req);
    size_t m = atomic_load(&max_queued);
    if (q > m)
      atomic_store(&max_queued, q);
    if (!cll_stream_writable(st->req))
      return; /* resumed by on_stream_drain */
  }
  stream_finish(st);
}
static void h_stream(cll_request *req, void *ud) {
  struct stream *st = calloc(1, sizeof(*st));
  st->req = req;
  sscanf(cll_request_query(req), "n=%ld&size=%ld", &st->left, &st->size);
  st->chunk = malloc((size_t)st->size);
  memset(st->chunk, 'x', (size_t)st->size);
  cll_request_on_drain(req, on_stream_drain, st);
  cll_request_on_cancel(req, on_stream_cancel, st);
  cll_stream_start(req, 200, "application/x-ndjson");
  stream_pump(st);
}

/* /hang: answers only when cancelled (client gone or shutdown). */
static void on_hang_cancel(cll_request *req, int reason, void *ud) {
  if (reason == CLL_CANCEL_CLIENT_GONE) {
    atomic_fetch_add(&cancel_gone, 1);
    cll_stream_end(req);
  } else {
    atomic_fetch_add(&cancel_shutdown, 1);
    cll_stream_write(req, "bye\n", 4);
    cll_stream_end(req);
  }
}
static void h_hang(cll_request *req, void *ud) {
  cll_request_on_cancel(req, on_hang_cancel, NULL);
  cll_stream_start(req, 200, "application/x-ndjson");
  cll_stream_write(req, "hi\n", 3);
}

/* /wait: non-streaming, answers only when cancelled or after 300 ms. */
struct waiter {
  uv_timer_t t;
  cll_request *req;
};
static void on_wait_done(uv_timer_t *t) {
  struct waiter *w = t->data;
  cll_respond(w->req, 200, "text/plain", "waited", 6);
  uv_close((uv_handle_t *)t, on_slow_closed);
}
static void on_wait_cancel(cll_request *req, int reason, void *ud) {
  struct waiter *w = ud;
  atomic_fetch_add(reason == CLL_CANCEL_CLIENT_GONE ? &cancel_gone : &cancel_shutdown, 1);
  uv_timer_stop(&w->t);
  cll_respond(req, 499, NULL, NULL, 0);
  uv_close((uv_handle_t *)&w->t, on_slow_closed);
}
static void h_wait(cll_request *req, void *ud) {
  struct waiter *w = calloc(1, sizeof(*w));
  w->req = req;
  uv_timer_init(&S.loop, &w->t);
  w->t.data = w;
  cll_request_on_cancel(req, on_wait_cancel, w);
  uv_timer_start(&w->t, on_wait_done, 300, 0);
}

/* /big: 1 MiB in one answer. */
static void h_big(cll_request *req, void *ud) {
  static char big[1 << 20];
  atomic_fetch_add(&big_served, 1);
  cll_respond(req, 200, "application/octet-stream", big, sizeof(big));
}

/* POST /upload (streamed body): counts and checksums the body, pausing
 * after each piece until a timer tick (a slow disk), then answers
 * "<bytes> <sum>". */
struct upload {
  cll_request *req;
  uv_timer_t t;
  size_t bytes;
  unsigned long sum;
};
static void on_upload_closed(uv_handle_t *h) {
  free(h->data);
}
static void on_upload_tick(uv_timer_t *t) {
  struct upload *u = t->data;
  cll_request_pause_body(u->req, false);
}
static void on_upload_piece(cll_request *req, const char *data, size_t len, void *ud) {
  struct upload *u = ud;
  if (data == NULL) {
    char out[64];
    int n = snprintf(out, sizeof(out), "%zu %lu", u->bytes, u->sum);
    cll_respond(req, 200, "text/plain", out, (size_t)n);
    uv_close((uv_handle_t *)&u->t, on_upload_closed);
    return;
  }
  for (size_t i = 0; i < len; i++)
    u->sum = u->sum * 31 + (unsigned char)data[i];
  u->bytes += len;
  cll_request_pause_body(req, true);
  uv_timer_start(&u->t, on_upload_tick, 1, 0);
}
static void h_upload(cll_request *req, void *ud) {
  struct upload *u = calloc(1, sizeof(*u));
  u->req = req;
  uv_timer_init(&S.loop, &u->t);
  u->t.data = u;
  cll_request_read_body(req, on_upload_piece, u);
}

/* ------------------------------------------------------------- the loop */

static void on_closed(void *ud) {
  uv_close((uv_handle_t *)&S.stop, NULL);
}
static void on_stop(uv_async_t *a) {
  cll_server_close(S.srv, on_closed, NULL);
}

static void *loop_main(void *arg) {
  uv_run(&S.loop, UV_RUN_DEFAULT);
  S.loop_close_rc = uv_loop_close(&S.loop);
  return NULL;
}

static void start_server(void) {
  memset(&S, 0, sizeof(S));
  atomic_store(&cancel_gone, 0);
  atomic_store(&cancel_shutdown, 0);
  atomic_store(&max_queued, 0);
  atomic_store(&stream_bytes_written, 0);
  atomic_store(&drains, 0);
  atomic_store(&big_served, 0);
  uv_loop_init(&S.loop);
  uv_async_init(&S.loop, &S.stop, on_stop);
  cll_server_opts o;
  cll_server_opts_defaults(&o);
  o.port = 0;
  o.max_body_bytes = 1 << 20;
  o.header_timeout_ms = header_timeout_ms;
  o.idle_timeout_ms = 1500;
  o.host_check = false; /* the tests send "Host: x" */
  o.api_keys = suite_keys;
  o.n_api_keys = n_suite_keys;
  if (tls_cert[0]) {
    o.tls_cert_file = tls_cert;
    o.tls_key_file = tls_key;
  }
  cll_err err = {0};
  cr_assert_eq(cll_server_new(&S.loop, &o, &S.srv, &err), 0, "%s", err.msg);
  S.port = cll_server_port(S.srv);
  cr_assert_gt(S.port, 0);
  cll_server_route(S.srv, "GET", "/hello", h_hello, NULL);
  cll_server_route(S.srv, "GET", "/", h_hello, NULL);
  cll_server_route(S.srv, "GET", "/api/version", h_hello, NULL);
  cll_server_route(S.srv, "HEAD", "/hello", h_hello, NULL);
  cll_server_route(S.srv, "POST", "/echo", h_echo, NULL);
  cll_server_route(S.srv, "GET", "/items/:id/sub/:x", h_params, NULL);
  cll_server_route(S.srv, "GET", "/slow", h_slow, NULL);
  cll_server_route(S.srv, "GET", "/stream", h_stream, NULL);
  cll_server_route(S.srv, "GET", "/hang", h_hang, NULL);
  cll_server_route(S.srv, "GET", "/wait", h_wait, NULL);
  cll_server_route(S.srv, "GET", "/big", h_big, NULL);
  cll_server_route_stream(S.srv, "POST", "/upload", h_upload, NULL);
  pthread_create(&S.thread, NULL, loop_main, NULL);
}

static void stop_server(void) {
  request_stop();
  pthread_join(S.thread, NULL);
  cr_expect_eq(S.loop_close_rc, 0, "handles left open after shutdown");
}

static char url_buf[256];
static inline const char *url(const char *path) {
  snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", S.port, path);
  return url_buf;
}

#endif
