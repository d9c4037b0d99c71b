/**
 * Values of the p2pdma family, shared by the rules in more.ts: which places
 * hold p2p memory (kernel addresses, pages, scatterlists), which providers
 * are some other device than the one the driver drives, and how to compare
 * device and size expressions.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { type CallFact, commaList, type FileFacts, type FunctionFacts, objectPath, rootOf } from '../../core/facts';
import { asCall, keyOf } from '../util';

export const DISTANCE = new Set(['pci_p2pdma_distance', 'pci_p2pdma_distance_many']);
export const FIND = new Set(['pci_p2pmem_find', 'pci_p2pmem_find_many']);
export const FOREIGN_LOOKUP = new Set([
  'pci_get_device', 'pci_get_domain_bus_and_slot', 'pci_get_slot', 'pci_get_class', 'pci_get_subsys',
  'pci_get_base_class', 'bus_find_device', 'bus_find_device_by_name',
]);

/** Base object of a pointer expression: `p + off`, `(void *)p`, `&p[i]` stay `p`. */
export function baseKey(n: AstNode | undefined, ff: FileFacts): string | undefined {
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
  return keyOf(u, ff);
}

/** Last component of a device key: `ctrl.p2p_dev` -> `p2p_dev`; `x.pdev.dev` -> `pdev`. */
export function lastName(k: string | undefined): string {
  if (!k) return '';
  const parts = k.replace(/^&/, '').split('.');
  const last = parts[parts.length - 1];
  return last === 'dev' && parts.length > 1 ? parts[parts.length - 2] : last;
}

export interface P2pValues {
  /** Kernel addresses of p2p memory (pci_alloc_p2pmem and what is derived from it). */
  kva: Map<string, CallFact>;
  /** Scatterlists of p2p memory (pci_p2pmem_alloc_sgl, iterator cursors over them). */
  sgl: Map<string, CallFact>;
  /** struct pages of p2p memory (virt_to_page / sg_page of the above). */
  page: Map<string, CallFact>;
}

/** What a value expression is, in terms of p2p memory, given the places known so far. */
export function p2pKindOf(n: AstNode | undefined, v: P2pValues, fn: FunctionFacts, ff: FileFacts): { kind: keyof P2pValues; src: CallFact } | undefined {
  if (!n) return undefined;
  const u = unwrap(n);
  const c = asCall(u, fn);
  if (c) {
    if (c.name === 'pci_alloc_p2pmem') return { kind: 'kva', src: c };
    if (c.name === 'pci_p2pmem_alloc_sgl') return { kind: 'sgl', src: c };
    if (c.name === 'virt_to_page' || c.name === 'virt_to_head_page') {
      const k = v.kva.get(baseKey(c.args[0], ff) ?? '');
      return k ? { kind: 'page', src: k } : undefined;
    }
    if (c.name === 'sg_page') {
      const s = v.sgl.get(baseKey(c.args[0], ff) ?? '');
      return s ? { kind: 'page', src: s } : undefined;
    }
    if (c.name === 'sg_virt') {
      const s = v.sgl.get(baseKey(c.args[0], ff) ?? '');
      return s ? { kind: 'kva', src: s } : undefined;
    }
    return undefined;
  }
  const k = baseKey(u, ff);
  if (!k) return undefined;
  for (const kind of ['kva', 'sgl', 'page'] as const) {
    const src = v[kind].get(k);
    if (src) return { kind, src };
  }
  return undefined;
}

/** The p2p places of a function: assignments from the allocators, copies, and iterator cursors. */
export function p2pValuesOf(fn: FunctionFacts, ff: FileFacts): P2pValues {
  const v: P2pValues = { kva: new Map(), sgl: new Map(), page: new Map() };
  for (let round = 0; round < 4; round++) {
    let grew = false;
    for (const a of fn.assigns) {
      if (a.op !== '=' && a.op !== '+=' && a.op !== '-=') continue;
      const l = objectPath(a.lhs);
      if (v.kva.has(l) || v.sgl.has(l) || v.page.has(l)) continue;
      const r = a.op === '=' ? p2pKindOf(a.rhs, v, fn, ff) : undefined;
      if (r) {
        v[r.kind].set(l, r.src);
        grew = true;
      }
    }
    for (const n of fn.cfg.nodes) {
      if (n.kind !== 'cond' || !n.iter || !/for_each_sg/.test(n.iter)) continue;
      const args = commaList(n.ast);
      const src = v.sgl.get(baseKey(args[0], ff) ?? '');
      const cursor = keyOf(args[1], ff);
      if (src && cursor && !v.sgl.has(cursor)) {
        v.sgl.set(cursor, src);
        grew = true;
      }
    }
    if (!grew) break;
  }
  return v;
}

