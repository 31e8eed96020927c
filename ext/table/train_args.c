/*
** train_args.c - the arguments of a training call: the ids (one, or a JSON
** array) and the gradients (one vector, or an n x D BLOB or JSON array of
** arrays), read and checked before the call touches a row.
**
** Usage (train.c):
**
**     embed_train_ids ids;
**     rc = embed_train_read_ids(idv, "embed_update", &ids, &zErr);
**     rc = embed_train_read_grads(st, "embed_update", gradv, ids.n,
**                                 ids.is_batch, &grads, &owned, &zErr);
**     ...
**     if (owned) sqlite3_free((void *)grads);
**     sqlite3_free(ids.many);
**
** Design: a little-endian float32 BLOB aligned for floats is used where it
** lies (checked finite, not copied); anything else is decoded into a
** buffer the caller frees. Every message names who and, for a gradient of
** the wrong shape, what was expected.
*/
#include <string.h>

#include "table/table.h"

int embed_train_read_ids(sqlite3_value *v, const char *who,
                         embed_train_ids *out, char **pzErr) {
  int type = sqlite3_value_type(v);
  memset(out, 0, sizeof(*out));
  if (type == SQLITE_NULL) {
    out->is_null = 1;
    return SQLITE_OK;
  }
  if (type == SQLITE_INTEGER) {
    out->one = sqlite3_value_int64(v);
    out->n = 1;
    return SQLITE_OK;
  }
  if (type == SQLITE_TEXT) {
    const char *text = (const char *)sqlite3_value_text(v);
    int64_t len = sqlite3_value_bytes(v), cap;
    embed_error err;
    if (!text) return SQLITE_NOMEM;
    cap = embed_json_capacity(text, len);
    if (cap > EMBED_MAX_BATCH) cap = EMBED_MAX_BATCH + 1;
    out->many =
        (int64_t *)sqlite3_malloc64((sqlite3_uint64)cap * EMBED_ID_BYTES);
    if (!out->many) return SQLITE_NOMEM;
    if (embed_json_parse_ids(text, len, out->many, cap, &out->n, &err)) {
      sqlite3_free(out->many);
      out->many = 0;
      if (err.code == EMBED_E_EMPTY)
        return embed_fail(pzErr, sqlite3_mprintf("%s: empty id array", who));
      if (err.code == EMBED_E_JSON)
        return embed_fail(
            pzErr,
            sqlite3_mprintf(
                "%s: malformed JSON id array at offset %lld (expected %s)", who,
                (long long)err.a, err.what));
      return embed_fail(pzErr, embed_error_text(who, &err));
    }
    out->is_batch = 1;
    return SQLITE_OK;
  }
  return embed_fail(
      pzErr, sqlite3_mprintf(
                 "%s: id must be an INTEGER or a JSON array of ids, got %s",
                 who, embed_type_name(type)));
}

int embed_train_read_grads(embed_store *st, const char *who, sqlite3_value *v,
                           int64_t n, int batch, const float **out, int *owned,
                           char **pzErr) {
  int64_t dim = embed_store_config(st)->dim;
  int type = sqlite3_value_type(v);
  embed_error err;
  float *buf;
  *out = 0;
  *owned = 1;
  if (!batch) {
    embed_vec g;
    int rc = embed_vec_from_value(v, who, &g, pzErr);
    if (rc) return rc;
    if (!g.v)
      return embed_fail(pzErr, sqlite3_mprintf("%s: gradient is NULL", who));
    if (g.dim != dim) {
      int64_t got = g.dim;
      embed_vec_free(&g);
      return embed_fail(
          pzErr,
          sqlite3_mprintf(
              "%s: dimension mismatch (gradient %lld vs embedding %s %lld)",
              who, (long long)got, embed_store_name(st), (long long)dim));
    }
    *out = g.v;
    return SQLITE_OK;
  }
  if (type == SQLITE_BLOB) {
    const void *bytes = sqlite3_value_blob(v);
    int64_t nbytes = sqlite3_value_bytes(v);
    if (nbytes != n * dim * EMBED_FLOAT_BYTES) {
      return embed_fail(
          pzErr,
          sqlite3_mprintf(
              "%s: gradient BLOB has %lld bytes, expected %lld ids x %lld floats = %lld",
              who, (long long)nbytes, (long long)n, (long long)dim,
              (long long)(n * dim * EMBED_FLOAT_BYTES)));
    }
    if (!bytes) return SQLITE_NOMEM;
    if (EMBED_HOST_LE && ((uintptr_t)bytes % sizeof(float)) == 0) {
      if (embed_blob_check(bytes, n * dim, &err)) {
        return embed_fail(pzErr, embed_error_text(who, &err));
      }
      *out = (const float *)bytes;
      *owned = 0;
      return SQLITE_OK;
    }
    buf =
        (float *)sqlite3_malloc64((sqlite3_uint64)n * dim * EMBED_FLOAT_BYTES);
    if (!buf) return SQLITE_NOMEM;
    *out = buf;
    if (embed_blob_decode(bytes, n * dim, buf, &err)) {
      return embed_fail(pzErr, embed_error_text(who, &err));
    }
    return SQLITE_OK;
  }
  if (type == SQLITE_TEXT) {
    const char *text = (const char *)sqlite3_value_text(v);
    int64_t len = sqlite3_value_bytes(v), rows = 0, cols = 0;
    if (!text) return SQLITE_NOMEM;
    buf =
        (float *)sqlite3_malloc64((sqlite3_uint64)n * dim * EMBED_FLOAT_BYTES);
    if (!buf) return SQLITE_NOMEM;
    *out = buf;
    if (embed_json_parse_floats(text, len, 1, buf, n * dim, &rows, &cols,
                                &err)) {
      if (err.code == EMBED_E_TOO_LONG)
        return embed_fail(
            pzErr, sqlite3_mprintf(
                       "%s: gradients have more than %lld ids x %lld floats",
                       who, (long long)n, (long long)dim));
      return embed_fail(pzErr, embed_error_text(who, &err));
    }
    if (rows != n || cols != dim)
      return embed_fail(
          pzErr,
          sqlite3_mprintf(
              "%s: gradients are %lld x %lld, expected %lld ids x %lld", who,
              (long long)rows, (long long)cols, (long long)n, (long long)dim));
    return SQLITE_OK;
  }
  return embed_fail(
      pzErr,
      sqlite3_mprintf(
          "%s: gradients must be a BLOB of n x D float32 or a JSON array of arrays, got %s",
          who, embed_type_name(type)));
}
