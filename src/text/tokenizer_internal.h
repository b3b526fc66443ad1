/* tokenizer_internal.h — private to src/text/tokenizer*.c: the layout of a
 * cll_tokenizer and the pieces the tokenizer's files share.
 *
 * The files, in data-flow order:
 *   tokenizer_vocab.c  string interning, reading the GGUF vocabulary, special
 *                      tokens, decoded pieces, vocabulary facts
 *   tokenizer_pre.c    pre-tokenizer regexes (PCRE2) by tokenizer.ggml.pre
 *   tokenizer.c        the encode driver: special-token partition, scratch,
 *                      the shared merge heap, cll_tokenize*
 *   tokenizer_spm.c    SentencePiece (score-ordered merges)
 *   tokenizer_bpe.c    byte-level BPE (rank-ordered merges)
 *   tokenizer_wpm.c    WordPiece (BERT: normalise, split, longest match)
 *   tokenizer_ugm.c    SentencePiece Unigram (T5/XLM-R: charsmap, Viterbi)
 *   tokenizer_detok.c  whole-sequence and incremental detokenization
 * The behaviour (not the code) follows llama.cpp's llama-vocab.cpp and
 * unicode.cpp, which the test vectors come from. */
#ifndef CLLAMA_TEXT_TOKENIZER_INTERNAL_H
#define CLLAMA_TEXT_TOKENIZER_INTERNAL_H

#include "cllama/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
  /* WordPiece (tokenizer_wpm.c): BertNormalizer options, [SEP], and the
   * longest token in bytes (bounds the longest-match search). */
  bool wpm_lowercase, wpm_strip_accents, add_sep;
  int32_t sep;
  size_t max_token_len;
  /* Unigram (tokenizer_ugm.c): SentencePiece normalizer settings and the
   * precompiled character map (a copy of tokenizer.ggml.precompiled_charsmap:
   * a 4-byte length, that many bytes of XOR-compressed double array, then
   * NUL-terminated replacement strings). */
  bool ugm_escape_ws, ugm_ws_suffix, ugm_merge_ws;
  uint8_t *charsmap;
  const uint32_t *xcda; /* (n_xcda) entries, in charsmap */
  size_t n_xcda;
  const char *repl; /* (n_repl) replacement strings, in charsmap */
  size_t n_repl;
  double ugm_unk_score; /* lowest NORMAL score minus 10 */
  bool has_user_defined;
  bool spm_split_words;                 /* SPM: no token has U+2581 after another character */
  int32_t bos, eos, eot, eom, unk, pad; /* -1 when absent */
};

/* ---- vocabulary (tokenizer_vocab.c) */

static inline const char *tok_str(const cll_tokenizer *t, int32_t id) {
  return t->pool + t->str_off[id];
}
/* Id of the interned string s[0..n) (tokens and merge-only strings), or -1. */
int32_t cll__tok_lookup(const cll_tokenizer *t, const char *s, size_t n);
/* Vocabulary lookup only (merge-only strings are not tokens). */
int32_t cll__tok_lookup_token(const cll_tokenizer *t, const char *s, size_t n);
bool cll__tok_merge_find(const cll_tokenizer *t, int32_t l, int32_t r, int32_t *rank, int32_t *res);

/* Length of the UTF-8 sequence a lead byte announces (1 for stray bytes),
 * the rule llama.cpp uses to cut text into symbols. */
static inline size_t tok_utf8_len(unsigned char c) {
  static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lens[c >> 4];
}
/* Length of the valid UTF-8 character at p (n bytes available), 0 if the
 * bytes there are not a valid character, -1 if a valid but incomplete
 * prefix of one. */
int cll__tok_utf8_valid(const unsigned char *p, size_t n);
/* GPT-2's byte -> code point map. */
uint32_t cll__tok_byte_to_cp(int b);

/* ---- pre-tokenizers (tokenizer_pre.c) */

bool cll__tok_pre_find(const char *name, enum pre_type *type);
bool cll__tok_pre_keeps_spaces(const char *name);
int cll__tok_compile_patterns(cll_tokenizer *t, cll_err *err);

/* ---- encoding (tokenizer.c and one file per algorithm) */

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
  void *ugm; /* (ugm_cap) UGM lattice scratch (tokenizer_ugm.c) */
  size_t ugm_cap;
  int rc;
};

bool cll__tok_reserve(void **p, size_t *cap, size_t need, size_t elem);
/* Appends id to the output (sets e->rc on failure; no-op once it is set). */
void cll__tok_emit(struct enc *e, int32_t id);
/* Merges the symbol list of one word (syms[first..first+n) linked in order).
 * The priority of a pair comes from try_pair, which each algorithm defines
 * (pushing candidates with cll__tok_heap_push). */
typedef void (*try_pair_fn)(struct enc *e, const char *w, int32_t l, int32_t r);
void cll__tok_heap_push(struct enc *e, struct bigram bg);
void cll__tok_merge_loop(struct enc *e, const char *w, size_t first, size_t n,
                         try_pair_fn try_pair);
/* Text made valid UTF-8 the way llama.cpp reads it (bad bytes -> U+FFFD);
 * text itself when already valid, else e->clean. */
const char *cll__tok_sanitize(struct enc *e, const char *text, size_t *len);

/* Each encodes one run of plain text (no special tokens in it). */
void cll__tok_spm_encode(struct enc *e, const char *text, size_t len, bool prefix_space);
void cll__tok_bpe_encode(struct enc *e, const char *text, size_t len);
void cll__tok_wpm_encode(struct enc *e, const char *text, size_t len);
void cll__tok_ugm_encode(struct enc *e, const char *text, size_t len);
/* tokenizer_ugm.c: reads the Unigram settings and charsmap at load. */
int cll__tok_ugm_init(cll_tokenizer *t, const cll_gguf *g, cll_err *err);

#endif
