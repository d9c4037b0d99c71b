#!/usr/bin/env node
'use strict';
/**
 * npm run test:vscode: the VS Code API suite (client/test/suite/*.ts,
 * compiled to client/out/test/suite by tsc -b) in a real VS Code.
 *
 *   npm run test:vscode                     VS Code desktop through @vscode/test-electron
 *                                           (downloads VS Code once into .vscode-test/; needs a
 *                                           display: run under xvfb-run on a headless Linux)
 *   npm run test:vscode -- --code-server    the same suite inside code-server 4.139.1 (VS Code 1.139,
 *                                           from the cache; no download), opened by headless chromium
 *
 * Not part of `npm test` (which runs the DOM-level end-to-end test in
 * code-server instead, server/test/e2e.vscode.test.ts): @vscode/test-electron
 * cannot download VS Code on the CI machines.
 *
 * The workspace is a temporary copy of examples/ (with the patch fixture as
 * review/acme-v2.mbx and the hostile-input patch as review/hostile.mbx); the
 * suite finds it and the repository through DMALENS_TEST_WS and
 * DMALENS_TEST_REPO.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { ensureBuilt } = require('./ensure-built');

const ROOT = path.resolve(__dirname, '..');
const SUITE = path.join(ROOT, 'client', 'out', 'test', 'suite', 'index.js');
const args = process.argv.slice(2);

function workspace(tmp) {
  const ws = path.join(tmp, 'workspace');
  fs.cpSync(path.join(ROOT, 'examples'), ws, { recursive: true });
  fs.mkdirSync(path.join(ws, 'review'), { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'server', 'test', 'fixtures', 'patch', 'acme-v2.mbx'), path.join(ws, 'review', 'acme-v2.mbx'));
  fs.copyFileSync(path.join(ROOT, 'server', 'test', 'fixtures', 'hostile', 'hostile.mbx'), path.join(ws, 'review', 'hostile.mbx'));
  return ws;
}

async function desktop(tmp, ws) {
  const { runTests } = require('@vscode/test-electron');
  const version = args.includes('--vscode-version') ? args[args.indexOf('--vscode-version') + 1] : undefined;
  await runTests({
    ...(version ? { version } : {}),
    extensionDevelopmentPath: ROOT,
    extensionTestsPath: SUITE,
    extensionTestsEnv: { DMALENS_TEST_REPO: ROOT, DMALENS_TEST_WS: ws },
    launchArgs: [
      ws,
      '--disable-extensions',
      '--disable-workspace-trust',
      '--skip-welcome',
      '--skip-release-notes',
      '--user-data-dir',
      path.join(tmp, 'user-data'),
    ],
  });
}

/**
 * code-server: the repository linked in as the extension, plus a harness
 * extension that runs the suite when the workbench starts and writes the
 * results to a file. The extension host starts when a browser opens the
 * workbench, so headless chromium opens it.
 */
async function inCodeServer(tmp, ws) {
  const { ensureSystemPackages, CHROMIUM } = require('./system');
  const cs = require('./code-server');
  ensureSystemPackages(['browser']);
  cs.ensureCodeServer(); // with the build packages, when it has to install code-server
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const userDataDir = path.join(tmp, 'user-data');
  const extensionsDir = path.join(tmp, 'extensions');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.writeFileSync(
    path.join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({ 'workbench.startupEditor': 'none', 'chat.disableAIFeatures': true, 'extensions.autoUpdate': false, 'git.enabled': false }),
  );
  fs.symlinkSync(ROOT, path.join(extensionsDir, `${pkg.publisher}.${pkg.name}-${pkg.version}`), 'dir');

  const harness = path.join(extensionsDir, 'dmalens.dmalens-test-harness-0.0.1');
  const results = path.join(tmp, 'results.json');
  fs.mkdirSync(harness);
  fs.writeFileSync(
    path.join(harness, 'package.json'),
    JSON.stringify({
      name: 'dmalens-test-harness',
      publisher: 'dmalens',
      version: '0.0.1',
      engines: { vscode: '^1.91.0' },
      activationEvents: ['onStartupFinished'],
      main: './extension.js',
      extensionDependencies: [`${pkg.publisher}.${pkg.name}`],
    }),
  );
  fs.writeFileSync(
    path.join(harness, 'config.json'),
    JSON.stringify({ suite: SUITE, out: results, env: { DMALENS_TEST_REPO: ROOT, DMALENS_TEST_WS: ws } }),
  );
  fs.writeFileSync(
    path.join(harness, 'extension.js'),
    `'use strict';
const fs = require('fs');
const path = require('path');
exports.activate = async () => {
  const cfg = JSON.parse(fs.readFileSync(path.join(__dirname, 'config.json'), 'utf8'));
  Object.assign(process.env, cfg.env);
  const lines = [];
  let results;
  try {
    results = await require(cfg.suite).runTests((m) => lines.push(m));
  } catch (e) {
    results = [{ name: 'harness', ok: false, ms: 0, error: String(e && e.stack || e) }];
  }
  fs.writeFileSync(cfg.out, JSON.stringify({ results, lines }));
};
`,
  );

  const env = { ...process.env, XDG_CONFIG_HOME: path.join(tmp, 'xdg-config'), XDG_DATA_HOME: path.join(tmp, 'xdg-data') };
  const port = await cs.freePort();
  const server = await cs.startCodeServer({ port, userDataDir, extensionsDir, env, logFile: path.join(tmp, 'code-server.log') });
  const { chromium } = require('playwright-core');
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${server.url}/?folder=${encodeURI(ws)}`);
    const t0 = Date.now();
    while (!fs.existsSync(results)) {
      if (Date.now() - t0 > 600_000) throw new Error('the suite did not finish within 10 minutes');
      await new Promise((r) => setTimeout(r, 500));
    }
    const r = JSON.parse(fs.readFileSync(results, 'utf8'));
    for (const l of r.lines) process.stdout.write(l + '\n');
    const failed = r.results.filter((x) => !x.ok);
    process.stdout.write(`${r.results.length - failed.length} passed, ${failed.length} failed (in code-server ${cs.CODE_SERVER_VERSION})\n`);
    if (failed.length) throw new Error(`${failed.length} test(s) failed`);
  } finally {
    await browser.close().catch(() => undefined);
    await server.stop();
  }
}

async function main() {
  ensureBuilt();
  if (!fs.existsSync(SUITE)) throw new Error(`${path.relative(ROOT, SUITE)} is missing; run npm run build`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-vscode-'));
  try {
    const ws = workspace(tmp);
    if (args.includes('--code-server')) await inCodeServer(tmp, ws);
    else await desktop(tmp, ws);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`test:vscode: ${e && e.message ? e.message : e}\n`);
  process.exitCode = 1;
});
