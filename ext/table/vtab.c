/*
** vtab.c - the `embedding` virtual table: float32 vectors keyed by token id.
**
** Usage:
**
**     CREATE VIRTUAL TABLE tok USING embedding(dim=4, num_embeddings=10);
**     SELECT id, vector FROM tok WHERE id = 3;
**     SELECT t.pos, e.vector FROM tokens t JOIN tok e ON e.id = t.token_id;
**     INSERT INTO tok(id) VALUES (10);                 -- initialized row
**     INSERT INTO tok(id, vector) VALUES (11, '[1, 2, 3, 4]');
**     UPDATE tok SET vector = embed_scale(vector, 2) WHERE id = 11;
**     DELETE FROM tok WHERE id = 11;
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 5;
**
** Columns: id INTEGER (the rowid), vector BLOB (the stored weight, D float32
** values), and the hidden search columns distance REAL and k INTEGER.
**
** Storage (schema S, table T), written only through this file:
**
**     CREATE TABLE "S"."T_config"(key TEXT PRIMARY KEY, value) WITHOUT ROWID;
**     CREATE TABLE "S"."T_vectors"(id INTEGER PRIMARY KEY,
**         vector BLOB NOT NULL CHECK (typeof(vector) = 'blob'));
**     CREATE TABLE "S"."T_state"(id INTEGER PRIMARY KEY,
**         state BLOB NOT NULL CHECK (typeof(state) = 'blob'));
**
** T_config holds one row per option (options.c writes and re-reads them)
** and the row ('step', n): the optimizer's step count (training.c);
** T_state holds each trained row's optimizer state (optimizer.c), created
** on the row's first step and deleted and moved with the row;
** T_vectors is a rowid table keyed by the token id, so a lookup is one
** b-tree descent, an update rewrites one record in place, and a scan reads
** the leaves in id order. Every shadow write is a nested statement on the
** same connection, so transactions, ROLLBACK and statement aborts cover it,
** and other connections see only committed rows.
**
** Query plans chosen by embedBestIndex (idxNum bits, arguments in this
** order in argv[] of embedFilter):
**
**     PLAN_EQ      0x001  id = ?            one point lookup
**     PLAN_IN      0x002  id IN (...)       all values at once, sorted,
**                                           deduplicated, point lookups
**     PLAN_LO      0x004  id > ? / id >= ?  (PLAN_LO_GT when >)
**     PLAN_HI      0x010  id < ? / id <= ?  (PLAN_HI_LT when <)
**     PLAN_KNN     0x040  vector MATCH ?    exact k-nearest search (search.c)
**     PLAN_K       0x080  k = ?
**     PLAN_LIMIT   0x100  LIMIT ?           (KNN with ORDER BY distance)
**     PLAN_OFFSET  0x200  OFFSET ?
**     PLAN_DESC    0x400  scan in descending id order
**     PLAN_ALL     0x800  KNN ranking every row: ORDER BY distance with no
**                         k and no LIMIT offered (SQLite before 3.41 does
**                         not offer LIMIT with MATCH); SQLite applies LIMIT
**
** No constraint is a full scan in id order. Costs: EQ 1, IN 10 per value,
** ranges a fraction of a full scan, full scan EMBED_EST_ROWS; a KNN plan adds
** the distance computations. Output is in ascending id order (or
** descending with PLAN_DESC), KNN output by ascending (distance, id), so
** ORDER BY id / ORDER BY distance are consumed.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "table/table.h"

#define EMBED_EST_ROWS 1000000.0

enum { COL_ID = 0, COL_VECTOR = 1, COL_DISTANCE = 2, COL_K = 3 };

enum {
  PLAN_EQ = 0x001,
  PLAN_IN = 0x002,
  PLAN_LO = 0x004,
  PLAN_LO_GT = 0x008,
  PLAN_HI = 0x010,
  PLAN_HI_LT = 0x020,
  PLAN_KNN = 0x040,
  PLAN_K = 0x080,
  PLAN_LIMIT = 0x100,
  PLAN_OFFSET = 0x200,
  PLAN_DESC = 0x400,
  PLAN_ALL = 0x800 /* MATCH with ORDER BY distance but no k or LIMIT seen */
};

typedef struct embed_cursor {
  sqlite3_vtab_cursor base;
  embed_rows rows;            /* PLAN_EQ/IN: one blob handle over the rows */
  void *vector;               /* PLAN_EQ/IN: the current row's bytes */
  int have_vector;            /* vector holds row id's bytes */
  sqlite3_stmt *point_stmt;   /* SELECT vector WHERE id = ?1 (KNN rows) */
  sqlite3_stmt *scan_stmt[2]; /* SELECT id, vector in a range, asc/desc */
  sqlite3_stmt *row;          /* the statement positioned on the current row */
  int row_vector_col;         /* column of `vector` in row */
  int is_list;                /* rows come from ids[] */
  int is_knn;
  int eof;
  int64_t *ids;   /* PLAN_EQ/IN: sorted ids to look up */
  int64_t one_id; /* PLAN_EQ: ids points here (not allocated) */
  int64_t n_ids, pos;
  embed_hit *hits; /* PLAN_KNN results */
  int64_t k;
  int64_t id; /* current row */
} embed_cursor;

/* ---------------------------------------------------------------- helpers */

static int vtab_error(embed_vtab *tab, int rc, char *zMsg) {
  sqlite3_free(tab->base.zErrMsg);
  tab->base.zErrMsg = zMsg;
  return zMsg ? rc : SQLITE_NOMEM;
}

/* Prepare a statement on the shadow tables: zFormat takes the schema and
** the table name (both as %w). Persistent: it is kept until disconnect. */
static int prepare_shadow(embed_vtab *tab, sqlite3_stmt **slot,
                          const char *zFormat) {
  char *zSql;
  int rc;
  if (*slot) return SQLITE_OK;
  zSql = sqlite3_mprintf(zFormat, tab->schema, tab->name);
  if (!zSql) return SQLITE_NOMEM;
  rc =
      sqlite3_prepare_v3(tab->db, zSql, -1, SQLITE_PREPARE_PERSISTENT, slot, 0);
  sqlite3_free(zSql);
  return rc;
}

/* The SQL of each cached statement, indexed by embed_stmt. */
static const char *const stmt_sql[EMBED_N_STMT] = {
    [STMT_READ] = "SELECT vector FROM \"%w\".\"%w_vectors\" WHERE id = ?1",
    [STMT_WRITE] = "UPDATE \"%w\".\"%w_vectors\" SET vector = ?2 WHERE id = ?1",
    [STMT_INSERT] =
        "INSERT INTO \"%w\".\"%w_vectors\"(id, vector) VALUES (?1, ?2)",
    [STMT_INSERT_REPLACE] =
        "INSERT OR REPLACE INTO \"%w\".\"%w_vectors\"(id, vector) "
        "VALUES (?1, ?2)",
    [STMT_INSERT_IGNORE] =
        "INSERT OR IGNORE INTO \"%w\".\"%w_vectors\"(id, vector) "
        "VALUES (?1, ?2)",
    [STMT_DELETE] = "DELETE FROM \"%w\".\"%w_vectors\" WHERE id = ?1",
    [STMT_MOVE] = "UPDATE \"%w\".\"%w_vectors\" SET id = ?2 WHERE id = ?1",
    [STMT_STATE_DELETE] = "DELETE FROM \"%w\".\"%w_state\" WHERE id = ?1",
    [STMT_STATE_MOVE] = "UPDATE \"%w\".\"%w_state\" SET id = ?2 WHERE id = ?1",
    [STMT_MAXID] = "SELECT max(id) FROM \"%w\".\"%w_vectors\"",
    [STMT_SCHEMA_VERSION] = "PRAGMA main.schema_version /* %w %w */",
    [STMT_DATA_VERSION] = "PRAGMA \"%w\".data_version /* %w */",
    [STMT_STATE_READ] = "SELECT state FROM \"%w\".\"%w_state\" WHERE id = ?1",
    [STMT_STATE_WRITE] =
        "INSERT OR REPLACE INTO \"%w\".\"%w_state\"(id, state) VALUES (?1, ?2)",
    [STMT_STEP_READ] =
        "SELECT value FROM \"%w\".\"%w_config\" WHERE key = 'step'",
    [STMT_STEP_WRITE] =
        "INSERT OR REPLACE INTO \"%w\".\"%w_config\"(key, value) "
        "VALUES ('step', ?1)",
    [STMT_STATE_CLEAR] = "DELETE FROM \"%w\".\"%w_state\"",
    [STMT_ROLLBACK] = "ROLLBACK /* %w %w */",
};

