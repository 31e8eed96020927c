/*
** io/io.h - embedding files in and out of SQL: embed_file and embed_save.
**
** The io layer's one header. embed.c needs only embed_register_files; the
** rest is shared between the layer's files, one per concern:
**
**     file_table.c    the embed_file module: plans, the cursor, its errors,
**                     format detection, and the registration of both
**     reader.c        a file read through one bounded buffer
**     tokens.c        the set of tokens seen, for "first one wins"
**     text_formats.c  word2vec / fastText text and GloVe
**     binary.c        word2vec binary
**     npy.c           numpy .npy
**     save.c          the embed_save aggregate, with atomic file replacement
**
** The README section "Files: word2vec, GloVe, fastText, npy" documents
** both for users. The pure text helpers (UTF-8, float parsing) are in
** core/text.c.
*/
#ifndef EMBED_IO_H
#define EMBED_IO_H

#include <stdio.h>

#include "value/value.h"

/* Register the embed_file module and the embed_save aggregate. */
int embed_register_files(sqlite3 *db, embed_registrations *log);

/* Bounds of the readers and of quoted file text. */
#define IO_CHUNK (1 << 20)     /* bytes a read asks for */
#define IO_MAX_LINE (16 << 20) /* longest text line accepted */
#define IO_MAX_TOKEN 65536     /* longest token, in bytes */
#define IO_DETECT_SPAN 65536   /* bytes inspected to detect text */
#define IO_QUOTE_MAX 40        /* bytes of file text quoted in a message */
#define IO_QUOTE_SIZE (4 * IO_QUOTE_MAX + 4) /* buffer for embed_file_quote */

/* ------------------------------------------------------------ reader.c */

/* A file read through one buffer: buf[pos..end) are the bytes not yet
** consumed, buf[0] is at file offset base. */
typedef struct embed_file_reader {
  FILE *f;
  char *buf;
  int64_t cap, pos, end, base;
  int64_t size; /* of a regular file, or -1 */
  int at_eof;   /* the last read returned nothing more */
  int io_errno; /* errno of a failed read, or 0 */
} embed_file_reader;

/* Close the file, free the buffer, zero the reader. */
void embed_reader_close(embed_file_reader *r);
/* Make at least want bytes available from pos (fewer only at EOF or on a
** read error: check io_errno). Grows the buffer up to max_cap. Returns
** SQLITE_OK or SQLITE_NOMEM. */
int embed_reader_fill(embed_file_reader *r, int64_t want, int64_t max_cap);

/* ------------------------------------------------------------ tokens.c */

/* The tokens seen so far: an open-addressing table of offsets into an
** arena of records [hash u64][length u32][bytes]. Zeroed: empty. */
typedef struct embed_token_set {
  char *arena;
  int64_t arena_len, arena_cap;
  int64_t *slots; /* arena offset + 1; 0 = empty */
  int64_t n, mask;
} embed_token_set;

void embed_token_set_free(embed_token_set *s);
/* Add the token p[0..n); *added is 0 when it was there already. Returns
** SQLITE_OK or SQLITE_NOMEM. */
int embed_token_set_add(embed_token_set *s, const char *p, int64_t n,
                        int *added);

/* -------------------------------------------------------- file_table.c */

/* Per-connection state shared by the module and the aggregate: the count of
** embed_file errors, so that embed_save can tell that its statement failed
** in an embed_file scan. Freed when both the module and the function are. */
typedef struct embed_files_state {
  int refs;
  sqlite3_int64 file_errors;
} embed_files_state;

/* The formats of embed_file, in the order of their names' table. */
typedef enum embed_file_format {
  FMT_AUTO = 0,
  FMT_WORD2VEC,
  FMT_FASTTEXT,
  FMT_WORD2VEC_BINARY,
  FMT_GLOVE,
  FMT_NPY
} embed_file_format;

