/*
** table/table.h - the embedding table: storage, search, name resolution,
** training and the virtual table module (transitional: one header while
** the storage layer is being split out).
*/
#ifndef EMBED_TABLE_H
#define EMBED_TABLE_H

#include "value/value.h"

/* vtab.c ---------------------------------------------------------------- */
typedef struct embed_registry embed_registry;
typedef struct embed_vtab embed_vtab;
typedef struct embed_snapshot embed_snapshot;

/* The statements a table caches (vtab.c holds their SQL). */
typedef enum embed_stmt {
  STMT_READ,           /* SELECT vector WHERE id = ?1 */
  STMT_WRITE,          /* UPDATE SET vector = ?2 WHERE id = ?1 */
  STMT_INSERT,         /* INSERT (id, vector) VALUES (?1, ?2) */
  STMT_INSERT_REPLACE, /* INSERT OR REPLACE ... */
  STMT_INSERT_IGNORE,  /* INSERT OR IGNORE ... */
  STMT_DELETE,         /* DELETE WHERE id = ?1 */
  STMT_MOVE,           /* UPDATE SET id = ?2 WHERE id = ?1 */
  STMT_STATE_DELETE,   /* the same two on the optimizer state */
  STMT_STATE_MOVE,
  STMT_MAXID,          /* SELECT max(id) */
  STMT_SCHEMA_VERSION, /* PRAGMA main.schema_version (registry.c) */
  STMT_DATA_VERSION,   /* PRAGMA data_version (search.c) */
  STMT_STATE_READ,     /* SELECT state WHERE id = ?1 (training.c) */
  STMT_STATE_WRITE,    /* INSERT OR REPLACE state (?1, ?2) */
  STMT_STEP_READ,      /* the optimizer step count */
  STMT_STEP_WRITE,
  STMT_STATE_CLEAR, /* DELETE every optimizer state */
  STMT_ROLLBACK,    /* prepared before it is needed: after an */
                    /* out-of-memory error only prepared ones run */
  EMBED_N_STMT
} embed_stmt;

struct embed_vtab {
  sqlite3_vtab base;
  sqlite3 *db;
  char *schema;
  char *name;
  char *label; /* "embedding NAME", the prefix of the table's errors */
  embed_config cfg;
  embed_registry *registry;
  embed_vtab *next;                 /* in registry */
  int open_cursors;                 /* statements reading it now */
  sqlite3_stmt *stmt[EMBED_N_STMT]; /* prepared on first use, persistent */
  embed_snapshot *snapshot;         /* search.c; NULL until a search */
};

int embed_register_vtab(sqlite3 *db, embed_registry *registry);
/* Read row id into out[dim]: SQLITE_OK, SQLITE_NOTFOUND when absent, or an
** error with *pzErr set (a corrupt row names the table and id). */
int embed_table_read(embed_vtab *tab, int64_t id, float *out, char **pzErr);
int embed_table_write(embed_vtab *tab, int64_t id, const float *v);
/* Check a stored vector of row id: SQL type, 4*dim bytes, every float
** finite (and, with out, decode it). Every path that reads vectors checks
** here; the error names the table and the id. */
int embed_stored_vector(embed_vtab *tab, int64_t id, int type,
                        const void *bytes, int64_t nbytes, float *out,
                        char **pzErr);
/* The table's cached statement `which`, prepared on first use. */
int embed_table_stmt(embed_vtab *tab, embed_stmt which, sqlite3_stmt **out);
/* Run a cached statement returning one integer (SQLITE_NOTFOUND: no row). */
int embed_table_int(embed_vtab *tab, embed_stmt which, int64_t *out);

