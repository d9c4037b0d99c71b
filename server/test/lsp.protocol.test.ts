/**
 * The language server over stdio, driven by a JSON-RPC test client: the real
 * binary shim, the real bundle (or tsc output), the real analyser.
 *
 * Assertions that need findings are skipped while the rule registry is empty,
 * so the suite passes before the rules land and exercises them after.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test, type TestContext } from 'node:test';
import { DiagnosticSeverity, MarkupKind, TextDocumentSyncKind, type Diagnostic, type MarkupContent, type Range } from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { Analyzer } from '../src/core/analyzer';
import { loadWasm } from '../src/node/assets';
import { REPO, TestClient } from './helpers/lspClient';

const SEVERITY: Record<string, DiagnosticSeverity> = {
  error: DiagnosticSeverity.Error,
  warning: DiagnosticSeverity.Warning,
  info: DiagnosticSeverity.Information,
};

/** DMABUF-LOCKING: a map without the reservation lock held. */
const RULE = 'DMABUF-LOCKING';
const BAD = [
  '#include <linux/dma-buf.h>',
  '',
  'void f(struct dma_buf_attachment *a)',
  '{',
  '\tstruct sg_table *s = dma_buf_map_attachment(a, DMA_BIDIRECTIONAL);',
  '}',
  '',
].join('\n');
const CALL_LINE = 4;

let hasRule = false;
let ruleCount = 0;

before(async () => {
  const analyzer = await Analyzer.create(loadWasm());
  const rules = analyzer.rules();
  ruleCount = rules.length;
  hasRule = rules.some((r) => r.id === RULE);
});

/** Skips the running test (and returns true) while the rule it needs does not exist yet. */
function needsRule(t: TestContext): boolean {
  if (hasRule) return false;
  t.skip(`needs rule ${RULE} (the registry has ${ruleCount} rules)`);
  return true;
}

function uri(name: string): string {
  return pathToFileURL(path.join(REPO, '.cache', 'lsp-test', name)).href;
}

