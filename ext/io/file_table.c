/*
** file_table.c - the embed_file table-valued function: an eponymous-only
** virtual table that reads an embedding file row by row. The formats are
** parsed in text_formats.c, binary.c and npy.c (with file_cursor.c's
** errors and buffers); this file plans, opens, detects the format and
** registers embed_file and embed_save (save.c).
**
** Usage:
**
**     SELECT token, vector FROM embed_file('glove.6B.50d.txt');
**     SELECT n, token, vector FROM embed_file('GoogleNews.bin',
**                                             'word2vec-binary');
**
**     BEGIN;                          -- a vocabulary and its vectors
**     CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE);
**     CREATE VIRTUAL TABLE emb USING embedding(dim=50);
**     CREATE TEMP TABLE f AS SELECT n, token, vector FROM embed_file('w.vec');
**     INSERT INTO vocab(id, token) SELECT n, token FROM f;
**     INSERT INTO emb(id, vector) SELECT n, vector FROM f;
**     COMMIT;
**
** Columns: token TEXT, vector BLOB (D float32), n INTEGER (the 0-based
** index of the entry in the file, duplicates counted; also the rowid), and
** the hidden arguments path and format ('word2vec', 'fasttext',
** 'word2vec-binary', 'glove', 'npy', any case; README "Files: word2vec,
** GloVe, fastText, npy").
**
** Without a format: the magic "\x93NUMPY" means npy; a first line of two
** integers is a word2vec header, and the file is text when the first line
** after it is clean text (valid UTF-8, no control bytes but tab and CR),
** binary otherwise; anything else is GloVe. A header of two integers can't
** be told from a GloVe entry of dimension 1 whose token is a number; pass
** the format for such files. A UTF-8 byte order mark is skipped (not in
** npy).
**
** Errors name the file and where: "embed_file: 'v.txt' line 5: expected
** 300 values, found 299" (text) or "... 'v.bin' byte 1234: ..." (binary,
** npy), or only the file: a missing file, a directory, an empty file.
**
** Design:
**  - Plans: the path (and the format) must be usable equality constraints
**    (idxNum FILE_IDX_PATH | FILE_IDX_FORMAT, arguments path then format).
**    A present but unusable one gives SQLITE_CONSTRAINT, so the planner
**    orders the join to make it usable; no path at all is an error. Output
**    is in n order, so ORDER BY n is consumed.
**  - Streaming: xFilter opens the file and reads the header; every entry
**    is parsed and checked in xNext, through one bounded buffer (reader.c),
**    so memory does not grow with the file but for the token set
**    (tokens.c). An error surfaces as the statement's error at the entry
**    where it is; rows before it were already returned, so load inside a
**    transaction and an error leaves nothing behind after ROLLBACK.
**  - Every error counts in the connection's embed_files_state, which
**    embed_save reads to refuse writing a file from a failed scan.
**  - DIRECTONLY (it touches files): not usable from views, triggers or the
**    schema. It uses stdio and fstat.
*/
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "io/io.h"

static void io_files_state_release(void *p) {
  embed_files_state *st = (embed_files_state *)p;
  if (st && --st->refs == 0) sqlite3_free(st);
}

/* The format argument's spellings, indexed by embed_file_format. */
static const char *const io_format_names[] = {
    "auto", "word2vec", "fasttext", "word2vec-binary", "glove", "npy"};

enum {
  FILE_COL_TOKEN = 0,
  FILE_COL_VECTOR,
  FILE_COL_N,
  FILE_COL_PATH,
  FILE_COL_FORMAT
};
enum { FILE_IDX_PATH = 1, FILE_IDX_FORMAT = 2 };

typedef struct io_file_vtab {
  sqlite3_vtab base;
  embed_files_state *st;
} io_file_vtab;

/* ------------------------------------------------------------ the table */

static int fileConnect(sqlite3 *db, void *pAux, int argc,
                       const char *const *argv, sqlite3_vtab **ppVtab,
                       char **pzErr) {
  io_file_vtab *vt;
  int rc;
  (void)argc;
  (void)argv;
  (void)pzErr;
  rc = sqlite3_declare_vtab(
      db,
      "CREATE TABLE x(token TEXT, vector BLOB, n INTEGER, path HIDDEN, format HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  vt = sqlite3_malloc64(sizeof(*vt));
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof(*vt));
  vt->st = (embed_files_state *)pAux;
  *ppVtab = &vt->base;
  return SQLITE_OK;
}

