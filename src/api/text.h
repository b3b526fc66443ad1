/* text.h — the API layer's per-model text objects (tokenizer, end-of-
 * generation tokens) and incremental detokenization, over the text module.
 *
 * Threads: cll__mtext_load/free run on work items (runners' load hook);
 * tokenizing runs on work items; the detokenizer runs on the loop thread
 * (one token at a time, cheap). A cll__mtext is immutable once loaded. */
#ifndef CLLAMA_API_TEXT_H
#define CLLAMA_API_TEXT_H

#include "cllama/common.h"
#include "cllama/engine.h"
#include "cllama/tokenizer.h"
#include "cllama/grammar.h"
#include "cllama/tokenizer.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cll__mtext cll__mtext;

/* The runners' on_load hook: builds the tokenizer of m into *aux. */
int cll__mtext_load(void *ud, cll_model *m, void **aux, cll_err *err);
void cll__mtext_free(void *aux);

/* The model's tokenizer (borrowed, immutable: any thread). */
const cll_tokenizer *cll__mtext_tok(const cll__mtext *t);

/* The vocabulary's index for constrained decoding (include/cllama/grammar.h),
 * built on first use (work items only: building a 128k vocabulary takes tens
 * of milliseconds) and kept until the model unloads. *out is borrowed. */
int cll__mtext_grammar_vocab(const cll__mtext *t, const cll_grammar_vocab **out);

/* Tokenizes text; add_special adds BOS (when the vocabulary asks for it),
 * parse_special turns special-token text into their ids. *out is new
 * (free()). */
int cll__tokenize(const cll__mtext *t, const char *text, size_t len, bool add_special,
                  bool parse_special, int32_t **out, int32_t *n_out, cll_err *err);
/* The model's tokenizer (borrowed, lives as long as t). */
const cll_tokenizer *cll__mtext_tokenizer(const cll__mtext *t);
/* True for end-of-generation tokens (EOS, EOT, ...). */
bool cll__is_eog(const cll__mtext *t, int32_t tok);
/* The whole text of tokens (special tokens rendered); *out is new. */
int cll__detokenize(const cll__mtext *t, const int32_t *toks, int32_t n, char **out, size_t *len);

typedef struct cll__detok cll__detok;
int cll__detok_new(const cll__mtext *t, cll__detok **out);
void cll__detok_free(cll__detok *d);
/* Adds one token; *piece is the text now complete (never a split UTF-8
 * sequence), borrowed until the next call. */
void cll__detok_push(cll__detok *d, int32_t tok, const char **piece, size_t *len);
/* Whatever is held back at the end (an incomplete sequence). */
void cll__detok_flush(cll__detok *d, const char **piece, size_t *len);

#endif
