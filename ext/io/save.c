/*
** save.c - the embed_save aggregate: write rows to an embedding file in
** word2vec text (= fastText .vec), word2vec binary, GloVe or numpy .npy
** format, replacing the file atomically.
**
** Usage:
**
**     SELECT embed_save('out.bin', 'word2vec-binary', token, vector)
**     FROM (SELECT v.token, e.vector FROM vocab v JOIN emb e ON e.id = v.id
**           ORDER BY v.id);                                   -- the count
**     SELECT embed_save('out.txt', 'glove', token, vector) FROM words;
**     SELECT embed_save('w.npy', 'npy', id, vector)
**     FROM (SELECT id, vector FROM emb ORDER BY id);          -- the count
**
** embed_save(path, format, token, vector) writes each group to path, rows
** in the order they arrive (feed it from a subquery with ORDER BY; an outer
** ORDER BY sorts the result, not the input), floats in the fewest digits
** that read back bit-exact (text) or raw (binary, with a newline after each
** vector as the C tool writes), and returns the count written. No rows: 0,
** and no file. Duplicate tokens are written as given (readers keep the
** first). npy is one (n, D) '<f4' C-order array, numpy's version 1.0
** layout: row i is the i-th row given, and the token argument is ignored
** (any value, NULL too), since the file holds one array and nothing else.
** README "Files: word2vec, GloVe, fastText, npy" has the formats.
**
** Errors, each leaving the target as it was: a NULL or empty token, a
** token with whitespace or invalid UTF-8, a NULL or invalid vector, a
** dimension change within the group, a path or format change, a target
** that is a directory, device, FIFO or socket, an I/O error (naming the
** file).
**
** Design:
**  - Atomic replacement: rows go to a temporary file next to the target
**    ("PATH.embed-XXXXXXXX.tmp", random hex, created O_EXCL); at the end
**    the exact header "count dim" and the body are copied to a second
**    temporary file, synced, and renamed over the target (GloVe has no
**    header: the body itself is synced and renamed). A symlink's target
**    is written and the link kept. Any error removes the temporary files.
**    npy needs no copy: the body starts with SAVE_NPY_HEADER blank bytes,
**    overwritten at the end by the header (shape known then), as numpy
**    pads it: the dict, blanks and a newline, 128 bytes in all.
**  - SQLite calls an aggregate's final step also when its statement fails
**    elsewhere (a bad row in the FROM clause, an error in another
**    expression, an interrupt) and gives the function no way to tell;
**    embed_save does notice an embed_file error on the same connection
**    while it ran (the count in embed_files_state) and then writes nothing.
**    For any other source that can fail midway, check the statement's
**    result before trusting the file, or write from a table.
**  - DIRECTONLY (it touches files): not usable from views, triggers or the
**    schema. It uses stdio and POSIX open/rename/fsync/stat.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "io/io.h"

typedef enum save_format {
  SAVE_WORD2VEC = 1,
  SAVE_WORD2VEC_BINARY,
  SAVE_GLOVE,
  SAVE_NPY
} save_format;

/* The bytes of an npy header: magic, version, length and the padded dict
** "{'descr': '<f4', 'fortran_order': False, 'shape': (n, D), }" (at most
** 88 bytes for any 64-bit n and D <= EMBED_MAX_DIM), a multiple of 64. */
#define SAVE_NPY_HEADER 128

/* The state of one group, in the aggregate context (zeroed by SQLite). */
typedef struct save_ctx {
  int started, failed;
  save_format format;
  char *path;       /* the target (a symlink resolved) */
  char *path_arg;   /* the path as given: to catch a change */
  char *path_shown; /* the path as messages show it (value/describe.c) */
  char *format_arg; /* the format as given */
  char *body_path;  /* temporary file with the rows so far */
  FILE *body;
  char *final_path; /* temporary file with header and rows, then renamed */
  int64_t dim, count;
  char *text;          /* a row's numbers as text */
  unsigned char *blob; /* a row's vector as LE float32 */
  embed_files_state *st;
  sqlite3_int64 file_errors; /* st->file_errors when the group started */
} save_ctx;

