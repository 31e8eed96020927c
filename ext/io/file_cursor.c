/*
** file_cursor.c - what the format parsers of embed_file share on a file
** cursor (io/io.h): its error messages, which name the file and where,
** the quoting of file text inside them, and its row buffers.
**
** Usage (inside a parser, text_formats.c, binary.c, npy.c):
**
**     return embed_file_error(c, "line", c->line, "expected %lld values, "
**                             "found %lld", dim, found);
**     if (rc == EMBED_NUM_NAN) ... embed_nonfinite_name(rc) ...
**
** Design: an error is set on the cursor's virtual table (zErrMsg) and
** returned as SQLITE_ERROR, so it becomes the statement's error; file text
** is quoted at most IO_QUOTE_MAX bytes by core/text.c's embed_utf8_quote
** (control bytes and invalid UTF-8 shown as '?'), and the path as the
** cursor's `shown` form (value/describe.c), so a message is always valid
** UTF-8.
*/
#include <stdarg.h>
#include <string.h>

#include "io/io.h"

int embed_file_error(embed_file_cursor *c, const char *where, int64_t at,
                     const char *zFormat, ...) {
  sqlite3_vtab *vtab = c->base.pVtab;
  char *zWhat, *zMsg = 0;
  va_list ap;
  va_start(ap, zFormat);
  zWhat = sqlite3_vmprintf(zFormat, ap);
  va_end(ap);
  if (zWhat) {
    if (where)
      zMsg = sqlite3_mprintf("embed_file: '%s' %s %lld: %s", c->shown, where,
                             (long long)at, zWhat);
    else
      zMsg = sqlite3_mprintf("embed_file: %s", zWhat);
  }
  sqlite3_free(zWhat);
  sqlite3_free(vtab->zErrMsg);
  vtab->zErrMsg = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

int embed_file_read_error(embed_file_cursor *c) {
  return embed_file_error(c, 0, 0, "cannot read '%s' at byte %lld: %s",
                          c->shown, (long long)(c->r.base + c->r.end),
                          strerror(c->r.io_errno));
}

const char *embed_nonfinite_name(int code) {
  return code == EMBED_NUM_NAN ? "NaN"
                               : (code == EMBED_NUM_POS_INF ? "+Inf" : "-Inf");
}

const char *embed_file_quote(const char *p, int64_t n, char *out) {
  embed_utf8_quote(p, n, IO_QUOTE_MAX, 1, out);
  return out;
}

/* ------------------------------------------------------------- buffers */

int embed_file_alloc_vectors(embed_file_cursor *c) {
  c->vec = sqlite3_malloc64((sqlite3_uint64)c->dim * sizeof(float));
  c->own_blob = sqlite3_malloc64((sqlite3_uint64)c->dim * EMBED_FLOAT_BYTES);
  return (c->vec && c->own_blob) ? SQLITE_OK : SQLITE_NOMEM;
}
