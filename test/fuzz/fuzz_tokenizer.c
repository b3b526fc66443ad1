/* fuzz_tokenizer.c — encode/decode round trips on arbitrary bytes.
 *
 * The first input byte picks the vocabulary (SPM llama or byte-level BPE
 * gpt-2, from $CLLAMA_SHARED/testdata/tokenizer, default ../shared) and
 * whether special-token text is parsed; the rest is the text. Checks: every
 * id is in range; without special parsing decode(encode(s)) == s (SPM: when
 * s is valid UTF-8 without U+2581; BPE: when s is valid UTF-8); the streaming detokenizer
 * emits only whole UTF-8 characters and, for valid text, the same bytes.
 * With bit 2 of the first byte set, the rest is a GGUF vocabulary instead
 * (built with cll_gguf_open_memory): it must be refused cleanly or work.
 * Without the shared data the text modes do nothing. */
#include "cllama/gguf.h"
#include "cllama/tokenizer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cll_gguf *g_files[2];
static cll_tokenizer *g_toks[2];
static int g_init;

static void init(void) {
  g_init = 1;
  const char *d = getenv("CLLAMA_SHARED");
  if (d == NULL || *d == 0)
    d = "../shared";
  const char *names[2] = {"ggml-vocab-llama-spm.gguf", "ggml-vocab-gpt-2.gguf"};
  for (int i = 0; i < 2; i++) {
    char p[1024];
    snprintf(p, sizeof(p), "%s/testdata/tokenizer/%s", d, names[i]);
    cll_err err;
    if (cll_gguf_open(p, &g_files[i], &err) != 0)
      continue;
    if (cll_tokenizer_new(g_files[i], &g_toks[i], &err) != 0)
      g_toks[i] = NULL;
  }
}

static int valid_utf8(const uint8_t *s, size_t n) {
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    size_t l = c < 0x80                   ? 1
               : (c >= 0xC2 && c <= 0xDF) ? 2
               : (c >= 0xE0 && c <= 0xEF) ? 3
               : (c >= 0xF0 && c <= 0xF4) ? 4
                                          : 0;
    if (l == 0 || i + l > n)
      return 0;
    for (size_t k = 1; k < l; k++)
      if ((s[i + k] & 0xC0) != 0x80)
        return 0;
    if (l == 3 && ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F)))
      return 0;
    if (l == 4 && ((c == 0xF0 && s[i + 1] < 0x90) || (c == 0xF4 && s[i + 1] > 0x8F)))
      return 0;
    i += l;
  }
  return 1;
}

/* Mode 4: the rest of the input is a GGUF file; building a tokenizer from
 * it must fail cleanly or give one that encodes and decodes. */
static void fuzz_vocab(const uint8_t *data, size_t size) {
  cll_gguf *g;
  cll_err err;
  if (cll_gguf_open_memory(data, size, &g, &err) != 0)
    return;
  cll_tokenizer *t;
  if (cll_tokenizer_new(g, &t, &err) == 0) {
    static const char text[] = "Hello <s> world\xC3\xA9 \xF0\x9F\x99\x82 123 \xFF";
    cll_tok_buf ids = {0};
    if (cll_tokenize_append(t, text, sizeof(text) - 1, CLL_TOK_ADD_SPECIAL | CLL_TOK_PARSE_SPECIAL,
                            &ids) != 0)
      abort();
    char out[4096];
    size_t n;
    for (size_t i = 0; i < ids.n; i++)
      if (ids.ids[i] < 0 || ids.ids[i] >= cll_tok_n_vocab(t))
        abort();
    (void)cll_detokenize(t, ids.ids, ids.n, CLL_DETOK_UNPARSE_SPECIAL | CLL_DETOK_CLEAN_SPACES, out,
                         sizeof(out), &n);
    cll_tok_buf_free(&ids);
    cll_tokenizer_free(t);
  }
  cll_gguf_close(g);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!g_init)
    init();
  if (size < 1)
    return 0;
  if (data[0] & 4) {
    fuzz_vocab(data + 1, size - 1);
    return 0;
  }
  int which = data[0] & 1;
  int parse = (data[0] >> 1) & 1;
  const cll_tokenizer *t = g_toks[which];
  if (t == NULL)
    return 0;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  cll_tok_buf ids = {0};
  if (cll_tokenize_append(t, text, len, parse ? CLL_TOK_PARSE_SPECIAL : 0, &ids) != 0)
    abort();
  for (size_t i = 0; i < ids.n; i++)
    if (ids.ids[i] < 0 || ids.ids[i] >= cll_tok_n_vocab(t))
      abort();

  size_t need = 0;
  cll_detokenize(t, ids.ids, ids.n, 0, NULL, 0, &need);
  char *out = malloc(need + 1);
  if (cll_detokenize(t, ids.ids, ids.n, 0, out, need, &need) != 0)
    abort();
  int utf8 = valid_utf8((const uint8_t *)text, len);
  if (!parse) {
    int check = utf8 && (which == 1 || memmem(text, len, "\xE2\x96\x81", 3) == NULL);
    if (check && (need != len || memcmp(out, text, len) != 0))
      abort();
  }

  /* streaming: whole characters only; same bytes as the pieces when valid */
  cll_detok *d;
  if (cll_detok_new(t, 0, &d) != 0)
    abort();
  size_t cap = 3 * (need + 8) + 64, o = 0;
  char *stream = malloc(cap);
  for (size_t i = 0; i <= ids.n; i++) {
    size_t n;
    const char *p = i < ids.n ? cll_detok_push(d, ids.ids[i], &n) : cll_detok_flush(d, &n);
    if (!valid_utf8((const uint8_t *)p, n) || o + n > cap)
      abort();
    memcpy(stream + o, p, n);
    o += n;
  }
  if (valid_utf8((const uint8_t *)out, need)) {
    /* SPM detokenize drops the first leading space; the stream keeps it. */
    size_t off = (o == need + 1 && cll_tok_kind(t) == CLL_TOK_SPM && stream[0] == ' ') ? 1 : 0;
    if (o - off != need || memcmp(stream + off, out, need) != 0)
      abort();
  }
  cll_detok_free(d);
  free(stream);
  free(out);
  cll_tok_buf_free(&ids);
  return 0;
}
