/* generate.c — POST /api/generate and POST /api/chat: request parsing and
 * validation, and prompt assembly (§1.4, §1.5, §5.3). The run itself is
 * gen_core.c's.
 *
 * One prompt path: every request (native, or translated from /v1 and
 * /v1/messages into a native body) becomes one message array in Ollama's
 * shape (role, content, thinking, images, tool_calls, tool_name,
 * tool_call_id) plus tools and think, and one render through the model's
 * parsed template (tmpl.h: parsed once per template, not per request) with
 * the template module's prompt assembly (truncation, image markers). */
#include "gen_core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct gen_in {
  bool chat;
  const char *prompt, *suffix, *system; /* generate's fields (borrowed from g->body) */
  bool raw, has_template;
  int32_t *context; /* (n_context) deprecated "context" tokens */
  int32_t n_context;
  json_t *msgs;  /* chat: system?, stored messages, request messages (new) */
  int64_t n_ctx; /* for history truncation */
};

static int grammar_after_thoughts(cll__gen *g, cll_err *err);

static void gen_in_free(void *p) {
  struct gen_in *in = p;
  if (!in)
    return;
  free(in->context);
  json_decref(in->msgs);
  free(in);
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

struct counter {
  const cll__mtext *t;
  int32_t extra; /* context tokens in front */
};

static int count_tokens(void *ud, const char *text, size_t len) {
  struct counter *c = ud;
  int32_t *toks = NULL, n = 0;
  int rc = cll__tokenize(c->t, text, len, c->extra == 0, true, &toks, &n, NULL);
  free(toks);
  return rc != 0 ? rc : (int)(n + c->extra);
}

/* The thinking state the template sees (Ollama: Think, ThinkLevel,
 * IsThinkSet; think:true is level "medium"). */
static void think_values(const cll__gen *g, bool *think, const char **level, bool *set) {
  *set = g->think_set;
  *think = g->think_set && g->think;
  *level = !g->think_set ? NULL : g->think_level ? g->think_level : g->think ? "medium" : NULL;
}

/* Renders the prompt (work thread) and tokenizes it. */
static int prepare(cll__gen *g, const cll__mtext *t, cll_err *err) {
  struct gen_in *in = g->pdata;
  if (in->raw) {
    if (g->debug_render) {
      g->rendered = strdup(in->prompt ? in->prompt : "");
      return g->rendered ? 0 : cll_err_set(err, CLL_ENOMEM, "out of memory");
    }
    return tokenize_into(g, t, in, in->prompt, err);
  }
  const cll_template *tm = cll__tmpl_t(g->tmpl);
  struct counter cnt = {t, in->n_context};
  struct cll_chat_prompt_opts o;
  cll_chat_prompt_opts_defaults(&o);
  o.truncate = g->truncate;
  o.num_ctx = (int)in->n_ctx;
  o.count = count_tokens;
  o.count_ud = &cnt;
  bool think, set;
  const char *level;
  think_values(g, &think, &level, &set);
  char *text = NULL;
  int rc;
  if (in->chat) {
    struct cll_tmpl_message *msgs = NULL;
    size_t n = 0;
    rc = cll_tmpl_messages_from_json(in->msgs, &msgs, &n, err);
    if (rc != 0)
      return rc;
    struct cll_tmpl_values v = {.messages = msgs,
                                .n_messages = n,
                                .tools = json_array_size(g->tools) ? g->tools : NULL,
                                .think = think,
                                .think_level = level,
                                .is_think_set = set};
    size_t first = 0;
    rc = cll_chat_prompt(tm, &v, &o, &text, NULL, &first, err);
    free(msgs);
    if (rc == 0 && first > 0) {
      g->prompt_truncated = true;
      fprintf(stderr,
              "level=WARN source=api msg=\"dropped the oldest chat messages to fit "
              "num_ctx\" num_ctx=%lld dropped=%zu\n",
              (long long)in->n_ctx, first);
    }
  } else {
    struct cll_tmpl_message *stored = NULL;
    size_t n_stored = 0;
    if (in->n_context == 0 && json_is_array(g->ref.messages)) {
      rc = cll_tmpl_messages_from_json(g->ref.messages, &stored, &n_stored, err);
      if (rc != 0)
        return rc;
    }
    struct cll_generate_input gi = {.prompt = in->prompt,
                                    .suffix = in->suffix,
                                    .system = in->system,
                                    .model_system =
                                        g->opts.system ? g->opts.system : g->ref.system_text,
                                    .model_messages = stored,
                                    .n_model_messages = n_stored,
                                    .has_context = in->n_context > 0,
                                    .n_images = g->n_images,
                                    .template_override = in->has_template,
                                    .think = think,
                                    .think_level = level,
                                    .is_think_set = set};
    rc = cll_generate_prompt(tm, &gi, &o, &text, NULL, err);
    free(stored);
  }
  if (rc != 0)
    return rc;
  /* The prompt may end inside the thinking block (the template opened it):
   * then the output starts with thoughts. */
  if (g->outcfg.think_open) {
    size_t k = strlen(text), ol = strlen(g->outcfg.think_open);
    while (k > 0 && isspace((unsigned char)text[k - 1]))
      k--;
    g->outcfg.in_thinking = k >= ol && memcmp(text + k - ol, g->outcfg.think_open, ol) == 0;
  }
  rc = grammar_after_thoughts(g, err);
  if (rc != 0) {
    free(text);
    return rc;
  }
  if (g->debug_render) {
    g->rendered = text;
    return 0;
  }
  rc = tokenize_into(g, t, in, text, err);
  free(text);
  return rc;
}

static int64_t seq_ctx(cll__gen *g) {
  return g->opts.num_ctx > 0 ? g->opts.num_ctx : 4096;
}

/* Go's base64.StdEncoding.DecodeString check: the offset of the first bad
 * byte, or -1 when s is valid. */
static long base64_bad_at(const char *s) {
  size_t n = strlen(s), i = 0;
  for (; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isalnum(c) || c == '+' || c == '/')
      continue;
    if (c == '=')
      break;
    return (long)i;
  }
  size_t data = i, pad = 0;
  for (; i < n && s[i] == '='; i++)
    pad++;
  if (i < n)
    return (long)i;
  if ((data + pad) % 4 != 0 || pad > 2 || (pad && (data + pad) % 4 != 0))
    return (long)(data % 4 == 1 ? data - 1 : data);
  return -1;
}

