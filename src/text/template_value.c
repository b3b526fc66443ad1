/* template_value.c — the value model (Go types over jansson nodes: fields,
 * zero values, truthiness) and Go's formatting (print, printf verbs, json).
 * See template_parse.c for the design of the whole module. */
#include "template_int.h"

/* ================================================================ values
 *
 * A value is a scalar or a (json node, Go type) pair. The Go types are the
 * structs Ollama hands its templates (template.go: templateMessage,
 * templateToolCall, templateTool, ...); the tables give each struct's
 * fields (Go name, JSON key in our data, type). */

const struct field cll__tpl_F_ROOT[] = {
    {"System", "System", 0, S_STR},          {"Messages", "Messages", G_MSGS, 0},
    {"Tools", "Tools", G_TOOLS, 0},          {"Prompt", "Prompt", 0, S_STR},
    {"Suffix", "Suffix", 0, S_STR},          {"Response", "Response", 0, S_STR},
    {"Think", "Think", 0, S_BOOL},           {"ThinkLevel", "ThinkLevel", 0, S_STR},
    {"IsThinkSet", "IsThinkSet", 0, S_BOOL},
};
static const struct field F_MSG[] = {
    {"Role", "role", 0, S_STR},
    {"Content", "content", 0, S_STR},
    {"Thinking", "thinking", 0, S_STR},
    {"Images", "images", G_IMAGES, 0},
    {"ToolCalls", "tool_calls", G_TCALLS, 0},
    {"ToolName", "tool_name", 0, S_STR},
    {"ToolCallID", "tool_call_id", 0, S_STR},
};
static const struct field F_TCALL[] = {
    {"ID", "id", 0, S_STR},
    {"Function", "function", G_TCFUNC, 0},
};
static const struct field F_TCFUNC[] = {
    {"Index", "index", 0, S_INT},
    {"Name", "name", 0, S_STR},
    {"Arguments", "arguments", G_ARGS, 0},
};
static const struct field F_TOOL[] = {
    {"Type", "type", 0, S_STR},
    {"Items", "items", G_ANY, 0},
    {"Function", "function", G_TFUNC, 0},
};
static const struct field F_TFUNC[] = {
    {"Name", "name", 0, S_STR},
    {"Description", "description", 0, S_STR},
    {"Parameters", "parameters", G_TPARAMS, 0},
};
static const struct field F_TPARAMS[] = {
    {"Type", "type", 0, S_STR},
    {"Defs", "$defs", G_ANY, 0},
    {"Items", "items", G_ANY, 0},
    {"Required", "required", G_STRLIST, 0},
    {"Properties", "properties", G_PROPS, 0},
};
static const struct field F_PROP[] = {
    {"AnyOf", "anyOf", G_PROPLIST, 0},      {"Type", "type", G_PTYPE, 0},
    {"Items", "items", G_ANY, 0},           {"Description", "description", 0, S_STR},
    {"Enum", "enum", G_ANYLIST, 0},         {"Properties", "properties", G_PROPMAP, 0},
    {"Required", "required", G_STRLIST, 0},
};

