/* gen_core.c — one generate/chat request end to end (see gen_core.h).
 *
 * DESIGN. A request goes through phases, each ended by exactly one callback:
 *   ACQUIRE  cll_runners_acquire -> on_acquired (model loaded, one use held)
 *   PREPARE  uv_queue_work: render + tokenize + sampler -> on_prepared
 *   RUN      cll_sched_submit -> on_token* -> on_seq_done
 * so at most one asynchronous operation is pending at any time, and the
 * request is answered and freed by whichever callback ends the last phase.
 * A client that goes away (server cancel callback) cancels the pending
 * operation; its callback then answers (the server drops the bytes) and
 * frees. Streaming starts with the first chunk, so an error before any
 * output is still a plain HTTP error; after it, an {"error"} line.
 * Back-pressure: when the connection's queue passes the high-water mark the
 * token callback returns PAUSE and the drain callback resumes the sequence;
 * the rest of the batch never waits for a slow reader. */
#include "gen_core.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { P_NEW = 0, P_ACQUIRE, P_PREPARE, P_RUN, P_DONE };

/* ---------------------------------------------------------------- sbuf */

static void sbuf_reserve(struct cll__sbuf *b, size_t extra) {
  if (b->n + extra + 1 <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < b->n + extra + 1)
    cap *= 2;
  char *p = realloc(b->p, cap);
  if (!p)
    abort(); /* out of memory on a few bytes: nothing sensible is left to do */
  b->p = p;
  b->cap = cap;
}

void cll__sbuf_add(struct cll__sbuf *b, const char *s, size_t n) {
  sbuf_reserve(b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = 0;
}

static void sbuf_adds(struct cll__sbuf *b, const char *s) { cll__sbuf_add(b, s, strlen(s)); }

void cll__sbuf_json_str(struct cll__sbuf *b, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  sbuf_reserve(b, n * 6 + 2);
  char *o = b->p + b->n;
  *o++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
    case '"':
      *o++ = '\\', *o++ = '"';
      break;
    case '\\':
      *o++ = '\\', *o++ = '\\';
      break;
    case '\n':
      *o++ = '\\', *o++ = 'n';
      break;
    case '\r':
      *o++ = '\\', *o++ = 'r';
      break;
    case '\t':
      *o++ = '\\', *o++ = 't';
      break;
    case '<': case '>': case '&': /* Go's encoder escapes these */
      *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
      break;
    default:
      if (c < 0x20) {
        *o++ = '\\', *o++ = 'u', *o++ = '0', *o++ = '0', *o++ = hex[c >> 4], *o++ = hex[c & 15];
      } else {
        *o++ = (char)c;
      }
    }
  }
  *o++ = '"';
  b->n = (size_t)(o - b->p);
  b->p[b->n] = 0;
}

void cll__sbuf_free(struct cll__sbuf *b) {
  free(b->p);
  memset(b, 0, sizeof(*b));
}

/* ---------------------------------------------------------------- life */

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void gen_free(cll__gen *g) {
  if (g->runner)
    cll_runner_release(g->runner);
  if (g->pfree)
    g->pfree(g->pdata);
  cll__model_ref_free(&g->ref);
  cll__gen_opts_free(&g->opts);
  json_decref(g->body);
  free(g->model_req);
  free(g->prompt);
  free(g->out_tok);
  cll_sampler_free(g->sampler);
  cll_grammar_state_free(g->gstate);
  cll_grammar_free(g->grammar);
  cll_stop_free(g->stop);
  cll__detok_free(g->detok);
  cll__sbuf_free(&g->text);
  cll__sbuf_free(&g->line);
  free(g);
}

static void on_cancel(cll_request *req, int reason, void *ud) {
  cll__gen *g = ud;
  if (g->gone)
    return;
  g->gone = true;
  if (g->phase == P_ACQUIRE && g->acq)
    cll_acquire_cancel(g->acq);
  else if (g->phase == P_RUN && g->seq)
    cll_seq_cancel(g->seq);
  /* PREPARE: on_prepared sees gone. */
}

