/* anthropic.c — the Anthropic Messages API on POST /v1/messages (what
 * Claude Code and the Anthropic SDKs speak), as Ollama's anthropic
 * middleware does it: a translation layer over the native /api/chat.
 *
 * DESIGN. The same shape as openai.c: check the request, build the native
 * chat request (system prompt first, each message's content blocks turned
 * into native messages, max_tokens -> num_predict, stop_sequences -> stop,
 * thinking {type: enabled} -> think where the model can think, dropped
 * quietly where it cannot, as Ollama's anthropic route does), run it with
 * cll_request_forward(), and turn the native answer into one "message"
 * object or the SSE events message_start, content_block_start/delta/stop,
 * message_delta and message_stop (`event: <type>\ndata: <json>\n\n`). Errors
 * become {"type":"error","error":{"type":T,"message":M},"request_id":...}
 * with the native status. Per-request state is freed by the filter's
 * terminal callback, which the native handler always reaches once.
 *
 * Threads: loop thread only. Nothing blocks. */
#include "cllama/api.h"
#include "gen_core.h"
#include "openai.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct anth {
  bool stream;
  char id[40];              /* "msg_" + 24 hex digits */
  char *model;              /* as the client named it */
  int64_t est_input_tokens; /* message_start's guess before the real count */
  bool msg_started, done;
  char open_type[16];    /* the open content block ("thinking", "text"), or "" */
  struct cll__sink sink; /* where the native generation sends its events */
  int index;             /* current content block */
  size_t n_tools;        /* tool_use blocks sent or gathered */
  char done_reason[32];
  int64_t input_tokens, output_tokens;
};

static void anth_free(struct anth *a) {
  if (!a)
    return;
  free(a->model);
  free(a);
}

/* ---------------------------------------------------------------- errors */

static json_t *error_object(int status, const char *msg) {
  const char *type = status == 400                    ? "invalid_request_error"
                     : status == 401                  ? "authentication_error"
                     : status == 403                  ? "permission_error"
                     : status == 404                  ? "not_found_error"
                     : status == 429                  ? "rate_limit_error"
                     : status == 503 || status == 529 ? "overloaded_error"
                                                      : "api_error";
  char rid[40] = "req_";
  cll__random_hex(rid + 4, 12);
  return json_pack("{s:s,s:{s:s,s:s},s:s}", "type", "error", "error", "type", type, "message",
                   msg ? msg : "", "request_id", rid);
}

/* Answers with v (stolen) as application/json and a trailing newline. */
static void respond_json(cll_request *req, int status, json_t *v) {
  cll__respond_json_nl(req, status, v,
                       "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":"
                       "\"out of memory\"}}\n");
}

static void anth_error(cll_request *req, int status, const char *msg) {
  respond_json(req, status, error_object(status, msg));
}

static const char *json_kind(const json_t *v) {
  return json_is_string(v)    ? "string"
         : json_is_number(v)  ? "number"
         : json_is_boolean(v) ? "bool"
         : json_is_array(v)   ? "array"
                              : "object";
}

/* ---------------------------------------------------------------- request */

/* Length of the text a value holds, for the input token estimate (Ollama
 * guesses len/4 until the real count arrives with the last object). */
static size_t text_len(json_t *v) {
  if (json_is_string(v))
    return json_string_length(v);
  size_t n = 0, i;
  json_t *x;
  if (json_is_array(v)) {
    json_array_foreach(v, i, x) {
      const char *type = json_string_value(json_object_get(x, "type"));
      if (type && (!strcmp(type, "tool_use") || !strcmp(type, "tool_result"))) {
        char *s = json_dumps(x, JSON_COMPACT);
        n += s ? strlen(s) : 0;
        free(s);
      } else {
        n += json_string_length(json_object_get(x, "text")) +
             json_string_length(json_object_get(x, "thinking"));
      }
    }
  }
  return n;
}

static bool is_type(json_t *block, const char *type) {
  const char *t = json_string_value(json_object_get(block, "type"));
  return t && strcmp(t, type) == 0;
}

/* Appends the text of every {"type":"text"} block of an array (a system
 * prompt's or a tool_result's content); anything else adds nothing. */
