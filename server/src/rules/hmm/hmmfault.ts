/**
 * hmm_range_fault() rules: HMM-FAULT-PROTOCOL and HMM-DEV-PRIVATE-OWNER.
 *
 * Checked against mm/hmm.c, include/linux/mmu_notifier.h and
 * Documentation/mm/hmm.rst (6.12): hmm_range_fault() reads
 * range->notifier->mm, asserts the mmap lock, and returns -EBUSY at once
 * when mmu_interval_check_retry(range->notifier, range->notifier_seq) says
 * the sequence is stale; mmu_interval_read_retry() must be called under the
 * lock the invalidate() callback holds when it calls mmu_interval_set_seq().
 * Device-private entries are reported as device PFNs only when their
 * pgmap->owner equals range->dev_private_owner; the others are faulted,
 * which calls the owner's migrate_to_ram().
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { truths } from '../../core/conditions';
import { type AssignFact, type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import type { CodeEvent, RelatedSpan } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';
import { callersInFile, isNullish, localDecls, objectFields, objectOf, ownerSymbol, reaches } from './common';
import { heldLocks, isLockCall, locksTaken } from './locks';
import { migrateSetups, mmapOf, pgmapOwners, pgmapsOf } from './migrate';
import { M_CALLER, M_FREE, M_HELD } from './mmaplock';

const RETRY = new Set(['mmu_interval_read_retry', 'mmu_interval_check_retry']);
const HMM_NEUTRAL = new Set(['hmm_range_fault', 'mmu_interval_read_begin', 'mmap_read_lock', 'mmap_read_unlock', 'memset', 'kfree', 'kvfree']);

export interface FaultCall {
  fn: FunctionFacts;
  call: CallFact;
  obj: string;
}

export function faultCalls(ctx: RuleContext): FaultCall[] {
  return ctx.shared('hmm.faults', () => {
    const out: FaultCall[] = [];
    for (const info of ctx.ff.functions.values()) {
      if (!/\bhmm_range_fault\s*\(/.test(ctx.ff.t(info))) continue;
      const fn = ctx.ff.fn(info.name);
      if (!fn) continue;
      for (const c of fn.calls) {
        if (c.name !== 'hmm_range_fault') continue;
        const obj = objectOf(c.args[0], ctx.ff);
        if (obj) out.push({ fn, call: c, obj });
      }
    }
    return out;
  });
}

/**
 * The range object(s) behind a fault call: the local it names, or, when the
 * function was handed the range, the locals its same-file callers pass.
 */
function rangeObjects(ff: FileFacts, fc: FaultCall): Array<{ fn: FunctionFacts; obj: string; at: number }> {
  const f = objectFields(fc.fn, fc.obj, ff);
  if (f.local) return [{ fn: fc.fn, obj: fc.obj, at: fc.call.cfgNode }];
  if (!f.param || fc.obj.includes('.')) return [];
  const idx = fc.fn.info.params.findIndex((p) => p.name === fc.obj);
  const out: Array<{ fn: FunctionFacts; obj: string; at: number }> = [];
  for (const site of callersInFile(ff, fc.fn.info.name)) {
    const o = objectOf(site.call.args[idx], ff);
    if (o && objectFields(site.fn, o, ff).local) out.push({ fn: site.fn, obj: o, at: site.call.cfgNode });
  }
  return out;
}

/** Keys known to equal -EBUSY on an edge of a condition (`ret == -EBUSY`, `ret != -EBUSY` false edge). */
function ebusyOn(cond: AstNode | undefined, edge: boolean, ff: FileFacts): string[] {
  const out: string[] = [];
  const visit = (n: AstNode, e: boolean) => {
    n = unwrap(n);
    if (n.type === 'unary_expression' && n.op === '!') return visit(n.children[0], !e);
    if (n.type === 'call_expression') {
      const f = field(n, 'function');
      if (f && /^(likely|unlikely)$/.test(ff.t(f))) {
        const a = field(n, 'arguments')?.children[0];
        if (a) visit(a, e);
      }
      return;
    }
    if (n.type !== 'binary_expression') return;
    const l = field(n, 'left');
    const r = field(n, 'right');
    if (!l || !r) return;
    if (n.op === '&&' && e) {
      visit(l, true);
      visit(r, true);
    } else if (n.op === '||' && !e) {
      visit(l, false);
      visit(r, false);
    } else if ((n.op === '==' && e) || (n.op === '!=' && !e)) {
      const lt = ff.t(l).replace(/\s+/g, '');
      const rt = ff.t(r).replace(/\s+/g, '');
      const k = rt === '-EBUSY' ? keyOf(l, ff) : lt === '-EBUSY' ? keyOf(r, ff) : undefined;
      if (k) out.push(k);
    }
  };
  if (cond) visit(cond, edge);
  return out;
}