int embed_table_stmt(embed_vtab *tab, embed_stmt which, sqlite3_stmt **out) {
  int rc = prepare_shadow(tab, &tab->stmt[which], stmt_sql[which]);
  *out = tab->stmt[which];
  return rc;
}

int embed_table_int(embed_vtab *tab, embed_stmt which, int64_t *out) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, which, &stmt);
  if (rc) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    *out = sqlite3_column_int64(stmt, 0);
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_NOTFOUND;
  }
  sqlite3_reset(stmt);
  return rc;
}

static void finalize_statements(embed_vtab *tab) {
  int i;
  for (i = 0; i < EMBED_N_STMT; i++) {
    sqlite3_finalize(tab->stmt[i]);
    tab->stmt[i] = 0;
  }
}

int embed_stored_vector(embed_vtab *tab, int64_t id, int type,
                        const void *bytes, int64_t nbytes, float *out,
                        char **pzErr) {
  embed_error err;
  if (type != SQLITE_BLOB) {
    *pzErr = sqlite3_mprintf(
        "embedding %s: corrupt vector for id %lld "
        "(%s, not a BLOB)",
        tab->name, (long long)id, embed_type_name(type));
  } else if (nbytes != tab->cfg.dim * 4) {
    *pzErr = sqlite3_mprintf(
        "embedding %s: corrupt vector for id %lld "
        "(%lld bytes, expected %lld)",
        tab->name, (long long)id, (long long)nbytes,
        (long long)tab->cfg.dim * 4);
  } else if ((out ? embed_blob_decode(bytes, tab->cfg.dim, out, &err)
                  : embed_blob_check(bytes, tab->cfg.dim, &err)) != EMBED_OK) {
    *pzErr = sqlite3_mprintf(
        "embedding %s: corrupt vector for id %lld "
        "(element %lld is not finite)",
        tab->name, (long long)id, (long long)err.a);
  } else {
    return SQLITE_OK;
  }
  return *pzErr ? SQLITE_CORRUPT_VTAB : SQLITE_NOMEM;
}

/* The vector in column col of stmt's row, checked (and decoded into out). */
static int stored_column(embed_vtab *tab, int64_t id, sqlite3_stmt *stmt,
                         int col, float *out, char **pzErr) {
  int type = sqlite3_column_type(stmt, col); /* before reading converts it */
  const void *bytes = sqlite3_column_blob(stmt, col);
  return embed_stored_vector(tab, id, type, bytes,
                             sqlite3_column_bytes(stmt, col), out, pzErr);
}

int embed_table_read(embed_vtab *tab, int64_t id, float *out, char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, STMT_READ, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    rc = stored_column(tab, id, stmt, 0, out, pzErr);
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_NOTFOUND;
  }
  sqlite3_reset(stmt);
  return rc;
}

/* Bind v as a float32 BLOB (little-endian) to parameter i of stmt. On a
** little-endian host the floats are the BLOB, bound without a copy: callers
** step and reset the statement before v goes away. */
static int bind_vector(sqlite3_stmt *stmt, int i, const float *v, int64_t dim) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  void *blob = sqlite3_malloc64((sqlite3_uint64)dim * 4);
  if (!blob) return SQLITE_NOMEM;
  embed_blob_encode(v, dim, blob);
  return sqlite3_bind_blob64(stmt, i, blob, (sqlite3_uint64)dim * 4,
                             sqlite3_free);
#else
  return sqlite3_bind_blob64(stmt, i, v, (sqlite3_uint64)dim * 4,
                             SQLITE_STATIC);
#endif
}

/* Run a write statement to completion and reset it. Its parameters stay
** bound (each use binds them all again); a BLOB bound SQLITE_STATIC is
** never read after the reset. */
static int step_done(sqlite3_stmt *stmt) {
  int rc = sqlite3_step(stmt);
  int rc2 = sqlite3_reset(stmt);
  if (rc == SQLITE_DONE) return SQLITE_OK;
  return rc2 ? rc2 : rc;
}

int embed_table_write(embed_vtab *tab, int64_t id, const float *v) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, STMT_WRITE, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = bind_vector(stmt, 2, v, tab->cfg.dim);
  if (rc) {
    sqlite3_clear_bindings(stmt);
    return rc;
  }
  return step_done(stmt);
}

/* ------------------------------------------------------- create / connect */

static int exec_sql(sqlite3 *db, char *zSql) {
  int rc;
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_exec(db, zSql, 0, 0, 0);
  sqlite3_free(zSql);
  return rc;
}

/* Read the options back from T_config. */
static int load_config(embed_vtab *tab, char **pzErr) {
  sqlite3_stmt *stmt = 0;
  embed_error err;
  int rc;
  char *zSql = sqlite3_mprintf("SELECT key, value FROM \"%w\".\"%w_config\"",
                               tab->schema, tab->name);
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(tab->db, zSql, -1, &stmt, 0);
  sqlite3_free(zSql);
  if (rc) {
    *pzErr = sqlite3_mprintf("embedding %s: cannot read %s_config: %s",
                             tab->name, tab->name, sqlite3_errmsg(tab->db));
    return rc;
  }
  embed_config_defaults(&tab->cfg);
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(stmt, 0);
    const char *value = (const char *)sqlite3_column_text(stmt, 1);
    if (key && sqlite3_stricmp(key, "step") == 0) continue; /* training.c */
    if (!key || !value ||
        embed_config_apply(&tab->cfg, key, value, &err)) {
      if (!key || !value) embed_error_set(&err, "NULL key or value");
      *pzErr = sqlite3_mprintf("embedding %s: corrupt %s_config: %s", tab->name,
                               tab->name, err.text);
      sqlite3_finalize(stmt);
      return SQLITE_CORRUPT_VTAB;
    }
  }
  sqlite3_finalize(stmt);
  if (rc != SQLITE_DONE) return rc;
  if (tab->cfg.has_padding_idx &&
      (tab->cfg.padding_idx < 0 ||
       (tab->cfg.num_embeddings > 0 &&
        tab->cfg.padding_idx >= tab->cfg.num_embeddings))) {
    *pzErr = sqlite3_mprintf(
        "embedding %s: corrupt %s_config: padding_idx "
        "%lld out of range",
        tab->name, tab->name, (long long)tab->cfg.padding_idx);
    return SQLITE_CORRUPT_VTAB;
  }
  /* dim and seed are required; an option added in a later version takes
  ** its default when an older table lacks it */
  if (!(tab->cfg.seen & 1u) || !tab->cfg.has_seed) {
    *pzErr = sqlite3_mprintf("embedding %s: corrupt %s_config: %s missing",
                             tab->name, tab->name,
                             tab->cfg.has_seed ? "dim" : "seed");
    return SQLITE_CORRUPT_VTAB;
  }
  return SQLITE_OK;
}

