/*
** store_index.c - the stored part of an index=ivf table's index: what a
** cold start cannot recompute quickly. Part of the storage layer
** (table/store.h); the index itself is table/ivf.c, its build
** table/ivf_build.c.
**
** Usage:
**
**     embed_store_index_head(st, &build, &seq);  // 0: never built
**     embed_store_index_clear(st);                // build-index: then ...
**     embed_store_index_put(st, cell, grp, centroid, ids, n);  // each row
**     embed_store_index_finish(st, build, seq, offset, scale);
**     embed_store_index_codes(st, offset, scale, &zErr);
**     embed_store_index_cells(st, each, arg, &zErr);  // every row, by cell
**
** Layout:
**
**     T_cells  (cell INTEGER PRIMARY KEY, grp INTEGER NOT NULL,
**               centroid BLOB NOT NULL, ids BLOB NOT NULL)
**              cell >= 0: a cell, the group grp of the coarse quantizer
**              it belongs to, its centre (D float32) and the ids assigned
**              to it when the index was built (little-endian int64);
**              cell < 0: group -1 - cell's centre (ids empty)
**     T_config ('index_build', a random number per build, never 0),
**              ('index_seq', the change-log position it was built at),
**              ('index_codes', 2 x D float32: the codes' per-dimension
**              offsets, then scales)
**
** The rows are written by build-index in one transaction, so a reader sees
** a whole build or none. Writes after a build do not touch T_cells: a
** changed row is named by the change log, and the in-memory index assigns
** it again (ivf.c).
*/
#include <string.h>

#include "table/store_int.h"

int embed_store_has_index(const embed_store *st) {
  return store_has_shadow(st, SHADOW_CELLS);
}

int embed_store_index_head(embed_store *st, int64_t *build, int64_t *seq) {
  sqlite3_stmt *stmt;
  int rc;
  *build = *seq = 0;
  if (!embed_store_has_index(st)) return SQLITE_OK;
  rc = store_stmt_get(st, STMT_INDEX_HEAD, &stmt);
  if (rc) return rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    const char *key = (const char *)sqlite3_column_text(stmt, 0);
    int64_t v = sqlite3_column_int64(stmt, 1);
    if (key && sqlite3_stricmp(key, "index_build") == 0)
      *build = v;
    else
      *seq = v;
  }
  sqlite3_reset(stmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int embed_store_index_clear(embed_store *st) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_INDEX_CLEAR, &stmt);
  return rc ? rc : store_step_done(stmt);
}

int embed_store_index_put(embed_store *st, int64_t cell, int64_t grp,
                          const float *centroid, const int64_t *ids,
                          int64_t n) {
  sqlite3_stmt *stmt;
  int rc = store_stmt_get(st, STMT_INDEX_PUT, &stmt);
  if (rc) return rc;
  sqlite3_bind_int64(stmt, 1, cell);
  sqlite3_bind_int64(stmt, 2, grp);
  rc = store_bind_vector(stmt, 3, centroid, st->cfg.dim);
  if (rc == SQLITE_OK) rc = store_bind_ids(stmt, 4, ids, n);
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  sqlite3_clear_bindings(stmt);
  return rc;
}

int embed_store_index_finish(embed_store *st, int64_t build, int64_t seq,
                             const float *offset, const float *scale) {
  sqlite3_stmt *stmt;
  int64_t dim = st->cfg.dim;
  float *codes;
  int rc = store_stmt_get(st, STMT_CONFIG_PUT, &stmt);
  if (rc) return rc;
  codes =
      (float *)sqlite3_malloc64((sqlite3_uint64)dim * 2 * EMBED_FLOAT_BYTES);
  if (!codes) return SQLITE_NOMEM;
  memcpy(codes, offset, (size_t)dim * EMBED_FLOAT_BYTES);
  memcpy(codes + dim, scale, (size_t)dim * EMBED_FLOAT_BYTES);
  sqlite3_bind_text(stmt, 1, "index_codes", -1, SQLITE_STATIC);
  rc = store_bind_vector(stmt, 2, codes, 2 * dim);
  if (rc == SQLITE_OK) rc = store_step_done(stmt);
  sqlite3_clear_bindings(stmt);
  sqlite3_free(codes);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(stmt, 1, "index_seq", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, seq);
    rc = store_step_done(stmt);
  }
  if (rc == SQLITE_OK) { /* last: a reader that sees it sees the rest */
    sqlite3_bind_text(stmt, 1, "index_build", -1, SQLITE_STATIC);
    sqlite3_bind_int64(stmt, 2, build);
    rc = store_step_done(stmt);
  }
  return rc;
}

