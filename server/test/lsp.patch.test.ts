/**
 * Patch review in the language server, over stdio with the real server: a b4
 * series opened as kernel-mail (diagnostics on the added lines, CodeLenses
 * per Subject line, hovers, the model's runs located in the patch text, the
 * drafted reply), a git diff as plain text, broken patches, and whole-file
 * mode over a workspace folder holding the tree (trusted, untrusted,
 * `dmalens.patch.showExisting`).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DiagnosticSeverity, type CodeLens, type Diagnostic, type MarkupContent } from 'vscode-languageserver/node';
import { Analyzer } from '../src/core/analyzer';
import { loadWasm } from '../src/node/assets';
import { draftReply } from '../src/patch/reply';
import { reviewPatchText } from '../src/patch/review';
import { REPO, TestClient } from './helpers/lspClient';

const FIX = path.join(REPO, 'server', 'test', 'fixtures', 'patch');
const TREE = path.join(FIX, 'tree');
const read = (name: string) => fs.readFileSync(path.join(FIX, name), 'utf8');

const SERIES = read('acme-v2.mbx');
const DIFF = read('acme-1.diff');

/** A patch that only adds a comment in acme_plane_cleanup(); acme_plane_prepare() above it has had sg_page() all along. */
const COMMENT_PATCH = [
  'diff --git a/drivers/gpu/drm/acme/acme_scanout.c b/drivers/gpu/drm/acme/acme_scanout.c',
  '--- a/drivers/gpu/drm/acme/acme_scanout.c',
  '+++ b/drivers/gpu/drm/acme/acme_scanout.c',
  '@@ -40,6 +40,7 @@ void acme_plane_cleanup(struct acme_plane *plane)',
  ' void acme_plane_cleanup(struct acme_plane *plane)',
  ' {',
  ' \tif (!plane->sgt)',
  ' \t\treturn;',
  ' ',
  '+\t/* The engine no longer scans out of this buffer. */',
  ' \tdma_buf_unmap_attachment_unlocked(plane->attach, plane->sgt,',
  '',
].join('\n');

function scratch(name: string): string {
  return pathToFileURL(path.join(REPO, '.cache', 'lsp-patch-test', name)).href;
}

/** A document "inside" the fixture tree (never written to disk: the server has its text from didOpen). */
function inTree(name: string): string {
  return pathToFileURL(path.join(TREE, name)).href;
}

const lines = (ds: Diagnostic[]) => ds.map((d) => `${d.code ?? '-'}@${d.range.start.line}:${d.range.start.character}`);
const findingsOf = (ds: Diagnostic[]) => ds.filter((d) => d.code !== undefined);
const hoverText = (h: { contents: unknown } | null) => (h ? (h.contents as MarkupContent).value : '');
/** A diagnostic's message as text (3.18 allows MarkupContent). */
const msg = (d: Diagnostic) => (typeof d.message === 'string' ? d.message : d.message.value);

interface ExplainAnswer {
  run: { rule: string; steps: { actor: string; action: string }[] };
  lines: ({ line: number; character: number; text: string } | null)[];
  version?: number;
}

interface DraftAnswer {
  text: string;
  findings: number;
  subject: string;
  patchIndex: number;
}

// 0-based lines in acme-v2.mbx: the two findings of patch 1/3, the one of 2/3; the Subject lines.
const LOCK_LINE = 93;
const SG_LINE = 113;
const P2P_LINE = 172;
const SUBJECT_LINES = [38, 138, 183];

