/*
** embed_int.h - declarations shared by the files of the embed extension.
**
** The extension is split by concern:
**
**   vector.c       float32 BLOB and JSON codecs             (no SQLite)
**   kernels.c      vector math: dot, norms, distances        (no SQLite)
**   initializer.c  the seeded initial value of each row      (no SQLite)
**   options.c      CREATE VIRTUAL TABLE options              (no SQLite)
**   optimizer.c    SGD / Adagrad / SparseAdam row steps      (no SQLite)
**   sqlvalue.c     sqlite3_value <-> vector, error messages
**   functions.c    pure scalar functions and aggregates
**   vtab.c         the `embedding` virtual table and its storage
**   blobrows.c     many rows through one sqlite3_blob handle
**   search.c       exact k-nearest-neighbour search
**   registry.c     which embedding table a function call means
**   training.c     embed_lookup and embed_update
**   files.c        embed_file and embed_save: word2vec/GloVe/fastText/npy
**   embed.c        the entry point
**
** The files above the line "no SQLite" compile and are unit tested without
** SQLite; everything else includes sqlite3ext.h through this header.
*/
#ifndef EMBED_INT_H
#define EMBED_INT_H

#include <stddef.h>
#include <stdint.h>

/* Hard limits, enforced with an error wherever input could exceed them. */
#define EMBED_MAX_DIM 65536     /* elements in one vector */
#define EMBED_MAX_BATCH 1048576 /* ids in one batch lookup/update */
#define EMBED_MAX_K 100000      /* k of a similarity search */
#define EMBED_MAX_ROWS_AT_CREATE 1000000000LL /* num_embeddings */

/* ------------------------------------------------------------------------
** vector.c: codecs. A vector is D little-endian float32 values.
*/
typedef enum embed_code {
  EMBED_OK = 0,
  EMBED_E_EMPTY,       /* zero-length BLOB or [] */
  EMBED_E_BLOB_LENGTH, /* a = byte length, not a multiple of 4 */
  EMBED_E_TOO_LONG,    /* a = dimension found (or lower bound) */
  EMBED_E_NONFINITE,   /* a = element index, b = 0 NaN, 1 +Inf, -1 -Inf */
  EMBED_E_JSON,        /* a = byte offset, what = what was expected */
  EMBED_E_RAGGED,      /* a = row, b = its length, c = first row's length */
  EMBED_E_NOT_INTEGER, /* a = element index (ids arrays) */
  EMBED_E_TOO_MANY     /* a = count found (or lower bound), b = limit */
} embed_code;

typedef struct embed_error {
  embed_code code;
  int64_t a, b, c;
  const char *what;
} embed_error;

/* Number of float32 elements in a BLOB of nbytes, or -1 with *err set. */
int64_t embed_blob_dim(int64_t nbytes, embed_error *err);
/* Decode n floats from a (possibly unaligned) BLOB; rejects NaN/Inf. */
int embed_blob_decode(const void *blob, int64_t n, float *out,
                      embed_error *err);
/* Check, without copying, that a BLOB's n floats are all finite. */
int embed_blob_check(const void *blob, int64_t n, embed_error *err);
/* Encode n floats as a little-endian BLOB of 4*n bytes. */
void embed_blob_encode(const float *v, int64_t n, void *out);
/* Upper bound of the numbers in a JSON text: its commas plus one. */
int64_t embed_json_capacity(const char *text, int64_t n);
/* Parse a JSON array of numbers ("[1, 2.5]") into out[cap]. With nested=1,
** parse an array of equal-length arrays ("[[1,2],[3,4]]"), row-major.
** Sets *rows and *cols. Rejects NaN/Inf, empty arrays and ragged rows. */
int embed_json_parse_floats(const char *text, int64_t n, int nested, float *out,
                            int64_t cap, int64_t *rows, int64_t *cols,
                            embed_error *err);
/* Parse a JSON array of integers ("[3, 1, 4]") into out[cap]. */
int embed_json_parse_ids(const char *text, int64_t n, int64_t *out, int64_t cap,
                         int64_t *count, embed_error *err);
