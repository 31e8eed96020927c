/*
** unit.c - C unit tests of the parts of embed that need no SQLite: the
** vector codecs (vector.c), the math kernels (kernels.c), the initializer
** (initializer.c), the option parser (options.c), the quoting of text
** in messages (text.c), approximate search's codes and cells (codes.c,
** cells.c), and the optimizer step taken in two parts (optimizer.c).
**
**     make test-unit
**
** A tiny harness: CHECK(cond) records a failure with its line; the summary
** line "unit: N passed, M failed" ends the run, and the exit code is 1 on
** any failure.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static int passed, failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (cond) {                                                                \
      passed++;                                                                \
    } else {                                                                   \
      failed++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)

static uint64_t rng_state = 12345;
static double rand_unit(void) { /* in [-1, 1) */
  rng_state = embed_mix64(rng_state);
  return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

static int close_rel(double got, double want, double tol) {
  double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;
  return fabs(got - want) <= tol * scale;
}

static void test_blob_codec(void) {
  embed_error err;
  float in[5] = {1.0f, -2.5f, 0.0f, 3e38f, 1e-45f}, out[5];
  unsigned char blob[21];
  CHECK(embed_blob_dim(20, &err) == 5);
  CHECK(embed_blob_dim(0, &err) == -1 && err.code == EMBED_E_EMPTY);
  CHECK(embed_blob_dim(7, &err) == -1 && err.code == EMBED_E_BLOB_LENGTH &&
        err.a == 7);
  CHECK(embed_blob_dim(4LL * (EMBED_MAX_DIM + 1), &err) == -1 &&
        err.code == EMBED_E_TOO_LONG);
  CHECK(embed_blob_dim(4LL * EMBED_MAX_DIM, &err) == EMBED_MAX_DIM);
  /* little-endian layout, and decoding from an unaligned address */
  embed_blob_encode(in, 5, blob + 1);
  CHECK(blob[1] == 0x00 && blob[2] == 0x00 && blob[3] == 0x80 &&
        blob[4] == 0x3f); /* 1.0f */
  CHECK(embed_blob_decode(blob + 1, 5, out, &err) == EMBED_OK);
  CHECK(memcmp(in, out, sizeof(in)) == 0);
  {
    float bad[3] = {1.0f, NAN, 2.0f};
    embed_blob_encode(bad, 3, blob);
    CHECK(embed_blob_decode(blob, 3, out, &err) == EMBED_E_NONFINITE &&
          err.a == 1 && err.b == 0);
    bad[1] = -INFINITY;
    embed_blob_encode(bad, 3, blob);
    CHECK(embed_blob_decode(blob, 3, out, &err) == EMBED_E_NONFINITE &&
          err.b == -1);
  }
}

/* embed_blob_check and embed_first_nonfinite find NaN and both infinities
** at every position, across the fast pass's 16-float blocks (8 without SSE2)
** and its tail. */
static void test_blob_check(void) {
  float v[40];
  unsigned char buf[4 * 40 + 1];
  embed_error err;
  int64_t n, at, k;
  const float bad[3] = {NAN, INFINITY, -INFINITY};
  for (n = 1; n <= 40; n++) {
    for (k = 0; k < n; k++) v[k] = (float)k - 3.5f;
    v[0] = 3.4028235e38f; /* the largest finite float passes */
    embed_blob_encode(v, n, buf + 1);
    CHECK(embed_blob_check(buf + 1, n, &err) == EMBED_OK);
    CHECK(embed_first_nonfinite(v, n) == -1);
    for (at = 0; at < n; at++) {
      for (k = 0; k < 3; k++) {
        float saved = v[at];
        v[at] = bad[k];
        embed_blob_encode(v, n, buf + 1); /* unaligned on purpose */
        CHECK(embed_blob_check(buf + 1, n, &err) == EMBED_E_NONFINITE &&
              err.a == at);
        CHECK(embed_first_nonfinite(v, n) == at);
        v[at] = saved;
      }
    }
  }
}

static int parse(const char *s, float *out, int64_t cap, int64_t *dim,
                 embed_error *err) {
  int64_t rows;
  return embed_json_parse_floats(s, (int64_t)strlen(s), 0, out, cap, &rows, dim,
                                 err);
}

