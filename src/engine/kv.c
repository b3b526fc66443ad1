/* kv.c — the KV cache: one pool of cells shared by all sequences of a context.
 *
 * Design: a cell holds one position's keys and values for every layer. Each
 * sequence maps its positions 0..len-1 to cells (seq_cells), so sequences of
 * very different lengths share one pool without reserving n_ctx cells each,
 * and attention walks a sequence's cells in position order. A cell records
 * which sequences use it (a bit mask): cll_kv_seq_copy makes a prefix shared
 * instead of copying it, and a cell is free again when its last sequence
 * lets go. Shifting a sequence re-rotates its keys in place; a cell that
 * another sequence still shares is copied first (copy on write).
 *
 * Placement keeps each sequence's cells consecutive where it can, because
 * attention reads a run of consecutive cells as a strided matrix and must
 * gather scattered ones (attention.c). The pool is cut into blocks of
 * CLL__KV_BLOCK cells. A sequence's next position goes to the cell after
 * its previous one when that cell is free and in the same block (or starts
 * a wholly free block); otherwise it claims a wholly free block, preferably
 * the next one, else the lowest; only when no block is wholly free does it
 * take any free cell (the nearest after its previous cell). So sequences
 * growing in turn (decode steps of many streams) each fill their own
 * blocks instead of interleaving cell by cell, and a placement succeeds
 * whenever enough cells are free, as with a plain free list.
 *
 * Threads: called by the thread that owns the cll_ctx, never during a
 * forward's compute (the team only reads the pool's metadata). */
#include "engine/ctx.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int cll__kv_init(cll_ctx *c) {
  int64_t n = c->p.n_ctx;
  const cll_model *m = c->m;
  const int64_t L = m->info.n_layer;
  c->n_blk = (n + CLL__KV_BLOCK - 1) / CLL__KV_BLOCK;
  c->cells = calloc((size_t)n, sizeof(*c->cells));
  c->blk_free = malloc((size_t)c->n_blk * sizeof(*c->blk_free));
  c->seq_cells = malloc((size_t)n * (size_t)c->p.n_seq_max * sizeof(*c->seq_cells));
  c->seq_len = calloc((size_t)c->p.n_seq_max, sizeof(*c->seq_len));
  c->ring_lo = calloc((size_t)c->p.n_seq_max, sizeof(*c->ring_lo));
  c->kvl = calloc((size_t)L, sizeof(*c->kvl));
  if (!c->cells || !c->blk_free || !c->seq_cells || !c->seq_len || !c->ring_lo || !c->kvl)
    return CLL_ENOMEM;
  /* Sliding-window layers get rings when that takes less memory: a ring
   * holds the window plus one batch (a batch's first token still sees its
   * window after the batch's last token was stored). */
  int64_t n_ring_layers = 0;
  if (m->n_swa > 0) {
    int64_t r = (m->n_swa + c->p.n_batch_max + CLL__KV_BLOCK - 1) / CLL__KV_BLOCK * CLL__KV_BLOCK;
    if (r * c->p.n_seq_max < n) {
      c->ring = r;
      for (int64_t il = 0; il < L; il++)
        n_ring_layers += m->layers[il].swa;
    }
  }
  const size_t rb = c->kv_row_bytes;
  size_t full = (size_t)n * rb * (size_t)(L - n_ring_layers);
  size_t rings = (size_t)c->ring * (size_t)c->p.n_seq_max * rb * (size_t)n_ring_layers;
  c->k_cache = malloc(full ? full : 1);
  c->v_cache = malloc(full ? full : 1);
  c->k_ring = malloc(rings ? rings : 1);
  c->v_ring = malloc(rings ? rings : 1);
  c->ring_tmp = malloc(c->ring ? 2 * (size_t)c->ring * rb : 1);
  if (!c->k_cache || !c->v_cache || !c->k_ring || !c->v_ring || !c->ring_tmp)
    return CLL_ENOMEM;
  c->kv_bytes = 2 * (full + rings);
  size_t off_full = 0, off_ring = 0;
  for (int64_t il = 0; il < L; il++) {
    struct cll__kvlayer *kl = &c->kvl[il];
    kl->ring = c->ring > 0 && m->layers[il].swa;
    if (kl->ring) {
      kl->rows = c->ring * c->p.n_seq_max;
      kl->k = c->k_ring + off_ring;
      kl->v = c->v_ring + off_ring;
      off_ring += (size_t)kl->rows * rb;
    } else {
      kl->rows = n;
      kl->k = c->k_cache + off_full;
      kl->v = c->v_cache + off_full;
      off_full += (size_t)n * rb;
    }
  }
  for (int64_t b = 0; b < c->n_blk; b++)
    c->blk_free[b] =
        (int32_t)(n - b * CLL__KV_BLOCK < CLL__KV_BLOCK ? n - b * CLL__KV_BLOCK : CLL__KV_BLOCK);
  c->n_blk_whole = c->n_blk;
  c->n_free = n;
  return 0;
}

