/* test_server_hostile.c — the HTTP layer against hostile clients (issue
 * 13), in process (test/server_fixture.h): Upgrade and HTTP/2 attempts,
 * bad chunk framing, half-closed and vanishing clients, pipelining without
 * reading, resets mid-head; after each the server still serves and holds
 * no extra descriptor. */
#include "server_fixture.h"

TestSuite(server, .init = start_server, .fini = stop_server, .timeout = 30);

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
