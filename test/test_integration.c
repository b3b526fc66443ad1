/* test_integration.c — the real `cllama serve` binary (env CLLAMA_BIN) on
 * 127.0.0.1 port 0 (it reports the port through CLLAMA_PORT_FILE), over a
 * model store the test builds (two good models, a broken manifest, one with
 * a missing blob), driven by libcurl and raw sockets. Every test ends by
 * sending SIGTERM and expecting exit status 0 (clean shutdown). */
#include "cllama/store.h"
#include "http_helpers.h"
#include "server_log.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

static struct {
  char dir[256];
  char models[300];
  pid_t pid;
  int port;
  CURL *curl;
  char w1[80], w2[80], cfg[80]; /* blob digests */
} T;

static const char *bin(void) {
  const char *b = getenv("CLLAMA_BIN");
  return b ? b : "build/release/cllama";
}

/* ------------------------------------------------------------ fixture */

static void put_blob(cll_store *st, const char *data, char out[80]) {
  char hex[65];
  cll_sha256_hex(data, strlen(data), hex);
  snprintf(out, 80, "sha256:%s", hex);
  cr_assert_eq(cll_store_write_blob(st, out, data, strlen(data), NULL), 0);
}

static void put_manifest(cll_store *st, const char *name, const char *weights_digest, size_t wsize,
                         time_t mtime) {
  char m[2048];
  snprintf(m, sizeof(m),
           "{\"schemaVersion\":2,\"mediaType\":\"application/"
           "vnd.docker.distribution.manifest.v2+json\","
           "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
           "\"digest\":\"%s\",\"size\":120},"
           "\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\","
           "\"digest\":\"%s\",\"size\":%zu}]}",
           T.cfg, weights_digest, wsize);
  cll_name n;
  cr_assert_eq(cll_name_parse(name, &n), 0);
  cr_assert_eq(cll_store_write_manifest(st, &n, m, strlen(m), NULL), 0);
  char path[1024];
  cll_store_manifest_path(st, &n, path, sizeof(path));
  struct timespec ts[2] = {{.tv_sec = mtime}, {.tv_sec = mtime}};
  utimensat(AT_FDCWD, path, ts, 0);
}

static void build_store(void) {
  cll_store *st;
  cr_assert_eq(cll_store_open(T.models, &st, NULL), 0);
  put_blob(st,
           "{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":[\"llama\"],"
           "\"model_type\":\"1.2B\",\"file_type\":\"Q4_K_M\"}",
           T.cfg);
  put_blob(st, "weights of model one", T.w1);
  put_blob(st, "weights of model two", T.w2);
  put_manifest(st, "tiny:1b", T.w1, 20, 1700000000);
  put_manifest(st, "team/Other:v2", T.w2, 20, 1700000100);
  /* Broken: not JSON. Missing: points at a blob that is not there. */
  cll_name n;
  cll_name_parse("broken", &n);
  cll_store_write_manifest(st, &n, "{\"layers\":", 10, NULL);
  put_manifest(st, "ghost:latest",
               "sha256:1111111111111111111111111111111111111111111111111111111111111111", 5,
               1700000200);
  cll_store_close(st);
}

/* Starts the server with extra environment "K=V" entries (NULL-terminated). */
static void start_with(const char *const *env_extra, const char *host) {
  char portfile[400];
  snprintf(portfile, sizeof(portfile), "%s/port", T.dir);
  unlink(portfile);
  T.pid = fork();
  cr_assert_geq(T.pid, 0);
  if (T.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that timed out */
    setenv("OLLAMA_HOST", host, 1);
    setenv("OLLAMA_MODELS", T.models, 1);
    setenv("CLLAMA_PORT_FILE", portfile, 1);
    setenv("OLLAMA_ORIGINS", "http://allowed.example", 1);
    for (size_t i = 0; env_extra && env_extra[i]; i++)
      putenv((char *)env_extra[i]);
    char log[400];
    snprintf(log, sizeof(log), "%s/server.log", T.dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(fd, 2);
    execl(bin(), bin(), "serve", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &T.port) == 1;
      fclose(f);
      if (ok)
        return;
    }
    usleep(10 * 1000);
  }
  cr_assert_fail("server did not report its port");
}

static void setup(void) {
  memset(&T, 0, sizeof(T));
  snprintf(T.dir, sizeof(T.dir), "/tmp/cllama-it-XXXXXX");
  cr_assert_not_null(mkdtemp(T.dir));
  snprintf(T.models, sizeof(T.models), "%s/models", T.dir);
  build_store();
  T.curl = curl_easy_init();
  start_with(NULL, "127.0.0.1:0");
}

/* Stops the server; 0 when it exited 0 with no sanitizer report in its log
 * (server_log.h: otherwise the test fails and the log is printed). */
static int stop_server(void) {
  if (T.pid <= 0)
    return 0;
  kill(T.pid, SIGTERM);
  int status = -1;
  for (int i = 0; i < 1500; i++) {
    if (waitpid(T.pid, &status, WNOHANG) == T.pid)
      break;
    status = -1;
    usleep(10 * 1000);
  }
  if (status == -1) {
    kill(T.pid, SIGKILL);
    waitpid(T.pid, NULL, 0);
  }
  T.pid = 0;
  char log[400];
  snprintf(log, sizeof(log), "%s/server.log", T.dir);
  return server_log_check(status, log);
}

static void teardown(void) {
  stop_server();
  curl_easy_cleanup(T.curl);
  char cmd[400];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.dir);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", T.dir);
}

