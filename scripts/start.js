#!/usr/bin/env node
'use strict';
/**
 * npm start: the demo. Builds if needed, then runs `dmalens check examples/`
 * and prints its findings in the text format (and a summary line). Findings
 * are the point of the demo, so they do not fail it: exit status 0 unless the
 * command itself failed (usage or I/O error).
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { ensureBuilt } = require('./ensure-built');

const ROOT = path.resolve(__dirname, '..');
const EXAMPLES = 'examples';

try {
  ensureBuilt();
} catch (e) {
  process.stderr.write(`dmalens: ${e.message}\n`);
  process.exit(1);
}
if (!fs.existsSync(path.join(ROOT, EXAMPLES))) {
  process.stderr.write(`dmalens: ${EXAMPLES}/ is missing: there is nothing to demonstrate yet\n`);
  process.exit(1);
}
process.stdout.write(`$ dmalens check ${EXAMPLES}/\n`);
const r = spawnSync(
  process.execPath,
  [path.join(ROOT, 'server', 'bin', 'dmalens.js'), 'check', '--summary', `${EXAMPLES}/`],
  { cwd: ROOT, stdio: 'inherit' },
);
if (r.error) {
  process.stderr.write(`dmalens: ${r.error.message}\n`);
  process.exit(1);
}
// 1 means "error-severity findings": what the examples are there to show.
process.exit(r.status === 1 ? 0 : (r.status ?? 1));
