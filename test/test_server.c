/* test_server.c — the HTTP layer (include/cllama/server.h) in process: a
 * server on its own loop thread with test handlers, bound to 127.0.0.1
 * port 0, driven by raw sockets and libcurl from the test thread. Covers
 * routing and params, keep-alive, pipelining, byte-at-a-time input, chunked
 * bodies, Expect: 100-continue, 413/431, timeouts, HTTP/1.0, HEAD,
 * streaming back-pressure, client-disconnect cancellation and clean
 * shutdown (every handle closed: uv_loop_close returns 0). */
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
static char tls_dir[128], tls_cert[256], tls_key[256]; /* TLS, per suite */

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

TestSuite(server, .init = start_server, .fini = stop_server, .timeout = 30);

static char url_buf[256];
static const char *url(const char *path) {
  snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", S.port, path);
  return url_buf;
}

/* ----------------------------------------------------------------- tests */

Test(server, routes_params_404_405) {
  CURL *h = curl_easy_init();
  struct cresp r;
  cr_assert_eq(curl_req(h, "GET", url("/hello"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "hello");
  cresp_free(&r);
  curl_req(h, "GET", url("/items/42/sub/a.b?z=1"), NULL, NULL, &r);
  cr_expect_str_eq(r.body, "id=42 x=a.b q=z=1");
  cresp_free(&r);
  curl_req(h, "GET", url("/nothing/here"), NULL, NULL, &r);
  cr_expect_eq(r.status, 404);
  cr_expect_str_eq(r.body, "404 page not found");
  cresp_free(&r);
  curl_req(h, "DELETE", url("/hello"), NULL, NULL, &r);
  cr_expect_eq(r.status, 405);
  cr_expect_str_eq(r.body, "405 method not allowed");
  cresp_free(&r);
  curl_req(h, "GET", url("/items/42/sub"), NULL, NULL, &r);
  cr_expect_eq(r.status, 404);
  cresp_free(&r);
  curl_easy_cleanup(h);
}

Test(server, keep_alive_reuses_one_connection) {
  CURL *h = curl_easy_init();
  struct cresp r;
  long conns = -1;
  for (int i = 0; i < 5; i++) {
    /* curl_req resets options but keeps the connection cache. */
    cr_assert_eq(curl_req(h, "GET", url("/hello"), NULL, NULL, &r), 0);
    cr_expect_eq(r.status, 200);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
    if (i > 0)
      cr_expect_eq(conns, 0, "request %d opened a new connection", i);
    cresp_free(&r);
  }
  curl_easy_cleanup(h);
}

Test(server, pipelined_requests_answered_in_order) {
  int fd = tcp_connect(S.port);
  cr_assert_geq(fd, 0);
  /* The first answer is asynchronous (150 ms); the others must wait. */
  send_str(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"
               "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
               "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
               "GET /items/7/sub/8 HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  const char *want[] = {"slow", "hello", "abc", "id=7 x=8 q="};
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(read_response(&rd, &r, 0), 0, "response %d", i);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, want[i]);
    resp_free(&r);
  }
  close(fd);
}

Test(server, request_fed_one_byte_at_a_time) {
  int fd = tcp_connect(S.port);
  const char *req = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/x-test\r\n"
                    "Content-Length: 11\r\n\r\nhello world";
  for (const char *p = req; *p; p++) {
    cr_assert_eq(send_all(fd, p, 1), 0);
    if ((p - req) % 16 == 0)
      usleep(1000);
  }
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "hello world");
  cr_expect_str_eq(resp_header(&r, "X-Echo-Type"), "text/x-test");
  resp_free(&r);
  close(fd);
}

Test(server, chunked_request_body) {
  int fd = tcp_connect(S.port);
  send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_str_eq(r.body, "hello world");
  resp_free(&r);
  close(fd);
}

Test(server, expect_100_continue) {
  int fd = tcp_connect(S.port);
  send_str(fd,
           "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
  struct reader rd = {.fd = fd};
  char line[256];
  cr_assert_eq(reader_line(&rd, line, sizeof(line)), 0);
  cr_expect_str_eq(line, "HTTP/1.1 100 Continue");
  reader_line(&rd, line, sizeof(line));
  send_str(fd, "data");
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "data");
  resp_free(&r);
  close(fd);
}

