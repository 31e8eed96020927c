/*
** registry.c - which embedding table a function call means.
**
** Usage (the rules of embed_lookup / embed_update, SPEC section 5):
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
** lists the embedding tables connected on it; vtab.c adds and removes
** entries in xConnect/xCreate and xDisconnect/xDestroy. A name that is not
** connected yet is connected by preparing a statement that reads it. The
** unnamed form reads main.sqlite_schema and picks the CREATE VIRTUAL TABLE
** statements whose module is `embedding` (the module name is found with a
** small tokenizer that respects quoting, so no table name can fool it).
*/
#include <string.h>

#include "table/table.h"

struct embed_registry {
  sqlite3 *db;
  embed_vtab *head;
  int64_t writes;       /* vector writes made by this extension */
  embed_vtab *only;     /* cached answer of the unnamed form... */
  int64_t only_version; /* ...valid while main's schema_version is this */
};

embed_registry *embed_registry_new(sqlite3 *db) {
  embed_registry *reg = (embed_registry *)sqlite3_malloc64(sizeof(*reg));
  if (reg) {
    reg->db = db;
    reg->head = 0;
    reg->only = 0;
    reg->only_version = 0;
    reg->writes = 0;
  }
  return reg;
}

void embed_registry_free(void *registry) {
  sqlite3_free(registry);
}

void embed_registry_note_write(embed_registry *reg) {
  reg->writes++;
}
int64_t embed_registry_writes(embed_registry *reg) {
  return reg->writes;
}

void embed_registry_add(embed_registry *reg, embed_vtab *tab) {
  tab->next = reg->head;
  reg->head = tab;
}

void embed_registry_remove(embed_registry *reg, embed_vtab *tab) {
  embed_vtab **p;
  if (reg->only == tab) reg->only = 0;
  for (p = &reg->head; *p; p = &(*p)->next) {
    if (*p == tab) {
      *p = tab->next;
      return;
    }
  }
}

static embed_vtab *find(embed_registry *reg, const char *schema,
                        const char *name) {
  embed_vtab *tab, *other = 0;
  for (tab = reg->head; tab; tab = tab->next) {
    if (sqlite3_stricmp(tab->name, name) != 0) continue;
    if (schema && sqlite3_stricmp(tab->schema, schema) != 0) continue;
    if (sqlite3_stricmp(tab->schema, "main") == 0) return tab;
    if (!other) other = tab;
  }
  return other;
}

/* Connect a table by preparing a statement that reads it. */
static int touch(sqlite3 *db, const char *schema, const char *name) {
  sqlite3_stmt *stmt = 0;
  char *zSql = schema ? sqlite3_mprintf("SELECT 1 FROM \"%w\".\"%w\" LIMIT 0",
                                        schema, name)
                      : sqlite3_mprintf("SELECT 1 FROM \"%w\" LIMIT 0", name);
  int rc;
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(db, zSql, -1, &stmt, 0);
  sqlite3_free(zSql);
  sqlite3_finalize(stmt);
  return rc;
}

