/* test_server_tls.c — the HTTP layer's access control (bearer keys) and
 * TLS, in process (test/server_fixture.h), with a certificate made by
 * openssl for the suite. */
#include "server_fixture.h"

static char tls_dir[128]; /* the suite's certificate and key */

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