void cll__kv_free(cll_ctx *c) {
  free(c->cells);
  free(c->blk_free);
  free(c->seq_cells);
  free(c->seq_len);
  free(c->ring_lo);
  free(c->kvl);
  free(c->k_cache);
  free(c->v_cache);
  free(c->k_ring);
  free(c->v_ring);
  free(c->ring_tmp);
}

size_t cll_ctx_kv_bytes(const cll_ctx *c) {
  return c->kv_bytes;
}

int64_t cll_kv_cells_used(const cll_ctx *c) {
  return c->p.n_ctx - c->n_free;
}

int64_t cll_ctx_kv_ring(const cll_ctx *c) {
  return c->ring;
}

static int32_t *cells_of(const cll_ctx *c, int32_t seq) {
  return c->seq_cells + (size_t)seq * (size_t)c->p.n_ctx;
}

/* Cells in block b (the last block may be short). */
static int32_t blk_size(const cll_ctx *c, int64_t b) {
  int64_t left = c->p.n_ctx - b * CLL__KV_BLOCK;
  return (int32_t)(left < CLL__KV_BLOCK ? left : CLL__KV_BLOCK);
}

static bool blk_whole(const cll_ctx *c, int64_t b) {
  return c->blk_free[b] == blk_size(c, b);
}

/* Marks a free cell used by seq alone (pos is set by the caller). */
static void take(cll_ctx *c, int32_t cell, int32_t seq) {
  int64_t b = cell / CLL__KV_BLOCK;
  if (blk_whole(c, b))
    c->n_blk_whole--;
  c->blk_free[b]--;
  c->n_free--;
  c->cells[cell].seq_mask = 1ull << seq;
}

static void release(cll_ctx *c, int32_t cell, int32_t seq) {
  struct cll__cell *ce = &c->cells[cell];
  ce->seq_mask &= ~(1ull << seq);
  if (ce->seq_mask == 0) {
    int64_t b = cell / CLL__KV_BLOCK;
    c->blk_free[b]++;
    c->n_free++;
    if (blk_whole(c, b))
      c->n_blk_whole++;
  }
}

/* A free cell for the position after cell prev (-1: a sequence's first
 * cell), chosen as the file comment says. The pool must have a free cell. */
static int32_t pick_cell(const cll_ctx *c, int32_t prev) {
  const int64_t n = c->p.n_ctx, B = CLL__KV_BLOCK;
  if (prev >= 0 && prev + 1 < n && c->cells[prev + 1].seq_mask == 0 &&
      ((prev + 1) % B != 0 || blk_whole(c, (prev + 1) / B)))
    return prev + 1;
  if (c->n_blk_whole > 0) {
    int64_t next = prev >= 0 ? prev / B + 1 : 0;
    if (next < c->n_blk && blk_whole(c, next))
      return (int32_t)(next * B);
    for (int64_t b = 0; b < c->n_blk; b++)
      if (blk_whole(c, b))
        return (int32_t)(b * B);
  }
  /* No wholly free block: the first free cell after prev, wrapping around,
   * skipping full blocks. */
  int64_t start = prev >= 0 && prev + 1 < n ? prev + 1 : 0;
  for (int64_t k = 0; k <= c->n_blk; k++) {
    int64_t b = (start / B + k) % c->n_blk;
    if (c->blk_free[b] == 0)
      continue;
    int64_t i0 = k == 0 ? start : b * B, i1 = b * B + blk_size(c, b);
    for (int64_t i = i0; i < i1; i++)
      if (c->cells[i].seq_mask == 0)
        return (int32_t)i;
  }
  assert(!"pick_cell: the pool has no free cell");
  return -1;
}

