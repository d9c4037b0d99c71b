/**
 * Further rules of the p2pdma family (the hazard catalog's rules beyond the
 * first thirteen): P2P-BUS-ADDR-VS-IOMMU, P2P-PUBLISH-CONTRACT,
 * P2P-ALLOC-FREE-MISMATCH, P2P-REF-ERRPATH, P2P-DMA-MAP-API, P2P-ACS-TAMPER.
 *
 * Contracts checked against Debian's 6.12 tree (drivers/pci/p2pdma.c,
 * lib/genalloc.c, kernel/dma/direct.c, drivers/iommu/dma-iommu.c,
 * drivers/pci/pci.c) and, for the newer API, torvalds/linux.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import type { CfgNode } from '../../core/cfg';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import { type Rule, type RuleContext, rel } from '../api';
import { asCall, callEvent, isFalseLiteral, keyOf } from '../util';
import { dominatedByEdge, enclosingCall, isErrorExit, isLoggingCall, nonZeroVars, reachingDefs, switchCases, switchEdgeLabels, switchStatementOf } from './paths';
import { baseKey, constValue, devicesDiffer, fileCopies, foreignProviders, lastName, norm, p2pKindOf, p2pValuesOf, sizesDiffer } from './values';

function* functionsOf(ff: FileFacts): Generator<FunctionFacts> {
  for (const info of ff.analysedFunctions()) {
    const fn = ff.fn(info.name);
    if (fn) yield fn;
  }
}

/** Every function of the file, analysed or not (for facts about the whole file: who fills a member). */
function* allFunctionsOf(ff: FileFacts): Generator<FunctionFacts> {
  for (const info of ff.functions.values()) {
    const fn = ff.fn(info.name);
    if (fn) yield fn;
  }
}

function spanOf(n: AstNode | CfgNode | undefined): { start: number; end: number } | undefined {
  if (!n) return undefined;
  const a = 'kind' in n && 'succ' in n ? n.ast : (n as AstNode);
  return a ? { start: a.start, end: a.end } : undefined;
}

// =========================================================================
// P2P-BUS-ADDR-VS-IOMMU

const MAP_TYPE_FNS = new Set(['pci_p2pdma_map_segment', 'pci_p2pdma_state', 'pci_p2pdma_map_type']);
const BUS_ADDR = 'PCI_P2PDMA_MAP_BUS_ADDR';
const NOT_SUPPORTED = 'PCI_P2PDMA_MAP_NOT_SUPPORTED';

/** Whether edge `i` out of `n` is taken only when the map type is PCI_P2PDMA_MAP_BUS_ADDR. */
function busAddrEdge(n: CfgNode, i: number, ff: FileFacts): boolean {
  if (n.kind === 'switch') return switchEdgeLabels(n, ff)[i] === BUS_ADDR;
  if (n.kind !== 'cond' || !n.ast) return false;
  return impliesBusAddr(n.ast, i === 0, ff);
}

/** Whether `cond` having the value `edge` implies `... == PCI_P2PDMA_MAP_BUS_ADDR`. */
function impliesBusAddr(cond: AstNode, edge: boolean, ff: FileFacts): boolean {
  const u = unwrap(cond);
  if (u.type === 'unary_expression' && u.op === '!') {
    const a = field(u, 'argument') ?? u.children[0];
    return !!a && impliesBusAddr(a, !edge, ff);
  }
  if (u.type === 'call_expression' && /^(likely|unlikely)$/.test(ff.t(field(u, 'function') ?? u))) {
    const a = field(u, 'arguments')?.children[0];
    return !!a && impliesBusAddr(a, edge, ff);
  }
  if (u.type !== 'binary_expression') return false;
  const l = field(u, 'left');
  const r = field(u, 'right');
  if (!l || !r) return false;
  if (u.op === '&&') return edge && (impliesBusAddr(l, true, ff) || impliesBusAddr(r, true, ff));
  if (u.op === '||') return !edge && (impliesBusAddr(l, false, ff) || impliesBusAddr(r, false, ff));
  if ((u.op === '==' || u.op === '!=') && (norm(l, ff) === BUS_ADDR || norm(r, ff) === BUS_ADDR)) return (u.op === '==') === edge;
  return false;
}

/** Keys in `fn` that hold a map type (assigned from pci_p2pdma_map_segment/_state/_map_type). */
function mapTypeKeys(fn: FunctionFacts): Set<string> {
  const out = new Set<string>();
  for (const a of fn.assigns) {
    const c = asCall(a.rhs, fn);
    if (c && MAP_TYPE_FNS.has(c.name)) out.add(objectPath(a.lhs));
  }
  return out;
}

/** Places a value flows to in one function: the assigned places, transitively through copies. */
function flowsTo(start: AstNode, fn: FunctionFacts, ff: FileFacts): { places: Set<string>; sgDma?: AstNode } {
  const places = new Set<string>();
  let sgDma: AstNode | undefined;
  const isSgDmaTarget = (l: AstNode): boolean => {
    const u = unwrap(l);
    if (u.type === 'call_expression') {
      const f = field(u, 'function');
      return !!f && /^sg_dma_address$/.test(ff.t(f));
    }
    if (u.type === 'field_expression') {
      const f = field(u, 'field');
      return !!f && ff.t(f) === 'dma_address';
    }
    return false;
  };
  const visitAssign = (asg: AstNode): void => {
    const l = field(asg, 'left');
    if (!l) return;
    if (isSgDmaTarget(l)) sgDma ??= asg;
    const k = keyOf(l, ff);
    if (k && !places.has(k)) places.add(k);
  };
  // The direct consumer: `x = call`, `sg_dma_address(sg) = call`, `T x = call`.
  let cur: AstNode = start;
  while (cur.parent && (cur.parent.type === 'parenthesized_expression' || cur.parent.type === 'cast_expression' || (cur.parent.type === 'call_expression' && /^cpu_to_le(32|64)$|^lower_32_bits$|^upper_32_bits$/.test(ff.t(field(cur.parent, 'function') ?? cur.parent))) || cur.parent.type === 'argument_list' && /^cpu_to_le(32|64)$/.test(ff.t(field(cur.parent.parent ?? cur.parent, 'function') ?? cur.parent)))) cur = cur.parent;
  const p = cur.parent;
  if (p?.type === 'assignment_expression' && cur.field === 'right') visitAssign(p);
  if (p?.type === 'init_declarator') {
    const id = keyOf(field(p, 'declarator') ?? p, ff);
    if (id) places.add(id);
  }
  // Copies of those places.
  for (let round = 0; round < 3; round++) {
    for (const n of fn.cfg.nodes) {
      if (!n.ast) continue;
      walk(n.ast, (x) => {
        if (x.type !== 'assignment_expression') return;
        const r = field(x, 'right');
        const rk = r ? baseKey(r, ff) : undefined;
        if (rk && places.has(rk)) visitAssign(x);
      });
    }
  }
  return { places, sgDma };
}

