/*
** vector.c - the two spellings of a vector: float32 BLOB and JSON text.
**
** Usage (from C; SQLite is not needed here):
**
**     embed_error err;
**     int64_t dim = embed_blob_dim(nbytes, &err);          // -1 on error
**     embed_blob_decode(blob, dim, floats, &err);          // checks finiteness
**     int64_t cap = embed_json_capacity(text, n);    // room for cap floats
**     embed_json_parse_floats(text, n, 0, out, cap, &rows, &dim, &err);
**     embed_json_format(floats, dim, buf);  // embed_json_format_size(dim)
**
** Design:
**  - A BLOB is D little-endian IEEE-754 float32 values with no header (numpy's
**    and torch's .tobytes(), sqlite-vec's layout). Decoding copies through
**    memcpy, so the BLOB may be unaligned; big-endian hosts byte-swap.
**  - JSON is parsed strictly (RFC 8259 numbers, JSON white space) in one pass
**    with no allocation: the caller sizes the output with
**    embed_json_capacity(), an upper bound (commas + 1). Each number is
**    converted with strtof, which rounds correctly from decimal to float32.
**  - Formatting prints each float with the fewest significant digits (6 to 9)
**    that strtof reads back to the same bits, so JSON round trips exactly.
**  - Every rejection fills an embed_error; sqlvalue.c turns it into text.
*/
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static void set_error(embed_error *err, embed_code code, int64_t a, int64_t b,
                      int64_t c, const char *what) {
  if (err) {
    err->code = code;
    err->a = a;
    err->b = b;
    err->c = c;
    err->what = what;
  }
}

/* The text is formatted, then quoted (core/text.c), so that a value it
** echoes, or the cut at the buffer's end, never leaves invalid UTF-8. */
int embed_error_set(embed_error *err, const char *format, ...) {
  char raw[EMBED_ERROR_TEXT_MAX];
  int n;
  va_list ap;
  err->code = EMBED_E_MESSAGE;
  err->a = err->b = err->c = 0;
  err->what = 0;
  va_start(ap, format);
  n = vsnprintf(raw, sizeof(raw), format, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n >= (int)sizeof(raw)) n = (int)sizeof(raw) - 1;
  embed_utf8_quote(raw, n, EMBED_ERROR_TEXT_MAX - 8, 0, err->text);
  return -1;
}

static int check_finite(float x, int64_t index, embed_error *err) {
  if (isfinite(x)) return EMBED_OK;
  set_error(err, EMBED_E_NONFINITE, index, isnan(x) ? 0 : (x > 0 ? 1 : -1), 0,
            0);
  return EMBED_E_NONFINITE;
}

int64_t embed_blob_dim(int64_t nbytes, embed_error *err) {
  if (nbytes <= 0) {
    set_error(err, EMBED_E_EMPTY, 0, 0, 0, 0);
    return -1;
  }
  if (nbytes % 4 != 0) {
    set_error(err, EMBED_E_BLOB_LENGTH, nbytes, 0, 0, 0);
    return -1;
  }
  if (nbytes / 4 > EMBED_MAX_DIM) {
    set_error(err, EMBED_E_TOO_LONG, nbytes / 4, 0, 0, 0);
    return -1;
  }
  return nbytes / 4;
}

int embed_blob_decode(const void *blob, int64_t n, float *out,
                      embed_error *err) {
  int rc = embed_blob_check(blob, n, err);
  if (rc) return rc;
  if ((const void *)out != blob)
    memcpy(out, blob, (size_t)n * EMBED_FLOAT_BYTES);
  if (!EMBED_HOST_LE) {
    int64_t i;
    for (i = 0; i < n; i++) {
      uint32_t u;
      memcpy(&u, &out[i], 4);
      u = embed_le32(u);
      memcpy(&out[i], &u, 4);
    }
  }
  return EMBED_OK;
}

#if defined(__SSE2__)
/* All ones in each of the four floats at p whose exponent is all ones. */
static inline __m128i finite_bad4(const unsigned char *p, __m128i exp) {
  return _mm_cmpeq_epi32(
      _mm_and_si128(_mm_loadu_si128((const __m128i *)(const void *)p), exp),
      exp);
}
#endif

