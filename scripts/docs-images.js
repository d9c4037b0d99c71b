#!/usr/bin/env node
'use strict';
/**
 * Copies the documentation pictures the end-to-end test took
 * (e2e-artifacts/docs/*.png, cropped to the editor area) to docs/images/,
 * where README.md shows them. Run after a green `npm run test:e2e`:
 *
 *   node scripts/docs-images.js
 */
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const FROM = path.join(ROOT, 'e2e-artifacts', 'docs');
const TO = path.join(ROOT, 'docs', 'images');

let files = [];
try {
  files = fs.readdirSync(FROM).filter((f) => f.endsWith('.png')).sort();
} catch {
  /* no run yet */
}
if (files.length === 0) {
  process.stderr.write('docs-images: no pictures under e2e-artifacts/docs; run npm run test:e2e first\n');
  process.exit(1);
}
fs.mkdirSync(TO, { recursive: true });
let total = 0;
for (const f of files) {
  fs.copyFileSync(path.join(FROM, f), path.join(TO, f));
  const n = fs.statSync(path.join(TO, f)).size;
  total += n;
  process.stdout.write(`docs/images/${f.padEnd(28)} ${(n / 1024).toFixed(0).padStart(5)} KB\n`);
}
process.stdout.write(`${files.length} pictures, ${(total / 1024).toFixed(0)} KB\n`);
