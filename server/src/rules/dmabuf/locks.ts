/**
 * Reservation-lock regions, per function, with summaries across the file.
 *
 * State: for each lock key (the object path of the locked resv or of the
 * object a wrapper locks), a bit set: HELD=1, FREE=2 (both = maybe). The key
 * `@caller` stands for a lock the function's caller holds for it: held when
 * the function is a callback the core calls with the lock held, or when
 * every call site in the file holds a lock.
 *
 * Summaries: a function of this file that leaves a parameter's lock held
 * (`static void acme_bo_lock(bo) { dma_resv_lock(bo->base.resv, NULL); }`)
 * acquires it for its callers; one that unlocks releases it. Iterated a few
 * rounds so wrappers of wrappers work.
 */
import { type AstNode, field, unwrap } from '../../core/ast';
import { type CfgNode } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type CallFact, exprKey, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { solve, type Solution } from '../../core/flow';
import {
  LOCK_FNS,
  LOCKED_FIELDS_ANY_TYPE,
  LOCKED_ROLES,
  type LockFn,
  MUST_NOT_HOLD,
  OBTAINS_BUFFER,
  UNLOCKED_ROLES,
} from './vocab';

export const HELD = 1;
export const FREE = 2;
export const CALLER = '@caller';

export type LockState = ReadonlyMap<string, number>;

interface Pending {
  /** result variable -> lock key it guards. */
  [v: string]: string;
}

interface State {
  locks: LockState;
  pending: Readonly<Pending>;
}

export interface Summary {
  acquires: Array<{ param: number; conditional: boolean; suffix: string }>;
  releases: Array<{ param: number; suffix: string }>;
  /** Calls dma_resv_assert_held (or a wrapper assert) on a parameter. */
  asserts: Array<{ param: number; suffix: string }>;
}

export interface FunctionLocks {
  fn: FunctionFacts;
  solution: Solution<State>;
  /** Entry: the caller's lock is held (role, callers), free (function obtains the buffer itself) or unknown. */
  entry: 'held' | 'free' | 'unknown';
  entryReason?: { message: string; at?: { start: number; end: number } };
  /** Lock state just before a call. */
  before(call: CallFact): LockState;
}

export interface FileLocks {
  summaries: Map<string, Summary>;
  functions: Map<string, FunctionLocks>;
  lockFn(call: CallFact): LockFn | undefined;
  keyOf(call: CallFact, fnSpec: LockFn): string | undefined;
}

