/* test_api_push.c — POST /api/push and `cllama push` against a loopback
 * registry (test/registry_push_fixture.py, Bearer auth) (issue 17): small
 * blobs go up in one PUT, the model blob in PATCHed parts
 * (CLLAMA_PUSH_PART_BYTES), a failing PATCH is retried, the manifest goes
 * last, Ollama's progress statuses stream; a second push uploads nothing
 * (every HEAD says the blob is there); push -> delete -> pull gives back the
 * same model, which generates the reference text, and so does `cllama run`
 * of it once deleted (run pulls a missing model); a registry that keeps
 * failing ends the push with an error and no manifest. */
#include "api_harness.h"

static pid_t fx_pid;
static int fx_port;
static char fx_root[400];

static void start_fixture(void) {
  snprintf(fx_root, sizeof(fx_root), "%s/registry", H.dir);
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  fx_pid = fork();
  cr_assert(fx_pid >= 0);
  if (fx_pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], 1);
    close(fds[0]);
    execlp("python3", "python3", "test/registry_push_fixture.py", "serve", "--root", fx_root,
           "--auth", "bearer", (char *)NULL);
    _exit(127);
  }
  close(fds[1]);
  FILE *f = fdopen(fds[0], "r");
  cr_assert(f);
  cr_assert_eq(fscanf(f, "PORT %d", &fx_port), 1, "the push fixture did not start");
  fclose(f);
}

/* The part size of a chunked upload: not a multiple of the server's read
 * buffer (256 KiB), so a part is read in several pieces, the last short. */
#define PART_BYTES 400000
static const char *part_env = "CLLAMA_PUSH_PART_BYTES=400000";

static void setup(void) {
  NEED_SHARED();
  make_store();
  add_model("stories", "stories260K-f32.gguf", "{{ .Prompt }}", NULL,
            "{\"temperature\":0,\"num_predict\":32}");
  start_fixture();
  /* HOME: the identity key Ollama's signed token flow uses (the fixture's
   * realm is on the registry's host) is made in the test's directory. */
  static char home[400];
  snprintf(home, sizeof(home), "HOME=%s", H.dir);
  start_server((const char *const[]){part_env, "CLLAMA_PULL_RETRY_MS=10", home, NULL});
}

static void teardown(void) {
  if (fx_pid > 0) {
    kill(fx_pid, SIGTERM);
    waitpid(fx_pid, NULL, 0);
    fx_pid = 0;
  }
  stop_server();
}

static json_t *fixture_json(const char *method, const char *path, const char *body) {
  char url[200];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fx_port, path);
  struct resp r = {0};
  CURL *c = curl_easy_init();
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if (body)
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  curl_easy_perform(c);
  curl_easy_cleanup(c);
  json_t *v = r.body ? json_loads(r.body, 0, NULL) : NULL;
  free(r.body);
  return v;
}

static json_int_t stat_of(json_t *s, const char *k) {
  return json_integer_value(json_object_get(s, k));
}

/* Pushes name (streamed); returns the NDJSON body. */
static char *push(const char *name) {
  char body[600];
  snprintf(body, sizeof(body), "{\"model\":\"%s\",\"insecure\":true,\"stream\":true}", name);
  struct resp r = http("POST", "/api/push", body);
  cr_assert_eq(r.status, 200, "%s", r.body);
  return r.body;
}

