/*
** codes.c - 8-bit scalar codes of vectors and the float kernels of
** approximate search.
**
** Usage (from C; SQLite is not needed here):
**
**     embed_codes_fit(sample, n, dim, scratch, offset, scale); // once
**     embed_codes_encode(row, dim, offset, scale, code);       // each row
**     base = embed_codes_query(q, dim, offset, scale, qs);     // each query
**     embed_codes_dot(qs, codes, dim, nrows, dim, out);
**     // dot(q, decode(code of row i)) = base + out[i]
**     embed_l2sq_many(q, centroids, k, dim, dist);   // dist[c] = |q - c|^2
**
** Design:
**  - A code has one byte per dimension: code_j = clamp(round((x_j -
**    offset_j) / scale_j), 0, 255). The fit puts offset_j at the 0.1%
**    quantile of dimension j in the sample and offset_j + 255 scale_j at
**    the 99.9% quantile (nearest rank, found with a quickselect), so a rare
**    outlier does not stretch the grid; values outside are clamped. Inside,
**    decoding is within scale_j / 2.
**  - The dot product of a float query with a code needs no decoding:
**    q.decode(c) = sum q_j offset_j + sum (q_j scale_j) c_j, so a query is
**    prepared once (qs = q * scale and the constant) and each code row
**    costs one multiply-add per byte. That loop is the inner loop of every
**    approximate search, so the AVX2 path works on four rows at a time:
**    each 8 floats of qs are loaded once for four rows, each 8 bytes of a
**    code widen to 8 int32 (vpmovzxbd) and then to float, and eight
**    accumulators (two per row) hide the FMA latency.
**  - embed_l2sq_many (one float vector against many contiguous ones, float
**    accumulation) is the kernel of the coarse quantizer (cells.c), built
**    the same way, four rows at a time.
**  - Both follow the level kernels.c has chosen (embed_kernels_active, so
**    embed_kernels_force reaches them too): the AVX2 and AVX-512 levels run
**    the AVX2+FMA path here, compiled with __attribute__((target)) like
**    kernels.c's; the other levels the portable C path. The two paths add
**    in different orders, so results differ in the last bits.
*/
#include <string.h>

#include "core/core.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define CODES_HAVE_X86 1
#include <immintrin.h>
#endif

/* ------------------------------------------------------------------------
** Fitting, encoding, decoding.
*/

/* The k-th smallest of a[0..n) (0-based), partitioning a around it: on
** return a[i] <= a[k] for i < k and a[i] >= a[k] for i > k. */
static float codes_select(float *a, int64_t n, int64_t k) {
  int64_t lo = 0, hi = n - 1;
  while (hi > lo) {
    int64_t i = lo, j = hi, mid = lo + (hi - lo) / 2;
    float x = a[lo], y = a[mid], z = a[hi], pivot;
    /* the median of three */
    pivot =
        x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        float t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (k <= j) {
      hi = j;
    } else if (k >= i) {
      lo = i;
    } else {
      break; /* j < k < i: a[k] equals the pivot */
    }
  }
  return a[k];
}

void embed_codes_fit(const float *rows, int64_t n, int64_t dim, float *scratch,
                     float *offset, float *scale) {
  /* nearest rank: the ceil(p n)-th smallest, p = 0.001 and 0.999 */
  int64_t klo = (n + 999) / 1000 - 1, khi = (999 * n + 999) / 1000 - 1;
  int64_t i, j;
  if (klo < 0) klo = 0;
  if (khi > n - 1) khi = n - 1;
  if (khi < klo) khi = klo;
  for (j = 0; j < dim; j++) {
    float lo, hi, s;
    for (i = 0; i < n; i++) scratch[i] = rows[(size_t)i * (size_t)dim + j];
    lo = codes_select(scratch, n, klo);
    /* scratch[klo + 1 ..] holds the values >= lo: hi is among them */
    hi = khi > klo ? codes_select(scratch + klo + 1, n - klo - 1, khi - klo - 1)
                   : lo;
    s = (hi - lo) / 255.0f;
    offset[j] = lo;
    scale[j] =
        s > 0 ? s : 1.0f; /* hi == lo (or a difference that underflows) */
  }
}

