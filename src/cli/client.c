/* client.c — `cllama run`, `show`, `ps`, `rm`, `cp`, `create`: HTTP clients
 * of the running server (OLLAMA_HOST), as Ollama's CLI is. Blocking calls
 * with libcurl; streamed answers are printed as their NDJSON lines arrive. */
#include "cllama/api.h"
#include "cllama/cli.h"
#include "cllama/config.h"
#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- http */

const cll_client_config *cll__cli_config(char *errbuf, size_t errsize) {
  static cll_client_config cc; /* main thread; read once */
  static cll_err err;
  static int state; /* 0 unread, 1 valid, -1 invalid */
  if (state == 0)
    state = cll_config_client_from_env(&cc, &err) == 0 ? 1 : -1;
  if (state > 0)
    return &cc;
  snprintf(errbuf, errsize, "%s", err.msg);
  return NULL;
}

CURL *cll__cli_easy(const char *path, struct curl_slist *hd, struct curl_slist **hd_out,
                    char *errbuf, size_t errsize) {
  const cll_client_config *cc = cll__cli_config(errbuf, errsize);
  *hd_out = NULL;
  CURL *h = cc ? curl_easy_init() : NULL;
  if (h == NULL) {
    if (cc)
      snprintf(errbuf, errsize, "cannot start a request (out of memory)");
    curl_slist_free_all(hd);
    return NULL;
  }
  char url[1024], auth[600];
  if (snprintf(url, sizeof(url), "%s%s", cc->base_url, path) >= (int)sizeof(url)) {
    snprintf(errbuf, errsize, "request path too long");
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    return NULL;
  }
  curl_easy_setopt(h, CURLOPT_URL, url); /* curl copies it */
  if (cc->ca_file[0])
    curl_easy_setopt(h, CURLOPT_CAINFO, cc->ca_file);
  /* A server with CLLAMA_API_KEYS wants the key (api_key fits: 512 bytes). */
  if (cc->api_key[0] &&
      snprintf(auth, sizeof(auth), "Authorization: Bearer %s", cc->api_key) < (int)sizeof(auth))
    hd = curl_slist_append(hd, auth);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  *hd_out = hd;
  return h;
}

struct call {
  char *body; /* whole answer (non-stream), or the unfinished line */
  size_t len;
  void (*on_line)(void *ud, json_t *obj); /* NDJSON streaming, or NULL */
  void *ud;
  char error[1024];
};

static void feed_lines(struct call *c) {
  char *start = c->body, *nl;
  while ((nl = memchr(start, '\n', c->len - (size_t)(start - c->body)))) {
    json_t *o = json_loadb(start, (size_t)(nl - start), 0, NULL);
    if (o) {
      const char *e = json_string_value(json_object_get(o, "error"));
      if (e)
        snprintf(c->error, sizeof(c->error), "%s", e);
      else
        c->on_line(c->ud, o);
      json_decref(o);
    }
    start = nl + 1;
  }
  size_t rest = c->len - (size_t)(start - c->body);
  memmove(c->body, start, rest);
  c->len = rest;
}

volatile sig_atomic_t cll__cli_cancel;

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un) {
  return cll__cli_cancel ? 1 : 0;
}

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
  struct call *c = ud;
  size_t k = sz * n;
  if (cll__cli_cancel)
    return 0;
  char *b = realloc(c->body, c->len + k + 1);
  if (!b)
    return 0;
  c->body = b;
  memcpy(c->body + c->len, p, k);
  c->len += k;
  c->body[c->len] = 0;
  if (c->on_line)
    feed_lines(c);
  return k;
}

/* Does one request; returns the HTTP status (0 when the server cannot be
 * reached, with a message printed). *reply gets a non-streamed JSON body. */
