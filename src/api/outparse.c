/* outparse.c — streaming split of output into thinking, text and tool calls
 * (see outparse.h).
 *
 * DESIGN. Every byte fed is appended to one pending buffer; a state machine
 * then decides as much of its front as it can and removes it. Anything that
 * might still be the start of a tag (a suffix of the buffer that is a prefix
 * of the tag) or of a call (JSON whose brackets have not closed) stays in
 * the buffer, so a tag or call split across any token boundary is seen
 * whole. A JSON value is scanned once, incrementally (depth, string and
 * escape state survive between feeds), so a long call costs linear time. */
#include "outparse.h"

#include "cllama/common.h"
#include "cllama/util.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

enum state {
  S_THINK_START, /* before the answer: is there a thinking block? */
  S_THINK,       /* inside it */
  S_TRIM,        /* blanks after the closing tag */
  S_START,       /* start of the answer (bare-JSON calls are only here) */
  S_TEXT,        /* answer text; looking for the tool tag */
  S_AFTER_TAG,   /* pend starts with the tag; its JSON (or name) follows */
  S_JSON,        /* scanning a JSON value at pend[json_at] */
  S_CLOSE,       /* after a call: an optional closing tag */
  S_GAP,         /* blanks between calls */
};

struct cll__outp {
  char *think_open, *think_close, *tag, *close_tag;
  bool bare; /* tag "{": bare JSON at the start of the answer */
  const json_t *tools;
  int state;
  cll_buf pend; /* the pending bytes (pend.data, pend.len) */
  /* JSON scan of pend.data[json_at..scan) */
  size_t json_at, scan;
  int depth;
  bool in_str, esc;
  bool think_lead; /* blanks at the start of the thoughts are trimmed */
  char *name;      /* Mistral's `name[ARGS]{..}`: the name before the JSON */
  int n_calls;
};

static char *dup_or_null(const char *s) {
  return s && *s ? strdup(s) : NULL;
}

int cll__outp_new(const struct cll__outp_cfg *cfg, cll__outp **out) {
  cll__outp *p = calloc(1, sizeof(*p));
  if (!p)
    return CLL_ENOMEM;
  bool think = cfg->think_open && *cfg->think_open && cfg->think_close && *cfg->think_close;
  if (think) {
    p->think_open = strdup(cfg->think_open);
    p->think_close = strdup(cfg->think_close);
  }
  p->tag = dup_or_null(cfg->tool_tag);
  p->tools = cfg->tools;
  if (p->tag && strcmp(p->tag, "{") == 0) {
    p->bare = true;
  } else if (p->tag && p->tag[0] == '<' && p->tag[1] != '/') {
    /* <tool_call> -> </tool_call> */
    size_t k = strlen(p->tag);
    p->close_tag = malloc(k + 2);
    if (p->close_tag) {
      p->close_tag[0] = '<';
      p->close_tag[1] = '/';
      memcpy(p->close_tag + 2, p->tag + 1, k);
    }
  }
  if ((think && (!p->think_open || !p->think_close)) ||
      (cfg->tool_tag && *cfg->tool_tag && !p->tag)) {
    cll__outp_free(p);
    return CLL_ENOMEM;
  }
  p->state = !think ? S_START : cfg->in_thinking ? S_THINK : S_THINK_START;
  p->think_lead = cfg->in_thinking;
  *out = p;
  return 0;
}

void cll__outp_free(cll__outp *p) {
  if (!p)
    return;
  free(p->think_open);
  free(p->think_close);
  free(p->tag);
  free(p->close_tag);
  cll_buf_free(&p->pend);
  free(p->name);
  free(p);
}

int cll__outp_n_calls(const cll__outp *p) {
  return p->n_calls;
}

static void consume(cll__outp *p, size_t k) {
  if (k == 0)
    return; /* pend.data may still be NULL */
  memmove(p->pend.data, p->pend.data + k, p->pend.len - k);
  p->pend.len -= k;
  p->pend.data[p->pend.len] = '\0';
}

static size_t blanks(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && isspace((unsigned char)s[i]))
    i++;
  return i;
}

/* Whether s[0..n) is a proper prefix of tag. */
static bool prefix_of(const char *s, size_t n, const char *tag) {
  size_t k = strlen(tag);
  return n < k && memcmp(s, tag, n) == 0;
}

/* The length of the longest suffix of s[0..n) that is a proper prefix of
 * tag (what must be held back). */