cll__gen *cll__gen_new(cll_request *req, json_t *body, int kind) {
  cll__gen *g = calloc(1, sizeof(*g));
  if (!g) {
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return NULL;
  }
  g->api = cll_api_from(req);
  g->req = req;
  g->kind = kind;
  g->body = body;
  g->t0 = uv_hrtime();
  g->truncate = g->shift = true;
  cll__gen_opts_defaults(&g->opts);
  return g;
}

void cll__gen_fail(cll__gen *g, int status, const char *msg) {
  if (!g->answered) {
    g->answered = true;
    if (g->stream_started) {
      g->line.n = 0;
      sbuf_adds(&g->line, "{\"error\":");
      cll__sbuf_json_str(&g->line, msg, strlen(msg));
      sbuf_adds(&g->line, "}\n");
      cll_stream_write(g->req, g->line.p, g->line.n);
      cll_stream_end(g->req);
    } else {
      cll_api_error(g->req, status, msg);
    }
  }
  gen_free(g);
}

static int status_of(int code) {
  return code == CLL_ECANCELED ? 499 : code == CLL_EFULL ? 503 : cll_api_status(code);
}

bool cll__gen_common(cll__gen *g, const char *model) {
  cll_request *req = g->req;
  json_t *b = g->body;
  cll_err err = {0};
  g->model_req = strdup(model ? model : "");
  int st = cll_api_stream_flag(req, b);
  if (st < 0) {
    g->answered = true;
    gen_free(g);
    return false;
  }
  g->stream = st == 1;
  json_t *v;
  if ((v = json_object_get(b, "truncate")) && json_is_boolean(v))
    g->truncate = json_is_true(v);
  if ((v = json_object_get(b, "shift")) && json_is_boolean(v))
    g->shift = json_is_true(v);
  if (cll__keep_alive_parse(json_object_get(b, "keep_alive"), &g->keep_alive_ns,
                            &g->keep_alive_set, &err) != 0) {
    cll__gen_fail(g, 400, err.msg);
    return false;
  }
  int rc = cll__model_resolve(g->api->store, model, &g->ref, &err);
  if (rc == CLL_EINVAL) {
    cll__gen_fail(g, 400, "invalid model name");
    return false;
  }
  if (rc != 0) {
    cll__gen_fail(g, rc == CLL_ENOENT ? 404 : 500, err.msg);
    return false;
  }
  /* Options: defaults < the model's params layer < the request. A wrong
   * type is a 500, as Ollama (it surfaces from its scheduler). */
  if (cll__gen_opts_apply(&g->opts, g->ref.params, &err) != 0 ||
      cll__gen_opts_apply(&g->opts, json_object_get(b, "options"), &err) != 0) {
    cll__gen_fail(g, 500, err.msg);
    return false;
  }
  cll_request_on_cancel(req, on_cancel, g);
  return true;
}

/* ---------------------------------------------------------------- output */

static void add_created(cll__gen *g, struct cll__sbuf *b) {
  char ts[64];
  cll_api_time_rfc3339(wall_ns(), ts, sizeof(ts));
  sbuf_adds(b, "{\"model\":");
  cll__sbuf_json_str(b, g->model_req, strlen(g->model_req));
  sbuf_adds(b, ",\"created_at\":\"");
  sbuf_adds(b, ts);
  sbuf_adds(b, "\",");
}

static void add_text_field(cll__gen *g, struct cll__sbuf *b, const char *s, size_t n) {
  if (g->kind == CLL__GEN_CHAT) {
    sbuf_adds(b, "\"message\":{\"role\":\"assistant\",\"content\":");
    cll__sbuf_json_str(b, s, n);
    sbuf_adds(b, "}");
  } else {
    sbuf_adds(b, "\"response\":");
    cll__sbuf_json_str(b, s, n);
  }
}

static void stream_begin(cll__gen *g) {
  if (g->stream_started)
    return;
  g->stream_started = true;
  cll_stream_start(g->req, 200, "application/x-ndjson");
}

static void on_drain(cll_request *req, void *ud) {
  cll__gen *g = ud;
  if (g->seq && g->phase == P_RUN)
    cll_seq_resume(g->seq);
}

