/**
 * Path helpers for the p2pdma rules beyond the first four: which returns are
 * error exits (with what the branches say about error variables), which CFG
 * edges a node is dominated by (a `case PCI_P2PDMA_MAP_BUS_ADDR:` or an
 * `if (type == PCI_P2PDMA_MAP_BUS_ADDR)`), the labels of a switch's edges,
 * and reaching definitions of a place.
 */
import { type AstNode, field, unwrap } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import { keyOf } from '../util';

const ERRNO = /^-\s*E[A-Z0-9]+$/;

/** Whether an expression is an error code on its face: `-ENOMEM`, `ERR_PTR(...)`, `PTR_ERR(x)`. */
export function isErrnoExpr(n: AstNode | undefined, ff: FileFacts): boolean {
  if (!n) return false;
  const s = ff.t(unwrap(n)).replace(/\s+/g, '');
  return ERRNO.test(s) || /^(ERR_PTR|PTR_ERR|ERR_CAST)\(/.test(s);
}

/**
 * Variables known to hold a non-zero (error) value, per CFG node: a must
 * analysis. `ret = -ENOMEM` and the true edge of `if (ret)` (or `ret < 0`)
 * add `ret`; any other assignment removes it.
 */
export function nonZeroVars(fn: FunctionFacts, ff: FileFacts): Array<Set<string> | undefined> {
  const sol = solve<Set<string>>(fn.cfg, {
    entry: new Set(),
    join: (a, b) => {
      const out = new Set<string>();
      for (const x of a) if (b.has(x)) out.add(x);
      return out;
    },
    equals: (a, b) => a.size === b.size && [...a].every((x) => b.has(x)),
    transfer: (node, s) => {
      let out = s;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const k = objectPath(a.lhs);
        const errno = a.op === '=' && isErrnoExpr(a.rhs, ff);
        if (errno && !out.has(k)) out = new Set(out).add(k);
        else if (!errno && out.has(k)) {
          out = new Set(out);
          out.delete(k);
        }
      }
      return out;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond') return s;
      let out = s;
      for (const t of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const k = keyOf(t.node, ff);
        if (!k) continue;
        if (t.truthy && !out.has(k)) out = new Set(out).add(k);
        else if (!t.truthy && out.has(k)) {
          out = new Set(out);
          out.delete(k);
        }
      }
      return out;
    },
  });
  return sol.before;
}

/**
 * Whether a `return` node leaves with an error: a literal errno or ERR_PTR(),
 * or a variable that every path to it proves non-zero. `return ret;` with an
 * unknown `ret` is not an error exit (precision first).
 */
export function isErrorExit(n: CfgNode, nz: Array<Set<string> | undefined>, ff: FileFacts): boolean {
  if (n.kind !== 'return') return false;
  const v = n.ast?.children[0];
  if (!v) return false;
  if (isErrnoExpr(v, ff)) return true;
  const k = keyOf(v, ff);
  return !!k && !!nz[n.id]?.has(k);
}

/**
 * Whether every path from the entry to `target` crosses an edge for which
 * `blocks(node, succIndex)` holds (the edge dominates the node).
 */
export function dominatedByEdge(fn: FunctionFacts, target: number, blocks: (n: CfgNode, succ: number) => boolean): boolean {
  const seen = new Set<number>([fn.cfg.entry]);
  const stack = [fn.cfg.entry];
  while (stack.length) {
    const id = stack.pop()!;
    if (id === target) return false;
    const n = fn.cfg.nodes[id];
    n.succ.forEach((s, i) => {
      if (seen.has(s) || blocks(n, i)) return;
      seen.add(s);
      stack.push(s);
    });
  }
  return true;
}

/** The switch statement a `switch` CFG node was built from. */
export function switchStatementOf(n: CfgNode): AstNode | undefined {
  let cur = n.ast?.parent;
  for (let i = 0; cur && i < 3; i++, cur = cur.parent) if (cur.type === 'switch_statement') return cur;
  return undefined;
}

/**
 * What each edge out of a `switch` CFG node stands for: the case labels
 * (`['PCI_P2PDMA_MAP_BUS_ADDR']`), `default`, or `after` (no case matched).
 * The CFG builder adds one edge per case, in source order, then `after` when
 * there is no default.
 */
