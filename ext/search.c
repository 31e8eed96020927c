/*
** search.c - exact k-nearest-neighbour search: distances and top-k.
**
** Usage (vtab.c runs the scan; this file ranks):
**
**     embed_topk t;
**     embed_topk_init(&t, k);
**     for each row: embed_topk_push(&t, id, embed_distance(metric, q, v, D));
**     n = embed_topk_finish(&t);    // t.heap[0..n) ascending (distance, id)
**
** SQL:
**
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 10;
**
** Design: a bounded max-heap of k (distance, id) pairs keeps the k smallest
** seen so far in O(N log k) time and O(k) memory; ties are broken by the
** smaller id, so results are deterministic. Distances by metric:
** cosine = 1 - cosine similarity, l2 = Euclidean distance, dot = -dot product.
*/
#include <stdlib.h>

#include "embed_int.h"

double embed_distance(embed_metric metric, const float *q, const float *v,
                      int64_t dim) {
  switch (metric) {
    case EMBED_METRIC_L2:
      return embed_l2_distance(q, v, dim);
    case EMBED_METRIC_DOT:
      return -embed_dot(q, v, dim);
    case EMBED_METRIC_COSINE:
    default:
      return 1.0 - embed_cosine_similarity(q, v, dim);
  }
}

/* Is a ranked after b? (larger distance, then larger id) */
static int worse(const embed_hit *a, const embed_hit *b) {
  if (a->distance != b->distance) return a->distance > b->distance;
  return a->id > b->id;
}

int embed_topk_init(embed_topk *t, int64_t k) {
  t->k = k;
  t->n = 0;
  t->heap = (embed_hit *)sqlite3_malloc64((sqlite3_uint64)k * sizeof(embed_hit));
  return t->heap ? SQLITE_OK : SQLITE_NOMEM;
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
  if (t->n < t->k) {
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
