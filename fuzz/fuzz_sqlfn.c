/*
** fuzz_sqlfn.c - libFuzzer harness for the SQL function surface: every
** embed_* scalar and aggregate, embed_lookup, embed_update and
** embed_optimizer_state and embed_optimizer_reset, called with arbitrary
** arguments (fuzz_common.h encodes them) on a fresh database holding an SGD
** table `t` (dim 4, rows 0..9, padding_idx 0, max_norm 2) and an Adam table
** `a` (dim 3, each stored row its weight then m and v: 9 floats).
**
** Input: one byte picks the function, then its arguments. Aggregates get
** up to 8 rows of arguments; a second byte runs the call in autocommit
** mode, in a transaction (committed or rolled back), or bound to a row
** (xFindFunction). Beyond "no crash, no sanitizer report": every stored
** vector keeps its length after any call, and the connection closes (no
** statement leaked).
*/
#include <stdio.h>
#include <stdlib.h>

#include "embed.h"
#include "fuzz_common.h"

static const struct {
  const char *name;
  int nArg;
  int aggregate;
} FNS[] = {
    {"embed_version", 0, 0},
    {"embed_vector", 1, 0},
    {"embed_json", 1, 0},
    {"embed_dim", 1, 0},
    {"embed_norm", 1, 0},
    {"embed_normalize", 1, 0},
    {"embed_scale", 2, 0},
    {"embed_dot", 2, 0},
    {"embed_cosine", 2, 0},
    {"embed_l2", 2, 0},
    {"embed_add", 2, 0},
    {"embed_sub", 2, 0},
    {"embed_sigmoid", 1, 0},
    {"embed_log_sigmoid", 1, 0},
    {"embed_sum", 1, 1},
    {"embed_sum", 2, 1},
    {"embed_mean", 1, 1},
    {"embed_max", 1, 1},
    {"embed_stack", 1, 1},
    {"embed_lookup", 1, 0},
    {"embed_lookup", 2, 0},
    {"embed_update", 3, 0},
    {"embed_update", 4, 0},
    {"embed_optimizer_state", 1, 0},
    {"embed_optimizer_state", 2, 0},
    {"embed_optimizer_reset", 0, 0},
    {"embed_optimizer_reset", 1, 0},
};
#define N_FNS (sizeof(FNS) / sizeof(FNS[0]))

static const char SETUP[] =
    "CREATE VIRTUAL TABLE t USING embedding(dim=4, num_embeddings=10, seed=1,"
    " padding_idx=0, max_norm=2);"
    "CREATE VIRTUAL TABLE a USING embedding(dim=3, num_embeddings=5, seed=2,"
    " optimizer=adam);"
    "CREATE TABLE args(a, b);";

static int initialized;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  sqlite3 *db = 0;
  char sql[300];
  unsigned which;
  int i;
  if (!initialized) {
    sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
    initialized = 1;
  }
  if (size > 100000) return 0;
  db = fuzz_open(SETUP);
  if (!db) {
    fprintf(stderr, "fuzz_sqlfn: setup failed: %s\n", sqlite3_errmsg(db));
    abort();
  }
  which = fuzz_byte(&in) % N_FNS;
  if (FNS[which].aggregate) {
    int rows = (int)(fuzz_byte(&in) % 9);
    for (i = 0; i < rows; i++)
      fuzz_run(db, "INSERT INTO args(a, b) VALUES (?, ?)", &in);
    snprintf(sql, sizeof(sql), "SELECT %s(a%s) FROM args", FNS[which].name,
             FNS[which].nArg == 2 ? ", b" : "");
  } else {
    int n = snprintf(sql, sizeof(sql), "SELECT %s(", FNS[which].name);
    for (i = 0; i < FNS[which].nArg; i++)
      n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s?", i ? ", " : "");
    snprintf(sql + n, sizeof(sql) - (size_t)n, ")");
  }
  /* sometimes inside a transaction, sometimes bound to a row (xFindFunction) */
  switch (fuzz_byte(&in) % 3) {
    case 0:
      fuzz_run(db, sql, &in);
      break;
    case 1:
      sqlite3_exec(db, "BEGIN", 0, 0, 0);
      fuzz_run(db, sql, &in);
      sqlite3_exec(db, fuzz_byte(&in) % 2 ? "COMMIT" : "ROLLBACK", 0, 0, 0);
      break;
    default:
      if (!FNS[which].aggregate && FNS[which].nArg >= 1) {
        /* the first argument a column of t: bound forms */
        int n = snprintf(sql, sizeof(sql), "SELECT %s(id", FNS[which].name);
        for (i = 1; i < FNS[which].nArg; i++)
          n += snprintf(sql + n, sizeof(sql) - (size_t)n, ", ?");
        snprintf(sql + n, sizeof(sql) - (size_t)n, ") FROM t WHERE id = ?");
      }
      fuzz_run(db, sql, &in);
      break;
  }
  /* the tables are still whole */
  {
    sqlite3_stmt *stmt = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT (SELECT count(*) FROM t_vectors WHERE "
                           "length(vector) != 16) + (SELECT count(*) FROM "
                           "a_vectors WHERE length(vector) != 36)",
                           -1, &stmt, 0) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int(stmt, 0) != 0) {
      fprintf(stderr, "fuzz_sqlfn: a stored vector changed length\n");
      abort();
    }
    sqlite3_finalize(stmt);
  }
  if (sqlite3_close(db) != SQLITE_OK) {
    fprintf(stderr, "fuzz_sqlfn: sqlite3_close failed (a statement leaked)\n");
    abort();
  }
  return 0;
}
