/*
** npy.c - numpy's .npy format in embed_file: a 2-D array, one row per
** entry, with no tokens.
**
** Usage:
**
**     SELECT n, vector FROM embed_file('weights.npy');     -- token is NULL
**     INSERT INTO emb(id, vector)
**       SELECT n, vector FROM embed_file('weights.npy');  -- row n = id n
**
** Format (README "Files: word2vec, GloVe, fastText, npy"):
**
**   npy   numpy's .npy v1-v3 (what numpy.save writes): the magic
**         "\x93NUMPY", a version, a header length (2 bytes in v1, 4 in
**         v2/v3), a Python dict {'descr': '<f4', 'fortran_order': False,
**         'shape': (rows, dim), } and the data. Accepted: a 2-D float32
**         ('<f4') or float64 ('<f8') array in C order, little-endian;
**         float64 is rounded to float32. token is NULL, n is the row.
**
** The header is checked before any row: the dtype, the order, the shape
** (2-D, 1 <= dim <= EMBED_MAX_DIM), and, for a regular file, that its size
** is exactly the header plus rows * dim * itemsize. Errors name the byte
** offset: "embed_file: 'w.npy' byte 10: unsupported dtype '<i8' ...",
** "... byte 1234: element 3 of row 7 is NaN"; a float64 beyond float32's
** range is an error too.
**
** Design: a row is made available whole in the reader's buffer. float32
** rows are the stored BLOB already (little-endian float32) and are only
** checked; float64 rows are decoded, checked and encoded into own_blob.
** The dict parser accepts what numpy writes (either quote, Python 2's
** 12L, a trailing comma), refuses any other key, and keeps at most 8
** dimensions of a shape for the message.
*/
#include <string.h>

#include "io/io.h"

#define NPY_MAX_HEADER (1 << 20) /* longest .npy header accepted */
#define NPY_F64_BYTES 8          /* one '<f8' element */

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