static long request(const char *method, const char *path, json_t *body, json_t **reply,
                    void (*on_line)(void *, json_t *), void *ud, char *errbuf, size_t errsize) {
  struct curl_slist *hd = NULL;
  CURL *h = cll__cli_easy(path, curl_slist_append(NULL, "Content-Type: application/json"), &hd,
                          errbuf, errsize);
  if (h == NULL)
    return 0;
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  struct call c = {0};
  c.on_line = on_line;
  c.ud = ud;
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (text)
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hd);
  curl_easy_cleanup(h);
  free(text);
  if (rc != CURLE_OK && cll__cli_cancel) {
    snprintf(errbuf, errsize, "cancelled");
    free(c.body);
    return CLL__CLI_CANCELLED;
  }
  if (rc != CURLE_OK) {
    snprintf(errbuf, errsize,
             "could not connect to the server at %s: %s (is `cllama serve` "
             "running?)",
             cll__cli_config(errbuf, errsize)->base_url, curl_easy_strerror(rc));
    free(c.body);
    return 0;
  }
  json_t *obj = c.len ? json_loadb(c.body, c.len, 0, NULL) : NULL;
  if (status >= 400 || c.error[0]) {
    const char *e = obj ? json_string_value(json_object_get(obj, "error")) : NULL;
    snprintf(errbuf, errsize, "%s", c.error[0] ? c.error : e ? e : c.body ? c.body : "error");
    json_decref(obj);
    free(c.body);
    return status >= 400 ? status : 500;
  }
  if (reply)
    *reply = obj;
  else
    json_decref(obj);
  free(c.body);
  return status;
}

long cll__cli_request(const char *method, const char *path, json_t *body, json_t **reply,
                      void (*on_line)(void *, json_t *), void *ud, char *errbuf, size_t errsize) {
  return request(method, path, body, reply, on_line, ud, errbuf, errsize);
}

/* ---------------------------------------------------------------- helpers */

