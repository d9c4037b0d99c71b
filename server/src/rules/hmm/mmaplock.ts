/**
 * The mmap lock (mm->mmap_lock) around migrate_vma_setup() and
 * hmm_range_fault(), per function, with the callers of the file.
 *
 * State: a bit set. HELD: this function took it (or asserted it); FREE: it
 * is not held (the function released it, or owns it and has not taken it
 * yet); CALLER: whatever the caller had, which this file does not show.
 *
 * Entry state of a function:
 * - a fault callback (`.migrate_to_ram`, `vm_operations_struct.fault`) runs
 *   with the lock held by the core: HELD;
 * - a function that takes the lock itself unconditionally owns it, so its
 *   callers cannot hold it: FREE;
 * - a static function called only directly from this file: the union of
 *   the states at its call sites;
 * - anything else: CALLER (precision first: an unseen caller may hold it).
 */
import { type AstNode, field } from '../../core/ast';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve, type Solution } from '../../core/flow';
import { asCall, keyOf } from '../util';
import { addressTaken, callersInFile } from './common';

export const M_HELD = 1;
export const M_FREE = 2;
export const M_CALLER = 4;

type Kind = 'acquire' | 'killable' | 'try' | 'release' | 'assert';

const MMAP_FNS: Record<string, Kind> = {
  mmap_read_lock: 'acquire',
  mmap_write_lock: 'acquire',
  mmap_write_lock_nested: 'acquire',
  mmap_read_lock_killable: 'killable',
  mmap_write_lock_killable: 'killable',
  mmap_read_trylock: 'try',
  mmap_write_trylock: 'try',
  mmap_read_unlock: 'release',
  mmap_write_unlock: 'release',
  mmap_read_unlock_non_owner: 'release',
  mmap_assert_locked: 'assert',
  mmap_assert_write_locked: 'assert',
};

/** rwsem primitives on `mm->mmap_lock` (older code, and `mmap_sem` before 5.8). */
const RWSEM_FNS: Record<string, Kind> = {
  down_read: 'acquire',
  down_write: 'acquire',
  down_read_nested: 'acquire',
  down_write_nested: 'acquire',
  down_read_killable: 'killable',
  down_write_killable: 'killable',
  down_read_interruptible: 'killable',
  down_read_trylock: 'try',
  down_write_trylock: 'try',
  up_read: 'release',
  up_write: 'release',
  lockdep_assert_held: 'assert',
  lockdep_assert_held_read: 'assert',
  lockdep_assert_held_write: 'assert',
};

export const MMAP_LOCK_WORDS = [...Object.keys(MMAP_FNS)];

/** Callback roles the core calls with the mmap lock held. */
const LOCKED_ROLES = new Set(['migrate_to_ram', 'fault', 'huge_fault', 'page_mkwrite', 'pfn_mkwrite', 'map_pages']);

interface State {
  bits: number;
  /** result variable -> how it tells whether the lock was taken */
  pending: Readonly<Record<string, 'killable' | 'try'>>;
}

export interface EntryReason {
  message: string;
  at?: { start: number; end: number };
}

export interface FunctionMmap {
  fn: FunctionFacts;
  entry: number;
  reason?: EntryReason;
  solution: Solution<State>;
  /** Lock bits just before `call`. */
  before(call: CallFact): number;
}

export class MmapLocks {
  private readonly memo = new Map<string, FunctionMmap | null>();
  private readonly summaries = new Map<string, Kind | null>();
  private readonly inProgress = new Set<string>();

  constructor(readonly ff: FileFacts) {}

  /** The kind of lock operation a call is, with same-file wrappers. */
  kindOf(c: CallFact): Kind | undefined {
    const k = MMAP_FNS[c.name];
    if (k) return k;
    const r = RWSEM_FNS[c.name];
    if (r && c.args[0] && /mmap_(lock|sem)\b/.test(this.ff.t(c.args[0]))) return r;
    return this.summary(c.name) ?? undefined;
  }

