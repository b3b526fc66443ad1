/* test_api_metrics.c — GET /metrics scraped before, during and after 16
 * concurrent streamed generations (issue 17): each scrape parses with
 * Prometheus' own text-format parser plus strict checks (test/prom_check.py,
 * python3-prometheus-client), and the counters move by exactly what the
 * load did (requests by endpoint and status, tokens generated, time to
 * first token and inter-token histograms), the gauges show the load while
 * it runs (running sequences, KV cells, loaded model and its memory). Also
 * GET /api/ready, /api/tags' capabilities and lengths, /api/show's merged
 * options, and /api/tokenize, /api/detokenize and a chat request's count. */
#include "api_harness.h"

#define N_STREAMS 16
#define N_PREDICT 200

static void setup(void) {
  NEED_SHARED();
  make_store();
  add_model("rand", "tiny-llama-rand-q4_0.gguf", NULL, NULL, "{\"num_predict\":16}");
  start_server((const char *const[]){"OLLAMA_NUM_PARALLEL=16", NULL});
}

/* Scrapes /metrics, checks it with prom_check.py and returns its samples;
 * NULL (after a SKIP line) when prometheus_client is not installed. */
static json_t *scrape(void) {
  struct resp r = http("GET", "/metrics", NULL);
  cr_assert_eq(r.status, 200);
  cr_assert(strncmp(r.ctype, "text/plain; version=0.0.4", 25) == 0, "content type %s", r.ctype);
  char path[400], cmd[1200];
  snprintf(path, sizeof(path), "%s/metrics.txt", H.dir);
  write_file(path, r.body, r.len);
  free(r.body);
  const char *src = getenv("CLLAMA_SRC");
  snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/test/prom_check.py' '%s' 2>&1", src ? src : ".",
           path);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  char *out = malloc(1 << 20);
  size_t n = fread(out, 1, (1 << 20) - 1, p);
  out[n] = 0;
  int st = pclose(p);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 3) {
    fprintf(stderr, "SKIP: python3-prometheus-client not installed, /metrics not parsed\n");
    free(out);
    return NULL;
  }
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "/metrics does not parse:\n%s", out);
  json_t *v = jparse(out);
  free(out);
  return v;
}

static double val(json_t *m, const char *key) {
  json_t *v = json_object_get(m, key);
  cr_assert(v, "no series %s", key);
  return json_number_value(v);
}

static double val_or0(json_t *m, const char *key) {
  json_t *v = json_object_get(m, key);
  return v ? json_number_value(v) : 0;
}

