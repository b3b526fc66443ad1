/* loadgen.c — a load generator for any Ollama-compatible server.
 *
 * Drives N concurrent streaming /api/chat or /api/generate requests over
 * HTTP/1.1 keep-alive connections for each concurrency level given, and
 * reports per level: time to first token (p50/p90/p99), the gap between
 * streamed tokens (p50/p99), aggregate generated and prompt tokens/s, errors,
 * the latency of a `GET /` probe sent every 50 ms throughout, and the
 * server's RSS when its pid is given. Writes the table as JSON and, when
 * gnuplot is installed, a PNG plot of throughput and latency against
 * concurrency.
 *
 * DESIGN: one libuv loop, one llhttp parser per connection. Each connection
 * runs its share of requests back to back; a response body is NDJSON, split
 * into lines here and parsed with jansson. A streamed chunk with non-empty
 * text counts as one token event; generated tokens are taken from the final
 * chunk's eval_count (falling back to the number of events). With --turns 2
 * each connection holds a conversation: the second request repeats the
 * first exchange and adds a short question, which is how a chat client
 * talks, and the report gives each turn's time to first token separately.
 *
 * Any server: --api ollama (/api/chat or /api/generate, NDJSON),
 * openai-chat (/v1/chat/completions), openai-completions (/v1/completions;
 * both SSE, usage asked for with stream_options) or llamacpp (llama.cpp's
 * /completion, SSE). Load is a fixed-concurrency sweep (--levels: that many
 * connections each running --requests requests back to back) or a request
 * rate sweep (--rates: --num-prompts requests per rate, Poisson arrivals,
 * each on a connection of its own). Prompts: random words, a shared prefix
 * (--dataset shared-prefix --prefix-words N) or lines of a file
 * (--dataset file --prompts FILE). Per load point: time to first token,
 * inter-token latency (gaps between streamed chunks with text), time per
 * output token ((latency - TTFT) / (tokens - 1), per request), end-to-end
 * latency (mean, median, p90, p99), request and token throughput, goodput
 * (requests/s meeting --slo-ttft-ms and --slo-itl-ms; a request's ITL is its
 * TPOT, as vLLM counts it), errors. --json writes a list with one object per
 * load point in the layout of vLLM's benchmark_serving results (plus the
 * per-request arrays), --plot a PNG, --dat the plot's data for scripts that
 * draw several servers together (bench/compare-servers.sh).
 *
 * Usage: loadgen [--url http://127.0.0.1:11434] --model NAME
 *                [--api ollama|openai-chat|openai-completions|llamacpp]
 *                [--endpoint chat|generate] [--levels 1,4,8,16 | --rates 0.5,1,2]
 *                [--requests N (per connection, default 2)] [--num-prompts N]
 *                [--dataset random|shared-prefix|file] [--prefix-words N]
 *                [--prompts FILE] [--prompt-words 128 | --prompt-mix 64,128,256]
 *                [--num-predict 64] [--ignore-eos] [--system TEXT] [--turns 1|2]
 *                [--temperature T] [--slo-ttft-ms MS] [--slo-itl-ms MS]
 *                [--server-pid PID] [--repeat K] [--label NAME]
 *                [--json FILE] [--plot FILE.png] [--dat FILE] [--no-probe] */
#include <jansson.h>
#include <llhttp.h>
#include <uv.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LEVELS 16
#define MAX_MIX 8

enum api { API_OLLAMA, API_OAI_CHAT, API_OAI_COMP, API_LLAMACPP };
static const char *const api_names[] = {"ollama", "openai-chat", "openai-completions", "llamacpp"};
enum dataset { DS_RANDOM, DS_SHARED_PREFIX, DS_FILE };

struct opts {
  char host[256];
  int port;
  const char *model;
  bool chat;
  enum api api;
  enum dataset dataset;
  int prefix_words;
  char **file_prompts;
  int n_file_prompts;
  double rates[MAX_LEVELS];
  int n_rates;
  int num_prompts;
  bool ignore_eos;
  bool probe;
  double slo_ttft_ms, slo_itl_ms;
  const char *label;
  const char *dat_path;
  int levels[MAX_LEVELS];
  int n_levels;
  int requests;
  int mix[MAX_MIX];
  int n_mix;
  int num_predict;
  const char *system;
  int turns;
  double temperature;
  int server_pid;
  int repeat;
  const char *json_path;
  const char *plot_path;
};

/* A growable array of samples in milliseconds. */
struct samples {
  double *v;
  size_t n, cap;
};

static void samples_add(struct samples *s, double x) {
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 256;
    double *v = realloc(s->v, cap * sizeof(*v));
    if (v == NULL)
      return;
    s->v = v;
    s->cap = cap;
  }
  s->v[s->n++] = x;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Percentile p (0..100) by nearest rank; NaN when empty. Sorts in place. */
static double percentile(struct samples *s, double p) {
  if (s->n == 0)
    return NAN;
  qsort(s->v, s->n, sizeof(double), cmp_double);
  size_t k = (size_t)ceil(p / 100.0 * (double)s->n);
  if (k > 0)
    k--;
  if (k >= s->n)
    k = s->n - 1;
  return s->v[k];
}

/* One finished request, for the per-request statistics. */
struct reqrec {
  double ttft_ms, e2e_ms;
  int out_tokens, in_tokens;
  double *itl_ms; /* gaps between its chunks */
  int n_itl;
};

struct level_result {
  int concurrency;
  double rate; /* requests/s for a rate sweep point; 0 for concurrency */
  struct reqrec *recs;
  size_t n_recs, cap_recs;
  int requests_done;
  int errors;
  double wall_s;
  int64_t gen_tokens;
  int64_t prompt_tokens;
  struct samples ttft[2]; /* by turn */
  struct samples gap;
  struct samples probe;
  long rss_kb_after;
  char first_error[256];
};

struct client;

struct run {
  const struct opts *o;
  uv_loop_t *loop;
  struct level_result *res;
  int active;
  int request_seq;
  uv_timer_t probe_timer;
  struct client *probe;
  bool probing;
  uint64_t t0_ns;
  /* rate sweep: arrivals still to start, and the timer that starts them */
  int arrivals_left;
  uv_timer_t arrival_timer;
  uint32_t rng;
};

