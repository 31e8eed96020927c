/*
** store.c - the storage of an embedding table: checked row reads and
** writes, scans, the optimizer state, versions and transaction control
** (the API and the layout are in table/store.h; store_stmt.c has the
** statement cache and the insert buffer; store_schema.c creates, opens,
** renames and drops the shadow tables; store_rows.c is the blob-handle row
** cursor).
**
** Usage: see table/store.h. Every other file reaches the shadow tables
** through the calls of the store files.
**
** Design:
**  - T_vectors is a rowid table keyed by the token id: a lookup is one
**    b-tree descent, a write rewrites one record, a scan reads the leaves in
**    id order. Vectors are bound without a copy on little-endian hosts.
**  - A scan of every row (the copy's build) may read through a memory map
**    of the file (embed_scan_map): the connection's mmap_size is raised for
**    the scan only, when it is 0, and put back to 0 after it.
*/
#include <stdio.h>
#include <string.h>

#include "table/store_int.h"

struct embed_scan {
  embed_store *st;
  sqlite3_stmt *stmt[2]; /* ascending, descending */
  sqlite3_stmt *row;     /* the one running */
  int mapped;            /* embed_scan_map turned the memory map on */
};

/* ------------------------------------------------------------- helpers */

/* Run a cached statement taking ids ?1 (and ?2) to completion. */
static int store_run_ids(embed_store *st, store_stmt which, int64_t a,
                         int64_t b) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, which, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, a);
  if (sqlite3_bind_parameter_count(stmt) > 1) sqlite3_bind_int64(stmt, 2, b);
  return store_step_done(stmt);
}

/* ------------------------------------------------------------ identity */

int store_has_shadow(const embed_store *st, int i) {
  if (i == SHADOW_CELLS) return st->cfg.index_ivf;
  return i != SHADOW_LOG || st->layout >= STORE_LAYOUT_LOG;
}

sqlite3 *embed_store_db(const embed_store *st) {
  return st->db;
}
const char *embed_store_schema(const embed_store *st) {
  return st->schema;
}
const char *embed_store_name(const embed_store *st) {
  return st->name;
}
const char *embed_store_label(const embed_store *st) {
  return st->label;
}
const embed_config *embed_store_config(const embed_store *st) {
  return &st->cfg;
}
const char *embed_store_vectors_table(const embed_store *st) {
  return st->vectors_table;
}
char *embed_store_state_table(const embed_store *st) {
  return sqlite3_mprintf("%s_state", st->name);
}
void embed_store_note_write(embed_store *st) {
  st->writes++;
}
int64_t embed_store_writes(const embed_store *st) {
  return st->writes;
}

/* ---------------------------------------------------------------- rows */

int64_t embed_store_state_in_row(const embed_store *st) {
  return st->row_state;
}

int embed_store_state_marks(const embed_store *st) {
  /* a state in the row that is not every row's from the insert on */
  return st->row_state > 0 && !embed_optimizer_state_dense(&st->cfg);
}

int embed_store_state_mark(embed_store *st, int64_t id) {
  return store_run_ids(st, STMT_STATE_MARK, id, 0);
}

int embed_store_check(const embed_store *st, int64_t id, int type,
                      const void *bytes, int64_t nbytes, float *out,
                      char **pzErr) {
  embed_error err;
  int64_t dim = st->cfg.dim;
  if (type != SQLITE_BLOB)
    return store_corrupt(
        pzErr, sqlite3_mprintf(
                   "embedding %s: corrupt vector for id %lld (%s, not a BLOB)",
                   st->name, (long long)id, embed_type_name(type)));
  if (nbytes != store_row_bytes(st))
    return store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: corrupt vector for id %lld (%lld bytes, expected %lld%s)",
            st->name, (long long)id, (long long)nbytes,
            (long long)store_row_bytes(st),
            st->row_state ? " with the optimizer state" : ""));
  if ((out ? embed_blob_decode(bytes, dim, out, &err)
           : embed_blob_check(bytes, dim, &err)) != EMBED_OK)
    return store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: corrupt vector for id %lld (element %lld is not finite)",
            st->name, (long long)id, (long long)err.a));
  return SQLITE_OK;
}