/* blobrows.c ------------------------------------------------------------ */
typedef struct embed_rows {
  embed_vtab *tab;
  sqlite3_blob *blob; /* on T_vectors.vector, or NULL */
  int writable;
  int in_transaction; /* a transaction was open at init */
  int64_t id;         /* the row sought last */
} embed_rows;
void embed_rows_init(embed_rows *r, embed_vtab *tab, int writable);
/* Move to row id: SQLITE_OK, SQLITE_NOTFOUND, or an error. */
int embed_rows_seek(embed_rows *r, int64_t id, char **pzErr);
/* The row's dim*4 bytes as stored, or as floats; checked by
** embed_stored_vector either way. */
int embed_rows_read_bytes(embed_rows *r, void *out, char **pzErr);
int embed_rows_read(embed_rows *r, float *out, char **pzErr);
/* Rewrite the row's vector in place (writable handles). */
int embed_rows_write(embed_rows *r, const float *v, char **pzErr);
void embed_rows_close(embed_rows *r);

/* search.c -------------------------------------------------------------- */
typedef struct embed_hit {
  int64_t id;
  double distance;
} embed_hit;
/* Distance between q and v under the metric; qnorm and vnorm are their L2
** norms (used by cosine only). The same function ranks every search path. */
double embed_distance(embed_metric metric, const float *q, double qnorm,
                      const float *v, double vnorm, int64_t dim);
/* A bounded max-heap keeping the k smallest (distance, id). */
typedef struct embed_topk {
  embed_hit *heap;
  int64_t k, n, cap; /* k == 0: keep every hit */
  int nomem;         /* a hit could not be kept (k == 0 only) */
} embed_topk;
int embed_topk_init(embed_topk *t, int64_t k);
void embed_topk_push(embed_topk *t, int64_t id, double distance);
/* Sort the kept hits ascending (distance, then id); returns the count. */
int64_t embed_topk_finish(embed_topk *t);
void embed_topk_free(embed_topk *t);

/* An in-memory copy of a table's committed vectors, for fast search. */
struct embed_snapshot {
  int64_t n, dim;
  int64_t *ids;                                /* ascending */
  float *vectors;                              /* n x dim, row i is ids[i] */
  double *norms;                               /* L2 norm of each row */
  int64_t data_version, total_changes, writes; /* what it was built from */
};
/* The table's snapshot, rebuilt if stale; *out is NULL when the connection
** has an open write transaction (its uncommitted rows must be seen, so the
** caller scans the table instead). */
int embed_snapshot_get(embed_vtab *tab, embed_snapshot **out, char **pzErr);
void embed_snapshot_free(embed_snapshot *snap);
/* Rank the snapshot's rows allowed by the id filter (ids: sorted list, or
** NULL for the range [lo, hi]) into t. */
void embed_snapshot_search(const embed_snapshot *snap, embed_metric metric,
                           const float *q, double qnorm, const int64_t *ids,
                           int64_t n_ids, int64_t lo, int64_t hi,
                           embed_topk *t);

/* registry.c ------------------------------------------------------------ */
embed_registry *embed_registry_new(sqlite3 *db);
void embed_registry_free(void *registry);
void embed_registry_add(embed_registry *reg, embed_vtab *tab);
void embed_registry_remove(embed_registry *reg, embed_vtab *tab);
/* Count this connection's writes of vectors (search snapshots compare it:
** in-place blob writes do not move sqlite3_total_changes64). */
void embed_registry_note_write(embed_registry *reg);
int64_t embed_registry_writes(embed_registry *reg);
/* The embedding table a call means: the named one, or (name == NULL) the
** only one in the main schema. Errors name `who` and list candidates. */
int embed_registry_resolve(embed_registry *reg, sqlite3_value *name,
                           const char *who, embed_vtab **out, char **pzErr);

/* training.c ------------------------------------------------------------ */
int embed_register_training(sqlite3 *db, embed_registry *registry);
/* For xFindFunction: the implementation of embed_lookup/embed_update bound
** to a table whose column is the first argument, or NULL. */
void (*embed_training_bound_function(const char *name,
                                     int nArg))(sqlite3_context *, int,
                                                sqlite3_value **);

#endif /* EMBED_TABLE_H */