const struct gtinfo cll__tpl_GT[] = {
    [G_NONE] = {"invalid", SH_SCALAR, NULL, 0, 0, false},
    [G_STR] = {"string", SH_SCALAR, NULL, 0, 0, false},
    [G_ANY] = {"interface {}", SH_SCALAR, NULL, 0, G_ANY, false},
    [G_ROOT] = {"map[string]interface {}", SH_MAP, cll__tpl_F_ROOT, CLL_ARRAY_LEN(cll__tpl_F_ROOT),
                G_ANY, false},
    [G_MSGS] = {"[]*template.templateMessage", SH_LIST, NULL, 0, G_MSG, false},
    [G_MSG] = {"*template.templateMessage", SH_STRUCT, F_MSG, CLL_ARRAY_LEN(F_MSG), 0, false},
    [G_IMAGES] = {"[]api.ImageData", SH_LIST, NULL, 0, G_STR, false},
    [G_TCALLS] = {"[]template.templateToolCall", SH_LIST, NULL, 0, G_TCALL, false},
    [G_TCALL] = {"template.templateToolCall", SH_STRUCT, F_TCALL, CLL_ARRAY_LEN(F_TCALL), 0, false},
    [G_TCFUNC] = {"template.templateToolCallFunction", SH_STRUCT, F_TCFUNC, CLL_ARRAY_LEN(F_TCFUNC),
                  0, false},
    [G_ARGS] = {"template.templateArgs", SH_MAP, NULL, 0, G_ANY, true},
    [G_TOOLS] = {"template.templateTools", SH_LIST, NULL, 0, G_TOOL, true},
    [G_TOOL] = {"template.templateTool", SH_STRUCT, F_TOOL, CLL_ARRAY_LEN(F_TOOL), 0, true},
    [G_TFUNC] = {"template.templateToolFunction", SH_STRUCT, F_TFUNC, CLL_ARRAY_LEN(F_TFUNC), 0,
                 true},
    [G_TPARAMS] = {"template.templateToolFunctionParameters", SH_STRUCT, F_TPARAMS,
                   CLL_ARRAY_LEN(F_TPARAMS), 0, true},
    [G_PROPS] = {"template.templateProperties", SH_MAP, NULL, 0, G_PROP, true},
    [G_PROPMAP] = {"*api.ToolPropertiesMap", SH_MAP, NULL, 0, G_PROP, true},
    [G_PROP] = {"api.ToolProperty", SH_STRUCT, F_PROP, CLL_ARRAY_LEN(F_PROP), 0, true},
    [G_PROPLIST] = {"[]api.ToolProperty", SH_LIST, NULL, 0, G_PROP, false},
    [G_PTYPE] = {"api.PropertyType", SH_LIST, NULL, 0, G_STR, false},
    [G_STRLIST] = {"[]string", SH_LIST, NULL, 0, G_STR, false},
    [G_ANYLIST] = {"[]interface {}", SH_LIST, NULL, 0, G_ANY, false},
};

struct val cll__tpl_v_nil(void) {
  return (struct val){.k = K_NIL};
}
struct val cll__tpl_v_bool(bool b) {
  return (struct val){.k = K_BOOL, .b = b};
}
struct val cll__tpl_v_int(int64_t i) {
  return (struct val){.k = K_INT, .i = i};
}
struct val cll__tpl_v_str(const char *s, size_t n) {
  return (struct val){.k = K_STR, .s = s, .n = n};
}
struct val cll__tpl_v_j(unsigned char g, json_t *j) {
  return (struct val){.k = K_J, .g = g, .j = j};
}

/* The value of node j seen as Go type g (j may be NULL: the zero value). */
struct val cll__tpl_make_val(unsigned char g, json_t *j) {
  if (g == G_STR)
    return json_is_string(j) ? cll__tpl_v_str(json_string_value(j), json_string_length(j))
                             : cll__tpl_v_str("", 0);
  if (g == G_ANY) {
    if (j == NULL || json_is_null(j))
      return cll__tpl_v_nil();
    if (json_is_string(j))
      return cll__tpl_v_str(json_string_value(j), json_string_length(j));
    if (json_is_number(j))
      return (struct val){.k = K_FLOAT, .f = json_number_value(j)};
    if (json_is_boolean(j))
      return cll__tpl_v_bool(json_is_true(j));
    return cll__tpl_v_j(G_ANY, j);
  }
  if (j != NULL && json_is_null(j))
    j = NULL;
  return cll__tpl_v_j(g, j);
}

struct val cll__tpl_field_val(const struct field *f, json_t *j) {
  switch (f->s) {
  case S_STR:
    return json_is_string(j) ? cll__tpl_v_str(json_string_value(j), json_string_length(j))
                             : cll__tpl_v_str("", 0);
  case S_INT:
    return cll__tpl_v_int(json_is_integer(j) ? json_integer_value(j)
                          : json_is_real(j)  ? (int64_t)json_real_value(j)
                                             : 0);
  case S_BOOL:
    return cll__tpl_v_bool(json_is_true(j));
  default:
    return cll__tpl_make_val(f->g, j);
  }
}

bool cll__tpl_is_list(const struct val *v) {
  return v->k == K_J &&
         (cll__tpl_GT[v->g].shape == SH_LIST || (v->g == G_ANY && json_is_array(v->j)));
}
bool cll__tpl_is_map(const struct val *v) {
  return v->k == K_J &&
         (cll__tpl_GT[v->g].shape == SH_MAP || (v->g == G_ANY && json_is_object(v->j)));
}

