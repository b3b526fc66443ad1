/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any input must either
 * open (then every getter and the JSON dump must be safe) or fail cleanly. */
#include "cllama/gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* An exact-size copy so ASan catches any read past the end. */
  uint8_t *buf = malloc(size ? size : 1);
  if (buf == NULL)
    return 0;
  memcpy(buf, data, size);
  cll_gguf *g = NULL;
  cll_err err;
  if (cll_gguf_open_memory(buf, size, &g, &err) == 0) {
    char json[256];
    for (int64_t i = 0; i < cll_gguf_n_kv(g); i++) {
      cll_gguf_kv_to_json(g, i, json, sizeof(json), 4);
      cll_gguf_str k = cll_gguf_key_name(g, i);
      char key[128];
      size_t n = k.len < sizeof(key) - 1 ? (size_t)k.len : sizeof(key) - 1;
      memcpy(key, k.ptr, n);
      key[n] = '\0';
      uint64_t u, cnt;
      int64_t s;
      float f;
      bool b;
      cll_gguf_str str;
      enum cll_gguf_vtype et;
      cll_gguf_get_u64(g, key, &u);
      cll_gguf_get_i64(g, key, &s);
      cll_gguf_get_f32(g, key, &f);
      cll_gguf_get_bool(g, key, &b);
      cll_gguf_get_str(g, key, &str);
      if (cll_gguf_get_arr(g, key, &et, &cnt) == 0 && cnt > 0)
        cll_gguf_get_arr_str(g, key, cnt - 1, &str);
    }
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < cll_gguf_n_tensors(g); i++) {
      const cll_gguf_tensor *t = cll_gguf_tensor_at(g, i);
      if (t->n_bytes > 0)
        sink ^= ((const uint8_t *)t->data)[t->n_bytes - 1];
    }
    (void)sink;
    cll_gguf_close(g);
  }
  free(buf);
  return 0;
}
