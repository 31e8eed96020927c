/*
** describe.c - any SQL value, or text that came from one, as an error
** message shows it.
**
** Usage:
**
**     char *shown = embed_value_shown(argv[0]);   // NULL: out of memory
**     zErr = sqlite3_mprintf("%s: k must be ..., got %s", who, shown);
**     sqlite3_free(shown);
**
**     char *name = embed_text_shown(text, nbytes);  // a name, a path
**
** What a value becomes: NULL; an INTEGER or REAL as SQL prints it; a BLOB
** as "a BLOB of N bytes" (never its bytes); TEXT as itself, but at most
** EMBED_SHOWN_MAX bytes (cut at a character boundary and marked "..."),
** with NUL and bytes that are not valid UTF-8 shown as '?' (core/text.c's
** embed_utf8_quote; a tab or newline stays as it is). So a message that
** echoes what a caller passed is short and valid UTF-8 whatever was passed:
** Python, for one, decodes every message and fails on invalid UTF-8.
*/
#include "value/value.h"

char *embed_text_shown(const char *p, int64_t n) {
  char *out = (char *)sqlite3_malloc64(EMBED_QUOTE_SIZE(EMBED_SHOWN_MAX));
  if (out) embed_utf8_quote(p ? p : "", p ? n : 0, EMBED_SHOWN_MAX, 0, out);
  return out;
}

char *embed_value_shown(sqlite3_value *v) {
  switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
      return sqlite3_mprintf("%lld", (long long)sqlite3_value_int64(v));
    case SQLITE_FLOAT:
      return sqlite3_mprintf("%!.15g", sqlite3_value_double(v));
    case SQLITE_BLOB:
      return sqlite3_mprintf("a BLOB of %d bytes", sqlite3_value_bytes(v));
    case SQLITE_TEXT: {
      const char *text = (const char *)sqlite3_value_text(v);
      return text ? embed_text_shown(text, sqlite3_value_bytes(v)) : 0;
    }
    default:
      return sqlite3_mprintf("NULL");
  }
}
