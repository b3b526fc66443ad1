/* openai_common.c — what every OpenAI-compatible endpoint shares (openai.c,
 * openai_models.c, responses.c; declared in openai.h): OpenAI's error
 * shape and Go decoder messages for request body checks, and the mapping
 * of sampling fields and reasoning effort onto a native request.
 *
 * Threads: loop thread only. */
#include "cllama/api.h"
#include "openai.h"

#include "cllama/util.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/* ---------------------------------------------------------------- errors */

/* {"error":{"message","type","param":null,"code":null}} with the type
 * Ollama's openai.NewError gives each status. */
json_t *cll__oai_error_object(int status, const char *msg) {
  const char *type = status == 400   ? "invalid_request_error"
                     : status == 404 ? "not_found_error"
                                     : "api_error";
  return json_pack("{s:{s:s,s:s,s:n,s:n}}", "error", "message", msg ? msg : "", "type", type,
                   "param", "code");
}

/* Answers with a JSON value (stolen), Content-Type application/json and a
 * trailing newline, as Go's json.Encoder writes it. */
void cll__respond_json_nl(cll_request *req, int status, json_t *v, const char *oom) {
  char *text = v ? json_dumps(v, JSON_COMPACT) : NULL;
  json_decref(v);
  if (!text) {
    cll_respond(req, 500, "application/json", oom, strlen(oom));
    return;
  }
  size_t n = strlen(text);
  char *withnl = realloc(text, n + 2);
  if (withnl) {
    text = withnl;
    text[n++] = '\n';
    text[n] = 0;
  }
  cll_respond(req, status, "application/json", text, n);
  free(text);
}

void cll__random_hex(char *out, size_t n_bytes) {
  unsigned char b[32];
  if (n_bytes > sizeof(b))
    n_bytes = sizeof(b);
  if (uv_random(NULL, NULL, b, n_bytes, 0, NULL) != 0)
    for (size_t i = 0; i < n_bytes; i++)
      b[i] = (unsigned char)rand();
  cll_hex_encode(b, n_bytes, out);
}

void cll__oai_respond_json(cll_request *req, int status, json_t *v) {
  cll__respond_json_nl(req, status, v,
                       "{\"error\":{\"message\":\"out of memory\",\"type\":\"api_error\","
                       "\"param\":null,\"code\":null}}\n");
}

void cll__oai_error(cll_request *req, int status, const char *msg) {
  cll__oai_respond_json(req, status, cll__oai_error_object(status, msg));
}

void cll__oai_errorf(cll_request *req, int status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  cll__oai_error(req, status, msg);
}

/* Go's name for the type a JSON value decodes to into an `any`. */
const char *cll__oai_go_any_type(const json_t *v) {
  if (!v || json_is_null(v))
    return "<nil>";
  if (json_is_string(v))
    return "string";
  if (json_is_number(v))
    return "float64";
  if (json_is_boolean(v))
    return "bool";
  if (json_is_array(v))
    return "[]interface {}";
  return "map[string]interface {}";
}

/* The JSON kind as Go's decoder names it in "cannot unmarshal X into". */
const char *cll__oai_json_kind(const json_t *v) {
  if (json_is_string(v))
    return "string";
  if (json_is_number(v))
    return "number";
  if (json_is_boolean(v))
    return "bool";
  if (json_is_array(v))
    return "array";
  return "object";
}

/* Checks the type of an optional field ('s' string, 'n' number, 'i'
 * integer, 'b' bool, 'o' object, 'a' array); null counts as absent. On a
 * mismatch answers 400 with Go's decoder message and returns false. */
bool cll__oai_check_field(cll_request *req, json_t *obj, const char *st, const char *key, char t,
                          const char *gotype) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v))
    return true;
  bool ok = t == 's'   ? json_is_string(v)
            : t == 'n' ? json_is_number(v)
            : t == 'i' ? json_is_integer(v)
            : t == 'b' ? json_is_boolean(v)
            : t == 'o' ? json_is_object(v)
                       : json_is_array(v);
  if (!ok)
    cll__oai_errorf(req, 400, "json: cannot unmarshal %s into Go struct field %s.%s of type %s",
                    cll__oai_json_kind(v), st, key, gotype);
  return ok;
}

bool cll__oai_check_fields(cll_request *req, json_t *obj, const char *st,
                           const struct cll__oai_field *fields) {
  for (const struct cll__oai_field *f = fields; f->key; f++)
    if (!cll__oai_check_field(req, obj, st, f->key, f->type, f->go_type))
      return false;
  return true;
}

