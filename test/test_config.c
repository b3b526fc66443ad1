/* test_config.c — configuration from the environment (include/cllama/config.h). */
#include "cllama/config.h"

#include <criterion/criterion.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

static const char *const vars[] = {
    "OLLAMA_HOST",
    "OLLAMA_MODELS",
    "OLLAMA_ORIGINS",
    "OLLAMA_KEEP_ALIVE",
    "OLLAMA_NUM_PARALLEL",
    "OLLAMA_MAX_QUEUE",
    "OLLAMA_MAX_LOADED_MODELS",
    "OLLAMA_DEBUG",
    "CLLAMA_STREAM_DEFAULT",
    "CLLAMA_PORT_FILE",
    "CLLAMA_REPACK",
    "OLLAMA_CONTEXT_LENGTH",
    "OLLAMA_NOPRUNE",
    "CLLAMA_CREATE_PATHS",
    "CLLAMA_PULL_PART_BYTES",
    "CLLAMA_PUSH_PART_BYTES",
    "CLLAMA_PULL_PARTS",
    "CLLAMA_PULL_STALL_MS",
    "CLLAMA_PULL_RETRY_MS",
    "CLLAMA_API_KEYS",
    "CLLAMA_TLS_CERT",
    "CLLAMA_TLS_KEY",
    "OLLAMA_API_KEY",
    "SSL_CERT_FILE",
};

static void clear_env(void) {
  for (size_t i = 0; i < CLL_ARRAY_LEN(vars); i++)
    unsetenv(vars[i]);
  setenv("HOME", "/home/tester", 1);
}

TestSuite(config, .init = clear_env);

Test(config, defaults) {
  cll_config c;
  cll_err err = {0};
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_str_eq(c.host, "127.0.0.1");
  cr_expect_eq(c.port, 11434);
  cr_expect_str_eq(c.models, "/home/tester/.ollama/models");
  cr_expect_eq(c.keep_alive_ns, 300LL * 1000000000LL);
  cr_expect_eq(c.num_parallel, 0); /* auto: chosen from memory by the runners */
  cr_expect_eq(c.max_queue, 512);
  cr_expect_eq(c.max_loaded_models, 0);
  cr_expect_eq(c.debug, 0);
  cr_expect(!c.stream_default);
  cr_expect_eq(c.n_origins, 0);
}

/* A service started without HOME (systemd, cron) keeps its store and key in
 * the user's home from the password database, not in whatever directory it
 * was started from. */
Test(config, home_unset_uses_the_password_database) {
  unsetenv("HOME");
  struct passwd *pw = getpwuid(getuid());
  cr_assert_not_null(pw);
  cll_config c;
  cll_err err = {0};
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_str_eq(c.home, pw->pw_dir);
  char want[4200];
  snprintf(want, sizeof(want), "%s/.ollama/models", pw->pw_dir);
  cr_expect_str_eq(c.models, want);
}

Test(config, host_forms) {
  struct {
    const char *v, *host;
    int port;
  } cases[] = {
      {"0.0.0.0", "0.0.0.0", 11434},
      {"127.0.0.1:0", "127.0.0.1", 0},
      {":8080", "0.0.0.0", 8080},
      {"http://example.com", "example.com", 80},
      {"https://example.com", "example.com", 443},
      {"[::1]:1234", "::1", 1234},
      {" \"localhost:9\" ", "localhost", 9},
      {"http://10.0.0.1:5/path", "10.0.0.1", 5},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(cases); i++) {
    setenv("OLLAMA_HOST", cases[i].v, 1);
    cll_config c;
    cll_err err = {0};
    cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s: %s", cases[i].v, err.msg);
    cr_expect_str_eq(c.host, cases[i].host, "%s", cases[i].v);
    cr_expect_eq(c.port, cases[i].port, "%s", cases[i].v);
  }
}

