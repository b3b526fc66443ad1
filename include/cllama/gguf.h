/* gguf.h — reading and writing GGUF files (v2 and v3).
 *
 * Owns: the parsed header, metadata and tensor directory of one GGUF file,
 * and its read-only mmap. Every count, offset and size is checked against the
 * file length before use; a truncated or corrupt file fails to open with a
 * cll_err saying what is wrong. Opening reads and checks the whole header
 * (blocking file I/O: never call it on the loop thread). After a successful
 * open the object is immutable and may be read from any thread.
 *
 * Ownership: strings and arrays returned by the getters are borrowed from the
 * cll_gguf (they point into the mapping or into its own tables) and live
 * until cll_gguf_close(). cll_gguf_close(NULL) is a no-op. */
#ifndef CLLAMA_GGUF_H
#define CLLAMA_GGUF_H

#include "cllama/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Metadata value types, numbered as in the GGUF file. */
enum cll_gguf_vtype {
  CLL_GGUF_U8 = 0,
  CLL_GGUF_I8 = 1,
  CLL_GGUF_U16 = 2,
  CLL_GGUF_I16 = 3,
  CLL_GGUF_U32 = 4,
  CLL_GGUF_I32 = 5,
  CLL_GGUF_F32 = 6,
  CLL_GGUF_BOOL = 7,
  CLL_GGUF_STRING = 8,
  CLL_GGUF_ARRAY = 9,
  CLL_GGUF_U64 = 10,
  CLL_GGUF_I64 = 11,
  CLL_GGUF_F64 = 12,
};

/* A string inside the file: not NUL-terminated. */
typedef struct cll_gguf_str {
  const char *ptr;
  uint64_t len;
} cll_gguf_str;

/* One tensor of the directory. ne[0] is the innermost (row) length: a GGUF
 * matrix with ne = [n_in, n_out] is n_out rows of n_in elements. */
typedef struct cll_gguf_tensor {
  cll_gguf_str name;
  uint32_t type;    /* enum cll_type (kernels.h): ggml type ids */
  uint32_t n_dims;  /* 1..4 */
  uint64_t ne[4];   /* elements per dimension, unused ones = 1 */
  uint64_t offset;  /* from the start of the data section */
  uint64_t n_bytes; /* exact size of the data */
  const void *data; /* borrowed: points into the read-only mapping */
} cll_gguf_tensor;

typedef struct cll_gguf cll_gguf;

/* Opens and checks path, mapping it read-only. On success *out is new (free
 * with cll_gguf_close). On failure returns CLL_E* and fills err. */
int cll_gguf_open(const char *path, cll_gguf **out, cll_err *err);
/* Same, over a buffer the caller keeps alive for the object's lifetime
 * (used by tests and the fuzz target; nothing is copied). */
int cll_gguf_open_memory(const void *buf, size_t len, cll_gguf **out, cll_err *err);
void cll_gguf_close(cll_gguf *g);

uint32_t cll_gguf_version(const cll_gguf *g);
uint32_t cll_gguf_alignment(const cll_gguf *g);

/* ---- metadata */
int64_t cll_gguf_n_kv(const cll_gguf *g);
/* Index of key, or -1. */
int64_t cll_gguf_find_key(const cll_gguf *g, const char *key);
cll_gguf_str cll_gguf_key_name(const cll_gguf *g, int64_t i);
enum cll_gguf_vtype cll_gguf_kv_type(const cll_gguf *g, int64_t i);

/* Typed scalar getters by key. Return 0 and set *out, CLL_ENOENT when the
 * key is absent, CLL_EINVAL when it has another type. Integer getters accept
 * any integer type whose value fits; float getters accept F32 and F64. */
int cll_gguf_get_u32(const cll_gguf *g, const char *key, uint32_t *out);
int cll_gguf_get_i64(const cll_gguf *g, const char *key, int64_t *out);
int cll_gguf_get_u64(const cll_gguf *g, const char *key, uint64_t *out);
int cll_gguf_get_f32(const cll_gguf *g, const char *key, float *out);
int cll_gguf_get_bool(const cll_gguf *g, const char *key, bool *out);
int cll_gguf_get_str(const cll_gguf *g, const char *key, cll_gguf_str *out);

/* Arrays. *elem_type is the element type (CLL_GGUF_ARRAY for nested
 * arrays), *n the count. */
int cll_gguf_get_arr(const cll_gguf *g, const char *key, enum cll_gguf_vtype *elem_type,
                     uint64_t *n);
/* Element i of a string array (i < n checked). */
int cll_gguf_get_arr_str(const cll_gguf *g, const char *key, uint64_t i, cll_gguf_str *out);
/* Pointer to the raw little-endian elements of a numeric array (borrowed, may be
 * unaligned: read with memcpy). */
int cll_gguf_get_arr_data(const cll_gguf *g, const char *key, const void **data, uint64_t *n,
                          enum cll_gguf_vtype *elem_type);

/* Generic access to value i for dumping (`cllama show`, /api/show model_info):
 * formats the value as JSON text into buf (arrays longer than max_elems are
 * cut off and end in "..."). Returns the length written, or a negative code. */
int cll_gguf_kv_to_json(const cll_gguf *g, int64_t i, char *buf, size_t cap, uint64_t max_elems);

/* ---- tensors */
int64_t cll_gguf_n_tensors(const cll_gguf *g);
const cll_gguf_tensor *cll_gguf_tensor_at(const cll_gguf *g, int64_t i);
/* The tensor named name, or NULL (borrowed). */
const cll_gguf_tensor *cll_gguf_find_tensor(const cll_gguf *g, const char *name);

/* ---- writing (quantizer, bench/mkmodel, tests) */
typedef struct cll_gguf_writer cll_gguf_writer;
/* New writer for a GGUF v3 file at path (written to path.tmp, renamed by
 * finish). */
int cll_gguf_writer_new(const char *path, cll_gguf_writer **out, cll_err *err);
int cll_gguf_writer_set_u32(cll_gguf_writer *w, const char *key, uint32_t v);
int cll_gguf_writer_set_i32(cll_gguf_writer *w, const char *key, int32_t v);
int cll_gguf_writer_set_u64(cll_gguf_writer *w, const char *key, uint64_t v);
int cll_gguf_writer_set_f32(cll_gguf_writer *w, const char *key, float v);
int cll_gguf_writer_set_bool(cll_gguf_writer *w, const char *key, bool v);
int cll_gguf_writer_set_str(cll_gguf_writer *w, const char *key, const char *v);
/* Arrays of numbers (raw little-endian elements, copied) or strings. */
int cll_gguf_writer_set_arr(cll_gguf_writer *w, const char *key, enum cll_gguf_vtype elem_type,
                            const void *data, uint64_t n);
int cll_gguf_writer_set_arr_str(cll_gguf_writer *w, const char *key, const char *const *v,
                                uint64_t n);
/* Copies every metadata pair of src (except keys for which skip returns true). */
int cll_gguf_writer_copy_kv(cll_gguf_writer *w, const cll_gguf *src,
                            bool (*skip)(const char *key, void *ctx), void *ctx);
/* Declares a tensor; data is copied later by add order. n_bytes must match
 * the type and shape. */
int cll_gguf_writer_add_tensor(cll_gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                               const uint64_t *ne, const void *data, uint64_t n_bytes);
/* Writes header, metadata, tensor directory and aligned data, fsyncs, renames
 * into place and frees w (also on failure). */
int cll_gguf_writer_finish(cll_gguf_writer *w, cll_err *err);
void cll_gguf_writer_free(cll_gguf_writer *w);

#endif
