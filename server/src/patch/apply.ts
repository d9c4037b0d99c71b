/**
 * Applying a file's hunks in memory, as `patch`/`git apply` would with no
 * fuzz: each hunk's pre-image (context and removed lines) must match the
 * file exactly, at the line its header names or, failing that, at the
 * nearest line above or below (the offset search), never before the end of
 * the previous hunk. Trailing whitespace is not compared (mail transport
 * strips it); nothing else is forgiven. A line a mail client wrapped (see
 * DiffLine.wrapped) is joined to the line before it and compared with all
 * whitespace ignored.
 *
 * The result is the post-image text and, for each of its lines, where it
 * came from: an added or context line of a hunk, or a line the patch does
 * not touch (with its line in the pre-image).
 *
 * The overlay keeps the files of a series as earlier patches left them.
 */
import { LineIndex } from '../core/positions';
import type { DiffLine, FileDiff, Hunk } from './diff';

export type LineOrigin =
  | { kind: 'added'; hunk: number; line: number }
  | { kind: 'context'; hunk: number; line: number; oldLine: number }
  | { kind: 'unchanged'; oldLine: number };

export interface Applied {
  ok: true;
  text: string;
  /** Per post-image line (0-based). */
  origins: LineOrigin[];
  /** Per hunk: lines between where its header said and where it applied. */
  offsets: number[];
}

export interface NotApplied {
  ok: false;
  hunk: number;
  message: string;
}

/** The lines of a text (a final line break does not start another line). */
export function splitLines(text: string): string[] {
  if (text === '') return [];
  const idx = new LineIndex(text);
  let n = idx.lineCount;
  if (idx.lineStart(n - 1) === text.length) n--;
  const out = new Array<string>(n);
  for (let l = 0; l < n; l++) out[l] = text.slice(idx.lineStart(l), idx.lineEnd(l));
  return out;
}

interface Logical {
  kind: ' ' | '+' | '-';
  text: string;
  /** Index of the first hunk line it is made of. */
  index: number;
  joined: boolean;
}

/** Hunk lines with wrapped continuations joined to the line before them. */
function logicalLines(h: Hunk): Logical[] {
  const out: Logical[] = [];
  h.lines.forEach((l: DiffLine, i) => {
    if (l.wrapped && out.length) {
      const prev = out[out.length - 1];
      prev.text += ' ' + l.text;
      prev.joined = true;
    } else out.push({ kind: l.kind, text: l.text, index: i, joined: false });
  });
  return out;
}

const trimEnd = (s: string) => s.replace(/\s+$/, '');
const noSpace = (s: string) => s.replace(/\s+/g, '');

function same(fileLine: string, l: Logical): boolean {
  return l.joined ? noSpace(fileLine) === noSpace(l.text) : trimEnd(fileLine) === trimEnd(l.text);
}

export function applyFile(pre: string, file: FileDiff): Applied | NotApplied {
  const old = splitLines(pre);
  const out: string[] = [];
  const origins: LineOrigin[] = [];
  const offsets: number[] = [];
  let at = 0; // next pre-image line to copy
  let drift = 0;
  for (let hi = 0; hi < file.hunks.length; hi++) {
    const h = file.hunks[hi];
    const lines = logicalLines(h);
    const want = lines.filter((l) => l.kind !== '+');
    const last = old.length - want.length;
    // Where the header says the hunk starts, clamped to where it can start: the
    // search order (nearest first) is the same, and a header claiming line
    // 99999999999999999999 (past 2^53, where d++ stops counting) cannot hang it.
    const claimed = (h.oldCount === 0 ? h.oldStart : h.oldStart - 1) + drift;
    const expected = Number.isFinite(claimed) ? Math.max(at, Math.min(claimed, Math.max(at, last))) : at;
    const matches = (p: number) => {
      for (let i = 0; i < want.length; i++) if (!same(old[p + i], want[i])) return false;
      return true;
    };
    let pos = -1;
    // Nearest first, over the lines a hunk can start at ([at, last]).
    const reach = Math.max(expected - at, last - expected);
    for (let d = 0; d <= reach && pos < 0; d++) {
      for (const p of d === 0 ? [expected] : [expected - d, expected + d]) {
        if (p >= at && p <= last && matches(p)) {
          pos = p;
          break;
        }
      }
    }
    if (pos < 0) return { ok: false, hunk: hi, message: mismatch(old, want, Number.isFinite(claimed) ? Math.max(at, Math.min(claimed, old.length)) : at, h, hi) };
    offsets.push(pos - (h.oldCount === 0 ? h.oldStart : h.oldStart - 1));
    drift = offsets[hi];
    for (; at < pos; at++) {
      out.push(old[at]);
      origins.push({ kind: 'unchanged', oldLine: at + 1 });
    }
    for (const l of lines) {
      if (l.kind === '-') {
        at++;
      } else if (l.kind === ' ') {
        out.push(old[at]);
        origins.push({ kind: 'context', hunk: hi, line: l.index, oldLine: at + 1 });
        at++;
      } else {
        out.push(l.text);
        origins.push({ kind: 'added', hunk: hi, line: l.index });
      }
    }
  }
  for (; at < old.length; at++) {
    out.push(old[at]);
    origins.push({ kind: 'unchanged', oldLine: at + 1 });
  }
  return { ok: true, text: out.length ? out.join('\n') + '\n' : '', origins, offsets };
}

function mismatch(old: readonly string[], want: readonly Logical[], p: number, h: Hunk, hi: number): string {
  const head = `hunk ${hi + 1} (@@ -${h.oldStart},${h.oldCount} +${h.newStart},${h.newCount} @@) does not apply`;
  for (let i = 0; i < want.length; i++) {
    if (p + i >= old.length) return `${head}: the file ends at line ${old.length}, before the hunk does`;
    if (!same(old[p + i], want[i])) {
      const show = (s: string) => JSON.stringify(s.length > 60 ? s.slice(0, 57) + '...' : s);
      return `${head}: line ${p + i + 1} of the file is ${show(old[p + i])} where the hunk expects ${show(want[i].text)}, and no other place matches`;
    }
  }
  return `${head}: its lines are not found in the file`;
}

/** What the overlay knows about a path. */
export type OverlayEntry = { state: 'text'; text: string } | { state: 'absent' } | { state: 'unknown'; reason?: string };

/**
 * The files of a series as the patches applied so far left them, over the
 * tree the caller can read (readTarget). The engine itself does no I/O.
 */
export class Overlay {
  private readonly files = new Map<string, OverlayEntry>();

  constructor(private readonly readTarget?: (path: string) => string | undefined) {}

  get hasTree(): boolean {
    return !!this.readTarget;
  }

  get(path: string): OverlayEntry {
    const e = this.files.get(path);
    if (e) return e;
    if (!this.readTarget) return { state: 'unknown', reason: 'no tree to read' };
    let text: string | undefined;
    try {
      text = this.readTarget(path);
    } catch (err) {
      return { state: 'unknown', reason: `reading it failed: ${err instanceof Error ? err.message : String(err)}` };
    }
    return typeof text === 'string' ? { state: 'text', text } : { state: 'unknown', reason: 'not found in the tree' };
  }

  set(path: string, entry: OverlayEntry): void {
    this.files.set(path, entry);
  }
}
