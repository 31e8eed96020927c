/*
** kernels.c - the vector math behind the SQL functions, the table and search.
**
** Usage (from C; SQLite is not needed here):
**
**     double s = embed_cosine_similarity(a, b, n);   // in [-1, 1]
**     embed_renorm(row, n, 1.0, 2.0);                // max_norm=1, norm_type=2
**     puts(embed_kernels_name());                    // "avx512", "neon", ...
**
** Design:
**  - Inputs are float32 arrays at any address (no alignment is assumed: the
**    SIMD paths use unaligned loads, the scalar path memcpy).
**  - Reductions accumulate in double, so dot products, norms and distances
**    are within 1e-5 relative of a float64 reference for any D <= 65536
**    (except where the exact result is near zero and cancellation rules).
**    Each float is widened to double before it is multiplied, so a product
**    of two floats is exact.
**  - The four reductions (dot, sum of squares, the cosine triple, squared
**    L2) have one implementation per instruction set:
**
**        level   where                  accumulators (16 double lanes)
**        scalar  everywhere (reference) double[16]
**        sse2    x86-64 (baseline)      8 x __m128d, mul + add
**        avx2    x86-64 with AVX2, FMA  4 x __m256d, FMA
**        avx512  x86-64 with AVX-512F   2 x __m512d, FMA
**        neon    aarch64                8 x float64x2_t, FMA
**
**    Every path adds in the same order: element i goes to lane i % 16, the
**    last n % 16 elements to a zero-padded block, and the lanes are folded
**    in halves (lane j += lane j+h, h = 8, 4, 2, 1). With exact products,
**    FMA or not, dot, norm2 and cosine are therefore bit-identical on every
**    path and every machine; l2, whose squares are rounded, may differ in
**    the last bit between the FMA paths and scalar/sse2. The results are
**    within ~1e-16 relative of one-accumulator summation.
**  - embed_copy_norm2 (decode + check + norm2 in one pass) is fused on avx2.
**  - The path is chosen once, on first use, for the CPU the code runs on.
**    The x86-64 paths are compiled with __attribute__((target(...))), so the
**    library needs only the x86-64 baseline; __builtin_cpu_supports (which
**    also checks that the OS saves the wider registers) tells which run.
**    The widest runs, but AVX2 before AVX-512: a 384-dim dot took 29 vs 45
**    ns on an AMD Zen 4 (512-bit converts and FMAs split in halves), 40.7
**    vs 45.1 ns on an Intel Xeon VM. Results are the same on every path,
**    so the choice changes speed only; AVX-512 runs when forced.
**    embed_kernels_force() pins a level, for tests and benchmarks. The
**    choice is one atomic pointer to a table of functions, so concurrent
**    first calls are harmless.
**  - Element-wise results (add, sub, scale, normalize) are float32 math.
**  - Conventions follow PyTorch: cosine_similarity clamps each norm at
**    eps = 1e-8, so a zero vector has similarity 0; normalize divides by
**    max(norm, 1e-12); embedding_renorm_ scales by max_norm / (norm + 1e-7).
*/
#include <math.h>
#include <string.h>

#include "core/core.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EMBED_HAVE_X86 1
#include <immintrin.h>
#endif
#if defined(__aarch64__) && (defined(__GNUC__) || defined(__clang__))
#define EMBED_HAVE_NEON 1
#include <arm_neon.h>
#endif

/* The reductions of one instruction set. cos3 sets out[0] = a.b,
** out[1] = a.a, out[2] = b.b in one pass. */
typedef struct kernel_set {
  int level;
  const char *name;
  double (*dot)(const float *a, const float *b, int64_t n);
  double (*sumsq)(const float *v, int64_t n);
  void (*cos3)(const float *a, const float *b, int64_t n, double out[3]);
  double (*l2sq)(const float *a, const float *b, int64_t n);
} kernel_set;

