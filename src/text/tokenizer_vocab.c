/* tokenizer_vocab.c — the vocabulary of a cll_tokenizer: every string
 * interned in one pool with an open-addressing hash table (string -> id;
 * strings that appear only in BPE merges are interned after the vocabulary
 * with ids >= n_vocab, so a BPE symbol is always named by one integer), BPE
 * merges as a second table keyed by (left id, right id) giving (rank, result
 * id), the special tokens, and the decoded piece of every token computed
 * once at load time, so decoding is a table lookup. */
#include "text/tokenizer_internal.h"
#include "cllama/util.h"
#include "cllama/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ hashing */

static uint64_t hash_bytes(const char *p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    h = (h ^ v) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  memcpy(&v, p, n);
  h ^= v;
  /* murmur3's finaliser: every input bit reaches the low bits used as index */
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

static uint64_t hash_u64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

int32_t cll__tok_lookup(const cll_tokenizer *t, const char *s, size_t n) {
  uint32_t i = (uint32_t)hash_bytes(s, n) & t->slot_mask;
  for (;;) {
    uint32_t v = t->slots[i];
    if (v == 0)
      return NO_ID;
    int32_t id = (int32_t)(v - 1);
    if (t->str_len[id] == n && memcmp(tok_str(t, id), s, n) == 0)
      return id;
    i = (i + 1) & t->slot_mask;
  }
}

/* Vocabulary lookup only (merge-only strings are not tokens). */
int32_t cll__tok_lookup_token(const cll_tokenizer *t, const char *s, size_t n) {
  int32_t id = cll__tok_lookup(t, s, n);
  return id < t->n_vocab ? id : NO_ID;
}

static int grow_slots(cll_tokenizer *t, uint32_t n_needed) {
  uint32_t cap = 1024;
  while (cap < n_needed * 2u)
    cap <<= 1;
  if (t->slots != NULL && cap <= t->slot_mask + 1)
    return 0;
  uint32_t *slots = calloc(cap, sizeof(*slots));
  if (slots == NULL)
    return CLL_ENOMEM;
  for (int32_t id = 0; id < t->n_strs; id++) {
    uint32_t i = (uint32_t)hash_bytes(tok_str(t, id), t->str_len[id]) & (cap - 1);
    while (slots[i] != 0)
      i = (i + 1) & (cap - 1);
    slots[i] = (uint32_t)id + 1;
  }
  free(t->slots);
  t->slots = slots;
  t->slot_mask = cap - 1;
  return 0;
}

/* Appends a string to the pool (no check for duplicates) and indexes it
 * unless an equal string is already indexed (then the first one keeps the
 * name, as llama.cpp keeps the first id of a duplicated token). */
static int add_str(cll_tokenizer *t, const char *s, size_t n, int32_t *id_out) {
  if (t->n_strs == t->cap_strs) {
    int32_t cap = t->cap_strs ? t->cap_strs * 2 : 1024;
    uint64_t *off = realloc(t->str_off, (size_t)cap * sizeof(*off));
    if (off == NULL)
      return CLL_ENOMEM;
    t->str_off = off;
    uint32_t *len = realloc(t->str_len, (size_t)cap * sizeof(*len));
    if (len == NULL)
      return CLL_ENOMEM;
    t->str_len = len;
    t->cap_strs = cap;
  }
  if (t->pool_len + n > t->pool_cap) {
    size_t cap = t->pool_cap ? t->pool_cap : 65536;
    while (cap < t->pool_len + n)
      cap *= 2;
    char *p = realloc(t->pool, cap);
    if (p == NULL)
      return CLL_ENOMEM;
    t->pool = p;
    t->pool_cap = cap;
  }
  if ((uint32_t)t->n_strs + 1 > (t->slot_mask + 1) / 2) {
    int rc = grow_slots(t, (uint32_t)t->n_strs + 1);
    if (rc)
      return rc;
  }
  int32_t id = t->n_strs++;
  memcpy(t->pool + t->pool_len, s, n);
  t->str_off[id] = t->pool_len;
  t->str_len[id] = (uint32_t)n;
  t->pool_len += n;
  uint32_t i = (uint32_t)hash_bytes(s, n) & t->slot_mask;
  for (;;) {
    uint32_t v = t->slots[i];
    if (v == 0) {
      t->slots[i] = (uint32_t)id + 1;
      break;
    }
    int32_t other = (int32_t)(v - 1);
    if (t->str_len[other] == n && memcmp(tok_str(t, other), s, n) == 0)
      break; /* duplicate: the earlier id keeps the name */
    i = (i + 1) & t->slot_mask;
  }
  if (id_out)
    *id_out = id;
  return 0;
}

/* Id of s, interning it as a merge-only string when it is new. */
static int intern(cll_tokenizer *t, const char *s, size_t n, int32_t *id_out) {
  int32_t id = cll__tok_lookup(t, s, n);
  if (id != NO_ID) {
    *id_out = id;
    return 0;
  }
  return add_str(t, s, n, id_out);
}

bool cll__tok_merge_find(const cll_tokenizer *t, int32_t l, int32_t r, int32_t *rank,
                         int32_t *res) {
  uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
  uint64_t i = hash_u64(key) & t->mmask;
  for (;;) {
    uint64_t k = t->mkeys[i];
    if (k == UINT64_MAX)
      return false;
    if (k == key) {
      *rank = t->mrank[i];
      *res = t->mres[i];
      return true;
    }
    i = (i + 1) & t->mmask;
  }
}

/* ================================================================ UTF-8 */

/* Length of the valid UTF-8 character at p (n bytes available), 0 if the
 * bytes there are not a valid character (strict: no overlongs, surrogates
 * or code points above U+10FFFF), or -1 if they are a valid but incomplete
 * prefix of one. */
int cll__tok_utf8_valid(const unsigned char *p, size_t n) {
  unsigned c = p[0];
  if (c < 0x80)
    return 1;
  int len;
  unsigned lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0)
      lo = 0xA0;
    else if (c == 0xED)
      hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0)
      lo = 0x90;
    else if (c == 0xF4)
      hi = 0x8F;
  } else {
    return 0;
  }
  for (int i = 1; i < len; i++) {
    if ((size_t)i >= n)
      return -1;
    unsigned b = p[i];
    if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF))
      return 0;
  }
  return len;
}

