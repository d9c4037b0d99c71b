#!/usr/bin/env node
'use strict';
/**
 * npm start: DMA Lens in a real VS Code, in the browser.
 *
 *   npm start                     build, then serve VS Code (code-server) with the extension on examples/
 *   npm start -- --check-only     only the command-line demo: dmalens check examples/ (no editor)
 *   DMALENS_PORT=8080 npm start   a fixed port (default: a free one)
 *
 * 1. Builds if needed (scripts/ensure-built.js; npm install on a fresh clone).
 * 2. Counts the findings in examples/ with the command line (the same engine;
 *    `npm run check -- examples/` prints them).
 * 3. Installs code-server 4.139.1 and its Node 24 into ~/.cache/dmalens on
 *    the first run (a few minutes; scripts/code-server.js), and the Debian
 *    packages its native modules build with when run as root (else it prints
 *    the apt-get command and stops).
 * 4. Starts code-server on 127.0.0.1 with the extension (the repository's
 *    build, linked into the profile's extensions folder, so a rebuild and a
 *    window reload pick up changes) and examples/ as the workspace: bad
 *    driver code, a patch series, a PCI topology (examples/README.md).
 * 5. Prints the URL to open, and serves until Ctrl+C, which stops code-server
 *    and every process it started (its process group).
 *
 * The editor's profile (settings, state, logs) lives in ~/.cache/dmalens/editor
 * and persists between runs.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt } = require('./ensure-built');

const ROOT = path.resolve(__dirname, '..');
const EXAMPLES = path.join(ROOT, 'examples');
const OPEN_FIRST = 'drivers/gpu/acme_dmabuf_import.c';

const args = new Set(process.argv.slice(2));
const out = (m) => process.stdout.write(m + '\n');
const err = (m) => process.stderr.write(m + '\n');

function fail(m) {
  err(`dmalens: ${m}`);
  process.exit(1);
}

/** The old demo, in full (--check-only): findings printed by the command line. */
function checkDemo() {
  out('$ dmalens check examples/');
  const r = spawnSync(process.execPath, [path.join(ROOT, 'server', 'bin', 'dmalens.js'), 'check', '--summary', 'examples/'], {
    cwd: ROOT,
    stdio: 'inherit',
  });
  if (r.error) fail(r.error.message);
  // 1 means "error-severity findings": what the examples are there to show.
  process.exit(r.status === 1 ? 0 : (r.status ?? 1));
}

/** One line per file of examples/ with findings (C files and patch mail), from `dmalens check --format json`. */
function summary() {
  const patches = fs.existsSync(path.join(EXAMPLES, 'patches'))
    ? fs.readdirSync(path.join(EXAMPLES, 'patches')).filter((f) => /\.(mbx|mbox|eml|patch|diff)$/.test(f)).map((f) => `examples/patches/${f}`)
    : [];
  const byFile = new Map();
  for (const targets of [['examples/'], patches]) {
    if (targets.length === 0) continue;
    const r = spawnSync(
      process.execPath,
      [path.join(ROOT, 'server', 'bin', 'dmalens.js'), 'check', '--format', 'json', '--tree', 'examples', ...targets],
      { cwd: ROOT, encoding: 'utf8' },
    );
    if (r.status !== 0 && r.status !== 1) return `(dmalens check ${targets.join(' ')} failed: ${String(r.stderr).trim().split('\n')[0]})`;
    for (const f of JSON.parse(r.stdout).findings) byFile.set(f.file, (byFile.get(f.file) || 0) + 1);
  }
  const total = [...byFile.values()].reduce((a, b) => a + b, 0);
  const lines = [...byFile].map(([f, n]) => `  ${String(n).padStart(3)}  ${f}`);
  return [`dmalens check: ${total} findings in examples/ (npm run check -- examples/ prints them)`, ...lines].join('\n');
}

/** JSON settings file: our keys over whatever the user left there (invalid JSON is replaced). */
function seedSettings(file, settings) {
  let current = {};
  try {
    current = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    /* none yet, or not plain JSON */
  }
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ ...current, ...settings }, null, 2) + '\n');
}

