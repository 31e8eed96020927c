#!/bin/sh
# Runs the test suites against a newer SQLite than Debian's 3.40.1: the
# amalgamation that ships inside the npm package better-sqlite3@12
# (deps/sqlite3/sqlite3.c, SQLite 3.53.x), which `make node-deps` installs.
#
#   sh tests/newer-sqlite.sh            the SQL suite (tests/sql/run-sql.sh)
#   sh tests/newer-sqlite.sh --python   ... and the Python suite
#
# The package has sqlite3.c, sqlite3.h and sqlite3ext.h but no shell.c, so
# the amalgamation is built as build/sqlite-new/libsqlite3.so.0 (with the
# options Debian builds its own with, so that its sqlite3 shell and Python's
# _sqlite3 find every symbol) and put in front of the system's library with
# LD_LIBRARY_PATH: Debian's sqlite3 shell and Python then run on 3.53. The
# shell's own messages ("Parse error near line N:") stay those of its 3.40
# shell.c; everything the library says (sqlite3_errmsg) is 3.53's.
# embed.so is compiled against the new sqlite3.h/sqlite3ext.h.
#
# Exits 77 (skipped) when the package is missing.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
AMALG=${AMALG:-$root/build/node/node_modules/better-sqlite3/deps/sqlite3}
OUT=${OUT:-$root/build/sqlite-new}
CC=${CC:-cc}
PY=${PYTHON:-/usr/bin/python3}

if [ ! -f "$AMALG/sqlite3.c" ]; then
  echo "newer-sqlite: no amalgamation at $AMALG (run: make node-deps)"
  exit 77
fi
mkdir -p "$OUT"

# Debian's options (pragma compile_options of its 3.40.1), so the library is
# a drop-in for the libsqlite3.so.0 that its shell and Python link.
SQLITE_FLAGS="-DSQLITE_ENABLE_COLUMN_METADATA -DSQLITE_ENABLE_DBSTAT_VTAB \
  -DSQLITE_ENABLE_FTS3 -DSQLITE_ENABLE_FTS3_PARENTHESIS -DSQLITE_ENABLE_FTS4 \
  -DSQLITE_ENABLE_FTS5 -DSQLITE_ENABLE_MATH_FUNCTIONS \
  -DSQLITE_ENABLE_PREUPDATE_HOOK -DSQLITE_ENABLE_RTREE -DSQLITE_ENABLE_SESSION \
  -DSQLITE_ENABLE_STMTVTAB -DSQLITE_ENABLE_UNLOCK_NOTIFY -DSQLITE_SOUNDEX \
  -DSQLITE_ENABLE_UPDATE_DELETE_LIMIT -DSQLITE_LIKE_DOESNT_MATCH_BLOBS \
  -DSQLITE_DEFAULT_RECURSIVE_TRIGGERS -DSQLITE_SECURE_DELETE \
  -DSQLITE_MAX_VARIABLE_NUMBER=250000 -DSQLITE_USE_URI=1 -DSQLITE_TEMP_STORE=1 \
  -DSQLITE_THREADSAFE=1"

lib="$OUT/libsqlite3.so.0"
if [ ! -f "$lib" ] || [ "$AMALG/sqlite3.c" -nt "$lib" ]; then
  echo "newer-sqlite: building $lib from $AMALG/sqlite3.c"
  # shellcheck disable=SC2086
  "$CC" -O2 -fPIC -shared -Wl,-soname,libsqlite3.so.0 $SQLITE_FLAGS \
    -o "$lib.tmp" "$AMALG/sqlite3.c" -lm -lpthread -ldl
  mv "$lib.tmp" "$lib"
fi

# the Makefile's SRC list, read by make itself
src=$(printf 'print-src:\n\t@echo $(SRC)\n' |
      make -s --no-print-directory -C "$root" -f Makefile -f - print-src)
echo "newer-sqlite: building $OUT/embed.so against $AMALG/sqlite3.h"
# shellcheck disable=SC2086
(cd "$root" && "$CC" -std=gnu11 -fPIC -fvisibility=hidden -Wall -Wextra -Werror -Wshadow \
  -Wstrict-prototypes -O2 -g -I"$AMALG" -Iext -shared -o "$OUT/embed.so" \
  $src -lm)

# Debian's shell refuses a library whose sqlite3_sourceid() differs from the
# SQLITE_SOURCE_ID it was compiled with ("SQLite header and source version
# mismatch"). A shim preloaded into the shell alone answers that check with
# the shell's own id; sqlite_source_id() in SQL still reports the real one.
real_shell=$(command -v sqlite3)
case "$real_shell" in "$OUT"/*) real_shell=/usr/bin/sqlite3 ;; esac
shell_id=$("$real_shell" -version | cut -d' ' -f2-4)
{
  echo "/* Lets Debian's sqlite3 shell run on another libsqlite3.so.0: the"
  echo "** shell compares this with the id of the sqlite3.h it was built with. */"
  echo "const char *sqlite3_sourceid(void);"
  echo "const char *sqlite3_sourceid(void) { return \"$shell_id\"; }"
} > "$OUT/sourceid-shim.c"
"$CC" -O2 -fPIC -shared -o "$OUT/sourceid-shim.so" "$OUT/sourceid-shim.c"
{
  echo "#!/bin/sh"
  echo "# Debian's sqlite3 shell on the SQLite built in this folder."
  echo "LD_LIBRARY_PATH=\"$OUT\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\" \\"
  echo "LD_PRELOAD=\"$OUT/sourceid-shim.so\${LD_PRELOAD:+ \$LD_PRELOAD}\" \\"
  echo "  exec $real_shell \"\$@\""
} > "$OUT/sqlite3"
chmod +x "$OUT/sqlite3"

# Tests that run `sqlite3` themselves get the wrapper too.
PATH="$OUT:$PATH"
LD_LIBRARY_PATH="$OUT${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH LD_LIBRARY_PATH
shell_version=$("$OUT/sqlite3" :memory: 'select sqlite_version()')
py_version=$("$PY" -c 'import sqlite3; print(sqlite3.sqlite_version)')
want=$(sed -n 's/^#define SQLITE_VERSION  *"\(.*\)"/\1/p' "$AMALG/sqlite3.h")
echo "newer-sqlite: shell runs SQLite $shell_version, Python $py_version" \
     "(amalgamation $want)"
if [ "$shell_version" != "$want" ] || [ "$py_version" != "$want" ]; then
  echo "newer-sqlite: the new library was not picked up"
  exit 1
fi

status=0
SQLITE3="$OUT/sqlite3" BUILD_DIR="$OUT" sh "$here/sql/run-sql.sh" "$OUT/embed" ||
  status=1
if [ "${1:-}" = "--python" ]; then
  EMBED_EXT="$OUT/embed" "$PY" -m pytest -q -p no:cacheprovider "$here" ||
    status=1
fi
exit $status
