/*
** options.c - the options of CREATE VIRTUAL TABLE ... USING embedding(...).
**
** Usage:
**
**     CREATE VIRTUAL TABLE tok USING embedding(dim=50);
**     CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=10, dim=50,
**         init=uniform, seed=42, padding_idx=0, max_norm=1.0, norm_type=2,
**         scale_grad_by_freq=true, optimizer=sgd, metric=cosine,
**         search_cache=true);
**     CREATE VIRTUAL TABLE big USING embedding(dim=384, index=ivf,
**         nlist=1000, nprobe=16, oversample=8);
**
** Design:
**  - One table of options (name, parser, printer) drives parsing, validation
**    and the stored form; SQLite is not needed here.
**  - Each argument is "key=value"; keys are case-insensitive; a value may be
**    quoted with '...' or "...". Unknown keys, repeated keys, malformed
**    values and out-of-range values are errors naming the option and value.
**  - The table keeps its options in its config shadow table as
**    (key, value-text) rows written by embed_config_value(); reconnecting
**    replays them through embed_config_apply(), so a corrupted row gets the
**    same precise error as a bad CREATE argument.
*/
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static int lower(int c) {
  return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}

static int same_word(const char *a, const char *b) {
  while (*a && *b && lower((unsigned char)*a) == lower((unsigned char)*b)) {
    a++;
    b++;
  }
  return *a == 0 && *b == 0;
}

static int is_space_char(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static int parse_int(const char *s, int64_t *out) {
  char *end;
  long long v;
  if (!*s) return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if (*end || errno == ERANGE) return -1;
  *out = v;
  return 0;
}

static int parse_real(const char *s, double *out) {
  char *end;
  double v;
  if (!*s) return -1;
  v = strtod(s, &end);
  if (*end || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  if (same_word(s, "1") || same_word(s, "true")) {
    *out = 1;
  } else if (same_word(s, "0") || same_word(s, "false")) {
    *out = 0;
  } else {
    return -1;
  }
  return 0;
}

/* A double in the fewest digits (up to 17) that read back exactly. */
static void format_real(double x, char *out, size_t n) {
  int digits;
  for (digits = 6; digits < 17; digits++) {
    snprintf(out, n, "%.*g", digits, x);
    if (strtod(out, 0) == x) return;
  }
  snprintf(out, n, "%.17g", x);
}

typedef int (*option_parser)(embed_config *, const char *, embed_error *);
typedef void (*option_printer)(const embed_config *, char *, size_t);

static int set_dim(embed_config *c, const char *v, embed_error *err) {
  if (parse_int(v, &c->dim) || c->dim < 1 || c->dim > EMBED_MAX_DIM)
    return embed_error_set(err, "dim must be an integer in [1, %d], got '%s'",
                           EMBED_MAX_DIM, v);
  return 0;
}
static void get_dim(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->dim);
}

static int set_num(embed_config *c, const char *v, embed_error *err) {
  if (parse_int(v, &c->num_embeddings) || c->num_embeddings < 0 ||
      c->num_embeddings > EMBED_MAX_ROWS_AT_CREATE)
    return embed_error_set(
        err, "num_embeddings must be an integer in [0, %lld], got '%s'",
        EMBED_MAX_ROWS_AT_CREATE, v);
  return 0;
}
static void get_num(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->num_embeddings);
}

static const char *const init_names[] = {"normal", "uniform", "zeros"};
static int set_init(embed_config *c, const char *v, embed_error *err) {
  int i;
  for (i = 0; i < 3; i++)
    if (same_word(v, init_names[i])) {
      c->init = (embed_init)i;
      return 0;
    }
  return embed_error_set(err, "init must be normal, uniform or zeros, got '%s'",
                         v);
}
static void get_init(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%s", init_names[c->init]);
}

static int set_seed(embed_config *c, const char *v, embed_error *err) {
  if (parse_int(v, &c->seed))
    return embed_error_set(err, "seed must be a 64-bit integer, got '%s'", v);
  c->has_seed = 1;
  return 0;
}
static void get_seed(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->seed);
}

