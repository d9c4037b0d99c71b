/**
 * Property-based and mutation fuzzing of the analysis core (fast-check, a
 * well-kept property-testing library with shrinking and reproducible seeds).
 *
 * Every input must end in findings or notices, never an exception (a rule
 * that throws is a `rule-failed` notice, which counts as a crash here), and
 * within a time budget. Inputs: realistic seeds (every rule fixture and the
 * examples) mutated, random text and bytes, seeds whose function bodies are
 * repeated many times (what finds algorithms quadratic in a function's size),
 * edit sequences reparsed incrementally (compared with a fresh parse), and
 * hostile shapes. Each input is also analysed with the lazy parse of the
 * command line (core/skeleton.ts), which must find the same when the full
 * parse has no ERROR node. The default run is seeded with a fixed count (part of npm
 * test); `npm run fuzz` runs longer: DMALENS_FUZZ_RUNS=N, DMALENS_FUZZ_SEED=S.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { Analyzer } from '../../src/core/analyzer';
import { MAX_FUNCTION_CHARS } from '../../src/core/facts';
import { MAX_TEXT_CHARS } from '../../src/core/parser';
import { LineIndex } from '../../src/core/positions';
import { decodeBytes } from '../../src/core/text';
import type { AnalysisResult } from '../../src/core/types';
import { loadWasm } from '../../src/node/assets';
import { ruleById, runRules } from '../../src/rules/registry';
import type { Rule } from '../../src/rules/api';
import { BUDGET_MS, fuzzRuns, FUZZ_SEED, LONG, measure, Slowest } from './common';

const RUNS = fuzzRuns(1000);
const SEED = FUZZ_SEED;
let tried = 0;

const FIXTURES = path.resolve(__dirname, '../../../test/fixtures/rules');
function seeds(): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.c')) out.push(fs.readFileSync(p, 'utf8'));
    }
  };
  walk(FIXTURES);
  const examples = path.resolve(__dirname, '../../../../examples/drivers');
  if (fs.existsSync(examples)) walk(examples);
  return out;
}

const SEEDS = seeds();
const analyzerP = Analyzer.create(loadWasm());
const slowest = new Slowest();

async function check(text: string, what: string): Promise<AnalysisResult> {
  const analyzer = await analyzerP;
  tried++;
  const { value: r, ms, cpuMs } = measure(() => analyzer.analyzeText(text));
  slowest.note(ms, what, cpuMs);
  assert.ok(cpuMs < BUDGET_MS, `${what}: ${cpuMs} ms of CPU (${ms} ms)`);
  assert.ok(Array.isArray(r.findings) && Array.isArray(r.notices));
  assert.deepEqual(r.notices.filter((n) => n.kind === 'rule-failed'), [], 'a rule threw');
  const idx = new LineIndex(text);
  for (const f of r.findings) {
    assert.ok(f.span.start >= 0 && f.span.end <= text.length && f.span.start <= f.span.end, 'span inside the text');
    const p = idx.byteLineColumn(f.span.start);
    assert.ok(p.line >= 1 && p.column >= 1);
  }
  // The lazy parse of the command line (bodies parsed when a rule looks into them) finds the same.
  const lazy = measure(() => analyzer.analyzeText(text, {}, { lazy: true }));
  assert.ok(lazy.cpuMs < BUDGET_MS, `${what}, lazily: ${lazy.cpuMs} ms of CPU (${lazy.ms} ms)`);
  // Exactly, as long as the full parse needed no error recovery (core/skeleton.ts).
  if (r.errorNodes === 0 && !r.notices.some((n) => n.kind === 'parse-timeout'))
    assert.deepEqual([lazy.value.findings, lazy.value.notices], [r.findings, r.notices], `${what}: the lazy parse differs`);
  return r;
}

/** Mutations of a realistic seed: byte flips, deletions, duplications, truncation, line shuffles. */
const mutated = fc
  .record({
    seed: fc.integer({ min: 0, max: Math.max(0, SEEDS.length - 1) }),
    ops: fc.array(
      fc.oneof(
        fc.record({ k: fc.constant('flip' as const), at: fc.nat(), ch: fc.integer({ min: 0, max: 0xffff }) }),
        fc.record({ k: fc.constant('del' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 200 }) }),
        fc.record({ k: fc.constant('dup' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 400 }) }),
        fc.record({ k: fc.constant('cut' as const), at: fc.nat() }),
        fc.record({ k: fc.constant('swap' as const), a: fc.nat(), b: fc.nat() }),
        fc.record({ k: fc.constant('ins' as const), at: fc.nat(), s: fc.constantFrom('{', '}', '(', ')', ';', '"', "'", '/*', '*/', '#if 0\n', '#endif\n', 'goto out;', 'out:', '\\\n', '\r\n', '\0', '\uFEFF', '\u202E', 'for_each_sg(', '__user', 'struct ') }),
      ),
      { maxLength: 12 },
    ),
  })
  .map(({ seed, ops }) => {
    let t = SEEDS[seed] ?? '';
    for (const o of ops) {
      if (!t.length) break;
      switch (o.k) {
        case 'flip': {
          const i = o.at % t.length;
          t = t.slice(0, i) + String.fromCharCode(o.ch) + t.slice(i + 1);
          break;
        }
        case 'del': {
          const i = o.at % t.length;
          t = t.slice(0, i) + t.slice(i + o.n);
          break;
        }
        case 'dup': {
          const i = o.at % t.length;
          t = t.slice(0, i) + t.slice(i, i + o.n) + t.slice(i);
          break;
        }
        case 'cut':
          t = t.slice(0, o.at % t.length);
          break;
        case 'swap': {
          const lines = t.split('\n');
          const a = o.a % lines.length;
          const b = o.b % lines.length;
          [lines[a], lines[b]] = [lines[b], lines[a]];
          t = lines.join('\n');
          break;
        }
        case 'ins': {
          const i = o.at % (t.length + 1);
          t = t.slice(0, i) + o.s + t.slice(i);
          break;
        }
      }
    }
    return t;
  });

