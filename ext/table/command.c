/*
** command.c - the command column of the `embedding` table, as FTS5 and
** sqlite-vec have it: a hidden column named like the table, into which an
** INSERT writes the name of a command instead of a row.
**
** Usage (README "Commands"):
**
**     INSERT INTO tok(tok) VALUES ('integrity-check');   -- error if damaged
**     INSERT INTO tok(tok) VALUES ('reset-optimizer');   -- forget the state
**     INSERT INTO tok(tok) VALUES ('build-index');       -- index=ivf tables
**     PRAGMA integrity_check;                             -- SQLite 3.44+
**
** Design:
**  - The schema the module declares (embed_vtab_declare) has the command
**    column last, named like the table, so it follows the table through
**    ALTER TABLE ... RENAME (SQLite connects the table again under its new
**    name). A table named like one of the other columns or the rowid has
**    none: the name would be ambiguous.
**  - xUpdate passes an INSERT whose command column is not NULL here
**    (embed_command_run) before anything else: no row is written. The
**    commands are a table (command_defs): a name, the other columns the
**    command takes as its arguments (none yet: a value in any other column
**    is an error), and the handler. A new command is one more row of it;
**    an unknown name is an error that lists them all.
**  - A command runs inside the INSERT's statement transaction, so one that
**    fails changes nothing; the handlers reuse the bodies of the SQL
**    functions (reset-optimizer is embed_optimizer_reset's body in
**    table/train.c) and of the integrity check (table/integrity.c).
**  - The INSERT leaves sqlite3_last_insert_rowid() as it was.
**  - xIntegrity (SQLite 3.44 and later) runs the same check for PRAGMA
**    integrity_check and quick_check, reporting a defect as the pragma's
**    row; a check that could not run (out of memory, an I/O error) fails
**    the pragma.
*/
#include "table/module.h"

/* The declared schema: the command column is COL_COMMAND, when there is
** one. */
int embed_vtab_declare(sqlite3 *db, const char *name) {
  static const char *const taken[] = {"id",    "vector", "distance",
                                      "k",     "lr",     "nprobe",
                                      "rowid", "oid",    "_rowid_"};
  size_t i;
  for (i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
    if (sqlite3_stricmp(name, taken[i]) == 0)
      return sqlite3_declare_vtab(
          db,
          "CREATE TABLE x(id INTEGER, vector BLOB, distance REAL HIDDEN, k INTEGER HIDDEN, lr REAL HIDDEN, nprobe INTEGER HIDDEN)");
  {
    char *zSql = sqlite3_mprintf(
        "CREATE TABLE x(id INTEGER, vector BLOB, distance REAL HIDDEN, k INTEGER HIDDEN, lr REAL HIDDEN, nprobe INTEGER HIDDEN, \"%w\" HIDDEN)",
        name);
    int rc = zSql ? sqlite3_declare_vtab(db, zSql) : SQLITE_NOMEM;
    sqlite3_free(zSql);
    return rc;
  }
}

/* ------------------------------------------------------------- commands */

static int command_integrity_check(embed_vtab *tab, sqlite3_value **cols,
                                   char **pzErr) {
  (void)cols;
  return embed_integrity_check(tab->st, pzErr);
}

static int command_reset_optimizer(embed_vtab *tab, sqlite3_value **cols,
                                   char **pzErr) {
  int64_t deleted;
  (void)cols;
  return embed_train_reset_state(tab->st, embed_store_label(tab->st), &deleted,
                                 pzErr);
}

/* step: one optimizer step, as embed_update(ids, grads, lr) with the ids
** in the id column, the gradients in the vector column and the learning
** rate in lr; a write statement, so it takes part in the caller's
** transaction as any INSERT does. */
static int command_step(embed_vtab *tab, sqlite3_value **cols, char **pzErr) {
  int64_t changed;
  return embed_train_step(tab->st, embed_store_label(tab->st), cols[COL_ID],
                          cols[COL_VECTOR], cols[COL_LR], &changed, pzErr);
}

/* build-index: train the cells of an index=ivf table and assign every row
** (table/ivf_build.c), in the INSERT's transaction. */
static int command_build_index(embed_vtab *tab, sqlite3_value **cols,
                               char **pzErr) {
  embed_scan *scan = 0;
  int64_t cells;
  int rc;
  (void)cols;
  if (!embed_store_has_index(tab->st)) {
    return embed_fail(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: build-index needs a table made with index=ivf",
            embed_store_name(tab->st)));
  }
  rc = embed_scan_new(tab->st, &scan);
  if (rc == SQLITE_OK) rc = embed_ivf_build(tab->st, scan, &cells, pzErr);
  embed_scan_free(scan);
  return rc;
}

