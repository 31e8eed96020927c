/*
** store_check.c - what the storage layer checks of its shadow tables: at
** connect, that each one is what it claims to be; for the integrity check
** (table/integrity.c), that the config and optimizer-state rows are sound.
** Part of the storage layer (table/store.h).
**
** Usage:
**
**     rc = embed_store_check_shadows(st, &zErr);   // embed_store_open does
**     rc = embed_store_check_config(st, &zErr);    // (both in store_schema.c,
**     rc = embed_store_check_state(st, &zErr);     //  which has the list)
**
** Design:
**  - A shadow table must be an ordinary table: its sqlite_schema row has
**    type 'table', a b-tree (rootpage > 0) and SQL that is not CREATE
**    VIRTUAL TABLE; its columns (PRAGMA table_xinfo: name, declared type,
**    primary key) are those of its DDL in store_schema.c, in order; it is a
**    WITHOUT ROWID table exactly when the DDL says so. (NOT NULL and CHECK
**    are not compared: a damaged value is caught where it is read. Whether
**    the stored SQL holds the DDL exactly is reported to the caller, which
**    tells T_vectors of this version's CHECK from an older one's.) The
**    list of shadow tables and the expected columns come from
**    store_schema.c's table (embed_store_check_shadows there passes them
**    in), so every shadow table is checked, however many there are. A
**    view, an index or a virtual table (of embedding or any other module)
**    in a shadow table's place, or a table
**    of other columns, makes the table refuse to open with a message that
**    names the shadow table and what it is instead; the statements of
**    store.c are prepared with SQLITE_PREPARE_NO_VTAB besides. The checks
**    read sqlite_schema, and the columns only of what is an ordinary
**    table, so an impostor virtual table is never connected.
**  - The config check (embed_store_check_config, in store_schema.c) reads
**    T_config through the same parser as connect; here the stored text of
**    every option is compared with the one the table was opened with, and
**    the step row must be a count.
**  - The state check is one pass over T_state (LEFT JOIN T_vectors) in id
**    order: SQL type, length for the optimizer, finiteness, an existing id.
** Every finding is SQLITE_CORRUPT_VTAB with "embedding T: ..." naming the
** table, the shadow table or id, and what is wrong.
*/
#include <string.h>

#include "table/store_int.h"

