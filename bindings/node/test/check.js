// Run by test.sh inside a temporary project that installed the npm pack
// tarball of sqlite-embed: the installed package loads into better-sqlite3,
// answers a similarity search and takes a training step. Exits non-zero on
// the first check that fails.
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const Database = require('better-sqlite3');
const embed = require('sqlite-embed');

const project = fs.realpathSync(process.cwd());
const lib = embed.getLoadablePath();
assert.ok(fs.realpathSync(lib).startsWith(
    path.join(project, 'node_modules', 'sqlite-embed') + path.sep), lib);

const db = new Database(':memory:');
embed.load(db);
const version = db.prepare('SELECT embed_version() AS v').get().v;
assert.strictEqual(version, require('sqlite-embed/package.json').version);

// the README's first session, through the package: a step, then a search
db.exec('CREATE VIRTUAL TABLE tok USING embedding(num_embeddings=4, dim=3, seed=42)');

const before = new Float32Array(
    db.prepare('SELECT vector FROM tok WHERE id = 2').pluck().get().buffer.slice(0));
const grad = new Float32Array([1, 0, -1]);
const changed = db.prepare("SELECT embed_update('tok', 2, ?, 0.1)").pluck()
    .get(Buffer.from(grad.buffer));
assert.strictEqual(changed, 1);
const after = db.prepare('SELECT embed_json(vector) FROM tok WHERE id = 2').pluck().get();
assert.strictEqual(after, '[-0.038095538,-0.21851987,0.5206659]');
// w - lr * grad in float32, element by element
const blob = db.prepare('SELECT vector FROM tok WHERE id = 2').pluck().get();
const w = new Float32Array(blob.buffer, blob.byteOffset, 3);
for (let i = 0; i < 3; i++) {
  assert.strictEqual(w[i], Math.fround(before[i] + Math.fround(-0.1 * grad[i])));
}
// the search after the step, as in the README
const hits = db.prepare(
    "SELECT id, round(distance, 4) AS d FROM tok WHERE vector MATCH '[0, 0, 1]' AND k = 2").all();
assert.deepStrictEqual(hits, [{id: 2, d: 0.08}, {id: 3, d: 0.099}]);
// a batch step, then a search that sees it
db.prepare("SELECT embed_update('tok', '[0, 1, 0]', '[[1, 1, 1], [0, 0, 5], [1, 1, 1]]', 0.5)").get();
const near = db.prepare(
    "SELECT id FROM tok WHERE vector MATCH '[0, 0, -1]' AND k = 1").pluck().get();
assert.strictEqual(near, 1);
assert.throws(() => embed.load({}), /needs a connection with loadExtension/);
console.log(`sqlite-embed ${version} from ${path.relative(project, lib)}: ` +
            `KNN ${JSON.stringify(hits)}, embed_update ok, on SQLite ` +
            db.prepare('SELECT sqlite_version()').pluck().get());
