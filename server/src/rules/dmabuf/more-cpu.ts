/**
 * DMABUF-CPU-ACCESS-SYNC: kernel CPU access to a dma-buf is bracketed by
 * dma_buf_begin_cpu_access()/dma_buf_end_cpu_access() with one direction
 * (dma_buf_vmap() kernel-doc, drivers/dma-buf/dma-buf.c, 6.1 and 6.12);
 * exporters implementing those callbacks sync each mapping for the device
 * it was mapped for, in the right direction, with the number of entries
 * that was passed to dma_map_sg*() (orig_nents).
 */
import { type AstNode, unwrap } from '../../core/ast';
import { commaList, type FileFacts, type FunctionFacts, rootOf } from '../../core/facts';
import { solve } from '../../core/flow';
import { truths } from '../../core/conditions';
import { type Rule, type RuleContext, rel } from '../api';
import { callEvent } from '../util';
import { analysed, callees, dirConstant, originsOf, pathOf, reaches, withRole } from './more-util';
import { cpuUses, vmapSites } from './more-vmap';

const BEGIN = 'dma_buf_begin_cpu_access';
const END = 'dma_buf_end_cpu_access';
const SYNC = /^dma_sync_(sgtable|sg|single|single_range)_for_(cpu|device)$/;

function checkImporter(ctx: RuleContext): void {
  const { ff } = ctx;
  const fileBrackets = /\bdma_buf_begin_cpu_access(_partial)?\b/.test(ff.text);
  for (const fn of analysed(ctx)) {
    const begins = fn.calls.filter((c) => c.name === BEGIN || c.name === 'dma_buf_begin_cpu_access_partial');
    // Direction of begin and end must match.
    for (const end of fn.calls) {
      if (end.name !== END) continue;
      const b = pathOf(end.args[0], ff);
      const d2 = dirConstant(end.args[1], ff);
      const matching = begins.filter((x) => pathOf(x.args[0], ff) === b && reaches(fn, x.cfgNode, end.cfgNode));
      if (!d2 || !matching.length) continue;
      const d1 = dirConstant(matching[0].args[1], ff);
      if (!d1 || d1 === d2 || !matching.every((x) => dirConstant(x.args[1], ff) === d1)) continue;
      // Harmful pairs only: an end that invalidates (FROM_DEVICE) after an access that may have written,
      // or a begin that did not invalidate (TO_DEVICE) for an access that then reads.
      const discards = d2 === 'DMA_FROM_DEVICE';
      const staleReads = d1 === 'DMA_TO_DEVICE';
      if (!discards && !staleReads) continue;
      ctx.report({
        message: discards
          ? `dma_buf_end_cpu_access() with DMA_FROM_DEVICE, but the access began with ${d1}: on a non-coherent device the exporter's sync for DMA_FROM_DEVICE invalidates the CPU cache, throwing away what the CPU wrote before it reached memory. Use the same direction for begin and end.`
          : `dma_buf_begin_cpu_access() with DMA_TO_DEVICE skips the cache invalidation, yet the access ends as ${d2} (the CPU reads): on a non-coherent device it reads stale cache lines instead of what the device wrote. Use the same direction for begin and end.`,
        at: end.node,
        related: [rel(matching[0].node, `dma_buf_begin_cpu_access() with ${d1} here`)],
        functionName: fn.info.name,
        events: [callEvent(matching[0], BEGIN, { dir: d1 }), { op: 'cpu_write' }, callEvent(end, END, { dir: d2, beganWith: d1 }), { op: 'device_read' }],
      });
    }
    const sites = vmapSites(fn, ff);
    if (!sites.length) continue;
    // The bracket may live in a caller: only judge functions of files that never bracket, or that bracket here.
    if (!begins.length && fileBrackets) continue;
    const inside = begins.length ? bracketed(fn, ff) : () => false;
    for (const site of sites) {
      const use = cpuUses(fn, site, ff).find((u) => (u.kind === 'sink' || u.kind === 'accessor') && !inside(u.cfgNode));
      if (!use) continue;
      ctx.report({
        message: `The CPU accesses the buffer (${use.what}) through ${site.call.name}()'s mapping without ${begins.length ? 'being inside ' : ''}dma_buf_begin_cpu_access()/dma_buf_end_cpu_access(): on a non-coherent device the CPU reads stale cache lines, and its writes may never reach memory before the device reads it.`,
        at: use.at,
        related: [rel(site.call.node, `${site.call.name}() maps the buffer here`)],
        functionName: fn.info.name,
        events: [callEvent(site.call, site.call.name), callEvent(use.at, 'cpu_write', { via: use.what, bracketed: false }), { op: 'device_read' }],
      });
    }
  }
}