/* images (an array of base64 strings) of one message or the request:
 * counts them into g->n_images; 400 and false on a bad one. */
static bool check_images(cll__gen *g, json_t *imgs) {
  if (!imgs || json_is_null(imgs))
    return true;
  if (!json_is_array(imgs)) {
    cll__gen_fail(g, 400,
                  "json: cannot unmarshal into Go struct field images of type "
                  "[]api.ImageData");
    return false;
  }
  size_t i;
  json_t *im;
  json_array_foreach(imgs, i, im) {
    const char *s = json_string_value(im);
    long bad = s ? base64_bad_at(s) : 0;
    if (bad >= 0) {
      char msg[128];
      snprintf(msg, sizeof(msg), "illegal base64 data at input byte %ld", bad);
      cll__gen_fail(g, 400, msg);
      return false;
    }
    g->n_images++;
  }
  return true;
}

/* (Re)compiles g->grammar from g->gram_src with the text around the
 * value; lazy: it starts after the thinking block closes. */
static int compile_calls(cll__gen *g, bool lazy, cll_err *err) {
  struct cll_grammar_opts o;
  cll_grammar_opts_defaults(&o);
  o.prefix = g->gram_prefix;
  o.suffix = g->gram_suffix;
  if (lazy)
    o.trigger = g->outcfg.think_close;
  size_t n = json_array_size(g->gram_src);
  const json_t **arr = malloc((n ? n : 1) * sizeof(*arr));
  if (!arr)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  for (size_t k = 0; k < n; k++)
    arr[k] = json_array_get(g->gram_src, k);
  cll_grammar *ng = NULL;
  int rc = cll_grammar_compile_any(arr, n, &o, &ng, err);
  free(arr);
  if (rc != 0)
    return rc;
  cll_grammar_free(g->grammar);
  g->grammar = ng;
  g->gram_lazy = lazy;
  return 0;
}

/* prepare's half of the lazy start: when the rendered prompt opened the
 * thinking block, the grammar must wait for it to close. Work thread. */
static int grammar_after_thoughts(cll__gen *g, cll_err *err) {
  if (!g->grammar || g->gram_lazy || !g->outcfg.in_thinking || !g->gram_src)
    return 0;
  return compile_calls(g, true, err);
}