const NONE = 1;
const FRESH = 2;
const STALE = 4;
const UNKNOWN = 8;

interface SeqState {
  bits: number;
  pending: Readonly<Record<string, true>>;
}

const seqMemo = new WeakMap<FunctionFacts, Map<string, Map<CallFact, number>>>();

/** Sequence-number state of `obj.notifier_seq` at each fault call of `fn` (once per function and object). */
function seqStates(fn: FunctionFacts, obj: string, local: boolean, ff: FileFacts): Map<CallFact, number> {
  let m = seqMemo.get(fn);
  if (!m) seqMemo.set(fn, (m = new Map()));
  const key = `${local ? 1 : 0}${obj}`;
  let states = m.get(key);
  if (!states) m.set(key, (states = computeSeqStates(fn, obj, local, ff)));
  return states;
}

/** The assignment that stores the result of `c` (`ret = hmm_range_fault(&range)`), if any. */
function resultOf(fn: FunctionFacts, c: CallFact): AssignFact | undefined {
  return fn.assignsAt.get(c.cfgNode)?.find((x) => asCall(x.rhs, fn) === c);
}

function computeSeqStates(fn: FunctionFacts, obj: string, local: boolean, ff: FileFacts): Map<CallFact, number> {
  const calls = fn.calls.filter((c) => c.name === 'hmm_range_fault' && objectOf(c.args[0], ff) === obj);
  const faults = new Set(calls);
  const isFault = (c: CallFact | undefined) => !!c && faults.has(c);
  const f = objectFields(fn, obj, ff);
  const escapeCalls = new Set(fn.calls.filter((c) => !isFault(c) && !HMM_NEUTRAL.has(c.name) && c.args.some((a) => {
    const u = unwrap(a);
    return (u.type === 'pointer_expression' && u.op === '&' && objectOf(u, ff) === obj) || (!local && keyOf(u, ff) === obj) || (local && f.local && keyOf(u, ff) === obj && !!localDecls(fn, ff).get(obj)?.pointer);
  })));
  const sol = solve<SeqState>(fn.cfg, {
    entry: { bits: local ? NONE : UNKNOWN, pending: {} },
    join: (a, b) => ({ bits: a.bits | b.bits, pending: { ...a.pending, ...b.pending } }),
    equals: (a, b) => a.bits === b.bits && Object.keys(a.pending).length === Object.keys(b.pending).length,
    transfer: (node, s) => {
      let cur = s;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        if (!cur.pending[objectPath(a.lhs)]) continue;
        const pending = { ...cur.pending };
        delete pending[objectPath(a.lhs)];
        cur = { ...cur, pending };
      }
      for (const c of fn.callsAt.get(node.id) ?? []) {
        if (escapeCalls.has(c)) cur = { ...cur, bits: UNKNOWN };
        if (isFault(c)) {
          const a = resultOf(fn, c);
          cur = { bits: cur.bits & ~NONE ? cur.bits & ~NONE : cur.bits, pending: a ? { ...cur.pending, [objectPath(a.lhs)]: true } : cur.pending };
        }
      }
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        if (objectPath(a.lhs) !== obj + '.notifier_seq') continue;
        const c = asCall(a.rhs, fn);
        cur = { ...cur, bits: c && c.name === 'mmu_interval_read_begin' ? FRESH : UNKNOWN };
      }
      return cur;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond') return s;
      const edge = idx === 0;
      let stale = ebusyOn(node.ast, edge, ff).some((k) => s.pending[k]);
      for (const tr of truths(node.ast, edge, (x) => ff.t(x))) {
        if (!tr.truthy) continue;
        const c = asCall(tr.node, fn);
        if (c ? isFault(c) : !!s.pending[keyOf(tr.node, ff) ?? '']) stale = true;
      }
      return stale ? { ...s, bits: (s.bits & ~FRESH) | STALE } : s;
    },
  });
  const out = new Map<CallFact, number>();
  for (const c of calls) {
    let s = sol.before[c.cfgNode];
    if (!s) continue;
    // Assignments in the same node before the call (`range.notifier_seq = mmu_interval_read_begin(); ret = hmm_range_fault()` never share a node, but be safe).
    out.set(c, s.bits);
    s = undefined;
  }
  return out;
}

