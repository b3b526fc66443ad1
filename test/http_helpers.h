/* http_helpers.h — client helpers shared by the server tests: a raw TCP
 * client that parses HTTP/1.1 responses itself (for pipelining, byte-wise
 * sends and malformed input) and a libcurl wrapper for ordinary requests.
 * Header-only (static functions) because each test file is its own binary. */
#ifndef CLLAMA_TEST_HTTP_HELPERS_H
#define CLLAMA_TEST_HTTP_HELPERS_H

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static inline int tcp_connect(int port) {
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

static inline int send_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
    if (w <= 0)
      return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static inline int send_str(int fd, const char *s) {
  return send_all(fd, s, strlen(s));
}

/* One connection's buffered reader. */
struct reader {
  int fd;
  char buf[1 << 16];
  size_t len;
};

struct resp {
  int status;
  char headers[8192]; /* raw header block, lowercase names not applied */
  char *body;         /* malloc'ed, NUL-terminated */
  size_t body_len;
};

static inline void resp_free(struct resp *r) {
  free(r->body);
  r->body = NULL;
}

static inline int reader_fill(struct reader *rd) {
  if (rd->len == sizeof(rd->buf))
    return -1;
  ssize_t n = recv(rd->fd, rd->buf + rd->len, sizeof(rd->buf) - rd->len, 0);
  if (n <= 0)
    return -1;
  rd->len += (size_t)n;
  return 0;
}

static inline void reader_consume(struct reader *rd, size_t n) {
  memmove(rd->buf, rd->buf + n, rd->len - n);
  rd->len -= n;
}

/* Reads until "\r\n" and returns the line (without it) in out. */
static inline int reader_line(struct reader *rd, char *out, size_t size) {
  for (;;) {
    for (size_t i = 0; i + 1 < rd->len; i++)
      if (rd->buf[i] == '\r' && rd->buf[i + 1] == '\n') {
        size_t l = i < size - 1 ? i : size - 1;
        memcpy(out, rd->buf, l);
        out[l] = '\0';
        reader_consume(rd, i + 2);
        return 0;
      }
    if (reader_fill(rd) != 0)
      return -1;
  }
}

static inline int reader_bytes(struct reader *rd, char *out, size_t n) {
  while (rd->len < n)
    if (reader_fill(rd) != 0)
      return -1;
  memcpy(out, rd->buf, n);
  reader_consume(rd, n);
  return 0;
}

/* The value of a header in a raw header block, or NULL (static buffer). */
static inline const char *resp_header(const struct resp *r, const char *name) {
  static char val[1024];
  const char *p = r->headers;
  size_t nl = strlen(name);
  while (*p) {
    const char *eol = strstr(p, "\r\n");
    if (eol == NULL)
      break;
    if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
      const char *v = p + nl + 1;
      while (*v == ' ')
        v++;
      size_t l = (size_t)(eol - v) < sizeof(val) - 1 ? (size_t)(eol - v) : sizeof(val) - 1;
      memcpy(val, v, l);
      val[l] = '\0';
      return val;
    }
    p = eol + 2;
  }
  return NULL;
}

/* Reads one response. head_only: the request was HEAD (no body follows). */
static inline int read_response(struct reader *rd, struct resp *r, int head_only) {
  memset(r, 0, sizeof(*r));
  char line[8192];
  do {
    if (reader_line(rd, line, sizeof(line)) != 0)
      return -1;
    if (sscanf(line, "HTTP/1.%*d %d", &r->status) != 1)
      return -1;
    size_t hl = 0;
    r->headers[0] = '\0';
    for (;;) {
      if (reader_line(rd, line, sizeof(line)) != 0)
        return -1;
      if (line[0] == '\0')
        break;
      hl += (size_t)snprintf(r->headers + hl, sizeof(r->headers) - hl, "%s\r\n", line);
      if (hl >= sizeof(r->headers))
        hl = sizeof(r->headers) - 1;
    }
  } while (r->status == 100);
  const char *cl = resp_header(r, "Content-Length");
  const char *te = resp_header(r, "Transfer-Encoding");
  if (head_only || r->status == 204 || r->status == 304) {
    r->body = calloc(1, 1);
    return 0;
  }
  if (cl) {
    size_t n = strtoul(cl, NULL, 10);
    r->body = malloc(n + 1);
    if (reader_bytes(rd, r->body, n) != 0)
      return -1;
    r->body[n] = '\0';
    r->body_len = n;
    return 0;
  }
  if (te && strcasecmp(te, "chunked") == 0) {
    size_t cap = 1024;
    r->body = malloc(cap);
    for (;;) {
      if (reader_line(rd, line, sizeof(line)) != 0)
        return -1;
      size_t n = strtoul(line, NULL, 16);
      if (n == 0) {
        reader_line(rd, line, sizeof(line));
        break;
      }
      if (r->body_len + n + 1 > cap) {
        while (r->body_len + n + 1 > cap)
          cap *= 2;
        r->body = realloc(r->body, cap);
      }
      if (reader_bytes(rd, r->body + r->body_len, n) != 0)
        return -1;
      r->body_len += n;
      if (reader_line(rd, line, sizeof(line)) != 0)
        return -1;
    }
    r->body[r->body_len] = '\0';
    return 0;
  }
  /* Until close. */
  size_t cap = 1024;
  r->body = malloc(cap);
  for (;;) {
    if (rd->len) {
      if (r->body_len + rd->len + 1 > cap) {
        while (r->body_len + rd->len + 1 > cap)
          cap *= 2;
        r->body = realloc(r->body, cap);
      }
      memcpy(r->body + r->body_len, rd->buf, rd->len);
      r->body_len += rd->len;
      rd->len = 0;
    }
    if (reader_fill(rd) != 0)
      break;
  }
  r->body[r->body_len] = '\0';
  return 0;
}

/* 1 when the peer has closed the connection (EOF within timeout_ms). */
static inline int peer_closed(int fd, int timeout_ms) {
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char c;
  ssize_t n = recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* ---------------------------------------------------------------- curl */

struct cresp {
  long status;
  char *body;
  size_t len;
  char headers[8192];
  size_t hlen;
};

static size_t cresp_body_cb(char *p, size_t sz, size_t n, void *ud) {
  struct cresp *r = ud;
  r->body = realloc(r->body, r->len + sz * n + 1);
  memcpy(r->body + r->len, p, sz * n);
  r->len += sz * n;
  r->body[r->len] = '\0';
  return sz * n;
}

static size_t cresp_hdr_cb(char *p, size_t sz, size_t n, void *ud) {
  struct cresp *r = ud;
  size_t l = sz * n;
  if (r->hlen + l < sizeof(r->headers)) {
    memcpy(r->headers + r->hlen, p, l);
    r->hlen += l;
    r->headers[r->hlen] = '\0';
  }
  return l;
}

/* Performs one request; extra_headers is a NULL-terminated list or NULL.
 * A NULL body sends none. Returns the CURLcode. */
static inline int curl_req(CURL *h, const char *method, const char *url, const char *body,
                           const char *const *extra_headers, struct cresp *r) {
  memset(r, 0, sizeof(*r));
  r->body = calloc(1, 1);
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  if (body) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  struct curl_slist *sl = NULL;
  for (size_t i = 0; extra_headers && extra_headers[i]; i++)
    sl = curl_slist_append(sl, extra_headers[i]);
  if (sl)
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, sl);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cresp_body_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, cresp_hdr_cb);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
  int rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all(sl);
  return rc;
}

static inline void cresp_free(struct cresp *r) {
  free(r->body);
  r->body = NULL;
}

static inline double mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

#endif