/* ------------------------------------------------------------------------
** The order of the additions, the same on every path: element i goes to
** lane i % 16 of 16 double accumulators; the last n % 16 elements are
** copied to a zero-padded block of 16 (0 * 0 adds nothing); the lanes are
** then folded in halves, lane j += lane j + h for h = 8, 4, 2, 1. A product
** of two floats is exact in double, so FMA or mul + add give the same sums.
*/
#define LANES 16

/* The helpers are always inlined, so op is a constant in each kernel, and
** the loops over accumulators fully unrolled, so these live in registers. */
#define INLINE static inline __attribute__((always_inline))
#define EMBED_UNROLL _Pragma("GCC unroll 8")

/* The last r (< 16) floats at a and b, zero-padded to one block each. */
static void pad_block(const float *a, const float *b, int64_t r,
                      float ta[LANES], float tb[LANES]) {
  memset(ta, 0, LANES * sizeof(float));
  memset(tb, 0, LANES * sizeof(float));
  memcpy(ta, a, (size_t)r * sizeof(float));
  if (b) memcpy(tb, b, (size_t)r * sizeof(float));
}

/* ------------------------------------------------------------------------
** scalar: the reference, portable C.
*/
static double fold_scalar(double s[LANES]) {
  int h, j;
  for (h = LANES / 2; h >= 1; h /= 2)
    for (j = 0; j < h; j++) s[j] += s[j + h];
  return s[0];
}

static inline double load1(const float *p) { /* any alignment */
  float x;
  memcpy(&x, p, sizeof(x));
  return (double)x;
}

/* op: 0 dot a.b, 1 sum of squares a.a, 2 squared L2 (a-b).(a-b) */
INLINE void block_scalar(const float *a, const float *b, int op,
                         double s[LANES]) {
  int j;
  for (j = 0; j < LANES; j++) {
    double x = load1(a + j), y = op == 1 ? x : load1(b + j);
    if (op == 2) x = y = x - y;
    s[j] += x * y;
  }
}

INLINE double reduce_scalar(const float *a, const float *b, int64_t n, int op) {
  double s[LANES] = {0};
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES) block_scalar(a + i, b + i, op, s);
  if (i < n) {
    pad_block(a + i, op == 1 ? 0 : b + i, n - i, ta, tb);
    block_scalar(ta, tb, op, s);
  }
  return fold_scalar(s);
}

static double dot_scalar(const float *a, const float *b, int64_t n) {
  return reduce_scalar(a, b, n, 0);
}

static double sumsq_scalar(const float *v, int64_t n) {
  return reduce_scalar(v, v, n, 1);
}

static void cos3_block_scalar(const float *a, const float *b, double d[LANES],
                              double p[LANES], double q[LANES]) {
  int j;
  for (j = 0; j < LANES; j++) {
    double x = load1(a + j), y = load1(b + j);
    d[j] += x * y;
    p[j] += x * x;
    q[j] += y * y;
  }
}

static void cos3_scalar(const float *a, const float *b, int64_t n,
                        double out[3]) {
  double d[LANES] = {0}, p[LANES] = {0}, q[LANES] = {0};
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES) cos3_block_scalar(a + i, b + i, d, p, q);
  if (i < n) {
    pad_block(a + i, b + i, n - i, ta, tb);
    cos3_block_scalar(ta, tb, d, p, q);
  }
  out[0] = fold_scalar(d);
  out[1] = fold_scalar(p);
  out[2] = fold_scalar(q);
}

static double l2sq_scalar(const float *a, const float *b, int64_t n) {
  return reduce_scalar(a, b, n, 2);
}

static const kernel_set kernels_scalar = {EMBED_KERNELS_SCALAR, "scalar",
                                          dot_scalar,           sumsq_scalar,
                                          cos3_scalar,          l2sq_scalar};