static bool is_help(const char *a) {
  return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* Prints usage to stdout (asked for: exit 0) or stderr (misuse: exit 2). */
static int usage_rc(bool asked, const char *text) {
  fputs(text, asked ? stdout : stderr);
  return asked ? 0 : 2;
}

static void frac_trim(char *buf, size_t size, long long whole, long long frac, int digits,
                      const char *unit) {
  char f[24] = "";
  if (frac > 0) {
    snprintf(f, sizeof(f), ".%0*lld", digits, frac);
    for (size_t i = strlen(f) - 1; i > 0 && f[i] == '0'; i--)
      f[i] = 0;
  }
  snprintf(buf, size, "%lld%s%s", whole, f, unit);
}

void cll__cli_go_duration(long long ns, char *buf, size_t size) {
  const char *sign = ns < 0 ? "-" : "";
  unsigned long long u = ns < 0 ? (unsigned long long)(-ns) : (unsigned long long)ns;
  char tmp[64];
  if (u == 0) {
    snprintf(buf, size, "0s");
  } else if (u < 1000ULL) {
    snprintf(buf, size, "%s%lluns", sign, u);
  } else if (u < 1000000ULL) {
    frac_trim(tmp, sizeof(tmp), (long long)(u / 1000), (long long)(u % 1000), 3, "\u00b5s");
    snprintf(buf, size, "%s%s", sign, tmp);
  } else if (u < 1000000000ULL) {
    frac_trim(tmp, sizeof(tmp), (long long)(u / 1000000), (long long)(u % 1000000), 6, "ms");
    snprintf(buf, size, "%s%s", sign, tmp);
  } else {
    unsigned long long s = u / 1000000000ULL, h = s / 3600, m = s / 60 % 60;
    frac_trim(tmp, sizeof(tmp), (long long)(s % 60), (long long)(u % 1000000000ULL), 9, "s");
    if (h)
      snprintf(buf, size, "%s%lluh%llum%s", sign, h, m, tmp);
    else if (m)
      snprintf(buf, size, "%s%llum%s", sign, m, tmp);
    else
      snprintf(buf, size, "%s%s", sign, tmp);
  }
}

/* docker/go-units HumanDuration, which Ollama's format.HumanTime uses. */
static void human_duration(double secs, char *buf, size_t size) {
  long s = (long)secs;
  if (s < 1) {
    snprintf(buf, size, "Less than a second");
    return;
  }
  if (s == 1) {
    snprintf(buf, size, "1 second");
    return;
  }
  if (s < 60) {
    snprintf(buf, size, "%ld seconds", s);
    return;
  }
  long m = s / 60;
  if (m == 1) {
    snprintf(buf, size, "About a minute");
    return;
  }
  if (m < 60) {
    snprintf(buf, size, "%ld minutes", m);
    return;
  }
  long h = (long)(secs / 3600 + 0.5);
  if (h == 1)
    snprintf(buf, size, "About an hour");
  else if (h < 48)
    snprintf(buf, size, "%ld hours", h);
  else if (h < 24 * 7 * 2)
    snprintf(buf, size, "%ld days", h / 24);
  else if (h < 24 * 30 * 2)
    snprintf(buf, size, "%ld weeks", h / 24 / 7);
  else if (h < 24 * 365 * 2)
    snprintf(buf, size, "%ld months", h / 24 / 30);
  else
    snprintf(buf, size, "%ld years", (long)(secs / 3600) / 24 / 365);
}

/* Parses RFC 3339 ("2026-12-04T16:26:05.76Z", "...+01:00") to Unix seconds. */
static bool parse_rfc3339(const char *s, double *out) {
  struct tm tm = {0};
  const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (!p)
    return false;
  double frac = 0;
  if (*p == '.') {
    char *e;
    frac = strtod(p, &e);
    p = e;
  }
  long off = 0;
  if (*p == '+' || *p == '-') {
    int hh = 0, mm = 0;
    if (sscanf(p + 1, "%d:%d", &hh, &mm) < 1)
      return false;
    off = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
  } else if (*p != 'Z' && *p != 'z') {
    return false;
  }
  *out = (double)timegm(&tm) - (double)off + frac;
  return true;
}

void cll__cli_human_time(const char *rfc3339, const char *zero_value, char *buf, size_t size) {
  double t;
  if (!rfc3339 || !*rfc3339 || !parse_rfc3339(rfc3339, &t) || t <= 0) {
    snprintf(buf, size, "%s", zero_value);
    return;
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  double delta = (double)now.tv_sec + now.tv_nsec / 1e9 - t; /* > 0: in the past */
  char d[64];
  if (delta / 3600 / 24 / 365 < -20) {
    snprintf(buf, size, "Forever");
  } else if (delta < 0) {
    human_duration(-delta, d, sizeof(d));
    snprintf(buf, size, "%s from now", d);
  } else {
    human_duration(delta, d, sizeof(d));
    snprintf(buf, size, "%s ago", d);
  }
}

/* ---------------------------------------------------------------- show */

/* A "  Title" block of `cllama show`: each non-empty line of text indented,
 * at most max_lines of them (0 = all); nothing when text is empty. */
static void print_block(FILE *out, const char *title, const char *text, int max_lines) {
  if (text == NULL || *text == '\0')
    return;
  fprintf(out, "\n  %s\n", title);
  char *copy = strdup(text), *save = NULL;
  int n = 0;
  for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l && (max_lines == 0 || n < max_lines);
       l = strtok_r(NULL, "\n", &save), n++)
    fprintf(out, "    %s\n", l);
  free(copy);
}

void cll__cli_print_show_info(FILE *out, json_t *r) {
  json_t *info = json_object_get(r, "model_info"), *d = json_object_get(r, "details");
  const char *arch = json_string_value(json_object_get(info, "general.architecture"));
  char k[128];
  snprintf(k, sizeof(k), "%s.context_length", arch ? arch : "");
  json_int_t ctx = json_integer_value(json_object_get(info, k));
  snprintf(k, sizeof(k), "%s.embedding_length", arch ? arch : "");
  json_int_t emb = json_integer_value(json_object_get(info, k));
  const char *ps = json_string_value(json_object_get(d, "parameter_size"));
  const char *ql = json_string_value(json_object_get(d, "quantization_level"));
  fprintf(out, "  Model\n");
  fprintf(out, "    %-20s %s\n", "architecture", arch ? arch : "");
  fprintf(out, "    %-20s %s\n", "parameters", ps ? ps : "");
  fprintf(out, "    %-20s %lld\n", "context length", (long long)ctx);
  fprintf(out, "    %-20s %lld\n", "embedding length", (long long)emb);
  fprintf(out, "    %-20s %s\n\n", "quantization", ql ? ql : "");
  fprintf(out, "  Capabilities\n");
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(r, "capabilities"), i, c)
      fprintf(out, "    %s\n", json_string_value(c));
  print_block(out, "Parameters", json_string_value(json_object_get(r, "parameters")), 0);
  print_block(out, "System", json_string_value(json_object_get(r, "system")), 0);
  print_block(out, "License", json_string_value(json_object_get(r, "license")), 2);
  fprintf(out, "\n");
}

static const char show_usage[] =
    "Usage: cllama show MODEL [flags]\n\nShow information for a model.\n\nFlags:\n"
    "      --license      Show license of a model\n"
    "      --modelfile    Show Modelfile of a model\n"
    "      --parameters   Show parameters of a model\n"
    "      --system       Show system message of a model\n"
    "      --template     Show template of a model\n"
    "  -v, --verbose      Show detailed model information\n"
    "  -h, --help         help for show\n";