/* The call a template's format implies, as a schema for one tool: Llama
 * 3.x's bare {"name", "parameters"}, or {"name", "arguments"} after a tag
 * (with the text around it in g->gram_prefix / gram_suffix). New. */
static json_t *call_schema(const char *tag, const json_t *tool) {
  const json_t *fn = json_object_get(tool, "function");
  const char *name = json_string_value(json_object_get(fn, "name"));
  json_t *params = json_object_get(fn, "parameters");
  if (!name)
    return NULL;
  bool bare = strcmp(tag, "{") == 0;
  const char *key = bare ? "parameters" : "arguments";
  json_t *p = json_is_object(params) ? json_incref(params) : json_pack("{s:s}", "type", "object");
  return json_pack("{s:s,s:{s:{s:s},s:o},s:[s,s],s:b}", "type", "object", "properties", "name",
                   "const", name, key, p, "required", "name", key, "additionalProperties", 0);
}

/* tool_choice (OpenAI's, which /v1 and /v1/messages map to; Ollama has none):
 * "auto" (default), "none" (tools neither shown nor parsed), "required"
 * (some call), or {"type":"function","function":{"name":..}} (that one).
 * The last two are enforced by a grammar: the model must emit one call, in
 * the template's format, whose arguments match the tool's parameters.
 * Returns false after answering. */
