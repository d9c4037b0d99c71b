/**
 * The mutation suite: every rule must find a hazard injected into real kernel
 * code, at the right line. Needs Debian's linux-source-6.12 (downloaded once
 * by scripts/kernel-tree.js into the cache); DMALENS_SKIP_KERNEL=1 skips it.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../src/core/analyzer';
import { LineIndex } from '../src/core/positions';
import { loadWasm } from '../src/node/assets';
import { RULES } from '../src/rules/registry';
import { mutations as dmabuf } from './mutations/dmabuf';
import { mutations as hmm } from './mutations/hmm';
import { mutations as netmem } from './mutations/netmem';
import { mutations as p2pdma } from './mutations/p2pdma';
import { mutations as pgmap } from './mutations/pgmap';
import type { Mutation } from './mutations/types';
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import { reviewPatchText } from '../src/patch/review';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ensureKernelTree } = require('../../../scripts/kernel-tree.js') as { ensureKernelTree(series: string): string };

export const ALL: Mutation[] = [...pgmap, ...hmm, ...p2pdma, ...dmabuf, ...netmem];

/** Applies a mutation: the mutated text and the offset of the line the finding must be on. */
export function applyMutation(text: string, m: Mutation): { text: string; at: number } {
  const first = text.indexOf(m.find);
  if (first < 0) throw new Error(`${m.file}: text to replace not found: ${JSON.stringify(m.find.slice(0, 60))}`);
  if (text.indexOf(m.find, first + 1) >= 0) throw new Error(`${m.file}: text to replace occurs more than once: ${JSON.stringify(m.find.slice(0, 60))}`);
  let rel = 0;
  if (m.at) {
    rel = m.replace.indexOf(m.at);
    if (rel < 0) throw new Error(`${m.file}: 'at' is not inside 'replace'`);
  } else {
    const a = m.find.split('\n');
    const b = m.replace.split('\n');
    let i = 0;
    while (i < a.length && i < b.length && a[i] === b[i]) i++;
    rel = b.slice(0, Math.min(i, b.length - 1)).reduce((n, l) => n + l.length + 1, 0);
  }
  return { text: text.slice(0, first) + m.replace + text.slice(first + m.find.length), at: first + rel };
}

const skip = process.env.DMALENS_SKIP_KERNEL === '1' ? 'DMALENS_SKIP_KERNEL=1' : false;

test('mutation suite on Debian linux-source-6.12', { skip, timeout: 30 * 60 * 1000 }, async (t) => {
  const tree = ensureKernelTree('6.12');
  const analyzer = await Analyzer.create(loadWasm());
  const byRule = new Map<string, { found: number; total: number }>();
  for (const m of ALL) {
    await t.test(`${m.rule}: ${m.what} (${m.file})`, () => {
      const original = fs.readFileSync(path.join(tree, m.file), 'latin1');
      const { text, at } = applyMutation(original, m);
      const [maj, min] = (m.kernel ?? '6.12').split('.').map(Number);
      const findings = analyzer.analyzeText(text, { kernelVersion: { major: maj, minor: min }, path: m.file }).findings;
      const lines = new LineIndex(text);
      const want = lines.lineOf(at);
      const hit = findings.some((f) => f.rule === m.rule && lines.lineOf(f.span.start) === want);
      const s = byRule.get(m.rule) ?? { found: 0, total: 0 };
      s.total++;
      if (hit) s.found++;
      byRule.set(m.rule, s);
      assert.ok(hit, `${m.rule} not found on line ${want + 1}; got: ${findings.filter((f) => f.rule === m.rule).map((f) => lines.lineOf(f.span.start) + 1).join(', ') || 'nothing'}`);
    });
  }
  // The same mutations as patches made with `diff -u`: whole-file mode (the tree at hand) must
  // find each one on the added line; hunk mode (the patch alone) is counted.
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-mut-'));
  let wholeFound = 0;
  let hunkFound = 0;
  for (const m of ALL) {
    await t.test(`as a patch: ${m.rule}: ${m.what}`, () => {
      const original = fs.readFileSync(path.join(tree, m.file), 'latin1');
      const { text } = applyMutation(original, m);
      const a = path.join(tmp, 'a');
      const b = path.join(tmp, 'b');
      fs.writeFileSync(a, original, 'latin1');
      fs.writeFileSync(b, text, 'latin1');
      const d = spawnSync('diff', ['-u', '--label', `a/${m.file}`, '--label', `b/${m.file}`, a, b], { encoding: 'latin1' });
      assert.equal(d.status, 1, 'diff found the change');
      const patch = `diff --git a/${m.file} b/${m.file}\n${d.stdout}`;
      const [maj, min] = (m.kernel ?? '6.12').split('.').map(Number);
      const kernelVersion = { major: maj, minor: min };
      const want = new LineIndex(text).lineOf(applyMutation(original, m).at) + 1;
      const hit = (r: ReturnType<typeof reviewPatchText>) => r.patches.some((p) => p.findings.some((f) => f.rule === m.rule && f.target?.line === want));
      // includeExisting: a rule that reports once per function can pair the new finding with an old one
      // of the same message elsewhere in the function; the line must still be found.
      const whole = reviewPatchText(patch, analyzer, { kernelVersion, includeExisting: true, readTarget: (p) => (p === m.file ? original : undefined) });
      const hunk = reviewPatchText(patch, analyzer, { kernelVersion });
      if (hit(hunk)) hunkFound++;
      assert.ok(hit(whole), `${m.rule} not found on target line ${want} in whole-file mode`);
      wholeFound++;
    });
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  t.diagnostic(`as patches: whole-file mode ${wholeFound}/${ALL.length}, hunk mode alone ${hunkFound}/${ALL.length}`);
  const rows = RULES.map((r) => ({ rule: r.id, mutations: byRule.get(r.id)?.total ?? 0, found: byRule.get(r.id)?.found ?? 0 }));
  const total = rows.reduce((n, r) => n + r.mutations, 0);
  const found = rows.reduce((n, r) => n + r.found, 0);
  t.diagnostic(`mutation score: ${found}/${total}`);
  for (const r of rows) t.diagnostic(`${r.rule.padEnd(26)} ${r.found}/${r.mutations}`);
});
