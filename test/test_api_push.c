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
  start_server((const char *const[]){"CLLAMA_PUSH_PART_BYTES=262144", "CLLAMA_PULL_RETRY_MS=10",
                                     home, NULL});
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
  int64_t parts = (sb.st_size + 262143) / 262144;
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
