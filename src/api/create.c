/* create.c — POST /api/create and HEAD|POST /api/blobs/:digest (§1.12).
 *
 * Create builds a manifest from: the layers of an existing model (`from` a
 * model name), or a GGUF (`files` naming an uploaded blob, or — cllama
 * extension for the local CLI — `from` an absolute path to a GGUF on the
 * server's disk, copied into the store), then replaces or adds the
 * template, system, params (merged over the inherited ones), messages and
 * license layers, optionally quantizing the weights first. All file work
 * (hashing, copying, quantizing, reading the GGUF header) runs on a work
 * item; the status lines are gathered there and sent when it ends (the last
 * one alone with "stream": false). */
#include "cllama/api.h"
#include "cllama/gguf.h"
#include "cllama/quantize.h"
#include "capabilities.h"
#include "gen_core.h"
#include "tmpl.h"
#include "resolve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct layer_spec {
  char media[96];
  char digest[65];
  int64_t size;
  char from[512];
};

struct create {
  cll_api *api;
  cll_request *req;
  bool stream;
  cll_name name;
  char display[512];
  /* inputs (owned) */
  char *from_model_path; /* GGUF blob of the `from` model, or NULL */
  struct cll__model_ref from_ref;
  bool have_from_ref;
  char *gguf_path;      /* a GGUF file to copy in (absolute path), or NULL */
  char gguf_digest[65]; /* an uploaded blob (files), or "" */
  char *template_text, *system_text, *license_text;
  bool set_template, set_system, set_license;
  json_t *params;   /* merged params, or NULL */
  json_t *messages; /* replaces the inherited ones when set */
  char quantize[32];
  /* blobs pinned against collection until the manifest is written */
  char (*pins)[65];
  size_t n_pins, cap_pins;
  atomic_int cancelled; /* the client left or the server stops: stop copying */
  /* results */
  json_t *statuses; /* array of status objects */
  int rc;
  int status_code;
  cll_err err;
  uv_work_t work;
};

static void status(struct create *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status(struct create *c, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_array_append_new(c->statuses, json_pack("{s:s}", "status", msg));
}

static void create_free(struct create *c) {
  free(c->from_model_path);
  if (c->have_from_ref)
    cll__model_ref_free(&c->from_ref);
  free(c->gguf_path);
  free(c->template_text);
  free(c->system_text);
  free(c->license_text);
  json_decref(c->params);
  json_decref(c->messages);
  json_decref(c->statuses);
  free(c->pins);
  free(c);
}

/* Records a pin taken (to be released by unpin_all). */
static int pin_record(struct create *c, const char *hex) {
  if (c->n_pins == c->cap_pins) {
    size_t cap = c->cap_pins ? c->cap_pins * 2 : 16;
    char(*p)[65] = realloc(c->pins, cap * sizeof(*p));
    if (p == NULL)
      return CLL_ENOMEM;
    c->pins = p;
    c->cap_pins = cap;
  }
  memcpy(c->pins[c->n_pins++], hex, 65);
  return 0;
}

/* Pins a blob (64-digit hex) for the rest of the work item. */
static int pin(struct create *c, const char *hex) {
  if (cll_store_pin(c->api->store, hex) != 0)
    return CLL_ENOMEM;
  if (pin_record(c, hex) != 0) {
    cll_store_unpin(c->api->store, hex);
    return CLL_ENOMEM;
  }
  return 0;
}

static void unpin_all(struct create *c) {
  for (size_t i = 0; i < c->n_pins; i++)
    cll_store_unpin(c->api->store, c->pins[i]);
  c->n_pins = 0;
}

/* Copies a GGUF file into the store: only a regular file (a FIFO or a
 * device is refused without blocking: O_NONBLOCK, then fstat), only a GGUF
 * (magic and version checked before a byte is copied, the whole header
 * parsed on our copy before it is committed). The copy goes to our own
 * temporary (O_EXCL) in the store, hashed as it is written, fsync'ed and
 * renamed; the user's file is only read, never linked. Nothing enters the
 * store on failure. Error messages never name the path. */
static int store_file_blob(struct create *c, const char *path, char hex[65], int64_t *size) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) {
    c->status_code = 400;
    return cll_err_set(&c->err, CLL_EINVAL,
                       errno == ENOENT ? "file does not exist" : "cannot open the file: %s",
                       strerror(errno));
  }
  struct stat sb;
  if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
    close(fd);
    c->status_code = 400;
    return cll_err_set(&c->err, CLL_EINVAL, "not a regular file");
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  unsigned char head[8];
  if (pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) || memcmp(head, "GGUF", 4) != 0 ||
      (head[4] != 2 && head[4] != 3) || head[5] || head[6] || head[7]) {
    close(fd);
    c->status_code = 400;
    return cll_err_set(&c->err, CLL_EINVAL, "supplied file was not in GGUF format");
  }
  cll_blob_writer *w = NULL;
  int rc = cll_blob_writer_open(c->api->store, &w, &c->err);
  if (rc != 0) {
    close(fd);
    return rc;
  }
  size_t cap = 1 << 20;
  char *buf = malloc(cap);
  ssize_t n = 0;
  while (buf && rc == 0 && (n = read(fd, buf, cap)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      rc = cll_err_set(&c->err, CLL_EIO, "reading the file failed: %s", strerror(errno));
      break;
    }
    rc = cll_blob_writer_write(w, buf, (size_t)n, &c->err);
    if (rc == 0 && atomic_load(&c->cancelled))
      rc = cll_err_set(&c->err, CLL_ECANCELED, "create cancelled");
  }
  free(buf);
  close(fd);
  if (buf == NULL && rc == 0)
    rc = cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
  if (rc == 0) {
    cll_gguf *g = NULL;
    if (cll_gguf_open(cll_blob_writer_path(w), &g, NULL) != 0) {
      c->status_code = 400;
      rc = cll_err_set(&c->err, CLL_EINVAL, "supplied file was not in GGUF format");
    }
    cll_gguf_close(g);
  }
  if (rc != 0) {
    cll_blob_writer_abort(w);
    return rc;
  }
  /* commit pins the digest under the collection lock before it looks. */
  rc = cll_blob_writer_commit(w, NULL, hex, size, true, &c->err);
  if (rc != 0)
    return rc;
  if (pin_record(c, hex) != 0) {
    cll_store_unpin(c->api->store, hex);
    return cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
  }
  status(c, "creating new layer sha256:%s", hex);
  return 0;
}