struct client {
  struct run *run;
  uv_tcp_t tcp;
  uv_connect_t connect_req;
  uv_write_t write_req;
  llhttp_t parser;
  llhttp_settings_t settings;
  bool is_probe;
  bool connected;
  bool busy;
  int requests_left;
  int turn;          /* 0 or 1 within a conversation */
  char *request_buf; /* the request being written (owned) */
  char *line;        /* partial NDJSON line */
  size_t line_len, line_cap;
  char *reply; /* assistant text of the current turn (for --turns 2) */
  size_t reply_len, reply_cap;
  char *first_prompt; /* the first turn's prompt (for --turns 2) */
  uint64_t t_send_ns, t_first_ns, t_last_ns;
  int events;
  int status;
  bool saw_final;
  bool failed;
  int64_t eval_count, prompt_eval_count;
  double *itl; /* this request's gaps (ms) */
  int n_itl, cap_itl;
  int served;        /* responses completed on this connection */
  size_t resp_bytes; /* bytes of the current response so far */
};

static uint64_t now_ns(void) {
  return uv_hrtime();
}

static long read_rss_kb(int pid) {
  if (pid <= 0)
    return -1;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL)
    return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof(line), f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1)
      break;
  fclose(f);
  return kb;
}

static int append(char **buf, size_t *len, size_t *cap, const char *p, size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : 1024;
    while (c < *len + n + 1)
      c *= 2;
    char *b = realloc(*buf, c);
    if (b == NULL)
      return -1;
    *buf = b;
    *cap = c;
  }
  memcpy(*buf + *len, p, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}

/* ------------------------------------------------------------ prompts */

static const char *const words[] = {
    "the",     "little", "cat",    "sat",   "on",      "a",       "warm",   "mat",
    "while",   "rain",   "fell",   "over",  "quiet",   "town",    "and",    "every",
    "child",   "looked", "out",    "of",    "window",  "to",      "see",    "bright",
    "green",   "trees",  "moving", "in",    "wind",    "near",    "old",    "river",
    "where",   "boats",  "slowly", "came",  "home",    "after",   "long",   "day",
    "people",  "walked", "along",  "road",  "talking", "about",   "their",  "work",
    "friends", "family", "food",   "music", "books",   "stories", "dreams", "plans",
    "for",     "next",   "summer", "when",  "sun",     "would",   "shine",  "again"};

/* The prompt of request seq. random: its own words. shared-prefix: the
 * same prefix_words words for every request, then its own. file: line
 * seq of the file (cycling). */
static const struct opts *g_opts;

static void make_prompt(char *out, size_t cap, int n_words, int seq) {
  const struct opts *o = g_opts;
  if (o && o->dataset == DS_FILE && o->n_file_prompts > 0) {
    snprintf(out, cap, "%s", o->file_prompts[seq % o->n_file_prompts]);
    return;
  }
  size_t len = 0;
  if (o && o->dataset == DS_SHARED_PREFIX) {
    uint32_t ps = 88172645u;
    int pw = o->prefix_words < n_words ? o->prefix_words : n_words;
    len = (size_t)snprintf(out, cap, "Shared context:");
    for (int i = 0; i < pw && len + 16 < cap; i++) {
      ps ^= ps << 13;
      ps ^= ps >> 17;
      ps ^= ps << 5;
      len += (size_t)snprintf(out + len, cap - len, " %s",
                              words[ps % (sizeof(words) / sizeof(words[0]))]);
    }
    n_words -= pw;
    out += len;
    cap -= len;
  }
  uint32_t s = 2463534242u ^ (uint32_t)(seq * 2654435761u);
  len = (size_t)snprintf(out, cap, "%sRequest %d:", o && o->dataset == DS_SHARED_PREFIX ? " " : "",
                         seq);
  for (int i = 0; i < n_words && len + 16 < cap; i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    len += (size_t)snprintf(out + len, cap - len, " %s",
                            words[s % (sizeof(words) / sizeof(words[0]))]);
  }
}

/* ------------------------------------------------------------ requests */

static void client_send_next(struct client *c);
static struct client *client_new(struct run *r, bool probe, int requests);
static void client_close(struct client *c);
static void level_maybe_done(struct run *r);

static size_t prompt_cap(const struct opts *o, int n_words) {
  size_t cap = (size_t)n_words * 12 + 64;
  for (int i = 0; i < o->n_file_prompts; i++)
    if (strlen(o->file_prompts[i]) + 1 > cap)
      cap = strlen(o->file_prompts[i]) + 1;
  return cap;
}

/* The body for the OpenAI and llama.cpp APIs (one turn). */
static char *build_body_other(struct client *c, int seq) {
  const struct opts *o = c->run->o;
  int n_words = o->mix[seq % o->n_mix];
  size_t cap = prompt_cap(o, n_words);
  char *prompt = malloc(cap);
  if (prompt == NULL)
    return NULL;
  make_prompt(prompt, cap, n_words, seq);
  json_t *req = json_object();
  if (o->api == API_LLAMACPP) {
    json_object_set_new(req, "prompt", json_string(prompt));
    json_object_set_new(req, "n_predict", json_integer(o->num_predict));
    json_object_set_new(req, "cache_prompt", json_true());
  } else {
    json_object_set_new(req, "model", json_string(o->model));
    json_object_set_new(req, "max_tokens", json_integer(o->num_predict));
    json_object_set_new(req, "stream_options", json_pack("{s:b}", "include_usage", 1));
    if (o->api == API_OAI_CHAT) {
      json_t *msgs = json_array();
      if (o->system)
        json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "system", "content", o->system));
      json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", prompt));
      json_object_set_new(req, "messages", msgs);
    } else {
      json_object_set_new(req, "prompt", json_string(prompt));
    }
  }
  json_object_set_new(req, "stream", json_true());
  json_object_set_new(req, "temperature", json_real(o->temperature));
  json_object_set_new(req, "seed", json_integer(seq));
  if (o->ignore_eos)
    json_object_set_new(req, "ignore_eos", json_true());
  free(prompt);
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  return body;
}

