/* responses.c — POST /v1/responses, OpenAI's Responses API (what newer
 * OpenAI clients and coding agents call), over the native /api/chat like
 * the other /v1 endpoints.
 *
 * DESIGN. The request's instructions and input (a string, or items: role
 * messages with input_text/output_text parts, function_call and
 * function_call_output) become native messages; tools ({type:"function",
 * name, description, parameters}), tool_choice, text.format (json_object,
 * json_schema) and reasoning.effort map onto the native fields, so prompt
 * rendering, tool-call parsing, grammars and thinking are the native
 * path's. The answer is written from the typed generation events: one
 * "response" object, or the SSE events response.created/in_progress,
 * output_item.added/done, content_part.added/done, output_text.delta/done,
 * reasoning_text.delta/done, function_call_arguments.delta/done and
 * response.completed (each `event: <type>\ndata: <json>\n\n`, numbered by
 * sequence_number). Stateless, as Ollama's: previous_response_id is a 400
 * saying responses are not stored.
 *
 * Threads: loop thread only. Nothing blocks. */
#include "gen_core.h"
#include "openai.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct resp {
  bool stream;
  char id[40];     /* resp_<hex> */
  char msg_id[40]; /* msg_<hex>: the message item */
  char rs_id[40];  /* rs_<hex>: the reasoning item */
  char *model;
  int64_t created;
  json_t *req_echo; /* fields echoed in the response object (tools, text, ...) */
  int64_t seq;      /* sequence_number of the next event */
  bool started;
  int open;      /* the item being streamed: 0 none, 1 reasoning, 2 message */
  int out_index; /* output_index of the next item */
  int64_t in_tokens, out_tokens;
  struct cll__sink sink; /* where the native generation sends its events */
};

static void resp_free(struct resp *r) {
  if (!r)
    return;
  free(r->model);
  json_decref(r->req_echo);
  free(r);
}

/* -------------------------------------------------------------- output */

static void sse(cll_request *req, struct resp *r, const char *type, json_t *data) {
  json_object_set_new(data, "type", json_string(type));
  json_object_set_new(data, "sequence_number", json_integer(r->seq++));
  char *text = json_dumps(data, JSON_COMPACT);
  json_decref(data);
  if (!text)
    return;
  cll_buf b = {0};
  cll_buf_printf(&b, "event: %s\ndata: %s\n\n", type, text);
  if (!b.err)
    cll_stream_write(req, b.data, b.len);
  cll_buf_free(&b);
  free(text);
}

static json_t *message_item(const struct resp *r, const char *text, const char *status) {
  return json_pack("{s:s,s:s,s:s,s:s,s:[{s:s,s:s,s:[]}]}", "type", "message", "id", r->msg_id,
                   "status", status, "role", "assistant", "content", "type", "output_text", "text",
                   text, "annotations");
}

static json_t *reasoning_item(const struct resp *r, const char *text) {
  return json_pack("{s:s,s:s,s:[],s:[{s:s,s:s}]}", "type", "reasoning", "id", r->rs_id, "summary",
                   "content", "type", "reasoning_text", "text", text);
}

/* A native tool call as a function_call item (arguments a JSON string). */
static json_t *call_item(const json_t *call, const char *status) {
  const json_t *fn = json_object_get(call, "function");
  const char *cid = json_string_value(json_object_get(call, "id"));
  char *args = json_dumps(json_object_get(fn, "arguments"), JSON_COMPACT | JSON_ENCODE_ANY);
  char id[48];
  snprintf(id, sizeof(id), "fc_%s", cid && strlen(cid) > 5 ? cid + 5 : "0");
  json_t *it = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type", "function_call", "id", id, "call_id",
                         cid ? cid : "", "name", json_string_value(json_object_get(fn, "name")),
                         "arguments", args ? args : "{}", "status", status);
  free(args);
  return it;
}

