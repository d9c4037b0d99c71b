/**
 * Code actions over the protocol (the real server, stdio): quick fixes on a
 * diagnostic with isPreferred on exactly one, applying a WorkspaceEdit clears
 * the diagnostic, "fix all" as a source action, "Explain with the model"
 * only for clients that run commands, and "Disable this rule" writing
 * `.dmalens.json` (created when missing; a minimal edit keeping comments
 * otherwise), whose per-file override then applies.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import {
  CodeActionRequest,
  DidChangeWatchedFilesNotification,
  InitializedNotification,
  InitializeRequest,
  type CodeAction,
  type Command,
  type Diagnostic,
  type TextDocumentEdit,
  type TextEdit,
  type WorkspaceEdit,
} from 'vscode-languageserver/node';
import { TextDocument } from 'vscode-languageserver-textdocument';
import { parseProjectConfig } from '../src/core/config';
import { unifiedDiff } from '../src/fixes';
import { RULES } from '../src/rules/registry';
import { TestClient } from './helpers/lspClient';

const FIXTURES = path.resolve(__dirname, '../../test/fixtures/rules');
const KNOWN = new Set(RULES.map((r) => r.id));

let root: string;

async function start(commandLinks: boolean): Promise<TestClient> {
  const c = new TestClient();
  await c.conn.sendRequest(InitializeRequest.type, {
    processId: process.pid,
    rootUri: pathToFileURL(root).href,
    workspaceFolders: [{ uri: pathToFileURL(root).href, name: 'ws' }],
    initializationOptions: { commandLinks, trusted: true },
    capabilities: {
      workspace: {
        configuration: true,
        workspaceEdit: { documentChanges: true, resourceOperations: ['create'] },
        didChangeWatchedFiles: { dynamicRegistration: false },
      },
      textDocument: {
        synchronization: { dynamicRegistration: false },
        publishDiagnostics: { relatedInformation: true, versionSupport: true, dataSupport: true },
        codeAction: { codeActionLiteralSupport: { codeActionKind: { valueSet: ['quickfix', 'source', 'source.fixAll'] } }, isPreferredSupport: true },
      },
    },
  });
  await c.conn.sendNotification(InitializedNotification.type, {});
  return c;
}

function write(rel: string, text: string): string {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return pathToFileURL(p).href;
}

function actions(list: (CodeAction | Command)[] | null): CodeAction[] {
  return (list ?? []).filter((a): a is CodeAction => 'kind' in a || 'edit' in a || 'isPreferred' in a || 'diagnostics' in a);
}

/** The edits of a WorkspaceEdit for one document. */
function editsFor(edit: WorkspaceEdit | undefined, uri: string): TextEdit[] {
  if (!edit) return [];
  const out: TextEdit[] = [];
  for (const c of edit.documentChanges ?? []) if ('textDocument' in c && c.textDocument.uri === uri) out.push(...(c as TextDocumentEdit).edits.filter((e): e is TextEdit => 'range' in e));
  out.push(...(edit.changes?.[uri] ?? []));
  return out;
}

function apply(text: string, edits: TextEdit[]): string {
  return TextDocument.applyEdits(TextDocument.create('x', 'c', 0, text), edits);
}

function ofRule(ds: Diagnostic[], rule: string): Diagnostic[] {
  return ds.filter((d) => d.code === rule);
}

before(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'dmalens-actions-'));
});

after(() => {
  fs.rmSync(root, { recursive: true, force: true });
});

