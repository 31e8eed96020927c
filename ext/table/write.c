/*
** write.c - INSERT, UPDATE and DELETE on the `embedding` virtual table
** (xUpdate).
**
** Usage:
**
**     INSERT INTO tok(id) VALUES (10);                 -- initialized row
**     INSERT INTO tok(id, vector) VALUES (11, '[1, 2, 3, 4]');
**     INSERT INTO tok(vector) VALUES (:v);             -- id = max(id) + 1
**     INSERT OR REPLACE INTO tok(id, vector) VALUES (11, :v);
**     UPDATE tok SET vector = embed_scale(vector, 2) WHERE id = 11;
**     UPDATE tok SET id = 12 WHERE id = 11;            -- moves the state too
**     DELETE FROM tok WHERE id = 12;
**
** Design: the id comes from the id column or the rowid (both must agree);
** a vector is a BLOB or JSON text of the table's dimension, checked before
** anything is written (a valid float32 BLOB is stored as given, without a
** copy); a row inserted without a vector gets its seeded initial value
** (core/initializer.c), zeros for padding_idx. Duplicate ids follow the
** statement's conflict mode, as on ordinary tables. The hidden search
** columns cannot be written. Each change is one or two nested statements of
** the storage layer, inside the statement's own transaction, and every
** changed id is noted in the change log's buffer (store_log.c), which the
** module flushes at commit and at each savepoint.
*/
#include <string.h>

#include "table/module.h"

/* The id an INSERT gives (rowid and/or id column; both must agree), or an
** UPDATE gives (whichever of the two differs from the old id). */
static int write_id(embed_vtab *tab, sqlite3_value *old, sqlite3_value *rowid,
                    sqlite3_value *idcol, int *given, int64_t *id) {
  const char *name = embed_store_name(tab->st);
  sqlite3_value *v = idcol;
  int64_t a, b;
  if (old) { /* UPDATE: SET id = x and SET rowid = x both arrive here */
    int64_t was = sqlite3_value_int64(old);
    if (sqlite3_value_type(idcol) == SQLITE_INTEGER &&
        sqlite3_value_int64(idcol) == was)
      v = rowid;
  } else if (sqlite3_value_type(idcol) == SQLITE_NULL) {
    v = rowid;
  }
  *given = sqlite3_value_type(v) != SQLITE_NULL;
  if (!*given) {
    if (!old) return SQLITE_OK;
    return embed_vtab_error(
        tab, SQLITE_CONSTRAINT,
        sqlite3_mprintf("NOT NULL constraint failed: %s.id", name));
  }
  if (sqlite3_value_type(v) == SQLITE_INTEGER) {
    *id = sqlite3_value_int64(v);
  } else if (sqlite3_value_type(v) == SQLITE_FLOAT &&
             embed_value_as_id(v, id)) {
    /* integral REAL: accepted as the integer it equals */
  } else {
    return embed_vtab_error(
        tab, SQLITE_MISMATCH,
        sqlite3_mprintf("embedding %s: id must be an integer, got %s", name,
                        embed_type_name(sqlite3_value_type(v))));
  }
  if (!old && v == idcol && sqlite3_value_type(rowid) != SQLITE_NULL &&
      embed_value_as_id(rowid, &a) && a != *id)
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: rowid %lld and id %lld differ", name,
                        (long long)a, (long long)*id));
  if (old && v == idcol && embed_value_as_id(rowid, &b) &&
      b != sqlite3_value_int64(old) && b != *id)
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: rowid %lld and id %lld differ", name,
                        (long long)b, (long long)*id));
  return SQLITE_OK;
}

/* Parse and check a vector written to the table. */
static int write_vector(embed_vtab *tab, sqlite3_value *val, embed_vec *out) {
  const char *name = embed_store_name(tab->st);
  int64_t dim = embed_store_config(tab->st)->dim;
  char *zErr = 0;
  int rc = embed_vec_from_value(val, embed_store_label(tab->st), out, &zErr);
  if (rc) return embed_vtab_error(tab, rc, zErr);
  if (out->v && out->dim != dim) {
    rc = embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: dimension mismatch (%lld vs %lld)", name,
                        (long long)out->dim, (long long)dim));
    embed_vec_free(out);
  }
  return rc;
}

/* UPDATE ... SET id = new: move the row, honouring the conflict mode. */
static int write_move(embed_vtab *tab, int64_t old_id, int64_t new_id) {
  embed_store *st = tab->st;
  int rc = embed_store_exists(st, new_id);
  if (rc == SQLITE_OK) { /* target exists */
    if (sqlite3_vtab_on_conflict(embed_store_db(st)) != SQLITE_REPLACE)
      return embed_vtab_error(tab, SQLITE_CONSTRAINT,
                              sqlite3_mprintf("UNIQUE constraint failed: %s.id",
                                              embed_store_name(st)));
    rc = embed_store_delete(st, new_id);
    if (rc) return rc;
  } else if (rc != SQLITE_NOTFOUND) {
    return rc;
  }
  return embed_store_move(st, old_id, new_id);
}

