/* show.c — POST /api/show (§1.8): a model's Modelfile, parameters,
 * template, system prompt, details, capabilities and GGUF metadata. The GGUF
 * header is read on a work item (a large vocabulary makes it more than a
 * small read); everything else comes from the manifest's small layers. */
#include "cllama/api.h"
#include "cllama/gguf.h"
#include "cllama/kernels.h"
#include "gen.h"
#include "capabilities.h"
#include "gen_core.h"
#include "tmpl.h"
#include "resolve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct show {
  cll_api *api;
  cll_request *req;
  struct cll__model_ref ref;
  bool verbose, gone;
  char *system_override;
  json_t *out; /* built on the work item */
  int rc;
  cll_err err;
  uv_work_t work;
};

/* A string in a Modelfile's "..." form: \\ \" \n \r \t and \u00XX for the
 * other control bytes; everything else (<, >, &, UTF-8) as it is, so that
 * `cllama create` reads back the same bytes (src/api/modelfile.c). */
static void mf_quoted(cll_buf *b, const char *s) {
  cll_buf_append(b, "\"", 1);
  for (const char *c = s; *c; c++) {
    char esc[8];
    switch (*c) {
    case '"':
      cll_buf_append(b, "\\\"", 2);
      break;
    case '\\':
      cll_buf_append(b, "\\\\", 2);
      break;
    case '\n':
      cll_buf_append(b, "\\n", 2);
      break;
    case '\r':
      cll_buf_append(b, "\\r", 2);
      break;
    case '\t':
      cll_buf_append(b, "\\t", 2);
      break;
    default:
      if ((unsigned char)*c < 0x20) {
        snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)(unsigned char)*c);
        cll_buf_append(b, esc, strlen(esc));
      } else {
        cll_buf_append(b, c, 1);
      }
    }
  }
  cll_buf_append(b, "\"", 1);
}

