/* config.c — the server configuration from OLLAMA_* and CLLAMA_* environment
 * variables (include/cllama/config.h). Ollama trims surrounding spaces and
 * quotes from every value, and so do we; unlike Ollama, a value that does
 * not parse stops the server with a message instead of falling back. */
#include "cllama/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PORT 11434

/* $HOME, else the password database's home of this user (a service started
 * without HOME), else NULL: never the working directory. */
static const char *home_dir(void) {
  const char *home = getenv("HOME");
  if (home && *home)
    return home;
  struct passwd *pw = getpwuid(getuid());
  return pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : NULL;
}

void cll_config_defaults(cll_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
  cfg->port = DEFAULT_PORT;
  const char *home = home_dir();
  snprintf(cfg->home, sizeof(cfg->home), "%s", home ? home : ".");
  snprintf(cfg->models, sizeof(cfg->models), "%.4000s/.ollama/models", cfg->home);
  cfg->keep_alive_ns = 5LL * 60 * 1000000000LL;
  cfg->num_parallel = 0; /* auto: from memory, see src/engine/runners.c */
  cfg->max_queue = 512;
  cfg->max_loaded_models = 0;
  cfg->debug = 0;
  cfg->stream_default = false;
}

/* Copies the value with surrounding spaces and quotes removed. */
static const char *clean(const char *v, char *buf, size_t size) {
  while (*v && (isspace((unsigned char)*v) || *v == '"' || *v == '\''))
    v++;
  size_t n = strlen(v);
  while (n && (isspace((unsigned char)v[n - 1]) || v[n - 1] == '"' || v[n - 1] == '\''))
    n--;
  if (n >= size)
    n = size - 1;
  memcpy(buf, v, n);
  buf[n] = '\0';
  return buf;
}

/* The environment value, cleaned, or NULL when unset or empty. */
static const char *env(const char *name, char *buf, size_t size) {
  const char *v = getenv(name);
  if (v == NULL)
    return NULL;
  clean(v, buf, size);
  return buf[0] ? buf : NULL;
}

static int parse_int(const char *s, long min, long max, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end != '\0' || v < min || v > max)
    return CLL_EINVAL;
  *out = v;
  return 0;
}

/* Go's strconv.ParseBool spellings. Returns 1/0, or -1 when not a bool. */
static int parse_bool(const char *s) {
  static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
  static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(t); i++) {
    if (strcmp(s, t[i]) == 0)
      return 1;
    if (strcmp(s, f[i]) == 0)
      return 0;
  }
  return -1;
}