describe('code actions', () => {
  let c: TestClient;
  before(async () => {
    c = await start(true);
  });
  after(async () => {
    await c.stop();
  });

  test('quick fixes on a diagnostic: one preferred; applying it clears the diagnostic', async () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'DMABUF-ERRPTR/bad-null-checks.c'), 'utf8');
    const uri = write('drivers/acme/isp.c', text);
    await c.open(uri, text, 1);
    const pub = await c.diagnosticsFor(uri, 1);
    const diags = ofRule(pub.diagnostics, 'DMABUF-ERRPTR');
    assert.equal(diags.length, 3);
    const d = diags[1];
    const got = actions(await c.conn.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range: d.range, context: { diagnostics: [d] } }));
    const fixes = got.filter((a) => a.kind === 'quickfix' && a.edit && editsFor(a.edit, uri).length);
    assert.ok(fixes.length >= 1, JSON.stringify(got.map((a) => a.title)));
    assert.equal(got.filter((a) => a.isPreferred).length, 1, 'isPreferred on exactly one action');
    const preferred = fixes.find((a) => a.isPreferred)!;
    assert.match(preferred.title, /IS_ERR\(attach\) and return PTR_ERR\(attach\)/);
    assert.deepEqual(preferred.diagnostics?.map((x) => x.code), ['DMABUF-ERRPTR']);
    // Versioned edits of the analysed version.
    const tde = preferred.edit!.documentChanges![0] as TextDocumentEdit;
    assert.equal(tde.textDocument.version, 1);
    // Explain with the model: the hover link's command and arguments.
    const explain = got.find((a) => a.command?.command === 'dmalens.showRun');
    assert.ok(explain, 'no Explain action');
    assert.deepEqual(explain.command!.arguments, [uri, 'DMABUF-ERRPTR', d.range]);
    // Disabling: for the file and for the workspace, both through .dmalens.json.
    const disable = got.filter((a) => /^Disable DMABUF-ERRPTR/.test(a.title));
    assert.equal(disable.length, 2);

    const fixed = apply(text, editsFor(preferred.edit, uri));
    assert.match(fixed, /if \(IS_ERR\(attach\)\) \{[^\n]*\n\t\tret = PTR_ERR\(attach\);/);
    await c.change(uri, 2, [{ text: fixed }]);
    const after2 = await c.diagnosticsFor(uri, 2);
    assert.equal(ofRule(after2.diagnostics, 'DMABUF-ERRPTR').length, 2);
    assert.ok(!ofRule(after2.diagnostics, 'DMABUF-ERRPTR').some((x) => x.range.start.line === d.range.start.line));
    await c.close(uri);
  });

  test('fix all: one source.fixAll action applies every safe fix; per rule from a diagnostic', async () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'P2P-CPU-MEMCPY/bad-memset-memcpy.c'), 'utf8');
    const uri = write('drivers/acme/bridge.c', text);
    await c.open(uri, text, 1);
    const pub = await c.diagnosticsFor(uri, 1);
    const diags = ofRule(pub.diagnostics, 'P2P-CPU-MEMCPY');
    assert.equal(diags.length, 2);
    // From a diagnostic: a per-rule fix-all among the actions.
    const fromDiag = actions(await c.conn.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range: diags[0].range, context: { diagnostics: [diags[0]] } }));
    const perRule = fromDiag.find((a) => a.kind === 'source.fixAll.dmalens');
    assert.ok(perRule, JSON.stringify(fromDiag.map((a) => [a.kind, a.title])));
    assert.match(perRule.title, /Fix all DMA Lens P2P-CPU-MEMCPY findings in this file/);
    // On save: only source.fixAll -> exactly one action, for every rule.
    const all = actions(
      await c.conn.sendRequest(CodeActionRequest.type, {
        textDocument: { uri },
        range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } },
        context: { diagnostics: [], only: ['source.fixAll'] },
      }),
    );
    assert.equal(all.length, 1);
    assert.equal(all[0].kind, 'source.fixAll.dmalens');
    const fixed = apply(text, editsFor(all[0].edit, uri));
    assert.match(fixed, /memset_io\(\(void __iomem \*\)buf, 0, len\);/);
    assert.match(fixed, /memcpy_toio\(\(void __iomem \*\)buf, hdr, sizeof\(\*hdr\)\);/);
    await c.change(uri, 2, [{ text: fixed }]);
    const after2 = await c.diagnosticsFor(uri, 2);
    assert.deepEqual(ofRule(after2.diagnostics, 'P2P-CPU-MEMCPY'), []);
    // Only quickfix asked: no source action.
    const quick = actions(await c.conn.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range: diags[0].range, context: { diagnostics: [], only: ['quickfix'] } }));
    assert.ok(quick.every((a) => a.kind === 'quickfix'));
    await c.close(uri);
  });

  test('disable this rule: .dmalens.json is created, or edited keeping comments; the per-file override applies', async () => {
    const text = fs.readFileSync(path.join(FIXTURES, 'DMABUF-ERRPTR/bad-export-null.c'), 'utf8');
    const uri = write('drivers/acme/export.c', text);
    const configPath = path.join(root, '.dmalens.json');
    const configUri = pathToFileURL(configPath).href;
    fs.rmSync(configPath, { force: true });
    await c.conn.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: configUri, type: 3 }] });
    await c.open(uri, text, 1);
    const pub = await c.diagnosticsFor(uri, 1);
    const d = ofRule(pub.diagnostics, 'DMABUF-ERRPTR')[0];
    const ask = async () => actions(await c.conn.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range: d.range, context: { diagnostics: [d] } }));

    // No project file yet: the workspace action creates it.
    let got = await ask();
    const ws = got.find((a) => /^Disable DMABUF-ERRPTR for the workspace/.test(a.title))!;
    const dc = ws.edit!.documentChanges!;
    assert.deepEqual(dc[0], { kind: 'create', uri: configUri, options: { ignoreIfExists: true } });
    const created = apply('', editsFor(ws.edit, configUri));
    assert.deepEqual(parseProjectConfig(created, KNOWN).config.disabledRules, ['DMABUF-ERRPTR']);

    // An existing file with comments: a minimal edit.
    const existing = '{\n  // project settings for the acme drivers\n  "kernelVersion": "6.12",\n  "rules": { "disabled": [] }\n}\n';
    fs.writeFileSync(configPath, existing);
    await c.conn.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: configUri, type: 1 }] });
    got = await ask();
    const wsEdit = got.find((a) => /^Disable DMABUF-ERRPTR for the workspace/.test(a.title))!;
    assert.ok(!wsEdit.edit!.documentChanges!.some((x) => 'kind' in x), 'no create for an existing file');
    const wsText = apply(existing, editsFor(wsEdit.edit, configUri));
    assert.match(wsText, /\/\/ project settings for the acme drivers/);
    assert.deepEqual(parseProjectConfig(wsText, KNOWN).config.disabledRules, ['DMABUF-ERRPTR']);
    const fileEdit = got.find((a) => /^Disable DMABUF-ERRPTR for this file/.test(a.title))!;
    const fileText = apply(existing, editsFor(fileEdit.edit, configUri));
    assert.match(fileText, /\/\/ project settings for the acme drivers/);
    const parsed = parseProjectConfig(fileText, KNOWN);
    assert.deepEqual(parsed.problems, []);
    assert.deepEqual(parsed.config.overrides, [{ files: ['drivers/acme/export.c'], disabled: ['DMABUF-ERRPTR'], severity: {} }]);
    assert.deepEqual(parsed.config.disabledRules, []);

    // Saved: the override applies to this file (and the action is no longer offered).
    const since = c.published.length;
    fs.writeFileSync(configPath, fileText);
    await c.conn.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: configUri, type: 2 }] });
    // (An analysis scheduled by the earlier change may publish first: wait for the one without the rule.)
    const republished = await c.waitForDiagnostics((p) => p.uri === uri && p.version === 1 && ofRule(p.diagnostics, 'DMABUF-ERRPTR').length === 0, 15000, since);
    assert.ok(republished.diagnostics.length < pub.diagnostics.length);
    await c.close(uri);
    fs.rmSync(configPath, { force: true });
    await c.conn.sendNotification(DidChangeWatchedFilesNotification.type, { changes: [{ uri: configUri, type: 3 }] });
  });
});

