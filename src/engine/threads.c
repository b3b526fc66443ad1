/* threads.c — the persistent compute team (see threads.h).
 *
 * DESIGN. Threads: the driver (whoever calls cll__team_run, thread 0) and
 * n-1 workers (1..n-1) that live as long as the team. Start of a run: the
 * driver publishes fn/arg, bumps `run_gen` and broadcasts the condition
 * variable; workers that are still spinning from the previous run see the
 * new generation without sleeping. End of a run: each worker increments
 * `n_done`; the driver spins (then yields) until it reaches n-1. Inside a
 * run, threads meet at cll__team_barrier, a counter plus generation number
 * updated with atomics: the last thread to arrive resets the counter and
 * bumps the generation that the others spin on. Spinning yields the CPU
 * after a short while, because the machine may have fewer free cores than
 * threads. Nothing here is global: every piece of state lives in the team. */
#include "engine/threads.h"

#include "cllama/common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define SPIN_BEFORE_YIELD 2000
#define SPIN_BEFORE_SLEEP 20000

struct worker {
  struct cll__team *team;
  int ith;
  pthread_t tid;
};

struct cll__team {
  int n;
  struct worker *workers; /* (n-1) */
  int n_started;

  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_uint run_gen; /* bumped by the driver to start a run */
  atomic_int n_done;   /* workers finished with the current run */
  atomic_bool stop;
  cll__team_fn fn; /* written before run_gen is bumped (release) */
  void *arg;
  int active; /* threads 0..active-1 run fn this time; the rest skip */

  _Alignas(64) atomic_int bar_count;
  _Alignas(64) atomic_uint bar_gen;
};

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* One step of a wait loop: pause first, then give the CPU away. */
static inline void spin_wait(int *spins) {
  if (++*spins < SPIN_BEFORE_YIELD)
    cpu_relax();
  else
    sched_yield();
}

static int read_int_file(const char *path) {
  FILE *f = fopen(path, "r");
  int v = -1;
  if (f != NULL) {
    if (fscanf(f, "%d", &v) != 1)
      v = -1;
    fclose(f);
  }
  return v;
}

void cll__spin_wait(int *spins) {
  spin_wait(spins);
}

int cll__cpu_logical(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
    return CPU_COUNT(&set);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

/* Physical cores among the CPUs this process may use: SMT siblings share
 * the core's execution units and memory path, so one compute thread per
 * core is the default. Falls back to the logical count. */
int cll__cpu_count(void) {
  cpu_set_t set;
  int logical = 0;
  if (sched_getaffinity(0, sizeof(set), &set) == 0)
    logical = CPU_COUNT(&set);
  if (logical <= 0)
    return cll__cpu_logical();
  int64_t seen[CPU_SETSIZE];
  int n_cores = 0;
  for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
    if (!CPU_ISSET(cpu, &set))
      continue;
    char path[128];
    snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
    int core = read_int_file(path);
    snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
    int pkg = read_int_file(path);
    if (core < 0 || pkg < 0)
      return logical;
    int64_t key = (int64_t)pkg << 32 | (uint32_t)core;
    bool dup = false;
    for (int i = 0; i < n_cores && !dup; i++)
      dup = seen[i] == key;
    if (!dup)
      seen[n_cores++] = key;
  }
  return n_cores > 0 ? n_cores : logical;
}

static void *worker_main(void *p) {
  struct worker *w = p;
  struct cll__team *t = w->team;
  unsigned seen = 0;
  for (;;) {
    int spins = 0;
    unsigned g;
    while ((g = atomic_load_explicit(&t->run_gen, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&t->stop, memory_order_acquire) && spins < SPIN_BEFORE_SLEEP)
      spin_wait(&spins);
    if (g == seen && !atomic_load(&t->stop)) {
      pthread_mutex_lock(&t->mu);
      while ((g = atomic_load(&t->run_gen)) == seen && !atomic_load(&t->stop))
        pthread_cond_wait(&t->cv, &t->mu);
      pthread_mutex_unlock(&t->mu);
    }
    if (atomic_load(&t->stop))
      return NULL;
    seen = g;
    if (w->ith < t->active)
      t->fn(t->arg, w->ith, t->active);
    atomic_fetch_add_explicit(&t->n_done, 1, memory_order_release);
  }
}

int cll__team_new(int n_threads, cll__team **out) {
  *out = NULL;
  if (n_threads <= 0)
    n_threads = cll__cpu_count();
  if (n_threads > 256)
    n_threads = 256;
  struct cll__team *t = calloc(1, sizeof(*t));
  if (t == NULL)
    return CLL_ENOMEM;
  t->n = n_threads;
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cv, NULL);
  t->workers = calloc((size_t)n_threads, sizeof(*t->workers));
  if (t->workers == NULL) {
    cll__team_free(t);
    return CLL_ENOMEM;
  }
  for (int i = 1; i < n_threads; i++) {
    struct worker *w = &t->workers[i - 1];
    w->team = t;
    w->ith = i;
    if (pthread_create(&w->tid, NULL, worker_main, w) != 0) {
      cll__team_free(t);
      return CLL_ENOMEM;
    }
    t->n_started++;
  }
  *out = t;
  return 0;
}

void cll__team_free(cll__team *t) {
  if (t == NULL)
    return;
  pthread_mutex_lock(&t->mu);
  atomic_store(&t->stop, true);
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  for (int i = 0; i < t->n_started; i++)
    pthread_join(t->workers[i].tid, NULL);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t->workers);
  free(t);
}

int cll__team_size(const cll__team *t) {
  return t->n;
}

void cll__team_run(cll__team *t, int n_active, cll__team_fn fn, void *arg) {
  if (n_active < 1 || n_active > t->n)
    n_active = t->n;
  if (n_active == 1) {
    t->active = 1;
    fn(arg, 0, 1);
    return;
  }
  t->fn = fn;
  t->arg = arg;
  t->active = n_active;
  atomic_store_explicit(&t->n_done, 0, memory_order_relaxed);
  pthread_mutex_lock(&t->mu);
  atomic_fetch_add_explicit(&t->run_gen, 1, memory_order_release);
  pthread_cond_broadcast(&t->cv);
  pthread_mutex_unlock(&t->mu);
  fn(arg, 0, n_active);
  int spins = 0;
  while (atomic_load_explicit(&t->n_done, memory_order_acquire) != t->n - 1)
    spin_wait(&spins);
}

void cll__team_barrier(cll__team *t) {
  if (t->active == 1)
    return;
  unsigned g = atomic_load_explicit(&t->bar_gen, memory_order_acquire);
  if (atomic_fetch_add_explicit(&t->bar_count, 1, memory_order_acq_rel) == t->active - 1) {
    atomic_store_explicit(&t->bar_count, 0, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->bar_gen, 1, memory_order_release);
    return;
  }
  int spins = 0;
  while (atomic_load_explicit(&t->bar_gen, memory_order_acquire) == g)
    spin_wait(&spins);
}
