/* tokenizer_detok.c — token ids back to text: pieces (precomputed at load),
 * whole-sequence detokenization as llama_detokenize does it, and the
 * incremental detokenizer that never splits a UTF-8 character. */
#include "text/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

/* ================================================================ decoding */

const char *cll_tok_piece(const cll_tokenizer *t, int32_t id, bool special, size_t *len) {
  if (id < 0 || id >= t->n_vocab || (!special && (t->flags[id] & TF_HIDDEN))) {
    *len = 0;
    return "";
  }
  *len = t->piece_len[id];
  return t->piece_pool + t->piece_off[id];
}

size_t cll_tok_max_piece_len(const cll_tokenizer *t) {
  return t->max_piece;
}

/* llama.cpp's clean_up_tokenization_spaces, in place; returns the new length. */
static size_t clean_spaces(char *s, size_t n) {
  if (n == 0)
    return 0;
  /* " ?", " !", " .", " ," lose the space */
  size_t o = 1;
  for (size_t i = 1; i < n; i++) {
    char x = s[i];
    if (s[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ','))
      o--;
    s[o++] = x;
  }
  n = o;
  /* " ' " -> "'" */
  o = 1;
  for (size_t i = 1; i < n; i++) {
    char x = s[i];
    if (x == '\'' && i + 1 < n && s[i - 1] == ' ' && s[i + 1] == ' ') {
      o--;
      s[o++] = x;
      s[++i] = 0; /* the next space goes too (and no longer counts as one) */
      continue;
    }
    s[o++] = x;
  }
  n = o;
  /* " 's", " 'm", " 're", " 've" lose the space */
  o = 1;
  for (size_t i = 1; i < n; i++) {
    char x = s[i];
    if (s[i - 1] == ' ' && x == '\'' && i + 1 < n) {
      char x1 = s[i + 1];
      if (x1 == 's' || x1 == 'm')
        o--;
      else if (i + 2 < n && ((x1 == 'r' && s[i + 2] == 'e') || (x1 == 'v' && s[i + 2] == 'e')))
        o--;
    }
    s[o++] = x;
  }
  return o;
}

int cll_detokenize(const cll_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *out,
                   size_t cap, size_t *n_out) {
  bool remove_space = t->add_space_prefix;
  if ((flags & CLL_DETOK_REMOVE_SPECIAL) && t->add_bos && n > 0 && ids[0] == t->bos) {
    remove_space = false;
    ids++;
    n--;
  }
  if ((flags & CLL_DETOK_REMOVE_SPECIAL) && t->add_eos && n > 0 && ids[n - 1] == t->eos)
    n--;
  bool special = (flags & CLL_DETOK_UNPARSE_SPECIAL) != 0;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t len;
    const char *p = cll_tok_piece(t, ids[i], special, &len);
    if (remove_space && len > 0 && p[0] == ' ') {
      p++;
      len--;
    }
    remove_space = false;
    if (len > 0 && total + len <= cap)
      memcpy(out + total, p, len);
    total += len;
  }
  if (total <= cap && (flags & CLL_DETOK_CLEAN_SPACES) && t->clean_spaces)
    total = clean_spaces(out, total);
  *n_out = total;
  return total <= cap ? 0 : CLL_ERANGE;
}

/* ---- incremental */

struct cll_detok {
  const cll_tokenizer *t;
  unsigned flags;
  unsigned char held[4]; /* incomplete UTF-8 sequence carried over */
  size_t n_held;
  char *out; /* (out_cap) the text returned by the last call */
  size_t out_cap;
};

int cll_detok_new(const cll_tokenizer *t, unsigned flags, cll_detok **out) {
  cll_detok *d = calloc(1, sizeof(*d));
  if (d == NULL)
    return CLL_ENOMEM;
  d->t = t;
  d->flags = flags;
  /* Worst case: every byte of (held + piece) becomes a 3-byte U+FFFD. */
  d->out_cap = 3 * (t->max_piece + 4) + 4;
  d->out = malloc(d->out_cap);
  if (d->out == NULL) {
    free(d);
    return CLL_ENOMEM;
  }
  *out = d;
  return 0;
}

void cll_detok_free(cll_detok *d) {
  if (d == NULL)
    return;
  free(d->out);
  free(d);
}

void cll_detok_reset(cll_detok *d) {
  d->n_held = 0;
}

/* Appends held + p[0..n) to d->out, whole characters only; keeps a valid
 * but incomplete tail in held. */
static size_t detok_feed(cll_detok *d, const char *p, size_t n) {
  size_t o = 0;
  size_t i = 0;
  /* First finish a held sequence, one byte at a time. */
  while (d->n_held > 0) {
    if (i == n)
      return o;
    unsigned char tmp[4];
    memcpy(tmp, d->held, d->n_held);
    tmp[d->n_held] = (unsigned char)p[i];
    int l = cll__tok_utf8_valid(tmp, d->n_held + 1);
    if (l < 0) {
      d->held[d->n_held++] = (unsigned char)p[i++];
      continue;
    }
    if (l > 0) {
      memcpy(d->out + o, tmp, (size_t)l);
      o += (size_t)l;
      i++;
      d->n_held = 0;
      break;
    }
    /* The held bytes can never complete: each becomes U+FFFD, and the new
     * byte is looked at again below. */
    memcpy(d->out + o, "\xEF\xBF\xBD", 3);
    o += 3;
    d->n_held = 0;
  }
  while (i < n) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x80) {
      d->out[o++] = (char)c;
      i++;
      continue;
    }
    int l = cll__tok_utf8_valid((const unsigned char *)p + i, n - i);
    if (l > 0) {
      memcpy(d->out + o, p + i, (size_t)l);
      o += (size_t)l;
      i += (size_t)l;
    } else if (l < 0) {
      memcpy(d->held, p + i, n - i);
      d->n_held = n - i;
      i = n;
    } else {
      memcpy(d->out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  return o;
}

const char *cll_detok_push(cll_detok *d, int32_t id, size_t *len) {
  size_t n;
  const char *p = cll_tok_piece(d->t, id, (d->flags & CLL_DETOK_UNPARSE_SPECIAL) != 0, &n);
  *len = detok_feed(d, p, n);
  return d->out;
}

const char *cll_detok_flush(cll_detok *d, size_t *len) {
  size_t o = 0;
  if (d->n_held > 0) {
    memcpy(d->out, "\xEF\xBF\xBD", 3);
    o = 3;
  }
  d->n_held = 0;
  *len = o;
  return d->out;
}
