/* store.h — the Ollama on-disk model store, read and written unchanged:
 *
 *   <root>/manifests/<host>/<namespace>/<model>/<tag>   manifest JSON
 *   <root>/blobs/sha256-<64 hex>                        content-addressed blobs
 *   <root>/blobs/sha256-<64 hex>-partial                download in progress
 *
 * It owns model names (parse, validate, display), paths, manifests, listing,
 * atomic writes and delete with blob garbage collection. No name or digest
 * that passes cll_name_parse()/cll_digest_parse() can produce a path outside
 * the root.
 *
 * Threads: a cll_store is immutable after open except for its pin set
 * (under a lock); any thread may call any function. Blocking: the functions do plain file I/O.
 * Manifests and config blobs are small (a few KiB), so listing and reading them on the loop thread
 * is acceptable; anything that touches a large blob (hashing, writing) must run off the loop
 * (uv_queue_work). */
#ifndef CLLAMA_STORE_H
#define CLLAMA_STORE_H

#include "cllama/common.h"
#include "cllama/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ names */

#define CLL_NAME_HOST_MAX 350
#define CLL_NAME_PART_MAX 80
#define CLL_NAME_DEFAULT_HOST "registry.ollama.ai"
#define CLL_NAME_DEFAULT_NAMESPACE "library"
#define CLL_NAME_DEFAULT_TAG "latest"

/* A fully qualified model name; every part is non-empty and valid. */
typedef struct cll_name {
  char scheme[8];                    /* "https" (default) or "http" */
  char host[CLL_NAME_HOST_MAX + 1];  /* e.g. "registry.ollama.ai" */
  char ns[CLL_NAME_PART_MAX + 1];    /* e.g. "library" */
  char model[CLL_NAME_PART_MAX + 1]; /* e.g. "llama3.2" */
  char tag[CLL_NAME_PART_MAX + 1];   /* e.g. "latest" */
} cll_name;

/* Parses "[scheme://][host/][namespace/]model[:tag]" (Ollama's grammar,
 * parsed from the right), fills defaults and validates every part.
 * Returns 0 or CLL_EINVAL. Case is kept as given. */
int cll_name_parse(const char *s, cll_name *out);

/* Writes the shortest display form ("llama3.2:latest", "ns/m:tag",
 * "host/ns/m:tag") into buf; returns the length it needed (snprintf rule). */
size_t cll_name_display(const cll_name *n, char *buf, size_t size);

/* Writes "host/ns/model:tag". Same return rule. */
size_t cll_name_full(const cll_name *n, char *buf, size_t size);

/* Case-insensitive comparison of host, namespace, model and tag. */
bool cll_name_equal(const cll_name *a, const cll_name *b);

/* A digest "sha256:<hex>" or "sha256-<hex>" (64 hex digits, any case).
 * Writes the 64 lowercase hex digits + NUL into hex. 0 or CLL_EINVAL. */
int cll_digest_parse(const char *s, char hex[65]);

/* cll_sha256_hex (SHA-256 of a buffer) is in cllama/util.h. */

/* ------------------------------------------------------------------ store */

typedef struct cll_store cll_store;

/* Opens the store at root (created, with manifests/ and blobs/, when
 * missing). *out is new; free with cll_store_close(). */
int cll_store_open(const char *root, cll_store **out, cll_err *err);
void cll_store_close(cll_store *st);
const char *cll_store_root(const cll_store *st); /* borrowed */

/* Paths. Each returns 0, or CLL_ETOOBIG if buf is too small, or CLL_EINVAL
 * for a bad digest. */
int cll_store_manifest_path(const cll_store *st, const cll_name *n, char *buf, size_t size);
int cll_store_blob_path(const cll_store *st, const char *digest, char *buf, size_t size);
int cll_store_blob_partial_path(const cll_store *st, const char *digest, char *buf, size_t size);

/* Finds the stored model whose name equals want case-insensitively and
 * writes its on-disk spelling into found (may alias want). 0 or CLL_ENOENT. */
int cll_store_resolve(const cll_store *st, const cll_name *want, cll_name *found);

/* ------------------------------------------------------------- manifests */

#define CLL_MEDIA_MODEL "application/vnd.ollama.image.model"
#define CLL_MEDIA_PROJECTOR "application/vnd.ollama.image.projector"
#define CLL_MEDIA_ADAPTER "application/vnd.ollama.image.adapter"
#define CLL_MEDIA_TEMPLATE "application/vnd.ollama.image.template"
#define CLL_MEDIA_PROMPT "application/vnd.ollama.image.prompt" /* older name of template */
#define CLL_MEDIA_SYSTEM "application/vnd.ollama.image.system"
#define CLL_MEDIA_PARAMS "application/vnd.ollama.image.params"
#define CLL_MEDIA_MESSAGES "application/vnd.ollama.image.messages"
#define CLL_MEDIA_LICENSE "application/vnd.ollama.image.license"

typedef struct cll_layer {
  char *media_type; /* new, owned by the manifest */
  char digest[65];  /* lowercase hex, no "sha256:" prefix */
  int64_t size;     /* bytes, as the manifest says */
  char *from;       /* optional origin ("" when absent), owned */
} cll_layer;

/* The model config blob's fields that /api/tags and /api/show report
 * (types/model ConfigV2). Empty strings when absent. */