/* Element count of a list/map value (a PropertyType string counts 1). */
size_t cll__tpl_coll_size(const struct val *v) {
  if (v->j == NULL)
    return 0;
  if (v->g == G_PTYPE)
    return json_is_string(v->j) ? 1 : json_is_array(v->j) ? json_array_size(v->j) : 0;
  if (json_is_array(v->j))
    return json_array_size(v->j);
  if (json_is_object(v->j))
    return json_object_size(v->j);
  return 0;
}

unsigned char cll__tpl_elem_type(const struct val *v) {
  return cll__tpl_GT[v->g].elem ? cll__tpl_GT[v->g].elem : G_ANY;
}

struct val cll__tpl_list_at(const struct val *v, size_t i) {
  if (v->g == G_PTYPE && json_is_string(v->j))
    return cll__tpl_make_val(G_STR, v->j);
  return cll__tpl_make_val(cll__tpl_elem_type(v), json_array_get(v->j, i));
}

/* Go's truth: false, 0, nil, and empty strings, slices and maps are false. */
bool cll__tpl_truth(const struct val *v) {
  switch (v->k) {
  case K_NIL:
    return false;
  case K_BOOL:
    return v->b;
  case K_INT:
    return v->i != 0;
  case K_FLOAT:
    return v->f != 0;
  case K_STR:
    return v->n > 0;
  default:
    if (cll__tpl_GT[v->g].shape == SH_STRUCT)
      return true;
    if (v->g == G_ANY)
      return cll__tpl_coll_size(v) > 0;
    return cll__tpl_coll_size(v) > 0;
  }
}

const char *cll__tpl_type_name(const struct val *v) {
  switch (v->k) {
  case K_NIL:
    return "<nil>";
  case K_BOOL:
    return "bool";
  case K_INT:
    return "int";
  case K_FLOAT:
    return "float64";
  case K_STR:
    return "string";
  default:
    if (v->g == G_ANY)
      return json_is_array(v->j) ? "[]interface {}" : "map[string]interface {}";
    return cll__tpl_GT[v->g].name;
  }
}

/* ---------------------------------------------------------- formatting */

/* Shortest decimal digits that round-trip f (f finite, > 0): digits into
 * d (NUL-terminated), decimal exponent of the first digit into *e. */
static void shortest(double f, char *d, int *e) {
  char tmp[40];
  for (int prec = 0; prec < 17; prec++) {
    snprintf(tmp, sizeof tmp, "%.*e", prec, f);
    if (strtod(tmp, NULL) == f)
      break;
  }
  /* tmp = D[.DDD]e±XX */
  size_t n = 0;
  const char *p = tmp;
  for (; *p && *p != 'e'; p++)
    if (*p != '.')
      d[n++] = *p;
  d[n] = '\0';
  *e = atoi(p + 1);
  while (n > 1 && d[n - 1] == '0')
    d[--n] = '\0';
}

static void put_fixed(cll_buf *b, const char *d, int e) {
  int n = (int)strlen(d);
  if (e < 0) {
    buf_puts(b, "0.");
    for (int i = 0; i < -e - 1; i++)
      buf_putc(b, '0');
    buf_puts(b, d);
    return;
  }
  for (int i = 0; i <= e; i++)
    buf_putc(b, i < n ? d[i] : '0');
  if (n > e + 1) {
    buf_putc(b, '.');
    buf_puts(b, d + e + 1);
  }
}

static void put_exp(cll_buf *b, const char *d, int e, bool json_style) {
  buf_putc(b, d[0]);
  if (d[1]) {
    buf_putc(b, '.');
    buf_puts(b, d + 1);
  }
  if (json_style && e < 0 && e > -10)
    buf_printf(b, "e-%d", -e);
  else
    buf_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
}

/* Go's %v of a float64 (strconv 'g', shortest). */
void cll__tpl_put_float_v(cll_buf *b, double f) {
  if (isnan(f)) {
    buf_puts(b, "NaN");
    return;
  }
  if (isinf(f)) {
    buf_puts(b, f > 0 ? "+Inf" : "-Inf");
    return;
  }
  if (f == 0) {
    buf_puts(b, signbit(f) ? "-0" : "0");
    return;
  }
  if (f < 0) {
    buf_putc(b, '-');
    f = -f;
  }
  char d[40];
  int e;
  shortest(f, d, &e);
  if (e < -4 || e >= 6) /* strconv 'g' with the shortest precision decides at 6 */
    put_exp(b, d, e, false);
  else
    put_fixed(b, d, e);
}

