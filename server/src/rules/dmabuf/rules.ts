/**
 * dma-buf rules: DMABUF-LOCKING, DMABUF-SG-PAGE, DMABUF-ERRPTR,
 * DMABUF-MOVE-NOTIFY, DMABUF-PIN-BALANCE.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type CallFact, commaList, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { reaches, solve } from '../../core/flow';
import type { CodeEvent, RelatedSpan } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { aliasRoots, asCall, assignedFrom, bufferRoots, withHelpers, callEvent, isFalseLiteral, isTrueLiteral, keyOf, mentions } from '../util';
import { anyHeld, anyMaybe, CALLER, type FileLocks, fileLocks, HELD, heldOn } from './locks';
import { ERRPTR_RETURNING, IMPORTED_SGT_SOURCES, LOCK_FNS, MUST_HOLD, MUST_NOT_HOLD } from './vocab';

const locksOf = (ctx: RuleContext): FileLocks => ctx.shared('dmabuf.locks', () => fileLocks(ctx.ff));

/** Keys (object paths) assigned from dma_buf_dynamic_attach() anywhere in the file. */
function dynamicAttachments(ctx: RuleContext): string[] {
  return ctx.shared('dmabuf.dynamic', () => {
    const out: string[] = [];
    for (const info of ctx.ff.analysedFunctions()) {
      const fn = ctx.ff.fn(info.name);
      if (!fn) continue;
      const local = assignedFrom(fn, new Set(['dma_buf_dynamic_attach']), ctx.ff).map((a) => a.key);
      out.push(...local);
      // Copies: `imp->attach = attach;`
      for (const a of fn.assigns) {
        const r = keyOf(a.rhs, ctx.ff);
        if (r && local.includes(r)) out.push(objectPath(a.lhs));
      }
    }
    return out;
  });
}

/** At most this many events lead to a call (the model replays the last ones; a function of thousands of calls would make every finding carry them all). */
const MAX_EVENTS = 64;

const callIndex = new WeakMap<FunctionFacts, Map<CallFact, number>>();

/** Events leading to a call: the lock operations and dma-buf calls before it in the same function (the last MAX_EVENTS). */
function eventsUpTo(fn: FunctionFacts, call: CallFact, extra: CodeEvent['args'], locks: FileLocks): CodeEvent[] {
  let index = callIndex.get(fn);
  if (!index) callIndex.set(fn, (index = new Map(fn.calls.map((c, i) => [c, i]))));
  // fn.calls is in CFG-node order, so every call before `call` in it comes from an earlier or the same node.
  const out: CodeEvent[] = [];
  for (let i = (index.get(call) ?? fn.calls.length) - 1; i >= 0 && out.length < MAX_EVENTS; i--) {
    const c = fn.calls[i];
    if (c.node.start > call.node.start) continue;
    const spec = locks.lockFn(c);
    if (spec) out.push(callEvent(c, spec.kind === 'release' ? 'dma_resv_unlock' : spec.kind === 'assert' ? 'dma_resv_assert_held' : 'dma_resv_lock', { via: c.name }));
    else if (c.name.startsWith('dma_buf_')) out.push(callEvent(c));
  }
  out.reverse();
  out.push(callEvent(call, call.name, extra));
  return out;
}