int cll_cli_show(int argc, char **argv) {
  const char *model = NULL, *field = NULL;
  bool verbose = false;
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i]))
      return usage_rc(true, show_usage);
    if (!strcmp(argv[i], "--modelfile"))
      field = "modelfile";
    else if (!strcmp(argv[i], "--parameters"))
      field = "parameters";
    else if (!strcmp(argv[i], "--template"))
      field = "template";
    else if (!strcmp(argv[i], "--system"))
      field = "system";
    else if (!strcmp(argv[i], "--license"))
      field = "license";
    else if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v"))
      verbose = true;
    else if (argv[i][0] != '-' && !model)
      model = argv[i];
    else
      return usage_rc(false, show_usage);
  }
  if (!model)
    return usage_rc(false, show_usage);
  char err[1024];
  json_t *req = json_pack("{s:s,s:b}", "model", model, "verbose", verbose), *r = NULL;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  long st = request("POST", "/api/show", req, &r, NULL, NULL, err, sizeof(err));
  json_decref(req);
  curl_global_cleanup();
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    return 1;
  }
  if (field) {
    const char *s = json_string_value(json_object_get(r, field));
    /* The Modelfile ends with its own newline; the others do not. */
    size_t n = s ? strlen(s) : 0;
    printf("%s%s", s ? s : "", n && s[n - 1] == '\n' ? "" : "\n");
    json_decref(r);
    return 0;
  }
  cll__cli_print_show_info(stdout, r);
  if (verbose) {
    printf("  Metadata\n");
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(r, "model_info"), k, v) {
      char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
      printf("    %-40s %s\n", k, t ? t : "");
      free(t);
    }
    printf("\n");
  }
  json_decref(r);
  return 0;
}

/* ---------------------------------------------------------------- ps, stop */

static void human_size(double b, char *out, size_t n) {
  const char *u[] = {"B", "KB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4)
    b /= 1000, i++;
  snprintf(out, n, i == 0 ? "%.0f %s" : "%.1f %s", b, u[i]);
}

int cll_cli_ps(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    return usage_rc(is_help(argv[i]), "Usage: cllama ps\n\nList running models (asks the "
                                      "server at OLLAMA_HOST).\n");
  char err[1024];
  json_t *r = NULL;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  long st = request("GET", "/api/ps", NULL, &r, NULL, NULL, err, sizeof(err));
  curl_global_cleanup();
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    return 1;
  }
  printf("%-30s %-14s %-10s %-10s %-8s %s\n", "NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT",
         "UNTIL");
  size_t i;
  json_t *m;
  json_array_foreach(json_object_get(r, "models"), i, m) {
    char size[32], until[64];
    human_size((double)json_integer_value(json_object_get(m, "size")), size, sizeof(size));
    const char *dg = json_string_value(json_object_get(m, "digest"));
    cll__cli_human_time(json_string_value(json_object_get(m, "expires_at")), "Never", until,
                        sizeof(until));
    printf("%-30s %-14.12s %-10s %-10s %-8lld %s\n", json_string_value(json_object_get(m, "name")),
           dg ? dg : "", size, "100% CPU",
           (long long)json_integer_value(json_object_get(m, "context_length")), until);
  }
  json_decref(r);
  return 0;
}

int cll_cli_stop(int argc, char **argv) {
  static const char u[] = "Usage: cllama stop MODEL\n\nStop a running model (unload it now).\n";
  if (argc != 2 || is_help(argv[1]) || argv[1][0] == '-')
    return usage_rc(argc == 2 && is_help(argv[1]), u);
  char err[1024];
  json_t *req = json_pack("{s:s,s:i}", "model", argv[1], "keep_alive", 0);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  long st = request("POST", "/api/generate", req, NULL, NULL, NULL, err, sizeof(err));
  curl_global_cleanup();
  json_decref(req);
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    return 1;
  }
  return 0;
}

/* ---------------------------------------------------------------- rm, cp */

