/* auth.c — registry authentication pieces: the WWW-Authenticate challenge,
 * the token URL Ollama builds from it, and Ollama's ed25519 identity key
 * (OpenSSH "openssh-key-v1" file, as Go's ssh.MarshalPrivateKey writes it)
 * used to sign token requests. Key and file work blocks: pull.c calls it
 * from a uv_queue_work item. */
#include "registry_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ challenge */

/* Copies the value of key="..." (or key=token) from a Bearer challenge. */
static void challenge_field(const char *h, const char *key, char *out, size_t size) {
  out[0] = '\0';
  size_t klen = strlen(key);
  for (const char *p = h; *p; p++) {
    if (strncasecmp(p, key, klen) != 0 || p[klen] != '=')
      continue;
    if (p != h && p[-1] != ' ' && p[-1] != ',')
      continue;
    const char *v = p + klen + 1;
    size_t n = 0;
    if (*v == '"') {
      v++;
      while (v[n] && v[n] != '"')
        n++;
    } else {
      while (v[n] && v[n] != ',' && v[n] != ' ')
        n++;
    }
    if (n >= size)
      n = size - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return;
  }
}

int cll__reg_parse_challenge(const char *h, struct cll__challenge *c) {
  memset(c, 0, sizeof(*c));
  while (*h == ' ')
    h++;
  if (strncasecmp(h, "Bearer ", 7) != 0)
    return CLL_EPROTO;
  challenge_field(h + 7, "realm", c->realm, sizeof(c->realm));
  challenge_field(h + 7, "service", c->service, sizeof(c->service));
  challenge_field(h + 7, "scope", c->scope, sizeof(c->scope));
  return c->realm[0] ? 0 : CLL_EPROTO;
}

/* Go's url.QueryEscape: unreserved bytes kept, space as '+', the rest %XX. */
static size_t query_escape(const char *s, char *out, size_t size, size_t at) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    char tmp[4];
    size_t n = 0;
    if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '.' || ch == '~')
      tmp[n++] = (char)ch;
    else if (ch == ' ')
      tmp[n++] = '+';
    else {
      tmp[n++] = '%';
      tmp[n++] = hex[ch >> 4];
      tmp[n++] = hex[ch & 15];
    }
    for (size_t i = 0; i < n; i++, at++)
      if (at + 1 < size)
        out[at] = tmp[i];
  }
  if (size)
    out[at < size ? at : size - 1] = '\0';
  return at;
}

static size_t append(char *out, size_t size, size_t at, const char *s) {
  for (; *s; s++, at++)
    if (at + 1 < size)
      out[at] = *s;
  if (size)
    out[at < size ? at : size - 1] = '\0';
  return at;
}

