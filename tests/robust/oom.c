/*
** oom.c - the out-of-memory sweep: embed must never crash, leak or lose a
** row when an allocation fails.
**
**     make build/oom && build/oom     every allocation point (minutes)
**     build/oom-asan --all            the same under ASan/UBSan, running the
**                                     whole workload after each fault
**     build/oom --stride 7            every 7th allocation point
**     build/oom --shard 1/2           every other point, from the second
**                                     (make test-oom runs the shards of
**                                     a 2-core machine side by side)
**     build/oom --at N -v             one point, every finding in full (and
**                                     the rows a half-done step changed)
**
** How: SQLite (linked statically, so the allocator can be replaced before
** sqlite3_initialize) gets an allocator, installed with
** sqlite3_config(SQLITE_CONFIG_MALLOC), that forwards to the system one but
** fails allocation number N. A workload that touches every SQL function,
** every table operation, search, training and command (WORKLOAD below)
** runs once without faults to count its allocations and record, for each
** step, its output and a hash of the database content after it. Then, for
** every N, the workload runs again on a fresh :memory: database with
** allocation N failing (and once more with every allocation from N on
** failing: the persistent variant). After the faulty step, 5 more steps run
** (--all: all of them), to show that the connection still works. For each
** run:
**
**   - no crash (ASan/UBSan in the sanitizer build; a signal handler names
**     the run otherwise);
**   - the step in which allocation N failed returns an error, or, when
**     SQLite absorbed the failure (a "benign" allocation, or a failure the
**     code legitimately recovers from), the same output as the fault-free
**     run;
**   - after a failed step the database content is what it was before the
**     step (or before the enclosing transaction, when SQLite rolled it back):
**     nothing half-done; and no transaction is left open that the
**     application did not begin;
**   - sqlite3_close() returns SQLITE_OK, and sqlite3_memory_used() is back
**     to its value before sqlite3_open().
**
** Findings are grouped by step and kind, each with the first allocation
** point that shows it. The last line is "oom: N allocation points tried, F
** failures" (F: runs with a finding); the exit status is 1 when F > 0.
*/
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed.h"
#include "fault_alloc.h"
#include "harness.h"

/* ------------------------------------------------------------ allocator */

/* fault_alloc.h: real_mem, F, fault_methods */

/* ------------------------------------------------------------- workload */