static void test_json_parse(void) {
  float v[8];
  int64_t dim = 0, rows = 0, cols = 0, ids[4], n = 0;
  embed_error err;
  CHECK(parse("[1, -2.5, 3e-2, 0]", v, 8, &dim, &err) == EMBED_OK && dim == 4 &&
        v[0] == 1.0f && v[1] == -2.5f && v[2] == 3e-2f && v[3] == 0.0f);
  CHECK(parse(" \t\n[ 1 ]\r\n", v, 8, &dim, &err) == EMBED_OK && dim == 1);
  CHECK(parse("[]", v, 8, &dim, &err) == EMBED_E_EMPTY);
  CHECK(parse("", v, 8, &dim, &err) == EMBED_E_JSON && err.a == 0);
  CHECK(parse("[1,]", v, 8, &dim, &err) == EMBED_E_JSON && err.a == 3);
  CHECK(parse("[01]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[1.]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[.5]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[1e]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[-]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[1 2]", v, 8, &dim, &err) == EMBED_E_JSON && err.a == 3);
  CHECK(parse("[1] [2]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[true]", v, 8, &dim, &err) == EMBED_E_JSON);
  CHECK(parse("[1e39]", v, 8, &dim, &err) == EMBED_E_NONFINITE);
  CHECK(parse("[-1e39]", v, 8, &dim, &err) == EMBED_E_NONFINITE && err.b == -1);
  CHECK(parse("[1, 2, 3]", v, 2, &dim, &err) == EMBED_E_TOO_LONG);
  /* a long digit string still converts correctly (heap path) */
  CHECK(parse("[0.1000000000000000000000000000000000000000000000000000000000"
              "000000000000001]",
              v, 8, &dim, &err) == EMBED_OK &&
        v[0] == 0.1f);
  CHECK(embed_json_capacity("[1,2,3]", 7) == 3);
  CHECK(embed_json_parse_floats("[[1,2],[3,4],[5,6]]", 19, 1, v, 8, &rows,
                                &cols, &err) == EMBED_OK &&
        rows == 3 && cols == 2 && v[5] == 6.0f);
  CHECK(embed_json_parse_floats("[[1,2],[3]]", 11, 1, v, 8, &rows, &cols,
                                &err) == EMBED_E_RAGGED &&
        err.a == 1 && err.b == 1 && err.c == 2);
  CHECK(embed_json_parse_floats("[1,2]", 5, 1, v, 8, &rows, &cols, &err) ==
        EMBED_E_JSON);
  CHECK(embed_json_parse_ids("[3, -1, 9223372036854775807]", 28, ids, 4, &n,
                             &err) == EMBED_OK &&
        n == 3 && ids[0] == 3 && ids[1] == -1 && ids[2] == INT64_MAX);
  CHECK(embed_json_parse_ids("[9223372036854775808]", 21, ids, 4, &n, &err) ==
        EMBED_E_NOT_INTEGER);
  CHECK(embed_json_parse_ids("[1.5]", 5, ids, 4, &n, &err) ==
        EMBED_E_NOT_INTEGER);
  CHECK(embed_json_parse_ids("[1e3]", 5, ids, 4, &n, &err) ==
        EMBED_E_NOT_INTEGER);
}

static void test_json_format(void) {
  char buf[256];
  float v[4] = {0.1f, -2.0f, 1e-45f, 3.4028235e38f};
  float back[4];
  int64_t dim, i, k;
  embed_error err;
  embed_json_format(v, 4, buf);
  CHECK(strcmp(buf, "[0.1,-2,1.4013e-45,3.4028235e+38]") == 0);
  /* random floats of every magnitude read back bit-exact */
  for (k = 0; k < 2000; k++) {
    float r[4];
    char *text = (char *)malloc((size_t)embed_json_format_size(4));
    for (i = 0; i < 4; i++) {
      uint32_t bits = (uint32_t)(embed_mix64((uint64_t)(k * 4 + i)) >> 32);
      memcpy(&r[i], &bits, 4);
      if (!isfinite(r[i])) r[i] = 1.0f;
    }
    embed_json_format(r, 4, text);
    CHECK(parse(text, back, 4, &dim, &err) == EMBED_OK && dim == 4 &&
          memcmp(r, back, sizeof(r)) == 0);
    free(text);
  }
}

static void test_kernels(void) {
  enum { N = 385 };
  float a[N], b[N], out[N];
  double dot = 0, na = 0, nb = 0, l2 = 0;
  int64_t i;
  for (i = 0; i < N; i++) {
    a[i] = (float)rand_unit();
    b[i] = (float)rand_unit();
    dot += (double)a[i] * b[i];
    na += (double)a[i] * a[i];
    nb += (double)b[i] * b[i];
    l2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  }
  CHECK(close_rel(embed_dot(a, b, N), dot, 1e-12));
  CHECK(close_rel(embed_norm2(a, N), sqrt(na), 1e-12));
  CHECK(
      close_rel(embed_cosine_similarity(a, b, N), dot / sqrt(na * nb), 1e-12));
  CHECK(close_rel(embed_l2_distance(a, b, N), sqrt(l2), 1e-12));
  CHECK(embed_cosine_similarity(a, a, N) <= 1.0);
  {
    float z[3] = {0, 0, 0}, o[3] = {1, 2, 3};
    CHECK(embed_cosine_similarity(z, o, 3) == 0.0);
    embed_normalize(z, 3, out);
    CHECK(out[0] == 0 && out[1] == 0 && out[2] == 0);
  }
  {
    double l1 = 0;
    for (i = 0; i < N; i++) l1 += fabs((double)a[i]);
    CHECK(close_rel(embed_norm_p(a, N, 1.0), l1, 1e-12));
  }
  {
    float v[3] = {3, -4, 0};
    CHECK(embed_norm_p(v, 3, 1.0) == 7.0);
    CHECK(embed_norm_p(v, 3, INFINITY) == 4.0);
    CHECK(
        close_rel(embed_norm_p(v, 3, 3.0), pow(27.0 + 64.0, 1.0 / 3.0), 1e-12));
    CHECK(embed_renorm(v, 3, 1.0, 2.0) == 1);
    CHECK(fabs(v[0] - 0.6f) < 1e-6 && fabs(v[1] + 0.8f) < 1e-6);
    CHECK(fabs(embed_norm2(v, 3) - 1.0) < 1e-6); /* float32 rounding aside */
  }
  embed_add(a, b, N, out);
  CHECK(out[7] == a[7] + b[7]);
  embed_sub(a, b, N, out);
  CHECK(out[383] == a[383] - b[383]);
  embed_scale(a, 0.5f, N, out);
  CHECK(out[0] == a[0] * 0.5f);
  {
    float inf_row[2] = {1, INFINITY};
    CHECK(embed_first_nonfinite(inf_row, 2) == 1);
    CHECK(embed_first_nonfinite(a, N) == -1);
  }
}

/* One kernel result against the scalar reference; on failure, say where. */
static int kernel_ok(int ok, const char *what, int level, int64_t n, int offa,
                     int offb) {
  if (!ok)
    fprintf(stderr, "  %s: kernels %s, n %lld, offsets %d/%d bytes\n", what,
            embed_kernels_level_name(level), (long long)n, offa, offb);
  return ok;
}

