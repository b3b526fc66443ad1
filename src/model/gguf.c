/* gguf.c — GGUF v2/v3 reader (see include/cllama/gguf.h); the JSON dump of a
 * value is in gguf_json.c, the v3 writer in gguf_write.c, what they share in
 * gguf_internal.h.
 *
 * Design: the whole file is mapped read-only and parsed once by a bounds-
 * checked cursor. Every length read from the file is compared with the bytes
 * that remain before it is used, with arithmetic that cannot overflow, so a
 * truncated or hostile file ends in a cll_err that names the field, never in
 * a read past the mapping or a huge allocation: a count is only trusted once
 * it is smaller than the bytes left divided by the smallest encoding of one
 * element. Metadata values stay in the mapping; the reader keeps a table of
 * keys (pointer to the value) and, for string arrays, a table of the strings
 * so element i is found in O(1) (the vocabulary is read that way).
 *
 * Tensor types are checked against the block sizes of the ggml format, kept
 * here as file-format facts (this module does not depend on the kernels). */
#include "gguf_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- types */

struct type_size {
  uint32_t block_elems;
  uint32_t block_bytes;
};

/* Block sizes of the ggml tensor types this file format may hold and
 * cllama understands (indexed by type id; 0 = unknown). */
static const struct type_size type_sizes[] = {
    [0] = {1, 4},      /* F32 */
    [1] = {1, 2},      /* F16 */
    [2] = {32, 18},    /* Q4_0 */
    [3] = {32, 20},    /* Q4_1 */
    [6] = {32, 22},    /* Q5_0 */
    [7] = {32, 24},    /* Q5_1 */
    [8] = {32, 34},    /* Q8_0 */
    [9] = {32, 36},    /* Q8_1 */
    [10] = {256, 84},  /* Q2_K */
    [11] = {256, 110}, /* Q3_K */
    [12] = {256, 144}, /* Q4_K */
    [13] = {256, 176}, /* Q5_K */
    [14] = {256, 210}, /* Q6_K */
    [15] = {256, 292}, /* Q8_K */
    [24] = {1, 1},     /* I8 */
    [25] = {1, 2},     /* I16 */
    [26] = {1, 4},     /* I32 */
    [27] = {1, 8},     /* I64 */
    [28] = {1, 8},     /* F64 */
    [30] = {1, 2},     /* BF16 */
};

static const struct type_size *type_size_of(uint32_t type) {
  if (type >= CLL_ARRAY_LEN(type_sizes) || type_sizes[type].block_elems == 0)
    return NULL;
  return &type_sizes[type];
}

/* Bytes of a tensor of the given shape, or 0 (with *why set) when the shape
 * does not fit the type or overflows. */
uint64_t cll__gguf_tensor_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne,
                                const char **why) {
  const struct type_size *ts = type_size_of(type);
  if (ts == NULL) {
    *why = "unknown tensor type";
    return 0;
  }
  if (ne[0] % ts->block_elems != 0) {
    *why = "row length is not a multiple of the type's block size";
    return 0;
  }
  uint64_t n = ne[0] / ts->block_elems * ts->block_bytes;
  if (ne[0] != 0 && n / ts->block_bytes != ne[0] / ts->block_elems) {
    *why = "size overflows";
    return 0;
  }
  for (uint32_t d = 1; d < n_dims; d++) {
    if (ne[d] != 0 && n > UINT64_MAX / ne[d]) {
      *why = "size overflows";
      return 0;
    }
    n *= ne[d];
  }
  return n;
}

/* ---------------------------------------------------------------- reader */

static uint64_t left(const struct cursor *c) {
  return c->size - c->pos;
}

static int need(struct cursor *c, uint64_t n, const char *what) {
  if (n > left(c))
    return cll_err_set(c->err, CLL_EFORMAT,
                       "GGUF truncated: %s needs %" PRIu64 " bytes at offset %" PRIu64
                       " but the file has %" PRIu64 " left",
                       what, n, c->pos, left(c));
  return 0;
}