int cll__kv_place(cll_ctx *c, const struct cll_batch *b, cll_err *err) {
  if (b->n_tokens > c->n_free)
    return cll_err_set(err, CLL_EFULL, "KV cache full: %d tokens need cells, %lld free",
                       b->n_tokens, (long long)c->n_free);
  /* Check first (seq_len is only advanced in the second pass), so a bad
   * batch changes nothing. The expected position of a sequence's next token
   * is its length plus the tokens of it already seen in this batch: counted
   * with cell_of as scratch. */
  int32_t *seen = c->cell_of; /* borrowed as a per-token counter */
  for (int32_t i = 0; i < b->n_tokens; i++) {
    int32_t s = b->seq[i];
    int32_t before = 0;
    for (int32_t j = i - 1; j >= 0; j--)
      if (b->seq[j] == s) {
        before = seen[j] + 1;
        break;
      }
    seen[i] = before;
    if (b->pos[i] != c->seq_len[s] + before)
      return cll_err_set(err, CLL_EINVAL,
                         "batch token %d of sequence %d is at position %d, expected %d", i, s,
                         b->pos[i], c->seq_len[s] + before);
  }
  for (int32_t i = 0; i < b->n_tokens; i++) {
    int32_t s = b->seq[i];
    int32_t *map = cells_of(c, s);
    int32_t cell = pick_cell(c, b->pos[i] > 0 ? map[b->pos[i] - 1] : -1);
    take(c, cell, s);
    c->cells[cell].pos = b->pos[i];
    map[b->pos[i]] = cell;
    c->seq_len[s] = b->pos[i] + 1;
    c->cell_of[i] = cell;
  }
  /* Rings: writing position p drops position p - ring. */
  if (c->ring > 0)
    for (int32_t i = 0; i < b->n_tokens; i++) {
      int32_t lo = b->pos[i] - (int32_t)c->ring + 1;
      if (lo > c->ring_lo[b->seq[i]])
        c->ring_lo[b->seq[i]] = lo;
    }
  return 0;
}

int32_t cll_kv_seq_len(const cll_ctx *c, int32_t seq) {
  if (c->enc != NULL || seq < 0 || seq >= c->p.n_seq_max)
    return 0;
  return c->seq_len[seq];
}

void cll_kv_seq_trim(cll_ctx *c, int32_t seq, int32_t p0) {
  if (c->enc != NULL || seq < 0 || seq >= c->p.n_seq_max)
    return;
  if (p0 < 0)
    p0 = 0;
  int32_t *map = cells_of(c, seq);
  for (int32_t p = p0; p < c->seq_len[seq]; p++)
    release(c, map[p], seq);
  if (p0 < c->seq_len[seq])
    c->seq_len[seq] = p0;
  if (c->seq_len[seq] == 0 || c->ring_lo[seq] > c->seq_len[seq])
    c->ring_lo[seq] = c->seq_len[seq]; /* empty, or nothing of the window left */
}

int32_t cll_kv_seq_reusable(const cll_ctx *c, int32_t seq, int32_t n) {
  if (c->enc != NULL || seq < 0 || seq >= c->p.n_seq_max || n <= 0)
    return 0;
  if (n > c->seq_len[seq])
    n = c->seq_len[seq];
  /* Continuing after position n - 1 needs the window before n in the rings. */
  if (c->ring == 0 || c->ring_lo[seq] == 0 || n - c->m->n_swa + 1 >= c->ring_lo[seq])
    return n;
  return 0;
}

/* Ring row of position p of seq. */
static size_t ring_row(const cll_ctx *c, int32_t seq, int32_t p) {
  return (size_t)seq * (size_t)c->ring + (size_t)(p % c->ring);
}

/* Copies one position's K row and V column between ring rows, every ring
 * layer. */
