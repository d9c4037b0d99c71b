/**
 * PCI peer-to-peer DMA rules: P2P-DISTANCE-UNCHECKED, P2P-DISTANCE-BOOL,
 * P2P-SECOND-ALLOCATOR, P2P-CPU-MEMCPY.
 */
import { type AstNode, field, unwrap } from '../../core/ast';
import { type CallFact, commaList, exprKey, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { type Rule, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';

const DISTANCE = new Set(['pci_p2pdma_distance', 'pci_p2pdma_distance_many']);
const FIND = new Set(['pci_p2pmem_find', 'pci_p2pmem_find_many']);
const ALLOC = new Set(['pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl']);

/** Base object of a pointer expression: `p + off`, `(void *)p`, `&p[i]`, `p->buf` stay `p`-rooted keys. */
function baseKey(n: AstNode | undefined, ff: FileFacts): string | undefined {
  return basePlace(n, ff)?.key;
}

/**
 * baseKey's place, and how many dereferences the expression applies to it:
 * keys drop a leading `*` or `&` (`*out` and `out` are both `out`), the level
 * keeps it (`out` 0, `*out` 1, `**out` 2, `&buf` -1).
 */
function basePlace(n: AstNode | undefined, ff: FileFacts): { key: string; level: number } | undefined {
  if (!n) return undefined;
  let u = unwrap(n);
  for (let i = 0; i < 6; i++) {
    if (u.type === 'binary_expression' && (u.op === '+' || u.op === '-')) u = unwrap(field(u, 'left') ?? u);
    else if (u.type === 'pointer_expression' && u.op === '&') {
      const a = u.children[0];
      if (a && a.type === 'subscript_expression') u = unwrap(field(a, 'argument') ?? a);
      else break;
    } else break;
  }
  return placeOf(exprKey(u, ff));
}

/** The object path of a raw key and the dereferences it applies (see basePlace). */
function placeOf(raw: string | undefined): { key: string; level: number } | undefined {
  return raw === undefined ? undefined : { key: objectPath(raw), level: derefs(raw) };
}

/** Dereferences a raw key applies to its object path: `**out` 2, `out` 0, `&buf` -1. */
function derefs(raw: string): number {
  let n = 0;
  for (const ch of raw) {
    if (ch === '*') n++;
    else if (ch === '&') n--;
    else break;
  }
  return n;
}

/**
 * Values that hold p2p memory in a function: local keys, and field names the whole file fills with it.
 * With `levels`, also how many dereferences lead from each key's place to the p2p pointer:
 * `buf = pci_alloc_p2pmem()` gives `buf` 0, `*out = buf` gives `out` 1 (out points at the place that
 * holds the pointer); NaN when the value was loaded from the memory, not a pointer to it (`x = *buf`).
 */
function p2pValues(fn: FunctionFacts, ff: FileFacts, levels?: Map<string, number>): Map<string, CallFact> {
  const vals = new Map<string, CallFact>();
  for (const a of fn.assigns) {
    const c = asCall(a.rhs, fn);
    if (c && (ALLOC.has(c.name) || c.name === 'pci_p2pmem_virt_to_bus' || ff.options.helpers?.[c.name]?.returns === 'p2pmem')) {
      vals.set(objectPath(a.lhs), c);
      levels?.set(objectPath(a.lhs), derefs(a.lhs));
    }
  }
  // Dereferences from the place of `n` to the p2p pointer, when `n` designates that pointer or a place holding it.
  const rest = (n: AstNode | undefined): number => {
    const p = basePlace(n, ff);
    const r = p ? (levels?.get(p.key) ?? 0) - p.level : NaN;
    return r >= 0 ? r : NaN;
  };
  let grew = true;
  while (grew) {
    grew = false;
    for (const a of fn.assigns) {
      const l = objectPath(a.lhs);
      if (vals.has(l)) continue;
      const r = unwrap(a.rhs);
      let src = vals.get(baseKey(r, ff) ?? '');
      let level = src ? rest(r) : NaN;
      const c = asCall(r, fn);
      if (!src && c && (c.name === 'sg_virt' || c.name === 'sg_phys' || c.name === 'sg_dma_address')) {
        src = vals.get(baseKey(c.args[0], ff) ?? '');
        level = rest(c.args[0]) === 0 ? 0 : NaN;
      }
      if (src) {
        vals.set(l, src);
        levels?.set(l, derefs(a.lhs) + level);
        grew = true;
      }
    }
  }
  return vals;
}

// ---------------------------------------------------------------------------

const DMA_MAP = new Set([
  'dma_map_sg', 'dma_map_sg_attrs', 'dma_map_sgtable', 'dma_map_page', 'dma_map_page_attrs', 'dma_map_single',
  'dma_map_resource', 'ib_dma_map_sg', 'ib_dma_map_sgtable_attrs', 'ib_dma_map_page', 'ib_dma_map_single',
  'rdma_rw_ctx_init', 'rdma_rw_ctx_signature_init',
]);
const SELF_USE = new Set([
  'pci_free_p2pmem', 'pci_p2pmem_free_sgl', 'pci_p2pmem_virt_to_bus', 'memcpy_toio', 'memset_io', 'memcpy_fromio',
  'sg_virt', 'sg_phys', 'sg_dma_address', 'sg_dma_len', 'sg_init_table', 'sg_set_buf', 'sg_next', 'kfree',
  'IS_ERR', 'PTR_ERR', 'WARN_ON', 'WARN_ON_ONCE', 'memcpy', 'memset', 'memmove', 'pr_debug', 'dev_dbg', 'dev_err',
  'dev_warn', 'dev_info', 'pr_err', 'pr_info', 'pr_warn',
]);
const DEVICE_LIKE = /(^|[_.>])(dev|pdev|device|client|qp|queue|nic|ib|rdma|peer|ctrl|port|hba|sdev)\w*$/i;

const FOREIGN_LOOKUP = new Set([
  'pci_get_device', 'pci_get_domain_bus_and_slot', 'pci_get_slot', 'pci_get_class', 'pci_get_subsys',
  'pci_get_base_class', 'bus_find_device', 'bus_find_device_by_name',
]);

export const p2pDistanceUnchecked: Rule = {
  id: 'P2P-DISTANCE-UNCHECKED',
  family: 'p2pdma',
  severity: 'error',
  summary: 'p2p memory handed to another device without checking that the path between them supports peer-to-peer',
  needs: [...ALLOC],
  context: [...FOREIGN_LOOKUP, ...DISTANCE, ...FIND],
  check(ctx) {
    const { ff } = ctx;
    // Providers checked anywhere in the file (by the last component of their name), and
    // providers that are some other device looked up on the bus.
    const checked = new Set<string>();
    const foreign = new Map<string, CallFact>();
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      for (const c of fn.calls) if (DISTANCE.has(c.name) && c.args[0]) checked.add(lastName(keyOf(c.args[0], ff)));
      const local = new Map<string, CallFact>();
      for (const a of fn.assigns) {
        const c = asCall(a.rhs, fn);
        if (c && FIND.has(c.name)) checked.add(lastName(objectPath(a.lhs)));
        if (c && FOREIGN_LOOKUP.has(c.name)) local.set(objectPath(a.lhs), c);
      }
      for (const a of fn.assigns) {
        const src = local.get(keyOf(a.rhs, ff) ?? '');
        if (src) local.set(objectPath(a.lhs), src);
      }
      for (const [k, c] of local) foreign.set(k.includes('.') ? '.' + lastName(k) : info.name + ':' + k, c);
    }
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      const vals = p2pValues(fn, ff);
      const allocs = fn.calls.filter((c) => ALLOC.has(c.name) && c.args[0]);
      for (const alloc of allocs) {
        const provider = keyOf(alloc.args[0], ff);
        if (!provider || checked.has(lastName(provider))) continue;
        const lookedUp = foreign.get(info.name + ':' + provider) ?? (provider.includes('.') ? foreign.get('.' + lastName(provider)) : undefined);
        // The memory handed to some other device in this function.
        let handOff: { call: CallFact; other: AstNode } | undefined;
        for (const c of fn.calls) {
          if (SELF_USE.has(c.name) || ALLOC.has(c.name) || DISTANCE.has(c.name)) continue;
          const memArg = c.args.findIndex((a) => !isAddressOf(a) && vals.get(baseKey(a, ff) ?? '') === alloc);
          if (memArg < 0) continue;
          const isMap = DMA_MAP.has(c.name);
          const other = c.args.find((a, i) => {
            if (i === memArg) return false;
            const k = keyOf(a, ff) ?? ff.t(a).replace(/\s+/g, '');
            if (!k || vals.has(baseKey(a, ff) ?? '') || sameDevice(k, provider)) return false;
            return isMap ? i === 0 : DEVICE_LIKE.test(k);
          });
          if (other) {
            handOff = { call: c, other };
            break;
          }
        }
        if (!lookedUp && !handOff) continue;
        const why = handOff
          ? `is handed to ${ff.t(handOff.other)} (by ${handOff.call.name}())`
          : `comes from ${ff.t(alloc.args[0])}, a device looked up with ${lookedUp!.name}()`;
        ctx.report({
          message: `p2p memory from ${ff.t(alloc.args[0])} ${why}, but nothing proves that the PCIe path between the provider and the device that will access it can carry peer-to-peer traffic: no pci_p2pdma_distance() check and no pci_p2pmem_find() choice. Through a host bridge that is not on the kernel's allowlist, or past an ACS redirect, the transfer fails or lands elsewhere. Check pci_p2pdma_distance(provider, client, true) < 0 first.`,
          at: alloc.node,
          related: [
            ...(handOff ? [rel(handOff.call.node, `handed to ${ff.t(handOff.other)} here`)] : []),
            ...(lookedUp ? [rel(lookedUp.node, 'the provider is looked up here')] : []),
          ],
          functionName: fn.info.name,
          events: [
            callEvent(alloc, alloc.name, { provider: ff.t(alloc.args[0]) }),
            ...(handOff ? [callEvent(handOff.call, DMA_MAP.has(handOff.call.name) ? 'dma_map_p2p' : 'hand_to_client', { client: ff.t(handOff.other), checked: false })] : []),
            { op: 'client_dma_to_provider' },
          ],
        });
      }
    }
  },
};

