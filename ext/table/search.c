/*
** search.c - exact k-nearest-neighbour search: distances, top-k selection,
** and the search of a table's in-memory copy (copy.c) brought up to the
** caller's transaction by the change log (store_log.c).
**
** Usage:
**
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10;
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10
**                                    AND id IN (SELECT token_id FROM doc);
**
** The module (table/cursor.c) plans the query and asks here:
**
**     rc = embed_search_knn(copies, st, scan, q, k, ids, n_ids, lo, hi,
**                           &hits, &n, &zErr);   // ascending (distance, id)
**
** Design:
**  - Distances: cosine = 1 - dot / (max(|q|, 1e-8) max(|v|, 1e-8)) (torch's
**    cosine_similarity), l2 = Euclidean distance, dot = -dot product. One
**    function computes them for every path, so a search of the copy and a
**    search that reads the table rank identically.
**  - Top-k: a bounded max-heap of (distance, id), O(N log k) time and O(k)
**    memory; ties go to the smaller id.
**  - A live search: read the log's bounds as this transaction sees them,
**    pick the newest usable version of the copy (building one when there
**    is none, outside write transactions), read the ids changed since it
**    (this connection's unflushed writes included) and re-read their rows;
**    then rank the copy's rows but those ids, and the changed rows. Outside
**    a write transaction the changes move the shared copy forward (in
**    place, or as a derived version once they reach n/512 rows), so the
**    next search starts from them.
**  - Reading the table instead: with search_cache=0, on a table without a
**    change log (made by embed 0.1), and inside a write transaction before
**    any version exists.
*/
#include <math.h>
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
  int64_t dim;       /* of the vectors ranked */
  int64_t k, n, cap; /* k == 0: keep every hit */
  int nomem;         /* a hit could not be kept (k == 0 only) */
} search_topk;

/* Is a ranked after b? (larger distance, then larger id) */
static int hit_worse(const embed_hit *a, const embed_hit *b) {
  if (a->distance != b->distance) return a->distance > b->distance;
  return a->id > b->id;
}

