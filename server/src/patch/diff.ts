/**
 * Unified diffs: `git diff`/`git format-patch` (extended headers: new and
 * deleted files, modes, renames and copies with similarity, binary
 * patches), GNU `diff -u` (with timestamps), several files per patch and
 * several hunks per file, `\ No newline at end of file`.
 *
 * Reads a decoded mail body or a plain .diff/.patch file and skips what is
 * not diff (the commit message, the diffstat, the `-- ` signature). Problems
 * (hunk counts that do not match, hunks cut short, lines with an unknown
 * prefix) become diagnostics at the broken line; what can be read is kept.
 * Offsets are into the text given; lines go through core/positions.ts.
 * Never throws.
 */
import { LineIndex } from '../core/positions';
import type { Severity, Span } from '../core/types';

export interface DiffLine {
  kind: ' ' | '+' | '-';
  /** The line without its prefix character and line break. */
  text: string;
  /** Offset of the prefix character. */
  start: number;
  /** Offset of the end of the line (before its break). */
  end: number;
  /** One-based line in the pre-image (context and removed lines). */
  oldLine?: number;
  /** One-based line in the post-image (context and added lines). */
  newLine?: number;
  /** Followed by `\ No newline at end of file`. */
  noNewline?: boolean;
  /**
   * A line without a prefix inside a hunk, read as the continuation of the
   * line before it (a mail client wrapped it): its text starts at `start`,
   * and it shares the previous line's line numbers.
   */
  wrapped?: boolean;
}

/** Offset of the first character of a line's text (after the prefix, if it has one). */
export function textStart(line: DiffLine): number {
  return line.wrapped ? line.start : line.start + 1;
}

export interface Hunk {
  /** The `@@ ... @@` line. */
  span: Span;
  oldStart: number;
  oldCount: number;
  newStart: number;
  newCount: number;
  /** The text after the closing `@@` (the enclosing function, for diff -p and git). */
  section: string;
  sectionSpan?: Span;
  lines: DiffLine[];
  /** Its lines matched the counts in the header. */
  complete: boolean;
}

export type FileStatus = 'modified' | 'added' | 'deleted' | 'renamed' | 'copied';

export interface FileDiff {
  /** Pre-image path (prefix like a/ removed); undefined for /dev/null. */
  oldPath?: string;
  /** Post-image path (prefix like b/ removed); undefined for /dev/null. */
  newPath?: string;
  status: FileStatus;
  binary: boolean;
  /** `similarity index` of a rename or copy, in percent. */
  similarity?: number;
  oldMode?: string;
  newMode?: string;
  /** `diff --git` header. */
  git: boolean;
  /** From the `diff --git` (or `---`) line to the `+++` line (or the last extended header). */
  span: Span;
  /** Span of the first header line (`diff --git ...` or `--- ...`). */
  firstLine: Span;
  hunks: Hunk[];
}

export interface DiffDiagnostic {
  span: Span;
  message: string;
  severity: Severity;
}

export interface ParsedDiff {
  files: FileDiff[];
  diagnostics: DiffDiagnostic[];
}

export interface DiffOptions {
  /**
   * Leading path components to strip (like `patch -p`). Default: git
   * prefixes (a/, b/, and i/ w/ c/ o/ for mnemonic prefixes) are removed;
   * in a plain diff whose two names start with different directories
   * (`linux.orig/mm/x.c`, `linux/mm/x.c`) the first component is removed.
   */
  strip?: number;
}

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@(?: ?(.*))?$/;

export function parseDiff(text: string, options: DiffOptions = {}): ParsedDiff {
  const files: FileDiff[] = [];
  const diagnostics: DiffDiagnostic[] = [];
  try {
    new DiffParser(text, options, files, diagnostics).run();
  } catch (e) {
    diagnostics.push({
      span: { start: 0, end: 0 },
      message: `the diff could not be read: ${e instanceof Error ? e.message : String(e)}`,
      severity: 'error',
    });
  }
  return { files, diagnostics };
}

class DiffParser {
  private readonly idx: LineIndex;
  private readonly n: number;
  private cur: FileDiff | undefined;
  /** Raw names of the current file as written (before prefix stripping). */
  private names: { old?: string; new?: string } = {};

