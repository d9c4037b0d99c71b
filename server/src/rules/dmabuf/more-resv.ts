/**
 * DMABUF-RESV-FAULT: dma_resv_lockdep() (drivers/dma-buf/dma-resv.c, 6.1 and
 * 6.12) primes lockdep with mmap_lock -> dma_resv -> fs_reclaim ->
 * dma_fence_wait: nothing that faults user memory (and so takes mmap_lock)
 * may run under a reservation lock. dma_resv_add_fence() needs slots
 * reserved with dma_resv_reserve_fences() under the same lock hold
 * (BUG_ON(fobj->num_fences >= fobj->max_fences); dma_resv_unlock() resets the
 * reservation with CONFIG_DEBUG_MUTEXES). A ww_acquire_ctx lock can fail
 * with -EDEADLK. Fence-signalling critical sections may not allocate with
 * GFP_KERNEL nor take a reservation lock.
 */
import type { AstNode } from '../../core/ast';
import { type CallFact, FileFacts, type FunctionFacts, rootOf } from '../../core/facts';
import { solve } from '../../core/flow';
import type { CodeEvent } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { aliasRoots, callEvent } from '../util';
import { anyHeld, anyMaybe, CALLER, type FileLocks, fileLocks, HELD } from './locks';
import { LOCK_FNS } from './vocab';
import { analysed, pathOf } from './more-util';

/** Calls that may fault user memory, or take mmap_lock outright. */
export const USER_FAULTS = new Set([
  'copy_from_user', 'copy_to_user', '__copy_from_user', '__copy_to_user', '_copy_from_user', '_copy_to_user',
  'get_user', 'put_user', '__get_user', '__put_user', 'clear_user', '__clear_user', 'strncpy_from_user', 'strnlen_user',
  'memdup_user', 'vmemdup_user', 'memdup_user_nul', 'memdup_array_user', 'vmemdup_array_user', 'copy_struct_from_user',
  'pin_user_pages', 'pin_user_pages_fast', 'pin_user_pages_remote', 'pin_user_pages_unlocked',
  'get_user_pages', 'get_user_pages_fast', 'get_user_pages_remote', 'get_user_pages_unlocked',
  'hmm_range_fault', 'mmap_read_lock', 'mmap_write_lock', 'mmap_read_lock_killable', 'mmap_write_lock_killable',
  'fault_in_readable', 'fault_in_writeable', 'iov_iter_get_pages2', 'iov_iter_get_pages_alloc2',
]);

const RESERVE = new Set(['dma_resv_reserve_fences', 'dma_resv_reserve_shared']);
/** Calls that reserve fence slots on whatever they lock or prepare (drm_exec, TTM execbuf utils, GPUVM). */
const RESERVES_ALL = /^(drm_exec_prepare_obj|drm_exec_prepare_array|ttm_eu_reserve_buffers|drm_gpuvm_prepare_\w+|drm_gpuvm_exec_lock\w*|drm_gpuvm_validate)$/;
const ALLOC = /^(kmalloc|kzalloc|kcalloc|kmalloc_array|kvmalloc|kvzalloc|kvcalloc|kvmalloc_array|kmem_cache_alloc|kmem_cache_zalloc|vmalloc|vzalloc|alloc_page|alloc_pages|__get_free_page|__get_free_pages|krealloc|kstrdup|kmemdup)$/;

const locksOf = (ctx: RuleContext): FileLocks => ctx.shared('dmabuf.locks', () => fileLocks(ctx.ff));

function lockEvents(locks: FileLocks, fn: FunctionFacts, upTo: CallFact): CodeEvent[] {
  const out: CodeEvent[] = [];
  for (const c of fn.calls) {
    if (c.node.start >= upTo.node.start) break;
    const spec = locks.lockFn(c);
    if (spec && (spec.kind === 'acquire' || spec.kind === 'try')) out.push(callEvent(c, 'dma_resv_lock', { via: c.name }));
    else if (spec && spec.kind === 'release') out.push(callEvent(c, 'dma_resv_unlock', { via: c.name }));
  }
  return out;
}

/**
 * The lock analysis without workspace facts: lock wrappers inferred in other
 * files make locks "held" that this file cannot see being taken, which for
 * this rule (where held is the hazard) would be a guess. Only the well-known
 * primitives and this file's own wrappers count.
 */
function localLocks(ctx: RuleContext): FileLocks {
  if (!ctx.ff.options.workspace) return locksOf(ctx);
  return ctx.shared('dmabuf.more.localLocks', () => {
    const words = [...Object.keys(LOCK_FNS), ...USER_FAULTS, 'dma_resv_\\w+'];
    const ff = new FileFacts(ctx.ff.doc, new RegExp(`\\b(?:${words.join('|')})\\b`), { ...ctx.ff.options, workspace: undefined });
    return fileLocks(ff);
  });
}

