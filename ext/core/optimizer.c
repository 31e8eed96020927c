/*
** optimizer.c - one optimizer step on one row, as PyTorch's sparse-gradient
** optimizers compute it (no SQLite here; training.c reads and writes rows).
**
** Usage:
**
**     int64_t n = embed_optimizer_state_size(&cfg, dim);  // floats of state
**     if (row has no state yet) embed_optimizer_state_init(&cfg, state, dim);
**     embed_optimizer_step(&cfg, w, g, state, lr, step, dim);
**
** g is the row's coalesced gradient (only read); step is the table's step
** count including this step (1 on the first embed_update call).
**
** An optimizer whose new state is a function of the gradient and the old
** state alone (embed_optimizer_splits: all but sgd with weight_decay) can
** also be stepped in two parts, the same bits as one step:
**
**     embed_optimizer_state_step(&cfg, g, state, step, dim);   // state
**     embed_optimizer_weight_step(&cfg, w, g, state, lr, step, dim);
**
** so a batch can move every state first and then every weight (one pass
** over each b-tree, table/train.c).
**
** The formulas, element-wise in float32 in torch's order of operations
** (torch/optim/{sgd,adagrad,sparse_adam}.py, torch 1.13); torch's
** `a.add_(b, alpha=c)` rounds once, so those steps use fmaf(c, b, a):
**
**   sgd      d = maximize ? -g : g;  d = d + weight_decay * w;
**            momentum: buf = step == 1 ? d
**                                      : momentum * buf + (1 - dampening) * d;
**                      d = nesterov ? d + momentum * buf : buf;
**            w = w + (-lr) * d
**   adagrad  g = maximize ? -g : g;  clr = lr / (1 + (step - 1) * lr_decay);
**            sum = sum + g * g  (sum starts at initial_accumulator_value);
**            w = w + (-clr) * (g / (sqrt(sum) + eps))
**   adam     (SparseAdam) g = maximize ? -g : g;
**            dm = (g - m) * (1 - beta1);      dv = (g * g - v) * (1 - beta2);
**            m = m + dm;  v = v + dv;
**            size = lr * sqrt(1 - beta2^step) / (1 - beta1^step);
**            w = w + (-size) * ((dm + m_old) / (sqrt(dv + v_old) + eps))
**
** State per row: sgd with momentum D floats (the buffer, zeros before the
** row's first step), adagrad D floats (the sum), adam 2 D floats (m then v);
** sgd without momentum none. torch's momentum buffer is one tensor for the
** whole table, created at the optimizer's first step: hence `step == 1`
** above, and training.c also steps (with g = 0) every row that has a buffer,
** as torch's sparse buffer moves all its rows each step; weight_decay makes
** torch's gradient dense, so then every row is stepped.
*/
#include <math.h>

#include "core/core.h"

int64_t embed_optimizer_state_size(const embed_config *cfg, int64_t dim) {
  switch (cfg->optimizer) {
    case EMBED_OPTIMIZER_SGD:
      return cfg->momentum != 0 ? dim : 0;
    case EMBED_OPTIMIZER_ADAGRAD:
      return dim;
    case EMBED_OPTIMIZER_ADAM:
      return 2 * dim;
  }
  return 0;
}

void embed_optimizer_state_init(const embed_config *cfg, float *state,
                                int64_t dim) {
  int64_t i, n = embed_optimizer_state_size(cfg, dim);
  float init = cfg->optimizer == EMBED_OPTIMIZER_ADAGRAD
                   ? (float)cfg->initial_accumulator_value
                   : 0.0f;
  for (i = 0; i < n; i++) state[i] = init;
}

/* The loops below are written once (OPT_LOOPS) and compiled twice on
** x86: with AVX2 and FMA (vectorized), chosen at run time when the CPU
** has them, and without, where fmaf is a libm call. fmaf rounds once either
** way, so both give the same bits; the order of every other operation is
** torch's. Hoisting the option tests out of the element loop lets plain sgd and
** the other common cases run as straight (vectorizable) loops. */
/* a * b + c stays two roundings where torch rounds twice: no contraction
** into an FMA, which GCC does by default wherever the target has one (the
** FMA build here, every ARM64 build); restored at the end of the file, for
** the one-file build. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off", "tree-vectorize")
#endif
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define OPT_DISPATCH 1
#define OPT_INLINE static inline __attribute__((always_inline))
#else
#define OPT_DISPATCH 0
#define OPT_INLINE static inline
#endif

/* Which part of a step a loop computes: all of it, or (for an optimizer
** whose new state does not depend on the weight: embed_optimizer_splits)
** the new state alone, then the weight from the gradient and that state.
** Either way the same operations in the same order, so the same bits. */
typedef enum opt_part { OPT_BOTH, OPT_STATE, OPT_WEIGHT } opt_part;

