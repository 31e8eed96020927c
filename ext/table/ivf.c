/*
** ivf.c - the in-memory inverted-file index of an index=ivf table: its
** rows' 8-bit codes listed by cell, shared by the connections of a process
** like the exact search's copy (copy.c), and kept exact with the rows the
** change log names. search.c ranks with it; ivf_build.c makes the stored
** part (table/store.h, store_index.c) it is loaded from.
**
** Usage (search.c):
**
**     embed_ivf *ix = embed_ivf_pick(copies, build, head, tail);
**     ... embed_ivf_load(st, scan, build, build_seq, head, tail, &ix, &zErr)
**         when there is none, then embed_ivf_publish(copies, ix)
**     embed_ivf_update(copies, ix, &changes, head);   // in place, when alone
**     embed_ivf_query_start(ix, q, &qq);               // cells nearest first
**     embed_ivf_cell_score(ix, &qq, qq.order[i], &ids, &n, scores);
**     embed_ivf_query_end(&qq);  embed_ivf_release(ix);
**
** Design:
**  - The indexed form of a row is the row itself, or for metric=cosine the
**    row scaled to unit length. Cells (core/cells.c) and codes
**    (core/codes.c) are of the indexed form. A cell's list holds each row's
**    id, squared norm and code (D bytes: a quarter of the float32 row), so
**    an approximate distance costs one pass over D bytes:
**        cosine  1 - dot(q/|q|, decode(code))
**        l2      |q|^2 - 2 dot(q, decode(code)) + |v|^2   (squared)
**        dot     -dot(q, decode(code))
**    The stored rows are not kept: search.c re-ranks the best candidates
**    by their exact distance, read from the table.
**  - Loading reads T_cells (the cells' centres and the rows assigned at
**    build-index), then every row in id order to encode it. A row listed
**    in no cell (inserted since the build) is assigned; a listed row that
**    is gone is dropped; the rows the change log names since the build are
**    assigned again, and when the log no longer reaches back to the build,
**    every row is. The loaded index is at the log position of the loading
**    transaction (`seq`) and belongs to one build (`build`).
**  - Changes move a row in place: the changed rows, read as the searching
**    transaction sees them, are encoded and assigned (nearest of the two
**    nearest groups' cells, ~100 distances); a row whose cell changed
**    leaves its old list (the last entry takes its slot) and joins the new
**    one. This happens under the mutex, only when no other search holds
**    the index and outside write transactions; otherwise a search skips
**    the changed ids in the lists and ranks their rows exactly itself.
**  - An id's place (cell, slot) is found through an open-addressing hash
**    (linear probing, backward-shift deletion), 16 bytes per row at most
**    twice over.
**  - One index per table per process, attached to the copies' shared entry
**    (embed_copies_attach); reference counts under ivf_mutex. A search
**    whose snapshot is older than the index (seq > head) cannot use it and
**    reads the table instead; a new build replaces it.
*/
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "table/table.h"

#define IVF_EMPTY INT64_MIN /* a free hash slot */

typedef struct ivf_list {
  int64_t n, cap;
  int64_t *ids;
  float *sqnorms; /* |v|^2 of each row (its indexed form) */
  uint8_t *codes; /* n x dim */
} ivf_list;

typedef struct ivf_map {
  int64_t cap, n; /* cap a power of two */
  int64_t *keys;
  uint64_t *places; /* cell << 32 | slot */
} ivf_map;

struct embed_ivf {
  int64_t refs;     /* under ivf_mutex: every holder */
  int64_t scanning; /* under ivf_mutex: the searches holding it now */
  int64_t build, seq;
  int64_t dim;
  embed_metric metric;
  embed_cells cells;
  float *offset, *scale; /* the codes' */
  ivf_list *lists;       /* cells.nlist */
  ivf_map map;
  float *work; /* dim floats: a row's indexed form (under ivf_mutex) */
};

typedef struct ivf_shared {
  embed_ivf *current; /* one reference */
} ivf_shared;

static pthread_mutex_t ivf_mutex = PTHREAD_MUTEX_INITIALIZER;