/* Sends or gathers a piece of answer text. */
static void emit(cll__gen *g, const char *s, size_t n) {
  if (n == 0)
    return;
  if (!g->stream) {
    cll__sbuf_add(&g->text, s, n);
    return;
  }
  stream_begin(g);
  g->line.n = 0;
  add_created(g, &g->line);
  add_text_field(g, &g->line, s, n);
  sbuf_adds(&g->line, ",\"done\":false}\n");
  if (cll_stream_write(g->req, g->line.p, g->line.n) != 0 && !g->gone) {
    g->gone = true;
    if (g->seq)
      cll_seq_cancel(g->seq);
  }
}

static void add_metric(struct cll__sbuf *b, const char *k, uint64_t v) {
  if (v == 0)
    return; /* Ollama's omitempty */
  char num[64];
  snprintf(num, sizeof(num), ",\"%s\":%" PRIu64, k, v);
  sbuf_adds(b, num);
}

static void answer_final(cll__gen *g, const char *reason, const struct cll_seq_stats *st) {
  uint64_t now = uv_hrtime();
  struct cll__sbuf b = {0};
  add_created(g, &b);
  if (g->stream)
    add_text_field(g, &b, "", 0);
  else
    add_text_field(g, &b, g->text.p ? g->text.p : "", g->text.n);
  sbuf_adds(&b, ",\"done\":true,\"done_reason\":");
  cll__sbuf_json_str(&b, reason, strlen(reason));
  if (g->want_context && st) {
    sbuf_adds(&b, ",\"context\":[");
    char num[16];
    int32_t n = 0;
    for (int32_t i = 0; i < g->n_prompt; i++, n++) {
      snprintf(num, sizeof(num), "%s%d", n ? "," : "", g->prompt[i]);
      sbuf_adds(&b, num);
    }
    for (int32_t i = 0; i < g->n_out; i++, n++) {
      snprintf(num, sizeof(num), "%s%d", n ? "," : "", g->out_tok[i]);
      sbuf_adds(&b, num);
    }
    sbuf_adds(&b, "]");
  }
  add_metric(&b, "total_duration", now - g->t0);
  add_metric(&b, "load_duration", g->t_loaded ? g->t_loaded - g->t0 : 0);
  if (st) {
    add_metric(&b, "prompt_eval_count", (uint64_t)st->prompt_n);
    add_metric(&b, "prompt_eval_duration", st->prompt_ns);
    add_metric(&b, "eval_count", (uint64_t)st->eval_n);
    add_metric(&b, "eval_duration", st->eval_ns);
    if (st->truncated || g->prompt_truncated)
      sbuf_adds(&b, ",\"truncated\":true");
  }
  sbuf_adds(&b, "}");
  g->answered = true;
  if (g->stream && g->stream_started) {
    sbuf_adds(&b, "\n");
    cll_stream_write(g->req, b.p, b.n);
    cll_stream_end(g->req);
  } else if (g->stream) {
    /* Ollama streams even a single object. */
    sbuf_adds(&b, "\n");
    cll_stream_start(g->req, 200, "application/x-ndjson");
    cll_stream_write(g->req, b.p, b.n);
    cll_stream_end(g->req);
  } else {
    cll_respond(g->req, 200, "application/json; charset=utf-8", b.p, b.n);
  }
  cll__sbuf_free(&b);
}

/* One object, not streamed, for the load/unload idioms. */
static void answer_idiom(cll__gen *g, const char *reason) {
  struct cll__sbuf b = {0};
  add_created(g, &b);
  add_text_field(g, &b, "", 0);
  sbuf_adds(&b, ",\"done\":true,\"done_reason\":");
  cll__sbuf_json_str(&b, reason, strlen(reason));
  sbuf_adds(&b, "}");
  g->answered = true;
  cll_respond(g->req, 200, "application/json; charset=utf-8", b.p, b.n);
  cll__sbuf_free(&b);
}

void cll__gen_unload(cll__gen *g) {
  cll_runners_expire(g->api->runners, g->ref.model_path);
  answer_idiom(g, "unload");
  gen_free(g);
}

/* ---------------------------------------------------------------- run */

