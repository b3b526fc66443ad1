/* manifest.c — reading, listing, copying and deleting manifests
 * (OLLAMA_API.md §3.2–3.5). Manifests are found exactly four directory
 * levels under manifests/ (host/namespace/model/tag), as Ollama's glob
 * does; entries whose path is not a valid name are skipped with a warning.
 * A manifest that does not parse, or whose blobs are missing, is left out
 * of the listing and logged, never an error for the whole list. */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX_BYTES (4u << 20) /* real manifests are ~1 KiB */
#define CONFIG_MAX_BYTES (4u << 20)

/* Reads a whole small file into a new NUL-terminated buffer. */
static int read_small(const char *path, size_t max, char **out, size_t *len, struct stat *sb) {
  FILE *f = fopen(path, "rb");
  if (f == NULL)
    return cll_err_from_errno(errno);
  if (fstat(fileno(f), sb) != 0 || !S_ISREG(sb->st_mode)) {
    fclose(f);
    return CLL_ENOENT;
  }
  if ((size_t)sb->st_size > max) {
    fclose(f);
    return CLL_ETOOBIG;
  }
  size_t n = (size_t)sb->st_size;
  char *buf = malloc(n + 1);
  if (buf == NULL) {
    fclose(f);
    return CLL_ENOMEM;
  }
  size_t got = fread(buf, 1, n, f);
  fclose(f);
  if (got != n) {
    free(buf);
    return CLL_EIO;
  }
  buf[n] = '\0';
  *out = buf;
  *len = n;
  return 0;
}

static void layer_free(cll_layer *l) {
  free(l->media_type);
  free(l->from);
  l->media_type = l->from = NULL;
}

void cll_manifest_free(cll_manifest *m) {
  if (m == NULL)
    return;
  layer_free(&m->config);
  for (size_t i = 0; i < m->n_layers; i++)
    layer_free(&m->layers[i]);
  free(m->layers);
  for (size_t i = 0; i < m->cfg.n_families; i++)
    free(m->cfg.families[i]);
  free(m->cfg.families);
  free(m->raw);
  free(m);
}

const cll_layer *cll_manifest_layer(const cll_manifest *m, const char *media_type) {
  for (size_t i = 0; i < m->n_layers; i++)
    if (strcmp(m->layers[i].media_type, media_type) == 0)
      return &m->layers[i];
  return NULL;
}

static int parse_layer(json_t *o, cll_layer *l) {
  if (!json_is_object(o))
    return CLL_EFORMAT;
  json_t *mt = json_object_get(o, "mediaType"), *dg = json_object_get(o, "digest"),
         *sz = json_object_get(o, "size"), *from = json_object_get(o, "from");
  if (!json_is_string(dg) || cll_digest_parse(json_string_value(dg), l->digest) != 0)
    return CLL_EFORMAT;
  if (sz != NULL && !json_is_integer(sz))
    return CLL_EFORMAT;
  l->size = sz ? json_integer_value(sz) : 0;
  if (l->size < 0)
    return CLL_EFORMAT;
  l->media_type = strdup(json_is_string(mt) ? json_string_value(mt) : "");
  l->from = strdup(json_is_string(from) ? json_string_value(from) : "");
  return l->media_type && l->from ? 0 : CLL_ENOMEM;
}

static void copy_str(json_t *o, const char *key, char *dst, size_t size) {
  json_t *v = json_object_get(o, key);
  if (json_is_string(v))
    snprintf(dst, size, "%s", json_string_value(v));
}