function checkFaults(ctx: RuleContext): void {
  const shared = locksOf(ctx);
  for (const sfl of shared.functions.values()) {
    for (const sc of sfl.fn.calls) {
      if (!USER_FAULTS.has(sc.name)) continue;
      const ss = sfl.before(sc);
      if (!anyMaybe(ss) && ss.get(CALLER) !== HELD) continue;
      // A candidate: judge it on what this file shows.
      const locks = localLocks(ctx);
      const fl = locks.functions.get(sfl.fn.info.name);
      const c = fl?.fn.calls.find((x) => x.node.start === sc.node.start);
      if (!fl || !c) continue;
      const fn = fl.fn;
      const s = fl.before(c);
      const held = anyHeld(s) || s.get(CALLER) === HELD;
      if (!held && !anyMaybe(s)) continue;
      const lockCall = fn.calls.find((x) => x.node.start < c.node.start && ['acquire', 'try'].includes(locks.lockFn(x)?.kind ?? ''));
      const related = lockCall ? [rel(lockCall.node, 'the reservation lock is taken here')] : fl.entryReason ? [{ ...(fl.entryReason.at ?? fn.info.nameSpan), message: fl.entryReason.message }] : [];
      const mm = /^mmap_/.test(c.name);
      ctx.report({
        severity: held ? 'error' : 'warning',
        message: `${c.name}() ${mm ? 'takes mmap_lock' : 'can fault on user memory, which takes mmap_lock'} while a reservation lock is ${held ? '' : 'possibly '}held: the locking order is mmap_lock -> dma_resv (dma_resv_lockdep() primes it, and a GPU page fault takes them in that order). Lockdep reports the inversion, and with a concurrent fault it deadlocks. Copy from/to user memory before taking the lock or after dropping it.`,
        at: c.node,
        related,
        functionName: fn.info.name,
        events: [...lockEvents(locks, fn, c), callEvent(c, mm ? 'mmap_lock' : 'user_fault', { via: c.name })],
      });
    }
  }
}

function checkFences(ctx: RuleContext): void {
  const { ff } = ctx;
  if (![...locksOf(ctx).functions.values()].some((fl) => fl.fn.calls.some((c) => c.name === 'dma_resv_add_fence'))) return;
  const locks = localLocks(ctx);
  for (const fl of locks.functions.values()) {
    const fn = fl.fn;
    const adds = fn.calls.filter((c) => c.name === 'dma_resv_add_fence');
    if (!adds.length) continue;
    // Roots that may have slots reserved, along some path since the lock.
    const rootsOf = (n: AstNode | undefined): Set<string> => {
      const k = pathOf(n, ff);
      return k ? aliasRoots(rootOf(k), fn, ff) : new Set<string>();
    };
    const sol = solve<ReadonlySet<string>>(fn.cfg, {
      entry: new Set<string>(['*']),
      join: (a, b) => new Set([...a, ...b]),
      equals: (a, b) => a.size === b.size && [...a].every((x) => b.has(x)),
      transfer: (node, s) => {
        let cur = s;
        for (const c of fn.callsAt.get(node.id) ?? []) cur = reserveEffect(c, cur, locks, rootsOf);
        return cur;
      },
    });
    for (const add of adds) {
      let s = sol.before[add.cfgNode];
      if (!s) continue;
      for (const x of fn.callsAt.get(add.cfgNode) ?? []) {
        if (x === add) break;
        s = reserveEffect(x, s, locks, rootsOf);
      }
      if (s.has('*')) continue;
      const roots = rootsOf(add.args[0]);
      if ([...roots].some((r) => s!.has(r))) continue;
      // Only where this function took the lock itself: a caller may have reserved.
      const lockCall = fn.calls.find((x) => {
        const spec = locks.lockFn(x);
        if (!spec || (spec.kind !== 'acquire' && spec.kind !== 'try') || x.node.start > add.node.start) return false;
        const k = locks.keyOf(x, spec);
        return !!k && [...aliasRoots(rootOf(k), fn, ff)].some((r) => roots.has(r));
      });
      if (!lockCall) continue;
      ctx.report({
        message: `dma_resv_add_fence() on ${ff.t(add.args[0]).trim()} with no dma_resv_reserve_fences() since the lock was taken: the slot array may be full (or absent), and dma_resv_add_fence() hits BUG_ON(num_fences >= max_fences). Reserve the slots right after locking, before anything can fail.`,
        at: add.node,
        related: [rel(lockCall.node, 'the reservation lock is taken here')],
        functionName: fn.info.name,
        events: [callEvent(lockCall, 'dma_resv_lock', { via: lockCall.name }), callEvent(add, 'dma_resv_add_fence', { reserved: 0 })],
      });
    }
  }
}

function reserveEffect(c: CallFact, s: ReadonlySet<string>, locks: FileLocks, rootsOf: (n: AstNode | undefined) => Set<string>): ReadonlySet<string> {
  const spec = locks.lockFn(c);
  if (spec && (spec.kind === 'acquire' || spec.kind === 'try')) {
    // A fresh lock hold: reservations start over for that object (and the unknown entry state ends).
    const out = new Set(s);
    out.delete('*');
    for (const r of rootsOf(c.args[spec.arg])) out.delete(r);
    if (RESERVES_ALL.test(c.name)) out.add('*');
    return out;
  }
  if (RESERVE.has(c.name)) return new Set([...s, ...rootsOf(c.args[0])]);
  if (RESERVES_ALL.test(c.name)) return new Set([...s, '*']);
  if (spec && spec.kind === 'release') {
    const out = new Set(s);
    for (const r of rootsOf(c.args[spec.arg])) out.delete(r);
    return out;
  }
  return s;
}

