/*
** static_app.c - an app that links libembed.a into its own SQLite build and
** registers the extension for every connection with sqlite3_auto_extension.
**
**     make build/static_app && build/static_app
*/
#include <stdio.h>

#include "embed.h"

int main(void) {
  sqlite3 *db = 0;
  sqlite3_stmt *stmt = 0;
  int rc, ok = 0;
  sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
  rc = sqlite3_open(":memory:", &db);
  if (rc == SQLITE_OK)
    rc = sqlite3_exec(db,
                      "CREATE VIRTUAL TABLE t USING embedding(dim=2);"
                      "INSERT INTO t(id, vector) VALUES (1, '[3, 4]');",
                      0, 0, 0);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(db,
                            "SELECT embed_version(), embed_norm(vector) "
                            "FROM t WHERE id = 1",
                            -1, &stmt, 0);
  if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    printf("static: embed %s, norm %.1f\n", sqlite3_column_text(stmt, 0),
           sqlite3_column_double(stmt, 1));
    ok = sqlite3_column_double(stmt, 1) == 5.0;
  } else {
    printf("static: error: %s\n", sqlite3_errmsg(db));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return ok ? 0 : 1;
}