/* One step is one SQL text (one or more statements), run to completion.
** Each touches part of the surface; errors that the fault-free run also
** gets (the deliberate error cases) are part of the expected output. */
static const char *WORKLOAD[] = {
    /* a table, and the unnamed forms while it is the only one */
    "CREATE VIRTUAL TABLE t USING embedding(dim=4, num_embeddings=8, seed=7)",
    "SELECT embed_json(embed_lookup(3))",
    "SELECT embed_update(2, '[1,1,1,1]', 0.5)",
    "CREATE VIRTUAL TABLE a USING embedding(dim=4, num_embeddings=6, seed=9,"
    " optimizer=adam, max_norm=2.0)",
    "CREATE TABLE doc(pos INTEGER PRIMARY KEY, token_id INTEGER)",
    "INSERT INTO doc(token_id) VALUES (3), (1), (4), (1), (5)",
    /* pure functions */
    "SELECT embed_version(), embed_vector('[1, 2.5, -3e-2, 4]'),"
    " embed_json(X'0000803F000000400000404000008040'), embed_dim('[1,2]'),"
    " embed_norm('[3,4]'), embed_dot('[1,2]', '[3,4]'),"
    " embed_cosine('[1,0]', X'0000803F0000803F'), embed_l2('[0,0]', '[3,4]')",
    "SELECT embed_add('[1,2]', '[3,4]'), embed_sub('[1,2]', '[3,4]'),"
    " embed_scale('[1,2]', 2.5), embed_normalize('[3,4]'),"
    " embed_sigmoid(0.5), embed_log_sigmoid(-2), embed_json(embed_vector("
    "embed_json(embed_normalize('[1,2,3,4,5,6,7,8,9,10,11,12,13]'))))",
    "SELECT embed_cosine('[1,2]', '[1,2,3]')", /* an error, named */
    /* aggregates */
    "SELECT embed_sum(vector), embed_sum(vector, id), embed_mean(vector),"
    " embed_max(vector), embed_stack(vector) FROM t",
    "SELECT id % 3, embed_json(embed_mean(vector)), length(embed_stack(vector))"
    " FROM t GROUP BY 1 ORDER BY 1",
    /* writes */
    "INSERT INTO t(id) VALUES (8)",
    "INSERT INTO t(id, vector) VALUES (9, '[1, 2, 3, 4]')",
    "INSERT INTO t(vector) VALUES (X'0000803F000000400000404000008040')",
    "INSERT OR REPLACE INTO t(id, vector) VALUES (9, '[4, 3, 2, 1]')",
    "INSERT OR IGNORE INTO t(id, vector) VALUES (9, '[0, 0, 0, 1]')",
    "INSERT INTO t(id, vector) VALUES (9, '[0, 0, 0, 1]')", /* UNIQUE */
    "UPDATE t SET vector = embed_scale(vector, 2) WHERE id = 9",
    "UPDATE t SET id = 20 WHERE id = 9",
    "DELETE FROM t WHERE id = 8",
    "INSERT INTO t(id, vector) SELECT 100 + pos, embed_scale(e.vector, pos)"
    " FROM doc JOIN t e ON e.id = doc.token_id",
    /* reads */
    "SELECT id, vector FROM t WHERE id = 3",
    "SELECT id, embed_norm(vector) FROM t WHERE id IN (1, 3, 5, 77)",
    "SELECT id FROM t WHERE id IN (SELECT token_id FROM doc)",
    "SELECT id, vector FROM t WHERE id BETWEEN 2 AND 5 ORDER BY id DESC",
    "SELECT id FROM t WHERE id > 4 AND id < 102",
    "SELECT d.pos, e.vector FROM doc d JOIN t e ON e.id = d.token_id",
    "SELECT count(*), sum(length(vector)) FROM t",
    /* search: the snapshot, filters, LIMIT, then inside a transaction (the
    ** table scan) and after a change */
    "SELECT id, distance FROM t WHERE vector MATCH '[1, 0, 0, 0]' AND k = 3",
    "SELECT id, distance, vector FROM t WHERE vector MATCH '[0, 1, 0, 0]'"
    " AND k = 4 AND id IN (SELECT token_id FROM doc)",
    "SELECT id, distance FROM t WHERE vector MATCH '[1, 1, 1, 1]'"
    " ORDER BY distance LIMIT 2",
    "SELECT id FROM t WHERE vector MATCH '[1, 1, 1, 1]' AND k = 2"
    " AND id BETWEEN 1 AND 6",
    "SELECT id, distance FROM a WHERE vector MATCH '[1, 1, 0, 0]' AND k = 3",
    "BEGIN",
    "UPDATE t SET vector = '[9, 9, 9, 9]' WHERE id = 4",
    "SELECT id, distance FROM t WHERE vector MATCH '[1, 1, 1, 1]' AND k = 3",
    "COMMIT",
    "SELECT id, distance FROM t WHERE vector MATCH '[1, 1, 1, 1]' AND k = 3",
    /* approximate search: build-index, the index loaded, kept by writes */
    "CREATE VIRTUAL TABLE v USING embedding(dim=4, num_embeddings=40, seed=3,"
    " index=ivf, nlist=4, metric=l2)",
    "INSERT INTO v(v) VALUES ('build-index')",
    "SELECT id, distance FROM v WHERE vector MATCH '[1, 0, 0, 0]' AND k = 3",
    "SELECT id FROM v WHERE vector MATCH '[0, 1, 0, 0]' AND k = 2"
    " AND nprobe = 1 AND id > 5",
    "UPDATE v SET vector = '[1, 0, 0, 0]' WHERE id = 7",
    "SELECT embed_update('v', '[1, 2, 3]', '[[1,0,0,0],[0,1,0,0],[0,0,1,0]]',"
    " 0.5)",
    "INSERT INTO v(id, vector) VALUES (50, '[0, 0, 1, 0]')",
    "SELECT id, distance FROM v WHERE vector MATCH '[1, 0, 0, 0]' AND k = 3",
    "INSERT INTO v(v) VALUES ('integrity-check')",
    /* training: lookup, SGD single/batch/bound, Adam, transactions */
    "SELECT embed_lookup('t', 3), embed_lookup('t', '[3, 1, 3]'),"
    " embed_lookup('a', 2)",
    "SELECT embed_lookup(id) FROM t WHERE id IN (1, 2)",
    "SELECT embed_update('t', 3, '[0.5, -0.5, 1, 0]', 0.1)",
    "SELECT embed_update('t', '[1, 2, 1]', '[[1,0,0,0],[0,1,0,0],[0,0,1,0]]',"
    " 0.5)",
    "SELECT embed_update('t', '[5, 6]', X'0000803F0000803F0000803F0000803F"
    "00000040000000400000004000000040', 1)",
    "SELECT embed_update(id, '[1, 1, 1, 1]', 0.25) FROM t WHERE id = 6",
    "SELECT embed_update('t', '[1, 999]', '[[1,0,0,0],[0,1,0,0]]', 0.5)",
    "SELECT embed_update('a', 1, '[1, 2, 3, 4]', 0.01)",
    "SELECT embed_update('a', '[1, 2, 3]', '[[1,1,1,1],[2,2,2,2],[3,3,3,3]]',"
    " 0.01)",
    "BEGIN",
    "SELECT embed_update('a', '[2, 3, 4, 2]',"
    " '[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]', 0.01)",
    "SELECT embed_update('t', '[0, 1, 2, 3]',"
    " '[[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]', 0.5)",
    "COMMIT",
    /* the batch before found most of its states stored: this one reads and
    ** rewrites each state in place (id 5's is new) */
    "SELECT embed_update('a', '[1, 3, 4, 5]',"
    " '[[1,1,0,0],[0,1,1,0],[0,0,1,1],[1,0,0,1]]', 0.01)",
    "BEGIN",
    "SELECT embed_update('t', '[4, 5]', '[[1,0,0,0],[0,1,0,0]]', 0.5)",
    "ROLLBACK",
    /* live search: the copy moved forward in place by the steps above, a
    ** derived version after 70 inserts, a savepoint rolled back */
    "SELECT id, distance FROM t WHERE vector MATCH '[1, 0, 1, 0]' AND k = 3",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE"
    " x < 70) INSERT INTO t(id, vector) SELECT 200 + x,"
    " embed_scale('[1, 2, 3, 4]', x) FROM c",
    "SELECT id, distance FROM t WHERE vector MATCH '[0, 0, 1, 1]' AND k = 3",
    /* the insert buffer inside a transaction: written at the statement's
    ** end, read back by the next statement */
    "BEGIN",
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE"
    " x < 70) INSERT INTO t(id, vector) SELECT 400 + x,"
    " embed_scale('[4, 3, 2, 1]', x) FROM c",
    "SELECT count(*), sum(length(vector)) FROM t_vectors WHERE id > 400",
    "COMMIT",
    "BEGIN",
    "SAVEPOINT s",
    "UPDATE t SET vector = '[5, 5, 5, 5]' WHERE id = 3",
    "ROLLBACK TO s",
    "DELETE FROM t WHERE id = 201",
    "SELECT id FROM t WHERE vector MATCH '[5, 5, 5, 5]' AND k = 2",
    "COMMIT",
    "SELECT embed_json(embed_lookup('a', '[1, 2]')), count(*) FROM a_state",
    /* the command column: the integrity check, reset-optimizer, an error */
    "INSERT INTO a(a) VALUES ('integrity-check')",
    "INSERT INTO t(t) VALUES ('integrity-check')",
    "INSERT INTO t(t) VALUES ('optimize')",
    "BEGIN",
    "INSERT INTO a(a) VALUES ('reset-optimizer')",
    "ROLLBACK",
    "SELECT embed_optimizer_reset('a')",
    "DELETE FROM a WHERE id = 1",
    "UPDATE a SET id = 40 WHERE id = 2",
    /* schema changes */
    "ALTER TABLE t RENAME TO t2",
    "SELECT embed_json(embed_lookup('t2', 3)), count(*) FROM t2",
    "INSERT INTO t2(t2) VALUES ('integrity-check')",
    "SELECT embed_update('t2', 3, '[1, 1, 1, 1]', 0.5)",
    "DROP TABLE a",
    "CREATE VIRTUAL TABLE b USING embedding(dim=3, num_embeddings=3,"
    " init=uniform, seed=1, optimizer=adagrad, metric=l2)",
    "SELECT embed_update('b', '[0, 2]', '[[1,1,1],[2,2,2]]', 0.1)",
    "SELECT embed_json(embed_lookup('b', '[0, 2]'))",
    "INSERT INTO b(b) VALUES ('integrity-check')",
    "INSERT INTO b(b) VALUES ('reset-optimizer')",
    /* files (@FILE@: a scratch file, replaced at start) */
    "SELECT embed_save('@FILE@', 'word2vec', 'tok' || id, vector) FROM t2"
    " WHERE id < 6",
    "SELECT n, token, vector FROM embed_file('@FILE@')",
    "SELECT count(*) FROM embed_file('@FILE@', 'glove') WHERE n > 2",
    "SELECT embed_save('@FILE@.bin', 'word2vec-binary', 'w' || id, vector)"
    " FROM t2 WHERE id < 4",
    "INSERT INTO t2(id, vector) SELECT 200 + n, vector FROM"
    " embed_file('@FILE@.bin')",
    "DROP TABLE t2",
};
#define N_STEPS ((int)(sizeof(WORKLOAD) / sizeof(WORKLOAD[0])))