Test(config, invalid_values_are_rejected_with_the_variable_name) {
  struct {
    const char *var, *value;
  } bad[] = {
      {"OLLAMA_HOST", "127.0.0.1:99999"},
      {"OLLAMA_HOST", "ftp://x"},
      {"OLLAMA_HOST", "h:port"},
      {"OLLAMA_KEEP_ALIVE", "soon"},
      {"OLLAMA_KEEP_ALIVE", "5x"},
      {"OLLAMA_NUM_PARALLEL", "-1"},
      {"OLLAMA_NUM_PARALLEL", "two"},
      {"OLLAMA_MAX_QUEUE", "-1"},
      {"OLLAMA_MAX_LOADED_MODELS", "1.5"},
      {"OLLAMA_DEBUG", "loud"},
      {"CLLAMA_STREAM_DEFAULT", "maybe"},
      {"OLLAMA_ORIGINS", "http://*.a.*"},
      {"CLLAMA_REPACK", "off"},
      {"OLLAMA_CONTEXT_LENGTH", "4k"},
      {"OLLAMA_NOPRUNE", "maybe"},
      {"CLLAMA_PULL_PART_BYTES", "0"},
      {"CLLAMA_PUSH_PART_BYTES", "-5"},
      {"CLLAMA_PULL_PARTS", "-2"},
      {"CLLAMA_PULL_STALL_MS", "1s"},
      {"CLLAMA_PULL_RETRY_MS", "x"},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(bad); i++) {
    clear_env();
    setenv(bad[i].var, bad[i].value, 1);
    cll_config c;
    cll_err err = {0};
    cr_expect_eq(cll_config_from_env(&c, &err), CLL_EINVAL, "%s=%s accepted", bad[i].var,
                 bad[i].value);
    cr_expect_not_null(strstr(err.msg, bad[i].var), "message \"%s\"", err.msg);
  }
}

Test(config, values) {
  setenv("OLLAMA_KEEP_ALIVE", "1h30m", 1);
  setenv("OLLAMA_NUM_PARALLEL", "4", 1);
  setenv("OLLAMA_DEBUG", "true", 1);
  setenv("CLLAMA_STREAM_DEFAULT", "true", 1);
  setenv("OLLAMA_ORIGINS", "chrome-extension://*, https://example.com ,", 1);
  setenv("OLLAMA_MODELS", "/srv/models", 1);
  cll_config c;
  cll_err err = {0};
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_eq(c.keep_alive_ns, 5400LL * 1000000000LL);
  cr_expect_eq(c.num_parallel, 4);
  cr_expect_eq(c.debug, 1);
  cr_expect(c.stream_default);
  cr_expect_str_eq(c.models, "/srv/models");
  cr_assert_eq(c.n_origins, 2);
  cr_expect_str_eq(c.origins[0], "chrome-extension://*");
  cr_expect_str_eq(c.origins[1], "https://example.com");
}

Test(config, durations) {
  int64_t ns;
  cr_expect_eq(cll_config_parse_duration("300", &ns), 0);
  cr_expect_eq(ns, 300LL * 1000000000LL);
  cr_expect_eq(cll_config_parse_duration("-1", &ns), 0);
  cr_expect_lt(ns, 0);
  cr_expect_eq(cll_config_parse_duration("-1m", &ns), 0);
  cr_expect_eq(ns, -60LL * 1000000000LL);
  cr_expect_eq(cll_config_parse_duration("0", &ns), 0);
  cr_expect_eq(ns, 0);
  cr_expect_eq(cll_config_parse_duration("250ms", &ns), 0);
  cr_expect_eq(ns, 250000000LL);
  cr_expect_eq(cll_config_parse_duration("1.5h", &ns), 0);
  cr_expect_eq(ns, 5400LL * 1000000000LL);
  cr_expect_neq(cll_config_parse_duration("", &ns), 0);
  cr_expect_neq(cll_config_parse_duration("m", &ns), 0);
  cr_expect_neq(cll_config_parse_duration("10 m", &ns), 0);
}

/* The variables other modules used to read themselves (ps, pull, create):
 * now validated here, with their unset defaults. */
