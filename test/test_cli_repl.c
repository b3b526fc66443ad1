/* test_cli_repl.c — `cllama run` as a person meets it (issue 17): the
 * interactive chat driven through a pseudo-terminal against a live server
 * with a test model, reading the screen: /set parameter num_predict 4 takes
 * effect (the --verbose stats say 4 tokens), /show modelfile prints the
 * session's parameter, Ctrl-C mid-answer returns to the prompt with the
 * conversation kept (/save stores it; /api/show reads it back), Up recalls
 * an earlier line, /bye exits. Also the one-shot forms: --help is not a
 * prompt, --verbose prints Ollama's timing block, ps says "from now",
 * stop unloads. */
#include "api_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <termios.h>

struct screen {
  int fd;
  pid_t pid;
  char *buf;
  size_t len, cap;
};

static void screen_read(struct screen *s, int timeout_ms) {
  struct pollfd p = {.fd = s->fd, .events = POLLIN};
  if (poll(&p, 1, timeout_ms) <= 0)
    return;
  char tmp[4096];
  ssize_t n = read(s->fd, tmp, sizeof(tmp));
  if (n <= 0)
    return;
  if (s->len + (size_t)n + 1 > s->cap) {
    s->cap = (s->len + (size_t)n + 1) * 2;
    s->buf = realloc(s->buf, s->cap);
  }
  memcpy(s->buf + s->len, tmp, (size_t)n);
  s->len += (size_t)n;
  s->buf[s->len] = 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits for text to appear on the screen after offset from; returns the
 * offset just past it. Fails the test after limit seconds. */
static size_t expect_text(struct screen *s, size_t from, const char *text, double limit) {
  double end = now_s() + limit;
  for (;;) {
    if (s->len > from) {
      char *hit = strstr(s->buf + from, text);
      if (hit)
        return (size_t)(hit - s->buf) + strlen(text);
    }
    cr_assert(now_s() < end, "screen never showed \"%s\"; it shows:\n%s", text,
              s->len > from ? s->buf + from : "(nothing new)");
    screen_read(s, 100);
  }
}

static void type(struct screen *s, const char *keys) {
  size_t n = strlen(keys);
  cr_assert_eq(write(s->fd, keys, n), (ssize_t)n);
}

static const char *PROMPT = "Send a message (/? for help)";

static void start_repl(struct screen *s, const char *model) {
  memset(s, 0, sizeof(*s));
  struct winsize ws = {.ws_row = 50, .ws_col = 200};
  const char *bin = getenv("CLLAMA_BIN");
  char host[64];
  snprintf(host, sizeof(host), "127.0.0.1:%d", H.port);
  s->pid = forkpty(&s->fd, NULL, NULL, &ws);
  cr_assert(s->pid >= 0);
  if (s->pid == 0) {
    setenv("OLLAMA_HOST", host, 1);
    setenv("HOME", H.dir, 1);
    setenv("TERM", "xterm", 1);
    execl(bin, bin, "run", model, (char *)NULL);
    _exit(127);
  }
}

static int wait_exit(struct screen *s, double limit) {
  double end = now_s() + limit;
  int st = 0;
  while (waitpid(s->pid, &st, WNOHANG) == 0) {
    if (now_s() > end) {
      kill(s->pid, SIGKILL);
      waitpid(s->pid, &st, 0);
      cr_assert(false, "cllama run did not exit; screen:\n%s", s->buf ? s->buf : "");
    }
    screen_read(s, 50);
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The test model: random weights (no end-of-text in sight, so an answer
 * runs as long as num_predict lets it), 16 tokens by default. */
static void setup(void) {
  NEED_SHARED();
  make_store();
  add_model("rand", "tiny-llama-rand-q4_0.gguf", NULL, NULL, "{\"num_predict\":16}");
  start_server(NULL);
}

Test(cli_repl, set_show_interrupt_save_history_bye, .init = setup, .fini = stop_server,
     .timeout = 240) {
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "mkdir -p '%s/.ollama'", H.dir);
  cr_assert_eq(system(cmd), 0);
  struct screen s;
  start_repl(&s, "rand");
  size_t at = expect_text(&s, 0, PROMPT, 60);

  /* /? lists the commands. */
  type(&s, "/?\r");
  at = expect_text(&s, at, "/set            Set session variables", 10);
  at = expect_text(&s, at, PROMPT, 10);

  /* /set parameter num_predict 4 takes effect: --verbose's block says 4. */
  type(&s, "/set parameter num_predict 4\r");
  at = expect_text(&s, at, "Set parameter 'num_predict' to '4'", 10);
  at = expect_text(&s, at, PROMPT, 10);
  type(&s, "/set verbose\r");
  at = expect_text(&s, at, "Set 'verbose' mode.", 10);
  at = expect_text(&s, at, PROMPT, 10);
  type(&s, "hello there\r");
  at = expect_text(&s, at, "eval count:           4 token(s)", 60);
  at = expect_text(&s, at, "eval rate:", 10);
  at = expect_text(&s, at, PROMPT, 10);

  /* A slash command is never sent to the model as a message. */
  type(&s, "/show modelfile\r");
  at = expect_text(&s, at, "FROM ", 10);
  at = expect_text(&s, at, "PARAMETER num_predict 4", 10);
  at = expect_text(&s, at, PROMPT, 10);
  type(&s, "/show nonsense\r");
  at = expect_text(&s, at, "Unknown command 'nonsense'. Type /? for help", 10);
  at = expect_text(&s, at, PROMPT, 10);

  /* Ctrl-C mid-answer: the answer stops, the prompt comes back. */
  type(&s, "/set parameter num_predict 100000\r");
  at = expect_text(&s, at, "Set parameter 'num_predict' to '100000'", 10);
  at = expect_text(&s, at, PROMPT, 10);
  type(&s, "tell me a long story\r");
  at = expect_text(&s, at, "tell me a long story", 10);
  double t_end = now_s() + 60;
  while (s.len < at + 400) { /* some of the answer on screen */
    cr_assert(now_s() < t_end, "no answer streamed:\n%s", s.buf + at);
    screen_read(&s, 100);
  }
  type(&s, "\x03");
  at = expect_text(&s, at, PROMPT, 20);
  cr_expect_null(strstr(s.buf + at - strlen(PROMPT), "eval count:"),
                 "a stopped answer printed stats");

  /* The conversation was kept: /save stores it as a model's messages. */
  type(&s, "/save snap\r");
  at = expect_text(&s, at, "Created new model 'snap'", 30);
  at = expect_text(&s, at, PROMPT, 10);
  json_t *r = post_json("/api/show", "{\"model\":\"snap\"}", 200);
  json_t *msgs = json_object_get(r, "messages");
  cr_assert_eq(json_array_size(msgs), 4, "messages: %s", json_dumps(msgs, 0));
  cr_expect_str_eq(jstr(json_array_get(msgs, 0), "role"), "user");
  cr_expect_str_eq(jstr(json_array_get(msgs, 0), "content"), "hello there");
  cr_expect_str_eq(jstr(json_array_get(msgs, 1), "role"), "assistant");
  cr_expect_str_eq(jstr(json_array_get(msgs, 2), "content"), "tell me a long story");
  cr_expect_str_eq(jstr(json_array_get(msgs, 3), "role"), "assistant");
  cr_expect_gt(strlen(jstr(json_array_get(msgs, 3), "content")), 0,
               "the stopped answer was not kept");
  cr_expect(strstr(jstr(r, "parameters"), "num_predict"), "parameters: %s", jstr(r, "parameters"));
  json_decref(r);

  /* History: Up 8 times recalls "/set parameter num_predict 4". */
  type(&s, "\033[A\033[A\033[A\033[A\033[A\033[A\033[A\033[A");
  at = expect_text(&s, at, ">>> /set parameter num_predict 4", 10);
  type(&s, "\r");
  at = expect_text(&s, at, "Set parameter 'num_predict' to '4'", 10);
  at = expect_text(&s, at, PROMPT, 10);

  /* Ctrl-C on an empty line says how to leave; /clear; /bye exits. */
  type(&s, "\x03");
  at = expect_text(&s, at, "Use Ctrl + d or /bye to exit.", 10);
  type(&s, "/clear\r");
  at = expect_text(&s, at, "Cleared session context", 10);
  at = expect_text(&s, at, PROMPT, 10);
  type(&s, "/bye\r");
  cr_expect_eq(wait_exit(&s, 20), 0);
  close(s.fd);
  free(s.buf);

  /* The lines typed are in ~/.ollama/history, as Ollama keeps them. */
  snprintf(cmd, sizeof(cmd), "grep -qx 'hello there' '%s/.ollama/history'", H.dir);
  cr_expect_eq(system(cmd), 0, "history file not written");
}

/* Runs the binary with argv (NULL-terminated) and OLLAMA_HOST set; returns
 * stdout+stderr and the exit status. */
static char *run_cli(int *status, const char *const *args) {
  char cmd[2048];
  int n = snprintf(cmd, sizeof(cmd), "OLLAMA_HOST=127.0.0.1:%d '%s'", H.port, getenv("CLLAMA_BIN"));
  for (const char *const *a = args; *a; a++)
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " '%s'", *a);
  snprintf(cmd + n, sizeof(cmd) - (size_t)n, " </dev/null 2>&1");
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  size_t cap = 1 << 16, len = 0, k;
  char *out = malloc(cap);
  while ((k = fread(out + len, 1, cap - len - 1, p)) > 0)
    len += k;
  out[len] = 0;
  int st = pclose(p);
  *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return out;
}

Test(cli_repl, one_shot_flags_ps_stop, .init = setup, .fini = stop_server, .timeout = 120) {
  int st;
  /* --help after the model is help, not a prompt: nothing is loaded. */
  char *out = run_cli(&st, (const char *[]){"run", "rand", "--help", NULL});
  cr_expect_eq(st, 0);
  cr_expect(strstr(out, "Usage: cllama run MODEL"), "%s", out);
  free(out);
  struct resp ps = http("GET", "/api/ps", NULL);
  cr_expect(strstr(ps.body, "\"models\":[]"), "--help loaded the model: %s", ps.body);
  free(ps.body);
  static const char *cmds[] = {"serve", "list",     "pull",     "push",       "show",
                               "ps",    "rm",       "cp",       "create",     "stop",
                               "run",   "quantize", "tokenize", "detokenize", "infer"};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(*cmds); i++) {
    out = run_cli(&st, (const char *[]){cmds[i], "--help", NULL});
    cr_expect_eq(st, 0, "%s --help: exit %d\n%s", cmds[i], st, out);
    cr_expect(strstr(out, "Usage"), "%s --help:\n%s", cmds[i], out);
    free(out);
  }

  /* --verbose after the model works and prints Ollama's timing block. */
  out = run_cli(&st, (const char *[]){"run", "rand", "--verbose", "--nowordwrap", "hi", NULL});
  cr_expect_eq(st, 0, "%s", out);
  cr_expect(strstr(out, "total duration:"), "%s", out);
  cr_expect(strstr(out, "eval count:           16 token(s)"), "%s", out);
  cr_expect(strstr(out, "eval rate:"), "%s", out);
  free(out);
  out = run_cli(&st, (const char *[]){"run", "rand", "--bogus", NULL});
  cr_expect_eq(st, 2);
  cr_expect(strstr(out, "unknown flag: --bogus"), "%s", out);
  free(out);

  /* ps: a human time; stop unloads. */
  out = run_cli(&st, (const char *[]){"ps", NULL});
  cr_expect_eq(st, 0);
  cr_expect(strstr(out, "rand:latest") && strstr(out, "minutes from now"), "%s", out);
  free(out);
  out = run_cli(&st, (const char *[]){"stop", "rand", NULL});
  cr_expect_eq(st, 0, "%s", out);
  free(out);
  out = run_cli(&st, (const char *[]){"ps", NULL});
  cr_expect_null(strstr(out, "rand:latest"), "%s", out);
  free(out);
  out = run_cli(&st, (const char *[]){"run", "--keepalive", "forever", "rand", "x", NULL});
  cr_expect_eq(st, 2, "%s", out);
  free(out);
}