static int check_is_constraint(const char *p, int64_t n) {
  static const char *const words[] = {"PRIMARY", "UNIQUE", "CHECK", "FOREIGN",
                                      "CONSTRAINT"};
  size_t i;
  for (i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    if ((int64_t)strlen(words[i]) == n && sqlite3_strnicmp(p, words[i], n) == 0)
      return 1;
  return 0;
}

/* Length of the identifier at p (unquoted: letters, digits, '_'). */
static int64_t check_word(const char *p) {
  int64_t n = 0;
  while ((p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') ||
         (p[n] >= '0' && p[n] <= '9') || p[n] == '_')
    n++;
  return n;
}

/* The columns of a DDL column list "(a TYPE ..., b ...) ...", as
** "a TYPE[ PRIMARY KEY], b ..." (sqlite3_mprintf'd; NULL when out of
** memory), the form check_shape reads back from PRAGMA table_xinfo. The
** DDL is store_schema.c's: unquoted names, table constraints skipped. */
static char *check_ddl_columns(const char *ddl) {
  sqlite3_str *out = sqlite3_str_new(0);
  const char *p = strchr(ddl, '(');
  int depth = 1, n = 0;
  while (p && *p && depth > 0) {
    const char *name, *item, *type;
    int64_t len, type_len = 0;
    p++;
    while (*p == ' ') p++;
    item = name = p;
    len = check_word(name);
    p += len;
    while (*p == ' ') p++;
    type = p;
    if (!check_is_constraint(p, check_word(p))) type_len = check_word(p);
    for (; *p; p++) { /* to the comma or parenthesis that ends the item */
      if (*p == '(') depth++;
      if (*p == ')' && --depth == 0) break;
      if (*p == ',' && depth == 1) break;
    }
    if (len == 0 || check_is_constraint(name, len)) continue;
    sqlite3_str_appendf(out, "%s%.*s", n++ ? ", " : "", (int)len, name);
    if (type_len) sqlite3_str_appendf(out, " %.*s", (int)type_len, type);
    {
      const char *pk = item;
      while (pk < p && sqlite3_strnicmp(pk, "PRIMARY KEY", 11) != 0) pk++;
      if (pk < p) sqlite3_str_appendall(out, " PRIMARY KEY");
    }
  }
  return sqlite3_str_finish(out);
}

/* A statement's one TEXT result (NULL for none), sqlite3_mprintf'd. */
static int check_text_result(sqlite3_stmt *stmt, char **out) {
  int rc = sqlite3_step(stmt);
  *out = 0;
  if (rc == SQLITE_ROW) {
    const unsigned char *t = sqlite3_column_text(stmt, 0);
    if (t) *out = sqlite3_mprintf("%s", t);
    rc = t && !*out ? SQLITE_NOMEM : SQLITE_OK;
  } else if (rc == SQLITE_DONE) {
    rc = SQLITE_OK;
  }
  sqlite3_reset(stmt);
  return rc;
}

/* Shadow table `name`, an ordinary table: the columns and the rowid of
** its DDL? */
static int check_shape(embed_store *st, const char *ddl, const char *name,
                       sqlite3_stmt *columns, sqlite3_stmt *wr, char **pzErr) {
  char *want = check_ddl_columns(ddl), *have = 0;
  int rc = want ? SQLITE_OK : SQLITE_NOMEM;
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(columns, 1, name, -1, SQLITE_STATIC);
    rc = check_text_result(columns, &have);
  }
  if (rc == SQLITE_OK && (!have || sqlite3_stricmp(have, want) != 0)) {
    rc = store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: shadow table %s has the columns (%s), expected (%s)",
            st->name, name, have ? have : "", want));
  } else if (rc == SQLITE_OK) {
    int want_wr = strstr(ddl, "WITHOUT ROWID") != 0;
    sqlite3_bind_text(wr, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(wr);
    if (rc == SQLITE_ROW && sqlite3_column_int(wr, 0) != want_wr)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: shadow table %s is %s table, expected %s table",
              st->name, name, want_wr ? "a rowid" : "a WITHOUT ROWID",
              want_wr ? "a WITHOUT ROWID" : "a rowid"));
    else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
      rc = SQLITE_OK;
    sqlite3_reset(wr);
  }
  sqlite3_free(want);
  sqlite3_free(have);
  return rc;
}