/* Do T_vectors and T_state exist as tables? (T_config was just read.) */
static int check_shadow_tables(embed_vtab *tab, char **pzErr) {
  static const char *const suffix[] = {"vectors", "state"};
  sqlite3_stmt *stmt = 0;
  int i, rc = SQLITE_OK;
  char *zSql = sqlite3_mprintf(
      "SELECT 1 FROM \"%w\".sqlite_schema "
      "WHERE type = 'table' AND name = ?1",
      tab->schema);
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(tab->db, zSql, -1, &stmt, 0);
  sqlite3_free(zSql);
  for (i = 0; rc == SQLITE_OK && i < 2; i++) {
    char *name = sqlite3_mprintf("%s_%s", tab->name, suffix[i]);
    if (!name) {
      rc = SQLITE_NOMEM;
      break;
    }
    sqlite3_bind_text(stmt, 1, name, -1, sqlite3_free);
    if (sqlite3_step(stmt) != SQLITE_ROW) {
      *pzErr = sqlite3_mprintf("embedding %s: shadow table %s_%s is missing",
                               tab->name, tab->name, suffix[i]);
      rc = *pzErr ? SQLITE_CORRUPT_VTAB : SQLITE_NOMEM;
    }
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  return rc;
}

/* Create the shadow tables, store the options, create rows 0..N-1. */
static int create_storage(embed_vtab *tab) {
  sqlite3_stmt *stmt = 0;
  float *row = 0;
  int rc, i;
  int64_t id;
  rc = exec_sql(tab->db,
                sqlite3_mprintf("CREATE TABLE \"%w\".\"%w_config\"(key TEXT "
                                "PRIMARY KEY, value) WITHOUT ROWID;"
                                "CREATE TABLE \"%w\".\"%w_vectors\"(id INTEGER "
                                "PRIMARY KEY, vector BLOB NOT NULL "
                                "CHECK (typeof(vector) = 'blob'));"
                                "CREATE TABLE \"%w\".\"%w_state\"(id INTEGER "
                                "PRIMARY KEY, state BLOB NOT NULL "
                                "CHECK (typeof(state) = 'blob'));",
                                tab->schema, tab->name, tab->schema, tab->name,
                                tab->schema, tab->name));
  if (rc) return rc;
  {
    char *zSql = sqlite3_mprintf(
        "INSERT INTO \"%w\".\"%w_config\"(key, value) VALUES (?1, ?2)",
        tab->schema, tab->name);
    if (!zSql) return SQLITE_NOMEM;
    rc = sqlite3_prepare_v2(tab->db, zSql, -1, &stmt, 0);
    sqlite3_free(zSql);
    if (rc) return rc;
  }
  for (i = 0; rc == SQLITE_OK && i <= embed_config_count(); i++) {
    char value[64] = "0"; /* the row after the options: step = 0 */
    if (i < embed_config_count() && !embed_config_applies(&tab->cfg, i))
      continue; /* another optimizer's hyperparameter */
    if (i < embed_config_count())
      embed_config_value(&tab->cfg, i, value, sizeof(value));
    sqlite3_bind_text(stmt, 1,
                      i < embed_config_count() ? embed_config_key(i) : "step",
                      -1, SQLITE_STATIC);
    sqlite3_bind_text(stmt, 2, value, -1, SQLITE_TRANSIENT);
    rc = step_done(stmt);
  }
  sqlite3_finalize(stmt);
  if (rc || tab->cfg.num_embeddings == 0) return rc;

  rc = embed_table_stmt(tab, STMT_INSERT, &stmt);
  if (rc) return rc;
  row = (float *)sqlite3_malloc64((sqlite3_uint64)tab->cfg.dim * sizeof(float));
  if (!row) return SQLITE_NOMEM;
  for (id = 0; rc == SQLITE_OK && id < tab->cfg.num_embeddings; id++) {
    if (tab->cfg.has_padding_idx && id == tab->cfg.padding_idx)
      memset(row, 0, (size_t)tab->cfg.dim * sizeof(float));
    else
      embed_initial_row(tab->cfg.init, (uint64_t)tab->cfg.seed, id, row,
                        tab->cfg.dim);
    sqlite3_bind_int64(stmt, 1, id);
    rc = bind_vector(stmt, 2, row, tab->cfg.dim);
    if (rc == SQLITE_OK) rc = step_done(stmt);
  }
  sqlite3_free(row);
  return rc;
}

static int embedInit(sqlite3 *db, void *pAux, int argc, const char *const *argv,
                     sqlite3_vtab **ppVtab, char **pzErr, int is_create) {
  embed_vtab *tab;
  int rc, i;
  *ppVtab = 0;
  tab = (embed_vtab *)sqlite3_malloc64(sizeof(*tab));
  if (!tab) return SQLITE_NOMEM;
  memset(tab, 0, sizeof(*tab));
  tab->db = db;
  tab->registry = (embed_registry *)pAux;
  tab->schema = sqlite3_mprintf("%s", argv[1]);
  tab->name = sqlite3_mprintf("%s", argv[2]);
  tab->label = sqlite3_mprintf("embedding %s", argv[2]);
  if (!tab->schema || !tab->name || !tab->label) {
    rc = SQLITE_NOMEM;
    goto fail;
  }
  if (is_create) {
    embed_error err;
    embed_config_defaults(&tab->cfg);
    for (i = 3; i < argc; i++) {
      if (embed_config_apply_arg(&tab->cfg, argv[i], &err)) break;
    }
    if (i < argc || embed_config_finish(&tab->cfg, &err)) {
      *pzErr = sqlite3_mprintf("embedding %s: %s", tab->name, err.text);
      rc = SQLITE_ERROR;
      goto fail;
    }
    if (!tab->cfg.has_seed) {
      sqlite3_randomness(sizeof(tab->cfg.seed), &tab->cfg.seed);
      tab->cfg.has_seed = 1;
    }
    rc = create_storage(tab);
    if (rc) {
      /* not argv: a failed nested CREATE may have reset the schema that
      ** owns it */
      *pzErr =
          sqlite3_mprintf("embedding %s: %s", tab->name, sqlite3_errmsg(db));
      goto fail;
    }
  } else {
    rc = load_config(tab, pzErr);
    if (rc == SQLITE_OK) rc = check_shadow_tables(tab, pzErr);
    if (rc) goto fail;
  }
  rc = sqlite3_declare_vtab(db,
                            "CREATE TABLE x(id INTEGER, vector BLOB, "
                            "distance REAL HIDDEN, k INTEGER HIDDEN)");
  if (rc) goto fail;
  sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  embed_registry_add(tab->registry, tab);
  *ppVtab = &tab->base;
  return SQLITE_OK;
fail:
  finalize_statements(tab);
  sqlite3_free(tab->schema);
  sqlite3_free(tab->name);
  sqlite3_free(tab->label);
  sqlite3_free(tab);
  return rc;
}

static int embedCreate(sqlite3 *db, void *pAux, int argc,
                       const char *const *argv, sqlite3_vtab **ppVtab,
                       char **pzErr) {
  return embedInit(db, pAux, argc, argv, ppVtab, pzErr, 1);
}

static int embedConnect(sqlite3 *db, void *pAux, int argc,
                        const char *const *argv, sqlite3_vtab **ppVtab,
                        char **pzErr) {
  return embedInit(db, pAux, argc, argv, ppVtab, pzErr, 0);
}

static int embedDisconnect(sqlite3_vtab *pVtab) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  embed_registry_remove(tab->registry, tab);
  finalize_statements(tab);
  embed_snapshot_free(tab->snapshot);
  sqlite3_free(tab->schema);
  sqlite3_free(tab->name);
  sqlite3_free(tab->label);
  sqlite3_free(tab);
  return SQLITE_OK;
}

