/* grammar.c — the byte-level pushdown automaton behind constrained decoding
 * (see include/cllama/grammar.h) and its masks; the builder is in
 * grammar_build.c and the per-vocabulary token index in grammar_vocab.c.
 *
 * DESIGN. A grammar is a flat array of elements; each rule alternative is a
 * run of elements ended by END. A stack is a persistent list of nodes in the
 * state's arena: node = (element position, aux, parent), where the top
 * node's position is a terminal (CHR byte set, or STR string body whose aux
 * holds the characters counted and the UTF-8/escape sub-state) and every
 * node below is the continuation to resume when the rule above ends. A
 * state is a set of stacks (tops) plus an "accept" flag (some stack has
 * completed the root). Advancing by a byte maps every top through its
 * terminal, then expands: references push their rule's alternatives (a
 * reference in tail position pushes no continuation, so repetition written
 * as right recursion runs in constant depth), END pops to the parent.
 * Nodes are never modified; advancing appends nodes, so a mask walk can
 * roll the arena back to a mark after each subtree.
 *
 * Masks walk the vocabulary's trie: one advance per trie edge, a subtree is
 * skipped as soon as its prefix is dead. Inside an unconstrained string
 * body nearly every token is allowed and the walk would visit the whole
 * trie, so string tops take a fast path: tokens that stay inside the body
 * come from a table precomputed per vocabulary (a bitset, or per-token
 * character counts when maxLength applies), and tokens that close the
 * string walk a second trie holding only their tails from the closing
 * quote. */
#include "grammar_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOPS 64     /* stacks in one state (ambiguity bound) */
#define MAX_DEPTH 160   /* nodes in one stack (nesting bound) */
#define WORK_MAX 200000 /* expansions in one advance (guards nullable loops) */
#define REC_MAX 1500    /* nested expansions (stack frames) in one advance */

/* ================================================================ grammar */

#define INF_LEN 0x3fffffffu

static uint32_t sat_add(uint32_t a, uint32_t b) {
  uint64_t s = (uint64_t)a + b;
  return s >= INF_LEN ? INF_LEN : (uint32_t)s;
}

static uint32_t el_min(const cll_grammar *g, const struct cll__gel *e) {
  switch (e->kind) {
  case GE_CHR:
    return 1;
  case GE_STR:
  case GE_CLS:
    return e->a;
  case GE_REF:
    return g->rule_min[e->a];
  default:
    return 0;
  }
}

void cll_grammar_free(cll_grammar *g) {
  if (!g)
    return;
  free(g->el);
  free(g->alt);
  free(g->rule_alt0);
  free(g->rule_nalt);
  free(g->set);
  free(g->minfrom);
  free(g->rule_min);
  free(g->trigger);
  free(g->trig_fail);
  free(g);
}

void cll_grammar_opts_defaults(struct cll_grammar_opts *o) {
  memset(o, 0, sizeof(*o));
}