static char *build_body(struct client *c, int seq) {
  const struct opts *o = c->run->o;
  if (o->api != API_OLLAMA)
    return build_body_other(c, seq);
  int n_words = o->mix[seq % o->n_mix];
  size_t pcap = prompt_cap(o, n_words);
  char *prompt = malloc(pcap);
  if (prompt == NULL)
    return NULL;
  json_t *req = json_object();
  json_object_set_new(req, "model", json_string(o->model));
  json_object_set_new(req, "stream", json_true());
  json_t *opt = json_object();
  json_object_set_new(opt, "num_predict", json_integer(o->num_predict));
  json_object_set_new(opt, "temperature", json_real(o->temperature));
  json_object_set_new(opt, "seed", json_integer(seq));
  json_object_set_new(req, "options", opt);
  if (o->chat) {
    json_t *msgs = json_array();
    if (o->system) {
      json_t *m = json_pack("{s:s,s:s}", "role", "system", "content", o->system);
      json_array_append_new(msgs, m);
    }
    if (c->turn == 0) {
      make_prompt(prompt, pcap, n_words, seq);
      free(c->first_prompt);
      c->first_prompt = strdup(prompt);
      json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", prompt));
    } else {
      json_array_append_new(msgs,
                            json_pack("{s:s,s:s}", "role", "user", "content", c->first_prompt));
      json_array_append_new(
          msgs, json_pack("{s:s,s:s}", "role", "assistant", "content", c->reply ? c->reply : ""));
      json_array_append_new(
          msgs, json_pack("{s:s,s:s}", "role", "user", "content", "Tell me more about that."));
    }
    json_object_set_new(req, "messages", msgs);
  } else {
    make_prompt(prompt, pcap, n_words, seq);
    json_object_set_new(req, "prompt", json_string(prompt));
    if (o->system)
      json_object_set_new(req, "system", json_string(o->system));
  }
  free(prompt);
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);
  return body;
}

static void on_write(uv_write_t *w, int status) {
  struct client *c = w->data;
  free(c->request_buf);
  c->request_buf = NULL;
  if (status < 0 && !c->failed) {
    c->failed = true;
    client_close(c);
  }
}

