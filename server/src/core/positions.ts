/**
 * The one place where offsets and positions convert.
 *
 * - Offsets: indices into the JavaScript string (UTF-16 code units). This is
 *   what web-tree-sitter reports as startIndex/endIndex when it parses a JS
 *   string, and what every Span in the core holds.
 * - LSP positions: zero-based line and UTF-16 character (the protocol default).
 * - Tree-sitter points: zero-based row and column in UTF-16 code units, rows
 *   counted at \n only (tree-sitter's own rule), used for tree.edit() through
 *   diffEdit().
 * - Byte columns: one-based UTF-8 byte columns, what gcc prints and what the
 *   CLI's text and JSON formats use.
 */

export interface LinePosition {
  /** Zero-based line. */
  line: number;
  /** Zero-based UTF-16 code unit within the line. */
  character: number;
}

export class LineIndex {
  /** Offsets at which each line starts. */
  private readonly starts: number[];

  constructor(private readonly text: string) {
    // Line breaks are \n, \r\n and a lone \r, as in the LSP specification.
    const starts = [0];
    if (text.indexOf('\r') < 0) {
      // Only \n: the native search is several times as fast as the loop below.
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
      this.starts = starts;
      return;
    }
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c === 10) starts.push(i + 1);
      else if (c === 13) {
        if (text.charCodeAt(i + 1) === 10) i++;
        starts.push(i + 1);
      }
    }
    this.starts = starts;
  }

  get lineCount(): number {
    return this.starts.length;
  }

  /** Zero-based line containing `offset`. */
  lineOf(offset: number): number {
    const s = this.starts;
    let lo = 0;
    let hi = s.length - 1;
    const o = Math.max(0, Math.min(offset, this.text.length));
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid] <= o) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  lineStart(line: number): number {
    return this.starts[Math.max(0, Math.min(line, this.starts.length - 1))];
  }

  /** End of the line's text, before its line break (\n, \r\n or \r). */
  lineEnd(line: number): number {
    const l = Math.max(0, Math.min(line, this.starts.length - 1));
    if (l + 1 >= this.starts.length) return this.text.length;
    let end = this.starts[l + 1];
    if (end > this.starts[l] && this.text.charCodeAt(end - 1) === 10) end--;
    if (end > this.starts[l] && this.text.charCodeAt(end - 1) === 13) end--;
    return end;
  }

  /** Offset -> LSP position (UTF-16 characters). */
  position(offset: number): LinePosition {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const line = this.lineOf(o);
    return { line, character: o - this.starts[line] };
  }

  /** LSP position -> offset; a character past the line's end means the line's end, as the protocol asks. */
  offsetAt(pos: LinePosition): number {
    if (pos.line >= this.starts.length) return this.text.length;
    if (pos.line < 0) return 0;
    const start = this.starts[pos.line];
    return Math.max(start, Math.min(start + Math.max(0, pos.character), this.lineEnd(pos.line)));
  }

  /** The last byte column computed: findings come in order, and a long line holding many would make counting from the line start quadratic. */
  private lastBytes: { line: number; offset: number; bytes: number } | undefined;

  /** Offset -> one-based line and one-based UTF-8 byte column (gcc style). */
  byteLineColumn(offset: number): { line: number; column: number } {
    const o = Math.max(0, Math.min(offset, this.text.length));
    const line = this.lineOf(o);
    let from = this.starts[line];
    let bytes = 0;
    const last = this.lastBytes;
    // Go on from the last answer on the same line (not from between the halves of a surrogate pair).
    if (last && last.line === line && last.offset <= o && !isHighSurrogate(this.text.charCodeAt(last.offset - 1))) {
      from = last.offset;
      bytes = last.bytes;
    }
    bytes += utf8Length(this.text, from, o);
    this.lastBytes = { line, offset: o, bytes };
    return { line: line + 1, column: bytes + 1 };
  }

  /** Offset -> one-based line and one-based UTF-16 column (SARIF's default column kind). */
  utf16LineColumn(offset: number): { line: number; column: number } {
    const p = this.position(offset);
    return { line: p.line + 1, column: p.character + 1 };
  }
}

