/*
** integrity.c - the integrity check of an embedding table: what
** `INSERT INTO tok(tok) VALUES ('integrity-check')` (table/command.c) and,
** on SQLite 3.44 and later, `PRAGMA integrity_check` (xIntegrity) run.
**
** Usage:
**
**     char *zErr = 0;
**     rc = embed_integrity_check(st, &zErr);
**     // SQLITE_OK: sound; SQLITE_CORRUPT_VTAB: zErr says what is wrong
**
** What is checked, in this order, stopping at the first defect:
**  1. the shadow tables: each an ordinary table with its columns (as at
**     connect; a schema changed since then is caught here);
**  2. T_config: its rows read back to the options the table was opened
**     with, and the step count is a count;
**  3. every row of T_vectors, in id order: a BLOB of 4*D bytes, every
**     float finite (embed_store_check, the checker of every read);
**  4. every row of T_state, in id order: a BLOB of the optimizer's state
**     size, finite, for an id the table has, and none at all when the
**     optimizer keeps no state.
**  5. an index=ivf table's built index: T_cells and the codes' ranges
**     load (cells numbered 0..nlist-1 in groups, centres finite, no id
**     twice), and every row is in the cell its vector belongs in with the
**     code of its vector (table/ivf.c).
** The
** check reads only: a failed check changes nothing. Each message names
** the table and the first offending id (or shadow table) and what is wrong
** with it: "embedding tok: corrupt vector for id 3 (element 1 is not
** finite)".
*/
#include "table/table.h"

/* Step 3: every stored vector, through a scan of the whole id range. */
static int integrity_vectors(embed_store *st, char **pzErr) {
  embed_scan *scan = 0;
  int rc = embed_scan_new(st, &scan);
  if (rc == SQLITE_OK) rc = embed_scan_start(scan, 0, INT64_MIN, INT64_MAX);
  while (rc == SQLITE_OK && (rc = embed_scan_step(scan)) == SQLITE_ROW) {
    const void *bytes;
    rc = embed_scan_bytes(scan, &bytes, pzErr);
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  embed_scan_free(scan);
  return rc;
}

/* Step 5: the index, loaded afresh as this transaction sees the table. */
static int integrity_index(embed_store *st, char **pzErr) {
  embed_scan *scan = 0;
  embed_ivf *ix = 0;
  int64_t build, build_seq, head, tail;
  char *zErr = 0;
  int rc = embed_store_index_head(st, &build, &build_seq);
  if (rc || build == 0) return rc;
  rc = embed_store_log_head(st, &head, &tail);
  if (rc == SQLITE_OK) rc = embed_scan_new(st, &scan);
  if (rc == SQLITE_OK)
    rc = embed_ivf_load(st, scan, build, build_seq, head, tail, &ix, pzErr);
  if (rc == SQLITE_OK) rc = embed_ivf_check(ix, scan, &zErr);
  if (zErr) {
    *pzErr = sqlite3_mprintf("%s: %s", embed_store_label(st), zErr);
    if (!*pzErr) rc = SQLITE_NOMEM;
    sqlite3_free(zErr);
  }
  embed_ivf_discard(ix);
  embed_scan_free(scan);
  return rc;
}

int embed_integrity_check(embed_store *st, char **pzErr) {
  int rc = embed_store_check_shadows(st, pzErr);
  if (rc == SQLITE_OK) rc = embed_store_check_config(st, pzErr);
  if (rc == SQLITE_OK) rc = integrity_vectors(st, pzErr);
  if (rc == SQLITE_OK) rc = embed_store_check_state(st, pzErr);
  if (rc == SQLITE_OK) rc = integrity_index(st, pzErr);
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM && !*pzErr) {
    /* a failed read (I/O, a busy lock): the check could not finish */
    sqlite3 *db = embed_store_db(st);
    *pzErr =
        sqlite3_mprintf("%s: integrity-check: %s", embed_store_label(st),
                        sqlite3_errcode(db) != SQLITE_OK ? sqlite3_errmsg(db)
                                                         : sqlite3_errstr(rc));
    if (!*pzErr) rc = SQLITE_NOMEM;
  }
  return rc;
}
