/* text.c — the API layer's tokenizer adapter (see text.h) over
 * include/cllama/tokenizer.h. */
#include "text.h"

#include "cllama/tokenizer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct cll__mtext {
  cll_tokenizer *tok;
  pthread_mutex_t gmu;       /* guards the lazy build of gvocab */
  cll_grammar_vocab *gvocab; /* constrained decoding's token index, NULL until asked */
};

struct cll__detok {
  cll_detok *d;
};

const cll_tokenizer *cll__mtext_tokenizer(const cll__mtext *t) {
  return t->tok;
}

int cll__mtext_load(void *ud, cll_model *m, void **aux, cll_err *err) {
  struct cll__mtext *t = calloc(1, sizeof(*t));
  if (!t)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  int rc = cll_tokenizer_new(cll_model_gguf(m), &t->tok, err);
  if (rc != 0) {
    free(t);
    return rc;
  }
  pthread_mutex_init(&t->gmu, NULL);
  *aux = t;
  return 0;
}

void cll__mtext_free(void *aux) {
  struct cll__mtext *t = aux;
  if (!t)
    return;
  cll_tokenizer_free(t->tok);
  cll_grammar_vocab_free(t->gvocab);
  pthread_mutex_destroy(&t->gmu);
  free(t);
}

const cll_tokenizer *cll__mtext_tok(const cll__mtext *t) {
  return t->tok;
}

int cll__mtext_grammar_vocab(const cll__mtext *ct, const cll_grammar_vocab **out) {
  cll__mtext *t = (cll__mtext *)ct; /* the lazily built index is the only mutable part */
  int rc = 0;
  pthread_mutex_lock(&t->gmu);
  if (!t->gvocab)
    rc = cll_grammar_vocab_new(t->tok, &t->gvocab);
  *out = t->gvocab;
  pthread_mutex_unlock(&t->gmu);
  return rc;
}

int cll__tokenize(const cll__mtext *t, const char *text, size_t len, bool add_special,
                  bool parse_special, int32_t **out, int32_t *n_out, cll_err *err) {
  cll_tok_buf b = {0};
  unsigned flags =
      (add_special ? CLL_TOK_ADD_SPECIAL : 0) | (parse_special ? CLL_TOK_PARSE_SPECIAL : 0);
  int rc = cll_tokenize_append(t->tok, text, len, flags, &b);
  if (rc != 0) {
    cll_tok_buf_free(&b);
    return cll_err_set(err, rc, "tokenizing the prompt: %s", cll_strerror(rc));
  }
  if (b.n > INT32_MAX / 2) {
    cll_tok_buf_free(&b);
    return cll_err_set(err, CLL_ETOOBIG, "the prompt is too long");
  }
  *n_out = (int32_t)b.n;
  *out = b.ids ? b.ids : malloc(sizeof(int32_t));
  return *out ? 0 : cll_err_set(err, CLL_ENOMEM, "out of memory");
}

bool cll__is_eog(const cll__mtext *t, int32_t tok) {
  return cll_tok_is_eog(t->tok, tok);
}

int cll__detokenize(const cll__mtext *t, const int32_t *toks, int32_t n, char **out, size_t *len) {
  size_t need = 0;
  cll_detokenize(t->tok, toks, (size_t)n, 0, NULL, 0, &need);
  char *buf = malloc(need + 1);
  if (!buf)
    return CLL_ENOMEM;
  int rc = cll_detokenize(t->tok, toks, (size_t)n, 0, buf, need, &need);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  buf[need] = 0;
  *out = buf;
  if (len)
    *len = need;
  return 0;
}

int cll__detok_new(const cll__mtext *t, cll__detok **out) {
  cll__detok *d = calloc(1, sizeof(*d));
  if (!d)
    return CLL_ENOMEM;
  int rc = cll_detok_new(t->tok, 0, &d->d);
  if (rc != 0) {
    free(d);
    return rc;
  }
  *out = d;
  return 0;
}

void cll__detok_free(cll__detok *d) {
  if (!d)
    return;
  cll_detok_free(d->d);
  free(d);
}

void cll__detok_push(cll__detok *d, int32_t tok, const char **piece, size_t *len) {
  *piece = cll_detok_push(d->d, tok, len);
}

void cll__detok_flush(cll__detok *d, const char **piece, size_t *len) {
  *piece = cll_detok_flush(d->d, len);
}
