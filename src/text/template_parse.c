/* template_parse.c — the recursive-descent parser that builds a template's
 * tree, the legacy "cut after .Response" copy, the public parse/inspect API
 * (uses, tool tag, thinking tags).
 *
 *
 * Design. Parsing is a hand-written lexer and recursive-descent parser that
 * follow Go's text/template/parse closely (trim markers, comments, field
 * chains, variable scoping, `else if` as a nested if) and build a tree in
 * an arena owned by the cll_template. Anything outside the subset fails at
 * parse time with the construct's name, never at render time.
 *
 * Data is not a C struct walked by reflection: Execute builds one jansson
 * tree per render (the root map, the collated messages, the request's
 * tools, borrowed) and every value in the interpreter is either a scalar or
 * a (json node, Go type) pair. The Go type (a small enum below) says which
 * fields a node has, how it prints (JSON for the types Ollama gives a
 * String method, Go's %v syntax otherwise), how it marshals for `json`, and
 * what zero value a missing field has, so templates see exactly the field
 * set and semantics of Ollama's template structs.
 *
 * Legacy mode (templates without .Messages) needs the template "cut after
 * .Response" exactly as Ollama's deleteNode walks it; cut_tree makes that
 * copy once at parse time.
 *
 * Limits: nesting depth 100 when parsing and executing, 64 MiB of output
 * and 10 million loop iterations per render; hitting one is an error.
 */
#include "template_int.h"

/* The functions of the subset, by name. */

static const struct {
  const char *name;
  enum fn_id id;
} FUNCS[] = {
    {"and", F_AND},
    {"or", F_OR},
    {"not", F_NOT},
    {"eq", F_EQ},
    {"ne", F_NE},
    {"lt", F_LT},
    {"le", F_LE},
    {"gt", F_GT},
    {"ge", F_GE},
    {"len", F_LEN},
    {"index", F_INDEX},
    {"slice", F_SLICE},
    {"print", F_PRINT},
    {"printf", F_PRINTF},
    {"println", F_PRINTLN},
    {"json", F_JSON},
    {"currentDate", F_CURRENT_DATE},
    {"yesterdayDate", F_YESTERDAY_DATE},
    {"toTypeScriptType", F_TO_TS_TYPE},
};

/* Go's other built-ins: known, but outside the subset. */
static const char *const UNSUPPORTED_FUNCS[] = {"html", "js", "urlquery", "call"};

/* ============================================================== parser */

static void *palloc(struct parser *p, size_t n) {
  void *q = cll__tpl_arena_alloc(&p->t->arena, n);
  if (q == NULL)
    cll__tpl_perr(p, "out of memory");
  return q;
}

static void note_ident(struct parser *p, const char *s, size_t n) {
  cll_template *t = p->t;
  char low[64];
  if (n >= sizeof low)
    n = sizeof low - 1;
  for (size_t i = 0; i < n; i++)
    low[i] = (char)tolower((unsigned char)s[i]);
  low[n] = '\0';
  for (int i = 0; i < t->nidents; i++)
    if (strcmp(t->idents[i], low) == 0)
      return;
  if ((t->nidents & 15) == 0) {
    char **q = palloc(p, (size_t)(t->nidents + 16) * sizeof *q);
    if (q == NULL)
      return;
    if (t->nidents)
      memcpy(q, t->idents, (size_t)t->nidents * sizeof *q);
    t->idents = q;
  }
  t->idents[t->nidents] = cll__tpl_arena_strndup(&t->arena, low, n);
  if (t->idents[t->nidents] != NULL)
    t->nidents++;
}

static void push_var(struct parser *p, const char *name) {
  if (p->nvars == p->capvars) {
    int cap = p->capvars ? p->capvars * 2 : 16;
    const char **q = realloc(p->vars, (size_t)cap * sizeof *q);
    if (q == NULL) {
      cll__tpl_perr(p, "out of memory");
      return;
    }
    p->vars = q;
    p->capvars = cap;
  }
  p->vars[p->nvars++] = name;
}

static bool var_known(struct parser *p, const char *name) {
  for (int i = p->nvars - 1; i >= 0; i--)
    if (strcmp(p->vars[i], name) == 0)
      return true;
  return false;
}

/* Reads the fields chained directly (no space) after a term. */
static void parse_chain(struct parser *p, struct arg *a) {
  for (;;) {
    struct tok t = cll__tpl_peek(p);
    if (t.kind != T_FIELD || t.sp)
      return;
    cll__tpl_lex(p);
    const char **f = palloc(p, (size_t)(a->nfields + 1) * sizeof *f);
    if (f == NULL)
      return;
    if (a->nfields)
      memcpy(f, a->fields, (size_t)a->nfields * sizeof *f);
    f[a->nfields] = cll__tpl_arena_strndup(&p->t->arena, t.p + 1, t.n - 1);
    a->fields = f;
    a->nfields++;
  }
}

