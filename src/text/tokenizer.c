/* tokenizer.c — SentencePiece-style and byte-level BPE tokenizers built from
 * GGUF metadata (see include/cllama/tokenizer.h for the contract).
 *
 * Design.
 * - Every vocabulary string is interned in one pool with an open-addressing
 *   hash table (string -> id). Strings that appear only in BPE merges (the
 *   product of a merge need not be a token) are interned after the vocabulary
 *   with ids >= n_vocab, so a BPE symbol is always named by one integer.
 * - BPE merges are a second hash table keyed by the pair (left id, right id)
 *   giving (rank, result id). Merging a word uses a linked list of symbols and
 *   a binary min-heap of candidate pairs ordered by (rank, position): each
 *   merge costs O(log n), never a rescan. A heap entry is stale when either
 *   side has changed since it was pushed; since symbols only grow, "the two
 *   lengths still add up to the entry's length" is the whole test.
 * - SentencePiece merging is the same machinery ordered by (score desc,
 *   position) and keyed by the concatenated text.
 * - Pre-tokenizers are lists of PCRE2 patterns (UTF mode, JIT), applied one
 *   after another: each pattern splits every piece left by the previous one
 *   into matches and the gaps between them, as llama.cpp does. Patterns are
 *   written with \s and \S; they are rewritten at load time to an explicit
 *   class of the Unicode White_Space characters, the set llama.cpp uses.
 * - Special tokens are split out of the text first (longest text first, as
 *   llama.cpp does); each remaining run of plain text is tokenized alone.
 * - Decoded pieces of every token are computed once at load time, so
 *   decoding is a table lookup and allocates nothing.
 * The behaviour (not the code) follows llama.cpp's llama-vocab.cpp and
 * unicode.cpp, which the shared test vectors come from. */
#include "cllama/tokenizer.h"
#include "cllama/util.h"
#include "cllama/utf8.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PATTERNS 8
#define NO_ID (-1)

enum pre_type {
  PRE_NONE, /* SPM: no pre-tokenizer */
  PRE_DEFAULT,
  PRE_LLAMA3,
  PRE_DEEPSEEK_LLM,
  PRE_DEEPSEEK3_LLM,
  PRE_DEEPSEEK_CODER,
  PRE_FALCON,
  PRE_STARCODER,
  PRE_GPT2,
  PRE_QWEN2,
  PRE_PORO,
  PRE_CHATGLM4,
  PRE_VIKING,
  PRE_TEKKEN,
  PRE_CHAMELEON,
  PRE_GPT4O,
  PRE_SUPERBPE,
  PRE_BAILINGMOE,
  PRE_SEED_CODER,
};

/* Token flags kept next to the type. */
#define TF_HIDDEN 1u  /* CONTROL/UNKNOWN: printed only with special=true */
#define TF_EOG 2u     /* ends generation */
#define TF_SPECIAL 4u /* matched by its text before pre-tokenization */
#define TF_LSTRIP 8u  /* swallows the white space before it (when matched in text) */
#define TF_RSTRIP 16u /* swallows the white space after it */

struct cll_tokenizer {
  enum cll_tok_kind kind;
  enum pre_type pre_type;
  char pre[64];

  int32_t n_vocab;
  /* Interned strings: ids [0, n_vocab) are tokens, [n_vocab, n_strs) are
   * merge-only strings. */
  int32_t n_strs, cap_strs;
  char *pool; /* (pool_len) bytes of every string, back to back */
  size_t pool_len, pool_cap;
  uint64_t *str_off; /* (cap_strs) offset in pool */
  uint32_t *str_len; /* (cap_strs) bytes */
  uint32_t *slots;   /* (slot_mask+1) string id + 1, 0 = empty */
  uint32_t slot_mask;

  float *scores;  /* (n_vocab) SPM merge priority */
  uint8_t *types; /* (n_vocab) enum cll_token_type */
  uint8_t *flags; /* (n_vocab) TF_* */

  /* Decoded pieces (special=true form). */
  char *piece_pool;
  uint64_t *piece_off; /* (n_vocab) */
  uint32_t *piece_len; /* (n_vocab) */
  size_t max_piece;