int cll__grammar_finish(struct cll__gb *b, uint32_t value, const struct cll_grammar_opts *o,
                        cll_grammar **out) {
  *out = NULL;
  /* root ::= [ws if lazy] prefix value suffix */
  uint32_t root = cll__gb_rule(b);
  struct cll__gseq s = {0};
  if (o && o->trigger && o->trigger[0])
    cll__gseq_ref(b, &s, cll__schema_ws(b));
  if (o && o->prefix)
    cll__gseq_lit(b, &s, o->prefix, strlen(o->prefix));
  cll__gseq_ref(b, &s, value);
  if (o && o->suffix)
    cll__gseq_lit(b, &s, o->suffix, strlen(o->suffix));
  cll__gb_alt(b, root, &s);
  if (b->rc)
    return b->rc;
  cll_grammar *g = calloc(1, sizeof(*g));
  if (!g)
    return cll__gb_fail(b, CLL_ENOMEM, "out of memory");
  g->n_rule = b->n_rule;
  g->n_el = (uint32_t)b->n_el;
  g->el = malloc(((size_t)g->n_el + 1) * sizeof(*g->el));
  g->alt = malloc(((size_t)b->n_alts + 1) * sizeof(uint32_t));
  g->rule_alt0 = malloc(((size_t)g->n_rule + 1) * sizeof(uint32_t));
  g->rule_nalt = malloc(((size_t)g->n_rule + 1) * sizeof(uint32_t));
  g->minfrom = malloc(((size_t)g->n_el + 1) * sizeof(uint32_t));
  g->rule_min = malloc(((size_t)g->n_rule + 1) * sizeof(uint32_t));
  g->set = malloc(((size_t)b->n_set + 1) * sizeof(*g->set));
  if (!g->el || !g->alt || !g->rule_alt0 || !g->rule_nalt || !g->minfrom || !g->rule_min ||
      !g->set) {
    cll_grammar_free(g);
    return cll__gb_fail(b, CLL_ENOMEM, "out of memory");
  }
  if (b->n_set)
    memcpy(g->set, b->set, (size_t)b->n_set * sizeof(*g->set));
  g->n_set = b->n_set;
  uint32_t pos = 0, na = 0;
  for (uint32_t r = 0; r < b->n_rule; r++) {
    g->rule_alt0[r] = na;
    g->rule_nalt[r] = b->rule[r].n_alt;
    for (uint32_t k = 0; k < b->rule[r].n_alt; k++) {
      struct cll__gseq *q = &b->alts[b->rule[r].alt[k]];
      g->alt[na++] = pos;
      if (q->n)
        memcpy(g->el + pos, q->el, (size_t)q->n * sizeof(*q->el));
      pos += q->n;
      g->el[pos++] = (struct cll__gel){GE_END, 0, 0, 0};
    }
  }
  g->n_el = pos;
  g->root = root;
  /* Fewest bytes per rule: a fixed point from "infinite". */
  for (uint32_t r = 0; r < g->n_rule; r++)
    g->rule_min[r] = INF_LEN;
  for (bool changed = true; changed;) {
    changed = false;
    for (uint32_t r = 0; r < g->n_rule; r++) {
      for (uint32_t k = 0; k < g->rule_nalt[r]; k++) {
        uint32_t sum = 0;
        for (uint32_t p = g->alt[g->rule_alt0[r] + k]; g->el[p].kind != GE_END; p++)
          sum = sat_add(sum, el_min(g, &g->el[p]));
        if (sum < g->rule_min[r]) {
          g->rule_min[r] = sum;
          changed = true;
        }
      }
    }
  }
  for (uint32_t p = g->n_el; p-- > 0;)
    g->minfrom[p] = g->el[p].kind == GE_END ? 0 : sat_add(el_min(g, &g->el[p]), g->minfrom[p + 1]);
  if (g->rule_min[root] >= INF_LEN) {
    cll_grammar_free(g);
    return cll__gb_fail(b, CLL_EINVAL,
                        "the schema has no finite value (a $ref cycle with "
                        "no way out)");
  }
  if (o && o->trigger && o->trigger[0]) {
    g->trigger_len = strlen(o->trigger);
    g->trigger = strdup(o->trigger);
    g->trig_fail = calloc(g->trigger_len, sizeof(uint32_t));
    if (!g->trigger || !g->trig_fail) {
      cll_grammar_free(g);
      return cll__gb_fail(b, CLL_ENOMEM, "out of memory");
    }
    for (size_t i = 1, k = 0; i < g->trigger_len; i++) {
      while (k > 0 && g->trigger[i] != g->trigger[k])
        k = g->trig_fail[k - 1];
      if (g->trigger[i] == g->trigger[k])
        k++;
      g->trig_fail[i] = (uint32_t)k;
    }
  }
  *out = g;
  return 0;
}

int cll_grammar_compile(const json_t *format, const struct cll_grammar_opts *o, cll_grammar **out,
                        cll_err *err) {
  return cll_grammar_compile_any(&format, 1, o, out, err);
}

int cll_grammar_compile_any(const json_t *const *schemas, size_t n,
                            const struct cll_grammar_opts *o, cll_grammar **out, cll_err *err) {
  *out = NULL;
  if (n == 0)
    return cll_err_set(err, CLL_EINVAL, "no schema to compile");
  struct cll__gb b;
  cll__gb_init(&b, err);
  uint32_t value = cll__gb_rule(&b);
  for (size_t i = 0; i < n && !b.rc; i++) {
    uint32_t r = 0;
    if (cll__schema_value(&b, schemas[i], &r) != 0)
      break;
    struct cll__gseq s = {0};
    cll__gseq_ref(&b, &s, r);
    cll__gb_alt(&b, value, &s);
  }
  int rc = b.rc ? b.rc : cll__grammar_finish(&b, value, o, out);
  cll__gb_free(&b);
  return rc;
}

/* ================================================================ strings */

/* STR aux: sub-state in the low 4 bits, characters counted above.
 * 0 ready; 1..3 continuation bytes owed; 4 after a backslash; 5..8 \u hex
 * digits (4..1 owed); 9: after E0 (A0..BF then 1); 10: after ED (80..9F
 * then 1); 11: after F0 (90..BF then 2); 12: after F4 (80..8F then 2). */

