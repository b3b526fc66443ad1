/* blobs.c — the store root, paths, and atomic writes of blobs and
 * manifests. Every write goes to a temporary file in the same directory,
 * is fsync'ed and renamed over the target, so a reader sees either the old
 * file or the whole new one. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cll__pathf(char *buf, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int r = vsnprintf(buf, CLL__PATH_MAX, fmt, ap);
  va_end(ap);
  return r < 0 || r >= CLL__PATH_MAX ? CLL_ETOOBIG : 0;
}

int cll__mkdirs(const char *path) {
  char buf[CLL__PATH_MAX];
  size_t n = strlen(path);
  if (n >= sizeof(buf))
    return CLL_ETOOBIG;
  memcpy(buf, path, n + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return cll_err_from_errno(errno);
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return cll_err_from_errno(errno);
  return 0;
}

int cll_store_open(const char *root, cll_store **out, cll_err *err) {
  *out = NULL;
  if (root == NULL || root[0] == '\0')
    return cll_err_set(err, CLL_EINVAL, "empty model store path");
  if (strlen(root) > CLL__PATH_MAX - 512)
    return cll_err_set(err, CLL_ETOOBIG, "model store path too long");
  cll_store *st = calloc(1, sizeof(*st));
  if (st == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  snprintf(st->root, sizeof(st->root), "%s", root);
  size_t n = strlen(st->root);
  while (n > 1 && st->root[n - 1] == '/')
    st->root[--n] = '\0';
  char path[CLL__PATH_MAX];
  const char *sub[] = {"manifests", "blobs"};
  for (size_t i = 0; i < 2; i++) {
    cll__pathf(path, "%s/%s", st->root, sub[i]);
    int rc = cll__mkdirs(path);
    if (rc != 0) {
      free(st);
      return cll_err_set(err, rc, "cannot create %s: %s", path, cll_strerror(rc));
    }
  }
  pthread_mutex_init(&st->gc_lock, NULL);
  *out = st;
  return 0;
}

void cll_store_close(cll_store *st) {
  if (st == NULL)
    return;
  pthread_mutex_destroy(&st->gc_lock);
  free(st->pins);
  free(st);
}

const char *cll_store_root(const cll_store *st) {
  return st->root;
}

int cll_store_manifest_path(const cll_store *st, const cll_name *n, char *buf, size_t size) {
  int r =
      snprintf(buf, size, "%s/manifests/%s/%s/%s/%s", st->root, n->host, n->ns, n->model, n->tag);
  return r < 0 || (size_t)r >= size ? CLL_ETOOBIG : 0;
}

static int blob_path(const cll_store *st, const char *digest, const char *suffix, char *buf,
                     size_t size) {
  char hex[65];
  if (cll_digest_parse(digest, hex) != 0)
    return CLL_EINVAL;
  int r = snprintf(buf, size, "%s/blobs/sha256-%s%s", st->root, hex, suffix);
  return r < 0 || (size_t)r >= size ? CLL_ETOOBIG : 0;
}

int cll_store_blob_path(const cll_store *st, const char *digest, char *buf, size_t size) {
  return blob_path(st, digest, "", buf, size);
}

int cll_store_blob_partial_path(const cll_store *st, const char *digest, char *buf, size_t size) {
  return blob_path(st, digest, "-partial", buf, size);
}

bool cll_store_blob_exists(const cll_store *st, const char *digest, int64_t size) {
  char path[CLL__PATH_MAX];
  struct stat sb;
  if (cll_store_blob_path(st, digest, path, sizeof(path)) != 0 || stat(path, &sb) != 0 ||
      !S_ISREG(sb.st_mode))
    return false;
  return size < 0 || sb.st_size == size;
}

int cll__write_atomic(const char *path, const void *data, size_t len, cll_err *err) {
  char tmp[CLL__PATH_MAX];
  if (cll__pathf(tmp, "%s.tmp-XXXXXX", path) != 0)
    return cll_err_set(err, CLL_ETOOBIG, "path too long");
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    return cll_err_set(err, cll_err_from_errno(e), "cannot write to the model store: %s",
                       strerror(e));
  }
  const char *p = data;
  size_t left = len;
  while (left) {
    ssize_t w = write(fd, p, left);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      unlink(tmp);
      return cll_err_set(err, cll_err_from_errno(e), "write to the model store: %s", strerror(e));
    }
    p += w;
    left -= (size_t)w;
  }
  if (fchmod(fd, 0644) != 0 || fsync(fd) != 0 || close(fd) != 0) {
    int e = errno;
    unlink(tmp);
    return cll_err_set(err, cll_err_from_errno(e), "sync to the model store: %s", strerror(e));
  }
  if (rename(tmp, path) != 0) {
    int e = errno;
    unlink(tmp);
    return cll_err_set(err, cll_err_from_errno(e), "rename into the model store: %s", strerror(e));
  }
  return 0;
}

int cll_store_write_blob(const cll_store *st, const char *digest, const void *data, size_t len,
                         cll_err *err) {
  char hex[65], got[65], path[CLL__PATH_MAX];
  if (cll_digest_parse(digest, hex) != 0)
    return cll_err_set(err, CLL_EINVAL, "invalid digest \"%s\"", digest);
  cll_sha256_hex(data, len, got);
  if (strcmp(hex, got) != 0)
    return cll_err_set(err, CLL_EDIGEST, "digest mismatch: expected sha256:%s, got sha256:%s", hex,
                       got);
  int rc = cll_store_blob_path(st, digest, path, sizeof(path));
  if (rc != 0)
    return cll_err_set(err, rc, "blob path too long");
  return cll__write_atomic(path, data, len, err);
}

int cll_store_blob_commit(const cll_store *st, const char *digest, int64_t size, cll_err *err) {
  char from[CLL__PATH_MAX], to[CLL__PATH_MAX];
  if (cll_store_blob_partial_path(st, digest, from, sizeof(from)) != 0 ||
      cll_store_blob_path(st, digest, to, sizeof(to)) != 0)
    return cll_err_set(err, CLL_EINVAL, "invalid digest \"%s\"", digest);
  struct stat sb;
  if (lstat(from, &sb) != 0) {
    int e = errno;
    return cll_err_set(err, cll_err_from_errno(e), "%s: %s", cll__store_rel(st, from), strerror(e));
  }
  if (!S_ISREG(sb.st_mode) || sb.st_nlink != 1) {
    /* Never a link to a file outside the store. */
    unlink(from);
    return cll_err_set(err, CLL_EIO, "%s is not a plain file of the store; removed",
                       cll__store_rel(st, from));
  }
  if (size >= 0 && sb.st_size != size)
    return cll_err_set(err, CLL_EDIGEST, "%s: size %lld, expected %lld", cll__store_rel(st, from),
                       (long long)sb.st_size, (long long)size);
  if (rename(from, to) != 0) {
    int e = errno;
    return cll_err_set(err, cll_err_from_errno(e), "rename %s: %s", cll__store_rel(st, from),
                       strerror(e));
  }
  return 0;
}