static int put_small(struct create *c, const char *data, size_t len, struct layer_spec *l,
                     const char *media) {
  char hex[65], dg[80];
  cll_sha256_hex(data, len, hex);
  snprintf(dg, sizeof(dg), "sha256:%s", hex);
  if (pin(c, hex) != 0)
    return c->rc = cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
  bool exists = cll_store_blob_exists(c->api->store, dg, (int64_t)len);
  if (!exists) {
    int rc = cll_store_write_blob(c->api->store, dg, data, len, &c->err);
    if (rc != 0)
      return c->rc = rc;
  }
  status(c, "%s layer sha256:%s", exists ? "using existing" : "creating new", hex);
  snprintf(l->media, sizeof(l->media), "%s", media);
  memcpy(l->digest, hex, 65);
  l->size = (int64_t)len;
  l->from[0] = 0;
  return 0;
}

static void human_params(uint64_t n, char *buf, size_t cap) {
  double x = (double)n;
  if (x >= 1e9)
    snprintf(buf, cap, x / 1e9 == (double)(uint64_t)(x / 1e9) ? "%.0fB" : "%.1fB", x / 1e9);
  else if (x >= 1e6)
    snprintf(buf, cap, x / 1e6 == (double)(uint64_t)(x / 1e6) ? "%.0fM" : "%.2fM", x / 1e6);
  else if (x >= 1e3)
    snprintf(buf, cap, "%.0fK", x / 1e3);
  else
    snprintf(buf, cap, "%llu", (unsigned long long)n);
}

static void create_work(struct create *c);

static void on_create_work(uv_work_t *w) {
  struct create *c = w->data;
  create_work(c);
  unpin_all(c); /* the manifest is written (or the create failed) */
}

/* Pins every blob of the `from` model (and an uploaded GGUF), then checks
 * they are still there: a delete that ran first has removed them, one that
 * runs now leaves them alone. */
