/* loadgen_report.c — loadgen's results (bench/loadgen.c): percentiles and means of
 * a load point, the printed table, the JSON object per load point, the
 * gnuplot data and the PNG plot. */
#include "loadgen.h"

void lg_samples_add(struct samples *s, double x) {
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
      lg_samples_add(&st->ttft, q->ttft_ms);
    lg_samples_add(&st->e2el, q->e2e_ms);
    double tpot = NAN;
    if (q->out_tokens > 1 && !isnan(q->ttft_ms)) {
      tpot = (q->e2e_ms - q->ttft_ms) / (q->out_tokens - 1);
      lg_samples_add(&st->tpot, tpot);
    }
    for (int k = 0; k < q->n_itl; k++)
      lg_samples_add(&st->itl, q->itl_ms[k]);
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
json_t *lg_level_json(const struct opts *o, struct level_result *l) {
  struct stats st;
  stats_of(o, l, &st);
  json_t *v = json_object();
  char date[32];
  time_t now = time(NULL);
  strftime(date, sizeof(date), "%Y%m%d-%H%M%S", localtime(&now));
  json_object_set_new(v, "date", json_string(date));
  json_object_set_new(v, "backend", json_string(o->label ? o->label : lg_api_names[o->api]));
  json_object_set_new(v, "api", json_string(lg_api_names[o->api]));
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

void lg_print_header(const struct opts *o) {
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

void lg_print_level(const struct opts *o, struct level_result *l) {
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
void lg_write_dat(const char *dat, json_t *levels) {
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

void lg_write_plot(const char *png, json_t *levels, bool rates) {
  char dat[4096], gp[4096];
  snprintf(dat, sizeof(dat), "%s.dat", png);
  snprintf(gp, sizeof(gp), "%s.gp", png);
  lg_write_dat(dat, levels);
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
