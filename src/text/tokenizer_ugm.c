/* tokenizer_ugm.c — SentencePiece Unigram ("t5" vocabularies: T5,
 * XLM-RoBERTa, bge-m3, bge-reranker-v2-m3).
 *
 * Normalisation, as SentencePiece (and llama.cpp) do it: at each position
 * the longest USER_DEFINED token is kept as it is; otherwise the longest
 * prefix found in the precompiled character map (an XOR-compressed compact
 * double array over bytes whose leaves index NUL-terminated replacement
 * strings: NFKC and the like, baked in by the model's trainer) is replaced;
 * otherwise one UTF-8 character is copied (an invalid byte becomes U+FFFD).
 * Spaces in the result become U+2581 (escape_whitespaces), runs of them
 * merge into one before each word (remove_extra_whitespaces), and a space
 * is put first (add_space_prefix).
 *
 * Tokenization: Viterbi over byte offsets. best[i] is the highest score of
 * a tokenization of the first i bytes; from each character boundary every
 * vocabulary entry (NORMAL, USER_DEFINED, UNUSED) that starts there extends
 * it (USER_DEFINED tokens score 0; scores are summed in double, as the HF
 * tokenizer does). A character no token covers alone may be taken as [UNK]
 * with the lowest NORMAL score minus 10. Backtracking from the end gives the
 * tokens; consecutive [UNK]s merge into one. */
#include "text/tokenizer_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

int cll__tok_ugm_init(cll_tokenizer *t, const cll_gguf *g, cll_err *err) {
  bool b;
  t->ugm_escape_ws = true;
  t->ugm_ws_suffix = false;
  t->ugm_merge_ws = false;
  if (cll_gguf_get_bool(g, "tokenizer.ggml.remove_extra_whitespaces", &b) == 0)
    t->ugm_merge_ws = b;
  float lo = FLT_MAX;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    if (t->types[id] == CLL_TOKEN_NORMAL && t->scores[id] < lo)
      lo = t->scores[id];
    if (t->types[id] == CLL_TOKEN_USER_DEFINED)
      t->has_user_defined = true;
  }
  t->ugm_unk_score = (double)lo - 10.0;

  enum cll_gguf_vtype et;
  const void *data;
  uint64_t n;
  if (cll_gguf_get_arr_data(g, "tokenizer.ggml.precompiled_charsmap", &data, &n, &et) != 0)
    return 0; /* no map: text is used as it is */
  if (et != CLL_GGUF_U8 && et != CLL_GGUF_I8)
    return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.precompiled_charsmap is not a byte array");
  if (n == 0)
    return 0;
  uint32_t xcda_bytes;
  if (n < 4 || (memcpy(&xcda_bytes, data, 4), (uint64_t)xcda_bytes + 4 >= n) || xcda_bytes % 4 != 0)
    return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.precompiled_charsmap is malformed");
  t->charsmap = malloc((size_t)n);
  if (t->charsmap == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  memcpy(t->charsmap, data, (size_t)n);
  t->xcda = (const uint32_t *)(t->charsmap + 4); /* malloc'd: aligned */
  t->n_xcda = xcda_bytes / 4;
  t->repl = (const char *)t->charsmap + 4 + xcda_bytes;
  t->n_repl = (size_t)n - 4 - xcda_bytes;
  return 0;
}

/* ---- normalisation */

/* Entry fields of the double array (Kanda 2018, as SentencePiece packs
 * them): BASE in bits 10..30 (shifted left by 8 when bit 9 is set), LCHECK
 * in bits 0..7 (bit 31 set on value entries), LEAF in bit 8, VALUE in bits
 * 0..30. Out-of-range indices read as 0 (matches nothing). */
static uint32_t xnode(const cll_tokenizer *t, size_t i) {
  return i < t->n_xcda ? t->xcda[i] : 0;
}
static uint32_t xbase(uint32_t v) {
  return (v >> 10) << ((v & (1u << 9)) >> 6);
}

/* Longest prefix of s[0..n) in the character map: its length (0 when none)
 * and the offset of its replacement in t->repl. */
static size_t charsmap_match(const cll_tokenizer *t, const char *s, size_t n, size_t *repl_off) {
  if (t->n_xcda == 0)
    return 0;
  size_t best = 0;
  uint32_t node = xbase(xnode(t, 0));
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0)
      break;
    node ^= c;
    uint32_t v = xnode(t, node);
    if ((v & ((1u << 31) | 0xFFu)) != c)
      break;
    bool leaf = (v >> 8) & 1;
    node ^= xbase(v);
    if (leaf) {
      best = i + 1;
      *repl_off = xnode(t, node) & ((1u << 31) - 1);
    }
  }
  return best;
}

/* Longest USER_DEFINED token at s[0..n), 0 when none. */
static size_t user_defined_match(const cll_tokenizer *t, const char *s, size_t n) {
  if (!t->has_user_defined)
    return 0;
  size_t max = n < t->max_token_len ? n : t->max_token_len;
  for (size_t l = max; l > 0; l--) {
    int32_t id = cll__tok_lookup_token(t, s, l);
    if (id != NO_ID && t->types[id] == CLL_TOKEN_USER_DEFINED)
      return l;
  }
  return 0;
}

