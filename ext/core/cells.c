/*
** cells.c - the coarse quantizer of approximate search: a two-level k-means
** that splits vector space into nlist cells, grouped in ngroups groups.
**
** Usage (from C; SQLite is not needed here):
**
**     embed_cells c = {dim, nlist, embed_cells_groups(nlist), ...arrays};
**     scratch = malloc(embed_cells_scratch_bytes(n, dim, nlist));
**     if (embed_cells_train(sample, n, seed, 10, scratch, &c, &err)) ...;
**     cell = embed_cells_assign(&c, row, 2, NULL);   // where a row goes
**     embed_cells_nearest(&c, q, nprobe, dist, probe); // cells a query visits
**
** Design:
**  - Training runs k-means on the sample into ngroups groups, then k-means
**    on each group's rows into that group's cells, so the cells of a group
**    are contiguous (group_first) and both levels cost about n sqrt(nlist)
**    distances per iteration instead of n nlist. A group gets a share of
**    the nlist cells proportional to its rows (largest remainders), at
**    least one and at most its row count.
**  - Each k-means: k-means++ seeding (D^2 sampling from a counter-based
**    generator over embed_mix64, seeded by the seed and the group; over a
**    sample of 32 k rows when there are more), then
**    `iterations` rounds of assign / repair / mean, then a last assignment
**    that gives the sizes. Repair: a cluster left empty takes the row
**    farthest from its centroid among clusters with more than one row (so
**    with k <= rows no cluster stays empty). Centroid sums are in double.
**    Everything is a pure function of the input, the seed and the kernel
**    level (the float kernels of codes.c add in a level-dependent order).
**  - A group centroid is the mean of its cells' centroids weighted by their
**    final sizes (that is, close to the mean of the group's rows).
**  - Assignment finds the groups_probed nearest group centroids, then the
**    nearest cell among their cells: about ngroups + groups_probed *
**    nlist / ngroups distances per row. Ties go to the lower cell index.
**  - No allocation: the caller passes the scratch (embed_cells_scratch_bytes,
**    8-byte aligned) and the output arrays; assign works on the stack.
*/
#include <math.h>
#include <string.h>

#include "core/core.h"

#define CELLS_CHUNK 256 /* centroids scored at a time on the stack */

static uint64_t cells_next(uint64_t *state) {
  *state += 0x9E3779B97F4A7C15ULL;
  return embed_mix64(*state);
}

static double cells_uniform(uint64_t *state) { /* in [0, 1) */
  return (double)(cells_next(state) >> 11) * (1.0 / 9007199254740992.0);
}

/* One k-means problem: the m rows sample[idx[i]] (or sample[i] without
** idx) into k clusters, k <= m. */
typedef struct cells_kmeans {
  const float *sample;
  int64_t dim;
  const int64_t *idx;
  int64_t m, k;
  float *cent;    /* k x dim: the result */
  int64_t *label; /* m: the cluster of each row */
  float *dist;    /* m: its squared distance to that centroid */
  double *sums;   /* k x dim */
  int64_t *count; /* k: rows per cluster */
  float *dbuf;    /* k */
  embed_l2sq_many_fn l2;
  uint64_t rng;
} cells_kmeans;

static const float *cells_row(const cells_kmeans *km, int64_t i) {
  int64_t r = km->idx ? km->idx[i] : i;
  return km->sample + (size_t)r * (size_t)km->dim;
}