void embed_codes_encode(const float *row, int64_t dim, const float *offset,
                        const float *scale, uint8_t *code) {
  int64_t j;
  for (j = 0; j < dim; j++) {
    float v = (row[j] - offset[j]) / scale[j] + 0.5f;
    code[j] = v >= 255.0f ? 255 : v > 0 ? (uint8_t)v : 0; /* NaN: 0 */
  }
}

void embed_codes_decode(const uint8_t *code, int64_t dim, const float *offset,
                        const float *scale, float *row) {
  int64_t j;
  for (j = 0; j < dim; j++) row[j] = offset[j] + scale[j] * (float)code[j];
}

double embed_codes_query(const float *q, int64_t dim, const float *offset,
                         const float *scale, float *qs) {
  double base = 0;
  int64_t j;
  for (j = 0; j < dim; j++) {
    qs[j] = q[j] * scale[j];
    base += (double)q[j] * (double)offset[j];
  }
  return base;
}

/* ------------------------------------------------------------------------
** The portable paths: eight float accumulators per row, which compilers
** can keep in vector registers.
*/
static void codes_dot_scalar(const float *qs, const uint8_t *codes,
                             size_t stride, int64_t n, int64_t dim,
                             float *out) {
  int64_t i, j, l;
  for (i = 0; i < n; i++) {
    const uint8_t *c = codes + (size_t)i * stride;
    float acc[8] = {0}, s;
    for (j = 0; j + 8 <= dim; j += 8)
      for (l = 0; l < 8; l++) acc[l] += qs[j + l] * (float)c[j + l];
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
        ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < dim; j++) s += qs[j] * (float)c[j];
    out[i] = s;
  }
}

static void codes_l2sq_scalar(const float *q, const float *rows, int64_t n,
                              int64_t dim, float *out) {
  int64_t i, j, l;
  for (i = 0; i < n; i++) {
    const float *r = rows + (size_t)i * (size_t)dim;
    float acc[8] = {0}, s;
    for (j = 0; j + 8 <= dim; j += 8)
      for (l = 0; l < 8; l++) {
        float d = q[j + l] - r[j + l];
        acc[l] += d * d;
      }
    s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
        ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; j < dim; j++) {
      float d = q[j] - r[j];
      s += d * d;
    }
    out[i] = s;
  }
}

#ifdef CODES_HAVE_X86
/* ------------------------------------------------------------------------
** The AVX2+FMA paths. Rows go four at a time (the query's 8 floats loaded
** once for the four), two accumulators per row (even and odd blocks of 8);
** the last dim % 8 elements are added in scalar code.
*/
#define CODES_AVX2 __attribute__((target("avx2,fma")))
/* 8 bytes at p as 8 floats */
#define CODES_U8X8(p)                      \
  _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32( \
      _mm_loadl_epi64((const __m128i *)(const void *)(p))))