  /** A same-file function that only takes (or only drops) the mmap lock for its caller. */
  private summary(name: string): Kind | null {
    if (this.summaries.has(name)) return this.summaries.get(name)!;
    this.summaries.set(name, null);
    const info = this.ff.functions.get(name);
    if (!info || !/\b(mmap_(read|write)_(lock|unlock|trylock)|down_(read|write)|up_(read|write))\w*\s*\(/.test(this.ff.t(info))) return null;
    const fn = this.ff.fn(name);
    if (!fn) return null;
    const fromFree = this.run(fn, M_FREE).before[fn.cfg.exit]?.bits;
    const fromHeld = this.run(fn, M_HELD).before[fn.cfg.exit]?.bits;
    let k: Kind | null = null;
    if (fromFree === M_HELD) k = 'acquire';
    else if (fromHeld === M_FREE) k = 'release';
    this.summaries.set(name, k);
    return k;
  }

  private run(fn: FunctionFacts, entry: number, valuation?: ReadonlyMap<string, boolean>): Solution<State> {
    const ff = this.ff;
    const apply = (c: CallFact, s: State): State => {
      const k = this.kindOf(c);
      if (!k) return s;
      switch (k) {
        case 'acquire':
        case 'assert':
          return { ...s, bits: M_HELD };
        case 'release':
          return { ...s, bits: M_FREE };
        case 'killable':
        case 'try': {
          // The result says: handled by the branch (direct test) or by a pending variable.
          const a = fn.assignsAt.get(c.cfgNode)?.find((x) => asCall(x.rhs, fn) === c);
          if (a) return { ...s, bits: s.bits | M_HELD, pending: { ...s.pending, [objectPath(a.lhs)]: k } };
          return { ...s, bits: s.bits | M_HELD };
        }
      }
    };
    return solve<State>(fn.cfg, {
      entry: { bits: entry, pending: {} },
      join: (a, b) => ({ bits: a.bits | b.bits, pending: { ...a.pending, ...b.pending } }),
      equals: (a, b) => a.bits === b.bits && Object.keys(a.pending).length === Object.keys(b.pending).length,
      transfer: (node, s) => {
        if (!s.bits) return s; // an infeasible path under the valuation
        let cur = s;
        // A result variable assigned anything else no longer tells about the lock.
        for (const a of fn.assignsAt.get(node.id) ?? []) {
          if (!cur.pending[objectPath(a.lhs)]) continue;
          const pending = { ...cur.pending };
          delete pending[objectPath(a.lhs)];
          cur = { ...cur, pending };
        }
        for (const c of fn.callsAt.get(node.id) ?? []) cur = apply(c, cur);
        return cur;
      },
      branch: (node, s, idx) => {
        if (node.kind !== 'cond' || !s.bits) return s;
        if (valuation) {
          const g = guardOf(node.ast, ff);
          if (g && valuation.has(g.name) && valuation.get(g.name) !== (g.positive === (idx === 0))) return { bits: 0, pending: {} };
        }
        for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
          const c = asCall(tr.node, fn);
          let kind: 'killable' | 'try' | undefined;
          if (c) {
            const k = this.kindOf(c);
            if (k === 'killable' || k === 'try') kind = k;
          } else {
            const v = keyOf(tr.node, ff);
            if (v) kind = s.pending[v];
          }
          if (!kind) continue;
          const taken = kind === 'try' ? tr.truthy : !tr.truthy;
          return { ...s, bits: taken ? M_HELD : s.bits & ~M_HELD || M_FREE };
        }
        return s;
      },
    });
  }

  /** Lock analysis of a function, with its entry state. */
  of(name: string, depth = 0): FunctionMmap | undefined {
    if (this.memo.has(name)) return this.memo.get(name) ?? undefined;
    const fn = this.ff.fn(name);
    if (!fn) return undefined;
    if (this.inProgress.has(name) || depth > 4) return this.make(fn, M_CALLER);
    this.inProgress.add(name);
    try {
      const { entry, reason } = this.entryOf(fn, depth);
      const r = this.make(fn, entry, reason);
      this.memo.set(name, r);
      return r;
    } finally {
      this.inProgress.delete(name);
    }
  }

