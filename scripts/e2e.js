#!/usr/bin/env node
'use strict';
/**
 * npm run test:e2e: the editor tests, server/test/e2e.*.test.ts, compiled to
 * server/out/test by tsc -b:
 *
 *   e2e.vscode.test.ts   the packaged extension in a real VS Code (code-server
 *                        4.139.1) driven through Debian's chromium
 *   e2e.neovim.test.ts   the language server in Neovim's built-in LSP client
 *
 * First installs what they need, once: the Debian packages (as root with
 * apt-get, else it stops and prints the command) and code-server with its
 * Node 24 into the cache folder (~/.cache/dmalens). Later runs find them
 * there. `npm test` runs this after the unit tests (DMALENS_SKIP_E2E=1 skips
 * it).
 *
 *   node scripts/e2e.js [extra node --test arguments]
 *   require('./e2e').runE2E(args) -> exit status
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const SRC = path.join(ROOT, 'server', 'test');
const OUT = path.join(ROOT, 'server', 'out', 'test');
const E2E = /^e2e\..+\.test\.js$/;

/** server/out/test/e2e.*.test.js whose TypeScript source still exists. */
function e2eFiles() {
  let names = [];
  try {
    names = fs.readdirSync(OUT);
  } catch {
    return [];
  }
  return names
    .filter((n) => E2E.test(n) && fs.existsSync(path.join(SRC, n.replace(/\.js$/, '.ts'))))
    .sort()
    .map((n) => path.relative(ROOT, path.join(OUT, n)));
}

/** Installs what the editor tests need (once); throws with the command to run when it cannot. */
function prepareE2E(log = (m) => process.stderr.write(m + '\n')) {
  const t0 = Date.now();
  const { ensureSystemPackages } = require('./system');
  const { ensureCodeServer, CODE_SERVER_VERSION } = require('./code-server');
  // The build packages (what code-server's native modules compile with) only when code-server is not installed yet.
  ensureSystemPackages(['browser', 'neovim'], log);
  ensureCodeServer(log);
  try {
    require.resolve('playwright-core', { paths: [ROOT] });
  } catch {
    log('dmalens: playwright-core is missing from node_modules; running npm install');
    const r = spawnSync('npm', ['install', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm install failed');
  }
  const s = ((Date.now() - t0) / 1000).toFixed(1);
  log(`dmalens: editor tests: chromium, neovim and code-server ${CODE_SERVER_VERSION} ready (${s} s)`);
}

/** Runs the editor tests; returns the exit status. */
function runE2E(args = []) {
  if (process.env.DMALENS_SKIP_E2E === '1') {
    process.stderr.write('dmalens: editor tests skipped (DMALENS_SKIP_E2E=1)\n');
    return 0;
  }
  const files = e2eFiles();
  if (files.length === 0) {
    process.stderr.write('dmalens: no compiled editor tests under server/out/test; run npm run build\n');
    return 1;
  }
  try {
    prepareE2E();
  } catch (e) {
    process.stderr.write(`dmalens: the editor tests cannot run: ${e.message}\n(DMALENS_SKIP_E2E=1 skips them.)\n`);
    return 1;
  }
  const t0 = Date.now();
  const reporter = args.some((a) => a.startsWith('--test-reporter')) ? [] : ['--test-reporter=spec'];
  const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...reporter, ...args, ...files], { cwd: ROOT, stdio: 'inherit' });
  process.stderr.write(`dmalens: editor tests took ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  if (r.error) {
    process.stderr.write(`dmalens: ${r.error.message}\n`);
    return 1;
  }
  return r.status ?? 1;
}

module.exports = { e2eFiles, prepareE2E, runE2E, E2E };

if (require.main === module) {
  const { ensureBuilt } = require('./ensure-built');
  try {
    ensureBuilt();
  } catch (e) {
    process.stderr.write(`dmalens: ${e.message}\n`);
    process.exit(1);
  }
  process.exit(runE2E(process.argv.slice(2)));
}
