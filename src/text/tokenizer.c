/* tokenizer.c — the encode driver of cll_tokenizer (see
 * include/cllama/tokenizer.h for the contract, tokenizer_internal.h for the
 * files): special tokens are split out of the text first (longest text
 * first, as llama.cpp does), each remaining run of plain text goes to the
 * vocabulary's algorithm, BOS/EOS/SEP are added as the vocabulary asks.
 * Also the machinery SPM and BPE share: merging a word uses a linked list
 * of symbols and a binary min-heap of candidate pairs ordered by (priority,
 * position), so each merge costs O(log n), never a rescan. A heap entry is
 * stale when either side has changed since it was pushed; since symbols
 * only grow, "the two lengths still add up to the entry's length" is the
 * whole test. */
#include "text/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

bool cll__tok_reserve(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap)
    return true;
  size_t c = *cap ? *cap : 64;
  while (c < need)
    c *= 2;
  void *np = realloc(*p, c * elem);
  if (np == NULL)
    return false;
  *p = np;
  *cap = c;
  return true;
}

void cll__tok_emit(struct enc *e, int32_t id) {
  if (e->rc)
    return;
  cll_tok_buf *b = e->out;
  if (b->n == b->cap && !cll__tok_reserve((void **)&b->ids, &b->cap, b->n + 1, sizeof(int32_t))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  b->ids[b->n++] = id;
}

void cll__tok_heap_push(struct enc *e, struct bigram bg) {
  if (!cll__tok_reserve((void **)&e->heap, &e->heap_cap, e->heap_n + 1, sizeof(*e->heap))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  size_t i = e->heap_n++;
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (e->heap[p].key <= bg.key)
      break;
    e->heap[i] = e->heap[p];
    i = p;
  }
  e->heap[i] = bg;
}

static struct bigram heap_pop(struct enc *e) {
  struct bigram top = e->heap[0];
  struct bigram last = e->heap[--e->heap_n];
  size_t i = 0, n = e->heap_n;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= n)
      break;
    if (c + 1 < n && e->heap[c + 1].key < e->heap[c].key)
      c++;
    if (last.key <= e->heap[c].key)
      break;
    e->heap[i] = e->heap[c];
    i = c;
  }
  if (n > 0)
    e->heap[i] = last;
  return top;
}

/* Merges the symbol list of one word (syms[0..n) linked in order). The
 * priority of a pair comes from try_pair, which the two algorithms define. */
void cll__tok_merge_loop(struct enc *e, const char *w, size_t first, size_t n,
                         try_pair_fn try_pair) {
  struct sym *s = e->syms;
  e->heap_n = 0;
  for (size_t i = first + 1; i < first + n; i++)
    try_pair(e, w, (int32_t)i - 1, (int32_t)i);
  while (e->heap_n > 0 && !e->rc) {
    struct bigram bg = heap_pop(e);
    struct sym *l = &s[bg.left], *r = &s[bg.right];
    if (l->n == 0 || r->n == 0 || l->n + r->n != bg.size)
      continue; /* stale */
    l->n += r->n;
    l->id = bg.res;
    r->n = 0;
    l->next = r->next;
    if (r->next >= 0)
      s[r->next].prev = bg.left;
    try_pair(e, w, l->prev, bg.left);
    try_pair(e, w, bg.left, l->next);
  }
}

