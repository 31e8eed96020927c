/*
** defensive.c - embed under SQLITE_DBCONFIG_DEFENSIVE and trusted_schema=OFF
** (what a careful application, or a browser-style embedding, turns on).
**
**     make build/defensive && build/defensive ./embed
**
** The program links Debian's shared libsqlite3, loads the extension with
** sqlite3_load_extension(), and checks, each check a line of its own:
**
**   - every shadow table (T_config, T_vectors, T_state) is protected from
**     direct writes: INSERT, UPDATE, DELETE, DROP and ALTER fail with
**     SQLite's "may not be modified/dropped/altered" (xShadowName covers
**     all three), reading them works;
**   - the table and every function work with DEFENSIVE on and
**     trusted_schema off: CREATE (with rows), INSERT/UPDATE/DELETE, lookups,
**     search, embed_lookup, embed_update (single, batch, bound),
**     embed_optimizer_reset, the commands (integrity-check,
**     reset-optimizer), ALTER ... RENAME, DROP, and a view or trigger
**     that uses the table (SQLITE_VTAB_INNOCUOUS) or the pure functions
**     (SQLITE_INNOCUOUS);
**   - embed_update, embed_optimizer_reset, embed_save and embed_file (the
**     last two when registered) are refused inside views and triggers, with
**     trusted_schema off and on (SQLITE_DIRECTONLY), with SQLite's message
**     "unsafe use of ...", and nothing changes;
**   - embed_lookup (not INNOCUOUS) is refused in a view with trusted_schema
**     off and allowed with it on.
**
** The last line is "defensive: N checks, F failed".
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

static int checks, failed;
static sqlite3 *db;

/* Run sql (all its statements); return the error message or NULL. */
static const char *run(const char *sql) {
  static char err[512];
  char *msg = 0;
  int rc = sqlite3_exec(db, sql, 0, 0, &msg);
  if (rc == SQLITE_OK) return 0;
  snprintf(err, sizeof(err), "%s", msg ? msg : sqlite3_errstr(rc));
  sqlite3_free(msg);
  return err;
}

static void expect_ok(const char *what, const char *sql) {
  const char *err = run(sql);
  checks++;
  if (err) {
    failed++;
    printf("FAIL %s: %s\n  -> error: %s\n", what, sql, err);
  }
}

/* The statement must fail and its message must contain `want`. */
static void expect_error(const char *what, const char *sql, const char *want) {
  const char *err = run(sql);
  checks++;
  if (!err) {
    failed++;
    printf("FAIL %s: %s\n  -> succeeded, expected an error with \"%s\"\n", what,
           sql, want);
  } else if (!strstr(err, want)) {
    failed++;
    printf("FAIL %s: %s\n  -> error \"%s\", expected one with \"%s\"\n", what,
           sql, err, want);
  }
}

/* The single value the query returns, as text ("" for none). */
static const char *value(const char *sql) {
  static char out[256];
  sqlite3_stmt *stmt = 0;
  out[0] = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &stmt, 0) == SQLITE_OK &&
      sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0))
    snprintf(out, sizeof(out), "%s", sqlite3_column_text(stmt, 0));
  sqlite3_finalize(stmt);
  return out;
}

static void expect_value(const char *what, const char *sql, const char *want) {
  const char *got = value(sql);
  checks++;
  if (strcmp(got, want) != 0) {
    failed++;
    printf("FAIL %s: %s\n  -> \"%s\", expected \"%s\"\n", what, sql, got, want);
  }
}

static int registered_function(const char *name) {
  char sql[200];
  snprintf(sql, sizeof(sql),
           "SELECT count(*) FROM pragma_function_list WHERE name = '%s'", name);
  return atoi(value(sql)) > 0;
}

static int registered_module(const char *name) {
  char sql[200];
  snprintf(sql, sizeof(sql),
           "SELECT count(*) FROM pragma_module_list WHERE name = '%s'", name);
  return atoi(value(sql)) > 0;
}

