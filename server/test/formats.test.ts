/**
 * The CLI's output formats, on hand-made findings (no rules needed): columns
 * in UTF-8 bytes for text and JSON, UTF-16 for SARIF, exact public field names.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { LineIndex } from '../src/core/positions';
import type { Finding, RuleInfo } from '../src/core/types';
import {
  formatJson,
  formatRulesJson,
  formatRulesText,
  formatSarif,
  formatText,
  locateFindings,
  sarifLevel,
  sarifUri,
  type FileProblem,
} from '../src/cli/formats';

// Line 2 has, before the call: a tab, "é" (2 bytes, 1 UTF-16 unit), "€" (3 bytes,
// 1 unit) and "🙂" (4 bytes, 2 units).
const TEXT = [
  'static int f(struct dma_buf_attachment *att)',
  '{\t/* é€🙂 */ sgt = dma_buf_map_attachment(att, DMA_TO_DEVICE);',
  '\tdma_resv_lock(buf->resv, NULL);',
  '}',
  '',
].join('\n');

const CALL = 'dma_buf_map_attachment(att, DMA_TO_DEVICE)';
const callStart = TEXT.indexOf(CALL);
const lockStart = TEXT.indexOf('dma_resv_lock');

function finding(over: Partial<Finding> = {}): Finding {
  return {
    rule: 'DMABUF-LOCKING',
    severity: 'error',
    message: 'map without the reservation lock',
    span: { start: callStart, end: callStart + CALL.length },
    related: [{ start: lockStart, end: lockStart + 'dma_resv_lock'.length, message: 'lock taken here' }],
    events: [],
    functionName: 'f',
    ...over,
  };
}

const RULES: RuleInfo[] = [
  { id: 'DMABUF-LOCKING', severity: 'error', summary: 'dma_resv lock rules', family: 'dmabuf', needs: [] },
  { id: 'P2P-CPU-MEMCPY', severity: 'warning', summary: 'CPU memcpy on p2pmem', family: 'p2pdma', needs: [] },
  { id: 'PGMAP-API-DRIFT', severity: 'info', summary: 'renamed pgmap API', family: 'pgmap', needs: [] },
];

// Independent expectations: the prefix of line 2 before the call.
const line2 = TEXT.split('\n')[1];
const prefix = line2.slice(0, line2.indexOf(CALL));
const byteCol = Buffer.byteLength(prefix, 'utf8') + 1;
const utf16Col = prefix.length + 1;

test('locateFindings gives byte columns and UTF-16 columns', () => {
  const [f] = locateFindings([finding()], new LineIndex(TEXT));
  // "{\t/* " (5 bytes) + "é€🙂" (2 + 3 + 4 bytes, 1 + 1 + 2 units) + " */ sgt = " (10).
  assert.equal(byteCol, 25);
  assert.equal(utf16Col, 20);
  assert.deepEqual(f.bytes.start, { line: 2, column: byteCol });
  assert.deepEqual(f.utf16.start, { line: 2, column: utf16Col });
  assert.deepEqual(f.bytes.end, { line: 2, column: byteCol + CALL.length });
  assert.deepEqual(f.utf16.end, { line: 2, column: utf16Col + CALL.length });
  assert.deepEqual(f.related[0].bytes.start, { line: 3, column: 2 });
  assert.equal(f.functionName, 'f');
});

test('locateFindings: in a latin-1 file byte columns count one byte per character', () => {
  const text = '/* caf\u00e9 */ x = dma_buf_map_attachment(a, d);\n';
  const start = text.indexOf('dma_buf');
  const f = finding({ span: { start, end: start + 3 }, related: [] });
  const [utf8] = locateFindings([f], new LineIndex(text));
  const [latin1] = locateFindings([f], new LineIndex(text), 'latin-1');
  assert.equal(utf8.bytes.start.column, start + 2);
  assert.equal(latin1.bytes.start.column, start + 1);
  assert.deepEqual(latin1.bytes, latin1.utf16);
});

