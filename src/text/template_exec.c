/* template_exec.c — executing a parsed template: pipelines, commands,
 * variables, control flow, the built-in functions, and the walk over nodes.
 * See template_parse.c for the design of the whole module. */
#include "template_int.h"

/* ============================================================ execution */

static int xerr(struct exec *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int xerr(struct exec *x, const char *fmt, ...) {
  if (!x->failed) {
    x->failed = true;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cll_err_set(x->err, CLL_EINVAL, "template: line %d: executing: %s", x->line, msg);
  }
  return -1;
}

static int push(struct exec *x, const char *name, struct val v) {
  if (x->nvars == x->capvars) {
    int cap = x->capvars ? x->capvars * 2 : 16;
    struct var *q = realloc(x->vars, (size_t)cap * sizeof *q);
    if (q == NULL)
      return xerr(x, "out of memory");
    x->vars = q;
    x->capvars = cap;
  }
  x->vars[x->nvars++] = (struct var){name, v};
  return 0;
}

static struct var *find_var(struct exec *x, const char *name) {
  for (int i = x->nvars - 1; i >= 0; i--)
    if (strcmp(x->vars[i].name, name) == 0)
      return &x->vars[i];
  return NULL;
}

static json_t *keep(struct exec *x, json_t *j) {
  if (j == NULL) {
    xerr(x, "out of memory");
    return NULL;
  }
  if (x->nrefs == x->caprefs) {
    int cap = x->caprefs ? x->caprefs * 2 : 8;
    json_t **q = realloc(x->refs, (size_t)cap * sizeof *q);
    if (q == NULL) {
      json_decref(j);
      xerr(x, "out of memory");
      return NULL;
    }
    x->refs = q;
    x->caprefs = cap;
  }
  x->refs[x->nrefs++] = j;
  return j;
}

/* Copies a temporary buffer into the execution arena as a string value. */
static int str_result(struct exec *x, cll_buf *b, struct val *out) {
  if (b->err) {
    free(b->data);
    return xerr(x, "out of memory");
  }
  char *s = cll__tpl_arena_strndup(&x->a, b->data ? b->data : "", b->len);
  size_t n = b->len;
  free(b->data);
  if (s == NULL)
    return xerr(x, "out of memory");
  *out = cll__tpl_v_str(s, n);
  return 0;
}

static int get_field(struct exec *x, const struct val *recv, const char *name, struct val *out) {
  if (recv->k == K_NIL)
    return xerr(x, "nil pointer evaluating interface {}.%s", name);
  if (recv->k != K_J)
    return xerr(x, "can't evaluate field %s in type %s", name, cll__tpl_type_name(recv));
  unsigned char g = recv->g;
  if (cll__tpl_GT[g].shape == SH_STRUCT) {
    for (int i = 0; i < cll__tpl_GT[g].nf; i++)
      if (strcmp(cll__tpl_GT[g].f[i].go, name) == 0) {
        *out = cll__tpl_field_val(&cll__tpl_GT[g].f[i],
                                  json_object_get(recv->j, cll__tpl_GT[g].f[i].key));
        return 0;
      }
    return xerr(x, "can't evaluate field %s in type %s", name, cll__tpl_GT[g].name);
  }
  if (cll__tpl_is_map(recv)) {
    json_t *c = json_object_get(recv->j, name);
    if (g == G_ROOT) {
      if (c == NULL) {
        *out = cll__tpl_v_nil(); /* missingkey=zero on map[string]any */
        return 0;
      }
      for (size_t i = 0; i < (size_t)cll__tpl_GT[G_ROOT].nf; i++)
        if (strcmp(cll__tpl_F_ROOT[i].key, name) == 0) {
          *out = cll__tpl_field_val(&cll__tpl_F_ROOT[i], c);
          return 0;
        }
      *out = cll__tpl_make_val(G_ANY, c);
      return 0;
    }
    *out = cll__tpl_make_val(cll__tpl_elem_type(recv), c);
    return 0;
  }
  return xerr(x, "can't evaluate field %s in type %s", name, cll__tpl_type_name(recv));
}

static int chain(struct exec *x, struct val *v, const char **fields, int n) {
  for (int i = 0; i < n; i++) {
    struct val nv;
    if (get_field(x, v, fields[i], &nv) < 0)
      return -1;
    *v = nv;
  }
  return 0;
}

static int eval_pipe(struct exec *x, const struct pipe *pp, const struct val *dot, struct val *out);
static int call_fn(struct exec *x, enum fn_id fn, const struct arg *args, int nargs,
                   const struct val *dot, const struct val *final, struct val *out);

static int eval_arg(struct exec *x, const struct arg *a, const struct val *dot, struct val *out) {
  switch (a->kind) {
  case A_DOT:
    *out = *dot;
    return 0;
  case A_FIELD:
    *out = *dot;
    return chain(x, out, a->fields, a->nfields);
  case A_VAR: {
    struct var *v = find_var(x, a->s);
    if (v == NULL)
      return xerr(x, "undefined variable: %s", a->s);
    *out = v->v;
    return chain(x, out, a->fields, a->nfields);
  }
  case A_FUNC:
    return call_fn(x, a->fn, NULL, 0, dot, NULL, out);
  case A_STRING:
    *out = cll__tpl_v_str(a->s, a->n);
    return 0;
  case A_INT:
    *out = cll__tpl_v_int(a->i);
    return 0;
  case A_FLOAT:
    *out = (struct val){.k = K_FLOAT, .f = a->f};
    return 0;
  case A_BOOL:
    *out = cll__tpl_v_bool(a->b);
    return 0;
  case A_NIL:
    *out = cll__tpl_v_nil();
    return 0;
  case A_PIPE:
    if (eval_pipe(x, a->pipe, dot, out) < 0)
      return -1;
    return chain(x, out, a->fields, a->nfields);
  }
  return xerr(x, "bad argument");
}

static int eval_cmd(struct exec *x, const struct cmd *c, const struct val *dot,
                    const struct val *final, struct val *out) {
  const struct arg *first = &c->args[0];
  if (first->kind == A_FUNC)
    return call_fn(x, first->fn, c->args + 1, c->nargs - 1, dot, final, out);
  if (c->nargs > 1 || final != NULL)
    return xerr(x, "can't give argument to non-function");
  if (first->kind == A_NIL)
    return xerr(x, "nil is not a command");
  return eval_arg(x, first, dot, out);
}

static int eval_pipe(struct exec *x, const struct pipe *pp, const struct val *dot,
                     struct val *out) {
  if (++x->depth > MAX_DEPTH) {
    x->depth--;
    return xerr(x, "nesting too deep");
  }
  struct val v = cll__tpl_v_nil();
  for (int i = 0; i < pp->ncmds; i++) {
    struct val nv;
    if (eval_cmd(x, &pp->cmds[i], dot, i > 0 ? &v : NULL, &nv) < 0) {
      x->depth--;
      return -1;
    }
    v = nv;
  }
  x->depth--;
  *out = v;
  return 0;
}

/* Declares or assigns the pipeline's single variable. */
static int apply_decl(struct exec *x, const struct pipe *pp, const struct val *v) {
  if (pp->ndecl == 0)
    return 0;
  if (pp->assign) {
    struct var *var = find_var(x, pp->decl[0]);
    if (var == NULL)
      return xerr(x, "undefined variable: %s", pp->decl[0]);
    var->v = *v;
    return 0;
  }
  return push(x, pp->decl[0], *v);
}

/* ------------------------------------------------------------ functions */

static int nargs_check(struct exec *x, const char *name, int got, int want) {
  if (got != want)
    return xerr(x, "wrong number of args for %s: want %d got %d", name, want, got);
  return 0;
}

/* Comparison classes of Go's basicKind. */
static int basic(const struct val *v) {
  switch (v->k) {
  case K_BOOL:
    return 1;
  case K_INT:
  case K_FLOAT:
    return 2;
  case K_STR:
    return 3;
  default:
    return 0;
  }
}

static double num(const struct val *v) {
  return v->k == K_INT ? (double)v->i : v->f;
}

/* eq for one pair: 1 equal, 0 not, -1 error. */
static int eq2(struct exec *x, const struct val *a, const struct val *b) {
  int ka = basic(a), kb = basic(b);
  if (ka != kb) {
    if (a->k == K_NIL || b->k == K_NIL)
      return 0;
    if (a->k == K_J && b->k == K_J)
      return 0;
    return xerr(x, "error calling eq: incompatible types for comparison");
  }
  switch (ka) {
  case 1:
    return a->b == b->b;
  case 2:
    if (a->k == K_INT && b->k == K_INT)
      return a->i == b->i;
    return num(a) == num(b);
  case 3:
    return a->n == b->n && memcmp(a->s, b->s, a->n) == 0;
  default:
    if (a->k == K_NIL || b->k == K_NIL)
      return a->k == b->k || (a->k == K_J ? a->j == NULL : b->j == NULL);
    if (cll__tpl_GT[a->g].shape == SH_LIST || cll__tpl_GT[a->g].shape == SH_MAP || a->g == G_ANY)
      return xerr(x, "error calling eq: non-comparable type %s", cll__tpl_type_name(a));
    return a->g == b->g && a->j == b->j;
  }
}

/* lt for basic values: 1/0, -1 error. */
static int lt2(struct exec *x, const char *fname, const struct val *a, const struct val *b) {
  int ka = basic(a), kb = basic(b);
  if (ka == 0 || kb == 0 || ka == 1)
    return xerr(x, "error calling %s: invalid type for comparison", fname);
  if (ka != kb)
    return xerr(x, "error calling %s: incompatible types for comparison", fname);
  if (ka == 2) {
    if (a->k == K_INT && b->k == K_INT)
      return a->i < b->i;
    return num(a) < num(b);
  }
  size_t n = a->n < b->n ? a->n : b->n;
  int c = memcmp(a->s, b->s, n);
  return c < 0 || (c == 0 && a->n < b->n);
}

static int to_index(struct exec *x, const struct val *v, int64_t *out) {
  if (v->k == K_INT) {
    *out = v->i;
    return 0;
  }
  if (v->k == K_FLOAT && v->f == floor(v->f) && fabs(v->f) < 9e15) {
    /* Go would reject a float64 index; JSON numbers arrive as float64, so accept whole ones. */
    *out = (int64_t)v->f;
    return 0;
  }
  return xerr(x, "cannot index slice/array with type %s", cll__tpl_type_name(v));
}

static int fn_index(struct exec *x, const struct val *item, const struct val *idx, int n,
                    struct val *out) {
  struct val cur = *item;
  for (int i = 0; i < n; i++) {
    if (cur.k == K_STR) {
      int64_t k;
      if (to_index(x, &idx[i], &k) < 0)
        return -1;
      if (k < 0 || (size_t)k >= cur.n)
        return xerr(x, "error calling index: index out of range: %lld", (long long)k);
      cur = cll__tpl_v_int((unsigned char)cur.s[k]);
    } else if (cll__tpl_is_list(&cur)) {
      int64_t k;
      if (to_index(x, &idx[i], &k) < 0)
        return -1;
      if (k < 0 || (size_t)k >= cll__tpl_coll_size(&cur))
        return xerr(x, "error calling index: index out of range: %lld", (long long)k);
      cur = cll__tpl_list_at(&cur, (size_t)k);
    } else if (cll__tpl_is_map(&cur)) {
      if (idx[i].k != K_STR)
        return xerr(x, "error calling index: value has type %s; should be string",
                    cll__tpl_type_name(&idx[i]));
      char key[256];
      snprintf(key, sizeof key, "%.*s", (int)(idx[i].n < 255 ? idx[i].n : 255), idx[i].s);
      if (get_field(x, &cur, key, &cur) < 0)
        return -1;
    } else if (cur.k == K_NIL) {
      return xerr(x, "error calling index: index of untyped nil");
    } else {
      return xerr(x, "error calling index: can't index item of type %s", cll__tpl_type_name(&cur));
    }
  }
  *out = cur;
  return 0;
}

static int fn_slice(struct exec *x, const struct val *item, const struct val *idx, int n,
                    struct val *out) {
  if (n > 3)
    return xerr(x, "error calling slice: too many slice indexes: %d", n);
  size_t len;
  if (item->k == K_STR)
    len = item->n;
  else if (cll__tpl_is_list(item))
    len = cll__tpl_coll_size(item);
  else
    return xerr(x, "error calling slice: can't slice item of type %s", cll__tpl_type_name(item));
  if (item->k == K_STR && n == 3)
    return xerr(x, "error calling slice: cannot 3-index slice a string");
  int64_t ix[3] = {0, (int64_t)len, (int64_t)len};
  for (int i = 0; i < n; i++)
    if (to_index(x, &idx[i], &ix[i]) < 0)
      return -1;
  if (n < 2)
    ix[1] = (int64_t)len;
  if (ix[0] < 0 || ix[0] > ix[1] || ix[1] > (int64_t)len ||
      (n == 3 && (ix[2] < ix[1] || ix[2] > (int64_t)len)))
    return xerr(x, "error calling slice: index out of range");
  if (item->k == K_STR) {
    *out = cll__tpl_v_str(item->s + ix[0], (size_t)(ix[1] - ix[0]));
    return 0;
  }
  json_t *arr = keep(x, json_array());
  if (arr == NULL)
    return -1;
  for (int64_t i = ix[0]; i < ix[1]; i++)
    if (json_array_append(arr, json_array_get(item->j, (size_t)i)) < 0)
      return xerr(x, "out of memory");
  *out = cll__tpl_v_j(item->g == G_PTYPE ? G_STRLIST : item->g, arr);
  return 0;
}

/* Go's fmt.Sprintf for the verbs templates use: %v %s %d %q %t %f %e %g %x
 * %X %c %%, flags and width/precision. */
/* fmt's %!verb(type=value) for a bad verb; nil prints as %!verb(<nil>). */
static void bad_verb(cll_buf *t, char verb, const struct val *v) {
  if (v->k == K_NIL) {
    buf_printf(t, "%%!%c(<nil>)", verb);
    return;
  }
  buf_printf(t, "%%!%c(%s=", verb, cll__tpl_type_name(v));
  cll__tpl_print_val(t, v, 1);
  buf_putc(t, ')');
}

static void fmt_one(cll_buf *b, char verb, const char *flags, int width, int prec,
                    const struct val *v) {
  cll_buf t = {.max = MAX_OUTPUT};
  bool minus = strchr(flags, '-') != NULL, zero = strchr(flags, '0') != NULL;
  switch (verb) {
  case 'v':
  case 's':
    if (verb == 's' && v->k != K_STR && v->k != K_J) {
      bad_verb(&t, 's', v);
    } else {
      cll__tpl_print_val(&t, v, 1);
      if (v->k == K_NIL) {
        t.len = 0;
        buf_puts(&t, "<nil>");
      }
      if (prec >= 0 && verb == 's' && (size_t)prec < t.len)
        t.len = (size_t)prec; /* Go counts runes; bytes are close enough for ASCII */
    }
    break;
  case 'q':
    if (v->k == K_STR) {
      cll__tpl_put_go_quoted(&t, v->s, v->n);
    } else if (v->k == K_INT && v->i >= 0 && v->i <= 0x10FFFF) {
      /* a rune: 'c' */
      char u[4];
      size_t ul = cll_utf8_encode((uint32_t)v->i, u);
      cll_buf q = {.max = MAX_OUTPUT};
      cll__tpl_put_go_quoted(&q, u, ul);
      if (q.data && q.len >= 2) {
        buf_putc(&t, '\'');
        buf_add(&t, q.data + 1, q.len - 2);
        buf_putc(&t, '\'');
      }
      free(q.data);
    } else {
      bad_verb(&t, 'q', v);
    }
    break;
  case 'd':
  case 'x':
  case 'X':
  case 'c':
    if (v->k == K_INT) {
      if (verb == 'c') {
        char u[4];
        buf_add(&t, u, cll_utf8_encode((uint32_t)v->i, u));
      } else {
        buf_printf(&t, verb == 'd' ? "%lld" : verb == 'x' ? "%llx" : "%llX", (long long)v->i);
      }
    } else if (v->k == K_STR && verb != 'd' && verb != 'c') {
      for (size_t i = 0; i < v->n; i++)
        buf_printf(&t, verb == 'x' ? "%02x" : "%02X", (unsigned char)v->s[i]);
    } else {
      bad_verb(&t, verb, v);
    }
    break;
  case 'T':
    buf_puts(&t, cll__tpl_type_name(v));
    break;
  case 't':
    if (v->k == K_BOOL)
      buf_puts(&t, v->b ? "true" : "false");
    else
      bad_verb(&t, 't', v);
    break;
  case 'f':
  case 'F':
  case 'e':
  case 'E':
  case 'g':
  case 'G':
    if (v->k == K_FLOAT || v->k == K_INT) {
      if (v->k == K_INT) {
        buf_printf(&t, "%%!%c(int=%lld)", verb, (long long)v->i);
      } else if (prec < 0 && (verb == 'g' || verb == 'G')) {
        cll__tpl_put_float_v(&t, v->f);
      } else {
        char f[16];
        snprintf(f, sizeof f, "%%.%d%c", prec < 0 ? 6 : prec, verb);
        buf_printf(&t, f, v->f);
      }
    } else {
      bad_verb(&t, verb, v);
    }
    break;
  default:
    bad_verb(&t, verb, v);
  }
  size_t len = t.len;
  if (t.len >= 2 && t.data[0] == '%' && t.data[1] == '!')
    width = -1; /* Go pads the value inside a bad verb; we leave it unpadded */
  if (width > 0 && (size_t)width > len && !minus)
    for (size_t i = len; i < (size_t)width; i++)
      buf_putc(b, zero && verb != 's' && verb != 'v' && verb != 'q' ? '0' : ' ');
  if (t.data)
    buf_add(b, t.data, t.len);
  if (width > 0 && (size_t)width > len && minus)
    for (size_t i = len; i < (size_t)width; i++)
      buf_putc(b, ' ');
  if (t.err)
    b->err = t.err;
  free(t.data);
}

static void go_sprintf(cll_buf *b, const char *f, size_t n, const struct val *args, int nargs) {
  int ai = 0;
  for (size_t i = 0; i < n; i++) {
    if (f[i] != '%') {
      buf_putc(b, f[i]);
      continue;
    }
    if (++i >= n) {
      buf_puts(b, "%!(NOVERB)");
      break;
    }
    char flags[8] = {0};
    int nf = 0;
    while (i < n && strchr("-+# 0", f[i]) && nf < 7)
      flags[nf++] = f[i++];
    int width = -1, prec = -1;
    if (i < n && f[i] == '*') {
      width = ai < nargs && args[ai].k == K_INT ? (int)args[ai].i : 0;
      ai++;
      i++;
    }
    while (i < n && isdigit((unsigned char)f[i]))
      width = (width < 0 ? 0 : width) * 10 + (f[i++] - '0'), width = width > 1000 ? 1000 : width;
    if (i < n && f[i] == '.') {
      i++;
      prec = 0;
      while (i < n && isdigit((unsigned char)f[i]))
        prec = prec * 10 + (f[i++] - '0'), prec = prec > 1000 ? 1000 : prec;
    }
    if (i >= n) {
      buf_puts(b, "%!(NOVERB)");
      break;
    }
    char verb = f[i];
    if (verb == '%') {
      buf_putc(b, '%');
      continue;
    }
    if (ai >= nargs) {
      buf_printf(b, "%%!%c(MISSING)", verb);
      continue;
    }
    fmt_one(b, verb, flags, width, prec, &args[ai++]);
  }
  if (ai < nargs) {
    buf_puts(b, "%!(EXTRA ");
    for (int k = ai; k < nargs; k++) {
      if (k > ai)
        buf_puts(b, ", ");
      if (args[k].k == K_NIL) {
        buf_puts(b, "<nil>");
        continue;
      }
      buf_printf(b, "%s=", cll__tpl_type_name(&args[k]));
      cll__tpl_print_val(b, &args[k], 1);
    }
    buf_putc(b, ')');
  }
}

static const char *ts_type(const char *t) {
  if (strcmp(t, "string") == 0)
    return "string";
  if (strcmp(t, "number") == 0 || strcmp(t, "integer") == 0)
    return "number";
  if (strcmp(t, "boolean") == 0)
    return "boolean";
  if (strcmp(t, "array") == 0)
    return "any[]";
  if (strcmp(t, "object") == 0)
    return "Record<string, any>";
  if (strcmp(t, "null") == 0)
    return "null";
  return "any";
}

/* api.ToolProperty.ToTypeScriptType. */
static void put_ts_type(cll_buf *b, json_t *prop, int depth) {
  json_t *any = json_object_get(prop, "anyOf");
  if (json_is_array(any) && json_array_size(any) > 0 && depth < MAX_DEPTH) {
    for (size_t i = 0; i < json_array_size(any); i++) {
      if (i)
        buf_puts(b, " | ");
      put_ts_type(b, json_array_get(any, i), depth + 1);
    }
    return;
  }
  json_t *t = json_object_get(prop, "type");
  if (json_is_string(t)) {
    buf_puts(b, ts_type(json_string_value(t)));
    return;
  }
  if (!json_is_array(t) || json_array_size(t) == 0) {
    buf_puts(b, "any");
    return;
  }
  for (size_t i = 0; i < json_array_size(t); i++) {
    if (i)
      buf_puts(b, " | ");
    json_t *e = json_array_get(t, i);
    buf_puts(b, ts_type(json_is_string(e) ? json_string_value(e) : ""));
  }
}

static void put_date(cll_buf *b, int days_ago) {
  time_t now = time(NULL) - (time_t)days_ago * 86400;
  struct tm tm;
  localtime_r(&now, &tm);
  buf_printf(b, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

static int call_fn(struct exec *x, enum fn_id fn, const struct arg *args, int nargs,
                   const struct val *dot, const struct val *final, struct val *out) {
  int total = nargs + (final != NULL);
  /* and/or evaluate lazily and return the deciding argument. */
  if (fn == F_AND || fn == F_OR) {
    if (total < 1)
      return xerr(x, "wrong number of args for %s: want at least 1 got 0",
                  fn == F_AND ? "and" : "or");
    for (int i = 0; i < total; i++) {
      struct val v;
      if (i < nargs) {
        if (eval_arg(x, &args[i], dot, &v) < 0)
          return -1;
      } else {
        v = *final;
      }
      *out = v;
      if ((fn == F_AND) != cll__tpl_truth(&v))
        return 0;
    }
    return 0;
  }
  if (total > MAX_FN_ARGS)
    return xerr(x, "too many arguments");
  struct val av[MAX_FN_ARGS];
  for (int i = 0; i < nargs; i++)
    if (eval_arg(x, &args[i], dot, &av[i]) < 0)
      return -1;
  if (final != NULL)
    av[nargs] = *final;
  switch (fn) {
  case F_NOT:
    if (nargs_check(x, "not", total, 1) < 0)
      return -1;
    *out = cll__tpl_v_bool(!cll__tpl_truth(&av[0]));
    return 0;
  case F_EQ:
  case F_NE: {
    if (total < 2)
      return xerr(x, "error calling %s: missing argument for comparison", fn == F_EQ ? "eq" : "ne");
    if (fn == F_NE && total != 2)
      return nargs_check(x, "ne", total, 2);
    bool any = false;
    for (int i = 1; i < total; i++) {
      int r = eq2(x, &av[0], &av[i]);
      if (r < 0)
        return -1;
      any = any || r == 1;
    }
    *out = cll__tpl_v_bool(fn == F_EQ ? any : !any);
    return 0;
  }
  case F_LT:
  case F_LE:
  case F_GT:
  case F_GE: {
    static const char *names[] = {[F_LT] = "lt", [F_LE] = "le", [F_GT] = "gt", [F_GE] = "ge"};
    if (nargs_check(x, names[fn], total, 2) < 0)
      return -1;
    int lt = lt2(x, names[fn], &av[0], &av[1]);
    if (lt < 0)
      return -1;
    int gt = lt2(x, names[fn], &av[1], &av[0]);
    if (gt < 0)
      return -1;
    bool r = fn == F_LT ? lt : fn == F_LE ? !gt : fn == F_GT ? gt : !lt;
    *out = cll__tpl_v_bool(r);
    return 0;
  }
  case F_LEN:
    if (nargs_check(x, "len", total, 1) < 0)
      return -1;
    if (av[0].k == K_STR)
      *out = cll__tpl_v_int((int64_t)av[0].n);
    else if (cll__tpl_is_list(&av[0]) || cll__tpl_is_map(&av[0]))
      *out = cll__tpl_v_int((int64_t)cll__tpl_coll_size(&av[0]));
    else
      return xerr(x, "error calling len: len of type %s", cll__tpl_type_name(&av[0]));
    return 0;
  case F_INDEX:
    if (total < 1)
      return nargs_check(x, "index", total, 1);
    return fn_index(x, &av[0], av + 1, total - 1, out);
  case F_SLICE:
    if (total < 1)
      return nargs_check(x, "slice", total, 1);
    return fn_slice(x, &av[0], av + 1, total - 1, out);
  case F_PRINT:
  case F_PRINTLN: {
    cll_buf b = {.max = MAX_OUTPUT};
    for (int i = 0; i < total; i++) {
      if (i > 0 && (fn == F_PRINTLN || (av[i].k != K_STR && av[i - 1].k != K_STR)))
        buf_putc(&b, ' ');
      cll__tpl_print_val(&b, &av[i], 1);
    }
    if (fn == F_PRINTLN)
      buf_putc(&b, '\n');
    return str_result(x, &b, out);
  }
  case F_PRINTF: {
    if (total < 1)
      return nargs_check(x, "printf", total, 1);
    if (av[0].k != K_STR)
      return xerr(x, "wrong type for value; expected string; got %s", cll__tpl_type_name(&av[0]));
    cll_buf b = {.max = MAX_OUTPUT};
    go_sprintf(&b, av[0].s, av[0].n, av + 1, total - 1);
    return str_result(x, &b, out);
  }
  case F_JSON: {
    if (nargs_check(x, "json", total, 1) < 0)
      return -1;
    cll_buf b = {.max = MAX_OUTPUT};
    cll__tpl_marshal_val(&b, &av[0]);
    return str_result(x, &b, out);
  }
  case F_CURRENT_DATE:
  case F_YESTERDAY_DATE: {
    for (int i = 0; i < total; i++)
      if (av[i].k != K_STR)
        return xerr(x, "wrong type for value; expected string; got %s", cll__tpl_type_name(&av[i]));
    cll_buf b = {.max = MAX_OUTPUT};
    put_date(&b, fn == F_YESTERDAY_DATE);
    return str_result(x, &b, out);
  }
  case F_TO_TS_TYPE: {
    if (nargs_check(x, "toTypeScriptType", total, 1) < 0)
      return -1;
    cll_buf b = {.max = MAX_OUTPUT};
    if (av[0].k == K_J && av[0].g == G_PROP)
      put_ts_type(&b, av[0].j, 0);
    else
      buf_puts(&b, "any");
    return str_result(x, &b, out);
  }
  default:
    return xerr(x, "unknown function");
  }
}

/* ---------------------------------------------------------------- walk */

static int exec_list(struct exec *x, struct node *const *list, int n, const struct val *dot);

static int exec_range(struct exec *x, const struct node *nd, const struct val *dot) {
  int mark = x->nvars;
  struct val v;
  if (eval_pipe(x, nd->pipe, dot, &v) < 0)
    return -1;
  const struct pipe *pp = nd->pipe;
  int r = R_OK;
  size_t count = 0;
/* Sets the loop variables for one element: $e or $k, $e. */
#define LOOPVARS(keyv, elemv)                                                                      \
  do {                                                                                             \
    if (pp->ndecl == 1) {                                                                          \
      if (pp->assign) {                                                                            \
        struct var *w = find_var(x, pp->decl[0]);                                                  \
        if (w)                                                                                     \
          w->v = (elemv);                                                                          \
      } else if (push(x, pp->decl[0], (elemv)) < 0)                                                \
        return -1;                                                                                 \
    } else if (pp->ndecl == 2) {                                                                   \
      if (pp->assign) {                                                                            \
        struct var *w0 = find_var(x, pp->decl[0]), *w1 = find_var(x, pp->decl[1]);                 \
        if (w0)                                                                                    \
          w0->v = (keyv);                                                                          \
        if (w1)                                                                                    \
          w1->v = (elemv);                                                                         \
      } else if (push(x, pp->decl[0], (keyv)) < 0 || push(x, pp->decl[1], (elemv)) < 0)            \
        return -1;                                                                                 \
    }                                                                                              \
  } while (0)
  if (v.k == K_INT) {
    if (pp->ndecl == 2)
      return xerr(x, "can't use %lld to iterate over more than one variable", (long long)v.i);
    for (int64_t i = 0; i < v.i; i++) {
      if (++x->iters > MAX_ITERS)
        return xerr(x, "too many loop iterations");
      int m = x->nvars;
      struct val iv = cll__tpl_v_int(i);
      LOOPVARS(iv, iv);
      count++;
      r = exec_list(x, nd->list, nd->nlist, &iv);
      x->nvars = m;
      if (r < 0)
        return -1;
      if (r == R_BREAK)
        break;
    }
  } else if (cll__tpl_is_list(&v)) {
    size_t n = cll__tpl_coll_size(&v);
    for (size_t i = 0; i < n; i++) {
      if (++x->iters > MAX_ITERS)
        return xerr(x, "too many loop iterations");
      int m = x->nvars;
      struct val e = cll__tpl_list_at(&v, i);
      struct val iv = cll__tpl_v_int((int64_t)i);
      LOOPVARS(iv, e);
      count++;
      r = exec_list(x, nd->list, nd->nlist, &e);
      x->nvars = m;
      if (r < 0)
        return -1;
      if (r == R_BREAK)
        break;
    }
  } else if (cll__tpl_is_map(&v)) {
    const char **keys = NULL;
    size_t n;
    if (v.g == G_PROPMAP) {
      /* insertion order */
      n = json_object_size(v.j);
      keys = n ? malloc(n * sizeof *keys) : NULL;
      size_t i = 0;
      const char *k;
      json_t *e;
      if (keys != NULL)
        json_object_foreach(v.j, k, e) {
          if (i < n)
            keys[i++] = k;
        }
      n = keys ? i : 0;
    } else {
      n = cll__tpl_sorted_keys(v.j, &keys);
    }
    for (size_t i = 0; i < n && r >= 0; i++) {
      if (++x->iters > MAX_ITERS) {
        free(keys);
        return xerr(x, "too many loop iterations");
      }
      int m = x->nvars;
      struct val kv = cll__tpl_v_str(keys[i], strlen(keys[i]));
      struct val e;
      if (get_field(x, &v, keys[i], &e) < 0) {
        free(keys);
        return -1;
      }
      if (pp->ndecl == 1) {
        if (pp->assign) {
          struct var *w = find_var(x, pp->decl[0]);
          if (w)
            w->v = e;
        } else if (push(x, pp->decl[0], e) < 0) {
          free(keys);
          return -1;
        }
      } else if (pp->ndecl == 2) {
        if (pp->assign) {
          struct var *w0 = find_var(x, pp->decl[0]), *w1 = find_var(x, pp->decl[1]);
          if (w0)
            w0->v = kv;
          if (w1)
            w1->v = e;
        } else if (push(x, pp->decl[0], kv) < 0 || push(x, pp->decl[1], e) < 0) {
          free(keys);
          return -1;
        }
      }
      count++;
      r = exec_list(x, nd->list, nd->nlist, &e);
      x->nvars = m;
      if (r == R_BREAK)
        break;
    }
    free(keys);
    if (r < 0)
      return -1;
  } else if (v.k == K_NIL || (v.k == K_J && v.j == NULL)) {
    /* nothing to iterate */
  } else {
    return xerr(x, "range can't iterate over %s", cll__tpl_type_name(&v));
  }
#undef LOOPVARS
  x->nvars = mark;
  if (count == 0 && nd->has_else) {
    r = exec_list(x, nd->else_list, nd->nelse, dot);
    x->nvars = mark;
    return r;
  }
  return R_OK;
}

static int exec_list(struct exec *x, struct node *const *list, int n, const struct val *dot) {
  for (int i = 0; i < n; i++) {
    const struct node *nd = list[i];
    if (x->out.err)
      return xerr(x, "output too large");
    x->line = nd->line;
    switch (nd->kind) {
    case N_TEXT:
      buf_add(&x->out, nd->text, nd->len);
      break;
    case N_ACTION: {
      struct val v;
      if (eval_pipe(x, nd->pipe, dot, &v) < 0)
        return -1;
      if (nd->pipe->ndecl == 0)
        cll__tpl_print_val(&x->out, &v, 0);
      else if (apply_decl(x, nd->pipe, &v) < 0)
        return -1;
      break;
    }
    case N_IF:
    case N_WITH: {
      int mark = x->nvars;
      struct val v;
      if (eval_pipe(x, nd->pipe, dot, &v) < 0 || apply_decl(x, nd->pipe, &v) < 0)
        return -1;
      int r;
      if (cll__tpl_truth(&v))
        r = exec_list(x, nd->list, nd->nlist, nd->kind == N_WITH ? &v : dot);
      else
        r = exec_list(x, nd->else_list, nd->nelse, dot);
      x->nvars = mark;
      if (r != R_OK)
        return r;
      break;
    }
    case N_RANGE: {
      if (++x->depth > MAX_DEPTH)
        return xerr(x, "nesting too deep");
      int r = exec_range(x, nd, dot);
      x->depth--;
      if (r < 0)
        return r;
      break;
    }
    case N_BREAK:
      return R_BREAK;
    case N_CONTINUE:
      return R_CONTINUE;
    }
  }
  return R_OK;
}

/* Runs root (or the legacy cut) with data `data` (stolen), appending to out. */
int cll__tpl_run(const cll_template *t, bool legacy, json_t *data, cll_buf *out, cll_err *err) {
  struct exec x = {.out = *out, .err = err, .line = 1};
  struct val root = cll__tpl_v_j(G_ROOT, data);
  int rc = push(&x, "$", root);
  if (rc == 0) {
    rc = legacy ? exec_list(&x, t->legacy, t->nlegacy, &root)
                : exec_list(&x, t->root, t->nroot, &root);
    if (rc == 0 && x.out.err)
      rc = xerr(&x, "output too large or out of memory");
  }
  for (int i = 0; i < x.nrefs; i++)
    json_decref(x.refs[i]);
  free(x.refs);
  free(x.vars);
  cll__tpl_arena_free(&x.a);
  json_decref(data);
  *out = x.out;
  return rc < 0 ? (err && err->code ? err->code : CLL_EINVAL) : 0;
}
