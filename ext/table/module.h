/*
** table/module.h - the `embedding` virtual table module: its lifecycle
** (module.c), query plans (plan.c), cursors (cursor.c) and writes
** (write.c), over the storage layer and search (table/table.h).
*/
#ifndef EMBED_MODULE_H
#define EMBED_MODULE_H

#include "table/table.h"

/* The columns the module declares; COL_LR is the step command's learning
** rate, and COL_COMMAND, named like the table, is the command column
** (command.c), absent when the name is taken. */
enum {
  COL_ID = 0,
  COL_VECTOR = 1,
  COL_DISTANCE = 2,
  COL_K = 3,
  COL_LR = 4,
  COL_NPROBE = 5, /* cells an index=ivf search probes (search.c) */
  COL_COMMAND = 6
};

/* The idxNum bits of a plan (plan.c chooses them, cursor.c runs them; the
** meaning of each is documented above embedBestIndex). */
enum {
  PLAN_EQ = 0x001,
  PLAN_IN = 0x002,
  PLAN_LO = 0x004,
  PLAN_LO_GT = 0x008,
  PLAN_HI = 0x010,
  PLAN_HI_LT = 0x020,
  PLAN_KNN = 0x040,
  PLAN_K = 0x080,
  PLAN_LIMIT = 0x100,
  PLAN_OFFSET = 0x200,
  PLAN_DESC = 0x400,
  PLAN_ALL = 0x800,
  PLAN_NPROBE = 0x1000
};

/* One connected embedding table. */
typedef struct embed_vtab {
  sqlite3_vtab base;
  embed_store *st;
  embed_registry *registry;
  embed_registry_entry *entry; /* st in the registry */
  embed_copies *copies;        /* the shared copies searched (copy.c) */
} embed_vtab;

int embed_register_vtab(sqlite3 *db, embed_registry *registry,
                        embed_registrations *log);
/* The MATCH stand-in; registered last (module.c says why). */
int embed_register_match(sqlite3 *db);

/* Set the table's error message (zMsg from sqlite3_mprintf, NULL meaning
** out of memory) and return rc. */
static inline int embed_vtab_error(embed_vtab *tab, int rc, char *zMsg) {
  sqlite3_free(tab->base.zErrMsg);
  tab->base.zErrMsg = zMsg;
  return zMsg ? rc : SQLITE_NOMEM;
}

/* Every failure of a cursor or write method names the table, even when it
** comes from a nested statement (a missing or damaged shadow table). */
static inline int embed_vtab_named(embed_vtab *tab, int rc) {
  sqlite3 *db = embed_store_db(tab->st);
  if (rc == SQLITE_OK || rc == SQLITE_NOMEM || tab->base.zErrMsg) return rc;
  tab->base.zErrMsg =
      sqlite3_mprintf("embedding %s: %s", embed_store_name(tab->st),
                      sqlite3_errcode(db) != SQLITE_OK ? sqlite3_errmsg(db)
                                                       : sqlite3_errstr(rc));
  return rc;
}

/* plan.c */
int embedBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *info);

/* cursor.c */
int embedOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor);
int embedClose(sqlite3_vtab_cursor *pCursor);
int embedFilter(sqlite3_vtab_cursor *pCursor, int idxNum, const char *idxStr,
                int argc, sqlite3_value **argv);
int embedNext(sqlite3_vtab_cursor *pCursor);
int embedEof(sqlite3_vtab_cursor *pCursor);
int embedColumn(sqlite3_vtab_cursor *pCursor, sqlite3_context *ctx, int col);
int embedRowid(sqlite3_vtab_cursor *pCursor, sqlite_int64 *pRowid);

/* command.c: the declared schema (with the command column when the name
** allows), an INSERT into the command column, and xIntegrity. */
int embed_vtab_declare(sqlite3 *db, const char *name);
int embed_command_run(embed_vtab *tab, int argc, sqlite3_value **argv,
                      sqlite_int64 *pRowid);
#if SQLITE_VERSION_NUMBER >= 3044000
int embedIntegrity(sqlite3_vtab *pVtab, const char *zSchema,
                   const char *zTabName, int mFlags, char **pzErr);
#endif

/* write.c */
int embedUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                sqlite_int64 *pRowid);

#endif /* EMBED_MODULE_H */
