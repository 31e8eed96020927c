/*
** ivf_build.c - build-index: the cells and codes of an index=ivf table,
** trained on a sample of its rows, and every row's cell, stored in the
** caller's transaction (store_index.c has the layout; ivf.c loads it).
**
** Usage:
**
**     INSERT INTO tok(tok) VALUES ('build-index');   -- table/command.c
**     rc = embed_ivf_build(st, scan, &n_cells, &zErr);
**
** Design:
**  - nlist: the table's option, or about 2 sqrt(n) for n rows (at most n).
**  - The sample: up to IVF_SAMPLE_PER_CELL rows per cell, taken evenly
**    through the table in id order by a first scan, in indexed form (unit
**    length for metric=cosine, ivf.c). The codes' ranges and the two-level
**    k-means (core/cells.c) are fitted on it, with the table's seed.
**  - A second scan assigns every row exactly as ivf.c does (the same
**    function, the same groups probed), so integrity-check can compare.
**  - T_cells is rewritten whole, then T_config's build number (random,
**    never 0), the change-log position and the codes: a later search sees
**    the new build and loads it; rows written after that position are
**    assigned again from the log.
*/
#include <math.h>
#include <string.h>

#include "table/table.h"

#define IVF_SAMPLE_PER_CELL 64
#define IVF_ITERATIONS 10

static int64_t ivf_default_nlist(int64_t n) {
  int64_t nlist = (int64_t)llround(2.0 * sqrt((double)n));
  if (nlist < 1) nlist = 1;
  if (nlist > n) nlist = n;
  if (nlist > EMBED_MAX_CELLS) nlist = EMBED_MAX_CELLS;
  return nlist;
}

typedef struct ivf_builder {
  embed_store *st;
  embed_scan *scan;
  const embed_config *cfg;
  int64_t n, nlist, n_sample;
  float *sample, *offset, *scale, *row;
  embed_cells cells;
  int64_t *ids, *cell_of; /* every row's id and cell */
  void *scratch;
} ivf_builder;

/* The first scan: every (n / n_sample)-th row into the sample. */
static int ivf_build_sample(ivf_builder *b, char **pzErr) {
  int64_t dim = b->cfg->dim, i = 0, taken = 0;
  int rc = embed_scan_start(b->scan, 0, INT64_MIN, INT64_MAX);
  while (rc == SQLITE_OK && (rc = embed_scan_step(b->scan)) == SQLITE_ROW) {
    /* row i is taken when floor((i+1) s / n) passes floor(i s / n) */
    int take = (i + 1) * b->n_sample / b->n > i * b->n_sample / b->n;
    rc = SQLITE_OK;
    if (take && taken < b->n_sample) {
      rc = embed_scan_vector(b->scan, b->row, pzErr);
      if (rc == SQLITE_OK)
        embed_ivf_indexed(b->cfg->metric, b->row, dim,
                          b->sample + taken++ * dim);
    }
    i++;
  }
  embed_scan_reset(b->scan);
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  b->n_sample = taken;
  if (rc == SQLITE_OK && (i != b->n || taken < b->nlist))
    rc = SQLITE_ABORT; /* the table changed under the build: cannot be */
  return rc;
}

/* The second scan: every row's cell. */
static int ivf_build_assign(ivf_builder *b, char **pzErr) {
  int64_t dim = b->cfg->dim, i = 0;
  float *indexed = b->sample; /* the sample is not needed any more */
  int rc = embed_scan_start(b->scan, 0, INT64_MIN, INT64_MAX);
  while (rc == SQLITE_OK && (rc = embed_scan_step(b->scan)) == SQLITE_ROW) {
    if (i == b->n) {
      rc = SQLITE_ABORT;
      break;
    }
    rc = embed_scan_vector(b->scan, b->row, pzErr);
    if (rc) break;
    embed_ivf_indexed(b->cfg->metric, b->row, dim, indexed);
    b->ids[i] = embed_scan_id(b->scan);
    b->cell_of[i] =
        embed_cells_assign(&b->cells, indexed, EMBED_IVF_GROUPS_PROBED, 0);
    i++;
  }
  embed_scan_reset(b->scan);
  if (rc == SQLITE_DONE) rc = i == b->n ? SQLITE_OK : SQLITE_ABORT;
  return rc;
}