static bool check_tool_choice(cll__gen *g, const struct cll__tmpl_caps *caps) {
  json_t *tc = json_object_get(g->body, "tool_choice");
  if (!tc || json_is_null(tc))
    return true;
  const char *mode = json_string_value(tc);
  const char *want = NULL;
  if (json_is_object(tc)) {
    want = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    if (!want) /* the Responses API's flat {"type":"function","name":..} */
      want = json_string_value(json_object_get(tc, "name"));
    if (!want) {
      cll__gen_fail(g, 400, "tool_choice: a function needs a name");
      return false;
    }
    mode = "function";
  }
  if (!mode || (strcmp(mode, "auto") && strcmp(mode, "none") && strcmp(mode, "required") &&
                strcmp(mode, "function"))) {
    cll__gen_fail(g, 400,
                  "invalid tool_choice: must be \"auto\", \"none\", \"required\" or "
                  "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    return false;
  }
  if (strcmp(mode, "auto") == 0)
    return true;
  if (strcmp(mode, "none") == 0) {
    g->tools = NULL;
    g->outcfg.tool_tag = NULL;
    g->outcfg.tools = NULL;
    return true;
  }
  if (!g->tools) {
    cll__gen_fail(g, 400, "tool_choice requires tools");
    return false;
  }
  if (g->grammar) {
    cll__gen_fail(g, 400,
                  "tool_choice \"required\" or a named function cannot be combined "
                  "with format");
    return false;
  }
  const char *tag = caps->tool_tag[0] ? caps->tool_tag : "{";
  json_t *schemas = json_array();
  size_t i;
  json_t *t;
  json_array_foreach(g->tools, i, t) {
    const char *name = json_string_value(json_object_get(json_object_get(t, "function"), "name"));
    if (want && (!name || strcmp(name, want) != 0))
      continue;
    json_t *sch = call_schema(tag, t);
    if (sch)
      json_array_append_new(schemas, sch);
  }
  if (json_array_size(schemas) == 0) {
    json_decref(schemas);
    char msg[400];
    snprintf(msg, sizeof(msg), "tool_choice names a function not in tools: \"%.200s\"",
             want ? want : "");
    cll__gen_fail(g, 400, msg);
    return false;
  }
  /* The text around the call, by the template's format. */
  if (strcmp(tag, "<tool_call>") == 0) {
    g->gram_prefix = "<tool_call>\n";
    g->gram_suffix = "\n</tool_call>";
  } else if (strcmp(tag, "[TOOL_CALLS]") == 0) {
    g->gram_prefix = "[TOOL_CALLS][";
    g->gram_suffix = "]";
  } else if (strcmp(tag, "{") != 0) {
    g->gram_prefix = caps->tool_tag;
  }
  g->gram_src = schemas;
  cll_err err = {0};
  int rc = compile_calls(g, g->gram_lazy, &err);
  if (rc != 0) {
    char msg[sizeof(err.msg) + 40];
    snprintf(msg, sizeof(msg), "tool parameters: %s", err.msg[0] ? err.msg : cll_strerror(rc));
    cll__gen_fail(g, rc == CLL_ENOMEM ? 500 : 400, msg);
    return false;
  }
  return true;
}

/* think, tools, images, logprobs and the template: everything that depends
 * on what the model's template can do. Returns false after answering. */
static bool check_caps(cll__gen *g, const char *model, const char *tmpl_override) {
  cll_err err = {0};
  if (cll__tmpl_get(tmpl_override ? tmpl_override : g->ref.template_text, &g->tmpl, &err) != 0) {
    cll__gen_fail(g, 400, err.msg);
    return false;
  }
  const struct cll__tmpl_caps *caps = cll__tmpl_caps(g->tmpl);
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
    g->think_set = g->think = true;
    g->think_level = t;
  } else if (json_is_boolean(think)) {
    g->think_set = true;
    g->think = json_is_true(think);
  } else if (think && !json_is_null(think)) {
    cll__gen_fail(g, 400,
                  "invalid think value: must be a boolean or one of \"high\", "
                  "\"medium\", \"low\", \"max\"");
    return false;
  }
  /* The Anthropic route asks for thoughts only where the model has them. */
  if (!g->think_set && caps->thinking &&
      json_is_true(json_object_get(g->body, "_think_if_capable")))
    g->think_set = g->think = true;
  if (g->think && !caps->thinking) {
    char msg[700];
    snprintf(msg, sizeof(msg), "\"%s\" does not support thinking", model);
    cll__gen_fail(g, 400, msg);
    return false;
  }
  json_t *tools = json_object_get(g->body, "tools");
  if (tools && !json_is_null(tools) && !json_is_array(tools)) {
    cll__gen_fail(g, 400,
                  "json: cannot unmarshal into Go struct field ChatRequest.tools of "
                  "type api.Tools");
    return false;
  }
  if (json_array_size(tools) > 0) {
    if (!caps->tools) {
      char msg[700];
      snprintf(msg, sizeof(msg), "%s does not support tools", g->ref.full);
      cll__gen_fail(g, 400, msg);
      return false;
    }
    g->tools = tools;
    g->outcfg.tool_tag = caps->tool_tag[0] ? caps->tool_tag : "{";
    g->outcfg.tools = tools;
  }
  /* Thoughts are separated unless the request turned thinking off. */
  if (caps->thinking && !(g->think_set && !g->think)) {
    g->outcfg.think_open = caps->think_open;
    g->outcfg.think_close = caps->think_close;
  }
  if (g->n_images > 0) {
    /* No model cllama runs has a vision projector yet. */
    char msg[700];
    snprintf(msg, sizeof(msg), "\"%s\" does not support images", model);
    cll__gen_fail(g, 400, msg);
    return false;
  }
  json_t *top = json_object_get(g->body, "top_logprobs");
  if (json_is_integer(top) && (json_integer_value(top) < 0 || json_integer_value(top) > 20)) {
    cll__gen_fail(g, 400, "top_logprobs must be between 0 and 20");
    return false;
  }
  json_t *lp = json_object_get(g->body, "logprobs");
  if ((lp && !json_is_null(lp) && !json_is_boolean(lp)) ||
      (top && !json_is_null(top) && !json_is_integer(top))) {
    cll__gen_fail(g, 400,
                  "json: cannot unmarshal logprobs: logprobs must be a bool and "
                  "top_logprobs an integer");
    return false;
  }
  g->logprobs = json_is_true(lp);
  g->top_logprobs = g->logprobs && json_is_integer(top) ? (int)json_integer_value(top) : 0;
  /* The format applies to the answer, after the thoughts when the request
   * asked for them (recompiled lazy by prepare when the prompt opens the
   * thinking block itself). */
  g->gram_lazy = g->outcfg.think_close && g->think_set && g->think;
  struct cll_grammar_opts gopt;
  cll_grammar_opts_defaults(&gopt);
  if (g->gram_lazy)
    gopt.trigger = g->outcfg.think_close;
  json_t *fmt = json_object_get(g->body, "format");
  if (!cll__gen_format(g, fmt, &gopt))
    return false;
  if (g->grammar)
    g->gram_src = json_pack("[O]", fmt);
  if (!check_tool_choice(g, caps))
    return false;
  g->debug_render = json_is_true(json_object_get(g->body, "_debug_render_only"));
  return true;
}

