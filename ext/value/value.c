/*
** value.c - vectors in and out of SQL values, and the text of errors.
**
** Usage (inside an SQL function):
**
**     embed_vec a;
**     char *zErr = 0;
**     int rc = embed_vec_from_value(argv[0], "embed_norm", &a, &zErr);
**     if (rc) { embed_result_error(ctx, rc, zErr); return; }
**     if (!a.v) { sqlite3_result_null(ctx); return; }   // SQL NULL
**     ...
**     embed_vec_free(&a);
**
** Design: a vector argument is a BLOB (decoded by vector.c) or JSON text
** (parsed by vector.c); anything else is an error naming the SQL type. The
** decoded copy is 16-byte aligned memory from sqlite3_malloc64. Messages have
** the form "who: problem (values)", e.g.
** "embed_cosine: dimension mismatch (3 vs 4)".
*/
#include <math.h>
#include <string.h>

#include "value/value.h"

const char *embed_type_name(int type) {
  switch (type) {
    case SQLITE_INTEGER:
      return "INTEGER";
    case SQLITE_FLOAT:
      return "REAL";
    case SQLITE_TEXT:
      return "TEXT";
    case SQLITE_BLOB:
      return "BLOB";
    default:
      return "NULL";
  }
}

char *embed_error_text(const char *who, const embed_error *err) {
  static const char *const nonfinite[] = {"NaN", "+Inf", "-Inf"};
  switch (err->code) {
    case EMBED_E_EMPTY:
      return sqlite3_mprintf("%s: empty vector", who);
    case EMBED_E_BLOB_LENGTH:
      return sqlite3_mprintf(
          "%s: BLOB length %lld is not a multiple of 4 (float32)", who,
          (long long)err->a);
    case EMBED_E_TOO_LONG:
      return sqlite3_mprintf("%s: dimension %lld exceeds the limit of %d", who,
                             (long long)err->a, EMBED_MAX_DIM);
    case EMBED_E_NONFINITE:
      return sqlite3_mprintf("%s: element %lld is %s", who, (long long)err->a,
                             nonfinite[err->b == 0 ? 0 : (err->b > 0 ? 1 : 2)]);
    case EMBED_E_JSON:
      return sqlite3_mprintf(
          "%s: malformed JSON vector at offset %lld (expected %s)", who,
          (long long)err->a, err->what);
    case EMBED_E_RAGGED:
      return sqlite3_mprintf("%s: row %lld has %lld elements, expected %lld",
                             who, (long long)err->a, (long long)err->b,
                             (long long)err->c);
    case EMBED_E_NOT_INTEGER:
      return sqlite3_mprintf(
          "%s: id %lld of the JSON array is not a 64-bit integer", who,
          (long long)err->a);
    case EMBED_E_MESSAGE:
      return sqlite3_mprintf("%s: %s", who, err->text);
    case EMBED_E_TOO_MANY:
      return sqlite3_mprintf("%s: more than %lld ids (the batch limit)", who,
                             (long long)err->b);
    default:
      return sqlite3_mprintf("%s: invalid vector", who);
  }
}

void embed_vec_free(embed_vec *vec) {
  sqlite3_free(vec->v);
  vec->v = 0;
  vec->dim = 0;
}

int embed_vec_from_value(sqlite3_value *val, const char *who, embed_vec *out,
                         char **pzErr) {
  embed_error err;
  int type = sqlite3_value_type(val);
  out->v = 0;
  out->dim = 0;
  if (type == SQLITE_NULL) return SQLITE_OK;
  if (type == SQLITE_BLOB) {
    int64_t nbytes = sqlite3_value_bytes(val);
    const void *blob = sqlite3_value_blob(val);
    int64_t dim = embed_blob_dim(nbytes, &err);
    if (dim < 0) goto bad;
    out->v = (float *)sqlite3_malloc64((sqlite3_uint64)dim * sizeof(float));
    if (!out->v) return SQLITE_NOMEM;
    if (embed_blob_decode(blob, dim, out->v, &err)) goto bad;
    out->dim = dim;
    return SQLITE_OK;
  }
  if (type == SQLITE_TEXT) {
    const char *text = (const char *)sqlite3_value_text(val);
    int64_t n = sqlite3_value_bytes(val), cap, rows, dim;
    if (!text) return SQLITE_NOMEM;
    cap = embed_json_capacity(text, n);
    if (cap > EMBED_MAX_DIM) cap = EMBED_MAX_DIM;
    out->v = (float *)sqlite3_malloc64((sqlite3_uint64)cap * sizeof(float));
    if (!out->v) return SQLITE_NOMEM;
    if (embed_json_parse_floats(text, n, 0, out->v, cap, &rows, &dim, &err))
      goto bad;
    out->dim = dim;
    return SQLITE_OK;
  }
  return embed_fail(
      pzErr,
      sqlite3_mprintf("%s: expected a vector (BLOB or JSON text), got %s", who,
                      embed_type_name(type)));
bad:
  embed_vec_free(out);
  return embed_fail(pzErr, embed_error_text(who, &err));
}

int embed_fail(char **pzErr, char *zMsg) {
  *pzErr = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

int embed_number_from_value(sqlite3_value *val, const char *who,
                            const char *what, double *out, char **pzErr) {
  int type = sqlite3_value_type(val);
  if (type == SQLITE_INTEGER || type == SQLITE_FLOAT) {
    double d = sqlite3_value_double(val);
    if (d - d == 0) { /* finite */
      *out = d;
      return SQLITE_OK;
    }
    *pzErr = sqlite3_mprintf("%s: %s must be finite, got %f", who, what, d);
  } else {
    *pzErr = sqlite3_mprintf("%s: %s must be a number, got %s", who, what,
                             embed_type_name(type));
  }
  return *pzErr ? SQLITE_ERROR : SQLITE_NOMEM;
}

void embed_result_vector(sqlite3_context *ctx, const float *v, int64_t dim) {
  void *blob = sqlite3_malloc64((sqlite3_uint64)dim * sizeof(float));
  if (!blob) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  embed_blob_encode(v, dim, blob);
  sqlite3_result_blob64(ctx, blob, (sqlite3_uint64)dim * sizeof(float),
                        sqlite3_free);
}

void embed_result_error(sqlite3_context *ctx, int rc, char *zErr) {
  if (rc == SQLITE_NOMEM || !zErr) {
    sqlite3_result_error_nomem(ctx);
  } else {
    sqlite3_result_error(ctx, zErr, -1);
    if (rc != SQLITE_ERROR) sqlite3_result_error_code(ctx, rc);
  }
  sqlite3_free(zErr);
}

int embed_exec(sqlite3 *db, char *zSql) {
  int rc;
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_exec(db, zSql, 0, 0, 0);
  sqlite3_free(zSql);
  return rc;
}

int embed_prepare(sqlite3 *db, char *zSql, unsigned flags, sqlite3_stmt **out) {
  int rc;
  *out = 0;
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v3(db, zSql, -1, flags, out, 0);
  sqlite3_free(zSql);
  return rc;
}

int embed_value_as_id(sqlite3_value *v, int64_t *id) {
  int type = sqlite3_value_numeric_type(v);
  if (type == SQLITE_INTEGER) {
    *id = sqlite3_value_int64(v);
    return 1;
  }
  if (type == SQLITE_FLOAT) {
    double d = sqlite3_value_double(v);
    if (d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
        d == floor(d)) {
      *id = (int64_t)d;
      return 1;
    }
  }
  return 0;
}
