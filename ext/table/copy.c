/*
** copy.c - the in-memory copies of a table's vectors that similarity
** search ranks (search.c): one per table and database file in a process,
** shared by its connections, brought up to date by the rows the change log
** names (store_log.c) instead of being rebuilt.
**
** Usage (search.c):
**
**     embed_copies *c;  embed_copies_open(st, &c);     // xConnect
**     embed_copy *v = embed_copies_pick(c, head, tail); // a usable version
**     ... embed_copy_build(st, scan, head, &v, &zErr) when there is none
**     ... embed_copy_derive(v, &changes, head, &v2) to move it forward
**     embed_copies_publish(c, v2);  embed_copy_release(v);
**     embed_copies_close(c);                           // xDisconnect
**
** Design:
**  - A version (embed_copy) is immutable once built: the ids (ascending),
**    a pointer to each row's D floats, each row's L2 norm, and `seq`, the
**    change-log position it reflects. Searches read it without a lock.
**    Rows live in chunks (one per build or derivation), shared between
**    versions; a version keeps a reference to each chunk it points into.
**  - Moving the current version forward in place: when the changed rows
**    are all updates of rows it has, no other search holds it and no other
**    version shares its chunks, the rows are overwritten under the mutex
**    and `seq` relabelled (a connection pinning it then sees a newer
**    version, which a search at an older snapshot refuses). Training keeps
**    the copy contiguous this way, at O(m) per step.
**  - Otherwise, deriving a version from an older one with m changed rows
**    copies the id, pointer and norm arrays (24 bytes a row) and one chunk of
**    the m new rows: O(n) small copies and O(m) rows, not a rebuild. When the
**    rows no version points to pass a quarter of the table, or after 64
**    derivations, the derivation compacts every row into one fresh chunk. A
**    build reads the rows into chunks growing to about 16 MB, never
**    moved, and faults in the next chunk's pages on a second thread. Each
**    row is checked, copied and its norm taken in one pass; a table ranked
**    by l2 or dot, which never read norms, stores 0 for them.
**  - Sharing: versions are found through a process-wide entry per
**    (device, inode of the database file, table name, the table's random
**    instance number), kept while a connection has the table open and
**    freed with the last one. The entry holds its newest version; each
**    connection also pins the version it used last, so a connection whose
**    read transaction is older than the newest version keeps its own. A
**    database without a file (":memory:", temp) gets a private entry.
**  - Reference counts and the entry list are guarded by one mutex.
*/
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "table/table.h"

typedef struct copy_chunk {
  int64_t refs; /* versions pointing into it (under copy_mutex) */
  int64_t rows; /* rows it holds */
  float *data;  /* rows x dim */
} copy_chunk;

struct embed_copy {
  int64_t refs;     /* under copy_mutex: every holder, searches included */
  int64_t scanning; /* under copy_mutex: the searches holding it now */
  int64_t seq;      /* the change-log position it reflects */
  int64_t n, dim;
  int64_t *ids;       /* ascending */
  const float **rows; /* row i's floats */
  double *norms;      /* row i's L2 norm (a build stores 0 unless cosine) */
  int32_t *chunk_of;  /* row i's chunk, an index into chunks */
  int n_chunks;
  copy_chunk **chunks; /* each referenced once by this version */
  int64_t stored;      /* rows in its chunks, live or not */
  int derived;         /* derivations since the last build or compaction */
};

typedef struct copy_entry {
  dev_t dev;
  ino_t ino;
  char *name;
  int64_t instance;
  int users;           /* embed_copies attached */
  embed_copy *current; /* the newest version built (one reference) */
  void *attached;      /* another search structure's (ivf.c), or NULL */
  void (*attached_free)(void *);
  struct copy_entry *next;
} copy_entry;

struct embed_copies {
  copy_entry *entry;
  int shared;         /* entry is in copy_entries */
  embed_copy *pinned; /* the version this connection used last */
};

static pthread_mutex_t copy_mutex = PTHREAD_MUTEX_INITIALIZER;
static copy_entry *copy_entries;

/* ---------------------------------------------------------- references */

