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
 * connections each running --requests requests back to back; with
 * --ramp-ms the connections start evenly over that time instead of all at
 * once, so the level is measured in its steady state and not in the
 * burst of its first prompts) or a request
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
 *                [--requests N (per connection, default 2)] [--ramp-ms MS]
 *                [--num-prompts N]
 *                [--dataset random|shared-prefix|file] [--prefix-words N]
 *                [--prompts FILE] [--prompt-words 128 | --prompt-mix 64,128,256]
 *                [--num-predict 64] [--ignore-eos] [--system TEXT] [--turns 1|2]
 *                [--temperature T] [--slo-ttft-ms MS] [--slo-itl-ms MS]
 *                [--server-pid PID] [--repeat K] [--label NAME]
 *                [--json FILE] [--plot FILE.png] [--dat FILE] [--no-probe] */
#include "loadgen.h"

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
          "  [--levels 1,4,8,16 | --rates 0.5,1,2 --num-prompts N] [--requests N] [--ramp-ms MS]\n"
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
        if (!strcmp(v, lg_api_names[j]))
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
    else if (ARG("--ramp-ms")) {
      if ((o.ramp_ms = atoi(v)) < 0) {
        fprintf(stderr, "loadgen: bad --ramp-ms\n");
        return 2;
      }
    } else if (ARG("--prompt-words")) {
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
         o.model, lg_api_names[o.api],
         o.api == API_OLLAMA ? (o.chat ? " (chat)" : " (generate)") : "", ds_names[o.dataset],
         o.n_rates ? "poisson arrivals" : "closed loop", o.num_predict, o.turns);
  if (o.n_rates)
    printf("%d requests per rate\n", o.num_prompts);
  else
    printf("%d requests per connection\n", o.requests);
  for (int rep = 0; rep < o.repeat; rep++) {
    if (o.repeat > 1)
      printf("run %d of %d\n", rep + 1, o.repeat);
    lg_print_header(&o);
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
      r.t0_ns = lg_now_ns();
      uv_timer_init(loop, &r.probe_timer);
      r.probe_timer.data = &r;
      uv_timer_init(loop, &r.arrival_timer);
      r.arrival_timer.data = &r;
      if (o.probe)
        uv_timer_start(&r.probe_timer, lg_on_probe_timer, 0, 50);
      if (o.n_rates) {
        r.arrivals_left = o.num_prompts;
        uv_timer_start(&r.arrival_timer, lg_on_arrival, 0, 0);
      } else if (o.ramp_ms > 0 && o.levels[li] > 1) {
        r.ramp_left = o.levels[li];
        r.ramp_gap_ms = (uint64_t)o.ramp_ms / (uint64_t)o.levels[li];
        uv_timer_start(&r.arrival_timer, lg_on_ramp, 0, 0);
      } else {
        for (int k = 0; k < o.levels[li]; k++)
          lg_client_new(&r, false, o.requests);
      }
      uv_run(loop, UV_RUN_DEFAULT);
      uv_close((uv_handle_t *)&r.probe_timer, NULL);
      uv_close((uv_handle_t *)&r.arrival_timer, NULL);
      uv_run(loop, UV_RUN_DEFAULT);
      next_seq = r.request_seq + 1;
      res.rss_kb_after = lg_read_rss_kb(o.server_pid);
      lg_print_level(&o, &res);
      total_errors += res.errors;
      json_t *lj = lg_level_json(&o, &res);
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
    lg_write_dat(o.dat_path, all);
  if (o.plot_path)
    lg_write_plot(o.plot_path, all, o.n_rates > 0);
  json_decref(all);
  uv_loop_close(loop);
  return total_errors ? 1 : 0;
}