export const p2pBusAddrVsIommu: Rule = {
  id: 'P2P-BUS-ADDR-VS-IOMMU',
  family: 'p2pdma',
  severity: 'error',
  summary: 'a raw PCI bus address of p2p memory programmed where only the DMA API (the map type) can say which address the client must use',
  needs: ['pci_p2pmem_virt_to_bus', 'pci_p2pdma_bus_addr_map', ...MAP_TYPE_FNS, 'dma_map_resource'],
  context: ['pci_p2pdma_distance', 'pci_p2pdma_distance_many', 'pci_p2pmem_find', 'pci_p2pmem_find_many', 'pci_p2pdma_enable_store', 'pci_resource_start'],
  check(ctx) {
    const { ff } = ctx;
    let foreign: Map<string, CallFact> | undefined;
    for (const fn of functionsOf(ff)) {
      const mt = mapTypeKeys(fn);
      // (a) bus addresses outside a BUS_ADDR branch
      for (const c of fn.calls) {
        if (c.name !== 'pci_p2pmem_virt_to_bus' && c.name !== 'pci_p2pdma_bus_addr_map') continue;
        const host = enclosingCall(c.node);
        const hostName = host ? ff.t(field(host, 'function') ?? host) : '';
        if (host && isLoggingCall(hostName)) continue;
        if (dominatedByEdge(fn, c.cfgNode, (n, i) => busAddrEdge(n, i, ff))) continue;
        const flow = flowsTo(c.node, fn, ff);
        let why: string | undefined;
        let related: ReturnType<typeof rel>[] = [];
        if (c.name === 'pci_p2pdma_bus_addr_map') {
          why = 'pci_p2pdma_bus_addr_map() is only meant for the PCI_P2PDMA_MAP_BUS_ADDR case, and nothing here proves that the map type is BUS_ADDR';
        } else {
          foreign ??= foreignProviders(ff);
          const provider = keyOf(c.args[0], ff);
          const ev = foreign.get(lastName(provider));
          if (ev) {
            why = `${ff.t(c.args[0])} is a peer of the device that will use the address (see ${ev.name}())`;
            related = [rel(ev.node, `${ff.t(c.args[0])} is chosen or checked as a provider for other devices here`)];
          } else if (flow.sgDma) {
            why = 'the address goes into the DMA address of a scatterlist, which another device will use';
            related = [rel(flow.sgDma, 'stored as the DMA address here')];
          }
        }
        if (!why) continue;
        ctx.report({
          message: `${c.name}() gives the PCI bus address of the p2p memory, which is right only when the path from the client to the provider is PCI_P2PDMA_MAP_BUS_ADDR (one switch, no ACS redirect); ${why}. Through the host bridge the client needs an address from the DMA API (an IOVA when its IOMMU translates), so the write faults in the IOMMU or lands elsewhere. Map the memory with dma_map_sg()/dma_map_sgtable() for the client instead${ctx.atLeast(6, 19) ? ', or switch on pci_p2pdma_map_type()' : ''}.`,
          at: c.node,
          related,
          functionName: fn.info.name,
          events: [callEvent(c, 'program_bus_address', { provider: c.args[0] ? ff.t(c.args[0]) : '', sgDma: !!flow.sgDma })],
        });
      }
      // (c) switch over a map type that lets NOT_SUPPORTED through
      for (const n of fn.cfg.nodes) {
        if (n.kind !== 'switch' || !n.ast) continue;
        const disc = unwrap(n.ast);
        const dc = asCall(disc, fn);
        const k = keyOf(disc, ff);
        if (!(dc && MAP_TYPE_FNS.has(dc.name)) && !(k && mt.has(k))) continue;
        const sw = switchStatementOf(n);
        if (!sw) continue;
        const { labels, hasDefault } = switchCases(sw, ff);
        if (hasDefault || labels.includes(NOT_SUPPORTED)) continue;
        const src = dc ?? fn.calls.find((c) => MAP_TYPE_FNS.has(c.name) && fn.assigns.some((a) => objectPath(a.lhs) === k && asCall(a.rhs, fn) === c));
        ctx.report({
          message: `This switch over the p2p map type has no case for ${NOT_SUPPORTED} and no default: when the client cannot reach the provider at all, execution falls out of the switch and maps the memory as if it were an ordinary page, so the device's DMA fails at the root complex or corrupts whatever answers the address. Add \`default: return -EREMOTEIO;\` (or an explicit NOT_SUPPORTED case that fails).`,
          at: { start: sw.start, end: (field(sw, 'body') ?? sw).start },
          related: src ? [rel(src.node, 'the map type is computed here')] : [],
          functionName: fn.info.name,
          events: [{ op: 'map_type_switch', span: { start: sw.start, end: sw.end }, args: { handles: labels.join(',') } }],
        });
      }
      // (b) dma_map_resource() of a BAR for a peer, on trees that offer the map type
      if (!ctx.atLeast(6, 19)) continue;
      if (fn.calls.some((c) => MAP_TYPE_FNS.has(c.name))) continue;
      for (const c of fn.calls) {
        if (c.name !== 'dma_map_resource' || !c.args[1]) continue;
        if (!barDerived(c.args[1], fn, ff)) continue;
        ctx.report({
          severity: 'info',
          message: `dma_map_resource() of a BAR address always goes through the IOMMU mapping, even when the PCIe switch would route the peer's TLP directly (PCI_P2PDMA_MAP_BUS_ADDR), where the IOVA then matches no BAR window. Review: decide with pci_p2pdma_map_type() first, use the bus address for BUS_ADDR and dma_map_phys(..., DMA_ATTR_MMIO) through the host bridge.`,
          at: c.node,
          functionName: fn.info.name,
          events: [callEvent(c, 'dma_map_resource', { bar: true })],
        });
      }
    }
  },
};

