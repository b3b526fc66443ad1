/* infer.c — `cllama infer MODEL.gguf --prompt-tokens 1,403,... -n N`: runs
 * the engine from the command line on token ids (a development and testing
 * tool: no server, no chat template). Prints the generated token ids, their
 * vocabulary pieces and tokens/s; --dump-logits writes the final prompt
 * position's logits as raw little-endian float32 (the format of
 * ../shared/ref). Text prompts (--prompt) arrive with the tokenizer. */
#include "cllama/cli.h"
#include "cllama/engine.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void usage(FILE *out) {
  fprintf(out,
          "Usage: cllama infer MODEL.gguf --prompt-tokens ID,ID,... [options]\n"
          "  --prompt-tokens LIST  comma-separated token ids (include BOS yourself)\n"
          "  --prompt TEXT         text prompt (needs the tokenizer: not available yet)\n"
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

/* Prints the vocabulary piece of a token: SPM's "▁" as a space and <0xNN>
 * byte tokens as the byte. A stand-in until the tokenizer's detokenizer. */
static void print_piece(const cll_gguf *g, int32_t tok) {
  cll_gguf_str s;
  if (cll_gguf_get_arr_str(g, "tokenizer.ggml.tokens", (uint64_t)tok, &s) != 0)
    return;
  unsigned b;
  if (s.len == 6 && sscanf(s.ptr, "<0x%2X>", &b) == 1) {
    putchar((int)b);
    return;
  }
  for (uint64_t i = 0; i < s.len; i++) {
    if (i + 2 < s.len && memcmp(s.ptr + i, "\xe2\x96\x81", 3) == 0) {
      putchar(' ');
      i += 2;
    } else {
      putchar(s.ptr[i]);
    }
  }
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
  if (tokens_arg == NULL) {
    /* HOOK: tokenize prompt_text with the model's vocabulary here once the
     * tokenizer (src/text) lands; until then only token ids are accepted. */
    fprintf(stderr, "cllama infer: --prompt needs the tokenizer, which is not built yet; "
                    "use --prompt-tokens\n");
    return 2;
  }
  int32_t *prompt;
  int n_prompt;
  if (parse_tokens(tokens_arg, &prompt, &n_prompt) != 0) {
    fprintf(stderr, "cllama infer: bad --prompt-tokens \"%s\"\n", tokens_arg);
    return 2;
  }
  int status = 1;
  cll_model *m = NULL;
  cll_ctx *c = NULL;
  float *dump_buf = NULL;
  cll_err err = {0};
  double t0 = now_s();
  if (cll_model_load(model_path, &m, &err) != 0) {
    fprintf(stderr, "cllama infer: %s\n", err.msg);
    goto out;
  }
  double t_load = now_s() - t0;
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
  for (int i = 0; i < n_predict; i++)
    print_piece(cll_model_gguf(m), out_tok[i]);
  printf("\n");
  free(out_tok);
  fprintf(stderr, "prompt: %d tokens in %.3f s (%.1f tok/s); generated: %d tokens in %.3f s "
                  "(%.2f tok/s, %d decode steps)\n",
          n_prompt, tp, n_prompt / tp, n_predict, tg, n_predict > 1 ? (n_predict - 1) / tg : 0.0,
          n_predict > 0 ? n_predict - 1 : 0);
  status = 0;
out:
  free(dump_buf);
  free(prompt);
  cll_ctx_free(c);
  cll_model_release(m);
  return status;
}