uint32_t cll__str_step(uint32_t aux, uint8_t c, uint32_t max) {
  uint32_t sub = aux & 15, cnt = aux >> 4;
  switch (sub) {
  case 0: {
    if (c == '"' || c < 0x20)
      return STR_FAIL;
    if (max != GE_UNLIMITED && cnt + 1 > max)
      return STR_FAIL;
    uint32_t n = (cnt + 1) << 4;
    if (c == '\\')
      return n | 4;
    if (c < 0x80)
      return n;
    if (c >= 0xC2 && c <= 0xDF)
      return n | 1;
    if (c == 0xE0)
      return n | 9;
    if (c == 0xED)
      return n | 10;
    if (c >= 0xE1 && c <= 0xEF)
      return n | 2;
    if (c == 0xF0)
      return n | 11;
    if (c >= 0xF1 && c <= 0xF3)
      return n | 3;
    if (c == 0xF4)
      return n | 12;
    return STR_FAIL;
  }
  case 1:
  case 2:
  case 3:
    return c >= 0x80 && c <= 0xBF ? (aux & ~15u) | (sub - 1) : STR_FAIL;
  case 9:
    return c >= 0xA0 && c <= 0xBF ? (aux & ~15u) | 1 : STR_FAIL;
  case 10:
    return c >= 0x80 && c <= 0x9F ? (aux & ~15u) | 1 : STR_FAIL;
  case 11:
    return c >= 0x90 && c <= 0xBF ? (aux & ~15u) | 2 : STR_FAIL;
  case 12:
    return c >= 0x80 && c <= 0x8F ? (aux & ~15u) | 2 : STR_FAIL;
  case 4:
    if (c == 'u')
      return (aux & ~15u) | 5;
    return strchr("\"\\/bfnrt", c) && c ? aux & ~15u : STR_FAIL;
  default: { /* 5..8 */
    bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (!hex)
      return STR_FAIL;
    return sub == 8 ? aux & ~15u : aux + 1;
  }
  }
}

/* Fewest bytes to finish the string body from aux (min characters). */
static uint32_t str_dist(uint32_t aux, uint32_t min) {
  static const uint8_t owed[16] = {0, 1, 2, 3, 1, 4, 3, 2, 1, 2, 2, 3, 3, 0, 0, 0};
  uint32_t cnt = aux >> 4;
  return owed[aux & 15] + (cnt < min ? min - cnt : 0);
}

/* ================================================================ state */

struct gnode {
  uint32_t pos, aux, parent, depth;
  uint32_t below; /* fewest bytes the continuations under this node need */
};

struct gset {
  uint32_t n;
  bool accept;
  uint32_t top[MAX_TOPS];
};

struct cll_grammar_state {
  const cll_grammar *g;
  const cll_grammar_vocab *v;
  struct gnode *node; /* arena: [0, n_live) hold cur's stacks, beyond is scratch */
  uint32_t n_node, cap_node, n_live;
  uint32_t *remap; /* (cap_node) compaction scratch */
  uint32_t cap_remap;
  struct gset cur;
  struct gset *lvl; /* (n_lvl) one set per trie depth */
  uint32_t n_lvl;
  uint64_t *bits; /* (words) apply()'s mask */
  uint64_t *tmp;  /* (words) scratch of the fast paths */
  bool active, done;
  uint32_t trig; /* trigger bytes matched */
  uint32_t work;
  uint32_t rec; /* expand's recursion depth now */
  bool oom;
  /* mask walk parameters */
  bool closing;   /* the budget binds: a token must leave dist <= limit */
  uint64_t limit; /* tokens left after this one */
  uint64_t *out;
  const struct clsidx **cls; /* (n_set) fast-path tables of the CLS sets, NULL: none */
};

static uint32_t new_node(cll_grammar_state *s, uint32_t pos, uint32_t aux, uint32_t parent) {
  if (s->n_node == s->cap_node) {
    uint32_t cap = s->cap_node ? s->cap_node * 2 : 1024;
    struct gnode *q = realloc(s->node, (size_t)cap * sizeof(*q));
    if (!q) {
      s->oom = true;
      return NIL;
    }
    s->node = q;
    s->cap_node = cap;
  }
  uint32_t d = 1, below = 0;
  if (parent != NIL) {
    d = s->node[parent].depth + 1;
    below = sat_add(s->node[parent].below, s->g->minfrom[s->node[parent].pos]);
  }
  s->node[s->n_node] = (struct gnode){pos, aux, parent, d, below};
  return s->n_node++;
}

