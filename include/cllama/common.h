/* common.h — error codes and the error-message struct shared by every module.
 *
 * Every cllama function that can fail returns 0 or a negative CLL_E* code
 * from the table below. Where a person needs the reason (a model that fails
 * to load, a request that fails validation, a download that fails), the
 * function also fills a caller-provided cll_err. Any thread may call these;
 * nothing here allocates or blocks. */
#ifndef CLLAMA_COMMON_H
#define CLLAMA_COMMON_H

#include <stddef.h>

/* X(name, value, message). Values are stable: they may be logged. */
#define CLL_ERRNO_MAP(X)                                                                           \
  X(CLL_EINVAL, -1, "invalid argument")                                                            \
  X(CLL_ENOMEM, -2, "out of memory")                                                               \
  X(CLL_EIO, -3, "input/output error")                                                             \
  X(CLL_ENOENT, -4, "not found")                                                                   \
  X(CLL_EFORMAT, -5, "malformed file")                                                             \
  X(CLL_EUNSUPPORTED, -6, "not supported")                                                         \
  X(CLL_ERANGE, -7, "value out of range")                                                          \
  X(CLL_EEXIST, -8, "already exists")                                                              \
  X(CLL_EBUSY, -9, "busy")                                                                         \
  X(CLL_ECANCELED, -10, "cancelled")                                                               \
  X(CLL_ETIMEDOUT, -11, "timed out")                                                               \
  X(CLL_ENOSPC, -12, "no space left on device")                                                    \
  X(CLL_EACCES, -13, "permission denied")                                                          \
  X(CLL_EPROTO, -14, "protocol error")                                                             \
  X(CLL_ETOOBIG, -15, "too large")                                                                 \
  X(CLL_EDIGEST, -16, "digest mismatch")                                                           \
  X(CLL_EFULL, -17, "queue full")                                                                  \
  X(CLL_ENET, -18, "network error")                                                                \
  X(CLL_EPARSE, -19, "parse error")

enum cll_errno {
#define CLL__ERR_ENUM(name, value, msg) name = value,
  CLL_ERRNO_MAP(CLL__ERR_ENUM)
#undef CLL__ERR_ENUM
};

/* Returns a static, borrowed string for a CLL_E* code (or "unknown error"). */
const char *cll_strerror(int code);

/* A human-readable reason, filled by functions that take one. Needs no
 * allocation; an empty msg means no detail was recorded. */
typedef struct cll_err {
  int code;      /* the CLL_E* code that was returned */
  char msg[512]; /* NUL-terminated, UTF-8 */
} cll_err;

/* Sets err->code and formats err->msg (printf-style); err may be NULL.
 * Returns code, so callers can write `return cll_err_set(err, CLL_EINVAL, ...)`. */
int cll_err_set(cll_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Maps a positive errno value from the C library to a CLL_E* code. */
int cll_err_from_errno(int errnum);

#define CLL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