/* The response object; with g the output gathered by the generation. */
static json_t *response_object(const struct resp *r, const cll__gen *g, const char *status) {
  json_t *out = json_array();
  if (g && g->thinking.len)
    json_array_append_new(out, reasoning_item(r, g->thinking.data));
  if (g && (g->text.len || json_array_size(g->calls) == 0))
    json_array_append_new(out, message_item(r, g->text.data ? g->text.data : "", "completed"));
  size_t i;
  json_t *c;
  if (g)
    json_array_foreach(g->calls, i, c) json_array_append_new(out, call_item(c, "completed"));
  json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:o,s:n,s:n,s:b}", "id", r->id, "object", "response",
                        "created_at", (json_int_t)r->created, "status", status, "model", r->model,
                        "output", out, "error", "incomplete_details", "parallel_tool_calls", 1);
  json_object_update(o, r->req_echo);
  if (strcmp(status, "completed") == 0)
    json_object_set_new(o, "usage",
                        json_pack("{s:I,s:I,s:I}", "input_tokens", (json_int_t)r->in_tokens,
                                  "output_tokens", (json_int_t)r->out_tokens, "total_tokens",
                                  (json_int_t)(r->in_tokens + r->out_tokens)));
  return o;
}

static void start(cll_request *req, struct resp *r, cll__gen *g) {
  if (r->started)
    return;
  r->started = true;
  g->stream_started = true;
  cll_stream_start(req, 200, "text/event-stream");
  sse(req, r, "response.created",
      json_pack("{s:o}", "response", response_object(r, NULL, "in_progress")));
  sse(req, r, "response.in_progress",
      json_pack("{s:o}", "response", response_object(r, NULL, "in_progress")));
}

/* Ends the item being streamed (reasoning or message). */
static void close_item(cll_request *req, struct resp *r, const cll__gen *g) {
  int idx = r->out_index - 1;
  if (r->open == 1) {
    const char *t = g->thinking.data ? g->thinking.data : "";
    sse(req, r, "response.reasoning_text.done",
        json_pack("{s:s,s:i,s:i,s:s}", "item_id", r->rs_id, "output_index", idx, "content_index", 0,
                  "text", t));
    sse(req, r, "response.output_item.done",
        json_pack("{s:i,s:o}", "output_index", idx, "item", reasoning_item(r, t)));
  } else if (r->open == 2) {
    const char *t = g->text.data ? g->text.data : "";
    sse(req, r, "response.output_text.done",
        json_pack("{s:s,s:i,s:i,s:s}", "item_id", r->msg_id, "output_index", idx, "content_index",
                  0, "text", t));
    sse(req, r, "response.content_part.done",
        json_pack("{s:s,s:i,s:i,s:{s:s,s:s,s:[]}}", "item_id", r->msg_id, "output_index", idx,
                  "content_index", 0, "part", "type", "output_text", "text", t, "annotations"));
    sse(req, r, "response.output_item.done",
        json_pack("{s:i,s:o}", "output_index", idx, "item", message_item(r, t, "completed")));
  }
  r->open = 0;
}

static void open_item(cll_request *req, struct resp *r, const cll__gen *g, int kind) {
  if (r->open == kind)
    return;
  close_item(req, r, g);
  r->open = kind;
  int idx = r->out_index++;
  if (kind == 1) {
    sse(req, r, "response.output_item.added",
        json_pack("{s:i,s:{s:s,s:s,s:[]}}", "output_index", idx, "item", "type", "reasoning", "id",
                  r->rs_id, "summary"));
  } else {
    sse(req, r, "response.output_item.added",
        json_pack("{s:i,s:{s:s,s:s,s:s,s:s,s:[]}}", "output_index", idx, "item", "type", "message",
                  "id", r->msg_id, "status", "in_progress", "role", "assistant", "content"));
    sse(req, r, "response.content_part.added",
        json_pack("{s:s,s:i,s:i,s:{s:s,s:s,s:[]}}", "item_id", r->msg_id, "output_index", idx,
                  "content_index", 0, "part", "type", "output_text", "text", "", "annotations"));
  }
}

