/*
** value/value.h - SQL values in and out of vectors, and the text of errors:
** the layer every SQLite-facing file of embed builds on (over core/core.h).
**
** Error convention of the SQLite layers: a function that can fail returns
** an SQLite result code and, for anything but SQLITE_NOMEM, sets *pzErr to
** a message from sqlite3_mprintf() of the form "who: problem (values)",
** which the caller owns. embed_error_text() turns a core embed_error into
** such a message.
*/
#ifndef EMBED_VALUE_H
#define EMBED_VALUE_H

#include "core/core.h"
#include "sqlite3ext.h"
#ifndef SQLITE_CORE
SQLITE_EXTENSION_INIT3
#endif

typedef struct embed_vec {
  float *v;    /* sqlite3_malloc64'd, aligned; NULL for SQL NULL */
  int64_t dim; /* 0 for SQL NULL */
} embed_vec;

/* Read a vector argument (BLOB or JSON text). On error returns an SQLite
** code and sets *pzErr to "who: problem". SQL NULL gives v == NULL. */
int embed_vec_from_value(sqlite3_value *val, const char *who, embed_vec *out,
                         char **pzErr);
void embed_vec_free(embed_vec *vec);
/* "who: problem" for a core error (sqlite3_mprintf'd; NULL when out of
** memory). */
char *embed_error_text(const char *who, const embed_error *err);
/* The SQL name of a value type: "INTEGER", "REAL", "TEXT", "BLOB", "NULL". */
const char *embed_type_name(int type);
/* Set a float vector as the BLOB result of a function. */
void embed_result_vector(sqlite3_context *ctx, const float *v, int64_t dim);
/* Keep zMsg (from sqlite3_mprintf; NULL when it ran out of memory) as the
** error: returns SQLITE_ERROR, or SQLITE_NOMEM for NULL. */
int embed_fail(char **pzErr, char *zMsg);
/* Report an error message from sqlite3_mprintf (freed here), or NOMEM. */
void embed_result_error(sqlite3_context *ctx, int rc, char *zErr);
/* Read a finite REAL/INTEGER argument. */
int embed_number_from_value(sqlite3_value *val, const char *who,
                            const char *what, double *out, char **pzErr);
/* The integer a value means as an id, if any (returns 1): integers,
** integral reals, and text that INTEGER affinity makes one. */
int embed_value_as_id(sqlite3_value *v, int64_t *id);
/* Run a statement built with sqlite3_mprintf (zSql may be NULL: out of
** memory; it is freed here) to completion, as sqlite3_exec does. */
int embed_exec(sqlite3 *db, char *zSql);
/* Prepare a statement from sqlite3_mprintf'd SQL (freed here). */
int embed_prepare(sqlite3 *db, char *zSql, unsigned flags, sqlite3_stmt **out);

/* describe.c: a value, or text from one, as an error message shows it
** (sqlite3_mprintf'd; NULL when out of memory): NULL, the number, "a BLOB
** of N bytes", or the text cut to EMBED_SHOWN_MAX bytes ("...") with NUL
** and invalid UTF-8 shown as '?'. */
#define EMBED_SHOWN_MAX 200
char *embed_value_shown(sqlite3_value *v);
char *embed_text_shown(const char *p, int64_t n);

/* register.c: what one sqlite3_embed_init registered, to take back. */
#define EMBED_MAX_REGISTRATIONS 64
typedef struct embed_registrations {
  int n;
  struct embed_registration {
    const char *name; /* static */
    int nArg, flags, is_module;
  } at[EMBED_MAX_REGISTRATIONS];
} embed_registrations;
/* sqlite3_create_function_v2 / sqlite3_create_module_v2, noted in log. */
int embed_create_function(
    embed_registrations *log, sqlite3 *db, const char *name, int nArg,
    int flags, void *app,
    void (*xFunc)(sqlite3_context *, int, sqlite3_value **),
    void (*xStep)(sqlite3_context *, int, sqlite3_value **),
    void (*xFinal)(sqlite3_context *), void (*xDestroy)(void *));
int embed_create_module(embed_registrations *log, sqlite3 *db, const char *name,
                        const sqlite3_module *module, void *aux,
                        void (*xDestroy)(void *));
/* Delete, newest first, everything the log holds; SQLite calls their
** destructors. Allocates nothing. */
void embed_registrations_undo(embed_registrations *log, sqlite3 *db);

#endif /* EMBED_VALUE_H */
