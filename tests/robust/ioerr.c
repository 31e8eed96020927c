/*
** ioerr.c - the I/O-error sweep: training on a file database survives any
** failed read, write, sync or truncate: the error reaches the caller, the
** file stays intact, committed steps are kept and uncommitted ones vanish.
**
**     make build/ioerr && build/ioerr   (the default sweep, a few seconds)
**     build/ioerr --long                (24 steps, both policies at every N)
**     build/ioerr -v                    (print every finding)
**     IOERR_AT=N build/ioerr            (one run, every I/O call traced)
**
** How: a wrapper VFS ("faulty", over the default one) counts the xRead,
** xWrite, xSync and xTruncate calls on every file (database, journal, WAL)
** and fails call number N (and, in a second sweep, every call from N on):
** xRead with SQLITE_IOERR_READ, xWrite with
** SQLITE_IOERR_WRITE or (odd N) SQLITE_FULL, xSync with SQLITE_IOERR_FSYNC,
** xTruncate with SQLITE_IOERR_TRUNCATE. The workload trains two tables (SGD
** and Adam) on a copy of a template database, in two kinds of step:
**
**   txn:  BEGIN; INSERT INTO log ...; SELECT embed_update('s', ...);
**         SELECT embed_update('a', ...); SELECT embed_lookup(...);
**         INSERT INTO a(a) VALUES ('integrity-check');
**         INSERT INTO s(s) VALUES ('reset-optimizer');
**         INSERT INTO s(s) VALUES ('build-index');  (s is index=ivf)
**         SELECT ... FROM s WHERE vector MATCH ... AND k = 5; COMMIT
**   one:  INSERT INTO log(step, n) VALUES (?, embed_update('a', ...))
**
** Two policies alternate with N: "rollback" (a statement error in a
** transaction rolls it back, as an application would) and "continue" (the
** failed statement is skipped and the transaction is committed anyway, which
** tests that a failed embed_update changed nothing: statement atomicity).
** After the run the connection is closed, the file reopened with the real
** VFS (rolling back a hot journal or recovering the WAL), and:
**
**   - PRAGMA integrity_check is "ok";
**   - the log holds every step whose COMMIT succeeded and none whose
**     statements failed before COMMIT; a step whose COMMIT (or autocommit
**     statement) failed may go either way (a failed sync can leave a valid
**     commit in a WAL), decided by its log row;
**   - every shadow table (vectors, optimizer state, step count) equals a
**     replay of exactly those statements on a fresh copy of the template;
**   - every injected fault surfaced as an error of the statement it hit.
**
** Both journal modes (DELETE and WAL) are swept. The last line is
** "ioerr: F faults injected, X failures".
*/
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embed.h"
#include "harness.h"

/* ---------------------------------------------------------------- the VFS */

static struct {
  const char *what; /* the call that failed last, for -v */
  int armed;
  long count;   /* I/O calls counted while armed */
  long fail_at; /* 0: never */
  int persist;
  long fired;
} F;

typedef struct faulty_file {
  sqlite3_file base;
  sqlite3_file *real; /* follows this struct in the same allocation */
} faulty_file;

static sqlite3_vfs *real_vfs;

static int trace;

static int fault(int code) {
  if (!F.armed) return 0;
  F.count++;
  if (trace)
    fprintf(stderr, "  io #%ld %s%s\n", F.count,
            code == SQLITE_IOERR_READ       ? "xRead"
            : code == SQLITE_IOERR_TRUNCATE ? "xTruncate"
            : code == SQLITE_IOERR_FSYNC    ? "xSync"
                                            : "xWrite",
            F.fail_at && F.count == F.fail_at ? "  <== FAILS" : "");
  if (F.fail_at &&
      (F.count == F.fail_at || (F.persist && F.count > F.fail_at))) {
    F.fired++;
    F.what = code == SQLITE_IOERR_READ       ? "xRead"
             : code == SQLITE_IOERR_TRUNCATE ? "xTruncate"
             : code == SQLITE_IOERR_FSYNC    ? "xSync"
                                             : "xWrite";
    return code;
  }
  return 0;
}

#define REAL(f) (((faulty_file *)(f))->real)