export const dmabufLocking: Rule = {
  id: 'DMABUF-LOCKING',
  family: 'dmabuf',
  severity: 'error',
  summary: 'dma-buf call made with the wrong reservation-lock state (must hold it, or must not hold it)',
  needs: [...MUST_HOLD, ...MUST_NOT_HOLD, 'map_dma_buf', 'move_notify'],
  context: Object.keys(LOCK_FNS),
  check(ctx) {
    const { ff } = ctx;
    const locks = locksOf(ctx);
    for (const fl of locks.functions.values()) {
      const fn = fl.fn;
      for (const call of fn.calls) {
        if (MUST_HOLD.has(call.name)) {
          const s = fl.before(call);
          if (anyHeld(s) || s.get(CALLER) === HELD) continue;
          const related: RelatedSpan[] = [];
          const maybe = anyMaybe(s);
          if (maybe) {
            const lockCall = fn.calls.find((c) => locks.lockFn(c)?.kind === 'acquire' || locks.lockFn(c)?.kind === 'try');
            if (lockCall) related.push(rel(lockCall.node, 'the reservation lock is taken here on some paths only'));
          }
          const severity: 'error' | 'warning' = maybe || fl.entry === 'unknown' ? 'warning' : 'error';
          // Before 6.2 only dynamic attachments had to hold the lock for map/unmap/vmap.
          if (!ctx.atLeast(6, 2) && call.name !== 'dma_buf_pin' && call.name !== 'dma_buf_unpin' && call.name !== 'dma_buf_move_notify') {
            const att = keyOf(call.args[0], ff);
            if (!att || !dynamicAttachments(ctx).some((k) => k === att || (k.includes('.') && att.endsWith('.' + k.split('.').pop())))) continue;
          }
          const obj = call.name === 'dma_buf_move_notify' ? 'the dma-buf' : 'the attachment\'s dma-buf';
          const how = maybe
            ? 'on some paths the lock is not held here'
            : fl.entry === 'unknown'
              ? `nothing in ${fn.info.name}() takes it, and no dma_resv_assert_held() says its callers do`
              : `${fn.info.name}() never takes it before this call`;
          const alt = call.name === 'dma_buf_map_attachment' || call.name === 'dma_buf_unmap_attachment' || call.name === 'dma_buf_vmap' || call.name === 'dma_buf_vunmap'
            ? ` Take dma_resv_lock(${obj === 'the dma-buf' ? 'dmabuf' : 'attach->dmabuf'}->resv, NULL) around it, or use ${call.name}_unlocked().`
            : ' Take dma_resv_lock() around it.';
          ctx.report({
            severity,
            message: `${call.name}() must be called with the reservation lock of ${obj} held; ${how}.${alt}`,
            at: call.node,
            related,
            functionName: fn.info.name,
            events: eventsUpTo(fn, call, { locked: false, maybe }, locks),
          });
        } else if (MUST_NOT_HOLD.has(call.name)) {
          const s = fl.before(call);
          const roots = bufferRoots(call.args[0], fn, ff);
          let held = heldOn(s, roots, (r) => aliasRoots(r, fn, ff));
          const params = new Set(fn.info.params.map((p) => p.name));
          const callerHeld = s.get(CALLER);
          if (!held && callerHeld && callerHeld & HELD && [...roots].some((r) => params.has(r))) held = { key: CALLER, value: callerHeld };
          if (!held) continue;
          const related: RelatedSpan[] = [];
          if (held.key === CALLER) {
            if (fl.entryReason) related.push({ ...(fl.entryReason.at ?? fn.info.nameSpan), message: fl.entryReason.message });
          } else {
            const lockCall = fn.calls.find((c) => {
              const sp = locks.lockFn(c);
              return sp && (sp.kind === 'acquire' || sp.kind === 'try') && locks.keyOf(c, sp) === held!.key;
            });
            if (lockCall) related.push(rel(lockCall.node, 'the reservation lock is taken here'));
          }
          ctx.report({
            severity: held.value === HELD ? 'error' : 'warning',
            message: `${call.name}() takes the reservation lock itself, but the lock of the same dma-buf is ${held.value === HELD ? '' : 'possibly '}already held here: a self-deadlock.${call.name.endsWith('_unlocked') ? ` Use ${call.name.replace(/_unlocked$/, '')}() under the lock.` : ' Call it after dma_resv_unlock().'}`,
            at: call.node,
            related,
            functionName: fn.info.name,
            events: eventsUpTo(fn, call, { locked: true }, locks),
          });
        } else if (fl.entry === 'held' && (call.name === 'dma_resv_lock' || call.name === 'dma_resv_lock_interruptible')) {
          // Taking the buffer's own lock inside a callback that runs with it held.
          const ctxArg = call.args[1] ? ff.t(call.args[1]).trim() : 'NULL';
          if (ctxArg !== 'NULL') continue;
          ctx.report({
            message: `${fn.info.name}() runs with the buffer's reservation lock already held: taking a reservation lock again without a ww_acquire_ctx deadlocks when it is the same buffer's (as it is for an exporter's own object) and is a forbidden nesting otherwise.`,
            at: call.node,
            related: fl.entryReason ? [{ ...(fl.entryReason.at ?? fn.info.nameSpan), message: fl.entryReason.message }] : [],
            functionName: fn.info.name,
            events: eventsUpTo(fn, call, { locked: true }, locks),
          });
        }
      }
    }
  },
};

// ---------------------------------------------------------------------------

const SG_ITERS_CPU = new Set(['for_each_sgtable_sg', 'for_each_sgtable_page']);
const SG_ITERS_DMA = new Set(['for_each_sgtable_dma_sg', 'for_each_sgtable_dma_page']);
const ENTRY_SINKS = new Set(['sg_page', 'sg_virt', 'sg_phys']);
/** Calls that walk or remap the CPU side of a table: (name -> index of the table/list argument). */
const TABLE_SINKS: Record<string, number> = {
  sg_copy_from_buffer: 0,
  sg_copy_to_buffer: 0,
  sg_pcopy_from_buffer: 0,
  sg_pcopy_to_buffer: 0,
  sg_miter_start: 1,
  dma_sync_sg_for_cpu: 1,
  dma_sync_sg_for_device: 1,
  dma_sync_sgtable_for_cpu: 1,
  dma_sync_sgtable_for_device: 1,
  dma_map_sg: 1,
  dma_map_sg_attrs: 1,
  dma_map_sgtable: 1,
  drm_prime_sg_to_page_array: 0,
  sg_alloc_table_from_pages: -1,
};

export const dmabufSgPage: Rule = {
  id: 'DMABUF-SG-PAGE',
  family: 'dmabuf',
  severity: 'error',
  summary: 'importer uses the CPU side (struct page, virtual address) of an exporter\'s sg_table',
  needs: [...IMPORTED_SGT_SOURCES, 'gem_prime_import_sg_table'],
  check(ctx) {
    const { ff } = ctx;
    // Fields that only ever hold imported tables in this file.
    const fieldSources = new Map<string, CallFact | null>();
    const fieldStores = new Map<string, number>();
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      const local = new Map<string, CallFact>();
      for (const a of assignedFrom(fn, withHelpers(IMPORTED_SGT_SOURCES, ff, 'imported-sgt'), ff)) local.set(a.key, a.call);
      for (const a of fn.assigns) {
        const l = objectPath(a.lhs);
        if (!l.includes('.')) continue;
        const f = l.split('.').pop()!;
        fieldStores.set(f, (fieldStores.get(f) ?? 0) + 1);
        if (isFalseLiteral(a.rhs, ff)) continue;
        const src = local.get(l) ?? local.get(keyOf(a.rhs, ff) ?? '');
        if (src && fieldSources.get(f) !== null) fieldSources.set(f, src);
        else fieldSources.set(f, null);
      }
    }
    const importedFields = new Map<string, CallFact>();
    for (const [f, src] of fieldSources) {
      if (!src) continue;
      // Every store to the field in the whole file must be one we saw (functions we did not analyse may store other tables).
      const stores = ff.text.match(new RegExp(`(?:->|\\.)\\s*${f}\\s*=(?!=)`, 'g'))?.length ?? 0;
      if (stores <= (fieldStores.get(f) ?? 0)) importedFields.set(f, src);
    }
    const fieldRe = importedFields.size ? new RegExp(`\\b(?:${[...importedFields.keys()].join('|')})\\b`) : undefined;
    for (const info of ff.functions.values()) {
      if (!ff.isInteresting(info) && !ff.rolesOf(info.name).length && !(fieldRe && fieldRe.test(ff.t(info)))) continue;
      const fn = ff.fn(info.name);
      if (!fn) continue;
      const role = ff.rolesOf(info.name).find((r) => r.field === 'gem_prime_import_sg_table');
      const roleParam = role && info.params[2] ? info.params[2].name : undefined;
      const usesField = importedFields.size > 0 && fn.assigns.length + fn.calls.length > 0;
      const sources = withHelpers(IMPORTED_SGT_SOURCES, ff, 'imported-sgt');
      if (!roleParam && !usesField && !fn.calls.some((c) => sources.has(c.name))) continue;
      const seeds = new Map<string, CallFact>();
      if (role && roleParam) {
        const at = { type: 'role', start: role.span.start, end: role.span.end, children: [] } as AstNode;
        seeds.set('T:' + roleParam, { name: 'the PRIME import (.gem_prime_import_sg_table)', node: at, args: [], cfgNode: fn.cfg.entry });
      }
      checkSgPage(ctx, fn, seeds, importedFields);
    }
  },
};

