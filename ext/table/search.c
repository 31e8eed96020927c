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
** The module (table/cursor.c) plans the query and asks here:
**
**     rc = embed_search_knn(&snapshot, st, scan, q, k, ids, n_ids, lo, hi,
**                           &hits, &n, &zErr);  // hits ascending (distance,
*id)
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
**    rows) and the storage layer's count of in-place vector writes (which
**    move neither), and it is rebuilt by the next search when any of the
**    three moved.
**    While this connection has a write transaction open, searches read the
**    table itself, so uncommitted rows are seen and a ROLLBACK can never
**    leave a stale copy. The table option search_cache=0 turns it off.
*/
#include <stdlib.h>
#include <string.h>

#include "table/table.h"

static double search_distance(embed_metric metric, const float *q, double qnorm,
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

/* A bounded max-heap keeping the k smallest (distance, id). */
typedef struct search_topk {
  embed_hit *heap;
  int64_t k, n, cap; /* k == 0: keep every hit */
  int nomem;         /* a hit could not be kept (k == 0 only) */
} search_topk;

/* Is a ranked after b? (larger distance, then larger id) */
static int hit_worse(const embed_hit *a, const embed_hit *b) {
  if (a->distance != b->distance) return a->distance > b->distance;
  return a->id > b->id;
}

static int topk_init(search_topk *t, int64_t k) {
  t->k = k;
  t->n = 0;
  t->cap = k > 0 ? k : 1024;
  t->nomem = 0;
  t->heap =
      (embed_hit *)sqlite3_malloc64((sqlite3_uint64)t->cap * sizeof(embed_hit));
  return t->heap ? SQLITE_OK : SQLITE_NOMEM;
}

/* k == 0: keep every hit (ORDER BY distance without a bound). */
static void topk_keep_all(search_topk *t, embed_hit hit) {
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

static void topk_sift_down(embed_hit *h, int64_t n, int64_t i) {
  for (;;) {
    int64_t l = 2 * i + 1, r = l + 1, m = i;
    embed_hit tmp;
    if (l < n && hit_worse(&h[l], &h[m])) m = l;
    if (r < n && hit_worse(&h[r], &h[m])) m = r;
    if (m == i) return;
    tmp = h[i];
    h[i] = h[m];
    h[m] = tmp;
    i = m;
  }
}

static void topk_push(search_topk *t, int64_t id, double distance) {
  embed_hit hit;
  hit.id = id;
  hit.distance = distance;
  if (t->k == 0) {
    topk_keep_all(t, hit);
  } else if (t->n < t->k) {
    int64_t i = t->n++;
    t->heap[i] = hit;
    while (i > 0) { /* sift up */
      int64_t p = (i - 1) / 2;
      embed_hit tmp;
      if (!hit_worse(&t->heap[i], &t->heap[p])) break;
      tmp = t->heap[i];
      t->heap[i] = t->heap[p];
      t->heap[p] = tmp;
      i = p;
    }
  } else if (t->k > 0 && hit_worse(&t->heap[0], &hit)) {
    t->heap[0] = hit;
    topk_sift_down(t->heap, t->n, 0);
  }
}

static int hit_compare(const void *a, const void *b) {
  const embed_hit *x = (const embed_hit *)a, *y = (const embed_hit *)b;
  if (hit_worse(x, y)) return 1;
  if (hit_worse(y, x)) return -1;
  return 0;
}

static int64_t topk_finish(search_topk *t) {
  qsort(t->heap, (size_t)t->n, sizeof(embed_hit), hit_compare);
  return t->n;
}

static void topk_free(search_topk *t) {
  sqlite3_free(t->heap);
  t->heap = 0;
  t->n = 0;
}

/* --------------------------------------------------------------- snapshot */

/* An in-memory copy of a table's committed vectors. */
struct embed_snapshot {
  int64_t n, dim;
  int64_t *ids;                                /* ascending */
  float *vectors;                              /* n x dim, row i is ids[i] */
  double *norms;                               /* L2 norm of each row */
  int64_t data_version, total_changes, writes; /* what it was built from */
};

void embed_snapshot_free(embed_snapshot *snap) {
  if (!snap) return;
  sqlite3_free(snap->ids);
  sqlite3_free(snap->vectors);
  sqlite3_free(snap->norms);
  sqlite3_free(snap);
}

/* Copy every row of the table into a new snapshot, through scan. */
static int snapshot_build(embed_store *st, embed_scan *scan,
                          embed_snapshot **out, char **pzErr) {
  embed_snapshot *snap;
  int64_t dim = embed_store_config(st)->dim, cap = 0, n = 0;
  int rc;
  *out = 0;
  snap = (embed_snapshot *)sqlite3_malloc64(sizeof(*snap));
  if (!snap) return SQLITE_NOMEM;
  memset(snap, 0, sizeof(*snap));
  snap->dim = dim;
  rc = embed_store_count(st, &cap);
  if (rc == SQLITE_OK && cap > 0) {
    snap->ids =
        (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * EMBED_ID_BYTES);
    snap->norms =
        (double *)sqlite3_malloc64((sqlite3_uint64)cap * sizeof(double));
    snap->vectors = (float *)sqlite3_malloc64(
        (sqlite3_uint64)cap * (sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
    if (!snap->ids || !snap->norms || !snap->vectors) rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) rc = embed_scan_start(scan, 0, INT64_MIN, INT64_MAX);
  while (rc == SQLITE_OK && (rc = embed_scan_step(scan)) == SQLITE_ROW) {
    float *row = snap->vectors + n * dim;
    rc = SQLITE_OK;
    if (n >= cap) break; /* rows appeared since count(*): cannot happen */
    rc = embed_scan_vector(scan, row, pzErr);
    if (rc == SQLITE_OK) {
      snap->ids[n] = embed_scan_id(scan);
      snap->norms[n] = embed_norm2(row, dim);
      n++;
    }
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  embed_scan_reset(scan);
  snap->n = n;
  if (rc) {
    embed_snapshot_free(snap);
    return rc;
  }
  *out = snap;
  return SQLITE_OK;
}

/* The table's snapshot in *slot, rebuilt if stale; *out is NULL when the
** connection has an open write transaction (its uncommitted rows must be
** seen, so the caller reads the table instead) or the cache is off. */
static int snapshot_get(embed_snapshot **slot, embed_store *st,
                        embed_scan *scan, embed_snapshot **out, char **pzErr) {
  sqlite3 *db = embed_store_db(st);
  int64_t version = 0, changes, writes;
  int rc;
  *out = 0;
  if (!embed_store_config(st)->search_cache ||
      sqlite3_txn_state(db, embed_store_schema(st)) == SQLITE_TXN_WRITE)
    return SQLITE_OK;
  rc = embed_store_data_version(st, &version);
  if (rc) return rc;
  changes = sqlite3_total_changes64(db);
  writes = embed_store_writes(st);
  if (*slot && (*slot)->data_version == version &&
      (*slot)->total_changes == changes && (*slot)->writes == writes) {
    *out = *slot;
    return SQLITE_OK;
  }
  embed_snapshot_free(*slot);
  *slot = 0;
  rc = snapshot_build(st, scan, slot, pzErr);
  if (rc) return rc;
  (*slot)->data_version = version;
  (*slot)->total_changes = changes;
  (*slot)->writes = writes;
  *out = *slot;
  return SQLITE_OK;
}

/* First index i with ids[i] >= id. */
static int64_t search_lower_bound(const int64_t *ids, int64_t n, int64_t id) {
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

/* Rank the snapshot's rows allowed by the id filter (ids: sorted list, or
** NULL for the range [lo, hi]) into t. */
static void snapshot_search(const embed_snapshot *snap, embed_metric metric,
                            const float *q, double qnorm, const int64_t *ids,
                            int64_t n_ids, int64_t lo, int64_t hi,
                            search_topk *t) {
  int64_t dim = snap->dim, i;
  if (ids) {
    int64_t from = 0;
    for (i = 0; i < n_ids; i++) { /* ids ascending: search forward only */
      int64_t at =
          from + search_lower_bound(snap->ids + from, snap->n - from, ids[i]);
      if (at < snap->n && snap->ids[at] == ids[i] && ids[i] >= lo &&
          ids[i] <= hi)
        topk_push(t, ids[i],
                  search_distance(metric, q, qnorm, snap->vectors + at * dim,
                                  snap->norms[at], dim));
      from = at;
    }
    return;
  }
  for (i = search_lower_bound(snap->ids, snap->n, lo);
       i < snap->n && snap->ids[i] <= hi; i++)
    topk_push(t, snap->ids[i],
              search_distance(metric, q, qnorm, snap->vectors + i * dim,
                              snap->norms[i], dim));
}

/* ----------------------------------------------------------- table scan */

/* Rank the rows the id filters allow by reading the table itself. */
static int search_table(embed_store *st, embed_scan *scan, const float *q,
                        double qnorm, const int64_t *ids, int64_t n_ids,
                        int64_t lo, int64_t hi, search_topk *t, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  int64_t dim = cfg->dim, i = 0;
  embed_rows rows;
  int rc = SQLITE_OK;
  float *row =
      (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  if (!row) return SQLITE_NOMEM;
  embed_rows_init(&rows, st, 0);
  if (!ids) rc = embed_scan_start(scan, 0, lo, hi);
  while (rc == SQLITE_OK) {
    int64_t id;
    if (ids) { /* the next listed id that exists */
      if (i == n_ids) break;
      id = ids[i++];
      if (id < lo || id > hi) continue;
      rc = embed_rows_seek(&rows, id, pzErr);
      if (rc == SQLITE_NOTFOUND) {
        sqlite3_free(*pzErr);
        *pzErr = 0;
        rc = SQLITE_OK;
        continue;
      }
      if (rc == SQLITE_OK) rc = embed_rows_read(&rows, row, pzErr);
    } else {
      rc = embed_scan_step(scan);
      if (rc != SQLITE_ROW) break;
      id = embed_scan_id(scan);
      rc = embed_scan_vector(scan, row, pzErr);
    }
    if (rc == SQLITE_OK)
      topk_push(
          t, id,
          search_distance(
              cfg->metric, q, qnorm, row,
              cfg->metric == EMBED_METRIC_COSINE ? embed_norm2(row, dim) : 0,
              dim));
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  embed_rows_close(&rows);
  embed_scan_reset(scan);
  sqlite3_free(row);
  return rc;
}

/* --------------------------------------------------------------- search */

int embed_search_knn(embed_snapshot **snapshot, embed_store *st,
                     embed_scan *scan, const float *q, int64_t k,
                     const int64_t *ids, int64_t n_ids, int64_t lo, int64_t hi,
                     embed_hit **hits, int64_t *n_hits, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  double qnorm = embed_norm2(q, cfg->dim);
  embed_snapshot *snap = 0;
  search_topk topk;
  int rc;
  *hits = 0;
  *n_hits = 0;
  memset(&topk, 0, sizeof(topk));
  rc = topk_init(&topk, k);
  if (rc == SQLITE_OK) rc = snapshot_get(snapshot, st, scan, &snap, pzErr);
  if (rc == SQLITE_OK && snap)
    snapshot_search(snap, cfg->metric, q, qnorm, ids, n_ids, lo, hi, &topk);
  else if (rc == SQLITE_OK)
    rc = search_table(st, scan, q, qnorm, ids, n_ids, lo, hi, &topk, pzErr);
  if (rc == SQLITE_OK && topk.nomem) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    *n_hits = topk_finish(&topk);
    *hits = topk.heap;
    topk.heap = 0;
  }
  topk_free(&topk);
  return rc;
}
