/* openai.c — the OpenAI-compatible endpoints (OLLAMA_API.md §1.13) and
 * their routes: POST /v1/chat/completions and POST /v1/completions here
 * (request translation, the per-request state, the chunk and SSE writers);
 * POST /v1/embeddings, GET /v1/models, GET /v1/models/:model in
 * openai_models.c; the shared error shape and option mapping in
 * openai_common.c; POST /v1/responses in responses.c.
 *
 * DESIGN. As Ollama's middleware does, each endpoint is a translation
 * layer over a native one, so model resolution, validation, scheduling and
 * errors are the native handler's own:
 *   1. parse and check the OpenAI request, build the native request body
 *      (chat -> /api/chat, completions -> /api/generate, embeddings ->
 *      /api/embed, models -> /api/tags, models/:model -> /api/show);
 *   2. cll_request_forward() runs the native handler on the same request
 *      with that body, its answer going through a filter (server.h);
 *   3. the filter turns each native NDJSON object (or the single JSON
 *      answer) into OpenAI's shape: one chat.completion object, or SSE
 *      events `data: {chunk}\n\n` ... `data: [DONE]\n\n`; a native
 *      {"error": msg} with status S becomes {"error":{"message":msg,
 *      "type":T,"param":null,"code":null}} with the same S.
 * The per-request state (struct oai) is freed by the filter's terminal
 * callback, which the native handler always reaches exactly once (even
 * when the client goes away), so nothing else frees it.
 *
 * Threads: loop thread only. Nothing blocks. */
#include "cllama/api.h"
#include "gen_core.h"
#include "openai.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- request state */

void cll__oai_free(struct oai *o) {
  if (!o)
    return;
  free(o->model);
  free(o->error);
  json_decref(o->text);
  json_decref(o->reasoning);
  json_decref(o->tool_calls);
  free(o);
}

/* ---------------------------------------------------------------- output */

struct oai *cll__oai_new(int kind, const char *model) {
  struct oai *o = calloc(1, sizeof(*o));
  if (!o)
    return NULL;
  o->kind = kind;
  o->created = (int64_t)time(NULL);
  o->model = strdup(model ? model : "");
  o->text = json_string("");
  o->reasoning = json_string("");
  o->tool_calls = json_array();
  if (!o->model || !o->text || !o->reasoning || !o->tool_calls) {
    cll__oai_free(o);
    return NULL;
  }
  /* Ollama: rand.Intn(999). */
  snprintf(o->id, sizeof(o->id), "%s-%d", kind == K_CHAT ? "chatcmpl" : "cmpl", rand() % 999);
  return o;
}

static void sse_send(cll_request *req, struct oai *o, json_t *chunk) {
  char *text = json_dumps(chunk, JSON_COMPACT);
  json_decref(chunk);
  if (!text)
    return;
  size_t n = strlen(text);
  char *ev = malloc(n + 9);
  if (ev) {
    memcpy(ev, "data: ", 6);
    memcpy(ev + 6, text, n);
    memcpy(ev + 6 + n, "\n\n", 2);
    cll_stream_write(req, ev, n + 8);
    free(ev);
  }
  free(text);
}

static void sse_begin(cll_request *req, struct oai *o) {
  if (o->sse_started)
    return;
  o->sse_started = true;
  cll_stream_start(req, 200, "text/event-stream");
}

static json_t *usage_object(const struct oai *o) {
  return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)o->prompt_tokens,
                   "completion_tokens", (json_int_t)o->completion_tokens, "total_tokens",
                   (json_int_t)(o->prompt_tokens + o->completion_tokens));
}

static json_t *chunk_head(const struct oai *o, const char *object) {
  return json_pack("{s:s,s:s,s:I,s:s,s:s}", "id", o->id, "object", object, "created",
                   (json_int_t)o->created, "model", o->model, "system_fingerprint", "fp_ollama");
}

/* OpenAI's finish_reason for Ollama's done_reason. */
static const char *finish_reason(const struct oai *o) {
  if (strcmp(o->done_reason, "length") == 0)
    return "length";
  if (o->saw_tool_calls)
    return "tool_calls";
  return "stop";
}

