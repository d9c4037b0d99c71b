#!/usr/bin/env node
'use strict';
/**
 * Builds (minified bundles) and packages the extension:
 *
 *   node scripts/package.js                 -> dmalens-<version>.vsix in the repository root
 *   node scripts/package.js --out FILE      -> FILE (the end-to-end test packages into a folder of its own)
 *
 * Runs `vsce package --no-dependencies` (the bundles carry every dependency),
 * then reads the .vsix's zip directory and checks that it holds only what
 * .vscodeignore lets in: the client and language-server bundles (not the
 * CLI's), the wasm images, the rule docs, the README's screenshots, the
 * grammar, the icon and the manifest files. Prints the size.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
  if (r.error) throw new Error(`${path.basename(cmd)}: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`${args.slice(0, 2).map((a) => path.basename(a)).join(' ')} failed (exit ${r.status})`);
}

/** Entry names of a zip file, from its central directory (no dependencies). */
function zipEntries(file) {
  const buf = fs.readFileSync(file);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${file} is not a zip file`);
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const names = [];
  for (let i = 0; i < count; i++) {
    if (buf.readUInt32LE(p) !== 0x02014b50) throw new Error(`${file}: bad central directory`);
    const nameLen = buf.readUInt16LE(p + 28);
    const extraLen = buf.readUInt16LE(p + 30);
    const commentLen = buf.readUInt16LE(p + 32);
    names.push(buf.toString('utf8', p + 46, p + 46 + nameLen));
    p += 46 + nameLen + extraLen + commentLen;
  }
  return names;
}

const ALLOWED = [
  /^extension\.vsixmanifest$/,
  /^\[Content_Types\]\.xml$/,
  /^extension\/package\.json$/,
  /^extension\/(readme|changelog)\.md$/i,
  /^extension\/LICENSE(\.txt)?$/i,
  /^extension\/images\/icon\.png$/,
  /^extension\/client\/dist\/[^/]+\.js$/,
  /^extension\/server\/dist\/server\.js$/,
  /^extension\/server\/dist\/[^/]+\.wasm$/,
  /^extension\/docs\/rules\/[^/]+\.md$/,
  /^extension\/docs\/images\/[^/]+\.png$/,
  /^extension\/syntaxes\/.+$/,
];
const REQUIRED = [
  'extension/package.json',
  'extension/client/dist/extension.js',
  'extension/client/dist/languageClient.js',
  'extension/server/dist/server.js',
  'extension/server/dist/tree-sitter.wasm',
  'extension/server/dist/tree-sitter-c.wasm',
  'extension/images/icon.png',
];

function main() {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const i = process.argv.indexOf('--out');
  if (i >= 0 && !process.argv[i + 1]) throw new Error('--out needs a file name');
  const out = i >= 0 ? path.resolve(process.argv[i + 1]) : path.join(ROOT, `${pkg.name}-${pkg.version}.vsix`);

  run(process.execPath, [path.join(ROOT, 'scripts', 'build.js'), '--minify']);

  const vsce = require.resolve('@vscode/vsce/vsce', { paths: [ROOT] });
  fs.rmSync(out, { force: true });
  run(process.execPath, [vsce, 'package', '--no-dependencies', '--allow-missing-repository', '--no-rewrite-relative-links', '--out', out]);

  const entries = zipEntries(out);
  const unexpected = entries.filter((e) => !ALLOWED.some((re) => re.test(e)));
  const missing = REQUIRED.filter((r) => !entries.includes(r));
  for (const e of entries) process.stdout.write(`  ${e}\n`);
  if (unexpected.length || missing.length) {
    if (unexpected.length) process.stderr.write(`package: unexpected files in the vsix: ${unexpected.join(', ')}\n`);
    if (missing.length) process.stderr.write(`package: missing from the vsix: ${missing.join(', ')}\n`);
    process.exitCode = 1;
    return;
  }
  const kb = (fs.statSync(out).size / 1024).toFixed(1);
  process.stdout.write(`${path.basename(out)}  ${kb} KB, ${entries.length} files\n`);
}

try {
  main();
} catch (e) {
  process.stderr.write(`package: ${e.message}\n`);
  process.exitCode = 1;
}
