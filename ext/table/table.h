/*
** table/table.h - the layer over the storage of an embedding table:
** similarity search (search.c), which table a function call means
** (registry.c), and lookup and training steps (train.c, their arguments
** train_args.c, their transaction train_call.c). The virtual
** table module (table/module.h) and the SQL functions (sql/) use it.
*/
#ifndef EMBED_TABLE_H
#define EMBED_TABLE_H

#include "table/store.h"

/* search.c ---------------------------------------------------------------- */

typedef struct embed_hit {
  int64_t id;
  double distance;
} embed_hit;

/* copy.c: the in-memory copies searched, shared by a process's
** connections (opaque; copy.c owns them). */
typedef struct embed_copy embed_copy;     /* one immutable version */
typedef struct embed_copies embed_copies; /* a table's, on one connection */

/* Rows the change log names, as a transaction sees them now. */
typedef struct embed_changes {
  int64_t n;
  int64_t *ids;           /* ascending, distinct */
  unsigned char *present; /* 0: the row is gone */
  float *rows;            /* n x dim (a gone row's are unused) */
  double *norms;          /* L2 norm of each present row */
} embed_changes;

int embed_copies_open(embed_store *st, embed_copies **out);
/* The structure attached to the table's shared entry (ivf.c's): made
** zeroed, `bytes` long, by the first call, and freed by destroy with the
** entry's last connection; NULL when out of memory. */
void *embed_copies_attach(embed_copies *c, sqlite3_uint64 bytes,
                          void (*destroy)(void *));
void embed_copies_close(embed_copies *c);
/* The newest version a search can use, whose log runs from tail to head
** (a reference: release it), or NULL. */
embed_copy *embed_copies_pick(embed_copies *c, int64_t head, int64_t tail);
/* Offer v as the newest version of the table, and pin it. */
void embed_copies_publish(embed_copies *c, embed_copy *v);
void embed_copy_release(embed_copy *v);
/* A version of every row read through scan, at log position head. */
int embed_copy_build(embed_store *st, embed_scan *scan, int64_t head,
                     embed_copy **out, char **pzErr);
/* Bring v, the table's current version held by this search, to log
** position head in place, when ch only updates rows v has and nothing else
** reads v; returns 1 when it did. */
int embed_copies_update(embed_copies *c, embed_copy *v, const embed_changes *ch,
                        int64_t head);
/* old with the changed rows ch applied, at log position head. */
int embed_copy_derive(const embed_copy *old, const embed_changes *ch,
                      int64_t head, embed_copy **out);
int64_t embed_copy_seq(const embed_copy *v);
int64_t embed_copy_count(const embed_copy *v);
const int64_t *embed_copy_ids(const embed_copy *v);
const float *const *embed_copy_rows(const embed_copy *v);
const double *embed_copy_norms(const embed_copy *v);

/* ivf.c: the in-memory inverted-file index of an index=ivf table, shared
** like the copies (opaque; ivf.c owns it). */
typedef struct embed_ivf embed_ivf;
/* Groups of cells searched to assign a row, at build and after. */
#define EMBED_IVF_GROUPS_PROBED 2
/* A row's indexed form into out (unit length for metric=cosine, else
** itself); its squared norm. */
float embed_ivf_indexed(embed_metric metric, const float *row, int64_t dim,
                        float *out);
/* One query against an index: the cells nearest first (order, n_order)
** and the query in the form the codes need. */
typedef struct embed_ivf_query {
  float *qs, *unit; /* codes-scaled query; the query in indexed form */
  double base, qsq; /* the codes' constant term; |q|^2 */
  int64_t *order, n_order;
  float *scores; /* room for the largest cell's scores */
} embed_ivf_query;
/* The table's index of build `build` usable at log position head (tail:
** the log's oldest entry), a reference (release it), or NULL. */
embed_ivf *embed_ivf_pick(embed_copies *c, int64_t build, int64_t head,
                          int64_t tail);