  /* BPE merges: key (left << 32 | right) -> rank, result id. */
  uint64_t *mkeys; /* (mmask+1), UINT64_MAX = empty */
  int32_t *mrank;
  int32_t *mres;
  uint64_t mmask;

  /* BPE byte level: byte b is the code point bmap_cp[b], written as
   * bmap[b][0..bmap_len[b]) in UTF-8. */
  char bmap[256][2];
  uint8_t bmap_len[256];
  int32_t byte_sym[256];   /* string id of bmap[b] (token or merge-only), or -1 */
  int32_t byte_fb[256][2]; /* final fallback ids for the bytes of bmap[b], or -1 */
  int32_t spm_byte[256];   /* SPM: id of <0xNN> (or the byte itself), else unk */
  int32_t spm_ascii[128];  /* SPM: id of the one-character token c, or -1 */
  int32_t spm_space;       /* SPM: id of U+2581, or -1 */

  int32_t *specials; /* token ids matched by text, longest text first */
  size_t n_specials;

  pcre2_code *re[MAX_PATTERNS];
  int n_re;

  bool add_bos, add_eos, add_space_prefix, ignore_merges, clean_spaces;
  bool spm_split_words; /* SPM: no token has U+2581 after another character */
  int32_t bos, eos, eot, eom, unk, pad;
};

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

static const char *str_ptr(const cll_tokenizer *t, int32_t id) {
  return t->pool + t->str_off[id];
}

static int32_t lookup(const cll_tokenizer *t, const char *s, size_t n) {
  uint32_t i = (uint32_t)hash_bytes(s, n) & t->slot_mask;
  for (;;) {
    uint32_t v = t->slots[i];
    if (v == 0)
      return NO_ID;
    int32_t id = (int32_t)(v - 1);
    if (t->str_len[id] == n && memcmp(str_ptr(t, id), s, n) == 0)
      return id;
    i = (i + 1) & t->slot_mask;
  }
}

/* Vocabulary lookup only (merge-only strings are not tokens). */
static int32_t lookup_token(const cll_tokenizer *t, const char *s, size_t n) {
  int32_t id = lookup(t, s, n);
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
    uint32_t i = (uint32_t)hash_bytes(str_ptr(t, id), t->str_len[id]) & (cap - 1);
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
    if (t->str_len[other] == n && memcmp(str_ptr(t, other), s, n) == 0)
      break; /* duplicate: the earlier id keeps the name */
    i = (i + 1) & t->slot_mask;
  }
  if (id_out)
    *id_out = id;
  return 0;
}

/* Id of s, interning it as a merge-only string when it is new. */
static int intern(cll_tokenizer *t, const char *s, size_t n, int32_t *id_out) {
  int32_t id = lookup(t, s, n);
  if (id != NO_ID) {
    *id_out = id;
    return 0;
  }
  return add_str(t, s, n, id_out);
}