test('locateFindings sorts by position, then rule', () => {
  const later = finding({ span: { start: lockStart, end: lockStart + 4 }, rule: 'A' });
  const b = finding({ rule: 'B' });
  const a = finding({ rule: 'A' });
  const out = locateFindings([later, b, a], new LineIndex(TEXT));
  assert.deepEqual(
    out.map((f) => [f.rule, f.bytes.start.line]),
    [
      ['A', 2],
      ['B', 2],
      ['A', 3],
    ],
  );
});

test('text format is gcc style with a byte column, one line per finding', () => {
  const located = locateFindings(
    [finding({ message: 'two\nlines' }), finding({ severity: 'info', rule: 'X', span: { start: 0, end: 6 } })],
    new LineIndex(TEXT),
  );
  assert.equal(
    formatText('drivers/x/é.c', located),
    'drivers/x/é.c:1:1: info: map without the reservation lock [X]\n' +
      `drivers/x/é.c:2:${byteCol}: error: two lines [DMABUF-LOCKING]\n`,
  );
  assert.equal(formatText('a.c', []), '');
});

test('JSON format: exact public field names, 1-based byte columns', () => {
  const located = locateFindings([finding(), finding({ functionName: undefined, related: [] })], new LineIndex(TEXT));
  const problems: FileProblem[] = [{ file: 'b.c', message: 'skipped: contains NUL bytes', fatal: false }];
  const doc = JSON.parse(formatJson([{ file: 'dir/a.c', findings: located }], problems));
  assert.deepEqual(Object.keys(doc), ['findings', 'errors']);
  assert.deepEqual(Object.keys(doc.findings[0]), [
    'file',
    'line',
    'column',
    'endLine',
    'endColumn',
    'rule',
    'severity',
    'message',
    'function',
    'related',
  ]);
  assert.deepEqual(doc.findings[0], {
    file: 'dir/a.c',
    line: 2,
    column: byteCol,
    endLine: 2,
    endColumn: byteCol + CALL.length,
    rule: 'DMABUF-LOCKING',
    severity: 'error',
    message: 'map without the reservation lock',
    function: 'f',
    related: [{ line: 3, column: 2, message: 'lock taken here' }],
  });
  // Optional fields are left out, not null.
  assert.ok(!('function' in doc.findings[1]));
  assert.ok(!('related' in doc.findings[1]));
  assert.deepEqual(doc.errors, [{ file: 'b.c', message: 'skipped: contains NUL bytes' }]);
  assert.deepEqual(JSON.parse(formatJson([], [])), { findings: [], errors: [] });
});