function barDerived(n: AstNode, fn: FunctionFacts, ff: FileFacts, depth = 0): boolean {
  if (/\bpci_resource_start\s*\(/.test(ff.t(n))) return true;
  if (depth > 2) return false;
  const k = baseKey(n, ff);
  if (!k) return false;
  return fn.assigns.some((a) => objectPath(a.lhs) === k && barDerived(a.rhs, fn, ff, depth + 1));
}

// =========================================================================
// P2P-PUBLISH-CONTRACT

const ADD = 'pci_p2pdma_add_resource';
const REG_MAPS: Record<string, 'bar' | 'start'> = {
  pci_iomap: 'bar', pcim_iomap: 'bar', pci_ioremap_bar: 'bar', pci_iomap_range: 'bar', pcim_iomap_range: 'bar',
  ioremap: 'start', devm_ioremap: 'start', ioremap_uc: 'start', ioremap_np: 'start',
};

/** Same-file functions that return the status of a pci_p2pdma_add_resource() they call. */
function addWrappers(ff: FileFacts): Set<string> {
  const out = new Set<string>();
  for (const info of ff.functions.values()) {
    const head = ff.text.slice(info.start, info.nameSpan.start);
    if (/\bvoid\s*$/.test(head.trim()) || /\bvoid\b(?!\s*\*)/.test(head)) continue;
    if (!ff.isInteresting(info)) continue;
    const fn = ff.fn(info.name);
    if (fn && fn.calls.some((c) => c.name === ADD)) out.add(info.name);
  }
  return out;
}

const NONE = 1;
const UNCHECKED = 2;
const OK = 4;
const FAILED = 8;

export const p2pPublishContract: Rule = {
  id: 'P2P-PUBLISH-CONTRACT',
  family: 'p2pdma',
  severity: 'warning',
  summary: 'pci_p2pmem_publish() on a path where pci_p2pdma_add_resource() did not succeed, or of a BAR the driver uses for registers',
  needs: ['pci_p2pmem_publish'],
  context: [ADD, ...Object.keys(REG_MAPS)],
  check(ctx) {
    const { ff } = ctx;
    const wrappers = addWrappers(ff);
    const regBars = registerBars(ff);
    for (const fn of functionsOf(ff)) {
      const publishes = fn.calls.filter((c) => c.name === 'pci_p2pmem_publish' && c.args[1] && !isFalseLiteral(c.args[1], ff));
      if (!publishes.length) continue;
      const isAdd = (c: CallFact) => c.name === ADD || (wrappers.has(c.name) && c.name !== fn.info.name);
      const adds = fn.calls.filter(isAdd);
      // A registration of the whole of a BAR that the file also maps for register access.
      for (const p of publishes) {
        const add = adds.find((a) => a.args[1] && regBars.has(norm(a.args[1], ff)) && wholeBar(a, ff));
        if (!add) continue;
        const reg = regBars.get(norm(add.args[1], ff))!;
        ctx.report({
          message: `This publishes p2p memory registered from the whole of BAR ${ff.t(add.args[1])}, which the driver also maps for register access (${reg.name}()). Published memory is handed to any orchestrator by pci_p2pmem_find(); it must be plain memory without side effects. A peer's DMA into this BAR writes the device's registers. Register only the memory part (a size and an offset past the registers), or do not publish.`,
          at: p.node,
          related: [rel(add.node, 'the whole BAR is registered here'), rel(reg.node, 'the same BAR is mapped for registers here')],
          functionName: fn.info.name,
          events: [callEvent(add, ADD, { whole: true }), callEvent(reg, 'register_bar_map'), callEvent(p, 'pci_p2pmem_publish')],
        });
      }
      if (!adds.length) continue;
      const pending = new Map<string, CallFact>();
      for (const a of fn.assigns) {
        const c = asCall(a.rhs, fn);
        if (c && isAdd(c)) pending.set(objectPath(a.lhs), c);
      }
      const sol = solve<number>(fn.cfg, {
        entry: NONE,
        join: (a, b) => a | b,
        equals: (a, b) => a === b,
        transfer: (node, s) => ((fn.callsAt.get(node.id) ?? []).some(isAdd) ? UNCHECKED : s),
        branch: (node, s, idx) => {
          if (node.kind !== 'cond') return s;
          for (const t of truths(node.ast, idx === 0, (x) => ff.t(x))) {
            const c = asCall(t.node, fn);
            const k = keyOf(t.node, ff);
            if ((c && isAdd(c)) || (k && pending.has(k) && s & UNCHECKED)) return t.truthy ? (s & ~UNCHECKED) | FAILED : (s & ~UNCHECKED) | OK;
          }
          return s;
        },
      });
      for (const p of publishes) {
        const s = sol.before[p.cfgNode];
        if (s === undefined) continue;
        // A path that skips the registration (a loop over BARs that may all be empty) is not judged;
        // publishing before any registration, an ignored result and a failed one are.
        const bad = s === NONE ? NONE : s & (UNCHECKED | FAILED);
        if (!bad) continue;
        const add = adds[0];
        const why =
          bad & FAILED
            ? 'on a path where it failed'
            : bad & UNCHECKED
              ? 'and its result is never checked before this'
              : adds.every((a) => a.node.start > p.node.start)
                ? 'but only after this publish'
                : 'but not on every path to this publish';
        ctx.report({
          message: `pci_p2pmem_publish() runs although ${add.name}() ${add.name === ADD ? '' : '(which registers the p2p memory) '}is called ${why}. Publishing advertises this device's p2p memory to every orchestrator; without a registered resource the flag either does nothing or advertises an empty pool that pci_p2pmem_find() still picks, so peers' allocations fail. Publish only after a successful pci_p2pdma_add_resource().`,
          at: p.node,
          related: adds.map((a) => rel(a.node, 'the memory is registered here')),
          functionName: fn.info.name,
          events: [callEvent(add, ADD, { result: bad & FAILED ? 'failed' : bad & UNCHECKED ? 'unchecked' : 'none' }), callEvent(p, 'pci_p2pmem_publish')],
        });
      }
    }
  },
};

/** BARs the file maps for register access: bar text -> the mapping call. */
function registerBars(ff: FileFacts): Map<string, CallFact> {
  const out = new Map<string, CallFact>();
  for (const fn of functionsOf(ff)) {
    for (const c of fn.calls) {
      const kind = REG_MAPS[c.name];
      if (!kind) continue;
      if (kind === 'bar' && c.args[1]) out.set(norm(c.args[1], ff), c);
      if (kind === 'start' && c.args[0]) {
        const m = /pci_resource_start\s*\(\s*[^,]+,\s*([^)]+?)\s*\)/.exec(ff.t(c.args[0]));
        if (m) out.set(m[1].replace(/\s+/g, ''), c);
      }
    }
  }
  return out;
}

function wholeBar(add: CallFact, ff: FileFacts): boolean {
  const size = add.args[2];
  const off = add.args[3];
  return !!size && !!off && /^0[uUlL]*$/.test(norm(size, ff)) && /^0[uUlL]*$/.test(norm(off, ff));
}

// =========================================================================
// P2P-ALLOC-FREE-MISMATCH

