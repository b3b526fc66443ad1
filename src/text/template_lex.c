/* template_lex.c — the template module's arena and output buffer, and the lexer
 * of Go's template actions (tokens, literals, trim markers, comments).
 * See template_parse.c for the design of the whole module. */
#include "template_int.h"

/* ================================================================ arena */

void *cll__tpl_arena_alloc(struct arena *a, size_t n) {
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

char *cll__tpl_arena_strndup(struct arena *a, const char *s, size_t n) {
  char *p = cll__tpl_arena_alloc(a, n + 1);
  if (p != NULL) {
    memcpy(p, s, n);
    p[n] = '\0';
  }
  return p;
}

void cll__tpl_arena_free(struct arena *a) {
  struct arena_block *b = a->head;
  while (b != NULL) {
    struct arena_block *n = b->next;
    free(b);
    b = n;
  }
  a->head = NULL;
}

/* =============================================================== buffer */

/* ================================================================ lexer */

bool cll__tpl_is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_alnum_(unsigned char c) {
  return c == '_' || isalnum(c) || c >= 0x80;
}

void cll__tpl_perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cll__tpl_perr(struct parser *p, const char *fmt, ...) {
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

void cll__tpl_count_lines(struct parser *p, const char *a, const char *b) {
  for (; a < b; a++)
    if (*a == '\n')
      p->line++;
}

/* At "}}" or " -}}" (whitespace, '-', "}}")? Returns the length to skip. */
size_t cll__tpl_at_right_delim(const struct parser *p, size_t pos, bool *trim) {
  const char *s = p->src + pos;
  size_t rest = p->len - pos;
  if (rest >= 4 && cll__tpl_is_space(s[0]) && s[1] == '-' && s[2] == '}' && s[3] == '}') {
    *trim = true;
    return 4;
  }
  if (rest >= 2 && s[0] == '}' && s[1] == '}') {
    *trim = false;
    return 2;
  }
  return 0;
}

struct tok cll__tpl_lex(struct parser *p) {
  if (p->has_peek) {
    p->has_peek = false;
    return p->peeked;
  }
  struct tok t = {0};
  for (;;) {
    bool trim;
    size_t d = cll__tpl_at_right_delim(p, p->pos, &trim);
    if (d > 0) {
      t.kind = T_END;
      t.trim = trim;
      t.p = p->src + p->pos;
      t.n = d;
      cll__tpl_count_lines(p, p->src + p->pos, p->src + p->pos + d);
      p->pos += d;
      return t;
    }
    if (p->pos >= p->len) {
      t.kind = T_EOF;
      return t;
    }
    if (cll__tpl_is_space(p->src[p->pos])) {
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
      cll__tpl_perr(p, c == '"' ? "unterminated quoted string" : "unterminated character constant");
      t.kind = T_ERR;
      return t;
    }
    n++;
    t.kind = c == '"' ? T_STRING : T_CHAR;
  } else if (c == '`') {
    while (n < rest && s[n] != '`')
      n++;
    if (n >= rest) {
      cll__tpl_perr(p, "unterminated raw quoted string");
      t.kind = T_ERR;
      return t;
    }
    n++;
    cll__tpl_count_lines(p, s, s + n);
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
    cll__tpl_perr(p, "unexpected character '%c' in action", isprint(c) ? c : '?');
    t.kind = T_ERR;
    return t;
  }
  t.n = n;
  p->pos += n;
  if (t.kind == T_IDENT || t.kind == T_FIELD || t.kind == T_VAR) {
    /* As Go's lexer: a word must end at a terminator. */
    bool trim;
    char c2 = p->pos < p->len ? p->src[p->pos] : ' ';
    if (!cll__tpl_is_space(c2) && !strchr(".,|:()", c2) &&
        cll__tpl_at_right_delim(p, p->pos, &trim) == 0) {
      cll__tpl_perr(p, "bad character '%c' after \"%.*s\"", isprint((unsigned char)c2) ? c2 : '?',
                    (int)(n > 40 ? 40 : n), s);
      t.kind = T_ERR;
    }
  }
  return t;
}

struct tok cll__tpl_peek(struct parser *p) {
  if (!p->has_peek) {
    p->peeked = cll__tpl_lex(p);
    p->has_peek = true;
  }
  return p->peeked;
}

bool cll__tpl_tok_is(const struct tok *t, const char *word) {
  return t->kind == T_IDENT && t->n == strlen(word) && memcmp(t->p, word, t->n) == 0;
}

const char *cll__tpl_tok_name(const struct tok *t) {
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
long cll__tpl_unquote(const char *s, size_t n, char *out) {
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
    case 'a':
      out[o++] = '\a';
      break;
    case 'b':
      out[o++] = '\b';
      break;
    case 'f':
      out[o++] = '\f';
      break;
    case 'n':
      out[o++] = '\n';
      break;
    case 'r':
      out[o++] = '\r';
      break;
    case 't':
      out[o++] = '\t';
      break;
    case 'v':
      out[o++] = '\v';
      break;
    case '\\':
      out[o++] = '\\';
      break;
    case '"':
      out[o++] = '"';
      break;
    case '\'':
      out[o++] = '\'';
      break;
    case 'x':
    case 'u':
    case 'U': {
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

bool cll__tpl_parse_number(const struct tok *t, struct arg *a) {
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