static void copy_chunk_unref(copy_chunk *c) {
  if (c && --c->refs == 0) {
    sqlite3_free(c->data);
    sqlite3_free(c);
  }
}

/* Free a version whose last reference went (under copy_mutex). */
static void copy_destroy(embed_copy *v) {
  int i;
  for (i = 0; i < v->n_chunks; i++) copy_chunk_unref(v->chunks[i]);
  sqlite3_free(v->chunks);
  sqlite3_free(v->ids);
  sqlite3_free((void *)v->rows);
  sqlite3_free(v->norms);
  sqlite3_free(v->chunk_of);
  sqlite3_free(v);
}

static void copy_unref_locked(embed_copy *v) {
  if (v && --v->refs == 0) copy_destroy(v);
}

void embed_copy_release(embed_copy *v) {
  if (!v) return;
  pthread_mutex_lock(&copy_mutex);
  v->scanning--;
  copy_unref_locked(v);
  pthread_mutex_unlock(&copy_mutex);
}

int64_t embed_copy_seq(const embed_copy *v) {
  return v->seq;
}
int64_t embed_copy_count(const embed_copy *v) {
  return v->n;
}
const int64_t *embed_copy_ids(const embed_copy *v) {
  return v->ids;
}
const float *const *embed_copy_rows(const embed_copy *v) {
  return v->rows;
}
const double *embed_copy_norms(const embed_copy *v) {
  return v->norms;
}

/* ------------------------------------------------------------- entries */

int embed_copies_open(embed_store *st, embed_copies **out) {
  sqlite3 *db = embed_store_db(st);
  const char *path = sqlite3_db_filename(db, embed_store_schema(st));
  const char *name = embed_store_name(st);
  embed_copies *c = (embed_copies *)sqlite3_malloc64(sizeof(*c));
  copy_entry *e = 0;
  struct stat sb;
  int shared = path && path[0] && stat(path, &sb) == 0;
  *out = 0;
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  pthread_mutex_lock(&copy_mutex);
  if (shared) {
    for (e = copy_entries; e; e = e->next)
      if (e->dev == sb.st_dev && e->ino == sb.st_ino &&
          e->instance == embed_store_instance(st) &&
          sqlite3_stricmp(e->name, name) == 0)
        break;
  }
  if (!e) {
    e = (copy_entry *)sqlite3_malloc64(sizeof(*e));
    if (e) {
      memset(e, 0, sizeof(*e));
      e->name = sqlite3_mprintf("%s", name);
      if (!e->name) {
        sqlite3_free(e);
        e = 0;
      }
    }
    if (e && shared) {
      e->dev = sb.st_dev;
      e->ino = sb.st_ino;
      e->instance = embed_store_instance(st);
      e->next = copy_entries;
      copy_entries = e;
    }
  }
  if (e) e->users++;
  pthread_mutex_unlock(&copy_mutex);
  if (!e) {
    sqlite3_free(c);
    return SQLITE_NOMEM;
  }
  c->entry = e;
  c->shared = shared;
  *out = c;
  return SQLITE_OK;
}

void embed_copies_close(embed_copies *c) {
  copy_entry *e, **p;
  if (!c) return;
  e = c->entry;
  pthread_mutex_lock(&copy_mutex);
  copy_unref_locked(c->pinned);
  if (--e->users == 0) {
    for (p = &copy_entries; *p; p = &(*p)->next)
      if (*p == e) {
        *p = e->next;
        break;
      }
    copy_unref_locked(e->current);
    if (e->attached_free) e->attached_free(e->attached);
    sqlite3_free(e->name);
    sqlite3_free(e);
  }
  pthread_mutex_unlock(&copy_mutex);
  sqlite3_free(c);
}

void *embed_copies_attach(embed_copies *c, sqlite3_uint64 bytes,
                          void (*destroy)(void *)) {
  copy_entry *e = c->entry;
  void *got;
  pthread_mutex_lock(&copy_mutex);
  if (!e->attached && (e->attached = sqlite3_malloc64(bytes)) != 0) {
    memset(e->attached, 0, (size_t)bytes);
    e->attached_free = destroy;
  }
  got = e->attached;
  pthread_mutex_unlock(&copy_mutex);
  return got;
}

