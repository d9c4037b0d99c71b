/**
 * Patch review: the findings a patch (or a series) adds, located on the
 * lines of the patch file as the user sees it. Pure: text in, findings
 * out; the faces read files and hand in `readTarget`.
 *
 *   const review = reviewPatchText(text, analyzer, { readTarget });
 *   for (const p of review.patches) for (const f of p.findings) ...f.span (offsets in `text`)
 *
 * Two ways to look at each file of a patch:
 *
 * - Hunk mode (always available): the post-image of every hunk (context and
 *   added lines), wrapped into functions where a hunk starts inside one
 *   (see image.ts), is analysed as a small C file. Findings anchored on an
 *   added line are reported; those on context lines only with `allLines`.
 *   A hunk cannot show what happens before or after it in its function: a
 *   lock taken above the hunk is unseen. A finding in a function (or
 *   initializer) that is not entirely in the hunk is marked `partial` and
 *   reported at most as a warning (architecture invariant: precision first);
 *   the rules themselves already say "warning" when a lock's entry state is
 *   unknown.
 * - Whole-file mode (when the file's text is known: `readTarget`, an
 *   earlier patch of the series, or a new file): the patch is applied in
 *   memory (apply.ts), the post-image and the pre-image are analysed, and a
 *   finding is reported when its anchor is on an added line, or when no
 *   finding of the same rule with the same message exists in the pre-image
 *   (matched one for one, same line first). `includeExisting` reports the
 *   others too, marked `existing`. A finding can then sit on a line the
 *   patch does not show (removing a lock makes a call below the hunk
 *   wrong): it is reported with `on: 'outside'`, its target line in the
 *   file, and its span on the nearest hunk header.
 *
 * Never throws: broken input gives diagnostics and the analysis of whatever
 * could be read.
 */
import { LineIndex } from '../core/positions';
import type {
  AnalysisResult,
  AnalyzeOptions,
  CodeEvent,
  Finding,
  KernelVersion,
  RelatedSpan,
  Severity,
  Span,
} from '../core/types';
import { type Applied, applyFile, Overlay } from './apply';
import { type FileDiff, type FileStatus, type Hunk, parseDiff, textStart } from './diff';
import { buildFragment, type Fragment } from './image';
import { type BodyPart, type MailMessage, type MessageKind, type SeriesPosition, splitMessages } from './mail';

/** What the review needs of the analyzer (core/analyzer.ts's Analyzer has it). */
export interface PatchAnalyzer {
  analyzeText(text: string, options?: AnalyzeOptions): AnalysisResult;
}

export interface ReviewOptions {
  /**
   * The current text of a file of the tree the patch applies to (path
   * relative to the tree root, as the patch names it after prefix
   * stripping), or undefined when unknown. Enables whole-file mode. Called
   * at most once per path; may be slow, must not throw (if it does, the file
   * is reviewed in hunk mode).
   */
  readTarget?: (path: string) => string | undefined;
  kernelVersion?: KernelVersion;
  disabledRules?: ReadonlySet<string> | readonly string[];
  severity?: Readonly<Record<string, Severity>>;
  /** Whole-file mode: also report findings the tree had before the patch (marked `existing`). */
  includeExisting?: boolean;
  /** Also report findings anchored on context lines (hunk mode) and on unchanged lines. */
  allLines?: boolean;
  /** Path components to strip (patch -p). Default: git's a/ b/; see diff.ts. */
  strip?: number;
}