/* GPT-2's byte -> code point table: printable Latin-1 bytes stand for
 * themselves, the other 68 take the code points from U+0100 up, in order. */
uint32_t cll__tok_byte_to_cp(int b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
    return (uint32_t)b;
  int n = 0;
  for (int x = 0; x < b; x++)
    if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
      n++;
  return 256u + (uint32_t)n;
}

/* ================================================================ loading */

/* Reads a special-token id. Like llama.cpp, a value that is absent, negative
 * or out of range (stories260K stores 4294967295) keeps the default. */
static void get_id(const cll_gguf *g, const char *key, int32_t n_vocab, int32_t *id) {
  uint64_t v;
  if (cll_gguf_get_u64(g, key, &v) == 0 && v < (uint64_t)n_vocab)
    *id = (int32_t)v;
}

static int read_vocab(cll_tokenizer *t, const cll_gguf *g, cll_err *err) {
  enum cll_gguf_vtype et;
  uint64_t n;
  if (cll_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n) != 0 || et != CLL_GGUF_STRING)
    return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.tokens missing or not a string array");
  if (n == 0 || n > (uint64_t)INT32_MAX / 2)
    return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.tokens: bad count %llu",
                       (unsigned long long)n);
  t->n_vocab = (int32_t)n;
  t->scores = calloc(n, sizeof(float));
  t->types = malloc(n);
  t->flags = calloc(n, 1);
  if (t->scores == NULL || t->types == NULL || t->flags == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  memset(t->types, CLL_TOKEN_NORMAL, n);
  int rc = grow_slots(t, (uint32_t)n + 1024);
  if (rc)
    return cll_err_set(err, rc, "out of memory");
  for (uint64_t i = 0; i < n; i++) {
    cll_gguf_str s;
    if (cll_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s) != 0)
      return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.tokens[%llu] unreadable",
                         (unsigned long long)i);
    if (s.len > UINT32_MAX / 2)
      return cll_err_set(err, CLL_EFORMAT, "token %llu too long", (unsigned long long)i);
    char tmp[32];
    const char *p = s.ptr;
    size_t len = (size_t)s.len;
    if (len == 0) { /* llama.cpp names empty tokens so they stay distinct */
      len = (size_t)snprintf(tmp, sizeof(tmp), "[EMPTY_%llu]", (unsigned long long)i);
      p = tmp;
    }
    if ((rc = add_str(t, p, len, NULL)) != 0)
      return cll_err_set(err, rc, "out of memory");
  }

  const void *data;
  uint64_t m;
  if (cll_gguf_get_arr_data(g, "tokenizer.ggml.scores", &data, &m, &et) == 0) {
    if (m < n || (et != CLL_GGUF_F32 && et != CLL_GGUF_I32))
      return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.scores: wrong type or count");
    for (uint64_t i = 0; i < n; i++) {
      if (et == CLL_GGUF_F32) {
        memcpy(&t->scores[i], (const char *)data + 4 * i, 4);
      } else {
        int32_t v;
        memcpy(&v, (const char *)data + 4 * i, 4);
        t->scores[i] = (float)v;
      }
    }
  }
  if (cll_gguf_get_arr_data(g, "tokenizer.ggml.token_type", &data, &m, &et) == 0) {
    if (m < n || (et != CLL_GGUF_I32 && et != CLL_GGUF_U32))
      return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.token_type: wrong type or count");
    for (uint64_t i = 0; i < n; i++) {
      int32_t v;
      memcpy(&v, (const char *)data + 4 * i, 4);
      t->types[i] = (uint8_t)(v >= 1 && v <= 6 ? v : CLL_TOKEN_UNDEFINED);
    }
  }
  return 0;
}

