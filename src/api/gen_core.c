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
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { P_NEW = 0, P_ACQUIRE, P_PREPARE, P_RUN, P_DONE };

static const struct cll__writer ndjson_writer;

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
  json_decref(g->gram_src);
  cll_stop_free(g->stop);
  cll__detok_free(g->detok);
  cll_buf_free(&g->text);
  cll_buf_free(&g->thinking);
  cll_buf_free(&g->line);
  cll__outp_free(g->outp);
  cll__tmpl_put(g->tmpl);
  json_decref(g->calls);
  json_decref(g->lp_pending);
  json_decref(g->lp_all);
  free(g->rendered);
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
  struct cll__sink *sink = cll_request_data(req);
  g->w = sink ? sink->w : &ndjson_writer;
  g->wstate = sink ? sink->state : NULL;
  g->on_prompt = sink ? sink->on_prompt : NULL;
  g->calls = json_array();
  g->lp_pending = json_array();
  g->lp_all = json_array();
  return g;
}

void cll__gen_fail(cll__gen *g, int status, const char *msg) {
  if (!g->answered) {
    g->answered = true;
    if (g->stream_started) {
      char clean[1024];
      msg = cll__api_scrub(g->req, msg, clean, sizeof(clean));
      struct cll__ev ev = {.kind = CLL__EV_ERROR, .s = msg, .n = strlen(msg)};
      g->w->event(g, g->wstate, &ev);
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
  if (g->model_req == NULL || g->calls == NULL) { /* found by test_chaos */
    cll__gen_fail(g, 500, "out of memory");
    return false;
  }
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
  if (cll__keep_alive_parse(json_object_get(b, "keep_alive"), &g->keep_alive_ns, &g->keep_alive_set,
                            &err) != 0) {
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
    /* options that is not an object is a bad request (Go's unmarshal: 400). */
    json_t *ro = json_object_get(b, "options");
    cll__gen_fail(g, ro && !json_is_null(ro) && !json_is_object(ro) ? 400 : 500, err.msg);
    return false;
  }
  cll_request_on_cancel(req, on_cancel, g);
  return true;
}

/* ---------------------------------------------------------------- output */

static void add_created(cll__gen *g, cll_buf *b) {
  char ts[64];
  cll_api_time_rfc3339(wall_ns(), ts, sizeof(ts));
  cll_buf_puts(b, "{\"model\":");
  cll_json_escape(b, g->model_req, strlen(g->model_req));
  cll_buf_puts(b, ",\"created_at\":\"");
  cll_buf_puts(b, ts);
  cll_buf_puts(b, "\",");
}

static void add_json(cll_buf *b, const json_t *v) {
  char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
  if (t) {
    cll_buf_puts(b, t);
    free(t);
  }
}

/* The message (chat) or response fields (generate) of one object. */
static void add_text_field(cll__gen *g, cll_buf *b, const char *s, size_t n, const char *th,
                           size_t nth, const json_t *calls) {
  bool chat = g->kind == CLL__GEN_CHAT;
  cll_buf_puts(b, chat ? "\"message\":{\"role\":\"assistant\",\"content\":" : "\"response\":");
  cll_json_escape(b, s, n);
  if (nth) {
    cll_buf_puts(b, ",\"thinking\":");
    cll_json_escape(b, th, nth);
  }
  if (json_array_size(calls)) {
    cll_buf_puts(b, ",\"tool_calls\":");
    add_json(b, calls);
  }
  if (chat)
    cll_buf_puts(b, "}");
}

static void on_drain(cll_request *req, void *ud) {
  cll__gen *g = ud;
  if (g->seq && g->phase == P_RUN)
    cll_seq_resume(g->seq);
}

static void add_metric(cll_buf *b, const char *k, uint64_t v) {
  if (v == 0)
    return; /* Ollama's omitempty */
  char num[64];
  snprintf(num, sizeof(num), ",\"%s\":%" PRIu64, k, v);
  cll_buf_puts(b, num);
}

static void ndjson_send(cll__gen *g, cll_buf *line) {
  if (line->err) { /* out of memory building it: an error line, never a cut one */
    if (g->seq)
      cll_seq_cancel(g->seq);
    cll_buf_reset(line);
    if (cll_buf_puts(line, "{\"error\":\"out of memory\"}\n") != 0)
      return;
  }
  if (!g->stream_started) {
    g->stream_started = true;
    cll_stream_start(g->req, 200, "application/x-ndjson");
  }
  cll_stream_write(g->req, line->data, line->len);
}

static void ndjson_final(cll__gen *g, const struct cll__ev *ev) {
  const struct cll_seq_stats *st = ev->stats;
  uint64_t now = uv_hrtime();
  cll_buf b = {0};
  add_created(g, &b);
  if (g->stream)
    add_text_field(g, &b, "", 0, NULL, 0, NULL);
  else
    add_text_field(g, &b, g->text.data ? g->text.data : "", g->text.len, g->thinking.data,
                   g->thinking.len, g->calls);
  if (ev->logprobs) {
    cll_buf_puts(&b, ",\"logprobs\":");
    add_json(&b, ev->logprobs);
  }
  cll_buf_puts(&b, ",\"done\":true,\"done_reason\":");
  cll_json_escape(&b, ev->done_reason, strlen(ev->done_reason));
  if (g->want_context && st) {
    cll_buf_puts(&b, ",\"context\":[");
    char num[16];
    int32_t n = 0;
    for (int32_t i = 0; i < g->n_prompt; i++, n++) {
      snprintf(num, sizeof(num), "%s%d", n ? "," : "", g->prompt[i]);
      cll_buf_puts(&b, num);
    }
    for (int32_t i = 0; i < g->n_out; i++, n++) {
      snprintf(num, sizeof(num), "%s%d", n ? "," : "", g->out_tok[i]);
      cll_buf_puts(&b, num);
    }
    cll_buf_puts(&b, "]");
  }
  add_metric(&b, "total_duration", now - g->t0);
  add_metric(&b, "load_duration", g->t_loaded ? g->t_loaded - g->t0 : 0);
  if (st) {
    add_metric(&b, "prompt_eval_count", (uint64_t)st->prompt_n);
    add_metric(&b, "prompt_eval_duration", st->prompt_ns);
    add_metric(&b, "eval_count", (uint64_t)st->eval_n);
    add_metric(&b, "eval_duration", st->eval_ns);
    if (st->truncated || g->prompt_truncated)
      cll_buf_puts(&b, ",\"truncated\":true");
  }
  cll_buf_puts(&b, "}");
  if ((b.err || g->text.err || g->thinking.err) && !g->stream) {
    cll_buf_free(&b);
    cll_api_error(g->req, 500, "out of memory");
    return;
  }
  if (g->stream) {
    /* Ollama streams even a single object. */
    cll_buf_puts(&b, "\n");
    ndjson_send(g, &b);
    cll_stream_end(g->req);
  } else {
    cll_respond(g->req, 200, "application/json; charset=utf-8", b.data, b.len);
  }
  cll_buf_free(&b);
}

/* The Ollama writer: one NDJSON object per piece, thoughts and tool calls
 * in fields of their own; non-stream, one object at the end. */
static void ndjson_event(cll__gen *g, void *state, const struct cll__ev *ev) {
  cll_buf *b = &g->line;
  switch (ev->kind) {
  case CLL__EV_TEXT:
  case CLL__EV_THINKING:
  case CLL__EV_TOOL_CALL:
    if (!g->stream)
      return;
    cll_buf_reset(b);
    add_created(g, b);
    if (ev->kind == CLL__EV_TEXT) {
      add_text_field(g, b, ev->s, ev->n, NULL, 0, NULL);
    } else if (ev->kind == CLL__EV_THINKING) {
      add_text_field(g, b, "", 0, ev->s, ev->n, NULL);
    } else {
      json_t *one = json_pack("[O]", ev->call);
      add_text_field(g, b, "", 0, NULL, 0, one);
      json_decref(one);
    }
    if (ev->logprobs) {
      cll_buf_puts(b, ",\"logprobs\":");
      add_json(b, ev->logprobs);
    }
    cll_buf_puts(b, ",\"done\":false}\n");
    ndjson_send(g, b);
    return;
  case CLL__EV_DONE:
    ndjson_final(g, ev);
    return;
  case CLL__EV_ERROR:
    cll_buf_reset(b);
    cll_buf_puts(b, "{\"error\":");
    cll_json_escape(b, ev->s, strlen(ev->s));
    cll_buf_puts(b, "}\n");
    cll_stream_write(g->req, b->data, b->len);
    cll_stream_end(g->req);
    return;
  }
}

static const struct cll__writer ndjson_writer = {ndjson_event};

/* The filter of every translated generation: the writer's own output is
 * the client's answer as it is; a native answer made before generation
 * goes to the sink's native_answer. */
static void sink_respond(cll_request *req, int status, const char *ctype, const void *body,
                         size_t len, void *ud) {
  struct cll__sink *k = ud;
  if (k->answering)
    cll_respond(req, status, ctype, body, len);
  else
    k->native_answer(req, status, body, len, k->state);
  k->free_state(k->state);
}

static int sink_stream_start(cll_request *req, int status, const char *ctype, void *ud) {
  return cll_stream_start(req, status, ctype);
}

static int sink_stream_write(cll_request *req, const void *data, size_t len, void *ud) {
  return cll_stream_write(req, data, len);
}

static void sink_stream_end(cll_request *req, void *ud) {
  struct cll__sink *k = ud;
  cll_stream_end(req);
  k->free_state(k->state);
}

static const cll_filter sink_filter = {sink_respond, sink_stream_start, sink_stream_write,
                                       sink_stream_end};

void cll__gen_sink_attach(cll_request *req, struct cll__sink *sink) {
  cll_request_set_data(req, sink);
}

int cll__gen_forward(cll_request *req, const char *path, const char *body, struct cll__sink *sink) {
  if (!body)
    return CLL_ENOMEM;
  cll_request_set_data(req, sink);
  int rc = cll_request_forward(req, "POST", path, body, strlen(body), &sink_filter, sink);
  if (rc != 0)
    cll_request_set_data(req, NULL);
  return rc;
}

/* Sends one event to the writer; a client gone cancels the sequence. */
static void send_event(cll__gen *g, const struct cll__ev *ev) {
  g->w->event(g, g->wstate, ev);
  if (ev->kind < CLL__EV_DONE && g->stream && cll_request_gone(g->req) && !g->gone) {
    g->gone = true;
    if (g->seq)
      cll_seq_cancel(g->seq);
  }
}

static void call_id(char out[16]) {
  static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  unsigned char r[8];
  if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0)
    for (size_t i = 0; i < sizeof(r); i++)
      r[i] = (unsigned char)rand();
  memcpy(out, "call_", 5);
  for (int i = 0; i < 8; i++)
    out[5 + i] = alnum[r[i] % 36];
  out[13] = 0;
}

/* The output parser's pieces become events. */
static void on_out(void *ud, int kind, const char *s, size_t n, const char *name, json_t *args) {
  cll__gen *g = ud;
  struct cll__ev ev = {0};
  if (kind == CLL__OUT_TOOL_CALL) {
    char id[16];
    call_id(id);
    json_t *call = json_pack("{s:s,s:{s:i,s:s,s:O}}", "id", id, "function", "index",
                             (int)json_array_size(g->calls), "name", name, "arguments", args);
    if (!call)
      return;
    json_array_append_new(g->calls, call);
    ev.kind = CLL__EV_TOOL_CALL;
    ev.call = call;
  } else {
    if (n == 0)
      return;
    cll_buf_append(kind == CLL__OUT_TEXT ? &g->text : &g->thinking, s, n);
    ev.kind = kind == CLL__OUT_TEXT ? CLL__EV_TEXT : CLL__EV_THINKING;
    ev.s = s;
    ev.n = n;
    if (json_array_size(g->lp_pending))
      ev.logprobs = g->lp_pending;
  }
  send_event(g, &ev);
  if (ev.logprobs)
    json_array_clear(g->lp_pending);
}

/* A piece of answer text (after stop strings) into the output parser. */
static void emit(cll__gen *g, const char *s, size_t n) {
  if (n == 0)
    return;
  if (g->outp)
    cll__outp_feed(g->outp, s, n, on_out, g);
  else
    on_out(g, CLL__OUT_TEXT, s, n, NULL, NULL);
}

static void answer_final(cll__gen *g, const char *reason, const struct cll_seq_stats *st) {
  if (g->outp)
    cll__outp_finish(g->outp, on_out, g);
  struct cll__ev ev = {.kind = CLL__EV_DONE, .done_reason = reason, .stats = st};
  if (json_array_size(g->stream ? g->lp_pending : g->lp_all))
    ev.logprobs = g->stream ? g->lp_pending : g->lp_all;
  g->answered = true;
  g->w->event(g, g->wstate, &ev);
}

/* One object, not streamed, for the load/unload idioms. */
static void answer_idiom(cll__gen *g, const char *reason) {
  cll_buf b = {0};
  add_created(g, &b);
  add_text_field(g, &b, "", 0, NULL, 0, NULL);
  cll_buf_puts(&b, ",\"done\":true,\"done_reason\":");
  cll_json_escape(&b, reason, strlen(reason));
  cll_buf_puts(&b, "}");
  g->answered = true;
  if (b.err)
    cll_api_error(g->req, 500, "out of memory");
  else
    cll_respond(g->req, 200, "application/json; charset=utf-8", b.data, b.len);
  cll_buf_free(&b);
}

/* _debug_render_only: the rendered prompt, nothing run. */
static void answer_debug(cll__gen *g) {
  cll_buf b = {0};
  add_created(g, &b);
  cll_buf_puts(&b, "\"_debug_info\":{\"rendered_template\":");
  cll_json_escape(&b, g->rendered ? g->rendered : "", g->rendered ? strlen(g->rendered) : 0);
  char num[64];
  snprintf(num, sizeof(num), ",\"image_count\":%zu}}", g->n_images);
  cll_buf_puts(&b, num);
  g->answered = true;
  if (b.err)
    cll_api_error(g->req, 500, "out of memory");
  else
    cll_respond(g->req, 200, "application/json; charset=utf-8", b.data, b.len);
  cll_buf_free(&b);
}

void cll__gen_unload(cll__gen *g) {
  cll_runners_expire(g->api->runners, g->ref.model_path);
  answer_idiom(g, "unload");
  gen_free(g);
}

/* ---------------------------------------------------------------- run */

/* {"token","logprob","bytes"} of one token (the text of its piece). */
static json_t *lp_entry(const cll__mtext *t, int32_t tok, float lp) {
  char *s = NULL;
  size_t n = 0;
  if (cll__detokenize(t, &tok, 1, &s, &n) != 0)
    n = 0;
  json_t *bytes = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(bytes, json_integer((unsigned char)s[i]));
  /* A piece that is part of a UTF-8 sequence is not valid text on its own. */
  json_t *text = s ? json_stringn(s, n) : NULL;
  json_t *e = json_pack("{s:o,s:f,s:o}", "token", text ? text : json_string("\ufffd"), "logprob",
                        isfinite(lp) ? (double)lp : -9999.0, "bytes", bytes);
  free(s);
  return e;
}

/* The entry of the token just sampled, with its alternatives. */
static void lp_record(cll__gen *g, const cll__mtext *t, int32_t tok) {
  json_t *e = lp_entry(t, tok, g->lp_token);
  if (!e)
    return;
  if (g->top_logprobs > 0) {
    json_t *top = json_array();
    for (int i = 0; i < g->lp_n_top; i++)
      json_array_append_new(top, lp_entry(t, g->lp_top[i].token, g->lp_top[i].logprob));
    json_object_set_new(e, "top_logprobs", top);
  }
  json_array_append(g->lp_pending, e);
  json_array_append_new(g->lp_all, e);
}

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
  if (g->logprobs)
    lp_record(g, t, tok);
  const char *piece, *out;
  size_t len, out_len;
  cll__detok_push(g->detok, tok, &piece, &len);
  if (g->stop_matched || g->gone)
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
    cll__gen_fail(g, 500,
                  err && err->msg[0] ? err->msg
                                     : "an error was encountered while "
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
    fprintf(stderr,
            "level=WARN source=api msg=\"prompt truncated to fit num_ctx\" model=%s "
            "prompt_eval_count=%d\n",
            g->ref.display, st->prompt_n);
  answer_final(g, reason == CLL_DONE_LENGTH ? "length" : "stop", st);
  gen_free(g);
}

static int32_t sample_cb(void *ud, float *logits, int64_t n_vocab) {
  cll__gen *g = ud;
  int32_t tok = cll_sampler_sample(g->sampler, logits);
  cll_sampler_accept(g->sampler, tok);
  if (g->logprobs) {
    /* Of the logits the sampler saw (after any grammar mask). */
    int n = cll_logprobs(logits, (int32_t)n_vocab, tok, g->top_logprobs, g->lp_top, &g->lp_token);
    g->lp_n_top = n < 0 ? 0 : n;
  }
  return tok;
}

static void on_prepare_work(uv_work_t *w) {
  cll__gen *g = w->data;
  const cll__mtext *t = cll_runner_aux(g->runner);
  const struct cll_model_info *mi = cll_model_info(cll_runner_model(g->runner));
  g->prep_rc = g->prepare(g, t, &g->prep_err);
  if (g->prep_rc != 0 || g->debug_render || g->on_prompt)
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
  if (g->debug_render) {
    answer_debug(g);
    gen_free(g);
    return;
  }
  if (g->on_prompt) {
    g->answered = true;
    g->on_prompt(g, g->wstate);
    gen_free(g);
    return;
  }
  const cll__mtext *t = cll_runner_aux(g->runner);
  if (((g->outcfg.tool_tag || g->outcfg.think_open) && cll__outp_new(&g->outcfg, &g->outp) != 0) ||
      cll__detok_new(t, &g->detok) != 0 ||
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
  d.sample_ud = g;
  d.grammar = g->gstate;
  d.on_token = on_token;
  d.on_done = on_seq_done;
  d.ud = g;
  cll_err err = {0};
  g->phase = P_RUN;
  struct cll__metrics_seq *mw = cll__metrics_seq_wrap(&d);
  int rc = cll_sched_submit(cll_runner_sched(g->runner), &d, &g->seq, &err);
  if (rc != 0) {
    cll__metrics_seq_unwrap(mw, &d);
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
  if (cll_model_info(cll_runner_model(r))->encoder) {
    /* Ollama's answer for a model without the completion capability. */
    char msg[600];
    snprintf(msg, sizeof(msg), "\"%.500s\" does not support %s", g->model_req,
             g->kind == CLL__GEN_CHAT ? "chat" : "generate");
    cll__gen_fail(g, 400, msg);
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
  lr.num_thread = g->opts.num_thread;
  lr.keep_alive_ns = g->keep_alive_ns;
  lr.keep_alive_set = g->keep_alive_set;
  cll_err err = {0};
  g->phase = P_ACQUIRE;
  int rc = cll_runners_acquire(g->api->runners, &lr, on_acquired, g, &g->acq, &err);
  if (rc != 0)
    cll__gen_fail(g, status_of(rc), err.msg);
}
