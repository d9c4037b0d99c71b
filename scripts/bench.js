#!/usr/bin/env node
'use strict';
/**
 * npm run bench: the performance targets of DMA Lens, measured on Debian's
 * linux-source-6.12 (downloaded once and cached by scripts/kernel-tree.js),
 * with Coccinelle running one equivalent rule over the same tree in the same
 * run. Prints one table (figure, target, ratio) and writes bench/results.json
 * and BENCHMARKS.md. Asserts nothing: the tests check answers, this measures.
 *
 *   node scripts/bench.js [--runs N] [--no-coccinelle] [--no-package] [--no-write]
 *
 * Measurements (each in a fresh process, so they do not share warm state):
 * - plain read: list the tree's .c/.h files and read every byte, one thread;
 * - `dmalens check --format json TREE`: wall time and peak memory (the
 *   process's maximum resident set, worker threads included), N runs;
 *   once more with one worker, and the outputs compared;
 * - Coccinelle: bench/dmabuf-locking.cocci (DMABUF-LOCKING's basic check)
 *   with spatch over the same tree, N runs (installed with apt-get when
 *   running as root; otherwise the command to run is printed);
 * - the language server over stdio (server/dist/server.js): first
 *   diagnostics after opening a 450 KB amdgpu file (no rule runs on it) and a
 *   448 KB network driver (two rules run on it), 200 one-character edits
 *   spread through it at typing pace (10 a second: didChange to the
 *   publishDiagnostics of that version, debounce included) and back to back,
 *   hovers on findings, and the resident memory with the 50 largest .c files
 *   of the tree open;
 * - a 50-patch series (the synthetic b4 series of scripts/bench-patch.js):
 *   review in process, and `dmalens check series.mbx` as a command;
 * - the extension: loading client/dist/extension.js and running activate()
 *   against a stub of the vscode API (no editor can be started here), and
 *   the size of the .vsix that scripts/package.js builds.
 */
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const argv = process.argv.slice(2);
const RUNS = Number(argv.includes('--runs') ? argv[argv.indexOf('--runs') + 1] : 3);
const COCCI = !argv.includes('--no-coccinelle');
const PACKAGE = !argv.includes('--no-package');
const WRITE = !argv.includes('--no-write');
const COCCI_FILE = path.join(ROOT, 'bench', 'dmabuf-locking.cocci');
const GFX = 'drivers/gpu/drm/amd/amdgpu/gfx_v10_0.c';
const TTM = 'drivers/gpu/drm/amd/amdgpu/amdgpu_ttm.c';
const BNXT = 'drivers/net/ethernet/broadcom/bnxt/bnxt.c';

const log = (m) => process.stderr.write(`bench: ${m}\n`);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};
const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] : NaN;
};
const loads = [];
const sampleLoad = (label) => loads.push({ label, load1: os.loadavg()[0], at: new Date().toISOString() });

// ------------------------------------------------------------------ helpers

/** A preload that records the process's peak resident set (worker threads included) when it exits. */
const RSS_PRELOAD = path.join(os.tmpdir(), `dmalens-bench-rss-${process.pid}.js`);
fs.writeFileSync(
  RSS_PRELOAD,
  "process.on('exit', () => { try { const u = process.resourceUsage(); require('fs').writeFileSync(process.env.BENCH_RSS_FILE, JSON.stringify({ maxRSS: u.maxRSS, cpuMs: (u.userCPUTime + u.systemCPUTime) / 1000 })); } catch {} });\n",
);

/** Runs `node args` to completion: wall ms, exit code, output, peak RSS in MB. */
function nodeRun(args, opts = {}) {
  const rssFile = path.join(os.tmpdir(), `dmalens-bench-rss-${process.pid}-${Date.now()}.txt`);
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['-r', RSS_PRELOAD, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...(opts.env ?? {}), BENCH_RSS_FILE: rssFile },
    maxBuffer: 1 << 30,
    encoding: 'utf8',
    input: opts.input,
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.error) throw r.error;
  let rssMB = NaN;
  let cpuMs = NaN;
  try {
    const u = JSON.parse(fs.readFileSync(rssFile, 'utf8'));
    rssMB = u.maxRSS / 1024;
    cpuMs = u.cpuMs;
    fs.rmSync(rssFile);
  } catch {
    /* no figure */
  }
  return { ms, code: r.status, stdout: r.stdout, stderr: r.stderr, rssMB, cpuMs };
}