/** Which keys hold an imported table (`T:`) or an entry of one (`E:`) at each point: a may-analysis with kills. */
type SgState = ReadonlyMap<string, CallFact>;

function checkSgPage(ctx: RuleContext, fn: FunctionFacts, seeds: Map<string, CallFact>, importedFields: Map<string, CallFact>): void {
  const { ff } = ctx;
  const lookup = (s: SgState, k: string): CallFact | undefined => {
    const t = s.get('T:' + k);
    if (t) return t;
    return k.includes('.') ? importedFields.get(k.split('.').pop()!) : undefined;
  };
  const tableOf = (s: SgState, n: AstNode | undefined): CallFact | undefined => {
    if (!n) return undefined;
    let u = unwrap(n);
    if (u.type === 'pointer_expression' && u.op === '&') u = u.children[0] ?? u;
    const k = keyOf(u, ff);
    if (!k) return undefined;
    const t = lookup(s, k);
    if (t) return t;
    const m = /^(.*)\.sgl$/.exec(k);
    return m ? lookup(s, m[1]) : undefined;
  };
  const entryOf = (s: SgState, n: AstNode | undefined): CallFact | undefined => {
    const k = keyOf(n, ff);
    return (k && s.get('E:' + k)) || tableOf(s, n);
  };
  const sol = solve<SgState>(fn.cfg, {
    entry: seeds,
    join: (a, b) => {
      if (!b.size) return a;
      if (!a.size) return b;
      const m = new Map(a);
      for (const [k, v] of b) if (!m.has(k)) m.set(k, v);
      return m;
    },
    equals: (a, b) => a.size === b.size && [...a.keys()].every((k) => b.has(k)),
    transfer: (node, s) => {
      let m: Map<string, CallFact> | undefined;
      const set = (k: string, v: CallFact | undefined) => {
        if (v) {
          if (s.get(k) !== v) (m ??= new Map(s)).set(k, v);
        } else if ((m ?? s).has(k)) (m ??= new Map(s)).delete(k);
      };
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const cur = m ?? s;
        const c = asCall(a.rhs, fn);
        let table: CallFact | undefined;
        let entry: CallFact | undefined;
        if (c && (IMPORTED_SGT_SOURCES.has(c.name) || ff.options.helpers?.[c.name]?.returns === 'imported-sgt')) table = c;
        else if (c && c.name === 'sg_next') entry = entryOf(cur, c.args[0]);
        else {
          const rk = keyOf(a.rhs, ff);
          if (rk) {
            table = lookup(cur, rk);
            if (!table && rk.endsWith('.sgl')) entry = tableOf(cur, a.rhs);
            else if (!table) entry = cur.get('E:' + rk);
          }
        }
        set('T:' + l, table);
        set('E:' + l, entry);
      }
      // Iterators bind their cursor to the table they walk.
      if (node.kind === 'cond' && node.iter && (SG_ITERS_DMA.has(node.iter) || SG_ITERS_CPU.has(node.iter) || node.iter === 'for_each_sg')) {
        const args = commaList(node.ast);
        const src = tableOf(m ?? s, args[0]);
        const v = keyOf(args[1], ff);
        if (src && v) set('E:' + v, src);
      }
      return m ?? s;
    },
  });
  const reported = new Set<number>();
  const report = (at: AstNode | { start: number; end: number }, what: string, src: CallFact) => {
    if (reported.has(at.start)) return;
    reported.add(at.start);
    ctx.report({
      message: `${what} on ${src.node.type === 'role' ? 'the imported sg_table this .gem_prime_import_sg_table callback receives' : `the sg_table returned by ${src.name}()`}: an importer may only use its DMA addresses (sg_dma_address/sg_dma_len over for_each_sgtable_dma_sg). The pages behind it belong to the exporter and may not exist at all (peer-to-peer or VRAM); CONFIG_DMABUF_DEBUG scrambles them.`,
      at,
      related: [rel(src.node, 'the exporter\'s table is imported here')],
      functionName: fn.info.name,
      events: [callEvent(src), { op: 'importer_cpu_access', span: { start: at.start, end: at.end }, args: { via: what.replace(/\(\).*/, '') } }],
    });
  };
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'cond' || !n.iter) continue;
    const s = sol.before[n.id];
    if (!s) continue;
    const args = commaList(n.ast);
    const src = tableOf(s, args[0]);
    if (!src) continue;
    const loop = n.ast?.parent?.parent ?? n.ast;
    const at = loop && n.ast ? { start: loop.start, end: n.ast.end } : args[0];
    if (SG_ITERS_CPU.has(n.iter)) report(at, `${n.iter}() walks the CPU entries`, src);
    else if (n.iter === 'for_each_sg' && args[2] && /orig_nents/.test(ff.t(args[2])))
      report(at, 'for_each_sg() over orig_nents walks the CPU entries', src);
  }
  for (const c of fn.calls) {
    const before = sol.before[c.cfgNode];
    if (!before) continue;
    if (ENTRY_SINKS.has(c.name)) {
      const src = entryOf(before, c.args[0]);
      if (src) report(c.node, `${c.name}()`, src);
    } else if (c.name in TABLE_SINKS) {
      const idx = TABLE_SINKS[c.name];
      const src = idx >= 0 ? tableOf(before, c.args[idx]) : undefined;
      if (src) report(c.node, `${c.name}()`, src);
    }
  }
}

