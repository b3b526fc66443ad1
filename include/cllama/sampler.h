/* sampler.h — choosing the next token from logits, and matching stop strings.
 *
 * Owns: cll_sampler (one per sequence: its parameters, its RNG, the ring of
 * recent tokens the repetition penalties look at, and candidate scratch
 * sized once for the vocabulary) and cll_stop (one per sequence: the stop
 * strings and the text held back while a stop string may still be
 * completing across token boundaries).
 *
 * Threads: a sampler or stop matcher is used by one thread at a time (the
 * scheduler samples inside the step's work item; the stop matcher runs on
 * the loop thread after detokenizing). Nothing blocks. Only the
 * constructors allocate; sampling, accepting and feeding text allocate
 * nothing in the steady state (the stop matcher grows its buffer only when
 * one detokenized piece is longer than any seen before).
 *
 * Sampling follows llama.cpp's default chain, which is what current Ollama
 * runs (llama-server): penalties -> top_k -> typical_p -> top_p -> min_p ->
 * temperature -> draw. top_k, typical_p, top_p and min_p see the
 * distribution at temperature 1; the temperature only reshapes what
 * survives. temperature <= 0 is greedy (argmax after the penalties; ties go
 * to the lowest token id). No step sorts the whole vocabulary: top_k is a
 * heap selection, and top_p/typical_p without top_k select a bounded,
 * growing candidate set until it holds the required probability mass.
 *
 * Options current Ollama accepts but ignores (mirostat, mirostat_tau,
 * mirostat_eta, tfs_z, penalize_newline, ...) have no field here: the API
 * layer accepts them in requests and Modelfiles and drops them. num_predict
 * is the scheduler's business (it counts tokens), not the sampler's. */
#ifndef CLLAMA_SAMPLER_H
#define CLLAMA_SAMPLER_H

#include "cllama/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sampling parameters of one request (transparent; fill with
 * cll_sampler_params_defaults and override what the request sets). */
struct cll_sampler_params {
  int64_t seed;            /* < 0: seeded from the OS (random); else deterministic */
  float temperature;       /* <= 0: greedy */
  int32_t top_k;           /* <= 0: off */
  float top_p;             /* >= 1: off */
  float min_p;             /* <= 0: off */
  float typical_p;         /* >= 1: off */
  int32_t repeat_last_n;   /* tokens in the penalty window; 0: penalties off. The API layer
                              resolves Ollama's -1 (= num_ctx) before creating the sampler */
  float repeat_penalty;    /* 1: off. logit > 0 is divided by it, logit <= 0 multiplied */
  float presence_penalty;  /* subtracted once from every token in the window */
  float frequency_penalty; /* subtracted once per occurrence in the window */
};

/* Ollama's defaults (OLLAMA_API.md §6): seed -1, temperature 0.8, top_k 40,
 * top_p 0.9, min_p 0, typical_p 1, repeat_last_n 64, repeat_penalty 1.0,
 * presence and frequency penalties 0. */
void cll_sampler_params_defaults(struct cll_sampler_params *p);

typedef struct cll_sampler cll_sampler;

/* Creates a sampler for a vocabulary of n_vocab tokens. *out is new; free it
 * with cll_sampler_free. CLL_EINVAL for n_vocab <= 0, a NaN parameter or
 * repeat_last_n < 0; CLL_ENOMEM. */
int cll_sampler_new(const struct cll_sampler_params *p, int32_t n_vocab, cll_sampler **out);
void cll_sampler_free(cll_sampler *s); /* NULL is a no-op */

/* Records a token in the penalty window: every generated token after it is
 * chosen, and (as llama-server does) the prompt tokens before generation. Ids
 * outside [0, n_vocab) are ignored. */
void cll_sampler_accept(cll_sampler *s, int32_t token);

/* Empties the penalty window and reseeds the RNG from the parameters (the
 * same seed gives the same draws again). */
void cll_sampler_reset(cll_sampler *s);

/* Chooses the next token from logits (n_vocab floats, borrowed, not
 * modified: the chain works on the sampler's own copy). Does not accept the
 * token: call cll_sampler_accept with the result. Always returns an id in
 * [0, n_vocab). */
int32_t cll_sampler_sample(cll_sampler *s, const float *logits);

/* ------------------------------------------------------------ logprobs */

#define CLL_MAX_TOP_LOGPROBS 20 /* the API's top_logprobs range is 0..20 */

struct cll_token_logprob {
  int32_t token;
  float logprob; /* natural log of the probability */
};

/* Log-probabilities under the raw distribution (softmax of logits at
 * temperature 1, as llama-server reports them): *token_logprob (may be
 * NULL) gets token's, top[0..k) the k most likely tokens, best first (ties to
 * the lower id). Returns the number written (min(k, n_vocab)) or CLL_EINVAL
 * (k outside 0..CLL_MAX_TOP_LOGPROBS). O(n_vocab), no allocation. */
int cll_logprobs(const float *logits, int32_t n_vocab, int32_t token, int k,
                 struct cll_token_logprob *top, float *token_logprob);

/* ------------------------------------------------------------ stop strings */

typedef struct cll_stop cll_stop;

/* Creates a matcher for n stop strings (copied; empty strings are ignored).
 * n == 0 is valid: everything fed is emitted at once. *out is new. */
int cll_stop_new(const char *const *stops, size_t n, cll_stop **out);
void cll_stop_free(cll_stop *m); /* NULL is a no-op */

/* Feeds the next detokenized piece (len bytes; need not be NUL-terminated).
 * Sets *emit / *emit_len to the text that is now safe to send to the
 * client: everything except a tail that is still a prefix of some stop
 * string. Returns true when a stop string has been completed: then *emit is
 * the remaining text before the stop string (never the stop string itself),
 * and generation should stop; later calls emit nothing. *emit is borrowed
 * and valid until the next call on m. */
bool cll_stop_feed(cll_stop *m, const char *piece, size_t len, const char **emit, size_t *emit_len);

/* Generation ended without a match (EOS, length): releases the held-back
 * tail. *emit borrowed as for cll_stop_feed. */
void cll_stop_flush(cll_stop *m, const char **emit, size_t *emit_len);

/* Bytes currently held back (for tests and logging). */
size_t cll_stop_held(const cll_stop *m);

#endif
