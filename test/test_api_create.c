/* test_api_create.c — /api/create from a path on the server's disk, and the
 * store's integrity under hostile or unlucky use (issue 13): only regular
 * GGUF files enter the store, nothing enters it on failure, a FIFO or a
 * device never blocks, the user's file is copied (never linked), concurrent
 * creates and quantizes do not corrupt each other, CLLAMA_CREATE_PATHS
 * restricts where paths may come from, errors name no server path, and a
 * crashed run's temporaries are removed at start-up. A `cllama serve`
 * child on 127.0.0.1 (test/api_harness.h). */
#include "api_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>

static void setup(void) {
  if (!have_shared())
    return;
  make_store();
  start_server(NULL);
}
static void teardown(void) {
  stop_server();
}

TestSuite(api_create, .init = setup, .fini = teardown, .timeout = 120);

/* Entries of blobs/ (temporaries included). */
static int count_blobs(void) {
  char p[400];
  snprintf(p, sizeof(p), "%s/blobs", H.models);
  DIR *d = opendir(p);
  cr_assert(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
      n++;
  closedir(d);
  return n;
}

static void copy_shared(const char *file, const char *dst) {
  char cmd[3000];
  snprintf(cmd, sizeof(cmd), "cp '%s/models/%s' '%s'", shared_dir(), file, dst);
  cr_assert_eq(system(cmd), 0);
}

static struct resp create_from(const char *model, const char *path, const char *extra) {
  char body[2048];
  snprintf(body, sizeof(body), "{\"model\":\"%s\",\"from\":\"%s\",\"stream\":false%s}", model, path,
           extra ? extra : "");
  return http("POST", "/api/create", body);
}

Test(api_create, non_gguf_file_is_refused_and_nothing_is_stored) {
  NEED_SHARED();
  char path[600];
  snprintf(path, sizeof(path), "%s/secret.txt", H.dir);
  write_file(path, "root:x:0:0:secret\n", 18);
  int before = count_blobs();
  struct resp r = create_from("leak", path, NULL);
  cr_expect_eq(r.status, 400, "%s", r.body);
  cr_expect(strstr(r.body, "GGUF") != NULL, "%s", r.body);
  cr_expect(strstr(r.body, H.dir) == NULL, "error names a server path: %s", r.body);
  free(r.body);
  /* The file's digest must not be a blob (it used to be, readable by a
   * manifest naming it as a license layer). */
  char hex[65], blob[800];
  sha256_file(path, hex);
  snprintf(blob, sizeof(blob), "%s/blobs/sha256-%s", H.models, hex);
  cr_expect_neq(access(blob, F_OK), 0, "a non-GGUF file entered the store");
  cr_expect_eq(count_blobs(), before);
  /* A file that starts like a GGUF but is not one: refused as well. */
  char fake[64] = "GGUF\x03\0\0\0garbage garbage garbage garbage garbage";
  write_file(path, fake, sizeof(fake));
  r = create_from("leak", path, NULL);
  cr_expect_eq(r.status, 400, "%s", r.body);
  free(r.body);
  cr_expect_eq(count_blobs(), before);
}

Test(api_create, fifo_and_devices_never_block) {
  NEED_SHARED();
  char fifo[600];
  snprintf(fifo, sizeof(fifo), "%s/fifo", H.dir);
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  int before = count_blobs();
  const char *paths[] = {fifo, "/dev/zero", "/dev/null", "/proc/self/status", H.dir};
  for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    struct resp r = create_from("dev", paths[i], NULL);
    cr_expect_eq(r.status, 400, "%s: %ld %s", paths[i], r.status, r.body);
    free(r.body);
  }
  cr_expect_eq(count_blobs(), before);
  /* Every worker is free: tags answers. */
  struct resp r = http("GET", "/api/tags", NULL);
  cr_expect_eq(r.status, 200);
  free(r.body);
}