Test(api_push, chunked_and_monolithic_with_a_fault_then_pull_back, .init = setup, .fini = teardown,
     .timeout = 180) {
  char name[300], body[800];
  snprintf(name, sizeof(name), "127.0.0.1:%d/test/stories:v1", fx_port);
  snprintf(body, sizeof(body), "{\"source\":\"stories\",\"destination\":\"%s\"}", name);
  struct resp r = http("POST", "/api/copy", body);
  cr_assert_eq(r.status, 200, "%s", r.body);
  free(r.body);

  /* The first PATCH fails with a 500: the part is sent again. */
  json_decref(fixture_json("POST", "/_fault", "{\"patch_status\":500,\"patch_count\":1}"));
  char *out = push(name);
  cr_expect(strstr(out, "{\"status\":\"retrieving manifest\"}"), "%s", out);
  cr_expect(strstr(out, "\"status\":\"pushing "), "%s", out);
  cr_expect(strstr(out, "{\"status\":\"pushing manifest\"}"), "%s", out);
  cr_expect(strstr(out, "{\"status\":\"success\"}\n"), "%s", out);
  cr_expect_null(strstr(out, "\"error\""), "%s", out);
  /* The model layer's last progress line says all of it went up. */
  char hex[65];
  char gguf[1200];
  snprintf(gguf, sizeof(gguf), "%s/models/stories260K-f32.gguf", shared_dir());
  sha256_file(gguf, hex);
  struct stat sb;
  stat(gguf, &sb);
  char want[300];
  snprintf(want, sizeof(want), "\"digest\":\"sha256:%s\",\"total\":%lld,\"completed\":%lld}", hex,
           (long long)sb.st_size, (long long)sb.st_size);
  cr_expect(strstr(out, want), "no final progress for the model layer in:\n%s", out);
  free(out);
  json_t *s = fixture_json("GET", "/_stats", NULL);
  int64_t parts = (sb.st_size + PART_BYTES - 1) / PART_BYTES;
  cr_expect_eq(stat_of(s, "faults_hit"), 1);
  cr_expect_eq(stat_of(s, "patches"), parts + 1, "%s", json_dumps(s, 0)); /* one retried */
  cr_expect_eq(stat_of(s, "posts"), 4); /* config, model, template, params */
  cr_expect_eq(stat_of(s, "puts"), 4);  /* 3 monolithic, 1 completing the chunked one */
  cr_expect_eq(stat_of(s, "manifest_puts"), 1);
  cr_expect_gt(stat_of(s, "token_gets"), 0); /* Bearer auth was asked and given */
  /* The manifest is the last thing pushed. */
  json_t *reqs = json_object_get(s, "requests");
  size_t n = json_array_size(reqs);
  json_t *last = json_array_get(reqs, n - 2); /* the one before this /_stats */
  cr_expect_str_eq(json_string_value(json_array_get(last, 0)), "PUT");
  cr_expect(strstr(json_string_value(json_array_get(last, 1)), "/manifests/v1"));
  json_decref(s);

  /* Again: every blob is there already, nothing is uploaded. */
  json_decref(fixture_json("POST", "/_reset", "{}"));
  out = push(name);
  cr_expect(strstr(out, "{\"status\":\"success\"}"), "%s", out);
  free(out);
  s = fixture_json("GET", "/_stats", NULL);
  cr_expect_eq(stat_of(s, "heads"), 4);
  cr_expect_eq(stat_of(s, "posts"), 0);
  cr_expect_eq(stat_of(s, "upload_bytes"), 0);
  json_decref(s);

  /* Round trip: delete it here, pull it back from the registry. */
  snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
  r = http("DELETE", "/api/delete", body);
  cr_expect_eq(r.status, 200, "%s", r.body);
  free(r.body);
  snprintf(body, sizeof(body), "{\"model\":\"%s\",\"insecure\":true,\"stream\":false}", name);
  json_t *v = post_json("/api/pull", body, 200);
  cr_expect_str_eq(jstr(v, "status"), "success");
  json_decref(v);
  json_t *a = post_json("/api/show", "{\"model\":\"stories\"}", 200);
  snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
  json_t *b = post_json("/api/show", body, 200);
  cr_expect_str_eq(jstr(a, "template"), jstr(b, "template"));
  cr_expect_str_eq(jstr(a, "parameters"), jstr(b, "parameters"));
  json_decref(a);
  json_decref(b);
  snprintf(body, sizeof(body),
           "{\"model\":\"%s\",\"prompt\":\"Once upon a time\",\"options\":{\"num_predict\":32}}",
           name);
  v = post_json("/api/generate", body, 200);
  cr_expect_str_eq(jstr(v, "response"), ref_greedy_text());
  json_decref(v);

  /* `cllama run` of a model the server does not have pulls it first, with
   * pull's progress, then answers. */
  snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
  r = http("DELETE", "/api/delete", body);
  cr_expect_eq(r.status, 200, "%s", r.body);
  free(r.body);
  char cmd[1200];
  snprintf(cmd, sizeof(cmd),
           "OLLAMA_HOST=127.0.0.1:%d '%s' run --insecure '%s' 'Once upon a time' 2>&1 </dev/null",
           H.port, getenv("CLLAMA_BIN"), name);
  FILE *pp = popen(cmd, "r");
  char text[16384];
  size_t got = fread(text, 1, sizeof(text) - 1, pp);
  text[got] = 0;
  int st = pclose(pp);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", text);
  cr_expect(strstr(text, "pulling manifest\n"), "%s", text);
  cr_expect(strstr(text, "success\n"), "%s", text);
  cr_expect(strstr(text, ref_greedy_text()), "%s", text);
}

