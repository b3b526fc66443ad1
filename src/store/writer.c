/* writer.c — new blobs: every large write into the store goes to a
 * temporary file this process created (O_CREAT|O_EXCL, so never a name that
 * may be a link to someone else's file), is hashed as it is written,
 * fsync'ed and renamed into place only when the digest is right. Also the
 * pin set that keeps blob collection away from blobs an in-flight create or
 * pull is about to name, and the start-up clean-up of what a crashed run
 * left behind. */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char *cll__store_rel(const cll_store *st, const char *path) {
  size_t n = strlen(st->root);
  if (strncmp(path, st->root, n) == 0 && path[n] == '/')
    return path + n + 1;
  const char *slash = strrchr(path, '/');
  return slash ? slash + 1 : path;
}

struct cll_blob_writer {
  const cll_store *st;
  int fd;
  char tmp[CLL__PATH_MAX];
  EVP_MD_CTX *md;
  int64_t size;
};

int cll_blob_writer_open(const cll_store *st, cll_blob_writer **out, cll_err *err) {
  *out = NULL;
  cll_blob_writer *w = calloc(1, sizeof(*w));
  if (w == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  w->st = st;
  if (cll__pathf(w->tmp, "%s/blobs/" CLL__TMP_PREFIX "XXXXXX", st->root) != 0) {
    free(w);
    return cll_err_set(err, CLL_ETOOBIG, "path too long");
  }
  w->fd = mkostemp(w->tmp, O_CLOEXEC); /* O_CREAT|O_EXCL, mode 0600 */
  if (w->fd < 0) {
    int e = errno;
    free(w);
    return cll_err_set(err, cll_err_from_errno(e), "cannot create a file in the model store: %s",
                       strerror(e));
  }
  w->md = EVP_MD_CTX_new();
  if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
    cll_blob_writer_abort(w);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  *out = w;
  return 0;
}

const char *cll_blob_writer_path(const cll_blob_writer *w) {
  return w->tmp;
}

int cll_blob_writer_write(cll_blob_writer *w, const void *data, size_t len, cll_err *err) {
  EVP_DigestUpdate(w->md, data, len);
  const char *p = data;
  while (len) {
    ssize_t n = write(w->fd, p, len);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      int e = n < 0 ? errno : ENOSPC;
      return cll_err_set(err, cll_err_from_errno(e), "write to the model store: %s", strerror(e));
    }
    p += n;
    len -= (size_t)n;
    w->size += n;
  }
  return 0;
}

void cll_blob_writer_abort(cll_blob_writer *w) {
  if (w == NULL)
    return;
  if (w->fd >= 0) {
    close(w->fd);
    unlink(w->tmp);
  }
  EVP_MD_CTX_free(w->md);
  free(w);
}

static int pin_locked(cll_store *st, const char *hex);
static int pin_find(const cll_store *st, const char *hex);

int cll_blob_writer_commit(cll_blob_writer *w, const char *want_hex, char hex[65], int64_t *size,
                           bool pin, cll_err *err) {
  unsigned char d[32];
  unsigned int dl = 0;
  char got[65];
  EVP_DigestFinal_ex(w->md, d, &dl);
  for (int i = 0; i < 32; i++)
    snprintf(got + 2 * i, 3, "%02x", d[i]);
  if (want_hex && strcmp(want_hex, got) != 0) {
    cll_blob_writer_abort(w);
    return cll_err_set(err, CLL_EDIGEST,
                       "digest mismatch, expected \"sha256:%s\", got \"sha256:%s\"", want_hex, got);
  }
  if (hex)
    memcpy(hex, got, 65);
  if (size)
    *size = w->size;
  char digest[80], path[CLL__PATH_MAX];
  snprintf(digest, sizeof(digest), "sha256:%s", got);
  if (cll_store_blob_path(w->st, digest, path, sizeof(path)) != 0) {
    cll_blob_writer_abort(w);
    return cll_err_set(err, CLL_ETOOBIG, "path too long");
  }
  if (fchmod(w->fd, 0644) != 0 || fsync(w->fd) != 0) {
    int e = errno;
    cll_blob_writer_abort(w);
    return cll_err_set(err, cll_err_from_errno(e), "sync to the model store: %s", strerror(e));
  }
  int rc = 0;
  cll_store *st = (cll_store *)w->st;
  pthread_mutex_lock(&st->gc_lock);
  if (pin && pin_locked(st, got) != 0) {
    rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
    unlink(w->tmp);
  } else if (cll_store_blob_exists(w->st, digest, w->size)) {
    unlink(w->tmp); /* the same bytes are there already */
  } else if (rename(w->tmp, path) != 0) {
    int e = errno;
    unlink(w->tmp);
    rc = cll_err_set(err, cll_err_from_errno(e), "rename into the model store: %s", strerror(e));
    if (pin) {
      int i = pin_find(st, got);
      if (i >= 0 && --st->pins[i].count == 0)
        st->pins[i] = st->pins[--st->n_pins];
    }
  }
  pthread_mutex_unlock(&st->gc_lock);
  close(w->fd);
  w->fd = -1;
  EVP_MD_CTX_free(w->md);
  free(w);
  return rc;
}

