/*
** harness.h - what the fault-injection sweeps (oom.c, ioerr.c) share: the
** FNV-1a hash they compare outputs and database contents with, and the
** table of findings that groups what went wrong into kinds, counts the runs
** that had each, and prints one line per kind at the end.
**
** Each sweep numbers its runs from 1, and for every problem found in a run
** calls harness_finding(run, label, first, context): findings with the same
** label are one kind; `first` (the run that showed the kind first) and
** `context` (e.g. the statement; or 0) are kept from the first finding of
** the kind. Labels longer than HARNESS_TEXT - 1 characters are cut there
** (format them into a char[HARNESS_TEXT]). failing_runs() is the number of
** runs with a finding, and print_findings(name) prints, for each kind,
**
**     name: FAIL label (R runs; first: first)
**        context                              (when there is one)
**
** A single-file harness includes this header once; every function is
** static.
*/
#ifndef EMBED_TESTS_HARNESS_H
#define EMBED_TESTS_HARNESS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* FNV-1a, to compare outputs and database contents cheaply. */
#define FNV0 1469598103934665603ULL
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  while (n--) h = (h ^ *s++) * 1099511628211ULL;
  return h;
}

/* Distinct findings (by label), with how many runs had them. */
#define HARNESS_MAX_KINDS 200
#define HARNESS_TEXT 400
static struct {
  long failing_runs; /* runs with at least one finding */
  long last_run;     /* the run of the last finding (0: none yet) */
  int n_kinds;
  struct {
    char label[HARNESS_TEXT]; /* what went wrong, and where: the kind */
    char first[HARNESS_TEXT]; /* the first run that showed it */
    const char *context;      /* a line below (0: none); not copied */
    long runs;
  } kinds[HARNESS_MAX_KINDS];
} findings;

/* One finding in run `run`. A new kind is kept while there is room. */
static void harness_finding(long run, const char *label, const char *first,
                            const char *context) {
  int k;
  if (findings.last_run != run) {
    findings.failing_runs++;
    findings.last_run = run;
  }
  for (k = 0; k < findings.n_kinds; k++)
    if (strcmp(findings.kinds[k].label, label) == 0) break;
  if (k == findings.n_kinds && k < HARNESS_MAX_KINDS) {
    findings.n_kinds++;
    snprintf(findings.kinds[k].label, sizeof(findings.kinds[k].label), "%s",
             label);
    snprintf(findings.kinds[k].first, sizeof(findings.kinds[k].first), "%s",
             first);
    findings.kinds[k].context = context;
  }
  if (k < findings.n_kinds) findings.kinds[k].runs++;
}

/* The number of runs that had at least one finding. */
static long failing_runs(void) {
  return findings.failing_runs;
}

/* One line per kind of finding, on stderr, each starting with `name`. */
static void print_findings(const char *name) {
  int k;
  for (k = 0; k < findings.n_kinds; k++)
    fprintf(stderr, "%s: FAIL %s (%ld runs; first: %s)%s%s\n", name,
            findings.kinds[k].label, findings.kinds[k].runs,
            findings.kinds[k].first, findings.kinds[k].context ? "\n   " : "",
            findings.kinds[k].context ? findings.kinds[k].context : "");
}

/* The SQL that reads every row of an ordinary table, for comparing a
** database's content between runs. An embedding table's config holds a
** random instance number drawn at CREATE, and an index=ivf table's a
** random build number, different in every run: they are left out. The caller
** frees the text with sqlite3_free. */
static inline char *content_sql(const char *table) {
  size_t n = strlen(table);
  int config = n > 7 && strcmp(table + n - 7, "_config") == 0;
  return sqlite3_mprintf(
      "SELECT * FROM \"%w\"%s ORDER BY 1", table,
      config ? " WHERE key NOT IN ('instance', 'index_build')" : "");
}

#endif
