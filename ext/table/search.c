/*
** search.c - exact k-nearest-neighbour search: distances, top-k selection,
** and the in-memory snapshot that makes a search run at memory speed.
**
** Usage:
**
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10;
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10
**                                    AND id IN (SELECT token_id FROM doc);
**
** vtab.c plans the query; this file ranks:
**
**     embed_topk t;  embed_topk_init(&t, k);
**     embed_snapshot_get(tab, &snap, &zErr);   // NULL: scan the table instead
**     embed_snapshot_search(snap, metric, q, |q|, ids, n_ids, lo, hi, &t);
**     n = embed_topk_finish(&t);     // t.heap[0..n) ascending (distance, id)
**
** Design:
**  - Distances: cosine = 1 - dot / (max(|q|, 1e-8) max(|v|, 1e-8)) (torch's
**    cosine_similarity), l2 = Euclidean distance, dot = -dot product. One
**    function computes them for every path, so cached and uncached searches
**    rank identically.
**  - Top-k: a bounded max-heap of (distance, id), O(N log k) time and O(k)
**    memory; ties go to the smaller id.
**  - Snapshot: the table's rows copied once into one contiguous float array
**    (plus ids and norms), n * (4 D + 16) bytes, freed with the table's
**    connection. It is used only while it is exact: it records PRAGMA
**    data_version (which moves when another connection commits) and
**    sqlite3_total_changes64() (which moves when this connection changes
**    rows) and the extension's own count of vector writes (in-place blob
**    writes move neither), and it is rebuilt by the next search when any
**    of the three moved.
**    While this connection has a write transaction open, searches scan the
**    table itself, so uncommitted rows are seen and a ROLLBACK can never
**    leave a stale copy. The table option search_cache=0 turns it off.
*/
#include <stdlib.h>
#include <string.h>

#include "table/table.h"

double embed_distance(embed_metric metric, const float *q, double qnorm,
                      const float *v, double vnorm, int64_t dim) {
  switch (metric) {
    case EMBED_METRIC_L2:
      return embed_l2_distance(q, v, dim);
    case EMBED_METRIC_DOT:
      return -embed_dot(q, v, dim);
    case EMBED_METRIC_COSINE:
    default: {
      double sim;
      if (qnorm < EMBED_COSINE_EPS) qnorm = EMBED_COSINE_EPS;
      if (vnorm < EMBED_COSINE_EPS) vnorm = EMBED_COSINE_EPS;
      sim = embed_dot(q, v, dim) / (qnorm * vnorm);
      if (sim > 1.0) sim = 1.0;
      if (sim < -1.0) sim = -1.0;
      return 1.0 - sim;
    }
  }
}

/* ------------------------------------------------------------------ top-k */

/* Is a ranked after b? (larger distance, then larger id) */
static int worse(const embed_hit *a, const embed_hit *b) {
  if (a->distance != b->distance) return a->distance > b->distance;
  return a->id > b->id;
}

int embed_topk_init(embed_topk *t, int64_t k) {
  t->k = k;
  t->n = 0;
  t->cap = k > 0 ? k : 1024;
  t->nomem = 0;
  t->heap =
      (embed_hit *)sqlite3_malloc64((sqlite3_uint64)t->cap * sizeof(embed_hit));
  return t->heap ? SQLITE_OK : SQLITE_NOMEM;
}

/* k == 0: keep every hit (ORDER BY distance without a bound). */
static void keep_all(embed_topk *t, embed_hit hit) {
  if (t->n == t->cap) {
    embed_hit *grown = (embed_hit *)sqlite3_realloc64(
        t->heap, (sqlite3_uint64)t->cap * 2 * sizeof(embed_hit));
    if (!grown) {
      t->nomem = 1;
      return;
    }
    t->heap = grown;
    t->cap *= 2;
  }
  t->heap[t->n++] = hit;
}

static void sift_down(embed_hit *h, int64_t n, int64_t i) {
  for (;;) {
    int64_t l = 2 * i + 1, r = l + 1, m = i;
    embed_hit tmp;
    if (l < n && worse(&h[l], &h[m])) m = l;
    if (r < n && worse(&h[r], &h[m])) m = r;
    if (m == i) return;
    tmp = h[i];
    h[i] = h[m];
    h[m] = tmp;
    i = m;
  }
}

void embed_topk_push(embed_topk *t, int64_t id, double distance) {
  embed_hit hit;
  hit.id = id;
  hit.distance = distance;
  if (t->k == 0) {
    keep_all(t, hit);
  } else if (t->n < t->k) {
    int64_t i = t->n++;
    t->heap[i] = hit;
    while (i > 0) { /* sift up */
      int64_t p = (i - 1) / 2;
      embed_hit tmp;
      if (!worse(&t->heap[i], &t->heap[p])) break;
      tmp = t->heap[i];
      t->heap[i] = t->heap[p];
      t->heap[p] = tmp;
      i = p;
    }
  } else if (t->k > 0 && worse(&t->heap[0], &hit)) {
    t->heap[0] = hit;
    sift_down(t->heap, t->n, 0);
  }
}

static int compare_hits(const void *a, const void *b) {
  const embed_hit *x = (const embed_hit *)a, *y = (const embed_hit *)b;
  if (worse(x, y)) return 1;
  if (worse(y, x)) return -1;
  return 0;
}

int64_t embed_topk_finish(embed_topk *t) {
  qsort(t->heap, (size_t)t->n, sizeof(embed_hit), compare_hits);
  return t->n;
}