/** Number of UTF-8 bytes needed for text[from, to). Lone surrogates count as 3 (U+FFFD). */
export function utf8Length(text: string, from = 0, to = text.length): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < to) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

/**
 * The edit that turns `oldText` into `newText`, as tree-sitter wants it:
 * the common prefix and suffix are kept, the middle changed. Computing the
 * edit from the texts themselves (rather than from the editor's change
 * events) keeps the tree right even when a same-length rewrite of the
 * sanitizer changes bytes outside the edited range.
 */
export interface TextEdit {
  startIndex: number;
  oldEndIndex: number;
  newEndIndex: number;
  startPosition: { row: number; column: number };
  oldEndPosition: { row: number; column: number };
  newEndPosition: { row: number; column: number };
}

export function diffEdit(oldText: string, newText: string): TextEdit | undefined {
  if (oldText === newText) return undefined;
  const max = Math.min(oldText.length, newText.length);
  // Whole blocks first (native string comparison), then code unit by code unit.
  const BLOCK = 1024;
  let pre = 0;
  while (pre + BLOCK <= max && oldText.slice(pre, pre + BLOCK) === newText.slice(pre, pre + BLOCK)) pre += BLOCK;
  while (pre < max && oldText.charCodeAt(pre) === newText.charCodeAt(pre)) pre++;
  let suf = 0;
  const ol = oldText.length;
  const nl = newText.length;
  while (suf + BLOCK <= max - pre && oldText.slice(ol - suf - BLOCK, ol - suf) === newText.slice(nl - suf - BLOCK, nl - suf)) suf += BLOCK;
  while (suf < max - pre && oldText.charCodeAt(ol - 1 - suf) === newText.charCodeAt(nl - 1 - suf)) suf++;
  // Never split a surrogate pair.
  if (pre > 0 && isHighSurrogate(oldText.charCodeAt(pre - 1))) pre--;
  const oldEnd = oldText.length - suf;
  const newEnd = newText.length - suf;
  const startPosition = pointAt(oldText, pre);
  return {
    startIndex: pre,
    oldEndIndex: oldEnd,
    newEndIndex: newEnd,
    startPosition,
    oldEndPosition: pointAfter(startPosition, pre, oldText, oldEnd),
    newEndPosition: pointAfter(startPosition, pre, newText, newEnd),
  };
}

/**
 * Tree-sitter points of offsets of one text (rows at \n only), for the
 * included ranges of a lazy parse (core/parser.ts).
 */
export class PointIndex {
  private readonly starts: number[] = [0];

  constructor(text: string) {
    for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) this.starts.push(i + 1);
  }

  /** The tree-sitter range from `start` to `end`. */
  range(start: number, end: number): { startIndex: number; endIndex: number; startPosition: { row: number; column: number }; endPosition: { row: number; column: number } } {
    return { startIndex: start, endIndex: end, startPosition: this.point(start), endPosition: this.point(end) };
  }

  private point(offset: number): { row: number; column: number } {
    const s = this.starts;
    let lo = 0;
    let hi = s.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid] <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { row: lo, column: offset - s[lo] };
  }
}

/** pointAt(text, offset), from the point `from` at offset `start` (both texts agree up to there). */
function pointAfter(from: { row: number; column: number }, start: number, text: string, offset: number): { row: number; column: number } {
  let row = from.row;
  let lineStart = start - from.column;
  for (let i = text.indexOf('\n', start); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    row++;
    lineStart = i + 1;
  }
  return { row, column: offset - lineStart };
}

function isHighSurrogate(c: number): boolean {
  return c >= 0xd800 && c <= 0xdbff;
}

function pointAt(text: string, offset: number): { row: number; column: number } {
  let row = 0;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) {
    row++;
    lineStart = i + 1;
  }
  return { row, column: offset - lineStart };
}
