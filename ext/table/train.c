/*
** train.c - embed_lookup (the forward pass) and embed_update (one
** optimizer step), as torch.nn.Embedding with a sparse-gradient SGD.
**
** Usage:
**
**     SELECT embed_lookup('tok', 3);             -- one row (after max_norm)
**     SELECT embed_lookup('tok', '[3, 1, 3]');   -- 3 x D floats, in order
**     SELECT embed_update('tok', 3, :grad, 0.1); -- w <- w - 0.1 * grad
**     SELECT embed_update('tok', '[3, 1, 3]', :grads, 0.1);  -- a batch
**     SELECT embed_update(id, :grad, 0.1) FROM tok WHERE id = 3;  -- bound
**
** Semantics (README "Lookup and training"):
**  - max_norm: a row whose norm_type-norm exceeds max_norm is returned
**    scaled by max_norm / (norm + 1e-7) (torch.embedding_renorm_), and an
**    update applies its step to that rescaled row.
**  - A batch coalesces repeated ids by summing their gradients (in the order
**    given), divided by the id's count when scale_grad_by_freq is on.
**  - padding_idx is never changed (its gradients are ignored).
**  - All or nothing: every id is read and every new row computed and checked
**    (finite) before the first write; any error leaves every row unchanged.
**  - The step is float32 math: w[i] + (-lr) * g[i], as torch's add_(alpha).
**
** This file is the body of each call on a given table; which table a call
** means is sql/training.c's (and xFindFunction's, for the bound forms).
** Flags: embed_update is DIRECTONLY (it writes); embed_lookup is neither
** DETERMINISTIC nor INNOCUOUS (it reads a table).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "table/table.h"

/* ------------------------------------------------------------ arguments */

static int train_missing_id(embed_store *st, const char *who, int64_t id,
                            char **pzErr) {
  return embed_fail(pzErr,
                    sqlite3_mprintf("%s: no id %lld in embedding %s", who,
                                    (long long)id, embed_store_name(st)));
}

/* Read row id, apply max_norm; errors name who, the id and the table.
** With `many` (a batch), rows are read through one blob handle. */
static int train_read_row(embed_store *st, const char *who, int64_t id,
                          float *out, embed_rows *many, int looked_up,
                          char **pzErr) {
  int rc = many ? embed_rows_seek(many, id, pzErr)
                : embed_store_read(st, id, out, pzErr);
  if (many && rc == SQLITE_OK) rc = embed_rows_read(many, out, pzErr);
  if (rc == SQLITE_NOTFOUND) return train_missing_id(st, who, id, pzErr);
  if (rc) {
    if (!*pzErr)
      *pzErr =
          sqlite3_mprintf("%s: %s", who, sqlite3_errmsg(embed_store_db(st)));
    return rc;
  }
  if (looked_up) { /* the forward pass renorms */
    const embed_config *cfg = embed_store_config(st);
    if (cfg->max_norm > 0)
      embed_renorm(out, cfg->dim, cfg->max_norm, cfg->norm_type);
  }
  return SQLITE_OK;
}

/* --------------------------------------------------------------- lookup */

void embed_train_lookup(sqlite3_context *ctx, embed_store *st,
                        sqlite3_value *idv) {
  static const char who[] = "embed_lookup";
  embed_rows many;
  embed_train_ids ids;
  char *zErr = 0;
  float *out = 0;
  int64_t dim = embed_store_config(st)->dim, i;
  int rc = embed_train_read_ids(idv, who, &ids, &zErr);
  if (rc) goto done;
  if (ids.is_null) return;
  if (ids.is_batch) {
    sqlite3_int64 limit =
        sqlite3_limit(embed_store_db(st), SQLITE_LIMIT_LENGTH, -1);
    if (ids.n > limit / 4 / dim) {
      rc = embed_fail(
          &zErr,
          sqlite3_mprintf("%s: %lld x %lld floats exceed SQLite's length limit",
                          who, (long long)ids.n, (long long)dim));
      goto done;
    }
  }
  out = (float *)sqlite3_malloc64((sqlite3_uint64)ids.n * dim *
                                  EMBED_FLOAT_BYTES);
  if (!out) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  embed_rows_init(&many, st, 0);
  for (i = 0; rc == SQLITE_OK && i < ids.n; i++)
    rc = train_read_row(st, who, ids.is_batch ? ids.many[i] : ids.one,
                        out + i * dim, ids.n > 1 ? &many : 0, 1, &zErr);
  embed_rows_close(&many);
  if (rc == SQLITE_OK) embed_result_vector(ctx, out, ids.n * dim);
done:
  if (rc) embed_result_error(ctx, rc, zErr);
  sqlite3_free(out);
  sqlite3_free(ids.many);
}

