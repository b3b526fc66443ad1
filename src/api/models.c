/* models.c — the model-management endpoints that need only the store:
 * GET|HEAD /, GET|HEAD /api/version, GET|HEAD /api/tags, POST /api/copy,
 * DELETE /api/delete (OLLAMA_API.md §0, §1.7, §1.9, §3.5).
 *
 * TODO: /api/tags "capabilities" and the GGUF fallbacks for details
 * (file_type, context_length) need the GGUF reader; they are left out until
 * the model module can be called from here. */
#include "cllama/api.h"
#include "resolve.h"

#include <string.h>

static void on_root(cll_request *req, void *ud) {
  static const char text[] = "Ollama is running";
  cll_respond(req, 200, "text/plain; charset=utf-8", text, sizeof(text) - 1);
}

static void on_version(cll_request *req, void *ud) {
  cll_api_json(req, 200, json_pack("{s:s}", "version", CLL_API_OLLAMA_VERSION));
}

/* details as in §1.7; families is null when the config has none (Go's nil slice). */
static json_t *details_json(const cll_manifest *m) {
  const cll_layer *model = cll_manifest_layer(m, CLL_MEDIA_MODEL);
  json_t *fams = json_null();
  if (m->cfg.n_families) {
    fams = json_array();
    for (size_t i = 0; i < m->cfg.n_families; i++)
      json_array_append_new(fams, json_string(m->cfg.families[i]));
  }
  json_t *d = json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "parent_model", model ? model->from : "",
                        "format", m->cfg.format, "family", m->cfg.family, "families", fams,
                        "parameter_size", m->cfg.parameter_size, "quantization_level",
                        m->cfg.quantization_level);
  if (d && m->cfg.context_length > 0)
    json_object_set_new(d, "context_length", json_integer(m->cfg.context_length));
  if (d && m->cfg.embedding_length > 0)
    json_object_set_new(d, "embedding_length", json_integer(m->cfg.embedding_length));
  return d;
}

static void on_tags(cll_request *req, void *ud) {
  cll_api *api = cll_api_from(req);
  cll_manifest **list;
  size_t n;
  cll_err err = {0};
  int rc = cll_store_list(api->store, &list, &n, &err);
  if (rc != 0) {
    cll_api_error(req, cll_api_status(rc), err.msg);
    return;
  }
  json_t *models = json_array();
  for (size_t i = 0; i < n; i++) {
    const cll_manifest *m = list[i];
    char name[512], when[64];
    cll_name_display(&m->name, name, sizeof(name));
    cll_api_time_rfc3339(m->mtime_ns, when, sizeof(when));
    json_array_append_new(models, json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", name, "model",
                                            name, "modified_at", when, "size",
                                            (json_int_t)m->size, "digest", m->digest,
                                            "details", details_json(m)));
  }
  cll_store_list_free(list, n);
  cll_api_json(req, 200, json_pack("{s:o}", "models", models));
}

static void on_copy(cll_request *req, void *ud) {
  cll_api *api = cll_api_from(req);
  json_t *body = cll_api_body_object(req);
  if (body == NULL)
    return;
  bool failed = false;
  const char *src_s = cll_api_opt_string(req, body, "source", &failed);
  const char *dst_s = failed ? NULL : cll_api_opt_string(req, body, "destination", &failed);
  if (failed) {
    json_decref(body);
    return;
  }
  cll_name src, dst;
  if (cll_name_parse(src_s ? src_s : "", &src) != 0) {
    cll_api_errorf(req, 400, "source \"%s\" is invalid", src_s ? src_s : "");
  } else if (cll_name_parse(dst_s ? dst_s : "", &dst) != 0) {
    cll_api_errorf(req, 400, "destination \"%s\" is invalid", dst_s ? dst_s : "");
  } else if (cll_store_resolve(api->store, &src, &src) != 0) {
    cll_api_errorf(req, 404, "model \"%s\" not found", src_s);
  } else {
    /* An existing destination keeps its on-disk spelling (overwritten). */
    cll_store_resolve(api->store, &dst, &dst);
    cll_err err = {0};
    int rc = cll_store_copy(api->store, &src, &dst, &err);
    if (rc == CLL_ENOENT)
      cll_api_errorf(req, 404, "model \"%s\" not found", src_s);
    else if (rc != 0)
      cll_api_error(req, cll_api_status(rc), err.msg);
    else
      cll_respond(req, 200, NULL, NULL, 0);
  }
  json_decref(body);
}

static void on_delete(cll_request *req, void *ud) {
  cll_api *api = cll_api_from(req);
  json_t *body = cll_api_body_object(req);
  if (body == NULL)
    return;
  bool failed = false;
  const char *s = cll_api_opt_string(req, body, "model", &failed);
  if (!failed && (s == NULL || s[0] == '\0'))
    s = cll_api_opt_string(req, body, "name", &failed); /* deprecated spelling */
  if (failed) {
    json_decref(body);
    return;
  }
  cll_name n;
  if (s == NULL || s[0] == '\0') {
    cll_api_error(req, 400, "model is required");
  } else if (cll_name_parse(s, &n) != 0) {
    cll_api_errorf(req, 400, "name \"%s\" is invalid", s);
  } else if (cll_store_resolve(api->store, &n, &n) != 0) {
    cll_api_errorf(req, 404, "model '%s' not found", s);
  } else {
    cll_err err = {0};
    /* A loaded model that is deleted is unloaded once idle (cllama: the
     * memory goes back at once instead of at keep-alive expiry). */
    char full[512];
    struct cll__model_ref ref;
    cll_name_full(&n, full, sizeof(full));
    bool have_ref = cll__model_resolve(api->store, full, &ref, NULL) == 0;
    int rc = cll_store_delete(api->store, &n, &err);
    if (rc == 0 && have_ref && api->runners)
      cll_runners_expire(api->runners, ref.model_path);
    cll__model_ref_free(&ref);
    if (rc == CLL_ENOENT)
      cll_api_errorf(req, 404, "model '%s' not found", s);
    else if (rc != 0)
      cll_api_error(req, cll_api_status(rc), err.msg);
    else
      cll_respond(req, 200, NULL, NULL, 0);
  }
  json_decref(body);
}

int cll_api_models_register(cll_api *api) {
  static const struct {
    const char *method, *path;
    cll_handler_fn fn;
  } routes[] = {
      {"GET", "/", on_root},          {"HEAD", "/", on_root},
      {"GET", "/api/version", on_version}, {"HEAD", "/api/version", on_version},
      {"GET", "/api/tags", on_tags},  {"HEAD", "/api/tags", on_tags},
      {"POST", "/api/copy", on_copy}, {"DELETE", "/api/delete", on_delete},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(routes); i++) {
    int rc = cll_server_route(api->server, routes[i].method, routes[i].path, routes[i].fn, api);
    if (rc != 0)
      return rc;
  }
  return 0;
}