// ---------------------------------------------------------------------------

const ERR_CHECKS = new Set(['IS_ERR', 'IS_ERR_OR_NULL', 'PTR_ERR', 'PTR_ERR_OR_ZERO', 'IS_ERR_VALUE', 'ERR_CAST']);
const TEARDOWN = new Set([
  'dma_buf_unmap_attachment',
  'dma_buf_unmap_attachment_unlocked',
  'dma_buf_detach',
  'dma_buf_put',
]);

export const dmabufErrptr: Rule = {
  id: 'DMABUF-ERRPTR',
  family: 'dmabuf',
  severity: 'error',
  summary: 'ERR_PTR result of a dma-buf call tested as NULL',
  needs: [...ERRPTR_RETURNING],
  check(ctx) {
    const { ff } = ctx;
    const rawFields = new Map<string, CallFact>();
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      for (const src of assignedFrom(fn, withHelpers(ERRPTR_RETURNING, ff, 'errptr'), ff)) {
        checkFirstTest(ctx, fn, src.key, src.call, src.cfgNode);
        const m = /\.([A-Za-z_]\w*)$/.exec(src.key);
        if (m && errorPathKeepsRaw(fn, src.key, src.cfgNode, ff)) rawFields.set(m[1], src.call);
      }
      // `if (!dma_buf_get(fd))`-style direct tests.
      for (const n of fn.cfg.nodes) {
        if (n.kind !== 'cond') continue;
        for (const tr of truths(n.ast, true, (x) => ff.t(x))) {
          const c = asCall(tr.node, fn);
          if (c && ERRPTR_RETURNING.has(c.name)) reportNullTest(ctx, fn, n.ast!, c, c.name + '()');
        }
      }
    }
    // Fields that keep a raw ERR_PTR and are later torn down behind a NULL test.
    if (!rawFields.size) return;
    for (const [fieldName, src] of rawFields) {
      const reset = [...ff.functions.values()].some((info) => {
        const fn = ff.fn(info.name);
        return !!fn && fn.assigns.some((a) => a.lhs.endsWith(fieldName) && isFalseLiteral(a.rhs, ff));
      });
      if (reset) continue;
      for (const info of ff.analysedFunctions()) {
        const fn = ff.fn(info.name);
        if (!fn) continue;
        for (const n of fn.cfg.nodes) {
          if (n.kind !== 'cond') continue;
          for (const tr of truths(n.ast, true, (x) => ff.t(x))) {
            const k = keyOf(tr.node, ff);
            if (!tr.truthy || !k || !k.endsWith('.' + fieldName)) continue;
            // The guarded branch tears the object down.
            const thenNode = fn.cfg.nodes[n.succ[0]];
            const guarded = fn.calls.some((c) => TEARDOWN.has(c.name) && c.args.some((a) => keyOf(a, ff) === k) && reachesFrom(fn, thenNode.id, c.cfgNode));
            if (!guarded) continue;
            ctx.report({
              message: `${ff.t(tr.node)} may hold the ERR_PTR that ${src.name}() returned on failure (it is stored without IS_ERR() clearing it), so this NULL test lets the teardown run on an error pointer. Test with IS_ERR_OR_NULL(), or store NULL on failure.`,
              at: tr.node,
              related: [rel(src.node, 'the raw result is stored here')],
              functionName: fn.info.name,
              events: [callEvent(src, src.name, { fails: true }), callEvent(tr.node, 'null_test'), { op: 'teardown_with_errptr' }],
            });
          }
        }
      }
    }
  },
};

const FREES = new Set(['kfree', 'kvfree', 'vfree', 'devm_kfree', 'kmem_cache_free', 'kfree_rcu']);

/**
 * Whether, after `key = <ERR_PTR-returning call>` at node `from`, some path
 * through the IS_ERR(key) branch leaves the function with the error pointer
 * still stored: neither the object is freed nor the field cleared.
 */
function errorPathKeepsRaw(fn: FunctionFacts, key: string, from: number, ff: FileFacts): boolean {
  const root = rootOf(key);
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'cond' || !reachesFrom(fn, from, n.id)) continue;
    let tests = false;
    walk(n.ast!, (x) => {
      if (x.type === 'call_expression') {
        const f = field(x, 'function');
        if (f && (ff.t(f) === 'IS_ERR' || ff.t(f) === 'IS_ERR_OR_NULL') && mentions(x, key, ff)) tests = true;
      }
      return !tests;
    });
    if (!tests) continue;
    const seen = new Set<number>();
    const stack = [n.succ[0]];
    while (stack.length) {
      const id = stack.pop()!;
      if (seen.has(id)) continue;
      seen.add(id);
      if (id === fn.cfg.exit) return true;
      const frees = (fn.callsAt.get(id) ?? []).some((c) => FREES.has(c.name) && c.args[0] && rootOf(keyOf(c.args[0], ff) ?? '') === root);
      const clears = (fn.assignsAt.get(id) ?? []).some((a) => objectPath(a.lhs) === key && isFalseLiteral(a.rhs, ff));
      if (frees || clears) continue;
      stack.push(...fn.cfg.nodes[id].succ);
    }
    return false;
  }
  return false;
}

