/*
** io/io.h - embedding files in and out of SQL: embed_file and embed_save.
*/
#ifndef EMBED_IO_H
#define EMBED_IO_H

#include "value/value.h"

int embed_register_files(sqlite3 *db);

#endif /* EMBED_IO_H */