export const hmmFaultProtocol: Rule = {
  id: 'HMM-FAULT-PROTOCOL',
  family: 'hmm',
  severity: 'error',
  summary: 'hmm_range_fault() without the mmu_interval_notifier sequence, -EBUSY retry, mmap lock or read_retry protocol',
  needs: ['hmm_range_fault'],
  check(ctx) {
    const { ff } = ctx;
    const mmap = mmapOf(ctx);
    // Lock names the file's invalidate() callbacks serialise on.
    const invalidateLocks = new Map<string, CallFact>();
    for (const name of ff.functionsWithRole('invalidate')) {
      const g = ff.fn(name);
      if (g) for (const [n, c] of locksTaken(g, ff)) invalidateLocks.set(n, c);
    }
    // Issues found at the same place become one finding (the first, most basic, leads).
    interface Issue { kind: string; message: string; related: RelatedSpan[]; severity?: 'warning' | 'info'; extra: CodeEvent[] }
    const found = new Map<number, { fc: FaultCall; at: AstNode; issues: Issue[] }>();
    const report = (fc: FaultCall, at: AstNode, kind: string, message: string, related: RelatedSpan[] = [], severity?: 'warning' | 'info', extra: CodeEvent[] = []) => {
      const entry = found.get(at.start) ?? { fc, at, issues: [] };
      if (entry.issues.some((i) => i.kind === kind)) return;
      entry.issues.push({ kind, message, related, severity, extra });
      found.set(at.start, entry);
    };
    for (const fc of faultCalls(ctx)) {
      const { fn, call, obj } = fc;
      const f = objectFields(fn, obj, ff);
      const escaped = f.escapedBefore(call.cfgNode, HMM_NEUTRAL, ['notifier_seq']);

      // (6) range.notifier never set: hmm_range_fault() dereferences range->notifier->mm.
      const ownNotifier = (f.writes.get('notifier') ?? []).some((w) => !isNullish(w.value, ff) && (!w.cfgNode || reaches(fn, w.cfgNode, call.cfgNode)));
      for (const ro of ownNotifier ? [] : rangeObjects(ff, fc)) {
        const rf = objectFields(ro.fn, ro.obj, ff);
        if (rf.escapedBefore(ro.at, new Set([...HMM_NEUTRAL, fn.info.name]), ['notifier'])) continue;
        const n = rf.writes.get('notifier') ?? [];
        if (n.length && !n.every((w) => isNullish(w.value, ff))) continue;
        report(fc, call.node, 'notifier', `${ro.obj}.notifier is ${n.length ? 'NULL' : 'never set'} when hmm_range_fault() runs: it starts with range->notifier->mm and mmu_interval_check_retry(range->notifier, ...), a NULL dereference. Register an mmu_interval_notifier for the range and set .notifier to it.`, ro.fn === fn ? [] : [rel(fn.info.nameSpan, `${fn.info.name}() faults the range ${ro.fn.info.name}() builds`)]);
      }

      // (1) the sequence number: read_begin() before every attempt.
      if (!escaped) {
        const states = seqStates(fn, obj, f.local, ff);
        const bits = states.get(call) ?? 0;
        if (bits & NONE) {
          const loops = inLoop(fn, call);
          report(fc, call.node, 'seq', `hmm_range_fault() is called without ${obj}.notifier_seq = mmu_interval_read_begin(${obj}.notifier) before it${bits & (FRESH | UNKNOWN) ? ' on some paths' : ''}: it compares the notifier's sequence with notifier_seq first, and with a sequence it never read it returns -EBUSY ${loops ? 'on every attempt, so this loop never ends' : 'every time'}.`, [], undefined, [{ op: 'no_read_begin', args: { loop: loops } }]);
        } else if (bits & STALE) {
          report(fc, call.node, 'stale-seq', `After -EBUSY this path calls hmm_range_fault() again with the same ${obj}.notifier_seq: -EBUSY means an invalidation made that sequence stale, so every retry returns -EBUSY at once and the loop never ends. Call mmu_interval_read_begin() again before each attempt.`, [], undefined, [{ op: 'retry_stale_seq' }]);
        }
      }

      // (2) the mmap lock.
      const fl = mmap.of(fn.info.name);
      if (fl) {
        const b = fl.before(call);
        if (b & M_FREE) {
          const certain = !(b & (M_HELD | M_CALLER));
          report(fc, call.node, 'mmap-lock', `hmm_range_fault() runs without the mmap lock${certain ? '' : ' on some paths'}: it walks the process page tables (and asserts mmap_assert_locked()), which a concurrent munmap() can free under it. Take mmap_read_lock(mm) around the call.`, fl.reason?.at ? [rel(fl.reason.at, fl.reason.message)] : [], certain ? undefined : 'warning', [{ op: 'no_mmap_lock' }]);
        }
      }

      // (3) the result.
      const a = resultOf(fn, call);
      const stmt = call.node.parent;
      const discarded = !a && stmt?.type === 'expression_statement';
      if (discarded) {
        report(fc, call.node, 'result', `The result of hmm_range_fault() is ignored: on -EBUSY (a racing invalidation) or -EFAULT the pfns array still holds its input values, and the code goes on to use them as if they were faulted pages. Test the result; retry from mmu_interval_read_begin() on -EBUSY.`);
      } else if (a) {
        const swallow = swallowedBusy(fn, call, objectPath(a.lhs), ff);
        if (swallow) report(fc, call.node, 'busy-swallowed', `-EBUSY from hmm_range_fault() is neither retried nor passed on here: it only means an invalidation raced with the walk, yet ${swallow.text === 'the end of the function' ? 'the function gives up' : `the path returns ${swallow.text}`}, so the fault fails under ordinary concurrent activity. Loop back to mmu_interval_read_begin() on -EBUSY (or return -EBUSY/-EAGAIN to a caller that retries).`, swallow.at ? [rel(swallow.at, 'the -EBUSY path ends here')] : [], 'warning', [{ op: 'busy_swallowed' }]);
      }

      // (4) mmu_interval_read_retry() before the pfns are trusted, under the update lock.
      const retries = retryCalls(fn).filter((c) => reaches(fn, call.cfgNode, c.cfgNode) && c.cfgNode !== call.cfgNode);
      if (!retries.length) {
        // A range the caller handed in: the caller may check read_retry after this returns.
        if (f.local && !escapesAfter(fn, call, obj, ff) && usesPfns(fn, call, obj, ff)) {
          report(fc, call.node, 'retry', `The pfns from hmm_range_fault() are used without mmu_interval_read_retry(${obj}.notifier, ${obj}.notifier_seq): an invalidation (munmap, migration, reclaim) that runs after the walk is never noticed, and the device is programmed with pages that may already belong to someone else. Take the update lock, check read_retry, and program the device under that lock.`, [], undefined, [{ op: 'no_read_retry' }]);
        }
      } else if (invalidateLocks.size) {
        const held = heldLocks(fn, ff);
        for (const r of retries) {
          if (r.name !== 'mmu_interval_read_retry') continue;
          const h = held.before(r);
          if ([...invalidateLocks.keys()].some((n) => h.has(n))) continue;
          // A lock taken some other way (a wrapper, another lock API) on the way: cannot tell.
          if (fn.calls.some((c) => c !== r && !/^mmap_/.test(c.name) && /(^|_)(lock|down|acquire)(_|$)|lock$/.test(c.name) && !/unlock|^up_/.test(c.name) && reaches(fn, c.cfgNode, r.cfgNode) && !isLockCall(c))) continue;
          const [ln, lc] = [...invalidateLocks][0];
          report(fc, r.node, 'update-lock', `mmu_interval_read_retry() is checked without the lock the invalidate() callback takes (${ln}): an invalidation can run between the check and the device update, and the device maps pages that were just unmapped. Take the same lock around the check and the device page-table update.`, [rel(lc.node, 'invalidate() takes this lock')], 'warning', [{ op: 'retry_unlocked' }]);
        }
      }

      // (5) hmm_pfn_to_page() on entries that may not be valid (snapshot ranges).
      if (f.local) {
        const df = f.writes.get('default_flags');
        const mask = f.writes.get('pfn_flags_mask') ?? [];
        const faults = (df ?? []).some((w) => /HMM_PFN_REQ_FAULT/.test(ff.t(w.value)) || !/^(0|HMM_PFN_\w+(\s*\|\s*HMM_PFN_\w+)*)$/.test(ff.t(w.value).trim()));
        const checks = /\bHMM_PFN_(VALID|ERROR)\b/.test(ff.t(fn.info));
        if (!faults && !checks && mask.every((w) => isNullish(w.value, ff))) {
          for (const c of fn.calls) {
            if (c.name !== 'hmm_pfn_to_page' || !reaches(fn, call.cfgNode, c.cfgNode)) continue;
            report(fc, c.node, 'valid-check', `hmm_pfn_to_page() on an entry nothing checked for HMM_PFN_VALID: ${obj} does not request faulting (no HMM_PFN_REQ_FAULT), so unpopulated entries come back as 0, and hmm_pfn_to_page(0) is the page at pfn 0. Test HMM_PFN_VALID (or HMM_PFN_ERROR) first.`, [], 'warning', [{ op: 'unchecked_pfn', span: { start: c.node.start, end: c.node.end } }]);
          }
        }
      }
    }
    const rank = (sv?: 'warning' | 'info') => (sv === undefined ? 0 : sv === 'warning' ? 1 : 2);
    for (const { fc, at, issues } of found.values()) {
      const lead = issues[0];
      const severity = issues.reduce<'warning' | 'info' | undefined>((m, i) => (rank(i.severity) < rank(m) ? i.severity : m), lead.severity);
      ctx.report({
        severity,
        message: issues.length === 1 ? lead.message : `${lead.message} Also: ${issues.slice(1).map((i) => i.message).join(' ')}`,
        at,
        related: issues.flatMap((i) => i.related),
        functionName: fc.fn.info.name,
        events: [...lead.extra, callEvent(fc.call, 'hmm_range_fault', { missing: lead.kind, also: issues.slice(1).map((i) => i.kind).join(',') })],
      });
    }
  },
};

