/* api_harness.h — integration-test helpers: a temporary model store whose
 * blobs are symlinks to ../shared/models, a `cllama serve` child on
 * 127.0.0.1 port 0, and libcurl requests. Included by test_api_*.c only. */
#ifndef CLLAMA_TEST_API_HARNESS_H
#define CLLAMA_TEST_API_HARNESS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "server_log.h"

struct harness {
  char dir[256];    /* temporary root */
  char models[300]; /* OLLAMA_MODELS */
  char shared[1024];
  pid_t pid;
  int port;
  char base[64];
};

static struct harness H;
static long harness_timeout_s = 60; /* each request's time limit */

static __attribute__((unused)) const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s && *s ? s : "../shared";
}

static __attribute__((unused)) bool have_shared(void) {
  char p[1200];
  snprintf(p, sizeof(p), "%s/models/stories260K-f32.gguf", shared_dir());
  return access(p, R_OK) == 0;
}

#define NEED_SHARED()                                                                              \
  do {                                                                                             \
    if (!have_shared()) {                                                                          \
      fprintf(stderr, "SKIP: CLLAMA_SHARED not found\n");                                          \
      cr_skip("CLLAMA_SHARED not found");                                                          \
    }                                                                                              \
  } while (0)

static __attribute__((unused)) void sha256_file(const char *path, char hex[65]);

static __attribute__((unused)) void write_file(const char *path, const void *data, size_t n) {
  FILE *f = fopen(path, "wb");
  cr_assert(f, "cannot write %s", path);
  fwrite(data, 1, n, f);
  fclose(f);
}

/* Stores data as a blob; returns its hex digest in hex. */
static __attribute__((unused)) void put_blob(const char *data, size_t n, char hex[65]) {
  char tmp[600], path[700];
  snprintf(tmp, sizeof(tmp), "%s/tmpblob", H.dir);
  write_file(tmp, data, n);
  sha256_file(tmp, hex);
  snprintf(path, sizeof(path), "%s/blobs/sha256-%s", H.models, hex);
  rename(tmp, path);
}

static __attribute__((unused)) void sha256_file(const char *path, char hex[65]) {
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  cr_assert_eq(fscanf(p, "%64s", hex), 1);
  pclose(p);
}

/* Adds model `name` (library namespace, tag latest) made of a shared GGUF
 * file (symlinked, never copied) and optional template/system/params layers. */
static __attribute__((unused)) void add_model(const char *name, const char *gguf, const char *tmpl,
                                              const char *sys, const char *params) {
  char src[4200], hex[65], link[800];
  if (gguf[0] == '/') /* an absolute path (generated models) */
    snprintf(src, sizeof(src), "%s", gguf);
  else
    snprintf(src, sizeof(src), "%s/models/%s", shared_dir(), gguf);
  char *abs = realpath(src, NULL);
  cr_assert(abs, "missing %s", src);
  sha256_file(abs, hex);
  snprintf(link, sizeof(link), "%s/blobs/sha256-%s", H.models, hex);
  symlink(abs, link);
  struct stat sb;
  stat(abs, &sb);
  free(abs);
  char layers[4096];
  int n = snprintf(layers, sizeof(layers),
                   "{\"mediaType\":\"application/vnd.ollama.image.model\",\"digest\":\"sha256:%s\","
                   "\"size\":%lld}",
                   hex, (long long)sb.st_size);
  const char *kinds[3] = {"template", "system", "params"};
  const char *vals[3] = {tmpl, sys, params};
  for (int i = 0; i < 3; i++) {
    if (!vals[i])
      continue;
    char h[65];
    put_blob(vals[i], strlen(vals[i]), h);
    n += snprintf(layers + n, sizeof(layers) - (size_t)n,
                  ",{\"mediaType\":\"application/vnd.ollama.image.%s\",\"digest\":\"sha256:%s\","
                  "\"size\":%zu}",
                  kinds[i], h, strlen(vals[i]));
  }
  const char *cfg = "{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":"
                    "[\"llama\"],\"model_type\":\"260K\",\"file_type\":\"F32\"}";
  char ch[65];
  put_blob(cfg, strlen(cfg), ch);
  char man[8192];
  int mn = snprintf(man, sizeof(man),
                    "{\"schemaVersion\":2,\"mediaType\":\"application/"
                    "vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":"
                    "\"application/vnd.docker.container.image.v1+json\",\"digest\":\"sha256:%s\","
                    "\"size\":%zu},\"layers\":[%s]}",
                    ch, strlen(cfg), layers);
  char dir[900], path[1000];
  snprintf(dir, sizeof(dir), "%s/manifests/registry.ollama.ai/library/%s", H.models, name);
  char cmd[1000];
  snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
  cr_assert_eq(system(cmd), 0);
  snprintf(path, sizeof(path), "%s/latest", dir);
  write_file(path, man, (size_t)mn);
}

static __attribute__((unused)) void make_store(void) {
  snprintf(H.dir, sizeof(H.dir), "/tmp/cllama-api-test-XXXXXX");
  cr_assert(mkdtemp(H.dir));
  snprintf(H.models, sizeof(H.models), "%s/models", H.dir);
  char cmd[700];
  snprintf(cmd, sizeof(cmd), "mkdir -p '%s/blobs' '%s/manifests'", H.models, H.models);
  cr_assert_eq(system(cmd), 0);
}