/* A native tool call ({"id","function":{"index","name","arguments":{}}})
 * as OpenAI's (arguments a JSON string). New. */
static json_t *tool_call_openai(const json_t *tc, size_t i) {
  json_t *fn = json_object_get(tc, "function");
  json_t *args = json_object_get(fn, "arguments");
  char *a = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : strdup("{}");
  json_t *idx = json_object_get(fn, "index");
  const char *id = json_string_value(json_object_get(tc, "id"));
  const char *name = json_string_value(json_object_get(fn, "name"));
  json_t *out = json_pack(
      "{s:s,s:I,s:s,s:{s:s,s:s}}", "id", id ? id : "", "index",
      (json_int_t)(json_is_integer(idx) ? json_integer_value(idx) : (json_int_t)i), "type",
      "function", "function", "name", name ? name : "", "arguments", a ? a : "{}");
  free(a);
  return out;
}

static json_t *tool_calls_openai(const json_t *native) {
  json_t *out = json_array();
  size_t i;
  json_t *tc;
  json_array_foreach(native, i, tc) json_array_append_new(out, tool_call_openai(tc, i));
  return out;
}

/* Native logprob entries as OpenAI's choice.logprobs: chat's
 * {"content":[{token, logprob, bytes, top_logprobs}]}, or the completions
 * API's {"tokens","token_logprobs","top_logprobs":[{token: logprob}],
 * "text_offset"}. NULL when there are none. New. */
static json_t *logprobs_openai(const struct oai *o, const json_t *entries, size_t text_at) {
  if (!json_array_size(entries))
    return NULL;
  size_t i;
  json_t *e;
  if (o->kind == K_CHAT) {
    json_t *content = json_deep_copy(entries);
    json_array_foreach(content, i, e) {
      if (!json_object_get(e, "top_logprobs"))
        json_object_set_new(e, "top_logprobs", json_array());
    }
    return json_pack("{s:o}", "content", content);
  }
  json_t *toks = json_array(), *lps = json_array(), *tops = json_array(), *offs = json_array();
  size_t at = text_at;
  json_array_foreach(entries, i, e) {
    const char *t = json_string_value(json_object_get(e, "token"));
    json_array_append(toks, json_object_get(e, "token"));
    json_array_append(lps, json_object_get(e, "logprob"));
    json_array_append_new(offs, json_integer((json_int_t)at));
    at += t ? strlen(t) : 0;
    json_t *top = json_object(), *a;
    size_t j;
    json_array_foreach(json_object_get(e, "top_logprobs"), j, a) {
      const char *k = json_string_value(json_object_get(a, "token"));
      if (k)
        json_object_set(top, k, json_object_get(a, "logprob"));
    }
    json_array_append_new(tops, top);
  }
  return json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps, "top_logprobs", tops,
                   "text_offset", offs);
}

/* One chat.completion.chunk with this delta (stolen) and finish reason. */
static void chat_chunk(cll_request *req, struct oai *o, json_t *delta, const char *finish,
                       const json_t *lp) {
  json_t *c = chunk_head(o, "chat.completion.chunk");
  json_t *choice = json_pack("{s:i,s:o,s:o}", "index", 0, "delta", delta, "finish_reason",
                             finish ? json_string(finish) : json_null());
  json_t *l = logprobs_openai(o, lp, 0);
  if (l)
    json_object_set_new(choice, "logprobs", l);
  json_object_set_new(c, "choices", json_pack("[o]", choice));
  sse_send(req, o, c);
}

static json_t *delta_new(struct oai *o) {
  json_t *d = json_object();
  if (!o->role_sent) {
    json_object_set_new(d, "role", json_string("assistant"));
    o->role_sent = true;
  }
  return d;
}

/* The whole answer as one object (non-stream), from what the generation
 * gathered. Answers req. */
