/* run.c — `cllama run MODEL [PROMPT] [flags]`, as Ollama's: with a prompt
 * (or text on stdin) one answer streamed to stdout; without, an interactive
 * chat with Ollama's slash commands (/set, /show, /load, /save, /clear, /?,
 * /bye), a line editor with history, and Ctrl-C that stops the answer being
 * written and keeps the conversation. A model that is not there is pulled
 * first, with `cllama pull`'s progress bars. */
#include "api/gen.h"
#include "client.h"
#include "cllama/api.h"
#include "cllama/cli.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct session {
  char model[512];
  json_t *messages; /* the conversation */
  json_t *options;  /* /set parameter ... */
  char *system;     /* /set system (NULL: the model's) */
  json_t *format;   /* "json" or a schema; NULL: none */
  json_t *think;    /* true/false/"high"...; NULL: the model's default */
  bool hide_thinking;
  char *keepalive;
  bool verbose, wordwrap, history;
  bool insecure;
};

/* ---------------------------------------------------------------- output */

/* Streams text to stdout; with word wrap (a terminal, not --nowordwrap),
 * a word that would cross the right edge starts a new line. */
struct printer {
  bool wrap;
  int width, col;
  char word[512];
  size_t wlen;
  int wcols;
};

static int term_width(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10)
    return ws.ws_col;
  return 80;
}

static void flush_word(struct printer *p) {
  if (!p->wlen)
    return;
  if (p->col > 0 && p->col + p->wcols > p->width - 1) {
    fputc('\n', stdout);
    p->col = 0;
  }
  fwrite(p->word, 1, p->wlen, stdout);
  p->col += p->wcols;
  p->wlen = 0;
  p->wcols = 0;
}

static void print_text(struct printer *p, const char *s) {
  if (!p->wrap) {
    fputs(s, stdout);
    fflush(stdout);
    return;
  }
  for (; *s; s++) {
    char c = *s;
    if (c == '\n') {
      flush_word(p);
      fputc('\n', stdout);
      p->col = 0;
    } else if (c == ' ') {
      flush_word(p);
      if (p->col + 1 >= p->width) {
        fputc('\n', stdout);
        p->col = 0;
      } else {
        fputc(' ', stdout);
        p->col++;
      }
    } else {
      if (p->wlen + 1 >= sizeof(p->word)) {
        fwrite(p->word, 1, p->wlen, stdout);
        p->col += p->wcols;
        p->wlen = 0;
        p->wcols = 0;
      }
      p->word[p->wlen++] = c;
      if (((unsigned char)c & 0xC0) != 0x80)
        p->wcols++;
    }
  }
  /* A word is shown as soon as it is sure to fit; otherwise it waits for
   * its end to know whether it needs a new line. */
  if (p->wlen && p->col + p->wcols < p->width - 1) {
    fwrite(p->word, 1, p->wlen, stdout);
    p->col += p->wcols;
    p->wlen = 0;
    p->wcols = 0;
  }
  fflush(stdout);
}

static void printer_end(struct printer *p) {
  flush_word(p);
  fflush(stdout);
}

/* ---------------------------------------------------------------- streaming */

struct answer {
  struct printer pr;
  bool chat, hide_thinking, thinking, any_content;
  char *text; /* the assistant's answer */
  size_t len;
  char *thought;
  size_t tlen;
  json_t *final; /* the done:true object */
};

static void append(char **buf, size_t *len, const char *s) {
  size_t n = strlen(s);
  char *t = realloc(*buf, *len + n + 1);
  if (!t)
    return;
  memcpy(t + *len, s, n + 1);
  *buf = t;
  *len += n;
}

