/**
 * The model's runs in VS Code: `dmalens.showRun` (from the command link in a
 * finding's hover: arguments uri, rule, range) and `dmalens.explainRule` (a
 * rule picked from a list: its reference run) ask the server for the run
 * (`dmalens/explain`) and show it in a webview panel rendered by the shared
 * renderer (server/src/view/runView.ts).
 *
 * The webview runs one nonce'd script whose only job is to post
 * `{command: 'reveal', line, column}` when a step's "file:line" link is
 * clicked. Messages are validated (numbers only) before use; the document to
 * reveal is the panel's own, never one named by the webview.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { BaseLanguageClient } from 'vscode-languageclient';
import type { Run } from '../../server/src/model/types';
import { renderRunHtml } from '../../server/src/view/runView';

export const SHOW_RUN_COMMAND = 'dmalens.showRun';
export const EXPLAIN_RULE_COMMAND = 'dmalens.explainRule';

/** What `dmalens/explain` answers (server/src/lsp/explain.ts). */
interface StepLine {
  line: number;
  character: number;
  text: string;
}
interface ExplainResult {
  run: Run;
  lines: (StepLine | null)[];
  version?: number;
}
interface ModelRule {
  id: string;
  summary?: string;
  severity?: string;
}

interface LspRange {
  start: { line: number; character: number };
  end: { line: number; character: number };
}

const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_INDEX = 100_000_000;

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= MAX_INDEX;
}

function isPosition(v: unknown): v is { line: number; character: number } {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return isIndex(p.line) && isIndex(p.character);
}

/** The arguments of `dmalens.showRun` (they come from a command link: check everything). */
export function parseShowRunArgs(args: readonly unknown[]): { uri: string; rule: string; range: LspRange } | undefined {
  const [uri, rule, range] = args;
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > 8192) return undefined;
  if (typeof rule !== 'string' || !RULE_ID.test(rule)) return undefined;
  if (typeof range !== 'object' || range === null) return undefined;
  const r = range as Record<string, unknown>;
  if (!isPosition(r.start) || !isPosition(r.end)) return undefined;
  return {
    uri,
    rule,
    range: {
      start: { line: r.start.line, character: r.start.character },
      end: { line: r.end.line, character: r.end.character },
    },
  };
}

/** A message from the webview: only `{command: 'reveal', line, column}` with sane numbers counts. */
export function parseRevealMessage(m: unknown): { line: number; column: number } | undefined {
  if (typeof m !== 'object' || m === null) return undefined;
  const o = m as Record<string, unknown>;
  if (o.command !== 'reveal' || !isIndex(o.line) || !isIndex(o.column)) return undefined;
  return { line: o.line, column: o.column };
}

function isExplainResult(v: unknown): v is ExplainResult {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  const run = r.run as Record<string, unknown> | undefined;
  return (
    typeof run === 'object' &&
    run !== null &&
    Array.isArray(run.steps) &&
    typeof run.outcome === 'object' &&
    run.outcome !== null &&
    Array.isArray(r.lines)
  );
}

function nonce(): string {
  return randomBytes(18).toString('base64');
}

function basename(uri: vscode.Uri): string {
  const p = uri.path;
  return p.slice(p.lastIndexOf('/') + 1) || uri.toString();
}

interface Shown {
  panel: vscode.WebviewPanel;
  /** The document the step links reveal (none for a reference run). */
  document?: vscode.Uri;
}

