/* threads.h — internal: the engine's persistent team of compute threads.
 *
 * A team is n threads: the caller of cll__team_run plus n-1 workers created
 * once. cll__team_run(fn) runs fn(arg, ith, n) on all of them and returns
 * when every one has finished; inside fn, cll__team_barrier(t) waits until
 * all n threads reach it (a spin barrier: no mutex or condition variable per
 * operation; forward.c prefers its own completion counters, which do not
 * wait for a descheduled thread). Workers sleep on a condition variable only between runs. A team
 * is driven by one thread at a time (the one that owns the cll_ctx). A run
 * may use fewer threads than the team has: for small work the barriers
 * cost more than the split saves. */
#ifndef CLLAMA_ENGINE_THREADS_H
#define CLLAMA_ENGINE_THREADS_H

typedef struct cll__team cll__team;
typedef void (*cll__team_fn)(void *arg, int ith, int nth);

/* n_threads <= 0: one per physical core. *out is new. */
int cll__team_new(int n_threads, cll__team **out);
void cll__team_free(cll__team *t);
int cll__team_size(const cll__team *t);
/* Runs fn on threads 0..n_active-1 (n_active <= 0 or > size: all), which
 * see nth = n_active; the other workers stay idle for this run. */
void cll__team_run(cll__team *t, int n_active, cll__team_fn fn, void *arg);
void cll__team_barrier(cll__team *t);
/* One step of a wait loop: pause first, then give the CPU away (spins
 * counts the steps; start it at 0). */
void cll__spin_wait(int *spins);
/* Physical cores the process may run on (>= 1). */
int cll__cpu_count(void);
/* CPUs (SMT siblings counted) the process may run on (>= 1). */
int cll__cpu_logical(void);

#endif