static void on_answer_line(void *ud, json_t *o) {
  struct answer *a = ud;
  json_t *msg = json_object_get(o, "message");
  const char *think = a->chat ? json_string_value(json_object_get(msg, "thinking"))
                              : json_string_value(json_object_get(o, "thinking"));
  const char *s = a->chat ? json_string_value(json_object_get(msg, "content"))
                          : json_string_value(json_object_get(o, "response"));
  if (think && *think) {
    append(&a->thought, &a->tlen, think);
    if (!a->hide_thinking) {
      if (!a->thinking) {
        a->thinking = true;
        print_text(&a->pr, "Thinking...\n");
      }
      print_text(&a->pr, think);
    }
  }
  if (s && *s) {
    if (a->thinking) {
      a->thinking = false;
      print_text(&a->pr, "\n...done thinking.\n\n");
    }
    a->any_content = true;
    append(&a->text, &a->len, s);
    print_text(&a->pr, s);
  }
  if (json_is_true(json_object_get(o, "done"))) {
    json_decref(a->final);
    a->final = json_incref(o);
  }
}

/* Ollama's --verbose block (api.Metrics.Summary), on stderr. */
static void print_stats(json_t *f) {
  if (!f)
    return;
  char d[64];
  cll__cli_go_duration(json_integer_value(json_object_get(f, "total_duration")), d, sizeof(d));
  fprintf(stderr, "total duration:       %s\n", d);
  cll__cli_go_duration(json_integer_value(json_object_get(f, "load_duration")), d, sizeof(d));
  fprintf(stderr, "load duration:        %s\n", d);
  long long pn = json_integer_value(json_object_get(f, "prompt_eval_count"));
  long long pd = json_integer_value(json_object_get(f, "prompt_eval_duration"));
  long long en = json_integer_value(json_object_get(f, "eval_count"));
  long long ed = json_integer_value(json_object_get(f, "eval_duration"));
  if (pn > 0)
    fprintf(stderr, "prompt eval count:    %lld token(s)\n", pn);
  if (pd > 0) {
    cll__cli_go_duration(pd, d, sizeof(d));
    fprintf(stderr, "prompt eval duration: %s\n", d);
    fprintf(stderr, "prompt eval rate:     %.2f tokens/s\n", (double)pn / ((double)pd / 1e9));
  }
  if (en > 0)
    fprintf(stderr, "eval count:           %lld token(s)\n", en);
  if (ed > 0) {
    cll__cli_go_duration(ed, d, sizeof(d));
    fprintf(stderr, "eval duration:        %s\n", d);
    fprintf(stderr, "eval rate:            %.2f tokens/s\n", (double)en / ((double)ed / 1e9));
  }
}

static void on_sigint(int sig) {
  (void)sig;
  cll__cli_cancel = 1;
}

/* Runs one request whose answer streams; Ctrl-C stops it (the partial
 * answer is kept in a). Returns the HTTP status or CLL__CLI_CANCELLED. */
static long stream_answer(struct session *s, const char *path, json_t *req, struct answer *a) {
  a->pr.wrap = s->wordwrap && isatty(STDOUT_FILENO);
  a->pr.width = term_width();
  a->hide_thinking = s->hide_thinking;
  char err[1024];
  cll__cli_cancel = 0;
  struct sigaction sa = {0}, old;
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old);
  long st = cll__cli_request("POST", path, req, NULL, on_answer_line, a, err, sizeof(err));
  sigaction(SIGINT, &old, NULL);
  printer_end(&a->pr);
  if (st == CLL__CLI_CANCELLED) {
    cll__cli_cancel = 0;
    return st;
  }
  if (st != 200) {
    if (a->any_content || a->thinking)
      fputc('\n', stdout);
    fprintf(stderr, "Error: %s\n", err);
  }
  return st;
}

static void add_common(struct session *s, json_t *req) {
  if (json_object_size(s->options))
    json_object_set(req, "options", s->options);
  if (s->format)
    json_object_set(req, "format", s->format);
  if (s->think)
    json_object_set(req, "think", s->think);
  if (s->keepalive)
    json_object_set_new(req, "keep_alive", json_string(s->keepalive));
}

/* ---------------------------------------------------------------- model */

static bool is_not_found(const char *err) {
  return strstr(err, "not found") != NULL;
}

/* Loads the model (POST /api/generate without a prompt); pulls it first
 * when the server does not have it. */