/* Every kernel path this CPU supports against the scalar path, on a and b
** copied to byte offsets offa/offb of buffers sized exactly (so ASan sees
** any read past the end). All paths add in one order, so dot, norm2 and
** cosine must be bit-identical; l2 too among the FMA paths, and within
** 1e-12 of scalar. All must be within 1e-12 of one-accumulator sums. */
static void check_paths(const float *src_a, const float *src_b, int64_t n,
                        int offa, int offb) {
  size_t bytes = (size_t)n * sizeof(float);
  char *bufa = (char *)malloc((size_t)offa + bytes + (n == 0));
  char *bufb = (char *)malloc((size_t)offb + bytes + (n == 0));
  const float *a, *b;
  double dot, norm, cos, l2, fma_l2 = -1;
  double naive_dot = 0, naive_aa = 0, naive_bb = 0, naive_l2 = 0, absdot = 0;
  int64_t i;
  int level;
  if (!bufa || !bufb) {
    CHECK(!"out of memory");
    free(bufa);
    free(bufb);
    return;
  }
  memcpy(bufa + offa, src_a, bytes);
  memcpy(bufb + offb, src_b, bytes);
  a = (const float *)(const void *)(bufa + offa);
  b = (const float *)(const void *)(bufb + offb);
  for (i = 0; i < n; i++) {
    double x = src_a[i], y = src_b[i];
    naive_dot += x * y;
    naive_aa += x * x;
    naive_bb += y * y;
    naive_l2 += (x - y) * (x - y);
    absdot += fabs(x * y);
  }
  CHECK(embed_kernels_force(EMBED_KERNELS_SCALAR) == 0);
  dot = embed_dot(a, b, n);
  norm = embed_norm2(a, n);
  cos = embed_cosine_similarity(a, b, n);
  l2 = embed_l2_distance(a, b, n);
  CHECK(kernel_ok(fabs(dot - naive_dot) <= 1e-12 * absdot &&
                      fabs(norm - sqrt(naive_aa)) <= 1e-12 * norm &&
                      fabs(l2 - sqrt(naive_l2)) <= 1e-12 * l2,
                  "scalar vs one accumulator", 0, n, offa, offb));
  {
    double na = sqrt(naive_aa), nb = sqrt(naive_bb), want;
    if (na < EMBED_COSINE_EPS) na = EMBED_COSINE_EPS;
    if (nb < EMBED_COSINE_EPS) nb = EMBED_COSINE_EPS;
    want = naive_dot / (na * nb);
    CHECK(kernel_ok(close_rel(cos, want, 1e-12),
                    "scalar cosine vs one accumulator", 0, n, offa, offb));
  }
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    double got_l2;
    if (!embed_kernels_supported(level)) continue;
    CHECK(embed_kernels_force(level) == 0 && embed_kernels_active() == level);
    CHECK(kernel_ok(embed_dot(a, b, n) == dot, "dot", level, n, offa, offb));
    CHECK(kernel_ok(embed_norm2(a, n) == norm, "norm2", level, n, offa, offb));
    CHECK(kernel_ok(embed_cosine_similarity(a, b, n) == cos, "cosine", level, n,
                    offa, offb));
    { /* the build's fused decode + norm: the same floats, the same norm */
      float *o = (float *)malloc(bytes + (n == 0));
      CHECK(o != 0);
      if (o) {
        CHECK(kernel_ok(embed_copy_norm2(bufa + offa, n, o) == norm &&
                            memcmp(o, a, bytes) == 0,
                        "copy_norm2", level, n, offa, offb));
        free(o);
      }
    }
    got_l2 = embed_l2_distance(a, b, n);
    CHECK(
        kernel_ok(fabs(got_l2 - l2) <= 1e-12 * l2, "l2", level, n, offa, offb));
    if (level >= EMBED_KERNELS_AVX2) { /* the FMA paths agree exactly */
      if (fma_l2 < 0) fma_l2 = got_l2;
      CHECK(kernel_ok(got_l2 == fma_l2, "l2 (fma)", level, n, offa, offb));
    }
  }
  CHECK(embed_kernels_force(EMBED_KERNELS_AUTO) == 0);
  free(bufa);
  free(bufb);
}