function checkDeadlockResult(ctx: RuleContext): void {
  const { ff } = ctx;
  for (const fn of analysed(ctx)) {
    for (const c of fn.calls) {
      if (c.name !== 'dma_resv_lock' && c.name !== 'dma_resv_lock_interruptible') continue;
      const ctxArg = c.args[1] ? ff.t(c.args[1]).trim() : 'NULL';
      if (ctxArg === 'NULL' || ctxArg === '0') continue;
      let p = c.node.parent;
      while (p && (p.type === 'cast_expression' || p.type === 'parenthesized_expression')) p = p.parent;
      if (!p || p.type !== 'expression_statement') continue;
      ctx.report({
        message: `The result of ${c.name}(..., ${ctxArg}) is ignored: with an acquire context the lock can fail with -EDEADLK (another context holds it and wins the wound/wait) or -EALREADY, and the code below then runs without the lock. Check it, back off and take the contended lock with dma_resv_lock_slow().`,
        at: c.node,
        functionName: fn.info.name,
        events: [callEvent(c, 'dma_resv_lock', { ctx: true, unchecked: true }), { op: 'ww_deadlk' }],
      });
    }
  }
}

function checkSignalling(ctx: RuleContext): void {
  const { ff } = ctx;
  for (const fn of analysed(ctx)) {
    if (!fn.calls.some((c) => c.name === 'dma_fence_begin_signalling')) continue;
    const sol = solve<boolean>(fn.cfg, {
      entry: false,
      join: (a, b) => a || b,
      equals: (a, b) => a === b,
      transfer: (node, s) => {
        let cur = s;
        for (const c of fn.callsAt.get(node.id) ?? []) {
          if (c.name === 'dma_fence_begin_signalling') cur = true;
          if (c.name === 'dma_fence_end_signalling') cur = false;
        }
        return cur;
      },
    });
    for (const c of fn.calls) {
      let inside = sol.before[c.cfgNode] === true;
      for (const x of fn.callsAt.get(c.cfgNode) ?? []) {
        if (x === c) break;
        if (x.name === 'dma_fence_begin_signalling') inside = true;
        if (x.name === 'dma_fence_end_signalling') inside = false;
      }
      if (!inside) continue;
      // An allocator, or any call told it may sleep in reclaim (`usb_ep_queue(ep, req, GFP_KERNEL)`).
      const alloc = (ALLOC.test(c.name) || c.args.length > 0) && c.args.some((a) => /\bGFP_KERNEL\b/.test(ff.t(a)));
      const lock = /^dma_resv_lock/.test(c.name) || (LOCK_FNS[c.name]?.kind === 'acquire');
      if (!alloc && !lock) continue;
      ctx.report({
        severity: 'warning',
        message: alloc
          ? `${c.name}(GFP_KERNEL) inside a fence-signalling critical section (dma_fence_begin_signalling()): direct reclaim can wait on a fence that only this path signals. Allocate before dma_fence_begin_signalling(), or use GFP_NOWAIT/GFP_ATOMIC.`
          : `${c.name}() inside a fence-signalling critical section: a reservation lock holder may be waiting for the fence this path must signal. Take the lock before dma_fence_begin_signalling().`,
        at: c.node,
        functionName: fn.info.name,
        events: [{ op: 'dma_fence_begin_signalling' }, callEvent(c, alloc ? 'alloc_gfp_kernel' : 'dma_resv_lock', { inSignalling: true })],
      });
    }
  }
}

export const dmabufResvFault: Rule = {
  id: 'DMABUF-RESV-FAULT',
  family: 'dmabuf',
  severity: 'error',
  summary: 'user-memory faults or mmap_lock under a reservation lock, fences added without reserved slots, unchecked ww-mutex locks',
  needs: [
    'dma_resv_lock', 'dma_resv_lock_interruptible', 'dma_resv_lock_slow', 'dma_resv_trylock', 'dma_resv_add_fence', 'dma_fence_begin_signalling',
    'ttm_bo_reserve', 'amdgpu_bo_reserve', 'xe_bo_lock', 'i915_gem_object_lock', 'i915_gem_object_lock_interruptible', 'drm_exec_lock_obj', 'drm_exec_prepare_obj', 'msm_gem_lock',
  ],
  context: Object.keys(LOCK_FNS),
  // It fires at a user fault under a lock, at dma_resv_add_fence, at a ww-mutex dma_resv_lock, or in a signalling section.
  alsoNeeds: {
    words: [...USER_FAULTS],
    unlessAny: ['dma_resv_lock', 'dma_resv_lock_interruptible', 'dma_resv_add_fence', 'dma_fence_begin_signalling'],
  },
  check(ctx) {
    checkFaults(ctx);
    checkFences(ctx);
    checkDeadlockResult(ctx);
    checkSignalling(ctx);
  },
};