int cll__gguf_rd_u32(struct cursor *c, uint32_t *v, const char *what) {
  int rc = need(c, 4, what);
  if (rc)
    return rc;
  const uint8_t *p = c->base + c->pos;
  *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  c->pos += 4;
  return 0;
}

int cll__gguf_rd_u64(struct cursor *c, uint64_t *v, const char *what) {
  uint32_t lo, hi;
  int rc = cll__gguf_rd_u32(c, &lo, what);
  if (rc == 0)
    rc = cll__gguf_rd_u32(c, &hi, what);
  if (rc == 0)
    *v = (uint64_t)hi << 32 | lo;
  return rc;
}

int cll__gguf_rd_str(struct cursor *c, cll_gguf_str *s, const char *what) {
  uint64_t n;
  int rc = cll__gguf_rd_u64(c, &n, what);
  if (rc)
    return rc;
  if (n > left(c))
    return cll_err_set(c->err, CLL_EFORMAT,
                       "GGUF corrupt: %s has length %" PRIu64 " at offset %" PRIu64
                       " but only %" PRIu64 " bytes remain",
                       what, n, c->pos - 8, left(c));
  s->ptr = (const char *)(c->base + c->pos);
  s->len = n;
  c->pos += n;
  return 0;
}

/* Encoded size of a fixed-size scalar type, 0 for string/array/unknown. */
uint32_t cll__gguf_scalar_size(uint32_t t) {
  switch (t) {
  case CLL_GGUF_U8:
  case CLL_GGUF_I8:
  case CLL_GGUF_BOOL:
    return 1;
  case CLL_GGUF_U16:
  case CLL_GGUF_I16:
    return 2;
  case CLL_GGUF_U32:
  case CLL_GGUF_I32:
  case CLL_GGUF_F32:
    return 4;
  case CLL_GGUF_U64:
  case CLL_GGUF_I64:
  case CLL_GGUF_F64:
    return 8;
  default:
    return 0;
  }
}

static bool valid_vtype(uint32_t t) {
  return t <= CLL_GGUF_F64;
}

/* Skips (and checks) one value of type t. For arrays also reports the
 * element type, count and first element. */
int cll__gguf_skip_value(struct cursor *c, uint32_t t, int depth, const char *what,
                         uint32_t *elem_type, uint64_t *count, uint64_t *first) {
  if (!valid_vtype(t))
    return cll_err_set(c->err, CLL_EFORMAT, "GGUF corrupt: %s has unknown value type %" PRIu32,
                       what, t);
  uint32_t sz = cll__gguf_scalar_size(t);
  if (sz != 0) {
    int rc = need(c, sz, what);
    if (rc == 0 && t == CLL_GGUF_BOOL && c->base[c->pos] > 1)
      return cll_err_set(c->err, CLL_EFORMAT, "GGUF corrupt: %s: bool value %u is not 0 or 1", what,
                         c->base[c->pos]);
    c->pos += rc == 0 ? sz : 0;
    return rc;
  }
  if (t == CLL_GGUF_STRING) {
    cll_gguf_str s;
    return cll__gguf_rd_str(c, &s, what);
  }
  /* array */
  if (depth >= GGUF_MAX_DEPTH)
    return cll_err_set(c->err, CLL_EFORMAT, "GGUF corrupt: %s: arrays nested deeper than %d", what,
                       GGUF_MAX_DEPTH);
  uint32_t et;
  uint64_t n;
  int rc = cll__gguf_rd_u32(c, &et, what);
  if (rc == 0)
    rc = cll__gguf_rd_u64(c, &n, what);
  if (rc)
    return rc;
  if (!valid_vtype(et))
    return cll_err_set(c->err, CLL_EFORMAT,
                       "GGUF corrupt: %s: array of unknown element type %" PRIu32, what, et);
  if (elem_type)
    *elem_type = et;
  if (count)
    *count = n;
  if (first)
    *first = c->pos;
  uint32_t esz = cll__gguf_scalar_size(et);
  /* Smallest encoding of one element: strings take 8 bytes of length, arrays
   * 12 bytes of header. Checking the count against that first means a huge
   * count can never drive a long loop or an allocation. */
  uint64_t min = esz ? esz : (et == CLL_GGUF_STRING ? 8 : 12);
  if (n > left(c) / min)
    return cll_err_set(c->err, CLL_EFORMAT,
                       "GGUF corrupt: %s: array of %" PRIu64
                       " elements does not fit in the %" PRIu64 " bytes left",
                       what, n, left(c));
  if (esz != 0) {
    if (et == CLL_GGUF_BOOL)
      for (uint64_t i = 0; i < n; i++)
        if (c->base[c->pos + i] > 1)
          return cll_err_set(c->err, CLL_EFORMAT,
                             "GGUF corrupt: %s: bool element %" PRIu64 " is not 0 or 1", what, i);
    c->pos += n * esz;
    return 0;
  }
  for (uint64_t i = 0; i < n; i++) {
    rc = cll__gguf_skip_value(c, et, depth + 1, what, NULL, NULL, NULL);
    if (rc)
      return rc;
  }
  return 0;
}