/* Is the table's index of this build newer than head (a search of an
** older snapshot, which cannot use it)? */
int embed_ivf_stale(embed_copies *c, int64_t build, int64_t head);
/* Load the index of build `build` (built at log position build_seq) as
** the caller's transaction sees it (log from tail to head), reading every
** row through scan. */
int embed_ivf_load(embed_store *st, embed_scan *scan, int64_t build,
                   int64_t build_seq, int64_t head, int64_t tail,
                   embed_ivf **out, char **pzErr);
void embed_ivf_publish(embed_copies *c, embed_ivf *ix);
void embed_ivf_release(embed_ivf *ix);
/* Free an index that was never published (integrity-check's). */
void embed_ivf_discard(embed_ivf *ix);
/* Move ix, the table's current index, to log position head with the
** changed rows ch, in place, when no other search holds it; 1 when done. */
int embed_ivf_update(embed_copies *c, embed_ivf *ix, const embed_changes *ch,
                     int64_t head);
int64_t embed_ivf_seq(const embed_ivf *ix);
int64_t embed_ivf_nlist(const embed_ivf *ix);
int64_t embed_ivf_rows(const embed_ivf *ix); /* rows it lists */
int embed_ivf_query_start(const embed_ivf *ix, const float *q,
                          embed_ivf_query *qq);
void embed_ivf_query_end(embed_ivf_query *qq);
/* The approximate distances (in qq->scores) of cell's rows, *ids and *n:
** valid until the next call. */
const float *embed_ivf_cell_score(const embed_ivf *ix, embed_ivf_query *qq,
                                  int64_t cell, const int64_t **ids,
                                  int64_t *n);
/* Does every row read through scan sit in its cell with its code? Else
** SQLITE_CORRUPT_VTAB and *pzErr naming the id. */
int embed_ivf_check(embed_ivf *ix, embed_scan *scan, char **pzErr);
/* ivf_build.c: build-index. Trains the cells on a sample of the rows,
** assigns every row and stores the index (in the caller's transaction). */
int embed_ivf_build(embed_store *st, embed_scan *scan, int64_t *n_cells,
                    char **pzErr);

/* The k nearest rows to q (k == 0: every row) by the table's metric among
** those the id filter allows (ids: sorted distinct list of n_ids, or NULL
** for every id; and always the range [lo, hi]), into *hits
** (sqlite3_malloc64'd, ascending by (distance, id)). On an index=ivf
** table with a built index, a search with k > 0 and no id list probes
** nprobe cells (-1: the table's default; 0: search exactly). Searches the
** table's shared copy (copies), brought up to the caller's transaction by the
** change log, or reads the table through scan when no copy can serve. */
int embed_search_knn(embed_copies *copies, embed_store *st, embed_scan *scan,
                     const float *q, int64_t k, int64_t nprobe,
                     const int64_t *ids, int64_t n_ids, int64_t lo, int64_t hi,
                     embed_hit **hits, int64_t *n_hits, char **pzErr);

/* registry.c -------------------------------------------------------------- */

/* One connection's list of its connected embedding tables (the module's
** client data). */
typedef struct embed_registry embed_registry;
typedef struct embed_registry_entry embed_registry_entry;
embed_registry *embed_registry_new(sqlite3 *db);
void embed_registry_free(void *registry);
/* List st (NULL when out of memory); remove it again by its entry. */
embed_registry_entry *embed_registry_add(embed_registry *reg, embed_store *st);
void embed_registry_remove(embed_registry *reg, embed_registry_entry *entry);
/* A statement started (+1) or stopped (-1) reading the entry's table. */
void embed_registry_reading(embed_registry_entry *entry, int delta);
/* The embedding table a call means: the named one, or (name == NULL) the
** only one in the main schema. Errors name `who` and list candidates. */
int embed_registry_resolve(embed_registry *reg, sqlite3_value *name,
                           const char *who, embed_store **out, char **pzErr);

