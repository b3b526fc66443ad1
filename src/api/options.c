/* options.c — generation options and keep_alive values, as Ollama parses
 * them (OLLAMA_API.md §6, §7.3). The option table gives each known key its
 * type; the messages for a wrong type are Ollama's, because clients show
 * them. */
#include "gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum opt_type { T_INT, T_FLOAT, T_BOOL, T_STRS, T_STR };

struct opt_def {
  const char *key;
  int type;
  size_t off;
};

#define OFF(f) offsetof(struct cll__gen_opts, f)
static const struct opt_def opt_defs[] = {
    {"num_ctx", T_INT, OFF(num_ctx)},
    {"num_predict", T_INT, OFF(num_predict)},
    {"num_keep", T_INT, OFF(num_keep)},
    {"seed", T_INT, OFF(seed)},
    {"temperature", T_FLOAT, OFF(temperature)},
    {"top_k", T_INT, OFF(top_k)},
    {"top_p", T_FLOAT, OFF(top_p)},
    {"min_p", T_FLOAT, OFF(min_p)},
    {"typical_p", T_FLOAT, OFF(typical_p)},
    {"repeat_last_n", T_INT, OFF(repeat_last_n)},
    {"repeat_penalty", T_FLOAT, OFF(repeat_penalty)},
    {"presence_penalty", T_FLOAT, OFF(presence_penalty)},
    {"frequency_penalty", T_FLOAT, OFF(frequency_penalty)},
    {"stop", T_STRS, OFF(stop)},
    {"num_batch", T_INT, OFF(num_batch)},
    {"num_gpu", T_INT, OFF(num_gpu)},
    {"main_gpu", T_INT, OFF(main_gpu)},
    {"num_thread", T_INT, OFF(num_thread)},
    {"use_mmap", T_BOOL, OFF(use_mmap)},
    {"system", T_STR, OFF(system)},
};

void cll__gen_opts_defaults(struct cll__gen_opts *o) {
  memset(o, 0, sizeof(*o));
  o->num_predict = -1;
  o->num_keep = 4;
  o->seed = -1;
  o->temperature = 0.8;
  o->top_k = 40;
  o->top_p = 0.9;
  o->min_p = 0.0;
  o->typical_p = 1.0;
  o->repeat_last_n = 64;
  o->repeat_penalty = 1.0;
  o->num_batch = 512;
  o->num_gpu = -1;
  o->main_gpu = 0;
  o->use_mmap = true;
}

static void free_stops(struct cll__gen_opts *o) {
  for (size_t i = 0; i < o->n_stop; i++)
    free(o->stop[i]);
  free(o->stop);
  o->stop = NULL;
  o->n_stop = 0;
}

void cll__gen_opts_free(struct cll__gen_opts *o) {
  if (!o)
    return;
  free_stops(o);
  free(o->system);
  o->system = NULL;
}

