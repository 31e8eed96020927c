/*
** functions.c - the pure SQL functions and the EmbeddingBag aggregates.
**
** Usage:
**
**     SELECT embed_version();                         -- '0.1.0'
**     SELECT embed_vector('[1, 2, 3]');               -- 12-byte float32 BLOB
**     SELECT embed_json(embed_vector('[0.1, 2]'));    -- '[0.1,2]'
**     SELECT embed_dim(v), embed_norm(v) FROM ...;
**     SELECT embed_dot(a, b), embed_cosine(a, b), embed_l2(a, b);
**     SELECT embed_add(a, b), embed_sub(a, b), embed_scale(v, 0.5),
**            embed_normalize(v);
**     SELECT bag, embed_sum(vector), embed_mean(vector), embed_max(vector),
**            embed_sum(vector, weight) FROM ... GROUP BY bag;
**     SELECT embed_stack(g) FROM grads;    -- n x D BLOB for a batch update
**     SELECT embed_sigmoid(x), embed_log_sigmoid(x);  -- skip-gram pieces
**
** Design: every function is DETERMINISTIC | INNOCUOUS and takes vectors as
** BLOB or JSON (value/value.c). One implementation serves each family
** (reductions to REAL, element-wise to BLOB, aggregates); the registration
** table gives each SQL name its operation through the user-data pointer. NULL
** arguments give NULL; an aggregate over no non-NULL rows gives NULL; dimension
** mismatches and non-finite results are errors naming the function. */
#include <math.h>
#include <string.h>

#include "embed.h"
#include "sql/sql.h"

typedef enum fn_op {
  OP_VERSION,
  OP_VECTOR,
  OP_JSON,
  OP_DIM,
  OP_NORM,
  OP_NORMALIZE,
  OP_DOT,
  OP_COSINE,
  OP_L2,
  OP_ADD,
  OP_SUB,
  OP_SCALE,
  OP_SUM,
  OP_MEAN,
  OP_MAX,
  OP_STACK,
  OP_SIGMOID,
  OP_LOG_SIGMOID
} fn_op;

typedef struct fn_def {
  const char *name;
  int nArg;
  fn_op op;
} fn_def;

#define FN_OF(ctx) ((const fn_def *)sqlite3_user_data(ctx))

static void fail(sqlite3_context *ctx, int rc, char *zErr) {
  embed_result_error(ctx, rc, zErr);
}

static int check_dims(const char *who, const embed_vec *a, const embed_vec *b,
                      char **pzErr) {
  if (a->dim == b->dim) return SQLITE_OK;
  return embed_fail(
      pzErr, sqlite3_mprintf("%s: dimension mismatch (%lld vs %lld)", who,
                             (long long)a->dim, (long long)b->dim));
}

/* Set v as the result unless an element is not finite. */
static void result_finite(sqlite3_context *ctx, const char *who, const float *v,
                          int64_t dim) {
  int64_t bad = embed_first_nonfinite(v, dim);
  if (bad >= 0) {
    fail(ctx, SQLITE_ERROR,
         sqlite3_mprintf("%s: result element %lld is not finite (overflow)",
                         who, (long long)bad));
    return;
  }
  embed_result_vector(ctx, v, dim);
}

/* embed_version() */
static void fn_version(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, EMBED_VERSION, -1, SQLITE_STATIC);
}

/* One vector in: embed_vector, embed_json, embed_dim, embed_norm,
** embed_normalize, embed_scale (with a second, numeric, argument). */
static void fn_unary(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const fn_def *fn = FN_OF(ctx);
  embed_vec a = {0, 0};
  char *zErr = 0;
  double s = 0;
  int rc = embed_vec_from_value(argv[0], fn->name, &a, &zErr);
  if (rc) {
    fail(ctx, rc, zErr);
    return;
  }
  if (!a.v || (argc > 1 && sqlite3_value_type(argv[1]) == SQLITE_NULL)) {
    embed_vec_free(&a);
    return; /* NULL in, NULL out */
  }
  switch (fn->op) {
    case OP_VECTOR:
      embed_result_vector(ctx, a.v, a.dim);
      break;
    case OP_JSON: {
      char *text =
          sqlite3_malloc64((sqlite3_uint64)embed_json_format_size(a.dim));
      if (!text) {
        sqlite3_result_error_nomem(ctx);
        break;
      }
      sqlite3_result_text64(ctx, text,
                            (sqlite3_uint64)embed_json_format(a.v, a.dim, text),
                            sqlite3_free, SQLITE_UTF8);
      break;
    }
    case OP_DIM:
      sqlite3_result_int64(ctx, a.dim);
      break;
    case OP_NORM:
      sqlite3_result_double(ctx, embed_norm2(a.v, a.dim));
      break;
    case OP_NORMALIZE:
      embed_normalize(a.v, a.dim, a.v);
      result_finite(ctx, fn->name, a.v, a.dim);
      break;
    case OP_SCALE:
      rc = embed_number_from_value(argv[1], fn->name, "the scale", &s, &zErr);
      if (rc) {
        fail(ctx, rc, zErr);
        break;
      }
      embed_scale(a.v, (float)s, a.dim, a.v);
      result_finite(ctx, fn->name, a.v, a.dim);
      break;
    default:
      break;
  }
  embed_vec_free(&a);
}

