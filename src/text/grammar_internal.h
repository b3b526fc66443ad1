/* grammar_internal.h — the grammar builder shared by grammar_build.c (the
 * builder), grammar.c (the automaton), grammar_vocab.c (the per-vocabulary
 * token index) and jsonschema*.c (schemas and regexes to rules). */
#ifndef CLLAMA_TEXT_GRAMMAR_INTERNAL_H
#define CLLAMA_TEXT_GRAMMAR_INTERNAL_H

#include "cllama/grammar.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { GE_END = 0, GE_CHR = 1, GE_REF = 2, GE_STR = 3, GE_CLS = 4 };

#define GE_UNLIMITED UINT32_MAX

/* One element of a rule alternative. CHR: a = byte-set index. REF: a = rule.
 * STR: the body of a JSON string (escapes, UTF-8) of a..b characters (b may
 * be GE_UNLIMITED); the quotes are separate CHR elements. CLS: a..b bytes of
 * byte set c (a regex's [class]{m,n}; counted in the stack node, so it costs
 * one node per byte and masks take a precomputed fast path). END closes an
 * alternative. */
struct cll__gel {
  uint8_t kind;
  uint32_t a, b, c;
};

/* A sequence being built (one alternative). */
struct cll__gseq {
  struct cll__gel *el;
  uint32_t n, cap;
};

struct cll__grule {
  uint32_t *alt; /* (n_alt) indices into the finished element array; while
                    building, indices into the builder's alternatives */
  uint32_t n_alt, cap_alt;
};

/* The builder: rules, their alternatives (each a finished sequence) and the
 * interned byte sets. Errors stick: after the first, calls do nothing. */
struct cll__gb {
  struct cll__grule *rule;
  uint32_t n_rule, cap_rule;
  struct cll__gseq *alts; /* every alternative added */
  uint32_t n_alts, cap_alts;
  uint64_t (*set)[4]; /* 256-bit byte sets */
  uint32_t n_set, cap_set;
  uint64_t n_el;     /* elements so far (bounded) */
  uint32_t cache[4]; /* jsonschema.c's shared rules (ws, any value...), UINT32_MAX: none yet */
  int rc;
  cll_err *err;
};

