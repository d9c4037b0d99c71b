/**
 * GUP rules: GUP-DEVICE-MEMORY, GUP-P2PDMA-CPU-ACCESS, GUP-FOLLOW-PFN.
 *
 * Checked against mm/gup.c (6.12): is_valid_gup_args() WARNs and fails
 * FOLL_LONGTERM together with FOLL_PCI_P2PDMA ("We want to allow the pgmap
 * to be hot-unplugged at all times"); try_grab_folio()/try_grab_folio_fast()
 * refuse P2PDMA pages without FOLL_PCI_P2PDMA (-EREMOTEIO); check_vma_flags()
 * refuses VM_IO|VM_PFNMAP mappings (-EFAULT). lib/iov_iter.c turns
 * ITER_ALLOW_P2PDMA into FOLL_PCI_P2PDMA. mm/memory.c: follow_pfnmap_start()
 * results are valid only until follow_pfnmap_end().
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import { type Rule, type RuleContext, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';
import { functionsMentioning, objectOf, reaches } from './common';

/** GUP entry points: index of the flags and of the pages argument. */
export const GUP_CALLS: Record<string, { flags: number; pages: number }> = {
  get_user_pages: { flags: 2, pages: 3 },
  pin_user_pages: { flags: 2, pages: 3 },
  get_user_pages_fast: { flags: 2, pages: 3 },
  pin_user_pages_fast: { flags: 2, pages: 3 },
  get_user_pages_fast_only: { flags: 2, pages: 3 },
  get_user_pages_unlocked: { flags: 3, pages: 2 },
  pin_user_pages_unlocked: { flags: 3, pages: 2 },
  get_user_pages_remote: { flags: 3, pages: 4 },
  pin_user_pages_remote: { flags: 3, pages: 4 },
  iov_iter_extract_pages: { flags: 4, pages: 1 },
};
const GUP_RE = new RegExp(`\\b(?:${Object.keys(GUP_CALLS).join('|')})\\s*\\(`);

// ------------------------------------------------------------ flag values

/** Possible values of a flags expression, each a set of flag names ('?' = something unknown). */
type Combos = string[][];

function combine(a: Combos, b: Combos): Combos {
  const out: Combos = [];
  for (const x of a) for (const y of b) out.push([...new Set([...x, ...y])].sort());
  return dedupe(out);
}

function dedupe(c: Combos): Combos {
  const seen = new Map<string, string[]>();
  for (const x of c) seen.set(x.join('|'), x);
  return [...seen.values()].slice(0, 16);
}

const FLAG_WORD = /^(FOLL_\w+|ITER_ALLOW_P2PDMA)$/;

function combosOf(n: AstNode | undefined, vars: ReadonlyMap<string, Combos>, ff: FileFacts): Combos {
  if (!n) return [['?']];
  const u = unwrap(n);
  const t = ff.t(u).trim();
  if (u.type === 'identifier') {
    if (FLAG_WORD.test(t)) return [[t]];
    return vars.get(t) ?? [['?']];
  }
  if (u.type === 'number_literal') return t === '0' ? [[]] : [['?']];
  if (u.type === 'binary_expression' && u.op === '|') return combine(combosOf(field(u, 'left'), vars, ff), combosOf(field(u, 'right'), vars, ff));
  if (u.type === 'conditional_expression') {
    const kids = u.children.filter((c) => c.field !== 'condition');
    return dedupe(kids.flatMap((k) => combosOf(k, vars, ff)));
  }
  return [['?']];
}

