/*
** app.c - a C program that ships its own SQLite with embed built in: both
** linked statically (libembed.a, built with -DSQLITE_CORE, and Debian's
** libsqlite3.a), so the binary needs neither embed.so nor libsqlite3.so.
**
**     make build/app && build/app [scratch-folder]
**
** sqlite3_auto_extension() registers embed for every connection opened
** afterwards. The program then does what an app would: a vocabulary and its
** embedding table, a nearest-neighbour search, one SGD step, and a round trip
** through a word2vec file (embed_save, embed_file). Exit status 0 when every
** step gave the expected answer.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"

static int check(sqlite3 *db, int rc, const char *what) {
  if (rc != SQLITE_OK) {
    fprintf(stderr, "app: %s: %s\n", what, sqlite3_errmsg(db));
    return 1;
  }
  return 0;
}

/* Run one query that returns one row, printing its columns. */
static int show(sqlite3 *db, const char *label, const char *sql, char *out,
                size_t nout) {
  sqlite3_stmt *stmt = 0;
  int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, 0), i;
  if (rc == SQLITE_OK)
    rc = sqlite3_step(stmt) == SQLITE_ROW ? SQLITE_OK : SQLITE_ERROR;
  if (rc == SQLITE_OK) {
    printf("%-28s", label);
    for (i = 0; i < sqlite3_column_count(stmt); i++)
      printf("%s%s", i ? " | " : "",
             (const char *)sqlite3_column_text(stmt, i));
    printf("\n");
    if (out)
      snprintf(out, nout, "%s", (const char *)sqlite3_column_text(stmt, 0));
  }
  if (rc != SQLITE_OK)
    fprintf(stderr, "app: %s: %s\n", label, sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  return rc != SQLITE_OK;
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  sqlite3 *db = 0;
  char got[256], *sql = 0;
  int fails = 0;

  sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
  if (check(db, sqlite3_open(":memory:", &db), "open")) return 1;
  printf("SQLite %s (linked in), embed %s\n", sqlite3_libversion(),
         EMBED_VERSION);

  fails +=
      check(db,
            sqlite3_exec(
                db,
                "CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE);"
                "INSERT INTO vocab VALUES (1, 'cat'), (2, 'dog'), (3, 'car');"
                "CREATE VIRTUAL TABLE emb USING embedding(dim=3);"
                "INSERT INTO emb(id, vector) VALUES (1, '[1, 0.2, 0]'),"
                "  (2, '[0.9, 0.3, 0.1]'), (3, '[0, 0.1, 1]');",
                0, 0, 0),
            "create");

  fails += show(db, "nearest to cat (k = 2):",
                "SELECT group_concat(token, ', ') FROM (SELECT v.token "
                "FROM emb e JOIN vocab v ON v.id = e.id "
                "WHERE e.vector MATCH embed_lookup('emb', 1) AND e.k = 2 "
                "ORDER BY e.distance)",
                got, sizeof(got));
  if (strcmp(got, "cat, dog") != 0) fails++;

  fails += show(db, "SGD step on car (lr 0.5):",
                "SELECT embed_update('emb', 3, '[0, 0, 2]', 0.5), "
                "embed_json(embed_lookup('emb', 3))",
                got, sizeof(got));
  if (strcmp(got, "1") != 0) fails++;

  sql = sqlite3_mprintf(
      "SELECT embed_save('%q/app-vectors.txt', 'word2vec', v.token, e.vector) "
      "FROM vocab v JOIN emb e ON e.id = v.id",
      dir);
  fails += show(db, "embed_save (word2vec text):", sql, got, sizeof(got));
  if (strcmp(got, "3") != 0) fails++;
  sqlite3_free(sql);

  sql = sqlite3_mprintf(
      "SELECT group_concat(token || '=' || embed_json(vector), ' ') "
      "FROM embed_file('%q/app-vectors.txt')",
      dir);
  fails += show(db, "embed_file reads it back:", sql, got, sizeof(got));
  if (strcmp(got, "cat=[1,0.2,0] dog=[0.9,0.3,0.1] car=[0,0.1,0]") != 0)
    fails++;
  sqlite3_free(sql);
  sql = sqlite3_mprintf("%s/app-vectors.txt", dir);
  remove(sql);
  sqlite3_free(sql);

  sqlite3_close(db);
  printf("%s\n", fails ? "app: FAILED" : "app: ok");
  return fails ? 1 : 0;
}