/** Nodes that every path reaches through a successful begin and no end since. */
function bracketed(fn: FunctionFacts, ff: FileFacts): (node: number) => boolean {
  const pendingVars = new Map<string, true>();
  for (const a of fn.assigns) {
    const u = unwrap(a.rhs);
    if (u.type === 'call_expression' && fn.calls.some((c) => c.node === u && (c.name === BEGIN || c.name === 'dma_buf_begin_cpu_access_partial'))) pendingVars.set(a.lhs, true);
  }
  const sol = solve<boolean>(fn.cfg, {
    entry: false,
    join: (a, b) => a && b,
    equals: (a, b) => a === b,
    transfer: (node, s) => {
      let cur = s;
      for (const c of fn.callsAt.get(node.id) ?? []) {
        if (c.name === BEGIN || c.name === 'dma_buf_begin_cpu_access_partial') cur = true;
        if (c.name === END || c.name === 'dma_buf_end_cpu_access_partial') cur = false;
      }
      return cur;
    },
    branch: (node, s, idx) => {
      if (!s || node.kind !== 'cond') return s;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        if (!tr.truthy) continue;
        const k = pathOf(tr.node, ff);
        const u = unwrap(tr.node);
        if ((k && pendingVars.has(k)) || (u.type === 'call_expression' && fn.calls.some((c) => c.node === u && c.name === BEGIN))) return false;
      }
      return s;
    },
  });
  return (id) => sol.before[id] === true;
}

/** Member names of tables that map_dma_buf maps for the importer's device (`attach->dev`). */
function attachTables(ctx: RuleContext): Set<string> {
  const { ff } = ctx;
  const out = new Set<string>();
  for (const { fn } of withRole(ctx, 'map_dma_buf', 'dma_buf_ops')) {
    const attach = fn.info.params[0]?.name;
    if (!attach) continue;
    for (const c of fn.calls) {
      if (!/^dma_map_(sgtable|sg|sg_attrs)$/.test(c.name) || pathOf(c.args[0], ff) !== `${attach}.dev`) continue;
      const member = memberOf(fn, c.args[1], ff);
      if (member) out.add(member);
    }
  }
  return out;
}

/** The struct member a table expression designates (`&a->table`, `a->sgt`, or a local assigned from one). */
function memberOf(fn: FunctionFacts, n: AstNode | undefined, ff: FileFacts): string | undefined {
  const k = pathOf(n, ff);
  if (!k) return undefined;
  if (k.includes('.')) return k.split('.').pop();
  for (const o of originsOf(fn, k)) {
    const ok = pathOf(o, ff);
    if (ok && ok.includes('.')) return ok.split('.').pop();
  }
  return undefined;
}

/** Whether a device expression in an exporter callback is an attachment's device. */
function attachmentDevice(fn: FunctionFacts, dev: AstNode, ff: FileFacts): boolean {
  const k = pathOf(dev, ff);
  if (!k) return true;
  const root = rootOf(k);
  if (/attach/i.test(root)) return true;
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'cond' || !n.iter) continue;
    const args = commaList(n.ast);
    if (args[0] && ff.t(args[0]).trim() === root && args[1] && /attachments/.test(ff.t(args[1]))) return true;
  }
  return originsOf(fn, root).some((o) => /attach/i.test(ff.t(o)));
}