Test(config, module_variables) {
  cll_config c;
  cll_err err = {0};
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_eq(c.context_length, 0);
  cr_expect(!c.noprune);
  cr_expect(!c.create_paths_set);
  cr_expect_str_eq(c.home, "/home/tester");
  cr_expect_eq(c.pull_part_bytes, 0);
  cr_expect_eq(c.push_part_bytes, 0);
  setenv("OLLAMA_CONTEXT_LENGTH", "8192", 1);
  setenv("OLLAMA_NOPRUNE", "true", 1);
  setenv("CLLAMA_CREATE_PATHS", "", 1); /* set empty: never */
  setenv("CLLAMA_PULL_PART_BYTES", "1000000", 1);
  setenv("CLLAMA_PUSH_PART_BYTES", "2000000", 1);
  setenv("CLLAMA_PULL_PARTS", "4", 1);
  setenv("CLLAMA_PULL_STALL_MS", "1000", 1);
  setenv("CLLAMA_PULL_RETRY_MS", "50", 1);
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_eq(c.context_length, 8192);
  cr_expect(c.noprune);
  cr_expect(c.create_paths_set);
  cr_expect_str_eq(c.create_paths, "");
  cr_expect_eq(c.pull_part_bytes, 1000000);
  cr_expect_eq(c.push_part_bytes, 2000000);
  cr_expect_eq(c.pull_parts, 4);
  cr_expect_eq(c.pull_stall_ms, 1000);
  cr_expect_eq(c.pull_retry_ms, 50);
  setenv("CLLAMA_CREATE_PATHS", "/a:/b", 1);
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_str_eq(c.create_paths, "/a:/b");
}

/* CLLAMA_API_KEYS: split on commas and spaces; every key 16+ characters; a
 * list with no key in it is an error rather than an open server. */
Test(config, api_keys) {
  cll_config c;
  cll_err err = {0};
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_eq(c.n_api_keys, 0);
  setenv("CLLAMA_API_KEYS", " key-aaaaaaaaaaaaaaaa, key-bbbbbbbbbbbbbbbb key-cccccccccccccccc,", 1);
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_assert_eq(c.n_api_keys, 3);
  cr_expect_str_eq(c.api_keys[0], "key-aaaaaaaaaaaaaaaa");
  cr_expect_str_eq(c.api_keys[1], "key-bbbbbbbbbbbbbbbb");
  cr_expect_str_eq(c.api_keys[2], "key-cccccccccccccccc");
  const char *bad[] = {"short-key", "key-aaaaaaaaaaaaaaaa,short", " , ,"};
  for (size_t i = 0; i < CLL_ARRAY_LEN(bad); i++) {
    setenv("CLLAMA_API_KEYS", bad[i], 1);
    cr_expect_eq(cll_config_from_env(&c, &err), CLL_EINVAL, "\"%s\" accepted", bad[i]);
    cr_expect_not_null(strstr(err.msg, "CLLAMA_API_KEYS"), "message \"%s\"", err.msg);
  }
  char many[2048] = "";
  for (int i = 0; i < CLL_CONFIG_MAX_API_KEYS + 1; i++)
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "key-%016d,", i);
  setenv("CLLAMA_API_KEYS", many, 1);
  cr_expect_eq(cll_config_from_env(&c, &err), CLL_EINVAL, "65 keys accepted");
  char huge[5000];
  memset(huge, 'k', sizeof(huge) - 1);
  huge[sizeof(huge) - 1] = '\0';
  setenv("CLLAMA_API_KEYS", huge, 1);
  cr_expect_eq(cll_config_from_env(&c, &err), CLL_EINVAL, "a key list longer than 4 KiB accepted");
}

