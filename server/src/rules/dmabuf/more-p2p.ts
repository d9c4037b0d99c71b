/**
 * DMABUF-P2P-GATE: the peer-to-peer negotiation of dma-buf (09606b5446c2,
 * 5.8). The core copies importer_ops->allow_peer2peer into attach->peer2peer
 * (dma_buf_dynamic_attach(), drivers/dma-buf/dma-buf.c); the exporter may
 * clear it (pci_p2pdma_distance() < 0, as amdgpu/xe/habanalabs do in
 * .attach) and must not hand out addresses of device memory without struct
 * pages when it is false.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { FunctionFacts } from '../../core/facts';
import { type Rule, type RuleContext, rel } from '../api';
import { callEvent, isTrueLiteral } from '../util';
import { analysed, callees, calleeName, pathOf, readsField, withRole } from './more-util';

/** Calls that produce bus/IOVA addresses of MMIO (a BAR) rather than of pages. */
const DEVMEM_EMITTERS = new Set([
  'dma_map_resource',
  'dma_buf_phys_vec_to_sgt',
  'pci_p2pdma_bus_addr_map',
  'pci_p2pmem_virt_to_bus',
  'dma_map_phys',
]);
const BAR_SOURCES = /\b(pci_resource_start|pci_bus_address|pcibios_resource_to_bus|pci_p2pdma_bus_addr_map)\b/;
/** Path checks an exporter may use before allowing peer-to-peer: the p2pdma distance, or a private fabric. */
const DISTANCE_RE = /^(pci_p2pdma_distance|pci_p2pdma_distance_many|pci_p2pdma_map_type)$|xgmi|p2p_(supported|possible|ok|access)|peer_access|can_p2p|p2p_capable/i;

interface Emit {
  node: AstNode;
  what: string;
  fn: FunctionFacts;
}

function emitters(fns: FunctionFacts[], ctx: RuleContext): Emit[] {
  const { ff } = ctx;
  const out: Emit[] = [];
  for (const fn of fns) {
    for (const c of fn.calls) {
      if (DEVMEM_EMITTERS.has(c.name)) {
        // dma_map_phys() maps MMIO only with DMA_ATTR_MMIO.
        if (c.name === 'dma_map_phys' && !c.args.some((a) => /DMA_ATTR_MMIO/.test(ff.t(a)))) continue;
        out.push({ node: c.node, what: `${c.name}()`, fn });
      }
    }
    walk(fn.body, (x) => {
      if (x.type !== 'assignment_expression') return true;
      const l = field(x, 'left');
      const r = field(x, 'right');
      if (l && r && unwrap(l).type === 'call_expression' && calleeName(unwrap(l), ff) === 'sg_dma_address' && BAR_SOURCES.test(ff.t(r)))
        out.push({ node: x, what: 'sg_dma_address() set from a BAR', fn });
      return true;
    });
  }
  return out;
}

function peerReads(fns: FunctionFacts[], ctx: RuleContext): AstNode | undefined {
  for (const fn of fns) {
    const r = readsField(fn.body, 'peer2peer', ctx.ff);
    if (r) return r;
  }
  return undefined;
}

function distanceCall(fns: FunctionFacts[]): AstNode | undefined {
  for (const fn of fns) for (const c of fn.calls) if (DISTANCE_RE.test(c.name)) return c.node;
  return undefined;
}

