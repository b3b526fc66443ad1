/* fuzz_http.c — arbitrary bytes sent to a real server (src/server) over a
 * loopback TCP connection, as one client would: the server must answer or
 * close, never crash or leak. The client half-closes after sending, so
 * every connection ends; the loop runs until the client sees EOF. */
#include "cllama/server.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uv_loop_t loop;
static cll_server *srv;
static int port;

static void h_echo(cll_request *req, void *ud) {
  size_t len;
  const char *b = cll_request_body(req, &len);
  cll_request_header(req, "Content-Type");
  cll_request_param(req, "id");
  cll_respond(req, 200, "application/octet-stream", b, len);
}

static void h_stream(cll_request *req, void *ud) {
  cll_stream_start(req, 200, "application/x-ndjson");
  cll_stream_write(req, "{\"a\":1}\n", 8);
  cll_stream_write(req, "{\"b\":2}\n", 8);
  cll_stream_end(req);
}

static void setup(void) {
  uv_loop_init(&loop);
  cll_server_opts o;
  cll_server_opts_defaults(&o);
  o.port = 0;
  o.max_body_bytes = 1 << 16;
  o.max_head_bytes = 1 << 14;
  cll_err err;
  if (cll_server_new(&loop, &o, &srv, &err) != 0)
    abort();
  port = cll_server_port(srv);
  cll_server_route(srv, "POST", "/echo", h_echo, NULL);
  cll_server_route(srv, "GET", "/echo", h_echo, NULL);
  cll_server_route(srv, "HEAD", "/echo", h_echo, NULL);
  cll_server_route(srv, "GET", "/items/:id", h_echo, NULL);
  cll_server_route(srv, "GET", "/stream", h_stream, NULL);
  cll_server_route(srv, "POST", "/stream", h_stream, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (srv == NULL)
    setup();
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 && errno != EINPROGRESS)
    abort();
  size_t sent = 0;
  int half_closed = 0, done = 0;
  char buf[65536];
  for (int iter = 0; !done && iter < 100000; iter++) {
    uv_run(&loop, UV_RUN_NOWAIT);
    if (sent < size) {
      ssize_t w = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (w > 0)
        sent += (size_t)w;
      else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
        sent = size; /* the server closed on us */
    } else if (!half_closed) {
      shutdown(fd, SHUT_WR);
      half_closed = 1;
    }
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN))
      done = 1;
  }
  close(fd);
  /* Let the server see the close and free the connection. */
  for (int i = 0; i < 20; i++)
    uv_run(&loop, UV_RUN_NOWAIT);
  return 0;
}