static void add_top(cll_grammar_state *s, struct gset *out, uint32_t idx) {
  const struct gnode *a = &s->node[idx];
  for (uint32_t i = 0; i < out->n; i++) {
    const struct gnode *b = &s->node[out->top[i]];
    if (b->pos == a->pos && b->aux == a->aux && b->parent == a->parent)
      return;
  }
  if (out->n < MAX_TOPS)
    out->top[out->n++] = idx;
}

static void expand_node(cll_grammar_state *s, uint32_t idx, struct gset *out);

/* Adds the terminals reachable from node idx to out. A cycle of rules that
 * consumes nothing (a $ref loop beside a way out, a pattern like (a*)*)
 * stops at REC_MAX nested calls or WORK_MAX expansions: what lies beyond is
 * reachable on a shorter path anyway. */
static void expand(cll_grammar_state *s, uint32_t idx, struct gset *out) {
  if (idx == NIL || ++s->work > WORK_MAX || s->rec >= REC_MAX)
    return;
  s->rec++;
  expand_node(s, idx, out);
  s->rec--;
}

static void expand_node(cll_grammar_state *s, uint32_t idx, struct gset *out) {
  const cll_grammar *g = s->g;
  struct gnode nd = s->node[idx];
  const struct cll__gel *e = &g->el[nd.pos];
  switch (e->kind) {
  case GE_END:
    if (nd.parent == NIL)
      out->accept = true;
    else
      expand(s, nd.parent, out);
    return;
  case GE_CHR:
    add_top(s, out, idx);
    return;
  case GE_STR:
    add_top(s, out, idx);
    if ((nd.aux & 15) == 0 && (nd.aux >> 4) >= e->a)
      expand(s, new_node(s, nd.pos + 1, 0, nd.parent), out);
    return;
  case GE_CLS:
    if (nd.aux < e->b)
      add_top(s, out, idx);
    if (nd.aux >= e->a)
      expand(s, new_node(s, nd.pos + 1, 0, nd.parent), out);
    return;
  default: { /* GE_REF */
    uint32_t cont = nd.parent;
    if (g->el[nd.pos + 1].kind != GE_END)
      cont = new_node(s, nd.pos + 1, 0, nd.parent);
    if (s->oom)
      return;
    uint32_t d = cont == NIL ? 0 : s->node[cont].depth;
    if (d + 1 > MAX_DEPTH)
      return;
    uint32_t a0 = g->rule_alt0[e->a], na = g->rule_nalt[e->a];
    for (uint32_t k = 0; k < na; k++)
      expand(s, new_node(s, g->alt[a0 + k], 0, cont), out);
    return;
  }
  }
}

/* out = in advanced by byte c; returns whether anything survives. */
static bool advance(cll_grammar_state *s, const struct gset *in, uint8_t c, struct gset *out) {
  const cll_grammar *g = s->g;
  out->n = 0;
  out->accept = false;
  s->work = 0;
  for (uint32_t i = 0; i < in->n; i++) {
    struct gnode nd = s->node[in->top[i]];
    const struct cll__gel *e = &g->el[nd.pos];
    if (e->kind == GE_CHR) {
      if (g->set[e->a][c >> 6] >> (c & 63) & 1)
        expand(s, new_node(s, nd.pos + 1, 0, nd.parent), out);
    } else if (e->kind == GE_CLS) {
      if (nd.aux < e->b && g->set[e->c][c >> 6] >> (c & 63) & 1)
        expand(s, new_node(s, nd.pos, nd.aux + 1, nd.parent), out);
    } else {
      uint32_t aux = cll__str_step(nd.aux, c, e->b);
      if (aux != STR_FAIL)
        expand(s, new_node(s, nd.pos, aux, nd.parent), out);
    }
  }
  return out->n > 0 || out->accept;
}

static uint64_t node_dist(const cll_grammar_state *s, uint32_t idx) {
  const cll_grammar *g = s->g;
  const struct gnode *nd = &s->node[idx];
  const struct cll__gel *e = &g->el[nd->pos];
  uint64_t d = g->minfrom[nd->pos];
  if (e->kind == GE_STR)
    d = str_dist(nd->aux, e->a) + (uint64_t)g->minfrom[nd->pos + 1];
  else if (e->kind == GE_CLS)
    d = (nd->aux < e->a ? e->a - nd->aux : 0) + (uint64_t)g->minfrom[nd->pos + 1];
  return d + nd->below;
}

