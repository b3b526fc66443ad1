/* grammar_vocab.c — the per-vocabulary token index behind the grammar
 * masks (cll_grammar_vocab): the token trie, the string-body fast-path
 * tables and the exit trie, and the counted byte-class tables built on
 * first use (cll__vocab_cls). */
#include "grammar_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ vocab */

struct tent {
  const uint8_t *p;
  uint32_t len;
  int32_t tok;
  uint32_t pay;
};

static int tent_cmp(const void *a, const void *b) {
  const struct tent *x = a, *y = b;
  uint32_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->p, y->p, n);
  if (c)
    return c;
  if (x->len != y->len)
    return x->len < y->len ? -1 : 1;
  return x->tok < y->tok ? -1 : x->tok > y->tok;
}

static bool trie_node(struct trie *t, uint32_t *idx) {
  if (!cll__grow((void **)&t->n, &t->cap, t->nn + 1, sizeof(*t->n)))
    return false;
  memset(&t->n[t->nn], 0, sizeof(t->n[0]));
  *idx = t->nn++;
  return true;
}

/* Entries e[lo..hi) share their first d bytes; node ni gets them. */
static bool trie_fill(struct trie *t, const struct tent *e, uint32_t lo, uint32_t hi, uint32_t d,
                      uint32_t ni) {
  uint32_t k = lo;
  while (k < hi && e[k].len == d)
    k++;
  t->n[ni].tok0 = lo;
  t->n[ni].ntok = k - lo;
  uint32_t groups = 0;
  for (uint32_t i = k; i < hi; i++)
    if (i == k || e[i].p[d] != e[i - 1].p[d])
      groups++;
  if (groups == 0)
    return true;
  uint32_t c0 = t->nn;
  for (uint32_t gi = 0; gi < groups; gi++) {
    uint32_t x;
    if (!trie_node(t, &x))
      return false;
  }
  t->n[ni].child0 = c0;
  t->n[ni].nchild = groups;
  uint32_t gi = 0;
  for (uint32_t i = k; i < hi;) {
    uint32_t j = i + 1;
    while (j < hi && e[j].p[d] == e[i].p[d])
      j++;
    t->n[c0 + gi].byte = e[i].p[d];
    if (!trie_fill(t, e, i, j, d + 1, c0 + gi))
      return false;
    gi++;
    i = j;
  }
  return true;
}

static bool trie_build(struct trie *t, struct tent *e, uint32_t n) {
  memset(t, 0, sizeof(*t));
  qsort(e, n, sizeof(*e), tent_cmp);
  t->tok = malloc(((size_t)n + 1) * sizeof(int32_t));
  t->pay = malloc(((size_t)n + 1) * sizeof(uint32_t));
  if (!t->tok || !t->pay)
    return false;
  for (uint32_t i = 0; i < n; i++) {
    t->tok[i] = e[i].tok;
    t->pay[i] = e[i].pay;
  }
  t->ntok = n;
  uint32_t root;
  return trie_node(t, &root) && trie_fill(t, e, 0, n, 0, root);
}

static void trie_free(struct trie *t) {
  free(t->n);
  free(t->tok);
  free(t->pay);
}

void cll_grammar_vocab_free(cll_grammar_vocab *v) {
  if (!v)
    return;
  free(v->flags);
  free(v->bytes);
  free(v->off);
  free(v->eog);
  trie_free(&v->all);
  trie_free(&v->exit);
  for (struct clsidx *c = v->cls, *nx; c; c = nx) {
    nx = c->next;
    free(c->pass_bits);
    free(c->pass_tok);
    free(c->pass_len);
    trie_free(&c->exit);
    free(c);
  }
  pthread_mutex_destroy(&v->mu);
  free(v->pass_bits);
  free(v->pass_tok);
  free(v->pass_nch);
  free(v->pass_sub);
  free(v);
}

int32_t cll_grammar_vocab_n(const cll_grammar_vocab *v) {
  return v->n;
}

struct pass_ent {
  uint32_t len;
  int32_t tok;
  uint8_t sub;
};