int store_corrupt(char **pzErr, char *zMsg) {
  *pzErr = zMsg;
  return zMsg ? SQLITE_CORRUPT_VTAB : SQLITE_NOMEM;
}

/* The vector in column col of stmt's row, checked (and decoded into out). */
static int store_check_column(const embed_store *st, int64_t id,
                              sqlite3_stmt *stmt, int col, float *out,
                              char **pzErr) {
  int type = sqlite3_column_type(stmt, col); /* before reading converts it */
  const void *bytes = sqlite3_column_blob(stmt, col);
  return embed_store_check(st, id, type, bytes, sqlite3_column_bytes(stmt, col),
                           out, pzErr);
}

int embed_store_read(embed_store *st, int64_t id, float *out, char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_READ, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    rc = store_check_column(st, id, stmt, 0, out, pzErr);
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_NOTFOUND;
  }
  sqlite3_reset(stmt);
  return rc;
}

int embed_store_result(embed_store *st, int64_t id, sqlite3_context *ctx) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_READ, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW && st->row_state) { /* the weight, not its state */
    const void *bytes = sqlite3_column_blob(stmt, 0);
    if (sqlite3_column_type(stmt, 0) == SQLITE_BLOB &&
        sqlite3_column_bytes(stmt, 0) == store_row_bytes(st))
      sqlite3_result_blob64(ctx, bytes,
                            (sqlite3_uint64)st->cfg.dim * EMBED_FLOAT_BYTES,
                            SQLITE_TRANSIENT);
    else /* damaged: the search that found it has reported it already */
      sqlite3_result_value(ctx, sqlite3_column_value(stmt, 0));
    rc = SQLITE_OK;
  } else if (rc == SQLITE_ROW) {
    sqlite3_result_value(ctx, sqlite3_column_value(stmt, 0));
    rc = SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK; /* deleted since the search: NULL */
  }
  sqlite3_reset(stmt);
  return rc;
}

/* Does the cached statement `which`, bound to id, return a row? SQLITE_OK,
** SQLITE_NOTFOUND, or an error. */
static int store_has_row(embed_store *st, store_stmt which, int64_t id) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, which, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  sqlite3_reset(stmt);
  return rc == SQLITE_ROW    ? SQLITE_OK
         : rc == SQLITE_DONE ? SQLITE_NOTFOUND
                             : rc;
}

int embed_store_exists(embed_store *st, int64_t id) {
  return store_has_row(st, STMT_READ, id);
}

int embed_store_state_marked(embed_store *st, int64_t id) {
  return store_has_row(st, STMT_STATE_READ, id);
}

/* Rewrite row id of a table that keeps states in its rows (layout 3):
** its weight from v, or without v its state back to the initial one (left
** as stored when it is that already: *changed = 0). The row is read and
** checked first, so a damaged one is reported, not half rewritten. */
static int store_rewrite_row(embed_store *st, int64_t id, const float *v,
                             int *changed, char **pzErr) {
  sqlite3_stmt *stmt;
  int64_t nbytes = store_row_bytes(st),
          weight = st->cfg.dim * EMBED_FLOAT_BYTES;
  unsigned char *row =
      (unsigned char *)sqlite3_malloc64((sqlite3_uint64)nbytes);
  int rc = row ? store_stmt_get(st, STMT_READ, &stmt) : SQLITE_NOMEM;
  *changed = 0;
  if (rc) {
    sqlite3_free(row);
    return rc;
  }
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const void *bytes = sqlite3_column_blob(stmt, 0);
    rc = store_check_column(st, id, stmt, 0, 0, pzErr);
    if (rc == SQLITE_OK)
      rc = store_state_decode(st, id, SQLITE_BLOB, (const char *)bytes + weight,
                              nbytes - weight, st->row_state, 0, pzErr);
    if (rc == SQLITE_OK) memcpy(row, bytes, (size_t)nbytes);
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_NOTFOUND;
  }
  sqlite3_reset(stmt);
  if (rc == SQLITE_OK && v) {
    embed_blob_encode(v, st->cfg.dim, row);
    *changed = 1;
  } else if (rc == SQLITE_OK) {
    unsigned char *tail = row + weight;
    *changed = memcmp(tail, st->row_tail, (size_t)(nbytes - weight)) != 0;
    memcpy(tail, st->row_tail, (size_t)(nbytes - weight));
  }
  if (rc == SQLITE_OK && *changed) rc = store_stmt_get(st, STMT_WRITE, &stmt);
  if (rc == SQLITE_OK && *changed) {
    sqlite3_bind_int64(stmt, 1, id);
    rc = sqlite3_bind_blob64(stmt, 2, row, (sqlite3_uint64)nbytes,
                             SQLITE_STATIC);
    if (rc == SQLITE_OK) rc = store_step_done(stmt);
    sqlite3_clear_bindings(stmt);
  }
  sqlite3_free(row);
  return rc;
}

