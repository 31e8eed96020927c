/*
** fuzz_shadow.c - libFuzzer harness for corrupted shadow tables: a database
** holding an embedding table `t` (dim 4, some rows trained) is loaded fresh
** for each input (sqlite3_deserialize of a template: Adam, whose states are
** in each T_vectors row, or SGD with momentum, whose buffers are there too
** and whose T_state rows mark the rows that have one), the input rewrites
** its shadow tables with plain SQL before the table is first connected (so
** xConnect reads the damage; some edits put an impostor in a shadow
** table's place), and then every read, write, search,
** training path and command runs. Errors are expected; crashes, sanitizer
** reports and leaked statements are not.
**
** Input: the template byte, then up to 8 edits, each a byte picking the
** edit (EDITS) and its values (fuzz_common.h), then bytes picking which
** operations run.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embed.h"
#include "fuzz_common.h"

static const char *const EDITS[] = {
    "UPDATE t_vectors SET vector = ? WHERE id = ?",
    "UPDATE t_state SET state = ? WHERE id = ?",
    "INSERT OR REPLACE INTO t_config(key, value) VALUES (?, ?)",
    "UPDATE t_config SET value = ? WHERE key = 'dim'",
    "UPDATE t_config SET value = ? WHERE key = 'step'",
    "UPDATE t_config SET value = ? WHERE key = (SELECT key FROM t_config "
    "ORDER BY key LIMIT 1 OFFSET abs(?) % 16)",
    "DELETE FROM t_config WHERE key = (SELECT key FROM t_config ORDER BY key "
    "LIMIT 1 OFFSET abs(?) % 16)",
    "DELETE FROM t_vectors WHERE id = ?",
    "DELETE FROM t_state WHERE id = ?",
    "INSERT OR REPLACE INTO t_vectors(id, vector) VALUES (?, ?)",
    "INSERT OR REPLACE INTO t_state(id, state) VALUES (?, ?)",
    "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = "
    "replace(sql, 'NOT NULL', '') WHERE name IN ('t_vectors', 't_state'); "
    "PRAGMA writable_schema = OFF",
    "DROP TABLE t_state",
    "UPDATE t_vectors SET vector = NULL WHERE id = ?",
    /* impostors in a shadow table's place */
    "DROP TABLE t_vectors; CREATE VIEW t_vectors AS SELECT 3 AS id, ? AS vector",
    "ALTER TABLE t_state RENAME COLUMN state TO s",
    "DROP TABLE t_config; CREATE VIRTUAL TABLE t_config USING embedding(dim=2)",
};
#define N_EDITS (sizeof(EDITS) / sizeof(EDITS[0]))

static const char *const OPS[] = {
    "SELECT id, vector FROM t",
    "SELECT vector FROM t WHERE id = 3",
    "SELECT vector FROM t WHERE id IN (1, 2, 3, 4)",
    "SELECT id FROM t WHERE id BETWEEN 1 AND 4 ORDER BY id DESC",
    "SELECT embed_json(embed_lookup('t', 2)), embed_lookup('t', '[1,2,3]')",
    "SELECT id, distance FROM t WHERE vector MATCH '[1,0,0,0]' AND k = 5",
    "BEGIN; SELECT id FROM t WHERE vector MATCH '[0,1,0,0]' AND k = 3; COMMIT",
    "SELECT embed_update('t', 2, '[1,1,1,1]', 0.1)",
    "SELECT embed_update('t', '[1,2,3,1]', '[[1,0,0,0],[0,1,0,0],[0,0,1,0],"
    "[1,1,1,1]]', 0.1)",
    "SELECT embed_update(id, '[1,1,1,1]', 0.5) FROM t WHERE id = 3",
    "UPDATE t SET vector = embed_scale(vector, 2) WHERE id = 3",
    "UPDATE t SET id = 40 WHERE id = 2",
    "INSERT INTO t(id) VALUES (30)",
    "INSERT OR REPLACE INTO t(id, vector) VALUES (3, '[1,2,3,4]')",
    "DELETE FROM t WHERE id = 1",
    "SELECT embed_optimizer_reset('t')",
    "SELECT embed_optimizer_state('t', 2), embed_optimizer_state('t', 5)",
    "INSERT INTO t(t) VALUES ('integrity-check')",
    "INSERT INTO t(t) VALUES ('reset-optimizer')",
    "ALTER TABLE t RENAME TO t2; SELECT count(*) FROM t2",
    "DROP TABLE t",
};
#define N_OPS (sizeof(OPS) / sizeof(OPS[0]))

static const char *const OPTIMIZERS[] = {"optimizer=adam", "momentum=0.9"};
#define N_TEMPLATES (sizeof(OPTIMIZERS) / sizeof(OPTIMIZERS[0]))

static unsigned char *template_db[N_TEMPLATES];
static sqlite3_int64 template_size[N_TEMPLATES];

static void make_template(unsigned which) {
  sqlite3 *db = 0;
  unsigned char *bytes;
  char *sql = sqlite3_mprintf(
      "CREATE VIRTUAL TABLE t USING embedding(dim=4, num_embeddings=6, "
      "seed=3, %s);"
      "SELECT embed_update('t', '[1, 2, 3]', "
      "'[[1,0,0,0],[0,1,0,0],[0,0,1,0]]', 0.1);",
      OPTIMIZERS[which]);
  if (!sql || sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_exec(db, sql, 0, 0, 0) != SQLITE_OK) {
    fprintf(stderr, "fuzz_shadow: setup failed: %s\n", sqlite3_errmsg(db));
    abort();
  }
  sqlite3_free(sql);
  bytes = sqlite3_serialize(db, "main", &template_size[which], 0);
  template_db[which] = (unsigned char *)malloc((size_t)template_size[which]);
  if (!bytes || !template_db[which]) abort();
  memcpy(template_db[which], bytes, (size_t)template_size[which]);
  sqlite3_free(bytes);
  sqlite3_close(db);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in in = {data, size};
  sqlite3 *db = 0;
  unsigned char *copy;
  unsigned edits, i, mask, which;
  if (!template_db[0]) {
    sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
    for (which = 0; which < N_TEMPLATES; which++) make_template(which);
  }
  if (size > 100000) return 0;
  which = fuzz_byte(&in) % N_TEMPLATES;
  copy =
      (unsigned char *)sqlite3_malloc64((sqlite3_uint64)template_size[which]);
  if (!copy) return 0;
  memcpy(copy, template_db[which], (size_t)template_size[which]);
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_deserialize(
          db, "main", copy, template_size[which], template_size[which],
          SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) !=
          SQLITE_OK) {
    fprintf(stderr, "fuzz_shadow: deserialize failed\n");
    abort();
  }
  edits = fuzz_byte(&in) % 9;
  for (i = 0; i < edits; i++)
    fuzz_run(db, EDITS[fuzz_byte(&in) % N_EDITS], &in);
  mask = fuzz_byte(&in) | (fuzz_byte(&in) << 8) | (fuzz_byte(&in) << 16);
  if (!mask) mask = ~0u;
  for (i = 0; i < N_OPS; i++) {
    if (mask & (1u << i)) {
      fuzz_run(db, OPS[i], &in);
      sqlite3_exec(db, "ROLLBACK", 0, 0, 0); /* a failed BEGIN...COMMIT */
    }
  }
  if (sqlite3_close(db) != SQLITE_OK) {
    fprintf(stderr, "fuzz_shadow: sqlite3_close failed (a statement leaked)\n");
    abort();
  }
  return 0;
}
