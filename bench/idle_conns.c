/* idle_conns.c — holds N idle keep-alive connections to a cllama server
 * and measures GET / latency meanwhile.
 *
 *   build/release/bench/idle_conns PORT [N=5000] [SAMPLES=200]
 *
 * Each of the N connections first completes one request (so it is a real
 * keep-alive connection in the server's idle state), then stays open.
 * With all of them held, SAMPLES requests of GET / are timed on a fresh
 * connection each (connect + request + full response), then a sample of
 * the idle connections is checked to be still usable. Needs `ulimit -n`
 * above N + 100. Prints one summary line and exits 0 when p99 < 10 ms and
 * every connection survived. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dial(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return -1;
  struct timeval tv = {.tv_sec = 5};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Sends GET / and reads the whole response (Content-Length framed). */
static int get_root(int fd) {
  static const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof(req) - 1))
    return -1;
  char buf[4096];
  size_t len = 0;
  for (;;) {
    ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
    if (n <= 0)
      return -1;
    len += (size_t)n;
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (end) {
      const char *cl = strcasestr(buf, "Content-Length:");
      size_t want = cl ? strtoul(cl + 15, NULL, 10) : 0;
      if (len >= (size_t)(end + 4 - buf) + want)
        return strncmp(buf, "HTTP/1.1 200", 12) == 0 ? 0 : -1;
    }
    if (len == sizeof(buf) - 1)
      return -1;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s PORT [N] [SAMPLES]\n", argv[0]);
    return 2;
  }
  int port = atoi(argv[1]);
  int n = argc > 2 ? atoi(argv[2]) : 5000;
  int samples = argc > 3 ? atoi(argv[3]) : 200;
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < (rlim_t)n + 100) {
    rl.rlim_cur = rl.rlim_max < (rlim_t)n + 100 ? rl.rlim_max : (rlim_t)n + 100;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int *fds = calloc((size_t)n, sizeof(int));
  double t0 = now_ms();
  for (int i = 0; i < n; i++) {
    fds[i] = dial(port);
    if (fds[i] < 0 || get_root(fds[i]) != 0) {
      fprintf(stderr, "idle_conns: connection %d failed: %s\n", i, strerror(errno));
      return 1;
    }
  }
  double open_ms = now_ms() - t0;
  double *lat = calloc((size_t)samples, sizeof(double));
  for (int i = 0; i < samples; i++) {
    double s = now_ms();
    int fd = dial(port);
    if (fd < 0 || get_root(fd) != 0) {
      fprintf(stderr, "idle_conns: sample %d failed\n", i);
      return 1;
    }
    lat[i] = now_ms() - s;
    close(fd);
  }
  qsort(lat, (size_t)samples, sizeof(double), cmp_double);
  double p50 = lat[samples / 2], p99 = lat[(samples * 99) / 100], max = lat[samples - 1];
  /* The idle connections are still served. */
  int alive = 0, checked = 0;
  for (int i = 0; i<n; i += n / 50> 0 ? n / 50 : 1, checked++)
    alive += get_root(fds[i]) == 0;
  printf("idle_conns: %d idle keep-alive connections opened in %.0f ms; GET / on a new "
         "connection while they are held: p50 %.3f ms, p99 %.3f ms, max %.3f ms (%d samples); "
         "%d/%d idle connections still answer\n",
         n, open_ms, p50, p99, max, samples, alive, checked);
  for (int i = 0; i < n; i++)
    close(fds[i]);
  free(fds);
  free(lat);
  return p99 < 10.0 && alive == checked ? 0 : 1;
}