  constructor(
    private readonly text: string,
    private readonly options: DiffOptions,
    private readonly files: FileDiff[],
    private readonly diagnostics: DiffDiagnostic[],
  ) {
    this.idx = new LineIndex(text);
    this.n = this.idx.lineCount;
  }

  private line(l: number): string {
    return this.text.slice(this.idx.lineStart(l), this.idx.lineEnd(l));
  }

  private span(l: number): Span {
    return { start: this.idx.lineStart(l), end: this.idx.lineEnd(l) };
  }

  private diag(l: number, message: string, severity: Severity = 'error'): void {
    const at = l < this.n ? this.span(l) : { start: this.text.length, end: this.text.length };
    this.diagnostics.push({ span: at, message, severity });
  }

  run(): void {
    let l = 0;
    while (l < this.n) {
      const t = this.line(l);
      const c = t.charCodeAt(0);
      if (c === 100 /* d */ && t.startsWith('diff --git ')) {
        l = this.gitHeader(l);
      } else if (c === 100 && /^diff --(cc|combined) /.test(t)) {
        this.diag(l, 'combined diffs (merge commits) are not analysed', 'info');
        this.finishFile();
        l++;
        while (l < this.n && !this.line(l).startsWith('diff ')) l++;
      } else if (c === 45 /* - */ && t.startsWith('--- ') && l + 1 < this.n && this.line(l + 1).startsWith('+++ ')) {
        this.finishFile();
        this.startFile(l, false);
        this.names = { old: pathOf(t.slice(4)), new: pathOf(this.line(l + 1).slice(4)) };
        this.cur!.span = { start: this.idx.lineStart(l), end: this.idx.lineEnd(l + 1) };
        l += 2;
      } else if (c === 64 /* @ */ && t.startsWith('@@ ')) {
        if (!this.cur) {
          this.diag(l, 'a hunk without a file header (`--- a/...`, `+++ b/...`) before it: analysed without a file name', 'warning');
          this.startFile(l, false);
          this.cur!.span = this.span(l);
        }
        l = this.hunk(l);
      } else if (c === 66 /* B */ && /^Binary files .* differ$/.test(t)) {
        if (!this.cur || this.cur.hunks.length || !this.cur.git) {
          this.finishFile();
          this.startFile(l, false);
          const m = /^Binary files (.*) and (.*) differ$/.exec(t);
          this.names = { old: m ? pathOf(m[1]) : undefined, new: m ? pathOf(m[2]) : undefined };
          this.cur!.span = this.span(l);
        }
        this.cur!.binary = true;
        l++;
      } else {
        l++;
      }
    }
    this.finishFile();
  }

  private startFile(l: number, git: boolean): void {
    this.cur = {
      status: 'modified',
      binary: false,
      git,
      span: this.span(l),
      firstLine: this.span(l),
      hunks: [],
    };
    this.names = {};
  }

