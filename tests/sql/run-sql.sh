#!/bin/sh
# Runs every tests/sql/NAME.sql through the real sqlite3 shell with the
# extension loaded and compares the output (stdout and errors, in order)
# with tests/sql/NAME.expected. Each line of a script is one case and prints
# its own name, so a difference names the failing case.
#
#   sh tests/sql/run-sql.sh ./embed        (the extension path, without suffix)
set -u
EXT=${1:-./embed}
EXT="$(cd "$(dirname "$EXT")" && pwd)/$(basename "$EXT")"
SQLITE3=${SQLITE3:-sqlite3}
here=$(cd "$(dirname "$0")" && pwd)
out_dir=${BUILD_DIR:-build}/sql
mkdir -p "$out_dir"
pass=0
fail=0
for script in "$here"/*.sql; do
  name=$(basename "$script" .sql)
  work=$(mktemp -d)
  # Scripts run in a scratch folder so that file databases they create vanish.
  (cd "$work" && "$SQLITE3" -batch -cmd ".load $EXT" -cmd ".nullvalue NULL" \
      :memory: < "$script" 2>&1) |
    sed -E 's/^(Runtime|Parse) error near line [0-9]+: /error: /' \
      > "$out_dir/$name.out"
  rm -rf "$work"
  if diff -u "$here/$name.expected" "$out_dir/$name.out" > "$out_dir/$name.diff"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL tests/sql/$name.sql:"
    cat "$out_dir/$name.diff"
  fi
done
echo "sql: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