static void append_text_blocks(cll_buf *out, json_t *blocks) {
  size_t i;
  json_t *b;
  json_array_foreach(blocks, i, b) {
    const char *t = json_string_value(json_object_get(b, "text"));
    if (t && is_type(b, "text"))
      cll_buf_puts(out, t);
  }
}

/* A tool_result's content: a string, or text blocks joined. New string
 * (NULL when out of memory). */
static char *tool_result_text(json_t *c) {
  if (json_is_string(c))
    return strdup(json_string_value(c));
  cll_buf out = {0};
  append_text_blocks(&out, c);
  return cll_buf_steal(&out);
}

/* One Anthropic message -> native messages appended to out. Answers 400
 * and returns false on a malformed block. */
static bool convert_message(cll_request *req, json_t *m, json_t *out) {
  const char *r = json_string_value(json_object_get(m, "role"));
  char role[32];
  snprintf(role, sizeof(role), "%s", r ? r : "");
  for (char *c = role; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  json_t *content = json_object_get(m, "content");
  if (json_is_string(content)) {
    json_array_append_new(out, json_pack("{s:s,s:O}", "role", role, "content", content));
    return true;
  }
  if (!json_is_array(content)) {
    char msg[200];
    snprintf(msg, sizeof(msg),
             "json: cannot unmarshal %s into Go value of type "
             "[]anthropic.ContentBlock",
             content ? json_kind(content) : "null");
    anth_error(req, 400, msg);
    return false;
  }
  cll_buf text = {0};
  const char *thinking = NULL;
  json_t *images = json_array(), *tool_calls = json_array(), *results = json_array();
  bool ok = true;
  size_t i;
  json_t *b;
  json_array_foreach(content, i, b) {
    const char *type = json_string_value(json_object_get(b, "type"));
    if (!type)
      continue;
    if (!strcmp(type, "text")) {
      const char *t = json_string_value(json_object_get(b, "text"));
      if (t)
        cll_buf_puts(&text, t);
    } else if (!strcmp(type, "image")) {
      json_t *src = json_object_get(b, "source");
      const char *st = json_string_value(json_object_get(src, "type"));
      if (!src) {
        anth_error(req, 400, "invalid image source");
        ok = false;
        break;
      }
      if (!st || strcmp(st, "base64") != 0) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "invalid image source type: %s. Only base64 images are "
                 "supported.",
                 st ? st : "");
        anth_error(req, 400, msg);
        ok = false;
        break;
      }
      const char *data = json_string_value(json_object_get(src, "data"));
      json_array_append_new(images, json_string(data ? data : ""));
    } else if (!strcmp(type, "tool_use") || !strcmp(type, "server_tool_use")) {
      const char *id = json_string_value(json_object_get(b, "id"));
      const char *name = json_string_value(json_object_get(b, "name"));
      if (!strcmp(type, "tool_use") && (!id || !*id)) {
        anth_error(req, 400, "tool_use block missing required 'id' field");
        ok = false;
        break;
      }
      if (!strcmp(type, "tool_use") && (!name || !*name)) {
        anth_error(req, 400, "tool_use block missing required 'name' field");
        ok = false;
        break;
      }
      json_t *input = json_object_get(b, "input");
      json_array_append_new(tool_calls,
                            json_pack("{s:s,s:{s:i,s:s,s:o}}", "id", id ? id : "", "function",
                                      "index", (int)json_array_size(tool_calls), "name",
                                      name ? name : "", "arguments",
                                      json_is_object(input) ? json_incref(input) : json_object()));
    } else if (!strcmp(type, "tool_result") || !strcmp(type, "web_search_tool_result")) {
      char *rt = tool_result_text(json_object_get(b, "content"));
      const char *tid = json_string_value(json_object_get(b, "tool_use_id"));
      json_array_append_new(results, json_pack("{s:s,s:s,s:s}", "role", "tool", "content",
                                               rt ? rt : "", "tool_call_id", tid ? tid : ""));
      free(rt);
    } else if (!strcmp(type, "thinking")) {
      thinking = json_string_value(json_object_get(b, "thinking"));
    }
  }
  if (ok) {
    bool user = !strcmp(role, "user");
    if (user)
      json_array_extend(out, results);
    if (text.len || json_array_size(images) || json_array_size(tool_calls) ||
        (thinking && *thinking)) {
      json_t *nm = json_pack("{s:s,s:s}", "role", role, "content", text.data ? text.data : "");
      if (json_array_size(images))
        json_object_set(nm, "images", images);
      if (json_array_size(tool_calls))
        json_object_set(nm, "tool_calls", tool_calls);
      if (thinking && *thinking)
        json_object_set_new(nm, "thinking", json_string(thinking));
      json_array_append_new(out, nm);
    }
    if (!user)
      json_array_extend(out, results);
  }
  cll_buf_free(&text);
  json_decref(images);
  json_decref(tool_calls);
  json_decref(results);
  return ok;
}