/* --------------------------------------------------------------- update */

/* One id of a batch with its position in the call, for coalescing. */
typedef struct train_id_pos {
  int64_t id;
  int64_t pos;
} train_id_pos;

/* Sort v[0..n) by id, keeping the order of positions inside an id (v
** comes in position order): a stable LSD radix sort on the id's 8 bytes
** (sign bit flipped), skipping the bytes every id shares, through tmp[n].
** Leaves the result in v. */
static void train_sort_ids(train_id_pos *v, train_id_pos *tmp, int64_t n) {
  int64_t count[8][256], i;
  train_id_pos *from = v, *to = tmp, *swap;
  int d;
  memset(count, 0, sizeof(count));
  for (i = 0; i < n; i++) {
    uint64_t key = (uint64_t)v[i].id ^ ((uint64_t)1 << 63);
    for (d = 0; d < 8; d++) count[d][(key >> (8 * d)) & 255]++;
  }
  for (d = 0; d < 8; d++) {
    int64_t sum = 0, c;
    int b;
    uint64_t key0 = (uint64_t)v[0].id ^ ((uint64_t)1 << 63);
    if (count[d][(key0 >> (8 * d)) & 255] == n) continue; /* all alike */
    for (b = 0; b < 256; b++) {
      c = count[d][b];
      count[d][b] = sum;
      sum += c;
    }
    for (i = 0; i < n; i++) {
      uint64_t key = (uint64_t)from[i].id ^ ((uint64_t)1 << 63);
      to[count[d][(key >> (8 * d)) & 255]++] = from[i];
    }
    swap = from;
    from = to;
    to = swap;
  }
  if (from != v) memcpy(v, from, (size_t)n * sizeof(train_id_pos));
}

/* The end of the group of equal ids that starts at order[i] (of n). */
static int64_t train_group_end(const train_id_pos *order, int64_t i,
                               int64_t n) {
  int64_t j = i;
  while (j < n && order[j].id == order[i].id) j++;
  return j;
}

static int train_is_padding(embed_store *st, int64_t id) {
  const embed_config *cfg = embed_store_config(st);
  return cfg->has_padding_idx && id == cfg->padding_idx;
}

/* What is stored of a row's optimizer state (train_batch.had_state). */
enum {
  TRAIN_STATE_NONE = 0,     /* never stepped: inserted after every row */
  TRAIN_STATE_STORED = 1,   /* rewritten after every row (train_write_batch) */
  TRAIN_STATE_REWRITTEN = 2 /* already rewritten in place; the stored one is
                               in old_states (train_undo) */
};

/* The rows one embed_update call changes, computed before any is written. */
typedef struct train_batch {
  int64_t dim, state_size;
  int in_row;               /* the states are in the rows (layout 3): a row
                               slot is the weight and then its state, read
                               and rewritten as one */
  int64_t width;            /* floats per row slot: dim (+ state_size) */
  int64_t n;                /* rows computed so far */
  int64_t *ids;             /* [n] */
  float *rows;              /* [n x width] new rows; one row when old is
                               kept (train_new_row) */
  float *states;            /* [n x state_size] new optimizer states kept
                               apart from the rows (NULL with in_row) */
  unsigned char *had_state; /* [n] TRAIN_STATE_*, 0 until the slot is read */
  int64_t step;      /* the table's step count after this call; 0: unused */
  float *old;        /* [n x width] the stored rows, for train_undo */
  float *old_states; /* [n x state_size] the stored states, likewise (of
                        the rows whose state is TRAIN_STATE_REWRITTEN) */
  int64_t slots;     /* rows the space holds: the batch's and the others */
  int64_t written;   /* rows [0, written) already rewritten in place */
  int states_first;  /* the slots' states are already stepped: only the
                        weights are left (train_state_first) */
} train_batch;