/** Flag variables of a function and their possible values at each point. */
function flagValues(fn: FunctionFacts, ff: FileFacts): { at(node: number): ReadonlyMap<string, Combos> } {
  const flagVars = new Set<string>();
  for (const a of fn.assigns) if (/\b(FOLL_\w+|ITER_ALLOW_P2PDMA)\b/.test(ff.t(a.rhs)) && !a.lhs.includes('[')) flagVars.add(objectPath(a.lhs));
  if (!flagVars.size) return { at: () => new Map() };
  type S = ReadonlyMap<string, Combos>;
  const sol = solve<S>(fn.cfg, {
    entry: new Map(),
    join: (a, b) => {
      const m = new Map(a);
      for (const [k, v] of b) m.set(k, dedupe([...(m.get(k) ?? [['?']]), ...v]));
      for (const [k, v] of a) if (!b.has(k)) m.set(k, dedupe([...v, ['?']]));
      return m;
    },
    equals: (a, b) => a.size === b.size && [...a].every(([k, v]) => b.get(k)?.length === v.length),
    transfer: (node, s) => {
      let m: Map<string, Combos> | undefined;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        if (!flagVars.has(l)) continue;
        const cur = m ?? s;
        const rhs = combosOf(a.rhs, cur, ff);
        let v: Combos;
        if (a.op === '=') v = rhs;
        else if (a.op === '|=') v = combine(cur.get(l) ?? [['?']], rhs);
        else if (a.op === '&=') {
          const drop = /~\s*\(?\s*(FOLL_\w+|ITER_ALLOW_P2PDMA)/.exec(ff.t(a.rhs));
          v = (cur.get(l) ?? [['?']]).map((x) => x.filter((y) => !drop || y !== drop[1]));
        } else v = [['?']];
        (m ??= new Map(s)).set(l, v);
      }
      return m ?? s;
    },
  });
  return { at: (node) => sol.before[node] ?? new Map() };
}

export interface GupCall {
  fn: FunctionFacts;
  call: CallFact;
  combos: Combos;
  flagsArg?: AstNode;
}

export function gupCalls(ctx: RuleContext): GupCall[] {
  return ctx.shared('hmm.gup', () => {
    const out: GupCall[] = [];
    for (const fn of functionsMentioning(ctx.ff, GUP_RE)) {
      const fv = flagValues(fn, ctx.ff);
      for (const c of fn.calls) {
        const spec = GUP_CALLS[c.name];
        if (!spec) continue;
        const arg = c.args[spec.flags];
        out.push({ fn, call: c, flagsArg: arg, combos: combosOf(arg, fv.at(c.cfgNode), ctx.ff) });
      }
    }
    return out;
  });
}

const has = (combo: string[], f: string) => combo.includes(f);

// ------------------------------------------------------------ GUP-DEVICE-MEMORY

const DEVICE_NAME = /(vram|devmem|dev_mem|device_mem|gpu_?va|bar_?(addr|va|base)|mmio)/i;

export const gupDeviceMemory: Rule = {
  id: 'GUP-DEVICE-MEMORY',
  family: 'hmm',
  severity: 'warning',
  summary: 'GUP/pin asked to return or keep device memory: FOLL_LONGTERM with FOLL_PCI_P2PDMA, or a long-term pin of what the code calls device memory',
  needs: ['FOLL_LONGTERM'],
  check(ctx) {
    const { ff } = ctx;
    for (const g of gupCalls(ctx)) {
      const both = g.combos.find((c) => has(c, 'FOLL_LONGTERM') && has(c, 'FOLL_PCI_P2PDMA'));
      if (both) {
        ctx.report({
          severity: 'error',
          message: `${g.call.name}() is asked for FOLL_LONGTERM together with FOLL_PCI_P2PDMA${g.combos.length > 1 ? ' on some paths' : ''}: the core refuses the pair (is_valid_gup_args() WARNs and the call fails with -EINVAL), because P2PDMA pages must stay unpluggable. Drop FOLL_LONGTERM, or import the peer memory as a dma-buf.`,
          at: g.call.node,
          related: g.flagsArg ? [rel(g.flagsArg, 'the flags')] : [],
          functionName: g.fn.info.name,
          events: [callEvent(g.call, 'gup', { flags: 'FOLL_LONGTERM|FOLL_PCI_P2PDMA' })],
        });
        continue;
      }
      if (!g.combos.some((c) => has(c, 'FOLL_LONGTERM'))) continue;
      const start = g.call.args[g.call.name.endsWith('_remote') ? 1 : 0];
      if (!start || g.call.name === 'iov_iter_extract_pages') continue;
      const m = DEVICE_NAME.exec(ff.t(start));
      if (!m) continue;
      ctx.report({
        severity: 'info',
        message: `${g.call.name}(FOLL_LONGTERM) is given ${ff.t(start).trim()}, which by its name is device memory: GUP never returns device memory to pin. A VM_IO/VM_PFNMAP mapping of a BAR fails with -EFAULT, and device-private pages are migrated back to system RAM first (so the pin holds a copy, not the device memory). Import device memory as a dma-buf, or mirror it with hmm_range_fault() and an mmu_interval_notifier.`,
        at: g.call.node,
        functionName: g.fn.info.name,
        events: [callEvent(g.call, 'gup', { flags: 'FOLL_LONGTERM', target: 'bar' })],
      });
    }
  },
};

