#!/bin/sh
# make test-npm: the npm package as a user gets it.
#
#   sh bindings/node/test.sh WORKDIR BETTER_SQLITE3_DIR
#
# 1. npm pack in bindings/node: the tarball (prepack copies ext/ into it);
# 2. a temporary project outside the repository installs the tarball with
#    --offline (the package has no dependencies; its install step compiles
#    the C sources), and gets better-sqlite3@12 as the folder make
#    node-deps installed (linked, so that its 1-minute compile is not
#    repeated);
# 3. test/check.js runs there: getLoadablePath() and load(db), a KNN query,
#    embed_update steps checked in float32;
# 4. installing the folder bindings/node (a path, as npm install ./dir)
#    works the same way;
# 5. installing with CC pointing nowhere fails with the package's message.
set -eu
WORK=$1
BSQL=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$BSQL/package.json" ] || { echo "test-npm: no better-sqlite3 in $BSQL"; exit 1; }
BSQL=$(cd "$BSQL" && pwd)
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
rm -rf "$WORK"/sqlite-embed-*.tgz
start=$(date +%s)
(cd "$ROOT/bindings/node" && npm pack --silent --pack-destination "$WORK" >/dev/null)
tgz=$(ls "$WORK"/sqlite-embed-*.tgz)
[ ! -e "$ROOT/bindings/node/ext" ] || { echo "test-npm: postpack left bindings/node/ext"; exit 1; }
tar -tzf "$tgz" | grep -q '^package/ext/embed.c$' || { echo "test-npm: the tarball has no ext/embed.c"; exit 1; }
echo "test-npm: packed $(basename "$tgz") ($(wc -c < "$tgz") bytes, $(tar -tzf "$tgz" | wc -l) files)"
project=$(mktemp -d)
trap 'rm -rf "$project"' EXIT
cd "$project"
printf '{"name": "embed-npm-test", "version": "1.0.0", "private": true}\n' > package.json
npm install --offline --no-audit --no-fund --foreground-scripts "$tgz" > "$WORK/install.log" 2>&1 || {
  cat "$WORK/install.log"; echo "test-npm: npm install of the tarball failed"; exit 1; }
grep "sqlite-embed: built" "$WORK/install.log" | sed 's/^/test-npm: /'
ln -s "$BSQL" node_modules/better-sqlite3
cp "$ROOT/bindings/node/test/check.js" .
node check.js > "$WORK/check.log" 2>&1 || { cat "$WORK/check.log"; echo "test-npm: check.js failed"; exit 1; }
sed 's/^/test-npm: /' "$WORK/check.log"
# from a path: npm links the folder and builds there
rm -rf node_modules package-lock.json
npm install --offline --no-audit --no-fund --foreground-scripts "$ROOT/bindings/node" > "$WORK/path.log" 2>&1 || {
  cat "$WORK/path.log"; echo "test-npm: npm install of the folder failed"; exit 1; }
ln -s "$BSQL" node_modules/better-sqlite3
node -e "const e = require('sqlite-embed'), D = require('better-sqlite3');
const db = new D(':memory:'); e.load(db);
if (db.prepare(\"SELECT embed_norm('[3, 4]')\").pluck().get() !== 5) process.exit(1);
console.log('test-npm: installed from the folder: ' + e.getLoadablePath());"
# without a C compiler: a clear message, and the install fails
rm -rf node_modules package-lock.json
if CC=no-such-cc npm install --offline --no-audit --no-fund --foreground-scripts "$tgz" > "$WORK/nocc.log" 2>&1; then
  echo "test-npm: the install succeeded without a C compiler"; exit 1
fi
grep -q "sqlite-embed: no C compiler: 'no-such-cc' was not found" "$WORK/nocc.log" || {
  cat "$WORK/nocc.log"; echo "test-npm: no clear message without a C compiler"; exit 1; }
echo "test-npm: without a C compiler the install stops with: $(grep -o "sqlite-embed: no C compiler: [^.]*" "$WORK/nocc.log" | head -1)"
echo "test-npm: packed, installed and checked in $(($(date +%s) - start)) s"
