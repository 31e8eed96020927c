/*
** store_stmt.c - the statements of the storage layer (table/store.h): the
** cache of prepared statements on the shadow tables, and the insert buffer,
** rows that INSERT gave, kept in memory and written to T_vectors many at a
** time, so that a bulk INSERT ... SELECT costs about what it costs on an
** ordinary table instead of one nested statement run per row. The two
** share a file because every statement on T_vectors writes the buffer
** first.
**
** Usage (the other store files; nobody above the layer sees either):
**
**     rc = store_stmt_get(st, STMT_READ, &stmt);   // cached, prepared once
**     rc = store_step_done(stmt);                  // run a write, reset
**     rc = store_pending_add(st, id, bytes);  // SQLITE_NOTFOUND: not taken
**     store_pending_settle(st);               // before T_vectors is used
**     embed_store_flush(st) / embed_store_discard(st)   // store_log.c
**
** Design of the cache:
**  - Each shadow table's name and DDL is spelled once (store_schema.c);
**    opening a store computes its quoted name "S"."T_suffix" once, and
**    every statement's SQL below names its table with a %s filled from
**    there.
**  - Statements are prepared on first use with SQLITE_PREPARE_PERSISTENT
**    and SQLITE_PREPARE_NO_VTAB (a virtual table standing in for a shadow
**    table is refused, never used), reset after each use and finalized by
**    embed_store_close. store_prepare frees the SQL text and keeps a
**    sticky result code, so a sequence of prepares checks once.
**
** Design of the buffer:
**  - Rows wait only inside one statement whose end SQLite reports to the
**    table before any other statement of the connection runs, so that not
**    even a statement reading T_vectors itself can find a row missing: an
**    autocommit statement (its end is xSync or xRollback), or, inside
**    BEGIN ... COMMIT, a statement from its second inserted row on (it
**    writes several rows, so it has a statement journal, whose end is
**    xRelease or xRollbackTo; pending_in_statement), in a memory database,
**    or a file table whose flushes need no statement journal (see
**    STORE_PENDING_FILE_BYTES). A one-row INSERT inside BEGIN
**    gives no such sign and goes in at once.
**  - Only a row that cannot conflict is buffered: its id is above every id
**    the table holds. The store learns the table's largest id once (one
**    max(id) lookup when a buffer starts) and then keeps an upper bound of
**    it through its own inserts and moves, so the rows of the buffer are
**    ascending, distinct and new, and writing them later cannot fail on a
**    UNIQUE constraint that the INSERT itself would have reported. Any
**    other row (lower id, no id given, a big-endian host) is inserted at
**    once, after the buffer is written.
**  - Read-your-writes inside the statement: every access to T_vectors by
**    the store (a cached statement on it, a scan, a blob handle, a rename)
**    writes the buffer first (store_pending_settle). Nothing above the
**    storage layer can reach T_vectors another way.
**  - The buffer is written when it holds a batch (store_pending_batch: the
**    rows of one multi-row INSERT), when the transaction commits (xSync)
**    and when a savepoint or statement journal opens or ends (xSavepoint,
**    xRelease), as
**    FTS3/4 write their pending terms; ROLLBACK and ROLLBACK TO forget it,
**    since every buffered row is newer than the last savepoint. COMMIT and
**    ROLLBACK also forget the largest-id bound: another connection may
**    insert between two transactions.
**  - A write that fails keeps the rows not yet written (a multi-row
**    INSERT is a statement of its own: it is written whole or not at
**    all), so nothing is lost or written twice; the error fails the
**    statement or the COMMIT that caused the write. The caller's
**    last_insert_rowid() is kept.
*/
#include <string.h>

#include "table/store_int.h"