Test(server, head_too_large_431) {
  int fd = tcp_connect(S.port);
  size_t n = 70 * 1024;
  char *big = malloc(n + 64);
  int off = snprintf(big, 64, "GET /hello HTTP/1.1\r\nX-Big: ");
  memset(big + off, 'a', n);
  strcpy(big + off + n, "\r\n\r\n");
  send_all(fd, big, strlen(big)); /* may fail part-way once the server closes */
  free(big);
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 431);
  resp_free(&r);
  cr_expect(peer_closed(fd, 2000));
  close(fd);
}

Test(server, too_many_headers_431) {
  int fd = tcp_connect(S.port);
  char buf[8192];
  size_t off = (size_t)snprintf(buf, sizeof(buf), "GET /hello HTTP/1.1\r\n");
  for (int i = 0; i < 200; i++)
    off += (size_t)snprintf(buf + off, sizeof(buf) - off, "X-%d: v\r\n", i);
  off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\r\n");
  send_all(fd, buf, off);
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 431);
  resp_free(&r);
  close(fd);
}

Test(server, body_too_large_413) {
  /* Declared length over the limit: refused before any body is sent. */
  int fd = tcp_connect(S.port);
  send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 413);
  resp_free(&r);
  close(fd);
  /* Chunked body that grows past the limit (1 MiB here). */
  fd = tcp_connect(S.port);
  send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  char chunk[65536 + 16];
  int hl = snprintf(chunk, 16, "10000\r\n");
  memset(chunk + hl, 'z', 65536);
  memcpy(chunk + hl + 65536, "\r\n", 2);
  for (int i = 0; i < 20; i++)
    if (send_all(fd, chunk, (size_t)hl + 65538) != 0)
      break;
  rd = (struct reader){.fd = fd};
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 413);
  resp_free(&r);
  close(fd);
}

Test(server, malformed_request_400) {
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /hello HTTP/1.1\r\nBad Header\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 400);
  resp_free(&r);
  cr_expect(peer_closed(fd, 2000));
  close(fd);
}

Test(server, header_and_idle_timeouts) {
  /* A request head that never completes is cut off (600 ms here). */
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  double t0 = mono_ms();
  cr_expect(peer_closed(fd, 3000));
  close(fd);
  /* An idle keep-alive connection is closed after idle_timeout (1.5 s). */
  fd = tcp_connect(S.port);
  send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  resp_free(&r);
  t0 = mono_ms();
  cr_expect(peer_closed(fd, 4000));
  cr_expect_gt(mono_ms() - t0, 1000);
  close(fd);
}

Test(server, http10_and_head) {
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /hello HTTP/1.0\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "hello");
  resp_free(&r);
  cr_expect(peer_closed(fd, 2000));
  close(fd);
  /* HTTP/1.0 streaming: no chunked framing, the body ends at close. */
  fd = tcp_connect(S.port);
  send_str(fd, "GET /stream?n=3&size=4 HTTP/1.0\r\n\r\n");
  rd = (struct reader){.fd = fd};
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_null(resp_header(&r, "Transfer-Encoding"));
  cr_expect_str_eq(r.body, "xxxxxxxxxxxx");
  resp_free(&r);
  close(fd);
  /* HEAD: the headers of GET, no body. */
  fd = tcp_connect(S.port);
  send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  rd = (struct reader){.fd = fd};
  cr_assert_eq(read_response(&rd, &r, 1), 0);
  cr_expect_str_eq(resp_header(&r, "Content-Length"), "5");
  resp_free(&r);
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_str_eq(r.body, "hello");
  resp_free(&r);
  close(fd);
}