/* ---------------------------------------------------------------- output */

static void sse_event(cll_request *req, struct anth *a, const char *type, json_t *data) {
  char *text = json_dumps(data, JSON_COMPACT);
  json_decref(data);
  if (!text)
    return;
  size_t tl = strlen(type), dl = strlen(text);
  char *ev = malloc(tl + dl + 20);
  if (ev) {
    int n = snprintf(ev, tl + dl + 20, "event: %s\ndata: %s\n\n", type, text);
    cll_stream_write(req, ev, (size_t)n);
    free(ev);
  }
  free(text);
}

static void block_stop(cll_request *req, struct anth *a) {
  sse_event(req, a, "content_block_stop",
            json_pack("{s:s,s:i}", "type", "content_block_stop", "index", a->index));
}

static const char *stop_reason(const char *done_reason, bool tools) {
  if (tools)
    return "tool_use";
  if (!strcmp(done_reason, "stop"))
    return "end_turn";
  if (!strcmp(done_reason, "length"))
    return "max_tokens";
  return *done_reason ? "stop_sequence" : NULL;
}

/* A native tool call as a tool_use block (input the arguments object). */
static json_t *tool_use_block(json_t *tc, bool empty_input) {
  json_t *fn = json_object_get(tc, "function");
  const char *id = json_string_value(json_object_get(tc, "id"));
  const char *name = json_string_value(json_object_get(fn, "name"));
  json_t *args = json_object_get(fn, "arguments");
  return json_pack("{s:s,s:s,s:s,s:o}", "type", "tool_use", "id", id ? id : "", "name",
                   name ? name : "", "input",
                   empty_input || !json_is_object(args) ? json_object() : json_incref(args));
}

static void message_start(cll_request *req, struct anth *a, cll__gen *g) {
  if (a->msg_started)
    return;
  a->msg_started = true;
  g->stream_started = true;
  cll_stream_start(req, 200, "text/event-stream");
  sse_event(req, a, "message_start",
            json_pack("{s:s,s:{s:s,s:s,s:s,s:s,s:[],s:{s:I,s:i}}}", "type", "message_start",
                      "message", "id", a->id, "type", "message", "role", "assistant", "model",
                      a->model, "content", "usage", "input_tokens",
                      (json_int_t)(g->n_prompt ? g->n_prompt : a->est_input_tokens),
                      "output_tokens", 0));
}

/* Opens a block of this type ("thinking", "text") unless it is open. */
static void block_open(cll_request *req, struct anth *a, const char *type) {
  if (a->open_type[0] && strcmp(a->open_type, type) == 0)
    return;
  if (a->open_type[0]) {
    block_stop(req, a);
    a->index++;
  }
  snprintf(a->open_type, sizeof(a->open_type), "%s", type);
  sse_event(req, a, "content_block_start",
            json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_start", "index", a->index,
                      "content_block", "type", type, type, ""));
}

static void block_close(cll_request *req, struct anth *a) {
  if (!a->open_type[0])
    return;
  block_stop(req, a);
  a->index++;
  a->open_type[0] = 0;
}

/* The whole message (non-stream) from what the generation gathered. */
static void answer_whole(cll_request *req, struct anth *a, const cll__gen *g) {
  json_t *content = json_array();
  if (g && g->thinking.len)
    json_array_append_new(content,
                          json_pack("{s:s,s:s}", "type", "thinking", "thinking", g->thinking.data));
  if (g && g->text.len)
    json_array_append_new(content, json_pack("{s:s,s:s}", "type", "text", "text", g->text.data));
  size_t i;
  json_t *tc;
  if (g)
    json_array_foreach(g->calls, i, tc) json_array_append_new(content, tool_use_block(tc, false));
  json_t *msg = json_pack("{s:s,s:s,s:s,s:s,s:o}", "id", a->id, "type", "message", "role",
                          "assistant", "model", a->model, "content", content);
  const char *sr = stop_reason(a->done_reason, g && json_array_size(g->calls) > 0);
  if (sr)
    json_object_set_new(msg, "stop_reason", json_string(sr));
  json_object_set_new(msg, "usage",
                      json_pack("{s:I,s:I}", "input_tokens", (json_int_t)a->input_tokens,
                                "output_tokens", (json_int_t)a->output_tokens));
  a->sink.answering = true;
  respond_json(req, 200, msg); /* the filter passes it on and frees a */
}