function reachesFrom(fn: FunctionFacts, from: number, to: number): boolean {
  return reaches(fn.cfg, from, to);
}

/** Walks forward from the assignment to the first test of `key` on each path. */
function checkFirstTest(ctx: RuleContext, fn: FunctionFacts, key: string, src: CallFact, from: number): void {
  const { ff } = ctx;
  const seen = new Set<number>();
  const stack: number[] = [];
  const startNode = fn.cfg.nodes[from];
  // The assignment may sit inside the condition itself: `if (!(x = dma_buf_get(fd)))`.
  if (startNode.kind === 'cond') {
    if (classify(startNode, key, ff) === 'null') return reportNullTest(ctx, fn, startNode.ast!, src, key);
  }
  stack.push(...startNode.succ);
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const n = fn.cfg.nodes[id];
    const cls = classify(n, key, ff);
    if (cls === 'checked') continue;
    if (cls === 'null') {
      reportNullTest(ctx, fn, n.ast!, src, key);
      return;
    }
    if ((fn.assignsAt.get(id) ?? []).some((a) => objectPath(a.lhs) === key)) continue;
    stack.push(...n.succ);
  }
}

function classify(n: CfgNode, key: string, ff: FileFacts): 'checked' | 'null' | undefined {
  if (!n.ast || !mentions(n.ast, key, ff)) return undefined;
  let checked = false;
  walk(n.ast, (x) => {
    if (checked) return false;
    if (x.type === 'call_expression') {
      const f = field(x, 'function');
      if (f && ERR_CHECKS.has(ff.t(f)) && mentions(x, key, ff)) {
        checked = true;
        return false;
      }
    }
    return true;
  });
  if (checked) return 'checked';
  if (n.kind !== 'cond') {
    // `return x;` hands the ERR_PTR on: the caller checks it.
    if (n.kind === 'return') return 'checked';
    return undefined;
  }
  for (const tr of truths(n.ast, true, (x) => ff.t(x))) if (keyOf(tr.node, ff) === key) return 'null';
  return undefined;
}

function reportNullTest(ctx: RuleContext, fn: FunctionFacts, cond: AstNode, src: CallFact, what: string): void {
  ctx.report({
    message: `${src.name}() returns an ERR_PTR on failure, never NULL: this test of ${what} lets the error pointer through as if it were valid. Use IS_ERR() and return PTR_ERR().`,
    at: cond,
    related: [rel(src.node, `${src.name}() is called here`)],
    functionName: fn.info.name,
    events: [callEvent(src, src.name, { fails: true }), callEvent(cond, 'null_test'), { op: 'use_errptr' }],
  });
}

// ---------------------------------------------------------------------------

const UNBOUNDED_WAITS = new Set(['wait_event', 'wait_event_interruptible', 'wait_event_killable', 'wait_for_completion', 'wait_for_completion_interruptible', 'wait_for_completion_killable', 'dma_fence_wait']);
const INVALIDATE_RE = /unmap|invalidat|zap|evict|revoke|inval|unbind|destroy|release|move|teardown|stop|kill|flush|clear|remove|detach|schedule_work|queue_work|wake|complete/;

export const dmabufMoveNotify: Rule = {
  id: 'DMABUF-MOVE-NOTIFY',
  family: 'dmabuf',
  severity: 'error',
  summary: 'dynamic importer without a working move_notify callback',
  needs: ['dma_buf_dynamic_attach', 'move_notify', 'dma_buf_attach_ops'],
  check(ctx) {
    const { ff } = ctx;
    const inits = ff.allInitializers();
    // (a) dynamic attach with importer ops that lack move_notify.
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      for (const c of fn.calls) {
        if (c.name !== 'dma_buf_dynamic_attach' || !c.args[2]) continue;
        let opsKey = keyOf(c.args[2], ff);
        if (!opsKey) continue;
        // `ops = &acme_ops; dma_buf_dynamic_attach(..., ops, ...)`
        const alias = fn.assigns.find((a) => a.lhs === opsKey && keyOf(a.rhs, ff));
        if (alias && !inits.some((i) => i.name === opsKey)) opsKey = keyOf(alias.rhs, ff)!;
        const ops = inits.find((i) => i.name === opsKey && (!i.inFunction || i.inFunction === fn.info.name));
        if (!ops) continue;
        const has = ops.fields.some((f) => (f.path === 'move_notify' || f.path === 'invalidate_mappings') && !isFalseLiteral(f.value, ff));
        if (has) continue;
        ctx.report({
          message: `dma_buf_dynamic_attach() with importer ops ${ops.name} that have no .move_notify: the core WARNs and refuses the attachment (-EINVAL), and a dynamic importer without it could not be told when the exporter moves the buffer.`,
          at: c.node,
          related: [rel(ops.node, `${ops.name} is defined here without .move_notify`)],
          functionName: fn.info.name,
          events: [callEvent(c, 'dma_buf_dynamic_attach', { moveNotify: false })],
        });
      }
    }
    // (b) what the callback itself does.
    const pinsInFile = [...ff.functions.values()].some((f) => ff.fn(f.name)?.calls.some((c) => c.name === 'dma_buf_pin'));
    for (const name of ff.functionsWithRole('move_notify')) {
      const fn = ff.fn(name);
      if (!fn) continue;
      const role = ff.rolesOf(name).find((r) => r.field === 'move_notify')!;
      const params = new Set(fn.info.params.map((p) => p.name));
      for (const c of fn.calls) {
        let what: string | undefined;
        if (c.name === 'dma_buf_put' || (MUST_NOT_HOLD.has(c.name) && c.name !== 'dma_buf_attach' && c.name !== 'dma_buf_dynamic_attach')) {
          if (MUST_NOT_HOLD.has(c.name)) continue; // DMABUF-LOCKING reports the self-deadlock.
          what = `${c.name}() drops a reference from inside move_notify, which runs under the exporter's reservation lock in the middle of a move`;
        } else if (UNBOUNDED_WAITS.has(c.name) && !(c.name === 'dma_fence_wait' && c.args.length > 2)) {
          what = `${c.name}() waits without a bound inside move_notify, which runs with the reservation lock held: the exporter's eviction stalls behind it`;
        }
        if (!what) continue;
        ctx.report({
          message: what + '.',
          at: c.node,
          related: [rel(role.span, `${name}() is bound as .move_notify here`)],
          functionName: name,
          events: [{ op: 'move_notify', span: role.span }, callEvent(c)],
        });
      }
      void params;
      const invalidates = fn.calls.some((c) => INVALIDATE_RE.test(c.name)) || fn.assigns.some((a) => /invalid|stale|moved|evict/.test(a.lhs));
      if (!invalidates && !pinsInFile) {
        const p2p = role.table.fields.find((f) => f.path === 'allow_peer2peer');
        const peer = !!p2p && isTrueLiteral(p2p.value, ff);
        ctx.report({
          severity: peer ? 'error' : 'warning',
          message: `${name}() is the importer's move_notify but invalidates nothing: after the exporter moves the buffer, the device keeps DMAing to the old placement${peer ? ' (with allow_peer2peer that placement is the exporter\'s VRAM, reused at once)' : ''}. Unmap or mark the mapping invalid here and re-map before the next use, or pin the buffer.`,
          at: fn.info.nameSpan,
          related: [rel(role.span, 'bound as .move_notify here')],
          functionName: name,
          events: [{ op: 'move_notify', span: role.span, args: { invalidates: false } }],
        });
      }
    }
  },
};

