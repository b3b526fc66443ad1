/* store_internal.h — what names.c, blobs.c and manifest.c share. */
#ifndef CLLAMA_STORE_INTERNAL_H
#define CLLAMA_STORE_INTERNAL_H

#include "cllama/store.h"

#include <pthread.h>

#define CLL__PATH_MAX 4096
/* Temporary files of cll_blob_writer in blobs/ (removed at start-up). */
#define CLL__TMP_PREFIX ".tmp-blob-"

struct cll__pin {
  char hex[65];
  int count;
};

struct cll_store {
  char root[CLL__PATH_MAX]; /* no trailing slash */
  /* Blob collection (delete, a pull's prune) and the pin set. */
  pthread_mutex_t gc_lock;
  struct cll__pin *pins;
  size_t n_pins, cap_pins;
};

/* path shown relative to the store root (error messages never name
 * absolute server paths). */
const char *cll__store_rel(const cll_store *st, const char *path);
/* With gc_lock held. */
bool cll__store_pinned_locked(const cll_store *st, const char *hex);

/* snprintf into a CLL__PATH_MAX buffer; CLL_ETOOBIG when it does not fit. */
int cll__pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* mkdir -p. 0 or a CLL_E* code. */
int cll__mkdirs(const char *path);
/* Temporary file + fsync + rename. */
int cll__write_atomic(const char *path, const void *data, size_t len, cll_err *err);

#endif