/* encoding/json's float64. */
static void put_float_json(cll_buf *b, double f) {
  if (!isfinite(f)) {
    buf_puts(b, "null");
    return;
  }
  if (f == 0) {
    buf_puts(b, signbit(f) ? "-0" : "0");
    return;
  }
  if (f < 0) {
    buf_putc(b, '-');
    f = -f;
  }
  char d[40];
  int e;
  shortest(f, d, &e);
  if (f < 1e-6 || f >= 1e21)
    put_exp(b, d, e, true);
  else
    put_fixed(b, d, e);
}

/* strconv.Quote: Go escapes, printable characters (including non-ASCII) as
 * they are, invalid bytes as \xNN. */
void cll__tpl_put_go_quoted(cll_buf *b, const char *s, size_t n) {
  buf_putc(b, '"');
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      switch (c) {
      case '"':
        buf_puts(b, "\\\"");
        break;
      case '\\':
        buf_puts(b, "\\\\");
        break;
      case '\a':
        buf_puts(b, "\\a");
        break;
      case '\b':
        buf_puts(b, "\\b");
        break;
      case '\f':
        buf_puts(b, "\\f");
        break;
      case '\n':
        buf_puts(b, "\\n");
        break;
      case '\r':
        buf_puts(b, "\\r");
        break;
      case '\t':
        buf_puts(b, "\\t");
        break;
      case '\v':
        buf_puts(b, "\\v");
        break;
      default:
        if (c < 0x20 || c == 0x7f)
          buf_printf(b, "\\x%02x", c);
        else
          buf_putc(b, (char)c);
      }
      i++;
      continue;
    }
    uint32_t cp;
    size_t len = cll_utf8_decode((const unsigned char *)s + i, n - i, &cp);
    if (cp == 0xFFFD && len == 1)
      buf_printf(b, "\\x%02x", c);
    else
      buf_add(b, s + i, len);
    i += len;
  }
  buf_putc(b, '"');
}

static int cmp_keys(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of object j, sorted as Go sorts map keys (byte order). *keys is
 * new (free it); NULL with 0 for an empty or absent object. */
size_t cll__tpl_sorted_keys(json_t *j, const char ***keys) {
  *keys = NULL;
  size_t n = json_is_object(j) ? json_object_size(j) : 0;
  if (n == 0)
    return 0;
  const char **k = malloc(n * sizeof *k);
  if (k == NULL)
    return 0;
  size_t i = 0;
  const char *key;
  json_t *v;
  json_object_foreach(j, key, v) {
    if (i < n)
      k[i++] = key;
  }
  qsort(k, i, sizeof *k, cmp_keys);
  *keys = k;
  return i;
}

static void marshal(cll_buf *b, unsigned char g, json_t *j, int depth);

static void marshal_map(cll_buf *b, json_t *j, unsigned char vg, bool sorted, int depth) {
  if (!json_is_object(j)) {
    buf_puts(b, "null");
    return;
  }
  buf_putc(b, '{');
  if (sorted) {
    const char **keys;
    size_t n = cll__tpl_sorted_keys(j, &keys);
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ',');
      cll_json_escape(b, keys[i], strlen(keys[i]));
      buf_putc(b, ':');
      marshal(b, vg, json_object_get(j, keys[i]), depth + 1);
    }
    free(keys);
  } else {
    const char *key;
    json_t *v;
    bool first = true;
    json_object_foreach(j, key, v) {
      if (!first)
        buf_putc(b, ',');
      first = false;
      cll_json_escape(b, key, strlen(key));
      buf_putc(b, ':');
      marshal(b, vg, v, depth + 1);
    }
  }
  buf_putc(b, '}');
}

static void marshal_list(cll_buf *b, json_t *j, unsigned char eg, int depth) {
  if (!json_is_array(j)) {
    buf_puts(b, "null");
    return;
  }
  buf_putc(b, '[');
  for (size_t i = 0; i < json_array_size(j); i++) {
    if (i)
      buf_putc(b, ',');
    marshal(b, eg, json_array_get(j, i), depth + 1);
  }
  buf_putc(b, ']');
}