static uint64_t hash_row(uint64_t h, sqlite3_stmt *stmt) {
  int i, n = sqlite3_column_count(stmt);
  for (i = 0; i < n; i++) {
    int type = sqlite3_column_type(stmt, i);
    h = fnv(h, &type, sizeof(type));
    if (type == SQLITE_INTEGER) {
      sqlite3_int64 v = sqlite3_column_int64(stmt, i);
      h = fnv(h, &v, sizeof(v));
    } else if (type == SQLITE_FLOAT) {
      double v = sqlite3_column_double(stmt, i);
      h = fnv(h, &v, sizeof(v));
    } else if (type != SQLITE_NULL) {
      const void *p = type == SQLITE_BLOB ? sqlite3_column_blob(stmt, i)
                                          : sqlite3_column_text(stmt, i);
      h = fnv(h, p, (size_t)sqlite3_column_bytes(stmt, i));
    }
  }
  return h;
}

typedef struct step_result {
  int rc;          /* SQLITE_OK, or the first error */
  uint64_t output; /* hash of the rows (and error text) */
  char err[200];
} step_result;

/* Run one step; its output hash covers every row and any error message. */
static void run_step(sqlite3 *db, const char *sql, step_result *out) {
  const char *tail = sql;
  uint64_t h = FNV0;
  int rc = SQLITE_OK;
  out->err[0] = 0;
  while (rc == SQLITE_OK && tail && *tail) {
    sqlite3_stmt *stmt = 0;
    rc = sqlite3_prepare_v2(db, tail, -1, &stmt, &tail);
    if (rc != SQLITE_OK) break;
    if (!stmt) break;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) h = hash_row(h, stmt);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(stmt);
  }
  if (rc != SQLITE_OK) {
    snprintf(out->err, sizeof(out->err), "%s", sqlite3_errmsg(db));
    h = fnv(h, out->err, strlen(out->err));
  }
  out->rc = rc;
  out->output = h;
}