const retryMemo = new WeakMap<FunctionFacts, CallFact[]>();
/** The function's mmu_interval_read_retry()/check_retry() calls (asked for at every fault call). */
function retryCalls(fn: FunctionFacts): CallFact[] {
  let r = retryMemo.get(fn);
  if (!r) retryMemo.set(fn, (r = fn.calls.filter((c) => RETRY.has(c.name))));
  return r;
}

function inLoop(fn: FunctionFacts, call: CallFact): boolean {
  return reaches(fn, call.cfgNode, call.cfgNode) || fn.cfg.nodes[call.cfgNode].succ.some((s) => reaches(fn, s, call.cfgNode));
}

/**
 * A path where the result is -EBUSY (non-zero) that neither reaches the call
 * again nor returns something carrying the error: returns the place.
 */
function swallowedBusy(fn: FunctionFacts, call: CallFact, v: string, ff: FileFacts): { text: string; at?: AstNode } | undefined {
  const seen = new Set<number>();
  const stack: number[] = [];
  const node0 = fn.cfg.nodes[call.cfgNode];
  // The call may sit in a condition itself: `if ((ret = hmm_range_fault(&r)))`.
  const pushSucc = (id: number) => {
    const n = fn.cfg.nodes[id];
    n.succ.forEach((s, i) => {
      if (n.kind === 'cond') {
        const edge = i === 0;
        const ct = n.ast ? ff.t(n.ast).trim() : '';
        if ((ct === 'true' || ct === '1') && !edge) return;
        if ((ct === 'false' || ct === '0') && edge) return;
        const tr = truths(n.ast, edge, (x) => ff.t(x));
        // On this edge the result is 0: not the -EBUSY path.
        if (tr.some((t) => !t.truthy && (keyOf(t.node, ff) === v || asCall(t.node, fn) === call))) return;
        // `ret != -EBUSY` true edge / `ret == -EBUSY` false edge: another error, not ours.
        if (notBusyOn(n.ast, edge, v, ff)) return;
      }
      stack.push(s);
    });
  };
  pushSucc(node0.id);
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (id === call.cfgNode) continue; // retried
    const n = fn.cfg.nodes[id];
    if (id === fn.cfg.exit) {
      return /\bvoid\b/.test(ff.t({ start: fn.info.start, end: fn.info.nameSpan.start })) ? { text: 'the end of the function' } : undefined;
    }
    if ((fn.assignsAt.get(id) ?? []).some((a) => objectPath(a.lhs) === v)) continue; // the value is replaced: cannot tell
    if ((fn.callsAt.get(id) ?? []).some((c) => c.name === 'hmm_range_fault' || c.name === 'mmu_interval_read_begin')) continue;
    if (n.kind === 'return') {
      const val = n.ast?.children[0];
      if (!val) return { text: 'nothing', at: n.ast };
      const t = ff.t(val).replace(/\s+/g, '');
      if (/^-E(BUSY|AGAIN)$/.test(t)) continue; // handed to a caller that retries
      // true/false/NULL and VM_FAULT_RETRY/NOPAGE may well tell the caller to try again.
      const constant = /^-E[A-Z0-9]+$/.test(t) || /^-?\d+[UL]*$/.test(t) || (/^VM_FAULT_\w+$/.test(t) && !/^VM_FAULT_(RETRY|NOPAGE)$/.test(t));
      if (!constant) continue; // the error value itself (or something derived from it) goes back
      return { text: ff.t(val), at: n.ast };
    }
    pushSucc(id);
  }
  return undefined;
}