// ------------------------------------------------------------ GUP-P2PDMA-CPU-ACCESS

/** CPU accessors of a page: name -> indexes of page (or folio) arguments. */
const CPU_SINKS: Record<string, number[]> = {
  kmap: [0],
  kmap_local_page: [0],
  kmap_atomic: [0],
  kmap_local_folio: [0],
  page_address: [0],
  folio_address: [0],
  memcpy_to_page: [0],
  memcpy_from_page: [1],
  memcpy_page: [0, 2],
  memzero_page: [0],
  zero_user: [0],
  zero_user_segment: [0],
  zero_user_segments: [0],
  copy_page_to_iter: [0],
  copy_page_from_iter: [0],
  copy_page_from_iter_atomic: [0],
  copy_highpage: [0, 1],
  clear_highpage: [0],
  memcpy_from_folio: [1],
  memcpy_to_folio: [0],
  folio_zero_range: [0],
  folio_zero_segment: [0],
};
const DERIVE = new Set(['page_folio', 'nth_page', 'compound_head', 'folio_page']);
const P2P_GUARDS = new Set(['is_pci_p2pdma_page']);

interface TaintState {
  tainted: ReadonlyMap<string, CallFact>;
  clean: ReadonlySet<string>;
}

const rootArray = (k: string) => k.replace(/^[&*]+/, '').replace(/(\[[^\]]*\])+$/, '');

/** CPU sinks reached by pages from the seeds in `fn`: sink call, the tainted argument, its source. */
function cpuSinks(fn: FunctionFacts, seeds: Map<string, CallFact>, fromNode: number | undefined, ff: FileFacts, depth = 0, sinks: Record<string, number[]> = CPU_SINKS): Array<{ sink: CallFact; src: CallFact; via?: { fn: string; sink: CallFact } }> {
  const lookup = (s: TaintState, n: AstNode | undefined): CallFact | undefined => {
    if (!n) return undefined;
    let u = unwrap(n);
    const c = asCall(u, fn);
    if (c && DERIVE.has(c.name)) u = unwrap(c.args[0] ?? u);
    const k = keyOf(u, ff);
    if (!k) return undefined;
    const plain = k.replace(/^[&]+/, '');
    if (s.clean.has(plain)) return undefined;
    return s.tainted.get(plain) ?? s.tainted.get(rootArray(plain));
  };
  const seedAt = fromNode;
  const sol = solve<TaintState>(fn.cfg, {
    entry: { tainted: seedAt === undefined ? seeds : new Map(), clean: new Set() },
    join: (a, b) => {
      const t = new Map(a.tainted);
      for (const [k, v] of b.tainted) if (!t.has(k)) t.set(k, v);
      return { tainted: t, clean: new Set([...a.clean].filter((x) => b.clean.has(x))) };
    },
    equals: (a, b) => a.tainted.size === b.tainted.size && a.clean.size === b.clean.size,
    transfer: (node, s) => {
      let cur = s;
      if (seedAt !== undefined && node.id === seedAt) {
        const t = new Map(cur.tainted);
        for (const [k, v] of seeds) t.set(k, v);
        cur = { ...cur, tainted: t };
      }
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        if (a.op !== '=') continue;
        const l = objectPath(a.lhs);
        const src = lookup(cur, a.rhs);
        const t = new Map(cur.tainted);
        const clean = new Set(cur.clean);
        clean.delete(l);
        if (src) t.set(l, src);
        else t.delete(l);
        cur = { tainted: t, clean };
      }
      return cur;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond') return s;
      let clean: Set<string> | undefined;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const c = asCall(tr.node, fn);
        if (!c || !P2P_GUARDS.has(c.name) || tr.truthy) continue;
        const k = keyOf(c.args[0], ff);
        if (k) (clean ??= new Set(s.clean)).add(k);
      }
      return clean ? { ...s, clean } : s;
    },
  });
  const out: Array<{ sink: CallFact; src: CallFact; via?: { fn: string; sink: CallFact } }> = [];
  for (const c of fn.calls) {
    let s = sol.before[c.cfgNode];
    if (!s) continue;
    if (seedAt !== undefined && c.cfgNode === seedAt) continue;
    const idxs = sinks[c.name];
    if (idxs) {
      for (const i of idxs) {
        const src = lookup(s, c.args[i]);
        if (src) {
          out.push({ sink: c, src });
          break;
        }
      }
      continue;
    }
    // One level into helpers of this file.
    if (depth < 2 && ff.functions.has(c.name) && c.name !== fn.info.name) {
      const g = ff.fn(c.name);
      if (!g) continue;
      c.args.forEach((arg, i) => {
        const src = lookup(s!, arg);
        const p = g.info.params[i];
        if (!src || !p) return;
        const inner = cpuSinks(g, new Map([[p.name, src]]), undefined, ff, depth + 1, sinks);
        if (inner.length) out.push({ sink: c, src, via: { fn: g.info.name, sink: inner[0].via?.sink ?? inner[0].sink } });
      });
    }
    s = undefined;
  }
  return out;
}

