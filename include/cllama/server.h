/* server.h — the HTTP/1.1 layer: listening socket, connections, llhttp
 * parsing, routing, CORS and Host checks, full and streamed (chunked)
 * responses with back-pressure. It knows nothing of JSON or models.
 *
 * Threads: everything here runs on the one libuv loop thread that was given
 * to cll_server_new(); no function may be called from another thread.
 * Nothing blocks.
 *
 * Request lifetime (the one rule a handler must follow): the server calls a
 * handler with a borrowed cll_request. The handler answers it exactly once,
 * now or later from the loop thread, with cll_respond() or with
 * cll_stream_start() ... cll_stream_end(). The request stays valid until
 * then, even if the client has gone away meanwhile (the server then drops
 * whatever is written and calls the cancel callback once). After
 * cll_respond()/cll_stream_end() returns the request pointer is dead.
 *
 * Pipelined requests on one connection are answered in order: the next one
 * is not parsed until the current one is answered. */
#ifndef CLLAMA_SERVER_H
#define CLLAMA_SERVER_H

#include "cllama/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct cll_server cll_server;
typedef struct cll_request cll_request;

/* Options for cll_server_new(); start from cll_server_opts_defaults(). */
typedef struct cll_server_opts {
  const char *host;        /* bind address, e.g. "127.0.0.1" or "::" (borrowed until new returns) */
  int port;                /* 0 = any free port; read it back with cll_server_port() */
  size_t max_head_bytes;   /* request line + headers; larger -> 431 (default 64 KiB) */
  size_t max_headers;      /* header count; more -> 431 (default 128) */
  size_t max_body_bytes;   /* request body; larger -> 413 (default 64 MiB) */
  size_t max_queued_bytes; /* output queued on one connection; more -> the client is dropped
                              (default 64 MiB) */
  size_t max_total_queued_bytes; /* output queued on all connections together; above it no
                                  * connection with output waiting starts its next request
                                  * (default 256 MiB) */
  size_t high_water_bytes; /* cll_stream_writable() is false at or above this (default 256 KiB) */
  size_t low_water_bytes;  /* the drain callback runs when queued output falls to this (default 64
                              KiB) */
  uint64_t header_timeout_ms; /* a started request must be complete within this (default 30 s) */
  uint64_t idle_timeout_ms; /* an idle keep-alive connection is closed after this (default 5 min) */
  int backlog;              /* listen() backlog (default 4096) */
  /* CORS: extra allowed origins (OLLAMA_ORIGINS), patterns with at most
   * one '*'; copied by cll_server_new(). The fixed Ollama defaults are
   * always allowed in addition. */
  const char *const *origins;
  size_t n_origins;
  /* Host-header (DNS rebinding) check; Ollama applies it only when bound
   * to a loopback address, and so does cll_server_new() unless this is
   * false. */
  bool host_check;
  /* Each request is logged on stderr ("GET /api/tags 200 0.3ms") when true. */
  bool log_requests;
  /* Access control (off when n_api_keys is 0): every request but "/" and
   * "/api/version" (and CORS preflights) must carry "Authorization: Bearer
   * <key>" with one of these keys (compared in constant time), else 401
   * {"error":"unauthorized"}. Copied by cll_server_new(). */
  const char *const *api_keys;
  size_t n_api_keys;
  /* TLS (off when NULL): PEM certificate chain and private key files; the
   * server then speaks HTTPS only (plain HTTP on the port is refused). */
  const char *tls_cert_file;
  const char *tls_key_file;
} cll_server_opts;

void cll_server_opts_defaults(cll_server_opts *opts);

/* Creates a server on loop, binds and listens. On success *out is new and
 * must be released with cll_server_close(). Fills err on failure (e.g. the
 * address is in use). */
int cll_server_new(uv_loop_t *loop, const cll_server_opts *opts, cll_server **out, cll_err *err);

/* The port actually bound (useful with opts.port = 0). */
int cll_server_port(const cll_server *srv);

/* A pointer the owner can hang on the server (handlers get it back through
 * cll_request_server()). Borrowed; the server never frees it. */
