#!/bin/sh
# The closing lines of `make test`, counted from what the suites recorded:
# each suite target appends "passed NAME" or "skipped NAME (why)" to LOG
# when it ends (the Makefile's `passed` and `skipped`), and make test empties
# LOG before the first one.
#
#   sh tests/summary.sh LOG "SUITES" [FAILED]
#
# SUITES: the suites make test runs, in order; FAILED: the one that failed,
# where make test stopped. Prints the suites that passed, were skipped,
# failed or did not run, then "suites: P passed, S skipped, F failed"; exits
# non-zero unless every suite recorded that it passed or was skipped.
set -u
log=$1
suites=$2
failed=${3:-}
passed=""
skipped=""
missing=""
n_passed=0
n_skipped=0
for s in $suites; do
  if grep -qx "passed $s" "$log" 2>/dev/null; then
    passed="$passed $s"
    n_passed=$((n_passed + 1))
  elif line=$(grep -m1 "^skipped $s " "$log" 2>/dev/null); then
    skipped="$skipped, ${line#skipped }"
    n_skipped=$((n_skipped + 1))
  elif [ "$s" != "$failed" ]; then
    missing="$missing $s"
  fi
done
[ -n "$passed" ] && echo "make test: passed:$passed"
[ -n "$skipped" ] && echo "make test: skipped: ${skipped#, }"
n_failed=0
if [ -n "$failed" ]; then
  n_failed=1
  echo "make test: FAILED: $failed"
  [ -n "$missing" ] && echo "make test: not run:$missing"
elif [ -n "$missing" ]; then
  # a suite that ended without recording its result counts as failed
  n_failed=$(echo $missing | wc -w)
  echo "make test: FAILED (no result recorded):$missing"
fi
if [ "$n_failed" -eq 0 ]; then
  if [ "$n_skipped" -eq 0 ]; then
    echo "make test: every suite passed"
  else
    echo "make test: every suite that ran passed"
  fi
fi
echo "suites: $n_passed passed, $n_skipped skipped, $n_failed failed"
[ "$n_failed" -eq 0 ]