static void resp_event(cll__gen *g, void *state, const struct cll__ev *ev) {
  struct resp *r = state;
  cll_request *req = g->req;
  switch (ev->kind) {
  case CLL__EV_TEXT:
  case CLL__EV_THINKING:
    if (!r->stream)
      return;
    start(req, r, g);
    open_item(req, r, g, ev->kind == CLL__EV_THINKING ? 1 : 2);
    sse(req, r,
        ev->kind == CLL__EV_THINKING ? "response.reasoning_text.delta"
                                     : "response.output_text.delta",
        json_pack("{s:s,s:i,s:i,s:s%}", "item_id",
                  ev->kind == CLL__EV_THINKING ? r->rs_id : r->msg_id, "output_index",
                  r->out_index - 1, "content_index", 0, "delta", ev->s, ev->n));
    return;
  case CLL__EV_TOOL_CALL: {
    if (!r->stream)
      return;
    start(req, r, g);
    close_item(req, r, g);
    int idx = r->out_index++;
    json_t *added = call_item(ev->call, "in_progress");
    json_t *done = call_item(ev->call, "completed");
    const char *item_id = json_string_value(json_object_get(done, "id"));
    const char *args = json_string_value(json_object_get(done, "arguments"));
    json_object_set_new(added, "arguments", json_string(""));
    sse(req, r, "response.output_item.added",
        json_pack("{s:i,s:o}", "output_index", idx, "item", added));
    sse(req, r, "response.function_call_arguments.delta",
        json_pack("{s:s,s:i,s:s}", "item_id", item_id, "output_index", idx, "delta", args));
    sse(req, r, "response.function_call_arguments.done",
        json_pack("{s:s,s:i,s:s}", "item_id", item_id, "output_index", idx, "arguments", args));
    sse(req, r, "response.output_item.done",
        json_pack("{s:i,s:o}", "output_index", idx, "item", done));
    return;
  }
  case CLL__EV_DONE:
    if (ev->stats) {
      r->in_tokens = ev->stats->prompt_n;
      r->out_tokens = ev->stats->eval_n;
    }
    r->sink.answering = true;
    if (!r->stream) {
      cll__oai_respond_json(req, 200, response_object(r, g, "completed"));
      return; /* the filter passes it on and frees r */
    }
    start(req, r, g);
    if (!g->text.len && !json_array_size(g->calls) && r->open != 2)
      open_item(req, r, g, 2); /* an empty answer is still a message */
    close_item(req, r, g);
    sse(req, r, "response.completed",
        json_pack("{s:o}", "response", response_object(r, g, "completed")));
    cll_stream_end(req);
    return;
  case CLL__EV_ERROR:
    r->sink.answering = true;
    sse(req, r, "error", json_pack("{s:s,s:s}", "code", "server_error", "message", ev->s));
    cll_stream_end(req);
    return;
  }
}

static const struct cll__writer resp_writer = {resp_event};

/* A native answer before any generation: an error. */
static void native_answer(cll_request *req, int status, const void *body, size_t len, void *ud) {
  json_t *v = json_loadb(body, len, 0, NULL);
  const char *msg = json_string_value(json_object_get(v, "error"));
  cll__oai_error(req, status == 200 ? 500 : status, msg ? msg : "no answer");
  json_decref(v);
}

static void free_state(void *ud) {
  resp_free(ud);
}

/* -------------------------------------------------------------- request */

/* The text of a content value: a string, or parts input_text/output_text
 * (text). Images are 400s until a vision model exists. New string or NULL
 * after answering. */
static char *content_text(cll_request *req, json_t *c) {
  if (json_is_string(c))
    return strdup(json_string_value(c));
  if (!json_is_array(c)) {
    cll__oai_error(req, 400, "invalid input: content must be a string or an array of parts");
    return NULL;
  }
  cll_buf b = {0};
  size_t i;
  json_t *p;
  json_array_foreach(c, i, p) {
    const char *type = json_string_value(json_object_get(p, "type"));
    const char *text = json_string_value(json_object_get(p, "text"));
    if (type &&
        (!strcmp(type, "input_text") || !strcmp(type, "output_text") || !strcmp(type, "text")) &&
        text) {
      cll_buf_puts(&b, text);
    } else if (type && !strcmp(type, "input_image")) {
      cll_buf_free(&b);
      cll__oai_error(req, 400, "input_image: this model does not support images");
      return NULL;
    } else {
      cll_buf_free(&b);
      cll__oai_error(req, 400, "invalid input: unsupported content part");
      return NULL;
    }
  }
  char *s = strdup(b.data ? b.data : "");
  cll_buf_free(&b);
  return s;
}