int embed_store_write(embed_store *st, int64_t id, const float *v) {
  sqlite3_stmt *stmt;
  int rc;
  if (st->row_state) { /* the weight: the state after it stays */
    char *zErr = 0;
    int changed;
    rc = store_rewrite_row(st, id, v, &changed, &zErr);
    sqlite3_free(zErr);
    return rc;
  }
  rc = store_stmt_get(st, STMT_WRITE, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = store_bind_vector(stmt, 2, v, st->cfg.dim);
  if (rc) {
    sqlite3_clear_bindings(stmt);
    return rc;
  }
  return store_step_done(stmt);
}

int embed_store_insert(embed_store *st, int64_t id, const float *v,
                       const void *raw, int conflict, char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = store_pending_add(st, id, raw ? raw : (const void *)v);
  if (rc != SQLITE_NOTFOUND) { /* buffered (or out of memory) */
    store_pending_note_run(st, rc == SQLITE_OK);
    return rc;
  }
  store_pending_saw(st, id);
  rc = store_stmt_get(st,
                      conflict == SQLITE_REPLACE  ? STMT_INSERT_REPLACE
                      : conflict == SQLITE_IGNORE ? STMT_INSERT_IGNORE
                                                  : STMT_INSERT,
                      &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  if (st->row_state) { /* the weight, then the initial state */
    unsigned char *row =
        (unsigned char *)sqlite3_malloc64((sqlite3_uint64)store_row_bytes(st));
    if (!row) return SQLITE_NOMEM;
    store_row_compose(st, v, raw, row);
    rc = sqlite3_bind_blob64(stmt, 2, row, (sqlite3_uint64)store_row_bytes(st),
                             sqlite3_free);
  } else {
    rc =
        raw ? sqlite3_bind_blob64(
                  stmt, 2, raw, (sqlite3_uint64)st->cfg.dim * EMBED_FLOAT_BYTES,
                  SQLITE_STATIC)
            : store_bind_vector(stmt, 2, v, st->cfg.dim);
  }
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  /* a replaced row is a new row: its state starts afresh, as a row's
  ** that keeps it after the weight does */
  if (rc == SQLITE_OK && conflict == SQLITE_REPLACE)
    rc = store_run_ids(st, STMT_STATE_DELETE, id, 0);
  store_pending_note_run(st, rc == SQLITE_OK);
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    *pzErr = sqlite3_mprintf("UNIQUE constraint failed: %s.id", st->name);
    return *pzErr ? SQLITE_CONSTRAINT : SQLITE_NOMEM;
  }
  return rc;
}

int embed_store_delete(embed_store *st, int64_t id) {
  int rc = store_run_ids(st, STMT_DELETE, id, 0);
  if (rc == SQLITE_OK) rc = store_run_ids(st, STMT_STATE_DELETE, id, 0);
  return rc;
}

int embed_store_move(embed_store *st, int64_t old_id, int64_t new_id) {
  int rc = store_run_ids(st, STMT_MOVE, old_id, new_id);
  store_pending_saw(st, new_id);
  if (rc == SQLITE_OK) rc = store_run_ids(st, STMT_STATE_MOVE, old_id, new_id);
  return rc;
}

int embed_store_next_id(embed_store *st, int64_t *id, char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_MAXID, &stmt);
  if (rc) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    if (sqlite3_column_type(stmt, 0) == SQLITE_NULL) {
      *id = 0;
      rc = SQLITE_OK;
    } else if (sqlite3_column_int64(stmt, 0) == INT64_MAX) {
      *pzErr = sqlite3_mprintf("embedding %s: no id left after %lld", st->name,
                               (long long)INT64_MAX);
      rc = *pzErr ? SQLITE_FULL : SQLITE_NOMEM;
    } else {
      *id = sqlite3_column_int64(stmt, 0) + 1;
      rc = SQLITE_OK;
    }
  }
  sqlite3_reset(stmt);
  return rc;
}