/* T_cells: the groups' centres, then each cell with its ids (grouped by a
** counting sort of cell_of; ids stay ascending within a cell). */
static int ivf_build_store(ivf_builder *b) {
  int64_t dim = b->cfg->dim, c, g, i, *first = 0, *sorted = 0, head, tail;
  int64_t build = 0;
  int rc = embed_store_index_clear(b->st);
  first = (int64_t *)sqlite3_malloc64((sqlite3_uint64)(b->nlist + 1) * 8);
  sorted = (int64_t *)sqlite3_malloc64((sqlite3_uint64)b->n * EMBED_ID_BYTES);
  if (!first || !sorted) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    memset(first, 0, (size_t)(b->nlist + 1) * 8);
    for (i = 0; i < b->n; i++) first[b->cell_of[i] + 1]++;
    for (c = 0; c < b->nlist; c++) first[c + 1] += first[c];
    for (i = 0; i < b->n; i++) sorted[first[b->cell_of[i]]++] = b->ids[i];
    for (c = b->nlist; c > 0; c--) first[c] = first[c - 1]; /* undo ++ */
    first[0] = 0;
  }
  for (g = 0; rc == SQLITE_OK && g < b->cells.ngroups; g++)
    rc = embed_store_index_put(b->st, -1 - g, g,
                               b->cells.group_centroids + g * dim, 0, 0);
  for (g = 0; rc == SQLITE_OK && g < b->cells.ngroups; g++)
    for (c = b->cells.group_first[g];
         rc == SQLITE_OK && c < b->cells.group_first[g + 1]; c++)
      rc = embed_store_index_put(b->st, c, g, b->cells.centroids + c * dim,
                                 sorted + first[c], first[c + 1] - first[c]);
  if (rc == SQLITE_OK) rc = embed_store_log_head(b->st, &head, &tail);
  while (rc == SQLITE_OK && build == 0)
    sqlite3_randomness(sizeof(build), &build);
  if (rc == SQLITE_OK)
    rc = embed_store_index_finish(b->st, build, head, b->offset, b->scale);
  sqlite3_free(first);
  sqlite3_free(sorted);
  return rc;
}

int embed_ivf_build(embed_store *st, embed_scan *scan, int64_t *n_cells,
                    char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  int64_t dim = cfg->dim;
  ivf_builder b;
  embed_error err;
  int rc;
  memset(&b, 0, sizeof(b));
  b.st = st;
  b.scan = scan;
  b.cfg = cfg;
  *n_cells = 0;
  rc = embed_store_count(st, &b.n);
  if (rc) return rc;
  if (b.n == 0) {
    return embed_fail(pzErr,
                      sqlite3_mprintf("%s: build-index needs rows to train on",
                                      embed_store_label(st)));
  }
  b.nlist = cfg->nlist > 0 ? cfg->nlist : ivf_default_nlist(b.n);
  if (b.nlist > b.n) b.nlist = b.n;
  b.n_sample = b.nlist * IVF_SAMPLE_PER_CELL;
  if (b.n_sample > b.n) b.n_sample = b.n;
  b.cells.dim = dim;
  b.cells.nlist = b.nlist;
  b.cells.ngroups = embed_cells_groups(b.nlist);
  b.sample = (float *)sqlite3_malloc64((sqlite3_uint64)b.n_sample *
                                       (sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  b.offset = (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  b.scale = (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  b.row = (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  b.cells.centroids = (float *)sqlite3_malloc64(
      (sqlite3_uint64)b.nlist * (sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  b.cells.group_centroids =
      (float *)sqlite3_malloc64((sqlite3_uint64)b.cells.ngroups *
                                (sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  b.cells.group_first = (int64_t *)sqlite3_malloc64(
      (sqlite3_uint64)(b.cells.ngroups + 1) * sizeof(int64_t));
  b.ids = (int64_t *)sqlite3_malloc64((sqlite3_uint64)b.n * EMBED_ID_BYTES);
  b.cell_of = (int64_t *)sqlite3_malloc64((sqlite3_uint64)b.n * 8);
  b.scratch =
      sqlite3_malloc64(embed_cells_scratch_bytes(b.n_sample, dim, b.nlist));
  if (!b.sample || !b.offset || !b.scale || !b.row || !b.cells.centroids ||
      !b.cells.group_centroids || !b.cells.group_first || !b.ids ||
      !b.cell_of || !b.scratch)
    rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK) rc = ivf_build_sample(&b, pzErr);
  if (rc == SQLITE_OK) {
    /* the codes' ranges first: training reorders nothing but may use
    ** the scratch, which is separate */
    float *col = (float *)sqlite3_malloc64((sqlite3_uint64)b.n_sample *
                                           EMBED_FLOAT_BYTES);
    if (!col) rc = SQLITE_NOMEM;
    if (col) embed_codes_fit(b.sample, b.n_sample, dim, col, b.offset, b.scale);
    sqlite3_free(col);
  }
  if (rc == SQLITE_OK &&
      embed_cells_train(b.sample, b.n_sample, (uint64_t)cfg->seed,
                        IVF_ITERATIONS, b.scratch, &b.cells, &err)) {
    *pzErr =
        sqlite3_mprintf("%s: build-index: %s", embed_store_label(st), err.text);
    rc = *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) rc = ivf_build_assign(&b, pzErr);
  if (rc == SQLITE_OK) rc = ivf_build_store(&b);
  if (rc == SQLITE_ABORT && !*pzErr)
    *pzErr = sqlite3_mprintf("%s: build-index: the table changed while it ran",
                             embed_store_label(st));
  if (rc == SQLITE_OK) *n_cells = b.nlist;
  sqlite3_free(b.sample);
  sqlite3_free(b.offset);
  sqlite3_free(b.scale);
  sqlite3_free(b.row);
  sqlite3_free(b.cells.centroids);
  sqlite3_free(b.cells.group_centroids);
  sqlite3_free(b.cells.group_first);
  sqlite3_free(b.ids);
  sqlite3_free(b.cell_of);
  sqlite3_free(b.scratch);
  return rc;
}