static void set_trusted_schema(int on) {
  int got = -1;
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, on, &got);
  checks++;
  if (got != on) {
    failed++;
    printf("FAIL cannot set trusted_schema=%d\n", on);
  }
}

static void shadow_tables_protected(const char *t) {
  static const char *const suffix[] = {"config", "vectors", "state"};
  char sql[300], what[100];
  int i;
  for (i = 0; i < 3; i++) {
    const char *s = suffix[i];
    snprintf(what, sizeof(what), "read %s_%s", t, s);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s_%s", t, s);
    expect_ok(what, sql);
    snprintf(what, sizeof(what), "insert into %s_%s", t, s);
    snprintf(sql, sizeof(sql),
             i == 0 ? "INSERT INTO %s_%s(key, value) VALUES ('x', 1)"
                    : "INSERT INTO %s_%s(id, %s) VALUES (99, x'00000000')",
             t, s, i == 1 ? "vector" : "state");
    expect_error(what, sql, "may not be modified");
    snprintf(what, sizeof(what), "update %s_%s", t, s);
    snprintf(sql, sizeof(sql),
             i == 0 ? "UPDATE %s_%s SET value = 3 WHERE key = 'dim'"
                    : "UPDATE %s_%s SET %s = x'00000000'",
             t, s, i == 1 ? "vector" : "state");
    expect_error(what, sql, "may not be modified");
    snprintf(what, sizeof(what), "delete from %s_%s", t, s);
    snprintf(sql, sizeof(sql), "DELETE FROM %s_%s", t, s);
    expect_error(what, sql, "may not be modified");
    snprintf(what, sizeof(what), "drop %s_%s", t, s);
    snprintf(sql, sizeof(sql), "DROP TABLE %s_%s", t, s);
    expect_error(what, sql, "may not be dropped");
    snprintf(what, sizeof(what), "alter %s_%s", t, s);
    snprintf(sql, sizeof(sql), "ALTER TABLE %s_%s RENAME TO z_%s", t, s, s);
    expect_error(what, sql, "may not be");
    snprintf(what, sizeof(what), "add column to %s_%s", t, s);
    snprintf(sql, sizeof(sql), "ALTER TABLE %s_%s ADD COLUMN extra", t, s);
    expect_error(what, sql, "may not be");
  }
}

/* A DIRECTONLY call must be refused in a view and in a trigger. */
static void refused_in_schema(const char *name, const char *call,
                              const char *want) {
  char sql[600], what[200];
  run("DROP VIEW IF EXISTS v_direct; DROP TRIGGER IF EXISTS tr_direct;");
  snprintf(sql, sizeof(sql), "CREATE VIEW v_direct AS SELECT %s", call);
  expect_ok("create a view calling a DIRECTONLY function", sql);
  snprintf(what, sizeof(what), "%s refused in a view", name);
  expect_error(what, "SELECT * FROM v_direct", want);
  snprintf(sql, sizeof(sql),
           "CREATE TRIGGER tr_direct AFTER INSERT ON log BEGIN SELECT %s; END",
           call);
  expect_ok("create a trigger calling a DIRECTONLY function", sql);
  snprintf(what, sizeof(what), "%s refused in a trigger", name);
  expect_error(what, "INSERT INTO log(x) VALUES (1)", want);
  run("DROP VIEW IF EXISTS v_direct; DROP TRIGGER IF EXISTS tr_direct;");
}

