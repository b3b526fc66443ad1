/* openai_models.c — POST /v1/embeddings (over /api/embed, with base64
 * encoding) and GET /v1/models, GET /v1/models/:model (over /api/tags and
 * /api/show): translations whose native answer is one JSON object, turned
 * into OpenAI's shape by a filter. The chat and completion endpoints and
 * the request state are openai.c's.
 *
 * Threads: loop thread only. */
#include "cllama/api.h"
#include "openai.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- embeddings */

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The vector as little-endian float32 bytes in base64. New string. */
static json_t *embedding_base64(json_t *vec) {
  size_t n = json_array_size(vec), nbytes = n * 4;
  unsigned char *raw = malloc(nbytes + 1);
  char *out = malloc((nbytes + 2) / 3 * 4 + 1);
  if (!raw || !out) {
    free(raw);
    free(out);
    return json_string("");
  }
  for (size_t i = 0; i < n; i++) {
    float f = (float)json_number_value(json_array_get(vec, i));
    uint32_t u;
    memcpy(&u, &f, 4);
    raw[4 * i] = (unsigned char)u;
    raw[4 * i + 1] = (unsigned char)(u >> 8);
    raw[4 * i + 2] = (unsigned char)(u >> 16);
    raw[4 * i + 3] = (unsigned char)(u >> 24);
  }
  size_t o = 0;
  for (size_t i = 0; i < nbytes; i += 3) {
    uint32_t w = (uint32_t)raw[i] << 16;
    if (i + 1 < nbytes)
      w |= (uint32_t)raw[i + 1] << 8;
    if (i + 2 < nbytes)
      w |= raw[i + 2];
    out[o++] = b64chars[(w >> 18) & 63];
    out[o++] = b64chars[(w >> 12) & 63];
    out[o++] = i + 1 < nbytes ? b64chars[(w >> 6) & 63] : '=';
    out[o++] = i + 2 < nbytes ? b64chars[w & 63] : '=';
  }
  out[o] = 0;
  json_t *s = json_string(out);
  free(raw);
  free(out);
  return s;
}

/* The native answer (body, len) of a forwarded request, in the OpenAI
 * shape: an error as OpenAI's error object, a 200 as build makes it from
 * the parsed body (a new object). Frees o. */
static void answer_native(cll_request *req, int status, const void *body, size_t len, struct oai *o,
                          json_t *(*build)(const struct oai *o, json_t *v)) {
  if (status != 200) {
    cll__oai_forward_error(req, status, body, len);
  } else {
    json_t *v = json_loadb(body, len, 0, NULL);
    cll__oai_respond_json(req, 200, build(o, v));
    json_decref(v);
  }
  cll__oai_free(o);
}

static json_t *embed_list(const struct oai *o, json_t *v) {
  json_t *data = json_array();
  size_t i;
  json_t *e;
  json_array_foreach(json_object_get(v, "embeddings"), i, e) {
    json_array_append_new(data, json_pack("{s:s,s:o,s:i}", "object", "embedding", "embedding",
                                          o->base64 ? embedding_base64(e) : json_incref(e), "index",
                                          (int)i));
  }
  json_int_t n = json_integer_value(json_object_get(v, "prompt_eval_count"));
  json_t *model = json_object_get(v, "model");
  return json_pack("{s:s,s:o,s:s,s:{s:I,s:I}}", "object", "list", "data", data, "model",
                   json_is_string(model) ? json_string_value(model) : o->model, "usage",
                   "prompt_tokens", n, "total_tokens", n);
}

static void embed_respond(cll_request *req, int status, const char *ctype, const void *body,
                          size_t len, void *ud) {
  answer_native(req, status, body, len, ud, embed_list);
}

/* The native embed answer is never streamed; these only keep the filter
 * complete. */
static int plain_stream_start(cll_request *req, int status, const char *ctype, void *ud) {
  return 0;
}
static int plain_stream_write(cll_request *req, const void *data, size_t len, void *ud) {
  return 0;
}
static void plain_stream_end(cll_request *req, void *ud) {
  cll__oai_error(req, 500, "unexpected streamed answer");
  cll__oai_free(ud);
}

static const cll_filter embed_filter = {embed_respond, plain_stream_start, plain_stream_write,
                                        plain_stream_end};

void cll__oai_on_embeddings(cll_request *req, void *ud) {
  const char *st = "EmbedRequest";
  json_t *b = cll__oai_body_object(req, st);
  if (!b)
    return;
  struct oai *o = NULL;
  if (!cll__oai_check_field(req, b, st, "model", 's', "string") ||
      !cll__oai_check_field(req, b, st, "dimensions", 'i', "int") ||
      !cll__oai_check_field(req, b, st, "encoding_format", 's', "string"))
    goto done;
  json_t *in = json_object_get(b, "input");
  json_t *input;
  if (json_is_string(in)) {
    input = json_pack("[O]", in); /* "" is [""] */
  } else if (json_is_array(in) && json_array_size(in) > 0) {
    size_t i;
    json_t *s;
    json_array_foreach(in, i, s) {
      if (!json_is_string(s)) {
        cll__oai_error(req, 400, "invalid input");
        goto done;
      }
    }
    input = json_incref(in);
  } else {
    cll__oai_error(req, 400, "invalid input");
    goto done;
  }
  const char *enc = json_string_value(json_object_get(b, "encoding_format"));
  if (enc && *enc && strcmp(enc, "float") != 0 && strcmp(enc, "base64") != 0) {
    json_decref(input);
    cll__oai_errorf(req, 400,
                    "Invalid value for 'encoding_format' = %s. Supported values: "
                    "['float', 'base64'].",
                    enc);
    goto done;
  }
  const char *model = json_string_value(json_object_get(b, "model"));
  o = cll__oai_new(K_EMBED, model);
  if (!o) {
    json_decref(input);
    cll__oai_error(req, 500, "out of memory");
    goto done;
  }
  o->base64 = enc && strcmp(enc, "base64") == 0;
  json_t *native = json_pack("{s:s,s:o}", "model", model ? model : "", "input", input);
  json_t *dim = json_object_get(b, "dimensions");
  if (json_is_integer(dim))
    json_object_set(native, "dimensions", dim);
  json_decref(b);
  cll__oai_forward(req, "POST", "/api/embed", native, &embed_filter, o);
  return;
done:
  json_decref(b);
  cll__oai_free(o);
}