/* The config blob's model fields; a missing or odd config leaves them empty. */
static void read_config(const cll_store *st, cll_manifest *m) {
  char path[CLL__PATH_MAX];
  char digest[80];
  snprintf(digest, sizeof(digest), "sha256:%s", m->config.digest);
  if (cll_store_blob_path(st, digest, path, sizeof(path)) != 0)
    return;
  char *buf;
  size_t len;
  struct stat sb;
  if (read_small(path, CONFIG_MAX_BYTES, &buf, &len, &sb) != 0)
    return;
  json_t *root = json_loadb(buf, len, 0, NULL);
  free(buf);
  if (!json_is_object(root)) {
    json_decref(root);
    return;
  }
  cll_model_config *c = &m->cfg;
  copy_str(root, "model_format", c->format, sizeof(c->format));
  copy_str(root, "model_family", c->family, sizeof(c->family));
  copy_str(root, "model_type", c->parameter_size, sizeof(c->parameter_size));
  copy_str(root, "file_type", c->quantization_level, sizeof(c->quantization_level));
  json_t *v = json_object_get(root, "context_length");
  if (json_is_integer(v))
    c->context_length = json_integer_value(v);
  v = json_object_get(root, "embedding_length");
  if (json_is_integer(v))
    c->embedding_length = json_integer_value(v);
  json_t *fams = json_object_get(root, "model_families");
  if (json_is_array(fams) && json_array_size(fams) > 0) {
    c->families = calloc(json_array_size(fams), sizeof(char *));
    for (size_t i = 0; c->families && i < json_array_size(fams); i++) {
      json_t *f = json_array_get(fams, i);
      if (json_is_string(f) && (c->families[c->n_families] = strdup(json_string_value(f))))
        c->n_families++;
    }
  }
  json_decref(root);
}

int cll_store_read_manifest(const cll_store *st, const cll_name *name, cll_manifest **out,
                            cll_err *err) {
  *out = NULL;
  char path[CLL__PATH_MAX], display[512];
  cll_name_display(name, display, sizeof(display));
  if (cll_store_manifest_path(st, name, path, sizeof(path)) != 0)
    return cll_err_set(err, CLL_ETOOBIG, "model path too long");
  cll_manifest *m = calloc(1, sizeof(*m));
  if (m == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  m->name = *name;
  struct stat sb;
  int rc = read_small(path, MANIFEST_MAX_BYTES, &m->raw, &m->raw_len, &sb);
  if (rc != 0) {
    free(m);
    if (rc == CLL_ENOENT)
      return cll_err_set(err, CLL_ENOENT, "model '%s' not found", display);
    return cll_err_set(err, rc == CLL_ETOOBIG ? CLL_EFORMAT : rc, "manifest of %s: %s", display,
                       cll_strerror(rc));
  }
  m->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000LL + sb.st_mtim.tv_nsec;
  cll_sha256_hex(m->raw, m->raw_len, m->digest);
  json_error_t jerr;
  json_t *root = json_loadb(m->raw, m->raw_len, 0, &jerr);
  if (root == NULL && json_error_code(&jerr) == json_error_out_of_memory) {
    cll_manifest_free(m); /* not the manifest's fault (found by test_chaos) */
    return cll_err_set(err, CLL_ENOMEM, "manifest of %s: out of memory", display);
  }
  if (!json_is_object(root)) {
    json_decref(root);
    cll_manifest_free(m);
    return cll_err_set(err, CLL_EFORMAT, "manifest of %s: %s", display,
                       root ? "not an object" : jerr.text);
  }
  json_t *layers = json_object_get(root, "layers");
  rc = parse_layer(json_object_get(root, "config"), &m->config);
  if (rc == 0 && !json_is_array(layers))
    rc = CLL_EFORMAT;
  if (rc == 0) {
    size_t n = json_array_size(layers);
    m->layers = calloc(n ? n : 1, sizeof(*m->layers));
    if (m->layers == NULL)
      rc = CLL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
      rc = parse_layer(json_array_get(layers, i), &m->layers[i]);
      m->n_layers = i + 1;
    }
  }
  json_decref(root);
  if (rc != 0) {
    cll_manifest_free(m);
    return cll_err_set(err, rc, "manifest of %s: %s", display,
                       rc == CLL_EFORMAT ? "missing or malformed config/layers" : cll_strerror(rc));
  }
  m->size = m->config.size;
  for (size_t i = 0; i < m->n_layers; i++)
    m->size += m->layers[i].size;
  read_config(st, m);
  *out = m;
  return 0;
}

/* ------------------------------------------------------------- the walk */

typedef int (*walk_fn)(const cll_name *n, void *ud); /* non-zero stops the walk */

static int is_dot(const char *s) {
  return s[0] == '.';
}