int store_check_shapes(embed_store *st, const char *const *suffix,
                       const char *const *ddl, int n, unsigned *same_ddl,
                       char **pzErr) {
  sqlite3_stmt *kind = 0, *columns = 0, *wr = 0;
  int i, rc = SQLITE_OK;
  store_prepare(
      st, &kind,
      sqlite3_mprintf(
          "SELECT type, rootpage = 0 OR sql LIKE 'CREATE VIRTUAL TABLE%%', instr(sql, ?2) > 0 FROM %s.sqlite_schema WHERE name = ?1 COLLATE NOCASE AND type IN ('table', 'view', 'index') ORDER BY type = 'table' DESC",
          st->names[ON_SCHEMA]),
      &rc);
  /* the pragmas are (eponymous) virtual tables: no SQLITE_PREPARE_NO_VTAB */
  if (rc == SQLITE_OK)
    rc = embed_prepare(
        st->db,
        sqlite3_mprintf(
            "SELECT group_concat(name || iif(type <> '', ' ' || type, '') || iif(pk, ' PRIMARY KEY', ''), ', ') FROM (SELECT * FROM pragma_table_xinfo(?1, %Q) ORDER BY cid)",
            st->schema),
        0, &columns);
  if (rc == SQLITE_OK)
    rc = embed_prepare(
        st->db,
        sqlite3_mprintf(
            "SELECT wr FROM pragma_table_list(?1) WHERE schema = %Q",
            st->schema),
        0, &wr);
  if (rc != SQLITE_OK && rc != SQLITE_NOMEM) {
    *pzErr = sqlite3_mprintf("embedding %s: cannot check the shadow tables: %s",
                             st->name, sqlite3_errmsg(st->db));
    if (!*pzErr) rc = SQLITE_NOMEM;
  }
  for (i = 0; rc == SQLITE_OK && i < n; i++) {
    char *name = sqlite3_mprintf("%s_%s", st->name, suffix[i]);
    if (!name) {
      rc = SQLITE_NOMEM;
      break;
    }
    sqlite3_bind_text(kind, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(kind, 2, ddl[i], -1, SQLITE_STATIC);
    rc = sqlite3_step(kind);
    if (rc == SQLITE_DONE) {
      rc = store_corrupt(
          pzErr, sqlite3_mprintf("embedding %s: shadow table %s is missing",
                                 st->name, name));
    } else if (rc == SQLITE_ROW) {
      const char *type = (const char *)sqlite3_column_text(kind, 0);
      int is_virtual = sqlite3_column_int(kind, 1);
      if (sqlite3_column_int(kind, 2)) *same_ddl |= 1u << i;
      if (!type) {
        rc = SQLITE_NOMEM;
      } else if (strcmp(type, "table") != 0) {
        rc = store_corrupt(
            pzErr,
            sqlite3_mprintf(
                "embedding %s: shadow table %s is %s %s, not a table", st->name,
                name, strcmp(type, "index") == 0 ? "an" : "a", type));
      } else if (is_virtual) {
        rc = store_corrupt(
            pzErr,
            sqlite3_mprintf(
                "embedding %s: shadow table %s is a virtual table, not an ordinary table",
                st->name, name));
      } else {
        sqlite3_reset(kind);
        rc = check_shape(st, ddl[i], name, columns, wr, pzErr);
      }
    }
    sqlite3_reset(kind);
    sqlite3_free(name);
  }
  sqlite3_finalize(kind);
  sqlite3_finalize(columns);
  sqlite3_finalize(wr);
  return rc;
}

int store_check_config_same(embed_store *st, const embed_config *stored,
                            int stored_layout, char **pzErr) {
  int64_t step;
  int i, rc = SQLITE_OK;
  if (stored_layout != st->layout)
    return store_corrupt(
        pzErr,
        sqlite3_mprintf(
            "embedding %s: corrupt %s_config: layout is %d, but the table was opened with %d",
            st->name, st->name, stored_layout, st->layout));
  for (i = 0; rc == SQLITE_OK && i < embed_config_count(); i++) {
    char was[64], now[64];
    if (!embed_config_applies(&st->cfg, i) && !embed_config_applies(stored, i))
      continue;
    embed_config_value(&st->cfg, i, was, sizeof(was));
    embed_config_value(stored, i, now, sizeof(now));
    if (strcmp(was, now) != 0)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_config: %s is '%s', but the table was opened with '%s'",
              st->name, st->name, embed_config_key(i), now, was));
  }
  if (rc == SQLITE_OK) rc = embed_store_step_read(st, &step, pzErr);
  return rc;
}