/* sgd: d = maximize ? -g : g, then weight decay, momentum, the step. The
** buffer is a function of d and the old buffer only, so without weight
** decay it splits; with it, d (hence the buffer) depends on w. Each option
** is a parameter here so that opt_sgd_body can pass constants for the
** common combinations, where the loop is straight and vectorizes. */
OPT_INLINE void opt_sgd_loop(opt_part part, int maximize, int decay,
                             int momentum, int nesterov, int first,
                             float *restrict w, const float *restrict d,
                             float *restrict buf, float wd, float mom,
                             float keep, float alpha, int64_t dim) {
  int64_t i;
  for (i = 0; i < dim; i++) {
    float x = maximize ? -d[i] : d[i];
    if (decay) x = fmaf(wd, w[i], x);
    if (momentum) {
      float b = part == OPT_WEIGHT ? buf[i]
                : first            ? x
                                   : fmaf(keep, x, buf[i] * mom);
      if (part != OPT_WEIGHT) buf[i] = b;
      if (part == OPT_STATE) continue;
      x = nesterov ? fmaf(mom, b, x) : b;
    }
    w[i] = fmaf(alpha, x, w[i]);
  }
}

OPT_INLINE void opt_sgd_body(const embed_config *cfg, opt_part part,
                             float *restrict w, const float *restrict d,
                             float *restrict buf, double lr, int64_t step,
                             int64_t dim) {
  const float wd = (float)cfg->weight_decay, mom = (float)cfg->momentum;
  const float keep = (float)(1.0 - cfg->dampening), alpha = (float)-lr;
  const int momentum = cfg->momentum != 0;
  if (cfg->maximize || cfg->weight_decay != 0 || cfg->nesterov)
    opt_sgd_loop(part, cfg->maximize, cfg->weight_decay != 0, momentum,
                 cfg->nesterov, step == 1, w, d, buf, wd, mom, keep, alpha,
                 dim);
  else if (!momentum)
    opt_sgd_loop(part, 0, 0, 0, 0, 0, w, d, buf, wd, mom, keep, alpha, dim);
  else if (step == 1)
    opt_sgd_loop(part, 0, 0, 1, 0, 1, w, d, buf, wd, mom, keep, alpha, dim);
  else
    opt_sgd_loop(part, 0, 0, 1, 0, 0, w, d, buf, wd, mom, keep, alpha, dim);
}

OPT_INLINE void opt_adagrad_body(const embed_config *cfg, opt_part part,
                                 float *restrict w, const float *restrict g,
                                 float *restrict sum, double lr, int64_t step,
                                 int64_t dim) {
  const double clr = lr / (1.0 + (double)(step - 1) * cfg->lr_decay);
  const float alpha = (float)-clr, eps = (float)cfg->eps;
  const float sign = cfg->maximize ? -1.0f : 1.0f; /* exact: flips the sign */
  int64_t i;
  for (i = 0; i < dim; i++) {
    float x = sign * g[i];
    float s = part == OPT_WEIGHT ? sum[i] : sum[i] + x * x;
    if (part != OPT_WEIGHT) sum[i] = s;
    if (part != OPT_STATE) w[i] = fmaf(alpha, x / (sqrtf(s) + eps), w[i]);
  }
}

/* torch's numerator dm + m_old and denominator sqrt(dv + v_old) are the
** new m and v (float addition commutes exactly), so the weight's part
** reads them from the new state. */
OPT_INLINE void opt_adam_body(const embed_config *cfg, opt_part part,
                              float *restrict w, const float *restrict g,
                              float *restrict state, double lr, int64_t step,
                              int64_t dim) {
  float *restrict m = state, *restrict v = state + dim;
  const float one_b1 = (float)(1.0 - cfg->beta1);
  const float one_b2 = (float)(1.0 - cfg->beta2);
  const float eps = (float)cfg->eps;
  const double bias1 = 1.0 - pow(cfg->beta1, (double)step);
  const double bias2 = 1.0 - pow(cfg->beta2, (double)step);
  const float neg_size = (float)(-(lr * sqrt(bias2) / bias1));
  const float sign = cfg->maximize ? -1.0f : 1.0f;
  int64_t i;
  for (i = 0; i < dim; i++) {
    float m_new = m[i], v_new = v[i];
    if (part != OPT_WEIGHT) {
      float x = sign * g[i];
      float dm = (x - m_new) * one_b1;
      float dv = (x * x - v_new) * one_b2;
      m_new = m_new + dm;
      v_new = v_new + dv;
      m[i] = m_new;
      v[i] = v_new;
    }
    if (part != OPT_STATE)
      w[i] = w[i] + neg_size * (m_new / (sqrtf(v_new) + eps));
  }
}