function notBusyOn(cond: AstNode | undefined, edge: boolean, v: string, ff: FileFacts): boolean {
  if (!cond) return false;
  const u = unwrap(cond);
  if (u.type !== 'binary_expression') return false;
  const l = field(u, 'left');
  const r = field(u, 'right');
  if (!l || !r || keyOf(l, ff) !== v || ff.t(r).replace(/\s+/g, '') !== '-EBUSY') return false;
  return (u.op === '!=' && edge) || (u.op === '==' && !edge);
}

/** The range, its pfns or its sequence leave the function after the call (stored, returned, handed to other code that may check read_retry). */
function escapesAfter(fn: FunctionFacts, call: CallFact, obj: string, ff: FileFacts): boolean {
  const after = (n: number) => n !== call.cfgNode && reaches(fn, call.cfgNode, n);
  const isObj = (n: AstNode) => {
    const u = unwrap(n);
    if (u.type === 'pointer_expression' && u.op === '&') return objectOf(u, ff) === obj;
    const k = keyOf(u, ff);
    return k === obj || k === obj + '.notifier_seq';
  };
  for (const c of fn.calls) {
    if (!after(c.cfgNode) || c.name === 'hmm_range_fault' || HMM_NEUTRAL.has(c.name)) continue;
    if (!c.args.some(isObj)) continue;
    if (!ff.functions.has(c.name)) return true; // code we cannot see may check read_retry
    const g = ff.fn(c.name);
    if (g && /\bmmu_interval_(read|check)_retry\b|notifier_seq/.test(ff.t(g.info))) return true;
  }
  for (const a of fn.assigns) {
    if (!after(a.cfgNode)) continue;
    const lhsRoot = objectPath(a.lhs).split(/[.[]/)[0];
    if (lhsRoot === obj) continue;
    if (isObj(a.rhs)) return true;
  }
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'return' || !after(n.id) || !n.ast?.children[0]) continue;
    if (isObj(n.ast.children[0])) return true;
  }
  return false;
}

