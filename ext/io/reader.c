/*
** reader.c - a file read through one buffer, for the embed_file parsers.
**
** Usage (from the parsers; file_table.c opens the FILE):
**
**     embed_file_reader r = {0};
**     r.f = f;  r.size = regular ? st_size : -1;
**     rc = embed_reader_fill(&r, want, max_cap);  // SQLITE_OK or NOMEM
**     if (r.io_errno) ...read error...
**     // r.buf[r.pos .. r.end): the bytes not consumed; fewer than want
**     // only at the end of the file, after a read error, or beyond max_cap
**     r.pos += used;
**     embed_reader_close(&r);
**
** Design:
**  - One buffer of IO_CHUNK bytes, grown (doubling) only when a caller
**    asks for more at once, never beyond its max_cap: a line of text, a
**    binary entry, a .npy header or row. So a file of any size is read in
**    memory bounded by its largest entry.
**  - A fill first moves the unconsumed bytes to the front (base counts
**    the bytes dropped, so base + pos is always the file offset), then
**    reads until want bytes are there, the buffer is full, or the file
**    ends. The FILE is unbuffered (setvbuf _IONBF): this is the buffer.
**  - A read error is kept in io_errno (errno, or EIO) rather than
**    returned, so that the parser reports it with the file's name and
**    offset (embed_file_read_error); later fills do nothing.
*/
#include <errno.h>
#include <string.h>

#include "io/io.h"

void embed_reader_close(embed_file_reader *r) {
  if (r->f) fclose(r->f);
  sqlite3_free(r->buf);
  memset(r, 0, sizeof(*r));
}

int embed_reader_fill(embed_file_reader *r, int64_t want, int64_t max_cap) {
  if (r->end - r->pos >= want || r->at_eof || r->io_errno) return SQLITE_OK;
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, (size_t)(r->end - r->pos));
    r->base += r->pos;
    r->end -= r->pos;
    r->pos = 0;
  }
  if (want > r->cap) {
    int64_t cap = r->cap ? r->cap : IO_CHUNK;
    char *grown;
    while (cap < want) cap *= 2;
    if (cap > max_cap) cap = max_cap;
    if (cap > r->cap) {
      grown = sqlite3_realloc64(r->buf, (sqlite3_uint64)cap);
      if (!grown) return SQLITE_NOMEM;
      r->buf = grown;
      r->cap = cap;
    }
  }
  while (r->end < want && r->end < r->cap && !r->at_eof && !r->io_errno) {
    size_t got;
    errno = 0;
    got = fread(r->buf + r->end, 1, (size_t)(r->cap - r->end), r->f);
    r->end += (int64_t)got;
    if (got == 0) {
      if (ferror(r->f))
        r->io_errno = errno ? errno : EIO;
      else
        r->at_eof = 1;
    }
  }
  return SQLITE_OK;
}