/* The optimizer states of the rows b->ids[0..count) (ascending) into their
** slots, in one batched read (TRAIN_STATE_STORED); a row never stepped gets
** the optimizer's initial state (TRAIN_STATE_NONE). */
static int train_read_states(embed_store *st, train_batch *b, int64_t count,
                             char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  int64_t i;
  int rc;
  if (!b->states) return SQLITE_OK;
  rc = embed_store_state_read_many(st, b->ids, count, b->states, b->state_size,
                                   b->had_state, pzErr);
  for (i = 0; rc == SQLITE_OK && i < count; i++)
    if (b->had_state[i] == TRAIN_STATE_NONE)
      embed_optimizer_state_init(cfg, b->states + i * b->state_size, cfg->dim);
  return rc;
}

/* Where the next row's new weights are computed: a batch written in place
** (b->old kept for train_undo) writes each row as soon as it is computed,
** so one slot serves every row; else each row has its own, written after
** (train_write_batch). */
static float *train_new_row(train_batch *b) {
  return b->old ? b->rows : b->rows + b->n * b->width;
}

/* One optimizer step on row id (already read into the batch's next slot,
** its state too: train_read_states; or, with states_first, the slot's
** state already stepped) with the coalesced gradient g; fails if a result
** is not finite. */
static int train_step_row(embed_store *st, const char *who, train_batch *b,
                          int64_t id, const float *g, double lr, char **pzErr) {
  float *w = train_new_row(b);
  float *state = b->in_row   ? w + b->dim
                 : b->states ? b->states + b->n * b->state_size
                             : 0;
  int64_t bad;
  if (b->states_first)
    embed_optimizer_weight_step(embed_store_config(st), w, g, state, lr,
                                b->step, b->dim);
  else
    embed_optimizer_step(embed_store_config(st), w, g, state, lr, b->step,
                         b->dim);
  bad = embed_first_nonfinite(w, b->dim);
  if (bad >= 0)
    return embed_fail(
        pzErr,
        sqlite3_mprintf(
            "%s: the step makes element %lld of id %lld not finite; nothing was changed",
            who, (long long)bad, (long long)id));
  if (state && embed_first_nonfinite(state, b->state_size) >= 0)
    return embed_fail(
        pzErr,
        sqlite3_mprintf(
            "%s: the step makes the optimizer state of id %lld not finite; nothing was changed",
            who, (long long)id));
  b->ids[b->n++] = id;
  return SQLITE_OK;
}

/* Write what the call has not written yet: a single row (a batch wrote
** each of its rows in place as it went: train_step_in_place), the change
** log, optimizer states, step count (inside the call's transaction, see
** embed_train_call_begin). The states that existed and are not rewritten
** yet (TRAIN_STATE_STORED) go in place through states, the others are
** inserted. */
static int train_write_batch(embed_store *st, train_batch *b,
                             embed_rows *states, int *wrote, char **pzErr) {
  int64_t i;
  int rc = SQLITE_OK;
  if (b->n == 1 && b->written == 0) { /* its slot: not written in place */
    rc = embed_store_write(st, b->ids[0], b->rows);
    if (rc == SQLITE_OK) *wrote = 1;
  }
  if (rc == SQLITE_OK) b->written = b->n;
  if (rc == SQLITE_OK) rc = embed_store_log_append(st, b->ids, b->n);
  for (i = 0; rc == SQLITE_OK && b->states && i < b->n; i++) {
    const float *state = b->states + i * b->state_size;
    if (b->had_state[i] == TRAIN_STATE_REWRITTEN) continue;
    if (b->had_state[i] == TRAIN_STATE_STORED) {
      rc = embed_rows_seek(states, b->ids[i], pzErr);
      if (rc == SQLITE_OK) rc = embed_rows_write(states, state, pzErr);
    } else {
      rc = embed_store_state_write(st, b->ids[i], state, b->state_size);
    }
  }
  if (rc == SQLITE_OK && b->step) rc = embed_store_step_write(st, b->step);
  return rc;
}

