/**
 * Helpers shared by the further dma-buf rules (more-*.ts): function facts of
 * a file, error returns, reachability, same-file callees, value origins
 * through locals, and the ops tables a file hands to dma_buf_export().
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { reaches as reachesIn } from '../../core/flow';
import { type CallFact, exprKey, type FileFacts, type FunctionFacts, type InitializerFact, objectPath, rootOf } from '../../core/facts';
import type { RuleContext } from '../api';
import { keyOf } from '../util';

/** Facts of every function the file analyses (interesting by text, or holding a role). */
export function analysed(ctx: RuleContext): FunctionFacts[] {
  return ctx.shared('dmabuf.more.fns', () =>
    ctx.ff
      .analysedFunctions()
      .map((f) => ctx.ff.fn(f.name))
      .filter((f): f is FunctionFacts => !!f),
  );
}

/** Facts of the functions bound to `field` of an initializer of `structType` (or of an untyped table). */
export function withRole(ctx: RuleContext, fieldName: string, structType: string): Array<{ fn: FunctionFacts; span: { start: number; end: number }; table: InitializerFact }> {
  const out: Array<{ fn: FunctionFacts; span: { start: number; end: number }; table: InitializerFact }> = [];
  for (const name of ctx.ff.functionsWithRole(fieldName, structType)) {
    const fn = ctx.ff.fn(name);
    if (!fn) continue;
    const role = ctx.ff.rolesOf(name).find((r) => r.field === fieldName && (!r.structType || r.structType === structType));
    if (role) out.push({ fn, span: role.span, table: role.table });
  }
  return out;
}