/* The states kept in the rows (layouts 3 and 4): each row's, after its
** weight, finite (the rows' length and weights are the vector scan's); in
** a table that marks its rows with a momentum buffer (layout 4), a row
** without a mark holds the initial state, as its insert wrote it. */
static int check_states_in_rows(embed_store *st, char **pzErr) {
  embed_scan *scan = 0;
  int64_t weight = st->cfg.dim * EMBED_FLOAT_BYTES, *marked = 0, n_marked = 0,
          at = 0;
  size_t tail = (size_t)st->row_state * EMBED_FLOAT_BYTES;
  int marks = embed_store_state_marks(st);
  int rc = marks ? embed_store_ids(st, 1, &marked, &n_marked) : SQLITE_OK;
  if (rc == SQLITE_OK) rc = embed_scan_new(st, &scan);
  if (rc == SQLITE_OK) rc = embed_scan_start(scan, 0, INT64_MIN, INT64_MAX);
  while (rc == SQLITE_OK && (rc = embed_scan_step(scan)) == SQLITE_ROW) {
    const void *bytes;
    int64_t id = embed_scan_id(scan);
    rc = embed_scan_bytes(scan, &bytes, pzErr);
    if (rc == SQLITE_OK)
      rc = store_state_decode(st, id, SQLITE_BLOB, (const char *)bytes + weight,
                              (int64_t)tail, st->row_state, 0, pzErr);
    while (at < n_marked && marked[at] < id) at++;
    if (rc == SQLITE_OK && marks && !(at < n_marked && marked[at] == id) &&
        memcmp((const char *)bytes + weight, st->row_tail, tail) != 0)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_vectors: id %lld holds a momentum buffer, but %s_state has no mark for it",
              st->name, st->name, (long long)id, st->name));
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  embed_scan_free(scan);
  sqlite3_free(marked);
  return rc;
}

int embed_store_check_state(embed_store *st, char **pzErr) {
  sqlite3_stmt *stmt = 0;
  int64_t n =
      st->row_state ? 0 : embed_optimizer_state_size(&st->cfg, st->cfg.dim);
  int rc = SQLITE_OK, marks = embed_store_state_marks(st);
  store_prepare(
      st, &stmt,
      sqlite3_mprintf(
          "SELECT s.id, s.state, v.id IS NULL FROM %s AS s LEFT JOIN %s AS v ON v.id = s.id ORDER BY s.id",
          st->names[SHADOW_STATE], st->names[SHADOW_VECTORS]),
      &rc);
  while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    long long id = sqlite3_column_int64(stmt, 0);
    int type = sqlite3_column_type(stmt, 1); /* before reading converts it */
    const void *bytes = sqlite3_column_blob(stmt, 1);
    int64_t nbytes = sqlite3_column_bytes(stmt, 1);
    embed_error err;
    rc = SQLITE_OK;
    if (sqlite3_column_int(stmt, 2))
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_state: a state for id %lld, which the table does not have",
              st->name, st->name, id));
    else if (marks && (type != SQLITE_BLOB || nbytes != 0))
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_state: the mark of id %lld is not an empty BLOB (the table keeps its momentum buffers in %s_vectors)",
              st->name, st->name, id, st->name));
    else if (marks)
      continue;
    else if (n == 0 && st->row_state)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_state: a state for id %lld, but the table keeps its states in %s_vectors",
              st->name, st->name, id, st->name));
    else if (n == 0)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt %s_state: a state for id %lld, but the optimizer keeps none",
              st->name, st->name, id));
    else if (type != SQLITE_BLOB)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt optimizer state for id %lld (%s, not a BLOB)",
              st->name, id, embed_type_name(type)));
    else if (nbytes != n * EMBED_FLOAT_BYTES)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt optimizer state for id %lld (%lld bytes, expected %lld)",
              st->name, id, (long long)nbytes,
              (long long)(n * EMBED_FLOAT_BYTES)));
    else if (embed_blob_check(bytes, n, &err) != EMBED_OK)
      rc = store_corrupt(
          pzErr,
          sqlite3_mprintf(
              "embedding %s: corrupt optimizer state for id %lld (element %lld is not finite)",
              st->name, id, (long long)err.a));
  }
  if (rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_finalize(stmt);
  if (rc == SQLITE_OK && st->row_state) rc = check_states_in_rows(st, pzErr);
  return rc;
}
