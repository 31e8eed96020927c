/*
** registry.c - which embedding table a function call means.
**
** Usage (the rules of embed_lookup / embed_update, README "Lookup and
** training"):
**
**     SELECT embed_lookup('tok', 3);               -- named: table tok
**     SELECT embed_update(id, :g, 0.1) FROM tok;   -- bound via xFindFunction
**     SELECT embed_lookup(3);                      -- the only embedding
**                                                  -- table in main, or an
**                                                  -- error listing them
**
** SQLite does not call xFindFunction for a column inside an aggregate
** (count(embed_update(id, ...)) FROM aux.tok), so such a call arrives
** unbound: to never pick main's table for a query over another schema's,
** the unnamed form is an error while a statement reads an embedding table
** of another schema (the table has open cursors).
**
** Design: each connection has one registry (the module's client data) that
** lists the embedding tables connected on it; the module (module.c) adds
** and removes entries in xConnect/xCreate and xDisconnect/xDestroy. A name that
** is not connected yet is connected by preparing a statement that reads it. The
** unnamed form reads main.sqlite_schema and picks the CREATE VIRTUAL TABLE
** statements whose module is `embedding` (the module name is found with a small
** tokenizer that respects quoting, so no table name can fool it).
*/
#include <string.h>

#include "table/table.h"

struct embed_registry_entry {
  embed_store *st;
  int readers; /* statements reading the table now */
  embed_registry_entry *next;
};

struct embed_registry {
  sqlite3 *db;
  embed_registry_entry *head;
  embed_registry_entry *only; /* cached answer of the unnamed form... */
  int64_t only_version;       /* ...valid while main's schema_version is this */
};

embed_registry *embed_registry_new(sqlite3 *db) {
  embed_registry *reg = (embed_registry *)sqlite3_malloc64(sizeof(*reg));
  if (reg) {
    reg->db = db;
    reg->head = 0;
    reg->only = 0;
    reg->only_version = 0;
  }
  return reg;
}

void embed_registry_free(void *registry) {
  embed_registry *reg = (embed_registry *)registry;
  while (reg && reg->head) embed_registry_remove(reg, reg->head);
  sqlite3_free(reg);
}

embed_registry_entry *embed_registry_add(embed_registry *reg, embed_store *st) {
  embed_registry_entry *e =
      (embed_registry_entry *)sqlite3_malloc64(sizeof(*e));
  if (!e) return 0;
  e->st = st;
  e->readers = 0;
  e->next = reg->head;
  reg->head = e;
  return e;
}

void embed_registry_remove(embed_registry *reg, embed_registry_entry *entry) {
  embed_registry_entry **p;
  if (reg->only == entry) reg->only = 0;
  for (p = &reg->head; *p; p = &(*p)->next) {
    if (*p == entry) {
      *p = entry->next;
      sqlite3_free(entry);
      return;
    }
  }
}

void embed_registry_reading(embed_registry_entry *entry, int delta) {
  entry->readers += delta;
}

static embed_registry_entry *registry_find(embed_registry *reg,
                                           const char *schema,
                                           const char *name) {
  embed_registry_entry *e, *other = 0;
  for (e = reg->head; e; e = e->next) {
    if (sqlite3_stricmp(embed_store_name(e->st), name) != 0) continue;
    if (schema && sqlite3_stricmp(embed_store_schema(e->st), schema) != 0)
      continue;
    if (sqlite3_stricmp(embed_store_schema(e->st), "main") == 0) return e;
    if (!other) other = e;
  }
  return other;
}

/* Connect a table by preparing a statement that reads it. SQLITE_ERROR:
** no such table (or not one that can be read); another code: a table that
** exists but cannot be connected (a damaged embedding table, whose message
** is the connection's), or out of memory. */
static int registry_touch(sqlite3 *db, const char *schema, const char *name) {
  sqlite3_stmt *stmt;
  int rc = embed_prepare(
      db,
      schema
          ? sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w\" LIMIT 0", schema, name)
          : sqlite3_mprintf("SELECT 1 FROM \"%w\" LIMIT 0", name),
      0, &stmt);
  sqlite3_finalize(stmt);
  return rc;
}