static int pin_inputs(struct create *c) {
  char dg[80];
  if (c->gguf_digest[0]) {
    snprintf(dg, sizeof(dg), "sha256:%s", c->gguf_digest);
    if (pin(c, c->gguf_digest) != 0)
      return cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
    if (!cll_store_blob_exists(c->api->store, dg, -1)) {
      c->status_code = 400;
      return cll_err_set(&c->err, CLL_EINVAL, "blob %s not found", dg);
    }
  }
  if (!c->have_from_ref)
    return 0;
  const cll_manifest *m = c->from_ref.man;
  for (size_t i = 0; i <= m->n_layers; i++) {
    const char *hex = i < m->n_layers ? m->layers[i].digest : m->config.digest;
    if (!hex[0])
      continue;
    snprintf(dg, sizeof(dg), "sha256:%s", hex);
    if (pin(c, hex) != 0)
      return cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
    if (i < m->n_layers && !cll_store_blob_exists(c->api->store, dg, -1)) {
      c->status_code = 404;
      return cll_err_set(&c->err, CLL_ENOENT, "model '%s' not found", c->from_ref.display);
    }
  }
  return 0;
}

static void create_work(struct create *c) {
  const cll_store *st = c->api->store;
  struct layer_spec layers[64];
  size_t nl = 0;
  char model_hex[65] = "", model_path[4200] = "";
  int64_t model_size = 0;
  char from_origin[512] = "";
  c->rc = pin_inputs(c);
  if (c->rc != 0)
    return;

  /* 1. The weights. */
  if (c->gguf_path) {
    status(c, "parsing GGUF");
    c->rc = store_file_blob(c, c->gguf_path, model_hex, &model_size);
  } else if (c->gguf_digest[0]) {
    status(c, "parsing GGUF");
    memcpy(model_hex, c->gguf_digest, 65);
  } else if (c->have_from_ref) {
    const cll_layer *ml = cll_manifest_layer(c->from_ref.man, CLL_MEDIA_MODEL);
    memcpy(model_hex, ml->digest, 65);
    model_size = ml->size;
    snprintf(from_origin, sizeof(from_origin), "%s", c->from_ref.display);
  }
  if (c->rc != 0)
    return;
  char dg[80];
  snprintf(dg, sizeof(dg), "sha256:%s", model_hex);
  cll_store_blob_path(st, dg, model_path, sizeof(model_path));
  cll_gguf *g = NULL;
  if (cll_gguf_open(model_path, &g, &c->err) != 0) {
    c->rc = CLL_EINVAL;
    c->status_code = 400;
    cll_err_set(&c->err, CLL_EINVAL, "supplied file was not in GGUF format");
    return;
  }
  struct stat sb;
  if (stat(model_path, &sb) == 0)
    model_size = (int64_t)sb.st_size;
  uint32_t ftype = 0;
  cll_gguf_get_u32(g, "general.file_type", &ftype);

  /* 2. Quantize. */
  if (c->quantize[0]) {
    enum cll_ftype want;
    bool pure;
    if (cll_quantize_parse(c->quantize, &want, &pure) != 0) {
      cll_gguf_close(g);
      c->rc = CLL_EINVAL;
      c->status_code = 400;
      cll_err_set(&c->err, CLL_EINVAL, "unsupported quantization type %s", c->quantize);
      return;
    }
    if (ftype != CLL_FTYPE_ALL_F32 && ftype != CLL_FTYPE_F16 && ftype != CLL_FTYPE_BF16) {
      cll_gguf_close(g);
      c->rc = CLL_EINVAL;
      c->status_code = 400;
      cll_err_set(&c->err, CLL_EINVAL,
                  "quantization is only supported for F16, BF16 and F32 "
                  "models");
      return;
    }
    const char *from_name = cll_quantize_ftype_name((enum cll_ftype)ftype);
    status(c, "quantizing %s model to %s", from_name ? from_name : "F32",
           cll_quantize_ftype_name(want));
    cll_gguf_close(g);
    g = NULL;
    /* Each create quantizes into its own directory (mkdtemp), so
     * concurrent creates never share a temporary file. */
    char dir[4300], out[4400];
    snprintf(dir, sizeof(dir), "%s/blobs/.tmp-blob-quantize-XXXXXX", cll_store_root(st));
    if (mkdtemp(dir) == NULL) {
      c->rc = cll_err_set(&c->err, cll_err_from_errno(errno),
                          "cannot create a file in the model store: %s", strerror(errno));
      return;
    }
    snprintf(out, sizeof(out), "%s/out.gguf", dir);
    cll_quantize_params qp = cll_quantize_defaults();
    qp.ftype = want;
    qp.pure = pure;
    c->rc = cll_quantize_file(model_path, out, &qp, &c->err);
    if (c->rc != 0)
      cll_err_set(&c->err, c->rc, "quantizing failed: %s", cll_strerror(c->rc));
    if (c->rc == 0)
      c->rc = store_file_blob(c, out, model_hex, &model_size);
    unlink(out);
    snprintf(out, sizeof(out), "%s/out.gguf.tmp", dir);
    unlink(out);
    rmdir(dir);
    if (c->rc != 0)
      return;
    snprintf(dg, sizeof(dg), "sha256:%s", model_hex);
    cll_store_blob_path(st, dg, model_path, sizeof(model_path));
    if ((c->rc = cll_gguf_open(model_path, &g, &c->err)) != 0)
      return;
    ftype = want;
  }

  /* 3. The config blob from the GGUF header. */
  cll_gguf_str arch = {"", 0};
  cll_gguf_get_str(g, "general.architecture", &arch);
  uint64_t n_params = cll__gguf_n_params(g);
  char psize[32], archs[64];
  human_params(n_params, psize, sizeof(psize));
  snprintf(archs, sizeof(archs), "%.*s", (int)arch.len, arch.ptr);
  cll_gguf_close(g);
  const char *ftn = cll_quantize_ftype_name((enum cll_ftype)ftype);

  snprintf(layers[nl].media, sizeof(layers[nl].media), "%s", CLL_MEDIA_MODEL);
  memcpy(layers[nl].digest, model_hex, 65);
  layers[nl].size = model_size;
  snprintf(layers[nl].from, sizeof(layers[nl].from), "%s", from_origin);
  nl++;

  /* 4. The other layers: given ones replace the inherited ones. */
  const char *tmpl = c->set_template    ? c->template_text
                     : c->have_from_ref ? c->from_ref.template_text
                                        : NULL;
  const char *sys = c->set_system      ? c->system_text
                    : c->have_from_ref ? c->from_ref.system_text
                                       : NULL;
  const char *lic = c->set_license     ? c->license_text
                    : c->have_from_ref ? c->from_ref.license
                                       : NULL;
  json_t *msgs = c->messages ? c->messages : c->have_from_ref ? c->from_ref.messages : NULL;
  if (!tmpl && !c->have_from_ref && c->gguf_path == NULL && 0)
    tmpl = NULL;
  if (tmpl && *tmpl && put_small(c, tmpl, strlen(tmpl), &layers[nl++], CLL_MEDIA_TEMPLATE))
    return;
  if (sys && *sys && put_small(c, sys, strlen(sys), &layers[nl++], CLL_MEDIA_SYSTEM))
    return;
  if (c->params && json_object_size(c->params) > 0) {
    char *p = json_dumps(c->params, JSON_COMPACT);
    int rc = p ? put_small(c, p, strlen(p), &layers[nl++], CLL_MEDIA_PARAMS) : CLL_ENOMEM;
    free(p);
    if (rc)
      return;
  }
  if (json_is_array(msgs) && json_array_size(msgs) > 0) {
    char *p = json_dumps(msgs, JSON_COMPACT);
    int rc = p ? put_small(c, p, strlen(p), &layers[nl++], CLL_MEDIA_MESSAGES) : CLL_ENOMEM;
    free(p);
    if (rc)
      return;
  }
  if (lic && *lic && put_small(c, lic, strlen(lic), &layers[nl++], CLL_MEDIA_LICENSE))
    return;

  json_t *cfg = json_pack("{s:s,s:s,s:[s],s:s,s:s,s:s,s:s}", "model_format", "gguf", "model_family",
                          archs, "model_families", archs, "model_type", psize, "file_type",
                          ftn ? ftn : "unknown", "architecture", "amd64", "os", "linux");
  char *cfg_text = cfg ? json_dumps(cfg, JSON_COMPACT) : NULL;
  json_decref(cfg);
  if (cfg_text == NULL) {
    c->rc = cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
    return;
  }
  struct layer_spec cfg_l;
  char chex[65];
  cll_sha256_hex(cfg_text, strlen(cfg_text), chex);
  snprintf(dg, sizeof(dg), "sha256:%s", chex);
  if (pin(c, chex) != 0) {
    free(cfg_text);
    c->rc = cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
    return;
  }
  if (!cll_store_blob_exists(st, dg, (int64_t)strlen(cfg_text)) &&
      (c->rc = cll_store_write_blob(st, dg, cfg_text, strlen(cfg_text), &c->err)) != 0) {
    free(cfg_text);
    return;
  }
  memcpy(cfg_l.digest, chex, 65);
  cfg_l.size = (int64_t)strlen(cfg_text);
  free(cfg_text);

  /* 5. The manifest. */
  json_t *ls = json_array();
  bool oom = ls == NULL;
  for (size_t i = 0; i < nl && !oom; i++) {
    char d2[80];
    snprintf(d2, sizeof(d2), "sha256:%s", layers[i].digest);
    json_t *l = json_pack("{s:s,s:s,s:I}", "mediaType", layers[i].media, "digest", d2, "size",
                          (json_int_t)layers[i].size);
    if (l && layers[i].from[0] && json_object_set_new(l, "from", json_string(layers[i].from)))
      oom = true;
    if (json_array_append_new(ls, l) != 0)
      oom = true;
  }
  if (oom) { /* never a manifest that lacks a layer */
    json_decref(ls);
    c->rc = cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
    return;
  }
  json_t *man = json_pack("{s:i,s:s,s:{s:s,s:s,s:I},s:o}", "schemaVersion", 2, "mediaType",
                          "application/vnd.docker.distribution.manifest.v2+json", "config",
                          "mediaType", "application/vnd.docker.container.image.v1+json", "digest",
                          dg, "size", (json_int_t)cfg_l.size, "layers", ls);
  char *mt = man ? json_dumps(man, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
  json_decref(man);
  if (mt == NULL) {
    c->rc = cll_err_set(&c->err, CLL_ENOMEM, "out of memory");
    return;
  }
  status(c, "writing manifest");
  c->rc = cll_store_write_manifest(st, &c->name, mt, strlen(mt), &c->err);
  free(mt);
  if (c->rc == 0)
    status(c, "success");
}

static void on_create_done(uv_work_t *w, int st) {
  struct create *c = w->data;
  if (c->rc != 0 && !c->status_code)
    c->status_code = cll_api_status(c->rc) == 404 ? 400 : cll_api_status(c->rc);
  if (!c->stream) {
    if (c->rc != 0)
      cll_api_error(c->req, c->status_code, c->err.msg);
    else
      cll_api_json(c->req, 200, json_pack("{s:s}", "status", "success"));
  } else if (c->rc != 0 && json_array_size(c->statuses) == 0) {
    cll_api_error(c->req, c->status_code, c->err.msg);
  } else {
    cll_stream_start(c->req, 200, "application/x-ndjson");
    size_t i;
    json_t *s;
    json_array_foreach(c->statuses, i, s) {
      char *t = json_dumps(s, JSON_COMPACT);
      if (t) {
        cll_stream_write(c->req, t, strlen(t));
        cll_stream_write(c->req, "\n", 1);
      }
      free(t);
    }
    if (c->rc != 0) {
      json_t *e = json_pack("{s:s}", "error", c->err.msg);
      char *t = e ? json_dumps(e, JSON_COMPACT) : NULL;
      static const char oom[] = "{\"error\":\"out of memory\"}";
      cll_stream_write(c->req, t ? t : oom, t ? strlen(t) : sizeof(oom) - 1);
      cll_stream_write(c->req, "\n", 1);
      free(t);
      json_decref(e);
    }
    cll_stream_end(c->req);
  }
  create_free(c);
}

static char *license_of(json_t *v) {
  if (json_is_string(v))
    return strdup(json_string_value(v));
  if (!json_is_array(v))
    return NULL;
  cll_buf b = {0};
  size_t i;
  json_t *x;
  json_array_foreach(v, i, x) {
    if (!json_is_string(x))
      continue;
    if (b.len)
      cll_buf_append(&b, "\n", 1);
    cll_buf_append(&b, json_string_value(x), json_string_length(x));
  }
  return cll_buf_steal(&b); /* NULL when out of memory */
}

/* Where a create may read a GGUF from the server's disk ("from": an
 * absolute path). CLLAMA_CREATE_PATHS unset: any path, for clients on a
 * loopback address only; set to a ':'-separated list of directories: files
 * under one of them (after resolving links), for any client; set empty:
 * never. Returns 0, or the status to answer with msg. */
static int path_allowed(cll_request *req, const char *path, char *msg, size_t cap) {
  const cll_config *cfg = cll_api_from(req)->cfg;
  const char *roots = cfg->create_paths_set ? cfg->create_paths : NULL;
  if (roots == NULL) {
    if (cll_request_peer_loopback(req))
      return 0;
    snprintf(msg, cap,
             "creating from a server path is only allowed from this machine "
             "(see CLLAMA_CREATE_PATHS)");
    return 403;
  }
  char real[PATH_MAX];
  if (realpath(path, real) == NULL) {
    snprintf(msg, cap, "file does not exist");
    return 400;
  }
  const char *p = roots;
  while (*p) {
    const char *e = strchr(p, ':');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char dir[PATH_MAX], rdir[PATH_MAX];
    if (n > 0 && n < sizeof(dir)) {
      memcpy(dir, p, n);
      dir[n] = 0;
      size_t rl;
      if (realpath(dir, rdir) != NULL && (rl = strlen(rdir)) > 0 && strncmp(real, rdir, rl) == 0 &&
          (real[rl] == '/' || rdir[rl - 1] == '/'))
        return 0;
    }
    p += n + (e ? 1 : 0);
    if (!e)
      break;
  }
  snprintf(msg, cap, "creating from this path is not allowed (see CLLAMA_CREATE_PATHS)");
  return 403;
}

static void on_create_cancel(cll_request *req, int reason, void *ud) {
  struct create *c = ud;
  atomic_store(&c->cancelled, 1);
}

static void fail(cll_request *req, struct create *c, json_t *body, int status, const char *msg) {
  cll_api_error(req, status, msg);
  json_decref(body);
  create_free(c);
}

static void on_create(cll_request *req, void *ud) {
  cll_api *api = ud;
  json_t *body = cll_api_body_object(req);
  if (!body)
    return;
  struct create *c = calloc(1, sizeof(*c));
  if (c == NULL || (c->statuses = json_array()) == NULL) {
    free(c);
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return;
  }
  c->api = api;
  c->req = req;
  int s = cll_api_stream_flag(req, body);
  if (s < 0) {
    json_decref(body);
    create_free(c);
    return;
  }
  c->stream = s == 1;
  const char *model = json_string_value(json_object_get(body, "model"));
  if (!model || !*model)
    model = json_string_value(json_object_get(body, "name"));
  if (!model || !*model || cll_name_parse(model, &c->name) != 0) {
    fail(req, c, body, 400, "invalid model name");
    return;
  }
  cll_name_display(&c->name, c->display, sizeof(c->display));
  const char *from = json_string_value(json_object_get(body, "from"));
  json_t *files = json_object_get(body, "files");
  cll_err err = {0};
  if (json_is_object(files) && json_object_size(files) > 0) {
    const char *fname;
    json_t *dv;
    json_object_foreach(files, fname, dv) {
      if (fname[0] == '/' || strstr(fname, "..")) {
        fail(req, c, body, 400, "file path must be relative");
        return;
      }
      char hex[65];
      if (!json_is_string(dv) || cll_digest_parse(json_string_value(dv), hex) != 0) {
        fail(req, c, body, 400, "invalid digest format");
        return;
      }
      if (!cll_store_blob_exists(api->store, json_string_value(dv), -1)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "blob %s not found", json_string_value(dv));
        fail(req, c, body, 400, msg);
        return;
      }
      memcpy(c->gguf_digest, hex, 65); /* one GGUF (adapters are not supported) */
    }
  } else if (from && *from) {
    if (from[0] == '/') {
      char msg[200];
      int st = path_allowed(req, from, msg, sizeof(msg));
      if (st != 0) {
        fail(req, c, body, st, msg);
        return;
      }
      c->gguf_path = strdup(from);
      if (c->gguf_path == NULL) {
        fail(req, c, body, 500, "out of memory");
        return;
      }
    } else {
      int rc = cll__model_resolve(api->store, from, &c->from_ref, &err);
      c->have_from_ref = true;
      if (rc != 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "model '%s' not found", from);
        fail(req, c, body, rc == CLL_EINVAL ? 400 : 404,
             rc == CLL_EINVAL ? "invalid model name" : msg);
        return;
      }
    }
  } else {
    fail(req, c, body, 400, "neither 'from' or 'files' was specified");
    return;
  }
  json_t *v;
  if ((v = json_object_get(body, "template")) && json_is_string(v)) {
    c->set_template = true;
    c->template_text = strdup(json_string_value(v));
    if (c->template_text == NULL) {
      fail(req, c, body, 500, "out of memory");
      return;
    }
    if (cll__template_check(c->template_text, &err) != 0) {
      fail(req, c, body, 400, err.msg);
      return;
    }
  }
  if ((v = json_object_get(body, "system")) && json_is_string(v)) {
    c->set_system = true;
    c->system_text = strdup(json_string_value(v));
    if (c->system_text == NULL) {
      fail(req, c, body, 500, "out of memory");
      return;
    }
  }
  if ((v = json_object_get(body, "license")) && (json_is_string(v) || json_is_array(v))) {
    c->set_license = true;
    c->license_text = license_of(v);
    if (c->license_text == NULL) {
      fail(req, c, body, 500, "out of memory");
      return;
    }
  }
  /* params: the inherited ones, then the request's on top. */
  c->params = c->have_from_ref && json_is_object(c->from_ref.params)
                  ? json_deep_copy(c->from_ref.params)
                  : json_object();
  if (c->params == NULL) {
    fail(req, c, body, 500, "out of memory");
    return;
  }
  json_t *p = json_object_get(body, "parameters");
  if (json_is_object(p)) {
    struct cll__gen_opts o;
    cll__gen_opts_defaults(&o);
    int rc = cll__gen_opts_apply(&o, p, &err);
    if (rc == 0)
      rc = cll_runners_check_num_thread(o.num_thread, &err);
    cll__gen_opts_free(&o);
    if (rc != 0) {
      fail(req, c, body, 400, err.msg);
      return;
    }
    if (json_object_update(c->params, p) != 0) {
      fail(req, c, body, 500, "out of memory");
      return;
    }
  }
  if ((v = json_object_get(body, "messages")) && json_is_array(v))
    if ((c->messages = json_deep_copy(v)) == NULL) {
      fail(req, c, body, 500, "out of memory");
      return;
    }
  if ((v = json_object_get(body, "quantize")) && json_is_string(v))
    snprintf(c->quantize, sizeof(c->quantize), "%s", json_string_value(v));
  json_decref(body);
  c->work.data = c;
  cll_request_on_cancel(req, on_create_cancel, c);
  if (uv_queue_work(api->loop, &c->work, on_create_work, on_create_done) != 0) {
    cll_api_error(req, 500, "cannot queue work");
    create_free(c);
  }
}