static int fClose(sqlite3_file *f) {
  int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
  return rc;
}
static int fRead(sqlite3_file *f, void *p, int n, sqlite3_int64 off) {
  int rc = fault(SQLITE_IOERR_READ);
  return rc ? rc : REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int fWrite(sqlite3_file *f, const void *p, int n, sqlite3_int64 off) {
  int rc = fault(F.count % 2 ? SQLITE_FULL : SQLITE_IOERR_WRITE);
  return rc ? rc : REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int fTruncate(sqlite3_file *f, sqlite3_int64 size) {
  int rc = fault(SQLITE_IOERR_TRUNCATE);
  return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int fSync(sqlite3_file *f, int flags) {
  int rc = fault(SQLITE_IOERR_FSYNC);
  return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}
static int fFileSize(sqlite3_file *f, sqlite3_int64 *size) {
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int fLock(sqlite3_file *f, int lock) {
  return REAL(f)->pMethods->xLock(REAL(f), lock);
}
static int fUnlock(sqlite3_file *f, int lock) {
  return REAL(f)->pMethods->xUnlock(REAL(f), lock);
}
static int fCheckReservedLock(sqlite3_file *f, int *out) {
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int fFileControl(sqlite3_file *f, int op, void *arg) {
  return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int fSectorSize(sqlite3_file *f) {
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int fDeviceCharacteristics(sqlite3_file *f) {
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int fShmMap(sqlite3_file *f, int pg, int sz, int extend,
                   void volatile **pp) {
  return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int fShmLock(sqlite3_file *f, int offset, int n, int flags) {
  return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void fShmBarrier(sqlite3_file *f) {
  REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int fShmUnmap(sqlite3_file *f, int del) {
  return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static const sqlite3_io_methods faulty_io = {
    2, /* no xFetch/xUnfetch: every page goes through xRead */
    fClose,
    fRead,
    fWrite,
    fTruncate,
    fSync,
    fFileSize,
    fLock,
    fUnlock,
    fCheckReservedLock,
    fFileControl,
    fSectorSize,
    fDeviceCharacteristics,
    fShmMap,
    fShmLock,
    fShmBarrier,
    fShmUnmap,
    0,
    0};

static int fOpen(sqlite3_vfs *vfs, const char *name, sqlite3_file *file,
                 int flags, int *out_flags) {
  faulty_file *ff = (faulty_file *)file;
  int rc;
  (void)vfs;
  ff->real = (sqlite3_file *)&ff[1];
  memset(ff->real, 0, (size_t)real_vfs->szOsFile);
  rc = real_vfs->xOpen(real_vfs, name, ff->real, flags, out_flags);
  ff->base.pMethods = ff->real->pMethods ? &faulty_io : 0;
  return rc;
}
static int fDelete(sqlite3_vfs *v, const char *name, int sync) {
  (void)v;
  return real_vfs->xDelete(real_vfs, name, sync);
}
static int fAccess(sqlite3_vfs *v, const char *name, int flags, int *out) {
  (void)v;
  return real_vfs->xAccess(real_vfs, name, flags, out);
}
static int fFullPathname(sqlite3_vfs *v, const char *name, int n, char *out) {
  (void)v;
  return real_vfs->xFullPathname(real_vfs, name, n, out);
}
static void *fDlOpen(sqlite3_vfs *v, const char *name) {
  (void)v;
  return real_vfs->xDlOpen(real_vfs, name);
}
static void fDlError(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  real_vfs->xDlError(real_vfs, n, out);
}
static void (*fDlSym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  (void)v;
  return real_vfs->xDlSym(real_vfs, h, sym);
}
static void fDlClose(sqlite3_vfs *v, void *h) {
  (void)v;
  real_vfs->xDlClose(real_vfs, h);
}
static int fRandomness(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return real_vfs->xRandomness(real_vfs, n, out);
}
static int fSleep(sqlite3_vfs *v, int us) {
  (void)v;
  return real_vfs->xSleep(real_vfs, us);
}
static int fCurrentTime(sqlite3_vfs *v, double *out) {
  (void)v;
  return real_vfs->xCurrentTime(real_vfs, out);
}
static int fGetLastError(sqlite3_vfs *v, int n, char *out) {
  (void)v;
  return real_vfs->xGetLastError(real_vfs, n, out);
}
static int fCurrentTimeInt64(sqlite3_vfs *v, sqlite3_int64 *out) {
  (void)v;
  return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs faulty_vfs = {2,
                                 0,
                                 1024,
                                 0,
                                 "faulty",
                                 0,
                                 fOpen,
                                 fDelete,
                                 fAccess,
                                 fFullPathname,
                                 fDlOpen,
                                 fDlError,
                                 fDlSym,
                                 fDlClose,
                                 fRandomness,
                                 fSleep,
                                 fCurrentTime,
                                 fGetLastError,
                                 fCurrentTimeInt64,
                                 0,
                                 0,
                                 0};

/* ------------------------------------------------------------ the workload */

#define DIM 16
#define ROWS 300
#define MAX_STEPS 24
static int STEPS = 6; /* --long: 24 */
#define IDS 8

/* A step's statements (SQL with its arguments bound by run_stmt). */
typedef struct stmt_def {
  const char *sql;
  int kind; /* 0 plain, 1 log insert (?1 step), 2 train s, 3 train a,
            ** 4 lookup, 5 log insert + train a in one statement */
} stmt_def;

static const stmt_def TXN_STEP[] = {
    {"INSERT INTO log(step, n) VALUES (?1, 0)", 1},
    {"SELECT embed_update('s', ?2, ?3, 0.1)", 2},
    {"SELECT embed_update('a', ?2, ?3, 0.01)", 3},
    {"SELECT length(embed_lookup('s', ?2)) + length(embed_lookup('a', ?2))", 4},
    {"INSERT INTO a(a) VALUES ('integrity-check')", 0}, /* reads every row */
    {"INSERT INTO s(s) VALUES ('reset-optimizer')", 0},
    {"INSERT INTO s(s) VALUES ('build-index')", 0}, /* s is index=ivf */
    {"SELECT count(*) FROM s WHERE vector MATCH embed_lookup('a', 3)"
     " AND k = 5",
     0},
};
#define N_TXN ((int)(sizeof(TXN_STEP) / sizeof(TXN_STEP[0])))
static const stmt_def ONE_STEP = {
    "INSERT INTO log(step, n) VALUES (?1, embed_update('a', ?2, ?3, 0.01))", 5};

/* The step's ids (a JSON array, repeats included) and gradients. */
static void step_args(int step, char *ids, size_t nids, float *grads) {
  uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(step + 1);
  size_t len = 0;
  int i, j;
  len += (size_t)snprintf(ids + len, nids - len, "[");
  for (i = 0; i < IDS; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    len += (size_t)snprintf(ids + len, nids - len, "%s%d", i ? "," : "",
                            (int)(x % (ROWS / 2)) * 2 % ROWS);
    for (j = 0; j < DIM; j++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      grads[i * DIM + j] = (float)((int)(x % 2001) - 1000) / 1000.0f;
    }
  }
  snprintf(ids + len, nids - len, "]");
}

/* Run one workload statement; returns the SQLite result code. */
static int run_stmt(sqlite3 *db, const stmt_def *def, int step, char *err,
                    size_t nerr) {
  sqlite3_stmt *stmt = 0;
  char ids[256];
  float grads[IDS * DIM];
  int rc;
  step_args(step, ids, sizeof(ids), grads);
  if (trace) fprintf(stderr, "step %d: %s\n", step, def->sql);
  rc = sqlite3_prepare_v2(db, def->sql, -1, &stmt, 0);
  if (rc == SQLITE_OK) {
    if (sqlite3_bind_parameter_count(stmt) >= 1)
      sqlite3_bind_int(stmt, 1, step);
    if (sqlite3_bind_parameter_count(stmt) >= 2)
      sqlite3_bind_text(stmt, 2, ids, -1, SQLITE_TRANSIENT);
    if (sqlite3_bind_parameter_count(stmt) >= 3)
      sqlite3_bind_blob(stmt, 3, grads, (int)sizeof(grads), SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) snprintf(err, nerr, "%s", sqlite3_errmsg(db));
  sqlite3_finalize(stmt);
  if (trace)
    fprintf(stderr, "  -> rc %d%s%s, autocommit %d\n", rc, rc ? " " : "",
            rc ? err : "", sqlite3_get_autocommit(db));
  return rc;
}

static int exec(sqlite3 *db, const char *sql) {
  int rc;
  if (trace) fprintf(stderr, "exec: %s\n", sql);
  rc = sqlite3_exec(db, sql, 0, 0, 0);
  if (trace && F.armed)
    fprintf(stderr, "  -> rc %d, autocommit %d\n", rc,
            sqlite3_get_autocommit(db));
  return rc;
}

/* ---------------------------------------------------------------- files */

static char dir[256], tmpl_path[300], work_path[300], replay_path[300];
static char *tmpl_bytes;
static size_t tmpl_size;

static void remove_db(const char *path) {
  char p[320];
  unlink(path);
  snprintf(p, sizeof(p), "%s-journal", path);
  unlink(p);
  snprintf(p, sizeof(p), "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof(p), "%s-shm", path);
  unlink(p);
}

static void copy_template(const char *path) {
  int fd;
  remove_db(path);
  fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, tmpl_bytes, tmpl_size) != (ssize_t)tmpl_size) {
    perror(path);
    exit(2);
  }
  close(fd);
}

static void make_template(int wal) {
  sqlite3 *db = 0;
  FILE *f;
  char sql[400];
  remove_db(tmpl_path);
  if (sqlite3_open(tmpl_path, &db) != SQLITE_OK) exit(2);
  snprintf(sql, sizeof(sql),
           "PRAGMA journal_mode=%s;"
           "CREATE VIRTUAL TABLE s USING embedding(dim=%d, num_embeddings=%d,"
           " seed=1, index=ivf, nlist=8);"
           "CREATE VIRTUAL TABLE a USING embedding(dim=%d, num_embeddings=%d,"
           " seed=2, optimizer=adam);"
           "CREATE TABLE log(step INTEGER PRIMARY KEY, n);",
           wal ? "WAL" : "DELETE", DIM, ROWS, DIM, ROWS);
  if (exec(db, sql) != SQLITE_OK) {
    fprintf(stderr, "ioerr: template: %s\n", sqlite3_errmsg(db));
    exit(2);
  }
  sqlite3_close(db);
  f = fopen(tmpl_path, "rb");
  if (!f) exit(2);
  fseek(f, 0, SEEK_END);
  tmpl_size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  free(tmpl_bytes);
  tmpl_bytes = malloc(tmpl_size);
  if (!tmpl_bytes || fread(tmpl_bytes, 1, tmpl_size, f) != tmpl_size) exit(2);
  fclose(f);
}

/* FNV-1a (harness.h) over every row of the shadow tables and the log. */
#define N_TABLES 7
static const char *const tables[N_TABLES] = {
    "s_vectors", "s_config", "s_cells", "a_vectors",
    "a_state",   "a_config", "log"};
static uint64_t table_hash[N_TABLES]; /* of the last hash_tables() */

static int hash_tables(sqlite3 *db, uint64_t *out) {
  uint64_t h = FNV0;
  size_t t;
  int rc = SQLITE_OK;
  for (t = 0; rc == SQLITE_OK && t < sizeof(tables) / sizeof(tables[0]); t++) {
    sqlite3_stmt *stmt = 0;
    char *sql = content_sql(tables[t]); /* without the random config rows */
    rc = sql ? sqlite3_prepare_v2(db, sql, -1, &stmt, 0) : SQLITE_NOMEM;
    sqlite3_free(sql);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      int i;
      for (i = 0; i < sqlite3_column_count(stmt); i++) {
        const void *p = sqlite3_column_blob(stmt, i);
        h = fnv(h, p, (size_t)sqlite3_column_bytes(stmt, i));
        h = fnv(h, "|", 1);
      }
      rc = SQLITE_OK;
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(stmt);
    h = fnv(h, "#", 1);
    table_hash[t] = h;
  }
  *out = h;
  return rc;
}

/* A search on the open connection, hashed: it must agree with the file. */
static uint64_t search_hash(sqlite3 *db) {
  sqlite3_stmt *stmt = 0;
  uint64_t h = FNV0;
  int rc = sqlite3_prepare_v2(db,
                              "SELECT id, distance FROM a WHERE vector MATCH "
                              "'[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1]' AND k = 5",
                              -1, &stmt, 0);
  while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
    sqlite3_int64 id = sqlite3_column_int64(stmt, 0);
    double d = sqlite3_column_double(stmt, 1);
    h = fnv(h, &id, sizeof(id));
    h = fnv(h, &d, sizeof(d));
  }
  rc = sqlite3_finalize(stmt);
  return rc == SQLITE_OK ? h : 0;
}

/* ---------------------------------------------------------------- the run */

/* What happened to each statement of the run, for the replay. */
typedef struct record {
  int step, stmt; /* stmt: index in TXN_STEP, or -1 for ONE_STEP */
  int ok;         /* the statement succeeded */
} record;

typedef struct step_fate {
  int certain; /* 1: known committed or known absent; 0: COMMIT failed */
  int committed;
} step_fate;

static int verbose;
static long faults, runs, uncertain_steps, surfaced; /* runs: from 1 */
static const char *mode_name;

/* A finding of this run, grouped by (mode, what, detail) in harness.h's
** table. */
static void finding(long n, const char *policy, const char *what,
                    const char *detail) {
  char label[HARNESS_TEXT], first[HARNESS_TEXT];
  if (!detail) detail = "";
  snprintf(label, sizeof(label), "%s: %s%s%s", mode_name, what,
           detail[0] ? ": " : "", detail);
  snprintf(first, sizeof(first), "I/O call %ld failing (%s), %s policy", n,
           F.what ? F.what : "-", policy);
  harness_finding(runs, label, first, 0);
  if (verbose)
    fprintf(stderr, "ioerr: FAIL %s, %s policy, I/O call %ld (%s): %s%s%s\n",
            mode_name, policy, n, F.what ? F.what : "-", what,
            detail[0] ? ": " : "", detail);
}

/* Replay the statements that took effect onto a fresh template copy. */
static int replay(const record *recs, int nrec, const step_fate *fate,
                  const int *present, uint64_t *out) {
  sqlite3 *db = 0;
  char err[300];
  int i, rc;
  copy_template(replay_path);
  rc = sqlite3_open(replay_path, &db);
  if (rc == SQLITE_OK) rc = exec(db, "BEGIN");
  for (i = 0; rc == SQLITE_OK && i < nrec; i++) {
    const record *r = &recs[i];
    int take =
        fate[r->step].certain ? fate[r->step].committed : present[r->step];
    if (!take) continue;
    /* a failed statement changed nothing, unless it was an autocommit
    ** statement that failed at its commit and yet committed */
    if (!r->ok && !(r->stmt < 0 && !fate[r->step].certain)) continue;
    rc = run_stmt(db, r->stmt < 0 ? &ONE_STEP : &TXN_STEP[r->stmt], r->step,
                  err, sizeof(err));
  }
  if (rc == SQLITE_OK) rc = exec(db, "COMMIT");
  if (rc == SQLITE_OK) rc = hash_tables(db, out);
  if (rc != SQLITE_OK)
    fprintf(stderr, "ioerr: replay failed: %s\n", sqlite3_errmsg(db));
  sqlite3_close(db);
  return rc;
}

static void run(long n, int persist, int policy_continue) {
  const char *policy = policy_continue ? "continue" : "rollback";
  sqlite3 *db = 0;
  record recs[MAX_STEPS * (N_TXN + 1)];
  step_fate fate[MAX_STEPS];
  int present[MAX_STEPS];
  int nrec = 0, step, rc, stop = 0, i, clean = 1;
  uint64_t live_search = 0, got, want;
  char err[300];

  runs++;
  memset(&F, 0, sizeof(F));
  memset(fate, 0, sizeof(fate));
  memset(present, 0, sizeof(present));
  copy_template(work_path);
  F.fail_at = n;
  F.persist = persist;
  rc = sqlite3_open_v2(work_path, &db, SQLITE_OPEN_READWRITE, "faulty");
  if (rc == SQLITE_OK) {
    F.armed = 1;
    /* a small cache, so that pages are read and spilled mid-statement */
    rc = exec(db, "PRAGMA cache_size = 10");
    F.armed = 0;
  }
  if (rc != SQLITE_OK) stop = 1;

  for (step = 0; step < STEPS && !stop; step++) {
    long fired_before;
    F.armed = 1;
    fate[step].certain = 1;
    if (step % 2 == 1) { /* one autocommit statement */
      fired_before = F.fired;
      rc = run_stmt(db, &ONE_STEP, step, err, sizeof(err));
      recs[nrec].step = step;
      recs[nrec].stmt = -1;
      recs[nrec].ok = rc == SQLITE_OK;
      nrec++;
      if (rc == SQLITE_OK) {
        fate[step].committed = 1;
        if (F.fired != fired_before)
          finding(n, policy, "a fault did not surface", ONE_STEP.sql);
      } else {
        fate[step].certain = 0; /* it may have failed at its commit */
        uncertain_steps++;
        if (F.fired != fired_before) surfaced++;
      }
      F.armed = 0;
      if (!sqlite3_get_autocommit(db)) {
        finding(n, policy, "an autocommit statement left a transaction open",
                err);
        stop = 1;
      }
      continue;
    }
    fired_before = F.fired;
    rc = exec(db, "BEGIN");
    if (rc != SQLITE_OK) {
      F.armed = 0;
      fate[step].committed = 0;
      if (F.fired != fired_before)
        surfaced++;
      else
        finding(n, policy, "BEGIN failed without a fault", 0);
      continue;
    }
    for (i = 0; i < N_TXN; i++) {
      fired_before = F.fired;
      rc = run_stmt(db, &TXN_STEP[i], step, err, sizeof(err));
      recs[nrec].step = step;
      recs[nrec].stmt = i;
      recs[nrec].ok = rc == SQLITE_OK;
      nrec++;
      if (rc == SQLITE_OK && F.fired != fired_before) {
        finding(n, policy, "a fault did not surface", TXN_STEP[i].sql);
        if (verbose) fprintf(stderr, "   (in step %d)\n", step);
      } else if (rc != SQLITE_OK && F.fired != fired_before) {
        surfaced++;
      } else if (rc != SQLITE_OK && !(persist && F.fired)) {
        finding(n, policy, "a statement failed without a fault", err);
      }
      if (rc != SQLITE_OK && (!policy_continue || sqlite3_get_autocommit(db)))
        break;
    }
    if (sqlite3_get_autocommit(db)) {
      /* SQLite rolled the transaction back after the error */
      fate[step].committed = 0;
    } else if (i < N_TXN && !policy_continue) {
      fate[step].committed = 0;
      if (exec(db, "ROLLBACK") != SQLITE_OK || !sqlite3_get_autocommit(db)) {
        /* the hot journal is rolled back at the next open */
        stop = 1;
      }
    } else {
      fired_before = F.fired;
      rc = exec(db, "COMMIT");
      if (rc == SQLITE_OK) {
        fate[step].committed = 1;
        if (F.fired != fired_before)
          finding(n, policy, "a fault did not surface", "COMMIT");
      } else {
        fate[step].certain = 0;
        uncertain_steps++;
        if (F.fired != fired_before) surfaced++;
        if (!sqlite3_get_autocommit(db) &&
            (exec(db, "ROLLBACK") != SQLITE_OK || !sqlite3_get_autocommit(db)))
          stop = 1;
      }
    }
    F.armed = 0;
  }
  F.armed = 0;
  for (step = 0; step < STEPS; step++)
    if (!fate[step].certain) clean = 0;
  if (db && !stop && clean && !persist) live_search = search_hash(db);
  faults += F.fired;
  rc = sqlite3_close(db);
  if (rc != SQLITE_OK) {
    snprintf(err, sizeof(err), "sqlite3_close returned %d", rc);
    finding(n, policy, "close failed", err);
    sqlite3_close_v2(db);
  }

  /* reopen with the real VFS and check */
  db = 0;
  rc = sqlite3_open_v2(work_path, &db, SQLITE_OPEN_READWRITE, 0);
  if (rc == SQLITE_OK) {
    sqlite3_stmt *stmt = 0;
    rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, 0);
    if (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(stmt, 0), "ok") != 0)
      finding(n, policy, "integrity_check",
              (const char *)sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    rc = sqlite3_prepare_v2(db, "SELECT step FROM log", -1, &stmt, 0);
    while (rc == SQLITE_OK && sqlite3_step(stmt) == SQLITE_ROW) {
      int s = sqlite3_column_int(stmt, 0);
      if (s >= 0 && s < STEPS) present[s] = 1;
    }
    sqlite3_finalize(stmt);
  }
  if (rc != SQLITE_OK) {
    finding(n, policy, "cannot reopen", sqlite3_errmsg(db));
    sqlite3_close(db);
    return;
  }
  for (step = 0; step < STEPS; step++) {
    if (!fate[step].certain) continue;
    if (fate[step].committed && !present[step]) {
      snprintf(err, sizeof(err), "step %d", step);
      finding(n, policy, "a committed step is missing", err);
    } else if (!fate[step].committed && present[step]) {
      snprintf(err, sizeof(err), "step %d", step);
      finding(n, policy, "an uncommitted step is present", err);
    }
  }
  if (hash_tables(db, &got) != SQLITE_OK) {
    finding(n, policy, "cannot read the tables", sqlite3_errmsg(db));
  } else {
    uint64_t got_tables[N_TABLES];
    memcpy(got_tables, table_hash, sizeof(got_tables));
    if (replay(recs, nrec, fate, present, &want) == SQLITE_OK && got != want) {
      char which[200] = "";
      int t;
      for (t = 0; t < N_TABLES; t++) {
        if (got_tables[t] != table_hash[t] &&
            (t == 0 || got_tables[t - 1] == table_hash[t - 1])) {
          strcat(which, which[0] ? ", " : "first in ");
          strcat(which, tables[t]);
        }
      }
      finding(n, policy,
              "the tables differ from a replay of the committed statements",
              which);
    }
  }
  if (live_search && search_hash(db) != live_search)
    finding(n, policy, "the live connection's search disagrees with the file",
            0);
  sqlite3_close(db);
}

int main(int argc, char **argv) {
  long n, total;
  int i, mode, both_policies = 0;
  const char *base = getenv("TMPDIR");
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0)
      verbose = 1;
    else if (strcmp(argv[i], "--long") == 0) {
      STEPS = MAX_STEPS;
      both_policies = 1;
    } else {
      fprintf(stderr, "usage: %s [-v] [--long]\n", argv[0]);
      return 2;
    }
  }
  if (access("/dev/shm", W_OK) == 0) base = "/dev/shm"; /* fast fsync */
  snprintf(dir, sizeof(dir), "%s/embed-ioerr-XXXXXX", base ? base : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 2;
  }
  snprintf(tmpl_path, sizeof(tmpl_path), "%s/template.db", dir);
  snprintf(work_path, sizeof(work_path), "%s/work.db", dir);
  snprintf(replay_path, sizeof(replay_path), "%s/replay.db", dir);
  sqlite3_auto_extension((void (*)(void))sqlite3_embed_init);
  real_vfs = sqlite3_vfs_find(0);
  faulty_vfs.szOsFile = (int)sizeof(faulty_file) + real_vfs->szOsFile;
  faulty_vfs.mxPathname = real_vfs->mxPathname;
  sqlite3_vfs_register(&faulty_vfs, 0);

  for (mode = 0; mode < 2; mode++) {
    long before = faults;
    mode_name = mode ? "WAL" : "rollback journal";
    make_template(mode);
    run(0, 0, 0); /* count the I/O calls */
    total = F.count;
    if (getenv("IOERR_AT")) { /* debugging: one run, traced */
      trace = 1;
      run(atol(getenv("IOERR_AT")), 0, getenv("IOERR_CONTINUE") != 0);
      trace = 0;
      continue;
    }
    for (n = 1; n <= total; n++) {
      run(n, 0, (int)(n % 2));
      if (both_policies) run(n, 0, (int)(n % 2 == 0));
    }
    for (n = 1; n <= total; n++) run(n, 1, 0); /* persistent */
    printf("ioerr: %s: %ld I/O calls, %ld faults injected\n", mode_name, total,
           faults - before);
    fflush(stdout);
  }
  remove_db(tmpl_path);
  remove_db(work_path);
  remove_db(replay_path);
  rmdir(dir);
  printf(
      "ioerr: %ld runs, %ld faults surfaced as errors, %ld steps with a "
      "failed commit (checked either way)\n",
      runs, surfaced, uncertain_steps);
  print_findings("ioerr");
  printf("ioerr: %ld faults injected, %ld failures\n", faults, failing_runs());
  return failing_runs() ? 1 : 0;
}