static int fileDisconnect(sqlite3_vtab *pVtab) {
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

/* Plans: idxNum FILE_IDX_PATH | FILE_IDX_FORMAT, arguments path then
** format. A path or format constraint that is present but unusable (its
** value depends on a table not yet scanned) gives SQLITE_CONSTRAINT, so
** the planner orders the join to make it usable. */
static int fileBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *info) {
  int i, path = -1, format = -1, path_unusable = 0, format_unusable = 0;
  for (i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *cons = &info->aConstraint[i];
    if (cons->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (cons->iColumn == FILE_COL_PATH) {
      if (cons->usable)
        path = i;
      else
        path_unusable = 1;
    } else if (cons->iColumn == FILE_COL_FORMAT) {
      if (cons->usable)
        format = i;
      else
        format_unusable = 1;
    }
  }
  if (path < 0) {
    if (path_unusable) return SQLITE_CONSTRAINT;
    sqlite3_free(pVtab->zErrMsg);
    pVtab->zErrMsg = sqlite3_mprintf(
        "embed_file: a file path is required, as in SELECT token, vector FROM embed_file('vectors.txt')");
    return pVtab->zErrMsg ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  if (format_unusable && format < 0) return SQLITE_CONSTRAINT;
  info->aConstraintUsage[path].argvIndex = 1;
  info->aConstraintUsage[path].omit = 1;
  info->idxNum = FILE_IDX_PATH;
  if (format >= 0) {
    info->aConstraintUsage[format].argvIndex = 2;
    info->aConstraintUsage[format].omit = 1;
    info->idxNum |= FILE_IDX_FORMAT;
  }
  if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == FILE_COL_N &&
      !info->aOrderBy[0].desc)
    info->orderByConsumed = 1;
  info->estimatedCost = 1000000.0;
  info->estimatedRows = 100000;
  return SQLITE_OK;
}

static int fileOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor) {
  embed_file_cursor *c = sqlite3_malloc64(sizeof(*c));
  (void)pVtab;
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  c->eof = 1;
  *ppCursor = &c->base;
  return SQLITE_OK;
}

static void file_cursor_reset(embed_file_cursor *c) {
  embed_reader_close(&c->r);
  sqlite3_free(c->path);
  sqlite3_free(c->shown);
  sqlite3_free(c->vec);
  sqlite3_free(c->own_blob);
  embed_token_set_free(&c->seen);
  c->path = c->shown = 0;
  c->vec = 0;
  c->own_blob = 0;
  c->blob = 0;
  c->token = 0;
  c->token_len = 0;
  c->eof = 1;
  c->dim = 0;
  c->count = -1;
  c->nread = 0;
  c->line = 0;
  c->blank_line = 0;
  c->binary = c->has_header = c->npy_f64 = 0;
  c->format = FMT_AUTO;
}

