/**
 * The language server's translators, without the protocol: settings, markdown
 * escaping, diagnostics and hovers from synthetic findings (so they are tested
 * before any rule exists), the not-analysed notices, the doc links, the
 * document store and the C analyser's incremental state.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, test } from 'node:test';
import { DiagnosticSeverity, MarkupKind, type MarkupContent } from 'vscode-languageserver/node';
import { Analyzer, type ParsedFile } from '../src/core/analyzer';
import { LineIndex } from '../src/core/positions';
import type { Finding, RuleInfo } from '../src/core/types';
import { CAnalyser } from '../src/lsp/analysers';
import { RuleDocs } from '../src/node/docs';
import { DocumentStore } from '../src/lsp/documents';
import { findingsAt, hoverAt, outcomeLine } from '../src/lsp/hover';
import { findingForRange, parseExplainParams, RunCache, stepLines } from '../src/lsp/explain';
import { type Project, Projects } from '../src/lsp/project';
import { referenceRun } from '../src/model/explain';
import { commandLinkTarget, escapeMarkdown, markdownLinkTarget } from '../src/lsp/markdown';
import { analyzeOptions, DEFAULT_SETTINGS, parseInitOptions, parseSettings } from '../src/lsp/settings';
import type { Run } from '../src/model/types';
import { notAnalysedReason } from '../src/lsp/server';
import { findingToDiagnostic, noticeToDiagnostic, toSeverity, type DiagnosticData } from '../src/lsp/translate';
import { loadWasm } from '../src/node/assets';

const REPO = path.resolve(__dirname, '..', '..', '..');

function finding(text: string, needle: string, extra: Partial<Finding> = {}): Finding {
  const start = text.indexOf(needle);
  assert.ok(start >= 0, needle);
  return {
    rule: 'TEST-RULE',
    severity: 'warning',
    message: 'mapped without the lock',
    span: { start, end: start + needle.length },
    related: [],
    events: [],
    ...extra,
  };
}

describe('settings', () => {
  test('defaults match the manifest (package.json contributes.configuration)', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'));
    const props = pkg.contributes.configuration.properties as Record<string, { default: unknown }>;
    assert.equal(props['dmalens.enable'].default, DEFAULT_SETTINGS.enable);
    assert.equal(props['dmalens.kernelVersion'].default, '');
    assert.deepEqual(props['dmalens.rules.disabled'].default, DEFAULT_SETTINGS.disabledRules);
    assert.deepEqual(props['dmalens.rules.severity'].default, DEFAULT_SETTINGS.severity);
    assert.equal(props['dmalens.maxFileSize'].default, DEFAULT_SETTINGS.maxFileSize);
    assert.equal(props['dmalens.topology'].default, '', 'empty: the model\'s default machine');
    assert.equal(parseSettings({ topology: '' }).settings.topology, undefined);
    assert.equal(parseSettings({ topology: 'hw/lspci.txt' }).settings.topology, 'hw/lspci.txt');
    // Every dmalens.* setting is either read by the server or the client's trace setting.
    const known = ['enable', 'kernelVersion', 'rules.disabled', 'rules.severity', 'maxFileSize', 'topology', 'patch.showExisting', 'trace.server'];
    assert.equal(props['dmalens.patch.showExisting'].default, false);
    assert.equal(parseSettings({ patch: { showExisting: true } }).settings.patchShowExisting, true);
    assert.equal(parseSettings({ 'patch.showExisting': true }).settings.patchShowExisting, true);
    assert.deepEqual(parseSettings({ patch: { showExisting: 'yes' } }).problems, ['dmalens.patch.showExisting: expected true or false']);
    for (const k of Object.keys(props)) assert.ok(known.includes(k.replace(/^dmalens\./, '')), `unknown setting ${k}`);
  });

  test('parses the nested section VS Code sends', () => {
    const { settings, problems } = parseSettings({
      enable: false,
      kernelVersion: '6.12',
      rules: { disabled: ['A', ' B '], severity: { A: 'error', B: 'info' } },
      maxFileSize: 10,
      trace: { server: 'off' },
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(settings, {
      enable: false,
      kernelVersion: { major: 6, minor: 12 },
      disabledRules: ['A', 'B'],
      severity: { A: 'error', B: 'info' },
      maxFileSize: 10,
    });
    assert.deepEqual(analyzeOptions(settings, 'drivers/x.c'), {
      kernelVersion: { major: 6, minor: 12 },
      disabledRules: ['A', 'B'],
      severity: { A: 'error', B: 'info' },
      path: 'drivers/x.c',
    });
  });

  test('accepts dotted keys, and falls back to defaults on bad values', () => {
    assert.deepEqual(parseSettings({ 'rules.disabled': ['X'] }).settings.disabledRules, ['X']);
    const { settings, problems } = parseSettings({
      enable: 'yes',
      kernelVersion: '6',
      rules: { disabled: 'X', severity: { X: 'fatal' } },
      maxFileSize: -1,
    });
    assert.deepEqual(settings, { ...DEFAULT_SETTINGS, disabledRules: [], severity: {} });
    assert.equal(problems.length, 5);
    assert.deepEqual(parseSettings(undefined).settings, { ...DEFAULT_SETTINGS, disabledRules: [], severity: {} });
    assert.equal(parseSettings('nonsense').problems.length, 1);
  });
});

describe('markdown escaping', () => {
  test('text from the file cannot format, link or inject HTML', () => {
    const evil = '*bold* _it_ `code` [x](javascript:alert(1)) <img src=x onerror=alert(1)> # h\n- item & http://a.b ~~s~~ |t|';
    const e = escapeMarkdown(evil);
    assert.ok(!/[<>]/.test(e), e);
    assert.ok(!e.includes('\n'));
    for (const ch of ['*', '_', '`', '[', ']', '(', ')', '#', '|', '~']) {
      for (let i = e.indexOf(ch); i !== -1; i = e.indexOf(ch, i + 1)) assert.equal(e[i - 1], '\\', `unescaped ${ch} in ${e}`);
    }
    assert.ok(e.includes('&lt;img') && e.includes('&amp;'));
    assert.equal(escapeMarkdown('plain words'), 'plain words');
    assert.equal(escapeMarkdown('a\\b'), 'a\\\\b');
    // Bidi controls cannot reorder the hover: they show as an escaped \u202e.
    assert.equal(escapeMarkdown('ab\u202ecd\u2066'), 'ab\\\\u202ecd\\\\u2066');
  });

  test('link targets: only file/http(s), no characters that end the link', () => {
    assert.equal(markdownLinkTarget('javascript:alert(1)'), undefined);
    assert.equal(markdownLinkTarget('command:workbench.action.quit'), undefined);
    assert.equal(markdownLinkTarget('file:///a (b)/R.md'), 'file:///a%20%28b%29/R.md');
  });
});

describe('diagnostics', () => {
  const text = 'int x;\r\n/* é😀 */ void f(void) { dma_buf_map_attachment(a, d); }\n';
  const index = new LineIndex(text);
  const docs = RuleDocs.create('https://example.org/rules');

  test('a finding becomes a diagnostic with code, link, source, related info and data', () => {
    const f = finding(text, 'dma_buf_map_attachment(a, d)', {
      related: [{ ...finding(text, 'void f').span, message: 'function starts here' }],
      functionName: 'f',
    });
    const d = findingToDiagnostic(f, 3, { uri: 'file:///x.c', version: 7, index, docs });
    // Line 1; the comment holds 'é' (1 unit) and '😀' (2 units): UTF-16 characters.
    const col = '/* é😀 */ void f(void) { '.length;
    assert.deepEqual(d.range, { start: { line: 1, character: col }, end: { line: 1, character: col + 28 } });
    assert.equal(d.code, 'TEST-RULE');
    assert.equal(d.source, 'DMA Lens');
    assert.equal(d.severity, DiagnosticSeverity.Warning);
    assert.equal(d.codeDescription?.href, 'https://example.org/rules/TEST-RULE.md');
    assert.deepEqual(d.relatedInformation, [
      {
        location: { uri: 'file:///x.c', range: { start: { line: 1, character: 10 }, end: { line: 1, character: 16 } } },
        message: 'function starts here',
      },
    ]);
    const data = d.data as DiagnosticData;
    assert.deepEqual(data, { kind: 'finding', rule: 'TEST-RULE', severity: 'warning', version: 7, span: f.span, index: 3, functionName: 'f' });
  });

  test('severity mapping', () => {
    assert.equal(toSeverity('error'), DiagnosticSeverity.Error);
    assert.equal(toSeverity('warning'), DiagnosticSeverity.Warning);
    assert.equal(toSeverity('info'), DiagnosticSeverity.Information);
  });

  test('notices sit on the first line, or on their span', () => {
    const d = noticeToDiagnostic({ kind: 'too-large', message: 'too big' }, 'first line\r\nsecond\n', 1);
    assert.deepEqual(d.range, { start: { line: 0, character: 0 }, end: { line: 0, character: 10 } });
    assert.equal(d.severity, DiagnosticSeverity.Information);
    const e = noticeToDiagnostic({ kind: 'parse-timeout', message: 'slow', span: { start: 8, end: 10 } }, text, 1, index);
    assert.equal(e.range.start.line, 1);
  });

  test('binary and oversize documents are not analysed', () => {
    assert.equal(notAnalysedReason('int a;\n', { maxFileSize: 100 }), undefined);
    assert.equal(notAnalysedReason('int a;\0', { maxFileSize: 100 })?.kind, 'not-text');
    const big = notAnalysedReason('é'.repeat(60), { maxFileSize: 100 });
    assert.equal(big?.kind, 'too-large');
    assert.match(big!.message, /120 bytes/);
    assert.equal(notAnalysedReason('é'.repeat(50), { maxFileSize: 100 }), undefined);
    assert.equal(notAnalysedReason('x'.repeat(101), { maxFileSize: 100 })?.kind, 'too-large');
  });
});

