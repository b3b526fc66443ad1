/* client.c — `cllama run`, `show`, `ps`, `rm`, `cp`, `create`: HTTP clients
 * of the running server (OLLAMA_HOST), as Ollama's CLI is. Blocking calls
 * with libcurl; streamed answers are printed as their NDJSON lines arrive. */
#include "cllama/api.h"
#include "cllama/cli.h"
#include "cllama/config.h"

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

static int base_url(char *buf, size_t size) {
  cll_config cfg;
  cll_err err = {0};
  if (cll_config_from_env(&cfg, &err) != 0) {
    fprintf(stderr, "Error: %s\n", err.msg);
    return -1;
  }
  const char *host = cfg.host;
  if (!strcmp(host, "0.0.0.0") || !*host)
    host = "127.0.0.1";
  else if (!strcmp(host, "::"))
    host = "::1";
  snprintf(buf, size, strchr(host, ':') ? "http://[%s]:%d" : "http://%s:%d", host, cfg.port);
  return 0;
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

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
  struct call *c = ud;
  size_t k = sz * n;
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
  char url[600], base[400];
  if (base_url(base, sizeof(base)) != 0)
    return 0;
  snprintf(url, sizeof(url), "%s%s", base, path);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  struct call c = {0};
  c.on_line = on_line;
  c.ud = ud;
  CURL *h = curl_easy_init();
  struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
  char auth[600];
  const char *key = getenv("OLLAMA_API_KEY"); /* a server with CLLAMA_API_KEYS wants it */
  if (key && *key && snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key) < (int)sizeof(auth))
    hd = curl_slist_append(hd, auth);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (text)
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(hd);
  curl_easy_cleanup(h);
  free(text);
  if (rc != CURLE_OK) {
    snprintf(errbuf, errsize, "could not connect to the server at %s: %s (is `cllama serve` "
                              "running?)",
             base, curl_easy_strerror(rc));
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

/* ---------------------------------------------------------------- run */

struct gen_out {
  char *text; /* assistant answer, for chat history */
  size_t len;
  bool chat;
};

static void on_gen_line(void *ud, json_t *o) {
  struct gen_out *g = ud;
  const char *s = g->chat ? json_string_value(json_object_get(json_object_get(o, "message"),
                                                              "content"))
                          : json_string_value(json_object_get(o, "response"));
  if (!s)
    return;
  fputs(s, stdout);
  fflush(stdout);
  size_t n = strlen(s);
  char *t = realloc(g->text, g->len + n + 1);
  if (!t)
    return;
  g->text = t;
  memcpy(g->text + g->len, s, n + 1);
  g->len += n;
}

/* Reads one user turn: a line, or a """ block spanning lines. NULL at EOF. */
static char *read_turn(void) {
  static char line[1 << 16];
  printf(">>> ");
  fflush(stdout);
  if (!fgets(line, sizeof(line), stdin))
    return NULL;
  line[strcspn(line, "\n")] = 0;
  if (strncmp(line, "\"\"\"", 3) != 0)
    return strdup(line);
  /* Multi-line: until a line ending with """. */
  size_t cap = 1024, len = 0;
  char *buf = malloc(cap);
  const char *part = line + 3;
  for (;;) {
    size_t pl = strlen(part);
    bool end = pl >= 3 && !strcmp(part + pl - 3, "\"\"\"");
    if (end)
      pl -= 3;
    if (len + pl + 2 > cap) {
      cap = (len + pl + 2) * 2;
      buf = realloc(buf, cap);
    }
    if (len)
      buf[len++] = '\n';
    memcpy(buf + len, part, pl);
    len += pl;
    buf[len] = 0;
    if (end)
      return buf;
    printf("... ");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
      return buf;
    line[strcspn(line, "\n")] = 0;
    part = line;
  }
}

static int run_usage(FILE *f) {
  fprintf(f, "Usage: cllama run MODEL [PROMPT]\n\nWith a prompt (or text on stdin), prints the "
             "answer as it streams.\nWithout, starts a chat: /bye ends it, \"\"\" starts and ends "
             "a multi-line message.\n");
  return f == stdout ? 0 : 2;
}

int cll_cli_run(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
    return run_usage(argc < 2 ? stderr : stdout);
  const char *model = argv[1];
  char err[1024];
  curl_global_init(CURL_GLOBAL_DEFAULT);
  /* Load first, so a missing model is reported before any typing. */
  json_t *load = json_pack("{s:s}", "model", model);
  long st = request("POST", "/api/generate", load, NULL, NULL, NULL, err, sizeof(err));
  json_decref(load);
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    curl_global_cleanup();
    return 1;
  }
  char *prompt = NULL;
  if (argc > 2) {
    size_t n = 0;
    for (int i = 2; i < argc; i++)
      n += strlen(argv[i]) + 1;
    prompt = calloc(1, n + 1);
    for (int i = 2; i < argc; i++) {
      if (i > 2)
        strcat(prompt, " ");
      strcat(prompt, argv[i]);
    }
  } else if (!isatty(STDIN_FILENO)) {
    size_t cap = 4096, len = 0, k;
    prompt = malloc(cap);
    while ((k = fread(prompt + len, 1, cap - len - 1, stdin)) > 0) {
      len += k;
      if (len + 1 == cap)
        prompt = realloc(prompt, cap *= 2);
    }
    prompt[len] = 0;
  }
  int rc = 0;
  if (prompt) {
    struct gen_out g = {0};
    json_t *req = json_pack("{s:s,s:s,s:b}", "model", model, "prompt", prompt, "stream", 1);
    st = request("POST", "/api/generate", req, NULL, on_gen_line, &g, err, sizeof(err));
    json_decref(req);
    printf("\n");
    if (st != 200) {
      fprintf(stderr, "Error: %s\n", err);
      rc = 1;
    }
    free(g.text);
    free(prompt);
    curl_global_cleanup();
    return rc;
  }
  json_t *history = json_array();
  for (;;) {
    char *turn = read_turn();
    if (!turn || !strcmp(turn, "/bye")) {
      free(turn);
      break;
    }
    if (!*turn) {
      free(turn);
      continue;
    }
    if (turn[0] == '/' && strncmp(turn, "/?", 2) == 0) {
      printf("Available commands:\n  /bye  Exit\n  \"\"\"   Begin/end a multi-line message\n");
      free(turn);
      continue;
    }
    json_array_append_new(history, json_pack("{s:s,s:s}", "role", "user", "content", turn));
    free(turn);
    struct gen_out g = {0};
    g.chat = true;
    json_t *req = json_pack("{s:s,s:O,s:b}", "model", model, "messages", history, "stream", 1);
    st = request("POST", "/api/chat", req, NULL, on_gen_line, &g, err, sizeof(err));
    json_decref(req);
    printf("\n\n");
    if (st != 200) {
      fprintf(stderr, "Error: %s\n", err);
      json_array_remove(history, json_array_size(history) - 1);
    } else {
      json_array_append_new(history, json_pack("{s:s,s:s}", "role", "assistant", "content",
                                               g.text ? g.text : ""));
    }
    free(g.text);
  }
  json_decref(history);
  curl_global_cleanup();
  return rc;
}