const QUEUE_CHECK = /\b(blk_queue_pci_p2pdma|\w*p2pdma\w*supported|\w*p2p_dma_supported|pci_p2pdma_distance\w*)\s*\(/;
/** bio builders: index of the page (or folio) argument. */
const BIO_USE: Record<string, number[]> = { bio_add_page: [1], __bio_add_page: [1], bio_add_pc_page: [2], bio_add_hw_page: [2], bio_add_folio: [1], __bio_add_folio: [1] };

export const gupP2pdmaCpuAccess: Rule = {
  id: 'GUP-P2PDMA-CPU-ACCESS',
  family: 'hmm',
  severity: 'error',
  summary: 'pages pinned with FOLL_PCI_P2PDMA (or ITER_ALLOW_P2PDMA) touched by the CPU, or put in a bio for an unchecked queue',
  since: { major: 6, minor: 2 },
  needs: ['FOLL_PCI_P2PDMA', 'ITER_ALLOW_P2PDMA'],
  check(ctx) {
    const { ff } = ctx;
    const newer = ctx.atLeast(6, 19);
    for (const g of gupCalls(ctx)) {
      const flag = g.call.name === 'iov_iter_extract_pages' ? 'ITER_ALLOW_P2PDMA' : 'FOLL_PCI_P2PDMA';
      if (!g.combos.some((c) => has(c, flag))) continue;
      const spec = GUP_CALLS[g.call.name];
      const pages = objectOf(g.call.args[spec.pages], ff);
      if (!pages) continue;
      const optIn = g.flagsArg ? [rel(g.flagsArg, `${flag}: P2PDMA pages may come back`)] : [];
      const gupEv = callEvent(g.call, 'gup', { flags: flag });
      for (const hit of cpuSinks(g.fn, new Map([[pages, g.call]]), g.call.cfgNode, ff)) {
        ctx.report({
          severity: newer ? undefined : 'warning',
          message: `${hit.via ? `${hit.via.fn}() (called here) passes` : 'Here'} a page pinned with ${flag} ${hit.via ? 'to ' : 'goes to '}${hit.via ? hit.via.sink.name : hit.sink.name}(): such a page may be PCI peer memory, whose kernel mapping is uncached MMIO. CPU loads, stores and memcpy() on it fault on arm64 (alignment, DC ZVA) and are slow or unsafe elsewhere. Only DMA may touch it; skip the CPU path with is_pci_p2pdma_page(), or do not opt in.`,
          at: hit.sink.node,
          related: [...optIn, ...(hit.via ? [rel(hit.via.sink.node, `${hit.via.fn}() touches the page with the CPU here`)] : [])],
          functionName: g.fn.info.name,
          events: [gupEv, { op: 'cpu_access', span: { start: hit.sink.node.start, end: hit.sink.node.end }, args: { via: hit.via ? hit.via.sink.name : hit.sink.name } }],
        });
      }
      // P2P pages into a bio, with no check that the queue can take them.
      if (QUEUE_CHECK.test(ff.t(g.fn.info))) continue;
      const bio = cpuSinks(g.fn, new Map([[pages, g.call]]), g.call.cfgNode, ff, 1, BIO_USE)[0]?.sink;
      if (!bio) continue;
      ctx.report({
        severity: 'warning',
        message: `Pages pinned with ${flag} go into a bio here, but nothing checks blk_queue_pci_p2pdma() for the queue: a device that cannot reach PCI peer memory (or a driver that maps bvecs without P2P support) then DMAs to a BAR address the fabric does not route. Set the opt-in only when blk_queue_pci_p2pdma(q) is true.`,
        at: g.call.node,
        related: [rel(bio.node, 'the pages are added to a bio here')],
        functionName: g.fn.info.name,
        events: [gupEv, callEvent(bio, 'submit_bio', { queueChecked: false })],
      });
    }
  },
};

// ------------------------------------------------------------ GUP-FOLLOW-PFN

/** Lookups of a PFN behind a user mapping: how their result comes back. */
const FOLLOW: Record<string, { out?: number; window?: 'pte' | 'pfnmap' }> = {
  follow_pfn: { out: 2 },
  unsafe_follow_pfn: { out: 2 },
  follow_phys: { out: 4 },
  follow_pte: { out: 2, window: 'pte' },
  follow_pfnmap_start: { window: 'pfnmap' },
};
const EXCLUDED_PATH = /^(mm|virt\/kvm|drivers\/vfio)\/|^arch\/[^/]+\/mm\//;
const NOTIFIERS = /\b(mmu_notifier_register|__mmu_notifier_register|mmu_notifier_get|mmu_interval_notifier_insert|mmu_interval_notifier_insert_locked)\b/;
const DEVICE_SINK = /^(write[bwlq](_relaxed)?|iowrite(8|16|32|64)(be)?|__raw_write[bwlq]|lo_hi_writeq|hi_lo_writeq|dma_map_\w+|iommu_map\w*|sg_set_page|sg_set_buf|pfn_to_page)$/;

export const gupFollowPfn: Rule = {
  id: 'GUP-FOLLOW-PFN',
  family: 'hmm',
  severity: 'error',
  summary: 'a PFN looked up from a user mapping (follow_pfn/follow_pte/follow_pfnmap_start) given to a device or kept past the lookup',
  needs: Object.keys(FOLLOW),
  check(ctx) {
    const { ff } = ctx;
    if (ff.options.path && EXCLUDED_PATH.test(ff.options.path)) return;
    if (NOTIFIERS.test(ff.text)) return;
    const re = new RegExp(`\\b(?:${Object.keys(FOLLOW).join('|')})\\s*\\(`);
    for (const fn of functionsMentioning(ff, re)) {
      for (const c of fn.calls) {
        const spec = FOLLOW[c.name];
        if (!spec) continue;
        checkFollow(ctx, fn, c, spec);
      }
    }
  },
};

function checkFollow(ctx: RuleContext, fn: FunctionFacts, src: CallFact, spec: { out?: number; window?: 'pte' | 'pfnmap' }): void {
  const { ff } = ctx;
  // The value keys: the out-parameter, `args.pfn`, or `pte_pfn(*ptep)`.
  const base = spec.window === 'pfnmap' ? objectOf(src.args[0], ff) : spec.out !== undefined ? objectOf(src.args[spec.out], ff) : undefined;
  if (!base) return;
  const isSource = (n: AstNode): boolean => {
    let hit = false;
    walk(n, (x) => {
      if (hit) return false;
      const k = keyOf(x, ff)?.replace(/^[&*]+/, '');
      if (spec.window === 'pfnmap' && k === base + '.pfn') hit = true;
      else if (spec.window === 'pte' && x.type === 'call_expression' && /^pte_pfn$/.test(ff.t(field(x, 'function') ?? x)) && ff.t(x).includes(base)) hit = true;
      else if (!spec.window && k === base) hit = true;
      return !hit;
    });
    return hit;
  };
  const after = (n: number) => n !== src.cfgNode && reaches(fn, src.cfgNode, n);
  // A plain variable of this function: a local, or a by-value parameter.
  const isVar = (l: string) => fn.locals.has(l) || fn.info.params.some((p) => p.name === l && !p.type.includes('*'));
  // Locals derived from the looked-up value (through arithmetic and PFN_PHYS-style conversions only).
  const derived = new Set<string>();
  const carriesValue = (n: AstNode): boolean => carries(n);
  let grew = true;
  while (grew) {
    grew = false;
    for (const a of fn.assigns) {
      const l = objectPath(a.lhs);
      if (derived.has(l) || (!after(a.cfgNode) && a.cfgNode !== src.cfgNode) || !isVar(l) || a.lhs.startsWith('*')) continue;
      if (carriesValue(a.rhs)) {
        derived.add(l);
        grew = true;
      }
    }
  }
  // Whether an expression carries the address itself (not a test of it: `pfn_valid(pfn)`, `!pfn`, `pfn == x`).
  function carries(n: AstNode): boolean {
    const u = unwrap(n);
    switch (u.type) {
      case 'identifier':
        return derived.has(ff.t(u)) || isSource(u);
      case 'field_expression':
      case 'subscript_expression':
      case 'pointer_expression':
        return isSource(u) || (u.type === 'pointer_expression' && u.op === '&' ? false : mentionsAny(u, derived, ff) && u.type !== 'field_expression');
      case 'binary_expression':
        if (!/^(\+|-|\||<<|>>|&|\*|\^)$/.test(u.op ?? '')) return false;
        return carries(field(u, 'left') ?? u.children[0]) || carries(field(u, 'right') ?? u.children[1]);
      case 'conditional_expression':
        return u.children.filter((c) => c.field !== 'condition').some(carries);
      case 'call_expression':
        if (isPureTransform(u, ff)) return (field(u, 'arguments')?.children ?? []).some(carries);
        return /^pte_pfn$/.test(ff.t(field(u, 'function') ?? u)) && isSource(u);
      default:
        return false;
    }
  }
  const lookup = callEvent(src, 'follow_pfn', { api: src.name });
  // Device sinks.
  for (const c of fn.calls) {
    if (!after(c.cfgNode) || !DEVICE_SINK.test(c.name) || c === src) continue;
    if (c.name === 'pfn_to_page') continue;
    const valueArgs = /^(write|iowrite|__raw_write|lo_hi_write|hi_lo_write)/.test(c.name) ? c.args.slice(0, 1) : c.args;
    if (!valueArgs.some(carries)) continue;
    ctx.report({
      message: `${c.name}() is given an address from ${src.name}() on a user mapping: nothing holds that PFN once the lookup ends. The owner of the mapping (a GPU driver moving a buffer, munmap(), a BAR reassignment) can revoke it at any time, and the device keeps writing wherever it now points. Import the memory as a dma-buf, whose exporter revokes it through move_notify.`,
      at: c.node,
      related: [rel(src.node, 'the PFN is looked up here')],
      functionName: fn.info.name,
      events: [lookup, callEvent(c, 'device_program', { sink: /^dma_map|iommu_map/.test(c.name) ? 'dma_map_resource' : 'register' })],
    });
    return;
  }
  // Escapes: stored in an object, written through an out-parameter, returned.
  for (const a of fn.assigns) {
    if (!after(a.cfgNode) && a.cfgNode !== src.cfgNode) continue;
    const l = objectPath(a.lhs);
    if ((isVar(l) && !a.lhs.startsWith('*')) || l === base || l.startsWith(base + '.')) continue;
    if (!carries(a.rhs)) continue;
    ctx.report({
      severity: 'warning',
      message: `The PFN from ${src.name}() is kept in ${ff.t(a.lhsNode)}, beyond the lookup${spec.window === 'pfnmap' ? ' (follow_pfnmap_end() ends its validity)' : spec.window === 'pte' ? ' (the PTE lock protects it only until pte_unmap_unlock())' : ' (follow_pfn() takes no reference and no lock at all)'}: nothing ties it to the mapping, which its owner can zap or move at any time, and whoever uses it later (a device, a hypervisor) reaches whatever the address holds by then. Without an mmu notifier to revoke it, import the memory as a dma-buf instead.`,
      at: a.lhsNode.parent ?? a.lhsNode,
      related: [rel(src.node, 'the PFN is looked up here')],
      functionName: fn.info.name,
      events: [lookup, { op: 'device_program', span: { start: a.lhsNode.start, end: a.rhs.end }, args: { sink: 'escape' } }],
    });
    return;
  }
  // Handed to a function that keeps it (another file's, or one of this file that stores it).
  for (const c of fn.calls) {
    if (!after(c.cfgNode) || c === src || KEEPS_NOTHING.test(c.name) || CPU_MMIO.test(c.name) || DEVICE_SINK.test(c.name) || c.name in FOLLOW) continue;
    const i = c.args.findIndex((x) => carries(x));
    if (i < 0) continue;
    if (ff.functions.has(c.name) && !storesParam(ff, c.name, i)) continue;
    ctx.report({
      severity: 'warning',
      message: `The PFN from ${src.name}() on a user mapping is handed to ${c.name}()${ff.functions.has(c.name) ? ', which keeps it' : ''}, beyond the lookup: nothing ties it to the mapping, which its owner can zap or move at any time, so whoever uses it later (a device, a hypervisor) reaches whatever the address holds by then. Without an mmu notifier to revoke it, import the memory as a dma-buf instead.`,
      at: c.node,
      related: [rel(src.node, 'the PFN is looked up here')],
      functionName: fn.info.name,
      events: [lookup, { op: 'device_program', span: { start: c.node.start, end: c.node.end }, args: { sink: 'escape' } }],
    });
    return;
  }
  for (const n of fn.cfg.nodes) {
    if (n.kind !== 'return' || !after(n.id) || !n.ast?.children[0]) continue;
    const v = unwrap(n.ast.children[0]);
    if (v.type === 'call_expression' && !isPureTransform(v, ff)) continue;
    if (!carries(v)) continue;
    ctx.report({
      severity: 'warning',
      message: `${fn.info.name}() returns the PFN it got from ${src.name}() on a user mapping: the caller gets an address nothing keeps valid (the mapping's owner can zap, move or revoke it at any time). Import the memory as a dma-buf instead.`,
      at: n.ast,
      related: [rel(src.node, 'the PFN is looked up here')],
      functionName: fn.info.name,
      events: [lookup, { op: 'device_program', span: { start: n.ast.start, end: n.ast.end }, args: { sink: 'escape' } }],
    });
    return;
  }
}

/** Calls that only look at a PFN (or convert it) and keep nothing. */
const KEEPS_NOTHING = /^(pfn_valid|pfn_to_page|page_to_pfn|PageReserved|is_zero_pfn|pfn_t_\w+|PFN_PHYS|PHYS_PFN|__pfn_to_phys|__phys_to_pfn|pfn_to_phys|phys_to_pfn|pr_\w+|dev_\w+|WARN\w*|BUG\w*|min|max|min_t|max_t|follow_pfnmap_end|pte_unmap_unlock|pte_pfn|ptep_get|pte_write|pte_present|pgprot_val|__pgprot|trace_\w+)$/;

/** CPU accesses through an __iomem pointer: the CPU, not a device, uses the address (while the lookup holds it). */
const CPU_MMIO = /^(memcpy_toio|memcpy_fromio|memset_io|read[bwlq](_relaxed)?|ioread(8|16|32|64)(be)?|__raw_read[bwlq]|zpci_memcpy_(to|from)io)$/;

/** `PFN_PHYS(pfn)`, `pfn << PAGE_SHIFT`: the same address in another form. */
function isPureTransform(n: AstNode, ff: FileFacts): boolean {
  const u = unwrap(n);
  if (u.type !== 'call_expression') return false;
  const f = field(u, 'function');
  return !!f && /^(PFN_PHYS|__pfn_to_phys|pfn_to_phys|PHYS_PFN)$/.test(ff.t(f));
}

/** Whether a same-file function stores (or passes on out of the file) its parameter `i`. */
function storesParam(ff: FileFacts, name: string, i: number, depth = 0): boolean {
  const g = ff.fn(name);
  const p = g?.info.params[i]?.name;
  if (!g || !p || depth > 2) return false;
  const names = new Set([p]);
  for (const a of g.assigns) {
    const l = objectPath(a.lhs);
    if (!mentionsAny(a.rhs, names, ff)) continue;
    if (g.locals.has(l) && !a.lhs.startsWith('*')) names.add(l);
    else return true;
  }
  for (const c of g.calls) {
    if (KEEPS_NOTHING.test(c.name)) continue;
    const j = c.args.findIndex((x) => mentionsAny(x, names, ff));
    if (j < 0) continue;
    if (!ff.functions.has(c.name)) return true;
    if (storesParam(ff, c.name, j, depth + 1)) return true;
  }
  return false;
}

function mentionsAny(n: AstNode, names: ReadonlySet<string>, ff: FileFacts): boolean {
  if (!names.size) return false;
  let hit = false;
  walk(n, (x) => {
    if (hit) return false;
    if (x.type === 'identifier' && names.has(ff.t(x))) hit = true;
    return !hit;
  });
  return hit;
}

