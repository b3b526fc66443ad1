/* test_api_clients.c — real clients against `cllama serve`: the seed API
 * reference's Python example (test/seed_example.py, python3) and the
 * official JavaScript client (test/js, npm package "ollama", when node and
 * test/js/node_modules are present; `npm install --prefix test/js`). */
#include "api_harness.h"

static void setup(void) {
  if (!have_shared())
    return;
  make_store();
  add_model("llama2", "stories260K-f32.gguf", "{{- range .Messages }}{{ .Content }}{{ end }}", NULL,
            "{\"temperature\":0,\"num_predict\":24}");
  /* A template with tools and Qwen-style calls, for the agent frameworks. */
  add_model("agent", "stories260K-f32.gguf",
            "{{- if .Tools }}Tools: {{ .Tools }}\n{{ end }}{{ range .Messages }}<|{{ .Role }}|>"
            "{{ .Content }}{{ if .ToolCalls }}<tool_call>{{ range .ToolCalls }}{\"name\":\""
            "{{ .Function.Name }}\",\"arguments\":{{ .Function.Arguments }}}{{ end }}"
            "</tool_call>{{ end }}\n{{ end }}<|assistant|>",
            NULL, NULL);
  start_server(NULL);
}
static void teardown(void) {
  stop_server();
}

TestSuite(api_clients, .init = setup, .fini = teardown, .timeout = 240);

/* The repository root: CLLAMA_BUILD is <root>/build/<mode>. */
static void repo_root(char *buf, size_t n) {
  const char *b = getenv("CLLAMA_BUILD");
  snprintf(buf, n, "%s/../..", b ? b : ".");
}

Test(api_clients, seed_python_example) {
  NEED_SHARED();
  if (system("python3 -c '' 2>/dev/null") != 0) {
    fprintf(stderr, "SKIP: python3 not found\n");
    cr_skip("python3 not found");
  }
  char root[600], cmd[1500];
  repo_root(root, sizeof(root));
  snprintf(cmd, sizeof(cmd),
           "OLLAMA_URL=%s SEED_MODEL=llama2 python3 '%s/test/seed_example.py' "
           "> '%s/py.out' 2>&1",
           H.base, root, H.dir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof(cmd), "cat '%s/py.out' >&2", H.dir);
    system(cmd);
  }
  cr_expect_eq(rc, 0);
}

Test(api_clients, ollama_js_client) {
  NEED_SHARED();
  char root[600], cmd[1500];
  repo_root(root, sizeof(root));
  snprintf(cmd, sizeof(cmd),
           "test -d '%s/test/js/node_modules/ollama' && node --version "
           ">/dev/null 2>&1",
           root);
  if (system(cmd) != 0) {
    fprintf(stderr, "SKIP: node or test/js/node_modules missing (npm install --prefix test/js)\n");
    cr_skip("node or test/js/node_modules missing");
  }
  snprintf(cmd, sizeof(cmd), "cd '%s/test/js' && node client_test.mjs %s llama2 > '%s/js.out' 2>&1",
           root, H.base, H.dir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof(cmd), "cat '%s/js.out' >&2", H.dir);
    system(cmd);
  }
  cr_expect_eq(rc, 0);
}

/* Runs `node <script> <base> <model>` in test/<dir> when node and the
 * package are installed (`make js-deps`); otherwise a skip. */
static void run_node(const char *dir, const char *pkg, const char *script, const char *model) {
  NEED_SHARED();
  char root[600], cmd[2000];
  repo_root(root, sizeof(root));
  snprintf(cmd, sizeof(cmd),
           "test -d '%s/test/%s/node_modules/%s' && node --version >/dev/null 2>&1", root, dir,
           pkg);
  if (system(cmd) != 0) {
    fprintf(stderr, "SKIP: node or test/%s/node_modules missing (npm install --prefix test/%s)\n",
            dir, dir);
    cr_skip("node or test/%s/node_modules missing", dir);
  }
  snprintf(cmd, sizeof(cmd), "cd '%s/test/%s' && node %s %s %s > '%s/%s.out' 2>&1", root, dir,
           script, H.base, model, H.dir, dir);
  int rc = system(cmd);
  if (rc != 0) {
    snprintf(cmd, sizeof(cmd), "cat '%s/%s.out' >&2", H.dir, dir);
    cr_expect_eq(system(cmd), 0);
  }
  cr_expect_eq(rc, 0, "%s/%s failed", dir, script);
}

/* LangChain withStructuredOutput and bindTools, AI SDK generateObject and
 * tools with toolChoice (test/js-agents/agents_test.mjs). */
Test(api_clients, langchain_and_ai_sdk) {
  run_node("js-agents", "@langchain/ollama", "agents_test.mjs", "agent");
}

/* openai: tools with tool_choice, response_format json_schema, and
 * responses.create streamed and not (test/js-openai/agents_test.mjs). */
Test(api_clients, openai_tools_formats_and_responses) {
  run_node("js-openai", "openai", "agents_test.mjs", "agent");
}