static int load_model(struct session *s, bool pull_missing) {
  char err[1024];
  json_t *req = json_pack("{s:s}", "model", s->model);
  if (s->keepalive)
    json_object_set_new(req, "keep_alive", json_string(s->keepalive));
  long st = cll__cli_request("POST", "/api/generate", req, NULL, NULL, NULL, err, sizeof(err));
  if (st == 404 && pull_missing && is_not_found(err)) {
    if (cll__cli_pull_model(s->model, s->insecure) != 0) {
      json_decref(req);
      return 1;
    }
    st = cll__cli_request("POST", "/api/generate", req, NULL, NULL, NULL, err, sizeof(err));
  }
  json_decref(req);
  if (st != 200) {
    fprintf(stderr, "Error: %s\n", err);
    return 1;
  }
  return 0;
}

static json_t *show_request(struct session *s, char *err, size_t errsize, long *st) {
  json_t *req = json_pack("{s:s}", "model", s->model), *r = NULL;
  if (s->system)
    json_object_set_new(req, "system", json_string(s->system));
  if (json_object_size(s->options))
    json_object_set(req, "options", s->options);
  *st = cll__cli_request("POST", "/api/show", req, &r, NULL, NULL, err, errsize);
  json_decref(req);
  return *st == 200 ? r : NULL;
}

/* ---------------------------------------------------------------- commands */

static void usage_main(void) {
  printf("Available Commands:\n"
         "  /set            Set session variables\n"
         "  /show           Show model information\n"
         "  /load <model>   Load a session or model\n"
         "  /save <model>   Save your current session\n"
         "  /clear          Clear session context\n"
         "  /bye            Exit\n"
         "  /?, /help       Help for a command\n"
         "  /? shortcuts    Help for keyboard shortcuts\n\n"
         "Use \"\"\" to begin a multi-line message.\n\n");
}

static void usage_set(void) {
  printf("Available Commands:\n"
         "  /set parameter ...     Set a parameter\n"
         "  /set system <string>   Set system message\n"
         "  /set history           Enable history\n"
         "  /set nohistory         Disable history\n"
         "  /set wordwrap          Enable wordwrap\n"
         "  /set nowordwrap        Disable wordwrap\n"
         "  /set format json       Enable JSON mode\n"
         "  /set noformat          Disable formatting\n"
         "  /set verbose           Show LLM stats\n"
         "  /set quiet             Disable LLM stats\n"
         "  /set think             Enable thinking\n"
         "  /set nothink           Disable thinking\n\n");
}

static void usage_show(void) {
  printf("Available Commands:\n"
         "  /show info         Show details for this model\n"
         "  /show license      Show model license\n"
         "  /show modelfile    Show Modelfile for this model\n"
         "  /show parameters   Show parameters for this model\n"
         "  /show system       Show system message\n"
         "  /show template     Show prompt template\n\n");
}

static void usage_shortcuts(void) {
  printf("Available keyboard shortcuts:\n"
         "  Ctrl + a            Move to the beginning of the line (Home)\n"
         "  Ctrl + e            Move to the end of the line (End)\n"
         "  Ctrl + b            Move back one character (Left)\n"
         "  Ctrl + f            Move forward one character (Right)\n"
         "  Ctrl + k            Delete the sentence after the cursor\n"
         "  Ctrl + u            Delete the sentence before the cursor\n"
         "  Ctrl + w            Delete the word before the cursor\n\n"
         "  Ctrl + l            Clear the screen\n"
         "  Ctrl + c            Stop the model from responding\n"
         "  Ctrl + d            Exit ollama (/bye)\n\n");
}

static void usage_parameters(void) {
  printf("Available Parameters:\n"
         "  /set parameter seed <int>             Random number seed\n"
         "  /set parameter num_predict <int>      Max number of tokens to predict\n"
         "  /set parameter top_k <int>            Pick from top k num of tokens\n"
         "  /set parameter top_p <float>          Pick token based on sum of probabilities\n"
         "  /set parameter min_p <float>          Pick token based on top token probability * "
         "min_p\n"
         "  /set parameter num_ctx <int>          Set the context size\n"
         "  /set parameter temperature <float>    Set creativity level\n"
         "  /set parameter repeat_penalty <float> How strongly to penalize repetitions\n"
         "  /set parameter repeat_last_n <int>    Set how far back to look for repetitions\n"
         "  /set parameter num_gpu <int>          The number of layers to send to the GPU\n"
         "  /set parameter stop <string> <string> ...   Set the stop parameters\n\n");
}