int embed_store_count(embed_store *st, int64_t *n) {
  int rc = store_int(st, STMT_COUNT, n);
  return rc == SQLITE_NOTFOUND ? SQLITE_OK : rc;
}

/* ---------------------------------------------------------------- scans */

int embed_scan_new(embed_store *st, embed_scan **out) {
  embed_scan *scan = (embed_scan *)sqlite3_malloc64(sizeof(*scan));
  *out = scan;
  if (!scan) return SQLITE_NOMEM;
  memset(scan, 0, sizeof(*scan));
  scan->st = st;
  return SQLITE_OK;
}

void embed_scan_free(embed_scan *scan) {
  if (!scan) return;
  sqlite3_finalize(scan->stmt[0]);
  sqlite3_finalize(scan->stmt[1]);
  sqlite3_free(scan);
}

int embed_scan_start(embed_scan *scan, int desc, int64_t lo, int64_t hi) {
  int rc = store_pending_settle(scan->st);
  embed_scan_reset(scan);
  if (!scan->stmt[desc])
    store_prepare(
        scan->st, &scan->stmt[desc],
        sqlite3_mprintf(
            desc
                ? "SELECT id, vector FROM %s WHERE id BETWEEN ?1 AND ?2 ORDER BY id DESC"
                : "SELECT id, vector FROM %s WHERE id BETWEEN ?1 AND ?2 ORDER BY id",
            scan->st->names[SHADOW_VECTORS]),
        &rc);
  if (rc) return rc;
  scan->row = scan->stmt[desc];
  sqlite3_bind_int64(scan->row, 1, lo);
  sqlite3_bind_int64(scan->row, 2, hi);
  return SQLITE_OK;
}

int embed_scan_step(embed_scan *scan) {
  return sqlite3_step(scan->row);
}

void embed_scan_reset(embed_scan *scan) {
  if (scan->stmt[0]) sqlite3_reset(scan->stmt[0]);
  if (scan->stmt[1]) sqlite3_reset(scan->stmt[1]);
}

int64_t embed_scan_id(const embed_scan *scan) {
  return sqlite3_column_int64(scan->row, 0);
}

int embed_scan_bytes(embed_scan *scan, const void **bytes, char **pzErr) {
  int rc =
      store_check_column(scan->st, embed_scan_id(scan), scan->row, 1, 0, pzErr);
  *bytes = rc ? 0 : sqlite3_column_blob(scan->row, 1);
  return rc;
}

int embed_scan_vector(embed_scan *scan, float *out, char **pzErr) {
  return store_check_column(scan->st, embed_scan_id(scan), scan->row, 1, out,
                            pzErr);
}