static void ring_copy(cll_ctx *c, size_t from, size_t to) {
  const size_t rb = c->kv_row_bytes, e = c->kv_elt;
  for (int64_t il = 0; il < c->m->info.n_layer; il++) {
    const struct cll__kvlayer *L = &c->kvl[il];
    if (!L->ring)
      continue;
    memcpy(L->k + to * rb, L->k + from * rb, rb);
    for (int64_t d = 0; d < c->kv_dim; d++)
      memcpy(L->v + ((size_t)d * (size_t)L->rows + to) * e,
             L->v + ((size_t)d * (size_t)L->rows + from) * e, e);
  }
}

int cll_kv_seq_copy(cll_ctx *c, int32_t src, int32_t dst, int32_t n) {
  if (c->enc != NULL) /* encoders keep no KV: nothing to share */
    return n == 0 ? 0 : CLL_EINVAL;
  if (src < 0 || src >= c->p.n_seq_max || dst < 0 || dst >= c->p.n_seq_max || n < 0 ||
      n > c->seq_len[src])
    return CLL_EINVAL;
  if (src == dst) {
    cll_kv_seq_trim(c, dst, n);
    return 0;
  }
  cll_kv_seq_trim(c, dst, 0);
  const int32_t *from = cells_of(c, src);
  int32_t *to = cells_of(c, dst);
  for (int32_t p = 0; p < n; p++) {
    c->cells[from[p]].seq_mask |= 1ull << dst;
    to[p] = from[p];
  }
  c->seq_len[dst] = n;
  if (c->ring > 0) { /* rings are private: copy what the window needs */
    int32_t lo = n - (int32_t)c->m->n_swa + 1;
    lo = lo < c->ring_lo[src] ? c->ring_lo[src] : lo < 0 ? 0 : lo;
    for (int32_t p = lo; p < n; p++)
      ring_copy(c, ring_row(c, src, p), ring_row(c, dst, p));
    c->ring_lo[dst] = lo;
  }
  return 0;
}

/* Copies cell `from` (all layers) into `to`. */
static void copy_cell(cll_ctx *c, int32_t from, int32_t to) {
  size_t rb = c->kv_row_bytes, e = c->kv_elt;
  for (int64_t il = 0; il < c->m->info.n_layer; il++) {
    if (c->kvl[il].ring)
      continue;
    memcpy(c->kvl[il].k + (size_t)to * rb, c->kvl[il].k + (size_t)from * rb, rb);
    uint8_t *v = c->kvl[il].v; /* transposed: one element per dimension */
    for (int64_t i = 0; i < c->kv_dim; i++)
      memcpy(v + ((size_t)i * (size_t)c->p.n_ctx + (size_t)to) * e,
             v + ((size_t)i * (size_t)c->p.n_ctx + (size_t)from) * e, e);
  }
}

/* Re-rotates one K row of layer il by delta positions. */
static void rerotate_row(cll_ctx *c, int il, uint8_t *row, int32_t delta) {
  const struct cll_model_info *I = &c->m->info;
  size_t rb = c->kv_row_bytes;
  float *buf = c->k; /* the batch K buffer (at least kv_dim floats) is free here */
  if (c->kv_type == CLL_TYPE_F32) {
    memcpy(buf, row, rb);
  } else {
    const uint16_t *h = (const uint16_t *)row;
    for (int64_t i = 0; i < c->kv_dim; i++)
      buf[i] = cll_fp16_to_fp32(h[i]);
  }
  cll__rope(c, il, buf, I->n_head_kv, delta);
  if (c->kv_type == CLL_TYPE_F32) {
    memcpy(row, buf, rb);
  } else {
    uint16_t *h = (uint16_t *)row;
    for (int64_t i = 0; i < c->kv_dim; i++)
      h[i] = cll_fp32_to_fp16(buf[i]);
  }
}

/* Re-rotates the keys of one cell by delta positions in every full layer. */
static void rerotate(cll_ctx *c, int32_t cell, int32_t delta) {
  for (int64_t il = 0; il < c->m->info.n_layer; il++)
    if (!c->kvl[il].ring)
      rerotate_row(c, (int)il, c->kvl[il].k + (size_t)cell * c->kv_row_bytes, delta);
}

