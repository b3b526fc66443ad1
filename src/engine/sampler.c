/* sampler.c — token sampling (penalties, top_k, typical_p, top_p, min_p,
 * temperature, seeded draw) and the stop-string matcher.
 *
 * Design: one cll_sampler per sequence, created once with scratch for the
 * whole vocabulary (a candidate array and a per-token occurrence count), so
 * cll_sampler_sample allocates nothing. The chain mirrors llama.cpp's
 * default sampler chain, which current Ollama runs through llama-server:
 *
 *   penalties -> top_k -> typical_p -> top_p -> min_p -> temperature -> draw
 *
 * The caller's logits are never written: penalties are read inline from the
 * per-token window counts while the vocabulary streams through the top_k
 * heap (or into the candidate array when top_k is off).
 *
 * Each filter that needs probabilities recomputes a softmax (temperature 1)
 * over the candidates that survived the previous one, as llama.cpp does.
 * Ordering is done by selection, never by sorting the vocabulary: a heap
 * keeps the best K candidates in place (the rest stay in the array, so K can
 * grow), and top_p/typical_p without top_k grow K geometrically until the
 * selected prefix holds the required mass, which for real distributions
 * happens after a few hundred candidates.
 *
 * Ties between equal logits always go to the lower token id, so greedy and
 * top_k=1 agree, and a given seed draws the same tokens on every machine
 * that rounds floats the same way. The RNG is xoshiro256** seeded through
 * splitmix64. */
#include "cllama/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

struct cand {
  int32_t id;
  float logit;
  float p;   /* probability within the current candidate set */
  float key; /* what select_best orders by (larger is better) */
};

struct cll_sampler {
  struct cll_sampler_params p;
  int32_t n_vocab;
  uint64_t rng[4];   /* xoshiro256** state */
  int32_t *ring;     /* (repeat_last_n) recent tokens, oldest at ring_head when full */
  int32_t ring_len;  /* tokens in the ring, <= repeat_last_n */
  int32_t ring_head; /* next slot to write */
  int32_t *counts;   /* (n_vocab) occurrences of each token in the ring */
  struct cand *cand; /* (n_vocab) candidate scratch */
};