/* Splits "left right" at the first space after the first byte (a merge part
 * is never empty) and records (left id, right id) -> (rank, result id). */
static int read_merges(cll_tokenizer *t, const cll_gguf *g, cll_err *err) {
  enum cll_gguf_vtype et;
  uint64_t n;
  if (cll_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n) != 0 || et != CLL_GGUF_STRING)
    return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.merges missing or not a string array");
  if (n > (uint64_t)INT32_MAX / 4)
    return cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.merges: bad count");
  uint64_t cap = 1024;
  while (cap < n * 2)
    cap <<= 1;
  t->mmask = cap - 1;
  t->mkeys = malloc(cap * sizeof(*t->mkeys));
  t->mrank = malloc(cap * sizeof(*t->mrank));
  t->mres = malloc(cap * sizeof(*t->mres));
  if (t->mkeys == NULL || t->mrank == NULL || t->mres == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  memset(t->mkeys, 0xFF, cap * sizeof(*t->mkeys));
  char *buf = NULL;
  size_t buf_cap = 0;
  int rc = 0;
  for (uint64_t i = 0; i < n; i++) {
    cll_gguf_str s;
    if (cll_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s) != 0) {
      rc = cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.merges[%llu] unreadable",
                       (unsigned long long)i);
      break;
    }
    const char *sp = s.len > 1 ? memchr(s.ptr + 1, ' ', (size_t)s.len - 1) : NULL;
    if (sp == NULL)
      continue; /* llama.cpp records an unusable ("", "") pair */
    size_t nl = (size_t)(sp - s.ptr), nr = (size_t)s.len - nl - 1;
    int32_t l, r, res;
    if ((rc = intern(t, s.ptr, nl, &l)) != 0 || (rc = intern(t, sp + 1, nr, &r)) != 0)
      break;
    if (nl + nr > buf_cap) {
      buf_cap = (nl + nr) * 2;
      char *nb = realloc(buf, buf_cap);
      if (nb == NULL) {
        rc = CLL_ENOMEM;
        break;
      }
      buf = nb;
    }
    memcpy(buf, s.ptr, nl);
    memcpy(buf + nl, sp + 1, nr);
    if ((rc = intern(t, buf, nl + nr, &res)) != 0)
      break;
    uint64_t key = (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
    uint64_t j = hash_u64(key) & t->mmask;
    while (t->mkeys[j] != UINT64_MAX && t->mkeys[j] != key)
      j = (j + 1) & t->mmask;
    if (t->mkeys[j] == key)
      continue; /* a repeated pair keeps its first (best) rank */
    t->mkeys[j] = key;
    t->mrank[j] = (int32_t)i;
    t->mres[j] = res;
  }
  free(buf);
  if (rc && err && err->code != rc)
    cll_err_set(err, rc, "out of memory");
  return rc;
}

