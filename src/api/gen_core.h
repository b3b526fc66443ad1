/* gen_core.h — one generation request (generate or chat) from the model
 * lookup to the last byte: acquire the runner, build the prompt tokens on a
 * work item, run the sequence in the scheduler, stream or gather the output,
 * and answer with Ollama's chunks and final object.
 *
 * Threads: loop thread, except the prepare hook (a work item). */
#ifndef CLLAMA_API_GEN_CORE_H
#define CLLAMA_API_GEN_CORE_H

#include "cllama/api.h"
#include "cllama/grammar.h"
#include "cllama/runners.h"
#include "cllama/sampler.h"
#include "cllama/scheduler.h"
#include "cllama/util.h"
#include "gen.h"
#include "outparse.h"
#include "resolve.h"
#include "text.h"
#include "tmpl.h"

enum cll__gen_kind { CLL__GEN_GENERATE = 0, CLL__GEN_CHAT = 1 };

typedef struct cll__gen cll__gen;

/* ------------------------------------------------------------ events
 * Generation output is a stream of typed events; a writer shapes them for
 * one API (Ollama NDJSON here, OpenAI SSE in openai.c, Anthropic SSE in
 * anthropic.c). A handler that translates another API into a native
 * request attaches its writer with cll__gen_sink_attach before forwarding;
 * without one the answer is Ollama's. */
enum cll__ev_kind {
  CLL__EV_TEXT = 0,  /* s[0..n): answer text */
  CLL__EV_THINKING,  /* s[0..n): thoughts */
  CLL__EV_TOOL_CALL, /* call: {"id","function":{"index","name","arguments"}} */
  CLL__EV_DONE,      /* the end; the writer answers (g->text etc. hold it all) */
  CLL__EV_ERROR,     /* s: message, after the stream started; the writer ends it */
};

struct cll__ev {
  int kind;
  const char *s;
  size_t n;
  json_t *call;                      /* TOOL_CALL (borrowed) */
  const char *done_reason;           /* DONE: "stop" / "length" */
  const struct cll_seq_stats *stats; /* DONE */
  const json_t *logprobs;            /* TEXT/THINKING/DONE: entries of the tokens since the last
                                        event ({"token","logprob","bytes","top_logprobs"}), or NULL */
};

struct cll__writer {
  /* One event. DONE and ERROR end the request (the writer answers it and
   * may free its state). A writer that starts a stream sets
   * g->stream_started. */
  void (*event)(cll__gen *g, void *state, const struct cll__ev *ev);
};

/* A translating handler's writer and what it needs around it. */
struct cll__sink {
  const struct cll__writer *w;
  void *state;
  /* Optional: the request stops once its prompt is built (rendered and
   * tokenized exactly as it would run: g->prompt, g->n_prompt,
   * g->prompt_truncated); on_prompt answers g->req (loop thread) and g is
   * freed after it returns. Nothing is generated. (/api/tokenize's count) */
  void (*on_prompt)(cll__gen *g, void *state);
  /* An answer the native handler made before any generation (an error, a
   * load idiom): shape it (req is the client's) without freeing state. */
  void (*native_answer)(cll_request *req, int status, const void *body, size_t len, void *state);
  void (*free_state)(void *state); /* after the request is answered */
  bool answering;                  /* set by the writer before it answers: passed on as is */
};
/* Runs the native generation route `path` on req with body (JSON text,
 * copied): events go to sink's writer, other answers to native_answer, and
 * free_state runs once the request is answered. On failure (returned) the
 * caller still owns req and sink. The sink must live until free_state. */
int cll__gen_forward(cll_request *req, const char *path, const char *body, struct cll__sink *sink);
/* Only attaches sink (the caller forwards with a filter of its own). */
void cll__gen_sink_attach(cll_request *req, struct cll__sink *sink);

/* Builds g->prompt (new, malloc) from the request on a work item. */
typedef int (*cll__gen_prepare_fn)(cll__gen *g, const cll__mtext *t, cll_err *err);