/* Splits on blanks; returns the count (at most max). */
static int split(char *line, char **argv, int max) {
  int n = 0;
  for (char *t = strtok(line, " \t"); t && n < max; t = strtok(NULL, " \t"))
    argv[n++] = t;
  return n;
}

/* "text", """text""" or text → text (new string). */
static char *unquote(const char *s) {
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
    n--;
  if (n >= 6 && !strncmp(s, "\"\"\"", 3) && !strncmp(s + n - 3, "\"\"\"", 3))
    return strndup(s + 3, n - 6);
  if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
    return strndup(s + 1, n - 2);
  return strndup(s, n);
}

static void set_system(struct session *s, const char *text) {
  free(s->system);
  s->system = strdup(text);
  /* One system message, first. */
  for (size_t i = json_array_size(s->messages); i-- > 0;)
    if (!strcmp(json_string_value(json_object_get(json_array_get(s->messages, i), "role")),
                "system"))
      json_array_remove(s->messages, i);
  json_array_insert_new(s->messages, 0, json_pack("{s:s,s:s}", "role", "system", "content", text));
}

static void cmd_set(struct session *s, char *line) {
  char *rest = line + 4;
  while (*rest == ' ')
    rest++;
  if (!strncmp(rest, "system", 6) && (rest[6] == ' ' || rest[6] == '\t')) {
    char *text = unquote(rest + 7);
    set_system(s, text);
    free(text);
    printf("Set system message.\n");
    return;
  }
  char *copy = strdup(rest), *argv[64];
  int n = split(copy, argv, 64);
  if (n == 0) {
    usage_set();
  } else if (!strcmp(argv[0], "parameter")) {
    if (n < 3) {
      usage_parameters();
    } else {
      json_t *tmp = json_object();
      cll_err e = {0};
      int rc = 0;
      for (int i = 2; i < n && rc == 0; i++)
        rc = cll__param_add(tmp, argv[1], argv[i], &e);
      if (rc != 0) {
        printf("Couldn't set parameter: %s\n", e.msg);
      } else {
        json_t *v = json_object_get(tmp, argv[1]);
        json_object_set(s->options, argv[1], v);
        printf("Set parameter '%s' to '", argv[1]);
        for (int i = 2; i < n; i++)
          printf("%s%s", i > 2 ? ", " : "", argv[i]);
        printf("'\n");
      }
      json_decref(tmp);
    }
  } else if (!strcmp(argv[0], "history") || !strcmp(argv[0], "nohistory")) {
    s->history = argv[0][0] == 'h';
    printf("Set '%s' mode.\n", argv[0]);
  } else if (!strcmp(argv[0], "wordwrap") || !strcmp(argv[0], "nowordwrap")) {
    s->wordwrap = argv[0][0] == 'w';
    printf("Set '%s' mode.\n", argv[0]);
  } else if (!strcmp(argv[0], "verbose") || !strcmp(argv[0], "quiet")) {
    s->verbose = argv[0][0] == 'v';
    printf("Set '%s' mode.\n", argv[0]);
  } else if (!strcmp(argv[0], "think")) {
    json_decref(s->think);
    if (n > 1 &&
        (!strcmp(argv[1], "high") || !strcmp(argv[1], "medium") || !strcmp(argv[1], "low"))) {
      s->think = json_string(argv[1]);
      printf("Set 'think' mode to '%s'.\n", argv[1]);
    } else if (n > 1) {
      s->think = NULL;
      printf("Invalid think level '%s': use high, medium or low.\n", argv[1]);
    } else {
      s->think = json_true();
      printf("Set 'think' mode.\n");
    }
  } else if (!strcmp(argv[0], "nothink")) {
    json_decref(s->think);
    s->think = json_false();
    printf("Set 'nothink' mode.\n");
  } else if (!strcmp(argv[0], "format")) {
    if (n < 2 || strcmp(argv[1], "json") != 0) {
      printf("Invalid or missing format. For 'json' mode use '/set format json'\n");
    } else {
      json_decref(s->format);
      s->format = json_string("json");
      printf("Set format to 'json' mode.\n");
    }
  } else if (!strcmp(argv[0], "noformat")) {
    json_decref(s->format);
    s->format = NULL;
    printf("Disabled format.\n");
  } else {
    printf("Unknown command '/set %s'. Type /? for help\n", argv[0]);
  }
  free(copy);
}