/* CLLAMA_TLS_CERT and CLLAMA_TLS_KEY: both or neither, and readable. */
Test(config, tls_files) {
  char dir[] = "/tmp/cll-test-config-XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  char cert[256], key[256], missing[256];
  snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
  snprintf(key, sizeof(key), "%s/key.pem", dir);
  snprintf(missing, sizeof(missing), "%s/absent.pem", dir);
  FILE *f = fopen(cert, "w");
  cr_assert_not_null(f);
  fputs("-----BEGIN CERTIFICATE-----\n", f);
  fclose(f);
  cr_assert_not_null(f = fopen(key, "w"));
  fputs("-----BEGIN PRIVATE KEY-----\n", f);
  fclose(f);
  cll_config c;
  cll_err err = {0};
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_str_eq(c.tls_cert, "");
  cr_expect_str_eq(c.tls_key, "");
  setenv("CLLAMA_TLS_CERT", cert, 1);
  setenv("CLLAMA_TLS_KEY", key, 1);
  cr_assert_eq(cll_config_from_env(&c, &err), 0, "%s", err.msg);
  cr_expect_str_eq(c.tls_cert, cert);
  cr_expect_str_eq(c.tls_key, key);
  struct {
    const char *cert, *key, *named; /* NULL = unset */
  } bad[] = {
      {cert, NULL, "CLLAMA_TLS_KEY"},    /* a certificate without its key */
      {NULL, key, "CLLAMA_TLS_CERT"},    /* a key without a certificate */
      {missing, key, "CLLAMA_TLS_CERT"}, /* unreadable */
      {cert, missing, "CLLAMA_TLS_KEY"},
      {cert, dir, "CLLAMA_TLS_KEY"}, /* a directory: opens, but is no file to read */
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(bad); i++) {
    unsetenv("CLLAMA_TLS_CERT");
    unsetenv("CLLAMA_TLS_KEY");
    if (bad[i].cert)
      setenv("CLLAMA_TLS_CERT", bad[i].cert, 1);
    if (bad[i].key)
      setenv("CLLAMA_TLS_KEY", bad[i].key, 1);
    cr_expect_eq(cll_config_from_env(&c, &err), CLL_EINVAL, "case %zu accepted", i);
    cr_expect_not_null(strstr(err.msg, bad[i].named), "case %zu: message \"%s\"", i, err.msg);
  }
  remove(cert);
  remove(key);
  rmdir(dir);
}

/* The client commands' side: OLLAMA_HOST as a URL (scheme kept, the
 * wildcard address reached on loopback), OLLAMA_API_KEY and HOME; a
 * server-only variable that is invalid does not stop a client. */
Test(config, client) {
  cll_client_config cc;
  cll_err err = {0};
  cr_assert_eq(cll_config_client_from_env(&cc, &err), 0, "%s", err.msg);
  cr_expect_str_eq(cc.base_url, "http://127.0.0.1:11434");
  cr_expect_str_eq(cc.api_key, "");
  cr_expect_str_eq(cc.home, "/home/tester");
  struct {
    const char *host, *url;
  } cases[] = {
      {"0.0.0.0:8080", "http://127.0.0.1:8080"},          {"[::]:9", "http://[::1]:9"},
      {"https://example.com", "https://example.com:443"}, {"[::1]:1234", "http://[::1]:1234"},
      {"http://10.0.0.1:5/path", "http://10.0.0.1:5"},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(cases); i++) {
    setenv("OLLAMA_HOST", cases[i].host, 1);
    cr_assert_eq(cll_config_client_from_env(&cc, &err), 0, "%s: %s", cases[i].host, err.msg);
    cr_expect_str_eq(cc.base_url, cases[i].url, "%s", cases[i].host);
  }
  setenv("OLLAMA_API_KEY", " \"secret-key-0123456789\" ", 1);
  setenv("OLLAMA_KEEP_ALIVE", "soon", 1); /* the server's business */
  cr_assert_eq(cll_config_client_from_env(&cc, &err), 0, "%s", err.msg);
  cr_expect_str_eq(cc.api_key, "secret-key-0123456789");
  cr_expect_str_eq(cc.ca_file, "");
  setenv("SSL_CERT_FILE", "/etc/ssl/test-ca.pem", 1);
  cr_assert_eq(cll_config_client_from_env(&cc, &err), 0, "%s", err.msg);
  cr_expect_str_eq(cc.ca_file, "/etc/ssl/test-ca.pem");
  unsetenv("OLLAMA_KEEP_ALIVE");
  unsetenv("HOME"); /* the password database's home, never the working directory */
  cr_assert_eq(cll_config_client_from_env(&cc, &err), 0, "%s", err.msg);
  struct passwd *pw = getpwuid(getuid());
  cr_assert_not_null(pw);
  cr_expect_str_eq(cc.home, pw->pw_dir);
  setenv("OLLAMA_HOST", "ftp://x", 1);
  cr_expect_eq(cll_config_client_from_env(&cc, &err), CLL_EINVAL);
  cr_expect_not_null(strstr(err.msg, "OLLAMA_HOST"), "message \"%s\"", err.msg);
}
