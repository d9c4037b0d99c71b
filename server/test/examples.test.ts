/**
 * The examples/ workspace is what `npm start` shows: its README lists, per
 * file, every finding DMA Lens must report (and good/ must draw none).
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../src/core/analyzer';
import { LineIndex } from '../src/core/positions';
import { loadWasm } from '../src/node/assets';

const ROOT = path.resolve(__dirname, '../../../examples');

function expected(): Map<string, string[]> {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const out = new Map<string, string[]>();
  let file = '';
  for (const line of readme.split('\n')) {
    const h = /^### (drivers\/\S+\.c)\s*$/.exec(line);
    if (h) file = h[1];
    const row = /^\|\s*(\d+)\s*\|\s*([A-Z0-9-]+)\s*\|/.exec(line);
    if (row && file) out.set(file, [...(out.get(file) ?? []), `${row[1]} ${row[2]}`]);
  }
  return out;
}

function cFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? cFiles(p) : e.name.endsWith('.c') ? [p] : [];
  });
}

test('examples draw exactly the findings their README lists', async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const want = expected();
  assert.ok(want.size >= 3, 'the README lists findings for the example files');
  for (const file of cFiles(path.join(ROOT, 'drivers'))) {
    const rel = path.relative(ROOT, file).split(path.sep).join('/');
    const text = fs.readFileSync(file, 'utf8');
    const idx = new LineIndex(text);
    const got = analyzer.analyzeText(text).findings.map((f) => `${idx.lineOf(f.span.start) + 1} ${f.rule}`);
    assert.deepEqual(got.sort(), (want.get(rel) ?? []).sort(), rel);
  }
});