/** The `[uri, rule, range]` arguments of the hover's dmalens.showRun link, or undefined without one. */
function showRunArgs(markdown: string): [string, string, Range] | undefined {
  const m = /\[Show the model's run\]\(command:dmalens\.showRun\?([^)\s]*)\)/.exec(markdown);
  return m ? JSON.parse(decodeURIComponent(m[1])) : undefined;
}

interface ExplainAnswer {
  run: { rule: string; world: string; outcome: { kind: string; summary: string }; steps: { actor: string; action: string; location?: unknown }[] };
  lines: ({ line: number; character: number; text: string } | null)[];
  version?: number;
}

/** A diagnostic's message as text (3.18 allows MarkupContent). */
function msg(d: Diagnostic): string {
  return typeof d.message === 'string' ? d.message : d.message.value;
}

function ofRule(ds: Diagnostic[], rule = RULE): Diagnostic[] {
  return ds.filter((d) => d.code === rule);
}

describe('language server over stdio', () => {
  let client: TestClient;

  before(async () => {
    client = new TestClient();
    // As the VS Code extension does: it registers dmalens.showRun, so hovers may link to it.
    const init = await client.initialize({ commandLinks: true });
    const sync = init.capabilities.textDocumentSync;
    assert.equal(typeof sync === 'object' ? sync.change : sync, TextDocumentSyncKind.Incremental);
    assert.equal(init.capabilities.hoverProvider, true);
    assert.equal(init.serverInfo?.name, 'dmalens-language-server');
  });

  after(() => client.kill());

  test('didOpen publishes diagnostics and asks for the dmalens settings', async () => {
    const u = uri('open.c');
    await client.open(u, BAD);
    const p = await client.diagnosticsFor(u, 1);
    assert.ok(Array.isArray(p.diagnostics));
    const asked = client.configurationRequests.flatMap((r) => r.items);
    assert.ok(asked.some((i) => i.section === 'dmalens' && i.scopeUri === u), JSON.stringify(asked));
    const info = await client.documentInfo(u);
    assert.equal(info.version, 1);
    assert.equal(info.analysedVersion, 1);
  });

  test('diagnostics for a finding', async (t) => {
    if (needsRule(t)) return;
    const u = uri('finding.c');
    await client.open(u, BAD);
    const p = await client.diagnosticsFor(u, 1);
    const ds = ofRule(p.diagnostics);
    assert.equal(ds.length, 1, JSON.stringify(p.diagnostics));
    const d = ds[0];
    assert.equal(d.source, 'DMA Lens');
    assert.equal(d.range.start.line, CALL_LINE);
    assert.ok(msg(d).length > 0);
    const data = d.data as { kind: string; rule: string; severity: string; version: number; span: { start: number; end: number } };
    // The rule decides the severity (it may lower it for a finding); the server only maps it.
    assert.equal(d.severity, SEVERITY[data.severity], JSON.stringify(d));
    assert.equal(data.kind, 'finding');
    assert.equal(data.rule, RULE);
    assert.equal(data.version, 1);
    assert.ok(BAD.slice(data.span.start, data.span.end).length > 0);
    const page = path.join(REPO, 'docs', 'rules', `${RULE}.md`);
    if (fs.existsSync(page)) assert.equal(d.codeDescription?.href, pathToFileURL(page).href);
    for (const r of d.relatedInformation ?? []) assert.equal(r.location.uri, u);
  });

  test('incremental didChange: the server applies range edits and re-analyses', async () => {
    const u = uri('change.c');
    let local = TextDocument.create(u, 'c', 1, BAD);
    await client.open(u, BAD);
    const first = await client.diagnosticsFor(u, 1);

    // A line inserted above the function, then a multi-byte comment on the call's line.
    const edits = [
      [{ range: { start: { line: 1, character: 0 }, end: { line: 1, character: 0 } }, text: '/* added */\n' }],
      [{ range: { start: { line: CALL_LINE + 1, character: 1 }, end: { line: CALL_LINE + 1, character: 1 } }, text: '/* é😀 */ ' }],
    ];
    let version = 1;
    let since = client.published.length;
    for (const e of edits) {
      version++;
      local = TextDocument.update(local, e, version);
      await client.change(u, version, e);
    }
    const second = await client.diagnosticsFor(u, version, since);
    const info = await client.documentInfo(u, true);
    assert.equal(info.text, local.getText());
    assert.equal(info.analysedVersion, version);

    if (hasRule) {
      const before = ofRule(first.diagnostics)[0];
      const afterEdit = ofRule(second.diagnostics)[0];
      assert.ok(before && afterEdit, JSON.stringify(second.diagnostics));
      assert.equal(afterEdit.range.start.line, before.range.start.line + 1);
      // '/* é😀 */ ' is 10 UTF-16 code units (the emoji takes two).
      assert.equal(afterEdit.range.start.character, before.range.start.character + 10);
    }

    // A full-text change (no range) is accepted too.
    since = client.published.length;
    version++;
    await client.change(u, version, [{ text: 'int x;\n' }]);
    const third = await client.diagnosticsFor(u, version, since);
    assert.equal(ofRule(third.diagnostics).length, 0);
    assert.equal((await client.documentInfo(u, true)).text, 'int x;\n');
  });

  test('rapid edits are debounced: the last version wins', async () => {
    const u = uri('debounce.c');
    await client.open(u, 'int a;\n');
    await client.diagnosticsFor(u, 1);
    const since = client.published.length;
    for (let v = 2; v <= 20; v++) {
      await client.change(u, v, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: ' ' }]);
    }
    await client.diagnosticsFor(u, 20, since);
    const versions = client.published.slice(since).filter((p) => p.uri === u).map((p) => p.version);
    assert.ok(versions.length < 19, `expected fewer analyses than edits, got versions ${versions}`);
    assert.equal((await client.documentInfo(u, true)).text, ' '.repeat(19) + 'int a;\n');
  });

  test('hover on a finding shows rule, severity, message and summary', async (t) => {
    if (needsRule(t)) return;
    const u = uri('hover.c');
    await client.open(u, BAD);
    const p = await client.diagnosticsFor(u, 1);
    const d = ofRule(p.diagnostics)[0];
    assert.ok(d);
    const h = await client.hover(u, d.range.start);
    assert.ok(h, 'expected a hover');
    const c = h.contents as MarkupContent;
    assert.equal(c.kind, MarkupKind.Markdown);
    assert.match(c.value, /DMABUF\\-LOCKING/);
    assert.ok(c.value.includes(`(${(d.data as { severity: string }).severity})`), c.value);
    assert.ok(!/<[a-z]/i.test(c.value), 'no raw HTML in hovers');
    assert.deepEqual(h.range, d.range);
  });

  test('hover on a finding shows the model\'s outcome and a link that opens its run', async (t) => {
    if (needsRule(t)) return;
    const u = uri('hover-run.c');
    await client.open(u, BAD);
    const d = ofRule((await client.diagnosticsFor(u, 1)).diagnostics)[0];
    const value = ((await client.hover(u, d.range.start))!.contents as MarkupContent).value;
    const lines = value.split('\n').filter((l) => l.length > 0);
    assert.match(lines[0], /^\*\*DMABUF\\-LOCKING\*\*/);
    assert.match(lines[1], /^\*\*Outcome \(model\):\*\* [A-Z\\_]+ — \S/, value);
    const args = showRunArgs(value);
    assert.ok(args, value);
    assert.deepEqual(args, [u, RULE, d.range]);
    assert.ok(!/<[a-z]/i.test(value), 'no raw HTML in hovers');
  });

  test('dmalens/explain: the run of a finding, its steps located in the document', async (t) => {
    if (needsRule(t)) return;
    const u = uri('explain.c');
    await client.open(u, BAD);
    const d = ofRule((await client.diagnosticsFor(u, 1)).diagnostics)[0];
    const r: ExplainAnswer = await client.conn.sendRequest('dmalens/explain', { uri: u, rule: RULE, range: d.range });
    assert.ok(r, 'a run');
    assert.equal(r.run.rule, RULE);
    assert.match(r.run.outcome.kind, /^[A-Z_]+$/);
    assert.ok(r.run.steps.length > 0);
    assert.equal(r.lines.length, r.run.steps.length);
    assert.equal(r.version, 1);
    const docLines = BAD.split('\n');
    const located = r.lines.filter((l) => l !== null);
    assert.ok(located.length > 0, 'some steps come from the code');
    r.lines.forEach((l, i) => {
      assert.equal(l === null, r.run.steps[i].location === undefined);
      if (!l) return;
      assert.ok(l.line >= 0 && l.line < docLines.length, `line ${l.line}`);
      assert.ok(l.character >= 0 && l.character <= docLines[l.line].length);
      assert.equal(l.text, docLines[l.line]);
    });
    assert.ok(located.some((l) => l!.line === CALL_LINE), JSON.stringify(r.lines));

    // The hover's arguments ask for the same run.
    const h = await client.hover(u, d.range.start);
    const [hu, hr, hrange] = showRunArgs((h!.contents as MarkupContent).value)!;
    const again: ExplainAnswer = await client.conn.sendRequest('dmalens/explain', { uri: hu, rule: hr, range: hrange });
    assert.deepEqual(again, r);
  });

  test('dmalens/explain after an edit: the document is analysed again and the run follows the code', async (t) => {
    if (needsRule(t)) return;
    const u = uri('explain-edit.c');
    await client.open(u, BAD);
    const d = ofRule((await client.diagnosticsFor(u, 1)).diagnostics)[0];
    // A line inserted above, and the request sent at once (before the debounced analysis).
    await client.change(u, 2, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '// moved\n' }]);
    const r: ExplainAnswer = await client.conn.sendRequest('dmalens/explain', { uri: u, rule: RULE, range: d.range });
    assert.ok(r, 'a run');
    assert.equal(r.version, 2);
    const docLines = ('// moved\n' + BAD).split('\n');
    assert.ok(r.lines.some((l) => l?.line === CALL_LINE + 1), JSON.stringify(r.lines));
    for (const l of r.lines) if (l) assert.equal(l.text, docLines[l.line]);
  });

  test('dmalens/explain: a reference run for a rule alone; null or an error for the rest', async (t) => {
    if (needsRule(t)) return;
    const ref: ExplainAnswer = await client.conn.sendRequest('dmalens/explain', { rule: RULE });
    assert.ok(ref && ref.run.steps.length > 0);
    assert.match(ref.run.outcome.kind, /^[A-Z_]+$/);
    assert.ok(ref.lines.every((l) => l === null));
    assert.ok(ref.run.steps.every((s) => s.location === undefined));
    assert.equal(await client.conn.sendRequest('dmalens/explain', { rule: 'NO-SUCH-RULE' }), null);
    const range = { start: { line: 0, character: 0 }, end: { line: 0, character: 1 } };
    assert.equal(await client.conn.sendRequest('dmalens/explain', { uri: uri('not-open.c'), rule: RULE, range }), null);
    const clean = uri('explain-clean.c');
    await client.open(clean, 'int a;\n');
    await client.diagnosticsFor(clean, 1);
    assert.equal(await client.conn.sendRequest('dmalens/explain', { uri: clean, rule: RULE, range }), null);
    for (const bad of [null, {}, { rule: 42 }, { rule: 'X', uri: clean }, { rule: 'X', uri: clean, range: { start: { line: -1, character: 0 }, end: 0 } }]) {
      await assert.rejects(client.conn.sendRequest('dmalens/explain', bad), JSON.stringify(bad));
    }
    const rules: { id: string }[] = await client.conn.sendRequest('dmalens/modelRules');
    assert.ok(rules.some((r) => r.id === RULE));
    assert.equal(client.proc.exitCode, null);
  });

  test('hover away from findings, or on unknown documents, is empty', async () => {
    const u = uri('nohover.c');
    await client.open(u, BAD);
    await client.diagnosticsFor(u, 1);
    assert.equal(await client.hover(u, { line: 0, character: 0 }), null);
    assert.equal(await client.hover(uri('not-open.c'), { line: 0, character: 0 }), null);
  });

  test('a binary document gets one notice at line 0, and the server stays alive', async () => {
    const u = uri('binary.c');
    await client.open(u, 'int a;\0\0\0\x01\x02 junk\nmore\n');
    const p = await client.diagnosticsFor(u, 1);
    assert.equal(p.diagnostics.length, 1);
    const d = p.diagnostics[0];
    assert.equal(d.severity, DiagnosticSeverity.Information);
    assert.equal(d.range.start.line, 0);
    assert.match(msg(d), /binary/);
    assert.match(msg(d), /did not analyse/);

    // Removing the NUL bytes through an incremental edit brings analysis back.
    const since = client.published.length;
    await client.change(u, 2, [{ range: { start: { line: 0, character: 6 }, end: { line: 0, character: 11 } }, text: '' }]);
    const q = await client.diagnosticsFor(u, 2, since);
    assert.equal(q.diagnostics.filter((x) => /did not analyse/.test(msg(x))).length, 0);

    const ok = uri('after-binary.c');
    await client.open(ok, 'int ok;\n');
    await client.diagnosticsFor(ok, 1);
    assert.equal(client.proc.exitCode, null);
  });

  test('an oversize document gets one notice, and a setting change re-validates it', async () => {
    const u = uri('big.c');
    const big = '/* ' + 'x'.repeat(3000) + ' */\nint a;\n';
    client.settings = { maxFileSize: 1000 };
    await client.configurationChanged();
    await client.open(u, big);
    const p = await client.diagnosticsFor(u, 1);
    assert.equal(p.diagnostics.length, 1, JSON.stringify(p.diagnostics));
    assert.equal(p.diagnostics[0].severity, DiagnosticSeverity.Information);
    assert.equal(p.diagnostics[0].range.start.line, 0);
    assert.match(msg(p.diagnostics[0]), /maxFileSize/);

    const since = client.published.length;
    client.settings = {};
    await client.configurationChanged();
    const q = await client.waitForDiagnostics((x) => x.uri === u, 15000, since);
    assert.equal(q.diagnostics.filter((x) => /maxFileSize/.test(msg(x))).length, 0);
  });

  test('dmalens.enable false clears diagnostics without a restart', async () => {
    const u = uri('disabled.c');
    client.settings = { maxFileSize: 10 };
    await client.configurationChanged();
    await client.open(u, 'int this_is_too_big;\n');
    const p = await client.diagnosticsFor(u, 1);
    assert.equal(p.diagnostics.length, 1);

    let since = client.published.length;
    client.settings = { maxFileSize: 10, enable: false };
    await client.configurationChanged();
    const q = await client.waitForDiagnostics((x) => x.uri === u, 15000, since);
    assert.deepEqual(q.diagnostics, []);

    since = client.published.length;
    client.settings = {};
    await client.configurationChanged();
    await client.waitForDiagnostics((x) => x.uri === u, 15000, since);
  });

  test('dmalens.rules.disabled removes that rule\'s diagnostics', async (t) => {
    if (needsRule(t)) return;
    const u = uri('rules-disabled.c');
    client.settings = {};
    await client.configurationChanged();
    await client.open(u, BAD);
    const p = await client.diagnosticsFor(u, 1);
    assert.equal(ofRule(p.diagnostics).length, 1);

    let since = client.published.length;
    client.settings = { rules: { disabled: [RULE] } };
    await client.configurationChanged();
    const q = await client.waitForDiagnostics((x) => x.uri === u, 15000, since);
    assert.equal(ofRule(q.diagnostics).length, 0, JSON.stringify(q.diagnostics));

    // A severity override reaches the client as the mapped LSP severity.
    since = client.published.length;
    client.settings = { rules: { severity: { [RULE]: 'info' } } };
    await client.configurationChanged();
    const r = await client.waitForDiagnostics((x) => x.uri === u && ofRule(x.diagnostics).length > 0, 15000, since);
    assert.equal(ofRule(r.diagnostics)[0].severity, DiagnosticSeverity.Information);
    client.settings = {};
    await client.configurationChanged();
  });

  test('didClose clears the diagnostics and forgets the document', async () => {
    const u = uri('close.c');
    await client.open(u, BAD);
    await client.diagnosticsFor(u, 1);
    const since = client.published.length;
    await client.close(u);
    const p = await client.waitForDiagnostics((x) => x.uri === u, 15000, since);
    assert.deepEqual(p.diagnostics, []);
    assert.equal(await client.documentInfo(u), null);
  });

  test('non-C documents are kept in sync but not analysed', async () => {
    const u = uri('notes.txt');
    await client.open(u, 'dma_buf_map_attachment\0', 1, 'plaintext');
    const info = await client.documentInfo(u);
    assert.equal(info.languageId, 'plaintext');
    assert.equal(info.analysed, false);
  });

  test('stray notifications and malformed requests do not hurt', async () => {
    await client.change(uri('never-opened.c'), 2, [{ text: 'x' }]);
    await client.close(uri('never-opened.c'));
    const bad = uri('malformed.c');
    await client.open(bad, BAD);
    await client.diagnosticsFor(bad, 1);
    // No position at all: the handler must answer (null or an error), not die.
    await client.conn.sendRequest('textDocument/hover', { textDocument: { uri: bad } }).catch(() => null);
    await client.conn.sendRequest('dmalens/documentInfo', null).catch(() => null);
    const u = uri('still-alive.c');
    await client.open(u, 'int a;\n');
    await client.diagnosticsFor(u, 1);
    assert.equal(client.proc.exitCode, null);
  });
});