Test(server, slow_reader_backpressure_does_not_block_others) {
  /* 4,000 chunks of 16 KiB (64 MiB) to a client that does not read for
   * a while: the kernel buffers absorb a few MiB, the rest must wait in
   * the producer, not in the server's queue. */
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /stream?n=4000&size=16384 HTTP/1.1\r\nHost: x\r\n\r\n");
  usleep(300 * 1000);
  /* Another client is served at once. */
  CURL *h = curl_easy_init();
  struct cresp r;
  cr_assert_eq(curl_req(h, "GET", url("/hello"), NULL, NULL, &r), 0);
  cr_expect_str_eq(r.body, "hello");
  cresp_free(&r);
  curl_easy_cleanup(h);
  /* The producer paused at the high-water mark instead of queueing 32 MiB. */
  size_t written = atomic_load(&stream_bytes_written);
  cr_expect_lt(written, 32u << 20, "wrote %zu bytes to a reader that reads nothing", written);
  cr_expect_lt(atomic_load(&max_queued), 1u << 20);
  /* Now read everything: exactly 64 MiB arrives. */
  struct reader *rd = calloc(1, sizeof(*rd));
  rd->fd = fd;
  struct resp rr;
  cr_assert_eq(read_response(rd, &rr, 0), 0);
  cr_expect_eq(rr.body_len, 4000u * 16384u);
  cr_expect_gt(atomic_load(&drains), 0);
  resp_free(&rr);
  free(rd);
  close(fd);
}

Test(server, client_disconnect_cancels_stream) {
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
  char buf[256];
  cr_assert_gt(recv(fd, buf, sizeof(buf), 0), 0);
  close(fd);
  double t0 = mono_ms();
  while (atomic_load(&cancel_gone) == 0 && mono_ms() - t0 < 2000)
    usleep(5000);
  cr_expect_eq(atomic_load(&cancel_gone), 1);
}

Test(server, shutdown_ends_open_streams_cleanly) {
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reader rd = {.fd = fd};
  char line[256];
  cr_assert_eq(reader_line(&rd, line, sizeof(line)), 0);
  cr_expect_str_eq(line, "HTTP/1.1 200 OK");
  /* An idle keep-alive connection too. */
  int idle = tcp_connect(S.port);
  usleep(50 * 1000);
  request_stop();
  /* The stream gets its last line and the terminating chunk, then close. */
  struct resp r;
  /* Re-read the whole response from the start is not possible; read the
   * rest of the head and the chunked body. */
  for (;;) {
    cr_assert_eq(reader_line(&rd, line, sizeof(line)), 0);
    if (line[0] == '\0')
      break;
  }
  char body[256] = "";
  for (;;) {
    cr_assert_eq(reader_line(&rd, line, sizeof(line)), 0);
    size_t n = strtoul(line, NULL, 16);
    if (n == 0)
      break;
    char chunk[64] = {0};
    reader_bytes(&rd, chunk, n);
    strcat(body, chunk);
    reader_line(&rd, line, sizeof(line));
  }
  cr_expect_str_eq(body, "hi\nbye\n");
  cr_expect(peer_closed(fd, 2000));
  cr_expect(peer_closed(idle, 2000));
  (void)r;
  close(fd);
  close(idle);
  cr_expect_eq(atomic_load(&cancel_shutdown), 1);
}

Test(server, slow_but_steady_body_is_not_cut_off) {
  /* The body takes 1.2 s (header_timeout is 600 ms) but keeps arriving. */
  int fd = tcp_connect(S.port);
  send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n");
  for (int i = 0; i < 6; i++) {
    usleep(200 * 1000);
    cr_assert_eq(send_all(fd, &"abcdef"[i], 1), 0);
  }
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "abcdef");
  resp_free(&r);
  close(fd);
}

/* ------------------------------------------------- hostile input (issue 13) */

/* Open descriptors of this process. */
static int count_fds(void) {
  int n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (d == NULL)
    return -1;
  while (readdir(d))
    n++;
  closedir(d);
  return n;
}

/* Reads one final answer, skipping 1xx interim ones (which have no body). */
static int read_final(struct reader *rd, struct resp *r) {
  for (;;) {
    while (rd->len < 12 || memchr(rd->buf, '\n', rd->len) == NULL)
      if (reader_fill(rd) != 0)
        return -1;
    if (strncmp(rd->buf, "HTTP/1.1 1", 10) != 0)
      return read_response(rd, r, 0);
    char line[1024];
    do {
      if (reader_line(rd, line, sizeof(line)) != 0)
        return -1;
    } while (line[0]);
  }
}