static struct pipe *parse_pipe(struct parser *p, const char *context, bool is_range, bool in_paren);

static bool parse_operand(struct parser *p, struct arg *a, bool first_in_cmd) {
  struct tok t = cll__tpl_lex(p);
  switch (t.kind) {
  case T_DOT:
    a->kind = A_DOT;
    break;
  case T_FIELD:
    a->kind = A_FIELD;
    a->fields = palloc(p, sizeof *a->fields);
    if (a->fields == NULL)
      return false;
    a->fields[0] = cll__tpl_arena_strndup(&p->t->arena, t.p + 1, t.n - 1);
    a->nfields = 1;
    note_ident(p, t.p + 1, t.n - 1);
    parse_chain(p, a);
    for (int i = 1; i < a->nfields; i++)
      note_ident(p, a->fields[i], strlen(a->fields[i]));
    return !p->failed;
  case T_VAR: {
    char *name = cll__tpl_arena_strndup(&p->t->arena, t.p, t.n);
    if (name == NULL)
      return false;
    if (!var_known(p, name)) {
      cll__tpl_perr(p, "undefined variable \"%s\"", name);
      return false;
    }
    a->kind = A_VAR;
    a->s = name;
    note_ident(p, t.p, t.n);
    parse_chain(p, a);
    for (int i = 0; i < a->nfields; i++)
      note_ident(p, a->fields[i], strlen(a->fields[i]));
    return !p->failed;
  }
  case T_IDENT: {
    if (cll__tpl_tok_is(&t, "true") || cll__tpl_tok_is(&t, "false")) {
      a->kind = A_BOOL;
      a->b = cll__tpl_tok_is(&t, "true");
      break;
    }
    if (cll__tpl_tok_is(&t, "nil")) {
      if (first_in_cmd) {
        cll__tpl_perr(p, "nil is not a command");
        return false;
      }
      a->kind = A_NIL;
      break;
    }
    for (size_t i = 0; i < CLL_ARRAY_LEN(FUNCS); i++) {
      if (t.n == strlen(FUNCS[i].name) && memcmp(t.p, FUNCS[i].name, t.n) == 0) {
        a->kind = A_FUNC;
        a->fn = FUNCS[i].id;
        return true;
      }
    }
    for (size_t i = 0; i < CLL_ARRAY_LEN(UNSUPPORTED_FUNCS); i++)
      if (t.n == strlen(UNSUPPORTED_FUNCS[i]) && memcmp(t.p, UNSUPPORTED_FUNCS[i], t.n) == 0) {
        cll__tpl_perr(p, "function \"%s\" is not supported by cllama's template subset",
                      UNSUPPORTED_FUNCS[i]);
        return false;
      }
    static const char *const kw[] = {"if",    "else",     "end",    "range",    "with",
                                     "break", "continue", "define", "template", "block"};
    for (size_t i = 0; i < CLL_ARRAY_LEN(kw); i++)
      if (cll__tpl_tok_is(&t, kw[i])) {
        cll__tpl_perr(p, "unexpected keyword \"%s\" in operand", kw[i]);
        return false;
      }
    cll__tpl_perr(p, "function \"%.*s\" not defined", (int)(t.n > 60 ? 60 : t.n), t.p);
    return false;
  }
  case T_STRING:
  case T_RAW:
  case T_CHAR: {
    char *buf = palloc(p, t.n + 1);
    if (buf == NULL)
      return false;
    if (t.kind == T_RAW) {
      memcpy(buf, t.p + 1, t.n - 2);
      a->kind = A_STRING;
      a->s = buf;
      a->n = t.n - 2;
      break;
    }
    long n = cll__tpl_unquote(t.p + 1, t.n - 2, buf);
    if (n < 0) {
      cll__tpl_perr(p, "bad escape in quoted string");
      return false;
    }
    if (t.kind == T_STRING) {
      a->kind = A_STRING;
      a->s = buf;
      a->n = (size_t)n;
    } else {
      uint32_t cp;
      if (n == 0 || cll_utf8_decode((const unsigned char *)buf, (size_t)n, &cp) != (size_t)n) {
        cll__tpl_perr(p, "malformed character constant");
        return false;
      }
      a->kind = A_INT;
      a->i = cp;
      a->f = cp;
    }
    break;
  }
  case T_NUMBER:
    if (!cll__tpl_parse_number(&t, a)) {
      cll__tpl_perr(p, "bad number syntax: %.*s", (int)(t.n > 40 ? 40 : t.n), t.p);
      return false;
    }
    break;
  case T_LPAREN: {
    if (++p->depth > MAX_DEPTH) {
      cll__tpl_perr(p, "nesting too deep");
      return false;
    }
    a->kind = A_PIPE;
    a->pipe = parse_pipe(p, "parenthesized pipeline", false, true);
    p->depth--;
    if (a->pipe == NULL)
      return false;
    parse_chain(p, a);
    return !p->failed;
  }
  case T_ERR:
    return false;
  default:
    cll__tpl_perr(p, "unexpected \"%s\" in operand", cll__tpl_tok_name(&t));
    return false;
  }
  /* Literals and dot cannot carry fields, except `.` which lexes apart. */
  struct tok nx = cll__tpl_peek(p);
  if (nx.kind == T_FIELD && !nx.sp) {
    cll__tpl_perr(p, "unexpected field after a literal");
    return false;
  }
  return true;
}

