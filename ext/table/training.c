/*
** training.c - embed_lookup (the forward pass) and embed_update (one
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
** Semantics (SPEC section 5):
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
** Flags: embed_update is DIRECTONLY (it writes); embed_lookup is neither
** DETERMINISTIC nor INNOCUOUS (it reads a table).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "table/table.h"

/* ------------------------------------------------------------ arguments */

/* What an id argument is: one id, a JSON array of ids, or SQL NULL. */
typedef struct id_arg {
  int is_null;
  int is_batch;
  int64_t one;
  int64_t *many; /* sqlite3_malloc64'd when is_batch */
  int64_t n;
} id_arg;

static int fail_msg(char **pzErr, char *zMsg) {
  *pzErr = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

static int read_ids(sqlite3_value *v, const char *who, id_arg *out,
                    char **pzErr) {
  int type = sqlite3_value_type(v);
  memset(out, 0, sizeof(*out));
  if (type == SQLITE_NULL) {
    out->is_null = 1;
    return SQLITE_OK;
  }
  if (type == SQLITE_INTEGER) {
    out->one = sqlite3_value_int64(v);
    out->n = 1;
    return SQLITE_OK;
  }
  if (type == SQLITE_TEXT) {
    const char *text = (const char *)sqlite3_value_text(v);
    int64_t len = sqlite3_value_bytes(v), cap;
    embed_error err;
    if (!text) return SQLITE_NOMEM;
    cap = embed_json_capacity(text, len);
    if (cap > EMBED_MAX_BATCH) cap = EMBED_MAX_BATCH + 1;
    out->many = (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * 8);
    if (!out->many) return SQLITE_NOMEM;
    if (embed_json_parse_ids(text, len, out->many, cap, &out->n, &err)) {
      sqlite3_free(out->many);
      out->many = 0;
      if (err.code == EMBED_E_EMPTY)
        return fail_msg(pzErr, sqlite3_mprintf("%s: empty id array", who));
      if (err.code == EMBED_E_JSON)
        return fail_msg(pzErr,
                        sqlite3_mprintf("%s: malformed JSON id array at "
                                        "offset %lld (expected %s)",
                                        who, (long long)err.a, err.what));
      *pzErr = embed_error_text(who, &err);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    out->is_batch = 1;
    return SQLITE_OK;
  }
  return fail_msg(pzErr, sqlite3_mprintf("%s: id must be an INTEGER or a JSON "
                                         "array of ids, got %s",
                                         who, embed_type_name(type)));
}

static int missing_id(embed_vtab *tab, const char *who, int64_t id,
                      char **pzErr) {
  return fail_msg(pzErr, sqlite3_mprintf("%s: no id %lld in embedding %s", who,
                                         (long long)id, tab->name));
}

/* Read row id, apply max_norm; errors name who, the id and the table.
** With `many` (a batch), rows are read through one blob handle. */
static int read_row(embed_vtab *tab, const char *who, int64_t id, float *out,
                    embed_rows *many, int looked_up, char **pzErr) {
  int rc = many ? embed_rows_seek(many, id, pzErr)
                : embed_table_read(tab, id, out, pzErr);
  if (many && rc == SQLITE_OK) rc = embed_rows_read(many, out, pzErr);
  if (rc == SQLITE_NOTFOUND) return missing_id(tab, who, id, pzErr);
  if (rc) {
    if (!*pzErr)
      *pzErr = sqlite3_mprintf("%s: %s", who, sqlite3_errmsg(tab->db));
    return rc;
  }
  if (tab->cfg.max_norm > 0 && looked_up) /* the forward pass renorms */
    embed_renorm(out, tab->cfg.dim, tab->cfg.max_norm, tab->cfg.norm_type);
  return SQLITE_OK;
}

/* --------------------------------------------------------------- lookup */

static void lookup(sqlite3_context *ctx, embed_vtab *tab, sqlite3_value *idv) {
  static const char who[] = "embed_lookup";
  embed_rows many;
  id_arg ids;
  char *zErr = 0;
  float *out = 0;
  int64_t dim = tab->cfg.dim, i;
  int rc = read_ids(idv, who, &ids, &zErr);
  if (rc) goto done;
  if (ids.is_null) return;
  if (ids.is_batch) {
    sqlite3_int64 limit = sqlite3_limit(tab->db, SQLITE_LIMIT_LENGTH, -1);
    if (ids.n > limit / 4 / dim) {
      rc = fail_msg(&zErr,
                    sqlite3_mprintf("%s: %lld x %lld floats exceed "
                                    "SQLite's length limit",
                                    who, (long long)ids.n, (long long)dim));
      goto done;
    }
  }
  out = (float *)sqlite3_malloc64((sqlite3_uint64)ids.n * dim * 4);
  if (!out) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  embed_rows_init(&many, tab, 0);
  for (i = 0; rc == SQLITE_OK && i < ids.n; i++)
    rc = read_row(tab, who, ids.is_batch ? ids.many[i] : ids.one, out + i * dim,
                  ids.n > 1 ? &many : 0, 1, &zErr);
  embed_rows_close(&many);
  if (rc == SQLITE_OK) embed_result_vector(ctx, out, ids.n * dim);
done:
  if (rc) embed_result_error(ctx, rc, zErr);
  sqlite3_free(out);
  sqlite3_free(ids.many);
}

/* --------------------------------------------------------------- update */

/* One id of a batch with its position in the call, for coalescing. */
typedef struct id_pos {
  int64_t id;
  int64_t pos;
} id_pos;

static int compare_id_pos(const void *a, const void *b) {
  const id_pos *x = (const id_pos *)a, *y = (const id_pos *)b;
  if (x->id != y->id) return x->id < y->id ? -1 : 1;
  return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Read the gradient argument: n rows of dim floats (n = 1 for one id). */
static int read_grads(embed_vtab *tab, const char *who, sqlite3_value *v,
                      int64_t n, int batch, float **out, char **pzErr) {
  int64_t dim = tab->cfg.dim;
  int type = sqlite3_value_type(v);
  embed_error err;
  *out = 0;
  if (!batch) {
    embed_vec g;
    int rc = embed_vec_from_value(v, who, &g, pzErr);
    if (rc) return rc;
    if (!g.v)
      return fail_msg(pzErr, sqlite3_mprintf("%s: gradient is NULL", who));
    if (g.dim != dim) {
      int64_t got = g.dim;
      embed_vec_free(&g);
      return fail_msg(pzErr, sqlite3_mprintf("%s: dimension mismatch "
                                             "(gradient %lld vs embedding "
                                             "%s %lld)",
                                             who, (long long)got, tab->name,
                                             (long long)dim));
    }
    *out = g.v;
    return SQLITE_OK;
  }
  *out = (float *)sqlite3_malloc64((sqlite3_uint64)n * dim * 4);
  if (!*out) return SQLITE_NOMEM;
  if (type == SQLITE_BLOB) {
    int64_t nbytes = sqlite3_value_bytes(v);
    if (nbytes != n * dim * 4) {
      return fail_msg(
          pzErr, sqlite3_mprintf("%s: gradient BLOB has %lld "
                                 "bytes, expected %lld ids x %lld "
                                 "floats = %lld",
                                 who, (long long)nbytes, (long long)n,
                                 (long long)dim, (long long)(n * dim * 4)));
    }
    if (embed_blob_decode(sqlite3_value_blob(v), n * dim, *out, &err)) {
      *pzErr = embed_error_text(who, &err);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    return SQLITE_OK;
  }
  if (type == SQLITE_TEXT) {
    const char *text = (const char *)sqlite3_value_text(v);
    int64_t len = sqlite3_value_bytes(v), rows = 0, cols = 0;
    if (!text) return SQLITE_NOMEM;
    if (embed_json_parse_floats(text, len, 1, *out, n * dim, &rows, &cols,
                                &err)) {
      if (err.code == EMBED_E_TOO_LONG)
        return fail_msg(pzErr,
                        sqlite3_mprintf("%s: gradients have more "
                                        "than %lld ids x %lld floats",
                                        who, (long long)n, (long long)dim));
      *pzErr = embed_error_text(who, &err);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
    if (rows != n || cols != dim)
      return fail_msg(pzErr,
                      sqlite3_mprintf("%s: gradients are %lld x %lld, "
                                      "expected %lld ids x %lld",
                                      who, (long long)rows, (long long)cols,
                                      (long long)n, (long long)dim));
    return SQLITE_OK;
  }
  return fail_msg(pzErr, sqlite3_mprintf("%s: gradients must be a BLOB of n "
                                         "x D float32 or a JSON array of "
                                         "arrays, got %s",
                                         who, embed_type_name(type)));
}

static int is_padding(embed_vtab *tab, int64_t id) {
  return tab->cfg.has_padding_idx && id == tab->cfg.padding_idx;
}

/* Is a statement that writes running on db? Then our writes are already
** inside its (statement) transaction. */
static int writer_running(sqlite3 *db) {
  sqlite3_stmt *stmt = 0;
  while ((stmt = sqlite3_next_stmt(db, stmt)) != 0)
    if (sqlite3_stmt_busy(stmt) && !sqlite3_stmt_readonly(stmt)) return 1;
  return 0;
}

/* The rows one embed_update call changes, computed before any is written. */
typedef struct step_batch {
  int64_t dim, state_size;
  int64_t n;     /* rows computed so far */
  int64_t *ids;  /* [n] */
  float *rows;   /* [n x dim] new weights */
  float *states; /* [n x state_size] new optimizer states */
  int64_t step;  /* the table's step count after this call; 0: unused */
} step_batch;

/* The table's optimizer step count (adagrad and adam). */
static int read_step(embed_vtab *tab, int64_t *step, char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, STMT_STEP_READ, &stmt);
  if (rc) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    /* an integer >= 0 below INT64_MAX, stored as INTEGER or as its text */
    sqlite3_value *v = sqlite3_column_value(stmt, 0);
    int type = sqlite3_value_numeric_type(v);
    *step = sqlite3_value_int64(v);
    rc = type == SQLITE_INTEGER && *step >= 0 && *step < INT64_MAX
             ? SQLITE_OK
             : SQLITE_CORRUPT_VTAB;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_CORRUPT_VTAB;
  }
  sqlite3_reset(stmt);
  if (rc == SQLITE_CORRUPT_VTAB)
    *pzErr = sqlite3_mprintf(
        "embedding %s: corrupt %s_config: bad step "
        "count",
        tab->name, tab->name);
  return rc;
}

/* Row id's optimizer state into st (n floats); a row never stepped gets
** the optimizer's initial state. */
static int read_state(embed_vtab *tab, int64_t id, float *st, int64_t n,
                      char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, STMT_STATE_READ, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    embed_error err;
    if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
        sqlite3_column_bytes(stmt, 0) != n * 4 ||
        embed_blob_decode(sqlite3_column_blob(stmt, 0), n, st, &err)) {
      *pzErr = sqlite3_mprintf(
          "embedding %s: corrupt optimizer state for "
          "id %lld (%d bytes, expected %lld finite "
          "floats)",
          tab->name, (long long)id, sqlite3_column_bytes(stmt, 0),
          (long long)n);
      rc = *pzErr ? SQLITE_CORRUPT_VTAB : SQLITE_NOMEM;
    } else {
      rc = SQLITE_OK;
    }
  } else if (rc == SQLITE_DONE) {
    embed_optimizer_state_init(&tab->cfg, st, tab->cfg.dim);
    rc = SQLITE_OK;
  }
  sqlite3_reset(stmt);
  return rc;
}

/* One optimizer step on row id (already read into the batch's next slot)
** with the coalesced gradient g; fails if a result is not finite. */
static int step_row(embed_vtab *tab, const char *who, step_batch *b, int64_t id,
                    float *g, double lr, char **pzErr) {
  float *w = b->rows + b->n * b->dim;
  float *st = b->states ? b->states + b->n * b->state_size : 0;
  int64_t bad;
  int rc = st ? read_state(tab, id, st, b->state_size, pzErr) : 0;
  if (rc) return rc;
  embed_optimizer_step(&tab->cfg, w, g, st, lr, b->step, b->dim);
  bad = embed_first_nonfinite(w, b->dim);
  if (bad >= 0)
    return fail_msg(pzErr, sqlite3_mprintf("%s: the step makes element %lld "
                                           "of id %lld not finite; nothing "
                                           "was changed",
                                           who, (long long)bad, (long long)id));
  if (st && embed_first_nonfinite(st, b->state_size) >= 0)
    return fail_msg(pzErr, sqlite3_mprintf("%s: the step makes the optimizer "
                                           "state of id %lld not finite; "
                                           "nothing was changed",
                                           who, (long long)id));
  b->ids[b->n++] = id;
  return SQLITE_OK;
}

/* Write the batch: rows, optimizer states, step count (inside the call's
** transaction, see call_begin). */
static int write_batch(embed_vtab *tab, const step_batch *b, int *wrote,
                       char **pzErr) {
  sqlite3_stmt *stmt;
  int64_t i;
  int rc = SQLITE_OK;
  if (b->n > 1) { /* in place, through one blob handle */
    embed_rows many;
    embed_rows_init(&many, tab, 1);
    for (i = 0; rc == SQLITE_OK && i < b->n; i++) {
      rc = embed_rows_seek(&many, b->ids[i], pzErr);
      if (rc == SQLITE_OK)
        rc = embed_rows_write(&many, b->rows + i * b->dim, pzErr);
      if (rc == SQLITE_OK) *wrote = 1;
    }
    embed_rows_close(&many);
  } else if (b->n == 1 && rc == SQLITE_OK) {
    rc = embed_table_write(tab, b->ids[0], b->rows);
    if (rc == SQLITE_OK) *wrote = 1;
  }
  for (i = 0; rc == SQLITE_OK && b->states && i < b->n; i++) {
    rc = embed_table_stmt(tab, STMT_STATE_WRITE, &stmt);
    if (rc) break;
    sqlite3_bind_int64(stmt, 1, b->ids[i]);
    sqlite3_bind_blob64(stmt, 2, b->states + i * b->state_size,
                        (sqlite3_uint64)b->state_size * 4, SQLITE_STATIC);
    rc = sqlite3_step(stmt) == SQLITE_DONE ? SQLITE_OK : sqlite3_reset(stmt);
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
  }
  if (rc == SQLITE_OK && b->step) {
    rc = embed_table_stmt(tab, STMT_STEP_WRITE, &stmt);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(stmt, 1, b->step);
      rc = sqlite3_step(stmt) == SQLITE_DONE ? SQLITE_OK : sqlite3_reset(stmt);
      sqlite3_reset(stmt);
    }
  }
  return rc;
}