int cll__reg_token_url(const struct cll__challenge *c, bool ollama_params, char *out, size_t size) {
  /* Keys in Go's url.Values.Encode order (sorted): nonce, scope, service, ts. */
  size_t at = append(out, size, 0, c->realm);
  char sep = strchr(c->realm, '?') ? '&' : '?';
  char nonce[32] = "";
  if (ollama_params) {
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
      return CLL_EIO;
    /* base64url without padding: 16 bytes -> 22 characters */
    char b64[32];
    EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
    size_t j = 0;
    for (size_t i = 0; b64[i] && b64[i] != '='; i++)
      nonce[j++] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
    nonce[j] = '\0';
    at = append(out, size, at, sep == '?' ? "?nonce=" : "&nonce=");
    at = query_escape(nonce, out, size, at);
    sep = '&';
  }
  /* One scope parameter per space-separated scope. */
  const char *s = c->scope;
  while (*s) {
    const char *e = strchr(s, ' ');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    if (n > 0) {
      char one[sizeof(c->scope)];
      memcpy(one, s, n);
      one[n] = '\0';
      at = append(out, size, at, sep == '?' ? "?scope=" : "&scope=");
      at = query_escape(one, out, size, at);
      sep = '&';
    }
    s += n;
    while (*s == ' ')
      s++;
  }
  at = append(out, size, at, sep == '?' ? "?service=" : "&service=");
  at = query_escape(c->service, out, size, at);
  if (ollama_params) {
    char ts[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    at = append(out, size, at, "&ts=");
    at = append(out, size, at, ts);
  }
  return at < size ? 0 : CLL_ETOOBIG;
}

/* "scheme://host[:port]/..." -> "host[:port]" */
void cll__reg_url_host(const char *url, char *out, size_t size) {
  const char *p = strstr(url, "://");
  p = p ? p + 3 : url;
  size_t n = strcspn(p, "/?#");
  const char *at = memchr(p, '@', n); /* drop userinfo */
  if (at) {
    n -= (size_t)(at + 1 - p);
    p = at + 1;
  }
  if (n >= size)
    n = size - 1;
  memcpy(out, p, n);
  out[n] = '\0';
}

/* --------------------------------------------------------------- base64 */

static int b64_encode(const unsigned char *in, size_t n, char *out, size_t size) {
  if (size < 4 * ((n + 2) / 3) + 1)
    return CLL_ETOOBIG;
  EVP_EncodeBlock((unsigned char *)out, in, (int)n);
  return 0;
}

/* Decodes standard base64 (whitespace skipped). Returns bytes or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t size) {
  char *clean = malloc(n + 1);
  if (clean == NULL)
    return -1;
  size_t m = 0;
  for (size_t i = 0; i < n; i++)
    if (in[i] != '\n' && in[i] != '\r' && in[i] != ' ' && in[i] != '\t')
      clean[m++] = in[i];
  long len = -1;
  if (m % 4 == 0 && m / 4 * 3 <= size) {
    int r = EVP_DecodeBlock(out, (unsigned char *)clean, (int)m);
    if (r >= 0) {
      len = r;
      if (m >= 1 && clean[m - 1] == '=')
        len--;
      if (m >= 2 && clean[m - 2] == '=')
        len--;
    }
  }
  free(clean);
  return len;
}

/* ------------------------------------------------------- openssh key file */

struct wbuf {
  unsigned char b[1024];
  size_t n;
};

static void put_u32(struct wbuf *w, uint32_t v) {
  if (w->n + 4 > sizeof(w->b))
    return;
  w->b[w->n++] = (unsigned char)(v >> 24);
  w->b[w->n++] = (unsigned char)(v >> 16);
  w->b[w->n++] = (unsigned char)(v >> 8);
  w->b[w->n++] = (unsigned char)v;
}

static void put_str(struct wbuf *w, const void *s, size_t n) {
  put_u32(w, (uint32_t)n);
  if (w->n + n > sizeof(w->b))
    return;
  memcpy(w->b + w->n, s, n);
  w->n += n;
}

/* The SSH wire form of an ed25519 public key. */
static void pub_blob(const unsigned char pk[32], struct wbuf *w) {
  w->n = 0;
  put_str(w, "ssh-ed25519", 11);
  put_str(w, pk, 32);
}

struct rbuf {
  const unsigned char *b;
  size_t n, at;
};

static int get_u32(struct rbuf *r, uint32_t *v) {
  if (r->at + 4 > r->n)
    return -1;
  const unsigned char *p = r->b + r->at;
  *v = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  r->at += 4;
  return 0;
}

static int get_str(struct rbuf *r, const unsigned char **s, uint32_t *n) {
  if (get_u32(r, n) != 0 || r->at + *n > r->n)
    return -1;
  *s = r->b + r->at;
  r->at += *n;
  return 0;
}

#define KEY_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define KEY_END "-----END OPENSSH PRIVATE KEY-----\n"

static int write_file_0600(const char *path, const char *data, size_t len, mode_t mode,
                           cll_err *err) {
  char tmp[1100];
  snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
  if (fd < 0)
    return cll_err_set(err, cll_err_from_errno(errno), "create %s: %s", tmp, strerror(errno));
  ssize_t w = write(fd, data, len);
  int e = errno;
  if (close(fd) != 0 && w == (ssize_t)len)
    w = -1, e = errno;
  if (w != (ssize_t)len || rename(tmp, path) != 0) {
    if (w == (ssize_t)len)
      e = errno;
    unlink(tmp);
    return cll_err_set(err, cll_err_from_errno(e), "write %s: %s", path, strerror(e));
  }
  return 0;
}

/* Creates a new key pair in key_dir; fills seed and pk. */
static int create_key(const char *key_dir, unsigned char seed[32], unsigned char pk[32],
                      cll_err *err) {
  EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
  size_t sn = 32, pn = 32;
  if (key == NULL || EVP_PKEY_get_raw_private_key(key, seed, &sn) != 1 ||
      EVP_PKEY_get_raw_public_key(key, pk, &pn) != 1) {
    EVP_PKEY_free(key);
    return cll_err_set(err, CLL_EIO, "generating an ed25519 key failed");
  }
  EVP_PKEY_free(key);

  struct wbuf pub, priv, file;
  pub_blob(pk, &pub);
  uint32_t check;
  RAND_bytes((unsigned char *)&check, sizeof(check));
  priv.n = 0;
  put_u32(&priv, check);
  put_u32(&priv, check);
  put_str(&priv, "ssh-ed25519", 11);
  put_str(&priv, pk, 32);
  unsigned char sk[64];
  memcpy(sk, seed, 32);
  memcpy(sk + 32, pk, 32);
  put_str(&priv, sk, 64);
  put_str(&priv, "", 0); /* comment */
  for (unsigned char pad = 1; priv.n % 8 != 0; pad++)
    priv.b[priv.n++] = pad;
  file.n = 0;
  memcpy(file.b, "openssh-key-v1", 15); /* with its NUL */
  file.n = 15;
  put_str(&file, "none", 4);
  put_str(&file, "none", 4);
  put_str(&file, "", 0);
  put_u32(&file, 1);
  put_str(&file, pub.b, pub.n);
  put_str(&file, priv.b, priv.n);

  char b64[1500], pem[1700];
  if (b64_encode(file.b, file.n, b64, sizeof(b64)) != 0)
    return cll_err_set(err, CLL_EIO, "key encoding failed");
  size_t at = append(pem, sizeof(pem), 0, KEY_BEGIN);
  for (size_t i = 0; b64[i];) { /* 64 columns, as Go's pem.Encode writes */
    char line[66];
    size_t n = strnlen(b64 + i, 64);
    memcpy(line, b64 + i, n);
    line[n] = '\n';
    line[n + 1] = '\0';
    at = append(pem, sizeof(pem), at, line);
    i += n;
  }
  at = append(pem, sizeof(pem), at, KEY_END);

  char dir[1024];
  snprintf(dir, sizeof(dir), "%s", key_dir);
  for (char *p = dir + 1;; p++) { /* mkdir -p */
    char c = *p;
    if (c != '/' && c != '\0')
      continue;
    *p = '\0';
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
      return cll_err_set(err, cll_err_from_errno(errno), "create %s: %s", dir, strerror(errno));
    *p = c;
    if (c == '\0')
      break;
  }
  char path[1100];
  snprintf(path, sizeof(path), "%s/id_ed25519", key_dir);
  int rc = write_file_0600(path, pem, at, 0600, err);
  if (rc != 0)
    return rc;
  char pubtxt[200];
  if (b64_encode(pub.b, pub.n, b64, sizeof(b64)) != 0)
    return CLL_EIO;
  int n = snprintf(pubtxt, sizeof(pubtxt), "ssh-ed25519 %s\n", b64);
  snprintf(path, sizeof(path), "%s/id_ed25519.pub", key_dir);
  return write_file_0600(path, pubtxt, (size_t)n, 0644, err);
}

/* Reads the unencrypted ed25519 key from an openssh-key-v1 file. */
static int load_key(const char *path, unsigned char seed[32], unsigned char pk[32], cll_err *err) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return cll_err_from_errno(errno);
  char text[8192];
  size_t len = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[len] = '\0';
  char *b = strstr(text, "-----BEGIN OPENSSH PRIVATE KEY-----");
  char *e = b ? strstr(b, "-----END OPENSSH PRIVATE KEY-----") : NULL;
  if (b == NULL || e == NULL)
    return cll_err_set(err, CLL_EFORMAT, "%s: not an OpenSSH private key", path);
  b = strchr(b, '\n');
  unsigned char raw[4096];
  long n = b ? b64_decode(b, (size_t)(e - b), raw, sizeof(raw)) : -1;
  struct rbuf r = {raw, n > 0 ? (size_t)n : 0, 15};
  const unsigned char *s;
  uint32_t sl, nkeys, c1, c2;
  if (n < 15 || memcmp(raw, "openssh-key-v1", 15) != 0 || get_str(&r, &s, &sl) != 0 || sl != 4 ||
      memcmp(s, "none", 4) != 0 || get_str(&r, &s, &sl) != 0 || get_str(&r, &s, &sl) != 0 ||
      get_u32(&r, &nkeys) != 0 || nkeys != 1 || get_str(&r, &s, &sl) != 0 ||
      get_str(&r, &s, &sl) != 0)
    return cll_err_set(err, CLL_EFORMAT, "%s: unsupported or encrypted key", path);
  struct rbuf p = {s, sl, 0};
  const unsigned char *type, *pub, *sk;
  uint32_t tl, pl, kl;
  if (get_u32(&p, &c1) != 0 || get_u32(&p, &c2) != 0 || c1 != c2 || get_str(&p, &type, &tl) != 0 ||
      tl != 11 || memcmp(type, "ssh-ed25519", 11) != 0 || get_str(&p, &pub, &pl) != 0 || pl != 32 ||
      get_str(&p, &sk, &kl) != 0 || kl != 64)
    return cll_err_set(err, CLL_EFORMAT, "%s: not an ed25519 key", path);
  memcpy(seed, sk, 32);
  memcpy(pk, pub, 32);
  return 0;
}