async function main() {
  if (args.has('--help') || args.has('-h')) {
    out('npm start [-- --check-only]    (DMALENS_PORT=N for a fixed port)');
    return;
  }
  try {
    ensureBuilt();
  } catch (e) {
    fail(e.message);
  }
  if (!fs.existsSync(EXAMPLES)) fail('examples/ is missing: there is nothing to open');
  if (args.has('--check-only')) checkDemo();

  out(summary());
  out('');

  const { ensureCodeServer, startCodeServer, freePort, paths, CODE_SERVER_VERSION } = require('./code-server');
  try {
    ensureCodeServer((m) => out(m));
  } catch (e) {
    err(`dmalens: cannot set up the editor: ${e.message}`);
    err('dmalens: `npm start -- --check-only` shows the command-line demo without it.');
    process.exit(1);
  }

  // The profile: persistent, in the cache folder.
  const profile = path.join(paths().root, 'editor');
  const userDataDir = path.join(profile, 'user-data');
  const extensionsDir = path.join(profile, 'extensions');
  fs.mkdirSync(extensionsDir, { recursive: true });
  const env = { ...process.env };
  for (const [k, d] of [
    ['XDG_CONFIG_HOME', 'xdg-config'],
    ['XDG_DATA_HOME', 'xdg-data'],
    ['XDG_STATE_HOME', 'xdg-state'],
  ]) {
    env[k] = path.join(profile, d);
    fs.mkdirSync(env[k], { recursive: true });
  }
  seedSettings(path.join(userDataDir, 'User', 'settings.json'), {
    'workbench.startupEditor': 'none',
    'workbench.secondarySideBar.defaultVisibility': 'hidden',
    'chat.disableAIFeatures': true,
    'extensions.autoUpdate': false,
    'extensions.autoCheckUpdates': false,
    'telemetry.telemetryLevel': 'off',
    'update.mode': 'none',
    'git.openRepositoryInParentFolders': 'never',
  });

  // The extension: this repository, linked (it runs client/dist and server/dist as built).
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const id = `${pkg.publisher}.${pkg.name}`;
  for (const e of fs.readdirSync(extensionsDir)) {
    if (e.startsWith(id + '-')) fs.rmSync(path.join(extensionsDir, e), { recursive: true, force: true });
  }
  fs.rmSync(path.join(extensionsDir, 'extensions.json'), { force: true });
  fs.symlinkSync(ROOT, path.join(extensionsDir, `${id}-${pkg.version}`), 'dir');

  const port = process.env.DMALENS_PORT ? Number(process.env.DMALENS_PORT) : await freePort();
  if (!Number.isInteger(port) || port <= 0 || port > 65535) fail(`DMALENS_PORT=${process.env.DMALENS_PORT} is not a port number`);
  const logFile = path.join(profile, 'code-server.log');
  fs.writeFileSync(logFile, '');
  let server;
  try {
    server = await startCodeServer({ port, userDataDir, extensionsDir, env, logFile, timeoutMs: 90_000 });
  } catch (e) {
    fail(`${e.message}${/EADDRINUSE/.test(e.message) || /did not answer/.test(e.message) ? `\n(is port ${port} in use? DMALENS_PORT picks another)` : ''}`);
  }

  let stopping = false;
  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    out(`\ndmalens: ${why}: stopping code-server (process group ${server.pgid})`);
    await server.stop();
    process.exit(0);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => void stop(sig));
  // A last resort if this process dies some other way: never leave the group behind.
  process.on('exit', () => {
    try {
      process.kill(-server.pgid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  });
  void server.exited.then((r) => {
    if (stopping) return;
    err(`dmalens: code-server exited (${r.signal || 'exit ' + r.code}); its log: ${logFile}`);
    process.exit(1);
  });

  const file = path.join(EXAMPLES, OPEN_FIRST);
  const payload = encodeURIComponent(JSON.stringify([['openFile', `vscode-remote://127.0.0.1:${port}${file}`]]));
  const url = `${server.url}/?folder=${encodeURI(EXAMPLES)}&payload=${payload}`;
  out(`VS Code (code-server ${CODE_SERVER_VERSION}) with DMA Lens ${pkg.version} is serving examples/ at`);
  out('');
  out(`  ${url}`);
  out('');
  out(`  or ${server.url}/?folder=${encodeURI(EXAMPLES)} (health: ${server.url}/healthz)`);
  out('');
  out('Try: hover a squiggle and follow "Show the model\'s run"; Ctrl+. on `if (!attach)` for the quick fix;');
  out('open patches/*.mbx for the patch review and its CodeLens; "dmalens.rules.disabled" in the settings.');
  out(`Profile and log: ${profile}. Ctrl+C stops everything.`);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