static int write_insert(embed_vtab *tab, int given, int64_t id,
                        sqlite3_value *given_vector, sqlite_int64 *pRowid) {
  embed_store *st = tab->st;
  const embed_config *cfg = embed_store_config(st);
  embed_vec vec = {0, 0};
  const void *raw = 0;
  embed_error err;
  char *zErr = 0;
  int rc = SQLITE_OK;
  if (sqlite3_value_type(given_vector) == SQLITE_BLOB &&
      sqlite3_value_bytes(given_vector) == cfg->dim * EMBED_FLOAT_BYTES &&
      embed_blob_check(sqlite3_value_blob(given_vector), cfg->dim, &err) ==
          EMBED_OK) {
    raw = sqlite3_value_blob(given_vector); /* stored as given */
  } else {
    rc = write_vector(tab, given_vector, &vec);
    if (rc) return rc;
  }
  if (!given) {
    rc = embed_store_next_id(st, &id, &zErr);
    if (rc && zErr) rc = embed_vtab_error(tab, rc, zErr);
  }
  if (rc == SQLITE_OK && !vec.v && !raw) {
    vec.v =
        (float *)sqlite3_malloc64((sqlite3_uint64)cfg->dim * EMBED_FLOAT_BYTES);
    if (!vec.v) {
      rc = SQLITE_NOMEM;
    } else if (cfg->has_padding_idx && id == cfg->padding_idx) {
      memset(vec.v, 0, (size_t)cfg->dim * EMBED_FLOAT_BYTES);
    } else {
      embed_initial_row(cfg->init, (uint64_t)cfg->seed, id, vec.v, cfg->dim);
    }
  }
  if (rc == SQLITE_OK) rc = embed_store_log_note(st, id);
  if (rc == SQLITE_OK) {
    rc =
        embed_store_insert(st, id, vec.v, raw,
                           sqlite3_vtab_on_conflict(embed_store_db(st)), &zErr);
    if (rc && zErr) rc = embed_vtab_error(tab, rc, zErr);
  }
  if (rc == SQLITE_OK) *pRowid = id;
  embed_vec_free(&vec);
  return rc;
}

static int write_update(embed_vtab *tab, int64_t old_id, int64_t id,
                        sqlite3_value *vector) {
  embed_vec vec = {0, 0};
  int rc = SQLITE_OK;
  int vector_changed = !sqlite3_value_nochange(vector);
  if (vector_changed) {
    rc = write_vector(tab, vector, &vec);
    if (rc) return rc;
    if (!vec.v)
      return embed_vtab_error(
          tab, SQLITE_CONSTRAINT,
          sqlite3_mprintf("NOT NULL constraint failed: %s.vector",
                          embed_store_name(tab->st)));
  }
  rc = embed_store_log_note(tab->st, old_id);
  if (rc == SQLITE_OK && id != old_id) rc = embed_store_log_note(tab->st, id);
  if (rc == SQLITE_OK && id != old_id) rc = write_move(tab, old_id, id);
  if (rc == SQLITE_OK && vector_changed)
    rc = embed_store_write(tab->st, id, vec.v);
  embed_vec_free(&vec);
  return rc;
}

static int write_row(embed_vtab *tab, int argc, sqlite3_value **argv,
                     sqlite_int64 *pRowid) {
  int64_t id = 0;
  int given = 0, rc;
  if (argc == 1) {
    rc = embed_store_log_note(tab->st, sqlite3_value_int64(argv[0]));
    return rc ? rc : embed_store_delete(tab->st, sqlite3_value_int64(argv[0]));
  }
  if (argc > 2 + COL_COMMAND &&
      sqlite3_value_type(argv[2 + COL_COMMAND]) != SQLITE_NULL)
    return embed_command_run(tab, argc, argv, pRowid); /* command.c */
  if (sqlite3_value_type(argv[2 + COL_NPROBE]) != SQLITE_NULL)
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf(
            "embedding %s: nprobe is a search column and cannot be written",
            embed_store_name(tab->st)));
  if (sqlite3_value_type(argv[2 + COL_DISTANCE]) != SQLITE_NULL ||
      sqlite3_value_type(argv[2 + COL_K]) != SQLITE_NULL)
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf(
            "embedding %s: distance and k are search columns and cannot be written",
            embed_store_name(tab->st)));
  if (sqlite3_value_type(argv[2 + COL_LR]) != SQLITE_NULL)
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf(
            "embedding %s: lr is an argument of the step command: INSERT INTO %s(%s, id, vector, lr) VALUES ('step', ids, grads, lr)",
            embed_store_name(tab->st), embed_store_name(tab->st),
            embed_store_name(tab->st)));
  rc = write_id(tab, sqlite3_value_type(argv[0]) == SQLITE_NULL ? 0 : argv[0],
                argv[1], argv[2 + COL_ID], &given, &id);
  if (rc) return rc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
    return write_insert(tab, given, id, argv[2 + COL_VECTOR], pRowid);
  return write_update(tab, sqlite3_value_int64(argv[0]), id,
                      argv[2 + COL_VECTOR]);
}

int embedUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                sqlite_int64 *pRowid) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  return embed_vtab_named(tab, write_row(tab, argc, argv, pRowid));
}
