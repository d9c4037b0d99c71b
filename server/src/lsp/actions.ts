/**
 * Code actions: the fix engine's fixes (server/src/fixes) as quick fixes on
 * their diagnostics, "fix all" as a source action, "Explain with the model",
 * and "Disable this rule" for the file or the workspace (an edit of the
 * project file `.dmalens.json`, never a comment in kernel source).
 *
 * - A quick fix is `isPreferred` only when the engine marks it always safe
 *   (at most one per finding).
 * - `source.fixAll.dmalens` applies only preferred fixes: per rule when the
 *   request comes from a diagnostic, for all rules when the client asks for
 *   `source.fixAll` (for example on save).
 * - In a patch or patch mail, a fix of a finding on an added line edits the
 *   `+` lines and the hunk headers (fixes/patch.ts); only when every line it
 *   touches is an added one.
 * - Edits are computed on the analysed version and sent as versioned
 *   document edits when the client supports them.
 *
 * Translates only: which fixes exist is the engine's decision.
 */
import * as path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { type FormattingOptions, modify, parse as parseJsonc } from 'jsonc-parser';
import {
  type ClientCapabilities,
  type CodeAction,
  CodeActionKind,
  type CodeActionParams,
  type Connection,
  type Diagnostic,
  type Range,
  type ServerCapabilities,
  type TextEdit,
  type WorkspaceEdit,
} from 'vscode-languageserver/node';
import type { Analyzer } from '../core/analyzer';
import { rulesForPath } from '../core/config';
import { ParsedFile } from '../core/parser';
import { LineIndex } from '../core/positions';
import type { AnalyzeOptions, Finding, Span } from '../core/types';
import { FixSession } from '../fixes/engine';
import { patchFindingFixes } from '../fixes/patch';
import type { FixEdit } from '../fixes/types';
import type { AnalysedVersion, OpenDocument } from './documents';
import { SHOW_RUN_COMMAND } from './hover';
import { CONFIG_FILE, type Project, type Projects } from './project';
import { type DiagnosticData, SOURCE, toRange } from './translate';

/** The kind of DMA Lens's "fix all" source action. */
export const FIX_ALL_KIND = `${CodeActionKind.SourceFixAll}.dmalens`;

export interface CodeActionHost {
  document(uri: string): OpenDocument | undefined;
  /** The analysis of the document's current version (brought forward when pending). */
  analysedNow(d: OpenDocument): Promise<AnalysedVersion | undefined>;
  analyzer(): Promise<Analyzer | undefined>;
  /** The options the document is analysed with (settings and project merged). */
  options(d: OpenDocument): Promise<AnalyzeOptions>;
  projects: Projects;
  /** Whether the client runs `dmalens.showRun` (initializationOptions.commandLinks). */
  commandLinks(): boolean;
  /** Whether the model has a run for the finding (as the hover's link). */
  hasRun(f: Finding, uri: string): boolean;
  error(message: string): void;
}

interface Located {
  finding: Finding;
  diagnostic?: Diagnostic;
}

export class CodeActions {
  private documentChanges = false;
  private createFiles = false;

  constructor(private readonly host: CodeActionHost) {}

  /** The capabilities code actions add (called from initialize). */
  capabilities(client: ClientCapabilities | undefined): Partial<ServerCapabilities> {
    const we = client?.workspace?.workspaceEdit;
    this.documentChanges = !!we?.documentChanges;
    this.createFiles = this.documentChanges && !!we?.resourceOperations?.includes('create');
    return {
      codeActionProvider: {
        codeActionKinds: [CodeActionKind.QuickFix, CodeActionKind.Source, FIX_ALL_KIND],
        resolveProvider: false,
      },
    };
  }

  listen(c: Connection): void {
    c.onCodeAction((p) =>
      this.provide(p).catch((e) => {
        this.host.error(`codeAction failed: ${e instanceof Error ? e.message : String(e)}`);
        return [];
      }),
    );
  }

