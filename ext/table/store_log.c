/*
** store_log.c - the change log of an embedding table (layout 2): which
** rows each transaction changed, so that an in-memory copy of the vectors
** can be brought up to date with the work that changed instead of being
** rebuilt (search.c, copy.c). Part of the storage layer (table/store.h).
**
** Usage:
**
**     embed_store_log_append(st, ids, n);     // a call that wrote rows
**     embed_store_log_note(st, id);           // xUpdate: buffered ...
**     store_log_flush(st);                    // ... written at xSync,
**                                             // xSavepoint (embed_store_flush)
**     embed_store_log_head(st, &head, &tail); // the log as this txn sees it
**     embed_store_log_since(st, seq, head, &ids, &n);  // changed after seq
**
** Layout: T_log(seq INTEGER PRIMARY KEY, ids BLOB NOT NULL), one row per
** write: the ids it changed, sorted and distinct, as little-endian int64
** (a write of more than 2^20 ids, or of more than SQLITE_LIMIT_LENGTH
** bytes of them, takes several rows).
** A row is appended in the same transaction as the vectors it names, so a
** rolled-back write leaves no entry and a reader sees exactly the entries
** of its own snapshot (its own uncommitted ones included). seq grows by
** one per entry; the newest entry is never deleted, so seq never goes
** back. The log is kept bounded: every STORE_LOG_TRIM_EVERY entries, the
** entries older than the newest STORE_LOG_KEEP are deleted in the writing
** transaction; a copy older than the oldest entry is rebuilt.
**
** The module's per-row writes (INSERT, UPDATE, DELETE) are buffered in
** memory and flushed as one entry when the transaction commits (xSync) or
** a savepoint or statement journal opens (xSavepoint), as FTS3/4 flush
** their pending terms; ROLLBACK and ROLLBACK TO discard the buffer, whose
** ids are then all newer than the savepoint rolled back to. A search on
** the same connection adds the buffer to what the log says. A buffered id
** whose write failed is harmless: a copy re-reads every logged row.
*/
#include <string.h>

#include "table/store_int.h"

#define STORE_LOG_KEEP 256            /* entries kept behind the newest */
#define STORE_LOG_TRIM_EVERY 64       /* entries between two trims */
#define STORE_LOG_ENTRY_IDS (1 << 20) /* ids an entry holds at most: 8 MB */

int embed_store_has_log(const embed_store *st) {
  return store_has_shadow(st, SHADOW_LOG);
}

int embed_store_log_head(embed_store *st, int64_t *head, int64_t *tail) {
  int rc;
  *head = *tail = 0;
  if (!embed_store_has_log(st)) return SQLITE_OK;
  rc = store_int(st, STMT_LOG_HEAD, head);
  if (rc == SQLITE_OK) rc = store_int(st, STMT_LOG_TAIL, tail);
  return rc == SQLITE_NOTFOUND ? SQLITE_OK : rc;
}

int store_bind_ids(sqlite3_stmt *stmt, int i, const int64_t *ids, int64_t n) {
  sqlite3_uint64 nbytes = (sqlite3_uint64)n * EMBED_ID_BYTES;
  unsigned char *blob;
  int64_t k;
  if (EMBED_HOST_LE)
    return sqlite3_bind_blob64(stmt, i, n > 0 ? (const void *)ids : "", nbytes,
                               SQLITE_STATIC);
  blob = (unsigned char *)sqlite3_malloc64(nbytes > 0 ? nbytes : 1);
  if (!blob) return SQLITE_NOMEM;
  for (k = 0; k < n; k++) {
    uint64_t u = (uint64_t)ids[k];
    uint32_t lo = embed_le32((uint32_t)u), hi = embed_le32((uint32_t)(u >> 32));
    memcpy(blob + k * EMBED_ID_BYTES, &lo, 4);
    memcpy(blob + k * EMBED_ID_BYTES + 4, &hi, 4);
  }
  return sqlite3_bind_blob64(stmt, i, blob, nbytes, sqlite3_free);
}

