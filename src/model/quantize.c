/* quantize.c — GGUF-to-GGUF weight quantization (cllama quantize).
 *
 * DESIGN: one pass over the source's tensor directory decides every
 * tensor's target type (cll_quantize_plan: llama.cpp's recipe facts, our
 * code). Then each converted tensor is split by rows over a few worker
 * threads that dequantize a source row to floats and quantize it with the
 * reference kernels (deterministic, and bit-identical to llama.cpp for the
 * simple formats). Converted tensors live in memory until the GGUF writer
 * has written them; copied tensors are written straight from the source
 * mapping. Threads share nothing mutable but their own row ranges. */
#include "cllama/quantize.h"

#include "cllama/kernels.h"

#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const struct {
  const char *name;
  enum cll_ftype ftype;
  bool pure;
} ftype_names[] = {
    {"F32", CLL_FTYPE_ALL_F32, false},   {"F16", CLL_FTYPE_F16, false},
    {"BF16", CLL_FTYPE_BF16, false},     {"Q8_0", CLL_FTYPE_Q8_0, false},
    {"Q4_0", CLL_FTYPE_Q4_0, false},     {"Q4_1", CLL_FTYPE_Q4_1, false},
    {"Q5_0", CLL_FTYPE_Q5_0, false},     {"Q5_1", CLL_FTYPE_Q5_1, false},
    {"Q4_K_S", CLL_FTYPE_Q4_K_S, false}, {"Q4_K_M", CLL_FTYPE_Q4_K_M, false},
    {"Q5_K_S", CLL_FTYPE_Q5_K_S, false}, {"Q5_K_M", CLL_FTYPE_Q5_K_M, false},
    {"Q6_K", CLL_FTYPE_Q6_K, false},     {"Q4_K", CLL_FTYPE_Q4_K_S, true},
    {"Q5_K", CLL_FTYPE_Q5_K_S, true},
};

int cll_quantize_parse(const char *name, enum cll_ftype *ftype, bool *pure) {
  for (size_t i = 0; name && i < CLL_ARRAY_LEN(ftype_names); i++) {
    if (strcasecmp(name, ftype_names[i].name) == 0) {
      *ftype = ftype_names[i].ftype;
      *pure = ftype_names[i].pure;
      return 0;
    }
  }
  return CLL_EINVAL;
}

const char *cll_quantize_ftype_name(enum cll_ftype ftype) {
  for (size_t i = 0; i < CLL_ARRAY_LEN(ftype_names); i++)
    if (ftype_names[i].ftype == ftype && !ftype_names[i].pure)
      return ftype_names[i].name;
  return NULL;
}

cll_quantize_params cll_quantize_defaults(void) {
  return (cll_quantize_params){.ftype = CLL_FTYPE_Q8_0};
}

/* The type most tensors get. */
static uint32_t base_type(enum cll_ftype f) {
  switch (f) {
  case CLL_FTYPE_ALL_F32:
    return CLL_TYPE_F32;
  case CLL_FTYPE_F16:
    return CLL_TYPE_F16;
  case CLL_FTYPE_BF16:
    return CLL_TYPE_BF16;
  case CLL_FTYPE_Q4_0:
    return CLL_TYPE_Q4_0;
  case CLL_FTYPE_Q4_1:
    return CLL_TYPE_Q4_1;
  case CLL_FTYPE_Q5_0:
    return CLL_TYPE_Q5_0;
  case CLL_FTYPE_Q5_1:
    return CLL_TYPE_Q5_1;
  case CLL_FTYPE_Q8_0:
    return CLL_TYPE_Q8_0;
  case CLL_FTYPE_Q4_K_S:
  case CLL_FTYPE_Q4_K_M:
    return CLL_TYPE_Q4_K;
  case CLL_FTYPE_Q5_K_S:
  case CLL_FTYPE_Q5_K_M:
    return CLL_TYPE_Q5_K;
  case CLL_FTYPE_Q6_K:
    return CLL_TYPE_Q6_K;
  }
  return 0;
}

static bool is_float(uint32_t t) {
  return t == CLL_TYPE_F32 || t == CLL_TYPE_F16 || t == CLL_TYPE_BF16;
}

