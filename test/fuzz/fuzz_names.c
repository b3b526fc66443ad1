/* fuzz_names.c — model names, digests and durations from arbitrary bytes.
 * Checks the store's safety property: a name that parses yields parts that
 * can never leave the models directory. */
#include "cllama/config.h"
#include "cllama/store.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_part(const char *p) {
  assert(p[0] != '\0');
  assert(strchr(p, '/') == NULL);
  assert(strcmp(p, ".") != 0 && strcmp(p, "..") != 0);
  assert(p[0] != '.');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (s == NULL)
    return 0;
  memcpy(s, data, size);
  s[size] = '\0';
  cll_name n;
  if (cll_name_parse(s, &n) == 0) {
    check_part(n.host);
    check_part(n.ns);
    check_part(n.model);
    check_part(n.tag);
    char buf[1024];
    cll_name_display(&n, buf, sizeof(buf));
    cll_name again;
    assert(cll_name_parse(buf, &again) == 0);
    assert(cll_name_equal(&n, &again));
  }
  char hex[65];
  if (cll_digest_parse(s, hex) == 0)
    assert(strlen(hex) == 64 && strspn(hex, "0123456789abcdef") == 64);
  int64_t ns;
  cll_config_parse_duration(s, &ns);
  free(s);
  return 0;
}