static int build_pieces(cll_tokenizer *t) {
  /* Reverse of the GPT-2 byte map: code point -> byte (+1, 0 = not mapped). */
  uint16_t cp_to_byte[324] = {0};
  for (int b = 0; b < 256; b++)
    cp_to_byte[cll__tok_byte_to_cp(b)] = (uint16_t)(b + 1);

  size_t total = 0;
  for (int32_t i = 0; i < t->n_vocab; i++)
    total += t->str_len[i];
  t->piece_pool = malloc(total + 1);
  t->piece_off = malloc((size_t)t->n_vocab * sizeof(*t->piece_off));
  t->piece_len = malloc((size_t)t->n_vocab * sizeof(*t->piece_len));
  if (t->piece_pool == NULL || t->piece_off == NULL || t->piece_len == NULL)
    return CLL_ENOMEM;
  size_t o = 0;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    const char *s = tok_str(t, id);
    size_t n = t->str_len[id];
    char *out = t->piece_pool + o;
    size_t k = 0;
    int type = t->types[id];
    if (type == CLL_TOKEN_CONTROL || type == CLL_TOKEN_UNKNOWN || type == CLL_TOKEN_USER_DEFINED) {
      memcpy(out, s, n);
      k = n;
    } else if (type == CLL_TOKEN_NORMAL && t->kind != CLL_TOK_BPE) {
      for (size_t i = 0; i < n; i++) {
        if (i + 2 < n && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 &&
            (unsigned char)s[i + 2] == 0x81) {
          out[k++] = ' ';
          i += 2;
        } else {
          out[k++] = s[i];
        }
      }
    } else if (type == CLL_TOKEN_NORMAL) {
      /* Byte-level BPE: each code point of the map stands for one byte;
       * anything else (never produced by the map) is copied as it is. */
      for (size_t i = 0; i < n;) {
        int l = cll__tok_utf8_valid((const unsigned char *)s + i, n - i);
        if (l <= 0) {
          out[k++] = s[i++];
          continue;
        }
        uint32_t cp;
        const unsigned char *u = (const unsigned char *)s + i;
        if (l == 1)
          cp = u[0];
        else if (l == 2)
          cp = (uint32_t)(u[0] & 0x1F) << 6 | (u[1] & 0x3F);
        else
          cp = 0x10000; /* 3/4-byte characters are never in the map */
        if (cp < 324 && cp_to_byte[cp] != 0) {
          out[k++] = (char)(cp_to_byte[cp] - 1);
        } else {
          memcpy(out + k, s + i, (size_t)l);
          k += (size_t)l;
        }
        i += (size_t)l;
      }
    } else if (type == CLL_TOKEN_BYTE && t->kind != CLL_TOK_BPE) {
      /* "<0xNN>" (the pool is not NUL-terminated: no sscanf) */
      int hi = n == 6 ? cll_hex_digit(s[3]) : -1, lo = n == 6 ? cll_hex_digit(s[4]) : -1;
      if (hi >= 0 && lo >= 0)
        out[k++] = (char)(hi << 4 | lo);
    }
    t->piece_off[id] = o;
    t->piece_len[id] = (uint32_t)k;
    if (k > t->max_piece)
      t->max_piece = k;
    o += k;
  }
  return 0;
}

static const char *const eog_texts[] = {"<|eot_id|>",    "<|im_end|>",      "<|end|>",
                                        "<|return|>",    "<|call|>",        "<end_of_turn>",
                                        "<|endoftext|>", "<|eom_id|>",      "<EOT>",
                                        "_<EOT>",        "<|end_of_text|>", "<end_of_utterance>"};

