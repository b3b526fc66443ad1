/* curl_uv.c — libcurl's multi socket interface on the libuv loop.
 *
 * DESIGN. This is the shape of libuv's docs/code/uvwget example. libcurl
 * tells us which sockets it wants watched (CURLMOPT_SOCKETFUNCTION) and when
 * it next needs a timeout (CURLMOPT_TIMERFUNCTION). Each watched socket gets a
 * uv_poll handle; the one uv_timer carries libcurl's timeout. When either
 * fires we call curl_multi_socket_action and then drain curl_multi_info_read
 * for finished transfers. Everything happens on the loop thread.
 *
 * Handle lifetimes follow libuv's rule: a poll handle is freed only in its
 * close callback, and `cu` itself is freed when its last handle has closed.
 * A per-transfer record (in CURLOPT_PRIVATE, which callers must not use)
 * holds the done callback and links the transfer into a list so close can
 * remove everything. */
#include "cllama/curl_uv.h"
#include "cllama/common.h"

#include <pthread.h>
#include <stdlib.h>

struct xfer {
  CURL *easy;
  cll_curl_done_fn done;
  void *arg;
  struct xfer *prev, *next;
};

struct sock {
  uv_poll_t poll;
  curl_socket_t fd;
  cll_curl_uv *cu;
  int closing;
  struct sock *prev, *next;
};