static void test_kernel_paths(void) {
  enum { MAXN = 4096 };
  static const int64_t lengths[] = {0,  1,  2,   3,   4,   5,   7,    8,
                                    9,  15, 16,  17,  31,  32,  33,   63,
                                    64, 65, 100, 383, 384, 385, 1000, 4096};
  /* byte offsets: aligned, 1, 2, 3 floats, and 1, 2, 3, 6 bytes */
  static const int offsets[] = {0, 4, 8, 12, 1, 2, 3, 6};
  static const double scales[] = {1.0, 1e19, 1e-25};
  static float a[MAXN], b[MAXN];
  const int noff = (int)(sizeof(offsets) / sizeof(offsets[0]));
  int best, level, li, oi, si;
  int64_t i;

  /* the dispatcher: AUTO picks a supported level (not scalar when SSE2 is
  ** there); an unsupported level is refused and changes nothing */
  CHECK(embed_kernels_force(EMBED_KERNELS_AUTO) == 0);
  best = embed_kernels_active();
  CHECK(embed_kernels_supported(EMBED_KERNELS_SCALAR));
  CHECK(best != EMBED_KERNELS_SCALAR ||
        !embed_kernels_supported(EMBED_KERNELS_SSE2));
  CHECK(embed_kernels_supported(best));
  CHECK(strcmp(embed_kernels_name(), embed_kernels_level_name(best)) == 0);
  CHECK(!embed_kernels_supported(-1) &&
        !embed_kernels_supported(EMBED_KERNELS_COUNT));
  CHECK(embed_kernels_force(EMBED_KERNELS_COUNT) == -1 &&
        embed_kernels_active() == best);
  printf("unit: kernel paths on this CPU:");
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    if (!embed_kernels_supported(level)) {
      CHECK(embed_kernels_force(level) == -1 && embed_kernels_active() == best);
      continue;
    }
    printf(" %s", embed_kernels_level_name(level));
  }
  printf(" (in use: %s)\n", embed_kernels_name());

  for (si = 0; si < (int)(sizeof(scales) / sizeof(scales[0])); si++) {
    for (i = 0; i < MAXN; i++) {
      a[i] = (float)(rand_unit() * scales[si]);
      b[i] = (float)(rand_unit() * scales[si]);
    }
    for (li = 0; li < (int)(sizeof(lengths) / sizeof(lengths[0])); li++)
      for (oi = 0; oi < noff; oi++)
        check_paths(a, b, lengths[li], offsets[oi],
                    offsets[(oi + 1 + li) % noff]);
  }
  /* small integers: every sum is exact, so l2 agrees bit for bit too */
  for (i = 0; i < MAXN; i++) {
    a[i] = (float)floor(rand_unit() * 8);
    b[i] = (float)floor(rand_unit() * 8);
  }
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    double l2;
    if (embed_kernels_force(level) != 0) continue;
    l2 = embed_l2_distance(a + 1, b + 3, 4000);
    CHECK(embed_kernels_force(EMBED_KERNELS_SCALAR) == 0 &&
          embed_l2_distance(a + 1, b + 3, 4000) == l2);
  }
  /* a NaN or an infinity anywhere, in a block or the tail: -1 on every path */
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    static const int64_t at[] = {0, 7, 8, 15, 16, 383, 384, 399};
    static const float bad[] = {NAN, INFINITY, -INFINITY};
    float out[400];
    int ai, bi;
    if (embed_kernels_force(level) != 0) continue;
    CHECK(embed_copy_norm2(a, 400, out) == embed_norm2(a, 400));
    for (ai = 0; ai < (int)(sizeof(at) / sizeof(at[0])); ai++)
      for (bi = 0; bi < 3; bi++) {
        float keep = a[at[ai]];
        a[at[ai]] = bad[bi];
        CHECK(embed_copy_norm2(a, 400, out) == -1.0);
        CHECK(embed_copy_norm2(a, at[ai] + 1, out) == -1.0);
        a[at[ai]] = keep;
      }
  }
  /* zero vectors: cosine 0 on every path */
  memset(a, 0, sizeof(a));
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    if (embed_kernels_force(level) != 0) continue;
    CHECK(embed_cosine_similarity(a, b, 385) == 0.0 &&
          embed_norm2(a, 385) == 0.0 && embed_dot(a, b, 385) == 0.0);
  }
  CHECK(embed_kernels_force(EMBED_KERNELS_AUTO) == 0 &&
        embed_kernels_active() == best);
}

static void test_initializer(void) {
  enum { D = 1001 };
  static float x[D], y[D];
  double sum = 0, sq = 0;
  int64_t i, id, n = 0;
  /* SplitMix64's first output for state 0 */
  CHECK(embed_mix64(0) == 0xE220A8397B1DCDAFULL);
  embed_initial_row(EMBED_INIT_NORMAL, 42, 7, x, D);
  embed_initial_row(EMBED_INIT_NORMAL, 42, 7, y, D);
  CHECK(memcmp(x, y, sizeof(x)) == 0);
  embed_initial_row(EMBED_INIT_NORMAL, 43, 7, y, D);
  CHECK(memcmp(x, y, sizeof(x)) != 0);
  embed_initial_row(EMBED_INIT_NORMAL, 42, 8, y, D);
  CHECK(memcmp(x, y, sizeof(x)) != 0);
  /* a prefix of a longer row is the shorter row (counter-based) */
  embed_initial_row(EMBED_INIT_NORMAL, 42, 7, y, 10);
  CHECK(memcmp(x, y, 10 * sizeof(float)) == 0);
  for (id = 0; id < 200; id++) {
    embed_initial_row(EMBED_INIT_NORMAL, 1, id, x, D);
    for (i = 0; i < D; i++) {
      sum += x[i];
      sq += (double)x[i] * x[i];
      n++;
    }
  }
  CHECK(fabs(sum / n) < 0.01);
  CHECK(fabs(sqrt(sq / n - (sum / n) * (sum / n)) - 1.0) < 0.01);
  embed_initial_row(EMBED_INIT_UNIFORM, 3, -5, x, D);
  sum = 0;
  for (i = 0; i < D; i++) {
    CHECK(x[i] >= -1.0f && x[i] < 1.0f);
    sum += x[i];
  }
  CHECK(fabs(sum / D) < 0.1);
  embed_initial_row(EMBED_INIT_ZEROS, 3, 5, x, D);
  CHECK(x[0] == 0 && x[D - 1] == 0);
}