static int on_token(void *ud, cll_seq *s, int32_t tok) {
  cll__gen *g = ud;
  const cll__mtext *t = cll_runner_aux(g->runner);
  if (cll__is_eog(t, tok))
    return CLL_SEQ_STOP;
  if (g->n_out == g->cap_out) {
    int32_t cap = g->cap_out ? 2 * g->cap_out : 256;
    int32_t *p = realloc(g->out_tok, (size_t)cap * sizeof(int32_t));
    if (!p)
      return CLL_SEQ_STOP;
    g->out_tok = p;
    g->cap_out = cap;
  }
  g->out_tok[g->n_out++] = tok;
  const char *piece, *out;
  size_t len, out_len;
  cll__detok_push(g->detok, tok, &piece, &len);
  if (g->stop_matched)
    return CLL_SEQ_STOP;
  bool hit = cll_stop_feed(g->stop, piece, len, &out, &out_len);
  emit(g, out, out_len);
  if (hit) {
    g->stop_matched = true;
    return CLL_SEQ_STOP;
  }
  if (g->stream && g->stream_started && !cll_stream_writable(g->req))
    return CLL_SEQ_PAUSE;
  return CLL_SEQ_CONTINUE;
}

static void on_seq_done(void *ud, cll_seq *s, int reason, const struct cll_seq_stats *st,
                        const cll_err *err) {
  cll__gen *g = ud;
  g->seq = NULL;
  g->phase = P_DONE;
  if (reason == CLL_DONE_ERROR) {
    cll__gen_fail(g, 500, err && err->msg[0] ? err->msg : "an error was encountered while "
                                                         "running the model");
    return;
  }
  if (reason == CLL_DONE_CANCEL || g->gone) {
    cll__gen_fail(g, 499, "request canceled");
    return;
  }
  if (!g->stop_matched) {
    const char *piece, *out;
    size_t len, out_len;
    cll__detok_flush(g->detok, &piece, &len);
    if (len) {
      cll_stop_feed(g->stop, piece, len, &out, &out_len);
      emit(g, out, out_len);
    }
    cll_stop_flush(g->stop, &out, &out_len);
    emit(g, out, out_len);
  }
  if (st->truncated)
    fprintf(stderr, "level=WARN source=api msg=\"prompt truncated to fit num_ctx\" model=%s "
                    "prompt_eval_count=%d\n",
            g->ref.display, st->prompt_n);
  answer_final(g, reason == CLL_DONE_LENGTH ? "length" : "stop", st);
  gen_free(g);
}

static int32_t sample_cb(void *ud, float *logits, int64_t n_vocab) {
  cll_sampler *s = ud;
  int32_t tok = cll_sampler_sample(s, logits);
  cll_sampler_accept(s, tok);
  return tok;
}

static void on_prepare_work(uv_work_t *w) {
  cll__gen *g = w->data;
  const cll__mtext *t = cll_runner_aux(g->runner);
  const struct cll_model_info *mi = cll_model_info(cll_runner_model(g->runner));
  g->prep_rc = g->prepare(g, t, &g->prep_err);
  if (g->prep_rc != 0)
    return;
  if (g->n_prompt == 0) {
    g->prep_rc = cll_err_set(&g->prep_err, CLL_EINVAL, "the prompt is empty after tokenization");
    return;
  }
  struct cll_sampler_params sp;
  cll_sampler_params_defaults(&sp);
  sp.seed = g->opts.seed;
  sp.temperature = (float)g->opts.temperature;
  sp.top_k = (int32_t)g->opts.top_k;
  sp.top_p = (float)g->opts.top_p;
  sp.min_p = (float)g->opts.min_p;
  sp.typical_p = (float)g->opts.typical_p;
  int64_t n_ctx = g->opts.num_ctx > 0 ? g->opts.num_ctx : cll_runner_n_ctx(g->runner);
  sp.repeat_last_n = (int32_t)(g->opts.repeat_last_n < 0 ? n_ctx : g->opts.repeat_last_n);
  sp.repeat_penalty = (float)g->opts.repeat_penalty;
  sp.presence_penalty = (float)g->opts.presence_penalty;
  sp.frequency_penalty = (float)g->opts.frequency_penalty;
  g->prep_rc = cll_sampler_new(&sp, (int32_t)mi->n_vocab, &g->sampler);
  if (g->prep_rc != 0) {
    cll_err_set(&g->prep_err, g->prep_rc, "invalid sampling options");
    return;
  }
  if (g->grammar) {
    const cll_grammar_vocab *gv = NULL;
    g->prep_rc = cll__mtext_grammar_vocab(t, &gv);
    if (g->prep_rc == 0)
      g->prep_rc = cll_grammar_state_new(g->grammar, gv, &g->gstate);
    if (g->prep_rc != 0) {
      cll_err_set(&g->prep_err, g->prep_rc, "out of memory");
      return;
    }
  }
  /* As llama-server does, the prompt seeds the penalty window. */
  int32_t from = g->n_prompt > sp.repeat_last_n ? g->n_prompt - sp.repeat_last_n : 0;
  for (int32_t i = from; i < g->n_prompt; i++)
    cll_sampler_accept(g->sampler, g->prompt[i]);
}

