/*
** fuzz_knn.c - libFuzzer harness for similarity search and the other query
** plans: MATCH with k, LIMIT/OFFSET, id filters (=, IN, ranges, subqueries),
** joins, repeated and contradictory constraints, on tables with each
** metric, with and without the search snapshot, with an index=ivf (nprobe), in
** and out of a write transaction (the table-scan path). Constraint values and
** query vectors come from the input (fuzz_common.h encodes them).
**
** Input: up to 3 rows inserted with input vectors (zero, huge, odd
** lengths), then a template number, a table number, a transaction flag and
** the template's parameters. Beyond "no crash, no sanitizer report": a
** plain k-nearest query returns rows ascending by (distance, id), no id
** twice, no NaN distance, and never more than k rows.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "embed.h"
#include "fuzz_common.h"

static const char *const TABLES[] = {"tc", "tl", "td", "tn", "ti"};

/* %1$s is the table. ordered: a plain KNN whose output order is checked;
** k_param: the 1-based parameter that is k (0: none). */
static const struct {
  const char *sql;
  int ordered, k_param;
} TEMPLATES[] = {
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ?", 1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND id IN "
     "(?, ?, ?)",
     1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND id "
     "BETWEEN ? AND ?",
     1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND id > ? "
     "AND id <= ?",
     1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? ORDER BY distance "
     "LIMIT ?",
     1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? ORDER BY distance "
     "LIMIT ? OFFSET ?",
     1, 0},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND id IN "
     "(SELECT value FROM json_each(?))",
     1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? ORDER BY id "
     "DESC",
     0, 0},
    {"SELECT a.id, b.id, a.distance FROM %1$s a JOIN %1$s b ON b.id = a.id + ? "
     "WHERE a.vector MATCH ? AND a.k = ?",
     0, 0},
    {"SELECT count(*) FROM %1$s WHERE vector MATCH ? AND k = ? AND distance < "
     "?",
     0, 0},
    {"SELECT id, vector FROM %1$s WHERE id = ?", 0, 0},
    {"SELECT id FROM %1$s WHERE id IN (?, ?, ?) ORDER BY id DESC", 0, 0},
    {"SELECT id FROM %1$s WHERE id >= ? AND id < ? ORDER BY id DESC LIMIT ? "
     "OFFSET ?",
     0, 0},
    {"SELECT id, distance, k FROM %1$s WHERE k = ? AND vector MATCH ?", 0, 0},
    {"SELECT id FROM %1$s WHERE vector MATCH ? AND k = ? AND k = ?", 0, 0},
    {"SELECT id FROM %1$s WHERE vector MATCH ? AND vector MATCH ? AND k = ?", 0,
     0},
    {"SELECT * FROM %1$s WHERE distance = ? AND k = ?", 0, 0},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND id IN "
     "(SELECT id FROM %1$s WHERE vector MATCH ? AND k = ?)",
     0, 0},
    {"SELECT id FROM %1$s WHERE vector MATCH (SELECT vector FROM %1$s WHERE "
     "id = ?) AND k = ? AND id != ?",
     0, 0},
    {"SELECT e.id, e.distance FROM (SELECT ? AS q) JOIN %1$s e WHERE "
     "e.vector MATCH q AND e.k = ?",
     0, 0},
    {"SELECT id FROM %1$s WHERE vector MATCH ? AND k = ? AND id IN (?, ?) AND "
     "id BETWEEN ? AND ?",
     1, 2},
    {"UPDATE %1$s SET vector = ? WHERE id IN (SELECT id FROM %1$s WHERE "
     "vector MATCH ? AND k = ?)",
     0, 0},
    {"DELETE FROM %1$s WHERE id IN (SELECT id FROM %1$s WHERE vector MATCH ? "
     "AND k = ?)",
     0, 0},
    /* the probe count of an index=ivf table (ignored by the others) */
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND nprobe "
     "= ?",
     1, 2},
    {"SELECT id, distance FROM %1$s WHERE vector MATCH ? AND k = ? AND nprobe "
     "= ? AND id BETWEEN ? AND ?",
     1, 2},
    {"SELECT id FROM %1$s WHERE vector MATCH ? AND nprobe = ? ORDER BY "
     "distance LIMIT ?",
     0, 0},
    {"INSERT INTO %1$s(%1$s) VALUES ('build-index')", 0, 0},
    {"SELECT nprobe, k FROM %1$s WHERE vector MATCH ? AND k = ? AND nprobe = ? "
     "AND nprobe = ?",
     0, 0},
};
#define N_TEMPLATES (sizeof(TEMPLATES) / sizeof(TEMPLATES[0]))