/* Remove what a group left behind; the target is never touched here. */
static void save_cleanup(save_ctx *s) {
  if (s->body) fclose(s->body);
  if (s->body_path) remove(s->body_path);
  if (s->final_path) remove(s->final_path);
  sqlite3_free(s->path);
  sqlite3_free(s->path_arg);
  sqlite3_free(s->path_shown);
  sqlite3_free(s->format_arg);
  sqlite3_free(s->body_path);
  sqlite3_free(s->final_path);
  sqlite3_free(s->text);
  sqlite3_free(s->blob);
  s->body = 0;
  s->path = s->path_arg = s->path_shown = s->format_arg = 0;
  s->body_path = s->final_path = s->text = 0;
  s->blob = 0;
}

/* Create "PATH.embed-XXXXXXXX.tmp" exclusively (mode 0666 less umask). */
static int save_create_temp(save_ctx *s, char **name, FILE **out,
                            char **pzErr) {
  int attempt;
  for (attempt = 0; attempt < 100; attempt++) {
    unsigned int u;
    int fd, flags = O_RDWR | O_CREAT | O_EXCL;
#ifdef O_CLOEXEC
    flags |= O_CLOEXEC;
#endif
    sqlite3_randomness((int)sizeof(u), &u);
    *name = sqlite3_mprintf("%s.embed-%08x.tmp", s->path, u);
    if (!*name) return SQLITE_NOMEM;
    fd = open(*name, flags, 0666);
    if (fd >= 0) {
      *out = fdopen(fd, "w+b");
      if (*out) return SQLITE_OK;
      close(fd);
    }
    if (fd >= 0 || errno != EEXIST) {
      int err = errno;
      if (fd >= 0) remove(*name);
      sqlite3_free(*name);
      *name = 0;
      return embed_fail(
          pzErr,
          sqlite3_mprintf(
              "embed_save: cannot create a temporary file next to '%s': %s",
              s->path_shown, strerror(err)));
    }
    sqlite3_free(*name);
    *name = 0;
  }
  return embed_fail(
      pzErr,
      sqlite3_mprintf("embed_save: cannot create a temporary file next to '%s'",
                      s->path_shown));
}

static int save_write_error(save_ctx *s, char **pzErr) {
  return embed_fail(
      pzErr, sqlite3_mprintf("embed_save: cannot write '%s': %s", s->path_shown,
                             strerror(errno ? errno : EIO)));
}

static int save_write(save_ctx *s, FILE *f, const void *p, int64_t n,
                      char **pzErr) {
  errno = 0;
  if (n > 0 && fwrite(p, 1, (size_t)n, f) != (size_t)n)
    return save_write_error(s, pzErr);
  return SQLITE_OK;
}