/* A hash of every ordinary table's rows (the shadow tables and doc), read
** with the fault injection paused. */
static int hash_content(sqlite3 *db, uint64_t *out) {
  sqlite3_stmt *names = 0;
  uint64_t h = FNV0;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT name FROM sqlite_schema WHERE type = "
                              "'table' AND sql NOT LIKE 'CREATE VIRTUAL%' "
                              "ORDER BY name",
                              -1, &names, 0);
  while (rc == SQLITE_OK && sqlite3_step(names) == SQLITE_ROW) {
    sqlite3_stmt *rows = 0;
    const char *name = (const char *)sqlite3_column_text(names, 0);
    char *sql = content_sql(name);
    h = fnv(h, name, strlen(name));
    rc = sql ? sqlite3_prepare_v2(db, sql, -1, &rows, 0) : SQLITE_NOMEM;
    sqlite3_free(sql);
    while (rc == SQLITE_OK && (rc = sqlite3_step(rows)) == SQLITE_ROW) {
      h = hash_row(h, rows);
      rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(rows);
  }
  sqlite3_finalize(names);
  *out = h;
  return rc;
}

/* Every ordinary table as text, one row a line (for -v diagnosis of a
** half-done step); the caller frees it with sqlite3_free. */
static char *content_text(sqlite3 *db) {
  sqlite3_stmt *names = 0;
  sqlite3_str *out = sqlite3_str_new(db);
  sqlite3_prepare_v2(db,
                     "SELECT name FROM sqlite_schema WHERE type = 'table' AND "
                     "sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY name",
                     -1, &names, 0);
  while (names && sqlite3_step(names) == SQLITE_ROW) {
    sqlite3_stmt *rows = 0;
    char *sql = content_sql((const char *)sqlite3_column_text(names, 0));
    sqlite3_prepare_v2(db, sql, -1, &rows, 0);
    sqlite3_free(sql);
    while (rows && sqlite3_step(rows) == SQLITE_ROW) {
      int i;
      sqlite3_str_appendf(out, "   %s:", sqlite3_column_text(names, 0));
      for (i = 0; i < sqlite3_column_count(rows); i++) {
        if (sqlite3_column_type(rows, i) == SQLITE_BLOB) {
          const unsigned char *b = sqlite3_column_blob(rows, i);
          int j, nb = sqlite3_column_bytes(rows, i);
          sqlite3_str_appendf(out, " x'");
          for (j = 0; j < nb; j++) sqlite3_str_appendf(out, "%02x", b[j]);
          sqlite3_str_appendf(out, "'");
        } else {
          const char *t = (const char *)sqlite3_column_text(rows, i);
          sqlite3_str_appendf(out, " %s", t ? t : "NULL");
        }
      }
      sqlite3_str_appendf(out, "\n");
    }
    sqlite3_finalize(rows);
  }
  sqlite3_finalize(names);
  return sqlite3_str_finish(out);
}

