/* loadgen_client.c — loadgen's connections (bench/loadgen.c): prompts, request
 * bodies for each API, one llhttp parser per connection, NDJSON/SSE lines,
 * the probe and the Poisson arrivals of a rate sweep. */
#include "loadgen.h"

const char *const lg_api_names[4] = {"ollama", "openai-chat", "openai-completions", "llamacpp"};

uint64_t lg_now_ns(void) {
  return uv_hrtime();
}

long lg_read_rss_kb(int pid) {
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
static void make_prompt(const struct opts *o, char *out, size_t cap, int n_words, int seq) {
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
struct client *lg_client_new(struct run *r, bool probe, int requests);
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
  make_prompt(o, prompt, cap, n_words, seq);
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
      make_prompt(o, prompt, pcap, n_words, seq);
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
    make_prompt(o, prompt, pcap, n_words, seq);
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
  c->t_send_ns = lg_now_ns();
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
  uint64_t t = lg_now_ns();
  if (text && text[0]) {
    if (c->t_first_ns == 0) {
      c->t_first_ns = t;
    } else {
      lg_samples_add(&c->run->res->gap, (double)(t - c->t_last_ns) / 1e6);
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
  uint64_t t = lg_now_ns();
  c->busy = false;
  c->served++;
  if (c->is_probe) {
    if (r->probing)
      lg_samples_add(&r->res->probe, (double)(t - c->t_send_ns) / 1e6);
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
      lg_samples_add(&r->res->ttft[c->turn], (double)(c->t_first_ns - c->t_send_ns) / 1e6);
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
      lg_client_new(c->run, false, c->requests_left);
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

struct client *lg_client_new(struct run *r, bool probe, int requests) {
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

void lg_on_probe_timer(uv_timer_t *t) {
  struct run *r = t->data;
  if (r->probe == NULL) {
    r->probe = lg_client_new(r, true, 0);
    return;
  }
  if (r->probe->connected && !r->probe->busy)
    write_request(r->probe, "GET", r->o->api == API_LLAMACPP ? "/health" : "/", NULL);
}

/* Rate sweep: starts one request now and arms the timer for the next
 * arrival, an exponential gap away (Poisson arrivals at res->rate/s). */
void lg_on_arrival(uv_timer_t *t) {
  struct run *r = t->data;
  if (r->arrivals_left <= 0)
    return;
  r->arrivals_left--;
  lg_client_new(r, false, 1);
  if (r->arrivals_left > 0) {
    r->rng ^= r->rng << 13;
    r->rng ^= r->rng >> 17;
    r->rng ^= r->rng << 5;
    double u = ((double)r->rng + 1.0) / 4294967297.0;
    double gap_ms = -log(u) / r->res->rate * 1000.0;
    uv_timer_start(&r->arrival_timer, lg_on_arrival, (uint64_t)(gap_ms + 0.5), 0);
  }
}

/* Closed loop with --ramp-ms: starts the next connection, and arms the
 * timer for the one after. */
void lg_on_ramp(uv_timer_t *t) {
  struct run *r = t->data;
  if (r->ramp_left <= 0)
    return;
  r->ramp_left--;
  lg_client_new(r, false, r->o->requests);
  if (r->ramp_left > 0)
    uv_timer_start(&r->arrival_timer, lg_on_ramp, r->ramp_gap_ms, 0);
}

static void level_maybe_done(struct run *r) {
  if (r->active > 0 || r->arrivals_left > 0 || r->ramp_left > 0)
    return;
  r->res->wall_s = (double)(lg_now_ns() - r->t0_ns) / 1e9;
  r->probing = false;
  uv_timer_stop(&r->probe_timer);
  if (r->probe)
    client_close(r->probe);
}