static int embedDestroy(sqlite3_vtab *pVtab) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  int rc;
  finalize_statements(tab);
  rc = exec_sql(tab->db,
                sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\".\"%w_config\";"
                                "DROP TABLE IF EXISTS \"%w\".\"%w_vectors\";"
                                "DROP TABLE IF EXISTS \"%w\".\"%w_state\";",
                                tab->schema, tab->name, tab->schema, tab->name,
                                tab->schema, tab->name));
  if (rc) return rc;
  return embedDisconnect(pVtab);
}

static int embedRename(sqlite3_vtab *pVtab, const char *zNew) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  char *name, *label;
  int rc;
  finalize_statements(tab);
  rc = exec_sql(tab->db,
                sqlite3_mprintf(
                    "ALTER TABLE \"%w\".\"%w_config\" RENAME TO \"%w_config\";"
                    "ALTER TABLE \"%w\".\"%w_vectors\" RENAME TO "
                    "\"%w_vectors\";"
                    "ALTER TABLE \"%w\".\"%w_state\" RENAME TO "
                    "\"%w_state\";",
                    tab->schema, tab->name, zNew, tab->schema, tab->name, zNew,
                    tab->schema, tab->name, zNew));
  if (rc) return rc;
  name = sqlite3_mprintf("%s", zNew);
  label = sqlite3_mprintf("embedding %s", zNew);
  if (!name || !label) {
    sqlite3_free(name);
    sqlite3_free(label);
    return SQLITE_NOMEM;
  }
  sqlite3_free(tab->name);
  sqlite3_free(tab->label);
  tab->name = name;
  tab->label = label;
  return SQLITE_OK;
}

static int embedShadowName(const char *zName) {
  return sqlite3_stricmp(zName, "config") == 0 ||
         sqlite3_stricmp(zName, "vectors") == 0 ||
         sqlite3_stricmp(zName, "state") == 0;
}

static int embedFindFunction(sqlite3_vtab *pVtab, int nArg, const char *zName,
                             void (**pxFunc)(sqlite3_context *, int,
                                             sqlite3_value **),
                             void **ppArg) {
  void (*fn)(sqlite3_context *, int, sqlite3_value **) =
      embed_training_bound_function(zName, nArg);
  if (!fn) return 0;
  *pxFunc = fn;
  *ppArg = pVtab;
  return 1;
}

/* ------------------------------------------------------------- planning */

static int embedBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *info) {
  int eq = -1, lo = -1, hi = -1, match = -1, kc = -1, limit = -1, offset = -1;
  int i, argv_index = 0, plan = 0, match_unusable = 0;
  double rows = EMBED_EST_ROWS, cost;
  (void)pVtab;
  for (i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *c = &info->aConstraint[i];
    int col = c->iColumn;
    if (!c->usable) {
      if (col == COL_VECTOR && c->op == SQLITE_INDEX_CONSTRAINT_MATCH)
        match_unusable = 1;
      continue;
    }
    if (c->op == SQLITE_INDEX_CONSTRAINT_LIMIT) { /* iColumn is meaningless */
      limit = i;
    } else if (c->op == SQLITE_INDEX_CONSTRAINT_OFFSET) {
      offset = i;
    } else if (col == COL_ID || col == -1) {
      switch (c->op) {
        case SQLITE_INDEX_CONSTRAINT_EQ:
          if (eq < 0) eq = i;
          break;
        case SQLITE_INDEX_CONSTRAINT_GT:
        case SQLITE_INDEX_CONSTRAINT_GE:
          if (lo < 0) lo = i;
          break;
        case SQLITE_INDEX_CONSTRAINT_LT:
        case SQLITE_INDEX_CONSTRAINT_LE:
          if (hi < 0) hi = i;
          break;
        default:
          break;
      }
    } else if (col == COL_VECTOR && c->op == SQLITE_INDEX_CONSTRAINT_MATCH) {
      if (match < 0) match = i;
    } else if (col == COL_K && c->op == SQLITE_INDEX_CONSTRAINT_EQ) {
      if (kc < 0) kc = i;
    }
  }

  if (eq >= 0) {
    info->aConstraintUsage[eq].argvIndex = ++argv_index;
    info->aConstraintUsage[eq].omit = 1;
    if (sqlite3_vtab_in(info, eq, -1)) {
      sqlite3_vtab_in(info, eq, 1);
      plan |= PLAN_IN;
      rows = 10;
    } else {
      plan |= PLAN_EQ;
      rows = 1;
    }
  } else {
    if (lo >= 0) {
      info->aConstraintUsage[lo].argvIndex = ++argv_index;
      plan |= PLAN_LO;
      if (info->aConstraint[lo].op == SQLITE_INDEX_CONSTRAINT_GT)
        plan |= PLAN_LO_GT;
      rows /= 4;
    }
    if (hi >= 0) {
      info->aConstraintUsage[hi].argvIndex = ++argv_index;
      plan |= PLAN_HI;
      if (info->aConstraint[hi].op == SQLITE_INDEX_CONSTRAINT_LT)
        plan |= PLAN_HI_LT;
      rows /= 4;
    }
  }
  cost = rows;

  if (match >= 0) {
    int order_ok = 1;
    plan |= PLAN_KNN;
    info->aConstraintUsage[match].argvIndex = ++argv_index;
    info->aConstraintUsage[match].omit = 1;
    if (kc >= 0) {
      plan |= PLAN_K;
      info->aConstraintUsage[kc].argvIndex = ++argv_index;
      info->aConstraintUsage[kc].omit = 1;
    }
    /* ORDER BY must be (distance ASC [, id ASC]) or absent to use LIMIT. */
    for (i = 0; i < info->nOrderBy; i++) {
      const struct sqlite3_index_orderby *o = &info->aOrderBy[i];
      if (o->desc) order_ok = 0;
      if (i == 0 && o->iColumn != COL_DISTANCE) order_ok = 0;
      if (i == 1 && o->iColumn != COL_ID && o->iColumn != -1) order_ok = 0;
      if (i > 1) order_ok = 0;
    }
    /* LIMIT bounds the search only for ORDER BY distance without k; with
    ** k, SQLite applies the LIMIT to the k rows itself */
    if (limit >= 0 && order_ok && kc < 0 && info->nOrderBy > 0) {
      plan |= PLAN_LIMIT;
      info->aConstraintUsage[limit].argvIndex = ++argv_index;
      if (offset >= 0) {
        plan |= PLAN_OFFSET;
        info->aConstraintUsage[offset].argvIndex = ++argv_index;
      }
    }
    if (order_ok && info->nOrderBy > 0) {
      info->orderByConsumed = 1;
      if (kc < 0 && !(plan & PLAN_LIMIT)) plan |= PLAN_ALL;
    }
    cost = rows * 10.0 + 100.0;
    rows = 10;
  } else {
    if (info->nOrderBy == 1 && (info->aOrderBy[0].iColumn == COL_ID ||
                                info->aOrderBy[0].iColumn == -1)) {
      if (info->aOrderBy[0].desc) {
        if (!(plan & (PLAN_EQ | PLAN_IN))) {
          plan |= PLAN_DESC;
          info->orderByConsumed = 1;
        }
      } else {
        info->orderByConsumed = 1;
      }
    }
    if (match_unusable) cost *= 1e6; /* wait until the query vector is known */
  }
  if (plan & PLAN_EQ) info->idxFlags |= SQLITE_INDEX_SCAN_UNIQUE;
  info->idxNum = plan;
  info->estimatedCost = cost;
  info->estimatedRows = (sqlite3_int64)rows;
  return SQLITE_OK;
}