/* Next SQL token of s at *i: sets [*start, *end) and returns its first
** character, or 0 at the end. Quoted identifiers are one token. */
static char registry_next_token(const char *s, int *i, int *start, int *end) {
  char c;
  while (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r')
    (*i)++;
  *start = *i;
  c = s[*i];
  if (!c) return 0;
  if (c == '"' || c == '\'' || c == '`' || c == '[') {
    char close = c == '[' ? ']' : c;
    (*i)++;
    while (s[*i]) {
      if (s[*i] == close) {
        if (close != ']' && s[*i + 1] == close) {
          *i += 2;
          continue;
        }
        (*i)++;
        break;
      }
      (*i)++;
    }
  } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (unsigned char)c >= 0x80) {
    while ((s[*i] >= 'a' && s[*i] <= 'z') || (s[*i] >= 'A' && s[*i] <= 'Z') ||
           (s[*i] >= '0' && s[*i] <= '9') || s[*i] == '_' || s[*i] == '$' ||
           (unsigned char)s[*i] >= 0x80)
      (*i)++;
  } else {
    (*i)++;
  }
  *end = *i;
  return c;
}

static int registry_token_is(const char *s, int start, int end,
                             const char *word) {
  int n = (int)strlen(word);
  if (end - start == n + 2 && (s[start] == '"' || s[start] == '`' ||
                               s[start] == '[' || s[start] == '\''))
    start++, end--;
  return end - start == n && sqlite3_strnicmp(s + start, word, n) == 0;
}

/* Is this CREATE VIRTUAL TABLE statement's module `embedding`? */
static int uses_embedding_module(const char *sql) {
  int i = 0, start, end, seen_using = 0;
  while (registry_next_token(sql, &i, &start, &end)) {
    if (seen_using) return registry_token_is(sql, start, end, "embedding");
    if (sql[start] != '"' && sql[start] != '`' && sql[start] != '[' &&
        sql[start] != '\'' && registry_token_is(sql, start, end, "using"))
      seen_using = 1;
  }
  return 0;
}

/* A table that exists but would not connect: its own error (which names
** it, "embedding T: ..."), or out of memory. */
static int registry_refused(sqlite3 *db, int rc, char **pzErr) {
  if (rc == SQLITE_NOMEM) return rc;
  if ((sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff))
    rc = sqlite3_extended_errcode(db); /* SQLITE_CORRUPT_VTAB */
  *pzErr = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  return *pzErr ? rc : SQLITE_NOMEM;
}

/* The only embedding table of main, or an error listing the candidates. */
static int registry_only_table(embed_registry *reg, const char *who,
                               char **name, char **pzErr) {
  sqlite3_stmt *stmt = 0;
  sqlite3_str *list = sqlite3_str_new(reg->db);
  int rc, n = 0;
  *name = 0;
  rc = sqlite3_prepare_v2(
      reg->db,
      "SELECT name, sql FROM main.sqlite_schema WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%' ORDER BY name",
      -1, &stmt, 0);
  while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    const char *tname = (const char *)sqlite3_column_text(stmt, 0);
    const char *sql = (const char *)sqlite3_column_text(stmt, 1);
    if (!tname || !sql || !uses_embedding_module(sql)) continue;
    sqlite3_str_appendf(list, "%s%s", n ? ", " : "", tname);
    if (n++ == 0) *name = sqlite3_mprintf("%s", tname);
  }
  if (rc == SQLITE_OK)
    rc = sqlite3_finalize(stmt);
  else
    sqlite3_finalize(stmt);
  if (rc == SQLITE_OK && n == 1 && !*name) rc = SQLITE_NOMEM;
  if (rc == SQLITE_OK && n != 1) {
    char *candidates = sqlite3_str_value(list);
    sqlite3_free(*name);
    *name = 0;
    rc =
        n == 0
            ? embed_fail(
                  pzErr,
                  sqlite3_mprintf(
                      "%s: no embedding table in the main schema; create one or name it as the first argument",
                      who))
            : embed_fail(
                  pzErr,
                  sqlite3_mprintf(
                      "%s: %d embedding tables (%s); name one as the first argument",
                      who, n, candidates ? candidates : ""));
  }
  sqlite3_free(sqlite3_str_finish(list));
  return rc;
}