type AllocKind = 'mem' | 'sgl';
interface Alloc {
  fn: FunctionFacts;
  key: string;
  kind: AllocKind;
  call: CallFact;
  pdev: AstNode;
  size: AstNode;
  assign: number;
}

/** Frees and where their device, pointer and size arguments are. */
const FREES: Record<string, { ptr: number; pdev?: number; size?: number; kind: 'mem' | 'sgl' | 'generic' }> = {
  pci_free_p2pmem: { ptr: 1, pdev: 0, size: 2, kind: 'mem' },
  pci_p2pmem_free_sgl: { ptr: 1, pdev: 0, kind: 'sgl' },
  kfree: { ptr: 0, kind: 'generic' },
  kvfree: { ptr: 0, kind: 'generic' },
  kfree_sensitive: { ptr: 0, kind: 'generic' },
  vfree: { ptr: 0, kind: 'generic' },
  devm_kfree: { ptr: 1, kind: 'generic' },
  sgl_free: { ptr: 0, kind: 'generic' },
  sgl_free_order: { ptr: 0, kind: 'generic' },
  sgl_free_n_order: { ptr: 0, kind: 'generic' },
};

export const p2pAllocFreeMismatch: Rule = {
  id: 'P2P-ALLOC-FREE-MISMATCH',
  family: 'p2pdma',
  severity: 'error',
  summary: 'p2p memory freed with another device, another size, or the wrong free function than it was allocated with',
  needs: ['pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl'],
  context: Object.keys(FREES),
  check(ctx) {
    const { ff } = ctx;
    const allocs: Alloc[] = [];
    // Members the file fills with something other than p2p memory.
    const mixedFields = new Set<string>();
    for (const fn of allFunctionsOf(ff)) {
      fn.assigns.forEach((a, i) => {
        if (a.op !== '=') return;
        const key = objectPath(a.lhs);
        const c = asCall(a.rhs, fn);
        if (c && (c.name === 'pci_alloc_p2pmem' || c.name === 'pci_p2pmem_alloc_sgl') && c.args[0]) {
          const size = c.name === 'pci_alloc_p2pmem' ? c.args[1] : c.args[2];
          if (size) allocs.push({ fn, key, kind: c.name === 'pci_alloc_p2pmem' ? 'mem' : 'sgl', call: c, pdev: c.args[0], size, assign: i });
        } else if (key.includes('.') && !isFalseLiteral(a.rhs, ff)) mixedFields.add(key.split('.').pop()!);
      });
    }
    if (!allocs.length) return;
    const copies = fileCopies(ff, allFunctionsOf(ff));
    for (const fn of functionsOf(ff)) {
      const frees = fn.calls.filter((c) => FREES[c.name] && c.args[FREES[c.name].ptr]);
      if (!frees.length) continue;
      const keys = new Set<string>();
      for (const f of frees) {
        const k = keyOf(f.args[FREES[f.name].ptr], ff);
        if (k) keys.add(k);
      }
      const rd = reachingDefs(fn, keys, ff);
      for (const f of frees) {
        const spec = FREES[f.name];
        const k = keyOf(f.args[spec.ptr], ff);
        const defs = k ? rd[f.cfgNode]?.get(k) : undefined;
        if (!k || !defs || !defs.size) continue;
        const cands: Alloc[] = [];
        let unknown = false;
        for (const d of defs) {
          if (d === -1) {
            const fieldName = k.includes('.') ? k.split('.').pop()! : undefined;
            const remote = fieldName && !mixedFields.has(fieldName) ? allocs.filter((a) => a.fn !== fn && a.key.includes('.') && a.key.split('.').pop() === fieldName) : [];
            if (!remote.length) unknown = true;
            cands.push(...remote);
            continue;
          }
          const a = allocs.find((x) => x.fn === fn && x.assign === d);
          if (a) cands.push(a);
          else unknown = true;
        }
        if (unknown || !cands.length) continue;
        const verdicts = cands.map((a) => mismatch(a, f, fn, ff, copies));
        if (verdicts.some((v) => !v)) continue;
        const v = verdicts[0]!;
        const a = cands[0];
        ctx.report({
          message: v.message,
          at: f.node,
          related: [rel(a.call.node, `allocated here with ${a.call.name}(${ff.t(a.pdev)}, …${a.kind === 'mem' ? `, ${ff.t(a.size)}` : ''})`)],
          functionName: fn.info.name,
          events: [
            callEvent(a.call, a.call.name, { size: ff.t(a.size), pdev: ff.t(a.pdev) }),
            callEvent(f, f.name, { mismatch: v.kind, ...(spec.size !== undefined && f.args[spec.size] ? { size: ff.t(f.args[spec.size]) } : {}), ...(spec.pdev !== undefined ? { pdev: ff.t(f.args[spec.pdev]) } : {}), bigger: v.bigger ?? false }),
          ],
        });
      }
    }
  },
};

function mismatch(a: Alloc, f: CallFact, fn: FunctionFacts, ff: FileFacts, copies: ReadonlySet<string>): { kind: string; message: string; bigger?: boolean } | undefined {
  const spec = FREES[f.name];
  const what = a.kind === 'mem' ? 'memory from pci_alloc_p2pmem()' : 'a scatterlist from pci_p2pmem_alloc_sgl()';
  if (spec.kind === 'generic') {
    if (a.kind === 'sgl' && /^k(v)?free/.test(f.name))
      return { kind: 'kfree-sgl', message: `${f.name}() frees only the scatterlist of ${what}: the p2p memory it points to stays allocated in the provider's pool, and its pgmap reference is never dropped, so unbinding the provider hangs. Use pci_p2pmem_free_sgl(${ff.t(a.pdev)}, …).` };
    return { kind: f.name === 'sgl_free' || f.name.startsWith('sgl_free') ? 'sgl-free' : 'kfree-mem', message: `${f.name}() on ${what}: that memory belongs to the provider's gen_pool (ZONE_DEVICE pages in a PCI BAR), not to the ${f.name.startsWith('sgl') ? 'page' : 'slab'} allocator. The kernel WARNs and returns the BAR pages behind the pool's back. Use ${a.kind === 'mem' ? 'pci_free_p2pmem()' : 'pci_p2pmem_free_sgl()'}.` };
  }
  if (spec.kind !== a.kind)
    return { kind: 'wrong-free', message: `${f.name}() on ${what}: the two do not pair (${a.kind === 'mem' ? 'pci_free_p2pmem() goes with pci_alloc_p2pmem()' : 'pci_p2pmem_free_sgl() goes with pci_p2pmem_alloc_sgl()'}).` };
  const fpdev = spec.pdev !== undefined ? f.args[spec.pdev] : undefined;
  if (fpdev && devicesDiffer(a.pdev, a.fn, fpdev, fn, ff, copies))
    return { kind: 'device', message: `${f.name}() returns the memory to ${ff.t(fpdev)}, but it was allocated from ${ff.t(a.pdev)}: the free looks it up in the wrong device's pool (a kernel BUG when the address is not in it, a NULL dereference when that device has no p2p memory at all).` };
  const fsize = spec.size !== undefined ? f.args[spec.size] : undefined;
  if (fsize && a.kind === 'mem' && sizesDiffer(a.size, a.fn, fsize, fn, ff)) {
    const ca = a.size;
    const va = constValue(ca, ff);
    const vf = constValue(fsize, ff);
    const bigger = va !== undefined && vf !== undefined ? vf > va : isBigger(fsize, ca, ff);
    return { kind: 'size', bigger, message: `pci_free_p2pmem() frees ${ff.t(fsize)} bytes of memory allocated as ${ff.t(ca)}: gen_pool_free() clears that many pages in the pool's bitmap, ${bigger ? 'so it also frees the neighbouring allocation (handed out again while still in use) or BUGs when the neighbour is free' : 'so the rest stays allocated forever while the pgmap reference is dropped as if it were all gone'}. Free with the size you allocated.` };
  }
  return undefined;
}