static void test_options(void) {
  embed_config c;
  embed_error err;
  char value[64];
  int i;
  embed_config_defaults(&c);
  CHECK(embed_config_apply_arg(&c, " dim = 50 ", &err) == 0 && c.dim == 50);
  CHECK(embed_config_apply_arg(&c, "metric='l2'", &err) == 0 &&
        c.metric == EMBED_METRIC_L2);
  CHECK(embed_config_apply_arg(&c, "MAX_NORM=2.5", &err) == 0 &&
        c.max_norm == 2.5);
  CHECK(embed_config_apply_arg(&c, "dim=3", &err) != 0 &&
        strcmp(err.text, "option 'dim' given twice") == 0);
  CHECK(embed_config_apply_arg(&c, "nope=1", &err) != 0 &&
        strcmp(err.text, "unknown option 'nope'") == 0);
  CHECK(embed_config_apply_arg(&c, "seed", &err) != 0);
  CHECK(embed_config_finish(&c, &err) == 0);
  /* the stored form replays to the same configuration */
  {
    embed_config d;
    embed_config_defaults(&d);
    for (i = 0; i < embed_config_count(); i++) {
      embed_config_value(&c, i, value, sizeof(value));
      CHECK(embed_config_apply(&d, embed_config_key(i), value, &err) == 0);
    }
    CHECK(d.dim == c.dim && d.metric == c.metric && d.max_norm == c.max_norm &&
          d.has_padding_idx == c.has_padding_idx && d.seed == c.seed);
  }
  embed_config_defaults(&c);
  CHECK(embed_config_finish(&c, &err) != 0 &&
        strcmp(err.text, "missing required option 'dim'") == 0);
}

/* embed_optimizer_state_step then embed_optimizer_weight_step give the
** bits of one embed_optimizer_step, for every optimizer and option that
** splits, over several steps (states carried), with odd dimensions for the
** vector loops' tails; sgd with weight_decay does not split. */
static void test_optimizer_split(void) {
  static const char *const configs[][4] = {
      {"optimizer=adagrad"},
      {"optimizer=adagrad", "lr_decay=0.01", "eps=1e-6", "maximize=1"},
      {"optimizer=adagrad", "initial_accumulator_value=0.5"},
      {"optimizer=adam"},
      {"optimizer=adam", "betas=(0.8, 0.95)", "maximize=1"},
      {"optimizer=sgd", "momentum=0.9"},
      {"optimizer=sgd", "momentum=0.5", "dampening=0.25"},
      {"optimizer=sgd", "momentum=0.9", "nesterov=1"},
      {"optimizer=sgd", "momentum=0.9", "weight_decay=0.1"}, /* no split */
  };
  const size_t n_configs = sizeof(configs) / sizeof(configs[0]);
  int64_t dims[] = {1, 7, 8, 33};
  size_t c;
  int d, k;
  for (c = 0; c < n_configs; c++) {
    for (d = 0; d < 4; d++) {
      embed_config cfg;
      embed_error err;
      char arg[32];
      int64_t dim = dims[d], i, step;
      float w1[33], w2[33], g[33], s1[66], s2[66];
      int same = 1;
      embed_config_defaults(&cfg);
      snprintf(arg, sizeof(arg), "dim=%lld", (long long)dim);
      CHECK(embed_config_apply_arg(&cfg, arg, &err) == 0);
      for (k = 0; k < 4 && configs[c][k]; k++)
        CHECK(embed_config_apply_arg(&cfg, configs[c][k], &err) == 0);
      CHECK(embed_config_finish(&cfg, &err) == 0);
      if (c == n_configs - 1) { /* the state depends on the weight */
        CHECK(!embed_optimizer_splits(&cfg));
        continue;
      }
      CHECK(embed_optimizer_splits(&cfg));
      for (i = 0; i < dim; i++) w1[i] = w2[i] = (float)rand_unit();
      embed_optimizer_state_init(&cfg, s1, dim);
      embed_optimizer_state_init(&cfg, s2, dim);
      for (step = 1; step <= 5; step++) {
        for (i = 0; i < dim; i++) g[i] = (float)(rand_unit() * 3);
        embed_optimizer_step(&cfg, w1, g, s1, 0.05, step, dim);
        embed_optimizer_state_step(&cfg, g, s2, step, dim);
        embed_optimizer_weight_step(&cfg, w2, g, s2, 0.05, step, dim);
        same &= memcmp(w1, w2, (size_t)dim * sizeof(float)) == 0 &&
                memcmp(s1, s2,
                       (size_t)embed_optimizer_state_size(&cfg, dim) *
                           sizeof(float)) == 0;
      }
      CHECK(same);
    }
  }
}

/* embed_utf8_quote: how messages show outside text; and embed_error_set,
** whose text is always valid UTF-8, even when it echoes bytes or is cut. */
static void test_utf8_quote(void) {
  char out[EMBED_QUOTE_SIZE(8)], big[600];
  embed_error err;
  int64_t n;
  CHECK(embed_utf8_quote("abc", 3, 8, 1, out) == 3 && strcmp(out, "abc") == 0);
  CHECK(embed_utf8_quote("", 0, 8, 1, out) == 0 && out[0] == 0);
  /* invalid UTF-8, control bytes and NUL become '?' */
  embed_utf8_quote(
      "\xb7\xa3"
      "c?]\n\x01",
      7, 8, 1, out);
  CHECK(strcmp(out, "??c?]??") == 0);
  embed_utf8_quote("a\0b", 3, 8, 1, out);
  CHECK(strcmp(out, "a?b") == 0);
  /* without `controls`, only NUL and invalid bytes are replaced */
  embed_utf8_quote(
      "\xb7"
      "a\tb\n\0",
      6, 8, 0, out);
  CHECK(strcmp(out, "?a\tb\n?") == 0);
  /* valid multi-byte characters are kept; a cut never splits one */
  embed_utf8_quote("\xc3\xa9t\xc3\xa9", 5, 8, 1, out);
  CHECK(strcmp(out, "\xc3\xa9t\xc3\xa9") == 0);
  n = embed_utf8_quote(
      "abcdefg\xe2\x82\xac"
      "xyz",
      13, 8, 1, out);
  CHECK(strcmp(out, "abcdefg\xe2\x82\xac...") == 0 && n == 13);
  CHECK(embed_utf8_valid_prefix((const unsigned char *)out, n) == n);
  embed_utf8_quote("abcdefghijkl", 12, 8, 1, out);
  CHECK(strcmp(out, "abcdefgh...") == 0);
  /* a truncated sequence at the end of the text */
  embed_utf8_quote("ab\xe2\x82", 4, 8, 1, out);
  CHECK(strcmp(out, "ab??") == 0);
  /* embed_error_set: echoed bytes and the buffer's cut stay valid UTF-8 */
  embed_error_set(&err, "got '%s'", "\xff\xfe");
  CHECK(strcmp(err.text, "got '\x3f?'") == 0);
  memset(big, 0, sizeof(big));
  for (n = 0; n + 2 < (int64_t)sizeof(big) - 1; n += 2)
    memcpy(big + n, "\xc3\xa9", 2);
  embed_error_set(&err, "metric must be cosine, l2 or dot, got '%s'", big);
  n = (int64_t)strlen(err.text);
  CHECK(n < EMBED_ERROR_TEXT_MAX &&
        embed_utf8_valid_prefix((const unsigned char *)err.text, n) == n);
  CHECK(n > 3 && strcmp(err.text + n - 3, "...") == 0);
}

