/* tokenize.c — POST /api/tokenize and POST /api/detokenize: a model's own
 * tokenizer, without generating (cllama extensions, shaped like llama.cpp
 * server's /tokenize and /detokenize, with "model" as in every Ollama
 * endpoint). The model is loaded (as for a generation) and its tokenizer
 * runs on a work item.
 *
 *   {"model", "content": TEXT, "add_special": false, "parse_special": true,
 *    "with_pieces": false}           -> {"model","tokens":[ids]} or
 *                                       [{"id","piece"}] with with_pieces
 *   {"model", "messages": [...], "tools", "think", "options", ...}
 *                                    -> {"model","count","tokens","truncated"}:
 *       a chat request rendered through the model's template and tokenized
 *       exactly as /api/chat would run it (the same code: the request is
 *       handed to /api/chat, which stops once its prompt is built), so
 *       "count" is the prompt_eval_count that request would have.
 *   /api/detokenize {"model", "tokens": [ids]} -> {"model","content"}
 *
 * add_special and parse_special mean what they mean to llama.cpp's server:
 * add the BOS/EOS the vocabulary asks for; turn special-token text into
 * those tokens. */
#include "cllama/api.h"
#include "cllama/runners.h"
#include "cllama/utf8.h"
#include "gen_core.h"
#include "resolve.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

struct tok {
  cll_api *api;
  cll_request *req;
  struct cll__model_ref ref;
  bool detok, add_special, parse_special, with_pieces;
  char *content;
  int32_t *ids;
  int32_t n_ids;
  json_t *out;
  cll_acquire *acq;
  cll_runner *runner;
  int rc;
  cll_err err;
  uv_work_t work;
};

static void tok_free(struct tok *t) {
  if (t->runner)
    cll_runner_release(t->runner);
  cll__model_ref_free(&t->ref);
  free(t->content);
  free(t->ids);
  json_decref(t->out);
  free(t);
}

/* A JSON string of bytes that may hold broken UTF-8 (ids that split a
 * character): each invalid byte becomes U+FFFD. */
static json_t *valid_string(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  if (v)
    return v;
  char *o = malloc(n * 4 + 1);
  size_t k = 0;
  for (size_t i = 0; i < n;) {
    uint32_t cp;
    size_t m = cll_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    k += cll_utf8_encode(cp, o + k);
    i += m;
  }
  v = json_stringn(o, k);
  free(o);
  return v ? v : json_string("");
}

static void on_tok_work(uv_work_t *w) {
  struct tok *t = w->data;
  const cll__mtext *mt = cll_runner_aux(t->runner);
  if (t->detok) {
    /* Ids past the vocabulary are the client's mistake, not empty text. */
    int64_t n_vocab = cll_model_info(cll_runner_model(t->runner))->n_vocab;
    for (int32_t i = 0; i < t->n_ids; i++) {
      if (t->ids[i] >= n_vocab) {
        t->rc = cll_err_set(&t->err, CLL_EINVAL, "token id %d is not in the vocabulary (%lld ids)",
                            (int)t->ids[i], (long long)n_vocab);
        return;
      }
    }
    char *text = NULL;
    size_t len = 0;
    t->rc = cll__detokenize(mt, t->ids, t->n_ids, &text, &len);
    if (t->rc != 0) {
      cll_err_set(&t->err, t->rc, "cannot detokenize");
      return;
    }
    t->out = json_object();
    json_object_set_new(t->out, "content", valid_string(text, len));
    free(text);
    return;
  }
  int32_t *toks = NULL, n = 0;
  t->rc = cll__tokenize(mt, t->content, strlen(t->content), t->add_special, t->parse_special, &toks,
                        &n, &t->err);
  if (t->rc != 0)
    return;
  json_t *arr = json_array();
  for (int32_t i = 0; i < n; i++) {
    if (!t->with_pieces) {
      json_array_append_new(arr, json_integer(toks[i]));
      continue;
    }
    /* The token's own bytes (a leading space kept, special tokens as their
     * text), as llama.cpp's with_pieces gives them. */
    size_t len = 0;
    const char *piece = cll_tok_piece(cll__mtext_tokenizer(mt), toks[i], true, &len);
    json_t *p = json_object();
    json_object_set_new(p, "id", json_integer(toks[i]));
    /* A byte token may be part of a UTF-8 sequence: then its bytes. */
    json_t *s = json_stringn(piece ? piece : "", piece ? len : 0);
    if (!s) {
      s = json_array();
      for (size_t k = 0; k < len; k++)
        json_array_append_new(s, json_integer((unsigned char)piece[k]));
    }
    json_object_set_new(p, "piece", s);
    json_array_append_new(arr, p);
  }
  free(toks);
  t->out = json_object();
  json_object_set_new(t->out, "tokens", arr);
}

