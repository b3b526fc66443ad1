/* main.c — `cllama <command>`: finds the command and runs it. The commands
 * themselves live in src/cli/, one file each. */
#include "cllama/cli.h"
#include "cllama/config.h"
#include "cllama/kernels.h"
#include "cllama/version.h"

#include <stdio.h>
#include <string.h>

static const struct cll_cli_command commands[] = {
    {"serve", cll_cli_serve, "Start the server"},
    {"list", cll_cli_list, "List models (asks the running server)"},
    {"infer", cll_cli_infer, "Run the engine on token ids (development tool)"},
    {"quantize", cll_cli_quantize, "Quantize a GGUF model's weights"},
    {"tokenize", cll_cli_tokenize, "Print the token ids of stdin (any GGUF file)"},
    {"detokenize", cll_cli_detokenize, "Print the text of token ids on stdin"},
    {"pull", cll_cli_pull, "Pull a model from a registry"},
    {"push", cll_cli_push, "Push a model to a registry"},
    {"run", cll_cli_run, "Run a model (one prompt, or an interactive chat)"},
    {"show", cll_cli_show, "Show information for a model"},
    {"stop", cll_cli_stop, "Stop a running model"},
    {"ps", cll_cli_ps, "List running models"},
    {"rm", cll_cli_rm, "Remove a model"},
    {"cp", cll_cli_cp, "Copy a model"},
    {"create", cll_cli_create, "Create a model from a Modelfile"},
    {"version", cll_cli_version, "Print the version"},
};

static void usage(FILE *out) {
  fprintf(out, "cllama %s: an Ollama-compatible LLM server\n\n", CLLAMA_VERSION);
  fprintf(out, "Usage:\n  cllama <command> [arguments]\n\nCommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\nRun `cllama <command> --help` for a command's options.\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
      strcmp(argv[1], "help") == 0) {
    usage(stdout);
    return 0;
  }
  if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-v") == 0)
    return cll_cli_version(argc - 1, argv + 1);
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (strcmp(argv[1], commands[i].name) == 0) {
      /* One-time set-up of the kernel table and BLIS, before any thread
       * starts (an unknown or unavailable CLLAMA_KERNELS is refused). */
      cll_kernels_config kc;
      cll_err err = {0};
      if (cll_config_kernels_from_env(&kc, &err) != 0 || cll_kernels_init(&kc, &err) != 0) {
        fprintf(stderr, "cllama: %s\n", err.msg);
        return 2;
      }
      return commands[i].run(argc - 1, argv + 1);
    }
  fprintf(stderr, "cllama: unknown command \"%s\"\n\n", argv[1]);
  usage(stderr);
  return 2;
}
