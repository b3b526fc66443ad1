/* serve.c — `cllama serve`: read the configuration, open the model store,
 * start the HTTP server on one libuv loop, and stop cleanly on SIGINT or
 * SIGTERM (stop accepting, let open responses end, free everything). */
#include "cllama/api.h"
#include "cllama/cli.h"
#include "cllama/config.h"
#include "cllama/server.h"
#include "cllama/store.h"
#include "cllama/version.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

struct serve {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  cll_server *server;
  cll_api *api;
  cll_runners *runners;
  int stopping;
};

static void usage(FILE *out) {
  fprintf(out, "Usage: cllama serve\n\nStart the Ollama-compatible server.\n\n");
  cll_config_print_help(out);
}

static void on_runners_closed(void *ud) {
  struct serve *s = ud;
  s->runners = NULL;
}

static void on_server_closed(void *ud) {
  struct serve *s = ud;
  s->server = NULL;
  cll_api_close_all(s->api);
  uv_close((uv_handle_t *)&s->sigint, NULL);
  uv_close((uv_handle_t *)&s->sigterm, NULL);
  /* Every request has been answered: unload the models. */
  cll_runners_close(s->runners, on_runners_closed, s);
}

static void on_signal(uv_signal_t *h, int signum) {
  struct serve *s = h->data;
  if (s->stopping)
    return;
  s->stopping = 1;
  fprintf(stderr, "cllama: %s received, shutting down\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
  cll_server_close(s->server, on_server_closed, s);
}

static int write_port_file(const char *path, int port) {
  char tmp[4200];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *f = fopen(tmp, "w");
  if (f == NULL)
    return -1;
  fprintf(f, "%d\n", port);
  if (fclose(f) != 0)
    return -1;
  return rename(tmp, path);
}

int cll_cli_serve(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    }
    fprintf(stderr, "cllama serve: unknown argument \"%s\"\n\n", argv[i]);
    usage(stderr);
    return 2;
  }
  static cll_config cfg; /* large, and handlers borrow it for the whole run */
  cll_err err = {0};
  if (cll_config_from_env(&cfg, &err) != 0) {
    fprintf(stderr, "cllama serve: %s\n", err.msg);
    return 1;
  }
  cll_config_log(&cfg, stderr);
  signal(SIGPIPE, SIG_IGN);
  /* Model loads, engine steps (one per loaded model), quantizing and store
   * work all run on libuv's pool: give it room so a few long jobs never
   * delay the small ones (/api/tags). Must be set before the first job. */
  setenv("UV_THREADPOOL_SIZE", "16", 0);
  /* Each client is a file descriptor: raise the soft limit to the hard one
   * (as Go's runtime does for Ollama), so thousands of idle keep-alive
   * connections do not hit the usual soft limit of 1024. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  cll_store *store = NULL;
  if (cll_store_open(cfg.models, &store, &err) != 0) {
    fprintf(stderr, "cllama serve: model store %s: %s\n", cfg.models, err.msg);
    return 1;
  }
  int cleaned = 0;
  if (cll_store_clean(store, &cleaned) == 0 && cleaned > 0) /* what a crashed run left */
    fprintf(stderr, "cllama serve: removed %d stale temporary file(s) from the model store\n",
            cleaned);
  struct serve s;
  memset(&s, 0, sizeof(s));
  uv_loop_init(&s.loop);

  cll_server_opts opts;
  cll_server_opts_defaults(&opts);
  opts.host = cfg.host;
  opts.port = cfg.port;
  opts.origins = cfg.origins;
  opts.n_origins = (size_t)cfg.n_origins;
  opts.log_requests = cfg.debug > 0;
  /* Optional access control and TLS (README "Access control"), validated
   * by cll_config_from_env. */
  opts.api_keys = cfg.api_keys;
  opts.n_api_keys = (size_t)cfg.n_api_keys;
  opts.tls_cert_file = cfg.tls_cert[0] ? cfg.tls_cert : NULL;
  opts.tls_key_file = cfg.tls_key[0] ? cfg.tls_key : NULL;
  int rc = cll_server_new(&s.loop, &opts, &s.server, &err);
  if (rc != 0) {
    fprintf(stderr, "cllama serve: %s\n", err.msg);
    uv_run(&s.loop, UV_RUN_DEFAULT); /* let the failed server's handles close */
    uv_loop_close(&s.loop);
    cll_store_close(store);
    return 1;
  }
  struct cll_runners_params rp = cll_api_runners_params(&cfg);
  cll_runners_new(&s.loop, &rp, &s.runners);
  cll_api api = {
      .loop = &s.loop, .server = s.server, .store = store, .cfg = &cfg, .runners = s.runners};
  s.api = &api;
  rc = cll_api_register_all(&api);
  if (rc != 0) {
    fprintf(stderr, "cllama serve: registering routes: %s\n", cll_strerror(rc));
    cll_server_close(s.server, NULL, NULL);
    cll_api_close_all(&api);
    cll_runners_close(s.runners, NULL, NULL);
    uv_run(&s.loop, UV_RUN_DEFAULT);
    uv_loop_close(&s.loop);
    cll_store_close(store);
    return 1;
  }
  uv_signal_init(&s.loop, &s.sigint);
  uv_signal_init(&s.loop, &s.sigterm);
  s.sigint.data = s.sigterm.data = &s;
  uv_signal_start(&s.sigint, on_signal, SIGINT);
  uv_signal_start(&s.sigterm, on_signal, SIGTERM);

  int port = cll_server_port(s.server);
  if (cfg.port_file[0] && write_port_file(cfg.port_file, port) != 0)
    fprintf(stderr, "cllama serve: cannot write CLLAMA_PORT_FILE %s\n", cfg.port_file);
  fprintf(stderr, "cllama %s listening on %s:%d (models in %s)\n", CLLAMA_VERSION, cfg.host, port,
          cfg.models);

  uv_run(&s.loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(&s.loop);
  if (rc != 0)
    fprintf(stderr, "cllama serve: loop closed with handles open: %s\n", uv_strerror(rc));
  cll_store_close(store);
  fprintf(stderr, "cllama: stopped\n");
  return rc == 0 ? 0 : 1;
}