/* ------------------------------------------------------------------------
** codes.c: 8-bit codes, their dot product, the float L2 kernel.
*/
static int cmp_float(const void *a, const void *b) {
  float x = *(const float *)a, y = *(const float *)b;
  return x < y ? -1 : x > y;
}

static void test_codes(void) {
  enum { N = 3000, D = 37 };
  static float rows[N * D], col[N], scratch[N], dec[D];
  static uint8_t code[D];
  float offset[D], scale[D], qs[D], q[D];
  int64_t i, j;
  int bad = 0;
  for (i = 0; i < N; i++)
    for (j = 0; j < D; j++)
      rows[i * D + j] =
          j == 5
              ? 2.5f
              : (float)(rand_unit() * 0.3 * (double)(j + 1) + (double)j - 10.0);
  rows[17 * D + 3] = 1e6f; /* an outlier the quantiles ignore */
  embed_codes_fit(rows, N, D, scratch, offset, scale);
  /* the nearest-rank quantiles: the 3rd and the 2997th smallest */
  for (j = 0; j < D; j++) {
    for (i = 0; i < N; i++) col[i] = rows[i * D + j];
    qsort(col, N, sizeof(float), cmp_float);
    if (j == 5) {
      CHECK(offset[j] == 2.5f && scale[j] == 1.0f);
    } else if (offset[j] != col[2] || scale[j] != (col[2996] - col[2]) / 255) {
      bad++;
    }
  }
  CHECK(bad == 0);
  CHECK(offset[3] + 255 * scale[3] < 100.0f);
  /* round trip: within scale / 2 inside [lo, hi], clamped outside */
  bad = 0;
  for (i = 0; i < N; i++) {
    const float *x = rows + i * D;
    embed_codes_encode(x, D, offset, scale, code);
    embed_codes_decode(code, D, offset, scale, dec);
    for (j = 0; j < D; j++) {
      float hi = offset[j] + 255 * scale[j];
      double tol = scale[j] * 0.5 * (1 + 1e-4) + 1e-6 * fabs((double)x[j]);
      if (x[j] < offset[j]) {
        bad += code[j] != 0;
      } else if (x[j] > hi) {
        bad += code[j] != 255;
      } else {
        bad += !(fabs((double)dec[j] - (double)x[j]) <= tol);
      }
    }
  }
  CHECK(bad == 0);
  CHECK(code[5] == 0 && dec[5] == 2.5f); /* the constant dimension */
  /* the query identity: base + qs.code = q.decode(code) */
  bad = 0;
  for (i = 0; i < 200; i++) {
    double base, got, want = 0, mag = 0;
    for (j = 0; j < D; j++) q[j] = (float)rand_unit();
    base = embed_codes_query(q, D, offset, scale, qs);
    embed_codes_encode(rows + i * D, D, offset, scale, code);
    embed_codes_decode(code, D, offset, scale, dec);
    got = base;
    for (j = 0; j < D; j++) {
      got += (double)qs[j] * code[j];
      want += (double)q[j] * dec[j];
      mag += fabs((double)q[j] * dec[j]);
    }
    bad += !(fabs(got - want) <= 1e-6 * mag);
  }
  CHECK(bad == 0);
}

/* embed_codes_dot and embed_l2sq_many against double references, on
** every kernel level, at lengths around the blocks of 4 rows and 8 or 16
** elements, with code rows at odd strides and addresses. */
/* embed_codes_encode_scaled(row, mul) is the code of the float row x mul,
** on every kernel level, and every level gives the same codes. */
static void test_codes_scaled(void) {
  enum { D = 37, ROWS = 2000 };
  static float row[D], scaled[D], offset[D], scale[D];
  static uint8_t want[D], got[D], first[ROWS][D];
  int level, t, j, bad = 0, differ = 0;
  for (j = 0; j < D; j++) {
    offset[j] = (float)(rand_unit() * 0.2 - 0.6);
    scale[j] = (float)(1.2 + rand_unit() * 0.1) / 255.0f;
  }
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    uint64_t saved = rng_state;
    if (!embed_kernels_supported(level)) continue;
    CHECK(embed_kernels_force(level) == 0);
    for (t = 0; t < ROWS; t++) {
      double n = 0;
      float mul;
      for (j = 0; j < D; j++) {
        row[j] = (float)(rand_unit() * 3);
        n += (double)row[j] * row[j];
      }
      mul = (float)(1.0 / sqrt(n));
      for (j = 0; j < D; j++) scaled[j] = row[j] * mul;
      embed_codes_encode(scaled, D, offset, scale, want);
      embed_codes_encode_scaled(row, D, mul, offset, scale, got);
      bad += memcmp(want, got, D) != 0;
      if (level == 0) memcpy(first[t], got, D);
      differ += memcmp(first[t], got, D) != 0;
    }
    rng_state = saved; /* the same rows on every level */
  }
  CHECK(bad == 0);
  CHECK(differ == 0);
  CHECK(embed_kernels_force(EMBED_KERNELS_AUTO) == 0);
}

