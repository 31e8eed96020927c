/*
** sql/sql.h - the SQL functions of embed: the pure vector functions and
** aggregates (functions.c).
*/
#ifndef EMBED_SQL_H
#define EMBED_SQL_H

#include "value/value.h"

int embed_register_functions(sqlite3 *db);

#endif /* EMBED_SQL_H */