/* A parameter's value: numbers and booleans bare, strings quoted. */
static void go_value(cll_buf *b, json_t *v) {
  char num[64];
  if (json_is_string(v)) {
    mf_quoted(b, json_string_value(v));
  } else if (json_is_integer(v)) {
    snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
    cll_buf_append(b, num, strlen(num));
  } else if (json_is_real(v)) {
    snprintf(num, sizeof(num), "%.15g", json_real_value(v));
    cll_buf_append(b, num, strlen(num));
  } else if (json_is_boolean(v)) {
    cll_buf_append(b, json_is_true(v) ? "true" : "false", json_is_true(v) ? 4 : 5);
  }
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Calls fn for each (key, scalar value) of the params layer, keys sorted,
 * arrays one element at a time. */
static void params_lines(json_t *params, cll_buf *b, bool modelfile) {
  if (!json_is_object(params))
    return;
  size_t n = json_object_size(params), i = 0;
  const char **keys = calloc(n ? n : 1, sizeof(*keys));
  const char *k;
  json_t *v;
  json_object_foreach(params, k, v) keys[i++] = k;
  qsort(keys, n, sizeof(*keys), cmp_str);
  for (i = 0; i < n; i++) {
    v = json_object_get(params, keys[i]);
    size_t m = json_is_array(v) ? json_array_size(v) : 1;
    for (size_t j = 0; j < m; j++) {
      json_t *x = json_is_array(v) ? json_array_get(v, j) : v;
      char head[128];
      if (modelfile)
        snprintf(head, sizeof(head), "PARAMETER %s ", keys[i]);
      else
        snprintf(head, sizeof(head), "%-30s ", keys[i]);
      cll_buf_append(b, head, strlen(head));
      go_value(b, x);
      cll_buf_append(b, "\n", 1);
    }
  }
  free(keys);
}

/* TEMPLATE/SYSTEM/LICENSE text: """text""" as Ollama writes it, unless the
 * text holds """ or ends with a quote (which would close it early); then
 * the escaped "..." form. */
static void add_triple(cll_buf *b, const char *cmd, const char *text) {
  size_t n = strlen(text);
  cll_buf_append(b, cmd, strlen(cmd));
  cll_buf_append(b, " ", 1);
  if (strstr(text, "\"\"\"") || (n && text[n - 1] == '"')) {
    mf_quoted(b, text);
  } else {
    cll_buf_append(b, "\"\"\"", 3);
    cll_buf_append(b, text, n);
    cll_buf_append(b, "\"\"\"", 3);
  }
  cll_buf_append(b, "\n", 1);
}

/* A MESSAGE's content: bare when it reads back as itself, else quoted. */
static void add_message(cll_buf *b, const char *role, const char *c) {
  char line[64];
  snprintf(line, sizeof(line), "MESSAGE %s", role);
  size_t n = strlen(c);
  bool bare =
      n > 0 && c[0] != '"' && c[0] != ' ' && c[0] != '\t' && c[n - 1] != ' ' && c[n - 1] != '\t';
  for (const char *p = c; bare && *p; p++)
    bare = (unsigned char)*p >= 0x20;
  if (bare) {
    cll_buf_append(b, line, strlen(line));
    cll_buf_append(b, " ", 1);
    cll_buf_append(b, c, n);
    cll_buf_append(b, "\n", 1);
  } else {
    add_triple(b, line, c);
  }
}

json_t *cll__capabilities(const cll_gguf *g, const char *template_text) {
  json_t *caps = json_array();
  cll_gguf_str arch = {0};
  char key[160] = "";
  if (cll_gguf_get_str(g, "general.architecture", &arch) == 0)
    snprintf(key, sizeof(key), "%.*s.pooling_type", (int)arch.len, arch.ptr);
  bool embedding = cll_gguf_find_key(g, "pooling_type") >= 0 ||
                   (key[0] && cll_gguf_find_key(g, key) >= 0) ||
                   (arch.len == 4 && !memcmp(arch.ptr, "bert", 4));
  /* Rank pooling (4): a reranker, which scores pairs (/api/rerank). */
  int64_t pool = -1;
  bool rerank = key[0] && cll_gguf_get_i64(g, key, &pool) == 0 && pool == 4;
  json_array_append_new(caps, json_string(rerank      ? "rerank"
                                          : embedding ? "embedding"
                                                      : "completion"));
  if (cll__template_has(template_text, "Tools"))
    json_array_append_new(caps, json_string("tools"));
  if (cll__template_has(template_text, "Suffix"))
    json_array_append_new(caps, json_string("insert"));
  if (cll__template_has(template_text, "Thinking") || cll__template_has(template_text, "Think"))
    json_array_append_new(caps, json_string("thinking"));
  return caps;
}

uint64_t cll__gguf_n_params(const cll_gguf *g) {
  uint64_t n = 0;
  for (int64_t t = 0; t < cll_gguf_n_tensors(g); t++) {
    const cll_gguf_tensor *ti = cll_gguf_tensor_at(g, t);
    uint64_t e = 1;
    for (uint32_t d = 0; d < ti->n_dims; d++)
      e *= ti->ne[d];
    n += e;
  }
  return n;
}

void cll__gguf_lengths(const cll_gguf *g, int64_t *context_length, int64_t *embedding_length) {
  *context_length = *embedding_length = 0;
  cll_gguf_str arch = {0};
  if (cll_gguf_get_str(g, "general.architecture", &arch) != 0)
    return;
  char key[160];
  snprintf(key, sizeof(key), "%.*s.context_length", (int)arch.len, arch.ptr);
  cll_gguf_get_i64(g, key, context_length);
  snprintf(key, sizeof(key), "%.*s.embedding_length", (int)arch.len, arch.ptr);
  cll_gguf_get_i64(g, key, embedding_length);
}

static json_t *details_json(const struct cll__model_ref *ref) {
  const cll_model_config *c = &ref->man->cfg;
  const cll_layer *ml = cll_manifest_layer(ref->man, CLL_MEDIA_MODEL);
  json_t *fam = json_array();
  for (size_t i = 0; i < c->n_families; i++)
    json_array_append_new(fam, json_string(c->families[i]));
  json_t *d = json_object();
  json_object_set_new(d, "parent_model", json_string(ml && ml->from ? ml->from : ""));
  json_object_set_new(d, "format", json_string(c->format[0] ? c->format : "gguf"));
  json_object_set_new(d, "family", json_string(c->family));
  json_object_set_new(d, "families", fam);
  json_object_set_new(d, "parameter_size", json_string(c->parameter_size));
  json_object_set_new(d, "quantization_level", json_string(c->quantization_level));
  return d;
}

static void on_show_work(uv_work_t *w) {
  struct show *s = w->data;
  cll_gguf *g = NULL;
  s->rc = cll_gguf_open(s->ref.model_path, &g, &s->err);
  if (s->rc != 0)
    return;
  json_t *o = json_object();
  const char *system = s->system_override ? s->system_override : s->ref.system_text;
  if (s->ref.license)
    json_object_set_new(o, "license", json_string(s->ref.license));
  if (system && *system)
    json_object_set_new(o, "system", json_string(system));
  if (s->ref.template_text)
    json_object_set_new(o, "template", json_string(s->ref.template_text));

  cll_buf mf = {0};
  char head[6000];
  snprintf(head, sizeof(head),
           "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on "
           "this, replace FROM with:\n# FROM %s\n\nFROM %s\n",
           s->ref.display, s->ref.model_path);
  cll_buf_append(&mf, head, strlen(head));
  if (s->ref.template_text)
    add_triple(&mf, "TEMPLATE", s->ref.template_text);
  if (system && *system)
    add_triple(&mf, "SYSTEM", system);
  params_lines(s->ref.params, &mf, true);
  if (s->ref.license)
    add_triple(&mf, "LICENSE", s->ref.license);
  size_t i;
  json_t *m;
  json_array_foreach(s->ref.messages, i, m) {
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *c = json_string_value(json_object_get(m, "content"));
    add_message(&mf, role ? role : "user", c ? c : "");
  }
  json_object_set_new(o, "modelfile", json_string(mf.data));
  cll_buf_free(&mf);

  cll_buf pl = {0};
  params_lines(s->ref.params, &pl, false);
  if (pl.len) {
    pl.data[--pl.len] = 0; /* no trailing newline, as Ollama */
    json_object_set_new(o, "parameters", json_string(pl.data));
  }
  cll_buf_free(&pl);
  json_object_set_new(o, "details", details_json(&s->ref));
  if (json_is_array(s->ref.messages))
    json_object_set(o, "messages", s->ref.messages);

  /* model_info: the GGUF metadata, without general.name and the chat
   * template; long arrays are [] unless verbose. */
  json_t *info = json_object();
  size_t cap = 1u << 20;
  char *buf = malloc(cap);
  for (int64_t k = 0; k < cll_gguf_n_kv(g); k++) {
    cll_gguf_str name = cll_gguf_key_name(g, k);
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)name.len, name.ptr);
    if (!strcmp(key, "general.name") || !strcmp(key, "tokenizer.chat_template"))
      continue;
    if (cll_gguf_kv_type(g, k) == CLL_GGUF_ARRAY && !s->verbose) {
      enum cll_gguf_vtype et;
      uint64_t n = 0;
      cll_gguf_get_arr(g, key, &et, &n);
      if (n > 5) {
        json_object_set_new(info, key, json_array());
        continue;
      }
    }
    int len = buf ? cll_gguf_kv_to_json(g, k, buf, cap, UINT64_MAX) : -1;
    json_t *v = len > 0 ? json_loadb(buf, (size_t)len, JSON_DECODE_ANY, NULL) : NULL;
    json_object_set_new(info, key, v ? v : json_null());
  }
  free(buf);
  uint64_t n_params = cll__gguf_n_params(g);
  json_object_set_new(info, "general.parameter_count", json_integer((json_int_t)n_params));
  json_object_set_new(o, "model_info", info);

  json_t *caps = cll__capabilities(g, s->ref.template_text);
  json_object_set_new(o, "capabilities", caps);

  if (s->verbose) {
    json_t *ts = json_array();
    for (int64_t t = 0; t < cll_gguf_n_tensors(g); t++) {
      const cll_gguf_tensor *ti = cll_gguf_tensor_at(g, t);
      const struct cll_type_info *tinfo = cll_type_info(ti->type);
      json_t *shape = json_array();
      for (uint32_t d = 0; d < ti->n_dims; d++)
        json_array_append_new(shape, json_integer((json_int_t)ti->ne[d]));
      char nm[256];
      snprintf(nm, sizeof(nm), "%.*s", (int)ti->name.len, ti->name.ptr);
      json_array_append_new(ts, json_pack("{s:s,s:s,s:o}", "name", nm, "type",
                                          tinfo ? tinfo->name : "unknown", "shape", shape));
    }
    json_object_set_new(o, "tensors", ts);
  }
  cll_gguf_close(g);
  s->out = o;
}