static int cmp_special(const void *a, const void *b, void *ctx) {
  const cll_tokenizer *t = ctx;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (t->str_len[x] != t->str_len[y])
    return t->str_len[x] > t->str_len[y] ? -1 : 1;
  return x < y ? -1 : x > y;
}

static void set_flag(cll_tokenizer *t, const char *text, unsigned flag, bool on) {
  int32_t id = cll__tok_lookup_token(t, text, strlen(text));
  if (id != NO_ID)
    t->flags[id] = (uint8_t)(on ? t->flags[id] | flag : t->flags[id] & ~flag);
}

static int finish_specials(cll_tokenizer *t, const cll_gguf *g) {
  /* End-of-generation tokens known by text; llama.cpp also treats them as
   * CONTROL whatever the file says. */
  int32_t eot_auto = NO_ID;
  for (size_t i = 0; i < CLL_ARRAY_LEN(eog_texts); i++) {
    int32_t id = cll__tok_lookup_token(t, eog_texts[i], strlen(eog_texts[i]));
    if (id == NO_ID)
      continue;
    t->flags[id] |= TF_EOG;
    t->types[id] = CLL_TOKEN_CONTROL;
    if (eot_auto == NO_ID && strcmp(eog_texts[i], "<|eom_id|>") != 0 &&
        strcmp(eog_texts[i], "<|return|>") != 0 && strcmp(eog_texts[i], "<|call|>") != 0)
      eot_auto = id;
  }
  if (t->eot == NO_ID)
    t->eot = eot_auto;
  /* gpt-oss (harmony): these always print, and <|end|> ends a message,
   * not the generation, when <|return|> and <|call|> exist. */
  static const char *const harmony[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(harmony); i++) {
    int32_t id = cll__tok_lookup_token(t, harmony[i], strlen(harmony[i]));
    if (id != NO_ID)
      t->types[id] = CLL_TOKEN_USER_DEFINED;
  }
  int32_t end_id = cll__tok_lookup_token(t, "<|end|>", 7);
  if (end_id != NO_ID && cll__tok_lookup_token(t, "<|return|>", 10) != NO_ID &&
      cll__tok_lookup_token(t, "<|call|>", 8) != NO_ID) {
    t->flags[end_id] &= (uint8_t)~TF_EOG;
    t->types[end_id] = CLL_TOKEN_USER_DEFINED;
    if (t->eot == end_id)
      t->eot = NO_ID;
  }
  int32_t ids[3] = {t->eos, t->eot, t->eom};
  for (int i = 0; i < 3; i++)
    if (ids[i] != NO_ID)
      t->flags[ids[i]] |= TF_EOG;

  size_t n = 0;
  for (int32_t id = 0; id < t->n_vocab; id++) {
    int type = t->types[id];
    if (type == CLL_TOKEN_CONTROL || type == CLL_TOKEN_UNKNOWN)
      t->flags[id] |= TF_HIDDEN;
    if (type == CLL_TOKEN_CONTROL || type == CLL_TOKEN_UNKNOWN || type == CLL_TOKEN_USER_DEFINED) {
      t->flags[id] |= TF_SPECIAL;
      n++;
    }
  }
  t->specials = malloc((n ? n : 1) * sizeof(*t->specials));
  if (t->specials == NULL)
    return CLL_ENOMEM;
  for (int32_t id = 0; id < t->n_vocab; id++)
    if (t->flags[id] & TF_SPECIAL)
      t->specials[t->n_specials++] = id;
  qsort_r(t->specials, t->n_specials, sizeof(*t->specials), cmp_special, t);

  /* White-space stripping around special tokens, which GGUF files do not
   * record: llama.cpp sets it by model name, and so do we. */
  char name[128] = "";
  cll_gguf_str s;
  if (cll_gguf_get_str(g, "general.name", &s) == 0) {
    size_t n_name = s.len < sizeof(name) - 1 ? (size_t)s.len : sizeof(name) - 1;
    for (size_t i = 0; i < n_name; i++)
      name[i] = (char)((s.ptr[i] >= 'A' && s.ptr[i] <= 'Z') ? s.ptr[i] + 32 : s.ptr[i]);
    name[n_name] = 0;
  }
  if (strstr(t->pre, "jina-v2-de") || strstr(t->pre, "jina-v2-es") ||
      strstr(t->pre, "jina-v2-code")) {
    set_flag(t, "<mask>", TF_LSTRIP, true);
  } else if (strstr(name, "phi-3") || strstr(name, "phi3")) {
    for (size_t i = 0; i < t->n_specials; i++)
      t->flags[t->specials[i]] |= TF_RSTRIP;
    set_flag(t, "</s>", TF_RSTRIP, true);
    set_flag(t, "<unk>", TF_RSTRIP, false);
    set_flag(t, "<s>", TF_RSTRIP, false);
    set_flag(t, "<|endoftext|>", TF_RSTRIP, false);
  }
  return 0;
}