/* A batch rewrites each row (and its stored optimizer state) in place as
** soon as its step is computed and checked: one b-tree descent per row
** and per state (the read's) instead of two. A later failure (a missing
** id, a damaged row, a step that is not finite) puts the stored rows and
** states back from b->old and b->old_states, so the call still changes
** nothing. Returns 0 when everything is back; else the call's transaction
** must be rolled back. */
static int train_undo(train_batch *b, embed_rows *many, embed_rows *states) {
  char *zErr = 0;
  int64_t i;
  int rc = SQLITE_OK;
  for (i = 0; rc == SQLITE_OK && i < b->written; i++) {
    rc = embed_rows_seek(many, b->ids[i], &zErr);
    if (rc == SQLITE_OK)
      rc = embed_rows_write(many, b->old + i * b->width, &zErr);
  }
  for (i = 0; rc == SQLITE_OK && b->states && i < b->slots; i++) {
    if (b->had_state[i] != TRAIN_STATE_REWRITTEN) continue;
    rc = embed_rows_seek(states, b->ids[i], &zErr);
    if (rc == SQLITE_OK)
      rc = embed_rows_write(states, b->old_states + i * b->state_size, &zErr);
    if (rc == SQLITE_OK) b->had_state[i] = TRAIN_STATE_STORED;
  }
  sqlite3_free(zErr);
  if (rc == SQLITE_OK) b->written = 0;
  return rc;
}

/* Row id's stored optimizer state into the batch's slot `at` through the
** states handle (kept in b->old_states for train_undo), or the initial
** state for a row never stepped. */
static int train_read_state_in_place(embed_store *st, train_batch *b,
                                     embed_rows *states, int64_t id, int64_t at,
                                     char **pzErr) {
  float *state = b->states + at * b->state_size;
  int rc = embed_rows_read_state(states, id, state, pzErr);
  b->had_state[at] = rc == SQLITE_OK ? TRAIN_STATE_STORED : TRAIN_STATE_NONE;
  if (rc == SQLITE_OK) {
    memcpy(b->old_states + at * b->state_size, state,
           (size_t)b->state_size * EMBED_FLOAT_BYTES);
  } else if (rc == SQLITE_NOTFOUND) {
    const embed_config *cfg = embed_store_config(st);
    embed_optimizer_state_init(cfg, state, cfg->dim);
    rc = SQLITE_OK;
  }
  return rc;
}

/* Rewrite in place the state in slot at, when one is stored (the states
** handle is on it: it was just read there). */
static int train_rewrite_state(train_batch *b, embed_rows *states, int64_t at,
                               int *wrote, char **pzErr) {
  int rc;
  if (b->had_state[at] != TRAIN_STATE_STORED) return SQLITE_OK;
  rc = embed_rows_write(states, b->states + at * b->state_size, pzErr);
  if (rc) return rc;
  b->had_state[at] = TRAIN_STATE_REWRITTEN;
  *wrote = 1;
  return SQLITE_OK;
}

/* Read row id into the batch's next slot (its stored form kept in b->old
** for train_undo), and with states (given only for an optimizer that keeps
** states) its optimizer state; step it unless it is padding
** (train_step_row), and rewrite the state (when one was stored) and the
** row in place. Without states the slot's state was read (and perhaps
** stepped: states_first) before, and is written by train_write_batch
** unless it was rewritten already. */
static int train_step_in_place(embed_store *st, const char *who, train_batch *b,
                               embed_rows *many, embed_rows *states, int64_t id,
                               const float *g, double lr, int looked_up,
                               int *wrote, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  float *old = b->old + b->n * b->width, *w = train_new_row(b);
  int64_t at = b->n;
  int rc = train_read_row(st, who, id, old, many, 0, pzErr);
  if (rc || train_is_padding(st, id)) return rc;
  if (states) rc = train_read_state_in_place(st, b, states, id, at, pzErr);
  if (rc) return rc;
  memcpy(w, old, (size_t)b->width * EMBED_FLOAT_BYTES); /* and its state */
  if (looked_up && cfg->max_norm > 0) /* the forward pass renorms */
    embed_renorm(w, cfg->dim, cfg->max_norm, cfg->norm_type);
  rc = train_step_row(st, who, b, id, g, lr, pzErr);
  if (rc == SQLITE_OK && states)
    rc = train_rewrite_state(b, states, at, wrote, pzErr);
  if (rc == SQLITE_OK) rc = embed_rows_write(many, w, pzErr);
  if (rc == SQLITE_OK) {
    b->written = b->n;
    *wrote = 1;
  }
  return rc;
}