/* In autocommit mode, from a statement that does not write (SELECT
** embed_update(...)), nothing would hold one transaction around the call's
** reads and writes: each nested statement would run in its own, another
** connection could commit in between, and a step computed from rows read
** before would overwrite its work. The call therefore begins an IMMEDIATE
** transaction (the write lock first, waiting as the busy timeout allows)
** before its first read and commits it after its last write: a conflict is
** then SQLITE_BUSY, and nothing changes. Inside the caller's transaction a
** savepoint makes the call all or nothing; inside a writing statement, that
** statement's own journal does. */
enum { CALL_NONE, CALL_TRANSACTION, CALL_INSIDE };

/* Run a prepared transaction-control statement. */
static int run_control(embed_vtab *tab, embed_stmt which) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, which, &stmt);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(stmt);
    rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_reset(stmt);
    sqlite3_reset(stmt);
  }
  return rc;
}

/* Finalize and prepare again the control statement `which`: a cached one
** that a schema change expired would have to be prepared again when run,
** which SQLite refuses after an out-of-memory error. */
static int fresh_control(embed_vtab *tab, embed_stmt which) {
  sqlite3_stmt *unused;
  sqlite3_finalize(tab->stmt[which]);
  tab->stmt[which] = 0;
  return embed_table_stmt(tab, which, &unused);
}