function git(args) {
  const r = spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

/** Minimal LSP client over stdio (Content-Length framing). */
class Lsp {
  constructor(args) {
    this.p = spawn(process.execPath, args, { cwd: ROOT, stdio: ['pipe', 'pipe', 'ignore'] });
    this.buf = Buffer.alloc(0);
    this.id = 0;
    this.pending = new Map();
    this.handlers = new Map();
    this.p.stdout.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.drain();
    });
  }
  drain() {
    for (;;) {
      const h = this.buf.indexOf('\r\n\r\n');
      if (h < 0) return;
      const len = Number(/Content-Length: (\d+)/i.exec(this.buf.subarray(0, h).toString())[1]);
      if (this.buf.length < h + 4 + len) return;
      const now = performance.now();
      const msg = JSON.parse(this.buf.subarray(h + 4, h + 4 + len).toString('utf8'));
      this.buf = this.buf.subarray(h + 4 + len);
      if (msg.id !== undefined && msg.method === undefined) {
        const r = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (r) r(msg, now);
      } else if (msg.id !== undefined) {
        this.send({ jsonrpc: '2.0', id: msg.id, result: msg.method === 'workspace/configuration' ? (msg.params.items || []).map(() => null) : null });
      } else {
        const f = this.handlers.get(msg.method);
        if (f) f(msg.params, now);
      }
    }
  }
  send(m) {
    const s = JSON.stringify(m);
    this.p.stdin.write(`Content-Length: ${Buffer.byteLength(s)}\r\n\r\n${s}`);
  }
  request(method, params) {
    const id = ++this.id;
    return new Promise((resolve) => {
      this.pending.set(id, (msg, at) => resolve({ msg, at }));
      this.send({ jsonrpc: '2.0', id, method, params });
    });
  }
  notify(method, params) {
    this.send({ jsonrpc: '2.0', method, params });
  }
  memory() {
    try {
      const s = fs.readFileSync(`/proc/${this.p.pid}/status`, 'utf8');
      return { rssMB: Number(/VmRSS:\s+(\d+)/.exec(s)[1]) / 1024, peakMB: Number(/VmHWM:\s+(\d+)/.exec(s)[1]) / 1024 };
    } catch {
      return { rssMB: NaN, peakMB: NaN };
    }
  }
  async close() {
    await Promise.race([this.request('shutdown'), new Promise((r) => setTimeout(r, 5000))]);
    this.notify('exit');
    await new Promise((r) => {
      this.p.once('exit', r);
      setTimeout(() => {
        this.p.kill();
        r();
      }, 5000);
    });
  }
}

/** Starts the language server and waits for `initialize`; publishDiagnostics resolve per (uri, version). */
async function startServer() {
  const t0 = performance.now();
  const lsp = new Lsp([path.join(ROOT, 'server', 'bin', 'dmalens-language-server.js'), '--stdio']);
  const waiters = new Map();
  const published = new Map();
  lsp.handlers.set('textDocument/publishDiagnostics', (p, at) => {
    published.set(p.uri, p);
    for (const [key, w] of waiters) {
      if (key.startsWith(p.uri + '#') && p.version >= w.version) {
        waiters.delete(key);
        w.resolve({ at, params: p });
      }
    }
  });
  const { at } = await lsp.request('initialize', { processId: process.pid, rootUri: null, capabilities: {}, initializationOptions: {} });
  lsp.notify('initialized', {});
  lsp.diagnostics = (uri, version) =>
    new Promise((resolve) => {
      const p = published.get(uri);
      if (p && p.version >= version) resolve({ at: performance.now(), params: p });
      else waiters.set(`${uri}#${version}#${Math.random()}`, { version, resolve });
    });
  return { lsp, initMs: at - t0 };
}

const uriOf = (file) => 'file://' + file;

// ------------------------------------------------------------------ steps

function machine() {
  const cpus = os.cpus();
  return {
    cores: cpus.length,
    cpu: cpus[0] ? cpus[0].model.trim() : 'unknown',
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
  };
}

function plainRead(tree) {
  // The same files `dmalens check` reads: .c and .h, directories in name order, one thread.
  const script = `
    const fs = require('fs');
    const t0 = process.hrtime.bigint();
    let files = 0, bytes = 0;
    const walk = (d) => {
      let es; try { es = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
      es.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of es) {
        const p = d + '/' + e.name;
        if (e.isDirectory()) walk(p);
        else if ((e.isFile() || e.isSymbolicLink()) && /\\.[ch]$/.test(e.name)) {
          try { bytes += fs.readFileSync(p).length; files++; } catch {}
        }
      }
    };
    walk(${JSON.stringify(tree)});
    process.stdout.write(JSON.stringify({ files, bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));`;
  const runs = [];
  for (let i = 0; i <= RUNS; i++) runs.push(JSON.parse(nodeRun(['-e', script]).stdout));
  const warm = runs.slice(1); // the first run warms the page cache
  return { files: warm[0].files, bytes: warm[0].bytes, ms: median(warm.map((r) => r.ms)), runsMs: warm.map((r) => r.ms) };
}

