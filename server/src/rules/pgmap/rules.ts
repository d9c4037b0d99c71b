/**
 * ZONE_DEVICE / pgmap and migrate_vma rules: PGMAP-PRIVATE-AS-P2P,
 * PGMAP-INIT-FIELDS, PGMAP-PRIVATE-DMA-MAP, MIG-FAULT-PAGE.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import type { RelatedSpan } from '../../core/types';
import { type Rule, type RuleContext, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';
import { opsTable, type PgmapObject, pgmapObjects } from './objects';

const objectsOf = (ctx: RuleContext) => ctx.shared('pgmap.objects', () => pgmapObjects(ctx.ff));

const BAR_CALLS = /^(pci_resource_start|pci_resource_end|pci_bus_address|pci_resource_n)$/;
const P2P_OR_PROVIDER_APIS = /\b(pci_p2pdma_\w+|pci_p2pmem_\w+|pci_alloc_p2pmem|page_pool_\w+|net_iov\w*|memory_provider_ops)\b/;

/**
 * Whether `value` (or a local it reads) comes from a PCI BAR. Values returned
 * by other calls do not count (`devm_request_free_mem_region(dev, &iomem_resource,
 * pci_resource_len(...))` sizes a free region after the BAR; it is not the BAR).
 */
function fromBar(value: AstNode, fn: FunctionFacts | undefined, ff: FileFacts, depth = 0): boolean {
  let hit = false;
  walk(value, (n) => {
    if (hit) return false;
    if (n.type === 'call_expression') {
      const f = field(n, 'function');
      if (f && BAR_CALLS.test(ff.t(f))) hit = true;
      return false;
    }
    if (n.type === 'field_expression' && /->\s*resource\s*$/.test(ff.t(n))) {
      hit = true;
      return false;
    }
    if (n.type === 'subscript_expression' && /->\s*resource\s*\[/.test(ff.t(n))) {
      hit = true;
      return false;
    }
    if (n.type === 'identifier' && fn && depth < 3) {
      const name = ff.t(n);
      for (const a of fn.assigns) if ((a.lhs === name || objectPath(a.lhs) === name) && fromBar(a.rhs, fn, ff, depth + 1)) hit = true;
    }
    return true;
  });
  return hit;
}

export const pgmapPrivateAsP2p: Rule = {
  id: 'PGMAP-PRIVATE-AS-P2P',
  family: 'pgmap',
  severity: 'error',
  summary: 'MEMORY_DEVICE_PRIVATE used for memory the CPU or a peer device can address (a PCI BAR)',
  needs: ['MEMORY_DEVICE_PRIVATE'],
  check(ctx) {
    const { ff } = ctx;
    const objs = objectsOf(ctx).filter((o) => o.type === 'MEMORY_DEVICE_PRIVATE');
    if (!objs.length) return;
    const usesP2p = P2P_OR_PROVIDER_APIS.exec(ff.text);
    for (const o of objs) {
      const rangeWrites = o.writes.filter((w) => w.path === 'range.start' || w.path === 'range' || w.path.startsWith('ranges'));
      const bar = rangeWrites.find((w) => fromBar(w.value, o.fn, ff));
      const at = o.submits[0]?.node ?? o.typeAt;
      if (!at) continue;
      const typeRel = o.typeAt && o.submits[0] ? [rel(o.typeAt, 'the pgmap is made MEMORY_DEVICE_PRIVATE here')] : [];
      if (bar) {
        ctx.report({
          message: `This pgmap is MEMORY_DEVICE_PRIVATE but its range is a PCI BAR: device-private pages are opaque handles that no one but their owner may map or DMA to, and the core gives them no kernel mapping. Memory that peers reach over PCIe is MEMORY_DEVICE_PCI_P2PDMA: register the BAR with pci_p2pdma_add_resource().`,
          at,
          related: [rel(bar.at, 'the range comes from a PCI BAR here'), ...typeRel],
          functionName: o.fn?.info.name,
          events: [
            { op: 'pgmap_setup', span: { start: at.start, end: at.end }, args: { pgmapType: 'PRIVATE', rangeFrom: 'bar' } },
            ...o.submits.map((c) => callEvent(c, 'memremap_pages', { pgmapType: 'PRIVATE' })),
            { op: 'dma_map_page', args: { by: 'peer', pgmapType: 'PRIVATE' } },
          ],
        });
      } else if (usesP2p) {
        const off = usesP2p.index;
        ctx.report({
          severity: 'warning',
          message: `A MEMORY_DEVICE_PRIVATE pgmap in a file that also hands memory to peers (${usesP2p[0]}): device-private pages cannot be DMA-mapped by another device or given to the network stack. Peer-reachable memory must be MEMORY_DEVICE_PCI_P2PDMA or exported as a dma-buf.`,
          at,
          related: [{ start: off, end: off + usesP2p[0].length, message: 'peer-to-peer use in this file' }, ...typeRel],
          functionName: o.fn?.info.name,
          events: [
            { op: 'pgmap_setup', span: { start: at.start, end: at.end }, args: { pgmapType: 'PRIVATE', rangeFrom: 'unknown' } },
            { op: 'dma_map_page', args: { by: 'peer', pgmapType: 'PRIVATE' } },
          ],
        });
      }
    }
  },
};

export const pgmapInitFields: Rule = {
  id: 'PGMAP-INIT-FIELDS',
  family: 'pgmap',
  severity: 'error',
  summary: 'dev_pagemap submitted without the fields memremap_pages() requires for its type',
  needs: ['memremap_pages', 'devm_memremap_pages'],
  check(ctx) {
    const { ff } = ctx;
    for (const o of objectsOf(ctx)) {
      if (!o.submits.length || !o.fn) continue;
      // Only judge objects set up in the same function (otherwise we cannot see the writes).
      const setUpHere = o.initializer || o.writes.some((w) => w.path === 'type' || w.path.startsWith('range'));
      if (!setUpHere || o.writes.some((w) => w.path === '*')) continue;
      const has = (p: string) => o.writes.some((w) => w.path === p || w.path.startsWith(p + '.'));
      const missing: string[] = [];
      if (!o.type && !has('type')) missing.push('type (0 is reserved to catch exactly this)');
      if (!has('nr_range')) missing.push('nr_range (memremap_pages() fails with "nr_range must be specified")');
      if (!has('range') && !has('ranges')) missing.push('range');
      const needsOwner = o.type === 'MEMORY_DEVICE_PRIVATE' || o.type === 'MEMORY_DEVICE_COHERENT';
      const related: RelatedSpan[] = [];
      if (needsOwner) {
        if (!has('owner')) missing.push('owner (the core refuses device-private/coherent memory with no owner)');
        if (!has('ops')) missing.push(`ops (${o.type === 'MEMORY_DEVICE_PRIVATE' ? 'migrate_to_ram and page_free are' : 'page_free is'} required)`);
        else {
          const ops = opsTable(o, ff);
          if (ops) {
            const opNames = new Set(ops.fields.map((f) => f.path));
            const lack: string[] = [];
            if (o.type === 'MEMORY_DEVICE_PRIVATE' && !opNames.has('migrate_to_ram')) lack.push('migrate_to_ram');
            if (!opNames.has('page_free') && !opNames.has('folio_free')) lack.push('page_free');
            if (lack.length) {
              missing.push(`ops->${lack.join(' and ops->')} (in ${ops.name})`);
              related.push(rel(ops.node, `${ops.name} is defined here without ${lack.join(' and ')}`));
            }
          }
        }
      }
      if (!missing.length) continue;
      const call = o.submits[0];
      if (o.typeAt) related.push(rel(o.typeAt, `the pgmap is set up here (${o.type ?? 'no type'})`));
      ctx.report({
        message: `${call.name}() is given a dev_pagemap without ${missing.join(', ')}: it WARNs and returns -EINVAL, and a caller that goes on anyway hands out pages whose memmap was never set up.`,
        at: call.node,
        related,
        functionName: o.fn.info.name,
        events: [
          { op: 'pgmap_setup', span: o.typeAt ? { start: o.typeAt.start, end: o.typeAt.end } : undefined, args: { pgmapType: (o.type ?? 'NONE').replace('MEMORY_DEVICE_', ''), missing: missing.map((m) => m.split(' ')[0]).join(',') } },
          callEvent(call, 'memremap_pages', { pgmapType: (o.type ?? 'NONE').replace('MEMORY_DEVICE_', '') }),
        ],
      });
    }
  },
};

// ---------------------------------------------------------------------------

const DMA_SINKS: Record<string, number> = {
  dma_map_page: 1,
  dma_map_page_attrs: 1,
  sg_set_page: 1,
  bio_add_page: 1,
  __bio_add_page: 1,
  bio_add_pc_page: 2,
  skb_add_rx_frag: 2,
  __skb_fill_page_desc: 2,
  skb_fill_page_desc: 2,
  ib_dma_map_page: 1,
};

/** migrate_vma objects of a function and the text of their `flags`. */
function migrateFlags(fn: FunctionFacts, ff: FileFacts): Map<string, string> {
  const out = new Map<string, string>();
  for (const init of fn.initializers) {
    if (init.structType !== 'migrate_vma') continue;
    const f = init.fields.find((x) => x.path === 'flags');
    out.set(init.name, f ? ff.t(f.value) : '');
  }
  for (const a of fn.assigns) {
    const p = objectPath(a.lhs);
    if (p.endsWith('.flags') && /MIGRATE_VMA_SELECT/.test(ff.t(a.rhs))) out.set(p.slice(0, -'.flags'.length), ff.t(a.rhs));
  }
  return out;
}

export const pgmapPrivateDmaMap: Rule = {
  id: 'PGMAP-PRIVATE-DMA-MAP',
  family: 'pgmap',
  severity: 'error',
  summary: 'device-private page handed to the DMA API, a scatterlist, a bio or an skb',
  needs: ['migrate_pfn_to_page', 'is_device_private_page', 'migrate_to_ram', 'folio_is_device_private', 'MEMORY_DEVICE_PRIVATE', 'dev_private_owner'],
  context: ['hmm_pfn_to_page', 'pfn_to_page', 'phys_to_page', 'migrate_device_range'],
  check(ctx) {
    const { ff } = ctx;
    // Pgmaps of this file that are device-private (by the last component of their path).
    const privateMaps = new Set(objectsOf(ctx).filter((o) => o.type === 'MEMORY_DEVICE_PRIVATE').map((o) => o.path.split('.').pop()!));
    // hmm_range_fault() hands back device-private pages when the range names an owner.
    const ownerInFile = /\.dev_private_owner\s*=(?!\s*NULL\b)/.test(ff.text) || /->dev_private_owner\s*=(?!\s*NULL\b)/.test(ff.text);
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn || !fn.calls.some((c) => c.name in DMA_SINKS)) continue;
      checkPrivateDmaMap(ctx, fn, privateMaps, ownerInFile);
    }
  },
};

