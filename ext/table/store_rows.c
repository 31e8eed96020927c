/*
** store_rows.c - many rows of a table's vectors through one sqlite3_blob:
** part of the storage layer (table/store.h).
**
** Usage (the cursor for IN and join lookups, training for batches):
**
**     embed_rows r;
**     embed_rows_init(&r, st, writable);
**     rc = embed_rows_seek(&r, id, &zErr);     // SQLITE_OK or SQLITE_NOTFOUND
**     rc = embed_rows_read(&r, floats, &zErr);   // checked, decoded
**     rc = embed_rows_write(&r, floats, &zErr);   // in place (writable only)
**     embed_rows_close(&r);
**
**     embed_rows_init_state(&r, st, n);  // optimizer states, n floats each
**     rc = embed_rows_read_state(&r, id, state, &zErr);  // or SQLITE_NOTFOUND
**     rc = embed_rows_write(&r, state, &zErr);           // back in place
**     rc = embed_rows_seek(&r, id, &zErr);   // a row known to have one
**
** Design: a nested statement per row costs a full VDBE run and a fresh
** b-tree cursor; one blob handle moved with sqlite3_blob_reopen() costs a
** b-tree seek, and sqlite3_blob_write() rewrites the vector in place (its
** size never changes). SQLite aborts a handle when the row it points at
** changes or does not exist, so seek reopens a fresh handle after any
** failure, and a read or write that finds its handle expired seeks again
** once. A row that does not exist is told apart from an error by
** embed_store_exists. A state handle that finds no state (a row never
** stepped) is left closed, and while it is closed a state is looked up
** through a cached statement first, where a miss costs a seek and no new
** handle; a handle is opened again at the next state that exists. The
** handle is closed by embed_rows_close
** (at the end of a call, or when a cursor closes), so no handle outlives
** the statement that opened it.
*/
#include <string.h>

#include "table/store_int.h"

void embed_rows_init(embed_rows *r, embed_store *st, int writable) {
  r->st = st;
  r->blob = 0;
  r->writable = writable;
  r->id = 0;
  r->in_transaction = !sqlite3_get_autocommit(embed_store_db(st));
  r->of_state = 0;
  r->n = embed_store_config(st)->dim;
}

void embed_rows_init_record(embed_rows *r, embed_store *st, int writable) {
  embed_rows_init(r, st, writable);
  r->n += embed_store_state_in_row(st);
}

void embed_rows_init_state(embed_rows *r, embed_store *st, int64_t n) {
  embed_rows_init(r, st, 1);
  r->of_state = 1;
  r->n = n;
}

void embed_rows_close(embed_rows *r) {
  if (r->blob) sqlite3_blob_close(r->blob);
  r->blob = 0;
}

/* Did the transaction the handle started in end (rolled back by an I/O
** error, say)? Then reopening would silently continue outside it. */
static int lost_transaction(embed_rows *r) {
  return r->in_transaction && sqlite3_get_autocommit(embed_store_db(r->st));
}

static int seek_failed(embed_rows *r, int rc, char **pzErr) {
  if (!*pzErr)
    *pzErr = sqlite3_mprintf("embedding %s: %s", embed_store_name(r->st),
                             rc == SQLITE_ABORT && lost_transaction(r)
                                 ? "the transaction was rolled back"
                                 : sqlite3_errstr(rc));
  return rc;
}

int embed_rows_seek(embed_rows *r, int64_t id, char **pzErr) {
  embed_store *st = r->st;
  sqlite3 *db = embed_store_db(st);
  const char *name = embed_store_name(st);
  int rc = r->of_state ? SQLITE_OK : store_pending_settle(st);
  if (rc) return seek_failed(r, rc, pzErr);
  r->id = id;
  if (r->blob) {
    rc = sqlite3_blob_reopen(r->blob, id);
    if (rc == SQLITE_OK) return SQLITE_OK;
    embed_rows_close(r); /* a failed reopen leaves the handle unusable */
    /* a missing row (ERROR) or a changed one (ABORT) is looked up afresh;
    ** anything else (I/O, memory) is the caller's error */
    if (rc != SQLITE_ERROR && rc != SQLITE_ABORT)
      return seek_failed(r, rc, pzErr);
  }
  if (lost_transaction(r)) return seek_failed(r, SQLITE_ABORT, pzErr);
  if (r->of_state) {
    char *table = embed_store_state_table(st);
    if (!table) return SQLITE_NOMEM;
    rc = sqlite3_blob_open(db, embed_store_schema(st), table, "state", id, 1,
                           &r->blob);
    sqlite3_free(table);
  } else {
    rc = sqlite3_blob_open(db, embed_store_schema(st),
                           embed_store_vectors_table(st), "vector", id,
                           r->writable, &r->blob);
  }
  if (rc == SQLITE_OK) return SQLITE_OK;
  r->blob = 0;
  if (rc == SQLITE_ERROR && !r->of_state) {
    char *why = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    if (!why) return SQLITE_NOMEM;
    rc = embed_store_exists(st, id);
    if (rc == SQLITE_OK) { /* it exists: the stored value is no BLOB */
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf("embedding %s: corrupt vector for id %lld (%s)", name,
                          (long long)id, why));
    } else if (rc != SQLITE_NOTFOUND && !*pzErr) {
      *pzErr = sqlite3_mprintf("embedding %s: %s", name, sqlite3_errmsg(db));
    }
    sqlite3_free(why);
  } else if (!*pzErr) {
    *pzErr = sqlite3_mprintf("embedding %s: %s", name, sqlite3_errmsg(db));
  }
  return rc;
}

