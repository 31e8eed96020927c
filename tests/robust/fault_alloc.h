/*
** fault_alloc.h - the allocator of the out-of-memory sweeps (oom.c,
** oom_load.c): SQLite's own allocator underneath, with every allocation
** counted while F.counting and the F.fail_at-th (and, with F.persist,
** every later one) failed. Install it before SQLite initializes:
**
**     sqlite3_config(SQLITE_CONFIG_GETMALLOC, &real_mem);
**     sqlite3_config(SQLITE_CONFIG_MALLOC, &fault_methods);
**
** benign_begin/benign_end, given to SQLite's benign-malloc hooks where the
** build exports them, count the failures SQLite absorbs on purpose apart
** (F.fired_hard counts the others).
*/
#ifndef FAULT_ALLOC_H
#define FAULT_ALLOC_H

#include <stdio.h>

#include <sqlite3.h>

static sqlite3_mem_methods real_mem;
static struct {
  int counting;     /* count (and maybe fail) allocations now */
  long count;       /* allocations counted in this run */
  long fail_at;     /* 0: never fail */
  int persist;      /* fail every allocation from fail_at on */
  long fired;       /* failures injected in this run */
  long fired_hard;  /* ... outside SQLite's benign-malloc regions */
  int benign_depth; /* inside sqlite3BeginBenignMalloc() */
} F;

static int fault_now(void) {
  if (!F.counting) return 0;
  F.count++;
  if (F.fail_at &&
      (F.count == F.fail_at || (F.persist && F.count > F.fail_at))) {
    F.fired++;
    if (!F.benign_depth) F.fired_hard++;
    return 1;
  }
  return 0;
}

static void *fault_malloc(int n) {
  return fault_now() ? 0 : real_mem.xMalloc(n);
}
static void *fault_realloc(void *p, int n) {
  return fault_now() ? 0 : real_mem.xRealloc(p, n);
}
static void fault_free(void *p) {
  real_mem.xFree(p);
}
static int fault_size(void *p) {
  return real_mem.xSize(p);
}
static int fault_roundup(int n) {
  return real_mem.xRoundup(n);
}
static int fault_init(void *p) {
  return real_mem.xInit(p);
}
static void fault_shutdown(void *p) {
  real_mem.xShutdown(p);
}
static const sqlite3_mem_methods fault_methods = {
    fault_malloc,  fault_free, fault_realloc,  fault_size,
    fault_roundup, fault_init, fault_shutdown, 0};

static inline void benign_begin(void) {
  F.benign_depth++;
}
static inline void benign_end(void) {
  F.benign_depth--;
}

/* The end of a run: counting stops, db closes, and the memory in use is
** what it was before the run (`before`); `report` (the sweep's finding)
** is told otherwise, and when a faulty run never fired its fault. */
static void fault_close_run(sqlite3 *db, sqlite3_int64 before, int fault_step,
                            int expect_fault,
                            void (*report)(const char *what, int step,
                                           const char *detail)) {
  char detail[100];
  int rc;
  F.counting = 0;
  rc = sqlite3_close(db);
  if (rc != SQLITE_OK) {
    snprintf(detail, sizeof(detail), "sqlite3_close returned %d", rc);
    report("close failed", -1, detail);
    sqlite3_close_v2(db);
  }
  if (sqlite3_memory_used() != before) {
    snprintf(detail, sizeof(detail), "%lld bytes still allocated",
             (long long)(sqlite3_memory_used() - before));
    report("memory leak", fault_step, detail);
  }
  if (expect_fault && !F.fired)
    report("the fault was never injected (workload not deterministic?)", -1, 0);
}

#endif