/* The gradient of the group order[i..j) (one id): its one row, or the sum
** of its rows in the call's order (into sum[dim]), divided by the count
** with scale_grad_by_freq (each gradient divided, then summed, as torch). */
static const float *train_coalesce(embed_store *st, const float *grads,
                                   const train_id_pos *order, int64_t i,
                                   int64_t j, float *sum) {
  const embed_config *cfg = embed_store_config(st);
  int64_t dim = cfg->dim, count = j - i, k, e;
  const float *first = grads + order[i].pos * dim;
  float *gsum = sum;
  int scale = cfg->scale_grad_by_freq && count > 1;
  if (count == 1) return first;
  for (e = 0; e < dim; e++)
    gsum[e] = scale ? first[e] / (float)count : first[e];
  for (k = i + 1; k < j; k++) {
    const float *g = grads + order[k].pos * dim;
    for (e = 0; e < dim; e++) gsum[e] += scale ? g[e] / (float)count : g[e];
  }
  return gsum;
}

/* The first of a call's two passes over rows whose optimizer splits
** (embed_optimizer_splits), for a batch whose last call found most states
** stored and for the rows outside the batch (train_untouched_rows): read
** row id's stored state into slot at through the states handle (or the
** initial one), move it with the gradient g and rewrite it in place. The
** second pass (train_step_in_place, states_first) steps the weights from
** these states: one run of neighbouring descents in each b-tree instead of
** descents alternating between the two, which SQLite pays about 12% more
** for. A state made not finite is caught by the second pass at its row
** (errors come in id order, as with one pass), and train_undo puts back
** the states written here. */
static int train_state_first(embed_store *st, train_batch *b,
                             embed_rows *states, int64_t id, int64_t at,
                             const float *g, int *wrote, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  int rc = train_read_state_in_place(st, b, states, id, at, pzErr);
  if (rc) return rc;
  embed_optimizer_state_step(cfg, g, b->states + at * b->state_size, b->step,
                             cfg->dim);
  return train_rewrite_state(b, states, at, wrote, pzErr);
}

/* The first pass for a batch: each distinct id of order[0..n) but padding,
** ascending, in the slot its row will take, with its coalesced gradient
** (a repeated id's is summed again in the second pass: the same bits; few
** ids of a batch repeat). */
static int train_states_first(embed_store *st, train_batch *b,
                              embed_rows *states, const train_id_pos *order,
                              int64_t n, const float *grads, float *sum,
                              int *wrote, char **pzErr) {
  int64_t i, j, at = 0;
  int rc = SQLITE_OK;
  for (i = 0; rc == SQLITE_OK && i < n; i = j) {
    int64_t id = order[i].id;
    j = train_group_end(order, i, n);
    if (train_is_padding(st, id)) continue;
    rc = train_state_first(st, b, states, id, at++,
                           train_coalesce(st, grads, order, i, j, sum), wrote,
                           pzErr);
  }
  b->states_first = rc == SQLITE_OK;
  return rc;
}

/* The ids (ascending) a step moves besides the batch's, as torch does:
** rows with a momentum buffer, or every row under weight_decay. */
static int train_untouched_rows(embed_store *st, int64_t **out, int64_t *n) {
  int which = embed_optimizer_steps_untouched_rows(embed_store_config(st));
  *out = 0;
  *n = 0;
  if (!which) return SQLITE_OK;
  return embed_store_ids(st, which == 1, out, n);
}

/* The ids (ascending) of the rows with a momentum buffer, in a table that
** marks them (layout 4: embed_store_state_marks): the untouched rows
** themselves unless every row is stepped (then *owned). */
static int train_marked_rows(embed_store *st, int64_t *extra, int64_t n_extra,
                             int64_t **marked, int64_t *n, int *owned) {
  *owned = embed_optimizer_steps_untouched_rows(embed_store_config(st)) != 1;
  *marked = *owned ? 0 : extra;
  *n = *owned ? 0 : n_extra;
  return *owned ? embed_store_ids(st, 1, marked, n) : SQLITE_OK;
}

/* Mark the rows the call stepped that had no buffer before it (not in
** marked[0..n_marked), ascending): their buffers are torch's from now on. */
static int train_mark_rows(embed_store *st, const train_batch *b,
                           const int64_t *marked, int64_t n_marked) {
  int64_t i;
  int rc = SQLITE_OK;
  for (i = 0; rc == SQLITE_OK && i < b->n; i++) {
    int64_t id = b->ids[i], at = embed_ids_lower_bound(marked, n_marked, id);
    if (at == n_marked || marked[at] != id) rc = embed_store_state_mark(st, id);
  }
  return rc;
}