/* Print the lines of a that are not in b, prefixed with tag. */
static void print_missing_lines(const char *a, const char *b, const char *tag) {
  while (a && *a) {
    const char *eol = strchr(a, '\n');
    size_t n = eol ? (size_t)(eol - a + 1) : strlen(a);
    const char *p = b;
    int found = 0;
    while (p && *p && !found) {
      const char *e = strchr(p, '\n');
      size_t m = e ? (size_t)(e - p + 1) : strlen(p);
      found = m == n && memcmp(a, p, n) == 0;
      p += m;
    }
    if (!found) fprintf(stderr, "%s%.*s", tag, (int)n, a);
    a += n;
  }
}

/* ------------------------------------------------------------- the sweep */

static step_result ref[N_STEPS];
static uint64_t ref_content[N_STEPS + 1]; /* [s]: before step s */
static int ref_in_txn[N_STEPS + 1];       /* [s]: a txn is open before s */
static int ref_txn_start[N_STEPS + 1];    /* [s]: the step that began it */
static long ref_allocs_before[N_STEPS + 1];
static char *ref_text[N_STEPS + 1]; /* -v only: content before step s */
static int verbose;
static int after_fault = 5; /* steps run after the faulty one (--all: all) */
static long absorbed, n_errors;
static const char *current_mode = "reference";
static long current_n;
static int current_step = -1;

static void on_signal(int sig) {
  char buf[200];
  int n = snprintf(buf, sizeof(buf),
                   "oom: CRASH (signal %d) in %s run, allocation %ld failing, "
                   "step %d\n",
                   sig, current_mode, current_n, current_step);
  if (n > 0) (void)!write(2, buf, (size_t)n);
  signal(sig, SIG_DFL);
  raise(sig);
}

static long run_id; /* the runs, numbered from 1 */

/* A finding of this run, grouped by (step, what) in harness.h's table. */
static void finding(const char *what, int step, const char *detail) {
  char label[HARNESS_TEXT], first[HARNESS_TEXT];
  snprintf(label, sizeof(label), "step %d: %s", step, what);
  snprintf(first, sizeof(first), "%s run, allocation %ld%s%s", current_mode,
           current_n, detail && detail[0] ? "; " : "", detail ? detail : "");
  harness_finding(run_id, label, first,
                  step >= 0 ? WORKLOAD[step] : "(open/close)");
  if (verbose)
    fprintf(stderr,
            "oom: FAIL %s run, allocation %ld, step %d: %s%s%s\n   %s\n",
            current_mode, current_n, step, what, detail ? ": " : "",
            detail ? detail : "", step >= 0 ? WORKLOAD[step] : "");
}

