/**
 * PGMAP-LIFETIME: the dev_pagemap (and the memory that holds it) must
 * outlive every page it describes, and memremap_pages() can fail.
 *
 * - a pgmap with automatic storage (a local struct) submitted;
 * - the result of [devm_]memremap_pages() never tested with IS_ERR();
 * - the storage of a remapped pgmap freed on a path where the pages are
 *   still live (no memunmap_pages() first), or freed through a pointer to
 *   the embedded pgmap instead of the allocation (6238784e502b);
 * - memremap_pages() reached from a driver's probe callback when the driver
 *   has a remove/release callback but nothing in the file unmaps the pages.
 */
import { type AstNode, unwrap } from '../../core/ast';
import { type CallFact, exprKey, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { solve } from '../../core/flow';
import { truths } from '../../core/conditions';
import { type Rule, type RuleContext, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';
import { SUBMIT_ARG } from './objects';
import { automaticStruct } from './more-common';

const ERR_TESTS = new Set(['IS_ERR', 'IS_ERR_OR_NULL', 'PTR_ERR_OR_ZERO', 'IS_ERR_VALUE']);
const FREES: Record<string, number> = { kfree: 0, kvfree: 0, kfree_sensitive: 0, vfree: 0, devm_kfree: 1 };
const UNMAPS: Record<string, number> = { memunmap_pages: 0, devm_memunmap_pages: 1 };
const ALLOCS = /^(kzalloc|kmalloc|kcalloc|kvzalloc|kvmalloc|kvcalloc|kzalloc_node|kmalloc_node|kvzalloc_node|devm_kzalloc|devm_kmalloc|devm_kcalloc)$/;

function submitKey(c: CallFact, ff: FileFacts): string | undefined {
  const a = c.args[SUBMIT_ARG[c.name]];
  const k = a && keyOf(a, ff);
  return k ? objectPath(k) : undefined;
}

export const pgmapLifetime: Rule = {
  id: 'PGMAP-LIFETIME',
  family: 'pgmap',
  severity: 'error',
  summary: 'dev_pagemap storage or teardown does not cover the lifetime of its pages, or memremap_pages() failure ignored',
  needs: ['memremap_pages', 'devm_memremap_pages'],
  context: ['memunmap_pages', 'devm_memunmap_pages', 'kfree', 'devm_kfree'],
  check(ctx) {
    const { ff } = ctx;
    const fns = ff.analysedFunctions().map((i) => ff.fn(i.name)).filter((f): f is FunctionFacts => !!f);
    for (const fn of fns) {
      const submits = fn.calls.filter((c) => c.name in SUBMIT_ARG && c.args[SUBMIT_ARG[c.name]]);
      if (!submits.length && !fn.calls.some((c) => c.name in FREES)) continue;
      for (const c of submits) {
        stackStorage(ctx, fn, c);
        unchecked(ctx, fn, c);
      }
      freedWhileMapped(ctx, fn, submits);
      interiorFree(ctx, fn);
    }
    missingTeardown(ctx, fns);
  },
};

/** (1) `memremap_pages(&local, nid)` with a local struct of automatic storage. */
function stackStorage(ctx: RuleContext, fn: FunctionFacts, c: CallFact): void {
  const { ff } = ctx;
  const arg = unwrap(c.args[SUBMIT_ARG[c.name]]);
  if (arg.type !== 'pointer_expression' || arg.op !== '&') return;
  const k = arg.children[0] && exprKey(arg.children[0], ff);
  if (!k || k.includes('->')) return;
  const root = rootOf(k);
  const decl = automaticStruct(fn, root, ff);
  if (!decl) return;
  ctx.report({
    message: `${c.name}() is given ${ff.t(arg)}, a dev_pagemap on ${fn.info.name}()'s stack. Every page it creates points back at it, and the core keeps it in its pgmap table and percpu ref until memunmap_pages(); once ${fn.info.name}() returns that memory is reused, and the next get_dev_pagemap() or page free walks a dead frame. Allocate the pgmap (devm_kzalloc() or embed it in the driver's device structure).`,
    at: c.node,
    related: [rel(decl, `${root} is a local of ${fn.info.name}()`)],
    functionName: fn.info.name,
    events: [{ op: 'pgmap_storage', span: { start: decl.start, end: decl.end }, args: { storage: 'stack' } }, callEvent(c, 'memremap_pages', { storage: 'stack' }), { op: 'function_return', args: { fn: fn.info.name } }],
  });
}

/** (4) The ERR_PTR result of [devm_]memremap_pages() never tested. */
function unchecked(ctx: RuleContext, fn: FunctionFacts, c: CallFact): void {
  const { ff } = ctx;
  let cur: AstNode = c.node;
  while (cur.parent && (cur.parent.type === 'parenthesized_expression' || cur.parent.type === 'cast_expression')) cur = cur.parent;
  const p = cur.parent;
  if (!p) return;
  let key: string | undefined;
  if (p.type === 'expression_statement') key = undefined;
  else if (p.type === 'assignment_expression' && cur.field === 'right') {
    const l = p.children.find((x) => x.field === 'left');
    const k = l && keyOf(l, ff);
    if (!k) return;
    key = objectPath(k);
  } else if (p.type === 'init_declarator') {
    const d = p.children.find((x) => x.field === 'declarator');
    const k = d && keyOf(d.type === 'pointer_declarator' ? d.children.find((x) => x.field === 'declarator') ?? d : d, ff);
    if (!k) return;
    key = objectPath(k);
  } else return;
  let nullOnly: AstNode | undefined;
  if (key !== undefined) {
    // Tested, returned, or handed on: someone looks at it.
    for (const x of fn.calls) {
      if (x.node === c.node) continue;
      for (const a of x.args) {
        const k = keyOf(a, ff);
        if (k && objectPath(k) === key) {
          if (ERR_TESTS.has(x.name) || ff.functions.has(x.name)) return;
        }
      }
    }
    for (const n of fn.cfg.nodes) {
      if (n.kind === 'return' && n.ast && n.ast.children[0]) {
        const k = keyOf(n.ast.children[0], ff);
        if (k && objectPath(k) === key) return;
      }
      if (n.kind === 'cond' && n.ast && !nullOnly)
        for (const tr of truths(n.ast, true, (x) => ff.t(x))) {
          const k = keyOf(tr.node, ff);
          if (k && objectPath(k) === key) nullOnly = n.ast;
        }
    }
    // Stored into a structure for someone else: not ours to judge.
    if (key.includes('.') && !nullOnly) return;
  }
  ctx.report({
    message: nullOnly
      ? `${c.name}() returns ERR_PTR() on failure, never NULL, but ${key!.replace(/\./g, '->')} is only tested against NULL: a failed remap (a missing owner, a busy range, memory hotplug failure) goes on as a success, and the pages the driver then hands out have no memmap.`
      : `The result of ${c.name}() is never tested with IS_ERR(): when the remap fails (a missing owner, a range that collides with RAM or another pgmap, memory hotplug failure) the driver goes on and hands out pages whose memmap was never set up.`,
    at: c.node,
    related: nullOnly ? [rel(nullOnly, 'only a NULL test here')] : [],
    functionName: fn.info.name,
    events: [callEvent(c, 'memremap_pages', { fails: true, checked: false }), { op: 'use_pages', args: { after: 'failed remap' } }],
  });
}

/** (3) The storage of a remapped pgmap freed while the pages are live. */
function freedWhileMapped(ctx: RuleContext, fn: FunctionFacts, submits: CallFact[]): void {
  const { ff } = ctx;
  if (!submits.length || !fn.calls.some((c) => c.name in FREES)) return;
  // Result keys of the submits: IS_ERR(result) true means nothing is mapped.
  const results = new Map<string, string>();
  const objects = new Map<CallFact, string>();
  for (const c of submits) {
    const obj = submitKey(c, ff);
    if (!obj) continue;
    objects.set(c, obj);
    for (const a of fn.assigns) if (a.op === '=' && unwrap(a.rhs) === c.node) results.set(objectPath(a.lhs), obj);
  }
  // `ret = PTR_ERR_OR_ZERO(addr)`: a non-zero ret means the remap failed.
  const errKeys = new Map<string, string>();
  for (const a of fn.assigns) {
    const c = asCall(a.rhs, fn);
    const k = c && c.name === 'PTR_ERR_OR_ZERO' && c.args[0] ? keyOf(c.args[0], ff) : undefined;
    const obj = k && results.get(objectPath(k));
    if (obj) errKeys.set(objectPath(a.lhs), obj);
  }
  type S = ReadonlyMap<string, CallFact>;
  const sol = solve<S>(fn.cfg, {
    entry: new Map(),
    // May-analysis: one path that reaches the free with the pages mapped is enough (error
    // unwinding shares labels between paths before and after the remap).
    join: (a, b) => {
      const m = new Map<string, CallFact>(a);
      for (const [k, v] of b) if (!m.has(k)) m.set(k, v);
      return m;
    },
    equals: (a, b) => a.size === b.size && [...a.keys()].every((k) => b.has(k)),
    transfer: (node, s) => {
      let m: Map<string, CallFact> | undefined;
      for (const c of fn.callsAt.get(node.id) ?? []) {
        const obj = objects.get(c);
        if (obj) (m ??= new Map(s)).set(obj, c);
        const ui = UNMAPS[c.name];
        if (ui !== undefined && c.args[ui]) {
          const k = keyOf(c.args[ui], ff);
          if (k) (m ??= new Map(s)).delete(objectPath(k));
        }
      }
      return m ?? s;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond' || !node.ast) return s;
      let m: Map<string, CallFact> | undefined;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const call = asCall(tr.node, fn);
        const target = call && (call.name === 'IS_ERR' || call.name === 'IS_ERR_OR_NULL') ? call.args[0] : undefined;
        const k = target && keyOf(target, ff);
        const obj = k && results.get(objectPath(k));
        if (obj && tr.truthy && (m ?? s).has(obj)) (m ??= new Map(s)).delete(obj);
        const ek = keyOf(tr.node, ff);
        const eobj = ek && errKeys.get(objectPath(ek));
        if (eobj && tr.truthy && (m ?? s).has(eobj)) (m ??= new Map(s)).delete(eobj);
      }
      return m ?? s;
    },
  });
  for (const c of fn.calls) {
    const fi = FREES[c.name];
    if (fi === undefined || !c.args[fi]) continue;
    const s = sol.before[c.cfgNode];
    if (!s || !s.size) continue;
    const k = keyOf(c.args[fi], ff);
    if (!k) continue;
    const freed = objectPath(k);
    for (const [obj, sub] of s) {
      if (obj !== freed && rootOf(obj) !== freed) continue;
      ctx.report({
        message: `${c.name}(${ff.t(c.args[fi])}) frees the memory that holds the dev_pagemap ${obj.replace(/\./g, '->')} while its pages are still remapped: nothing calls memunmap_pages() on this path${sub.name === 'devm_memremap_pages' ? ' (the devm action runs only when the device is unbound, after this)' : ''}. The pages keep pointing at the freed pgmap, and the next page free or get_dev_pagemap() uses freed memory. Unmap first (memunmap_pages()), or let devm own both the storage (devm_kzalloc()) and the mapping.`,
        at: c.node,
        related: [rel(sub.node, 'the pages are remapped here')],
        functionName: fn.info.name,
        events: [callEvent(sub, 'memremap_pages', { storage: 'heap' }), callEvent(c, 'free_pgmap', { unmapped: false }), { op: 'page_free_later' }],
      });
      break;
    }
  }
}

/** (3b) kfree()/devm_kfree() of a pointer to the pgmap embedded in an allocation, not of the allocation. */
function interiorFree(ctx: RuleContext, fn: FunctionFacts): void {
  const { ff } = ctx;
  const allocated = new Set<string>();
  for (const a of fn.assigns) {
    const c = asCall(a.rhs, fn);
    if (a.op === '=' && c && ALLOCS.test(c.name)) allocated.add(objectPath(a.lhs));
  }
  if (!allocated.size) return;
  // `p = &x->member` where x is an allocation and the member is a dev_pagemap (submitted, or typed by name).
  const submitted = new Set(fn.calls.filter((c) => c.name in SUBMIT_ARG).map((c) => submitKey(c, ff)).filter((k): k is string => !!k));
  const interior = new Map<string, { base: string; member: string; at: AstNode }>();
  for (const a of fn.assigns) {
    const u = unwrap(a.rhs);
    if (a.op !== '=' || u.type !== 'pointer_expression' || u.op !== '&') continue;
    const k = u.children[0] && exprKey(u.children[0], ff);
    if (!k || !k.includes('->')) continue;
    const path = objectPath(k);
    const base = rootOf(path);
    if (!allocated.has(base) || path === base) continue;
    const isPgmap = submitted.has(objectPath(a.lhs)) || submitted.has(path) || /pgmap|pagemap/.test(path.split('.').pop()!);
    if (isPgmap) interior.set(objectPath(a.lhs), { base, member: path, at: a.lhsNode.parent ?? a.lhsNode });
  }
  for (const c of fn.calls) {
    const fi = FREES[c.name];
    if (fi === undefined || !c.args[fi]) continue;
    const arg = unwrap(c.args[fi]);
    let hit: { base: string; member: string; at?: AstNode } | undefined;
    const k = keyOf(arg, ff);
    if (k && interior.has(objectPath(k))) hit = interior.get(objectPath(k));
    else if (arg.type === 'pointer_expression' && arg.op === '&') {
      const ik = arg.children[0] && exprKey(arg.children[0], ff);
      const path = ik && objectPath(ik);
      if (path && ik!.includes('->') && allocated.has(rootOf(path)) && /pgmap|pagemap/.test(path.split('.').pop()!)) hit = { base: rootOf(path), member: path };
    }
    if (!hit) continue;
    ctx.report({
      message: `${c.name}() is given ${ff.t(c.args[fi])}, a pointer to the dev_pagemap embedded in ${hit.base} (${hit.member.replace(/\./g, '->')}), not the allocation itself. Unless the member is first, the allocator is handed an address it never returned: the slab is corrupted, and ${hit.base} itself leaks. Free ${hit.base}.`,
      at: c.node,
      related: hit.at ? [rel(hit.at, 'the pointer to the member is taken here')] : [],
      functionName: fn.info.name,
      events: [{ op: 'pgmap_storage', args: { storage: 'embedded' } }, callEvent(c, 'free_pgmap', { interior: true, fn: c.name })],
    });
  }
}

/** (2) memremap_pages() from probe, a remove/release callback exists, and nothing in the file unmaps. */
function missingTeardown(ctx: RuleContext, fns: FunctionFacts[]): void {
  const { ff } = ctx;
  if (/\b(memunmap_pages|devm_memunmap_pages|devm_add_action|devm_add_action_or_reset)\b/.test(ff.text)) return;
  const removers = [...ff.roles].filter(([, rs]) => rs.some((r) => r.field === 'remove' || r.field === 'release' || r.field === 'remove_new'));
  if (!removers.length) return;
  const probes = [...ff.roles].filter(([, rs]) => rs.some((r) => r.field === 'probe')).map(([n]) => n);
  const byName = new Map(fns.map((f) => [f.info.name, f]));
  for (const probe of probes) {
    // Functions of this file reached from probe.
    const seen = new Set<string>();
    const queue = [probe];
    while (queue.length && seen.size < 40) {
      const n = queue.shift()!;
      if (seen.has(n)) continue;
      seen.add(n);
      const f = byName.get(n) ?? ff.fn(n);
      if (!f) continue;
      for (const c of f.calls) if (ff.functions.has(c.name)) queue.push(c.name);
    }
    for (const n of seen) {
      const f = byName.get(n) ?? ff.fn(n);
      for (const c of f?.calls ?? []) {
        if (c.name !== 'memremap_pages') continue;
        const [rname, rroles] = removers[0];
        const rrole = rroles.find((r) => r.field === 'remove' || r.field === 'release' || r.field === 'remove_new')!;
        ctx.report({
          severity: 'warning',
          message: `memremap_pages() is reached from the probe callback ${probe}(), but nothing in this file ever calls memunmap_pages(), and the driver's ${rrole.field} callback ${rname}() does not either: after unbind the pages stay registered, pointing at a pgmap whose driver (and maybe storage) is gone. Unmap in ${rname}(), or use devm_memremap_pages().`,
          at: c.node,
          related: [rel(rrole.span, `${rname}() is the ${rrole.field} callback`)],
          functionName: f!.info.name,
          events: [callEvent(c, 'memremap_pages', { storage: 'heap' }), { op: 'driver_unbind', span: rrole.span, args: { unmapped: false } }, { op: 'get_dev_pagemap' }],
        });
      }
    }
  }
}
