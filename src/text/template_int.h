/* template_int.h — private to the template module (src/text/template_*.c,
 * prompt.c): the parse tree, the arena and output buffer, the lexer, the
 * value model and the executor entry point, shared between its files.
 * Nothing outside src/text includes it. */
#ifndef CLLAMA_TEXT_TEMPLATE_INT_H
#define CLLAMA_TEXT_TEMPLATE_INT_H

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

struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

struct arena {
  struct arena_block *head;
};

/* Output goes into the shared cll_buf (util.h), each limited to MAX_OUTPUT:
 * past it, or when memory runs out, its sticky err is set and rendering
 * fails with "out of memory". */
#define buf_add cll_buf_append

#define buf_puts cll_buf_puts

#define buf_putc cll_buf_putc

#define buf_printf cll_buf_printf

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
  struct pipe *pipe;               /* action / control */
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

enum tok_kind {
  T_END, /* }} or -}} */
  T_EOF, /* input ended inside an action */
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

enum term { TERM_EOF, TERM_END, TERM_ELSE };

/* Mirrors Ollama's deleteNode: walk in tree order; once a field node whose
 * chain contains "Response" has been seen, every later node is dropped
 * (that field node itself stays). Conditions of if/with/range are not
 * walked. Returns false on allocation failure. */
struct cutter {
  struct arena *a;
  bool cut;
  bool oom;
};

struct think_walk {
  char *open, *close;
  size_t open_cap, close_cap;
};

enum gtype {
  G_NONE,
  G_STR,  /* element type of string lists */
  G_ANY,  /* decoded JSON (Go any): maps print as map[..], marshal with sorted keys */
  G_ROOT, /* map[string]any: the template's data */
  G_MSGS, /* []*templateMessage */
  G_MSG,
  G_IMAGES, /* []ImageData */
  G_TCALLS, /* []templateToolCall */
  G_TCALL,
  G_TCFUNC,
  G_ARGS,  /* templateArgs: map[string]any, prints as JSON */
  G_TOOLS, /* templateTools, prints as JSON */
  G_TOOL,  /* prints as JSON */
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

enum shape { SH_SCALAR, SH_STRUCT, SH_LIST, SH_MAP };

struct gtinfo {
  const char *name; /* Go type, for error messages */
  enum shape shape;
  const struct field *f;
  int nf;
  unsigned char elem; /* list element / map value type */
  bool prints_json;   /* has a String method that marshals */
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

enum { R_OK = 0, R_BREAK = 1, R_CONTINUE = 2 };

struct var {
  const char *name;
  struct val v;
};

struct exec {
  cll_buf out;
  struct var *vars;
  int nvars, capvars;
  struct arena a; /* strings made while executing */
  json_t **refs;  /* json nodes made while executing (decref at the end) */
  int nrefs, caprefs;
  cll_err *err;
  bool failed;
  long iters;
  int depth;
  int line;
};

#define MAX_FN_ARGS 32

/* ------------------------------------------------- shared between files */

extern const struct field cll__tpl_F_ROOT[];
extern const struct gtinfo cll__tpl_GT[];

void *cll__tpl_arena_alloc(struct arena *a, size_t n);
char *cll__tpl_arena_strndup(struct arena *a, const char *s, size_t n);
void cll__tpl_arena_free(struct arena *a);
bool cll__tpl_is_space(char c);
void cll__tpl_perr(struct parser *p, const char *fmt, ...);
void cll__tpl_count_lines(struct parser *p, const char *a, const char *b);
size_t cll__tpl_at_right_delim(const struct parser *p, size_t pos, bool *trim);
struct tok cll__tpl_lex(struct parser *p);
struct tok cll__tpl_peek(struct parser *p);
bool cll__tpl_tok_is(const struct tok *t, const char *word);
const char *cll__tpl_tok_name(const struct tok *t);
long cll__tpl_unquote(const char *s, size_t n, char *out);
bool cll__tpl_parse_number(const struct tok *t, struct arg *a);
struct val cll__tpl_v_nil(void);
struct val cll__tpl_v_bool(bool b);
struct val cll__tpl_v_int(int64_t i);
struct val cll__tpl_v_str(const char *s, size_t n);
struct val cll__tpl_v_j(unsigned char g, json_t *j);
struct val cll__tpl_make_val(unsigned char g, json_t *j);
struct val cll__tpl_field_val(const struct field *f, json_t *j);
bool cll__tpl_is_list(const struct val *v);
bool cll__tpl_is_map(const struct val *v);
size_t cll__tpl_coll_size(const struct val *v);
unsigned char cll__tpl_elem_type(const struct val *v);
struct val cll__tpl_list_at(const struct val *v, size_t i);
bool cll__tpl_truth(const struct val *v);
const char *cll__tpl_type_name(const struct val *v);
void cll__tpl_put_float_v(cll_buf *b, double f);
void cll__tpl_put_go_quoted(cll_buf *b, const char *s, size_t n);
size_t cll__tpl_sorted_keys(json_t *j, const char ***keys);
void cll__tpl_marshal_val(cll_buf *b, const struct val *v);
void cll__tpl_print_val(cll_buf *b, const struct val *v, int depth);
int cll__tpl_run(const cll_template *t, bool legacy, json_t *data, cll_buf *out, cll_err *err);

#endif