Test(api_push, a_registry_that_keeps_failing_gets_no_manifest, .init = setup, .fini = teardown,
     .timeout = 180) {
  char name[300], body[800];
  snprintf(name, sizeof(name), "127.0.0.1:%d/test/broken:v1", fx_port);
  snprintf(body, sizeof(body), "{\"source\":\"stories\",\"destination\":\"%s\"}", name);
  struct resp r = http("POST", "/api/copy", body);
  cr_assert_eq(r.status, 200);
  free(r.body);
  json_decref(fixture_json("POST", "/_fault", "{\"patch_status\":503,\"patch_count\":1000}"));
  /* `cllama push` shows the registry's failure and exits 1. */
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "OLLAMA_HOST=127.0.0.1:%d '%s' push --insecure '%s' 2>&1", H.port,
           getenv("CLLAMA_BIN"), name);
  FILE *p = popen(cmd, "r");
  char out[16384];
  size_t n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = 0;
  int st = pclose(p);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "%s", out);
  cr_expect(strstr(out, "Error: ") && strstr(out, "HTTP 503"), "%s", out);
  json_t *s = fixture_json("GET", "/_stats", NULL);
  cr_expect_eq(stat_of(s, "manifest_puts"), 0);
  json_decref(s);
  snprintf(cmd, sizeof(cmd), "%s/manifests/test/broken/v1", fx_root);
  cr_expect_neq(access(cmd, F_OK), 0, "a manifest was written");
  /* The local model is untouched, and a missing one is a 404. */
  snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
  json_decref(post_json("/api/show", body, 200));
  r = http("POST", "/api/push", "{\"model\":\"nothere\"}");
  cr_expect_eq(r.status, 404, "%s", r.body);
  free(r.body);
}

/* ------------------------------------------------ faults, redirects, cancel */

/* Copies stories to the fixture's name ns/model:v1 (written into name). */
static void copy_to(const char *ns_model, char *name, size_t size) {
  char body[800];
  snprintf(name, size, "127.0.0.1:%d/%s:v1", fx_port, ns_model);
  snprintf(body, sizeof(body), "{\"source\":\"stories\",\"destination\":\"%s\"}", name);
  struct resp r = http("POST", "/api/copy", body);
  cr_assert_eq(r.status, 200, "%s", r.body);
  free(r.body);
}

static void set_faults(const char *json) {
  json_decref(fixture_json("POST", "/_fault", json));
}

/* Waits until the fixture's counter key reaches want (the test's timeout
 * bounds it). */
static void wait_stat(const char *key, json_int_t want) {
  for (;;) {
    json_t *s = fixture_json("GET", "/_stats", NULL);
    json_int_t v = stat_of(s, key);
    json_decref(s);
    if (v >= want)
      return;
    usleep(20000);
  }
}

/* Sends a streamed push on a raw connection and returns it unread. */
static int open_push(const char *name) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)H.port);
  a.sin_addr.s_addr = htonl(0x7f000001);
  cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  char body[600], req[1000];
  snprintf(body, sizeof(body), "{\"model\":\"%s\",\"insecure\":true,\"stream\":true}", name);
  int n = snprintf(req, sizeof(req),
                   "POST /api/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n\r\n%s",
                   strlen(body), body);
  cr_assert_eq(write(fd, req, (size_t)n), n);
  return fd;
}

