/* generate.c — POST /api/generate and POST /api/chat: request parsing and
 * validation, and prompt assembly (§1.4, §1.5, §5.3). The run itself is
 * gen_core.c's. */
#include "gen_core.h"
#include "render.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gen_in {
  char *prompt, *suffix, *tmpl; /* request fields (owned) */
  bool raw;
  int32_t *context; /* (n_context) deprecated "context" tokens */
  int32_t n_context;
  struct cll__msg *msgs; /* system, stored messages, user / chat messages */
  size_t n_msgs;
  int64_t n_ctx; /* for history truncation */
};

static void gen_in_free(void *p) {
  struct gen_in *in = p;
  if (!in)
    return;
  free(in->prompt);
  free(in->suffix);
  free(in->tmpl);
  free(in->context);
  cll__msgs_free(in->msgs, in->n_msgs);
  free(in);
}

static char *dupn(const char *s) { return s ? strdup(s) : NULL; }

static int push_msg(struct gen_in *in, const char *role, const char *content) {
  struct cll__msg *m = realloc(in->msgs, (in->n_msgs + 1) * sizeof(*m));
  if (!m)
    return CLL_ENOMEM;
  in->msgs = m;
  m[in->n_msgs].role = strdup(role);
  m[in->n_msgs].content = strdup(content ? content : "");
  for (char *c = m[in->n_msgs].role; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  in->n_msgs++;
  return 0;
}

/* Tokenizes text after the context tokens. */
static int tokenize_into(cll__gen *g, const cll__mtext *t, const struct gen_in *in,
                         const char *text, cll_err *err) {
  int32_t *toks = NULL, n = 0;
  int rc = cll__tokenize(t, text, strlen(text), in->n_context == 0, true, &toks, &n, err);
  if (rc != 0)
    return rc;
  free(g->prompt);
  g->prompt = malloc((size_t)(in->n_context + n + 1) * sizeof(int32_t));
  if (!g->prompt) {
    free(toks);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  if (in->n_context)
    memcpy(g->prompt, in->context, (size_t)in->n_context * sizeof(int32_t));
  memcpy(g->prompt + in->n_context, toks, (size_t)n * sizeof(int32_t));
  g->n_prompt = in->n_context + n;
  free(toks);
  return 0;
}

/* Renders the messages; while the prompt does not fit num_ctx and truncate
 * is on, drops the oldest message that is neither a system message nor the
 * last one (Ollama's chatPrompt). Work thread. */
static int prepare_messages(cll__gen *g, const cll__mtext *t, cll_err *err) {
  struct gen_in *in = g->pdata;
  const char *tmpl = in->tmpl ? in->tmpl : g->ref.template_text;
  size_t first = 0; /* messages before this index (non-system) are dropped */
  for (;;) {
    struct cll__msg *view = malloc((in->n_msgs + 1) * sizeof(*view));
    if (!view)
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < in->n_msgs; i++)
      if (i >= first || strcmp(in->msgs[i].role, "system") == 0)
        view[n++] = in->msgs[i];
    char *text = NULL;
    int rc = cll__render_messages(tmpl, view, n, &text, err);
    free(view);
    if (rc != 0)
      return rc;
    rc = tokenize_into(g, t, in, text, err);
    free(text);
    if (rc != 0)
      return rc;
    if (!g->truncate || g->n_prompt <= in->n_ctx)
      return 0;
    /* Find the next droppable message. */
    size_t next = first;
    while (next + 1 < in->n_msgs && strcmp(in->msgs[next].role, "system") == 0)
      next++;
    if (next + 1 >= in->n_msgs)
      return 0; /* only the last message left: the scheduler truncates tokens */
    first = next + 1;
    g->prompt_truncated = true;
    fprintf(stderr, "level=WARN source=api msg=\"dropping oldest chat message to fit num_ctx\" "
                    "num_ctx=%lld prompt=%d\n",
            (long long)in->n_ctx, g->n_prompt);
  }
}

static int prepare_generate(cll__gen *g, const cll__mtext *t, cll_err *err) {
  struct gen_in *in = g->pdata;
  if (in->raw)
    return tokenize_into(g, t, in, in->prompt, err);
  if (in->suffix && in->suffix[0]) {
    char *text = NULL;
    int rc = cll__render_suffix(in->tmpl ? in->tmpl : g->ref.template_text, in->prompt,
                                in->suffix, &text, err);
    if (rc != 0)
      return rc;
    rc = tokenize_into(g, t, in, text, err);
    free(text);
    return rc;
  }
  return prepare_messages(g, t, err);
}

/* The model's SYSTEM, or the seed's options.system, or the request's. */
static const char *pick_system(cll__gen *g, const char *req_system) {
  if (req_system)
    return req_system;
  if (g->opts.system)
    return g->opts.system;
  return g->ref.system_text;
}

/* Adds the model's stored MESSAGES layer. */
static int add_model_messages(cll__gen *g, struct gen_in *in) {
  json_t *m = g->ref.messages, *v;
  size_t i;
  if (!json_is_array(m))
    return 0;
  json_array_foreach(m, i, v) {
    const char *role = json_string_value(json_object_get(v, "role"));
    const char *content = json_string_value(json_object_get(v, "content"));
    if (role && push_msg(in, role, content) != 0)
      return CLL_ENOMEM;
  }
  return 0;
}

static int64_t seq_ctx(cll__gen *g) {
  return g->opts.num_ctx > 0 ? g->opts.num_ctx : 4096;
}

/* "think": true/false or low|medium|high|max. None of the models cllama
 * runs has the thinking capability, so true (or a level) is refused as
 * Ollama refuses it for such models. Returns false after answering. */
static bool check_think(cll__gen *g, const char *model) {
  json_t *think = json_object_get(g->body, "think");
  if (json_is_string(think)) {
    const char *t = json_string_value(think);
    if (strcmp(t, "low") && strcmp(t, "medium") && strcmp(t, "high") && strcmp(t, "max")) {
      char msg[700];
      snprintf(msg, sizeof(msg),
               "invalid think value: \"%.500s\" (must be \"high\", \"medium\", \"low\", "
               "\"max\", true, or false)",
               t);
      cll__gen_fail(g, 400, msg);
      return false;
    }
  }
  if (json_is_true(think) || json_is_string(think)) {
    char msg[700];
    snprintf(msg, sizeof(msg), "\"%s\" does not support thinking", model);
    cll__gen_fail(g, 400, msg);
    return false;
  }
  return cll__gen_format(g, json_object_get(g->body, "format"), NULL);
}

/* ---------------------------------------------------------------- generate */

static void on_generate(cll_request *req, void *ud) {
  json_t *body = cll_api_body_object(req);
  if (!body)
    return;
  bool failed = false;
  const char *model = cll_api_opt_string(req, body, "model", &failed);
  const char *prompt = failed ? NULL : cll_api_opt_string(req, body, "prompt", &failed);
  const char *system = failed ? NULL : cll_api_opt_string(req, body, "system", &failed);
  const char *tmpl = failed ? NULL : cll_api_opt_string(req, body, "template", &failed);
  const char *suffix = failed ? NULL : cll_api_opt_string(req, body, "suffix", &failed);
  if (failed) {
    json_decref(body);
    return;
  }
  json_t *raw_v = json_object_get(body, "raw");
  bool raw = json_is_true(raw_v);
  json_t *ctx_v = json_object_get(body, "context");
  if (ctx_v && !json_is_null(ctx_v) && !json_is_array(ctx_v)) {
    json_decref(body);
    cll_api_error(req, 400, "json: cannot unmarshal into Go struct field GenerateRequest.context "
                            "of type []int");
    return;
  }
  size_t n_ctx_toks = json_is_array(ctx_v) ? json_array_size(ctx_v) : 0;
  if (raw && ((tmpl && *tmpl) || (system && *system) || n_ctx_toks > 0)) {
    json_decref(body);
    cll_api_error(req, 400, "raw mode does not support template, system, or context");
    return;
  }
  if (!model || !*model) {
    json_decref(body);
    cll_api_error(req, 404, "model '' not found");
    return;
  }
  cll__gen *g = cll__gen_new(req, body, CLL__GEN_GENERATE);
  if (!g || !cll__gen_common(g, model))
    return;
  if (!check_think(g, model))
    return;
  json_t *top = json_object_get(body, "top_logprobs");
  if (json_is_integer(top) && (json_integer_value(top) < 0 || json_integer_value(top) > 20)) {
    cll__gen_fail(g, 400, "top_logprobs must be between 0 and 20");
    return;
  }
  if (!prompt || !*prompt) {
    if (g->keep_alive_set && g->keep_alive_ns == 0)
      cll__gen_unload(g);
    else
      cll__gen_start(g); /* load only */
    return;
  }
  if (suffix && *suffix && !cll__template_has(tmpl ? tmpl : g->ref.template_text, "Suffix")) {
    char msg[700];
    snprintf(msg, sizeof(msg), "%s does not support insert", g->ref.full);
    cll__gen_fail(g, 400, msg);
    return;
  }
  struct gen_in *in = calloc(1, sizeof(*in));
  if (!in) {
    cll__gen_fail(g, 500, "out of memory");
    return;
  }
  g->pdata = in;
  g->pfree = gen_in_free;
  g->prepare = prepare_generate;
  g->want_context = !raw;
  in->prompt = dupn(prompt);
  in->suffix = dupn(suffix);
  in->tmpl = tmpl && *tmpl ? strdup(tmpl) : NULL;
  in->raw = raw;
  in->n_ctx = seq_ctx(g);
  if (n_ctx_toks) {
    in->context = malloc(n_ctx_toks * sizeof(int32_t));
    if (!in->context) {
      cll__gen_fail(g, 500, "out of memory");
      return;
    }
    for (size_t i = 0; i < n_ctx_toks; i++) {
      json_t *x = json_array_get(ctx_v, i);
      if (!json_is_integer(x)) {
        cll__gen_fail(g, 400, "json: cannot unmarshal into Go struct field "
                              "GenerateRequest.context of type int");
        return;
      }
      in->context[i] = (int32_t)json_integer_value(x);
    }
    in->n_context = (int32_t)n_ctx_toks;
    fprintf(stderr, "level=WARN source=api msg=\"the context field is deprecated\"\n");
  }
  if (!raw) {
    const char *sys = pick_system(g, system);
    if ((sys && *sys && push_msg(in, "system", sys) != 0) ||
        (n_ctx_toks == 0 && add_model_messages(g, in) != 0) ||
        push_msg(in, "user", prompt) != 0) {
      cll__gen_fail(g, 500, "out of memory");
      return;
    }
  }
  cll__gen_start(g);
}

/* ---------------------------------------------------------------- chat */

static void on_chat(cll_request *req, void *ud) {
  json_t *body = cll_api_body_object(req);
  if (!body)
    return;
  bool failed = false;
  const char *model = cll_api_opt_string(req, body, "model", &failed);
  if (failed) {
    json_decref(body);
    return;
  }
  if (!model || !*model) {
    json_decref(body);
    cll_api_error(req, 400, "model is required");
    return;
  }
  json_t *msgs = json_object_get(body, "messages");
  if (msgs && !json_is_null(msgs) && !json_is_array(msgs)) {
    json_decref(body);
    cll_api_error(req, 400, "json: cannot unmarshal into Go struct field ChatRequest.messages "
                            "of type []api.Message");
    return;
  }
  size_t i;
  json_t *m;
  json_array_foreach(msgs, i, m) {
    json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
    if (!json_is_object(m) || (role && !json_is_string(role)) ||
        (content && !json_is_null(content) && !json_is_string(content))) {
      json_decref(body);
      cll_api_error(req, 400, "json: cannot unmarshal into Go struct field "
                              "ChatRequest.messages of type api.Message");
      return;
    }
  }
  cll__gen *g = cll__gen_new(req, body, CLL__GEN_CHAT);
  if (!g || !cll__gen_common(g, model))
    return;
  json_t *tools = json_object_get(body, "tools");
  if (json_is_array(tools) && json_array_size(tools) > 0 &&
      !cll__template_has(g->ref.template_text, "Tools")) {
    char msg[700];
    snprintf(msg, sizeof(msg), "%s does not support tools", g->ref.full);
    cll__gen_fail(g, 400, msg);
    return;
  }
  if (!check_think(g, model))
    return;
  if (json_array_size(msgs) == 0) {
    if (g->keep_alive_set && g->keep_alive_ns == 0)
      cll__gen_unload(g);
    else
      cll__gen_start(g);
    return;
  }
  struct gen_in *in = calloc(1, sizeof(*in));
  if (!in) {
    cll__gen_fail(g, 500, "out of memory");
    return;
  }
  g->pdata = in;
  g->pfree = gen_in_free;
  g->prepare = prepare_messages;
  in->n_ctx = seq_ctx(g);
  const char *first_role = json_string_value(json_object_get(json_array_get(msgs, 0), "role"));
  bool has_system = first_role && strcasecmp(first_role, "system") == 0;
  const char *sys = pick_system(g, NULL);
  int rc = 0;
  if (!has_system && sys && *sys)
    rc = push_msg(in, "system", sys);
  if (rc == 0)
    rc = add_model_messages(g, in);
  json_array_foreach(msgs, i, m) {
    if (rc != 0)
      break;
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *content = json_string_value(json_object_get(m, "content"));
    rc = push_msg(in, role ? role : "user", content);
  }
  if (rc != 0) {
    cll__gen_fail(g, 500, "out of memory");
    return;
  }
  cll__gen_start(g);
}

int cll_api_generate_register(cll_api *api) {
  int rc = cll_server_route(api->server, "POST", "/api/generate", on_generate, api);
  if (rc == 0)
    rc = cll_server_route(api->server, "POST", "/api/chat", on_chat, api);
  return rc;
}
