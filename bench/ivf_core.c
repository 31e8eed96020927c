/*
** ivf_core.c - timing of the IVF core kernels (codes.c, cells.c).
**
**     cc -O2 -Iext -o build/ivf_core bench/ivf_core.c ext/core/[a-z]*.c -lm
**     build/ivf_core [reps]
**
** Prints, per repetition: embed_codes_dot ns/row (dim 384, 16384 rows, on
** the scalar and AVX2 paths), embed_cells_train seconds (n = 64000, dim
** 384, nlist 1000, ngroups 32, 10 iterations), embed_cells_assign us/row
** (groups_probed 1 and 2), and then the medians. The data are Gaussian
** clusters, so the k-means has structure to find.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

static double bench_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static uint64_t bench_rng = 1;
static float bench_gauss(void) { /* sum of 4 uniforms: roughly normal */
  double s = 0;
  int i;
  for (i = 0; i < 4; i++) {
    bench_rng = embed_mix64(bench_rng);
    s += (double)(bench_rng >> 11) / 9007199254740992.0 - 0.5;
  }
  return (float)(s * 1.7);
}

static int bench_cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), bench_cmp);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define REPS_MAX 20

int main(int argc, char **argv) {
  enum { D = 384, NC = 16384, N = 64000, NLIST = 1000, NA = 20000, NCL = 200 };
  int reps = argc > 1 ? atoi(argv[1]) : 5, r;
  double t_dot_s[REPS_MAX], t_dot_a[REPS_MAX], t_train[REPS_MAX],
      t_as1[REPS_MAX], t_as2[REPS_MAX];
  float *rows = malloc((size_t)N * D * sizeof(float));
  float *centres = malloc((size_t)NCL * D * sizeof(float));
  uint8_t *codes = malloc((size_t)NC * D);
  float *out = malloc(NC * sizeof(float)), qs[D], offset[D], scale[D];
  float *cent = malloc((size_t)NLIST * D * sizeof(float));
  float *gcent = malloc((size_t)NLIST * D * sizeof(float));
  int64_t *first = malloc((NLIST + 1) * sizeof(int64_t)), i, j;
  embed_cells cells;
  embed_error err;
  void *scratch = malloc(embed_cells_scratch_bytes(N, D, NLIST));
  volatile float sink = 0;
  if (!rows || !centres || !codes || !out || !cent || !gcent || !first ||
      !scratch)
    return 1;
  if (reps > REPS_MAX) reps = REPS_MAX;
  for (i = 0; i < NCL * D; i++) centres[i] = bench_gauss() * 2;
  for (i = 0; i < N; i++)
    for (j = 0; j < D; j++)
      rows[i * D + j] = centres[(i % NCL) * D + j] + bench_gauss();
  embed_codes_fit(rows, 8192, D, out, offset, scale);
  for (i = 0; i < NC; i++)
    embed_codes_encode(rows + i * D, D, offset, scale, codes + i * D);
  embed_codes_query(rows + 5 * D, D, offset, scale, qs);
  cells.dim = D;
  cells.nlist = NLIST;
  cells.ngroups = embed_cells_groups(NLIST);
  cells.centroids = cent;
  cells.group_centroids = gcent;
  cells.group_first = first;
  printf("kernels: %s; ngroups %lld\n", embed_kernels_name(),
         (long long)cells.ngroups);
  for (r = 0; r < reps; r++) {
    double t;
    int k;
    embed_kernels_force(EMBED_KERNELS_SCALAR);
    t = bench_now();
    for (k = 0; k < 20; k++) embed_codes_dot(qs, codes, D, NC, D, out);
    t_dot_s[r] = (bench_now() - t) / (20.0 * NC) * 1e9;
    sink += out[7];
    embed_kernels_force(EMBED_KERNELS_AUTO);
    t = bench_now();
    for (k = 0; k < 20; k++) embed_codes_dot(qs, codes, D, NC, D, out);
    t_dot_a[r] = (bench_now() - t) / (20.0 * NC) * 1e9;
    sink += out[7];
    t = bench_now();
    if (embed_cells_train(rows, N, 42, 10, scratch, &cells, &err)) {
      fprintf(stderr, "train: %s\n", err.text);
      return 1;
    }
    t_train[r] = bench_now() - t;
    t = bench_now();
    for (i = 0; i < NA; i++)
      sink += (float)embed_cells_assign(&cells, rows + i * D, 1, NULL);
    t_as1[r] = (bench_now() - t) / NA * 1e6;
    t = bench_now();
    for (i = 0; i < NA; i++)
      sink += (float)embed_cells_assign(&cells, rows + i * D, 2, NULL);
    t_as2[r] = (bench_now() - t) / NA * 1e6;
    printf(
        "rep %d: dot scalar %.2f ns/row, dot %s %.2f ns/row, train %.2f s, "
        "assign(1) %.2f us/row, assign(2) %.2f us/row\n",
        r, t_dot_s[r], embed_kernels_name(), t_dot_a[r], t_train[r], t_as1[r],
        t_as2[r]);
    fflush(stdout);
  }
  printf(
      "median of %d: dot scalar %.2f ns/row, dot auto %.2f ns/row, train "
      "%.2f s, assign(1) %.2f us/row, assign(2) %.2f us/row\n",
      reps, bench_median(t_dot_s, reps), bench_median(t_dot_a, reps),
      bench_median(t_train, reps), bench_median(t_as1, reps),
      bench_median(t_as2, reps));
  (void)sink;
  return 0;
}