static void on_tok_done(uv_work_t *w, int status) {
  struct tok *t = w->data;
  if (t->rc != 0) {
    cll_api_error(t->req, t->rc == CLL_ENOMEM ? 500 : 400,
                  t->err.msg[0] ? t->err.msg : cll_strerror(t->rc));
  } else {
    json_object_set_new(t->out, "model", json_string(t->ref.display));
    cll_api_json(t->req, 200, t->out);
    t->out = NULL;
  }
  tok_free(t);
}

static void on_acquired(void *ud, cll_runner *r, int status, const cll_err *err) {
  struct tok *t = ud;
  t->acq = NULL;
  if (status != 0) {
    cll_api_error(t->req, status == CLL_EFULL ? 503 : cll_api_status(status),
                  err && err->msg[0] ? err->msg : cll_strerror(status));
    tok_free(t);
    return;
  }
  t->runner = r;
  t->work.data = t;
  if (uv_queue_work(t->api->loop, &t->work, on_tok_work, on_tok_done) != 0) {
    cll_api_error(t->req, 500, "cannot queue work");
    tok_free(t);
  }
}

static bool opt_bool(cll_request *req, json_t *body, const char *key, bool dflt, bool *ok) {
  json_t *v = json_object_get(body, key);
  if (!v || json_is_null(v))
    return dflt;
  if (!json_is_boolean(v)) {
    cll_api_errorf(req, 400, "%s must be a boolean", key);
    *ok = false;
    return dflt;
  }
  return json_is_true(v);
}

/* ---------------------------------------------------------------- count */

static void count_event(cll__gen *g, void *state, const struct cll__ev *ev) {
  /* Never reached: the request stops before anything is generated. */
}
static const struct cll__writer count_writer = {count_event};

static void on_count_prompt(cll__gen *g, void *state) {
  json_t *toks = json_array();
  for (int32_t i = 0; i < g->n_prompt; i++)
    json_array_append_new(toks, json_integer(g->prompt[i]));
  json_t *o = json_pack("{s:s,s:i,s:o,s:b}", "model", g->model_req ? g->model_req : "", "count",
                        (int)g->n_prompt, "tokens", toks, "truncated", g->prompt_truncated);
  cll_api_json(g->req, 200, o);
}

/* The filter passes the chat handler's answer (ours, or its error) as is. */
static void pass_respond(cll_request *req, int status, const char *ctype, const void *body,
                         size_t len, void *ud) {
  cll_respond(req, status, ctype, body, len);
}
static int pass_start(cll_request *req, int status, const char *ctype, void *ud) {
  return cll_stream_start(req, status, ctype);
}
static int pass_write(cll_request *req, const void *data, size_t len, void *ud) {
  return cll_stream_write(req, data, len);
}
static void pass_end(cll_request *req, void *ud) {
  cll_stream_end(req);
}
static const cll_filter pass_filter = {pass_respond, pass_start, pass_write, pass_end};
static struct cll__sink count_sink = {.w = &count_writer, .on_prompt = on_count_prompt};