static const struct {
  int on;
  const char *sql;
} store_sql[STORE_N_STMT] = {
    [STMT_READ] = {SHADOW_VECTORS, "SELECT vector FROM %s WHERE id = ?1"},
    [STMT_WRITE] = {SHADOW_VECTORS, "UPDATE %s SET vector = ?2 WHERE id = ?1"},
    [STMT_INSERT] = {SHADOW_VECTORS,
                     "INSERT INTO %s(id, vector) VALUES (?1, ?2)"},
    [STMT_INSERT_REPLACE] =
        {SHADOW_VECTORS,
         "INSERT OR REPLACE INTO %s(id, vector) VALUES (?1, ?2)"},
    [STMT_INSERT_IGNORE] =
        {SHADOW_VECTORS,
         "INSERT OR IGNORE INTO %s(id, vector) VALUES (?1, ?2)"},
    [STMT_INSERT_MANY] = {SHADOW_VECTORS, 0}, /* store_insert_many_sql() */
    [STMT_DELETE] = {SHADOW_VECTORS, "DELETE FROM %s WHERE id = ?1"},
    [STMT_MOVE] = {SHADOW_VECTORS, "UPDATE %s SET id = ?2 WHERE id = ?1"},
    [STMT_MAXID] = {SHADOW_VECTORS, "SELECT max(id) FROM %s"},
    [STMT_COUNT] = {SHADOW_VECTORS, "SELECT count(*) FROM %s"},
    [STMT_STATE_READ] = {SHADOW_STATE, "SELECT state FROM %s WHERE id = ?1"},
    [STMT_STATE_WRITE] =
        {SHADOW_STATE, "INSERT OR REPLACE INTO %s(id, state) VALUES (?1, ?2)"},
    [STMT_STATE_DELETE] = {SHADOW_STATE, "DELETE FROM %s WHERE id = ?1"},
    [STMT_STATE_MOVE] = {SHADOW_STATE, "UPDATE %s SET id = ?2 WHERE id = ?1"},
    [STMT_STATE_CLEAR] = {SHADOW_STATE, "DELETE FROM %s"},
    [STMT_STATE_MARK] = {SHADOW_STATE,
                         "INSERT INTO %s(id, state) VALUES (?1, x'')"},
    [STMT_STEP_READ] = {SHADOW_CONFIG,
                        "SELECT value FROM %s WHERE key = 'step'"},
    [STMT_STEP_WRITE] =
        {SHADOW_CONFIG,
         "INSERT OR REPLACE INTO %s(key, value) VALUES ('step', ?1)"},
    [STMT_CONFIG_WRITE] = {SHADOW_CONFIG,
                           "INSERT INTO %s(key, value) VALUES (?1, ?2)"},
    [STMT_DATA_VERSION] = {ON_SCHEMA, "PRAGMA %s.data_version"},
    [STMT_SCHEMA_VERSION] = {ON_NONE, "PRAGMA main.schema_version"},
    [STMT_ROLLBACK] = {ON_NONE, "ROLLBACK"},
    [STMT_LOG_APPEND] = {SHADOW_LOG, "INSERT INTO %s(ids) VALUES (?1)"},
    [STMT_LOG_HEAD] = {SHADOW_LOG, "SELECT max(seq) FROM %s"},
    [STMT_LOG_TAIL] = {SHADOW_LOG, "SELECT min(seq) FROM %s"},
    [STMT_LOG_READ] = {SHADOW_LOG,
                       "SELECT ids FROM %s WHERE seq > ?1 AND seq <= ?2"},
    [STMT_LOG_TRIM] = {SHADOW_LOG, "DELETE FROM %s WHERE seq <= ?1"},
    [STMT_INDEX_HEAD] =
        {SHADOW_CONFIG,
         "SELECT key, value FROM %s WHERE key IN ('index_build', 'index_seq')"},
    [STMT_INDEX_CODES] = {SHADOW_CONFIG,
                          "SELECT value FROM %s WHERE key = 'index_codes'"},
    [STMT_INDEX_CLEAR] = {SHADOW_CELLS, "DELETE FROM %s"},
    [STMT_INDEX_PUT] =
        {SHADOW_CELLS,
         "INSERT INTO %s(cell, grp, centroid, ids) VALUES (?1, ?2, ?3, ?4)"},
    [STMT_INDEX_READ] =
        {SHADOW_CELLS, "SELECT cell, grp, centroid, ids FROM %s ORDER BY cell"},
    [STMT_CONFIG_PUT] =
        {SHADOW_CONFIG,
         "INSERT OR REPLACE INTO %s(key, value) VALUES (?1, ?2)"},
};

