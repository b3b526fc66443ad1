/* tokenizer_wpm.c — WordPiece ("bert" vocabularies: MiniLM, BGE, mxbai,
 * nomic-embed).
 *
 * Two steps, as llama.cpp's WPM tokenizer does them:
 *  1. BertNormalizer + BertPreTokenizer: code point by code point, white
 *     space ends a word, control characters (and U+FFFD from invalid UTF-8)
 *     vanish, with strip_accents each character is replaced by the first
 *     code point of its canonical decomposition and combining marks vanish,
 *     with lowercase it is lower-cased (simple mapping); punctuation, ASCII
 *     symbols and CJK ideographs are words of their own.
 *  2. Each word, written "\u2581word" (the GGUF stores word-initial pieces
 *     with that prefix and continuation pieces bare), becomes the longest
 *     vocabulary matches from left to right; a word with any position that
 *     no token matches becomes the single [UNK].
 * Character properties come from ICU (u_charType, u_tolower, the NFD
 * normalizer), so they follow the Unicode version of the system's ICU. */
#include "text/tokenizer_internal.h"
#include "cllama/utf8.h"

#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/utf16.h>

#include <string.h>

/* The White_Space set (the one llama.cpp's \s and is_whitespace mean). */
static bool is_ws(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

static bool is_cjk(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
         (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
         (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* First code point of c's canonical decomposition (c when it has none). */
static uint32_t nfd_first(const UNormalizer2 *nfd, uint32_t c) {
  if (c < 0xC0 || nfd == NULL)
    return c;
  UChar src[2], dst[8];
  int32_t n = 0;
  UBool err = 0;
  U16_APPEND(src, n, 2, (UChar32)c, err);
  if (err)
    return c;
  UErrorCode ec = U_ZERO_ERROR;
  int32_t m = unorm2_normalize(nfd, src, n, dst, 8, &ec);
  if (U_FAILURE(ec) || m <= 0)
    return c;
  UChar32 first;
  int32_t i = 0;
  U16_NEXT(dst, i, m, first);
  return (uint32_t)first;
}

static uint32_t decode_cp(const char *s, size_t n, size_t *len) {
  const unsigned char *u = (const unsigned char *)s;
  size_t l = tok_utf8_len(u[0]);
  if (l > n)
    l = n;
  *len = l;
  switch (l) {
  case 1:
    return u[0];
  case 2:
    return (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
  case 3:
    return (uint32_t)(u[0] & 0x0F) << 12 | (uint32_t)(u[1] & 0x3F) << 6 | (u[2] & 0x3F);
  default:
    return (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3F) << 12 |
           (uint32_t)(u[2] & 0x3F) << 6 | (u[3] & 0x3F);
  }
}

/* Longest-match pieces of the word w[0..n) (which starts with U+2581). */
static void wpm_word(struct enc *e, const char *w, size_t n) {
  const cll_tokenizer *t = e->t;
  size_t n0 = e->out->n;
  for (size_t i = 0; i < n && !e->rc;) {
    size_t j = i + t->max_token_len < n ? i + t->max_token_len : n;
    int32_t id = NO_ID;
    for (; j > i; j--)
      if ((id = cll__tok_lookup_token(t, w + i, j - i)) != NO_ID)
        break;
    if (id == NO_ID) {
      e->out->n = n0; /* the whole word is unknown */
      break;
    }
    cll__tok_emit(e, id);
    i = j;
  }
  if (e->out->n == n0 && t->unk != NO_ID)
    cll__tok_emit(e, t->unk);
}

void cll__tok_wpm_encode(struct enc *e, const char *text, size_t len) {
  const cll_tokenizer *t = e->t;
  text = cll__tok_sanitize(e, text, &len);
  if (text == NULL || len == 0)
    return;
  UErrorCode ec = U_ZERO_ERROR;
  const UNormalizer2 *nfd = t->wpm_strip_accents ? unorm2_getNFDInstance(&ec) : NULL;
  if (U_FAILURE(ec))
    nfd = NULL;
  /* The current word, "\u2581" + at most 4 bytes per input byte. */
  if (!cll__tok_reserve((void **)&e->buf, &e->buf_cap, 3 + 4 * len, 1)) {
    e->rc = CLL_ENOMEM;
    return;
  }
  char *w = e->buf;
  memcpy(w, "\xE2\x96\x81", 3);
  size_t wn = 3;
  for (size_t i = 0; i < len && !e->rc;) {
    size_t l;
    uint32_t c = decode_cp(text + i, len - i, &l);
    i += l;
    if (t->wpm_strip_accents)
      c = nfd_first(nfd, c);
    if (is_ws(c)) {
      if (wn > 3)
        wpm_word(e, w, wn);
      wn = 3;
      continue;
    }
    int8_t cat = u_charType((UChar32)c);
    if (c == 0 || c == 0xFFFD || cat == U_CONTROL_CHAR || cat == U_FORMAT_CHAR ||
        cat == U_SURROGATE || cat == U_PRIVATE_USE_CHAR || cat == U_UNASSIGNED)
      continue;
    if (t->wpm_strip_accents &&
        (cat == U_NON_SPACING_MARK || cat == U_ENCLOSING_MARK || cat == U_COMBINING_SPACING_MARK))
      continue;
    if (t->wpm_lowercase)
      c = (uint32_t)u_tolower((UChar32)c);
    bool punct = cat == U_CONNECTOR_PUNCTUATION || cat == U_DASH_PUNCTUATION ||
                 cat == U_START_PUNCTUATION || cat == U_END_PUNCTUATION ||
                 cat == U_INITIAL_PUNCTUATION || cat == U_FINAL_PUNCTUATION ||
                 cat == U_OTHER_PUNCTUATION;
    bool sym = c < 0x7F && (cat == U_MATH_SYMBOL || cat == U_CURRENCY_SYMBOL ||
                            cat == U_MODIFIER_SYMBOL || cat == U_OTHER_SYMBOL);
    if (punct || sym || is_cjk(c)) {
      if (wn > 3)
        wpm_word(e, w, wn);
      wn = 3 + cll_utf8_encode(c, w + 3);
      wpm_word(e, w, wn);
      wn = 3;
      continue;
    }
    wn += cll_utf8_encode(c, w + wn);
  }
  if (wn > 3 && !e->rc)
    wpm_word(e, w, wn);
}