Test(api_metrics, scraped_during_16_streams, .init = setup, .fini = stop_server, .timeout = 300) {
  json_t *m0 = scrape();
  if (!m0)
    return;
  cr_expect_eq(val(m0, "cllama_loaded_models"), 0);

  /* 16 streams of N_PREDICT tokens each. */
  CURLM *multi = curl_multi_init();
  struct resp rs[N_STREAMS];
  CURL *hs[N_STREAMS];
  char bodies[N_STREAMS][256];
  for (int i = 0; i < N_STREAMS; i++) {
    memset(&rs[i], 0, sizeof(rs[i]));
    snprintf(bodies[i], sizeof(bodies[i]),
             "{\"model\":\"rand\",\"prompt\":\"stream %d says\",\"stream\":true,"
             "\"options\":{\"num_predict\":%d,\"seed\":%d}}",
             i, N_PREDICT, i);
    hs[i] = mk_easy("POST", "/api/generate", bodies[i], &rs[i]);
    curl_multi_add_handle(multi, hs[i]);
  }
  /* Mid-load: every stream has its first token, none has finished. */
  json_t *mid = NULL;
  int running = 1;
  while (running) {
    curl_multi_perform(multi, &running);
    if (!mid) {
      int started = 0, done = 0;
      for (int i = 0; i < N_STREAMS; i++) {
        started += rs[i].len > 0;
        done += rs[i].body && strstr(rs[i].body, "\"done\":true") != NULL;
      }
      if (done > 0 && started < N_STREAMS)
        cr_assert(false, "a stream finished before all had started; raise N_PREDICT");
      if (started == N_STREAMS && done == 0)
        mid = scrape();
    }
    curl_multi_poll(multi, NULL, 0, 100, NULL);
  }
  cr_assert(mid, "never saw all 16 streams running at once");
  long long eval_total = 0;
  for (int i = 0; i < N_STREAMS; i++) {
    long code = 0;
    curl_easy_getinfo(hs[i], CURLINFO_RESPONSE_CODE, &code);
    cr_expect_eq(code, 200);
    char text[1 << 15];
    int lines;
    json_t *last = ndjson_collect(rs[i].body, text, sizeof(text), &lines);
    eval_total += json_integer_value(json_object_get(last, "eval_count"));
    json_decref(last);
    curl_multi_remove_handle(multi, hs[i]);
    curl_easy_cleanup(hs[i]);
    free(rs[i].body);
  }
  curl_multi_cleanup(multi);
  cr_expect_eq(eval_total, (long long)N_STREAMS * N_PREDICT);

  /* The gauges during the load. */
  cr_expect_gt(val(mid, "cllama_running_sequences"), 0);
  cr_expect_eq(val(mid, "cllama_loaded_models"), 1);
  cr_expect_gt(val(mid, "cllama_kv_cells_used{model=\"rand:latest\"}"), N_STREAMS);
  cr_expect_gt(val(mid, "cllama_model_memory_bytes{model=\"rand:latest\"}"), 1e6);
  cr_expect_gt(val(mid, "cllama_tokens_generated_total"), 0);
  cr_expect_lt(val(mid, "cllama_tokens_generated_total"), (double)eval_total);

  /* The counters after: exactly what the load did. */
  json_t *m2 = scrape();
  const char *gen200 = "cllama_http_requests_total{method=\"POST\",endpoint=\"/api/generate\","
                       "code=\"200\"}";
  cr_expect_eq(val(m2, gen200) - val_or0(m0, gen200), N_STREAMS);
  cr_expect_eq(val(m2, "cllama_tokens_generated_total") - val(m0, "cllama_tokens_generated_total"),
               (double)eval_total);
  cr_expect_eq(val(m2, "cllama_time_to_first_token_seconds_count") -
                   val(m0, "cllama_time_to_first_token_seconds_count"),
               N_STREAMS);
  cr_expect_eq(val(m2, "cllama_inter_token_latency_seconds_count") -
                   val(m0, "cllama_inter_token_latency_seconds_count"),
               (double)(eval_total - N_STREAMS));
  cr_expect_gt(val(m2, "cllama_time_to_first_token_seconds_sum"), 0);
  cr_expect_gt(val(m2, "cllama_prompt_tokens_processed_total") +
                   val(m2, "cllama_prompt_tokens_reused_total"),
               N_STREAMS);
  cr_expect_eq(val(m2, "cllama_sequences_finished_total{reason=\"length\"}"), N_STREAMS);
  cr_expect_eq(val(m2, "cllama_running_sequences"), 0);
  cr_expect_eq(val(m2, "cllama_queue_depth"), 0);
  /* The scrapes themselves are counted, by endpoint and status. */
  cr_expect_geq(val(m2, "cllama_http_requests_total{method=\"GET\",endpoint=\"/metrics\","
                        "code=\"200\"}"),
                2);
  json_decref(m0);
  json_decref(mid);
  json_decref(m2);

  /* A 404 on an unknown path is one "other" series, not a new label. */
  struct resp r = http("GET", "/no/such/path/12345", NULL);
  free(r.body);
  json_t *m3 = scrape();
  cr_expect_geq(
      val(m3, "cllama_http_requests_total{method=\"GET\",endpoint=\"other\",code=\"404\"}"), 1);
  json_decref(m3);
}

