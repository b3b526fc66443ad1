/* metrics.c — GET /metrics in the Prometheus text exposition format
 * (version 0.0.4), and GET /api/ready for load balancers.
 *
 * Counters are kept here, on the loop thread (every hook runs there):
 * requests by method, endpoint and status (the server's observer); for each
 * sequence submitted by the generation and embedding endpoints (their
 * callbacks are wrapped by cll__metrics_seq_wrap) the tokens generated, the
 * prompt tokens processed and reused, time to first token and the gaps
 * between tokens as histograms, and how sequences ended. Gauges (queue
 * depth, running and waiting sequences, KV cells, loaded models and their
 * memory) are read from the runners at scrape time. */
#include "metrics.h"

#include "cllama/api.h"
#include "cllama/runners.h"
#include "cllama/scheduler.h"
#include "cllama/util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---------------------------------------------------------------- state */

/* Endpoints are a fixed list, so that a client cannot grow the label set. */
static const char *const endpoints[] = {
    "/",
    "/api/version",
    "/api/generate",
    "/api/chat",
    "/api/embed",
    "/api/embeddings",
    "/api/tags",
    "/api/show",
    "/api/ps",
    "/api/pull",
    "/api/push",
    "/api/create",
    "/api/copy",
    "/api/delete",
    "/api/blobs/:digest",
    "/api/tokenize",
    "/api/detokenize",
    "/api/ready",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
    "/v1/models/:model",
    "/v1/messages",
    "/api/rerank",
    "/v1/rerank",
    "/metrics",
    "other",
};
#define N_ENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

struct req_count {
  char method[8];
  int endpoint;
  int status;
  uint64_t n;
  double seconds; /* summed durations */
};

#define N_TTFT 14
static const double ttft_le[N_TTFT] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                       1,     2.5,  5,     10,   30,  60,   120};
#define N_ITL 14
static const double itl_le[N_ITL] = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.03,
                                     0.05,  0.075,  0.1,   0.2,  0.5,   1,    2.5};

struct histo {
  uint64_t bucket[16]; /* per bucket, not cumulative; [n] = above the last */
  uint64_t count;
  double sum;
};

static struct {
  struct req_count *reqs;
  size_t n_reqs, cap_reqs;
  uint64_t tokens_generated, prompt_processed, prompt_reused, seqs_started;
  uint64_t done_by_reason[8];
  char reason_name[8][16];
  struct histo ttft, itl;
  uint64_t t_start_ns;
} M;

static void histo_add(struct histo *h, const double *le, int n, double v) {
  int i = 0;
  while (i < n && v > le[i])
    i++;
  h->bucket[i]++;
  h->count++;
  h->sum += v;
}

static int endpoint_of(const char *path) {
  if (!strncmp(path, "/api/blobs/", 11))
    path = "/api/blobs/:digest";
  else if (!strncmp(path, "/v1/models/", 11))
    path = "/v1/models/:model";
  for (size_t i = 0; i + 1 < N_ENDPOINTS; i++)
    if (!strcmp(path, endpoints[i]))
      return (int)i;
  return (int)N_ENDPOINTS - 1;
}

static void on_request_done(void *ud, const char *method, const char *path, int status,
                            uint64_t duration_ns) {
  int ep = endpoint_of(path);
  char m[8];
  snprintf(m, sizeof(m), "%s", method);
  /* Methods outside the usual set are one label, too. */
  static const char *const known[] = {"GET", "HEAD", "POST", "DELETE", "PUT", "OPTIONS", "PATCH"};
  bool ok = false;
  for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
    ok = ok || !strcmp(m, known[i]);
  if (!ok)
    snprintf(m, sizeof(m), "other");
  for (size_t i = 0; i < M.n_reqs; i++) {
    struct req_count *r = &M.reqs[i];
    if (r->endpoint == ep && r->status == status && !strcmp(r->method, m)) {
      r->n++;
      r->seconds += (double)duration_ns / 1e9;
      return;
    }
  }
  if (M.n_reqs == M.cap_reqs) {
    size_t cap = M.cap_reqs ? M.cap_reqs * 2 : 32;
    struct req_count *n = realloc(M.reqs, cap * sizeof(*n));
    if (!n)
      return;
    M.reqs = n;
    M.cap_reqs = cap;
  }
  struct req_count *r = &M.reqs[M.n_reqs++];
  memset(r, 0, sizeof(*r));
  snprintf(r->method, sizeof(r->method), "%s", m);
  r->endpoint = ep;
  r->status = status;
  r->n = 1;
  r->seconds = (double)duration_ns / 1e9;
}