/* Can a search whose log runs from tail to head use v? Its rows plus the
** entries (v->seq, head] must give that search's view. */
static int copy_usable(const embed_copy *v, int64_t head, int64_t tail) {
  return v && v->seq <= head && (v->seq == head || v->seq + 1 >= tail);
}

embed_copy *embed_copies_pick(embed_copies *c, int64_t head, int64_t tail) {
  embed_copy *best = 0, *cur;
  pthread_mutex_lock(&copy_mutex);
  cur = c->entry->current;
  if (copy_usable(cur, head, tail)) best = cur;
  if (copy_usable(c->pinned, head, tail) &&
      (!best || c->pinned->seq > best->seq))
    best = c->pinned;
  if (best) {
    best->refs++;
    best->scanning++;
  }
  pthread_mutex_unlock(&copy_mutex);
  return best;
}

int embed_copies_update(embed_copies *c, embed_copy *v, const embed_changes *ch,
                        int64_t head) {
  int64_t k, *at = 0;
  int i, ok = ch->n > 0;
  /* where each changed row sits: every one must be there, and stay */
  at = (int64_t *)sqlite3_malloc64((sqlite3_uint64)(ch->n > 0 ? ch->n : 1) *
                                   sizeof(int64_t));
  if (!at) return 0;
  for (k = 0; ok && k < ch->n; k++) {
    at[k] = embed_ids_lower_bound(v->ids, v->n, ch->ids[k]);
    ok = ch->present[k] && at[k] < v->n && v->ids[at[k]] == ch->ids[k];
  }
  pthread_mutex_lock(&copy_mutex);
  /* only the table's current version, searched by no one else, whose
  ** chunks no other version shares */
  ok = ok && c->entry->current == v && v->scanning == 1;
  for (i = 0; ok && i < v->n_chunks; i++) ok = v->chunks[i]->refs == 1;
  if (ok) {
    for (k = 0; k < ch->n; k++) {
      memcpy((float *)v->rows[at[k]], ch->rows + k * v->dim,
             (size_t)v->dim * EMBED_FLOAT_BYTES);
      v->norms[at[k]] = ch->norms[k];
    }
    v->seq = head;
  }
  pthread_mutex_unlock(&copy_mutex);
  sqlite3_free(at);
  return ok;
}

void embed_copies_publish(embed_copies *c, embed_copy *v) {
  copy_entry *e = c->entry;
  pthread_mutex_lock(&copy_mutex);
  if (!e->current || e->current->seq < v->seq) {
    copy_unref_locked(e->current);
    e->current = v;
    v->refs++;
  }
  if (c->pinned != v) {
    copy_unref_locked(c->pinned);
    c->pinned = v;
    v->refs++;
  }
  pthread_mutex_unlock(&copy_mutex);
}

/* ------------------------------------------------------------ building */

/* A version with room for cap rows and n_chunks chunks (refs = 1). */
static embed_copy *copy_new(int64_t dim, int64_t cap, int n_chunks) {
  embed_copy *v = (embed_copy *)sqlite3_malloc64(sizeof(*v));
  sqlite3_uint64 c = cap > 0 ? (sqlite3_uint64)cap : 1;
  if (!v) return 0;
  memset(v, 0, sizeof(*v));
  v->refs = 1; /* its maker's, who searches it and then releases it */
  v->scanning = 1;
  v->dim = dim;
  v->ids = (int64_t *)sqlite3_malloc64(c * EMBED_ID_BYTES);
  v->rows = (const float **)sqlite3_malloc64(c * sizeof(float *));
  v->norms = (double *)sqlite3_malloc64(c * sizeof(double));
  v->chunk_of = (int32_t *)sqlite3_malloc64(c * sizeof(int32_t));
  v->chunks = (copy_chunk **)sqlite3_malloc64(
      (sqlite3_uint64)(n_chunks > 0 ? n_chunks : 1) * sizeof(copy_chunk *));
  if (!v->ids || !v->rows || !v->norms || !v->chunk_of || !v->chunks) {
    copy_destroy(v);
    return 0;
  }
  return v;
}