/* Starts `cllama serve`; extra is a NULL-terminated list of "K=V" env. */
static __attribute__((unused)) void start_server(const char *const *extra) {
  const char *bin = getenv("CLLAMA_BIN");
  cr_assert(bin, "CLLAMA_BIN not set");
  char portfile[400];
  snprintf(portfile, sizeof(portfile), "%s/port", H.dir);
  unlink(portfile);
  H.pid = fork();
  cr_assert(H.pid >= 0);
  if (H.pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a test that timed out */
    setenv("OLLAMA_HOST", "127.0.0.1:0", 1);
    setenv("OLLAMA_MODELS", H.models, 1);
    setenv("CLLAMA_PORT_FILE", portfile, 1);
    for (const char *const *e = extra; e && *e; e++)
      putenv(strdup(*e));
    char log[400];
    snprintf(log, sizeof(log), "%s/server.log", H.dir);
    freopen(log, "w", stderr);
    execl(bin, bin, "serve", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 500; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      int ok = fscanf(f, "%d", &H.port);
      fclose(f);
      if (ok == 1 && H.port > 0)
        break;
    }
    usleep(10000);
  }
  cr_assert_gt(H.port, 0, "server did not start");
  snprintf(H.base, sizeof(H.base), "http://127.0.0.1:%d", H.port);
}

/* Stops the server with SIGTERM; it must exit 0 with no sanitizer report in
 * its log (server_log.h), or the test fails and the log is printed. */
static __attribute__((unused)) void stop_server(void) {
  if (H.pid > 0) {
    kill(H.pid, SIGTERM);
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 1500 && (w = waitpid(H.pid, &st, WNOHANG)) == 0; i++)
      usleep(10000);
    if (w == 0) {
      kill(H.pid, SIGKILL);
      waitpid(H.pid, &st, 0);
      st = -1;
    }
    H.pid = 0;
    char log[400];
    snprintf(log, sizeof(log), "%s/server.log", H.dir);
    server_log_check(st, log);
  }
  if (H.dir[0] && !getenv("CLLAMA_KEEP_TMP")) {
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.dir);
    if (system(cmd) != 0)
      fprintf(stderr, "cannot remove %s\n", H.dir);
  }
}

/* ---------------------------------------------------------------- http */

struct resp {
  long status;
  char *body;
  size_t len;
  size_t abort_after; /* stop reading after this many bytes (0: never) */
  char ctype[128];
  int curl_rc; /* CURLcode of the transfer */
};

static __attribute__((unused)) size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  struct resp *r = ud;
  size_t k = sz * n;
  r->body = realloc(r->body, r->len + k + 1);
  memcpy(r->body + r->len, p, k);
  r->len += k;
  r->body[r->len] = 0;
  if (r->abort_after && r->len >= r->abort_after)
    return 0; /* makes curl close the connection: a client that goes away */
  return k;
}

static __attribute__((unused)) CURL *mk_easy(const char *method, const char *path, const char *body,
                                             struct resp *r) {
  char url[512];
  snprintf(url, sizeof(url), "%s%s", H.base, path);
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  if (strcmp(method, "HEAD") == 0)
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  else
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
  }
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_TIMEOUT, harness_timeout_s);
  return c;
}

static __attribute__((unused)) struct resp http(const char *method, const char *path,
                                                const char *body) {
  struct resp r = {0};
  CURL *c = mk_easy(method, path, body, &r);
  r.curl_rc = (int)curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  char *ct = NULL;
  curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
  if (ct)
    snprintf(r.ctype, sizeof(r.ctype), "%s", ct);
  curl_easy_cleanup(c);
  if (!r.body)
    r.body = calloc(1, 1);
  return r;
}

static __attribute__((unused)) json_t *jparse(const char *s) {
  json_error_t e;
  json_t *v = json_loads(s, 0, &e);
  cr_assert(v, "not JSON: %s (%s)", s, e.text);
  return v;
}

static __attribute__((unused)) const char *jstr(json_t *o, const char *k) {
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

/* POSTs body to path; asserts the status and returns the parsed reply. */
static __attribute__((unused)) json_t *post_json(const char *path, const char *body,
                                                 long want_status) {
  struct resp r = http("POST", path, body);
  cr_assert_eq(r.status, want_status, "%s %s -> %ld %s", path, body, r.status, r.body);
  json_t *v = jparse(r.body);
  free(r.body);
  return v;
}

/* Concatenates response/message.content over NDJSON lines; returns the last object. */
static __attribute__((unused)) json_t *ndjson_collect(const char *body, char *text, size_t cap,
                                                      int *n_lines) {
  json_t *last = NULL;
  size_t used = 0;
  *n_lines = 0;
  text[0] = 0;
  const char *p = body;
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    json_error_t e;
    json_t *v = json_loadb(p, len, 0, &e);
    cr_assert(v, "bad line %.*s", (int)len, p);
    (*n_lines)++;
    const char *piece = json_string_value(json_object_get(v, "response"));
    if (!piece)
      piece = json_string_value(json_object_get(json_object_get(v, "message"), "content"));
    if (piece && used + strlen(piece) < cap) {
      memcpy(text + used, piece, strlen(piece) + 1);
      used += strlen(piece);
    }
    json_decref(last);
    last = v;
    p = nl ? nl + 1 : p + len;
  }
  return last;
}

static __attribute__((unused)) const char *ref_greedy_text(void) {
  static char buf[4096];
  char path[1200];
  snprintf(path, sizeof(path), "%s/ref/stories260K-f32/p1.kvf32.json", shared_dir());
  json_error_t e;
  json_t *v = json_load_file(path, 0, &e);
  cr_assert(v, "cannot read %s", path);
  snprintf(buf, sizeof(buf), "%s", jstr(v, "greedy_text"));
  json_decref(v);
  return buf;
}

#endif
