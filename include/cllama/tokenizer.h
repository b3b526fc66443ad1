/* tokenizer.h — text <-> token ids, built from GGUF metadata alone.
 *
 * Owns: cll_tokenizer, the vocabulary of one model (token texts, scores,
 * types, BPE merge ranks, the pre-tokenizer's compiled split patterns) and
 * cll_detok, the incremental detokenizer of one output stream.
 *
 * Four kinds of vocabulary (tokenizer.ggml.model):
 *   "llama"  SentencePiece-style: highest-score pair merging over UTF-8
 *            characters, ' ' written as U+2581, a space prefixed to each run
 *            of text that starts the input or follows a special token, byte
 *            fallback to <0xNN> tokens.
 *   "gpt2"   byte-level BPE: the text is split by the pre-tokenizer named in
 *            tokenizer.ggml.pre (PCRE2 patterns), each piece's bytes are
 *            mapped to printable code points and merged by merge rank.
 *   "bert"   WordPiece: the text is lower-cased and stripped of accents as
 *            tokenizer.ggml.normalizer.* say (both by default), split at
 *            white space, punctuation and CJK characters, and each word
 *            becomes the longest vocabulary matches from its start
 *            ("\u2581word" then continuation pieces), or [UNK]; with
 *            add_special the ids are [CLS] ... [SEP].
 *   "t5"     SentencePiece Unigram (T5, XLM-RoBERTa, bge-m3): text is
 *            normalised by the vocabulary's precompiled character map,
 *            spaces become U+2581, and the tokenization of highest total
 *            score is found by Viterbi over the vocabulary.
 * The results match llama.cpp (commit c392e509) on the shared test vectors.
 *
 * Special tokens. CONTROL tokens (BOS, <|start_header_id|>, ...) are made
 * from their text only when the caller asks (CLL_TOK_PARSE_SPECIAL, or a
 * segment with parse_special): template text is parsed that way, message
 * content supplied by a user is not, so a user cannot forge a role marker.
 * USER_DEFINED tokens are always matched, as llama.cpp does.
 *
 * Threads: cll_tokenizer_new reads the vocabulary (CPU work proportional to
 * its size: call it where a model loads, not on the loop thread). After that
 * the tokenizer is immutable and any number of threads may use it at once.
 * Encoding allocates scratch memory per call and is O(n log n) in the text
 * length: tokenizing a long prompt belongs off the loop thread. Decoding a
 * token (cll_tok_piece, cll_detok_push) allocates nothing and is O(piece).
 * A cll_detok belongs to one sequence and one thread at a time.
 *
 * Ownership: pointers returned by cll_tok_piece/cll_tok_text are borrowed
 * from the tokenizer and live until cll_tokenizer_free. The tokenizer copies
 * what it needs: the cll_gguf may be closed once cll_tokenizer_new returns.
 * cll_tokenizer_free(NULL) and cll_detok_free(NULL) are no-ops. */
#ifndef CLLAMA_TOKENIZER_H
#define CLLAMA_TOKENIZER_H

#include "cllama/common.h"
#include "cllama/gguf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cll_tokenizer cll_tokenizer;

enum cll_tok_kind { CLL_TOK_SPM = 1, CLL_TOK_BPE = 2, CLL_TOK_WPM = 3, CLL_TOK_UGM = 4 };

/* Token types, numbered as in tokenizer.ggml.token_type. */
enum cll_token_type {
  CLL_TOKEN_UNDEFINED = 0,
  CLL_TOKEN_NORMAL = 1,
  CLL_TOKEN_UNKNOWN = 2,
  CLL_TOKEN_CONTROL = 3,
  CLL_TOKEN_USER_DEFINED = 4,
  CLL_TOKEN_UNUSED = 5,
  CLL_TOKEN_BYTE = 6,
};

/* Builds the tokenizer of a GGUF file (works on vocab-only files). *out is
 * new. Fails with CLL_EFORMAT (missing/malformed tokenizer keys) or
 * CLL_EUNSUPPORTED (another tokenizer model or an unknown pre-tokenizer),
 * filling err. */
int cll_tokenizer_new(const cll_gguf *g, cll_tokenizer **out, cll_err *err);
void cll_tokenizer_free(cll_tokenizer *t);

/* ---- encoding */

/* Flags for cll_tokenize. */
#define CLL_TOK_ADD_SPECIAL 1u   /* BOS/EOS where the vocabulary asks for them */
#define CLL_TOK_PARSE_SPECIAL 2u /* CONTROL-token text becomes that token */

/* A growable id array owned by the caller: start it zeroed, free it with
 * cll_tok_buf_free. Encoding appends to it (realloc). */
typedef struct cll_tok_buf {
  int32_t *ids;
  size_t n;   /* ids in use */
  size_t cap; /* ids allocated */
} cll_tok_buf;
void cll_tok_buf_free(cll_tok_buf *b);

/* Tokenizes text[0..len) and appends the ids to out. Returns 0, or
 * CLL_ENOMEM (out keeps what it had). Invalid UTF-8 is accepted: SPM vocabs
 * fall back to byte tokens, BPE vocabs see U+FFFD as llama.cpp does. */
int cll_tokenize_append(const cll_tokenizer *t, const char *text, size_t len, unsigned flags,
                        cll_tok_buf *out);

/* The same into a fixed array: on success *n_out ids are in ids[0..cap).
 * When cap is too small returns CLL_ERANGE and *n_out is the count needed. */
