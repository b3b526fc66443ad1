/* pull.c — `cllama pull [--insecure] NAME` and `cllama push [--insecure]
 * NAME`: ask the running server to pull or push a model (POST /api/pull or
 * /api/push on OLLAMA_HOST, like Ollama's CLI) and draw its NDJSON
 * progress: one bar per layer with size, rate and time left, and the status
 * lines in between. On a terminal the block is redrawn in place;
 * otherwise each line is printed once, when it is final. */
#include "cllama/cli.h"
#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_LINES 64

struct line {
  char status[96];
  char digest[80]; /* "" for a plain status line */
  long long total, completed;
  double rate;   /* bytes/s, smoothed */
  double t_last; /* when completed last changed */
  long long c_last;
  bool printed; /* non-tty: already written */
};

struct ui {
  struct line lines[MAX_LINES];
  int n;
  int drawn; /* lines on screen from the last redraw */
  bool tty;
  double last_draw;
  char buf[1 << 16]; /* an incomplete NDJSON line */
  size_t len;
  char error[1024];
  bool success;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void human_bytes(double b, char *out, size_t size) {
  const char *u[] = {"B", "KB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4)
    b /= 1000, i++;
  if (i == 0)
    snprintf(out, size, "%.0f %s", b, u[i]);
  else
    snprintf(out, size, b < 10 ? "%.1f %s" : "%.0f %s", b, u[i]);
}

static void human_time(double s, char *out, size_t size) {
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(out, size, "%ldh%ldm", t / 3600, t / 60 % 60);
  else if (t >= 60)
    snprintf(out, size, "%ldm%lds", t / 60, t % 60);
  else
    snprintf(out, size, "%lds", t);
}

static void format_line(const struct line *l, char *out, size_t size) {
  if (!l->digest[0] || l->total <= 0) {
    snprintf(out, size, "%s", l->status);
    return;
  }
  int pct = (int)(l->completed * 100 / l->total);
  char bar[3 * 25 + 1];
  int width = 25, full = pct * width / 100;
  size_t at = 0;
  for (int i = 0; i < width; i++) {
    const char *c = i < full ? "\u2588" : " "; /* full block */
    size_t n = strlen(c);
    memcpy(bar + at, c, n);
    at += n;
  }
  bar[at] = '\0';
  char done[32], total[32], rate[40] = "", left[40] = "";
  human_bytes((double)l->completed, done, sizeof(done));
  human_bytes((double)l->total, total, sizeof(total));
  if (l->completed < l->total && l->rate > 0) {
    char r[32];
    human_bytes(l->rate, r, sizeof(r));
    snprintf(rate, sizeof(rate), "%s/s", r);
    human_time((double)(l->total - l->completed) / l->rate, left, sizeof(left));
  }
  if (l->completed >= l->total)
    snprintf(out, size, "%s: %3d%% \u2595%s\u258f %s", l->status, pct, bar, total);
  else
    snprintf(out, size, "%s: %3d%% \u2595%s\u258f %s/%s %s %s", l->status, pct, bar, done, total,
             rate, left);
}

static void draw(struct ui *ui, bool force) {
  double t = now_s();
  if (!ui->tty) {
    for (int i = 0; i < ui->n; i++) {
      struct line *l = &ui->lines[i];
      bool final = !l->digest[0] || (l->total > 0 && l->completed >= l->total) || force;
      if (!l->printed && final) {
        char s[512];
        format_line(l, s, sizeof(s));
        printf("%s\n", s);
        l->printed = true;
      }
    }
    fflush(stdout);
    return;
  }
  if (!force && t - ui->last_draw < 0.1)
    return;
  ui->last_draw = t;
  if (ui->drawn > 0)
    printf("\r\033[%dA", ui->drawn);
  for (int i = 0; i < ui->n; i++) {
    char s[512];
    format_line(&ui->lines[i], s, sizeof(s));
    printf("\r\033[K%s\n", s);
  }
  ui->drawn = ui->n;
  fflush(stdout);
}

static void on_event(struct ui *ui, json_t *o) {
  const char *err = json_string_value(json_object_get(o, "error"));
  if (err) {
    snprintf(ui->error, sizeof(ui->error), "%s", err);
    return;
  }
  const char *status = json_string_value(json_object_get(o, "status"));
  const char *digest = json_string_value(json_object_get(o, "digest"));
  if (status == NULL)
    return;
  if (strcmp(status, "success") == 0)
    ui->success = true;
  struct line *l = NULL;
  if (digest && *digest) {
    for (int i = 0; i < ui->n && !l; i++)
      if (strcmp(ui->lines[i].digest, digest) == 0)
        l = &ui->lines[i];
  } else if (ui->n > 0 && !ui->lines[ui->n - 1].digest[0] &&
             strcmp(ui->lines[ui->n - 1].status, status) == 0) {
    return; /* the same status again */
  }
  if (l == NULL) {
    if (ui->n == MAX_LINES) { /* keep the newest lines */
      memmove(ui->lines, ui->lines + 1, sizeof(ui->lines[0]) * (MAX_LINES - 1));
      ui->n--;
      if (ui->drawn > 0)
        ui->drawn--;
    }
    l = &ui->lines[ui->n++];
    memset(l, 0, sizeof(*l));
    snprintf(l->status, sizeof(l->status), "%s", status);
    if (digest)
      snprintf(l->digest, sizeof(l->digest), "%s", digest);
    l->t_last = now_s();
  }
  long long total = json_integer_value(json_object_get(o, "total"));
  long long completed = json_integer_value(json_object_get(o, "completed"));
  if (total > 0)
    l->total = total;
  double t = now_s();
  if (completed > l->completed) {
    double dt = t - l->t_last;
    if (dt > 0.05) {
      double r = (double)(completed - l->c_last) / dt;
      l->rate = l->rate > 0 ? 0.7 * l->rate + 0.3 * r : r;
      l->t_last = t;
      l->c_last = completed;
    }
    l->completed = completed;
  }
}

static size_t on_body(char *data, size_t size, size_t n, void *arg) {
  struct ui *ui = arg;
  size_t len = size * n;
  for (size_t i = 0; i < len; i++) {
    char ch = data[i];
    if (ch != '\n') {
      if (ui->len + 1 < sizeof(ui->buf))
        ui->buf[ui->len++] = ch;
      continue;
    }
    ui->buf[ui->len] = '\0';
    json_t *o = json_loads(ui->buf, 0, NULL);
    ui->len = 0;
    if (o) {
      on_event(ui, o);
      json_decref(o);
    }
  }
  draw(ui, false);
  return len;
}

static void usage(FILE *out) {
  fprintf(out, "Usage: cllama pull [--insecure] MODEL\n\n"
               "Pull a model from a registry through the running server (OLLAMA_HOST).\n\n"
               "  --insecure   use plain http for the registry\n");
}

int cll_cli_pull(int argc, char **argv) {
  const char *name = NULL;
  bool insecure = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--insecure") == 0) {
      insecure = true;
    } else if (argv[i][0] == '-' || name) {
      usage(stderr);
      return 2;
    } else {
      name = argv[i];
    }
  }
  if (name == NULL) {
    usage(stderr);
    return 2;
  }
  return cll__cli_pull_model(name, insecure) == 0 ? 0 : 1;
}