/* --------------------------------------------------------- statements */

int store_prepare(embed_store *st, sqlite3_stmt **slot, char *zSql, int *rc) {
  if (*rc == SQLITE_OK) {
    *rc = zSql ? sqlite3_prepare_v3(st->db, zSql, -1, STORE_PREPARE_FLAGS, slot,
                                    0)
               : SQLITE_NOMEM;
  }
  sqlite3_free(zSql);
  return *rc;
}

/* INSERT [OR IGNORE] INTO T_vectors(id, vector) VALUES (?, ?), ... once
** per row of the insert buffer's batch (OR IGNORE: pending_no_journal).
** Built without the connection, so that its SQLITE_LIMIT_LENGTH (a limit
** on values) does not cut the text. */
static int pending_no_journal(embed_store *st);

static char *store_insert_many_sql(embed_store *st) {
  sqlite3_str *sql = sqlite3_str_new(0);
  int i;
  sqlite3_str_appendf(sql, "INSERT%s INTO %s(id, vector) VALUES (?, ?)",
                      pending_no_journal(st) ? " OR IGNORE" : "",
                      st->names[SHADOW_VECTORS]);
  for (i = 1; i < store_pending_batch(st); i++)
    sqlite3_str_appendall(sql, ", (?, ?)");
  return sqlite3_str_finish(sql);
}

/* The cached statement `which`, prepared on first use. A statement on
** T_vectors first writes the rows the insert buffer holds. */
int store_stmt_get(embed_store *st, store_stmt which, sqlite3_stmt **out) {
  int rc = SQLITE_OK;
  *out = 0;
  if (store_sql[which].on == SHADOW_VECTORS) {
    rc = store_pending_settle(st);
    if (rc) return rc;
  }
  if (!st->stmt[which]) {
    const char *on =
        store_sql[which].on == ON_NONE ? "" : st->names[store_sql[which].on];
    store_prepare(st, &st->stmt[which],
                  which == STMT_INSERT_MANY
                      ? store_insert_many_sql(st)
                      : sqlite3_mprintf(store_sql[which].sql, on),
                  &rc);
  }
  *out = st->stmt[which];
  return rc;
}

/* Run a write statement to completion and reset it. Its parameters stay
** bound (each use binds them all again); a BLOB bound SQLITE_STATIC is
** never read after the reset. */
int store_step_done(sqlite3_stmt *stmt) {
  int rc = sqlite3_step(stmt);
  int rc2 = sqlite3_reset(stmt);
  if (rc == SQLITE_DONE) return SQLITE_OK;
  return rc2 ? rc2 : rc;
}

/* Run a cached statement returning one integer (SQLITE_NOTFOUND: no row). */
int store_int(embed_store *st, store_stmt which, int64_t *out) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, which, &stmt);
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

/* Bind v as a float32 BLOB (little-endian) to parameter i of stmt. On a
** little-endian host the floats are the BLOB, bound without a copy: callers
** step and reset the statement before v goes away. */
int store_bind_vector(sqlite3_stmt *stmt, int i, const float *v, int64_t dim) {
  sqlite3_uint64 nbytes = (sqlite3_uint64)dim * EMBED_FLOAT_BYTES;
  void *blob;
  if (EMBED_HOST_LE)
    return sqlite3_bind_blob64(stmt, i, v, nbytes, SQLITE_STATIC);
  blob = sqlite3_malloc64(nbytes);
  if (!blob) return SQLITE_NOMEM;
  embed_blob_encode(v, dim, blob);
  return sqlite3_bind_blob64(stmt, i, blob, nbytes, sqlite3_free);
}

void store_finalize_all(embed_store *st) {
  int i;
  for (i = 0; i < STORE_N_STMT; i++) {
    sqlite3_finalize(st->stmt[i]);
    st->stmt[i] = 0;
  }
}

/* ---------------------------------------------------- a row's stored form */

int64_t store_row_bytes(const embed_store *st) {
  return (st->cfg.dim + st->row_state) * EMBED_FLOAT_BYTES;
}