static const char SETUP[] =
    "CREATE VIRTUAL TABLE tc USING embedding(dim=4, num_embeddings=40, seed=1);"
    "CREATE VIRTUAL TABLE tl USING embedding(dim=4, num_embeddings=40, seed=2,"
    " metric=l2);"
    "CREATE VIRTUAL TABLE td USING embedding(dim=4, num_embeddings=40, seed=3,"
    " metric=dot, init=uniform);"
    "CREATE VIRTUAL TABLE tn USING embedding(dim=4, num_embeddings=40, seed=4,"
    " search_cache=0, padding_idx=0);"
    "CREATE VIRTUAL TABLE ti USING embedding(dim=4, num_embeddings=40, seed=5,"
    " index=ivf, nlist=5, oversample=2);"
    "INSERT INTO ti(ti) VALUES ('build-index');";

static int initialized;

/* Run a plain KNN query and check its output order. */
static void run_checked(sqlite3 *db, const char *sql, int k_param,
                        fuzz_in *in) {
  sqlite3_stmt *stmt = 0;
  sqlite3_int64 prev_id = 0, k = -1, n = 0;
  double prev_d = 0;
  int i;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, 0) != SQLITE_OK) return;
  for (i = 1; i <= sqlite3_bind_parameter_count(stmt); i++) {
    if (i == k_param) { /* a known k, so that the row count is checked */
      k = (sqlite3_int64)(fuzz_byte(in) % 50);
      sqlite3_bind_int64(stmt, i, k);
    } else {
      fuzz_bind(in, stmt, i);
    }
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    sqlite3_int64 id = sqlite3_column_int64(stmt, 0);
    double d = sqlite3_column_double(stmt, 1);
    if (isnan(d)) {
      fprintf(stderr, "fuzz_knn: NaN distance for id %lld: %s\n", (long long)id,
              sql);
      abort();
    }
    if (n > 0 && (d < prev_d || (d == prev_d && id <= prev_id))) {
      fprintf(stderr,
              "fuzz_knn: out of order: (%.17g, %lld) after (%.17g, %lld): %s\n",
              d, (long long)id, prev_d, (long long)prev_id, sql);
      abort();
    }
    prev_d = d;
    prev_id = id;
    n++;
    if (k >= 0 && n > k) {
      fprintf(stderr, "fuzz_knn: more than k = %lld rows: %s\n", (long long)k,
              sql);
      abort();
    }
  }
  sqlite3_finalize(stmt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  sqlite3 *db = 0;
  char sql[600];
  unsigned t, table, txn, inserts, i;
  if (!initialized) {
    sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
    initialized = 1;
  }
  if (size > 100000) return 0;
  db = fuzz_open(SETUP);
  if (!db) {
    fprintf(stderr, "fuzz_knn: setup failed: %s\n", sqlite3_errmsg(db));
    abort();
  }
  table = fuzz_byte(&in) % (int)(sizeof(TABLES) / sizeof(TABLES[0]));
  inserts = fuzz_byte(&in) % 4;
  for (i = 0; i < inserts; i++) {
    snprintf(sql, sizeof(sql),
             "INSERT OR REPLACE INTO %s(id, vector) VALUES (?, ?)",
             TABLES[table]);
    fuzz_run(db, sql, &in);
  }
  t = fuzz_byte(&in) % N_TEMPLATES;
  txn = fuzz_byte(&in) % 3;
  if (txn) {
    sqlite3_exec(db, "BEGIN", 0, 0, 0);
    if (txn == 2) { /* an uncommitted change the scan path must see */
      snprintf(sql, sizeof(sql),
               "UPDATE %s SET vector = embed_scale(vector, -1) WHERE id = 5",
               TABLES[table]);
      sqlite3_exec(db, sql, 0, 0, 0);
    }
  }
  snprintf(sql, sizeof(sql), TEMPLATES[t].sql, TABLES[table]);
  if (TEMPLATES[t].ordered)
    run_checked(db, sql, TEMPLATES[t].k_param, &in);
  else
    fuzz_run(db, sql, &in);
  if (txn) sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
  if (sqlite3_close(db) != SQLITE_OK) {
    fprintf(stderr, "fuzz_knn: sqlite3_close failed (a statement leaked)\n");
    abort();
  }
  return 0;
}
