/* version.h — the version string reported by `cllama --version` and
 * GET /api/version. */
#ifndef CLLAMA_VERSION_H
#define CLLAMA_VERSION_H
#define CLLAMA_VERSION "0.1.0"
#endif