int embed_scan_vector_norm(embed_scan *scan, float *out, double *norm,
                           char **pzErr) {
  sqlite3_stmt *stmt = scan->row;
  if (sqlite3_column_type(stmt, 1) == SQLITE_BLOB) {
    const void *bytes = sqlite3_column_blob(stmt, 1);
    if (bytes && sqlite3_column_bytes(stmt, 1) == store_row_bytes(scan->st)) {
      *norm = embed_copy_norm2(bytes, scan->st->cfg.dim, out);
      if (*norm >= 0) return SQLITE_OK;
    }
  }
  *norm = 0; /* not a finite vector of D floats: the checked path says why */
  return embed_scan_vector(scan, out, pzErr);
}

/* The schema's mmap_size, or -1 when it has none (no file, no map). */
static int64_t scan_mmap_size(embed_scan *scan, int64_t set) {
  sqlite3_stmt *stmt = 0;
  int64_t size = -1;
  char *sql =
      set < 0
          ? sqlite3_mprintf("PRAGMA %s.mmap_size", scan->st->names[ON_SCHEMA])
          : sqlite3_mprintf("PRAGMA %s.mmap_size=%lld",
                            scan->st->names[ON_SCHEMA], (long long)set);
  if (sql && sqlite3_prepare_v2(scan->st->db, sql, -1, &stmt, 0) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW)
    size = sqlite3_column_int64(stmt, 0);
  sqlite3_finalize(stmt);
  sqlite3_free(sql);
  return size;
}

void embed_scan_map(embed_scan *scan, int on) {
  if (on && !scan->mapped && scan_mmap_size(scan, -1) == 0) {
    scan->mapped = 1;
    scan_mmap_size(scan, (int64_t)1 << 40); /* SQLite caps it at its limit */
  } else if (!on && scan->mapped) {
    embed_scan_reset(scan); /* no page of the map is held */
    scan->mapped = 0;
    if (scan_mmap_size(scan, 0) != 0) { /* out of memory: unmap the file */
      sqlite3_int64 zero = 0;
      sqlite3_file_control(scan->st->db, scan->st->schema,
                           SQLITE_FCNTL_MMAP_SIZE, &zero);
    }
  }
}

/* --------------------------------------- training calls' working memory */

void *embed_store_scratch_take(embed_store *st, sqlite3_uint64 bytes) {
  if (st->scratch_busy) return 0;
  if (bytes > st->scratch_bytes) {
    /* Twice what is asked: momentum's calls grow step by step (over 20
    ** steps a median 9% faster than a quarter more, in a noisy run). Grown
    ** by realloc, which for a block this large moves its pages instead of
    ** copying them, so the pages already touched fault no more. */
    sqlite3_uint64 want = bytes <= ~(sqlite3_uint64)0 / 2 ? 2 * bytes : bytes;
    void *grown = sqlite3_realloc64(st->scratch, want);
    if (!grown) {
      store_scratch_free(st);
      return 0;
    }
    st->scratch = grown;
    st->scratch_bytes = want;
  }
  st->scratch_busy = 1;
  return st->scratch;
}

void embed_store_scratch_release(embed_store *st, int keep) {
  st->scratch_busy = 0;
  if (!keep) store_scratch_free(st);
}

void store_scratch_free(embed_store *st) {
  if (st->scratch_busy) return;
  sqlite3_free(st->scratch);
  st->scratch = 0;
  st->scratch_bytes = 0;
}

/* ------------------------------------------------------ optimizer state */

int embed_store_states_mostly_stored(const embed_store *st) {
  return st->states_stored;
}

void embed_store_states_found(embed_store *st, int64_t found, int64_t n) {
  st->states_stored = n > 0 && found * 2 > n;
}

int store_state_decode(embed_store *st, int64_t id, int type, const void *bytes,
                       int64_t nbytes, int64_t n, float *out, char **pzErr) {
  embed_error err;
  if (type == SQLITE_BLOB && nbytes == n * EMBED_FLOAT_BYTES) {
    if (!bytes) return SQLITE_NOMEM; /* n > 0: SQLite could not copy it */
    if ((out ? embed_blob_decode(bytes, n, out, &err)
             : embed_blob_check(bytes, n, &err)) == EMBED_OK)
      return SQLITE_OK;
    return store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: corrupt optimizer state for id %lld (element %lld is not finite)",
            st->name, (long long)id, (long long)err.a));
  }
  return store_corrupt(
      pzErr,
      sqlite3_mprintf(
          "embedding %s: corrupt optimizer state for id %lld (%lld bytes, expected %lld finite floats)",
          st->name, (long long)id, (long long)nbytes, (long long)n));
}