/* The Anthropic writer: generation events as message_start,
 * content_block_start/delta/stop (thinking, text, tool_use), message_delta
 * and message_stop, or one message at the end. */
static void anth_event(cll__gen *g, void *state, const struct cll__ev *ev) {
  struct anth *a = state;
  cll_request *req = g->req;
  switch (ev->kind) {
  case CLL__EV_TEXT:
  case CLL__EV_THINKING:
    if (!a->stream)
      return;
    message_start(req, a, g);
    if (ev->kind == CLL__EV_THINKING) {
      block_open(req, a, "thinking");
      sse_event(req, a, "content_block_delta",
                json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index",
                          a->index, "delta", "type", "thinking_delta", "thinking", ev->s, ev->n));
    } else {
      block_open(req, a, "text");
      sse_event(req, a, "content_block_delta",
                json_pack("{s:s,s:i,s:{s:s,s:s%}}", "type", "content_block_delta", "index",
                          a->index, "delta", "type", "text_delta", "text", ev->s, ev->n));
    }
    return;
  case CLL__EV_TOOL_CALL: {
    a->n_tools++;
    if (!a->stream)
      return;
    message_start(req, a, g);
    block_close(req, a);
    json_t *args = json_object_get(json_object_get(ev->call, "function"), "arguments");
    char *aj = json_is_object(args) ? json_dumps(args, JSON_COMPACT) : strdup("{}");
    sse_event(req, a, "content_block_start",
              json_pack("{s:s,s:i,s:o}", "type", "content_block_start", "index", a->index,
                        "content_block", tool_use_block(ev->call, true)));
    sse_event(req, a, "content_block_delta",
              json_pack("{s:s,s:i,s:{s:s,s:s}}", "type", "content_block_delta", "index", a->index,
                        "delta", "type", "input_json_delta", "partial_json", aj ? aj : "{}"));
    free(aj);
    block_stop(req, a);
    a->index++;
    return;
  }
  case CLL__EV_DONE: {
    a->done = true;
    snprintf(a->done_reason, sizeof(a->done_reason), "%s", ev->done_reason);
    if (ev->stats) {
      a->input_tokens = ev->stats->prompt_n;
      a->output_tokens = ev->stats->eval_n;
    }
    if (!a->stream) {
      answer_whole(req, a, g);
      return;
    }
    message_start(req, a, g);
    block_close(req, a);
    json_t *delta = json_object();
    const char *sr = stop_reason(a->done_reason, a->n_tools > 0);
    if (sr)
      json_object_set_new(delta, "stop_reason", json_string(sr));
    sse_event(req, a, "message_delta",
              json_pack("{s:s,s:o,s:{s:I,s:I}}", "type", "message_delta", "delta", delta, "usage",
                        "input_tokens", (json_int_t)a->input_tokens, "output_tokens",
                        (json_int_t)a->output_tokens));
    sse_event(req, a, "message_stop", json_pack("{s:s}", "type", "message_stop"));
    a->sink.answering = true;
    cll_stream_end(req); /* the filter frees a */
    return;
  }
  case CLL__EV_ERROR: {
    json_t *e = error_object(500, ev->s);
    json_object_del(e, "request_id");
    sse_event(req, a, "error", e);
    a->sink.answering = true;
    cll_stream_end(req);
    return;
  }
  }
}

static const struct cll__writer anth_writer = {anth_event};

/* A native answer before any generation: an error, or an empty answer. */
static void native_answer(cll_request *req, int status, const void *body, size_t len, void *ud) {
  if (status == 200) {
    answer_whole(req, ud, NULL);
    return;
  }
  json_t *v = json_loadb(body, len, 0, NULL);
  const char *msg = json_string_value(json_object_get(v, "error"));
  char *raw = msg ? NULL : strndup(body ? body : "", len);
  anth_error(req, status, msg ? msg : raw);
  free(raw);
  json_decref(v);
}