int embed_npy_open(embed_file_cursor *c) {
  embed_file_reader *r = &c->r;
  const unsigned char *b;
  int64_t hlen, hstart, off, rows, dim, rowbytes;
  char descr[32];
  int64_t shape[8];
  int fortran = 0, ndim = 0, rc, major;
  const char *msg;
  rc = embed_reader_fill(r, 12, IO_CHUNK);
  if (rc) return rc;
  if (r->io_errno) return embed_file_read_error(c);
  b = (const unsigned char *)r->buf + r->pos;
  if (r->end - r->pos < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return embed_file_error(c, "byte", 0,
                            "not a .npy file (no \\x93NUMPY magic)");
  major = b[6];
  if (major == 1) {
    hlen = (int64_t)b[8] | ((int64_t)b[9] << 8);
    hstart = 10;
  } else if (major == 2 || major == 3) {
    if (r->end - r->pos < 12)
      return embed_file_error(c, "byte", r->base + r->end,
                              "unexpected end of file in the header");
    hlen = (int64_t)io_get_le32(b + 8);
    hstart = 12;
  } else {
    return embed_file_error(c, "byte", 6, "unsupported .npy version %d.%d",
                            major, b[7]);
  }
  if (hlen > NPY_MAX_HEADER)
    return embed_file_error(c, "byte", 8, "header length %lld exceeds %d bytes",
                            (long long)hlen, NPY_MAX_HEADER);
  off = hstart + hlen;
  rc = embed_reader_fill(r, off, NPY_MAX_HEADER + IO_CHUNK);
  if (rc) return rc;
  if (r->io_errno) return embed_file_read_error(c);
  if (r->end - r->pos < off)
    return embed_file_error(c, "byte", r->base + r->end,
                            "unexpected end of file in the header");
  msg = npy_parse_dict(r->buf + r->pos + hstart, r->buf + r->pos + off, descr,
                       (int)sizeof(descr), &fortran, shape, &ndim);
  if (msg) return embed_file_error(c, "byte", hstart, "%s", msg);
  if (strcmp(descr, "<f4") == 0 || strcmp(descr, "<f8") == 0) {
    c->npy_f64 = descr[2] == '8';
  } else {
    char text[IO_QUOTE_SIZE];
    return embed_file_error(
        c, "byte", hstart,
        "unsupported dtype '%s' (expected '<f4' float32 or '<f8' float64)",
        embed_file_quote(descr, (int64_t)strlen(descr), text));
  }
  if (fortran)
    return embed_file_error(
        c, "byte", hstart,
        "Fortran-order array (save it in C order, e.g. with numpy.ascontiguousarray)");
  if (ndim != 2) {
    char dims[160];
    int i, len = 0;
    for (i = 0; i < ndim && i < 8 && len < 120; i++)
      len += snprintf(dims + len, sizeof(dims) - (size_t)len, "%s%lld",
                      i ? ", " : "", (long long)shape[i]);
    if (ndim > 8) snprintf(dims + len, sizeof(dims) - (size_t)len, ", ...");
    if (ndim == 0) dims[0] = 0;
    return embed_file_error(c, "byte", hstart,
                            "shape (%s%s) is not 2-D (rows, dim)", dims,
                            ndim == 1 ? "," : "");
  }
  rows = shape[0];
  dim = shape[1];
  if (dim < 1)
    return embed_file_error(c, "byte", hstart,
                            "dimension %lld in shape (%lld, %lld)",
                            (long long)dim, (long long)rows, (long long)dim);
  if (dim > EMBED_MAX_DIM)
    return embed_file_error(c, "byte", hstart,
                            "dimension %lld exceeds the limit of %d",
                            (long long)dim, EMBED_MAX_DIM);
  rowbytes = dim * (c->npy_f64 ? NPY_F64_BYTES : EMBED_FLOAT_BYTES);
  if (rows > INT64_MAX / rowbytes - off)
    return embed_file_error(c, "byte", hstart,
                            "shape (%lld, %lld) is too large", (long long)rows,
                            (long long)dim);
  if (r->size >= 0 && r->size < off + rows * rowbytes)
    return embed_file_error(
        c, "byte", r->size, "unexpected end of file in row %lld of %lld",
        (long long)((r->size - off) / rowbytes), (long long)rows);
  if (r->size > off + rows * rowbytes)
    return embed_file_error(c, "byte", off + rows * rowbytes,
                            "data after the %lld x %lld array", (long long)rows,
                            (long long)dim);
  r->pos += off;
  c->count = rows;
  c->dim = dim;
  return embed_file_alloc_vectors(c);
}

int embed_npy_next(embed_file_cursor *c) {
  embed_file_reader *r = &c->r;
  int64_t itemsize = c->npy_f64 ? NPY_F64_BYTES : EMBED_FLOAT_BYTES;
  int64_t rowbytes = c->dim * itemsize, k, at;
  const unsigned char *p;
  int rc = embed_reader_fill(r, c->nread == c->count ? 1 : rowbytes,
                             rowbytes + IO_CHUNK);
  if (rc) return rc;
  if (r->io_errno) return embed_file_read_error(c);
  at = r->base + r->pos;
  if (c->nread == c->count) {
    if (r->pos < r->end)
      return embed_file_error(c, "byte", at, "data after the %lld x %lld array",
                              (long long)c->count, (long long)c->dim);
    c->eof = 1;
    return SQLITE_OK;
  }
  if (r->end - r->pos < rowbytes)
    return embed_file_error(c, "byte", r->base + r->end,
                            "unexpected end of file in row %lld of %lld",
                            (long long)c->nread, (long long)c->count);
  p = (const unsigned char *)r->buf + r->pos;
  if (!c->npy_f64) {
    int code = 0;
    int64_t bad = embed_first_nonfinite_le32(p, c->dim, &code);
    if (bad >= 0)
      return embed_file_error(c, "byte", at + EMBED_FLOAT_BYTES * bad,
                              "element %lld of row %lld is %s", (long long)bad,
                              (long long)c->nread, embed_nonfinite_name(code));
    c->blob = (unsigned char *)p;
  } else {
    for (k = 0; k < c->dim; k++) {
      uint64_t u = io_get_le64(p + NPY_F64_BYTES * k);
      double d;
      float f;
      memcpy(&d, &u, sizeof(d));
      if (d - d != 0) {
        int code = d != d ? EMBED_NUM_NAN
                          : (d > 0 ? EMBED_NUM_POS_INF : EMBED_NUM_NEG_INF);
        return embed_file_error(
            c, "byte", at + NPY_F64_BYTES * k, "element %lld of row %lld is %s",
            (long long)k, (long long)c->nread, embed_nonfinite_name(code));
      }
      f = (float)d;
      if (f - f != 0)
        return embed_file_error(
            c, "byte", at + NPY_F64_BYTES * k,
            "element %lld of row %lld (%g) is beyond float32", (long long)k,
            (long long)c->nread, d);
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