static int set_padding(embed_config *c, const char *v, embed_error *err) {
  if (same_word(v, "none")) {
    c->has_padding_idx = 0;
    return 0;
  }
  if (parse_int(v, &c->padding_idx))
    return embed_error_set(err, "padding_idx must be an integer, got '%s'", v);
  c->has_padding_idx = 1;
  return 0;
}
static void get_padding(const embed_config *c, char *o, size_t n) {
  if (c->has_padding_idx)
    snprintf(o, n, "%lld", (long long)c->padding_idx);
  else
    snprintf(o, n, "none");
}

static int set_max_norm(embed_config *c, const char *v, embed_error *err) {
  if (same_word(v, "none")) {
    c->max_norm = 0;
    return 0;
  }
  if (parse_real(v, &c->max_norm) || !(c->max_norm > 0))
    return embed_error_set(err, "max_norm must be a positive number, got '%s'",
                           v);
  return 0;
}
static void get_max_norm(const embed_config *c, char *o, size_t n) {
  if (c->max_norm > 0)
    format_real(c->max_norm, o, n);
  else
    snprintf(o, n, "none");
}

static int set_norm_type(embed_config *c, const char *v, embed_error *err) {
  if (same_word(v, "inf")) {
    c->norm_type = INFINITY;
    return 0;
  }
  if (parse_real(v, &c->norm_type) || !(c->norm_type > 0))
    return embed_error_set(
        err, "norm_type must be a positive number or inf, got '%s'", v);
  return 0;
}
static void get_norm_type(const embed_config *c, char *o, size_t n) {
  if (isinf(c->norm_type))
    snprintf(o, n, "inf");
  else
    format_real(c->norm_type, o, n);
}

static int set_sgbf(embed_config *c, const char *v, embed_error *err) {
  if (parse_bool(v, &c->scale_grad_by_freq))
    return embed_error_set(
        err, "scale_grad_by_freq must be true, false, 1 or 0, got '%s'", v);
  return 0;
}
static void get_sgbf(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%d", c->scale_grad_by_freq);
}

static const char *const optimizer_names[] = {"sgd", "adagrad", "adam"};
static int set_optimizer(embed_config *c, const char *v, embed_error *err) {
  int i;
  for (i = 0; i < 3; i++)
    if (same_word(v, optimizer_names[i])) {
      c->optimizer = (embed_optimizer)i;
      return 0;
    }
  return embed_error_set(err,
                         "optimizer must be sgd, adagrad or adam, got '%s'", v);
}
static void get_optimizer(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%s", optimizer_names[c->optimizer]);
}

/* A real-valued hyperparameter: finite, >= 0 (or > 0 when positive). */
static int set_hyper(double *field, const char *name, int positive,
                     const char *v, embed_error *err) {
  if (parse_real(v, field) || *field < 0 || (positive && *field == 0))
    return embed_error_set(err, "%s must be a %s number, got '%s'", name,
                           positive ? "positive" : "non-negative", v);
  return 0;
}
#define HYPER(fn, field, name, positive)                                  \
  static int set_##fn(embed_config *c, const char *v, embed_error *err) { \
    return set_hyper(&c->field, name, positive, v, err);                  \
  }                                                                       \
  static void get_##fn(const embed_config *c, char *o, size_t n) {        \
    format_real(c->field, o, n);                                          \
  }
HYPER(momentum, momentum, "momentum", 0)
HYPER(weight_decay, weight_decay, "weight_decay", 0)
HYPER(lr_decay, lr_decay, "lr_decay", 0)
HYPER(init_acc, initial_accumulator_value, "initial_accumulator_value", 0)
HYPER(eps, eps, "eps", 1)

static int set_dampening(embed_config *c, const char *v, embed_error *err) {
  if (parse_real(v, &c->dampening))
    return embed_error_set(err, "dampening must be a number, got '%s'", v);
  return 0;
}
static void get_dampening(const embed_config *c, char *o, size_t n) {
  format_real(c->dampening, o, n);
}

