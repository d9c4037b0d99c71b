/**
 * Small helpers the rule families share: def-use lookups, origins of values,
 * the events a finding hands to the model.
 */
import { type AstNode, field, unwrap, walk } from '../core/ast';
import { type CallFact, exprKey, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../core/facts';
import type { CodeEvent } from '../core/types';

/** Canonical object path of an expression, or its squashed text. */
export function keyOf(n: AstNode | undefined, ff: FileFacts): string | undefined {
  if (!n) return undefined;
  const k = exprKey(n, ff);
  return k !== undefined ? objectPath(k) : undefined;
}

/** The call `n` is (through parentheses and casts), if any. */
export function asCall(n: AstNode | undefined, fn: FunctionFacts): CallFact | undefined {
  if (!n) return undefined;
  const u = unwrap(n);
  if (u.type !== 'call_expression') return undefined;
  return fn.calls.find((c) => c.node === u);
}

/** Assignments in `fn` whose value is a call of one of `names`: lhs key -> calls. */
export function assignedFrom(fn: FunctionFacts, names: ReadonlySet<string>, ff: FileFacts): Array<{ key: string; call: CallFact; cfgNode: number; lhsNode: AstNode }> {
  const out: Array<{ key: string; call: CallFact; cfgNode: number; lhsNode: AstNode }> = [];
  for (const a of fn.assigns) {
    if (a.op !== '=') continue;
    const c = asCall(a.rhs, fn);
    if (c && names.has(c.name)) out.push({ key: objectPath(a.lhs), call: c, cfgNode: a.cfgNode, lhsNode: a.lhsNode });
  }
  void ff;
  return out;
}

/**
 * Roots that designate the same dma-buf as `arg`: the argument's own root,
 * and, for an attachment made in this function with dma_buf_attach(buf, ...),
 * the buffer's root.
 */
export function bufferRoots(arg: AstNode | undefined, fn: FunctionFacts, ff: FileFacts): Set<string> {
  const k = keyOf(arg, ff);
  if (!k) return new Set<string>();
  const roots = aliasRoots(rootOf(k), fn, ff);
  for (const a of fn.assigns) {
    if (objectPath(a.lhs) !== k) continue;
    const c = asCall(a.rhs, fn);
    if (c && (c.name === 'dma_buf_attach' || c.name === 'dma_buf_dynamic_attach')) {
      const b = keyOf(c.args[0], ff);
      if (b) for (const r of aliasRoots(rootOf(b), fn, ff)) roots.add(r);
    }
  }
  return roots;
}

/** Whether `n` contains a use of the object `key` (same path, or a sub-path). */
export function mentions(n: AstNode, key: string, ff: FileFacts): boolean {
  let found = false;
  walk(n, (x) => {
    if (found) return false;
    if (x.type === 'identifier' || x.type === 'field_expression' || x.type === 'subscript_expression') {
      const k = keyOf(x, ff);
      if (k === key) {
        found = true;
        return false;
      }
    }
    return true;
  });
  return found;
}

/** Event for the model from a call in the user's code. */
export function callEvent(c: CallFact | AstNode, op?: string, args?: CodeEvent['args']): CodeEvent {
  const node = 'node' in c ? c.node : c;
  const name = 'name' in c ? c.name : op ?? 'call';
  return { op: op ?? name, span: { start: node.start, end: node.end }, args };
}

/** First argument of a call expression node. */
export function firstArg(call: AstNode): AstNode | undefined {
  return field(call, 'arguments')?.children[0];
}

/** Literal true-ish value: 1, true. */
export function isTrueLiteral(n: AstNode, ff: FileFacts): boolean {
  const s = ff.t(unwrap(n)).trim();
  return s === '1' || s === 'true';
}

export function isFalseLiteral(n: AstNode, ff: FileFacts): boolean {
  const s = ff.t(unwrap(n)).trim();
  return s === '0' || s === 'false' || s === 'NULL';
}

/**
 * A local's root and the roots of what it was assigned from, transitively
 * (`resv = vb->attach->dmabuf->resv` makes `resv` also `vb`).
 */
export function aliasRoots(root: string, fn: FunctionFacts, ff: FileFacts): Set<string> {
  const out = new Set<string>([root]);
  const queue = [root];
  while (queue.length && out.size < 8) {
    const r = queue.pop()!;
    for (const a of fn.assigns) {
      if (a.op !== '=' || a.lhs !== r) continue;
      const k = keyOf(a.rhs, ff);
      const rr = k ? rootOf(k) : undefined;
      if (rr && !out.has(rr)) {
        out.add(rr);
        queue.push(rr);
      }
    }
  }
  return out;
}

/** Names of project helpers (from .dmalens.json) that return `kind`, plus the built-in `names`. */
export function withHelpers(names: ReadonlySet<string>, ff: FileFacts, kind: 'device-private-page' | 'p2pmem' | 'imported-sgt' | 'errptr'): Set<string> {
  const out = new Set(names);
  for (const [name, h] of Object.entries(ff.options.helpers ?? {})) if (h.returns === kind) out.add(name);
  return out;
}