/* Space for one call's work, carved from one allocation (from the stack
** for a call small enough, else the table's working memory, kept between
** the calls of a transaction: embed_store_scratch_take): the sort's two
** arrays, the call's ids, new rows and states, one row of coalesced
** gradient, and which rows had a state; with in_place, a copy of the rows
** and states as stored (train_undo), and one slot for the new rows, each
** written as soon as it is computed. */
typedef struct train_space {
  void *heap;                /* a call inside a call allocates its own */
  int scratch;               /* the table's working memory is taken */
  train_id_pos *order, *tmp; /* [n] each */
  float *sum;                /* [dim] */
} train_space;

static int train_space_get(embed_store *st, train_space *sp, train_batch *b,
                           int64_t n, int64_t n_extra, int in_place,
                           void *stack, size_t stack_bytes) {
  sqlite3_uint64 rows = (sqlite3_uint64)(n + n_extra);
  sqlite3_uint64 new_rows = in_place ? 1 : rows;
  sqlite3_uint64 width = (sqlite3_uint64)b->width;
  sqlite3_uint64 apart = b->in_row ? 0 : (sqlite3_uint64)b->state_size;
  sqlite3_uint64 floats = new_rows * width + rows * apart +
                          (in_place ? rows * (width + apart) : 0) +
                          (sqlite3_uint64)b->dim;
  sqlite3_uint64 bytes = 2 * (sqlite3_uint64)n * sizeof(train_id_pos) +
                         rows * EMBED_ID_BYTES + floats * EMBED_FLOAT_BYTES +
                         rows;
  char *p;
  sp->heap = 0;
  sp->scratch = 0;
  if (bytes <= stack_bytes) {
    p = (char *)stack;
  } else if ((p = (char *)embed_store_scratch_take(st, bytes)) != 0) {
    sp->scratch = 1;
  } else {
    p = (char *)(sp->heap = sqlite3_malloc64(bytes));
    if (!p) return SQLITE_NOMEM;
  }
  /* 8-byte items first, then floats: each part stays aligned */
  sp->order = (train_id_pos *)p;
  sp->tmp = sp->order + n;
  b->ids = (int64_t *)(sp->tmp + n);
  b->rows = (float *)(b->ids + rows);
  b->states = apart ? b->rows + new_rows * width : 0;
  b->old = in_place ? b->rows + new_rows * width + rows * apart : 0;
  b->old_states = in_place && apart ? b->old + rows * width : 0;
  sp->sum = b->rows + floats - b->dim;
  b->had_state = (unsigned char *)(sp->sum + b->dim);
  memset(b->had_state, TRAIN_STATE_NONE, (size_t)rows);
  b->slots = (int64_t)rows;
  return SQLITE_OK;
}