static void answer_whole(cll_request *req, struct oai *o, const cll__gen *g) {
  json_t *c = chunk_head(o, o->kind == K_CHAT ? "chat.completion" : "text_completion");
  const char *text = g && g->text.data ? g->text.data : "";
  json_t *choice;
  if (o->kind == K_CHAT) {
    json_t *msg = json_pack("{s:s,s:s}", "role", "assistant", "content", text);
    if (g && g->thinking.len) {
      json_object_set_new(msg, "reasoning_content", json_string(g->thinking.data));
      json_object_set_new(msg, "reasoning", json_string(g->thinking.data));
    }
    if (g && json_array_size(g->calls))
      json_object_set_new(msg, "tool_calls", tool_calls_openai(g->calls));
    choice =
        json_pack("{s:i,s:o,s:s}", "index", 0, "message", msg, "finish_reason", finish_reason(o));
  } else {
    choice =
        json_pack("{s:s,s:i,s:s}", "text", text, "index", 0, "finish_reason", finish_reason(o));
  }
  json_t *lp = g ? logprobs_openai(o, g->lp_all, 0) : NULL;
  if (lp)
    json_object_set_new(choice, "logprobs", lp);
  json_object_set_new(c, "choices", json_pack("[o]", choice));
  json_object_set_new(c, "usage", usage_object(o));
  o->sink.answering = true;
  cll__oai_respond_json(req, 200, c); /* the filter passes it on and frees o */
}

/* Ollama's completion chunks carry a zero usage when it was asked for. */
static void completion_usage0(const struct oai *o, json_t *c) {
  if (o->include_usage)
    json_object_set_new(
        c, "usage",
        json_pack("{s:i,s:i,s:i}", "prompt_tokens", 0, "completion_tokens", 0, "total_tokens", 0));
}

/* The OpenAI writer: generation events as chat.completion.chunk /
 * text_completion SSE events, or one object at the end. */
static void oai_event(cll__gen *g, void *state, const struct cll__ev *ev) {
  struct oai *o = state;
  cll_request *req = g->req;
  switch (ev->kind) {
  case CLL__EV_TOOL_CALL:
    o->saw_tool_calls = true;
    /* fall through */
  case CLL__EV_TEXT:
  case CLL__EV_THINKING:
    if (!o->stream)
      return;
    sse_begin(req, o);
    g->stream_started = true;
    if (o->kind == K_COMPLETION) {
      if (ev->kind != CLL__EV_TEXT)
        return;
      json_t *c = chunk_head(o, "text_completion");
      json_t *choice =
          json_pack("{s:s%,s:i,s:n}", "text", ev->s, ev->n, "index", 0, "finish_reason");
      json_t *lp = logprobs_openai(o, ev->logprobs, 0);
      if (lp)
        json_object_set_new(choice, "logprobs", lp);
      json_object_set_new(c, "choices", json_pack("[o]", choice));
      completion_usage0(o, c);
      sse_send(req, o, c);
      return;
    }
    json_t *d = delta_new(o);
    if (ev->kind == CLL__EV_TEXT) {
      json_object_set_new(d, "content", json_stringn(ev->s, ev->n));
    } else if (ev->kind == CLL__EV_THINKING) {
      json_object_set_new(d, "reasoning_content", json_stringn(ev->s, ev->n));
      json_object_set_new(d, "reasoning", json_stringn(ev->s, ev->n));
    } else {
      json_t *one = json_array();
      json_array_append_new(one, tool_call_openai(ev->call, json_array_size(g->calls) - 1));
      json_object_set_new(d, "tool_calls", one);
    }
    chat_chunk(req, o, d, NULL, ev->logprobs);
    return;
  case CLL__EV_DONE:
    snprintf(o->done_reason, sizeof(o->done_reason), "%s", ev->done_reason);
    if (ev->stats) {
      o->prompt_tokens = ev->stats->prompt_n;
      o->completion_tokens = ev->stats->eval_n;
    }
    if (!o->stream) {
      answer_whole(req, o, g);
      return;
    }
    sse_begin(req, o);
    g->stream_started = true;
    if (o->kind == K_CHAT) {
      if (!o->role_sent)
        chat_chunk(req, o, delta_new(o), NULL, NULL);
      chat_chunk(req, o, json_object(), finish_reason(o), ev->logprobs);
    } else {
      json_t *c = chunk_head(o, "text_completion");
      json_object_set_new(
          c, "choices",
          json_pack("[{s:s,s:i,s:s}]", "text", "", "index", 0, "finish_reason", finish_reason(o)));
      completion_usage0(o, c);
      sse_send(req, o, c);
    }
    if (o->include_usage) {
      json_t *c = chunk_head(o, o->kind == K_CHAT ? "chat.completion.chunk" : "text_completion");
      json_object_set_new(c, "choices", json_array());
      json_object_set_new(c, "usage", usage_object(o));
      sse_send(req, o, c);
    }
    cll_stream_write(req, "data: [DONE]\n\n", 14);
    o->sink.answering = true;
    cll_stream_end(req); /* the filter frees o */
    return;
  case CLL__EV_ERROR:
    sse_send(req, o, cll__oai_error_object(500, ev->s));
    o->sink.answering = true;
    cll_stream_end(req);
    return;
  }
}

