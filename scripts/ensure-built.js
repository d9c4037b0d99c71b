#!/usr/bin/env node
'use strict';
/**
 * Makes sure dependencies are installed and the build is current, cheaply:
 *
 * - node_modules missing            -> npm install
 * - no complete build, or any source newer than it -> node scripts/build.js
 *
 * "Complete build" is server/dist/.build-stamp, written by scripts/build.js
 * only when every artifact and the type-check succeeded. Sources: server/src,
 * server/test, server/bin, client/src, grammars, the package.json and
 * tsconfig files, and the build script itself.
 *
 *   node scripts/ensure-built.js          (used by npm start, npm run check, npm test)
 *   require('./ensure-built').ensureBuilt()
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const STAMP = path.join(ROOT, 'server', 'dist', '.build-stamp');

const SOURCES = [
  'server/src',
  'server/test',
  'server/bin',
  'client/src',
  'grammars',
  'package.json',
  'package-lock.json',
  'server/package.json',
  'client/package.json',
  'tsconfig.base.json',
  'server/tsconfig.json',
  'client/tsconfig.json',
  'scripts/build.js',
];

/** Newest mtime under `p` (a file or a folder), 0 when it does not exist. */
function newest(p) {
  let st;
  try {
    st = fs.statSync(p);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let m = st.mtimeMs; // a deleted file changes its folder's mtime
  for (const e of fs.readdirSync(p, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name.startsWith('.')) continue;
    m = Math.max(m, newest(path.join(p, e.name)));
  }
  return m;
}

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', shell: process.platform === 'win32' });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`);
}

/** Why a build is needed, or undefined when the build is current. */
function staleReason() {
  let stamp;
  try {
    stamp = fs.statSync(STAMP).mtimeMs;
  } catch {
    return 'no complete build yet';
  }
  for (const s of SOURCES) {
    if (newest(path.join(ROOT, s)) > stamp) return `${s} changed since the last build`;
  }
  return undefined;
}

function ensureBuilt(log = (m) => process.stderr.write(m + '\n')) {
  if (!fs.existsSync(path.join(ROOT, 'node_modules'))) {
    log('dmalens: node_modules is missing; running npm install');
    run('npm', ['install', '--no-audit', '--no-fund']);
  }
  const why = staleReason();
  if (why) {
    log(`dmalens: building (${why})`);
    run(process.execPath, [path.join(ROOT, 'scripts', 'build.js')]);
  }
}

module.exports = { ensureBuilt, staleReason };

if (require.main === module) {
  try {
    ensureBuilt();
  } catch (e) {
    process.stderr.write(`dmalens: ${e.message}\n`);
    process.exit(1);
  }
}