/* ---------------------------------------------------------------- show */

int cll_cli_show(int argc, char **argv) {
  const char *model = NULL, *field = NULL;
  for (int i = 1; i < argc; i++) {
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
    else if (argv[i][0] != '-' && !model)
      model = argv[i];
    else {
      fprintf(stderr, "Usage: cllama show MODEL [--modelfile|--parameters|--template|--system|"
                      "--license]\n");
      return 2;
    }
  }
  if (!model) {
    fprintf(stderr, "Usage: cllama show MODEL [--modelfile|--parameters|--template|--system|"
                    "--license]\n");
    return 2;
  }
  char err[1024];
  json_t *req = json_pack("{s:s}", "model", model), *r = NULL;
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
    printf("%s\n", s ? s : "");
    json_decref(r);
    return 0;
  }
  json_t *info = json_object_get(r, "model_info"), *d = json_object_get(r, "details");
  const char *arch = json_string_value(json_object_get(info, "general.architecture"));
  char k[128];
  snprintf(k, sizeof(k), "%s.context_length", arch ? arch : "");
  json_int_t ctx = json_integer_value(json_object_get(info, k));
  snprintf(k, sizeof(k), "%s.embedding_length", arch ? arch : "");
  json_int_t emb = json_integer_value(json_object_get(info, k));
  printf("  Model\n");
  printf("    %-20s %s\n", "architecture", arch ? arch : "");
  printf("    %-20s %s\n", "parameters", json_string_value(json_object_get(d, "parameter_size")));
  printf("    %-20s %lld\n", "context length", (long long)ctx);
  printf("    %-20s %lld\n", "embedding length", (long long)emb);
  printf("    %-20s %s\n\n", "quantization",
         json_string_value(json_object_get(d, "quantization_level")));
  printf("  Capabilities\n");
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(r, "capabilities"), i, c) printf("    %s\n",
                                                                      json_string_value(c));
  const char *params = json_string_value(json_object_get(r, "parameters"));
  if (params) {
    printf("\n  Parameters\n");
    char *copy = strdup(params);
    for (char *l = strtok(copy, "\n"); l; l = strtok(NULL, "\n"))
      printf("    %s\n", l);
    free(copy);
  }
  const char *sys = json_string_value(json_object_get(r, "system"));
  if (sys)
    printf("\n  System\n    %s\n", sys);
  printf("\n");
  json_decref(r);
  return 0;
}

/* ---------------------------------------------------------------- ps */

static void human_size(double b, char *out, size_t n) {
  const char *u[] = {"B", "KB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4)
    b /= 1000, i++;
  snprintf(out, n, i == 0 ? "%.0f %s" : "%.1f %s", b, u[i]);
}

int cll_cli_ps(int argc, char **argv) {
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
    char size[32];
    human_size((double)json_integer_value(json_object_get(m, "size")), size, sizeof(size));
    const char *dg = json_string_value(json_object_get(m, "digest"));
    printf("%-30s %-14.12s %-10s %-10s %-8lld %s\n",
           json_string_value(json_object_get(m, "name")), dg ? dg : "", size, "100% CPU",
           (long long)json_integer_value(json_object_get(m, "context_length")),
           json_string_value(json_object_get(m, "expires_at")));
  }
  json_decref(r);
  return 0;
}

/* ---------------------------------------------------------------- rm, cp */

int cll_cli_rm(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "Usage: cllama rm MODEL [MODEL...]\n");
    return 2;
  }
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
  for (int i = 1; i < argc; i++) {
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
  int rc = cll_modelfile_parse(text, dirname(fcopy), &req, &e);
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
