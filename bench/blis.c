/* bench/blis.c — proves which BLIS configuration cllama runs and what it
 * is worth: single-threaded sgemm GFLOP/s at 2048^3 and at M x 5632 x 2048
 * (M = 1, 4, 16, 64, 256: a TinyLlama FFN matrix times M tokens) for BLIS's
 * own choice on this CPU ("generic" on Zen 4/5 with Debian's BLIS 0.9),
 * the zen3 and skx configurations, and the one matmul.c selects.
 *
 * BLIS reads BLIS_ARCH_TYPE once per process, so the program re-runs
 * itself once per configuration. Like matmul.c it includes blis.h; it is a
 * benchmark, not part of the library.
 *
 *   build/release/bench/blis            all configurations
 *   build/release/bench/blis --threads 2
 */
#include "cllama/config.h"
#include "kernels/matmul_internal.h"

#include <blis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: single-threaded timings use it, so time
 * slices lost to other processes on a shared machine do not count. */
static double cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best GFLOP/s of C(m x n) = A(m x k) B(k x n) over ~0.25 s of runs. */
static double sgemm_gflops(int64_t m, int64_t n, int64_t k, int threads) {
  float *a = malloc((size_t)(m * k) * sizeof(float));
  float *b = malloc((size_t)(k * n) * sizeof(float));
  float *c = malloc((size_t)(m * n) * sizeof(float));
  if (!a || !b || !c) {
    free(a), free(b), free(c);
    return 0.0;
  }
  for (int64_t i = 0; i < m * k; i++)
    a[i] = (float)((i * 7) % 13) * 0.01f;
  for (int64_t i = 0; i < k * n; i++)
    b[i] = (float)((i * 5) % 11) * 0.01f;
  rntm_t rntm = BLIS_RNTM_INITIALIZER;
  bli_rntm_set_num_threads(threads, &rntm);
  float one = 1.0f, zero = 0.0f;
  double best = 1e30, spent = 0.0;
  for (int rep = 0; rep < 50 && (rep < 2 || spent < 0.25); rep++) {
    const double t0 = threads == 1 ? cpu_s() : now_s();
    /* B is used transposed from a row-major n x k array, as matmul.c does
     * with its dequantized weight tile. */
    bli_sgemm_ex(BLIS_NO_TRANSPOSE, BLIS_NO_TRANSPOSE, m, n, k, &one, a, k, 1, b, 1, k, &zero, c, n,
                 1, NULL, &rntm);
    const double dt = (threads == 1 ? cpu_s() : now_s()) - t0;
    spent += dt;
    if (dt < best)
      best = dt;
  }
  free(a), free(b), free(c);
  return 2.0 * (double)m * (double)n * (double)k / best * 1e-9;
}

/* The kernels set up as `cllama` sets them up (CLLAMA_KERNELS, CLLAMA_REPACK,
 * BLIS's configuration), before any thread starts. */
static void kernels_init_from_env(void) {
  cll_kernels_config kc;
  cll_err err = {0};
  if (cll_config_kernels_from_env(&kc, &err) != 0 || cll_kernels_init(&kc, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    exit(2);
  }
}

static int run_one(const char *label, int threads) {
  /* "auto": BLIS left to detect the CPU itself; otherwise initialise BLIS
   * the way cllama does (which honours BLIS_ARCH_TYPE when it is set). */
  if (strcmp(label, "auto") != 0)
    kernels_init_from_env();
  const char *arch =
      strcmp(label, "auto") == 0 ? bli_arch_string(bli_arch_query_id()) : cll__matmul_blis_arch();
  const char *env = getenv("BLIS_ARCH_TYPE");
  printf("%-9s BLIS_ARCH_TYPE=%-4s BLIS runs %-8s", label, env ? env : "-", arch);
  fflush(stdout);
  printf(" %7.1f", sgemm_gflops(2048, 2048, 2048, threads));
  static const int64_t ms[] = {1, 4, 16, 64, 256};
  for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
    printf(" %7.1f", sgemm_gflops(ms[i], 5632, 2048, threads));
    fflush(stdout);
  }
  printf("\n");
  return 0;
}

int main(int argc, char **argv) {
  int threads = 1;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = atoi(argv[++i]);
  if (argc >= 3 && strcmp(argv[1], "--child") == 0) {
    if (argc >= 5)
      threads = atoi(argv[4]);
    return run_one(argv[2], threads);
  }
  printf("BLIS %s, sgemm GFLOP/s, %d thread(s); columns: 2048^3, then M x 5632 x 2048 for "
         "M = 1 4 16 64 256\n",
         bli_info_get_version_str(), threads);
  /* label, BLIS_ARCH_TYPE (an arch_t number of BLIS 0.9; NULL: unset).
   * "auto" is BLIS's own detection, "cllama" the choice of matmul.c. */
  static const struct {
    const char *label, *env;
  } runs[] = {{"auto", NULL}, {"generic", "25"}, {"zen3", "6"}, {"skx", "0"}, {"cllama", NULL}};
  char tbuf[16];
  snprintf(tbuf, sizeof tbuf, "%d", threads);
  for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      if (runs[i].env)
        setenv("BLIS_ARCH_TYPE", runs[i].env, 1);
      else
        unsetenv("BLIS_ARCH_TYPE");
      execl("/proc/self/exe", argv[0], "--child", runs[i].label, "--threads", tbuf, (char *)NULL);
      _exit(127);
    }
    int st = 0;
    if (pid > 0)
      waitpid(pid, &st, 0);
  }
  return 0;
}
