/* lineedit.c — the interactive prompt's line editor: the terminal in raw
 * mode for one line at a time (ISIG off, so Ctrl-C arrives as a byte and
 * only clears the line), cursor keys, Emacs-style shortcuts and a history
 * walked with Up/Down, kept across the session and, like Ollama's, in
 * ~/.ollama/history. Not a terminal: plain fgets. */
#include "client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#define HIST_MAX 1000

struct buf {
  char *p;
  size_t n, cap, pos; /* pos: cursor, a byte offset on a character boundary */
};

static void buf_insert(struct buf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = realloc(b->p, b->cap);
  }
  memmove(b->p + b->pos + n, b->p + b->pos, b->n - b->pos);
  memcpy(b->p + b->pos, s, n);
  b->n += n;
  b->pos += n;
  b->p[b->n] = 0;
}

static void buf_set(struct buf *b, const char *s) {
  b->n = b->pos = 0;
  if (b->p)
    b->p[0] = 0;
  buf_insert(b, s, strlen(s));
}

static void buf_delete(struct buf *b, size_t from, size_t to) {
  memmove(b->p + from, b->p + to, b->n - to);
  b->n -= to - from;
  b->p[b->n] = 0;
  if (b->pos > to)
    b->pos -= to - from;
  else if (b->pos > from)
    b->pos = from;
}

static bool cont_byte(char c) {
  return ((unsigned char)c & 0xC0) == 0x80;
}

static size_t prev_char(const struct buf *b, size_t i) {
  if (i == 0)
    return 0;
  i--;
  while (i > 0 && cont_byte(b->p[i]))
    i--;
  return i;
}

static size_t next_char(const struct buf *b, size_t i) {
  if (i >= b->n)
    return b->n;
  i++;
  while (i < b->n && cont_byte(b->p[i]))
    i++;
  return i;
}

static size_t columns(const char *s, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++)
    c += !cont_byte(s[i]);
  return c;
}

static void out(const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(STDOUT_FILENO, s, n);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      return;
    s += w;
    n -= (size_t)w;
  }
}

static void outs(const char *s) {
  out(s, strlen(s));
}

/* Redraws the line: prompt, text (or the dimmed placeholder), cursor. */
static void refresh(const char *prompt, const char *placeholder, const struct buf *b) {
  outs("\r");
  outs(prompt);
  if (b->n == 0 && placeholder && *placeholder) {
    outs("\033[K\033[2m");
    outs(placeholder);
    outs("\033[0m\r");
    outs(prompt);
    return;
  }
  out(b->p ? b->p : "", b->n);
  outs("\033[K");
  size_t back = columns(b->p + b->pos, b->n - b->pos);
  if (back > 0) {
    char mv[32];
    snprintf(mv, sizeof(mv), "\033[%zuD", back);
    outs(mv);
  }
}

static int read_byte(char *c) {
  for (;;) {
    ssize_t r = read(STDIN_FILENO, c, 1);
    if (r == 1)
      return 1;
    if (r < 0 && errno == EINTR)
      continue;
    return 0;
  }
}

void cll__lineedit_add(struct cll__lineedit *le, const char *line) {
  if (!*line)
    return;
  if (le->n_hist && !strcmp(le->hist[le->n_hist - 1], line))
    return;
  if (le->n_hist == HIST_MAX) {
    free(le->hist[0]);
    memmove(le->hist, le->hist + 1, (HIST_MAX - 1) * sizeof(*le->hist));
    le->n_hist--;
  }
  if (le->n_hist == le->cap_hist) {
    le->cap_hist = le->cap_hist ? le->cap_hist * 2 : 64;
    le->hist = realloc(le->hist, le->cap_hist * sizeof(*le->hist));
  }
  le->hist[le->n_hist++] = strdup(line);
  if (le->hist_path[0]) {
    FILE *f = fopen(le->hist_path, "a");
    if (f) {
      /* One entry a line; a newline inside an entry is kept as "\n". */
      for (const char *c = line; *c; c++) {
        if (*c == '\n')
          fputs("\\n", f);
        else if (*c == '\\')
          fputs("\\\\", f);
        else
          fputc(*c, f);
      }
      fputc('\n', f);
      fclose(f);
    }
  }
}

void cll__lineedit_load(struct cll__lineedit *le, const char *path) {
  FILE *f = fopen(path, "r");
  char line[1 << 14];
  while (f && fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\n")] = 0;
    char *o = line;
    for (char *c = line; *c; c++) {
      if (*c == '\\' && c[1] == 'n')
        *o++ = '\n', c++;
      else if (*c == '\\' && c[1] == '\\')
        *o++ = '\\', c++;
      else
        *o++ = *c;
    }
    *o = 0;
    cll__lineedit_add(le, line);
  }
  if (f)
    fclose(f);
  snprintf(le->hist_path, sizeof(le->hist_path), "%s", path);
}

void cll__lineedit_free(struct cll__lineedit *le) {
  for (size_t i = 0; i < le->n_hist; i++)
    free(le->hist[i]);
  free(le->hist);
  memset(le, 0, sizeof(*le));
}

static int read_plain(const char *prompt, char **outp) {
  fputs(prompt, stdout);
  fflush(stdout);
  size_t cap = 256, n = 0;
  char *s = malloc(cap);
  int c;
  while ((c = getchar()) != EOF && c != '\n') {
    if (n + 2 > cap)
      s = realloc(s, cap *= 2);
    s[n++] = (char)c;
  }
  if (c == EOF && n == 0) {
    free(s);
    return CLL__LE_EOF;
  }
  if (n && s[n - 1] == '\r')
    n--;
  s[n] = 0;
  *outp = s;
  return CLL__LE_OK;
}