/** Whether the faulted pfns are used after the call: hmm_pfn_to_page(), or the range/pfns handed on. */
function usesPfns(fn: FunctionFacts, call: CallFact, obj: string, ff: FileFacts): boolean {
  const after = (n: number) => n !== call.cfgNode && reaches(fn, call.cfgNode, n);
  const pfnKeys = new Set<string>([obj + '.hmm_pfns']);
  const f = objectFields(fn, obj, ff);
  for (const w of f.writes.get('hmm_pfns') ?? []) {
    const k = objectOf(w.value, ff);
    if (k) pfnKeys.add(k);
  }
  for (const c of fn.calls) {
    if (!after(c.cfgNode)) continue;
    if (c.name === 'hmm_pfn_to_page' || c.name === 'hmm_pfn_to_map_order') return true;
    if (c.name === 'hmm_range_fault' || HMM_NEUTRAL.has(c.name) || /^(kfree|kvfree|pr_\w+|dev_\w+)$/.test(c.name)) continue;
    for (const arg of c.args) {
      let hit = false;
      walk(arg, (x) => {
        if (hit) return false;
        const k = keyOf(x, ff);
        if (k && (pfnKeys.has(k.replace(/^[&*]+/, '')) || k.replace(/^[&*]+/, '') === obj)) hit = true;
        return !hit;
      });
      if (hit) return true;
    }
  }
  return false;
}