static const struct cll__writer oai_writer = {oai_event};

/* The native error body {"error": msg} (or plain text) as OpenAI's. */
void cll__oai_forward_error(cll_request *req, int status, const void *body, size_t len) {
  json_t *v = json_loadb(body, len, 0, NULL);
  const char *msg = json_string_value(json_object_get(v, "error"));
  if (msg) {
    cll__oai_error(req, status, msg);
  } else {
    char *text = strndup(body ? body : "", len);
    cll__oai_error(req, status, text ? text : "");
    free(text);
  }
  json_decref(v);
}

/* ---------------------------------------------------------------- filters */

/* A native answer before any generation: an error, or a load idiom (an
 * empty answer). */
static void gen_native_answer(cll_request *req, int status, const void *body, size_t len,
                              void *ud) {
  if (status != 200)
    cll__oai_forward_error(req, status, body, len);
  else
    answer_whole(req, ud, NULL);
}

static void oai_free_state(void *ud) {
  cll__oai_free(ud);
}

/* Runs the native generation route with body (stolen), answering through
 * oai_writer; answers 500 if it cannot. */
static void forward_gen(cll_request *req, const char *path, json_t *body, struct oai *o) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  o->sink = (struct cll__sink){.w = &oai_writer,
                               .state = o,
                               .native_answer = gen_native_answer,
                               .free_state = oai_free_state};
  int rc = cll__gen_forward(req, path, text, &o->sink);
  free(text);
  if (rc != 0) {
    cll__oai_free(o);
    cll__oai_error(req, 500, cll_strerror(rc));
  }
}

/* Runs the native route with body (stolen) through filter; answers 500 if
 * it cannot. */
void cll__oai_forward(cll_request *req, const char *method, const char *path, json_t *body,
                      const cll_filter *f, struct oai *o) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  int rc = cll_request_forward(req, method, path, text, text ? strlen(text) : 0, f, o);
  free(text);
  if (rc != 0) {
    cll__oai_free(o);
    cll__oai_error(req, 500, cll_strerror(rc));
  }
}

/* ---------------------------------------------------------------- options */

static bool stream_fields(cll_request *req, json_t *b, const char *st, struct oai *o) {
  if (!cll__oai_check_field(req, b, st, "stream", 'b', "bool") ||
      !cll__oai_check_field(req, b, st, "stream_options", 'o', "openai.StreamOptions"))
    return false;
  o->stream = json_is_true(json_object_get(b, "stream"));
  o->include_usage =
      json_is_true(json_object_get(json_object_get(b, "stream_options"), "include_usage"));
  return true;
}

/* ---------------------------------------------------------------- chat */

/* "data:image/<jpeg|jpg|png|webp>;base64,<data>" -> the base64 data. */
static const char *image_data(const char *url) {
  static const char *types[] = {"jpeg", "jpg", "png", "webp"};
  if (strncmp(url, "data:image/", 11) != 0)
    return NULL;
  for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
    size_t n = strlen(types[i]);
    if (strncmp(url + 11, types[i], n) == 0 && strncmp(url + 11 + n, ";base64,", 8) == 0)
      return url + 11 + n + 8;
  }
  return NULL;
}

