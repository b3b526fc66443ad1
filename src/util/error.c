/* error.c — the one error table (see include/cllama/common.h). */
#include "cllama/common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

const char *cll_strerror(int code) {
  switch (code) {
#define CLL__ERR_CASE(name, value, msg)                                                            \
  case name:                                                                                       \
    return msg;
    CLL_ERRNO_MAP(CLL__ERR_CASE)
#undef CLL__ERR_CASE
  case 0:
    return "success";
  default:
    return "unknown error";
  }
}

int cll_err_set(cll_err *err, int code, const char *fmt, ...) {
  if (err == NULL)
    return code;
  err->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
  va_end(ap);
  return code;
}

int cll_err_from_errno(int errnum) {
  switch (errnum) {
  case 0:
    return 0;
  case ENOENT:
  case ENOTDIR:
    return CLL_ENOENT;
  case ENOMEM:
    return CLL_ENOMEM;
  case EEXIST:
    return CLL_EEXIST;
  case ENOSPC:
  case EDQUOT:
    return CLL_ENOSPC;
  case EACCES:
  case EPERM:
  case EROFS:
    return CLL_EACCES;
  case EINVAL:
    return CLL_EINVAL;
  case EBUSY:
    return CLL_EBUSY;
  case ETIMEDOUT:
    return CLL_ETIMEDOUT;
  case EFBIG:
  case E2BIG:
    return CLL_ETOOBIG;
  default:
    return CLL_EIO;
  }
}