test('shutdown then exit ends the server with code 0', async () => {
  const client = new TestClient();
  try {
    await client.initialize();
    const u = uri('exit.c');
    await client.open(u, BAD);
    await client.diagnosticsFor(u, 1);
    assert.equal(await client.stop(), 0);
  } finally {
    client.kill();
  }
});

test('initializationOptions.docsBaseUri sets the rule doc links', async (t) => {
  if (needsRule(t)) return;
  const client = new TestClient();
  try {
    await client.initialize({ docsBaseUri: 'https://example.org/dmalens/rules' });
    const u = uri('docs.c');
    await client.open(u, BAD);
    const p = await client.diagnosticsFor(u, 1);
    const d = ofRule(p.diagnostics)[0];
    assert.equal(d.codeDescription?.href, `https://example.org/dmalens/rules/${RULE}.md`);
    const h = await client.hover(u, d.range.start);
    assert.match((h!.contents as MarkupContent).value, /\(https:\/\/example\.org\/dmalens\/rules\/DMABUF-LOCKING\.md\)/);
  } finally {
    client.kill();
  }
});

test('without commandLinks (a client such as Neovim) the hover has the outcome but no command link', async (t) => {
  if (needsRule(t)) return;
  for (const options of [{ commandLinks: false }, undefined, { commandLinks: 'yes' }]) {
    const client = new TestClient();
    try {
      await client.initialize(options);
      const u = uri('no-links.c');
      await client.open(u, BAD);
      const d = ofRule((await client.diagnosticsFor(u, 1)).diagnostics)[0];
      const value = ((await client.hover(u, d.range.start))!.contents as MarkupContent).value;
      assert.match(value, /\*\*Outcome \(model\):\*\* /, value);
      assert.ok(!value.includes('command:'), `${JSON.stringify(options)}: ${value}`);
      // The request itself still works: a client can call it directly.
      assert.ok(await client.conn.sendRequest('dmalens/explain', { uri: u, rule: RULE, range: d.range }));
    } finally {
      client.kill();
    }
  }
});

test('a server that cannot load its parser says so and stays alive', async (t) => {
  const bundle = path.join(REPO, 'server', 'dist', 'server.js');
  if (!fs.existsSync(bundle)) {
    t.skip('needs the bundle (npm run build)');
    return;
  }
  // The bundle alone, without the wasm files beside it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-nowasm-'));
  const lonely = path.join(dir, 'server.js');
  fs.copyFileSync(bundle, lonely);
  const client = new TestClient('dist', lonely);
  try {
    await client.initialize();
    const u = uri('nowasm.c');
    await client.open(u, BAD);
    const deadline = Date.now() + 10000;
    while (!client.logs.some((l) => l.startsWith('[shown]')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(client.logs.some((l) => /cannot start the analyser/.test(l)), JSON.stringify(client.logs));
    assert.ok(client.logs.some((l) => /^\[shown\] DMA Lens cannot analyse files/.test(l)), JSON.stringify(client.logs));
    const info = await client.documentInfo(u);
    assert.equal(info.version, 1);
    assert.equal(await client.stop(), 0);
  } finally {
    client.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