/**
 * Providers that are some other device than the one the code drives, by the
 * last component of their name: chosen with pci_p2pmem_find*(), looked up on
 * the bus, configured through pci_p2pdma_enable_store(), or checked with
 * pci_p2pdma_distance*() against a client. Value: the call that shows it.
 */
export function foreignProviders(ff: FileFacts): Map<string, CallFact> {
  const out = new Map<string, CallFact>();
  for (const info of ff.analysedFunctions()) {
    const fn = ff.fn(info.name);
    if (!fn) continue;
    for (const c of fn.calls) {
      if (DISTANCE.has(c.name) && c.args[0]) out.set(lastName(keyOf(c.args[0], ff)), c);
      if (c.name === 'pci_p2pdma_enable_store' && c.args[1]) out.set(lastName(keyOf(c.args[1], ff)), c);
    }
    for (const a of fn.assigns) {
      const c = asCall(a.rhs, fn);
      if (c && (FIND.has(c.name) || FOREIGN_LOOKUP.has(c.name))) out.set(lastName(objectPath(a.lhs)), c);
    }
  }
  out.delete('');
  return out;
}

// ------------------------------------------------------------ comparisons

/** Text of an expression without whitespace, outer parentheses and casts. */
export function norm(n: AstNode, ff: FileFacts): string {
  return ff.t(unwrap(n)).replace(/\s+/g, '');
}

/** Locals of `fn` with exactly one plain assignment: name -> value. */
function singleDefs(fn: FunctionFacts): Map<string, AstNode> {
  const count = new Map<string, number>();
  const val = new Map<string, AstNode>();
  for (const a of fn.assigns) {
    if (!/^[A-Za-z_]\w*$/.test(a.lhs)) continue;
    count.set(a.lhs, (count.get(a.lhs) ?? 0) + (a.op === '=' ? 1 : 2));
    val.set(a.lhs, a.rhs);
  }
  const out = new Map<string, AstNode>();
  for (const [k, n] of count) if (n === 1 && fn.locals.has(k)) out.set(k, val.get(k)!);
  return out;
}

/** Integer value of a constant size expression (literals, SZ_* and arithmetic), if it is one. */
export function constValue(n: AstNode, ff: FileFacts): number | undefined {
  const u = unwrap(n);
  if (u.type === 'number_literal') {
    const s = ff.t(u).replace(/[uUlL]+$/, '');
    const v = Number(s);
    return Number.isFinite(v) ? v : undefined;
  }
  if (u.type === 'identifier') {
    const m = /^SZ_(\d+)([KMG]?)$/.exec(ff.t(u));
    if (!m) return undefined;
    return Number(m[1]) * (m[2] === 'K' ? 1024 : m[2] === 'M' ? 1 << 20 : m[2] === 'G' ? 1 << 30 : 1);
  }
  if (u.type === 'binary_expression') {
    const l = field(u, 'left');
    const r = field(u, 'right');
    const a = l ? constValue(l, ff) : undefined;
    const b = r ? constValue(r, ff) : undefined;
    if (a === undefined || b === undefined) return undefined;
    switch (u.op) {
      case '+': return a + b;
      case '-': return a - b;
      case '*': return a * b;
      case '<<': return a * 2 ** b;
      case '>>': return Math.floor(a / 2 ** b);
      case '/': return b ? Math.floor(a / b) : undefined;
      default: return undefined;
    }
  }
  return undefined;
}

/** Sub-expression texts of `n` (excluding `n` itself). */
function subTexts(n: AstNode, ff: FileFacts): Set<string> {
  const out = new Set<string>();
  walk(unwrap(n), (x) => {
    if (x !== unwrap(n)) out.add(norm(x, ff));
  });
  return out;
}

/**
 * Whether two size expressions certainly differ: both constants with different
 * values, or one a proper part of the other (`len` and `ALIGN(len, SZ_4K)`,
 * `sizeof(*d)` and `n * sizeof(*d)`). Anything else is not judged.
 */
export function sizesDiffer(a: AstNode, fa: FunctionFacts, b: AstNode, fb: FunctionFacts, ff: FileFacts): boolean {
  let ea = a;
  let eb = b;
  if (fa === fb) {
    const defs = singleDefs(fa);
    const ra = defs.get(norm(a, ff));
    const rb = defs.get(norm(b, ff));
    if (ra && !rb && norm(ra, ff) === norm(b, ff)) return false;
    if (rb && !ra && norm(rb, ff) === norm(a, ff)) return false;
    if (ra) ea = ra;
    if (rb) eb = rb;
  }
  const ta = norm(ea, ff);
  const tb = norm(eb, ff);
  if (ta === tb || norm(a, ff) === norm(b, ff)) return false;
  const ca = constValue(ea, ff);
  const cb = constValue(eb, ff);
  if (ca !== undefined && cb !== undefined) return ca !== cb;
  if (fa !== fb) return false;
  // gen_pool counts whole pages: rounding a size up to the page (or 4 KiB) frees the same bits.
  if (roundsUp(ea, tb, ff) || roundsUp(eb, ta, ff)) return false;
  return subTexts(ea, ff).has(tb) || subTexts(eb, ff).has(ta);
}