function checkPrivateDmaMap(ctx: RuleContext, fn: FunctionFacts, privateMaps: Set<string>, ownerInFile: boolean): void {
  const { ff } = ctx;
  const isFaultHandler = ff.rolesOf(fn.info.name).some((r) => r.field === 'migrate_to_ram');
  // Arrays of migrate pfns whose entries are device-private pages: the `src` of a
  // migration that selects device-private memory (to RAM), and what
  // migrate_device_range() collects (eviction).
  const privateArrays = new Set<string>();
  const flags = migrateFlags(fn, ff);
  for (const init of fn.initializers) {
    if (init.structType !== 'migrate_vma') continue;
    const fl = flags.get(init.name) ?? '';
    if (!/DEVICE_PRIVATE/.test(fl) && !(isFaultHandler && !fl)) continue;
    privateArrays.add(init.name + '.src');
    const src = init.fields.find((f) => f.path === 'src');
    const k = src && keyOf(src.value, ff);
    if (k) privateArrays.add(k.replace(/^&/, ''));
  }
  for (const [obj, fl] of flags) {
    if (!/DEVICE_PRIVATE/.test(fl)) continue;
    privateArrays.add(obj + '.src');
    const a = fn.assigns.find((x) => objectPath(x.lhs) === obj + '.src');
    const k = a && keyOf(a.rhs, ff);
    if (k) privateArrays.add(k.replace(/^&/, ''));
  }
  if (isFaultHandler) for (const [obj] of flags) privateArrays.add(obj + '.src');
  for (const c of fn.calls) if (c.name === 'migrate_device_range' && c.args[0]) {
    const k = keyOf(c.args[0], ff);
    if (k) privateArrays.add(k.replace(/^&/, ''));
  }
  const arrayOf = (n: AstNode): string | undefined => {
    let u = unwrap(n);
    if (u.type === 'subscript_expression') u = unwrap(field(u, 'argument') ?? u);
    else if (u.type === 'pointer_expression' && u.op === '*') u = unwrap(u.children[0] ?? u);
    return keyOf(u, ff);
  };
  const sourceOf = (rhs: AstNode): string | undefined => {
    const u = unwrap(rhs);
    if (isFaultHandler && /^vmf->page$/.test(ff.t(u).replace(/\s+/g, ''))) return 'vmf->page, the device-private page the CPU faulted on';
    const c = asCall(u, fn);
    if (!c) return undefined;
    if (ff.options.helpers?.[c.name]?.returns === 'device-private-page') return `the result of ${c.name}(), a device-private page (.dmalens.json)`;
    if (!c.args[0]) return undefined;
    if (c.name === 'migrate_pfn_to_page') {
      const arr = arrayOf(c.args[0]);
      if (arr && privateArrays.has(arr)) return `${ff.t(c.args[0])}, a device-private page being migrated out of device memory`;
      return undefined;
    }
    if (c.name === 'pfn_to_page' || c.name === 'phys_to_page') {
      const text = ff.t(c.args[0]).replace(/\s+/g, '');
      for (const m of privateMaps) if (new RegExp(`(\\.|->)${m}(\\.|->)range`).test(text)) return `a page of the device-private pgmap ${m} (computed from its range)`;
      return undefined;
    }
    if (c.name === 'hmm_pfn_to_page' && ownerInFile) return `${ff.t(c.args[0])}, which hmm_range_fault() may report as a device-private page of this owner (the range sets dev_private_owner)`;
    return undefined;
  };
  type S = ReadonlyMap<string, string>;
  const sol = solve<S>(fn.cfg, {
    entry: new Map(),
    join: (a, b) => {
      const m = new Map<string, string>();
      for (const [k, v] of a) if (b.has(k)) m.set(k, v);
      return m;
    },
    equals: (a, b) => a.size === b.size && [...a.keys()].every((k) => b.has(k)),
    transfer: (node, s) => {
      let m: Map<string, string> | undefined;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const why = sourceOf(a.rhs);
        if (why) (m ??= new Map(s)).set(l, why);
        else if ((m ?? s).has(l)) (m ??= new Map(s)).delete(l);
      }
      return m ?? s;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond') return s;
      let m: Map<string, string> | undefined;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const c = asCall(tr.node, fn);
        if (!c || !c.args[0]) continue;
        const k = keyOf(c.args[0], ff);
        if (!k) continue;
        if ((c.name === 'is_device_private_page' || c.name === 'folio_is_device_private') && tr.truthy)
          (m ??= new Map(s)).set(k, `${ff.t(c.args[0])}, which ${c.name}() just confirmed`);
        // A guard: on the edge where the page is known not to be device memory, it is fine.
        if ((c.name === 'is_zone_device_page' || c.name === 'is_device_private_page' || c.name === 'folio_is_zone_device' || c.name === 'folio_is_device_private') && !tr.truthy && (m ?? s).has(k))
          (m ??= new Map(s)).delete(k);
      }
      return m ?? s;
    },
  });
  for (const c of fn.calls) {
    const idx = DMA_SINKS[c.name];
    if (idx === undefined || !c.args[idx]) continue;
    const s = sol.before[c.cfgNode];
    const k = keyOf(c.args[idx], ff);
    const why = k && s?.get(k);
    if (!why) continue;
    // Certain when the page is known device-private; likely when only the HMM owner says it may be.
    const certain = !/may report/.test(why) || privateMaps.size > 0;
    ctx.report({
      severity: certain ? undefined : 'warning',
      message: `${c.name}() is given ${why}. A device-private page has no physical address anyone else can use: page_to_phys() of it names a range nothing decodes, so the device's DMA goes astray. Only the pgmap owner can translate it (to its VRAM address); guard with is_zone_device_page() or copy through the owning device.`,
      at: c.node,
      functionName: fn.info.name,
      events: [{ op: 'device_private_page', args: { source: why } }, callEvent(c, 'dma_map_page', { pgmapType: 'PRIVATE' })],
    });
  }
}