int cll_tokenize(const cll_tokenizer *t, const char *text, size_t len, unsigned flags, int32_t *ids,
                 size_t cap, size_t *n_out);

/* One piece of a prompt with its own special-token policy. */
struct cll_tok_segment {
  const char *text;
  size_t len;
  bool parse_special; /* true for template text, false for user content */
};

/* Tokenizes the concatenation of segs as one text (adjacent plain text of
 * different segments is pre-tokenized and merged together, exactly as if it
 * were one string), recognising CONTROL tokens only inside segments with
 * parse_special and never across a segment boundary. add_special adds
 * BOS/EOS as the vocabulary asks. Appends to out. */
int cll_tokenize_segments(const cll_tokenizer *t, const struct cll_tok_segment *segs, size_t n_segs,
                          bool add_special, cll_tok_buf *out);

/* ---- decoding */

/* The bytes a token prints as (borrowed, not NUL-terminated, *len set).
 * special=false: CONTROL and UNKNOWN tokens print as "" (what a streaming
 * server shows); special=true: they print as their text. SPM pieces keep
 * their leading space (" He"); byte tokens print as their single byte. Ids
 * out of range print as "". */
const char *cll_tok_piece(const cll_tokenizer *t, int32_t id, bool special, size_t *len);
/* Largest piece length in bytes (for sizing buffers). */
size_t cll_tok_max_piece_len(const cll_tokenizer *t);

/* Flags for cll_detokenize. */
#define CLL_DETOK_REMOVE_SPECIAL 1u  /* drop a leading BOS / trailing EOS the vocab adds */
#define CLL_DETOK_UNPARSE_SPECIAL 2u /* print CONTROL tokens as their text */
#define CLL_DETOK_CLEAN_SPACES                                                                     \
  4u /* the vocabulary's clean-up of " ." " ," " 's"...                                            \
       (llama_detokenize does it for most BPE vocabs) */

/* Whole-sequence detokenization like llama_detokenize: concatenated pieces,
 * and for SPM vocabs the space of the first piece removed (so
 * decode(encode(s)) == s). Writes at most cap bytes (no NUL) and sets
 * *n_out to the full length; returns CLL_ERANGE when cap was too small. */
int cll_detokenize(const cll_tokenizer *t, const int32_t *ids, size_t n, unsigned flags, char *out,
                   size_t cap, size_t *n_out);

/* Incremental detokenizer for streaming one sequence: feeds tokens, returns
 * text that is always whole UTF-8 characters (an incomplete sequence at the
 * end is held back until the next token completes it; bytes that can never
 * form a character come out as U+FFFD). Pieces are concatenated as
 * llama.cpp's token_to_piece(special=false) prints them: the SPM leading
 * space is kept, CONTROL tokens print nothing (unless
 * CLL_DETOK_UNPARSE_SPECIAL). No allocation after cll_detok_new. */
typedef struct cll_detok cll_detok;
int cll_detok_new(const cll_tokenizer *t, unsigned flags, cll_detok **out);
void cll_detok_free(cll_detok *d);
void cll_detok_reset(cll_detok *d);
/* Feeds one token. Returns the text now ready (borrowed from d, valid until
 * the next call on d; may be empty) and sets *len. */
const char *cll_detok_push(cll_detok *d, int32_t id, size_t *len);
/* End of stream: returns whatever is held back (as U+FFFD). */
const char *cll_detok_flush(cll_detok *d, size_t *len);

/* ---- vocabulary facts */

enum cll_tok_kind cll_tok_kind(const cll_tokenizer *t);
/* tokenizer.ggml.pre as read ("" when absent). Borrowed. */
const char *cll_tok_pre(const cll_tokenizer *t);
int32_t cll_tok_n_vocab(const cll_tokenizer *t);
/* Special ids, -1 when the vocabulary has none. */
int32_t cll_tok_bos(const cll_tokenizer *t);
int32_t cll_tok_eos(const cll_tokenizer *t);
int32_t cll_tok_eot(const cll_tokenizer *t);
int32_t cll_tok_unk(const cll_tokenizer *t);
int32_t cll_tok_pad(const cll_tokenizer *t);
bool cll_tok_add_bos(const cll_tokenizer *t);
bool cll_tok_add_eos(const cll_tokenizer *t);
/* Separator ([SEP], </s>): the id (-1 when none) and whether the vocabulary
 * asks for it between the two texts of a pair (rerank: query, document). */
int32_t cll_tok_sep(const cll_tokenizer *t);
bool cll_tok_add_sep(const cll_tokenizer *t);
/* End of generation: EOS, EOT, EOM and the end-of-turn tokens known by text
 * (<|eot_id|>, <|im_end|>, <|endoftext|>, <end_of_turn>, ...). */
bool cll_tok_is_eog(const cll_tokenizer *t, int32_t id);
/* CONTROL (or UNKNOWN): a token that never prints in generated text. */
bool cll_tok_is_control(const cll_tokenizer *t, int32_t id);
enum cll_token_type cll_tok_type(const cll_tokenizer *t, int32_t id);
/* The raw vocabulary string (byte-mapped for BPE, U+2581 for SPM). */
const char *cll_tok_text(const cll_tokenizer *t, int32_t id, size_t *len);
/* Id of the vocabulary string text[0..len), or -1. */
int32_t cll_tok_find(const cll_tokenizer *t, const char *text, size_t len);

#endif
