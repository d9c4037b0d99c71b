#!/usr/bin/env node
'use strict';
/** Copies tree-sitter-c.wasm from the installed npm package into grammars/ and prints its version and sha256. */
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const pkgDir = path.dirname(require.resolve('tree-sitter-c/package.json', { paths: [path.join(root, 'server'), root] }));
const version = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version;
const src = path.join(pkgDir, 'tree-sitter-c.wasm');
const dst = path.join(root, 'grammars', 'tree-sitter-c.wasm');
fs.copyFileSync(src, dst);
const sha = crypto.createHash('sha256').update(fs.readFileSync(dst)).digest('hex');
process.stdout.write(`tree-sitter-c ${version}\nsha256 ${sha}\n`);