/* k-means++ seeding over at most CELLS_SEED_PER_K * k of the rows (a
** seeded Bernoulli sample; all rows when there are few): each centre costs
** a pass over the candidates, and a pass over all rows would be as dear as
** a Lloyd iteration per centre. The candidates' local indices go in label,
** their distances to the nearest centre so far in dist (both free until
** the first assignment). */
#define CELLS_SEED_PER_K 32
static void cells_seed(cells_kmeans *km) {
  const size_t rowb = (size_t)km->dim * sizeof(float);
  int64_t c, i, nc = 0, pick;
  if (km->m > CELLS_SEED_PER_K * km->k) {
    double rate = (double)(CELLS_SEED_PER_K * km->k) / (double)km->m;
    uint64_t base = cells_next(&km->rng);
    for (i = 0; i < km->m; i++)
      if ((double)(embed_mix64(base ^ (uint64_t)i) >> 11) *
              (1.0 / 9007199254740992.0) <
          rate)
        km->label[nc++] = i;
  }
  if (nc < km->k) /* few rows (or an unlucky draw): every row */
    for (nc = 0; nc < km->m; nc++) km->label[nc] = nc;
  pick = (int64_t)(cells_next(&km->rng) % (uint64_t)nc);
  memcpy(km->cent, cells_row(km, km->label[pick]), rowb);
  for (i = 0; i < nc; i++)
    km->l2(km->cent, cells_row(km, km->label[i]), 1, km->dim, &km->dist[i]);
  for (c = 1; c < km->k; c++) {
    float *cc = km->cent + (size_t)c * (size_t)km->dim;
    double total = 0, u, cum = 0;
    for (i = 0; i < nc; i++) total += km->dist[i];
    if (total > 0) {
      u = cells_uniform(&km->rng) * total;
      pick = -1;
      for (i = 0; i < nc; i++) {
        if (km->dist[i] <= 0) continue;
        pick = i;
        cum += km->dist[i];
        if (cum > u) break;
      }
    } else { /* every candidate sits on a centre already */
      pick = (int64_t)(cells_next(&km->rng) % (uint64_t)nc);
    }
    memcpy(cc, cells_row(km, km->label[pick]), rowb);
    for (i = 0; i < nc; i++) {
      float d;
      km->l2(cc, cells_row(km, km->label[i]), 1, km->dim, &d);
      if (d < km->dist[i]) km->dist[i] = d;
    }
  }
}

/* Each row to its nearest centroid (the lowest index on ties). */
static void cells_assign_all(cells_kmeans *km) {
  int64_t i, c;
  memset(km->count, 0, (size_t)km->k * sizeof(int64_t));
  for (i = 0; i < km->m; i++) {
    int64_t best = 0;
    km->l2(cells_row(km, i), km->cent, km->k, km->dim, km->dbuf);
    for (c = 1; c < km->k; c++)
      if (km->dbuf[c] < km->dbuf[best]) best = c;
    km->label[i] = best;
    km->dist[i] = km->dbuf[best];
    km->count[best]++;
  }
}

/* An empty cluster takes the farthest row of a cluster that can spare one. */
static void cells_repair(cells_kmeans *km) {
  int64_t e, i;
  for (e = 0; e < km->k; e++) {
    int64_t far = -1;
    if (km->count[e] > 0) continue;
    for (i = 0; i < km->m; i++)
      if (km->count[km->label[i]] > 1 &&
          (far < 0 || km->dist[i] > km->dist[far]))
        far = i;
    if (far < 0) break; /* k > m: cannot happen from embed_cells_train */
    km->count[km->label[far]]--;
    km->label[far] = e;
    km->count[e] = 1;
    km->dist[far] = 0;
    memcpy(km->cent + (size_t)e * (size_t)km->dim, cells_row(km, far),
           (size_t)km->dim * sizeof(float));
  }
}

/* Each centroid to the mean of its rows. */
static void cells_update(cells_kmeans *km) {
  const size_t dim = (size_t)km->dim;
  int64_t i, c;
  size_t j;
  memset(km->sums, 0, (size_t)km->k * dim * sizeof(double));
  for (i = 0; i < km->m; i++) {
    const float *r = cells_row(km, i);
    double *s = km->sums + (size_t)km->label[i] * dim;
    for (j = 0; j < dim; j++) s[j] += r[j];
  }
  for (c = 0; c < km->k; c++) {
    const double *s = km->sums + (size_t)c * dim;
    float *cc = km->cent + (size_t)c * dim;
    if (km->count[c] == 0) continue;
    for (j = 0; j < dim; j++) cc[j] = (float)(s[j] / (double)km->count[c]);
  }
}