int embed_rows_read_bytes(embed_rows *r, void *out, char **pzErr) {
  int64_t n = r->n * EMBED_FLOAT_BYTES, stored = store_row_bytes(r->st);
  int64_t dim = embed_store_config(r->st)->dim;
  int rc, tries;
  for (tries = 0; tries < 2; tries++) {
    if (!r->blob) {
      rc = embed_rows_seek(r, r->id, pzErr);
      if (rc) return rc;
    }
    if (sqlite3_blob_bytes(r->blob) != stored) /* the checker words it */
      return embed_store_check(r->st, r->id, SQLITE_BLOB, 0,
                               sqlite3_blob_bytes(r->blob), 0, pzErr);
    rc = sqlite3_blob_read(r->blob, out, (int)n, 0);
    if (rc == SQLITE_OK)
      rc = embed_store_check(r->st, r->id, SQLITE_BLOB, out, stored, 0, pzErr);
    if (rc == SQLITE_OK && r->n > dim) /* a record handle: the state too */
      return store_state_decode(r->st, r->id, SQLITE_BLOB,
                                (const char *)out + dim * EMBED_FLOAT_BYTES,
                                n - dim * EMBED_FLOAT_BYTES, r->n - dim, 0,
                                pzErr);
    if (rc != SQLITE_ABORT) return rc;
    embed_rows_close(r); /* the row changed since the seek: look again */
    if (lost_transaction(r)) return seek_failed(r, rc, pzErr);
  }
  return SQLITE_ABORT;
}

int embed_rows_read(embed_rows *r, float *out, char **pzErr) {
  int rc = embed_rows_read_bytes(r, out, pzErr);
  if (rc == SQLITE_OK && !EMBED_HOST_LE) {
    embed_error err; /* checked already: this only swaps the bytes */
    embed_blob_decode(out, r->n, out, &err);
  }
  return rc;
}

int embed_rows_read_state(embed_rows *r, int64_t id, float *out, char **pzErr) {
  int64_t nbytes = r->n * EMBED_FLOAT_BYTES;
  int rc;
  r->id = id;
  if (r->blob) {
    rc = sqlite3_blob_reopen(r->blob, id);
    if (rc == SQLITE_OK) {
      int64_t have = sqlite3_blob_bytes(r->blob);
      if (have == nbytes) rc = sqlite3_blob_read(r->blob, out, (int)nbytes, 0);
      if (rc == SQLITE_OK) /* checked (and decoded) in place */
        return store_state_decode(r->st, id, SQLITE_BLOB, out, have, r->n, out,
                                  pzErr);
    }
    embed_rows_close(r); /* unusable after a failed reopen */
    /* no state (ERROR), or it changed (ABORT): the statement says which */
    if (rc != SQLITE_ERROR && rc != SQLITE_ABORT)
      return seek_failed(r, rc, pzErr);
  }
  if (lost_transaction(r)) return seek_failed(r, SQLITE_ABORT, pzErr);
  rc = embed_store_state_read(r->st, id, out, r->n, pzErr);
  if (rc) return rc;                    /* SQLITE_NOTFOUND: never stepped */
  return embed_rows_seek(r, id, pzErr); /* on it, for its write and more */
}

int embed_rows_write(embed_rows *r, const float *v, char **pzErr) {
  int64_t dim = r->n;
  int nbytes = (int)(dim * EMBED_FLOAT_BYTES), rc, tries;
  for (tries = 0; tries < 2; tries++) {
    if (!r->blob) {
      rc = embed_rows_seek(r, r->id, pzErr);
      if (rc) return rc;
    }
    /* a damaged row stays as it is: a write of its weight alone, which
    ** keeps the state after it, would not repair its length */
    if (!r->of_state && sqlite3_blob_bytes(r->blob) != store_row_bytes(r->st))
      return embed_store_check(r->st, r->id, SQLITE_BLOB, 0,
                               sqlite3_blob_bytes(r->blob), 0, pzErr);
    if (EMBED_HOST_LE) {
      rc = sqlite3_blob_write(r->blob, v, nbytes, 0);
    } else {
      void *le = sqlite3_malloc64((sqlite3_uint64)nbytes);
      if (!le) return SQLITE_NOMEM;
      embed_blob_encode(v, dim, le);
      rc = sqlite3_blob_write(r->blob, le, nbytes, 0);
      sqlite3_free(le);
    }
    if (rc == SQLITE_OK && !r->of_state) embed_store_note_write(r->st);
    if (rc != SQLITE_ABORT) return rc;
    embed_rows_close(r);
    if (lost_transaction(r)) return seek_failed(r, rc, pzErr);
  }
  return SQLITE_ABORT;
}
