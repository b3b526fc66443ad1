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
 * Usage: loadgen [--url http://127.0.0.1:11434] --model NAME
 *                [--endpoint chat|generate] [--levels 1,4,8,16]
 *                [--requests N (per connection, default 2)]
 *                [--prompt-words 128 | --prompt-mix 64,128,256]
 *                [--num-predict 64] [--system TEXT] [--turns 1|2]
 *                [--temperature T] [--server-pid PID] [--repeat K]
 *                [--json FILE] [--plot FILE.png] */
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

#define MAX_LEVELS 16
#define MAX_MIX 8

struct opts {
  char host[256];
  int port;
  const char *model;
  bool chat;
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

struct level_result {
  int concurrency;
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
  int turn;           /* 0 or 1 within a conversation */
  char *request_buf;  /* the request being written (owned) */
  char *line;         /* partial NDJSON line */
  size_t line_len, line_cap;
  char *reply;        /* assistant text of the current turn (for --turns 2) */
  size_t reply_len, reply_cap;
  char *first_prompt; /* the first turn's prompt (for --turns 2) */
  uint64_t t_send_ns, t_first_ns, t_last_ns;
  int events;
  int status;
  bool saw_final;
  bool failed;
  int64_t eval_count, prompt_eval_count;
};

static uint64_t now_ns(void) { return uv_hrtime(); }

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
    "the",    "little", "cat",    "sat",   "on",     "a",      "warm",   "mat",
    "while",  "rain",   "fell",   "over",  "quiet",  "town",   "and",    "every",
    "child",  "looked", "out",    "of",    "window", "to",     "see",    "bright",
    "green",  "trees",  "moving", "in",    "wind",   "near",   "old",    "river",
    "where",  "boats",  "slowly", "came",  "home",   "after",  "long",   "day",
    "people", "walked", "along",  "road",  "talking", "about", "their",  "work",
    "friends", "family", "food",  "music", "books",  "stories", "dreams", "plans",
    "for",    "next",   "summer", "when",  "sun",    "would",  "shine",  "again"};

static void make_prompt(char *out, size_t cap, int n_words, int seq) {
  uint32_t s = 2463534242u ^ (uint32_t)(seq * 2654435761u);
  size_t len = (size_t)snprintf(out, cap, "Request %d:", seq);
  for (int i = 0; i < n_words && len + 16 < cap; i++) {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    len += (size_t)snprintf(out + len, cap - len, " %s", words[s % (sizeof(words) / sizeof(words[0]))]);
  }
}

/* ------------------------------------------------------------ requests */

static void client_send_next(struct client *c);
static void client_close(struct client *c);
static void level_maybe_done(struct run *r);

static char *build_body(struct client *c, int seq) {
  const struct opts *o = c->run->o;
  int n_words = o->mix[seq % o->n_mix];
  char *prompt = malloc((size_t)n_words * 12 + 64);
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
      make_prompt(prompt, (size_t)n_words * 12 + 64, n_words, seq);
      free(c->first_prompt);
      c->first_prompt = strdup(prompt);
      json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content", prompt));
    } else {
      json_array_append_new(msgs,
                            json_pack("{s:s,s:s}", "role", "user", "content", c->first_prompt));
      json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "assistant", "content",
                                            c->reply ? c->reply : ""));
      json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", "user", "content",
                                            "Tell me more about that."));
    }
    json_object_set_new(req, "messages", msgs);
  } else {
    make_prompt(prompt, (size_t)n_words * 12 + 64, n_words, seq);
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

/* One NDJSON line of a generation response. */
static void on_line(struct client *c, const char *line, size_t len) {
  json_error_t jerr;
  json_t *j = json_loadb(line, len, 0, &jerr);
  if (j == NULL) {
    record_error(c->run, "bad JSON line in stream");
    c->failed = true;
    return;
  }
  json_t *err = json_object_get(j, "error");
  if (err) {
    record_error(c->run, json_is_string(err) ? json_string_value(err) : "error");
    c->failed = true;
    json_decref(j);
    return;
  }
  const char *text = NULL;
  if (c->run->o->chat) {
    json_t *m = json_object_get(j, "message");
    text = json_string_value(json_object_get(m, "content"));
  } else {
    text = json_string_value(json_object_get(j, "response"));
  }
  uint64_t t = now_ns();
  if (text && text[0]) {
    if (c->t_first_ns == 0)
      c->t_first_ns = t;
    else
      samples_add(&c->run->res->gap, (double)(t - c->t_last_ns) / 1e6);
    c->t_last_ns = t;
    c->events++;
    append(&c->reply, &c->reply_len, &c->reply_cap, text, strlen(text));
  }
  if (json_is_true(json_object_get(j, "done"))) {
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
    if (c->busy && !c->is_probe)
      record_error(c->run, n == UV_EOF ? "connection closed mid-response" : uv_strerror((int)n));
    c->busy = false;
    client_close(c);
    return;
  }
  if (n == 0)
    return;
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
  write_request(c, "POST", c->run->o->chat ? "/api/chat" : "/api/generate", body);
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
    write_request(c, "GET", "/", NULL);
  else
    client_send_next(c);
}

static struct client *client_new(struct run *r, bool probe) {
  struct client *c = calloc(1, sizeof(*c));
  if (c == NULL)
    return NULL;
  c->run = r;
  c->is_probe = probe;
  c->requests_left = r->o->requests;
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
    r->probe = client_new(r, true);
    return;
  }
  if (r->probe->connected && !r->probe->busy)
    write_request(r->probe, "GET", "/", NULL);
}

