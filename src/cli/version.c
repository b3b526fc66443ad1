/* version.c — `cllama version`. */
#include "cllama/cli.h"
#include "cllama/version.h"

#include <stdio.h>

int cll_cli_version(int argc, char **argv) {
  printf("cllama version is %s\n", CLLAMA_VERSION);
  return 0;
}