static int64_t model_size(char hex[65]) {
  char gguf[1200];
  snprintf(gguf, sizeof(gguf), "%s/models/stories260K-f32.gguf", shared_dir());
  sha256_file(gguf, hex);
  struct stat sb;
  cr_assert_eq(stat(gguf, &sb), 0);
  return sb.st_size;
}

/* Every progress line of the model layer stays within its total, and the
 * last one says all of it went up. */
static void expect_layer_progress(const char *out, const char *hex, int64_t size) {
  char key[120];
  snprintf(key, sizeof(key), "\"digest\":\"sha256:%s\"", hex);
  int64_t last = -1;
  for (const char *s = strstr(out, key); s; s = strstr(s + 1, key)) {
    const char *c = strstr(s, "\"completed\":");
    const char *eol = strchr(s, '\n');
    int64_t v = c && (!eol || c < eol) ? strtoll(c + 12, NULL, 10) : 0;
    cr_expect_leq(v, size, "%s", out);
    last = v;
  }
  cr_expect_eq(last, size, "%s", out);
}

/* Pushes name, which must succeed with whole progress for the model layer
 * (hex, size); returns the fixture's stats. */
static json_t *push_ok(const char *name, const char *hex, int64_t size) {
  char *out = push(name);
  cr_expect(strstr(out, "{\"status\":\"success\"}\n"), "%s", out);
  cr_expect_null(strstr(out, "\"error\""), "%s", out);
  expect_layer_progress(out, hex, size);
  free(out);
  return fixture_json("GET", "/_stats", NULL);
}

Test(api_push, a_dropped_and_a_failed_patch_mid_blob_are_sent_again, .init = setup,
     .fini = teardown, .timeout = 180) {
  char name[300], hex[65];
  copy_to("test/faulty", name, sizeof(name));
  int64_t size = model_size(hex);
  int64_t parts = (size + PART_BYTES - 1) / PART_BYTES;
  cr_assert_gt(parts, 2, "the model must span several parts");
  /* Part 0: its first PATCH gets a 500. Part 1 (mid-blob): its first
   * PATCH's connection is dropped after the body went up. */
  set_faults("{\"patch_status\":500,\"patch_count\":1,\"patch_close\":1,\"patch_close_skip\":2}");
  json_t *s = push_ok(name, hex, size);
  cr_expect_eq(stat_of(s, "faults_hit"), 2, "%s", json_dumps(s, 0));
  cr_expect_eq(stat_of(s, "patches"), parts + 2);
  /* The commit carries Ollama's etag: the md5 of the parts' md5s. */
  cr_expect_eq(stat_of(s, "etag_ok"), 1, "%s", json_dumps(s, 0));
  cr_expect_eq(stat_of(s, "commits_without_etag"), 0);
  cr_expect_eq(stat_of(s, "manifest_puts"), 1);
  json_decref(s);
  char path[800];
  snprintf(path, sizeof(path), "%s/blobs/sha256-%s", fx_root, hex);
  struct stat sb;
  cr_expect(stat(path, &sb) == 0 && sb.st_size == size, "the registry's copy is not whole");
}