/* input (string or items) -> native messages appended to out. */
static bool map_input(cll_request *req, json_t *input, json_t *out) {
  if (json_is_string(input)) {
    json_array_append_new(out, json_pack("{s:s,s:O}", "role", "user", "content", input));
    return true;
  }
  if (!json_is_array(input)) {
    cll__oai_error(req, 400, "input must be a string or an array of input items");
    return false;
  }
  size_t i;
  json_t *it;
  json_array_foreach(input, i, it) {
    const char *type = json_string_value(json_object_get(it, "type"));
    const char *role = json_string_value(json_object_get(it, "role"));
    if (type && !strcmp(type, "function_call")) {
      const char *args = json_string_value(json_object_get(it, "arguments"));
      json_t *a = args ? json_loads(args, 0, NULL) : json_object();
      if (!json_is_object(a)) {
        json_decref(a);
        cll__oai_error(req, 400, "function_call arguments must be a JSON object");
        return false;
      }
      json_t *call = json_pack("{s:{s:i,s:O,s:o}}", "function", "index", 0, "name",
                               json_object_get(it, "name"), "arguments", a);
      if (json_is_string(json_object_get(it, "call_id")))
        json_object_set(call, "id", json_object_get(it, "call_id"));
      /* Consecutive calls belong to one assistant turn. */
      json_t *last = json_array_get(out, json_array_size(out) - 1);
      if (last && json_object_get(last, "tool_calls") &&
          !strcmp(json_string_value(json_object_get(last, "role")), "assistant"))
        json_array_append_new(json_object_get(last, "tool_calls"), call);
      else
        json_array_append_new(out, json_pack("{s:s,s:s,s:[o]}", "role", "assistant", "content", "",
                                             "tool_calls", call));
      continue;
    }
    if (type && !strcmp(type, "function_call_output")) {
      const char *cid = json_string_value(json_object_get(it, "call_id"));
      char *text = content_text(req, json_object_get(it, "output"));
      if (!text)
        return false;
      json_t *m = json_pack("{s:s,s:s}", "role", "tool", "content", text);
      free(text);
      if (cid) {
        json_object_set_new(m, "tool_call_id", json_string(cid));
        /* The tool's name, from the call with that id. */
        size_t k;
        json_t *prev;
        json_array_foreach(out, k, prev) {
          size_t j;
          json_t *c;
          json_array_foreach(json_object_get(prev, "tool_calls"), j, c) {
            const char *id = json_string_value(json_object_get(c, "id"));
            if (id && !strcmp(id, cid))
              json_object_set(m, "tool_name",
                              json_object_get(json_object_get(c, "function"), "name"));
          }
        }
      }
      json_array_append_new(out, m);
      continue;
    }
    if (type && strcmp(type, "message") != 0) {
      char msg[200];
      snprintf(msg, sizeof(msg), "input item type \"%.100s\" is not supported", type);
      cll__oai_error(req, 400, msg);
      return false;
    }
    if (!role) {
      cll__oai_error(req, 400, "input message needs a role");
      return false;
    }
    char *text = content_text(req, json_object_get(it, "content"));
    if (!text)
      return false;
    json_array_append_new(out,
                          json_pack("{s:s,s:s}", "role",
                                    !strcmp(role, "developer") ? "system" : role, "content", text));
    free(text);
  }
  return true;
}