static bool merge_find(const cll_tokenizer *t, int32_t l, int32_t r, int32_t *rank, int32_t *res) {
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

/* Length of the UTF-8 sequence a lead byte announces (1 for stray bytes),
 * the rule llama.cpp uses to cut text into symbols. */
static size_t utf8_len(unsigned char c) {
  static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lens[c >> 4];
}

/* Length of the valid UTF-8 character at p (n bytes available), 0 if the
 * bytes there are not a valid character (strict: no overlongs, surrogates
 * or code points above U+10FFFF), or -1 if they are a valid but incomplete
 * prefix of one. */
static int utf8_valid_at(const unsigned char *p, size_t n) {
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
static uint32_t byte_to_cp(int b) {
  if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
    return (uint32_t)b;
  int n = 0;
  for (int x = 0; x < b; x++)
    if (!((x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255)))
      n++;
  return 256u + (uint32_t)n;
}

/* ================================================================ pre-tokenizers */

/* Unicode White_Space, the set llama.cpp's \s means (PCRE2's \s lacks U+0085). */
#define WS_CLASS                                                                                   \
  "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"         \
  "\\x{202F}\\x{205F}\\x{3000}"

#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define PAT_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define PAT_LLAMA3                                                                                 \
  CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"        \
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define PAT_QWEN2                                                                                  \
  CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"             \
               "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define CJK_RUN "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+"

/* The deepseek-llm letter class (cased letters), transcribed from its
 * tokenizer.json as code points: several of its characters have canonical
 * singleton decompositions (U+1F7D, U+1FBE, U+1FD3, U+1FDB, U+2126, U+212A),
 * so the pattern must not pass through Unicode normalisation. */
static const char pat_deepseek_letters[] =
    "\\s?"
    "[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-"
    "\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}"
    "\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
    "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}\\x{13F8}-"
    "\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}"
    "\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}\\x{1F48}-"
    "\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-"
    "\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-"
    "\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"
    "\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}"
    "\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}\\x{2145}-"
    "\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}\\x{2CEB}-"
    "\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}"
    "\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-"
    "\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-"
    "\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-"
    "\\x{118DF}\\x{1E900}-\\x{1E943}]+";

struct pre_def {
  const char *name;
  enum pre_type type;
};

/* tokenizer.ggml.pre values and the pre-tokenizer each one means. */
static const struct pre_def pre_names[] = {
    {"default", PRE_DEFAULT},
    {"llama3", PRE_LLAMA3},
    {"llama-v3", PRE_LLAMA3},
    {"llama-bpe", PRE_LLAMA3},
    {"falcon3", PRE_LLAMA3},
    {"falcon-h1", PRE_LLAMA3},
    {"pixtral", PRE_LLAMA3},
    {"midm-2.0", PRE_LLAMA3},
    {"lfm2", PRE_LLAMA3},
    {"dbrx", PRE_LLAMA3},
    {"smaug-bpe", PRE_LLAMA3},
    {"deepseek-llm", PRE_DEEPSEEK_LLM},
    {"deepseek-v3", PRE_DEEPSEEK3_LLM},
    {"hunyuan-dense", PRE_DEEPSEEK3_LLM},
    {"deepseek-coder", PRE_DEEPSEEK_CODER},
    {"falcon", PRE_FALCON},
    {"starcoder", PRE_STARCODER},
    {"refact", PRE_STARCODER},
    {"command-r", PRE_STARCODER},
    {"smollm", PRE_STARCODER},
    {"codeshell", PRE_STARCODER},
    {"exaone", PRE_STARCODER},
    {"minerva-7b", PRE_STARCODER},
    {"gpt-2", PRE_GPT2},
    {"phi-2", PRE_GPT2},
    {"jina-es", PRE_GPT2},
    {"jina-de", PRE_GPT2},
    {"gigachat", PRE_GPT2},
    {"jina-v1-en", PRE_GPT2},
    {"jina-v2-es", PRE_GPT2},
    {"jina-v2-de", PRE_GPT2},
    {"jina-v2-code", PRE_GPT2},
    {"roberta-bpe", PRE_GPT2},
    {"a.x-4.0", PRE_GPT2},
    {"mellum", PRE_GPT2},
    {"exaone4", PRE_GPT2},
    {"mpt", PRE_GPT2},
    {"olmo", PRE_GPT2},
    {"jais", PRE_GPT2},
    {"trillion", PRE_GPT2},
    {"granite-docling", PRE_GPT2},
    {"qwen2", PRE_QWEN2},
    {"deepseek-r1-qwen", PRE_QWEN2},
    {"megrez", PRE_QWEN2},
    {"stablelm2", PRE_QWEN2},
    {"hunyuan", PRE_QWEN2},
    {"grok-2", PRE_QWEN2},
    {"poro-chat", PRE_PORO},
    {"bloom", PRE_PORO},
    {"gpt3-finnish", PRE_PORO},
    {"glm4", PRE_CHATGLM4},
    {"chatglm-bpe", PRE_CHATGLM4},
    {"viking", PRE_VIKING},
    {"tekken", PRE_TEKKEN},
    {"chameleon", PRE_CHAMELEON},
    {"gpt-4o", PRE_GPT4O},
    {"llama4", PRE_GPT4O},
    {"superbpe", PRE_SUPERBPE},
    {"bailingmoe", PRE_BAILINGMOE},
    {"bailingmoe2", PRE_BAILINGMOE},
    {"seed-coder", PRE_SEED_CODER},
};

/* Pre-tokenizers whose detokenization skips llama.cpp's space clean-up. */
static bool pre_keeps_spaces(const char *name) {
  static const char *const keep[] = {
      "deepseek-llm",     "deepseek-coder", "deepseek-v3", "command-r",  "qwen2",
      "deepseek-r1-qwen", "poro-chat",      "viking",      "tekken",     "smollm",
      "chameleon",        "gpt-4o",         "llama4",      "superbpe",   "trillion",
      "granite-docling",  "bailingmoe",     "bailingmoe2", "seed-coder", "hunyuan",
      "hunyuan-dense",    "grok-2"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(keep); i++)
    if (strcmp(name, keep[i]) == 0)
      return true;
  return false;
}

static int pre_patterns(enum pre_type type, const char **pats) {
  int n = 0;
  switch (type) {
  case PRE_NONE:
    break;
  case PRE_LLAMA3:
  case PRE_CHATGLM4:
    pats[n++] = PAT_LLAMA3;
    break;
  case PRE_QWEN2:
    pats[n++] = PAT_QWEN2;
    break;
  case PRE_DEEPSEEK_LLM:
    pats[n++] = "[\\r\\n]";
    pats[n++] = pat_deepseek_letters;
    pats[n++] = "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
                "\\x{3000}-\\x{3002}]+";
    pats[n++] = "\\s+$";
    pats[n++] = CJK_RUN;
    pats[n++] = "\\p{N}+";
    break;
  case PRE_DEEPSEEK3_LLM:
    pats[n++] = "\\p{N}{1,3}";
    pats[n++] = "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+";
    pats[n++] = "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\\r\\n\\p{L}\\p{P}\\p{S}]?"
                "[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    break;
  case PRE_DEEPSEEK_CODER:
    pats[n++] = "[\\r\\n]";
    pats[n++] = "\\s?\\p{L}+";
    pats[n++] = "\\s?\\p{P}+";
    pats[n++] = CJK_RUN;
    pats[n++] = "\\p{N}";
    break;
  case PRE_FALCON:
    pats[n++] = "[\\p{P}\\$\\+<=>\\^~\\|`]+";
    pats[n++] = PAT_GPT2;
    pats[n++] = "[0-9][0-9][0-9]";
    break;
  case PRE_STARCODER:
    pats[n++] = "\\p{N}";
    pats[n++] = PAT_GPT2;
    break;
  case PRE_GPT2:
    pats[n++] = PAT_GPT2;
    break;
  case PRE_PORO:
    pats[n++] = " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+";
    break;
  case PRE_VIKING:
    pats[n++] = " ?[^(\\s|.,!?\\x{2026}\\x{3002}\\x{FF0C}\\x{3001}\\x{0964}\\x{06D4}\\x{060C})]+";
    pats[n++] = "\\p{N}";
    break;
  case PRE_TEKKEN:
    pats[n++] =
        "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}"
        "\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}"
        "\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|"
        "\\s+";
    break;
  case PRE_CHAMELEON:
    pats[n++] = "<sentinel:[0-9]+>";
    pats[n++] = "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z";
    pats[n++] = "([\\t\\n]|    |  )";
    pats[n++] = "\\p{N}";
    pats[n++] = "[\\p{P}!-/:-@\\[-`{-~]";
    pats[n++] = PAT_GPT2;
    break;
  case PRE_GPT4O:
    pats[n++] = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}"
                "\\p{M}]+" CONTRACTIONS "?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}"
                "\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*" CONTRACTIONS "?|\\p{N}{1,3}| ?[^\\s\\p{L}"
                "\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    break;
  case PRE_SUPERBPE:
    pats[n++] = "\\p{N}+";
    pats[n++] = "(?=(\\d{3})+(?!\\d))";
    break;
  case PRE_BAILINGMOE:
    pats[n++] = "'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
                " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
    break;
  case PRE_SEED_CODER:
    pats[n++] = CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|"
                             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    break;
  case PRE_DEFAULT:
    pats[n++] = "[\\p{P}\\$\\+<=>\\^~\\|]+";
    pats[n++] = PAT_GPT2;
    pats[n++] = "\\p{N}+";
    pats[n++] = "[0-9][0-9][0-9]";
    break;
  }
  return n;
}

/* Rewrites \s and \S to the explicit White_Space class (inside or outside a
 * character class). Returns a new string or NULL. */
static char *rewrite_ws(const char *pat) {
  size_t n = strlen(pat);
  size_t cap = n * 1 + 1;
  for (size_t i = 0; i + 1 < n; i++)
    if (pat[i] == '\\' && (pat[i + 1] == 's' || pat[i + 1] == 'S'))
      cap += sizeof(WS_CLASS) + 4;
  char *out = malloc(cap);
  if (out == NULL)
    return NULL;
  size_t o = 0;
  bool in_class = false;
  for (size_t i = 0; i < n; i++) {
    char c = pat[i];
    if (c == '\\' && i + 1 < n) {
      char d = pat[i + 1];
      if (d == 's' || d == 'S') {
        if (in_class) {
          /* \S inside a class is not used by any pattern: keep PCRE2's. */
          if (d == 's') {
            memcpy(out + o, WS_CLASS, sizeof(WS_CLASS) - 1);
            o += sizeof(WS_CLASS) - 1;
          } else {
            out[o++] = c;
            out[o++] = d;
          }
        } else {
          out[o++] = '[';
          if (d == 'S')
            out[o++] = '^';
          memcpy(out + o, WS_CLASS, sizeof(WS_CLASS) - 1);
          o += sizeof(WS_CLASS) - 1;
          out[o++] = ']';
        }
        i++;
        continue;
      }
      out[o++] = c;
      out[o++] = d;
      i++;
      continue;
    }
    if (c == '[' && !in_class)
      in_class = true;
    else if (c == ']' && in_class)
      in_class = false;
    out[o++] = c;
  }
  out[o] = 0;
  return out;
}

static int compile_patterns(cll_tokenizer *t, cll_err *err) {
  const char *pats[MAX_PATTERNS];
  int n = pre_patterns(t->pre_type, pats);
  for (int i = 0; i < n; i++) {
    char *p = rewrite_ws(pats[i]);
    if (p == NULL)
      return cll_err_set(err, CLL_ENOMEM, "out of memory");
    int ecode;
    PCRE2_SIZE eoff;
    /* DOLLAR_ENDONLY: '$' means the end of the piece, as in ECMAScript. */
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)p, PCRE2_ZERO_TERMINATED,
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &ecode, &eoff, NULL);
    free(p);
    if (re == NULL) {
      char msg[128];
      pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof(msg));
      return cll_err_set(err, CLL_EUNSUPPORTED, "pre-tokenizer %s: pattern %d: %s at %zu", t->pre,
                         i, msg, (size_t)eoff);
    }
    /* JIT is an optimisation: without it (unsupported CPU) matching still works. */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    t->re[t->n_re++] = re;
  }
  return 0;
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
    cp_to_byte[byte_to_cp(b)] = (uint16_t)(b + 1);

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
    const char *s = str_ptr(t, id);
    size_t n = t->str_len[id];
    char *out = t->piece_pool + o;
    size_t k = 0;
    int type = t->types[id];
    if (type == CLL_TOKEN_CONTROL || type == CLL_TOKEN_UNKNOWN || type == CLL_TOKEN_USER_DEFINED) {
      memcpy(out, s, n);
      k = n;
    } else if (type == CLL_TOKEN_NORMAL && t->kind == CLL_TOK_SPM) {
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
        int l = utf8_valid_at((const unsigned char *)s + i, n - i);
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
    } else if (type == CLL_TOKEN_BYTE && t->kind == CLL_TOK_SPM) {
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
  int32_t id = lookup_token(t, text, strlen(text));
  if (id != NO_ID)
    t->flags[id] = (uint8_t)(on ? t->flags[id] | flag : t->flags[id] & ~flag);
}

