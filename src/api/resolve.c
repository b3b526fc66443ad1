/* resolve.c — from a model name in a request to what the generation
 * endpoints need: the GGUF blob path and the small manifest layers
 * (template, system, params, messages, license), read from the store. */
#include "resolve.h"

#include "cllama/api.h"
#include "cllama/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_small_file(const char *path, size_t max, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = malloc(max + 1);
  size_t n = buf ? fread(buf, 1, max, f) : 0;
  fclose(f);
  if (!buf)
    return NULL;
  buf[n] = 0;
  if (len)
    *len = n;
  return buf;
}

static int layer_path(const cll_store *st, const cll_layer *l, char *path, size_t size) {
  char d[80];
  snprintf(d, sizeof(d), "sha256:%s", l->digest);
  return cll_store_blob_path(st, d, path, size);
}

static char *read_layer(const cll_store *st, const cll_layer *l) {
  char path[4096];
  if (!l || layer_path(st, l, path, sizeof(path)) != 0)
    return NULL;
  return read_small_file(path, 4u << 20, NULL);
}

int cll__model_resolve(const cll_store *st, const char *name, struct cll__model_ref *out,
                       cll_err *err) {
  memset(out, 0, sizeof(*out));
  cll_name want;
  if (cll_name_parse(name, &want) != 0)
    return cll_err_set(err, CLL_EINVAL, "invalid model name");
  if (cll_store_resolve(st, &want, &out->name) != 0) {
    out->name = want;
    cll_name_display(&want, out->display, sizeof(out->display));
    return cll_err_set(err, CLL_ENOENT, "model '%s' not found", name);
  }
  cll_name_display(&out->name, out->display, sizeof(out->display));
  cll_name_full(&out->name, out->full, sizeof(out->full));
  int rc = cll_store_read_manifest(st, &out->name, &out->man, err);
  if (rc != 0)
    return rc;
  const cll_layer *ml = cll_manifest_layer(out->man, CLL_MEDIA_MODEL);
  if (!ml) {
    cll__model_ref_free(out);
    return cll_err_set(err, CLL_EFORMAT, "model '%s' has no model layer", name);
  }
  layer_path(st, ml, out->model_path, sizeof(out->model_path));
  const cll_layer *tl = cll_manifest_layer(out->man, CLL_MEDIA_TEMPLATE);
  if (!tl)
    tl = cll_manifest_layer(out->man, CLL_MEDIA_PROMPT);
  out->template_text = read_layer(st, tl);
  out->system_text = read_layer(st, cll_manifest_layer(out->man, CLL_MEDIA_SYSTEM));
  char *params = read_layer(st, cll_manifest_layer(out->man, CLL_MEDIA_PARAMS));
  if (params) {
    out->params = json_loads(params, 0, NULL);
    free(params);
  }
  char *msgs = read_layer(st, cll_manifest_layer(out->man, CLL_MEDIA_MESSAGES));
  if (msgs) {
    out->messages = json_loads(msgs, 0, NULL);
    free(msgs);
  }
  /* Licenses can repeat: joined with "\n" as /api/show does. */
  cll_buf lic = {0};
  bool any = false;
  for (size_t i = 0; i < out->man->n_layers; i++) {
    if (strcmp(out->man->layers[i].media_type, CLL_MEDIA_LICENSE) != 0)
      continue;
    char *t = read_layer(st, &out->man->layers[i]);
    if (!t)
      continue;
    if (any)
      cll_buf_putc(&lic, '\n');
    cll_buf_puts(&lic, t);
    any = true;
    free(t);
  }
  if (any)
    out->license = cll_buf_steal(&lic); /* NULL when out of memory */
  return 0;
}

void cll__model_resolve_answer(cll_request *req, int rc, const struct cll__model_ref *ref,
                               const cll_err *err) {
  if (rc == CLL_EINVAL)
    cll_api_error(req, 400, "invalid model name");
  else if (rc == CLL_ENOENT)
    cll_api_errorf(req, 404, "model '%s' not found", ref->display);
  else
    cll_api_error(req, 500, err->msg);
}

void cll__model_ref_free(struct cll__model_ref *r) {
  if (!r)
    return;
  cll_manifest_free(r->man);
  free(r->template_text);
  free(r->system_text);
  free(r->license);
  json_decref(r->params);
  json_decref(r->messages);
  memset(r, 0, sizeof(*r));
}