const char *cll__tok_sanitize(struct enc *e, const char *text, size_t *len) {
  size_t n = *len, i = 0;
  while (i < n) {
    if ((unsigned char)text[i] < 0x80) {
      i++;
      continue;
    }
    int l = cll__tok_utf8_valid((const unsigned char *)text + i, n - i);
    if (l <= 0)
      break;
    i += (size_t)l;
  }
  if (i == n)
    return text;
  if (!cll__tok_reserve((void **)&e->clean, &e->clean_cap, 3 * n, 1)) {
    e->rc = CLL_ENOMEM;
    return NULL;
  }
  memcpy(e->clean, text, i);
  size_t o = i;
  while (i < n) {
    int l = (unsigned char)text[i] < 0x80
                ? 1
                : cll__tok_utf8_valid((const unsigned char *)text + i, n - i);
    if (l <= 0) {
      memcpy(e->clean + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    } else {
      memcpy(e->clean + o, text + i, (size_t)l);
      o += (size_t)l;
      i += (size_t)l;
    }
  }
  *len = o;
  return e->clean;
}

/* ---- special-token partition */

struct frags {
  struct frag *v;
  size_t n, cap;
};

static bool frag_push(struct frags *f, struct frag x) {
  if (!cll__tok_reserve((void **)&f->v, &f->cap, f->n + 1, sizeof(*f->v)))
    return false;
  f->v[f->n++] = x;
  return true;
}

static bool is_space(char c) {
  return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Splits the text fragments at every occurrence of each special token, the
 * longest token texts first (llama.cpp's order). CONTROL and UNKNOWN tokens
 * are looked for only in fragments with parse set. */
static int partition(const cll_tokenizer *t, const char *text, struct frags *fr) {
  struct frags next = {0};
  int rc = 0;
  for (size_t k = 0; k < t->n_specials && rc == 0; k++) {
    int32_t id = t->specials[k];
    const char *stext = tok_str(t, id);
    size_t slen = t->str_len[id];
    bool needs_parse = (t->flags[id] & TF_HIDDEN) != 0;
    bool any = false;
    for (size_t i = 0; i < fr->n; i++) {
      const struct frag *f = &fr->v[i];
      if (f->id == NO_ID && (f->parse || !needs_parse) && f->len >= slen &&
          memmem(text + f->off, f->len, stext, slen) != NULL) {
        any = true;
        break;
      }
    }
    if (!any)
      continue;
    next.n = 0;
    for (size_t i = 0; i < fr->n && rc == 0; i++) {
      struct frag f = fr->v[i];
      if (f.id != NO_ID || (needs_parse && !f.parse) || f.len < slen) {
        if (!frag_push(&next, f))
          rc = CLL_ENOMEM;
        continue;
      }
      size_t pos = f.off, end = f.off + f.len;
      while (pos < end) {
        const char *m = memmem(text + pos, end - pos, stext, slen);
        if (m == NULL)
          break;
        size_t mo = (size_t)(m - text), left_end = mo;
        if (t->flags[id] & TF_LSTRIP)
          while (left_end > pos && is_space(text[left_end - 1]))
            left_end--;
        if (left_end > pos && !frag_push(&next, (struct frag){pos, left_end - pos, NO_ID, f.parse}))
          rc = CLL_ENOMEM;
        if (!frag_push(&next, (struct frag){mo, slen, id, f.parse}))
          rc = CLL_ENOMEM;
        pos = mo + slen;
        if (t->flags[id] & TF_RSTRIP)
          while (pos < end && is_space(text[pos]))
            pos++;
      }
      if (pos < end && !frag_push(&next, (struct frag){pos, end - pos, NO_ID, f.parse}))
        rc = CLL_ENOMEM;
    }
    struct frags tmp = *fr;
    *fr = next;
    next = tmp;
  }
  free(next.v);
  return rc;
}

int cll_tokenize_segments(const cll_tokenizer *t, const struct cll_tok_segment *segs, size_t n_segs,
                          bool add_special, cll_tok_buf *out) {
  size_t n0 = out->n;
  size_t total = 0;
  for (size_t i = 0; i < n_segs; i++)
    total += segs[i].len;
  const char *text;
  char *joined = NULL;
  if (n_segs == 1) {
    text = segs[0].text;
  } else {
    joined = malloc(total ? total : 1);
    if (joined == NULL)
      return CLL_ENOMEM;
    size_t o = 0;
    for (size_t i = 0; i < n_segs; i++) {
      if (segs[i].len)
        memcpy(joined + o, segs[i].text, segs[i].len);
      o += segs[i].len;
    }
    text = joined;
  }

  struct enc e = {.t = t, .out = out};
  struct frags fr = {0};
  size_t o = 0;
  for (size_t i = 0; i < n_segs && !e.rc; i++) {
    if (segs[i].len && !frag_push(&fr, (struct frag){o, segs[i].len, NO_ID, segs[i].parse_special}))
      e.rc = CLL_ENOMEM;
    o += segs[i].len;
  }
  if (!e.rc)
    e.rc = partition(t, text, &fr);
  /* Text left next to text (from different segments) is one run. */
  size_t m = 0;
  for (size_t i = 0; i < fr.n && !e.rc; i++) {
    if (m > 0 && fr.v[m - 1].id == NO_ID && fr.v[i].id == NO_ID &&
        fr.v[m - 1].off + fr.v[m - 1].len == fr.v[i].off)
      fr.v[m - 1].len += fr.v[i].len;
    else
      fr.v[m++] = fr.v[i];
  }
  fr.n = m;

  if (t->kind == CLL_TOK_BPE && t->n_re > 0 && !e.rc) {
    e.md = pcre2_match_data_create(32, NULL);
    if (e.md == NULL)
      e.rc = CLL_ENOMEM;
  }
  /* WordPiece: [CLS] ... [SEP] whenever specials are asked for (llama.cpp
   * does not consult add_bos/add_sep there); the others as the vocabulary
   * says. */
  const bool wpm = t->kind == CLL_TOK_WPM;
  if (add_special && (wpm ? t->bos != NO_ID : t->add_bos))
    cll__tok_emit(&e, t->bos);
  bool prev_special = true; /* SPM: a space goes before the first text */
  for (size_t i = 0; i < fr.n && !e.rc; i++) {
    const struct frag *f = &fr.v[i];
    if (f->id != NO_ID) {
      cll__tok_emit(&e, f->id);
      prev_special = true;
      continue;
    }
    switch (t->kind) {
    case CLL_TOK_SPM:
      cll__tok_spm_encode(&e, text + f->off, f->len, t->add_space_prefix && prev_special);
      break;
    case CLL_TOK_BPE:
      cll__tok_bpe_encode(&e, text + f->off, f->len);
      break;
    case CLL_TOK_WPM:
      cll__tok_wpm_encode(&e, text + f->off, f->len);
      break;
    case CLL_TOK_UGM:
      cll__tok_ugm_encode(&e, text + f->off, f->len);
      break;
    }
    prev_special = false;
  }
  if (add_special && !wpm && t->add_eos)
    cll__tok_emit(&e, t->eos);
  if (add_special && wpm && t->sep != NO_ID)
    cll__tok_emit(&e, t->sep);

  pcre2_match_data_free(e.md);
  free(fr.v);
  free(e.syms);
  free(e.heap);
  free(e.buf);
  free(e.clean);
  free(e.cuts);
  free(e.cuts2);
  free(e.ugm);
  free(joined);
  if (e.rc)
    out->n = n0;
  return e.rc;
}

int cll_tokenize_append(const cll_tokenizer *t, const char *text, size_t len, unsigned flags,
                        cll_tok_buf *out) {
  struct cll_tok_segment seg = {text, len, (flags & CLL_TOK_PARSE_SPECIAL) != 0};
  return cll_tokenize_segments(t, &seg, 1, (flags & CLL_TOK_ADD_SPECIAL) != 0, out);
}

int cll_tokenize(const cll_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *ids,
                 size_t cap, size_t *n_out) {
  cll_tok_buf b = {0};
  int rc = cll_tokenize_append(t, text, len, flags, &b);
  if (rc) {
    cll_tok_buf_free(&b);
    return rc;
  }
  *n_out = b.n;
  if (b.n > cap) {
    cll_tok_buf_free(&b);
    return CLL_ERANGE;
  }
  if (b.n)
    memcpy(ids, b.ids, b.n * sizeof(*ids));
  cll_tok_buf_free(&b);
  return 0;
}

void cll_tok_buf_free(cll_tok_buf *b) {
  if (b == NULL)
    return;
  free(b->ids);
  b->ids = NULL;
  b->n = b->cap = 0;
}
