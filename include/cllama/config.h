/* config.h — server configuration from the environment, with Ollama's
 * variable names and defaults (OLLAMA_API.md §7.1) plus cllama's own
 * CLLAMA_* variables. Unlike Ollama, an invalid value is an error at
 * start-up, never a silent fallback.
 *
 * Threads: cll_config_from_env() reads the process environment; call it
 * once from the main thread before the loop starts. The result is then
 * read-only and any thread may read it. Nothing blocks. Outside
 * src/kernels/ (whose variables come through cll_config_kernels_from_env
 * below) no other code reads the environment. */
#ifndef CLLAMA_CONFIG_H
#define CLLAMA_CONFIG_H

#include "cllama/common.h"
#include "cllama/kernels.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define CLL_CONFIG_MAX_ORIGINS 64
#define CLL_CONFIG_MAX_API_KEYS 64

typedef struct cll_config {
  char host[256];                              /* OLLAMA_HOST bind address, e.g. "127.0.0.1" */
  int port;                                    /* OLLAMA_HOST port (11434; 0 = any free port) */
  char models[4096];                           /* OLLAMA_MODELS store root (~/.ollama/models) */
  char origins_raw[4096];                      /* OLLAMA_ORIGINS as given */
  const char *origins[CLL_CONFIG_MAX_ORIGINS]; /* split, trimmed; point into origins_raw */
  int n_origins;
  int64_t keep_alive_ns; /* OLLAMA_KEEP_ALIVE: 5m; negative = forever; 0 = unload at once */
  int num_parallel;      /* OLLAMA_NUM_PARALLEL: 0 = auto from memory (1..16) */
  int max_queue;         /* OLLAMA_MAX_QUEUE: 512 */
  int max_loaded_models; /* OLLAMA_MAX_LOADED_MODELS: 0 = auto (3) */
  int debug;             /* OLLAMA_DEBUG: 0 info, 1 debug, 2 trace */
  bool stream_default;   /* CLLAMA_STREAM_DEFAULT: false (true = Ollama's default) */
  char port_file[4096];  /* CLLAMA_PORT_FILE: write the bound port here ("" = no) */
  int context_length;    /* OLLAMA_CONTEXT_LENGTH: default num_ctx (0 = the runners' own) */
  bool noprune;          /* OLLAMA_NOPRUNE: keep layers a replaced manifest no longer uses */
  char home[4096];       /* HOME, else passwd's home, else ".": keys, store, "~" */
  bool create_paths_set; /* CLLAMA_CREATE_PATHS is set (set empty: creating from a path is refused)
                          */
  char create_paths[4096]; /* CLLAMA_CREATE_PATHS: ':'-separated directories creates may read */
  int64_t pull_part_bytes; /* CLLAMA_PULL_PART_BYTES: fixed part size (0 = Ollama's sizing) */
  int64_t push_part_bytes; /* CLLAMA_PUSH_PART_BYTES: push part size (0 = 100 MB) */
  int pull_parts;          /* CLLAMA_PULL_PARTS: parts at once (0 = 16) */
  int pull_stall_ms;       /* CLLAMA_PULL_STALL_MS: restart a silent part after (0 = 30 s) */
  int pull_retry_ms;       /* CLLAMA_PULL_RETRY_MS: first retry back-off (0 = 1 s) */
  char api_keys_raw[4096]; /* CLLAMA_API_KEYS as given, split in place */
  const char *api_keys[CLL_CONFIG_MAX_API_KEYS]; /* each 16+ chars; point into api_keys_raw */
  int n_api_keys;                                /* 0 = no access control */
  char tls_cert[4096]; /* CLLAMA_TLS_CERT: readable PEM chain ("" = plain HTTP) */
  char tls_key[4096];  /* CLLAMA_TLS_KEY: readable PEM key; set exactly when tls_cert is */
} cll_config;

/* What the client commands (run, list, pull, show, ...) read: where the
 * server is and how to authenticate. Separate from cll_config so that a
 * client never fails on a server-only variable. */
typedef struct cll_client_config {
  char base_url[400]; /* from OLLAMA_HOST: "http://127.0.0.1:11434" (scheme kept; 0.0.0.0 and
                         :: become the loopback address) */
  char api_key[512];  /* OLLAMA_API_KEY, sent as "Authorization: Bearer" ("" = none) */
  char home[4096];    /* HOME, else the passwd home, else "": the REPL's ~/.ollama/history */
  char ca_file[4096]; /* SSL_CERT_FILE: CA bundle for an https:// OLLAMA_HOST, as Go's clients
                         read it ("" = the system store) */
} cll_client_config;

/* Fills cfg with the defaults (no environment read). */
void cll_config_defaults(cll_config *cfg);

/* Defaults, then every variable that is set. Returns 0, or CLL_EINVAL with
 * err naming the variable, the value and what is expected. */
int cll_config_from_env(cll_config *cfg, cll_err *err);

/* The client commands' variables (OLLAMA_HOST, OLLAMA_API_KEY, HOME,
 * SSL_CERT_FILE).
 * Returns 0, or CLL_EINVAL with err naming the variable. */
int cll_config_client_from_env(cll_client_config *cc, cll_err *err);

/* The kernels' variables (CLLAMA_KERNELS, CLLAMA_REPACK and the benchmark
 * thresholds CLLAMA_GEMM_MIN_TOK, CLLAMA_INT8_MIN_TOK,
 * CLLAMA_GEMM_TILE_ROWS), for cll_kernels_init. 0 or CLL_EINVAL as
 * cll_config_from_env (a table name is checked by cll_kernels_init).
 * kc->isa points at static storage: call once, from the main thread. */
int cll_config_kernels_from_env(cll_kernels_config *kc, cll_err *err);

/* Parses a Go-style duration ("5m", "1h30m", "300ms", "-1s") or a bare
 * integer (seconds) into nanoseconds. 0 or CLL_EINVAL. */
int cll_config_parse_duration(const char *s, int64_t *ns);

/* Prints the variables, their defaults and meanings (for `serve --help`). */
void cll_config_print_help(FILE *out);

/* Prints the effective configuration on one line ("server config ..."). */
void cll_config_log(const cll_config *cfg, FILE *out);

#endif