int cll_registry_sign(const char *key_dir, const void *data, size_t len, char *out, size_t size,
                      cll_err *err) {
  unsigned char seed[32], pk[32];
  char path[1100];
  snprintf(path, sizeof(path), "%s/id_ed25519", key_dir);
  int rc = load_key(path, seed, pk, err);
  if (rc == CLL_ENOENT)
    rc = create_key(key_dir, seed, pk, err);
  if (rc != 0)
    return rc;
  EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char sig[64];
  size_t siglen = sizeof(sig);
  int ok = key && md && EVP_DigestSignInit(md, NULL, NULL, NULL, key) == 1 &&
           EVP_DigestSign(md, sig, &siglen, data, len) == 1;
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(key);
  if (!ok)
    return cll_err_set(err, CLL_EIO, "ed25519 signing failed");
  struct wbuf pub;
  pub_blob(pk, &pub);
  char pub64[128], sig64[128];
  if (b64_encode(pub.b, pub.n, pub64, sizeof(pub64)) != 0 ||
      b64_encode(sig, siglen, sig64, sizeof(sig64)) != 0)
    return CLL_EIO;
  if ((size_t)snprintf(out, size, "%s:%s", pub64, sig64) >= size)
    return CLL_ETOOBIG;
  return 0;
}

int cll_registry_sign_input(const char *url, char *out, size_t size) {
  char empty_hex[65], b64[100];
  cll_sha256_hex("", 0, empty_hex);
  b64_encode((const unsigned char *)empty_hex, 64, b64, sizeof(b64));
  if ((size_t)snprintf(out, size, "GET,%s,%s", url, b64) >= size)
    return CLL_ETOOBIG;
  return 0;
}