/* Are all n floats at p (host order: a host's own floats, or a BLOB's on a
** little-endian host) finite? NaN and Inf are the floats whose exponent is
** all ones. On x86-64 (SSE2 is its baseline) sixteen floats a round, four
** per compare; elsewhere a branch-free pass, two floats per 64-bit word,
** where an all-ones exponent plus one carries into the float's sign bit
** and never into the other float (the masks are alike for both halves, so
** either word order works). Every row a step reads or writes passes here:
** the SSE2 loop took 58 against 101 ns per 1 KB row (docs/DESIGN.md). */
static int vector_all_finite(const unsigned char *p, int64_t n) {
  uint64_t high = 0;
  int64_t i = 0;
#if defined(__SSE2__)
  const __m128i exp = _mm_set1_epi32(0x7f800000);
  __m128i bad = _mm_setzero_si128();
  for (; i + 16 <= n; i += 16) {
    const unsigned char *q = p + EMBED_FLOAT_BYTES * i;
    bad = _mm_or_si128(
        bad,
        _mm_or_si128(
            _mm_or_si128(finite_bad4(q, exp), finite_bad4(q + 16, exp)),
            _mm_or_si128(finite_bad4(q + 32, exp), finite_bad4(q + 48, exp))));
  }
  if (_mm_movemask_epi8(bad)) return 0;
#else
  const uint64_t EXP = 0x7f8000007f800000ull, ONE = 0x0080000000800000ull;
  for (; i + 8 <= n; i += 8) {
    uint64_t w[4];
    memcpy(w, p + EMBED_FLOAT_BYTES * i, sizeof(w));
    high |= ((w[0] & EXP) + ONE) | ((w[1] & EXP) + ONE) | ((w[2] & EXP) + ONE) |
            ((w[3] & EXP) + ONE);
  }
#endif
  for (; i < n; i++) {
    uint32_t u;
    memcpy(&u, p + EMBED_FLOAT_BYTES * i, 4);
    high |= (u & 0x7f800000u) + 0x00800000u;
  }
  return !(high & 0x8000000080000000ull);
}

int64_t embed_first_nonfinite(const float *v, int64_t n) {
  int64_t i;
  if (vector_all_finite((const unsigned char *)v, n)) return -1;
  for (i = 0; i < n; i++) /* only when one is not: find it */
    if (!isfinite(v[i])) return i;
  return -1;
}

int embed_blob_check(const void *blob, int64_t n, embed_error *err) {
  const unsigned char *p = (const unsigned char *)blob;
  int64_t i;
  if (EMBED_HOST_LE && vector_all_finite(p, n)) return EMBED_OK;
  for (i = 0; i < n; i++) {
    float f;
    uint32_t u;
    memcpy(&u, p + EMBED_FLOAT_BYTES * i, 4);
    u = embed_le32(u);
    memcpy(&f, &u, 4);
    if (!isfinite(f)) return check_finite(f, i, err);
  }
  return EMBED_OK;
}

void embed_blob_encode(const float *v, int64_t n, void *out) {
  unsigned char *p = (unsigned char *)out;
  int64_t i;
  if (EMBED_HOST_LE) {
    memcpy(out, v, (size_t)n * EMBED_FLOAT_BYTES);
    return;
  }
  for (i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, &v[i], 4);
    u = embed_le32(u);
    memcpy(p + EMBED_FLOAT_BYTES * i, &u, 4);
  }
}

/* ---------------------------------------------------------------- JSON */

typedef struct json_cursor {
  const char *s;
  int64_t n, i;
} json_cursor;

static void skip_space(json_cursor *c) {
  while (c->i < c->n) {
    char ch = c->s[c->i];
    if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r') break;
    c->i++;
  }
}

static int expect_char(json_cursor *c, char ch, const char *what,
                       embed_error *err) {
  skip_space(c);
  if (c->i < c->n && c->s[c->i] == ch) {
    c->i++;
    return EMBED_OK;
  }
  set_error(err, EMBED_E_JSON, c->i, 0, 0, what);
  return EMBED_E_JSON;
}

static int is_digit(char ch) {
  return ch >= '0' && ch <= '9';
}