function checkTree(tree) {
  const bin = path.join(ROOT, 'server', 'bin', 'dmalens.js');
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    log(`dmalens check, run ${i + 1}/${RUNS}`);
    runs.push(nodeRun([bin, 'check', '--format', 'json', tree]));
  }
  const first = runs[0];
  if (first.code !== 0 && first.code !== 1) throw new Error(`dmalens check exited ${first.code}: ${first.stderr.slice(0, 500)}`);
  const out = JSON.parse(first.stdout);
  const counts = { error: 0, warning: 0, info: 0 };
  const byRule = {};
  const byRuleSeverity = {};
  for (const x of out.findings) {
    counts[x.severity]++;
    byRule[x.rule] = (byRule[x.rule] ?? 0) + 1;
    const s = (byRuleSeverity[x.rule] ??= {});
    s[x.severity] = (s[x.severity] ?? 0) + 1;
  }
  log('dmalens check with one worker');
  const one = nodeRun([bin, 'check', '--format', 'json', tree], { env: { DMALENS_WORKERS: '1' } });
  return {
    ms: median(runs.map((r) => r.ms)),
    runsMs: runs.map((r) => r.ms),
    cpuMs: median(runs.map((r) => r.cpuMs)),
    peakMB: Math.max(...runs.map((r) => r.rssMB)),
    exitCode: first.code,
    findings: counts,
    findingsByRule: byRule,
    findingsByRuleSeverity: byRuleSeverity,
    filesWithFindings: new Set(out.findings.map((x) => x.file)).size,
    sameOutputEveryRun: runs.every((r) => r.stdout === first.stdout),
    oneWorker: { ms: one.ms, cpuMs: one.cpuMs, peakMB: one.rssMB, sameOutput: one.stdout === first.stdout },
  };
}

function coccinelle(tree) {
  let spatch = spawnSync('sh', ['-c', 'command -v spatch'], { encoding: 'utf8' }).stdout.trim();
  if (!spatch) {
    if (process.getuid && process.getuid() === 0) {
      log('installing coccinelle (apt-get update; apt-get install -y coccinelle)');
      spawnSync('apt-get', ['update'], { stdio: 'ignore' });
      spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'coccinelle'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
      spatch = spawnSync('sh', ['-c', 'command -v spatch'], { encoding: 'utf8' }).stdout.trim();
    }
    if (!spatch) {
      log('Coccinelle is not installed; run: sudo apt-get install -y coccinelle');
      return { skipped: 'spatch not installed (sudo apt-get install -y coccinelle)' };
    }
  }
  const version = (spawnSync(spatch, ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] || '').trim();
  const args = ['--sp-file', COCCI_FILE, '--dir', tree, '--very-quiet'];
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    log(`coccinelle, run ${i + 1}/${RUNS}`);
    const t0 = process.hrtime.bigint();
    const r = spawnSync(spatch, args, { encoding: 'utf8', maxBuffer: 1 << 28 });
    runs.push({ ms: Number(process.hrtime.bigint() - t0) / 1e6, reports: r.stdout.split('\n').filter((l) => l.includes('dma_buf_map_attachment')).length, code: r.status });
  }
  // As `make coccicheck` runs it: one process per core (information; the target compares with one process).
  const cores = os.cpus().length;
  log(`coccinelle with -j ${cores}`);
  const t0 = process.hrtime.bigint();
  spawnSync(spatch, [...args, '-j', String(cores)], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const parallelMs = Number(process.hrtime.bigint() - t0) / 1e6;
  return { version, command: `spatch ${args.join(' ').replace(tree, 'TREE').replace(ROOT + '/', '')}`, ms: median(runs.map((r) => r.ms)), runsMs: runs.map((r) => r.ms), reports: runs[0].reports, parallel: { jobs: cores, ms: parallelMs } };
}

/** First diagnostics after opening `rel`, then 200 one-character edits through it (at typing pace, then back to back). */
async function editsOn(tree, rel) {
  const out = {};
  {
    const { lsp, initMs } = await startServer();
    out.initializeMs = initMs;
    out.file = rel;
    // A small file first: the server is running and warm when the user opens the big one.
    const warm = path.join(tree, 'drivers/dma-buf/dma-buf.c');
    lsp.notify('textDocument/didOpen', { textDocument: { uri: uriOf(warm), languageId: 'c', version: 1, text: fs.readFileSync(warm, 'latin1') } });
    await lsp.diagnostics(uriOf(warm), 1);
    const file = path.join(tree, rel);
    const text = fs.readFileSync(file, 'latin1');
    const uri = uriOf(file);
    let t0 = performance.now();
    lsp.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'c', version: 1, text } });
    let r = await lsp.diagnostics(uri, 1);
    out.findings = r.params.diagnostics.length;
    out.openBytes = Buffer.byteLength(text);
    out.firstDiagnosticsMs = r.at - t0;
    const lines = text.split('\n').length;
    let version = 1;
    const edits = async (pace) => {
      const lat = [];
      let last = 0;
      for (let k = 0; k < 200; k++) {
        const wait = last + pace - performance.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        const line = Math.floor(((k + 0.5) * lines) / 200);
        version++;
        last = t0 = performance.now();
        lsp.notify('textDocument/didChange', {
          textDocument: { uri, version },
          contentChanges: [{ range: { start: { line, character: 0 }, end: { line, character: 0 } }, text: ' ' }],
        });
        r = await lsp.diagnostics(uri, version);
        lat.push(r.at - t0);
      }
      return { p50: median(lat), p95: pct(lat, 95), max: Math.max(...lat) };
    };
    log(`language server: ${rel}: 200 edits at typing pace`);
    out.edits = await edits(100);
    log(`language server: ${rel}: 200 edits back to back`);
    out.editsBackToBack = await edits(0);
    await lsp.close();
  }
  return out;
}