/* A vector argument of a reduction (dot, cosine, l2, norm, dim), read
** without a copy where possible: a valid BLOB is used in place (the kernels
** take unaligned input), and a constant argument, such as the query vector
** of a scan, is parsed once per statement and kept as auxdata. */
typedef struct vec_arg {
  const float *v; /* NULL for SQL NULL */
  int64_t dim;
  embed_vec *parsed; /* an owned copy, handed to auxdata when done */
} vec_arg;

static void free_parsed(void *p) {
  embed_vec_free((embed_vec *)p);
  sqlite3_free(p);
}

static int read_arg(sqlite3_context *ctx, sqlite3_value **argv, int i,
                    const char *who, vec_arg *out, char **pzErr) {
  embed_vec *cached = (embed_vec *)sqlite3_get_auxdata(ctx, i);
  sqlite3_value *val = argv[i];
  embed_error err;
  int rc;
  memset(out, 0, sizeof(*out));
  if (cached) {
    out->v = cached->v;
    out->dim = cached->dim;
    return SQLITE_OK;
  }
  if (EMBED_HOST_LE && sqlite3_value_type(val) == SQLITE_BLOB) {
    const void *blob = sqlite3_value_blob(val);
    int64_t dim = embed_blob_dim(sqlite3_value_bytes(val), &err);
    if (dim > 0 && embed_blob_check(blob, dim, &err) == EMBED_OK) {
      out->v = (const float *)blob;
      out->dim = dim;
      return SQLITE_OK;
    }
  }
  out->parsed = (embed_vec *)sqlite3_malloc64(sizeof(embed_vec));
  if (!out->parsed) return SQLITE_NOMEM;
  rc = embed_vec_from_value(val, who, out->parsed, pzErr);
  if (rc) {
    sqlite3_free(out->parsed);
    out->parsed = 0;
    return rc;
  }
  out->v = out->parsed->v;
  out->dim = out->parsed->dim;
  return SQLITE_OK;
}

/* Done with an argument: keep a parsed copy for the next row (SQLite keeps
** it only when the argument is constant), else free it. */
static void release_arg(sqlite3_context *ctx, int i, vec_arg *a) {
  if (!a->parsed) return;
  if (a->parsed->v)
    sqlite3_set_auxdata(ctx, i, a->parsed, free_parsed);
  else
    free_parsed(a->parsed);
  a->parsed = 0;
}

/* Two vectors in, a number out: embed_dot, embed_cosine, embed_l2. */
static void fn_reduce2(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const fn_def *fn = FN_OF(ctx);
  vec_arg a, b;
  char *zErr = 0;
  int rc;
  (void)argc;
  memset(&b, 0, sizeof(b));
  rc = read_arg(ctx, argv, 0, fn->name, &a, &zErr);
  if (rc == SQLITE_OK) rc = read_arg(ctx, argv, 1, fn->name, &b, &zErr);
  if (rc == SQLITE_OK && a.v && b.v && a.dim != b.dim) {
    zErr = sqlite3_mprintf("%s: dimension mismatch (%lld vs %lld)", fn->name,
                           (long long)a.dim, (long long)b.dim);
    rc = zErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  if (rc) {
    fail(ctx, rc, zErr);
  } else if (a.v && b.v) {
    sqlite3_result_double(ctx, fn->op == OP_DOT ? embed_dot(a.v, b.v, a.dim)
                               : fn->op == OP_COSINE
                                   ? embed_cosine_similarity(a.v, b.v, a.dim)
                                   : embed_l2_distance(a.v, b.v, a.dim));
  }
  release_arg(ctx, 0, &a);
  release_arg(ctx, 1, &b);
}

/* Two vectors in, a vector out: embed_add, embed_sub. */
static void fn_binary(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const fn_def *fn = FN_OF(ctx);
  embed_vec a = {0, 0}, b = {0, 0};
  char *zErr = 0;
  int rc;
  (void)argc;
  rc = embed_vec_from_value(argv[0], fn->name, &a, &zErr);
  if (rc == SQLITE_OK) rc = embed_vec_from_value(argv[1], fn->name, &b, &zErr);
  if (rc == SQLITE_OK && a.v && b.v) rc = check_dims(fn->name, &a, &b, &zErr);
  if (rc) {
    fail(ctx, rc, zErr);
    goto done;
  }
  if (!a.v || !b.v) goto done;
  if (fn->op == OP_ADD)
    embed_add(a.v, b.v, a.dim, a.v);
  else
    embed_sub(a.v, b.v, a.dim, a.v);
  result_finite(ctx, fn->name, a.v, a.dim);
done:
  embed_vec_free(&a);
  embed_vec_free(&b);
}

/* embed_sigmoid(x), embed_log_sigmoid(x): torch.sigmoid and
** F.logsigmoid on a number, computed without overflow for any x; the
** pieces of a skip-gram (word2vec) gradient in SQL. */
static void fn_real(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const fn_def *fn = FN_OF(ctx);
  double x, r;
  char *zErr = 0;
  int rc;
  (void)argc;
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL) return;
  rc = embed_number_from_value(argv[0], fn->name, "x", &x, &zErr);
  if (rc) {
    fail(ctx, rc, zErr);
    return;
  }
  if (fn->op == OP_SIGMOID) {
    r = x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
  } else { /* log sigmoid(x) = min(x, 0) - log1p(exp(-|x|)) */
    r = (x < 0 ? x : 0.0) - log1p(exp(-fabs(x)));
  }
  sqlite3_result_double(ctx, r);
}