int main(int argc, char **argv) {
  const char *ext = argc > 1 ? argv[1] : "./embed";
  char *err = 0;
  int on = -1, trusted;
  const char *before;
  char saved[256];

  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return 2;
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, 0);
  if (sqlite3_load_extension(db, ext, 0, &err) != SQLITE_OK) {
    fprintf(stderr, "defensive: cannot load %s: %s\n", ext, err);
    return 2;
  }
  sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, 0);
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on);
  if (on != 1) {
    fprintf(stderr, "defensive: cannot turn on SQLITE_DBCONFIG_DEFENSIVE\n");
    return 2;
  }
  set_trusted_schema(0);

  /* the table works, shadow tables are protected */
  expect_ok("create",
            "CREATE VIRTUAL TABLE t USING embedding(dim=2, num_embeddings=4,"
            " seed=5, optimizer=adam)");
  expect_ok("create a second",
            "CREATE VIRTUAL TABLE u USING embedding(dim=2, num_embeddings=2,"
            " seed=6)");
  expect_ok("log table", "CREATE TABLE log(x)");
  expect_ok("insert", "INSERT INTO t(id, vector) VALUES (10, '[1, 2]')");
  expect_ok("insert initialized", "INSERT INTO t(id) VALUES (11)");
  expect_ok("update", "UPDATE t SET vector = '[3, 4]' WHERE id = 10");
  expect_ok("move", "UPDATE t SET id = 12 WHERE id = 11");
  expect_ok("delete", "DELETE FROM t WHERE id = 12");
  expect_value("point lookup", "SELECT embed_json(vector) FROM t WHERE id = 10",
               "[3,4]");
  expect_value("search",
               "SELECT id FROM t WHERE vector MATCH '[3, 4]' AND k = 1", "10");
  expect_value("embed_lookup", "SELECT embed_json(embed_lookup('t', 10))",
               "[3,4]");
  expect_value("embed_update", "SELECT embed_update('t', 10, '[1, 1]', 0.1)",
               "1");
  expect_value(
      "embed_update batch",
      "SELECT embed_update('t', '[0, 1, 0]', '[[1,1],[2,2],[3,3]]', 0.1)", "2");
  expect_value("embed_update bound",
               "SELECT embed_update(id, '[1, 1]', 0.1) FROM t WHERE id = 2",
               "1");
  /* adam keeps each row's state (4 floats) after its weight */
  expect_value("states written",
               "SELECT count(*) FROM t WHERE embed_optimizer_state('t', id)"
               " <> zeroblob(16)",
               "4");
  expect_ok("embed_optimizer_reset", "SELECT embed_optimizer_reset('t')");
  expect_value("states reset",
               "SELECT count(*) FROM t WHERE embed_optimizer_state('t', id)"
               " <> zeroblob(16)",
               "0");
  expect_value("embed_update after the reset",
               "SELECT embed_update('t', '[1, 2]', '[[1, 1], [1, 0]]', 0.1)",
               "2");
  expect_ok("command reset-optimizer",
            "INSERT INTO t(t) VALUES ('reset-optimizer')");
  expect_value("states reset by the command",
               "SELECT count(*) FROM t WHERE embed_optimizer_state('t', id)"
               " <> zeroblob(16)",
               "0");
  expect_ok("command integrity-check",
            "INSERT INTO t(t) VALUES ('integrity-check')");
  expect_error("unknown command", "INSERT INTO t(t) VALUES ('vacuum')",
               "embedding t: unknown command 'vacuum'");
  expect_value(
      "pure functions",
      "SELECT embed_json(embed_add(embed_normalize('[3, 4]'), '[1, 1]'))",
      "[1.6,1.8]");
  shadow_tables_protected("t");

  /* views and triggers over the table and the pure functions, with
  ** trusted_schema off */
  expect_ok("view over the table",
            "CREATE VIEW v_table AS SELECT id, embed_norm(vector) AS n FROM t");
  expect_value("view over the table runs", "SELECT count(*) FROM v_table", "5");
  expect_ok("view over a search",
            "CREATE VIEW v_search AS SELECT id FROM t"
            " WHERE vector MATCH '[1, 0]' AND k = 2");
  expect_value("view over a search runs", "SELECT count(*) FROM v_search", "2");
  expect_ok(
      "trigger writing the table",
      "CREATE TRIGGER tr_table AFTER INSERT ON log BEGIN"
      " INSERT INTO u(id, vector) VALUES (new.x, embed_scale('[1, 1]', 2));"
      " END");
  expect_ok("trigger writing the table runs",
            "INSERT INTO log(x) VALUES (100)");
  expect_value("trigger wrote the row",
               "SELECT embed_json(vector) FROM u WHERE id = 100", "[2,2]");
  run("DROP TRIGGER tr_table");
  expect_ok("trigger running a command",
            "CREATE TRIGGER tr_command AFTER INSERT ON log BEGIN"
            " INSERT INTO u(u) VALUES ('integrity-check'); END");
  expect_ok("trigger running a command runs",
            "INSERT INTO log(x) VALUES (101)");
  run("DROP TRIGGER tr_command");

  /* DIRECTONLY functions refused in views and triggers, whatever
  ** trusted_schema says; nothing changes */
  strcpy(saved, value("SELECT hex(vector) FROM t_vectors WHERE id = 1"));
  for (trusted = 0; trusted <= 1; trusted++) {
    set_trusted_schema(trusted);
    refused_in_schema("embed_update", "embed_update('t', 1, '[1, 1]', 0.5)",
                      "unsafe use of embed_update()");
    refused_in_schema("embed_update batch",
                      "embed_update('t', '[1]', '[[1, 1]]', 0.5)",
                      "unsafe use of embed_update()");
    refused_in_schema("embed_update (unnamed table)",
                      "embed_update(1, '[1, 1]', 0.5)",
                      "unsafe use of embed_update()");
    refused_in_schema("embed_update bound",
                      "embed_update(id, '[1, 1]', 0.5) FROM t WHERE id = 1",
                      "unsafe use of embed_update()");
    refused_in_schema("embed_optimizer_reset", "embed_optimizer_reset('t')",
                      "unsafe use of embed_optimizer_reset()");
    if (registered_function("embed_save")) {
      refused_in_schema("embed_save",
                        "embed_save('/tmp/embed-defensive.txt', 'word2vec',"
                        " 'a', '[1, 2]')",
                        "unsafe use of embed_save()");
    } else if (!trusted) {
      printf("defensive: embed_save is not registered: skipped\n");
    }
    if (registered_module("embed_file")) {
      refused_in_schema("embed_file",
                        "count(*) FROM embed_file('/etc/hostname', 'glove')",
                        "unsafe use of virtual table");
    } else if (!trusted) {
      printf("defensive: embed_file is not registered: skipped\n");
    }
  }
  checks++;
  if (strcmp(saved, value("SELECT hex(vector) FROM t_vectors WHERE id = 1"))) {
    failed++;
    printf("FAIL a refused embed_update changed row 1\n");
  }
  checks++;
  if (access("/tmp/embed-defensive.txt", F_OK) == 0) {
    failed++;
    printf("FAIL a refused embed_save wrote its file\n");
    unlink("/tmp/embed-defensive.txt");
  }

  /* embed_lookup reads a table: not INNOCUOUS */
  set_trusted_schema(0);
  expect_ok("view calling embed_lookup",
            "CREATE VIEW v_lookup AS SELECT embed_json(embed_lookup('t', 10))"
            " AS v");
  expect_error("embed_lookup refused in a view (trusted_schema off)",
               "SELECT * FROM v_lookup", "unsafe use of embed_lookup()");
  set_trusted_schema(1);
  before = value("SELECT embed_json(embed_lookup('t', 10))");
  strcpy(saved, before);
  expect_value("embed_lookup in a view (trusted_schema on)",
               "SELECT * FROM v_lookup", saved);
  set_trusted_schema(0);

  /* schema changes with DEFENSIVE on */
  expect_ok("rename", "ALTER TABLE t RENAME TO t2");
  shadow_tables_protected("t2");
  expect_value("renamed table works",
               "SELECT embed_update('t2', 10, '[1, 1]', 0.1)", "1");
  expect_ok("drop", "DROP TABLE t2");
  expect_value("drop removed the shadow tables",
               "SELECT count(*) FROM sqlite_schema WHERE name LIKE 't2%'", "0");

  sqlite3_close(db);
  printf("defensive: %d checks, %d failed\n", checks, failed);
  return failed ? 1 : 0;
}