  async provide(p: CodeActionParams): Promise<CodeAction[]> {
    const uri = p.textDocument.uri;
    const d = this.host.document(uri);
    if (!d) return [];
    const last = await this.host.analysedNow(d);
    if (!last || !last.findings.length) return [];
    const only = p.context.only;
    const wants = (kind: string) => !only || only.some((o) => kind === o || kind.startsWith(o + '.'));
    const fixAllOnly = !!only && only.length > 0 && only.every((o) => o === CodeActionKind.SourceFixAll || o === FIX_ALL_KIND);
    const located = this.locate(last, p);
    const options = await this.host.options(d);
    const fixOptions = { kernelVersion: options.kernelVersion, lockWrappers: options.lockWrappers, helpers: options.helpers };
    const state = d.state instanceof ParsedFile && !d.state.deleted && d.state.text === last.text && d.version === last.version ? d.state : undefined;
    const session = state ? new FixSession(state, fixOptions) : undefined;
    const out: CodeAction[] = [];

    if (!fixAllOnly && wants(CodeActionKind.QuickFix)) {
      for (const { finding, diagnostic } of located) {
        const diagnostics = diagnostic ? [diagnostic] : undefined;
        if (session) {
          for (const fix of session.fixesFor(finding)) {
            const a: CodeAction = { title: fix.title, kind: CodeActionKind.QuickFix, diagnostics, edit: this.docEdit(uri, last, fix.edits) };
            if (fix.preferred) a.isPreferred = true;
            out.push(a);
          }
        } else if (d.version === last.version && isPatchLike(finding)) {
          const analyzer = await this.host.analyzer();
          if (analyzer)
            for (const pf of patchFindingFixes(last.text, finding, analyzer, options)) {
              const a: CodeAction = { title: pf.title, kind: CodeActionKind.QuickFix, diagnostics, edit: this.docEdit(uri, last, pf.edits) };
              if (pf.preferred) a.isPreferred = true;
              out.push(a);
            }
        }
        if (this.host.commandLinks() && this.host.hasRun(finding, uri)) {
          out.push({
            title: `Explain ${finding.rule} with the model`,
            kind: CodeActionKind.QuickFix,
            diagnostics,
            command: { title: `Explain ${finding.rule} with the model`, command: SHOW_RUN_COMMAND, arguments: [uri, finding.rule, toRange(last.index, finding.span)] },
          });
        }
      }
      // Disabling: once per rule among the findings asked about.
      const rules = [...new Set(located.map((l) => l.finding.rule))];
      for (const rule of rules) {
        const diagnostics = located.filter((l) => l.finding.rule === rule && l.diagnostic).map((l) => l.diagnostic!);
        for (const a of this.disableActions(d, rule)) out.push({ ...a, diagnostics: diagnostics.length ? diagnostics : undefined });
      }
    }

    if (session && wants(FIX_ALL_KIND)) {
      if (fixAllOnly) {
        const all = session.preferredEdits(last.findings);
        if (all.edits.length) out.push({ title: 'Fix all DMA Lens findings in this file (safe fixes only)', kind: FIX_ALL_KIND, edit: this.docEdit(uri, last, all.edits) });
      } else {
        const rules = [...new Set((located.length ? located.map((l) => l.finding) : last.findings).map((f) => f.rule))];
        for (const rule of rules) {
          const r = session.preferredEdits(last.findings, rule);
          if (!r.edits.length) continue;
          out.push({
            title: `Fix all DMA Lens ${rule} findings in this file (${r.fixes.length} safe fix${r.fixes.length === 1 ? '' : 'es'})`,
            kind: FIX_ALL_KIND,
            edit: this.docEdit(uri, last, r.edits),
          });
        }
      }
    }
    return out;
  }

  /** The findings the request is about: those of its DMA Lens diagnostics, else those its range touches. */
  private locate(last: AnalysedVersion, p: CodeActionParams): Located[] {
    const out: Located[] = [];
    for (const diagnostic of p.context.diagnostics ?? []) {
      if (diagnostic.source !== SOURCE) continue;
      const data = diagnostic.data as DiagnosticData | undefined;
      if (!data || data.kind !== 'finding') continue;
      let f: Finding | undefined;
      const byIndex = last.findings[data.index];
      if (data.version === last.version && byIndex && byIndex.rule === data.rule && sameSpan(byIndex.span, data.span)) f = byIndex;
      else f = last.findings.find((x) => x.rule === data.rule && sameRange(toRange(last.index, x.span), diagnostic.range));
      if (f && !out.some((o) => o.finding === f)) out.push({ finding: f, diagnostic });
    }
    if (out.length || (p.context.diagnostics ?? []).length) return out;
    const start = last.index.offsetAt(p.range.start);
    const end = last.index.offsetAt(p.range.end);
    for (const f of last.findings) if (f.span.start <= end && start <= Math.max(f.span.start, f.span.end)) out.push({ finding: f });
    return out;
  }

  private docEdit(uri: string, last: AnalysedVersion, edits: readonly FixEdit[]): WorkspaceEdit {
    const textEdits: TextEdit[] = edits.map((e) => ({ range: toRange(last.index, { start: e.start, end: e.end }), newText: e.newText }));
    if (this.documentChanges) return { documentChanges: [{ textDocument: { uri, version: last.version }, edits: textEdits }] };
    return { changes: { [uri]: textEdits } };
  }