static int topk_init(search_topk *t, int64_t k, int64_t dim) {
  t->k = k;
  t->dim = dim;
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

static int search_contains(const int64_t *ids, int64_t n, int64_t id) {
  int64_t at = embed_ids_lower_bound(ids, n, id);
  return at < n && ids[at] == id;
}

/* ------------------------------------------------------------- the copy */

/* Rank version v's rows allowed by the id filter (ids: sorted list, or
** NULL for the range [lo, hi]) and not among the changed rows ch, then
** ch's present rows the filter allows, into t. */
static void search_copy(const embed_copy *v, const embed_changes *ch,
                        embed_metric metric, const float *q, double qnorm,
                        const int64_t *ids, int64_t n_ids, int64_t lo,
                        int64_t hi, search_topk *t) {
  const int64_t *vid = embed_copy_ids(v);
  const float *const *rows = embed_copy_rows(v);
  const double *norms = embed_copy_norms(v);
  int64_t n = embed_copy_count(v), i, kk = 0;
  if (ids) {
    int64_t from = 0;
    for (i = 0; i < n_ids; i++) { /* ids ascending: search forward only */
      int64_t at = from + embed_ids_lower_bound(vid + from, n - from, ids[i]);
      from = at;
      if (at == n || vid[at] != ids[i] || ids[i] < lo || ids[i] > hi) continue;
      while (kk < ch->n && ch->ids[kk] < ids[i]) kk++;
      if (kk < ch->n && ch->ids[kk] == ids[i]) continue; /* changed */
      topk_push(t, ids[i],
                search_distance(metric, q, qnorm, rows[at], norms[at], t->dim));
    }
  } else {
    for (i = embed_ids_lower_bound(vid, n, lo); i < n && vid[i] <= hi; i++) {
      if (kk < ch->n && ch->ids[kk] <= vid[i]) {
        while (kk < ch->n && ch->ids[kk] < vid[i]) kk++;
        if (kk < ch->n && ch->ids[kk] == vid[i]) continue; /* changed */
      }
      topk_push(t, vid[i],
                search_distance(metric, q, qnorm, rows[i], norms[i], t->dim));
    }
  }
  for (kk = 0; kk < ch->n; kk++) {
    int64_t id = ch->ids[kk];
    if (!ch->present[kk] || id < lo || id > hi) continue;
    if (ids && !search_contains(ids, n_ids, id)) continue;
    topk_push(t, id,
              search_distance(metric, q, qnorm, ch->rows + kk * t->dim,
                              ch->norms[kk], t->dim));
  }
}

static void search_changes_free(embed_changes *ch) {
  sqlite3_free(ch->ids);
  sqlite3_free(ch->present);
  sqlite3_free(ch->rows);
  sqlite3_free(ch->norms);
  memset(ch, 0, sizeof(*ch));
}

/* Read the rows of the changed ids (ch->ids, ch->n set) as the caller's
** transaction sees them now. */
static int search_read_changes(embed_store *st, embed_changes *ch,
                               char **pzErr) {
  int64_t dim = embed_store_config(st)->dim, k;
  sqlite3_uint64 n = ch->n > 0 ? (sqlite3_uint64)ch->n : 1;
  embed_rows rows;
  int rc = SQLITE_OK;
  ch->present = (unsigned char *)sqlite3_malloc64(n);
  ch->rows =
      (float *)sqlite3_malloc64(n * (sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  ch->norms = (double *)sqlite3_malloc64(n * sizeof(double));
  if (!ch->present || !ch->rows || !ch->norms) return SQLITE_NOMEM;
  embed_rows_init(&rows, st, 0);
  for (k = 0; rc == SQLITE_OK && k < ch->n; k++) {
    float *row = ch->rows + k * dim;
    rc = embed_rows_seek(&rows, ch->ids[k], pzErr);
    if (rc == SQLITE_OK) rc = embed_rows_read(&rows, row, pzErr);
    ch->present[k] = rc == SQLITE_OK;
    if (rc == SQLITE_OK) ch->norms[k] = embed_norm2(row, dim);
    if (rc == SQLITE_NOTFOUND) { /* deleted */
      sqlite3_free(*pzErr);
      *pzErr = 0;
      rc = SQLITE_OK;
    }
  }
  embed_rows_close(&rows);
  return rc;
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

/* ----------------------------------------------------------- live copy */

/* Publish a new version once the changes reach this many rows: below it,
** re-reading them at each search costs less than copying the arrays. */
static int64_t search_publish_min(const embed_copy *v) {
  int64_t n = embed_copy_count(v) / 512;
  return n > 64 ? n : 64;
}

/* Rank through the shared copy; *done = 0 when no copy can serve (inside a
** write transaction, before any version exists). */
static int search_live(embed_copies *copies, embed_store *st, embed_scan *scan,
                       const float *q, double qnorm, const int64_t *ids,
                       int64_t n_ids, int64_t lo, int64_t hi, search_topk *t,
                       int *done, char **pzErr) {
  sqlite3 *db = embed_store_db(st);
  int in_write =
      sqlite3_txn_state(db, embed_store_schema(st)) == SQLITE_TXN_WRITE;
  embed_changes ch;
  embed_copy *v, *next = 0;
  int64_t head, tail;
  int rc = embed_store_log_head(st, &head, &tail);
  *done = 0;
  memset(&ch, 0, sizeof(ch));
  if (rc) return rc;
  v = embed_copies_pick(copies, head, tail);
  if (!v) {
    /* a version built inside a write transaction could hold rows that are
    ** never committed: read the table instead */
    if (in_write) return SQLITE_OK;
    rc = embed_copy_build(st, scan, head, &v, pzErr);
    if (rc) return rc;
    embed_copies_publish(copies, v);
  }
  rc =
      embed_store_log_since(st, embed_copy_seq(v), head, &ch.ids, &ch.n, pzErr);
  if (rc == SQLITE_OK && ch.n > 0) rc = search_read_changes(st, &ch, pzErr);
  if (rc == SQLITE_OK && ch.n > 0 && !in_write &&
      embed_copies_update(copies, v, &ch, head)) {
    search_changes_free(&ch); /* v holds them now */
  } else if (rc == SQLITE_OK && ch.n >= search_publish_min(v) && !in_write) {
    rc = embed_copy_derive(v, &ch, head, &next);
    if (rc == SQLITE_OK) {
      embed_copies_publish(copies, next);
      embed_copy_release(v);
      v = next;
      search_changes_free(&ch);
    }
  }
  if (rc == SQLITE_OK) {
    search_copy(v, &ch, embed_store_config(st)->metric, q, qnorm, ids, n_ids,
                lo, hi, t);
    *done = 1;
  }
  embed_copy_release(v);
  search_changes_free(&ch);
  return rc;
}

/* ---------------------------------------------------------- the index */

/* The cells a query probes by default: enough to scan about
** 1000 n^0.2 of the n rows (10,000 of 100,000; 16,000 of 1,000,000), which
** reached a recall@10 of 0.99 on clustered data at both sizes
** (bench/bench_ivf.py; README "Approximate search"); at least 8. */
static int64_t search_default_nprobe(int64_t nlist, int64_t rows) {
  double per_cell = rows > 0 ? (double)rows / (double)nlist : 1.0;
  double want = 1000.0 * pow((double)(rows > 1 ? rows : 1), 0.2) / per_cell;
  int64_t n = (int64_t)ceil(want);
  if (n < 8) n = 8;
  return n < nlist ? n : nlist;
}

static int search_changed(const embed_changes *ch, int64_t id) {
  return ch->n > 0 && search_contains(ch->ids, ch->n, id);
}

/* Rank with the table's index (ivf.c): the cells nearest the query, their
** rows by the distance their codes give, the best k x oversample of those
** by their exact distance read from the table, and the changed rows ch
** exactly. *done = 0 when the index cannot serve: inside a write
** transaction before it is loaded, or for a snapshot older than it. */
static int search_ivf(embed_copies *copies, embed_store *st, embed_scan *scan,
                      const float *q, double qnorm, int64_t nprobe,
                      int64_t build, int64_t build_seq, int64_t lo, int64_t hi,
                      search_topk *t, int *done, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  sqlite3 *db = embed_store_db(st);
  int in_write =
      sqlite3_txn_state(db, embed_store_schema(st)) == SQLITE_TXN_WRITE;
  embed_changes ch;
  embed_ivf_query qq;
  search_topk cand;
  embed_ivf *ix;
  embed_rows rows;
  float *row = 0;
  int64_t head, tail, i, m, probed;
  int rc = embed_store_log_head(st, &head, &tail);
  *done = 0;
  memset(&ch, 0, sizeof(ch));
  memset(&qq, 0, sizeof(qq));
  memset(&cand, 0, sizeof(cand));
  if (rc) return rc;
  ix = embed_ivf_pick(copies, build, head, tail);
  if (!ix) {
    if (in_write || embed_ivf_stale(copies, build, head)) return SQLITE_OK;
    rc = embed_ivf_load(st, scan, build, build_seq, head, tail, &ix, pzErr);
    if (rc) return rc;
    embed_ivf_publish(copies, ix);
  }
  rc =
      embed_store_log_since(st, embed_ivf_seq(ix), head, &ch.ids, &ch.n, pzErr);
  if (rc == SQLITE_OK && ch.n > 0) rc = search_read_changes(st, &ch, pzErr);
  if (rc == SQLITE_OK && ch.n > 0 && !in_write &&
      embed_ivf_update(copies, ix, &ch, head))
    search_changes_free(&ch); /* the index holds them now */
  if (nprobe < 0) nprobe = cfg->nprobe;
  if (nprobe == 0)
    nprobe = search_default_nprobe(embed_ivf_nlist(ix), embed_ivf_rows(ix));
  m = t->k * cfg->oversample;
  if (rc == SQLITE_OK) rc = topk_init(&cand, m, cfg->dim);
  if (rc == SQLITE_OK) rc = embed_ivf_query_start(ix, q, &qq);
  /* the nearest nprobe cells, and more while fewer than k rows qualify */
  for (probed = 0; rc == SQLITE_OK && probed < qq.n_order; probed++) {
    const int64_t *ids;
    const float *scores;
    int64_t n;
    if (probed >= nprobe && cand.n >= t->k) break;
    scores = embed_ivf_cell_score(ix, &qq, qq.order[probed], &ids, &n);
    for (i = 0; i < n; i++) {
      if (ids[i] < lo || ids[i] > hi || search_changed(&ch, ids[i])) continue;
      topk_push(&cand, ids[i], scores[i]);
    }
  }
  /* re-rank: every distance returned is the row's exact one */
  row = (float *)sqlite3_malloc64((sqlite3_uint64)cfg->dim * EMBED_FLOAT_BYTES);
  if (rc == SQLITE_OK && !row) rc = SQLITE_NOMEM;
  embed_rows_init(&rows, st, 0);
  for (i = 0; rc == SQLITE_OK && i < cand.n; i++) {
    int64_t id = cand.heap[i].id;
    rc = embed_rows_seek(&rows, id, pzErr);
    if (rc == SQLITE_OK) rc = embed_rows_read(&rows, row, pzErr);
    if (rc == SQLITE_OK)
      topk_push(t, id,
                search_distance(cfg->metric, q, qnorm, row,
                                cfg->metric == EMBED_METRIC_COSINE
                                    ? embed_norm2(row, cfg->dim)
                                    : 0,
                                cfg->dim));
  }
  embed_rows_close(&rows);
  for (i = 0; rc == SQLITE_OK && i < ch.n; i++)
    if (ch.present[i] && ch.ids[i] >= lo && ch.ids[i] <= hi)
      topk_push(t, ch.ids[i],
                search_distance(cfg->metric, q, qnorm, ch.rows + i * cfg->dim,
                                ch.norms[i], cfg->dim));
  if (rc == SQLITE_OK) *done = 1;
  sqlite3_free(row);
  embed_ivf_query_end(&qq);
  topk_free(&cand);
  search_changes_free(&ch);
  embed_ivf_release(ix);
  return rc;
}

/* --------------------------------------------------------------- search */

int embed_search_knn(embed_copies *copies, embed_store *st, embed_scan *scan,
                     const float *q, int64_t k, int64_t nprobe,
                     const int64_t *ids, int64_t n_ids, int64_t lo, int64_t hi,
                     embed_hit **hits, int64_t *n_hits, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  double qnorm = embed_norm2(q, cfg->dim);
  search_topk topk;
  int64_t build = 0, build_seq = 0;
  int rc, done = 0, indexed = 0;
  *hits = 0;
  *n_hits = 0;
  memset(&topk, 0, sizeof(topk));
  rc = topk_init(&topk, k, cfg->dim);
  /* the index serves a bounded search without an id list, unless
  ** nprobe = 0 asks for an exact one; until it is built, search exactly */
  if (rc == SQLITE_OK && embed_store_has_index(st) && k > 0 && !ids &&
      nprobe != 0 && embed_store_has_log(st)) {
    rc = embed_store_index_head(st, &build, &build_seq);
    if (rc == SQLITE_OK && build != 0) {
      indexed = 1;
      rc = search_ivf(copies, st, scan, q, qnorm, nprobe, build, build_seq, lo,
                      hi, &topk, &done, pzErr);
    }
  }
  if (rc == SQLITE_OK && !done && !indexed && cfg->search_cache &&
      embed_store_has_log(st))
    rc = search_live(copies, st, scan, q, qnorm, ids, n_ids, lo, hi, &topk,
                     &done, pzErr);
  if (rc == SQLITE_OK && !done)
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
