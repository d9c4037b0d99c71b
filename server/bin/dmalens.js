#!/usr/bin/env node
'use strict';
// The `dmalens` command: runs the bundled CLI (dist/cli.js, from npm run
// build) when there is one, else the tsc output (out/src/cli/main.js).
const fs = require('node:fs');
const path = require('node:path');

const candidates = [
  path.join(__dirname, '..', 'dist', 'cli.js'),
  path.join(__dirname, '..', 'out', 'src', 'cli', 'main.js'),
];
const target = candidates.find((p) => fs.existsSync(p));
if (!target) {
  process.stderr.write('dmalens: not built; run npm run build\n');
  process.exit(2);
}
require(target).runProcess(process.argv.slice(2));