/* Scan one RFC 8259 number at c->i; on success *start and *len delimit it and
** *integral tells whether it has no fraction or exponent. */
static int scan_number(json_cursor *c, int64_t *start, int64_t *len,
                       int *integral, embed_error *err) {
  int64_t i = c->i;
  const char *s = c->s;
  *integral = 1;
  *start = i;
  if (i < c->n && s[i] == '-') i++;
  if (i >= c->n || !is_digit(s[i])) goto bad;
  if (s[i] == '0') {
    i++;
  } else {
    while (i < c->n && is_digit(s[i])) i++;
  }
  if (i < c->n && s[i] == '.') {
    *integral = 0;
    i++;
    if (i >= c->n || !is_digit(s[i])) goto bad;
    while (i < c->n && is_digit(s[i])) i++;
  }
  if (i < c->n && (s[i] == 'e' || s[i] == 'E')) {
    *integral = 0;
    i++;
    if (i < c->n && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= c->n || !is_digit(s[i])) goto bad;
    while (i < c->n && is_digit(s[i])) i++;
  }
  *len = i - *start;
  c->i = i;
  return EMBED_OK;
bad:
  set_error(err, EMBED_E_JSON, i, 0, 0, "a number");
  return EMBED_E_JSON;
}

/* Convert the number token [start, start+len) with strtof/strtoll. */
static int convert_number(const char *s, int64_t start, int64_t len,
                          int want_integer, float *f, int64_t *ll) {
  char buf[64];
  char *heap = 0, *text = buf, *end = 0;
  int ok = 1;
  if (len >= (int64_t)sizeof(buf)) {
    heap = (char *)malloc((size_t)len + 1);
    if (!heap) return -1;
    text = heap;
  }
  memcpy(text, s + start, (size_t)len);
  text[len] = 0;
  if (want_integer) {
    long long v;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (end != text + len || errno == ERANGE) ok = 0; /* out of int64 */
    *ll = v;
  } else {
    *f = strtof(text, &end);
    if (end != text + len) ok = 0;
  }
  free(heap);
  return ok ? 0 : 1;
}

int64_t embed_json_capacity(const char *text, int64_t n) {
  int64_t i, commas = 0;
  for (i = 0; i < n; i++) commas += text[i] == ',';
  return commas + 1;
}

/* Parse "[n, n, ...]" at the cursor into out[*count...]. */
static int parse_number_array(json_cursor *c, float *out, int64_t cap,
                              int64_t *count, int64_t base_index,
                              embed_error *err) {
  int rc = expect_char(c, '[', "'['", err);
  int64_t k = 0;
  if (rc) return rc;
  skip_space(c);
  if (c->i < c->n && c->s[c->i] == ']') {
    set_error(err, EMBED_E_EMPTY, 0, 0, 0, 0);
    return EMBED_E_EMPTY;
  }
  for (;;) {
    int64_t start, len;
    int integral;
    float f = 0;
    skip_space(c);
    rc = scan_number(c, &start, &len, &integral, err);
    if (rc) return rc;
    if (k >= cap || k >= EMBED_MAX_DIM) {
      set_error(err, EMBED_E_TOO_LONG, k + 1, 0, 0, 0);
      return EMBED_E_TOO_LONG;
    }
    if (convert_number(c->s, start, len, 0, &f, 0) != 0) {
      set_error(err, EMBED_E_JSON, start, 0, 0, "a number");
      return EMBED_E_JSON;
    }
    rc = check_finite(f, base_index + k, err);
    if (rc) return rc;
    out[k++] = f;
    skip_space(c);
    if (c->i < c->n && c->s[c->i] == ',') {
      c->i++;
      continue;
    }
    rc = expect_char(c, ']', "',' or ']'", err);
    if (rc) return rc;
    break;
  }
  *count = k;
  return EMBED_OK;
}

static int expect_end(json_cursor *c, embed_error *err) {
  skip_space(c);
  if (c->i != c->n) {
    set_error(err, EMBED_E_JSON, c->i, 0, 0, "the end of the text");
    return EMBED_E_JSON;
  }
  return EMBED_OK;
}