static bool name_is(cll_gguf_str s, const char *want) {
  return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static bool name_has(cll_gguf_str s, const char *part) {
  size_t n = strlen(part);
  for (uint64_t i = 0; i + n <= s.len; i++)
    if (memcmp(s.ptr + i, part, n) == 0)
      return true;
  return false;
}

static bool name_ends(cll_gguf_str s, const char *suffix) {
  size_t n = strlen(suffix);
  return s.len >= n && memcmp(s.ptr + s.len - n, suffix, n) == 0;
}

/* Whether a tensor is a weight matrix that quantization applies to: 2-D or
 * more, named *weight, and not a norm, an MoE router, or a BERT position or
 * token-type table (rows added to the input, which llama.cpp keeps as
 * they are and cannot add when quantized). */
static bool quantizable(const cll_gguf_tensor *t) {
  return t->n_dims >= 2 && name_ends(t->name, "weight") && !name_has(t->name, "_norm.weight") &&
         !name_has(t->name, "ffn_gate_inp.weight") && !name_has(t->name, "position_embd.weight") &&
         !name_has(t->name, "token_types.weight") && is_float(t->type);
}

/* The layers llama.cpp gives more bits in its _M recipes: the first and last
 * eighth, and every third layer in between. */
static bool use_more_bits(int64_t i, int64_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static bool divides(uint32_t type, uint64_t ne0) {
  const struct cll_type_info *ti = cll_type_info(type);
  return ti && ne0 % ti->block_elems == 0;
}

int cll_quantize_plan(const cll_gguf *src, enum cll_ftype ftype, bool pure, uint32_t *types) {
  uint32_t base = base_type(ftype);
  if (base == 0 && ftype != CLL_FTYPE_ALL_F32)
    return CLL_EINVAL;
  int64_t n = cll_gguf_n_tensors(src);
  bool quantized = !is_float(base);
  bool has_output = cll_gguf_find_tensor(src, "output.weight") != NULL;
  int64_t n_attn_v = 0, n_ffn_down = 0, i_attn_v = 0, i_ffn_down = 0;
  for (int64_t i = 0; i < n; i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(src, i);
    n_attn_v += name_has(t->name, "attn_v.weight");
    n_ffn_down += name_has(t->name, "ffn_down");
  }
  bool k_m = !pure && (ftype == CLL_FTYPE_Q4_K_M || ftype == CLL_FTYPE_Q5_K_M);
  bool k4_s = !pure && ftype == CLL_FTYPE_Q4_K_S;
  for (int64_t i = 0; i < n; i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(src, i);
    types[i] = t->type;
    if (!quantizable(t))
      continue;
    uint32_t type = base;
    if (quantized) {
      if (name_is(t->name, "output.weight") ||
          (!has_output && name_is(t->name, "token_embd.weight"))) {
        /* The output projection is the most sensitive matrix. */
        if (!divides(type, t->ne[0]))
          type = CLL_TYPE_Q8_0;
        else if (type != CLL_TYPE_Q8_0)
          type = CLL_TYPE_Q6_K;
      } else if (name_has(t->name, "attn_v.weight")) {
        if (k_m && use_more_bits(i_attn_v, n_attn_v))
          type = CLL_TYPE_Q6_K;
        else if (k4_s && i_attn_v < 4)
          type = CLL_TYPE_Q5_K;
        i_attn_v++;
      } else if (name_has(t->name, "ffn_down")) {
        if (k_m && use_more_bits(i_ffn_down, n_ffn_down))
          type = CLL_TYPE_Q6_K;
        else if (k4_s && i_ffn_down < n_ffn_down / 8)
          type = CLL_TYPE_Q5_K;
        i_ffn_down++;
      } else if (name_has(t->name, "attn_qkv.weight")) {
        if (!pure && ftype == CLL_FTYPE_Q4_K_M)
          type = CLL_TYPE_Q5_K;
        else if (!pure && ftype == CLL_FTYPE_Q5_K_M)
          type = CLL_TYPE_Q6_K;
      }
    }
    /* Rows that do not divide into the chosen blocks. */
    if (!divides(type, t->ne[0])) {
      switch (type) {
      case CLL_TYPE_Q4_K:
        type = CLL_TYPE_Q5_0;
        break;
      case CLL_TYPE_Q5_K:
        type = CLL_TYPE_Q5_1;
        break;
      case CLL_TYPE_Q6_K:
        type = CLL_TYPE_Q8_0;
        break;
      default:
        break;
      }
      if (!divides(type, t->ne[0]))
        type = t->type;
    }
    types[i] = type;
  }
  return 0;
}

/* ------------------------------------------------------------ conversion */

struct job {
  const cll_kernels *k;
  const uint8_t *src;
  uint8_t *dst;
  uint32_t src_type, dst_type;
  int64_t ne0;
  int64_t r0, r1; /* rows [r0, r1) */
  int rc;
};

static void *convert_rows(void *arg) {
  struct job *j = arg;
  float *row = malloc((size_t)j->ne0 * sizeof(float));
  if (row == NULL) {
    j->rc = CLL_ENOMEM;
    return NULL;
  }
  size_t sb = cll_row_bytes(j->src_type, j->ne0), db = cll_row_bytes(j->dst_type, j->ne0);
  for (int64_t r = j->r0; r < j->r1; r++) {
    j->k->dequant_row[j->src_type](j->src + (size_t)r * sb, row, j->ne0);
    j->k->quantize_row[j->dst_type](row, j->dst + (size_t)r * db, j->ne0);
  }
  free(row);
  return NULL;
}

/* Converts all rows of t into dst, split over up to n_threads threads. */
static int convert_tensor(const cll_gguf_tensor *t, uint32_t dst_type, uint8_t *dst,
                          int n_threads) {
  enum { MAX_THREADS = 64 };
  const cll_kernels *k = cll_kernels_by_name("ref");
  int64_t rows = (int64_t)(t->ne[1] * t->ne[2] * t->ne[3]);
  if (n_threads > MAX_THREADS)
    n_threads = MAX_THREADS;
  if (n_threads > rows)
    n_threads = (int)rows;
  if (n_threads < 1)
    n_threads = 1;
  struct job jobs[MAX_THREADS];
  pthread_t tids[MAX_THREADS];
  bool started[MAX_THREADS] = {false};
  for (int i = 0; i < n_threads; i++) {
    jobs[i] = (struct job){k,
                           t->data,
                           dst,
                           t->type,
                           dst_type,
                           (int64_t)t->ne[0],
                           rows * i / n_threads,
                           rows * (i + 1) / n_threads,
                           0};
    if (i > 0)
      started[i] = pthread_create(&tids[i], NULL, convert_rows, &jobs[i]) == 0;
    if (i > 0 && !started[i])
      convert_rows(&jobs[i]); /* no thread: do it here */
  }
  convert_rows(&jobs[0]);
  int rc = 0;
  for (int i = 0; i < n_threads; i++) {
    if (started[i])
      pthread_join(tids[i], NULL);
    if (jobs[i].rc)
      rc = jobs[i].rc;
  }
  return rc;
}

static bool skip_ftype_keys(const char *key, void *ctx) {
  (void)ctx;
  return strcmp(key, "general.file_type") == 0 || strcmp(key, "general.quantization_version") == 0;
}

static int tensor_name(const cll_gguf_tensor *t, char *buf, size_t cap) {
  if (t->name.len >= cap)
    return CLL_EFORMAT;
  memcpy(buf, t->name.ptr, t->name.len);
  buf[t->name.len] = '\0';
  return 0;
}

int cll_quantize_file(const char *in_path, const char *out_path, const cll_quantize_params *p,
                      cll_err *err) {
  cll_gguf *src = NULL;
  cll_gguf_writer *w = NULL;
  uint32_t *types = NULL;
  uint8_t **bufs = NULL;
  int64_t n = 0;
  int rc = cll_gguf_open(in_path, &src, err);
  if (rc)
    return rc;
  n = cll_gguf_n_tensors(src);
  types = calloc((size_t)n + 1, sizeof *types);
  bufs = calloc((size_t)n + 1, sizeof *bufs);
  if (types == NULL || bufs == NULL) {
    rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
    goto err;
  }
  if ((rc = cll_quantize_plan(src, p->ftype, p->pure, types))) {
    cll_err_set(err, rc, "unknown target file type %d", (int)p->ftype);
    goto err;
  }
  if ((rc = cll_gguf_writer_new(out_path, &w, err)))
    goto err;
  cll_gguf_writer_copy_kv(w, src, skip_ftype_keys, NULL);
  cll_gguf_writer_set_u32(w, "general.quantization_version", 2);
  cll_gguf_writer_set_u32(w, "general.file_type", (uint32_t)p->ftype);
  int n_threads = p->n_threads > 0 ? p->n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  for (int64_t i = 0; i < n; i++) {
    const cll_gguf_tensor *t = cll_gguf_tensor_at(src, i);
    char name[512];
    if ((rc = tensor_name(t, name, sizeof name))) {
      cll_err_set(err, rc, "tensor %lld: name too long", (long long)i);
      goto err;
    }
    const void *data = t->data;
    uint64_t n_bytes = t->n_bytes;
    if (types[i] != t->type) {
      uint64_t rows = t->ne[1] * t->ne[2] * t->ne[3];
      size_t rb = cll_row_bytes(types[i], (int64_t)t->ne[0]);
      n_bytes = rows * rb;
      if (rb == 0 || (bufs[i] = malloc(n_bytes ? (size_t)n_bytes : 1)) == NULL) {
        rc = cll_err_set(err, CLL_ENOMEM, "out of memory for tensor %s", name);
        goto err;
      }
      if ((rc = convert_tensor(t, types[i], bufs[i], n_threads))) {
        cll_err_set(err, rc, "converting tensor %s: %s", name, cll_strerror(rc));
        goto err;
      }
      data = bufs[i];
    }
    if ((rc = cll_gguf_writer_add_tensor(w, name, types[i], t->n_dims, t->ne, data, n_bytes))) {
      cll_err_set(err, rc, "adding tensor %s to %s: %s", name, out_path, cll_strerror(rc));
      goto err;
    }
    if (p->progress)
      p->progress(p->progress_ctx, i, n, name, t->type, types[i]);
  }
  rc = cll_gguf_writer_finish(w, err); /* frees w */
  w = NULL;
err:
  cll_gguf_writer_free(w);
  for (int64_t i = 0; bufs && i < n; i++)
    free(bufs[i]);
  free(bufs);
  free(types);
  cll_gguf_close(src);
  return rc;
}