/* ------------------------------------------------------------ aggregates */

typedef struct bag_state {
  int64_t dim;   /* 0 until the first non-NULL row */
  int64_t count; /* non-NULL rows */
  double *acc;   /* sum: running sums; max: running maxima */
} bag_state;

static void bag_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const fn_def *fn = FN_OF(ctx);
  bag_state *st = (bag_state *)sqlite3_aggregate_context(ctx, sizeof(*st));
  embed_vec v = {0, 0};
  char *zErr = 0;
  double weight = 1.0;
  int64_t i;
  int rc;
  if (!st) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  rc = embed_vec_from_value(argv[0], fn->name, &v, &zErr);
  if (rc == SQLITE_OK && argc > 1 && sqlite3_value_type(argv[1]) == SQLITE_NULL)
    goto done; /* a NULL weight skips the row, as a NULL vector does */
  if (rc == SQLITE_OK && v.v && argc > 1)
    rc = embed_number_from_value(argv[1], fn->name, "the weight", &weight,
                                 &zErr);
  if (rc == SQLITE_OK && v.v && st->dim && v.dim != st->dim) {
    zErr = sqlite3_mprintf("%s: dimension mismatch (%lld vs %lld)", fn->name,
                           (long long)st->dim, (long long)v.dim);
    rc = zErr ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  if (rc) {
    fail(ctx, rc, zErr);
    goto done;
  }
  if (!v.v) goto done; /* NULL rows are skipped, as by sum() */
  if (!st->acc) {
    st->acc =
        (double *)sqlite3_malloc64((sqlite3_uint64)v.dim * sizeof(double));
    if (!st->acc) {
      sqlite3_result_error_nomem(ctx);
      goto done;
    }
    st->dim = v.dim;
    for (i = 0; i < v.dim; i++)
      st->acc[i] = fn->op == OP_MAX ? (double)v.v[i] : 0.0;
  }
  if (fn->op == OP_MAX) {
    for (i = 0; i < v.dim; i++)
      if (v.v[i] > st->acc[i]) st->acc[i] = v.v[i];
  } else {
    for (i = 0; i < v.dim; i++) st->acc[i] += weight * (double)v.v[i];
  }
  st->count++;
done:
  embed_vec_free(&v);
}

static void bag_final(sqlite3_context *ctx) {
  const fn_def *fn = FN_OF(ctx);
  bag_state *st = (bag_state *)sqlite3_aggregate_context(ctx, 0);
  float *out;
  int64_t i;
  if (!st || !st->acc) return; /* empty group: NULL */
  out = (float *)sqlite3_malloc64((sqlite3_uint64)st->dim * sizeof(float));
  if (!out) {
    sqlite3_result_error_nomem(ctx);
  } else {
    double div = fn->op == OP_MEAN ? (double)st->count : 1.0;
    for (i = 0; i < st->dim; i++) out[i] = (float)(st->acc[i] / div);
    result_finite(ctx, fn->name, out, st->dim);
  }
  sqlite3_free(out);
  sqlite3_free(st->acc);
  st->acc = 0;
}

/* embed_stack(v): the group's vectors end to end, one n x D BLOB (the
** input order; torch.stack), as embed_update and embed_lookup take. */
typedef struct stack_state {
  int64_t dim, n, cap; /* cap: rows allocated */
  float *rows;
} stack_state;