#define FLAG(fn, field, name)                                                 \
  static int set_##fn(embed_config *c, const char *v, embed_error *err) {     \
    if (parse_bool(v, &c->field))                                             \
      return embed_error_set(err, "%s must be true, false, 1 or 0, got '%s'", \
                             name, v);                                        \
    return 0;                                                                 \
  }                                                                           \
  static void get_##fn(const embed_config *c, char *o, size_t n) {            \
    snprintf(o, n, "%d", c->field);                                           \
  }
FLAG(nesterov, nesterov, "nesterov")
FLAG(maximize, maximize, "maximize")

/* betas=(0.9, 0.999), as torch.optim.SparseAdam's betas tuple */
static int set_betas(embed_config *c, const char *v, embed_error *err) {
  char buf[128], *comma, *a, *b, *end;
  size_t len = strlen(v);
  if (len < 2 || len >= sizeof(buf) || v[0] != '(' || v[len - 1] != ')')
    return embed_error_set(err, "betas must be (beta1, beta2), got '%s'", v);
  memcpy(buf, v + 1, len - 2);
  buf[len - 2] = 0;
  comma = strchr(buf, ',');
  if (!comma)
    return embed_error_set(err, "betas must be (beta1, beta2), got '%s'", v);
  *comma = 0;
  a = buf;
  b = comma + 1;
  while (is_space_char(*a)) a++;
  while (is_space_char(*b)) b++;
  end = a + strlen(a);
  while (end > a && is_space_char(end[-1])) *--end = 0;
  end = b + strlen(b);
  while (end > b && is_space_char(end[-1])) *--end = 0;
  if (parse_real(a, &c->beta1) || parse_real(b, &c->beta2) || c->beta1 < 0 ||
      c->beta1 >= 1 || c->beta2 < 0 || c->beta2 >= 1)
    return embed_error_set(err, "betas must be two numbers in [0, 1), got '%s'",
                           v);
  return 0;
}
static void get_betas(const embed_config *c, char *o, size_t n) {
  char b1[32], b2[32];
  format_real(c->beta1, b1, sizeof(b1));
  format_real(c->beta2, b2, sizeof(b2));
  snprintf(o, n, "(%s, %s)", b1, b2);
}

static const char *const metric_names[] = {"cosine", "l2", "dot"};
const char *embed_metric_name(embed_metric m) {
  return metric_names[m];
}
static int set_metric(embed_config *c, const char *v, embed_error *err) {
  int i;
  for (i = 0; i < 3; i++)
    if (same_word(v, metric_names[i])) {
      c->metric = (embed_metric)i;
      return 0;
    }
  return embed_error_set(err, "metric must be cosine, l2 or dot, got '%s'", v);
}
static void get_metric(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%s", metric_names[c->metric]);
}

static int set_cache(embed_config *c, const char *v, embed_error *err) {
  if (parse_bool(v, &c->search_cache))
    return embed_error_set(
        err, "search_cache must be true, false, 1 or 0, got '%s'", v);
  return 0;
}
static void get_cache(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%d", c->search_cache);
}

static int set_index(embed_config *c, const char *v, embed_error *err) {
  if (same_word(v, "none")) {
    c->index_ivf = 0;
  } else if (same_word(v, "ivf")) {
    c->index_ivf = 1;
  } else {
    return embed_error_set(err, "index must be none or ivf, got '%s'", v);
  }
  return 0;
}
static void get_index(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%s", c->index_ivf ? "ivf" : "none");
}

/* nlist, nprobe and oversample: an integer in [lo, EMBED_MAX_CELLS] (0 for
** nlist and nprobe: chosen by the table). */
static int set_count(const char *key, int64_t lo, const char *v, int64_t *out,
                     embed_error *err) {
  if (parse_int(v, out) || *out < lo || *out > EMBED_MAX_CELLS)
    return embed_error_set(err, "%s must be an integer in [%lld, %d], got '%s'",
                           key, (long long)lo, EMBED_MAX_CELLS, v);
  return 0;
}
static int set_nlist(embed_config *c, const char *v, embed_error *err) {
  return set_count("nlist", 0, v, &c->nlist, err);
}
static void get_nlist(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->nlist);
}
static int set_nprobe(embed_config *c, const char *v, embed_error *err) {
  return set_count("nprobe", 0, v, &c->nprobe, err);
}
static void get_nprobe(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->nprobe);
}
static int set_oversample(embed_config *c, const char *v, embed_error *err) {
  return set_count("oversample", 1, v, &c->oversample, err);
}
static void get_oversample(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->oversample);
}