int store_layout_new(const embed_config *cfg) {
  if (embed_optimizer_state_size(cfg, 1) == 0) return STORE_LAYOUT_LOG;
  return embed_optimizer_state_dense(cfg) ? STORE_LAYOUT_STATE_IN_ROW
                                          : STORE_LAYOUT_MOMENTUM_IN_ROW;
}

int store_row_setup(embed_store *st) {
  int64_t n = embed_optimizer_state_size(&st->cfg, st->cfg.dim);
  float *init;
  sqlite3_free(st->row_tail);
  st->row_tail = 0;
  /* a new table's layout is the first that keeps this optimizer's state
  ** in the rows (3 or 4); earlier ones keep it in T_state */
  st->row_state = n > 0 && st->layout >= store_layout_new(&st->cfg) ? n : 0;
  if (st->row_state == 0) return SQLITE_OK;
  /* the floats in the second half, their stored bytes in the first */
  init = (float *)sqlite3_malloc64(2 * (sqlite3_uint64)st->row_state *
                                   EMBED_FLOAT_BYTES);
  if (!init) return SQLITE_NOMEM;
  embed_optimizer_state_init(&st->cfg, init + st->row_state, st->cfg.dim);
  embed_blob_encode(init + st->row_state, st->row_state, init);
  st->row_tail = (unsigned char *)init;
  return SQLITE_OK;
}

void store_row_compose(const embed_store *st, const float *v, const void *raw,
                       unsigned char *out) {
  size_t weight = (size_t)st->cfg.dim * EMBED_FLOAT_BYTES;
  if (raw)
    memcpy(out, raw, weight);
  else
    embed_blob_encode(v, st->cfg.dim, out);
  if (st->row_state)
    memcpy(out + weight, st->row_tail,
           (size_t)st->row_state * EMBED_FLOAT_BYTES);
}

/* --------------------------------------------------------- insert buffer */

/* The rows of one multi-row INSERT: at most STORE_PENDING_ROWS, and in a
** database file at most STORE_PENDING_FILE_BYTES of vectors. The cap on a
** file: a statement run inside another (every flush is one) keeps a
** statement journal, which SQLite moves from memory to a temporary file
** past 64 KiB; once the page cache is full each new page of the insert
** also journals the old page it evicts, so a statement that adds more than
** a few pages makes that file, and every later statement of the
** transaction writes to it (measured: twice the writes of an ordinary
** table's insert at 64 rows of 512 bytes, none at 32). For the same reason
** a file database does not buffer inside BEGIN ... COMMIT: there the
** outer INSERT's own statement journal stays open across all the flushes,
** so their journal grows with the whole insert (measured 1.32x an
** ordinary table against 1.22-1.25x row by row). A memory database keeps
** its journals in memory; there 256 rows a statement took 5% less time
** than 64 (a 200,000-row insert; 1,024 gained nothing more). A lowered
** SQLITE_LIMIT_VARIABLE_NUMBER lowers the batch to fit.
**
** Neither limit holds for a file table whose T_vectors has this version's
** DDL, whose CHECK calls no function (store_schema.c): there a flush is
** INSERT OR IGNORE, which SQLite runs without a statement journal, so it
** takes 256 rows and also buffers inside BEGIN (a 200,000-row insert in a
** WAL file: 1.21x an ordinary table to 1.04x as one statement, 1.21x to
** 0.95x inside BEGIN, one run of bench_insert.py). A buffered row cannot
** conflict, so nothing is ignored: a flush that adds fewer rows than it
** holds met a row written into T_vectors behind the table's back, and
** fails as a plain INSERT would, on the primary key. Without a
** statement journal a flush that fails (out of memory, disk full, an I/O
** error) makes SQLite roll back the whole transaction, whose xRollback
** forgets the buffer, so no row is written twice. Memory databases keep
** the plain INSERT: its statement journal lets a failure there undo the
** one statement only. */
#define STORE_PENDING_ROWS 256
#define STORE_PENDING_FILE_BYTES (16 << 10)

static int64_t pending_row_bytes(const embed_store *st) {
  return store_row_bytes(st); /* with the state a layout 3 row starts with */
}