#ifdef EMBED_HAVE_X86
/* ------------------------------------------------------------------------
** sse2: the x86-64 baseline. Two floats widen to one __m128d; accumulator
** c[k] holds lanes 2k and 2k+1. No FMA (exact products need none; for l2
** the square is rounded before it is added, as in the scalar path).
*/
#define SSE2_LO(v) _mm_cvtps_pd(v)
#define SSE2_HI(v) _mm_cvtps_pd(_mm_movehl_ps(v, v))

INLINE void block_sse2(const float *a, const float *b, int op, __m128d c[8]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) {
    __m128 va = _mm_loadu_ps(a + 4 * k);
    __m128d xl = SSE2_LO(va), xh = SSE2_HI(va), yl = xl, yh = xh;
    if (op != 1) {
      __m128 vb = _mm_loadu_ps(b + 4 * k);
      yl = SSE2_LO(vb);
      yh = SSE2_HI(vb);
      if (op == 2) {
        xl = yl = _mm_sub_pd(xl, yl);
        xh = yh = _mm_sub_pd(xh, yh);
      }
    }
    c[2 * k] = _mm_add_pd(c[2 * k], _mm_mul_pd(xl, yl));
    c[2 * k + 1] = _mm_add_pd(c[2 * k + 1], _mm_mul_pd(xh, yh));
  }
}

INLINE double fold_sse2(__m128d c[8]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) c[k] = _mm_add_pd(c[k], c[k + 4]); /* h = 8 */
  c[0] = _mm_add_pd(c[0], c[2]);                             /* h = 4 */
  c[1] = _mm_add_pd(c[1], c[3]);
  c[0] = _mm_add_pd(c[0], c[1]); /* h = 2 */
  return _mm_cvtsd_f64(_mm_add_sd(c[0], _mm_unpackhi_pd(c[0], c[0])));
}

INLINE double reduce_sse2(const float *a, const float *b, int64_t n, int op) {
  __m128d c[8];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 8; k++) c[k] = _mm_setzero_pd();
  for (; i + LANES <= n; i += LANES) block_sse2(a + i, b + i, op, c);
  if (i < n) {
    pad_block(a + i, op == 1 ? 0 : b + i, n - i, ta, tb);
    block_sse2(ta, tb, op, c);
  }
  return fold_sse2(c);
}

static double dot_sse2(const float *a, const float *b, int64_t n) {
  return reduce_sse2(a, b, n, 0);
}

static double sumsq_sse2(const float *v, int64_t n) {
  return reduce_sse2(v, v, n, 1);
}

INLINE void cos3_block_sse2(const float *a, const float *b, __m128d d[8],
                            __m128d p[8], __m128d q[8]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) {
    __m128 va = _mm_loadu_ps(a + 4 * k), vb = _mm_loadu_ps(b + 4 * k);
    __m128d xl = SSE2_LO(va), xh = SSE2_HI(va);
    __m128d yl = SSE2_LO(vb), yh = SSE2_HI(vb);
    d[2 * k] = _mm_add_pd(d[2 * k], _mm_mul_pd(xl, yl));
    d[2 * k + 1] = _mm_add_pd(d[2 * k + 1], _mm_mul_pd(xh, yh));
    p[2 * k] = _mm_add_pd(p[2 * k], _mm_mul_pd(xl, xl));
    p[2 * k + 1] = _mm_add_pd(p[2 * k + 1], _mm_mul_pd(xh, xh));
    q[2 * k] = _mm_add_pd(q[2 * k], _mm_mul_pd(yl, yl));
    q[2 * k + 1] = _mm_add_pd(q[2 * k + 1], _mm_mul_pd(yh, yh));
  }
}

/* 24 accumulators in 16 registers: some live on the stack. */
static void cos3_sse2(const float *a, const float *b, int64_t n,
                      double out[3]) {
  __m128d d[8], p[8], q[8];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 8; k++) d[k] = p[k] = q[k] = _mm_setzero_pd();
  for (; i + LANES <= n; i += LANES) cos3_block_sse2(a + i, b + i, d, p, q);
  if (i < n) {
    pad_block(a + i, b + i, n - i, ta, tb);
    cos3_block_sse2(ta, tb, d, p, q);
  }
  out[0] = fold_sse2(d);
  out[1] = fold_sse2(p);
  out[2] = fold_sse2(q);
}

