/** Architecture invariants that code review alone would let slip. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.resolve(__dirname, '../../../src');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const FORBIDDEN = /^(vscode|vscode-languageserver.*|vscode-languageclient.*|vscode-jsonrpc.*|node:.*|fs|path|os|child_process|process|worker_threads|readline|net|http|https)$/;

test('core, rules, model, view, patch and fixes import nothing from the editor, the protocol or the system', () => {
  const dirs = ['core', 'rules', 'model', 'view', 'patch', 'fixes'].map((d) => path.join(SRC, d)).filter((d) => fs.existsSync(d));
  assert.ok(dirs.length >= 2);
  const bad: string[] = [];
  for (const dir of dirs) {
    for (const file of sources(dir)) {
      const text = fs.readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:import|export)[^'"]*from\s*['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)/g)) {
        const mod = m[1] ?? m[2];
        if (FORBIDDEN.test(mod)) bad.push(`${path.relative(SRC, file)} imports ${mod}`);
        if (mod.startsWith('.') && /\/(lsp|cli|node)(\/|$)/.test(path.resolve(path.dirname(file), mod).slice(SRC.length)))
          bad.push(`${path.relative(SRC, file)} imports the face ${mod}`);
      }
      if (/\bprocess\.(env|argv|stdout|stderr|exit)\b|\bconsole\./.test(text)) bad.push(`${path.relative(SRC, file)} touches the process or console`);
    }
  }
  assert.deepEqual(bad, []);
});

test('only core/positions.ts converts offsets to lines and columns', () => {
  const bad: string[] = [];
  for (const file of sources(SRC)) {
    if (file.endsWith(path.join('core', 'positions.ts'))) continue;
    const text = fs.readFileSync(file, 'utf8');
    // Hand-rolled conversions: counting newlines before an offset, or building line tables.
    if (/\.slice\(0,\s*\w+(\.\w+)*\)\.split\(['"]\\n['"]\)\.length/.test(text) || /lastIndexOf\(['"]\\n['"],/.test(text))
      bad.push(path.relative(SRC, file));
  }
  assert.deepEqual(bad, []);
});

test('restricted mode: the extension runs no program and opens no connection; it declares what it limits', () => {
  const CLIENT = path.resolve(SRC, '../../client/src');
  const bad: string[] = [];
  for (const file of sources(CLIENT)) {
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)[^'"]*from\s*['"]([^'"]+)['"]|require\(\s*['"]([^'"]+)['"]\s*\)/g)) {
      const mod = (m[1] ?? m[2]).replace(/^node:/, '');
      if (/^(child_process|net|http|https|http2|dgram|tls|worker_threads|cluster)$/.test(mod)) bad.push(`${path.relative(CLIENT, file)} imports ${mod}`);
    }
    // The server is started from the extension's own files, by IPC: never a command from settings.
    if (/TransportKind\.stdio|command:\s*(config|settings|vscode\.workspace)/.test(text)) bad.push(`${path.relative(CLIENT, file)} may start a configured program`);
  }
  assert.deepEqual(bad, []);
  const manifest = JSON.parse(fs.readFileSync(path.resolve(SRC, '../../package.json'), 'utf8'));
  const untrusted = manifest.capabilities?.untrustedWorkspaces;
  assert.equal(untrusted?.supported, 'limited');
  // dmalens.topology names a file to read: an untrusted workspace must not set it.
  assert.ok(untrusted.restrictedConfigurations.includes('dmalens.topology'));
});
