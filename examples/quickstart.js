// quickstart.js: embed from Node with better-sqlite3 (v12; Node 20 or later).
//
//   1. load the extension into a connection
//   2. create an embedding table (torch.nn.Embedding(6, 4) in a database)
//   3. insert Float32Array vectors: a vector is the BLOB of its bytes
//   4. look rows up; a Float32Array over the returned Buffer, without a copy
//   5. similarity search: the k nearest rows to a query vector
//   6. a training step: embed_update applies SGD, w <- w - lr * grad
//
//   make node-deps && node examples/quickstart.js
//
// better-sqlite3 is looked up normally, then in build/node (where the
// Makefile installs it); EMBED_EXT overrides the extension path (./embed).
'use strict';
const path = require('path');

const ROOT = path.dirname(__dirname);
const EXT = process.env.EMBED_EXT || path.join(ROOT, 'embed');

function loadBetterSqlite3() {
  try {
    return require('better-sqlite3');
  } catch (e) {
    return require(path.join(ROOT, 'build', 'node', 'node_modules',
                             'better-sqlite3'));
  }
}
const Database = loadBetterSqlite3();

// A vector BLOB is little-endian float32: the bytes of a Float32Array (on the
// little-endian machines Node runs on).
const toBlob = (values) => Buffer.from(new Float32Array(values).buffer);

// A Float32Array view of a BLOB: no copy when the Buffer is 4-byte aligned
// (Buffers can share a pool at any offset; then it copies once).
function fromBlob(buf) {
  if (buf.byteOffset % 4 === 0) {
    return new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  }
  return new Float32Array(Uint8Array.prototype.slice.call(buf).buffer);
}

const fmt = (v) => '[' + Array.from(v, (x) => x.toFixed(4)).join(', ') + ']';

console.log('== 1. Load the extension');
const db = new Database(':memory:');
db.loadExtension(EXT);
const version = db.prepare('SELECT embed_version() AS v, sqlite_version() AS s')
                    .get();
console.log(`   embed ${version.v} on SQLite ${version.s}`);

console.log('\n== 2. An embedding table of 6 rows x 4 floats (seeded)');
db.exec(`CREATE VIRTUAL TABLE emb USING embedding(num_embeddings=6, dim=4,
                                                  seed=1);
         CREATE TABLE vocab(id INTEGER PRIMARY KEY, token TEXT UNIQUE);`);
const addWord = db.prepare('INSERT INTO vocab(id, token) VALUES (?, ?)');
['<pad>', 'red', 'green', 'blue', 'apple', 'cherry'].forEach((t, i) =>
  addWord.run(i, t));
console.log('   rows:', db.prepare('SELECT count(*) AS n FROM emb').get().n);

console.log('\n== 3. Insert Float32Array vectors (their bytes are the BLOB)');
const colors = {
  red: [1.0, 0.1, 0.0, 0.0], green: [0.0, 1.0, 0.1, 0.0],
  blue: [0.0, 0.1, 1.0, 0.0], apple: [0.9, 0.3, 0.0, 0.5],
  cherry: [0.95, 0.05, 0.1, 0.6],
};
const setVector = db.prepare(
  'UPDATE emb SET vector = ? WHERE id = (SELECT id FROM vocab WHERE token = ?)');
db.transaction(() => { // one transaction for the whole batch
  for (const [token, v] of Object.entries(colors)) setVector.run(toBlob(v), token);
  addWord.run(6, 'purple');
  db.prepare('INSERT INTO emb(id, vector) VALUES (?, ?)')
    .run(6, toBlob([0.5, 0.0, 0.5, 0.0]));
})();
console.log('   purple inserted as id 6; table has',
            db.prepare('SELECT count(*) AS n FROM emb').get().n, 'rows');

console.log('\n== 4. Look up: a Float32Array over the returned Buffer');
const appleBlob = db.prepare('SELECT vector FROM emb WHERE id = ?').get(4).vector;
const apple = fromBlob(appleBlob);
console.log(`   apple  = ${fmt(apple)}  (shares the Buffer's memory: ` +
            `${apple.buffer === appleBlob.buffer})`);
const batch = fromBlob(db.prepare("SELECT embed_lookup('emb', '[1, 2, 3]') AS b")
                         .get().b);
console.log("   embed_lookup('emb', '[1, 2, 3]'), one BLOB of 3 x 4 floats:");
for (let r = 0; r < 3; r++) console.log('     ', fmt(batch.subarray(4 * r, 4 * r + 4)));

console.log('\n== 5. Similarity search: the 3 rows nearest to cherry (cosine distance)');
const nearest = db.prepare(`
  SELECT v.token, n.distance
  FROM (SELECT id, distance FROM emb WHERE vector MATCH ? AND k = 3) AS n
  JOIN vocab v ON v.id = n.id ORDER BY n.distance`);
for (const row of nearest.all(toBlob(colors.cherry))) {
  console.log(`   ${row.token.padEnd(8)} ${row.distance.toFixed(4)}`);
}

console.log('\n== 6. A training step: SGD on row 1 (red), lr = 0.5');
const grad = new Float32Array([0.2, -0.4, 0.0, 1.0]);
const readRow = db.prepare('SELECT vector FROM emb WHERE id = 1');
const before = fromBlob(readRow.get().vector).slice();
const changed = db.prepare("SELECT embed_update('emb', 1, ?, 0.5) AS n")
                  .get(Buffer.from(grad.buffer)).n;
const after = fromBlob(readRow.get().vector);
// float32 arithmetic, as the extension does it: w + (-lr) * g, each rounded
const expected = before.map((w, i) => Math.fround(w + Math.fround(-0.5 * grad[i])));
console.log(`   before   ${fmt(before)}\n   grad     ${fmt(grad)}\n` +
            `   after    ${fmt(after)}`);
console.log(`   rows changed: ${changed}; equals w - lr * grad in float32: ` +
            `${after.every((x, i) => x === expected[i])}`);
db.close();