/* An embed_file scan. xFilter opens the file and reads the header (or npy's
** dict); each xNext reads and checks one entry, setting token and blob. */
typedef struct embed_file_cursor {
  sqlite3_vtab_cursor base;
  embed_file_reader r;
  char *path;               /* sqlite3_malloc'd copy */
  char *shown;              /* the path as messages show it (describe.c) */
  embed_file_format format; /* the format used, never FMT_AUTO after filter */
  int binary, has_header;   /* word2vec-binary; word2vec/fasttext/binary */
  int eof;
  int64_t dim;
  int64_t count;      /* the header's count (or npy rows), -1: none */
  int64_t nread;      /* entries read, duplicates included */
  int64_t line;       /* text: number of the last line read */
  int64_t blank_line; /* text: first blank line since the last entry */
  int npy_f64;        /* npy: float64 data */
  const char *token;  /* current entry's token (into r.buf or NULL) */
  int64_t token_len;
  float *vec;              /* text / npy f64: dim floats */
  unsigned char *blob;     /* current vector as LE bytes (own or r.buf) */
  unsigned char *own_blob; /* dim * EMBED_FLOAT_BYTES bytes */
  embed_token_set seen;
} embed_file_cursor;

/* Set the cursor's error "embed_file: 'path' WHERE AT: <message>" (where
** is "line" or "byte"), or "embed_file: <message>" when where is NULL.
** Returns SQLITE_ERROR, or SQLITE_NOMEM. */
int embed_file_error(embed_file_cursor *c, const char *where, int64_t at,
                     const char *zFormat, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* The error of a failed read (r.io_errno), at the reader's offset. */
int embed_file_read_error(embed_file_cursor *c);
/* "NaN", "+Inf" or "-Inf" for an EMBED_NUM_NAN/_POS_INF/_NEG_INF code. */
const char *embed_nonfinite_name(int code);
/* Quote up to IO_QUOTE_MAX bytes of file text p[0..n) in a message: valid
** UTF-8 is kept, other bytes and control characters become '?', and "..."
** marks a cut. out needs IO_QUOTE_SIZE bytes; returns out. */
const char *embed_file_quote(const char *p, int64_t n, char *out);
/* Allocate the per-entry buffers vec and own_blob once dim is known. */
int embed_file_alloc_vectors(embed_file_cursor *c);

/* ------------------------------------------------------ text_formats.c */

/* Parse a "count dim" header line p[0..len): two non-negative integers,
** blanks (and CR) around them. 1 when it is one, else 0. */
int embed_word2vec_parse_header(const char *p, int64_t len, int64_t *count,
                                int64_t *dim);
/* Read and check the header line of a word2vec text or binary file; sets
** count and dim and allocates the vectors. */
int embed_word2vec_header(embed_file_cursor *c);
/* The next entry of a word2vec, fastText or GloVe text file. */
int embed_text_next(embed_file_cursor *c);

/* ------------------------------------------------------------ binary.c */

/* Little-endian integers from file bytes (any host, any alignment). */
static inline uint32_t io_get_le32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline uint64_t io_get_le64(const unsigned char *p) {
  return (uint64_t)io_get_le32(p) | ((uint64_t)io_get_le32(p + 4) << 32);
}

/* Index of the first NaN/Inf among n little-endian float32 at p, or -1;
** *code is then EMBED_NUM_NAN, _POS_INF or _NEG_INF. */
int64_t embed_first_nonfinite_le32(const unsigned char *p, int64_t n,
                                   int *code);
/* The next entry of a word2vec binary file. */
int embed_binary_next(embed_file_cursor *c);

/* --------------------------------------------------------------- npy.c */

/* Read and check a .npy header; sets count, dim and npy_f64. */
int embed_npy_open(embed_file_cursor *c);
/* The next row of a .npy file. */
int embed_npy_next(embed_file_cursor *c);

/* -------------------------------------------------------------- save.c */

/* The embed_save(path, format, token, vector) aggregate; its user data is
** the connection's embed_files_state. */
void embed_save_step(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void embed_save_final(sqlite3_context *ctx);

#endif /* EMBED_IO_H */