  private make(fn: FunctionFacts, entry: number, reason?: EntryReason): FunctionMmap {
    // Locks taken under `if (!locked)`-style guards: one run per value of the guards, so correlated tests stay correlated.
    const guards = new Set<string>();
    for (const c of fn.calls) {
      const k = this.kindOf(c);
      if (!k || k === 'assert') continue;
      for (let cur = c.node.parent; cur; cur = cur.parent) {
        if (cur.type !== 'if_statement') continue;
        const g = guardOf(field(cur, 'condition'), this.ff);
        if (g) guards.add(g.name);
      }
    }
    const names = [...guards].slice(0, 2);
    const valuations: Array<Map<string, boolean> | undefined> = [];
    if (!names.length) valuations.push(undefined);
    else for (let m = 0; m < 1 << names.length; m++) valuations.push(new Map(names.map((n, i) => [n, !!(m & (1 << i))])));
    const runs = valuations.map((v) => this.run(fn, entry, v));
    const bitsBefore = (solution: Solution<State>, call: CallFact): number => {
      let s = solution.before[call.cfgNode];
      if (!s || !s.bits) return 0;
      for (const c of fn.callsAt.get(call.cfgNode) ?? []) {
        if (c === call) break;
        const k = this.kindOf(c);
        if (k === 'acquire' || k === 'assert') s = { ...s, bits: M_HELD };
        else if (k === 'release') s = { ...s, bits: M_FREE };
        else if (k) s = { ...s, bits: s.bits | M_HELD };
      }
      return s.bits;
    };
    return {
      fn,
      entry,
      reason,
      solution: runs[0],
      before: (call: CallFact) => runs.reduce((b, r) => b | bitsBefore(r, call), 0),
    };
  }

  private entryOf(fn: FunctionFacts, depth: number): { entry: number; reason?: EntryReason } {
    const ff = this.ff;
    const role = ff.rolesOf(fn.info.name).find((r) => LOCKED_ROLES.has(r.field));
    if (role) return { entry: M_HELD, reason: { message: `${fn.info.name}() is a .${role.field} callback: the core calls it with the mmap lock held`, at: role.span } };
    const own = fn.calls.find((c) => {
      const k = this.kindOf(c);
      return (k === 'acquire' || k === 'killable' || k === 'try') && !conditional(c.node, fn, ff);
    });
    if (own) return { entry: M_FREE, reason: { message: `${fn.info.name}() takes the mmap lock itself, so its callers do not hold it`, at: own.node } };
    if (!fn.info.isStatic || addressTaken(ff, fn.info.name)) return { entry: M_CALLER };
    const sites = callersInFile(ff, fn.info.name);
    if (!sites.length) return { entry: M_CALLER };
    let bits = 0;
    let reason: EntryReason | undefined;
    for (const s of sites) {
      const fl = this.of(s.fn.info.name, depth + 1);
      const b = fl ? fl.before(s.call) : M_CALLER;
      if (b & M_FREE && !reason) reason = { message: `${s.fn.info.name}() calls ${fn.info.name}() here without the mmap lock`, at: s.call.node };
      bits |= b || M_CALLER;
    }
    return { entry: bits, reason };
  }
}

/** `x`, `!x` (through parentheses and likely/unlikely) for a plain variable x. */
function guardOf(cond: AstNode | undefined, ff: FileFacts): { name: string; positive: boolean } | undefined {
  if (!cond) return undefined;
  let n = cond;
  let positive = true;
  for (let i = 0; i < 6; i++) {
    if (n.type === 'parenthesized_expression' && n.children.length === 1) n = n.children[0];
    else if (n.type === 'unary_expression' && n.op === '!' && n.children[0]) {
      positive = !positive;
      n = n.children[0];
    } else if (n.type === 'call_expression' && /^(likely|unlikely)$/.test(ff.t(field(n, 'function') ?? n))) {
      const a = field(n, 'arguments')?.children[0];
      if (!a) return undefined;
      n = a;
    } else break;
  }
  return n.type === 'identifier' ? { name: ff.t(n), positive } : undefined;
}

/** Whether a call sits under an `if` whose condition depends on a parameter or a lock-ish flag (`if (!locked) mmap_read_lock(mm)`). */
function conditional(n: AstNode, fn: FunctionFacts, ff: FileFacts): boolean {
  const params = new Set(fn.info.params.map((p) => p.name));
  for (let cur = n.parent; cur; cur = cur.parent) {
    if (cur.type === 'if_statement' || cur.type === 'conditional_expression') {
      const c = field(cur, 'condition');
      if (!c) continue;
      const text = ff.t(c);
      if (/lock/i.test(text)) return true;
      for (const p of params) if (new RegExp(`\\b${p}\\b`).test(text)) return true;
    }
  }
  return false;
}