test('fuzz: mutated realistic driver code', async () => {
  assert.ok(SEEDS.length > 20, 'seeds from the rule fixtures');
  await fc.assert(fc.asyncProperty(mutated, async (t) => {
    await check(t, 'mutated seed');
  }), { numRuns: RUNS, seed: SEED });
});

test('fuzz: random text and bytes', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string({ maxLength: 2000 }),
        fc.string({ unit: 'binary', maxLength: 2000 }),
        fc.uint8Array({ maxLength: 4000 }).map((b) => {
          const d = decodeBytes(b);
          return 'binary' in d ? '' : d.text;
        }),
        fc.array(fc.constantFrom('dma_buf_pin(a);', 'dma_resv_lock(r, NULL);', '{', '}', 'if (x)', 'else', 'goto e;', 'e:', 'return 0;', 'for_each_sgtable_sg(s, g, i)', 'x = dma_buf_map_attachment(a, d);', 'sg_page(g);', '\n'), { maxLength: 300 }).map((a) => `void f(void) {${a.join(' ')}}`),
      ),
      async (t) => {
        await check(t, 'random');
      },
    ),
    { numRuns: RUNS, seed: SEED },
  );
});

/**
 * A seed with the body of every function repeated `k` times: functions of
 * thousands of statements, calls and CFG nodes, shaped like real code. This is
 * what shows a rule that is quadratic in a function's size (a search of the
 * CFG per call, a scan of every assignment per use).
 */
function scaled(text: string, k: number): string {
  return text.replace(/^([^\s#/].*\)\s*\n\{\n)([\s\S]*?)(^\}\n?)/gm, (_m, head: string, body: string, end: string) => head + body.repeat(k) + end);
}

test('fuzz: seeds with every function body repeated up to 60 times (200 under npm run fuzz)', async () => {
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.integer({ min: 2, max: LONG ? 200 : 60 }), async (i, k) => {
      const text = scaled(SEEDS[i % SEEDS.length], k);
      await check(text, `seed ${i % SEEDS.length} with bodies x${k} (${text.length} characters)`);
    }),
    { numRuns: fuzzRuns(40, 0.02), seed: SEED },
  );
});

/** An edit of a text: a range replaced by a piece of another seed or a hostile token. */
const edit = fc.record({ at: fc.nat(), len: fc.nat({ max: 300 }), ins: fc.oneof(fc.constantFrom('', '{', '}', '(', ')', ';', '\n', 'goto out;\n', 'out:\n', 'dma_buf_pin(a);\n', 'dma_resv_lock(r, NULL);\n', 'dma_resv_unlock(r);\n', '/*', '*/', '#if 0\n', '#endif\n', '"', '\0', '\r\n'), fc.tuple(fc.nat(), fc.nat(), fc.nat({ max: 400 })).map(([s, a, n]) => { const t = SEEDS[s % SEEDS.length]; const f = a % Math.max(1, t.length); return t.slice(f, f + n); })) });

test('fuzz: edit sequences parsed incrementally give the findings of a fresh parse', async () => {
  const analyzer = await analyzerP;
  const brief = (r: AnalysisResult) => r.findings.map((f) => `${f.rule} ${f.span.start}-${f.span.end} ${f.message}`).join('\n');
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 8 }), async (i, edits) => {
      let text = SEEDS[i % SEEDS.length];
      let doc = analyzer.parse(text);
      try {
        analyzer.analyze(doc);
        for (const e of edits) {
          const at = e.at % (text.length + 1);
          text = text.slice(0, at) + e.ins + text.slice(at + e.len);
          tried++;
          const t0 = Date.now();
          doc = analyzer.parse(text, doc);
          const incremental = analyzer.analyze(doc);
          slowest.note(Date.now() - t0, 'incremental edit');
          const fresh = analyzer.parse(text);
          try {
            assert.equal(brief(incremental), brief(analyzer.analyze(fresh)), 'incremental and fresh analyses differ');
          } finally {
            fresh.delete();
          }
        }
      } finally {
        doc.delete();
      }
    }),
    { numRuns: fuzzRuns(80, 0.05), seed: SEED },
  );
});