/* The commands. `takes`: bits (1 << COL_x) of the other columns the
** command reads as arguments; a value in any other column is an error. */
static const struct {
  const char *name;
  unsigned takes;
  int (*run)(embed_vtab *tab, sqlite3_value **cols, char **pzErr);
} command_defs[] = {
    {"build-index", 0, command_build_index},
    {"integrity-check", 0, command_integrity_check},
    {"reset-optimizer", 0, command_reset_optimizer},
    {"step", (1u << COL_ID) | (1u << COL_VECTOR) | (1u << COL_LR),
     command_step},
};
#define COMMAND_N ((int)(sizeof(command_defs) / sizeof(command_defs[0])))

static int command_fail(embed_vtab *tab, char *zMsg) {
  return embed_vtab_error(tab, SQLITE_ERROR, zMsg);
}

/* "unknown command 'x'; the commands are: a, b" */
static int command_unknown(embed_vtab *tab, sqlite3_value *v) {
  sqlite3_str *list = sqlite3_str_new(embed_store_db(tab->st));
  char *shown = embed_value_shown(v), *names;
  int i, rc;
  for (i = 0; i < COMMAND_N; i++)
    sqlite3_str_appendf(list, "%s%s", i ? ", " : "", command_defs[i].name);
  names = sqlite3_str_finish(list);
  rc = shown && names
           ? command_fail(
                 tab,
                 sqlite3_mprintf(
                     "embedding %s: unknown command '%s'; the commands are: %s",
                     embed_store_name(tab->st), shown, names))
           : SQLITE_NOMEM;
  sqlite3_free(shown);
  sqlite3_free(names);
  return rc;
}

int embed_command_run(embed_vtab *tab, int argc, sqlite3_value **argv,
                      sqlite_int64 *pRowid) {
  static const char *const col_names[] = {"id", "vector", "distance",
                                          "k",  "lr",     "nprobe"};
  sqlite3_value *cmd = argv[2 + COL_COMMAND];
  const char *name = embed_store_name(tab->st);
  const char *text;
  char *zErr = 0;
  int i, col, rc;
  (void)argc;
  if (sqlite3_value_type(argv[0]) != SQLITE_NULL)
    return command_fail(
        tab,
        sqlite3_mprintf(
            "embedding %s: commands are run by INSERT INTO %s(%s) VALUES ('command'), not by UPDATE",
            name, name, name));
  if (sqlite3_value_type(cmd) != SQLITE_TEXT)
    return command_fail(
        tab, sqlite3_mprintf("embedding %s: a command must be TEXT, got %s",
                             name, embed_type_name(sqlite3_value_type(cmd))));
  text = (const char *)sqlite3_value_text(cmd);
  if (!text) return SQLITE_NOMEM;
  for (i = 0; i < COMMAND_N; i++)
    if (sqlite3_stricmp(text, command_defs[i].name) == 0) break;
  if (i == COMMAND_N) return command_unknown(tab, cmd);
  for (col = COL_ID; col < COL_COMMAND; col++) {
    sqlite3_value *v =
        col == COL_ID && sqlite3_value_type(argv[1]) != SQLITE_NULL
            ? argv[1] /* the rowid is the id */
            : argv[2 + col];
    if (sqlite3_value_type(v) != SQLITE_NULL &&
        !(command_defs[i].takes & (1u << col)))
      return command_fail(
          tab, sqlite3_mprintf("embedding %s: the %s command takes no %s", name,
                               command_defs[i].name, col_names[col]));
  }
  rc = command_defs[i].run(tab, argv + 2, &zErr);
  if (rc) return embed_vtab_error(tab, rc, zErr);
  /* no row was inserted: last_insert_rowid stays as it was */
  *pRowid = sqlite3_last_insert_rowid(embed_store_db(tab->st));
  return SQLITE_OK;
}

/* ------------------------------------------------------------ xIntegrity */

#if SQLITE_VERSION_NUMBER >= 3044000
int embedIntegrity(sqlite3_vtab *pVtab, const char *zSchema,
                   const char *zTabName, int mFlags, char **pzErr) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  char *zErr = 0;
  int rc = embed_integrity_check(tab->st, &zErr);
  (void)zSchema;
  (void)zTabName;
  (void)mFlags; /* quick_check runs the same O(n) check */
  if ((rc & 0xff) == SQLITE_CORRUPT && zErr) {
    *pzErr = zErr; /* a defect: the pragma's row */
    return SQLITE_OK;
  }
  sqlite3_free(zErr);
  return rc;
}
#endif