static double l2sq_sse2(const float *a, const float *b, int64_t n) {
  return reduce_sse2(a, b, n, 2);
}

static const kernel_set kernels_sse2 = {
    EMBED_KERNELS_SSE2, "sse2", dot_sse2, sumsq_sse2, cos3_sse2, l2sq_sse2};

/* ------------------------------------------------------------------------
** avx2: four floats widen to one __m256d (vcvtps2pd), FMA in double;
** accumulator s[k] holds lanes 4k..4k+3.
*/
#define AVX2_TARGET __attribute__((target("avx2,fma")))
#define AVX2_LD(p) _mm256_cvtps_pd(_mm_loadu_ps(p))

AVX2_TARGET INLINE double fold_avx2(__m256d s[4]) {
  __m256d t = _mm256_add_pd(_mm256_add_pd(s[0], s[2]), /* h = 8, then 4 */
                            _mm256_add_pd(s[1], s[3]));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(t), /* h = 2 */
                         _mm256_extractf128_pd(t, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

AVX2_TARGET INLINE void block_avx2(const float *a, const float *b, int op,
                                   __m256d s[4]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) {
    __m256d x = AVX2_LD(a + 4 * k), y;
    if (op == 1) {
      y = x;
    } else {
      y = AVX2_LD(b + 4 * k);
      if (op == 2) x = y = _mm256_sub_pd(x, y);
    }
    s[k] = _mm256_fmadd_pd(x, y, s[k]);
  }
}

AVX2_TARGET INLINE double reduce_avx2(const float *a, const float *b, int64_t n,
                                      int op) {
  __m256d s[4];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) s[k] = _mm256_setzero_pd();
  for (; i + LANES <= n; i += LANES) block_avx2(a + i, b + i, op, s);
  if (i < n) {
    pad_block(a + i, op == 1 ? 0 : b + i, n - i, ta, tb);
    block_avx2(ta, tb, op, s);
  }
  return fold_avx2(s);
}

AVX2_TARGET static double dot_avx2(const float *a, const float *b, int64_t n) {
  return reduce_avx2(a, b, n, 0);
}

AVX2_TARGET static double sumsq_avx2(const float *v, int64_t n) {
  return reduce_avx2(v, v, n, 1);
}

AVX2_TARGET INLINE void cos3_block_avx2(const float *a, const float *b,
                                        __m256d d[4], __m256d p[4],
                                        __m256d q[4]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) {
    __m256d x = AVX2_LD(a + 4 * k), y = AVX2_LD(b + 4 * k);
    d[k] = _mm256_fmadd_pd(x, y, d[k]);
    p[k] = _mm256_fmadd_pd(x, x, p[k]);
    q[k] = _mm256_fmadd_pd(y, y, q[k]);
  }
}

AVX2_TARGET static void cos3_avx2(const float *a, const float *b, int64_t n,
                                  double out[3]) {
  __m256d d[4], p[4], q[4];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) d[k] = p[k] = q[k] = _mm256_setzero_pd();
  for (; i + LANES <= n; i += LANES) cos3_block_avx2(a + i, b + i, d, p, q);
  if (i < n) {
    pad_block(a + i, b + i, n - i, ta, tb);
    cos3_block_avx2(ta, tb, d, p, q);
  }
  out[0] = fold_avx2(d);
  out[1] = fold_avx2(p);
  out[2] = fold_avx2(q);
}

AVX2_TARGET static double l2sq_avx2(const float *a, const float *b, int64_t n) {
  return reduce_avx2(a, b, n, 2);
}

static const kernel_set kernels_avx2 = {
    EMBED_KERNELS_AVX2, "avx2", dot_avx2, sumsq_avx2, cos3_avx2, l2sq_avx2};

