/* modelfile.c — Ollama's Modelfile format, turned into the body of a
 * POST /api/create request (used by `cllama create -f`).
 *
 * A line is `INSTRUCTION arguments` (instruction case-insensitive) or a
 * `#` comment. Arguments run to the end of the line, or are a "quoted"
 * string (with \" \\ \n \r \t and \uXXXX escapes, as `show --modelfile`
 * writes strings), or a """triple-quoted""" string that may span lines
 * (taken as it is). FROM is a
 * model name or a GGUF path (relative paths are taken from the Modelfile's
 * directory and sent as absolute paths, which the local server copies into
 * the store); PARAMETER values get their option's type (repeated stop
 * values make a list); MESSAGE takes a role and the content; LICENSE may
 * repeat. ADAPTER and REQUIRES are refused with a message saying so. */
#include "cllama/api.h"
#include "gen.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads one argument starting at *p (after the instruction's blank);
 * returns a new string and advances *p past it, or NULL on an unterminated
 * quote. */
static char *read_arg(const char **p, int *line, cll_err *err) {
  const char *s = *p;
  while (*s == ' ' || *s == '\t')
    s++;
  if (strncmp(s, "\"\"\"", 3) == 0) {
    const char *e = strstr(s + 3, "\"\"\"");
    if (!e) {
      cll_err_set(err, CLL_EPARSE, "line %d: unterminated \"\"\"", *line);
      return NULL;
    }
    for (const char *c = s; c < e; c++)
      *line += *c == '\n';
    *p = e + 3;
    return strndup(s + 3, (size_t)(e - s - 3));
  }
  if (*s == '"') {
    const char *e = s + 1;
    while (*e && *e != '"' && *e != '\n')
      e += (*e == '\\' && e[1]) ? 2 : 1;
    if (*e != '"') {
      cll_err_set(err, CLL_EPARSE, "line %d: unterminated quote", *line);
      return NULL;
    }
    /* Unescape \" \\ \n \r \t \uXXXX (what `show --modelfile` writes);
     * any other backslash stays as it is (a Windows path). */
    char *out = malloc((size_t)(e - s) * 2 + 1);
    size_t n = 0;
    for (const char *c = s + 1; c < e; c++) {
      if (*c != '\\' || c + 1 >= e) {
        out[n++] = *c;
        continue;
      }
      char x = c[1];
      unsigned cp = 0;
      if (x == '"' || x == '\\') {
        out[n++] = x;
        c++;
      } else if (x == 'n' || x == 'r' || x == 't') {
        out[n++] = x == 'n' ? '\n' : x == 'r' ? '\r' : '\t';
        c++;
      } else if (x == 'u' && e - c >= 6 && sscanf(c + 2, "%4x", &cp) == 1 &&
                 isxdigit((unsigned char)c[2]) && isxdigit((unsigned char)c[3]) &&
                 isxdigit((unsigned char)c[4]) && isxdigit((unsigned char)c[5]) && cp > 0) {
        if (cp < 0x80) {
          out[n++] = (char)cp;
        } else if (cp < 0x800) {
          out[n++] = (char)(0xC0 | (cp >> 6));
          out[n++] = (char)(0x80 | (cp & 0x3F));
        } else {
          out[n++] = (char)(0xE0 | (cp >> 12));
          out[n++] = (char)(0x80 | ((cp >> 6) & 0x3F));
          out[n++] = (char)(0x80 | (cp & 0x3F));
        }
        c += 5;
      } else {
        out[n++] = *c;
      }
    }
    out[n] = 0;
    *p = e + 1;
    return out;
  }
  const char *e = s;
  while (*e && *e != '\n')
    e++;
  const char *t = e;
  while (t > s && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
    t--;
  *p = e;
  return strndup(s, (size_t)(t - s));
}

int cll_modelfile_parse(const char *text, const char *base_dir, const char *home, json_t **out,
                        cll_err *err) {
  json_t *req = json_object(), *params = json_object(), *msgs = json_array(), *lic = json_array();
  const char *p = text;
  int line = 1, rc = 0;
  bool have_from = false;
  while (*p && rc == 0) {
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
      line += *p == '\n';
      p++;
    }
    if (!*p)
      break;
    if (*p == '#') {
      while (*p && *p != '\n')
        p++;
      continue;
    }
    char ins[32];
    size_t n = 0;
    while (*p && !isspace((unsigned char)*p) && n < sizeof(ins) - 1)
      ins[n++] = (char)toupper((unsigned char)*p++);
    ins[n] = 0;
    if (!strcmp(ins, "PARAMETER") || !strcmp(ins, "MESSAGE")) {
      char *k = NULL;
      while (*p == ' ' || *p == '\t')
        p++;
      const char *ks = p;
      while (*p && !isspace((unsigned char)*p))
        p++;
      k = strndup(ks, (size_t)(p - ks));
      char *v = read_arg(&p, &line, err);
      if (!v) {
        rc = CLL_EPARSE;
      } else if (!*k) {
        rc = cll_err_set(err, CLL_EPARSE, "line %d: %s needs a name and a value", line, ins);
      } else if (ins[0] == 'P') {
        for (char *c = k; *c; c++)
          *c = (char)tolower((unsigned char)*c);
        rc = cll__param_add(params, k, v, err);
      } else {
        static const char *roles[] = {"system", "user", "assistant", "tool"};
        bool ok = false;
        for (size_t i = 0; i < 4; i++)
          ok = ok || !strcasecmp(k, roles[i]);
        if (!ok)
          rc = cll_err_set(err, CLL_EPARSE, "line %d: invalid message role '%s'", line, k);
        else
          json_array_append_new(msgs, json_pack("{s:s,s:s}", "role", k, "content", v));
      }
      free(k);
      free(v);
      continue;
    }
    char *v = read_arg(&p, &line, err);
    if (!v) {
      rc = CLL_EPARSE;
      break;
    }
    if (!strcmp(ins, "FROM")) {
      have_from = true;
      bool pathlike = v[0] == '/' || v[0] == '.' || strstr(v, ".gguf") || strchr(v, '~');
      char path[4200];
      if (v[0] == '/')
        snprintf(path, sizeof(path), "%s", v);
      else if (v[0] == '~' && home)
        snprintf(path, sizeof(path), "%s%s", home, v + 1);
      else
        snprintf(path, sizeof(path), "%s/%s", base_dir ? base_dir : ".", v);
      char *abs = pathlike ? realpath(path, NULL) : NULL;
      if (pathlike && !abs)
        rc = cll_err_set(err, CLL_ENOENT, "line %d: %s: no such file", line, path);
      else
        json_object_set_new(req, "from", json_string(abs ? abs : v));
      free(abs);
    } else if (!strcmp(ins, "TEMPLATE")) {
      json_object_set_new(req, "template", json_string(v));
    } else if (!strcmp(ins, "SYSTEM")) {
      json_object_set_new(req, "system", json_string(v));
    } else if (!strcmp(ins, "LICENSE")) {
      json_array_append_new(lic, json_string(v));
    } else if (!strcmp(ins, "ADAPTER")) {
      rc = cll_err_set(err, CLL_EUNSUPPORTED,
                       "line %d: ADAPTER is not supported (cllama cannot apply LoRA adapters)",
                       line);
    } else if (!strcmp(ins, "REQUIRES")) {
      rc = cll_err_set(err, CLL_EUNSUPPORTED,
                       "line %d: REQUIRES is not supported (it names an Ollama version)", line);
    } else {
      rc = cll_err_set(err, CLL_EPARSE, "line %d: unknown instruction %s", line, ins);
    }
    free(v);
  }
  if (rc == 0 && !have_from)
    rc = cll_err_set(err, CLL_EPARSE, "no FROM line");
  if (rc != 0) {
    json_decref(req);
    json_decref(params);
    json_decref(msgs);
    json_decref(lic);
    return rc;
  }
  if (json_object_size(params))
    json_object_set_new(req, "parameters", params);
  else
    json_decref(params);
  if (json_array_size(msgs))
    json_object_set_new(req, "messages", msgs);
  else
    json_decref(msgs);
  if (json_array_size(lic))
    json_object_set_new(req, "license", lic);
  else
    json_decref(lic);
  *out = req;
  return 0;
}
