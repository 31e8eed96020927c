/*
** core/core.h - the pure core of embed: vector codecs, math kernels, the
** seeded initializer, table options and optimizer steps.
**
** Nothing here includes SQLite: these files compile and are unit tested
** alone (the C unit tests), and every other layer builds on them:
**
**     core/      vector.c kernels.c initializer.c options.c optimizer.c text.c
**                codes.c cells.c (approximate search: codes, coarse cells)
**     value/     SQL values <-> vectors, error text          (value/value.h)
**     table/     storage, search, name resolution, training, the module
**     sql/       the SQL functions                          (sql/sql.h)
**     io/        embedding files in and out                 (io/io.h)
**     embed.c    the entry point
**
** docs/DESIGN.md describes the layers and their rules.
**
** Conventions: sizes and counts are int64_t; a vector is D float32 values,
** stored as D little-endian float32 (EMBED_FLOAT_BYTES each); a core
** function that can fail returns 0 (EMBED_OK) or nonzero and fills an
** embed_error.
*/
#ifndef EMBED_CORE_H
#define EMBED_CORE_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of one stored element: a float32 of a vector, an int64 id. */
#define EMBED_FLOAT_BYTES 4
#define EMBED_ID_BYTES 8

/* 1 on a little-endian host, where a vector's floats are its stored bytes;
** code tests it with a plain `if`, and the other branch compiles away. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define EMBED_HOST_LE 0
#else
#define EMBED_HOST_LE 1
#endif

/* The byte-order helper: a 32-bit word between host order and the stored
** little-endian order (the same swap both ways; nothing on little-endian). */
static inline uint32_t embed_le32(uint32_t u) {
  return EMBED_HOST_LE ? u
                       : ((u >> 24) | ((u >> 8) & 0xff00u) |
                          ((u << 8) & 0xff0000u) | (u << 24));
}

/* Hard limits, enforced with an error wherever input could exceed them. */
#define EMBED_MAX_DIM 65536        /* elements in one vector */
#define EMBED_MAX_CELLS 1048576    /* nlist, nprobe, oversample of index=ivf */
#define EMBED_DEFAULT_OVERSAMPLE 8 /* candidates re-ranked per result */
#define EMBED_MAX_BATCH 1048576    /* ids in one batch lookup/update */
#define EMBED_MAX_K 100000         /* k of a similarity search */
#define EMBED_MAX_ROWS_AT_CREATE 1000000000LL /* num_embeddings */

/* ------------------------------------------------------------------------
** vector.c: codecs. A vector is D little-endian float32 values.
*/
typedef enum embed_code {
  EMBED_OK = 0,
  EMBED_E_EMPTY,       /* zero-length BLOB or [] */
  EMBED_E_BLOB_LENGTH, /* a = byte length, not a multiple of 4 */
  EMBED_E_TOO_LONG,    /* a = dimension found (or lower bound) */
  EMBED_E_NONFINITE,   /* a = element index, b = 0 NaN, 1 +Inf, -1 -Inf */
  EMBED_E_JSON,        /* a = byte offset, what = what was expected */
  EMBED_E_RAGGED,      /* a = row, b = its length, c = first row's length */
  EMBED_E_NOT_INTEGER, /* a = element index (ids arrays) */
  EMBED_E_TOO_MANY,    /* a = count found (or lower bound), b = limit */
  EMBED_E_MESSAGE      /* text holds the whole problem (options) */
} embed_code;

/* How the core reports a problem: a code, the values it names, and for
** EMBED_E_MESSAGE a finished text. The SQLite layers turn it into
** "who: problem" with embed_error_text() (value/value.h). */
#define EMBED_ERROR_TEXT_MAX 256
typedef struct embed_error {
  embed_code code;
  int64_t a, b, c;
  const char *what;
  char text[EMBED_ERROR_TEXT_MAX];
} embed_error;