/* ---------------------------------------------------------------- sequences */

struct cll__metrics_seq {
  cll_seq_token_cb on_token;
  cll_seq_embd_cb on_embedding;
  cll_seq_done_cb on_done;
  void *ud;
  uint64_t t_submit, t_last;
  bool any;
};

static int seq_token(void *ud, cll_seq *s, int32_t tok) {
  struct cll__metrics_seq *w = ud;
  uint64_t t = uv_hrtime();
  if (!w->any)
    histo_add(&M.ttft, ttft_le, N_TTFT, (double)(t - w->t_submit) / 1e9);
  else
    histo_add(&M.itl, itl_le, N_ITL, (double)(t - w->t_last) / 1e9);
  w->any = true;
  w->t_last = t;
  M.tokens_generated++;
  return w->on_token ? w->on_token(w->ud, s, tok) : 0;
}

static void seq_embedding(void *ud, cll_seq *s, const float *v, int32_t n) {
  struct cll__metrics_seq *w = ud;
  if (w->on_embedding)
    w->on_embedding(w->ud, s, v, n);
}

static void seq_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                     const cll_err *err) {
  struct cll__metrics_seq *w = ud;
  if (st) {
    int32_t reused = st->prompt_reused > 0 ? st->prompt_reused : 0;
    if (st->prompt_n > reused)
      M.prompt_processed += (uint64_t)(st->prompt_n - reused);
    M.prompt_reused += (uint64_t)reused;
  }
  const char *name = cll_done_reason_str(reason);
  for (int i = 0; i < 8; i++) {
    if (!M.reason_name[i][0])
      snprintf(M.reason_name[i], sizeof(M.reason_name[i]), "%s", name ? name : "other");
    if (!strcmp(M.reason_name[i], name ? name : "other")) {
      M.done_by_reason[i]++;
      break;
    }
  }
  cll_seq_done_cb cb = w->on_done;
  void *cb_ud = w->ud;
  free(w);
  if (cb)
    cb(cb_ud, s, reason, st, err);
}

struct cll__metrics_seq *cll__metrics_seq_wrap(struct cll_seq_desc *d) {
  struct cll__metrics_seq *w = calloc(1, sizeof(*w));
  if (!w)
    return NULL; /* not counted, still served */
  w->on_token = d->on_token;
  w->on_embedding = d->on_embedding;
  w->on_done = d->on_done;
  w->ud = d->ud;
  w->t_submit = uv_hrtime();
  d->on_token = w->on_token ? seq_token : NULL;
  d->on_embedding = w->on_embedding ? seq_embedding : NULL;
  d->on_done = seq_done;
  d->ud = w;
  M.seqs_started++;
  return w;
}

void cll__metrics_seq_unwrap(struct cll__metrics_seq *w, struct cll_seq_desc *d) {
  if (!w)
    return;
  d->on_token = w->on_token;
  d->on_embedding = w->on_embedding;
  d->on_done = w->on_done;
  d->ud = w->ud;
  M.seqs_started--;
  free(w);
}

/* ---------------------------------------------------------------- text */

/* A label value: \ " and newline escaped, as the format wants. */
static void label_value(cll_buf *b, const char *s) {
  for (; *s; s++) {
    if (*s == '\\')
      cll_buf_append(b, "\\\\", 2);
    else if (*s == '"')
      cll_buf_append(b, "\\\"", 2);
    else if (*s == '\n')
      cll_buf_append(b, "\\n", 2);
    else
      cll_buf_append(b, s, 1);
  }
}