/* ------------------------------------------------------------ the hash */

static uint64_t ivf_hash(int64_t id, int64_t cap) {
  return embed_mix64((uint64_t)id) & (uint64_t)(cap - 1);
}

static int ivf_map_init(ivf_map *m, int64_t rows) {
  int64_t cap = 64, i;
  while (cap < 2 * rows) cap *= 2;
  m->keys = (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * EMBED_ID_BYTES);
  m->places = (uint64_t *)sqlite3_malloc64((sqlite3_uint64)cap * 8);
  if (!m->keys || !m->places) return SQLITE_NOMEM;
  for (i = 0; i < cap; i++) m->keys[i] = IVF_EMPTY;
  m->cap = cap;
  m->n = 0;
  return SQLITE_OK;
}

static void ivf_map_free(ivf_map *m) {
  sqlite3_free(m->keys);
  sqlite3_free(m->places);
  memset(m, 0, sizeof(*m));
}

/* The slot of id in the hash, or of the free slot where it would go. */
static int64_t ivf_map_find(const ivf_map *m, int64_t id) {
  int64_t i = (int64_t)ivf_hash(id, m->cap);
  while (m->keys[i] != IVF_EMPTY && m->keys[i] != id)
    i = (i + 1) & (m->cap - 1);
  return i;
}

static int ivf_map_get(const ivf_map *m, int64_t id, uint64_t *place) {
  int64_t i = ivf_map_find(m, id);
  if (m->keys[i] == IVF_EMPTY) return 0;
  *place = m->places[i];
  return 1;
}

static int ivf_map_grow(ivf_map *m) {
  ivf_map bigger;
  int64_t i;
  int rc = ivf_map_init(&bigger, m->cap); /* twice the slots */
  if (rc) {
    ivf_map_free(&bigger);
    return rc;
  }
  for (i = 0; i < m->cap; i++)
    if (m->keys[i] != IVF_EMPTY) {
      int64_t at = ivf_map_find(&bigger, m->keys[i]);
      bigger.keys[at] = m->keys[i];
      bigger.places[at] = m->places[i];
      bigger.n++;
    }
  ivf_map_free(m);
  *m = bigger;
  return SQLITE_OK;
}

/* Set id's place; only a new id can need memory (the hash grows). */
static int ivf_map_put(ivf_map *m, int64_t id, uint64_t place) {
  int64_t i = ivf_map_find(m, id);
  if (m->keys[i] == IVF_EMPTY) {
    if (2 * (m->n + 1) > m->cap) {
      int rc = ivf_map_grow(m);
      if (rc) return rc;
      i = ivf_map_find(m, id);
    }
    m->n++;
  }
  m->keys[i] = id;
  m->places[i] = place;
  return SQLITE_OK;
}

static void ivf_map_del(ivf_map *m, int64_t id) {
  int64_t i = ivf_map_find(m, id), j;
  if (m->keys[i] == IVF_EMPTY) return;
  m->n--;
  /* backward shift: move up every later entry of the run that may */
  for (j = (i + 1) & (m->cap - 1); m->keys[j] != IVF_EMPTY;
       j = (j + 1) & (m->cap - 1)) {
    int64_t home = (int64_t)ivf_hash(m->keys[j], m->cap);
    /* entry j may move to i when its home is not in (i, j] (cyclically) */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    m->keys[i] = m->keys[j];
    m->places[i] = m->places[j];
    i = j;
  }
  m->keys[i] = IVF_EMPTY;
}

static uint64_t ivf_place(int64_t cell, int64_t slot) {
  return ((uint64_t)cell << 32) | (uint64_t)slot;
}

/* ----------------------------------------------------------- the lists */

