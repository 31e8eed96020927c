/*
** fuzz_common.h - input decoding shared by the SQL-level fuzz harnesses
** (fuzz_sqlfn.c, fuzz_knn.c, fuzz_shadow.c), which link the extension
** (built with -DSQLITE_CORE) and Debian's libsqlite3.a.
**
** An input is read as a stream: small integers (one byte) pick templates,
** and SQL values are encoded as a type byte followed by its payload:
**
**     t % 6 == 0  NULL
**              1  INTEGER: 8 bytes, little-endian (a few favoured values:
**                 the type byte's high bits pick 0..9 without payload)
**              2  REAL: 8 bytes (any double, NaN and Inf included)
**              3  TEXT: a length byte, then that many bytes
**              4  BLOB: a length byte n, then 4 n bytes (a float32 vector)
**              5  BLOB: a length byte, then that many bytes (any length)
*/
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sqlite3.h"

typedef struct fuzz_in {
  const uint8_t *p;
  size_t n;
} fuzz_in;

static unsigned fuzz_byte(fuzz_in *in) {
  if (!in->n) return 0;
  in->n--;
  return *in->p++;
}

static const uint8_t *fuzz_take(fuzz_in *in, size_t want, size_t *got) {
  const uint8_t *p = in->p;
  *got = want < in->n ? want : in->n;
  in->p += *got;
  in->n -= *got;
  return p;
}

/* Bind the next value of the input to parameter i of stmt. */
static void fuzz_bind(fuzz_in *in, sqlite3_stmt *stmt, int i) {
  unsigned t = fuzz_byte(in);
  size_t got;
  const uint8_t *p;
  switch (t % 6) {
    case 0:
      sqlite3_bind_null(stmt, i);
      break;
    case 1: {
      int64_t v = 0;
      if (t >= 128) {
        v = (int64_t)((t >> 3) % 10);
      } else {
        p = fuzz_take(in, 8, &got);
        memcpy(&v, p, got);
      }
      sqlite3_bind_int64(stmt, i, v);
      break;
    }
    case 2: {
      double v = 0;
      p = fuzz_take(in, 8, &got);
      memcpy(&v, p, got);
      sqlite3_bind_double(stmt, i, v);
      break;
    }
    case 3:
      p = fuzz_take(in, fuzz_byte(in), &got);
      sqlite3_bind_text(stmt, i, (const char *)p, (int)got, SQLITE_TRANSIENT);
      break;
    case 4:
      p = fuzz_take(in, 4 * (size_t)fuzz_byte(in), &got);
      sqlite3_bind_blob(stmt, i, p, (int)got, SQLITE_TRANSIENT);
      break;
    default:
      p = fuzz_take(in, fuzz_byte(in), &got);
      sqlite3_bind_blob(stmt, i, p, (int)got, SQLITE_TRANSIENT);
      break;
  }
}

/* Run every statement of sql, binding parameters from the input; errors
** are fine (the harness looks for crashes and sanitizer reports). Returns
** the number of rows. */
static int fuzz_run(sqlite3 *db, const char *sql, fuzz_in *in) {
  const char *tail = sql;
  int rows = 0;
  while (tail && *tail) {
    sqlite3_stmt *stmt = 0;
    int i;
    if (sqlite3_prepare_v2(db, tail, -1, &stmt, &tail) != SQLITE_OK) break;
    if (!stmt) break;
    for (i = 1; i <= sqlite3_bind_parameter_count(stmt); i++)
      fuzz_bind(in, stmt, i);
    while (sqlite3_step(stmt) == SQLITE_ROW) rows++;
    sqlite3_finalize(stmt);
  }
  return rows;
}

/* A fresh database for each input, fast: the first call runs setup and
** keeps the file's bytes; later calls load a copy (sqlite3_deserialize), so
** no input sees another's changes and no CREATE runs again. */
static sqlite3 *fuzz_open(const char *setup) {
  static unsigned char *bytes;
  static sqlite3_int64 nbytes;
  sqlite3 *db = 0;
  unsigned char *copy;
  if (!bytes) {
    unsigned char *s;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
        sqlite3_exec(db, setup, 0, 0, 0) != SQLITE_OK)
      return 0;
    s = sqlite3_serialize(db, "main", &nbytes, 0);
    sqlite3_close(db);
    db = 0;
    if (!s) return 0;
    bytes = (unsigned char *)malloc((size_t)nbytes);
    if (!bytes) return 0;
    memcpy(bytes, s, (size_t)nbytes);
    sqlite3_free(s);
  }
  copy = (unsigned char *)sqlite3_malloc64((sqlite3_uint64)nbytes);
  if (!copy) return 0;
  memcpy(copy, bytes, (size_t)nbytes);
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_deserialize(db, "main", copy, nbytes, nbytes,
                          SQLITE_DESERIALIZE_FREEONCLOSE |
                              SQLITE_DESERIALIZE_RESIZEABLE) != SQLITE_OK) {
    sqlite3_close(db);
    return 0;
  }
  return db;
}

#endif