// ---------------------------------------------------------------------------

export const migFaultPage: Rule = {
  id: 'MIG-FAULT-PAGE',
  family: 'hmm',
  severity: 'error',
  summary: 'migrate_to_ram() sets up a migration without .fault_page = vmf->page',
  since: { major: 6, minor: 1 },
  needs: ['migrate_to_ram', 'migrate_vma_setup'],
  check(ctx) {
    const { ff } = ctx;
    for (const name of ff.functionsWithRole('migrate_to_ram')) {
      const fn = ff.fn(name);
      if (!fn) continue;
      const role = ff.rolesOf(name).find((r) => r.field === 'migrate_to_ram')!;
      checkSetups(ctx, fn, fn, role.span);
      // One level into helpers of this file that the callback hands the fault to.
      for (const c of fn.calls) {
        const helper = ff.functions.get(c.name);
        if (!helper || c.name === name) continue;
        const hf = ff.fn(c.name);
        if (!hf || !hf.calls.some((x) => x.name === 'migrate_vma_setup')) continue;
        checkSetups(ctx, hf, fn, role.span, c);
      }
    }
  },
};

function checkSetups(ctx: RuleContext, fn: FunctionFacts, handler: FunctionFacts, roleSpan: { start: number; end: number }, via?: CallFact): void {
  const { ff } = ctx;
  for (const c of fn.calls) {
    if (c.name !== 'migrate_vma_setup' || !c.args[0]) continue;
    const k = keyOf(c.args[0], ff);
    if (!k) continue;
    const obj = k.replace(/^&/, '');
    const isNull = (v: AstNode) => /^(NULL|0|\(void \*\)0)$/.test(ff.t(v).trim());
    const inInit = fn.initializers.some((i) => i.name === obj && i.fields.some((f) => f.path === 'fault_page' && !isNull(f.value)));
    const assigned = fn.assigns.some((a) => objectPath(a.lhs) === obj + '.fault_page' && !isNull(a.rhs));
    if (inInit || assigned) continue;
    // A helper that receives the migrate_vma from elsewhere: not ours to judge.
    if (!fn.initializers.some((i) => i.name === obj) && !fn.locals.has(obj)) continue;
    const related: RelatedSpan[] = [rel(roleSpan, `${handler.info.name}() is the pgmap's migrate_to_ram callback`)];
    if (via) related.push(rel(via.node, `the fault is handed to ${fn.info.name}() here`));
    ctx.report({
      message: `migrate_vma_setup() in the migrate_to_ram path without ${obj}.fault_page = vmf->page: the fault path already holds that page locked, so the migration cannot collect it, migrates nothing, and the CPU faults again forever. Set .fault_page = vmf->page.`,
      at: c.node,
      related,
      functionName: fn.info.name,
      events: [
        { op: 'cpu_fault_device_private', span: roleSpan },
        { op: 'migrate_to_ram', span: roleSpan },
        callEvent(c, 'migrate_vma_setup', { faultPage: false }),
      ],
    });
  }
}

export const pgmapRules: Rule[] = [pgmapPrivateAsP2p, pgmapInitFields, pgmapPrivateDmaMap, migFaultPage];

export { field };