/* The four horizontal sums of a0..a3, as one __m128. */
CODES_AVX2 static inline __m128 codes_hsum4(__m256 a0, __m256 a1, __m256 a2,
                                            __m256 a3) {
  __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

CODES_AVX2 static inline float codes_hsum1(__m256 a) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

CODES_AVX2 static void codes_dot_avx2(const float *qs, const uint8_t *codes,
                                      size_t stride, int64_t n, int64_t dim,
                                      float *out) {
  const int64_t d8 = dim & ~(int64_t)7;
  int64_t i = 0, j;
  for (; i + 4 <= n; i += 4) {
    const uint8_t *c0 = codes + (size_t)i * stride, *c1 = c0 + stride;
    const uint8_t *c2 = c1 + stride, *c3 = c2 + stride;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    float t[4];
    for (j = 0; j + 16 <= d8; j += 16) {
      __m256 q0 = _mm256_loadu_ps(qs + j), q1 = _mm256_loadu_ps(qs + j + 8);
      a0 = _mm256_fmadd_ps(CODES_U8X8(c0 + j), q0, a0);
      a1 = _mm256_fmadd_ps(CODES_U8X8(c1 + j), q0, a1);
      a2 = _mm256_fmadd_ps(CODES_U8X8(c2 + j), q0, a2);
      a3 = _mm256_fmadd_ps(CODES_U8X8(c3 + j), q0, a3);
      b0 = _mm256_fmadd_ps(CODES_U8X8(c0 + j + 8), q1, b0);
      b1 = _mm256_fmadd_ps(CODES_U8X8(c1 + j + 8), q1, b1);
      b2 = _mm256_fmadd_ps(CODES_U8X8(c2 + j + 8), q1, b2);
      b3 = _mm256_fmadd_ps(CODES_U8X8(c3 + j + 8), q1, b3);
    }
    if (j < d8) {
      __m256 q0 = _mm256_loadu_ps(qs + j);
      a0 = _mm256_fmadd_ps(CODES_U8X8(c0 + j), q0, a0);
      a1 = _mm256_fmadd_ps(CODES_U8X8(c1 + j), q0, a1);
      a2 = _mm256_fmadd_ps(CODES_U8X8(c2 + j), q0, a2);
      a3 = _mm256_fmadd_ps(CODES_U8X8(c3 + j), q0, a3);
      j += 8;
    }
    _mm_storeu_ps(t, codes_hsum4(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1),
                                 _mm256_add_ps(a2, b2), _mm256_add_ps(a3, b3)));
    for (; j < dim; j++) {
      t[0] += qs[j] * (float)c0[j];
      t[1] += qs[j] * (float)c1[j];
      t[2] += qs[j] * (float)c2[j];
      t[3] += qs[j] * (float)c3[j];
    }
    memcpy(out + i, t, sizeof(t));
  }
  for (; i < n; i++) {
    const uint8_t *c = codes + (size_t)i * stride;
    __m256 a = _mm256_setzero_ps(), b = a;
    float s;
    for (j = 0; j + 16 <= d8; j += 16) {
      a = _mm256_fmadd_ps(CODES_U8X8(c + j), _mm256_loadu_ps(qs + j), a);
      b = _mm256_fmadd_ps(CODES_U8X8(c + j + 8), _mm256_loadu_ps(qs + j + 8),
                          b);
    }
    if (j < d8) {
      a = _mm256_fmadd_ps(CODES_U8X8(c + j), _mm256_loadu_ps(qs + j), a);
      j += 8;
    }
    s = codes_hsum1(_mm256_add_ps(a, b));
    for (; j < dim; j++) s += qs[j] * (float)c[j];
    out[i] = s;
  }
}

/* acc += (q - r)^2 over 8 floats */
#define CODES_L2STEP(acc, qv, r)                       \
  do {                                                 \
    __m256 d_ = _mm256_sub_ps(qv, _mm256_loadu_ps(r)); \
    acc = _mm256_fmadd_ps(d_, d_, acc);                \
  } while (0)

