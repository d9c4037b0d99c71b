/**
 * Kernel-style text for fixes: lines and their indentation, visual columns
 * (tabs are 8 wide), calls wrapped the way the kernel wraps them (arguments
 * aligned with the open parenthesis, lines under 100 columns), statements
 * inserted around a statement (with braces added when it is the body of an
 * if/else/loop), and edits normalised for the faces.
 *
 * Offsets become lines only through core/positions.ts (LineIndex).
 */
import { type AstNode, field } from '../core/ast';
import { LineIndex } from '../core/positions';
import type { FixEdit } from './types';

/** Lines must stay under this many columns (checkpatch's limit is 100). */
export const MAX_COLUMNS = 100;
export const TAB = 8;

/** Visual width of `s` when it starts at column `from`. */
export function width(s: string, from = 0): number {
  let col = from;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 9) col = (Math.floor(col / TAB) + 1) * TAB;
    else if (c < 0xdc00 || c > 0xdfff) col++;
  }
  return col - from;
}

/** Whitespace from column 0 to `col`, the kernel way: tabs, then spaces. */
export function alignment(col: number): string {
  return '\t'.repeat(Math.floor(col / TAB)) + ' '.repeat(col % TAB);
}

/** Whether a line (starting at column 0) fits. */
export function fits(line: string): boolean {
  return width(line) < MAX_COLUMNS;
}

/** The text being fixed, with a line index. */
export class Src {
  readonly index: LineIndex;
  /** The line break to write: the file's own (\r\n when its first line ends so). */
  readonly eol: string;

  constructor(readonly text: string) {
    this.index = new LineIndex(text);
    const first = text.indexOf('\n');
    this.eol = first > 0 && text.charCodeAt(first - 1) === 13 ? '\r\n' : '\n';
  }

  t(n: { start: number; end: number }): string {
    return this.text.slice(n.start, n.end);
  }

  line(offset: number): number {
    return this.index.lineOf(offset);
  }

  lineStart(line: number): number {
    return this.index.lineStart(line);
  }

  lineEnd(line: number): number {
    return this.index.lineEnd(line);
  }

  lineText(line: number): string {
    return this.text.slice(this.lineStart(line), this.lineEnd(line));
  }

  /** Leading whitespace of the line holding `offset`. */
  indentAt(offset: number): string {
    return /^[ \t]*/.exec(this.lineText(this.line(offset)))![0];
  }

  /** Only whitespace before `offset` on its line. */
  startsLine(offset: number): boolean {
    return /^[ \t]*$/.test(this.text.slice(this.lineStart(this.line(offset)), offset));
  }

  /** Only whitespace, or a comment that ends on the line, after `offset` on its line. */
  endsLine(offset: number): boolean {
    const rest = this.text.slice(offset, this.lineEnd(this.line(offset)));
    return /^\s*(\/\*(?:(?!\*\/).)*\*\/\s*|\/\/.*)?$/.test(rest);
  }

  /** Visual column of `offset` on its line. */
  col(offset: number): number {
    return width(this.text.slice(this.lineStart(this.line(offset)), offset));
  }

  /** Whether line `l` is empty or whitespace. */
  blank(l: number): boolean {
    return /^\s*$/.test(this.lineText(l));
  }

  /** Start of the line after the one holding `offset` (or the end of the text). */
  nextLineStart(offset: number): number {
    const l = this.line(offset);
    return l + 1 < this.index.lineCount ? this.lineStart(l + 1) : this.text.length;
  }
}

/** An identifier not yet used in the text (`base`, else `base2`, `base3`, ...). */
export function freshName(text: string, base: string): string {
  for (let i = 1; ; i++) {
    const name = i === 1 ? base : `${base}${i}`;
    if (!new RegExp(`\\b${name}\\b`).test(text)) return name;
  }
}

/**
 * A call statement in kernel style: `indent + head + args + tail` on one line
 * when it fits, else arguments filled greedily with continuation lines
 * aligned just after the open parenthesis that ends `head`.
 */
export function formatCall(indent: string, head: string, args: readonly string[], tail: string): string[] {
  const one = indent + head + args.join(', ') + tail;
  if (fits(one) || args.length < 2) return [one];
  const alignCol = width(indent + head);
  const cont = alignment(alignCol);
  const lines: string[] = [];
  let cur = indent + head;
  let fresh = true;
  for (let i = 0; i < args.length; i++) {
    const last = i === args.length - 1;
    const piece = args[i] + (last ? tail : ',');
    const candidate = fresh ? cur + piece : cur + ' ' + piece;
    if (!fresh && !fits(candidate)) {
      lines.push(cur);
      cur = cont + piece;
    } else cur = candidate;
    fresh = false;
  }
  lines.push(cur);
  return lines;
}

/** Collapses an expression that spans lines into one line (its text otherwise kept). */
export function oneLine(s: string): string {
  return s.replace(/\s*\r?\n\s*/g, ' ');
}

// ---------------------------------------------------------------- statements