static bool str_eq(cll_gguf_str a, cll_gguf_str b) {
  return a.len == b.len && memcmp(a.ptr, b.ptr, a.len) == 0;
}

bool cll__gguf_str_eq_c(cll_gguf_str a, const char *b) {
  size_t n = strlen(b);
  return a.len == n && memcmp(a.ptr, b, n) == 0;
}

/* Prints at most 64 bytes of a file string for error messages. */
#define STRF "%.*s"
#define STRA(s) (int)((s).len > 64 ? 64 : (s).len), (s).ptr

static int parse_kvs(struct cll_gguf *g, struct cursor *c) {
  char what[96];
  for (int64_t i = 0; i < g->n_kv; i++) {
    struct kv *kv = &g->kvs[i];
    snprintf(what, sizeof(what), "metadata key #%" PRId64, i);
    int rc = cll__gguf_rd_str(c, &kv->key, what);
    if (rc)
      return rc;
    if (kv->key.len == 0 || kv->key.len > GGUF_MAX_NAME || memchr(kv->key.ptr, 0, kv->key.len))
      return cll_err_set(
          c->err, CLL_EFORMAT,
          "GGUF corrupt: metadata key #%" PRId64 " is empty, too long or contains NUL", i);
    for (int64_t j = 0; j < i; j++)
      if (str_eq(g->kvs[j].key, kv->key))
        return cll_err_set(c->err, CLL_EFORMAT, "GGUF corrupt: duplicate metadata key \"" STRF "\"",
                           STRA(kv->key));
    snprintf(what, sizeof(what), "metadata \"%.*s\"", STRA(kv->key));
    uint32_t t;
    rc = cll__gguf_rd_u32(c, &t, what);
    if (rc)
      return rc;
    kv->type = (enum cll_gguf_vtype)t;
    kv->val = c->base + c->pos;
    uint32_t et = 0;
    uint64_t n = 0, first = 0;
    rc = cll__gguf_skip_value(c, t, 0, what, &et, &n, &first);
    if (rc)
      return rc;
    if (t != CLL_GGUF_ARRAY)
      continue;
    kv->elem_type = (enum cll_gguf_vtype)et;
    kv->n = n;
    kv->arr = c->base + first;
    if (et == CLL_GGUF_STRING && n > 0) {
      /* n was checked against the bytes left (>= 8 bytes each). */
      kv->strs = malloc(n * sizeof(*kv->strs));
      if (kv->strs == NULL)
        return cll_err_set(c->err, CLL_ENOMEM, "out of memory for %" PRIu64 " strings of %s", n,
                           what);
      struct cursor s = {c->base, c->size, first, c->err};
      for (uint64_t k = 0; k < n; k++)
        if ((rc = cll__gguf_rd_str(&s, &kv->strs[k], what)))
          return rc;
    }
  }
  return 0;
}