int embed_store_index_corrupt(embed_store *st, const char *what, int64_t cell,
                              char **pzErr) {
  return store_corrupt(
      pzErr, sqlite3_mprintf("embedding %s: corrupt %s_cells: %s (cell %lld)",
                             st->name, st->name, what, (long long)cell));
}

int embed_store_index_codes(embed_store *st, float *offset, float *scale,
                            char **pzErr) {
  sqlite3_stmt *stmt;
  int64_t dim = st->cfg.dim;
  int rc = store_stmt_get(st, STMT_INDEX_CODES, &stmt);
  if (rc) return rc;
  rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) {
    const void *bytes = sqlite3_column_blob(stmt, 0);
    int64_t nbytes = sqlite3_column_bytes(stmt, 0);
    embed_error err;
    if (sqlite3_column_type(stmt, 0) != SQLITE_BLOB ||
        nbytes != 2 * dim * EMBED_FLOAT_BYTES ||
        embed_blob_decode(bytes, dim, offset, &err) != EMBED_OK ||
        embed_blob_decode((const char *)bytes + dim * EMBED_FLOAT_BYTES, dim,
                          scale, &err) != EMBED_OK) {
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_config: index_codes is not %lld finite float32",
              st->name, st->name, (long long)(2 * dim)));
    } else {
      rc = SQLITE_OK;
    }
  } else if (rc == SQLITE_DONE) {
    rc = store_corrupt(
        pzErr,
        sqlite3_mprintf("embedding %s: corrupt %s_config: index_codes missing",
                        st->name, st->name));
  }
  sqlite3_reset(stmt);
  return rc;
}

int embed_store_index_cells(embed_store *st, embed_store_cell_fn each,
                            void *arg, char **pzErr) {
  sqlite3_stmt *stmt;
  int64_t dim = st->cfg.dim, cap = 0;
  int64_t *ids = 0;
  float *centroid =
      (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  int rc = centroid ? store_stmt_get(st, STMT_INDEX_READ, &stmt) : SQLITE_NOMEM;
  if (rc) {
    sqlite3_free(centroid);
    return rc;
  }
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    long long cell = sqlite3_column_int64(stmt, 0);
    int64_t grp = sqlite3_column_int64(stmt, 1);
    const void *c = sqlite3_column_blob(stmt, 2);
    int64_t nc = sqlite3_column_bytes(stmt, 2);
    int ctype = sqlite3_column_type(stmt, 2);
    const unsigned char *blob =
        (const unsigned char *)sqlite3_column_blob(stmt, 3);
    int64_t nbytes = sqlite3_column_bytes(stmt, 3), n = nbytes / EMBED_ID_BYTES;
    embed_error err;
    if (ctype != SQLITE_BLOB || nc != dim * EMBED_FLOAT_BYTES ||
        embed_blob_decode(c, dim, centroid, &err) != EMBED_OK) {
      rc = embed_store_index_corrupt(st, "a centroid is not D finite float32",
                                     cell, pzErr);
      break;
    }
    if (sqlite3_column_type(stmt, 3) != SQLITE_BLOB ||
        nbytes % EMBED_ID_BYTES != 0) {
      rc = embed_store_index_corrupt(st, "ids is not a list of ids", cell,
                                     pzErr);
      break;
    }
    if (n > cap) {
      int64_t *grown =
          (int64_t *)sqlite3_realloc64(ids, (sqlite3_uint64)n * EMBED_ID_BYTES);
      if (!grown) {
        rc = SQLITE_NOMEM;
        break;
      }
      ids = grown;
      cap = n;
    }
    store_ids_decode(blob, n, ids);
    rc = each(arg, cell, grp, centroid, ids, n, pzErr);
    if (rc) break;
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_reset(stmt);
  sqlite3_free(ids);
  sqlite3_free(centroid);
  return rc;
}