static void test_codes_paths(void) {
  enum { MAXN = 23, MAXD = 400 };
  static const int64_t dims[] = {1, 3, 7, 8, 9, 15, 16, 17, 24, 33, 384, 385};
  static const int64_t counts[] = {0, 1, 3, 4, 5, 8, 23};
  static uint8_t codes[1 + MAXN * (MAXD + 3)];
  static float qs[MAXD], rows[MAXN * MAXD], out[MAXN], ref[MAXN], mag[MAXN],
      l2ref[MAXN];
  int64_t di, ci, i, j;
  int level, bad = 0, runs = 0;
  for (i = 0; i < (int64_t)sizeof(codes); i++)
    codes[i] = (uint8_t)(embed_mix64((uint64_t)i) >> 56);
  for (j = 0; j < MAXD; j++) qs[j] = (float)rand_unit();
  for (i = 0; i < MAXN * MAXD; i++) rows[i] = (float)(rand_unit() * 3);
  for (di = 0; di < (int64_t)(sizeof(dims) / sizeof(dims[0])); di++) {
    int64_t dim = dims[di];
    size_t stride = (size_t)dim + 3;
    const uint8_t *c = codes + 1;
    for (i = 0; i < MAXN; i++) {
      double s = 0, m = 0, l = 0;
      for (j = 0; j < dim; j++) {
        double p = (double)qs[j] * c[(size_t)i * stride + (size_t)j];
        double d = (double)qs[j] - rows[i * dim + j];
        s += p;
        m += fabs(p);
        l += d * d;
      }
      ref[i] = (float)s;
      mag[i] = (float)m;
      l2ref[i] = (float)l;
    }
    {
      for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
        if (embed_kernels_force(level) != 0) continue;
        for (ci = 0; ci < (int64_t)(sizeof(counts) / sizeof(counts[0])); ci++) {
          int64_t n = counts[ci];
          memset(out, 0xff, sizeof(out));
          embed_codes_dot(qs, c, stride, n, dim, out);
          for (i = 0; i < n; i++)
            bad += !(fabs((double)out[i] - ref[i]) <= 1e-4 * mag[i]);
          bad += n < MAXN && !isnan(out[n]); /* nothing past n written */
          memset(out, 0xff, sizeof(out));
          embed_l2sq_many(qs, rows, n, dim, out);
          for (i = 0; i < n; i++)
            bad += !(fabs((double)out[i] - l2ref[i]) <= 1e-5 * l2ref[i]);
          bad += n < MAXN && !isnan(out[n]);
          runs++;
        }
      }
    }
  }
  CHECK(embed_kernels_force(EMBED_KERNELS_AUTO) == 0);
  CHECK(runs > 0 && bad == 0);
}

/* ------------------------------------------------------------------------
** cells.c: the two-level k-means.
*/
typedef struct cells_fixture {
  embed_cells c;
  float cent[64 * 16], gcent[64 * 16];
  int64_t first[65];
} cells_fixture;

static int cells_make(cells_fixture *f, const float *rows, int64_t n,
                      int64_t dim, int64_t nlist, uint64_t seed,
                      embed_error *err) {
  void *scratch = malloc(embed_cells_scratch_bytes(n, dim, nlist));
  int rc;
  f->c.dim = dim;
  f->c.nlist = nlist;
  f->c.ngroups = embed_cells_groups(nlist);
  f->c.centroids = f->cent;
  f->c.group_centroids = f->gcent;
  f->c.group_first = f->first;
  if (!scratch) return -2;
  rc = embed_cells_train(rows, n, seed, 10, scratch, &f->c, err);
  free(scratch);
  return rc;
}

static int cells_consistent(const embed_cells *c) {
  int64_t g;
  if (c->group_first[0] != 0 || c->group_first[c->ngroups] != c->nlist)
    return 0;
  for (g = 0; g < c->ngroups; g++)
    if (c->group_first[g + 1] <= c->group_first[g]) return 0;
  return 1;
}