function isAddressOf(a: AstNode): boolean {
  const u = unwrap(a);
  return u.type === 'pointer_expression' && u.op === '&' && u.children[0]?.type !== 'subscript_expression';
}

function lastName(k: string | undefined): string {
  if (!k) return '';
  const parts = k.replace(/^&/, '').split('.');
  const last = parts[parts.length - 1];
  return last === 'dev' && parts.length > 1 ? parts[parts.length - 2] : last;
}

/** Whether two device expressions name the same device: `pdev`, `&pdev->dev` and `to_pci_dev(dev)` forms. */
function sameDevice(a: string, provider: string): boolean {
  const strip = (s: string) => s.replace(/^&/, '').replace(/\.dev$/, '').replace(/^to_pci_dev\((.*)\)$/, '$1');
  return strip(a) === strip(provider);
}

// ---------------------------------------------------------------------------

export const p2pDistanceBool: Rule = {
  id: 'P2P-DISTANCE-BOOL',
  family: 'p2pdma',
  severity: 'warning',
  summary: 'pci_p2pdma_distance() result used as a boolean (0 is the best distance, -1 means unsupported)',
  needs: [...DISTANCE],
  check(ctx) {
    const { ff } = ctx;
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      const vars = new Map<string, CallFact>();
      for (const a of fn.assigns) {
        const c = asCall(a.rhs, fn);
        if (c && DISTANCE.has(c.name)) vars.set(objectPath(a.lhs), c);
      }
      const judge = (use: AstNode, call: CallFact, via?: string) => {
        const bad = boolishUse(use, ff);
        if (!bad) return;
        ctx.report({
          message: `${via ? `${via} holds the result of ${call.name}(), which` : `${call.name}()`} returns the distance (0 is the best case: the same device) or -1 when peer-to-peer is not supported; ${bad}. Compare with < 0 for failure.`,
          at: bad.startsWith('used') ? use : (use.parent ?? use),
          related: via ? [rel(call.node, 'the distance is computed here')] : [],
          functionName: fn.info.name,
          events: [callEvent(call, call.name), { op: 'distance_as_bool', span: { start: use.start, end: use.end } }],
        });
      };
      for (const c of fn.calls) if (DISTANCE.has(c.name)) judge(c.node, c);
      if (vars.size) {
        for (const n of fn.cfg.nodes) {
          if (!n.ast) continue;
          const stack = [n.ast];
          while (stack.length) {
            const x = stack.pop()!;
            if (x.type === 'identifier' || x.type === 'field_expression') {
              const k = keyOf(x, ff);
              const call = k ? vars.get(k) : undefined;
              if (call && !isAssignTarget(x)) judge(x, call, ff.t(x));
              if (x.type === 'identifier') continue;
            }
            stack.push(...x.children);
          }
        }
      }
    }
  },
};