static int parse_tensors(struct cll_gguf *g, struct cursor *c) {
  for (int64_t i = 0; i < g->n_tensors; i++) {
    cll_gguf_tensor *t = &g->tensors[i];
    char what[96];
    snprintf(what, sizeof(what), "tensor #%" PRId64, i);
    int rc = cll__gguf_rd_str(c, &t->name, what);
    if (rc)
      return rc;
    if (t->name.len == 0 || t->name.len > GGUF_MAX_NAME || memchr(t->name.ptr, 0, t->name.len))
      return cll_err_set(c->err, CLL_EFORMAT,
                         "GGUF corrupt: tensor #%" PRId64 " has an empty or invalid name", i);
    snprintf(what, sizeof(what), "tensor \"%.*s\"", STRA(t->name));
    if ((rc = cll__gguf_rd_u32(c, &t->n_dims, what)))
      return rc;
    if (t->n_dims < 1 || t->n_dims > 4)
      return cll_err_set(c->err, CLL_EFORMAT, "GGUF corrupt: %s has %" PRIu32 " dimensions (1..4)",
                         what, t->n_dims);
    for (int d = 0; d < 4; d++)
      t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
      if ((rc = cll__gguf_rd_u64(c, &t->ne[d], what)))
        return rc;
      if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
        return cll_err_set(c->err, CLL_EFORMAT,
                           "GGUF corrupt: %s dimension %" PRIu32 " is %" PRIu64, what, d, t->ne[d]);
    }
    if ((rc = cll__gguf_rd_u32(c, &t->type, what)) || (rc = cll__gguf_rd_u64(c, &t->offset, what)))
      return rc;
    const char *why = NULL;
    t->n_bytes = cll__gguf_tensor_bytes(t->type, t->n_dims, t->ne, &why);
    if (t->n_bytes == 0)
      return cll_err_set(c->err, why && why[0] == 'u' ? CLL_EUNSUPPORTED : CLL_EFORMAT,
                         "GGUF: %s (type %" PRIu32 ", shape %" PRIu64 "x%" PRIu64 "x%" PRIu64
                         "x%" PRIu64 "): %s",
                         what, t->type, t->ne[0], t->ne[1], t->ne[2], t->ne[3], why);
    for (int64_t j = 0; j < i; j++)
      if (str_eq(g->tensors[j].name, t->name))
        return cll_err_set(c->err, CLL_EFORMAT, "GGUF corrupt: duplicate tensor \"" STRF "\"",
                           STRA(t->name));
  }
  return 0;
}

