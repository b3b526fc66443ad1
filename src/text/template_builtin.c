/* template_builtin.c — the prompt formats cllama knows by name, and the
 * mapping from a GGUF tokenizer.chat_template (Jinja) to one of them.
 *
 * Ollama ships twenty named formats (the .gotmpl files of its template
 * folder) and picks one for a
 * model imported without a TEMPLATE by the Levenshtein distance between the
 * model's Jinja template and a list of known Jinja templates. We keep our
 * own Go-template text for each format (written here; test_template checks
 * that each renders byte for byte what Ollama's renders for the shared
 * message sets) and recognise Jinja templates in two steps: the known ones
 * exactly, by a 64-bit FNV-1a hash of their text (hashes computed from the
 * index.json of ../shared/testdata/templates), and others by the special
 * tokens their text uses. Not the same rule as Ollama's for near-miss
 * templates, but it needs no copy of the Jinja corpus and is right for
 * every template in the test data.
 *
 * The command-r format here covers system, user, assistant and tool turns;
 * it leaves out Cohere's long tool-use preamble, so a model mapped to it
 * does not get the "tools" capability from it. */
#include "cllama/template.h"

#include <stdint.h>
#include <string.h>

/* Pending system messages are collected in $sys (joined with a blank line,
 * as Ollama's formats do) and emitted before the next user turn. */
#define SYS_COLLECT                                                                                \
  "{{- if eq .Role \"system\" }}{{ $sys = print $sys (and $sys \"\\n\\n\") .Content }}\n"

