/**
 * migrate_vma rules: MIG-SELECT-OWNER and MIG-SEQUENCE.
 *
 * Checked against mm/migrate_device.c and include/linux/migrate.h (6.12):
 * migrate_vma_collect_pmd() selects system pages only with
 * MIGRATE_VMA_SELECT_SYSTEM, device-private entries only with
 * MIGRATE_VMA_SELECT_DEVICE_PRIVATE and `page->pgmap->owner ==
 * args->pgmap_owner`, device-coherent pages likewise; migrate_vma_setup()
 * locks and unmaps what it collects (migration entries), and only
 * migrate_vma_finalize() puts the PTEs back and unlocks the pages.
 */
import { type AstNode, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import type { CodeEvent, RelatedSpan } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { pgmapObjects, type PgmapObject } from '../pgmap/objects';
import { asCall, callEvent, keyOf } from '../util';
import { constantReturn, isNullish, objectFields, objectOf, ownerSymbol, reaches } from './common';
import { M_CALLER, M_FREE, M_HELD, MmapLocks } from './mmaplock';

export const pgmapsOf = (ctx: RuleContext): PgmapObject[] => ctx.shared('pgmap.objects', () => pgmapObjects(ctx.ff));
export const mmapOf = (ctx: RuleContext): MmapLocks => ctx.shared('hmm.mmap', () => new MmapLocks(ctx.ff));

const SEQ_CALLS = new Set(['migrate_vma_setup', 'migrate_vma_pages', 'migrate_vma_finalize', 'migrate_device_range', 'migrate_device_pages', 'migrate_device_finalize']);

export interface MigrateSetup {
  fn: FunctionFacts;
  call: CallFact;
  /** Object path of the struct migrate_vma (`args`, `svmm.mig`). */
  obj: string;
}

/** Every migrate_vma_setup() call of the file with the object it is given. */
export function migrateSetups(ctx: RuleContext): MigrateSetup[] {
  return ctx.shared('hmm.setups', () => {
    const out: MigrateSetup[] = [];
    const re = /\bmigrate_vma_setup\s*\(/;
    for (const info of ctx.ff.functions.values()) {
      if (!re.test(ctx.ff.t(info))) continue;
      const fn = ctx.ff.fn(info.name);
      if (!fn) continue;
      for (const c of fn.calls) {
        if (c.name !== 'migrate_vma_setup') continue;
        const obj = objectOf(c.args[0], ctx.ff);
        if (obj) out.push({ fn, call: c, obj });
      }
    }
    return out;
  });
}

/** Owner symbols of the device-private/coherent pgmaps registered in this file. */
export function pgmapOwners(ctx: RuleContext): Array<{ symbol: string; at: AstNode; text: string }> {
  const out: Array<{ symbol: string; at: AstNode; text: string }> = [];
  for (const o of pgmapsOf(ctx)) {
    if (o.type !== 'MEMORY_DEVICE_PRIVATE' && o.type !== 'MEMORY_DEVICE_COHERENT') continue;
    for (const w of o.writes) {
      if (w.path !== 'owner') continue;
      const s = ownerSymbol(w.value, o.fn, ctx.ff);
      if (s) out.push({ symbol: s, at: w.value, text: ctx.ff.t(w.value) });
    }
  }
  return out;
}

const SELECT_RE = /\bMIGRATE_VMA_SELECT_(SYSTEM|DEVICE_PRIVATE|DEVICE_COHERENT)\b/g;

function selection(values: Array<{ value: AstNode }>, ff: FileFacts): { known: boolean; flags: Set<string> } {
  const flags = new Set<string>();
  let known = true;
  for (const v of values) {
    const t = ff.t(v.value);
    const m = t.match(SELECT_RE);
    if (m) for (const x of m) flags.add(x.replace('MIGRATE_VMA_SELECT_', ''));
    else if (!isNullish(v.value, ff)) known = false;
  }
  return { known, flags };
}

// ---------------------------------------------------------------------------

export const migSelectOwner: Rule = {
  id: 'MIG-SELECT-OWNER',
  family: 'hmm',
  severity: 'error',
  summary: 'migrate_vma without selection flags, or selecting device memory without (or with the wrong) pgmap_owner',
  since: { major: 5, minor: 9 },
  needs: ['migrate_vma_setup'],
  check(ctx) {
    const { ff } = ctx;
    const owners = pgmapOwners(ctx);
    for (const s of migrateSetups(ctx)) {
      const f = objectFields(s.fn, s.obj, ff);
      if (!f.local) continue;
      const esc = f.escapedBefore(s.call.cfgNode, SEQ_CALLS, ['flags', 'pgmap_owner']);
      if (esc) continue;
      const flagWrites = f.writes.get('flags') ?? [];
      const ownerWrites = (f.writes.get('pgmap_owner') ?? []).filter((w) => !w.cfgNode || reaches(s.fn, w.cfgNode, s.call.cfgNode));
      const events = (extra: CodeEvent['args']): CodeEvent[] => [callEvent(s.call, 'migrate_vma_setup', extra)];
      const faultPath = ff.rolesOf(s.fn.info.name).some((r) => r.field === 'migrate_to_ram') || (f.writes.get('fault_page') ?? []).some((w) => !isNullish(w.value, ff));
      if (!flagWrites.length || flagWrites.every((w) => isNullish(w.value, ff))) {
        ctx.report({
          message: `migrate_vma_setup() is given ${s.obj} with ${flagWrites.length ? 'flags = 0' : 'no flags'}: the walk selects no page (MIGRATE_VMA_SELECT_SYSTEM picks system memory, _DEVICE_PRIVATE/_DEVICE_COHERENT this driver's device pages), returns 0, and nothing populated migrates. Set .flags for the direction of the migration.`,
          at: s.call.node,
          related: flagWrites.map((w) => rel(w.at, 'flags set to 0 here')),
          functionName: s.fn.info.name,
          events: events({ flags: 'NONE', direction: faultPath ? 'to-ram' : 'to-device' }),
        });
        continue;
      }
      const sel = selection(flagWrites, ff);
      const devSel = [...sel.flags].filter((x) => x !== 'SYSTEM');
      if (!devSel.length) continue;
      const related: RelatedSpan[] = flagWrites.filter((w) => /DEVICE_(PRIVATE|COHERENT)/.test(ff.t(w.value))).map((w) => rel(w.at, `MIGRATE_VMA_SELECT_${devSel[0]} is selected here`));
      const dir = faultPath ? 'to-ram' : 'evict';
      if (!ownerWrites.length || ownerWrites.every((w) => isNullish(w.value, ff))) {
        ctx.report({
          message: `migrate_vma_setup() selects device ${devSel.map((d) => d.toLowerCase().replace('device_', '')).join('/')} pages but ${s.obj}.pgmap_owner is ${ownerWrites.length ? 'NULL' : 'never set'}: the walk takes only pages whose pgmap->owner equals pgmap_owner, and memremap_pages() refuses device-private/coherent pgmaps without an owner, so no device page is ever selected. Set .pgmap_owner to the owner of your pgmap.`,
          at: s.call.node,
          related,
          functionName: s.fn.info.name,
          events: events({ flags: devSel[0], owner: 'missing', direction: dir }),
        });
        continue;
      }
      if (!owners.length) continue;
      const mine = ownerWrites.map((w) => ({ w, sym: ownerSymbol(w.value, s.fn, ff) }));
      if (mine.some((m) => !m.sym)) continue;
      const syms = new Set(owners.map((o) => o.symbol));
      const bad = mine.filter((m) => !syms.has(m.sym!));
      if (bad.length !== mine.length) continue;
      ctx.report({
        severity: 'warning',
        message: `${s.obj}.pgmap_owner (${ff.t(bad[0].w.value)}) is not the owner this file gives its device pgmap (${owners.map((o) => o.text).join(', ')}): the walk compares them by pointer, so your device pages would not be selected. Use the same owner value in both places.`,
        at: s.call.node,
        related: [rel(bad[0].w.at, 'pgmap_owner is set here'), ...owners.slice(0, 2).map((o) => rel(o.at, 'the pgmap\'s owner is set here'))],
        functionName: s.fn.info.name,
        events: events({ flags: devSel[0], owner: 'mismatch', direction: dir }),
      });
    }
  },
};

// ---------------------------------------------------------------------------

/** A migration whose setup succeeded and is not finalized yet: keyed by the migrate_vma object or the src array of migrate_device_range(). */
interface SeqState {
  active: ReadonlyMap<string, CallFact>;
  /** result variable -> object whose setup it reports */
  pending: Readonly<Record<string, string>>;
  /** local copied from `obj.cpages` -> obj */
  cpages: Readonly<Record<string, string>>;
  /** locals assigned from a same-file function that always returns 0 */
  zero: Readonly<Record<string, true>>;
  /** an infeasible path (a test of such a local found it non-zero) */
  dead?: boolean;
}

const FINALIZE_ARG: Record<string, number> = { migrate_vma_finalize: 0, migrate_device_finalize: 0 };
const NEUTRAL = /^(migrate_vma_pages|migrate_device_pages|memset|kfree|kvfree|vfree|pr_\w+|dev_\w+|trace_\w+|WARN\w*|BUG\w*|migrate_pfn_to_page|migrate_pfn|page_to_pfn|min|max|min_t|max_t|lock_page|unlock_page|put_page|__free_page|get_page)$/;

/** Names of functions in other files that may well finish a migration they are handed. */
const FINISHER = /finali[sz]e|finish|complete|commit|done|cleanup|teardown|_end\b|_end_/;

interface Summary {
  /** Parameter indexes this function finalizes on every path (or at least calls finalize on). */
  finalizes: Set<number>;
}

function helperSummary(ff: FileFacts, name: string, memo: Map<string, Summary | null>, depth = 0): Summary | null {
  if (memo.has(name)) return memo.get(name)!;
  memo.set(name, null);
  const fn = ff.fn(name);
  if (!fn || depth > 3) return null;
  const s: Summary = { finalizes: new Set() };
  for (const c of fn.calls) {
    const idx = FINALIZE_ARG[c.name];
    let obj: string | undefined;
    if (idx !== undefined) obj = objectOf(c.args[idx], ff);
    else if (ff.functions.has(c.name) && c.name !== name) {
      const inner = helperSummary(ff, c.name, memo, depth + 1);
      for (const i of inner?.finalizes ?? []) if (c.args[i]) obj = objectOf(c.args[i], ff);
    }
    if (!obj) continue;
    const p = fn.info.params.findIndex((x) => x.name === obj || obj!.startsWith(x.name + '.'));
    if (p >= 0) s.finalizes.add(p);
  }
  memo.set(name, s);
  return s;
}

export const migSequence: Rule = {
  id: 'MIG-SEQUENCE',
  family: 'hmm',
  severity: 'error',
  summary: 'migrate_vma_setup() not followed by migrate_vma_finalize() on every path, run without the mmap lock, or given unlocked destination pages',
  needs: ['migrate_vma_setup', 'migrate_device_range'],
  check(ctx) {
    const { ff } = ctx;
    const memo = new Map<string, Summary | null>();
    const seen = new Set<FunctionFacts>();
    for (const info of ff.functions.values()) {
      const seq = /\b(migrate_vma_setup|migrate_device_range)\s*\(/.test(ff.t(info));
      // Helpers that fill in the dst array of a migration they are handed.
      const helper = info.params.some((p) => /\bstruct\s+migrate_vma\s*\*/.test(p.type)) && /\bmigrate_pfn\s*\(/.test(ff.t(info));
      if (!seq && !helper) continue;
      const fn = ff.fn(info.name);
      if (!fn || seen.has(fn)) continue;
      seen.add(fn);
      if (seq) checkFinalize(ctx, fn, memo);
      checkDstLocked(ctx, fn);
    }
    // The mmap lock around migrate_vma_setup().
    const locks = mmapOf(ctx);
    for (const s of migrateSetups(ctx)) {
      const fl = locks.of(s.fn.info.name);
      if (!fl) continue;
      const bits = fl.before(s.call);
      if (!(bits & M_FREE)) continue;
      const certain = !(bits & (M_HELD | M_CALLER));
      const related: RelatedSpan[] = [];
      if (fl.reason?.at) related.push(rel(fl.reason.at, fl.reason.message));
      ctx.report({
        severity: certain ? 'error' : 'warning',
        message: `migrate_vma_setup() runs without the mmap lock${certain ? '' : ' on some paths'}: the VMA it is given, and the page tables it walks and unmaps, can be freed under it by a concurrent munmap(). Hold mmap_read_lock(mm) from the VMA lookup until after migrate_vma_finalize().`,
        at: s.call.node,
        related,
        functionName: s.fn.info.name,
        events: [callEvent(s.call, 'migrate_vma_setup', { mmapLocked: false })],
      });
    }
  },
};

function checkFinalize(ctx: RuleContext, fn: FunctionFacts, memo: Map<string, Summary | null>): void {
  const { ff } = ctx;
  // Objects whose migration this function owns: local migrate_vma structs and src arrays of migrate_device_range().
  const owned = new Map<string, CallFact>();
  for (const c of fn.calls) {
    if (c.name === 'migrate_vma_setup') {
      const obj = objectOf(c.args[0], ff);
      if (obj && objectFields(fn, obj, ff).local) owned.set(obj, c);
    } else if (c.name === 'migrate_device_range') {
      const obj = objectOf(c.args[0], ff);
      if (obj && !fn.info.params.some((p) => p.name === obj)) owned.set(obj, c);
    }
  }
  if (!owned.size) return;
  const escapes = new Set<string>();
  const effect = (c: CallFact, s: SeqState): SeqState => {
    let active: Map<string, CallFact> | undefined;
    const del = (k: string) => {
      if ((active ?? s.active).has(k)) (active ??= new Map(s.active)).delete(k);
    };
    if ((c.name === 'migrate_vma_setup' || c.name === 'migrate_device_range') && c.args[0]) {
      const obj = objectOf(c.args[0], ff);
      if (obj && owned.get(obj) === c) {
        (active ??= new Map(s.active)).set(obj, c);
        const a = fn.assignsAt.get(c.cfgNode)?.find((x) => asCall(x.rhs, fn) === c);
        const pending = a ? { ...s.pending, [objectPath(a.lhs)]: obj } : s.pending;
        return { ...s, active, pending };
      }
    }
    const fi = FINALIZE_ARG[c.name];
    if (fi !== undefined) {
      const obj = objectOf(c.args[fi], ff);
      if (obj) del(obj);
      return active ? { ...s, active } : s;
    }
    if (SEQ_CALLS.has(c.name) || NEUTRAL.test(c.name)) return s;
    // Handed to another function.
    c.args.forEach((arg, i) => {
      const u = unwrap(arg);
      const obj = u.type === 'pointer_expression' && u.op === '&' ? objectOf(u, ff) : keyOf(u, ff);
      if (!obj || !(active ?? s.active).has(obj)) return;
      if (ff.functions.has(c.name)) {
        const sum = helperSummary(ff, c.name, memo);
        if (sum?.finalizes.has(i)) del(obj);
      } else if (FINISHER.test(c.name)) {
        // Code we cannot see, named as if it completes the migration.
        escapes.add(obj);
        del(obj);
      }
    });
    return active ? { ...s, active } : s;
  };
  const sol = solve<SeqState>(fn.cfg, {
    entry: { active: new Map(), pending: {}, cpages: {}, zero: {} },
    join: (a, b) => {
      if (a.dead) return b;
      if (b.dead) return a;
      const m = new Map(a.active);
      for (const [k, v] of b.active) if (!m.has(k)) m.set(k, v);
      return { active: m, pending: { ...a.pending, ...b.pending }, cpages: { ...a.cpages, ...b.cpages }, zero: { ...a.zero, ...b.zero } };
    },
    equals: (a, b) => !!a.dead === !!b.dead && a.active.size === b.active.size && [...a.active.keys()].every((k) => b.active.has(k)) && Object.keys(a.pending).length === Object.keys(b.pending).length && Object.keys(a.cpages).length === Object.keys(b.cpages).length && Object.keys(a.zero).length === Object.keys(b.zero).length,
    transfer: (node, s) => {
      let cur = s;
      for (const c of fn.callsAt.get(node.id) ?? []) cur = effect(c, cur);
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const rcall = asCall(a.rhs, fn);
        if (cur.pending[l] && !(rcall && (rcall.name === 'migrate_vma_setup' || rcall.name === 'migrate_device_range'))) {
          const pending = { ...cur.pending };
          delete pending[l];
          cur = { ...cur, pending };
        }
        const r = keyOf(a.rhs, ff);
        const m = r && /^(.*)\.cpages$/.exec(r);
        if (m && owned.has(m[1])) cur = { ...cur, cpages: { ...cur.cpages, [l]: m[1] } };
        const rc = asCall(a.rhs, fn);
        if (rc && ff.functions.has(rc.name) && constantReturn(ff, rc.name) === '0') cur = { ...cur, zero: { ...cur.zero, [l]: true } };
        else if (cur.zero[l]) {
          const zero = { ...cur.zero };
          delete zero[l];
          cur = { ...cur, zero };
        }
        // The object stored elsewhere: `x->mig = &args`.
        const u = unwrap(a.rhs);
        if (u.type === 'pointer_expression' && u.op === '&') {
          const obj = objectOf(u, ff);
          if (obj && cur.active.has(obj)) {
            escapes.add(obj);
            const active = new Map(cur.active);
            active.delete(obj);
            cur = { ...cur, active };
          }
        }
      }
      return cur;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond' || s.dead) return s;
      let active: Map<string, CallFact> | undefined;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        if (tr.truthy && s.zero[keyOf(tr.node, ff) ?? '']) return { ...s, dead: true };
        let obj: string | undefined;
        const c = asCall(tr.node, fn);
        if (c && (c.name === 'migrate_vma_setup' || c.name === 'migrate_device_range') && tr.truthy) obj = objectOf(c.args[0], ff);
        else if (!c) {
          const k = keyOf(tr.node, ff);
          if (!k) continue;
          if (tr.truthy && s.pending[k]) obj = s.pending[k];
          const m = /^(.*)\.cpages$/.exec(k);
          if (!tr.truthy && m) obj = m[1];
          if (!tr.truthy && s.cpages[k]) obj = s.cpages[k];
        }
        if (obj && (active ?? s.active).has(obj)) (active ??= new Map(s.active)).delete(obj);
      }
      return active ? { ...s, active } : s;
    },
  });
  // Leaks: returns (and the fall-through to the end) with a migration still active.
  const leaks = new Map<string, CfgNode[]>();
  for (const pid of fn.cfg.nodes[fn.cfg.exit].pred) {
    const n = fn.cfg.nodes[pid];
    let st = sol.after[pid];
    if (!st || st.dead) continue;
    if (n.kind === 'cond' || n.kind === 'switch') continue;
    for (const k of st.active.keys()) {
      if (escapes.has(k)) continue;
      const list = leaks.get(k) ?? [];
      list.push(n);
      leaks.set(k, list);
    }
    st = undefined;
  }
  for (const [obj, exits] of leaks) {
    const setup = owned.get(obj)!;
    const vma = setup.name === 'migrate_vma_setup';
    const fin = vma ? `migrate_vma_finalize(&${obj})` : `migrate_device_finalize(${obj}, ...)`;
    const where = exits.map((n) => exitSpan(n, fn));
    ctx.report({
      message: `After ${setup.name}() succeeds, ${exits.length === 1 ? 'a path returns' : `${exits.length} paths return`} without ${fin}: the collected pages stay locked and isolated, and their PTEs stay migration entries, so any thread touching those addresses waits forever. Call ${vma ? 'migrate_vma_pages() and migrate_vma_finalize()' : 'migrate_device_pages() and migrate_device_finalize()'} on every path (clear dst[] entries you do not migrate).`,
      at: setup.node,
      related: where.map((w) => rel(w, 'returns here with the migration unfinished')),
      functionName: fn.info.name,
      events: [callEvent(setup, setup.name), { op: 'return_without_finalize', span: where[0] }],
    });
  }
}

function exitSpan(n: CfgNode, fn: FunctionFacts): { start: number; end: number } {
  if (n.ast) return { start: n.ast.start, end: n.ast.end };
  // Fall-through to the end of the function: the closing brace.
  return { start: fn.body.end - 1, end: fn.body.end };
}

// ---------------------------------------------------------------------------

/** Allocators that return an unlocked page. */
const PAGE_ALLOCATORS = new Set(['alloc_page', 'alloc_pages', 'alloc_page_vma', 'alloc_pages_node', 'alloc_pages_vma', '__alloc_pages', 'alloc_pages_mpol']);
/** Calls that lock a page they are given. */
const PAGE_LOCKERS = new Set(['lock_page', 'trylock_page', 'zone_device_page_init', 'folio_lock', 'folio_trylock', '__folio_lock', 'zone_device_folio_init']);
/** Kernel calls that take a page and never lock it. */
const NOT_LOCKING = new Set([
  'page_to_pfn', 'page_to_phys', 'page_address', 'kmap', 'kmap_local_page', 'kmap_atomic', 'kunmap', 'copy_highpage',
  'clear_highpage', 'memcpy_to_page', 'memcpy_from_page', 'get_page', 'put_page', '__free_page', '__free_pages',
  'flush_dcache_page', 'page_folio', 'dma_map_page', 'dma_map_page_attrs', 'page_size', 'page_zone', 'set_page_dirty',
  'unlock_page', 'migrate_pfn', 'PageHighMem', 'page_mapping', 'pr_debug', 'dev_dbg',
]);

/** Warning: a destination page stored in dst[] that nothing locks. */
function checkDstLocked(ctx: RuleContext, fn: FunctionFacts): void {
  const { ff } = ctx;
  // dst arrays: `X.dst` of migrate_vma objects, what they point at, and the dst argument of migrate_device_pages/finalize.
  const dst = new Set<string>();
  for (const c of fn.calls) {
    if (c.name === 'migrate_vma_setup' || c.name === 'migrate_vma_pages' || c.name === 'migrate_vma_finalize') {
      const obj = objectOf(c.args[0], ff);
      if (!obj) continue;
      dst.add(obj + '.dst');
      for (const w of objectFields(fn, obj, ff).writes.get('dst') ?? []) {
        const k = objectOf(w.value, ff);
        if (k) dst.add(k);
      }
    } else if ((c.name === 'migrate_device_pages' || c.name === 'migrate_device_finalize') && c.args[1]) {
      const k = objectOf(c.args[1], ff);
      if (k) dst.add(k);
    }
  }
  // A helper handed the migration: `args->dst`, and locals that alias it (`unsigned long *dst = args->dst;`).
  for (const p of fn.info.params) if (/\bstruct\s+migrate_vma\s*\*/.test(p.type)) dst.add(p.name + '.dst');
  for (const a of fn.assigns) {
    const r = keyOf(a.rhs, ff);
    if (a.op === '=' && r && dst.has(r.replace(/^[&*]+/, ''))) dst.add(objectPath(a.lhs));
  }
  if (!dst.size) return;
  const strip = (k: string) => k.replace(/(\[[^\]]*\])+$/, '');
  for (const a of fn.assigns) {
    if (a.op !== '=' || !dst.has(strip(objectPath(a.lhs)))) continue;
    const mp = asCall(a.rhs, fn);
    if (!mp || mp.name !== 'migrate_pfn' || !mp.args[0]) continue;
    const page = pageOf(mp.args[0], fn, ff, a.cfgNode);
    if (!page) continue;
    // Where the page comes from: only known allocators of unlocked pages.
    const allocs = fn.assigns.filter((x) => x.lhs === page && PAGE_ALLOCATORS.has(asCall(x.rhs, fn)?.name ?? ''));
    if (!allocs.length || fn.assigns.some((x) => x.lhs === page && !allocs.includes(x) && !isNullish(x.rhs, ff))) continue;
    // Locked before the store on some path, or handed to something that may lock it anywhere after the allocation.
    const lockers = fn.calls.filter((c) => c.args.some((x) => keyOf(x, ff) === page) && lockerCall(c, ff, page));
    if (lockers.length) continue;
    const alloc = asCall(allocs[0].rhs, fn)!;
    ctx.report({
      severity: 'warning',
      message: `${ff.t(a.lhsNode)} receives ${page}, which ${alloc.name}() returns unlocked and nothing locks: destination pages must be locked (lock_page(), or zone_device_page_init() for device pages) before migrate_vma_pages(). migrate_vma_finalize() unlocks it anyway, which on an unlocked page sets PG_locked instead (or BUGs with CONFIG_DEBUG_VM).`,
      at: a.lhsNode.parent ?? a.lhsNode,
      related: [rel(alloc.node, `${page} is allocated here, unlocked`)],
      functionName: fn.info.name,
      events: [callEvent(alloc, 'dst_page_alloc'), { op: 'dst_store', span: { start: a.lhsNode.start, end: a.rhs.end }, args: { locked: false } }, { op: 'migrate_vma_finalize' }],
    });
  }
}

/** The page whose pfn an expression carries: `page_to_pfn(p)`, or a local assigned from it. */
function pageOf(n: AstNode, fn: FunctionFacts, ff: FileFacts, at: number, depth = 0): string | undefined {
  let found: string | undefined;
  walk(n, (x) => {
    if (found) return false;
    if (x.type === 'call_expression') {
      const c = asCall(x, fn);
      if (c && (c.name === 'page_to_pfn' || c.name === 'folio_pfn') && c.args[0]) {
        found = keyOf(c.args[0], ff);
        return false;
      }
    }
    if (x.type === 'identifier' && depth < 2) {
      const name = ff.t(x);
      const defs = fn.assigns.filter((a) => a.lhs === name && reaches(fn, a.cfgNode, at));
      for (const d of defs) {
        const p = pageOf(d.rhs, fn, ff, d.cfgNode, depth + 1);
        if (p) found = p;
      }
    }
    return true;
  });
  return found;
}

/** Whether a call given the page may lock it: a locker, a same-file function that locks, or an unknown function. */
function lockerCall(c: CallFact, ff: FileFacts, page: string, depth = 0): boolean {
  if (PAGE_LOCKERS.has(c.name)) return true;
  if (NOT_LOCKING.has(c.name) || c.name === 'migrate_pfn') return false;
  if (!ff.functions.has(c.name)) return !/^(dma_|sg_|pr_|dev_|trace_)/.test(c.name);
  if (depth > 2) return true;
  const g = ff.fn(c.name);
  if (!g) return true;
  const idx = c.args.findIndex((x) => keyOf(x, ff) === page);
  const p = idx >= 0 ? g.info.params[idx]?.name : undefined;
  if (!p) return true;
  return g.calls.some((x) => x.args.some((y) => keyOf(y, ff) === p) && lockerCall(x, ff, p, depth + 1));
}