describe('hover', () => {
  const text = 'void f(void)\n{\n\tdma_buf_map_attachment(a, d);\n}\n';
  const index = new LineIndex(text);
  const rules = new Map<string, RuleInfo>([
    ['TEST-RULE', { id: 'TEST-RULE', severity: 'warning', summary: 'Maps need the <resv> lock', family: 'dmabuf', needs: [] }],
  ]);

  test('markdown with rule, severity, escaped message, summary and link', () => {
    const f = finding(text, 'dma_buf_map_attachment(a, d)', {
      message: 'map of `a` <b>without</b> [lock](http://x)',
      functionName: 'f_<x>',
      related: [{ start: 0, end: 4, message: 'entry *here*' }],
    });
    const h = hoverAt([f], { line: 2, character: 5 }, { rules, docs: RuleDocs.create('file:///ext/docs/rules/'), index });
    assert.ok(h);
    const c = h.contents as MarkupContent;
    assert.equal(c.kind, MarkupKind.Markdown);
    assert.ok(c.value.startsWith('**TEST\\-RULE** (warning)'), c.value);
    assert.ok(c.value.includes('map of \\`a\\` &lt;b&gt;without&lt;/b&gt; \\[lock\\]\\(http\\://x\\)'), c.value);
    assert.ok(c.value.includes('f\\_&lt;x&gt;'));
    assert.ok(c.value.includes('- line 1: entry \\*here\\*'));
    assert.ok(c.value.includes('Maps need the &lt;resv&gt; lock'));
    assert.ok(c.value.includes('(file:///ext/docs/rules/TEST-RULE.md)'));
    assert.deepEqual(h.range, { start: { line: 2, character: 1 }, end: { line: 2, character: 29 } });
  });

  test('no hover outside findings; overlapping findings are all shown', () => {
    const outer = finding(text, 'dma_buf_map_attachment(a, d);');
    const inner = finding(text, 'a, d', { rule: 'OTHER' });
    const ctx = { rules, docs: RuleDocs.create('https://x/'), index };
    assert.equal(hoverAt([outer, inner], { line: 0, character: 0 }, ctx), null);
    const h = hoverAt([outer, inner], { line: 2, character: 25 }, ctx);
    assert.ok(h);
    assert.ok((h.contents as MarkupContent).value.includes('OTHER'));
    assert.ok((h.contents as MarkupContent).value.includes('TEST\\-RULE'));
    assert.equal(h.range!.start.character, text.split('\n')[2].indexOf('a, d'));
    assert.equal(findingsAt([outer], outer.span.end).length, 1);
  });
});

