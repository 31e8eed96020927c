/*
** text_formats.c - the text formats of embed_file: word2vec text, fastText
** .vec and GloVe; and the "count dim" header line that word2vec binary
** shares.
**
** Usage:
**
**     SELECT token, vector FROM embed_file('glove.6B.50d.txt');
**     SELECT n, token, vector FROM embed_file('wiki.en.vec', 'fasttext');
**     SELECT count(*) FROM embed_file('vectors.txt', 'word2vec');
**
** Formats (README "Files: word2vec, GloVe, fastText, npy"):
**
**   word2vec   a header line "count dim", then one entry a line:
**              "token v1 ... vD" (blanks are spaces or tabs; CRLF and
**              trailing blanks are accepted)
**   fasttext   the same (fastText's .vec files)
**   glove      the entries without a header; D is the first line's
**
** Entries: a token is the text before the first blank, valid UTF-8, not
** empty and at most IO_MAX_TOKEN bytes (tokens can't contain blanks: the
** formats separate with them). Numbers are decimal, read by
** embed_parse_float (core/text.c): strtof's correctly rounded float32,
** independent of the locale; "nan", "inf" and values beyond float32 are
** errors. A blank line is allowed only at the end of the file.
**
** Errors name the file and the line: "embed_file: 'v.txt' line 5:
** expected 300 values, found 299". The header is checked before any row:
** 1 <= dim <= EMBED_MAX_DIM, and a count no more than the bytes after the
** header of a regular file can hold (the smallest entry: a 1-byte token
** and D times " 0", or D float32 in binary). Then the body must agree
** with it: no more and no fewer entries than the count, each of dim
** values.
**
** Design: a line is read whole into the reader's buffer (up to
** IO_MAX_LINE bytes) and parsed in place; the token points into the
** buffer until the next read, and the vector is encoded into own_blob.
*/
#include <string.h>

#include "io/io.h"

static int textfile_is_blank(int c) {
  return c == ' ' || c == '\t';
}

/* Read the next line: *line points into the buffer (valid until the next
** read), *len excludes the newline. *got is 0 at the end of the file. */
static int textfile_next_line(embed_file_cursor *c, const char **line,
                              int64_t *len, int *got) {
  embed_file_reader *r = &c->r;
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
      if (r->io_errno) return embed_file_read_error(c);
      *got = scanned > 0;
      *line = r->buf + r->pos;
      *len = scanned;
      r->pos = r->end;
      if (*got) c->line++;
      return SQLITE_OK;
    }
    if (scanned >= IO_MAX_LINE)
      return embed_file_error(c, "line", c->line + 1,
                              "line longer than %d bytes", IO_MAX_LINE);
    {
      int rc = embed_reader_fill(r, scanned + IO_CHUNK, IO_MAX_LINE + IO_CHUNK);
      if (rc) return rc;
    }
  }
  c->line++;
  *got = 1;
  return SQLITE_OK;
}

int embed_word2vec_parse_header(const char *p, int64_t len, int64_t *count,
                                int64_t *dim) {
  const char *end = p + len;
  int64_t v[2];
  int i;
  for (i = 0; i < 2; i++) {
    int digits = 0;
    v[i] = 0;
    while (p < end && (textfile_is_blank(*p) || *p == '\r')) p++;
    while (p < end && *p >= '0' && *p <= '9') {
      if (++digits > 18) return 0;
      v[i] = v[i] * 10 + (*p++ - '0');
    }
    if (!digits) return 0;
  }
  while (p < end && (textfile_is_blank(*p) || *p == '\r')) p++;
  if (p != end) return 0;
  *count = v[0];
  *dim = v[1];
  return 1;
}

int embed_word2vec_header(embed_file_cursor *c) {
  const char *line;
  int64_t len, count, dim, hdr_end, left, per_entry;
  int got = 0, rc = textfile_next_line(c, &line, &len, &got);
  if (rc) return rc;
  if (!got)
    return embed_file_error(c, "line", 1, "missing header (empty file)");
  if (!embed_word2vec_parse_header(line, len, &count, &dim)) {
    char text[IO_QUOTE_SIZE];
    while (len > 0 && line[len - 1] == '\r') len--;
    return embed_file_error(c, "line", 1,
                            "malformed header '%s' (expected \"count dim\")",
                            embed_file_quote(line, len, text));
  }
  if (dim < 1)
    return embed_file_error(c, "line", 1, "dimension %lld in the header",
                            (long long)dim);
  if (dim > EMBED_MAX_DIM)
    return embed_file_error(c, "line", 1,
                            "dimension %lld exceeds the limit of %d",
                            (long long)dim, EMBED_MAX_DIM);
  hdr_end = c->r.base + c->r.pos;
  left = c->r.size >= 0 ? c->r.size - hdr_end : -1;
  /* the smallest entry: a 1-byte token, then D floats as " 0" or 4 bytes */
  per_entry = c->binary ? 2 + EMBED_FLOAT_BYTES * dim : 2 + 2 * dim;
  if (left >= 0 && count > (left + 1) / per_entry)
    return embed_file_error(
        c, "line", 1,
        "the header's count %lld cannot fit in the %lld bytes after it (dim %lld): is the file truncated?",
        (long long)count, (long long)left, (long long)dim);
  c->count = count;
  c->dim = dim;
  return embed_file_alloc_vectors(c);
}