/* ------------------------------------------------------------------------
** avx512: eight floats widen to one __m512d; s[0] holds lanes 0..7, s[1]
** lanes 8..15. Only AVX-512F instructions are used.
*/
#define AVX512_TARGET __attribute__((target("avx512f")))
#define AVX512_LD(p) _mm512_cvtps_pd(_mm256_loadu_ps(p))

AVX512_TARGET INLINE double fold_avx512(__m512d s0, __m512d s1) {
  __m512d s = _mm512_add_pd(s0, s1);                   /* h = 8 */
  __m256d t = _mm256_add_pd(_mm512_castpd512_pd256(s), /* h = 4 */
                            _mm512_extractf64x4_pd(s, 1));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(t), /* h = 2 */
                         _mm256_extractf128_pd(t, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

AVX512_TARGET INLINE void block_avx512(const float *a, const float *b, int op,
                                       __m512d s[2]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 2; k++) {
    __m512d x = AVX512_LD(a + 8 * k), y;
    if (op == 1) {
      y = x;
    } else {
      y = AVX512_LD(b + 8 * k);
      if (op == 2) x = y = _mm512_sub_pd(x, y);
    }
    s[k] = _mm512_fmadd_pd(x, y, s[k]);
  }
}

AVX512_TARGET INLINE double reduce_avx512(const float *a, const float *b,
                                          int64_t n, int op) {
  __m512d s[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  for (; i + LANES <= n; i += LANES) block_avx512(a + i, b + i, op, s);
  if (i < n) {
    pad_block(a + i, op == 1 ? 0 : b + i, n - i, ta, tb);
    block_avx512(ta, tb, op, s);
  }
  return fold_avx512(s[0], s[1]);
}

AVX512_TARGET static double dot_avx512(const float *a, const float *b,
                                       int64_t n) {
  return reduce_avx512(a, b, n, 0);
}

AVX512_TARGET static double sumsq_avx512(const float *v, int64_t n) {
  return reduce_avx512(v, v, n, 1);
}

AVX512_TARGET INLINE void cos3_block_avx512(const float *a, const float *b,
                                            __m512d d[2], __m512d p[2],
                                            __m512d q[2]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 2; k++) {
    __m512d x = AVX512_LD(a + 8 * k), y = AVX512_LD(b + 8 * k);
    d[k] = _mm512_fmadd_pd(x, y, d[k]);
    p[k] = _mm512_fmadd_pd(x, x, p[k]);
    q[k] = _mm512_fmadd_pd(y, y, q[k]);
  }
}

AVX512_TARGET static void cos3_avx512(const float *a, const float *b, int64_t n,
                                      double out[3]) {
  __m512d d[2], p[2], q[2];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 2; k++) d[k] = p[k] = q[k] = _mm512_setzero_pd();
  for (; i + LANES <= n; i += LANES) cos3_block_avx512(a + i, b + i, d, p, q);
  if (i < n) {
    pad_block(a + i, b + i, n - i, ta, tb);
    cos3_block_avx512(ta, tb, d, p, q);
  }
  out[0] = fold_avx512(d[0], d[1]);
  out[1] = fold_avx512(p[0], p[1]);
  out[2] = fold_avx512(q[0], q[1]);
}

AVX512_TARGET static double l2sq_avx512(const float *a, const float *b,
                                        int64_t n) {
  return reduce_avx512(a, b, n, 2);
}

static const kernel_set kernels_avx512 = {EMBED_KERNELS_AVX512, "avx512",
                                          dot_avx512,           sumsq_avx512,
                                          cos3_avx512,          l2sq_avx512};
#endif /* EMBED_HAVE_X86 */

