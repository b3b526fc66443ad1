/* grammar.h — constrained decoding: JSON schemas compiled to a byte-level
 * pushdown automaton, and per-token masks over a vocabulary.
 *
 * Owns: cll_grammar (a compiled grammar, immutable), cll_grammar_vocab (the
 * per-vocabulary index the masks walk: the token byte strings in a trie,
 * plus tables for the "inside a string" fast path; built once per loaded
 * model) and cll_grammar_state (one per sequence: where the output stands
 * in the grammar, and scratch for computing masks).
 *
 * The grammar is a context-free grammar over bytes (rules of alternatives,
 * each a sequence of byte sets, rule references, "string body" elements
 * that count characters and counted byte classes for a pattern's
 * [class]{m,n}). A state is a small set of stacks (several only
 * while alternatives are ambiguous, e.g. anyOf over objects); stacks are
 * persistent lists in an arena, so advancing shares their tails. UTF-8 is
 * handled at byte level: a token may end inside a multi-byte character and
 * the next one completes it.
 *
 * What a schema compiles to (cll_grammar_compile; 2020-12 keywords):
 *   type (object, array, string, number, integer, boolean, null, a list of
 *   them), properties, required, additionalProperties (false, true or a
 *   schema; default: only the declared properties are generated, which
 *   every validator accepts; an object schema without "properties" is any
 *   object), items (schema or false), prefixItems,
 *   minItems/maxItems, enum, const, anyOf/oneOf, $ref to "#", "#/$defs/..",
 *   "#/definitions/.." or any local JSON pointer (recursion allowed), $defs,
 *   pattern (a regex subset: literals, classes, ., \d \w \s, * + ? {m,n},
 *   groups, alternation, ^ $), format (date, time, date-time, uuid, email,
 *   ipv4), minLength/maxLength, minimum/maximum/exclusiveMinimum/
 *   exclusiveMaximum for integers. Annotations (title, description,
 *   default, examples, $schema, $id, $comment, deprecated, readOnly,
 *   writeOnly) are ignored. Any other keyword is an error naming it
 *   (CLL_EUNSUPPORTED), as is a keyword we cannot enforce where it stands
 *   (minimum on a number, a non-ASCII range in a pattern...).
 * Properties are generated in the schema's order (required ones always,
 * optional ones possibly). Whitespace between tokens is "", " " or a newline
 * followed by at most 20 spaces/tabs, so no model can loop on blanks.
 * Numbers have at most 16 integer and 16 fraction digits and a 2-digit
 * exponent...  deeper than about 30 levels is not generated.
 *
 * Ending. cll_grammar_done() says the value is complete and nothing more can
 * follow (the scheduler then ends the sequence, done_reason "stop"); where
 * more could follow (a top-level number), end-of-generation tokens are
 * allowed once the value is complete. Masks take the number of tokens left
 * in the budget: when it gets close to the fewest bytes that can still
 * complete the value, only tokens that bring the value closer to its end are
 * allowed, so a sequence with num_predict at least that distance (plus a
 * margin of 2) always ends with a complete value.
 *
 * Threads: a cll_grammar and a cll_grammar_vocab are immutable once built
 * and may be shared by any number of threads (the vocab's tables for a
 * pattern's character classes are added on first use, under the vocab's own
 * lock, by cll_grammar_state_new: tens of milliseconds once per class and
 * model, so create states off the loop thread). A cll_grammar_state is used
 * by one thread at a time (the scheduler's step computes masks and advances
 * on a work-queue thread; the loop thread reads it between steps).
 * Compiling and building a vocab allocate (do it off the loop for large
 * vocabularies); masks and advancing allocate nothing in the steady state
 * (the state's arena grows only when a mask needs more room than any before).
 *
 * Ownership: a state borrows its grammar and vocab, which must outlive it.
 * Every *_free(NULL) is a no-op. */
#ifndef CLLAMA_GRAMMAR_H
#define CLLAMA_GRAMMAR_H

#include "cllama/common.h"
#include "cllama/tokenizer.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cll_grammar cll_grammar;
typedef struct cll_grammar_vocab cll_grammar_vocab;
typedef struct cll_grammar_state cll_grammar_state;