Test(api_create, users_file_is_copied_not_linked) {
  NEED_SHARED();
  char path[600];
  snprintf(path, sizeof(path), "%s/user.gguf", H.dir);
  copy_shared("stories260K-f32.gguf", path);
  char hex[65];
  sha256_file(path, hex);
  struct resp r = create_from("mine", path, NULL);
  cr_assert_eq(r.status, 200, "%s", r.body);
  free(r.body);
  struct stat us, bs;
  char blob[800];
  snprintf(blob, sizeof(blob), "%s/blobs/sha256-%s", H.models, hex);
  cr_assert_eq(stat(path, &us), 0);
  cr_assert_eq(stat(blob, &bs), 0);
  cr_expect_eq(us.st_nlink, 1, "the user's file was hard-linked into the store");
  cr_expect_neq(us.st_ino, bs.st_ino);
  /* Editing the original in place leaves the blob as it was. */
  int fd = open(path, O_WRONLY);
  cr_assert_geq(fd, 0);
  cr_assert_eq(pwrite(fd, "XXXX", 4, 4096), 4);
  close(fd);
  char again[65];
  sha256_file(blob, again);
  cr_expect_str_eq(again, hex);
}

struct cre {
  const char *model, *path, *extra;
  long status;
  char body[512];
};
static void *create_thread(void *arg) {
  struct cre *c = arg;
  struct resp r = create_from(c->model, c->path, c->extra);
  c->status = r.status;
  snprintf(c->body, sizeof(c->body), "%s", r.body);
  free(r.body);
  return NULL;
}

Test(api_create, concurrent_creates_from_one_path_keep_the_users_file) {
  NEED_SHARED();
  char path[600];
  snprintf(path, sizeof(path), "%s/user.gguf", H.dir);
  copy_shared("stories260K-f32.gguf", path);
  char hex[65];
  sha256_file(path, hex);
  struct cre c[4];
  memset(c, 0, sizeof(c));
  const char *names[4] = {"a", "b", "c", "d"};
  for (int i = 0; i < 4; i++)
    c[i].model = names[i], c[i].path = path;
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, create_thread, &c[i]);
  for (int i = 0; i < 4; i++) {
    pthread_join(t[i], NULL);
    cr_expect_eq(c[i].status, 200, "%s", c[i].body);
  }
  char now[65];
  sha256_file(path, now);
  cr_expect_str_eq(now, hex, "the user's model file was changed");
  struct stat sb;
  cr_assert_eq(stat(path, &sb), 0);
  cr_expect_eq(sb.st_nlink, 1);
  /* No partial or temporary file is left in the store. */
  char cmd[800];
  snprintf(cmd, sizeof(cmd), "ls -a '%s/blobs' | grep -E 'partial|tmp' >/dev/null", H.models);
  cr_expect_neq(system(cmd), 0, "a stray partial or temporary file is left");
}

Test(api_create, concurrent_quantizes_do_not_share_a_temporary) {
  NEED_SHARED();
  char path[600];
  snprintf(path, sizeof(path), "%s/user.gguf", H.dir);
  copy_shared("stories260K-f32.gguf", path);
  struct cre c[3];
  memset(c, 0, sizeof(c));
  const char *names[3] = {"q1", "q2", "q3"};
  const char *quant[3] = {",\"quantize\":\"q8_0\"", ",\"quantize\":\"q8_0\"",
                          ",\"quantize\":\"q4_0\""};
  for (int i = 0; i < 3; i++)
    c[i].model = names[i], c[i].path = path, c[i].extra = quant[i];
  pthread_t t[3];
  for (int i = 0; i < 3; i++)
    pthread_create(&t[i], NULL, create_thread, &c[i]);
  for (int i = 0; i < 3; i++) {
    pthread_join(t[i], NULL);
    cr_expect_eq(c[i].status, 200, "%s", c[i].body);
  }
  /* Each model generates (its weights blob is whole and matches its digest). */
  const char *models[] = {"q1", "q2", "q3"};
  for (int i = 0; i < 3; i++) {
    char body[256];
    snprintf(body, sizeof(body),
             "{\"model\":\"%s\",\"prompt\":\"Once\",\"stream\":false,"
             "\"options\":{\"num_predict\":4,\"temperature\":0}}",
             models[i]);
    struct resp r = http("POST", "/api/generate", body);
    cr_expect_eq(r.status, 200, "%s: %s", models[i], r.body);
    free(r.body);
  }
  char cmd[800];
  snprintf(cmd, sizeof(cmd),
           "cd '%s/blobs' && for f in sha256-*; do "
           "[ \"sha256-$(sha256sum \"$f\" | cut -c1-64)\" = \"$f\" ] || exit 1; done",
           H.models);
  cr_expect_eq(system(cmd), 0, "a blob does not match its digest");
}