struct cll__gen {
  cll_api *api;
  cll_request *req;
  int kind;
  bool stream;
  char *model_req; /* "model" echoed in every chunk */
  struct cll__model_ref ref;
  struct cll__gen_opts opts;
  int64_t keep_alive_ns;
  bool keep_alive_set;
  bool truncate, shift;
  bool want_context;           /* generate, not raw: the final object carries "context" */
  bool debug_render;           /* _debug_render_only: answer the rendered prompt, run nothing */
  char *rendered;              /* the rendered prompt (debug_render only), new */
  size_t n_images;             /* images of the request (for _debug_info) */
  const struct cll__writer *w; /* where events go (never NULL) */
  void *wstate;
  void (*on_prompt)(cll__gen *g, void *state); /* the sink's, or NULL */
  cll__tmpl *tmpl;             /* the model's (or request's) template, a reference */
  struct cll__outp_cfg outcfg; /* how output splits (tags point into tmpl) */
  json_t *tools;               /* the request's tools (borrowed from body) */
  bool think_set, think;       /* the request's think */
  const char *think_level;
  cll__outp *outp;
  json_t *calls;    /* tool calls found (native shape), in order */
  cll_buf thinking; /* all thoughts */
  bool logprobs;    /* logprobs: each token's log-probability is returned */
  int top_logprobs; /* with this many alternatives (0..20) */
  /* The last sampled token's log-probabilities: written by the sampler
   * callback inside the step, read by on_token right after it. */
  float lp_token;
  struct cll_token_logprob lp_top[CLL_MAX_TOP_LOGPROBS];
  int lp_n_top;
  json_t *lp_pending; /* entries not yet sent with a piece of text */
  json_t *lp_all;     /* every entry (non-stream answers) */
  json_t *body;       /* the request, owned */
  cll__gen_prepare_fn prepare;
  void *pdata; /* prepare's own data, freed with pfree */
  void (*pfree)(void *pdata);
  int32_t *prompt; /* (n_prompt) new, built by prepare */
  int32_t n_prompt;
  bool prompt_truncated; /* prepare dropped history to fit */

  cll_acquire *acq;
  cll_runner *runner;
  cll_seq *seq;
  cll_sampler *sampler;
  cll_grammar *grammar;      /* format's grammar (format.c), NULL: unconstrained */
  cll_grammar_state *gstate; /* its state for the sequence (made by prepare) */
  /* What the grammar was compiled from, to recompile it lazily (starting
   * after the thinking block) once the render shows the prompt opened one:
   * schemas (a JSON array, owned; "json" may stand for one), the literal
   * text around the value, and whether it was compiled lazy. */
  json_t *gram_src;
  const char *gram_prefix, *gram_suffix;
  bool gram_lazy;
  cll_stop *stop;
  cll__detok *detok;
  int32_t *out_tok; /* generated tokens (for "context") */
  int32_t n_out, cap_out;
  cll_buf text; /* non-stream: the whole answer */
  cll_buf line; /* one NDJSON line */
  uint64_t t0, t_loaded;
  int phase;
  bool gone, answered, stream_started, stop_matched;
  uv_work_t work;
  int prep_rc;
  cll_err prep_err;
};

/* Parses the fields generate and chat share (model, options, keep_alive,
 * stream, truncate, shift) and resolves the model. On failure it has
 * answered and freed g, and returns false. */
cll__gen *cll__gen_new(cll_request *req, json_t *body, int kind);
bool cll__gen_common(cll__gen *g, const char *model);
/* Compiles the request's format ("json" or a JSON schema; null/"" is none)
 * into g->grammar with options o (may be NULL). On a bad format it has
 * answered 400 and freed g, and returns false. format.c. */
bool cll__gen_format(cll__gen *g, const json_t *format, const struct cll_grammar_opts *o);
/* Answers with an error now (before anything was streamed) and frees g. */
void cll__gen_fail(cll__gen *g, int status, const char *msg);
/* keep_alive 0 and nothing to do: unload, answer done_reason "unload". */
void cll__gen_unload(cll__gen *g);
/* Acquires the model; with no prepare hook answers done_reason "load",
 * else runs prepare and the sequence. */
void cll__gen_start(cll__gen *g);

/* JSON string escaping into a buffer. */

#endif