function isAssignTarget(x: AstNode): boolean {
  const p = x.parent;
  return !!p && ((p.type === 'assignment_expression' && x.field === 'left') || p.type === 'init_declarator');
}

/** Why using the value at `n` as it is used treats it as a boolean, or undefined when fine. */
function boolishUse(n: AstNode, ff: FileFacts): string | undefined {
  let cur = n;
  let p = cur.parent;
  while (p && p.type === 'parenthesized_expression') {
    cur = p;
    p = p.parent;
  }
  if (!p) return undefined;
  if (p.type === 'unary_expression' && p.op === '!') return 'negating it treats distance 0 (the best) as failure and -1 as success';
  if (p.type === 'binary_expression' && (p.op === '&&' || p.op === '||')) return 'using it in a logical expression treats -1 (unsupported) as true';
  if ((p.type === 'if_statement' || p.type === 'while_statement' || p.type === 'conditional_expression') && cur.field === 'condition')
    return 'testing it as a condition treats -1 (unsupported) as true and 0 (the best) as false';
  if (p.type === 'return_statement') {
    let f: AstNode | undefined = p;
    while (f && f.type !== 'function_definition') f = f.parent;
    const type = f ? field(f, 'type') : undefined;
    if (type && /^(bool|_Bool)$/.test(ff.t(type).trim())) return 'returning it from a bool function turns -1 (unsupported) into true and 0 (the best) into false';
  }
  if (p.type === 'binary_expression') {
    const other = cur.field === 'left' ? field(p, 'right') : field(p, 'left');
    if (!other) return undefined;
    const lit = ff.t(other).replace(/\s+/g, '');
    if (!/^-?\d+$/.test(lit)) return undefined;
    const v = Number(lit);
    const op = cur.field === 'left' ? p.op : flip(p.op ?? '');
    const ok = (op === '<' && v === 0) || (op === '>=' && v === 0) || ((op === '==' || op === '!=') && v === -1) || (op === '>' && v === -1) || (op === '<=' && v === -1);
    if (ok) return undefined;
    return `comparing it ${op} ${lit} mixes up "unsupported" (-1) with a real distance (0 and up)`;
  }
  return undefined;
}