void cll__gb_init(struct cll__gb *b, cll_err *err);
void cll__gb_free(struct cll__gb *b);
int cll__gb_fail(struct cll__gb *b, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
uint32_t cll__gb_rule(struct cll__gb *b);
/* Adds s as an alternative of rule r and empties s (its storage is taken). */
void cll__gb_alt(struct cll__gb *b, uint32_t r, struct cll__gseq *s);
void cll__gseq_free(struct cll__gseq *s);
void cll__gseq_push(struct cll__gb *b, struct cll__gseq *s, uint8_t kind, uint32_t a, uint32_t c);
/* Bytes lo..hi as one element. */
void cll__gseq_range(struct cll__gb *b, struct cll__gseq *s, uint8_t lo, uint8_t hi);
void cll__gseq_set(struct cll__gb *b, struct cll__gseq *s, const uint64_t set[4]);
void cll__gseq_lit(struct cll__gb *b, struct cll__gseq *s, const char *lit, size_t n);
void cll__gseq_ref(struct cll__gb *b, struct cll__gseq *s, uint32_t rule);
/* min..max bytes of byte set number set (an index from a CHR element). */
void cll__gseq_cls(struct cll__gb *b, struct cll__gseq *s, uint32_t set, uint32_t min,
                   uint32_t max);
/* A rule that is exactly the literal. */
uint32_t cll__gb_lit_rule(struct cll__gb *b, const char *lit, size_t n);
/* unit{min,max} as a rule (max GE_UNLIMITED: unbounded). */
uint32_t cll__gb_repeat(struct cll__gb *b, uint32_t unit, uint32_t min, uint32_t max);

/* Turns the builder into a grammar whose root rule is root (the builder is
 * emptied). */
int cll__grammar_finish(struct cll__gb *b, uint32_t root, const struct cll_grammar_opts *o,
                        cll_grammar **out);

/* jsonschema.c: the value rule of a format ("json" or a schema). */
int cll__schema_value(struct cll__gb *b, const json_t *format, uint32_t *rule);
/* Whitespace between tokens (one rule per builder). */
uint32_t cll__schema_ws(struct cll__gb *b);

/* ---------------------------------------------------------------- internals
 * Shared by grammar_build.c, grammar.c and grammar_vocab.c only. */

#define NIL UINT32_MAX
#define MAX_ELEMENTS 4000000u
#define MAX_TOKEN_BYTES 1024 /* longer tokens are never allowed (bounds the trie walk's depth) */

/* Grows *p (elements of elsz bytes, capacity *cap) to hold need; false on OOM. */
bool cll__grow(void **p, uint32_t *cap, uint32_t need, size_t elsz);

struct cll_grammar {
  struct cll__gel *el; /* (n_el) every alternative, each ended by END */
  uint32_t n_el;
  uint32_t *alt;       /* alternative start positions, rule by rule */
  uint32_t *rule_alt0; /* (n_rule) first index into alt */
  uint32_t *rule_nalt; /* (n_rule) */
  uint32_t n_rule;
  uint64_t (*set)[4]; /* (n_set) byte sets */
  uint32_t n_set;
  uint32_t *minfrom;  /* (n_el) fewest bytes from this element to its END */
  uint32_t *rule_min; /* (n_rule) fewest bytes of the rule */
  uint32_t root;
  char *trigger; /* NULL: active from the start */
  size_t trigger_len;
  uint32_t *trig_fail; /* (trigger_len) KMP failure function */
};

struct tnode {
  uint32_t child0, nchild; /* children are contiguous */
  uint32_t tok0, ntok;     /* entries ending here: trie.tok[tok0..tok0+ntok) */
  uint8_t byte;
};

struct trie {
  struct tnode *n;
  uint32_t nn, cap;
  int32_t *tok;  /* (ntok) token ids in sorted order */
  uint32_t *pay; /* (ntok) payload (characters before the quote, exit tries) */
  uint32_t ntok;
};

struct cll_grammar_vocab {
  int32_t n;
  uint8_t *flags; /* (n) CLL_GV_* */
  char *bytes;    /* all pieces */
  uint64_t *off;  /* (n+1) */
  uint32_t max_len;
  int32_t *eog; /* end-of-generation ids */
  int32_t n_eog;
  struct trie all; /* every normal token */
  /* String fast path (body in sub-state 0): */
  uint64_t *pass_bits; /* tokens that stay inside the body */
  int32_t *pass_tok;   /* (n_pass) the same as a list */
  uint32_t *pass_nch;  /* (n_pass) characters each adds */
  uint8_t *pass_sub;   /* (n_pass) sub-state after it */
  int32_t n_pass;
  struct trie exit; /* tails from the closing quote; pay = characters before it */
  /* Counted byte classes (CLS elements) seen so far, built on first use by
   * a state that needs one and kept: the only part that changes after
   * construction, under mu. */
  pthread_mutex_t mu;
  struct clsidx *cls;
};

/* The fast path of one byte set: tokens made only of its bytes, and the
 * tails of tokens that leave it after at least one byte. */
struct clsidx {
  uint64_t set[4];
  uint64_t *pass_bits;
  int32_t *pass_tok;  /* (n_pass) */
  uint32_t *pass_len; /* (n_pass) */
  int32_t n_pass;
  struct trie exit; /* pay = bytes inside the set before the tail */
  struct clsidx *next;
};

/* A string body's sub-state after byte c (grammar.c, "strings"); STR_FAIL:
 * the byte is not allowed there. */
#define STR_FAIL UINT32_MAX
uint32_t cll__str_step(uint32_t aux, uint8_t c, uint32_t max);
/* The fast-path table of byte set set, built on first use (grammar_vocab.c). */
const struct clsidx *cll__vocab_cls(const cll_grammar_vocab *cv, const uint64_t set[4]);

#endif
