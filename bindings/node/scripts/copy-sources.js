// prepack / postpack: the tarball of `npm pack` carries a copy of the
// repository's ext/ (the C sources build.js compiles), removed after.
//
//   node scripts/copy-sources.js            copy ../../ext to ./ext
//   node scripts/copy-sources.js --remove   remove ./ext
'use strict';
const fs = require('fs');
const path = require('path');

const here = path.dirname(__dirname);
const target = path.join(here, 'ext');
const source = path.join(here, '..', '..', 'ext');

if (process.argv.includes('--remove')) {
  fs.rmSync(target, {recursive: true, force: true});
} else {
  if (!fs.existsSync(path.join(source, 'embed.c'))) {
    console.error(`sqlite-embed: ${source} has no embed.c: pack from the repository's bindings/node`);
    process.exit(1);
  }
  fs.rmSync(target, {recursive: true, force: true});
  fs.cpSync(source, target, {
    recursive: true,
    filter: (p) => fs.statSync(p).isDirectory() || /\.[ch]$/.test(p),
  });
}