describe('patch review in the language server', () => {
  let client: TestClient;

  before(async () => {
    client = new TestClient();
    const init = await client.initialize({ commandLinks: true });
    assert.deepEqual(init.capabilities.codeLensProvider, { resolveProvider: false });
  });

  after(() => client.kill());

  test('a b4 series as kernel-mail: findings on the added lines, exactly', async () => {
    const u = scratch('acme-v2.mbx');
    await client.open(u, SERIES, 1, 'kernel-mail');
    const p = await client.diagnosticsFor(u, 1);
    assert.deepEqual(lines(p.diagnostics), [`DMABUF-LOCKING@${LOCK_LINE}:8`, `DMABUF-SG-PAGE@${SG_LINE}:21`, `P2P-DISTANCE-BOOL@${P2P_LINE}:5`]);
    const [lock, sg, p2p] = p.diagnostics;
    assert.equal(lock.severity, DiagnosticSeverity.Error);
    assert.equal(sg.severity, DiagnosticSeverity.Error);
    // Judged from the hunk alone (the function starts above it): at most a warning.
    assert.equal(p2p.severity, DiagnosticSeverity.Warning);
    const text = (d: Diagnostic) => SERIES.split('\n')[d.range.start.line].slice(d.range.start.character, d.range.end.character);
    assert.equal(text(lock), 'dma_buf_map_attachment(imp->attach, DMA_BIDIRECTIONAL)');
    assert.equal(text(sg), 'sg_page(sg)');
    // The SG-PAGE finding points at the import, a line of the same patch.
    assert.deepEqual(sg.relatedInformation?.map((r) => [r.location.uri, r.location.range.start.line]), [[u, LOCK_LINE]]);
    const info = await client.documentInfo(u);
    assert.equal(info.languageId, 'kernel-mail');
    assert.equal(info.findings, 3);
  });

  test('a CodeLens per patch on its Subject line, counting its findings; none on the cover letter', async () => {
    const u = scratch('lens.mbx');
    await client.open(u, SERIES, 1, 'kernel-mail');
    const p = await client.diagnosticsFor(u, 1);
    const lenses: CodeLens[] = await client.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: u } });
    assert.deepEqual(
      lenses.map((l) => [l.range.start.line, l.range.start.character, l.command?.title, l.command?.command]),
      [
        [SUBJECT_LINES[0], 0, '2 DMA Lens findings', 'dmalens.listPatchFindings'],
        [SUBJECT_LINES[1], 0, '1 DMA Lens finding', 'dmalens.listPatchFindings'],
        [SUBJECT_LINES[2], 0, 'no DMA Lens findings', 'dmalens.listPatchFindings'],
      ],
    );
    assert.ok(SERIES.split('\n')[SUBJECT_LINES[0]].startsWith('Subject: [PATCH v2 1/3]'));
    // The command's arguments: the document, the lens position, and the findings' locations (the diagnostics' ranges).
    const [uri, position, locations] = lenses[0].command!.arguments!;
    assert.equal(uri, u);
    assert.deepEqual(position, { line: SUBJECT_LINES[0], character: 0 });
    assert.deepEqual(locations, p.diagnostics.slice(0, 2).map((d) => ({ uri: u, range: d.range })));
    assert.deepEqual(lenses[2].command!.arguments![2], []);
  });

  test('hover on a patch finding: rule, model outcome, the place in the patched file', async () => {
    const u = scratch('hover.mbx');
    await client.open(u, SERIES, 1, 'kernel-mail');
    await client.diagnosticsFor(u, 1);
    const h = await client.hover(u, { line: LOCK_LINE, character: 12 });
    const md = hoverText(h);
    assert.match(md, /^\*\*DMABUF\\-LOCKING\*\* \(error\)/);
    assert.match(md, /\*\*Outcome \(model\):\*\*/);
    assert.match(md, /\[Show the model's run\]\(command:dmalens\.showRun\?/);
    assert.match(md, /In the patched file: drivers\/gpu\/drm\/acme\/acme\\_dmabuf\\\.c:80/);
    assert.match(md, /Judged from the hunks alone/);
    assert.match(md, /Patch: drm\/acme\\: keep the pages of imported buffers for CPU readback/);
    assert.deepEqual(h!.range, { start: { line: LOCK_LINE, character: 8 }, end: { line: LOCK_LINE, character: 62 } });
    const partial = hoverText(await client.hover(u, { line: P2P_LINE, character: 10 }));
    assert.match(partial, /the function is not entirely in the patch/);
    assert.equal(await client.hover(u, { line: 1, character: 3 }), null);
  });

  test('dmalens/explain on a patch finding: a run whose located steps are lines of the patch', async () => {
    const u = scratch('explain.mbx');
    await client.open(u, SERIES, 1, 'kernel-mail');
    const p = await client.diagnosticsFor(u, 1);
    const lock = p.diagnostics[0];
    const r: ExplainAnswer | null = await client.conn.sendRequest('dmalens/explain', { uri: u, rule: 'DMABUF-LOCKING', range: lock.range });
    assert.ok(r, 'a run');
    assert.equal(r.run.rule, 'DMABUF-LOCKING');
    assert.equal(r.version, 1);
    assert.equal(r.lines.length, r.run.steps.length);
    const located = r.lines.filter((l): l is NonNullable<typeof l> => l !== null);
    assert.ok(located.length > 0, 'some steps come from the patch');
    const patchLines = SERIES.split('\n');
    for (const l of located) {
      assert.equal(l.text, patchLines[l.line], 'the step line is a line of the patch file');
      // Inside patch 1/3's message (lines 38..137), on a hunk line.
      assert.ok(l.line >= 38 && l.line < 137, `step at line ${l.line}`);
      assert.match(l.text, /^[ +]/);
    }
    assert.ok(located.some((l) => l.line === LOCK_LINE && l.character === 8), JSON.stringify(located));
  });

  test('dmalens/draftReply: the LKML reply to the patch under the cursor', async () => {
    const u = scratch('reply.mbx');
    await client.open(u, SERIES, 1, 'kernel-mail');
    await client.diagnosticsFor(u, 1);
    const r: DraftAnswer | null = await client.conn.sendRequest('dmalens/draftReply', { uri: u, position: { line: LOCK_LINE, character: 0 } });
    assert.ok(r);
    assert.equal(r.findings, 2);
    assert.equal(r.patchIndex, 1);
    assert.equal(r.subject, 'drm/acme: keep the pages of imported buffers for CPU readback');
    // Exactly what the engine drafts for that patch.
    const review = reviewPatchText(SERIES, await Analyzer.create(loadWasm()));
    assert.equal(r.text, draftReply(review.patches[1], review.patches[1].findings, SERIES));
    assert.match(r.text, /^To: Jane Doe <jane\.doe@acme\.example>\n/);
    assert.match(r.text, /\nSubject: Re: \[PATCH v2 1\/3\] drm\/acme: keep the pages of imported buffers for CPU readback\n/);
    assert.match(r.text, /\nIn-Reply-To: <20250114092133\.4172-2-jane\.doe@acme\.example>\n/);
    assert.match(r.text, /\n> \+\tsgt = dma_buf_map_attachment\(imp->attach, DMA_BIDIRECTIONAL\);\n\nDMABUF-LOCKING \(error\): /);
    // The cover letter and the clean fix: replies with nothing to say.
    const cover: DraftAnswer = await client.conn.sendRequest('dmalens/draftReply', { uri: u, position: { line: 3, character: 0 } });
    assert.deepEqual([cover.patchIndex, cover.findings], [0, 0]);
    const fix: DraftAnswer = await client.conn.sendRequest('dmalens/draftReply', { uri: u, position: { line: SUBJECT_LINES[2] + 30, character: 0 } });
    assert.deepEqual([fix.patchIndex, fix.findings], [3, 0]);
    // Malformed parameters: an InvalidParams error; an unknown document: null.
    await assert.rejects(client.conn.sendRequest('dmalens/draftReply', { uri: u }), /expected \{uri, position\}/);
    assert.equal(await client.conn.sendRequest('dmalens/draftReply', { uri: scratch('nope.mbx'), position: { line: 0, character: 0 } }), null);
  });

  test('a git diff in a plain-text document is reviewed; other plain text is left alone', async () => {
    const u = scratch('Untitled-1');
    await client.open(u, DIFF, 1, 'plaintext');
    const p = await client.diagnosticsFor(u, 1);
    assert.deepEqual(lines(p.diagnostics), ['DMABUF-LOCKING@28:8', 'DMABUF-SG-PAGE@48:21']);
    // A plain diff has no Subject: its lens is on its first line.
    const lenses: CodeLens[] = await client.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: u } });
    assert.deepEqual(lenses.map((l) => [l.range.start.line, l.command?.title]), [[0, '2 DMA Lens findings']]);

    const prose = scratch('notes.txt');
    await client.open(prose, 'Remember: dma_buf_map_attachment() needs the lock.\n'.repeat(3), 1, 'plaintext');
    const q = await client.diagnosticsFor(prose, 1);
    assert.deepEqual(q.diagnostics, []);
    assert.deepEqual([(await client.documentInfo(prose)).analysed, (await client.documentInfo(prose)).analysedVersion], [false, undefined]);
    assert.equal((await client.documentInfo(u)).analysed, true);
    // A reply being drafted ("Subject: Re: [PATCH ...]" with quoted lines) looks like mail but holds no diff: nothing.
    const reply = scratch('Untitled-2');
    await client.open(reply, 'To: a@b.example\nSubject: Re: [PATCH] x\n\n> +\tfoo();\n\nLooks wrong.\n', 1, 'plaintext');
    assert.deepEqual((await client.diagnosticsFor(reply, 1)).diagnostics, []);
    assert.deepEqual(await client.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: reply } }), []);
  });

  test('a broken patch gets diagnostics, and the server carries on', async () => {
    const u = scratch('broken.diff');
    const cut = DIFF.split('\n').slice(0, 40).join('\n') + '\n';
    await client.open(u, cut, 1, 'diff');
    const p = await client.diagnosticsFor(u, 1);
    const broken = p.diagnostics.filter((d) => d.code === undefined);
    assert.equal(broken.length, 1, JSON.stringify(p.diagnostics));
    assert.equal(broken[0].severity, DiagnosticSeverity.Error);
    assert.match(msg(broken[0]), /the text ends inside the hunk @@ -66,24 \+67,40 @@/);
    assert.equal(broken[0].source, 'DMA Lens');
    // What could be read is still reviewed.
    assert.deepEqual(lines(findingsOf(p.diagnostics)), ['DMABUF-LOCKING@28:8']);

    const junk = scratch('junk.diff');
    await client.open(junk, '@@ -1,3 +1,4 @@\n+\u0000\u202e}}}{{{\n-\n@@ nonsense\n', 1, 'diff');
    const j = await client.diagnosticsFor(junk, 1);
    assert.ok(j.diagnostics.length >= 1);
    assert.ok(j.diagnostics.every((d) => d.code === undefined));
    const empty = scratch('empty.patch');
    await client.open(empty, '', 1, 'diff');
    assert.match(msg((await client.diagnosticsFor(empty, 1)).diagnostics[0]), /the file is empty/);
    // Still alive.
    assert.match(hoverText(await client.hover(u, { line: 28, character: 10 })), /DMABUF-LOCKING/);
    assert.equal(client.proc.exitCode, null);
  });

  test('editing a patch updates its diagnostics and lenses', async () => {
    const u = scratch('edit.diff');
    await client.open(u, DIFF, 1, 'diff');
    await client.diagnosticsFor(u, 1);
    // The added sg_page() line (48, 0-based) becomes a harmless one.
    await client.change(u, 2, [{ range: { start: { line: 48, character: 0 }, end: { line: 49, character: 0 } }, text: '+\t\timp->pages[n++] = NULL;\n' }]);
    const lenses: CodeLens[] = await client.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: u } });
    assert.deepEqual(lenses.map((l) => l.command?.title), ['1 DMA Lens finding']);
    const p = await client.diagnosticsFor(u, 2);
    assert.deepEqual(lines(p.diagnostics), ['DMABUF-LOCKING@28:8']);
  });
});

