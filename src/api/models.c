/* models.c — the model-management endpoints that need only the store:
 * GET|HEAD /, GET|HEAD /api/version, GET|HEAD /api/tags, POST /api/copy,
 * DELETE /api/delete (OLLAMA_API.md §0, §1.7, §1.9, §3.5).
 *
 * The request is parsed and validated on the loop thread; the store work
 * (walking manifests, stat'ing blobs, unlinking multi-GB files) runs as a
 * uv_queue_work item, and the answer is sent from its after-work callback.
 * The request stays valid meanwhile (server.h), even if the client leaves.
 *
 * /api/tags also gives each model's capabilities and, in its details, the
 * context and embedding lengths from the GGUF header (read once per
 * manifest digest and remembered: a large vocabulary makes the header more
 * than a small read). */
#include "capabilities.h"
#include "cllama/api.h"
#include "cllama/gguf.h"
#include "resolve.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* One store job: inputs set on the loop, outputs filled by the worker. */
enum job_kind { JOB_TAGS, JOB_COPY, JOB_DELETE };

struct job {
  uv_work_t work;
  cll_request *req;
  cll_api *api;
  enum job_kind kind;
  cll_name a, b;         /* copy: source, destination; delete: a */
  char given[512];       /* the name as the client wrote it, for messages */
  int status;            /* answer */
  char *json;            /* new JSON text, or NULL for an empty body */
  char model_path[4200]; /* delete: the deleted model's GGUF, to unload it ("" if unknown) */
};

static void run_job(uv_work_t *w);
static void on_job_done(uv_work_t *w, int status);

static void start_job(struct job *j) {
  j->work.data = j;
  if (uv_queue_work(j->api->loop, &j->work, run_job, on_job_done) != 0) {
    cll_api_error(j->req, 500, "cannot queue store work");
    free(j);
  }
}

static struct job *job_new(cll_request *req, enum job_kind kind) {
  struct job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    cll_api_error(req, 500, "out of memory");
    return NULL;
  }
  j->req = req;
  j->api = cll_api_from(req);
  j->kind = kind;
  return j;
}

static void job_error(struct job *j, int status, const char *fmt, const char *arg) {
  char msg[1024];
  snprintf(msg, sizeof(msg), fmt, arg);
  j->status = status;
  json_t *o = json_pack("{s:s}", "error", msg);
  j->json = o ? json_dumps(o, JSON_COMPACT) : NULL;
  json_decref(o);
}

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
  json_t *d =
      json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "parent_model", model ? model->from : "", "format",
                m->cfg.format, "family", m->cfg.family, "families", fams, "parameter_size",
                m->cfg.parameter_size, "quantization_level", m->cfg.quantization_level);
  if (d && m->cfg.context_length > 0)
    json_object_set_new(d, "context_length", json_integer(m->cfg.context_length));
  if (d && m->cfg.embedding_length > 0)
    json_object_set_new(d, "embedding_length", json_integer(m->cfg.embedding_length));
  return d;
}

/* GGUF facts per manifest digest (work-queue threads share it). */
struct gguf_facts {
  char digest[80];
  int64_t ctx, emb;
  json_t *caps;
};
static struct gguf_facts facts_cache[256];
static size_t facts_n;
static pthread_mutex_t facts_lock = PTHREAD_MUTEX_INITIALIZER;

/* Adds capabilities and the details' lengths to a /api/tags entry. */
static void add_gguf_facts(cll_api *api, const cll_manifest *m, const char *name, json_t *entry) {
  struct gguf_facts f = {0};
  bool found = false;
  pthread_mutex_lock(&facts_lock);
  for (size_t i = 0; i < facts_n && !found; i++) {
    if (!strcmp(facts_cache[i].digest, m->digest)) {
      f = facts_cache[i];
      f.caps = json_deep_copy(f.caps);
      found = true;
    }
  }
  pthread_mutex_unlock(&facts_lock);
  if (!found) {
    struct cll__model_ref ref;
    cll_err err = {0};
    cll_gguf *g = NULL;
    if (cll__model_resolve(api->store, name, &ref, &err) == 0 &&
        cll_gguf_open(ref.model_path, &g, &err) == 0) {
      cll__gguf_lengths(g, &f.ctx, &f.emb);
      f.caps = cll__capabilities(g, ref.template_text);
      cll_gguf_close(g);
      pthread_mutex_lock(&facts_lock);
      size_t at = facts_n < 256 ? facts_n++ : (size_t)(m->mtime_ns % 256);
      json_decref(facts_cache[at].caps);
      facts_cache[at] = f;
      snprintf(facts_cache[at].digest, sizeof(facts_cache[at].digest), "%s", m->digest);
      facts_cache[at].caps = json_deep_copy(f.caps);
      pthread_mutex_unlock(&facts_lock);
    }
    cll__model_ref_free(&ref);
  }
  if (f.caps)
    json_object_set_new(entry, "capabilities", f.caps);
  json_t *d = json_object_get(entry, "details");
  if (d && f.ctx > 0 && !json_object_get(d, "context_length"))
    json_object_set_new(d, "context_length", json_integer(f.ctx));
  if (d && f.emb > 0 && !json_object_get(d, "embedding_length"))
    json_object_set_new(d, "embedding_length", json_integer(f.emb));
}