static bool parse_cmd(struct parser *p, struct cmd *c) {
  int cap = 0;
  for (;;) {
    struct tok t = cll__tpl_peek(p);
    if (t.kind == T_END || t.kind == T_PIPE || t.kind == T_RPAREN || t.kind == T_EOF ||
        t.kind == T_ERR)
      break;
    if (c->nargs > 0 && !t.sp && t.kind != T_LPAREN) {
      cll__tpl_perr(p, "missing space between operands");
      return false;
    }
    if (c->nargs == cap) {
      cap = cap ? cap * 2 : 4;
      struct arg *q = palloc(p, (size_t)cap * sizeof *q);
      if (q == NULL)
        return false;
      if (c->nargs)
        memcpy(q, c->args, (size_t)c->nargs * sizeof *q);
      c->args = q;
    }
    if (!parse_operand(p, &c->args[c->nargs], c->nargs == 0))
      return false;
    c->nargs++;
  }
  if (c->nargs == 0) {
    cll__tpl_perr(p, "missing value for command");
    return false;
  }
  return true;
}

/* Parses a pipeline up to "}}" (consumed; p->rtrim records -}}) or ")". */
static struct pipe *parse_pipe(struct parser *p, const char *context, bool is_range,
                               bool in_paren) {
  struct pipe *pp = palloc(p, sizeof *pp);
  if (pp == NULL)
    return NULL;
  pp->line = p->line;
  /* Declarations: $x := / $x = / $i, $e := (range only). */
  struct tok t = cll__tpl_peek(p);
  if (t.kind == T_VAR && !in_paren) {
    size_t save_pos = p->pos;
    int save_line = p->line;
    struct tok v1 = cll__tpl_lex(p); /* the peeked var */
    struct tok nx = cll__tpl_lex(p);
    const char *names[2] = {0};
    names[0] = cll__tpl_arena_strndup(&p->t->arena, v1.p, v1.n);
    if (nx.kind == T_COMMA && is_range) {
      struct tok v2 = cll__tpl_lex(p);
      struct tok op = cll__tpl_lex(p);
      if (v2.kind == T_VAR && (op.kind == T_DECLARE || op.kind == T_ASSIGN)) {
        names[1] = cll__tpl_arena_strndup(&p->t->arena, v2.p, v2.n);
        pp->ndecl = 2;
        pp->assign = op.kind == T_ASSIGN;
      } else {
        cll__tpl_perr(p, "range can only initialize variables as $i, $e :=");
        return NULL;
      }
    } else if (nx.kind == T_COMMA) {
      cll__tpl_perr(p, "too many declarations in %s", context);
      return NULL;
    } else if (nx.kind == T_DECLARE || nx.kind == T_ASSIGN) {
      pp->ndecl = 1;
      pp->assign = nx.kind == T_ASSIGN;
    } else {
      /* Not a declaration: rewind so that $x is read again as an operand. */
      p->pos = save_pos;
      p->line = save_line;
      p->peeked = v1;
      p->has_peek = true;
    }
    for (int i = 0; i < pp->ndecl; i++) {
      pp->decl[i] = names[i];
      note_ident(p, names[i], strlen(names[i]));
      if (pp->assign) {
        if (!var_known(p, names[i])) {
          cll__tpl_perr(p, "undefined variable \"%s\"", names[i]);
          return NULL;
        }
      }
    }
    /* Declared variables become visible after the pipeline (pushed below). */
  }
  int cap = 0;
  for (;;) {
    if (pp->ncmds == cap) {
      cap = cap ? cap * 2 : 2;
      struct cmd *q = palloc(p, (size_t)cap * sizeof *q);
      if (q == NULL)
        return NULL;
      if (pp->ncmds)
        memcpy(q, pp->cmds, (size_t)pp->ncmds * sizeof *q);
      pp->cmds = q;
    }
    struct tok nx = cll__tpl_peek(p);
    if (nx.kind == T_END || nx.kind == T_RPAREN) {
      if (pp->ncmds == 0) {
        cll__tpl_perr(p, "missing value for %s", context);
        return NULL;
      }
    }
    struct cmd *c = &pp->cmds[pp->ncmds];
    memset(c, 0, sizeof *c);
    if (!parse_cmd(p, c))
      return NULL;
    if (pp->ncmds > 0) {
      enum arg_kind k = c->args[0].kind;
      if (k == A_BOOL || k == A_DOT || k == A_NIL || k == A_INT || k == A_FLOAT || k == A_STRING) {
        cll__tpl_perr(p, "non executable command in pipeline stage %d", pp->ncmds + 1);
        return NULL;
      }
    }
    pp->ncmds++;
    struct tok e = cll__tpl_lex(p);
    if (e.kind == T_PIPE)
      continue;
    if (in_paren) {
      if (e.kind != T_RPAREN) {
        cll__tpl_perr(p, e.kind == T_END ? "unclosed left paren" : "unexpected \"%s\" in %s",
                      cll__tpl_tok_name(&e), context);
        return NULL;
      }
      break;
    }
    if (e.kind == T_END) {
      p->rtrim = e.trim;
      break;
    }
    if (e.kind == T_EOF)
      cll__tpl_perr(p, "unclosed action");
    else if (e.kind != T_ERR)
      cll__tpl_perr(p, "unexpected \"%s\" in %s", cll__tpl_tok_name(&e), context);
    return NULL;
  }
  if (pp->ndecl > 0 && !pp->assign)
    for (int i = 0; i < pp->ndecl; i++)
      push_var(p, pp->decl[i]);
  return p->failed ? NULL : pp;
}

