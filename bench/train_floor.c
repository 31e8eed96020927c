/*
** train_floor.c - what a training step costs SQLite itself: the floor under
** embed_update for bench_train_mem.py. Built and run by the bench:
**
**     cc -O2 -o train_floor bench/train_floor.c -lsqlite3
**     ./train_floor ROWS DIM STEPS BATCH [STATE_FLOATS [PATH EVERY [WARM
**                   [IN_RECORD [CHECKPOINT_EVERY [PAGE_SIZE]]]]]]
**
** A `:memory:` database (or, with PATH, a fresh WAL file there with
** synchronous=NORMAL, a 400 MB page cache and a COMMIT and a passive
** checkpoint every EVERY steps, as bench_train.py runs embed) with
** T(id INTEGER PRIMARY KEY, vector BLOB) of ROWS rows of DIM float32
** (and, with STATE_FLOATS > 0, S(id INTEGER PRIMARY KEY, state BLOB) of
** that many floats per row, as adagrad and adam keep), one transaction,
** WARM (default 2) warm-up steps and then STEPS steps of BATCH ids drawn
** uniformly (a xorshift generator; ids sorted, as embed sorts a batch).
** For each id: move one sqlite3_blob handle to the row
** (sqlite3_blob_reopen), read the vector, add a constant gradient times
** -lr, write it back in place, and the same for its state row. No
** checking, no coalescing, no optimizer math beyond that one add: the b-tree
** seek, the copy out, the copy in and the page journal of each row, which
** any in-place write through SQLite's public API pays.
**
** IN_RECORD says where the state is (PATH ":memory:" and EVERY 0 keep a
** `:memory:` database):
**   0  S, a table of its own (as embed keeps it, T_state);
**   1  in T's BLOB: each row holds DIM + STATE_FLOATS floats, the state
**      after the weight, moved with it, one seek per row;
**   2  T(id, x, s): a second BLOB column of T's record, moved through a
**      second sqlite3_blob handle on T, all states of a step first, then
**      all weights, as embed's two-pass batch (the layout that README
**      "Performance" reports tried and not kept).
**
** With CHECKPOINT_EVERY K > 1 (a file only), wal_autocheckpoint is 0 and
** the checkpoint runs after every K-th COMMIT instead of after each, as
** bench_train.py --checkpoint-every K runs embed.
**
** With PAGE_SIZE, the new database has pages of that many bytes (SQLite's
** default is 4096).
**
** Prints one line: "floor_us_per_row CPU WALL" (process CPU time and wall
** time of the timed steps, their COMMITs included, / (STEPS x BATCH)).
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

static uint64_t floor_rng = 0x9E3779B97F4A7C15ULL;
static uint64_t floor_next(void) {
  floor_rng ^= floor_rng << 13;
  floor_rng ^= floor_rng >> 7;
  floor_rng ^= floor_rng << 17;
  return floor_rng;
}

static int floor_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

static void floor_check(int rc, sqlite3 *db, const char *what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE) {
    fprintf(stderr, "train_floor: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
  }
}

static void floor_fill(sqlite3 *db, const char *table, int64_t rows, int n) {
  sqlite3_stmt *ins;
  char sql[128];
  float *v = calloc((size_t)n, sizeof(float));
  int64_t i;
  int j;
  snprintf(sql, sizeof(sql), "CREATE TABLE %s(id INTEGER PRIMARY KEY, x BLOB)",
           table);
  floor_check(sqlite3_exec(db, sql, 0, 0, 0), db, "create");
  snprintf(sql, sizeof(sql), "INSERT INTO %s VALUES (?, ?)", table);
  floor_check(sqlite3_prepare_v2(db, sql, -1, &ins, 0), db, "prepare");
  for (i = 0; i < rows; i++) {
    for (j = 0; j < n; j++) v[j] = (float)((floor_next() >> 40) & 1023) / 1024;
    sqlite3_bind_int64(ins, 1, i);
    sqlite3_bind_blob(ins, 2, v, n * 4, SQLITE_STATIC);
    floor_check(sqlite3_step(ins), db, "insert");
    sqlite3_reset(ins);
  }
  sqlite3_finalize(ins);
  free(v);
}

/* One step of batch sorted ids over the blob handle on table.column. */
static void floor_step(sqlite3 *db, sqlite3_blob **blob, const char *table,
                       const char *column, const int64_t *ids, int batch,
                       float *row, int n) {
  int i, j;
  for (i = 0; i < batch; i++) {
    if (!*blob)
      floor_check(sqlite3_blob_open(db, "main", table, column, ids[i], 1, blob),
                  db, "blob_open");
    else
      floor_check(sqlite3_blob_reopen(*blob, ids[i]), db, "blob_reopen");
    floor_check(sqlite3_blob_read(*blob, row, n * 4, 0), db, "blob_read");
    for (j = 0; j < n; j++) row[j] += -0.01f * 0.5f;
    floor_check(sqlite3_blob_write(*blob, row, n * 4, 0), db, "blob_write");
  }
}