async function languageServer(tree, hoverFile) {
  // The 450 KB file of the issue (no rule runs on it: nothing the rules need is in it), and a
  // file as large that two rules run on (every edit is parsed and analysed).
  const out = await editsOn(tree, GFX);
  out.ruled = await editsOn(tree, BNXT);
  // Hovers on a file with findings.
  {
    const { lsp } = await startServer();
    const file = path.join(tree, hoverFile);
    const uri = uriOf(file);
    lsp.notify('textDocument/didOpen', { textDocument: { uri, languageId: 'c', version: 1, text: fs.readFileSync(file, 'latin1') } });
    const { params } = await lsp.diagnostics(uri, 1);
    const targets = params.diagnostics.filter((d) => d.code).map((d) => d.range.start);
    const lat = [];
    for (let i = 0; i < 100 && targets.length; i++) {
      const t0 = performance.now();
      const { at } = await lsp.request('textDocument/hover', { textDocument: { uri }, position: targets[i % targets.length] });
      lat.push(at - t0);
    }
    out.hover = { file: hoverFile, findings: targets.length, requests: lat.length, p50: median(lat), p95: pct(lat, 95), max: lat.length ? Math.max(...lat) : NaN };
    await lsp.close();
  }
  // Memory with the 50 largest .c files of the tree open.
  {
    const big = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.isFile() && e.name.endsWith('.c')) {
          const size = fs.statSync(p).size;
          if (size <= 4_000_000) big.push({ p, size });
        }
      }
    };
    walk(tree);
    big.sort((a, b) => b.size - a.size || (a.p < b.p ? -1 : 1));
    const files = big.slice(0, 50);
    const { lsp } = await startServer();
    const idle = lsp.memory();
    log('language server: opening the 50 largest .c files');
    const t0 = performance.now();
    for (const f of files) lsp.notify('textDocument/didOpen', { textDocument: { uri: uriOf(f.p), languageId: 'c', version: 1, text: fs.readFileSync(f.p, 'latin1') } });
    for (const f of files) await lsp.diagnostics(uriOf(f.p), 1);
    const openMs = performance.now() - t0;
    await new Promise((r) => setTimeout(r, 1000));
    const mem = lsp.memory();
    out.memory = { files: files.length, megabytesOfText: files.reduce((n, f) => n + f.size, 0) / 1e6, idleMB: idle.rssMB, rssMB: mem.rssMB, peakMB: mem.peakMB, openAllMs: openMs };
    await lsp.close();
  }
  return out;
}

function patchSeries() {
  const out = path.join(ROOT, 'server', 'out');
  const script = `
    const path = require('path'), fs = require('fs'), os = require('os');
    const OUT = ${JSON.stringify(out)};
    const { Analyzer } = require(path.join(OUT, 'src', 'core', 'analyzer'));
    const { loadWasm } = require(path.join(OUT, 'src', 'node', 'assets'));
    const { reviewPatchText } = require(path.join(OUT, 'src', 'patch', 'review'));
    const { syntheticSeries } = require(path.join(OUT, 'test', 'helpers', 'patchSeries'));
    (async () => {
      const analyzer = await Analyzer.create(loadWasm());
      const series = syntheticSeries(50);
      const time = (f) => { const t = process.hrtime.bigint(); f(); return Number(process.hrtime.bigint() - t) / 1e6; };
      const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
      const modes = {};
      for (const [name, opts] of [['hunk', {}], ['wholeFile', { readTarget: (p) => series.tree.get(p) }]]) {
        const t = [];
        for (let i = 0; i < 6; i++) t.push(time(() => reviewPatchText(series.mbox, analyzer, opts)));
        modes[name] = { firstMs: t[0], medianMs: med(t.slice(1)) };
      }
      const file = path.join(os.tmpdir(), 'dmalens-bench-series-' + process.pid + '.mbx');
      fs.writeFileSync(file, series.mbox);
      process.stdout.write(JSON.stringify({ bytes: Buffer.byteLength(series.mbox), modes, file }));
    })();`;
  const r = nodeRun(['-e', script]);
  if (r.code !== 0) throw new Error(`patch series: ${r.stderr.slice(0, 500)}`);
  const res = JSON.parse(r.stdout);
  const bin = path.join(ROOT, 'server', 'bin', 'dmalens.js');
  const cli = [];
  for (let i = 0; i < RUNS; i++) cli.push(nodeRun([bin, 'check', '--no-tree', res.file]).ms);
  fs.rmSync(res.file, { force: true });
  return { patches: 50, bytes: res.bytes, hunk: res.modes.hunk, wholeFile: res.modes.wholeFile, cliMs: median(cli) };
}

