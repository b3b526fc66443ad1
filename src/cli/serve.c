/* serve.c — `cllama serve`. The HTTP server arrives with the server
 * foundation; until then the command says so and fails. */
#include "cllama/cli.h"

#include <stdio.h>

int cll_cli_serve(int argc, char **argv) {
  fprintf(stderr, "cllama serve: the server is not built yet\n");
  return 1;
}