static double floor_wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  int64_t rows = argc > 1 ? atoll(argv[1]) : 100000;
  int dim = argc > 2 ? atoi(argv[2]) : 128;
  int steps = argc > 3 ? atoi(argv[3]) : 20;
  int batch = argc > 4 ? atoi(argv[4]) : 1024;
  int state = argc > 5 ? atoi(argv[5]) : 0;
  const char *path = argc > 6 ? argv[6] : ":memory:";
  int every = argc > 7 ? atoi(argv[7]) : 0;
  int warm = argc > 8 ? atoi(argv[8]) : 2;
  int where = argc > 9 && state > 0 ? atoi(argv[9]) : 0;
  int in_record = where == 1, in_column = where == 2;
  int ckpt_every = argc > 10 && atoi(argv[10]) > 1 ? atoi(argv[10]) : 1;
  int page_size = argc > 11 ? atoi(argv[11]) : 0;
  int commits = 0;
  double w0 = 0;
  sqlite3 *db;
  sqlite3_blob *vec = 0, *st = 0;
  int64_t *ids = malloc((size_t)batch * sizeof(int64_t));
  float *row = malloc((size_t)(dim + state) * sizeof(float));
  clock_t c0;
  int s, i;
  if (every > 0) {
    char side[1024];
    const char *suffix[] = {"", "-wal", "-shm"};
    for (i = 0; i < 3; i++) {
      snprintf(side, sizeof(side), "%s%s", path, suffix[i]);
      unlink(side);
    }
  }
  floor_check(sqlite3_open(path, &db), db, "open");
  if (page_size > 0) {
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA page_size=%d", page_size);
    floor_check(sqlite3_exec(db, pragma, 0, 0, 0), db, "page_size");
  }
  if (every > 0)
    floor_check(
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     " PRAGMA cache_size=-400000",
                     0, 0, 0),
        db, "pragma");
  if (every > 0 && ckpt_every > 1)
    floor_check(sqlite3_exec(db, "PRAGMA wal_autocheckpoint=0", 0, 0, 0), db,
                "pragma");
  floor_check(sqlite3_exec(db, "BEGIN", 0, 0, 0), db, "begin");
  floor_fill(db, "T", rows, in_record ? dim + state : dim);
  if (in_column) { /* every row's state, as after an epoch */
    sqlite3_stmt *set;
    float *zeros = calloc((size_t)state, sizeof(float));
    floor_check(sqlite3_exec(db, "ALTER TABLE T ADD COLUMN s BLOB", 0, 0, 0),
                db, "alter");
    floor_check(sqlite3_prepare_v2(db, "UPDATE T SET s = ?", -1, &set, 0), db,
                "prepare");
    sqlite3_bind_blob(set, 1, zeros, state * 4, SQLITE_STATIC);
    floor_check(sqlite3_step(set), db, "update");
    sqlite3_finalize(set);
    free(zeros);
  } else if (state > 0 && !in_record) {
    floor_fill(db, "S", rows, state);
  }
  floor_check(sqlite3_exec(db, "COMMIT; BEGIN", 0, 0, 0), db, "begin");
  c0 = 0;
  for (s = 0; s < warm + steps; s++) {
    if (s == warm) {
      c0 = clock();
      w0 = floor_wall();
    }
    if (every > 0 && s > 0 && s % every == 0) { /* the blob handles end too */
      sqlite3_blob_close(vec);
      sqlite3_blob_close(st);
      vec = st = 0;
      commits++;
      floor_check(
          sqlite3_exec(db,
                       commits % ckpt_every == 0
                           ? "COMMIT; PRAGMA wal_checkpoint(PASSIVE); BEGIN"
                           : "COMMIT; BEGIN",
                       0, 0, 0),
          db, "commit");
    }
    for (i = 0; i < batch; i++)
      ids[i] = (int64_t)(floor_next() % (uint64_t)rows);
    qsort(ids, (size_t)batch, sizeof(int64_t), floor_cmp);
    if (in_column) floor_step(db, &st, "T", "s", ids, batch, row, state);
    floor_step(db, &vec, "T", "x", ids, batch, row,
               in_record ? dim + state : dim);
    if (state > 0 && !in_record && !in_column)
      floor_step(db, &st, "S", "x", ids, batch, row, state);
  }
  sqlite3_blob_close(vec);
  sqlite3_blob_close(st);
  floor_check(sqlite3_exec(db, "COMMIT", 0, 0, 0), db, "commit");
  printf(
      "floor_us_per_row %.3f %.3f\n",
      (double)(clock() - c0) / CLOCKS_PER_SEC * 1e6 / ((double)steps * batch),
      (floor_wall() - w0) * 1e6 / ((double)steps * batch));
  sqlite3_close(db);
  free(ids);
  free(row);
  return 0;
}
