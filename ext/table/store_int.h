/*
** table/store_int.h - private to the storage layer (the ext/table/store*.c
** files): the store's fields, its statement cache and the helpers these
** files use. Nothing outside the storage layer includes it; table/store.h
** is the layer's interface.
*/
#ifndef EMBED_STORE_INT_H
#define EMBED_STORE_INT_H

#include "table/store.h"

/* The shadow tables (store_schema.c spells their names and DDL). */
enum {
  SHADOW_CONFIG,
  SHADOW_VECTORS,
  SHADOW_STATE,
  SHADOW_LOG,
  SHADOW_CELLS,
  STORE_N_SHADOW
};
/* The cached statements; each names at most one table, given by `on`. */
enum { ON_NONE = STORE_N_SHADOW, ON_SCHEMA, STORE_N_NAMES };
typedef enum store_stmt {
  STMT_READ,
  STMT_WRITE,
  STMT_INSERT, /* the three conflict modes of INSERT */
  STMT_INSERT_REPLACE,
  STMT_INSERT_IGNORE,
  STMT_INSERT_MANY, /* the insert buffer's rows (store_stmt.c) */
  STMT_DELETE,
  STMT_MOVE,
  STMT_MAXID,
  STMT_COUNT,
  STMT_STATE_READ,
  STMT_STATE_WRITE,
  STMT_STATE_DELETE,
  STMT_STATE_MOVE,
  STMT_STATE_CLEAR,
  STMT_STATE_MARK,
  STMT_STEP_READ,
  STMT_STEP_WRITE,
  STMT_CONFIG_WRITE,
  STMT_DATA_VERSION,
  STMT_SCHEMA_VERSION,
  STMT_ROLLBACK,
  STMT_LOG_APPEND,
  STMT_LOG_HEAD,
  STMT_LOG_TAIL,
  STMT_LOG_READ,
  STMT_LOG_TRIM,
  STMT_INDEX_HEAD,
  STMT_INDEX_CODES,
  STMT_INDEX_CLEAR,
  STMT_INDEX_PUT,
  STMT_INDEX_READ,
  STMT_CONFIG_PUT,
  STORE_N_STMT
} store_stmt;

struct embed_store {
  sqlite3 *db;
  char *schema, *name;
  char *label;                /* "embedding NAME", the prefix of errors */
  char *names[STORE_N_NAMES]; /* "S"."T_suffix" per shadow table, "S" */
  char *vectors_table;        /* T_vectors, for sqlite3_blob_open */
  embed_config cfg;
  sqlite3_stmt *stmt[STORE_N_STMT];
  int64_t writes;    /* in-place vector writes (store_rows.c) */
  int states_stored; /* the last batch found most of its states stored */
  /* store.c: training calls' working memory (embed_store_scratch_take) */
  void *scratch;
  sqlite3_uint64 scratch_bytes;
  int scratch_busy;
  int layout; /* STORE_LAYOUT_* the table was made with */
  /* The optimizer state floats stored after the weight in each T_vectors
  ** row (layout 3, adagrad and adam; layout 4, sgd momentum; else 0), and
  ** what a new row holds there: the initial state's stored bytes (NULL
  ** when row_state is 0). */
  int64_t row_state;
  unsigned char *row_tail;
  int64_t instance; /* random, chosen at CREATE: tells tables apart */
  /* store_log.c: ids written through the module since the last flush */
  int64_t *pending;
  int64_t n_pending, cap_pending;
  /* store_stmt.c: inserted rows not yet written (ascending ids), and an
  ** upper bound of the table's ids when ins_bound_known */
  int64_t *ins_ids;
  unsigned char *ins_rows; /* [n_ins x store_row_bytes] stored-form rows */
  int64_t n_ins, cap_ins, ins_bound;
  int ins_bound_known, ins_writing;
  int ins_batch; /* rows per STMT_INSERT_MANY; 0: not chosen yet */
  int ins_file;  /* the schema is a database file (set with ins_batch) */
  /* T_vectors has store_schema.c's DDL, whose CHECK calls no function:
  ** in a file its flushes need no statement journal (store_stmt.c) */
  int vectors_ddl_current;
  sqlite3_stmt *ins_owner;   /* in BEGIN: the statement that inserted last */
  int ins_owner_runs;        /* its SQLITE_STMTSTATUS_RUN then */
  int64_t ins_owner_changes; /* total_changes() after that insert */
};

/* The storage layouts, recorded in T_config as ('layout', n):
** 1 (no row): T_config, T_vectors, T_state (embed 0.1);
** 2: and T_log, the change log that keeps searches fresh; T_config also
** holds ('instance', a random number chosen at CREATE);
** 3: for adagrad and adam (embed_optimizer_state_dense), each T_vectors
** row holds the weight and then the row's optimizer state, written at the
** row's insert with the initial state, so a step reads and rewrites one
** record and T_state stays empty;
** 4: for sgd with momentum, the same, the buffer (zeros from the insert)
** after the weight; as torch's sparse buffer holds only the rows it has
** stepped, which every later step moves again, T_state has one row
** (id, x'') for each row with a buffer, a mark written at the row's first
** step. Tables without optimizer state are still made with 2, which is 3
** and 4 with no state in the row. */
#define STORE_LAYOUT_NO_LOG 1
#define STORE_LAYOUT_LOG 2
#define STORE_LAYOUT_STATE_IN_ROW 3
#define STORE_LAYOUT_MOMENTUM_IN_ROW 4
#define STORE_LAYOUT_CURRENT STORE_LAYOUT_MOMENTUM_IN_ROW

