/* gguf_internal.h — what the GGUF reader (gguf.c), the JSON dumper
 * (gguf_json.c) and the writer (gguf_write.c) share inside src/model.
 * Nothing outside these three files includes this. */
#ifndef CLLAMA_MODEL_GGUF_INTERNAL_H
#define CLLAMA_MODEL_GGUF_INTERNAL_H

#include "cllama/gguf.h"

#include <stdbool.h>
#include <stdint.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DEPTH 8     /* nesting of arrays of arrays */
#define GGUF_MAX_NAME 65535u /* longest key or tensor name we accept */

struct kv {
  cll_gguf_str key;
  enum cll_gguf_vtype type;
  const uint8_t *val; /* borrowed: start of the value in the file */
  /* arrays: */
  enum cll_gguf_vtype elem_type;
  uint64_t n;         /* element count */
  const uint8_t *arr; /* first element */
  cll_gguf_str *strs; /* (n) for string arrays, owned */
};

struct cll_gguf {
  const uint8_t *base; /* the file (borrowed from the caller or mapped) */
  uint64_t size;
  bool mapped;
  uint32_t version;
  uint32_t alignment;
  uint64_t data_offset;
  int64_t n_kv;
  struct kv *kvs; /* (n_kv) */
  int64_t n_tensors;
  cll_gguf_tensor *tensors; /* (n_tensors) */
};

struct cursor {
  const uint8_t *base;
  uint64_t size;
  uint64_t pos;
  cll_err *err;
};

/* Bounds-checked reads at c->pos (advance it); 0 or CLL_EFORMAT with
 * c->err naming what. */
int cll__gguf_rd_u32(struct cursor *c, uint32_t *v, const char *what);
int cll__gguf_rd_u64(struct cursor *c, uint64_t *v, const char *what);
int cll__gguf_rd_str(struct cursor *c, cll_gguf_str *s, const char *what);
/* Skips (and checks) one value of type t. For arrays also reports the
 * element type, count and first element (each may be NULL). */
int cll__gguf_skip_value(struct cursor *c, uint32_t t, int depth, const char *what,
                         uint32_t *elem_type, uint64_t *count, uint64_t *first);
/* Bytes of one scalar of vtype t (0 for strings and arrays). */
uint32_t cll__gguf_scalar_size(uint32_t t);
/* An integer of vtype t at p; false for non-integer types. */
bool cll__gguf_read_int(uint32_t t, const uint8_t *p, uint64_t *u, bool *neg);
/* Bytes of a tensor of this type and shape, or 0 with *why set. */
uint64_t cll__gguf_tensor_bytes(uint32_t type, uint32_t n_dims, const uint64_t *ne,
                                const char **why);
bool cll__gguf_str_eq_c(cll_gguf_str a, const char *b);

#endif