static const struct builtin {
  const char *name;
  const char *text;
  const char *stop[5];
} BUILTINS[] = {
    {"alfred",
     "{{- range .Messages }}<start_{{ .Role }}>{{ .Content }}<end_message>{{ end "
     "}}<start_assistant>",
     {"<start_system>", "<end_message>", "<start_user>", "<start_assistant>"}},
    {"alpaca",
     "{{- $sys := \"\" }}\n"
     "{{- range .Messages }}\n" SYS_COLLECT "{{- else if eq .Role \"user\" }}{{ with $sys }}{{ . "
     "}}{{ \"\\n\\n\" }}{{ end }}{{ $sys = \"\" "
     "}}### Instruction:{{ \"\\n\" }}{{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- else if eq .Role \"assistant\" }}### Response:{{ \"\\n\" }}{{ .Content }}{{ \"\\n\\n\" "
     "}}\n"
     "{{- end }}\n"
     "{{- end }}### Response:{{ \"\\n\" }}",
     {"### Instruction:", "### Response"}},
    {"chatml",
     "{{- range .Messages }}<|im_start|>{{ .Role }}{{ \"\\n\" }}{{ .Content }}<|im_end|>{{ \"\\n\" "
     "}}{{ end }}<|im_start|>assistant{{ \"\\n\" }}",
     {"<|im_start|>", "<|im_end|>"}},
    {"chatqa",
     "{{- range .Messages }}\n"
     "{{- if eq .Role \"system\" }}System:{{ else if eq .Role \"user\" }}User:{{ else if eq .Role "
     "\"assistant\" }}Assistant:{{ end }} {{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- end }}Assistant:",
     {"System:", "User:", "Assistant:", "<|begin_of_text|>"}},
    {"codellama-70b-instruct",
     "{{- range .Messages }}Source:{{ if eq .Role \"system\" }} system{{ else if eq .Role \"user\" "
     "}} user{{ else if eq .Role \"assistant\" }} assistant{{ end }}{{ \"\\n\\n \" }}{{ .Content "
     "}} "
     "<step> {{ end }}Source: assistant{{ \"\\nDestination: user\\n\\n \" }}",
     {"Source:", "Destination:", "<step>"}},
    {"command-r",
     "{{- if .System }}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>{{ .System "
     "}}<|END_OF_TURN_TOKEN|>{{ end }}\n"
     "{{- range .Messages }}{{ if ne .Role \"system\" }}<|START_OF_TURN_TOKEN|>\n"
     "{{- if eq .Role \"user\" }}<|USER_TOKEN|>{{ .Content }}\n"
     "{{- else if eq .Role \"assistant\" }}<|CHATBOT_TOKEN|>{{ .Content }}\n"
     "{{- else if eq .Role \"tool\" }}<|SYSTEM_TOKEN|><results>{{ \"\\nconsole_output: \" }}{{ "
     ".Content }}{{ \"\\n\" }}</results>\n"
     "{{- end }}<|END_OF_TURN_TOKEN|>{{ end }}\n"
     "{{- end }}<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{{ \"\\n\" }}",
     {"<|START_OF_TURN_TOKEN|>", "<|END_OF_TURN_TOKEN|>"}},
    {"falcon-instruct",
     "{{- range .Messages }}\n"
     "{{- if eq .Role \"system\" }}System: {{ .Content }}{{ \"\\n\" }}\n"
     "{{- else }}{{ if eq .Role \"user\" }}User:{{ else if eq .Role \"assistant\" }}Falcon:{{ end "
     "}}{{ \"\\n\" }}{{ .Content }}{{ \"\\n\" }}\n"
     "{{- end }}\n"
     "{{- end }}Falcon:{{ \"\\n\" }}",
     {"User:", "Assistant:"}},
    {"gemma-instruct",
     "{{- $sys := \"\" }}\n"
     "{{- range .Messages }}\n" SYS_COLLECT "{{- else }}\n"
     "{{- if eq .Role \"user\" }}<start_of_turn>user{{ with $sys }}{{ \"\\n\" }}{{ . }}{{ end }}{{ "
     "$sys = \"\" }}\n"
     "{{- else if eq .Role \"assistant\" }}<start_of_turn>model\n"
     "{{- end }}{{ \"\\n\" }}{{ .Content }}<end_of_turn>{{ \"\\n\" }}\n"
     "{{- end }}\n"
     "{{- end }}<start_of_turn>model{{ \"\\n\" }}",
     {"<start_of_turn>", "<end_of_turn>"}},
    {"gemma3-instruct",
     "{{- range $i, $m := .Messages }}\n"
     "{{- if eq .Role \"user\" }}<start_of_turn>user{{ \"\\n\" }}{{ if and (eq $i 1) $.System }}{{ "
     "$.System }}{{ \"\\n\\n\" }}{{ end }}{{ .Content }}<end_of_turn>{{ \"\\n\" }}\n"
     "{{- else if eq .Role \"assistant\" }}<start_of_turn>model{{ \"\\n\" }}{{ .Content "
     "}}<end_of_turn>{{ \"\\n\" }}\n"
     "{{- end }}\n"
     "{{- if eq (len (slice $.Messages $i)) 1 }}<start_of_turn>model{{ \"\\n\" }}{{ end }}\n"
     "{{- end }}{{ \"\\n\" }}",
     {"<end_of_turn>"}},
    {"granite-instruct",
     "{{- range .Messages }}\n"
     "{{- if eq .Role \"system\" }}System:{{ else if eq .Role \"user\" }}Question:{{ else if eq "
     ".Role \"assistant\" }}Answer:{{ end }}{{ \"\\n\" }}{{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- end }}Answer:{{ \"\\n\" }}",
     {"System:", "Question:", "Answer:"}},
    {"llama2-chat",
     "{{- $sys := \"\" }}[INST] {{ range .Messages }}\n" SYS_COLLECT
     "{{- else if eq .Role \"user\" }}<<SYS>>{{ with $sys }}{{ \"\\n\" }}{{ . }}{{ \"\\n\" }}{{ "
     "end "
     "}}{{ $sys = \"\" }}<</SYS>>{{ \"\\n\\n\" }}{{ .Content }} [/INST]\n"
     "{{- else if eq .Role \"assistant\" }} {{ .Content }}</s><s>[INST] {{ end }}\n"
     "{{- end }}",
     {"[INST]", "[/INST]", "<<SYS>>", "<</SYS>>"}},
    {"llama3-instruct",
     "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>{{ \"\\n\\n\" }}{{ "
     ".Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>{{ \"\\n\\n\" }}",
     {"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
    {"magicoder",
     "{{- $sys := \"\" }}\n"
     "{{- range .Messages }}\n" SYS_COLLECT "{{- else }}\n"
     "{{- if eq .Role \"user\" }}{{ with $sys }}{{ . }}{{ \"\\n\\n\" }}{{ end }}{{ $sys = \"\" "
     "}}@@ "
     "Instruction\n"
     "{{- else if eq .Role \"assistant\" }}@@ Response\n"
     "{{- end }}{{ \"\\n\" }}{{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- end }}\n"
     "{{- end }}@@ Response{{ \"\\n\" }}",
     {"@@ Instruction", "@@ Response"}},
    {"mistral-instruct",
     "[INST] {{ range .Messages }}\n"
     "{{- if eq .Role \"system\" }}{{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- else if eq .Role \"user\" }}{{ .Content }}[/INST]\n"
     "{{- else if eq .Role \"assistant\" }} {{ .Content }}</s>[INST] {{ end }}\n"
     "{{- end }}",
     {"<|im_start|>", "<|im_end|>"}},
    {"openchat",
     "{{- range .Messages }}GPT4 Correct{{ if eq .Role \"system\" }} System:{{ else if eq .Role "
     "\"user\" }} User:{{ else if eq .Role \"assistant\" }} Assistant:{{ end }} {{ .Content "
     "}}<|end_of_turn|>{{ end }}GPT4 Correct Assistant:",
     {"<|end_of_turn|>"}},
    {"phi-3",
     "{{- range .Messages }}<|{{ .Role }}|>{{ \"\\n\" }}{{ .Content }}<|end|>{{ \"\\n\" }}{{ end "
     "}}<|assistant|>{{ \"\\n\" }}",
     {"<|end|>", "<|system|>", "<|user|>", "<|assistant|>"}},
    {"solar-instruct",
     "{{- range .Messages }}\n"
     "{{- if eq .Role \"assistant\" }}### Assistant:{{ \"\\n\" }}{{ .Content }}</s>{{ \"\\n\\n\" "
     "}}\n"
     "{{- else }}{{ if eq .Role \"system\" }}### System:{{ else if eq .Role \"user\" }}### User:{{ "
     "end }}{{ \"\\n\" }}{{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- end }}\n"
     "{{- end }}### Assistant:{{ \"\\n\" }}",
     {"### System:", "### User:", "### Assistant"}},
    {"starcoder2-instruct",
     "{{- $sys := \"\" }}\n"
     "{{- range .Messages }}\n" SYS_COLLECT "{{- else if eq .Role \"user\" }}{{ with $sys }}{{ . "
     "}}{{ \"\\n\\n\" }}{{ end }}{{ $sys = \"\" "
     "}}### Instruction{{ \"\\n\" }}{{ .Content }}{{ \"\\n\\n\" }}\n"
     "{{- else if eq .Role \"assistant\" }}### Response{{ \"\\n\" }}{{ .Content }}<|endoftext|>{{ "
     "\"\\n\\n\" }}\n"
     "{{- end }}\n"
     "{{- end }}### Response{{ \"\\n\" }}",
     {"### Instruction", "### Response", "<|endoftext|>"}},
    {"vicuna",
     "{{- $sys := \"\" }}\n"
     "{{- range .Messages }}\n" SYS_COLLECT "{{- else if eq .Role \"user\" }}{{ with $sys }}{{ . "
     "}}{{ \"\\n\\n\" }}{{ end }}{{ $sys = \"\" "
     "}}USER: {{ .Content }}{{ \"\\n\" }}\n"
     "{{- else if eq .Role \"assistant\" }}ASSISTANT: {{ .Content }}</s>{{ \"\\n\" }}\n"
     "{{- end }}\n"
     "{{- end }}ASSISTANT:",
     {"USER:", "ASSISTANT:"}},
    {"zephyr",
     "{{- range .Messages }}<|{{ .Role }}|>{{ \"\\n\" }}{{ .Content }}</s>{{ \"\\n\" }}{{ end "
     "}}<|assistant|>{{ \"\\n\" }}",
     {"<|system|>", "</s>", "<|user|>", "<|assistant|>"}},
};

/* FNV-1a (64-bit) of the known Jinja chat templates -> format name. */
static const struct {
  uint64_t hash;
  const char *name;
} KNOWN_JINJA[] = {
    {0x420fcc29f31a339eull, "chatml"},
    {0x773d13e188afc917ull, "chatml"},
    {0xcd8b49000db02c2cull, "zephyr"},
    {0x71769a60b37b2975ull, "chatml"},
    {0x51c8c94545ac4017ull, "openchat"},
    {0x89bcbd75ce6a3d28ull, "chatml"},
    {0x88bf4138d5c826f0ull, "chatml"},
    {0x8a87094e0e1e24c5ull, "chatml"},
    {0xc867da37c989d41full, "chatml"},
    {0x4cbed0d6a7c090ecull, "zephyr"},
    {0x8c734b90b4f8d84dull, "mistral-instruct"},
    {0x1451b8c7d5e75be5ull, "starcoder2-instruct"},
    {0x54f74c2db3c2b5b9ull, "llama2-chat"},
    {0x60f5ee6d45707ba7ull, "codellama-70b-instruct"},
    {0xc730acc029ce6ee0ull, "mistral-instruct"},
    {0x3dbbdd28c4670e85ull, "chatml"},
    {0x6026a4efc1063551ull, "chatml"},
    {0x6336937c1429e601ull, "chatml"},
    {0xcc0ddaa399467b41ull, "chatml"},
    {0x5de747f765e2c199ull, "alpaca"},
    {0x5111253f4aa4a502ull, "chatqa"},
    {0x5c10ee65212d93b3ull, "gemma-instruct"},
    {0xc90dea00b85c935dull, "gemma3-instruct"},
    {0x0e60067a5537498eull, "llama3-instruct"},
    {0x60848a05837ce656ull, "llama3-instruct"},
    {0x7772e88b761f8d6eull, "granite-instruct"},
    {0x673d924abff5e532ull, "magicoder"},
    {0x713e06571472b032ull, "alfred"},
    {0xf344eecf1bd3a427ull, "llama2-chat"},
    {0x6057775af4d6feb9ull, "phi-3"},
    {0x4ebae769b67b72f1ull, "phi-3"},
    {0x475fd3e16d05c1afull, "phi-3"},
    {0x681906c8bc12bb6eull, "chatqa"},
    {0xaffc62be3917a266ull, "falcon-instruct"},
    {0xb4790feb9157bf2bull, "falcon-instruct"},
    {0xc0bb5de69aeaa2a7ull, "solar-instruct"},
    {0x0a6d1e7ae67afa57ull, "command-r"},
};

/* Markers of the formats, most specific first. All must occur. */
static const struct {
  const char *a, *b;
  const char *name;
} MARKERS[] = {
    {"<|start_header_id|>", "<|eot_id|>", "llama3-instruct"},
    {"<|START_OF_TURN_TOKEN|>", NULL, "command-r"},
    {"<|im_start|>", NULL, "chatml"},
    {"<start_of_turn>", "<start_of_image>", "gemma3-instruct"},
    {"<start_of_turn>", NULL, "gemma-instruct"},
    {"<|user|>", "<|end|>", "phi-3"},
    {"<|user|>", "</s>", "zephyr"},
    {"[INST]", "<<SYS>>", "llama2-chat"},
    {"[INST]", NULL, "mistral-instruct"},
    {"GPT4 Correct", NULL, "openchat"},
    {"<start_user>", NULL, "alfred"},
    {"@@ Instruction", NULL, "magicoder"},
    {"### Instruction:", NULL, "alpaca"},
    {"### Instruction", NULL, "starcoder2-instruct"},
};

static uint64_t fnv1a(const char *s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 0x100000001b3ull;
  }
  return h;
}

const char *cll_template_name_for_chat_template(const char *jinja) {
  if (jinja == NULL || jinja[0] == '\0')
    return NULL;
  uint64_t h = fnv1a(jinja);
  for (size_t i = 0; i < CLL_ARRAY_LEN(KNOWN_JINJA); i++)
    if (KNOWN_JINJA[i].hash == h)
      return KNOWN_JINJA[i].name;
  for (size_t i = 0; i < CLL_ARRAY_LEN(MARKERS); i++)
    if (strstr(jinja, MARKERS[i].a) && (MARKERS[i].b == NULL || strstr(jinja, MARKERS[i].b)))
      return MARKERS[i].name;
  return NULL;
}

static const struct builtin *find_builtin(const char *name) {
  if (name == NULL)
    return NULL;
  for (size_t i = 0; i < CLL_ARRAY_LEN(BUILTINS); i++)
    if (strcmp(BUILTINS[i].name, name) == 0)
      return &BUILTINS[i];
  return NULL;
}

const char *cll_template_builtin(const char *name) {
  const struct builtin *b = find_builtin(name);
  return b ? b->text : NULL;
}

size_t cll_template_builtin_stops(const char *name, const char *const **stops) {
  const struct builtin *b = find_builtin(name);
  *stops = NULL;
  if (b == NULL)
    return 0;
  size_t n = 0;
  while (n < CLL_ARRAY_LEN(b->stop) && b->stop[n] != NULL)
    n++;
  *stops = b->stop;
  return n;
}

const char *cll_template_for_chat_template(const char *jinja) {
  const char *text = cll_template_builtin(cll_template_name_for_chat_template(jinja));
  return text ? text : "{{ .Prompt }}";
}