/* Reads the head of an answer, then discards its Content-Length body;
 * returns the body's length or -1. */
static long read_discard(struct reader *rd) {
  struct resp r;
  if (read_response(rd, &r, 1) != 0)
    return -1;
  const char *cl = resp_header(&r, "Content-Length");
  long want = cl ? strtol(cl, NULL, 10) : -1, got = 0;
  resp_free(&r);
  while (want >= 0 && got < want) {
    if (rd->len == 0 && reader_fill(rd) != 0)
      return -1;
    size_t take = rd->len < (size_t)(want - got) ? rd->len : (size_t)(want - got);
    reader_consume(rd, take);
    got += (long)take;
  }
  return got;
}

static void expect_still_serving(void) {
  CURL *h = curl_easy_init();
  struct cresp r;
  cr_assert_eq(curl_req(h, "GET", url("/hello"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "hello");
  cresp_free(&r);
  curl_easy_cleanup(h);
}

Test(server, upgrade_then_more_bytes_answered_and_closed) {
  /* Used to SIGSEGV: the paused-upgrade branch ran with no request. */
  static const char h2c[] =
      "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
      "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
      "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
  static const char ws[] =
      "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
      "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58 garbage garbage";
  static const char connect[] = "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                                "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 tls bytes";
  const char *attacks[] = {h2c, ws, connect};
  for (size_t i = 0; i < sizeof(attacks) / sizeof(attacks[0]); i++) {
    int fd = tcp_connect(S.port);
    cr_assert_geq(fd, 0);
    send_str(fd, attacks[i]);
    struct reader rd = {.fd = fd};
    struct resp r;
    cr_assert_eq(read_response(&rd, &r, 0), 0, "attack %zu: no answer", i);
    cr_expect_neq(r.status, 101, "attack %zu switched protocols", i);
    if (i < 2)
      cr_expect_eq(r.status, 200, "attack %zu", i);
    const char *conn = resp_header(&r, "Connection");
    cr_expect(conn && strcasecmp(conn, "close") == 0, "attack %zu: no Connection: close", i);
    resp_free(&r);
    cr_expect(peer_closed(fd, 2000), "attack %zu: connection left open", i);
    close(fd);
    expect_still_serving();
  }
}

Test(server, curl_http2_two_urls_on_one_handle) {
  /* `curl --http2 URL URL`: an h2c upgrade offer on the first request,
   * then the second URL on the same handle. */
  CURL *h = curl_easy_init();
  for (int i = 0; i < 2; i++) {
    struct cresp r;
    memset(&r, 0, sizeof(r));
    r.body = calloc(1, 1);
    curl_easy_setopt(h, CURLOPT_URL, url("/hello"));
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cresp_body_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    cr_assert_eq(curl_easy_perform(h), CURLE_OK, "request %d", i);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, "hello");
    cresp_free(&r);
  }
  curl_easy_cleanup(h);
  expect_still_serving();
}

Test(server, chunk_data_without_crlf_is_rejected) {
  int fd = tcp_connect(S.port);
  send_str(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhelloXX0\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 400);
  resp_free(&r);
  cr_expect(peer_closed(fd, 2000));
  close(fd);
}

Test(server, half_closed_client_gets_its_answer) {
  /* shutdown(SHUT_WR) after the request: the asynchronous answer (and a
   * non-streaming one that takes 300 ms) still arrives. */
  const char *paths[] = {"/slow", "/wait"};
  const char *want[] = {"slow", "waited"};
  for (int i = 0; i < 2; i++) {
    int fd = tcp_connect(S.port);
    char req[128];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", paths[i]);
    send_str(fd, req);
    shutdown(fd, SHUT_WR);
    struct reader rd = {.fd = fd};
    struct resp r;
    cr_assert_eq(read_final(&rd, &r), 0, "%s: no answer after a half-close", paths[i]);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(r.body, want[i]);
    resp_free(&r);
    cr_expect(peer_closed(fd, 2000));
    close(fd);
  }
  cr_expect_eq(atomic_load(&cancel_gone), 0);
}

Test(server, client_that_closes_cancels_a_pending_answer) {
  /* A full close (not a half-close) while nothing is written yet still
   * cancels the request. */
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  usleep(20 * 1000);
  close(fd);
  double t0 = mono_ms();
  while (atomic_load(&cancel_gone) == 0 && mono_ms() - t0 < 5000)
    usleep(5000);
  /* /wait answers by itself after 300 ms; the cancel must come first. */
  cr_expect_eq(atomic_load(&cancel_gone), 1);
}

Test(server, pipelining_client_that_never_reads_is_held_back) {
  /* 200 pipelined requests for 1 MiB each, never read: the server must
   * stop taking requests from this connection while its output waits
   * (it used to answer them all, queueing up to 64 MiB per connection). */
  int fd = tcp_connect(S.port);
  char req[64];
  int n = snprintf(req, sizeof(req), "GET /big HTTP/1.1\r\nHost: x\r\n\r\n");
  char *all = malloc((size_t)n * 200);
  for (int i = 0; i < 200; i++)
    memcpy(all + (size_t)i * (size_t)n, req, (size_t)n);
  cr_assert_eq(send_all(fd, all, (size_t)n * 200), 0);
  free(all);
  usleep(500 * 1000);
  int served = atomic_load(&big_served);
  cr_expect_lt(served, 40, "answered %d requests for a client that reads nothing", served);
  fprintf(stderr, "pipelining: %d of 200 answered before the client read\n", served);
  expect_still_serving();
  /* Reading resumes the pipeline: every answer arrives in order. */
  struct reader *rd = calloc(1, sizeof(*rd));
  rd->fd = fd;
  for (int i = 0; i < 200; i++)
    cr_assert_eq(read_discard(rd), 1L << 20, "answer %d", i);
  free(rd);
  close(fd);
  cr_expect_eq(atomic_load(&big_served), 200);
}

static void start_server_long(void) {
  header_timeout_ms = 60000;
  start_server();
}

Test(server_long, reset_mid_head_frees_the_descriptor, .init = start_server_long,
     .fini = stop_server, .timeout = 30) {
  /* Part of a head, then an RST: the server's descriptor must go at once,
   * not when the (here 60 s) header timer fires. */
  int base = count_fds();
  for (int i = 0; i < 50; i++) {
    int fd = tcp_connect(S.port);
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Partial: ");
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    usleep(2000);
    close(fd);
  }
  double t0 = mono_ms();
  int now = count_fds();
  while (now > base && mono_ms() - t0 < 5000) {
    usleep(10 * 1000);
    now = count_fds();
  }
  cr_expect_leq(now, base, "%d descriptors left open by reset clients", now - base);
  expect_still_serving();
}

/* ------------------------------------------------------ bearer tokens */

static const char *const test_keys[] = {"first-key-0123456789abcdef",
                                        "second-key-fedcba9876543210"};

static void start_server_keys(void) {
  suite_keys = test_keys;
  n_suite_keys = 2;
  start_server();
}

static long get_with(const char *path, const char *auth, struct cresp *r) {
  CURL *h = curl_easy_init();
  const char *hdrs[] = {auth, NULL};
  cr_assert_eq(curl_req(h, "GET", url(path), NULL, auth ? hdrs : NULL, r), 0);
  curl_easy_cleanup(h);
  return r->status;
}

Test(server_auth, bearer_keys_401_and_open_paths, .init = start_server_keys, .fini = stop_server,
     .timeout = 30) {
  struct cresp r;
  const char *wrong[] = {NULL,
                         "Authorization: Bearer nope",
                         "Authorization: Bearer first-key-0123456789abcde",   /* a prefix */
                         "Authorization: Bearer first-key-0123456789abcdefX", /* longer */
                         "Authorization: Basic Zmlyc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY=",
                         "Authorization: first-key-0123456789abcdef"};
  for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
    cr_expect_eq(get_with("/hello", wrong[i], &r), 401, "%s", wrong[i] ? wrong[i] : "(none)");
    cr_expect_str_eq(r.body, "{\"error\":\"unauthorized\"}");
    cr_expect(strstr(r.headers, "WWW-Authenticate: Bearer") != NULL, "%s", r.headers);
    cresp_free(&r);
  }
  const char *right[] = {"Authorization: Bearer first-key-0123456789abcdef",
                         "Authorization: bearer second-key-fedcba9876543210"};
  for (size_t i = 0; i < 2; i++) {
    cr_expect_eq(get_with("/hello", right[i], &r), 200, "%s", right[i]);
    cr_expect_str_eq(r.body, "hello");
    cresp_free(&r);
  }
  /* "/" and "/api/version" stay open. */
  cr_expect_eq(get_with("/", NULL, &r), 200);
  cresp_free(&r);
  cr_expect_eq(get_with("/api/version", NULL, &r), 200);
  cresp_free(&r);
  /* A 404 is not disclosed to a client without a key. */
  cr_expect_eq(get_with("/nothing", NULL, &r), 401);
  cresp_free(&r);
}