/* The first row of a group: check path and format, create the body file. */
static int save_start(save_ctx *s, sqlite3_context *ctx, sqlite3_value **argv,
                      char **pzErr) {
  const char *path = (const char *)sqlite3_value_text(argv[0]);
  const char *fmt = (const char *)sqlite3_value_text(argv[1]);
  struct stat sb;
  int rc;
  s->started = 1;
  s->st = (embed_files_state *)sqlite3_user_data(ctx);
  s->file_errors = s->st->file_errors;
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT || !path || !path[0])
    return embed_fail(
        pzErr,
        sqlite3_mprintf("embed_save: the path must be non-empty TEXT, got %s",
                        sqlite3_value_type(argv[0]) == SQLITE_TEXT
                            ? "''"
                            : embed_type_name(sqlite3_value_type(argv[0]))));
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT || !fmt)
    return embed_fail(
        pzErr, sqlite3_mprintf("embed_save: the format must be TEXT, got %s",
                               embed_type_name(sqlite3_value_type(argv[1]))));
  if (sqlite3_stricmp(fmt, "word2vec") == 0 ||
      sqlite3_stricmp(fmt, "fasttext") == 0)
    s->format = SAVE_WORD2VEC;
  else if (sqlite3_stricmp(fmt, "word2vec-binary") == 0)
    s->format = SAVE_WORD2VEC_BINARY;
  else if (sqlite3_stricmp(fmt, "glove") == 0)
    s->format = SAVE_GLOVE;
  else if (sqlite3_stricmp(fmt, "npy") == 0)
    s->format = SAVE_NPY;
  else {
    char *shown = embed_value_shown(argv[1]);
    int failed =
        shown
            ? embed_fail(
                  pzErr,
                  sqlite3_mprintf(
                      "embed_save: unknown format '%s' (expected word2vec, word2vec-binary, fasttext, glove or npy)",
                      shown))
            : SQLITE_NOMEM;
    sqlite3_free(shown);
    return failed;
  }
  s->format_arg = sqlite3_mprintf("%s", fmt);
  s->path_arg = sqlite3_mprintf("%s", path);
  s->path_shown = embed_value_shown(argv[0]);
  if (!s->format_arg || !s->path_arg || !s->path_shown) return SQLITE_NOMEM;
  if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
    /* write the file the link points to, keeping the link */
    char *real = realpath(path, 0);
    if (real) {
      s->path = sqlite3_mprintf("%s", real);
      free(real);
    } else {
      s->path = sqlite3_mprintf("%s", path); /* dangling: replace the link */
    }
  } else {
    s->path = sqlite3_mprintf("%s", path);
  }
  if (!s->path) return SQLITE_NOMEM;
  if (stat(s->path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode))
      return embed_fail(
          pzErr,
          sqlite3_mprintf("embed_save: '%s' is a directory", s->path_shown));
    if (!S_ISREG(sb.st_mode))
      return embed_fail(
          pzErr,
          sqlite3_mprintf(
              "embed_save: '%s' is not a regular file (a device, FIFO or socket)",
              s->path_shown));
  }
  rc = save_create_temp(s, &s->body_path, &s->body, pzErr);
  if (rc == SQLITE_OK && s->format == SAVE_NPY) {
    char blank[SAVE_NPY_HEADER];
    memset(blank, ' ', sizeof(blank));
    rc = save_write(s, s->body, blank, SAVE_NPY_HEADER, pzErr);
  }
  return rc;
}

