#!/usr/bin/env node
'use strict';
/**
 * Downloads Debian's linux-source-X.Y package once and unpacks the kernel
 * tree into a cache folder outside the repository. Prints the tree's path.
 *
 *   node scripts/kernel-tree.js [6.12|6.1]
 *
 * Cache: $DMALENS_CACHE, else $XDG_CACHE_HOME/dmalens, else ~/.cache/dmalens.
 * The served version moves with Debian's security updates: callers read the
 * tree's Makefile for the exact version instead of assuming one.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function cacheRoot() {
  if (process.env.DMALENS_CACHE) return process.env.DMALENS_CACHE;
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'dmalens');
}

function run(cmd, args, opts = {}) {
  return execFileSync(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts }).toString();
}

function ensureKernelTree(series = '6.12', log = (m) => process.stderr.write(m + '\n')) {
  const dir = path.join(cacheRoot(), `linux-source-${series}`);
  const tree = path.join(dir, `linux-source-${series}`);
  const stamp = path.join(dir, '.complete');
  if (fs.existsSync(stamp) && fs.existsSync(path.join(tree, 'Makefile'))) return tree;

  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const pkg = `linux-source-${series}`;
  log(`dmalens: downloading Debian's ${pkg} into ${dir} (once; about 150 MB)`);
  const download = () => run('apt-get', ['download', pkg], { cwd: dir });
  try {
    download();
  } catch {
    log('dmalens: apt-get download failed; running apt-get update once and retrying');
    try {
      run('apt-get', ['update'], { stdio: 'ignore' });
    } catch (e) {
      throw new Error(`apt-get update failed (${e.message.split('\n')[0]}); run it as root and retry`);
    }
    download();
  }
  const deb = fs.readdirSync(dir).find((f) => f.startsWith(pkg) && f.endsWith('.deb'));
  if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb in ${dir}`);
  const root = path.join(dir, 'root');
  run('dpkg-deb', ['-x', path.join(dir, deb), root]);
  const tarball = path.join(root, 'usr', 'src', `${pkg}.tar.xz`);
  if (!fs.existsSync(tarball)) throw new Error(`${tarball} missing from ${deb}`);
  log(`dmalens: unpacking ${path.basename(tarball)}`);
  run('tar', ['-xJf', tarball, '-C', dir]);
  fs.rmSync(root, { recursive: true, force: true });
  fs.rmSync(path.join(dir, deb), { force: true });
  if (!fs.existsSync(path.join(tree, 'Makefile'))) throw new Error(`no Makefile in ${tree} after unpacking`);
  fs.writeFileSync(stamp, new Date().toISOString() + '\n');
  return tree;
}

/** VERSION.PATCHLEVEL.SUBLEVEL from a tree's Makefile. */
function kernelVersion(tree) {
  const mk = fs.readFileSync(path.join(tree, 'Makefile'), 'latin1');
  const get = (k) => (mk.match(new RegExp(`^${k}\\s*=\\s*(\\d+)`, 'm')) || [])[1];
  return { major: +get('VERSION'), minor: +get('PATCHLEVEL'), sublevel: +(get('SUBLEVEL') || 0) };
}

module.exports = { ensureKernelTree, kernelVersion, cacheRoot };

if (require.main === module) {
  try {
    const tree = ensureKernelTree(process.argv[2] || '6.12');
    const v = kernelVersion(tree);
    process.stderr.write(`dmalens: kernel ${v.major}.${v.minor}.${v.sublevel}\n`);
    process.stdout.write(tree + '\n');
  } catch (e) {
    process.stderr.write(`dmalens: ${e.message}\n`);
    process.exit(2);
  }
}