function checkExporter(ctx: RuleContext): void {
  const { ff } = ctx;
  const tables = attachTables(ctx);
  const seen = new Set<number>();
  for (const role of ['begin_cpu_access', 'end_cpu_access'] as const) {
    for (const { fn, span } of withRole(ctx, role, 'dma_buf_ops')) {
      const fns = [fn, ...callees(ff, fn, 2)];
      for (const g of fns) {
        for (const c of g.calls) {
          if (!SYNC.test(c.name) || seen.has(c.node.start)) continue;
          const toDevice = c.name.endsWith('_for_device');
          if (/^dma_sync_sg_for_/.test(c.name) && c.args[2] && /(->|\.)\s*nents$/.test(ff.t(c.args[2]).trim())) {
            seen.add(c.node.start);
            ctx.report({
              severity: 'error',
              message: `${c.name}() is given ${ff.t(c.args[2]).trim()}, the number of DMA segments after mapping; the DMA API wants the number of entries that was passed to dma_map_sg() (orig_nents). After IOMMU merging nents is smaller, and the tail of the buffer is never synced. Use ${c.name.replace('dma_sync_sg_', 'dma_sync_sgtable_')}(dev, sgt, dir).`,
              at: c.node,
              related: [rel(span, `${fn.info.name}() is bound as .${role} here`)],
              functionName: g.info.name,
              events: [{ op: role, span, args: { fn: fn.info.name } }, callEvent(c, 'dma_sync', { count: 'nents', toDevice })],
            });
            continue;
          }
          if (g === fn && ((role === 'begin_cpu_access' && toDevice) || (role === 'end_cpu_access' && !toDevice))) {
            seen.add(c.node.start);
            ctx.report({
              severity: 'error',
              message: `${c.name}() in .${role}: the direction is reversed. Before the CPU reads (begin_cpu_access) the exporter must sync for the CPU (invalidate); after the CPU wrote (end_cpu_access) it must sync for the device (write back).`,
              at: c.node,
              related: [rel(span, `${fn.info.name}() is bound as .${role} here`)],
              functionName: fn.info.name,
              events: [{ op: role, span, args: { fn: fn.info.name } }, callEvent(c, 'dma_sync', { toDevice, reversed: true })],
            });
            continue;
          }
          const member = memberOf(g, c.args[1], ff);
          if (member && tables.has(member) && c.args[0] && !attachmentDevice(g, c.args[0], ff)) {
            seen.add(c.node.start);
            ctx.report({
              severity: 'warning',
              message: `${c.name}() syncs the per-attachment table (${member}) with ${ff.t(c.args[0]).trim()}, but .map_dma_buf maps that table for the importer's device (attach->dev): the cache maintenance runs against the wrong device (another IOMMU domain, or a device without a DMA mask). Sync each attachment's table with its own attach->dev.`,
              at: c.node,
              related: [rel(span, `${fn.info.name}() is bound as .${role} here`)],
              functionName: g.info.name,
              events: [{ op: role, span, args: { fn: fn.info.name } }, callEvent(c, 'dma_sync', { wrongDevice: true, toDevice })],
            });
          }
        }
      }
    }
  }
}

export const dmabufCpuAccessSync: Rule = {
  id: 'DMABUF-CPU-ACCESS-SYNC',
  family: 'dmabuf',
  severity: 'warning',
  summary: 'CPU access to a dma-buf not bracketed by begin/end_cpu_access, or an exporter syncing with the wrong device, direction or count',
  needs: ['dma_buf_vmap', 'dma_buf_vmap_unlocked', 'dma_buf_end_cpu_access', 'begin_cpu_access', 'end_cpu_access'],
  check(ctx) {
    checkImporter(ctx);
    checkExporter(ctx);
  },
};