static void print_block(const char *text, const char *none) {
  if (!text || !*text) {
    printf("%s\n", none);
    return;
  }
  size_t n = strlen(text);
  printf("%s%s", text, text[n - 1] == '\n' ? "" : "\n");
}

static void cmd_show(struct session *s, char *line) {
  char *copy = strdup(line), *argv[8];
  int n = split(copy, argv, 8);
  if (n < 2) {
    usage_show();
    free(copy);
    return;
  }
  static const char *known[] = {"info", "license", "modelfile", "parameters", "system", "template"};
  bool ok = false;
  for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
    ok = ok || !strcmp(argv[1], known[i]);
  if (!ok) {
    printf("Unknown command '%s'. Type /? for help\n", argv[1]);
    free(copy);
    return;
  }
  char err[1024];
  long st;
  json_t *r = show_request(s, err, sizeof(err), &st);
  if (!r) {
    printf("error: couldn't get model: %s\n", err);
    free(copy);
    return;
  }
  const char *what = argv[1];
  if (!strcmp(what, "info")) {
    cll__cli_print_show_info(stdout, r);
  } else if (!strcmp(what, "license")) {
    print_block(json_string_value(json_object_get(r, "license")),
                "No license was specified for this model.");
  } else if (!strcmp(what, "modelfile")) {
    print_block(json_string_value(json_object_get(r, "modelfile")), "");
  } else if (!strcmp(what, "parameters")) {
    const char *p = json_string_value(json_object_get(r, "parameters"));
    if (json_object_size(s->options)) {
      printf("User defined parameters:\n");
      const char *k;
      json_t *v;
      json_object_foreach(s->options, k, v) {
        char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        printf("%-30s %s\n", k, t ? t : "");
        free(t);
      }
      printf("\n");
    }
    if (p && *p) {
      printf("Model defined parameters:\n%s\n", p);
    } else if (!json_object_size(s->options)) {
      printf("No parameters were specified for this model.\n");
    }
  } else if (!strcmp(what, "system")) {
    print_block(s->system ? s->system : json_string_value(json_object_get(r, "system")),
                "No system message was specified for this model.");
  } else if (!strcmp(what, "template")) {
    print_block(json_string_value(json_object_get(r, "template")),
                "No prompt template was specified for this model.");
  }
  json_decref(r);
  free(copy);
}

static void cmd_save(struct session *s, const char *name) {
  json_t *req = json_pack("{s:s,s:s,s:b}", "model", name, "from", s->model, "stream", 0);
  if (json_object_size(s->options))
    json_object_set(req, "parameters", s->options);
  if (s->system)
    json_object_set_new(req, "system", json_string(s->system));
  /* The conversation, without the system message (saved as SYSTEM). */
  json_t *msgs = json_array();
  size_t i;
  json_t *m;
  json_array_foreach(s->messages, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "role")), "system") != 0)
      json_array_append(msgs, m);
  }
  if (json_array_size(msgs))
    json_object_set(req, "messages", msgs);
  json_decref(msgs);
  char err[1024];
  long st = cll__cli_request("POST", "/api/create", req, NULL, NULL, NULL, err, sizeof(err));
  json_decref(req);
  if (st != 200)
    printf("error: %s\n", err);
  else
    printf("Created new model '%s'\n", name);
}

/* Reads one input: a line, or lines up to the closing """ of an opened
 * one. NULL at EOF; *interrupted on Ctrl-C. */
