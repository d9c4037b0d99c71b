/**
 * devmem TCP / netmem rules: NETMEM-UNREADABLE-FRAG, NETMEM-DMA-DEV-GRANULE.
 *
 * Since 6.12 an skb may carry frags that are net_iovs (dma-buf memory bound
 * to an RX queue): no struct page, no kernel mapping. skb_frag_page() and
 * skb_frag_address() return NULL for them, netmem_to_page() WARNs and
 * returns NULL, __netmem_to_page() returns garbage.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { truths } from '../../core/conditions';
import { type CallFact, type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { solve } from '../../core/flow';
import { type Rule, type RuleContext, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';

// ---------------------------------------------------------------------------
// Where a frag comes from.

/** Files written with unreadable skbs in mind: there a `skb_frag_t *` parameter is an skb's frag. */
const AWARE = /\b(skb_frags_readable|netmem_ref|net_iov|skb_frag_is_net_iov|netmem_is_net_iov|netdev_queue_mgmt_ops)\b/;

/**
 * Functions on the receive side whose `skb_frag_t *` parameters count as skb frags (a helper
 * that receives a frag from unknown callers, such as skb_frag_dma_map(), leaves the check to them).
 */
const RX_PARAMS = new WeakSet<FunctionFacts>();

/** Whether the frag expression `n` is a frag of an skb (not of an xdp_buff/xdp_frame). */
function skbFrag(n: AstNode, fn: FunctionFacts, ff: FileFacts, depth = 0): boolean {
  const text = ff.t(n);
  if (/\bxdp_get_shared_info|\bxdp_frame|\bxdp_buff|\bsinfo_xdp/.test(text)) return false;
  if (/\bskb_shinfo\s*\(/.test(text)) return true;
  const u = unwrap(n);
  if (u.type === 'identifier' && AWARE.test(ff.text) && RX_PARAMS.has(fn)) {
    const p = fn.info.params.find((x) => x.name === ff.t(u));
    if (p && /\bskb_frag_t\s*\*/.test(p.type) && !fn.assigns.some((a) => a.lhs === p.name)) return true;
  }
  if (depth > 3) return false;
  // Locals it reads: `frag = &shinfo->frags[i]`, `shinfo = skb_shinfo(skb)`.
  let hit = false;
  walk(n, (x) => {
    if (hit) return false;
    if (x.type === 'identifier') {
      const name = ff.t(x);
      for (const a of fn.assigns) if (a.op === '=' && a.lhs === name && skbFrag(a.rhs, fn, ff, depth + 1)) hit = true;
      return false;
    }
    return true;
  });
  return hit;
}

/** Kinds of value that are not pages/addresses when the frag is a net_iov. */
type Kind = 'page' | 'addr' | 'garbage';

interface Src {
  kind: Kind;
  call: CallFact;
  /** The frag (or netmem) expression text. */
  of: string;
}

const NETMEM_OF_FRAG = /^(skb_frag_netmem)$/;

/** The source a call is, when it is applied to an skb frag. */
function sourceCall(c: CallFact, fn: FunctionFacts, ff: FileFacts): Src | undefined {
  const a = c.args[0];
  if (!a) return undefined;
  if (c.name === 'skb_frag_page' && skbFrag(a, fn, ff)) return { kind: 'page', call: c, of: ff.t(a) };
  if ((c.name === 'skb_frag_address' || c.name === 'skb_frag_address_safe') && skbFrag(a, fn, ff)) return { kind: 'addr', call: c, of: ff.t(a) };
  if (c.name === 'netmem_to_page' || c.name === '__netmem_to_page') {
    const inner = asCall(a, fn);
    const fromFrag = (inner && NETMEM_OF_FRAG.test(inner.name) && inner.args[0] && skbFrag(inner.args[0], fn, ff)) || (/->\s*netmem$/.test(ff.t(unwrap(a))) && skbFrag(a, fn, ff)) || netmemLocalFromFrag(a, fn, ff);
    if (fromFrag) return { kind: c.name === '__netmem_to_page' ? 'garbage' : 'page', call: c, of: ff.t(a) };
  }
  return undefined;
}

function netmemLocalFromFrag(a: AstNode, fn: FunctionFacts, ff: FileFacts): boolean {
  const k = keyOf(unwrap(a), ff);
  if (!k) return false;
  for (const as of fn.assigns) {
    if (as.op !== '=' || objectPath(as.lhs) !== k) continue;
    const c = asCall(as.rhs, fn);
    if (c && NETMEM_OF_FRAG.test(c.name) && c.args[0] && skbFrag(c.args[0], fn, ff)) return true;
    if (/->\s*netmem$/.test(ff.t(unwrap(as.rhs))) && skbFrag(as.rhs, fn, ff)) return true;
  }
  return false;
}

/** Source of a value expression: the call itself, or pointer arithmetic on it (`skb_frag_page(f) + n`). */
function sourceOf(rhs: AstNode, fn: FunctionFacts, ff: FileFacts): Src | undefined {
  let u = unwrap(rhs);
  while (u.type === 'binary_expression' && (u.op === '+' || u.op === '-')) u = unwrap(field(u, 'left') ?? u);
  const c = asCall(u, fn);
  return c ? sourceCall(c, fn, ff) : undefined;
}

// ---------------------------------------------------------------------------
// Sinks: what does something with the page or the address.

const PAGE_SINKS: Record<string, number[]> = {
  page_address: [0], lowmem_page_address: [0], page_to_virt: [0], kmap: [0], kmap_atomic: [0], kmap_local_page: [0],
  get_page: [0], put_page: [0], page_ref_inc: [0], page_ref_dec: [0], page_ref_add: [0], page_ref_sub: [0],
  page_ref_count: [0], page_count: [0], PageHighMem: [0], page_to_phys: [0], page_to_pfn: [0],
  dma_map_page: [1], dma_map_page_attrs: [1], ib_dma_map_page: [1], sg_set_page: [1], copy_page_from_iter: [0], copy_page_to_iter: [0],
  skb_add_rx_frag: [2], skb_fill_page_desc: [2], __skb_fill_page_desc: [2], page_pool_get_dma_addr: [0], page_is_pfmemalloc: [0],
  folio_get: [0], compound_head: [0], page_folio: [0], flush_dcache_page: [0],
};
const ADDR_SINKS: Record<string, number[]> = {
  memcpy: [0, 1], memmove: [0, 1], memset: [0], memcmp: [0, 1], csum_partial: [0], csum_partial_copy_nocheck: [0, 1],
  virt_to_page: [0], virt_to_phys: [0], virt_to_dma32: [0], copy_to_user: [1], copy_from_user: [0], __copy_to_user: [1],
  sg_set_buf: [1], sg_init_one: [1], skb_put_data: [1],
};

/** Functions that send, or that build an skb from pages they own: their frags are never net_iovs. */
const TX_NAME = /xmit|(^|_)tx(_|$)|start_tx|(^|_)sq(_|$)|(^|_)send|output|_splice|(^|_)(gso|tso)(_|$)|segment|from_iter|fill_skb|build_skb|alloc_skb/i;
/** Names of functions that consume received skbs. */
const RX_NAME = /(^|_)(rcv|recv|receive|input|deliver|gro)(_|$)|recvmsg|_rcv_/i;
/** Calls that make a function a producer of skb frags (it builds the skb, or hands it up the stack). */
const PRODUCER_CALLS = /^(skb_add_rx_frag|skb_add_rx_frag_netmem|skb_fill_page_desc|__skb_fill_page_desc|skb_frag_fill_page_desc|__skb_frag_set_page|skb_frag_fill_netmem_desc|napi_gro_receive|napi_gro_frags|netif_receive_skb|netif_receive_skb_list|napi_alloc_skb|netdev_alloc_skb|netdev_alloc_skb_ip_align|__netdev_alloc_skb|napi_build_skb|build_skb|alloc_skb|alloc_skb_with_frags|sock_alloc_send_pskb)$/;

function roleNames(ff: FileFacts, name: string): string[] {
  return ff.rolesOf(name).map((r) => r.field);
}

/**
 * Functions whose skbs cannot carry net_iov frags: the TX side (bound to ndo_start_xmit or named
 * like it: validate_xmit_skb() drops unreadable skbs first), producers that fill frags with their
 * own pages or hand skbs up the stack (unless the file's queues take memory providers), and the
 * helpers only such functions call.
 */
function ownedFunctions(ff: FileFacts, queueOps: boolean): Set<string> {
  const tx = new Set<string>();
  for (const f of ff.functions.values()) if (roleNames(ff, f.name).some((r) => r === 'ndo_start_xmit' || r === 'ndo_xdp_xmit') || TX_NAME.test(f.name)) tx.add(f.name);
  if (!queueOps) {
    const producer = new RegExp(`\\b(?:${PRODUCER_CALLS.source.replace(/^\^\(|\)\$$/g, '')})\\s*\\(`);
    for (const f of ff.functions.values()) {
      const text = ff.t(f);
      if (producer.test(text.slice(text.indexOf('{') + 1))) tx.add(f.name);
    }
  }
  // Callees of TX functions whose every caller in the file is TX.
  const callers = callGraph(ff);
  for (let round = 0; round < 3; round++) {
    for (const f of ff.functions.values()) {
      if (tx.has(f.name)) continue;
      const cs = callers.get(f.name);
      if (cs && cs.size && [...cs].every((g) => tx.has(g))) tx.add(f.name);
    }
  }
  return tx;
}

/** Receive side: named like it, or only called by such functions. */
function rxFunctions(ff: FileFacts): Set<string> {
  const rx = new Set<string>();
  for (const f of ff.functions.values()) if (RX_NAME.test(f.name) || roleNames(ff, f.name).some((r) => /rcv|recv|receive/.test(r))) rx.add(f.name);
  const callers = callGraph(ff);
  for (let round = 0; round < 3; round++) {
    for (const f of ff.functions.values()) {
      if (rx.has(f.name)) continue;
      const cs = callers.get(f.name);
      if (cs && cs.size && [...cs].every((g) => rx.has(g))) rx.add(f.name);
    }
  }
  return rx;
}

/** Callers of each function of the file, by text. */
/** Per file (both sides ask for it). */
const callGraphs = new WeakMap<FileFacts, Map<string, Set<string>>>();

function callGraph(ff: FileFacts): Map<string, Set<string>> {
  const known = callGraphs.get(ff);
  if (known) return known;
  const callers = new Map<string, Set<string>>();
  callGraphs.set(ff, callers);
  for (const g of ff.functions.values()) {
    for (const name of namesCalledIn(ff.t(g))) {
      if (name === g.name || !ff.functions.has(name)) continue;
      let set = callers.get(name);
      if (!set) callers.set(name, (set = new Set()));
      set.add(g.name);
    }
  }
  return callers;
}

/**
 * The identifiers followed by `(` in a function's text, remembered by text: in the editor each
 * edit changes one function, and the others' lists come from here instead of a new scan.
 */
const calledIn = new Map<string, string[]>();
const CALLED_IN_MAX = 4096;
function namesCalledIn(text: string): string[] {
  let names = calledIn.get(text);
  if (names) return names;
  names = [...new Set(Array.from(text.matchAll(/\b([A-Za-z_]\w*)\s*\(/g), (m) => m[1]))];
  if (calledIn.size >= CALLED_IN_MAX) calledIn.clear();
  calledIn.set(text, names);
  return names;
}

function isXdp(fn: FunctionFacts): boolean {
  return fn.info.params.some((p) => /\bxdp_(buff|frame)\b/.test(p.type));
}

/** Conditions that say every frag is a page: skb_frags_readable(skb), !skb->unreadable, !skb_frag_is_net_iov(f), !netmem_is_net_iov(n). */
function readableTruth(node: AstNode, truthy: boolean, fn: FunctionFacts, ff: FileFacts): boolean {
  const c = asCall(node, fn);
  if (c && c.name === 'skb_frags_readable') return truthy;
  if (c && (c.name === 'skb_frag_is_net_iov' || c.name === 'netmem_is_net_iov' || c.name === 'net_is_devmem_iov')) return !truthy;
  if (/->\s*unreadable$/.test(ff.t(node).replace(/\s+/g, ''))) return !truthy;
  return false;
}

interface Hazard {
  src: Src;
  sink: CallFact | AstNode;
  what: string;
}

/** The taint state: values that may be NULL/garbage for a net_iov frag, and whether readability was proven. */
type S = ReadonlyMap<string, Src>;
const READABLE = '@readable';
/** Prefix of facts "this frag is known to be a page". */
const FRAG_OK = '@frag:';

/** The calls that read a frag as a page. */
const FRAG_CALLS = new Set(['skb_frag_page', 'skb_frag_address', 'skb_frag_address_safe', 'netmem_to_page', '__netmem_to_page']);
const FRAG_CALL_WORDS = new RegExp(`\\b(?:${[...FRAG_CALLS].join('|')})\\b`);

export const netmemUnreadableFrag: Rule = {
  id: 'NETMEM-UNREADABLE-FRAG',
  family: 'netmem',
  severity: 'error',
  summary: 'skb frag treated as a page (CPU access, page refcount, DMA mapping) without ruling out unreadable net_iov frags',
  since: { major: 6, minor: 12 },
  needs: [...FRAG_CALLS],
  context: ['skb_frags_readable', 'skb_frag_is_net_iov', 'netmem_is_net_iov', 'skb_frag_dma_map'],
  check(ctx) {
    const { ff } = ctx;
    // Files written with unreadable skbs in mind (or drivers whose RX queues take memory providers).
    const aware = AWARE.test(ff.text);
    const queueOps = /\bnetdev_queue_mgmt_ops\b/.test(ff.text);
    // TX functions, and (unless the queues can be bound to a memory provider) the functions that
    // build skbs from pages they own or hand them up the stack, with the helpers only they call.
    const tx = ownedFunctions(ff, queueOps);
    const rxs = rxFunctions(ff);
    for (const info of ff.analysedFunctions()) {
      if (tx.has(info.name)) continue;
      // A call to one of them names it: functions whose text does not are not built (most of a driver's ops).
      if (!FRAG_CALL_WORDS.test(ff.t(info))) continue;
      const fn = ff.fn(info.name);
      if (!fn || isXdp(fn)) continue;
      if (!fn.calls.some((c) => FRAG_CALLS.has(c.name))) continue;
      const reader = info.params.some((p) => /\bconst struct sk_buff\s*\*/.test(p.type));
      const rx = rxs.has(info.name);
      const netmemCode = fn.calls.some((c) => c.name === 'netmem_to_page' || c.name === '__netmem_to_page');
      const level: 'error' | 'warning' | undefined = netmemCode || (rx && (aware || reader)) ? 'error' : aware || reader || rx ? 'warning' : undefined;
      if (!level) continue;
      if (rx) RX_PARAMS.add(fn);
      checkFunction(ctx, fn, level);
    }
  },
};

function checkFunction(ctx: RuleContext, fn: FunctionFacts, level: 'error' | 'warning'): void {
  const { ff } = ctx;
  const sol = solve<S>(fn.cfg, {
    entry: new Map(),
    // May-analysis for the taint (one NULL path is enough), must-analysis for readability.
    join: (a, b) => {
      const m = new Map<string, Src>();
      for (const [k, v] of a) if (!k.startsWith('@') || b.has(k)) m.set(k, v);
      for (const [k, v] of b) if (!k.startsWith('@') && !m.has(k)) m.set(k, v);
      return m;
    },
    equals: (a, b) => a.size === b.size && [...a.keys()].every((k) => b.has(k)),
    transfer: (node, s) => {
      let m: Map<string, Src> | undefined;
      for (const a of fn.assignsAt.get(node.id) ?? []) {
        const l = objectPath(a.lhs);
        const found = a.op === '=' && !s.has(READABLE) ? sourceOf(a.rhs, fn, ff) : undefined;
        const src = found && !s.has(FRAG_OK + found.of) ? found : undefined;
        const copy = a.op === '=' ? (m ?? s).get(keyOf(unwrap(a.rhs), ff) ?? '') : undefined;
        if (src || copy) (m ??= new Map(s)).set(l, (src ?? copy)!);
        else if ((m ?? s).has(l)) (m ??= new Map(s)).delete(l);
      }
      return m ?? s;
    },
    branch: (node, s, idx) => {
      if (node.kind !== 'cond' || !node.ast) return s;
      let m: Map<string, Src> | undefined;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        if (readableTruth(tr.node, tr.truthy, fn, ff)) {
          m = new Map([[READABLE, { kind: 'page', call: { name: '', node: tr.node, args: [], cfgNode: node.id }, of: '' }]]);
          continue;
        }
        // `if (page)` / `if (!page) continue;` / `if (skb_frag_page(f))`: non-NULL on that edge,
        // and so is everything else read from the same frag.
        const k = keyOf(tr.node, ff);
        const cur = m ?? s;
        const inline = asCall(tr.node, fn);
        const isrc = inline ? sourceCall(inline, fn, ff) : undefined;
        if (tr.truthy && isrc && isrc.kind !== 'garbage') (m ??= new Map(s)).set(FRAG_OK + isrc.of, isrc);
        if (k && tr.truthy && cur.has(k) && cur.get(k)!.kind !== 'garbage') {
          const v = cur.get(k)!;
          m ??= new Map(s);
          m.delete(k);
          m.set(FRAG_OK + v.of, v);
        }
      }
      return m ?? s;
    },
  });
  const hazards: Hazard[] = [];
  const valueAt = (arg: AstNode, cfgNode: number, at: AstNode): Src | undefined => {
    const s = sol.before[cfgNode];
    if (!s || s.has(READABLE)) return undefined;
    const inline = sourceOf(arg, fn, ff);
    const k = inline ? undefined : keyOf(unwrap(arg), ff);
    const v = inline ?? (k ? s.get(k) : undefined);
    if (!v || s.has(FRAG_OK + v.of)) return undefined;
    return guardedInCondition(at, v, k, fn, ff) ? undefined : v;
  };
  for (const c of fn.calls) {
    const ps = PAGE_SINKS[c.name];
    const as = ADDR_SINKS[c.name];
    for (const i of ps ?? []) {
      const v = c.args[i] && valueAt(c.args[i], c.cfgNode, c.node);
      if (v && v.kind !== 'addr') {
        hazards.push({ src: v, sink: c, what: `${c.name}()` });
        break;
      }
    }
    for (const i of as ?? []) {
      const v = c.args[i] && valueAt(c.args[i], c.cfgNode, c.node);
      if (v && v.kind === 'addr') {
        hazards.push({ src: v, sink: c, what: `${c.name}()` });
        break;
      }
    }
    if (c.name === 'skb_frag_dma_map' && c.args[1] && skbFrag(c.args[1], fn, ff)) {
      const s = sol.before[c.cfgNode];
      if (s && !s.has(READABLE)) hazards.push({ src: { kind: 'page', call: c, of: ff.t(c.args[1]) }, sink: c, what: 'skb_frag_dma_map()' });
    }
  }
  // Dereferences: `page->flags`, `*addr`, `addr[i]`.
  for (const n of fn.cfg.nodes) {
    if (!n.ast) continue;
    walk(n.ast, (x) => {
      if (x.type === 'compound_statement') return false;
      let base: AstNode | undefined;
      if (x.type === 'field_expression' && x.op === '->') base = field(x, 'argument');
      else if (x.type === 'pointer_expression' && x.op === '*') base = x.children[0];
      else if (x.type === 'subscript_expression') base = field(x, 'argument');
      if (!base) return true;
      const v = valueAt(base, n.id, x);
      if (v) hazards.push({ src: v, sink: x, what: `the dereference ${ff.t(x).replace(/\s+/g, '')}` });
      return true;
    });
  }
  const seen = new Set<number>();
  const rx = level === 'error';
  for (const h of hazards) {
    const node = 'node' in h.sink ? h.sink.node : h.sink;
    if (seen.has(node.start)) continue;
    seen.add(node.start);
    const what = h.src.kind === 'addr' ? `${h.src.call.name}(${h.src.of}) returns NULL` : h.src.kind === 'garbage' ? `__netmem_to_page(${h.src.of}) returns a net_iov pointer cast to a page` : h.src.call.name === 'skb_frag_dma_map' ? `skb_frag_dma_map() maps skb_frag_page(${h.src.of}), which is NULL` : `${h.src.call.name}(${h.src.of}) returns NULL`;
    ctx.report({
      severity: rx ? undefined : 'warning',
      message: `${h.what} uses a frag as if it had a struct page, but on an skb from a devmem TCP queue (6.12+) the frag may be a net_iov: ${what}, and there is no kernel mapping to fall back on. Check skb_frags_readable(skb) (or skb_frag_is_net_iov()) first and leave unreadable skbs alone${rx ? '' : ' (reported as a warning: this function is not recognisably on the receive path)'}.`,
      at: node,
      related: h.src.call.node !== node && h.src.call.name !== 'skb_frag_dma_map' ? [rel(h.src.call.node, 'the frag is read here')] : [],
      functionName: fn.info.name,
      events: [
        { op: 'rx_devmem_skb', args: { readable: false } },
        callEvent(h.src.call, h.src.call.name === 'skb_frag_dma_map' ? 'skb_frag_dma_map' : 'frag_page', { kind: h.src.kind }),
        { op: h.src.call.name === 'skb_frag_dma_map' || /dma_map/.test(h.what) ? 'dma_map_frag' : /get_page|put_page|page_ref/.test(h.what) ? 'page_ref_frag' : 'cpu_access_frag', span: { start: node.start, end: node.end }, args: { via: h.what } },
      ],
    });
  }
}

/**
 * `page && PageHighMem(page)`, `skb_frag_page(f) && !PageHighMem(skb_frag_page(f))`,
 * `skb_frags_readable(skb) ? page_address(...) : NULL`: a test to the left in the
 * same expression already ruled the NULL out.
 */
function guardedInCondition(at: AstNode, v: Src, key: string | undefined, fn: FunctionFacts, ff: FileFacts): boolean {
  const srcText = ff.t(v.call.node).replace(/\s+/g, '');
  const clears = (cond: AstNode): boolean =>
    truths(cond, true, (x) => ff.t(x)).some((tr) => {
      if (readableTruth(tr.node, tr.truthy, fn, ff)) return true;
      if (!tr.truthy) return false;
      if (key && keyOf(tr.node, ff) === key) return true;
      const c = asCall(tr.node, fn);
      const sc = c ? sourceCall(c, fn, ff) : undefined;
      return (sc && sc.of === v.of) || ff.t(tr.node).replace(/\s+/g, '') === srcText;
    });
  for (let p = at.parent, child: AstNode = at; p; child = p, p = p.parent) {
    if (p.type === 'binary_expression' && p.op === '&&' && child.field === 'right') {
      const left = field(p, 'left');
      if (left && clears(left)) return true;
    }
    if (p.type === 'conditional_expression' && child.field === 'consequence') {
      const cond = field(p, 'condition');
      if (cond && clears(cond)) return true;
    }
    if (/statement$/.test(p.type) || p.type === 'declaration') break;
  }
  return false;
}

// ---------------------------------------------------------------------------

/** Assignments from a net_device's parent: `x = netdev->dev.parent`. */
function netdevParent(n: AstNode, fn: FunctionFacts, ff: FileFacts): boolean {
  const t = ff.t(unwrap(n)).replace(/\s+/g, '');
  const m = /^(?:&?)([A-Za-z_]\w*(?:->\w+)*)->dev\.parent$/.exec(t);
  if (!m) return false;
  const base = m[1];
  const root = base.split('->')[0];
  const type = fn.info.params.find((p) => p.name === root)?.type ?? fn.locals.get(root) ?? '';
  if (base === root) return /\bnet_device\b/.test(type);
  // `binding->dev->dev.parent`, `priv->netdev->dev.parent`: by member name.
  return /(^|->)(netdev|ndev|net_dev|dev)$/.test(base) && /\bnet_device\b|binding|netdev|ifq|priv/.test(type + base);
}

const DMA_SYNC = new Set(['dma_sync_single_for_cpu', 'dma_sync_single_for_device', 'dma_sync_single_range_for_cpu', 'dma_sync_single_range_for_device']);

export const netmemDmaDevGranule: Rule = {
  id: 'NETMEM-DMA-DEV-GRANULE',
  family: 'netmem',
  severity: 'warning',
  summary: 'devmem dma-buf bound to the wrong DMA device, or net_iov granule, order or sync assumptions broken',
  since: { major: 6, minor: 12 },
  needs: ['dma_buf_attach', 'netdev_get_dma_dev', 'netdev_queue_mgmt_ops', 'page_pool_get_dma_addr_netmem', 'memory_provider_ops', 'net_iov'],
  context: ['page_pool_params', 'sg_dma_len', 'dma_sync_single_for_cpu', 'dma_sync_single_for_device'],
  check(ctx) {
    const { ff } = ctx;
    const hasQueueOps = /\bnetdev_queue_mgmt_ops\b/.test(ff.text);
    const providerCode = /\b(memory_provider_ops|net_iov|dmabuf_genpool_chunk_owner)\b/.test(ff.text);
    const hasDmaDevHelper = ctx.atLeast(6, 17);
    // Every finding below needs one of these words in the function: the attach calls (1, 2), the netmem's
    // DMA address (4), sg_dma_len() in provider code (5), an `order` in a driver with queue ops (3).
    const words = ['dma_buf_attach', 'dma_buf_dynamic_attach', 'page_pool_get_dma_addr_netmem', ...(providerCode ? ['sg_dma_len'] : []), ...(hasQueueOps ? ['order'] : [])];
    const worth = new RegExp(`\\b(?:${words.join('|')})\\b`);
    for (const info of ff.analysedFunctions()) {
      if (!worth.test(ff.t(info))) continue;
      const fn = ff.fn(info.name);
      if (!fn) continue;
      // (1) dma_buf_attach() to the netdev's parent.
      const parentLocals = new Map<string, AstNode>();
      for (const a of fn.assigns) if (a.op === '=' && netdevParent(a.rhs, fn, ff)) parentLocals.set(objectPath(a.lhs), a.rhs);
      const dmaDevs = new Map<string, CallFact>();
      for (const a of fn.assigns) {
        const c = asCall(a.rhs, fn);
        if (a.op === '=' && c && c.name === 'netdev_get_dma_dev') dmaDevs.set(objectPath(a.lhs), c);
      }
      const tested = (k: string) => fn.cfg.nodes.some((n) => n.kind === 'cond' && n.ast && truths(n.ast, true, (x) => ff.t(x)).some((t) => keyOf(t.node, ff) === k));
      for (const c of fn.calls) {
        if ((c.name === 'dma_buf_attach' || c.name === 'dma_buf_dynamic_attach') && c.args[1]) {
          const k = keyOf(unwrap(c.args[1]), ff);
          const direct = netdevParent(c.args[1], fn, ff);
          const via = k ? parentLocals.get(k) : undefined;
          if (direct || via) {
            ctx.report({
              severity: hasDmaDevHelper ? undefined : 'info',
              message: `The dma-buf is attached for ${ff.t(via ?? c.args[1]).replace(/\s+/g, '')}, the net_device's parent, which is not always the device that does the DMA: for sub-functions and auxiliary devices the parent has no dma_mask and the DMA device is further up. The exporter then maps the buffer for the wrong device (an empty or wrong IOMMU mapping), and the queue is fed addresses the NIC cannot use. ${hasDmaDevHelper ? 'Use netdev_get_dma_dev() and fail with -EOPNOTSUPP when it returns NULL.' : 'On this kernel there is no netdev_get_dma_dev(); check that the parent has a dma_mask (newer kernels provide netdev_get_dma_dev()).'}`,
              at: c.node,
              related: via ? [rel(via, 'the device is taken from the netdev\'s parent here')] : [],
              functionName: fn.info.name,
              events: [callEvent(c, 'dma_buf_attach', { to: 'netdev_parent' }), { op: 'dma_buf_map_attachment', args: { dev: 'parent' } }, { op: 'rx_refill' }],
            });
          }
          // (2) netdev_get_dma_dev() result used untested (through a local, or passed directly).
          const inline = asCall(c.args[1], fn);
          const dd = inline && inline.name === 'netdev_get_dma_dev' ? inline : k ? dmaDevs.get(k) : undefined;
          if (dd && (dd === inline || !tested(k!))) {
            ctx.report({
              message: `netdev_get_dma_dev() returns NULL when neither the netdev's parent nor its grandparent can DMA, and ${dd === inline ? 'its result' : k} goes to ${c.name}() untested: the exporter dereferences or maps for a NULL device. Return -EOPNOTSUPP when it is NULL.`,
              at: c.node,
              related: [rel(dd.node, 'the DMA device is looked up here')],
              functionName: fn.info.name,
              events: [callEvent(dd, 'netdev_get_dma_dev', { result: 'NULL' }), callEvent(c, 'dma_buf_attach', { to: 'NULL' })],
            });
          }
        }
        // (4) dma_sync of a netmem's page_pool DMA address: dma-buf addresses must not be synced.
        if (DMA_SYNC.has(c.name) && c.args[1]) {
          const src = netmemDma(c.args[1], fn, ff);
          if (src && !guardedNetIov(c, fn, ff)) {
            ctx.report({
              message: `${c.name}() on ${ff.t(c.args[1]).replace(/\s+/g, ' ')}, the DMA address of a netmem that may be a net_iov: for devmem queues it is an address inside the dma-buf mapping, which the DMA API does not own (the core disables dma_sync for such pools). With swiotlb or a non-coherent IOMMU the sync copies or flushes whatever lies at that address. Sync only page-backed netmems (check netmem_is_net_iov()), or use page_pool_dma_sync_for_cpu(), which honours the pool's setting.`,
              at: c.node,
              related: [rel(src.node, 'the address comes from here')],
              functionName: fn.info.name,
              events: [callEvent(src, 'page_pool_get_dma_addr_netmem'), callEvent(c, 'dma_sync_netmem')],
            });
          }
        }
        // (5) dma-buf chunks split in PAGE_SIZE net_iovs without checking the length is a multiple.
        if (providerCode && c.name === 'sg_dma_len') checkGranule(ctx, fn, c);
      }
      // (3) page_pool params with a literal order > 0 in a driver whose queues accept memory providers.
      if (hasQueueOps) {
        for (const a of fn.assigns) {
          if (!/(^|\.)order$/.test(objectPath(a.lhs)) || !/page_pool|pp\b|\bpp\./.test(ff.t(a.lhsNode) + (fn.locals.get(objectPath(a.lhs).split('.')[0]) ?? ''))) continue;
          orderFinding(ctx, fn, a.rhs, a.lhsNode.parent ?? a.lhsNode);
        }
        for (const init of fn.initializers) {
          if (init.structType !== 'page_pool_params') continue;
          const f = init.fields.find((x) => x.path === 'order');
          if (f) orderFinding(ctx, fn, f.value, f.value);
        }
      }
    }
  },
};

function orderFinding(ctx: RuleContext, fn: FunctionFacts, value: AstNode, at: AstNode): void {
  const t = ctx.ff.t(unwrap(value)).trim();
  if (!/^\d+$/.test(t) || Number(t) === 0) return;
  ctx.report({
    message: `This page_pool is created with order ${t} in a driver whose RX queues accept memory providers (it has netdev_queue_mgmt_ops): the devmem provider only hands out PAGE_SIZE net_iovs and refuses any other order (mp_dmabuf_devmem_init() returns -E2BIG), so binding a dma-buf to this queue fails. Use order 0 for queues that may be bound, or reject the binding explicitly.`,
    at,
    functionName: fn.info.name,
    events: [{ op: 'page_pool_create', span: { start: at.start, end: at.end }, args: { order: Number(t) } }, { op: 'bind_dmabuf_queue' }],
  });
}

function netmemDma(n: AstNode, fn: FunctionFacts, ff: FileFacts): CallFact | undefined {
  let u = unwrap(n);
  while (u.type === 'binary_expression' && (u.op === '+' || u.op === '-')) u = unwrap(field(u, 'left') ?? u);
  const c = asCall(u, fn);
  if (c && c.name === 'page_pool_get_dma_addr_netmem') return c;
  const k = keyOf(u, ff);
  if (!k) return undefined;
  for (const a of fn.assigns) {
    if (a.op !== '=' || objectPath(a.lhs) !== k) continue;
    const r = asCall(unwrap(a.rhs), fn);
    if (r && r.name === 'page_pool_get_dma_addr_netmem') return r;
  }
  return undefined;
}

/** A dominating test that the netmem is page-backed, or that the pool syncs. */
function guardedNetIov(c: CallFact, fn: FunctionFacts, ff: FileFacts): boolean {
  const sol = solve<boolean>(fn.cfg, {
    entry: false,
    join: (a, b) => a && b,
    equals: (a, b) => a === b,
    transfer: (_n, s) => s,
    branch: (node, s, idx) => {
      if (node.kind !== 'cond' || !node.ast) return s;
      for (const tr of truths(node.ast, idx === 0, (x) => ff.t(x))) {
        const cc = asCall(tr.node, fn);
        if (cc && (cc.name === 'netmem_is_net_iov' || cc.name === 'net_is_devmem_iov') && !tr.truthy) return true;
        if (/->\s*(dma_sync|dma_sync_for_cpu)$/.test(ff.t(tr.node).replace(/\s+/g, '')) && tr.truthy) return true;
      }
      return s;
    },
  });
  return sol.before[c.cfgNode] === true;
}

function checkGranule(ctx: RuleContext, fn: FunctionFacts, lenCall: CallFact): void {
  const { ff } = ctx;
  // The length (the call, or a local assigned from it) divided by PAGE_SIZE.
  const keys = new Set<string>();
  for (const a of fn.assigns) if (a.op === '=' && unwrap(a.rhs) === lenCall.node) keys.add(objectPath(a.lhs));
  if (/%\s*PAGE_SIZE|IS_ALIGNED|PAGE_ALIGNED|offset_in_page|PAGE_MASK/.test(ff.t(fn.body))) return;
  for (const n of fn.cfg.nodes) {
    if (!n.ast) continue;
    walk(n.ast, (x) => {
      if (x.type === 'compound_statement') return false;
      if (x.type !== 'binary_expression' || (x.op !== '/' && x.op !== '>>')) return true;
      const l = field(x, 'left');
      const r = field(x, 'right');
      if (!l || !r || !/^(PAGE_SIZE|PAGE_SHIFT)$/.test(ff.t(r).trim())) return true;
      const lu = unwrap(l);
      const k = keyOf(lu, ff);
      if (lu === lenCall.node || (k && keys.has(k))) {
        ctx.report({
          severity: 'info',
          message: `${ff.t(x).replace(/\s+/g, ' ')} splits a dma-buf chunk into PAGE_SIZE net_iovs without checking that sg_dma_len() is a multiple of PAGE_SIZE: a chunk with a tail (an exporter with a different page size, or an offset) silently loses it, and the addresses of later chunks stop lining up with what the NIC expects. Reject or handle unaligned chunks (IS_ALIGNED(len, PAGE_SIZE)).`,
          at: x,
          functionName: fn.info.name,
          events: [callEvent(lenCall, 'sg_dma_len', { aligned: false }), { op: 'split_chunk', span: { start: x.start, end: x.end } }],
        });
      }
      return true;
    });
  }
}

export const netmemRules: Rule[] = [netmemUnreadableFrag, netmemDmaDevGranule];