static void cells_kmeans_run(cells_kmeans *km, int iterations) {
  int it;
  cells_seed(km);
  for (it = 0; it < iterations; it++) {
    cells_assign_all(km);
    cells_repair(km);
    cells_update(km);
  }
  cells_assign_all(km);
  cells_repair(km);
}

/* The cells of each group: share[g] proportional to size[g], at least 1
** and at most size[g] for a nonempty group, 0 for an empty one, summing to
** nlist (which is at least the nonempty groups and at most n). */
static void cells_share(const int64_t *size, int64_t ngroups, int64_t n,
                        int64_t nlist, int64_t *share) {
  int64_t g, total = 0;
  for (g = 0; g < ngroups; g++) {
    double quota = (double)nlist * (double)size[g] / (double)n;
    int64_t s = (int64_t)quota;
    if (s < 1) s = 1;
    if (s > size[g]) s = size[g];
    share[g] = s;
    total += s;
  }
  while (total != nlist) {
    /* move one cell: take it where the share most exceeds the quota, or
    ** give it where the quota most exceeds the share */
    int64_t best = -1;
    double best_gap = 0;
    for (g = 0; g < ngroups; g++) {
      double gap = (double)share[g] - (double)nlist * (double)size[g] / n;
      if (total > nlist ? share[g] <= 1 : share[g] >= size[g]) continue;
      if (total < nlist) gap = -gap;
      if (best < 0 || gap > best_gap) {
        best = g;
        best_gap = gap;
      }
    }
    if (best < 0) break; /* unreachable for valid arguments */
    share[best] += total > nlist ? -1 : 1;
    total += total > nlist ? -1 : 1;
  }
}

int64_t embed_cells_groups(int64_t nlist) {
  int64_t g;
  if (nlist <= 1) return 1;
  g = (int64_t)sqrt((double)nlist); /* then exactly floor(sqrt(nlist)) */
  while (g > 1 && g * g > nlist) g--;
  while ((g + 1) * (g + 1) <= nlist) g++;
  if (nlist - g * g > g) g++; /* the nearer of g and g + 1 */
  return g;
}

/* The scratch layout, in 8-byte units then floats. */
typedef struct cells_layout {
  uint64_t label, perm, gstart, share, count, sums, dist, dbuf, total;
} cells_layout;

static cells_layout cells_plan(int64_t n, int64_t dim, int64_t nlist) {
  cells_layout l;
  uint64_t un = (uint64_t)n, ud = (uint64_t)dim, uk = (uint64_t)nlist;
  l.label = 0;
  l.perm = l.label + 8 * un;
  l.gstart = l.perm + 8 * un;
  l.share = l.gstart + 8 * (uk + 1);
  l.count = l.share + 8 * uk;
  l.sums = l.count + 8 * uk;
  l.dist = l.sums + 8 * uk * ud;
  l.dbuf = l.dist + 4 * un;
  l.total = l.dbuf + 4 * uk;
  return l;
}

uint64_t embed_cells_scratch_bytes(int64_t n, int64_t dim, int64_t nlist) {
  if (n < 1 || dim < 1 || nlist < 1) return 0;
  return cells_plan(n, dim, nlist).total;
}