/* The rings of seq after positions [p0, p0 + nd) were dropped (len: the
 * old length): the positions the new window needs move to their new rows
 * (through ring_tmp), keys re-rotated; what the rings no longer held stays
 * missing (ring_lo), and attention sees the rest of the window. */
static void ring_shift(cll_ctx *c, int32_t seq, int32_t p0, int32_t nd, int32_t len) {
  const int32_t new_len = len - nd, R = (int32_t)c->ring;
  const size_t rb = c->kv_row_bytes, e = c->kv_elt;
  int32_t lo = new_len - R + 1 > 0 ? new_len - R + 1 : 0, new_lo = lo;
  for (int32_t q = lo; q < new_len; q++) {
    int32_t op = q < p0 ? q : q + nd;
    if (op < c->ring_lo[seq])
      new_lo = q + 1;
  }
  for (int64_t il = 0; il < c->m->info.n_layer; il++) {
    const struct cll__kvlayer *L = &c->kvl[il];
    if (!L->ring)
      continue;
    uint8_t *tk = c->ring_tmp, *tv = c->ring_tmp + (size_t)R * rb;
    for (int32_t q = new_lo; q < new_len; q++) {
      int32_t op = q < p0 ? q : q + nd;
      size_t from = ring_row(c, seq, op);
      memcpy(tk + (size_t)(q - new_lo) * rb, L->k + from * rb, rb);
      for (int64_t d = 0; d < c->kv_dim; d++)
        memcpy(tv + ((size_t)(q - new_lo) * (size_t)c->kv_dim + (size_t)d) * e,
               L->v + ((size_t)d * (size_t)L->rows + from) * e, e);
      if (op != q)
        rerotate_row(c, (int)il, tk + (size_t)(q - new_lo) * rb, -nd);
    }
    for (int32_t q = new_lo; q < new_len; q++) {
      size_t to = ring_row(c, seq, q);
      memcpy(L->k + to * rb, tk + (size_t)(q - new_lo) * rb, rb);
      for (int64_t d = 0; d < c->kv_dim; d++)
        memcpy(L->v + ((size_t)d * (size_t)L->rows + to) * e,
               tv + ((size_t)(q - new_lo) * (size_t)c->kv_dim + (size_t)d) * e, e);
    }
  }
  c->ring_lo[seq] = new_lo;
}

void cll_kv_seq_shift(cll_ctx *c, int32_t seq, int32_t p0, int32_t n_discard) {
  if (c->enc != NULL || seq < 0 || seq >= c->p.n_seq_max || n_discard <= 0)
    return;
  int32_t len = c->seq_len[seq];
  if (p0 < 0)
    p0 = 0;
  if (p0 >= len)
    return;
  if (n_discard > len - p0)
    n_discard = len - p0;
  int32_t *map = cells_of(c, seq);
  if (c->ring > 0)
    ring_shift(c, seq, p0, n_discard, len);
  for (int32_t p = p0; p < p0 + n_discard; p++)
    release(c, map[p], seq);
  for (int32_t p = p0 + n_discard; p < len; p++) {
    int32_t cell = map[p];
    if (c->cells[cell].seq_mask != 1ull << seq) {
      /* Shared with another sequence: give this one a private copy. When
       * the pool has no free cell left, the rest of the sequence is
       * dropped (the caller sees it in cll_kv_seq_len). */
      if (c->n_free == 0) {
        for (int32_t q = p; q < len; q++)
          release(c, map[q], seq);
        len = p;
        break;
      }
      int32_t to = p - n_discard;
      int32_t fresh = pick_cell(c, to > 0 ? map[to - 1] : -1);
      take(c, fresh, seq);
      copy_cell(c, cell, fresh);
      c->cells[cell].seq_mask &= ~(1ull << seq); /* still shared: stays used */
      cell = fresh;
    }
    rerotate(c, cell, -n_discard);
    c->cells[cell].pos = p - n_discard;
    map[p - n_discard] = cell;
  }
  c->seq_len[seq] = len > p0 + n_discard ? len - n_discard : p0;
}

int64_t cll_kv_free_cells(const cll_ctx *c) {
  if (c->enc != NULL)
    return c->p.n_ctx; /* encoders keep no KV */
  return c->n_free;
}