export class RunPanels implements vscode.Disposable {
  private readonly shown = new Map<string, Shown>();

  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly client: () => BaseLanguageClient | undefined,
    private readonly log: vscode.LogOutputChannel | undefined,
  ) {}

  register(): vscode.Disposable[] {
    return [
      vscode.commands.registerCommand(SHOW_RUN_COMMAND, (...args: unknown[]) => this.showRun(args)),
      vscode.commands.registerCommand(EXPLAIN_RULE_COMMAND, () => this.explainRule()),
      this,
    ];
  }

  dispose(): void {
    for (const s of [...this.shown.values()]) s.panel.dispose();
    this.shown.clear();
  }

  /** `dmalens.showRun uri rule range`: the run of the finding the hover was on. */
  async showRun(args: readonly unknown[]): Promise<void> {
    const a = parseShowRunArgs(args);
    if (!a) {
      void vscode.window.showErrorMessage('DMA Lens: this command opens the run of a finding; use the link in the finding\'s hover.');
      return;
    }
    let document: vscode.Uri;
    try {
      document = vscode.Uri.parse(a.uri, true);
    } catch {
      void vscode.window.showErrorMessage('DMA Lens: not a document URI.');
      return;
    }
    const c = this.running();
    if (!c) return;
    // VS Code percent-decodes a command link's query once more than it was
    // encoded, so the URI may arrive decoded: name the document as the client
    // named it to the server.
    const uri = c.code2ProtocolConverter.asUri(document);
    const result = await this.request({ uri, rule: a.rule, range: a.range });
    if (result === undefined) return;
    if (result === null) {
      void vscode.window.showWarningMessage(`DMA Lens: the ${a.rule} finding is gone (the file changed); hover the finding again.`);
      return;
    }
    const name = basename(document);
    this.show(`finding\n${uri}\n${a.rule}\n${JSON.stringify(a.range)}`, a.rule, result, {
      document,
      fileName: name,
      subtitle: `The ${a.rule} finding at ${name}:${a.range.start.line + 1}, replayed on the simulated machine`,
    });
  }

  /** `dmalens.explainRule`: pick a rule, see its reference run. */
  async explainRule(): Promise<void> {
    const c = this.running();
    if (!c) return;
    let rules: ModelRule[];
    try {
      rules = await c.sendRequest<ModelRule[]>('dmalens/modelRules');
    } catch (e) {
      this.failed('cannot list the rules', e);
      return;
    }
    const items = (Array.isArray(rules) ? rules : [])
      .filter((r) => r && typeof r.id === 'string' && RULE_ID.test(r.id))
      .map((r) => ({ label: r.id, detail: typeof r.summary === 'string' ? r.summary : undefined }));
    const pick = await vscode.window.showQuickPick(items, {
      title: 'DMA Lens: Explain a rule with the model',
      placeHolder: 'Rule whose reference scenario to run',
      matchOnDetail: true,
    });
    if (!pick) return;
    const result = await this.request({ rule: pick.label });
    if (!result) {
      if (result === null) void vscode.window.showWarningMessage(`DMA Lens: the model has no scenario for ${pick.label}.`);
      return;
    }
    this.show(`reference\n${pick.label}`, pick.label, result, {
      subtitle: 'The rule\'s reference scenario on the simulated machine',
    });
  }

  private running(): BaseLanguageClient | undefined {
    const c = this.client();
    if (!c || !c.isRunning()) {
      void vscode.window.showErrorMessage('DMA Lens: the language server is not running (DMA Lens: Restart Server).');
      return undefined;
    }
    return c;
  }

  /** The server's answer; undefined after a failure (already reported), null when there is no run. */
  private async request(params: Record<string, unknown>): Promise<ExplainResult | null | undefined> {
    const c = this.running();
    if (!c) return undefined;
    try {
      const r = await c.sendRequest<unknown>('dmalens/explain', params);
      if (r === null) return null;
      if (!isExplainResult(r)) {
        this.failed('unexpected answer to dmalens/explain', undefined);
        return undefined;
      }
      return r;
    } catch (e) {
      this.failed('cannot get the run', e);
      return undefined;
    }
  }

  private failed(what: string, e: unknown): void {
    const detail = e instanceof Error ? e.message : e === undefined ? '' : String(e);
    this.log?.error(`${what}${detail ? ': ' + detail : ''}`);
    void vscode.window.showErrorMessage(`DMA Lens: ${what}${detail ? ': ' + detail : ''}`);
  }

  private show(
    key: string,
    rule: string,
    result: ExplainResult,
    o: { document?: vscode.Uri; fileName?: string; subtitle: string },
  ): void {
    const title = `DMA Lens: ${rule} run`;
    let s = this.shown.get(key);
    if (s) {
      s.panel.reveal(undefined, true);
    } else {
      const panel = vscode.window.createWebviewPanel(
        'dmalens.run',
        title,
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        {
          enableScripts: true,
          enableCommandUris: false,
          enableForms: false,
          localResourceRoots: [this.context.extensionUri],
        },
      );
      const created: Shown = { panel, document: o.document };
      s = created;
      this.shown.set(key, created);
      panel.onDidDispose(() => {
        if (this.shown.get(key) === created) this.shown.delete(key);
      });
      panel.webview.onDidReceiveMessage((m: unknown) => {
        const at = parseRevealMessage(m);
        if (at && created.document) void this.reveal(created.document, at).catch((e) => this.failed('cannot open the file', e));
      });
    }
    const lines = result.lines;
    s.panel.title = title;
    s.panel.webview.html = renderRunHtml(result.run, {
      nonce: nonce(),
      cspSource: s.panel.webview.cspSource,
      title,
      subtitle: o.subtitle,
      fileName: o.fileName,
      sourceLines: o.document
        ? (_span, i) => {
            const l = lines[i];
            return l && isIndex(l.line) && isIndex(l.character)
              ? { line: l.line, column: l.character, text: typeof l.text === 'string' ? l.text : undefined }
              : undefined;
          }
        : undefined,
    });
  }

  private async reveal(uri: vscode.Uri, at: { line: number; column: number }): Promise<void> {
    const doc = await vscode.workspace.openTextDocument(uri);
    const pos = doc.validatePosition(new vscode.Position(at.line, at.column));
    const editor = vscode.window.visibleTextEditors.find((e) => e.document.uri.toString() === uri.toString());
    await vscode.window.showTextDocument(doc, {
      viewColumn: editor?.viewColumn ?? vscode.ViewColumn.One,
      selection: new vscode.Range(pos, pos),
      preserveFocus: false,
    });
  }
}

/**
 * Hover middleware: the server's hover markdown may carry one command link,
 * `dmalens.showRun`. Trust exactly that command (never `true`); HTML stays off.
 */
export function trustShowRunLinks(hover: vscode.Hover | null | undefined): void {
  if (!hover) return;
  for (const c of hover.contents) {
    if (c instanceof vscode.MarkdownString) {
      c.isTrusted = { enabledCommands: [SHOW_RUN_COMMAND] };
      c.supportHtml = false;
    }
  }
}
