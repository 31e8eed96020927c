/*
** module.c - the `embedding` virtual table: float32 vectors keyed by token
** id. This file is its lifecycle and registration; plan.c chooses query
** plans, cursor.c runs them, write.c takes INSERT/UPDATE/DELETE, and the
** rows live in the storage layer (store.c).
**
** Usage:
**
**     CREATE VIRTUAL TABLE tok USING embedding(dim=4, num_embeddings=10);
**     SELECT id, vector FROM tok WHERE id = 3;
**     SELECT t.pos, e.vector FROM tokens t JOIN tok e ON e.id = t.token_id;
**     INSERT INTO tok(id) VALUES (10);                 -- initialized row
**     INSERT INTO tok(id, vector) VALUES (11, '[1, 2, 3, 4]');
**     UPDATE tok SET vector = embed_scale(vector, 2) WHERE id = 11;
**     DELETE FROM tok WHERE id = 11;
**     SELECT id, distance FROM tok WHERE vector MATCH :q AND k = 5;
**     SELECT embed_update(id, :grad, 0.1) FROM tok WHERE id = 3;
**
** Columns: id INTEGER (the rowid), vector BLOB (the stored weight, D float32
** values), the hidden search columns distance REAL and k INTEGER, and the
** hidden command column named like the table (command.c).
**
** Design: CREATE parses the options (core/options.c) and has the storage
** layer make the shadow tables (table/store.h documents them); CONNECT
** reads them back. Every table is listed in the connection's registry
** (registry.c), so the unnamed and named forms of embed_lookup and
** embed_update find it; xFindFunction binds those functions to the table
** whose column is their first argument. The module is INNOCUOUS (its
** reads and writes are the table's own) and supports constraint conflict
** modes (INSERT OR REPLACE / OR IGNORE).
*/
#include <string.h>

#include "table/module.h"

/* ------------------------------------------------------- create / connect */

static int embedInit(sqlite3 *db, void *pAux, int argc, const char *const *argv,
                     sqlite3_vtab **ppVtab, char **pzErr, int is_create) {
  embed_config cfg;
  embed_vtab *tab;
  int rc, i;
  *ppVtab = 0;
  tab = (embed_vtab *)sqlite3_malloc64(sizeof(*tab));
  if (!tab) return SQLITE_NOMEM;
  memset(tab, 0, sizeof(*tab));
  tab->registry = (embed_registry *)pAux;
  if (is_create) {
    embed_error err;
    embed_config_defaults(&cfg);
    for (i = 3; i < argc; i++) {
      if (embed_config_apply_arg(&cfg, argv[i], &err)) break;
    }
    if (i < argc || embed_config_finish(&cfg, &err)) {
      *pzErr = sqlite3_mprintf("embedding %s: %s", argv[2], err.text);
      sqlite3_free(tab);
      return SQLITE_ERROR;
    }
    if (!cfg.has_seed) {
      sqlite3_randomness(sizeof(cfg.seed), &cfg.seed);
      cfg.has_seed = 1;
    }
  }
  /* after this, not argv: a failed nested CREATE may have reset the schema
  ** that owns it */
  rc = embed_store_open(db, argv[1], argv[2], is_create ? &cfg : 0, is_create,
                        &tab->st, pzErr);
  if (rc == SQLITE_OK)
    rc = embed_vtab_declare(db, embed_store_name(tab->st)); /* command.c */
  if (rc == SQLITE_OK) rc = embed_copies_open(tab->st, &tab->copies);
  if (rc == SQLITE_OK) {
    tab->entry = embed_registry_add(tab->registry, tab->st);
    if (!tab->entry) rc = SQLITE_NOMEM;
  }
  if (rc) {
    embed_copies_close(tab->copies);
    embed_store_close(tab->st);
    sqlite3_free(tab);
    return rc;
  }
  sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
  sqlite3_vtab_config(db, SQLITE_VTAB_INNOCUOUS);
  *ppVtab = &tab->base;
  return SQLITE_OK;
}

static int embedCreate(sqlite3 *db, void *pAux, int argc,
                       const char *const *argv, sqlite3_vtab **ppVtab,
                       char **pzErr) {
  return embedInit(db, pAux, argc, argv, ppVtab, pzErr, 1);
}

static int embedConnect(sqlite3 *db, void *pAux, int argc,
                        const char *const *argv, sqlite3_vtab **ppVtab,
                        char **pzErr) {
  return embedInit(db, pAux, argc, argv, ppVtab, pzErr, 0);
}

static int embedDisconnect(sqlite3_vtab *pVtab) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  embed_registry_remove(tab->registry, tab->entry);
  embed_copies_close(tab->copies);
  embed_store_close(tab->st);
  sqlite3_free(tab);
  return SQLITE_OK;
}

static int embedDestroy(sqlite3_vtab *pVtab) {
  int rc = embed_store_drop(((embed_vtab *)pVtab)->st);
  if (rc) return rc;
  return embedDisconnect(pVtab);
}