/* A struct field under encoding/json rules; omitempty skips empty values. */
static bool empty_json(json_t *j) {
  return j == NULL || json_is_null(j) || (json_is_string(j) && json_string_length(j) == 0) ||
         (json_is_array(j) && json_array_size(j) == 0) ||
         (json_is_object(j) && json_object_size(j) == 0) || json_is_false(j);
}

static void marshal_struct(cll_buf *b, unsigned char g, json_t *j, int depth) {
  /* JSON names and omitempty of Ollama's structs, in field order. Messages
   * and tool calls of the template structs have no JSON tags: Go names. */
  const struct field *f = cll__tpl_GT[g].f;
  int nf = cll__tpl_GT[g].nf;
  buf_putc(b, '{');
  bool first = true;
  for (int i = 0; i < nf; i++) {
    const char *name = f[i].key;
    bool omitempty = false;
    if (g == G_MSG || g == G_TCALL || g == G_TCFUNC) {
      name = f[i].go;
    } else if (g == G_TOOL) {
      omitempty = strcmp(name, "items") == 0;
    } else if (g == G_TPARAMS) {
      omitempty =
          strcmp(name, "$defs") == 0 || strcmp(name, "items") == 0 || strcmp(name, "required") == 0;
    } else if (g == G_PROP) {
      omitempty = true;
    }
    json_t *c = json_object_get(j, f[i].key);
    if (omitempty && (f[i].g == G_ANY ? (c == NULL || json_is_null(c)) : empty_json(c)))
      continue;
    if (!first)
      buf_putc(b, ',');
    first = false;
    cll_json_escape(b, name, strlen(name));
    buf_putc(b, ':');
    if (f[i].s == S_STR) {
      if (json_is_string(c))
        cll_json_escape(b, json_string_value(c), json_string_length(c));
      else
        buf_puts(b, "\"\"");
    } else if (f[i].s == S_INT) {
      buf_printf(b, "%lld", (long long)(json_is_integer(c) ? json_integer_value(c) : 0));
    } else if (f[i].s == S_BOOL) {
      buf_puts(b, json_is_true(c) ? "true" : "false");
    } else {
      marshal(b, f[i].g, c, depth + 1);
    }
  }
  buf_putc(b, '}');
}

static void marshal(cll_buf *b, unsigned char g, json_t *j, int depth) {
  if (depth > MAX_DEPTH) {
    buf_puts(b, "null");
    return;
  }
  switch (g) {
  case G_STR:
    if (json_is_string(j))
      cll_json_escape(b, json_string_value(j), json_string_length(j));
    else
      buf_puts(b, "\"\"");
    return;
  case G_ANY:
    if (j == NULL || json_is_null(j))
      buf_puts(b, "null");
    else if (json_is_string(j))
      cll_json_escape(b, json_string_value(j), json_string_length(j));
    else if (json_is_number(j))
      put_float_json(b, json_number_value(j));
    else if (json_is_boolean(j))
      buf_puts(b, json_is_true(j) ? "true" : "false");
    else if (json_is_array(j))
      marshal_list(b, j, G_ANY, depth);
    else
      marshal_map(b, j, G_ANY, true, depth);
    return;
  case G_PTYPE:
    if (json_is_string(j))
      cll_json_escape(b, json_string_value(j), json_string_length(j));
    else if (json_is_array(j) && json_array_size(j) == 1)
      marshal(b, G_STR, json_array_get(j, 0), depth + 1);
    else
      marshal_list(b, j, G_STR, depth);
    return;
  case G_ROOT: {
    if (!json_is_object(j)) {
      buf_puts(b, "null");
      return;
    }
    const char **keys;
    size_t n = cll__tpl_sorted_keys(j, &keys);
    buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ',');
      cll_json_escape(b, keys[i], strlen(keys[i]));
      buf_putc(b, ':');
      json_t *c = json_object_get(j, keys[i]);
      unsigned char cg = G_ANY;
      for (size_t k = 0; k < CLL_ARRAY_LEN(cll__tpl_F_ROOT); k++)
        if (strcmp(cll__tpl_F_ROOT[k].key, keys[i]) == 0 && cll__tpl_F_ROOT[k].g)
          cg = cll__tpl_F_ROOT[k].g;
      marshal(b, cg, c, depth + 1);
    }
    buf_putc(b, '}');
    free(keys);
    return;
  }
  default:
    break;
  }
  switch (cll__tpl_GT[g].shape) {
  case SH_LIST:
    marshal_list(b, j, cll__tpl_GT[g].elem, depth);
    return;
  case SH_MAP:
    marshal_map(b, j, cll__tpl_GT[g].elem, g != G_PROPMAP, depth);
    return;
  case SH_STRUCT:
    if (g == G_MSG && j == NULL)
      buf_puts(b, "null");
    else
      marshal_struct(b, g, j, depth);
    return;
  default:
    buf_puts(b, "null");
  }
}

