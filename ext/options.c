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

#define EMBED_NO_SQLITE
#include "embed_int.h"

static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

static int same_word(const char *a, const char *b) {
  while (*a && *b && lower((unsigned char)*a) == lower((unsigned char)*b)) {
    a++;
    b++;
  }
  return *a == 0 && *b == 0;
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

typedef int (*option_parser)(embed_config *, const char *, char *, size_t);
typedef void (*option_printer)(const embed_config *, char *, size_t);

#define BAD(...)                           \
  do {                                     \
    snprintf(err, nerr, __VA_ARGS__);      \
    return -1;                             \
  } while (0)

static int set_dim(embed_config *c, const char *v, char *err, size_t nerr) {
  if (parse_int(v, &c->dim) || c->dim < 1 || c->dim > EMBED_MAX_DIM)
    BAD("dim must be an integer in [1, %d], got '%s'", EMBED_MAX_DIM, v);
  return 0;
}
static void get_dim(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->dim);
}

static int set_num(embed_config *c, const char *v, char *err, size_t nerr) {
  if (parse_int(v, &c->num_embeddings) || c->num_embeddings < 0 ||
      c->num_embeddings > EMBED_MAX_ROWS_AT_CREATE)
    BAD("num_embeddings must be an integer in [0, %lld], got '%s'",
        EMBED_MAX_ROWS_AT_CREATE, v);
  return 0;
}
static void get_num(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->num_embeddings);
}

static const char *const init_names[] = {"normal", "uniform", "zeros"};
static int set_init(embed_config *c, const char *v, char *err, size_t nerr) {
  int i;
  for (i = 0; i < 3; i++)
    if (same_word(v, init_names[i])) {
      c->init = (embed_init)i;
      return 0;
    }
  BAD("init must be normal, uniform or zeros, got '%s'", v);
}
static void get_init(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%s", init_names[c->init]);
}

static int set_seed(embed_config *c, const char *v, char *err, size_t nerr) {
  if (parse_int(v, &c->seed))
    BAD("seed must be a 64-bit integer, got '%s'", v);
  c->has_seed = 1;
  return 0;
}
static void get_seed(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%lld", (long long)c->seed);
}

static int set_padding(embed_config *c, const char *v, char *err,
                       size_t nerr) {
  if (same_word(v, "none")) {
    c->has_padding_idx = 0;
    return 0;
  }
  if (parse_int(v, &c->padding_idx))
    BAD("padding_idx must be an integer, got '%s'", v);
  c->has_padding_idx = 1;
  return 0;
}
static void get_padding(const embed_config *c, char *o, size_t n) {
  if (c->has_padding_idx)
    snprintf(o, n, "%lld", (long long)c->padding_idx);
  else
    snprintf(o, n, "none");
}

static int set_max_norm(embed_config *c, const char *v, char *err,
                        size_t nerr) {
  if (same_word(v, "none")) {
    c->max_norm = 0;
    return 0;
  }
  if (parse_real(v, &c->max_norm) || !(c->max_norm > 0))
    BAD("max_norm must be a positive number, got '%s'", v);
  return 0;
}
static void get_max_norm(const embed_config *c, char *o, size_t n) {
  if (c->max_norm > 0)
    snprintf(o, n, "%.17g", c->max_norm);
  else
    snprintf(o, n, "none");
}

static int set_norm_type(embed_config *c, const char *v, char *err,
                         size_t nerr) {
  if (same_word(v, "inf")) {
    c->norm_type = INFINITY;
    return 0;
  }
  if (parse_real(v, &c->norm_type) || !(c->norm_type > 0))
    BAD("norm_type must be a positive number or inf, got '%s'", v);
  return 0;
}
static void get_norm_type(const embed_config *c, char *o, size_t n) {
  if (isinf(c->norm_type))
    snprintf(o, n, "inf");
  else
    snprintf(o, n, "%.17g", c->norm_type);
}

static int set_sgbf(embed_config *c, const char *v, char *err, size_t nerr) {
  if (parse_bool(v, &c->scale_grad_by_freq))
    BAD("scale_grad_by_freq must be true, false, 1 or 0, got '%s'", v);
  return 0;
}
static void get_sgbf(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%d", c->scale_grad_by_freq);
}

static int set_optimizer(embed_config *c, const char *v, char *err,
                         size_t nerr) {
  if (same_word(v, "sgd")) {
    c->optimizer = EMBED_OPTIMIZER_SGD;
    return 0;
  }
  if (same_word(v, "adagrad") || same_word(v, "adam"))
    BAD("optimizer '%s' is not supported yet (only sgd)", v);
  BAD("optimizer must be sgd, adagrad or adam, got '%s'", v);
}
static void get_optimizer(const embed_config *c, char *o, size_t n) {
  (void)c;
  snprintf(o, n, "sgd");
}

