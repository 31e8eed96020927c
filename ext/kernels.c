/*
** kernels.c - the vector math behind the SQL functions, the table and search.
**
** Usage (from C; SQLite is not needed here):
**
**     double s = embed_cosine_similarity(a, b, n);   // in [-1, 1]
**     embed_renorm(row, n, 1.0, 2.0);                // max_norm=1, norm_type=2
**
** Design:
**  - Inputs are aligned float32 arrays (callers decode BLOBs first).
**  - Reductions accumulate in double, so dot products, norms and distances
**    are within 1e-5 relative of a float64 reference for any D <= 65536
**    (except where the exact result is near zero and cancellation rules).
**  - Element-wise results (add, sub, scale, normalize) are float32 math.
**  - Conventions follow PyTorch: cosine_similarity clamps each norm at
**    eps = 1e-8, so a zero vector has similarity 0; normalize divides by
**    max(norm, 1e-12); embedding_renorm_ scales by max_norm / (norm + 1e-7).
*/
#include <math.h>

#define EMBED_NO_SQLITE
#include "embed_int.h"

double embed_dot(const float *a, const float *b, int64_t n) {
  double s = 0;
  int64_t i;
  for (i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
  return s;
}

double embed_norm2(const float *v, int64_t n) { return sqrt(embed_dot(v, v, n)); }

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
  double dot = 0, na = 0, nb = 0, sim;
  int64_t i;
  for (i = 0; i < n; i++) {
    double x = a[i], y = b[i];
    dot += x * y;
    na += x * x;
    nb += y * y;
  }
  na = sqrt(na);
  nb = sqrt(nb);
  if (na < EMBED_COSINE_EPS) na = EMBED_COSINE_EPS;
  if (nb < EMBED_COSINE_EPS) nb = EMBED_COSINE_EPS;
  sim = dot / (na * nb);
  if (sim > 1.0) sim = 1.0;
  if (sim < -1.0) sim = -1.0;
  return sim;
}

double embed_l2_distance(const float *a, const float *b, int64_t n) {
  double s = 0;
  int64_t i;
  for (i = 0; i < n; i++) {
    double d = (double)a[i] - (double)b[i];
    s += d * d;
  }
  return sqrt(s);
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

int64_t embed_first_nonfinite(const float *v, int64_t n) {
  int64_t i;
  for (i = 0; i < n; i++)
    if (!isfinite(v[i])) return i;
  return -1;
}

int embed_renorm(float *v, int64_t n, double max_norm, double norm_type) {
  double norm = embed_norm_p(v, n, norm_type);
  float scale;
  if (!(norm > max_norm)) return 0;
  scale = (float)(max_norm / (norm + EMBED_MAX_NORM_EPS));
  embed_scale(v, scale, n, v);
  return 1;
}