static uint64_t set_dist(const cll_grammar_state *s, const struct gset *st) {
  if (st->accept)
    return 0;
  uint64_t best = UINT64_MAX;
  for (uint32_t i = 0; i < st->n; i++) {
    uint64_t d = node_dist(s, st->top[i]);
    if (d < best)
      best = d;
  }
  return best;
}

static void state_reset(cll_grammar_state *s) {
  s->n_node = 0;
  s->cur.n = 0;
  s->cur.accept = false;
  s->done = false;
  s->work = 0;
  const cll_grammar *g = s->g;
  uint32_t a0 = g->rule_alt0[g->root], na = g->rule_nalt[g->root];
  for (uint32_t k = 0; k < na; k++)
    expand(s, new_node(s, g->alt[a0 + k], 0, NIL), &s->cur);
  s->n_live = s->n_node;
}

int cll_grammar_state_new(const cll_grammar *g, const cll_grammar_vocab *v,
                          cll_grammar_state **out) {
  *out = NULL;
  cll_grammar_state *s = calloc(1, sizeof(*s));
  if (!s)
    return CLL_ENOMEM;
  s->g = g;
  s->v = v;
  s->n_lvl = (v ? v->max_len : 0) + 3;
  s->lvl = malloc((size_t)s->n_lvl * sizeof(*s->lvl));
  s->bits = v ? malloc(((size_t)v->n + 63) / 64 * sizeof(uint64_t)) : NULL;
  s->tmp = v ? malloc(((size_t)v->n + 63) / 64 * sizeof(uint64_t)) : NULL;
  if (!s->lvl || (v && (!s->bits || !s->tmp))) {
    cll_grammar_state_free(s);
    return CLL_ENOMEM;
  }
  if (v) {
    s->cls = calloc(g->n_set + 1, sizeof(*s->cls));
    if (!s->cls) {
      cll_grammar_state_free(s);
      return CLL_ENOMEM;
    }
    /* Build the class tables here, off the step, not on a first mask. */
    for (uint32_t p = 0; p < g->n_el; p++)
      if (g->el[p].kind == GE_CLS && !s->cls[g->el[p].c])
        s->cls[g->el[p].c] = cll__vocab_cls(v, g->set[g->el[p].c]);
  }
  s->active = g->trigger == NULL;
  state_reset(s);
  if (s->oom) {
    cll_grammar_state_free(s);
    return CLL_ENOMEM;
  }
  *out = s;
  return 0;
}

int cll_grammar_state_copy(const cll_grammar_state *src, cll_grammar_state **out) {
  cll_grammar_state *s = NULL;
  int rc = cll_grammar_state_new(src->g, src->v, &s);
  if (rc != 0)
    return rc;
  if (src->n_live > s->cap_node) {
    struct gnode *q = realloc(s->node, (size_t)src->n_live * sizeof(*q));
    if (!q) {
      cll_grammar_state_free(s);
      return CLL_ENOMEM;
    }
    s->node = q;
    s->cap_node = src->n_live;
  }
  memcpy(s->node, src->node, (size_t)src->n_live * sizeof(*s->node));
  s->n_node = s->n_live = src->n_live;
  s->cur = src->cur;
  s->active = src->active;
  s->done = src->done;
  s->trig = src->trig;
  *out = s;
  return 0;
}

void cll_grammar_state_free(cll_grammar_state *s) {
  if (!s)
    return;
  free(s->node);
  free(s->remap);
  free(s->cls);
  free(s->lvl);
  free(s->bits);
  free(s->tmp);
  free(s);
}

/* Keeps only the nodes cur reaches (parents always precede children). */
static void compact(cll_grammar_state *s) {
  if (s->n_live < 4096 || s->n_live < s->cap_node / 2)
    return;
  if (s->cap_remap < s->n_live) {
    uint32_t *r = realloc(s->remap, (size_t)s->cap_node * sizeof(uint32_t));
    if (!r)
      return;
    s->remap = r;
    s->cap_remap = s->cap_node;
  }
  for (uint32_t i = 0; i < s->n_live; i++)
    s->remap[i] = NIL;
  for (uint32_t i = 0; i < s->cur.n; i++)
    for (uint32_t p = s->cur.top[i]; p != NIL && s->remap[p] == NIL; p = s->node[p].parent)
      s->remap[p] = 0;
  uint32_t n = 0;
  for (uint32_t i = 0; i < s->n_live; i++) {
    if (s->remap[i] == NIL)
      continue;
    struct gnode nd = s->node[i];
    if (nd.parent != NIL)
      nd.parent = s->remap[nd.parent];
    s->node[n] = nd;
    s->remap[i] = n++;
  }
  for (uint32_t i = 0; i < s->cur.n; i++)
    s->cur.top[i] = s->remap[s->cur.top[i]];
  s->n_node = s->n_live = n;
}