function flip(op: string): string {
  return ({ '<': '>', '>': '<', '<=': '>=', '>=': '<=' } as Record<string, string>)[op] ?? op;
}

// ---------------------------------------------------------------------------

const ALLOCATOR_INITS = new Set([
  'drm_buddy_init', 'ttm_range_man_init', 'ttm_range_man_init_nocheck', 'gen_pool_add', 'gen_pool_add_virt',
  'gen_pool_add_owner', 'devm_memremap_pages', 'memremap_pages', 'drm_mm_init', 'amdgpu_vram_mgr_init',
]);

export const p2pSecondAllocator: Rule = {
  id: 'P2P-SECOND-ALLOCATOR',
  family: 'p2pdma',
  severity: 'warning',
  summary: 'pci_p2pdma_add_resource() on a BAR the driver also allocates from, or registered on demand',
  needs: ['pci_p2pdma_add_resource'],
  check(ctx) {
    const { ff } = ctx;
    const adds: Array<{ fn: FunctionFacts; call: CallFact; bar: string }> = [];
    const allocs: Array<{ fn: FunctionFacts; call: CallFact; bars: string[] }> = [];
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      for (const c of fn.calls) {
        if (c.name === 'pci_p2pdma_add_resource' && c.args[1]) adds.push({ fn, call: c, bar: ff.t(c.args[1]).trim() });
      }
    }
    if (!adds.length) return;
    for (const info of ff.functions.values()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      for (const c of fn.calls) {
        if (!ALLOCATOR_INITS.has(c.name)) continue;
        const bars = c.args.flatMap((a) => barsIn(a, fn, ff));
        if (bars.length) allocs.push({ fn, call: c, bars });
      }
    }
    for (const add of adds) {
      const other = allocs.find((a) => a.bars.includes(add.bar));
      if (other) {
        ctx.report({
          message: `BAR ${add.bar} is registered as p2p memory here and also handed to the driver's own allocator (${other.call.name}() in ${other.fn.info.name}()): two allocators hand out the same addresses, so a peer's DMA lands in a buffer the driver gave to someone else. Keep the driver the only allocator of its BAR and export it (for example as a dma-buf) instead.`,
          at: add.call.node,
          related: [rel(other.call.node, `${other.call.name}() manages the same BAR`)],
          functionName: add.fn.info.name,
          events: [callEvent(add.call, 'pci_p2pdma_add_resource', { bar: add.bar }), callEvent(other.call, 'driver_allocator_init', { bar: add.bar }), { op: 'both_allocate_same_range' }],
        });
        continue;
      }
      const root = onDemand(add.fn, ff);
      if (root) {
        ctx.report({
          message: `pci_p2pdma_add_resource() is reached from ${root.name}(), a per-request path: p2p memory should be registered once for the whole BAR at probe time, not on demand and not in pieces.`,
          at: add.call.node,
          related: root.at ? [rel(root.at, `${root.name}() is bound here`)] : [],
          functionName: add.fn.info.name,
          events: [callEvent(add.call, 'pci_p2pdma_add_resource', { onDemand: true })],
        });
      }
    }
  },
};