static int parse(struct cll_gguf *g, cll_err *err) {
  struct cursor c = {g->base, g->size, 0, err};
  uint32_t magic;
  int rc = cll__gguf_rd_u32(&c, &magic, "the magic number");
  if (rc)
    return rc;
  if (magic != GGUF_MAGIC)
    return cll_err_set(err, CLL_EFORMAT, "not a GGUF file (bad magic 0x%08" PRIx32 ")", magic);
  if ((rc = cll__gguf_rd_u32(&c, &g->version, "the version")))
    return rc;
  if (g->version == 1)
    return cll_err_set(err, CLL_EUNSUPPORTED, "GGUF version 1 is not supported (only 2 and 3)");
  if (g->version != 2 && g->version != 3) {
    if ((g->version & 0xffff) == 0)
      return cll_err_set(err, CLL_EUNSUPPORTED,
                         "big-endian GGUF files are not supported (version field 0x%08" PRIx32 ")",
                         g->version);
    return cll_err_set(err, CLL_EUNSUPPORTED, "unknown GGUF version %" PRIu32, g->version);
  }
  uint64_t n_tensors, n_kv;
  if ((rc = cll__gguf_rd_u64(&c, &n_tensors, "the tensor count")) ||
      (rc = cll__gguf_rd_u64(&c, &n_kv, "the metadata count")))
    return rc;
  /* A metadata pair takes at least 8 (key length) + 1 + 4 + 1 bytes, a tensor
   * info at least 8 + 1 + 4 + 8 + 4 + 8. */
  if (n_kv > left(&c) / 14)
    return cll_err_set(err, CLL_EFORMAT,
                       "GGUF corrupt: %" PRIu64 " metadata pairs cannot fit in a %" PRIu64
                       "-byte file",
                       n_kv, g->size);
  if (n_tensors > left(&c) / 33)
    return cll_err_set(err, CLL_EFORMAT,
                       "GGUF corrupt: %" PRIu64 " tensors cannot fit in a %" PRIu64 "-byte file",
                       n_tensors, g->size);
  g->n_kv = (int64_t)n_kv;
  g->n_tensors = (int64_t)n_tensors;
  g->kvs = calloc(n_kv ? n_kv : 1, sizeof(*g->kvs));
  g->tensors = calloc(n_tensors ? n_tensors : 1, sizeof(*g->tensors));
  if (g->kvs == NULL || g->tensors == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory reading the GGUF header");
  if ((rc = parse_kvs(g, &c)))
    return rc;

  g->alignment = GGUF_DEFAULT_ALIGNMENT;
  int64_t ai = cll_gguf_find_key(g, "general.alignment");
  if (ai >= 0) {
    uint32_t a;
    if (g->kvs[ai].type != CLL_GGUF_U32)
      return cll_err_set(err, CLL_EFORMAT, "GGUF corrupt: general.alignment is not a u32");
    memcpy(&a, g->kvs[ai].val, 4);
    if (a == 0 || (a & (a - 1)) != 0 || a > (1u << 20))
      return cll_err_set(err, CLL_EFORMAT,
                         "GGUF corrupt: general.alignment %" PRIu32 " is not a power of two", a);
    g->alignment = a;
  }
  if ((rc = parse_tensors(g, &c)))
    return rc;

  uint64_t data = c.pos + (g->alignment - c.pos % g->alignment) % g->alignment;
  if (n_tensors > 0 && data > g->size)
    return cll_err_set(err, CLL_EFORMAT,
                       "GGUF truncated: tensor data would start at %" PRIu64
                       " beyond the end of the %" PRIu64 "-byte file",
                       data, g->size);
  g->data_offset = data;
  uint64_t data_size = data <= g->size ? g->size - data : 0;
  for (int64_t i = 0; i < g->n_tensors; i++) {
    cll_gguf_tensor *t = &g->tensors[i];
    if (t->offset % g->alignment != 0)
      return cll_err_set(err, CLL_EFORMAT,
                         "GGUF corrupt: tensor \"" STRF "\" offset %" PRIu64
                         " is not a multiple of the alignment %" PRIu32,
                         STRA(t->name), t->offset, g->alignment);
    if (t->offset > data_size || t->n_bytes > data_size - t->offset)
      return cll_err_set(err, CLL_EFORMAT,
                         "GGUF truncated: tensor \"" STRF "\" (%" PRIu64
                         " bytes at data offset %" PRIu64
                         ") runs past the end of the file (%" PRIu64 " bytes of data)",
                         STRA(t->name), t->n_bytes, t->offset, data_size);
    t->data = g->base + data + t->offset;
  }
  return 0;
}

static int open_common(struct cll_gguf *g, cll_gguf **out, cll_err *err) {
  int rc = parse(g, err);
  if (rc) {
    cll_gguf_close(g);
    return rc;
  }
  *out = g;
  return 0;
}

int cll_gguf_open_memory(const void *buf, size_t len, cll_gguf **out, cll_err *err) {
  *out = NULL;
  if (buf == NULL && len > 0)
    return cll_err_set(err, CLL_EINVAL, "NULL buffer");
  struct cll_gguf *g = calloc(1, sizeof(*g));
  if (g == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  g->base = buf;
  g->size = len;
  return open_common(g, out, err);
}

int cll_gguf_open(const char *path, cll_gguf **out, cll_err *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return cll_err_set(err, cll_err_from_errno(e), "cannot open %s: %s", path, strerror(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return cll_err_set(err, cll_err_from_errno(e), "cannot stat %s: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return cll_err_set(err, CLL_EINVAL, "%s is not a regular file", path);
  }
  if (st.st_size < 24) {
    close(fd);
    return cll_err_set(err, CLL_EFORMAT, "%s: not a GGUF file (only %lld bytes)", path,
                       (long long)st.st_size);
  }
  void *map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
  int e = errno;
  close(fd);
  if (map == MAP_FAILED)
    return cll_err_set(err, cll_err_from_errno(e), "cannot map %s: %s", path, strerror(e));
  struct cll_gguf *g = calloc(1, sizeof(*g));
  if (g == NULL) {
    munmap(map, (size_t)st.st_size);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  g->base = map;
  g->size = (uint64_t)st.st_size;
  g->mapped = true;
  int rc = open_common(g, out, err);
  if (rc && err != NULL) {
    /* Prefix the file name so the person knows which file is broken. */
    size_t pl = strlen(path), ml = strlen(err->msg);
    if (pl + 2 + ml < sizeof(err->msg)) {
      memmove(err->msg + pl + 2, err->msg, ml + 1);
      memcpy(err->msg, path, pl);
      memcpy(err->msg + pl, ": ", 2);
    }
  }
  return rc;
}

void cll_gguf_close(cll_gguf *g) {
  if (g == NULL)
    return;
  if (g->kvs != NULL)
    for (int64_t i = 0; i < g->n_kv; i++)
      free(g->kvs[i].strs);
  free(g->kvs);
  free(g->tensors);
  if (g->mapped)
    munmap((void *)g->base, g->size);
  free(g);
}

uint32_t cll_gguf_version(const cll_gguf *g) {
  return g->version;
}
uint32_t cll_gguf_alignment(const cll_gguf *g) {
  return g->alignment;
}
int64_t cll_gguf_n_kv(const cll_gguf *g) {
  return g->n_kv;
}

int64_t cll_gguf_find_key(const cll_gguf *g, const char *key) {
  for (int64_t i = 0; i < g->n_kv; i++)
    if (cll__gguf_str_eq_c(g->kvs[i].key, key))
      return i;
  return -1;
}

cll_gguf_str cll_gguf_key_name(const cll_gguf *g, int64_t i) {
  cll_gguf_str none = {"", 0};
  return i >= 0 && i < g->n_kv ? g->kvs[i].key : none;
}

enum cll_gguf_vtype cll_gguf_kv_type(const cll_gguf *g, int64_t i) {
  return i >= 0 && i < g->n_kv ? g->kvs[i].type : (enum cll_gguf_vtype) - 1;
}

static const struct kv *find(const cll_gguf *g, const char *key) {
  int64_t i = cll_gguf_find_key(g, key);
  return i < 0 ? NULL : &g->kvs[i];
}

/* Reads an integer of vtype t at p as signed (*s) or unsigned (*u); returns
 * false for non-integer types. *neg says whether the value is negative. */
bool cll__gguf_read_int(uint32_t t, const uint8_t *p, uint64_t *u, bool *neg) {
  uint8_t b[8] = {0};
  uint32_t sz = cll__gguf_scalar_size(t);
  if (sz == 0 || t == CLL_GGUF_F32 || t == CLL_GGUF_F64 || t == CLL_GGUF_BOOL)
    return false;
  memcpy(b, p, sz);
  uint64_t v = 0;
  for (uint32_t i = 0; i < sz; i++)
    v |= (uint64_t)b[i] << (8 * i);
  bool is_signed = t == CLL_GGUF_I8 || t == CLL_GGUF_I16 || t == CLL_GGUF_I32 || t == CLL_GGUF_I64;
  *neg = false;
  if (is_signed && sz < 8 && (v >> (8 * sz - 1)) & 1) {
    v |= ~(uint64_t)0 << (8 * sz); /* sign-extend */
    *neg = true;
  } else if (is_signed && sz == 8 && (v >> 63)) {
    *neg = true;
  }
  *u = v;
  return true;
}

int cll_gguf_get_u64(const cll_gguf *g, const char *key, uint64_t *out) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  uint64_t v;
  bool neg;
  if (!cll__gguf_read_int(kv->type, kv->val, &v, &neg) || neg)
    return CLL_EINVAL;
  *out = v;
  return 0;
}

int cll_gguf_get_u32(const cll_gguf *g, const char *key, uint32_t *out) {
  uint64_t v;
  int rc = cll_gguf_get_u64(g, key, &v);
  if (rc)
    return rc;
  if (v > UINT32_MAX)
    return CLL_EINVAL;
  *out = (uint32_t)v;
  return 0;
}

int cll_gguf_get_i64(const cll_gguf *g, const char *key, int64_t *out) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  uint64_t v;
  bool neg;
  if (!cll__gguf_read_int(kv->type, kv->val, &v, &neg))
    return CLL_EINVAL;
  if (!neg && v > (uint64_t)INT64_MAX)
    return CLL_EINVAL;
  memcpy(out, &v, 8);
  return 0;
}

int cll_gguf_get_f32(const cll_gguf *g, const char *key, float *out) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  if (kv->type == CLL_GGUF_F32) {
    memcpy(out, kv->val, 4);
  } else if (kv->type == CLL_GGUF_F64) {
    double d;
    memcpy(&d, kv->val, 8);
    *out = (float)d;
  } else {
    return CLL_EINVAL;
  }
  return 0;
}

int cll_gguf_get_bool(const cll_gguf *g, const char *key, bool *out) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  if (kv->type != CLL_GGUF_BOOL)
    return CLL_EINVAL;
  *out = kv->val[0] != 0;
  return 0;
}

int cll_gguf_get_str(const cll_gguf *g, const char *key, cll_gguf_str *out) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  if (kv->type != CLL_GGUF_STRING)
    return CLL_EINVAL;
  uint64_t n;
  memcpy(&n, kv->val, 8); /* checked by the parser; the file is little-endian */
  out->ptr = (const char *)kv->val + 8;
  out->len = n;
  return 0;
}