function isBigger(free: AstNode, alloc: AstNode, ff: FileFacts): boolean {
  const t = ff.t(free);
  const ta = norm(alloc, ff);
  return t.replace(/\s+/g, '').includes(ta) && !/\/|>>|-/.test(t);
}

// =========================================================================
// P2P-REF-ERRPATH

const TRYGET = new Set(['percpu_ref_tryget_live_rcu', 'percpu_ref_tryget_live', 'percpu_ref_tryget']);
const REF_PUT = new Set(['percpu_ref_put', 'percpu_ref_put_many']);

interface Held {
  /** Held place -> index of the acquiring call in fn.calls. */
  held: ReadonlyMap<string, number>;
  /** Variables holding an unchecked tryget result -> the acquisition. */
  pending: ReadonlyMap<string, { key: string; acq: number }>;
}

export const p2pRefErrpath: Rule = {
  id: 'P2P-REF-ERRPATH',
  family: 'p2pdma',
  severity: 'error',
  summary: 'a pgmap reference or a p2p page refcount taken in a function is not undone on an error path',
  needs: ['percpu_ref_tryget_live_rcu', 'percpu_ref_tryget_live', 'set_page_count', 'get_dev_pagemap'],
  context: ['percpu_ref_put', 'put_dev_pagemap', 'gen_pool_alloc_owner', 'vm_insert_page'],
  check(ctx) {
    const { ff } = ctx;
    for (const fn of functionsOf(ff)) {
      if (!fn.calls.some((c) => TRYGET.has(c.name) || c.name === 'set_page_count' || c.name === 'get_dev_pagemap')) continue;
      checkRefs(ctx, fn);
    }
  },
};