/* One run of the workload: reference when fail_at == 0. */
static void run_workload(long fail_at, int persist, int is_reference) {
  sqlite3 *db = 0;
  sqlite3_int64 before;
  int s, rc, fault_step = -1;
  step_result res;

  before = sqlite3_memory_used();
  run_id++;
  memset(&F, 0, sizeof(F));
  F.fail_at = fail_at;
  F.persist = persist;
  F.counting = 1;
  current_step = -1;
  rc = sqlite3_open(":memory:", &db);
  F.counting = 0;
  if (rc != SQLITE_OK) {
    if (is_reference) {
      fprintf(stderr, "oom: cannot open: %s\n", sqlite3_errmsg(db));
      exit(2);
    }
    if (!F.fired)
      finding("sqlite3_open failed without a fault", -1, 0);
    else
      n_errors++;
    goto close;
  }
  if (is_reference) {
    ref_allocs_before[0] = F.count;
    if (hash_content(db, &ref_content[0])) exit(2);
  }
  for (s = 0; s < N_STEPS; s++) {
    long fired_before = F.fired;
    /* after a fault, AFTER_FAULT more steps show the connection still
    ** works (or fails cleanly); the rest would repeat the reference */
    if (fault_step >= 0 && s > fault_step + after_fault) break;
    uint64_t content;
    int in_txn_before = !sqlite3_get_autocommit(db);
    current_step = s;
    F.counting = 1;
    run_step(db, WORKLOAD[s], is_reference ? &ref[s] : &res);
    F.counting = 0;
    if (is_reference) {
      ref_allocs_before[s + 1] = F.count;
      ref_in_txn[s + 1] = !sqlite3_get_autocommit(db);
      ref_txn_start[s + 1] =
          ref_in_txn[s + 1] ? (ref_in_txn[s] ? ref_txn_start[s] : s) : -1;
      if (hash_content(db, &ref_content[s + 1])) exit(2);
      if (verbose) {
        {
          char *t = content_text(db);
          free(ref_text[s + 1]);
          ref_text[s + 1] = t ? strdup(t) : 0;
          sqlite3_free(t);
        }
      }
      continue;
    }
    if (fault_step >= 0 || F.fired == fired_before) continue;
    /* allocation fail_at failed during this step */
    fault_step = s;
    if (hash_content(db, &content) != SQLITE_OK) {
      finding("database unreadable after the failed step", s, 0);
      continue;
    }
    if (res.rc == SQLITE_OK) {
      if (res.output != ref[s].output)
        finding("step succeeded with a different result", s, 0);
      else if (content != ref_content[s + 1])
        finding("step succeeded but the database differs", s, 0);
      else
        absorbed++;
    } else if (ref[s].rc != SQLITE_OK && res.output == ref[s].output) {
      absorbed++; /* the deliberate error, unchanged */
    } else if (!ref_in_txn[s] && !sqlite3_get_autocommit(db)) {
      n_errors++;
      finding("the failed step left a transaction open (its changes pending)",
              s, res.err);
      if (verbose) {
        char *now = content_text(db);
        fprintf(stderr, "   rows before the step that are gone:\n");
        print_missing_lines(ref_text[s], now, "   -");
        fprintf(stderr, "   rows after the step that are new:\n");
        print_missing_lines(now, ref_text[s], "   +");
        sqlite3_free(now);
      }
    } else {
      int ok = content == ref_content[s];
      n_errors++;
      /* SQLite rolls the whole transaction back on NOMEM in some cases */
      if (!ok && in_txn_before && sqlite3_get_autocommit(db))
        ok = content == ref_content[ref_txn_start[s]];
      /* a failed COMMIT may leave the transaction open: same content */
      if (!ok && ref[s].rc != SQLITE_OK) ok = content == ref_content[s + 1];
      if (!ok) {
        char detail[260];
        snprintf(detail, sizeof(detail), "%s", res.err);
        finding("the failed step changed the database", s, detail);
        if (verbose) {
          char *now = content_text(db);
          fprintf(stderr, "   rows before the step that are gone:\n");
          print_missing_lines(ref_text[s], now, "   -");
          fprintf(stderr, "   rows after the step that are new:\n");
          print_missing_lines(now, ref_text[s], "   +");
          sqlite3_free(now);
        }
      }
      if ((res.rc & 0xff) != SQLITE_NOMEM && verbose)
        fprintf(stderr,
                "oom: note: %s run, allocation %ld, step %d: "
                "error %d \"%s\" (not SQLITE_NOMEM)\n",
                current_mode, fail_at, s, res.rc, res.err);
    }
  }
  current_step = N_STEPS;
close:
  fault_close_run(db, before, fault_step, !is_reference && fail_at, finding);
}