/* Check a token for the formats: non-empty UTF-8 text without whitespace. */
static int save_check_token(sqlite3_value *val, const char **out, int64_t *len,
                            char **pzErr) {
  int type = sqlite3_value_type(val);
  const unsigned char *t;
  int64_t n, i;
  if (type == SQLITE_NULL || type == SQLITE_BLOB) {
    return embed_fail(
        pzErr, sqlite3_mprintf("embed_save: the token must be TEXT, got %s",
                               embed_type_name(type)));
  }
  t = sqlite3_value_text(val);
  if (!t) return SQLITE_NOMEM;
  n = sqlite3_value_bytes(val);
  if (n == 0) {
    return embed_fail(pzErr, sqlite3_mprintf("embed_save: empty token"));
  }
  for (i = 0; i < n; i++) {
    if (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r' ||
        t[i] == '\v' || t[i] == '\f') {
      char *shown = embed_text_shown((const char *)t, n);
      *pzErr =
          shown
              ? sqlite3_mprintf(
                    "embed_save: token '%s' contains whitespace (the file formats separate with it)",
                    shown)
              : 0;
      sqlite3_free(shown);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
  }
  if (embed_utf8_valid_prefix(t, n) != n) {
    return embed_fail(
        pzErr,
        sqlite3_mprintf("embed_save: token is not valid UTF-8 (byte %lld)",
                        (long long)embed_utf8_valid_prefix(t, n)));
  }
  *out = (const char *)t;
  *len = n;
  return SQLITE_OK;
}

/* One row: validate, then append to the body file. */
static int save_row(save_ctx *s, sqlite3_context *ctx, sqlite3_value **argv,
                    char **pzErr) {
  const char *token = 0;
  int64_t token_len = 0;
  embed_vec vec = {0, 0};
  int rc;
  if (!s->started) {
    rc = save_start(s, ctx, argv, pzErr);
    if (rc) return rc;
  } else {
    const char *path = (const char *)sqlite3_value_text(argv[0]);
    const char *fmt = (const char *)sqlite3_value_text(argv[1]);
    if (!path || strcmp(path, s->path_arg) != 0 || !fmt ||
        strcmp(fmt, s->format_arg) != 0)
      return embed_fail(
          pzErr,
          sqlite3_mprintf(
              "embed_save: the path or format changed within the group (was '%s', '%s')",
              s->path_shown, s->format_arg));
  }
  if (s->format != SAVE_NPY) {
    rc = save_check_token(argv[2], &token, &token_len, pzErr);
    if (rc) return rc;
  }
  rc = embed_vec_from_value(argv[3], "embed_save", &vec, pzErr);
  if (rc) return rc;
  if (s->format == SAVE_NPY &&
      (!vec.v || (s->count > 0 && vec.dim != s->dim))) {
    rc =
        !vec.v
            ? embed_fail(pzErr,
                         sqlite3_mprintf("embed_save: NULL vector at row %lld",
                                         (long long)s->count))
            : embed_fail(
                  pzErr,
                  sqlite3_mprintf(
                      "embed_save: dimension mismatch at row %lld (%lld vs %lld)",
                      (long long)s->count, (long long)vec.dim,
                      (long long)s->dim));
    goto done;
  }
  if (!vec.v || (s->count > 0 && vec.dim != s->dim)) {
    /* the token is valid UTF-8 by now, but may be long */
    char *shown = embed_text_shown(token, token_len);
    rc =
        !shown ? SQLITE_NOMEM
        : !vec.v
            ? embed_fail(pzErr,
                         sqlite3_mprintf(
                             "embed_save: NULL vector for token '%s'", shown))
            : embed_fail(
                  pzErr,
                  sqlite3_mprintf(
                      "embed_save: dimension mismatch at token '%s' (%lld vs %lld)",
                      shown, (long long)vec.dim, (long long)s->dim));
    sqlite3_free(shown);
    goto done;
  }
  if (s->count == 0) {
    s->dim = vec.dim;
    s->text = sqlite3_malloc64((sqlite3_uint64)embed_json_format_size(vec.dim));
    s->blob = sqlite3_malloc64((sqlite3_uint64)vec.dim * EMBED_FLOAT_BYTES);
    if (!s->text || !s->blob) {
      rc = SQLITE_NOMEM;
      goto done;
    }
  }
  if (s->format == SAVE_NPY) {
    embed_blob_encode(vec.v, vec.dim, s->blob);
    rc = save_write(s, s->body, s->blob, EMBED_FLOAT_BYTES * vec.dim, pzErr);
    if (rc == SQLITE_OK) s->count++;
    goto done;
  }
  rc = save_write(s, s->body, token, token_len, pzErr);
  if (rc == SQLITE_OK) rc = save_write(s, s->body, " ", 1, pzErr);
  if (rc == SQLITE_OK && s->format == SAVE_WORD2VEC_BINARY) {
    embed_blob_encode(vec.v, vec.dim, s->blob);
    rc = save_write(s, s->body, s->blob, EMBED_FLOAT_BYTES * vec.dim, pzErr);
  } else if (rc == SQLITE_OK) {
    int64_t i, len = embed_json_format(vec.v, vec.dim, s->text);
    for (i = 1; i < len - 1; i++)
      if (s->text[i] == ',') s->text[i] = ' ';
    rc = save_write(s, s->body, s->text + 1, len - 2, pzErr);
  }
  if (rc == SQLITE_OK) rc = save_write(s, s->body, "\n", 1, pzErr);
  if (rc == SQLITE_OK) s->count++;
done:
  embed_vec_free(&vec);
  return rc;
}

void embed_save_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  save_ctx *s = sqlite3_aggregate_context(ctx, (int)sizeof(save_ctx));
  char *zErr = 0;
  int rc;
  (void)argc;
  if (!s) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  if (s->failed) return;
  rc = save_row(s, ctx, argv, &zErr);
  if (rc) {
    s->failed = 1;
    save_cleanup(s);
    embed_result_error(ctx, rc, zErr);
  }
}