// ---------------------------------------------------------------------------

interface PinState {
  /** attachment key -> bits: 1 = unpinned, 2 = pinned once, 4 = pinned twice or more. */
  pins: ReadonlyMap<string, number>;
  /** flag field (X.pinned) -> bits: 1 = clear, 2 = set. */
  flags: ReadonlyMap<string, number>;
  pending: Readonly<Record<string, string>>;
}

const PIN_FLAG_RE = /pin/i;

export const dmabufPinBalance: Rule = {
  id: 'DMABUF-PIN-BALANCE',
  family: 'dmabuf',
  severity: 'error',
  summary: 'dma_buf_pin() not balanced by exactly one dma_buf_unpin() on every path',
  needs: ['dma_buf_pin', 'dma_buf_unpin'],
  check(ctx) {
    const { ff } = ctx;
    // Guarded unpins elsewhere in the file: `if (x->pinned) dma_buf_unpin(...)`.
    const guardedUnpinFlags = new Map<string, { fn: string; at: AstNode }>();
    const unpinnedFields = new Set<string>();
    // Attachment field -> the flag every unpin of it is guarded by ('' when some unpin is unguarded).
    const unpinGuards = new Map<string, string>();
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      // The conditions that test a pin flag (`if (obj->pinned)`), with the flags, found once per function.
      let flagConds: Array<{ n: CfgNode; flags: string[] }> | undefined;
      for (const c of fn.calls) {
        if (c.name !== 'dma_buf_unpin') continue;
        const k = keyOf(c.args[0], ff);
        const attField = k ? k.split('.').pop()! : '';
        if (k) unpinnedFields.add(attField);
        let guard = '';
        flagConds ??= fn.cfg.nodes
          .filter((n) => n.kind === 'cond')
          .map((n) => ({ n, flags: truths(n.ast, true, (x) => ff.t(x)).flatMap((tr) => {
            const fk = keyOf(tr.node, ff);
            return tr.truthy && fk && PIN_FLAG_RE.test(fk.split('.').pop()!) ? [fk.split('.').pop()!] : [];
          }) }))
          .filter((x) => x.flags.length > 0);
        for (const { n, flags } of flagConds) {
          if (!reachesFrom(fn, n.succ[0], c.cfgNode) || reachesFrom(fn, n.succ[1], c.cfgNode)) continue;
          for (const flag of flags) {
            guardedUnpinFlags.set(flag, { fn: info.name, at: c.node });
            guard = flag;
          }
        }
        if (attField) unpinGuards.set(attField, unpinGuards.has(attField) && unpinGuards.get(attField) !== guard ? '' : guard);
      }
    }
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn || !fn.calls.some((c) => c.name === 'dma_buf_pin')) continue;
      checkPins(ctx, fn, guardedUnpinFlags, unpinnedFields, unpinGuards);
    }
  },
};