int embed_train_step(embed_store *st, const char *who, sqlite3_value *idv,
                     sqlite3_value *gradv, sqlite3_value *lrv, int64_t *changed,
                     char **pzErr) {
  embed_train_ids ids;
  const float *grads = 0;
  train_id_pos *order;
  train_batch b;
  train_space sp;
  embed_rows many, states;
  int64_t stack[512]; /* 4 KB: one row of up to ~300 dims needs no malloc */
  int own = 0, wrote = 0, grads_owned = 0, in_place = 0, state_in_place = 0;
  const embed_config *cfg = embed_store_config(st);
  int64_t dim = cfg->dim, i, j, k, n_groups = 0, n_extra = 0, *extra = 0;
  int64_t n_marked = 0, *marked = 0;
  int marks = 0, marked_owned = 0;
  double lr = 0;
  char *zErr = 0;
  int rc;
  memset(&b, 0, sizeof(b));
  memset(&sp, 0, sizeof(sp));
  memset(&many, 0, sizeof(many)); /* closing it is a no-op until init */
  memset(&states, 0, sizeof(states));
  rc = embed_train_read_ids(idv, who, &ids, &zErr);
  if (rc) goto done;
  if (ids.is_null) {
    rc = embed_fail(&zErr, sqlite3_mprintf("%s: id is NULL", who));
    goto done;
  }
  rc = embed_number_from_value(lrv, who, "lr", &lr, &zErr);
  if (rc == SQLITE_OK && lr < 0)
    rc = embed_fail(&zErr,
                    sqlite3_mprintf("%s: invalid learning rate %g", who, lr));
  if (rc == SQLITE_OK)
    rc = embed_train_read_grads(st, who, gradv, ids.n, ids.is_batch, &grads,
                                &grads_owned, &zErr);
  if (rc) goto done;

  rc = embed_train_call_begin(st,
                              ids.n > 1 ||
                                  embed_optimizer_state_size(cfg, dim) > 0 ||
                                  embed_optimizer_counts_steps(cfg) ||
                                  embed_optimizer_steps_untouched_rows(cfg),
                              &own);
  if (rc) goto done;
  b.dim = dim;
  b.state_size = embed_optimizer_state_size(cfg, dim);
  b.in_row = b.state_size > 0 && embed_store_state_in_row(st) == b.state_size;
  b.width = b.in_row ? dim + b.state_size : dim;
  if (b.in_row) /* inside the call's transaction */
    embed_rows_init_record(&many, st, 1);
  else
    embed_rows_init(&many, st, 1);
  embed_rows_init_state(&states, st, b.state_size);
  if (embed_optimizer_counts_steps(cfg)) {
    rc = embed_store_step_read(st, &b.step, &zErr);
    if (rc) goto done;
    b.step++;
  }
  rc = train_untouched_rows(st, &extra, &n_extra);
  marks = b.in_row && embed_store_state_marks(st);
  if (rc == SQLITE_OK && marks)
    rc = train_marked_rows(st, extra, n_extra, &marked, &n_marked,
                           &marked_owned);
  if (rc) goto done;
  in_place = ids.n > 1 || n_extra > 0 || b.in_row;
  rc = train_space_get(st, &sp, &b, ids.n, n_extra, in_place, stack,
                       sizeof(stack));
  if (rc) goto done;
  order = sp.order;
  /* Coalesce: order[] groups equal ids, keeping the call's order inside. */
  for (i = 0; i < ids.n; i++) {
    order[i].id = ids.is_batch ? ids.many[i] : ids.one;
    order[i].pos = i;
  }
  train_sort_ids(order, sp.tmp, ids.n);

  /* The states of the rows the call steps (its distinct ids but padding,
  ** in the slots those rows will take): a batch whose last call found most
  ** states stored reads each through the states handle as it steps the
  ** row (one descent per state, read and write); otherwise, and for a
  ** single row, they are read here in one go (a state not stored costs
  ** no handle) and written after. */
  state_in_place = in_place && b.states && embed_store_states_mostly_stored(st);
  if (state_in_place && embed_optimizer_splits(cfg))
    rc = train_states_first(st, &b, &states, order, ids.n, grads, sp.sum,
                            &wrote, &zErr);
  for (i = 0, j = 0; !state_in_place && i < ids.n; i++)
    if ((i == 0 || order[i].id != order[i - 1].id) &&
        !train_is_padding(st, order[i].id))
      b.ids[j++] = order[i].id;
  if (!state_in_place) rc = train_read_states(st, &b, j, &zErr);

  /* Compute every new row (and state), in ascending id order: a batch
  ** rewrites each row in place through the handle that read it
  ** (train_step_in_place), a single row is written after. */
  for (i = 0; rc == SQLITE_OK && i < ids.n; i = j) {
    int64_t id = order[i].id;
    const float *g;
    j = train_group_end(order, i, ids.n);
    g = train_is_padding(st, id)
            ? 0
            : train_coalesce(st, grads, order, i, j, sp.sum);
    if (in_place) {
      rc = train_step_in_place(st, who, &b, &many,
                               state_in_place && !b.states_first ? &states : 0,
                               id, g, lr, 1, &wrote, &zErr);
    } else {
      rc = train_read_row(st, who, id, b.rows + b.n * dim, 0, 1, &zErr);
      if (rc == SQLITE_OK && g)
        rc = train_step_row(st, who, &b, id, g, lr, &zErr);
    }
    order[n_groups++].id = id; /* compact: the batch's distinct ids */
  }
  if (rc == SQLITE_OK && b.states) { /* for the next call's choice */
    int64_t found = 0;
    for (i = 0; i < b.n; i++) found += b.had_state[i] != TRAIN_STATE_NONE;
    embed_store_states_found(st, found, b.n);
  }
  /* Rows outside the batch that torch's step moves too, with g = 0: their
  ** ids (ascending) into the next slots, then their states and weights in
  ** place, in two passes when the optimizer splits (train_state_first). */
  if (n_extra) memset(sp.sum, 0, (size_t)dim * EMBED_FLOAT_BYTES);
  for (i = 0, j = 0, k = b.n; rc == SQLITE_OK && i < n_extra; i++) {
    while (j < n_groups && order[j].id < extra[i]) j++;
    if ((j < n_groups && order[j].id == extra[i]) ||
        train_is_padding(st, extra[i]))
      continue;
    b.ids[k++] = extra[i];
  }
  b.states_first = b.states && embed_optimizer_splits(cfg);
  for (i = b.n; rc == SQLITE_OK && b.states_first && i < k; i++)
    rc = train_state_first(st, &b, &states, b.ids[i], i, sp.sum, &wrote, &zErr);
  while (rc == SQLITE_OK && b.n < k)
    rc = train_step_in_place(st, who, &b, &many,
                             b.states && !b.states_first ? &states : 0,
                             b.ids[b.n], sp.sum, lr, 0, &wrote, &zErr);
  /* A failure while computing puts back the rows written so far (the
  ** call's own transaction is rolled back instead); one in writing the
  ** rest rolls back. */
  if (rc && wrote && own != EMBED_TRAIN_CALL_TRANSACTION && b.written == b.n &&
      train_undo(&b, &many, &states) == SQLITE_OK)
    wrote = 0;
  if (rc == SQLITE_OK) rc = train_write_batch(st, &b, &states, &wrote, &zErr);
  if (rc == SQLITE_OK && marks) rc = train_mark_rows(st, &b, marked, n_marked);
done:
  embed_rows_close(&many);
  embed_rows_close(&states);
  rc = embed_train_call_end(st, own, rc, wrote, who, &zErr);
  *changed = rc == SQLITE_OK ? b.n : 0;
  if (rc && !zErr && rc != SQLITE_NOMEM) {
    zErr = sqlite3_mprintf("%s: embedding %s: %s", who, embed_store_name(st),
                           sqlite3_errcode(embed_store_db(st)) != SQLITE_OK
                               ? sqlite3_errmsg(embed_store_db(st))
                               : sqlite3_errstr(rc));
    if (!zErr) rc = SQLITE_NOMEM;
  }
  *pzErr = zErr;
  /* kept for the next call inside the caller's transaction */
  if (sp.scratch)
    embed_store_scratch_release(st,
                                !sqlite3_get_autocommit(embed_store_db(st)));
  sqlite3_free(sp.heap);
  sqlite3_free(extra);
  if (marked_owned) sqlite3_free(marked);
  if (grads_owned) sqlite3_free((void *)grads);
  sqlite3_free(ids.many);
  return rc;
}