function checkRefs(ctx: RuleContext, fn: FunctionFacts): void {
  const { ff } = ctx;
  const text = ff.t(fn.info);
  // percpu refs that belong to a pgmap: named so, or the owner a p2p gen_pool hands back.
  const owners = new Set<string>();
  for (const c of fn.calls) if (/^gen_pool_(alloc|free)_owner$|^gen_pool_alloc_algo_owner$/.test(c.name) && c.args.length) {
    const last = unwrap(c.args[c.args.length - 1]);
    const k = keyOf(last.type === 'pointer_expression' && last.op === '&' ? last.children[0] : last, ff);
    if (k) owners.add(k);
  }
  const pgmapRef = (n: AstNode | undefined): string | undefined => {
    if (!n) return undefined;
    const k = keyOf(n, ff);
    if (!k) return undefined;
    return /pgmap|p2p/i.test(k) || owners.has(k) ? k : undefined;
  };
  const p2pContext = owners.size > 0 || /\b(pgmap|p2pdma|pci_alloc_p2pmem|gen_pool_alloc_owner)\b/.test(text);
  const idx = new Map(fn.calls.map((c, i) => [c, i]));
  const dpmKeys = new Set<string>();
  for (const a of fn.assigns) {
    const c = asCall(a.rhs, fn);
    // Only results kept in a local: a member or an out-parameter hands the reference to the caller.
    if (c && c.name === 'get_dev_pagemap' && /^[A-Za-z_]\w*$/.test(a.lhs) && fn.locals.has(a.lhs)) dpmKeys.add(a.lhs);
  }
  const pendingOf = new Map<string, { key: string; acq: number }>();
  for (const a of fn.assigns) {
    const c = asCall(a.rhs, fn);
    const k = c && TRYGET.has(c.name) ? pgmapRef(c.args[0]) : undefined;
    if (c && k) pendingOf.set(objectPath(a.lhs), { key: k, acq: idx.get(c)! });
  }
  const without = (m: ReadonlyMap<string, number>, k: string) => {
    if (!m.has(k)) return m;
    const out = new Map(m);
    out.delete(k);
    return out;
  };
  const sol = solve<Held>(fn.cfg, {
    entry: { held: new Map(), pending: new Map() },
    join: (a, b) => ({ held: new Map([...b.held, ...a.held]), pending: new Map([...b.pending, ...a.pending]) }),
    equals: (a, b) => a.held.size === b.held.size && [...a.held.keys()].every((k) => b.held.has(k)) && a.pending.size === b.pending.size,
    transfer: (node, s) => {
      let held = s.held;
      let pending = s.pending;
      for (const c of fn.callsAt.get(node.id) ?? []) {
        const i = idx.get(c)!;
        if (TRYGET.has(c.name)) {
          const k = pgmapRef(c.args[0]);
          if (!k || node.kind === 'cond') continue;
          const assigned = (fn.assignsAt.get(node.id) ?? []).find((a) => asCall(a.rhs, fn) === c);
          if (assigned) pending = new Map(pending).set(objectPath(assigned.lhs), { key: k, acq: i });
          else held = new Map(held).set(k, i);
        } else if (REF_PUT.has(c.name)) {
          const k = keyOf(c.args[0], ff);
          if (k) held = without(held, k);
        } else if (c.name === 'set_page_count' && c.args[1]) {
          const k = keyOf(c.args[0], ff);
          const v = norm(c.args[1], ff);
          if (k && v === '0') held = without(held, 'page:' + k);
          else if (k && v === '1' && p2pContext) held = new Map(held).set('page:' + k, i);
        } else if (c.name === 'put_page' || c.name === 'folio_put') {
          const k = keyOf(c.args[0], ff);
          if (k) held = without(held, 'page:' + k);
        } else if (c.name === 'put_dev_pagemap') {
          const k = keyOf(c.args[0], ff);
          if (k) held = without(held, k);
        } else if (!isLoggingCall(c.name) && c.name !== 'get_dev_pagemap') {
          // A get_dev_pagemap() result handed to another function is that function's to put.
          for (const a of c.args) {
            const k = keyOf(a, ff);
            if (k && dpmKeys.has(k)) held = without(held, k);
          }
        }
      }
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const c = asCall(a.rhs, fn);
        if (c && c.name === 'get_dev_pagemap' && dpmKeys.has(l)) held = new Map(held).set(l, idx.get(c)!);
        else if (held.has(l)) held = without(held, l);
        const rk = keyOf(a.rhs, ff);
        if (rk && dpmKeys.has(rk) && held.has(rk)) held = without(held, rk);
        if (pending.has(l) && !(c && TRYGET.has(c.name))) {
          pending = new Map(pending);
          (pending as Map<string, unknown>).delete(l);
        }
      }
      return held === s.held && pending === s.pending ? s : { held, pending };
    },
    branch: (node, s, i) => {
      if (node.kind !== 'cond') return s;
      let held = s.held;
      for (const t of truths(node.ast, i === 0, (x) => ff.t(x))) {
        const c = asCall(t.node, fn);
        if (c && TRYGET.has(c.name)) {
          const k = pgmapRef(c.args[0]);
          if (k && t.truthy) held = new Map(held).set(k, idx.get(c)!);
          continue;
        }
        const k = keyOf(t.node, ff);
        if (!k) continue;
        const p = s.pending.get(k);
        if (p && t.truthy) held = new Map(held).set(p.key, p.acq);
        if (!t.truthy && dpmKeys.has(k)) held = without(held, k);
      }
      return held === s.held ? s : { ...s, held };
    },
  });
  const nz = nonZeroVars(fn, ff);
  const leaks = new Map<number, CfgNode[]>();
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'return' || !isErrorExit(n, nz, ff)) continue;
    const st = sol.after[n.id];
    if (!st) continue;
    for (const acq of st.held.values()) leaks.set(acq, [...(leaks.get(acq) ?? []), n]);
  }
  for (const [acq, exits] of leaks) {
    const c = fn.calls[acq];
    const what =
      c.name === 'set_page_count'
        ? `the page refcount set to 1 here is still 1 when ${exits.length === 1 ? 'this error path returns' : `${exits.length} error paths return`}; the page goes back to the pool with a stale count, and the next allocation of it trips VM_WARN_ON_ONCE_PAGE(page_ref_count(page)). Reset it with set_page_count(page, 0) (not put_page(), which would free the page a second time).`
        : c.name === 'get_dev_pagemap'
          ? `the pgmap reference taken by get_dev_pagemap() here is still held when ${exits.length === 1 ? 'this error path returns' : `${exits.length} error paths return`}: memunmap_pages() waits for it forever when the device goes away. Call put_dev_pagemap() on the way out.`
          : `the pgmap reference taken by ${c.name}() here is still held when ${exits.length === 1 ? 'this error path returns' : `${exits.length} error paths return`}: nothing drops it, so memunmap_pages() waits on the pgmap forever when the provider is unbound. Call percpu_ref_put() before returning the error.`;
    ctx.report({
      message: `In ${fn.info.name}(), ${what}`,
      at: c.node,
      related: exits.map((n) => rel(n.ast ?? c.node, 'returns the error here without undoing it')),
      functionName: fn.info.name,
      events: [callEvent(c, c.name === 'set_page_count' ? 'set_page_count' : c.name === 'get_dev_pagemap' ? 'get_dev_pagemap' : 'percpu_ref_tryget_live'), { op: 'return_error', span: spanOf(exits[0]) }, { op: 'unbind_provider' }],
    });
  }
  // put_page() to undo set_page_count(page, 1) on a failure path.
  for (const c of fn.calls) {
    if (c.name !== 'put_page' && c.name !== 'folio_put') continue;
    const k = keyOf(c.args[0], ff);
    const st = sol.before[c.cfgNode];
    const acq = k ? st?.held.get('page:' + k) : undefined;
    if (acq === undefined || fn.calls[acq].name !== 'set_page_count') continue;
    if (!onlyErrorExitsAfter(fn, c.cfgNode, nz, ff)) continue;
    ctx.report({
      severity: 'warning',
      message: `put_page() here drops the page's only reference on a failure path: the count reaches 0 and the p2pdma page-free callback returns the page to the gen_pool, which this path also frees, so the pool is freed twice (a BUG, or a page handed out twice). Undo set_page_count(page, 1) with set_page_count(page, 0).`,
      at: c.node,
      related: [rel(fn.calls[acq].node, 'the refcount is set here')],
      functionName: fn.info.name,
      events: [callEvent(fn.calls[acq], 'set_page_count'), callEvent(c, 'put_page_undo'), { op: 'gen_pool_free_again' }],
    });
  }
}

function onlyErrorExitsAfter(fn: FunctionFacts, from: number, nz: Array<Set<string> | undefined>, ff: FileFacts): boolean {
  const seen = new Set<number>();
  const stack = [...fn.cfg.nodes[from].succ];
  let any = false;
  while (stack.length) {
    const id = stack.pop()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const n = fn.cfg.nodes[id];
    if (id === fn.cfg.exit) return false;
    if (n.kind === 'return') {
      if (!isErrorExit(n, nz, ff)) return false;
      any = true;
      continue;
    }
    if (n.kind === 'join' && n.pred.length > 1 && !n.label) return false; // back to a loop head or a merge with the success path
    stack.push(...n.succ);
  }
  return any;
}

// =========================================================================
// P2P-DMA-MAP-API

const LEGACY = new Set(['pci_p2pdma_map_sg', 'pci_p2pdma_map_sg_attrs', 'pci_p2pdma_unmap_sg', 'pci_p2pdma_unmap_sg_attrs']);
const MAP_SG = new Set(['dma_map_sg', 'dma_map_sg_attrs', 'ib_dma_map_sg', 'ib_dma_map_sg_attrs']);
const PAGE_SINKS: Record<string, { arg: number; wants: 'page' | 'kva' }> = {
  dma_map_page: { arg: 1, wants: 'page' },
  dma_map_page_attrs: { arg: 1, wants: 'page' },
  ib_dma_map_page: { arg: 1, wants: 'page' },
  dma_map_single: { arg: 1, wants: 'kva' },
  dma_map_single_attrs: { arg: 1, wants: 'kva' },
  ib_dma_map_single: { arg: 1, wants: 'kva' },
};
const RDMA_MAPS = new Set(['ib_dma_map_sg', 'ib_dma_map_sg_attrs', 'ib_dma_map_sgtable_attrs', 'rdma_rw_ctx_init', 'ib_dma_map_page', 'ib_dma_map_single']);

