/*
** fuzz_vector.c - libFuzzer harness for the vector codecs (ext/core/vector.c):
** embed_blob_dim/decode/encode, embed_json_parse_floats (flat and nested),
** embed_json_parse_ids and embed_json_format. No SQLite.
**
**     sh fuzz/run.sh 60                  (builds and runs every harness)
**
** Input: the first byte picks the codec, the rest is the BLOB or the text,
** copied into a buffer of exactly its length (no terminator), so ASan sees
** any read past the end. Beyond "no crash, no UB", properties checked:
**   - a decoded BLOB encodes back to the same bytes;
**   - a parsed array fits the capacity embed_json_capacity() promised, and
**     is finite;
**   - embed_json_format's output parses back to the same bits, within the
**     size embed_json_format_size() promised.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "fuzz_vector: property failed: %s (line %d)\n", #cond, \
              __LINE__);                                                     \
      abort();                                                               \
    }                                                                        \
  } while (0)

/* Format v, parse it back, compare bits. */
static void round_trip(const float *v, int64_t n) {
  int64_t size = embed_json_format_size(n), len, rows = 0, cols = 0, cap;
  char *text = (char *)malloc((size_t)size);
  float *back;
  embed_error err;
  CHECK(text);
  len = embed_json_format(v, n, text);
  CHECK(len >= 0 && len < size && text[len] == 0);
  cap = embed_json_capacity(text, len);
  CHECK(cap >= n);
  back = (float *)malloc((size_t)cap * sizeof(float));
  CHECK(back);
  CHECK(embed_json_parse_floats(text, len, 0, back, cap, &rows, &cols, &err) ==
        EMBED_OK);
  CHECK(rows == 1 && cols == n);
  CHECK(memcmp(back, v, (size_t)n * sizeof(float)) == 0);
  free(back);
  free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  embed_error err;
  int mode;
  char *buf;
  int64_t n;
  if (size < 1) return 0;
  mode = data[0] % 4;
  data++;
  size--;
  if (size > 1 << 20) return 0;
  n = (int64_t)size;
  buf = (char *)malloc(size ? size : 1);
  if (!buf) return 0;
  memcpy(buf, data, size);

  if (mode == 0) { /* BLOB */
    int64_t dim = embed_blob_dim(n, &err);
    if (dim > 0) {
      float *out = (float *)malloc((size_t)dim * sizeof(float));
      unsigned char *again = (unsigned char *)malloc((size_t)n);
      CHECK(dim * 4 == n && dim <= EMBED_MAX_DIM);
      CHECK(out && again);
      if (embed_blob_decode(buf, dim, out, &err) == EMBED_OK) {
        CHECK(embed_first_nonfinite(out, dim) < 0);
        embed_blob_encode(out, dim, again);
        CHECK(memcmp(again, buf, (size_t)n) == 0);
        round_trip(out, dim);
      } else {
        CHECK(err.code == EMBED_E_NONFINITE && err.a >= 0 && err.a < dim);
      }
      free(again);
      free(out);
    } else {
      CHECK(err.code != EMBED_OK);
    }
  } else if (mode == 1 || mode == 2) { /* JSON floats, flat or nested */
    int64_t cap = embed_json_capacity(buf, n), rows = 0, cols = 0;
    CHECK(cap >= 1);
    if (cap <= (1 << 20)) {
      float *out = (float *)malloc((size_t)cap * sizeof(float));
      CHECK(out);
      if (embed_json_parse_floats(buf, n, mode == 2, out, cap, &rows, &cols,
                                  &err) == EMBED_OK) {
        CHECK(rows >= 1 && cols >= 1 && rows * cols <= cap);
        CHECK(mode == 2 || rows == 1);
        CHECK(embed_first_nonfinite(out, rows * cols) < 0);
        if (rows * cols <= EMBED_MAX_DIM) round_trip(out, rows * cols);
      }
      free(out);
    }
  } else { /* JSON ids */
    int64_t cap = embed_json_capacity(buf, n), count = 0;
    CHECK(cap >= 1);
    if (cap <= (1 << 20)) {
      int64_t *out = (int64_t *)malloc((size_t)cap * sizeof(int64_t));
      CHECK(out);
      if (embed_json_parse_ids(buf, n, out, cap, &count, &err) == EMBED_OK)
        CHECK(count >= 1 && count <= cap);
      free(out);
    }
  }
  free(buf);
  return 0;
}
