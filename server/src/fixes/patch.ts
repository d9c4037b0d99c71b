/**
 * Fixes inside a patch: a fix computed on the C a patch adds (the hunk
 * fragment the review analyses, or the whole post-image) is mapped onto the
 * patch's own `+` lines, and the patch stays valid: new lines become new `+`
 * lines, and the `@@ -a,b +c,d @@` headers get their counts (and the `+c`
 * of later hunks of the same file) updated.
 *
 * Only edits whose every touched line is an added line are mapped: a fix
 * that would change a context line (what the tree already has) or a line
 * the engine made up (a wrapped signature) gives no patch fix. Mails whose
 * body is quoted-printable or base64 are not edited (the edit would have to
 * be re-encoded). Pure; never throws.
 *
 *   const source = hunkFixSource(patchText, 'drivers/x/y.c');   // C text to analyse
 *   ... analyse source.text, fixesFor(finding, parsed) ...
 *   const pf = fixInPatch(patchText, source, fix);              // pf.text: the fixed patch
 */
import { LineIndex } from '../core/positions';
import type { ParsedFile } from '../core/parser';
import type { AnalysisResult, AnalyzeOptions, Finding, Span } from '../core/types';
import { FixSession } from './engine';
import { type DiffLine, type FileDiff, type Hunk, parseDiff } from '../patch/diff';
import { buildFragment } from '../patch/image';
import { applyEdits } from './text';
import type { Fix, FixEdit } from './types';

export interface PatchFixSource {
  /** The file in the patch, as the review names it (its new path; PatchFinding.target.file). */
  file: string;
  /** The C text the fix's offsets point into: the hunk fragment, or the whole file after the patch. */
  text: string;
  /**
   * One-based line in the file after the patch of each 0-based line of
   * `text`; undefined for a line the engine wrote. Default: `line + 1`
   * (`text` is the whole post-image).
   */
  postImageLine?: (line: number) => number | undefined;
  /** An offset in the patch inside the file's diff (the finding's span): picks the right diff when a series changes the file twice. */
  near?: number;
}

export interface PatchFix extends Omit<Fix, 'edits'> {
  /** Edits to the patch text. */
  edits: FixEdit[];
  /** The patch with the fix applied. */
  text: string;
}

const ENCODED = /^Content-Transfer-Encoding:\s*(quoted-printable|base64)\s*$/im;
const HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

function fileDiffFor(patchText: string, file: string, near?: number): FileDiff | undefined {
  const files = parseDiff(patchText).files.filter((f) => !f.binary && (f.newPath ?? f.oldPath) === file && f.hunks.length);
  if (near !== undefined) {
    // The file's part of the patch ends with its last hunk's last line (or header: a hunk can be empty).
    const end = (f: FileDiff) => {
      const last = f.hunks[f.hunks.length - 1];
      return last.lines.at(-1)?.end ?? last.span.end;
    };
    const hit = files.find((f) => f.span.start <= near && near <= end(f));
    if (hit) return hit;
  }
  return files[0];
}

/**
 * The C text of a file's hunks as the review's hunk mode analyses it (post-
 * images wrapped into functions), with the line map fixInPatch needs.
 */
export function hunkFixSource(patchText: string, file: string, near?: number): PatchFixSource | undefined {
  const fd = fileDiffFor(patchText, file, near);
  if (!fd) return undefined;
  const fragment = buildFragment(fd);
  return {
    file,
    text: fragment.text,
    near,
    postImageLine: (line) => {
      const at = fragment.lines[line];
      if (!at) return undefined;
      const dl = fd.hunks[at.hunk]?.lines[at.line];
      return dl && !dl.wrapped ? dl.newLine : undefined;
    },
  };
}

/** The fix, on the patch's added lines; undefined when it touches anything else. */
export function fixInPatch(patchText: string, finding: PatchFixSource, fix: Fix): PatchFix | undefined {
  try {
    return map(patchText, finding, fix);
  } catch {
    return undefined;
  }
}