/** `return -EINVAL;`, `return ERR_PTR(...)`, `return ret;` (named like an error code). */
export function isErrorReturn(n: CfgNode, ff: FileFacts): boolean {
  const v = n.ast?.children[0];
  if (!v) return false;
  const s = ff.t(v).trim();
  if (/^-E[A-Z0-9]+$/.test(s) || /^(ERR_PTR|ERR_CAST|PTR_ERR)\(/.test(s)) return true;
  if (s === '0' || s === 'NULL' || s === 'true' || s === 'false') return false;
  return /^(ret|err|error|rc|r|res|result|status)$/.test(s);
}

/** Whether CFG node `to` can be reached from `from` (or is it). */
export function reaches(fn: FunctionFacts, from: number, to: number): boolean {
  return reachesIn(fn.cfg, from, to);
}

/** Functions of this file that `fn` calls, transitively up to `depth` levels. */
export function callees(ff: FileFacts, fn: FunctionFacts, depth = 2): FunctionFacts[] {
  const out: FunctionFacts[] = [];
  const seen = new Set<string>([fn.info.name]);
  let frontier = [fn];
  for (let d = 0; d < depth && frontier.length; d++) {
    const next: FunctionFacts[] = [];
    for (const f of frontier)
      for (const c of f.calls) {
        if (seen.has(c.name) || !ff.functions.has(c.name)) continue;
        seen.add(c.name);
        const g = ff.fn(c.name);
        if (g) {
          out.push(g);
          next.push(g);
        }
      }
    frontier = next;
  }
  return out;
}

/** The right-hand sides assigned to local `name` in `fn` (declaration initializers included). */
export function originsOf(fn: FunctionFacts, name: string): AstNode[] {
  return fn.assigns.filter((a) => a.op === '=' && a.lhs === name).map((a) => a.rhs);
}

/**
 * Whether the value of `n` comes from an expression `pred` accepts, through
 * locals assigned in the function (`dev = attach->dev; ... dma_map_sgtable(dev, ...)`).
 * 'yes' when every origin is accepted, 'no' when one is known and rejected,
 * 'unknown' when an origin cannot be seen (a parameter, a call).
 */
export function derived(fn: FunctionFacts, n: AstNode, ff: FileFacts, pred: (n: AstNode) => boolean | undefined, depth = 0): 'yes' | 'no' | 'unknown' {
  const u = unwrap(n);
  const direct = pred(u);
  if (direct === true) return 'yes';
  if (direct === false) return 'no';
  if (depth > 4) return 'unknown';
  if (u.type === 'identifier') {
    const name = ff.t(u);
    const origins = originsOf(fn, name);
    if (!origins.length) return 'unknown';
    let all: 'yes' | 'no' | 'unknown' = 'yes';
    for (const o of origins) {
      const r = derived(fn, o, ff, pred, depth + 1);
      if (r === 'no') return 'no';
      if (r === 'unknown') all = 'unknown';
    }
    return all;
  }
  if (u.type === 'conditional_expression') {
    const parts = u.children.slice(1);
    let all: 'yes' | 'no' | 'unknown' = 'yes';
    for (const p of parts) {
      const r = derived(fn, p, ff, pred, depth + 1);
      if (r === 'no') return 'no';
      if (r === 'unknown') all = 'unknown';
    }
    return all;
  }
  return 'unknown';
}

/** Name of the function a call expression node calls, or ''. */
export function calleeName(call: AstNode, ff: FileFacts): string {
  const f = field(call, 'function');
  if (!f) return '';
  const u = unwrap(f);
  if (u.type === 'identifier') return ff.t(u);
  if (u.type === 'field_expression') return ff.t(field(u, 'field') ?? u);
  return '';
}

/** Whether `n` reads field `name` anywhere (`x->name`, `x.name`), outside the left side of an assignment. */
export function readsField(n: AstNode, name: string, ff: FileFacts): AstNode | undefined {
  let hit: AstNode | undefined;
  walk(n, (x) => {
    if (hit) return false;
    if (x.type === 'assignment_expression') {
      // The left side is a write; the right side may still read.
      const r = field(x, 'right');
      if (r) {
        const h = readsField(r, name, ff);
        if (h) hit = h;
      }
      const l = field(x, 'left');
      if (l && x.op !== '=') {
        const h = readsField(l, name, ff);
        if (h) hit = h;
      }
      return false;
    }
    if (x.type === 'field_expression') {
      const f = field(x, 'field');
      if (f && ff.t(f) === name) {
        hit = x;
        return false;
      }
    }
    return true;
  });
  return hit;
}

/** Text of an expression with whitespace squashed. */
export function squash(n: AstNode | undefined, ff: FileFacts): string {
  return n ? ff.t(n).replace(/\s+/g, '') : '';
}

/** `DMA_TO_DEVICE`-style direction constant of an argument, if it is one. */
export function dirConstant(n: AstNode | undefined, ff: FileFacts): string | undefined {
  const s = squash(n, ff);
  return /^(DMA_BIDIRECTIONAL|DMA_TO_DEVICE|DMA_FROM_DEVICE|DMA_NONE)$/.test(s) ? s : undefined;
}

/** Key of an lvalue (object path), or undefined. */
export function pathOf(n: AstNode | undefined, ff: FileFacts): string | undefined {
  if (!n) return undefined;
  let u = unwrap(n);
  if (u.type === 'pointer_expression' && u.op === '&' && u.children[0]) u = unwrap(u.children[0]);
  const k = exprKey(u, ff);
  return k === undefined ? undefined : objectPath(k);
}

/** Calls that never take ownership of the values they are given: logging, error helpers, dma-buf's own API. */
const NON_OWNING = /^(IS_ERR|IS_ERR_OR_NULL|PTR_ERR|PTR_ERR_OR_ZERO|ERR_CAST|WARN|WARN_ON|WARN_ON_ONCE|WARN_ONCE|BUG_ON|likely|unlikely|pr_\w+|printk|dev_\w+|drm_(dbg|err|warn|info|notice)\w*|DRM_\w+|trace_\w+|dma_buf_\w+|get_dma_buf|sizeof|memset|dump_stack)$/;

export function nonOwning(name: string): boolean {
  return NON_OWNING.test(name);
}

/**
 * Whether the object `key` (or, for a member, its holder) is handed on
 * in CFG node `id`: stored elsewhere, passed to a call that may take it,
 * or returned.
 */
export function escapesAt(fn: FunctionFacts, id: number, key: string, ff: FileFacts, opts: { freesKeepField?: boolean; callsKeepLocal?: boolean } = {}): boolean {
  const root = rootOf(key);
  const isField = key.includes('.');
  const node = fn.cfg.nodes[id];
  for (const a of fn.assignsAt.get(id) ?? []) {
    const r = unwrap(a.rhs);
    if (r.type === 'call_expression') continue;
    const rk = pathOf(r, ff);
    if (rk && (rk === key || (!isField && rootOf(rk) === root)) && objectPath(a.lhs) !== key) return true;
  }
  for (const c of fn.callsAt.get(id) ?? []) {
    if (nonOwning(c.name)) continue;
    // A local handed to a helper is still the caller's to release (a table passed to a programming helper).
    if (opts.callsKeepLocal && !isField) continue;
    if (opts.freesKeepField && isField && /^(kfree|kvfree|vfree|kmem_cache_free|devm_kfree)$/.test(c.name)) continue;
    for (const a of c.args) if (handsOver(a, key, ff)) return true;
  }
  if (node.kind === 'return' && node.ast?.children[0]) {
    let hit = false;
    walk(node.ast.children[0], (x) => {
      if (hit) return false;
      if (x.type === 'identifier' && ff.t(x) === root) hit = true;
      return !hit;
    });
    if (hit) return true;
  }
  return false;
}

/**
 * Whether argument `a` hands the object `key` (or the object holding it) to
 * the callee: the root itself, the key or a path on the way to it, or the
 * address of one of the root's members (container_of() gets the root back).
 * A member's value (`binding->id`, `attach->dev`) does not.
 */
function handsOver(a: AstNode, key: string, ff: FileFacts): boolean {
  let u = unwrap(a);
  let addr = false;
  if (u.type === 'pointer_expression' && u.op === '&' && u.children[0]) {
    u = unwrap(u.children[0]);
    addr = true;
  }
  const k = exprKey(u, ff);
  if (k === undefined) {
    // A call or an expression: look for the root as a whole argument inside it (`to_foo(obj)`).
    let hit = false;
    walk(u, (x) => {
      if (hit) return false;
      if (x.type === 'argument_list') for (const c of x.children) if (handsOver(c, key, ff)) hit = true;
      return !hit;
    });
    return hit;
  }
  const p = objectPath(k);
  const root = rootOf(key);
  if (p === root || p === key || key.startsWith(p + '.')) return true;
  return addr && rootOf(p) === root;
}

const live = new WeakMap<FunctionFacts, Set<number>>();

/**
 * CFG nodes reachable from the entry when constant conditions are taken at
 * their word: `if (0) { ... }` (a disabled test block) is dead code.
 */
export function liveNodes(fn: FunctionFacts, ff: FileFacts): Set<number> {
  const cached = live.get(fn);
  if (cached) return cached;
  const out = new Set<number>([fn.cfg.entry]);
  const stack = [fn.cfg.entry];
  while (stack.length) {
    const n = fn.cfg.nodes[stack.pop()!];
    let succ = n.succ;
    if (n.kind === 'cond' && n.ast && !n.iter && succ.length === 2) {
      const t = ff.t(n.ast).replace(/\s+/g, '');
      if (t === '0' || t === 'false') succ = [succ[1]];
      else if (t === '1' || t === 'true') succ = [succ[0]];
    }
    for (const x of succ) if (!out.has(x)) {
      out.add(x);
      stack.push(x);
    }
  }
  live.set(fn, out);
  return out;
}

/** Identifiers named in `n`. */
export function identifiers(n: AstNode, ff: FileFacts): Set<string> {
  const out = new Set<string>();
  walk(n, (x) => {
    if (x.type === 'identifier') out.add(ff.t(x));
    return true;
  });
  return out;
}

/** The call fact of a call node in `fn`. */
export function callFact(fn: FunctionFacts, n: AstNode | undefined): CallFact | undefined {
  if (!n) return undefined;
  const u = unwrap(n);
  return u.type === 'call_expression' ? fn.calls.find((c) => c.node === u) : undefined;
}

export { keyOf };