/* ---------------------------------------------------------------- blobs */

/* POST /api/blobs/:digest streams the body to disk, hashing as it goes,
 * with no size cap but the disk (`ollama create` uploads whole GGUFs this
 * way): pieces gather in a buffer on the loop; a full buffer is written by
 * a work item while the body is paused; the last work item checks the
 * digest and commits the blob (cll_blob_writer: our own O_EXCL temporary,
 * fsync, rename), or removes the temporary. */
#define UPLOAD_BUF (4u << 20)

struct blob_up {
  cll_api *api;
  cll_request *req;
  char hex[65];
  cll_blob_writer *w;
  cll_buf fill, out; /* filling on the loop / being written by the work item */
  bool working, ended, gone, answered;
  bool commit_now; /* set on the loop before the work item that commits is queued */
  int rc;          /* loop thread only */
  int work_rc;     /* the work item's result, read by the loop in on_upload_done */
  int status;
  char msg[600];
  cll_err err;
  uv_work_t work;
};

static void blob_up_free(struct blob_up *b) {
  if (b->w)
    cll_blob_writer_abort(b->w);
  cll_buf_free(&b->fill);
  cll_buf_free(&b->out);
  free(b);
}

static void on_upload_work(uv_work_t *w) {
  /* Queued only while b->rc is 0. b->rc is read on the loop while this
   * runs (on_upload_body), so the result goes to work_rc and the loop takes
   * it in on_upload_done. */
  struct blob_up *b = w->data;
  int rc = 0;
  if (b->out.len > 0)
    rc = cll_blob_writer_write(b->w, b->out.data, b->out.len, &b->err);
  cll_buf_reset(&b->out);
  if (rc == 0 && b->commit_now) {
    cll_blob_writer *wr = b->w;
    b->w = NULL;
    rc = cll_blob_writer_commit(wr, b->hex, NULL, NULL, false, &b->err);
  }
  b->work_rc = rc;
}