static void build_byte_tables(cll_tokenizer *t) {
  for (int b = 0; b < 256; b++) {
    char tmp[8];
    if (t->kind == CLL_TOK_BPE) {
      int l = cll_utf8_encode(cll__tok_byte_to_cp(b), tmp);
      memcpy(t->bmap[b], tmp, (size_t)l);
      t->bmap_len[b] = (uint8_t)l;
      t->byte_sym[b] = cll__tok_lookup(t, tmp, (size_t)l);
      for (int k = 0; k < 2; k++)
        t->byte_fb[b][k] = k < l ? cll__tok_lookup_token(t, tmp + k, 1) : NO_ID;
    } else {
      snprintf(tmp, sizeof(tmp), "<0x%02X>", b);
      int32_t id = cll__tok_lookup_token(t, tmp, 6);
      if (id == NO_ID) {
        tmp[0] = (char)b;
        id = cll__tok_lookup_token(t, tmp, 1);
      }
      t->spm_byte[b] = id != NO_ID ? id : t->unk;
      if (b < 128) {
        tmp[0] = (char)b;
        t->spm_ascii[b] = cll__tok_lookup_token(t, tmp, 1);
      }
    }
  }
}

/* True when no token has U+2581 after a character other than U+2581. */
static bool spm_words_independent(const cll_tokenizer *t) {
  for (int32_t id = 0; id < t->n_vocab; id++) {
    const char *s = tok_str(t, id);
    size_t n = t->str_len[id], i = 0;
    while (i + 3 <= n && memcmp(s + i, "\xE2\x96\x81", 3) == 0)
      i += 3;
    if (i < n && memmem(s + i, n - i, "\xE2\x96\x81", 3) != NULL)
      return false;
  }
  return true;
}

