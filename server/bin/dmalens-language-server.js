#!/usr/bin/env node
'use strict';
// Starts the DMA Lens language server: the esbuild bundle when built, else the
// tsc output. Transport from argv: --stdio, --node-ipc, --socket=PORT, --pipe=NAME.
// DMALENS_SERVER_BUILD=out forces the tsc output (tests, debugging).
const fs = require('node:fs');
const path = require('node:path');

const candidates = [
  path.join(__dirname, '..', 'dist', 'server.js'),
  path.join(__dirname, '..', 'out', 'src', 'lsp', 'main.js'),
];
if (process.env.DMALENS_SERVER_BUILD === 'out') candidates.shift();
const entry = candidates.find((p) => fs.existsSync(p));
if (!entry) {
  process.stderr.write('dmalens-language-server: the server is not built; run npm run build\n');
  process.exit(1);
}
require(entry).startServer();