static int ivf_list_reserve(ivf_list *l, int64_t dim, int64_t want) {
  int64_t cap = l->cap ? l->cap : 16;
  void *p;
  if (want <= l->cap) return SQLITE_OK;
  while (cap < want) cap += cap / 2 + 1;
  if (!(p = sqlite3_realloc64(l->ids, (sqlite3_uint64)cap * EMBED_ID_BYTES)))
    return SQLITE_NOMEM;
  l->ids = (int64_t *)p;
  if (!(p = sqlite3_realloc64(l->sqnorms, (sqlite3_uint64)cap * sizeof(float))))
    return SQLITE_NOMEM;
  l->sqnorms = (float *)p;
  if (!(p = sqlite3_realloc64(l->codes, (sqlite3_uint64)cap * dim)))
    return SQLITE_NOMEM;
  l->codes = (uint8_t *)p;
  l->cap = cap;
  return SQLITE_OK;
}

/* What makes row its indexed form: 1/|row| for cosine (0 for a zero row),
** else 1; and that form's squared norm. */
static float ivf_factor(embed_metric metric, const float *row, int64_t dim,
                        float *sqnorm) {
  double norm = embed_norm2(row, dim);
  if (metric == EMBED_METRIC_COSINE) {
    *sqnorm = norm > 0 ? 1.0f : 0.0f;
    return norm > 0 ? (float)(1.0 / norm) : 0.0f;
  }
  *sqnorm = (float)(norm * norm);
  return 1.0f;
}

float embed_ivf_indexed(embed_metric metric, const float *row, int64_t dim,
                        float *out) {
  float sqnorm, mul = ivf_factor(metric, row, dim, &sqnorm);
  int64_t j;
  for (j = 0; j < dim; j++) out[j] = row[j] * mul;
  return sqnorm;
}

/* The indexed form of row into ix->work; its squared norm. */
static float ivf_indexed(const embed_ivf *ix, const float *row) {
  return embed_ivf_indexed(ix->metric, row, ix->dim, ix->work);
}

/* Write row (times mul: its indexed form) into cell's slot. The code is
** the indexed form's, as embed_codes_encode_scaled makes it everywhere. */
static void ivf_list_set(embed_ivf *ix, int64_t cell, int64_t slot, int64_t id,
                         const float *row, float mul, float sqnorm) {
  ivf_list *l = &ix->lists[cell];
  l->ids[slot] = id;
  l->sqnorms[slot] = sqnorm;
  embed_codes_encode_scaled(row, ix->dim, mul, ix->offset, ix->scale,
                            l->codes + slot * ix->dim);
}

/* Append row to cell's list. */
static int ivf_list_push(embed_ivf *ix, int64_t cell, int64_t id,
                         const float *row, float mul, float sqnorm) {
  ivf_list *l = &ix->lists[cell];
  int rc = ivf_list_reserve(l, ix->dim, l->n + 1);
  if (rc == SQLITE_OK) rc = ivf_map_put(&ix->map, id, ivf_place(cell, l->n));
  if (rc) return rc;
  ivf_list_set(ix, cell, l->n++, id, row, mul, sqnorm);
  return SQLITE_OK;
}

/* Take the row in cell's slot out; the list's last row takes the slot. */
static void ivf_list_remove(embed_ivf *ix, int64_t cell, int64_t slot) {
  ivf_list *l = &ix->lists[cell];
  int64_t last = --l->n;
  ivf_map_del(&ix->map, l->ids[slot]);
  if (slot == last) return;
  l->ids[slot] = l->ids[last];
  l->sqnorms[slot] = l->sqnorms[last];
  memcpy(l->codes + slot * ix->dim, l->codes + last * ix->dim, (size_t)ix->dim);
  /* the moved row's place; it is in the map, so this cannot allocate */
  ivf_map_put(&ix->map, l->ids[slot], ivf_place(cell, slot));
}

/* Put row id (its floats in row) where it belongs now. */
static int ivf_set_row(embed_ivf *ix, int64_t id, const float *row) {
  float sqnorm, mul = ivf_factor(ix->metric, row, ix->dim, &sqnorm);
  int64_t cell;
  ivf_indexed(ix, row);
  cell = embed_cells_assign(&ix->cells, ix->work, EMBED_IVF_GROUPS_PROBED, 0);
  uint64_t place;
  if (ivf_map_get(&ix->map, id, &place)) {
    int64_t was = (int64_t)(place >> 32), slot = (int64_t)(place & 0xffffffffu);
    if (was == cell) {
      ivf_list_set(ix, cell, slot, id, row, mul, sqnorm);
      return SQLITE_OK;
    }
    ivf_list_remove(ix, was, slot);
  }
  return ivf_list_push(ix, cell, id, row, mul, sqnorm);
}