const STATEMENTS = new Set([
  'expression_statement', 'declaration', 'return_statement', 'if_statement', 'while_statement', 'do_statement',
  'for_statement', 'switch_statement', 'break_statement', 'continue_statement', 'goto_statement',
  'labeled_statement', 'compound_statement',
]);

/** The statement holding `n` (the innermost ancestor that is one). */
export function statementOf(n: AstNode): AstNode | undefined {
  let cur: AstNode | undefined = n;
  while (cur && !STATEMENTS.has(cur.type)) cur = cur.parent;
  return cur;
}

/** Function-body-level statement lists a statement may sit in directly. */
function inList(s: AstNode): boolean {
  const p = s.parent;
  if (!p) return false;
  if (p.type === 'compound_statement') return true;
  if (p.type === 'labeled_statement') return !!p.parent && p.parent.type === 'compound_statement';
  if (p.type === 'case_statement') return s.field !== 'value';
  return false;
}

/** Where an unbraced body hangs: the end of its header (`if (x)`, `else`, `while (x)`). */
function headerEnd(body: AstNode): number | undefined {
  const p = body.parent;
  if (!p) return undefined;
  if (p.type === 'else_clause') return p.start + 4;
  if (p.type === 'if_statement' || p.type === 'while_statement') {
    if (body.field !== 'consequence' && body.field !== 'body') return undefined;
    return field(p, 'condition')?.end;
  }
  if (p.type === 'for_statement' && body.field === 'body') return undefined;
  return undefined;
}

/**
 * Edits that put the statement lines `before` above `stmt` and `after` below
 * it, each indented like `stmt`. When `stmt` is the unbraced body of an if,
 * else or while, braces are added (kernel style: `if (x) {`, `} else {`, and
 * the other arm of an if/else braced too). Undefined when the layout is not
 * one it can edit safely (the statement shares its line with other code).
 */
export function surround(src: Src, stmt: AstNode, before: readonly string[], after: readonly string[]): FixEdit[] | undefined {
  if (!src.startsLine(stmt.start) || !src.endsLine(stmt.end)) return undefined;
  const eol = src.eol;
  if (inList(stmt)) {
    const indent = src.indentAt(stmt.start);
    const edits: FixEdit[] = [];
    if (before.length) {
      const at = src.lineStart(src.line(stmt.start));
      edits.push({ start: at, end: at, newText: before.map((l) => indent + l + eol).join('') });
    }
    if (after.length) {
      const at = src.lineEnd(src.line(stmt.end));
      edits.push({ start: at, end: at, newText: after.map((l) => eol + indent + l).join('') });
    }
    return edits;
  }
  return braceAround(src, stmt, before, after);
}

function braceAround(src: Src, stmt: AstNode, before: readonly string[], after: readonly string[]): FixEdit[] | undefined {
  const hEnd = headerEnd(stmt);
  if (hEnd === undefined || stmt.type === 'compound_statement') return undefined;
  if (src.line(hEnd) === src.line(stmt.start)) return undefined;
  const eol = src.eol;
  const p = stmt.parent!;
  const headIndent = src.indentAt(p.type === 'else_clause' ? p.start : hEnd);
  const edits: FixEdit[] = [];
  const bodyEdits = (body: AstNode, bef: readonly string[], aft: readonly string[], close: string | undefined): boolean => {
    const he = headerEnd(body);
    if (he === undefined || src.line(he) === src.line(body.start) || !src.startsLine(body.start) || !src.endsLine(body.end)) return false;
    const ind = src.indentAt(body.start);
    edits.push({ start: he, end: he, newText: ' {' });
    const s = src.lineStart(src.line(body.start));
    if (bef.length) edits.push({ start: s, end: s, newText: bef.map((l) => ind + l + eol).join('') });
    const e = src.lineEnd(src.line(body.end));
    const tailLines = aft.map((l) => eol + ind + l).join('');
    edits.push({ start: e, end: e, newText: tailLines + (close !== undefined ? eol + close : '') });
    return true;
  };
  if (p.type === 'if_statement' && stmt.field === 'consequence') {
    const alt = field(p, 'alternative');
    if (!alt) {
      if (!bodyEdits(stmt, before, after, headIndent + '}')) return undefined;
      return edits;
    }
    // `} else`: the else keyword must start its line.
    if (!src.startsLine(alt.start)) return undefined;
    if (!bodyEdits(stmt, before, after, undefined)) return undefined;
    const elseLineStart = src.lineStart(src.line(alt.start));
    edits.push({ start: elseLineStart, end: alt.start, newText: headIndent + '} ' });
    const altBody = alt.children[0];
    if (altBody && altBody.type !== 'compound_statement' && altBody.type !== 'if_statement') {
      if (!bodyEdits(altBody, [], [], headIndent + '}')) return undefined;
    }
    return edits;
  }
  if (p.type === 'else_clause') {
    const ifs = p.parent;
    const cons = ifs && field(ifs, 'consequence');
    if (!ifs || !cons) return undefined;
    if (cons.type !== 'compound_statement') {
      if (!bodyEdits(cons, [], [], undefined)) return undefined;
      if (!src.startsLine(p.start)) return undefined;
      edits.push({ start: src.lineStart(src.line(p.start)), end: p.start, newText: headIndent + '} ' });
    }
    if (!bodyEdits(stmt, before, after, headIndent + '}')) return undefined;
    return edits;
  }
  if (p.type === 'while_statement') {
    if (!bodyEdits(stmt, before, after, headIndent + '}')) return undefined;
    return edits;
  }
  return undefined;
}