static int pass_cmp(const void *a, const void *b) {
  const struct pass_ent *x = a, *y = b;
  if (x->len != y->len)
    return x->len > y->len ? -1 : 1;
  return x->tok < y->tok ? -1 : x->tok > y->tok;
}

/* Orders a pass list longest first, so a length limit drops a prefix. */
static bool sort_pass(int32_t *tok, uint32_t *len, uint8_t *sub, int32_t n) {
  struct pass_ent *e = malloc(((size_t)n + 1) * sizeof(*e));
  if (!e)
    return false;
  for (int32_t i = 0; i < n; i++)
    e[i] = (struct pass_ent){len[i], tok[i], sub ? sub[i] : 0};
  qsort(e, (size_t)n, sizeof(*e), pass_cmp);
  for (int32_t i = 0; i < n; i++) {
    tok[i] = e[i].tok;
    len[i] = e[i].len;
    if (sub)
      sub[i] = e[i].sub;
  }
  free(e);
  return true;
}

int cll_grammar_vocab_new_raw(const char *const *piece, const size_t *len, const uint8_t *flags,
                              int32_t n, cll_grammar_vocab **out) {
  *out = NULL;
  if (n <= 0)
    return CLL_EINVAL;
  cll_grammar_vocab *v = calloc(1, sizeof(*v));
  if (!v)
    return CLL_ENOMEM;
  v->n = n;
  pthread_mutex_init(&v->mu, NULL);
  uint64_t total = 0;
  for (int32_t i = 0; i < n; i++)
    total += len[i];
  size_t words = ((size_t)n + 63) / 64;
  v->flags = calloc((size_t)n, 1);
  v->bytes = malloc(total + 1);
  v->off = malloc(((size_t)n + 1) * sizeof(uint64_t));
  v->eog = malloc((size_t)n * sizeof(int32_t));
  v->pass_bits = calloc(words, sizeof(uint64_t));
  v->pass_tok = malloc((size_t)n * sizeof(int32_t));
  v->pass_nch = malloc((size_t)n * sizeof(uint32_t));
  v->pass_sub = malloc((size_t)n);
  struct tent *ea = malloc((size_t)n * sizeof(*ea));
  struct tent *ee = malloc((size_t)n * sizeof(*ee));
  if (!v->flags || !v->bytes || !v->off || !v->eog || !v->pass_bits || !v->pass_tok ||
      !v->pass_nch || !v->pass_sub || !ea || !ee)
    goto nomem;
  uint64_t o = 0;
  uint32_t na = 0, ne = 0;
  for (int32_t i = 0; i < n; i++) {
    v->flags[i] = flags ? flags[i] : 0;
    v->off[i] = o;
    if (len[i])
      memcpy(v->bytes + o, piece[i], len[i]);
    o += len[i];
    if (len[i] > v->max_len)
      v->max_len = len[i] > MAX_TOKEN_BYTES ? MAX_TOKEN_BYTES : (uint32_t)len[i];
    if (v->flags[i] & CLL_GV_EOG) {
      v->eog[v->n_eog++] = i;
      continue;
    }
    if ((v->flags[i] & CLL_GV_CONTROL) || len[i] == 0 || len[i] > MAX_TOKEN_BYTES)
      continue;
    const uint8_t *p = (const uint8_t *)v->bytes + v->off[i];
    ea[na++] = (struct tent){p, (uint32_t)len[i], i, 0};
    /* The string body from sub-state 0 over this token. */
    uint32_t aux = 0;
    size_t k = 0;
    for (; k < len[i]; k++) {
      if ((aux & 15) == 0 && p[k] == '"')
        break;
      aux = cll__str_step(aux, p[k], GE_UNLIMITED);
      if (aux == STR_FAIL)
        break;
    }
    if (aux == STR_FAIL)
      continue;
    if (k == len[i]) {
      v->pass_bits[i >> 6] |= 1ull << (i & 63);
      v->pass_tok[v->n_pass] = i;
      v->pass_nch[v->n_pass] = aux >> 4;
      v->pass_sub[v->n_pass] = (uint8_t)(aux & 15);
      v->n_pass++;
    } else {
      ee[ne++] = (struct tent){p + k, (uint32_t)(len[i] - k), i, aux >> 4};
    }
  }
  v->off[n] = o;
  if (!sort_pass(v->pass_tok, v->pass_nch, v->pass_sub, v->n_pass) ||
      !trie_build(&v->all, ea, na) || !trie_build(&v->exit, ee, ne))
    goto nomem;
  free(ea);
  free(ee);
  *out = v;
  return 0;
nomem:
  free(ea);
  free(ee);
  cll_grammar_vocab_free(v);
  return CLL_ENOMEM;
}

