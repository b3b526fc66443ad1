/* test_chaos.c — allocation failure, jansson's test_chaos way: the n-th
 * allocation fails, for n over the whole run of one request (or one model
 * load), and what comes out must be the right answer or a clear error —
 * never a crash, a hang, a leak (under `make check`) or a server that stops
 * answering.
 *
 * How: this binary is linked with -Wl,--wrap for malloc, calloc, realloc,
 * strdup, strndup, posix_memalign and aligned_alloc (Makefile), so every
 * call from libcllama's objects goes through the hooks below; jansson's
 * allocations are routed to them with json_set_alloc_funcs. The server is
 * `cllama serve` itself (src/cli/serve.c) on a thread of this process, on
 * 127.0.0.1 port 0 with a store holding the tiny stories260K model; the
 * test's own thread (curl, parsing the answers) is never failed. Each
 * request path is first run once to count its allocations (A), then again
 * with allocation n failing for n = 1..40 and a geometric sample up to A. */
#include "api_harness.h"

#include "cllama/cli.h"
#include "cllama/engine.h"

#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------------------------- the hooks */

static atomic_long chaos_count;   /* allocations counted since chaos_arm */
static atomic_long chaos_fail_at; /* 1-based number of the one to fail; 0 = off */
static atomic_long chaos_failed;  /* allocations failed so far */
static pthread_t chaos_spared;    /* this thread's allocations never count */
static atomic_bool chaos_spare;

static bool chaos_fail_now(void) {
  if (atomic_load(&chaos_fail_at) == 0)
    return false;
  if (atomic_load(&chaos_spare) && pthread_equal(pthread_self(), chaos_spared))
    return false;
  long n = atomic_fetch_add(&chaos_count, 1) + 1;
  if (n != atomic_load(&chaos_fail_at))
    return false;
  atomic_fetch_add(&chaos_failed, 1);
  if (getenv("CLLAMA_CHAOS_TRACE")) { /* where the failing allocation was made */
    void *frames[16];
    int k = backtrace(frames, 16);
    fprintf(stderr, "chaos: allocation %ld fails here:\n", n);
    backtrace_symbols_fd(frames, k, 2);
  }
  return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t k, size_t n);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n);

