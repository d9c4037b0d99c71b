/**
 * Patch review in the language server: patches and diffs (`diff`), patch
 * mail and b4 series (`kernel-mail`: .mbox, .mbx, .eml) and plain text that
 * looks like a patch (`plaintext`). The review is patch/review.ts; this file
 * translates:
 *
 * - `PatchAnalyser` (a DocumentAnalyser): the review's findings, whose spans
 *   (and their events' and related places') are offsets into the patch text,
 *   so diagnostics, hovers and `dmalens/explain` work on them as on C; the
 *   review's own diagnostics (a broken hunk, a hunk that does not apply) as
 *   DocumentProblems.
 * - Whole-file mode: `readTarget(path)` reads `<root>/<path>` for the roots
 *   Projects.patchRoots names (the patch's project, then the workspace
 *   folders; none when the workspace is untrusted), through node/tree.ts,
 *   which refuses paths that leave the root. An open editor's text wins over
 *   the disk. `dmalens.patch.showExisting` adds the findings the patch does
 *   not add.
 * - A CodeLens on each patch's Subject line ("2 DMA Lens findings"), whose
 *   command `dmalens.listPatchFindings [uri, position, locations]` the client
 *   turns into a references peek.
 * - `dmalens/draftReply {uri, position} -> {text, findings, subject, patchIndex} | null`:
 *   the LKML-style reply (patch/reply.ts) to the patch at `position`.
 */
import { pathToFileURL } from 'node:url';
import {
  CodeLensRefreshRequest,
  ErrorCodes,
  ResponseError,
  type ClientCapabilities,
  type CodeLens,
  type CodeLensParams,
  type Connection,
  type Diagnostic,
  type Location,
  type Position,
  type ServerCapabilities,
} from 'vscode-languageserver/node';
import type { Analyzer } from '../core/analyzer';
import type { LineIndex } from '../core/positions';
import type { AnalysisResult, AnalyzeOptions, Finding } from '../core/types';
import { TreeReader } from '../node/tree';
import { draftReply } from '../patch/reply';
import { looksLikePatch, type PatchAnalyzer, type PatchDiagnostic, type PatchFinding, type PatchReview, type ReviewedPatch, reviewPatchText } from '../patch/review';
import type { AnalysisContext, DocumentAnalyser, DocumentProblem } from './analysers';
import type { AnalysedVersion, OpenDocument } from './documents';
import { escapeMarkdown } from './markdown';
import type { Projects } from './project';
import { SOURCE, toRange, toSeverity } from './translate';

export const PATCH_LANGUAGE_IDS = ['diff', 'kernel-mail', 'plaintext'] as const;

/** The client command a patch's CodeLens runs: arguments [uri, position, locations]. */
export const LIST_PATCH_FINDINGS_COMMAND = 'dmalens.listPatchFindings';

export const DraftReplyRequest = 'dmalens/draftReply';
export interface DraftReplyParams {
  uri: string;
  position: Position;
}
export interface DraftReplyResult {
  /** The reply, plain text with `\n` line breaks, headers first. */
  text: string;
  /** How many findings the reply is about (0: the patch is clean, the reply quotes nothing). */
  findings: number;
  subject: string;
  patchIndex: number;
}

/** What the analyser keeps per document: the review of `text`. */
export interface PatchState {
  text: string;
  review: PatchReview;
  /** The findings as published (notes added to their messages), in the result's order. */
  findings: PatchFinding[];
}

/** Reads the files a patch changes, and counts how many it found. */
interface Targets {
  read(path: string): string | undefined;
  hits(): number;
}

const DEFAULT_MAX_BYTES = 4_000_000;

/** The review's note "X: not found in the tree; reviewed from the hunks alone" (review.ts, Overlay). */
function missingFromTree(d: PatchDiagnostic): boolean {
  return d.severity === 'info' && / not found in the tree; reviewed from the hunks alone$/.test(d.message);
}

/**
 * A finding's message as the editor shows it: where it is when the patch
 * does not show that line, and whether the tree had it before (the words
 * patch/reply.ts uses).
 */