#define STORE_PREPARE_FLAGS (SQLITE_PREPARE_PERSISTENT | SQLITE_PREPARE_NO_VTAB)
/* store_stmt.c, the statement cache. Prepare zSql (sqlite3_mprintf'd, NULL
** when out of memory; freed here) into *slot, unless *rc already holds an
** error. Returns *rc. */
int store_prepare(embed_store *st, sqlite3_stmt **slot, char *zSql, int *rc);
/* The cached statement `which`, prepared on first use (a statement on
** T_vectors first writes the insert buffer). */
int store_stmt_get(embed_store *st, store_stmt which, sqlite3_stmt **out);
/* Run a cached statement returning one integer (SQLITE_NOTFOUND: no row;
** a NULL reads as 0). */
int store_int(embed_store *st, store_stmt which, int64_t *out);
/* Run a write statement to completion and reset it. */
int store_step_done(sqlite3_stmt *stmt);
/* Bind ids[0..n) as a BLOB of little-endian int64 to parameter i (without
** a copy on little-endian hosts: step and reset before ids goes away), and
** decode count such ids from a BLOB (store_log.c). */
int store_bind_ids(sqlite3_stmt *stmt, int i, const int64_t *ids, int64_t n);
void store_ids_decode(const unsigned char *blob, int64_t count, int64_t *out);
/* Bind v (dim floats) as a little-endian float32 BLOB to parameter i. */
int store_bind_vector(sqlite3_stmt *stmt, int i, const float *v, int64_t dim);
/* A stored optimizer state of row id (SQLite type, bytes) into out[n]:
** SQLITE_OK, or SQLITE_CORRUPT_VTAB naming the id (store.c). */
int store_state_decode(embed_store *st, int64_t id, int type, const void *bytes,
                       int64_t nbytes, int64_t n, float *out, char **pzErr);
void store_finalize_all(embed_store *st);
/* Free the training calls' working memory unless a call holds it. */
void store_scratch_free(embed_store *st);
/* (Re)compute the names derived from st->schema and st->name. */
int store_set_names(embed_store *st);
/* T_config's rows that are not options: the step count, the layout, the
** instance number and the index's (store_index.c). */
int store_is_internal_key(const char *key);
/* store_stmt.c, the insert buffer: take row id (bytes: its weight's stored
** form; the buffer adds the initial state of a layout 3 row)
** for a later write (SQLITE_NOTFOUND: it may conflict, insert it now);
** write the buffer before T_vectors is read or written otherwise; note an
** id the store wrote itself; note the end of an insert (inside BEGIN, the
** next insert of the same statement run may wait); forget the buffer
** (ROLLBACK) and the bound of the ids (end of a transaction); free it; the
** rows one STMT_INSERT_MANY writes. */
int store_pending_add(embed_store *st, int64_t id, const void *bytes);
int store_pending_settle(embed_store *st);
void store_pending_saw(embed_store *st, int64_t id);
void store_pending_forget(embed_store *st);
void store_pending_note_run(embed_store *st, int inserted);
void store_pending_free(embed_store *st);
int store_pending_batch(embed_store *st);
/* store_log.c: write the change log's buffer as one entry, or forget it. */
int store_log_flush(embed_store *st);
void store_log_discard(embed_store *st);
/* Does the table have shadow table i (T_log only from layout 2, T_cells
** only with index=ivf)? */
int store_has_shadow(const embed_store *st, int i);
/* store_check.c, for store_schema.c (which has the list of shadow tables):
** the n shadow tables T_suffix[i], each an ordinary table with the columns
** of its DDL columns[i]? (Bit i of *same_ddl: its stored SQL holds
** columns[i] exactly, as this version makes it.) And do the options read
** back from T_config (`stored`, and the layout row, `stored_layout`) equal
** the table's, is the step count sound? */
int store_check_shapes(embed_store *st, const char *const *suffix,
                       const char *const *columns, int n, unsigned *same_ddl,
                       char **pzErr);
int store_check_config_same(embed_store *st, const embed_config *stored,
                            int stored_layout, char **pzErr);
/* store_stmt.c: the bytes of a stored T_vectors row (the weight, then
** row_state floats of state); set row_state and row_tail from the layout
** and the options (at open); the stored form of a new row into out
** (store_row_bytes): the weight from v (floats) or raw (its stored bytes),
** then the initial state. */
int64_t store_row_bytes(const embed_store *st);
int store_row_setup(embed_store *st);
/* The layout a new table with these options is made with: 2 without
** optimizer state, else the first layout that keeps that state in the rows
** (3 for adagrad and adam, 4 for sgd momentum). */
int store_layout_new(const embed_config *cfg);
void store_row_compose(const embed_store *st, const float *v, const void *raw,
                       unsigned char *out);
/* store.c: a finding of damage, the storage layer's one spelling of it:
** *pzErr = zMsg (sqlite3_mprintf'd), SQLITE_CORRUPT_VTAB, or SQLITE_NOMEM
** when zMsg is NULL. */
int store_corrupt(char **pzErr, char *zMsg);

#endif /* EMBED_STORE_INT_H */