int cll__lineedit_read(struct cll__lineedit *le, const char *prompt, const char *placeholder,
                       char **outp) {
  *outp = NULL;
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
    return read_plain(prompt, outp);
  fflush(stdout);
  struct termios saved, raw;
  if (tcgetattr(STDIN_FILENO, &saved) != 0)
    return read_plain(prompt, outp);
  raw = saved;
  raw.c_iflag &= ~(unsigned)(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
  raw.c_lflag &= ~(unsigned)(ECHO | ICANON | IEXTEN | ISIG);
  raw.c_cc[VMIN] = 1;
  raw.c_cc[VTIME] = 0;
  tcsetattr(STDIN_FILENO, TCSANOW, &raw);

  struct buf b = {0};
  buf_set(&b, "");
  size_t hi = le->n_hist; /* == n_hist: the line being edited */
  char *editing = NULL;   /* the new line, kept while walking history */
  int rc = CLL__LE_OK;
  refresh(prompt, placeholder, &b);
  for (;;) {
    char c;
    if (!read_byte(&c)) {
      rc = CLL__LE_EOF;
      break;
    }
    if (c == '\r' || c == '\n') {
      break;
    } else if (c == 3) { /* Ctrl-C */
      rc = CLL__LE_INTERRUPT;
      break;
    } else if (c == 4) { /* Ctrl-D */
      if (b.n == 0) {
        rc = CLL__LE_EOF;
        break;
      }
      if (b.pos < b.n)
        buf_delete(&b, b.pos, next_char(&b, b.pos));
    } else if (c == 127 || c == 8) {
      if (b.pos > 0)
        buf_delete(&b, prev_char(&b, b.pos), b.pos);
    } else if (c == 1) {
      b.pos = 0;
    } else if (c == 5) {
      b.pos = b.n;
    } else if (c == 2) {
      b.pos = prev_char(&b, b.pos);
    } else if (c == 6) {
      b.pos = next_char(&b, b.pos);
    } else if (c == 11) {
      buf_delete(&b, b.pos, b.n);
    } else if (c == 21) {
      buf_delete(&b, 0, b.pos);
    } else if (c == 23) { /* Ctrl-W: the word before the cursor */
      size_t i = b.pos;
      while (i > 0 && b.p[i - 1] == ' ')
        i--;
      while (i > 0 && b.p[i - 1] != ' ')
        i--;
      buf_delete(&b, i, b.pos);
    } else if (c == 12) {
      outs("\033[H\033[2J");
    } else if (c == 27) {
      char s0, s1, s2;
      if (!read_byte(&s0) || !read_byte(&s1))
        continue;
      if (s0 == '[' && s1 >= '0' && s1 <= '9') {
        if (!read_byte(&s2))
          continue;
        if (s2 == '~' && s1 == '3' && b.pos < b.n)
          buf_delete(&b, b.pos, next_char(&b, b.pos));
        else if (s2 == '~' && (s1 == '1' || s1 == '7'))
          b.pos = 0;
        else if (s2 == '~' && (s1 == '4' || s1 == '8'))
          b.pos = b.n;
        else if (s2 == '~' && s1 == '2') {
          /* Insert key, or the start of a bracketed paste: ignored */
        }
      } else if ((s0 == '[' || s0 == 'O') && (s1 == 'A' || s1 == 'B')) {
        size_t to = hi;
        if (s1 == 'A' && hi > 0)
          to = hi - 1;
        else if (s1 == 'B' && hi < le->n_hist)
          to = hi + 1;
        if (to != hi) {
          if (hi == le->n_hist) {
            free(editing);
            editing = strdup(b.p);
          }
          hi = to;
          buf_set(&b, hi == le->n_hist ? (editing ? editing : "") : le->hist[hi]);
        }
      } else if ((s0 == '[' || s0 == 'O') && s1 == 'C') {
        b.pos = next_char(&b, b.pos);
      } else if ((s0 == '[' || s0 == 'O') && s1 == 'D') {
        b.pos = prev_char(&b, b.pos);
      } else if ((s0 == '[' || s0 == 'O') && s1 == 'H') {
        b.pos = 0;
      } else if ((s0 == '[' || s0 == 'O') && s1 == 'F') {
        b.pos = b.n;
      }
    } else if ((unsigned char)c >= 0x20 || c == '\t') {
      buf_insert(&b, &c, 1);
      if (((unsigned char)c & 0xC0) == 0xC0) { /* the rest of a UTF-8 sequence */
        int more = ((unsigned char)c & 0xF0) == 0xF0   ? 3
                   : ((unsigned char)c & 0xE0) == 0xE0 ? 2
                                                       : 1;
        for (int k = 0; k < more && read_byte(&c); k++)
          buf_insert(&b, &c, 1);
      }
    }
    refresh(prompt, placeholder, &b);
  }
  /* Leave the line as typed (no placeholder) and move to the next. */
  refresh(prompt, NULL, &b);
  outs(rc == CLL__LE_INTERRUPT ? "^C\r\n" : "\r\n");
  tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  free(editing);
  if (rc != CLL__LE_EOF) { /* on Ctrl-C too: the caller may look at it */
    *outp = b.p;
    return rc;
  }
  free(b.p);
  return rc;
}
