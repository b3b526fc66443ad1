/* fuzz_template.c — the template parser and executor on arbitrary text.
 * The input is a template; when it parses, it is rendered over a fixed
 * message list with a tool call and a tool list (messages mode, and
 * legacy mode through the cut copy when .Messages is not used). Errors are
 * fine; crashes, leaks and sanitizer reports are not. */
#include "cllama/template.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 64 * 1024)
    return 0;
  cll_template *t = NULL;
  cll_err err;
  if (cll_template_parse((const char *)data, size, &t, &err) != 0)
    return 0;
  json_t *args = json_pack("{s:s,s:i,s:[i,f]}", "city", "Paris", "days", 3, "list", 1, 2.5);
  json_t *tools = json_loads("[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"description\":"
                             "\"d\",\"parameters\":{\"type\":\"object\",\"required\":[\"a\"],"
                             "\"properties\":{\"a\":{\"type\":[\"string\",\"null\"],\"enum\":[1,"
                             "\"x\"]}}}}}]",
                             0, NULL);
  struct cll_tmpl_tool_call call = {.id = "call_1", .name = "f", .arguments = args};
  struct cll_tmpl_message m[] = {
      {.role = "system", .content = "sys"},
      {.role = "user", .content = "hi <b>", .n_images = 1},
      {.role = "assistant", .content = "", .tool_calls = &call, .n_tool_calls = 1},
      {.role = "tool", .content = "{\"t\":1}", .tool_name = "f"},
      {.role = "user", .content = "again"},
  };
  struct cll_tmpl_values v = {.messages = m,
                              .n_messages = 5,
                              .tools = tools,
                              .think = true,
                              .think_level = "high",
                              .is_think_set = true};
  char *out = NULL;
  if (cll_template_execute(t, &v, &out, NULL, &err) == 0)
    free(out);
  struct cll_tmpl_values sv = {.prompt = "p", .suffix = "s"};
  if (cll_template_execute(t, &sv, &out, NULL, &err) == 0)
    free(out);
  char tag[64];
  cll_template_tool_tag(t, tag, sizeof tag);
  json_decref(args);
  json_decref(tools);
  cll_template_free(t);
  return 0;
}