static void write_request(struct client *c, const char *method, const char *path,
                          const char *body) {
  size_t blen = body ? strlen(body) : 0;
  size_t cap = blen + 512;
  c->request_buf = malloc(cap);
  if (c->request_buf == NULL) {
    c->failed = true;
    client_close(c);
    return;
  }
  int n = snprintf(c->request_buf, cap,
                   "%s %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: cllama-loadgen\r\n"
                   "Connection: keep-alive\r\n",
                   method, path, c->run->o->host, c->run->o->port);
  if (body)
    n += snprintf(c->request_buf + n, cap - (size_t)n,
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n", blen);
  n += snprintf(c->request_buf + n, cap - (size_t)n, "\r\n");
  if (body) {
    memcpy(c->request_buf + n, body, blen);
    n += (int)blen;
  }
  uv_buf_t buf = uv_buf_init(c->request_buf, (unsigned)n);
  c->write_req.data = c;
  c->t_send_ns = now_ns();
  c->t_first_ns = c->t_last_ns = 0;
  c->events = 0;
  c->status = 0;
  c->saw_final = false;
  c->eval_count = c->prompt_eval_count = 0;
  c->n_itl = 0;
  c->resp_bytes = 0;
  c->line_len = 0;
  c->reply_len = 0;
  c->busy = true;
  int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
  if (rc < 0) {
    free(c->request_buf);
    c->request_buf = NULL;
    c->failed = true;
    client_close(c);
  }
}

static void record_error(struct run *r, const char *msg) {
  r->res->errors++;
  if (r->res->first_error[0] == '\0')
    snprintf(r->res->first_error, sizeof(r->res->first_error), "%s", msg);
}

static void add_itl(struct client *c, double ms) {
  if (c->n_itl == c->cap_itl) {
    int cap = c->cap_itl ? c->cap_itl * 2 : 128;
    double *v = realloc(c->itl, (size_t)cap * sizeof(*v));
    if (!v)
      return;
    c->itl = v;
    c->cap_itl = cap;
  }
  c->itl[c->n_itl++] = ms;
}

/* One line of a generation response: NDJSON (Ollama) or an SSE line. */
static void on_line(struct client *c, const char *line, size_t len) {
  const struct opts *o = c->run->o;
  if (o->api != API_OLLAMA) {
    /* SSE: "data: {...}" lines; blank lines, comments and other fields skipped. */
    if (len && line[len - 1] == '\r')
      len--;
    if (len < 5 || strncmp(line, "data:", 5) != 0)
      return;
    line += 5;
    len -= 5;
    while (len && *line == ' ')
      line++, len--;
    if (len == 6 && !strncmp(line, "[DONE]", 6)) {
      c->saw_final = true;
      return;
    }
  }
  json_error_t jerr;
  json_t *j = json_loadb(line, len, 0, &jerr);
  if (j == NULL) {
    record_error(c->run, "bad JSON line in stream");
    c->failed = true;
    return;
  }
  json_t *err = json_object_get(j, "error");
  if (err) {
    const char *em = json_is_string(err) ? json_string_value(err)
                                         : json_string_value(json_object_get(err, "message"));
    record_error(c->run, em ? em : "error");
    c->failed = true;
    json_decref(j);
    return;
  }
  const char *text = NULL;
  json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
  json_t *usage = json_object_get(j, "usage");
  switch (o->api) {
  case API_OLLAMA:
    if (o->chat) {
      json_t *m = json_object_get(j, "message");
      text = json_string_value(json_object_get(m, "content"));
    } else {
      text = json_string_value(json_object_get(j, "response"));
    }
    break;
  case API_OAI_CHAT:
    text = json_string_value(json_object_get(json_object_get(choice, "delta"), "content"));
    break;
  case API_OAI_COMP:
    text = json_string_value(json_object_get(choice, "text"));
    break;
  case API_LLAMACPP:
    text = json_string_value(json_object_get(j, "content"));
    if (json_is_true(json_object_get(j, "stop"))) {
      c->saw_final = true;
      c->eval_count = json_integer_value(json_object_get(j, "tokens_predicted"));
      c->prompt_eval_count = json_integer_value(json_object_get(j, "tokens_evaluated"));
    }
    break;
  }
  if (json_is_object(usage)) {
    c->eval_count = json_integer_value(json_object_get(usage, "completion_tokens"));
    c->prompt_eval_count = json_integer_value(json_object_get(usage, "prompt_tokens"));
  }
  uint64_t t = now_ns();
  if (text && text[0]) {
    if (c->t_first_ns == 0) {
      c->t_first_ns = t;
    } else {
      samples_add(&c->run->res->gap, (double)(t - c->t_last_ns) / 1e6);
      add_itl(c, (double)(t - c->t_last_ns) / 1e6);
    }
    c->t_last_ns = t;
    c->events++;
    append(&c->reply, &c->reply_len, &c->reply_cap, text, strlen(text));
  }
  if (o->api == API_OLLAMA && json_is_true(json_object_get(j, "done"))) {
    c->saw_final = true;
    c->eval_count = json_integer_value(json_object_get(j, "eval_count"));
    c->prompt_eval_count = json_integer_value(json_object_get(j, "prompt_eval_count"));
  }
  json_decref(j);
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  struct client *c = p->data;
  if (c->is_probe)
    return 0;
  const char *end = at + len;
  while (at < end) {
    const char *nl = memchr(at, '\n', (size_t)(end - at));
    if (nl == NULL) {
      append(&c->line, &c->line_len, &c->line_cap, at, (size_t)(end - at));
      break;
    }
    if (c->line_len) {
      append(&c->line, &c->line_len, &c->line_cap, at, (size_t)(nl - at));
      on_line(c, c->line, c->line_len);
      c->line_len = 0;
    } else if (nl > at) {
      on_line(c, at, (size_t)(nl - at));
    }
    at = nl + 1;
  }
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  struct client *c = p->data;
  c->status = p->status_code;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  struct client *c = p->data;
  struct run *r = c->run;
  uint64_t t = now_ns();
  c->busy = false;
  c->served++;
  if (c->is_probe) {
    if (r->probing)
      samples_add(&r->res->probe, (double)(t - c->t_send_ns) / 1e6);
    if (c->status != 200)
      record_error(r, "probe GET / failed");
    return 0;
  }
  if (c->line_len) {
    on_line(c, c->line, c->line_len);
    c->line_len = 0;
  }
  if (c->status != 200) {
    char msg[64];
    snprintf(msg, sizeof(msg), "HTTP status %d", c->status);
    record_error(r, msg);
    c->failed = true;
  } else if (!c->saw_final && !c->failed) {
    record_error(r, "stream ended without a final chunk");
    c->failed = true;
  }
  if (!c->failed) {
    r->res->requests_done++;
    if (c->t_first_ns)
      samples_add(&r->res->ttft[c->turn], (double)(c->t_first_ns - c->t_send_ns) / 1e6);
    r->res->gen_tokens += c->eval_count > 0 ? c->eval_count : c->events;
    r->res->prompt_tokens += c->prompt_eval_count;
    struct level_result *res = r->res;
    if (res->n_recs == res->cap_recs) {
      size_t cap = res->cap_recs ? res->cap_recs * 2 : 64;
      struct reqrec *v = realloc(res->recs, cap * sizeof(*v));
      if (v) {
        res->recs = v;
        res->cap_recs = cap;
      }
    }
    if (res->n_recs < res->cap_recs) {
      struct reqrec *q = &res->recs[res->n_recs++];
      q->ttft_ms = c->t_first_ns ? (double)(c->t_first_ns - c->t_send_ns) / 1e6 : NAN;
      q->e2e_ms = (double)(t - c->t_send_ns) / 1e6;
      q->out_tokens = (int)(c->eval_count > 0 ? c->eval_count : c->events);
      q->in_tokens = (int)c->prompt_eval_count;
      q->itl_ms = c->n_itl ? malloc((size_t)c->n_itl * sizeof(double)) : NULL;
      q->n_itl = q->itl_ms ? c->n_itl : 0;
      if (q->itl_ms)
        memcpy(q->itl_ms, c->itl, (size_t)c->n_itl * sizeof(double));
    }
  }
  c->failed = false;
  /* Next request: the second turn of this conversation, or a new one. */
  if (r->o->turns > 1 && c->turn + 1 < r->o->turns)
    c->turn++;
  else {
    c->turn = 0;
    c->requests_left--;
  }
  client_send_next(c);
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  static char slab[1 << 16]; /* the loop is single-threaded; read callbacks copy out */
  *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  struct client *c = s->data;
  if (n < 0) {
    if (c->busy && !c->is_probe && c->served > 0 && c->resp_bytes == 0 && c->requests_left > 0) {
      /* The server closed a kept-alive connection as the next request went
       * out (llama.cpp's server does after a stream, though it offers
       * keep-alive): that request was never answered; send it again on a
       * new connection, as HTTP clients do. */
      client_new(c->run, false, c->requests_left);
      c->busy = false;
      c->requests_left = 0;
      client_close(c);
      return;
    }
    if (c->busy && !c->is_probe)
      record_error(c->run, n == UV_EOF ? "connection closed mid-response" : uv_strerror((int)n));
    c->busy = false;
    client_close(c);
    return;
  }
  if (n == 0)
    return;
  c->resp_bytes += (size_t)n;
  enum llhttp_errno e = llhttp_execute(&c->parser, buf->base, (size_t)n);
  if (e != HPE_OK) {
    record_error(c->run, llhttp_errno_name(e));
    c->busy = false;
    client_close(c);
  }
}

static void on_close(uv_handle_t *h) {
  struct client *c = h->data;
  struct run *r = c->run;
  bool probe = c->is_probe;
  free(c->line);
  free(c->reply);
  free(c->first_prompt);
  free(c->request_buf);
  free(c->itl);
  free(c);
  if (probe) {
    r->probe = NULL;
    return;
  }
  r->active--;
  level_maybe_done(r);
}

static void client_close(struct client *c) {
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void client_send_next(struct client *c) {
  if (c->requests_left <= 0) {
    client_close(c);
    return;
  }
  int seq = c->turn == 0 ? c->run->request_seq++ : c->run->request_seq;
  char *body = build_body(c, seq);
  if (body == NULL) {
    record_error(c->run, "out of memory");
    client_close(c);
    return;
  }
  static const char *const paths[] = {NULL, "/v1/chat/completions", "/v1/completions",
                                      "/completion"};
  const struct opts *o = c->run->o;
  write_request(c, "POST",
                o->api == API_OLLAMA ? (o->chat ? "/api/chat" : "/api/generate") : paths[o->api],
                body);
  free(body);
}

static void on_connect(uv_connect_t *req, int status) {
  struct client *c = req->data;
  if (status < 0) {
    if (!c->is_probe)
      record_error(c->run, uv_strerror(status));
    client_close(c);
    return;
  }
  c->connected = true;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (c->is_probe)
    write_request(c, "GET", c->run->o->api == API_LLAMACPP ? "/health" : "/", NULL);
  else
    client_send_next(c);
}

static struct client *client_new(struct run *r, bool probe, int requests) {
  struct client *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->run = r;
  c->is_probe = probe;
  c->requests_left = requests;
  llhttp_settings_init(&c->settings);
  c->settings.on_body = on_body;
  c->settings.on_headers_complete = on_headers_complete;
  c->settings.on_message_complete = on_message_complete;
  llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
  c->parser.data = c;
  uv_tcp_init(r->loop, &c->tcp);
  c->tcp.data = c;
  uv_tcp_nodelay(&c->tcp, 1);
  struct sockaddr_in addr;
  if (uv_ip4_addr(r->o->host, r->o->port, &addr) != 0) {
    free(c);
    return NULL;
  }
  c->connect_req.data = c;
  if (!probe)
    r->active++;
  if (uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&addr, on_connect) < 0)
    client_close(c);
  return c;
}

static void on_probe_timer(uv_timer_t *t) {
  struct run *r = t->data;
  if (r->probe == NULL) {
    r->probe = client_new(r, true, 0);
    return;
  }
  if (r->probe->connected && !r->probe->busy)
    write_request(r->probe, "GET", r->o->api == API_LLAMACPP ? "/health" : "/", NULL);
}

/* Rate sweep: starts one request now and arms the timer for the next
 * arrival, an exponential gap away (Poisson arrivals at res->rate/s). */
static void on_arrival(uv_timer_t *t) {
  struct run *r = t->data;
  if (r->arrivals_left <= 0)
    return;
  r->arrivals_left--;
  client_new(r, false, 1);
  if (r->arrivals_left > 0) {
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 17;
    r->rng ^= r->rng << 5;
    double u = ((double)r->rng + 1.0) / 4294967297.0;
    double gap_ms = -log(u) / r->res->rate * 1000.0;
    uv_timer_start(&r->arrival_timer, on_arrival, (uint64_t)(gap_ms + 0.5), 0);
  }
}

static void level_maybe_done(struct run *r) {
  if (r->active > 0 || r->arrivals_left > 0)
    return;
  r->res->wall_s = (double)(now_ns() - r->t0_ns) / 1e9;
  r->probing = false;
  uv_timer_stop(&r->probe_timer);
  if (r->probe)
    client_close(r->probe);
}

/* ------------------------------------------------------------ reporting */

static double mean_of(const struct samples *s) {
  if (s->n == 0)
    return NAN;
  double t = 0;
  for (size_t i = 0; i < s->n; i++)
    t += s->v[i];
  return t / (double)s->n;
}

static double std_of(const struct samples *s) {
  if (s->n == 0)
    return NAN;
  double m = mean_of(s), t = 0;
  for (size_t i = 0; i < s->n; i++)
    t += (s->v[i] - m) * (s->v[i] - m);
  return sqrt(t / (double)s->n);
}

/* Sample sets of one load point, in ms. */
struct stats {
  struct samples ttft, tpot, itl, e2el;
  int good;
  int64_t in_tokens, out_tokens;
};

static void stats_of(const struct opts *o, struct level_result *l, struct stats *st) {
  memset(st, 0, sizeof(*st));
  for (size_t i = 0; i < l->n_recs; i++) {
    struct reqrec *q = &l->recs[i];
    if (!isnan(q->ttft_ms))
      samples_add(&st->ttft, q->ttft_ms);
    samples_add(&st->e2el, q->e2e_ms);
    double tpot = NAN;
    if (q->out_tokens > 1 && !isnan(q->ttft_ms)) {
      tpot = (q->e2e_ms - q->ttft_ms) / (q->out_tokens - 1);
      samples_add(&st->tpot, tpot);
    }
    for (int k = 0; k < q->n_itl; k++)
      samples_add(&st->itl, q->itl_ms[k]);
    bool good = !isnan(q->ttft_ms);
    if (o->slo_ttft_ms > 0 && (isnan(q->ttft_ms) || q->ttft_ms > o->slo_ttft_ms))
      good = false;
    if (o->slo_itl_ms > 0 && !isnan(tpot) && tpot > o->slo_itl_ms)
      good = false;
    st->good += good;
    st->in_tokens += q->in_tokens;
    st->out_tokens += q->out_tokens;
  }
}

static void stats_free(struct stats *st) {
  free(st->ttft.v);
  free(st->tpot.v);
  free(st->itl.v);
  free(st->e2el.v);
}

static json_t *num_or_null(double v) {
  return isnan(v) ? json_null() : json_real(v);
}

/* One load point in the layout of vLLM's benchmark_serving results
 * (seconds for the per-request arrays, ms for the summaries), plus this
 * tool's own fields (concurrency, gaps, probe, RSS). */
static json_t *level_json(const struct opts *o, struct level_result *l) {
  struct stats st;
  stats_of(o, l, &st);
  json_t *v = json_object();
  char date[32];
  time_t now = time(NULL);
  strftime(date, sizeof(date), "%Y%m%d-%H%M%S", localtime(&now));
  json_object_set_new(v, "date", json_string(date));
  json_object_set_new(v, "backend", json_string(o->label ? o->label : api_names[o->api]));
  json_object_set_new(v, "api", json_string(api_names[o->api]));
  json_object_set_new(v, "model_id", json_string(o->model));
  json_object_set_new(v, "tokenizer_id", json_string(o->model));
  json_object_set_new(v, "num_prompts", json_integer((json_int_t)(l->n_recs + (size_t)l->errors)));
  json_object_set_new(v, "request_rate", l->rate > 0 ? json_real(l->rate) : json_string("inf"));
  json_object_set_new(v, "burstiness", json_real(1.0));
  json_object_set_new(v, "max_concurrency",
                      l->rate > 0 ? json_null() : json_integer(l->concurrency));
  json_object_set_new(v, "duration", json_real(l->wall_s));
  json_object_set_new(v, "completed", json_integer((json_int_t)l->n_recs));
  json_object_set_new(v, "total_input_tokens", json_integer(st.in_tokens));
  json_object_set_new(v, "total_output_tokens", json_integer(st.out_tokens));
  json_object_set_new(v, "request_throughput", json_real((double)l->n_recs / l->wall_s));
  json_object_set_new(v, "request_goodput", json_real((double)st.good / l->wall_s));
  json_object_set_new(v, "output_throughput", json_real((double)st.out_tokens / l->wall_s));
  json_object_set_new(v, "total_token_throughput",
                      json_real((double)(st.in_tokens + st.out_tokens) / l->wall_s));
  json_t *in = json_array(), *out = json_array(), *ttfts = json_array(), *itls = json_array();
  for (size_t i = 0; i < l->n_recs; i++) {
    struct reqrec *q = &l->recs[i];
    json_array_append_new(in, json_integer(q->in_tokens));
    json_array_append_new(out, json_integer(q->out_tokens));
    json_array_append_new(ttfts, num_or_null(q->ttft_ms / 1e3));
    json_t *g = json_array();
    for (int k = 0; k < q->n_itl; k++)
      json_array_append_new(g, json_real(q->itl_ms[k] / 1e3));
    json_array_append_new(itls, g);
  }
  json_object_set_new(v, "input_lens", in);
  json_object_set_new(v, "output_lens", out);
  json_object_set_new(v, "ttfts", ttfts);
  json_object_set_new(v, "itls", itls);
  json_t *errs = json_array();
  if (l->first_error[0])
    json_array_append_new(errs, json_string(l->first_error));
  json_object_set_new(v, "errors", errs);
  json_object_set_new(v, "failed", json_integer(l->errors));
  struct {
    const char *name;
    struct samples *s;
  } sets[] = {{"ttft", &st.ttft}, {"tpot", &st.tpot}, {"itl", &st.itl}, {"e2el", &st.e2el}};
  for (size_t k = 0; k < 4; k++) {
    char key[64];
    snprintf(key, sizeof(key), "mean_%s_ms", sets[k].name);
    json_object_set_new(v, key, num_or_null(mean_of(sets[k].s)));
    snprintf(key, sizeof(key), "median_%s_ms", sets[k].name);
    json_object_set_new(v, key, num_or_null(percentile(sets[k].s, 50)));
    snprintf(key, sizeof(key), "std_%s_ms", sets[k].name);
    json_object_set_new(v, key, num_or_null(std_of(sets[k].s)));
    snprintf(key, sizeof(key), "p90_%s_ms", sets[k].name);
    json_object_set_new(v, key, num_or_null(percentile(sets[k].s, 90)));
    snprintf(key, sizeof(key), "p99_%s_ms", sets[k].name);
    json_object_set_new(v, key, num_or_null(percentile(sets[k].s, 99)));
  }
  /* This tool's own fields. */
  json_object_set_new(v, "concurrency", json_integer(l->concurrency));
  json_object_set_new(v, "turn2_ttft_ms_p50", num_or_null(percentile(&l->ttft[1], 50)));
  json_object_set_new(v, "probe_ms_p50", num_or_null(percentile(&l->probe, 50)));
  json_object_set_new(v, "probe_ms_p99", num_or_null(percentile(&l->probe, 99)));
  if (l->rss_kb_after >= 0)
    json_object_set_new(v, "server_rss_kb", json_integer(l->rss_kb_after));
  if (o->slo_ttft_ms > 0)
    json_object_set_new(v, "slo_ttft_ms", json_real(o->slo_ttft_ms));
  if (o->slo_itl_ms > 0)
    json_object_set_new(v, "slo_itl_ms", json_real(o->slo_itl_ms));
  stats_free(&st);
  return v;
}

static void print_header(const struct opts *o) {
  printf("%6s %5s %4s | %7s %7s %7s %7s | %6s %6s %6s %6s | %6s %6s %6s %6s | %7s %7s | %6s %8s "
         "%8s %7s | %7s %7s %7s\n",
         o->n_rates ? "rate" : "conc", "reqs", "err", "ttft", "ttft50", "ttft90", "ttft99", "itl",
         "itl50", "itl90", "itl99", "tpot", "tpot50", "tpot90", "tpot99", "e2e50", "e2e99", "req/s",
         "out_tok/s", "tot_tok/s", "good/s", o->turns > 1 ? "turn2_50" : "-", "probe50", "rss_MiB");
  printf("%6s %5s %4s | %7s %7s %7s %7s | %6s %6s %6s %6s | %6s %6s %6s %6s | %7s %7s | %6s %8s "
         "%8s %7s | %7s %7s %7s\n",
         "", "", "", "mean ms", "", "", "", "mean", "", "", "", "mean", "", "", "", "ms", "", "",
         "", "", "", "", "ms", "");
}

static void print_level(const struct opts *o, struct level_result *l) {
  struct stats st;
  stats_of(o, l, &st);
  char load[16];
  if (l->rate > 0)
    snprintf(load, sizeof(load), "%.2f", l->rate);
  else
    snprintf(load, sizeof(load), "%d", l->concurrency);
  printf("%6s %5zu %4d | %7.1f %7.1f %7.1f %7.1f | %6.1f %6.1f %6.1f %6.1f | %6.1f %6.1f %6.1f "
         "%6.1f | %7.0f %7.0f | %6.2f %8.1f %8.1f %7.2f | %7.1f %7.2f %7.1f\n",
         load, l->n_recs, l->errors, mean_of(&st.ttft), percentile(&st.ttft, 50),
         percentile(&st.ttft, 90), percentile(&st.ttft, 99), mean_of(&st.itl),
         percentile(&st.itl, 50), percentile(&st.itl, 90), percentile(&st.itl, 99),
         mean_of(&st.tpot), percentile(&st.tpot, 50), percentile(&st.tpot, 90),
         percentile(&st.tpot, 99), percentile(&st.e2el, 50), percentile(&st.e2el, 99),
         (double)l->n_recs / l->wall_s, (double)st.out_tokens / l->wall_s,
         (double)(st.in_tokens + st.out_tokens) / l->wall_s, (double)st.good / l->wall_s,
         percentile(&l->ttft[1], 50), percentile(&l->probe, 50),
         l->rss_kb_after >= 0 ? l->rss_kb_after / 1024.0 : NAN);
  if (l->first_error[0])
    printf("      first error: %s\n", l->first_error);
  fflush(stdout);
  stats_free(&st);
}

/* The plot's data: one line per load point, a blank line between runs. */
static void write_dat(const char *dat, json_t *levels) {
  FILE *f = fopen(dat, "w");
  if (f == NULL)
    return;
  fprintf(f, "# run load out_tok_s ttft_p50_ms itl_p50_ms itl_p99_ms tpot_mean_ms req_s "
             "ttft_p99_ms\n");
  size_t i;
  json_t *l;
  long long prev_run = -1;
  json_array_foreach(levels, i, l) {
    long long run = (long long)json_integer_value(json_object_get(l, "run"));
    if (prev_run >= 0 && run != prev_run)
      fprintf(f, "\n\n");
    prev_run = run;
    json_t *rate = json_object_get(l, "request_rate");
    double load = json_is_number(rate)
                      ? json_number_value(rate)
                      : (double)json_integer_value(json_object_get(l, "concurrency"));
    fprintf(f, "%lld %g %.3f %.3f %.3f %.3f %.3f %.4f %.3f\n", run, load,
            json_number_value(json_object_get(l, "output_throughput")),
            json_number_value(json_object_get(l, "median_ttft_ms")),
            json_number_value(json_object_get(l, "median_itl_ms")),
            json_number_value(json_object_get(l, "p99_itl_ms")),
            json_number_value(json_object_get(l, "mean_tpot_ms")),
            json_number_value(json_object_get(l, "request_throughput")),
            json_number_value(json_object_get(l, "p99_ttft_ms")));
  }
  fclose(f);
}

static void write_plot(const char *png, json_t *levels, bool rates) {
  char dat[4096], gp[4096];
  snprintf(dat, sizeof(dat), "%s.dat", png);
  snprintf(gp, sizeof(gp), "%s.gp", png);
  write_dat(dat, levels);
  FILE *f = fopen(gp, "w");
  if (f == NULL)
    return;
  fprintf(f,
          "set terminal png size 1000,420 noenhanced\nset output '%s'\nset multiplot layout 1,2\n"
          "set logscale x 2\nset xlabel '%s'\nset grid\n"
          "set title 'output tokens/s'\n"
          "plot '%s' using 2:3 with linespoints title 'tokens/s'\n"
          "set title 'latency (ms)'\nset logscale y\n"
          "plot '%s' using 2:4 with linespoints title 'TTFT p50', "
          "'' using 2:5 with linespoints title 'ITL p50', "
          "'' using 2:6 with linespoints title 'ITL p99', "
          "'' using 2:7 with linespoints title 'TPOT mean'\nunset multiplot\n",
          png, rates ? "request rate (req/s)" : "concurrent streams", dat, dat);
  fclose(f);
  char cmd[8400];
  snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>/dev/null", gp);
  if (system(cmd) == 0)
    printf("plot: %s\n", png);
  else
    printf("plot: gnuplot not available; data in %s\n", dat);
}

static char **read_lines(const char *path, int *n) {
  FILE *f = fopen(path, "r");
  if (!f)
    return NULL;
  char **v = NULL;
  int cap = 0;
  *n = 0;
  char *line = NULL;
  size_t lcap = 0;
  ssize_t len;
  while ((len = getline(&line, &lcap, f)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
      line[--len] = 0;
    if (len == 0)
      continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 64;
      v = realloc(v, (size_t)cap * sizeof(*v));
    }
    v[(*n)++] = strdup(line);
  }
  free(line);
  fclose(f);
  return v;
}

static int parse_rates(const char *s, double *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v <= 0)
      return -1;
    out[n++] = v;
    if (*end && *end != ',')
      return -1;
    s = *end == ',' ? end + 1 : end;
  }
  return n;
}