static void test_cells(void) {
  enum { N = 2000, D = 16, K = 20 };
  static float rows[N * D], centres[K * D], dist[64], q[D];
  static cells_fixture f, f2;
  embed_error err;
  int64_t i, j, c, g, out[64], brute[64];
  int level, bad;
  CHECK(embed_cells_groups(1) == 1 && embed_cells_groups(2) == 1 &&
        embed_cells_groups(3) == 2 && embed_cells_groups(20) == 4 &&
        embed_cells_groups(1000) == 32 && embed_cells_groups(0) == 1);
  for (i = 0; i < K * D; i++) centres[i] = (float)(rand_unit() * 10);
  for (i = 0; i < N; i++)
    for (j = 0; j < D; j++)
      rows[i * D + j] = centres[(i % K) * D + j] + (float)(rand_unit() * 0.3);
  for (level = 0; level < EMBED_KERNELS_COUNT; level++) {
    static int64_t tally[K][K];
    int64_t pure = 0;
    if (embed_kernels_force(level) != 0) continue;
    CHECK(cells_make(&f, rows, N, D, K, 7, &err) == 0);
    CHECK(f.c.ngroups == 4 && cells_consistent(&f.c));
    /* purity: the cells' majority clusters hold >= 95% of the rows */
    memset(tally, 0, sizeof(tally));
    for (i = 0; i < N; i++)
      tally[embed_cells_assign(&f.c, rows + i * D, 2, NULL)][i % K]++;
    for (c = 0; c < K; c++) {
      int64_t most = 0;
      for (j = 0; j < K; j++)
        if (tally[c][j] > most) most = tally[c][j];
      pure += most;
    }
    CHECK(pure >= N * 95 / 100);
    /* every group probed: the exact nearest centroid, and its distance */
    bad = 0;
    for (i = 0; i < N + 200; i++) {
      const float *x = rows + i * D;
      double d1, want = 0;
      if (i >= N) { /* points between the clusters too */
        for (j = 0; j < D; j++) q[j] = (float)(rand_unit() * 12);
        x = q;
      }
      c = embed_cells_assign(&f.c, x, (int)f.c.ngroups, &d1);
      embed_cells_nearest(&f.c, x, 1, dist, out);
      for (j = 0; j < D; j++) {
        double d = (double)x[j] - f.c.centroids[c * D + j];
        want += d * d;
      }
      bad += c != out[0] || !(fabs(d1 - want) <= 1e-4 * want + 1e-6);
      bad += embed_cells_assign(&f.c, x, 100, NULL) != c;
    }
    CHECK(bad == 0);
    /* nearest: ascending, equal to a brute-force sort of the distances */
    bad = 0;
    for (i = 0; i < 100; i++) {
      int64_t m = i % 2 ? K : 1 + i % 7, a, b;
      for (j = 0; j < D; j++) q[j] = (float)(rand_unit() * 12);
      embed_cells_nearest(&f.c, q, m, dist, out);
      embed_l2sq_many(q, f.c.centroids, K, D, dist);
      for (a = 0; a < K; a++) brute[a] = a;
      for (a = 1; a < K; a++) /* insertion sort by (distance, index) */
        for (b = a; b > 0 && dist[brute[b]] < dist[brute[b - 1]]; b--) {
          int64_t t = brute[b];
          brute[b] = brute[b - 1];
          brute[b - 1] = t;
        }
      for (a = 0; a < m; a++) bad += out[a] != brute[a];
      for (a = 1; a < m; a++) bad += dist[out[a]] < dist[out[a - 1]];
    }
    CHECK(bad == 0);
    /* deterministic for a seed */
    CHECK(cells_make(&f2, rows, N, D, K, 7, &err) == 0);
    CHECK(memcmp(f.cent, f2.cent, sizeof(f.cent)) == 0 &&
          memcmp(f.gcent, f2.gcent, sizeof(f.gcent)) == 0 &&
          memcmp(f.first, f2.first, sizeof(f.first)) == 0);
    /* a group centroid is the size-weighted mean of its cells: near them */
    for (g = 0; g < f.c.ngroups; g++) {
      double near = 1e30;
      for (c = f.c.group_first[g]; c < f.c.group_first[g + 1]; c++) {
        double d = 0;
        for (j = 0; j < D; j++) {
          double e = (double)f.gcent[g * D + j] - f.cent[c * D + j];
          d += e * e;
        }
        if (d < near) near = d;
      }
      CHECK(near < 1e30);
    }
  }
  CHECK(embed_kernels_force(EMBED_KERNELS_AUTO) == 0);
  /* more cells than clusters, and 64 cells in 8 groups */
  CHECK(cells_make(&f, rows, N, D, 64, 3, &err) == 0 && f.c.ngroups == 8 &&
        cells_consistent(&f.c));
  /* duplicates: seeding finds no spread, the repair fills every cell */
  for (i = 0; i < 50 * D; i++) rows[i] = (float)(i % D);
  CHECK(cells_make(&f, rows, 50, D, 10, 1, &err) == 0 &&
        cells_consistent(&f.c));
  CHECK(embed_cells_assign(&f.c, rows, 2, NULL) >= 0);
  /* nlist = n: one row per cell */
  CHECK(cells_make(&f, centres, K, D, K, 1, &err) == 0 &&
        cells_consistent(&f.c));
  bad = 0;
  for (i = 0; i < K; i++) {
    double d1;
    c = embed_cells_assign(&f.c, centres + i * D, (int)f.c.ngroups, &d1);
    bad += d1 != 0 || memcmp(f.c.centroids + c * D, centres + i * D,
                             D * sizeof(float)) != 0;
  }
  CHECK(bad == 0);
  /* bad arguments */
  CHECK(cells_make(&f, rows, 5, D, 6, 1, &err) == -1 &&
        strstr(err.text, "nlist") != NULL);
  f.c.ngroups = 11;
  {
    void *s = malloc(embed_cells_scratch_bytes(50, D, 10));
    f.c.nlist = 10;
    CHECK(s && embed_cells_train(rows, 50, 1, 10, s, &f.c, &err) == -1 &&
          strstr(err.text, "ngroups") != NULL);
    f.c.ngroups = 3;
    CHECK(s && embed_cells_train(rows, 50, 1, -1, s, &f.c, &err) == -1);
    CHECK(s && embed_cells_train(rows, 50, 1, 0, s, &f.c, &err) == 0 &&
          cells_consistent(&f.c));
    free(s);
  }
}

int main(void) {
  test_blob_codec();
  test_blob_check();
  test_json_parse();
  test_json_format();
  test_kernels();
  test_kernel_paths();
  test_initializer();
  test_options();
  test_optimizer_split();
  test_utf8_quote();
  test_codes();
  test_codes_paths();
  test_codes_scaled();
  test_cells();
  printf("unit: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