static bool node_append(struct parser *p, struct node ***list, int *n, int *cap, struct node *nd) {
  if (*n == *cap) {
    int c = *cap ? *cap * 2 : 8;
    struct node **q = palloc(p, (size_t)c * sizeof *q);
    if (q == NULL)
      return false;
    if (*n)
      memcpy(q, *list, (size_t)*n * sizeof *q);
    *list = q;
    *cap = c;
  }
  (*list)[(*n)++] = nd;
  return true;
}

static bool parse_list(struct parser *p, struct node ***list, int *n, enum term *term);

/* After "{{ if|with|range": the pipeline, the body, optional else, end. */
static struct node *parse_control(struct parser *p, enum node_kind kind, const char *context) {
  if (++p->depth > MAX_DEPTH) {
    cll__tpl_perr(p, "nesting too deep");
    return NULL;
  }
  int mark = p->nvars;
  struct node *nd = palloc(p, sizeof *nd);
  if (nd == NULL)
    return NULL;
  nd->kind = kind;
  nd->line = p->line;
  if (kind == N_RANGE)
    p->range_depth++;
  nd->pipe = parse_pipe(p, context, kind == N_RANGE, false);
  if (nd->pipe == NULL)
    return NULL;
  enum term term;
  if (!parse_list(p, &nd->list, &nd->nlist, &term))
    return NULL;
  if (kind == N_RANGE)
    p->range_depth--;
  if (term == TERM_EOF) {
    cll__tpl_perr(p, "unexpected EOF: missing {{end}} for %s", context);
    return NULL;
  }
  if (term == TERM_ELSE) {
    nd->has_else = true;
    /* {{else if ...}} / {{else with ...}}: a nested control that shares our end. */
    struct tok t = cll__tpl_peek(p);
    if ((kind == N_IF && cll__tpl_tok_is(&t, "if")) ||
        (kind == N_WITH && cll__tpl_tok_is(&t, "with"))) {
      cll__tpl_lex(p);
      struct node *inner = parse_control(p, kind, context);
      if (inner == NULL)
        return NULL;
      int cap = 0;
      if (!node_append(p, &nd->else_list, &nd->nelse, &cap, inner))
        return NULL;
    } else {
      struct tok e = cll__tpl_lex(p);
      if (e.kind != T_END) {
        cll__tpl_perr(p, "unexpected \"%.*s\" after else", (int)(e.n > 20 ? 20 : e.n), e.p);
        return NULL;
      }
      p->rtrim = e.trim;
      if (!parse_list(p, &nd->else_list, &nd->nelse, &term))
        return NULL;
      if (term != TERM_END) {
        cll__tpl_perr(p,
                      term == TERM_EOF ? "unexpected EOF: missing {{end}} for %s"
                                       : "expected end; found {{else}} in %s",
                      context);
        return NULL;
      }
    }
  }
  p->nvars = mark;
  p->depth--;
  return nd;
}