/* The state in column col of stmt's row, for row id. */
static int state_from_column(embed_store *st, int64_t id, sqlite3_stmt *stmt,
                             int col, int64_t n, float *out, char **pzErr) {
  int type = sqlite3_column_type(stmt, col); /* before any conversion */
  const void *bytes = type == SQLITE_BLOB ? sqlite3_column_blob(stmt, col) : 0;
  return store_state_decode(st, id, type, bytes,
                            sqlite3_column_bytes(stmt, col), n, out, pzErr);
}

int embed_store_state_read(embed_store *st, int64_t id, float *out, int64_t n,
                           char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_STATE_READ, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    rc = state_from_column(st, id, stmt, 0, n, out, pzErr);
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_NOTFOUND;
  }
  sqlite3_reset(stmt);
  return rc;
}

/* ids per run of embed_store_state_read_many's statement */
#define STORE_STATE_CHUNK 64

int embed_store_state_read_many(embed_store *st, const int64_t *ids,
                                int64_t count, float *out, int64_t n,
                                unsigned char *found, char **pzErr) {
  sqlite3_stmt *stmt = 0;
  sqlite3_str *sql;
  int64_t at, i;
  int rc = SQLITE_OK, k;
  memset(found, 0, (size_t)count);
  if (count < STORE_STATE_CHUNK / 8) { /* a few: not worth a prepare */
    for (i = 0; rc == SQLITE_OK && i < count; i++) {
      rc = embed_store_state_read(st, ids[i], out + i * n, n, pzErr);
      found[i] = rc == SQLITE_OK;
      if (rc == SQLITE_NOTFOUND) rc = SQLITE_OK;
    }
    return rc;
  }
  sql = sqlite3_str_new(st->db);
  sqlite3_str_appendf(sql, "SELECT id, state FROM %s WHERE id IN (?1",
                      st->names[SHADOW_STATE]);
  for (k = 2; k <= STORE_STATE_CHUNK; k++) sqlite3_str_appendf(sql, ",?%d", k);
  sqlite3_str_appendall(sql, ")");
  store_prepare(st, &stmt, sqlite3_str_finish(sql), &rc);
  for (at = 0; rc == SQLITE_OK && at < count; at += STORE_STATE_CHUNK) {
    int64_t m = count - at < STORE_STATE_CHUNK ? count - at : STORE_STATE_CHUNK;
    for (k = 0; k < STORE_STATE_CHUNK; k++) /* the last chunk repeats */
      sqlite3_bind_int64(stmt, k + 1, ids[at + (k < m ? k : m - 1)]);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      int64_t id = sqlite3_column_int64(stmt, 0), lo = at, hi = at + m;
      while (lo < hi) { /* ids[at..at+m) is ascending */
        i = lo + (hi - lo) / 2;
        if (ids[i] < id)
          lo = i + 1;
        else
          hi = i;
      }
      if (lo >= at + m || ids[lo] != id) continue; /* cannot happen */
      rc = state_from_column(st, id, stmt, 1, n, out + lo * n, pzErr);
      if (rc) break;
      found[lo] = 1;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(stmt);
  }
  sqlite3_finalize(stmt);
  return rc;
}

int embed_store_state_write(embed_store *st, int64_t id, const float *state,
                            int64_t n) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_STATE_WRITE, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, id);
  rc = store_bind_vector(stmt, 2, state, n);
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  sqlite3_clear_bindings(stmt);
  return rc;
}