static void addf(cll_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(cll_buf *b, const char *fmt, ...) {
  char tmp[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
  va_end(ap);
  if (n > 0)
    cll_buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void head(cll_buf *b, const char *name, const char *type, const char *help) {
  addf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void histo_text(cll_buf *b, const char *name, const struct histo *h, const double *le,
                       int n) {
  uint64_t cum = 0;
  for (int i = 0; i < n; i++) {
    cum += h->bucket[i];
    addf(b, "%s_bucket{le=\"%g\"} %llu\n", name, le[i], (unsigned long long)cum);
  }
  addf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
  addf(b, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

static void on_metrics(cll_request *req, void *ud) {
  cll_api *api = ud;
  cll_buf b = {0};
  head(&b, "cllama_http_requests_total", "counter",
       "HTTP requests answered, by method, endpoint and status code.");
  for (size_t i = 0; i < M.n_reqs; i++) {
    struct req_count *r = &M.reqs[i];
    addf(&b, "cllama_http_requests_total{method=\"%s\",endpoint=\"", r->method);
    label_value(&b, endpoints[r->endpoint]);
    addf(&b, "\",code=\"%d\"} %llu\n", r->status, (unsigned long long)r->n);
  }
  head(&b, "cllama_http_request_duration_seconds_total", "counter",
       "Summed time from a request's first byte to the end of its answer.");
  for (size_t i = 0; i < M.n_reqs; i++) {
    struct req_count *r = &M.reqs[i];
    addf(&b, "cllama_http_request_duration_seconds_total{method=\"%s\",endpoint=\"", r->method);
    label_value(&b, endpoints[r->endpoint]);
    addf(&b, "\",code=\"%d\"} %.9g\n", r->status, r->seconds);
  }
  head(&b, "cllama_tokens_generated_total", "counter", "Tokens generated, all models.");
  addf(&b, "cllama_tokens_generated_total %llu\n", (unsigned long long)M.tokens_generated);
  head(&b, "cllama_prompt_tokens_processed_total", "counter",
       "Prompt tokens run through the model (not taken from a cached prefix).");
  addf(&b, "cllama_prompt_tokens_processed_total %llu\n", (unsigned long long)M.prompt_processed);
  head(&b, "cllama_prompt_tokens_reused_total", "counter",
       "Prompt tokens taken from a cached prefix instead of being processed.");
  addf(&b, "cllama_prompt_tokens_reused_total %llu\n", (unsigned long long)M.prompt_reused);
  head(&b, "cllama_sequences_started_total", "counter",
       "Sequences submitted to a model's scheduler.");
  addf(&b, "cllama_sequences_started_total %llu\n", (unsigned long long)M.seqs_started);
  head(&b, "cllama_sequences_finished_total", "counter", "Sequences finished, by done_reason.");
  for (int i = 0; i < 8 && M.reason_name[i][0]; i++) {
    addf(&b, "cllama_sequences_finished_total{reason=\"");
    label_value(&b, M.reason_name[i]);
    addf(&b, "\"} %llu\n", (unsigned long long)M.done_by_reason[i]);
  }
  head(&b, "cllama_time_to_first_token_seconds", "histogram",
       "From a sequence's submission to its first generated token.");
  histo_text(&b, "cllama_time_to_first_token_seconds", &M.ttft, ttft_le, N_TTFT);
  head(&b, "cllama_inter_token_latency_seconds", "histogram",
       "Gap between consecutive tokens of one sequence.");
  histo_text(&b, "cllama_inter_token_latency_seconds", &M.itl, itl_le, N_ITL);

  struct cll_runner_info info[64];
  int n = api->runners ? cll_runners_list(api->runners, info, 64) : 0;
  if (n > 64)
    n = 64;
  int32_t running = 0, waiting_slot = 0;
  for (int i = 0; i < n; i++) {
    running += info[i].sched.n_active;
    waiting_slot += info[i].sched.n_waiting;
  }
  head(&b, "cllama_queue_depth", "gauge",
       "Requests waiting for a model to load or for a free slot (OLLAMA_MAX_QUEUE applies).");
  addf(&b, "cllama_queue_depth %d\n", api->runners ? cll_runners_waiting(api->runners) : 0);
  head(&b, "cllama_running_sequences", "gauge", "Sequences holding a slot, all models.");
  addf(&b, "cllama_running_sequences %d\n", running);
  head(&b, "cllama_waiting_sequences", "gauge",
       "Sequences submitted to a loaded model and waiting for a slot.");
  addf(&b, "cllama_waiting_sequences %d\n", waiting_slot);
  head(&b, "cllama_loaded_models", "gauge", "Models loaded.");
  addf(&b, "cllama_loaded_models %d\n", n);
  static const struct {
    const char *name, *type, *help;
  } per_model[] = {
      {"cllama_model_memory_bytes", "gauge", "Memory of a loaded model: weights and KV pool."},
      {"cllama_model_running_sequences", "gauge", "Sequences holding a slot of this model."},
      {"cllama_model_parallel_slots", "gauge", "Sequences this model decodes together at most."},
      {"cllama_model_context_length", "gauge", "Context length per sequence."},
      {"cllama_kv_cells_used", "gauge", "KV cells held by sequences of this model."},
      {"cllama_kv_cells", "gauge", "KV cells in this model's pool."},
  };
  for (size_t k = 0; k < sizeof(per_model) / sizeof(*per_model); k++) {
    head(&b, per_model[k].name, per_model[k].type, per_model[k].help);
    for (int i = 0; i < n; i++) {
      long long v = k == 0   ? (long long)info[i].size_bytes
                    : k == 1 ? info[i].sched.n_active
                    : k == 2 ? info[i].n_parallel
                    : k == 3 ? (long long)info[i].context_length
                    : k == 4 ? (long long)info[i].sched.kv_cells_used
                             : (long long)info[i].sched.kv_cells;
      addf(&b, "%s{model=\"", per_model[k].name);
      label_value(&b, info[i].name);
      addf(&b, "\"} %lld\n", v);
    }
  }
  head(&b, "cllama_uptime_seconds", "gauge", "Seconds since the server started.");
  addf(&b, "cllama_uptime_seconds %.3f\n", (double)(uv_hrtime() - M.t_start_ns) / 1e9);
  cll_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
  cll_buf_free(&b);
}

/* ---------------------------------------------------------------- ready */

/* GET /api/ready[?model=NAME]: 200 when the server can take a request now
 * (queue not full) and, when a model is named, that model is loaded; 503
 * otherwise. The body says which models are loaded and how deep the queue
 * is, for a load balancer's health check and for people. */
static void on_ready(cll_request *req, void *ud) {
  cll_api *api = ud;
  char model[512] = "";
  const char *q = cll_request_query(req);
  for (const char *p = q; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len > 6 && !strncmp(p, "model=", 6)) {
      size_t o = 0;
      for (size_t i = 6; i < len && o + 1 < sizeof(model); i++) {
        unsigned x;
        if (p[i] == '%' && i + 2 < len && sscanf(p + i + 1, "%2x", &x) == 1) {
          model[o++] = (char)x;
          i += 2;
        } else {
          model[o++] = p[i] == '+' ? ' ' : p[i];
        }
      }
      model[o] = 0;
    }
    p = amp ? amp + 1 : NULL;
  }
  struct cll_runner_info info[64];
  int n = api->runners ? cll_runners_list(api->runners, info, 64) : 0;
  if (n > 64)
    n = 64;
  int depth = api->runners ? cll_runners_waiting(api->runners) : 0;
  json_t *loaded = json_array();
  bool model_loaded = false;
  char want[600] = "";
  if (model[0])
    snprintf(want, sizeof(want), "%s%s", model, strchr(model, ':') ? "" : ":latest");
  for (int i = 0; i < n; i++) {
    json_array_append_new(loaded, json_string(info[i].name));
    if (want[0] && (!strcmp(info[i].name, want) || !strcmp(info[i].name, model)))
      model_loaded = true;
  }
  bool queue_ok = depth < api->cfg->max_queue;
  bool ready = queue_ok && (!model[0] || model_loaded);
  json_t *body = json_pack("{s:b,s:o,s:i,s:i}", "ready", ready, "loaded", loaded, "queue_depth",
                           depth, "max_queue", api->cfg->max_queue);
  if (model[0]) {
    json_object_set_new(body, "model", json_string(model));
    json_object_set_new(body, "model_loaded", json_boolean(model_loaded));
  }
  cll_api_json(req, ready ? 200 : 503, body);
}

int cll_api_metrics_register(cll_api *api) {
  M.t_start_ns = uv_hrtime();
  cll_server_set_observer(api->server, on_request_done, api);
  static const struct cll_api_route routes[] = {
      {"GET", "/metrics", on_metrics, false},
      {"GET", "/api/ready", on_ready, false},
      {"HEAD", "/api/ready", on_ready, false},
  };
  return CLL_API_ROUTES(api, routes);
}
