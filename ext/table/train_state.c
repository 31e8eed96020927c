/*
** train_state.c - the optimizer's state of a table's rows, as SQL sees it:
** embed_optimizer_state (one row's state, as the next step starts from it)
** and embed_optimizer_reset (every row's state forgotten, as a new torch
** optimizer would start).
**
** Usage:
**
**     SELECT embed_optimizer_state('tok', 3);  -- BLOB: sum (adagrad), m then
**                                              -- v (adam), the momentum buffer
**     SELECT embed_optimizer_reset('tok');     -- rows whose state was reset
**
** Design: where the state is kept is the storage layer's (table/store.h):
** in each row after its weight (layout 3: adagrad and adam, from the row's
** insert; layout 4: sgd momentum, a T_state row marking the rows that have
** a buffer), or as a T_state row from the row's first step (tables of
** earlier layouts). Either way a row without a stored state
** steps from the optimizer's initial one, which embed_optimizer_state
** returns for it; sgd momentum has no buffer for a row before its first
** step (NULL), as torch's sparse buffer covers only the rows it has seen.
** Flags: embed_optimizer_state reads a table (neither DETERMINISTIC nor
** INNOCUOUS); embed_optimizer_reset writes (DIRECTONLY).
*/
#include <string.h>

#include "table/table.h"

/* Row id's state into out[n] (n > 0): SQLITE_OK, SQLITE_NOTFOUND (no such
** row), or an error; *none: the row has no momentum buffer yet. */
static int state_of_row(embed_store *st, int64_t id, float *out, int64_t n,
                        int *none, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  int rc;
  *none = 0;
  if (embed_store_state_in_row(st)) {
    embed_rows rows;
    float *row = (float *)sqlite3_malloc64((sqlite3_uint64)(cfg->dim + n) *
                                           EMBED_FLOAT_BYTES);
    if (!row) return SQLITE_NOMEM;
    embed_rows_init_record(&rows, st, 0);
    rc = embed_rows_seek(&rows, id, pzErr);
    if (rc == SQLITE_OK) rc = embed_rows_read(&rows, row, pzErr);
    if (rc == SQLITE_OK)
      memcpy(out, row + cfg->dim, (size_t)n * EMBED_FLOAT_BYTES);
    embed_rows_close(&rows);
    sqlite3_free(row);
    if (rc == SQLITE_OK && embed_store_state_marks(st)) {
      rc = embed_store_state_marked(st, id);
      *none = rc == SQLITE_NOTFOUND; /* momentum: no buffer before the */
      if (*none) rc = SQLITE_OK;     /* row's first step */
    }
    return rc;
  }
  rc = embed_store_exists(st, id);
  if (rc) return rc;
  rc = embed_store_state_read(st, id, out, n, pzErr);
  if (rc != SQLITE_NOTFOUND) return rc;
  if (embed_optimizer_steps_untouched_rows(cfg))
    *none = 1; /* momentum: no buffer before the row's first step */
  else
    embed_optimizer_state_init(cfg, out, cfg->dim);
  return SQLITE_OK;
}

void embed_train_state(sqlite3_context *ctx, embed_store *st,
                       sqlite3_value *idv) {
  static const char who[] = "embed_optimizer_state";
  const embed_config *cfg = embed_store_config(st);
  int64_t n = embed_optimizer_state_size(cfg, cfg->dim);
  embed_train_ids ids;
  float *state = 0;
  char *zErr = 0;
  int none = 0, rc = embed_train_read_ids(idv, who, &ids, &zErr);
  if (rc == SQLITE_OK && ids.is_batch)
    rc = embed_fail(&zErr, sqlite3_mprintf("%s: id must be one integer", who));
  if (rc || ids.is_null) goto done;
  if (n == 0) { /* the optimizer keeps none: NULL, for a row that exists */
    rc = embed_store_exists(st, ids.one);
    none = 1;
  } else {
    state = (float *)sqlite3_malloc64((sqlite3_uint64)n * EMBED_FLOAT_BYTES);
    rc = state ? state_of_row(st, ids.one, state, n, &none, &zErr)
               : SQLITE_NOMEM;
  }
  if (rc == SQLITE_NOTFOUND) {
    sqlite3_free(zErr);
    rc = embed_fail(&zErr,
                    sqlite3_mprintf("%s: no id %lld in embedding %s", who,
                                    (long long)ids.one, embed_store_name(st)));
  }
  if (rc == SQLITE_OK && !none) embed_result_vector(ctx, state, n);
done:
  if (rc) embed_result_error(ctx, rc, zErr);
  sqlite3_free(state);
  sqlite3_free(ids.many);
}

/* Forget every row's optimizer state and the step count, as creating a
** new torch optimizer would: embed_optimizer_reset([table]), and the
** table's reset-optimizer command. */
int embed_train_reset_state(embed_store *st, const char *who, int64_t *deleted,
                            char **pzErr) {
  int mode, wrote = 0, rc = embed_train_call_begin(st, 1, &mode);
  *deleted = 0;
  if (rc == SQLITE_OK) {
    rc = embed_store_state_clear(st, deleted, pzErr);
    /* states in the rows are rewritten one by one: a failure may follow
    ** writes (T_state's one DELETE undoes itself) */
    wrote = rc == SQLITE_OK || embed_store_state_in_row(st) > 0;
  }
  if (rc == SQLITE_OK) rc = embed_store_step_write(st, 0);
  rc = embed_train_call_end(st, mode, rc, wrote, who, pzErr);
  if (rc && rc != SQLITE_NOMEM && !*pzErr) { /* who names the table, or */
    sqlite3 *db = embed_store_db(st);        /* the message does */
    const char *why = sqlite3_errcode(db) != SQLITE_OK ? sqlite3_errmsg(db)
                                                       : sqlite3_errstr(rc);
    *pzErr =
        strcmp(who, embed_store_label(st)) == 0
            ? sqlite3_mprintf("%s: %s", who, why)
            : sqlite3_mprintf("%s: %s: %s", who, embed_store_label(st), why);
    if (!*pzErr) rc = SQLITE_NOMEM;
  }
  return rc;
}

void embed_train_reset(sqlite3_context *ctx, embed_store *st) {
  int64_t deleted = 0;
  char *zErr = 0;
  int rc =
      embed_train_reset_state(st, "embed_optimizer_reset", &deleted, &zErr);
  if (rc) {
    embed_result_error(ctx, rc, zErr);
    return;
  }
  sqlite3_result_int64(ctx, deleted); /* rows of state dropped */
}
