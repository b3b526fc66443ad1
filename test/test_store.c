/* test_store.c — model names, digests and the on-disk store
 * (include/cllama/store.h), on a store built in a temporary directory. */
#include "cllama/store.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---------------------------------------------------------------- names */

struct name_case {
  const char *in, *host, *ns, *model, *tag, *display;
};

Test(names, parse_defaults_and_display) {
  static const struct name_case cases[] = {
      {"llama3.2", "registry.ollama.ai", "library", "llama3.2", "latest", "llama3.2:latest"},
      {"llama3.2:1b", "registry.ollama.ai", "library", "llama3.2", "1b", "llama3.2:1b"},
      {"apple/OpenELM", "registry.ollama.ai", "apple", "OpenELM", "latest", "apple/OpenELM:latest"},
      {"myhost/mynamespace/lips:code", "myhost", "mynamespace", "lips", "code",
       "myhost/mynamespace/lips:code"},
      {"localhost:5000/ns/m:t", "localhost:5000", "ns", "m", "t", "localhost:5000/ns/m:t"},
      {"https://registry.ollama.ai/library/qwen:0.5b", "registry.ollama.ai", "library", "qwen",
       "0.5b", "qwen:0.5b"},
      {"hf.co/bartowski/Qwen2.5-0.5B-GGUF:Q4_K_M", "hf.co", "bartowski", "Qwen2.5-0.5B-GGUF",
       "Q4_K_M", "hf.co/bartowski/Qwen2.5-0.5B-GGUF:Q4_K_M"},
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(cases); i++) {
    cll_name n;
    cr_assert_eq(cll_name_parse(cases[i].in, &n), 0, "%s", cases[i].in);
    cr_expect_str_eq(n.host, cases[i].host);
    cr_expect_str_eq(n.ns, cases[i].ns);
    cr_expect_str_eq(n.model, cases[i].model);
    cr_expect_str_eq(n.tag, cases[i].tag);
    char buf[512];
    cll_name_display(&n, buf, sizeof(buf));
    cr_expect_str_eq(buf, cases[i].display);
  }
}

Test(names, invalid_names_rejected) {
  static const char *const bad[] = {
      "",
      ":",
      "a:",
      "/a",
      "a/",
      "a//b",
      "../x",
      "..",
      "x/../y",
      "a/b/c/d/e",
      "ns.with.dot/m",
      "-lead",
      "m:.tag",
      "m:ta/g",
      "a b",
      "m:tag:x",
      "a\\b",
      "ftp://h/n/m",
      "mod\xc3\xa9l",
      "a/b/c:d:e",
  };
  for (size_t i = 0; i < CLL_ARRAY_LEN(bad); i++) {
    cll_name n;
    cr_expect_neq(cll_name_parse(bad[i], &n), 0, "\"%s\" accepted", bad[i]);
  }
  char longpart[100];
  memset(longpart, 'a', 81);
  longpart[81] = '\0';
  cll_name n;
  cr_expect_neq(cll_name_parse(longpart, &n), 0);
  longpart[80] = '\0';
  cr_expect_eq(cll_name_parse(longpart, &n), 0);
}

Test(names, equal_is_case_insensitive) {
  cll_name a, b;
  cll_name_parse("Llama3:Latest", &a);
  cll_name_parse("registry.ollama.ai/library/llama3", &b);
  cr_expect(cll_name_equal(&a, &b));
  cll_name_parse("llama3:8b", &b);
  cr_expect(!cll_name_equal(&a, &b));
}

