/* tsan_shim.c — linked into the ThreadSanitizer build of cllama only
 * (`make tsan`, build/tsan/cllama). Debian's libuv closes descriptors with
 * syscall(SYS_close), which TSan does not see: it then takes a socket that
 * libuv closed for still open, and when a worker thread gets the same
 * number from mkstemp() and closes it, reports a race between that close
 * and libuv's earlier epoll_ctl() on "the same" descriptor. Defining
 * syscall() here (libuv's reference binds to the executable's definition)
 * sends SYS_close through close(), which TSan intercepts; every other call
 * goes to libc's syscall() unchanged. */
#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long, ...);

long syscall(long number, ...) {
  va_list ap;
  va_start(ap, number);
  long a[6]; /* syscall() takes at most six arguments; unused ones are ignored */
  for (int i = 0; i < 6; i++)
    a[i] = va_arg(ap, long);
  va_end(ap);
  if (number == SYS_close)
    return close((int)a[0]);
  static syscall_fn real;
  syscall_fn f = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
  if (f == NULL) {
    f = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
    __atomic_store_n(&real, f, __ATOMIC_RELEASE);
  }
  return f(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