static size_t partial_suffix(const char *s, size_t n, const char *tag) {
  size_t k = strlen(tag);
  size_t m = n < k - 1 ? n : k - 1;
  for (; m > 0; m--)
    if (memcmp(s + n - m, tag, m) == 0)
      return m;
  return 0;
}

static const char *find(const char *s, size_t n, const char *tag) {
  size_t k = strlen(tag);
  if (k == 0 || n < k)
    return NULL;
  for (size_t i = 0; i + k <= n; i++)
    if (s[i] == tag[0] && memcmp(s + i, tag, k) == 0)
      return s + i;
  return NULL;
}

/* ------------------------------------------------------------- tool calls */

static bool tool_known(const json_t *tools, const char *name) {
  if (!json_is_array(tools) || json_array_size(tools) == 0)
    return true;
  size_t i;
  json_t *t;
  json_array_foreach((json_t *)tools, i, t) {
    json_t *fn = json_object_get(t, "function");
    const char *n = json_string_value(json_object_get(fn ? fn : t, "name"));
    if (n && strcmp(n, name) == 0)
      return true;
  }
  return false;
}

/* One call from an object with "name" and "arguments"/"parameters" (an
 * object or a JSON string of one). */
static int call_from_object(json_t *v, const json_t *tools, cll__out_fn fn, void *ud) {
  json_t *f = json_object_get(v, "function");
  if (json_is_object(f) && !json_object_get(v, "name"))
    return call_from_object(f, tools, fn, ud);
  const char *name = json_string_value(json_object_get(v, "name"));
  if (!name || !*name || !tool_known(tools, name))
    return 0;
  json_t *args = json_object_get(v, "arguments");
  if (!args)
    args = json_object_get(v, "parameters");
  json_t *owned = NULL;
  if (json_is_string(args)) {
    owned = json_loads(json_string_value(args), 0, NULL);
    args = owned;
  }
  if (args && !json_is_object(args)) {
    json_decref(owned);
    return 0;
  }
  if (!args)
    args = owned = json_object();
  fn(ud, CLL__OUT_TOOL_CALL, NULL, 0, name, args);
  json_decref(owned);
  return 1;
}

int cll__tool_calls_from_json(json_t *v, const json_t *tools, cll__out_fn fn, void *ud) {
  if (json_is_object(v))
    return call_from_object(v, tools, fn, ud);
  if (!json_is_array(v) || json_array_size(v) == 0)
    return 0;
  /* An array is calls only when every element is one: check first. */
  size_t i;
  json_t *e;
  json_array_foreach(v, i, e) {
    json_t *f = json_object_get(e, "function");
    const char *name = json_string_value(json_object_get(json_is_object(f) ? f : e, "name"));
    if (!json_is_object(e) || !name || !tool_known(tools, name))
      return 0;
  }
  int n = 0;
  json_array_foreach(v, i, e) n += call_from_object(e, tools, fn, ud);
  return n;
}

struct counting {
  cll__outp *p;
  cll__out_fn fn;
  void *ud;
};

static void count_call(void *ud, int kind, const char *s, size_t n, const char *name,
                       json_t *args) {
  struct counting *c = ud;
  c->p->n_calls++;
  c->fn(c->ud, kind, s, n, name, args);
}

/* Tries pend[json_at..end) as call(s); on success they are emitted. */
static bool emit_calls(cll__outp *p, size_t end, cll__out_fn fn, void *ud) {
  json_t *v = json_loadb(p->pend.data + p->json_at, end - p->json_at, 0, NULL);
  if (!v)
    return false;
  struct counting c = {p, fn, ud};
  int n;
  if (p->name) {
    /* name[ARGS]{...}: the JSON is the arguments. */
    n = json_is_object(v) && tool_known(p->tools, p->name) ? 1 : 0;
    if (n)
      count_call(&c, CLL__OUT_TOOL_CALL, NULL, 0, p->name, v);
  } else {
    /* Validate everything first so a half-valid array is text, not calls. */
    n = cll__tool_calls_from_json(v, p->tools, count_call, &c);
  }
  json_decref(v);
  return n > 0;
}