int cll_cli_rm(int argc, char **argv) {
  static const char u[] = "Usage: cllama rm MODEL [MODEL...]\n\nRemove models.\n";
  if (argc < 2)
    return usage_rc(false, u);
  for (int i = 1; i < argc; i++)
    if (argv[i][0] == '-')
      return usage_rc(is_help(argv[i]), u);
  int rc = 0;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  for (int i = 1; i < argc; i++) {
    char err[1024];
    json_t *req = json_pack("{s:s}", "model", argv[i]);
    long st = request("DELETE", "/api/delete", req, NULL, NULL, NULL, err, sizeof(err));
    json_decref(req);
    if (st != 200) {
      fprintf(stderr, "Error: %s\n", err);
      rc = 1;
    } else {
      printf("deleted '%s'\n", argv[i]);
    }
  }
  curl_global_cleanup();
  return rc;
}

int cll_cli_cp(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (is_help(argv[i]))
      return usage_rc(true, "Usage: cllama cp SOURCE DESTINATION\n\nCopy a model.\n");
  if (argc != 3) {
    fprintf(stderr, "Usage: cllama cp SOURCE DESTINATION\n");
    return 2;
  }
  char err[1024];
  json_t *req = json_pack("{s:s,s:s}", "source", argv[1], "destination", argv[2]);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  long st = request("POST", "/api/copy", req, NULL, NULL, NULL, err, sizeof(err));
  curl_global_cleanup();
  json_decref(req);
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    return 1;
  }
  printf("copied '%s' to '%s'\n", argv[1], argv[2]);
  return 0;
}

/* ---------------------------------------------------------------- create */

static void on_create_line(void *ud, json_t *o) {
  const char *s = json_string_value(json_object_get(o, "status"));
  if (s)
    printf("%s\n", s);
}

int cll_cli_create(int argc, char **argv) {
  const char *name = NULL, *file = "Modelfile", *quant = NULL;
  static const char u[] =
      "Usage: cllama create NAME [-f Modelfile] [-q TYPE]\n\nCreate a model from a "
      "Modelfile.\n\nFlags:\n  -f, --file string       Name of the Modelfile (default "
      "\"Modelfile\")\n  -q, --quantize string   Quantize the model to this level (e.g. "
      "q4_K_M)\n  -h, --help              help for create\n";
  for (int i = 1; i < argc; i++) {
    if (is_help(argv[i]))
      return usage_rc(true, u);
    if ((!strcmp(argv[i], "-f") || !strcmp(argv[i], "--file")) && i + 1 < argc)
      file = argv[++i];
    else if ((!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quantize")) && i + 1 < argc)
      quant = argv[++i];
    else if (argv[i][0] != '-' && !name)
      name = argv[i];
    else {
      fprintf(stderr, "Usage: cllama create NAME [-f Modelfile] [-q TYPE]\n");
      return 2;
    }
  }
  if (!name) {
    fprintf(stderr, "Usage: cllama create NAME [-f Modelfile] [-q TYPE]\n");
    return 2;
  }
  FILE *f = fopen(file, "rb");
  if (!f) {
    fprintf(stderr, "Error: cannot open %s\n", file);
    return 1;
  }
  size_t cap = 1 << 16, len = 0, k;
  char *text = malloc(cap);
  while ((k = fread(text + len, 1, cap - len - 1, f)) > 0) {
    len += k;
    if (len + 1 == cap)
      text = realloc(text, cap *= 2);
  }
  text[len] = 0;
  fclose(f);
  char *fcopy = strdup(file);
  json_t *req = NULL;
  cll_err e = {0};
  const cll_client_config *cc = cll__cli_config(e.msg, sizeof(e.msg));
  if (cc == NULL) {
    free(fcopy);
    free(text);
    fprintf(stderr, "Error: %s\n", e.msg);
    return 1;
  }
  /* "~" in FROM is the client configuration's HOME (not expanded when unset) */
  int rc = cll_modelfile_parse(text, dirname(fcopy), cc->home[0] ? cc->home : NULL, &req, &e);
  free(fcopy);
  free(text);
  if (rc != 0) {
    fprintf(stderr, "Error: %s: %s\n", file, e.msg);
    return 1;
  }
  json_object_set_new(req, "model", json_string(name));
  json_object_set_new(req, "stream", json_true());
  if (quant)
    json_object_set_new(req, "quantize", json_string(quant));
  char err[1024];
  curl_global_init(CURL_GLOBAL_DEFAULT);
  long st = request("POST", "/api/create", req, NULL, on_create_line, NULL, err, sizeof(err));
  curl_global_cleanup();
  json_decref(req);
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    return 1;
  }
  return 0;
}