Test(api_create, errors_name_no_server_path) {
  NEED_SHARED();
  char path[600];
  snprintf(path, sizeof(path), "%s/does/not/exist.gguf", H.dir);
  struct resp r = create_from("x", path, NULL);
  cr_expect_eq(r.status, 400);
  cr_expect(strstr(r.body, H.dir) == NULL, "%s", r.body);
  free(r.body);
  snprintf(path, sizeof(path), "%s", H.dir);
  r = create_from("x", path, NULL);
  cr_expect_eq(r.status, 400);
  cr_expect(strstr(r.body, H.dir) == NULL, "%s", r.body);
  free(r.body);
}

/* ---------------------------------------------------- CLLAMA_CREATE_PATHS */

static void setup_paths(void) {
  if (!have_shared())
    return;
  make_store();
  char env[600];
  snprintf(env, sizeof(env), "CLLAMA_CREATE_PATHS=/nonexistent:%s/allowed", H.dir);
  char mk[700];
  snprintf(mk, sizeof(mk), "mkdir -p '%s/allowed'", H.dir);
  cr_assert_eq(system(mk), 0);
  const char *extra[] = {env, NULL};
  start_server(extra);
}

TestSuite(api_create_paths, .init = setup_paths, .fini = teardown, .timeout = 120);

Test(api_create_paths, only_under_the_allowed_roots) {
  NEED_SHARED();
  char in[600], out[600], sneaky[600];
  snprintf(in, sizeof(in), "%s/allowed/m.gguf", H.dir);
  snprintf(out, sizeof(out), "%s/m.gguf", H.dir);
  snprintf(sneaky, sizeof(sneaky), "%s/allowed/../m.gguf", H.dir);
  copy_shared("stories260K-f32.gguf", in);
  copy_shared("stories260K-f32.gguf", out);
  struct resp r = create_from("ok", in, NULL);
  cr_expect_eq(r.status, 200, "%s", r.body);
  free(r.body);
  r = create_from("no", out, NULL);
  cr_expect_eq(r.status, 403, "%s", r.body);
  free(r.body);
  r = create_from("no", sneaky, NULL);
  cr_expect_eq(r.status, 403, "%s", r.body);
  free(r.body);
  /* A link inside the root to a file outside it does not get through. */
  char link[600];
  snprintf(link, sizeof(link), "%s/allowed/link.gguf", H.dir);
  cr_assert_eq(symlink(out, link), 0);
  r = create_from("no", link, NULL);
  cr_expect_eq(r.status, 403, "%s", r.body);
  free(r.body);
}

/* ------------------------------------------------------ start-up clean-up */

static void setup_stale(void) {
  if (!have_shared())
    return;
  make_store();
  char p[800], victim[800];
  /* What a crashed run leaves: temporaries, a quantize directory, and a
   * "-partial" that is a hard link to a user's file. */
  snprintf(p, sizeof(p), "%s/blobs/.tmp-blob-abc123", H.models);
  write_file(p, "x", 1);
  snprintf(p, sizeof(p), "%s/blobs/sha256-%064d.tmp-Xy12Zq", H.models, 0);
  write_file(p, "x", 1);
  snprintf(p, sizeof(p), "%s/blobs/.tmp-blob-quantize-QQQQQQ", H.models);
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/blobs/.tmp-blob-quantize-QQQQQQ/out.gguf", H.models);
  write_file(p, "x", 1);
  snprintf(victim, sizeof(victim), "%s/victim.bin", H.dir);
  write_file(victim, "precious", 8);
  snprintf(p, sizeof(p), "%s/blobs/sha256-%064d-partial", H.models, 1);
  cr_assert_eq(link(victim, p), 0);
  /* A plain partial download is kept for a resumed pull. */
  snprintf(p, sizeof(p), "%s/blobs/sha256-%064d-partial", H.models, 2);
  write_file(p, "resume me", 9);
  start_server(NULL);
}

