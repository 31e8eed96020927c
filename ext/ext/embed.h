/*
** embed.h - public entry point of the embed SQLite extension.
**
** Loadable use:   .load ./embed          (sqlite3 shell)
** Static use:     link libembed.a (built with -DSQLITE_CORE) and call, before
**                 opening connections,
**
**     sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
**
** Every connection opened afterwards has the `embedding` virtual table and the
** embed_* SQL functions.
*/
#ifndef EMBED_H
#define EMBED_H

#include "sqlite3.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EMBED_VERSION "0.1.0"

int sqlite3_embed_init(sqlite3 *db, char **pzErrMsg,
                       const sqlite3_api_routines *pApi);

#ifdef __cplusplus
}
#endif

#endif /* EMBED_H */