/* Next SQL token of s at *i: sets [*start, *end) and returns its first
** character, or 0 at the end. Quoted identifiers are one token. */
static char next_token(const char *s, int *i, int *start, int *end) {
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

static int token_is(const char *s, int start, int end, const char *word) {
  int n = (int)strlen(word);
  if (end - start == n + 2 && (s[start] == '"' || s[start] == '`' ||
                               s[start] == '[' || s[start] == '\''))
    start++, end--;
  return end - start == n && sqlite3_strnicmp(s + start, word, n) == 0;
}

/* Is this CREATE VIRTUAL TABLE statement's module `embedding`? */
static int uses_embedding_module(const char *sql) {
  int i = 0, start, end, seen_using = 0;
  while (next_token(sql, &i, &start, &end)) {
    if (seen_using) return token_is(sql, start, end, "embedding");
    if (sql[start] != '"' && sql[start] != '`' && sql[start] != '[' &&
        sql[start] != '\'' && token_is(sql, start, end, "using"))
      seen_using = 1;
  }
  return 0;
}

/* main's schema_version, read through a statement the table owns (a
** statement the registry owned would keep sqlite3_close from closing). */
static int schema_version(embed_vtab *tab, int64_t *version) {
  return embed_table_int(tab, STMT_SCHEMA_VERSION, version);
}

static int error_out(char **pzErr, char *zMsg) {
  *pzErr = zMsg;
  return zMsg ? SQLITE_ERROR : SQLITE_NOMEM;
}

/* The only embedding table of main, or an error listing the candidates. */
static int only_table(embed_registry *reg, const char *who, char **name,
                      char **pzErr) {
  sqlite3_stmt *stmt = 0;
  sqlite3_str *list = sqlite3_str_new(reg->db);
  int rc, n = 0;
  *name = 0;
  rc = sqlite3_prepare_v2(reg->db,
                          "SELECT name, sql FROM main.sqlite_schema "
                          "WHERE type = 'table' AND sql LIKE "
                          "'CREATE VIRTUAL TABLE%' ORDER BY name",
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
    rc = n == 0 ? error_out(pzErr,
                            sqlite3_mprintf("%s: no embedding table in the "
                                            "main schema; create one or name "
                                            "it as the first argument",
                                            who))
                : error_out(pzErr, sqlite3_mprintf(
                                       "%s: %d embedding tables (%s); "
                                       "name one as the first argument",
                                       who, n, candidates ? candidates : ""));
  }
  sqlite3_free(sqlite3_str_finish(list));
  return rc;
}

int embed_registry_resolve(embed_registry *reg, sqlite3_value *namev,
                           const char *who, embed_vtab **out, char **pzErr) {
  char *owned = 0;
  const char *name, *dot;
  int rc = SQLITE_OK;
  *out = 0;
  if (namev == 0) { /* refuse to guess while a query reads another schema's */
    embed_vtab *other;
    for (other = reg->head; other; other = other->next) {
      if (other->open_cursors > 0 &&
          sqlite3_stricmp(other->schema, "main") != 0)
        return error_out(pzErr,
                         sqlite3_mprintf("%s: embedding table %s.%s is in use "
                                         "outside the main schema; name the "
                                         "table as the first argument",
                                         who, other->schema, other->name));
    }
  }
  if (namev == 0 && reg->only) { /* the unnamed form, asked again */
    int64_t version = -1;
    if (schema_version(reg->only, &version) == SQLITE_OK &&
        version == reg->only_version) {
      *out = reg->only;
      return SQLITE_OK;
    }
    reg->only = 0;
  }
  if (namev == 0) {
    rc = only_table(reg, who, &owned, pzErr);
    if (rc) return rc;
    name = owned;
  } else if (sqlite3_value_type(namev) == SQLITE_TEXT) {
    name = (const char *)sqlite3_value_text(namev);
    if (!name) return SQLITE_NOMEM;
  } else {
    return error_out(
        pzErr, sqlite3_mprintf("%s: the table name must be TEXT, got %s", who,
                               embed_type_name(sqlite3_value_type(namev))));
  }
  *out = find(reg, namev ? 0 : "main", name);
  if (!*out && touch(reg->db, namev ? 0 : "main", name) == SQLITE_OK)
    *out = find(reg, namev ? 0 : "main", name);
  if (!*out && namev && (dot = strchr(name, '.')) != 0) {
    /* "schema.table" */
    char *schema = sqlite3_mprintf("%.*s", (int)(dot - name), name);
    if (!schema) {
      rc = SQLITE_NOMEM;
    } else {
      *out = find(reg, schema, dot + 1);
      if (!*out && touch(reg->db, schema, dot + 1) == SQLITE_OK)
        *out = find(reg, schema, dot + 1);
    }
    sqlite3_free(schema);
  }
  if (!*out && rc == SQLITE_OK)
    rc = error_out(
        pzErr, sqlite3_mprintf("%s: no embedding table named '%s'", who, name));
  if (*out && namev == 0 &&
      schema_version(*out, &reg->only_version) == SQLITE_OK)
    reg->only = *out;
  sqlite3_free(owned);
  return rc;
}