/* Which optimizers an option belongs to (0: not an optimizer option). */
#define SGD (1u << EMBED_OPTIMIZER_SGD)
#define ADAGRAD (1u << EMBED_OPTIMIZER_ADAGRAD)
#define ADAM (1u << EMBED_OPTIMIZER_ADAM)

static const struct option_def {
  const char *key;
  const char *alias;
  option_parser parse;
  option_printer print;
  unsigned optimizers;
} options[] = {
    {"dim", "embedding_dim", set_dim, get_dim, 0},
    {"num_embeddings", 0, set_num, get_num, 0},
    {"init", 0, set_init, get_init, 0},
    {"seed", 0, set_seed, get_seed, 0},
    {"padding_idx", 0, set_padding, get_padding, 0},
    {"max_norm", 0, set_max_norm, get_max_norm, 0},
    {"norm_type", 0, set_norm_type, get_norm_type, 0},
    {"scale_grad_by_freq", 0, set_sgbf, get_sgbf, 0},
    {"optimizer", 0, set_optimizer, get_optimizer, 0},
    {"metric", 0, set_metric, get_metric, 0},
    {"search_cache", 0, set_cache, get_cache, 0},
    {"index", 0, set_index, get_index, 0},
    {"nlist", 0, set_nlist, get_nlist, 0},
    {"nprobe", 0, set_nprobe, get_nprobe, 0},
    {"oversample", 0, set_oversample, get_oversample, 0},
    {"momentum", 0, set_momentum, get_momentum, SGD},
    {"dampening", 0, set_dampening, get_dampening, SGD},
    {"nesterov", 0, set_nesterov, get_nesterov, SGD},
    {"weight_decay", 0, set_weight_decay, get_weight_decay, SGD},
    {"lr_decay", 0, set_lr_decay, get_lr_decay, ADAGRAD},
    {"initial_accumulator_value", 0, set_init_acc, get_init_acc, ADAGRAD},
    {"eps", 0, set_eps, get_eps, ADAGRAD | ADAM},
    {"betas", 0, set_betas, get_betas, ADAM},
    {"maximize", 0, set_maximize, get_maximize, SGD | ADAGRAD | ADAM},
};
#define N_OPTIONS ((int)(sizeof(options) / sizeof(options[0])))

void embed_config_defaults(embed_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->init = EMBED_INIT_NORMAL;
  cfg->norm_type = 2.0;
  cfg->optimizer = EMBED_OPTIMIZER_SGD;
  cfg->metric = EMBED_METRIC_COSINE;
  cfg->search_cache = 1;
  cfg->oversample = EMBED_DEFAULT_OVERSAMPLE;
  cfg->eps = 1e-10; /* Adagrad's; Adam's 1e-8 is set by finish */
  cfg->beta1 = 0.9;
  cfg->beta2 = 0.999;
}

int embed_config_apply(embed_config *cfg, const char *key, const char *value,
                       embed_error *err) {
  int i;
  for (i = 0; i < N_OPTIONS; i++) {
    if (same_word(key, options[i].key) ||
        (options[i].alias && same_word(key, options[i].alias))) {
      if (cfg->seen & (1u << i))
        return embed_error_set(err, "option '%s' given twice", key);
      cfg->seen |= 1u << i;
      return options[i].parse(cfg, value, err);
    }
  }
  return embed_error_set(err, "unknown option '%s'", key);
}