static void ivf_remove_id(embed_ivf *ix, int64_t id) {
  uint64_t place;
  if (ivf_map_get(&ix->map, id, &place))
    ivf_list_remove(ix, (int64_t)(place >> 32), (int64_t)(place & 0xffffffffu));
}

/* --------------------------------------------------------- life cycle */

static void ivf_destroy(embed_ivf *ix) {
  int64_t c;
  if (!ix) return;
  if (ix->lists)
    for (c = 0; c < ix->cells.nlist; c++) {
      sqlite3_free(ix->lists[c].ids);
      sqlite3_free(ix->lists[c].sqnorms);
      sqlite3_free(ix->lists[c].codes);
    }
  sqlite3_free(ix->lists);
  ivf_map_free(&ix->map);
  sqlite3_free(ix->cells.centroids);
  sqlite3_free(ix->cells.group_centroids);
  sqlite3_free(ix->cells.group_first);
  sqlite3_free(ix->offset);
  sqlite3_free(ix->scale);
  sqlite3_free(ix->work);
  sqlite3_free(ix);
}

static void ivf_unref_locked(embed_ivf *ix) {
  if (ix && --ix->refs == 0) ivf_destroy(ix);
}

void embed_ivf_release(embed_ivf *ix) {
  if (!ix) return;
  pthread_mutex_lock(&ivf_mutex);
  ix->scanning--;
  ivf_unref_locked(ix);
  pthread_mutex_unlock(&ivf_mutex);
}

static void ivf_shared_free(void *p) {
  ivf_shared *sh = (ivf_shared *)p;
  if (!sh) return;
  pthread_mutex_lock(&ivf_mutex);
  ivf_unref_locked(sh->current);
  pthread_mutex_unlock(&ivf_mutex);
  sqlite3_free(sh);
}

/* The table's shared slot (NULL when out of memory). */
static ivf_shared *ivf_shared_of(embed_copies *copies) {
  return (ivf_shared *)embed_copies_attach(copies, sizeof(ivf_shared),
                                           ivf_shared_free);
}

embed_ivf *embed_ivf_pick(embed_copies *copies, int64_t build, int64_t head,
                          int64_t tail) {
  ivf_shared *sh = ivf_shared_of(copies);
  embed_ivf *ix = 0;
  if (!sh) return 0;
  pthread_mutex_lock(&ivf_mutex);
  ix = sh->current;
  if (ix && ix->build == build && ix->seq <= head &&
      (ix->seq == head || ix->seq + 1 >= tail)) {
    ix->refs++;
    ix->scanning++;
  } else {
    ix = 0;
  }
  pthread_mutex_unlock(&ivf_mutex);
  return ix;
}

int embed_ivf_stale(embed_copies *copies, int64_t build, int64_t head) {
  ivf_shared *sh = ivf_shared_of(copies);
  int stale;
  if (!sh) return 0;
  pthread_mutex_lock(&ivf_mutex);
  stale = sh->current && sh->current->build == build && sh->current->seq > head;
  pthread_mutex_unlock(&ivf_mutex);
  return stale;
}

void embed_ivf_publish(embed_copies *copies, embed_ivf *ix) {
  ivf_shared *sh = ivf_shared_of(copies);
  if (!sh) return; /* out of memory: the index serves this search only */
  pthread_mutex_lock(&ivf_mutex);
  /* the newest wins: a search of an old snapshot keeps its own */
  if (!sh->current || sh->current->seq <= ix->seq) {
    ivf_unref_locked(sh->current);
    sh->current = ix;
    ix->refs++;
  }
  pthread_mutex_unlock(&ivf_mutex);
}

int64_t embed_ivf_seq(const embed_ivf *ix) {
  return ix->seq;
}
int64_t embed_ivf_nlist(const embed_ivf *ix) {
  return ix->cells.nlist;
}
int64_t embed_ivf_rows(const embed_ivf *ix) {
  return ix->map.n;
}

