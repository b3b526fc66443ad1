/* test_api_hostile.c — wrong inputs get the right errors and the server's
 * resources stay bounded (issue 13): `options` that is not an object is a
 * 400; an /api/embed batch takes one place in the request queue, not one
 * per input; CLLAMA_KERNELS=bogus is refused at start; a chat with
 * thousands of messages is answered and does not hold SIGTERM up; SIGTERM
 * while work items run ends the process. A `cllama serve` child on
 * 127.0.0.1 (test/api_harness.h). */
#include "api_harness.h"

#include <pthread.h>

static void setup(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("stories", "stories260K-f32.gguf", "{{ .Prompt }}", NULL, NULL);
  const char *env[] = {"OLLAMA_MAX_QUEUE=2", NULL};
  start_server(env);
}
static void teardown(void) {
  stop_server();
}

TestSuite(api_hostile, .init = setup, .fini = teardown, .timeout = 120);

Test(api_hostile, options_not_an_object_is_400) {
  NEED_SHARED();
  const char *bodies[][2] = {
      {"/api/generate", "{\"model\":\"stories\",\"prompt\":\"x\",\"options\":[1,2]}"},
      {"/api/generate", "{\"model\":\"stories\",\"prompt\":\"x\",\"options\":\"fast\"}"},
      {"/api/chat", "{\"model\":\"stories\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                    "\"options\":7}"},
      {"/api/embed", "{\"model\":\"stories\",\"input\":\"x\",\"options\":[]}"},
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    struct resp r = http("POST", bodies[i][0], bodies[i][1]);
    cr_expect_eq(r.status, 400, "%s %s -> %ld %s", bodies[i][0], bodies[i][1], r.status, r.body);
    cr_expect(strstr(r.body, "\"error\"") != NULL, "%s", r.body);
    free(r.body);
  }
}

Test(api_hostile, embed_batch_takes_one_queue_place) {
  NEED_SHARED();
  /* 40 inputs, OLLAMA_MAX_QUEUE=2, an idle server: all are answered. */
  char body[4096];
  int n = snprintf(body, sizeof(body), "{\"model\":\"stories\",\"input\":[");
  for (int i = 0; i < 40; i++)
    n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"Once upon a time %d\"", i ? "," : "", i);
  snprintf(body + n, sizeof(body) - (size_t)n, "]}");
  struct resp r = http("POST", "/api/embed", body);
  cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
  json_t *v = jparse(r.body);
  cr_expect_eq(json_array_size(json_object_get(v, "embeddings")), 40);
  json_decref(v);
  free(r.body);
  /* The same through the OpenAI endpoint. */
  n = snprintf(body, sizeof(body), "{\"model\":\"stories\",\"input\":[");
  for (int i = 0; i < 12; i++)
    n += snprintf(body + n, sizeof(body) - (size_t)n, "%s\"text %d\"", i ? "," : "", i);
  snprintf(body + n, sizeof(body) - (size_t)n, "]}");
  r = http("POST", "/v1/embeddings", body);
  cr_expect_eq(r.status, 200, "%ld %s", r.status, r.body);
  free(r.body);
}

/* A chat body with n tiny messages (caller frees). */
static char *many_messages(int n) {
  size_t cap = (size_t)n * 64 + 256;
  char *b = malloc(cap);
  size_t k = (size_t)snprintf(b, cap,
                              "{\"model\":\"stories\",\"stream\":false,"
                              "\"options\":{\"num_ctx\":256,\"num_predict\":2},"
                              "\"messages\":[");
  for (int i = 0; i < n; i++)
    k += (size_t)snprintf(b + k, cap - k, "%s{\"role\":\"%s\",\"content\":\"m%d\"}", i ? "," : "",
                          i % 2 ? "assistant" : "user", i);
  snprintf(b + k, cap - k, "]}");
  return b;
}

Test(api_hostile, chat_with_thousands_of_messages_is_answered) {
  NEED_SHARED();
  char *body = many_messages(10001);
  struct resp r = http("POST", "/api/chat", body); /* 60 s limit (was > 3 min of CPU) */
  free(body);
  cr_expect_eq(r.status, 200, "%ld %.300s", r.status, r.body);
  free(r.body);
  /* One log line for the truncation, not one per dropped message. */
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "test $(grep -c 'dropped' '%s/server.log') -le 1", H.dir);
  cr_expect_eq(system(cmd), 0, "the log has a line per dropped message");
}

struct bg {
  char *body;
};
static void *post_bg(void *arg) {
  struct bg *b = arg;
  struct resp r = http("POST", "/api/chat", b->body);
  free(r.body);
  return NULL;
}

Test(api_hostile, sigterm_while_chats_run_exits_promptly) {
  NEED_SHARED();
  struct bg b = {many_messages(20001)};
  pthread_t t[2];
  for (int i = 0; i < 2; i++)
    pthread_create(&t[i], NULL, post_bg, &b);
  usleep(300 * 1000);
  kill(H.pid, SIGTERM);
  int st = 0;
  pid_t got = 0;
  for (int i = 0; i < 1500 && got == 0; i++) { /* 15 s */
    got = waitpid(H.pid, &st, WNOHANG);
    if (got == 0)
      usleep(10000);
  }
  cr_expect_eq(got, H.pid, "the server did not exit after SIGTERM");
  if (got == H.pid)
    H.pid = 0;
  for (int i = 0; i < 2; i++)
    pthread_join(t[i], NULL);
  free(b.body);
}