function map(patchText: string, source: PatchFixSource, fix: Fix): PatchFix | undefined {
  if (!fix.edits.length || ENCODED.test(patchText)) return undefined;
  const fd = fileDiffFor(patchText, source.file, source.near);
  if (!fd) return undefined;
  // Post-image line -> its diff line (context or added), with its place.
  const byLine = new Map<number, { hunk: number; index: number; dl: DiffLine }>();
  const ambiguous = new Set<number>();
  fd.hunks.forEach((h, hi) =>
    h.lines.forEach((dl, index) => {
      if (dl.newLine === undefined) return;
      if (dl.wrapped || byLine.has(dl.newLine)) ambiguous.add(dl.newLine);
      else byLine.set(dl.newLine, { hunk: hi, index, dl });
    }),
  );
  const idx = new LineIndex(source.text);
  const postLine = source.postImageLine ?? ((l: number) => l + 1);
  // Group the edits by the lines they touch.
  const groups: Array<{ first: number; last: number; edits: FixEdit[] }> = [];
  for (const e of [...fix.edits].sort((a, b) => a.start - b.start)) {
    const first = idx.lineOf(e.start);
    const last = idx.lineOf(e.end);
    const g = groups[groups.length - 1];
    if (g && first <= g.last) {
      g.last = Math.max(g.last, last);
      g.edits.push(e);
    } else groups.push({ first, last, edits: [e] });
  }
  const patchEdits: FixEdit[] = [];
  const deltas = new Map<number, number>();
  for (const g of groups) {
    const targets: Array<{ hunk: number; index: number; dl: DiffLine }> = [];
    for (let l = g.first; l <= g.last; l++) {
      const n = postLine(l);
      if (n === undefined || ambiguous.has(n)) return undefined;
      const t = byLine.get(n);
      if (!t || t.dl.kind !== '+' || t.dl.noNewline) return undefined;
      if (t.dl.text.replace(/\r$/, '') !== source.text.slice(idx.lineStart(l), idx.lineEnd(l))) return undefined;
      const prev = targets[targets.length - 1];
      if (prev && (prev.hunk !== t.hunk || prev.index + 1 !== t.index)) return undefined;
      targets.push(t);
    }
    const segStart = idx.lineStart(g.first);
    const segEnd = idx.lineEnd(g.last);
    const segment = source.text.slice(segStart, segEnd);
    const shifted = g.edits.map((e) => ({ start: e.start - segStart, end: e.end - segStart, newText: e.newText }));
    if (shifted.some((e) => e.start < 0 || e.end > segment.length)) return undefined;
    const lines = applyEdits(segment, shifted).split('\n').map((l) => l.replace(/\r$/, ''));
    const firstDl = targets[0].dl;
    const lastDl = targets[targets.length - 1].dl;
    const eol = patchText.charCodeAt(firstDl.end) === 13 ? '\r\n' : '\n';
    patchEdits.push({ start: firstDl.start, end: lastDl.end, newText: lines.map((l) => '+' + l).join(eol) });
    const h = targets[0].hunk;
    deltas.set(h, (deltas.get(h) ?? 0) + lines.length - targets.length);
  }
  // Hunk headers: this hunk's count, and where later hunks of the file start.
  let shift = 0;
  fd.hunks.forEach((h: Hunk, hi) => {
    const d = deltas.get(hi) ?? 0;
    if (d === 0 && shift === 0) return;
    const header = patchText.slice(h.span.start, h.span.end);
    const m = HEADER.exec(header);
    if (!m) throw new Error('unreadable hunk header');
    const newStart = Number(m[3]) + shift;
    const newCount = (m[4] === undefined ? 1 : Number(m[4])) + d;
    const oldPart = `-${m[1]}${m[2] === undefined ? '' : ',' + m[2]}`;
    const newPart = m[4] === undefined && newCount === 1 ? `+${newStart}` : `+${newStart},${newCount}`;
    const text = `@@ ${oldPart} ${newPart} @@`;
    patchEdits.push({ start: h.span.start, end: h.span.start + m[0].length, newText: text });
    shift += d;
  });
  patchEdits.sort((a, b) => a.start - b.start);
  const { edits: _edits, ...rest } = fix;
  return { ...rest, edits: patchEdits, text: applyEdits(patchText, patchEdits) };
}

/** What patchFindingFixes needs of the analyzer (core/analyzer.ts's Analyzer has it). */
export interface FixAnalyzer {
  parse(text: string): ParsedFile;
  analyze(doc: ParsedFile, options?: AnalyzeOptions): AnalysisResult;
}

/**
 * The fixes of a patch finding (a review finding on an added line: rule,
 * span in the patch, target file and line), as edits of the patch: the
 * file's hunks are analysed as the review's hunk mode does, the finding of
 * the same rule on the same line is fixed, and the fix mapped onto the `+`
 * lines. Empty when the finding is not on an added line or any fix would
 * touch other lines.
 */
export function patchFindingFixes(
  patchText: string,
  finding: Pick<Finding, 'rule' | 'span'> & { target: { file: string; line: number }; on?: string },
  analyzer: FixAnalyzer,
  options: AnalyzeOptions = {},
): PatchFix[] {
  if (finding.on !== undefined && finding.on !== 'added') return [];
  let doc: ParsedFile | undefined;
  try {
    const source = hunkFixSource(patchText, finding.target.file, finding.span.start);
    if (!source) return [];
    doc = analyzer.parse(source.text);
    const result = analyzer.analyze(doc, options);
    const idx = new LineIndex(source.text);
    const c = result.findings.find((f) => f.rule === finding.rule && source.postImageLine!(idx.lineOf(f.span.start)) === finding.target.line);
    if (!c) return [];
    const fixes = new FixSession(doc, { kernelVersion: options.kernelVersion, lockWrappers: options.lockWrappers, helpers: options.helpers }).fixesFor(c);
    return fixes.map((f) => fixInPatch(patchText, source, f)).filter((f): f is PatchFix => !!f);
  } catch {
    return [];
  } finally {
    doc?.delete();
  }
}

export type { Span };
