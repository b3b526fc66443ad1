/* template.c — Ollama's prompt templates: a Go text/template subset.
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
 * and 10 million loop iterations per render; hitting one is an error. */
#include "cllama/template.h"
#include "cllama/utf8.h"
#include "cllama/util.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_DEPTH 100
#define MAX_OUTPUT (64u << 20)
#define MAX_ITERS 10000000L

/* ================================================================ arena */

struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

struct arena {
  struct arena_block *head;
};

static void *arena_alloc(struct arena *a, size_t n) {
  n = (n + 15) & ~(size_t)15;
  struct arena_block *b = a->head;
  if (b == NULL || b->cap - b->used < n) {
    size_t cap = n > 16384 ? n : 16384;
    b = malloc(sizeof *b + cap);
    if (b == NULL)
      return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += n;
  memset(p, 0, n);
  return p;
}

static char *arena_strndup(struct arena *a, const char *s, size_t n) {
  char *p = arena_alloc(a, n + 1);
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

static void arena_free(struct arena *a) {
  struct arena_block *b = a->head;
  while (b != NULL) {
    struct arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
}

/* =============================================================== buffer */

/* Output goes into the shared cll_buf (util.h), each limited to MAX_OUTPUT:
 * past it, or when memory runs out, its sticky err is set and rendering
 * fails with "out of memory". */
#define buf_add cll_buf_append
#define buf_puts cll_buf_puts
#define buf_putc cll_buf_putc
#define buf_printf cll_buf_printf

/* ============================================================ the tree */

enum fn_id {
  F_NONE,
  F_AND,
  F_OR,
  F_NOT,
  F_EQ,
  F_NE,
  F_LT,
  F_LE,
  F_GT,
  F_GE,
  F_LEN,
  F_INDEX,
  F_SLICE,
  F_PRINT,
  F_PRINTF,
  F_PRINTLN,
  F_JSON,
  F_CURRENT_DATE,
  F_YESTERDAY_DATE,
  F_TO_TS_TYPE,
};

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

enum arg_kind {
  A_DOT,    /* . */
  A_FIELD,  /* .A.B (chain on dot) */
  A_VAR,    /* $x or $x.A.B */
  A_FUNC,   /* identifier naming a function */
  A_STRING, /* string literal */
  A_INT,
  A_FLOAT,
  A_BOOL,
  A_NIL,
  A_PIPE, /* ( pipeline ) with optional .A.B after it */
};

struct pipe;

struct arg {
  enum arg_kind kind;
  const char *s; /* A_STRING (n bytes), A_VAR name ("$" or "$x") */
  size_t n;
  int64_t i;
  double f;
  bool b;
  enum fn_id fn;
  const char **fields; /* chain after the term */
  int nfields;
  struct pipe *pipe; /* A_PIPE */
};

struct cmd {
  struct arg *args;
  int nargs;
};

struct pipe {
  const char *decl[2]; /* variable names declared / assigned */
  int ndecl;
  bool assign; /* `=` rather than `:=` */
  struct cmd *cmds;
  int ncmds;
  int line;
};

enum node_kind { N_TEXT, N_ACTION, N_IF, N_RANGE, N_WITH, N_BREAK, N_CONTINUE };

struct node {
  enum node_kind kind;
  int line;
  const char *text; /* N_TEXT */
  size_t len;
  struct pipe *pipe;              /* action / control */
  struct node **list, **else_list; /* control bodies */
  int nlist, nelse;
  bool has_else;
};

struct cll_template {
  struct arena arena;
  char *src;
  struct node **root;
  int nroot;
  struct node **legacy; /* root cut after the first .Response (legacy mode) */
  int nlegacy;
  char **idents; /* lower-cased identifiers (Template.Vars) */
  int nidents;
  bool uses_messages;
};

/* ================================================================ lexer */

enum tok_kind {
  T_END,  /* }} or -}} */
  T_EOF,  /* input ended inside an action */
  T_ERR,
  T_FIELD, /* .Name */
  T_VAR,   /* $ or $name */
  T_IDENT,
  T_STRING,
  T_RAW,
  T_CHAR,
  T_NUMBER,
  T_DOT,
  T_DECLARE, /* := */
  T_ASSIGN,  /* = */
  T_PIPE,    /* | */
  T_LPAREN,
  T_RPAREN,
  T_COMMA,
};

struct tok {
  enum tok_kind kind;
  const char *p; /* token text */
  size_t n;
  bool sp;   /* whitespace before it */
  bool trim; /* T_END: it was -}} */
};

struct parser {
  cll_template *t;
  const char *src;
  size_t len, pos;
  int line;
  cll_err *err;
  bool failed;
  bool rtrim; /* the last action ended with -}} */
  int depth;
  int range_depth;
  const char **vars; /* variables in scope (parse-time check) */
  int nvars, capvars;
  struct tok peeked;
  bool has_peek;
};

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alnum_(unsigned char c) {
  return c == '_' || isalnum(c) || c >= 0x80;
}

static void perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct parser *p, const char *fmt, ...) {
  if (p->failed)
    return;
  p->failed = true;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  cll_err_set(p->err, CLL_EPARSE, "template: line %d: %s", p->line, msg);
}

static void count_lines(struct parser *p, const char *a, const char *b) {
  for (; a < b; a++)
    if (*a == '\n')
      p->line++;
}

/* At "}}" or " -}}" (whitespace, '-', "}}")? Returns the length to skip. */
static size_t at_right_delim(const struct parser *p, size_t pos, bool *trim) {
  const char *s = p->src + pos;
  size_t rest = p->len - pos;
  if (rest >= 4 && is_space(s[0]) && s[1] == '-' && s[2] == '}' && s[3] == '}') {
    *trim = true;
    return 4;
  }
  if (rest >= 2 && s[0] == '}' && s[1] == '}') {
    *trim = false;
    return 2;
  }
  return 0;
}

static struct tok lex(struct parser *p) {
  if (p->has_peek) {
    p->has_peek = false;
    return p->peeked;
  }
  struct tok t = {0};
  for (;;) {
    bool trim;
    size_t d = at_right_delim(p, p->pos, &trim);
    if (d > 0) {
      t.kind = T_END;
      t.trim = trim;
      t.p = p->src + p->pos;
      t.n = d;
      count_lines(p, p->src + p->pos, p->src + p->pos + d);
      p->pos += d;
      return t;
    }
    if (p->pos >= p->len) {
      t.kind = T_EOF;
      return t;
    }
    if (is_space(p->src[p->pos])) {
      if (p->src[p->pos] == '\n')
        p->line++;
      p->pos++;
      t.sp = true;
      continue;
    }
    break;
  }
  const char *s = p->src + p->pos;
  size_t rest = p->len - p->pos;
  t.p = s;
  size_t n = 1;
  unsigned char c = (unsigned char)s[0];
  if (c == '.' && rest >= 2 && isdigit((unsigned char)s[1])) {
    goto number; /* .5 is a number, as in Go */
  } else if (c == '.' && (rest < 2 || !is_alnum_((unsigned char)s[1]))) {
    t.kind = T_DOT;
  } else if (c == '.') {
    while (n < rest && is_alnum_((unsigned char)s[n]))
      n++;
    t.kind = T_FIELD;
  } else if (c == '$') {
    while (n < rest && is_alnum_((unsigned char)s[n]))
      n++;
    t.kind = T_VAR;
  } else if (c == ':' && rest >= 2 && s[1] == '=') {
    n = 2;
    t.kind = T_DECLARE;
  } else if (c == '=') {
    t.kind = T_ASSIGN;
  } else if (c == '|') {
    t.kind = T_PIPE;
  } else if (c == '(') {
    t.kind = T_LPAREN;
  } else if (c == ')') {
    t.kind = T_RPAREN;
  } else if (c == ',') {
    t.kind = T_COMMA;
  } else if (c == '"' || c == '\'') {
    while (n < rest && s[n] != (char)c && s[n] != '\n') {
      if (s[n] == '\\' && n + 1 < rest)
        n++;
      n++;
    }
    if (n >= rest || s[n] != (char)c) {
      perr(p, c == '"' ? "unterminated quoted string" : "unterminated character constant");
      t.kind = T_ERR;
      return t;
    }
    n++;
    t.kind = c == '"' ? T_STRING : T_CHAR;
  } else if (c == '`') {
    while (n < rest && s[n] != '`')
      n++;
    if (n >= rest) {
      perr(p, "unterminated raw quoted string");
      t.kind = T_ERR;
      return t;
    }
    n++;
    count_lines(p, s, s + n);
    t.kind = T_RAW;
  } else if (isdigit(c) || ((c == '-' || c == '+') && rest >= 2 &&
                            (isdigit((unsigned char)s[1]) || s[1] == '.'))) {
  number:
    n = 1;
    while (n < rest && (isalnum((unsigned char)s[n]) || s[n] == '.' || s[n] == '_' ||
                        ((s[n] == '+' || s[n] == '-') && (s[n - 1] == 'e' || s[n - 1] == 'E' ||
                                                          s[n - 1] == 'p' || s[n - 1] == 'P'))))
      n++;
    t.kind = T_NUMBER;
  } else if (is_alnum_(c)) {
    while (n < rest && is_alnum_((unsigned char)s[n]))
      n++;
    t.kind = T_IDENT;
  } else {
    perr(p, "unexpected character '%c' in action", isprint(c) ? c : '?');
    t.kind = T_ERR;
    return t;
  }
  t.n = n;
  p->pos += n;
  if (t.kind == T_IDENT || t.kind == T_FIELD || t.kind == T_VAR) {
    /* As Go's lexer: a word must end at a terminator. */
    bool trim;
    char c2 = p->pos < p->len ? p->src[p->pos] : ' ';
    if (!is_space(c2) && !strchr(".,|:()", c2) && at_right_delim(p, p->pos, &trim) == 0) {
      perr(p, "bad character '%c' after \"%.*s\"", isprint((unsigned char)c2) ? c2 : '?',
           (int)(n > 40 ? 40 : n), s);
      t.kind = T_ERR;
    }
  }
  return t;
}

static struct tok peek(struct parser *p) {
  if (!p->has_peek) {
    p->peeked = lex(p);
    p->has_peek = true;
  }
  return p->peeked;
}

static bool tok_is(const struct tok *t, const char *word) {
  return t->kind == T_IDENT && t->n == strlen(word) && memcmp(t->p, word, t->n) == 0;
}

static const char *tok_name(const struct tok *t) {
  switch (t->kind) {
  case T_END:
    return "}}";
  case T_EOF:
    return "end of input";
  case T_PIPE:
    return "|";
  case T_LPAREN:
    return "(";
  case T_RPAREN:
    return ")";
  case T_COMMA:
    return ",";
  case T_DECLARE:
    return ":=";
  case T_ASSIGN:
    return "=";
  default:
    return "token";
  }
}

/* ============================================================ literals */

/* Decodes a Go quoted string or char body (between the quotes) into out
 * (at least n bytes); returns the length or -1 on a bad escape. */
static long unquote(const char *s, size_t n, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] != '\\') {
      out[o++] = s[i];
      continue;
    }
    if (++i >= n)
      return -1;
    char c = s[i];
    switch (c) {
    case 'a': out[o++] = '\a'; break;
    case 'b': out[o++] = '\b'; break;
    case 'f': out[o++] = '\f'; break;
    case 'n': out[o++] = '\n'; break;
    case 'r': out[o++] = '\r'; break;
    case 't': out[o++] = '\t'; break;
    case 'v': out[o++] = '\v'; break;
    case '\\': out[o++] = '\\'; break;
    case '"': out[o++] = '"'; break;
    case '\'': out[o++] = '\''; break;
    case 'x': case 'u': case 'U': {
      size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
      uint32_t v = 0;
      for (size_t k = 1; k <= digits; k++) {
        if (i + k >= n)
          return -1;
        int h = cll_hex_digit(s[i + k]);
        if (h < 0)
          return -1;
        v = v * 16 + (uint32_t)h;
      }
      i += digits;
      if (c == 'x')
        out[o++] = (char)v;
      else
        o += cll_utf8_encode(v, out + o);
      break;
    }
    default:
      if (c >= '0' && c <= '7') {
        if (i + 2 >= n)
          return -1;
        uint32_t v = 0;
        for (size_t k = 0; k < 3; k++) {
          if (s[i + k] < '0' || s[i + k] > '7')
            return -1;
          v = v * 8 + (uint32_t)(s[i + k] - '0');
        }
        if (v > 255)
          return -1;
        out[o++] = (char)v;
        i += 2;
        break;
      }
      return -1;
    }
  }
  return (long)o;
}