/* Copy [s, e) trimmed into out; strip one level of '...' or "..." quotes,
** undoubling the quote character inside. Returns -1 if it does not fit. */
static int copy_token(const char *s, const char *e, char *out, size_t nout) {
  size_t k = 0;
  while (s < e && is_space_char(*s)) s++;
  while (e > s && is_space_char(e[-1])) e--;
  if (e - s >= 2 && (*s == '\'' || *s == '"') && e[-1] == *s) {
    char q = *s++;
    e--;
    while (s < e) {
      if (k + 1 >= nout) return -1;
      out[k++] = *s;
      if (*s == q && s + 1 < e && s[1] == q) s++;
      s++;
    }
  } else {
    if ((size_t)(e - s) + 1 > nout) return -1;
    memcpy(out, s, (size_t)(e - s));
    k = (size_t)(e - s);
  }
  out[k] = 0;
  return 0;
}

int embed_config_apply_arg(embed_config *cfg, const char *arg,
                           embed_error *err) {
  char key[64], value[256];
  const char *eq = strchr(arg, '=');
  if (!eq)
    return embed_error_set(
        err, "malformed option '%.100s' (expected key=value)", arg);
  if (copy_token(arg, eq, key, sizeof(key)) || !key[0])
    return embed_error_set(
        err, "malformed option '%.100s' (expected key=value)", arg);
  if (copy_token(eq + 1, eq + strlen(eq), value, sizeof(value)))
    return embed_error_set(err, "value of option '%s' is too long", key);
  return embed_config_apply(cfg, key, value, err);
}

static int option_index(const char *key) {
  int i;
  for (i = 0; i < N_OPTIONS; i++)
    if (same_word(key, options[i].key)) return i;
  return -1;
}

int embed_config_finish(embed_config *cfg, embed_error *err) {
  int i;
  if (!(cfg->seen & 1u))
    return embed_error_set(err, "missing required option 'dim'");
  for (i = 0; i < N_OPTIONS; i++) {
    unsigned mask = options[i].optimizers;
    if ((cfg->seen & (1u << i)) && mask && !(mask & (1u << cfg->optimizer)))
      return embed_error_set(err, "option '%s' does not apply to optimizer=%s",
                             options[i].key, optimizer_names[cfg->optimizer]);
  }
  for (i = option_index("nlist"); i <= option_index("oversample"); i++)
    if ((cfg->seen & (1u << i)) && !cfg->index_ivf)
      return embed_error_set(err, "option '%s' needs index=ivf",
                             options[i].key);
  if (cfg->optimizer == EMBED_OPTIMIZER_ADAM &&
      !(cfg->seen & (1u << option_index("eps"))))
    cfg->eps = 1e-8; /* torch.optim.SparseAdam's default */
  if (cfg->nesterov && (cfg->momentum <= 0 || cfg->dampening != 0))
    return embed_error_set(
        err, "nesterov momentum requires a momentum and zero dampening");
  if (cfg->num_embeddings > 0 &&
      cfg->num_embeddings > (((int64_t)1) << 36) / cfg->dim)
    return embed_error_set(
        err, "num_embeddings=%lld x dim=%lld is over the limit of 2^36 floats",
        (long long)cfg->num_embeddings, (long long)cfg->dim);
  if (cfg->has_padding_idx && cfg->num_embeddings > 0) {
    int64_t given = cfg->padding_idx;
    if (cfg->padding_idx < 0) cfg->padding_idx += cfg->num_embeddings;
    if (cfg->padding_idx < 0 || cfg->padding_idx >= cfg->num_embeddings)
      return embed_error_set(
          err, "padding_idx %lld must be within num_embeddings (%lld)",
          (long long)given, (long long)cfg->num_embeddings);
  } else if (cfg->has_padding_idx && cfg->padding_idx < 0) {
    return embed_error_set(err, "a negative padding_idx needs num_embeddings");
  }
  return 0;
}

int embed_config_count(void) {
  return N_OPTIONS;
}
int embed_config_applies(const embed_config *cfg, int i) {
  if (i >= option_index("nlist") && i <= option_index("oversample") &&
      !cfg->index_ivf)
    return 0;
  return options[i].optimizers == 0 ||
         (options[i].optimizers & (1u << cfg->optimizer)) != 0;
}
const char *embed_config_key(int i) {
  return options[i].key;
}
void embed_config_value(const embed_config *cfg, int i, char *out,
                        size_t nout) {
  options[i].print(cfg, out, nout);
}