function checkPins(
  ctx: RuleContext,
  fn: FunctionFacts,
  guarded: Map<string, { fn: string; at: AstNode }>,
  unpinnedFields: Set<string>,
  unpinGuards: Map<string, string>,
): void {
  const { ff } = ctx;
  const pinCalls = new Map<string, CallFact>();
  const shift = (bits: number, up: boolean) => {
    let out = 0;
    if (up) {
      if (bits & 1) out |= 2;
      if (bits & 2) out |= 4;
      if (bits & 4) out |= 4;
    } else {
      if (bits & 2) out |= 1;
      if (bits & 4) out |= 2;
      if (bits & 1) out |= 8; // underflow marker
    }
    return out;
  };
  const transferCall = (c: CallFact, s: PinState): PinState => {
    if (c.name !== 'dma_buf_pin' && c.name !== 'dma_buf_unpin') return s;
    const k = keyOf(c.args[0], ff);
    if (!k) return s;
    if (c.name === 'dma_buf_pin') pinCalls.set(k, c);
    if (c.name === 'dma_buf_unpin' && !s.pins.has(k)) return s; // pinned elsewhere: not ours to count
    const m = new Map(s.pins);
    m.set(k, shift(s.pins.get(k) ?? 1, c.name === 'dma_buf_pin') & 7);
    return { ...s, pins: m };
  };
  const sol = solve<PinState>(fn.cfg, {
    entry: { pins: new Map(), flags: new Map(), pending: {} },
    join: (a, b) => {
      const pins = new Map<string, number>();
      for (const [k, v] of a.pins) pins.set(k, v | (b.pins.get(k) ?? 1));
      for (const [k, v] of b.pins) if (!a.pins.has(k)) pins.set(k, v | 1);
      const flags = new Map<string, number>();
      for (const [k, v] of a.flags) flags.set(k, v | (b.flags.get(k) ?? 1));
      for (const [k, v] of b.flags) if (!a.flags.has(k)) flags.set(k, v | 1);
      return { pins, flags, pending: { ...a.pending, ...b.pending } };
    },
    equals: (a, b) =>
      a.pins.size === b.pins.size &&
      [...a.pins].every(([k, v]) => b.pins.get(k) === v) &&
      a.flags.size === b.flags.size &&
      [...a.flags].every(([k, v]) => b.flags.get(k) === v) &&
      Object.keys(a.pending).length === Object.keys(b.pending).length,
    transfer: (node, s) => {
      let cur = s;
      for (const c of fn.callsAt.get(node.id) ?? []) cur = transferCall(c, cur);
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const c = asCall(a.rhs, fn);
        if (c && c.name === 'dma_buf_pin') {
          const k = keyOf(c.args[0], ff);
          if (k) cur = { ...cur, pending: { ...cur.pending, [l]: k } };
        } else if (l in cur.pending) {
          const pending = { ...cur.pending };
          delete pending[l];
          cur = { ...cur, pending };
        }
        if (c && c.name === 'dma_buf_pin') {
          // recorded above
        } else if (PIN_FLAG_RE.test(l.split('.').pop()!) && l.includes('.')) {
          const v = isTrueLiteral(a.rhs, ff) ? 2 : isFalseLiteral(a.rhs, ff) ? 1 : 3;
          const flags = new Map(cur.flags);
          flags.set(l, v);
          cur = { ...cur, flags };
        }
      }
      return cur;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond') return s;
      let cur = s;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        if (!tr.truthy) continue;
        // The pin failed on this edge: undo it.
        let k: string | undefined;
        const c = asCall(tr.node, fn);
        if (c && c.name === 'dma_buf_pin') k = keyOf(c.args[0], ff);
        else {
          const v = keyOf(tr.node, ff);
          if (v) k = s.pending[v];
        }
        if (!k || !cur.pins.has(k)) continue;
        const pins = new Map(cur.pins);
        pins.set(k, shift(cur.pins.get(k)!, false) & 7 || 1);
        cur = { ...cur, pins };
      }
      return cur;
    },
  });

  // Unpin with nothing pinned on some path (twice in one function), and unpin with a `pinned` flag left set.
  const reported = new Set<AstNode>();
  for (const c of fn.calls) {
    if (c.name !== 'dma_buf_unpin') continue;
    const k = keyOf(c.args[0], ff);
    const before = sol.before[c.cfgNode];
    if (!k || !before) continue;
    let s: PinState = before;
    for (const x of fn.callsAt.get(c.cfgNode) ?? []) {
      if (x === c) break;
      s = transferCall(x, s);
    }
    const bits = s.pins.get(k);
    if (bits !== undefined && bits & 1 && pinCalls.has(k)) {
      reported.add(c.node);
      ctx.report({
        message: `dma_buf_unpin() here can run after this function already unpinned the attachment (or never pinned it) on some path: the exporter's pin count underflows.`,
        at: c.node,
        related: [rel(pinCalls.get(k)!.node, 'pinned here once')],
        functionName: fn.info.name,
        events: [callEvent(pinCalls.get(k)!), callEvent(c), callEvent(c, 'dma_buf_unpin', { again: true })],
      });
      continue;
    }
    // The `pinned` flag stays set after this unpin, and another function unpins when it is set.
    for (const [flag, fbits] of s.flags) {
      if (!(fbits & 2)) continue;
      const g = guarded.get(flag.split('.').pop()!);
      if (!g || g.fn === fn.info.name) continue;
      if (!flagStaysSet(fn, c.cfgNode, flag, ff)) continue;
      ctx.report({
        message: `This error path unpins the attachment but leaves ${flag.replace(/\./g, '->')} set, and ${g.fn}() unpins again when that flag is set: a double dma_buf_unpin(). Let the release path do the single unpin, or clear the flag here.`,
        at: c.node,
        related: [rel(g.at, `${g.fn}() unpins again here`), ...(pinCalls.get(k) ? [rel(pinCalls.get(k)!.node, 'pinned here')] : [])],
        functionName: fn.info.name,
        events: [...(pinCalls.get(k) ? [callEvent(pinCalls.get(k)!)] : []), { op: 'set_pinned_flag' }, callEvent(c), { op: 'release_unpins_again', args: { fn: g.fn } }],
      });
      break;
    }
  }

  // Pins that are never undone.
  for (const [k, pin] of pinCalls) {
    const fieldName = k.includes('.') ? k.split('.').pop()! : undefined;
    if (fieldName && unpinnedFields.has(fieldName)) {
      // Stored in an object whose release unpins it only when a flag says so: an
      // error path that leaves the flag clear leaks the pin.
      const flag = unpinGuards.get(fieldName);
      if (!flag) continue;
      const flagKey = k.slice(0, k.length - fieldName.length) + flag;
      const leaks = leaksWithoutFlag(fn, pin, k, flagKey, ff);
      if (!leaks.length) continue;
      ctx.report({
        message: `The attachment pinned here is unpinned by the release path only when ${flagKey.replace(/\./g, '->')} is set, but ${leaks.length === 1 ? 'an error path returns' : `${leaks.length} error paths return`} with it pinned and the flag still clear: the pin is never undone. Unpin on the error path, or set the flag right after the pin succeeds.`,
        at: pin.node,
        related: leaks.map((n) => rel(n.ast ?? pin.node, `returns here pinned, with ${flagKey.replace(/\./g, '->')} clear`)),
        functionName: fn.info.name,
        events: [callEvent(pin), { op: 'return_error', span: leaks[0].ast ? { start: leaks[0].ast.start, end: leaks[0].ast.end } : undefined }],
      });
      continue;
    }
    if (fieldName) {
      // Stored in an object: some function of the file must unpin it.
      ctx.report({
        message: `The attachment pinned here is kept in ${k.replace(/\./g, '->')}, but nothing in this file ever calls dma_buf_unpin() on it: the exporter can never move or free the buffer (pinned VRAM leaks until reboot).`,
        at: pin.node,
        functionName: fn.info.name,
        events: [callEvent(pin), { op: 'never_unpinned' }],
      });
      continue;
    }
    const leaks: CfgNode[] = [];
    for (const n of fn.cfg.nodes) {
      if (n.kind !== 'return' || !isErrorReturn(n, ff)) continue;
      const st = sol.after[n.id];
      const bits = st?.pins.get(k);
      if (!bits || !(bits & 6)) continue;
      if (escapesBefore(fn, k, n.id, ff)) continue;
      leaks.push(n);
    }
    if (!leaks.length) continue;
    ctx.report({
      message: `The attachment pinned here is still pinned when ${leaks.length === 1 ? 'this error path returns' : `${leaks.length} error paths return`}: nothing unpins it, so the exporter can never move or free the buffer. Call dma_buf_unpin() on the way out (before the unlock).`,
      at: pin.node,
      related: leaks.map((n) => rel(n.ast ?? pin.node, 'returns here with the attachment still pinned')),
      functionName: fn.info.name,
      events: [callEvent(pin), ...leaks.slice(0, 1).map((n) => ({ op: 'return_error', span: n.ast ? { start: n.ast.start, end: n.ast.end } : undefined }))],
    });
  }
  void reported;
}