export function notedMessage(f: PatchFinding): string {
  let m = f.message;
  if (f.on === 'outside') m = `In ${f.target.file} at line ${f.target.line}, which this patch does not show: ${m}`;
  if (f.existing) m += ' (This was already so before the patch.)';
  return m;
}

export function isPatchFinding(f: Finding): f is PatchFinding {
  const p = f as Partial<PatchFinding>;
  return typeof p.patchIndex === 'number' && typeof p.target === 'object' && p.target !== null && typeof p.analysis === 'string';
}

/** The hover's lines about a patch finding (markdown, escaped), or none for a finding in C. */
export function patchHoverLines(f: Finding): string[] {
  if (!isPatchFinding(f)) return [];
  const where = `${escapeMarkdown(f.target.file)}:${f.target.line}`;
  const lines = [`In the patched file: ${where}${f.on === 'outside' ? ' (a line this patch does not show)' : ''}`];
  lines.push(
    f.analysis === 'file'
      ? 'Analysed with the whole file, the patch applied.'
      : f.partial
        ? 'Judged from the hunk alone: the function is not entirely in the patch, so it is reported at most as a warning.'
        : 'Judged from the hunks alone (no tree with this file in the workspace).',
  );
  if (f.existing) lines.push('The tree had this before the patch.');
  if (f.subject) lines.push(`Patch: ${escapeMarkdown(f.subject)}`);
  return lines;
}

/** The review's diagnostics as LSP diagnostics (no `data`: they are not findings). */
export function problemToDiagnostic(p: DocumentProblem, index: LineIndex): Diagnostic {
  return { range: toRange(index, p.span), severity: toSeverity(p.severity), source: SOURCE, message: p.message };
}

export class PatchAnalyser implements DocumentAnalyser<PatchState> {
  readonly name = 'patch';
  readonly languageIds = PATCH_LANGUAGE_IDS;

  constructor(
    private readonly analyzer: Analyzer,
    private readonly targets: (context: AnalysisContext) => Targets | undefined = () => undefined,
    private readonly onAnalysed: (uri: string, state: PatchState) => void = () => undefined,
  ) {}

  accepts(text: string, languageId: string): boolean {
    return languageId !== 'plaintext' || looksLikePatch(text);
  }

  analyze(
    text: string,
    _state: PatchState | undefined,
    options: AnalyzeOptions,
    context?: AnalysisContext,
  ): { result: AnalysisResult; state: PatchState; problems: DocumentProblem[] } {
    const targets = context ? this.targets(context) : undefined;
    const all = !!context?.patchShowExisting;
    // The project's knowledge (lock wrappers, helper summaries, cross-file facts) applies to the hunks too.
    const extra: AnalyzeOptions = {
      ...(options.lockWrappers ? { lockWrappers: options.lockWrappers } : {}),
      ...(options.helpers ? { helpers: options.helpers } : {}),
      ...(options.workspace ? { workspace: options.workspace } : {}),
    };
    const analyzer: PatchAnalyzer = Object.keys(extra).length
      ? { analyzeText: (t, o) => this.analyzer.analyzeText(t, { ...o, ...extra }) }
      : this.analyzer;
    const review = reviewPatchText(text, analyzer, {
      ...(targets ? { readTarget: (p: string) => targets.read(p) } : {}),
      ...(options.kernelVersion ? { kernelVersion: options.kernelVersion } : {}),
      ...(options.disabledRules ? { disabledRules: options.disabledRules } : {}),
      ...(options.severity ? { severity: options.severity } : {}),
      ...(all ? { includeExisting: true, allLines: true } : {}),
    });
    if (context?.languageId === 'plaintext' && !review.patches.some((p) => p.files.length > 0)) {
      // Plain text that only looked like a patch (a reply being drafted: `Subject: Re: [PATCH ...]`): not one.
      const state: PatchState = { text, review: { patches: [], diagnostics: [] }, findings: [] };
      return { result: { findings: [], notices: [], errorNodes: 0 }, state, problems: [] };
    }
    // A workspace that holds none of the patch's files is not the tree it applies to: say nothing about it.
    const diagnostics = targets && targets.hits() === 0 ? review.diagnostics.filter((d) => !missingFromTree(d)) : review.diagnostics;
    const findings = review.patches.flatMap((p) => p.findings).map((f) => {
      const message = notedMessage(f);
      return message === f.message ? f : { ...f, message };
    });
    const state: PatchState = { text, review, findings };
    if (context) this.onAnalysed(context.uri, state);
    return {
      result: { findings, notices: [], errorNodes: 0 },
      state,
      problems: diagnostics.map((d) => ({ span: d.span, message: d.message, severity: d.severity })),
    };
  }