static bool put(struct enc *e, char **o, size_t *n, size_t *cap, const char *p, size_t len) {
  if (!cll__tok_reserve((void **)o, cap, *n + len, 1)) {
    e->rc = CLL_ENOMEM;
    return false;
  }
  memcpy(*o + *n, p, len);
  *n += len;
  return true;
}

/* Normalises text into e->buf; returns its length. */
static size_t normalize(struct enc *e, const char *text, size_t len) {
  const cll_tokenizer *t = e->t;
  const char *space = t->ugm_escape_ws ? "\xE2\x96\x81" : " ";
  const size_t space_n = t->ugm_escape_ws ? 3 : 1;
  const bool prepend = !t->ugm_ws_suffix && t->add_space_prefix;
  const bool append = t->ugm_ws_suffix && t->add_space_prefix;
  bool prepended = false, in_word = false;
  size_t n = 0;
  for (size_t i = 0; i < len && !e->rc;) {
    const char *r;
    size_t rn, used, off = 0;
    if ((used = user_defined_match(t, text + i, len - i)) > 0) {
      r = text + i;
      rn = used;
    } else if ((used = charsmap_match(t, text + i, len - i, &off)) > 0 && off < t->n_repl &&
               memchr(t->repl + off, 0, t->n_repl - off) != NULL) {
      r = t->repl + off;
      rn = strlen(r);
    } else {
      int l = cll__tok_utf8_valid((const unsigned char *)text + i, len - i);
      if (l > 0) {
        r = text + i;
        rn = used = (size_t)l;
      } else {
        r = "\xEF\xBF\xBD";
        rn = 3;
        used = 1;
      }
    }
    for (size_t k = 0; k < rn && !e->rc; k++) {
      if (r[k] != ' ') {
        if (!in_word) {
          in_word = true;
          if ((prepend && !prepended) || t->ugm_merge_ws) {
            put(e, &e->buf, &n, &e->buf_cap, space, space_n);
            prepended = true;
          }
        }
        put(e, &e->buf, &n, &e->buf_cap, r + k, 1);
      } else {
        in_word = false;
        if (!t->ugm_merge_ws)
          put(e, &e->buf, &n, &e->buf_cap, space, space_n);
      }
    }
    i += used;
  }
  if (append)
    put(e, &e->buf, &n, &e->buf_cap, space, space_n);
  return n;
}

/* ---- Viterbi */

struct best {
  double score;
  size_t from; /* start offset of the last token */
  int32_t id;
};

void cll__tok_ugm_encode(struct enc *e, const char *text, size_t len) {
  const cll_tokenizer *t = e->t;
  size_t n = normalize(e, text, len);
  if (e->rc || n == 0)
    return;
  const char *s = e->buf;
  if (!cll__tok_reserve(&e->ugm, &e->ugm_cap, n + 1, sizeof(struct best))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  struct best *b = e->ugm;
  for (size_t i = 0; i <= n; i++)
    b[i] = (struct best){-DBL_MAX, 0, t->unk};
  b[0].score = 0;
  for (size_t i = 0; i < n;) {
    size_t cl = tok_utf8_len((unsigned char)s[i]);
    if (cl > n - i)
      cl = n - i;
    bool single = false;
    size_t max = n - i < t->max_token_len ? n - i : t->max_token_len;
    for (size_t l = 1; l <= max; l++) {
      int32_t id = cll__tok_lookup_token(t, s + i, l);
      if (id == NO_ID)
        continue;
      int type = t->types[id];
      if (type != CLL_TOKEN_NORMAL && type != CLL_TOKEN_USER_DEFINED && type != CLL_TOKEN_UNUSED)
        continue;
      if (l == cl)
        single = true;
      double sc = b[i].score + (type == CLL_TOKEN_USER_DEFINED ? 0.0 : (double)t->scores[id]);
      if (sc > b[i + l].score)
        b[i + l] = (struct best){sc, i, id};
    }
    if (!single) {
      double sc = b[i].score + t->ugm_unk_score;
      if (sc > b[i + cl].score)
        b[i + cl] = (struct best){sc, i, t->unk};
    }
    i += cl;
  }
  /* Backtrack (reversed into place afterwards). */
  size_t first = e->out->n;
  bool prev_unk = false;
  for (size_t i = n;;) {
    const struct best *x = &b[i];
    bool unk = x->id == t->unk;
    if (!(prev_unk && unk) && x->id != NO_ID)
      cll__tok_emit(e, x->id);
    if (x->from == 0 || e->rc)
      break;
    prev_unk = unk;
    i = x->from;
  }
  if (e->rc)
    return;
  for (size_t a = first, z = e->out->n - 1; a < z; a++, z--) {
    int32_t tmp = e->out->ids[a];
    e->out->ids[a] = e->out->ids[z];
    e->out->ids[z] = tmp;
  }
}