function barsIn(a: AstNode, fn: FunctionFacts, ff: FileFacts, depth = 0): string[] {
  const out: string[] = [];
  const text = ff.t(a);
  const re = /\bpci_resource_(?:start|len|end)\s*\(\s*[^,]+,\s*([^)]+?)\s*\)|->resource\[\s*([^\]]+?)\s*\]/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push((m[1] ?? m[2]).trim());
  if (!out.length && depth < 2) {
    const k = keyOf(a, ff);
    if (k) for (const as of fn.assigns) if (objectPath(as.lhs) === k) out.push(...barsIn(as.rhs, fn, ff, depth + 1));
  }
  return out;
}

/** If every path into `fn` from this file starts at an ioctl/alloc-like root, that root. */
function onDemand(fn: FunctionFacts, ff: FileFacts): { name: string; at?: AstNode } | undefined {
  const seen = new Set<string>();
  const queue = [fn.info.name];
  const roots: string[] = [];
  while (queue.length) {
    const name = queue.shift()!;
    if (seen.has(name)) continue;
    seen.add(name);
    const callers = [...ff.functions.values()].filter((f) => f.name !== name && ff.isInteresting(f) && ff.fn(f.name)?.calls.some((c) => c.name === name));
    const extra = [...ff.functions.values()].filter((f) => !ff.isInteresting(f) && ff.t(f).includes(name + '('));
    const all = [...callers, ...extra];
    if (!all.length) roots.push(name);
    for (const c of all) queue.push(c.name);
    if (seen.size > 30) return undefined;
  }
  const demand = roots.find((r) => /ioctl|_alloc|mmap|_write$|_store$/.test(r) || ff.rolesOf(r).some((x) => /ioctl|mmap|store|write/.test(x.field)));
  if (!demand || roots.some((r) => /probe|_init$|init_one/.test(r) || ff.rolesOf(r).some((x) => x.field === 'probe'))) return undefined;
  const role = ff.rolesOf(demand)[0];
  return { name: demand, at: role ? (role.table.node as AstNode) : undefined };
}

