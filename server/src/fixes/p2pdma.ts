/**
 * Fixes for P2P-DISTANCE-BOOL (compare the distance with 0, keeping the
 * meaning the author intended) and P2P-CPU-MEMCPY (the MMIO accessors,
 * with the `(void __iomem *)` cast on the p2p argument).
 */
import { type AstNode, field } from '../core/ast';
import type { FixContext, Fixer } from './engine';
import { nodeOfType } from './shared';
import { fits, formatCall, oneLine, realign, rewrapCall } from './text';
import type { Fix, FixEdit } from './types';

// --------------------------------------------------------- P2P-DISTANCE-BOOL

/** Parents under which `a < 0` can stand without parentheses. */
function needsParens(n: AstNode): boolean {
  const p = n.parent;
  if (!p) return false;
  switch (p.type) {
    case 'parenthesized_expression':
    case 'argument_list':
    case 'return_statement':
    case 'init_declarator':
    case 'expression_statement':
    case 'comma_expression':
      return false;
    case 'binary_expression':
      return !(p.op === '&&' || p.op === '||');
    case 'conditional_expression':
      return false;
    case 'assignment_expression':
      return n.field !== 'right';
    default:
      return true;
  }
}

const distanceBool: Fixer = (ctx) => {
  const { finding, src } = ctx;
  const fn = ctx.fnAt(finding.span.start);
  const useAt = finding.events.find((e) => e.op === 'distance_as_bool')?.span;
  if (!fn || !useAt) return [];
  const nodes = ctx.nodesAt(fn, useAt);
  const use = nodeOfType(nodes, 'call_expression') ?? nodeOfType(nodes, 'identifier') ?? nodeOfType(nodes, 'field_expression');
  if (!use) return [];
  const u = src.t(use);
  let cur = use;
  while (cur.parent && cur.parent.type === 'parenthesized_expression') cur = cur.parent;
  const p = cur.parent;
  if (!p) return [];
  // The rewrite keeps the distance expression's own text (and its layout): it
  // replaces what comes before it (`!`) and after it (`> 0`) within `node`.
  let node: AstNode | undefined;
  /** The part kept as it is (the distance, with its own parentheses unless they are the if's). */
  let keep = cur;
  let suffix = '';
  let meaning = '';
  if (p.type === 'unary_expression' && p.op === '!') {
    // `!d` meant "not reachable".
    node = p;
    suffix = ' < 0';
  } else if (p.type === 'binary_expression' && (p.op === '&&' || p.op === '||')) {
    node = cur;
    suffix = ' >= 0';
  } else if ((p.type === 'if_statement' || p.type === 'while_statement' || p.type === 'conditional_expression') && cur.field === 'condition') {
    node = use;
    keep = use;
    suffix = ' >= 0';
  } else if (p.type === 'return_statement') {
    node = cur;
    suffix = ' >= 0';
  } else if (p.type === 'binary_expression') {
    const other = cur.field === 'left' ? field(p, 'right') : field(p, 'left');
    if (!other) return [];
    const lit = src.t(other).replace(/\s+/g, '');
    if (!/^-?\d+$/.test(lit)) return [];
    const v = Number(lit);
    const flip: Record<string, string> = { '<': '>', '>': '<', '<=': '>=', '>=': '<=' };
    const op = cur.field === 'left' ? p.op ?? '' : flip[p.op ?? ''] ?? p.op ?? '';
    // Which side the author took for "usable": the truth of `d op v` as it reads.
    let reachable: boolean | undefined;
    if ((op === '!=' && v === 0) || (op === '>' && v === 0) || (op === '>=' && v === 1)) reachable = true;
    else if ((op === '==' && v === 0) || (op === '<=' && v === 0) || (op === '<' && v === 1)) reachable = false;
    if (reachable === undefined) return [];
    node = p;
    suffix = reachable ? ' >= 0' : ' < 0';
  }
  if (!node) return [];
  meaning = suffix.includes('>=') ? '>= 0 (reachable)' : '< 0 (not reachable)';
  const parens = node !== keep && needsParens(node);
  const edits: FixEdit[] = [];
  if (node.start < keep.start || parens) edits.push({ start: node.start, end: keep.start, newText: parens ? '(' : '' });
  edits.push({ start: keep.end, end: node.end, newText: suffix + (parens ? ')' : '') });
  const name = use.type === 'call_expression' ? `${src.t(field(use, 'function') ?? use)}()` : u;
  // The call's open parenthesis moves when `!` goes: keep aligned arguments aligned.
  if (use.type === 'call_expression' && src.line(node.start) === src.line(use.start))
    edits.push(...realign(src, use, (parens ? 1 : 0) - (keep.start - node.start)));
  return [ctx.fix(`Compare ${name} ${meaning}`, edits, true)];
};

// ------------------------------------------------------------ P2P-CPU-MEMCPY