export function switchEdgeLabels(n: CfgNode, ff: FileFacts): string[] {
  const sw = switchStatementOf(n);
  const body = sw ? field(sw, 'body') : undefined;
  const out: string[] = [];
  for (const c of body?.children ?? []) {
    if (c.type !== 'case_statement') continue;
    const v = field(c, 'value');
    out.push(v ? ff.t(v).replace(/\s+/g, '') : 'default');
  }
  while (out.length < n.succ.length) out.push('after');
  return out;
}

/** Text of every case label of a switch statement, and whether it has a default. */
export function switchCases(sw: AstNode, ff: FileFacts): { labels: string[]; hasDefault: boolean; caseNodes: AstNode[] } {
  const body = field(sw, 'body');
  const labels: string[] = [];
  const caseNodes: AstNode[] = [];
  let hasDefault = false;
  for (const c of body?.children ?? []) {
    if (c.type !== 'case_statement') continue;
    caseNodes.push(c);
    const v = field(c, 'value');
    if (v) labels.push(ff.t(v).replace(/\s+/g, ''));
    else hasDefault = true;
  }
  return { labels, hasDefault, caseNodes };
}

/**
 * Reaching definitions of the places in `keys` (object paths): for each CFG
 * node, key -> indices of the assignments that may reach it (-1: the value
 * from before the function). An edge where the condition proves the key NULL
 * drops the definitions (a NULL pointer is nobody's allocation).
 */
export function reachingDefs(fn: FunctionFacts, keys: ReadonlySet<string>, ff: FileFacts): Array<Map<string, Set<number>> | undefined> {
  type S = Map<string, Set<number>>;
  const entry: S = new Map([...keys].map((k) => [k, new Set([-1])]));
  const assignIndex = new Map(fn.assigns.map((a, i) => [a, i]));
  const sol = solve<S>(fn.cfg, {
    entry,
    join: (a, b) => {
      const out: S = new Map();
      for (const k of keys) out.set(k, new Set([...(a.get(k) ?? []), ...(b.get(k) ?? [])]));
      return out;
    },
    equals: (a, b) => [...keys].every((k) => (a.get(k)?.size ?? 0) === (b.get(k)?.size ?? 0) && [...(a.get(k) ?? [])].every((x) => b.get(k)?.has(x))),
    transfer: (node, s) => {
      let out = s;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const i = assignIndex.get(a)!;
        if (a.op !== '=') continue;
        const k = objectPath(a.lhs);
        if (!keys.has(k)) continue;
        if (out === s) out = new Map(s);
        out.set(k, new Set([i]));
      }
      return out;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond') return s;
      let out = s;
      for (const t of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const k = keyOf(t.node, ff);
        if (!k || t.truthy || !keys.has(k)) continue;
        if (out === s) out = new Map(s);
        out.set(k, new Set());
      }
      return out;
    },
  });
  return sol.before;
}

const LOGGING = /^(pr_\w+|dev_(dbg|info|warn|err|notice|crit|emerg|alert|printk)\w*|pci_(dbg|info|warn|err|notice)\w*|printk\w*|WARN\w*|trace_\w+|seq_printf|sysfs_emit\w*|sprintf|snprintf|scnprintf|netdev_(dbg|info|warn|err)\w*|drm_(dbg|info|warn|err)\w*|DRM_\w+)$/;

/** Calls that only print or trace their arguments. */
export function isLoggingCall(name: string): boolean {
  return LOGGING.test(name);
}

/** The enclosing call expression of an argument node, if `n` is (through parentheses and casts) an argument. */
export function enclosingCall(n: AstNode): AstNode | undefined {
  let cur: AstNode | undefined = n;
  for (let i = 0; cur && i < 6; i++) {
    const p: AstNode | undefined = cur.parent;
    if (!p) return undefined;
    if (p.type === 'argument_list') return p.parent;
    if (p.type === 'parenthesized_expression' || p.type === 'cast_expression') {
      cur = p;
      continue;
    }
    return undefined;
  }
  return undefined;
}