void embed_train_update(sqlite3_context *ctx, embed_store *st,
                        sqlite3_value *idv, sqlite3_value *gradv,
                        sqlite3_value *lrv) {
  int64_t changed = 0;
  char *zErr = 0;
  int rc =
      embed_train_step(st, "embed_update", idv, gradv, lrv, &changed, &zErr);
  if (rc == SQLITE_OK)
    sqlite3_result_int64(ctx, changed);
  else
    embed_result_error(ctx, rc, zErr);
}

/* ------------------------------------------------------------ bound forms */

/* embed_lookup(id) and embed_update(id, grad, lr), bound by xFindFunction
** to the table (user data) whose column is the first argument. */
static void train_lookup_bound(sqlite3_context *ctx, int argc,
                               sqlite3_value **argv) {
  (void)argc;
  embed_train_lookup(ctx, (embed_store *)sqlite3_user_data(ctx), argv[0]);
}

static void train_update_bound(sqlite3_context *ctx, int argc,
                               sqlite3_value **argv) {
  (void)argc;
  embed_train_update(ctx, (embed_store *)sqlite3_user_data(ctx), argv[0],
                     argv[1], argv[2]);
}

void (*embed_train_bound_function(const char *name,
                                  int nArg))(sqlite3_context *, int,
                                             sqlite3_value **) {
  if (nArg == 1 && sqlite3_stricmp(name, "embed_lookup") == 0)
    return train_lookup_bound;
  if (nArg == 3 && sqlite3_stricmp(name, "embed_update") == 0)
    return train_update_bound;
  return 0;
}