static void upload_step(struct blob_up *b);

static void on_upload_done(uv_work_t *w, int st) {
  struct blob_up *b = w->data;
  b->working = false;
  if (b->rc == 0)
    b->rc = b->work_rc;
  upload_step(b);
}

/* Moves the upload on: answer, or write what is buffered. */
static void upload_step(struct blob_up *b) {
  if (b->working)
    return;
  if (b->gone || b->rc != 0 || (b->ended && b->w == NULL)) {
    if (!b->answered) {
      b->answered = true;
      if (b->gone)
        cll_respond(b->req, 499, NULL, NULL, 0);
      else if (b->rc == CLL_EDIGEST)
        cll_api_error(b->req, 400, b->err.msg);
      else if (b->rc != 0)
        cll_api_error(b->req, 500, b->err.msg);
      else
        cll_respond(b->req, 201, NULL, NULL, 0);
    }
    blob_up_free(b); /* aborts (removes) an unfinished temporary */
    return;
  }
  if (b->fill.len < UPLOAD_BUF && !b->ended) {
    cll_request_pause_body(b->req, false);
    return;
  }
  /* Hand the buffer to a work item; keep reading into the other one. */
  cll_buf t = b->out; /* empty: the last work item reset it */
  b->out = b->fill;
  b->fill = t;
  b->working = true;
  b->commit_now = b->ended;
  b->work.data = b;
  if (!b->ended)
    cll_request_pause_body(b->req, false);
  if (uv_queue_work(b->api->loop, &b->work, on_upload_work, on_upload_done) != 0) {
    b->working = false;
    b->rc = cll_err_set(&b->err, CLL_EIO, "cannot queue work");
    upload_step(b);
  }
}