/* Calls fn for every valid manifest name exactly four levels down. */
static int walk(const cll_store *st, walk_fn fn, void *ud) {
  char p0[CLL__PATH_MAX];
  cll__pathf(p0, "%s/manifests", st->root);
  DIR *d0 = opendir(p0);
  if (d0 == NULL)
    return errno == ENOENT ? 0 : cll_err_from_errno(errno);
  int stop = 0;
  struct dirent *e0, *e1, *e2, *e3;
  while (!stop && (e0 = readdir(d0))) {
    if (is_dot(e0->d_name))
      continue;
    char p1[CLL__PATH_MAX];
    if (cll__pathf(p1, "%s/%s", p0, e0->d_name) != 0)
      continue;
    DIR *d1 = opendir(p1);
    if (d1 == NULL)
      continue;
    while (!stop && (e1 = readdir(d1))) {
      if (is_dot(e1->d_name))
        continue;
      char p2[CLL__PATH_MAX];
      if (cll__pathf(p2, "%s/%s", p1, e1->d_name) != 0)
        continue;
      DIR *d2 = opendir(p2);
      if (d2 == NULL)
        continue;
      while (!stop && (e2 = readdir(d2))) {
        if (is_dot(e2->d_name))
          continue;
        char p3[CLL__PATH_MAX];
        if (cll__pathf(p3, "%s/%s", p2, e2->d_name) != 0)
          continue;
        DIR *d3 = opendir(p3);
        if (d3 == NULL)
          continue;
        while (!stop && (e3 = readdir(d3))) {
          if (is_dot(e3->d_name) || strstr(e3->d_name, ".tmp-"))
            continue;
          char full[4 * 400];
          snprintf(full, sizeof(full), "%s/%s/%s:%s", e0->d_name, e1->d_name, e2->d_name,
                   e3->d_name);
          cll_name n;
          if (cll_name_parse(full, &n) != 0 || strcmp(n.host, e0->d_name) != 0 ||
              strcmp(n.ns, e1->d_name) != 0 || strcmp(n.model, e2->d_name) != 0 ||
              strcmp(n.tag, e3->d_name) != 0) {
            fprintf(stderr, "store: bad manifest name %s/%s/%s/%s, skipped\n", e0->d_name,
                    e1->d_name, e2->d_name, e3->d_name);
            continue;
          }
          stop = fn(&n, ud);
        }
        closedir(d3);
      }
      closedir(d2);
    }
    closedir(d1);
  }
  closedir(d0);
  return stop < 0 ? stop : 0;
}

struct resolve_ctx {
  const cll_name *want;
  cll_name found;
  int ok;
};

static int resolve_cb(const cll_name *n, void *ud) {
  struct resolve_ctx *r = ud;
  if (cll_name_equal(n, r->want)) {
    r->found = *n;
    r->ok = 1;
    return 1;
  }
  return 0;
}

int cll_store_resolve(const cll_store *st, const cll_name *want, cll_name *found) {
  char path[CLL__PATH_MAX];
  struct stat sb;
  if (cll_store_manifest_path(st, want, path, sizeof(path)) == 0 && stat(path, &sb) == 0 &&
      S_ISREG(sb.st_mode)) {
    /* The exact spelling exists (on a case-insensitive file system this
     * may still differ from the stored one; that is harmless there). */
    if (found != want)
      *found = *want;
    return 0;
  }
  struct resolve_ctx r = {.want = want};
  walk(st, resolve_cb, &r);
  if (!r.ok)
    return CLL_ENOENT;
  *found = r.found;
  return 0;
}

/* ------------------------------------------------------------- listing */

struct list_ctx {
  const cll_store *st;
  cll_manifest **items;
  size_t n, cap;
  int rc;
};

static int blobs_present(const cll_store *st, const cll_manifest *m, const char **missing) {
  char digest[80];
  snprintf(digest, sizeof(digest), "sha256:%s", m->config.digest);
  if (!cll_store_blob_exists(st, digest, -1)) {
    *missing = m->config.digest;
    return 0;
  }
  for (size_t i = 0; i < m->n_layers; i++) {
    snprintf(digest, sizeof(digest), "sha256:%s", m->layers[i].digest);
    if (!cll_store_blob_exists(st, digest, -1)) {
      *missing = m->layers[i].digest;
      return 0;
    }
  }
  return 1;
}