static void on_show_done(uv_work_t *w, int status) {
  struct show *s = w->data;
  if (s->rc != 0) {
    cll_api_errorf(s->req, 500, "%s", s->err.msg);
  } else {
    char ts[64];
    cll_api_time_rfc3339(s->ref.man->mtime_ns, ts, sizeof(ts));
    json_object_set_new(s->out, "modified_at", json_string(ts));
    cll_api_json(s->req, 200, s->out);
  }
  cll__model_ref_free(&s->ref);
  free(s->system_override);
  free(s);
}

static void on_show(cll_request *req, void *ud) {
  cll_api *api = ud;
  const char *model;
  json_t *body = cll_api_body_model(req, "name", 400, &model);
  if (!body)
    return;
  struct show *s = calloc(1, sizeof(*s));
  if (!s) {
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return;
  }
  s->api = api;
  s->req = req;
  s->verbose = json_is_true(json_object_get(body, "verbose"));
  const char *sys = json_string_value(json_object_get(body, "system"));
  if (sys)
    s->system_override = strdup(sys);
  json_t *opts = json_object_get(body, "options");
  if (opts && !json_is_null(opts) && !json_is_object(opts)) {
    json_decref(body);
    free(s->system_override);
    free(s);
    cll_api_error(req, 400, "options must be an object");
    return;
  }
  cll_err err = {0};
  if (json_object_size(opts)) {
    struct cll__gen_opts check;
    cll__gen_opts_defaults(&check);
    int bad = cll__gen_opts_apply(&check, opts, &err);
    cll__gen_opts_free(&check);
    if (bad != 0) {
      json_decref(body);
      free(s->system_override);
      free(s);
      cll_api_error(req, 400, err.msg);
      return;
    }
  }
  int rc = cll__model_resolve(api->store, model, &s->ref, &err);
  if (rc == 0 && json_object_size(opts)) {
    /* Ollama merges the request's options over the model's parameters in
     * what it shows (the CLI's /show after /set parameter). */
    if (!s->ref.params)
      s->ref.params = json_object();
    json_object_update(s->ref.params, opts);
  }
  json_decref(body);
  if (rc != 0) {
    cll__model_resolve_answer(req, rc, &s->ref, &err);
    cll__model_ref_free(&s->ref);
    free(s->system_override);
    free(s);
    return;
  }
  s->work.data = s;
  if (uv_queue_work(api->loop, &s->work, on_show_work, on_show_done) != 0) {
    s->rc = CLL_EIO;
    cll_err_set(&s->err, CLL_EIO, "cannot queue work");
    on_show_done(&s->work, 0);
  }
}

int cll_api_show_register(cll_api *api) {
  return cll_server_route(api->server, "POST", "/api/show", on_show, api);
}
