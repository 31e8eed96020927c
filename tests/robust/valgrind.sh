#!/bin/sh
# Runs the SQL suite (tests/sql/run-sql.sh) with every sqlite3 shell under
# valgrind's memcheck, and reports the errors it finds (invalid reads and
# writes, uses of uninitialized values, bad frees; leaks are not checked:
# --leak-check=no).
#
#   sh tests/robust/valgrind.sh ./embed        (the extension path, without suffix)
#
# Each shell writes its own valgrind log; the error counts are summed. The
# exit status is non-zero when valgrind found errors or the suite's outputs
# differ (valgrind's own messages go to the logs, not to the outputs).
set -u
EXT=${1:-./embed}
here=$(cd "$(dirname "$0")" && pwd)
command -v valgrind >/dev/null 2>&1 || {
  echo "valgrind: not installed (apt-get install valgrind)"
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
REAL_SQLITE3=$(command -v "${SQLITE3:-sqlite3}")
cat > "$work/sqlite3" <<WRAP
#!/bin/sh
exec valgrind --error-exitcode=99 --leak-check=no --track-origins=yes \\
  --log-file="$work/vg.%p.log" "$REAL_SQLITE3" "\$@"
WRAP
chmod +x "$work/sqlite3"
BUILD_DIR=${BUILD_DIR:-build}/valgrind SQLITE3="$work/sqlite3" \
  sh "$here/../sql/run-sql.sh" "$EXT"
suite=$?
errors=0
runs=0
for log in "$work"/vg.*.log; do
  [ -f "$log" ] || continue
  runs=$((runs + 1))
  n=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
  if [ "${n:-0}" -gt 0 ]; then
    errors=$((errors + n))
    echo "valgrind: $n errors in $(basename "$log"):"
    grep -E "^==[0-9]+== (Invalid|Conditional|Use of|Syscall|Mismatched|Source and|Argument|   (at|by) )" "$log" | head -40
  fi
done
echo "valgrind: $runs sqlite3 runs, $errors errors"
[ "$errors" -eq 0 ] && [ "$suite" -eq 0 ]