/* Grow a version's row arrays to cap (a build that does not know n). */
static int copy_grow(embed_copy *v, int64_t cap) {
  void *p;
  if (!(p = sqlite3_realloc64(v->ids, (sqlite3_uint64)cap * EMBED_ID_BYTES)))
    return SQLITE_NOMEM;
  v->ids = (int64_t *)p;
  if (!(p = sqlite3_realloc64((void *)v->rows,
                              (sqlite3_uint64)cap * sizeof(float *))))
    return SQLITE_NOMEM;
  v->rows = (const float **)p;
  if (!(p = sqlite3_realloc64(v->norms, (sqlite3_uint64)cap * sizeof(double))))
    return SQLITE_NOMEM;
  v->norms = (double *)p;
  if (!(p = sqlite3_realloc64(v->chunk_of,
                              (sqlite3_uint64)cap * sizeof(int32_t))))
    return SQLITE_NOMEM;
  v->chunk_of = (int32_t *)p;
  return SQLITE_OK;
}

#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
/* The pages of [p, p + n) that start and end on a multiple of page. */
static int copy_pages(void *p, sqlite3_uint64 n, uintptr_t page,
                      uintptr_t *from, uintptr_t *to) {
  *from = ((uintptr_t)p + page - 1) & ~(page - 1);
  *to = ((uintptr_t)p + (uintptr_t)n) & ~(page - 1);
  return *to > *from;
}
#endif

/* Ask for a new chunk's whole 2 MB spans as huge pages (only a hint): 75
** faults instead of 37,500 for 150 MB. Then, with populate, fault in its
** pages in one call (Linux 5.14+): faulting 150 MB in page by page costs
** about twice as much (bench_live.py's cold build: 141 ms with 4 KB pages
** populated, 112 ms with huge pages). */
static void copy_advise(void *p, sqlite3_uint64 n, int populate) {
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  uintptr_t from, to;
#ifdef MADV_HUGEPAGE
  if (!populate && copy_pages(p, n, (uintptr_t)2 << 20, &from, &to))
    madvise((void *)from, to - from, MADV_HUGEPAGE);
#endif
  if (populate && copy_pages(p, n, 4096, &from, &to))
    madvise((void *)from, to - from, MADV_POPULATE_WRITE);
#else
  (void)p;
  (void)n;
  (void)populate;
#endif
}

/* A chunk for rows x dim floats; with populate, its pages faulted in now
** (else by whoever touches them first). */
static copy_chunk *copy_chunk_alloc(int64_t rows, int64_t dim, int populate) {
  copy_chunk *c = (copy_chunk *)sqlite3_malloc64(sizeof(*c));
  sqlite3_uint64 bytes = (sqlite3_uint64)(rows > 0 ? rows : 1) *
                         (sqlite3_uint64)dim * EMBED_FLOAT_BYTES;
  if (!c) return 0;
  c->refs = 1;
  c->rows = rows;
  c->data = (float *)sqlite3_malloc64(bytes);
  if (!c->data) {
    sqlite3_free(c);
    return 0;
  }
  copy_advise(c->data, bytes, 0);
  if (populate) copy_advise(c->data, bytes, 1);
  return c;
}

static copy_chunk *copy_chunk_new(int64_t rows, int64_t dim) {
  return copy_chunk_alloc(rows, dim, 1);
}

/* A build faults in the pages of its next chunk on another thread while it
** fills the current one: the two costs overlap. It never waits for that
** thread (a page is faulted in once, by whichever thread touches it
** first): a thread is joined when its slot is reused, two chunks later. */
typedef struct copy_prefault {
  pthread_t thread;
  int running;
  void *p;
  sqlite3_uint64 n;
} copy_prefault;

static void *copy_prefault_main(void *arg) {
  copy_prefault *f = (copy_prefault *)arg;
  copy_advise(f->p, f->n, 1);
  return 0;
}

static void copy_prefault_wait(copy_prefault *f) {
  if (f->running) pthread_join(f->thread, 0);
  f->running = 0;
}