describe('code actions in a patch', () => {
  test('a quick fix edits the added line of the patch', async () => {
    const c = await start(false);
    try {
      const post = fs.readFileSync(path.join(FIXTURES, 'P2P-DISTANCE-BOOL/bad-truthy-variable.c'), 'utf8');
      const pre = post.replace(/\tif \(dist\).*\n.*\n\telse\n.*\n/, '');
      const file = 'drivers/pci/acme/pipeline.c';
      const patch = `diff --git a/${file} b/${file}\nindex 1111111..2222222 100644\n` + unifiedDiff(file, pre, post);
      const uri = write('0001-acme-pick-the-path.patch', patch);
      await c.open(uri, patch, 1, 'diff');
      const d = ofRule((await c.diagnosticsFor(uri, 1)).diagnostics, 'P2P-DISTANCE-BOOL')[0];
      assert.ok(d, 'no finding in the patch');
      const got = actions(await c.conn.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range: d.range, context: { diagnostics: [d] } }));
      const fix = got.find((a) => a.isPreferred);
      assert.ok(fix, JSON.stringify(got.map((a) => a.title)));
      const fixed = apply(patch, editsFor(fix.edit, uri));
      assert.match(fixed, /^\+\tif \(dist >= 0\) \/\* expect: P2P-DISTANCE-BOOL \*\/$/m);
      await c.change(uri, 2, [{ text: fixed }]);
      assert.deepEqual(ofRule((await c.diagnosticsFor(uri, 2)).diagnostics, 'P2P-DISTANCE-BOOL'), []);
    } finally {
      await c.stop();
    }
  });
});

describe('code actions for a client without command links', () => {
  test('no Explain action', async () => {
    const c = await start(false);
    try {
      const text = fs.readFileSync(path.join(FIXTURES, 'MIG-FAULT-PAGE/bad-designated.c'), 'utf8');
      const uri = write('drivers/acme/dmem.c', text);
      await c.open(uri, text, 1);
      const d = ofRule((await c.diagnosticsFor(uri, 1)).diagnostics, 'MIG-FAULT-PAGE')[0];
      const got = actions(await c.conn.sendRequest(CodeActionRequest.type, { textDocument: { uri }, range: d.range, context: { diagnostics: [d] } }));
      assert.ok(!got.some((a) => a.command?.command === 'dmalens.showRun'));
      const pref = got.filter((a) => a.isPreferred);
      assert.equal(pref.length, 1);
      assert.match(pref[0].title, /args\.fault_page = vmf->page/);
    } finally {
      await c.stop();
    }
  });
});
