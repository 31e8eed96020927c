/*
** files.c - embedding files in and out of SQL: the embed_file table-valued
** function (word2vec text and binary, GloVe, fastText .vec, .npy) and the
** embed_save aggregate (word2vec text and binary, GloVe).
**
** Usage:
**
**     SELECT token, vector FROM embed_file('glove.6B.50d.txt');
**     SELECT n, token, vector FROM embed_file('GoogleNews.bin',
**                                             'word2vec-binary');
**     SELECT n, vector FROM embed_file('weights.npy');     -- token is NULL
**
**     BEGIN;                          -- a vocabulary and its vectors
**     CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE);
**     CREATE VIRTUAL TABLE emb USING embedding(dim=50);
**     CREATE TEMP TABLE f AS SELECT n, token, vector FROM embed_file('w.vec');
**     INSERT INTO vocab(id, token) SELECT n, token FROM f;
**     INSERT INTO emb(id, vector) SELECT n, vector FROM f;
**     COMMIT;
**
**     SELECT embed_save('out.bin', 'word2vec-binary', token, vector)
**     FROM (SELECT v.token, e.vector FROM vocab v JOIN emb e ON e.id = v.id
**           ORDER BY v.id);                                   -- the count
**
** embed_file(path [, format]) is an eponymous-only virtual table with the
** columns token TEXT, vector BLOB (D float32), n INTEGER (the 0-based index
** of the entry in the file; also the rowid) and the hidden arguments path
** and format. Formats:
**
**   word2vec         text: a header line "count dim", then one entry a line:
**                    "token v1 ... vD" (blanks are spaces or tabs; CRLF and
**                    trailing blanks are accepted)
**   fasttext         the same (fastText's .vec files)
**   word2vec-binary  the header line, then per entry the token, one space,
**                    D little-endian float32, and optionally a newline (the
**                    C tool writes it, gensim does not)
**   glove            text entries without a header; D is the first line's
**   npy              numpy's .npy v1-v3: a 2-D float32 or float64 array in
**                    C order, little-endian; float64 is rounded to float32.
**                    token is NULL, n is the row.
**
** Without a format: the magic "\x93NUMPY" means npy; a first line of two
** integers is a word2vec header, and the file is text when the first line
** after it is clean text (valid UTF-8, no control bytes but tab and CR),
** binary otherwise; anything else is GloVe. A header of two integers can't
** be told from a GloVe entry of dimension 1 whose token is a number; pass
** the format for such files.
**
** Entries: a token is the text before the first blank, valid UTF-8 and not
** empty (tokens can't contain blanks: the formats separate with them). A
** repeated token keeps its first vector and later entries are skipped, as
** gensim's KeyedVectors.load_word2vec_format does; n still counts them, so n
** is the entry's position in the file. Numbers are decimal (strtof's
** correctly rounded float32, independent of the locale); "nan", "inf" and
** values beyond float32 are errors, as are NaN/Inf in binary data.
**
** Errors name the file and where: "embed_file: 'v.txt' line 5: expected 300
** values, found 299" (text) or "... 'v.bin' byte 1234: ..." (binary, npy):
** a header that disagrees with the body (fewer or more entries than its
** count, another dimension), a truncated file, a malformed number or token,
** a blank line between entries, NaN/Inf, a missing file, a directory, an
** unsupported npy dtype, order or shape. Header fields are checked before
** any row: 1 <= dim <= EMBED_MAX_DIM, and count no more than the file's size
** can hold.
**
** Streaming: a cursor reads the file through one buffer (FILE_CHUNK bytes,
** grown only for a longer line, up to FILE_MAX_LINE), so a file of any size
** is read in bounded memory; only the set of tokens seen (for duplicates)
** grows with the file. Every row is parsed and checked in xNext, so an error
** surfaces as the statement's error at the entry where it is; rows before it
** were already returned, so load inside a transaction (BEGIN ... COMMIT) and
** an error leaves nothing behind after ROLLBACK. Plans: the path (and the
** format) must be usable equality constraints (idxNum bit 1: path, bit 2:
** format); without the path the plan is refused with SQLITE_CONSTRAINT, or
** with an error when there is no path at all. Output is in n order, so
** ORDER BY n is consumed.
**
** embed_save(path, format, token, vector) writes each group to path in
** 'word2vec' (= 'fasttext'), 'word2vec-binary' or 'glove' format, rows in
** the order they arrive (feed it from a subquery with ORDER BY; an outer
** ORDER BY sorts the result, not the input), floats in the fewest digits
** that read back bit-exact (text) or raw (binary, with a newline after each
** vector as the C tool writes), and returns the count written. No rows: 0,
** and no file. Duplicate tokens are written as given (readers keep the
** first). The file is replaced atomically: rows go to a temporary file next
** to the target ("PATH.embed-XXXXXXXX.tmp", random hex); at the end the
** exact header "count dim" and the body are copied to a second temporary
** file, synced, and renamed over the target (a symlink's target is written
** and the link kept; a target that is a directory, device, FIFO or socket
** is refused). Any error removes the temporary files and leaves the
** target as it was: a NULL or empty token, a token with whitespace or
** invalid UTF-8, a NULL or invalid vector, a dimension change within the
** group, a path or format change, an I/O error (naming the file). SQLite
** calls an aggregate's final step also when its statement fails elsewhere
** (a bad row in the FROM clause, an error in another expression, an
** interrupt) and gives the function no way to tell; embed_save does notice
** an embed_file error on the same connection while it ran and then writes
** nothing. For any other source that can fail midway, check the statement's
** result before trusting the file, or write from a table.
**
** Both are DIRECTONLY (they touch files): not usable from views, triggers or
** the schema. They use stdio and POSIX open/rename/fsync/stat.
*/
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "io/io.h"

#define FILE_CHUNK (1 << 20)     /* bytes a read asks for */
#define FILE_MAX_LINE (16 << 20) /* longest text line accepted */
#define FILE_MAX_TOKEN 65536     /* longest token, in bytes */
#define FILE_DETECT_SPAN 65536   /* bytes inspected to detect text */
#define NPY_MAX_HEADER (1 << 20) /* longest .npy header accepted */

/* ================================================================ shared */

/* Per-connection state shared by the module and the aggregate: the count of
** embed_file errors, so that embed_save can tell that its statement failed
** in an embed_file scan. Freed when both the module and the function are. */
typedef struct files_state {
  int refs;
  sqlite3_int64 file_errors;
} files_state;

static void files_state_release(void *p) {
  files_state *st = (files_state *)p;
  if (st && --st->refs == 0) sqlite3_free(st);
}

/* Length of the valid UTF-8 prefix of s[0..n), rejecting NUL, overlongs,
** surrogates and code points above U+10FFFF. */
static int64_t utf8_valid_prefix(const unsigned char *s, int64_t n) {
  int64_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    int len, k;
    unsigned cp;
    if (c >= 0x01 && c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n) return i;
    for (k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
      return i;
    i += len;
  }
  return i;
}

static int is_blank(int c) {
  return c == ' ' || c == '\t';
}

#define SHOWN_MAX 40 /* bytes of file text quoted in a message */

/* Quote up to SHOWN_MAX bytes of file text in a message: valid UTF-8 is
** kept, other bytes and control characters become '?', and "..." marks a
** cut. out needs 4 * SHOWN_MAX + 4 bytes. */
static const char *shown(const char *p, int64_t n, char *out) {
  int64_t i = 0, len = 0, lim = n > SHOWN_MAX ? SHOWN_MAX : n;
  while (i < lim) {
    unsigned char ch = (unsigned char)p[i];
    int64_t ok = ch >= 0x80 ? utf8_valid_prefix((const unsigned char *)p + i,
                                                n - i < 4 ? n - i : 4)
                            : 0;
    if (ch >= 0x80 && ok > 0) {
      int64_t k = 1;
      while (k < ok && ((unsigned char)p[i + k] & 0xC0) == 0x80) k++;
      memcpy(out + len, p + i, (size_t)k);
      len += k;
      i += k;
    } else {
      out[len++] = (ch < 0x20 || ch == 0x7F || ch >= 0x80) ? '?' : (char)ch;
      i++;
    }
  }
  if (n > lim) {
    memcpy(out + len, "...", 3);
    len += 3;
  }
  out[len] = 0;
  return out;
}

