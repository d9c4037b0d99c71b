/**
 * Helpers the fixers share: plain object expressions, designated
 * initializers (adding a field the way the table is laid out), new static
 * functions above a table, the importer's private data and its struct.
 */
import { type AstNode, field, unwrap } from '../core/ast';
import type { FileFacts, FunctionFacts } from '../core/facts';
import { type Src, TAB, width } from './text';
import type { FixEdit } from './types';

/** `x`, `x->y`, `x.y[i]`: an object named by identifiers and fields only (no calls, no side effects). */
export function isPlainKey(n: AstNode | undefined): boolean {
  if (!n) return false;
  switch (n.type) {
    case 'identifier':
      return true;
    case 'field_expression':
      return isPlainKey(field(n, 'argument'));
    case 'subscript_expression': {
      const idx = field(n, 'index') ?? n.children[1];
      return isPlainKey(field(n, 'argument')) && !!idx && (idx.type === 'identifier' || idx.type === 'number_literal');
    }
    default:
      return false;
  }
}

export function nodeOfType(nodes: readonly AstNode[], type: string): AstNode | undefined {
  return nodes.find((n) => n.type === type);
}

/** Replaces an initializer field's value. */
export function setInitializerField(value: AstNode, text: string): FixEdit[] {
  return [{ start: value.start, end: value.end, newText: text }];
}

/**
 * Edits adding `.name = value,` fields to a designated initializer list,
 * after its last field, indented and aligned like the others (tab-aligned
 * `=` when the table aligns them). Undefined for an empty list.
 */
export function addInitializerField(src: Src, list: AstNode, name: string, value: string): FixEdit[] | undefined {
  return addInitializerFields(src, list, [[name, value]]);
}

export function addInitializerFields(src: Src, list: AstNode, fields: ReadonlyArray<readonly [string, string]>): FixEdit[] | undefined {
  const pairs = list.children.filter((c) => c.type === 'initializer_pair');
  const last = pairs[pairs.length - 1];
  if (!last || !fields.length) return undefined;
  const after = src.text.slice(last.end, list.end - 1);
  const comma = /^\s*,/.exec(after);
  if (src.line(list.start) === src.line(list.end)) {
    const text = fields.map(([n, v]) => `.${n} = ${v}`).join(', ');
    if (comma) {
      const at = last.end + comma[0].length;
      return [{ start: at, end: at, newText: ` ${text},` }];
    }
    return [{ start: last.end, end: last.end, newText: `, ${text}` }];
  }
  if (!src.startsLine(last.start)) return undefined;
  const indent = src.indentAt(last.start);
  // Alignment of `=`: the column most fields put it at, when they align with tabs.
  const cols = new Map<number, number>();
  let tabs = false;
  for (const p of pairs) {
    const v = field(p, 'value');
    const designators = p.children.filter((c) => c.field === 'designator');
    const d = designators[designators.length - 1];
    if (!v || !d || src.line(d.start) !== src.line(v.start)) continue;
    const gap = src.text.slice(d.end, v.start);
    const eq = gap.indexOf('=');
    if (eq < 0) continue;
    if (/\t/.test(gap.slice(0, eq))) tabs = true;
    const c = src.col(d.end + eq);
    cols.set(c, (cols.get(c) ?? 0) + 1);
  }
  const target = tabs && cols.size ? [...cols].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0][0] : undefined;
  const line = (name: string, value: string): string => {
    const head = `${indent}.${name}`;
    let sep = ' = ';
    let col = width(head);
    if (target !== undefined && col < target) {
      let pad = '';
      while (Math.floor(col / TAB + 1) * TAB <= target) {
        pad += '\t';
        col = Math.floor(col / TAB + 1) * TAB;
      }
      pad += ' '.repeat(target - col);
      sep = pad + '= ';
    }
    return head + sep + value + ',';
  };
  const edits: FixEdit[] = [];
  if (!comma) edits.push({ start: last.end, end: last.end, newText: ',' });
  const at = src.lineEnd(src.line(last.end));
  edits.push({ start: at, end: at, newText: fields.map(([n, v]) => src.eol + line(n, v)).join('') });
  return edits;
}

/**
 * An edit putting `lines` (a function, unindented at file level) above a
 * top-level declaration, and above the comment block right over it; a
 * blank line separates them.
 */
export function stubAbove(src: Src, decl: AstNode, lines: readonly string[]): FixEdit | undefined {
  if (!src.startsLine(decl.start)) return undefined;
  let l = src.line(decl.start);
  if (l > 0 && /\*\/\s*$/.test(src.lineText(l - 1))) {
    let k = l - 1;
    while (k >= 0 && !/^\s*\/\*/.test(src.lineText(k))) k--;
    if (k >= 0) l = k;
  } else {
    while (l > 0 && /^\s*\/\//.test(src.lineText(l - 1))) l--;
  }
  const at = src.lineStart(l);
  const gapBefore = l > 0 && !src.blank(l - 1) ? src.eol : '';
  return { start: at, end: at, newText: gapBefore + lines.join(src.eol) + src.eol + src.eol };
}

/** The importer's private data handed to dma_buf_dynamic_attach(): its text and, for a local or parameter, its type. */
export function importerOf(arg: AstNode, fn: FunctionFacts, ff: FileFacts): { text: string; type?: string } | undefined {
  const u = unwrap(arg);
  const text = ff.t(u);
  if (/^(NULL|0)$/.test(text.trim())) return undefined;
  if (u.type !== 'identifier') return { text };
  const type = fn.locals.get(text) ?? fn.info.params.find((p) => p.name === text)?.type;
  return { text, type };
}

/** The body of `struct tag { ... }` in the text, if it is defined there. */
export function structBody(text: string, tag: string): string | undefined {
  const m = new RegExp(`\\bstruct\\s+${tag}\\s*\\{`).exec(text);
  if (!m) return undefined;
  let depth = 0;
  for (let i = m.index + m[0].length - 1; i < text.length; i++) {
    const c = text[i];
    if (c === '{') depth++;
    else if (c === '}' && --depth === 0) return text.slice(m.index + m[0].length, i);
  }
  return undefined;
}

/** The `struct sg_table *` member of `struct tag` that holds the mapping (one of `preferred` when several). */
export function sgTableMember(text: string, tag: string, preferred: readonly string[]): string | undefined {
  const body = structBody(text, tag);
  if (!body) return undefined;
  const members = [...body.matchAll(/\bstruct\s+sg_table\s*\*\s*([A-Za-z_]\w*)\s*;/g)].map((m) => m[1]);
  return members.find((m) => preferred.includes(m)) ?? (members.length === 1 ? members[0] : undefined);
}

