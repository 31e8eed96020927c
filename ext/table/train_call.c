/*
** train_call.c - the transaction around one training call (embed_update,
** embed_optimizer_reset and the table's step and reset-optimizer
** commands): all or nothing, whoever calls.
**
** Usage (train.c):
**
**     int mode, wrote = 0;
**     rc = embed_train_call_begin(st, several, &mode);
**     ... reads, then writes (wrote = 1 after the first that succeeds) ...
**     rc = embed_train_call_end(st, mode, rc, wrote, "embed_update", &zErr);
**
** Design:
** In autocommit mode, from a statement that does not write (SELECT
** embed_update(...)), nothing would hold one transaction around the call's
** reads and writes: each nested statement would run in its own, another
** connection could commit in between, and a step computed from rows read
** before would overwrite its work. The call therefore begins an IMMEDIATE
** transaction (the write lock first, waiting as the busy timeout allows)
** before its first read and commits it after its last write: a conflict is
** then SQLITE_BUSY, and nothing changes. Inside the caller's transaction a
** failed call that wrote rolls the transaction back; inside a writing
** statement, that statement's own journal makes it all or nothing.
*/
#include "table/table.h"

/* Is a statement that writes running on db? Then our writes are already
** inside its (statement) transaction. */
static int call_writer_running(sqlite3 *db) {
  sqlite3_stmt *stmt = 0;
  while ((stmt = sqlite3_next_stmt(db, stmt)) != 0)
    if (sqlite3_stmt_busy(stmt) && !sqlite3_stmt_readonly(stmt)) return 1;
  return 0;
}

/* several: the call may write more than one statement's worth (a batch,
** optimizer state, a step count); a single-row write is atomic alone. */
int embed_train_call_begin(embed_store *st, int several, int *mode) {
  sqlite3 *db = embed_store_db(st);
  int rc;
  *mode = EMBED_TRAIN_CALL_NONE;
  if (call_writer_running(db)) return SQLITE_OK; /* its statement journal */
  if (sqlite3_get_autocommit(db)) {
    rc = embed_store_prepare_rollback(st);
    if (rc == SQLITE_OK) rc = embed_store_begin(st);
    if (rc == SQLITE_OK) *mode = EMBED_TRAIN_CALL_TRANSACTION;
    return rc;
  }
  if (!several) return SQLITE_OK; /* one write statement is atomic alone */
  /* Inside the caller's transaction no savepoint: its sub-journal would
  ** copy every page the call touches. A write that fails after others
  ** succeeded rolls the transaction back instead, as SQLite itself does
  ** after an I/O or out-of-memory error. */
  rc = embed_store_prepare_rollback(st);
  if (rc == SQLITE_OK) *mode = EMBED_TRAIN_CALL_INSIDE;
  return rc;
}

/* wrote: some write of the call succeeded before rc. */
int embed_train_call_end(embed_store *st, int mode, int rc, int wrote,
                         const char *who, char **pzErr) {
  sqlite3 *db = embed_store_db(st);
  if (mode == EMBED_TRAIN_CALL_TRANSACTION && rc == SQLITE_OK)
    rc = embed_store_commit(st);
  if (rc == SQLITE_OK || mode == EMBED_TRAIN_CALL_NONE) return rc;
  if (mode == EMBED_TRAIN_CALL_TRANSACTION) { /* the call's alone: end it */
    if (!*pzErr)
      *pzErr = sqlite3_mprintf("%s: %s; nothing was changed", who,
                               sqlite3_errmsg(db));
    embed_store_rollback(st);
  } else if (wrote) { /* half a call must not stay in the transaction */
    char *why =
        *pzErr ? *pzErr : sqlite3_mprintf("%s: %s", who, sqlite3_errmsg(db));
    *pzErr = sqlite3_mprintf("%s; the transaction was rolled back", why);
    sqlite3_free(why);
    embed_store_rollback(st);
  }
  return rc;
}