/* ======================================================== number parsing */

enum {
  NUM_OK = 0,
  NUM_MALFORMED,
  NUM_NAN,
  NUM_POS_INF,
  NUM_NEG_INF,
  NUM_RANGE /* finite text beyond float32 */
};

static int ascii_ieq(const char *p, int64_t n, const char *word) {
  int64_t i;
  for (i = 0; i < n; i++) {
    int c = p[i];
    if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
    if (!word[i] || c != word[i]) return 0;
  }
  return word[n] == 0;
}

/* strtof on a copy of p[0..n), with the locale's decimal point. */
static int parse_float_slow(const char *p, int64_t n, float *out) {
  char buf[1024];
  char *end;
  const char *dp = localeconv()->decimal_point;
  int64_t i;
  float f;
  if (n >= (int64_t)sizeof(buf)) return NUM_MALFORMED;
  memcpy(buf, p, (size_t)n);
  buf[n] = 0;
  if (dp && dp[0] && dp[0] != '.' && !dp[1]) {
    for (i = 0; i < n; i++)
      if (buf[i] == '.') buf[i] = dp[0];
  }
  errno = 0;
  f = strtof(buf, &end);
  if (end != buf + n) return NUM_MALFORMED;
  if (f - f != 0) return NUM_RANGE; /* overflow: the text was finite */
  *out = f;
  return NUM_OK;
}

/* Parse the decimal number p[0..n) into the nearest float32. The grammar
** is [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?, checked
** here; "nan"/"inf"/"infinity" are recognized to be reported as such. Most
** numbers take Clinger's fast path: a mantissa below 2^53 and a power of
** ten up to 1e22 give a correctly rounded double in one operation, and
** rounding that to float is correct unless the double lies exactly halfway
** between two floats (then, and for subnormals, strtof decides). */
static int parse_float(const char *p, int64_t n, float *out) {
  static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                               1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  const char *s = p, *end = p + n;
  uint64_t m = 0;
  int neg = 0, digits = 0, exact = 1;
  int64_t e10 = 0;
  if (s < end && (*s == '-' || *s == '+')) neg = *s++ == '-';
  while (s < end && *s >= '0' && *s <= '9') {
    if (m < 100000000000000000ULL) {
      m = m * 10 + (uint64_t)(*s - '0');
    } else {
      e10++;
      if (*s != '0') exact = 0;
    }
    digits++;
    s++;
  }
  if (s < end && *s == '.') {
    s++;
    while (s < end && *s >= '0' && *s <= '9') {
      if (m < 100000000000000000ULL) {
        m = m * 10 + (uint64_t)(*s - '0');
        e10--;
      } else if (*s != '0') {
        exact = 0;
      }
      digits++;
      s++;
    }
  }
  if (digits == 0) {
    const char *w = p + (p < end && (*p == '-' || *p == '+'));
    int64_t wn = end - w;
    if (ascii_ieq(w, wn, "nan")) return NUM_NAN;
    if (ascii_ieq(w, wn, "inf") || ascii_ieq(w, wn, "infinity"))
      return (p < end && *p == '-') ? NUM_NEG_INF : NUM_POS_INF;
    return NUM_MALFORMED;
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    int eneg = 0, edigits = 0;
    int64_t ev = 0;
    s++;
    if (s < end && (*s == '-' || *s == '+')) eneg = *s++ == '-';
    while (s < end && *s >= '0' && *s <= '9') {
      if (ev < 100000) ev = ev * 10 + (*s - '0');
      edigits++;
      s++;
    }
    if (!edigits) return NUM_MALFORMED;
    e10 += eneg ? -ev : ev;
  }
  if (s != end) return NUM_MALFORMED;
  if (m == 0) {
    *out = neg ? -0.0f : 0.0f;
    return NUM_OK;
  }
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
  if (exact && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
    double d = (double)m;
    uint64_t bits;
    d = e10 < 0 ? d / p10[-e10] : d * p10[e10];
    memcpy(&bits, &d, sizeof(bits));
    if (d >= (double)FLT_MIN && d <= (double)FLT_MAX &&
        (bits & 0x1FFFFFFFULL) != 0x10000000ULL) {
      float f = (float)d;
      *out = neg ? -f : f;
      return NUM_OK;
    }
  }
#else
  (void)p10;
  (void)exact;
#endif
  return parse_float_slow(p, n, out);
}

/* ============================================================ the reader */

/* A file read through one buffer: buf[pos..end) are the bytes not yet
** consumed, buf[0] is at file offset base. */
typedef struct file_reader {
  FILE *f;
  char *buf;
  int64_t cap, pos, end, base;
  int64_t size; /* of a regular file, or -1 */
  int at_eof;   /* the last read returned nothing more */
  int io_errno; /* errno of a failed read, or 0 */
} file_reader;

static void reader_close(file_reader *r) {
  if (r->f) fclose(r->f);
  sqlite3_free(r->buf);
  memset(r, 0, sizeof(*r));
}