  private finishFile(): void {
    const f = this.cur;
    if (!f) return;
    this.cur = undefined;
    const strip = this.options.strip;
    let oldName = this.names.old;
    let newName = this.names.new;
    if (oldName === '/dev/null') {
      oldName = undefined;
      if (f.status === 'modified') f.status = 'added';
    }
    if (newName === '/dev/null') {
      newName = undefined;
      if (f.status === 'modified') f.status = 'deleted';
    }
    if (strip !== undefined) {
      f.oldPath = oldName !== undefined ? stripComponents(oldName, strip) : undefined;
      f.newPath = newName !== undefined ? stripComponents(newName, strip) : undefined;
    } else if (f.git) {
      f.oldPath = oldName !== undefined ? oldName.replace(/^[aicow]\//, '') : undefined;
      f.newPath = newName !== undefined ? newName.replace(/^[bicow]\//, '') : undefined;
    } else {
      const o = oldName?.split('/');
      const nn = newName?.split('/');
      let k = 0;
      if (o && nn && o.length > 1 && nn.length > 1 && o[0] !== nn[0]) k = 1;
      else if (!o && nn && nn.length > 1 && /^(b|new|linux[^/]*)$/.test(nn[0])) k = 1;
      else if (o && !nn && o.length > 1 && /^(a|old|linux[^/]*)$/.test(o[0])) k = 1;
      f.oldPath = oldName !== undefined ? stripComponents(oldName, k) : undefined;
      f.newPath = newName !== undefined ? stripComponents(newName, k) : undefined;
    }
    this.files.push(f);
  }

  /** `diff --git a/x b/y` and its extended headers. Returns the next line to read. */
  private gitHeader(l: number): number {
    this.finishFile();
    this.startFile(l, true);
    const f = this.cur!;
    const both = splitGitPaths(this.line(l).slice('diff --git '.length));
    this.names = { old: both?.[0], new: both?.[1] };
    let last = l;
    l++;
    for (; l < this.n; l++) {
      const t = this.line(l);
      let m: RegExpExecArray | null;
      if ((m = /^old mode (\d+)/.exec(t))) f.oldMode = m[1];
      else if ((m = /^new mode (\d+)/.exec(t))) f.newMode = m[1];
      else if ((m = /^deleted file mode (\d+)/.exec(t))) {
        f.status = 'deleted';
        f.oldMode = m[1];
      } else if ((m = /^new file mode (\d+)/.exec(t))) {
        f.status = 'added';
        f.newMode = m[1];
      } else if ((m = /^(rename|copy) from (.*)$/.exec(t))) {
        f.status = m[1] === 'rename' ? 'renamed' : 'copied';
        this.names.old = 'a/' + unquote(m[2]);
      } else if ((m = /^(rename|copy) to (.*)$/.exec(t))) {
        f.status = m[1] === 'rename' ? 'renamed' : 'copied';
        this.names.new = 'b/' + unquote(m[2]);
      } else if ((m = /^(?:dis)?similarity index (\d+)%/.exec(t))) f.similarity = +m[1];
      else if (/^index [0-9a-f]+\.\.[0-9a-f]+/.test(t)) {
        /* blob ids: nothing to keep */
      } else if (/^Binary files .* differ$/.test(t) || t === 'GIT binary patch') {
        f.binary = true;
      } else if (t.startsWith('--- ') && l + 1 < this.n && this.line(l + 1).startsWith('+++ ')) {
        const o = pathOf(t.slice(4));
        const nn = pathOf(this.line(l + 1).slice(4));
        if (o !== undefined) this.names.old = o;
        if (nn !== undefined) this.names.new = nn;
        last = l + 1;
        l += 2;
        break;
      } else break;
      last = l;
    }
    f.span = { start: f.firstLine.start, end: this.idx.lineEnd(last) };
    return l;
  }

  /** One hunk starting at its header line `h`. Returns the next line to read. */
  private hunk(h: number): number {
    const f = this.cur!;
    const header = this.line(h);
    const m = HUNK_HEADER.exec(header);
    if (!m) {
      this.diag(h, `malformed hunk header "${header.slice(0, 60)}": the hunk is skipped`);
      let l = h + 1;
      while (l < this.n && /^[-+ \\]/.test(this.line(l)) && !this.line(l).startsWith('--- ')) l++;
      return l;
    }
    const oldStart = +m[1];
    const oldCount = m[2] !== undefined ? +m[2] : 1;
    const newStart = +m[3];
    const newCount = m[4] !== undefined ? +m[4] : 1;
    const section = m[5] ?? '';
    const hs = this.span(h);
    const hunk: Hunk = {
      span: hs,
      oldStart,
      oldCount,
      newStart,
      newCount,
      section: section.replace(/\s+$/, ''),
      ...(section.trim() ? { sectionSpan: { start: hs.end - section.length, end: hs.end - section.length + section.replace(/\s+$/, '').length } } : {}),
      lines: [],
      complete: false,
    };
    f.hunks.push(hunk);
    let oldLeft = oldCount;
    let newLeft = newCount;
    let oldNo = oldCount === 0 ? oldStart + 1 : oldStart;
    let newNo = newCount === 0 ? newStart + 1 : newStart;
    let extended = false;
    const push = (kind: ' ' | '+' | '-', l: number) => {
      const s = this.idx.lineStart(l);
      const e = this.idx.lineEnd(l);
      const line: DiffLine = { kind, text: this.text.slice(s + 1, e), start: s, end: e };
      if (kind !== '+') line.oldLine = oldNo++;
      if (kind !== '-') line.newLine = newNo++;
      hunk.lines.push(line);
    };
    let l = h + 1;
    for (; l < this.n; l++) {
      const t = this.line(l);
      const c = t.charCodeAt(0);
      if (c === 92 /* \ */) {
        const prev = hunk.lines[hunk.lines.length - 1];
        if (prev) prev.noNewline = true;
        continue;
      }
      if (oldLeft <= 0 && newLeft <= 0) {
        // Complete. More hunk lines right after it mean the counts in the header are wrong.
        if (this.continuesHunk(l)) {
          extended = true;
        } else break;
      }
      if (c === 32 /* space */ || t === '') {
        if (t === '' && (oldLeft <= 0 || newLeft <= 0) && !extended) break;
        push(' ', l);
        oldLeft--;
        newLeft--;
      } else if (c === 43 /* + */) {
        push('+', l);
        newLeft--;
      } else if (c === 45 /* - */) {
        if (t === '-- ' && (l + 1 >= this.n || /^\d+\.\d+|^$/.test(this.line(l + 1)))) break; // the signature
        if (t.startsWith('--- ') && l + 1 < this.n && this.line(l + 1).startsWith('+++ ') && oldLeft <= 0) break;
        push('-', l);
        oldLeft--;
      } else if (t.startsWith('@@ ') || t.startsWith('diff ')) {
        break;
      } else {
        // An unknown prefix: most often a line a mail client wrapped.
        const next = l + 1 < this.n ? this.line(l + 1) : undefined;
        const resumes = next !== undefined && /^[-+ \\]/.test(next) && !next.startsWith('-- ') && !next.startsWith('diff ');
        const prev = hunk.lines[hunk.lines.length - 1];
        if (resumes && prev) {
          // Read as the continuation of the line before it (no prefix, same line of the image).
          this.diag(l, 'not a diff line (no +, - or space prefix): the mail client probably wrapped the line before it; read as its continuation', 'warning');
          const s = this.idx.lineStart(l);
          const line: DiffLine = { kind: prev.kind, text: t, start: s, end: this.idx.lineEnd(l), wrapped: true };
          if (prev.oldLine !== undefined) line.oldLine = prev.oldLine;
          if (prev.newLine !== undefined) line.newLine = prev.newLine;
          hunk.lines.push(line);
          continue;
        }
        this.diag(
          l,
          resumes
            ? 'not a diff line (no +, - or space prefix); skipped'
            : `the hunk ${headerName(hunk)} ends early: ${describeLeft(oldLeft, newLeft)} (truncated or damaged patch?)`,
        );
        if (!resumes) {
          hunk.complete = false;
          return l;
        }
      }
    }
    const realOld = hunk.lines.filter((x) => x.kind !== '+' && !x.wrapped).length;
    const realNew = hunk.lines.filter((x) => x.kind !== '-' && !x.wrapped).length;
    if (oldLeft > 0 || newLeft > 0) {
      if (l >= this.n) {
        const end = this.text.length;
        this.diagnostics.push({
          span: { start: end, end },
          message: `the text ends inside the hunk ${headerName(hunk)}: ${describeLeft(oldLeft, newLeft)} (truncated patch or mail?)`,
          severity: 'error',
        });
      } else {
        this.diag(l, `the hunk ${headerName(hunk)} ends early: ${describeLeft(oldLeft, newLeft)} (wrong counts in its header, or a truncated patch)`);
      }
    } else if (oldLeft < 0 || newLeft < 0 || extended) {
      this.diagnostics.push({
        span: hs,
        message: `hunk header says -${oldStart},${oldCount} +${newStart},${newCount} but the hunk has ${realOld} old and ${realNew} new lines: the counts are wrong (a hand-edited patch?); the lines are analysed as they are`,
        severity: 'error',
      });
    } else hunk.complete = true;
    return l;
  }

  /** After a complete hunk, whether line l still looks like part of it (the header counted too few lines). */
  private continuesHunk(l: number): boolean {
    const t = this.line(l);
    if (t === '' || t.startsWith('@@') || t.startsWith('diff ')) return false;
    if (t === '-- ' || t === '--') return false;
    if (t.startsWith('--- ') && l + 1 < this.n && this.line(l + 1).startsWith('+++ ')) return false;
    if (t.startsWith('+++ ')) return false;
    if (t[0] === '+' || t[0] === '-') return true;
    // Kernel code as a context line: a space and then a tab (or more spaces).
    return /^ (\t| {4,}\S|[}{#]|$)/.test(t);
  }
}

/** `@@ -a,b +c,d @@`: how messages name a hunk (line numbers of a decoded mail body would mislead). */
function headerName(h: Hunk): string {
  return `@@ -${h.oldStart},${h.oldCount} +${h.newStart},${h.newCount} @@`;
}

function describeLeft(oldLeft: number, newLeft: number): string {
  const parts: string[] = [];
  if (oldLeft > 0) parts.push(`${oldLeft} old line${oldLeft === 1 ? '' : 's'}`);
  if (newLeft > 0) parts.push(`${newLeft} new line${newLeft === 1 ? '' : 's'}`);
  return `${parts.join(' and ')} missing`;
}

function stripComponents(p: string, k: number): string {
  if (k <= 0) return p;
  const parts = p.split('/');
  return parts.length > k ? parts.slice(k).join('/') : parts[parts.length - 1];
}

/** The path of a `---`/`+++` line: C-quoted or not, without a trailing timestamp. */
function pathOf(s: string): string | undefined {
  let t = s;
  if (t.startsWith('"')) {
    const q = readQuoted(t, 0);
    if (q) return q.value;
  }
  const tab = t.indexOf('\t');
  if (tab >= 0) t = t.slice(0, tab);
  else t = t.replace(/\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?( [+-]\d{4})?$/, '');
  t = t.replace(/\s+\((revision \d+|working copy)\)$/, '').trimEnd();
  return t || undefined;
}

function unquote(s: string): string {
  if (s.startsWith('"')) return readQuoted(s, 0)?.value ?? s;
  return s;
}

/** Reads a git C-quoted string starting at s[i] === '"'. */
function readQuoted(s: string, i: number): { value: string; end: number } | undefined {
  const bytes: number[] = [];
  let k = i + 1;
  for (; k < s.length; k++) {
    const c = s[k];
    if (c === '"') {
      let value: string;
      try {
        value = new TextDecoder('utf-8').decode(new Uint8Array(bytes));
      } catch {
        value = String.fromCharCode(...bytes);
      }
      return { value, end: k + 1 };
    }
    if (c === '\\' && k + 1 < s.length) {
      const d = s[++k];
      const esc: Record<string, number> = { n: 10, t: 9, '"': 34, '\\': 92, a: 7, b: 8, f: 12, r: 13, v: 11 };
      if (/[0-7]/.test(d)) {
        const oct = s.slice(k, k + 3);
        bytes.push(parseInt(oct, 8) & 0xff);
        k += 2;
      } else bytes.push(esc[d] ?? d.charCodeAt(0));
    } else {
      const cp = s.codePointAt(k)!;
      if (cp < 0x80) bytes.push(cp);
      else {
        for (const b of new TextEncoder().encode(String.fromCodePoint(cp))) bytes.push(b);
        if (cp > 0xffff) k++;
      }
    }
  }
  return undefined;
}

/** `a/x b/x` (or quoted names) from a `diff --git` line. */
function splitGitPaths(s: string): [string, string] | undefined {
  if (s.startsWith('"')) {
    const a = readQuoted(s, 0);
    if (!a) return undefined;
    const rest = s.slice(a.end).trimStart();
    const b = rest.startsWith('"') ? readQuoted(rest, 0)?.value : rest;
    return b !== undefined ? [a.value, b] : undefined;
  }
  const q = s.indexOf(' "');
  if (q > 0) {
    const b = readQuoted(s, q + 1);
    if (b) return [s.slice(0, q), b.value];
  }
  // Same name on both sides (the usual case): the split is in the middle.
  if (s.length % 2 === 1) {
    const half = (s.length - 1) / 2;
    const a = s.slice(0, half);
    const b = s.slice(half + 1);
    if (s[half] === ' ' && a.replace(/^[^/]*\//, '') === b.replace(/^[^/]*\//, '')) return [a, b];
  }
  const k = s.indexOf(' b/');
  if (k > 0) return [s.slice(0, k), s.slice(k + 1)];
  const sp = s.indexOf(' ');
  return sp > 0 ? [s.slice(0, sp), s.slice(sp + 1)] : undefined;
}