int embed_ivf_update(embed_copies *copies, embed_ivf *ix,
                     const embed_changes *ch, int64_t head) {
  ivf_shared *sh = ivf_shared_of(copies);
  int64_t k;
  int rc = SQLITE_OK, done = 0;
  if (!sh) return 0;
  pthread_mutex_lock(&ivf_mutex);
  if (sh->current == ix && ix->scanning == 1) {
    for (k = 0; rc == SQLITE_OK && k < ch->n; k++) {
      if (ch->present[k])
        rc = ivf_set_row(ix, ch->ids[k], ch->rows + k * ix->dim);
      else
        ivf_remove_id(ix, ch->ids[k]);
    }
    if (rc == SQLITE_OK) {
      ix->seq = head;
      done = 1;
    } else { /* out of memory half way: nobody may use it again */
      sh->current = 0;
      ivf_unref_locked(ix);
    }
  }
  pthread_mutex_unlock(&ivf_mutex);
  return done;
}

/* ------------------------------------------------------------- loading */

typedef struct ivf_loader {
  embed_ivf *ix;
  int64_t nlist, ngroups, cap_cells, cap_groups;
  int64_t *grp_of; /* each cell's group */
} ivf_loader;

static int ivf_grow_floats(float **p, int64_t *cap, int64_t want, int64_t dim) {
  float *grown;
  int64_t c = *cap ? *cap : 64;
  if (want <= *cap) return SQLITE_OK;
  while (c < want) c *= 2;
  grown = (float *)sqlite3_realloc64(
      *p, (sqlite3_uint64)c * (sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  if (!grown) return SQLITE_NOMEM;
  *p = grown;
  *cap = c;
  return SQLITE_OK;
}

/* One T_cells row (embed_store_cell_fn): rows come in cell order, groups
** (cell < 0) first from the most negative. */
static int ivf_load_cell(void *arg, int64_t cell, int64_t grp,
                         const float *centroid, const int64_t *ids, int64_t n,
                         char **pzErr) {
  ivf_loader *L = (ivf_loader *)arg;
  embed_ivf *ix = L->ix;
  int64_t dim = ix->dim, k;
  int rc;
  (void)pzErr;
  if (cell < 0) {
    int64_t g = -1 - cell;
    if (n != 0 || g > EMBED_MAX_CELLS) return SQLITE_CORRUPT_VTAB;
    rc =
        ivf_grow_floats(&ix->cells.group_centroids, &L->cap_groups, g + 1, dim);
    if (rc) return rc;
    memcpy(ix->cells.group_centroids + g * dim, centroid,
           (size_t)dim * EMBED_FLOAT_BYTES);
    if (g + 1 > L->ngroups) L->ngroups = g + 1;
    return SQLITE_OK;
  }
  if (cell != L->nlist || cell >= EMBED_MAX_CELLS) return SQLITE_CORRUPT_VTAB;
  if (grp < 0 || (cell > 0 && grp < L->grp_of[cell - 1]))
    return SQLITE_CORRUPT_VTAB;
  {
    int64_t old = L->cap_cells;
    rc = ivf_grow_floats(&ix->cells.centroids, &L->cap_cells, cell + 1, dim);
    if (rc == SQLITE_OK && L->cap_cells != old) {
      void *p = sqlite3_realloc64(L->grp_of, (sqlite3_uint64)L->cap_cells * 8);
      void *q = p ? sqlite3_realloc64(ix->lists, (sqlite3_uint64)L->cap_cells *
                                                     sizeof(ivf_list))
                  : 0;
      if (p) L->grp_of = (int64_t *)p;
      if (q) {
        ix->lists = (ivf_list *)q;
        memset(ix->lists + old, 0,
               (size_t)(L->cap_cells - old) * sizeof(ivf_list));
      }
      if (!p || !q) rc = SQLITE_NOMEM;
    }
    if (rc) return rc;
  }
  memcpy(ix->cells.centroids + cell * dim, centroid,
         (size_t)dim * EMBED_FLOAT_BYTES);
  L->grp_of[cell] = grp;
  L->nlist = cell + 1;
  ix->cells.nlist = L->nlist; /* the lists are freed up to here */
  rc = ivf_list_reserve(&ix->lists[cell], dim, n);
  for (k = 0; rc == SQLITE_OK && k < n; k++) {
    uint64_t place;
    if (ivf_map_get(&ix->map, ids[k], &place)) return SQLITE_CORRUPT_VTAB;
    rc = ivf_map_put(&ix->map, ids[k], ivf_place(cell, k));
    ix->lists[cell].ids[k] = ids[k];
    ix->lists[cell].sqnorms[k] = NAN; /* not seen yet */
  }
  ix->lists[cell].n = n;
  return rc;
}

/* Check the groups read and make group_first. */
static int ivf_load_groups(ivf_loader *L) {
  embed_ivf *ix = L->ix;
  int64_t c, g;
  if (L->nlist == 0 || L->ngroups == 0 || L->grp_of[L->nlist - 1] >= L->ngroups)
    return SQLITE_CORRUPT_VTAB;
  ix->cells.ngroups = L->ngroups;
  ix->cells.dim = ix->dim;
  ix->cells.group_first =
      (int64_t *)sqlite3_malloc64((sqlite3_uint64)(L->ngroups + 1) * 8);
  if (!ix->cells.group_first) return SQLITE_NOMEM;
  for (g = 0, c = 0; g <= L->ngroups; g++) {
    while (c < L->nlist && L->grp_of[c] < g) c++;
    ix->cells.group_first[g] = c;
  }
  for (g = 0; g < L->ngroups; g++) /* every group has a cell */
    if (ix->cells.group_first[g] == ix->cells.group_first[g + 1])
      return SQLITE_CORRUPT_VTAB;
  return SQLITE_OK;
}

/* Encode every row, as this transaction sees it; with reassign, assign
** every row again, else only the rows listed in no cell. */
static int ivf_load_rows(embed_ivf *ix, embed_scan *scan, int reassign,
                         char **pzErr) {
  float *row =
      (float *)sqlite3_malloc64((sqlite3_uint64)ix->dim * EMBED_FLOAT_BYTES);
  int64_t c, s;
  int rc = row ? embed_scan_start(scan, 0, INT64_MIN, INT64_MAX) : SQLITE_NOMEM;
  while (rc == SQLITE_OK && (rc = embed_scan_step(scan)) == SQLITE_ROW) {
    int64_t id = embed_scan_id(scan);
    uint64_t place;
    rc = embed_scan_vector(scan, row, pzErr);
    if (rc) break;
    if (!reassign && ivf_map_get(&ix->map, id, &place)) {
      float sqnorm, mul = ivf_factor(ix->metric, row, ix->dim, &sqnorm);
      ivf_list_set(ix, (int64_t)(place >> 32), (int64_t)(place & 0xffffffffu),
                   id, row, mul, sqnorm);
    } else {
      rc = ivf_set_row(ix, id, row);
    }
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  embed_scan_reset(scan);
  sqlite3_free(row);
  /* listed rows that are gone: never seen (walk down, the last fills in) */
  for (c = 0; rc == SQLITE_OK && c < ix->cells.nlist; c++)
    for (s = ix->lists[c].n - 1; s >= 0; s--)
      if (isnan(ix->lists[c].sqnorms[s])) ivf_list_remove(ix, c, s);
  return rc;
}

int embed_ivf_load(embed_store *st, embed_scan *scan, int64_t build,
                   int64_t build_seq, int64_t head, int64_t tail,
                   embed_ivf **out, char **pzErr) {
  const embed_config *cfg = embed_store_config(st);
  int64_t dim = cfg->dim, *changed = 0, n_changed = 0;
  embed_ivf *ix = (embed_ivf *)sqlite3_malloc64(sizeof(*ix));
  ivf_loader L;
  int rc, covered = build_seq == head || build_seq + 1 >= tail;
  *out = 0;
  if (!ix) return SQLITE_NOMEM;
  memset(ix, 0, sizeof(*ix));
  memset(&L, 0, sizeof(L));
  ix->refs = 1;
  ix->scanning = 1;
  ix->build = build;
  ix->seq = head;
  ix->dim = dim;
  ix->metric = cfg->metric;
  L.ix = ix;
  ix->offset =
      (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  ix->scale =
      (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  ix->work = (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  rc = ix->offset && ix->scale && ix->work ? SQLITE_OK : SQLITE_NOMEM;
  if (rc == SQLITE_OK) rc = ivf_map_init(&ix->map, 1024); /* it grows */
  if (rc == SQLITE_OK)
    rc = embed_store_index_codes(st, ix->offset, ix->scale, pzErr);
  if (rc == SQLITE_OK) {
    rc = embed_store_index_cells(st, ivf_load_cell, &L, pzErr);
    if (rc == SQLITE_CORRUPT_VTAB && !*pzErr)
      rc = embed_store_index_corrupt(st, "the cells are not a sound index",
                                     L.nlist, pzErr);
  }
  if (rc == SQLITE_OK) {
    rc = ivf_load_groups(&L);
    if (rc == SQLITE_CORRUPT_VTAB)
      rc = embed_store_index_corrupt(st, "the groups do not cover the cells",
                                     L.nlist, pzErr);
  }
  sqlite3_free(L.grp_of);
  if (rc == SQLITE_OK) rc = ivf_load_rows(ix, scan, !covered, pzErr);
  /* rows changed since the build: where they belong now */
  if (rc == SQLITE_OK && covered)
    rc =
        embed_store_log_since(st, build_seq, head, &changed, &n_changed, pzErr);
  if (rc == SQLITE_OK && n_changed > 0) {
    float *row =
        (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
    embed_rows rows;
    int64_t k;
    if (!row) rc = SQLITE_NOMEM;
    embed_rows_init(&rows, st, 0);
    for (k = 0; rc == SQLITE_OK && k < n_changed; k++) {
      rc = embed_rows_seek(&rows, changed[k], pzErr);
      if (rc == SQLITE_OK) rc = embed_rows_read(&rows, row, pzErr);
      if (rc == SQLITE_OK) rc = ivf_set_row(ix, changed[k], row);
      if (rc == SQLITE_NOTFOUND) { /* deleted: the scan dropped it */
        sqlite3_free(*pzErr);
        *pzErr = 0;
        rc = SQLITE_OK;
      }
    }
    embed_rows_close(&rows);
    sqlite3_free(row);
  }
  sqlite3_free(changed);
  if (rc) {
    ivf_destroy(ix);
    return rc;
  }
  *out = ix;
  return SQLITE_OK;
}

/* ------------------------------------------------------------ querying */

int embed_ivf_query_start(const embed_ivf *ix, const float *q,
                          embed_ivf_query *qq) {
  int64_t dim = ix->dim, nlist = ix->cells.nlist, c, largest = 1, j;
  double qnorm = embed_norm2(q, dim);
  memset(qq, 0, sizeof(*qq));
  for (c = 0; c < nlist; c++)
    if (ix->lists[c].n > largest) largest = ix->lists[c].n;
  qq->qs = (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  qq->unit = (float *)sqlite3_malloc64((sqlite3_uint64)dim * EMBED_FLOAT_BYTES);
  qq->order = (int64_t *)sqlite3_malloc64((sqlite3_uint64)nlist * 8);
  qq->scores = (float *)sqlite3_malloc64(
      (sqlite3_uint64)(nlist > largest ? nlist : largest) * sizeof(float));
  if (!qq->qs || !qq->unit || !qq->order || !qq->scores) return SQLITE_NOMEM;
  if (ix->metric == EMBED_METRIC_COSINE) {
    double inv = qnorm > 0 ? 1.0 / qnorm : 0.0;
    for (j = 0; j < dim; j++) qq->unit[j] = (float)(q[j] * inv);
  } else {
    memcpy(qq->unit, q, (size_t)dim * EMBED_FLOAT_BYTES);
  }
  qq->qsq = qnorm * qnorm;
  qq->base = embed_codes_query(qq->unit, dim, ix->offset, ix->scale, qq->qs);
  embed_cells_nearest(&ix->cells, qq->unit, nlist, qq->scores, qq->order);
  qq->n_order = nlist;
  return SQLITE_OK;
}

void embed_ivf_query_end(embed_ivf_query *qq) {
  sqlite3_free(qq->qs);
  sqlite3_free(qq->unit);
  sqlite3_free(qq->order);
  sqlite3_free(qq->scores);
  memset(qq, 0, sizeof(*qq));
}

const float *embed_ivf_cell_score(const embed_ivf *ix, embed_ivf_query *qq,
                                  int64_t cell, const int64_t **ids,
                                  int64_t *n) {
  const ivf_list *l = &ix->lists[cell];
  float *s = qq->scores, base = (float)qq->base;
  int64_t i;
  *ids = l->ids;
  *n = l->n;
  if (l->n == 0) return s;
  embed_codes_dot(qq->qs, l->codes, (size_t)ix->dim, l->n, ix->dim, s);
  switch (ix->metric) {
    case EMBED_METRIC_L2:
      for (i = 0; i < l->n; i++)
        s[i] = (float)qq->qsq - 2.0f * (base + s[i]) + l->sqnorms[i];
      break;
    case EMBED_METRIC_DOT:
      for (i = 0; i < l->n; i++) s[i] = -(base + s[i]);
      break;
    case EMBED_METRIC_COSINE:
    default:
      for (i = 0; i < l->n; i++) s[i] = 1.0f - (base + s[i]);
      break;
  }
  return s;
}

/* ----------------------------------------------------------- checking */

int embed_ivf_check(embed_ivf *ix, embed_scan *scan, char **pzErr) {
  float *row =
      (float *)sqlite3_malloc64((sqlite3_uint64)ix->dim * EMBED_FLOAT_BYTES);
  uint8_t *code = (uint8_t *)sqlite3_malloc64((sqlite3_uint64)ix->dim);
  int rc = row && code ? embed_scan_start(scan, 0, INT64_MIN, INT64_MAX)
                       : SQLITE_NOMEM;
  while (rc == SQLITE_OK && (rc = embed_scan_step(scan)) == SQLITE_ROW) {
    int64_t id = embed_scan_id(scan), cell, want, slot;
    uint64_t place;
    rc = embed_scan_vector(scan, row, pzErr);
    if (rc) break;
    if (!ivf_map_get(&ix->map, id, &place)) {
      rc = SQLITE_CORRUPT_VTAB;
      *pzErr =
          sqlite3_mprintf("id %lld is in no cell of the index", (long long)id);
      break;
    }
    cell = (int64_t)(place >> 32);
    slot = (int64_t)(place & 0xffffffffu);
    float sqnorm, mul = ivf_factor(ix->metric, row, ix->dim, &sqnorm);
    ivf_indexed(ix, row);
    want = embed_cells_assign(&ix->cells, ix->work, EMBED_IVF_GROUPS_PROBED, 0);
    embed_codes_encode_scaled(row, ix->dim, mul, ix->offset, ix->scale, code);
    if (want != cell) {
      rc = SQLITE_CORRUPT_VTAB;
      *pzErr = sqlite3_mprintf(
          "id %lld is in cell %lld of the index, but its vector belongs in cell %lld",
          (long long)id, (long long)cell, (long long)want);
    } else if (memcmp(code, ix->lists[cell].codes + slot * ix->dim,
                      (size_t)ix->dim) != 0) {
      rc = SQLITE_CORRUPT_VTAB;
      *pzErr = sqlite3_mprintf(
          "the code of id %lld in the index does not match its vector",
          (long long)id);
    }
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  if (rc == SQLITE_CORRUPT_VTAB && !*pzErr) rc = SQLITE_NOMEM;
  embed_scan_reset(scan);
  sqlite3_free(row);
  sqlite3_free(code);
  return rc;
}

void embed_ivf_discard(embed_ivf *ix) {
  ivf_destroy(ix);
}