static int progress_request(const char *path, const char *name, bool insecure);

int cll__cli_pull_model(const char *name, bool insecure) {
  return progress_request("/api/pull", name, insecure);
}

static void push_usage(FILE *out) {
  fprintf(out, "Usage: cllama push [--insecure] MODEL\n\n"
               "Push a model to the registry its name points to, through the running server\n"
               "(OLLAMA_HOST). Copy it to that name first: cllama cp mymodel host/ns/mymodel\n\n"
               "  --insecure   use plain http for the registry\n");
}

int cll_cli_push(int argc, char **argv) {
  const char *name = NULL;
  bool insecure = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      push_usage(stdout);
      return 0;
    } else if (strcmp(argv[i], "--insecure") == 0) {
      insecure = true;
    } else if (argv[i][0] == '-' || name) {
      push_usage(stderr);
      return 2;
    } else {
      name = argv[i];
    }
  }
  if (name == NULL) {
    push_usage(stderr);
    return 2;
  }
  return progress_request("/api/push", name, insecure) == 0 ? 0 : 1;
}

static int progress_request(const char *path, const char *name, bool insecure) {
  json_t *req = json_pack("{s:s,s:b,s:b}", "model", name, "insecure", insecure, "stream", 1);
  char *body = json_dumps(req, JSON_COMPACT);
  json_decref(req);

  static struct ui ui;
  memset(&ui, 0, sizeof(ui));
  ui.tty = isatty(STDOUT_FILENO);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
  h = curl_slist_append(h, "Accept: application/x-ndjson");
  char err[1024];
  CURL *c = cll__cli_easy(path, h, &h, err, sizeof(err));
  if (c == NULL) {
    fprintf(stderr, "Error: %s\n", err);
    curl_global_cleanup();
    free(body);
    return 1;
  }
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &ui);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(c);
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(h);
  curl_easy_cleanup(c);
  free(body);
  if (ui.len > 0) { /* a final object without a newline (a non-streamed error) */
    ui.buf[ui.len] = '\0';
    json_t *o = json_loads(ui.buf, 0, NULL);
    if (o)
      on_event(&ui, o);
    json_decref(o);
  }
  draw(&ui, true);
  curl_global_cleanup();
  if (rc != CURLE_OK) {
    fprintf(stderr,
            "Error: could not connect to the server at %s: %s (is `cllama serve` running?)\n",
            cll__cli_config(err, sizeof(err))->base_url, curl_easy_strerror(rc));
    return 1;
  }
  if (ui.error[0]) {
    fprintf(stderr, "Error: %s\n", ui.error);
    return 1;
  }
  if (!ui.success) {
    fprintf(stderr, "Error: the %s ended without success (HTTP %ld)\n", path + 5, status);
    return 1;
  }
  return 0;
}