function checkExporter(ctx: RuleContext): void {
  const { ff } = ctx;
  for (const map of withRole(ctx, 'map_dma_buf', 'dma_buf_ops')) {
    const table = map.table;
    const sibling = (fieldName: string): FunctionFacts | undefined => {
      const f = table.fields.find((x) => x.path === fieldName);
      const v = f ? unwrap(f.value) : undefined;
      const name = v && v.type === 'identifier' ? ff.t(v) : undefined;
      return name && ff.functions.has(name) ? ff.fn(name) : undefined;
    };
    const attach = sibling('attach');
    const pin = sibling('pin');
    const mapFns = [map.fn, ...callees(ff, map.fn, 2)];
    const gateFns = [...mapFns];
    for (const f of [attach, pin]) if (f) gateFns.push(f, ...callees(ff, f, 2));
    const emits = emitters(mapFns, ctx);
    const read = peerReads(gateFns, ctx);
    if (emits.length && !read) {
      const e = emits[0];
      ctx.report({
        message: `${map.fn.info.name}() is the exporter's .map_dma_buf and hands out device-memory addresses (${e.what}) without ever reading attach->peer2peer: an importer that did not set allow_peer2peer (every static importer) gets MMIO entries without struct pages it cannot handle, over a PCIe path nobody checked. Fall back to system memory when !attach->peer2peer.`,
        at: e.node,
        related: [rel(map.span, `${map.fn.info.name}() is bound as .map_dma_buf here`)],
        functionName: e.fn.info.name,
        events: [
          { op: 'dma_buf_attach', args: { peer2peer: false, dynamic: false } },
          callEvent(e.node, 'exporter_map_devmem', { checksPeer2peer: false, via: e.what }),
          { op: 'importer_dma' },
        ],
      });
      continue;
    }
    if (read && !distanceCall(gateFns)) {
      // The exporter honours peer2peer, but never asks whether this importer can reach its memory.
      const where = attach ?? map.fn;
      ctx.report({
        severity: 'warning',
        message: `${ff.t(where.info.nameSpan)}() ${attach ? 'is the exporter\'s .attach' : 'maps device memory when attach->peer2peer is set'}, but nothing checks that the importer can reach that memory: clear attach->peer2peer in .attach when pci_p2pdma_distance(exporter, attach->dev, true) < 0 (or the private fabric check), as amdgpu and xe do.`,
        at: where.info.nameSpan,
        related: [rel(read, 'attach->peer2peer is honoured here'), rel(map.span, '.map_dma_buf is bound here')],
        functionName: where.info.name,
        events: [
          { op: 'dma_buf_dynamic_attach', args: { peer2peer: true, distanceChecked: false } },
          { op: 'exporter_map_devmem', span: { start: read.start, end: read.end }, args: { checksPeer2peer: true } },
          { op: 'importer_dma' },
        ],
      });
    }
  }
}

function checkForcedPeer(ctx: RuleContext): void {
  const { ff } = ctx;
  for (const fn of analysed(ctx)) {
    for (const a of fn.assigns) {
      if (a.op !== '=') continue;
      const k = pathOf(a.lhsNode, ff);
      if (!k || !k.endsWith('.peer2peer') || !isTrueLiteral(a.rhs, ff)) continue;
      const root = k.split('.')[0];
      const ty = fn.info.params.find((p) => p.name === root)?.type ?? fn.locals.get(root) ?? '';
      if (!/dma_buf_attachment/.test(ty) && !/(^|\.)attach\w*\.peer2peer$/.test(k)) continue;
      ctx.report({
        message: `${ff.t(a.lhsNode)} is forced to true: only the importer can promise that it handles peer memory without struct pages (importer_ops->allow_peer2peer, copied by dma_buf_dynamic_attach()). An exporter may only clear it.`,
        at: a.lhsNode.parent ?? a.lhsNode,
        functionName: fn.info.name,
        events: [
          { op: 'dma_buf_attach', args: { peer2peer: false, dynamic: false } },
          callEvent(a.lhsNode.parent ?? a.lhsNode, 'force_peer2peer'),
          { op: 'exporter_map_devmem', args: { checksPeer2peer: true } },
          { op: 'importer_dma' },
        ],
      });
    }
  }
}

function checkImporter(ctx: RuleContext): void {
  const { ff } = ctx;
  const p2pOps = ff.allInitializers().filter((i) => i.structType === 'dma_buf_attach_ops' && i.fields.some((f) => f.path === 'allow_peer2peer' && isTrueLiteral(f.value, ff)));
  if (!p2pOps.length) return;
  for (const fn of analysed(ctx)) {
    for (const c of fn.calls) {
      if (c.name !== 'dma_buf_attach') continue;
      ctx.report({
        severity: 'info',
        message: `dma_buf_attach() makes a static attachment, which never gets peer-to-peer (attach->peer2peer stays false) although this file sets allow_peer2peer in ${p2pOps[0].name}: the exporter pins the buffer and migrates it to system memory. Use dma_buf_dynamic_attach() with ${p2pOps[0].name} where device memory is wanted.`,
        at: c.node,
        related: [rel(p2pOps[0].node, `${p2pOps[0].name} allows peer-to-peer`)],
        functionName: fn.info.name,
        events: [callEvent(c, 'dma_buf_attach', { dynamic: false, peer2peer: false }), { op: 'importer_dma', args: { static: true } }],
      });
    }
  }
}

export const dmabufP2pGate: Rule = {
  id: 'DMABUF-P2P-GATE',
  family: 'dmabuf',
  severity: 'error',
  summary: 'dma-buf peer-to-peer negotiation broken: device memory handed out without attach->peer2peer, no path check, or peer2peer forced on',
  since: { major: 5, minor: 8 },
  needs: ['peer2peer', 'allow_peer2peer', 'map_dma_buf'],
  check(ctx) {
    checkExporter(ctx);
    checkForcedPeer(ctx);
    checkImporter(ctx);
  },
};
