/*
** binary.c - word2vec's binary format in embed_file (GoogleNews-vectors
** and the output of word2vec -binary 1 or gensim's
** save_word2vec_format(binary=True)).
**
** Usage:
**
**     SELECT n, token, vector FROM embed_file('GoogleNews.bin',
**                                             'word2vec-binary');
**     SELECT count(*) FROM embed_file('vectors.bin');  -- detected
**
** Format (README "Files: word2vec, GloVe, fastText, npy"):
**
**   word2vec-binary  the text header line "count dim" (text_formats.c
**                    reads it), then per entry the token, one space, D
**                    little-endian float32, and optionally a newline (the
**                    C tool writes it, gensim does not)
**
** Entries: newlines before a token are skipped; the token is the bytes up
** to the next space, not empty, valid UTF-8, at most IO_MAX_TOKEN bytes.
** NaN and Inf in the data are errors. The file must hold exactly the
** header's count of entries: a missing one or data after the last is an
** error.
**
** Errors name the file and the byte offset: "embed_file: 'v.bin' byte
** 1234: element 7 of 'cat' is NaN". A wrong dim in the header shows as a
** token that is not valid UTF-8 or has no space within IO_MAX_TOKEN
** bytes, and the messages say so.
**
** Design: each entry is made available whole in the reader's buffer
** (token + space + D * EMBED_FLOAT_BYTES, so the buffer is bounded by
** BINARY_MAX_CAP); the token and the vector are returned in place, without
** a copy. The vector's bytes are the stored BLOB (little-endian float32),
** so they are only checked, never decoded.
*/
#include <string.h>

#include "io/io.h"

/* The largest buffer a binary entry needs: token, space, newline, vector,
** and a chunk of read-ahead. */
#define BINARY_MAX_CAP                                                      \
  ((int64_t)IO_MAX_TOKEN + 2 + EMBED_FLOAT_BYTES * (int64_t)EMBED_MAX_DIM + \
   IO_CHUNK)

int64_t embed_first_nonfinite_le32(const unsigned char *p, int64_t n,
                                   int *code) {
  int64_t k;
  for (k = 0; k < n; k++) {
    uint32_t u = io_get_le32(p + EMBED_FLOAT_BYTES * k);
    if ((u & 0x7F800000u) == 0x7F800000u) {
      *code = (u & 0x007FFFFFu)
                  ? EMBED_NUM_NAN
                  : ((u >> 31) ? EMBED_NUM_NEG_INF : EMBED_NUM_POS_INF);
      return k;
    }
  }
  return -1;
}

int embed_binary_next(embed_file_cursor *c) {
  embed_file_reader *r = &c->r;
  int64_t need = EMBED_FLOAT_BYTES * c->dim;
  for (;;) {
    const char *start, *sp;
    char text[IO_QUOTE_SIZE];
    const unsigned char *vec;
    int64_t at, span, tok_len, bad;
    int code = 0, added = 0, rc;
    for (;;) { /* the newlines between entries */
      rc = embed_reader_fill(r, 1, BINARY_MAX_CAP);
      if (rc) return rc;
      if (r->io_errno) return embed_file_read_error(c);
      if (r->pos == r->end || r->buf[r->pos] != '\n') break;
      r->pos++;
    }
    at = r->base + r->pos;
    if (c->nread == c->count) {
      if (r->pos < r->end)
        return embed_file_error(c, "byte", at,
                                "data after the header's %lld vectors",
                                (long long)c->count);
      c->eof = 1;
      return SQLITE_OK;
    }
    if (r->pos == r->end)
      return embed_file_error(
          c, "byte", at,
          "unexpected end of file: %lld of the header's %lld vectors read",
          (long long)c->nread, (long long)c->count);
    rc = embed_reader_fill(r, IO_MAX_TOKEN + 1 + need, BINARY_MAX_CAP);
    if (rc) return rc;
    if (r->io_errno) return embed_file_read_error(c);
    start = r->buf + r->pos;
    span = r->end - r->pos;
    if (span > IO_MAX_TOKEN + 1) span = IO_MAX_TOKEN + 1;
    sp = memchr(start, ' ', (size_t)span);
    if (!sp) {
      if (r->end - r->pos <= IO_MAX_TOKEN)
        return embed_file_error(
            c, "byte", r->base + r->end,
            "unexpected end of file in the token of vector %lld of %lld",
            (long long)c->nread, (long long)c->count);
      return embed_file_error(
          c, "byte", at,
          "no space within %d bytes: not a token (is the header's dim right?)",
          IO_MAX_TOKEN);
    }
    tok_len = sp - start;
    if (tok_len == 0) return embed_file_error(c, "byte", at, "empty token");
    if (embed_utf8_valid_prefix((const unsigned char *)start, tok_len) !=
        tok_len)
      return embed_file_error(
          c, "byte", at,
          "token is not valid UTF-8 (is the header's dim right?)");
    vec = (const unsigned char *)sp + 1;
    if (r->buf + r->end - (const char *)vec < need)
      return embed_file_error(
          c, "byte", r->base + r->end,
          "unexpected end of file in the vector of '%s' (%lld of %lld bytes)",
          embed_file_quote(start, tok_len, text),
          (long long)(r->buf + r->end - (const char *)vec), (long long)need);
    bad = embed_first_nonfinite_le32(vec, c->dim, &code);
    if (bad >= 0)
      return embed_file_error(
          c, "byte",
          r->base + ((const char *)vec - r->buf) + EMBED_FLOAT_BYTES * bad,
          "element %lld of '%s' is %s", (long long)bad,
          embed_file_quote(start, tok_len, text), embed_nonfinite_name(code));
    c->token = start;
    c->token_len = tok_len;
    c->blob = (unsigned char *)vec;
    r->pos = ((const char *)vec - r->buf) + need;
    c->nread++;
    rc = embed_token_set_add(&c->seen, c->token, c->token_len, &added);
    if (rc) return rc;
    if (added) return SQLITE_OK;
  }
}