struct cll_curl_uv {
  uv_loop_t *loop;
  CURLM *multi;
  uv_timer_t timer;
  struct xfer *xfers; /* transfers currently in the multi */
  struct sock *socks; /* sockets with a live poll handle */
  int n_active;
  int open_handles; /* libuv handles not yet closed (timer + polls) */
  int closing;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static void global_init(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void maybe_free(cll_curl_uv *cu) {
  if (cu->closing && cu->open_handles == 0)
    free(cu);
}

static void on_handle_closed(uv_handle_t *h) {
  cll_curl_uv *cu = h->data;
  if ((void *)h != (void *)&cu->timer)
    free(h); /* a struct sock; the poll handle is its first member */
  cu->open_handles--;
  maybe_free(cu);
}

static void sock_close(struct sock *s) {
  cll_curl_uv *cu = s->cu;
  if (s->closing)
    return;
  s->closing = 1;
  if (s->prev)
    s->prev->next = s->next;
  else
    cu->socks = s->next;
  if (s->next)
    s->next->prev = s->prev;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_handle_closed);
}

static void xfer_unlink(cll_curl_uv *cu, struct xfer *x) {
  if (x->prev)
    x->prev->next = x->next;
  else
    cu->xfers = x->next;
  if (x->next)
    x->next->prev = x->prev;
  cu->n_active--;
}

/* Hands every finished transfer to its done callback. */
static void check_done(cll_curl_uv *cu) {
  CURLMsg *msg;
  int left;
  while (!cu->closing && (msg = curl_multi_info_read(cu->multi, &left)) != NULL) {
    if (msg->msg != CURLMSG_DONE)
      continue;
    CURL *easy = msg->easy_handle;
    CURLcode result = msg->data.result;
    struct xfer *x = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    curl_multi_remove_handle(cu->multi, easy);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    if (x == NULL)
      continue;
    xfer_unlink(cu, x);
    cll_curl_done_fn done = x->done;
    void *arg = x->arg;
    free(x);
    done(easy, result, arg);
  }
}

static void on_poll(uv_poll_t *h, int status, int events) {
  struct sock *s = (struct sock *)h;
  cll_curl_uv *cu = s->cu;
  int flags = 0;
  if (status < 0)
    flags = CURL_CSELECT_ERR;
  else {
    if (events & UV_READABLE)
      flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
      flags |= CURL_CSELECT_OUT;
  }
  int running;
  curl_multi_socket_action(cu->multi, s->fd, flags, &running);
  check_done(cu);
}

static void on_timeout(uv_timer_t *t) {
  cll_curl_uv *cu = t->data;
  int running;
  curl_multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  check_done(cu);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  cll_curl_uv *cu = userp;
  struct sock *s = socketp;
  if (what == CURL_POLL_REMOVE) {
    if (s != NULL) {
      curl_multi_assign(cu->multi, fd, NULL);
      sock_close(s);
    }
    return 0;
  }
  if (s == NULL) {
    s = calloc(1, sizeof(*s));
    if (s == NULL)
      return -1;
    if (uv_poll_init_socket(cu->loop, &s->poll, fd) != 0) {
      free(s);
      return -1;
    }
    s->poll.data = cu;
    s->fd = fd;
    s->cu = cu;
    s->next = cu->socks;
    if (cu->socks)
      cu->socks->prev = s;
    cu->socks = s;
    cu->open_handles++;
    curl_multi_assign(cu->multi, fd, s);
  }
  int events = 0;
  if (what & CURL_POLL_IN)
    events |= UV_READABLE;
  if (what & CURL_POLL_OUT)
    events |= UV_WRITABLE;
  uv_poll_start(&s->poll, events, on_poll);
  return 0;
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants to be called back in timeout_ms
 * (0: on the next loop iteration, never from inside this callback). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  cll_curl_uv *cu = userp;
  if (timeout_ms < 0)
    uv_timer_stop(&cu->timer);
  else
    uv_timer_start(&cu->timer, on_timeout, (uint64_t)timeout_ms, 0);
  return 0;
}

int cll_curl_uv_new(uv_loop_t *loop, cll_curl_uv **out) {
  pthread_once(&global_once, global_init);
  cll_curl_uv *cu = calloc(1, sizeof(*cu));
  if (cu == NULL)
    return CLL_ENOMEM;
  cu->loop = loop;
  cu->multi = curl_multi_init();
  if (cu->multi == NULL) {
    free(cu);
    return CLL_ENOMEM;
  }
  uv_timer_init(loop, &cu->timer);
  cu->timer.data = cu;
  cu->open_handles = 1;
  curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
  curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
  *out = cu;
  return 0;
}

int cll_curl_uv_add(cll_curl_uv *cu, CURL *easy, cll_curl_done_fn done, void *arg) {
  if (cu == NULL || easy == NULL || done == NULL || cu->closing)
    return CLL_EINVAL;
  struct xfer *x = calloc(1, sizeof(*x));
  if (x == NULL)
    return CLL_ENOMEM;
  x->easy = easy;
  x->done = done;
  x->arg = arg;
  curl_easy_setopt(easy, CURLOPT_PRIVATE, x);
  if (curl_multi_add_handle(cu->multi, easy) != CURLM_OK) {
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(x);
    return CLL_EINVAL;
  }
  x->next = cu->xfers;
  if (cu->xfers)
    cu->xfers->prev = x;
  cu->xfers = x;
  cu->n_active++;
  return 0;
}

void cll_curl_uv_remove(cll_curl_uv *cu, CURL *easy) {
  struct xfer *x = NULL;
  if (cu == NULL || easy == NULL)
    return;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
  if (x == NULL)
    return;
  curl_multi_remove_handle(cu->multi, easy);
  curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
  xfer_unlink(cu, x);
  free(x);
}

void cll_curl_uv_unpause(cll_curl_uv *cu, CURL *easy) {
  /* libcurl may deliver the held-back data from inside this call, and it
   * arms a zero timeout so the transfer carries on from the loop. */
  curl_easy_pause(easy, CURLPAUSE_CONT);
}

int cll_curl_uv_active(const cll_curl_uv *cu) {
  return cu ? cu->n_active : 0;
}

void cll_curl_uv_close(cll_curl_uv *cu) {
  if (cu == NULL || cu->closing)
    return;
  while (cu->xfers)
    cll_curl_uv_remove(cu, cu->xfers->easy);
  cu->closing = 1;
  curl_multi_cleanup(cu->multi); /* may still report sockets being removed */
  cu->multi = NULL;
  while (cu->socks)
    sock_close(cu->socks);
  uv_timer_stop(&cu->timer);
  uv_close((uv_handle_t *)&cu->timer, on_handle_closed);
}