/**
 * Error returns reachable from a successful pin without passing a node that
 * sets `flagKey` or unpins `key`. Follows paths, so "pinned and flag clear"
 * is judged on one path at a time.
 */
function leaksWithoutFlag(fn: FunctionFacts, pin: CallFact, key: string, flagKey: string, ff: FileFacts): CfgNode[] {
  const result = fn.assignsAt.get(pin.cfgNode)?.find((a) => asCall(a.rhs, fn) === pin);
  const resultKey = result ? objectPath(result.lhs) : undefined;
  const isPinFailure = (n: CfgNode, edgeTrue: boolean, pending: boolean): boolean =>
    truths(n.ast, edgeTrue, (x) => ff.t(x)).some((t) => t.truthy && (asCall(t.node, fn) === pin || (pending && !!resultKey && keyOf(t.node, ff) === resultKey)));
  const out: CfgNode[] = [];
  const seen = new Set<string>();
  const stack: Array<[number, boolean]> = [];
  const push = (from: CfgNode, pending: boolean) => {
    from.succ.forEach((s, i) => {
      if (from.kind === 'cond' && isPinFailure(from, i === 0, pending)) return;
      stack.push([s, pending]);
    });
  };
  push(fn.cfg.nodes[pin.cfgNode], true);
  while (stack.length) {
    const [id, pendingIn] = stack.pop()!;
    const tag = `${id}:${pendingIn}`;
    if (seen.has(tag)) continue;
    seen.add(tag);
    const n = fn.cfg.nodes[id];
    const assigns = fn.assignsAt.get(id) ?? [];
    if (assigns.some((a) => objectPath(a.lhs) === flagKey && !isFalseLiteral(a.rhs, ff))) continue;
    if ((fn.callsAt.get(id) ?? []).some((c) => c.name === 'dma_buf_unpin' && keyOf(c.args[0], ff) === key)) continue;
    if (n.kind === 'return') {
      if (isErrorReturn(n, ff)) out.push(n);
      continue;
    }
    const pending = pendingIn && !assigns.some((a) => objectPath(a.lhs) === resultKey);
    push(n, pending);
  }
  return out;
}

function flagStaysSet(fn: FunctionFacts, from: number, flag: string, ff: FileFacts): boolean {
  // Some path from the unpin to the exit does not clear the flag.
  const seen = new Set<number>();
  const stack = [...fn.cfg.nodes[from].succ];
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    if (id === fn.cfg.exit) return true;
    if ((fn.assignsAt.get(id) ?? []).some((a) => objectPath(a.lhs) === flag && isFalseLiteral(a.rhs, ff))) continue;
    stack.push(...fn.cfg.nodes[id].succ);
  }
  return false;
}

/** Whether the attachment is handed on (stored elsewhere, returned) on a path that can reach `ret`. */
function escapesBefore(fn: FunctionFacts, key: string, ret: number, ff: FileFacts): boolean {
  for (const a of fn.assigns) if (keyOf(a.rhs, ff) === key && objectPath(a.lhs) !== key && reachesFrom(fn, a.cfgNode, ret)) return true;
  const r = fn.cfg.nodes[ret];
  return !!r.ast?.children[0] && keyOf(r.ast.children[0], ff) === key;
}

function isErrorReturn(n: CfgNode, ff: FileFacts): boolean {
  const v = n.ast?.children[0];
  if (!v) return false;
  const s = ff.t(v).trim();
  if (/^-E[A-Z]+$/.test(s) || /^ERR_PTR\(/.test(s)) return true;
  if (s === '0' || s === 'NULL' || s === 'true' || s === 'false') return false;
  // `return ret;` on a path where ret is an error: assume error when named like one.
  return /^(ret|err|error|rc|r)$/.test(s);
}

export const dmabufRules: Rule[] = [dmabufLocking, dmabufSgPage, dmabufErrptr, dmabufMoveNotify, dmabufPinBalance];

export { HELD };
