/* store_internal.h — what names.c, blobs.c and manifest.c share. */
#ifndef CLLAMA_STORE_INTERNAL_H
#define CLLAMA_STORE_INTERNAL_H

#include "cllama/store.h"

#define CLL__PATH_MAX 4096

struct cll_store {
  char root[CLL__PATH_MAX]; /* no trailing slash */
};

/* snprintf into a CLL__PATH_MAX buffer; CLL_ETOOBIG when it does not fit. */
int cll__pathf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* mkdir -p. 0 or a CLL_E* code. */
int cll__mkdirs(const char *path);
/* Temporary file + fsync + rename. */
int cll__write_atomic(const char *path, const void *data, size_t len, cll_err *err);

#endif