/* Advances the JSON scan; returns the end offset once balanced, else 0. */
static size_t scan_json(cll__outp *p) {
  for (; p->scan < p->pend.len; p->scan++) {
    char ch = p->pend.data[p->scan];
    if (p->in_str) {
      if (p->esc)
        p->esc = false;
      else if (ch == '\\')
        p->esc = true;
      else if (ch == '"')
        p->in_str = false;
      continue;
    }
    if (ch == '"') {
      p->in_str = true;
    } else if (ch == '{' || ch == '[') {
      p->depth++;
    } else if (ch == '}' || ch == ']') {
      if (--p->depth == 0)
        return ++p->scan;
    }
  }
  return 0;
}

static void json_begin(cll__outp *p, size_t at) {
  p->state = S_JSON;
  p->json_at = p->scan = at;
  p->depth = 0;
  p->in_str = p->esc = false;
}

static void text_out(cll__out_fn fn, void *ud, int kind, const char *s, size_t n) {
  if (n)
    fn(ud, kind, s, n, NULL, NULL);
}

/* The pending text holds no whole tag: hands it out as kind, all but a
 * tail that may still become the tag (all of it at the end of output). */
static void emit_before_partial(cll__outp *p, const char *tag, int kind, bool at_end,
                                cll__out_fn fn, void *ud) {
  size_t hold = at_end ? 0 : partial_suffix(p->pend.data, p->pend.len, tag);
  text_out(fn, ud, kind, p->pend.data, p->pend.len - hold);
  consume(p, p->pend.len - hold);
}