/* -------------------------------------------------------------- cursors */

static int embedOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor) {
  embed_cursor *cur = (embed_cursor *)sqlite3_malloc64(sizeof(*cur));
  (void)pVtab;
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof(*cur));
  cur->eof = 1;
  embed_rows_init(&cur->rows, (embed_vtab *)pVtab, 0);
  ((embed_vtab *)pVtab)->open_cursors++;
  *ppCursor = &cur->base;
  return SQLITE_OK;
}

static void cursor_reset(embed_cursor *cur) {
  int i;
  if (cur->point_stmt) sqlite3_reset(cur->point_stmt);
  for (i = 0; i < 2; i++)
    if (cur->scan_stmt[i]) sqlite3_reset(cur->scan_stmt[i]);
  if (cur->ids != &cur->one_id) sqlite3_free(cur->ids);
  sqlite3_free(cur->hits);
  cur->ids = 0;
  cur->hits = 0;
  cur->n_ids = cur->pos = 0;
  cur->row = 0;
  cur->is_list = cur->is_knn = 0;
  cur->eof = 1;
}

static int embedClose(sqlite3_vtab_cursor *pCursor) {
  embed_cursor *cur = (embed_cursor *)pCursor;
  int i;
  cursor_reset(cur);
  sqlite3_finalize(cur->point_stmt);
  for (i = 0; i < 2; i++) sqlite3_finalize(cur->scan_stmt[i]);
  embed_rows_close(&cur->rows);
  ((embed_vtab *)pCursor->pVtab)->open_cursors--;
  sqlite3_free(cur->vector);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* The integer an `id = value` constraint means, if any: integers, integral
** reals, and text that SQLite's INTEGER affinity turns into an integer. */
static int value_as_id(sqlite3_value *v, int64_t *id) {
  int type = sqlite3_value_numeric_type(v);
  if (type == SQLITE_INTEGER) {
    *id = sqlite3_value_int64(v);
    return 1;
  }
  if (type == SQLITE_FLOAT) {
    double d = sqlite3_value_double(v);
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == floor(d)) {
      *id = (int64_t)d;
      return 1;
    }
  }
  return 0;
}

/* Narrow [*lo, *hi] by `id > v` (is_lower) or `id < v`; strict or not.
** Returns 0 when no id can qualify. Values that are not numbers do not
** narrow: SQLite re-checks range constraints itself. */
static int narrow_range(sqlite3_value *v, int is_lower, int strict, int64_t *lo,
                        int64_t *hi) {
  int type = sqlite3_value_numeric_type(v);
  if (type == SQLITE_NULL) return 0;
  if (type == SQLITE_INTEGER) {
    int64_t x = sqlite3_value_int64(v);
    if (is_lower) {
      if (strict) {
        if (x == INT64_MAX) return 0;
        x++;
      }
      if (x > *lo) *lo = x;
    } else {
      if (strict) {
        if (x == INT64_MIN) return 0;
        x--;
      }
      if (x < *hi) *hi = x;
    }
  } else if (type == SQLITE_FLOAT) {
    double d = sqlite3_value_double(v);
    if (is_lower) {
      double b = strict ? floor(d) + 1 : ceil(d);
      if (b >= 9223372036854775808.0) return 0;
      if (b > -9223372036854775808.0 && (int64_t)b > *lo) *lo = (int64_t)b;
    } else {
      double b = strict ? ceil(d) - 1 : floor(d);
      if (b < -9223372036854775808.0) return 0;
      if (b < 9223372036854775808.0 && (int64_t)b < *hi) *hi = (int64_t)b;
    }
  }
  return *lo <= *hi;
}

static int compare_ids(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

/* Collect the ids of an EQ or IN constraint, sorted and unique. */
static int collect_ids(embed_cursor *cur, sqlite3_value *arg, int is_in) {
  int64_t cap = 16, n = 0, id;
  int rc = SQLITE_OK;
  sqlite3_value *v = 0;
  int64_t *ids;
  if (!is_in) { /* the point lookup of every join step: no allocation */
    cur->ids = &cur->one_id;
    cur->n_ids = value_as_id(arg, &cur->one_id);
    return SQLITE_OK;
  }
  ids = (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * 8);
  if (!ids) return SQLITE_NOMEM;
  for (rc = sqlite3_vtab_in_first(arg, &v); rc == SQLITE_OK && v;
       rc = sqlite3_vtab_in_next(arg, &v)) {
    if (!value_as_id(v, &id)) continue;
    if (n == cap) {
      int64_t *grown =
          (int64_t *)sqlite3_realloc64(ids, (sqlite3_uint64)cap * 2 * 8);
      if (!grown) {
        rc = SQLITE_NOMEM;
        break;
      }
      ids = grown;
      cap *= 2;
    }
    ids[n++] = id;
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  if (rc) {
    sqlite3_free(ids);
    return rc;
  }
  if (n > 1) {
    int64_t i, w = 1;
    qsort(ids, (size_t)n, sizeof(int64_t), compare_ids);
    for (i = 1; i < n; i++)
      if (ids[i] != ids[w - 1]) ids[w++] = ids[i];
    n = w;
  }
  cur->ids = ids;
  cur->n_ids = n;
  return SQLITE_OK;
}

/* Position a list cursor on the first existing id at or after pos. */
static int list_seek(embed_cursor *cur) {
  int rc;
  cur->have_vector = 0;
  for (; cur->pos < cur->n_ids; cur->pos++) {
    char *zErr = 0;
    rc = embed_rows_seek(&cur->rows, cur->ids[cur->pos], &zErr);
    if (rc == SQLITE_OK) {
      cur->id = cur->ids[cur->pos];
      cur->row = 0;
      cur->eof = 0;
      return SQLITE_OK;
    }
    if (rc != SQLITE_NOTFOUND) {
      if (zErr) vtab_error((embed_vtab *)cur->base.pVtab, rc, zErr);
      return rc;
    }
    sqlite3_free(zErr);
  }
  cur->eof = 1;
  return SQLITE_OK;
}

/* The current list row's stored bytes (read once per row). */
static int list_vector(embed_cursor *cur, const void **out, char **pzErr) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  int rc;
  if (!cur->vector) {
    cur->vector = sqlite3_malloc64((sqlite3_uint64)tab->cfg.dim * 4);
    if (!cur->vector) return SQLITE_NOMEM;
  }
  if (!cur->have_vector) {
    rc = embed_rows_read_bytes(&cur->rows, cur->vector, pzErr);
    if (rc) return rc;
    cur->have_vector = 1;
  }
  *out = cur->vector;
  return SQLITE_OK;
}

static int scan_step(embed_cursor *cur) {
  int rc = sqlite3_step(cur->row);
  if (rc == SQLITE_ROW) {
    cur->id = sqlite3_column_int64(cur->row, 0);
    cur->eof = 0;
    return SQLITE_OK;
  }
  cur->eof = 1;
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int open_scan(embed_cursor *cur, int desc, int64_t lo, int64_t hi) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  int rc = prepare_shadow(tab, &cur->scan_stmt[desc],
                          desc ? "SELECT id, vector FROM \"%w\".\"%w_vectors\" "
                                 "WHERE id BETWEEN ?1 AND ?2 ORDER BY id DESC"
                               : "SELECT id, vector FROM \"%w\".\"%w_vectors\" "
                                 "WHERE id BETWEEN ?1 AND ?2 ORDER BY id");
  if (rc) return rc;
  cur->row = cur->scan_stmt[desc];
  cur->row_vector_col = 1;
  sqlite3_bind_int64(cur->row, 1, lo);
  sqlite3_bind_int64(cur->row, 2, hi);
  return SQLITE_OK;
}

/* Read k from `k = ?` or LIMIT (+ OFFSET); exactly one must be given. */
static int knn_k(embed_vtab *tab, int plan, sqlite3_value *kv,
                 sqlite3_value *limitv, sqlite3_value *offsetv, int64_t *k) {
  sqlite3_value *v = (plan & PLAN_K) ? kv : limitv;
  if (!(plan & (PLAN_K | PLAN_LIMIT)) && (plan & PLAN_ALL)) {
    *k = 0; /* rank every row; SQLite's own LIMIT cuts the result */
    return SQLITE_OK;
  }
  if (!(plan & (PLAN_K | PLAN_LIMIT)))
    return vtab_error(tab, SQLITE_ERROR,
                      sqlite3_mprintf("embedding %s: a MATCH search needs "
                                      "k = N or ORDER BY distance",
                                      tab->name));
  if (sqlite3_value_numeric_type(v) != SQLITE_INTEGER ||
      sqlite3_value_int64(v) < 1 || sqlite3_value_int64(v) > EMBED_MAX_K)
    return vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: k must be an integer in [1, %d], got %s",
                        tab->name, EMBED_MAX_K,
                        sqlite3_value_text(v)
                            ? (const char *)sqlite3_value_text(v)
                            : "NULL"));
  *k = sqlite3_value_int64(v);
  if (offsetv && sqlite3_value_numeric_type(offsetv) == SQLITE_INTEGER &&
      sqlite3_value_int64(offsetv) > 0) {
    int64_t off = sqlite3_value_int64(offsetv);
    *k = off > EMBED_MAX_K ? EMBED_MAX_K + *k : *k + off;
    if (*k > 2 * EMBED_MAX_K) *k = 2 * EMBED_MAX_K;
  }
  return SQLITE_OK;
}

