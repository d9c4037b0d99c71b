#!/usr/bin/env node
'use strict';
/**
 * Builds everything the extension and the tests need:
 *
 *   client/dist/extension.js   the VS Code client (esbuild; vscode external)
 *   client/dist/languageClient.js  vscode-languageclient, which the client loads after activation
 *   server/dist/server.js      the language server (esbuild)
 *   server/dist/cli.js         the command line (esbuild; skipped until server/src/cli/main.ts exists)
 *   server/dist/*.wasm         web-tree-sitter's runtime and the C grammar
 *   server/out, client/out     tsc -b server client (type-check; tests run from server/out)
 *
 *   node scripts/build.js [--watch] [--no-typecheck] [--minify]
 *
 * esbuild and tsc run in parallel; tsc -b is incremental. One line per
 * artifact with its size. Exit status 1 when a bundle or the type-check fails.
 * On success a stamp (server/dist/.build-stamp) tells scripts/ensure-built.js
 * the build is complete.
 */
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const args = new Set(process.argv.slice(2));
const WATCH = args.has('--watch');
const TYPECHECK = !args.has('--no-typecheck');
const MINIFY = args.has('--minify');
const STAMP = path.join(ROOT, 'server', 'dist', '.build-stamp');

function rel(p) {
  return path.relative(ROOT, p).split(path.sep).join('/');
}

function size(n) {
  if (n >= 1024 * 1024) return (n / (1024 * 1024)).toFixed(2) + ' MB';
  if (n >= 1024) return (n / 1024).toFixed(1) + ' KB';
  return n + ' B';
}

function report(file) {
  process.stdout.write(`${rel(file).padEnd(34)} ${size(fs.statSync(file).size).padStart(10)}\n`);
}

function version() {
  return JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version;
}

/**
 * web-tree-sitter's package exports an ES module for `import`, which reads
 * import.meta.url and so breaks in a CommonJS bundle; use its CommonJS build.
 * It references fs/path only to find tree-sitter.wasm, which we hand in as bytes.
 */
const treeSitterCjs = {
  name: 'web-tree-sitter-cjs',
  setup(build) {
    build.onResolve({ filter: /^web-tree-sitter$/ }, () => ({
      path: require.resolve('web-tree-sitter', { paths: [path.join(ROOT, 'server')] }),
    }));
  },
};

function entryPoints() {
  const entries = [
    { in: 'client/src/extension.ts', out: 'client/dist/extension.js' },
    // vscode-languageclient, loaded by the extension after activation (client/src/extension.ts languageClient()).
    { in: 'client/src/languageClient.ts', out: 'client/dist/languageClient.js' },
    { in: 'server/src/lsp/main.ts', out: 'server/dist/server.js' },
    { in: 'server/src/cli/main.ts', out: 'server/dist/cli.js', optional: true },
  ];
  return entries.filter((e) => {
    if (fs.existsSync(path.join(ROOT, e.in))) return true;
    if (!e.optional) throw new Error(`${e.in} is missing`);
    process.stdout.write(`${e.out.padEnd(34)} ${'skipped'.padStart(10)}  (${e.in} does not exist yet)\n`);
    return false;
  });
}

function esbuildOptions(e) {
  return {
    absWorkingDir: ROOT,
    entryPoints: [path.join(ROOT, e.in)],
    outfile: path.join(ROOT, e.out),
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // Prefer packages' ESM builds: jsonc-parser's UMD build hides its requires from the bundler.
    mainFields: ['module', 'main'],
    // './languageClient': the extension requires its sibling bundle at run time.
    external: ['vscode', './languageClient'],
    sourcemap: 'linked',
    sourcesContent: false,
    minify: MINIFY,
    keepNames: true,
    logLevel: 'warning',
    plugins: [treeSitterCjs],
    define: { __DMALENS_VERSION__: JSON.stringify(version()) },
  };
}

function copyWasm() {
  const dist = path.join(ROOT, 'server', 'dist');
  fs.mkdirSync(dist, { recursive: true });
  const runtime = require.resolve('web-tree-sitter/tree-sitter.wasm', { paths: [path.join(ROOT, 'server')] });
  const copies = [
    [path.join(ROOT, 'grammars', 'tree-sitter-c.wasm'), path.join(dist, 'tree-sitter-c.wasm')],
    [runtime, path.join(dist, 'tree-sitter.wasm')],
  ];
  for (const [from, to] of copies) {
    if (!fs.existsSync(from)) throw new Error(`${rel(from)} is missing`);
    const a = fs.statSync(from);
    const b = fs.existsSync(to) ? fs.statSync(to) : undefined;
    // Copy only when changed, so the bundle folder stays stable for watchers.
    if (!b || b.size !== a.size || b.mtimeMs < a.mtimeMs) fs.copyFileSync(from, to);
  }
  return copies.map(([, to]) => to);
}

function typecheck(watch) {
  const tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] });
  const argv = [tsc, '-b', 'server', 'client'];
  if (watch) argv.push('--watch', '--preserveWatchOutput');
  return new Promise((resolve) => {
    const p = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (d) => {
      if (watch) process.stdout.write(d);
      else out += d;
    };
    p.stdout.on('data', onData);
    p.stderr.on('data', onData);
    p.on('error', (e) => resolve({ ok: false, out: String(e) }));
    p.on('close', (code) => resolve({ ok: code === 0, out }));
  });
}

async function main() {
  const started = Date.now();
  const esbuild = require('esbuild');
  const entries = entryPoints();
  fs.rmSync(STAMP, { force: true });

  if (WATCH) {
    for (const e of entries) {
      const ctx = await esbuild.context({
        ...esbuildOptions(e),
        plugins: [
          treeSitterCjs,
          {
            name: 'report',
            setup(b) {
              b.onEnd((r) => {
                if (r.errors.length === 0) report(path.join(ROOT, e.out));
              });
            },
          },
        ],
      });
      await ctx.watch();
    }
    copyWasm().forEach(report);
    if (TYPECHECK) void typecheck(true);
    process.stdout.write('watching for changes (Ctrl+C to stop)\n');
    return;
  }

  const tsc = TYPECHECK ? typecheck(false) : Promise.resolve({ ok: true, out: '' });
  let ok = true;
  const results = await Promise.allSettled(entries.map((e) => esbuild.build(esbuildOptions(e))));
  results.forEach((r, i) => {
    const out = path.join(ROOT, entries[i].out);
    if (r.status === 'fulfilled') report(out);
    else {
      ok = false;
      process.stdout.write(`${entries[i].out.padEnd(34)} ${'FAILED'.padStart(10)}\n`);
    }
  });
  try {
    copyWasm().forEach(report);
  } catch (e) {
    ok = false;
    process.stderr.write(`build: ${e.message}\n`);
  }
  const t = await tsc;
  if (TYPECHECK) {
    process.stdout.write(`${'tsc -b server client'.padEnd(34)} ${(t.ok ? 'ok' : 'FAILED').padStart(10)}\n`);
    if (!t.ok) process.stderr.write(t.out);
  }
  ok = ok && t.ok;
  if (ok) {
    // Dated at the start, so sources edited while building count as newer.
    fs.writeFileSync(STAMP, new Date(started).toISOString() + '\n');
    fs.utimesSync(STAMP, new Date(started), new Date(started));
  }
  process.stdout.write(`build ${ok ? 'done' : 'failed'} in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
  process.exitCode = ok ? 0 : 1;
}

main().catch((e) => {
  process.stderr.write(`build: ${e && e.message ? e.message : e}\n`);
  process.exitCode = 1;
});
