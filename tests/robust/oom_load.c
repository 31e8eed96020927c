/*
** oom_load.c - the out-of-memory sweep of the load path: embed loaded as a
** shared library with sqlite3_load_extension() into Debian's libsqlite3.so,
** the way an application loads it, with every allocation of a workload
** that starts with the load failing in turn.
**
**     make build/oom-load && build/oom-load ./embed.so
**     build/oom-load ./embed.so --at N -v     one point, in full
**
** Why a second sweep: oom.c links SQLite and embed statically, so the code
** stays mapped whatever happens. Here SQLite dlclose()s the library when
** sqlite3_embed_init fails, and anything the failed init left registered
** (a function, the module and its destructor) points into unmapped memory:
** the next call, or sqlite3_close(), crashes.
**
** How: each allocation point runs in a child process of its own (the
** library is mapped afresh, so a stale pointer crashes). The allocator
** (SQLITE_CONFIG_MALLOC, as in oom.c) fails allocation N (transient), or every
** allocation from N on (persistent), counting from the sqlite3_load_extension()
** call. For each run, on a fresh :memory: connection:
**
**   - no crash (a signal handler names the run);
**   - a failed load leaves the connection as it was: PRAGMA function_list
**     and module_list are what they were before the load. (One exception,
**     SQLite's and not embed's: when its own allocation after a successful
**     init fails, SQLite keeps the library loaded and reports SQLITE_NOMEM
**     with no message; then everything must be registered, as after a
**     successful load.) After a transient fault the load is retried and
**     the rest of the workload must give the fault-free results: the
**     connection works as if the failed load never happened; after a
**     persistent one the connection is closed at once;
**   - after a successful load, the step in which the fault fired returns an
**     error or the fault-free result; a few more steps run;
**   - sqlite3_close() returns SQLITE_OK and sqlite3_memory_used() is back to
**     its value before sqlite3_open().
**
** The last line is "oom-load: N allocation points tried, F failures"; the
** exit status is 1 when F > 0.
*/
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "fault_alloc.h"
#include "harness.h"

/* ------------------------------------------------------------ allocator */

/* fault_alloc.h: real_mem, F, fault_methods */

/* ------------------------------------------------------------- workload */

/* Step 0 is the load; each other step is one SQL text run to completion. */
static const char *WORKLOAD[] = {
    "(sqlite3_load_extension)",
    "SELECT embed_version(), embed_json(embed_normalize('[3, 4]')),"
    " embed_json(embed_sum(v)) FROM (SELECT '[1, 2]' AS v)",
    "CREATE VIRTUAL TABLE t USING embedding(dim=3, num_embeddings=4, seed=1,"
    " optimizer=adam)",
    "SELECT embed_json(embed_lookup('t', '[1, 2]')), embed_lookup(0)",
    "SELECT embed_update('t', '[1, 2]', '[[1, 1, 1], [1, 0, 0]]', 0.1)",
    "SELECT id, distance FROM t WHERE vector MATCH '[1, 0, 0]' AND k = 2",
    "INSERT INTO t(t) VALUES ('integrity-check')",
    "INSERT INTO t(t) VALUES ('reset-optimizer')",
    "INSERT INTO t(t) VALUES ('no-such-command')", /* an error, named */
    "SELECT count(*) FROM embed_file('/nonexistent/embed-oom-load.vec')",
    "DROP TABLE t",
};
#define N_STEPS ((int)(sizeof(WORKLOAD) / sizeof(WORKLOAD[0])))

static const char *library; /* the path given */

