/*
** table/store.h - the storage layer of an embedding table: the only code
** that names a shadow table or prepares SQL against one (store.c,
** store_rows.c). Everything above it (search, training, the module) reads
** and writes rows through these calls.
**
** Usage:
**
**     embed_store *st;
**     rc = embed_store_open(db, "main", "tok", &cfg, 1, &st, &zErr);  // CREATE
**     rc = embed_store_open(db, "main", "tok", 0, 0, &st, &zErr);  // CONNECT
**     rc = embed_store_read(st, 7, row, &zErr);   // SQLITE_NOTFOUND: no row
**     rc = embed_store_write(st, 7, row);
**     embed_store_close(st);
**
** Shadow tables of table T in schema S (README "Storage"; docs/DESIGN.md):
**
**     S.T_config   (key TEXT PRIMARY KEY, value) WITHOUT ROWID
**                  one row per option, and ('step', n): the optimizer's
**                  step count
**     S.T_vectors  (id INTEGER PRIMARY KEY, vector BLOB NOT NULL
**                   CHECK (vector >= x''))
**                  D little-endian float32 per row, keyed by token id; in
**                  layout 3 (adagrad, adam) and 4 (sgd momentum) followed
**                  by the row's optimizer state, the initial one from the
**                  row's insert (embed_store_state_in_row)
**     S.T_state    (id INTEGER PRIMARY KEY, state BLOB NOT NULL
**                   CHECK (typeof(state) = 'blob'))
**                  a trained row's optimizer state (optimizer.c's size),
**                  in layout 2; in layout 4 an empty BLOB, the mark of a
**                  row with a momentum buffer (embed_store_state_marks)
**     S.T_log      (seq INTEGER PRIMARY KEY, ids BLOB NOT NULL
**                   CHECK (typeof(ids) = 'blob'))
**                  the change log: the ids each write changed, as sorted
**                  little-endian int64 (store_log.c; tables made by embed
**                  0.1 have none, and T_config no ('layout', 2) row)
**     S.T_cells    (cell INTEGER PRIMARY KEY, grp INTEGER NOT NULL,
**                   centroid BLOB NOT NULL, ids BLOB NOT NULL)
**                  index=ivf tables only: the cells of the last
**                  build-index (store_index.c has the layout)
**
** Every read of a stored vector is checked (SQL type, the row's length,
** every float of the weight finite; of the state too where it is read);
** a damaged row is SQLITE_CORRUPT_VTAB with a message that names the
** table and the id. Every shadow statement is a nested statement
** on the table's connection, so transactions, ROLLBACK and statement
** aborts cover it. Errors follow value/value.h: an SQLite code, and
** *pzErr (sqlite3_mprintf'd) where the call takes one.
*/
#ifndef EMBED_STORE_H
#define EMBED_STORE_H

#include "value/value.h"

/* One connected table's storage: its identity, options and statement
** cache (opaque; store.c owns it). */
typedef struct embed_store embed_store;

/* ------------------------------------------------------------ lifecycle */

/* Open the storage of table `name` in `schema`. With create, make the
** shadow tables, store cfg (its seed already chosen) and create rows
** 0..num_embeddings-1; else read the options back and check that the
** shadow tables exist. */
int embed_store_open(sqlite3 *db, const char *schema, const char *name,
                     const embed_config *cfg, int create, embed_store **out,
                     char **pzErr);
void embed_store_close(embed_store *st);
/* Drop the shadow tables (DROP TABLE of the virtual table). */
int embed_store_drop(embed_store *st);
/* Rename the shadow tables to zNew's (ALTER TABLE ... RENAME). */
int embed_store_rename(embed_store *st, const char *zNew);
/* Is zSuffix the suffix of one of the shadow tables? (xShadowName) */
int embed_store_is_shadow(const char *zSuffix);

sqlite3 *embed_store_db(const embed_store *st);
const char *embed_store_schema(const embed_store *st);
const char *embed_store_name(const embed_store *st);
const char *embed_store_label(const embed_store *st); /* "embedding NAME" */
const embed_config *embed_store_config(const embed_store *st);

/* ----------------------------------------------------------------- rows */

/* Check a stored vector of row id (SQL type, the stored row's length:
** 4*dim bytes and the state kept in the row, the weight's floats finite)
** and, with out, decode the weight. The one checker of every read path. */
int embed_store_check(const embed_store *st, int64_t id, int type,
                      const void *bytes, int64_t nbytes, float *out,
                      char **pzErr);
