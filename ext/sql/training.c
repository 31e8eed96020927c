/*
** training.c - the SQL functions embed_lookup, embed_update,
** embed_optimizer_state and embed_optimizer_reset: which table a call
** means (table/registry.c), then the call itself on that table
** (table/train.c, table/train_state.c).
**
** Usage:
**
**     SELECT embed_lookup('tok', 3);             -- named table
**     SELECT embed_lookup(3);                    -- the only embedding table
**     SELECT embed_update('tok', '[3, 1]', :grads, 0.1);
**     SELECT embed_optimizer_state('tok', 3);
**     SELECT embed_optimizer_reset('tok');
**
** The forms bound to a queried table (SELECT embed_update(id, ...) FROM
** tok) reach table/train.c through the module's xFindFunction instead.
** Flags: the writing functions are DIRECTONLY; embed_lookup and
** embed_optimizer_state read a table, so they are neither DETERMINISTIC
** nor INNOCUOUS.
*/
#include "sql/sql.h"
#include "table/table.h"

/* The table argument of a call with argc arguments, of which `base` are
** the function's own (NULL when the table is not named). */
static sqlite3_value *training_table_arg(int argc, sqlite3_value **argv,
                                         int base) {
  return argc > base ? argv[0] : 0;
}

static embed_store *training_resolve(sqlite3_context *ctx, int argc,
                                     sqlite3_value **argv, int base,
                                     const char *who) {
  embed_store *st = 0;
  char *zErr = 0;
  int rc = embed_registry_resolve((embed_registry *)sqlite3_user_data(ctx),
                                  training_table_arg(argc, argv, base), who,
                                  &st, &zErr);
  if (rc) embed_result_error(ctx, rc, zErr);
  return rc ? 0 : st;
}

/* embed_lookup(id) / embed_lookup(table, id) */
static void training_lookup(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv) {
  embed_store *st = training_resolve(ctx, argc, argv, 1, "embed_lookup");
  if (st) embed_train_lookup(ctx, st, argv[argc - 1]);
}

/* embed_update(id, grad, lr) / embed_update(table, id, grad, lr) */
static void training_update(sqlite3_context *ctx, int argc,
                            sqlite3_value **argv) {
  embed_store *st = training_resolve(ctx, argc, argv, 3, "embed_update");
  if (st)
    embed_train_update(ctx, st, argv[argc - 3], argv[argc - 2], argv[argc - 1]);
}

/* embed_optimizer_state(id) / embed_optimizer_state(table, id) */
static void training_state(sqlite3_context *ctx, int argc,
                           sqlite3_value **argv) {
  embed_store *st =
      training_resolve(ctx, argc, argv, 1, "embed_optimizer_state");
  if (st) embed_train_state(ctx, st, argv[argc - 1]);
}

/* embed_optimizer_reset() / embed_optimizer_reset(table) */
static void training_reset(sqlite3_context *ctx, int argc,
                           sqlite3_value **argv) {
  embed_store *st =
      training_resolve(ctx, argc, argv, 0, "embed_optimizer_reset");
  if (st) embed_train_reset(ctx, st);
}

int embed_register_training(sqlite3 *db, embed_registry *registry,
                            embed_registrations *log) {
  static const struct {
    const char *name;
    int nArg, flags;
    void (*fn)(sqlite3_context *, int, sqlite3_value **);
  } fns[] = {
      {"embed_lookup", 1, 0, training_lookup},
      {"embed_lookup", 2, 0, training_lookup},
      {"embed_update", 3, SQLITE_DIRECTONLY, training_update},
      {"embed_update", 4, SQLITE_DIRECTONLY, training_update},
      {"embed_optimizer_state", 1, 0, training_state},
      {"embed_optimizer_state", 2, 0, training_state},
      {"embed_optimizer_reset", 0, SQLITE_DIRECTONLY, training_reset},
      {"embed_optimizer_reset", 1, SQLITE_DIRECTONLY, training_reset},
  };
  size_t i;
  int rc = SQLITE_OK;
  for (i = 0; rc == SQLITE_OK && i < sizeof(fns) / sizeof(fns[0]); i++)
    rc = embed_create_function(log, db, fns[i].name, fns[i].nArg,
                               SQLITE_UTF8 | fns[i].flags, registry, fns[i].fn,
                               0, 0, 0);
  return rc;
}