function extension() {
  const ext = path.join(ROOT, 'client', 'dist', 'extension.js');
  const script = `
    const Module = require('module');
    const cp = require('child_process');
    // No language server may start: activation is what is measured.
    cp.fork = cp.spawn = () => { throw new Error('bench: no server'); };
    const stub = (name) => new Proxy(function () {}, {
      get: (t, p) => (p === 'then' || typeof p === 'symbol' ? undefined : p === 'prototype' ? {} : stub(name + '.' + String(p))),
      set: () => true,
      defineProperty: () => true,
      apply: () => stub(name + '()'),
      construct: () => stub('new ' + name),
    });
    // esbuild's ESM interop copies the module's own keys: name every property the bundle reads.
    const names = [...new Set(require('fs').readFileSync(${JSON.stringify(ext)}, 'utf8').match(/(?<=\\.)[A-Za-z_][A-Za-z0-9_]*/g))];
    const vscode = new Proxy({}, {
      get: (t, p) => (p === 'then' || p === '__esModule' || typeof p === 'symbol' ? undefined : stub('vscode.' + String(p))),
      ownKeys: () => names,
      getOwnPropertyDescriptor: (t, p) => ({ configurable: true, enumerable: true, writable: false, value: stub('vscode.' + String(p)) }),
    });
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (req, ...rest) { return req === 'vscode' ? 'vscode' : resolve.call(this, req, ...rest); };
    require.cache.vscode = { id: 'vscode', filename: 'vscode', loaded: true, exports: vscode };
    process.on('unhandledRejection', () => {});
    const path = require('path');
    const ctx = { subscriptions: [], extensionPath: ${JSON.stringify(ROOT)}, asAbsolutePath: (p) => path.join(${JSON.stringify(ROOT)}, p),
      globalState: stub('globalState'), workspaceState: stub('workspaceState'), extensionUri: stub('uri'), environmentVariableCollection: stub('env'),
      storageUri: undefined, globalStorageUri: stub('g'), logUri: stub('l'), extensionMode: 1, secrets: stub('s') };
    const t0 = process.hrtime.bigint();
    const m = require(${JSON.stringify(ext)});
    const t1 = process.hrtime.bigint();
    Promise.resolve(m.activate(ctx)).then(() => {
      const t2 = process.hrtime.bigint();
      process.stdout.write(JSON.stringify({ loadMs: Number(t1 - t0) / 1e6, activateMs: Number(t2 - t1) / 1e6, totalMs: Number(t2 - t0) / 1e6 }));
      process.exit(0);
    }, (e) => { process.stdout.write(JSON.stringify({ error: String(e && e.message || e) })); process.exit(0); });`;
  // Packaging first: it rebuilds the bundles minified, as they ship; activation is measured on those.
  const packaged = {};
  if (PACKAGE) {
    log('packaging the extension (scripts/package.js)');
    const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'package.js')], { cwd: ROOT, encoding: 'utf8' });
    const version = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
    const vsix = path.join(ROOT, `dmalens-${version}.vsix`);
    if (r.status === 0 && fs.existsSync(vsix)) packaged.vsixBytes = fs.statSync(vsix).size;
    else packaged.vsixError = (r.stderr || r.stdout || '').split('\n').filter(Boolean).slice(-3).join(' ');
  }
  const runs = [];
  for (let i = 0; i < Math.max(3, RUNS); i++) runs.push(JSON.parse(nodeRun(['-e', script]).stdout));
  const ok = runs.filter((r) => !r.error);
  const out = ok.length
    ? { loadMs: median(ok.map((r) => r.loadMs)), activateMs: median(ok.map((r) => r.activateMs)), totalMs: median(ok.map((r) => r.totalMs)), bundleBytes: fs.statSync(ext).size }
    : { error: runs[0].error };
  Object.assign(out, packaged, { minified: PACKAGE && packaged.vsixBytes !== undefined });
  return out;
}

// ------------------------------------------------------------------ report

