/* sha256.c — SHA-256 of memory and of a file (include/cllama/util.h), on
 * OpenSSL's EVP interface. */
#include "cllama/util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void cll_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char md[32];
  unsigned int ml = 0;
  EVP_Digest(data, len, md, &ml, EVP_sha256(), NULL);
  cll_hex_encode(md, sizeof(md), hex);
}

int cll_sha256_file(const char *path, char hex[65], int64_t *size, cll_err *err) {
  enum { CHUNK = 1 << 20 };
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cll_err_set(err, errno == ENOENT ? CLL_ENOENT : cll_err_from_errno(errno), "open %s: %s",
                       path, strerror(errno));
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char *buf = malloc(CHUNK);
  int rc = 0;
  if (md == NULL || buf == NULL)
    rc = cll_err_set(err, CLL_ENOMEM, "hashing %s: out of memory", path);
  else if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
    rc = cll_err_set(err, CLL_EIO, "hashing %s failed", path);
  int64_t total = 0;
  ssize_t r = 0;
  while (rc == 0 && (r = read(fd, buf, CHUNK)) != 0) {
    if (r < 0) {
      if (errno == EINTR)
        continue;
      rc = cll_err_set(err, CLL_EIO, "reading %s: %s", path, strerror(errno));
      break;
    }
    if (EVP_DigestUpdate(md, buf, (size_t)r) != 1)
      rc = cll_err_set(err, CLL_EIO, "hashing %s failed", path);
    total += r;
  }
  unsigned char sum[32];
  unsigned int sl = 0;
  if (rc == 0 && EVP_DigestFinal_ex(md, sum, &sl) != 1)
    rc = cll_err_set(err, CLL_EIO, "hashing %s failed", path);
  EVP_MD_CTX_free(md);
  free(buf);
  close(fd);
  if (rc)
    return rc;
  cll_hex_encode(sum, sizeof(sum), hex);
  if (size)
    *size = total;
  return 0;
}