static void copy_prefault_start(copy_prefault *f, copy_chunk *c, int64_t dim) {
  copy_prefault_wait(f); /* the chunk before last's: long done */
  f->p = c->data;
  f->n = (sqlite3_uint64)c->rows * (sqlite3_uint64)dim * EMBED_FLOAT_BYTES;
  f->running = pthread_create(&f->thread, 0, copy_prefault_main, f) == 0;
}

/* Rows of a build's chunk number k: 256 rows, doubling up to about 16 MB,
** so a small table takes little and a build never moves rows it read. */
static int64_t copy_build_chunk_rows(int64_t dim, int k) {
  int64_t most = ((int64_t)16 << 20) / (dim * EMBED_FLOAT_BYTES);
  int64_t rows = (int64_t)256 << (k < 20 ? k : 20);
  if (most < 1) most = 1;
  return rows < most ? rows : most;
}

int embed_copy_build(embed_store *st, embed_scan *scan, int64_t head,
                     embed_copy **out, char **pzErr) {
  int64_t dim = embed_store_config(st)->dim, n = 0, cap = 1024, used = 0;
  int cap_chunks = 16,
      cosine = embed_store_config(st)->metric == EMBED_METRIC_COSINE;
  embed_copy *v = copy_new(dim, cap, cap_chunks);
  copy_chunk *chunk = 0, *next = 0; /* next: allocated ahead, faulted in */
  copy_prefault prefault[2];        /* slot k % 2: chunk k's */
  int rc;
  *out = 0;
  prefault[0].running = prefault[1].running = 0;
  if (!v) return SQLITE_NOMEM;
  embed_scan_map(scan, 1);
  rc = embed_scan_start(scan, 0, INT64_MIN, INT64_MAX);
  while (rc == SQLITE_OK && (rc = embed_scan_step(scan)) == SQLITE_ROW) {
    float *row;
    rc = SQLITE_OK;
    if (n == cap) {
      rc = copy_grow(v, cap * 2);
      if (rc) break;
      cap *= 2;
    }
    if (!chunk || used == chunk->rows) { /* the next chunk */
      if (v->n_chunks == cap_chunks) {
        copy_chunk **grown = (copy_chunk **)sqlite3_realloc64(
            v->chunks, (sqlite3_uint64)cap_chunks * 2 * sizeof(copy_chunk *));
        if (!grown) {
          rc = SQLITE_NOMEM;
          break;
        }
        v->chunks = grown;
        cap_chunks *= 2;
      }
      chunk =
          next ? next
               : copy_chunk_new(copy_build_chunk_rows(dim, v->n_chunks), dim);
      next = 0;
      if (!chunk) {
        rc = SQLITE_NOMEM;
        break;
      }
      v->chunks[v->n_chunks++] = chunk;
      used = 0;
      next = copy_chunk_alloc(copy_build_chunk_rows(dim, v->n_chunks), dim, 0);
      if (next) copy_prefault_start(&prefault[v->n_chunks % 2], next, dim);
    }
    row = chunk->data + used * dim;
    if (cosine) {
      rc = embed_scan_vector_norm(scan, row, &v->norms[n], pzErr);
    } else {
      rc = embed_scan_vector(scan, row, pzErr);
      v->norms[n] = 0; /* l2 and dot rank without norms */
    }
    if (rc == SQLITE_OK) {
      v->ids[n] = embed_scan_id(scan);
      v->rows[n] = row;
      v->chunk_of[n] = v->n_chunks - 1;
      n++;
      used++;
    }
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  embed_scan_reset(scan);
  embed_scan_map(scan, 0);
  copy_prefault_wait(&prefault[0]);
  copy_prefault_wait(&prefault[1]);
  if (next) copy_chunk_unref(next);
  if (chunk) chunk->rows = used; /* the last one is part full */
  v->n = v->stored = n;
  if (rc) {
    copy_destroy(v);
    return rc;
  }
  v->seq = head;
  *out = v;
  return SQLITE_OK;
}

int embed_copy_derive(const embed_copy *old, const embed_changes *ch,
                      int64_t head, embed_copy **out) {
  int64_t dim = old->dim, present = 0, i, j, k, n, live_stored = 0;
  int compact, c, n_chunks;
  embed_copy *v;
  copy_chunk *fresh;
  int64_t *live = 0;
  int32_t *renum = 0; /* old chunk index -> the new version's */
  *out = 0;
  for (k = 0; k < ch->n; k++) present += ch->present[k] != 0;
  /* rows of old that stay live, per chunk */
  live = (int64_t *)sqlite3_malloc64((sqlite3_uint64)(old->n_chunks + 1) *
                                     sizeof(int64_t));
  renum = (int32_t *)sqlite3_malloc64((sqlite3_uint64)(old->n_chunks + 1) *
                                      sizeof(int32_t));
  if (!live || !renum) {
    sqlite3_free(live);
    sqlite3_free(renum);
    return SQLITE_NOMEM;
  }
  memset(live, 0, (size_t)(old->n_chunks + 1) * sizeof(int64_t));
  for (i = 0, k = 0; i < old->n; i++) {
    while (k < ch->n && ch->ids[k] < old->ids[i]) k++;
    if (k < ch->n && ch->ids[k] == old->ids[i]) continue;
    live[old->chunk_of[i]]++;
  }
  for (c = 0; c < old->n_chunks; c++) live_stored += live[c];
  n = live_stored + present;
  /* compact when a quarter of the stored rows would be dead, or the chunk
  ** list grows long */
  compact = (old->stored + present - n) * 4 > n || old->derived >= 64;
  n_chunks = compact ? 1 : old->n_chunks + 1;
  v = copy_new(dim, n, n_chunks);
  fresh = copy_chunk_new(compact ? n : present, dim);
  if (!v || !fresh) {
    if (v) copy_destroy(v);
    if (fresh) copy_chunk_unref(fresh);
    sqlite3_free(live);
    sqlite3_free(renum);
    return SQLITE_NOMEM;
  }
  /* the chunks it keeps: renumbered, each referenced once more */
  if (!compact) {
    int kept = 0;
    pthread_mutex_lock(&copy_mutex);
    for (c = 0; c < old->n_chunks; c++) {
      if (live[c] > 0) {
        v->chunks[kept] = old->chunks[c];
        old->chunks[c]->refs++;
        v->stored += old->chunks[c]->rows;
        renum[c] = kept++;
      } else {
        renum[c] = -1;
      }
    }
    pthread_mutex_unlock(&copy_mutex);
    v->chunks[kept] = fresh;
    v->n_chunks = kept + 1;
    v->stored += present;
  } else {
    v->chunks[0] = fresh;
    v->n_chunks = 1;
    v->stored = n;
  }
  /* merge old's live rows with the present changed rows, by id */
  for (i = 0, k = 0, j = 0, c = 0; i < old->n || k < ch->n;) {
    int from_old = k >= ch->n || (i < old->n && old->ids[i] < ch->ids[k]);
    if (!from_old && i < old->n && old->ids[i] == ch->ids[k])
      i++; /* replaced */
    if (from_old) {
      v->ids[j] = old->ids[i];
      v->norms[j] = old->norms[i];
      if (compact) {
        float *dst = fresh->data + (int64_t)c * dim;
        memcpy(dst, old->rows[i], (size_t)dim * EMBED_FLOAT_BYTES);
        v->rows[j] = dst;
        v->chunk_of[j] = 0;
        c++;
      } else {
        v->rows[j] = old->rows[i];
        v->chunk_of[j] = renum[old->chunk_of[i]];
      }
      i++;
      j++;
    } else {
      if (ch->present[k]) {
        float *dst = fresh->data + (int64_t)c * dim;
        memcpy(dst, ch->rows + k * dim, (size_t)dim * EMBED_FLOAT_BYTES);
        v->ids[j] = ch->ids[k];
        v->norms[j] = ch->norms[k];
        v->rows[j] = dst;
        v->chunk_of[j] = v->n_chunks - 1;
        c++;
        j++;
      }
      k++;
    }
  }
  v->n = j;
  v->seq = head;
  v->derived = compact ? 0 : old->derived + 1;
  sqlite3_free(live);
  sqlite3_free(renum);
  *out = v;
  return SQLITE_OK;
}
