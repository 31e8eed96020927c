/*
** embed.c - the entry point of the embed extension.
**
** Usage:
**
**     .load ./embed                      -- sqlite3 shell
**     conn.load_extension("./embed")     -- Python
**     db.loadExtension("./embed")        -- Node (better-sqlite3)
**     sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);  -- C app
**
** Registers, on one connection: the `embedding` module (table/module.c),
** the pure functions (sql/functions.c), embed_lookup/embed_update
** (sql/training.c) and embed_file/embed_save (io/). The per-connection
** table registry is owned by the module and freed with it. A load that
** fails part-way takes back everything it registered, so the connection is
** as it was before (value/register.c).
**
** The entry point is the one symbol the library exports: the Makefile
** compiles with -fvisibility=hidden, so that the other functions, which
** SQLite loads with RTLD_GLOBAL, neither collide with a host's or another
** extension's names nor go through the PLT between the sources.
*/
#include "embed.h"
#include "table/module.h"
#include "sql/sql.h"
#include "io/io.h"

#ifndef SQLITE_CORE
SQLITE_EXTENSION_INIT1
#endif

#if defined(_WIN32)
__declspec(dllexport)
#elif defined(__GNUC__)
__attribute__((visibility("default")))
#endif
    int sqlite3_embed_init(sqlite3 *db, char **pzErrMsg,
                           const sqlite3_api_routines *pApi) {
  embed_registrations log;
  embed_registry *registry;
  int rc;
#ifndef SQLITE_CORE
  SQLITE_EXTENSION_INIT2(pApi);
#else
  (void)pApi;
#endif
  if (sqlite3_libversion_number() < 3038000) {
    *pzErrMsg = sqlite3_mprintf("embed needs SQLite 3.38 or later, this is %s",
                                sqlite3_libversion());
    return SQLITE_ERROR;
  }
  registry = embed_registry_new(db);
  if (!registry) return SQLITE_NOMEM;
  log.n = 0;
  /* the module owns the registry from here on, even on failure */
  rc = embed_register_vtab(db, registry, &log);
  if (rc == SQLITE_OK) rc = embed_register_functions(db, &log);
  if (rc == SQLITE_OK) rc = embed_register_training(db, registry, &log);
  if (rc == SQLITE_OK) rc = embed_register_files(db, &log);
  if (rc == SQLITE_OK) rc = embed_register_match(db); /* last: see module.c */
  if (rc != SQLITE_OK) {
    if (pzErrMsg) *pzErrMsg = sqlite3_mprintf("embed: %s", sqlite3_errmsg(db));
    /* SQLite unloads the library after a failed init: nothing may stay
    ** registered that points into it (value/register.c) */
    embed_registrations_undo(&log, db);
  }
  return rc;
}