Test(api_metrics, ready_and_tags, .init = setup, .fini = stop_server, .timeout = 120) {
  struct resp r = http("GET", "/api/ready", NULL);
  cr_expect_eq(r.status, 200, "%s", r.body);
  json_t *v = jparse(r.body);
  cr_expect(json_is_true(json_object_get(v, "ready")));
  cr_expect_eq(json_integer_value(json_object_get(v, "queue_depth")), 0);
  json_decref(v);
  free(r.body);
  /* A named model: 503 until it is loaded. */
  r = http("GET", "/api/ready?model=rand", NULL);
  cr_expect_eq(r.status, 503, "%s", r.body);
  cr_expect(strstr(r.body, "\"model_loaded\":false"), "%s", r.body);
  free(r.body);
  json_decref(post_json("/api/generate", "{\"model\":\"rand\"}", 200));
  r = http("GET", "/api/ready?model=rand", NULL);
  cr_expect_eq(r.status, 200, "%s", r.body);
  cr_expect(strstr(r.body, "\"loaded\":[\"rand:latest\"]"), "%s", r.body);
  free(r.body);
  r = http("HEAD", "/api/ready?model=rand%3Alatest", NULL);
  cr_expect_eq(r.status, 200);
  free(r.body);

  /* /api/tags: capabilities and the GGUF's lengths. */
  v = jparse((r = http("GET", "/api/tags", NULL)).body);
  free(r.body);
  json_t *m = json_array_get(json_object_get(v, "models"), 0);
  cr_assert(m);
  json_t *caps = json_object_get(m, "capabilities");
  cr_expect_eq(json_array_size(caps), 1, "%s", json_dumps(caps, 0));
  cr_expect_str_eq(json_string_value(json_array_get(caps, 0)), "completion");
  json_t *d = json_object_get(m, "details");
  cr_expect_eq(json_integer_value(json_object_get(d, "context_length")), 2048);
  cr_expect_eq(json_integer_value(json_object_get(d, "embedding_length")), 256);
  json_decref(v);

  /* /api/show merges options (Ollama's /show after /set parameter). */
  v = post_json("/api/show", "{\"model\":\"rand\",\"options\":{\"num_predict\":4,\"top_k\":3}}",
                200);
  cr_expect(strstr(jstr(v, "parameters"), "num_predict                    4"), "%s",
            jstr(v, "parameters"));
  cr_expect(strstr(jstr(v, "modelfile"), "PARAMETER top_k 3"), "%s", jstr(v, "modelfile"));
  json_decref(v);
  r = http("POST", "/api/show", "{\"model\":\"rand\",\"options\":{\"num_predict\":\"four\"}}");
  cr_expect_eq(r.status, 400, "%s", r.body);
  free(r.body);
}

/* cllama_kv_cells_used of the loaded model, read from the exposition
 * text (no parser needed for one gauge); -1 when absent. */