void *__wrap_malloc(size_t n) {
  return chaos_fail_now() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t k, size_t n) {
  return chaos_fail_now() ? NULL : __real_calloc(k, n);
}
void *__wrap_realloc(void *p, size_t n) {
  return chaos_fail_now() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *s) {
  return chaos_fail_now() ? NULL : __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n) {
  return chaos_fail_now() ? NULL : __real_strndup(s, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
  return chaos_fail_now() ? ENOMEM : __real_posix_memalign(p, a, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
  return chaos_fail_now() ? NULL : __real_aligned_alloc(a, n);
}

static void *json_alloc(size_t n) {
  return __wrap_malloc(n);
}

/* Counts from zero; fail_at 0 never fails (LONG_MAX: count only). */
static void chaos_arm(long fail_at) {
  atomic_store(&chaos_fail_at, 0);
  atomic_store(&chaos_count, 0);
  atomic_store(&chaos_failed, 0);
  atomic_store(&chaos_fail_at, fail_at);
}

static long chaos_disarm(void) {
  long n = atomic_load(&chaos_count);
  atomic_store(&chaos_fail_at, 0);
  return n;
}

/* ------------------------------------------------------ in-process server */

static pthread_t serve_thread;
static int serve_rc = -1;

static void *serve_main(void *arg) {
  char *argv[] = {"serve", NULL};
  serve_rc = cll_cli_serve(1, argv);
  return NULL;
}

static void chaos_setup(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("stories", "stories260K-f32.gguf", NULL, NULL, "{\"temperature\":0,\"num_predict\":3}");
  char portfile[400];
  snprintf(portfile, sizeof(portfile), "%s/port", H.dir);
  setenv("OLLAMA_HOST", "127.0.0.1:0", 1);
  setenv("OLLAMA_MODELS", H.models, 1);
  setenv("CLLAMA_PORT_FILE", portfile, 1);
  setenv("OLLAMA_NUM_PARALLEL", "1", 1);
  json_set_alloc_funcs(json_alloc, free);
  void *warm[2];
  backtrace(warm, 2); /* loads what backtrace needs before any failure */
  harness_timeout_s = 20;
  chaos_spared = pthread_self();
  atomic_store(&chaos_spare, true);
  cr_assert_eq(pthread_create(&serve_thread, NULL, serve_main, NULL), 0);
  for (int i = 0; i < 1000 && H.port <= 0; i++) {
    FILE *f = fopen(portfile, "r");
    if (f) {
      if (fscanf(f, "%d", &H.port) != 1)
        H.port = 0;
      fclose(f);
    }
    if (H.port <= 0)
      usleep(10000);
  }
  cr_assert_gt(H.port, 0, "server did not start");
  snprintf(H.base, sizeof(H.base), "http://127.0.0.1:%d", H.port);
}

static void chaos_teardown(void) {
  if (H.port > 0) {
    chaos_disarm();
    kill(getpid(), SIGTERM); /* serve's own signal handler shuts it down */
    pthread_join(serve_thread, NULL);
    cr_expect_eq(serve_rc, 0, "cllama serve returned %d (handles left open?)", serve_rc);
  }
  if (H.dir[0] && !getenv("CLLAMA_KEEP_TMP")) {
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.dir);
    if (system(cmd) != 0)
      fprintf(stderr, "cannot remove %s\n", H.dir);
  }
}

/* --------------------------------------------------------------- the runs */

struct path_case {
  const char *method, *path, *body;
  long ok_status;     /* the status without failures */
  const char *ok_has; /* the body without failures contains this */
};

static const char *err_excerpt(const struct resp *r) {
  return r->body ? r->body : "(no body)";
}

/* Runs c once with allocation n failing (0: none); checks the answer. */
static void run_once(const struct path_case *c, long n, int *n_ok, int *n_err) {
  chaos_arm(n ? n : LONG_MAX);
  struct resp r = http(c->method, c->path, c->body);
  chaos_disarm();
  if (r.status == c->ok_status && strstr(r.body, c->ok_has)) {
    (*n_ok)++;
  } else if (r.status == 0) {
    /* No memory for the connection itself: the client is dropped (what
     * else could a server do), and the health check below shows the
     * server goes on. Dropped, not left waiting: */
    cr_expect_neq(r.curl_rc, CURLE_OPERATION_TIMEDOUT,
                  "%s %s, allocation %ld failed: no answer within %ld s", c->method, c->path, n,
                  harness_timeout_s);
    (*n_err)++;
  } else {
    /* Anything else must be a clear error: an error status, and a JSON
     * answer must be {"error": "<a reason>"}; a 5xx may be the server's
     * fixed plain-text answer when not even that JSON could be built. */
    cr_expect_geq(r.status, 400, "%s %s, allocation %ld failed: status %ld, body %s", c->method,
                  c->path, n, r.status, err_excerpt(&r));
    json_error_t e;
    json_t *v = json_loads(r.body, 0, &e);
    const char *msg = json_string_value(json_object_get(v, "error"));
    if (v || r.status < 500)
      cr_expect(msg && *msg, "%s %s, allocation %ld failed: no {\"error\"} in %s", c->method,
                c->path, n, err_excerpt(&r));
    json_decref(v);
    (*n_err)++;
  }
  free(r.body);
  /* The server still answers. */
  struct resp h = http("GET", "/", NULL);
  cr_assert_eq(h.status, 200, "%s %s, allocation %ld failed: the server stopped answering",
               c->method, c->path, n);
  free(h.body);
}

/* n = 1..40, then about 1.25x apart up to the allocations of a good run. */
static void sweep(const struct path_case *c) {
  chaos_arm(LONG_MAX);
  struct resp r = http(c->method, c->path, c->body);
  long total = chaos_disarm();
  cr_assert_eq(r.status, c->ok_status, "%s %s: %ld %s", c->method, c->path, r.status, r.body);
  cr_assert(strstr(r.body, c->ok_has), "%s %s: %s", c->method, c->path, r.body);
  free(r.body);
  int n_ok = 0, n_err = 0, runs = 0;
  for (long n = 1; n <= total; n = n < 40 ? n + 1 : n + n / 4, runs++)
    run_once(c, n, &n_ok, &n_err);
  fprintf(stderr,
          "chaos: %s %s: %ld allocations, %d runs with one failing: %d answered, %d errors\n",
          c->method, c->path, total, runs, n_ok, n_err);
  cr_expect_gt(n_err, 0, "%s %s: no failed allocation was ever noticed", c->method, c->path);
}

TestSuite(chaos, .init = chaos_setup, .fini = chaos_teardown, .timeout = 600);

Test(chaos, bad_json_and_validation) {
  NEED_SHARED();
  static const struct path_case cases[] = {
      {"POST", "/api/generate", "{\"model\":", 400, "\"error\""},
      {"POST", "/api/generate", "{\"model\":\"\",\"prompt\":\"x\"}", 404, "\"error\""},
      {"POST", "/api/chat", "{\"model\":\"stories\",\"messages\":[{\"role\":7}]}", 400,
       "\"error\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    sweep(&cases[i]);
}

Test(chaos, tags_and_show) {
  NEED_SHARED();
  static const struct path_case cases[] = {
      {"GET", "/api/tags", NULL, 200, "\"stories:latest\""},
      {"POST", "/api/show", "{\"model\":\"stories\"}", 200, "\"modelfile\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    sweep(&cases[i]);
}

/* Store writes (issue 13): a create from a model (pins, layers, manifest)
 * and an embed batch (one queue place, inputs submitted as others finish). */
Test(chaos, create_and_embed) {
  NEED_SHARED();
  static const struct path_case cases[] = {
      {"POST", "/api/create", "{\"model\":\"chaos\",\"from\":\"stories\",\"system\":\"s\"}", 200,
       "\"success\""},
      {"POST", "/api/embed", "{\"model\":\"stories\",\"input\":[\"a\",\"b\",\"c\"]}", 200,
       "\"embeddings\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    sweep(&cases[i]);
}

Test(chaos, generate_with_model_load) {
  NEED_SHARED();
  /* keep_alive 0: every run loads the model again, so the load's
   * allocations are in the sweep too. */
  static const struct path_case c = {
      "POST", "/api/generate", "{\"model\":\"stories\",\"prompt\":\"Once upon\",\"keep_alive\":0}",
      200, "\"done\":true"};
  sweep(&c);
}

/* cll_model_load on this thread: every failing allocation gives an error
 * (with a message) and no model, never a crash or a leak. */
Test(chaos, model_load) {
  NEED_SHARED();
  char path[1200];
  snprintf(path, sizeof(path), "%s/models/stories260K-f32.gguf", shared_dir());
  atomic_store(&chaos_spare, false); /* the loads run on this thread */
  chaos_arm(LONG_MAX);
  cll_model *m = NULL;
  cll_err err = {0};
  cr_assert_eq(cll_model_load(path, &m, &err), 0, "%s", err.msg);
  long total = chaos_disarm();
  cll_model_release(m);
  int n_err = 0, runs = 0;
  for (long n = 1; n <= total; n = n < 40 ? n + 1 : n + n / 4, runs++) {
    m = NULL;
    memset(&err, 0, sizeof(err));
    chaos_arm(n);
    int rc = cll_model_load(path, &m, &err);
    chaos_disarm();
    if (rc == 0) {
      cr_expect_not_null(m);
      cll_model_release(m);
      continue;
    }
    n_err++;
    cr_expect_null(m, "allocation %ld: error %d but a model", n, rc);
    cr_expect(err.msg[0] != 0, "allocation %ld: error %d (%s) without a message", n, rc,
              cll_strerror(rc));
  }
  fprintf(stderr, "chaos: model load: %ld allocations, %d runs with one failing, %d errors\n",
          total, runs, n_err);
  cr_expect_gt(n_err, 0);
}