/* ------------------------------------------------------------------ TLS */

static void make_cert(void) {
  snprintf(tls_dir, sizeof(tls_dir), "/tmp/cllama-tls-XXXXXX");
  cr_assert(mkdtemp(tls_dir));
  snprintf(tls_cert, sizeof(tls_cert), "%s/cert.pem", tls_dir);
  snprintf(tls_key, sizeof(tls_key), "%s/key.pem", tls_dir);
  char cmd[1200];
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout '%s' -out '%s' -days 1 -subj /CN=localhost "
           "-addext subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1",
           tls_key, tls_cert);
  cr_assert_eq(system(cmd), 0, "openssl could not make a test certificate");
}

static void start_server_tls(void) {
  make_cert();
  start_server();
}

static void start_server_tls_keys(void) {
  make_cert();
  suite_keys = test_keys;
  n_suite_keys = 2;
  start_server();
}

static void stop_server_tls(void) {
  stop_server();
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tls_dir);
  cr_expect_eq(system(cmd), 0);
  tls_cert[0] = 0;
}

static char surl_buf[256];
static const char *surl(const char *path) {
  snprintf(surl_buf, sizeof(surl_buf), "https://127.0.0.1:%d%s", S.port, path);
  return surl_buf;
}

/* GET over TLS, verifying the server with the test certificate. */
static CURLcode tls_get(CURL *h, const char *path, const char *auth, struct cresp *r) {
  memset(r, 0, sizeof(*r));
  r->body = calloc(1, 1);
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, surl(path));
  curl_easy_setopt(h, CURLOPT_CAINFO, tls_cert);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cresp_body_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
  struct curl_slist *sl = auth ? curl_slist_append(NULL, auth) : NULL;
  if (sl)
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, sl);
  CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(sl);
  return rc;
}