static long kv_cells_used(void) {
  struct resp r = http("GET", "/metrics", NULL);
  cr_assert_eq(r.status, 200);
  long v = -1;
  for (char *l = r.body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
    if (strncmp(l, "cllama_kv_cells_used{", 21) == 0) {
      const char *sp = strchr(l, '}');
      if (sp)
        v = strtol(sp + 1, NULL, 10);
    }
  free(r.body);
  return v;
}

/* Two sequences sharing a prompt: the second copies the first's cached
 * prefix (the KV pool shares those cells), so the gauge grows by the cells
 * the second one adds, not by the whole prompt again (issue 17). */
Test(api_metrics, kv_cells_count_a_shared_prefix_once, .init = setup, .fini = stop_server,
     .timeout = 120) {
  char prompt[2048] = "", body[2300];
  for (int i = 0; i < 120; i++)
    strcat(prompt, i % 2 ? "blue " : "sky ");
  snprintf(body, sizeof(body),
           "{\"model\":\"rand\",\"prompt\":\"%s\",\"raw\":true,\"options\":"
           "{\"num_predict\":1,\"temperature\":0}}",
           prompt);
  json_t *v = post_json("/api/generate", body, 200);
  const long n_prompt = (long)json_integer_value(json_object_get(v, "prompt_eval_count"));
  json_decref(v);
  const long first = kv_cells_used();
  cr_assert_geq(n_prompt, 100);
  cr_expect_geq(first, n_prompt, "one sequence of %ld prompt tokens holds %ld cells", n_prompt,
                first);
  v = post_json("/api/generate", body, 200);
  json_decref(v);
  const long both = kv_cells_used();
  cr_expect_leq(both - first, 4, "the shared prefix of %ld tokens counted again: %ld then %ld",
                n_prompt, first, both);
  cr_expect_gt(both, first - 1);
}

/* ---------------------------------------------------------------- tokenize
 * /api/tokenize against llama.cpp's own tokenization of the reference
 * prompt (ids and pieces, in ../shared/ref), detokenize back, and a chat
 * request's count equal to the prompt_eval_count /api/chat reports for it. */
static void tok_setup(void) {
  NEED_SHARED();
  make_store();
  add_model("stories", "stories260K-f32.gguf",
            "{{ if .System }}[S] {{ .System }} {{ end }}"
            "{{ range .Messages }}<{{ .Role }}> {{ .Content }} {{ end }}",
            NULL, NULL);
  start_server(NULL);
}

Test(api_tokenize, llama_cpp_ids_pieces_detok_and_chat_count, .init = tok_setup,
     .fini = stop_server, .timeout = 120) {
  char path[1200];
  snprintf(path, sizeof(path), "%s/ref/stories260K-f32/p1.kvf32.json", shared_dir());
  json_error_t e;
  json_t *ref = json_load_file(path, 0, &e);
  cr_assert(ref, "%s", e.text);
  char body[1024];
  snprintf(body, sizeof(body),
           "{\"model\":\"stories\",\"content\":\"%s\",\"add_special\":true,\"with_pieces\":true}",
           jstr(ref, "prompt"));
  json_t *v = post_json("/api/tokenize", body, 200);
  json_t *toks = json_object_get(v, "tokens"), *want = json_object_get(ref, "prompt_tokens");
  cr_assert_eq(json_array_size(toks), json_array_size(want), "%s", json_dumps(toks, 0));
  for (size_t i = 0; i < json_array_size(want); i++) {
    json_t *t = json_array_get(toks, i);
    cr_expect_eq(json_integer_value(json_object_get(t, "id")),
                 json_integer_value(json_array_get(want, i)));
    cr_expect_str_eq(jstr(t, "piece"),
                     json_string_value(json_array_get(json_object_get(ref, "prompt_pieces"), i)));
  }
  json_decref(v);
  /* add_special false (the default, as llama.cpp's): no BOS. */
  snprintf(body, sizeof(body), "{\"model\":\"stories\",\"content\":\"%s\"}", jstr(ref, "prompt"));
  v = post_json("/api/tokenize", body, 200);
  toks = json_object_get(v, "tokens");
  cr_expect_eq(json_array_size(toks), json_array_size(want) - 1);
  cr_expect_eq(json_integer_value(json_array_get(toks, 0)),
               json_integer_value(json_array_get(want, 1)));
  char *ids = json_dumps(toks, JSON_COMPACT);
  snprintf(body, sizeof(body), "{\"model\":\"stories\",\"tokens\":%s}", ids);
  free(ids);
  json_decref(v);
  v = post_json("/api/detokenize", body, 200);
  cr_expect_str_eq(jstr(v, "content"), jstr(ref, "prompt"));
  json_decref(v);
  json_decref(ref);

  /* The count of a chat request is what /api/chat processes for it. */
  const char *chat = "{\"model\":\"stories\",\"messages\":[{\"role\":\"system\",\"content\":"
                     "\"Be brief.\"},{\"role\":\"user\",\"content\":\"Once upon a time\"},"
                     "{\"role\":\"assistant\",\"content\":\"there was a cat\"},{\"role\":\"user\","
                     "\"content\":\"and then?\"}]";
  snprintf(body, sizeof(body), "%s}", chat);
  v = post_json("/api/tokenize", body, 200);
  json_int_t count = json_integer_value(json_object_get(v, "count"));
  cr_expect_eq((size_t)count, json_array_size(json_object_get(v, "tokens")));
  cr_expect(json_is_false(json_object_get(v, "truncated")));
  json_decref(v);
  snprintf(body, sizeof(body), "%s,\"options\":{\"num_predict\":1}}", chat);
  v = post_json("/api/chat", body, 200);
  cr_expect_eq(json_integer_value(json_object_get(v, "prompt_eval_count")), count);
  cr_expect_gt(count, 20); /* the template's text is counted too */
  json_decref(v);

  /* Errors. */
  struct resp r = http("POST", "/api/tokenize", "{\"model\":\"missing\",\"content\":\"x\"}");
  cr_expect_eq(r.status, 404, "%s", r.body);
  free(r.body);
  r = http("POST", "/api/tokenize",
           "{\"model\":\"missing\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
  cr_expect_eq(r.status, 404, "%s", r.body);
  free(r.body);
  r = http("POST", "/api/detokenize", "{\"model\":\"stories\",\"tokens\":[1,99999]}");
  cr_expect_eq(r.status, 400, "%s", r.body);
  free(r.body);
  r = http("POST", "/api/detokenize", "{\"model\":\"stories\",\"tokens\":\"abc\"}");
  cr_expect_eq(r.status, 400, "%s", r.body);
  free(r.body);
  r = http("POST", "/api/tokenize", "{\"model\":\"stories\",\"content\":\"x\",\"add_special\":1}");
  cr_expect_eq(r.status, 400, "%s", r.body);
  free(r.body);
}