static uint64_t hash_rows(uint64_t h, sqlite3 *db, const char *sql) {
  sqlite3_stmt *stmt = 0;
  int i, rc = sqlite3_prepare_v2(db, sql, -1, &stmt, 0);
  if (rc != SQLITE_OK) return fnv(h, "prepare failed", 14);
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    for (i = 0; i < sqlite3_column_count(stmt); i++) {
      const unsigned char *t = sqlite3_column_text(stmt, i);
      h = fnv(h, t ? (const char *)t : "NULL", t ? strlen((const char *)t) : 4);
      h = fnv(h, "|", 1);
    }
  }
  if (rc != SQLITE_DONE) h = fnv(h, "step failed", 11);
  sqlite3_finalize(stmt);
  return h;
}

/* What the connection has registered: its functions and modules. */
static uint64_t registrations(sqlite3 *db) {
  uint64_t h = hash_rows(FNV0, db,
                         "SELECT * FROM pragma_function_list"
                         " WHERE builtin = 0 ORDER BY 1, 2, 3, 4, 5");
  return hash_rows(h, db, "SELECT * FROM pragma_module_list ORDER BY 1");
}

typedef struct step_result {
  int rc;
  uint64_t output; /* hash of the rows and of any error text */
  char err[200];
} step_result;

static void run_step(sqlite3 *db, const char *sql, step_result *out) {
  const char *tail = sql;
  uint64_t h = FNV0;
  int rc = SQLITE_OK, i;
  out->err[0] = 0;
  while (rc == SQLITE_OK && tail && *tail) {
    sqlite3_stmt *stmt = 0;
    rc = sqlite3_prepare_v2(db, tail, -1, &stmt, &tail);
    if (rc != SQLITE_OK || !stmt) break;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      for (i = 0; i < sqlite3_column_count(stmt); i++) {
        const void *p = sqlite3_column_blob(stmt, i);
        h = fnv(h, p ? p : "", (size_t)sqlite3_column_bytes(stmt, i));
      }
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
    sqlite3_finalize(stmt);
  }
  if (rc != SQLITE_OK) {
    snprintf(out->err, sizeof(out->err), "%s", sqlite3_errmsg(db));
    h = fnv(h, out->err, strlen(out->err));
  }
  out->rc = rc;
  out->output = h;
}

/* The load step: the return code, and whether SQLite set a message. */
static int load(sqlite3 *db, int *had_message) {
  char *zErr = 0;
  int rc = sqlite3_load_extension(db, library, 0, &zErr);
  *had_message = zErr != 0;
  sqlite3_free(zErr);
  return rc;
}

/* ------------------------------------------------------------- the sweep */

static step_result ref[N_STEPS];
static uint64_t ref_loaded; /* registrations after a successful load */
static int verbose;
static const char *current_mode = "reference";
static long current_n, run_id;
static int current_step = -1;
static long failed_loads, as_before, kept_by_sqlite;

static int report_fd = -1; /* a faulty run's pipe to the sweep */

