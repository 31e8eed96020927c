/*
** cursor.c - cursors of the `embedding` virtual table: point and IN
** lookups, id-ordered scans, and k-nearest-neighbour searches (the plans
** of plan.c).
**
** Usage: every SELECT on the table, e.g.
**
**     SELECT t.pos, e.vector FROM tokens t JOIN tok e ON e.id = t.token_id;
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10
**                                    AND id IN (SELECT token_id FROM doc);
**
** Design: a cursor moves in one of three ways. A list cursor (PLAN_EQ and
** PLAN_IN) walks its sorted, distinct ids through one blob handle
** (store_rows.c), reading a row's bytes only when its vector column is
** asked for; a missing id is skipped. A scan cursor steps the storage
** layer's range scan, in id order either way. A KNN cursor asks search.c
** once, in xFilter, and then walks the hits; its vector column is read
** when asked (NULL if the row was deleted since). Every failure names the
** table (embed_vtab_named).
*/
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "table/module.h"

typedef struct embed_cursor {
  sqlite3_vtab_cursor base;
  embed_rows rows;  /* list cursors: one blob handle over the rows */
  embed_scan *scan; /* scan cursors, and searches without the snapshot */
  void *vector;     /* list cursors: the current row's bytes */
  int have_vector;  /* vector holds row id's bytes */
  int is_list;      /* rows come from ids[] */
  int is_scan;      /* rows come from scan */
  int is_knn;       /* rows come from hits[] */
  int eof;
  int64_t *ids;   /* list cursors: sorted ids to look up */
  int64_t one_id; /* PLAN_EQ: ids points here (not allocated) */
  int64_t n_ids, pos;
  embed_hit *hits; /* PLAN_KNN results */
  int64_t k;
  int64_t id; /* current row */
} embed_cursor;

static embed_store *cursor_store(embed_cursor *cur) {
  return ((embed_vtab *)cur->base.pVtab)->st;
}

int embedOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  embed_cursor *cur = (embed_cursor *)sqlite3_malloc64(sizeof(*cur));
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof(*cur));
  if (embed_scan_new(tab->st, &cur->scan)) {
    sqlite3_free(cur);
    return SQLITE_NOMEM;
  }
  cur->eof = 1;
  embed_rows_init(&cur->rows, tab->st, 0);
  embed_registry_reading(tab->entry, 1);
  *ppCursor = &cur->base;
  return SQLITE_OK;
}

static void cursor_reset(embed_cursor *cur) {
  embed_scan_reset(cur->scan);
  if (cur->ids != &cur->one_id) sqlite3_free(cur->ids);
  sqlite3_free(cur->hits);
  cur->ids = 0;
  cur->hits = 0;
  cur->n_ids = cur->pos = 0;
  cur->is_list = cur->is_scan = cur->is_knn = 0;
  cur->eof = 1;
}