/* ------------------------------------------------------------------ pins */

static int pin_find(const cll_store *st, const char *hex) {
  for (size_t i = 0; i < st->n_pins; i++)
    if (strcmp(st->pins[i].hex, hex) == 0)
      return (int)i;
  return -1;
}

static int pin_locked(cll_store *st, const char *hex) {
  int i = pin_find(st, hex), rc = 0;
  if (i >= 0) {
    st->pins[i].count++;
  } else {
    if (st->n_pins == st->cap_pins) {
      size_t cap = st->cap_pins ? st->cap_pins * 2 : 16;
      struct cll__pin *p = realloc(st->pins, cap * sizeof(*p));
      if (p == NULL)
        rc = CLL_ENOMEM;
      else
        st->pins = p, st->cap_pins = cap;
    }
    if (rc == 0) {
      memcpy(st->pins[st->n_pins].hex, hex, 65);
      st->pins[st->n_pins++].count = 1;
    }
  }
  return rc;
}

int cll_store_pin(const cll_store *cst, const char *hex) {
  cll_store *st = (cll_store *)cst; /* the pin set is the one mutable part, under its lock */
  if (strlen(hex) != 64)
    return CLL_EINVAL;
  pthread_mutex_lock(&st->gc_lock);
  int rc = pin_locked(st, hex);
  pthread_mutex_unlock(&st->gc_lock);
  return rc;
}

void cll_store_unpin(const cll_store *cst, const char *hex) {
  cll_store *st = (cll_store *)cst;
  pthread_mutex_lock(&st->gc_lock);
  int i = pin_find(st, hex);
  if (i >= 0 && --st->pins[i].count == 0)
    st->pins[i] = st->pins[--st->n_pins];
  pthread_mutex_unlock(&st->gc_lock);
}

bool cll__store_pinned_locked(const cll_store *st, const char *hex) {
  return pin_find(st, hex) >= 0;
}

/* -------------------------------------------------------------- clean-up */

/* A -partial download is kept for a resumed pull only when it is a plain
 * file of ours (one link, not a symlink); part state files likewise. */
static bool safe_file(int dfd, const char *name) {
  struct stat sb;
  return fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode) &&
         sb.st_nlink == 1;
}

int cll_store_clean(const cll_store *st, int *removed) {
  char path[CLL__PATH_MAX];
  int n = 0;
  if (removed)
    *removed = 0;
  if (cll__pathf(path, "%s/blobs", st->root) != 0)
    return CLL_ETOOBIG;
  DIR *d = opendir(path);
  if (d == NULL)
    return cll_err_from_errno(errno);
  int dfd = dirfd(d);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    const char *nm = e->d_name;
    if (nm[0] == '.' && (nm[1] == 0 || (nm[1] == '.' && nm[2] == 0)))
      continue;
    bool drop = false;
    if (strncmp(nm, CLL__TMP_PREFIX, strlen(CLL__TMP_PREFIX)) == 0 || strstr(nm, ".tmp-") != NULL ||
        strncmp(nm, "quantize-", 9) == 0) {
      drop = true; /* a temporary of a crashed run */
    } else if (strncmp(nm, "sha256-", 7) == 0 && strlen(nm) > 7 + 64) {
      /* "-partial" or "-partial-N": resumable only when ours and plain. */
      drop = strncmp(nm + 7 + 64, "-partial", 8) != 0 || !safe_file(dfd, nm);
    }
    if (drop && unlinkat(dfd, nm, 0) == 0) {
      n++;
    } else if (drop && (errno == EISDIR || errno == EPERM)) {
      /* A private directory of a crashed quantize: its files, then it. */
      int sub = openat(dfd, nm, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      DIR *sd = sub >= 0 ? fdopendir(sub) : NULL;
      struct dirent *se;
      while (sd && (se = readdir(sd)) != NULL)
        if (se->d_name[0] != '.')
          unlinkat(sub, se->d_name, 0);
      if (sd)
        closedir(sd);
      else if (sub >= 0)
        close(sub);
      if (unlinkat(dfd, nm, AT_REMOVEDIR) == 0)
        n++;
    }
  }
  closedir(d);
  if (removed)
    *removed = n;
  return 0;
}