static void level_maybe_done(struct run *r) {
  if (r->active > 0)
    return;
  r->res->wall_s = (double)(now_ns() - r->t0_ns) / 1e9;
  r->probing = false;
  uv_timer_stop(&r->probe_timer);
  if (r->probe)
    client_close(r->probe);
}

/* ------------------------------------------------------------ reporting */

static json_t *level_json(struct level_result *l) {
  json_t *o = json_object();
  json_object_set_new(o, "concurrency", json_integer(l->concurrency));
  json_object_set_new(o, "requests", json_integer(l->requests_done));
  json_object_set_new(o, "errors", json_integer(l->errors));
  json_object_set_new(o, "wall_s", json_real(l->wall_s));
  json_object_set_new(o, "generated_tokens", json_integer(l->gen_tokens));
  json_object_set_new(o, "generated_tok_per_s", json_real((double)l->gen_tokens / l->wall_s));
  json_object_set_new(o, "prompt_tok_per_s", json_real((double)l->prompt_tokens / l->wall_s));
#define P(name, s, p)                                                                      \
  do {                                                                                     \
    double v = percentile(s, p);                                                           \
    json_object_set_new(o, name, isnan(v) ? json_null() : json_real(v));                   \
  } while (0)
  P("ttft_ms_p50", &l->ttft[0], 50);
  P("ttft_ms_p90", &l->ttft[0], 90);
  P("ttft_ms_p99", &l->ttft[0], 99);
  P("turn2_ttft_ms_p50", &l->ttft[1], 50);
  P("gap_ms_p50", &l->gap, 50);
  P("gap_ms_p99", &l->gap, 99);
  P("probe_ms_p50", &l->probe, 50);
  P("probe_ms_p99", &l->probe, 99);
#undef P
  if (l->rss_kb_after >= 0)
    json_object_set_new(o, "server_rss_kb", json_integer(l->rss_kb_after));
  if (l->first_error[0])
    json_object_set_new(o, "first_error", json_string(l->first_error));
  return o;
}

static void print_header(const struct opts *o) {
  printf("%5s %5s %4s %8s %8s %8s %8s %8s %8s %9s %9s %8s %8s %9s\n", "conc", "reqs", "err",
         "ttft50", "ttft90", "ttft99", o->turns > 1 ? "turn2_50" : "-", "gap50", "gap99",
         "gen_tok/s", "prm_tok/s", "probe50", "probe99", "rss_MiB");
}

static void print_level(struct level_result *l) {
  printf("%5d %5d %4d %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %9.1f %9.1f %8.2f %8.2f %9.1f\n",
         l->concurrency, l->requests_done, l->errors, percentile(&l->ttft[0], 50),
         percentile(&l->ttft[0], 90), percentile(&l->ttft[0], 99), percentile(&l->ttft[1], 50),
         percentile(&l->gap, 50), percentile(&l->gap, 99), (double)l->gen_tokens / l->wall_s,
         (double)l->prompt_tokens / l->wall_s, percentile(&l->probe, 50),
         percentile(&l->probe, 99), l->rss_kb_after >= 0 ? l->rss_kb_after / 1024.0 : NAN);
  if (l->first_error[0])
    printf("      first error: %s\n", l->first_error);
  fflush(stdout);
}