/** One-based line and one-based UTF-16 column in the patch file; end exclusive. */
export interface PatchLocation {
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/** A place in the patched source tree. */
export interface PatchTarget {
  file: string;
  /** One-based line in the file after the patch. */
  line: number;
}

export interface PatchRelated extends RelatedSpan {
  /** Where it is in the patched file, when known. */
  target?: PatchTarget;
}

export interface PatchFinding extends Finding {
  /** Span in the patch file text (where the user sees the line). */
  span: Span;
  related: PatchRelated[];
  /** `span` as lines and columns (through LineIndex). */
  location: PatchLocation;
  target: PatchTarget;
  /** Index of the patch in PatchReview.patches (the message's position in the file, from 0). */
  patchIndex: number;
  /** The patch's subject, without its `[PATCH ...]` prefix. */
  subject: string;
  /** The line the finding is anchored on: added by the patch, a context line, or not in the patch. */
  on: 'added' | 'context' | 'outside';
  /** What was analysed: the hunks alone, or the whole file with the patch applied. */
  analysis: 'hunk' | 'file';
  /** Whole-file mode with includeExisting: the finding was there before the patch. */
  existing?: boolean;
  /**
   * Hunk mode: the function (or initializer) the finding is in is not
   * entirely in the hunk, so the rule judged from part of it. Such findings
   * are never reported above warning.
   */
  partial?: boolean;
}

export interface ReviewedHunk {
  span: Span;
  oldStart: number;
  oldCount: number;
  newStart: number;
  newCount: number;
  section: string;
}

export interface ReviewedFile {
  /** The path findings name: the new path, or the old one for a deletion. */
  path: string;
  oldPath?: string;
  newPath?: string;
  status: FileStatus;
  binary: boolean;
  similarity?: number;
  /** The file's diff header in the patch file. */
  span: Span;
  hunks: ReviewedHunk[];
  added: number;
  removed: number;
  analysis: 'file' | 'hunk' | 'none';
}

export interface ReviewedPatch {
  /** Position of the message in the file, from 0. */
  index: number;
  kind: MessageKind;
  /** The whole message in the patch file. */
  span: Span;
  subject: string;
  rawSubject: string;
  subjectPrefix?: string;
  /** The Subject header's value in the file (for a CodeLens); for a plain diff, undefined. */
  subjectRange?: Span;
  series?: SeriesPosition;
  /** `[PATCH 0/N]`. */
  coverLetter: boolean;
  from?: string;
  date?: string;
  messageId?: string;
  inReplyTo?: string;
  references: string[];
  files: ReviewedFile[];
  findings: PatchFinding[];
}

export interface PatchDiagnostic {
  /** In the patch file. */
  span: Span;
  message: string;
  severity: Severity;
  patchIndex?: number;
}

export interface PatchReview {
  patches: ReviewedPatch[];
  diagnostics: PatchDiagnostic[];
}

/** Files analysed as C: sources and headers (and a hunk without a file name). */
const C_FILE = /\.(c|h)$/i;

const FROM_LINE = /^From \S+\s+(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+\d/;

/**
 * Content sniffing: whether `text` is a patch or patch mail (a language
 * server may receive one as plain text). Looks at the first megabyte.
 */
export function looksLikePatch(text: string): boolean {
  const head = text.length > 1 << 20 ? text.slice(0, 1 << 20) : text;
  if (/^diff --git \S/m.test(head)) return true;
  if (/^--- \S.*\r?\n\+\+\+ \S.*\r?\n@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@/m.test(head)) return true;
  const start = head.replace(/^\s+/, '').slice(0, 4096);
  if (FROM_LINE.test(start) && /^Subject:/im.test(head)) return true;
  if (/^(?:[\x21-\x39\x3b-\x7e]+:.*\r?\n(?:[ \t].*\r?\n)*)*Subject: .*\bPATCH\b/i.test(start)) return true;
  return false;
}

/** Reviews a patch, a patch mail, an mbox or b4 .mbx of a series. Never throws. */
export function reviewPatchText(text: string, analyzer: PatchAnalyzer, options: ReviewOptions = {}): PatchReview {
  const review: PatchReview = { patches: [], diagnostics: [] };
  try {
    new Reviewer(text, analyzer, options, review).run();
  } catch (e) {
    review.diagnostics.push({
      span: { start: 0, end: 0 },
      message: `patch review failed: ${e instanceof Error ? e.message : String(e)}`,
      severity: 'error',
    });
  }
  return review;
}

interface PreFinding {
  key: string;
  line: number;
  used: boolean;
}

class Reviewer {
  private readonly overlay: Overlay;
  private readonly index: LineIndex;
  private readonly cache = new Map<string, AnalysisResult>();
  private readonly analyzeOptions: AnalyzeOptions;

  constructor(
    private readonly text: string,
    private readonly analyzer: PatchAnalyzer,
    private readonly options: ReviewOptions,
    private readonly out: PatchReview,
  ) {
    this.overlay = new Overlay(options.readTarget);
    this.index = new LineIndex(text);
    this.analyzeOptions = {
      ...(options.kernelVersion ? { kernelVersion: options.kernelVersion } : {}),
      ...(options.disabledRules ? { disabledRules: options.disabledRules } : {}),
      ...(options.severity ? { severity: options.severity } : {}),
    };
  }

  run(): void {
    if (!this.text.trim()) {
      this.out.diagnostics.push({ span: { start: 0, end: 0 }, message: 'the file is empty: no patch to review', severity: 'warning' });
      return;
    }
    const messages = splitMessages(this.text);
    const patches = messages.map((m) => this.patchOf(m));
    this.out.patches = patches;
    // Apply in series order when every message with a diff says where it goes.
    const order = this.seriesOrder(messages, patches);
    for (const i of order) {
      try {
        this.reviewMessage(messages[i], patches[i]);
      } catch (e) {
        this.out.diagnostics.push({
          span: messages[i].span,
          message: `this message could not be reviewed: ${e instanceof Error ? e.message : String(e)}`,
          severity: 'error',
          patchIndex: i,
        });
      }
    }
    if (!patches.some((p) => p.files.length > 0)) {
      const mail = messages.some((m) => m.kind !== 'plain');
      this.out.diagnostics.push({
        span: { start: 0, end: this.index.lineEnd(0) },
        message: mail ? 'no diff found in these messages' : 'no diff found: this does not look like a patch',
        severity: mail ? 'info' : 'error',
      });
    }
    this.out.diagnostics.sort((a, b) => a.span.start - b.span.start || a.span.end - b.span.end);
  }

  private seriesOrder(messages: readonly MailMessage[], patches: readonly ReviewedPatch[]): number[] {
    const natural = messages.map((_, i) => i);
    const withDiff = natural.filter((i) => messages[i].parts.some((p) => /^(diff --git |--- |@@ )/m.test(p.text)));
    const pos = withDiff.map((i) => patches[i].series);
    if (!pos.length || pos.some((s) => !s)) return natural;
    const total = pos[0]!.total;
    const version = pos[0]!.version;
    if (pos.some((s) => s!.total !== total || s!.version !== version)) return natural;
    if (new Set(pos.map((s) => s!.number)).size !== pos.length) return natural;
    const sorted = [...withDiff].sort((a, b) => patches[a].series!.number - patches[b].series!.number);
    const rest = natural.filter((i) => !withDiff.includes(i));
    return [...rest, ...sorted];
  }

  private patchOf(m: MailMessage): ReviewedPatch {
    return {
      index: m.index,
      kind: m.kind,
      span: m.span,
      subject: m.subject,
      rawSubject: m.rawSubject,
      ...(m.subjectPrefix !== undefined ? { subjectPrefix: m.subjectPrefix } : {}),
      ...(m.subjectSpan ? { subjectRange: m.subjectSpan } : {}),
      ...(m.series ? { series: m.series } : {}),
      coverLetter: m.series?.number === 0,
      ...(m.from ? { from: m.from } : {}),
      ...(m.date ? { date: m.date } : {}),
      ...(m.messageId ? { messageId: m.messageId } : {}),
      ...(m.inReplyTo ? { inReplyTo: m.inReplyTo } : {}),
      references: m.references,
      files: [],
      findings: [],
    };
  }

  private diag(span: Span, message: string, severity: Severity, patchIndex: number): void {
    this.out.diagnostics.push({ span, message, severity, patchIndex });
  }

  private reviewMessage(m: MailMessage, patch: ReviewedPatch): void {
    for (const d of m.diagnostics) this.diag(d.span, d.message, d.severity, m.index);
    for (const part of m.parts) {
      const parsed = parseDiff(part.text, this.options.strip !== undefined ? { strip: this.options.strip } : {});
      for (const d of parsed.diagnostics) this.diag(part.map.mapSpan(d.span), d.message, d.severity, m.index);
      for (const fd of parsed.files) {
        try {
          this.reviewFile(m, patch, part, fd);
        } catch (e) {
          this.diag(part.map.mapSpan(fd.firstLine), `this file's diff could not be reviewed: ${e instanceof Error ? e.message : String(e)}`, 'error', m.index);
        }
      }
    }
    patch.findings.sort((a, b) => a.span.start - b.span.start || a.rule.localeCompare(b.rule));
  }

  private analyze(text: string, path: string): AnalysisResult {
    const key = path + '\u0000' + text;
    const hit = this.cache.get(key);
    if (hit) return hit;
    let r: AnalysisResult;
    try {
      r = this.analyzer.analyzeText(text, { ...this.analyzeOptions, ...(path ? { path } : {}) });
    } catch (e) {
      r = { findings: [], notices: [{ kind: 'rule-failed', message: `analysis failed: ${e instanceof Error ? e.message : String(e)}` }], errorNodes: 0 };
    }
    this.cache.set(key, r);
    return r;
  }

  private reviewFile(m: MailMessage, patch: ReviewedPatch, part: BodyPart, fd: FileDiff): void {
    const path = fd.newPath ?? fd.oldPath ?? '';
    // Renames and copies read the old path; a modification the name it keeps (for `diff -u x.c.orig x.c`, the new one).
    const basePath = fd.status === 'renamed' || fd.status === 'copied' ? fd.oldPath ?? path : path;
    const rf: ReviewedFile = {
      path,
      ...(fd.oldPath !== undefined ? { oldPath: fd.oldPath } : {}),
      ...(fd.newPath !== undefined ? { newPath: fd.newPath } : {}),
      status: fd.status,
      binary: fd.binary,
      ...(fd.similarity !== undefined ? { similarity: fd.similarity } : {}),
      span: part.map.mapSpan(fd.span),
      hunks: fd.hunks.map((h) => ({
        span: part.map.mapSpan(h.span),
        oldStart: h.oldStart,
        oldCount: h.oldCount,
        newStart: h.newStart,
        newCount: h.newCount,
        section: h.section,
      })),
      added: 0,
      removed: 0,
      analysis: 'none',
    };
    for (const h of fd.hunks)
      for (const l of h.lines) {
        if (l.wrapped) continue;
        if (l.kind === '+') rf.added++;
        else if (l.kind === '-') rf.removed++;
      }
    patch.files.push(rf);

    if (fd.status === 'deleted') {
      if (fd.oldPath) this.overlay.set(fd.oldPath, { state: 'absent' });
      return;
    }
    // Only C is analysed (a Documentation or Kconfig hunk that names an API is not code).
    if (path && !C_FILE.test(path)) return;
    if (fd.binary) {
      if (fd.newPath) this.overlay.set(fd.newPath, { state: 'unknown', reason: 'changed by a binary patch' });
      return;
    }
    if (!fd.hunks.length) {
      // A pure rename, copy or mode change: the text moves with it.
      if ((fd.status === 'renamed' || fd.status === 'copied') && fd.oldPath && fd.newPath) {
        this.overlay.set(fd.newPath, this.overlay.get(fd.oldPath));
        if (fd.status === 'renamed') this.overlay.set(fd.oldPath, { state: 'absent' });
      }
      return;
    }

    // Whole-file mode when the pre-image is known.
    let base: string | undefined;
    if (fd.status === 'added') base = '';
    else {
      const e = this.overlay.get(basePath);
      if (e.state === 'text') base = e.text;
      else if (e.state === 'absent')
        this.diag(part.map.mapSpan(fd.firstLine), `${basePath} does not exist at this point of the series (an earlier patch deleted it): reviewed from the hunks alone`, 'warning', m.index);
      else if (this.overlay.hasTree && e.reason)
        this.diag(part.map.mapSpan(fd.firstLine), `${basePath}: ${e.reason}; reviewed from the hunks alone`, 'info', m.index);
    }
    if (base !== undefined) {
      const applied = applyFile(base, fd);
      if (applied.ok) {
        rf.analysis = 'file';
        if (fd.newPath) this.overlay.set(fd.newPath, { state: 'text', text: applied.text });
        if (fd.status === 'renamed' && fd.oldPath && fd.oldPath !== fd.newPath) this.overlay.set(fd.oldPath, { state: 'absent' });
        this.wholeFile(m, patch, part, fd, path, base, applied);
        return;
      }
      const h = fd.hunks[applied.hunk];
      this.diag(part.map.mapSpan(h.span), `${path}: ${applied.message}; the file is reviewed from the hunks alone`, 'warning', m.index);
    }
    if (fd.newPath) this.overlay.set(fd.newPath, { state: 'unknown', reason: 'an earlier patch of the series did not apply to it' });
    rf.analysis = 'hunk';
    this.fragment(m, patch, part, fd, path);
  }

  // -------------------------------------------------------------------------
  // Hunk mode

  private fragment(m: MailMessage, patch: ReviewedPatch, part: BodyPart, fd: FileDiff, path: string): void {
    const frag = buildFragment(fd);
    const result = this.analyze(frag.text, path);
    this.notices(result, m, part, fd);
    if (!result.findings.length) return;
    const fidx = new LineIndex(frag.text);
    const toFile = (s: Span): Span => {
      const start = part.map.map(frag.map.map(s.start));
      const end = s.end > s.start ? part.map.mapEnd(frag.map.mapEnd(s.end)) : start;
      return { start, end: Math.max(start, end) };
    };
    const where = (offset: number): { on: PatchFinding['on']; line?: number; whole: boolean } => {
      const ref = frag.lines[fidx.lineOf(offset)];
      if (!ref) return { on: 'outside', whole: false };
      const dl = fd.hunks[ref.hunk].lines[ref.line];
      return { on: dl.kind === '+' ? 'added' : 'context', line: dl.newLine, whole: ref.whole };
    };
    const fixText = renamer(frag);
    for (const f of result.findings) {
      const w = where(f.span.start);
      if (w.on !== 'added' && !this.options.allLines) continue;
      const span = toFile(f.span);
      const related: PatchRelated[] = f.related.map((r) => {
        const rw = where(r.start);
        return { ...toFile(r), message: fixText(r.message), ...(rw.line !== undefined ? { target: { file: path, line: rw.line } } : {}) };
      });
      // Precision first: a judgement on part of a function says less.
      const partial = !w.whole;
      patch.findings.push(
        this.finding({ ...f, severity: partial && f.severity === 'error' ? 'warning' : f.severity }, patch, span, related, mapEvents(f.events, toFile), {
          target: { file: path, line: w.line ?? hunkTargetLine(fd.hunks[0]) },
          on: w.on,
          analysis: 'hunk',
          message: fixText(f.message),
          functionName: fixFunction(frag, f.functionName),
          ...(partial ? { partial: true } : {}),
        }),
      );
    }
  }

  // -------------------------------------------------------------------------
  // Whole-file mode

  private wholeFile(m: MailMessage, patch: ReviewedPatch, part: BodyPart, fd: FileDiff, path: string, base: string, applied: Applied): void {
    const post = this.analyze(applied.text, path);
    this.notices(post, m, part, fd);
    if (!post.findings.length) return;
    const pidx = new LineIndex(applied.text);
    // The pre-image is analysed only when a finding is not on an added line (and then once).
    let preFindings: PreFinding[] | undefined;
    const pre = (): PreFinding[] => {
      if (!preFindings) {
        const bidx = new LineIndex(base);
        preFindings = base
          ? this.analyze(base, fd.oldPath ?? path).findings.map((f) => ({ key: f.rule + '\u0000' + f.message, line: bidx.lineOf(f.span.start) + 1, used: false }))
          : [];
      }
      return preFindings;
    };
    const nearestHunk = (line0: number): Hunk => {
      let best = fd.hunks[0];
      let dist = Infinity;
      for (const h of fd.hunks) {
        const from = hunkTargetLine(h) - 1;
        const to = from + Math.max(1, h.newCount) - 1;
        const d = line0 < from ? from - line0 : line0 > to ? line0 - to : 0;
        if (d < dist) {
          dist = d;
          best = h;
        }
      }
      return best;
    };
    /** Post-image offset -> patch file offset, when its line is in a hunk. */
    const point = (offset: number, end: boolean): number | undefined => {
      const line = pidx.lineOf(offset);
      const o = applied.origins[line];
      if (!o || o.kind === 'unchanged') return undefined;
      const dl = fd.hunks[o.hunk].lines[o.line];
      const col = Math.min(offset - pidx.lineStart(line), dl.text.length);
      const at = textStart(dl) + col;
      return end ? part.map.mapEnd(at) : part.map.map(at);
    };
    const toFile = (s: Span): Span | undefined => {
      const start = point(s.start, false);
      if (start === undefined) return undefined;
      let end = s.end > s.start ? point(s.end, true) : start;
      if (end === undefined || end < start) {
        const line = pidx.lineOf(s.start);
        end = point(pidx.lineEnd(line), true) ?? start;
      }
      return { start, end: Math.max(start, end) };
    };
    const anchor = (offset: number): Span => part.map.mapSpan(nearestHunk(pidx.lineOf(offset)).span);

    for (const f of post.findings) {
      const line0 = pidx.lineOf(f.span.start);
      const origin = applied.origins[line0];
      const on: PatchFinding['on'] = origin?.kind === 'added' ? 'added' : origin?.kind === 'context' ? 'context' : 'outside';
      let existing = false;
      if (on !== 'added') {
        const key = f.rule + '\u0000' + f.message;
        const oldLine = origin && origin.kind !== 'added' ? origin.oldLine : -1;
        const match = pre().find((p) => !p.used && p.key === key && p.line === oldLine) ?? pre().find((p) => !p.used && p.key === key);
        if (match) {
          match.used = true;
          existing = true;
        }
      }
      if (existing && !this.options.includeExisting) continue;
      const span = toFile(f.span) ?? anchor(f.span.start);
      const related: PatchRelated[] = f.related.map((r) => {
        const mapped = toFile(r);
        const target = { file: path, line: pidx.lineOf(r.start) + 1 };
        return mapped
          ? { ...mapped, message: r.message, target }
          : { ...anchor(r.start), message: `${r.message} (${path}:${target.line}, not in the patch)`, target };
      });
      patch.findings.push(
        this.finding(f, patch, span, related, mapEvents(f.events, toFile), {
          target: { file: path, line: line0 + 1 },
          on,
          analysis: 'file',
          message: f.message,
          functionName: f.functionName,
          ...(existing ? { existing: true } : {}),
        }),
      );
    }
  }

  private notices(result: AnalysisResult, m: MailMessage, part: BodyPart, fd: FileDiff): void {
    for (const n of result.notices) {
      if (n.kind === 'not-text') continue;
      this.diag(part.map.mapSpan(fd.firstLine), `${fd.newPath ?? fd.oldPath ?? 'this file'}: ${n.message}`, 'warning', m.index);
    }
  }

  private finding(
    f: Finding,
    patch: ReviewedPatch,
    span: Span,
    related: PatchRelated[],
    events: CodeEvent[],
    extra: Pick<PatchFinding, 'target' | 'on' | 'analysis' | 'message' | 'existing' | 'partial'> & { functionName?: string },
  ): PatchFinding {
    const s = this.index.utf16LineColumn(span.start);
    const e = this.index.utf16LineColumn(span.end);
    const out: PatchFinding = {
      rule: f.rule,
      severity: f.severity,
      message: extra.message,
      span,
      related,
      events,
      location: { line: s.line, column: s.column, endLine: e.line, endColumn: e.column },
      target: extra.target,
      patchIndex: patch.index,
      subject: patch.subject,
      on: extra.on,
      analysis: extra.analysis,
    };
    if (extra.functionName) out.functionName = extra.functionName;
    if (extra.existing) out.existing = true;
    if (extra.partial) out.partial = true;
    return out;
  }
}

/** The first line of the post-image a hunk covers (one-based). */
function hunkTargetLine(h: Hunk): number {
  return h.newCount === 0 ? h.newStart + 1 : Math.max(1, h.newStart);
}

function mapEvents(events: readonly CodeEvent[], toFile: (s: Span) => Span | undefined): CodeEvent[] {
  return events.map((e) => {
    if (!e.span) return { ...e };
    const { span, ...rest } = e;
    const mapped = toFile(span);
    return mapped ? { ...rest, span: mapped } : rest;
  });
}

/** Undo the fragment's renames in text the rules wrote. */
function renamer(frag: Fragment): (s: string) => string {
  const subs: Array<[RegExp, string]> = [];
  for (const fn of frag.functions) {
    if (fn.realName) subs.push([new RegExp(`\\b${fn.name}\\b`, 'g'), fn.realName]);
    else if (!fn.realName && fn.name.startsWith('__dmalens_hunk')) {
      subs.push([new RegExp(`\\b${fn.name}\\(\\)`, 'g'), 'the function around this hunk']);
      subs.push([new RegExp(`\\b${fn.name}\\b`, 'g'), 'the function around this hunk']);
    }
  }
  if (!subs.length) return (s) => s;
  return (s) => subs.reduce((acc, [re, to]) => acc.replace(re, to), s);
}

function fixFunction(frag: Fragment, name: string | undefined): string | undefined {
  if (!name) return undefined;
  const fn = frag.functions.find((f) => f.name === name);
  if (!fn) return name;
  return fn.realName ?? (fn.name.startsWith('__dmalens_hunk') ? undefined : name);
}