/* ------------------------------------------------------------------ RNG */

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4]) {
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform double in [0, 1). */
static double rng_uniform(uint64_t s[4]) {
  return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

static void rng_seed(uint64_t s[4], int64_t seed) {
  uint64_t x;
  if (seed >= 0) {
    x = (uint64_t)seed;
  } else if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x) {
    /* No entropy syscall: the clock is random enough for "seed -1". */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    x = (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)s;
  }
  for (int i = 0; i < 4; i++)
    s[i] = splitmix64(&x);
}

/* ------------------------------------------------------------ lifecycle */

void cll_sampler_params_defaults(struct cll_sampler_params *p) {
  *p = (struct cll_sampler_params){
      .seed = -1,
      .temperature = 0.8f,
      .top_k = 40,
      .top_p = 0.9f,
      .min_p = 0.0f,
      .typical_p = 1.0f,
      .repeat_last_n = 64,
      .repeat_penalty = 1.0f,
      .presence_penalty = 0.0f,
      .frequency_penalty = 0.0f,
  };
}

int cll_sampler_new(const struct cll_sampler_params *p, int32_t n_vocab, cll_sampler **out) {
  *out = NULL;
  if (p == NULL || n_vocab <= 0 || p->repeat_last_n < 0 || isnan(p->temperature) ||
      isnan(p->top_p) || isnan(p->min_p) || isnan(p->typical_p) || isnan(p->repeat_penalty) ||
      isnan(p->presence_penalty) || isnan(p->frequency_penalty))
    return CLL_EINVAL;
  cll_sampler *s = calloc(1, sizeof *s);
  if (s == NULL)
    return CLL_ENOMEM;
  s->p = *p;
  s->n_vocab = n_vocab;
  s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
  if (s->cand == NULL)
    goto err;
  if (p->repeat_last_n > 0) {
    s->ring = malloc((size_t)p->repeat_last_n * sizeof *s->ring);
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    if (s->ring == NULL || s->counts == NULL)
      goto err;
  }
  rng_seed(s->rng, p->seed);
  *out = s;
  return 0;
err:
  cll_sampler_free(s);
  return CLL_ENOMEM;
}

void cll_sampler_free(cll_sampler *s) {
  if (s == NULL)
    return;
  free(s->cand);
  free(s->ring);
  free(s->counts);
  free(s);
}

void cll_sampler_reset(cll_sampler *s) {
  if (s->counts != NULL)
    for (int32_t i = 0; i < s->ring_len; i++)
      s->counts[s->ring[i]] = 0;
  s->ring_len = 0;
  s->ring_head = 0;
  rng_seed(s->rng, s->p.seed);
}

void cll_sampler_accept(cll_sampler *s, int32_t token) {
  if (s->ring == NULL || token < 0 || token >= s->n_vocab)
    return;
  int32_t cap = s->p.repeat_last_n;
  if (s->ring_len == cap)
    s->counts[s->ring[s->ring_head]]--; /* evict the oldest */
  else
    s->ring_len++;
  s->ring[s->ring_head] = token;
  s->counts[token]++;
  s->ring_head = (s->ring_head + 1) % cap;
}

/* ------------------------------------------------------------ the chain */

static bool penalties_active(const struct cll_sampler_params *p) {
  return p->repeat_last_n > 0 &&
         (p->repeat_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f);
}

static float clean(float x) {
  return isnan(x) ? -INFINITY : x;
}

/* Token i's logit after the repetition penalties (counts[i] occurrences in
 * the window): logit > 0 divided by repeat_penalty, <= 0 multiplied, then
 * frequency * count + presence subtracted. Reading the penalties inline
 * keeps the caller's logits untouched and costs one load per token. */
static float logit_at(const cll_sampler *s, bool pen, const float *logits, int32_t i) {
  float l = clean(logits[i]);
  if (pen) {
    int32_t n = s->counts[i];
    if (n > 0) {
      const struct cll_sampler_params *p = &s->p;
      l = l <= 0.0f ? l * p->repeat_penalty : l / p->repeat_penalty;
      l -= (float)n * p->frequency_penalty + p->presence_penalty;
    }
  }
  return l;
}

/* a ranks before b: larger key, then lower id. */
static bool better(const struct cand *a, const struct cand *b) {
  return a->key > b->key || (a->key == b->key && a->id < b->id);
}

static void swap_cand(struct cand *a, struct cand *b) {
  struct cand t = *a;
  *a = *b;
  *b = t;
}

/* Sift down in a heap whose root is the worst element (min-heap by rank). */
static void sift_worst(struct cand *h, int32_t n, int32_t i) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < n && better(&h[w], &h[l]))
      w = l;
    if (r < n && better(&h[w], &h[r]))
      w = r;
    if (w == i)
      return;
    swap_cand(&h[i], &h[w]);
    i = w;
  }
}

/* Moves the k best of c[0..n) (by key) to c[0..k), best first; the others
 * stay in c[k..n). O(n log k). */
static void select_best(struct cand *c, int32_t n, int32_t k) {
  if (k > n)
    k = n;
  if (k <= 0)
    return;
  for (int32_t i = k / 2 - 1; i >= 0; i--)
    sift_worst(c, k, i);
  for (int32_t i = k; i < n; i++) {
    if (better(&c[i], &c[0])) {
      swap_cand(&c[i], &c[0]);
      sift_worst(c, k, 0);
    }
  }
  /* Heap sort: pop the worst to the end of the prefix. */
  for (int32_t m = k - 1; m > 0; m--) {
    swap_cand(&c[0], &c[m]);
    sift_worst(c, m, 0);
  }
}