static void on_upload_body(cll_request *req, const char *data, size_t len, void *ud) {
  struct blob_up *b = ud;
  if (b->answered || b->rc != 0)
    return;
  if (data == NULL) {
    b->ended = true;
    upload_step(b);
    return;
  }
  /* The piece is consumed by the parser: keep all of it. */
  if (b->fill.cap == 0) /* one allocation holds a whole buffer (and the NUL) */
    cll_buf_reserve(&b->fill, UPLOAD_BUF - 1);
  if (cll_buf_append(&b->fill, data, len) != 0) {
    b->rc = cll_err_set(&b->err, CLL_ENOMEM, "out of memory");
    upload_step(b);
    return;
  }
  if (b->fill.len >= UPLOAD_BUF) {
    upload_step(b); /* hands the buffer to a work item unless one is running */
    if (!b->answered && b->fill.len >= UPLOAD_BUF)
      cll_request_pause_body(req, true); /* both buffers full: wait for the disk */
  }
}

static void on_upload_cancel(cll_request *req, int reason, void *ud) {
  struct blob_up *b = ud;
  b->gone = true;
  upload_step(b);
}

static void on_exists_body(cll_request *req, const char *data, size_t len, void *ud) {
  if (data == NULL)
    cll_respond(req, 200, NULL, NULL, 0);
}