Test(api_hostile, bogus_kernels_refused_at_start) {
  NEED_SHARED();
  const char *bin = getenv("CLLAMA_BIN");
  char cmd[1200];
  snprintf(cmd, sizeof(cmd),
           "OLLAMA_MODELS='%s' OLLAMA_HOST=127.0.0.1:0 CLLAMA_KERNELS=bogus timeout 10 '%s' serve "
           ">'%s/bogus.log' 2>&1",
           H.models, bin, H.dir);
  int rc = system(cmd);
  cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) != 0 && WEXITSTATUS(rc) != 124,
            "CLLAMA_KERNELS=bogus was accepted");
  snprintf(cmd, sizeof(cmd), "grep -q CLLAMA_KERNELS '%s/bogus.log'", H.dir);
  cr_expect_eq(system(cmd), 0, "the refusal does not name the variable");
}

Test(api_hostile, errors_name_no_server_path) {
  NEED_SHARED();
  /* A model whose weights blob is missing: every endpoint's error names the
   * blob relative to the store, never the absolute path. */
  const char *cfg = "{\"model_format\":\"gguf\",\"model_family\":\"llama\"}";
  char ch[65];
  put_blob(cfg, strlen(cfg), ch);
  char man[2048];
  int n = snprintf(man, sizeof(man),
                   "{\"schemaVersion\":2,\"mediaType\":\"application/"
                   "vnd.docker.distribution.manifest.v2+json\",\"config\":{\"mediaType\":"
                   "\"application/vnd.docker.container.image.v1+json\",\"digest\":\"sha256:%s\","
                   "\"size\":%zu},\"layers\":[{\"mediaType\":\"application/"
                   "vnd.ollama.image.model\",\"digest\":\"sha256:%064d\",\"size\":1000}]}",
                   ch, strlen(cfg), 7);
  char dir[900], path[1000];
  snprintf(dir, sizeof(dir), "%s/manifests/registry.ollama.ai/library/broken", H.models);
  char cmd[1000];
  snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
  cr_assert_eq(system(cmd), 0);
  snprintf(path, sizeof(path), "%s/latest", dir);
  write_file(path, man, (size_t)n);
  const char *reqs[][2] = {
      {"/api/generate", "{\"model\":\"broken\",\"prompt\":\"x\",\"stream\":false}"},
      {"/api/generate", "{\"model\":\"broken\",\"prompt\":\"x\",\"stream\":true}"},
      {"/api/chat", "{\"model\":\"broken\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"},
      {"/api/embed", "{\"model\":\"broken\",\"input\":\"x\"}"},
      {"/v1/chat/completions",
       "{\"model\":\"broken\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"},
  };
  for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
    struct resp r = http("POST", reqs[i][0], reqs[i][1]);
    cr_expect_geq(r.status, 400, "%s: %ld %s", reqs[i][0], r.status, r.body);
    cr_expect(strstr(r.body, H.dir) == NULL, "%s names a server path: %s", reqs[i][0], r.body);
    free(r.body);
  }
}

struct bgc {
  char body[1024];
};
static void *create_bg(void *arg) {
  struct bgc *b = arg;
  struct resp r = http("POST", "/api/create", b->body);
  free(r.body);
  return NULL;
}

Test(api_hostile, sigterm_while_a_create_copies_exits_promptly) {
  NEED_SHARED();
  /* A 1 GiB file that starts like a GGUF (sparse: no disk used): the
   * create copies it into the store; SIGTERM stops the copy, the process
   * exits, and the temporary is gone. */
  char path[600];
  snprintf(path, sizeof(path), "%s/huge.gguf", H.dir);
  FILE *f = fopen(path, "wb");
  cr_assert(f);
  fwrite("GGUF\x03\0\0\0", 1, 8, f);
  fclose(f);
  cr_assert_eq(truncate(path, 1L << 30), 0);
  struct bgc b;
  snprintf(b.body, sizeof(b.body), "{\"model\":\"huge\",\"from\":\"%s\",\"stream\":false}", path);
  pthread_t t;
  pthread_create(&t, NULL, create_bg, &b);
  usleep(300 * 1000);
  kill(H.pid, SIGTERM);
  int st = 0;
  pid_t got = 0;
  for (int i = 0; i < 1500 && got == 0; i++) { /* 15 s */
    got = waitpid(H.pid, &st, WNOHANG);
    if (got == 0)
      usleep(10000);
  }
  cr_expect_eq(got, H.pid, "the server did not exit after SIGTERM during a create");
  if (got == H.pid)
    H.pid = 0;
  pthread_join(t, NULL);
  char cmd[800];
  snprintf(cmd, sizeof(cmd), "ls -a '%s/blobs' | grep -q tmp", H.models);
  cr_expect_neq(system(cmd), 0, "the create's temporary was left in the store");
}