static void on_prepared(uv_work_t *w, int status) {
  cll__gen *g = w->data;
  if (g->gone) {
    cll__gen_fail(g, 499, "request canceled");
    return;
  }
  if (g->prep_rc != 0) {
    cll__gen_fail(g, g->prep_rc == CLL_ERANGE || g->prep_rc == CLL_EINVAL ? 400 : 500,
                  g->prep_err.msg[0] ? g->prep_err.msg : cll_strerror(g->prep_rc));
    return;
  }
  const cll__mtext *t = cll_runner_aux(g->runner);
  if (cll__detok_new(t, &g->detok) != 0 ||
      cll_stop_new((const char *const *)g->opts.stop, g->opts.n_stop, &g->stop) != 0) {
    cll__gen_fail(g, 500, "out of memory");
    return;
  }
  struct cll_seq_desc d;
  cll_seq_desc_init(&d);
  d.prompt = g->prompt;
  d.n_prompt = g->n_prompt;
  d.n_ctx = (int32_t)(g->opts.num_ctx > 0 ? g->opts.num_ctx : 0);
  d.n_keep = (int32_t)g->opts.num_keep;
  d.n_predict = (int32_t)(g->opts.num_predict > INT32_MAX ? INT32_MAX : g->opts.num_predict);
  d.shift = g->shift;
  d.truncate = g->truncate;
  d.sample = sample_cb;
  d.sample_ud = g->sampler;
  d.grammar = g->gstate;
  d.on_token = on_token;
  d.on_done = on_seq_done;
  d.ud = g;
  cll_err err = {0};
  g->phase = P_RUN;
  int rc = cll_sched_submit(cll_runner_sched(g->runner), &d, &g->seq, &err);
  if (rc != 0) {
    g->phase = P_DONE;
    cll__gen_fail(g, status_of(rc), err.msg[0] ? err.msg : cll_strerror(rc));
    return;
  }
  cll_request_on_drain(g->req, on_drain, g);
}

static void on_acquired(void *ud, cll_runner *r, int status, const cll_err *err) {
  cll__gen *g = ud;
  g->acq = NULL;
  g->t_loaded = uv_hrtime();
  if (status != 0) {
    cll__gen_fail(g, status_of(status), err && err->msg[0] ? err->msg : cll_strerror(status));
    return;
  }
  g->runner = r;
  if (g->gone) {
    cll__gen_fail(g, 499, "request canceled");
    return;
  }
  if (!g->prepare) {
    answer_idiom(g, "load");
    gen_free(g);
    return;
  }
  g->phase = P_PREPARE;
  g->work.data = g;
  if (uv_queue_work(g->api->loop, &g->work, on_prepare_work, on_prepared) != 0)
    cll__gen_fail(g, 500, "cannot queue work");
}

void cll__gen_start(cll__gen *g) {
  struct cll_load_req lr = {0};
  lr.path = g->ref.model_path;
  lr.name = g->ref.display;
  lr.digest = g->ref.man ? g->ref.man->digest : "";
  lr.num_ctx = g->opts.num_ctx;
  lr.keep_alive_ns = g->keep_alive_ns;
  lr.keep_alive_set = g->keep_alive_set;
  cll_err err = {0};
  g->phase = P_ACQUIRE;
  int rc = cll_runners_acquire(g->api->runners, &lr, on_acquired, g, &g->acq, &err);
  if (rc != 0)
    cll__gen_fail(g, status_of(rc), err.msg);
}