/* p = softmax(logit) over c[0..n); returns nothing, p sums to 1. */
static void softmax(struct cand *c, int32_t n) {
  float mx = -INFINITY;
  for (int32_t i = 0; i < n; i++)
    if (c[i].logit > mx)
      mx = c[i].logit;
  double sum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    float e = mx == -INFINITY ? 1.0f : expf(c[i].logit - mx);
    c[i].p = e;
    sum += e;
  }
  for (int32_t i = 0; i < n; i++)
    c[i].p = (float)(c[i].p / sum);
}

/* Keeps the smallest best-by-key prefix whose probability mass reaches
 * `mass` (strictly exceeds it when `strict`); returns the new size. Grows
 * the selected prefix geometrically so the full set is ordered only when the
 * mass needs it. */
static int32_t keep_mass(struct cand *c, int32_t n, double mass, bool strict, bool presorted) {
  int32_t k = presorted ? n : (n < 64 ? n : 64);
  for (;;) {
    if (!presorted)
      select_best(c, n, k);
    double cum = 0.0;
    for (int32_t i = 0; i < k; i++) {
      cum += c[i].p;
      if (strict ? cum > mass : cum >= mass)
        return i + 1;
    }
    if (k == n)
      return n;
    k = k > n / 4 ? n : k * 4;
  }
}

int32_t cll_sampler_sample(cll_sampler *s, const float *logits) {
  const struct cll_sampler_params *p = &s->p;
  int32_t V = s->n_vocab;
  struct cand *c = s->cand;
  bool pen = penalties_active(p);

  if (!(p->temperature > 0.0f)) {
    int32_t best = 0;
    float bl = logit_at(s, pen, logits, 0);
    for (int32_t i = 1; i < V; i++) {
      float l = logit_at(s, pen, logits, i);
      if (l > bl) {
        bl = l;
        best = i;
      }
    }
    return best;
  }

  int32_t n;
  bool sorted; /* c[0..n) in descending logit order */
  if (p->top_k > 0 && p->top_k < V) {
    /* Stream the vocabulary through a heap of the best top_k. */
    int32_t k = p->top_k;
    for (int32_t i = 0; i < k; i++) {
      float l = logit_at(s, pen, logits, i);
      c[i] = (struct cand){.id = i, .logit = l, .key = l};
    }
    for (int32_t i = k / 2 - 1; i >= 0; i--)
      sift_worst(c, k, i);
    for (int32_t i = k; i < V; i++) {
      float l = logit_at(s, pen, logits, i);
      if (l < c[0].key)
        continue; /* cheap reject before building the candidate */
      struct cand x = {.id = i, .logit = l, .key = l};
      if (better(&x, &c[0])) {
        c[0] = x;
        sift_worst(c, k, 0);
      }
    }
    for (int32_t m = k - 1; m > 0; m--) {
      swap_cand(&c[0], &c[m]);
      sift_worst(c, m, 0);
    }
    n = k;
    sorted = true;
  } else {
    for (int32_t i = 0; i < V; i++) {
      float l = logit_at(s, pen, logits, i);
      c[i] = (struct cand){.id = i, .logit = l, .key = l};
    }
    n = V;
    sorted = false;
  }

  if (p->typical_p < 1.0f && n > 1) {
    /* Locally typical sampling: prefer tokens whose surprise is closest to
     * the entropy, until their mass exceeds typical_p. */
    softmax(c, n);
    double ent = 0.0;
    for (int32_t i = 0; i < n; i++)
      if (c[i].p > 0.0f)
        ent -= (double)c[i].p * log(c[i].p);
    for (int32_t i = 0; i < n; i++) {
      double surprise = c[i].p > 0.0f ? -log(c[i].p) : INFINITY;
      c[i].key = (float)-fabs(surprise - ent);
    }
    n = keep_mass(c, n, p->typical_p, true, false);
    for (int32_t i = 0; i < n; i++)
      c[i].key = c[i].logit;
    sorted = false;
  }

  if (p->top_p < 1.0f && n > 1) {
    softmax(c, n);
    n = keep_mass(c, n, p->top_p, false, sorted);
    sorted = true; /* keep_mass left the kept prefix ordered by logit */
  }

  if (p->min_p > 0.0f && n > 1) {
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
      if (c[i].logit > mx)
        mx = c[i].logit;
    float min_logit = mx + logf(p->min_p);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
      if (c[i].logit >= min_logit)
        c[m++] = c[i]; /* order preserved */
    if (m > 0)
      n = m;
  }

  for (int32_t i = 0; i < n; i++)
    c[i].logit /= p->temperature;
  softmax(c, n);

  double u = rng_uniform(s->rng), cum = 0.0;
  for (int32_t i = 0; i < n; i++) {
    cum += c[i].p;
    if (u < cum)
      return c[i].id;
  }
  /* Rounding left u above the total: take the last candidate with mass. */
  for (int32_t i = n - 1; i > 0; i--)
    if (c[i].p > 0.0f)
      return c[i].id;
  return c[0].id;
}