static void stack_step(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  const fn_def *fn = FN_OF(ctx);
  stack_state *st = (stack_state *)sqlite3_aggregate_context(ctx, sizeof(*st));
  embed_vec v = {0, 0};
  char *zErr = 0;
  int rc;
  (void)argc;
  if (!st) {
    sqlite3_result_error_nomem(ctx);
    return;
  }
  rc = embed_vec_from_value(argv[0], fn->name, &v, &zErr);
  if (rc == SQLITE_OK && !v.v) {
    zErr = sqlite3_mprintf("%s: row %lld is NULL", fn->name, (long long)st->n);
    rc = zErr ? SQLITE_ERROR : SQLITE_NOMEM;
  } else if (rc == SQLITE_OK && st->n && v.dim != st->dim) {
    zErr = sqlite3_mprintf("%s: dimension mismatch (%lld vs %lld)", fn->name,
                           (long long)st->dim, (long long)v.dim);
    rc = zErr ? SQLITE_ERROR : SQLITE_NOMEM;
  } else if (rc == SQLITE_OK &&
             (st->n + 1) * v.dim * EMBED_FLOAT_BYTES >
                 sqlite3_limit(sqlite3_context_db_handle(ctx),
                               SQLITE_LIMIT_LENGTH, -1)) {
    zErr =
        sqlite3_mprintf("%s: result exceeds SQLite's length limit", fn->name);
    rc = zErr ? SQLITE_TOOBIG : SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK && st->n == st->cap) {
    int64_t cap = st->cap ? 2 * st->cap : 16;
    float *grown = (float *)sqlite3_realloc64(
        st->rows,
        (sqlite3_uint64)cap * (sqlite3_uint64)v.dim * EMBED_FLOAT_BYTES);
    if (!grown) {
      rc = SQLITE_NOMEM;
    } else {
      st->rows = grown;
      st->cap = cap;
    }
  }
  if (rc) {
    fail(ctx, rc, zErr);
  } else {
    memcpy(st->rows + st->n * v.dim, v.v, (size_t)v.dim * EMBED_FLOAT_BYTES);
    st->dim = v.dim;
    st->n++;
  }
  embed_vec_free(&v);
}

static void stack_final(sqlite3_context *ctx) {
  stack_state *st = (stack_state *)sqlite3_aggregate_context(ctx, 0);
  if (!st || !st->rows) return; /* empty group: NULL */
  if (st->n) embed_result_vector(ctx, st->rows, st->n * st->dim);
  sqlite3_free(st->rows);
  st->rows = 0;
}

static const fn_def scalar_functions[] = {
    {"embed_version", 0, OP_VERSION}, {"embed_vector", 1, OP_VECTOR},
    {"embed_json", 1, OP_JSON},       {"embed_dim", 1, OP_DIM},
    {"embed_norm", 1, OP_NORM},       {"embed_normalize", 1, OP_NORMALIZE},
    {"embed_scale", 2, OP_SCALE},     {"embed_dot", 2, OP_DOT},
    {"embed_cosine", 2, OP_COSINE},   {"embed_l2", 2, OP_L2},
    {"embed_add", 2, OP_ADD},         {"embed_sub", 2, OP_SUB},
    {"embed_sigmoid", 1, OP_SIGMOID}, {"embed_log_sigmoid", 1, OP_LOG_SIGMOID},
};

static const fn_def aggregate_functions[] = {
    {"embed_sum", 1, OP_SUM},     {"embed_sum", 2, OP_SUM},
    {"embed_mean", 1, OP_MEAN},   {"embed_max", 1, OP_MAX},
    {"embed_stack", 1, OP_STACK},
};

int embed_register_functions(sqlite3 *db, embed_registrations *log) {
  const int flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
  size_t i;
  int rc = SQLITE_OK;
  for (i = 0; rc == SQLITE_OK &&
              i < sizeof(scalar_functions) / sizeof(scalar_functions[0]);
       i++) {
    const fn_def *fn = &scalar_functions[i];
    void (*impl)(sqlite3_context *, int, sqlite3_value **) =
        fn->op == OP_VERSION                               ? fn_version
        : fn->op == OP_SIGMOID || fn->op == OP_LOG_SIGMOID ? fn_real
        : fn->op == OP_DOT || fn->op == OP_COSINE || fn->op == OP_L2
            ? fn_reduce2
        : fn->nArg == 2 && fn->op != OP_SCALE ? fn_binary
                                              : fn_unary;
    rc = embed_create_function(log, db, fn->name, fn->nArg, flags, (void *)fn,
                               impl, 0, 0, 0);
  }
  for (i = 0; rc == SQLITE_OK &&
              i < sizeof(aggregate_functions) / sizeof(aggregate_functions[0]);
       i++) {
    const fn_def *fn = &aggregate_functions[i];
    rc = embed_create_function(log, db, fn->name, fn->nArg, flags, (void *)fn,
                               0, fn->op == OP_STACK ? stack_step : bag_step,
                               fn->op == OP_STACK ? stack_final : bag_final, 0);
  }
  return rc;
}