test('hostile shapes: deep nesting, long lines, huge functions, empty, NUL', async () => {
  const cases: Array<[string, string, RegExp | undefined]> = [
    ['100,000 nested braces', 'void f(void) {' + '{'.repeat(100000) + 'dma_buf_pin(a);' + '}'.repeat(100000) + '}', /nesting deeper/],
    ['100,000 nested parentheses', 'void f(void) { x = ' + '('.repeat(100000) + 'dma_buf_pin(a)' + ')'.repeat(100000) + '; }', /nesting deeper/],
    ['100,000 unclosed braces', 'void f(void) {' + '{'.repeat(100000) + 'dma_buf_pin(a);', undefined],
    ['50,000 nested ifs', 'void f(void) {' + 'if (a) '.repeat(50000) + 'dma_buf_pin(a); }', undefined],
    ['a 2 MB single line', 'void f(void) { dma_buf_pin(a); ' + 'x = 1; '.repeat(300000) + '}', /character limit for one function|time budget/],
    ['a 20 MB single line', 'void f(void) { dma_buf_pin(a); ' + 'x = 1; '.repeat(3000000) + '}', /character limit of the analysis/],
    ['a function of 12,000 hmm_range_fault() calls', 'void f(void) {' + 'hmm_range_fault(&r);'.repeat(12000) + '}', undefined],
    ['a function of 8,000 lock/map/unlock triples', 'void f(struct dma_buf_attachment *a) {' + 'dma_resv_lock(a->dmabuf->resv, NULL); s = dma_buf_map_attachment(a, 0); dma_resv_unlock(a->dmabuf->resv);\n'.repeat(8000) + '}', undefined],
    ['4,000 gotos to 4,000 labels', 'int f(struct dma_buf *b) {' + Array.from({ length: 4000 }, (_, i) => `if (dma_buf_pin(a)) goto l${i};\n`).join('') + Array.from({ length: 4000 }, (_, i) => `l${i}: dma_buf_unpin(a);\n`).join('') + 'return 0; }', undefined],
    ['empty', '', undefined],
    ['NUL bytes', 'void f(void) { dma_buf_pin(a); }\0\0\0dma_resv_lock(x)', undefined],
    ['lone surrogates and bidi controls', '\ud800void f(void) { dma_buf_pin(a); \u202e}\udfff', undefined],
    ['only a macro', 'dma_buf_map_attachment', undefined],
    ['a 256 KB string literal', 'void f(void) { dma_buf_pin(a); p = "' + 'x'.repeat(262144) + '"; }', undefined],
  ];
  for (const [what, text, notice] of cases) {
    const r = await check(text, what);
    if (notice) assert.ok(r.notices.some((n) => notice.test(n.message)), `${what}: expected a notice matching ${notice}, got ${JSON.stringify(r.notices.map((n) => n.message))}`);
  }
  assert.ok(MAX_TEXT_CHARS < 20_000_000 && MAX_FUNCTION_CHARS < 2_000_000);
});

test('a rule that throws becomes a notice with its id and place; the other rules still report', async () => {
  const analyzer = await analyzerP;
  const text = ['#include <linux/dma-buf.h>', '', 'void f(struct dma_buf_attachment *a)', '{', '\tstruct sg_table *s = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL);', '}', ''].join('\n');
  const locking = ruleById('DMABUF-LOCKING')!;
  const broken: Rule = {
    ...locking,
    id: 'TEST-THROWS',
    check(ctx) {
      ctx.ff.fn('f');
      ctx.report({ message: 'before the throw', at: { start: 0, end: 1 } });
      throw new TypeError('boom');
    },
  };
  const doc = analyzer.parse(text);
  try {
    const r = runRules(doc, {}, [broken, locking]);
    const failed = r.notices.filter((n) => n.kind === 'rule-failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].rule, 'TEST-THROWS');
    assert.match(failed[0].message, /^rule TEST-THROWS failed in f\(\) at line 3: boom$/);
    assert.deepEqual(failed[0].span, { start: text.indexOf('f(struct'), end: text.indexOf('f(struct') + 1 });
    assert.ok(r.findings.some((f) => f.rule === 'DMABUF-LOCKING'), 'the other rule still reports');
  } finally {
    doc.delete();
  }
});

test('fuzz report: core', () => {
  console.log(`fuzz core: ${RUNS} runs per random property, seed ${SEED}, ${tried} inputs; slowest ${slowest}`);
});