/* embed_store_state_clear for states kept in the rows (layouts 3 and 4):
** the state of each of ids[0..n) back to the initial one, rewritten where
** it is not that already (counted in *reset). */
static int store_state_reset_rows(embed_store *st, const int64_t *ids,
                                  int64_t n, int64_t *reset, char **pzErr) {
  int64_t i;
  int rc = SQLITE_OK, changed;
  for (i = 0; rc == SQLITE_OK && i < n; i++) {
    rc = store_rewrite_row(st, ids[i], 0, &changed, pzErr);
    *reset += changed;
  }
  if (rc == SQLITE_NOTFOUND) /* a mark (layout 4) of a row that is gone */
    rc = store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: corrupt %s_state: a state for id %lld, which the table does not have",
            st->name, st->name, (long long)ids[i - 1]));
  return rc;
}

int embed_store_state_clear(embed_store *st, int64_t *deleted, char **pzErr) {
  sqlite3_stmt *stmt;
  int64_t before = sqlite3_total_changes64(st->db), *ids = 0, n = 0,
          rewritten = 0;
  /* in layout 4 only the marked rows hold a buffer: those are the count */
  int rc = st->row_state
               ? embed_store_ids(st, embed_store_state_marks(st), &ids, &n)
               : SQLITE_OK;
  if (rc == SQLITE_OK) rc = store_stmt_get(st, STMT_STATE_CLEAR, &stmt);
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  *deleted = sqlite3_total_changes64(st->db) - before;
  if (rc == SQLITE_OK && st->row_state)
    rc = store_state_reset_rows(st, ids, n, &rewritten, pzErr);
  if (!embed_store_state_marks(st)) *deleted += rewritten;
  sqlite3_free(ids);
  return rc;
}

int embed_store_step_read(embed_store *st, int64_t *step, char **pzErr) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_STEP_READ, &stmt);
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
    rc = store_corrupt(
        pzErr,
        sqlite3_mprintf("embedding %s: corrupt %s_config: bad step count",
                        st->name, st->name));
  return rc;
}

int embed_store_step_write(embed_store *st, int64_t step) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_STEP_WRITE, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, step);
  return store_step_done(stmt);
}

int embed_store_ids(embed_store *st, int of_state, int64_t **out, int64_t *n) {
  sqlite3_stmt *stmt = 0;
  int64_t cap = 0, *ids = 0;
  int rc = of_state ? SQLITE_OK : store_pending_settle(st);
  *out = 0;
  *n = 0;
  store_prepare(
      st, &stmt,
      sqlite3_mprintf("SELECT id FROM %s ORDER BY id",
                      st->names[of_state ? SHADOW_STATE : SHADOW_VECTORS]),
      &rc);
  while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    if (*n == cap) {
      int64_t *grown;
      cap = cap ? 2 * cap : 64;
      grown = (int64_t *)sqlite3_realloc64(
          ids, (sqlite3_uint64)cap * EMBED_ID_BYTES);
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

/* --------------------------------------------- versions and transactions */

int embed_store_data_version(embed_store *st, int64_t *version) {
  return store_int(st, STMT_DATA_VERSION, version);
}

int embed_store_schema_version(embed_store *st, int64_t *version) {
  return store_int(st, STMT_SCHEMA_VERSION, version);
}

int embed_store_begin(embed_store *st) {
  return sqlite3_exec(st->db, "BEGIN IMMEDIATE", 0, 0, 0);
}

int embed_store_commit(embed_store *st) {
  return sqlite3_exec(st->db, "COMMIT", 0, 0, 0);
}

int embed_store_prepare_rollback(embed_store *st) {
  sqlite3_stmt *unused;
  /* a cached ROLLBACK that a schema change expired would be prepared again
  ** when run, which SQLite refuses after an out-of-memory error */
  sqlite3_finalize(st->stmt[STMT_ROLLBACK]);
  st->stmt[STMT_ROLLBACK] = 0;
  return store_stmt_get(st, STMT_ROLLBACK, &unused);
}

int embed_store_rollback(embed_store *st) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_ROLLBACK, &stmt);
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  return rc;
}