static int list_cb(const cll_name *n, void *ud) {
  struct list_ctx *l = ud;
  cll_manifest *m;
  cll_err err = {0};
  char display[512];
  cll_name_display(n, display, sizeof(display));
  int rrc = cll_store_read_manifest(l->st, n, &m, &err);
  if (rrc == CLL_EFORMAT) /* jansson reports a failed allocation as a syntax error: */
    rrc = cll_store_read_manifest(l->st, n, &m, &err); /* a broken file fails again */
  if (rrc == CLL_ENOMEM) { /* not the manifest's fault: the listing fails */
    l->rc = rrc;
    return -1;
  }
  if (rrc != 0) {
    fprintf(stderr, "store: skipping %s: %s\n", display, err.msg);
    return 0;
  }
  const char *missing = NULL;
  if (!blobs_present(l->st, m, &missing)) {
    fprintf(stderr, "store: skipping %s: blob sha256-%s is missing\n", display, missing);
    cll_manifest_free(m);
    return 0;
  }
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    cll_manifest **items = realloc(l->items, cap * sizeof(*items));
    if (items == NULL) {
      cll_manifest_free(m);
      l->rc = CLL_ENOMEM;
      return -1;
    }
    l->items = items;
    l->cap = cap;
  }
  l->items[l->n++] = m;
  return 0;
}

static int by_mtime_desc(const void *a, const void *b) {
  const cll_manifest *x = *(cll_manifest *const *)a, *y = *(cll_manifest *const *)b;
  return x->mtime_ns < y->mtime_ns ? 1 : x->mtime_ns > y->mtime_ns ? -1 : 0;
}

int cll_store_list(const cll_store *st, cll_manifest ***out, size_t *n, cll_err *err) {
  struct list_ctx l = {.st = st};
  int rc = walk(st, list_cb, &l);
  if (rc == 0)
    rc = l.rc;
  if (rc != 0) {
    cll_store_list_free(l.items, l.n);
    return cll_err_set(err, rc, "listing models: %s", cll_strerror(rc));
  }
  if (l.n > 1)
    qsort(l.items, l.n, sizeof(*l.items), by_mtime_desc);
  *out = l.items;
  *n = l.n;
  return 0;
}

void cll_store_list_free(cll_manifest **list, size_t n) {
  for (size_t i = 0; i < n; i++)
    cll_manifest_free(list[i]);
  free(list);
}

/* ------------------------------------------------------------- writing */

int cll_store_write_manifest(const cll_store *st, const cll_name *name, const void *bytes,
                             size_t len, cll_err *err) {
  char path[CLL__PATH_MAX];
  if (cll_store_manifest_path(st, name, path, sizeof(path)) != 0)
    return cll_err_set(err, CLL_ETOOBIG, "model path too long");
  char dir[CLL__PATH_MAX];
  cll__pathf(dir, "%s", path);
  *strrchr(dir, '/') = '\0';
  int rc = cll__mkdirs(dir);
  if (rc != 0)
    return cll_err_set(err, rc, "cannot create %s: %s", cll__store_rel(st, dir), cll_strerror(rc));
  return cll__write_atomic(path, bytes, len, err);
}

int cll_store_copy(const cll_store *st, const cll_name *src, const cll_name *dst, cll_err *err) {
  cll_manifest *m;
  int rc = cll_store_read_manifest(st, src, &m, err);
  if (rc != 0)
    return rc;
  rc = cll_store_write_manifest(st, dst, m->raw, m->raw_len, err);
  cll_manifest_free(m);
  return rc;
}

/* --------------------------------------------------------------- delete */

struct refs_ctx {
  const cll_store *st;
  char (*digests)[65];
  size_t n, cap;
  char **unparsed; /* raw bytes of manifests that do not parse */
  size_t n_unparsed;
  int corrupt; /* out of memory, or an unreadable manifest: keep every blob */
};

static int refs_add(struct refs_ctx *r, const char *hex) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 64;
    char(*d)[65] = realloc(r->digests, cap * sizeof(*d));
    if (d == NULL)
      return -1;
    r->digests = d;
    r->cap = cap;
  }
  memcpy(r->digests[r->n++], hex, 65);
  return 0;
}

