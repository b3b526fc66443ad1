/* gguf_write.c — the GGUF v3 writer (include/cllama/gguf.h): metadata is
 * serialized as it is set, tensors are written at finish into a temporary
 * file that is renamed over the target. */
#include "gguf_internal.h"
#include "cllama/util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---------------------------------------------------------------- writer
 *
 * Metadata is serialized into a growing buffer as it is set; tensors are
 * remembered (name, shape, borrowed data pointer) and written at finish. */

struct wtensor {
  char *name;
  uint32_t type, n_dims;
  uint64_t ne[4];
  const void *data;
  uint64_t n_bytes, offset;
};

struct cll_gguf_writer {
  char *path;
  char *tmp_path;
  cll_buf kv; /* serialized metadata pairs, then the tensor directory */
  uint64_t n_kv;
  struct wtensor *t;
  uint64_t n_t, cap_t;
  uint32_t alignment;
  int error; /* first failure of a setter (reported by finish) */
};

int cll_gguf_writer_new(const char *path, cll_gguf_writer **out, cll_err *err) {
  *out = NULL;
  struct cll_gguf_writer *w = calloc(1, sizeof(*w));
  size_t n = strlen(path);
  if (w == NULL || (w->path = strdup(path)) == NULL || (w->tmp_path = malloc(n + 5)) == NULL) {
    cll_gguf_writer_free(w);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  memcpy(w->tmp_path, path, n);
  memcpy(w->tmp_path + n, ".tmp", 5);
  w->alignment = GGUF_DEFAULT_ALIGNMENT;
  *out = w;
  return 0;
}

void cll_gguf_writer_free(cll_gguf_writer *w) {
  if (w == NULL)
    return;
  for (uint64_t i = 0; i < w->n_t; i++)
    free(w->t[i].name);
  free(w->t);
  cll_buf_free(&w->kv);
  free(w->path);
  free(w->tmp_path);
  free(w);
}

static int wput(struct cll_gguf_writer *w, const void *p, size_t n) {
  if (w->error)
    return w->error;
  if (cll_buf_append(&w->kv, p, n) != 0)
    return w->error = CLL_ENOMEM;
  return 0;
}

static int wput_u32(struct cll_gguf_writer *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  return wput(w, b, 4);
}

static int wput_u64(struct cll_gguf_writer *w, uint64_t v) {
  wput_u32(w, (uint32_t)v);
  return wput_u32(w, (uint32_t)(v >> 32));
}

static int wput_str(struct cll_gguf_writer *w, const char *s, size_t n) {
  wput_u64(w, n);
  return wput(w, s, n);
}

static int wkey(struct cll_gguf_writer *w, const char *key, uint32_t type) {
  if (w->error)
    return w->error;
  if (key == NULL || key[0] == '\0')
    return w->error = CLL_EINVAL;
  if (strcmp(key, "general.alignment") == 0 && type != CLL_GGUF_U32)
    return w->error = CLL_EINVAL;
  w->n_kv++;
  wput_str(w, key, strlen(key));
  return wput_u32(w, type);
}

int cll_gguf_writer_set_u32(cll_gguf_writer *w, const char *key, uint32_t v) {
  if (key && strcmp(key, "general.alignment") == 0) {
    if (v == 0 || (v & (v - 1)) || v > (1u << 20))
      return w->error = CLL_EINVAL;
    w->alignment = v;
  }
  wkey(w, key, CLL_GGUF_U32);
  return wput_u32(w, v);
}

int cll_gguf_writer_set_i32(cll_gguf_writer *w, const char *key, int32_t v) {
  wkey(w, key, CLL_GGUF_I32);
  return wput_u32(w, (uint32_t)v);
}

int cll_gguf_writer_set_u64(cll_gguf_writer *w, const char *key, uint64_t v) {
  wkey(w, key, CLL_GGUF_U64);
  return wput_u64(w, v);
}

int cll_gguf_writer_set_f32(cll_gguf_writer *w, const char *key, float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  wkey(w, key, CLL_GGUF_F32);
  return wput_u32(w, u);
}

int cll_gguf_writer_set_bool(cll_gguf_writer *w, const char *key, bool v) {
  uint8_t b = v ? 1 : 0;
  wkey(w, key, CLL_GGUF_BOOL);
  return wput(w, &b, 1);
}

int cll_gguf_writer_set_str(cll_gguf_writer *w, const char *key, const char *v) {
  wkey(w, key, CLL_GGUF_STRING);
  return wput_str(w, v, strlen(v));
}

int cll_gguf_writer_set_arr(cll_gguf_writer *w, const char *key, enum cll_gguf_vtype elem_type,
                            const void *data, uint64_t n) {
  uint32_t esz = cll__gguf_scalar_size(elem_type);
  if (esz == 0 || (n > 0 && data == NULL) || n > SIZE_MAX / esz)
    return w->error = CLL_EINVAL;
  wkey(w, key, CLL_GGUF_ARRAY);
  wput_u32(w, elem_type);
  wput_u64(w, n);
  /* The host is little-endian (checked at build time below). */
  return wput(w, data, (size_t)(n * esz));
}

int cll_gguf_writer_set_arr_str(cll_gguf_writer *w, const char *key, const char *const *v,
                                uint64_t n) {
  wkey(w, key, CLL_GGUF_ARRAY);
  wput_u32(w, CLL_GGUF_STRING);
  wput_u64(w, n);
  for (uint64_t i = 0; i < n; i++)
    wput_str(w, v[i], strlen(v[i]));
  return w->error;
}

int cll_gguf_writer_copy_kv(cll_gguf_writer *w, const cll_gguf *src,
                            bool (*skip)(const char *key, void *ctx), void *ctx) {
  for (int64_t i = 0; i < src->n_kv; i++) {
    const struct kv *kv = &src->kvs[i];
    char key[GGUF_MAX_NAME + 1];
    memcpy(key, kv->key.ptr, kv->key.len);
    key[kv->key.len] = '\0';
    if (skip != NULL && skip(key, ctx))
      continue;
    /* The value's encoding is copied byte for byte: find its end by
     * skipping it with a cursor (it was validated at open). */
    struct cursor c = {src->base, src->size, (uint64_t)(kv->val - src->base), NULL};
    cll__gguf_skip_value(&c, kv->type, 0, "", NULL, NULL, NULL);
    if (strcmp(key, "general.alignment") == 0) {
      uint32_t a;
      memcpy(&a, kv->val, 4);
      w->alignment = a;
    }
    wkey(w, key, kv->type);
    wput(w, kv->val, (size_t)(c.pos - (uint64_t)(kv->val - src->base)));
  }
  return w->error;
}

int cll_gguf_writer_add_tensor(cll_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                               const uint64_t *ne, const void *data, uint64_t n_bytes) {
  if (w->error)
    return w->error;
  if (name == NULL || name[0] == '\0' || n_dims < 1 || n_dims > 4)
    return w->error = CLL_EINVAL;
  struct wtensor t = {.type = type, .n_dims = n_dims, .data = data, .n_bytes = n_bytes};
  for (int d = 0; d < 4; d++)
    t.ne[d] = d < (int)n_dims ? ne[d] : 1;
  for (uint32_t d = 0; d < n_dims; d++)
    if (t.ne[d] == 0)
      return w->error = CLL_EINVAL;
  const char *why;
  if (cll__gguf_tensor_bytes(type, n_dims, t.ne, &why) != n_bytes || (n_bytes > 0 && data == NULL))
    return w->error = CLL_EINVAL;
  for (uint64_t i = 0; i < w->n_t; i++)
    if (strcmp(w->t[i].name, name) == 0)
      return w->error = CLL_EEXIST;
  if (w->n_t == w->cap_t) {
    uint64_t cap = w->cap_t ? w->cap_t * 2 : 64;
    struct wtensor *nt = realloc(w->t, cap * sizeof(*nt));
    if (nt == NULL)
      return w->error = CLL_ENOMEM;
    w->t = nt;
    w->cap_t = cap;
  }
  if ((t.name = strdup(name)) == NULL)
    return w->error = CLL_ENOMEM;
  w->t[w->n_t++] = t;
  return 0;
}

static int write_all(FILE *f, const void *p, size_t n) {
  return n == 0 || fwrite(p, 1, n, f) == n ? 0 : CLL_EIO;
}

static int write_pad(FILE *f, uint64_t *pos, uint32_t align) {
  static const uint8_t zeros[256];
  uint64_t pad = (align - *pos % align) % align;
  while (pad > 0) {
    size_t k = pad > sizeof(zeros) ? sizeof(zeros) : (size_t)pad;
    if (write_all(f, zeros, k))
      return CLL_EIO;
    pad -= k;
    *pos += k;
  }
  return 0;
}

int cll_gguf_writer_finish(cll_gguf_writer *w, cll_err *err) {
  if (w->error) {
    int rc = cll_err_set(err, w->error, "GGUF writer: an earlier call failed (%s)",
                         cll_strerror(w->error));
    cll_gguf_writer_free(w);
    return rc;
  }
  /* Tensor directory: serialized after the metadata into the same buffer. */
  uint64_t off = 0;
  for (uint64_t i = 0; i < w->n_t; i++) {
    struct wtensor *t = &w->t[i];
    off += (w->alignment - off % w->alignment) % w->alignment;
    t->offset = off;
    off += t->n_bytes;
    wput_str(w, t->name, strlen(t->name));
    wput_u32(w, t->n_dims);
    for (uint32_t d = 0; d < t->n_dims; d++)
      wput_u64(w, t->ne[d]);
    wput_u32(w, t->type);
    wput_u64(w, t->offset);
  }
  if (w->error) {
    int rc = cll_err_set(err, w->error, "GGUF writer: out of memory");
    cll_gguf_writer_free(w);
    return rc;
  }
  FILE *f = fopen(w->tmp_path, "wb");
  if (f == NULL) {
    int e = errno;
    int rc =
        cll_err_set(err, cll_err_from_errno(e), "cannot create %s: %s", w->tmp_path, strerror(e));
    cll_gguf_writer_free(w);
    return rc;
  }
  uint8_t hdr[24];
  uint32_t magic = GGUF_MAGIC, version = 3;
  uint64_t nt = w->n_t, nkv = w->n_kv;
  memcpy(hdr, &magic, 4);
  memcpy(hdr + 4, &version, 4);
  memcpy(hdr + 8, &nt, 8);
  memcpy(hdr + 16, &nkv, 8);
  int rc = write_all(f, hdr, sizeof(hdr));
  if (rc == 0)
    rc = write_all(f, w->kv.data, w->kv.len);
  uint64_t pos = sizeof(hdr) + w->kv.len;
  if (rc == 0)
    rc = write_pad(f, &pos, w->alignment);
  uint64_t data_start = pos;
  for (uint64_t i = 0; rc == 0 && i < w->n_t; i++) {
    struct wtensor *t = &w->t[i];
    uint64_t rel = pos - data_start;
    rc = write_pad(f, &rel, w->alignment);
    pos = data_start + rel;
    if (rc == 0 && t->n_bytes > 0)
      rc = write_all(f, t->data, (size_t)t->n_bytes);
    pos += t->n_bytes;
  }
  if (rc == 0 && fflush(f) != 0)
    rc = CLL_EIO;
  if (rc == 0 && fsync(fileno(f)) != 0)
    rc = CLL_EIO;
  if (fclose(f) != 0 && rc == 0)
    rc = CLL_EIO;
  if (rc == 0 && rename(w->tmp_path, w->path) != 0)
    rc = cll_err_from_errno(errno);
  if (rc) {
    cll_err_set(err, rc, "cannot write %s: %s", w->path, strerror(errno));
    unlink(w->tmp_path);
  }
  cll_gguf_writer_free(w);
  return rc;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c assumes a little-endian host (GGUF files are little-endian)"
#endif
