/* gen.h — internals shared by the generation endpoints (generate, chat,
 * embed, show): generation options (OLLAMA_API.md §6), keep_alive values,
 * and the resolved model (manifest layers read from the store).
 *
 * Threads: loop thread. Nothing blocks except reading small manifest layers
 * (template, system, params, messages: a few KiB) from the store. */
#ifndef CLLAMA_API_GEN_H
#define CLLAMA_API_GEN_H

#include "cllama/common.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Options as Ollama's api.Options; the *_set flags say which ones a layer or
 * the request gave explicitly. */
struct cll__gen_opts {
  int64_t num_ctx;     /* 0: the server default */
  int64_t num_predict; /* -1: unbounded */
  int64_t num_keep;
  int64_t seed; /* -1: random */
  double temperature, top_p, min_p, typical_p;
  int64_t top_k;
  int64_t repeat_last_n;
  double repeat_penalty, presence_penalty, frequency_penalty;
  int64_t num_batch, num_gpu, main_gpu, num_thread;
  bool use_mmap;
  char **stop; /* owned, n_stop strings */
  size_t n_stop;
  char *system; /* the seed's options.system (owned, may be NULL) */
};

void cll__gen_opts_defaults(struct cll__gen_opts *o);
void cll__gen_opts_free(struct cll__gen_opts *o);
/* Applies one layer (the model's params, then the request's options) over o.
 * Unknown keys are logged and ignored. A known key of the wrong JSON type
 * fails with Ollama's message (option "k" must be of type integer ...). */
int cll__gen_opts_apply(struct cll__gen_opts *o, json_t *layer, cll_err *err);

/* Adds a Modelfile PARAMETER (text value) to params with the option's type;
 * a repeated stop becomes an array. "unknown parameter 'x'" otherwise. */
int cll__param_add(json_t *params, const char *key, const char *text, cll_err *err);

/* keep_alive: a number is seconds (negative: forever), a string a Go
 * duration ("5m", "1h30m", "-1s", "0"); null/absent: *set = false.
 * Forever is returned as a negative value. Errors carry Go's message. */
int cll__keep_alive_parse(json_t *v, int64_t *ns, bool *set, cll_err *err);
/* Go's time.ParseDuration. */
int cll__go_duration(const char *s, int64_t *ns, cll_err *err);

#endif