static void on_signal(int sig) {
  char buf[300];
  int n =
      snprintf(buf, sizeof(buf),
               "F\tcrash (signal %d)\t%s run, allocation %ld, step %d\t-1\n",
               sig, current_mode, current_n, current_step);
  if (n > 0 && report_fd >= 0) (void)!write(report_fd, buf, (size_t)n);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void finding(const char *what, int step, const char *detail) {
  char label[HARNESS_TEXT], first[HARNESS_TEXT];
  snprintf(label, sizeof(label), "step %d: %s", step, what);
  snprintf(first, sizeof(first), "%s run, allocation %ld%s%s", current_mode,
           current_n, detail && detail[0] ? "; " : "", detail ? detail : "");
  if (report_fd >= 0) { /* a faulty run reports to the sweep */
    char line[3 * HARNESS_TEXT];
    int n = snprintf(line, sizeof(line), "F\t%s\t%s\t%d\n", label, first, step);
    if (n > 0) (void)!write(report_fd, line, (size_t)n);
  }
  harness_finding(run_id, label, first, step >= 0 ? WORKLOAD[step] : 0);
  if (verbose)
    fprintf(stderr, "oom-load: FAIL %s run, allocation %ld, step %d: %s%s%s\n",
            current_mode, current_n, step, what, detail ? ": " : "",
            detail ? detail : "");
}

/* Steps from..N_STEPS-1 without faults: each must give the reference. */
static void run_clean(sqlite3 *db, int from) {
  step_result res;
  int s;
  for (s = from; s < N_STEPS; s++) {
    current_step = s;
    run_step(db, WORKLOAD[s], &res);
    if (res.output != ref[s].output) {
      finding("after a failed load and a retry, a step differs", s, res.err);
      return;
    }
  }
}

static void run_workload(long fail_at, int persist, int is_reference) {
  sqlite3 *db = 0;
  sqlite3_int64 before = sqlite3_memory_used();
  uint64_t regs_before;
  int s, rc, had_message, fault_step = -1;
  step_result res;

  run_id++;
  memset(&F, 0, sizeof(F));
  F.fail_at = fail_at;
  F.persist = persist;
  current_step = -1;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
      sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 1, 0) !=
          SQLITE_OK) {
    fprintf(stderr, "oom-load: cannot open: %s\n", sqlite3_errmsg(db));
    exit(2);
  }
  regs_before = registrations(db);

  current_step = 0;
  F.counting = 1;
  rc = load(db, &had_message);
  F.counting = 0;
  if (is_reference) {
    if (rc != SQLITE_OK) {
      fprintf(stderr, "oom-load: cannot load %s: %s\n", library,
              sqlite3_errmsg(db));
      exit(2);
    }
    ref_loaded = registrations(db);
  } else if (rc != SQLITE_OK) {
    uint64_t regs = registrations(db);
    if (!F.fired) finding("the load failed without a fault", 0, 0);
    failed_loads++;
    if (regs == regs_before) {
      as_before++; /* the retry below must give a working connection */
    } else if (regs == ref_loaded && rc == SQLITE_NOMEM && !had_message) {
      kept_by_sqlite++; /* SQLite's own allocation after init failed */
    } else {
      finding("a failed load left registrations behind", 0, 0);
    }
    if (persist) goto close; /* straight to sqlite3_close(), as after */
    /* a failed load an application gives up on; a transient fault: retry */
    if (load(db, &had_message) != SQLITE_OK)
      finding("the load failed again without a fault", 0, sqlite3_errmsg(db));
    else
      run_clean(db, 1);
    goto close;
  }
  ref[0].rc = rc;
  for (s = 1; s < N_STEPS; s++) {
    long fired_before = F.fired;
    if (fault_step >= 0 && s > fault_step + 3) break;
    current_step = s;
    F.counting = 1;
    run_step(db, WORKLOAD[s], is_reference ? &ref[s] : &res);
    F.counting = 0;
    if (is_reference || fault_step >= 0 || F.fired == fired_before) continue;
    fault_step = s;
    if (res.rc == SQLITE_OK && res.output != ref[s].output)
      finding("the step succeeded with a different result", s, 0);
    /* a deliberate error keeps its message, unless SQLite could not
    ** allocate one (then it is the code's generic text) */
    if (res.rc != SQLITE_OK && ref[s].rc != SQLITE_OK &&
        res.output != ref[s].output && (res.rc & 0xff) != SQLITE_NOMEM &&
        strcmp(res.err, sqlite3_errstr(res.rc)) != 0)
      finding("the deliberate error changed", s, res.err);
  }
close:
  current_step = N_STEPS;
  fault_close_run(db, before, fault_step, !is_reference && fail_at, finding);
}