/* Row id into out[dim]: SQLITE_OK, SQLITE_NOTFOUND, or an error. */
int embed_store_read(embed_store *st, int64_t id, float *out, char **pzErr);
/* Row id's stored value, unchecked, as a function result (NULL when the
** row is gone): the vector column of a search result. */
int embed_store_result(embed_store *st, int64_t id, sqlite3_context *ctx);
/* Does row id exist? SQLITE_OK, SQLITE_NOTFOUND, or an error. */
int embed_store_exists(embed_store *st, int64_t id);
/* Rewrite row id's vector. */
int embed_store_write(embed_store *st, int64_t id, const float *v);
/* Insert row id with v (floats), or with raw, a valid stored-form BLOB of
** the table's dimension (bound as it is). conflict is the statement's
** sqlite3_vtab_on_conflict(); a duplicate id fails with the UNIQUE
** constraint message in *pzErr. */
int embed_store_insert(embed_store *st, int64_t id, const float *v,
                       const void *raw, int conflict, char **pzErr);
/* Delete row id and its optimizer state. */
int embed_store_delete(embed_store *st, int64_t id);
/* Give row old_id (and its state) the id new_id, which must be free. */
int embed_store_move(embed_store *st, int64_t old_id, int64_t new_id);
/* The id after the largest (0 for an empty table). */
int embed_store_next_id(embed_store *st, int64_t *id, char **pzErr);
/* Number of rows. */
int embed_store_count(embed_store *st, int64_t *n);

/* A scan of rows lo..hi in id order (ascending, or descending with desc).
** Each cursor owns one; it keeps its statements between scans. */
typedef struct embed_scan embed_scan;
int embed_scan_new(embed_store *st, embed_scan **out);
void embed_scan_free(embed_scan *scan);
int embed_scan_start(embed_scan *scan, int desc, int64_t lo, int64_t hi);
/* Step: SQLITE_ROW (positioned), SQLITE_DONE, or an error. */
int embed_scan_step(embed_scan *scan);
void embed_scan_reset(embed_scan *scan);
int64_t embed_scan_id(const embed_scan *scan);
/* The current row's vector, checked: its stored bytes (valid until the
** next step), or decoded into out. */
int embed_scan_bytes(embed_scan *scan, const void **bytes, char **pzErr);
int embed_scan_vector(embed_scan *scan, float *out, char **pzErr);
/* While on, scans read the database file through a memory map (when the
** connection has none; off restores its mmap_size of 0): one pass over
** every row then skips a read call and a page copy per page. A hint. */
void embed_scan_map(embed_scan *scan, int on);
/* embed_scan_vector and the vector's embed_norm2, in one pass. */
int embed_scan_vector_norm(embed_scan *scan, float *out, double *norm,
                           char **pzErr);

/* Many rows through one sqlite3_blob handle (store_rows.c): a seek is a
** b-tree seek instead of a statement run, and a write rewrites the vector
** in place. Fields are private to store_rows.c. */
typedef struct embed_rows {
  embed_store *st;
  sqlite3_blob *blob; /* on T_vectors.vector (T_state.state), or NULL */
  int writable;
  int in_transaction; /* a transaction was open at init */
  int64_t id;         /* the row sought last */
  int of_state;       /* on T_state: embed_rows_init_state */
  int64_t n;          /* floats per row */
} embed_rows;
void embed_rows_init(embed_rows *r, embed_store *st, int writable);
/* A handle on whole stored rows: the weight and then the state kept in
** the row (embed_store_state_in_row floats), read (and, when writable,
** rewritten) together, the state checked (finite) like the weight. */
void embed_rows_init_record(embed_rows *r, embed_store *st, int writable);
/* A writable handle on the optimizer states (n floats) instead: read a
** row's state (embed_rows_read_state) or seek a row known to have one, and
** rewrite it in place with embed_rows_write. */
void embed_rows_init_state(embed_rows *r, embed_store *st, int64_t n);
/* Row id's state into out[n], checked: SQLITE_OK (the handle is then on
** the row), SQLITE_NOTFOUND (never stepped), or an error. */
int embed_rows_read_state(embed_rows *r, int64_t id, float *out, char **pzErr);
/* Move to row id: SQLITE_OK, SQLITE_NOTFOUND, or an error. */
int embed_rows_seek(embed_rows *r, int64_t id, char **pzErr);
/* The row's stored bytes (dim*4), or its floats; checked either way. */
int embed_rows_read_bytes(embed_rows *r, void *out, char **pzErr);
int embed_rows_read(embed_rows *r, float *out, char **pzErr);
/* Rewrite the row's vector in place (writable handles). */
int embed_rows_write(embed_rows *r, const float *v, char **pzErr);
void embed_rows_close(embed_rows *r);