Test(names, digests) {
  char hex[65];
  const char *h = "A0B1C2D3E4F5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1";
  char s[80];
  snprintf(s, sizeof(s), "sha256:%s", h);
  cr_expect_eq(cll_digest_parse(s, hex), 0);
  cr_expect_str_eq(hex, "a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1");
  snprintf(s, sizeof(s), "sha256-%s", h);
  cr_expect_eq(cll_digest_parse(s, hex), 0);
  cr_expect_neq(cll_digest_parse("sha256:../../etc/passwd", hex), 0);
  cr_expect_neq(cll_digest_parse("sha512:abcd", hex), 0);
  snprintf(s, sizeof(s), "sha256:%s0", h);
  cr_expect_neq(cll_digest_parse(s, hex), 0);
  cll_sha256_hex("abc", 3, hex);
  cr_expect_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* ---------------------------------------------------------------- store */

static char root[256];
static cll_store *st;

static void setup(void) {
  snprintf(root, sizeof(root), "/tmp/cllama-test-store-XXXXXX");
  cr_assert_not_null(mkdtemp(root));
  cll_err err = {0};
  cr_assert_eq(cll_store_open(root, &st, &err), 0, "%s", err.msg);
}

static void teardown(void) {
  cll_store_close(st);
  char cmd[300];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
  cr_expect_eq(system(cmd), 0);
}

/* Writes blob data and returns its "sha256:<hex>" digest in out. */
static void put_blob(const char *data, char out[80]) {
  char hex[65];
  cll_sha256_hex(data, strlen(data), hex);
  snprintf(out, 80, "sha256:%s", hex);
  cll_err err = {0};
  cr_assert_eq(cll_store_write_blob(st, out, data, strlen(data), &err), 0, "%s", err.msg);
}

/* A model with a config blob and a "weights" layer; returns the manifest. */
static void put_model(const char *name, const char *weights, char *manifest, size_t size) {
  char cfg[80], w[80];
  put_blob("{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":[\"llama\"],"
           "\"model_type\":\"1B\",\"file_type\":\"Q4_0\"}",
           cfg);
  put_blob(weights, w);
  snprintf(manifest, size,
           "{\"schemaVersion\":2,\"mediaType\":\"application/"
           "vnd.docker.distribution.manifest.v2+json\","
           "\"config\":{\"mediaType\":\"application/vnd.docker.container.image.v1+json\","
           "\"digest\":\"%s\",\"size\":100},"
           "\"layers\":[{\"mediaType\":\"application/vnd.ollama.image.model\","
           "\"digest\":\"%s\",\"size\":%zu}]}",
           cfg, w, strlen(weights));
  cll_name n;
  cr_assert_eq(cll_name_parse(name, &n), 0);
  cll_err err = {0};
  cr_assert_eq(cll_store_write_manifest(st, &n, manifest, strlen(manifest), &err), 0, "%s",
               err.msg);
}

TestSuite(store, .init = setup, .fini = teardown);

Test(store, paths) {
  cll_name n;
  cll_name_parse("llama3.2", &n);
  char buf[1024], want[1024];
  cr_assert_eq(cll_store_manifest_path(st, &n, buf, sizeof(buf)), 0);
  snprintf(want, sizeof(want), "%s/manifests/registry.ollama.ai/library/llama3.2/latest", root);
  cr_expect_str_eq(buf, want);
  const char *d = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
  cr_assert_eq(cll_store_blob_path(st, d, buf, sizeof(buf)), 0);
  snprintf(want, sizeof(want), "%s/blobs/sha256-%064d", root, 0);
  cr_expect_str_eq(buf, want);
  cr_expect_eq(cll_store_blob_path(st, "sha256:../x", buf, sizeof(buf)), CLL_EINVAL);
  cr_expect_eq(cll_store_manifest_path(st, &n, buf, 10), CLL_ETOOBIG);
}

Test(store, read_manifest_and_list) {
  char m[2048];
  put_model("tiny:1b", "weights-one", m, sizeof(m));
  cll_name n;
  cll_name_parse("tiny:1b", &n);
  cll_manifest *man;
  cll_err err = {0};
  cr_assert_eq(cll_store_read_manifest(st, &n, &man, &err), 0, "%s", err.msg);
  char hex[65];
  cll_sha256_hex(m, strlen(m), hex);
  cr_expect_str_eq(man->digest, hex);
  cr_expect_eq(man->size, 100 + (int64_t)strlen("weights-one"));
  cr_expect_eq(man->n_layers, 1);
  cr_expect_not_null(cll_manifest_layer(man, CLL_MEDIA_MODEL));
  cr_expect_str_eq(man->cfg.family, "llama");
  cr_expect_str_eq(man->cfg.quantization_level, "Q4_0");
  cr_expect_str_eq(man->cfg.parameter_size, "1B");
  cr_expect_eq(man->cfg.n_families, 1);
  cll_manifest_free(man);

  cll_manifest **list;
  size_t cnt;
  cr_assert_eq(cll_store_list(st, &list, &cnt, &err), 0);
  cr_expect_eq(cnt, 1);
  cll_store_list_free(list, cnt);
}

Test(store, broken_manifest_and_missing_blob_are_skipped) {
  char m[2048];
  put_model("good", "good-weights", m, sizeof(m));
  /* A manifest that is not JSON. */
  cll_name bad;
  cll_name_parse("broken:v1", &bad);
  cr_assert_eq(cll_store_write_manifest(st, &bad, "{not json", 9, NULL), 0);
  /* A manifest whose model blob is missing. */
  put_model("missing:v1", "weights-to-delete", m, sizeof(m));
  char hex[65], path[1024];
  cll_sha256_hex("weights-to-delete", strlen("weights-to-delete"), hex);
  char d[80];
  snprintf(d, sizeof(d), "sha256:%s", hex);
  cll_store_blob_path(st, d, path, sizeof(path));
  cr_assert_eq(unlink(path), 0);
  /* A stray file at the wrong depth and a bad name. */
  char stray[1024];
  snprintf(stray, sizeof(stray), "%s/manifests/registry.ollama.ai/library/bad name", root);
  mkdir(stray, 0755);
  strcat(stray, "/x");
  FILE *f = fopen(stray, "w");
  fputs("{}", f);
  fclose(f);

  cll_manifest **list;
  size_t cnt;
  cll_err err = {0};
  cr_assert_eq(cll_store_list(st, &list, &cnt, &err), 0);
  cr_assert_eq(cnt, 1);
  char name[256];
  cll_name_display(&list[0]->name, name, sizeof(name));
  cr_expect_str_eq(name, "good:latest");
  cll_store_list_free(list, cnt);

  cll_manifest *man;
  cr_expect_eq(cll_store_read_manifest(st, &bad, &man, &err), CLL_EFORMAT);
}

Test(store, resolve_is_case_insensitive) {
  char m[2048];
  put_model("MixedCase:Tag", "w", m, sizeof(m));
  cll_name want, found;
  cll_name_parse("mixedcase:tag", &want);
  cr_assert_eq(cll_store_resolve(st, &want, &found), 0);
  cr_expect_str_eq(found.model, "MixedCase");
  cr_expect_str_eq(found.tag, "Tag");
  cll_name_parse("nothere", &want);
  cr_expect_eq(cll_store_resolve(st, &want, &found), CLL_ENOENT);
}

Test(store, copy_and_delete_collect_unshared_blobs) {
  char m[2048];
  put_model("a", "shared-weights", m, sizeof(m));
  cll_name a, b, c;
  cll_name_parse("a", &a);
  cll_name_parse("ns/b:copy", &b);
  cll_err err = {0};
  cr_assert_eq(cll_store_copy(st, &a, &b, &err), 0, "%s", err.msg);
  cll_manifest *ma, *mb;
  cr_assert_eq(cll_store_read_manifest(st, &a, &ma, NULL), 0);
  cr_assert_eq(cll_store_read_manifest(st, &b, &mb, NULL), 0);
  cr_expect_str_eq(ma->digest, mb->digest);
  char wd[80];
  snprintf(wd, sizeof(wd), "sha256:%s", ma->layers[0].digest);
  cll_manifest_free(ma);
  cll_manifest_free(mb);

  /* Deleting one copy keeps the blobs the other still uses. */
  cr_assert_eq(cll_store_delete(st, &a, &err), 0, "%s", err.msg);
  cr_expect(cll_store_blob_exists(st, wd, -1));
  cr_expect_eq(cll_store_resolve(st, &a, &c), CLL_ENOENT);
  /* Deleting the last one removes them and prunes directories. */
  cr_assert_eq(cll_store_delete(st, &b, &err), 0);
  cr_expect(!cll_store_blob_exists(st, wd, -1));
  char dir[1024];
  struct stat sb;
  snprintf(dir, sizeof(dir), "%s/manifests/registry.ollama.ai/ns", root);
  cr_expect_neq(stat(dir, &sb), 0, "empty directory %s left behind", dir);
  cr_expect_eq(cll_store_delete(st, &b, &err), CLL_ENOENT);
}

Test(store, write_blob_checks_digest_and_commit) {
  char d[80];
  put_blob("hello", d);
  cr_expect(cll_store_blob_exists(st, d, 5));
  cr_expect(!cll_store_blob_exists(st, d, 6));
  cll_err err = {0};
  cr_expect_eq(cll_store_write_blob(st, d, "other", 5, &err), CLL_EDIGEST);
  /* A partial download committed under its final name. */
  char hex[65], p[1024];
  cll_sha256_hex("big data", 8, hex);
  snprintf(d, sizeof(d), "sha256:%s", hex);
  cr_assert_eq(cll_store_blob_partial_path(st, d, p, sizeof(p)), 0);
  FILE *f = fopen(p, "w");
  fputs("big data", f);
  fclose(f);
  cr_expect_eq(cll_store_blob_commit(st, d, 9, &err), CLL_EDIGEST);
  cr_expect_eq(cll_store_blob_commit(st, d, 8, &err), 0);
  cr_expect(cll_store_blob_exists(st, d, 8));
}

Test(store, pinned_blobs_survive_a_delete) {
  /* An in-flight create reusing model a's weights pins them before it
   * checks they exist; a delete of a meanwhile must leave them. */
  char man[2048], wd[80];
  put_model("ns/a:1", "shared weights", man, sizeof(man));
  cll_sha256_hex("shared weights", 14, wd + 7);
  memcpy(wd, "sha256:", 7);
  cll_name a;
  cr_assert_eq(cll_name_parse("ns/a:1", &a), 0);
  cr_assert_eq(cll_store_pin(st, wd + 7), 0);
  cr_assert_eq(cll_store_pin(st, wd + 7), 0); /* counted */
  cll_err err = {0};
  cr_assert_eq(cll_store_delete(st, &a, &err), 0, "%s", err.msg);
  cr_expect(cll_store_blob_exists(st, wd, -1), "a pinned layer was collected");
  cll_store_unpin(st, wd + 7);
  const char *hx[] = {wd + 7};
  cr_expect_eq(cll_store_collect(st, hx, 1), 0);
  cr_expect(cll_store_blob_exists(st, wd, -1));
  cll_store_unpin(st, wd + 7);
  cr_expect_eq(cll_store_collect(st, hx, 1), 1);
  cr_expect(!cll_store_blob_exists(st, wd, -1));
}

Test(store, blob_writer_own_temporary_digest_checked) {
  cll_blob_writer *w = NULL;
  cll_err err = {0};
  cr_assert_eq(cll_blob_writer_open(st, &w, &err), 0, "%s", err.msg);
  cr_assert_eq(cll_blob_writer_write(w, "big ", 4, &err), 0);
  cr_assert_eq(cll_blob_writer_write(w, "data", 4, &err), 0);
  char hex[65], want[65];
  int64_t size = 0;
  cll_sha256_hex("big data", 8, want);
  cr_assert_eq(cll_blob_writer_commit(w, want, hex, &size, false, &err), 0, "%s", err.msg);
  cr_expect_str_eq(hex, want);
  cr_expect_eq(size, 8);
  char d[80];
  snprintf(d, sizeof(d), "sha256:%s", want);
  cr_expect(cll_store_blob_exists(st, d, 8));
  /* A wrong digest: nothing enters the store, no temporary is left. */
  cr_assert_eq(cll_blob_writer_open(st, &w, &err), 0);
  cr_assert_eq(cll_blob_writer_write(w, "other", 5, &err), 0);
  cr_expect_eq(cll_blob_writer_commit(w, want, NULL, NULL, false, &err), CLL_EDIGEST);
  char cmd[600];
  snprintf(cmd, sizeof(cmd), "test $(ls -A '%s/blobs' | wc -l) -eq 1", root);
  cr_expect_eq(system(cmd), 0, "a temporary was left in the store");
  /* A -partial that is a link to someone else's file is never committed. */
  char victim[400], p[1024];
  snprintf(victim, sizeof(victim), "%s/victim", root);
  FILE *f = fopen(victim, "w");
  fputs("precious", f);
  fclose(f);
  cll_sha256_hex("precious", 8, hex);
  snprintf(d, sizeof(d), "sha256:%s", hex);
  cr_assert_eq(cll_store_blob_partial_path(st, d, p, sizeof(p)), 0);
  cr_assert_eq(link(victim, p), 0);
  cr_expect_neq(cll_store_blob_commit(st, d, 8, &err), 0);
  cr_expect(!cll_store_blob_exists(st, d, -1));
  cr_expect(strstr(err.msg, root) == NULL, "%s", err.msg);
}