/* The body as a JSON object, or answers 400 in OpenAI's shape. New. */
json_t *cll__oai_body_object(cll_request *req, const char *st) {
  size_t len;
  const char *body = cll_request_body(req, &len);
  size_t i = 0;
  while (i < len && isspace((unsigned char)body[i]))
    i++;
  if (i == len) {
    cll__oai_error(req, 400, "EOF"); /* Go's decoder on an empty body */
    return NULL;
  }
  json_error_t jerr;
  json_t *v = json_loadb(body, len, 0, &jerr);
  if (!v) {
    cll__oai_error(req, 400, jerr.text);
    return NULL;
  }
  if (!json_is_object(v)) {
    cll__oai_errorf(req, 400, "json: cannot unmarshal %s into Go value of type openai.%s",
                    cll__oai_json_kind(v), st);
    json_decref(v);
    return NULL;
  }
  return v;
}

/* ---------------------------------------------------------------- options */

/* stop: a string or an array of strings -> options.stop. */
static bool map_stop(cll_request *req, json_t *b, json_t *opts) {
  json_t *stop = json_object_get(b, "stop");
  if (!stop || json_is_null(stop))
    return true;
  if (json_is_string(stop)) {
    json_object_set_new(opts, "stop", json_pack("[O]", stop));
    return true;
  }
  if (json_is_array(stop)) {
    size_t i;
    json_t *s;
    json_array_foreach(stop, i, s) {
      if (!json_is_string(s)) {
        cll__oai_errorf(req, 400, "invalid type for 'stop' field: %s", cll__oai_go_any_type(s));
        return false;
      }
    }
    json_object_set(opts, "stop", stop);
    return true;
  }
  cll__oai_errorf(req, 400, "invalid type for 'stop' field: %s", cll__oai_go_any_type(stop));
  return false;
}

/* The sampling fields both completion endpoints share, with OpenAI's
 * defaults (temperature and top_p 1.0, overriding the model's). */
json_t *cll__oai_map_options(cll_request *req, json_t *b, const char *st, bool chat) {
  if (!cll__oai_check_field(req, b, st, "max_tokens", 'i', "int") ||
      (chat && !cll__oai_check_field(req, b, st, "max_completion_tokens", 'i', "int")) ||
      !cll__oai_check_field(req, b, st, "seed", 'i', "int") ||
      !cll__oai_check_field(req, b, st, "temperature", 'n', "float64") ||
      !cll__oai_check_field(req, b, st, "top_p", 'n', "float64") ||
      !cll__oai_check_field(req, b, st, "frequency_penalty", 'n', "float64") ||
      !cll__oai_check_field(req, b, st, "presence_penalty", 'n', "float64"))
    return NULL;
  json_t *opts = json_object();
  if (!map_stop(req, b, opts)) {
    json_decref(opts);
    return NULL;
  }
  json_t *v;
  if ((v = json_object_get(b, "max_tokens")) && json_is_integer(v))
    json_object_set(opts, "num_predict", v);
  else if (chat && (v = json_object_get(b, "max_completion_tokens")) && json_is_integer(v))
    json_object_set(opts, "num_predict", v);
  v = json_object_get(b, "temperature");
  json_object_set_new(opts, "temperature",
                      json_real(json_is_number(v) ? json_number_value(v) : 1.0));
  if ((v = json_object_get(b, "seed")) && json_is_integer(v))
    json_object_set(opts, "seed", v);
  if ((v = json_object_get(b, "frequency_penalty")) && json_is_number(v))
    json_object_set_new(opts, "frequency_penalty", json_real(json_number_value(v)));
  if ((v = json_object_get(b, "presence_penalty")) && json_is_number(v))
    json_object_set_new(opts, "presence_penalty", json_real(json_number_value(v)));
  v = json_object_get(b, "top_p");
  double top_p = json_is_number(v) ? json_number_value(v) : 0;
  /* Completions treat 0 as absent; chat only a missing field. */
  if (!json_is_number(v) || (!chat && top_p == 0))
    top_p = 1.0;
  json_object_set_new(opts, "top_p", json_real(top_p));
  return opts;
}

/* reasoning_effort / reasoning.effort -> think. */
bool cll__oai_map_think(cll_request *req, json_t *b, json_t *native) {
  const char *effort = json_string_value(json_object_get(b, "reasoning_effort"));
  if (!effort)
    effort = json_string_value(json_object_get(json_object_get(b, "reasoning"), "effort"));
  if (!effort)
    return true;
  if (strcmp(effort, "none") == 0)
    json_object_set_new(native, "think", json_false());
  else if (strcmp(effort, "minimal") == 0)
    json_object_set_new(native, "think", json_string("low"));
  else if (!strcmp(effort, "low") || !strcmp(effort, "medium") || !strcmp(effort, "high") ||
           !strcmp(effort, "max"))
    json_object_set_new(native, "think", json_string(effort));
  else if (!strcmp(effort, "xhigh") || !strcmp(effort, "ultra"))
    json_object_set_new(native, "think", json_string("max"));
  else {
    cll__oai_errorf(req, 400,
                    "invalid reasoning value: '%s' (must be \"none\", \"minimal\", "
                    "\"low\", \"medium\", \"high\", \"xhigh\", \"max\" or \"ultra\")",
                    effort);
    return false;
  }
  return true;
}