void cll__on_responses(cll_request *req, void *ud) {
  const char *st = "ResponsesRequest";
  json_t *b = cll__oai_body_object(req, st);
  if (!b)
    return;
  json_t *native = NULL, *opts = NULL;
  struct resp *r = NULL;
  static const struct cll__oai_field fields[] = {{"model", 's', "string"},
                                                 {"instructions", 's', "string"},
                                                 {"stream", 'b', "bool"},
                                                 {"tools", 'a', "[]openai.ResponsesTool"},
                                                 {"text", 'o', "openai.ResponsesText"},
                                                 {"max_output_tokens", 'i', "int"},
                                                 {NULL, 0, NULL}};
  if (!cll__oai_check_fields(req, b, st, fields))
    goto done;
  if (json_is_string(json_object_get(b, "previous_response_id"))) {
    cll__oai_error(req, 400,
                   "previous_response_id is not supported: cllama does not store "
                   "responses; send the whole conversation in input");
    goto done;
  }
  const char *model = json_string_value(json_object_get(b, "model"));
  r = calloc(1, sizeof(*r));
  if (!r || !(r->model = strdup(model ? model : ""))) {
    cll__oai_error(req, 500, "out of memory");
    goto done;
  }
  memcpy(r->id, "resp_", 5);
  cll__random_hex(r->id + 5, 12);
  memcpy(r->msg_id, "msg_", 4);
  cll__random_hex(r->msg_id + 4, 12);
  memcpy(r->rs_id, "rs_", 3);
  cll__random_hex(r->rs_id + 3, 12);
  r->created = (int64_t)time(NULL);
  r->stream = json_is_true(json_object_get(b, "stream"));
  native = json_pack("{s:s,s:[],s:b}", "model", r->model, "messages", "stream", r->stream);
  json_t *msgs = json_object_get(native, "messages");
  const char *instr = json_string_value(json_object_get(b, "instructions"));
  if (instr && *instr)
    json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", instr));
  if (!map_input(req, json_object_get(b, "input"), msgs))
    goto done;
  if (!(opts = cll__oai_map_options(req, b, st, true)))
    goto done;
  json_t *v = json_object_get(b, "max_output_tokens");
  if (json_is_integer(v))
    json_object_set(opts, "num_predict", v);
  json_object_set_new(native, "options", opts);
  opts = NULL;
  /* Tools: flat {type, name, description, parameters} -> native. */
  json_t *tools = json_object_get(b, "tools");
  if (json_array_size(tools)) {
    json_t *nt = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(tools, i, t) {
      const char *type = json_string_value(json_object_get(t, "type"));
      if (!type || strcmp(type, "function") != 0) {
        json_decref(nt);
        char msg[200];
        snprintf(msg, sizeof(msg), "tool type \"%.100s\" is not supported (only \"function\")",
                 type ? type : "");
        cll__oai_error(req, 400, msg);
        goto done;
      }
      json_t *params = json_object_get(t, "parameters");
      json_t *fn = json_pack("{s:O}", "name", json_object_get(t, "name"));
      if (json_is_string(json_object_get(t, "description")))
        json_object_set(fn, "description", json_object_get(t, "description"));
      if (json_is_object(params))
        json_object_set(fn, "parameters", params);
      json_array_append_new(nt, json_pack("{s:s,s:o}", "type", "function", "function", fn));
    }
    json_object_set_new(native, "tools", nt);
  }
  json_t *tc = json_object_get(b, "tool_choice");
  if (json_is_string(tc)) {
    json_object_set(native, "tool_choice", tc);
  } else if (json_is_object(tc)) {
    const char *name = json_string_value(json_object_get(tc, "name"));
    if (!name) {
      cll__oai_error(req, 400, "tool_choice: a function needs a name");
      goto done;
    }
    json_object_set_new(native, "tool_choice",
                        json_pack("{s:s,s:{s:s}}", "type", "function", "function", "name", name));
  }
  /* text.format: text, json_object, json_schema {schema}. */
  json_t *fmt = json_object_get(json_object_get(b, "text"), "format");
  const char *ft = json_string_value(json_object_get(fmt, "type"));
  if (ft && !strcmp(ft, "json_object")) {
    json_object_set_new(native, "format", json_string("json"));
  } else if (ft && !strcmp(ft, "json_schema")) {
    json_t *schema = json_object_get(fmt, "schema");
    if (!json_is_object(schema)) {
      cll__oai_error(req, 400, "text.format json_schema needs a schema object");
      goto done;
    }
    json_object_set(native, "format", schema);
  } else if (ft && strcmp(ft, "text") != 0) {
    cll__oai_error(req, 400,
                   "text.format.type must be \"text\", \"json_object\" or \"json_schema\"");
    goto done;
  }
  if (!cll__oai_map_think(req, b, native))
    goto done;
  json_t *text_cfg = json_object_get(b, "text");
  r->req_echo = json_pack(
      "{s:o,s:o,s:O}", "tools", json_array_size(tools) ? json_incref(tools) : json_array(), "text",
      json_is_object(text_cfg) ? json_incref(text_cfg)
                               : json_pack("{s:{s:s}}", "format", "type", "text"),
      "instructions", instr ? json_object_get(b, "instructions") : json_null());
  json_decref(b);
  b = NULL;
  char *text = json_dumps(native, JSON_COMPACT);
  json_decref(native);
  native = NULL;
  r->sink = (struct cll__sink){
      .w = &resp_writer, .state = r, .native_answer = native_answer, .free_state = free_state};
  int rc = cll__gen_forward(req, "/api/chat", text, &r->sink);
  free(text);
  if (rc != 0) {
    resp_free(r);
    cll__oai_error(req, 500, cll_strerror(rc));
  }
  return;
done:
  json_decref(b);
  json_decref(native);
  json_decref(opts);
  resp_free(r);
}
