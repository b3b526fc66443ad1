/* loadgen.h — what the parts of bench/loadgen share: the options, the
 * per-load-point results and their samples, the run and its connections
 * (loadgen_client.c drives them on the libuv loop; loadgen_report.c turns a finished load
 * point into the table row, JSON, gnuplot data and plot; loadgen.c
 * parses the command line and runs the sweep). One thread. */
#ifndef CLLAMA_BENCH_LOADGEN_H
#define CLLAMA_BENCH_LOADGEN_H

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
extern const char *const lg_api_names[4]; /* by enum api */
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
  int ramp_ms; /* closed loop: connections start evenly over this many ms */
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
  /* closed loop with --ramp-ms: connections still to start, and the gap */
  int ramp_left;
  uint64_t ramp_gap_ms;
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

/* ---- loadgen_client.c: connections, requests, prompts, the load point's timers */

uint64_t lg_now_ns(void);
/* The VmRSS of pid in KiB, or -1. */
long lg_read_rss_kb(int pid);
/* A new connection of run r (a probe, or one that runs `requests` back to
 * back); it counts itself in r->active until it closes. */
struct client *lg_client_new(struct run *r, bool probe, int requests);
/* Every 50 ms: a GET / on the probe connection. */
void lg_on_probe_timer(uv_timer_t *t);
/* Rate sweep: one arrival now, the next an exponential gap away. */
void lg_on_arrival(uv_timer_t *t);
void lg_on_ramp(uv_timer_t *t);

/* ---- loadgen_report.c: samples and a finished load point */

/* Appends x (ms) to s; a sample is dropped when memory runs out. */
void lg_samples_add(struct samples *s, double x);

void lg_print_header(const struct opts *o);
void lg_print_level(const struct opts *o, struct level_result *l);
/* New: one object in the layout of vLLM's benchmark_serving results. */
json_t *lg_level_json(const struct opts *o, struct level_result *l);
void lg_write_dat(const char *dat, json_t *levels);
void lg_write_plot(const char *png, json_t *levels, bool rates);

#endif