/* Converts the OpenAI messages into native ones (appended to out). On an
 * error answers 400 and returns false. */
static bool map_messages(cll_request *req, json_t *msgs, json_t *out) {
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    if (!json_is_object(m)) {
      cll__oai_errorf(req, 400,
                      "json: cannot unmarshal %s into Go struct cll__oai_field "
                      "ChatCompletionRequest.messages of type openai.Message",
                      cll__oai_json_kind(m));
      return false;
    }
    json_t *role = json_object_get(m, "role");
    if (role && !json_is_string(role)) {
      cll__oai_errorf(req, 400,
                      "json: cannot unmarshal %s into Go struct cll__oai_field "
                      "Message.messages.role of type string",
                      cll__oai_json_kind(role));
      return false;
    }
    const char *r = role ? json_string_value(role) : "";
    json_t *content = json_object_get(m, "content");
    json_t *tcs = json_object_get(m, "tool_calls");
    json_t *base = json_pack("{s:s}", "role", r);
    /* Tool calls: arguments arrive as a JSON string. */
    if (json_is_array(tcs) && json_array_size(tcs) > 0) {
      json_t *ntc = json_array();
      size_t j;
      json_t *tc;
      json_array_foreach(tcs, j, tc) {
        json_t *fn = json_object_get(tc, "function");
        const char *astr = json_string_value(json_object_get(fn, "arguments"));
        json_t *args = astr ? json_loads(astr, JSON_DECODE_ANY, NULL) : json_object();
        if (!json_is_object(args)) {
          json_decref(args);
          json_decref(ntc);
          json_decref(base);
          cll__oai_error(req, 400, "invalid tool call arguments");
          return false;
        }
        const char *id = json_string_value(json_object_get(tc, "id"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        json_t *n = json_pack("{s:{s:i,s:s,s:o}}", "function", "index", (int)j, "name",
                              name ? name : "", "arguments", args);
        if (id)
          json_object_set_new(n, "id", json_string(id));
        json_array_append_new(ntc, n);
      }
      json_object_set_new(base, "tool_calls", ntc);
    }
    /* A tool result names its tool directly or through the call id. */
    if (strcmp(r, "tool") == 0) {
      const char *name = json_string_value(json_object_get(m, "name"));
      const char *call_id = json_string_value(json_object_get(m, "tool_call_id"));
      if (call_id)
        json_object_set_new(base, "tool_call_id", json_string(call_id));
      if (!name && call_id) {
        for (size_t k = 0; k < i && !name; k++) {
          json_t *calls = json_object_get(json_array_get(msgs, k), "tool_calls");
          size_t j;
          json_t *tc;
          json_array_foreach(calls, j, tc) {
            const char *cid = json_string_value(json_object_get(tc, "id"));
            if (cid && strcmp(cid, call_id) == 0) {
              name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
              break;
            }
          }
        }
      }
      if (name)
        json_object_set_new(base, "tool_name", json_string(name));
    }
    if (json_is_string(content)) {
      json_object_set(base, "content", content);
      json_array_append_new(out, base);
      continue;
    }
    if (!json_is_array(content)) {
      if ((!content || json_is_null(content)) && json_object_get(base, "tool_calls")) {
        json_object_set_new(base, "content", json_string(""));
        json_array_append_new(out, base);
        continue;
      }
      json_decref(base);
      cll__oai_errorf(req, 400, "invalid message content type: %s", cll__oai_go_any_type(content));
      return false;
    }
    /* Parts: each becomes a message of its own with the same role. */
    size_t j;
    json_t *part;
    json_array_foreach(content, j, part) {
      const char *type = json_string_value(json_object_get(part, "type"));
      if (!type) {
        json_decref(base);
        cll__oai_error(req, 400, "invalid message format");
        return false;
      }
      json_t *nm = json_deep_copy(base);
      if (strcmp(type, "text") == 0) {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (!t) {
          json_decref(nm);
          json_decref(base);
          cll__oai_error(req, 400, "invalid message format");
          return false;
        }
        json_object_set_new(nm, "content", json_string(t));
      } else if (strcmp(type, "image_url") == 0) {
        json_t *iu = json_object_get(part, "image_url");
        const char *url = json_is_string(iu) ? json_string_value(iu)
                                             : json_string_value(json_object_get(iu, "url"));
        if (url && (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0)) {
          json_decref(nm);
          json_decref(base);
          cll__oai_error(req, 400,
                         "image URLs are not currently supported, please use base64 "
                         "encoded data instead");
          return false;
        }
        const char *data = url ? image_data(url) : NULL;
        if (!data) {
          json_decref(nm);
          json_decref(base);
          cll__oai_error(req, 400, "invalid image input");
          return false;
        }
        json_object_set_new(nm, "content", json_string(""));
        json_object_set_new(nm, "images", json_pack("[s]", data));
      } else if (strcmp(type, "input_audio") == 0) {
        const char *data =
            json_string_value(json_object_get(json_object_get(part, "input_audio"), "data"));
        json_object_set_new(nm, "content", json_string(""));
        if (data)
          json_object_set_new(nm, "images", json_pack("[s]", data));
      } else {
        json_decref(nm);
        json_decref(base);
        cll__oai_error(req, 400, "invalid message format");
        return false;
      }
      json_array_append_new(out, nm);
    }
    json_decref(base);
  }
  return true;
}

/* response_format -> the native format: json_object is "json", json_schema
 * its schema (strict or not, the grammar enforces it exactly; no schema is
 * any JSON object), text is none. Anything else answers 400. */
static bool map_response_format(cll_request *req, json_t *b, json_t *native) {
  json_t *rf = json_object_get(b, "response_format");
  if (!rf || json_is_null(rf))
    return true;
  const char *rft = json_string_value(json_object_get(rf, "type"));
  if (!json_is_object(rf) || !rft) {
    cll__oai_error(req, 400, "response_format must be an object with a type");
    return false;
  }
  if (strcmp(rft, "text") == 0)
    return true;
  if (strcmp(rft, "json_object") == 0) {
    json_object_set_new(native, "format", json_string("json"));
    return true;
  }
  if (strcmp(rft, "json_schema") == 0) {
    json_t *js = json_object_get(rf, "json_schema");
    json_t *schema = json_object_get(js, "schema");
    if (js && !json_is_object(js)) {
      cll__oai_error(req, 400, "response_format.json_schema must be an object");
      return false;
    }
    if (schema)
      json_object_set(native, "format", schema);
    else
      json_object_set_new(native, "format", json_string("json"));
    return true;
  }
  cll__oai_errorf(req, 400,
                  "Invalid value for 'response_format.type' = %.200s. Supported values: ['text', "
                  "'json_object', 'json_schema'].",
                  rft);
  return false;
}

/* How the chat and completion endpoints start: the body (*body, new), its
 * fields of the right types (fields ends with a NULL key), then the
 * answer's state (new) for the request's model (*model, borrowed from the
 * body) with the stream fields read. NULL when it has answered (nothing to
 * free then). st names the Go struct in type errors. */
static struct oai *begin(cll_request *req, const char *st, const struct cll__oai_field *fields,
                         int kind, json_t **body, const char **model) {
  json_t *b = cll__oai_body_object(req, st);
  if (!b)
    return NULL;
  struct oai *o = NULL;
  if (!cll__oai_check_fields(req, b, st, fields))
    goto fail;
  *model = json_string_value(json_object_get(b, "model"));
  o = cll__oai_new(kind, *model);
  if (!o) {
    cll__oai_error(req, 500, "out of memory");
    goto fail;
  }
  if (!stream_fields(req, b, st, o))
    goto fail;
  *body = b;
  return o;
fail:
  cll__oai_free(o);
  json_decref(b);
  return NULL;
}

static void on_chat_completions(cll_request *req, void *ud) {
  static const struct cll__oai_field fields[] = {{"model", 's', "string"},
                                                 {"messages", 'a', "[]openai.Message"},
                                                 {"response_format", 'o', "openai.ResponseFormat"},
                                                 {"tools", 'a', "[]api.Tool"},
                                                 {NULL, 0, NULL}};
  const char *st = "ChatCompletionRequest";
  json_t *b, *native = NULL, *opts = NULL;
  const char *model;
  struct oai *o = begin(req, st, fields, K_CHAT, &b, &model);
  if (!o)
    return;
  json_t *msgs = json_object_get(b, "messages");
  if (json_array_size(msgs) == 0) {
    cll__oai_error(req, 400, "[] is too short - 'messages'");
    goto done;
  }
  native =
      json_pack("{s:s,s:[],s:b}", "model", model ? model : "", "messages", "stream", o->stream);
  if (!map_messages(req, msgs, json_object_get(native, "messages")))
    goto done;
  if (!(opts = cll__oai_map_options(req, b, st, true)))
    goto done;
  json_object_set_new(native, "options", opts);
  opts = NULL;
  if (!map_response_format(req, b, native))
    goto done;
  json_t *tools = json_object_get(b, "tools");
  if (json_is_array(tools) && json_array_size(tools))
    json_object_set(native, "tools", tools);
  json_t *tc = json_object_get(b, "tool_choice");
  if (tc && !json_is_null(tc))
    json_object_set(native, "tool_choice", tc);
  if (!cll__oai_map_think(req, b, native))
    goto done;
  json_t *lp = json_object_get(b, "logprobs");
  if (json_is_boolean(lp))
    json_object_set(native, "logprobs", lp);
  json_t *tlp = json_object_get(b, "top_logprobs");
  if (json_is_integer(tlp))
    json_object_set(native, "top_logprobs", tlp);
  json_decref(b);
  forward_gen(req, "/api/chat", native, o);
  return;
done:
  json_decref(b);
  json_decref(native);
  json_decref(opts);
  cll__oai_free(o);
}

/* ---------------------------------------------------------------- completions */

static void on_completions(cll_request *req, void *ud) {
  static const struct cll__oai_field fields[] = {{"model", 's', "string"},
                                                 {"prompt", 's', "string"},
                                                 {"suffix", 's', "string"},
                                                 {NULL, 0, NULL}};
  const char *st = "CompletionRequest";
  json_t *b, *native = NULL, *opts = NULL;
  const char *model;
  struct oai *o = begin(req, st, fields, K_COMPLETION, &b, &model);
  if (!o)
    return;
  if (!(opts = cll__oai_map_options(req, b, st, false)))
    goto done;
  const char *prompt = json_string_value(json_object_get(b, "prompt"));
  const char *suffix = json_string_value(json_object_get(b, "suffix"));
  native = json_pack("{s:s,s:s,s:b,s:o}", "model", model ? model : "", "prompt",
                     prompt ? prompt : "", "stream", o->stream, "options", opts);
  opts = NULL;
  if (suffix)
    json_object_set_new(native, "suffix", json_string(suffix));
  if (!map_response_format(req, b, native))
    goto done;
  json_t *lp = json_object_get(b, "logprobs");
  if (json_is_integer(lp) && json_integer_value(lp) > 0) {
    json_object_set_new(native, "logprobs", json_true());
    json_object_set(native, "top_logprobs", lp);
  }
  json_decref(b);
  forward_gen(req, "/api/generate", native, o);
  return;
done:
  json_decref(b);
  json_decref(native);
  json_decref(opts);
  cll__oai_free(o);
}

int cll_api_openai_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"POST", "/v1/chat/completions", on_chat_completions, false},
      {"POST", "/v1/completions", on_completions, false},
      {"POST", "/v1/embeddings", cll__oai_on_embeddings, false},
      {"GET", "/v1/models", cll__oai_on_list, false},
      {"GET", "/v1/models/:model", cll__oai_on_retrieve, false},
      {"POST", "/v1/responses", cll__on_responses, false},
  };
  return CLL_API_ROUTES(api, routes);
}