/* Rank the rows the id filters allow by reading the table itself. */
static int scan_knn(embed_cursor *cur, const embed_vec *q, double qnorm,
                    int has_list, int64_t lo, int64_t hi, embed_topk *topk) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  char *zErr = 0;
  int rc;
  float *row = (float *)sqlite3_malloc64((sqlite3_uint64)tab->cfg.dim * 4);
  if (!row) return SQLITE_NOMEM;
  if (has_list) {
    rc = list_seek(cur);
  } else {
    rc = open_scan(cur, 0, lo, hi);
    if (rc == SQLITE_OK) rc = scan_step(cur);
  }
  while (rc == SQLITE_OK && !cur->eof) {
    rc = has_list ? embed_rows_read(&cur->rows, row, &zErr)
                  : stored_column(tab, cur->id, cur->row, cur->row_vector_col,
                                  row, &zErr);
    if (rc) {
      vtab_error(tab, rc, zErr);
      break;
    }
    embed_topk_push(topk, cur->id,
                    embed_distance(tab->cfg.metric, q->v, qnorm, row,
                                   tab->cfg.metric == EMBED_METRIC_COSINE
                                       ? embed_norm2(row, tab->cfg.dim)
                                       : 0,
                                   tab->cfg.dim));
    if (has_list) {
      cur->pos++;
      rc = list_seek(cur);
    } else {
      rc = scan_step(cur);
    }
  }
  sqlite3_free(row);
  return rc;
}

/* Run an exact k-nearest search over the rows the id filters allow: on the
** in-memory snapshot when it is usable (search.c), else on the table. */
static int run_knn(embed_cursor *cur, sqlite3_value *query, int64_t k,
                   int has_list, int64_t lo, int64_t hi) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  embed_vec q = {0, 0};
  embed_topk topk;
  embed_snapshot *snap = 0;
  char *zErr = 0;
  double qnorm;
  int rc = embed_vec_from_value(query, tab->label, &q, &zErr);
  if (rc) return vtab_error(tab, rc, zErr);
  if (!q.v)
    return vtab_error(tab, SQLITE_ERROR,
                      sqlite3_mprintf("embedding %s: the MATCH query "
                                      "vector is NULL",
                                      tab->name));
  if (q.dim != tab->cfg.dim) {
    rc = vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: dimension mismatch "
                        "(%lld vs %lld)",
                        tab->name, (long long)q.dim, (long long)tab->cfg.dim));
    embed_vec_free(&q);
    return rc;
  }
  qnorm = embed_norm2(q.v, q.dim);
  memset(&topk, 0, sizeof(topk));
  rc = embed_topk_init(&topk, k);
  if (rc == SQLITE_OK) {
    rc = embed_snapshot_get(tab, &snap, &zErr);
    if (rc) vtab_error(tab, rc, zErr);
  }
  if (rc == SQLITE_OK && snap)
    embed_snapshot_search(snap, tab->cfg.metric, q.v, qnorm,
                          has_list ? cur->ids : 0, cur->n_ids, lo, hi, &topk);
  else if (rc == SQLITE_OK)
    rc = scan_knn(cur, &q, qnorm, has_list, lo, hi, &topk);
  if (rc == SQLITE_OK && topk.nomem) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    cur->n_ids = embed_topk_finish(&topk);
    cur->hits = topk.heap;
    topk.heap = 0;
    cur->pos = 0;
    cur->is_knn = 1;
    cur->k = k;
    cur->eof = cur->n_ids == 0;
    if (!cur->eof) cur->id = cur->hits[0].id;
    cur->row = 0;
  }
  embed_topk_free(&topk);
  embed_vec_free(&q);
  return rc;
}

static int embedFilter_impl(sqlite3_vtab_cursor *pCursor, int idxNum,
                            const char *idxStr, int argc,
                            sqlite3_value **argv) {
  embed_cursor *cur = (embed_cursor *)pCursor;
  int plan = idxNum, a = 0, rc;
  int64_t lo = INT64_MIN, hi = INT64_MAX;
  int nonempty = 1;
  sqlite3_value *query = 0, *kv = 0, *limitv = 0, *offsetv = 0;
  (void)idxStr;
  (void)argc;
  cursor_reset(cur);
  if (plan & (PLAN_EQ | PLAN_IN)) {
    rc = collect_ids(cur, argv[a++], (plan & PLAN_IN) != 0);
    if (rc) return rc;
    cur->is_list = 1;
  }
  if (plan & PLAN_LO)
    nonempty &= narrow_range(argv[a++], 1, (plan & PLAN_LO_GT) != 0, &lo, &hi);
  if (plan & PLAN_HI)
    nonempty &= narrow_range(argv[a++], 0, (plan & PLAN_HI_LT) != 0, &lo, &hi);
  if (plan & PLAN_KNN) query = argv[a++];
  if (plan & PLAN_K) kv = argv[a++];
  if (plan & PLAN_LIMIT) limitv = argv[a++];
  if (plan & PLAN_OFFSET) offsetv = argv[a++];

  if (plan & PLAN_KNN) {
    int64_t k = 0;
    rc = knn_k((embed_vtab *)pCursor->pVtab, plan, kv, limitv, offsetv, &k);
    if (rc) return rc;
    if (!nonempty) return SQLITE_OK;
    return run_knn(cur, query, k, cur->is_list, lo, hi);
  }
  if (cur->is_list) return list_seek(cur);
  if (!nonempty) return SQLITE_OK;
  rc = open_scan(cur, (plan & PLAN_DESC) != 0, lo, hi);
  if (rc) return rc;
  return scan_step(cur);
}

static int embedNext_impl(sqlite3_vtab_cursor *pCursor) {
  embed_cursor *cur = (embed_cursor *)pCursor;
  if (cur->is_knn) {
    cur->pos++;
    cur->eof = cur->pos >= cur->n_ids;
    if (!cur->eof) cur->id = cur->hits[cur->pos].id;
    return SQLITE_OK;
  }
  if (cur->is_list) {
    cur->pos++;
    return list_seek(cur);
  }
  return scan_step(cur);
}

