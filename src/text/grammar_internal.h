/* grammar_internal.h — the grammar builder shared by grammar.c (the
 * automaton) and jsonschema.c (schemas and regexes to rules). */
#ifndef CLLAMA_TEXT_GRAMMAR_INTERNAL_H
#define CLLAMA_TEXT_GRAMMAR_INTERNAL_H

#include "cllama/grammar.h"

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
  uint64_t n_el; /* elements so far (bounded) */
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

#endif