export const p2pDmaMapApi: Rule = {
  id: 'P2P-DMA-MAP-API',
  family: 'p2pdma',
  severity: 'error',
  summary: 'p2p pages mapped with an API that does not handle them (removed pci_p2pdma_map_sg, dma_map_page/single), or dma_map_sg() failure tested with < 0',
  needs: [...LEGACY, 'pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl', 'is_pci_p2pdma_page'],
  context: [...MAP_SG, ...Object.keys(PAGE_SINKS), ...RDMA_MAPS, 'ib_dma_pci_p2p_dma_supported'],
  check(ctx) {
    const { ff } = ctx;
    const rdmaChecked = /\bib_dma_pci_p2p_dma_supported\b/.test(ff.text);
    for (const fn of functionsOf(ff)) {
      // (a) the removed legacy API
      if (ctx.atLeast(6, 0)) {
        for (const c of fn.calls) {
          if (!LEGACY.has(c.name)) continue;
          ctx.report({
            message: `${c.name}() was removed in 6.0: P2PDMA pages now go through the normal ${c.name.includes('unmap') ? 'dma_unmap_sg()/dma_unmap_sgtable()' : 'dma_map_sg()/dma_map_sgtable()'}, which pick the bus address or an IOMMU mapping per segment. Use dma_map_sgtable() (it returns -EREMOTEIO when the peer path is not supported).`,
            at: c.node,
            functionName: fn.info.name,
            events: [callEvent(c, 'legacy_p2pdma_map_sg', { symbol: c.name.endsWith('_attrs') ? c.name : c.name + '_attrs', kernel: `${ctx.version.major}.${ctx.version.minor}` })],
          });
        }
      }
      // (b) dma_map_sg() never returns a negative value
      const sgVars = new Map<string, CallFact>();
      const otherAssigned = new Set<string>();
      for (const a of fn.assigns) {
        const c = asCall(a.rhs, fn);
        const k = objectPath(a.lhs);
        if (c && MAP_SG.has(c.name)) sgVars.set(k, c);
        else if (!isFalseLiteral(a.rhs, ff)) otherAssigned.add(k);
      }
      for (const k of otherAssigned) sgVars.delete(k);
      const judge = (use: AstNode, call: CallFact) => {
        let cur = use;
        while (cur.parent?.type === 'parenthesized_expression' || cur.parent?.type === 'cast_expression') cur = cur.parent;
        const p = cur.parent;
        if (!p || p.type !== 'binary_expression') return;
        const other = cur.field === 'left' ? field(p, 'right') : field(p, 'left');
        if (!other || norm(other, ff) !== '0') return;
        const op = cur.field === 'left' ? p.op : ({ '<': '>', '>': '<', '<=': '>=', '>=': '<=' } as Record<string, string>)[p.op ?? ''];
        if (op !== '<' && op !== '>=') return;
        ctx.report({
          message: `${call.name}() returns the number of mapped entries, or 0 when the mapping fails (for p2p memory also when the path to the provider is not supported); it never returns a negative value, so \`${ff.t(p).replace(/\s+/g, ' ')}\` never sees the failure and the device is programmed with unmapped addresses. Test for 0, or use dma_map_sgtable(), which returns 0 or a negative errno (-EREMOTEIO for an unsupported peer).`,
          at: p,
          related: cur === use && use !== call.node ? [rel(call.node, 'mapped here')] : [],
          functionName: fn.info.name,
          events: [callEvent(call, 'dma_map_sg'), { op: 'map_sg_negative_check', span: { start: p.start, end: p.end } }],
        });
      };
      for (const c of fn.calls) if (MAP_SG.has(c.name)) judge(c.node, c);
      if (sgVars.size) {
        for (const n of fn.cfg.nodes) {
          if (!n.ast || n.kind !== 'cond') continue;
          walk(n.ast, (x) => {
            if (x.type !== 'identifier' && x.type !== 'field_expression') return;
            const k = keyOf(x, ff);
            const call = k ? sgVars.get(k) : undefined;
            if (call) judge(x, call);
            return x.type !== 'identifier';
          });
        }
      }
      // (d) dma_map_page()/dma_map_single() of p2p memory; (e) RDMA without the p2p capability check
      const vals = p2pValuesOf(fn, ff);
      for (const c of fn.calls) {
        const sink = PAGE_SINKS[c.name];
        if (sink && c.args[sink.arg]) {
          const arg = c.args[sink.arg];
          const v = p2pKindOf(arg, vals, fn, ff);
          let why: string | undefined;
          let src: CallFact | undefined;
          if (v && (v.kind === sink.wants || (sink.wants === 'page' && v.kind === 'kva'))) {
            why = `${ff.t(arg)} is p2p memory from ${v.src.name}()`;
            src = v.src;
          } else {
            const text = norm(arg, ff);
            const guard = dominatedByEdge(fn, c.cfgNode, (n, i) =>
              n.kind === 'cond' && truths(n.ast, i === 0, (x) => ff.t(x)).some((t) => {
                const g = asCall(t.node, fn);
                return t.truthy && !!g && g.name === 'is_pci_p2pdma_page' && !!g.args[0] && (norm(g.args[0], ff) === text || (sink.wants === 'kva' && `virt_to_page(${text})` === norm(g.args[0], ff)));
              }),
            );
            if (guard) why = `this runs only when is_pci_p2pdma_page() says ${ff.t(arg)} is a p2p page`;
          }
          if (why) {
            ctx.report({
              message: `${c.name}() of a P2PDMA page: ${why}. ${c.name}() knows nothing about peer-to-peer: it maps the BAR's CPU physical address like RAM (no bus offset, an IOMMU mapping with the attributes of RAM, cache maintenance on non-coherent hosts) and never asks whether the client can reach the provider. Map it in a scatterlist with dma_map_sgtable()${ctx.atLeast(6, 19) ? ', or decide with pci_p2pdma_map_type() and use dma_map_phys(..., DMA_ATTR_MMIO)' : ''}.`,
              at: c.node,
              related: src ? [rel(src.node, 'the p2p memory comes from here')] : [],
              functionName: fn.info.name,
              events: [...(src ? [callEvent(src, src.name)] : []), callEvent(c, 'dma_map_page_p2p', { via: c.name })],
            });
          }
        }
        if (RDMA_MAPS.has(c.name) && !rdmaChecked && ctx.atLeast(6, 0)) {
          const mem = c.args.map((a) => p2pKindOf(a, vals, fn, ff)).find((x) => x);
          if (mem) {
            ctx.report({
              severity: 'warning',
              message: `${c.name}() maps p2p memory from ${mem.src.name}() for an RDMA device, but nothing in this file checks ib_dma_pci_p2p_dma_supported(): software RDMA devices (rxe, siw) use virtual DMA ops and would copy the data with the CPU from the MMIO mapping, and devices behind dma_map_ops cannot map P2P pages (dma_pci_p2pdma_supported() is false). Check ib_dma_pci_p2p_dma_supported(ibdev) before offering p2p memory to the device.`,
              at: c.node,
              related: [rel(mem.src.node, 'the p2p memory comes from here')],
              functionName: fn.info.name,
              events: [callEvent(mem.src, mem.src.name), callEvent(c, 'rdma_map_p2p', { checked: false })],
            });
          }
        }
      }
    }
  },
};

