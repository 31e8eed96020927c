/*
** sql/sql.h - the SQL functions of embed: the pure vector functions and
** aggregates (functions.c), and embed_lookup, embed_update and
** embed_optimizer_reset (training.c).
*/
#ifndef EMBED_SQL_H
#define EMBED_SQL_H

#include "table/table.h"

int embed_register_functions(sqlite3 *db, embed_registrations *log);
int embed_register_training(sqlite3 *db, embed_registry *registry,
                            embed_registrations *log);

#endif /* EMBED_SQL_H */