export function fileLocks(ff: FileFacts): FileLocks {
  const summaries = new Map<string, Summary>();
  const fns = ff.analysedFunctions().map((f) => ff.fn(f.name)).filter((f): f is FunctionFacts => !!f);

  const project = new Map<string, LockFn>();
  for (const w of ff.options.lockWrappers ?? []) project.set(w.name, { kind: w.kind, arg: w.arg, conditional: w.conditional, suffix: w.suffix });
  const workspace = ff.options.workspace?.lockFns;
  const lockFn = (call: CallFact): LockFn | undefined => {
    const direct = LOCK_FNS[call.name] ?? project.get(call.name);
    if (direct) return direct;
    const s = summaries.get(call.name);
    if (!s && workspace?.has(call.name) && !ff.functions.has(call.name)) return workspace.get(call.name);
    if (!s) return undefined;
    if (s.acquires.length) return { kind: 'acquire', arg: s.acquires[0].param, conditional: s.acquires[0].conditional, suffix: s.acquires[0].suffix };
    if (s.releases.length) return { kind: 'release', arg: s.releases[0].param, suffix: s.releases[0].suffix };
    if (s.asserts.length) return { kind: 'assert', arg: s.asserts[0].param, suffix: s.asserts[0].suffix };
    return undefined;
  };
  const keyOf = (call: CallFact, spec: LockFn): string | undefined => {
    const a = call.args[spec.arg];
    if (!a) return undefined;
    const k = exprKey(a, ff);
    const base = k ? objectPath(k) : ff.t(a).replace(/\s+/g, '');
    return base + (spec.suffix ?? '');
  };

  // Summaries: a few rounds so wrappers of wrappers resolve.
  for (let round = 0; round < 3; round++) {
    let changed = false;
    for (const fn of fns) {
      const sol = runLocks(fn, ff, lockFn, keyOf, new Map());
      const s = summarize(fn, sol, ff, lockFn, keyOf);
      const old = summaries.get(fn.info.name);
      if (!s) continue;
      if (!old || JSON.stringify(old) !== JSON.stringify(s)) {
        summaries.set(fn.info.name, s);
        changed = true;
      }
    }
    if (!changed) break;
  }

  // Entry states: roles first, then callers in the file (two rounds).
  const entries = new Map<string, FunctionLocks['entry']>();
  const reasons = new Map<string, FunctionLocks['entryReason']>();
  for (const fn of fns) {
    const role = lockedRole(ff, fn.info.name);
    if (role) {
      entries.set(fn.info.name, 'held');
      reasons.set(fn.info.name, { message: `${fn.info.name}() is the ${role.role} callback, which the core calls with the reservation lock held`, at: role.span });
    } else if (obtainsOrUnlocked(fn, ff)) {
      entries.set(fn.info.name, 'free');
    } else if (ff.options.workspace?.calledLocked?.has(fn.info.name)) {
      entries.set(fn.info.name, 'held');
      reasons.set(fn.info.name, { message: `every caller of ${fn.info.name}() in the workspace holds the reservation lock` });
    }
  }
  const functions = new Map<string, FunctionLocks>();
  const build = () => {
    functions.clear();
    for (const fn of fns) {
      const entry = entries.get(fn.info.name) ?? 'unknown';
      const init = new Map<string, number>();
      if (entry === 'held') init.set(CALLER, HELD);
      const sol = runLocks(fn, ff, lockFn, keyOf, init);
      functions.set(fn.info.name, {
        fn,
        solution: sol,
        entry,
        entryReason: reasons.get(fn.info.name),
        before: (call) => stateBefore(fn, sol, call, ff, lockFn, keyOf),
      });
    }
  };
  build();
  for (let round = 0; round < 2; round++) {
    let changed = false;
    for (const fn of fns) {
      if (entries.has(fn.info.name) || !fn.info.isStatic) continue;
      const sites: Array<{ caller: FunctionLocks; call: CallFact }> = [];
      for (const caller of functions.values())
        for (const c of caller.fn.calls) if (c.name === fn.info.name) sites.push({ caller, call: c });
      if (!sites.length) continue;
      if (sites.every((s) => anyHeld(s.caller.before(s.call)))) {
        entries.set(fn.info.name, 'held');
        const first = sites[0];
        reasons.set(fn.info.name, {
          message: `every caller in this file holds the reservation lock when it calls ${fn.info.name}() (for example ${first.caller.fn.info.name}())`,
          at: { start: first.call.node.start, end: first.call.node.end },
        });
        changed = true;
      }
    }
    if (!changed) break;
    build();
  }
  return { summaries, functions, lockFn, keyOf };
}

export function anyHeld(s: LockState): boolean {
  for (const v of s.values()) if (v === HELD) return true;
  return false;
}

export function anyMaybe(s: LockState): boolean {
  for (const v of s.values()) if (v & HELD) return true;
  return false;
}

/** The held (or maybe held) key whose object is the same buffer as `roots`. */
export function heldOn(s: LockState, roots: Set<string>, expand: (root: string) => Set<string>): { key: string; value: number } | undefined {
  for (const [k, v] of s) {
    if (!(v & HELD) || k === CALLER) continue;
    for (const r of expand(rootOf(k))) if (roots.has(r)) return { key: k, value: v };
  }
  return undefined;
}

function lockedRole(ff: FileFacts, name: string) {
  for (const r of ff.rolesOf(name)) {
    if (LOCKED_ROLES.has(r.role)) return r;
    if (!r.structType && LOCKED_FIELDS_ANY_TYPE.has(r.field)) return r;
  }
  return undefined;
}

/**
 * The caller cannot be holding the buffer's lock when the function obtains
 * the buffer itself, calls something that takes the lock, or is a callback
 * the core runs unlocked.
 */
function obtainsOrUnlocked(fn: FunctionFacts, ff: FileFacts): boolean {
  if (fn.calls.some((c) => OBTAINS_BUFFER.has(c.name) || MUST_NOT_HOLD.has(c.name))) return true;
  return ff.rolesOf(fn.info.name).some((r) => UNLOCKED_ROLES.has(r.role));
}