static const char *const metric_names[] = {"cosine", "l2", "dot"};
const char *embed_metric_name(embed_metric m) { return metric_names[m]; }
static int set_metric(embed_config *c, const char *v, char *err,
                      size_t nerr) {
  int i;
  for (i = 0; i < 3; i++)
    if (same_word(v, metric_names[i])) {
      c->metric = (embed_metric)i;
      return 0;
    }
  BAD("metric must be cosine, l2 or dot, got '%s'", v);
}
static void get_metric(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%s", metric_names[c->metric]);
}

static int set_cache(embed_config *c, const char *v, char *err,
                     size_t nerr) {
  if (parse_bool(v, &c->search_cache))
    BAD("search_cache must be true, false, 1 or 0, got '%s'", v);
  return 0;
}
static void get_cache(const embed_config *c, char *o, size_t n) {
  snprintf(o, n, "%d", c->search_cache);
}

static const struct option_def {
  const char *key;
  const char *alias;
  option_parser parse;
  option_printer print;
} options[] = {
    {"dim", "embedding_dim", set_dim, get_dim},
    {"num_embeddings", 0, set_num, get_num},
    {"init", 0, set_init, get_init},
    {"seed", 0, set_seed, get_seed},
    {"padding_idx", 0, set_padding, get_padding},
    {"max_norm", 0, set_max_norm, get_max_norm},
    {"norm_type", 0, set_norm_type, get_norm_type},
    {"scale_grad_by_freq", 0, set_sgbf, get_sgbf},
    {"optimizer", 0, set_optimizer, get_optimizer},
    {"metric", 0, set_metric, get_metric},
    {"search_cache", 0, set_cache, get_cache},
};
#define N_OPTIONS ((int)(sizeof(options) / sizeof(options[0])))

void embed_config_defaults(embed_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->init = EMBED_INIT_NORMAL;
  cfg->norm_type = 2.0;
  cfg->optimizer = EMBED_OPTIMIZER_SGD;
  cfg->metric = EMBED_METRIC_COSINE;
  cfg->search_cache = 1;
}

int embed_config_apply(embed_config *cfg, const char *key, const char *value,
                       char *err, size_t nerr) {
  int i;
  for (i = 0; i < N_OPTIONS; i++) {
    if (same_word(key, options[i].key) ||
        (options[i].alias && same_word(key, options[i].alias))) {
      if (cfg->seen & (1u << i)) BAD("option '%s' given twice", key);
      cfg->seen |= 1u << i;
      return options[i].parse(cfg, value, err, nerr);
    }
  }
  BAD("unknown option '%s'", key);
}

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

/* Copy [s, e) trimmed into out; strip one level of '...' or "..." quotes,
** undoubling the quote character inside. Returns -1 if it does not fit. */
static int copy_token(const char *s, const char *e, char *out, size_t nout) {
  size_t k = 0;
  while (s < e && is_space(*s)) s++;
  while (e > s && is_space(e[-1])) e--;
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

int embed_config_apply_arg(embed_config *cfg, const char *arg, char *err,
                           size_t nerr) {
  char key[64], value[256];
  const char *eq = strchr(arg, '=');
  if (!eq) BAD("malformed option '%.100s' (expected key=value)", arg);
  if (copy_token(arg, eq, key, sizeof(key)) || !key[0])
    BAD("malformed option '%.100s' (expected key=value)", arg);
  if (copy_token(eq + 1, eq + strlen(eq), value, sizeof(value)))
    BAD("value of option '%s' is too long", key);
  return embed_config_apply(cfg, key, value, err, nerr);
}

int embed_config_finish(embed_config *cfg, char *err, size_t nerr) {
  if (!(cfg->seen & 1u)) BAD("missing required option 'dim'");
  if (cfg->num_embeddings > 0 &&
      cfg->num_embeddings > (((int64_t)1) << 36) / cfg->dim)
    BAD("num_embeddings=%lld x dim=%lld is over the limit of 2^36 floats",
        (long long)cfg->num_embeddings, (long long)cfg->dim);
  if (cfg->has_padding_idx && cfg->num_embeddings > 0) {
    if (cfg->padding_idx < 0) cfg->padding_idx += cfg->num_embeddings;
    if (cfg->padding_idx < 0 || cfg->padding_idx >= cfg->num_embeddings)
      BAD("padding_idx must be within num_embeddings (%lld)",
          (long long)cfg->num_embeddings);
  } else if (cfg->has_padding_idx && cfg->padding_idx < 0) {
    BAD("a negative padding_idx needs num_embeddings");
  }
  return 0;
}

int embed_config_count(void) { return N_OPTIONS; }
const char *embed_config_key(int i) { return options[i].key; }
void embed_config_value(const embed_config *cfg, int i, char *out,
                        size_t nout) {
  options[i].print(cfg, out, nout);
}
