/*
** store_schema.c - the shadow tables of an embedding table: their names
** and DDL (spelled here once), creating them with the options and the
** first rows, opening them again (options read back and checked, every
** shadow table present), renaming and dropping them. Part of the storage
** layer (table/store.h documents the layout).
**
** Usage:
**
**     rc = embed_store_open(db, "main", "tok", &cfg, 1, &st, &zErr);  // CREATE
**     rc = embed_store_open(db, "main", "tok", 0, 0, &st, &zErr);  // CONNECT
**     rc = embed_store_rename(st, "tok2");
**     rc = embed_store_drop(st);
**     embed_store_close(st);
**
** Design: T_config holds one row per option in its stored text form
** (core/options.c prints and parses it), so reconnecting replays the
** options through the same parser as CREATE and a damaged row gets the
** same precise error; options a later version adds take their defaults
** when an older table lacks them. A table without its dim or seed, or with
** a padding_idx out of range, refuses to open, and so does one whose
** shadow tables are not all ordinary tables of their columns
** (store_check.c).
*/
#include <stdio.h>
#include <string.h>

#include "table/store_int.h"

/* The shadow tables, by suffix, with their columns. T_vectors' CHECK
** calls no function (every BLOB sorts at or after the empty BLOB, every
** other type before it, so `vector >= x''` holds exactly for a BLOB): a
** CHECK that calls a function (tables made before, `typeof(vector) =
** 'blob'`) makes SQLite give even an INSERT OR IGNORE of many rows a
** statement journal, and the insert buffer's flushes in a file would pay
** for one (store_stmt.c). */
static const struct {
  const char *suffix;
  const char *columns;
} store_shadow[STORE_N_SHADOW] = {
    [SHADOW_CONFIG] = {"config", "(key TEXT PRIMARY KEY, value) WITHOUT ROWID"},
    [SHADOW_VECTORS] =
        {"vectors",
         "(id INTEGER PRIMARY KEY, vector BLOB NOT NULL CHECK (vector >= x''))"},
    [SHADOW_STATE] =
        {"state",
         "(id INTEGER PRIMARY KEY, state BLOB NOT NULL CHECK (typeof(state) = 'blob'))"},
    [SHADOW_LOG] =
        {"log",
         "(seq INTEGER PRIMARY KEY, ids BLOB NOT NULL CHECK (typeof(ids) = 'blob'))"},
    [SHADOW_CELLS] =
        {"cells",
         "(cell INTEGER PRIMARY KEY, grp INTEGER NOT NULL, centroid BLOB NOT NULL CHECK (typeof(centroid) = 'blob'), ids BLOB NOT NULL CHECK (typeof(ids) = 'blob'))"},
};

int embed_store_is_shadow(const char *zSuffix) {
  int i;
  for (i = 0; i < STORE_N_SHADOW; i++)
    if (sqlite3_stricmp(zSuffix, store_shadow[i].suffix) == 0) return 1;
  return 0;
}

/* (Re)compute the names derived from schema and name. */
int store_set_names(embed_store *st) {
  int i;
  for (i = 0; i < STORE_N_NAMES; i++) sqlite3_free(st->names[i]);
  sqlite3_free(st->label);
  sqlite3_free(st->vectors_table);
  for (i = 0; i < STORE_N_SHADOW; i++)
    st->names[i] = sqlite3_mprintf("\"%w\".\"%w_%s\"", st->schema, st->name,
                                   store_shadow[i].suffix);
  st->names[ON_NONE] = 0;
  st->names[ON_SCHEMA] = sqlite3_mprintf("\"%w\"", st->schema);
  st->label = sqlite3_mprintf("embedding %s", st->name);
  st->vectors_table =
      sqlite3_mprintf("%s_%s", st->name, store_shadow[SHADOW_VECTORS].suffix);
  for (i = 0; i < STORE_N_NAMES; i++)
    if (i != ON_NONE && !st->names[i]) return SQLITE_NOMEM;
  return st->label && st->vectors_table ? SQLITE_OK : SQLITE_NOMEM;
}