static int embedEof(sqlite3_vtab_cursor *pCursor) {
  return ((embed_cursor *)pCursor)->eof;
}

/* The current KNN row's vector, fetched on demand. */
static int knn_vector(embed_cursor *cur, sqlite3_context *ctx) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  int rc =
      prepare_shadow(tab, &cur->point_stmt,
                     "SELECT vector FROM \"%w\".\"%w_vectors\" WHERE id = ?1");
  if (rc) return rc;
  sqlite3_reset(cur->point_stmt);
  sqlite3_bind_int64(cur->point_stmt, 1, cur->id);
  rc = sqlite3_step(cur->point_stmt);
  if (rc == SQLITE_ROW) {
    sqlite3_result_value(ctx, sqlite3_column_value(cur->point_stmt, 0));
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK; /* deleted since the search: NULL */
  }
  sqlite3_reset(cur->point_stmt);
  return rc;
}

static int embedColumn_impl(sqlite3_vtab_cursor *pCursor, sqlite3_context *ctx,
                            int col) {
  embed_cursor *cur = (embed_cursor *)pCursor;
  embed_vtab *tab = (embed_vtab *)pCursor->pVtab;
  switch (col) {
    case COL_ID:
      sqlite3_result_int64(ctx, cur->id);
      break;
    case COL_VECTOR: {
      const void *blob;
      int nbytes, rc;
      char *zErr = 0;
      if (sqlite3_vtab_nochange(ctx)) break; /* UPDATE not touching it */
      if (cur->is_knn) return knn_vector(cur, ctx);
      if (cur->is_list) {
        rc = list_vector(cur, &blob, &zErr);
        if (rc == SQLITE_NOTFOUND) break; /* deleted since the seek: NULL */
        if (rc) return vtab_error(tab, rc, zErr);
        nbytes = (int)(tab->cfg.dim * 4);
      } else {
        rc = stored_column(tab, cur->id, cur->row, cur->row_vector_col, 0,
                           &zErr);
        if (rc) return vtab_error(tab, rc, zErr);
        blob = sqlite3_column_blob(cur->row, cur->row_vector_col);
        nbytes = sqlite3_column_bytes(cur->row, cur->row_vector_col);
      }
      sqlite3_result_blob(ctx, blob, nbytes, SQLITE_TRANSIENT);
      break;
    }
    case COL_DISTANCE:
      if (cur->is_knn) sqlite3_result_double(ctx, cur->hits[cur->pos].distance);
      break;
    case COL_K:
      if (cur->is_knn) sqlite3_result_int64(ctx, cur->k);
      break;
    default:
      break;
  }
  return SQLITE_OK;
}

static int embedRowid(sqlite3_vtab_cursor *pCursor, sqlite_int64 *pRowid) {
  *pRowid = ((embed_cursor *)pCursor)->id;
  return SQLITE_OK;
}

/* -------------------------------------------------------------- writing */

/* The id an INSERT gives (rowid and/or id column; both must agree), or an
** UPDATE gives (whichever of the two differs from the old id). */
static int written_id(embed_vtab *tab, sqlite3_value *old, sqlite3_value *rowid,
                      sqlite3_value *idcol, int *given, int64_t *id) {
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
    return vtab_error(
        tab, SQLITE_CONSTRAINT,
        sqlite3_mprintf("NOT NULL constraint failed: %s.id", tab->name));
  }
  if (sqlite3_value_type(v) == SQLITE_INTEGER) {
    *id = sqlite3_value_int64(v);
  } else if (sqlite3_value_type(v) == SQLITE_FLOAT && value_as_id(v, id)) {
    /* integral REAL: accepted as the integer it equals */
  } else {
    return vtab_error(
        tab, SQLITE_MISMATCH,
        sqlite3_mprintf("embedding %s: id must be an integer, "
                        "got %s",
                        tab->name, embed_type_name(sqlite3_value_type(v))));
  }
  if (!old && v == idcol && sqlite3_value_type(rowid) != SQLITE_NULL &&
      value_as_id(rowid, &a) && a != *id)
    return vtab_error(tab, SQLITE_ERROR,
                      sqlite3_mprintf("embedding %s: rowid %lld and id %lld "
                                      "differ",
                                      tab->name, (long long)a, (long long)*id));
  if (old && v == idcol && value_as_id(rowid, &b) &&
      b != sqlite3_value_int64(old) && b != *id)
    return vtab_error(tab, SQLITE_ERROR,
                      sqlite3_mprintf("embedding %s: rowid %lld and id %lld "
                                      "differ",
                                      tab->name, (long long)b, (long long)*id));
  return SQLITE_OK;
}

/* Parse and check a vector written to the table. */
static int written_vector(embed_vtab *tab, sqlite3_value *val, embed_vec *out) {
  char *zErr = 0;
  int rc = embed_vec_from_value(val, tab->label, out, &zErr);
  if (rc) return vtab_error(tab, rc, zErr);
  if (out->v && out->dim != tab->cfg.dim) {
    rc = vtab_error(tab, SQLITE_ERROR,
                    sqlite3_mprintf("embedding %s: dimension mismatch "
                                    "(%lld vs %lld)",
                                    tab->name, (long long)out->dim,
                                    (long long)tab->cfg.dim));
    embed_vec_free(out);
  }
  return rc;
}

static int next_free_id(embed_vtab *tab, int64_t *id) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, STMT_MAXID, &stmt);
  if (rc) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(stmt, 0) == SQLITE_NULL) {
      *id = 0;
      rc = SQLITE_OK;
    } else if (sqlite3_column_int64(stmt, 0) == INT64_MAX) {
      rc = vtab_error(tab, SQLITE_FULL,
                      sqlite3_mprintf("embedding %s: no id left after %lld",
                                      tab->name, (long long)INT64_MAX));
    } else {
      *id = sqlite3_column_int64(stmt, 0) + 1;
      rc = SQLITE_OK;
    }
  }
  sqlite3_reset(stmt);
  return rc;
}

static int unique_failed(embed_vtab *tab) {
  return vtab_error(
      tab, SQLITE_CONSTRAINT,
      sqlite3_mprintf("UNIQUE constraint failed: %s.id", tab->name));
}

/* Insert row id with vector v (floats), or with raw, a valid stored-form
** BLOB of the table's dimension, bound as it is (no copy). */
static int insert_row(embed_vtab *tab, int64_t id, const float *v,
                      const void *raw) {
  int mode = sqlite3_vtab_on_conflict(tab->db);
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab,
                            mode == SQLITE_REPLACE  ? STMT_INSERT_REPLACE
                            : mode == SQLITE_IGNORE ? STMT_INSERT_IGNORE
                                                    : STMT_INSERT,
                            &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = raw ? sqlite3_bind_blob64(stmt, 2, raw, (sqlite3_uint64)tab->cfg.dim * 4,
                                 SQLITE_STATIC)
           : bind_vector(stmt, 2, v, tab->cfg.dim);
  if (rc == SQLITE_OK) rc = step_done(stmt);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) return unique_failed(tab);
  return rc;
}

/* Run a cached statement taking ids ?1 (and ?2) to completion. */
static int run_ids(embed_vtab *tab, embed_stmt which, int64_t a, int64_t b) {
  sqlite3_stmt *stmt;
  int rc = embed_table_stmt(tab, which, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, a);
  if (sqlite3_bind_parameter_count(stmt) > 1) sqlite3_bind_int64(stmt, 2, b);
  return step_done(stmt);
}