/* several: the call may write more than one statement's worth (a batch,
** optimizer state, a step count); a single-row write is atomic alone. */
static int call_begin(embed_vtab *tab, int several, int *mode) {
  sqlite3 *db = tab->db;
  int rc;
  *mode = CALL_NONE;
  if (writer_running(db)) return SQLITE_OK; /* its statement journal */
  if (sqlite3_get_autocommit(db)) {
    rc = fresh_control(tab, STMT_ROLLBACK);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
    if (rc == SQLITE_OK) *mode = CALL_TRANSACTION;
    return rc;
  }
  if (!several) return SQLITE_OK; /* one write statement is atomic alone */
  /* Inside the caller's transaction no savepoint: its sub-journal would
  ** copy every page the call touches. A write that fails after others
  ** succeeded rolls the transaction back instead, as SQLite itself does
  ** after an I/O or out-of-memory error. */
  rc = fresh_control(tab, STMT_ROLLBACK);
  if (rc == SQLITE_OK) *mode = CALL_INSIDE;
  return rc;
}

/* wrote: some write of the call succeeded before rc. */
static int call_end(embed_vtab *tab, int mode, int rc, int wrote,
                    const char *who, char **pzErr) {
  sqlite3 *db = tab->db;
  if (mode == CALL_TRANSACTION && rc == SQLITE_OK)
    rc = sqlite3_exec(db, "COMMIT", 0, 0, 0);
  if (rc == SQLITE_OK || mode == CALL_NONE) return rc;
  if (mode == CALL_TRANSACTION) { /* the call's alone: end it */
    if (!*pzErr)
      *pzErr = sqlite3_mprintf("%s: %s; nothing was changed", who,
                               sqlite3_errmsg(db));
    run_control(tab, STMT_ROLLBACK);
  } else if (wrote) { /* half a call must not stay in the transaction */
    char *why =
        *pzErr ? *pzErr : sqlite3_mprintf("%s: %s", who, sqlite3_errmsg(db));
    *pzErr = sqlite3_mprintf("%s; the transaction was rolled back", why);
    sqlite3_free(why);
    run_control(tab, STMT_ROLLBACK);
  }
  return rc;
}