// ---------------------------------------------------------------------------

const IO_ACCESSORS = /^(memcpy_toio|memcpy_fromio|memset_io|(io)?write[bwlq]|(io)?read[bwlq]|__raw_write[bwlq]|iowrite\d+|ioread\d+)$/;

const CPU_SINKS: Record<string, number[]> = {
  memcpy: [0, 1],
  memmove: [0, 1],
  memset: [0],
  memcmp: [0, 1],
  strcpy: [0, 1],
  strscpy: [0, 1],
  copy_to_user: [1],
  copy_from_user: [0],
  __copy_to_user: [1],
  __copy_from_user: [0],
  clear_page: [0],
  copy_page: [0, 1],
};

export const p2pCpuMemcpy: Rule = {
  id: 'P2P-CPU-MEMCPY',
  family: 'p2pdma',
  severity: 'warning',
  summary: 'plain CPU memory operations (memcpy, memset, stores) on a p2pmem kernel address, which is MMIO',
  needs: ['pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl'],
  check(ctx) {
    const { ff } = ctx;
    // Struct fields the file fills with p2pmem: a memcpy into `q->sq_cmds` elsewhere is suspect too.
    const fields = new Map<string, CallFact>();
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn) continue;
      const levels = new Map<string, number>();
      for (const [k, c] of p2pValues(fn, ff, levels)) if (c.name !== 'pci_p2pmem_virt_to_bus' && k.includes('.') && levels.get(k) === 0) fields.set(k.split('.').pop()!, c);
    }
    const fieldRe = fields.size ? new RegExp(`\\b(?:${[...fields.keys()].join('|')})\\b`) : undefined;
    const newer = ctx.atLeast(6, 19);
    for (const info of ff.functions.values()) {
      if (!ff.isInteresting(info) && !(fieldRe && fieldRe.test(ff.t(info)))) continue;
      const fn = ff.fn(info.name);
      if (!fn) continue;
      // Places holding p2p memory, and the dereferences from each place to the p2p pointer: `*out = buf`
      // makes `out` a pointer to a place that holds the pointer (level 1), not p2p memory itself.
      const vals = new Map<string, CallFact>();
      const levels = new Map<string, number>();
      for (const [k, c] of p2pValues(fn, ff, levels)) if (c.name !== 'pci_p2pmem_virt_to_bus') vals.set(k, c);
      // What the expression `level` dereferences of place k designate: p2p memory itself (rest 0), a place
      // holding its pointer (rest > 0, `out` when `*out = buf`), or neither (undefined). Inside p2p memory
      // counts as p2p memory (k = p.field with p pointing into p2p memory).
      const at = (k: string | undefined, level = 0): { src: CallFact; rest: number } | undefined => {
        if (!k) return undefined;
        const own = vals.get(k);
        if (own) {
          const rest = (levels.get(k) ?? 0) - level;
          return rest >= 0 ? { src: own, rest } : undefined;
        }
        const parts = k.split('.');
        for (let i = parts.length - 1; i >= 1; i--) {
          const src = vals.get(parts.slice(0, i).join('.'));
          if (src) return { src, rest: 0 };
        }
        const f = k.includes('.') ? fields.get(parts[parts.length - 1]) : undefined;
        return f && level <= 0 ? { src: f, rest: -level } : undefined;
      };
      const placeAt = (n: AstNode | undefined) => {
        const p = basePlace(n, ff);
        return p ? at(p.key, p.level) : undefined;
      };
      const valueAt = (a: AstNode | undefined) => {
        if (!a) return undefined;
        const c = asCall(a, fn);
        if (c && (c.name === 'sg_virt' || c.name === 'page_address')) {
          const s = placeAt(c.args[0]);
          return s?.rest === 0 ? s : undefined;
        }
        return placeAt(a);
      };
      /** The p2p memory `a` points at, if it does (not a place that merely holds such a pointer). */
      const valueOf = (a: AstNode | undefined): CallFact | undefined => {
        const s = valueAt(a);
        return s?.rest === 0 ? s.src : undefined;
      };
      // Local pointers derived from p2p memory, and iterator cursors over p2p scatterlists.
      for (let round = 0; round < 3; round++) {
        for (const a of fn.assigns) {
          const l = objectPath(a.lhs);
          if (vals.has(l) || fields.has(l.split('.').pop()!)) continue;
          const s = valueAt(a.rhs);
          if (s) {
            vals.set(l, s.src);
            levels.set(l, derefs(a.lhs) + s.rest);
          }
        }
        for (const n of fn.cfg.nodes) {
          if (n.kind !== 'cond' || !n.iter || !/for_each_sg/.test(n.iter)) continue;
          const args = commaList(n.ast);
          const src = valueOf(args[0]);
          const cursor = keyOf(args[1], ff);
          if (src && cursor) {
            vals.set(cursor, src);
            levels.set(cursor, 0);
          }
        }
      }
      const report = (node: AstNode, what: string, src: CallFact, via: string) =>
        ctx.report({
          severity: newer ? undefined : 'info',
          message: `${what} on ${via}, which is p2p memory from ${src.name}(): its kernel address maps a PCI BAR (MMIO), not RAM. Use memcpy_toio()/memset_io() or writel() through a (void __iomem *) cast${newer ? '' : '; kernels before the p2pdma documentation rewrite tolerate this on x86, newer ones forbid it'}.`,
          at: node,
          related: [rel(src.node, 'the p2p memory is allocated here')],
          functionName: fn.info.name,
          events: [callEvent(src, 'pci_alloc_p2pmem'), callEvent(node, 'cpu_memop', { op: what.replace(/\(\).*/, '') })],
        });
      // Keys this function already accesses with MMIO accessors: a plain op on them sits on the
      // other branch of an "is it device memory?" test (`if (q->in_cmb) memcpy_toio(...) else memcpy(...)`).
      const ioKeys = new Set<string>();
      for (const c of fn.calls) if (IO_ACCESSORS.test(c.name)) for (const a of c.args) { const k = baseKey(a, ff); if (k) ioKeys.add(k); }
      for (const c of fn.calls) {
        const idxs = CPU_SINKS[c.name];
        if (!idxs) continue;
        for (const i of idxs) {
          const src = valueOf(c.args[i]);
          if (src && ioKeys.has(baseKey(c.args[i], ff) ?? '')) break;
          if (src) {
            report(c.node, `${c.name}()`, src, ff.t(c.args[i]).replace(/\s+/g, ' '));
            break;
          }
        }
      }
      // Stores through a pointer to p2p memory. The place a store writes is `*E`, `E[i]` or `E->f`; it is
      // p2p memory when E's value points there, not when E is the place that holds the pointer: `*out = buf`
      // and `obj->mem = buf` only keep the pointer.
      for (const a of fn.assigns) {
        const l = unwrap(a.lhsNode);
        let base: AstNode | undefined;
        if (l.type === 'pointer_expression' && l.op === '*') base = l.children[0];
        else if (l.type === 'subscript_expression') base = field(l, 'argument');
        else if (l.type === 'field_expression' && l.op === '->') base = field(l, 'argument');
        const p = placeOf(base && exprKey(base, ff));
        if (!p) continue;
        // `E->f = x` judges E itself only, not a struct E reaches through p2p memory.
        const s = l.type !== 'field_expression' || vals.has(p.key) ? at(p.key, p.level) : undefined;
        if (s?.rest === 0) report(a.lhsNode.parent ?? a.lhsNode, 'a plain CPU store', s.src, ff.t(a.lhsNode).replace(/\s+/g, ' '));
      }
    }
  },
};

export const p2pRules: Rule[] = [p2pDistanceUnchecked, p2pDistanceBool, p2pSecondAllocator, p2pCpuMemcpy];
