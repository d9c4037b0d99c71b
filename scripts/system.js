#!/usr/bin/env node
'use strict';
/**
 * The Debian packages the editor tests and `npm start` need, installed with
 * apt-get when we run as root, else named in the exact command to run.
 *
 *   node scripts/system.js [build|browser|neovim]...     (default: all)
 *   const { ensureSystemPackages } = require('./system');
 *   ensureSystemPackages(['build', 'browser']);
 *
 * Groups:
 *   build    what code-server's native modules compile with (node-gyp):
 *            libkrb5-dev, pkg-config, g++, make, python3
 *   browser  Debian's chromium (driven by playwright-core) and a font
 *   neovim   Debian's neovim, the second LSP client of the tests
 *
 * Each package is checked first (a command on PATH or dpkg's status), so a
 * machine that has them never runs apt. `apt-get update` runs once per
 * process, before the first install. apt's output goes to a log file in the
 * cache folder; its tail is shown when apt fails.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { cacheRoot } = require('./kernel-tree');

function onPath(cmd) {
  for (const dir of (process.env.PATH || '').split(path.delimiter)) {
    if (!dir) continue;
    try {
      fs.accessSync(path.join(dir, cmd), fs.constants.X_OK);
      return true;
    } catch {
      /* not here */
    }
  }
  return false;
}

function dpkgInstalled(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && /install ok installed/.test(r.stdout);
}

/** Package name -> how to tell it is there. */
const PACKAGES = {
  'libkrb5-dev': () => dpkgInstalled('libkrb5-dev'),
  'pkg-config': () => onPath('pkg-config'),
  'g++': () => onPath('g++'),
  make: () => onPath('make'),
  python3: () => onPath('python3'),
  chromium: () => fs.existsSync('/usr/bin/chromium'),
  'fonts-liberation': () => dpkgInstalled('fonts-liberation') || dpkgInstalled('fonts-dejavu-core'),
  neovim: () => onPath('nvim'),
};

const GROUPS = {
  build: ['libkrb5-dev', 'pkg-config', 'g++', 'make', 'python3'],
  browser: ['chromium', 'fonts-liberation'],
  neovim: ['neovim'],
};

const CHROMIUM = '/usr/bin/chromium';

function isRoot() {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function expand(groups) {
  const pkgs = [];
  for (const g of groups) {
    const list = GROUPS[g] ?? (PACKAGES[g] ? [g] : undefined);
    if (!list) throw new Error(`unknown package group ${g}`);
    for (const p of list) if (!pkgs.includes(p)) pkgs.push(p);
  }
  return pkgs;
}

/** The packages of `groups` that are not installed. */
function missingPackages(groups) {
  return expand(groups).filter((p) => !PACKAGES[p]());
}

function installCommand(pkgs) {
  return `sudo apt-get update && sudo apt-get install -y --no-install-recommends ${pkgs.join(' ')}`;
}

let updated = false;

function apt(args, logFile) {
  const fd = fs.openSync(logFile, 'a');
  try {
    fs.writeSync(fd, `\n$ apt-get ${args.join(' ')}\n`);
    // Another apt (or a second test run) may hold dpkg's lock: wait for it rather than fail.
    const r = spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.error) throw new Error(`apt-get: ${r.error.message}`);
    if (r.status !== 0) {
      const tail = fs.readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n');
      throw new Error(`apt-get ${args[0]} failed (exit ${r.status}); the end of ${logFile}:\n${tail}`);
    }
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Installs the missing packages of `groups` (as root), or throws an Error
 * whose message is the exact command to run. Returns the packages installed.
 */
function ensureSystemPackages(groups, log = (m) => process.stderr.write(m + '\n')) {
  const missing = missingPackages(groups);
  if (missing.length === 0) return [];
  if (!isRoot() || !onPath('apt-get')) {
    const why = onPath('apt-get') ? 'not running as root' : 'apt-get is not available';
    throw new Error(`missing system packages: ${missing.join(' ')} (${why}). Install them with:\n  ${installCommand(missing)}`);
  }
  const dir = cacheRoot();
  fs.mkdirSync(dir, { recursive: true });
  const logFile = path.join(dir, 'apt.log');
  const t0 = Date.now();
  log(`dmalens: installing ${missing.join(' ')} with apt-get (once; log: ${logFile})`);
  if (!updated) {
    apt(['update'], logFile);
    updated = true;
  }
  apt(['install', '-y', '--no-install-recommends', ...missing], logFile);
  const still = missing.filter((p) => !PACKAGES[p]());
  if (still.length) throw new Error(`apt-get installed ${missing.join(' ')} but ${still.join(' ')} still looks missing`);
  log(`dmalens: installed ${missing.join(' ')} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return missing;
}

module.exports = { ensureSystemPackages, missingPackages, installCommand, isRoot, onPath, CHROMIUM, GROUPS };

if (require.main === module) {
  const groups = process.argv.slice(2);
  try {
    const done = ensureSystemPackages(groups.length ? groups : Object.keys(GROUPS));
    if (done.length === 0) process.stderr.write('dmalens: the system packages are installed\n');
  } catch (e) {
    process.stderr.write(`dmalens: ${e.message}\n`);
    process.exit(1);
  }
}