static void tags_work(struct job *j) {
  cll_manifest **list;
  size_t n;
  cll_err err = {0};
  int rc = cll_store_list(j->api->store, &list, &n, &err);
  if (rc != 0) {
    job_error(j, cll_api_status(rc), "%s", err.msg);
    return;
  }
  json_t *models = json_array();
  for (size_t i = 0; i < n; i++) {
    const cll_manifest *m = list[i];
    char name[512], when[64];
    cll_name_display(&m->name, name, sizeof(name));
    cll_api_time_rfc3339(m->mtime_ns, when, sizeof(when));
    json_t *entry =
        json_pack("{s:s,s:s,s:s,s:I,s:s,s:o}", "name", name, "model", name, "modified_at", when,
                  "size", (json_int_t)m->size, "digest", m->digest, "details", details_json(m));
    if (!entry || json_array_append_new(models, entry) != 0) {
      json_decref(models); /* out of memory: an error, never a shorter list */
      models = NULL;
      break;
    }
    add_gguf_facts(j->api, m, name, entry);
  }
  cll_store_list_free(list, n);
  json_t *o = json_pack("{s:o}", "models", models);
  j->json = o ? json_dumps(o, JSON_COMPACT) : NULL;
  j->status = j->json ? 200 : 500; /* 500 without text answers "out of memory" */
  json_decref(o);
}

static void on_tags(cll_request *req, void *ud) {
  struct job *j = job_new(req, JOB_TAGS);
  if (j)
    start_job(j);
}

static void on_copy(cll_request *req, void *ud) {
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
  } else {
    struct job *j = job_new(req, JOB_COPY);
    if (j) {
      j->a = src;
      j->b = dst;
      snprintf(j->given, sizeof(j->given), "%s", src_s);
      start_job(j);
    }
  }
  json_decref(body);
}

static void copy_work(struct job *j) {
  const cll_store *st = j->api->store;
  if (cll_store_resolve(st, &j->a, &j->a) != 0) {
    job_error(j, 404, "model \"%s\" not found", j->given);
    return;
  }
  /* An existing destination keeps its on-disk spelling (overwritten). */
  cll_store_resolve(st, &j->b, &j->b);
  cll_err err = {0};
  int rc = cll_store_copy(st, &j->a, &j->b, &err);
  if (rc == CLL_ENOENT)
    job_error(j, 404, "model \"%s\" not found", j->given);
  else if (rc != 0)
    job_error(j, cll_api_status(rc), "%s", err.msg);
  else
    j->status = 200;
}

static void on_delete(cll_request *req, void *ud) {
  const char *s;
  json_t *body = cll_api_body_model(req, "name", 0, &s); /* "name": deprecated spelling */
  if (body == NULL)
    return;
  cll_name n;
  if (s == NULL || s[0] == '\0') {
    cll_api_error(req, 400, "model is required");
  } else if (cll_name_parse(s, &n) != 0) {
    cll_api_errorf(req, 400, "name \"%s\" is invalid", s);
  } else {
    struct job *j = job_new(req, JOB_DELETE);
    if (j) {
      j->a = n;
      snprintf(j->given, sizeof(j->given), "%s", s);
      start_job(j);
    }
  }
  json_decref(body);
}

static void delete_work(struct job *j) {
  const cll_store *st = j->api->store;
  if (cll_store_resolve(st, &j->a, &j->a) != 0) {
    job_error(j, 404, "model '%s' not found", j->given);
    return;
  }
  cll_err err = {0};
  /* Remember the weights so a loaded copy can be unloaded (after_work). */
  char full[512];
  struct cll__model_ref ref;
  cll_name_full(&j->a, full, sizeof(full));
  if (cll__model_resolve(st, full, &ref, NULL) == 0)
    snprintf(j->model_path, sizeof(j->model_path), "%s", ref.model_path);
  cll__model_ref_free(&ref);
  int rc = cll_store_delete(st, &j->a, &err);
  if (rc == CLL_ENOENT)
    job_error(j, 404, "model '%s' not found", j->given);
  else if (rc != 0)
    job_error(j, cll_api_status(rc), "%s", err.msg);
  else
    j->status = 200;
}

/* Worker thread: only the store and jansson objects of this job. */
static void run_job(uv_work_t *w) {
  struct job *j = w->data;
  switch (j->kind) {
  case JOB_TAGS:
    tags_work(j);
    break;
  case JOB_COPY:
    copy_work(j);
    break;
  case JOB_DELETE:
    delete_work(j);
    break;
  }
}

/* Loop thread: answer (dropped by the server if the client has gone). */
static void on_job_done(uv_work_t *w, int status) {
  struct job *j = w->data;
  /* A deleted model that is loaded is unloaded once idle (cllama: the
   * memory goes back at once instead of at keep-alive expiry). */
  if (j->kind == JOB_DELETE && j->status == 200 && j->model_path[0] && j->api->runners)
    cll_runners_expire(j->api->runners, j->model_path);
  if (status != 0 || (j->status != 200 && j->json == NULL)) {
    cll_api_error(j->req, 500, status != 0 ? "store work cancelled" : "out of memory");
  } else if (j->json) {
    cll_respond(j->req, j->status, "application/json; charset=utf-8", j->json, strlen(j->json));
  } else {
    cll_respond(j->req, j->status, NULL, NULL, 0);
  }
  free(j->json);
  free(j);
}

int cll_api_models_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"GET", "/", on_root, false},
      {"HEAD", "/", on_root, false},
      {"GET", "/api/version", on_version, false},
      {"HEAD", "/api/version", on_version, false},
      {"GET", "/api/tags", on_tags, false},
      {"HEAD", "/api/tags", on_tags, false},
      {"POST", "/api/copy", on_copy, false},
      {"DELETE", "/api/delete", on_delete, false},
  };
  return CLL_API_ROUTES(api, routes);
}