#ifdef EMBED_HAVE_NEON
/* ------------------------------------------------------------------------
** neon: four floats widen to two float64x2_t (fcvtl, fcvtl2), FMA in
** double; c[k] holds lanes 2k and 2k+1. Advanced SIMD is part of every
** aarch64 CPU, so no check is needed.
*/
INLINE void widen_neon(const float *p, float64x2_t w[8]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) {
    float32x4_t v = vld1q_f32(p + 4 * k);
    w[2 * k] = vcvt_f64_f32(vget_low_f32(v));
    w[2 * k + 1] = vcvt_high_f64_f32(v);
  }
}

INLINE double fold_neon(float64x2_t c[8]) {
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) c[k] = vaddq_f64(c[k], c[k + 4]); /* h = 8 */
  c[0] = vaddq_f64(c[0], c[2]);                             /* h = 4 */
  c[1] = vaddq_f64(c[1], c[3]);
  c[0] = vaddq_f64(c[0], c[1]); /* h = 2 */
  return vgetq_lane_f64(c[0], 0) + vgetq_lane_f64(c[0], 1);
}

INLINE void block_neon(const float *a, const float *b, int op,
                       float64x2_t c[8]) {
  float64x2_t x[8], y[8];
  int k;
  widen_neon(a, x);
  if (op == 1) {
    EMBED_UNROLL
    for (k = 0; k < 8; k++) c[k] = vfmaq_f64(c[k], x[k], x[k]);
    return;
  }
  widen_neon(b, y);
  if (op == 2) EMBED_UNROLL
  for (k = 0; k < 8; k++) x[k] = y[k] = vsubq_f64(x[k], y[k]);
  EMBED_UNROLL
  for (k = 0; k < 8; k++) c[k] = vfmaq_f64(c[k], x[k], y[k]);
}

INLINE double reduce_neon(const float *a, const float *b, int64_t n, int op) {
  float64x2_t c[8];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 8; k++) c[k] = vdupq_n_f64(0);
  for (; i + LANES <= n; i += LANES) block_neon(a + i, b + i, op, c);
  if (i < n) {
    pad_block(a + i, op == 1 ? 0 : b + i, n - i, ta, tb);
    block_neon(ta, tb, op, c);
  }
  return fold_neon(c);
}

static double dot_neon(const float *a, const float *b, int64_t n) {
  return reduce_neon(a, b, n, 0);
}

static double sumsq_neon(const float *v, int64_t n) {
  return reduce_neon(v, v, n, 1);
}

INLINE void cos3_block_neon(const float *a, const float *b, float64x2_t d[8],
                            float64x2_t p[8], float64x2_t q[8]) {
  float64x2_t x[8], y[8];
  int k;
  widen_neon(a, x);
  widen_neon(b, y);
  EMBED_UNROLL
  for (k = 0; k < 8; k++) {
    d[k] = vfmaq_f64(d[k], x[k], y[k]);
    p[k] = vfmaq_f64(p[k], x[k], x[k]);
    q[k] = vfmaq_f64(q[k], y[k], y[k]);
  }
}

static void cos3_neon(const float *a, const float *b, int64_t n,
                      double out[3]) {
  float64x2_t d[8], p[8], q[8];
  float ta[LANES], tb[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 8; k++) d[k] = p[k] = q[k] = vdupq_n_f64(0);
  for (; i + LANES <= n; i += LANES) cos3_block_neon(a + i, b + i, d, p, q);
  if (i < n) {
    pad_block(a + i, b + i, n - i, ta, tb);
    cos3_block_neon(ta, tb, d, p, q);
  }
  out[0] = fold_neon(d);
  out[1] = fold_neon(p);
  out[2] = fold_neon(q);
}

static double l2sq_neon(const float *a, const float *b, int64_t n) {
  return reduce_neon(a, b, n, 2);
}

static const kernel_set kernels_neon = {
    EMBED_KERNELS_NEON, "neon", dot_neon, sumsq_neon, cos3_neon, l2sq_neon};
#endif /* EMBED_HAVE_NEON */