void store_ids_decode(const unsigned char *blob, int64_t count, int64_t *out) {
  int64_t k;
  for (k = 0; k < count; k++) {
    uint32_t lo, hi;
    memcpy(&lo, blob + k * EMBED_ID_BYTES, 4);
    memcpy(&hi, blob + k * EMBED_ID_BYTES + 4, 4);
    out[k] = (int64_t)(((uint64_t)embed_le32(hi) << 32) | embed_le32(lo));
  }
}

/* Append ids (already sorted and distinct) as one entry, then trim. */
static int store_log_write_entry(embed_store *st, const int64_t *ids,
                                 int64_t n) {
  sqlite3_stmt *stmt;
  int64_t seq, last_rowid = sqlite3_last_insert_rowid(st->db);
  int rc = store_stmt_get(st, STMT_LOG_APPEND, &stmt);
  if (rc) return rc;
  rc = store_bind_ids(stmt, 1, ids, n);
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  sqlite3_clear_bindings(stmt);
  if (rc) return rc;
  /* the caller's last_insert_rowid() is the row it inserted, not ours */
  seq = sqlite3_last_insert_rowid(st->db);
  sqlite3_set_last_insert_rowid(st->db, last_rowid);
  if (seq % STORE_LOG_TRIM_EVERY == 0 && seq > STORE_LOG_KEEP) {
    rc = store_stmt_get(st, STMT_LOG_TRIM, &stmt);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(stmt, 1, seq - STORE_LOG_KEEP);
      rc = store_step_done(stmt);
    }
  }
  return rc;
}

/* Append ids (sorted and distinct) as entries of at most
** STORE_LOG_ENTRY_IDS ids, fewer when the connection's
** SQLITE_LIMIT_LENGTH is lower (a longer BLOB would fail the write):
** a reader takes the union of the entries after its copy. */
static int store_log_write(embed_store *st, const int64_t *ids, int64_t n) {
  /* the limit is on the record too: its header and seq are a few bytes */
  int64_t per =
      (sqlite3_limit(st->db, SQLITE_LIMIT_LENGTH, -1) - 32) / EMBED_ID_BYTES;
  int64_t at, take;
  int rc = SQLITE_OK;
  if (!embed_store_has_log(st)) return SQLITE_OK;
  if (per > STORE_LOG_ENTRY_IDS) per = STORE_LOG_ENTRY_IDS;
  if (per < 1) per = 1;
  for (at = 0; rc == SQLITE_OK && at < n; at += take) {
    take = n - at < per ? n - at : per;
    rc = store_log_write_entry(st, ids + at, take);
  }
  return rc;
}

int embed_store_log_append(embed_store *st, const int64_t *ids, int64_t n) {
  int64_t *sorted;
  int rc;
  if (n == 0 || !embed_store_has_log(st)) return SQLITE_OK;
  sorted = (int64_t *)sqlite3_malloc64((sqlite3_uint64)n * EMBED_ID_BYTES);
  if (!sorted) return SQLITE_NOMEM;
  memcpy(sorted, ids, (size_t)n * EMBED_ID_BYTES);
  rc = store_log_write(st, sorted, embed_ids_sort_unique(sorted, n));
  sqlite3_free(sorted);
  return rc;
}

int embed_store_log_note(embed_store *st, int64_t id) {
  if (!embed_store_has_log(st)) return SQLITE_OK;
  if (st->n_pending == st->cap_pending) {
    int64_t cap = st->cap_pending ? 2 * st->cap_pending : 64;
    int64_t *grown = (int64_t *)sqlite3_realloc64(
        st->pending, (sqlite3_uint64)cap * EMBED_ID_BYTES);
    if (!grown) return SQLITE_NOMEM;
    st->pending = grown;
    st->cap_pending = cap;
  }
  st->pending[st->n_pending++] = id;
  return SQLITE_OK;
}