test('SARIF: 2.1.0 shape, UTF-16 columns, levels, rules, related locations', () => {
  const located = locateFindings(
    [finding(), finding({ rule: 'PGMAP-API-DRIFT', severity: 'info', related: [] })],
    new LineIndex(TEXT),
  );
  const problems: FileProblem[] = [
    { file: 'missing.c', message: 'no such file or directory', fatal: true },
    { file: 'bin.c', message: 'skipped: binary', fatal: false },
  ];
  const help = (id: string) => (id === 'PGMAP-API-DRIFT' ? undefined : `file:///opt/dmalens/docs/rules/${id}.md`);
  const log = JSON.parse(formatSarif([{ file: 'drivers\\a b.c', findings: located }], problems, RULES, '9.9.9', help));
  assert.equal(log.version, '2.1.0');
  assert.match(log.$schema, /sarif-schema-2\.1\.0\.json$/);
  assert.equal(log.runs.length, 1);
  const run = log.runs[0];
  assert.equal(run.columnKind, 'utf16CodeUnits');
  assert.equal(run.tool.driver.name, 'DMA Lens');
  assert.equal(run.tool.driver.version, '9.9.9');
  assert.deepEqual(
    run.tool.driver.rules.map((r: { id: string }) => r.id),
    RULES.map((r) => r.id),
  );
  assert.deepEqual(run.tool.driver.rules[1], {
    id: 'P2P-CPU-MEMCPY',
    shortDescription: { text: 'CPU memcpy on p2pmem' },
    helpUri: 'file:///opt/dmalens/docs/rules/P2P-CPU-MEMCPY.md',
    defaultConfiguration: { level: 'warning' },
    properties: { tags: ['p2pdma'] },
  });
  assert.equal(run.results.length, 2);
  const [r0, r1] = run.results;
  assert.equal(r0.ruleId, 'DMABUF-LOCKING');
  assert.equal(r0.ruleIndex, 0);
  assert.equal(r0.level, 'error');
  assert.equal(r0.message.text, 'map without the reservation lock');
  const loc = r0.locations[0].physicalLocation;
  assert.equal(loc.artifactLocation.uri, 'drivers/a%20b.c');
  assert.deepEqual(loc.region, {
    startLine: 2,
    startColumn: utf16Col,
    endLine: 2,
    endColumn: utf16Col + CALL.length,
  });
  assert.deepEqual(r0.locations[0].logicalLocations, [{ name: 'f', kind: 'function' }]);
  assert.equal(r0.relatedLocations.length, 1);
  assert.equal(r0.relatedLocations[0].message.text, 'lock taken here');
  assert.deepEqual(r0.relatedLocations[0].physicalLocation.region, {
    startLine: 3,
    startColumn: 2,
    endLine: 3,
    endColumn: 2 + 'dma_resv_lock'.length,
  });
  assert.equal(r1.level, 'note');
  assert.equal(r1.ruleIndex, 2);
  assert.ok(!('relatedLocations' in r1));
  // A rule whose page the resolver does not know has no helpUri rather than a relative one.
  assert.ok(!('helpUri' in run.tool.driver.rules[2]));
  const inv = run.invocations[0];
  assert.equal(inv.executionSuccessful, false);
  assert.deepEqual(
    inv.toolExecutionNotifications.map((n: { level: string }) => n.level),
    ['error', 'warning'],
  );
});

test('SARIF helpUri: absolute or absent, never a relative path', () => {
  const rules = (helpUri?: (id: string) => string | undefined) => JSON.parse(formatSarif([], [], RULES, '1', helpUri)).runs[0].tool.driver.rules;
  for (const r of rules()) assert.ok(!('helpUri' in r), 'no resolver, no helpUri');
  const uris = rules((id) => `https://example.org/rules/${id}.md`).map((r: { helpUri: string }) => r.helpUri);
  assert.deepEqual(uris, RULES.map((r) => `https://example.org/rules/${r.id}.md`));
  for (const u of uris) assert.doesNotThrow(() => new URL(u), u);
});

test('SARIF helpers', () => {
  assert.equal(sarifLevel('error'), 'error');
  assert.equal(sarifLevel('warning'), 'warning');
  assert.equal(sarifLevel('info'), 'note');
  assert.equal(sarifUri('./drivers/pci/p2pdma.c'), './drivers/pci/p2pdma.c');
  assert.equal(sarifUri('a#b/c?.c'), 'a%23b/c%3F.c');
  assert.equal(sarifUri('../x/ü.c'), '../x/%C3%BC.c');
  if (process.platform !== 'win32') assert.equal(sarifUri('/tmp/a b.c'), 'file:///tmp/a%20b.c');
});

test('rules: aligned text table and JSON', () => {
  const text = formatRulesText(RULES);
  const lines = text.trimEnd().split('\n');
  assert.equal(lines.length, 4);
  const col = lines[0].indexOf('SEVERITY');
  const sumCol = lines[0].indexOf('SUMMARY');
  for (const l of lines.slice(1)) {
    assert.match(l.slice(col), /^(error|warning|info) /);
    assert.equal(l[sumCol - 1], ' ');
    assert.notEqual(l[sumCol], ' ');
  }
  assert.match(formatRulesText([]), /no rules/);
  assert.deepEqual(JSON.parse(formatRulesJson(RULES)), {
    rules: RULES.map((r) => ({ id: r.id, severity: r.severity, summary: r.summary })),
  });
});