describe('rule doc links', () => {
  test('the override wins and gets a trailing slash', () => {
    assert.equal(RuleDocs.create('https://example.org/r').href('X-Y'), 'https://example.org/r/X-Y.md');
    assert.equal(RuleDocs.create('https://example.org/r').href('../etc'), undefined);
  });

  test('found from the server location: <ext>/server/dist -> <ext>/docs/rules, only for pages that exist', () => {
    const ext = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-docs-'));
    try {
      fs.mkdirSync(path.join(ext, 'docs', 'rules'), { recursive: true });
      fs.mkdirSync(path.join(ext, 'server', 'dist'), { recursive: true });
      fs.writeFileSync(path.join(ext, 'docs', 'rules', 'A-B.md'), '# A-B\n');
      const docs = RuleDocs.create(undefined, path.join(ext, 'server', 'dist'));
      assert.equal(docs.href('A-B'), pathToFileURL(path.join(ext, 'docs', 'rules', 'A-B.md')).href);
      assert.equal(docs.href('MISSING'), undefined);
    } finally {
      fs.rmSync(ext, { recursive: true, force: true });
    }
  });
});

describe('document store and C analyser', () => {
  test('incremental edits are applied to the stored text', () => {
    const store = new DocumentStore(() => undefined);
    store.open('file:///a.c', 'c', 1, 'int a;\nint b;\n');
    const d = store.change('file:///a.c', 2, [
      { range: { start: { line: 1, character: 4 }, end: { line: 1, character: 5 } }, text: 'bee' },
      { range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: 'static ' },
    ]);
    assert.equal(d?.text, 'static int a;\nint bee;\n');
    assert.equal(d?.version, 2);
    assert.equal(store.change('file:///nope.c', 2, []), undefined);
    store.close('file:///a.c');
    assert.equal(store.get('file:///a.c'), undefined);
  });

  test('the C analyser reparses incrementally and frees consumed trees', async () => {
    const c = new CAnalyser(await Analyzer.create(loadWasm()));
    const v1 = 'int f(void) { dma_buf_pin(a); return 1; }\n';
    const v2 = 'int f(void) { dma_buf_pin(a); return 2; }\n';
    const first = c.analyze(v1, undefined, {});
    assert.equal(first.result.errorNodes, 0);
    assert.ok(first.state, 'a text a rule runs on keeps its tree');
    const second = c.analyze(v2, first.state, {});
    assert.ok(first.state.deleted, 'the previous tree is consumed');
    assert.ok(second.state);
    assert.equal(second.state.text, v2);
    assert.equal(second.state.tree.rootNode.text, v2);
    c.dispose(second.state);
    assert.ok(second.state.deleted);
    c.dispose(second.state); // twice is harmless
  });

  test('the C analyser neither parses nor keeps a text no rule runs on', async () => {
    const c = new CAnalyser(await Analyzer.create(loadWasm()));
    const plain = c.analyze('int f(void) { return kmalloc(8, GFP_KERNEL) != NULL; }\n', undefined, {});
    assert.equal(plain.state, undefined);
    assert.deepEqual(plain.result, { findings: [], notices: [], errorNodes: 0 });
    assert.equal(c.keptTrees().documents, 0);
    // The rule's word appears: parsed afresh, findings as usual.
    const bad = 'void f(struct dma_buf_attachment *a)\n{\n\tstruct sg_table *t = dma_buf_map_attachment(a, DMA_TO_DEVICE);\n\tif (!t)\n\t\treturn;\n}\n';
    const named = c.analyze(bad, plain.state, {});
    assert.ok(named.state, 'parsed once a rule runs');
    assert.ok(named.result.findings.some((f) => f.rule === 'DMABUF-ERRPTR'), JSON.stringify(named.result.findings.map((f) => f.rule)));
    assert.equal(c.keptTrees().documents, 1);
    // And gone again: the tree is freed, not kept for nothing.
    const gone = c.analyze('int f(void) { return 0; }\n', named.state, {});
    assert.equal(gone.state, undefined);
    assert.ok(named.state.deleted);
    assert.equal(c.keptTrees().documents, 0);
  });
});

