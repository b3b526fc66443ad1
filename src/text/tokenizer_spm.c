/* tokenizer_spm.c — SentencePiece BPE ("llama" vocabularies: LLaMA, Mistral,
 * Gemma): highest-score pair merging over UTF-8 characters, ' ' written as
 * U+2581, byte fallback to <0xNN> tokens. */
#include "text/tokenizer_internal.h"

#include <string.h>

/* ---- SentencePiece */

static uint32_t score_key_desc(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u = (u & 0x80000000u) ? ~u : (u | 0x80000000u); /* ascending order of f */
  return ~u;                                      /* descending */
}

static void spm_try_pair(struct enc *e, const char *w, int32_t l, int32_t r) {
  if (l < 0 || r < 0)
    return;
  const struct sym *a = &e->syms[l], *b = &e->syms[r];
  int32_t id = cll__tok_lookup_token(e->t, w + a->start, a->n + b->n);
  if (id == NO_ID)
    return;
  struct bigram bg = {(uint64_t)score_key_desc(e->t->scores[id]) << 32 | (uint32_t)l, l, r,
                      a->n + b->n, id};
  cll__tok_heap_push(e, bg);
}

void cll__tok_spm_encode(struct enc *e, const char *text, size_t len, bool prefix_space) {
  const cll_tokenizer *t = e->t;
  /* Escape: optional leading space, then ' ' -> U+2581 (3 bytes). */
  size_t need = len * 3 + 3;
  if (!cll__tok_reserve((void **)&e->buf, &e->buf_cap, need, 1)) {
    e->rc = CLL_ENOMEM;
    return;
  }
  char *w = e->buf;
  size_t n = 0;
  if (prefix_space) {
    memcpy(w, "\xE2\x96\x81", 3);
    n = 3;
  }
  for (size_t i = 0; i < len; i++) {
    if (text[i] == ' ') {
      memcpy(w + n, "\xE2\x96\x81", 3);
      n += 3;
    } else {
      w[n++] = text[i];
    }
  }
  if (n == 0)
    return;
  if (!cll__tok_reserve((void **)&e->syms, &e->syms_cap, n, sizeof(*e->syms))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  size_t ns = 0;
  for (size_t off = 0; off < n;) {
    size_t l = tok_utf8_len((unsigned char)w[off]);
    if (l > n - off)
      l = n - off;
    struct sym *s = &e->syms[ns];
    unsigned char c0 = (unsigned char)w[off];
    if (l == 1 && c0 < 0x80)
      s->id = t->spm_ascii[c0];
    else if (l == 3 && c0 == 0xE2 && memcmp(w + off, "\xE2\x96\x81", 3) == 0)
      s->id = t->spm_space;
    else
      s->id = cll__tok_lookup_token(t, w + off, l);
    s->start = (uint32_t)off;
    s->n = (uint32_t)l;
    s->prev = (int32_t)ns - 1;
    off += l;
    s->next = off == n ? -1 : (int32_t)ns + 1;
    ns++;
  }
  /* When no token holds U+2581 after another character, no merge crosses
   * the start of a run of U+2581 symbols: each word then merges alone, with
   * the same result as merging the whole text at once (the order of merges
   * inside a word is the same) and a small, cache-friendly heap. */
  size_t first = 0;
  for (size_t i = 0; i <= ns && !e->rc; i++) {
    bool cut = i == ns;
    if (!cut && t->spm_split_words && i > first && e->syms[i].n == 3 &&
        memcmp(w + e->syms[i].start, "\xE2\x96\x81", 3) == 0) {
      const struct sym *p = &e->syms[i - 1];
      cut = !(p->n == 3 && memcmp(w + p->start, "\xE2\x96\x81", 3) == 0);
    }
    if (!cut)
      continue;
    e->syms[first].prev = -1;
    e->syms[i - 1].next = -1;
    cll__tok_merge_loop(e, w, first, i - first, spm_try_pair);
    for (int32_t k = (int32_t)first; k != -1 && !e->rc; k = e->syms[k].next) {
      const struct sym *s = &e->syms[k];
      if (s->id != NO_ID) {
        cll__tok_emit(e, s->id);
      } else {
        for (uint32_t b = 0; b < s->n; b++) {
          int32_t id = t->spm_byte[(unsigned char)w[s->start + b]];
          if (id != NO_ID)
            cll__tok_emit(e, id);
        }
      }
    }
    first = i;
  }
}