/* ---------------------------------------------------------------- generate */

static void on_generate(cll_request *req, void *ud) {
  const char *model;
  json_t *body = cll_api_body_model(req, NULL, 0, &model);
  if (!body)
    return;
  bool failed = false;
  const char *prompt = cll_api_opt_string(req, body, "prompt", &failed);
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
    cll_api_error(req, 400,
                  "json: cannot unmarshal into Go struct field GenerateRequest.context "
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
  if ((!prompt || !*prompt) && g->keep_alive_set && g->keep_alive_ns == 0) {
    cll__gen_unload(g);
    return;
  }
  if (!check_images(g, json_object_get(body, "images")) ||
      !check_caps(g, model, tmpl && *tmpl ? tmpl : NULL))
    return;
  if (!prompt || !*prompt) {
    cll__gen_start(g); /* load only */
    return;
  }
  if (suffix && *suffix && !cll__tmpl_caps(g->tmpl)->insert) {
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
  g->prepare = prepare;
  g->want_context = !raw;
  in->prompt = prompt;
  in->suffix = suffix;
  in->system = system;
  in->has_template = tmpl && *tmpl;
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
        cll__gen_fail(g, 400,
                      "json: cannot unmarshal into Go struct field "
                      "GenerateRequest.context of type int");
        return;
      }
      in->context[i] = (int32_t)json_integer_value(x);
    }
    in->n_context = (int32_t)n_ctx_toks;
    fprintf(stderr, "level=WARN source=api msg=\"the context field is deprecated\"\n");
  }
  cll__gen_start(g);
}

/* ---------------------------------------------------------------- chat */

/* The model's SYSTEM (or the seed's options.system) when the request has no
 * system message first, the model's stored MESSAGES, then the request's:
 * one new array of native messages. */
static json_t *chat_messages(cll__gen *g, json_t *msgs) {
  json_t *out = json_array();
  if (!out)
    return NULL;
  const char *first_role = json_string_value(json_object_get(json_array_get(msgs, 0), "role"));
  bool has_system = first_role && strcasecmp(first_role, "system") == 0;
  const char *sys = g->opts.system ? g->opts.system : g->ref.system_text;
  if (!has_system && sys && *sys)
    json_array_append_new(out, json_pack("{s:s,s:s}", "role", "system", "content", sys));
  if (json_is_array(g->ref.messages))
    json_array_extend(out, g->ref.messages);
  json_array_extend(out, msgs);
  return out;
}

static void on_chat(cll_request *req, void *ud) {
  const char *model;
  json_t *body = cll_api_body_model(req, NULL, 400, &model);
  if (!body)
    return;
  json_t *msgs = json_object_get(body, "messages");
  if (msgs && !json_is_null(msgs) && !json_is_array(msgs)) {
    json_decref(body);
    cll_api_error(req, 400,
                  "json: cannot unmarshal into Go struct field ChatRequest.messages "
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
      cll_api_error(req, 400,
                    "json: cannot unmarshal into Go struct field "
                    "ChatRequest.messages of type api.Message");
      return;
    }
  }
  cll__gen *g = cll__gen_new(req, body, CLL__GEN_CHAT);
  if (!g || !cll__gen_common(g, model))
    return;
  json_array_foreach(msgs, i, m) {
    if (!check_images(g, json_object_get(m, "images")))
      return;
  }
  if (!check_caps(g, model, NULL))
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
  g->prepare = prepare;
  in->chat = true;
  in->n_ctx = seq_ctx(g);
  in->msgs = chat_messages(g, msgs);
  cll_err err = {0};
  struct cll_tmpl_message *tm = NULL;
  size_t n = 0;
  if (!in->msgs) {
    cll__gen_fail(g, 500, "out of memory");
    return;
  }
  if (cll_tmpl_messages_from_json(in->msgs, &tm, &n, &err) != 0) {
    cll__gen_fail(g, 400, err.msg); /* a field of the wrong type */
    return;
  }
  free(tm);
  cll__gen_start(g);
}

int cll_api_generate_register(cll_api *api) {
  static const struct cll_api_route routes[] = {
      {"POST", "/api/generate", on_generate, false},
      {"POST", "/api/chat", on_chat, false},
  };
  return CLL_API_ROUTES(api, routes);
}