int embed_cells_train(const float *sample, int64_t n, uint64_t seed,
                      int iterations, void *scratch, embed_cells *cells,
                      embed_error *err) {
  cells_layout l;
  char *base = scratch;
  int64_t *gstart, *share, dim, nlist, ngroups, g, i, first = 0;
  cells_kmeans km;
  size_t j;
  if (!cells || !cells->centroids || !cells->group_centroids ||
      !cells->group_first || !sample || !scratch)
    return embed_error_set(err, "cells: missing sample, scratch or output");
  dim = cells->dim;
  nlist = cells->nlist;
  ngroups = cells->ngroups;
  if (dim < 1 || dim > EMBED_MAX_DIM)
    return embed_error_set(err, "cells: dim must be in [1, %d], got %lld",
                           EMBED_MAX_DIM, (long long)dim);
  if (n < 1 || nlist < 1 || nlist > n)
    return embed_error_set(
        err, "cells: nlist must be in [1, %lld] (the sample rows), got %lld",
        (long long)n, (long long)nlist);
  if (ngroups < 1 || ngroups > nlist)
    return embed_error_set(
        err, "cells: ngroups must be in [1, %lld] (nlist), got %lld",
        (long long)nlist, (long long)ngroups);
  if (iterations < 0)
    return embed_error_set(err, "cells: iterations must be >= 0, got %d",
                           iterations);
  l = cells_plan(n, dim, nlist);
  gstart = (int64_t *)(void *)(base + l.gstart);
  share = (int64_t *)(void *)(base + l.share);

  /* level 1: the sample into groups */
  km.sample = sample;
  km.dim = dim;
  km.idx = 0;
  km.m = n;
  km.k = ngroups;
  km.cent = cells->group_centroids;
  km.label = (int64_t *)(void *)(base + l.label);
  km.dist = (float *)(void *)(base + l.dist);
  km.sums = (double *)(void *)(base + l.sums);
  km.count = (int64_t *)(void *)(base + l.count);
  km.dbuf = (float *)(void *)(base + l.dbuf);
  km.l2 = embed_l2sq_many_impl();
  km.rng = embed_mix64(seed);
  cells_kmeans_run(&km, iterations);

  /* the rows of each group, contiguous in perm (a counting sort) */
  {
    int64_t *perm = (int64_t *)(void *)(base + l.perm);
    memset(gstart, 0, (size_t)(ngroups + 1) * sizeof(int64_t));
    for (i = 0; i < n; i++) gstart[km.label[i] + 1]++;
    for (g = 0; g < ngroups; g++) gstart[g + 1] += gstart[g];
    memcpy(share, gstart, (size_t)ngroups * sizeof(int64_t)); /* cursors */
    for (i = 0; i < n; i++) perm[share[km.label[i]]++] = i;
    for (g = 0; g < ngroups; g++) km.count[g] = gstart[g + 1] - gstart[g];
    cells_share(km.count, ngroups, n, nlist, share);
    km.idx = perm;
  }

  /* level 2: each group's rows into its cells */
  for (g = 0; g < ngroups; g++) {
    float *gc = cells->group_centroids + (size_t)g * (size_t)dim;
    int64_t c, rows = 0;
    cells->group_first[g] = first;
    if (share[g] > 0) {
      km.idx = (const int64_t *)(void *)(base + l.perm) + gstart[g];
      km.m = gstart[g + 1] - gstart[g];
      km.k = share[g];
      km.cent = cells->centroids + (size_t)first * (size_t)dim;
      km.label = (int64_t *)(void *)(base + l.label) + gstart[g];
      km.dist = (float *)(void *)(base + l.dist) + gstart[g];
      km.rng = embed_mix64(embed_mix64(seed) ^ (uint64_t)(g + 1));
      cells_kmeans_run(&km, iterations);
      /* the group centroid: its cells' centroids weighted by size */
      memset(km.sums, 0, (size_t)dim * sizeof(double));
      for (c = 0; c < km.k; c++) {
        const float *cc = km.cent + (size_t)c * (size_t)dim;
        for (j = 0; j < (size_t)dim; j++)
          km.sums[j] += (double)km.count[c] * cc[j];
        rows += km.count[c];
      }
      if (rows > 0)
        for (j = 0; j < (size_t)dim; j++)
          gc[j] = (float)(km.sums[j] / (double)rows);
    }
    first += share[g];
  }
  cells->group_first[ngroups] = first;
  return 0;
}

/* Keep the p smallest (d, index) seen so far, ascending, in bd/bi. */
static void cells_keep(float d, int64_t index, int p, int *have, float *bd,
                       int64_t *bi) {
  int at = *have;
  if (at == p) {
    if (!(d < bd[p - 1])) return; /* equal: the earlier index stays */
    at = p - 1;
  } else {
    (*have)++;
  }
  while (at > 0 && d < bd[at - 1]) {
    bd[at] = bd[at - 1];
    bi[at] = bi[at - 1];
    at--;
  }
  bd[at] = d;
  bi[at] = index;
}