static void count_chat(cll_request *req, json_t *body) {
  json_object_set_new(body, "stream", json_false());
  json_object_del(body, "content");
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (!text) {
    cll_api_error(req, 500, "out of memory");
    return;
  }
  cll__gen_sink_attach(req, &count_sink);
  int rc = cll_request_forward(req, "POST", "/api/chat", text, strlen(text), &pass_filter, NULL);
  free(text);
  if (rc != 0) {
    cll_request_set_data(req, NULL);
    cll_api_error(req, 500, cll_strerror(rc));
  }
}

/* ---------------------------------------------------------------- handlers */

static void handle(cll_request *req, void *ud, bool detok) {
  cll_api *api = ud;
  const char *model;
  json_t *body = cll_api_body_model(req, NULL, 400, &model);
  if (!body)
    return;
  json_t *msgs = json_object_get(body, "messages");
  if (!detok && msgs) {
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
      json_decref(body);
      cll_api_error(req, 400, "messages must be a non-empty array");
      return;
    }
    if (json_object_get(body, "content")) {
      json_decref(body);
      cll_api_error(req, 400, "give content or messages, not both");
      return;
    }
    count_chat(req, body);
    return;
  }
  struct tok *t = calloc(1, sizeof(*t));
  if (!t) {
    json_decref(body);
    cll_api_error(req, 500, "out of memory");
    return;
  }
  t->api = api;
  t->req = req;
  t->detok = detok;
  bool ok = true;
  if (detok) {
    json_t *ids = json_object_get(body, "tokens");
    if (!json_is_array(ids)) {
      cll_api_error(req, 400, "tokens must be an array of token ids");
      ok = false;
    } else {
      t->n_ids = (int32_t)json_array_size(ids);
      t->ids = malloc(((size_t)t->n_ids + 1) * sizeof(int32_t));
      size_t i;
      json_t *v;
      json_array_foreach(ids, i, v) {
        if (ok && (!json_is_integer(v) || json_integer_value(v) < 0 ||
                   json_integer_value(v) > INT32_MAX)) {
          cll_api_errorf(req, 400, "tokens[%zu] is not a token id", i);
          ok = false;
        }
        if (ok)
          t->ids[i] = (int32_t)json_integer_value(v);
      }
    }
  } else {
    bool failed = false;
    const char *content = cll_api_opt_string(req, body, "content", &failed);
    if (!failed && !content)
      content = cll_api_opt_string(req, body, "prompt", &failed);
    if (failed) {
      ok = false;
    } else if (!content) {
      cll_api_error(req, 400, "content (text) or messages (a chat request) is required");
      ok = false;
    } else {
      t->content = strdup(content);
      t->add_special = opt_bool(req, body, "add_special", false, &ok);
      if (ok)
        t->parse_special = opt_bool(req, body, "parse_special", true, &ok);
      if (ok)
        t->with_pieces = opt_bool(req, body, "with_pieces", false, &ok);
    }
  }
  if (!ok) {
    json_decref(body);
    tok_free(t);
    return;
  }
  cll_err err = {0};
  int rc = cll__model_resolve(api->store, model, &t->ref, &err);
  json_decref(body);
  if (rc != 0) {
    cll__model_resolve_answer(req, rc, &t->ref, &err);
    tok_free(t);
    return;
  }
  struct cll_load_req lr = {0};
  lr.path = t->ref.model_path;
  lr.name = t->ref.display;
  lr.digest = t->ref.man ? t->ref.man->digest : "";
  rc = cll_runners_acquire(api->runners, &lr, on_acquired, t, &t->acq, &err);
  if (rc != 0) {
    cll_api_error(req, rc == CLL_EFULL ? 503 : cll_api_status(rc), err.msg);
    tok_free(t);
  }
}

static void on_tokenize(cll_request *req, void *ud) {
  handle(req, ud, false);
}
static void on_detokenize(cll_request *req, void *ud) {
  handle(req, ud, true);
}

int cll_api_tokenize_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"POST", "/api/tokenize", on_tokenize, false},
      {"POST", "/api/detokenize", on_detokenize, false},
  };
  return CLL_API_ROUTES(api, routes);
}