/* One run in a child process: a library SQLite kept loaded (see above)
** stays mapped until the process ends, and would hide from every later
** run the crash of a stale pointer into an unloaded one. The child sends
** its findings and counts through a pipe; a signal is a crash finding. */
static void sweep_point(long n, int persist) {
  int fds[2], status = 0;
  pid_t pid;
  FILE *in;
  char line[3 * HARNESS_TEXT];
  fflush(stdout);
  fflush(stderr);
  if (pipe(fds) != 0 || (pid = fork()) < 0) {
    perror("oom-load: fork");
    exit(2);
  }
  if (pid == 0) {
    char counts[100];
    int len;
    close(fds[0]);
    report_fd = fds[1];
    failed_loads = as_before = kept_by_sqlite = 0; /* this run's */
    run_workload(n, persist, 0);
    len = snprintf(counts, sizeof(counts), "N\t%ld\t%ld\t%ld\n", failed_loads,
                   as_before, kept_by_sqlite);
    if (len > 0) (void)!write(report_fd, counts, (size_t)len);
    _exit(0);
  }
  close(fds[1]);
  run_id++;
  in = fdopen(fds[0], "r");
  while (in && fgets(line, sizeof(line), in)) {
    char *f[4] = {0, 0, 0, 0}, *save = 0, *t = strtok_r(line, "\t\n", &save);
    int k = 0;
    while (t && k < 4) f[k++] = t, t = strtok_r(0, "\t\n", &save);
    if (f[0] && f[0][0] == 'N' && f[3]) {
      failed_loads += atol(f[1]);
      as_before += atol(f[2]);
      kept_by_sqlite += atol(f[3]);
    } else if (f[0] && f[0][0] == 'F' && f[3]) {
      int step = atoi(f[3]);
      harness_finding(run_id, f[1], f[2],
                      step >= 0 && step < N_STEPS ? WORKLOAD[step] : 0);
    }
  }
  if (in) fclose(in);
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    char first[HARNESS_TEXT];
    snprintf(first, sizeof(first), "%s run, allocation %ld",
             persist ? "persistent" : "transient", n);
    harness_finding(run_id, "the run did not end normally", first, 0);
  }
}

int main(int argc, char **argv) {
  long n, total, points = 0, only = 0;
  int i, s;
  for (i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0)
      verbose = 1;
    else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
      only = atol(argv[++i]);
    else if (!library && argv[i][0] != '-')
      library = argv[i];
    else
      library = 0, i = argc;
  }
  if (!library) {
    fprintf(stderr, "usage: %s path/to/embed.so [-v] [--at N]\n", argv[0]);
    return 2;
  }
  signal(SIGSEGV, on_signal); /* in the children, which report it */
  signal(SIGBUS, on_signal);
  signal(SIGABRT, on_signal);
  signal(SIGFPE, on_signal);
  if (sqlite3_config(SQLITE_CONFIG_SINGLETHREAD) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_MALLOC, &fault_methods) != SQLITE_OK ||
      sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 1) != SQLITE_OK) {
    fprintf(stderr, "oom-load: cannot install the allocator\n");
    return 2;
  }
  sqlite3_initialize();
  run_workload(0, 0, 1); /* warm up global state */
  run_workload(0, 0, 1);
  total = F.count;
  for (s = 1; s < N_STEPS; s++)
    if (ref[s].rc != SQLITE_OK && verbose)
      printf("oom-load: reference step %d errs (expected): %s\n", s,
             ref[s].err);
  printf("oom-load: %s (SQLite %s), workload of %d steps, %ld allocations\n",
         library, sqlite3_libversion(), N_STEPS, total);
  fflush(stdout);
  for (i = 0; i < 2; i++) {
    current_mode = i ? "persistent" : "transient";
    for (n = only ? only : 1; n <= (only ? only : total); n++) {
      current_n = n;
      sweep_point(n, i);
      points++;
    }
  }
  printf(
      "oom-load: %ld failed loads: %ld left the connection as before, "
      "%ld kept loaded by SQLite after embed's init succeeded\n",
      failed_loads, as_before, kept_by_sqlite);
  print_findings("oom-load");
  printf("oom-load: %ld allocation points tried, %ld failures\n", points,
         failing_runs());
  return failing_runs() ? 1 : 0;
}
