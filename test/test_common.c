/* test_common.c — the error table (include/cllama/common.h). */
#include "cllama/common.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(common, strerror_covers_every_code) {
#define CHECK(name, value, msg) cr_expect_str_eq(cll_strerror(name), msg);
  CLL_ERRNO_MAP(CHECK)
#undef CHECK
  cr_expect_str_eq(cll_strerror(12345), "unknown error");
}

Test(common, err_set_formats_and_returns_code) {
  cll_err e;
  cr_expect_eq(cll_err_set(&e, CLL_EFORMAT, "bad %s at %d", "magic", 4), CLL_EFORMAT);
  cr_expect_eq(e.code, CLL_EFORMAT);
  cr_expect_str_eq(e.msg, "bad magic at 4");
  cr_expect_eq(cll_err_set(NULL, CLL_EIO, "x"), CLL_EIO);
}

Test(common, errno_mapping) {
  cr_expect_eq(cll_err_from_errno(ENOENT), CLL_ENOENT);
  cr_expect_eq(cll_err_from_errno(ENOSPC), CLL_ENOSPC);
  cr_expect_eq(cll_err_from_errno(EACCES), CLL_EACCES);
}