int cll__gen_opts_apply(struct cll__gen_opts *o, json_t *layer, cll_err *err) {
  if (!layer || json_is_null(layer))
    return 0;
  if (!json_is_object(layer))
    return cll_err_set(err, CLL_EINVAL,
                       "json: cannot unmarshal %s into Go struct field "
                       "GenerateRequest.options of type map[string]interface {}",
                       json_is_array(layer)    ? "array"
                       : json_is_string(layer) ? "string"
                                               : "number");
  const char *k;
  json_t *v;
  json_object_foreach(layer, k, v) {
    const struct opt_def *d = NULL;
    for (size_t i = 0; i < CLL_ARRAY_LEN(opt_defs); i++)
      if (strcmp(opt_defs[i].key, k) == 0)
        d = &opt_defs[i];
    if (!d) {
      fprintf(stderr, "level=WARN source=api msg=\"invalid option provided\" option=%s\n", k);
      continue;
    }
    if (json_is_null(v))
      continue;
    char *base = (char *)o + d->off;
    switch (d->type) {
    case T_INT:
      if (!json_is_number(v))
        return cll_err_set(err, CLL_EINVAL, "option \"%s\" must be of type integer", k);
      *(int64_t *)base =
          json_is_integer(v) ? (int64_t)json_integer_value(v) : (int64_t)json_real_value(v);
      break;
    case T_FLOAT:
      if (!json_is_number(v))
        return cll_err_set(err, CLL_EINVAL, "option \"%s\" must be of type float32", k);
      *(double *)base = json_number_value(v);
      break;
    case T_BOOL:
      if (!json_is_boolean(v))
        return cll_err_set(err, CLL_EINVAL, "option \"%s\" must be of type boolean", k);
      *(bool *)base = json_is_true(v);
      break;
    case T_STR:
      if (!json_is_string(v))
        return cll_err_set(err, CLL_EINVAL, "option \"%s\" must be of type string", k);
      free(o->system);
      o->system = strdup(json_string_value(v));
      break;
    case T_STRS: {
      if (!json_is_array(v))
        return cll_err_set(err, CLL_EINVAL, "option \"%s\" must be of type array", k);
      size_t n = json_array_size(v);
      for (size_t i = 0; i < n; i++)
        if (!json_is_string(json_array_get(v, i)))
          return cll_err_set(err, CLL_EINVAL, "option \"%s\" must be of an array of strings", k);
      free_stops(o); /* a layer's stop replaces the whole list */
      o->stop = calloc(n ? n : 1, sizeof(char *));
      if (!o->stop)
        return cll_err_set(err, CLL_ENOMEM, "out of memory");
      for (size_t i = 0; i < n; i++)
        o->stop[o->n_stop++] = strdup(json_string_value(json_array_get(v, i)));
      break;
    }
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- durations */

int cll__go_duration(const char *s, int64_t *ns, cll_err *err) {
  const char *orig = s;
  bool neg = false;
  if (*s == '-' || *s == '+')
    neg = *s++ == '-';
  if (strcmp(s, "0") == 0) {
    *ns = 0;
    return 0;
  }
  if (!*s)
    return cll_err_set(err, CLL_EINVAL, "time: invalid duration \"%s\"", orig);
  double total = 0;
  while (*s) {
    if (!((*s >= '0' && *s <= '9') || *s == '.'))
      return cll_err_set(err, CLL_EINVAL, "time: invalid duration \"%s\"", orig);
    char *end;
    double x = strtod(s, &end);
    if (end == s)
      return cll_err_set(err, CLL_EINVAL, "time: invalid duration \"%s\"", orig);
    s = end;
    const char *u = s;
    while (*s && !((*s >= '0' && *s <= '9') || *s == '.'))
      s++;
    size_t ul = (size_t)(s - u);
    double mult;
    if (ul == 0)
      return cll_err_set(err, CLL_EINVAL, "time: missing unit in duration \"%s\"", orig);
    else if (ul == 2 && !strncmp(u, "ns", 2))
      mult = 1;
    else if ((ul == 2 && !strncmp(u, "us", 2)) || (ul == 3 && !strncmp(u, "\xc2\xb5s", 3)) ||
             (ul == 3 && !strncmp(u, "\xce\xbcs", 3)))
      mult = 1e3;
    else if (ul == 2 && !strncmp(u, "ms", 2))
      mult = 1e6;
    else if (ul == 1 && *u == 's')
      mult = 1e9;
    else if (ul == 1 && *u == 'm')
      mult = 60e9;
    else if (ul == 1 && *u == 'h')
      mult = 3600e9;
    else
      return cll_err_set(err, CLL_EINVAL, "time: unknown unit \"%.*s\" in duration \"%s\"", (int)ul,
                         u, orig);
    total += x * mult;
  }
  if (total > 9.2e18)
    return cll_err_set(err, CLL_EINVAL, "time: invalid duration \"%s\"", orig);
  *ns = (int64_t)(neg ? -total : total);
  return 0;
}

int cll__keep_alive_parse(json_t *v, int64_t *ns, bool *set, cll_err *err) {
  *set = false;
  if (!v || json_is_null(v))
    return 0;
  if (json_is_number(v)) {
    double sec = json_number_value(v);
    *ns = sec < 0 ? -1 : (int64_t)(sec * 1e9);
    *set = true;
    return 0;
  }
  if (json_is_string(v)) {
    int64_t d;
    int rc = cll__go_duration(json_string_value(v), &d, err);
    if (rc)
      return rc;
    *ns = d < 0 ? -1 : d;
    *set = true;
    return 0;
  }
  return cll_err_set(err, CLL_EINVAL,
                     "json: cannot unmarshal %s into Go struct field "
                     ".keep_alive of type string",
                     json_is_boolean(v) ? "bool"
                     : json_is_array(v) ? "array"
                                        : "object");
}

/* ---------------------------------------------------------------- Modelfile */

int cll__param_add(json_t *params, const char *key, const char *text, cll_err *err) {
  const struct opt_def *d = NULL;
  for (size_t i = 0; i < CLL_ARRAY_LEN(opt_defs); i++)
    if (strcmp(opt_defs[i].key, key) == 0)
      d = &opt_defs[i];
  if (!d || d->type == T_STR)
    return cll_err_set(err, CLL_EINVAL, "unknown parameter '%s'", key);
  char *end;
  json_t *v = NULL;
  switch (d->type) {
  case T_INT: {
    long long x = strtoll(text, &end, 10);
    if (end == text || *end)
      return cll_err_set(err, CLL_EINVAL, "invalid int value [%s]", text);
    v = json_integer(x);
    break;
  }
  case T_FLOAT: {
    double x = strtod(text, &end);
    if (end == text || *end)
      return cll_err_set(err, CLL_EINVAL, "invalid float value [%s]", text);
    v = json_real(x);
    break;
  }
  case T_BOOL:
    if (!strcmp(text, "true") || !strcmp(text, "1"))
      v = json_true();
    else if (!strcmp(text, "false") || !strcmp(text, "0"))
      v = json_false();
    else
      return cll_err_set(err, CLL_EINVAL, "invalid bool value [%s]", text);
    break;
  case T_STRS: {
    json_t *arr = json_object_get(params, key);
    if (!json_is_array(arr)) {
      arr = json_array();
      json_object_set_new(params, key, arr);
    }
    json_array_append_new(arr, json_string(text));
    return 0;
  }
  }
  json_object_set_new(params, key, v);
  return 0;
}
