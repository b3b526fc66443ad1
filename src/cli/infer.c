/* infer.c — `cllama infer MODEL.gguf --prompt-tokens 1,403,... -n N`: runs
 * the engine from the command line on token ids or on a raw text prompt
 * (--prompt: tokenized like llama.cpp, BOS added and special-token text
 * parsed; no chat template). A development and testing tool: prints the
 * generated token ids, their text and tokens/s; --dump-logits writes the
 * final prompt position's logits as raw little-endian float32 (the format
 * of ../shared/ref). */
#include "cllama/cli.h"
#include "cllama/engine.h"
#include "cllama/tokenizer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out) {
  fprintf(out,
          "Usage: cllama infer MODEL.gguf (--prompt-tokens ID,ID,... | --prompt TEXT) [options]\n"
          "  --prompt-tokens LIST  comma-separated token ids (include BOS yourself)\n"
          "  --prompt TEXT         text prompt (tokenized with BOS, special tokens parsed)\n"
          "  -n N                  tokens to generate (default 32)\n"
          "  --temp T              sampling temperature (default 0: greedy)\n"
          "  --seed S              RNG seed for sampling (default 1)\n"
          "  --dump-logits FILE    write the last prompt position's logits (f32 LE)\n"
          "  --kv f16|f32          KV cache type (default f16)\n"
          "  --threads N           compute threads (default: one per core)\n"
          "  --ctx N               KV cells (default: prompt + n)\n");
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_tokens(const char *s, int32_t **out, int *n) {
  int cap = 16, k = 0;
  int32_t *v = malloc((size_t)cap * sizeof(*v));
  while (v != NULL && *s) {
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (end == s || errno || x < 0 || x > INT32_MAX) {
      free(v);
      return -1;
    }
    if (k == cap) {
      int32_t *nv = realloc(v, (size_t)(cap *= 2) * sizeof(*v));
      if (nv == NULL) {
        free(v);
        return -1;
      }
      v = nv;
    }
    v[k++] = (int32_t)x;
    s = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end != '\0') {
      free(v);
      return -1;
    }
  }
  *out = v;
  *n = k;
  return v && k > 0 ? 0 : -1;
}