/* ------------------------------------------------------------ lifecycle */

int store_is_internal_key(const char *key) {
  static const char *const internal[] = {
      "step", "layout", "instance", "index_build", "index_seq", "index_codes"};
  size_t i;
  for (i = 0; i < sizeof(internal) / sizeof(internal[0]); i++)
    if (sqlite3_stricmp(key, internal[i]) == 0) return 1;
  return 0;
}

/* Read the options back from T_config. */
static int store_load_config(embed_store *st, char **pzErr) {
  sqlite3_stmt *stmt = 0;
  embed_error err;
  int rc = SQLITE_OK;
  if (store_prepare(st, &stmt,
                    sqlite3_mprintf("SELECT key, value FROM %s",
                                    st->names[SHADOW_CONFIG]),
                    &rc)) {
    if (rc != SQLITE_NOMEM)
      *pzErr = sqlite3_mprintf("embedding %s: cannot read %s_config: %s",
                               st->name, st->name, sqlite3_errmsg(st->db));
    return rc;
  }
  embed_config_defaults(&st->cfg);
  st->layout = STORE_LAYOUT_NO_LOG; /* tables made before the layout row */
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(stmt, 0);
    const char *value = (const char *)sqlite3_column_text(stmt, 1);
    if (key && sqlite3_stricmp(key, "layout") == 0) {
      st->layout = sqlite3_column_int(stmt, 1);
      if (st->layout < STORE_LAYOUT_LOG || st->layout > STORE_LAYOUT_CURRENT) {
        rc = store_corrupt(
            pzErr,
            sqlite3_mprintf(
                "embedding %s: corrupt %s_config: unknown layout '%s' (this embed reads layouts up to %d)",
                st->name, st->name, value ? value : "NULL",
                STORE_LAYOUT_CURRENT));
        sqlite3_finalize(stmt); /* after the message: value is its text */
        return rc;
      }
      continue;
    }
    if (key && sqlite3_stricmp(key, "instance") == 0) {
      st->instance = sqlite3_column_int64(stmt, 1);
      continue;
    }
    if (key && store_is_internal_key(key)) continue; /* training, index */
    if (!key || !value || embed_config_apply(&st->cfg, key, value, &err)) {
      if (!key || !value) embed_error_set(&err, "NULL key or value");
      sqlite3_finalize(stmt);
      return store_corrupt(
          pzErr, sqlite3_mprintf("embedding %s: corrupt %s_config: %s",
                                 st->name, st->name, err.text));
    }
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return rc;
  if (st->cfg.has_padding_idx &&
      (st->cfg.padding_idx < 0 ||
       (st->cfg.num_embeddings > 0 &&
        st->cfg.padding_idx >= st->cfg.num_embeddings))) {
    return store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: corrupt %s_config: padding_idx %lld out of range",
            st->name, st->name, (long long)st->cfg.padding_idx));
  }
  /* dim and seed are required; an option added in a later version takes
  ** its default when an older table lacks it */
  if (!(st->cfg.seen & 1u) || !st->cfg.has_seed) {
    return store_corrupt(
        pzErr,
        sqlite3_mprintf("embedding %s: corrupt %s_config: %s missing", st->name,
                        st->name, st->cfg.has_seed ? "dim" : "seed"));
  }
  return SQLITE_OK;
}

