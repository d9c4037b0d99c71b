/**
 * PGMAP-RANGE-SOURCE: the physical range of a dev_pagemap must be the kind
 * of address space its type describes.
 *
 * - PRIVATE (and nothing else) wants an unused range from
 *   request_free_mem_region(): there is no memory behind its PFNs.
 * - P2PDMA is the BAR of the providing device.
 * - COHERENT, GENERIC and FS_DAX are memory the CPU maps write-back: a free
 *   range has nothing behind it, and (devm_memremap_pages() kernel-doc) a
 *   device MMIO range is not meant to be mapped as host memory.
 * - pagemap_range() works in subsections (SUBSECTION_SIZE, 2 MiB): a
 *   literal start that is not a multiple of it is a review hint.
 *
 * A device-private pgmap over a BAR is PGMAP-PRIVATE-AS-P2P's finding.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { type AssignFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { type Rule, rel } from '../api';
import { callEvent, keyOf } from '../util';
import { objectsOf, onOnePath } from './more-common';

type Source = 'free' | 'bar' | 'platform';

const FREE_CALLS = /^(request_free_mem_region|devm_request_free_mem_region|alloc_free_mem_region)$/;
const BAR_CALLS = /^(pci_resource_start|pci_resource_end|pci_bus_address)$/;
const PLATFORM_CALLS = /^(platform_get_resource|platform_get_resource_byname|platform_get_mem_or_io)$/;
const OUT_PARAM_PLATFORM = /^(of_address_to_resource|of_reserved_mem_region_to_resource)$/;

const SOURCE_TEXT: Record<Source, string> = {
  free: 'an unused physical range from request_free_mem_region(), which no device and no RAM decodes',
  bar: 'a PCI BAR (device MMIO)',
  platform: 'a platform/DT memory resource (real MMIO or RAM the firmware describes)',
};

/** Where a value comes from, following locals of `fn` a few steps. */
function sourceOf(value: AstNode, fn: FunctionFacts | undefined, ff: FileFacts, depth = 0): { src: Source; at: AstNode } | undefined {
  // Each value is looked at once per depth: the same definitions come up again for every use of a variable.
  const memo = fn ? memoOf(fn) : undefined;
  const key = depth;
  const known = memo?.get(value);
  if (known && key in known) return known[key];
  let hit: { src: Source; at: AstNode } | undefined;
  walk(value, (n) => {
    if (hit) return false;
    if (n.type === 'call_expression') {
      const f = field(n, 'function');
      const name = f ? ff.t(f) : '';
      if (FREE_CALLS.test(name)) hit = { src: 'free', at: n };
      else if (BAR_CALLS.test(name)) hit = { src: 'bar', at: n };
      else if (PLATFORM_CALLS.test(name)) hit = { src: 'platform', at: n };
      return false;
    }
    if ((n.type === 'field_expression' || n.type === 'subscript_expression') && /->\s*resource\s*(\[|$)/.test(ff.t(n))) {
      hit = { src: 'bar', at: n };
      return false;
    }
    if (n.type === 'identifier' && fn && depth < 3) {
      const name = ff.t(n);
      for (const a of definitionsOf(fn).get(name) ?? []) {
        const s = sourceOf(a.rhs, fn, ff, depth + 1);
        if (s) hit = s;
      }
      if (!hit)
        for (const c of fn.calls) {
          if (!OUT_PARAM_PLATFORM.test(c.name)) continue;
          for (const a of c.args) {
            const u = unwrap(a);
            if (u.type === 'pointer_expression' && u.op === '&' && keyOf(u.children[0], ff) === name) hit = { src: 'platform', at: c.node };
          }
        }
    }
    return true;
  });
  if (memo) {
    const entry = known ?? {};
    entry[key] = hit;
    memo.set(value, entry);
  }
  return hit;
}

const sourceMemo = new WeakMap<FunctionFacts, Map<AstNode, Record<number, { src: Source; at: AstNode } | undefined>>>();
function memoOf(fn: FunctionFacts): Map<AstNode, Record<number, { src: Source; at: AstNode } | undefined>> {
  let m = sourceMemo.get(fn);
  if (!m) sourceMemo.set(fn, (m = new Map()));
  return m;
}

const definitions = new WeakMap<FunctionFacts, Map<string, AssignFact[]>>();
/** The plain assignments of `fn` by the name they assign (`x`, and `a.b` for `a->b`), in program order. */
function definitionsOf(fn: FunctionFacts): Map<string, AssignFact[]> {
  let m = definitions.get(fn);
  if (m) return m;
  m = new Map();
  for (const a of fn.assigns) {
    if (a.op !== '=') continue;
    const p = objectPath(a.lhs);
    for (const k of p === a.lhs ? [a.lhs] : [a.lhs, p]) {
      const list = m.get(k);
      if (list) list.push(a);
      else m.set(k, [a]);
    }
  }
  definitions.set(fn, m);
  return m;
}

export const pgmapRangeSource: Rule = {
  id: 'PGMAP-RANGE-SOURCE',
  family: 'pgmap',
  severity: 'warning',
  summary: 'dev_pagemap range taken from the wrong kind of address space for its type',
  needs: ['MEMORY_DEVICE_PRIVATE', 'MEMORY_DEVICE_COHERENT', 'MEMORY_DEVICE_PCI_P2PDMA', 'MEMORY_DEVICE_GENERIC', 'MEMORY_DEVICE_FS_DAX'],
  context: ['request_free_mem_region', 'devm_request_free_mem_region', 'platform_get_resource', 'pci_resource_start'],
  check(ctx) {
    const { ff } = ctx;
    for (const o of objectsOf(ctx)) {
      const typeWrites = o.writes.filter((w) => w.path === 'type' && /\bMEMORY_DEVICE_\w+/.test(ff.t(w.value)));
      if (!typeWrites.length) continue;
      for (const w of o.writes) {
        let start: AstNode | undefined;
        let at = w.at;
        if (/^ranges?(\[[^\]]*\])?\.start$/.test(w.path)) start = w.value;
        else if (/^ranges?(\[[^\]]*\])?$/.test(w.path)) at = start = designated(w.value, 'start', ff) ?? w.at;
        if (!start || start === w.at) continue;
        const src = sourceOf(start, o.fn, ff);
        const literal = unwrap(start).type === 'number_literal' ? unwrap(start) : undefined;
        if (!src && !literal) continue;
        // The type that applies on this write's path (`if (cpu_coherent) { A } else { B }`).
        const cfgOf = (n: AstNode) => (o.fn ? nodeOf(o.fn, n) : undefined);
        const wn = cfgOf(w.at);
        const tw = typeWrites.filter((t) => {
          const tn = cfgOf(t.at);
          return !o.fn || wn === undefined || tn === undefined || onOnePath(o.fn.cfg, tn, wn);
        });
        const types = new Set(tw.map((t) => /\bMEMORY_DEVICE_\w+/.exec(ff.t(t.value))![0]));
        if (types.size !== 1) continue;
        const type = [...types][0];
        const short = type.replace('MEMORY_DEVICE_', '').replace('PCI_', '');
        const typeAt = tw[0].at;
        const events = [
          { op: 'pgmap_setup', span: { start: at.start, end: at.end }, args: { pgmapType: short, rangeFrom: src?.src ?? 'literal' } },
          ...o.submits.map((c) => callEvent(c, 'memremap_pages', { pgmapType: short })),
          { op: short === 'P2PDMA' ? 'dma_map_page' : 'cpu_access_page', args: { by: short === 'P2PDMA' ? 'peer' : 'cpu' } },
        ];
        if (literal) {
          const v = parseLiteral(ff.t(literal));
          if (v === undefined || v % (2 * 1024 * 1024) === 0) continue;
          ctx.report({
            severity: 'info',
            message: `The pgmap's range starts at ${ff.t(literal)}, which is not a multiple of 2 MiB (SUBSECTION_SIZE): memremap_pages() adds memory in subsections, so this range shares a subsection with whatever lies next to it, and a second pgmap there fails with "Conflicting mapping in same section". Align the range (see memremap_compat_align()).`,
            at,
            functionName: o.fn?.info.name,
            events,
          });
          continue;
        }
        let why: string | undefined;
        if (src!.src === 'free' && type !== 'MEMORY_DEVICE_PRIVATE')
          why = type === 'MEMORY_DEVICE_PCI_P2PDMA'
            ? 'a P2PDMA pgmap describes the BAR of the device that provides the memory: pages over a range nothing decodes give peers a DMA address that answers with Unsupported Request. Register the BAR with pci_p2pdma_add_resource(), which also builds the pci_p2pdma_pagemap the core expects around it'
            : `${short} memory is mapped write-back for the CPU (arch_add_memory()), but nothing backs this range: the first CPU access faults or hits a bus error. Use the range of the real memory`;
        else if (src!.src === 'bar' && (type === 'MEMORY_DEVICE_GENERIC' || type === 'MEMORY_DEVICE_FS_DAX'))
          why = `${short} pages get a write-back kernel mapping as if they were RAM (devm_memremap_pages() expects "a host memory range that could feasibly be treated as System RAM, not a device mmio range"): cached accesses to MMIO lose or reorder writes. Device memory for peers is MEMORY_DEVICE_PCI_P2PDMA (pci_p2pdma_add_resource())`;
        else if (src!.src === 'platform' && type === 'MEMORY_DEVICE_PRIVATE')
          why = 'device-private pages need an unused range: their PFNs only name the device\'s memory and must not alias anything real. A firmware-described resource is real MMIO or RAM, which pagemap_range() refuses ("attempted on ram region") or which the core then mistakes for device memory. Use devm_request_free_mem_region()';
        else if (src!.src === 'platform' && type === 'MEMORY_DEVICE_PCI_P2PDMA')
          why = 'a P2PDMA pgmap must describe a PCI BAR registered through pci_p2pdma_add_resource(); a hand-built one over a platform resource lacks the pci_p2pdma_pagemap the core reads around it (to_p2p_pgmap())';
        if (!why) continue;
        ctx.report({
          message: `This ${type} pgmap's range comes from ${SOURCE_TEXT[src!.src]}: ${why}.`,
          at,
          related: [rel(src!.at, 'the range comes from here'), rel(typeAt, `the pgmap is made ${type} here`)],
          functionName: o.fn?.info.name,
          events,
        });
      }
    }
  },
};