int cll_tokenizer_new(const cll_gguf *g, cll_tokenizer **out, cll_err *err) {
  *out = NULL;
  cll_tokenizer *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return cll_err_set(err, CLL_ENOMEM, "out of memory");
  int rc;
  cll_gguf_str s;
  if (cll_gguf_get_str(g, "tokenizer.ggml.model", &s) != 0) {
    rc = cll_err_set(err, CLL_EFORMAT, "tokenizer.ggml.model missing");
    goto err;
  }
  if (s.len == 5 && memcmp(s.ptr, "llama", 5) == 0) {
    t->kind = CLL_TOK_SPM;
  } else if (s.len == 4 && memcmp(s.ptr, "gpt2", 4) == 0) {
    t->kind = CLL_TOK_BPE;
  } else if (s.len == 4 && memcmp(s.ptr, "bert", 4) == 0) {
    t->kind = CLL_TOK_WPM;
  } else if (s.len == 2 && memcmp(s.ptr, "t5", 2) == 0) {
    t->kind = CLL_TOK_UGM;
  } else {
    rc = cll_err_set(err, CLL_EUNSUPPORTED, "tokenizer model \"%.*s\" is not supported",
                     (int)(s.len > 64 ? 64 : s.len), s.ptr);
    goto err;
  }
  if (cll_gguf_get_str(g, "tokenizer.ggml.pre", &s) == 0) {
    if (s.len >= sizeof(t->pre)) {
      rc = cll_err_set(err, CLL_EUNSUPPORTED, "unknown pre-tokenizer \"%.*s\"", 64, s.ptr);
      goto err;
    }
    memcpy(t->pre, s.ptr, (size_t)s.len);
  }

  t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = t->sep = NO_ID;
  if (t->kind == CLL_TOK_WPM) {
    /* llama.cpp's defaults: BERT's [CLS]=101 [SEP]=102 [UNK]=100 [PAD]=0. */
    t->pre_type = PRE_NONE;
    t->clean_spaces = true;
    t->add_bos = t->add_sep = true;
    t->bos = 101;
    t->unk = 100;
    t->sep = 102;
    t->pad = 0;
  } else if (t->kind == CLL_TOK_UGM) {
    t->pre_type = PRE_NONE;
    t->add_eos = true;
    t->eos = 1;
    t->unk = 2;
    t->pad = 0;
  } else if (t->kind == CLL_TOK_SPM) {
    t->pre_type = PRE_NONE;
    t->add_space_prefix = true;
    t->add_bos = true;
    t->bos = 1;
    t->eos = 2;
    t->unk = 0;
  } else {
    t->clean_spaces = true;
    t->bos = 11;
    t->eos = 11;
    if (t->pre[0] == 0) {
      t->pre_type = PRE_DEFAULT;
    } else {
      if (!cll__tok_pre_find(t->pre, &t->pre_type)) {
        rc = cll_err_set(err, CLL_EUNSUPPORTED, "unknown pre-tokenizer \"%s\"", t->pre);
        goto err;
      }
      if (cll__tok_pre_keeps_spaces(t->pre))
        t->clean_spaces = false;
      if (t->pre_type == PRE_LLAMA3 && strcmp(t->pre, "dbrx") != 0 &&
          strcmp(t->pre, "smaug-bpe") != 0) {
        t->ignore_merges = true;
        t->add_bos = true;
      }
      if (t->pre_type == PRE_TEKKEN) {
        t->ignore_merges = true;
        t->add_bos = true;
      }
      if (t->pre_type == PRE_CHAMELEON)
        t->add_bos = true;
    }
  }
  bool b;
  if (cll_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b) == 0)
    t->add_space_prefix = b;

  if ((rc = read_vocab(t, g, err)) != 0)
    goto err;
  if (t->kind == CLL_TOK_BPE && (rc = read_merges(t, g, err)) != 0)
    goto err;
  if (t->pre_type == PRE_CHATGLM4)
    t->bos = NO_ID;
  for (int32_t *p = &t->bos; p <= &t->pad; p++)
    if (*p >= t->n_vocab)
      *p = NO_ID; /* a default that this vocabulary does not have */
  if (t->sep >= t->n_vocab)
    t->sep = NO_ID;
  get_id(g, "tokenizer.ggml.seperator_token_id", t->n_vocab, &t->sep); /* sic */
  get_id(g, "tokenizer.ggml.bos_token_id", t->n_vocab, &t->bos);
  get_id(g, "tokenizer.ggml.eos_token_id", t->n_vocab, &t->eos);
  get_id(g, "tokenizer.ggml.eot_token_id", t->n_vocab, &t->eot);
  get_id(g, "tokenizer.ggml.eom_token_id", t->n_vocab, &t->eom);
  get_id(g, "tokenizer.ggml.unknown_token_id", t->n_vocab, &t->unk);
  get_id(g, "tokenizer.ggml.padding_token_id", t->n_vocab, &t->pad);
  if (cll_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) == 0)
    t->add_bos = b;
  if (cll_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b) == 0)
    t->add_eos = b;
  if (t->bos == NO_ID)
    t->add_bos = false;
  if (t->eos == NO_ID)
    t->add_eos = false;
  if (cll_gguf_get_bool(g, "tokenizer.ggml.add_sep_token", &b) == 0)
    t->add_sep = b;
  if (t->sep == NO_ID)
    t->add_sep = false;
  /* BertNormalizer: strip_accents follows lowercase unless given. */
  t->wpm_lowercase = true;
  if (cll_gguf_get_bool(g, "tokenizer.ggml.normalizer.lowercase", &b) == 0)
    t->wpm_lowercase = b;
  t->wpm_strip_accents = t->wpm_lowercase;
  if (cll_gguf_get_bool(g, "tokenizer.ggml.normalizer.strip_accents", &b) == 0)
    t->wpm_strip_accents = b;

  if ((rc = finish_specials(t, g)) != 0 || (rc = build_pieces(t)) != 0) {
    cll_err_set(err, rc, "out of memory");
    goto err;
  }
  build_byte_tables(t);
  if (t->kind == CLL_TOK_SPM) {
    t->spm_split_words = spm_words_independent(t);
    t->spm_space = cll__tok_lookup_token(t, "\xE2\x96\x81", 3);
  }
  for (int32_t id = 0; id < t->n_vocab; id++)
    if (t->str_len[id] > t->max_token_len)
      t->max_token_len = t->str_len[id];
  if (t->kind == CLL_TOK_UGM && (rc = cll__tok_ugm_init(t, g, err)) != 0)
    goto err;
  if ((rc = cll__tok_compile_patterns(t, err)) != 0)
    goto err;
  *out = t;
  return 0;