/* Options around the value (all optional; strings are copied). */
struct cll_grammar_opts {
  const char *prefix;  /* literal text the output must start with (e.g. "<tool_call>\n") */
  const char *suffix;  /* literal text after the value (e.g. "\n</tool_call>") */
  const char *trigger; /* lazy start: the grammar is inactive (every token allowed) until
                          this text has appeared in the generated text (e.g. "</think>");
                          the value may then be preceded by whitespace */
};
void cll_grammar_opts_defaults(struct cll_grammar_opts *o);

/* Compiles a format: the string "json" (any JSON value with an object at the
 * top) or a JSON schema object (borrowed). o may be NULL. *out is new.
 * Errors (err says which keyword or why): CLL_EINVAL for a malformed schema,
 * CLL_EUNSUPPORTED for a keyword we cannot enforce, CLL_ENOMEM. */
int cll_grammar_compile(const json_t *format, const struct cll_grammar_opts *o, cll_grammar **out,
                        cll_err *err);

/* The value is any one of n schemas (tool_choice "required": each is
 * {"type":"object","properties":{"name":{"const":..},"arguments":schema},
 * "required":["name","arguments"]}). A "json" string may stand for a schema. */
int cll_grammar_compile_any(const json_t *const *schemas, size_t n,
                            const struct cll_grammar_opts *o, cll_grammar **out, cll_err *err);
void cll_grammar_free(cll_grammar *g);

/* ---------------------------------------------------------------- vocab */

/* Flags of one token for cll_grammar_vocab_new_raw. */
#define CLL_GV_EOG 1u     /* ends generation: allowed only when the value is complete */
#define CLL_GV_CONTROL 2u /* never allowed while the grammar is active */

/* Index of a tokenizer's vocabulary (pieces as the detokenizer prints them;
 * CONTROL/UNKNOWN tokens are never allowed, end-of-generation tokens end the
 * value). *out is new. */
int cll_grammar_vocab_new(const cll_tokenizer *t, cll_grammar_vocab **out);
/* The same from raw pieces (tests, benchmarks): piece[i] of len[i] bytes,
 * flags[i] (may be NULL). */
int cll_grammar_vocab_new_raw(const char *const *piece, const size_t *len, const uint8_t *flags,
                              int32_t n, cll_grammar_vocab **out);
void cll_grammar_vocab_free(cll_grammar_vocab *v);
int32_t cll_grammar_vocab_n(const cll_grammar_vocab *v);

/* ---------------------------------------------------------------- state */

int cll_grammar_state_new(const cll_grammar *g, const cll_grammar_vocab *v,
                          cll_grammar_state **out);
/* An independent copy of s (same grammar, vocab and position). */
int cll_grammar_state_copy(const cll_grammar_state *s, cll_grammar_state **out);
void cll_grammar_state_free(cll_grammar_state *s);

/* Advances by bytes. Returns true and moves the state if every byte is
 * allowed; false (state unchanged) otherwise. While inactive (lazy start),
 * bytes only feed the trigger search. */
bool cll_grammar_accept_bytes(cll_grammar_state *s, const char *bytes, size_t n);
/* Advances by a sampled token (its piece). An end-of-generation token ends
 * the value (state becomes done) when the value is complete. Returns false
 * when the token was not allowed (the state is unchanged). */
bool cll_grammar_accept_token(cll_grammar_state *s, int32_t token);

/* The allowed tokens now: bits[(n_vocab+63)/64] (bit i of word i/64) is set
 * for each. budget: tokens the sequence may still generate including this
 * one (< 0: unlimited). Returns the number of allowed tokens (0: nothing can
 * continue; the caller ends the sequence with an error). Inactive: all. */
int32_t cll_grammar_mask(cll_grammar_state *s, int32_t budget, uint64_t *bits);
/* The same applied to logits (n_logits floats; ids at or beyond the
 * vocabulary's size are disallowed too): disallowed tokens get -INFINITY.
 * Returns the number allowed; 0 leaves logits untouched. */
int32_t cll_grammar_apply(cll_grammar_state *s, float *logits, int64_t n_logits, int32_t budget);

bool cll_grammar_active(const cll_grammar_state *s);    /* lazy start has triggered (or none) */
bool cll_grammar_accepting(const cll_grammar_state *s); /* the value is complete */
/* Complete and nothing more can follow: generation should end now. */
bool cll_grammar_done(const cll_grammar_state *s);
/* Fewest bytes that still complete the value (0 when accepting). */
int64_t cll_grammar_distance(const cll_grammar_state *s);

#endif