const nodeMemo = new WeakMap<FunctionFacts, Map<AstNode, number | undefined>>();
function nodeOf(fn: FunctionFacts, n: AstNode): number | undefined {
  let m = nodeMemo.get(fn);
  if (!m) nodeMemo.set(fn, (m = new Map()));
  if (m.has(n)) return m.get(n);
  let id: number | undefined;
  for (const c of fn.cfg.nodes)
    if (c.ast && c.ast.start <= n.start && n.end <= c.ast.end && c.kind !== 'join') {
      id = c.id;
      break;
    }
  m.set(n, id);
  return id;
}

function designated(value: AstNode, name: string, ff: FileFacts): AstNode | undefined {
  const u = unwrap(value);
  const list = u.type === 'compound_literal_expression' ? field(u, 'value') : u.type === 'initializer_list' ? u : undefined;
  for (const p of list?.children ?? []) {
    if (p.type !== 'initializer_pair') continue;
    const d = p.children.find((x) => x.field === 'designator');
    if (d && ff.t(d).replace(/^\./, '').trim() === name) return field(p, 'value');
  }
  return undefined;
}

function parseLiteral(s: string): number | undefined {
  const t = s.replace(/[uUlL]+$/, '');
  const v = /^0x/i.test(t) ? parseInt(t, 16) : /^\d+$/.test(t) ? parseInt(t, 10) : NaN;
  return Number.isFinite(v) ? v : undefined;
}