/* Reads text and actions until {{end}}, {{else}} (not consumed beyond the
 * keyword) or the end of input. */
static bool parse_list(struct parser *p, struct node ***list, int *n, enum term *term) {
  int cap = 0;
  *list = NULL;
  *n = 0;
  while (!p->failed) {
    /* Text up to the next "{{". */
    const char *start = p->src + p->pos;
    const char *lb = NULL;
    size_t rest = p->len - p->pos;
    for (size_t i = 0; i + 1 < rest; i++)
      if (start[i] == '{' && start[i + 1] == '{') {
        lb = start + i;
        break;
      }
    const char *text_end = lb ? lb : p->src + p->len;
    const char *ts = start, *te = text_end;
    if (p->rtrim) {
      while (ts < te && cll__tpl_is_space(*ts))
        ts++;
      p->rtrim = false;
    }
    bool ltrim = lb != NULL && (size_t)(p->src + p->len - lb) >= 4 && lb[2] == '-' &&
                 cll__tpl_is_space(lb[3]);
    if (ltrim)
      while (te > ts && cll__tpl_is_space(te[-1]))
        te--;
    if (te > ts) {
      struct node *tn = palloc(p, sizeof *tn);
      if (tn == NULL)
        return false;
      tn->kind = N_TEXT;
      tn->line = p->line;
      tn->text = ts;
      tn->len = (size_t)(te - ts);
      if (!node_append(p, list, n, &cap, tn))
        return false;
    }
    cll__tpl_count_lines(p, start, text_end);
    if (lb == NULL) {
      p->pos = p->len;
      *term = TERM_EOF;
      return true;
    }
    p->pos = (size_t)(lb - p->src) + 2 + (ltrim ? 2 : 0);
    if (ltrim && lb[3] == '\n')
      p->line++;
    /* Comment: starts right after the delimiter (and trim marker). */
    if (p->len - p->pos >= 2 && p->src[p->pos] == '/' && p->src[p->pos + 1] == '*') {
      const char *body = p->src + p->pos + 2;
      const char *close = NULL;
      for (const char *q = body; q + 1 < p->src + p->len; q++)
        if (q[0] == '*' && q[1] == '/') {
          close = q;
          break;
        }
      if (close == NULL) {
        cll__tpl_perr(p, "unclosed comment");
        return false;
      }
      cll__tpl_count_lines(p, p->src + p->pos, close);
      p->pos = (size_t)(close - p->src) + 2;
      bool trim;
      size_t d = cll__tpl_at_right_delim(p, p->pos, &trim);
      if (d == 0) {
        cll__tpl_perr(p, "comment ends before closing delimiter");
        return false;
      }
      p->pos += d;
      p->rtrim = trim;
      continue;
    }
    p->has_peek = false;
    struct tok t = cll__tpl_peek(p);
    if (t.kind == T_IDENT) {
      if (cll__tpl_tok_is(&t, "end") || cll__tpl_tok_is(&t, "else")) {
        cll__tpl_lex(p);
        bool is_end = cll__tpl_tok_is(&t, "end");
        if (is_end) {
          struct tok e = cll__tpl_lex(p);
          if (e.kind != T_END) {
            cll__tpl_perr(p, "unexpected \"%.*s\" in end", (int)(e.n > 20 ? 20 : e.n), e.p);
            return false;
          }
          p->rtrim = e.trim;
        }
        *term = is_end ? TERM_END : TERM_ELSE;
        return true;
      }
      struct node *nd = NULL;
      if (cll__tpl_tok_is(&t, "if")) {
        cll__tpl_lex(p);
        nd = parse_control(p, N_IF, "if");
      } else if (cll__tpl_tok_is(&t, "range")) {
        cll__tpl_lex(p);
        nd = parse_control(p, N_RANGE, "range");
      } else if (cll__tpl_tok_is(&t, "with")) {
        cll__tpl_lex(p);
        nd = parse_control(p, N_WITH, "with");
      } else if (cll__tpl_tok_is(&t, "break") || cll__tpl_tok_is(&t, "continue")) {
        cll__tpl_lex(p);
        bool brk = cll__tpl_tok_is(&t, "break");
        if (p->range_depth == 0) {
          cll__tpl_perr(p, "{{%s}} outside {{range}}", brk ? "break" : "continue");
          return false;
        }
        struct tok e = cll__tpl_lex(p);
        if (e.kind != T_END) {
          cll__tpl_perr(p, "unexpected \"%.*s\" in %s", (int)(e.n > 20 ? 20 : e.n), e.p,
                        brk ? "break" : "continue");
          return false;
        }
        p->rtrim = e.trim;
        nd = palloc(p, sizeof *nd);
        if (nd != NULL) {
          nd->kind = brk ? N_BREAK : N_CONTINUE;
          nd->line = p->line;
        }
      } else if (cll__tpl_tok_is(&t, "define") || cll__tpl_tok_is(&t, "template") ||
                 cll__tpl_tok_is(&t, "block")) {
        cll__tpl_perr(p, "{{%.*s}} is not supported by cllama's template subset", (int)t.n, t.p);
        return false;
      }
      if (nd != NULL || p->failed) {
        if (nd == NULL || !node_append(p, list, n, &cap, nd))
          return false;
        continue;
      }
    }
    struct node *nd = palloc(p, sizeof *nd);
    if (nd == NULL)
      return false;
    nd->kind = N_ACTION;
    nd->line = p->line;
    nd->pipe = parse_pipe(p, "command", false, false);
    if (nd->pipe == NULL || !node_append(p, list, n, &cap, nd))
      return false;
  }
  return false;
}

