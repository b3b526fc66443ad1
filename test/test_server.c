/* test_server.c — the HTTP layer (include/cllama/server.h) in process
 * (test/server_fixture.h): routing and params, keep-alive, pipelining,
 * byte-at-a-time input, chunked bodies, Expect: 100-continue, 413/431,
 * timeouts, HTTP/1.0, HEAD, streaming back-pressure, client-disconnect
 * cancellation, clean shutdown and streamed bodies beyond the cap. Hostile
 * input is in test_server_hostile.c, bearer keys and TLS in
 * test_server_tls.c. */
#include "server_fixture.h"

TestSuite(server, .init = start_server, .fini = stop_server, .timeout = 30);

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

/* Each timer cuts off only what it is for: a request head that never
 * completes goes at header_timeout (600 ms here) while a keep-alive
 * connection that answered a request and stands idle outlives it, and is
 * closed later by idle_timeout (1.5 s). Ordering, not durations. */
Test(server, header_and_idle_timeouts) {
  int idle = tcp_connect(S.port);
  send_str(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  struct reader rd = {.fd = idle};
  struct resp r;
  cr_assert_eq(read_response(&rd, &r, 0), 0);
  resp_free(&r);
  int partial = tcp_connect(S.port);
  send_str(partial, "GET /hello HTTP/1.1\r\nHost: x\r\n");
  cr_expect(peer_closed(partial, 3000), "an incomplete head was not cut off");
  close(partial);
  /* Still open: not closed by the header timer. */
  char c;
  errno = 0;
  cr_expect(recv(idle, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN,
            "the idle connection went with the incomplete head");
  cr_expect(peer_closed(idle, 4000), "an idle keep-alive connection was never closed");
  close(idle);
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