TestSuite(api_create_stale, .init = setup_stale, .fini = teardown, .timeout = 60);

Test(api_create_stale, crashed_runs_temporaries_are_removed_at_start) {
  NEED_SHARED();
  char p[800];
  snprintf(p, sizeof(p), "%s/blobs/sha256-%064d-partial", H.models, 2);
  cr_expect_eq(access(p, F_OK), 0, "a resumable partial download was removed");
  cr_expect_eq(count_blobs(), 1, "stale temporaries or linked partials left");
  char victim[800];
  snprintf(victim, sizeof(victim), "%s/victim.bin", H.dir);
  struct stat sb;
  cr_assert_eq(stat(victim, &sb), 0);
  cr_expect_eq(sb.st_size, 8);
  cr_expect_eq(sb.st_nlink, 1);
}

/* ------------------------------------------------------------ blob upload */

static long upload_file(const char *file, const char *hex, char *reply, size_t cap) {
  char cmd[2000];
  snprintf(cmd, sizeof(cmd),
           "curl -s -o '%s/up.out' -w '%%{http_code}' --data-binary @'%s' "
           "'%s/api/blobs/sha256:%s'",
           H.dir, file, H.base, hex);
  FILE *p = popen(cmd, "r");
  cr_assert(p);
  long st = 0;
  if (fscanf(p, "%ld", &st) != 1)
    st = 0;
  pclose(p);
  char out[700];
  snprintf(out, sizeof(out), "%s/up.out", H.dir);
  FILE *f = fopen(out, "r");
  reply[0] = 0;
  if (f) {
    size_t k = fread(reply, 1, cap - 1, f);
    reply[k] = 0;
    fclose(f);
  }
  return st;
}

Test(api_create, blob_upload_streams_past_the_body_cap) {
  NEED_SHARED();
  /* 70 MiB (the request cap is 64 MiB): `ollama create` uploads whole
   * GGUFs as blobs. */
  char big[600], hex[65], reply[1024];
  snprintf(big, sizeof(big), "%s/big.bin", H.dir);
  char cmd[1200];
  snprintf(cmd, sizeof(cmd), "head -c 73400320 /dev/urandom > '%s'", big);
  cr_assert_eq(system(cmd), 0);
  sha256_file(big, hex);
  long st = upload_file(big, hex, reply, sizeof(reply));
  cr_expect_eq(st, 201, "%ld %s", st, reply);
  char blob[800], got[65];
  snprintf(blob, sizeof(blob), "%s/blobs/sha256-%s", H.models, hex);
  cr_assert_eq(access(blob, R_OK), 0);
  sha256_file(blob, got);
  cr_expect_str_eq(got, hex);
  /* A wrong digest: 400, nothing stored, no temporary left. */
  int before = count_blobs();
  char wrong[65];
  memset(wrong, 'a', 64);
  wrong[64] = 0;
  st = upload_file(big, wrong, reply, sizeof(reply));
  cr_expect_eq(st, 400, "%ld %s", st, reply);
  cr_expect(strstr(reply, "digest mismatch") != NULL, "%s", reply);
  cr_expect_eq(count_blobs(), before);
  /* The flow of `ollama create`: upload the GGUF, create from files. */
  char gg[600];
  snprintf(gg, sizeof(gg), "%s/m.gguf", H.dir);
  copy_shared("stories260K-f32.gguf", gg);
  sha256_file(gg, hex);
  st = upload_file(gg, hex, reply, sizeof(reply));
  cr_expect_eq(st, 201, "%ld %s", st, reply);
  char body[400];
  snprintf(body, sizeof(body),
           "{\"model\":\"uploaded\",\"files\":{\"m.gguf\":\"sha256:%s\"},\"stream\":false}", hex);
  json_t *v = post_json("/api/create", body, 200);
  json_decref(v);
}
