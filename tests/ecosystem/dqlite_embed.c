/*
** dqlite_embed.c - registers embed in an app that embeds dqlite, at the
** app's first sqlite3_open_v2 (make test-dqlite).
**
**     cc -shared -fPIC -Iext -o dqlite_embed.so dqlite_embed.c libembed.a -ldl
*-lm
**     LD_PRELOAD=./dqlite_embed.so dqlite-demo --db 127.0.0.1:9001 ...
**
** An app that embeds dqlite links libembed.a and calls
** sqlite3_auto_extension(sqlite3_embed_init) before its node opens a
** database; every connection then has the embedding module and the embed_
** functions. The call must come after the app's start-up, not before:
** go-dqlite calls sqlite3_config() when it starts, which fails once SQLite
** is initialized, and sqlite3_auto_extension initializes it. So the
** registration is made at the first open (the first connection dqlite's
** leader opens), here by wrapping sqlite3_open_v2 for an app we do not
** rebuild (dqlite-demo of go-dqlite); an app of one's own makes the same
** call in its code after the node is created and before it starts.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include "embed.h"
#include "sqlite3.h"

typedef int (*dqlite_embed_open_fn)(const char *, sqlite3 **, int,
                                    const char *);

static pthread_once_t dqlite_embed_once = PTHREAD_ONCE_INIT;
static dqlite_embed_open_fn dqlite_embed_real_open;
static int dqlite_embed_rc = SQLITE_OK;

static void dqlite_embed_register(void) {
  dqlite_embed_real_open =
      (dqlite_embed_open_fn)dlsym(RTLD_NEXT, "sqlite3_open_v2");
  dqlite_embed_rc = sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
  if (dqlite_embed_rc != SQLITE_OK)
    fprintf(stderr, "dqlite_embed: sqlite3_auto_extension failed: %d\n",
            dqlite_embed_rc);
}

int sqlite3_open_v2(const char *filename, sqlite3 **db, int flags,
                    const char *vfs) {
  pthread_once(&dqlite_embed_once, dqlite_embed_register);
  if (!dqlite_embed_real_open) {
    *db = 0;
    return SQLITE_ERROR;
  }
  return dqlite_embed_real_open(filename, db, flags, vfs);
}