/* ------------------------------------------------------------------------
** Dispatch: the kernel set of each level, NULL where not compiled in.
*/
static const kernel_set *kernel_table(int level) {
  switch (level) {
    case EMBED_KERNELS_SCALAR:
      return &kernels_scalar;
#ifdef EMBED_HAVE_X86
    case EMBED_KERNELS_SSE2:
      return &kernels_sse2;
    case EMBED_KERNELS_AVX2:
      return &kernels_avx2;
    case EMBED_KERNELS_AVX512:
      return &kernels_avx512;
#endif
#ifdef EMBED_HAVE_NEON
    case EMBED_KERNELS_NEON:
      return &kernels_neon;
#endif
    default:
      return 0;
  }
}

int embed_kernels_supported(int level) {
  if (!kernel_table(level)) return 0;
#ifdef EMBED_HAVE_X86
  __builtin_cpu_init();
  if (level == EMBED_KERNELS_AVX2)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (level == EMBED_KERNELS_AVX512) return __builtin_cpu_supports("avx512f");
#endif
  return 1;
}

static const kernel_set *best_kernels(void) {
  int level;
#ifdef EMBED_HAVE_X86
  if (embed_kernels_supported(EMBED_KERNELS_AVX2))
    return kernel_table(EMBED_KERNELS_AVX2); /* see the top of the file */
#endif
  for (level = EMBED_KERNELS_COUNT - 1; level > EMBED_KERNELS_SCALAR; level--)
    if (embed_kernels_supported(level)) return kernel_table(level);
  return &kernels_scalar;
}

static const kernel_set *active_kernels; /* NULL until the first use */

static const kernel_set *kernels(void) {
  const kernel_set *k = __atomic_load_n(&active_kernels, __ATOMIC_ACQUIRE);
  if (!k) {
    k = best_kernels();
    __atomic_store_n(&active_kernels, k, __ATOMIC_RELEASE);
  }
  return k;
}

int embed_kernels_force(int level) {
  const kernel_set *k;
  if (level == EMBED_KERNELS_AUTO) {
    k = best_kernels();
  } else {
    if (!embed_kernels_supported(level)) return -1;
    k = kernel_table(level);
  }
  __atomic_store_n(&active_kernels, k, __ATOMIC_RELEASE);
  return 0;
}

int embed_kernels_active(void) {
  return kernels()->level;
}

const char *embed_kernels_name(void) {
  return kernels()->name;
}

const char *embed_kernels_level_name(int level) {
  static const char *const names[EMBED_KERNELS_COUNT] = {
      "scalar", "sse2", "avx2", "avx512", "neon"};
  if (level < 0 || level >= EMBED_KERNELS_COUNT) return "auto";
  return names[level];
}

/* ------------------------------------------------------------------------
** The public kernels.
*/
double embed_dot(const float *a, const float *b, int64_t n) {
  return kernels()->dot(a, b, n);
}

double embed_norm2(const float *v, int64_t n) {
  return sqrt(kernels()->sumsq(v, n));
}

