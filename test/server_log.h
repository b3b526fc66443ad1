/* server_log.h — how a `cllama serve` child ended, for the tests that start
 * one (api_harness.h, test_integration.c). After SIGTERM the server must exit
 * 0 and its log (stderr) must hold no sanitizer report: under `make check` an
 * ASan/LSan/UBSan report inside the server would otherwise vanish with the
 * deleted log. A bad ending fails the test and prints the log. */
#ifndef CLLAMA_TEST_SERVER_LOG_H
#define CLLAMA_TEST_SERVER_LOG_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* Lines that mean a sanitizer found something. */
static const char *const server_log_reports[] = {
    "ERROR: AddressSanitizer",  "ERROR: LeakSanitizer",   "runtime error:",
    "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer", "SUMMARY: UndefinedBehaviorSanitizer",
};

/* The first sanitizer line in the log at path, copied to line; 0 if none. */
static __attribute__((unused)) int server_log_report(const char *path, char *line, size_t cap) {
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  char buf[4096];
  int found = 0;
  while (!found && fgets(buf, sizeof(buf), f))
    for (size_t i = 0; i < sizeof(server_log_reports) / sizeof(server_log_reports[0]); i++)
      if (strstr(buf, server_log_reports[i])) {
        snprintf(line, cap, "%s", buf);
        found = 1;
        break;
      }
  fclose(f);
  return found;
}

static __attribute__((unused)) void server_log_print(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f)
    return;
  fprintf(stderr, "---- server log %s\n", path);
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
    fwrite(buf, 1, n, stderr);
  fprintf(stderr, "---- end of server log\n");
  fclose(f);
}

/* Checks a server that has ended: status from waitpid (or -1 when it had to
 * be killed after not stopping), log its stderr. Returns 0 when it ended
 * well; otherwise prints the log and the reason and aborts the test process.
 * Criterion ignores assertions in a suite's .fini, where the tests stop their
 * server; a process that crashes there is reported ("crashed during its
 * setup or teardown", exit status 1), and test/run.sh counts that as a
 * failed test. */
static __attribute__((unused)) int server_log_check(int status, const char *log) {
  char line[4096] = "";
  const char *why = NULL;
  char code[64];
  if (status == -1)
    why = "did not stop within its time after SIGTERM";
  else if (WIFSIGNALED(status)) {
    snprintf(code, sizeof(code), "killed by signal %d", WTERMSIG(status));
    why = code;
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    snprintf(code, sizeof(code), "exit status %d", WEXITSTATUS(status));
    why = code;
  }
  int report = server_log_report(log, line, sizeof(line));
  if (!why && !report)
    return 0;
  server_log_print(log);
  fprintf(stderr, "FAIL: cllama serve ended badly: %s%s%s\n", why ? why : "exit status 0",
          report ? "; sanitizer report: " : "", report ? line : "");
  fflush(stderr);
  abort();
}

#endif
