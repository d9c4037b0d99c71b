/**
 * Data-driven rule tests. Every file under test/fixtures/rules/<RULE>/ is
 * analysed; a line ending in a comment `expect: RULE[, RULE...]` must draw
 * exactly those findings on that line, and every other line none at all (from
 * any rule). Files in a `vX.Y/` subfolder are analysed for kernel X.Y.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../src/core/analyzer';
import { LineIndex } from '../src/core/positions';
import { loadWasm } from '../src/node/assets';

const FIXTURES = path.resolve(__dirname, '../../test/fixtures/rules');

function fixtureFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...fixtureFiles(p));
    else if (e.name.endsWith('.c') || e.name.endsWith('.h')) out.push(p);
  }
  return out;
}

function expectations(text: string): Map<number, string[]> {
  const out = new Map<number, string[]>();
  text.split('\n').forEach((line, i) => {
    const m = /expect:\s*([A-Z0-9, -]+?)\s*(?:\*\/|$)/.exec(line);
    if (m) out.set(i + 1, m[1].split(',').map((s) => s.trim()).filter(Boolean).sort());
  });
  return out;
}

const analyzerP = Analyzer.create(loadWasm());

for (const rule of fs.readdirSync(FIXTURES).filter((d) => fs.statSync(path.join(FIXTURES, d)).isDirectory()).sort()) {
  for (const file of fixtureFiles(path.join(FIXTURES, rule))) {
    const rel = path.relative(FIXTURES, file);
    test(`${rel}`, async () => {
      const analyzer = await analyzerP;
      const text = fs.readFileSync(file, 'utf8');
      const v = /(?:^|\/)v(\d+)\.(\d+)\//.exec(rel);
      const result = analyzer.analyzeText(text, v ? { kernelVersion: { major: +v[1], minor: +v[2] } } : {});
      assert.deepEqual(result.notices, [], 'no rule may fail');
      const lines = new LineIndex(text);
      const got = new Map<number, string[]>();
      for (const f of result.findings) {
        const line = lines.lineOf(f.span.start) + 1;
        got.set(line, [...(got.get(line) ?? []), f.rule].sort());
      }
      const want = expectations(text);
      const show = (m: Map<number, string[]>) => [...m].sort((a, b) => a[0] - b[0]).map(([l, r]) => `${l}: ${r.join(',')}`);
      const detail = result.findings.map((f) => `  ${lines.lineOf(f.span.start) + 1}: [${f.rule}] ${f.message}`).join('\n');
      assert.deepEqual(show(got), show(want), `findings differ from the expect markers\n${detail}`);
      if (path.basename(file).startsWith('bad')) assert.ok(want.size > 0, 'a bad fixture must expect at least one finding');
    });
  }
}