TestSuite(api, .init = setup, .fini = teardown, .timeout = 60);

static char url_buf[512];
static const char *url(const char *path) {
  snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", T.port, path);
  return url_buf;
}

static json_t *json_of(const struct cresp *r) {
  json_t *j = json_loads(r->body, 0, NULL);
  cr_assert_not_null(j, "not JSON: %s", r->body);
  return j;
}

static void expect_error(const char *method, const char *path, const char *body, long status,
                         const char *msg) {
  struct cresp r;
  cr_assert_eq(curl_req(T.curl, method, url(path), body, NULL, &r), 0);
  cr_expect_eq(r.status, status, "%s %s %s -> %ld", method, path, body ? body : "", r.status);
  json_t *j = json_of(&r);
  cr_expect_str_eq(json_string_value(json_object_get(j, "error")), msg);
  json_decref(j);
  cresp_free(&r);
}

/* ----------------------------------------------------------------- tests */

Test(api, root_and_version) {
  struct cresp r;
  cr_assert_eq(curl_req(T.curl, "GET", url("/"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_str_eq(r.body, "Ollama is running");
  cresp_free(&r);
  cr_assert_eq(curl_req(T.curl, "HEAD", url("/"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.len, 0);
  cresp_free(&r);
  cr_assert_eq(curl_req(T.curl, "GET", url("/api/version"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cr_expect_not_null(strstr(r.headers, "application/json"));
  json_t *j = json_of(&r);
  cr_expect_str_eq(json_string_value(json_object_get(j, "version")), "0.12.0");
  json_decref(j);
  cresp_free(&r);
  cr_assert_eq(curl_req(T.curl, "HEAD", url("/api/version"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cresp_free(&r);
}

Test(api, tags_lists_good_models_only) {
  struct cresp r;
  cr_assert_eq(curl_req(T.curl, "GET", url("/api/tags"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  json_t *j = json_of(&r);
  json_t *models = json_object_get(j, "models");
  cr_assert(json_is_array(models));
  cr_assert_eq(json_array_size(models), 2, "%s", r.body);
  /* Newest first: team/Other:v2 (mtime 1700000100), then tiny:1b. */
  json_t *m0 = json_array_get(models, 0), *m1 = json_array_get(models, 1);
  cr_expect_str_eq(json_string_value(json_object_get(m0, "name")), "team/Other:v2");
  cr_expect_str_eq(json_string_value(json_object_get(m0, "model")), "team/Other:v2");
  cr_expect_str_eq(json_string_value(json_object_get(m1, "name")), "tiny:1b");
  cr_expect_str_eq(json_string_value(json_object_get(m1, "modified_at")), "2023-11-14T22:13:20Z");
  cr_expect_eq(json_integer_value(json_object_get(m1, "size")), 140);
  const char *digest = json_string_value(json_object_get(m1, "digest"));
  cr_expect_eq(strlen(digest), 64);
  json_t *d = json_object_get(m1, "details");
  cr_expect_str_eq(json_string_value(json_object_get(d, "format")), "gguf");
  cr_expect_str_eq(json_string_value(json_object_get(d, "family")), "llama");
  cr_expect_str_eq(json_string_value(json_array_get(json_object_get(d, "families"), 0)), "llama");
  cr_expect_str_eq(json_string_value(json_object_get(d, "parameter_size")), "1.2B");
  cr_expect_str_eq(json_string_value(json_object_get(d, "quantization_level")), "Q4_K_M");
  cr_expect_str_eq(json_string_value(json_object_get(d, "parent_model")), "");
  cr_expect_null(json_object_get(m1, "expires_at"));
  json_decref(j);
  cresp_free(&r);
  cr_assert_eq(curl_req(T.curl, "HEAD", url("/api/tags"), NULL, NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cresp_free(&r);
}

Test(api, copy) {
  struct cresp r;
  cr_assert_eq(curl_req(T.curl, "POST", url("/api/copy"),
                        "{\"source\":\"TINY:1b\",\"destination\":\"mine/tiny-copy\"}", NULL, &r),
               0);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.len, 0);
  cresp_free(&r);
  curl_req(T.curl, "GET", url("/api/tags"), NULL, NULL, &r);
  json_t *j = json_of(&r);
  json_t *models = json_object_get(j, "models");
  cr_expect_eq(json_array_size(models), 3);
  const char *dig_copy = NULL, *dig_src = NULL;
  for (size_t i = 0; i < json_array_size(models); i++) {
    const char *n = json_string_value(json_object_get(json_array_get(models, i), "name"));
    const char *d = json_string_value(json_object_get(json_array_get(models, i), "digest"));
    if (strcmp(n, "mine/tiny-copy:latest") == 0)
      dig_copy = d;
    if (strcmp(n, "tiny:1b") == 0)
      dig_src = d;
  }
  cr_assert_not_null(dig_copy);
  cr_assert_not_null(dig_src);
  cr_expect_str_eq(dig_copy, dig_src);
  json_decref(j);
  cresp_free(&r);
  expect_error("POST", "/api/copy", "{\"source\":\"nope\",\"destination\":\"x\"}", 404,
               "model \"nope\" not found");
  expect_error("POST", "/api/copy", "{\"source\":\"bad name\",\"destination\":\"x\"}", 400,
               "source \"bad name\" is invalid");
  expect_error("POST", "/api/copy", "{\"source\":\"tiny:1b\",\"destination\":\"a/b/c/d\"}", 400,
               "destination \"a/b/c/d\" is invalid");
  expect_error("POST", "/api/copy", "", 400, "missing request body");
  struct cresp e;
  curl_req(T.curl, "POST", url("/api/copy"), "{\"source\":", NULL, &e);
  cr_expect_eq(e.status, 400);
  cr_expect_not_null(strstr(e.body, "\"error\""));
  cresp_free(&e);
}

Test(api, delete_and_blob_gc) {
  struct cresp r;
  curl_req(T.curl, "POST", url("/api/copy"), "{\"source\":\"tiny:1b\",\"destination\":\"twin\"}",
           NULL, &r);
  cr_expect_eq(r.status, 200);
  cresp_free(&r);
  char blob[600];
  snprintf(blob, sizeof(blob), "%s/blobs/sha256-%s", T.models, T.w1 + 7);
  struct stat sb;
  /* The deprecated "name" field, and case-insensitive matching. */
  cr_assert_eq(curl_req(T.curl, "DELETE", url("/api/delete"), "{\"name\":\"TINY:1B\"}", NULL, &r),
               0);
  cr_expect_eq(r.status, 200);
  cr_expect_eq(r.len, 0);
  cresp_free(&r);
  cr_expect_eq(stat(blob, &sb), 0, "blob still used by twin was deleted");
  cr_assert_eq(curl_req(T.curl, "DELETE", url("/api/delete"), "{\"model\":\"twin\"}", NULL, &r), 0);
  cr_expect_eq(r.status, 200);
  cresp_free(&r);
  cr_expect_neq(stat(blob, &sb), 0, "unused blob kept");
  /* The config blob is still used by team/Other:v2. */
  snprintf(blob, sizeof(blob), "%s/blobs/sha256-%s", T.models, T.cfg + 7);
  cr_expect_eq(stat(blob, &sb), 0);
  expect_error("DELETE", "/api/delete", "{\"model\":\"tiny:1b\"}", 404,
               "model 'tiny:1b' not found");
  expect_error("DELETE", "/api/delete", "{\"model\":\"\"}", 400, "model is required");
  expect_error("DELETE", "/api/delete", "{}", 400, "model is required");
  expect_error("DELETE", "/api/delete", "{\"model\":\"a b\"}", 400, "name \"a b\" is invalid");
}

Test(api, router_404_405_and_form_content_type) {
  struct cresp r;
  curl_req(T.curl, "GET", url("/api/nothing"), NULL, NULL, &r);
  cr_expect_eq(r.status, 404);
  cr_expect_str_eq(r.body, "404 page not found");
  cresp_free(&r);
  curl_req(T.curl, "GET", url("/api/delete"), NULL, NULL, &r);
  cr_expect_eq(r.status, 405);
  cresp_free(&r);
  curl_req(T.curl, "POST", url("/api/version"), "{}", NULL, &r);
  cr_expect_eq(r.status, 405);
  cresp_free(&r);
  /* curl -d sends application/x-www-form-urlencoded; the JSON is still read. */
  expect_error("POST", "/api/copy", "{\"source\":\"zzz\",\"destination\":\"y\"}", 404,
               "model \"zzz\" not found");
}

Test(api, keep_alive_and_pipelining) {
  struct cresp r;
  long conns;
  for (int i = 0; i < 3; i++) {
    curl_req(T.curl, "GET", url("/api/version"), NULL, NULL, &r);
    cr_expect_eq(r.status, 200);
    curl_easy_getinfo(T.curl, CURLINFO_NUM_CONNECTS, &conns);
    if (i > 0)
      cr_expect_eq(conns, 0);
    cresp_free(&r);
  }
  int fd = tcp_connect(T.port);
  send_str(fd, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
               "GET /api/version HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
               "DELETE /api/delete HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 14\r\n\r\n"
               "{\"model\":\"no\"}"
               "GET /api/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  struct reader *rd = calloc(1, sizeof(*rd));
  rd->fd = fd;
  struct resp p;
  cr_assert_eq(read_response(rd, &p, 0), 0);
  cr_expect_str_eq(p.body, "Ollama is running");
  resp_free(&p);
  cr_assert_eq(read_response(rd, &p, 0), 0);
  cr_expect_not_null(strstr(p.body, "version"));
  resp_free(&p);
  cr_assert_eq(read_response(rd, &p, 0), 0);
  cr_expect_eq(p.status, 404);
  resp_free(&p);
  cr_assert_eq(read_response(rd, &p, 0), 0);
  cr_expect_not_null(strstr(p.body, "\"models\""));
  cr_expect_str_eq(resp_header(&p, "Connection"), "close");
  resp_free(&p);
  cr_expect(peer_closed(fd, 2000));
  free(rd);
  close(fd);
}

Test(api, request_fed_one_byte_at_a_time) {
  int fd = tcp_connect(T.port);
  const char *body = "{\"source\":\"tiny:1b\",\"destination\":\"bytes\"}";
  char req[512];
  snprintf(req, sizeof(req),
           "POST /api/copy HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           strlen(body), body);
  for (const char *p = req; *p; p++)
    cr_assert_eq(send_all(fd, p, 1), 0);
  struct reader *rd = calloc(1, sizeof(*rd));
  rd->fd = fd;
  struct resp r;
  cr_assert_eq(read_response(rd, &r, 0), 0);
  cr_expect_eq(r.status, 200, "%s", r.body);
  resp_free(&r);
  free(rd);
  close(fd);
}

Test(api, limits_413_431) {
  int fd = tcp_connect(T.port);
  send_str(fd, "POST /api/copy HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 104857600\r\n\r\n");
  struct reader *rd = calloc(1, sizeof(*rd));
  rd->fd = fd;
  struct resp r;
  cr_assert_eq(read_response(rd, &r, 0), 0);
  cr_expect_eq(r.status, 413);
  resp_free(&r);
  close(fd);
  fd = tcp_connect(T.port);
  size_t n = 70 * 1024;
  char *big = malloc(n + 128);
  int off = snprintf(big, 128, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: ");
  memset(big + off, 'c', n);
  strcpy(big + off + n, "\r\n\r\n");
  send_all(fd, big, strlen(big));
  free(big);
  *rd = (struct reader){.fd = fd};
  cr_assert_eq(read_response(rd, &r, 0), 0);
  cr_expect_eq(r.status, 431);
  resp_free(&r);
  free(rd);
  close(fd);
}

static long status_with(const char *method, const char *path, const char *const *headers,
                        struct cresp *out) {
  struct cresp r;
  cr_assert_eq(curl_req(T.curl, method, url(path), NULL, headers, &r), 0);
  long s = r.status;
  if (out)
    *out = r;
  else
    cresp_free(&r);
  return s;
}

Test(api, cors) {
  struct cresp r;
  const char *evil[] = {"Origin: http://evil.example", NULL};
  cr_expect_eq(status_with("GET", "/api/version", evil, &r), 403);
  cr_expect_eq(r.len, 0);
  cresp_free(&r);
  const char *local[] = {"Origin: http://localhost:3000", NULL};
  cr_expect_eq(status_with("GET", "/api/version", local, &r), 200);
  cr_expect_not_null(strstr(r.headers, "Access-Control-Allow-Origin: http://localhost:3000"));
  cresp_free(&r);
  const char *configured[] = {"Origin: http://allowed.example", NULL};
  cr_expect_eq(status_with("GET", "/", configured, NULL), 200);
  const char *app[] = {"Origin: app://obsidian.md", NULL};
  cr_expect_eq(status_with("GET", "/", app, NULL), 200);
  const char *ext[] = {"Origin: chrome-extension://abcdef", NULL};
  cr_expect_eq(status_with("GET", "/", ext, NULL), 403);
  const char *pre[] = {"Origin: http://127.0.0.1:8080", "Access-Control-Request-Method: POST",
                       "Access-Control-Request-Headers: content-type", NULL};
  cr_expect_eq(status_with("OPTIONS", "/api/chat", pre, &r), 204);
  cr_expect_not_null(strstr(r.headers, "Access-Control-Allow-Methods:"));
  cr_expect_not_null(strstr(r.headers, "x-stainless-timeout"));
  cresp_free(&r);
  const char *pre_evil[] = {"Origin: https://evil.example", "Access-Control-Request-Method: POST",
                            NULL};
  cr_expect_eq(status_with("OPTIONS", "/api/chat", pre_evil, NULL), 403);
}

Test(api, host_check_on_loopback) {
  const char *evil[] = {"Host: evil.example", NULL};
  cr_expect_eq(status_with("GET", "/", evil, NULL), 403);
  const char *evil_port[] = {"Host: attacker.com:11434", NULL};
  cr_expect_eq(status_with("GET", "/", evil_port, NULL), 403);
  const char *ok[][2] = {{"Host: localhost:11434", NULL}, {"Host: foo.localhost", NULL},
                         {"Host: printer.local", NULL},   {"Host: svc.internal", NULL},
                         {"Host: 192.168.1.5:80", NULL},  {"Host: [::1]:11434", NULL},
                         {"Host: 10.1.2.3", NULL}};
  for (size_t i = 0; i < CLL_ARRAY_LEN(ok); i++)
    cr_expect_eq(status_with("GET", "/", ok[i], NULL), 200, "%s", ok[i][0]);
  const char *pub_ip[] = {"Host: 8.8.8.8", NULL};
  cr_expect_eq(status_with("GET", "/", pub_ip, NULL), 403);
  const char *opt[] = {"Host: localhost", NULL};
  cr_expect_eq(status_with("OPTIONS", "/api/tags", opt, NULL), 204);
}

Test(api, host_check_off_when_not_loopback) {
  cr_assert_eq(stop_server(), 0);
  start_with(NULL, "0.0.0.0:0");
  const char *evil[] = {"Host: evil.example", NULL};
  cr_expect_eq(status_with("GET", "/", evil, NULL), 200);
}

Test(api, empty_store_lists_empty_array) {
  cr_assert_eq(stop_server(), 0);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.models);
  cr_assert_eq(system(cmd), 0);
  start_with(NULL, "127.0.0.1:0");
  struct cresp r;
  curl_req(T.curl, "GET", url("/api/tags"), NULL, NULL, &r);
  cr_expect_str_eq(r.body, "{\"models\":[]}");
  cresp_free(&r);
}

/* ----------------------------------------------------- start-up errors */

static int run_cli(const char *const *env_extra, const char *arg, char *out, size_t size) {
  char cmd[1024];
  size_t off =
      (size_t)snprintf(cmd, sizeof(cmd), "env OLLAMA_MODELS=/tmp/cllama-none-%d ", (int)getpid());
  for (size_t i = 0; env_extra && env_extra[i]; i++)
    off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "'%s' ", env_extra[i]);
  snprintf(cmd + off, sizeof(cmd) - off, "%s serve %s 2>&1", bin(), arg);
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, size - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, serve_help_lists_every_variable) {
  char out[8192];
  cr_expect_eq(run_cli(NULL, "--help", out, sizeof(out)), 0);
  const char *vars[] = {
      "OLLAMA_HOST",          "OLLAMA_MODELS",    "OLLAMA_ORIGINS",           "OLLAMA_KEEP_ALIVE",
      "OLLAMA_NUM_PARALLEL",  "OLLAMA_MAX_QUEUE", "OLLAMA_MAX_LOADED_MODELS", "OLLAMA_DEBUG",
      "CLLAMA_STREAM_DEFAULT"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(vars); i++)
    cr_expect_not_null(strstr(out, vars[i]), "%s missing from --help", vars[i]);
}

Test(cli, invalid_configuration_is_rejected) {
  char out[4096];
  const char *bad[] = {"OLLAMA_NUM_PARALLEL=lots", NULL};
  cr_expect_eq(run_cli(bad, "", out, sizeof(out)), 1);
  cr_expect_not_null(strstr(out, "OLLAMA_NUM_PARALLEL"), "%s", out);
  const char *badhost[] = {"OLLAMA_HOST=127.0.0.1:70000", NULL};
  cr_expect_eq(run_cli(badhost, "", out, sizeof(out)), 1);
  cr_expect_not_null(strstr(out, "OLLAMA_HOST"), "%s", out);
}

Test(api, cli_list_is_a_client_of_the_server) {
  char cmd[1024], out[4096];
  snprintf(cmd, sizeof(cmd), "OLLAMA_HOST=127.0.0.1:%d %s list 2>&1", T.port, bin());
  FILE *p = popen(cmd, "r");
  size_t n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
  cr_expect_not_null(strstr(out, "NAME"), "%s", out);
  cr_expect_not_null(strstr(out, "tiny:1b"), "%s", out);
  cr_expect_not_null(strstr(out, "team/Other:v2"), "%s", out);
  cr_expect_null(strstr(out, "ghost"), "%s", out);
}