/** `ALIGN(x, SZ_4K)`, `PAGE_ALIGN(x)`, `round_up(x, PAGE_SIZE)`, `roundup(...)` of the size `inner`. */
function roundsUp(n: AstNode, inner: string, ff: FileFacts): boolean {
  const u = unwrap(n);
  if (u.type !== 'call_expression') return false;
  const name = ff.t(field(u, 'function') ?? u);
  const args = field(u, 'arguments')?.children ?? [];
  if (!args[0] || norm(args[0], ff) !== inner) return false;
  if (name === 'PAGE_ALIGN') return true;
  if (!/^(ALIGN|round_up|roundup)$/.test(name) || !args[1]) return false;
  const a = norm(args[1], ff);
  return a === 'PAGE_SIZE' || a === 'SZ_4K' || a === '4096' || a === 'NVME_CTRL_PAGE_SIZE';
}

/** A device expression reduced to the object: `&pdev->dev`, `to_pci_dev(x)`, `pdev` all name the same thing. */
export function deviceKey(n: AstNode, fn: FunctionFacts, ff: FileFacts): string | undefined {
  let u = unwrap(n);
  for (let i = 0; i < 4; i++) {
    const c = asCall(u, fn);
    if (c && (c.name === 'to_pci_dev' || c.name === 'pci_dev_get') && c.args[0]) u = unwrap(c.args[0]);
    else if (u.type === 'pointer_expression' && u.op === '&' && u.children[0]) u = unwrap(u.children[0]);
    else break;
  }
  const k = keyOf(u, ff);
  return k?.replace(/\.dev$/, '');
}

/**
 * Whether two device expressions certainly name different devices. In one
 * function: two places whose values come from disjoint roots. Across
 * functions: two members with different names that the file never copies
 * into one another.
 */
export function devicesDiffer(a: AstNode, fa: FunctionFacts, b: AstNode, fb: FunctionFacts, ff: FileFacts, copies: ReadonlySet<string>): boolean {
  const ka = deviceKey(a, fa, ff);
  const kb = deviceKey(b, fb, ff);
  if (!ka || !kb || ka === kb) return false;
  if (fa === fb) {
    const ra = deviceRoots(rootOf(ka), fa, ff);
    const rb = deviceRoots(rootOf(kb), fb, ff);
    if (!ra || !rb) return false;
    for (const x of ra) if (rb.has(x)) return ka.includes('.') && kb.includes('.') && lastName(ka) !== lastName(kb) && !linked(ka, kb, copies);
    // Different roots: a parameter against another parameter or a local filled from elsewhere.
    return !linked(ka, kb, copies);
  }
  if (!ka.includes('.') || !kb.includes('.')) return false;
  return lastName(ka) !== lastName(kb) && !linked(ka, kb, copies);
}

/**
 * Roots a device variable's value comes from, through copies and
 * `to_pci_dev()`; undefined when some assignment to a local cannot be
 * followed (then nothing is judged).
 */
function deviceRoots(root: string, fn: FunctionFacts, ff: FileFacts): Set<string> | undefined {
  const out = new Set<string>([root]);
  const queue = [root];
  while (queue.length && out.size < 10) {
    const r = queue.pop()!;
    for (const a of fn.assigns) {
      if (a.lhs !== r) continue;
      if (a.op !== '=') return undefined;
      const k = deviceKey(a.rhs, fn, ff);
      if (!k) return undefined;
      const rr = rootOf(k);
      if (!out.has(rr)) {
        out.add(rr);
        queue.push(rr);
      }
    }
  }
  return out;
}

function linked(a: string, b: string, copies: ReadonlySet<string>): boolean {
  const x = lastName(a);
  const y = lastName(b);
  return copies.has(`${x}=${y}`) || copies.has(`${y}=${x}`);
}

/** Pairs `lhsName=rhsName` of every copy between places in the file (`req->p2p_dev = p2p_dev`). */
export function fileCopies(ff: FileFacts, fns: Iterable<FunctionFacts>): Set<string> {
  const out = new Set<string>();
  for (const fn of fns) {
    for (const a of fn.assigns) {
      if (a.op !== '=') continue;
      const r = keyOf(a.rhs, ff);
      const c = asCall(a.rhs, fn);
      const rk = r ?? (c && (c.name === 'to_pci_dev' || c.name === 'pci_dev_get') && c.args[0] ? keyOf(c.args[0], ff) : undefined);
      if (rk) out.add(`${lastName(objectPath(a.lhs))}=${lastName(rk)}`);
    }
  }
  return out;
}
