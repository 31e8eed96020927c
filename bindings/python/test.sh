#!/bin/sh
# make test-pip: the Python package as a user gets it, offline.
#
#   sh bindings/python/test.sh PYTHON WORKDIR
#
# 1. pip wheel --no-build-isolation: a wheel of bindings/python built with
#    the setuptools and wheel PYTHON has (Debian's), no index reached;
# 2. a fresh venv (--system-site-packages, for numpy, torch, apsw, pytest);
# 3. the wheel installed into it with --no-index;
# 4. tests/test_package.py run by the venv's Python from a folder outside
#    the repository, so that only the installed package can be imported;
# 5. pip install --no-build-isolation of the folder into a second venv, and
#    the build's message when there is no C compiler.
set -eu
PY=$1
WORK=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
# pip builds in place: start from no objects, as a fresh clone does
rm -rf "$WORK/wheel" "$WORK/venv" "$WORK/venv2" "$ROOT/bindings/python/build" \
  "$ROOT/bindings/python/sqlite_embed.egg-info"
start=$(date +%s)
"$PY" -m pip wheel --no-build-isolation --no-deps --no-index -q \
  -w "$WORK/wheel" "$ROOT/bindings/python"
whl=$(ls "$WORK"/wheel/sqlite_embed-*.whl)
built=$(date +%s)
echo "test-pip: built $(basename "$whl") ($(wc -c < "$whl") bytes) in $((built - start)) s"
"$PY" -m venv --system-site-packages "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --no-index --no-deps "$whl"
outside=$(mktemp -d)
trap 'rm -rf "$outside"' EXIT
cd "$outside"
EMBED_ROOT=$ROOT "$WORK/venv/bin/python" -m pytest -q -p no:cacheprovider \
  --rootdir "$outside" "$ROOT/bindings/python/tests/test_package.py"
cd "$ROOT"
"$PY" -m venv --system-site-packages "$WORK/venv2"
"$WORK/venv2/bin/python" -m pip install -q --no-build-isolation --no-index \
  --no-deps "$ROOT/bindings/python"
(cd "$outside" && "$WORK/venv2/bin/python" -c "import sqlite3, sqlite_embed
con = sqlite3.connect(':memory:'); sqlite_embed.load(con)
assert con.execute('SELECT embed_version()').fetchone()[0] == sqlite_embed.__version__
assert sqlite_embed.loadable_path().startswith('$WORK/venv2/')")
echo "test-pip: pip install --no-build-isolation of bindings/python works"
rm -rf "$ROOT/bindings/python/build"
if CC=no-such-cc "$PY" -m pip wheel --no-build-isolation --no-deps --no-index -q \
    -w "$WORK/nocc" "$ROOT/bindings/python" > "$WORK/nocc.log" 2>&1; then
  echo "test-pip: the build succeeded without a C compiler"; exit 1
fi
grep -q "sqlite-embed: no C compiler: 'no-such-cc' is not on PATH" "$WORK/nocc.log" || {
  cat "$WORK/nocc.log"; echo "test-pip: no clear message without a C compiler"; exit 1; }
echo "test-pip: without a C compiler the build stops with: $(grep -o "sqlite-embed: no C compiler[^.]*" "$WORK/nocc.log" | head -1)"
rm -rf "$ROOT/bindings/python/build" "$ROOT/bindings/python/sqlite_embed.egg-info"
echo "test-pip: wheel built, installed into a fresh venv and tested from a folder outside the repository; all in $(($(date +%s) - start)) s"
