/* client.h — what the client commands in src/cli/ share: the client
 * configuration and a curl handle aimed at the server (every request goes
 * through cll__cli_easy), one blocking HTTP request to the server at
 * OLLAMA_HOST (client.c), the pull progress display
 * (pull.c), the interactive line editor (lineedit.c) and the display helpers.
 * Main thread only. */
#ifndef CLLAMA_CLI_CLIENT_H
#define CLLAMA_CLI_CLIENT_H

#include "cllama/config.h"

#include <curl/curl.h>
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* The client configuration (OLLAMA_HOST, OLLAMA_API_KEY, HOME), read from
 * the environment once; borrowed. NULL, with the reason in errbuf, when a
 * variable is invalid. */
const cll_client_config *cll__cli_config(char *errbuf, size_t errsize);

/* A new curl handle for a request to path ("/api/tags") on the server:
 * URL set, and the headers hd (taken; may be NULL) plus Authorization when
 * OLLAMA_API_KEY is set, as CURLOPT_HTTPHEADER. *hd_out gets the list to
 * free after curl_easy_cleanup. NULL (hd freed, reason in errbuf) when the
 * configuration is invalid or curl fails. */
CURL *cll__cli_easy(const char *path, struct curl_slist *hd, struct curl_slist **hd_out,
                    char *errbuf, size_t errsize);

/* Set (from a SIGINT handler) to stop the request in flight: the request
 * returns CLL__CLI_CANCELLED. Cleared by the caller. */
extern volatile sig_atomic_t cll__cli_cancel;
#define CLL__CLI_CANCELLED (-1)

/* Does one request; returns the HTTP status, 0 when the server cannot be
 * reached or CLL__CLI_CANCELLED, with a message in errbuf. *reply gets a
 * non-streamed JSON body (when reply is not NULL); on_line gets each NDJSON
 * object of a streamed one. An {"error": ...} line makes the call fail. */
long cll__cli_request(const char *method, const char *path, json_t *body, json_t **reply,
                      void (*on_line)(void *, json_t *), void *ud, char *errbuf, size_t errsize);

/* POST /api/pull with the progress bars of `cllama pull`; 0 on success. */
int cll__cli_pull_model(const char *name, bool insecure);

/* `cllama show MODEL` body (the "Model", "Capabilities", ... blocks). */
void cll__cli_print_show_info(FILE *out, json_t *show);

/* Go's time.Duration String(): "1.5s", "12.345678ms", "1m2.5s". */
void cll__cli_go_duration(long long ns, char *buf, size_t size);

/* Ollama's relative time: "4 minutes from now", "About an hour ago",
 * "Forever" far ahead; zero_value when the time is missing or unparsable. */
void cll__cli_human_time(const char *rfc3339, const char *zero_value, char *buf, size_t size);

/* ---- line editor (lineedit.c) ---- */
enum { CLL__LE_OK = 0, CLL__LE_EOF = 1, CLL__LE_INTERRUPT = 2 };

struct cll__lineedit {
  char **hist; /* oldest first */
  size_t n_hist, cap_hist;
  bool history_on;      /* record lines */
  char hist_path[1024]; /* "" = not saved */
};

/* Reads one line from the terminal with editing (arrows, Home/End,
 * Ctrl-A/E/K/U/W/L, Up/Down history). placeholder is shown dimmed while the
 * line is empty. *out is a new string (without the newline) when OK, and
 * the abandoned text on CLL__LE_INTERRUPT (Ctrl-C); CLL__LE_EOF on Ctrl-D
 * on an empty line (*out NULL). Falls
 * back to fgets when stdin is not a terminal. */
int cll__lineedit_read(struct cll__lineedit *le, const char *prompt, const char *placeholder,
                       char **out);
void cll__lineedit_add(struct cll__lineedit *le, const char *line);
void cll__lineedit_load(struct cll__lineedit *le, const char *path);
void cll__lineedit_free(struct cll__lineedit *le);

#endif