static int fileClose(sqlite3_vtab_cursor *cur) {
  file_cursor_reset((embed_file_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Is p[0..n) clean text: valid UTF-8 without control bytes but tab and CR?
** A multi-byte character cut by the end of the span (cut=1) is allowed. */
static int file_clean_text(const unsigned char *p, int64_t n, int cut) {
  int64_t i, valid;
  for (i = 0; i < n; i++)
    if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\r') || p[i] == 0x7F) return 0;
  valid = embed_utf8_valid_prefix(p, n);
  return valid == n || (cut && n - valid < 4);
}

/* Choose the format of a file opened without one (see the top comment):
** from the first IO_DETECT_SPAN bytes after the header line. */
static int file_detect_format(embed_file_cursor *c) {
  embed_file_reader *r = &c->r;
  const char *p = r->buf + r->pos, *nl;
  int64_t avail = r->end - r->pos, count, dim;
  if (avail == 0)
    return embed_file_error(c, 0, 0, "'%s' is empty (no format to detect)",
                            c->shown);
  if (avail >= 6 && memcmp(p, "\x93NUMPY", 6) == 0) {
    c->format = FMT_NPY;
    return SQLITE_OK;
  }
  nl = memchr(p, '\n', (size_t)(avail < 256 ? avail : 256));
  if (embed_word2vec_parse_header(p, nl ? nl - p : (avail < 256 ? avail : 0),
                                  &count, &dim)) {
    const unsigned char *body =
        (const unsigned char *)(nl ? nl + 1 : p + avail);
    int64_t n = (const unsigned char *)(r->buf + r->end) - body;
    const unsigned char *bnl;
    int cut = 0;
    if (n > IO_DETECT_SPAN) n = IO_DETECT_SPAN;
    bnl = memchr(body, '\n', (size_t)n);
    if (bnl)
      n = bnl - body;
    else
      cut = !r->at_eof || n == IO_DETECT_SPAN;
    c->format =
        file_clean_text(body, n, cut) ? FMT_WORD2VEC : FMT_WORD2VEC_BINARY;
    return SQLITE_OK;
  }
  c->format = FMT_GLOVE;
  return SQLITE_OK;
}

static int fileNext(sqlite3_vtab_cursor *cur);

static int fileFilter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr,
                      int argc, sqlite3_value **argv) {
  embed_file_cursor *c = (embed_file_cursor *)cur;
  io_file_vtab *vt = (io_file_vtab *)cur->pVtab;
  const char *path, *fmt = 0;
  struct stat sb;
  FILE *f;
  int rc, i;
  (void)idxStr;
  file_cursor_reset(c);
  c->path = sqlite3_mprintf("%s", "");
  if (!c->path) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  if (argc < 1 || !(idxNum & FILE_IDX_PATH)) {
    rc = embed_file_error(c, 0, 0, "a file path is required");
    goto done;
  }
  if (sqlite3_value_type(argv[0]) == SQLITE_BLOB ||
      ((idxNum & FILE_IDX_FORMAT) && argc > 1 &&
       sqlite3_value_type(argv[1]) == SQLITE_BLOB)) {
    int is_path = sqlite3_value_type(argv[0]) == SQLITE_BLOB;
    char *shown = embed_value_shown(argv[is_path ? 0 : 1]);
    rc = shown ? embed_file_error(c, 0, 0, "the %s must be TEXT, got %s",
                                  is_path ? "path" : "format", shown)
               : SQLITE_NOMEM;
    sqlite3_free(shown);
    goto done;
  }
  path = (const char *)sqlite3_value_text(argv[0]);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || !path || !path[0]) {
    rc = embed_file_error(
        c, 0, 0, "the path is %s",
        sqlite3_value_type(argv[0]) == SQLITE_NULL ? "NULL" : "empty");
    goto done;
  }
  sqlite3_free(c->path);
  c->path = sqlite3_mprintf("%s", path);
  c->shown = embed_value_shown(argv[0]);
  if (!c->path || !c->shown) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  if ((idxNum & FILE_IDX_FORMAT) && argc > 1 &&
      sqlite3_value_type(argv[1]) != SQLITE_NULL) {
    fmt = (const char *)sqlite3_value_text(argv[1]);
    if (!fmt) {
      rc = SQLITE_NOMEM;
      goto done;
    }
    for (i = FMT_WORD2VEC; i <= FMT_NPY; i++)
      if (sqlite3_stricmp(fmt, io_format_names[i]) == 0) c->format = i;
    if (c->format == FMT_AUTO) {
      char *shown = embed_value_shown(argv[1]);
      rc =
          shown
              ? embed_file_error(
                    c, 0, 0,
                    "unknown format '%s' (expected word2vec, word2vec-binary, glove, fasttext or npy)",
                    shown)
              : SQLITE_NOMEM;
      sqlite3_free(shown);
      goto done;
    }
  }
  f = fopen(c->path, "rb");
  if (!f) {
    rc = embed_file_error(c, 0, 0, "cannot open '%s': %s", c->shown,
                          strerror(errno));
    goto done;
  }
  c->r.f = f;
  if (fstat(fileno(f), &sb) != 0) {
    rc = embed_file_error(c, 0, 0, "cannot open '%s': %s", c->shown,
                          strerror(errno));
    goto done;
  }
  if (S_ISDIR(sb.st_mode)) {
    rc = embed_file_error(c, 0, 0, "'%s' is a directory", c->shown);
    goto done;
  }
  c->r.size = S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
  setvbuf(f, 0, _IONBF, 0);
  rc = embed_reader_fill(&c->r, IO_DETECT_SPAN + 512, IO_CHUNK);
  if (rc) goto done;
  if (c->r.io_errno) {
    rc = embed_file_read_error(c);
    goto done;
  }
  if (c->format != FMT_NPY && c->r.end - c->r.pos >= 3 &&
      memcmp(c->r.buf + c->r.pos, "\xEF\xBB\xBF", 3) == 0)
    c->r.pos += 3; /* a UTF-8 byte order mark */
  if (c->format == FMT_AUTO) {
    rc = file_detect_format(c);
    if (rc) goto done;
  }
  c->binary = c->format == FMT_WORD2VEC_BINARY;
  c->has_header = c->format != FMT_GLOVE && c->format != FMT_NPY;
  c->eof = 0;
  if (c->format == FMT_NPY)
    rc = embed_npy_open(c);
  else if (c->has_header)
    rc = embed_word2vec_header(c);
  if (rc == SQLITE_OK) rc = fileNext(cur);
done:
  if (rc != SQLITE_OK) {
    c->eof = 1;
    vt->st->file_errors++;
  }
  return rc;
}

static int fileNext(sqlite3_vtab_cursor *cur) {
  embed_file_cursor *c = (embed_file_cursor *)cur;
  int rc;
  c->token = 0;
  c->blob = 0;
  if (c->format == FMT_NPY)
    rc = embed_npy_next(c);
  else if (c->binary)
    rc = embed_binary_next(c);
  else
    rc = embed_text_next(c);
  if (rc != SQLITE_OK) {
    c->eof = 1;
    ((io_file_vtab *)cur->pVtab)->st->file_errors++;
  }
  return rc;
}

static int fileEof(sqlite3_vtab_cursor *cur) {
  return ((embed_file_cursor *)cur)->eof;
}

static int fileColumn(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  embed_file_cursor *c = (embed_file_cursor *)cur;
  switch (i) {
    case FILE_COL_TOKEN:
      if (c->token)
        sqlite3_result_text64(ctx, c->token, (sqlite3_uint64)c->token_len,
                              SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    case FILE_COL_VECTOR:
      if (c->blob)
        sqlite3_result_blob64(ctx, c->blob,
                              (sqlite3_uint64)c->dim * EMBED_FLOAT_BYTES,
                              SQLITE_TRANSIENT);
      break;
    case FILE_COL_N:
      sqlite3_result_int64(ctx, c->nread - 1);
      break;
    case FILE_COL_PATH:
      sqlite3_result_text(ctx, c->path, -1, SQLITE_TRANSIENT);
      break;
    default:
      sqlite3_result_text(ctx, io_format_names[c->format], -1, SQLITE_STATIC);
      break;
  }
  return SQLITE_OK;
}

static int fileRowid(sqlite3_vtab_cursor *cur, sqlite_int64 *pRowid) {
  *pRowid = ((embed_file_cursor *)cur)->nread - 1;
  return SQLITE_OK;
}

static sqlite3_module io_file_module = {
    0,              /* iVersion */
    0,              /* xCreate: none, so the module is eponymous-only */
    fileConnect,    /* xConnect */
    fileBestIndex,  /* xBestIndex */
    fileDisconnect, /* xDisconnect */
    0,              /* xDestroy */
    fileOpen,       /* xOpen */
    fileClose,      /* xClose */
    fileFilter,     /* xFilter */
    fileNext,       /* xNext */
    fileEof,        /* xEof */
    fileColumn,     /* xColumn */
    fileRowid,      /* xRowid */
    0,              /* xUpdate */
    0,              /* xBegin */
    0,              /* xSync */
    0,              /* xCommit */
    0,              /* xRollback */
    0,              /* xFindFunction */
    0,              /* xRename */
    0,              /* xSavepoint */
    0,              /* xRelease */
    0,              /* xRollbackTo */
    0,              /* xShadowName */
#if SQLITE_VERSION_NUMBER >= 3044000
    0, /* xIntegrity */
#endif
};

/* ------------------------------------------------------- registration */

int embed_register_files(sqlite3 *db, embed_registrations *log) {
  embed_files_state *st = sqlite3_malloc64(sizeof(*st));
  int rc;
  if (!st) return SQLITE_NOMEM;
  memset(st, 0, sizeof(*st));
  st->refs = 2; /* the module's and the function's */
  rc = embed_create_module(log, db, "embed_file", &io_file_module, st,
                           io_files_state_release);
  if (rc != SQLITE_OK) {
    io_files_state_release(
        st); /* the function's share; SQLite freed the other */
    return rc;
  }
  /* on failure SQLite calls io_files_state_release itself */
  return embed_create_function(
      log, db, "embed_save", 4, SQLITE_UTF8 | SQLITE_DIRECTONLY, st, 0,
      embed_save_step, embed_save_final, io_files_state_release);
}
