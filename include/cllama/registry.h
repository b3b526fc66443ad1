/* registry.h — the client side of the Ollama registry protocol: pulls a
 * model (manifest, then every blob) into the store (OLLAMA_API.md §4).
 *
 * Owns: the pulls in progress, their downloads, the ed25519 identity key
 * used for Ollama's signed-token auth (created on first use as
 * <key_dir>/id_ed25519 in OpenSSH format, with id_ed25519.pub beside it).
 *
 * Threads: every function runs on the loop thread given to
 * cll_registry_new(); events are delivered there too. Nothing blocks the
 * loop: network I/O goes through libcurl's multi socket interface on the loop
 * (curl_uv.h), file writes through uv_fs, hashing and the small store
 * reads/writes through uv_queue_work.
 *
 * Sharing: pulls of the same name share one job, and every blob is
 * downloaded at most once at a time whatever pulls want it. A job runs while
 * at least one waiter is attached; when the last one cancels, transfers stop
 * and the on-disk part state lets a later pull resume where this one
 * stopped. */
#ifndef CLLAMA_REGISTRY_H
#define CLLAMA_REGISTRY_H

#include "cllama/common.h"
#include "cllama/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct cll_registry cll_registry;

/* Options; start from cll_registry_opts_defaults() (Ollama's values). */
typedef struct cll_registry_opts {
  int64_t part_min_bytes;    /* a blob is split into total/max_parts bytes per part, */
  int64_t part_max_bytes;    /* clamped to [min, max] (100 MB, 1000 MB) */
  int max_parts;             /* 16; also the number of parts downloaded at once */
  uint64_t stall_ms;         /* a part with no bytes for this long is restarted (30 s) */
  int max_retries;           /* attempts per part before the pull fails (6) */
  uint64_t retry_base_ms;    /* first back-off; doubles each attempt (1 s) */
  uint64_t progress_ms;      /* progress event period (60 ms) */
  size_t write_buffer_bytes; /* per part; a part whose writes lag is paused (1 MiB) */
  int64_t push_part_bytes;   /* a pushed blob is uploaded in parts of this size (100 MB) */
  bool prune;                /* remove layers a replaced manifest no longer uses (true) */
  char key_dir[1024];        /* where id_ed25519 lives ("$HOME/.ollama") */
  char user_agent[128];      /* "ollama/<version> (amd64 linux) Go/go1.24.0"-like */
} cll_registry_opts;

/* Ollama's defaults (no environment read: the API layer applies
 * CLLAMA_PULL_PART_BYTES, CLLAMA_PULL_PARTS, CLLAMA_PULL_STALL_MS,
 * CLLAMA_PULL_RETRY_MS, OLLAMA_NOPRUNE and HOME from cll_config). */
void cll_registry_opts_defaults(cll_registry_opts *opts);

/* *out is new; release with cll_registry_close(). */
int cll_registry_new(uv_loop_t *loop, cll_store *store, const cll_registry_opts *opts,
                     cll_registry **out, cll_err *err);

/* Cancels every pull (their waiters get a final "error" event), stops the
 * transfers (part state stays on disk) and frees the registry once the
 * loop has closed its handles. NULL is a no-op. */
void cll_registry_close(cll_registry *reg);

/* One progress event, borrowed for the duration of the callback. Fields
 * that are 0/NULL are omitted in Ollama's JSON (omitempty). */
typedef struct cll_pull_event {
  const char *status; /* "pulling manifest", "pulling 0123456789ab", ...; NULL on error */
  const char *digest; /* "sha256:<hex>" or NULL */
  int64_t total;      /* bytes */
  int64_t completed;  /* bytes */
  const char *error;  /* the failure message, only on the final event */
  bool done;          /* the last event: "success" or an error */
} cll_pull_event;

typedef void (*cll_pull_event_fn)(const cll_pull_event *ev, void *arg);
typedef struct cll_pull_waiter cll_pull_waiter;

/* Starts pulling name (or joins the pull of it already running). fn gets
 * every event from now on, ending with one whose done is true; after that
 * the waiter is freed and fn never runs again. fn must not call
 * cll_registry_pull_cancel. Returns 0 and sets *out (borrowed, valid until
 * the done event or cancel), or an error (then fn never runs). */
int cll_registry_pull(cll_registry *reg, const cll_name *name, bool insecure, cll_pull_event_fn fn,
                      void *arg, cll_pull_waiter **out, cll_err *err);

/* Detaches a waiter (its client has gone): fn never runs again. When no
 * waiter is left the pull stops. */
void cll_registry_pull_cancel(cll_pull_waiter *w);

/* Number of pulls (jobs) running; for tests. */
int cll_registry_active(const cll_registry *reg);

/* ------------------------------------------------------------ auth helpers
 * Exposed for tests; they block (file I/O), so call them off the loop. */

/* Loads <key_dir>/id_ed25519, creating the key pair (0600 private, 0644
 * public, directory 0755) when missing, and signs data with it. Writes the
 * Ollama Authorization value "<ssh public key base64>:<signature base64>"
 * into out. */
int cll_registry_sign(const char *key_dir, const void *data, size_t len, char *out, size_t size,
                      cll_err *err);

/* Builds the string Ollama signs for a token request:
 * "GET,<url>,<base64 of hex sha256 of the empty body>". */
int cll_registry_sign_input(const char *url, char *out, size_t size);

#endif