/* embed_copy_norm2 on avx2: 16 floats loaded once, checked, stored, squared
** into sumsq_avx2's lanes (s[k]: 4k..4k+3), so the same sum bit for bit. */
#ifdef EMBED_HAVE_X86
AVX2_TARGET static double copy_sumsq_avx2(const unsigned char *src, int64_t n,
                                          float *out, int *bad) {
  const __m256i exp = _mm256_set1_epi32(0x7f800000);
  __m256i hit = _mm256_setzero_si256();
  __m256d s[4];
  float ta[LANES];
  int64_t i = 0;
  int k;
  EMBED_UNROLL
  for (k = 0; k < 4; k++) s[k] = _mm256_setzero_pd();
  for (; i + LANES <= n; i += LANES) {
    EMBED_UNROLL
    for (k = 0; k < 2; k++) { /* floats i + 8k .. i + 8k + 7 */
      __m256i u = _mm256_loadu_si256(
          (const __m256i *)(const void *)(src + 4 * i + 32 * k));
      __m256 x = _mm256_castsi256_ps(u);
      __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)),
              hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
      hit = _mm256_or_si256(hit,
                            _mm256_cmpeq_epi32(_mm256_and_si256(u, exp), exp));
      _mm256_storeu_ps(out + i + 8 * k, x);
      s[2 * k] = _mm256_fmadd_pd(lo, lo, s[2 * k]);
      s[2 * k + 1] = _mm256_fmadd_pd(hi, hi, s[2 * k + 1]);
    }
  }
  *bad = !_mm256_testz_si256(hit, hit);
  if (i < n) {
    memcpy(out + i, src + 4 * i, (size_t)(n - i) * sizeof(float));
    *bad |= embed_first_nonfinite(out + i, n - i) >= 0;
    pad_block(out + i, 0, n - i, ta, ta);
    block_avx2(ta, ta, 1, s);
  }
  return fold_avx2(s);
}
#endif

double embed_copy_norm2(const void *blob, int64_t n, float *out) {
  embed_error err;
#ifdef EMBED_HAVE_X86
  if (kernels()->level == EMBED_KERNELS_AVX2) {
    int bad;
    double s = copy_sumsq_avx2((const unsigned char *)blob, n, out, &bad);
    return bad ? -1.0 : sqrt(s);
  }
#endif
  if (embed_blob_decode(blob, n, out, &err) != EMBED_OK) return -1.0;
  return embed_norm2(out, n);
}

double embed_norm_p(const float *v, int64_t n, double p) {
  double s = 0;
  int64_t i;
  if (p == 2.0) return embed_norm2(v, n);
  if (isinf(p)) {
    for (i = 0; i < n; i++) {
      double x = fabs((double)v[i]);
      if (x > s) s = x;
    }
    return s;
  }
  if (p == 1.0) {
    for (i = 0; i < n; i++) s += fabs((double)v[i]);
    return s;
  }
  for (i = 0; i < n; i++) s += pow(fabs((double)v[i]), p);
  return pow(s, 1.0 / p);
}

double embed_cosine_similarity(const float *a, const float *b, int64_t n) {
  double r[3], na, nb, sim;
  kernels()->cos3(a, b, n, r);
  na = sqrt(r[1]);
  nb = sqrt(r[2]);
  if (na < EMBED_COSINE_EPS) na = EMBED_COSINE_EPS;
  if (nb < EMBED_COSINE_EPS) nb = EMBED_COSINE_EPS;
  sim = r[0] / (na * nb);
  if (sim > 1.0) sim = 1.0;
  if (sim < -1.0) sim = -1.0;
  return sim;
}

double embed_l2_distance(const float *a, const float *b, int64_t n) {
  return sqrt(kernels()->l2sq(a, b, n));
}

void embed_add(const float *a, const float *b, int64_t n, float *out) {
  int64_t i;
  for (i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void embed_sub(const float *a, const float *b, int64_t n, float *out) {
  int64_t i;
  for (i = 0; i < n; i++) out[i] = a[i] - b[i];
}

void embed_scale(const float *v, float s, int64_t n, float *out) {
  int64_t i;
  for (i = 0; i < n; i++) out[i] = v[i] * s;
}

void embed_normalize(const float *v, int64_t n, float *out) {
  double norm = embed_norm2(v, n);
  int64_t i;
  if (norm < EMBED_NORMALIZE_EPS) norm = EMBED_NORMALIZE_EPS;
  for (i = 0; i < n; i++) out[i] = (float)((double)v[i] / norm);
}

int embed_renorm(float *v, int64_t n, double max_norm, double norm_type) {
  double norm = embed_norm_p(v, n, norm_type);
  float scale;
  if (!(norm > max_norm)) return 0;
  scale = (float)(max_norm / (norm + EMBED_MAX_NORM_EPS));
  embed_scale(v, scale, n, v);
  return 1;
}