/* The checks of store_check.c on the shadow tables from `first` on that
** the table's layout has (this file has their list). */
static int store_check_from(embed_store *st, int first, char **pzErr) {
  const char *suffix[STORE_N_SHADOW] = {0}, *columns[STORE_N_SHADOW] = {0};
  int i, n = 0, vectors_at = -1, rc;
  unsigned same_ddl = 0;
  for (i = first; i < STORE_N_SHADOW; i++) {
    if (!store_has_shadow(st, i)) continue;
    if (i == SHADOW_VECTORS) vectors_at = n;
    suffix[n] = store_shadow[i].suffix;
    columns[n++] = store_shadow[i].columns;
  }
  rc = store_check_shapes(st, suffix, columns, n, &same_ddl, pzErr);
  if (rc == SQLITE_OK && vectors_at >= 0)
    st->vectors_ddl_current = (same_ddl >> vectors_at) & 1;
  return rc;
}

int embed_store_check_shadows(embed_store *st, char **pzErr) {
  return store_check_from(st, 0, pzErr);
}

int embed_store_check_config(embed_store *st, char **pzErr) {
  embed_config opened = st->cfg, stored;
  int64_t instance = st->instance;
  int layout = st->layout, rc = store_load_config(st, pzErr);
  int stored_layout = st->layout;
  stored = st->cfg;
  /* the table keeps running with what it opened with, even when the read
  ** stopped at a damaged row before the layout's */
  st->cfg = opened;
  st->layout = layout;
  st->instance = instance;
  return rc ? rc : store_check_config_same(st, &stored, stored_layout, pzErr);
}

