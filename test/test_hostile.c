/* test_hostile.c — runs the attack campaign test/hostile/hostile.py (issue
 * 13) against a real `cllama serve` ($CLLAMA_BIN) and fails when any attack
 * crashed the server, got a wrong answer, or left descriptors or memory
 * behind. The table it prints is in this test's output. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *shared_dir(void) {
  const char *s = getenv("CLLAMA_SHARED");
  return s && *s ? s : "../shared";
}

Test(hostile, campaign, .timeout = 300) {
  const char *bin = getenv("CLLAMA_BIN");
  cr_assert(bin, "CLLAMA_BIN not set");
  char model[1200];
  snprintf(model, sizeof(model), "%s/models/stories260K-f32.gguf", shared_dir());
  if (access(model, R_OK) != 0 || system("command -v python3 >/dev/null 2>&1") != 0) {
    fprintf(stderr, "SKIP: hostile campaign needs python3 and CLLAMA_SHARED\n");
    cr_skip_test("python3 or CLLAMA_SHARED missing");
  }
  const char *script = "test/hostile/hostile.py";
  char alt[1200];
  if (access(script, R_OK) != 0) { /* run from the build directory */
    const char *b = getenv("CLLAMA_BUILD");
    snprintf(alt, sizeof(alt), "%s/../../test/hostile/hostile.py", b ? b : ".");
    script = alt;
  }
  char cmd[4000];
  snprintf(cmd, sizeof(cmd), "python3 '%s' --bin '%s' --shared '%s' %s%s 1>&2", script, bin,
           shared_dir(), getenv("CLLAMA_HOSTILE_TABLE") ? "--table " : "",
           getenv("CLLAMA_HOSTILE_TABLE") ? getenv("CLLAMA_HOSTILE_TABLE") : "");
  int rc = system(cmd);
  cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "an attack failed (table above)");
}