err:
  cll_tokenizer_free(t);
  return rc;
}

void cll_tokenizer_free(cll_tokenizer *t) {
  if (t == NULL)
    return;
  for (int i = 0; i < t->n_re; i++)
    pcre2_code_free(t->re[i]);
  free(t->pool);
  free(t->str_off);
  free(t->str_len);
  free(t->slots);
  free(t->scores);
  free(t->types);
  free(t->flags);
  free(t->piece_pool);
  free(t->piece_off);
  free(t->piece_len);
  free(t->mkeys);
  free(t->mrank);
  free(t->mres);
  free(t->specials);
  free(t->charsmap);
  free(t);
}

/* ================================================================ facts */

enum cll_tok_kind cll_tok_kind(const cll_tokenizer *t) {
  return t->kind;
}
const char *cll_tok_pre(const cll_tokenizer *t) {
  return t->pre;
}
int32_t cll_tok_n_vocab(const cll_tokenizer *t) {
  return t->n_vocab;
}
int32_t cll_tok_bos(const cll_tokenizer *t) {
  return t->bos;
}
int32_t cll_tok_eos(const cll_tokenizer *t) {
  return t->eos;
}
int32_t cll_tok_eot(const cll_tokenizer *t) {
  return t->eot;
}
int32_t cll_tok_unk(const cll_tokenizer *t) {
  return t->unk;
}
int32_t cll_tok_pad(const cll_tokenizer *t) {
  return t->pad;
}
bool cll_tok_add_bos(const cll_tokenizer *t) {
  return t->add_bos;
}
int32_t cll_tok_sep(const cll_tokenizer *t) {
  return t->sep;
}
bool cll_tok_add_sep(const cll_tokenizer *t) {
  return t->add_sep;
}
bool cll_tok_add_eos(const cll_tokenizer *t) {
  return t->add_eos;
}

bool cll_tok_is_eog(const cll_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_vocab && (t->flags[id] & TF_EOG) != 0;
}

bool cll_tok_is_control(const cll_tokenizer *t, int32_t id) {
  return id >= 0 && id < t->n_vocab && (t->flags[id] & TF_HIDDEN) != 0;
}

enum cll_token_type cll_tok_type(const cll_tokenizer *t, int32_t id) {
  if (id < 0 || id >= t->n_vocab)
    return CLL_TOKEN_UNDEFINED;
  return (enum cll_token_type)t->types[id];
}

const char *cll_tok_text(const cll_tokenizer *t, int32_t id, size_t *len) {
  if (id < 0 || id >= t->n_vocab) {
    *len = 0;
    return "";
  }
  *len = t->str_len[id];
  return tok_str(t, id);
}

int32_t cll_tok_find(const cll_tokenizer *t, const char *text, size_t len) {
  return cll__tok_lookup_token(t, text, len);
}