function rows(m) {
  const s = (ms) => ms / 1000;
  const r = [];
  const add = (figure, value, unit, target, ratio, note) => r.push({ figure, value, unit, target, ratio, met: ratio === undefined || Number.isNaN(ratio) ? undefined : ratio <= 1, note });
  add('Plain read of the tree (.c/.h, one thread)', s(m.read.ms), 's', undefined, undefined, `${m.read.files} files, ${(m.read.bytes / 1e9).toFixed(2)} GB`);
  add('dmalens check TREE, every rule', s(m.check.ms), 's', `≤ 3 × plain read = ${(3 * s(m.read.ms)).toFixed(2)} s`, m.check.ms / (3 * m.read.ms), `CPU ${s(m.check.cpuMs).toFixed(1)} s, all threads`);
  if (m.coccinelle && !m.coccinelle.skipped) {
    add('Coccinelle, one rule (bench/dmabuf-locking.cocci)', s(m.coccinelle.ms), 's', undefined, undefined, `${m.coccinelle.reports} reports`);
    add(`Coccinelle, one rule, -j ${m.coccinelle.parallel.jobs}`, s(m.coccinelle.parallel.ms), 's', undefined, undefined, 'as make coccicheck runs it');
    add('dmalens check TREE vs Coccinelle', s(m.check.ms), 's', `< Coccinelle = ${s(m.coccinelle.ms).toFixed(2)} s`, m.check.ms / m.coccinelle.ms);
  }
  add('dmalens check TREE, peak memory', m.check.peakMB, 'MB', '< 500 MB', m.check.peakMB / 500);
  add('dmalens check TREE, one worker thread', s(m.check.oneWorker.ms), 's', undefined, undefined, (m.check.oneWorker.sameOutput ? 'same output' : 'OUTPUT DIFFERS') + `, CPU ${s(m.check.oneWorker.cpuMs).toFixed(1)} s`);
  add(`Edit to diagnostics, p95 (${GFX.split('/').pop()}, 200 edits, 10/s)`, m.lsp.edits.p95, 'ms', '< 50 ms', m.lsp.edits.p95 / 50, `p50 ${m.lsp.edits.p50.toFixed(1)} ms; no rule runs on it`);
  add('Edit to diagnostics, p95, edits back to back', m.lsp.editsBackToBack.p95, 'ms', undefined, undefined, `p50 ${m.lsp.editsBackToBack.p50.toFixed(1)} ms (debounce 40 ms)`);
  add(`First diagnostics after opening (${(m.lsp.openBytes / 1024).toFixed(0)} KB)`, m.lsp.firstDiagnosticsMs, 'ms', '< 200 ms', m.lsp.firstDiagnosticsMs / 200, 'no rule runs on it: not parsed');
  if (m.lsp.ruled) {
    const b = m.lsp.ruled;
    const name = `${b.file.split('/').pop()}, ${(b.openBytes / 1024).toFixed(0)} KB, rules run`;
    add(`Edit to diagnostics, p95 (${name}, 200 edits, 10/s)`, b.edits.p95, 'ms', '< 50 ms', b.edits.p95 / 50, `p50 ${b.edits.p50.toFixed(1)} ms`);
    add(`Edit to diagnostics, p95, edits back to back (${b.file.split('/').pop()})`, b.editsBackToBack.p95, 'ms', undefined, undefined, `p50 ${b.editsBackToBack.p50.toFixed(1)} ms (debounce 40 ms)`);
    add(`First diagnostics after opening (${name})`, b.firstDiagnosticsMs, 'ms', '< 200 ms', b.firstDiagnosticsMs / 200, `${b.findings} findings`);
  }
  add(`Hover, p95 (${m.lsp.hover.requests} on ${m.lsp.hover.findings} findings)`, m.lsp.hover.p95, 'ms', '< 20 ms', m.lsp.hover.p95 / 20);
  add(`Language server, ${m.lsp.memory.files} largest .c files open (${m.lsp.memory.megabytesOfText.toFixed(1)} MB)`, m.lsp.memory.rssMB, 'MB', '< 300 MB', m.lsp.memory.rssMB / 300, `peak ${m.lsp.memory.peakMB.toFixed(0)} MB`);
  add('50-patch series, whole-file review (in process)', m.patch.wholeFile.medianMs / 1000, 's', '< 0.5 s', m.patch.wholeFile.medianMs / 500, `hunk mode ${(m.patch.hunk.medianMs / 1000).toFixed(3)} s`);
  add('50-patch series, `dmalens check series.mbx` (process)', m.patch.cliMs / 1000, 's', undefined, undefined, 'includes starting node and the parser');
  if (!m.extension.error) add('Extension activation (load + activate())', m.extension.totalMs, 'ms', '< 300 ms', m.extension.totalMs / 300, 'vscode API stubbed');
  if (m.extension.vsixBytes) add('.vsix size', m.extension.vsixBytes / 2 ** 20, 'MB', '< 3 MB', m.extension.vsixBytes / 2 ** 20 / 3);
  return r;
}

function fmt(v, unit) {
  if (typeof v !== 'number' || Number.isNaN(v)) return '—';
  const digits = unit === 's' ? (v < 1 ? 3 : 2) : unit === 'MB' ? 1 : v < 10 ? 2 : 1;
  return `${v.toFixed(digits)} ${unit}`;
}