void embed_topk_free(embed_topk *t) {
  sqlite3_free(t->heap);
  t->heap = 0;
  t->n = 0;
}

/* --------------------------------------------------------------- snapshot */

void embed_snapshot_free(embed_snapshot *snap) {
  if (!snap) return;
  sqlite3_free(snap->ids);
  sqlite3_free(snap->vectors);
  sqlite3_free(snap->norms);
  sqlite3_free(snap);
}

static int data_version(embed_vtab *tab, int64_t *version) {
  return embed_table_int(tab, STMT_DATA_VERSION, version);
}

/* Copy every row of the table into a new snapshot. */
static int build(embed_vtab *tab, embed_snapshot **out, char **pzErr) {
  sqlite3_stmt *stmt = 0;
  embed_snapshot *snap;
  int64_t dim = tab->cfg.dim, cap = 0, n = 0;
  char *zSql;
  int rc;
  *out = 0;
  snap = (embed_snapshot *)sqlite3_malloc64(sizeof(*snap));
  if (!snap) return SQLITE_NOMEM;
  memset(snap, 0, sizeof(*snap));
  snap->dim = dim;
  zSql = sqlite3_mprintf("SELECT count(*) FROM \"%w\".\"%w_vectors\"",
                         tab->schema, tab->name);
  rc = zSql ? sqlite3_prepare_v2(tab->db, zSql, -1, &stmt, 0) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW)
    cap = sqlite3_column_int64(stmt, 0);
  if (rc == SQLITE_OK) rc = sqlite3_finalize(stmt);
  stmt = 0;
  if (rc == SQLITE_OK && cap > 0) {
    snap->ids = (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * 8);
    snap->norms = (double *)sqlite3_malloc64((sqlite3_uint64)cap * 8);
    snap->vectors = (float *)sqlite3_malloc64((sqlite3_uint64)cap *
                                              (sqlite3_uint64)dim * 4);
    if (!snap->ids || !snap->norms || !snap->vectors) rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) {
    zSql = sqlite3_mprintf(
        "SELECT id, vector FROM \"%w\".\"%w_vectors\" "
        "ORDER BY id",
        tab->schema, tab->name);
    rc = zSql ? sqlite3_prepare_v2(tab->db, zSql, -1, &stmt, 0) : SQLITE_NOMEM;
    sqlite3_free(zSql);
  }
  while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(stmt, 0);
    int type = sqlite3_column_type(stmt, 1); /* before reading converts */
    const void *bytes = sqlite3_column_blob(stmt, 1);
    float *row = snap->vectors + n * dim;
    if (n >= cap) break; /* rows appeared since count(*): cannot happen */
    rc = embed_stored_vector(tab, id, type, bytes,
                             sqlite3_column_bytes(stmt, 1), row, pzErr);
    if (rc == SQLITE_OK) {
      snap->ids[n] = id;
      snap->norms[n] = embed_norm2(row, dim);
      n++;
    }
  }
  if (stmt) {
    int rc2 = sqlite3_finalize(stmt);
    if (rc == SQLITE_OK) rc = rc2;
  }
  snap->n = n;
  if (rc) {
    embed_snapshot_free(snap);
    return rc;
  }
  *out = snap;
  return SQLITE_OK;
}

int embed_snapshot_get(embed_vtab *tab, embed_snapshot **out, char **pzErr) {
  int64_t version = 0, changes, writes;
  int rc;
  *out = 0;
  if (!tab->cfg.search_cache ||
      sqlite3_txn_state(tab->db, tab->schema) == SQLITE_TXN_WRITE)
    return SQLITE_OK;
  rc = data_version(tab, &version);
  if (rc) return rc;
  changes = sqlite3_total_changes64(tab->db);
  writes = embed_registry_writes(tab->registry);
  if (tab->snapshot && tab->snapshot->data_version == version &&
      tab->snapshot->total_changes == changes &&
      tab->snapshot->writes == writes) {
    *out = tab->snapshot;
    return SQLITE_OK;
  }
  embed_snapshot_free(tab->snapshot);
  tab->snapshot = 0;
  rc = build(tab, &tab->snapshot, pzErr);
  if (rc) return rc;
  tab->snapshot->data_version = version;
  tab->snapshot->total_changes = changes;
  tab->snapshot->writes = writes;
  *out = tab->snapshot;
  return SQLITE_OK;
}

/* First index i with ids[i] >= id. */
static int64_t lower_bound(const int64_t *ids, int64_t n, int64_t id) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

void embed_snapshot_search(const embed_snapshot *snap, embed_metric metric,
                           const float *q, double qnorm, const int64_t *ids,
                           int64_t n_ids, int64_t lo, int64_t hi,
                           embed_topk *t) {
  int64_t dim = snap->dim, i;
  if (ids) {
    int64_t from = 0;
    for (i = 0; i < n_ids; i++) { /* ids ascending: search forward only */
      int64_t at = from + lower_bound(snap->ids + from, snap->n - from, ids[i]);
      if (at < snap->n && snap->ids[at] == ids[i] && ids[i] >= lo &&
          ids[i] <= hi)
        embed_topk_push(
            t, ids[i],
            embed_distance(metric, q, qnorm, snap->vectors + at * dim,
                           snap->norms[at], dim));
      from = at;
    }
    return;
  }
  for (i = lower_bound(snap->ids, snap->n, lo);
       i < snap->n && snap->ids[i] <= hi; i++)
    embed_topk_push(t, snap->ids[i],
                    embed_distance(metric, q, qnorm, snap->vectors + i * dim,
                                   snap->norms[i], dim));
}
