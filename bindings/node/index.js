// sqlite-embed: the embed SQLite extension for Node.
//
//   const Database = require('better-sqlite3');
//   const embed = require('sqlite-embed');
//   const db = new Database(':memory:');
//   embed.load(db);                         // or db.loadExtension(embed.getLoadablePath())
//
// The library is compiled from the package's C sources when the package is
// installed (build.js); getLoadablePath() is where that put it.
'use strict';
const fs = require('fs');
const path = require('path');

const LIBRARY = path.join(__dirname, 'build', 'embed.so');

// The path of the compiled extension, for loadExtension() of any binding.
function getLoadablePath() {
  if (!fs.existsSync(LIBRARY)) {
    throw new Error(
        `sqlite-embed: ${LIBRARY} is missing: the install step compiles it ` +
        '(run `npm rebuild sqlite-embed` and read its output)');
  }
  return LIBRARY;
}

// Load the extension into a connection that has loadExtension(path):
// better-sqlite3's Database, node:sqlite's DatabaseSync (opened with
// allowExtension: true).
function load(db) {
  if (!db || typeof db.loadExtension !== 'function') {
    throw new TypeError(
        'sqlite-embed: load(db) needs a connection with loadExtension(), ' +
        'such as a better-sqlite3 Database');
  }
  db.loadExtension(getLoadablePath());
}

module.exports = {getLoadablePath, load};