static char *read_input(struct cll__lineedit *le, bool *interrupted, bool *empty_interrupt) {
  char *line = NULL;
  *interrupted = false;
  int rc = cll__lineedit_read(le, ">>> ", "Send a message (/? for help)", &line);
  if (rc == CLL__LE_EOF)
    return NULL;
  if (rc == CLL__LE_INTERRUPT) {
    *interrupted = true;
    *empty_interrupt = !line || !*line;
    free(line);
    return strdup("");
  }
  size_t quotes = 0;
  for (const char *p = line; (p = strstr(p, "\"\"\"")); p += 3)
    quotes++;
  while (quotes % 2 == 1) {
    char *more = NULL;
    rc = cll__lineedit_read(le, "... ", NULL, &more);
    if (rc == CLL__LE_INTERRUPT) {
      *interrupted = true;
      *empty_interrupt = false;
      free(line);
      free(more);
      return strdup("");
    }
    if (rc == CLL__LE_EOF)
      break;
    for (const char *p = more; (p = strstr(p, "\"\"\"")); p += 3)
      quotes++;
    size_t a = strlen(line), b = strlen(more);
    line = realloc(line, a + b + 2);
    line[a] = '\n';
    memcpy(line + a + 1, more, b + 1);
    free(more);
  }
  return line;
}

static void chat_turn(struct session *s, const char *text) {
  json_array_append_new(s->messages, json_pack("{s:s,s:s}", "role", "user", "content", text));
  json_t *req = json_pack("{s:s,s:O,s:b}", "model", s->model, "messages", s->messages, "stream", 1);
  add_common(s, req);
  struct answer a = {0};
  a.chat = true;
  long st = stream_answer(s, "/api/chat", req, &a);
  json_decref(req);
  if (st == 200 || st == CLL__CLI_CANCELLED) {
    /* A stopped answer stays in the conversation as far as it got. */
    json_t *m = json_pack("{s:s,s:s}", "role", "assistant", "content", a.text ? a.text : "");
    if (a.thought && *a.thought)
      json_object_set_new(m, "thinking", json_string(a.thought));
    json_array_append_new(s->messages, m);
    printf("\n\n");
    if (st == 200 && s->verbose)
      print_stats(a.final);
  } else {
    json_array_remove(s->messages, json_array_size(s->messages) - 1);
  }
  fflush(stdout);
  free(a.text);
  free(a.thought);
  json_decref(a.final);
}

static int interactive(struct session *s) {
  struct cll__lineedit le = {0};
  char err[1024];
  const cll_client_config *cc = cll__cli_config(err, sizeof(err));
  const char *home = cc ? cc->home : "";
  char path[sizeof(le.hist_path)];
  /* No history file when HOME is unset, or too long for the editor's path. */
  if (*home && snprintf(path, sizeof(path), "%s/.ollama/history", home) < (int)sizeof(path)) {
    path[strlen(path) - strlen("/history")] = '\0';
    if (access(path, W_OK) == 0) {
      strcat(path, "/history");
      cll__lineedit_load(&le, path);
    }
  }
  for (;;) {
    bool intr = false, empty = false;
    char *line = read_input(&le, &intr, &empty);
    if (!line)
      break;
    if (intr) {
      if (empty)
        printf("Use Ctrl + d or /bye to exit.\n");
      free(line);
      continue;
    }
    if (s->history)
      cll__lineedit_add(&le, line);
    char *t = line;
    while (*t == ' ' || *t == '\t')
      t++;
    if (!*t) {
      free(line);
      continue;
    }
    if (!strcmp(t, "/bye") || !strcmp(t, "/exit")) {
      free(line);
      break;
    }
    if (!strncmp(t, "/?", 2) || !strncmp(t, "/help", 5)) {
      char *arg = t + (t[1] == '?' ? 2 : 5);
      while (*arg == ' ')
        arg++;
      if (!strncmp(arg, "set", 3))
        usage_set();
      else if (!strncmp(arg, "show", 4))
        usage_show();
      else if (!strncmp(arg, "shortcut", 8))
        usage_shortcuts();
      else
        usage_main();
    } else if (!strncmp(t, "/set", 4) && (t[4] == 0 || t[4] == ' ')) {
      cmd_set(s, t);
    } else if (!strncmp(t, "/show", 5) && (t[5] == 0 || t[5] == ' ')) {
      cmd_show(s, t);
    } else if (!strcmp(t, "/clear")) {
      json_array_clear(s->messages);
      if (s->system)
        json_array_append_new(s->messages,
                              json_pack("{s:s,s:s}", "role", "system", "content", s->system));
      printf("Cleared session context\n");
    } else if (!strncmp(t, "/load", 5) && (t[5] == 0 || t[5] == ' ')) {
      char *copy = strdup(t), *argv[4];
      if (split(copy, argv, 4) != 2) {
        printf("Usage:\n  /load <modelname>\n");
      } else {
        char prev[512];
        snprintf(prev, sizeof(prev), "%s", s->model);
        snprintf(s->model, sizeof(s->model), "%s", argv[1]);
        printf("Loading model '%s'\n", s->model);
        if (load_model(s, false) != 0) {
          snprintf(s->model, sizeof(s->model), "%s", prev);
        } else {
          json_array_clear(s->messages);
          if (s->system)
            json_array_append_new(s->messages,
                                  json_pack("{s:s,s:s}", "role", "system", "content", s->system));
        }
      }
      free(copy);
    } else if (!strncmp(t, "/save", 5) && (t[5] == 0 || t[5] == ' ')) {
      char *copy = strdup(t), *argv[4];
      if (split(copy, argv, 4) != 2)
        printf("Usage:\n  /save <modelname>\n");
      else
        cmd_save(s, argv[1]);
      free(copy);
    } else if (t[0] == '/' && !strchr(t, ' ') && strchr(t + 1, '/') == NULL) {
      char *copy = strdup(t);
      printf("Unknown command '%s'. Type /? for help\n", strtok(copy, " "));
      free(copy);
    } else {
      char *msg = NULL;
      size_t n = strlen(t);
      if (n >= 3 && !strncmp(t, "\"\"\"", 3)) {
        const char *end = n >= 6 && !strcmp(t + n - 3, "\"\"\"") ? t + n - 3 : t + n;
        msg = strndup(t + 3, (size_t)(end - t - 3));
      } else {
        msg = strdup(t);
      }
      chat_turn(s, msg);
      free(msg);
    }
    fflush(stdout);
    free(line);
  }
  cll__lineedit_free(&le);
  return 0;
}