const IOMEM = '(void __iomem *)';

const cpuMemcpy: Fixer = (ctx) => {
  const { finding, src } = ctx;
  const fn = ctx.fnAt(finding.span.start);
  if (!fn) return [];
  const nodes = ctx.nodesAt(fn, finding.span);
  const store = nodeOfType(nodes, 'assignment_expression');
  if (store) return [storeFix(ctx, store)];
  const call = nodeOfType(nodes, 'call_expression');
  const fact = call && fn.calls.find((c) => c.node === call);
  if (!call || !fact) return [];
  // Which argument is the p2p memory: the message names it ("memcpy() on cmd->payload, which is p2p memory").
  const via = /\(\) on (.+?), which is p2p memory/.exec(finding.message)?.[1];
  if (!via) return [];
  const norm = (s: string) => s.replace(/\s+/g, ' ').trim();
  const idx = fact.args.map((a) => norm(src.t(a))).flatMap((t, i) => (t === norm(via) ? [i] : []));
  if (idx.length !== 1) return [];
  const i = idx[0];
  let name: string | undefined;
  if (fact.name === 'memset' && i === 0) name = 'memset_io';
  else if (fact.name === 'memcpy' && i === 0) name = 'memcpy_toio';
  else if (fact.name === 'memcpy' && i === 1) name = 'memcpy_fromio';
  if (!name || fact.args.length !== 3) return [];
  const arg = fact.args[i];
  const cast = arg.type === 'cast_expression' ? undefined : IOMEM;
  const needsParen = arg.type !== 'identifier' && arg.type !== 'field_expression' && arg.type !== 'call_expression' && arg.type !== 'subscript_expression' && arg.type !== 'parenthesized_expression';
  const argText = cast ? `${cast}${needsParen ? `(${src.t(arg)})` : src.t(arg)}` : src.t(arg);
  const title = `Use ${name}() on the p2p memory ${oneLine(src.t(arg))} (it is MMIO)`;
  const f = field(call, 'function')!;
  let edits: FixEdit[] = [
    { start: f.start, end: f.end, newText: name },
    { start: arg.start, end: arg.end, newText: argText },
    ...realign(src, call, name.length - fact.name.length),
  ];
  // Too long now: wrap the call again the kernel way.
  const l0 = src.line(call.start);
  for (let l = l0; l <= src.line(call.end); l++) {
    let line = src.lineText(l).replace(/\s*(\/\*.*\*\/|\/\/.*)$/, '');
    if (l === src.line(arg.start)) line = line.replace(src.t(arg), argText);
    if (l === l0) line = line.replace(fact.name + '(', name + '(');
    if (fits(line)) continue;
    const e = rewrapCall(src, call, name, fact.args.map((a, k) => oneLine(k === i ? argText : src.t(a))));
    if (!e) return [];
    edits = [e];
    break;
  }
  return [ctx.fix(title, edits, true)] as Array<Fix | undefined>;
};

const WRITERS: Record<string, string> = { cpu_to_le16: 'writew', cpu_to_le32: 'writel', cpu_to_le64: 'writeq' };

/** `p->f = cpu_to_le32(v);` on p2p memory: `writel(v, (void __iomem *)&p->f);` (writel() stores little-endian itself). */
function storeFix(ctx: FixContext, store: AstNode): Fix | undefined {
  const { src } = ctx;
  const stmt = store.parent;
  const lhs = field(store, 'left');
  const rhs = field(store, 'right');
  if (!stmt || stmt.type !== 'expression_statement' || store.op !== '=' || !lhs || !rhs || rhs.type !== 'call_expression') return undefined;
  const conv = src.t(field(rhs, 'function') ?? rhs);
  const writer = WRITERS[conv];
  const args = field(rhs, 'arguments')?.children ?? [];
  if (!writer || args.length !== 1 || !/^(field_expression|subscript_expression|pointer_expression)$/.test(lhs.type)) return undefined;
  const target = lhs.type === 'pointer_expression' && lhs.op === '*' ? oneLine(src.t(lhs.children[0])) : `&${oneLine(src.t(lhs))}`;
  const lines = formatCall(src.indentAt(stmt.start), `${writer}(`, [oneLine(src.t(args[0])), `${IOMEM}${target}`], ')');
  if (lines.length !== 1 || !src.startsLine(stmt.start)) return undefined;
  const text = lines[0].slice(src.indentAt(stmt.start).length);
  const note = writer === 'writeq' ? ' (32-bit builds need <linux/io-64-nonatomic-lo-hi.h>)' : '';
  return ctx.fix(`Store with ${writer}()${note}`, [{ start: store.start, end: store.end, newText: text }], false);
}

export const p2pFixers: Record<string, Fixer> = {
  'P2P-DISTANCE-BOOL': distanceBool,
  'P2P-CPU-MEMCPY': cpuMemcpy,
};