static int refs_cb(const cll_name *n, void *ud) {
  struct refs_ctx *r = ud;
  cll_manifest *m;
  if (cll_store_read_manifest(r->st, n, &m, NULL) != 0) {
    /* Ollama skips such manifests; we also keep any blob whose digest
     * appears in their text, in case they are repaired later. */
    char path[CLL__PATH_MAX], *raw;
    size_t len;
    struct stat sb;
    char **u = realloc(r->unparsed, (r->n_unparsed + 1) * sizeof(*u));
    if (u == NULL) {
      r->corrupt = 1;
      return 0;
    }
    r->unparsed = u;
    if (cll_store_manifest_path(r->st, n, path, sizeof(path)) != 0 ||
        read_small(path, MANIFEST_MAX_BYTES, &raw, &len, &sb) != 0) {
      r->corrupt = 1;
      return 0;
    }
    r->unparsed[r->n_unparsed++] = raw;
    return 0;
  }
  int rc = refs_add(r, m->config.digest);
  for (size_t i = 0; rc == 0 && i < m->n_layers; i++)
    rc = refs_add(r, m->layers[i].digest);
  cll_manifest_free(m);
  if (rc != 0)
    r->corrupt = 1; /* out of memory: keep every blob */
  return rc;
}

static int referenced(const struct refs_ctx *r, const char *hex) {
  for (size_t i = 0; i < r->n; i++)
    if (strcmp(r->digests[i], hex) == 0)
      return 1;
  for (size_t i = 0; i < r->n_unparsed; i++)
    if (strcasestr(r->unparsed[i], hex))
      return 1;
  return 0;
}

int cll_store_collect(const cll_store *cst, const char *const *hexes, size_t n) {
  cll_store *st = (cll_store *)cst;
  /* Under the lock for the whole walk: a create or pull pins its blobs
   * before it checks them and unpins only after its manifest is written,
   * so a blob is either pinned here or referenced by a manifest we read. */
  pthread_mutex_lock(&st->gc_lock);
  struct refs_ctx r = {.st = st};
  walk(st, refs_cb, &r);
  int removed = 0;
  if (!r.corrupt) {
    for (size_t i = 0; i < n; i++) {
      if (referenced(&r, hexes[i]) || cll__store_pinned_locked(st, hexes[i]))
        continue;
      bool dup = false;
      for (size_t k = 0; k < i && !dup; k++)
        dup = strcmp(hexes[k], hexes[i]) == 0;
      char digest[80], bpath[CLL__PATH_MAX];
      snprintf(digest, sizeof(digest), "sha256:%s", hexes[i]);
      if (dup || cll_store_blob_path(st, digest, bpath, sizeof(bpath)) != 0)
        continue;
      if (unlink(bpath) == 0)
        removed++;
      else if (errno != ENOENT)
        fprintf(stderr, "store: cannot delete blob %s: %s\n", cll__store_rel(st, bpath),
                strerror(errno));
    }
  } else {
    removed = -1;
  }
  pthread_mutex_unlock(&st->gc_lock);
  free(r.digests);
  for (size_t i = 0; i < r.n_unparsed; i++)
    free(r.unparsed[i]);
  free(r.unparsed);
  return removed;
}

int cll_store_delete(const cll_store *st, const cll_name *name, cll_err *err) {
  char display[512];
  cll_name_display(name, display, sizeof(display));
  cll_manifest *m = NULL;
  cll_err rerr = {0};
  int rc = cll_store_read_manifest(st, name, &m, &rerr);
  if (rc == CLL_ENOENT)
    return cll_err_set(err, CLL_ENOENT, "model '%s' not found", display);
  /* A broken manifest can still be deleted; its blobs are then unknown. */
  char path[CLL__PATH_MAX];
  cll_store_manifest_path(st, name, path, sizeof(path));
  if (unlink(path) != 0) {
    int e = errno;
    cll_manifest_free(m);
    return cll_err_set(err, cll_err_from_errno(e), "delete %s: %s", display, strerror(e));
  }
  /* Prune empty directories up to manifests/. */
  for (int i = 0; i < 3; i++) {
    char *slash = strrchr(path, '/');
    if (slash == NULL)
      break;
    *slash = '\0';
    if (rmdir(path) != 0)
      break;
  }
  if (m == NULL)
    return 0;
  const char *hexes[1 + 256];
  size_t nh = 0;
  hexes[nh++] = m->config.digest;
  for (size_t i = 0; i < m->n_layers && nh < CLL_ARRAY_LEN(hexes); i++)
    hexes[nh++] = m->layers[i].digest;
  if (cll_store_collect(st, hexes, nh) < 0)
    fprintf(stderr, "store: a manifest is unreadable; blobs of %s kept\n", display);
  cll_manifest_free(m);
  return 0;
}