/* Sum the gradients of the group order[i..j) (one id) into the slot of
** the group's first occurrence, divided by the count with
** scale_grad_by_freq (each gradient divided, then summed, as torch). */
static float *coalesce(embed_vtab *tab, float *grads, const id_pos *order,
                       int64_t i, int64_t j) {
  int64_t dim = tab->cfg.dim, count = j - i, k, e;
  float *gsum = grads + order[i].pos * dim;
  int scale = tab->cfg.scale_grad_by_freq && count > 1;
  if (scale)
    for (e = 0; e < dim; e++) gsum[e] /= (float)count;
  for (k = i + 1; k < j; k++) {
    const float *g = grads + order[k].pos * dim;
    for (e = 0; e < dim; e++) gsum[e] += scale ? g[e] / (float)count : g[e];
  }
  return gsum;
}

/* The ids (ascending) a step moves besides the batch's, as torch does:
** rows with a momentum buffer, or every row under weight_decay. */
static int untouched_rows(embed_vtab *tab, int64_t **out, int64_t *n) {
  int which = embed_optimizer_steps_untouched_rows(&tab->cfg);
  sqlite3_stmt *stmt = 0;
  int64_t cap = 0, *ids = 0;
  int rc;
  char *zSql;
  *out = 0;
  *n = 0;
  if (!which) return SQLITE_OK;
  zSql =
      sqlite3_mprintf("SELECT id FROM \"%w\".\"%w_%s\" ORDER BY id",
                      tab->schema, tab->name, which == 2 ? "vectors" : "state");
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(tab->db, zSql, -1, &stmt, 0);
  sqlite3_free(zSql);
  while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    if (*n == cap) {
      int64_t *grown;
      cap = cap ? 2 * cap : 64;
      grown = (int64_t *)sqlite3_realloc64(ids, (sqlite3_uint64)cap * 8);
      if (!grown) {
        rc = SQLITE_NOMEM;
        break;
      }
      ids = grown;
    }
    ids[(*n)++] = sqlite3_column_int64(stmt, 0);
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_finalize(stmt);
  else
    sqlite3_finalize(stmt);
  if (rc) {
    sqlite3_free(ids);
    *n = 0;
    return rc;
  }
  *out = ids;
  return SQLITE_OK;
}