/* Delete row id and its optimizer state. */
static int delete_row(embed_vtab *tab, int64_t id) {
  int rc = run_ids(tab, STMT_DELETE, id, 0);
  if (rc == SQLITE_OK) rc = run_ids(tab, STMT_STATE_DELETE, id, 0);
  return rc;
}

/* UPDATE ... SET id = new: move the row, honouring the conflict mode. */
static int move_row(embed_vtab *tab, int64_t old_id, int64_t new_id) {
  int mode = sqlite3_vtab_on_conflict(tab->db), rc;
  float *probe = (float *)sqlite3_malloc64((sqlite3_uint64)tab->cfg.dim * 4);
  char *zErr = 0;
  if (!probe) return SQLITE_NOMEM;
  rc = embed_table_read(tab, new_id, probe, &zErr);
  sqlite3_free(probe);
  if (rc == SQLITE_OK || rc == SQLITE_CORRUPT_VTAB) { /* target exists */
    sqlite3_free(zErr);
    if (mode != SQLITE_REPLACE) return unique_failed(tab);
    rc = delete_row(tab, new_id);
    if (rc) return rc;
  } else if (rc != SQLITE_NOTFOUND) {
    return rc;
  }
  rc = run_ids(tab, STMT_MOVE, old_id, new_id);
  if (rc == SQLITE_OK) rc = run_ids(tab, STMT_STATE_MOVE, old_id, new_id);
  return rc;
}

static int embedUpdate_impl(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                            sqlite_int64 *pRowid) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  embed_vec vec = {0, 0};
  int64_t id = 0;
  int given = 0, rc;

  if (argc == 1) return delete_row(tab, sqlite3_value_int64(argv[0]));

  if (sqlite3_value_type(argv[2 + COL_DISTANCE]) != SQLITE_NULL ||
      sqlite3_value_type(argv[2 + COL_K]) != SQLITE_NULL)
    return vtab_error(tab, SQLITE_ERROR,
                      sqlite3_mprintf("embedding %s: distance and k are "
                                      "search columns and cannot be written",
                                      tab->name));
  rc = written_id(tab, sqlite3_value_type(argv[0]) == SQLITE_NULL ? 0 : argv[0],
                  argv[1], argv[2 + COL_ID], &given, &id);
  if (rc) return rc;

  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) { /* INSERT */
    sqlite3_value *given_vector = argv[2 + COL_VECTOR];
    const void *raw = 0;
    embed_error err;
    if (sqlite3_value_type(given_vector) == SQLITE_BLOB &&
        sqlite3_value_bytes(given_vector) == tab->cfg.dim * 4 &&
        embed_blob_check(sqlite3_value_blob(given_vector), tab->cfg.dim,
                         &err) == EMBED_OK) {
      raw = sqlite3_value_blob(given_vector); /* stored as given */
    } else {
      rc = written_vector(tab, given_vector, &vec);
      if (rc) return rc;
    }
    if (!given) rc = next_free_id(tab, &id);
    if (rc == SQLITE_OK && !vec.v && !raw) {
      vec.v = (float *)sqlite3_malloc64((sqlite3_uint64)tab->cfg.dim * 4);
      if (!vec.v) {
        rc = SQLITE_NOMEM;
      } else if (tab->cfg.has_padding_idx && id == tab->cfg.padding_idx) {
        memset(vec.v, 0, (size_t)tab->cfg.dim * 4);
      } else {
        embed_initial_row(tab->cfg.init, (uint64_t)tab->cfg.seed, id, vec.v,
                          tab->cfg.dim);
      }
    }
    if (rc == SQLITE_OK) rc = insert_row(tab, id, vec.v, raw);
    if (rc == SQLITE_OK) *pRowid = id;
  } else { /* UPDATE */
    int64_t old_id = sqlite3_value_int64(argv[0]);
    int vector_changed = !sqlite3_value_nochange(argv[2 + COL_VECTOR]);
    if (vector_changed) {
      rc = written_vector(tab, argv[2 + COL_VECTOR], &vec);
      if (rc) return rc;
      if (!vec.v)
        return vtab_error(tab, SQLITE_CONSTRAINT,
                          sqlite3_mprintf("NOT NULL constraint failed: "
                                          "%s.vector",
                                          tab->name));
    }
    if (id != old_id) rc = move_row(tab, old_id, id);
    if (rc == SQLITE_OK && vector_changed)
      rc = embed_table_write(tab, id, vec.v);
  }
  embed_vec_free(&vec);
  return rc;
}

/* Every failure of a cursor or write method names the table, even when it
** comes from a nested statement (a missing or damaged shadow table). */
static int named(embed_vtab *tab, int rc) {
  if (rc == SQLITE_OK || rc == SQLITE_NOMEM || tab->base.zErrMsg) return rc;
  tab->base.zErrMsg = sqlite3_mprintf("embedding %s: %s", tab->name,
                                      sqlite3_errcode(tab->db) != SQLITE_OK
                                          ? sqlite3_errmsg(tab->db)
                                          : sqlite3_errstr(rc));
  return rc;
}

static int embedFilter(sqlite3_vtab_cursor *pCursor, int idxNum,
                       const char *idxStr, int argc, sqlite3_value **argv) {
  return named((embed_vtab *)pCursor->pVtab,
               embedFilter_impl(pCursor, idxNum, idxStr, argc, argv));
}

static int embedNext(sqlite3_vtab_cursor *pCursor) {
  return named((embed_vtab *)pCursor->pVtab, embedNext_impl(pCursor));
}

static int embedColumn(sqlite3_vtab_cursor *pCursor, sqlite3_context *ctx,
                       int col) {
  return named((embed_vtab *)pCursor->pVtab,
               embedColumn_impl(pCursor, ctx, col));
}

static int embedUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                       sqlite_int64 *pRowid) {
  return named((embed_vtab *)pVtab,
               embedUpdate_impl(pVtab, argc, argv, pRowid));
}

static sqlite3_module embed_module = {
    3,                 /* iVersion: xShadowName */
    embedCreate,       /* xCreate */
    embedConnect,      /* xConnect */
    embedBestIndex,    /* xBestIndex */
    embedDisconnect,   /* xDisconnect */
    embedDestroy,      /* xDestroy */
    embedOpen,         /* xOpen */
    embedClose,        /* xClose */
    embedFilter,       /* xFilter */
    embedNext,         /* xNext */
    embedEof,          /* xEof */
    embedColumn,       /* xColumn */
    embedRowid,        /* xRowid */
    embedUpdate,       /* xUpdate */
    0,                 /* xBegin */
    0,                 /* xSync */
    0,                 /* xCommit */
    0,                 /* xRollback */
    embedFindFunction, /* xFindFunction */
    embedRename,       /* xRename */
    0,                 /* xSavepoint */
    0,                 /* xRelease */
    0,                 /* xRollbackTo */
    embedShadowName,   /* xShadowName */
#if SQLITE_VERSION_NUMBER >= 3044000
    0, /* xIntegrity */
#endif
};

/* SQLite's placeholder match() is not INNOCUOUS, so with trusted_schema off
** a view could not search (`unsafe use of MATCH()`). The table consumes
** every usable MATCH itself; this stand-in, marked innocuous, only runs when
** nothing consumed it, and fails as the placeholder does. */
static void match_placeholder(sqlite3_context *ctx, int argc,
                              sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_error(
      ctx, "unable to use function MATCH in the requested context", -1);
}

int embed_register_vtab(sqlite3 *db, embed_registry *registry) {
  int rc = sqlite3_create_module_v2(db, "embedding", &embed_module, registry,
                                    embed_registry_free);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "match", 2,
                                    SQLITE_UTF8 | SQLITE_INNOCUOUS, 0,
                                    match_placeholder, 0, 0, 0);
  return rc;
}