CODES_AVX2 static void codes_l2sq_avx2(const float *q, const float *rows,
                                       int64_t n, int64_t dim, float *out) {
  const int64_t d8 = dim & ~(int64_t)7;
  const size_t step = (size_t)dim;
  int64_t i = 0, j;
  for (; i + 4 <= n; i += 4) {
    const float *r0 = rows + (size_t)i * step, *r1 = r0 + step;
    const float *r2 = r1 + step, *r3 = r2 + step;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    float t[4];
    for (j = 0; j + 16 <= d8; j += 16) {
      __m256 q0 = _mm256_loadu_ps(q + j), q1 = _mm256_loadu_ps(q + j + 8);
      CODES_L2STEP(a0, q0, r0 + j);
      CODES_L2STEP(a1, q0, r1 + j);
      CODES_L2STEP(a2, q0, r2 + j);
      CODES_L2STEP(a3, q0, r3 + j);
      CODES_L2STEP(b0, q1, r0 + j + 8);
      CODES_L2STEP(b1, q1, r1 + j + 8);
      CODES_L2STEP(b2, q1, r2 + j + 8);
      CODES_L2STEP(b3, q1, r3 + j + 8);
    }
    if (j < d8) {
      __m256 q0 = _mm256_loadu_ps(q + j);
      CODES_L2STEP(a0, q0, r0 + j);
      CODES_L2STEP(a1, q0, r1 + j);
      CODES_L2STEP(a2, q0, r2 + j);
      CODES_L2STEP(a3, q0, r3 + j);
      j += 8;
    }
    _mm_storeu_ps(t, codes_hsum4(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1),
                                 _mm256_add_ps(a2, b2), _mm256_add_ps(a3, b3)));
    for (; j < dim; j++) {
      float d0 = q[j] - r0[j], d1 = q[j] - r1[j];
      float d2 = q[j] - r2[j], d3 = q[j] - r3[j];
      t[0] += d0 * d0;
      t[1] += d1 * d1;
      t[2] += d2 * d2;
      t[3] += d3 * d3;
    }
    memcpy(out + i, t, sizeof(t));
  }
  for (; i < n; i++) {
    const float *r = rows + (size_t)i * step;
    __m256 a = _mm256_setzero_ps(), b = a, c = a, e = a;
    float s;
    for (j = 0; j + 32 <= d8; j += 32) { /* four chains for one row */
      CODES_L2STEP(a, _mm256_loadu_ps(q + j), r + j);
      CODES_L2STEP(b, _mm256_loadu_ps(q + j + 8), r + j + 8);
      CODES_L2STEP(c, _mm256_loadu_ps(q + j + 16), r + j + 16);
      CODES_L2STEP(e, _mm256_loadu_ps(q + j + 24), r + j + 24);
    }
    for (; j < d8; j += 8) CODES_L2STEP(a, _mm256_loadu_ps(q + j), r + j);
    s = codes_hsum1(_mm256_add_ps(_mm256_add_ps(a, b), _mm256_add_ps(c, e)));
    for (; j < dim; j++) {
      float d = q[j] - r[j];
      s += d * d;
    }
    out[i] = s;
  }
}
#endif /* CODES_HAVE_X86 */

/* ------------------------------------------------------------------------
** Dispatch: the level kernels.c uses decides.
*/
static int codes_use_avx2(void) {
#ifdef CODES_HAVE_X86
  int level = embed_kernels_active();
  if (level == EMBED_KERNELS_AVX2) return 1;
  if (level == EMBED_KERNELS_AVX512)
    return embed_kernels_supported(EMBED_KERNELS_AVX2);
#endif
  return 0;
}

void embed_codes_dot(const float *qs, const uint8_t *codes, size_t stride,
                     int64_t n, int64_t dim, float *out) {
#ifdef CODES_HAVE_X86
  if (codes_use_avx2()) {
    codes_dot_avx2(qs, codes, stride, n, dim, out);
    return;
  }
#endif
  codes_dot_scalar(qs, codes, stride, n, dim, out);
}

embed_l2sq_many_fn embed_l2sq_many_impl(void) {
#ifdef CODES_HAVE_X86
  if (codes_use_avx2()) return codes_l2sq_avx2;
#endif
  return codes_l2sq_scalar;
}

void embed_l2sq_many(const float *q, const float *rows, int64_t n, int64_t dim,
                     float *out) {
  embed_l2sq_many_impl()(q, rows, n, dim, out);
}