static int embedRename(sqlite3_vtab *pVtab, const char *zNew) {
  return embed_store_rename(((embed_vtab *)pVtab)->st, zNew);
}

/* Transactions: what the store buffers for xUpdate (inserted rows, the
** change log's ids) is written when the transaction commits (xSync) and
** when a savepoint or statement journal opens (xSavepoint), and forgotten
** by ROLLBACK and ROLLBACK TO, whose undone rows are all newer than the
** last flush (store_stmt.c, store_log.c). */
static int embedBegin(sqlite3_vtab *pVtab) {
  (void)pVtab;
  return SQLITE_OK;
}

static int embedSync(sqlite3_vtab *pVtab) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  return embed_vtab_named(tab, embed_store_flush(tab->st));
}

static int embedCommit(sqlite3_vtab *pVtab) {
  embed_store_discard(((embed_vtab *)pVtab)->st); /* flushed by xSync */
  return SQLITE_OK;
}

static int embedRollback(sqlite3_vtab *pVtab) {
  embed_store_discard(((embed_vtab *)pVtab)->st);
  return SQLITE_OK;
}

static int embedSavepoint(sqlite3_vtab *pVtab, int iSavepoint) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  (void)iSavepoint;
  return embed_vtab_named(tab, embed_store_flush(tab->st));
}

static int embedRelease(sqlite3_vtab *pVtab, int iSavepoint) {
  embed_vtab *tab = (embed_vtab *)pVtab;
  (void)iSavepoint; /* a statement's end: its buffered rows go in now */
  return embed_vtab_named(tab, embed_store_flush(tab->st));
}

static int embedRollbackTo(sqlite3_vtab *pVtab, int iSavepoint) {
  (void)iSavepoint;
  embed_store_discard(((embed_vtab *)pVtab)->st);
  return SQLITE_OK;
}

static int embedShadowName(const char *zName) {
  return embed_store_is_shadow(zName);
}

static int embedFindFunction(sqlite3_vtab *pVtab, int nArg, const char *zName,
                             void (**pxFunc)(sqlite3_context *, int,
                                             sqlite3_value **),
                             void **ppArg) {
  void (*fn)(sqlite3_context *, int, sqlite3_value **) =
      embed_train_bound_function(zName, nArg);
  if (!fn) return 0;
  *pxFunc = fn;
  *ppArg = ((embed_vtab *)pVtab)->st;
  return 1;
}

static sqlite3_module embed_module = {
#if SQLITE_VERSION_NUMBER >= 3044000
    4, /* iVersion: xIntegrity */
#else
    3, /* iVersion: xShadowName */
#endif
    embedCreate,       /* xCreate */
    embedConnect,      /* xConnect */
    embedBestIndex,    /* xBestIndex */
    embedDisconnect,   /* xDisconnect */
    embedDestroy,      /* xDestroy */
    embedOpen,         /* xOpen */
    embedClose,        /* xClose */
    embedFilter,       /* xFilter */
    embedNext,         /* xNext */
    embedEof,          /* xEof */
    embedColumn,       /* xColumn */
    embedRowid,        /* xRowid */
    embedUpdate,       /* xUpdate */
    embedBegin,        /* xBegin */
    embedSync,         /* xSync */
    embedCommit,       /* xCommit */
    embedRollback,     /* xRollback */
    embedFindFunction, /* xFindFunction */
    embedRename,       /* xRename */
    embedSavepoint,    /* xSavepoint */
    embedRelease,      /* xRelease */
    embedRollbackTo,   /* xRollbackTo */
    embedShadowName,   /* xShadowName */
#if SQLITE_VERSION_NUMBER >= 3044000
    embedIntegrity, /* xIntegrity (command.c) */
#endif
};

/* SQLite's placeholder match() is not INNOCUOUS, so with trusted_schema off
** a view could not search (`unsafe use of MATCH()`). The table consumes
** every usable MATCH itself; this stand-in, marked innocuous, only runs when
** nothing consumed it, and fails as the placeholder does. */
static void module_match_placeholder(sqlite3_context *ctx, int argc,
                                     sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_error(
      ctx, "unable to use function MATCH in the requested context", -1);
}

int embed_register_vtab(sqlite3 *db, embed_registry *registry,
                        embed_registrations *log) {
  return embed_create_module(log, db, "embedding", &embed_module, registry,
                             embed_registry_free);
}

/* Not in the log: deleting it would also delete SQLite's own placeholder,
** which only an allocation could bring back. It replaces that placeholder
** in place (no allocation, so it cannot run out of memory) and is the last
** registration of sqlite3_embed_init, so no failure comes after it. */
int embed_register_match(sqlite3 *db) {
  return sqlite3_create_function_v2(db, "match", 2,
                                    SQLITE_UTF8 | SQLITE_INNOCUOUS, 0,
                                    module_match_placeholder, 0, 0, 0);
}