void cll_server_set_data(cll_server *srv, void *data);
void *cll_server_data(const cll_server *srv);

typedef void (*cll_handler_fn)(cll_request *req, void *ud);

/* Called (loop thread) once for every answered request, after its response
 * ended: method, path (not decoded, without the query), status and the
 * time from its first byte. Used by GET /metrics. NULL fn: none. */
typedef void (*cll_request_observer_fn)(void *ud, const char *method, const char *path, int status,
                                        uint64_t duration_ns);
void cll_server_set_observer(cll_server *srv, cll_request_observer_fn fn, void *ud);

/* Registers a route. method is "GET", "POST", "HEAD", "DELETE", ...; HEAD is
 * not implied by GET, register it too where Ollama does (the server then
 * sends the headers and no body). pattern is an absolute path whose
 * segments may be ":name" parameters (e.g. "/api/blobs/:digest"); both
 * strings are copied. A path that matches a pattern under another method
 * gets 405; no pattern at all, 404. Register before clients connect. */
int cll_server_route(cll_server *srv, const char *method, const char *pattern, cll_handler_fn fn,
                     void *ud);

/* Like cll_server_route(), for uploads of any size: the handler runs as
 * soon as the request head is complete, before the body, and takes the body
 * as it arrives with cll_request_read_body() (max_body_bytes does not
 * apply). A handler that answers before the body's end has the connection
 * closed after its answer. */
int cll_server_route_stream(cll_server *srv, const char *method, const char *pattern,
                            cll_handler_fn fn, void *ud);

/* The body of a streamed-body request: fn gets each piece (len > 0) in
 * order, then once (NULL, 0) at its end. Call from the handler. */
typedef void (*cll_body_fn)(cll_request *req, const char *data, size_t len, void *ud);
void cll_request_read_body(cll_request *req, cll_body_fn fn, void *ud);
/* Back-pressure on a streamed body: while paused no piece is delivered and
 * the server stops reading the connection once its input buffer is full. */
void cll_request_pause_body(cll_request *req, bool pause);

/* Stops listening and begins a clean shutdown: idle connections close at
 * once; each request still being answered gets its cancel callback with
 * CLL_CANCEL_SHUTDOWN (its stream stays writable so it can end cleanly);
 * connections close after their last response is flushed. on_closed (may be
 * NULL) runs once everything is closed and srv has been freed. Connections
 * whose peers do not read are dropped after a short grace period. */
void cll_server_close(cll_server *srv, void (*on_closed)(void *ud), void *ud);

/* ---------------------------------------------------------------- request */

/* All strings are borrowed, NUL-terminated and live as long as req. */
const char *cll_request_method(const cll_request *req); /* "GET", ... */
const char *cll_request_path(const cll_request *req);   /* without the query, not decoded */
const char *cll_request_query(const cll_request *req);  /* after '?', or "" */
/* The value of a ":name" pattern segment, or NULL. */
const char *cll_request_param(const cll_request *req, const char *name);
/* The first header with this name (case-insensitive), or NULL. */
const char *cll_request_header(const cll_request *req, const char *name);
/* The body (de-chunked), NUL-terminated for convenience; *len may be NULL. */
const char *cll_request_body(const cll_request *req, size_t *len);
/* The server's data pointer (see cll_server_set_data). */
void *cll_request_server_data(const cll_request *req);
/* Handler-owned per-request pointer, never touched by the server. */
void cll_request_set_data(cll_request *req, void *data);
void *cll_request_data(const cll_request *req);
/* True when the client connected from a loopback address (127/8, ::1). */
bool cll_request_peer_loopback(const cll_request *req);
/* True once the client has gone away (writes are then dropped). */
bool cll_request_gone(const cll_request *req);

/* --------------------------------------------------------------- response */

/* Adds a response header (copied) before cll_respond/cll_stream_start.
 * Content-Length, Transfer-Encoding, Connection and Date are the server's. */
int cll_response_header(cll_request *req, const char *name, const char *value);