typedef struct cll_model_config {
  char format[32]; /* model_format, e.g. "gguf" */
  char family[64]; /* model_family */
  char **families; /* model_families, n_families entries, owned */
  size_t n_families;
  char parameter_size[32];     /* model_type, e.g. "3.2B" */
  char quantization_level[32]; /* file_type, e.g. "Q4_K_M" */
  int64_t context_length;      /* 0 when absent */
  int64_t embedding_length;    /* 0 when absent */
} cll_model_config;

typedef struct cll_manifest {
  cll_name name;     /* its on-disk spelling */
  char digest[65];   /* sha256 of the manifest file bytes (the model digest) */
  int64_t mtime_ns;  /* manifest file mtime, ns since the epoch */
  int64_t size;      /* config size + every layer size, from the manifest */
  cll_layer config;  /* the config blob reference */
  cll_layer *layers; /* n_layers, in manifest order, owned */
  size_t n_layers;
  cll_model_config cfg; /* read from the config blob when present */
  char *raw;            /* the manifest bytes, NUL-terminated, owned */
  size_t raw_len;
} cll_manifest;

/* Reads and parses name's manifest and its config blob. *out is new (free
 * with cll_manifest_free). CLL_ENOENT when there is no such model (the name
 * is matched exactly; resolve it first), CLL_EFORMAT for a broken manifest. */
int cll_store_read_manifest(const cll_store *st, const cll_name *name, cll_manifest **out,
                            cll_err *err);
void cll_manifest_free(cll_manifest *m);

/* The first layer with this media type, or NULL (borrowed). */
const cll_layer *cll_manifest_layer(const cll_manifest *m, const char *media_type);

/* Every model in the store whose manifest parses and whose blobs all exist
 * (broken entries are skipped and logged on stderr), sorted by mtime,
 * newest first. *out is a new array of new manifests; free it with
 * cll_store_list_free(). */
int cll_store_list(const cll_store *st, cll_manifest ***out, size_t *n, cll_err *err);
void cll_store_list_free(cll_manifest **list, size_t n);

/* --------------------------------------------------------------- writing */

/* Writes a manifest atomically (temporary file, fsync, rename), creating
 * its directories. The bytes are stored exactly as given. */
int cll_store_write_manifest(const cll_store *st, const cll_name *name, const void *bytes,
                             size_t len, cll_err *err);

/* Writes a small blob atomically after checking that its SHA-256 matches
 * digest (CLL_EDIGEST otherwise). For large blobs, write to
 * cll_store_blob_partial_path() and call cll_store_blob_commit(). */
int cll_store_write_blob(const cll_store *st, const char *digest, const void *data, size_t len,
                         cll_err *err);

/* Renames a finished "-partial" file to its final blob name. The caller has
 * verified the hash while writing; this checks the size when size >= 0. */
int cll_store_blob_commit(const cll_store *st, const char *digest, int64_t size, cll_err *err);

/* A new blob of any size: a temporary file this process creates with
 * O_EXCL in blobs/ (never a name that may be a link to a file outside the
 * store), hashed as written. commit() fsyncs it and renames it to its blob
 * name when the digest is want_hex (any digest when want_hex is NULL),
 * returning the digest and size; with pin, the digest is pinned (see
 * below; the caller unpins) under the collection lock before the rename,
 * so the new blob cannot be collected before the caller's manifest names
 * it. On any failure the temporary is removed and nothing enters the
 * store. commit() and abort() free the writer. */
typedef struct cll_blob_writer cll_blob_writer;
int cll_blob_writer_open(const cll_store *st, cll_blob_writer **out, cll_err *err);
int cll_blob_writer_write(cll_blob_writer *w, const void *data, size_t len, cll_err *err);
const char *cll_blob_writer_path(const cll_blob_writer *w); /* to check contents before commit */
int cll_blob_writer_commit(cll_blob_writer *w, const char *want_hex, char hex[65], int64_t *size,
                           bool pin, cll_err *err);
void cll_blob_writer_abort(cll_blob_writer *w);

/* Pins (counted): a blob an in-flight create or pull will name in a
 * manifest it has not written yet. Blob collection never removes a pinned
 * blob; pin before checking that a reused blob exists, unpin after the
 * manifest is written. hex is the 64-digit digest. */
int cll_store_pin(const cll_store *st, const char *hex);
void cll_store_unpin(const cll_store *st, const char *hex);

/* Removes those of the n blobs (64-digit hex digests) that no manifest
 * references and nothing pins; returns how many were removed. */
int cll_store_collect(const cll_store *st, const char *const *hexes, size_t n);

/* Start-up clean-up: removes temporaries a crashed run left in blobs/, and
 * "-partial" files that are not plain single-link files (a resumed pull
 * must never write through a link). *removed counts them. */
int cll_store_clean(const cll_store *st, int *removed);

/* True when the blob exists (and has this size when size >= 0). */
bool cll_store_blob_exists(const cll_store *st, const char *digest, int64_t size);

/* Copies src's manifest byte for byte to dst (so the digest is the same).
 * CLL_ENOENT when src does not exist. */
int cll_store_copy(const cll_store *st, const cll_name *src, const cll_name *dst, cll_err *err);

/* Removes name's manifest, prunes empty directories, and deletes the blobs
 * no remaining manifest references. CLL_ENOENT when there is no such model. */
int cll_store_delete(const cll_store *st, const cll_name *name, cll_err *err);

#endif