/* ============================================ legacy "cut after .Response" */

static bool has_response(const struct arg *a) {
  if (a->kind != A_FIELD)
    return false;
  for (int i = 0; i < a->nfields; i++)
    if (strcmp(a->fields[i], "Response") == 0)
      return true;
  return false;
}

static struct pipe *cut_pipe(struct cutter *c, const struct pipe *src);

/* Returns false when the arg is dropped. */
static bool cut_arg(struct cutter *c, const struct arg *src, struct arg *dst) {
  if (has_response(src)) {
    c->cut = true;
    *dst = *src;
    return true;
  }
  if (c->cut)
    return false;
  *dst = *src;
  if (src->kind == A_PIPE) {
    dst->pipe = cut_pipe(c, src->pipe);
    if (dst->pipe == NULL)
      return false;
  }
  return true;
}

static struct pipe *cut_pipe(struct cutter *c, const struct pipe *src) {
  if (c->cut)
    return NULL;
  struct pipe *d = cll__tpl_arena_alloc(c->a, sizeof *d);
  struct cmd *cmds = cll__tpl_arena_alloc(c->a, (size_t)src->ncmds * sizeof *cmds);
  if (d == NULL || cmds == NULL) {
    c->oom = true;
    return NULL;
  }
  *d = *src;
  d->cmds = cmds;
  for (int i = 0; i < src->ncmds; i++) {
    struct arg *args = cll__tpl_arena_alloc(c->a, (size_t)src->cmds[i].nargs * sizeof *args);
    if (args == NULL) {
      c->oom = true;
      return NULL;
    }
    int n = 0;
    for (int j = 0; j < src->cmds[i].nargs; j++)
      if (cut_arg(c, &src->cmds[i].args[j], &args[n]))
        n++;
    if (n == 0)
      return NULL; /* a command with no arguments left drops the pipeline */
    cmds[i].args = args;
    cmds[i].nargs = n;
  }
  return d;
}

static struct node **cut_list(struct cutter *c, struct node **src, int n, int *out_n);

static struct node *cut_node(struct cutter *c, const struct node *src) {
  if (c->cut)
    return NULL;
  struct node *d = cll__tpl_arena_alloc(c->a, sizeof *d);
  if (d == NULL) {
    c->oom = true;
    return NULL;
  }
  *d = *src;
  switch (src->kind) {
  case N_ACTION:
    d->pipe = cut_pipe(c, src->pipe);
    return d->pipe ? d : NULL;
  case N_IF:
  case N_WITH:
  case N_RANGE:
    d->list = cut_list(c, src->list, src->nlist, &d->nlist);
    if (src->has_else) {
      if (c->cut) { /* Ollama would panic here; an empty else is the sane reading */
        d->else_list = NULL;
        d->nelse = 0;
      } else {
        d->else_list = cut_list(c, src->else_list, src->nelse, &d->nelse);
      }
    }
    return d;
  default:
    return d;
  }
}