/* Bytes embed_json_format needs for n floats, terminator included. */
int64_t embed_json_format_size(int64_t n);
/* Write v as a JSON array, each float in the fewest digits that read back
** bit-exact. Returns the length written (without the terminator). */
int64_t embed_json_format(const float *v, int64_t n, char *out);

/* ------------------------------------------------------------------------
** kernels.c: vector math. Accumulation is in double, so results are
** accurate to well under 1e-5 relative of a float64 reference.
*/
#define EMBED_COSINE_EPS 1e-8     /* torch.nn.functional.cosine_similarity */
#define EMBED_NORMALIZE_EPS 1e-12 /* torch.nn.functional.normalize */
#define EMBED_MAX_NORM_EPS 1e-7   /* torch.embedding_renorm_ */

double embed_dot(const float *a, const float *b, int64_t n);
double embed_norm2(const float *v, int64_t n);
double embed_norm_p(const float *v, int64_t n, double p); /* p may be inf */
double embed_cosine_similarity(const float *a, const float *b, int64_t n);
double embed_l2_distance(const float *a, const float *b, int64_t n);
void embed_add(const float *a, const float *b, int64_t n, float *out);
void embed_sub(const float *a, const float *b, int64_t n, float *out);
void embed_scale(const float *v, float s, int64_t n, float *out);
void embed_normalize(const float *v, int64_t n, float *out);
/* index of the first non-finite element of v, or -1 */
int64_t embed_first_nonfinite(const float *v, int64_t n);
/* torch.embedding_renorm_: scale v in place to max_norm when its p-norm
** exceeds it. Returns 1 when v was rescaled. */
int embed_renorm(float *v, int64_t n, double max_norm, double norm_type);

/* The implementation of the reductions above (dot, norm2, cosine, l2) is
** chosen once for the CPU; a level can be forced, for tests and benchmarks.
** Every level adds in the same order, so dot, norm2 and cosine results are
** bit-identical whichever runs (l2 may differ in the last bit between the
** FMA levels and scalar/sse2). */
typedef enum embed_kernels_level {
  EMBED_KERNELS_AUTO = -1,  /* the fastest the CPU supports (the default) */
  EMBED_KERNELS_SCALAR = 0, /* portable C: the reference */
  EMBED_KERNELS_SSE2,       /* x86-64 baseline */
  EMBED_KERNELS_AVX2,       /* x86-64 with AVX2 and FMA */
  EMBED_KERNELS_AVX512,     /* x86-64 with AVX-512F */
  EMBED_KERNELS_NEON,       /* aarch64 Advanced SIMD */
  EMBED_KERNELS_COUNT
} embed_kernels_level;
/* 1 when the level is compiled in and this CPU runs it. */
int embed_kernels_supported(int level);
/* Use level from now on (AUTO: the default choice). -1, changing nothing,
** when the level is not supported. */
int embed_kernels_force(int level);
int embed_kernels_active(void);       /* the level in use */
const char *embed_kernels_name(void); /* its name: "avx512", "scalar", ... */
const char *embed_kernels_level_name(int level);

/* ------------------------------------------------------------------------
** initializer.c: the initial vector of row `id` is a pure function of
** (init, seed, id); see the README for the algorithm.
*/
typedef enum embed_init {
  EMBED_INIT_NORMAL = 0,
  EMBED_INIT_UNIFORM,
  EMBED_INIT_ZEROS
} embed_init;

uint64_t embed_mix64(uint64_t x);
void embed_initial_row(embed_init init, uint64_t seed, int64_t id, float *out,
                       int64_t dim);

/* ------------------------------------------------------------------------
** options.c: the options of CREATE VIRTUAL TABLE ... USING embedding(...).
*/
typedef enum embed_metric {
  EMBED_METRIC_COSINE = 0,
  EMBED_METRIC_L2,
  EMBED_METRIC_DOT
} embed_metric;

typedef enum embed_optimizer {
  EMBED_OPTIMIZER_SGD = 0,
  EMBED_OPTIMIZER_ADAGRAD,
  EMBED_OPTIMIZER_ADAM /* torch.optim.SparseAdam */
} embed_optimizer;

