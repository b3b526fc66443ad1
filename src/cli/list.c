/* list.c — `cllama list`: a client of a running server, like `ollama list`.
 * Asks GET /api/tags at OLLAMA_HOST and prints NAME, ID (the first 12
 * digits of the digest), SIZE and MODIFIED. */
#include "cllama/cli.h"
#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct body {
  char *data;
  size_t len;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
  struct body *b = ud;
  char *d = realloc(b->data, b->len + sz * n + 1);
  if (d == NULL)
    return 0;
  memcpy(d + b->len, p, sz * n);
  b->data = d;
  b->len += sz * n;
  b->data[b->len] = '\0';
  return sz * n;
}

static void human_size(double bytes, char *buf, size_t size) {
  const char *units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) {
    bytes /= 1000;
    u++;
  }
  snprintf(buf, size, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
}

static void human_age(const char *rfc3339, char *buf, size_t size) {
  struct tm tm = {0};
  if (strptime(rfc3339, "%Y-%m-%dT%H:%M:%S", &tm) == NULL) {
    snprintf(buf, size, "%s", rfc3339);
    return;
  }
  double age = difftime(time(NULL), timegm(&tm));
  static const struct {
    double secs;
    const char *unit;
  } steps[] = {{365 * 86400.0, "year"}, {30 * 86400.0, "month"}, {7 * 86400.0, "week"},
               {86400, "day"},          {3600, "hour"},          {60, "minute"}};
  for (size_t i = 0; i < CLL_ARRAY_LEN(steps); i++) {
    if (age >= steps[i].secs) {
      long n = (long)(age / steps[i].secs);
      snprintf(buf, size, "%ld %s%s ago", n, steps[i].unit, n == 1 ? "" : "s");
      return;
    }
  }
  snprintf(buf, size, "Less than a minute ago");
}

int cll_cli_list(int argc, char **argv) {
  if (argc > 1) {
    fprintf(argc == 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr,
            "Usage: cllama list\n\nList the models of the server at OLLAMA_HOST.\n");
    return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
  }
  char err[1024];
  curl_global_init(CURL_GLOBAL_DEFAULT);
  struct curl_slist *hd = NULL;
  CURL *h = cll__cli_easy("/api/tags", NULL, &hd, err, sizeof(err));
  if (h == NULL) {
    fprintf(stderr, "cllama list: %s\n", err);
    curl_global_cleanup();
    return 1;
  }
  struct body b = {0};
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(hd);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(h);
  curl_global_cleanup();
  if (rc != CURLE_OK) {
    fprintf(stderr, "cllama list: could not connect to a running server at %s: %s\n",
            cll__cli_config(err, sizeof(err))->base_url, curl_easy_strerror(rc));
    free(b.data);
    return 1;
  }
  json_t *root = json_loads(b.data ? b.data : "", 0, NULL);
  free(b.data);
  json_t *models = json_object_get(root, "models");
  if (status != 200 || !json_is_array(models)) {
    json_t *e = json_object_get(root, "error");
    fprintf(stderr, "cllama list: %s (HTTP %ld)\n",
            json_is_string(e) ? json_string_value(e) : "unexpected answer", status);
    json_decref(root);
    return 1;
  }
  printf("%-40s %-14s %-10s %s\n", "NAME", "ID", "SIZE", "MODIFIED");
  for (size_t i = 0; i < json_array_size(models); i++) {
    json_t *m = json_array_get(models, i);
    const char *name = json_string_value(json_object_get(m, "name"));
    const char *digest = json_string_value(json_object_get(m, "digest"));
    const char *mod = json_string_value(json_object_get(m, "modified_at"));
    char id[13] = "", size[32], age[64];
    if (digest)
      snprintf(id, sizeof(id), "%.12s", digest);
    human_size((double)json_integer_value(json_object_get(m, "size")), size, sizeof(size));
    human_age(mod ? mod : "", age, sizeof(age));
    printf("%-40s %-14s %-10s %s\n", name ? name : "?", id, size, age);
  }
  json_decref(root);
  return 0;
}