function table(rs) {
  const head = ['Figure', 'Value', 'Target', 'Ratio', 'Met'];
  const body = rs.map((x) => [x.figure + (x.note ? ` (${x.note})` : ''), fmt(x.value, x.unit), x.target ?? '', x.ratio === undefined ? '' : x.ratio.toFixed(2), x.met === undefined ? '' : x.met ? 'yes' : 'NO']);
  return { head, body };
}

function printTable({ head, body }) {
  const w = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  process.stdout.write(line(head) + '\n' + w.map((n) => '-'.repeat(n)).join('  ') + '\n' + body.map(line).join('\n') + '\n');
}

function markdown(t) {
  const esc = (c) => c.replace(/\|/g, '\\|');
  return `| ${t.head.join(' | ')} |\n|${t.head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|\n` + t.body.map((r) => `| ${r.map(esc).join(' | ')} |`).join('\n') + '\n';
}

/** The whole-tree run's findings per rule (issue #5), most first. */
function perRule(res) {
  const infos = new Map();
  try {
    const r = spawnSync(process.execPath, [path.join(ROOT, 'server', 'bin', 'dmalens.js'), 'rules', '--format', 'json'], { encoding: 'utf8' });
    const parsed = JSON.parse(r.stdout);
    for (const x of parsed.rules ?? parsed) infos.set(x.id, x);
  } catch {
    /* ids only */
  }
  const ids = new Set([...infos.keys(), ...Object.keys(res.check.findingsByRule)]);
  const bySeverity = res.check.findingsByRuleSeverity ?? {};
  return [...ids]
    .map((id) => ({ id, severity: infos.get(id)?.severity ?? '', count: res.check.findingsByRule[id] ?? 0, bySeverity: bySeverity[id] ?? {} }))
    .sort((a, b) => b.count - a.count || (a.id < b.id ? -1 : 1));
}

function perRuleTable(rows) {
  const head = ['Rule', 'Severity', 'Findings', 'error / warning / info'];
  const body = rows.map((r) => [r.id, r.severity, String(r.count), r.count ? `${r.bySeverity.error ?? 0} / ${r.bySeverity.warning ?? 0} / ${r.bySeverity.info ?? 0}` : '']);
  return { head, body };
}

function benchmarksMd(res, t) {
  const l = res.load;
  const mc = res.machine;
  return `# Benchmarks

Written by \`npm run bench\` (scripts/bench.js); do not edit by hand. Run it
again to refresh this page and bench/results.json.

- Date: ${res.date}; commit ${res.commit || 'unknown'}${res.dirty ? ' with uncommitted changes' : ''}
- Command: \`${res.command}\`
- Machine: ${mc.cores} cores (${mc.cpu}), ${mc.memoryGB} GB, ${mc.os}, Node ${mc.node}
- Load average (1 min) while it ran: ${l.min.toFixed(2)} to ${l.max.toFixed(2)} (at the start ${l.start.toFixed(2)}, at the end ${l.end.toFixed(2)}; the machine is shared)
- Kernel tree: Debian linux-source ${res.kernel}, ${res.tree.files} .c/.h files, ${(res.tree.bytes / 1e9).toFixed(2)} GB
- Runs: median of ${res.runs} for the tree, the Coccinelle and the command-line figures

${markdown(t)}
Ratio is figure / target (at most 1 meets it). Wall-clock times; "peak memory"
is the process's maximum resident set, worker threads included. Findings on the
tree: ${res.check.findings.error} errors, ${res.check.findings.warning} warnings, ${res.check.findings.info} info in ${res.check.filesWithFindings} files; the same output on every run${res.check.sameOutputEveryRun && res.check.oneWorker.sameOutput ? ' and with one worker' : ' — NOT the same'}.
${res.coccinelle && !res.coccinelle.skipped ? `Coccinelle: ${res.coccinelle.version}, \`${res.coccinelle.command}\`, ${res.coccinelle.reports} reports (DMA Lens's DMABUF-LOCKING: ${res.check.findingsByRule['DMABUF-LOCKING'] ?? 0} findings, which also know wrappers, callback roles and callers).` : `Coccinelle: ${res.coccinelle ? res.coccinelle.skipped : 'not run'}.`}

## The whole-tree run, findings per rule