static void update(sqlite3_context *ctx, embed_vtab *tab, sqlite3_value *idv,
                   sqlite3_value *gradv, sqlite3_value *lrv) {
  static const char who[] = "embed_update";
  id_arg ids;
  float *grads = 0;
  id_pos *order = 0;
  step_batch b;
  embed_rows many;
  int own = 0, wrote = 0;
  int64_t dim = tab->cfg.dim, i, j, n_groups = 0, n_extra = 0, *extra = 0;
  double lr = 0;
  char *zErr = 0;
  int rc;
  memset(&b, 0, sizeof(b));
  rc = read_ids(idv, who, &ids, &zErr);
  if (rc) goto done;
  if (ids.is_null) {
    rc = fail_msg(&zErr, sqlite3_mprintf("%s: id is NULL", who));
    goto done;
  }
  rc = embed_number_from_value(lrv, who, "lr", &lr, &zErr);
  if (rc == SQLITE_OK && lr < 0)
    rc = fail_msg(&zErr,
                  sqlite3_mprintf("%s: invalid learning rate %g", who, lr));
  if (rc == SQLITE_OK)
    rc = read_grads(tab, who, gradv, ids.n, ids.is_batch, &grads, &zErr);
  if (rc) goto done;

  rc = call_begin(tab,
                  ids.n > 1 || embed_optimizer_state_size(&tab->cfg, dim) > 0 ||
                      embed_optimizer_counts_steps(&tab->cfg) ||
                      embed_optimizer_steps_untouched_rows(&tab->cfg),
                  &own);
  if (rc) goto done;
  b.dim = dim;
  b.state_size = embed_optimizer_state_size(&tab->cfg, dim);
  if (embed_optimizer_counts_steps(&tab->cfg)) {
    rc = read_step(tab, &b.step, &zErr);
    if (rc) goto done;
    b.step++;
  }
  rc = untouched_rows(tab, &extra, &n_extra);
  if (rc) goto done;
  order = (id_pos *)sqlite3_malloc64((sqlite3_uint64)ids.n * sizeof(id_pos));
  b.ids = (int64_t *)sqlite3_malloc64((sqlite3_uint64)(ids.n + n_extra) * 8);
  b.rows =
      (float *)sqlite3_malloc64((sqlite3_uint64)(ids.n + n_extra) * dim * 4);
  if (b.state_size)
    b.states = (float *)sqlite3_malloc64((sqlite3_uint64)(ids.n + n_extra) *
                                         b.state_size * 4);
  if (!order || !b.ids || !b.rows || (b.state_size && !b.states)) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  /* Coalesce: order[] groups equal ids, keeping the call's order inside. */
  for (i = 0; i < ids.n; i++) {
    order[i].id = ids.is_batch ? ids.many[i] : ids.one;
    order[i].pos = i;
  }
  qsort(order, (size_t)ids.n, sizeof(id_pos), compare_id_pos);

  /* Compute every new row (and state) before writing any. */
  embed_rows_init(&many, tab, 0);
  for (i = 0; rc == SQLITE_OK && i < ids.n; i = j) {
    int64_t id = order[i].id;
    for (j = i; j < ids.n && order[j].id == id; j++) {
    }
    rc = read_row(tab, who, id, b.rows + b.n * dim, ids.n > 1 ? &many : 0, 1,
                  &zErr);
    if (rc == SQLITE_OK && !is_padding(tab, id))
      rc = step_row(tab, who, &b, id, coalesce(tab, grads, order, i, j), lr,
                    &zErr);
    order[n_groups++].id = id; /* compact: the batch's distinct ids */
  }
  /* Rows outside the batch that torch's step moves too, with g = 0. */
  for (i = 0, j = 0; rc == SQLITE_OK && i < n_extra; i++) {
    float *zero = grads; /* slot 0 is reused: zeroed below */
    while (j < n_groups && order[j].id < extra[i]) j++;
    if ((j < n_groups && order[j].id == extra[i]) || is_padding(tab, extra[i]))
      continue;
    memset(zero, 0, (size_t)dim * 4);
    rc = read_row(tab, who, extra[i], b.rows + b.n * dim, &many, 0, &zErr);
    if (rc == SQLITE_OK) rc = step_row(tab, who, &b, extra[i], zero, lr, &zErr);
  }
  embed_rows_close(&many);
  if (rc == SQLITE_OK) rc = write_batch(tab, &b, &wrote, &zErr);
done:
  rc = call_end(tab, own, rc, wrote, who, &zErr);
  if (rc == SQLITE_OK) sqlite3_result_int64(ctx, b.n);
  if (rc) {
    if (!zErr)
      zErr = sqlite3_mprintf("%s: embedding %s: %s", who, tab->name,
                             sqlite3_errcode(tab->db) != SQLITE_OK
                                 ? sqlite3_errmsg(tab->db)
                                 : sqlite3_errstr(rc));
    embed_result_error(ctx, rc, zErr);
  }
  sqlite3_free(order);
  sqlite3_free(extra);
  sqlite3_free(b.ids);
  sqlite3_free(b.rows);
  sqlite3_free(b.states);
  sqlite3_free(grads);
  sqlite3_free(ids.many);
}