/* Create the shadow tables, store the options, create rows 0..N-1. */
static int store_create(embed_store *st) {
  sqlite3_stmt *stmt;
  float *row = 0;
  unsigned char *stored;
  int rc = SQLITE_OK, i;
  int64_t id;
  st->layout = store_layout_new(&st->cfg);
  st->vectors_ddl_current = 1;
  rc = store_row_setup(st);
  for (i = 0; rc == SQLITE_OK && i < STORE_N_SHADOW; i++)
    if (store_has_shadow(st, i))
      rc = embed_exec(st->db, sqlite3_mprintf("CREATE TABLE %s%s", st->names[i],
                                              store_shadow[i].columns));
  if (rc == SQLITE_OK) rc = store_stmt_get(st, STMT_CONFIG_WRITE, &stmt);
  /* the options, then the rows the storage layer keeps for itself */
  sqlite3_randomness(sizeof(st->instance), &st->instance);
  for (i = 0; rc == SQLITE_OK && i < embed_config_count() + 3; i++) {
    char value[64];
    int extra = i - embed_config_count();
    static const char *const extra_key[] = {"step", "layout", "instance"};
    const int64_t extra_value[] = {0, st->layout, st->instance};
    if (extra < 0 && !embed_config_applies(&st->cfg, i))
      continue; /* another optimizer's hyperparameter */
    if (extra < 0)
      embed_config_value(&st->cfg, i, value, sizeof(value));
    else
      snprintf(value, sizeof(value), "%lld", (long long)extra_value[extra]);
    sqlite3_bind_text(stmt, 1,
                      extra < 0 ? embed_config_key(i) : extra_key[extra], -1,
                      SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, value, -1, SQLITE_TRANSIENT);
    rc = store_step_done(stmt);
  }
  if (rc || st->cfg.num_embeddings == 0) return rc;

  rc = store_stmt_get(st, STMT_INSERT, &stmt);
  if (rc) return rc;
  /* the weight's floats, then the row as stored (with the state, if any) */
  row = (float *)sqlite3_malloc64((sqlite3_uint64)st->cfg.dim *
                                      EMBED_FLOAT_BYTES +
                                  (sqlite3_uint64)store_row_bytes(st));
  if (!row) return SQLITE_NOMEM;
  stored = (unsigned char *)(row + st->cfg.dim);
  for (id = 0; rc == SQLITE_OK && id < st->cfg.num_embeddings; id++) {
    if (st->cfg.has_padding_idx && id == st->cfg.padding_idx)
      memset(row, 0, (size_t)st->cfg.dim * EMBED_FLOAT_BYTES);
    else
      embed_initial_row(st->cfg.init, (uint64_t)st->cfg.seed, id, row,
                        st->cfg.dim);
    store_row_compose(st, row, 0, stored);
    sqlite3_bind_int64(stmt, 1, id);
    rc = sqlite3_bind_blob64(
        stmt, 2, stored, (sqlite3_uint64)store_row_bytes(st), SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = store_step_done(stmt);
  }
  sqlite3_free(row);
  return rc;
}

int embed_store_open(sqlite3 *db, const char *schema, const char *name,
                     const embed_config *cfg, int create, embed_store **out,
                     char **pzErr) {
  embed_store *st = (embed_store *)sqlite3_malloc64(sizeof(*st));
  int rc;
  *out = 0;
  if (!st) return SQLITE_NOMEM;
  memset(st, 0, sizeof(*st));
  st->db = db;
  st->schema = sqlite3_mprintf("%s", schema);
  st->name = sqlite3_mprintf("%s", name);
  rc = st->schema && st->name ? store_set_names(st) : SQLITE_NOMEM;
  if (rc == SQLITE_OK && create) {
    st->cfg = *cfg;
    rc = store_create(st);
    if (rc && rc != SQLITE_NOMEM)
      *pzErr =
          sqlite3_mprintf("embedding %s: %s", st->name, sqlite3_errmsg(db));
  } else if (rc == SQLITE_OK) {
    /* every shadow table an ordinary table of the expected columns (an
    ** impostor is refused, store_check.c), then the options; the layout
    ** they record says whether there is a change log to check too */
    st->layout = STORE_LAYOUT_NO_LOG;
    rc = store_check_from(st, 0, pzErr);
    if (rc == SQLITE_OK) rc = store_load_config(st, pzErr);
    if (rc == SQLITE_OK && store_has_shadow(st, SHADOW_LOG))
      rc = store_check_from(st, SHADOW_LOG, pzErr);
    if (rc == SQLITE_OK) rc = store_row_setup(st);
  }
  if (rc) {
    embed_store_close(st);
    return rc;
  }
  *out = st;
  return SQLITE_OK;
}

void embed_store_close(embed_store *st) {
  int i;
  if (!st) return;
  store_finalize_all(st);
  for (i = 0; i < STORE_N_NAMES; i++) sqlite3_free(st->names[i]);
  sqlite3_free(st->schema);
  sqlite3_free(st->name);
  sqlite3_free(st->label);
  sqlite3_free(st->vectors_table);
  sqlite3_free(st->pending); /* the change log's buffer */
  sqlite3_free(st->row_tail);
  store_pending_free(st);
  st->scratch_busy = 0; /* no call holds it once the table closes */
  store_scratch_free(st);
  sqlite3_free(st);
}

int embed_store_drop(embed_store *st) {
  int rc = SQLITE_OK, i;
  embed_store_discard(st); /* the rows buffered go with the table */
  store_finalize_all(st);
  for (i = 0; rc == SQLITE_OK && i < STORE_N_SHADOW; i++)
    if (store_has_shadow(st, i))
      rc = embed_exec(st->db,
                      sqlite3_mprintf("DROP TABLE IF EXISTS %s", st->names[i]));
  return rc;
}

int embed_store_rename(embed_store *st, const char *zNew) {
  char *name;
  int rc = store_pending_settle(st), i;
  if (rc) return rc;
  store_finalize_all(st);
  for (i = 0; rc == SQLITE_OK && i < STORE_N_SHADOW; i++)
    if (store_has_shadow(st, i))
      rc = embed_exec(
          st->db, sqlite3_mprintf("ALTER TABLE %s RENAME TO \"%w_%s\"",
                                  st->names[i], zNew, store_shadow[i].suffix));
  if (rc) return rc;
  name = sqlite3_mprintf("%s", zNew);
  if (!name) return SQLITE_NOMEM;
  sqlite3_free(st->name);
  st->name = name;
  return store_set_names(st);
}