/* ------------------------------------------------------ optimizer state */

/* The optimizer state floats each row stores after its weight (a table of
** layout 3 with adagrad or adam, or of layout 4 with sgd momentum: the
** initial state is written with the row's insert), or 0: the states are
** T_state's rows. */
int64_t embed_store_state_in_row(const embed_store *st);
/* Layout 4 (sgd momentum): which rows have a buffer is kept as T_state
** rows (id, x''), marked at the row's first step (embed_store_ids with
** of_state lists them; INSERT OR REPLACE, DELETE and reset-optimizer
** remove them). embed_store_state_marked: SQLITE_OK (marked),
** SQLITE_NOTFOUND, or an error. */
int embed_store_state_marks(const embed_store *st);
int embed_store_state_mark(embed_store *st, int64_t id);
int embed_store_state_marked(embed_store *st, int64_t id);

/* A hint for the next batch step, kept per connection: did the last one
** find most of its rows' optimizer states stored (then reading each
** through the state handle as its row is stepped pays; else one statement
** for all is cheaper)? It never changes a result. */
int embed_store_states_mostly_stored(const embed_store *st);
void embed_store_states_found(embed_store *st, int64_t found, int64_t n);

/* Working memory of at least `bytes` for one training call, kept for the
** next call of the same transaction: a large step (SGD momentum moves
** every row that has a buffer, tens of MB of rows for a large table)
** would otherwise fault in fresh pages on every call. NULL when out of
** memory or when it is in use (a call inside a call, from a trigger:
** that one allocates its own). Give it back with
** embed_store_scratch_release, which frees it unless keep; COMMIT,
** ROLLBACK (embed_store_discard) and closing the table free it too. */
void *embed_store_scratch_take(embed_store *st, sqlite3_uint64 bytes);
void embed_store_scratch_release(embed_store *st, int keep);

/* Row id's optimizer state (n floats) into out: SQLITE_OK, SQLITE_NOTFOUND
** (never stepped), or an error (a damaged state names the id). */
int embed_store_state_read(embed_store *st, int64_t id, float *out, int64_t n,
                           char **pzErr);
int embed_store_state_write(embed_store *st, int64_t id, const float *state,
                            int64_t n);
/* The states of ids[0..count) (ascending) into out + i*n, found[i] = 1,
** for the ids that have one (found[i] = 0 and out untouched for the
** others): one statement run per 64 ids instead of one per id. */
int embed_store_state_read_many(embed_store *st, const int64_t *ids,
                                int64_t count, float *out, int64_t n,
                                unsigned char *found, char **pzErr);
/* Every row's state back to the optimizer's initial one: T_state's rows
** deleted, and in a table that keeps states in its rows (layout 3) each
** row's state rewritten where it is not the initial one already; *deleted
** counts the rows either way. */
int embed_store_state_clear(embed_store *st, int64_t *deleted, char **pzErr);
/* The optimizer's step count in T_config. */
int embed_store_step_read(embed_store *st, int64_t *step, char **pzErr);
int embed_store_step_write(embed_store *st, int64_t step);
/* Every id (ascending) of the table (of_state = 0) or of the rows with an
** optimizer state (of_state = 1), sqlite3_malloc64'd. */
int embed_store_ids(embed_store *st, int of_state, int64_t **ids, int64_t *n);

/* ------------------------------------------------------------ change log */

/* Does the table keep a change log (layout 2)? Without one, writes are not
** logged and searches read the table. */
int embed_store_has_log(const embed_store *st);
/* The table's random instance number (0 for tables without a log). */
int64_t embed_store_instance(const embed_store *st);
/* Log one call's writes: ids (any order, repeats allowed) as one entry. */
int embed_store_log_append(embed_store *st, const int64_t *ids, int64_t n);
/* Buffer one id written by the module; embed_store_flush writes it. */
int embed_store_log_note(embed_store *st, int64_t id);
/* What the store keeps in memory for the module's writes, the rows
** inserted (store_stmt.c) and the change log's ids: embed_store_flush
** writes it (xSync, xSavepoint), embed_store_discard forgets it (COMMIT,
** after xSync; ROLLBACK; ROLLBACK TO, whose undone writes all came after
** the last flush) and frees the training calls' working memory. */
int embed_store_flush(embed_store *st);
void embed_store_discard(embed_store *st);
/* The newest and oldest seq of the log as this transaction sees it (0
** and 0 when it is empty). Entries (after, head] are all present when
** after >= tail - 1 or after == head. */
int embed_store_log_head(embed_store *st, int64_t *head, int64_t *tail);
/* The ids (sorted, distinct; sqlite3_malloc64'd) of the entries
** (after, head], and of this connection's unflushed buffer. */
int embed_store_log_since(embed_store *st, int64_t after, int64_t head,
                          int64_t **ids, int64_t *n, char **pzErr);