int embedClose(sqlite3_vtab_cursor *pCursor) {
  embed_cursor *cur = (embed_cursor *)pCursor;
  cursor_reset(cur);
  embed_scan_free(cur->scan);
  embed_rows_close(&cur->rows);
  embed_registry_reading(((embed_vtab *)pCursor->pVtab)->entry, -1);
  sqlite3_free(cur->vector);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Narrow [*lo, *hi] by `id > v` (is_lower) or `id < v`; strict or not.
** Returns 0 when no id can qualify. Values that are not numbers do not
** narrow: SQLite re-checks range constraints itself. */
static int cursor_narrow_range(sqlite3_value *v, int is_lower, int strict,
                               int64_t *lo, int64_t *hi) {
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

/* Collect the ids of an EQ or IN constraint, sorted and unique. */
static int cursor_collect_ids(embed_cursor *cur, sqlite3_value *arg,
                              int is_in) {
  int64_t cap = 16, n = 0, id;
  int rc = SQLITE_OK;
  sqlite3_value *v = 0;
  int64_t *ids;
  if (!is_in) { /* the point lookup of every join step: no allocation */
    cur->ids = &cur->one_id;
    cur->n_ids = embed_value_as_id(arg, &cur->one_id);
    return SQLITE_OK;
  }
  ids = (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * EMBED_ID_BYTES);
  if (!ids) return SQLITE_NOMEM;
  for (rc = sqlite3_vtab_in_first(arg, &v); rc == SQLITE_OK && v;
       rc = sqlite3_vtab_in_next(arg, &v)) {
    if (!embed_value_as_id(v, &id)) continue;
    if (n == cap) {
      int64_t *grown = (int64_t *)sqlite3_realloc64(
          ids, (sqlite3_uint64)cap * 2 * EMBED_ID_BYTES);
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
  cur->ids = ids;
  cur->n_ids = embed_ids_sort_unique(ids, n);
  return SQLITE_OK;
}

/* Position a list cursor on the first existing id at or after pos. */
static int cursor_list_seek(embed_cursor *cur) {
  int rc;
  cur->have_vector = 0;
  for (; cur->pos < cur->n_ids; cur->pos++) {
    char *zErr = 0;
    rc = embed_rows_seek(&cur->rows, cur->ids[cur->pos], &zErr);
    if (rc == SQLITE_OK) {
      cur->id = cur->ids[cur->pos];
      cur->eof = 0;
      return SQLITE_OK;
    }
    if (rc != SQLITE_NOTFOUND) {
      if (zErr) embed_vtab_error((embed_vtab *)cur->base.pVtab, rc, zErr);
      return rc;
    }
    sqlite3_free(zErr);
  }
  cur->eof = 1;
  return SQLITE_OK;
}

/* The current list row's stored bytes (read once per row). */
static int cursor_list_vector(embed_cursor *cur, const void **out,
                              char **pzErr) {
  int rc;
  if (!cur->vector) {
    cur->vector = sqlite3_malloc64(
        (sqlite3_uint64)embed_store_config(cursor_store(cur))->dim *
        EMBED_FLOAT_BYTES);
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

static int cursor_scan_step(embed_cursor *cur) {
  int rc = embed_scan_step(cur->scan);
  if (rc == SQLITE_ROW) {
    cur->id = embed_scan_id(cur->scan);
    cur->eof = 0;
    return SQLITE_OK;
  }
  cur->eof = 1;
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Read k from `k = ?` or LIMIT (+ OFFSET); exactly one must be given. */
static int cursor_knn_k(embed_vtab *tab, int plan, sqlite3_value *kv,
                        sqlite3_value *limitv, sqlite3_value *offsetv,
                        int64_t *k) {
  sqlite3_value *v = (plan & PLAN_K) ? kv : limitv;
  if (!(plan & (PLAN_K | PLAN_LIMIT)) && (plan & PLAN_ALL)) {
    *k = 0; /* rank every row; SQLite's own LIMIT cuts the result */
    return SQLITE_OK;
  }
  if (!(plan & (PLAN_K | PLAN_LIMIT)))
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf(
            "embedding %s: a MATCH search needs k = N or ORDER BY distance",
            embed_store_name(tab->st)));
  if (sqlite3_value_type(v) == SQLITE_BLOB ||
      sqlite3_value_numeric_type(v) != SQLITE_INTEGER ||
      sqlite3_value_int64(v) < 1 || sqlite3_value_int64(v) > EMBED_MAX_K) {
    char *shown = embed_value_shown(v);
    int rc = embed_vtab_error(
        tab, SQLITE_ERROR,
        shown ? sqlite3_mprintf(
                    "embedding %s: k must be an integer in [1, %d], got %s",
                    embed_store_name(tab->st), EMBED_MAX_K, shown)
              : 0);
    sqlite3_free(shown);
    return rc;
  }
  *k = sqlite3_value_int64(v);
  if (offsetv && sqlite3_value_numeric_type(offsetv) == SQLITE_INTEGER &&
      sqlite3_value_int64(offsetv) > 0) {
    int64_t off = sqlite3_value_int64(offsetv);
    *k = off > EMBED_MAX_K ? EMBED_MAX_K + *k : *k + off;
    if (*k > 2 * EMBED_MAX_K) *k = 2 * EMBED_MAX_K;
  }
  return SQLITE_OK;
}

/* Read `nprobe = ?`: an integer >= 0 (0: an exact search). */
static int cursor_knn_nprobe(embed_vtab *tab, sqlite3_value *v,
                             int64_t *nprobe) {
  if (sqlite3_value_type(v) == SQLITE_BLOB ||
      sqlite3_value_numeric_type(v) != SQLITE_INTEGER ||
      sqlite3_value_int64(v) < 0 || sqlite3_value_int64(v) > EMBED_MAX_CELLS) {
    char *shown = embed_value_shown(v);
    int rc = embed_vtab_error(
        tab, SQLITE_ERROR,
        shown
            ? sqlite3_mprintf(
                  "embedding %s: nprobe must be an integer in [0, %d], got %s",
                  embed_store_name(tab->st), EMBED_MAX_CELLS, shown)
            : 0);
    sqlite3_free(shown);
    return rc;
  }
  *nprobe = sqlite3_value_int64(v);
  return SQLITE_OK;
}

/* Run a k-nearest search over the rows the id filters allow (search.c). */
static int cursor_run_knn(embed_cursor *cur, sqlite3_value *query, int64_t k,
                          int64_t nprobe, int has_list, int64_t lo,
                          int64_t hi) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  const char *name = embed_store_name(tab->st);
  int64_t dim = embed_store_config(tab->st)->dim;
  embed_vec q = {0, 0};
  char *zErr = 0;
  int rc = embed_vec_from_value(query, embed_store_label(tab->st), &q, &zErr);
  if (rc) return embed_vtab_error(tab, rc, zErr);
  if (!q.v)
    return embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: the MATCH query vector is NULL", name));
  if (q.dim != dim) {
    rc = embed_vtab_error(
        tab, SQLITE_ERROR,
        sqlite3_mprintf("embedding %s: dimension mismatch (%lld vs %lld)", name,
                        (long long)q.dim, (long long)dim));
    embed_vec_free(&q);
    return rc;
  }
  rc = embed_search_knn(tab->copies, tab->st, cur->scan, q.v, k, nprobe,
                        has_list ? cur->ids : 0, cur->n_ids, lo, hi, &cur->hits,
                        &cur->n_ids, &zErr);
  if (rc && zErr) embed_vtab_error(tab, rc, zErr);
  if (rc == SQLITE_OK) {
    cur->pos = 0;
    cur->is_list = 0;
    cur->is_knn = 1;
    cur->k = k;
    cur->eof = cur->n_ids == 0;
    if (!cur->eof) cur->id = cur->hits[0].id;
  }
  embed_vec_free(&q);
  return rc;
}

static int cursor_filter(embed_cursor *cur, int plan, sqlite3_value **argv) {
  int a = 0, rc;
  int64_t lo = INT64_MIN, hi = INT64_MAX;
  int nonempty = 1;
  sqlite3_value *query = 0, *kv = 0, *limitv = 0, *offsetv = 0, *probev = 0;
  cursor_reset(cur);
  if (plan & (PLAN_EQ | PLAN_IN)) {
    rc = cursor_collect_ids(cur, argv[a++], (plan & PLAN_IN) != 0);
    if (rc) return rc;
    cur->is_list = 1;
  }
  if (plan & PLAN_LO)
    nonempty &=
        cursor_narrow_range(argv[a++], 1, (plan & PLAN_LO_GT) != 0, &lo, &hi);
  if (plan & PLAN_HI)
    nonempty &=
        cursor_narrow_range(argv[a++], 0, (plan & PLAN_HI_LT) != 0, &lo, &hi);
  if (plan & PLAN_KNN) query = argv[a++];
  if (plan & PLAN_K) kv = argv[a++];
  if (plan & PLAN_NPROBE) probev = argv[a++];
  if (plan & PLAN_LIMIT) limitv = argv[a++];
  if (plan & PLAN_OFFSET) offsetv = argv[a++];

  if (plan & PLAN_KNN) {
    int64_t k = 0, nprobe = -1;
    rc = cursor_knn_k((embed_vtab *)cur->base.pVtab, plan, kv, limitv, offsetv,
                      &k);
    if (rc == SQLITE_OK && probev)
      rc = cursor_knn_nprobe((embed_vtab *)cur->base.pVtab, probev, &nprobe);
    if (rc) return rc;
    if (!nonempty) return SQLITE_OK;
    return cursor_run_knn(cur, query, k, nprobe, cur->is_list, lo, hi);
  }
  if (cur->is_list) return cursor_list_seek(cur);
  if (!nonempty) return SQLITE_OK;
  rc = embed_scan_start(cur->scan, (plan & PLAN_DESC) != 0, lo, hi);
  if (rc) return rc;
  cur->is_scan = 1;
  return cursor_scan_step(cur);
}

int embedFilter(sqlite3_vtab_cursor *pCursor, int idxNum, const char *idxStr,
                int argc, sqlite3_value **argv) {
  (void)idxStr;
  (void)argc;
  return embed_vtab_named((embed_vtab *)pCursor->pVtab,
                          cursor_filter((embed_cursor *)pCursor, idxNum, argv));
}

static int cursor_next(embed_cursor *cur) {
  if (cur->is_knn) {
    cur->pos++;
    cur->eof = cur->pos >= cur->n_ids;
    if (!cur->eof) cur->id = cur->hits[cur->pos].id;
    return SQLITE_OK;
  }
  if (cur->is_list) {
    cur->pos++;
    return cursor_list_seek(cur);
  }
  return cursor_scan_step(cur);
}

int embedNext(sqlite3_vtab_cursor *pCursor) {
  return embed_vtab_named((embed_vtab *)pCursor->pVtab,
                          cursor_next((embed_cursor *)pCursor));
}

int embedEof(sqlite3_vtab_cursor *pCursor) {
  return ((embed_cursor *)pCursor)->eof;
}

static int cursor_column(embed_cursor *cur, sqlite3_context *ctx, int col) {
  embed_vtab *tab = (embed_vtab *)cur->base.pVtab;
  switch (col) {
    case COL_ID:
      sqlite3_result_int64(ctx, cur->id);
      break;
    case COL_VECTOR: {
      const void *blob;
      int rc;
      char *zErr = 0;
      if (sqlite3_vtab_nochange(ctx)) break; /* UPDATE not touching it */
      if (cur->is_knn) return embed_store_result(tab->st, cur->id, ctx);
      if (cur->is_list) {
        rc = cursor_list_vector(cur, &blob, &zErr);
        if (rc == SQLITE_NOTFOUND) break; /* deleted since the seek: NULL */
      } else {
        rc = embed_scan_bytes(cur->scan, &blob, &zErr);
      }
      if (rc) return embed_vtab_error(tab, rc, zErr);
      sqlite3_result_blob(
          ctx, blob,
          (int)(embed_store_config(tab->st)->dim * EMBED_FLOAT_BYTES),
          SQLITE_TRANSIENT);
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

int embedColumn(sqlite3_vtab_cursor *pCursor, sqlite3_context *ctx, int col) {
  return embed_vtab_named((embed_vtab *)pCursor->pVtab,
                          cursor_column((embed_cursor *)pCursor, ctx, col));
}

int embedRowid(sqlite3_vtab_cursor *pCursor, sqlite_int64 *pRowid) {
  *pRowid = ((embed_cursor *)pCursor)->id;
  return SQLITE_OK;
}