static bool parse_number(const struct tok *t, struct arg *a) {
  char tmp[128];
  size_t n = 0;
  for (size_t i = 0; i < t->n && n + 1 < sizeof tmp; i++)
    if (t->p[i] != '_')
      tmp[n++] = t->p[i];
  tmp[n] = '\0';
  if (n == 0 || n + 1 >= sizeof tmp)
    return false;
  if (tmp[n - 1] == 'i')
    return false; /* imaginary numbers are outside the subset */
  char *end;
  const char *body = tmp + (tmp[0] == '-' || tmp[0] == '+');
  bool hex = body[0] == '0' && (body[1] == 'x' || body[1] == 'X');
  bool is_float = !hex && (strpbrk(tmp, ".eE") != NULL);
  if (!is_float) {
    int base = 10;
    const char *digits = body;
    if (body[0] == '0' && (body[1] == 'x' || body[1] == 'X'))
      base = 16, digits = body + 2;
    else if (body[0] == '0' && (body[1] == 'o' || body[1] == 'O'))
      base = 8, digits = body + 2;
    else if (body[0] == '0' && (body[1] == 'b' || body[1] == 'B'))
      base = 2, digits = body + 2;
    else if (body[0] == '0' && body[1] != '\0')
      base = 8, digits = body + 1;
    if (*digits == '\0' || *digits == '-' || *digits == '+')
      return false;
    errno = 0;
    unsigned long long v = strtoull(digits, &end, base);
    if (*end != '\0' || errno != 0 || v > (unsigned long long)INT64_MAX)
      return false;
    a->kind = A_INT;
    a->i = tmp[0] == '-' ? -(int64_t)v : (int64_t)v;
    a->f = (double)a->i;
    return true;
  }
  double f = strtod(tmp, &end);
  if (*end != '\0')
    return false;
  a->kind = A_FLOAT;
  a->f = f;
  return true;
}