int cll_config_parse_duration(const char *s, int64_t *ns) {
  if (s == NULL || *s == '\0')
    return CLL_EINVAL;
  /* A bare integer means seconds (Ollama's OLLAMA_KEEP_ALIVE rule). */
  long secs;
  if (parse_int(s, LONG_MIN, LONG_MAX, &secs) == 0) {
    if (secs > INT64_MAX / 1000000000LL || secs < INT64_MIN / 1000000000LL)
      return CLL_EINVAL;
    *ns = (int64_t)secs * 1000000000LL;
    return 0;
  }
  const char *p = s;
  int neg = 0;
  if (*p == '-' || *p == '+')
    neg = *p++ == '-';
  if (strcmp(p, "0") == 0) {
    *ns = 0;
    return 0;
  }
  double total = 0;
  int any = 0;
  while (*p) {
    char *end;
    if (!isdigit((unsigned char)*p) && *p != '.')
      return CLL_EINVAL;
    errno = 0;
    double v = strtod(p, &end);
    if (end == p || errno)
      return CLL_EINVAL;
    p = end;
    static const struct {
      const char *unit;
      double ns;
    } units[] = {{"ns", 1},  {"us", 1e3}, {"\xc2\xb5s", 1e3}, {"ms", 1e6},
                 {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
    size_t best = 0, best_len = 0;
    for (size_t i = 0; i < CLL_ARRAY_LEN(units); i++) {
      size_t l = strlen(units[i].unit);
      if (l > best_len && strncmp(p, units[i].unit, l) == 0) {
        best = i;
        best_len = l;
      }
    }
    if (best_len == 0)
      return CLL_EINVAL;
    total += v * units[best].ns;
    p += best_len;
    any = 1;
  }
  if (!any || total > 9.2e18)
    return CLL_EINVAL;
  *ns = (int64_t)(neg ? -total : total);
  return 0;
}

/* OLLAMA_HOST: "[scheme://]host[:port][/path]". Fills host (size bytes),
 * *port and, when https is not NULL, whether the scheme was https://. */
static int parse_host(const char *v, char *out, size_t size, int *out_port, bool *https,
                      cll_err *err) {
  const char *s = v;
  int port = DEFAULT_PORT;
  bool tls = false;
  const char *sep = strstr(s, "://");
  if (sep) {
    if (strncasecmp(s, "http://", 7) == 0)
      port = 80;
    else if (strncasecmp(s, "https://", 8) == 0) {
      port = 443;
      tls = true;
    } else
      return cll_err_set(err, CLL_EINVAL, "OLLAMA_HOST=\"%s\": scheme must be http:// or https://",
                         v);
    s = sep + 3;
  }
  char hp[512];
  snprintf(hp, sizeof(hp), "%.511s", s); /* longer is refused below as too long a host */
  char *slash = strchr(hp, '/');
  if (slash)
    *slash = '\0';
  char *host = hp, *portstr = NULL;
  if (hp[0] == '[') {
    char *close = strchr(hp, ']');
    if (close == NULL)
      return cll_err_set(err, CLL_EINVAL, "OLLAMA_HOST=\"%s\": missing ']'", v);
    *close = '\0';
    host = hp + 1;
    if (close[1] == ':')
      portstr = close + 2;
    else if (close[1] != '\0')
      return cll_err_set(err, CLL_EINVAL, "OLLAMA_HOST=\"%s\": expected host[:port]", v);
  } else {
    char *colon = strrchr(hp, ':');
    if (colon && strchr(hp, ':') == colon) {
      *colon = '\0';
      portstr = colon + 1;
    }
  }
  if (portstr) {
    long p;
    if (parse_int(portstr, 0, 65535, &p) != 0)
      return cll_err_set(err, CLL_EINVAL,
                         "OLLAMA_HOST=\"%s\": port must be a number from 0 to 65535", v);
    port = (int)p;
  }
  if (host[0] == '\0')
    host = "0.0.0.0"; /* ":11434" means every interface, as in Go */
  if (strlen(host) >= size)
    return cll_err_set(err, CLL_EINVAL, "OLLAMA_HOST=\"%s\": host too long", v);
  memcpy(out, host, strlen(host) + 1); /* length checked above */
  *out_port = port;
  if (https)
    *https = tls;
  return 0;
}

static int int_var(const char *name, long min, long max, int *out, cll_err *err) {
  char buf[256];
  const char *v = env(name, buf, sizeof(buf));
  if (v == NULL)
    return 0;
  long n;
  if (parse_int(v, min, max, &n) != 0)
    return cll_err_set(err, CLL_EINVAL, "%s=\"%s\": expected an integer from %ld to %ld", name, v,
                       min, max);
  *out = (int)n;
  return 0;
}

int cll_config_kernels_from_env(cll_kernels_config *kc, cll_err *err) {
  static char isa[32]; /* main thread, once: kc->isa points here */
  char buf[256];
  const char *v;
  int rc;
  memset(kc, 0, sizeof(*kc));
  if ((v = env("CLLAMA_KERNELS", buf, sizeof(buf)))) {
    if (strlen(v) >= sizeof(isa))
      return cll_err_set(
          err, CLL_EINVAL,
          "CLLAMA_KERNELS: expected one of ref, avx2, avx2-novnni, avx512, avx512-noamx, neon, "
          "neon-nodot (this CPU: %s)",
          cll_kernels_available());
    snprintf(isa, sizeof(isa), "%s", v);
    kc->isa = isa;
  }
  if ((v = env("CLLAMA_REPACK", buf, sizeof(buf)))) {
    int b = parse_bool(v);
    if (b < 0)
      return cll_err_set(err, CLL_EINVAL,
                         "CLLAMA_REPACK=\"%s\": expected true or false (false computes on Q4_0 "
                         "weights in place instead of repacking them at load)",
                         v);
    kc->no_repack = !b;
  }
  /* Benchmark knobs (bench/kernels): where cll_matmul's paths change. */
  if ((rc = int_var("CLLAMA_GEMM_MIN_TOK", 1, 1 << 20, &kc->gemm_min_tok, err)) != 0 ||
      (rc = int_var("CLLAMA_INT8_MIN_TOK", 1, 1 << 20, &kc->int8_min_tok, err)) != 0 ||
      (rc = int_var("CLLAMA_GEMM_TILE_ROWS", 1, 1 << 16, &kc->gemm_tile_rows, err)) != 0)
    return rc;
  return 0;
}

/* CLLAMA_API_KEYS: bearer keys separated by commas or spaces, 16+
 * characters each. Set to nothing but separators is an error: a server
 * meant to be locked must not start open. */
static int api_keys(cll_config *cfg, cll_err *err) {
  const char *raw = getenv("CLLAMA_API_KEYS");
  if (raw == NULL)
    return 0;
  if (strlen(raw) >= sizeof(cfg->api_keys_raw))
    return cll_err_set(err, CLL_EINVAL, "CLLAMA_API_KEYS: too long (at most %zu bytes)",
                       sizeof(cfg->api_keys_raw) - 1);
  clean(raw, cfg->api_keys_raw, sizeof(cfg->api_keys_raw));
  if (cfg->api_keys_raw[0] == '\0')
    return 0; /* set empty: unset, as for every variable */
  char *save = NULL;
  for (char *k = strtok_r(cfg->api_keys_raw, ", \t\n", &save); k;
       k = strtok_r(NULL, ", \t\n", &save)) {
    if (cfg->n_api_keys == CLL_CONFIG_MAX_API_KEYS)
      return cll_err_set(err, CLL_EINVAL, "CLLAMA_API_KEYS: at most %d keys",
                         CLL_CONFIG_MAX_API_KEYS);
    if (strlen(k) < 16)
      return cll_err_set(err, CLL_EINVAL,
                         "CLLAMA_API_KEYS: each key needs at least 16 characters (key %d has %zu)",
                         cfg->n_api_keys + 1, strlen(k));
    cfg->api_keys[cfg->n_api_keys++] = k;
  }
  if (cfg->n_api_keys == 0)
    return cll_err_set(err, CLL_EINVAL, "CLLAMA_API_KEYS: no key in \"%s\"", raw);
  return 0;
}

/* One of CLLAMA_TLS_CERT / CLLAMA_TLS_KEY: a readable file, or "". */
static int tls_file(const char *name, char *out, size_t size, cll_err *err) {
  char buf[4096];
  const char *v = env(name, buf, sizeof(buf));
  if (v == NULL)
    return 0;
  if (strlen(v) >= size - 1)
    return cll_err_set(err, CLL_EINVAL, "%s: path too long", name);
  FILE *f = fopen(v, "r");
  if (f == NULL)
    return cll_err_set(err, CLL_EINVAL, "%s=\"%s\": cannot read it: %s", name, v, strerror(errno));
  struct stat st;
  int regular = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
  fclose(f);
  if (!regular)
    return cll_err_set(err, CLL_EINVAL, "%s=\"%s\": not a regular file", name, v);
  snprintf(out, size, "%s", v);
  return 0;
}

/* CLLAMA_TLS_CERT and CLLAMA_TLS_KEY: both or neither. Whether the PEM
 * inside is valid is checked by the server when it loads them. */
static int tls_files(cll_config *cfg, cll_err *err) {
  int rc;
  if ((rc = tls_file("CLLAMA_TLS_CERT", cfg->tls_cert, sizeof(cfg->tls_cert), err)) != 0 ||
      (rc = tls_file("CLLAMA_TLS_KEY", cfg->tls_key, sizeof(cfg->tls_key), err)) != 0)
    return rc;
  if (cfg->tls_cert[0] && !cfg->tls_key[0])
    return cll_err_set(err, CLL_EINVAL, "CLLAMA_TLS_CERT is set but CLLAMA_TLS_KEY is not");
  if (cfg->tls_key[0] && !cfg->tls_cert[0])
    return cll_err_set(err, CLL_EINVAL, "CLLAMA_TLS_KEY is set but CLLAMA_TLS_CERT is not");
  return 0;
}

int cll_config_from_env(cll_config *cfg, cll_err *err) {
  cll_config_defaults(cfg);
  char buf[4096];
  const char *v;
  int rc;
  if ((v = env("OLLAMA_HOST", buf, sizeof(buf))) &&
      (rc = parse_host(v, cfg->host, sizeof(cfg->host), &cfg->port, NULL, err)) != 0)
    return rc;
  if ((v = env("OLLAMA_MODELS", buf, sizeof(buf)))) {
    if (strlen(v) >= sizeof(cfg->models) - 128)
      return cll_err_set(err, CLL_EINVAL, "OLLAMA_MODELS: path too long");
    snprintf(cfg->models, sizeof(cfg->models), "%s", v);
  }
  if ((v = env("OLLAMA_ORIGINS", buf, sizeof(buf)))) {
    snprintf(cfg->origins_raw, sizeof(cfg->origins_raw), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(cfg->origins_raw, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
      while (isspace((unsigned char)*tok))
        tok++;
      size_t n = strlen(tok);
      while (n && isspace((unsigned char)tok[n - 1]))
        tok[--n] = '\0';
      if (n == 0)
        continue;
      if (cfg->n_origins == CLL_CONFIG_MAX_ORIGINS)
        return cll_err_set(err, CLL_EINVAL, "OLLAMA_ORIGINS: more than %d origins",
                           CLL_CONFIG_MAX_ORIGINS);
      if (strchr(tok, '*') != strrchr(tok, '*'))
        return cll_err_set(err, CLL_EINVAL, "OLLAMA_ORIGINS: \"%s\" has more than one '*' wildcard",
                           tok);
      cfg->origins[cfg->n_origins++] = tok;
    }
  }
  if ((v = env("OLLAMA_KEEP_ALIVE", buf, sizeof(buf))) &&
      cll_config_parse_duration(v, &cfg->keep_alive_ns) != 0)
    return cll_err_set(err, CLL_EINVAL,
                       "OLLAMA_KEEP_ALIVE=\"%s\": expected a duration such as 5m, 1h, 30s "
                       "or a number of seconds (negative = forever)",
                       v);
  if ((rc = int_var("OLLAMA_NUM_PARALLEL", 0, 1024, &cfg->num_parallel, err)) != 0 ||
      (rc = int_var("OLLAMA_MAX_QUEUE", 1, 1000000, &cfg->max_queue, err)) != 0 ||
      (rc = int_var("OLLAMA_MAX_LOADED_MODELS", 0, 1024, &cfg->max_loaded_models, err)) != 0)
    return rc;
  if ((v = env("OLLAMA_DEBUG", buf, sizeof(buf)))) {
    long n;
    int b = parse_bool(v);
    if (b >= 0)
      cfg->debug = b;
    else if (parse_int(v, 0, 2, &n) == 0)
      cfg->debug = (int)n;
    else if (strcasecmp(v, "info") == 0)
      cfg->debug = 0;
    else if (strcasecmp(v, "debug") == 0)
      cfg->debug = 1;
    else if (strcasecmp(v, "trace") == 0)
      cfg->debug = 2;
    else
      return cll_err_set(err, CLL_EINVAL,
                         "OLLAMA_DEBUG=\"%s\": expected 0, 1 (debug), 2 (trace) or true/false", v);
  }
  if ((rc = int_var("OLLAMA_CONTEXT_LENGTH", 0, 1 << 24, &cfg->context_length, err)) != 0 ||
      (rc = int_var("CLLAMA_PULL_PARTS", 0, 1024, &cfg->pull_parts, err)) != 0 ||
      (rc = int_var("CLLAMA_PULL_STALL_MS", 0, 24 * 3600 * 1000, &cfg->pull_stall_ms, err)) != 0 ||
      (rc = int_var("CLLAMA_PULL_RETRY_MS", 0, 3600 * 1000, &cfg->pull_retry_ms, err)) != 0)
    return rc;
  if ((v = env("CLLAMA_PULL_PART_BYTES", buf, sizeof(buf)))) {
    long n;
    if (parse_int(v, 1, LONG_MAX, &n) != 0)
      return cll_err_set(err, CLL_EINVAL,
                         "CLLAMA_PULL_PART_BYTES=\"%s\": expected a positive integer", v);
    cfg->pull_part_bytes = n;
  }
  if ((v = env("CLLAMA_PUSH_PART_BYTES", buf, sizeof(buf)))) {
    long n;
    if (parse_int(v, 1, LONG_MAX, &n) != 0)
      return cll_err_set(err, CLL_EINVAL,
                         "CLLAMA_PUSH_PART_BYTES=\"%s\": expected a positive integer", v);
    cfg->push_part_bytes = n;
  }
  if ((v = env("OLLAMA_NOPRUNE", buf, sizeof(buf)))) {
    int b = parse_bool(v);
    if (b < 0)
      return cll_err_set(err, CLL_EINVAL, "OLLAMA_NOPRUNE=\"%s\": expected true or false", v);
    cfg->noprune = b;
  }
  const char *raw = getenv("CLLAMA_CREATE_PATHS"); /* set but empty means "never" */
  if (raw != NULL) {
    cfg->create_paths_set = true;
    if (strlen(raw) >= sizeof(cfg->create_paths))
      return cll_err_set(err, CLL_EINVAL, "CLLAMA_CREATE_PATHS: too long");
    clean(raw, cfg->create_paths, sizeof(cfg->create_paths));
  }
  if ((v = env("CLLAMA_STREAM_DEFAULT", buf, sizeof(buf)))) {
    int b = parse_bool(v);
    if (b < 0)
      return cll_err_set(err, CLL_EINVAL, "CLLAMA_STREAM_DEFAULT=\"%s\": expected true or false",
                         v);
    cfg->stream_default = b;
  }
  /* The kernels' variables are passed to cll_kernels_init by main (every
   * command); checked here too so that a config dump sees them. */
  cll_kernels_config kc;
  if ((rc = cll_config_kernels_from_env(&kc, err)) != 0)
    return rc;
  if ((v = env("CLLAMA_PORT_FILE", buf, sizeof(buf))))
    snprintf(cfg->port_file, sizeof(cfg->port_file), "%s", v);
  if ((rc = api_keys(cfg, err)) != 0 || (rc = tls_files(cfg, err)) != 0)
    return rc;
  return 0;
}

void cll_config_print_help(FILE *out) {
  fprintf(
      out,
      "Environment variables:\n"
      "  OLLAMA_HOST               [scheme://]host[:port] to listen on (default 127.0.0.1:11434;\n"
      "                            port 0 picks a free port)\n"
      "  OLLAMA_MODELS             model store directory (default ~/.ollama/models)\n"
      "  OLLAMA_ORIGINS            extra allowed CORS origins, comma separated ('*' wildcards)\n"
      "  OLLAMA_KEEP_ALIVE         how long a model stays loaded after use (default 5m;\n"
      "                            Go duration or seconds; negative = forever, 0 = unload at "
      "once)\n"
      "  OLLAMA_NUM_PARALLEL       parallel requests per loaded model (default 0 = auto:\n"
      "                            as many as half the free memory holds, 1..16)\n"
      "  OLLAMA_MAX_QUEUE          pending requests before 503 (default 512)\n"
      "  OLLAMA_MAX_LOADED_MODELS  models kept loaded at once (default 0 = auto, 3)\n"
      "  OLLAMA_DEBUG              log level: 0 info, 1 debug, 2 trace (default 0)\n"
      "  CLLAMA_STREAM_DEFAULT     stream /api/generate and /api/chat when the request has\n"
      "                            no \"stream\" field (default false; true = Ollama's default)\n"
      "  CLLAMA_PORT_FILE          write the bound port to this file once listening\n"
      "  CLLAMA_REPACK             repack Q4_0 weights at load for the AVX-512 kernels\n"
      "                            (default true; false computes on them in place)\n"
      "  CLLAMA_PUSH_PART_BYTES    upload a pushed blob in parts of this many bytes\n"
      "                            (default 100000000)\n"
      "  CLLAMA_API_KEYS           bearer keys (16+ characters, comma separated): every\n"
      "                            request but / and /api/version then needs one\n"
      "  CLLAMA_TLS_CERT           PEM certificate chain: serve HTTPS only (with CLLAMA_TLS_KEY)\n"
      "  CLLAMA_TLS_KEY            PEM private key of CLLAMA_TLS_CERT\n"
      "\n"
      "Client commands (run, list, pull, ...) read:\n"
      "  OLLAMA_HOST               the server to talk to ([http[s]://]host[:port])\n"
      "  OLLAMA_API_KEY            bearer key sent with every request (for CLLAMA_API_KEYS)\n"
      "  SSL_CERT_FILE             CA certificates for an https:// OLLAMA_HOST\n");
}

void cll_config_log(const cll_config *cfg, FILE *out) {
  fprintf(out,
          "server config: OLLAMA_HOST=%s:%d OLLAMA_MODELS=%s OLLAMA_ORIGINS=%s "
          "OLLAMA_KEEP_ALIVE=%lldms OLLAMA_NUM_PARALLEL=%d OLLAMA_MAX_QUEUE=%d "
          "OLLAMA_MAX_LOADED_MODELS=%d OLLAMA_DEBUG=%d CLLAMA_STREAM_DEFAULT=%s\n",
          cfg->host, cfg->port, cfg->models, cfg->n_origins ? "(set)" : "",
          (long long)(cfg->keep_alive_ns / 1000000), cfg->num_parallel, cfg->max_queue,
          cfg->max_loaded_models, cfg->debug, cfg->stream_default ? "true" : "false");
}

int cll_config_client_from_env(cll_client_config *cc, cll_err *err) {
  memset(cc, 0, sizeof(*cc));
  char buf[4096], host[256] = "127.0.0.1";
  int port = DEFAULT_PORT, rc;
  bool https = false;
  const char *v = env("OLLAMA_HOST", buf, sizeof(buf));
  if (v && (rc = parse_host(v, host, sizeof(host), &port, &https, err)) != 0)
    return rc;
  /* A server bound to every interface is reached on the loopback one. */
  const char *h = host;
  if (strcmp(h, "0.0.0.0") == 0)
    h = "127.0.0.1";
  else if (strcmp(h, "::") == 0)
    h = "::1";
  snprintf(cc->base_url, sizeof(cc->base_url), strchr(h, ':') ? "%s://[%s]:%d" : "%s://%s:%d",
           https ? "https" : "http", h, port);
  if ((v = env("OLLAMA_API_KEY", buf, sizeof(buf)))) {
    if (strlen(v) >= sizeof(cc->api_key))
      return cll_err_set(err, CLL_EINVAL, "OLLAMA_API_KEY: too long");
    snprintf(cc->api_key, sizeof(cc->api_key), "%s", v);
  }
  const char *home = home_dir();
  if (home && strlen(home) < sizeof(cc->home))
    snprintf(cc->home, sizeof(cc->home), "%s", home);
  if ((v = env("SSL_CERT_FILE", buf, sizeof(buf))))
    snprintf(cc->ca_file, sizeof(cc->ca_file), "%s", v);
  return 0;
}