int store_pending_batch(embed_store *st) {
  if (!st->ins_batch) {
    const char *file = sqlite3_db_filename(st->db, st->schema);
    int params = sqlite3_limit(st->db, SQLITE_LIMIT_VARIABLE_NUMBER, -1);
    int64_t rows = STORE_PENDING_ROWS;
    st->ins_file = file && file[0];
    if (st->ins_file && !st->vectors_ddl_current &&
        rows * pending_row_bytes(st) > STORE_PENDING_FILE_BYTES)
      rows = STORE_PENDING_FILE_BYTES / pending_row_bytes(st);
    if (rows > params / 2) rows = params / 2;
    st->ins_batch = rows > 1 ? (int)rows : 1;
  }
  return st->ins_batch;
}

/* Are flushes INSERT OR IGNORE, without a statement journal (a database
** file, T_vectors of this version's DDL)? */
static int pending_no_journal(embed_store *st) {
  store_pending_batch(st); /* decides ins_file */
  return st->ins_file && st->vectors_ddl_current;
}

/* May rows wait inside BEGIN ... COMMIT (not in a file that flushes with
** a statement journal)? */
static int pending_in_begin(embed_store *st) {
  store_pending_batch(st); /* decides ins_file */
  return !st->ins_file || st->vectors_ddl_current;
}

/* Write the buffer's rows, oldest first, a batch per statement, and drop
** those written. */
static int pending_write(embed_store *st) {
  int64_t done = 0, row_bytes = pending_row_bytes(st);
  int64_t last_rowid = sqlite3_last_insert_rowid(st->db);
  int rc = SQLITE_OK;
  st->ins_writing = 1; /* store_stmt_get must not come back here */
  while (rc == SQLITE_OK && done < st->n_ins) {
    int batch = store_pending_batch(st);
    int take = batch > 1 && st->n_ins - done >= batch ? batch : 1;
    sqlite3_stmt *stmt;
    int j;
    rc = store_stmt_get(st, take > 1 ? STMT_INSERT_MANY : STMT_INSERT, &stmt);
    for (j = 0; rc == SQLITE_OK && j < take; j++) {
      sqlite3_bind_int64(stmt, 2 * j + 1, st->ins_ids[done + j]);
      rc = sqlite3_bind_blob64(stmt, 2 * j + 2,
                               st->ins_rows + (done + j) * row_bytes,
                               (sqlite3_uint64)row_bytes, SQLITE_STATIC);
    }
    if (rc == SQLITE_OK) rc = store_step_done(stmt);
    if (rc == SQLITE_OK && take > 1 && sqlite3_changes64(st->db) != take)
      rc = SQLITE_CONSTRAINT_PRIMARYKEY; /* OR IGNORE skipped a row */
    if (rc == SQLITE_OK) done += take;
  }
  st->ins_writing = 0;
  if (st->n_ins <= done) { /* all written, or a failed statement's */
    st->n_ins = 0;         /* ROLLBACK TO (xRollbackTo) forgot them */
  } else if (done > 0) {
    memmove(st->ins_ids, st->ins_ids + done,
            (size_t)(st->n_ins - done) * EMBED_ID_BYTES);
    memmove(st->ins_rows, st->ins_rows + done * row_bytes,
            (size_t)((st->n_ins - done) * row_bytes));
    st->n_ins -= done;
  }
  sqlite3_set_last_insert_rowid(st->db, last_rowid);
  return rc;
}

int store_pending_settle(embed_store *st) {
  if (st->n_ins == 0 || st->ins_writing) return SQLITE_OK;
  return pending_write(st);
}

void store_pending_saw(embed_store *st, int64_t id) {
  if (st->ins_bound_known && id > st->ins_bound) st->ins_bound = id;
}