/** Edits removing a whole statement line (the statement must be alone on its lines). */
export function deleteStatement(src: Src, stmt: AstNode): FixEdit | undefined {
  if (!src.startsLine(stmt.start) || !src.endsLine(stmt.end)) return undefined;
  if (!inList(stmt)) return undefined;
  const start = src.lineStart(src.line(stmt.start));
  const end = src.nextLineStart(stmt.end);
  return { start, end, newText: '' };
}

// ---------------------------------------------------------------- calls

/**
 * Edits that re-indent the continuation lines of a call's arguments after
 * its open parenthesis moved `delta` columns (a renamed callee, an inserted
 * `(void __iomem *)` before it), when they were aligned with it.
 */
export function realign(src: Src, call: AstNode, delta: number): FixEdit[] {
  if (delta === 0) return [];
  const args = field(call, 'arguments');
  if (!args) return [];
  const open = args.start;
  const oldCol = src.col(open) + 1;
  const first = src.line(open);
  const last = src.line(args.end);
  const edits: FixEdit[] = [];
  for (let l = first + 1; l <= last; l++) {
    const text = src.lineText(l);
    const ws = /^[ \t]*/.exec(text)![0];
    if (ws.length === text.length) continue;
    if (width(ws) !== oldCol) continue;
    const s = src.lineStart(l);
    edits.push({ start: s, end: s + ws.length, newText: alignment(Math.max(0, oldCol + delta)) });
  }
  return edits;
}

/**
 * Edits renaming the function a call calls (`dma_buf_map_attachment` ->
 * `..._unlocked`), realigning its arguments; a call that no longer fits is
 * wrapped again.
 */
export function renameCallee(src: Src, call: AstNode, name: string): FixEdit[] {
  const f = field(call, 'function');
  if (!f) return [];
  const old = src.t(f);
  const first = src.line(call.start);
  const line = src.lineText(first);
  const at = f.start - src.lineStart(first);
  if (!fits(line.slice(0, at) + name + line.slice(at + old.length).replace(/\s*(\/\*.*|\/\/.*)$/, ''))) {
    const args = (field(call, 'arguments')?.children ?? []).map((a) => oneLine(src.t(a)));
    const e = rewrapCall(src, call, name, args);
    if (e) return [e];
  }
  return [{ start: f.start, end: f.end, newText: name }, ...realign(src, call, name.length - old.length)];
}

/**
 * The lines holding a call, rewritten with the call to `name(args)` laid out
 * the kernel way (what precedes and follows the call on its lines is kept).
 * Undefined when comments sit inside the arguments (they would be lost).
 */
export function rewrapCall(src: Src, call: AstNode, name: string, args: readonly string[]): FixEdit | undefined {
  const list = field(call, 'arguments');
  if (!list || /\/\*|\/\//.test(src.t(list))) return undefined;
  const l0 = src.line(call.start);
  const start = src.lineStart(l0);
  const end = src.lineEnd(src.line(call.end));
  const indent = src.indentAt(call.start);
  const prefix = src.text.slice(start + indent.length, call.start);
  const suffix = src.text.slice(call.end, end);
  // Trailing comments do not count against the width of the code.
  const comment = /\s*(\/\*.*\*\/|\/\/.*)$/.exec(suffix)?.[0] ?? '';
  const lines = formatCall(indent, prefix + name + '(', args, ')' + suffix.slice(0, suffix.length - comment.length));
  lines[lines.length - 1] += comment;
  return { start, end, newText: lines.join(src.eol) };
}

// ---------------------------------------------------------------- edits

/** Sorts edits, joins insertions at the same offset (in order), and refuses overlaps (undefined). */
export function normalizeEdits(edits: readonly FixEdit[]): FixEdit[] | undefined {
  const sorted = edits.map((e, i) => ({ e, i })).sort((a, b) => a.e.start - b.e.start || a.e.end - b.e.end || a.i - b.i);
  const out: FixEdit[] = [];
  for (const { e } of sorted) {
    const prev = out[out.length - 1];
    if (prev && prev.start === e.start && prev.end === e.start && e.end === e.start) {
      out[out.length - 1] = { start: prev.start, end: prev.end, newText: prev.newText + e.newText };
      continue;
    }
    if (prev && e.start < prev.end) return undefined;
    out.push({ ...e });
  }
  return out;
}

/** Applies non-overlapping edits (any order) to `text`. */
export function applyEdits(text: string, edits: readonly FixEdit[]): string {
  const sorted = [...edits].sort((a, b) => a.start - b.start || a.end - b.end);
  let out = '';
  let at = 0;
  for (const e of sorted) {
    out += text.slice(at, e.start) + e.newText;
    at = Math.max(at, e.end);
  }
  return out + text.slice(at);
}