  dispose(): void {
    /* nothing to free: the review is plain data */
  }
}

/** What the patch features need of the server. */
export interface PatchHost {
  document(uri: string): OpenDocument | undefined;
  /** The document's analysis for its current version (server.ts analysedNow). */
  analysedNow(d: OpenDocument): Promise<AnalysedVersion | undefined>;
  projects: Projects;
  error(message: string): void;
}

export class PatchFeatures {
  private analyser: PatchAnalyser | undefined;
  private readonly readers = new Map<string, TreeReader>();
  /** Per document, the lenses last served (a signature), to refresh them when an analysis changes them. */
  private readonly served = new Map<string, string>();
  private refreshSupport = false;
  private connection: Connection | undefined;
  private refreshTimer: NodeJS.Timeout | undefined;

  constructor(private readonly host: PatchHost) {}

  /** The analyser to register (once the analyzer has loaded). */
  createAnalyser(analyzer: Analyzer): PatchAnalyser {
    this.analyser = new PatchAnalyser(
      analyzer,
      (c) => this.targetsFor(c),
      (uri, state) => this.analysed(uri, state),
    );
    return this.analyser;
  }

  /** The server capabilities patch review adds (called from initialize). */
  capabilities(client: ClientCapabilities | undefined): Partial<ServerCapabilities> {
    this.refreshSupport = !!client?.workspace?.codeLens?.refreshSupport;
    return { codeLensProvider: { resolveProvider: false } };
  }

  listen(c: Connection): void {
    this.connection = c;
    c.onCodeLens((p) =>
      this.codeLens(p).catch((e) => {
        this.host.error(`codeLens failed: ${describe(e)}`);
        return [];
      }),
    );
    c.onRequest(DraftReplyRequest, (p: unknown) => this.draftReply(p));
  }

  // ---- whole-file mode ----------------------------------------------------

  private reader(root: string, maxBytes: number): TreeReader {
    const key = `${maxBytes}\u0000${root}`;
    let r = this.readers.get(key);
    if (!r) {
      if (this.readers.size > 16) this.readers.clear();
      r = new TreeReader(root, maxBytes);
      this.readers.set(key, r);
    }
    return r;
  }

  private targetsFor(context: AnalysisContext): Targets | undefined {
    const roots = this.host.projects.patchRoots(context.uri);
    if (!roots.length) return undefined;
    const max = context.maxFileSize ?? DEFAULT_MAX_BYTES;
    const readers = roots.map((r) => this.reader(r, max));
    let hits = 0;
    return {
      read: (p) => {
        for (const reader of readers) {
          const file = reader.resolve(p);
          if (!file) return undefined; // a path that leaves the root: never read
          const open = this.host.document(pathToFileURL(file).href);
          if (open && open.uri !== context.uri && open.text.length <= max) {
            hits++;
            return open.text;
          }
          const text = reader.read(p);
          if (text !== undefined) {
            hits++;
            return text;
          }
        }
        return undefined;
      },
      hits: () => hits,
    };
  }

  // ---- lenses -------------------------------------------------------------

  /** The review behind the document's analysis `last`, when it is a patch document. */
  private stateOf(d: OpenDocument, last: AnalysedVersion | undefined): PatchState | undefined {
    if (!last || !this.analyser || d.analyser !== this.analyser) return undefined;
    const s = d.state as PatchState | undefined;
    return s && s.text === last.text ? s : undefined;
  }

