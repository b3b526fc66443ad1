/* tokenizer_pre.c — pre-tokenizers: lists of PCRE2 patterns (UTF mode, JIT)
 * named by tokenizer.ggml.pre, applied one after another by the BPE encoder
 * (each pattern splits every piece left by the previous one into matches and
 * the gaps between them, as llama.cpp does). Patterns are written with \s
 * and \S; they are rewritten at load time to an explicit class of the
 * Unicode White_Space characters, the set llama.cpp uses. */
#include "text/tokenizer_internal.h"

#include <stdlib.h>
#include <string.h>

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

/* The pre-tokenizer a tokenizer.ggml.pre value names; false if unknown. */
bool cll__tok_pre_find(const char *name, enum pre_type *type) {
  for (size_t i = 0; i < CLL_ARRAY_LEN(pre_names); i++) {
    if (strcmp(name, pre_names[i].name) == 0) {
      *type = pre_names[i].type;
      return true;
    }
  }
  return false;
}

/* Pre-tokenizers whose detokenization skips llama.cpp's space clean-up. */
bool cll__tok_pre_keeps_spaces(const char *name) {
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

int cll__tok_compile_patterns(cll_tokenizer *t, cll_err *err) {
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
