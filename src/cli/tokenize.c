/* tokenize.c — `cllama tokenize FILE.gguf [--special] [--add-special]` and
 * `cllama detokenize FILE.gguf [--special]`: the tokenizer of any GGUF file
 * (vocab-only files too) on stdin/stdout. */
#include "cllama/cli.h"
#include "cllama/gguf.h"
#include "cllama/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_all(FILE *f, size_t *len) {
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  if (buf == NULL)
    return NULL;
  for (;;) {
    if (n == cap) {
      char *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        return NULL;
      }
      buf = nb;
      cap *= 2;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0)
      break;
  }
  *len = n;
  return buf;
}

static int open_tokenizer(const char *path, cll_gguf **g, cll_tokenizer **t) {
  cll_err err = {0};
  if (cll_gguf_open(path, g, &err) != 0 || cll_tokenizer_new(*g, t, &err) != 0) {
    fprintf(stderr, "cllama: %s: %s\n", path, err.msg[0] ? err.msg : cll_strerror(err.code));
    return 1;
  }
  return 0;
}

int cll_cli_tokenize(int argc, char **argv) {
  const char *path = NULL;
  unsigned flags = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--special") == 0) {
      flags |= CLL_TOK_PARSE_SPECIAL;
    } else if (strcmp(argv[i], "--add-special") == 0) {
      flags |= CLL_TOK_ADD_SPECIAL;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf("Usage: cllama tokenize FILE.gguf [--special] [--add-special]\n"
             "Reads UTF-8 text on stdin, prints its token ids on one line.\n"
             "  --special      recognise special-token text (<|eot_id|>, <s>, ...)\n"
             "  --add-special  add BOS/EOS as the vocabulary asks\n");
      return 0;
    } else if (path == NULL) {
      path = argv[i];
    } else {
      fprintf(stderr, "cllama tokenize: unexpected argument \"%s\"\n", argv[i]);
      return 2;
    }
  }
  if (path == NULL) {
    fprintf(stderr, "Usage: cllama tokenize FILE.gguf [--special] [--add-special]\n");
    return 2;
  }
  cll_gguf *g = NULL;
  cll_tokenizer *t = NULL;
  int status = 1;
  size_t len = 0;
  char *text = NULL;
  cll_tok_buf ids = {0};
  if (open_tokenizer(path, &g, &t) != 0)
    goto out;
  text = read_all(stdin, &len);
  if (text == NULL || cll_tokenize_append(t, text, len, flags, &ids) != 0) {
    fprintf(stderr, "cllama tokenize: out of memory\n");
    goto out;
  }
  for (size_t i = 0; i < ids.n; i++)
    printf(i ? " %d" : "%d", ids.ids[i]);
  printf("\n");
  status = 0;
out:
  cll_tok_buf_free(&ids);
  free(text);
  cll_tokenizer_free(t);
  cll_gguf_close(g);
  return status;
}

int cll_cli_detokenize(int argc, char **argv) {
  const char *path = NULL;
  unsigned flags = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--special") == 0) {
      flags |= CLL_DETOK_UNPARSE_SPECIAL;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      printf(
          "Usage: cllama detokenize FILE.gguf [--special]\n"
          "Reads token ids (separated by spaces, commas or newlines) on stdin, prints the text.\n"
          "  --special  print control tokens as their text\n");
      return 0;
    } else if (path == NULL) {
      path = argv[i];
    } else {
      fprintf(stderr, "cllama detokenize: unexpected argument \"%s\"\n", argv[i]);
      return 2;
    }
  }
  if (path == NULL) {
    fprintf(stderr, "Usage: cllama detokenize FILE.gguf [--special]\n");
    return 2;
  }
  cll_gguf *g = NULL;
  cll_tokenizer *t = NULL;
  int status = 1;
  size_t len = 0;
  char *text = NULL, *out = NULL;
  cll_tok_buf ids = {0};
  if (open_tokenizer(path, &g, &t) != 0)
    goto out;
  text = read_all(stdin, &len);
  if (text == NULL)
    goto oom;
  for (size_t i = 0; i < len;) {
    char c = text[i];
    if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t' || c == '[' || c == ']') {
      i++;
      continue;
    }
    char *end;
    char num[24];
    size_t k = 0;
    while (i < len && k + 1 < sizeof(num) && (text[i] == '-' || (text[i] >= '0' && text[i] <= '9')))
      num[k++] = text[i++];
    num[k] = 0;
    long v = strtol(num, &end, 10);
    if (k == 0 || *end != 0 || v < 0 || v >= cll_tok_n_vocab(t)) {
      fprintf(stderr, "cllama detokenize: bad token id near byte %zu\n", i);
      goto out;
    }
    if (ids.n == ids.cap) {
      size_t cap = ids.cap ? ids.cap * 2 : 256;
      int32_t *p = realloc(ids.ids, cap * sizeof(int32_t));
      if (p == NULL)
        goto oom;
      ids.ids = p;
      ids.cap = cap;
    }
    ids.ids[ids.n++] = (int32_t)v;
  }
  size_t need = 0;
  cll_detokenize(t, ids.ids, ids.n, flags, NULL, 0, &need);
  out = malloc(need + 1);
  if (out == NULL)
    goto oom;
  cll_detokenize(t, ids.ids, ids.n, flags, out, need, &need);
  fwrite(out, 1, need, stdout);
  status = 0;
  goto out;
oom:
  fprintf(stderr, "cllama detokenize: out of memory\n");
out:
  free(out);
  cll_tok_buf_free(&ids);
  free(text);
  cll_tokenizer_free(t);
  cll_gguf_close(g);
  return status;
}