/* ============================================================== parser */

static void *palloc(struct parser *p, size_t n) {
  void *q = arena_alloc(&p->t->arena, n);
  if (q == NULL)
    perr(p, "out of memory");
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
  t->idents[t->nidents] = arena_strndup(&t->arena, low, n);
  if (t->idents[t->nidents] != NULL)
    t->nidents++;
}

static void push_var(struct parser *p, const char *name) {
  if (p->nvars == p->capvars) {
    int cap = p->capvars ? p->capvars * 2 : 16;
    const char **q = realloc(p->vars, (size_t)cap * sizeof *q);
    if (q == NULL) {
      perr(p, "out of memory");
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
    struct tok t = peek(p);
    if (t.kind != T_FIELD || t.sp)
      return;
    lex(p);
    const char **f = palloc(p, (size_t)(a->nfields + 1) * sizeof *f);
    if (f == NULL)
      return;
    if (a->nfields)
      memcpy(f, a->fields, (size_t)a->nfields * sizeof *f);
    f[a->nfields] = arena_strndup(&p->t->arena, t.p + 1, t.n - 1);
    a->fields = f;
    a->nfields++;
  }
}

static struct pipe *parse_pipe(struct parser *p, const char *context, bool is_range, bool in_paren);

static bool parse_operand(struct parser *p, struct arg *a, bool first_in_cmd) {
  struct tok t = lex(p);
  switch (t.kind) {
  case T_DOT:
    a->kind = A_DOT;
    break;
  case T_FIELD:
    a->kind = A_FIELD;
    a->fields = palloc(p, sizeof *a->fields);
    if (a->fields == NULL)
      return false;
    a->fields[0] = arena_strndup(&p->t->arena, t.p + 1, t.n - 1);
    a->nfields = 1;
    note_ident(p, t.p + 1, t.n - 1);
    parse_chain(p, a);
    for (int i = 1; i < a->nfields; i++)
      note_ident(p, a->fields[i], strlen(a->fields[i]));
    return !p->failed;
  case T_VAR: {
    char *name = arena_strndup(&p->t->arena, t.p, t.n);
    if (name == NULL)
      return false;
    if (!var_known(p, name)) {
      perr(p, "undefined variable \"%s\"", name);
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
    if (tok_is(&t, "true") || tok_is(&t, "false")) {
      a->kind = A_BOOL;
      a->b = tok_is(&t, "true");
      break;
    }
    if (tok_is(&t, "nil")) {
      if (first_in_cmd) {
        perr(p, "nil is not a command");
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
        perr(p, "function \"%s\" is not supported by cllama's template subset",
             UNSUPPORTED_FUNCS[i]);
        return false;
      }
    static const char *const kw[] = {"if", "else", "end", "range", "with", "break",
                                     "continue", "define", "template", "block"};
    for (size_t i = 0; i < CLL_ARRAY_LEN(kw); i++)
      if (tok_is(&t, kw[i])) {
        perr(p, "unexpected keyword \"%s\" in operand", kw[i]);
        return false;
      }
    perr(p, "function \"%.*s\" not defined", (int)(t.n > 60 ? 60 : t.n), t.p);
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
    long n = unquote(t.p + 1, t.n - 2, buf);
    if (n < 0) {
      perr(p, "bad escape in quoted string");
      return false;
    }
    if (t.kind == T_STRING) {
      a->kind = A_STRING;
      a->s = buf;
      a->n = (size_t)n;
    } else {
      uint32_t cp;
      if (n == 0 || cll_utf8_decode((const unsigned char *)buf, (size_t)n, &cp) != (size_t)n) {
        perr(p, "malformed character constant");
        return false;
      }
      a->kind = A_INT;
      a->i = cp;
      a->f = cp;
    }
    break;
  }
  case T_NUMBER:
    if (!parse_number(&t, a)) {
      perr(p, "bad number syntax: %.*s", (int)(t.n > 40 ? 40 : t.n), t.p);
      return false;
    }
    break;
  case T_LPAREN: {
    if (++p->depth > MAX_DEPTH) {
      perr(p, "nesting too deep");
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
    perr(p, "unexpected \"%s\" in operand", tok_name(&t));
    return false;
  }
  /* Literals and dot cannot carry fields, except `.` which lexes apart. */
  struct tok nx = peek(p);
  if (nx.kind == T_FIELD && !nx.sp) {
    perr(p, "unexpected field after a literal");
    return false;
  }
  return true;
}

static bool parse_cmd(struct parser *p, struct cmd *c) {
  int cap = 0;
  for (;;) {
    struct tok t = peek(p);
    if (t.kind == T_END || t.kind == T_PIPE || t.kind == T_RPAREN || t.kind == T_EOF ||
        t.kind == T_ERR)
      break;
    if (c->nargs > 0 && !t.sp && t.kind != T_LPAREN) {
      perr(p, "missing space between operands");
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
    perr(p, "missing value for command");
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
  struct tok t = peek(p);
  if (t.kind == T_VAR && !in_paren) {
    size_t save_pos = p->pos;
    int save_line = p->line;
    struct tok v1 = lex(p); /* the peeked var */
    struct tok nx = lex(p);
    const char *names[2] = {0};
    names[0] = arena_strndup(&p->t->arena, v1.p, v1.n);
    if (nx.kind == T_COMMA && is_range) {
      struct tok v2 = lex(p);
      struct tok op = lex(p);
      if (v2.kind == T_VAR && (op.kind == T_DECLARE || op.kind == T_ASSIGN)) {
        names[1] = arena_strndup(&p->t->arena, v2.p, v2.n);
        pp->ndecl = 2;
        pp->assign = op.kind == T_ASSIGN;
      } else {
        perr(p, "range can only initialize variables as $i, $e :=");
        return NULL;
      }
    } else if (nx.kind == T_COMMA) {
      perr(p, "too many declarations in %s", context);
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
          perr(p, "undefined variable \"%s\"", names[i]);
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
    struct tok nx = peek(p);
    if (nx.kind == T_END || nx.kind == T_RPAREN) {
      if (pp->ncmds == 0) {
        perr(p, "missing value for %s", context);
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
        perr(p, "non executable command in pipeline stage %d", pp->ncmds + 1);
        return NULL;
      }
    }
    pp->ncmds++;
    struct tok e = lex(p);
    if (e.kind == T_PIPE)
      continue;
    if (in_paren) {
      if (e.kind != T_RPAREN) {
        perr(p, e.kind == T_END ? "unclosed left paren" : "unexpected \"%s\" in %s",
             tok_name(&e), context);
        return NULL;
      }
      break;
    }
    if (e.kind == T_END) {
      p->rtrim = e.trim;
      break;
    }
    if (e.kind == T_EOF)
      perr(p, "unclosed action");
    else if (e.kind != T_ERR)
      perr(p, "unexpected \"%s\" in %s", tok_name(&e), context);
    return NULL;
  }
  if (pp->ndecl > 0 && !pp->assign)
    for (int i = 0; i < pp->ndecl; i++)
      push_var(p, pp->decl[i]);
  return p->failed ? NULL : pp;
}

enum term { TERM_EOF, TERM_END, TERM_ELSE };

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
    perr(p, "nesting too deep");
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
    perr(p, "unexpected EOF: missing {{end}} for %s", context);
    return NULL;
  }
  if (term == TERM_ELSE) {
    nd->has_else = true;
    /* {{else if ...}} / {{else with ...}}: a nested control that shares our end. */
    struct tok t = peek(p);
    if ((kind == N_IF && tok_is(&t, "if")) || (kind == N_WITH && tok_is(&t, "with"))) {
      lex(p);
      struct node *inner = parse_control(p, kind, context);
      if (inner == NULL)
        return NULL;
      int cap = 0;
      if (!node_append(p, &nd->else_list, &nd->nelse, &cap, inner))
        return NULL;
    } else {
      struct tok e = lex(p);
      if (e.kind != T_END) {
        perr(p, "unexpected \"%.*s\" after else", (int)(e.n > 20 ? 20 : e.n), e.p);
        return NULL;
      }
      p->rtrim = e.trim;
      if (!parse_list(p, &nd->else_list, &nd->nelse, &term))
        return NULL;
      if (term != TERM_END) {
        perr(p, term == TERM_EOF ? "unexpected EOF: missing {{end}} for %s"
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
      while (ts < te && is_space(*ts))
        ts++;
      p->rtrim = false;
    }
    bool ltrim = lb != NULL && (size_t)(p->src + p->len - lb) >= 4 && lb[2] == '-' && is_space(lb[3]);
    if (ltrim)
      while (te > ts && is_space(te[-1]))
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
    count_lines(p, start, text_end);
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
        perr(p, "unclosed comment");
        return false;
      }
      count_lines(p, p->src + p->pos, close);
      p->pos = (size_t)(close - p->src) + 2;
      bool trim;
      size_t d = at_right_delim(p, p->pos, &trim);
      if (d == 0) {
        perr(p, "comment ends before closing delimiter");
        return false;
      }
      p->pos += d;
      p->rtrim = trim;
      continue;
    }
    p->has_peek = false;
    struct tok t = peek(p);
    if (t.kind == T_IDENT) {
      if (tok_is(&t, "end") || tok_is(&t, "else")) {
        lex(p);
        bool is_end = tok_is(&t, "end");
        if (is_end) {
          struct tok e = lex(p);
          if (e.kind != T_END) {
            perr(p, "unexpected \"%.*s\" in end", (int)(e.n > 20 ? 20 : e.n), e.p);
            return false;
          }
          p->rtrim = e.trim;
        }
        *term = is_end ? TERM_END : TERM_ELSE;
        return true;
      }
      struct node *nd = NULL;
      if (tok_is(&t, "if")) {
        lex(p);
        nd = parse_control(p, N_IF, "if");
      } else if (tok_is(&t, "range")) {
        lex(p);
        nd = parse_control(p, N_RANGE, "range");
      } else if (tok_is(&t, "with")) {
        lex(p);
        nd = parse_control(p, N_WITH, "with");
      } else if (tok_is(&t, "break") || tok_is(&t, "continue")) {
        lex(p);
        bool brk = tok_is(&t, "break");
        if (p->range_depth == 0) {
          perr(p, "{{%s}} outside {{range}}", brk ? "break" : "continue");
          return false;
        }
        struct tok e = lex(p);
        if (e.kind != T_END) {
          perr(p, "unexpected \"%.*s\" in %s", (int)(e.n > 20 ? 20 : e.n), e.p,
               brk ? "break" : "continue");
          return false;
        }
        p->rtrim = e.trim;
        nd = palloc(p, sizeof *nd);
        if (nd != NULL) {
          nd->kind = brk ? N_BREAK : N_CONTINUE;
          nd->line = p->line;
        }
      } else if (tok_is(&t, "define") || tok_is(&t, "template") || tok_is(&t, "block")) {
        perr(p, "{{%.*s}} is not supported by cllama's template subset", (int)t.n, t.p);
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

/* Mirrors Ollama's deleteNode: walk in tree order; once a field node whose
 * chain contains "Response" has been seen, every later node is dropped
 * (that field node itself stays). Conditions of if/with/range are not
 * walked. Returns false on allocation failure. */
struct cutter {
  struct arena *a;
  bool cut;
  bool oom;
};

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
  struct pipe *d = arena_alloc(c->a, sizeof *d);
  struct cmd *cmds = arena_alloc(c->a, (size_t)src->ncmds * sizeof *cmds);
  if (d == NULL || cmds == NULL) {
    c->oom = true;
    return NULL;
  }
  *d = *src;
  d->cmds = cmds;
  for (int i = 0; i < src->ncmds; i++) {
    struct arg *args = arena_alloc(c->a, (size_t)src->cmds[i].nargs * sizeof *args);
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
  struct node *d = arena_alloc(c->a, sizeof *d);
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
  struct node **d = arena_alloc(c->a, (size_t)n * sizeof *d);
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
    perr(&p, "unexpected {{%s}}", term == TERM_END ? "end" : "else");
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
    struct node *nd = arena_alloc(&t->arena, sizeof *nd);
    struct pipe *pp = arena_alloc(&t->arena, sizeof *pp);
    struct cmd *c = arena_alloc(&t->arena, sizeof *c);
    struct arg *a = arena_alloc(&t->arena, sizeof *a);
    const char **f = arena_alloc(&t->arena, sizeof *f);
    struct node **root = arena_alloc(&t->arena, (size_t)(t->nroot + 1) * sizeof *root);
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
  arena_free(&t->arena);
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

struct think_walk {
  char *open, *close;
  size_t open_cap, close_cap;
};

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

static void think_pipe(struct think_walk *w, const struct pipe *pp, struct node *const *list,
                       int n, const struct node *range) {
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

/* ================================================================ values
 *
 * A value is a scalar or a (json node, Go type) pair. The Go types are the
 * structs Ollama hands its templates (template.go: templateMessage,
 * templateToolCall, templateTool, ...); the tables give each struct's
 * fields (Go name, JSON key in our data, type). */

enum gtype {
  G_NONE,
  G_STR,     /* element type of string lists */
  G_ANY,     /* decoded JSON (Go any): maps print as map[..], marshal with sorted keys */
  G_ROOT,    /* map[string]any: the template's data */
  G_MSGS,    /* []*templateMessage */
  G_MSG,
  G_IMAGES,  /* []ImageData */
  G_TCALLS,  /* []templateToolCall */
  G_TCALL,
  G_TCFUNC,
  G_ARGS,    /* templateArgs: map[string]any, prints as JSON */
  G_TOOLS,   /* templateTools, prints as JSON */
  G_TOOL,    /* prints as JSON */
  G_TFUNC,
  G_TPARAMS,
  G_PROPS,   /* templateProperties: map[string]ToolProperty, prints as JSON, sorted */
  G_PROPMAP, /* *ToolPropertiesMap inside a property: insertion order */
  G_PROP,    /* api.ToolProperty */
  G_PROPLIST,
  G_PTYPE, /* PropertyType: []string printing its single element */
  G_STRLIST,
  G_ANYLIST,
};

enum scalar { S_NONE, S_STR, S_INT, S_BOOL };

struct field {
  const char *go, *key;
  unsigned char g, s;
};

static const struct field F_ROOT[] = {
    {"System", "System", 0, S_STR},     {"Messages", "Messages", G_MSGS, 0},
    {"Tools", "Tools", G_TOOLS, 0},     {"Prompt", "Prompt", 0, S_STR},
    {"Suffix", "Suffix", 0, S_STR},     {"Response", "Response", 0, S_STR},
    {"Think", "Think", 0, S_BOOL},      {"ThinkLevel", "ThinkLevel", 0, S_STR},
    {"IsThinkSet", "IsThinkSet", 0, S_BOOL},
};
static const struct field F_MSG[] = {
    {"Role", "role", 0, S_STR},           {"Content", "content", 0, S_STR},
    {"Thinking", "thinking", 0, S_STR},   {"Images", "images", G_IMAGES, 0},
    {"ToolCalls", "tool_calls", G_TCALLS, 0}, {"ToolName", "tool_name", 0, S_STR},
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
    {"Type", "type", 0, S_STR},         {"Defs", "$defs", G_ANY, 0},
    {"Items", "items", G_ANY, 0},       {"Required", "required", G_STRLIST, 0},
    {"Properties", "properties", G_PROPS, 0},
};
static const struct field F_PROP[] = {
    {"AnyOf", "anyOf", G_PROPLIST, 0},  {"Type", "type", G_PTYPE, 0},
    {"Items", "items", G_ANY, 0},       {"Description", "description", 0, S_STR},
    {"Enum", "enum", G_ANYLIST, 0},     {"Properties", "properties", G_PROPMAP, 0},
    {"Required", "required", G_STRLIST, 0},
};

enum shape { SH_SCALAR, SH_STRUCT, SH_LIST, SH_MAP };

static const struct gtinfo {
  const char *name; /* Go type, for error messages */
  enum shape shape;
  const struct field *f;
  int nf;
  unsigned char elem; /* list element / map value type */
  bool prints_json;   /* has a String method that marshals */
} GT[] = {
    [G_NONE] = {"invalid", SH_SCALAR, NULL, 0, 0, false},
    [G_STR] = {"string", SH_SCALAR, NULL, 0, 0, false},
    [G_ANY] = {"interface {}", SH_SCALAR, NULL, 0, G_ANY, false},
    [G_ROOT] = {"map[string]interface {}", SH_MAP, F_ROOT, CLL_ARRAY_LEN(F_ROOT), G_ANY, false},
    [G_MSGS] = {"[]*template.templateMessage", SH_LIST, NULL, 0, G_MSG, false},
    [G_MSG] = {"*template.templateMessage", SH_STRUCT, F_MSG, CLL_ARRAY_LEN(F_MSG), 0, false},
    [G_IMAGES] = {"[]api.ImageData", SH_LIST, NULL, 0, G_STR, false},
    [G_TCALLS] = {"[]template.templateToolCall", SH_LIST, NULL, 0, G_TCALL, false},
    [G_TCALL] = {"template.templateToolCall", SH_STRUCT, F_TCALL, CLL_ARRAY_LEN(F_TCALL), 0, false},
    [G_TCFUNC] = {"template.templateToolCallFunction", SH_STRUCT, F_TCFUNC, CLL_ARRAY_LEN(F_TCFUNC), 0, false},
    [G_ARGS] = {"template.templateArgs", SH_MAP, NULL, 0, G_ANY, true},
    [G_TOOLS] = {"template.templateTools", SH_LIST, NULL, 0, G_TOOL, true},
    [G_TOOL] = {"template.templateTool", SH_STRUCT, F_TOOL, CLL_ARRAY_LEN(F_TOOL), 0, true},
    [G_TFUNC] = {"template.templateToolFunction", SH_STRUCT, F_TFUNC, CLL_ARRAY_LEN(F_TFUNC), 0, true},
    [G_TPARAMS] = {"template.templateToolFunctionParameters", SH_STRUCT, F_TPARAMS, CLL_ARRAY_LEN(F_TPARAMS), 0, true},
    [G_PROPS] = {"template.templateProperties", SH_MAP, NULL, 0, G_PROP, true},
    [G_PROPMAP] = {"*api.ToolPropertiesMap", SH_MAP, NULL, 0, G_PROP, true},
    [G_PROP] = {"api.ToolProperty", SH_STRUCT, F_PROP, CLL_ARRAY_LEN(F_PROP), 0, true},
    [G_PROPLIST] = {"[]api.ToolProperty", SH_LIST, NULL, 0, G_PROP, false},
    [G_PTYPE] = {"api.PropertyType", SH_LIST, NULL, 0, G_STR, false},
    [G_STRLIST] = {"[]string", SH_LIST, NULL, 0, G_STR, false},
    [G_ANYLIST] = {"[]interface {}", SH_LIST, NULL, 0, G_ANY, false},
};

enum vkind { K_NIL, K_BOOL, K_INT, K_FLOAT, K_STR, K_J };

struct val {
  unsigned char k, g; /* kind; Go type for K_J */
  bool b;
  int64_t i;
  double f;
  const char *s; /* K_STR, n bytes, not NUL-terminated in general */
  size_t n;
  json_t *j; /* K_J: the node, NULL for a nil/zero value */
};

static struct val v_nil(void) {
  return (struct val){.k = K_NIL};
}
static struct val v_bool(bool b) {
  return (struct val){.k = K_BOOL, .b = b};
}
static struct val v_int(int64_t i) {
  return (struct val){.k = K_INT, .i = i};
}
static struct val v_str(const char *s, size_t n) {
  return (struct val){.k = K_STR, .s = s, .n = n};
}
static struct val v_j(unsigned char g, json_t *j) {
  return (struct val){.k = K_J, .g = g, .j = j};
}

/* The value of node j seen as Go type g (j may be NULL: the zero value). */
static struct val make_val(unsigned char g, json_t *j) {
  if (g == G_STR)
    return json_is_string(j) ? v_str(json_string_value(j), json_string_length(j)) : v_str("", 0);
  if (g == G_ANY) {
    if (j == NULL || json_is_null(j))
      return v_nil();
    if (json_is_string(j))
      return v_str(json_string_value(j), json_string_length(j));
    if (json_is_number(j))
      return (struct val){.k = K_FLOAT, .f = json_number_value(j)};
    if (json_is_boolean(j))
      return v_bool(json_is_true(j));
    return v_j(G_ANY, j);
  }
  if (j != NULL && json_is_null(j))
    j = NULL;
  return v_j(g, j);
}

static struct val field_val(const struct field *f, json_t *j) {
  switch (f->s) {
  case S_STR:
    return json_is_string(j) ? v_str(json_string_value(j), json_string_length(j)) : v_str("", 0);
  case S_INT:
    return v_int(json_is_integer(j) ? json_integer_value(j)
                 : json_is_real(j) ? (int64_t)json_real_value(j) : 0);
  case S_BOOL:
    return v_bool(json_is_true(j));
  default:
    return make_val(f->g, j);
  }
}

static bool is_list(const struct val *v) {
  return v->k == K_J && (GT[v->g].shape == SH_LIST || (v->g == G_ANY && json_is_array(v->j)));
}
static bool is_map(const struct val *v) {
  return v->k == K_J && (GT[v->g].shape == SH_MAP || (v->g == G_ANY && json_is_object(v->j)));
}

/* Element count of a list/map value (a PropertyType string counts 1). */
static size_t coll_size(const struct val *v) {
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

static unsigned char elem_type(const struct val *v) {
  return GT[v->g].elem ? GT[v->g].elem : G_ANY;
}

static struct val list_at(const struct val *v, size_t i) {
  if (v->g == G_PTYPE && json_is_string(v->j))
    return make_val(G_STR, v->j);
  return make_val(elem_type(v), json_array_get(v->j, i));
}

/* Go's truth: false, 0, nil, and empty strings, slices and maps are false. */
static bool truth(const struct val *v) {
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
    if (GT[v->g].shape == SH_STRUCT)
      return true;
    if (v->g == G_ANY)
      return coll_size(v) > 0;
    return coll_size(v) > 0;
  }
}

static const char *type_name(const struct val *v) {
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
    return GT[v->g].name;
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
static void put_float_v(cll_buf *b, double f) {
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
static void put_go_quoted(cll_buf *b, const char *s, size_t n) {
  buf_putc(b, '"');
  size_t i = 0;
  while (i < n) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      switch (c) {
      case '"': buf_puts(b, "\\\""); break;
      case '\\': buf_puts(b, "\\\\"); break;
      case '\a': buf_puts(b, "\\a"); break;
      case '\b': buf_puts(b, "\\b"); break;
      case '\f': buf_puts(b, "\\f"); break;
      case '\n': buf_puts(b, "\\n"); break;
      case '\r': buf_puts(b, "\\r"); break;
      case '\t': buf_puts(b, "\\t"); break;
      case '\v': buf_puts(b, "\\v"); break;
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
static size_t sorted_keys(json_t *j, const char ***keys) {
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
    size_t n = sorted_keys(j, &keys);
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
  const struct field *f = GT[g].f;
  int nf = GT[g].nf;
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
      omitempty = strcmp(name, "$defs") == 0 || strcmp(name, "items") == 0 ||
                  strcmp(name, "required") == 0;
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
    size_t n = sorted_keys(j, &keys);
    buf_putc(b, '{');
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ',');
      cll_json_escape(b, keys[i], strlen(keys[i]));
      buf_putc(b, ':');
      json_t *c = json_object_get(j, keys[i]);
      unsigned char cg = G_ANY;
      for (size_t k = 0; k < CLL_ARRAY_LEN(F_ROOT); k++)
        if (strcmp(F_ROOT[k].key, keys[i]) == 0 && F_ROOT[k].g)
          cg = F_ROOT[k].g;
      marshal(b, cg, c, depth + 1);
    }
    buf_putc(b, '}');
    free(keys);
    return;
  }
  default:
    break;
  }
  switch (GT[g].shape) {
  case SH_LIST:
    marshal_list(b, j, GT[g].elem, depth);
    return;
  case SH_MAP:
    marshal_map(b, j, GT[g].elem, g != G_PROPMAP, depth);
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

static void marshal_val(cll_buf *b, const struct val *v) {
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
static void print_val(cll_buf *b, const struct val *v, int depth);

static void print_val(cll_buf *b, const struct val *v, int depth) {
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
    put_float_v(b, v->f);
    return;
  case K_STR:
    buf_add(b, v->s, v->n);
    return;
  default:
    break;
  }
  unsigned char g = v->g;
  if (GT[g].prints_json) {
    if (v->j == NULL && (g == G_ARGS || g == G_PROPS)) {
      buf_puts(b, "{}");
      return;
    }
    marshal(b, g, v->j, 0);
    return;
  }
  if (g == G_PTYPE) {
    size_t n = coll_size(v);
    if (n == 1) {
      struct val e = list_at(v, 0);
      print_val(b, &e, depth + 1);
      return;
    }
    if (n == 0)
      return;
  }
  if (is_list(v)) {
    buf_putc(b, '[');
    size_t n = coll_size(v);
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ' ');
      struct val e = list_at(v, i);
      print_val(b, &e, depth + 1);
    }
    buf_putc(b, ']');
    return;
  }
  if (is_map(v)) {
    buf_puts(b, "map[");
    const char **keys;
    size_t n = sorted_keys(v->j, &keys);
    for (size_t i = 0; i < n; i++) {
      if (i)
        buf_putc(b, ' ');
      buf_puts(b, keys[i]);
      buf_putc(b, ':');
      json_t *c = json_object_get(v->j, keys[i]);
      struct val e = make_val(GT[g].elem ? GT[g].elem : G_ANY, c);
      if (g == G_ROOT)
        for (size_t k = 0; k < CLL_ARRAY_LEN(F_ROOT); k++)
          if (strcmp(F_ROOT[k].key, keys[i]) == 0)
            e = field_val(&F_ROOT[k], c);
      print_val(b, &e, depth + 1);
    }
    free(keys);
    buf_putc(b, ']');
    return;
  }
  if (GT[g].shape == SH_STRUCT) {
    if (g == G_MSG && depth == 1) /* fmt's pointer-to-struct; templates print *p itself */
      buf_putc(b, '&');
    buf_putc(b, '{');
    for (int i = 0; i < GT[g].nf; i++) {
      if (i)
        buf_putc(b, ' ');
      struct val fv = field_val(&GT[g].f[i], json_object_get(v->j, GT[g].f[i].key));
      print_val(b, &fv, depth + 1);
    }
    buf_putc(b, '}');
  }
}

/* ============================================================ execution */

enum { R_OK = 0, R_BREAK = 1, R_CONTINUE = 2 };

struct var {
  const char *name;
  struct val v;
};

struct exec {
  cll_buf out;
  struct var *vars;
  int nvars, capvars;
  struct arena a;  /* strings made while executing */
  json_t **refs;   /* json nodes made while executing (decref at the end) */
  int nrefs, caprefs;
  cll_err *err;
  bool failed;
  long iters;
  int depth;
  int line;
};

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
  char *s = arena_strndup(&x->a, b->data ? b->data : "", b->len);
  size_t n = b->len;
  free(b->data);
  if (s == NULL)
    return xerr(x, "out of memory");
  *out = v_str(s, n);
  return 0;
}

static int get_field(struct exec *x, const struct val *recv, const char *name, struct val *out) {
  if (recv->k == K_NIL)
    return xerr(x, "nil pointer evaluating interface {}.%s", name);
  if (recv->k != K_J)
    return xerr(x, "can't evaluate field %s in type %s", name, type_name(recv));
  unsigned char g = recv->g;
  if (GT[g].shape == SH_STRUCT) {
    for (int i = 0; i < GT[g].nf; i++)
      if (strcmp(GT[g].f[i].go, name) == 0) {
        *out = field_val(&GT[g].f[i], json_object_get(recv->j, GT[g].f[i].key));
        return 0;
      }
    return xerr(x, "can't evaluate field %s in type %s", name, GT[g].name);
  }
  if (is_map(recv)) {
    json_t *c = json_object_get(recv->j, name);
    if (g == G_ROOT) {
      if (c == NULL) {
        *out = v_nil(); /* missingkey=zero on map[string]any */
        return 0;
      }
      for (size_t i = 0; i < CLL_ARRAY_LEN(F_ROOT); i++)
        if (strcmp(F_ROOT[i].key, name) == 0) {
          *out = field_val(&F_ROOT[i], c);
          return 0;
        }
      *out = make_val(G_ANY, c);
      return 0;
    }
    *out = make_val(elem_type(recv), c);
    return 0;
  }
  return xerr(x, "can't evaluate field %s in type %s", name, type_name(recv));
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
    *out = v_str(a->s, a->n);
    return 0;
  case A_INT:
    *out = v_int(a->i);
    return 0;
  case A_FLOAT:
    *out = (struct val){.k = K_FLOAT, .f = a->f};
    return 0;
  case A_BOOL:
    *out = v_bool(a->b);
    return 0;
  case A_NIL:
    *out = v_nil();
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

static int eval_pipe(struct exec *x, const struct pipe *pp, const struct val *dot, struct val *out) {
  if (++x->depth > MAX_DEPTH) {
    x->depth--;
    return xerr(x, "nesting too deep");
  }
  struct val v = v_nil();
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
    if (GT[a->g].shape == SH_LIST || GT[a->g].shape == SH_MAP || a->g == G_ANY)
      return xerr(x, "error calling eq: non-comparable type %s", type_name(a));
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
  return xerr(x, "cannot index slice/array with type %s", type_name(v));
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
      cur = v_int((unsigned char)cur.s[k]);
    } else if (is_list(&cur)) {
      int64_t k;
      if (to_index(x, &idx[i], &k) < 0)
        return -1;
      if (k < 0 || (size_t)k >= coll_size(&cur))
        return xerr(x, "error calling index: index out of range: %lld", (long long)k);
      cur = list_at(&cur, (size_t)k);
    } else if (is_map(&cur)) {
      if (idx[i].k != K_STR)
        return xerr(x, "error calling index: value has type %s; should be string",
                    type_name(&idx[i]));
      char key[256];
      snprintf(key, sizeof key, "%.*s", (int)(idx[i].n < 255 ? idx[i].n : 255), idx[i].s);
      if (get_field(x, &cur, key, &cur) < 0)
        return -1;
    } else if (cur.k == K_NIL) {
      return xerr(x, "error calling index: index of untyped nil");
    } else {
      return xerr(x, "error calling index: can't index item of type %s", type_name(&cur));
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
  else if (is_list(item))
    len = coll_size(item);
  else
    return xerr(x, "error calling slice: can't slice item of type %s", type_name(item));
  if (item->k == K_STR && n == 3)
    return xerr(x, "error calling slice: cannot 3-index slice a string");
  int64_t ix[3] = {0, (int64_t)len, (int64_t)len};
  for (int i = 0; i < n; i++)
    if (to_index(x, &idx[i], &ix[i]) < 0)
      return -1;
  if (n < 2)
    ix[1] = (int64_t)len;
  if (ix[0] < 0 || ix[0] > ix[1] || ix[1] > (int64_t)len || (n == 3 && (ix[2] < ix[1] || ix[2] > (int64_t)len)))
    return xerr(x, "error calling slice: index out of range");
  if (item->k == K_STR) {
    *out = v_str(item->s + ix[0], (size_t)(ix[1] - ix[0]));
    return 0;
  }
  json_t *arr = keep(x, json_array());
  if (arr == NULL)
    return -1;
  for (int64_t i = ix[0]; i < ix[1]; i++)
    if (json_array_append(arr, json_array_get(item->j, (size_t)i)) < 0)
      return xerr(x, "out of memory");
  *out = v_j(item->g == G_PTYPE ? G_STRLIST : item->g, arr);
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
  buf_printf(t, "%%!%c(%s=", verb, type_name(v));
  print_val(t, v, 1);
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
      print_val(&t, v, 1);
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
      put_go_quoted(&t, v->s, v->n);
    } else if (v->k == K_INT && v->i >= 0 && v->i <= 0x10FFFF) {
      /* a rune: 'c' */
      char u[4];
      size_t ul = cll_utf8_encode((uint32_t)v->i, u);
      cll_buf q = {.max = MAX_OUTPUT};
      put_go_quoted(&q, u, ul);
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
    buf_puts(&t, type_name(v));
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
        put_float_v(&t, v->f);
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
      buf_printf(b, "%s=", type_name(&args[k]));
      print_val(b, &args[k], 1);
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

#define MAX_FN_ARGS 32

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
      if ((fn == F_AND) != truth(&v))
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
    *out = v_bool(!truth(&av[0]));
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
    *out = v_bool(fn == F_EQ ? any : !any);
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
    *out = v_bool(r);
    return 0;
  }
  case F_LEN:
    if (nargs_check(x, "len", total, 1) < 0)
      return -1;
    if (av[0].k == K_STR)
      *out = v_int((int64_t)av[0].n);
    else if (is_list(&av[0]) || is_map(&av[0]))
      *out = v_int((int64_t)coll_size(&av[0]));
    else
      return xerr(x, "error calling len: len of type %s", type_name(&av[0]));
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
      print_val(&b, &av[i], 1);
    }
    if (fn == F_PRINTLN)
      buf_putc(&b, '\n');
    return str_result(x, &b, out);
  }
  case F_PRINTF: {
    if (total < 1)
      return nargs_check(x, "printf", total, 1);
    if (av[0].k != K_STR)
      return xerr(x, "wrong type for value; expected string; got %s", type_name(&av[0]));
    cll_buf b = {.max = MAX_OUTPUT};
    go_sprintf(&b, av[0].s, av[0].n, av + 1, total - 1);
    return str_result(x, &b, out);
  }
  case F_JSON: {
    if (nargs_check(x, "json", total, 1) < 0)
      return -1;
    cll_buf b = {.max = MAX_OUTPUT};
    marshal_val(&b, &av[0]);
    return str_result(x, &b, out);
  }
  case F_CURRENT_DATE:
  case F_YESTERDAY_DATE: {
    for (int i = 0; i < total; i++)
      if (av[i].k != K_STR)
        return xerr(x, "wrong type for value; expected string; got %s", type_name(&av[i]));
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
  #define LOOPVARS(keyv, elemv)                                                     \
    do {                                                                           \
      if (pp->ndecl == 1) {                                                        \
        if (pp->assign) {                                                          \
          struct var *w = find_var(x, pp->decl[0]);                                \
          if (w) w->v = (elemv);                                                   \
        } else if (push(x, pp->decl[0], (elemv)) < 0) return -1;                   \
      } else if (pp->ndecl == 2) {                                                 \
        if (pp->assign) {                                                          \
          struct var *w0 = find_var(x, pp->decl[0]), *w1 = find_var(x, pp->decl[1]); \
          if (w0) w0->v = (keyv);                                                  \
          if (w1) w1->v = (elemv);                                                 \
        } else if (push(x, pp->decl[0], (keyv)) < 0 || push(x, pp->decl[1], (elemv)) < 0) \
          return -1;                                                               \
      }                                                                            \
    } while (0)
  if (v.k == K_INT) {
    if (pp->ndecl == 2)
      return xerr(x, "can't use %lld to iterate over more than one variable", (long long)v.i);
    for (int64_t i = 0; i < v.i; i++) {
      if (++x->iters > MAX_ITERS)
        return xerr(x, "too many loop iterations");
      int m = x->nvars;
      struct val iv = v_int(i);
      LOOPVARS(iv, iv);
      count++;
      r = exec_list(x, nd->list, nd->nlist, &iv);
      x->nvars = m;
      if (r < 0)
        return -1;
      if (r == R_BREAK)
        break;
    }
  } else if (is_list(&v)) {
    size_t n = coll_size(&v);
    for (size_t i = 0; i < n; i++) {
      if (++x->iters > MAX_ITERS)
        return xerr(x, "too many loop iterations");
      int m = x->nvars;
      struct val e = list_at(&v, i);
      struct val iv = v_int((int64_t)i);
      LOOPVARS(iv, e);
      count++;
      r = exec_list(x, nd->list, nd->nlist, &e);
      x->nvars = m;
      if (r < 0)
        return -1;
      if (r == R_BREAK)
        break;
    }
  } else if (is_map(&v)) {
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
      n = sorted_keys(v.j, &keys);
    }
    for (size_t i = 0; i < n && r >= 0; i++) {
      if (++x->iters > MAX_ITERS) {
        free(keys);
        return xerr(x, "too many loop iterations");
      }
      int m = x->nvars;
      struct val kv = v_str(keys[i], strlen(keys[i]));
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
    return xerr(x, "range can't iterate over %s", type_name(&v));
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
        print_val(&x->out, &v, 0);
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
      if (truth(&v))
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
static int run(const cll_template *t, bool legacy, json_t *data, cll_buf *out, cll_err *err) {
  struct exec x = {.out = *out, .err = err, .line = 1};
  struct val root = v_j(G_ROOT, data);
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
  arena_free(&x.a);
  json_decref(data);
  *out = x.out;
  return rc < 0 ? (err && err->code ? err->code : CLL_EINVAL) : 0;
}

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
    rc = run(t, false, root, &b, err);
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
      if (mb.err || json_object_set_new(last, "content", json_stringn(mb.data ? mb.data : "", mb.len))) {
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
        json_object_set_new(root, "Messages", msgs) ||
        json_object_set_new(root, "Tools", tools) ||
        json_object_set_new(root, "Response", json_string("")) || set_think(root, v)) {
      free(sys.data);
      json_decref(root);
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    }
    free(sys.data);
    rc = run(t, false, root, &b, err);
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
      rc = run(t, last, d, &b, err);
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
    for (size_t i = 0; i < n; i++) {
      char *p;
      size_t plen;
      rc = render_from(t, v, msgs, n, i, scratch, &p, &plen, err);
      if (rc != 0)
        goto out;
      int ntok = o->count(o->count_ud, p, plen);
      free(p);
      if (ntok < 0) {
        rc = cll_err_set(err, ntok, "chat prompt: counting tokens failed");
        goto out;
      }
      long long ctx_len = ntok;
      for (size_t j = i; j < n; j++)
        ctx_len += (long long)o->image_tokens * (long long)msgs[j].n_images;
      if (ctx_len <= o->num_ctx || i == n - 1) {
        cur = i;
        break;
      }
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
  struct cll_tmpl_values v = {.think = in->think,
                              .think_level = in->think_level,
                              .is_think_set = in->is_think_set};
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
        rc = cll_err_set(err, CLL_EINVAL,
                         "messages[%zu].tool_calls[%zu].function.arguments must be an object", i,
                         k);
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