/* ------------------------------------------------------------ main */

static int parse_list(const char *s, int *out, int max) {
  int n = 0;
  while (*s && n < max) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v <= 0)
      return -1;
    out[n++] = (int)v;
    s = *end == ',' ? end + 1 : end;
    if (*end && *end != ',')
      return -1;
  }
  return n;
}

static int parse_url(const char *url, struct opts *o) {
  const char *p = url;
  if (strncmp(p, "http://", 7) == 0)
    p += 7;
  else if (strstr(p, "://"))
    return -1; /* only plain HTTP */
  const char *colon = strchr(p, ':');
  const char *slash = strchr(p, '/');
  size_t hl = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
  if (hl == 0 || hl >= sizeof(o->host))
    return -1;
  memcpy(o->host, p, hl);
  o->host[hl] = '\0';
  if (strcmp(o->host, "localhost") == 0)
    strcpy(o->host, "127.0.0.1");
  o->port = colon ? atoi(colon + 1) : 80;
  return o->port > 0 ? 0 : -1;
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --model NAME [--url http://127.0.0.1:11434]\n"
          "  [--api ollama|openai-chat|openai-completions|llamacpp] [--endpoint chat|generate]\n"
          "  [--levels 1,4,8,16 | --rates 0.5,1,2 --num-prompts N] [--requests N]\n"
          "  [--dataset random|shared-prefix|file] [--prefix-words N] [--prompts FILE]\n"
          "  [--prompt-words N | --prompt-mix a,b,c] [--num-predict N] [--ignore-eos]\n"
          "  [--system TEXT] [--turns 1|2] [--temperature T] [--slo-ttft-ms MS] [--slo-itl-ms MS]\n"
          "  [--server-pid PID] [--repeat K] [--label NAME] [--json FILE] [--plot FILE.png]\n"
          "  [--dat FILE] [--no-probe]\n");
}