/* Make at least want bytes available from pos (fewer only at EOF or on a
** read error: check io_errno). Grows the buffer up to max_cap. */
static int reader_fill(file_reader *r, int64_t want, int64_t max_cap) {
  if (r->end - r->pos >= want || r->at_eof || r->io_errno) return SQLITE_OK;
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, (size_t)(r->end - r->pos));
    r->base += r->pos;
    r->end -= r->pos;
    r->pos = 0;
  }
  if (want > r->cap) {
    int64_t cap = r->cap ? r->cap : FILE_CHUNK;
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

/* ============================================================ the module */

typedef enum file_format {
  FMT_AUTO = 0,
  FMT_WORD2VEC,
  FMT_FASTTEXT,
  FMT_WORD2VEC_BINARY,
  FMT_GLOVE,
  FMT_NPY
} file_format;

static const char *const format_names[] = {
    "auto", "word2vec", "fasttext", "word2vec-binary", "glove", "npy"};

enum { COL_TOKEN = 0, COL_VECTOR, COL_N, COL_PATH, COL_FORMAT };
enum { IDX_PATH = 1, IDX_FORMAT = 2 };

typedef struct file_vtab {
  sqlite3_vtab base;
  files_state *st;
} file_vtab;

/* The tokens seen so far, for "first one wins": an open-addressing table
** of offsets into an arena of records [hash u64][length u32][bytes]. */
typedef struct token_set {
  char *arena;
  int64_t arena_len, arena_cap;
  int64_t *slots; /* arena offset + 1; 0 = empty */
  int64_t n, mask;
} token_set;

typedef struct file_cursor {
  sqlite3_vtab_cursor base;
  file_reader r;
  char *path;             /* sqlite3_malloc'd copy */
  file_format format;     /* the format used, never FMT_AUTO after filter */
  int binary, has_header; /* word2vec-binary; word2vec/fasttext/binary */
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
  unsigned char *own_blob; /* dim * 4 bytes */
  token_set seen;
} file_cursor;

static void token_set_free(token_set *s) {
  sqlite3_free(s->arena);
  sqlite3_free(s->slots);
  memset(s, 0, sizeof(*s));
}

static uint64_t token_hash(const char *p, int64_t n) {
  uint64_t h = 0xcbf29ce484222325ULL;
  int64_t i;
  for (i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
  return embed_mix64(h ^ (uint64_t)n);
}

/* Add the token; *added is 0 when it was there already. */
static int token_set_add(token_set *s, const char *p, int64_t n, int *added) {
  uint64_t h = token_hash(p, n);
  int64_t i, need;
  if ((s->n + 1) * 10 > (s->mask + 1) * 7) { /* grow at 70% */
    int64_t nslots = s->mask ? (s->mask + 1) * 2 : 1024, j;
    int64_t *slots = sqlite3_malloc64((sqlite3_uint64)nslots * sizeof(int64_t));
    if (!slots) return SQLITE_NOMEM;
    memset(slots, 0, (size_t)nslots * sizeof(int64_t));
    for (j = 0; s->mask && j <= s->mask; j++) {
      uint64_t hj;
      int64_t k;
      if (!s->slots[j]) continue;
      memcpy(&hj, s->arena + s->slots[j] - 1, sizeof(hj));
      for (k = (int64_t)(hj & (uint64_t)(nslots - 1)); slots[k];
           k = (k + 1) & (nslots - 1)) {
      }
      slots[k] = s->slots[j];
    }
    sqlite3_free(s->slots);
    s->slots = slots;
    s->mask = nslots - 1;
  }
  for (i = (int64_t)(h & (uint64_t)s->mask); s->slots[i];
       i = (i + 1) & s->mask) {
    const char *rec = s->arena + s->slots[i] - 1;
    uint64_t hr;
    uint32_t len;
    memcpy(&hr, rec, sizeof(hr));
    memcpy(&len, rec + 8, sizeof(len));
    if (hr == h && (int64_t)len == n && memcmp(rec + 12, p, (size_t)n) == 0) {
      *added = 0;
      return SQLITE_OK;
    }
  }
  need = 12 + n;
  if (s->arena_len + need > s->arena_cap) {
    int64_t cap = s->arena_cap ? s->arena_cap * 2 : 65536;
    char *grown;
    while (cap < s->arena_len + need) cap *= 2;
    grown = sqlite3_realloc64(s->arena, (sqlite3_uint64)cap);
    if (!grown) return SQLITE_NOMEM;
    s->arena = grown;
    s->arena_cap = cap;
  }
  {
    uint32_t len = (uint32_t)n;
    char *rec = s->arena + s->arena_len;
    memcpy(rec, &h, sizeof(h));
    memcpy(rec + 8, &len, sizeof(len));
    memcpy(rec + 12, p, (size_t)n);
  }
  s->slots[i] = s->arena_len + 1;
  s->arena_len += need;
  s->n++;
  *added = 1;
  return SQLITE_OK;
}

/* Set the cursor's error "embed_file: 'path' line N: <fmt...>". */
static int cur_error(file_cursor *c, const char *where, int64_t at,
                     const char *zFormat, ...) {
  sqlite3_vtab *vtab = c->base.pVtab;
  char *zWhat, *zMsg = 0;
  va_list ap;
  va_start(ap, zFormat);
  zWhat = sqlite3_vmprintf(zFormat, ap);
  va_end(ap);
  if (zWhat) {
    if (where)
      zMsg = sqlite3_mprintf("embed_file: '%s' %s %lld: %s", c->path, where,
                             (long long)at, zWhat);
    else
      zMsg = sqlite3_mprintf("embed_file: %s", zWhat);
  }
  sqlite3_free(zWhat);
  sqlite3_free(vtab->zErrMsg);
  vtab->zErrMsg = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

static int read_error(file_cursor *c) {
  return cur_error(c, 0, 0, "cannot read '%s' at byte %lld: %s", c->path,
                   (long long)(c->r.base + c->r.end), strerror(c->r.io_errno));
}

static const char *nonfinite_name(int code) {
  return code == NUM_NAN ? "NaN" : (code == NUM_POS_INF ? "+Inf" : "-Inf");
}

static int fileConnect(sqlite3 *db, void *pAux, int argc,
                       const char *const *argv, sqlite3_vtab **ppVtab,
                       char **pzErr) {
  file_vtab *vt;
  int rc;
  (void)argc;
  (void)argv;
  (void)pzErr;
  rc = sqlite3_declare_vtab(db,
                            "CREATE TABLE x(token TEXT, vector BLOB, "
                            "n INTEGER, path HIDDEN, format HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  vt = sqlite3_malloc64(sizeof(*vt));
  if (!vt) return SQLITE_NOMEM;
  memset(vt, 0, sizeof(*vt));
  vt->st = (files_state *)pAux;
  *ppVtab = &vt->base;
  return SQLITE_OK;
}

static int fileDisconnect(sqlite3_vtab *pVtab) {
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

/* Plans: idxNum IDX_PATH | IDX_FORMAT, arguments path then format. A path
** or format constraint that is present but unusable (its value depends on a
** table not yet scanned) gives SQLITE_CONSTRAINT, so the planner orders the
** join to make it usable. */
static int fileBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *info) {
  int i, path = -1, format = -1, path_unusable = 0, format_unusable = 0;
  for (i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *cons = &info->aConstraint[i];
    if (cons->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (cons->iColumn == COL_PATH) {
      if (cons->usable)
        path = i;
      else
        path_unusable = 1;
    } else if (cons->iColumn == COL_FORMAT) {
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
        "embed_file: a file path is required, as in "
        "SELECT token, vector FROM embed_file('vectors.txt')");
    return pVtab->zErrMsg ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  if (format_unusable && format < 0) return SQLITE_CONSTRAINT;
  info->aConstraintUsage[path].argvIndex = 1;
  info->aConstraintUsage[path].omit = 1;
  info->idxNum = IDX_PATH;
  if (format >= 0) {
    info->aConstraintUsage[format].argvIndex = 2;
    info->aConstraintUsage[format].omit = 1;
    info->idxNum |= IDX_FORMAT;
  }
  if (info->nOrderBy == 1 && info->aOrderBy[0].iColumn == COL_N &&
      !info->aOrderBy[0].desc)
    info->orderByConsumed = 1;
  info->estimatedCost = 1000000.0;
  info->estimatedRows = 100000;
  return SQLITE_OK;
}

static int fileOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor) {
  file_cursor *c = sqlite3_malloc64(sizeof(*c));
  (void)pVtab;
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  c->eof = 1;
  *ppCursor = &c->base;
  return SQLITE_OK;
}

static void cursor_reset(file_cursor *c) {
  reader_close(&c->r);
  sqlite3_free(c->path);
  sqlite3_free(c->vec);
  sqlite3_free(c->own_blob);
  token_set_free(&c->seen);
  c->path = 0;
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
  cursor_reset((file_cursor *)cur);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Allocate the per-entry buffers once dim is known. */
static int alloc_vectors(file_cursor *c) {
  c->vec = sqlite3_malloc64((sqlite3_uint64)c->dim * sizeof(float));
  c->own_blob = sqlite3_malloc64((sqlite3_uint64)c->dim * 4);
  return (c->vec && c->own_blob) ? SQLITE_OK : SQLITE_NOMEM;
}

/* ---------------------------------------------------------------- text */

/* Read the next line: *line points into the buffer (valid until the next
** read), *len excludes the newline. *got is 0 at the end of the file. */
static int next_line(file_cursor *c, const char **line, int64_t *len,
                     int *got) {
  file_reader *r = &c->r;
  int64_t scanned = 0;
  for (;;) {
    const char *nl = memchr(r->buf + r->pos + scanned, '\n',
                            (size_t)(r->end - r->pos - scanned));
    if (nl) {
      *line = r->buf + r->pos;
      *len = nl - *line;
      r->pos += *len + 1;
      break;
    }
    scanned = r->end - r->pos;
    if (r->at_eof || r->io_errno) {
      if (r->io_errno) return read_error(c);
      *got = scanned > 0;
      *line = r->buf + r->pos;
      *len = scanned;
      r->pos = r->end;
      if (*got) c->line++;
      return SQLITE_OK;
    }
    if (scanned >= FILE_MAX_LINE)
      return cur_error(c, "line", c->line + 1, "line longer than %d bytes",
                       FILE_MAX_LINE);
    {
      int rc = reader_fill(r, scanned + FILE_CHUNK, FILE_MAX_LINE + FILE_CHUNK);
      if (rc) return rc;
    }
  }
  c->line++;
  *got = 1;
  return SQLITE_OK;
}

/* "count dim": two non-negative integers, blanks around them. */
static int parse_header(const char *p, int64_t len, int64_t *count,
                        int64_t *dim) {
  const char *end = p + len;
  int64_t v[2];
  int i;
  for (i = 0; i < 2; i++) {
    int digits = 0;
    v[i] = 0;
    while (p < end && (is_blank(*p) || *p == '\r')) p++;
    while (p < end && *p >= '0' && *p <= '9') {
      if (++digits > 18) return 0;
      v[i] = v[i] * 10 + (*p++ - '0');
    }
    if (!digits) return 0;
  }
  while (p < end && (is_blank(*p) || *p == '\r')) p++;
  if (p != end) return 0;
  *count = v[0];
  *dim = v[1];
  return 1;
}

/* Report the number field p[0..n) that did not parse. */
static int number_error(file_cursor *c, const char *where, int64_t at, int code,
                        int64_t k, const char *p, int64_t n) {
  char text[4 * SHOWN_MAX + 4];
  switch (code) {
    case NUM_NAN:
    case NUM_POS_INF:
    case NUM_NEG_INF:
      return cur_error(c, where, at, "element %lld is %s", (long long)k,
                       nonfinite_name(code));
    case NUM_RANGE:
      return cur_error(c, where, at, "element %lld (%s) is beyond float32",
                       (long long)k, shown(p, n, text));
    default:
      return cur_error(c, where, at, "malformed number '%s' (element %lld)",
                       shown(p, n, text), (long long)k);
  }
}

/* Parse one text entry "token v1 ... vD" from line[0..len) (trailing blanks
** already removed). The first GloVe entry sets dim. */
static int parse_text_entry(file_cursor *c, const char *line, int64_t len) {
  const char *p = line, *end = line + len, *tok_end = line;
  int64_t k = 0;
  while (tok_end < end && !is_blank(*tok_end)) tok_end++;
  if (tok_end == line)
    return cur_error(c, "line", c->line,
                     "empty token (the line starts with a blank)");
  if (tok_end - line > FILE_MAX_TOKEN)
    return cur_error(c, "line", c->line, "token longer than %d bytes",
                     FILE_MAX_TOKEN);
  if (utf8_valid_prefix((const unsigned char *)line, tok_end - line) !=
      tok_end - line)
    return cur_error(c, "line", c->line, "token is not valid UTF-8");
  if (c->dim == 0) { /* GloVe: the first entry's dimension */
    int64_t fields = 0;
    for (p = tok_end; p < end;) {
      while (p < end && is_blank(*p)) p++;
      if (p == end) break;
      fields++;
      while (p < end && !is_blank(*p)) p++;
    }
    if (fields == 0)
      return cur_error(c, "line", c->line, "no values after the token");
    if (fields > EMBED_MAX_DIM)
      return cur_error(c, "line", c->line,
                       "dimension %lld exceeds the limit of %d",
                       (long long)fields, EMBED_MAX_DIM);
    c->dim = fields;
    if (alloc_vectors(c)) return SQLITE_NOMEM;
  }
  for (p = tok_end;;) {
    const char *q;
    while (p < end && is_blank(*p)) p++;
    if (p == end) break;
    for (q = p; q < end && !is_blank(*q); q++) {
    }
    if (k < c->dim) {
      int code = parse_float(p, q - p, &c->vec[k]);
      if (code) return number_error(c, "line", c->line, code, k, p, q - p);
    }
    k++;
    p = q;
  }
  if (k != c->dim)
    return cur_error(c, "line", c->line,
                     "expected %lld values, found %lld (%s)", (long long)c->dim,
                     (long long)k,
                     c->has_header ? "the header's dim" : "as on line 1");
  c->token = line;
  c->token_len = tok_end - line;
  embed_blob_encode(c->vec, c->dim, c->own_blob);
  c->blob = c->own_blob;
  return SQLITE_OK;
}

static int text_next(file_cursor *c) {
  for (;;) {
    const char *line;
    int64_t len;
    int got = 0, added = 0, rc = next_line(c, &line, &len, &got);
    if (rc) return rc;
    if (!got) {
      if (c->count >= 0 && c->nread < c->count)
        return cur_error(c, "line", c->line + 1,
                         "unexpected end of file: %lld of the header's %lld "
                         "vectors read",
                         (long long)c->nread, (long long)c->count);
      c->eof = 1;
      return SQLITE_OK;
    }
    while (len > 0 && (is_blank(line[len - 1]) || line[len - 1] == '\r')) len--;
    if (len == 0) {
      if (!c->blank_line) c->blank_line = c->line;
      continue;
    }
    if (c->blank_line)
      return cur_error(c, "line", c->blank_line, "blank line between entries");
    if (c->count >= 0 && c->nread >= c->count)
      return cur_error(c, "line", c->line,
                       "more vectors than the header's count (%lld)",
                       (long long)c->count);
    rc = parse_text_entry(c, line, len);
    if (rc) return rc;
    c->nread++;
    rc = token_set_add(&c->seen, c->token, c->token_len, &added);
    if (rc) return rc;
    if (added) return SQLITE_OK;
  }
}

/* ---------------------------------------------------------------- binary */

static uint32_t le32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}

static uint64_t le64(const unsigned char *p) {
  return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

/* Index of the first NaN/Inf among n little-endian float32 at p, or -1;
** *code says which. */
static int64_t first_nonfinite_le32(const unsigned char *p, int64_t n,
                                    int *code) {
  int64_t k;
  for (k = 0; k < n; k++) {
    uint32_t u = le32(p + 4 * k);
    if ((u & 0x7F800000u) == 0x7F800000u) {
      *code =
          (u & 0x007FFFFFu) ? NUM_NAN : ((u >> 31) ? NUM_NEG_INF : NUM_POS_INF);
      return k;
    }
  }
  return -1;
}

#define BINARY_MAX_CAP \
  ((int64_t)FILE_MAX_TOKEN + 2 + 4 * (int64_t)EMBED_MAX_DIM + FILE_CHUNK)

static int binary_next(file_cursor *c) {
  file_reader *r = &c->r;
  int64_t need = 4 * c->dim;
  for (;;) {
    const char *start, *sp;
    char text[4 * SHOWN_MAX + 4];
    const unsigned char *vec;
    int64_t at, span, tok_len, bad;
    int code = 0, added = 0, rc;
    for (;;) { /* the newlines between entries */
      rc = reader_fill(r, 1, BINARY_MAX_CAP);
      if (rc) return rc;
      if (r->io_errno) return read_error(c);
      if (r->pos == r->end || r->buf[r->pos] != '\n') break;
      r->pos++;
    }
    at = r->base + r->pos;
    if (c->nread == c->count) {
      if (r->pos < r->end)
        return cur_error(c, "byte", at, "data after the header's %lld vectors",
                         (long long)c->count);
      c->eof = 1;
      return SQLITE_OK;
    }
    if (r->pos == r->end)
      return cur_error(c, "byte", at,
                       "unexpected end of file: %lld of the header's %lld "
                       "vectors read",
                       (long long)c->nread, (long long)c->count);
    rc = reader_fill(r, FILE_MAX_TOKEN + 1 + need, BINARY_MAX_CAP);
    if (rc) return rc;
    if (r->io_errno) return read_error(c);
    start = r->buf + r->pos;
    span = r->end - r->pos;
    if (span > FILE_MAX_TOKEN + 1) span = FILE_MAX_TOKEN + 1;
    sp = memchr(start, ' ', (size_t)span);
    if (!sp) {
      if (r->end - r->pos <= FILE_MAX_TOKEN)
        return cur_error(c, "byte", r->base + r->end,
                         "unexpected end of file in the token of vector %lld "
                         "of %lld",
                         (long long)c->nread, (long long)c->count);
      return cur_error(c, "byte", at,
                       "no space within %d bytes: not a token (is the "
                       "header's dim right?)",
                       FILE_MAX_TOKEN);
    }
    tok_len = sp - start;
    if (tok_len == 0) return cur_error(c, "byte", at, "empty token");
    if (utf8_valid_prefix((const unsigned char *)start, tok_len) != tok_len)
      return cur_error(c, "byte", at,
                       "token is not valid UTF-8 (is the header's dim right?)");
    vec = (const unsigned char *)sp + 1;
    if (r->buf + r->end - (const char *)vec < need)
      return cur_error(c, "byte", r->base + r->end,
                       "unexpected end of file in the vector of '%s' "
                       "(%lld of %lld bytes)",
                       shown(start, tok_len, text),
                       (long long)(r->buf + r->end - (const char *)vec),
                       (long long)need);
    bad = first_nonfinite_le32(vec, c->dim, &code);
    if (bad >= 0)
      return cur_error(c, "byte",
                       r->base + ((const char *)vec - r->buf) + 4 * bad,
                       "element %lld of '%s' is %s", (long long)bad,
                       shown(start, tok_len, text), nonfinite_name(code));
    c->token = start;
    c->token_len = tok_len;
    c->blob = (unsigned char *)vec;
    r->pos = ((const char *)vec - r->buf) + need;
    c->nread++;
    rc = token_set_add(&c->seen, c->token, c->token_len, &added);
    if (rc) return rc;
    if (added) return SQLITE_OK;
  }
}

/* ---------------------------------------------------------------- .npy */

static const char *npy_ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

/* A quoted Python string: its contents in [*s, *e). */
static const char *npy_string(const char *p, const char *end, const char **s,
                              const char **e) {
  char q;
  if (p >= end || (*p != '\'' && *p != '"')) return 0;
  q = *p++;
  *s = p;
  while (p < end && *p != q) p++;
  if (p >= end) return 0;
  *e = p;
  return p + 1;
}

/* Parse numpy's header dict {'descr': '<f4', 'fortran_order': False,
** 'shape': (3, 4), }. Returns 0 on success, or a message (static). */
static const char *npy_parse_dict(const char *p, const char *end, char *descr,
                                  int ndescr, int *fortran, int64_t *shape,
                                  int *ndim) {
  int seen = 0;
  p = npy_ws(p, end);
  if (p >= end || *p++ != '{') return "malformed header (expected '{')";
  for (;;) {
    const char *ks, *ke;
    p = npy_ws(p, end);
    if (p < end && *p == '}') break;
    p = npy_string(p, end, &ks, &ke);
    if (!p) return "malformed header (expected a quoted key)";
    p = npy_ws(p, end);
    if (p >= end || *p++ != ':') return "malformed header (expected ':')";
    p = npy_ws(p, end);
    if (ke - ks == 5 && memcmp(ks, "descr", 5) == 0) {
      const char *vs, *ve;
      const char *q = npy_string(p, end, &vs, &ve);
      if (!q) return "unsupported dtype (a structured or non-string descr)";
      if (ve - vs >= ndescr) ve = vs + ndescr - 1;
      memcpy(descr, vs, (size_t)(ve - vs));
      descr[ve - vs] = 0;
      p = q;
      seen |= 1;
    } else if (ke - ks == 13 && memcmp(ks, "fortran_order", 13) == 0) {
      if (end - p >= 4 && memcmp(p, "True", 4) == 0) {
        *fortran = 1;
        p += 4;
      } else if (end - p >= 5 && memcmp(p, "False", 5) == 0) {
        *fortran = 0;
        p += 5;
      } else {
        return "malformed header (fortran_order is not True or False)";
      }
      seen |= 2;
    } else if (ke - ks == 5 && memcmp(ks, "shape", 5) == 0) {
      *ndim = 0;
      if (p >= end || *p++ != '(') return "malformed header (shape)";
      for (;;) {
        int digits = 0;
        int64_t v = 0;
        p = npy_ws(p, end);
        if (p < end && *p == ')') {
          p++;
          break;
        }
        while (p < end && *p >= '0' && *p <= '9') {
          if (++digits > 18) return "malformed header (shape too large)";
          v = v * 10 + (*p++ - '0');
        }
        if (!digits) return "malformed header (shape)";
        if (p < end && *p == 'L') p++; /* Python 2 longs */
        if (*ndim < 8) shape[*ndim] = v;
        (*ndim)++;
        p = npy_ws(p, end);
        if (p < end && *p == ',') p++;
      }
      seen |= 4;
    } else {
      return "malformed header (unknown key)";
    }
    p = npy_ws(p, end);
    if (p < end && *p == ',') p++;
  }
  if (seen != 7)
    return "malformed header (descr, fortran_order or shape missing)";
  return 0;
}

static int npy_open(file_cursor *c) {
  file_reader *r = &c->r;
  const unsigned char *b;
  int64_t hlen, hstart, off, rows, dim, rowbytes;
  char descr[32];
  int64_t shape[8];
  int fortran = 0, ndim = 0, rc, major;
  const char *msg;
  rc = reader_fill(r, 12, FILE_CHUNK);
  if (rc) return rc;
  if (r->io_errno) return read_error(c);
  b = (const unsigned char *)r->buf + r->pos;
  if (r->end - r->pos < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return cur_error(c, "byte", 0, "not a .npy file (no \\x93NUMPY magic)");
  major = b[6];
  if (major == 1) {
    hlen = (int64_t)b[8] | ((int64_t)b[9] << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (r->end - r->pos < 12)
      return cur_error(c, "byte", r->base + r->end,
                       "unexpected end of file in the header");
    hlen = (int64_t)le32(b + 8);
    hstart = 12;
  } else {
    return cur_error(c, "byte", 6, "unsupported .npy version %d.%d", major,
                     b[7]);
  }
  if (hlen > NPY_MAX_HEADER)
    return cur_error(c, "byte", 8, "header length %lld exceeds %d bytes",
                     (long long)hlen, NPY_MAX_HEADER);
  off = hstart + hlen;
  rc = reader_fill(r, off, NPY_MAX_HEADER + FILE_CHUNK);
  if (rc) return rc;
  if (r->io_errno) return read_error(c);
  if (r->end - r->pos < off)
    return cur_error(c, "byte", r->base + r->end,
                     "unexpected end of file in the header");
  msg = npy_parse_dict(r->buf + r->pos + hstart, r->buf + r->pos + off, descr,
                       (int)sizeof(descr), &fortran, shape, &ndim);
  if (msg) return cur_error(c, "byte", hstart, "%s", msg);
  if (strcmp(descr, "<f4") == 0 || strcmp(descr, "<f8") == 0) {
    c->npy_f64 = descr[2] == '8';
  } else {
    char text[4 * SHOWN_MAX + 4];
    return cur_error(c, "byte", hstart,
                     "unsupported dtype '%s' (expected '<f4' float32 or "
                     "'<f8' float64)",
                     shown(descr, (int64_t)strlen(descr), text));
  }
  if (fortran)
    return cur_error(c, "byte", hstart,
                     "Fortran-order array (save it in C order, e.g. with "
                     "numpy.ascontiguousarray)");
  if (ndim != 2) {
    char dims[160];
    int i, len = 0;
    for (i = 0; i < ndim && i < 8 && len < 120; i++)
      len += snprintf(dims + len, sizeof(dims) - (size_t)len, "%s%lld",
                      i ? ", " : "", (long long)shape[i]);
    if (ndim > 8) snprintf(dims + len, sizeof(dims) - (size_t)len, ", ...");
    if (ndim == 0) dims[0] = 0;
    return cur_error(c, "byte", hstart, "shape (%s%s) is not 2-D (rows, dim)",
                     dims, ndim == 1 ? "," : "");
  }
  rows = shape[0];
  dim = shape[1];
  if (dim < 1)
    return cur_error(c, "byte", hstart, "dimension %lld in shape (%lld, %lld)",
                     (long long)dim, (long long)rows, (long long)dim);
  if (dim > EMBED_MAX_DIM)
    return cur_error(c, "byte", hstart,
                     "dimension %lld exceeds the limit of %d", (long long)dim,
                     EMBED_MAX_DIM);
  rowbytes = dim * (c->npy_f64 ? 8 : 4);
  if (rows > INT64_MAX / rowbytes - off)
    return cur_error(c, "byte", hstart, "shape (%lld, %lld) is too large",
                     (long long)rows, (long long)dim);
  if (r->size >= 0 && r->size < off + rows * rowbytes)
    return cur_error(c, "byte", r->size,
                     "unexpected end of file in row %lld of %lld",
                     (long long)((r->size - off) / rowbytes), (long long)rows);
  if (r->size > off + rows * rowbytes)
    return cur_error(c, "byte", off + rows * rowbytes,
                     "data after the %lld x %lld array", (long long)rows,
                     (long long)dim);
  r->pos += off;
  c->count = rows;
  c->dim = dim;
  return alloc_vectors(c);
}

static int npy_next(file_cursor *c) {
  file_reader *r = &c->r;
  int64_t itemsize = c->npy_f64 ? 8 : 4, rowbytes = c->dim * itemsize, k, at;
  const unsigned char *p;
  int rc = reader_fill(r, c->nread == c->count ? 1 : rowbytes,
                       rowbytes + FILE_CHUNK);
  if (rc) return rc;
  if (r->io_errno) return read_error(c);
  at = r->base + r->pos;
  if (c->nread == c->count) {
    if (r->pos < r->end)
      return cur_error(c, "byte", at, "data after the %lld x %lld array",
                       (long long)c->count, (long long)c->dim);
    c->eof = 1;
    return SQLITE_OK;
  }
  if (r->end - r->pos < rowbytes)
    return cur_error(c, "byte", r->base + r->end,
                     "unexpected end of file in row %lld of %lld",
                     (long long)c->nread, (long long)c->count);
  p = (const unsigned char *)r->buf + r->pos;
  if (!c->npy_f64) {
    int code = 0;
    int64_t bad = first_nonfinite_le32(p, c->dim, &code);
    if (bad >= 0)
      return cur_error(c, "byte", at + 4 * bad,
                       "element %lld of row %lld is %s", (long long)bad,
                       (long long)c->nread, nonfinite_name(code));
    c->blob = (unsigned char *)p;
  } else {
    for (k = 0; k < c->dim; k++) {
      uint64_t u = le64(p + 8 * k);
      double d;
      float f;
      memcpy(&d, &u, sizeof(d));
      if (d - d != 0) {
        int code = d != d ? NUM_NAN : (d > 0 ? NUM_POS_INF : NUM_NEG_INF);
        return cur_error(c, "byte", at + 8 * k,
                         "element %lld of row %lld is %s", (long long)k,
                         (long long)c->nread, nonfinite_name(code));
      }
      f = (float)d;
      if (f - f != 0)
        return cur_error(c, "byte", at + 8 * k,
                         "element %lld of row %lld (%g) is beyond float32",
                         (long long)k, (long long)c->nread, d);
      c->vec[k] = f;
    }
    embed_blob_encode(c->vec, c->dim, c->own_blob);
    c->blob = c->own_blob;
  }
  c->token = 0;
  r->pos += rowbytes;
  c->nread++;
  return SQLITE_OK;
}

/* ------------------------------------------------------ open and detect */

/* Is p[0..n) clean text: valid UTF-8 without control bytes but tab and CR?
** A multi-byte character cut by the end of the span (cut=1) is allowed. */
static int clean_text(const unsigned char *p, int64_t n, int cut) {
  int64_t i, valid;
  for (i = 0; i < n; i++)
    if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\r') || p[i] == 0x7F) return 0;
  valid = utf8_valid_prefix(p, n);
  return valid == n || (cut && n - valid < 4);
}

/* Read and check the "count dim" header of a word2vec file. */
static int read_header(file_cursor *c) {
  const char *line;
  int64_t len, count, dim, hdr_end, left, per_entry;
  int got = 0, rc = next_line(c, &line, &len, &got);
  if (rc) return rc;
  if (!got) return cur_error(c, "line", 1, "missing header (empty file)");
  if (!parse_header(line, len, &count, &dim)) {
    char text[4 * SHOWN_MAX + 4];
    while (len > 0 && line[len - 1] == '\r') len--;
    return cur_error(c, "line", 1,
                     "malformed header '%s' (expected \"count dim\")",
                     shown(line, len, text));
  }
  if (dim < 1)
    return cur_error(c, "line", 1, "dimension %lld in the header",
                     (long long)dim);
  if (dim > EMBED_MAX_DIM)
    return cur_error(c, "line", 1, "dimension %lld exceeds the limit of %d",
                     (long long)dim, EMBED_MAX_DIM);
  hdr_end = c->r.base + c->r.pos;
  left = c->r.size >= 0 ? c->r.size - hdr_end : -1;
  /* the smallest entry: a 1-byte token, then D floats as " 0" or 4 bytes */
  per_entry = c->binary ? 2 + 4 * dim : 2 + 2 * dim;
  if (left >= 0 && count > (left + 1) / per_entry)
    return cur_error(c, "line", 1,
                     "the header's count %lld cannot fit in the %lld bytes "
                     "after it (dim %lld): is the file truncated?",
                     (long long)count, (long long)left, (long long)dim);
  c->count = count;
  c->dim = dim;
  return alloc_vectors(c);
}

/* Choose the format of a file opened without one (see the top comment). */
static int detect_format(file_cursor *c) {
  file_reader *r = &c->r;
  const char *p = r->buf + r->pos, *nl;
  int64_t avail = r->end - r->pos, count, dim;
  if (avail == 0)
    return cur_error(c, 0, 0, "'%s' is empty (no format to detect)", c->path);
  if (avail >= 6 && memcmp(p, "\x93NUMPY", 6) == 0) {
    c->format = FMT_NPY;
    return SQLITE_OK;
  }
  nl = memchr(p, '\n', (size_t)(avail < 256 ? avail : 256));
  if (parse_header(p, nl ? nl - p : (avail < 256 ? avail : 0), &count, &dim)) {
    const unsigned char *body =
        (const unsigned char *)(nl ? nl + 1 : p + avail);
    int64_t n = (const unsigned char *)(r->buf + r->end) - body;
    const unsigned char *bnl;
    int cut = 0;
    if (n > FILE_DETECT_SPAN) n = FILE_DETECT_SPAN;
    bnl = memchr(body, '\n', (size_t)n);
    if (bnl)
      n = bnl - body;
    else
      cut = !r->at_eof || n == FILE_DETECT_SPAN;
    c->format = clean_text(body, n, cut) ? FMT_WORD2VEC : FMT_WORD2VEC_BINARY;
    return SQLITE_OK;
  }
  c->format = FMT_GLOVE;
  return SQLITE_OK;
}

static int fileNext(sqlite3_vtab_cursor *cur);

static int fileFilter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr,
                      int argc, sqlite3_value **argv) {
  file_cursor *c = (file_cursor *)cur;
  file_vtab *vt = (file_vtab *)cur->pVtab;
  const char *path, *fmt = 0;
  struct stat sb;
  FILE *f;
  int rc, i;
  (void)idxStr;
  cursor_reset(c);
  c->path = sqlite3_mprintf("%s", "");
  if (!c->path) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  if (argc < 1 || !(idxNum & IDX_PATH)) {
    rc = cur_error(c, 0, 0, "a file path is required");
    goto done;
  }
  path = (const char *)sqlite3_value_text(argv[0]);
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL || !path || !path[0]) {
    rc = cur_error(
        c, 0, 0, "the path is %s",
        sqlite3_value_type(argv[0]) == SQLITE_NULL ? "NULL" : "empty");
    goto done;
  }
  sqlite3_free(c->path);
  c->path = sqlite3_mprintf("%s", path);
  if (!c->path) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  if ((idxNum & IDX_FORMAT) && argc > 1 &&
      sqlite3_value_type(argv[1]) != SQLITE_NULL) {
    fmt = (const char *)sqlite3_value_text(argv[1]);
    if (!fmt) {
      rc = SQLITE_NOMEM;
      goto done;
    }
    for (i = FMT_WORD2VEC; i <= FMT_NPY; i++)
      if (sqlite3_stricmp(fmt, format_names[i]) == 0) c->format = i;
    if (c->format == FMT_AUTO) {
      rc = cur_error(c, 0, 0,
                     "unknown format '%s' (expected word2vec, "
                     "word2vec-binary, glove, fasttext or npy)",
                     fmt);
      goto done;
    }
  }
  f = fopen(c->path, "rb");
  if (!f) {
    rc = cur_error(c, 0, 0, "cannot open '%s': %s", c->path, strerror(errno));
    goto done;
  }
  c->r.f = f;
  if (fstat(fileno(f), &sb) != 0) {
    rc = cur_error(c, 0, 0, "cannot open '%s': %s", c->path, strerror(errno));
    goto done;
  }
  if (S_ISDIR(sb.st_mode)) {
    rc = cur_error(c, 0, 0, "'%s' is a directory", c->path);
    goto done;
  }
  c->r.size = S_ISREG(sb.st_mode) ? (int64_t)sb.st_size : -1;
  setvbuf(f, 0, _IONBF, 0);
  rc = reader_fill(&c->r, FILE_DETECT_SPAN + 512, FILE_CHUNK);
  if (rc) goto done;
  if (c->r.io_errno) {
    rc = read_error(c);
    goto done;
  }
  if (c->format != FMT_NPY && c->r.end - c->r.pos >= 3 &&
      memcmp(c->r.buf + c->r.pos, "\xEF\xBB\xBF", 3) == 0)
    c->r.pos += 3; /* a UTF-8 byte order mark */
  if (c->format == FMT_AUTO) {
    rc = detect_format(c);
    if (rc) goto done;
  }
  c->binary = c->format == FMT_WORD2VEC_BINARY;
  c->has_header = c->format != FMT_GLOVE && c->format != FMT_NPY;
  c->eof = 0;
  if (c->format == FMT_NPY)
    rc = npy_open(c);
  else if (c->has_header)
    rc = read_header(c);
  if (rc == SQLITE_OK) rc = fileNext(cur);
done:
  if (rc != SQLITE_OK) {
    c->eof = 1;
    vt->st->file_errors++;
  }
  return rc;
}

static int fileNext(sqlite3_vtab_cursor *cur) {
  file_cursor *c = (file_cursor *)cur;
  int rc;
  c->token = 0;
  c->blob = 0;
  if (c->format == FMT_NPY)
    rc = npy_next(c);
  else if (c->binary)
    rc = binary_next(c);
  else
    rc = text_next(c);
  if (rc != SQLITE_OK) {
    c->eof = 1;
    ((file_vtab *)cur->pVtab)->st->file_errors++;
  }
  return rc;
}

static int fileEof(sqlite3_vtab_cursor *cur) {
  return ((file_cursor *)cur)->eof;
}

static int fileColumn(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  file_cursor *c = (file_cursor *)cur;
  switch (i) {
    case COL_TOKEN:
      if (c->token)
        sqlite3_result_text64(ctx, c->token, (sqlite3_uint64)c->token_len,
                              SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    case COL_VECTOR:
      if (c->blob)
        sqlite3_result_blob64(ctx, c->blob, (sqlite3_uint64)c->dim * 4,
                              SQLITE_TRANSIENT);
      break;
    case COL_N:
      sqlite3_result_int64(ctx, c->nread - 1);
      break;
    case COL_PATH:
      sqlite3_result_text(ctx, c->path, -1, SQLITE_TRANSIENT);
      break;
    default:
      sqlite3_result_text(ctx, format_names[c->format], -1, SQLITE_STATIC);
      break;
  }
  return SQLITE_OK;
}

static int fileRowid(sqlite3_vtab_cursor *cur, sqlite_int64 *pRowid) {
  *pRowid = ((file_cursor *)cur)->nread - 1;
  return SQLITE_OK;
}

static sqlite3_module file_module = {
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

/* ============================================================ embed_save */

typedef enum save_format {
  SAVE_WORD2VEC = 1,
  SAVE_WORD2VEC_BINARY,
  SAVE_GLOVE
} save_format;

/* The state of one group, in the aggregate context (zeroed by SQLite). */
typedef struct save_ctx {
  int started, failed;
  save_format format;
  char *path;       /* the target (a symlink resolved) */
  char *path_arg;   /* the path as given: for messages, to catch a change */
  char *format_arg; /* the format as given */
  char *body_path;  /* temporary file with the rows so far */
  FILE *body;
  char *final_path; /* temporary file with header and rows, then renamed */
  int64_t dim, count;
  char *text;          /* a row's numbers as text */
  unsigned char *blob; /* a row's vector as LE float32 */
  files_state *st;
  sqlite3_int64 file_errors; /* st->file_errors when the group started */
} save_ctx;

/* Remove what a group left behind; the target is never touched here. */
static void save_cleanup(save_ctx *s) {
  if (s->body) fclose(s->body);
  if (s->body_path) remove(s->body_path);
  if (s->final_path) remove(s->final_path);
  sqlite3_free(s->path);
  sqlite3_free(s->path_arg);
  sqlite3_free(s->format_arg);
  sqlite3_free(s->body_path);
  sqlite3_free(s->final_path);
  sqlite3_free(s->text);
  sqlite3_free(s->blob);
  s->body = 0;
  s->path = s->path_arg = s->format_arg = 0;
  s->body_path = s->final_path = s->text = 0;
  s->blob = 0;
}

static int save_fail(save_ctx *s, char **pzErr, char *zMsg) {
  (void)s;
  *pzErr = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* Create "PATH.embed-XXXXXXXX.tmp" exclusively (mode 0666 less umask). */
static int create_temp(save_ctx *s, char **name, FILE **out, char **pzErr) {
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
      return save_fail(s, pzErr,
                       sqlite3_mprintf("embed_save: cannot create a temporary "
                                       "file next to '%s': %s",
                                       s->path_arg, strerror(err)));
    }
    sqlite3_free(*name);
    *name = 0;
  }
  return save_fail(s, pzErr,
                   sqlite3_mprintf("embed_save: cannot create a temporary "
                                   "file next to '%s'",
                                   s->path_arg));
}

static int write_error(save_ctx *s, char **pzErr) {
  return save_fail(s, pzErr,
                   sqlite3_mprintf("embed_save: cannot write '%s': %s",
                                   s->path_arg, strerror(errno ? errno : EIO)));
}

static int save_write(save_ctx *s, FILE *f, const void *p, int64_t n,
                      char **pzErr) {
  errno = 0;
  if (n > 0 && fwrite(p, 1, (size_t)n, f) != (size_t)n)
    return write_error(s, pzErr);
  return SQLITE_OK;
}

/* The first row of a group: check path and format, create the body file. */
static int save_start(save_ctx *s, sqlite3_context *ctx, sqlite3_value **argv,
                      char **pzErr) {
  const char *path = (const char *)sqlite3_value_text(argv[0]);
  const char *fmt = (const char *)sqlite3_value_text(argv[1]);
  struct stat sb;
  s->started = 1;
  s->st = (files_state *)sqlite3_user_data(ctx);
  s->file_errors = s->st->file_errors;
  if (sqlite3_value_type(argv[0]) != SQLITE_TEXT || !path || !path[0])
    return save_fail(
        s, pzErr,
        sqlite3_mprintf("embed_save: the path must be non-empty "
                        "TEXT, got %s",
                        sqlite3_value_type(argv[0]) == SQLITE_TEXT
                            ? "''"
                            : embed_type_name(sqlite3_value_type(argv[0]))));
  if (sqlite3_value_type(argv[1]) != SQLITE_TEXT || !fmt)
    return save_fail(
        s, pzErr,
        sqlite3_mprintf("embed_save: the format must be TEXT, "
                        "got %s",
                        embed_type_name(sqlite3_value_type(argv[1]))));
  if (sqlite3_stricmp(fmt, "word2vec") == 0 ||
      sqlite3_stricmp(fmt, "fasttext") == 0)
    s->format = SAVE_WORD2VEC;
  else if (sqlite3_stricmp(fmt, "word2vec-binary") == 0)
    s->format = SAVE_WORD2VEC_BINARY;
  else if (sqlite3_stricmp(fmt, "glove") == 0)
    s->format = SAVE_GLOVE;
  else
    return save_fail(s, pzErr,
                     sqlite3_mprintf("embed_save: unknown format '%s' "
                                     "(expected word2vec, word2vec-binary, "
                                     "fasttext or glove)",
                                     fmt));
  s->format_arg = sqlite3_mprintf("%s", fmt);
  s->path_arg = sqlite3_mprintf("%s", path);
  if (!s->format_arg || !s->path_arg) return SQLITE_NOMEM;
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
      return save_fail(
          s, pzErr, sqlite3_mprintf("embed_save: '%s' is a directory", path));
    if (!S_ISREG(sb.st_mode))
      return save_fail(s, pzErr,
                       sqlite3_mprintf("embed_save: '%s' is not a regular "
                                       "file (a device, FIFO or socket)",
                                       path));
  }
  return create_temp(s, &s->body_path, &s->body, pzErr);
}

/* Check a token for the formats: non-empty UTF-8 text without whitespace. */
static int check_token(sqlite3_value *val, const char **out, int64_t *len,
                       char **pzErr) {
  int type = sqlite3_value_type(val);
  const unsigned char *t;
  int64_t n, i;
  if (type == SQLITE_NULL || type == SQLITE_BLOB) {
    *pzErr = sqlite3_mprintf("embed_save: the token must be TEXT, got %s",
                             embed_type_name(type));
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  t = sqlite3_value_text(val);
  if (!t) return SQLITE_NOMEM;
  n = sqlite3_value_bytes(val);
  if (n == 0) {
    *pzErr = sqlite3_mprintf("embed_save: empty token");
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  for (i = 0; i < n; i++) {
    if (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r' ||
        t[i] == '\v' || t[i] == '\f') {
      *pzErr = sqlite3_mprintf(
          "embed_save: token '%s' contains whitespace "
          "(the file formats separate with it)",
          t);
      return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
    }
  }
  if (utf8_valid_prefix(t, n) != n) {
    *pzErr = sqlite3_mprintf("embed_save: token is not valid UTF-8 (byte %lld)",
                             (long long)utf8_valid_prefix(t, n));
    return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
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
      return save_fail(s, pzErr,
                       sqlite3_mprintf("embed_save: the path or format "
                                       "changed within the group (was '%s', "
                                       "'%s')",
                                       s->path_arg, s->format_arg));
  }
  rc = check_token(argv[2], &token, &token_len, pzErr);
  if (rc) return rc;
  rc = embed_vec_from_value(argv[3], "embed_save", &vec, pzErr);
  if (rc) return rc;
  if (!vec.v)
    return save_fail(
        s, pzErr,
        sqlite3_mprintf("embed_save: NULL vector for token '%s'", token));
  if (s->count == 0) {
    s->dim = vec.dim;
    s->text = sqlite3_malloc64((sqlite3_uint64)embed_json_format_size(vec.dim));
    s->blob = sqlite3_malloc64((sqlite3_uint64)vec.dim * 4);
    if (!s->text || !s->blob) {
      rc = SQLITE_NOMEM;
      goto done;
    }
  } else if (vec.dim != s->dim) {
    rc = save_fail(
        s, pzErr,
        sqlite3_mprintf("embed_save: dimension mismatch at token "
                        "'%s' (%lld vs %lld)",
                        token, (long long)vec.dim, (long long)s->dim));
    goto done;
  }
  rc = save_write(s, s->body, token, token_len, pzErr);
  if (rc == SQLITE_OK) rc = save_write(s, s->body, " ", 1, pzErr);
  if (rc == SQLITE_OK && s->format == SAVE_WORD2VEC_BINARY) {
    embed_blob_encode(vec.v, vec.dim, s->blob);
    rc = save_write(s, s->body, s->blob, 4 * vec.dim, pzErr);
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

static void save_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
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

/* Write the header and the body to the final temporary file, sync it and
** rename it over the target. */
static int save_commit(save_ctx *s, char **pzErr) {
  FILE *out = 0;
  char *buf = 0, header[64];
  int rc = SQLITE_OK, hlen;
  errno = 0;
  if (fflush(s->body) != 0 || ferror(s->body)) return write_error(s, pzErr);
  if (s->format == SAVE_GLOVE) {
    /* no header: the body is the file */
    if (fsync(fileno(s->body)) != 0) return write_error(s, pzErr);
    if (fclose(s->body) != 0) {
      s->body = 0;
      return write_error(s, pzErr);
    }
    s->body = 0;
    s->final_path = s->body_path;
    s->body_path = 0;
  } else {
    rc = create_temp(s, &s->final_path, &out, pzErr);
    if (rc) return rc;
    hlen = snprintf(header, sizeof(header), "%lld %lld\n", (long long)s->count,
                    (long long)s->dim);
    rc = save_write(s, out, header, hlen, pzErr);
    buf = sqlite3_malloc64(FILE_CHUNK);
    if (rc == SQLITE_OK && !buf) rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK && fseek(s->body, 0, SEEK_SET) != 0)
      rc = write_error(s, pzErr);
    while (rc == SQLITE_OK) {
      size_t got = fread(buf, 1, FILE_CHUNK, s->body);
      if (got == 0) {
        if (ferror(s->body)) rc = write_error(s, pzErr);
        break;
      }
      rc = save_write(s, out, buf, (int64_t)got, pzErr);
    }
    sqlite3_free(buf);
    errno = 0;
    if (rc == SQLITE_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0))
      rc = write_error(s, pzErr);
    if (fclose(out) != 0 && rc == SQLITE_OK) rc = write_error(s, pzErr);
    if (rc) return rc;
  }
  if (rename(s->final_path, s->path) != 0)
    return save_fail(s, pzErr,
                     sqlite3_mprintf("embed_save: cannot replace '%s': %s",
                                     s->path_arg, strerror(errno)));
  sqlite3_free(s->final_path);
  s->final_path = 0; /* renamed: cleanup must not remove it */
  return SQLITE_OK;
}

static void save_final(sqlite3_context *ctx) {
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
    rc = save_fail(s, &zErr,
                   sqlite3_mprintf("embed_save: '%s' not written: an "
                                   "embed_file read failed meanwhile",
                                   s->path_arg));
  } else {
    rc = save_commit(s, &zErr);
  }
  save_cleanup(s);
  if (rc)
    embed_result_error(ctx, rc, zErr);
  else
    sqlite3_result_int64(ctx, s->count);
}

/* ========================================================== registration */

int embed_register_files(sqlite3 *db) {
  files_state *st = sqlite3_malloc64(sizeof(*st));
  int rc;
  if (!st) return SQLITE_NOMEM;
  memset(st, 0, sizeof(*st));
  st->refs = 2; /* the module's and the function's */
  rc = sqlite3_create_module_v2(db, "embed_file", &file_module, st,
                                files_state_release);
  if (rc != SQLITE_OK) {
    files_state_release(st); /* the function's share; SQLite freed the other */
    return rc;
  }
  /* on failure SQLite calls files_state_release itself */
  return sqlite3_create_function_v2(db, "embed_save", 4,
                                    SQLITE_UTF8 | SQLITE_DIRECTONLY, st, 0,
                                    save_step, save_final, files_state_release);
}