/* Answers with a complete body (copied; may be NULL when len is 0) and ends
 * the request. content_type NULL means no Content-Type header. */
int cll_respond(cll_request *req, int status, const char *content_type, const void *body,
                size_t len);

/* Starts a streamed response: status line and headers now, body chunks
 * later (chunked on HTTP/1.1; raw then close on HTTP/1.0). */
int cll_stream_start(cll_request *req, int status, const char *content_type);

/* Queues one chunk (copied). Returns 0, or CLL_ECANCELED when the client is
 * gone (nothing is written; the handler should stop and end the stream).
 * Never blocks: a slow reader only grows this connection's queue; past
 * max_queued_bytes the client is dropped. */
int cll_stream_write(cll_request *req, const void *data, size_t len);

/* Ends the stream (the terminating chunk) and the request. */
int cll_stream_end(cll_request *req);

/* Bytes queued for this connection and not yet written to the socket. */
size_t cll_stream_queued_bytes(const cll_request *req);
/* False when queued output is at or above high_water_bytes: the producer
 * should pause until the drain callback. */
bool cll_stream_writable(const cll_request *req);

/* Called (on the loop thread) each time queued output falls to
 * low_water_bytes after cll_stream_writable() had become false. */
typedef void (*cll_drain_fn)(cll_request *req, void *ud);
void cll_request_on_drain(cll_request *req, cll_drain_fn fn, void *ud);

enum cll_cancel_reason {
  CLL_CANCEL_CLIENT_GONE = 1, /* the peer closed or reset, or its queue overflowed */
  CLL_CANCEL_SHUTDOWN = 2,    /* the server is stopping; end the response soon */
};
/* Called at most once per reason, before the handler has answered, from
 * the loop itself (never inside a cll_* call the handler is making); the
 * handler must still answer (cll_respond or cll_stream_end) afterwards.
 * cll_request_gone() turns true as soon as the disconnect is seen, before
 * this callback runs. */
typedef void (*cll_cancel_fn)(cll_request *req, int reason, void *ud);
void cll_request_on_cancel(cll_request *req, cll_cancel_fn fn, void *ud);

/* ------------------------------------------------------------- forwarding */

/* A handler can hand its request to another route's handler with a new
 * body and see that handler's answer before the client does, the way
 * Ollama's middleware turns an OpenAI request into a native one and the
 * native answer back into OpenAI's shape. The filter gets what the inner
 * handler passes to cll_respond() / cll_stream_start() / cll_stream_write()
 * / cll_stream_end(); while a filter callback runs, those same functions act
 * on the client's real response, so the filter answers with them. respond
 * and stream_end must answer req (it is dead when they return); the other
 * two must not end it. stream_start and stream_write return what the inner
 * handler's call returns (CLL_ECANCELED tells it the client is gone; the
 * server already returns that without calling the filter once the client
 * has gone). Everything else (headers, cancel and drain callbacks,
 * cll_stream_writable) is the real request's. */
typedef struct cll_filter {
  void (*respond)(cll_request *req, int status, const char *content_type, const void *body,
                  size_t len, void *ud);
  int (*stream_start)(cll_request *req, int status, const char *content_type, void *ud);
  int (*stream_write)(cll_request *req, const void *data, size_t len, void *ud);
  void (*stream_end)(cll_request *req, void *ud);
} cll_filter;

/* Runs the handler registered for (method, path) on req as if the client
 * had sent body (copied; cll_request_body() returns it from now on) to that
 * path, with the answer going through filter (borrowed, with ud, until req
 * is answered). Call it from a handler that has not answered req, at most
 * once per request. Returns 0 once the inner handler has been called (req
 * then belongs to it and the filter), or CLL_ENOENT when no route matches,
 * CLL_ENOMEM, CLL_EINVAL: req is then still the caller's to answer. */
int cll_request_forward(cll_request *req, const char *method, const char *path, const void *body,
                        size_t len, const cll_filter *filter, void *ud);

/* Standard reason phrase for a status code ("OK", "Not Found", ...). */
const char *cll_http_reason(int status);

#endif
