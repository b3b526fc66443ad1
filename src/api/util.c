/* util.c — helpers every API handler shares: the CLL_E* -> HTTP status
 * table, {"error": ...} answers, JSON request bodies read whatever their
 * Content-Type (as Ollama/gin does), and timestamps. */
#include "cllama/api.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

cll_api *cll_api_from(const cll_request *req) {
  return cll_request_server_data(req);
}

int cll_api_status(int code) {
  switch (code) {
  case 0:
    return 200;
  case CLL_EINVAL:
  case CLL_EPARSE:
  case CLL_ERANGE:
    return 400;
  case CLL_ENOENT:
    return 404;
  case CLL_EACCES:
    return 403;
  case CLL_EEXIST:
    return 409;
  case CLL_ETOOBIG:
    return 413;
  case CLL_ECANCELED:
    return 499;
  case CLL_EUNSUPPORTED:
    return 501;
  case CLL_EFULL:
  case CLL_EBUSY:
    return 503;
  case CLL_ETIMEDOUT:
    return 504;
  case CLL_ENET:
    return 502;
  default:
    return 500;
  }
}

void cll_api_json(cll_request *req, int status, json_t *body) {
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (text == NULL) {
    static const char oom[] = "{\"error\":\"out of memory\"}";
    cll_respond(req, 500, "application/json; charset=utf-8", oom, sizeof(oom) - 1);
    return;
  }
  cll_respond(req, status, "application/json; charset=utf-8", text, strlen(text));
  free(text);
}

/* msg without the model store's absolute path ("<root>/blobs/x" becomes
 * "blobs/x"): error answers never reveal where the server keeps its files.
 * Returns msg itself when there is nothing to remove, else out. */
const char *cll__api_scrub(cll_request *req, const char *msg, char *out, size_t cap) {
  const cll_api *api = cll_request_server_data(req);
  const char *root = api && api->store ? cll_store_root(api->store) : NULL;
  size_t rl = root ? strlen(root) : 0;
  if (rl < 2 || msg == NULL || strstr(msg, root) == NULL)
    return msg;
  size_t o = 0;
  for (const char *p = msg; *p && o + 1 < cap;) {
    if (strncmp(p, root, rl) == 0) {
      p += rl;
      if (*p == '/')
        p++;
      continue;
    }
    out[o++] = *p++;
  }
  out[o] = 0;
  return out;
}

void cll_api_error(cll_request *req, int status, const char *msg) {
  if (msg == NULL || *msg == 0) /* a caller with no reason (an unfilled cll_err) */
    msg = status >= 500 ? "internal server error" : status == 404 ? "not found" : "bad request";
  char clean[1024];
  msg = cll__api_scrub(req, msg, clean, sizeof(clean));
  cll_api_json(req, status, json_pack("{s:s}", "error", msg));
}

void cll_api_errorf(cll_request *req, int status, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  cll_api_error(req, status, msg);
}

json_t *cll_api_body_object(cll_request *req) {
  size_t len;
  const char *body = cll_request_body(req, &len);
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\r' || body[i] == '\n'))
    i++;
  if (i == len) {
    cll_api_error(req, 400, "missing request body");
    return NULL;
  }
  json_error_t jerr;
  /* DISABLE_EOF_CHECK is not set: trailing garbage is an error, as in Go. */
  json_t *v = json_loadb(body, len, 0, &jerr);
  if (v == NULL) {
    cll_api_errorf(req, 400, "%s", jerr.text);
    return NULL;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    cll_api_error(req, 400, "request body must be a JSON object");
    return NULL;
  }
  return v;
}

const char *cll_api_opt_string(cll_request *req, json_t *obj, const char *key, bool *failed) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v))
    return NULL;
  if (!json_is_string(v)) {
    cll_api_errorf(req, 400, "json: cannot unmarshal %s into field \"%s\" of type string",
                   json_is_number(v)    ? "number"
                   : json_is_boolean(v) ? "bool"
                   : json_is_array(v)   ? "array"
                                        : "object",
                   key);
    *failed = true;
    return NULL;
  }
  return json_string_value(v);
}

json_t *cll_api_body_model(cll_request *req, const char *alias, int missing_status,
                           const char **model) {
  json_t *body = cll_api_body_object(req);
  if (!body)
    return NULL;
  bool failed = false;
  *model = cll_api_opt_string(req, body, "model", &failed);
  if (!failed && alias && (!*model || !**model))
    *model = cll_api_opt_string(req, body, alias, &failed);
  if (!failed && missing_status && (!*model || !**model)) {
    cll_api_error(req, missing_status,
                  missing_status == 404 ? "model '' not found" : "model is required");
    failed = true;
  }
  if (failed) {
    json_decref(body);
    return NULL;
  }
  return body;
}

int cll_api_stream_flag(cll_request *req, json_t *obj) {
  json_t *v = json_object_get(obj, "stream");
  if (v == NULL || json_is_null(v))
    return cll_api_from(req)->cfg->stream_default ? 1 : 0;
  if (!json_is_boolean(v)) {
    cll_api_error(req, 400, "json: cannot unmarshal into field \"stream\" of type bool");
    return -1;
  }
  return json_is_true(v) ? 1 : 0;
}

void cll_api_time_rfc3339(int64_t ns, char *buf, size_t size) {
  time_t sec = (time_t)(ns / 1000000000LL);
  long frac = (long)(ns % 1000000000LL);
  if (frac < 0) {
    frac += 1000000000L;
    sec -= 1;
  }
  struct tm tm;
  gmtime_r(&sec, &tm);
  char base[32];
  strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
  if (frac == 0) {
    snprintf(buf, size, "%sZ", base);
    return;
  }
  /* Go's RFC3339Nano trims trailing zeros of the fraction. */
  char f[16];
  snprintf(f, sizeof(f), "%09ld", frac);
  for (int i = 8; i > 0 && f[i] == '0'; i--)
    f[i] = '\0';
  snprintf(buf, size, "%s.%sZ", base, f);
}