/* ------------------------------------------- the IVF index (store_index.c) */

/* Does the table have an index (made with index=ivf)? */
int embed_store_has_index(const embed_store *st);
/* The index's build as this transaction sees it: *build is 0 before the
** first build-index, else that build's random number; *seq the change-log
** position it was built at. */
int embed_store_index_head(embed_store *st, int64_t *build, int64_t *seq);
/* build-index, in its transaction: clear T_cells, put each row (cell >= 0:
** a cell of group grp with its ids; cell < 0: group -1 - cell's centre,
** no ids), then record the build, its log position and the codes. */
int embed_store_index_clear(embed_store *st);
int embed_store_index_put(embed_store *st, int64_t cell, int64_t grp,
                          const float *centroid, const int64_t *ids, int64_t n);
int embed_store_index_finish(embed_store *st, int64_t build, int64_t seq,
                             const float *offset, const float *scale);
/* SQLITE_CORRUPT_VTAB (SQLITE_NOMEM) and *pzErr: "embedding T: corrupt
** T_cells: <what> (cell N)", for what the index's readers find unsound. */
int embed_store_index_corrupt(embed_store *st, const char *what, int64_t cell,
                              char **pzErr);
/* The codes' offsets and scales (dim floats each), checked. */
int embed_store_index_codes(embed_store *st, float *offset, float *scale,
                            char **pzErr);
/* Call each for every T_cells row in cell order (centroid checked and
** decoded; ids decoded; both valid during the call only); a non-zero
** return stops the walk and is returned. */
typedef int (*embed_store_cell_fn)(void *arg, int64_t cell, int64_t grp,
                                   const float *centroid, const int64_t *ids,
                                   int64_t n, char **pzErr);
int embed_store_index_cells(embed_store *st, embed_store_cell_fn each,
                            void *arg, char **pzErr);

/* --------------------------------------------------- checks (store_check.c) */

/* Is every shadow table an ordinary table (not a view, an index or a
** virtual table) with the columns of its DDL? Else SQLITE_CORRUPT_VTAB and
** a message naming the shadow table and the problem. Run at connect. */
int embed_store_check_shadows(embed_store *st, char **pzErr);
/* Do T_config's rows read back to the options the table was opened with,
** and is the step count sound? */
int embed_store_check_config(embed_store *st, char **pzErr);
/* Is every T_state row sound: a BLOB of the optimizer's state size,
** finite, for an id the table has (and none when the optimizer keeps no
** state)? The first bad id, ascending, is reported. */
int embed_store_check_state(embed_store *st, char **pzErr);

/* --------------------------------------------- versions and transactions */

/* PRAGMA data_version of the table's schema; main's schema_version. */
int embed_store_data_version(embed_store *st, int64_t *version);
int embed_store_schema_version(embed_store *st, int64_t *version);
/* Vector writes this store made in place (blob handles move neither
** data_version nor total_changes; search compares this count). */
int64_t embed_store_writes(const embed_store *st);
/* For store_rows.c: T_vectors' name for sqlite3_blob_open, and the count
** of in-place writes. */
const char *embed_store_vectors_table(const embed_store *st);
/* T_state's name for sqlite3_blob_open, sqlite3_malloc64'd (NULL: no
** memory). */
char *embed_store_state_table(const embed_store *st);
void embed_store_note_write(embed_store *st);

/* BEGIN IMMEDIATE / COMMIT around a call that writes in autocommit mode. */
int embed_store_begin(embed_store *st);
int embed_store_commit(embed_store *st);
/* Prepare the ROLLBACK afresh before a call that may need it (after an
** out-of-memory error SQLite runs only statements already prepared), and
** run it. */
int embed_store_prepare_rollback(embed_store *st);
int embed_store_rollback(embed_store *st);

#endif /* EMBED_STORE_H */
