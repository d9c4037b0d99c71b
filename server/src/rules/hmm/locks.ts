/**
 * Driver locks held at each point of a function (mutexes, spinlocks,
 * rwsems), by name: the last member of the lock expression (`&svmm->mutex`
 * -> `mutex`). A must-analysis: a lock is held when it is held on every path.
 * Used to check that mmu_interval_read_retry() runs under the lock the
 * notifier's invalidate() callback takes.
 */
import { field, unwrap } from '../../core/ast';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve, type Solution } from '../../core/flow';
import { asCall, keyOf } from '../util';

type Kind = 'acquire' | 'zero-held' | 'true-held' | 'release';

const LOCKS: Record<string, Kind> = {
  mutex_lock: 'acquire',
  mutex_lock_nested: 'acquire',
  mutex_lock_interruptible: 'zero-held',
  mutex_lock_killable: 'zero-held',
  mutex_trylock: 'true-held',
  mutex_unlock: 'release',
  spin_lock: 'acquire',
  spin_lock_irq: 'acquire',
  spin_lock_irqsave: 'acquire',
  spin_lock_bh: 'acquire',
  spin_trylock: 'true-held',
  spin_unlock: 'release',
  spin_unlock_irq: 'release',
  spin_unlock_irqrestore: 'release',
  spin_unlock_bh: 'release',
  raw_spin_lock: 'acquire',
  raw_spin_lock_irqsave: 'acquire',
  raw_spin_unlock: 'release',
  raw_spin_unlock_irqrestore: 'release',
  down_read: 'acquire',
  down_write: 'acquire',
  down_read_interruptible: 'zero-held',
  down_read_killable: 'zero-held',
  down_write_killable: 'zero-held',
  down_read_trylock: 'true-held',
  down_write_trylock: 'true-held',
  up_read: 'release',
  up_write: 'release',
  read_lock: 'acquire',
  write_lock: 'acquire',
  read_unlock: 'release',
  write_unlock: 'release',
};

/** The name a lock call is about (`mutex`, `notifier_lock`); undefined for the mmap lock. */
export function lockName(c: CallFact, ff: FileFacts): string | undefined {
  if (!(c.name in LOCKS) || !c.args[0]) return undefined;
  let u = unwrap(c.args[0]);
  if (u.type === 'pointer_expression' && u.op === '&') u = unwrap(u.children[0] ?? u);
  const text = ff.t(u);
  if (/mmap_(lock|sem)\b/.test(text)) return undefined;
  if (u.type === 'field_expression') {
    const f = field(u, 'field');
    return f ? ff.t(f) : undefined;
  }
  return u.type === 'identifier' ? text : undefined;
}

export function isLockCall(c: CallFact): boolean {
  return c.name in LOCKS && LOCKS[c.name] !== 'release';
}

interface State {
  held: ReadonlySet<string>;
  pending: Readonly<Record<string, { name: string; kind: 'zero-held' | 'true-held' }>>;
}

export interface HeldLocks {
  solution: Solution<State>;
  before(call: CallFact): ReadonlySet<string>;
}

export function heldLocks(fn: FunctionFacts, ff: FileFacts): HeldLocks {
  const apply = (c: CallFact, s: State): State => {
    const kind = LOCKS[c.name];
    const name = kind ? lockName(c, ff) : undefined;
    if (!kind || !name) return s;
    const held = new Set(s.held);
    if (kind === 'release') {
      held.delete(name);
      return { ...s, held };
    }
    if (kind === 'acquire') {
      held.add(name);
      return { ...s, held };
    }
    const a = fn.assignsAt.get(c.cfgNode)?.find((x) => asCall(x.rhs, fn) === c);
    if (a) return { ...s, pending: { ...s.pending, [objectPath(a.lhs)]: { name, kind } } };
    return s;
  };
  const solution = solve<State>(fn.cfg, {
    entry: { held: new Set(), pending: {} },
    join: (a, b) => ({ held: new Set([...a.held].filter((x) => b.held.has(x))), pending: { ...a.pending, ...b.pending } }),
    equals: (a, b) => a.held.size === b.held.size && [...a.held].every((x) => b.held.has(x)) && Object.keys(a.pending).length === Object.keys(b.pending).length,
    transfer: (node, s) => {
      let cur = s;
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
      if (node.kind !== 'cond') return s;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const c = asCall(tr.node, fn);
        let p: { name: string; kind: 'zero-held' | 'true-held' } | undefined;
        if (c && (LOCKS[c.name] === 'zero-held' || LOCKS[c.name] === 'true-held')) {
          const name = lockName(c, ff);
          if (name) p = { name, kind: LOCKS[c.name] as 'zero-held' | 'true-held' };
        } else if (!c) {
          const k = keyOf(tr.node, ff);
          if (k) p = s.pending[k];
        }
        if (!p) continue;
        const taken = p.kind === 'true-held' ? tr.truthy : !tr.truthy;
        if (!taken) continue;
        const held = new Set(s.held);
        held.add(p.name);
        return { ...s, held };
      }
      return s;
    },
  });
  return {
    solution,
    before(call) {
      let s = solution.before[call.cfgNode];
      if (!s) return new Set();
      for (const c of fn.callsAt.get(call.cfgNode) ?? []) {
        if (c === call) break;
        s = apply(c, s);
      }
      return s.held;
    },
  };
}

/** Lock names a function takes anywhere (for callbacks: what invalidate() serialises on). */
export function locksTaken(fn: FunctionFacts, ff: FileFacts): Map<string, CallFact> {
  const out = new Map<string, CallFact>();
  for (const c of fn.calls) {
    if (!isLockCall(c)) continue;
    const n = lockName(c, ff);
    if (n && !out.has(n)) out.set(n, c);
  }
  return out;
}