int cll_logprobs(const float *logits, int32_t n_vocab, int32_t token, int k,
                 struct cll_token_logprob *top, float *token_logprob) {
  if (n_vocab <= 0 || k < 0 || k > CLL_MAX_TOP_LOGPROBS)
    return CLL_EINVAL;
  float mx = -INFINITY;
  for (int32_t i = 0; i < n_vocab; i++)
    if (clean(logits[i]) > mx)
      mx = clean(logits[i]);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab; i++)
    sum += mx == -INFINITY ? 1.0 : exp((double)clean(logits[i]) - mx);
  double lse = mx == -INFINITY ? log(sum) : mx + log(sum);
  if (token_logprob != NULL)
    *token_logprob =
        token >= 0 && token < n_vocab ? (float)(clean(logits[token]) - lse) : -INFINITY;
  if (k > n_vocab)
    k = n_vocab;
  /* Best k by a small heap kept in a stack array (k <= 20). */
  struct cand h[CLL_MAX_TOP_LOGPROBS];
  int32_t n = 0;
  for (int32_t i = 0; i < n_vocab && k > 0; i++) {
    struct cand x = {.id = i, .logit = clean(logits[i]), .key = clean(logits[i])};
    if (n < k) {
      h[n++] = x;
      if (n == k)
        for (int32_t j = k / 2 - 1; j >= 0; j--)
          sift_worst(h, k, j);
    } else if (better(&x, &h[0])) {
      h[0] = x;
      sift_worst(h, k, 0);
    }
  }
  if (n > 0 && n < k)
    for (int32_t j = n / 2 - 1; j >= 0; j--)
      sift_worst(h, n, j);
  for (int32_t m = n - 1; m > 0; m--) {
    swap_cand(&h[0], &h[m]);
    sift_worst(h, m, 0);
  }
  for (int32_t i = 0; i < n; i++)
    top[i] = (struct cll_token_logprob){.token = h[i].id, .logprob = (float)(h[i].logit - lse)};
  return n;
}

/* ------------------------------------------------------------ stop strings
 *
 * The matcher keeps the text not yet emitted in `buf`. After each piece it
 * looks for the earliest complete stop string in it; if there is none, it
 * emits everything except the longest tail that is a prefix of some stop
 * string (that tail could still become a match). The held tail is always
 * shorter than the longest stop string. */

struct cll_stop {
  char **stops;
  size_t *lens;
  size_t n;
  size_t max_len;
  char *buf;  /* (cap) held text, then scratch for the emitted part */
  size_t len; /* bytes held */
  size_t cap;
  char *out; /* (out_cap) the emitted text of the last call */
  size_t out_cap;
  bool done;
};