// ---------------------------------------------------------------------------

export const hmmDevPrivateOwner: Rule = {
  id: 'HMM-DEV-PRIVATE-OWNER',
  family: 'hmm',
  severity: 'warning',
  summary: 'hmm_range without dev_private_owner (or with another owner) in a driver that has device-private memory',
  since: { major: 5, minor: 7 },
  needs: ['hmm_range_fault'],
  check(ctx) {
    const { ff } = ctx;
    // Evidence that this driver has device-private memory of its own.
    const privMaps = pgmapsOf(ctx).filter((o) => o.type === 'MEMORY_DEVICE_PRIVATE');
    const privMigrations = migrateSetups(ctx).filter((s) => (objectFields(s.fn, s.obj, ff).writes.get('flags') ?? []).some((w) => /DEVICE_PRIVATE/.test(ff.t(w.value))));
    const faultHandler = ff.functionsWithRole('migrate_to_ram')[0];
    const evidence = privMaps[0]?.typeAt ?? privMaps[0]?.submits[0]?.node ?? privMigrations[0]?.call.node ?? (faultHandler ? ff.rolesOf(faultHandler).find((r) => r.field === 'migrate_to_ram')?.span : undefined);
    if (!evidence) return;
    const evidenceRel: RelatedSpan[] = [rel(evidence, 'this driver has device-private memory of its own')];
    // Owners used for the driver's device pages: pgmap owners and migrate_vma pgmap_owner values.
    const owners = pgmapOwners(ctx);
    for (const s of migrateSetups(ctx)) {
      for (const w of objectFields(s.fn, s.obj, ff).writes.get('pgmap_owner') ?? []) {
        const sym = ownerSymbol(w.value, s.fn, ff);
        if (sym) owners.push({ symbol: sym, at: w.value, text: ff.t(w.value) });
      }
    }
    const done = new Set<string>();
    for (const fc of faultCalls(ctx)) {
      for (const ro of rangeObjects(ff, fc)) {
        const key = `${ro.fn.info.name}:${ro.obj}`;
        if (done.has(key)) continue;
        done.add(key);
        const rf = objectFields(ro.fn, ro.obj, ff);
        if (rf.escapedBefore(ro.at, new Set([...HMM_NEUTRAL, fc.fn.info.name]), ['dev_private_owner'])) continue;
        const w = rf.writes.get('dev_private_owner') ?? [];
        const related = [...evidenceRel];
        if (ro.fn !== fc.fn) related.push(rel(fc.call.node, `${fc.fn.info.name}() faults this range`));
        const events: CodeEvent[] = [callEvent(fc.call, 'hmm_range_fault')];
        if (!w.length || w.every((x) => isNullish(x.value, ff))) {
          events[0].args = { owner: 'missing' };
          ctx.report({
            message: `${ro.obj} has ${w.length ? 'dev_private_owner = NULL' : 'no dev_private_owner'}, in a driver with device-private memory: hmm_range_fault() reports this driver's own device pages only when pgmap->owner matches, so it faults each of them back to system RAM through migrate_to_ram() instead, and the range ping-pongs between VRAM and RAM. Set .dev_private_owner to the owner of your pgmap.`,
            at: fc.call.node,
            related,
            functionName: fc.fn.info.name,
            events,
          });
          continue;
        }
        if (!owners.length) continue;
        const syms = w.map((x) => ownerSymbol(x.value, ro.fn, ff));
        if (syms.some((x) => !x)) continue;
        const known = new Set(owners.map((o) => o.symbol));
        if (syms.some((x) => known.has(x!))) continue;
        events[0].args = { owner: 'mismatch' };
        ctx.report({
          message: `${ro.obj}.dev_private_owner (${ff.t(w[0].value)}) is not the owner this driver gives its device pages (${owners.slice(0, 2).map((o) => o.text).join(', ')}): hmm_range_fault() compares them by pointer, so your own device pages are faulted back to RAM instead of being reported. Use the pgmap's owner.`,
          at: fc.call.node,
          related: [rel(w[0].at, 'dev_private_owner is set here'), ...owners.slice(0, 2).map((o) => rel(o.at, 'the device pages\' owner is set here'))],
          functionName: fc.fn.info.name,
          events,
        });
      }
    }
  },
};