/* The module's transaction callbacks: the insert buffer (store_stmt.c)
** and this log's buffer together. The store's own multi-row INSERT of
** buffered rows opens (and releases) a statement journal, which calls
** them too: nothing is written then (the buffer is being written), and
** the log's ids wait for the outer statement's end, so a bulk insert is
** one log entry, not one per batch of rows (5% of its time in memory).
** Should that INSERT fail, its ROLLBACK TO forgets them with the outer
** statement's rows, which its failure rolls back too. */
int embed_store_flush(embed_store *st) {
  int rc;
  if (st->ins_writing) return SQLITE_OK;
  rc = store_pending_settle(st);
  return rc ? rc : store_log_flush(st);
}

void embed_store_discard(embed_store *st) {
  store_pending_forget(st);
  store_log_discard(st);
  store_scratch_free(st);
}

int store_log_flush(embed_store *st) {
  int rc;
  if (st->n_pending == 0) return SQLITE_OK;
  st->n_pending = embed_ids_sort_unique(st->pending, st->n_pending);
  rc = store_log_write(st, st->pending, st->n_pending);
  if (rc == SQLITE_OK) st->n_pending = 0;
  return rc;
}

void store_log_discard(embed_store *st) {
  st->n_pending = 0;
}

/* Make room in *ids (*n used, *cap allocated) for extra more. */
static int store_log_reserve(int64_t **ids, int64_t n, int64_t *cap,
                             int64_t extra) {
  int64_t want = *cap ? *cap : 256;
  int64_t *grown;
  if (n + extra <= *cap) return SQLITE_OK;
  while (want < n + extra) want *= 2;
  grown =
      (int64_t *)sqlite3_realloc64(*ids, (sqlite3_uint64)want * EMBED_ID_BYTES);
  if (!grown) return SQLITE_NOMEM;
  *ids = grown;
  *cap = want;
  return SQLITE_OK;
}

/* Append the ids of one entry's BLOB to *ids. */
static int store_log_collect(const unsigned char *blob, int64_t nbytes,
                             int64_t **ids, int64_t *n, int64_t *cap) {
  int64_t count = nbytes / EMBED_ID_BYTES;
  int rc = store_log_reserve(ids, *n, cap, count);
  if (rc) return rc;
  store_ids_decode(blob, count, *ids + *n);
  *n += count;
  return SQLITE_OK;
}

int embed_store_log_since(embed_store *st, int64_t after, int64_t head,
                          int64_t **out, int64_t *n_out, char **pzErr) {
  sqlite3_stmt *stmt;
  int64_t *ids = 0, n = 0, cap = 0;
  int rc = SQLITE_OK;
  *out = 0;
  *n_out = 0;
  if (head > after) {
    rc = store_stmt_get(st, STMT_LOG_READ, &stmt);
    if (rc) return rc;
    sqlite3_bind_int64(stmt, 1, after);
    sqlite3_bind_int64(stmt, 2, head);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      int64_t nbytes = sqlite3_column_bytes(stmt, 0);
      const unsigned char *blob =
          (const unsigned char *)sqlite3_column_blob(stmt, 0);
      rc = SQLITE_OK;
      if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
          nbytes % EMBED_ID_BYTES != 0) {
        rc = store_corrupt(
            pzErr,
            sqlite3_mprintf(
                "embedding %s: corrupt %s_log: entry %lld is not a list of ids",
                st->name, st->name, (long long)sqlite3_column_int64(stmt, 0)));
      } else {
        rc = store_log_collect(blob, nbytes, &ids, &n, &cap);
      }
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_reset(stmt);
  }
  if (rc == SQLITE_OK && st->n_pending > 0) {
    rc = store_log_reserve(&ids, n, &cap, st->n_pending);
    if (rc == SQLITE_OK) {
      memcpy(ids + n, st->pending, (size_t)st->n_pending * EMBED_ID_BYTES);
      n += st->n_pending;
    }
  }
  if (rc) {
    sqlite3_free(ids);
    return rc;
  }
  *out = ids;
  *n_out = embed_ids_sort_unique(ids, n);
  return SQLITE_OK;
}

int64_t embed_store_instance(const embed_store *st) {
  return st->instance;
}