\`dmalens check --format json TREE\` on ${res.tree.files} files, every rule:
${res.check.findings.error + res.check.findings.warning + res.check.findings.info} findings in ${res.check.filesWithFindings} files, in ${(res.check.ms / 1000).toFixed(2)} s (median of ${res.runs}).

${markdown(perRuleTable(res.perRule))}
How each figure is taken:
- Plain read and \`dmalens check\`: separate processes, page cache warm (a first
  plain read runs before the timed ones). \`check\` reads, prefilters and
  analyses in worker threads (server/src/cli/bulk.ts), which start while the
  directories are still being listed, and prints in file order. It parses a
  function body only when a rule looks into it (server/src/core/skeleton.ts:
  on the 6.12 files a rule runs on, 14.4 of 20.3 MB are left out).
- Editing: the bundled language server over stdio; a small file is opened
  first (the server is warm), then ${GFX} (no rule runs on it:
  the server answers without parsing it) and, in a fresh server, ${BNXT}
  (NETMEM-UNREADABLE-FRAG and NETMEM-DMA-DEV-GRANULE run on it: it is parsed
  without the bodies no rule looks into for its first diagnostics, and in
  full right after they are sent; each edit is parsed incrementally and
  analysed). Each edit inserts one
  character at the start of a line, the 200 lines spread evenly through the file;
  latency is from sending didChange to receiving the publishDiagnostics of that
  version. At typing pace an edit comes 100 ms after the previous one (the
  40 ms debounce acts on its leading edge: it holds an edit only when the
  previous one came less than 40 ms before); back to back, each edit follows
  the previous diagnostics at once, and waits out the debounce when the
  analysis took under 40 ms.
- Memory with files open: VmRSS of the server process 1 s after the last of
  the 50 largest .c files of the tree got its diagnostics (trees are kept for
  the most recently analysed documents only: server/src/lsp/analysers.ts).
- Activation: loading client/dist/extension.js (minified, as packaged) and
  awaiting activate() in plain Node with a stub of the vscode module (every
  API a no-op proxy; starting the language server is refused, so this is the
  extension's own load and activate time, not VS Code's). The language
  client (client/dist/languageClient.js) is loaded after activate() returns,
  when the server starts, and is not in this figure. The e2e test's
  code-server logs are not used: they time the whole window, not activate().
- CPU figures: user + system time of the process, all threads, from
  process.resourceUsage(); on a shared machine they move less than wall time.
`;
}

// ------------------------------------------------------------------ main

(async () => {
  const started = Date.now();
  sampleLoad('start');
  log(`load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')} on ${os.cpus().length} cores`);
  require('./ensure-built').ensureBuilt(log);
  const kt = require('./kernel-tree');
  const tree = kt.ensureKernelTree('6.12', log);
  const kv = kt.kernelVersion(tree);
  const res = {
    date: new Date().toISOString(),
    command: `npm run bench${argv.length ? ' -- ' + argv.join(' ') : ''}`,
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    machine: machine(),
    kernel: `${kv.major}.${kv.minor}.${kv.sublevel}`,
    runs: RUNS,
  };

  log('plain read of the tree');
  res.read = plainRead(tree);
  res.tree = { files: res.read.files, bytes: res.read.bytes };
  sampleLoad('read');
  log('dmalens check over the tree');
  res.check = checkTree(tree);
  sampleLoad('check');
  res.coccinelle = COCCI ? coccinelle(tree) : { skipped: 'not run (--no-coccinelle)' };
  sampleLoad('coccinelle');
  // Hovers: the file with the most findings among those under 200 KB.
  const check = JSON.parse(nodeRun([path.join(ROOT, 'server', 'bin', 'dmalens.js'), 'check', '--format', 'json', path.join(tree, 'drivers', 'gpu', 'drm')]).stdout);
  const perFile = new Map();
  for (const x of check.findings) perFile.set(x.file, (perFile.get(x.file) ?? 0) + 1);
  const withFindings = [...perFile].filter(([f]) => fs.statSync(f).size < 200_000).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const hoverFile = withFindings.length ? path.relative(tree, withFindings[0][0]) : TTM;
  res.lsp = await languageServer(tree, hoverFile);
  sampleLoad('language server');
  log('patch series');
  res.patch = patchSeries();
  sampleLoad('patch');
  log('extension');
  res.extension = extension();
  sampleLoad('end');
  const l1 = loads.map((x) => x.load1);
  res.load = { start: l1[0], end: l1[l1.length - 1], min: Math.min(...l1), max: Math.max(...l1), samples: loads };
  res.seconds = (Date.now() - started) / 1000;

  const rs = rows(res);
  res.table = rs;
  res.perRule = perRule(res);
  const t = table(rs);
  process.stdout.write(`\nDMA Lens benchmark, ${res.date}, load ${res.load.min.toFixed(2)}-${res.load.max.toFixed(2)} on ${res.machine.cores} cores\n\n`);
  printTable(t);
  process.stdout.write(`\nWhole tree (${res.tree.files} files), findings per rule:\n\n`);
  printTable(perRuleTable(res.perRule));
  if (WRITE) {
    fs.mkdirSync(path.join(ROOT, 'bench'), { recursive: true });
    fs.writeFileSync(path.join(ROOT, 'bench', 'results.json'), JSON.stringify(res, null, 2) + '\n');
    fs.writeFileSync(path.join(ROOT, 'BENCHMARKS.md'), benchmarksMd(res, t));
    log('wrote bench/results.json and BENCHMARKS.md');
  }
  fs.rmSync(RSS_PRELOAD, { force: true });
})().catch((e) => {
  fs.rmSync(RSS_PRELOAD, { force: true });
  process.stderr.write(`bench: ${e.stack || e}\n`);
  process.exit(1);
});