/* ---------------------------------------------------------------- entry */

static const char run_usage[] =
    "Usage: cllama run MODEL [PROMPT] [flags]\n\n"
    "Run a model: with a prompt (or text on stdin) print the answer; without, start a chat\n"
    "(/? lists its commands, Ctrl-C stops an answer, Ctrl-D or /bye ends it). A model the\n"
    "server does not have is pulled first.\n\n"
    "Flags:\n"
    "      --format string      Response format (e.g. json)\n"
    "  -h, --help               help for run\n"
    "      --hidethinking       Hide thinking output (if provided)\n"
    "      --insecure           Use an insecure registry\n"
    "      --keepalive string   Duration to keep a model loaded (e.g. 5m)\n"
    "      --nowordwrap         Don't wrap words to the next line automatically\n"
    "      --think[=string]     Enable thinking mode: true/false or high/medium/low\n"
    "      --verbose            Show timings for response\n";

static bool flag_value(int argc, char **argv, int *i, const char *name, const char **val) {
  size_t n = strlen(name);
  if (strncmp(argv[*i], name, n) != 0)
    return false;
  if (argv[*i][n] == '=') {
    *val = argv[*i] + n + 1;
    return true;
  }
  if (argv[*i][n] != 0)
    return false;
  *val = *i + 1 < argc ? argv[++*i] : NULL;
  return true;
}

static void session_free(struct session *s) {
  json_decref(s->messages);
  json_decref(s->options);
  json_decref(s->format);
  json_decref(s->think);
  free(s->system);
  free(s->keepalive);
}