typedef struct embed_config {
  int64_t dim;
  int64_t num_embeddings;
  embed_init init;
  int64_t seed;
  int has_seed;
  int64_t padding_idx;
  int has_padding_idx;
  double max_norm; /* 0: none */
  double norm_type;
  int scale_grad_by_freq;
  embed_optimizer optimizer;
  double momentum, dampening, weight_decay;   /* sgd */
  int nesterov;                               /* sgd */
  double lr_decay, initial_accumulator_value; /* adagrad */
  double eps;                                 /* adagrad, adam */
  double beta1, beta2;                        /* adam: betas=(beta1, beta2) */
  int maximize;                               /* every optimizer */
  embed_metric metric;
  int search_cache; /* keep an in-memory snapshot for similarity search */
  unsigned seen;    /* bit per option given, to catch duplicates */
} embed_config;

void embed_config_defaults(embed_config *cfg);
/* Apply one "key=value" argument. Returns 0, or -1 with err filled. */
int embed_config_apply_arg(embed_config *cfg, const char *arg, char *err,
                           size_t nerr);
/* Apply one option by key and value text (already unquoted). */
int embed_config_apply(embed_config *cfg, const char *key, const char *value,
                       char *err, size_t nerr);
/* Check the options together (dim given, padding_idx in range, ...). */
int embed_config_finish(embed_config *cfg, char *err, size_t nerr);
/* The stored form: option i's key and value text, i in [0, count). */
int embed_config_count(void);
/* Does option i mean anything for this configuration's optimizer? */
int embed_config_applies(const embed_config *cfg, int i);
const char *embed_config_key(int i);
void embed_config_value(const embed_config *cfg, int i, char *out, size_t nout);
const char *embed_metric_name(embed_metric m);

/* ------------------------------------------------------------------------
** optimizer.c: one optimizer step on one row (torch's sparse formulas).
*/
int64_t embed_optimizer_state_size(const embed_config *cfg, int64_t dim);
void embed_optimizer_state_init(const embed_config *cfg, float *state,
                                int64_t dim);
void embed_optimizer_step(const embed_config *cfg, float *w, float *g,
                          float *state, double lr, int64_t step, int64_t dim);
/* Does the optimizer keep a step count (adagrad, adam, sgd momentum)? */
int embed_optimizer_counts_steps(const embed_config *cfg);
/* Rows a step moves besides the batch's: 0 none, 1 rows with optimizer
** state (sgd momentum), 2 every row (sgd weight_decay), as torch does. */
int embed_optimizer_steps_untouched_rows(const embed_config *cfg);

#ifndef EMBED_NO_SQLITE
/* ========================================================================
** Everything below needs SQLite.
*/
#include "sqlite3ext.h"
#ifndef SQLITE_CORE
SQLITE_EXTENSION_INIT3
#endif

/* sqlvalue.c ------------------------------------------------------------ */
typedef struct embed_vec {
  float *v;    /* sqlite3_malloc64'd, aligned; NULL for SQL NULL */
  int64_t dim; /* 0 for SQL NULL */
} embed_vec;

/* Read a vector argument (BLOB or JSON text). On error returns an SQLite
** code and sets *pzErr to "who: problem". SQL NULL gives v == NULL. */
int embed_vec_from_value(sqlite3_value *val, const char *who, embed_vec *out,
                         char **pzErr);
void embed_vec_free(embed_vec *vec);
char *embed_error_text(const char *who, const embed_error *err);
const char *embed_type_name(int type);
/* Set a float vector as the BLOB result of a function. */
void embed_result_vector(sqlite3_context *ctx, const float *v, int64_t dim);
/* Report an error message from sqlite3_mprintf (freed here), or NOMEM. */
void embed_result_error(sqlite3_context *ctx, int rc, char *zErr);
/* Read a finite REAL/INTEGER argument. */
int embed_number_from_value(sqlite3_value *val, const char *who,
                            const char *what, double *out, char **pzErr);

/* functions.c ----------------------------------------------------------- */
int embed_register_functions(sqlite3 *db);

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

/* files.c --------------------------------------------------------------- */
int embed_register_files(sqlite3 *db);

#endif /* EMBED_NO_SQLITE */
#endif /* EMBED_INT_H */