/* ------------------------------------------------------- optimizer reset */

/* embed_optimizer_reset([table]): forget every row's optimizer state and
** the step count, as creating a new torch optimizer would. */
static void reset(sqlite3_context *ctx, embed_vtab *tab) {
  static const char who[] = "embed_optimizer_reset";
  sqlite3_int64 deleted = 0;
  char *zErr = 0;
  int mode, wrote = 0, rc = call_begin(tab, 1, &mode);
  if (rc == SQLITE_OK) {
    sqlite3_int64 before = sqlite3_total_changes64(tab->db);
    rc = run_control(tab, STMT_STATE_CLEAR);
    deleted = sqlite3_total_changes64(tab->db) - before;
    wrote = rc == SQLITE_OK;
  }
  if (rc == SQLITE_OK) {
    sqlite3_stmt *stmt;
    rc = embed_table_stmt(tab, STMT_STEP_WRITE, &stmt);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(stmt, 1, 0);
      rc = sqlite3_step(stmt) == SQLITE_DONE ? SQLITE_OK : sqlite3_reset(stmt);
      sqlite3_reset(stmt);
    }
  }
  rc = call_end(tab, mode, rc, wrote, who, &zErr);
  if (rc) {
    if (!zErr)
      zErr = sqlite3_mprintf("%s: embedding %s: %s", who, tab->name,
                             sqlite3_errstr(rc));
    embed_result_error(ctx, rc, zErr);
    return;
  }
  sqlite3_result_int64(ctx, deleted); /* rows of state dropped */
}