static void on_blob(cll_request *req, void *ud) {
  cll_api *api = ud;
  const char *digest = cll_request_param(req, "digest");
  char hex[65];
  bool head = strcmp(cll_request_method(req), "HEAD") == 0;
  if (!digest || cll_digest_parse(digest, hex) != 0) {
    cll_api_error(req, 400, "invalid digest format");
    return;
  }
  char dg[80];
  snprintf(dg, sizeof(dg), "sha256:%s", hex);
  bool exists = cll_store_blob_exists(api->store, dg, -1);
  if (head) {
    if (exists)
      cll_respond(req, 200, NULL, NULL, 0);
    else
      cll_api_errorf(req, 404, "blob \"%s\" not found", digest);
    return;
  }
  if (exists) {
    /* Read the body to its end (a client still sending would otherwise
     * get a reset), then 200 as Ollama. */
    cll_request_read_body(req, on_exists_body, NULL);
    return;
  }
  struct blob_up *b = calloc(1, sizeof(*b));
  cll_err err = {0};
  if (b == NULL || cll_blob_writer_open(api->store, &b->w, &err) != 0) {
    if (b)
      blob_up_free(b);
    cll_api_error(req, 500, err.msg[0] ? err.msg : "out of memory");
    return;
  }
  b->api = api;
  b->req = req;
  memcpy(b->hex, hex, 65);
  cll_request_on_cancel(req, on_upload_cancel, b);
  cll_request_read_body(req, on_upload_body, b);
}

int cll_api_create_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"POST", "/api/create", on_create, false},
      {"HEAD", "/api/blobs/:digest", on_blob, false},
      {"POST", "/api/blobs/:digest", on_blob, true}, /* streamed to disk */
  };
  return CLL_API_ROUTES(api, routes);
}