function runLocks(
  fn: FunctionFacts,
  ff: FileFacts,
  lockFn: (c: CallFact) => LockFn | undefined,
  keyOf: (c: CallFact, s: LockFn) => string | undefined,
  init: Map<string, number>,
): Solution<State> {
  return solve<State>(fn.cfg, {
    entry: { locks: init, pending: {} },
    join: (a, b) => {
      const m = new Map<string, number>();
      for (const [k, v] of a.locks) m.set(k, v | (b.locks.get(k) ?? FREE));
      for (const [k, v] of b.locks) if (!a.locks.has(k)) m.set(k, v | FREE);
      const pending: Pending = { ...a.pending };
      for (const [k, v] of Object.entries(b.pending)) pending[k] = v;
      return { locks: m, pending };
    },
    equals: (a, b) => {
      if (a.locks.size !== b.locks.size) return false;
      for (const [k, v] of a.locks) if (b.locks.get(k) !== v) return false;
      const ka = Object.keys(a.pending);
      return ka.length === Object.keys(b.pending).length && ka.every((k) => a.pending[k] === b.pending[k]);
    },
    transfer: (node, s) => applyNode(fn, node, s, ff, lockFn, keyOf),
    branch: (node, s, idx) => refine(node, s, idx, ff, lockFn, keyOf, fn),
  });
}

function applyCall(
  call: CallFact,
  s: State,
  lockFn: (c: CallFact) => LockFn | undefined,
  keyOf: (c: CallFact, sp: LockFn) => string | undefined,
): State {
  const spec = lockFn(call);
  if (!spec) return s;
  if (spec.kind === 'release-all') {
    const m = new Map<string, number>();
    for (const k of s.locks.keys()) m.set(k, FREE);
    return { locks: m, pending: s.pending };
  }
  const key = keyOf(call, spec);
  if (!key) return s;
  const m = new Map(s.locks);
  switch (spec.kind) {
    case 'acquire':
      m.set(key, HELD);
      break;
    case 'assert':
      // Evidence that a lock is held here: adds nothing when one already is (the
      // asserted key is often another name for it, and would never be released).
      if (!anyHeld(s.locks)) m.set(key, HELD);
      break;
    case 'try':
      m.set(key, HELD | FREE);
      break;
    case 'release':
      m.set(key, FREE);
      // Releasing the caller's lock on our behalf (unlock in a callee) ends it too.
      if (m.has(CALLER)) m.set(CALLER, FREE);
      break;
  }
  return { locks: m, pending: s.pending };
}

function applyNode(
  fn: FunctionFacts,
  node: CfgNode,
  s: State,
  ff: FileFacts,
  lockFn: (c: CallFact) => LockFn | undefined,
  keyOf: (c: CallFact, sp: LockFn) => string | undefined,
): State {
  const calls = fn.callsAt.get(node.id);
  if (!calls) return s;
  let cur = s;
  for (const c of calls) cur = applyCall(c, cur, lockFn, keyOf);
  // Remember `ret = dma_resv_lock_interruptible(...)` so `if (ret)` can refine.
  for (const a of fn.assignsAt.get(node.id) ?? []) {
    if (a.lhs in cur.pending) {
      const pending = { ...cur.pending };
      delete pending[a.lhs];
      cur = { locks: cur.locks, pending };
    }
    const r = unwrap(a.rhs);
    if (r.type !== 'call_expression') continue;
    const c = calls.find((x) => x.node === r);
    if (!c) continue;
    const spec = lockFn(c);
    if (!spec || !(spec.conditional || spec.kind === 'try')) continue;
    const key = keyOf(c, spec);
    if (key) cur = { locks: cur.locks, pending: { ...cur.pending, [a.lhs]: (spec.kind === 'try' ? 'try:' : '') + key } };
  }
  void ff;
  return cur;
}

function refine(
  node: CfgNode,
  s: State,
  idx: number,
  ff: FileFacts,
  lockFn: (c: CallFact) => LockFn | undefined,
  keyOf: (c: CallFact, sp: LockFn) => string | undefined,
  fn: FunctionFacts,
): State {
  if (node.kind !== 'cond') return s;
  const edge = idx === 0;
  let m: Map<string, number> | undefined;
  const set = (k: string, v: number) => {
    m ??= new Map(s.locks);
    m.set(k, v);
  };
  for (const tr of truths(node.ast, edge, (n) => ff.t(n))) {
    const u = unwrap(tr.node);
    if (u.type === 'call_expression') {
      const c = fn.calls.find((x) => x.node === u);
      const spec = c && lockFn(c);
      if (!c || !spec) continue;
      const key = keyOf(c, spec);
      if (!key) continue;
      if (spec.kind === 'try') set(key, tr.truthy ? HELD : FREE);
      else if (spec.conditional && tr.truthy) set(key, FREE);
    } else {
      const k = exprKey(u, ff);
      const p = k !== undefined ? s.pending[k] : undefined;
      if (!p) continue;
      if (p.startsWith('try:')) set(p.slice(4), tr.truthy ? HELD : FREE);
      else if (tr.truthy) set(p, FREE);
    }
  }
  return m ? { locks: m, pending: s.pending } : s;
}

