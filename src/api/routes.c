/* routes.c — the one place that registers every endpoint family. Adding a
 * family is one line here plus its cll_api_<family>_register() in api.h. */
#include "cllama/api.h"

int cll_api_register_all(cll_api *api) {
  cll_server_set_data(api->server, api);
  int rc = 0;
  if (rc == 0)
    rc = cll_api_models_register(api);
  if (rc == 0)
    rc = cll_api_pull_register(api);
  if (rc == 0)
    rc = cll_api_generate_register(api);
  if (rc == 0)
    rc = cll_api_ps_register(api);
  if (rc == 0)
    rc = cll_api_embed_register(api);
  if (rc == 0)
    rc = cll_api_rerank_register(api);
  if (rc == 0)
    rc = cll_api_show_register(api);
  if (rc == 0)
    rc = cll_api_create_register(api);
  if (rc == 0)
    rc = cll_api_openai_register(api);
  if (rc == 0)
    rc = cll_api_anthropic_register(api);
  if (rc == 0)
    rc = cll_api_metrics_register(api);
  if (rc == 0)
    rc = cll_api_tokenize_register(api);
  if (rc == 0)
    rc = cll_api_push_register(api);
  return rc;
}

int cll_api_routes(cll_api *api, const struct cll_api_route *table, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const struct cll_api_route *r = &table[i];
    int rc = r->stream ? cll_server_route_stream(api->server, r->method, r->path, r->fn, api)
                       : cll_server_route(api->server, r->method, r->path, r->fn, api);
    if (rc != 0)
      return rc;
  }
  return 0;
}

void cll_api_close_all(cll_api *api) {
  cll_api_pull_close(api);
}