  async codeLens(p: CodeLensParams): Promise<CodeLens[]> {
    const d = this.host.document(p.textDocument.uri);
    if (!d || !this.analyser || d.analyser !== this.analyser) return [];
    const last = await this.host.analysedNow(d);
    const state = this.stateOf(d, last);
    if (!state || !last) return [];
    this.served.set(d.uri, lensSignature(state));
    return patchLenses(d.uri, state, last.index);
  }

  private analysed(uri: string, state: PatchState): void {
    const served = this.served.get(uri);
    if (served === undefined || served === lensSignature(state)) return;
    this.served.delete(uri);
    if (!this.refreshSupport || !this.connection || this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      this.connection?.sendRequest(CodeLensRefreshRequest.type).catch(() => undefined);
    }, 50);
  }

  // ---- the reply ----------------------------------------------------------

  async draftReply(raw: unknown): Promise<DraftReplyResult | null> {
    const p = parseDraftReplyParams(raw);
    if (!p) throw new ResponseError(ErrorCodes.InvalidParams, 'dmalens/draftReply: expected {uri, position}');
    try {
      const d = this.host.document(p.uri);
      if (!d) return null;
      const last = await this.host.analysedNow(d);
      const state = this.stateOf(d, last);
      if (!state || !last) return null;
      const patch = patchAt(state.review.patches, last.index.offsetAt(p.position));
      if (!patch) return null;
      return { text: draftReply(patch, patch.findings, state.text), findings: patch.findings.length, subject: patch.subject, patchIndex: patch.index };
    } catch (e) {
      this.host.error(`draftReply failed: ${describe(e)}`);
      return null;
    }
  }
}

/** One lens per patch with a diff, on its Subject line (a plain diff: its first line). */
export function patchLenses(uri: string, state: PatchState, index: LineIndex): CodeLens[] {
  const lenses: CodeLens[] = [];
  for (const p of state.review.patches) {
    if (!p.files.length) continue;
    const anchor = p.subjectRange ?? { start: p.span.start, end: p.span.start };
    const start = index.position(index.lineStart(index.lineOf(anchor.start)));
    const range = { start, end: index.position(Math.max(anchor.start, anchor.end)) };
    const findings = state.findings.filter((f) => f.patchIndex === p.index);
    const n = findings.length;
    const title = n === 0 ? 'no DMA Lens findings' : n === 1 ? '1 DMA Lens finding' : `${n} DMA Lens findings`;
    const locations: Location[] = findings.map((f) => ({ uri, range: toRange(index, f.span) }));
    lenses.push({ range, command: { title, command: LIST_PATCH_FINDINGS_COMMAND, arguments: [uri, range.start, locations] } });
  }
  return lenses;
}

function lensSignature(state: PatchState): string {
  return state.review.patches.map((p) => `${p.index}:${p.files.length}:${state.findings.filter((f) => f.patchIndex === p.index).length}`).join(',');
}

/** The patch whose message holds `offset`; else the last one that starts before it; else the first. */
export function patchAt(patches: readonly ReviewedPatch[], offset: number): ReviewedPatch | undefined {
  const holding = patches.find((p) => p.span.start <= offset && offset <= p.span.end);
  if (holding) return holding;
  let before: ReviewedPatch | undefined;
  for (const p of patches) if (p.span.start <= offset) before = p;
  return before ?? patches[0];
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
}

export function parseDraftReplyParams(raw: unknown): DraftReplyParams | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const o = raw as Record<string, unknown>;
  if (typeof o.uri !== 'string' || o.uri.length === 0) return undefined;
  const pos = o.position as Record<string, unknown> | undefined;
  if (typeof pos !== 'object' || pos === null || !isIndex(pos.line) || !isIndex(pos.character)) return undefined;
  return { uri: o.uri, position: { line: pos.line, character: pos.character } };
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message || e.name : String(e);
}