int cll_gguf_get_arr(const cll_gguf *g, const char *key, enum cll_gguf_vtype *elem_type,
                     uint64_t *n) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  if (kv->type != CLL_GGUF_ARRAY)
    return CLL_EINVAL;
  if (elem_type)
    *elem_type = kv->elem_type;
  if (n)
    *n = kv->n;
  return 0;
}

int cll_gguf_get_arr_str(const cll_gguf *g, const char *key, uint64_t i, cll_gguf_str *out) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  if (kv->type != CLL_GGUF_ARRAY || kv->elem_type != CLL_GGUF_STRING)
    return CLL_EINVAL;
  if (i >= kv->n)
    return CLL_ERANGE;
  *out = kv->strs[i];
  return 0;
}

int cll_gguf_get_arr_data(const cll_gguf *g, const char *key, const void **data, uint64_t *n,
                          enum cll_gguf_vtype *elem_type) {
  const struct kv *kv = find(g, key);
  if (kv == NULL)
    return CLL_ENOENT;
  if (kv->type != CLL_GGUF_ARRAY || cll__gguf_scalar_size(kv->elem_type) == 0)
    return CLL_EINVAL;
  *data = kv->arr;
  *n = kv->n;
  if (elem_type)
    *elem_type = kv->elem_type;
  return 0;
}

int64_t cll_gguf_n_tensors(const cll_gguf *g) {
  return g->n_tensors;
}

const cll_gguf_tensor *cll_gguf_tensor_at(const cll_gguf *g, int64_t i) {
  return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const cll_gguf_tensor *cll_gguf_find_tensor(const cll_gguf *g, const char *name) {
  for (int64_t i = 0; i < g->n_tensors; i++)
    if (cll__gguf_str_eq_c(g->tensors[i].name, name))
      return &g->tensors[i];
  return NULL;
}