/* ---------------------------------------------------------------- models */

/* Seconds since the epoch of an RFC 3339 time ("2024-05-01T10:00:00.5Z" or
 * with a +hh:mm offset); 0 when it does not parse. */
static int64_t rfc3339_unix(const char *s) {
  struct tm tm = {0};
  const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
  if (!p)
    return 0;
  int64_t t = (int64_t)timegm(&tm);
  if (*p == '.')
    for (p++; isdigit((unsigned char)*p); p++) {
    }
  if ((*p == '+' || *p == '-') && isdigit((unsigned char)p[1])) {
    int hh = 0, mm = 0;
    if (sscanf(p + 1, "%2d:%2d", &hh, &mm) == 2)
      t -= (*p == '+' ? 1 : -1) * (int64_t)(hh * 3600 + mm * 60);
  }
  return t;
}

/* The namespace of a model name ("library" for "llama3:8b", "ns" for
 * "host/ns/m:t" and "ns/m"), as owned_by. Writes into buf. */
static const char *name_namespace(const char *name, char *buf, size_t size) {
  const char *parts[3] = {0};
  size_t lens[3] = {0}, n = 0;
  const char *p = name;
  while (n < 3) {
    const char *slash = strchr(p, '/');
    parts[n] = p;
    lens[n] = slash ? (size_t)(slash - p) : strlen(p);
    n++;
    if (!slash)
      break;
    p = slash + 1;
  }
  if (n == 1) {
    snprintf(buf, size, "library");
    return buf;
  }
  size_t k = n == 2 ? 0 : 1;
  snprintf(buf, size, "%.*s", (int)lens[k], parts[k]);
  return buf;
}

static json_t *model_object(const char *id, int64_t created) {
  char ns[256];
  return json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model", "created", (json_int_t)created,
                   "owned_by", name_namespace(id, ns, sizeof(ns)));
}

static json_t *model_list(const struct oai *o, json_t *v) {
  json_t *models = json_object_get(v, "models");
  json_t *data = json_array_size(models) ? json_array() : json_null();
  size_t i;
  json_t *m;
  json_array_foreach(models, i, m) {
    const char *name = json_string_value(json_object_get(m, "name"));
    if (!name)
      continue;
    json_array_append_new(
        data,
        model_object(name, rfc3339_unix(json_string_value(json_object_get(m, "modified_at")))));
  }
  return json_pack("{s:s,s:o}", "object", "list", "data", data);
}

static json_t *model_retrieved(const struct oai *o, json_t *v) {
  return model_object(o->model, rfc3339_unix(json_string_value(json_object_get(v, "modified_at"))));
}

static void list_respond(cll_request *req, int status, const char *ctype, const void *body,
                         size_t len, void *ud) {
  answer_native(req, status, body, len, ud, model_list);
}

static void retrieve_respond(cll_request *req, int status, const char *ctype, const void *body,
                             size_t len, void *ud) {
  answer_native(req, status, body, len, ud, model_retrieved);
}

static const cll_filter list_filter = {list_respond, plain_stream_start, plain_stream_write,
                                       plain_stream_end};
static const cll_filter retrieve_filter = {retrieve_respond, plain_stream_start, plain_stream_write,
                                           plain_stream_end};

void cll__oai_on_list(cll_request *req, void *ud) {
  struct oai *o = cll__oai_new(K_LIST, "");
  if (!o) {
    cll__oai_error(req, 500, "out of memory");
    return;
  }
  cll__oai_forward(req, "GET", "/api/tags", NULL, &list_filter, o);
}

/* Decodes %XX escapes in place (a client may send "llama3%3A8b"). */
static void percent_decode(char *s) {
  char *o = s;
  for (const char *p = s; *p; p++) {
    if (p[0] == '%' && cll_hex_digit(p[1]) >= 0 && cll_hex_digit(p[2]) >= 0) {
      *o++ = (char)(cll_hex_digit(p[1]) * 16 + cll_hex_digit(p[2]));
      p += 2;
    } else {
      *o++ = *p;
    }
  }
  *o = 0;
}

void cll__oai_on_retrieve(cll_request *req, void *ud) {
  const char *model = cll_request_param(req, "model");
  struct oai *o = cll__oai_new(K_RETRIEVE, model);
  if (!o) {
    cll__oai_error(req, 500, "out of memory");
    return;
  }
  percent_decode(o->model);
  cll__oai_forward(req, "POST", "/api/show", json_pack("{s:s}", "model", o->model),
                   &retrieve_filter, o);
}
