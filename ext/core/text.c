/*
** text.c - two pure helpers for reading text: the valid UTF-8 prefix of a
** byte string, and a locale-independent decimal to float32 parser.
**
** Usage (from C; SQLite is not needed here):
**
**     int64_t ok = embed_utf8_valid_prefix(bytes, n);  // n: all valid
**     char shown[EMBED_QUOTE_SIZE(40)];
**     embed_utf8_quote(text, n, 40, 1, shown);   // for an error message
**     float f;
**     switch (embed_parse_float(text, len, &f)) {
**       case EMBED_NUM_OK:        ...f is the nearest float32...
**       case EMBED_NUM_NAN:       ...and the other embed_num_status codes
**     }
**
** Design:
**  - UTF-8 is checked strictly: NUL, overlong forms, surrogates and code
**    points above U+10FFFF end the valid prefix. The io layer uses it for
**    tokens and for telling text from binary.
**  - embed_utf8_quote is how every error message shows text that came from
**    outside (an argument, a file, a stored value): at most `max` bytes,
**    cut at a character boundary and marked "...", with NUL and every byte
**    that is not part of valid UTF-8 shown as '?' (and control bytes too,
**    on request: file text), so the message is valid UTF-8 whatever the
**    text was.
**  - embed_parse_float reads [+-]? (digits [. digits?] | . digits)
**    ([eE] [+-]? digits)? and nothing else: no leading or trailing
**    blanks, no hex, no "nan"/"inf" (they are recognized only to be
**    reported as such). The result is the correctly rounded float32, as
**    strtof gives, whatever the locale's decimal point.
**  - Most numbers take Clinger's fast path: a mantissa below 2^53 and a
**    power of ten up to 1e22 give a correctly rounded double in one
**    operation, and rounding that to float is correct unless the double
**    lies exactly halfway between two floats. Then, and for subnormals and
**    numbers beyond the fast path, strtof decides, on a copy with the
**    locale's decimal point (such a number must be under 1024 bytes, or it
**    is EMBED_NUM_MALFORMED).
*/
#include <errno.h>
#include <float.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

int64_t embed_utf8_valid_prefix(const unsigned char *s, int64_t n) {
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

int64_t embed_utf8_quote(const char *p, int64_t n, int64_t max, int controls,
                         char *out) {
  int64_t i = 0, len = 0, lim = n > max ? max : n;
  while (i < lim) {
    unsigned char ch = (unsigned char)p[i];
    int64_t ok = ch >= 0x80
                     ? embed_utf8_valid_prefix((const unsigned char *)p + i,
                                               n - i < 4 ? n - i : 4)
                     : 0;
    if (ch >= 0x80 && ok > 0) { /* one whole character */
      int64_t k = 1;
      while (k < ok && ((unsigned char)p[i + k] & 0xC0) == 0x80) k++;
      memcpy(out + len, p + i, (size_t)k);
      len += k;
      i += k;
    } else {
      out[len++] =
          ch == 0 || ch >= 0x80 || (controls && (ch < 0x20 || ch == 0x7F))
              ? '?'
              : (char)ch;
      i++;
    }
  }
  if (n > i) {
    memcpy(out + len, "...", 3);
    len += 3;
  }
  out[len] = 0;
  return len;
}

/* Is p[0..n) the lower-case word, ignoring ASCII case? */
static int text_ascii_ieq(const char *p, int64_t n, const char *word) {
  int64_t i;
  for (i = 0; i < n; i++) {
    int c = p[i];
    if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
    if (!word[i] || c != word[i]) return 0;
  }
  return word[n] == 0;
}

/* strtof on a copy of p[0..n), with the locale's decimal point. */
static int text_parse_float_slow(const char *p, int64_t n, float *out) {
  char buf[1024];
  char *end;
  const char *dp = localeconv()->decimal_point;
  int64_t i;
  float f;
  if (n >= (int64_t)sizeof(buf)) return EMBED_NUM_MALFORMED;
  memcpy(buf, p, (size_t)n);
  buf[n] = 0;
  if (dp && dp[0] && dp[0] != '.' && !dp[1]) {
    for (i = 0; i < n; i++)
      if (buf[i] == '.') buf[i] = dp[0];
  }
  errno = 0;
  f = strtof(buf, &end);
  if (end != buf + n) return EMBED_NUM_MALFORMED;
  if (f - f != 0) return EMBED_NUM_RANGE; /* overflow: the text was finite */
  *out = f;
  return EMBED_NUM_OK;
}

int embed_parse_float(const char *p, int64_t n, float *out) {
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
    if (text_ascii_ieq(w, wn, "nan")) return EMBED_NUM_NAN;
    if (text_ascii_ieq(w, wn, "inf") || text_ascii_ieq(w, wn, "infinity"))
      return (p < end && *p == '-') ? EMBED_NUM_NEG_INF : EMBED_NUM_POS_INF;
    return EMBED_NUM_MALFORMED;
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
    if (!edigits) return EMBED_NUM_MALFORMED;
    e10 += eneg ? -ev : ev;
  }
  if (s != end) return EMBED_NUM_MALFORMED;
  if (m == 0) {
    *out = neg ? -0.0f : 0.0f;
    return EMBED_NUM_OK;
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
      return EMBED_NUM_OK;
    }
  }
#else
  (void)p10;
  (void)exact;
#endif
  return text_parse_float_slow(p, n, out);
}