void cll__tpl_marshal_val(cll_buf *b, const struct val *v) {
  switch (v->k) {
  case K_NIL:
    buf_puts(b, "null");
    break;
  case K_BOOL:
    buf_puts(b, v->b ? "true" : "false");
    break;
  case K_INT:
    buf_printf(b, "%lld", (long long)v->i);
    break;
  case K_FLOAT:
    put_float_json(b, v->f);
    break;
  case K_STR:
    cll_json_escape(b, v->s, v->n);
    break;
  default:
    marshal(b, v->g, v->j, 0);
  }
}

/* fmt's %v. depth > 0 inside a composite (nil prints <nil> there). */
void cll__tpl_print_val(cll_buf *b, const struct val *v, int depth);

void cll__tpl_print_val(cll_buf *b, const struct val *v, int depth) {
  if (depth > MAX_DEPTH)
    return;
  switch (v->k) {
  case K_NIL:
    buf_puts(b, depth == 0 ? "<no value>" : "<nil>");
    return;
  case K_BOOL:
    buf_puts(b, v->b ? "true" : "false");
    return;
  case K_INT:
    buf_printf(b, "%lld", (long long)v->i);
    return;
  case K_FLOAT:
    cll__tpl_put_float_v(b, v->f);
    return;
  case K_STR:
    buf_add(b, v->s, v->n);
    return;
  default:
    break;
  }
  unsigned char g = v->g;
  if (cll__tpl_GT[g].prints_json) {
    if (v->j == NULL && (g == G_ARGS || g == G_PROPS)) {
      buf_puts(b, "{}");
      return;
    }
    marshal(b, g, v->j, 0);
    return;
  }
  if (g == G_PTYPE) {
    size_t n = cll__tpl_coll_size(v);
    if (n == 1) {
      struct val e = cll__tpl_list_at(v, 0);
      cll__tpl_print_val(b, &e, depth + 1);
      return;
    }
    if (n == 0)
      return;
  }
  if (cll__tpl_is_list(v)) {
    buf_putc(b, '[');
    size_t n = cll__tpl_coll_size(v);
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ' ');
      struct val e = cll__tpl_list_at(v, i);
      cll__tpl_print_val(b, &e, depth + 1);
    }
    buf_putc(b, ']');
    return;
  }
  if (cll__tpl_is_map(v)) {
    buf_puts(b, "map[");
    const char **keys;
    size_t n = cll__tpl_sorted_keys(v->j, &keys);
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ' ');
      buf_puts(b, keys[i]);
      buf_putc(b, ':');
      json_t *c = json_object_get(v->j, keys[i]);
      struct val e = cll__tpl_make_val(cll__tpl_GT[g].elem ? cll__tpl_GT[g].elem : G_ANY, c);
      if (g == G_ROOT)
        for (size_t k = 0; k < CLL_ARRAY_LEN(cll__tpl_F_ROOT); k++)
          if (strcmp(cll__tpl_F_ROOT[k].key, keys[i]) == 0)
            e = cll__tpl_field_val(&cll__tpl_F_ROOT[k], c);
      cll__tpl_print_val(b, &e, depth + 1);
    }
    free(keys);
    buf_putc(b, ']');
    return;
  }
  if (cll__tpl_GT[g].shape == SH_STRUCT) {
    if (g == G_MSG && depth == 1) /* fmt's pointer-to-struct; templates print *p itself */
      buf_putc(b, '&');
    buf_putc(b, '{');
    for (int i = 0; i < cll__tpl_GT[g].nf; i++) {
      if (i)
        buf_putc(b, ' ');
      struct val fv =
          cll__tpl_field_val(&cll__tpl_GT[g].f[i], json_object_get(v->j, cll__tpl_GT[g].f[i].key));
      cll__tpl_print_val(b, &fv, depth + 1);
    }
    buf_putc(b, '}');
  }
}