/* ------------------------------------------------------- SQL entry points */

/* embed_lookup(id) / embed_lookup(table, id) */
static void fn_lookup(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  embed_vtab *tab = 0;
  char *zErr = 0;
  int rc = embed_registry_resolve((embed_registry *)sqlite3_user_data(ctx),
                                  argc == 2 ? argv[0] : 0, "embed_lookup", &tab,
                                  &zErr);
  if (rc) {
    embed_result_error(ctx, rc, zErr);
    return;
  }
  lookup(ctx, tab, argv[argc - 1]);
}

/* embed_update(id, grad, lr) / embed_update(table, id, grad, lr) */
static void fn_update(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  embed_vtab *tab = 0;
  char *zErr = 0;
  int rc = embed_registry_resolve((embed_registry *)sqlite3_user_data(ctx),
                                  argc == 4 ? argv[0] : 0, "embed_update", &tab,
                                  &zErr);
  if (rc) {
    embed_result_error(ctx, rc, zErr);
    return;
  }
  update(ctx, tab, argv[argc - 3], argv[argc - 2], argv[argc - 1]);
}

/* embed_optimizer_reset() / embed_optimizer_reset(table) */
static void fn_reset(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  embed_vtab *tab = 0;
  char *zErr = 0;
  int rc = embed_registry_resolve((embed_registry *)sqlite3_user_data(ctx),
                                  argc == 1 ? argv[0] : 0,
                                  "embed_optimizer_reset", &tab, &zErr);
  if (rc) {
    embed_result_error(ctx, rc, zErr);
    return;
  }
  reset(ctx, tab);
}

/* The same, bound by xFindFunction to the table whose column is argument 1. */
static void fn_lookup_bound(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv) {
  (void)argc;
  lookup(ctx, (embed_vtab *)sqlite3_user_data(ctx), argv[0]);
}

static void fn_update_bound(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv) {
  (void)argc;
  update(ctx, (embed_vtab *)sqlite3_user_data(ctx), argv[0], argv[1], argv[2]);
}

void (*embed_training_bound_function(const char *name,
                                     int nArg))(sqlite3_context *, int,
                                                sqlite3_value **) {
  if (nArg == 1 && sqlite3_stricmp(name, "embed_lookup") == 0)
    return fn_lookup_bound;
  if (nArg == 3 && sqlite3_stricmp(name, "embed_update") == 0)
    return fn_update_bound;
  return 0;
}

int embed_register_training(sqlite3 *db, embed_registry *registry) {
  static const struct {
    const char *name;
    int nArg, flags;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
  } fns[] = {
      {"embed_lookup", 1, 0, fn_lookup},
      {"embed_lookup", 2, 0, fn_lookup},
      {"embed_update", 3, SQLITE_DIRECTONLY, fn_update},
      {"embed_update", 4, SQLITE_DIRECTONLY, fn_update},
      {"embed_optimizer_reset", 0, SQLITE_DIRECTONLY, fn_reset},
      {"embed_optimizer_reset", 1, SQLITE_DIRECTONLY, fn_reset},
  };
  size_t i;
  int rc = SQLITE_OK;
  for (i = 0; rc == SQLITE_OK && i < sizeof(fns) / sizeof(fns[0]); i++)
    rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].nArg,
                                    SQLITE_UTF8 | fns[i].flags, registry,
                                    fns[i].fn, 0, 0, 0);
  return rc;
}