/* Fill err with an EMBED_E_MESSAGE; returns -1, so a parser can say
** `return embed_error_set(err, "dim must be ...", ...);`. */
int embed_error_set(embed_error *err, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Number of float32 elements in a BLOB of nbytes, or -1 with *err set. */
int64_t embed_blob_dim(int64_t nbytes, embed_error *err);
/* Decode n floats from a (possibly unaligned) BLOB; rejects NaN/Inf. */
int embed_blob_decode(const void *blob, int64_t n, float *out,
                      embed_error *err);
/* Check, without copying, that a BLOB's n floats are all finite. */
int embed_blob_check(const void *blob, int64_t n, embed_error *err);
/* index of the first non-finite element of v, or -1 */
int64_t embed_first_nonfinite(const float *v, int64_t n);
/* Encode n floats as a little-endian BLOB of 4*n bytes. */
void embed_blob_encode(const float *v, int64_t n, void *out);
/* Upper bound of the numbers in a JSON text: its commas plus one. */
int64_t embed_json_capacity(const char *text, int64_t n);
/* Parse a JSON array of numbers ("[1, 2.5]") into out[cap]. With nested=1,
** parse an array of equal-length arrays ("[[1,2],[3,4]]"), row-major.
** Sets *rows and *cols. Rejects NaN/Inf, empty arrays and ragged rows. */
int embed_json_parse_floats(const char *text, int64_t n, int nested, float *out,
                            int64_t cap, int64_t *rows, int64_t *cols,
                            embed_error *err);
/* Parse a JSON array of integers ("[3, 1, 4]") into out[cap]. */
int embed_json_parse_ids(const char *text, int64_t n, int64_t *out, int64_t cap,
                         int64_t *count, embed_error *err);
/* Sort ids ascending and drop repeats in place; returns the count left. */
int64_t embed_ids_sort_unique(int64_t *ids, int64_t n);
/* The first index i of ascending ids[0..n) with ids[i] >= id (n if none). */
int64_t embed_ids_lower_bound(const int64_t *ids, int64_t n, int64_t id);
/* Bytes embed_json_format needs for n floats, terminator included. */
int64_t embed_json_format_size(int64_t n);
/* Write v as a JSON array, each float in the fewest digits that read back
** bit-exact. Returns the length written (without the terminator). */
int64_t embed_json_format(const float *v, int64_t n, char *out);

/* ------------------------------------------------------------------------
** kernels.c: vector math. Accumulation is in double, so results are
** accurate to well under 1e-5 relative of a float64 reference.
*/
#define EMBED_COSINE_EPS 1e-8     /* torch.nn.functional.cosine_similarity */
#define EMBED_NORMALIZE_EPS 1e-12 /* torch.nn.functional.normalize */
#define EMBED_MAX_NORM_EPS 1e-7   /* torch.embedding_renorm_ */

double embed_dot(const float *a, const float *b, int64_t n);
double embed_norm2(const float *v, int64_t n);
/* Decode n little-endian float32 values (any alignment) into out and
** return embed_norm2(out, n), bit for bit, in one pass; -1 when one is not
** finite (out is then unspecified). */
double embed_copy_norm2(const void *blob, int64_t n, float *out);
double embed_norm_p(const float *v, int64_t n, double p); /* p may be inf */
double embed_cosine_similarity(const float *a, const float *b, int64_t n);
double embed_l2_distance(const float *a, const float *b, int64_t n);
void embed_add(const float *a, const float *b, int64_t n, float *out);
void embed_sub(const float *a, const float *b, int64_t n, float *out);
void embed_scale(const float *v, float s, int64_t n, float *out);
void embed_normalize(const float *v, int64_t n, float *out);
/* torch.embedding_renorm_: scale v in place to max_norm when its p-norm
** exceeds it. Returns 1 when v was rescaled. */
int embed_renorm(float *v, int64_t n, double max_norm, double norm_type);

/* The implementation of the reductions above (dot, norm2, cosine, l2) is
** chosen once for the CPU; a level can be forced, for tests and benchmarks.
** Every level adds in the same order, so dot, norm2 and cosine results are
** bit-identical whichever runs (l2 may differ in the last bit between the
** FMA levels and scalar/sse2). */
typedef enum embed_kernels_level {
  EMBED_KERNELS_AUTO = -1,  /* the fastest the CPU supports (the default) */
  EMBED_KERNELS_SCALAR = 0, /* portable C: the reference */
  EMBED_KERNELS_SSE2,       /* x86-64 baseline */
  EMBED_KERNELS_AVX2,       /* x86-64 with AVX2 and FMA */
  EMBED_KERNELS_AVX512,     /* x86-64 with AVX-512F */
  EMBED_KERNELS_NEON,       /* aarch64 Advanced SIMD */
  EMBED_KERNELS_COUNT
} embed_kernels_level;
/* 1 when the level is compiled in and this CPU runs it. */
int embed_kernels_supported(int level);
/* Use level from now on (AUTO: the default choice). -1, changing nothing,
** when the level is not supported. */
int embed_kernels_force(int level);
int embed_kernels_active(void);       /* the level in use */
const char *embed_kernels_name(void); /* its name: "avx512", "scalar", ... */
const char *embed_kernels_level_name(int level);

/* ------------------------------------------------------------------------
** codes.c: 8-bit per-dimension scalar codes of vectors, and the float
** kernels of approximate search. A code is dim bytes, code_j =
** clamp(round((x_j - offset_j) / scale_j), 0, 255); it decodes to
** offset_j + scale_j * code_j. The kernels follow the level of kernels.c
** (embed_kernels_force): AVX2 and AVX-512 run an AVX2+FMA path, the other
** levels a portable one. Float arrays are ordinary (float-aligned) C
** arrays; codes may sit at any address.
*/
/* Fit offset/scale (dim floats each) to n >= 1 sample rows (n x dim,
** row-major): per dimension lo = the 0.1% and hi = the 99.9% quantile
** (nearest rank), offset = lo, scale = (hi - lo) / 255, or 1 when hi == lo.
** scratch: n floats. */
void embed_codes_fit(const float *rows, int64_t n, int64_t dim, float *scratch,
                     float *offset, float *scale);
void embed_codes_encode(const float *row, int64_t dim, const float *offset,
                        const float *scale, uint8_t *code);
/* The codes of row x mul (a row scaled to unit length, without the scaled
** copy): what embed_codes_encode gives for the scaled row computed in float. */
void embed_codes_encode_scaled(const float *row, int64_t dim, float mul,
                               const float *offset, const float *scale,
                               uint8_t *code);
/* The inverse of encode, to within scale/2 per dimension in [lo, hi]. */
void embed_codes_decode(const uint8_t *code, int64_t dim, const float *offset,
                        const float *scale, float *row);
/* Prepare a query for embed_codes_dot: qs[j] = q[j] * scale[j]; returns
** sum_j q[j] * offset[j], so that dot(q, decode(code)) = that value +
** sum_j qs[j] * code[j]. */
double embed_codes_query(const float *q, int64_t dim, const float *offset,
                         const float *scale, float *qs);
/* out[i] = sum_j qs[j] * codes[i * stride + j] for n code rows of dim bytes
** each, stride bytes apart (float accumulation). */
void embed_codes_dot(const float *qs, const uint8_t *codes, size_t stride,
                     int64_t n, int64_t dim, float *out);
/* out[i] = squared L2 distance between q and row i of rows (n x dim,
** contiguous), float accumulation. */
void embed_l2sq_many(const float *q, const float *rows, int64_t n, int64_t dim,
                     float *out);
/* The implementation embed_l2sq_many would call now, for loops that call
** it often with small n (the choice is made once per loop). */
typedef void (*embed_l2sq_many_fn)(const float *q, const float *rows, int64_t n,
                                   int64_t dim, float *out);
embed_l2sq_many_fn embed_l2sq_many_impl(void);

/* ------------------------------------------------------------------------
** cells.c: the coarse quantizer of approximate search, a two-level
** k-means: nlist cells in ngroups groups, each cell in one group.
*/
typedef struct embed_cells {
  int64_t dim, nlist, ngroups;
  float *centroids; /* nlist x dim; the cells of group g are group_first[g]
                    ** .. group_first[g+1]-1 */
  float *group_centroids; /* ngroups x dim */
  int64_t *group_first;   /* ngroups + 1 entries, group_first[0] = 0,
                          ** group_first[ngroups] = nlist */
} embed_cells;            /* the caller allocates the three arrays */

/* How many groups for nlist cells: about sqrt(nlist), in [1, nlist]. */
int64_t embed_cells_groups(int64_t nlist);
/* Scratch bytes embed_cells_train needs for n sample rows. */
uint64_t embed_cells_scratch_bytes(int64_t n, int64_t dim, int64_t nlist);
/* Train cells (dim, nlist and ngroups set by the caller, 1 <= ngroups <=
** nlist <= n) on n sample rows: k-means into ngroups groups, then each
** group's rows into a share of the cells proportional to its share of the
** sample (at least one each), `iterations` Lloyd iterations at each level,
** k-means++ seeding from `seed`. Deterministic for the same input and
** kernel level. Returns 0, or -1 with err set on bad arguments. */
int embed_cells_train(const float *sample, int64_t n, uint64_t seed,
                      int iterations, void *scratch, embed_cells *cells,
                      embed_error *err);
/* The cell of row: the nearest cell centroid among the cells of the
** groups_probed groups whose centroids are nearest (every cell when
** groups_probed >= ngroups or > EMBED_CELLS_MAX_PROBE). *d1 (may be NULL)
** = the squared distance to that centroid. */
#define EMBED_CELLS_MAX_PROBE 64
int64_t embed_cells_assign(const embed_cells *cells, const float *row,
                           int groups_probed, double *d1);
/* The m (<= nlist) cells whose centroids are nearest to q, ascending by
** squared L2 (ties by index), into out; exact. scratch: nlist floats. */
void embed_cells_nearest(const embed_cells *cells, const float *q, int64_t m,
                         float *scratch, int64_t *out);

/* ------------------------------------------------------------------------
** initializer.c: the initial vector of row `id` is a pure function of
** (init, seed, id); see the README for the algorithm.
*/
typedef enum embed_init {
  EMBED_INIT_NORMAL = 0,
  EMBED_INIT_UNIFORM,
  EMBED_INIT_ZEROS
} embed_init;

uint64_t embed_mix64(uint64_t x);
void embed_initial_row(embed_init init, uint64_t seed, int64_t id, float *out,
                       int64_t dim);

/* ------------------------------------------------------------------------
** options.c: the options of CREATE VIRTUAL TABLE ... USING embedding(...).
*/
typedef enum embed_metric {
  EMBED_METRIC_COSINE = 0,
  EMBED_METRIC_L2,
  EMBED_METRIC_DOT
} embed_metric;

typedef enum embed_optimizer {
  EMBED_OPTIMIZER_SGD = 0,
  EMBED_OPTIMIZER_ADAGRAD,
  EMBED_OPTIMIZER_ADAM /* torch.optim.SparseAdam */
} embed_optimizer;

typedef struct embed_config {
  int64_t dim;
  int64_t num_embeddings;
  embed_init init;
  int64_t seed;
  int has_seed;
  int64_t padding_idx;
  int has_padding_idx;
  double max_norm; /* 0: none */
  double norm_type;
  int scale_grad_by_freq;
  embed_optimizer optimizer;
  double momentum, dampening, weight_decay;   /* sgd */
  int nesterov;                               /* sgd */
  double lr_decay, initial_accumulator_value; /* adagrad */
  double eps;                                 /* adagrad, adam */
  double beta1, beta2;                        /* adam: betas=(beta1, beta2) */
  int maximize;                               /* every optimizer */
  embed_metric metric;
  int search_cache;   /* keep an in-memory snapshot for similarity search */
  int index_ivf;      /* index=ivf: approximate search over IVF cells */
  int64_t nlist;      /* cells; 0: chosen from the row count at build */
  int64_t nprobe;     /* cells probed per query; 0: the default */
  int64_t oversample; /* candidates re-ranked per result */
  unsigned seen;      /* bit per option given, to catch duplicates */
} embed_config;

void embed_config_defaults(embed_config *cfg);
/* Apply one "key=value" argument. Returns 0, or -1 with err filled. */
int embed_config_apply_arg(embed_config *cfg, const char *arg,
                           embed_error *err);
/* Apply one option by key and value text (already unquoted). */
int embed_config_apply(embed_config *cfg, const char *key, const char *value,
                       embed_error *err);
/* Check the options together (dim given, padding_idx in range, ...). */
int embed_config_finish(embed_config *cfg, embed_error *err);
/* The stored form: option i's key and value text, i in [0, count). */
int embed_config_count(void);
/* Does option i mean anything for this configuration's optimizer? */
int embed_config_applies(const embed_config *cfg, int i);
const char *embed_config_key(int i);
void embed_config_value(const embed_config *cfg, int i, char *out, size_t nout);
const char *embed_metric_name(embed_metric m);

/* ------------------------------------------------------------------------
** optimizer.c: one optimizer step on one row (torch's sparse formulas).
*/
int64_t embed_optimizer_state_size(const embed_config *cfg, int64_t dim);
void embed_optimizer_state_init(const embed_config *cfg, float *state,
                                int64_t dim);
void embed_optimizer_step(const embed_config *cfg, float *w, const float *g,
                          float *state, double lr, int64_t step, int64_t dim);
/* Can a step go in two parts: the state from g and the old state, then
** w from g and the new state (every optimizer with a state but sgd with
** weight_decay)? The parts give the bits of embed_optimizer_step. */
int embed_optimizer_splits(const embed_config *cfg);
void embed_optimizer_state_step(const embed_config *cfg, const float *g,
                                float *state, int64_t step, int64_t dim);
void embed_optimizer_weight_step(const embed_config *cfg, float *w,
                                 const float *g, const float *state, double lr,
                                 int64_t step, int64_t dim);
/* Does the optimizer keep a step count (adagrad, adam, sgd momentum)? */
int embed_optimizer_counts_steps(const embed_config *cfg);
/* Rows a step moves besides the batch's: 0 none, 1 rows with optimizer
** state (sgd momentum), 2 every row (sgd weight_decay), as torch does. */
int embed_optimizer_steps_untouched_rows(const embed_config *cfg);
/* Is a row's state the same as any row's until the row's own step changes
** it (adagrad, adam: torch's dense state, every row at its initial value)?
** Then a table stores each row's state with its weight from the row's
** insert on (layout 3). sgd's momentum buffer exists only for the rows
** stepped since the optimizer's first step, and every step moves all of
** them: a table keeps it in the row too, and marks the rows that have one
** (layout 4, table/store_int.h). */
int embed_optimizer_state_dense(const embed_config *cfg);

/* ------------------------------------------------------------------------
** text.c: reading text: UTF-8 and decimal numbers.
*/
/* Length of the valid UTF-8 prefix of s[0..n): n when all of it is valid.
** NUL, overlong forms, surrogates and code points above U+10FFFF end it. */
int64_t embed_utf8_valid_prefix(const unsigned char *s, int64_t n);

/* The text p[0..n) as an error message shows it, into out: at most max
** bytes of it, cut at a character boundary and followed by "..." when
** shortened; NUL and bytes that are not valid UTF-8 become '?', and so do
** the other control bytes when `controls` is set. The result is valid
** UTF-8; out needs EMBED_QUOTE_SIZE(max) bytes. Returns its length. */
int64_t embed_utf8_quote(const char *p, int64_t n, int64_t max, int controls,
                         char *out);
#define EMBED_QUOTE_SIZE(max) ((max) + 8)

/* What embed_parse_float found. */
typedef enum embed_num_status {
  EMBED_NUM_OK = 0,
  EMBED_NUM_MALFORMED,
  EMBED_NUM_NAN,
  EMBED_NUM_POS_INF,
  EMBED_NUM_NEG_INF,
  EMBED_NUM_RANGE /* finite text beyond float32 */
} embed_num_status;

/* Parse the whole of p[0..n), a decimal number such as "-1.5e-3" (no
** blanks), into the nearest float32, whatever the locale. Returns an
** embed_num_status; *out is set only on EMBED_NUM_OK. "nan", "inf" and
** "infinity" (any case, signed) give their codes, not a number. */
int embed_parse_float(const char *p, int64_t n, float *out);

#endif /* EMBED_CORE_H */