static struct node **cut_list(struct cutter *c, struct node **src, int n, int *out_n) {
  *out_n = 0;
  if (n == 0)
    return NULL;
  struct node **d = cll__tpl_arena_alloc(c->a, (size_t)n * sizeof *d);
  if (d == NULL) {
    c->oom = true;
    return NULL;
  }
  for (int i = 0; i < n; i++) {
    struct node *x = cut_node(c, src[i]);
    if (x != NULL)
      d[(*out_n)++] = x;
  }
  return d;
}

/* ============================================================ public API */

int cll_template_parse(const char *text, size_t len, cll_template **out, cll_err *err) {
  *out = NULL;
  cll_template *t = calloc(1, sizeof *t);
  if (t == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  t->src = malloc(len + 1);
  if (t->src == NULL) {
    free(t);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  memcpy(t->src, text, len);
  t->src[len] = '\0';
  struct parser p = {.t = t, .src = t->src, .len = len, .line = 1, .err = err};
  push_var(&p, "$");
  enum term term = TERM_EOF;
  bool ok = parse_list(&p, &t->root, &t->nroot, &term);
  if (ok && !p.failed && term != TERM_EOF)
    cll__tpl_perr(&p, "unexpected {{%s}}", term == TERM_END ? "end" : "else");
  free(p.vars);
  if (!ok || p.failed) {
    if (!p.failed)
      cll_err_set(err, CLL_EPARSE, "template: parse error");
    cll_template_free(t);
    return err ? err->code : CLL_EPARSE;
  }
  t->uses_messages = cll_template_uses(t, "messages");
  if (!t->uses_messages && !cll_template_uses(t, "response")) {
    /* Ollama appends {{ .Response }} to such templates. */
    struct node *nd = cll__tpl_arena_alloc(&t->arena, sizeof *nd);
    struct pipe *pp = cll__tpl_arena_alloc(&t->arena, sizeof *pp);
    struct cmd *c = cll__tpl_arena_alloc(&t->arena, sizeof *c);
    struct arg *a = cll__tpl_arena_alloc(&t->arena, sizeof *a);
    const char **f = cll__tpl_arena_alloc(&t->arena, sizeof *f);
    struct node **root = cll__tpl_arena_alloc(&t->arena, (size_t)(t->nroot + 1) * sizeof *root);
    if (!nd || !pp || !c || !a || !f || !root) {
      cll_template_free(t);
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    }
    f[0] = "Response";
    *a = (struct arg){.kind = A_FIELD, .fields = f, .nfields = 1};
    *c = (struct cmd){.args = a, .nargs = 1};
    *pp = (struct pipe){.cmds = c, .ncmds = 1};
    *nd = (struct node){.kind = N_ACTION, .pipe = pp};
    if (t->nroot)
      memcpy(root, t->root, (size_t)t->nroot * sizeof *root);
    root[t->nroot++] = nd;
    t->root = root;
    struct parser p2 = {.t = t};
    note_ident(&p2, "response", 8);
  }
  struct cutter c = {.a = &t->arena};
  t->legacy = cut_list(&c, t->root, t->nroot, &t->nlegacy);
  if (c.oom) {
    cll_template_free(t);
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  }
  *out = t;
  return 0;
}

void cll_template_free(cll_template *t) {
  if (t == NULL)
    return;
  cll__tpl_arena_free(&t->arena);
  free(t->src);
  free(t);
}

const char *cll_template_source(const cll_template *t) {
  return t->src;
}

bool cll_template_uses(const cll_template *t, const char *ident) {
  for (int i = 0; i < t->nidents; i++)
    if (strcasecmp(t->idents[i], ident) == 0)
      return true;
  return false;
}

static bool pipe_names_toolcalls(const struct pipe *pp) {
  for (int i = 0; i < pp->ncmds; i++)
    for (int j = 0; j < pp->cmds[i].nargs; j++) {
      const struct arg *a = &pp->cmds[i].args[j];
      if (a->kind == A_FIELD)
        for (int k = 0; k < a->nfields; k++)
          if (strcmp(a->fields[k], "ToolCalls") == 0)
            return true;
    }
  return false;
}

/* Ollama's findToolCallNode: the first if-node (depth first through if
 * bodies, else bodies, range and with bodies) whose condition names
 * .ToolCalls. */
static const struct node *find_toolcalls_if(struct node *const *list, int n) {
  for (int i = 0; i < n; i++) {
    const struct node *nd = list[i];
    if (nd->kind == N_IF && pipe_names_toolcalls(nd->pipe))
      return nd;
    if (nd->kind == N_IF || nd->kind == N_RANGE || nd->kind == N_WITH) {
      const struct node *r = find_toolcalls_if(nd->list, nd->nlist);
      if (r == NULL)
        r = find_toolcalls_if(nd->else_list, nd->nelse);
      if (r != NULL)
        return r;
    }
  }
  return NULL;
}

static const struct node *find_text(struct node *const *list, int n) {
  for (int i = 0; i < n; i++) {
    const struct node *nd = list[i];
    if (nd->kind == N_TEXT)
      return nd;
    if (nd->kind == N_IF || nd->kind == N_RANGE || nd->kind == N_WITH) {
      const struct node *r = find_text(nd->list, nd->nlist);
      if (r == NULL)
        r = find_text(nd->else_list, nd->nelse);
      if (r != NULL)
        return r;
    }
  }
  return NULL;
}

void cll_template_tool_tag(const cll_template *t, char *buf, size_t cap) {
  if (cap == 0)
    return;
  snprintf(buf, cap, "{");
  const struct node *tc = find_toolcalls_if(t->root, t->nroot);
  if (tc == NULL)
    return;
  const struct node *tn = find_text(tc->list, tc->nlist);
  if (tn == NULL)
    return;
  /* \r\n -> \n, cut at '{', trim. */
  size_t o = 0;
  const char *s = tn->text;
  size_t n = tn->len;
  char tmp[256];
  for (size_t i = 0; i < n && s[i] != '{' && o + 1 < sizeof tmp; i++) {
    if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
      continue;
    tmp[o++] = s[i];
  }
  size_t a = 0;
  while (a < o && isspace((unsigned char)tmp[a]))
    a++;
  while (o > a && isspace((unsigned char)tmp[o - 1]))
    o--;
  if (o > a)
    snprintf(buf, cap, "%.*s", (int)(o - a), tmp + a);
}

/* ------------------------------------------------------- thinking tags */

static bool pipe_uses_field(const struct pipe *pp, const char *name) {
  for (int i = 0; i < pp->ncmds; i++)
    for (int j = 0; j < pp->cmds[i].nargs; j++) {
      const struct arg *a = &pp->cmds[i].args[j];
      if (a->kind == A_FIELD && strcmp(a->fields[0], name) == 0)
        return true;
      if (a->kind == A_PIPE && pipe_uses_field(a->pipe, name))
        return true;
    }
  return false;
}

static void copy_trimmed(char *dst, size_t cap, const char *s, size_t n) {
  while (n > 0 && isspace((unsigned char)*s))
    s++, n--;
  while (n > 0 && isspace((unsigned char)s[n - 1]))
    n--;
  snprintf(dst, cap, "%.*s", (int)(n < cap ? n : cap - 1), s);
}

static void think_pipe(struct think_walk *w, const struct pipe *pp, struct node *const *list, int n,
                       const struct node *range) {
  for (int i = 0; i < pp->ncmds; i++)
    for (int j = 0; j < pp->cmds[i].nargs; j++) {
      const struct arg *a = &pp->cmds[i].args[j];
      if (a->kind == A_PIPE)
        think_pipe(w, a->pipe, list, n, range);
      if (a->kind != A_FIELD || strcmp(a->fields[0], "Thinking") != 0)
        continue;
      if (range == NULL || !pipe_uses_field(range->pipe, "Messages") || n == 0)
        continue;
      if (list[0]->kind == N_TEXT)
        copy_trimmed(w->open, w->open_cap, list[0]->text, list[0]->len);
      if (list[n - 1]->kind == N_TEXT)
        copy_trimmed(w->close, w->close_cap, list[n - 1]->text, list[n - 1]->len);
    }
}

static void think_list(struct think_walk *w, struct node *const *list, int n,
                       const struct node *range) {
  for (int i = 0; i < n; i++) {
    const struct node *nd = list[i];
    if (nd->kind == N_ACTION) {
      think_pipe(w, nd->pipe, list, n, range);
    } else if (nd->kind == N_IF || nd->kind == N_WITH || nd->kind == N_RANGE) {
      const struct node *r = nd->kind == N_RANGE ? nd : range;
      think_pipe(w, nd->pipe, list, n, r);
      think_list(w, nd->list, nd->nlist, r);
      think_list(w, nd->else_list, nd->nelse, r);
    }
  }
}

void cll_template_think_tags(const cll_template *t, char *open, size_t open_cap, char *close,
                             size_t close_cap) {
  if (open_cap)
    open[0] = '\0';
  if (close_cap)
    close[0] = '\0';
  if (open_cap == 0 || close_cap == 0)
    return;
  struct think_walk w = {open, close, open_cap, close_cap};
  think_list(&w, t->root, t->nroot, NULL);
}