test('a client with codeLens refreshSupport is asked to refresh when an analysis changes the counts', async () => {
  const c = new TestClient();
  try {
    let refreshes = 0;
    c.conn.onRequest('workspace/codeLens/refresh', () => {
      refreshes++;
      return null;
    });
    await c.conn.sendRequest('initialize', {
      processId: process.pid,
      rootUri: null,
      workspaceFolders: null,
      capabilities: { workspace: { codeLens: { refreshSupport: true } } },
    });
    await c.conn.sendNotification('initialized', {});
    const u = scratch('refresh.diff');
    await c.open(u, DIFF, 1, 'diff');
    await c.diagnosticsFor(u, 1);
    const lenses: CodeLens[] = await c.conn.sendRequest('textDocument/codeLens', { textDocument: { uri: u } });
    assert.equal(lenses[0].command?.title, '2 DMA Lens findings');
    // The same counts after an edit: no refresh; the sg_page() line made harmless: one.
    await c.change(u, 2, [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, text: '' }]);
    await c.diagnosticsFor(u, 2);
    await c.change(u, 3, [{ range: { start: { line: 48, character: 0 }, end: { line: 49, character: 0 } }, text: '+\t\timp->pages[n++] = NULL;\n' }]);
    await c.diagnosticsFor(u, 3);
    for (let i = 0; i < 50 && refreshes === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(refreshes, 1);
  } finally {
    c.kill();
  }
});