static void feed_trigger(cll_grammar_state *s, const uint8_t *p, size_t n) {
  const cll_grammar *g = s->g;
  for (size_t i = 0; i < n; i++) {
    uint32_t k = s->trig;
    while (k > 0 && (char)p[i] != g->trigger[k])
      k = g->trig_fail[k - 1];
    if ((char)p[i] == g->trigger[k])
      k++;
    s->trig = k;
    if (k == g->trigger_len) {
      s->active = true;
      /* What follows the trigger in the same token starts the value; text
       * the grammar cannot take is left to the output unconstrained. */
      cll_grammar_accept_bytes(s, (const char *)p + i + 1, n - i - 1);
      return;
    }
  }
}

bool cll_grammar_accept_bytes(cll_grammar_state *s, const char *bytes, size_t n) {
  if (!s->active) {
    feed_trigger(s, (const uint8_t *)bytes, n);
    return true;
  }
  if (n == 0)
    return true;
  if (s->done)
    return false;
  s->n_node = s->n_live;
  s->oom = false;
  struct gset a, b, *in = &s->cur, *out = &a;
  for (size_t i = 0; i < n; i++) {
    if (!advance(s, in, (uint8_t)bytes[i], out) || s->oom) {
      s->n_node = s->n_live;
      return false;
    }
    in = out;
    out = out == &a ? &b : &a;
  }
  s->cur = *in;
  s->n_live = s->n_node;
  s->done = s->cur.n == 0 && s->cur.accept;
  compact(s);
  return true;
}

bool cll_grammar_accept_token(cll_grammar_state *s, int32_t token) {
  const cll_grammar_vocab *v = s->v;
  if (!v || token < 0 || token >= v->n)
    return false;
  const char *p = v->bytes + v->off[token];
  size_t len = (size_t)(v->off[token + 1] - v->off[token]);
  if (!s->active)
    return cll_grammar_accept_bytes(s, p, len);
  if (v->flags[token] & CLL_GV_EOG) {
    if (!s->cur.accept)
      return false;
    s->done = true;
    s->cur.n = 0;
    return true;
  }
  if ((v->flags[token] & CLL_GV_CONTROL) || len == 0 || len > MAX_TOKEN_BYTES)
    return false;
  return cll_grammar_accept_bytes(s, p, len);
}

bool cll_grammar_active(const cll_grammar_state *s) {
  return s->active;
}
bool cll_grammar_accepting(const cll_grammar_state *s) {
  return s->active && s->cur.accept;
}
bool cll_grammar_done(const cll_grammar_state *s) {
  return s->active && s->done;
}