/* The npy header of an (n, dim) float32 array, padded as numpy pads it, in
** out[SAVE_NPY_HEADER]. */
static void save_npy_header(int64_t n, int64_t dim, char *out) {
  int len;
  memset(out, ' ', SAVE_NPY_HEADER);
  memcpy(out, "\x93NUMPY\x01\x00", 8);
  out[8] = (char)((SAVE_NPY_HEADER - 10) & 0xff);
  out[9] = (char)((SAVE_NPY_HEADER - 10) >> 8);
  len = snprintf(
      out + 10, SAVE_NPY_HEADER - 10,
      "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
      (long long)n, (long long)dim);
  out[10 + len] = ' '; /* snprintf's terminator */
  out[SAVE_NPY_HEADER - 1] = '\n';
}

/* Write the header and the body to the final temporary file, sync it and
** rename it over the target. */
static int save_commit(save_ctx *s, char **pzErr) {
  FILE *out = 0;
  char *buf = 0, header[SAVE_NPY_HEADER];
  int rc = SQLITE_OK, hlen;
  errno = 0;
  if (fflush(s->body) != 0 || ferror(s->body))
    return save_write_error(s, pzErr);
  if (s->format == SAVE_NPY) {
    /* the header over the blank bytes the body starts with */
    save_npy_header(s->count, s->dim, header);
    if (fseek(s->body, 0, SEEK_SET) != 0) return save_write_error(s, pzErr);
    rc = save_write(s, s->body, header, SAVE_NPY_HEADER, pzErr);
    if (rc) return rc;
    errno = 0;
    if (fflush(s->body) != 0) return save_write_error(s, pzErr);
  }
  if (s->format == SAVE_GLOVE || s->format == SAVE_NPY) {
    /* the body is the file (GloVe has no header, npy's is in place) */
    if (fsync(fileno(s->body)) != 0) return save_write_error(s, pzErr);
    if (fclose(s->body) != 0) {
      s->body = 0;
      return save_write_error(s, pzErr);
    }
    s->body = 0;
    s->final_path = s->body_path;
    s->body_path = 0;
  } else {
    rc = save_create_temp(s, &s->final_path, &out, pzErr);
    if (rc) return rc;
    hlen = snprintf(header, sizeof(header), "%lld %lld\n", (long long)s->count,
                    (long long)s->dim);
    rc = save_write(s, out, header, hlen, pzErr);
    buf = sqlite3_malloc64(IO_CHUNK);
    if (rc == SQLITE_OK && !buf) rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK && fseek(s->body, 0, SEEK_SET) != 0)
      rc = save_write_error(s, pzErr);
    while (rc == SQLITE_OK) {
      size_t got = fread(buf, 1, IO_CHUNK, s->body);
      if (got == 0) {
        if (ferror(s->body)) rc = save_write_error(s, pzErr);
        break;
      }
      rc = save_write(s, out, buf, (int64_t)got, pzErr);
    }
    sqlite3_free(buf);
    errno = 0;
    if (rc == SQLITE_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0))
      rc = save_write_error(s, pzErr);
    if (fclose(out) != 0 && rc == SQLITE_OK) rc = save_write_error(s, pzErr);
    if (rc) return rc;
  }
  if (rename(s->final_path, s->path) != 0)
    return embed_fail(pzErr,
                      sqlite3_mprintf("embed_save: cannot replace '%s': %s",
                                      s->path_shown, strerror(errno)));
  sqlite3_free(s->final_path);
  s->final_path = 0; /* renamed: cleanup must not remove it */
  return SQLITE_OK;
}

void embed_save_final(sqlite3_context *ctx) {
  save_ctx *s = sqlite3_aggregate_context(ctx, 0);
  char *zErr = 0;
  int rc;
  if (!s || !s->started) {
    sqlite3_result_int64(ctx, 0); /* no rows: nothing written */
    return;
  }
  if (s->failed) { /* the error is already the statement's */
    save_cleanup(s);
    return;
  }
  if (s->st->file_errors != s->file_errors) {
    /* an embed_file scan failed on this connection while the group was
    ** written: most likely this statement's input, so write nothing */
    rc = embed_fail(
        &zErr,
        sqlite3_mprintf(
            "embed_save: '%s' not written: an embed_file read failed meanwhile",
            s->path_shown));
  } else {
    rc = save_commit(s, &zErr);
  }
  save_cleanup(s);
  if (rc)
    embed_result_error(ctx, rc, zErr);
  else
    sqlite3_result_int64(ctx, s->count);
}