/* Room for one more row. */
static int pending_reserve(embed_store *st) {
  int64_t cap, row_bytes = pending_row_bytes(st);
  int64_t *ids;
  unsigned char *rows;
  if (st->n_ins < st->cap_ins) return SQLITE_OK;
  cap = store_pending_batch(st); /* more only after a failed write */
  if (cap <= st->cap_ins) cap = 2 * st->cap_ins;
  ids = (int64_t *)sqlite3_realloc64(st->ins_ids,
                                     (sqlite3_uint64)cap * EMBED_ID_BYTES);
  if (!ids) return SQLITE_NOMEM;
  st->ins_ids = ids;
  rows = (unsigned char *)sqlite3_realloc64(
      st->ins_rows, (sqlite3_uint64)cap * (sqlite3_uint64)row_bytes);
  if (!rows) return SQLITE_NOMEM;
  st->ins_rows = rows;
  st->cap_ins = cap;
  return SQLITE_OK;
}

/* The one statement of the connection that is running and writes (the
** caller of xUpdate), or NULL when there are several or none. */
static sqlite3_stmt *pending_writer(sqlite3 *db) {
  sqlite3_stmt *stmt = 0, *found = 0;
  while ((stmt = sqlite3_next_stmt(db, stmt)) != 0) {
    if (!sqlite3_stmt_busy(stmt) || sqlite3_stmt_readonly(stmt)) continue;
    if (found) return 0;
    found = stmt;
  }
  return found;
}

/* Inside BEGIN ... COMMIT: may this insert wait? Only when the statement
** running it has inserted before in this run: then it writes more than one
** row, so SQLite gave it a statement journal, whose end calls xRelease
** (embed_store_flush) before any other statement runs. A run is told by
** the writer, its SQLITE_STMTSTATUS_RUN and the connection's
** total_changes(): a statement that ends adds its changes there, so a
** later statement prepared at the same address is never taken for the
** one before (and the remembered pointer is only followed while no
** statement has ended). The store's own nested statements count too:
** store_pending_note_run() takes the count after them. */
static int pending_in_statement(embed_store *st) {
  sqlite3_stmt *w = 0;
  if (st->ins_owner &&
      sqlite3_total_changes64(st->db) == st->ins_owner_changes &&
      sqlite3_stmt_busy(st->ins_owner) &&
      sqlite3_stmt_status(st->ins_owner, SQLITE_STMTSTATUS_RUN, 0) ==
          st->ins_owner_runs)
    return 1;
  w = pending_writer(st->db);
  st->ins_owner = w; /* a new run: its first insert goes in at once */
  st->ins_owner_runs = w ? sqlite3_stmt_status(w, SQLITE_STMTSTATUS_RUN, 0) : 0;
  return 0;
}

void store_pending_note_run(embed_store *st, int inserted) {
  if (sqlite3_get_autocommit(st->db)) return; /* only BEGIN asks for runs */
  st->ins_owner_changes = sqlite3_total_changes64(st->db);
  if (!inserted) st->ins_owner = 0; /* a failed statement adds no change */
}

int store_pending_add(embed_store *st, int64_t id, const void *bytes) {
  int rc;
  if (!EMBED_HOST_LE) return SQLITE_NOTFOUND;
  if (!sqlite3_get_autocommit(st->db) &&
      (!pending_in_begin(st) || !pending_in_statement(st)))
    return SQLITE_NOTFOUND;
  if (!st->ins_bound_known) { /* no row reads 0: ids <= 0 go in at once */
    rc = store_int(st, STMT_MAXID, &st->ins_bound);
    if (rc) return rc;
    st->ins_bound_known = 1;
  }
  if (id <= st->ins_bound) return SQLITE_NOTFOUND;
  rc = pending_reserve(st);
  if (rc) return rc;
  st->ins_ids[st->n_ins] = id;
  store_row_compose(st, 0, bytes,
                    st->ins_rows + st->n_ins * pending_row_bytes(st));
  st->n_ins++;
  st->ins_bound = id;
  if (st->n_ins < store_pending_batch(st)) return SQLITE_OK;
  return pending_write(st);
}

void store_pending_forget(embed_store *st) {
  st->n_ins = 0;
  st->ins_bound_known = 0;
  st->ins_owner = 0;
}

void store_pending_free(embed_store *st) {
  sqlite3_free(st->ins_ids);
  sqlite3_free(st->ins_rows);
  st->ins_ids = 0;
  st->ins_rows = 0;
  st->n_ins = st->cap_ins = 0;
}