/* The nearest of centroids [lo, hi) to row, or *best unchanged when none
** beats *bestd (ties keep the lower index, which comes first). */
static void cells_scan(const embed_cells *cells, embed_l2sq_many_fn l2,
                       const float *row, int64_t lo, int64_t hi, int64_t *best,
                       float *bestd) {
  float d[CELLS_CHUNK];
  int64_t at, c;
  for (at = lo; at < hi; at += CELLS_CHUNK) {
    int64_t len = hi - at < CELLS_CHUNK ? hi - at : CELLS_CHUNK;
    l2(row, cells->centroids + (size_t)at * (size_t)cells->dim, len, cells->dim,
       d);
    for (c = 0; c < len; c++)
      if (*best < 0 || d[c] < *bestd || (d[c] == *bestd && at + c < *best)) {
        *best = at + c;
        *bestd = d[c];
      }
  }
}

int64_t embed_cells_assign(const embed_cells *cells, const float *row,
                           int groups_probed, double *d1) {
  embed_l2sq_many_fn l2 = embed_l2sq_many_impl();
  int64_t best = -1, g, k;
  float bestd = 0;
  if (groups_probed < 1) groups_probed = 1;
  if (groups_probed >= cells->ngroups ||
      groups_probed > EMBED_CELLS_MAX_PROBE) {
    cells_scan(cells, l2, row, 0, cells->nlist, &best, &bestd);
  } else {
    float gd[CELLS_CHUNK], bd[EMBED_CELLS_MAX_PROBE];
    int64_t bi[EMBED_CELLS_MAX_PROBE];
    int have = 0, p;
    for (g = 0; g < cells->ngroups; g += CELLS_CHUNK) {
      int64_t len =
          cells->ngroups - g < CELLS_CHUNK ? cells->ngroups - g : CELLS_CHUNK;
      l2(row, cells->group_centroids + (size_t)g * (size_t)cells->dim, len,
         cells->dim, gd);
      for (k = 0; k < len; k++)
        cells_keep(gd[k], g + k, groups_probed, &have, bd, bi);
    }
    for (p = 0; p < have; p++)
      cells_scan(cells, l2, row, cells->group_first[bi[p]],
                 cells->group_first[bi[p] + 1], &best, &bestd);
    if (best < 0) cells_scan(cells, l2, row, 0, cells->nlist, &best, &bestd);
  }
  if (d1) *d1 = bestd;
  return best;
}

/* Is cell a before cell b: nearer, or as near with a lower index? */
static int cells_before(const float *d, int64_t a, int64_t b) {
  return d[a] < d[b] || (d[a] == d[b] && a < b);
}

/* Restore the max-heap (by cells_before) at heap[0..n) from slot at. */
static void cells_sift(const float *d, int64_t *heap, int64_t n, int64_t at) {
  for (;;) {
    int64_t top = at, l = 2 * at + 1, r = l + 1, t;
    if (l < n && cells_before(d, heap[top], heap[l])) top = l;
    if (r < n && cells_before(d, heap[top], heap[r])) top = r;
    if (top == at) return;
    t = heap[at];
    heap[at] = heap[top];
    heap[top] = t;
    at = top;
  }
}

void embed_cells_nearest(const embed_cells *cells, const float *q, int64_t m,
                         float *scratch, int64_t *out) {
  int64_t i;
  if (m > cells->nlist) m = cells->nlist;
  if (m < 1) return;
  embed_l2sq_many(q, cells->centroids, cells->nlist, cells->dim, scratch);
  /* the m best in a max-heap: its top is the worst kept */
  for (i = 0; i < m; i++) out[i] = i;
  for (i = m / 2 - 1; i >= 0; i--) cells_sift(scratch, out, m, i);
  for (i = m; i < cells->nlist; i++)
    if (cells_before(scratch, i, out[0])) {
      out[0] = i;
      cells_sift(scratch, out, m, 0);
    }
  for (i = m - 1; i > 0; i--) { /* heap sort: ascending */
    int64_t t = out[0];
    out[0] = out[i];
    out[i] = t;
    cells_sift(scratch, out, i, 0);
  }
}
