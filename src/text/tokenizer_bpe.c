/* tokenizer_bpe.c — byte-level BPE ("gpt2" vocabularies): the text is split
 * by the pre-tokenizer's patterns, each piece's bytes are mapped to
 * printable code points and merged by merge rank. */
#include "text/tokenizer_internal.h"

#include <string.h>

/* ---- byte-level BPE */

static void bpe_try_pair(struct enc *e, const char *w, int32_t l, int32_t r) {
  (void)w;
  if (l < 0 || r < 0)
    return;
  const struct sym *a = &e->syms[l], *b = &e->syms[r];
  if (a->id < 0 || b->id < 0)
    return;
  int32_t rank, res;
  if (!cll__tok_merge_find(e->t, a->id, b->id, &rank, &res))
    return;
  struct bigram bg = {(uint64_t)(uint32_t)rank << 32 | (uint32_t)l, l, r, a->n + b->n, res};
  cll__tok_heap_push(e, bg);
}

/* One pre-token (raw bytes w[0..n)): symbols are its bytes (each byte is one
 * code point of the byte map), merged by rank. */
static void bpe_word(struct enc *e, const char *w, size_t n) {
  const cll_tokenizer *t = e->t;
  if (n == 0)
    return;
  if (t->ignore_merges || n == 1) {
    /* A pre-token that is itself a token is emitted whole (llama-bpe does
     * this before merging; for one byte it is what merging would give). */
    if (!cll__tok_reserve((void **)&e->buf, &e->buf_cap, 2 * n, 1)) {
      e->rc = CLL_ENOMEM;
      return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned char b = (unsigned char)w[i];
      memcpy(e->buf + m, t->bmap[b], t->bmap_len[b]);
      m += t->bmap_len[b];
    }
    int32_t id = cll__tok_lookup_token(t, e->buf, m);
    if (id != NO_ID) {
      cll__tok_emit(e, id);
      return;
    }
  }
  if (!cll__tok_reserve((void **)&e->syms, &e->syms_cap, n, sizeof(*e->syms))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  for (size_t i = 0; i < n; i++) {
    struct sym *s = &e->syms[i];
    s->id = t->byte_sym[(unsigned char)w[i]];
    s->start = (uint32_t)i;
    s->n = 1;
    s->prev = (int32_t)i - 1;
    s->next = i + 1 == n ? -1 : (int32_t)i + 1;
  }
  cll__tok_merge_loop(e, w, 0, n, bpe_try_pair);
  for (int32_t i = 0; i != -1 && !e->rc; i = e->syms[i].next) {
    const struct sym *s = &e->syms[i];
    if (s->id >= 0 && s->id < t->n_vocab) {
      cll__tok_emit(e, s->id);
      continue;
    }
    /* Not a token: llama.cpp looks up each byte of its mapped text. */
    for (uint32_t k = 0; k < s->n; k++) {
      unsigned char b = (unsigned char)w[s->start + k];
      for (int j = 0; j < 2; j++)
        if (t->byte_fb[b][j] != NO_ID)
          cll__tok_emit(e, t->byte_fb[b][j]);
    }
  }
}

/* Makes text valid UTF-8 the way llama.cpp reads it: each byte that does not
 * start a valid character becomes U+FFFD. Returns text itself when valid. */

static bool push_cut(struct enc *e, size_t **cuts, size_t *cap, size_t *n, size_t a, size_t l) {
  if (!cll__tok_reserve((void **)cuts, cap, *n + 2, sizeof(size_t))) {
    e->rc = CLL_ENOMEM;
    return false;
  }
  (*cuts)[(*n)++] = a;
  (*cuts)[(*n)++] = l;
  return true;
}

static int re_match(pcre2_code *re, const char *s, size_t len, size_t start, pcre2_match_data *md) {
  int rc = pcre2_match(re, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK, md, NULL);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT)
    rc = pcre2_match(re, (PCRE2_SPTR)s, len, start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, NULL);
  return rc;
}

void cll__tok_bpe_encode(struct enc *e, const char *text, size_t len) {
  const cll_tokenizer *t = e->t;
  text = cll__tok_sanitize(e, text, &len);
  if (text == NULL || len == 0)
    return;
  size_t n = 0;
  if (!push_cut(e, &e->cuts, &e->cuts_cap, &n, 0, len))
    return;
  for (int r = 0; r < t->n_re && !e->rc; r++) {
    size_t n2 = 0;
    for (size_t c = 0; c < n && !e->rc; c += 2) {
      const char *piece = text + e->cuts[c];
      size_t plen = e->cuts[c + 1], pos = 0, last = 0;
      while (pos < plen) {
        int rc = re_match(t->re[r], piece, plen, pos, e->md);
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
          e->rc = CLL_EINVAL;
          return;
        }
        if (rc == PCRE2_ERROR_NOMATCH)
          break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step over one character */
          pos = ms + tok_utf8_len((unsigned char)piece[ms]);
          continue;
        }
        if (ms > last && !push_cut(e, &e->cuts2, &e->cuts2_cap, &n2, e->cuts[c] + last, ms - last))
          return;
        if (!push_cut(e, &e->cuts2, &e->cuts2_cap, &n2, e->cuts[c] + ms, me - ms))
          return;
        last = pos = me;
      }
      if (last < plen &&
          !push_cut(e, &e->cuts2, &e->cuts2_cap, &n2, e->cuts[c] + last, plen - last))
        return;
    }
    size_t *tmp = e->cuts;
    e->cuts = e->cuts2;
    e->cuts2 = tmp;
    size_t tc = e->cuts_cap;
    e->cuts_cap = e->cuts2_cap;
    e->cuts2_cap = tc;
    n = n2;
  }
  /* bpe_word may reuse e->buf but never e->clean, which text may point to. */
  for (size_t c = 0; c < n && !e->rc; c += 2)
    bpe_word(e, text + e->cuts[c], e->cuts[c + 1]);
}