int cll_grammar_vocab_new(const cll_tokenizer *t, cll_grammar_vocab **out) {
  int32_t n = cll_tok_n_vocab(t);
  if (n <= 0)
    return CLL_EINVAL;
  const char **piece = malloc((size_t)n * sizeof(char *));
  size_t *len = malloc((size_t)n * sizeof(size_t));
  uint8_t *flags = malloc((size_t)n);
  int rc = CLL_ENOMEM;
  if (piece && len && flags) {
    for (int32_t i = 0; i < n; i++) {
      flags[i] = 0;
      if (cll_tok_is_eog(t, i))
        flags[i] = CLL_GV_EOG;
      else if (cll_tok_is_control(t, i))
        flags[i] = CLL_GV_CONTROL;
      piece[i] = cll_tok_piece(t, i, false, &len[i]);
    }
    rc = cll_grammar_vocab_new_raw(piece, len, flags, n, out);
  }
  free(piece);
  free(len);
  free(flags);
  return rc;
}

/* The class index of set (built now if no state asked for it before). */
const struct clsidx *cll__vocab_cls(const cll_grammar_vocab *cv, const uint64_t set[4]) {
  cll_grammar_vocab *v = (cll_grammar_vocab *)cv;
  pthread_mutex_lock(&v->mu);
  struct clsidx *c = v->cls;
  while (c && memcmp(c->set, set, 32) != 0)
    c = c->next;
  if (c) {
    pthread_mutex_unlock(&v->mu);
    return c;
  }
  c = calloc(1, sizeof(*c));
  struct tent *ee = malloc(((size_t)v->n + 1) * sizeof(*ee));
  if (c) {
    memcpy(c->set, set, 32);
    c->pass_bits = calloc(((size_t)v->n + 63) / 64, sizeof(uint64_t));
    c->pass_tok = malloc((size_t)v->n * sizeof(int32_t));
    c->pass_len = malloc((size_t)v->n * sizeof(uint32_t));
  }
  bool ok = c && ee && c->pass_bits && c->pass_tok && c->pass_len;
  uint32_t ne = 0;
  for (int32_t i = 0; ok && i < v->n; i++) {
    uint64_t len = v->off[i + 1] - v->off[i];
    if ((v->flags[i] & (CLL_GV_EOG | CLL_GV_CONTROL)) || len == 0 || len > MAX_TOKEN_BYTES)
      continue;
    const uint8_t *p = (const uint8_t *)v->bytes + v->off[i];
    uint32_t r = 0;
    while (r < len && set[p[r] >> 6] >> (p[r] & 63) & 1)
      r++;
    if (r == len) {
      c->pass_bits[i >> 6] |= 1ull << (i & 63);
      c->pass_tok[c->n_pass] = i;
      c->pass_len[c->n_pass++] = r;
    } else if (r > 0) {
      ee[ne++] = (struct tent){p + r, (uint32_t)(len - r), i, r};
    }
  }
  ok = ok && sort_pass(c->pass_tok, c->pass_len, NULL, c->n_pass) && trie_build(&c->exit, ee, ne);
  free(ee);
  if (!ok) {
    if (c) {
      free(c->pass_bits);
      free(c->pass_tok);
      free(c->pass_len);
      trie_free(&c->exit);
      free(c);
    }
    pthread_mutex_unlock(&v->mu);
    return NULL;
  }
  c->next = v->cls;
  v->cls = c;
  pthread_mutex_unlock(&v->mu);
  return c;
}