int64_t cll_grammar_distance(const cll_grammar_state *s) {
  uint64_t d = set_dist(s, &s->cur);
  return d > INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* ---------------------------------------------------------------- masks */

/* out |= pass_bits without the leading tokens longer than room (the list
 * is longest first); tmp is scratch of the same size. */
static void or_pass_within(uint64_t *out, uint64_t *tmp, const uint64_t *pass_bits,
                           const int32_t *tok, const uint32_t *len, int32_t n, size_t words,
                           uint32_t room) {
  memcpy(tmp, pass_bits, words * sizeof(uint64_t));
  for (int32_t k = 0; k < n && len[k] > room; k++)
    tmp[tok[k] >> 6] &= ~(1ull << (tok[k] & 63));
  for (size_t w = 0; w < words; w++)
    out[w] |= tmp[w];
}

static inline void bit_set(uint64_t *b, int32_t i) {
  b[i >> 6] |= 1ull << (i & 63);
}

/* Allows the entries ending at trie node tn, whose bytes led to set st.
 * Exit-trie entries (exit_aux != NIL) also need the string body's count
 * rules: pay characters before the quote, within max, reaching min. */
static void allow_entries(cll_grammar_state *s, const struct trie *t, const struct tnode *tn,
                          const struct gset *st, uint32_t cnt, uint32_t min, uint32_t max,
                          bool is_exit) {
  if (tn->ntok == 0)
    return;
  if (s->closing && set_dist(s, st) > s->limit)
    return;
  for (uint32_t k = 0; k < tn->ntok; k++) {
    uint32_t e = tn->tok0 + k;
    if (is_exit) {
      uint64_t c = (uint64_t)cnt + t->pay[e];
      if (c < min || (max != GE_UNLIMITED && c > max))
        continue;
    }
    bit_set(s->out, t->tok[e]);
  }
}

static void walk(cll_grammar_state *s, const struct trie *t, uint32_t ti, uint32_t depth,
                 const struct gset *st, uint32_t cnt, uint32_t min, uint32_t max, bool is_exit) {
  const struct tnode *tn = &t->n[ti];
  if (depth + 1 >= s->n_lvl)
    return;
  struct gset *nx = &s->lvl[depth + 1];
  for (uint32_t c = 0; c < tn->nchild; c++) {
    const struct tnode *ch = &t->n[tn->child0 + c];
    uint32_t mark = s->n_node;
    if (advance(s, st, ch->byte, nx) && !s->oom) {
      allow_entries(s, t, ch, nx, cnt, min, max, is_exit);
      if (ch->nchild && nx->n)
        walk(s, t, tn->child0 + c, depth + 1, nx, cnt, min, max, is_exit);
    }
    s->n_node = mark;
  }
}

/* The string fast path for top idx (a STR element in sub-state 0). */
static void string_top(cll_grammar_state *s, uint32_t idx) {
  const cll_grammar_vocab *v = s->v;
  struct gnode nd = s->node[idx];
  const struct cll__gel *e = &s->g->el[nd.pos];
  uint32_t cnt = nd.aux >> 4, min = e->a, max = e->b;
  uint32_t room = max == GE_UNLIMITED ? GE_UNLIMITED : max - cnt;
  /* Fewest bytes after the body; a body token adds at most 3 owed bytes. */
  uint64_t rest = (uint64_t)s->g->minfrom[nd.pos + 1] + nd.below;
  bool binds = s->closing && str_dist(nd.aux, min) + rest + 3 > s->limit;
  size_t words = ((size_t)v->n + 63) / 64;
  if (!binds && room == GE_UNLIMITED) {
    for (size_t w = 0; w < words; w++)
      s->out[w] |= v->pass_bits[w];
  } else if (!binds) {
    or_pass_within(s->out, s->tmp, v->pass_bits, v->pass_tok, v->pass_nch, v->n_pass, words, room);
  } else {
    for (int32_t k = 0; k < v->n_pass; k++) {
      uint32_t nch = v->pass_nch[k];
      if (room != GE_UNLIMITED && nch > room)
        continue;
      if (binds && str_dist(((cnt + nch) << 4) | v->pass_sub[k], min) + rest > s->limit)
        continue;
      bit_set(s->out, v->pass_tok[k]);
    }
  }
  /* Tokens that close the string: their tails from the quote on. */
  if (v->exit.nn == 0)
    return;
  uint32_t mark = s->n_node;
  struct gset *ex = &s->lvl[0];
  ex->n = 0;
  ex->accept = false;
  s->work = 0;
  expand(s, new_node(s, nd.pos + 1, 0, nd.parent), ex);
  if (ex->n && !s->oom)
    walk(s, &v->exit, 0, 0, ex, cnt, min, max, true);
  s->n_node = mark;
}

/* The fast path for top idx (a CLS element). Exact only when what may
 * follow the class cannot start with one of its bytes (then a token leaves
 * the class exactly at its first byte outside); returns false (the caller
 * walks the trie) otherwise or without tables. */
static bool cls_top(cll_grammar_state *s, uint32_t idx) {
  struct gnode nd = s->node[idx];
  const struct cll__gel *e = &s->g->el[nd.pos];
  const struct clsidx *ci = s->cls ? s->cls[e->c] : NULL;
  if (!ci)
    return false;
  uint32_t mark = s->n_node;
  struct gset *ex = &s->lvl[0];
  ex->n = 0;
  ex->accept = false;
  s->work = 0;
  expand(s, new_node(s, nd.pos + 1, 0, nd.parent), ex);
  uint64_t first[4] = {0};
  for (uint32_t i = 0; i < ex->n; i++) {
    const struct cll__gel *x = &s->g->el[s->node[ex->top[i]].pos];
    const uint64_t *set = x->kind == GE_CHR   ? s->g->set[x->a]
                          : x->kind == GE_CLS ? s->g->set[x->c]
                                              : NULL;
    for (int w = 0; w < 4; w++)
      first[w] |= set ? set[w] : ~0ull;
  }
  if ((first[0] & ci->set[0]) | (first[1] & ci->set[1]) | (first[2] & ci->set[2]) |
      (first[3] & ci->set[3])) {
    s->n_node = mark;
    return false;
  }
  uint32_t cnt = nd.aux, min = e->a, max = e->b;
  uint32_t room = max == GE_UNLIMITED ? GE_UNLIMITED : max - cnt;
  /* A token inside the class never adds to the distance. */
  uint64_t rest = (uint64_t)s->g->minfrom[nd.pos + 1] + nd.below;
  bool binds = s->closing && (cnt < min ? min - cnt : 0) + rest > s->limit;
  size_t words = ((size_t)s->v->n + 63) / 64;
  if (!binds && room == GE_UNLIMITED) {
    for (size_t w = 0; w < words; w++)
      s->out[w] |= ci->pass_bits[w];
  } else if (!binds) {
    or_pass_within(s->out, s->tmp, ci->pass_bits, ci->pass_tok, ci->pass_len, ci->n_pass, words,
                   room);
  } else {
    for (int32_t k = 0; k < ci->n_pass; k++) {
      uint32_t len = ci->pass_len[k];
      if (room != GE_UNLIMITED && len > room)
        continue;
      if (binds && (cnt + len < min ? min - cnt - len : 0) + rest > s->limit)
        continue;
      bit_set(s->out, ci->pass_tok[k]);
    }
  }
  if ((ex->n || ex->accept) && ci->exit.nn)
    walk(s, &ci->exit, 0, 0, ex, cnt, min, max, true);
  s->n_node = mark;
  return true;
}

int32_t cll_grammar_mask(cll_grammar_state *s, int32_t budget, uint64_t *bits) {
  const cll_grammar_vocab *v = s->v;
  size_t words = ((size_t)v->n + 63) / 64;
  if (!s->active) {
    memset(bits, 0xff, words * sizeof(uint64_t));
    if (v->n & 63)
      bits[words - 1] = (1ull << (v->n & 63)) - 1;
    return v->n;
  }
  memset(bits, 0, words * sizeof(uint64_t));
  if (s->done)
    return 0;
  s->out = bits;
  s->n_node = s->n_live;
  s->oom = false;
  /* With a budget, every token must leave a value that the tokens after it
   * can still complete (one byte each at worst); when even the current
   * state cannot finish in time the budget is ignored (done "length"). */
  uint64_t cur_dist = set_dist(s, &s->cur);
  s->limit = budget > 0 ? (uint64_t)budget - 1 : 0;
  s->closing = budget > 0 && cur_dist <= (uint64_t)budget;
  if (s->cur.accept)
    for (int32_t k = 0; k < v->n_eog; k++)
      bit_set(bits, v->eog[k]);
  {
    /* STR tops in sub-state 0 and CLS tops take fast paths; the rest walk
     * the trie (from depth 1: the fast paths use lvl[0] and up). */
    struct gset rest;
    rest.n = 0;
    rest.accept = false;
    uint32_t str_tops[MAX_TOPS], n_str = 0;
    for (uint32_t i = 0; i < s->cur.n; i++) {
      const struct gnode *nd = &s->node[s->cur.top[i]];
      uint8_t kind = s->g->el[nd->pos].kind;
      if (kind == GE_STR && (nd->aux & 15) == 0)
        str_tops[n_str++] = s->cur.top[i];
      else if (kind != GE_CLS || !cls_top(s, s->cur.top[i]))
        rest.top[rest.n++] = s->cur.top[i];
    }
    if (rest.n)
      walk(s, &v->all, 0, 1, &rest, 0, 0, GE_UNLIMITED, false);
    for (uint32_t i = 0; i < n_str; i++)
      string_top(s, str_tops[i]);
  }
  s->n_node = s->n_live;
  int32_t n = 0;
  for (size_t w = 0; w < words; w++)
    n += __builtin_popcountll(bits[w]);
  return n;
}

int32_t cll_grammar_apply(cll_grammar_state *s, float *logits, int64_t n_logits, int32_t budget) {
  if (!s->active)
    return s->v->n;
  int32_t n = cll_grammar_mask(s, budget, s->bits);
  if (n == 0)
    return 0;
  int64_t nv = s->v->n < n_logits ? s->v->n : n_logits;
  for (int64_t w = 0; w * 64 < nv; w++) {
    uint64_t m = s->bits[w];
    if (m == UINT64_MAX)
      continue;
    int64_t base = w * 64, end = base + 64 < nv ? base + 64 : nv;
    for (int64_t i = base; i < end; i++)
      if (!(m >> (i - base) & 1))
        logits[i] = -INFINITY;
  }
  for (int64_t i = nv; i < n_logits; i++)
    logits[i] = -INFINITY;
  return n;
}