/* Runs the state machine over the buffer; at_end: no more input comes. */
static void run(cll__outp *p, bool at_end, cll__out_fn fn, void *ud) {
  for (;;) {
    switch (p->state) {
    case S_THINK_START: {
      size_t b = blanks(p->pend.data, p->pend.len);
      const char *rest = p->pend.data + b;
      size_t k = p->pend.len - b;
      if (k == 0 && !at_end)
        return;
      size_t tl = strlen(p->think_open);
      if (k >= tl && memcmp(rest, p->think_open, tl) == 0) {
        consume(p, b + tl);
        p->state = S_THINK;
        p->think_lead = true;
        continue;
      }
      if (prefix_of(rest, k, p->think_open) && !at_end)
        return;
      p->state = S_START;
      continue;
    }
    case S_THINK: {
      if (p->think_lead) {
        size_t b = blanks(p->pend.data, p->pend.len);
        consume(p, b);
        if (p->pend.len == 0 && !at_end)
          return;
        p->think_lead = false;
      }
      const char *at = find(p->pend.data, p->pend.len, p->think_close);
      if (at) {
        size_t k = (size_t)(at - p->pend.data);
        /* Thoughts have their surrounding blanks trimmed at the start. */
        text_out(fn, ud, CLL__OUT_THINKING, p->pend.data, k);
        consume(p, k + strlen(p->think_close));
        p->state = S_TRIM;
        continue;
      }
      emit_before_partial(p, p->think_close, CLL__OUT_THINKING, at_end, fn, ud);
      return;
    }
    case S_TRIM: {
      size_t b = blanks(p->pend.data, p->pend.len);
      consume(p, b);
      if (p->pend.len == 0 && !at_end)
        return;
      p->state = S_START;
      continue;
    }
    case S_START: {
      if (!p->bare) {
        p->state = S_TEXT;
        continue;
      }
      size_t b = blanks(p->pend.data, p->pend.len);
      while (b < p->pend.len && p->pend.data[b] == ';') /* Llama 3.x separates calls with ';' */
        b += 1 + blanks(p->pend.data + b + 1, p->pend.len - b - 1);
      if (b == p->pend.len) {
        if (!at_end)
          return;
        if (p->n_calls == 0)
          text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, p->pend.len);
        cll_buf_reset(&p->pend);
        return;
      }
      if (p->pend.data[b] == '{' || p->pend.data[b] == '[') {
        if (p->n_calls)
          consume(p, b), b = 0; /* blanks between calls are dropped */
        json_begin(p, b);
        continue;
      }
      /* Plain text: bare calls only come first, so the rest is text. */
      p->bare = false;
      free(p->tag);
      p->tag = NULL;
      p->state = S_TEXT;
      continue;
    }
    case S_TEXT: {
      if (!p->tag) {
        text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, p->pend.len);
        cll_buf_reset(&p->pend);
        return;
      }
      const char *at = find(p->pend.data, p->pend.len, p->tag);
      if (at) {
        size_t k = (size_t)(at - p->pend.data);
        text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, k);
        consume(p, k);
        p->state = S_AFTER_TAG;
        continue;
      }
      emit_before_partial(p, p->tag, CLL__OUT_TEXT, at_end, fn, ud);
      return;
    }
    case S_AFTER_TAG: {
      size_t tl = strlen(p->tag);
      size_t b = tl + blanks(p->pend.data + tl, p->pend.len - tl);
      if (b == p->pend.len) {
        if (!at_end)
          return;
        text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, p->pend.len);
        cll_buf_reset(&p->pend);
        return;
      }
      if (p->pend.data[b] == '{' || p->pend.data[b] == '[') {
        json_begin(p, b);
        continue;
      }
      /* Mistral's name[ARGS]{..}: a name, then the arguments object. */
      const char *brace = memchr(p->pend.data + b, '{', p->pend.len - b);
      const char *nl = memchr(p->pend.data + b, '\n', p->pend.len - b);
      if (!brace && !nl && p->pend.len - b < 256 && !at_end)
        return;
      if (brace && (!nl || nl > brace)) {
        size_t e = (size_t)(brace - p->pend.data);
        size_t s = b;
        const char *args_tag = find(p->pend.data + s, e - s, "[ARGS]");
        size_t ne = args_tag ? (size_t)(args_tag - p->pend.data) : e;
        while (ne > s && isspace((unsigned char)p->pend.data[ne - 1]))
          ne--;
        free(p->name);
        p->name = ne > s ? strndup(p->pend.data + s, ne - s) : NULL;
        if (p->name && tool_known(p->tools, p->name)) {
          json_begin(p, e);
          continue;
        }
        free(p->name);
        p->name = NULL;
      }
      /* Not a call after all: the tag was text. */
      text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, tl);
      consume(p, tl);
      p->state = S_TEXT;
      continue;
    }
    case S_JSON: {
      size_t end = scan_json(p);
      if (end == 0) {
        if (!at_end)
          return;
        text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, p->pend.len); /* never closed */
        cll_buf_reset(&p->pend);
        return;
      }
      bool ok = emit_calls(p, end, fn, ud);
      free(p->name);
      p->name = NULL;
      if (!ok) {
        text_out(fn, ud, CLL__OUT_TEXT, p->pend.data, end);
        consume(p, end);
        if (p->bare) {
          p->bare = false; /* bare JSON that is no call: all text from here */
          free(p->tag);
          p->tag = NULL;
        }
        p->state = S_TEXT;
        continue;
      }
      consume(p, end);
      p->state = p->bare ? S_START : S_CLOSE;
      continue;
    }
    case S_CLOSE: {
      size_t b = blanks(p->pend.data, p->pend.len);
      if (!p->close_tag) {
        p->state = S_GAP;
        continue;
      }
      size_t cl = strlen(p->close_tag);
      if (p->pend.len - b >= cl && memcmp(p->pend.data + b, p->close_tag, cl) == 0) {
        consume(p, b + cl);
        p->state = S_GAP;
        continue;
      }
      if (prefix_of(p->pend.data + b, p->pend.len - b, p->close_tag) && !at_end)
        return;
      p->state = S_GAP;
      continue;
    }
    case S_GAP: {
      size_t b = blanks(p->pend.data, p->pend.len);
      if (b == p->pend.len) {
        if (at_end)
          cll_buf_reset(&p->pend); /* trailing blanks after the last call */
        return;
      }
      const char *rest = p->pend.data + b;
      size_t k = p->pend.len - b;
      size_t tl = strlen(p->tag);
      if (k >= tl && memcmp(rest, p->tag, tl) == 0) {
        consume(p, b);
      } else if (prefix_of(rest, k, p->tag) && !at_end) {
        return;
      }
      p->state = S_TEXT;
      continue;
    }
    }
  }
}

void cll__outp_feed(cll__outp *p, const char *s, size_t n, cll__out_fn fn, void *ud) {
  if (n == 0)
    return;
  if (cll_buf_append(&p->pend, s, n) != 0) {
    /* Out of memory: pass what we hold and this piece through as text. A
     * failed append leaves the buffer as it was, so the error is cleared
     * for the next piece to try again. */
    p->pend.err = 0;
    run(p, true, fn, ud);
    text_out(fn, ud, p->state == S_THINK ? CLL__OUT_THINKING : CLL__OUT_TEXT, s, n);
    return;
  }
  run(p, false, fn, ud);
}

void cll__outp_finish(cll__outp *p, cll__out_fn fn, void *ud) {
  run(p, true, fn, ud);
}