OPT_INLINE void opt_part_body(const embed_config *cfg, opt_part part, float *w,
                              const float *g, float *state, double lr,
                              int64_t step, int64_t dim) {
  switch (cfg->optimizer) {
    case EMBED_OPTIMIZER_SGD:
      opt_sgd_body(cfg, part, w, g, state, lr, step, dim);
      break;
    case EMBED_OPTIMIZER_ADAGRAD:
      opt_adagrad_body(cfg, part, w, g, state, lr, step, dim);
      break;
    case EMBED_OPTIMIZER_ADAM:
      opt_adam_body(cfg, part, w, g, state, lr, step, dim);
      break;
  }
}

/* One step (or part) with the loops above, compiled for the caller's
** target; each part a constant there, so each loop is straight. */
OPT_INLINE void opt_step_body(const embed_config *cfg, opt_part part, float *w,
                              const float *g, float *state, double lr,
                              int64_t step, int64_t dim) {
  if (part == OPT_STATE)
    opt_part_body(cfg, OPT_STATE, w, g, state, lr, step, dim);
  else if (part == OPT_WEIGHT)
    opt_part_body(cfg, OPT_WEIGHT, w, g, state, lr, step, dim);
  else
    opt_part_body(cfg, OPT_BOTH, w, g, state, lr, step, dim);
}

static void opt_step_plain(const embed_config *cfg, opt_part part, float *w,
                           const float *g, float *state, double lr,
                           int64_t step, int64_t dim) {
  opt_step_body(cfg, part, w, g, state, lr, step, dim);
}

#if OPT_DISPATCH
__attribute__((target("avx2,fma"))) static void opt_step_fma(
    const embed_config *cfg, opt_part part, float *w, const float *g,
    float *state, double lr, int64_t step, int64_t dim) {
  opt_step_body(cfg, part, w, g, state, lr, step, dim);
}
#endif

static void opt_step(const embed_config *cfg, opt_part part, float *w,
                     const float *g, float *state, double lr, int64_t step,
                     int64_t dim) {
#if OPT_DISPATCH
  static int has_fma = -1; /* the same answer in every thread */
  if (has_fma < 0) {
    __builtin_cpu_init();
    has_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  if (has_fma) {
    opt_step_fma(cfg, part, w, g, state, lr, step, dim);
    return;
  }
#endif
  opt_step_plain(cfg, part, w, g, state, lr, step, dim);
}

int embed_optimizer_counts_steps(const embed_config *cfg) {
  return cfg->optimizer != EMBED_OPTIMIZER_SGD || cfg->momentum != 0;
}

int embed_optimizer_steps_untouched_rows(const embed_config *cfg) {
  if (cfg->optimizer != EMBED_OPTIMIZER_SGD) return 0;
  if (cfg->weight_decay != 0) return 2; /* every row */
  return cfg->momentum != 0;            /* rows with a momentum buffer */
}

int embed_optimizer_state_dense(const embed_config *cfg) {
  return cfg->optimizer == EMBED_OPTIMIZER_ADAGRAD ||
         cfg->optimizer == EMBED_OPTIMIZER_ADAM;
}

int embed_optimizer_splits(const embed_config *cfg) {
  return embed_optimizer_state_size(cfg, 1) > 0 &&
         !(cfg->optimizer == EMBED_OPTIMIZER_SGD && cfg->weight_decay != 0);
}

void embed_optimizer_step(const embed_config *cfg, float *w, const float *g,
                          float *state, double lr, int64_t step, int64_t dim) {
  opt_step(cfg, OPT_BOTH, w, g, state, lr, step, dim);
}

void embed_optimizer_state_step(const embed_config *cfg, const float *g,
                                float *state, int64_t step, int64_t dim) {
  opt_step(cfg, OPT_STATE, 0, g, state, 0, step, dim);
}

void embed_optimizer_weight_step(const embed_config *cfg, float *w,
                                 const float *g, const float *state, double lr,
                                 int64_t step, int64_t dim) {
  opt_step(cfg, OPT_WEIGHT, w, g, (float *)state, lr, step, dim);
}

#if defined(__clang__)
#pragma STDC FP_CONTRACT DEFAULT
#elif defined(__GNUC__)
#pragma GCC pop_options
#endif
#undef OPT_DISPATCH
#undef OPT_INLINE
