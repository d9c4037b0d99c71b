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

const BAR_SOURCES = /\b(pci_resource_start|pci_resource_end|pci_resource_len|pci_bus_address|pcim_iomap_table)\b|->resource\[/;
const P2P_OR_PROVIDER_APIS = /\b(pci_p2pdma_\w+|pci_p2pmem_\w+|pci_alloc_p2pmem|page_pool_\w+|net_iov\w*|memory_provider_ops)\b/;

/** Whether `value` (or a local it reads) comes from a PCI BAR. */
function fromBar(value: AstNode, fn: FunctionFacts | undefined, ff: FileFacts, depth = 0): boolean {
  const text = ff.t(value);
  if (BAR_SOURCES.test(text)) return true;
  if (!fn || depth > 2) return false;
  let hit = false;
  walk(value, (n) => {
    if (hit) return false;
    if (n.type === 'identifier') {
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
      const at = o.typeAt ?? o.submits[0]?.node;
      if (!at) continue;
      if (bar) {
        ctx.report({
          message: `This pgmap is MEMORY_DEVICE_PRIVATE but its range is a PCI BAR: device-private pages are opaque handles that no one but their owner may map or DMA to, and the core gives them no kernel mapping. Memory that peers reach over PCIe is MEMORY_DEVICE_PCI_P2PDMA: register the BAR with pci_p2pdma_add_resource().`,
          at,
          related: [rel(bar.at, 'the range comes from a PCI BAR here')],
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
          related: [{ start: off, end: off + usesP2p[0].length, message: 'peer-to-peer use in this file' }],
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
  needs: ['migrate_pfn_to_page', 'is_device_private_page', 'migrate_to_ram', 'folio_is_device_private'],
  check(ctx) {
    const { ff } = ctx;
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn || !fn.calls.some((c) => c.name in DMA_SINKS)) continue;
      const isFaultHandler = ff.rolesOf(info.name).some((r) => r.field === 'migrate_to_ram');
      const flags = migrateFlags(fn, ff);
      // A page is device-private when it comes from the source side of a
      // migration that selects device-private pages, from vmf->page in
      // migrate_to_ram, or inside an is_device_private_page() branch.
      const sourceOf = (rhs: AstNode): string | undefined => {
        const u = unwrap(rhs);
        if (isFaultHandler && /^vmf->page$/.test(ff.t(u).replace(/\s+/g, ''))) return 'vmf->page, the device-private page the CPU faulted on';
        const c = asCall(u, fn);
        if (!c || c.name !== 'migrate_pfn_to_page' || !c.args[0]) return undefined;
        const arg = ff.t(c.args[0]).replace(/\s+/g, '');
        const m = /^(.*?)(?:\.|->)src\[/.exec(arg);
        if (!m) return undefined;
        const obj = m[1].replace(/^&/, '').replace(/->/g, '.');
        const fl = flags.get(obj) ?? flags.get(obj.replace(/^\*/, ''));
        if ((fl && /DEVICE_PRIVATE/.test(fl)) || (isFaultHandler && fl === undefined && flags.size === 0)) return `${arg}, a source page of a migration that selects device-private memory`;
        if (fl && /DEVICE_PRIVATE/.test(fl)) return arg;
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
          for (const a of fn.assigns) {
            if (a.cfgNode !== node.id) continue;
            const l = objectPath(a.lhs);
            const why = sourceOf(a.rhs);
            if (why) (m ??= new Map(s)).set(l, why);
            else if (s.has(l)) (m ??= new Map(s)).delete(l);
          }
          return m ?? s;
        },
        branch: (node, s, idx) => {
          if (node.kind !== 'cond') return s;
          let m: Map<string, string> | undefined;
          for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
            const c = asCall(tr.node, fn);
            if (!c || !tr.truthy) continue;
            if (c.name === 'is_device_private_page' || c.name === 'folio_is_device_private') {
              const k = keyOf(c.args[0], ff);
              if (k) (m ??= new Map(s)).set(k, `${ff.t(c.args[0])}, which ${c.name}() just confirmed`);
            }
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
        ctx.report({
          message: `${c.name}() is given ${why}. A device-private page has no physical address anyone else can use: page_to_phys() of it names a range nothing decodes, so the device's DMA goes astray. Only the pgmap owner can translate it (to its VRAM address); guard with is_zone_device_page() or copy through the owning device.`,
          at: c.node,
          functionName: fn.info.name,
          events: [{ op: 'device_private_page', args: { source: why } }, callEvent(c, 'dma_map_page', { pgmapType: 'PRIVATE' })],
        });
      }
    }
  },
};

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
    const inInit = fn.initializers.some((i) => i.name === obj && i.fields.some((f) => f.path === 'fault_page'));
    const assigned = fn.assigns.some((a) => objectPath(a.lhs) === obj + '.fault_page');
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
