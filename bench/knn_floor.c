/*
** knn_floor.c - the floor for exact k-nearest-neighbour search by cosine:
** the vectors held contiguously in memory, their norms precomputed, one
** pass of dot products per query, no database. bench_knn.py compiles it
** with -O3 -march=native and compares the embed extension to it.
**
**     cc -O3 -march=native -o knn_floor bench/knn_floor.c -lm
**     ./knn_floor DATA N DIM QUERIES NQ K
**
** DATA is N x DIM float32 values (native byte order, row-major), QUERIES
** NQ x DIM. For each of two accumulations, f32 (what a float SIMD library
** does) and f64 (widened to double, as embed's kernels do), it runs query
** 0 once (the cold query: the first after loading), then every query once
** (the warm queries), and prints one line per run:
**
**     f32 cold 0 ms 12.345 ids 17 4 99 ...
**     f32 warm 0 ms 11.002 ids 17 4 99 ...
**
** ids are the K rows (0-based) of highest cosine similarity, best first,
** ties by the smaller row. Single-threaded, like a SQLite query. The line
** "load ms ... norms ms ..." reports the one-time costs.
*/
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef float v16f __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* float accumulation, 4 x 16 lanes */
static float dot_f32(const float *a, const float *b, int64_t n) {
  v16f s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x, y;
  float s = 0;
  int64_t i = 0;
  int j;
  for (; i + 64 <= n; i += 64) {
    memcpy(&x, a + i, 64), memcpy(&y, b + i, 64), s0 += x * y;
    memcpy(&x, a + i + 16, 64), memcpy(&y, b + i + 16, 64), s1 += x * y;
    memcpy(&x, a + i + 32, 64), memcpy(&y, b + i + 32, 64), s2 += x * y;
    memcpy(&x, a + i + 48, 64), memcpy(&y, b + i + 48, 64), s3 += x * y;
  }
  for (; i + 16 <= n; i += 16)
    memcpy(&x, a + i, 64), memcpy(&y, b + i, 64), s0 += x * y;
  s0 = (s0 + s1) + (s2 + s3);
  for (j = 0; j < 16; j++) s += s0[j];
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/* double accumulation, 4 x 8 lanes, each float widened first */
static double dot_f64(const float *a, const float *b, int64_t n) {
  v8d s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  v8f x, y;
  double s = 0;
  int64_t i = 0;
  int j;
#define STEP(acc, off)           \
  memcpy(&x, a + i + (off), 32); \
  memcpy(&y, b + i + (off), 32); \
  acc += __builtin_convertvector(x, v8d) * __builtin_convertvector(y, v8d)
  for (; i + 32 <= n; i += 32) {
    STEP(s0, 0);
    STEP(s1, 8);
    STEP(s2, 16);
    STEP(s3, 24);
  }
  for (; i + 8 <= n; i += 8) {
    STEP(s0, 0);
  }
#undef STEP
  s0 = (s0 + s1) + (s2 + s3);
  for (j = 0; j < 8; j++) s += s0[j];
  for (; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

typedef struct hit {
  double score;
  int64_t id;
} hit;

/* Keep the k best (score descending, then id ascending) in top[0..*m). */
static void push(hit *top, int *m, int k, double score, int64_t id) {
  int i;
  /* rows come in ascending order, so on a tie the one already kept wins */
  if (*m == k && !(score > top[k - 1].score)) return;
  i = *m < k ? (*m)++ : k - 1;
  while (i > 0 && score > top[i - 1].score) {
    top[i] = top[i - 1];
    i--;
  }
  top[i].score = score;
  top[i].id = id;
}

static int read_all(const char *path, void *buf, size_t bytes) {
  FILE *f = fopen(path, "rb");
  size_t got;
  if (!f) return -1;
  got = fread(buf, 1, bytes, f);
  fclose(f);
  return got == bytes ? 0 : -1;
}

int main(int argc, char **argv) {
  int64_t n, dim, i;
  int nq, k, mode;
  float *data, *queries, *inv32;
  double *inv64, t0, t_load, t_norms;
  hit *top;
  if (argc != 7) {
    fprintf(stderr, "usage: %s DATA N DIM QUERIES NQ K\n", argv[0]);
    return 2;
  }
  n = atoll(argv[2]);
  dim = atoll(argv[3]);
  nq = atoi(argv[5]);
  k = atoi(argv[6]);
  data = aligned_alloc(64, (size_t)((n * dim * 4 + 63) / 64 * 64));
  queries = malloc((size_t)(nq * dim) * sizeof(float));
  inv32 = malloc((size_t)n * sizeof(float));
  inv64 = malloc((size_t)n * sizeof(double));
  top = malloc((size_t)k * sizeof(hit));
  if (!data || !queries || !inv32 || !inv64 || !top || n < 1 || k < 1) {
    fprintf(stderr, "knn_floor: out of memory or bad arguments\n");
    return 1;
  }
  t0 = now_ms();
  if (read_all(argv[1], data, (size_t)(n * dim) * sizeof(float)) ||
      read_all(argv[4], queries, (size_t)(nq * dim) * sizeof(float))) {
    fprintf(stderr, "knn_floor: cannot read %s or %s\n", argv[1], argv[4]);
    return 1;
  }
  t_load = now_ms() - t0;
  t0 = now_ms();
  for (i = 0; i < n; i++) { /* 1 / max(norm, 1e-8), as torch clamps */
    double norm = sqrt(dot_f64(data + i * dim, data + i * dim, dim));
    inv64[i] = 1.0 / (norm > 1e-8 ? norm : 1e-8);
    inv32[i] = (float)inv64[i];
  }
  t_norms = now_ms() - t0;
  printf("load ms %.3f norms ms %.3f\n", t_load, t_norms);
  for (mode = 0; mode < 2; mode++) {
    const char *name = mode == 0 ? "f32" : "f64";
    int run;
    for (run = -1; run < nq; run++) { /* run -1: the cold query 0 */
      const float *qv = queries + (int64_t)(run < 0 ? 0 : run) * dim;
      int m = 0, j;
      double ms;
      t0 = now_ms();
      if (mode == 0) {
        for (i = 0; i < n; i++)
          push(top, &m, k, dot_f32(qv, data + i * dim, dim) * inv32[i], i);
      } else {
        for (i = 0; i < n; i++)
          push(top, &m, k, dot_f64(qv, data + i * dim, dim) * inv64[i], i);
      }
      ms = now_ms() - t0;
      printf("%s %s %d ms %.3f ids", name, run < 0 ? "cold" : "warm",
             run < 0 ? 0 : run, ms);
      for (j = 0; j < m; j++) printf(" %lld", (long long)top[j].id);
      printf("\n");
    }
  }
  free(data);
  free(queries);
  free(inv32);
  free(inv64);
  free(top);
  return 0;
}