static void free_state(void *ud) {
  anth_free(ud);
}

/* ---------------------------------------------------------------- handler */

static bool check(cll_request *req, json_t *b, const char *key, char t, const char *gotype) {
  json_t *v = json_object_get(b, key);
  if (!v || json_is_null(v))
    return true;
  bool ok = t == 's'   ? json_is_string(v)
            : t == 'i' ? json_is_integer(v)
            : t == 'n' ? json_is_number(v)
            : t == 'b' ? json_is_boolean(v)
                       : json_is_array(v);
  if (!ok) {
    char msg[300];
    snprintf(msg, sizeof(msg),
             "json: cannot unmarshal %s into Go struct field "
             "MessagesRequest.%s of type %s",
             json_kind(v), key, gotype);
    anth_error(req, 400, msg);
  }
  return ok;
}

static void on_messages(cll_request *req, void *ud) {
  size_t len;
  const char *body = cll_request_body(req, &len);
  size_t sp = 0;
  while (sp < len && isspace((unsigned char)body[sp]))
    sp++;
  if (sp == len) {
    anth_error(req, 400, "EOF");
    return;
  }
  json_error_t jerr;
  json_t *b = json_loadb(body, len, 0, &jerr);
  if (!b || !json_is_object(b)) {
    anth_error(req, 400,
               b ? "json: cannot unmarshal into Go value of type "
                   "anthropic.MessagesRequest"
                 : jerr.text);
    json_decref(b);
    return;
  }
  json_t *native = NULL;
  struct anth *a = NULL;
  if (!check(req, b, "model", 's', "string") || !check(req, b, "max_tokens", 'i', "int") ||
      !check(req, b, "messages", 'a', "[]anthropic.MessageParam") ||
      !check(req, b, "stream", 'b', "bool") || !check(req, b, "temperature", 'n', "float64") ||
      !check(req, b, "top_p", 'n', "float64") || !check(req, b, "top_k", 'i', "int") ||
      !check(req, b, "stop_sequences", 'a', "[]string") ||
      !check(req, b, "tools", 'a', "[]anthropic.Tool"))
    goto done;
  const char *model = json_string_value(json_object_get(b, "model"));
  json_int_t max_tokens = json_integer_value(json_object_get(b, "max_tokens"));
  json_t *msgs = json_object_get(b, "messages");
  if (!model || !*model) {
    anth_error(req, 400, "model is required");
    goto done;
  }
  if (max_tokens <= 0) {
    anth_error(req, 400, "max_tokens is required and must be positive");
    goto done;
  }
  if (json_array_size(msgs) == 0) {
    anth_error(req, 400, "messages is required");
    goto done;
  }
  a = calloc(1, sizeof(*a));
  if (!a || !(a->model = strdup(model))) {
    anth_error(req, 500, "out of memory");
    goto done;
  }
  memcpy(a->id, "msg_", 4);
  cll__random_hex(a->id + 4, 12);
  a->stream = json_is_true(json_object_get(b, "stream"));

  native = json_pack("{s:s,s:[],s:b}", "model", model, "messages", "stream", a->stream);
  json_t *out = json_object_get(native, "messages");
  size_t est = 0;
  /* The system prompt: a string or text blocks. */
  json_t *sys = json_object_get(b, "system");
  if (json_is_string(sys) && json_string_length(sys)) {
    json_array_append_new(out, json_pack("{s:s,s:O}", "role", "system", "content", sys));
  } else if (json_is_array(sys)) {
    cll_buf s = {0};
    append_text_blocks(&s, sys);
    if (s.len)
      json_array_append_new(out, json_pack("{s:s,s:s}", "role", "system", "content", s.data));
    cll_buf_free(&s);
  }
  est += text_len(sys);
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    if (!json_is_object(m)) {
      anth_error(req, 400,
                 "json: cannot unmarshal into Go struct field MessagesRequest.messages "
                 "of type anthropic.MessageParam");
      goto done;
    }
    if (!convert_message(req, m, out))
      goto done;
    est += json_string_length(json_object_get(m, "role")) + text_len(json_object_get(m, "content"));
  }
  json_t *opts = json_pack("{s:I}", "num_predict", max_tokens);
  json_t *v;
  if ((v = json_object_get(b, "temperature")) && json_is_number(v))
    json_object_set_new(opts, "temperature", json_real(json_number_value(v)));
  if ((v = json_object_get(b, "top_p")) && json_is_number(v))
    json_object_set_new(opts, "top_p", json_real(json_number_value(v)));
  if ((v = json_object_get(b, "top_k")) && json_is_integer(v))
    json_object_set(opts, "top_k", v);
  if ((v = json_object_get(b, "stop_sequences")) && json_array_size(v))
    json_object_set(opts, "stop", v);
  json_object_set_new(native, "options", opts);
  /* Structured outputs: output_format {"type":"json_schema","schema":{...}}
   * is the native format (enforced by the grammar). */
  json_t *of = json_object_get(b, "output_format");
  if (of && !json_is_null(of)) {
    const char *oft = json_string_value(json_object_get(of, "type"));
    json_t *ofs = json_object_get(of, "schema");
    if (!oft || strcmp(oft, "json_schema") != 0 || !json_is_object(ofs)) {
      anth_error(req, 400, "output_format: type must be \"json_schema\" with a schema object");
      goto done;
    }
    json_object_set(native, "format", ofs);
  }
  /* Tools: name, description, input_schema -> native function tools. */
  json_t *tools = json_object_get(b, "tools");
  if (json_array_size(tools)) {
    json_t *nt = json_array();
    json_t *t;
    json_array_foreach(tools, i, t) {
      const char *name = json_string_value(json_object_get(t, "name"));
      const char *desc = json_string_value(json_object_get(t, "description"));
      json_t *schema = json_object_get(t, "input_schema");
      json_array_append_new(nt,
                            json_pack("{s:s,s:{s:s,s:s,s:o}}", "type", "function", "function",
                                      "name", name ? name : "", "description", desc ? desc : "",
                                      "parameters", schema ? json_incref(schema) : json_object()));
      est += (name ? strlen(name) : 0) + (desc ? strlen(desc) : 0);
    }
    json_object_set_new(native, "tools", nt);
  }
  /* thinking: enabled -> think (quietly none for a model that cannot). */
  json_t *th = json_object_get(b, "thinking");
  const char *tht = json_string_value(json_object_get(th, "type"));
  if (tht && !strcmp(tht, "enabled"))
    json_object_set_new(native, "_think_if_capable", json_true());
  else if (tht && !strcmp(tht, "disabled"))
    json_object_set_new(native, "think", json_false());
  /* tool_choice: auto, any (some call), tool (that one), none. */
  json_t *tc = json_object_get(b, "tool_choice");
  if (json_is_object(tc)) {
    const char *type = json_string_value(json_object_get(tc, "type"));
    const char *name = json_string_value(json_object_get(tc, "name"));
    if (type && strcmp(type, "any") == 0) {
      json_object_set_new(native, "tool_choice", json_string("required"));
    } else if (type && strcmp(type, "tool") == 0 && name) {
      json_object_set_new(native, "tool_choice",
                          json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
    } else if (type && strcmp(type, "none") == 0) {
      json_object_set_new(native, "tool_choice", json_string("none"));
    } else if (!type || strcmp(type, "auto") != 0) {
      anth_error(req, 400,
                 "tool_choice.type must be one of \"auto\", \"any\", \"tool\" "
                 "(with a name) or \"none\"");
      goto done;
    }
  } else if (tc && !json_is_null(tc)) {
    anth_error(req, 400, "tool_choice must be an object");
    goto done;
  }
  a->est_input_tokens = (int64_t)(est / 4);
  if (a->est_input_tokens == 0)
    a->est_input_tokens = 1;
  json_decref(b);
  char *text = json_dumps(native, JSON_COMPACT);
  json_decref(native);
  a->sink = (struct cll__sink){
      .w = &anth_writer, .state = a, .native_answer = native_answer, .free_state = free_state};
  int rc = cll__gen_forward(req, "/api/chat", text, &a->sink);
  free(text);
  if (rc != 0) {
    anth_free(a);
    anth_error(req, 500, cll_strerror(rc));
  }
  return;
done:
  json_decref(b);
  json_decref(native);
  anth_free(a);
}

int cll_api_anthropic_register(cll_api *api) {
  return cll_server_route(api->server, "POST", "/v1/messages", on_messages, api);
}