// =========================================================================
// P2P-ACS-TAMPER

const CONFIG_WRITES = new Set(['pci_write_config_word', 'pci_write_config_dword', 'pci_write_config_byte', 'pci_bus_write_config_word', 'pci_bus_write_config_dword', 'pci_user_write_config_word', 'pci_user_write_config_dword']);
const REDIRECT_BITS = /\bPCI_ACS_(RR|CR|EC)\b/;

/** A file of the PCI core (drivers/pci/ and its controllers), recognised by its private header. */
function isPciCore(ff: FileFacts): boolean {
  return /#\s*include\s+"(\.\.\/)*pci\.h"/.test(ff.text) || ff.functions.has('pci_p2pdma_distance_many') || ff.functions.has('pci_enable_acs');
}

export const p2pAcsTamper: Rule = {
  id: 'P2P-ACS-TAMPER',
  family: 'p2pdma',
  severity: 'info',
  summary: 'a driver rewrites ACS control, hides the ACS capability or keeps its own peer-to-peer allowlist, bypassing the kernel\'s routing decision',
  needs: ['PCI_ACS_CTRL', 'acs_cap', 'pci_p2pdma_distance', 'pci_p2pdma_distance_many', 'pci_p2pmem_find', 'pci_p2pmem_find_many', 'pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl'],
  context: [...CONFIG_WRITES],
  check(ctx) {
    const { ff } = ctx;
    const core = isPciCore(ff);
    for (const fn of functionsOf(ff)) {
      for (const c of fn.calls) {
        if (!CONFIG_WRITES.has(c.name) || c.args.length < 3) continue;
        const where = ff.t(c.args[c.args.length - 2]);
        if (!/\bPCI_ACS_CTRL\b/.test(where) && !(/\bPCI_ACS_CAP\b/.test(where) && /dword/.test(c.name))) continue;
        const value = c.args[c.args.length - 1];
        const clears = clearsRedirect(value, c, fn, ff);
        if (core && !clears) continue;
        ctx.report({
          severity: core ? 'info' : 'warning',
          message: core
            ? `ACS redirect bits are cleared here: peer traffic below this bridge will bypass the IOMMU. In the PCI core this is policy (the disable_acs_redir=/config_acs= parameters); review that it runs only when the administrator asked for it.`
            : `This driver writes the ACS control register${clears ? ' and clears the redirect bits' : ''}. ACS redirect is what sends peer traffic up to the root complex and the IOMMU; the kernel decides it (pci_enable_acs(), the pci=disable_acs_redir= and config_acs= parameters) and pci_p2pdma_distance() reports the result. Rewriting it behind the kernel's back breaks the isolation between IOMMU groups (a device assigned to a VM can reach a host device's BAR) and makes the kernel's P2P decisions wrong. Leave ACS alone; ask the administrator to use the kernel parameter.`,
          at: c.node,
          functionName: fn.info.name,
          events: [callEvent(c, 'acs_write', { clearsRedirect: clears || !core })],
        });
      }
      if (core) continue;
      for (const a of fn.assigns) {
        if (!/(^|\.)acs_cap$/.test(objectPath(a.lhs))) continue;
        ctx.report({
          severity: 'warning',
          message: `Overwriting ${ff.t(a.lhsNode)} hides the ACS capability from the PCI core: pci_bridge_has_acs_redir() then reports no redirect and the p2pdma code routes peer traffic as if nothing isolated the devices. Drivers must not change the kernel's ACS view.`,
          at: a.lhsNode.parent ?? a.lhsNode,
          functionName: fn.info.name,
          events: [{ op: 'acs_write', span: { start: a.lhsNode.start, end: a.rhs.end }, args: { clearsRedirect: true, hidesCap: true } }],
        });
      }
    }
    if (core) return;
    // Driver-local allowlists of peer-to-peer capable hardware.
    for (const init of ff.initializers) {
      if (!/p2p\w*(white|allow)_?list|(white|allow)_?list\w*p2p/i.test(init.name)) continue;
      ctx.report({
        severity: 'warning',
        message: `${init.name} is a driver-local peer-to-peer allowlist: the kernel already decides which host bridges and paths can carry P2P (pci_p2pdma_whitelist[], ACS, pci_p2pdma_distance()). A private list disagrees with it on other machines and skips the ACS check. Ask pci_p2pdma_distance() instead, and propose additions to the kernel's list.`,
        at: init.node,
        events: [{ op: 'private_allowlist', span: { start: init.node.start, end: init.node.end } }],
      });
    }
  },
};

/** Whether the value written clears ACS redirect bits: `ctrl & ~(PCI_ACS_RR | ...)`, or a variable masked that way. */
function clearsRedirect(value: AstNode, at: CallFact, fn: FunctionFacts, ff: FileFacts): boolean {
  const t = ff.t(value);
  if (/~/.test(t) && REDIRECT_BITS.test(t)) return true;
  if (/^0[xX]?0*[uUlL]*$/.test(norm(value, ff))) return true;
  const k = keyOf(value, ff);
  if (!k) return false;
  return fn.assigns.some((a) => objectPath(a.lhs) === k && a.rhs.end <= at.node.start && ((a.op === '&=' && /~/.test(ff.t(a.rhs)) && REDIRECT_BITS.test(ff.t(a.rhs))) || (a.op === '=' && /~/.test(ff.t(a.rhs)) && REDIRECT_BITS.test(ff.t(a.rhs)))));
}

export const p2pMoreRules: Rule[] = [p2pBusAddrVsIommu, p2pPublishContract, p2pAllocFreeMismatch, p2pRefErrpath, p2pDmaMapApi, p2pAcsTamper];

