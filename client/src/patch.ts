/**
 * Patch review in VS Code (the server does the review: server/src/lsp/patch.ts):
 *
 * - `dmalens.listPatchFindings uri position locations`: what a patch's
 *   CodeLens ("2 DMA Lens findings") runs; peeks the findings with
 *   `editor.action.showReferences`.
 * - `dmalens.draftReply`: asks the server for the LKML-style reply to the
 *   patch under the cursor (`dmalens/draftReply`) and opens it in a new
 *   untitled plain-text editor.
 *
 * Arguments come from the server's lenses; they are checked before use.
 */
import * as vscode from 'vscode';
import type { BaseLanguageClient } from 'vscode-languageclient';

export const LIST_PATCH_FINDINGS_COMMAND = 'dmalens.listPatchFindings';
export const DRAFT_REPLY_COMMAND = 'dmalens.draftReply';

/** The languages patch review covers (plaintext only when the text is a patch: the server decides). */
export const PATCH_LANGUAGES = ['diff', 'kernel-mail', 'plaintext'] as const;

interface LspPosition {
  line: number;
  character: number;
}
interface LspRange {
  start: LspPosition;
  end: LspPosition;
}

const MAX_INDEX = 100_000_000;

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 && n <= MAX_INDEX;
}

function isPosition(v: unknown): v is LspPosition {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return isIndex(p.line) && isIndex(p.character);
}

function isRange(v: unknown): v is LspRange {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return isPosition(r.start) && isPosition(r.end);
}

/** The lens command's arguments: [uri, position, [{uri, range}...]]; undefined when malformed. */
export function parseListArgs(args: readonly unknown[]): { uri: string; position: LspPosition; locations: { uri: string; range: LspRange }[] } | undefined {
  const [uri, position, locations] = args;
  if (typeof uri !== 'string' || uri.length === 0 || uri.length > 8192 || !isPosition(position) || !Array.isArray(locations)) return undefined;
  const out: { uri: string; range: LspRange }[] = [];
  for (const l of locations.slice(0, 10_000)) {
    if (typeof l !== 'object' || l === null) return undefined;
    const o = l as Record<string, unknown>;
    if (typeof o.uri !== 'string' || !isRange(o.range)) return undefined;
    out.push({ uri: o.uri, range: o.range });
  }
  return { uri, position, locations: out };
}

interface DraftReplyResult {
  text: string;
  findings: number;
  subject: string;
}

function isDraftReply(v: unknown): v is DraftReplyResult {
  if (typeof v !== 'object' || v === null) return false;
  const r = v as Record<string, unknown>;
  return typeof r.text === 'string' && typeof r.findings === 'number' && typeof r.subject === 'string';
}

const toPosition = (p: LspPosition) => new vscode.Position(p.line, p.character);
const toRange = (r: LspRange) => new vscode.Range(toPosition(r.start), toPosition(r.end));

export function registerPatchCommands(client: () => BaseLanguageClient | undefined, log: vscode.LogOutputChannel | undefined): vscode.Disposable[] {
  const failed = (what: string, e: unknown) => {
    const detail = e instanceof Error ? e.message : String(e);
    log?.error(`${what}: ${detail}`);
    void vscode.window.showErrorMessage(`DMA Lens: ${what}: ${detail}`);
  };

  const list = async (...args: unknown[]) => {
    const a = parseListArgs(args);
    if (!a) {
      void vscode.window.showErrorMessage("DMA Lens: this command lists a patch's findings; use the lens above the patch's Subject line.");
      return;
    }
    if (a.locations.length === 0) {
      void vscode.window.showInformationMessage('DMA Lens found nothing in this patch.');
      return;
    }
    try {
      const uri = vscode.Uri.parse(a.uri, true);
      const locations = a.locations.map((l) => new vscode.Location(vscode.Uri.parse(l.uri, true), toRange(l.range)));
      await vscode.commands.executeCommand('editor.action.showReferences', uri, toPosition(a.position), locations);
    } catch (e) {
      failed('cannot list the findings', e);
    }
  };

  const draft = async () => {
    const editor = vscode.window.activeTextEditor;
    if (!editor || !(PATCH_LANGUAGES as readonly string[]).includes(editor.document.languageId)) {
      void vscode.window.showErrorMessage('DMA Lens: open a patch, a patch mail or a series (.patch, .diff, .mbox, .mbx, .eml) and put the cursor in the patch to reply to.');
      return;
    }
    const c = client();
    if (!c || !c.isRunning()) {
      void vscode.window.showErrorMessage('DMA Lens: the language server is not running (DMA Lens: Restart Server).');
      return;
    }
    let result: unknown;
    try {
      result = await c.sendRequest('dmalens/draftReply', {
        uri: c.code2ProtocolConverter.asUri(editor.document.uri),
        position: { line: editor.selection.active.line, character: editor.selection.active.character },
      });
    } catch (e) {
      failed('cannot draft the reply', e);
      return;
    }
    if (result === null) {
      void vscode.window.showWarningMessage('DMA Lens: no patch here to reply to (is it a patch? DMA Lens reviews diff, mail and plain-text patches).');
      return;
    }
    if (!isDraftReply(result)) {
      failed('cannot draft the reply', 'unexpected answer to dmalens/draftReply');
      return;
    }
    if (result.findings === 0) {
      void vscode.window.showInformationMessage(`DMA Lens found nothing in "${result.subject || 'this patch'}": there is nothing to reply.`);
      return;
    }
    const doc = await vscode.workspace.openTextDocument({ language: 'plaintext', content: result.text });
    await vscode.window.showTextDocument(doc, { preview: false, viewColumn: vscode.ViewColumn.Beside });
  };

  return [vscode.commands.registerCommand(LIST_PATCH_FINDINGS_COMMAND, list), vscode.commands.registerCommand(DRAFT_REPLY_COMMAND, draft)];
}
