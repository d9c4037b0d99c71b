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
 *
 * Then the editor tests (server/test/e2e.*.test.ts, scripts/e2e.js): VS Code
 * through code-server and chromium, and Neovim. The first run installs
 * chromium, neovim and the build packages (as root) and code-server into
 * the cache; DMALENS_SKIP_E2E=1 skips them. The exit status is non-zero
 * when either part fails.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt } = require('./ensure-built');
const { E2E, runE2E } = require('./e2e');

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
    else if (e.name.endsWith('.test.js') && !(dir === OUT && E2E.test(e.name))) {
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
const unit = r.status ?? 1;
// The editor tests run after the unit tests, whatever those gave; a run filtered by name is about unit tests.
const filtered = process.argv.slice(2).some((a) => a.startsWith('--test-name-pattern') || a.startsWith('--test-only'));
if (filtered) process.stderr.write('dmalens: editor tests not run (the run is filtered by name; npm run test:e2e runs them)\n');
const e2e = filtered ? 0 : runE2E(process.argv.slice(2));
if (unit !== 0) process.stderr.write(`dmalens: the unit tests failed (exit ${unit})\n`);
process.exit(unit !== 0 ? unit : e2e);
