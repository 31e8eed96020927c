// The install step of sqlite-embed: compile embed's C sources (./ext in the
// tarball, ../../ext in the repository) into build/embed.so with the C
// compiler (CC, default cc) and SQLite's headers. No network, no node-gyp:
// the library is a SQLite extension, not a Node addon.
//
// Without a compiler or the headers it stops with a message that says
// which is missing and how to install it. CFLAGS adds flags (-I... for
// headers elsewhere).
'use strict';
const fs = require('fs');
const path = require('path');
const {spawnSync} = require('child_process');

function fail(message) {
  console.error(`sqlite-embed: ${message}`);
  process.exit(1);
}

const here = __dirname;
const extDir = [path.join(here, 'ext'), path.join(here, '..', '..', 'ext')]
    .find((d) => fs.existsSync(path.join(d, 'embed.c')));
if (!extDir) fail('the C sources (ext/embed.c) are missing from the package');
if (process.platform === 'win32') fail('building on Windows is not supported (POSIX only)');

// The layers in dependency order, as the repository's Makefile lists them.
const sources = [];
for (const layer of ['core', 'value', 'table', 'sql', 'io']) {
  const dir = path.join(extDir, layer);
  for (const f of fs.readdirSync(dir).sort()) {
    if (f.endsWith('.c')) sources.push(path.join(dir, f));
  }
}
sources.push(path.join(extDir, 'embed.c'));

const cc = process.env.CC || 'cc';
const probe = spawnSync(cc, ['--version'], {stdio: 'ignore', shell: false});
if (probe.error) {
  fail(`no C compiler: '${cc}' was not found (${probe.error.code}). ` +
       "Installing sqlite-embed compiles embed's C sources into a SQLite " +
       'extension; install a compiler (Debian/Ubuntu: apt-get install gcc; ' +
       'macOS: xcode-select --install) or set CC, then npm rebuild sqlite-embed');
}

const extraFlags = (process.env.CFLAGS || '').split(/\s+/).filter(Boolean);
const headerDirs = ['/usr/include', '/usr/local/include', '/opt/homebrew/include']
    .concat((process.env.CPATH || '').split(':'),
            (process.env.C_INCLUDE_PATH || '').split(':'),
            extraFlags.filter((f) => f.startsWith('-I')).map((f) => f.slice(2)))
    .filter(Boolean);
if (!headerDirs.some((d) => fs.existsSync(path.join(d, 'sqlite3ext.h')))) {
  fail("SQLite's headers sqlite3.h and sqlite3ext.h were not found. Install " +
       'them (Debian/Ubuntu: apt-get install libsqlite3-dev; Fedora: ' +
       'sqlite-devel; macOS: brew install sqlite) or give their folder in ' +
       'CFLAGS=-I...');
}

const outDir = path.join(here, 'build');
fs.mkdirSync(outDir, {recursive: true});
const out = path.join(outDir, 'embed.so');
const tmp = `${out}.${process.pid}.tmp`;
// sqlite3_embed_init is the only exported symbol (ext/embed.c)
const args = ['-std=gnu11', '-O2', '-fPIC', '-fvisibility=hidden', '-shared', `-I${extDir}`]
    .concat(extraFlags, ['-o', tmp], sources, ['-lm']);
const started = Date.now();
const run = spawnSync(cc, args, {stdio: 'inherit'});
if (run.error || run.status !== 0) {
  fs.rmSync(tmp, {force: true});
  fail(`compiling the extension failed (${cc} exited with ` +
       `${run.error ? run.error.code : run.status})`);
}
fs.renameSync(tmp, out);
console.log(`sqlite-embed: built ${out} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
