/* cli.h — the command-line subcommands (`cllama <command> ...`).
 *
 * One file per command in src/cli/; src/main.c only dispatches. Each entry
 * point gets argv starting at the command name and returns the process exit
 * status (0 success, 1 failure, 2 usage error). Called from the main thread
 * only; commands may block (they are the program). */
#ifndef CLLAMA_CLI_H
#define CLLAMA_CLI_H

typedef int (*cll_cli_fn)(int argc, char **argv);

struct cll_cli_command {
  const char *name;
  cll_cli_fn run;
  const char *summary; /* one line for `cllama --help` */
};

int cll_cli_serve(int argc, char **argv);
int cll_cli_list(int argc, char **argv);
int cll_cli_pull(int argc, char **argv);
int cll_cli_push(int argc, char **argv); /* src/cli/pull.c */
int cll_cli_version(int argc, char **argv);
int cll_cli_run(int argc, char **argv);  /* src/cli/run.c */
int cll_cli_stop(int argc, char **argv); /* src/cli/client.c */
int cll_cli_show(int argc, char **argv);
int cll_cli_ps(int argc, char **argv);
int cll_cli_rm(int argc, char **argv);
int cll_cli_cp(int argc, char **argv);
int cll_cli_create(int argc, char **argv);
int cll_cli_infer(int argc, char **argv);
int cll_cli_quantize(int argc, char **argv);
int cll_cli_tokenize(int argc, char **argv);
int cll_cli_detokenize(int argc, char **argv);

#endif