static void write_plot(const char *png, json_t *levels) {
  char dat[4096], gp[4096];
  snprintf(dat, sizeof(dat), "%s.dat", png);
  snprintf(gp, sizeof(gp), "%s.gp", png);
  FILE *f = fopen(dat, "w");
  if (f == NULL)
    return;
  fprintf(f, "# run conc gen_tok_s ttft_p50_ms gap_p50_ms gap_p99_ms\n");
  size_t i;
  json_t *l;
  long long prev_run = -1;
  json_array_foreach(levels, i, l) {
    long long run = (long long)json_integer_value(json_object_get(l, "run"));
    if (prev_run >= 0 && run != prev_run)
      fprintf(f, "\n"); /* a blank line: gnuplot draws each run as its own line */
    prev_run = run;
    fprintf(f, "%lld %lld %.3f %.3f %.3f %.3f\n",
            (long long)json_integer_value(json_object_get(l, "run")),
            (long long)json_integer_value(json_object_get(l, "concurrency")),
            json_real_value(json_object_get(l, "generated_tok_per_s")),
            json_number_value(json_object_get(l, "ttft_ms_p50")),
            json_number_value(json_object_get(l, "gap_ms_p50")),
            json_number_value(json_object_get(l, "gap_ms_p99")));
  }
  fclose(f);
  f = fopen(gp, "w");
  if (f == NULL)
    return;
  fprintf(f,
          "set terminal png size 1000,420\nset output '%s'\nset multiplot layout 1,2\n"
          "set logscale x 2\nset xlabel 'concurrent streams'\nset grid\n"
          "set title 'aggregate generated tokens/s'\n"
          "plot '%s' using 2:3 with linespoints title 'tokens/s'\n"
          "set title 'latency (ms)'\nset logscale y\n"
          "plot '%s' using 2:4 with linespoints title 'TTFT p50', "
          "'' using 2:5 with linespoints title 'gap p50', "
          "'' using 2:6 with linespoints title 'gap p99'\nunset multiplot\n",
          png, dat, dat);
  fclose(f);
  char cmd[8400];
  snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>/dev/null", gp);
  if (system(cmd) == 0)
    printf("plot: %s\n", png);
  else
    printf("plot: gnuplot not available; data in %s\n", dat);
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
          "usage: loadgen --model NAME [--url http://127.0.0.1:11434] [--endpoint chat|generate]\n"
          "  [--levels 1,4,8,16] [--requests N] [--prompt-words N | --prompt-mix a,b,c]\n"
          "  [--num-predict N] [--system TEXT] [--turns 1|2] [--temperature T]\n"
          "  [--server-pid PID] [--repeat K] [--json FILE] [--plot FILE.png]\n");
}

int main(int argc, char **argv) {
  struct opts o = {.port = 11434, .chat = true, .requests = 2, .num_predict = 64,
                   .turns = 1, .temperature = 0.8, .repeat = 1};
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
  if (o.turns > 1 && !o.chat) {
    fprintf(stderr, "loadgen: --turns 2 needs --endpoint chat\n");
    return 2;
  }

  uv_loop_t *loop = uv_default_loop();
  json_t *all = json_array();
  int total_errors = 0;
  /* Every request of the whole run gets a prompt of its own (also across
   * levels, repeats and separate runs against the same server), so that no
   * level is helped by a prompt cached from an earlier one. */
  int next_seq = (int)(uv_hrtime() / 1000 % 1000000) * 1000;
  printf("loadgen: %s:%d model=%s endpoint=%s requests/connection=%d num_predict=%d turns=%d\n",
         o.host, o.port, o.model, o.chat ? "chat" : "generate", o.requests, o.num_predict,
         o.turns);
  for (int rep = 0; rep < o.repeat; rep++) {
    if (o.repeat > 1)
      printf("run %d of %d\n", rep + 1, o.repeat);
    print_header(&o);
    for (int li = 0; li < o.n_levels; li++) {
      struct level_result res = {.concurrency = o.levels[li], .rss_kb_after = -1};
      struct run r = {.o = &o, .loop = loop, .res = &res, .probing = true,
                      .request_seq = next_seq};
      r.t0_ns = now_ns();
      uv_timer_init(loop, &r.probe_timer);
      r.probe_timer.data = &r;
      uv_timer_start(&r.probe_timer, on_probe_timer, 0, 50);
      for (int k = 0; k < o.levels[li]; k++)
        client_new(&r, false);
      uv_run(loop, UV_RUN_DEFAULT);
      uv_close((uv_handle_t *)&r.probe_timer, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
      next_seq = r.request_seq + 1;
      res.rss_kb_after = read_rss_kb(o.server_pid);
      print_level(&res);
      total_errors += res.errors;
      json_t *lj = level_json(&res);
      json_object_set_new(lj, "run", json_integer(rep + 1));
      json_array_append_new(all, lj);
      for (int t = 0; t < 2; t++)
        free(res.ttft[t].v);
      free(res.gap.v);
      free(res.probe.v);
    }
  }
  if (o.json_path) {
    json_t *doc = json_pack("{s:s,s:s,s:i,s:i,s:i,s:o}", "model", o.model, "endpoint",
                            o.chat ? "chat" : "generate", "num_predict", o.num_predict,
                            "turns", o.turns, "requests_per_connection", o.requests, "levels",
                            json_incref(all));
    if (json_dump_file(doc, o.json_path, JSON_INDENT(2)) == 0)
      printf("json: %s\n", o.json_path);
    json_decref(doc);
  }
  if (o.plot_path)
    write_plot(o.plot_path, all);
  json_decref(all);
  uv_loop_close(loop);
  return total_errors ? 1 : 0;
}
