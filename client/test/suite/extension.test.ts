/**
 * The five end-to-end checks through the VS Code API (see ./index.ts):
 * diagnostics and hover on a driver file, the model's run panel, patch
 * review with its CodeLens, a quick fix, and a setting that disables a rule;
 * then hostile input (review/hostile.mbx): the hover's markdown keeps HTML,
 * a command link and bidi controls as escaped text.
 * A test returns a string to say it was skipped, and why.
 */
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { probeCapabilities } from './probe';

export interface SuiteTest {
  name: string;
  timeoutMs: number;
  fn: () => Promise<void | string>;
}

const DRIVER = 'drivers/gpu/acme_dmabuf_import.c';
const P2P_DRIVER = 'drivers/pci/acme_p2p.c';
const SERIES = 'patches/v3_20250310_jane_doe_drm_acme_fast_paths.mbx';
const FIXTURE_SERIES = 'review/acme-v2.mbx';
const HOSTILE = 'review/hostile.mbx';

function env(k: string): string {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (scripts/test-vscode.js sets it)`);
  return v;
}
const repo = () => env('DMALENS_TEST_REPO');
const ws = () => env('DMALENS_TEST_WS');
const uriOf = (rel: string) => vscode.Uri.file(path.join(ws(), rel));

async function waitFor<T>(what: string, get: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await get();
    if (v !== undefined) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function ruleOf(d: vscode.Diagnostic): string {
  const c = d.code;
  return typeof c === 'object' && c !== null ? String(c.value) : String(c);
}

function findings(uri: vscode.Uri): vscode.Diagnostic[] {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'DMA Lens');
}

/** `line RULE` (1-based) that examples/README.md lists for a driver file. */
function readme(file: string): string[] {
  const text = fs.readFileSync(path.join(repo(), 'examples', 'README.md'), 'utf8');
  const out: string[] = [];
  let current = '';
  for (const l of text.split('\n')) {
    const h = /^### (\S+)\s*$/.exec(l);
    if (h) current = h[1];
    const row = /^\|\s*(\d+)\s*\|\s*([A-Z0-9-]+)\s*\|/.exec(l);
    if (row && current === file) out.push(`${row[1]} ${row[2]}`);
  }
  return out.sort();
}

function summaries(): Map<string, string> {
  // The rule summaries the hover shows, from the command line of the same build.
  const out = execFileSync(process.execPath, [path.join(repo(), 'server', 'bin', 'dmalens.js'), 'rules', '--format', 'json'], {
    encoding: 'utf8',
    env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
  });
  return new Map((JSON.parse(out).rules as { id: string; summary: string }[]).map((r) => [r.id, r.summary]));
}

async function open(rel: string): Promise<vscode.TextDocument> {
  const doc = await vscode.workspace.openTextDocument(uriOf(rel));
  await vscode.window.showTextDocument(doc, { preview: false });
  return doc;
}

async function hoverText(uri: vscode.Uri, pos: vscode.Position): Promise<string> {
  const hovers = (await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', uri, pos)) ?? [];
  return hovers
    .flatMap((h) => h.contents)
    .map((c) => (typeof c === 'string' ? c : 'value' in c ? c.value : ''))
    .join('\n')
    .replace(/\\(.)/g, '$1'); // markdown escapes
}

function webviewTabs(): vscode.Tab[] {
  return vscode.window.tabGroups.all.flatMap((g) => g.tabs).filter((t) => t.input instanceof vscode.TabInputWebview);
}

let capabilities: Promise<Record<string, unknown>> | undefined;
const caps = () => (capabilities ??= probeCapabilities(path.join(repo(), 'server', 'dist', 'server.js')));

export const tests: SuiteTest[] = [
  {
    name: '1. a driver file: diagnostics on the expected lines, the hover',
    timeoutMs: 90_000,
    fn: async () => {
      const doc = await open(DRIVER);
      const want = readme(DRIVER);
      const got = await waitFor('the DMA Lens diagnostics', () => {
        const f = findings(doc.uri);
        return f.length >= want.length ? f : undefined;
      }, 60_000);
      assert.deepEqual(got.map((d) => `${d.range.start.line + 1} ${ruleOf(d)}`).sort(), want);
      const errptr = got.find((d) => ruleOf(d) === 'DMABUF-ERRPTR')!;
      const hover = await hoverText(doc.uri, errptr.range.start);
      assert.match(hover, /\*\*DMABUF-ERRPTR\*\*/);
      assert.ok(hover.includes(summaries().get('DMABUF-ERRPTR')!), `the hover shows the rule's summary:\n${hover}`);
      assert.match(hover, /Show the model's run\]\(command:dmalens\.showRun/);
    },
  },
  {
    name: "2. dmalens.showRun (the hover's link) opens the run's panel",
    timeoutMs: 60_000,
    fn: async () => {
      for (const [rel, rule] of [
        [DRIVER, 'DMABUF-ERRPTR'],
        [P2P_DRIVER, 'P2P-DISTANCE-UNCHECKED'],
      ]) {
        const doc = await open(rel);
        const d = await waitFor(`${rule} in ${rel}`, () => findings(doc.uri).find((x) => ruleOf(x) === rule));
        const r = d.range;
        await vscode.commands.executeCommand('dmalens.showRun', doc.uri.toString(), rule, {
          start: { line: r.start.line, character: r.start.character },
          end: { line: r.end.line, character: r.end.character },
        });
        await waitFor(`the "${rule} run" panel`, () => webviewTabs().find((t) => t.label.includes(`${rule} run`)), 20_000);
      }
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    },
  },
  {
    name: '3. patch mail: findings on the added lines, a CodeLens per patch',
    timeoutMs: 90_000,
    fn: async () => {
      if (!(await caps()).codeLensProvider) return 'the server has no codeLensProvider: patch review has not landed';
      for (const rel of [SERIES, FIXTURE_SERIES]) {
        const doc = await open(rel);
        assert.equal(doc.languageId, 'kernel-mail', `${rel} opens as kernel-mail`);
        const got = await waitFor(`the DMA Lens diagnostics of ${rel}`, () => {
          const f = findings(doc.uri);
          return f.length ? f : undefined;
        }, 60_000);
        for (const d of got) {
          const line = doc.lineAt(d.range.start.line).text;
          assert.ok(line.startsWith('+'), `${ruleOf(d)} on an added line: ${d.range.start.line + 1}: ${line}`);
        }
        const lenses = await waitFor('the CodeLens', async () => {
          const l = (await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri, 10)) ?? [];
          const titles = l.map((x) => x.command?.title ?? '').filter((t) => /DMA Lens finding/.test(t));
          return titles.length ? titles : undefined;
        });
        const counted = lenses.reduce((n, t) => n + (Number(/^(\d+) /.exec(t)?.[1]) || 0), 0);
        assert.equal(counted, got.length, `the CodeLens count the findings: ${JSON.stringify(lenses)}`);
      }
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    },
  },
  {
    name: '4. the quick fix for DMABUF-ERRPTR changes the text and the finding goes',
    timeoutMs: 60_000,
    fn: async () => {
      if (!(await caps()).codeActionProvider) return 'the server has no codeActionProvider: quick fixes have not landed';
      const doc = await open(DRIVER);
      const d = await waitFor('DMABUF-ERRPTR', () => findings(doc.uri).find((x) => ruleOf(x) === 'DMABUF-ERRPTR'));
      const actions =
        (await vscode.commands.executeCommand<(vscode.CodeAction | vscode.Command)[]>(
          'vscode.executeCodeActionProvider',
          doc.uri,
          d.range,
          vscode.CodeActionKind.QuickFix.value,
        )) ?? [];
      const fix = actions.find((a): a is vscode.CodeAction => 'edit' in a && /IS_ERR/.test(a.title));
      assert.ok(fix?.edit, `a quick fix with IS_ERR: ${JSON.stringify(actions.map((a) => a.title))}`);
      assert.ok(await vscode.workspace.applyEdit(fix.edit!));
      assert.match(doc.lineAt(d.range.start.line).text, /if \(IS_ERR\(attach\)\)/);
      await waitFor('DMABUF-ERRPTR to go', () => (findings(doc.uri).some((x) => ruleOf(x) === 'DMABUF-ERRPTR') ? undefined : true));
      assert.ok(findings(doc.uri).some((x) => ruleOf(x) === 'DMABUF-LOCKING'), 'the other findings stay');
      await vscode.commands.executeCommand('workbench.action.files.revert');
    },
  },
  {
    name: '5. dmalens.rules.disabled removes the rule\'s findings without a restart',
    timeoutMs: 60_000,
    fn: async () => {
      const rule = 'DMABUF-SG-PAGE';
      const doc = await open(DRIVER);
      // The file as committed (step 4 reverted its fix): wait until the diagnostics say so.
      const want = readme(DRIVER);
      await waitFor('the diagnostics of the file as committed', () => {
        const got = findings(doc.uri).map((d) => `${d.range.start.line + 1} ${ruleOf(d)}`).sort();
        return JSON.stringify(got) === JSON.stringify(want) ? true : undefined;
      });
      const others = findings(doc.uri).filter((x) => ruleOf(x) !== rule).length;
      const config = vscode.workspace.getConfiguration('dmalens', doc.uri);
      await config.update('rules.disabled', [rule], vscode.ConfigurationTarget.WorkspaceFolder);
      try {
        await waitFor(`${rule} to go`, () => (findings(doc.uri).some((x) => ruleOf(x) === rule) ? undefined : true));
        assert.equal(findings(doc.uri).length, others, 'the other findings stay');
      } finally {
        await config.update('rules.disabled', undefined, vscode.ConfigurationTarget.WorkspaceFolder);
      }
      await waitFor(`${rule} to come back`, () => findings(doc.uri).find((x) => ruleOf(x) === rule));
    },
  },
  {
    name: '6. hostile input: the hover keeps HTML, a command link and bidi controls as escaped text',
    timeoutMs: 60_000,
    fn: async () => {
      if (!(await caps()).codeLensProvider) return 'the server has no codeLensProvider: patch review has not landed';
      const doc = await open(HOSTILE);
      const d = await waitFor(`DMABUF-ERRPTR in ${HOSTILE}`, () => findings(doc.uri).find((x) => ruleOf(x) === 'DMABUF-ERRPTR'), 60_000);
      const hovers = (await vscode.commands.executeCommand<vscode.Hover[]>('vscode.executeHoverProvider', doc.uri, d.range.start)) ?? [];
      const parts = hovers.flatMap((h) => h.contents).filter((c): c is vscode.MarkdownString => typeof c === 'object' && 'value' in c);
      assert.ok(parts.length > 0, 'a hover answers');
      const raw = parts.map((c) => c.value).join('\n');
      // The text arrives, escaped: no raw tag, no markdown link but the run's, no raw bidi override.
      assert.match(raw, /Patch: /, `the hover names the patch:\n${raw}`);
      assert.doesNotMatch(raw, /<\s*(script|img|\/script)/i, 'no raw HTML tag');
      assert.match(raw, /&lt;script&gt;alert\\\(1\\\)&lt;\/script&gt;/, `<script> arrives as entities:\n${raw}`);
      assert.doesNotMatch(raw, /\]\(command:(?!dmalens\.showRun\?)/, 'no command link but dmalens.showRun');
      assert.doesNotMatch(raw, /\u202e/, 'no raw U+202E');
      for (const c of parts) {
        assert.notEqual(c.isTrusted, true, 'the hover is never trusted as a whole');
        assert.ok(!c.supportHtml, 'HTML stays off');
      }
      // The unescaped text reads as the patch wrote it.
      const shown = raw.replace(/\\(.)/g, '$1').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
      for (const h of ['<script>alert(1)</script>', '<img src=x onerror=alert(1)>', '[x](command:workbench.action.terminal.new)', '\\u202e']) {
        assert.ok(shown.includes(h), `the hover shows ${JSON.stringify(h)}:\n${shown}`);
      }
      await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    },
  },
];