/* xorshift64*: the sampler's own deterministic RNG. */
static double rng_next(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (double)((*s * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

static int32_t sample(const float *logits, int64_t n, float temp, uint64_t *rng) {
  int32_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (logits[i] > logits[best])
      best = (int32_t)i;
  if (temp <= 0.0f)
    return best;
  double sum = 0.0, mx = logits[best];
  for (int64_t i = 0; i < n; i++)
    sum += exp((logits[i] - mx) / temp);
  double r = rng_next(rng) * sum, acc = 0.0;
  for (int64_t i = 0; i < n; i++) {
    acc += exp((logits[i] - mx) / temp);
    if (acc >= r)
      return (int32_t)i;
  }
  return best;
}

int cll_cli_infer(int argc, char **argv) {
  const char *model_path = NULL, *tokens_arg = NULL, *prompt_text = NULL, *dump = NULL;
  int n_predict = 32, n_threads = 0;
  long n_ctx = 0;
  float temp = 0.0f;
  uint64_t seed = 1;
  enum cll_kv_type kv = CLL_KV_F16;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    }
    if (a[0] != '-') {
      model_path = a;
      continue;
    }
    if (v == NULL) {
      fprintf(stderr, "cllama infer: %s needs a value\n", a);
      return 2;
    }
    i++;
    if (strcmp(a, "--prompt-tokens") == 0)
      tokens_arg = v;
    else if (strcmp(a, "--prompt") == 0)
      prompt_text = v;
    else if (strcmp(a, "-n") == 0)
      n_predict = atoi(v);
    else if (strcmp(a, "--temp") == 0)
      temp = strtof(v, NULL);
    else if (strcmp(a, "--seed") == 0)
      seed = strtoull(v, NULL, 10);
    else if (strcmp(a, "--dump-logits") == 0)
      dump = v;
    else if (strcmp(a, "--threads") == 0)
      n_threads = atoi(v);
    else if (strcmp(a, "--ctx") == 0)
      n_ctx = atol(v);
    else if (strcmp(a, "--kv") == 0 && (strcmp(v, "f16") == 0 || strcmp(v, "f32") == 0))
      kv = v[1] == '1' ? CLL_KV_F16 : CLL_KV_F32;
    else {
      fprintf(stderr, "cllama infer: unknown option %s %s\n", a, v);
      usage(stderr);
      return 2;
    }
  }
  if (model_path == NULL || (tokens_arg == NULL && prompt_text == NULL) || n_predict < 0) {
    usage(stderr);
    return 2;
  }
  int32_t *prompt = NULL;
  int n_prompt = 0;
  if (tokens_arg != NULL && parse_tokens(tokens_arg, &prompt, &n_prompt) != 0) {
    fprintf(stderr, "cllama infer: bad --prompt-tokens \"%s\"\n", tokens_arg);
    return 2;
  }
  int status = 1;
  cll_model *m = NULL;
  cll_ctx *c = NULL;
  cll_tokenizer *tok = NULL;
  cll_detok *detok = NULL;
  cll_err err = {0};
  double t0 = now_s();
  if (cll_model_load(model_path, &m, &err) != 0) {
    fprintf(stderr, "cllama infer: %s\n", err.msg);
    goto out;
  }
  double t_load = now_s() - t0;
  /* The vocabulary is optional for --prompt-tokens (ids print anyway). */
  int trc = cll_tokenizer_new(cll_model_gguf(m), &tok, &err);
  if (trc != 0 && prompt_text != NULL && tokens_arg == NULL) {
    fprintf(stderr, "cllama infer: %s\n", err.msg);
    goto out;
  }
  if (tokens_arg == NULL) {
    cll_tok_buf buf = {0};
    if (cll_tokenize_append(tok, prompt_text, strlen(prompt_text),
                            CLL_TOK_ADD_SPECIAL | CLL_TOK_PARSE_SPECIAL, &buf) != 0 ||
        buf.n == 0 || buf.n > INT32_MAX) {
      fprintf(stderr, "cllama infer: cannot tokenize the prompt\n");
      cll_tok_buf_free(&buf);
      goto out;
    }
    prompt = buf.ids; /* taken: freed with free() below */
    n_prompt = (int)buf.n;
    fprintf(stderr, "prompt tokens:");
    for (int i = 0; i < n_prompt; i++)
      fprintf(stderr, "%s%d", i ? "," : " ", prompt[i]);
    fprintf(stderr, "\n");
  }
  if (tok != NULL && cll_detok_new(tok, 0, &detok) != 0)
    detok = NULL;
  const struct cll_model_info *I = cll_model_info(m);
  struct cll_ctx_params p = cll_ctx_params_defaults();
  p.n_ctx = n_ctx > 0 ? n_ctx : n_prompt + n_predict + 1;
  p.n_batch_max = n_prompt < 512 ? n_prompt : 512;
  p.kv_type = kv;
  p.n_threads = n_threads;
  if (cll_ctx_new(m, &p, &c, &err) != 0) {
    fprintf(stderr, "cllama infer: %s\n", err.msg);
    goto out;
  }
  fprintf(stderr, "model: %s (%s, %" PRIu64 " params, %.1f MiB), loaded in %.3f s\n",
          I->name[0] ? I->name : model_path, I->arch, I->n_params,
          (double)I->weight_bytes / (1024.0 * 1024.0), t_load);
  /* Prompt, in chunks of n_batch_max. */
  double tp = now_s();
  int32_t *pos = malloc((size_t)n_prompt * sizeof(int32_t));
  int32_t *seq = calloc((size_t)n_prompt, sizeof(int32_t));
  if (pos == NULL || seq == NULL) {
    free(pos);
    free(seq);
    goto out;
  }
  for (int i = 0; i < n_prompt; i++)
    pos[i] = i;
  int rc = 0;
  for (int i = 0; i < n_prompt && rc == 0; i += p.n_batch_max) {
    int n = n_prompt - i < p.n_batch_max ? n_prompt - i : p.n_batch_max;
    struct cll_batch b = {n, prompt + i, pos + i, seq + i, NULL};
    rc = cll_forward(c, &b, &err);
  }
  free(pos);
  free(seq);
  if (rc != 0) {
    fprintf(stderr, "cllama infer: %s\n", err.msg);
    goto out;
  }
  tp = now_s() - tp;
  const float *logits = cll_ctx_logits(c, 0);
  if (dump != NULL) {
    FILE *f = fopen(dump, "wb");
    if (f == NULL || fwrite(logits, sizeof(float), (size_t)I->n_vocab, f) != (size_t)I->n_vocab ||
        fclose(f) != 0) {
      fprintf(stderr, "cllama infer: cannot write %s: %s\n", dump, strerror(errno));
      goto out;
    }
  }
  uint64_t rng = seed ? seed : 0x9E3779B97F4A7C15ull;
  double tg = now_s();
  int32_t *out_tok = malloc(((size_t)n_predict + 1) * sizeof(int32_t));
  if (out_tok == NULL)
    goto out;
  for (int i = 0; i < n_predict; i++) {
    int32_t t = sample(logits, I->n_vocab, temp, &rng);
    out_tok[i] = t;
    if (i == n_predict - 1)
      break;
    int32_t ps = n_prompt + i, sq = 0;
    struct cll_batch b = {1, &t, &ps, &sq, NULL};
    if (cll_forward(c, &b, &err) != 0) {
      fprintf(stderr, "cllama infer: %s\n", err.msg);
      free(out_tok);
      goto out;
    }
    logits = cll_ctx_logits(c, 0);
  }
  tg = now_s() - tg;
  for (int i = 0; i < n_predict; i++)
    printf("%s%d", i ? "," : "", out_tok[i]);
  printf("\n");
  if (detok != NULL) {
    size_t len;
    for (int i = 0; i < n_predict; i++) {
      const char *text = cll_detok_push(detok, out_tok[i], &len);
      fwrite(text, 1, len, stdout);
    }
    const char *rest = cll_detok_flush(detok, &len);
    fwrite(rest, 1, len, stdout);
    printf("\n");
  }
  free(out_tok);
  fprintf(stderr,
          "prompt: %d tokens in %.3f s (%.1f tok/s); generated: %d tokens in %.3f s "
          "(%.2f tok/s, %d decode steps)\n",
          n_prompt, tp, n_prompt / tp, n_predict, tg, n_predict > 1 ? (n_predict - 1) / tg : 0.0,
          n_predict > 0 ? n_predict - 1 : 0);
  status = 0;
out:
  cll_detok_free(detok);
  cll_tokenizer_free(tok);
  free(prompt);
  cll_ctx_free(c);
  cll_model_release(m);
  return status;
}