int main(int argc, char **argv) {
  struct opts o = {.port = 11434,
                   .chat = true,
                   .requests = 2,
                   .num_predict = 64,
                   .turns = 1,
                   .temperature = 0.8,
                   .repeat = 1,
                   .probe = true,
                   .num_prompts = 32,
                   .prefix_words = -1};
  const char *prompts_path = NULL;
  g_opts = &o;
  strcpy(o.host, "127.0.0.1");
  o.levels[0] = 1;
  o.n_levels = 1;
  o.mix[0] = 128;
  o.n_mix = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v && (i++, 1))
    if (ARG("--url")) {
      if (parse_url(v, &o) != 0) {
        fprintf(stderr, "loadgen: bad --url %s (http://host:port)\n", v);
        return 2;
      }
    } else if (ARG("--model"))
      o.model = v;
    else if (ARG("--endpoint"))
      o.chat = strcmp(v, "generate") != 0;
    else if (ARG("--api")) {
      int k = -1;
      for (int j = 0; j < 4; j++)
        if (!strcmp(v, api_names[j]))
          k = j;
      if (k < 0) {
        fprintf(stderr, "loadgen: bad --api %s\n", v);
        return 2;
      }
      o.api = (enum api)k;
    } else if (ARG("--rates")) {
      if ((o.n_rates = parse_rates(v, o.rates, MAX_LEVELS)) <= 0) {
        fprintf(stderr, "loadgen: bad --rates\n");
        return 2;
      }
    } else if (ARG("--num-prompts"))
      o.num_prompts = atoi(v);
    else if (ARG("--dataset")) {
      if (!strcmp(v, "random"))
        o.dataset = DS_RANDOM;
      else if (!strcmp(v, "shared-prefix"))
        o.dataset = DS_SHARED_PREFIX;
      else if (!strcmp(v, "file"))
        o.dataset = DS_FILE;
      else {
        fprintf(stderr, "loadgen: bad --dataset %s\n", v);
        return 2;
      }
    } else if (ARG("--prefix-words"))
      o.prefix_words = atoi(v);
    else if (ARG("--prompts"))
      prompts_path = v;
    else if (strcmp(a, "--ignore-eos") == 0)
      o.ignore_eos = true;
    else if (strcmp(a, "--no-probe") == 0)
      o.probe = false;
    else if (ARG("--slo-ttft-ms"))
      o.slo_ttft_ms = atof(v);
    else if (ARG("--slo-itl-ms"))
      o.slo_itl_ms = atof(v);
    else if (ARG("--label"))
      o.label = v;
    else if (ARG("--dat"))
      o.dat_path = v;
    else if (ARG("--levels")) {
      if ((o.n_levels = parse_list(v, o.levels, MAX_LEVELS)) <= 0) {
        fprintf(stderr, "loadgen: bad --levels\n");
        return 2;
      }
    } else if (ARG("--requests"))
      o.requests = atoi(v);
    else if (ARG("--prompt-words")) {
      o.mix[0] = atoi(v);
      o.n_mix = 1;
    } else if (ARG("--prompt-mix")) {
      if ((o.n_mix = parse_list(v, o.mix, MAX_MIX)) <= 0) {
        fprintf(stderr, "loadgen: bad --prompt-mix\n");
        return 2;
      }
    } else if (ARG("--num-predict"))
      o.num_predict = atoi(v);
    else if (ARG("--system"))
      o.system = v;
    else if (ARG("--turns"))
      o.turns = atoi(v) == 2 ? 2 : 1;
    else if (ARG("--temperature"))
      o.temperature = atof(v);
    else if (ARG("--server-pid"))
      o.server_pid = atoi(v);
    else if (ARG("--repeat"))
      o.repeat = atoi(v) > 0 ? atoi(v) : 1;
    else if (ARG("--json"))
      o.json_path = v;
    else if (ARG("--plot"))
      o.plot_path = v;
    else {
      usage();
      return 2;
    }