int cll_stop_new(const char *const *stops, size_t n, cll_stop **out) {
  *out = NULL;
  cll_stop *m = calloc(1, sizeof *m);
  if (m == NULL)
    return CLL_ENOMEM;
  if (n > 0) {
    m->stops = calloc(n, sizeof *m->stops);
    m->lens = calloc(n, sizeof *m->lens);
    if (m->stops == NULL || m->lens == NULL)
      goto err;
  }
  for (size_t i = 0; i < n; i++) {
    if (stops[i] == NULL || stops[i][0] == '\0')
      continue;
    size_t l = strlen(stops[i]);
    m->stops[m->n] = malloc(l + 1);
    if (m->stops[m->n] == NULL)
      goto err;
    memcpy(m->stops[m->n], stops[i], l + 1);
    m->lens[m->n++] = l;
    if (l > m->max_len)
      m->max_len = l;
  }
  m->cap = 2 * m->max_len + 256;
  m->out_cap = m->cap;
  m->buf = malloc(m->cap);
  m->out = malloc(m->out_cap);
  if (m->buf == NULL || m->out == NULL)
    goto err;
  *out = m;
  return 0;
err:
  cll_stop_free(m);
  return CLL_ENOMEM;
}

void cll_stop_free(cll_stop *m) {
  if (m == NULL)
    return;
  if (m->stops != NULL)
    for (size_t i = 0; i < m->n; i++)
      free(m->stops[i]);
  free(m->stops);
  free(m->lens);
  free(m->buf);
  free(m->out);
  free(m);
}

static bool grow(char **p, size_t *cap, size_t need) {
  if (need <= *cap)
    return true;
  size_t c = *cap * 2 > need ? *cap * 2 : need;
  char *q = realloc(*p, c);
  if (q == NULL)
    return false;
  *p = q;
  *cap = c;
  return true;
}

/* Emits buf[0..k) through m->out and keeps buf[k..len). */
static void emit_prefix(cll_stop *m, size_t k, const char **emit, size_t *emit_len) {
  memcpy(m->out, m->buf, k);
  memmove(m->buf, m->buf + k, m->len - k);
  m->len -= k;
  *emit = m->out;
  *emit_len = k;
}

bool cll_stop_feed(cll_stop *m, const char *piece, size_t len, const char **emit,
                   size_t *emit_len) {
  *emit = m->out;
  *emit_len = 0;
  if (m->done)
    return true;
  if (!grow(&m->buf, &m->cap, m->len + len) || !grow(&m->out, &m->out_cap, m->len + len)) {
    /* Out of memory: stop rather than emit text that might hold a stop string. */
    m->done = true;
    return true;
  }
  memcpy(m->buf + m->len, piece, len);
  m->len += len;

  /* Earliest complete stop string. Only positions from which a stop string
   * could end inside the new piece are new, but the held tail is short, so
   * scanning all of buf costs no more than the piece plus max_len. */
  size_t best = SIZE_MAX;
  for (size_t i = 0; i < m->n; i++) {
    if (m->lens[i] > m->len)
      continue;
    const char *hit = memmem(m->buf, m->len, m->stops[i], m->lens[i]);
    if (hit != NULL && (size_t)(hit - m->buf) < best)
      best = (size_t)(hit - m->buf);
  }
  if (best != SIZE_MAX) {
    m->len = best;
    emit_prefix(m, best, emit, emit_len);
    m->done = true;
    return true;
  }

  /* Longest tail of buf that is a proper prefix of some stop string. */
  size_t hold = 0;
  for (size_t i = 0; i < m->n; i++) {
    size_t maxl = m->lens[i] - 1 < m->len ? m->lens[i] - 1 : m->len;
    for (size_t l = maxl; l > hold; l--) {
      if (memcmp(m->buf + m->len - l, m->stops[i], l) == 0) {
        hold = l;
        break;
      }
    }
  }
  emit_prefix(m, m->len - hold, emit, emit_len);
  return false;
}

void cll_stop_flush(cll_stop *m, const char **emit, size_t *emit_len) {
  if (m->done) {
    *emit = m->out;
    *emit_len = 0;
    return;
  }
  emit_prefix(m, m->len, emit, emit_len);
}

size_t cll_stop_held(const cll_stop *m) {
  return m->len;
}