/* train_call.c ------------------------------------------------------------ */

/* How a training call holds its writes together: its own transaction (from
** autocommit), none (a writing statement's journal covers it, or a single
** write needs none), or the caller's (a failure after a write rolls it
** back). */
enum {
  EMBED_TRAIN_CALL_NONE,
  EMBED_TRAIN_CALL_TRANSACTION,
  EMBED_TRAIN_CALL_INSIDE
};
/* Before the call's first read. several: it may write more than one
** statement's worth (a batch, optimizer state, a step count). */
int embed_train_call_begin(embed_store *st, int several, int *mode);
/* After its last write (or its failure rc): commits, or rolls back as the
** mode requires; wrote: some write of the call succeeded before rc. Words
** *pzErr with who when SQLite's error is all there is. */
int embed_train_call_end(embed_store *st, int mode, int rc, int wrote,
                         const char *who, char **pzErr);

/* train_args.c ------------------------------------------------------------ */

/* What an id argument is: one id, a JSON array of ids, or SQL NULL. */
typedef struct embed_train_ids {
  int is_null;
  int is_batch;
  int64_t one;
  int64_t *many; /* sqlite3_malloc64'd when is_batch; the caller frees */
  int64_t n;
} embed_train_ids;
int embed_train_read_ids(sqlite3_value *v, const char *who,
                         embed_train_ids *out, char **pzErr);
/* Read the gradient argument: n rows of dim floats (n = 1 for one id).
** *owned: *out was allocated (else it is the argument's own BLOB, valid
** for the call, when it is little-endian float32 aligned for floats). */
int embed_train_read_grads(embed_store *st, const char *who, sqlite3_value *v,
                           int64_t n, int batch, const float **out, int *owned,
                           char **pzErr);

/* train.c ----------------------------------------------------------------- */

/* embed_lookup and embed_update on table st, as SQL function bodies: the
** result (or the error) goes to ctx. */
void embed_train_lookup(sqlite3_context *ctx, embed_store *st,
                        sqlite3_value *ids);
/* The step itself (embed_update's body, and the table's step command):
** SQLITE_OK with the number of rows changed, or an error in *pzErr whose
** messages start with who. */
int embed_train_step(embed_store *st, const char *who, sqlite3_value *ids,
                     sqlite3_value *grads, sqlite3_value *lr, int64_t *changed,
                     char **pzErr);
void embed_train_update(sqlite3_context *ctx, embed_store *st,
                        sqlite3_value *ids, sqlite3_value *grads,
                        sqlite3_value *lr);
/* For xFindFunction: embed_lookup(id) or embed_update(id, grad, lr) bound
** to the table (user data) whose column is the first argument, or NULL. */
void (*embed_train_bound_function(const char *name,
                                  int nArg))(sqlite3_context *, int,
                                             sqlite3_value **);

/* train_state.c ----------------------------------------------------------- */

/* embed_optimizer_state(id) and embed_optimizer_reset() on table st. */
void embed_train_state(sqlite3_context *ctx, embed_store *st,
                       sqlite3_value *id);
void embed_train_reset(sqlite3_context *ctx, embed_store *st);
/* embed_train_reset's body: *deleted counts the rows whose state was
** reset; errors begin with who. */
int embed_train_reset_state(embed_store *st, const char *who, int64_t *deleted,
                            char **pzErr);

/* integrity.c ------------------------------------------------------------- */

/* Check table st: its shadow tables, config rows, every vector (SQL type,
** length, finiteness) and every optimizer state (length for the optimizer,
** finiteness, an existing id). SQLITE_OK when sound; SQLITE_CORRUPT_VTAB
** and *pzErr ("embedding T: ...", naming the first bad id and what is
** wrong) at the first defect; another code when the check itself failed.
** Reads only. */
int embed_integrity_check(embed_store *st, char **pzErr);

#endif /* EMBED_TABLE_H */
