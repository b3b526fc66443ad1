/* test_cli_haproxy.c — the load-balancer recipe (issue 17) is tested, not
 * only documented: bench/haproxy.sh --check starts three `cllama serve`
 * instances behind HAProxy with bench/haproxy.cfg and sends twelve two-turn
 * chats through it; it fails unless every second turn reaches the instance
 * of its first turn and reuses its cached prefix there (that instance's
 * /metrics), with the conversations spread over several instances. SKIP
 * without haproxy or the shared models. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

Test(cli_haproxy, second_turns_reach_the_instance_with_the_prefix, .timeout = 180) {
  const char *bin = getenv("CLLAMA_BIN");
  cr_assert(bin, "CLLAMA_BIN not set");
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "CLLAMA_BIN='%s' MODEL=\"${CLLAMA_SHARED:-../shared}/models/tiny-llama-rand-q4_0.gguf\" "
           "bash bench/haproxy.sh --check 2>&1",
           bin);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  char out[16384];
  size_t n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = 0;
  int st = pclose(p);
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (rc == 77) {
    fprintf(stderr, "SKIP: %s", out);
    cr_skip("haproxy or the shared models missing");
  }
  cr_assert_eq(rc, 0, "bench/haproxy.sh --check failed:\n%s", out);
  cr_expect(strstr(out, "routing check passed"), "%s", out);
}