/* Report the number field p[0..n) that did not parse. */
static int textfile_number_error(embed_file_cursor *c, int code, int64_t k,
                                 const char *p, int64_t n) {
  char text[IO_QUOTE_SIZE];
  switch (code) {
    case EMBED_NUM_NAN:
    case EMBED_NUM_POS_INF:
    case EMBED_NUM_NEG_INF:
      return embed_file_error(c, "line", c->line, "element %lld is %s",
                              (long long)k, embed_nonfinite_name(code));
    case EMBED_NUM_RANGE:
      return embed_file_error(c, "line", c->line,
                              "element %lld (%s) is beyond float32",
                              (long long)k, embed_file_quote(p, n, text));
    default:
      return embed_file_error(c, "line", c->line,
                              "malformed number '%s' (element %lld)",
                              embed_file_quote(p, n, text), (long long)k);
  }
}

/* Parse one text entry "token v1 ... vD" from line[0..len) (trailing blanks
** already removed). The first GloVe entry sets dim. */
static int textfile_parse_entry(embed_file_cursor *c, const char *line,
                                int64_t len) {
  const char *p = line, *end = line + len, *tok_end = line;
  int64_t k = 0;
  while (tok_end < end && !textfile_is_blank(*tok_end)) tok_end++;
  if (tok_end == line)
    return embed_file_error(c, "line", c->line,
                            "empty token (the line starts with a blank)");
  if (tok_end - line > IO_MAX_TOKEN)
    return embed_file_error(c, "line", c->line, "token longer than %d bytes",
                            IO_MAX_TOKEN);
  if (embed_utf8_valid_prefix((const unsigned char *)line, tok_end - line) !=
      tok_end - line)
    return embed_file_error(c, "line", c->line, "token is not valid UTF-8");
  if (c->dim == 0) { /* GloVe: the first entry's dimension */
    int64_t fields = 0;
    for (p = tok_end; p < end;) {
      while (p < end && textfile_is_blank(*p)) p++;
      if (p == end) break;
      fields++;
      while (p < end && !textfile_is_blank(*p)) p++;
    }
    if (fields == 0)
      return embed_file_error(c, "line", c->line, "no values after the token");
    if (fields > EMBED_MAX_DIM)
      return embed_file_error(c, "line", c->line,
                              "dimension %lld exceeds the limit of %d",
                              (long long)fields, EMBED_MAX_DIM);
    c->dim = fields;
    if (embed_file_alloc_vectors(c)) return SQLITE_NOMEM;
  }
  for (p = tok_end;;) {
    const char *q;
    while (p < end && textfile_is_blank(*p)) p++;
    if (p == end) break;
    for (q = p; q < end && !textfile_is_blank(*q); q++) {
    }
    if (k < c->dim) {
      int code = embed_parse_float(p, q - p, &c->vec[k]);
      if (code) return textfile_number_error(c, code, k, p, q - p);
    }
    k++;
    p = q;
  }
  if (k != c->dim)
    return embed_file_error(
        c, "line", c->line, "expected %lld values, found %lld (%s)",
        (long long)c->dim, (long long)k,
        c->has_header ? "the header's dim" : "as on line 1");
  c->token = line;
  c->token_len = tok_end - line;
  embed_blob_encode(c->vec, c->dim, c->own_blob);
  c->blob = c->own_blob;
  return SQLITE_OK;
}

int embed_text_next(embed_file_cursor *c) {
  for (;;) {
    const char *line;
    int64_t len;
    int got = 0, added = 0, rc = textfile_next_line(c, &line, &len, &got);
    if (rc) return rc;
    if (!got) {
      if (c->count >= 0 && c->nread < c->count)
        return embed_file_error(
            c, "line", c->line + 1,
            "unexpected end of file: %lld of the header's %lld vectors read",
            (long long)c->nread, (long long)c->count);
      c->eof = 1;
      return SQLITE_OK;
    }
    while (len > 0 &&
           (textfile_is_blank(line[len - 1]) || line[len - 1] == '\r'))
      len--;
    if (len == 0) {
      if (!c->blank_line) c->blank_line = c->line;
      continue;
    }
    if (c->blank_line)
      return embed_file_error(c, "line", c->blank_line,
                              "blank line between entries");
    if (c->count >= 0 && c->nread >= c->count)
      return embed_file_error(c, "line", c->line,
                              "more vectors than the header's count (%lld)",
                              (long long)c->count);
    rc = textfile_parse_entry(c, line, len);
    if (rc) return rc;
    c->nread++;
    rc = embed_token_set_add(&c->seen, c->token, c->token_len, &added);
    if (rc) return rc;
    if (added) return SQLITE_OK;
  }
}