int cll_cli_run(int argc, char **argv) {
  struct session s = {0};
  s.wordwrap = true;
  s.history = true;
  const char *model = NULL;
  json_t *words = json_array();
  int rc = 0;
  bool flags_done = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    if (flags_done || a[0] != '-' || !a[1]) {
      if (!model)
        model = a;
      else
        json_array_append_new(words, json_string(a));
      continue;
    }
    if (!strcmp(a, "--")) {
      flags_done = true;
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(run_usage, stdout);
      json_decref(words);
      session_free(&s);
      return 0;
    } else if (!strcmp(a, "--verbose")) {
      s.verbose = true;
    } else if (!strcmp(a, "--nowordwrap")) {
      s.wordwrap = false;
    } else if (!strcmp(a, "--hidethinking")) {
      s.hide_thinking = true;
    } else if (!strcmp(a, "--insecure")) {
      s.insecure = true;
    } else if (!strcmp(a, "--think") || !strncmp(a, "--think=", 8)) {
      v = a[7] == '=' ? a + 8 : "true";
      json_decref(s.think);
      if (!strcmp(v, "true"))
        s.think = json_true();
      else if (!strcmp(v, "false"))
        s.think = json_false();
      else if (!strcmp(v, "high") || !strcmp(v, "medium") || !strcmp(v, "low"))
        s.think = json_string(v);
      else {
        fprintf(stderr,
                "Error: invalid value \"%s\" for --think: use true, false, high, medium "
                "or low\n",
                v);
        rc = 2;
        break;
      }
    } else if (flag_value(argc, argv, &i, "--format", &v)) {
      if (!v || !*v) {
        fprintf(stderr, "Error: flag needs an argument: --format\n");
        rc = 2;
        break;
      }
      json_decref(s.format);
      json_t *schema = json_loads(v, 0, NULL);
      if (!strcmp(v, "json")) {
        s.format = json_string("json");
        json_decref(schema);
      } else if (json_is_object(schema)) {
        s.format = schema;
      } else {
        json_decref(schema);
        s.format = NULL;
        fprintf(stderr, "Error: invalid format \"%s\": use json or a JSON schema\n", v);
        rc = 2;
        break;
      }
    } else if (flag_value(argc, argv, &i, "--keepalive", &v)) {
      int64_t ns;
      cll_err e = {0};
      if (!v || !*v) {
        fprintf(stderr, "Error: flag needs an argument: --keepalive\n");
        rc = 2;
        break;
      }
      if (cll__go_duration(v, &ns, &e) != 0) {
        fprintf(stderr, "Error: invalid --keepalive \"%s\": %s\n", v, e.msg);
        rc = 2;
        break;
      }
      free(s.keepalive);
      s.keepalive = strdup(v);
    } else {
      fprintf(stderr, "Error: unknown flag: %s\n\n%s", a, run_usage);
      rc = 2;
      break;
    }
  }
  if (rc == 0 && !model) {
    fputs(run_usage, stderr);
    rc = 2;
  }
  if (rc != 0) {
    json_decref(words);
    session_free(&s);
    return rc;
  }
  snprintf(s.model, sizeof(s.model), "%s", model);
  s.messages = json_array();
  s.options = json_object();
  curl_global_init(CURL_GLOBAL_DEFAULT);

  /* The prompt: the words after the model, or else the text piped to
   * stdin (not both: a caller's stdin may be a pipe that never ends). */
  char *prompt = NULL;
  size_t plen = 0;
  if (!isatty(STDIN_FILENO) && json_array_size(words) == 0) {
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
      prompt = realloc(prompt, plen + k + 1);
      memcpy(prompt + plen, chunk, k);
      plen += k;
      prompt[plen] = 0;
    }
  }
  size_t i;
  json_t *w;
  json_array_foreach(words, i, w) {
    if (i)
      append(&prompt, &plen, " ");
    append(&prompt, &plen, json_string_value(w));
  }
  json_decref(words);

  if (load_model(&s, true) != 0) {
    rc = 1;
  } else if (prompt) {
    json_t *req = json_pack("{s:s,s:s,s:b}", "model", s.model, "prompt", prompt, "stream", 1);
    add_common(&s, req);
    struct answer a = {0};
    long st = stream_answer(&s, "/api/generate", req, &a);
    json_decref(req);
    if (st == 200 || st == CLL__CLI_CANCELLED)
      printf("\n");
    if (st == 200 && s.verbose) {
      printf("\n");
      fflush(stdout);
      print_stats(a.final);
    }
    rc = st == 200 ? 0 : st == CLL__CLI_CANCELLED ? 130 : 1;
    free(a.text);
    free(a.thought);
    json_decref(a.final);
  } else {
    rc = interactive(&s);
  }
  free(prompt);
  session_free(&s);
  curl_global_cleanup();
  return rc;
}