static int finish_specials(cll_tokenizer *t, const cll_gguf *g) {
  /* End-of-generation tokens known by text; llama.cpp also treats them as
   * CONTROL whatever the file says. */
  int32_t eot_auto = NO_ID;
  for (size_t i = 0; i < CLL_ARRAY_LEN(eog_texts); i++) {
    int32_t id = lookup_token(t, eog_texts[i], strlen(eog_texts[i]));
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
    int32_t id = lookup_token(t, harmony[i], strlen(harmony[i]));
    if (id != NO_ID)
      t->types[id] = CLL_TOKEN_USER_DEFINED;
  }
  int32_t end_id = lookup_token(t, "<|end|>", 7);
  if (end_id != NO_ID && lookup_token(t, "<|return|>", 10) != NO_ID &&
      lookup_token(t, "<|call|>", 8) != NO_ID) {
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
      int l = cll_utf8_encode(byte_to_cp(b), tmp);
      memcpy(t->bmap[b], tmp, (size_t)l);
      t->bmap_len[b] = (uint8_t)l;
      t->byte_sym[b] = lookup(t, tmp, (size_t)l);
      for (int k = 0; k < 2; k++)
        t->byte_fb[b][k] = k < l ? lookup_token(t, tmp + k, 1) : NO_ID;
    } else {
      snprintf(tmp, sizeof(tmp), "<0x%02X>", b);
      int32_t id = lookup_token(t, tmp, 6);
      if (id == NO_ID) {
        tmp[0] = (char)b;
        id = lookup_token(t, tmp, 1);
      }
      t->spm_byte[b] = id != NO_ID ? id : t->unk;
      if (b < 128) {
        tmp[0] = (char)b;
        t->spm_ascii[b] = lookup_token(t, tmp, 1);
      }
    }
  }
}

