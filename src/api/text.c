/* text.c — the API layer's tokenizer adapter (see text.h). Until the
 * tokenizer module (include/cllama/tokenizer.h) is merged every call fails
 * with CLL_EUNSUPPORTED, so the endpoints answer a clear 500. */
#include "text.h"

#include <stdlib.h>

struct cll__mtext {
  int unused;
};
struct cll__detok {
  int unused;
};

int cll__mtext_load(void *ud, cll_model *m, void **aux, cll_err *err) {
  *aux = calloc(1, sizeof(struct cll__mtext));
  return *aux ? 0 : cll_err_set(err, CLL_ENOMEM, "out of memory");
}
void cll__mtext_free(void *aux) { free(aux); }

int cll__tokenize(const cll__mtext *t, const char *text, size_t len, bool add_special,
                  bool parse_special, int32_t **out, int32_t *n_out, cll_err *err) {
  return cll_err_set(err, CLL_EUNSUPPORTED, "the tokenizer is not built yet");
}
bool cll__is_eog(const cll__mtext *t, int32_t tok) { return false; }
int cll__detokenize(const cll__mtext *t, const int32_t *toks, int32_t n, char **out,
                    size_t *len) {
  return CLL_EUNSUPPORTED;
}
int cll__detok_new(const cll__mtext *t, cll__detok **out) {
  *out = calloc(1, sizeof(**out));
  return *out ? 0 : CLL_ENOMEM;
}
void cll__detok_free(cll__detok *d) { free(d); }
void cll__detok_push(cll__detok *d, int32_t tok, const char **piece, size_t *len) {
  *piece = "";
  *len = 0;
}
void cll__detok_flush(cll__detok *d, const char **piece, size_t *len) {
  *piece = "";
  *len = 0;
}