Test(server_tls, handshake_requests_streams_and_plain_http_refused, .init = start_server_tls,
     .fini = stop_server_tls, .timeout = 60) {
  CURL *h = curl_easy_init();
  struct cresp r;
  cr_assert_eq(tls_get(h, "/hello", NULL, &r), CURLE_OK);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "hello");
  cresp_free(&r);
  /* Keep-alive: the second request reuses the TLS connection. */
  cr_assert_eq(tls_get(h, "/items/3/sub/4", NULL, &r), CURLE_OK);
  cr_expect_str_eq(r.body, "id=3 x=4 q=");
  long conns = -1;
  curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
  cr_expect_eq(conns, 0);
  cresp_free(&r);
  /* A streamed answer of 1.6 MiB arrives whole. */
  cr_assert_eq(tls_get(h, "/stream?n=100&size=16384", NULL, &r), CURLE_OK);
  cr_expect_eq(r.len, 100u * 16384u);
  cresp_free(&r);
  /* A client that does not trust the certificate fails the handshake. */
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, surl("/hello"));
  curl_easy_setopt(h, CURLOPT_CAINFO, "/dev/null");
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  cr_expect_neq(curl_easy_perform(h), CURLE_OK);
  curl_easy_cleanup(h);
  /* Plain HTTP on the TLS port is refused (and never reaches a handler). */
  int fd = tcp_connect(S.port);
  send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp pr;
  cr_assert_eq(read_response(&rd, &pr, 0), 0);
  cr_expect_eq(pr.status, 400);
  cr_expect(strstr(pr.body, "HTTPS") != NULL, "%s", pr.body);
  cr_expect(strstr(pr.body, "hello") == NULL);
  resp_free(&pr);
  close(fd);
  /* Garbage that looks like a handshake record: closed, server fine. */
  fd = tcp_connect(S.port);
  send_all(fd, "\x16\x03\x01\x00\x05garbagegarbage", 19);
  char junk[256];
  ssize_t got;
  int reads = 0;
  while ((got = recv(fd, junk, sizeof(junk), 0)) > 0 && reads < 100) /* an alert, then EOF */
    reads++;
  cr_expect_leq(got, 0, "the connection stayed open after a bad handshake");
  close(fd);
  h = curl_easy_init();
  cr_assert_eq(tls_get(h, "/hello", NULL, &r), CURLE_OK);
  cr_expect_str_eq(r.body, "hello");
  cresp_free(&r);
  curl_easy_cleanup(h);
}

