#!/usr/bin/env node
'use strict';
/**
 * npm test: makes sure the build is current (scripts/ensure-built.js), then
 * runs every node:test file under server/out/test (compiled from server/test
 * by tsc -b), one file at a time, and exits with the runner's status.
 *
 *   node scripts/test.js [extra node --test arguments, e.g. --test-name-pattern=hover]
 *
 * The test files are listed explicitly, and only those whose TypeScript
 * source still exists: tsc -b never deletes the output of a removed test.
 * DMALENS_SKIP_KERNEL=1 skips the real-kernel test (which downloads Debian's
 * linux-source-6.12 once, into a cache outside the repository).
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt } = require('./ensure-built');

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'server', 'test');
const OUT = path.join(ROOT, 'server', 'out', 'test');

/** server/out/test/**\/*.test.js with a server/test/**\/*.test.ts beside it, sorted. */
function testFiles(dir = OUT) {
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const files = [];
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) files.push(...testFiles(p));
    else if (e.name.endsWith('.test.js')) {
      const source = path.join(SRC, path.relative(OUT, p)).replace(/\.js$/, '.ts');
      if (fs.existsSync(source)) files.push(path.relative(ROOT, p));
    }
  }
  return files;
}

try {
  ensureBuilt();
} catch (e) {
  process.stderr.write(`dmalens: ${e.message}\n`);
  process.exit(1);
}
const files = testFiles();
if (files.length === 0) {
  process.stderr.write('dmalens: no compiled tests under server/out/test; run npm run build\n');
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files],
  { cwd: ROOT, stdio: 'inherit' },
);
if (r.error) {
  process.stderr.write(`dmalens: ${r.error.message}\n`);
  process.exit(1);
}
process.exit(r.status ?? 1);
