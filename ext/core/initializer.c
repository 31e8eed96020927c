/*
** initializer.c - the initial vector of a row, a pure function of
** (init, seed, id), identical on every machine and build.
**
** Usage (from C; SQLite is not needed here):
**
**     embed_initial_row(EMBED_INIT_NORMAL, seed, id, out, dim);
**
** The algorithm (also in the README, so other languages can reproduce it):
**
**   mix(x)        SplitMix64's finalizer: x += 0x9E3779B97F4A7C15;
**                 x = (x ^ x>>30) * 0xBF58476D1CE4E5B9;
**                 x = (x ^ x>>27) * 0x94D049BB133111EB; return x ^ x>>31
**                 (all arithmetic mod 2^64).
**   key           mix(mix(seed) ^ id), seed and id as two's-complement u64.
**   bits(j)       mix(key ^ j) for element counter j = 0, 1, 2, ...
**   uniform(j)    (bits(j) >> 11) * 2^-53, a double in [0, 1).
**   init=uniform  x[j] = ((bits(j) >> 40) - 2^23) * 2^-23, exact in float32
**                 and in [-1, 1).
**   init=normal   Box-Muller on pairs: for p = 0, 1, ...:
**                   u1 = 1 - uniform(2p) in (0, 1], u2 = uniform(2p + 1),
**                   r = sqrt(-2 ln u1),
**                   x[2p] = r cos(2 pi u2), x[2p+1] = r sin(2 pi u2)
**                 computed in double and rounded to float32 (an odd D drops
**                 the last sine). Mean 0, standard deviation 1, like
**                 torch.nn.init.normal_.
**   init=zeros    all zeros.
**
** The counter-based design means rows can be created in any order, alone or
** in bulk, and still get the same values.
*/
#include <math.h>

#include "core/core.h"

#define EMBED_TWO_PI 6.283185307179586476925286766559

uint64_t embed_mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

static double uniform01(uint64_t key, uint64_t j) {
  return (double)(embed_mix64(key ^ j) >> 11) * (1.0 / 9007199254740992.0);
}

void embed_initial_row(embed_init init, uint64_t seed, int64_t id, float *out,
                       int64_t dim) {
  uint64_t key = embed_mix64(embed_mix64(seed) ^ (uint64_t)id);
  int64_t j;
  switch (init) {
    case EMBED_INIT_ZEROS:
      for (j = 0; j < dim; j++) out[j] = 0.0f;
      break;
    case EMBED_INIT_UNIFORM:
      for (j = 0; j < dim; j++) {
        int64_t m = (int64_t)(embed_mix64(key ^ (uint64_t)j) >> 40);
        out[j] = (float)((double)(m - 8388608) * (1.0 / 8388608.0));
      }
      break;
    case EMBED_INIT_NORMAL:
    default:
      for (j = 0; j < dim; j += 2) {
        double u1 = 1.0 - uniform01(key, (uint64_t)j);
        double u2 = uniform01(key, (uint64_t)j + 1);
        double r = sqrt(-2.0 * log(u1));
        out[j] = (float)(r * cos(EMBED_TWO_PI * u2));
        if (j + 1 < dim) out[j + 1] = (float)(r * sin(EMBED_TWO_PI * u2));
      }
      break;
  }
}