int embed_json_parse_floats(const char *text, int64_t n, int nested, float *out,
                            int64_t cap, int64_t *rows, int64_t *cols,
                            embed_error *err) {
  json_cursor c = {text, n, 0};
  int rc;
  int64_t width = 0, r = 0;
  if (!nested) {
    rc = parse_number_array(&c, out, cap, &width, 0, err);
    if (rc) return rc;
    rc = expect_end(&c, err);
    if (rc) return rc;
    *rows = 1;
    *cols = width;
    return EMBED_OK;
  }
  rc = expect_char(&c, '[', "'['", err);
  if (rc) return rc;
  skip_space(&c);
  if (c.i < c.n && c.s[c.i] == ']') {
    set_error(err, EMBED_E_EMPTY, 0, 0, 0, 0);
    return EMBED_E_EMPTY;
  }
  for (;;) {
    int64_t len = 0, used = r * width;
    rc = parse_number_array(&c, out + used, cap - used, &len, used, err);
    if (rc) return rc;
    if (r == 0) {
      width = len;
    } else if (len != width) {
      set_error(err, EMBED_E_RAGGED, r, len, width, 0);
      return EMBED_E_RAGGED;
    }
    r++;
    skip_space(&c);
    if (c.i < c.n && c.s[c.i] == ',') {
      c.i++;
      continue;
    }
    rc = expect_char(&c, ']', "',' or ']'", err);
    if (rc) return rc;
    break;
  }
  rc = expect_end(&c, err);
  if (rc) return rc;
  *rows = r;
  *cols = width;
  return EMBED_OK;
}

int embed_json_parse_ids(const char *text, int64_t n, int64_t *out, int64_t cap,
                         int64_t *count, embed_error *err) {
  json_cursor c = {text, n, 0};
  int64_t k = 0;
  int rc = expect_char(&c, '[', "'['", err);
  if (rc) return rc;
  skip_space(&c);
  if (c.i < c.n && c.s[c.i] == ']') {
    set_error(err, EMBED_E_EMPTY, 0, 0, 0, 0);
    return EMBED_E_EMPTY;
  }
  for (;;) {
    int64_t start, len, v = 0;
    int integral;
    skip_space(&c);
    rc = scan_number(&c, &start, &len, &integral, err);
    if (rc) return rc;
    if (!integral || convert_number(text, start, len, 1, 0, &v) != 0) {
      set_error(err, EMBED_E_NOT_INTEGER, k, 0, 0, 0);
      return EMBED_E_NOT_INTEGER;
    }
    if (k >= cap || k >= EMBED_MAX_BATCH) {
      set_error(err, EMBED_E_TOO_MANY, k + 1, EMBED_MAX_BATCH, 0, 0);
      return EMBED_E_TOO_MANY;
    }
    out[k++] = v;
    skip_space(&c);
    if (c.i < c.n && c.s[c.i] == ',') {
      c.i++;
      continue;
    }
    rc = expect_char(&c, ']', "',' or ']'", err);
    if (rc) return rc;
    break;
  }
  rc = expect_end(&c, err);
  if (rc) return rc;
  *count = k;
  return EMBED_OK;
}

/* ---------------------------------------------------------- formatting */

#define FLOAT_TEXT_MAX 24 /* "-1.23456789e-38" plus slack */

int64_t embed_json_format_size(int64_t n) {
  return 2 + n * (FLOAT_TEXT_MAX + 1) + 1;
}

/* Shortest %.Ng (N = 6..9) that reads back to the same float. */
static int format_float(float x, char *out) {
  int digits, len = 0;
  if (x == 0.0f) {
    return snprintf(out, FLOAT_TEXT_MAX, signbit(x) ? "-0" : "0");
  }
  for (digits = 6; digits <= 9; digits++) {
    len = snprintf(out, FLOAT_TEXT_MAX, "%.*g", digits, (double)x);
    if (strtof(out, 0) == x) break;
  }
  return len;
}

int64_t embed_json_format(const float *v, int64_t n, char *out) {
  int64_t i, len = 0;
  out[len++] = '[';
  for (i = 0; i < n; i++) {
    if (i) out[len++] = ',';
    len += format_float(v[i], out + len);
  }
  out[len++] = ']';
  out[len] = 0;
  return len;
}

static int vector_compare_ids(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

int64_t embed_ids_sort_unique(int64_t *ids, int64_t n) {
  int64_t i, w = 1;
  if (n < 2) return n;
  for (i = 1; i < n && ids[i - 1] < ids[i]; i++) {
  }
  if (i == n) return n; /* already ascending (a bulk insert's log) */
  qsort(ids, (size_t)n, sizeof(int64_t), vector_compare_ids);
  for (i = 1; i < n; i++)
    if (ids[i] != ids[w - 1]) ids[w++] = ids[i];
  return w;
}

int64_t embed_ids_lower_bound(const int64_t *ids, int64_t n, int64_t id) {
  int64_t lo = 0, hi = n;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if (ids[mid] < id)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}