describe('patch review over a workspace that holds the tree', () => {
  let client: TestClient;

  before(async () => {
    client = new TestClient();
    await client.initialize({ commandLinks: true }, [{ uri: pathToFileURL(TREE).href, name: 'tree' }]);
  });

  after(() => client.kill());

  test('whole-file mode: the same findings, judged with the whole file', async () => {
    const u = inTree('acme-v2.mbx');
    await client.open(u, SERIES, 1, 'kernel-mail');
    const p = await client.diagnosticsFor(u, 1);
    assert.deepEqual(lines(p.diagnostics), [`DMABUF-LOCKING@${LOCK_LINE}:8`, `DMABUF-SG-PAGE@${SG_LINE}:21`, `P2P-DISTANCE-BOOL@${P2P_LINE}:5`]);
    const md = hoverText(await client.hover(u, { line: P2P_LINE, character: 10 }));
    assert.match(md, /Analysed with the whole file, the patch applied\./);
    assert.match(md, /In the patched file: drivers\/gpu\/drm\/acme\/acme\\_p2p\\\.c:33/);
  });

  test('a patch that does not apply to the tree: a warning at its hunk, and hunk mode', async () => {
    const u = inTree('p2p-longline-qp.patch');
    await client.open(u, read('p2p-longline-qp.patch'), 1, 'diff');
    const p = await client.diagnosticsFor(u, 1);
    const problems = p.diagnostics.filter((d) => d.code === undefined);
    assert.equal(problems.length, 1, JSON.stringify(p.diagnostics));
    assert.equal(problems[0].range.start.line, 21);
    assert.equal(problems[0].severity, DiagnosticSeverity.Warning);
    assert.match(msg(problems[0]), /hunk 1 \(@@ -29,10 \+29,7 @@\) does not apply/);
    assert.deepEqual(lines(findingsOf(p.diagnostics)), ['P2P-DISTANCE-BOOL@33:24']);
  });

  test('dmalens.patch.showExisting: the tree\'s own findings, marked, at the hunk header', async () => {
    const u = inTree('comment.patch');
    await client.open(u, COMMENT_PATCH, 1, 'diff');
    assert.deepEqual((await client.diagnosticsFor(u, 1)).diagnostics, []);
    const since = client.published.length;
    client.settings = { patch: { showExisting: true } };
    await client.configurationChanged();
    const p = await client.waitForDiagnostics((x) => x.uri === u && x.diagnostics.length > 0, 15000, since);
    const sg = p.diagnostics.filter((d) => d.code === 'DMABUF-SG-PAGE');
    assert.ok(sg.length >= 1, JSON.stringify(p.diagnostics));
    const atSgPage = sg.find((d) => /at line 31,/.test(msg(d)));
    assert.ok(atSgPage, JSON.stringify(sg));
    assert.equal(atSgPage.range.start.line, 3, 'on the hunk header');
    assert.match(msg(atSgPage), /^In drivers\/gpu\/drm\/acme\/acme_scanout\.c at line 31, which this patch does not show: sg_page\(\)/);
    assert.match(msg(atSgPage), /\(This was already so before the patch\.\)$/);
    client.settings = {};
    await client.configurationChanged();
  });

  test('a workspace without the patch\'s files: hunk mode, and no note per file', async () => {
    const other = new TestClient();
    try {
      await other.initialize({}, [{ uri: pathToFileURL(path.join(FIX, '..', 'topology')).href, name: 'elsewhere' }]);
      const u = pathToFileURL(path.join(FIX, '..', 'topology', 'acme-1.diff')).href;
      await other.open(u, DIFF, 1, 'diff');
      const p = await other.diagnosticsFor(u, 1);
      assert.deepEqual(lines(p.diagnostics), ['DMABUF-LOCKING@28:8', 'DMABUF-SG-PAGE@48:21']);
    } finally {
      other.kill();
    }
  });

  test('an untrusted workspace: the tree is not read', async () => {
    const other = new TestClient();
    try {
      await other.initialize({ trusted: false }, [{ uri: pathToFileURL(TREE).href, name: 'tree' }]);
      const u = inTree('untrusted.mbx');
      await other.open(u, SERIES, 1, 'kernel-mail');
      await other.diagnosticsFor(u, 1);
      const h = hoverText(await other.hover(u, { line: LOCK_LINE, character: 12 }));
      assert.match(h, /Judged from the hunks alone/);
    } finally {
      other.kill();
    }
  });
});