describe('the model in hovers and dmalens/explain', () => {
  const text = 'void f(void)\n{\n\tdma_buf_map_attachment(a, d);\n\tdma_buf_map_attachment(b, d);\n}\n';
  const index = new LineIndex(text);
  const rules = new Map<string, RuleInfo>();
  const evil = '<img src=x onerror=alert(1)> [x](command:evil) `c`';
  const run: Run = {
    rule: 'TEST-RULE',
    world: 'w',
    steps: [{ actor: 'driver', action: 'maps', location: finding(text, 'dma_buf_map_attachment(b, d)').span }, { actor: 'device', action: 'writes' }],
    outcome: { kind: 'SILENT_CORRUPTION', summary: `lands ${evil}` },
  };

  test('the outcome line is escaped; the command link carries [uri, rule, range] and only when allowed', () => {
    const f = finding(text, 'dma_buf_map_attachment(a, d)');
    const base = { rules, docs: RuleDocs.create('https://x/'), index, uri: 'file:///k/a (1).c', explain: () => run };
    const on = (hoverAt([f], { line: 2, character: 3 }, { ...base, commandLinks: true })!.contents as MarkupContent).value;
    const lines = on.split('\n').filter((l) => l.length > 0);
    assert.equal(lines[1], `**Outcome (model):** SILENT\\_CORRUPTION — lands ${escapeMarkdown(evil)}`);
    assert.ok(!/<[a-z]/i.test(on), on);
    assert.ok(!on.includes('](command:evil'), on);
    const m = /\[Show the model's run\]\(command:dmalens\.showRun\?([^()\s]*)\)/.exec(on);
    assert.ok(m, on);
    assert.deepEqual(JSON.parse(decodeURIComponent(m[1])), [
      'file:///k/a (1).c',
      'TEST-RULE',
      { start: { line: 2, character: 1 }, end: { line: 2, character: 29 } },
    ]);
    const off = (hoverAt([f], { line: 2, character: 3 }, { ...base, commandLinks: false })!.contents as MarkupContent).value;
    assert.ok(off.includes('**Outcome (model):**'));
    assert.ok(!off.includes('command:'), off);
    // No run (or none for this rule): no outcome line, no link.
    const none = (hoverAt([f], { line: 2, character: 3 }, { ...base, commandLinks: true, explain: () => undefined })!.contents as MarkupContent).value;
    assert.ok(!none.includes('Outcome') && !none.includes('command:'), none);
  });

  test('command link targets: JSON arguments, nothing that ends a markdown link', () => {
    const t = commandLinkTarget('dmalens.showRun', ["a)b'c(d*e!f", 1])!;
    assert.match(t, /^command:dmalens\.showRun\?[A-Za-z0-9%._~-]*$/);
    assert.deepEqual(JSON.parse(decodeURIComponent(t.slice(t.indexOf('?') + 1))), ["a)b'c(d*e!f", 1]);
    assert.equal(commandLinkTarget('evil) [x](command:x', []), undefined);
  });

  test('initializationOptions: commandLinks only when the client says true', () => {
    assert.equal(parseInitOptions(undefined).options.commandLinks, false);
    assert.equal(parseInitOptions({ commandLinks: true }).options.commandLinks, true);
    assert.equal(parseInitOptions({ commandLinks: false }).options.commandLinks, false);
    const bad = parseInitOptions({ commandLinks: 'yes', docsBaseUri: 'https://d/' });
    assert.equal(bad.options.commandLinks, false);
    assert.equal(bad.options.docsBaseUri, 'https://d/');
    assert.equal(bad.problems.length, 1);
    assert.equal(parseInitOptions('x').problems.length, 1);
  });

  test('explain parameters are validated', () => {
    const range = { start: { line: 1, character: 0 }, end: { line: 1, character: 2 } };
    assert.deepEqual(parseExplainParams({ rule: 'R-1' }), { rule: 'R-1' });
    assert.deepEqual(parseExplainParams({ rule: 'R-1', uri: 'file:///a.c', range }), { rule: 'R-1', uri: 'file:///a.c', range });
    for (const bad of [null, 'R', {}, { rule: '' }, { rule: '../x' }, { rule: 'R', uri: 'file:///a.c' }, { rule: 'R', uri: 5, range },
      { rule: 'R', uri: 'u', range: { start: { line: 0.5, character: 0 }, end: range.end } }]) {
      assert.equal(parseExplainParams(bad), undefined, JSON.stringify(bad));
    }
  });

  test('the finding a range means: exact, else covering, else the nearest of the rule', () => {
    const a = finding(text, 'dma_buf_map_attachment(a, d)');
    const b = finding(text, 'dma_buf_map_attachment(b, d)');
    const other = finding(text, 'dma_buf_map_attachment(b, d)', { rule: 'OTHER' });
    const fs = [a, b, other];
    const range = (line: number, c0: number, c1: number) => ({ start: { line, character: c0 }, end: { line, character: c1 } });
    assert.equal(findingForRange(fs, index, 'TEST-RULE', range(3, 1, 29)), b);
    assert.equal(findingForRange(fs, index, 'OTHER', range(3, 1, 29)), other);
    assert.equal(findingForRange(fs, index, 'TEST-RULE', range(2, 5, 40)), a);
    assert.equal(findingForRange(fs, index, 'TEST-RULE', range(4, 0, 1)), b);
    assert.equal(findingForRange(fs, index, 'NONE', range(2, 1, 29)), undefined);
  });

  test('step lines: LSP positions and the line text, null without a location', () => {
    assert.deepEqual(stepLines(run, text, index), [{ line: 3, character: 1, text: '\tdma_buf_map_attachment(b, d);' }, null]);
  });
});

describe('dmalens.topology: the user\'s machine in runs and hovers', () => {
  const example = fs.readFileSync(path.join(REPO, 'examples', 'drivers', 'pci', 'acme_p2p.c'), 'utf8');
  const roots: string[] = [];
  after(() => {
    for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
  });
  /** A workspace with the examples' lspci tree and a JSON topology whose IOMMU is off. */
  function workspace(): { projects: Projects; project: Project; uri: string } {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-topology-'));
    roots.push(root);
    fs.mkdirSync(path.join(root, 'hw'));
    fs.copyFileSync(path.join(REPO, 'examples', 'topology', 'lspci-tvnn.txt'), path.join(root, 'hw', 'lspci.txt'));
    const doc = JSON.parse(fs.readFileSync(path.join(REPO, 'server', 'test', 'fixtures', 'topology', 'hand-written.json'), 'utf8'));
    doc.iommu = 'off';
    fs.writeFileSync(path.join(root, 'hw', 'off.json'), JSON.stringify(doc));
    fs.writeFileSync(path.join(root, 'p2p.c'), example);
    const projects = new Projects(() => new Set());
    projects.setWorkspaceFolders([pathToFileURL(root).toString()]);
    const uri = pathToFileURL(path.join(root, 'p2p.c')).toString();
    return { projects, project: projects.projectFor(uri)!, uri };
  }

  test('an lspci tree: a finding that does not fail there is not a bare OK in the hover', async () => {
    const { projects, project, uri } = workspace();
    const { world, error } = projects.topology('hw/lspci.txt', project);
    assert.equal(error, undefined);
    assert.ok(world?.topology);
    const index = new LineIndex(example);
    const findings = (await Analyzer.create(loadWasm())).analyzeText(example).findings;
    const runs = new RunCache();
    const f = findings.find((x) => x.rule === 'P2P-DISTANCE-UNCHECKED')!;
    const run = runs.runFor(f, world)!;
    assert.equal(run.outcome.kind, 'OK');
    assert.match(run.world, /^your topology/);
    assert.match(run.worldNotes?.[0] ?? '', /^on your topology .*behind one PCIe switch/);
    const rules = new Map<string, RuleInfo>();
    const hover = hoverAt(findings, index.position(f.span.start), { rules, docs: RuleDocs.create('https://x/'), index, uri, explain: (x) => runs.runFor(x, world) });
    const value = (hover!.contents as MarkupContent).value;
    const line = value.split('\n').find((l) => l.startsWith('**Outcome (model):**'))!;
    assert.ok(!/^\*\*Outcome \(model\):\*\* OK —/.test(line), line);
    assert.match(line, /does not fail on your topology \(OK\); in the rule's default world: UR\\_AER — /);
    // Without the setting: the rule's own world, a failure, the usual line.
    const own = new RunCache().runFor(f)!;
    assert.equal(outcomeLine(own), `**Outcome (model):** UR\\_AER — ${escapeMarkdown(own.outcome.summary)}`);
  });

  test('a JSON topology with the IOMMU off: no IOMMU fault, BARs from the file', () => {
    const { projects, project } = workspace();
    const { world, error } = projects.topology('hw/off.json', project);
    assert.equal(error, undefined);
    const run = referenceRun('P2P-BUS-ADDR-VS-IOMMU', world)!;
    assert.notEqual(run.outcome.kind, 'IOMMU_FAULT', run.steps.map((s) => s.action).join('\n'));
    assert.match(run.world, /IOMMU off/);
    assert.ok(!run.steps.some((s) => /IOMMU has no mapping/.test(s.action)));
    assert.ok(run.steps.some((s) => /0x38bf00000000/.test(s.action)), 'the NVMe drive\'s BAR2 from the file');
    assert.equal(projects.topology('../outside.json', project).error?.includes('inside the workspace'), true);
  });
});
