/*
** register.c - the registrations of one sqlite3_embed_init call, kept so
** that a load that fails part-way can take back every one of them.
**
** Usage (embed.c; each layer's embed_register_* takes the log):
**
**     embed_registrations log = {0};
**     rc = embed_create_function(&log, db, "embed_dim", 1, flags, app,
**                                fn_unary, 0, 0, 0);
**     rc = embed_create_module(&log, db, "embedding", &module, aux, free_aux);
**     if (rc) embed_registrations_undo(&log, db);
**
** Why: SQLite unloads the shared library when its init returns an error.
** A function or module left registered would then point into unmapped
** memory, and the next call, or the module's destructor at
** sqlite3_close(), would crash. Undoing deletes, newest first, each
** function (sqlite3_create_function_v2 with NULL callbacks) and each module
** (sqlite3_create_module_v2 with a NULL module) that was registered; SQLite
** calls their destructors then, while the code is still loaded. Deleting
** what exists allocates nothing, so the undo works when memory has run out.
** The log is a fixed array in the caller's frame: keeping it cannot fail.
*/
#include "value/value.h"

static int register_note(embed_registrations *log, const char *name, int nArg,
                         int flags, int is_module) {
  if (log->n >= EMBED_MAX_REGISTRATIONS) return SQLITE_INTERNAL;
  log->at[log->n].name = name;
  log->at[log->n].nArg = nArg;
  log->at[log->n].flags = flags;
  log->at[log->n].is_module = is_module;
  log->n++;
  return SQLITE_OK;
}

int embed_create_function(
    embed_registrations *log, sqlite3 *db, const char *name, int nArg,
    int flags, void *app,
    void (*xFunc)(sqlite3_context *, int, sqlite3_value **),
    void (*xStep)(sqlite3_context *, int, sqlite3_value **),
    void (*xFinal)(sqlite3_context *), void (*xDestroy)(void *)) {
  int rc;
  if (log->n >= EMBED_MAX_REGISTRATIONS) {
    if (xDestroy) xDestroy(app); /* as SQLite does when it fails */
    return SQLITE_INTERNAL;
  }
  rc = sqlite3_create_function_v2(db, name, nArg, flags, app, xFunc, xStep,
                                  xFinal, xDestroy);
  return rc == SQLITE_OK ? register_note(log, name, nArg, flags, 0) : rc;
}

int embed_create_module(embed_registrations *log, sqlite3 *db, const char *name,
                        const sqlite3_module *module, void *aux,
                        void (*xDestroy)(void *)) {
  int rc;
  if (log->n >= EMBED_MAX_REGISTRATIONS) {
    if (xDestroy) xDestroy(aux);
    return SQLITE_INTERNAL;
  }
  rc = sqlite3_create_module_v2(db, name, module, aux, xDestroy);
  return rc == SQLITE_OK ? register_note(log, name, 0, 0, 1) : rc;
}

void embed_registrations_undo(embed_registrations *log, sqlite3 *db) {
  while (log->n > 0) {
    const struct embed_registration *r = &log->at[--log->n];
    if (r->is_module)
      sqlite3_create_module_v2(db, r->name, 0, 0, 0);
    else /* the encoding must match the registration's to find it */
      sqlite3_create_function_v2(db, r->name, r->nArg,
                                 r->flags & (SQLITE_UTF8 | SQLITE_UTF16LE |
                                             SQLITE_UTF16BE | SQLITE_UTF16),
                                 0, 0, 0, 0, 0);
  }
}