Test(api_push, redirected_parts_go_to_the_storage_without_the_token, .init = setup,
     .fini = teardown, .timeout = 180) {
  char name[300], hex[65];
  copy_to("test/redirected", name, sizeof(name));
  int64_t size = model_size(hex);
  int64_t parts = (size + PART_BYTES - 1) / PART_BYTES;
  /* Every PATCH with X-Redirect-Uploads gets a 307 to the storage (another
   * port: another host); its first PUT fails once with a 500. */
  set_faults("{\"redirect\":true,\"storage_status\":500,\"storage_count\":1}");
  json_t *s = push_ok(name, hex, size);
  cr_expect_eq(stat_of(s, "redirects"), parts, "%s", json_dumps(s, 0));
  cr_expect_eq(stat_of(s, "patches"), parts);
  cr_expect_eq(stat_of(s, "storage_puts"), parts + 1); /* one sent again */
  cr_expect_eq(stat_of(s, "storage_auth"), 0);         /* never the registry's token */
  cr_expect_eq(stat_of(s, "etag_ok"), 1);
  cr_expect_eq(stat_of(s, "manifest_puts"), 1);
  json_decref(s);
  /* Round trip: what went through the storage pulls back whole. */
  char body[800];
  snprintf(body, sizeof(body), "{\"model\":\"%s\"}", name);
  struct resp r = http("DELETE", "/api/delete", body);
  cr_expect_eq(r.status, 200, "%s", r.body);
  free(r.body);
  snprintf(body, sizeof(body), "{\"model\":\"%s\",\"insecure\":true,\"stream\":false}", name);
  json_t *v = post_json("/api/pull", body, 200);
  cr_expect_str_eq(jstr(v, "status"), "success");
  json_decref(v);
}

Test(api_push, a_client_that_leaves_mid_upload_stops_the_push, .init = setup, .fini = teardown,
     .timeout = 180) {
  char name[300];
  copy_to("test/leaving", name, sizeof(name));
  set_faults("{\"patch_hang\":1}"); /* the first PATCH is never answered */
  int fd = open_push(name);
  wait_stat("patch_hangs", 1);
  close(fd);
  /* The push aborts its transfer in flight: the registry sees it go. */
  wait_stat("patch_aborted", 1);
  json_t *s = fixture_json("GET", "/_stats", NULL);
  cr_expect_eq(stat_of(s, "manifest_puts"), 0);
  json_decref(s);
  /* Nothing is left held: the same push from scratch goes through. */
  json_decref(fixture_json("POST", "/_reset", "{}"));
  char *out = push(name);
  cr_expect(strstr(out, "{\"status\":\"success\"}\n"), "%s", out);
  free(out);
}

Test(api_push, a_server_shutdown_mid_upload_ends_the_push, .init = setup, .fini = teardown,
     .timeout = 180) {
  char name[300];
  copy_to("test/shutdown", name, sizeof(name));
  set_faults("{\"patch_hang\":1}");
  int fd = open_push(name);
  wait_stat("patch_hangs", 1);
  /* The server exits 0 with nothing leaked (stop_server checks both); the
   * client's stream ends with the reason. */
  stop_server();
  char out[16384];
  size_t got = 0;
  ssize_t k;
  while (got < sizeof(out) - 1 && (k = read(fd, out + got, sizeof(out) - 1 - got)) > 0)
    got += (size_t)k;
  out[got] = 0;
  close(fd);
  cr_expect(strstr(out, "\"status\":\"pushing "), "%s", out);
  cr_expect(strstr(out, "{\"error\":\"server is shutting down\"}"), "%s", out);
  wait_stat("patch_aborted", 1);
}

/* Parts larger than the model: every blob goes in one PUT, the model's
 * read in several buffers. */
static void setup_one_put(void) {
  part_env = "CLLAMA_PUSH_PART_BYTES=100000000";
  setup();
  part_env = "CLLAMA_PUSH_PART_BYTES=400000";
}

Test(api_push, a_blob_under_the_part_size_goes_in_one_put, .init = setup_one_put, .fini = teardown,
     .timeout = 180) {
  char name[300], hex[65];
  copy_to("test/whole", name, sizeof(name));
  int64_t size = model_size(hex);
  json_t *s = push_ok(name, hex, size);
  cr_expect_eq(stat_of(s, "patches"), 0);
  cr_expect_eq(stat_of(s, "puts"), 4); /* the registry checked every digest */
  cr_expect_eq(stat_of(s, "manifest_puts"), 1);
  json_decref(s);
  char path[800];
  snprintf(path, sizeof(path), "%s/blobs/sha256-%s", fx_root, hex);
  struct stat sb;
  cr_expect(stat(path, &sb) == 0 && sb.st_size == size, "the registry's copy is not whole");
}