Test(server_tls, tls_with_bearer_keys, .init = start_server_tls_keys, .fini = stop_server_tls,
     .timeout = 60) {
  CURL *h = curl_easy_init();
  struct cresp r;
  cr_assert_eq(tls_get(h, "/hello", "Authorization: Bearer wrong-key-0000000000000", &r), CURLE_OK);
  cr_expect_eq(r.status, 401);
  cresp_free(&r);
  cr_assert_eq(tls_get(h, "/hello", "Authorization: Bearer first-key-0123456789abcdef", &r),
               CURLE_OK);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "hello");
  cresp_free(&r);
  curl_easy_cleanup(h);
}

Test(server, streamed_body_beyond_the_cap_with_pauses) {
  /* 3 MiB (max_body_bytes is 1 MiB here) to a streamed-body route that
   * pauses after every piece, then a pipelined request on the same
   * connection; then the same body chunked. */
  size_t n = 3u << 20;
  char *body = malloc(n);
  unsigned long sum = 0;
  for (size_t i = 0; i < n; i++) {
    body[i] = (char)(i * 7 + (i >> 12));
    sum = sum * 31 + (unsigned char)body[i];
  }
  char want[64];
  snprintf(want, sizeof(want), "%zu %lu", n, sum);
  int fd = tcp_connect(S.port);
  char head[160];
  snprintf(head, sizeof(head), "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
           n);
  send_str(fd, head);
  cr_assert_eq(send_all(fd, body, n), 0);
  send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reader rd = {.fd = fd};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, want);
  resp_free(&r);
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_str_eq(r.body, "hello");
  resp_free(&r);
  /* Chunked, in 100 KiB chunks. */
  send_str(fd, "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (size_t off = 0; off < n; off += 100 * 1024) {
    size_t k = n - off < 100 * 1024 ? n - off : 100 * 1024;
    char sz[32];
    snprintf(sz, sizeof(sz), "%zx\r\n", k);
    send_str(fd, sz);
    cr_assert_eq(send_all(fd, body + off, k), 0);
    send_str(fd, "\r\n");
  }
  send_str(fd, "0\r\n\r\n");
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  cr_expect_str_eq(r.body, want);
  resp_free(&r);
  close(fd);
  free(body);
  /* A route that does not stream still has the cap. */
  CURL *h = curl_easy_init();
  struct cresp cr;
  char *big = calloc(1, (2u << 20) + 1);
  memset(big, 'a', 2u << 20);
  curl_req(h, "POST", url("/echo"), big, NULL, &cr);
  cr_expect_eq(cr.status, 413);
  cresp_free(&cr);
  free(big);
  curl_easy_cleanup(h);
}