/* True when no token has U+2581 after a character other than U+2581. */
static bool spm_words_independent(const cll_tokenizer *t) {
  for (int32_t id = 0; id < t->n_vocab; id++) {
    const char *s = str_ptr(t, id);
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

  t->bos = t->eos = t->eot = t->eom = t->unk = t->pad = NO_ID;
  if (t->kind == CLL_TOK_SPM) {
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
      bool found = false;
      for (size_t i = 0; i < CLL_ARRAY_LEN(pre_names); i++) {
        if (strcmp(t->pre, pre_names[i].name) == 0) {
          t->pre_type = pre_names[i].type;
          found = true;
          break;
        }
      }
      if (!found) {
        rc = cll_err_set(err, CLL_EUNSUPPORTED, "unknown pre-tokenizer \"%s\"", t->pre);
        goto err;
      }
      if (pre_keeps_spaces(t->pre))
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

  if ((rc = finish_specials(t, g)) != 0 || (rc = build_pieces(t)) != 0) {
    cll_err_set(err, rc, "out of memory");
    goto err;
  }
  build_byte_tables(t);
  if (t->kind == CLL_TOK_SPM) {
    t->spm_split_words = spm_words_independent(t);
    t->spm_space = lookup_token(t, "\xE2\x96\x81", 3);
  }
  if ((rc = compile_patterns(t, err)) != 0)
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
  free(t);
}

/* ================================================================ encoding */

struct sym {
  int32_t id;     /* string id of the symbol's text, or -1 */
  uint32_t start; /* byte offset in the word */
  uint32_t n;     /* bytes; 0 once merged into its left neighbour */
  int32_t prev, next;
};

struct bigram {
  uint64_t key; /* (priority << 32 | left): smaller pops first */
  int32_t left, right;
  uint32_t size; /* bytes of the merged text when pushed */
  int32_t res;   /* id of the merged text */
};

struct frag {
  size_t off, len;
  int32_t id; /* token, or -1 for text */
  bool parse; /* text from a segment that recognises CONTROL tokens */
};

/* Scratch of one encode call (grown as needed, freed at the end). */
struct enc {
  const cll_tokenizer *t;
  cll_tok_buf *out;
  struct sym *syms;
  size_t syms_cap;
  struct bigram *heap;
  size_t heap_n, heap_cap;
  char *buf; /* escaped SPM text / mapped BPE word / sanitised text */
  size_t buf_cap;
  char *clean;
  size_t clean_cap;
  size_t *cuts, *cuts2; /* pre-tokenizer piece boundaries (start, len) pairs */
  size_t cuts_cap, cuts2_cap;
  pcre2_match_data *md;
  int rc;
};

static bool reserve(void **p, size_t *cap, size_t need, size_t elem) {
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

static void emit(struct enc *e, int32_t id) {
  if (e->rc)
    return;
  cll_tok_buf *b = e->out;
  if (b->n == b->cap && !reserve((void **)&b->ids, &b->cap, b->n + 1, sizeof(int32_t))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  b->ids[b->n++] = id;
}

static void heap_push(struct enc *e, struct bigram bg) {
  if (!reserve((void **)&e->heap, &e->heap_cap, e->heap_n + 1, sizeof(*e->heap))) {
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
typedef void (*try_pair_fn)(struct enc *e, const char *w, int32_t l, int32_t r);

static void merge_loop(struct enc *e, const char *w, size_t first, size_t n, try_pair_fn try_pair) {
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
  int32_t id = lookup_token(e->t, w + a->start, a->n + b->n);
  if (id == NO_ID)
    return;
  struct bigram bg = {(uint64_t)score_key_desc(e->t->scores[id]) << 32 | (uint32_t)l, l, r,
                      a->n + b->n, id};
  heap_push(e, bg);
}

static void spm_encode(struct enc *e, const char *text, size_t len, bool prefix_space) {
  const cll_tokenizer *t = e->t;
  /* Escape: optional leading space, then ' ' -> U+2581 (3 bytes). */
  size_t need = len * 3 + 3;
  if (!reserve((void **)&e->buf, &e->buf_cap, need, 1)) {
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
  if (!reserve((void **)&e->syms, &e->syms_cap, n, sizeof(*e->syms))) {
    e->rc = CLL_ENOMEM;
    return;
  }
  size_t ns = 0;
  for (size_t off = 0; off < n;) {
    size_t l = utf8_len((unsigned char)w[off]);
    if (l > n - off)
      l = n - off;
    struct sym *s = &e->syms[ns];
    unsigned char c0 = (unsigned char)w[off];
    if (l == 1 && c0 < 0x80)
      s->id = t->spm_ascii[c0];
    else if (l == 3 && c0 == 0xE2 && memcmp(w + off, "\xE2\x96\x81", 3) == 0)
      s->id = t->spm_space;
    else
      s->id = lookup_token(t, w + off, l);
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
    merge_loop(e, w, first, i - first, spm_try_pair);
    for (int32_t k = (int32_t)first; k != -1 && !e->rc; k = e->syms[k].next) {
      const struct sym *s = &e->syms[k];
      if (s->id != NO_ID) {
        emit(e, s->id);
      } else {
        for (uint32_t b = 0; b < s->n; b++) {
          int32_t id = t->spm_byte[(unsigned char)w[s->start + b]];
          if (id != NO_ID)
            emit(e, id);
        }
      }
    }
    first = i;
  }
}

/* ---- byte-level BPE */

static void bpe_try_pair(struct enc *e, const char *w, int32_t l, int32_t r) {
  (void)w;
  if (l < 0 || r < 0)
    return;
  const struct sym *a = &e->syms[l], *b = &e->syms[r];
  if (a->id < 0 || b->id < 0)
    return;
  int32_t rank, res;
  if (!merge_find(e->t, a->id, b->id, &rank, &res))
    return;
  struct bigram bg = {(uint64_t)(uint32_t)rank << 32 | (uint32_t)l, l, r, a->n + b->n, res};
  heap_push(e, bg);
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
    if (!reserve((void **)&e->buf, &e->buf_cap, 2 * n, 1)) {
      e->rc = CLL_ENOMEM;
      return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned char b = (unsigned char)w[i];
      memcpy(e->buf + m, t->bmap[b], t->bmap_len[b]);
      m += t->bmap_len[b];
    }
    int32_t id = lookup_token(t, e->buf, m);
    if (id != NO_ID) {
      emit(e, id);
      return;
    }
  }
  if (!reserve((void **)&e->syms, &e->syms_cap, n, sizeof(*e->syms))) {
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
  merge_loop(e, w, 0, n, bpe_try_pair);
  for (int32_t i = 0; i != -1 && !e->rc; i = e->syms[i].next) {
    const struct sym *s = &e->syms[i];
    if (s->id >= 0 && s->id < t->n_vocab) {
      emit(e, s->id);
      continue;
    }
    /* Not a token: llama.cpp looks up each byte of its mapped text. */
    for (uint32_t k = 0; k < s->n; k++) {
      unsigned char b = (unsigned char)w[s->start + k];
      for (int j = 0; j < 2; j++)
        if (t->byte_fb[b][j] != NO_ID)
          emit(e, t->byte_fb[b][j]);
    }
  }
}

/* Makes text valid UTF-8 the way llama.cpp reads it: each byte that does not
 * start a valid character becomes U+FFFD. Returns text itself when valid. */
static const char *sanitize(struct enc *e, const char *text, size_t *len) {
  size_t n = *len, i = 0;
  while (i < n) {
    if ((unsigned char)text[i] < 0x80) {
      i++;
      continue;
    }
    int l = utf8_valid_at((const unsigned char *)text + i, n - i);
    if (l <= 0)
      break;
    i += (size_t)l;
  }
  if (i == n)
    return text;
  if (!reserve((void **)&e->clean, &e->clean_cap, 3 * n, 1)) {
    e->rc = CLL_ENOMEM;
    return NULL;
  }
  memcpy(e->clean, text, i);
  size_t o = i;
  while (i < n) {
    int l =
        (unsigned char)text[i] < 0x80 ? 1 : utf8_valid_at((const unsigned char *)text + i, n - i);
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

static bool push_cut(struct enc *e, size_t **cuts, size_t *cap, size_t *n, size_t a, size_t l) {
  if (!reserve((void **)cuts, cap, *n + 2, sizeof(size_t))) {
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

static void bpe_encode(struct enc *e, const char *text, size_t len) {
  const cll_tokenizer *t = e->t;
  text = sanitize(e, text, &len);
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
          pos = ms + utf8_len((unsigned char)piece[ms]);
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

/* ---- special-token partition */

struct frags {
  struct frag *v;
  size_t n, cap;
};

static bool frag_push(struct frags *f, struct frag x) {
  if (!reserve((void **)&f->v, &f->cap, f->n + 1, sizeof(*f->v)))
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
    const char *stext = str_ptr(t, id);
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
  if (add_special && t->add_bos)
    emit(&e, t->bos);
  bool prev_special = true; /* SPM: a space goes before the first text */
  for (size_t i = 0; i < fr.n && !e.rc; i++) {
    const struct frag *f = &fr.v[i];
    if (f->id != NO_ID) {
      emit(&e, f->id);
      prev_special = true;
      continue;
    }
    if (t->kind == CLL_TOK_SPM)
      spm_encode(&e, text + f->off, f->len, t->add_space_prefix && prev_special);
    else
      bpe_encode(&e, text + f->off, f->len);
    prev_special = false;
  }
  if (add_special && t->add_eos)
    emit(&e, t->eos);

  pcre2_match_data_free(e.md);
  free(fr.v);
  free(e.syms);
  free(e.heap);
  free(e.buf);
  free(e.clean);
  free(e.cuts);
  free(e.cuts2);
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
    int l = utf8_valid_at(tmp, d->n_held + 1);
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
    int l = utf8_valid_at((const unsigned char *)p + i, n - i);
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
  return str_ptr(t, id);
}

int32_t cll_tok_find(const cll_tokenizer *t, const char *text, size_t len) {
  return lookup_token(t, text, len);
}
