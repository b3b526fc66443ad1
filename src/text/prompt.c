/* prompt.c — prompt assembly over the template engine: the template data
 * Ollama passes (Template.Execute), chat prompts with truncation and image
 * markers, /api/generate prompts, and messages from a request's JSON.
 * See template_parse.c for the design of the whole module. */
#include "template_int.h"

/* ================================================================= data */

static json_t *jstr(const char *s) {
  return json_string(s ? s : "");
}

/* One message as the template sees it; content replaces m->content when
 * non-NULL. */
static json_t *message_json(const struct cll_tmpl_message *m, const char *content) {
  json_t *o = json_object();
  if (o == NULL)
    return NULL;
  int rc = 0;
  rc |= json_object_set_new(o, "role", jstr(m->role));
  rc |= json_object_set_new(o, "content", jstr(content ? content : m->content));
  rc |= json_object_set_new(o, "thinking", jstr(m->thinking));
  if (m->n_images > 0) {
    json_t *imgs = json_array();
    for (size_t i = 0; imgs && i < m->n_images; i++)
      rc |= json_array_append_new(imgs, json_string(""));
    rc |= json_object_set_new(o, "images", imgs);
  }
  if (m->n_tool_calls > 0) {
    json_t *calls = json_array();
    for (size_t i = 0; calls && i < m->n_tool_calls; i++) {
      const struct cll_tmpl_tool_call *c = &m->tool_calls[i];
      json_t *args = json_is_object(c->arguments) ? json_deep_copy(c->arguments) : json_object();
      json_t *fn = json_pack("{s:I,s:s,s:o*}", "index", (json_int_t)c->index, "name",
                             c->name ? c->name : "", "arguments", args);
      json_t *call = fn ? json_pack("{s:s,s:o}", "id", c->id ? c->id : "", "function", fn) : NULL;
      rc |= call ? json_array_append_new(calls, call) : -1;
    }
    rc |= json_object_set_new(o, "tool_calls", calls);
  }
  rc |= json_object_set_new(o, "tool_name", jstr(m->tool_name));
  rc |= json_object_set_new(o, "tool_call_id", jstr(m->tool_call_id));
  if (rc != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static int set_think(json_t *root, const struct cll_tmpl_values *v) {
  int rc = 0;
  rc |= json_object_set_new(root, "Think", json_boolean(v->think));
  rc |= json_object_set_new(root, "ThinkLevel", jstr(v->think_level));
  rc |= json_object_set_new(root, "IsThinkSet", json_boolean(v->is_think_set));
  return rc;
}

static bool nonempty(const char *s) {
  return s != NULL && s[0] != '\0';
}

static const char *str_or_empty(const char *s) {
  return s ? s : "";
}

int cll_template_execute(const cll_template *t, const struct cll_tmpl_values *v, char **out,
                         size_t *out_len, cll_err *err) {
  *out = NULL;
  if (out_len)
    *out_len = 0;
  cll_buf b = {.max = MAX_OUTPUT};
  int rc = 0;
  json_t *root = json_object();
  if (root == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");

  if (nonempty(v->prompt) && nonempty(v->suffix)) {
    if (json_object_set_new(root, "Prompt", jstr(v->prompt)) ||
        json_object_set_new(root, "Suffix", jstr(v->suffix)) ||
        json_object_set_new(root, "Response", json_string("")) || set_think(root, v)) {
      json_decref(root);
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    }
    rc = cll__tpl_run(t, false, root, &b, err);
    goto done;
  }

  /* collate: System = every system content joined with "\n\n"; consecutive
   * messages with the same role (tool excepted) merge into the first. */
  cll_buf sys = {.max = MAX_OUTPUT};
  bool have_sys = false;
  json_t *msgs = json_array();
  if (msgs == NULL) {
    json_decref(root);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  const char *prev_role = NULL;
  for (size_t i = 0; i < v->n_messages; i++) {
    const struct cll_tmpl_message *m = &v->messages[i];
    const char *role = str_or_empty(m->role);
    if (strcmp(role, "system") == 0) {
      if (have_sys)
        buf_puts(&sys, "\n\n");
      buf_puts(&sys, str_or_empty(m->content));
      have_sys = true;
    }
    if (prev_role != NULL && strcmp(prev_role, role) == 0 && strcmp(role, "tool") != 0) {
      json_t *last = json_array_get(msgs, json_array_size(msgs) - 1);
      json_t *c = json_object_get(last, "content");
      cll_buf mb = {.max = MAX_OUTPUT};
      buf_add(&mb, json_string_value(c), json_string_length(c));
      buf_puts(&mb, "\n\n");
      buf_puts(&mb, str_or_empty(m->content));
      if (mb.err ||
          json_object_set_new(last, "content", json_stringn(mb.data ? mb.data : "", mb.len))) {
        free(mb.data);
        rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
        break;
      }
      free(mb.data);
    } else if (json_array_append_new(msgs, message_json(m, NULL)) != 0) {
      rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
      break;
    }
    prev_role = role;
  }
  if (rc != 0 || sys.err) {
    free(sys.data);
    json_decref(msgs);
    json_decref(root);
    return rc ? rc : cll_err_set(err, CLL_ENOMEM, "out of memory");
  }

  if (t->uses_messages) {
    json_t *tools = v->tools != NULL ? json_incref((json_t *)v->tools) : json_null();
    if (json_object_set_new(root, "System", json_stringn(sys.data ? sys.data : "", sys.len)) ||
        json_object_set_new(root, "Messages", msgs) || json_object_set_new(root, "Tools", tools) ||
        json_object_set_new(root, "Response", json_string("")) || set_think(root, v)) {
      free(sys.data);
      json_decref(root);
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    }
    free(sys.data);
    rc = cll__tpl_run(t, false, root, &b, err);
    goto done;
  }
  free(sys.data);
  json_decref(root);

  /* Legacy: one render per (system?, user, assistant) turn, then the open
   * turn with the template cut after .Response. */
  const char *system = "", *prompt = "", *response = "";
  size_t n = json_array_size(msgs);
  for (size_t i = 0; i <= n && rc == 0; i++) {
    bool last = i == n;
    const char *role = "";
    const char *content = "";
    if (!last) {
      json_t *m = json_array_get(msgs, i);
      role = json_string_value(json_object_get(m, "role"));
      content = json_string_value(json_object_get(m, "content"));
    }
    bool flush = last || (strcmp(role, "system") == 0 && (prompt[0] || response[0])) ||
                 (strcmp(role, "user") == 0 && response[0]);
    if (flush) {
      json_t *d = json_object();
      if (d == NULL || json_object_set_new(d, "System", json_string(system)) ||
          json_object_set_new(d, "Prompt", json_string(prompt)) ||
          json_object_set_new(d, "Response", json_string(response)) || set_think(d, v)) {
        json_decref(d);
        rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
        break;
      }
      rc = cll__tpl_run(t, last, d, &b, err);
      system = prompt = response = "";
    }
    if (last)
      break;
    if (strcmp(role, "system") == 0)
      system = content;
    else if (strcmp(role, "user") == 0)
      prompt = content;
    else if (strcmp(role, "assistant") == 0)
      response = content;
  }
  json_decref(msgs);

done:
  if (rc != 0) {
    free(b.data);
    return rc;
  }
  if (b.data == NULL) {
    b.data = malloc(1);
    if (b.data == NULL)
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    b.data[0] = '\0';
  }
  *out = b.data;
  if (out_len)
    *out_len = b.len;
  return 0;
}

/* ====================================================== prompt assembly */

void cll_chat_prompt_opts_defaults(struct cll_chat_prompt_opts *o) {
  *o = (struct cll_chat_prompt_opts){.truncate = true, .num_ctx = 4096};
}

/* Renders [msgs[0..skip) system messages] + msgs[skip..n). */
static int render_from(const cll_template *t, const struct cll_tmpl_values *v,
                       const struct cll_tmpl_message *msgs, size_t n, size_t skip,
                       struct cll_tmpl_message *scratch, char **out, size_t *out_len,
                       cll_err *err) {
  size_t k = 0;
  for (size_t j = 0; j < skip; j++)
    if (msgs[j].role && strcmp(msgs[j].role, "system") == 0)
      scratch[k++] = msgs[j];
  for (size_t j = skip; j < n; j++)
    scratch[k++] = msgs[j];
  struct cll_tmpl_values vv = *v;
  vv.messages = scratch;
  vv.n_messages = k;
  vv.prompt = NULL;
  vv.suffix = NULL;
  return cll_template_execute(t, &vv, out, out_len, err);
}

/* 1 when the render from message `skip` on fits num_ctx, 0 when not, or a
 * negative CLL_E* code. */
static int fits_from(const cll_template *t, const struct cll_tmpl_values *v,
                     const struct cll_chat_prompt_opts *o, const struct cll_tmpl_message *msgs,
                     size_t n, size_t skip, struct cll_tmpl_message *scratch, cll_err *err) {
  char *p;
  size_t plen;
  int rc = render_from(t, v, msgs, n, skip, scratch, &p, &plen, err);
  if (rc != 0)
    return rc < 0 ? rc : CLL_EINVAL;
  int ntok = o->count(o->count_ud, p, plen);
  free(p);
  if (ntok < 0)
    return cll_err_set(err, ntok, "chat prompt: counting tokens failed");
  long long ctx_len = ntok;
  for (size_t j = skip; j < n; j++)
    ctx_len += (long long)o->image_tokens * (long long)msgs[j].n_images;
  return ctx_len <= o->num_ctx ? 1 : 0;
}

int cll_chat_prompt(const cll_template *t, const struct cll_tmpl_values *v,
                    const struct cll_chat_prompt_opts *o, char **out, size_t *out_len,
                    size_t *first_kept, cll_err *err) {
  *out = NULL;
  size_t n = v->n_messages;
  const struct cll_tmpl_message *msgs = v->messages;
  struct cll_tmpl_message *scratch = malloc((n ? n : 1) * sizeof *scratch);
  if (scratch == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  size_t cur = 0;
  int rc = 0;
  if (o->truncate && n > 0) {
    if (o->count == NULL) {
      free(scratch);
      return cll_err_set(err, CLL_EINVAL, "chat prompt: truncation needs a token counter");
    }
    /* The smallest i whose render fits. Dropping messages only shortens
     * the prompt, so fitting is monotone in i: one render when everything
     * fits, else a binary search (O(log n) renders, not one per dropped
     * message). The last message is always kept. */
    int fit = fits_from(t, v, o, msgs, n, 0, scratch, err);
    if (fit < 0) {
      rc = fit;
      goto out;
    }
    if (fit == 0) {
      size_t lo = 1, hi = n - 1; /* the answer is in [lo, hi]; hi always acceptable */
      while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        fit = fits_from(t, v, o, msgs, n, mid, scratch, err);
        if (fit < 0) {
          rc = fit;
          goto out;
        }
        if (fit)
          hi = mid;
        else
          lo = mid + 1;
      }
      cur = n > 1 ? lo : 0;
    }
  }
  /* Image markers for the kept messages, numbered from 0. */
  struct cll_tmpl_message *tagged = malloc((n ? n : 1) * sizeof *tagged);
  char **owned = calloc(n ? n : 1, sizeof *owned);
  if (tagged == NULL || owned == NULL) {
    free(tagged);
    free(owned);
    rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
    goto out;
  }
  memcpy(tagged, msgs, n * sizeof *tagged);
  size_t img = 0;
  for (size_t i = cur; i < n && rc == 0; i++) {
    if (msgs[i].n_images == 0)
      continue;
    const char *content = str_or_empty(msgs[i].content);
    cll_buf prefix = {.max = MAX_OUTPUT}, body = {0};
    buf_puts(&body, content);
    for (size_t k = 0; k < msgs[i].n_images; k++, img++) {
      char tag[32];
      snprintf(tag, sizeof tag, "[img-%zu]", img);
      char *at = body.data ? strstr(body.data, "[img]") : NULL;
      if (at == NULL) {
        buf_puts(&prefix, tag);
      } else {
        cll_buf nb = {.max = MAX_OUTPUT};
        buf_add(&nb, body.data, (size_t)(at - body.data));
        buf_puts(&nb, tag);
        buf_puts(&nb, at + 5);
        free(body.data);
        body = nb;
      }
    }
    buf_add(&prefix, body.data ? body.data : "", body.len);
    free(body.data);
    if (prefix.err || body.err) {
      free(prefix.data);
      rc = cll_err_set(err, CLL_ENOMEM, "out of memory");
      break;
    }
    owned[i] = prefix.data;
    tagged[i].content = prefix.data ? prefix.data : "";
  }
  if (rc == 0)
    rc = render_from(t, v, tagged, n, cur, scratch, out, out_len, err);
  for (size_t i = 0; i < n; i++)
    free(owned[i]);
  free(owned);
  free(tagged);
out:
  free(scratch);
  if (rc == 0 && first_kept)
    *first_kept = cur;
  return rc;
}

int cll_generate_prompt(const cll_template *t, const struct cll_generate_input *in,
                        const struct cll_chat_prompt_opts *o, char **out, size_t *out_len,
                        cll_err *err) {
  *out = NULL;
  char *body = NULL;
  size_t body_len = 0;
  int rc;
  struct cll_tmpl_values v = {
      .think = in->think, .think_level = in->think_level, .is_think_set = in->is_think_set};
  if (nonempty(in->suffix)) {
    v.prompt = in->prompt;
    v.suffix = in->suffix;
    rc = cll_template_execute(t, &v, &body, &body_len, err);
  } else {
    size_t n = 1 + (in->has_context ? 0 : in->n_model_messages) + 1;
    struct cll_tmpl_message *msgs = calloc(n, sizeof *msgs);
    if (msgs == NULL)
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    size_t k = 0;
    const char *sys = nonempty(in->system) ? in->system : in->model_system;
    if (nonempty(sys))
      msgs[k++] = (struct cll_tmpl_message){.role = "system", .content = sys};
    if (!in->has_context)
      for (size_t i = 0; i < in->n_model_messages; i++)
        msgs[k++] = in->model_messages[i];
    msgs[k++] = (struct cll_tmpl_message){
        .role = "user", .content = str_or_empty(in->prompt), .n_images = in->n_images};
    v.messages = msgs;
    v.n_messages = k;
    if (in->template_override) {
      rc = cll_template_execute(t, &v, &body, &body_len, err);
    } else {
      rc = cll_chat_prompt(t, &v, o, &body, &body_len, NULL, err);
    }
    free(msgs);
  }
  if (rc != 0)
    return rc;
  if (!in->has_context || !nonempty(in->context_text)) {
    *out = body;
    if (out_len)
      *out_len = body_len;
    return 0;
  }
  size_t cl = strlen(in->context_text);
  char *joined = malloc(cl + body_len + 1);
  if (joined == NULL) {
    free(body);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  memcpy(joined, in->context_text, cl);
  memcpy(joined + cl, body, body_len + 1);
  free(body);
  *out = joined;
  if (out_len)
    *out_len = cl + body_len;
  return 0;
}

/* ======================================================= from a request */

static int opt_string(json_t *o, const char *key, const char **out, size_t i, cll_err *err) {
  json_t *v = json_object_get(o, key);
  *out = NULL;
  if (v == NULL || json_is_null(v))
    return 0;
  if (!json_is_string(v))
    return cll_err_set(err, CLL_EINVAL, "messages[%zu].%s must be a string", i, key);
  *out = json_string_value(v);
  return 0;
}

int cll_tmpl_messages_from_json(const struct json_t *messages, struct cll_tmpl_message **out,
                                size_t *n, cll_err *err) {
  *out = NULL;
  *n = 0;
  json_t *arr = (json_t *)messages;
  if (arr == NULL || json_is_null(arr))
    return 0;
  if (!json_is_array(arr))
    return cll_err_set(err, CLL_EINVAL, "messages must be an array");
  size_t nm = json_array_size(arr), ncalls = 0, role_bytes = 0;
  for (size_t i = 0; i < nm; i++) {
    json_t *m = json_array_get(arr, i);
    if (!json_is_object(m))
      return cll_err_set(err, CLL_EINVAL, "messages[%zu] must be an object", i);
    json_t *tc = json_object_get(m, "tool_calls");
    if (tc != NULL && !json_is_null(tc) && !json_is_array(tc))
      return cll_err_set(err, CLL_EINVAL, "messages[%zu].tool_calls must be an array", i);
    ncalls += json_is_array(tc) ? json_array_size(tc) : 0;
    json_t *r = json_object_get(m, "role");
    role_bytes += (json_is_string(r) ? json_string_length(r) : 0) + 1;
  }
  size_t bytes = nm * sizeof(struct cll_tmpl_message) + ncalls * sizeof(struct cll_tmpl_tool_call) +
                 role_bytes + 1;
  char *block = calloc(1, bytes);
  if (block == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  struct cll_tmpl_message *msgs = (struct cll_tmpl_message *)block;
  struct cll_tmpl_tool_call *calls =
      (struct cll_tmpl_tool_call *)(block + nm * sizeof(struct cll_tmpl_message));
  char *roles = (char *)(calls + ncalls);
  size_t ci = 0;
  int rc = 0;
  for (size_t i = 0; i < nm && rc == 0; i++) {
    json_t *m = json_array_get(arr, i);
    struct cll_tmpl_message *d = &msgs[i];
    const char *role;
    if ((rc = opt_string(m, "role", &role, i, err)) != 0 ||
        (rc = opt_string(m, "content", &d->content, i, err)) != 0 ||
        (rc = opt_string(m, "thinking", &d->thinking, i, err)) != 0 ||
        (rc = opt_string(m, "tool_name", &d->tool_name, i, err)) != 0 ||
        (rc = opt_string(m, "tool_call_id", &d->tool_call_id, i, err)) != 0)
      break;
    d->role = roles;
    for (const char *q = role ? role : ""; *q; q++)
      *roles++ = (char)tolower((unsigned char)*q);
    *roles++ = '\0';
    json_t *imgs = json_object_get(m, "images");
    if (imgs != NULL && !json_is_null(imgs) && !json_is_array(imgs)) {
      rc = cll_err_set(err, CLL_EINVAL, "messages[%zu].images must be an array", i);
      break;
    }
    d->n_images = json_is_array(imgs) ? json_array_size(imgs) : 0;
    json_t *tc = json_object_get(m, "tool_calls");
    if (!json_is_array(tc) || json_array_size(tc) == 0)
      continue;
    d->tool_calls = &calls[ci];
    d->n_tool_calls = json_array_size(tc);
    for (size_t k = 0; k < d->n_tool_calls; k++, ci++) {
      json_t *c = json_array_get(tc, k);
      json_t *fn = json_object_get(c, "function");
      if (!json_is_object(c) || !json_is_object(fn)) {
        rc = cll_err_set(err, CLL_EINVAL, "messages[%zu].tool_calls[%zu] needs a function", i, k);
        break;
      }
      json_t *id = json_object_get(c, "id"), *name = json_object_get(fn, "name");
      json_t *index = json_object_get(fn, "index"), *args = json_object_get(fn, "arguments");
      if (args != NULL && !json_is_null(args) && !json_is_object(args)) {
        rc =
            cll_err_set(err, CLL_EINVAL,
                        "messages[%zu].tool_calls[%zu].function.arguments must be an object", i, k);
        break;
      }
      calls[ci] = (struct cll_tmpl_tool_call){
          .id = json_is_string(id) ? json_string_value(id) : NULL,
          .index = json_is_integer(index) ? (int)json_integer_value(index) : 0,
          .name = json_is_string(name) ? json_string_value(name) : NULL,
          .arguments = json_is_object(args) ? args : NULL,
      };
    }
  }
  if (rc != 0) {
    free(block);
    return rc;
  }
  *out = msgs;
  *n = nm;
  return 0;
}