  // ---- disabling a rule ---------------------------------------------------

  private disableActions(d: OpenDocument, rule: string): CodeAction[] {
    const projects = this.host.projects;
    if (!projects.trusted) return [];
    const project = projects.projectFor(d.uri);
    if (!project) return [];
    const out: CodeAction[] = [];
    const file = toPath(d.uri);
    const rel = file ? path.relative(project.root, file).split(path.sep).join('/') : undefined;
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel) && d.languageId === 'c' && !rulesForPath(project.config, rel).disabledRules.includes(rule)) {
      const edit = this.configEdit(project, (text, fmt) => {
        // An override for exactly this file gets the rule; else a new override.
        const idx = rawOverrideIndex(text, rel);
        if (idx >= 0) return modify(text, ['overrides', idx, 'disabled', -1], rule, { formattingOptions: fmt });
        return modify(text, ['overrides', -1], { files: [rel], disabled: [rule] }, { formattingOptions: fmt });
      }, { overrides: [{ files: [rel], disabled: [rule] }] });
      if (edit) out.push({ title: `Disable ${rule} for this file (${CONFIG_FILE})`, kind: CodeActionKind.QuickFix, edit });
    }
    if (!project.config.disabledRules.includes(rule)) {
      const edit = this.configEdit(project, (text, fmt) => modify(text, ['rules', 'disabled', -1], rule, { formattingOptions: fmt }), { rules: { disabled: [rule] } });
      if (edit) out.push({ title: `Disable ${rule} for the workspace (${CONFIG_FILE})`, kind: CodeActionKind.QuickFix, edit });
    }
    return out;
  }

  /**
   * The edit of the project file: minimal edits (jsonc-parser: comments and
   * layout kept) when it exists, else its creation with `fresh` in it.
   */
  private configEdit(
    project: Project,
    change: (text: string, fmt: FormattingOptions) => Array<{ offset: number; length: number; content: string }>,
    fresh: unknown,
  ): WorkspaceEdit | undefined {
    const configPath = path.join(project.root, CONFIG_FILE);
    const uri = project.configUri ?? pathToFileURL(configPath).toString();
    const text = project.configText;
    if (text === undefined) {
      if (!this.createFiles) return undefined;
      const content = JSON.stringify(fresh, null, 2) + '\n';
      return {
        documentChanges: [
          { kind: 'create', uri, options: { ignoreIfExists: true } },
          { textDocument: { uri, version: null }, edits: [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, newText: content }] },
        ],
      };
    }
    const edits = change(text, formattingOf(text));
    if (!edits.length) return undefined;
    const index = new LineIndex(text);
    const textEdits: TextEdit[] = edits.map((e) => ({ range: toRange(index, { start: e.offset, end: e.offset + e.length }), newText: e.content }));
    const open = this.host.document(uri);
    if (this.documentChanges) return { documentChanges: [{ textDocument: { uri, version: open && open.text === text ? open.version : null }, edits: textEdits }] };
    return { changes: { [uri]: textEdits } };
  }
}

/** Index in the file's "overrides" array of the entry whose files are exactly [rel]. */
function rawOverrideIndex(text: string, rel: string): number {
  try {
    // jsonc-parser's own reading (comments allowed): the indices modify() uses.
    const value = parseJsonc(text, [], { allowTrailingComma: true }) as { overrides?: Array<{ files?: unknown }> } | undefined;
    const list = value?.overrides;
    if (!Array.isArray(list)) return -1;
    return list.findIndex((o) => !!o && Array.isArray(o.files) && o.files.length === 1 && o.files[0] === rel);
  } catch {
    return -1;
  }
}

/** The indentation and line breaks the file already uses. */
function formattingOf(text: string): FormattingOptions {
  const m = /\n([ \t]+)\S/.exec(text);
  const eol = text.includes('\r\n') ? '\r\n' : '\n';
  if (m && m[1].startsWith('\t')) return { insertSpaces: false, tabSize: 4, eol };
  return { insertSpaces: true, tabSize: m ? Math.min(8, m[1].length) : 2, eol };
}

function isPatchLike(f: Finding): f is Finding & { target: { file: string; line: number }; on?: string; analysis?: string } {
  const t = (f as { target?: { file?: unknown; line?: unknown } }).target;
  return !!t && typeof t.file === 'string' && typeof t.line === 'number';
}

function sameSpan(a: Span, b: Span): boolean {
  return a.start === b.start && a.end === b.end;
}

function sameRange(a: Range, b: Range): boolean {
  return a.start.line === b.start.line && a.start.character === b.start.character && a.end.line === b.end.line && a.end.character === b.end.character;
}

function toPath(uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}