function stateBefore(
  fn: FunctionFacts,
  sol: Solution<State>,
  call: CallFact,
  ff: FileFacts,
  lockFn: (c: CallFact) => LockFn | undefined,
  keyOf: (c: CallFact, sp: LockFn) => string | undefined,
): LockState {
  const start = sol.before[call.cfgNode];
  if (!start) return new Map();
  let cur: State = start;
  for (const c of fn.callsAt.get(call.cfgNode) ?? []) {
    if (c === call) break;
    cur = applyCall(c, cur, lockFn, keyOf);
  }
  void ff;
  return cur.locks;
}

function summarize(
  fn: FunctionFacts,
  sol: Solution<State>,
  ff: FileFacts,
  lockFn: (c: CallFact) => LockFn | undefined,
  keyOf: (c: CallFact, sp: LockFn) => string | undefined,
): Summary | undefined {
  const params = fn.info.params.map((p) => p.name);
  const paramOf = (key: string) => params.indexOf(rootOf(key));
  const suffixOf = (key: string) => key.slice(rootOf(key).length);
  const exitState = sol.before[fn.cfg.exit];
  const acquires: Summary['acquires'] = [];
  const releases: Summary['releases'] = [];
  const asserts: Summary['asserts'] = [];
  let lockCalls = 0;
  const acquired = new Set<string>();
  for (const c of fn.calls) {
    const spec = lockFn(c);
    if (!spec) continue;
    lockCalls++;
    const key = keyOf(c, spec);
    if (!key) continue;
    if (spec.kind === 'acquire' || spec.kind === 'try') acquired.add(key);
    const p = paramOf(key);
    if (p < 0) continue;
    // An assert is a requirement on the caller only where this function does not hold a lock itself.
    if (spec.kind === 'assert' && !asserts.some((a) => a.param === p) && !anyMaybe(stateBefore(fn, sol, c, ff, lockFn, keyOf)))
      asserts.push({ param: p, suffix: suffixOf(key) });
    if (spec.kind === 'release' && exitState && (exitState.locks.get(key) ?? FREE) === FREE && !releases.some((r) => r.param === p))
      releases.push({ param: p, suffix: suffixOf(key) });
  }
  if (!lockCalls) return undefined;
  if (exitState) {
    const returnsStatus = returnsLockStatus(fn, ff, lockFn);
    for (const [k, v] of exitState.locks) {
      if (k === CALLER || !(v & HELD) || !acquired.has(k)) continue;
      const p = paramOf(k);
      if (p < 0) continue;
      // Left held on every path, or returned as the lock call's status.
      if (v === HELD || returnsStatus) acquires.push({ param: p, conditional: returnsStatus, suffix: suffixOf(k) });
    }
  }
  // An acquire that is also released in the same function is not a wrapper.
  const acq = acquires.filter((a) => !releases.some((r) => r.param === a.param));
  return { acquires: acq, releases: releases.filter((r) => !acq.some((a) => a.param === r.param)), asserts };
}

function returnsLockStatus(fn: FunctionFacts, ff: FileFacts, lockFn: (c: CallFact) => LockFn | undefined): boolean {
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'return' || !n.ast) continue;
    const v = n.ast.children[0];
    if (!v) continue;
    const u = unwrap(v);
    if (u.type === 'call_expression') {
      const c = fn.calls.find((x) => x.node === u);
      if (c && lockFn(c)?.conditional) return true;
    }
    if (u.type === 'identifier') {
      const name = ff.t(u);
      if (fn.assigns.some((a) => a.lhs === name && isLockCall(a.rhs, fn, lockFn))) return true;
    }
  }
  return false;
}

function isLockCall(n: AstNode, fn: FunctionFacts, lockFn: (c: CallFact) => LockFn | undefined): boolean {
  const u = unwrap(n);
  if (u.type !== 'call_expression') return false;
  const c = fn.calls.find((x) => x.node === u);
  return !!c && !!lockFn(c)?.conditional;
}

export { field };