/* main's schema_version is read through a statement the table's storage
** owns (a statement the registry owned would keep sqlite3_close from
** closing). */
int embed_registry_resolve(embed_registry *reg, sqlite3_value *namev,
                           const char *who, embed_store **out, char **pzErr) {
  embed_registry_entry *found = 0;
  char *owned = 0;
  const char *name, *dot;
  int rc = SQLITE_OK;
  *out = 0;
  if (namev == 0) { /* refuse to guess while a query reads another schema's */
    embed_registry_entry *other;
    for (other = reg->head; other; other = other->next) {
      if (other->readers > 0 &&
          sqlite3_stricmp(embed_store_schema(other->st), "main") != 0)
        return embed_fail(
            pzErr,
            sqlite3_mprintf(
                "%s: embedding table %s.%s is in use outside the main schema; name the table as the first argument",
                who, embed_store_schema(other->st),
                embed_store_name(other->st)));
    }
  }
  if (namev == 0 && reg->only) { /* the unnamed form, asked again */
    int64_t version = -1;
    if (embed_store_schema_version(reg->only->st, &version) == SQLITE_OK &&
        version == reg->only_version) {
      *out = reg->only->st;
      return SQLITE_OK;
    }
    reg->only = 0;
  }
  if (namev == 0) {
    rc = registry_only_table(reg, who, &owned, pzErr);
    if (rc) return rc;
    name = owned;
  } else if (sqlite3_value_type(namev) == SQLITE_TEXT) {
    name = (const char *)sqlite3_value_text(namev);
    if (!name) return SQLITE_NOMEM;
  } else {
    return embed_fail(
        pzErr, sqlite3_mprintf("%s: the table name must be TEXT, got %s", who,
                               embed_type_name(sqlite3_value_type(namev))));
  }
  found = registry_find(reg, namev ? 0 : "main", name);
  if (!found) {
    int touched = registry_touch(reg->db, namev ? 0 : "main", name);
    if (touched == SQLITE_OK)
      found = registry_find(reg, namev ? 0 : "main", name);
    else if (touched != SQLITE_ERROR)
      rc = registry_refused(reg->db, touched, pzErr);
  }
  if (!found && rc == SQLITE_OK && namev && (dot = strchr(name, '.')) != 0) {
    /* "schema.table" */
    char *schema = sqlite3_mprintf("%.*s", (int)(dot - name), name);
    if (!schema) {
      rc = SQLITE_NOMEM;
    } else {
      found = registry_find(reg, schema, dot + 1);
      if (!found) {
        int touched = registry_touch(reg->db, schema, dot + 1);
        if (touched == SQLITE_OK)
          found = registry_find(reg, schema, dot + 1);
        else if (touched != SQLITE_ERROR)
          rc = registry_refused(reg->db, touched, pzErr);
      }
    }
    sqlite3_free(schema);
  }
  if (!found && rc == SQLITE_OK) {
    char *shown = namev ? embed_value_shown(namev)
                        : embed_text_shown(name, (int64_t)strlen(name));
    rc = shown ? embed_fail(pzErr,
                            sqlite3_mprintf("%s: no embedding table named '%s'",
                                            who, shown))
               : SQLITE_NOMEM;
    sqlite3_free(shown);
  }
  if (found && namev == 0 &&
      embed_store_schema_version(found->st, &reg->only_version) == SQLITE_OK)
    reg->only = found;
  if (found) *out = found->st;
  sqlite3_free(owned);
  return rc;
}