/* Put the scratch file's path into the steps that name @FILE@. */
static int place_file(char *path) {
  int s, fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  for (s = 0; s < N_STEPS; s++) {
    const char *at = strstr(WORKLOAD[s], "@FILE@");
    char *step;
    if (!at) continue;
    step = malloc(strlen(WORKLOAD[s]) + strlen(path) + 1);
    if (!step) return -1;
    sprintf(step, "%.*s%s%s", (int)(at - WORKLOAD[s]), WORKLOAD[s], path,
            at + 6);
    WORKLOAD[s] = step;
  }
  return 0;
}

int main(int argc, char **argv) {
  long stride = 1, n, total, points = 0, only = 0, shard = 0, shards = 1;
  static char scratch[] = "/tmp/embed-oom-XXXXXX";
  char bin[64];
  int i, s, benign_hooks;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0)
      verbose = 1;
    else if (strcmp(argv[i], "--stride") == 0 && i + 1 < argc)
      stride = atol(argv[++i]);
    else if (strcmp(argv[i], "--shard") == 0 && i + 1 < argc &&
             sscanf(argv[i + 1], "%ld/%ld", &shard, &shards) == 2 &&
             shards >= 1 && shard >= 0 && shard < shards)
      i++;
    else if (strcmp(argv[i], "--all") == 0)
      after_fault = N_STEPS;
    else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
      only = atol(argv[++i]);
    else {
      fprintf(stderr,
              "usage: %s [-v] [--all] [--stride N] [--shard K/M] [--at N]\n",
              argv[0]);
      return 2;
    }
  }
  if (stride < 1) stride = 1;
  if (place_file(scratch)) {
    perror("oom: scratch file");
    return 2;
  }
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGABRT, on_signal);
  signal(SIGFPE, on_signal);
  /* one thread: no mutexes, a faster sweep */
  if (sqlite3_config(SQLITE_CONFIG_SINGLETHREAD) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_MALLOC, &fault_methods) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK) {
    fprintf(stderr, "oom: cannot install the allocator\n");
    return 2;
  }
  benign_hooks = sqlite3_test_control(SQLITE_TESTCTRL_BENIGN_MALLOC_HOOKS,
                                      benign_begin, benign_end) == SQLITE_OK;
  sqlite3_initialize();
  sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);

  run_workload(0, 0, 1); /* warm up global state */
  run_workload(0, 0, 1);
  total = F.count;
  for (s = 0; s < N_STEPS; s++) {
    if (ref[s].rc != SQLITE_OK && verbose)
      printf("oom: reference step %d errs (expected): %s\n", s, ref[s].err);
  }
  printf("oom: workload of %d steps, %ld allocations%s\n", N_STEPS, total,
         benign_hooks ? "" : " (no benign-malloc hooks)");
  fflush(stdout);

  for (i = 0; i < 2; i++) {
    current_mode = i ? "persistent" : "transient";
    /* shard K of M: the points K, K + M, ... of the stride's sequence */
    for (n = only ? only : 1 + shard * stride; n <= (only ? only : total);
         n += stride * shards) {
      current_n = n;
      run_workload(n, i, 0);
      points++;
    }
  }
  printf(
      "oom: %ld failing-statement errors, %ld failures absorbed with the "
      "fault-free result\n",
      n_errors, absorbed);
  print_findings("oom");
  unlink(scratch);
  snprintf(bin, sizeof(bin), "%s.bin", scratch);
  unlink(bin);
  printf("oom: %ld allocation points tried, %ld failures\n", points,
         failing_runs());
  return failing_runs() ? 1 : 0;
}