#undef ARG
  }
  if (o.model == NULL || o.requests <= 0) {
    usage();
    return 2;
  }
  if (o.turns > 1 && (!o.chat || o.api != API_OLLAMA)) {
    fprintf(stderr, "loadgen: --turns 2 needs --api ollama --endpoint chat\n");
    return 2;
  }
  if (o.dataset == DS_FILE) {
    if (!prompts_path || !(o.file_prompts = read_lines(prompts_path, &o.n_file_prompts)) ||
        o.n_file_prompts == 0) {
      fprintf(stderr, "loadgen: --dataset file needs --prompts FILE with one prompt a line\n");
      return 2;
    }
  }
  if (o.prefix_words < 0)
    o.prefix_words = o.mix[0] * 3 / 4;
  if (o.n_rates && o.num_prompts <= 0) {
    fprintf(stderr, "loadgen: --num-prompts must be positive\n");
    return 2;
  }

  uv_loop_t *loop = uv_default_loop();
  json_t *all = json_array();
  int total_errors = 0;
  /* Every request of the whole run gets a prompt of its own (also across
   * levels, repeats and separate runs against the same server), so that no
   * level is helped by a prompt cached from an earlier one. */
  int next_seq = (int)(uv_hrtime() / 1000 % 1000000) * 1000;
  static const char *const ds_names[] = {"random", "shared-prefix", "file"};
  printf("loadgen: %s:%d model=%s api=%s%s dataset=%s %s num_predict=%d turns=%d\n", o.host, o.port,
         o.model, api_names[o.api], o.api == API_OLLAMA ? (o.chat ? " (chat)" : " (generate)") : "",
         ds_names[o.dataset], o.n_rates ? "poisson arrivals" : "closed loop", o.num_predict,
         o.turns);
  if (o.n_rates)
    printf("%d requests per rate\n", o.num_prompts);
  else
    printf("%d requests per connection\n", o.requests);
  for (int rep = 0; rep < o.repeat; rep++) {
    if (o.repeat > 1)
      printf("run %d of %d\n", rep + 1, o.repeat);
    print_header(&o);
    int n_points = o.n_rates ? o.n_rates : o.n_levels;
    for (int li = 0; li < n_points; li++) {
      struct level_result res = {.concurrency = o.n_rates ? 0 : o.levels[li],
                                 .rate = o.n_rates ? o.rates[li] : 0,
                                 .rss_kb_after = -1};
      struct run r = {.o = &o,
                      .loop = loop,
                      .res = &res,
                      .probing = o.probe,
                      .request_seq = next_seq,
                      .rng = 2463534242u + (uint32_t)li};
      r.t0_ns = now_ns();
      uv_timer_init(loop, &r.probe_timer);
      r.probe_timer.data = &r;
      uv_timer_init(loop, &r.arrival_timer);
      r.arrival_timer.data = &r;
      if (o.probe)
        uv_timer_start(&r.probe_timer, on_probe_timer, 0, 50);
      if (o.n_rates) {
        r.arrivals_left = o.num_prompts;
        uv_timer_start(&r.arrival_timer, on_arrival, 0, 0);
      } else {
        for (int k = 0; k < o.levels[li]; k++)
          client_new(&r, false, o.requests);
      }
      uv_run(loop, UV_RUN_DEFAULT);
      uv_close((uv_handle_t *)&r.probe_timer, NULL);
      uv_close((uv_handle_t *)&r.arrival_timer, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
      next_seq = r.request_seq + 1;
      res.rss_kb_after = read_rss_kb(o.server_pid);
      print_level(&o, &res);
      total_errors += res.errors;
      json_t *lj = level_json(&o, &res);
      json_object_set_new(lj, "run", json_integer(rep + 1));
      json_array_append_new(all, lj);
      for (int t = 0; t < 2; t++)
        free(res.ttft[t].v);
      free(res.gap.v);
      free(res.probe.v);
      for (size_t k = 0; k < res.n_recs; k++)
        free(res.recs[k].itl_ms);
      free(res.recs);
    }
  }
  if (o.json_path) {
    if (json_dump_file(all, o.json_path, JSON_INDENT(2)) == 0)
      printf("json: %s\n", o.json_path);
  }
  if (o.dat_path)
    write_dat(o.dat_path, all);
  if (o.plot_path)
    write_plot(o.plot_path, all, o.n_rates > 0);
  json_decref(all);
  uv_loop_close(loop);
  return total_errors ? 1 : 0;
}
