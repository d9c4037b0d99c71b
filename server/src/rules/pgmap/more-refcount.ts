/**
 * PGMAP-REFCOUNT-INIT: a device-private or coherent page handed out with
 * get_page()/lock_page() instead of zone_device_page_init(), or put in the
 * pgmap's page_free callback.
 */
import { type AstNode, field, unwrap, walk } from '../../core/ast';
import { type FileFacts, type FunctionFacts, objectPath } from '../../core/facts';
import { type Rule, rel } from '../api';
import { asCall, callEvent, keyOf } from '../util';
import { allTypes, objectsOf, pagemapCallbacks } from './more-common';

/** Calls that take a page reference or the page lock by hand. */
const REF_TAKERS = new Set(['get_page', 'folio_get', 'page_ref_inc', 'page_ref_add', 'set_page_count', 'init_page_count', 'set_page_refcounted', 'folio_set_count', 'lock_page', 'folio_lock', 'trylock_page', 'folio_trylock']);
const INIT = new Set(['zone_device_page_init', 'zone_device_folio_init']);
/** Calls that drop a reference or free a page. */
const PUTTERS = new Set(['put_page', 'folio_put', '__free_page', '__free_pages', 'free_page', 'put_page_testzero', 'folio_put_refs', 'page_ref_dec']);

/** Keys of the pages `fn` proves to be ZONE_DEVICE pages of this driver, with the evidence. */
function devicePages(fn: FunctionFacts, ff: FileFacts, rangeMaps: string[], rawAllocators: Map<string, AstNode>): Map<string, { why: string; at: AstNode }> {
  const out = new Map<string, { why: string; at: AstNode }>();
  for (const n of fn.cfg.nodes) {
    if (!n.ast) continue;
    walk(n.ast, (x) => {
      if (x.type === 'compound_statement') return false;
      if (x.type === 'field_expression' && x.op === '->') {
        const f = field(x, 'field');
        const arg = field(x, 'argument');
        const k = arg && keyOf(arg, ff);
        if (f && k && ff.t(f) === 'zone_device_data' && !out.has(objectPath(k))) out.set(objectPath(k), { why: `it uses ${ff.t(x).replace(/\s+/g, '')}, which only ZONE_DEVICE pages have`, at: x });
      }
      return true;
    });
  }
  for (const a of fn.assigns) {
    if (a.op !== '=') continue;
    const c = asCall(a.rhs, fn);
    if (!c) continue;
    const l = objectPath(a.lhs);
    if ((c.name === 'pfn_to_page' || c.name === 'phys_to_page') && c.args[0]) {
      const text = ff.t(c.args[0]).replace(/\s+/g, '');
      const m = rangeMaps.find((p) => new RegExp(`(^|\\.|->)${p}(\\.|->)range`).test(text));
      if (m && !out.has(l)) out.set(l, { why: `it is computed from the range of the pgmap ${m}`, at: c.node });
    }
    if (rawAllocators.has(c.name) && !out.has(l)) out.set(l, { why: `${c.name}() hands it out from the driver's device-memory free list`, at: c.node });
  }
  // Aliases `q = p`.
  for (const a of fn.assigns) {
    if (a.op !== '=') continue;
    const k = keyOf(unwrap(a.rhs), ff);
    const l = objectPath(a.lhs);
    if (k && out.has(objectPath(k)) && !out.has(l)) out.set(l, out.get(objectPath(k))!);
  }
  return out;
}

export const pgmapRefcountInit: Rule = {
  id: 'PGMAP-REFCOUNT-INIT',
  family: 'pgmap',
  severity: 'error',
  summary: 'device-private/coherent page handed out without zone_device_page_init(), or put by page_free',
  needs: ['MEMORY_DEVICE_PRIVATE', 'MEMORY_DEVICE_COHERENT', 'zone_device_data', 'page_free', 'folio_free'],
  context: ['get_page', 'lock_page', 'folio_get', 'folio_lock', 'set_page_count', 'page_ref_inc', 'zone_device_page_init', 'zone_device_folio_init', 'put_page', 'folio_put'],
  check(ctx) {
    const { ff } = ctx;
    const objs = objectsOf(ctx);
    const deviceTyped = objs.filter((o) => allTypes(o, ff).some((t) => t === 'MEMORY_DEVICE_PRIVATE' || t === 'MEMORY_DEVICE_COHERENT'));
    const freeCallbacks = [...pagemapCallbacks(ff, 'page_free'), ...pagemapCallbacks(ff, 'folio_free')];
    if (!deviceTyped.length && !freeCallbacks.length) return;
    const rangeMaps = deviceTyped.map((o) => o.path.split('.').pop()!);

    // (b) page_free / folio_free must not drop the page: the core frees device pages at refcount 0.
    for (const cb of freeCallbacks) {
      const fn = ff.fn(cb.fn);
      const p = fn?.info.params[0];
      if (!fn || !p) continue;
      const aliases = new Set([p.name]);
      for (const a of fn.assigns) {
        const k = keyOf(unwrap(a.rhs), ff);
        if (a.op === '=' && k && aliases.has(objectPath(k))) aliases.add(objectPath(a.lhs));
        const u = unwrap(a.rhs);
        if (a.op === '=' && u.type === 'pointer_expression' && u.op === '&' && /\.page$/.test(objectPath(keyOf(u.children[0], ff) ?? '')) && aliases.has(objectPath(keyOf(u.children[0], ff)!).slice(0, -5))) aliases.add(objectPath(a.lhs));
      }
      for (const c of fn.calls) {
        if (!PUTTERS.has(c.name) || !c.args[0]) continue;
        const k = keyOf(c.args[0], ff);
        if (!k || !aliases.has(objectPath(k))) continue;
        ctx.report({
          message: `${c.name}() on the ${p.name} that ${fn.info.name}() (the pgmap's .${cb.field} callback) is handed: the core calls it once the page's refcount has already reached zero, so this drops a reference that does not exist. The refcount underflows (VM_BUG_ON_PAGE with CONFIG_DEBUG_VM) and the page is freed a second time into the driver's allocator. Only return the page to the driver's free list here.`,
          at: c.node,
          related: [rel(cb.table.node, `${cb.table.name} binds ${fn.info.name}() as its free callback`)],
          functionName: fn.info.name,
          events: [{ op: 'page_free_callback', args: { refcount: 0 } }, callEvent(c, 'put_page', { in: 'page_free' })],
        });
      }
    }

    // (a) Since 6.1 a free device page sits at refcount 0; zone_device_page_init() takes the
    // pgmap reference, sets the count to 1 and locks it. Before 6.1, get_page()+lock_page() was right.
    if (!ctx.atLeast(6, 1)) return;
    if (!deviceTyped.length) return;
    const fns = ff.analysedFunctions().map((i) => ff.fn(i.name)).filter((f): f is FunctionFacts => !!f);
    const callbacks = new Set(freeCallbacks.map((c) => c.fn));
    for (const name of ff.functionsWithRole('migrate_to_ram')) callbacks.add(name);
    // Same-file functions that return a device page taken from the free list without initialising it.
    const rawAllocators = new Map<string, AstNode>();
    for (let round = 0; round < 2; round++) {
      for (const fn of fns) {
        if (callbacks.has(fn.info.name) || fn.calls.some((c) => INIT.has(c.name))) continue;
        if (!/\bstruct page\s*\*/.test(ff.t(fn.ast).slice(0, ff.t(fn.ast).indexOf(fn.info.name)))) continue;
        const dev = devicePages(fn, ff, rangeMaps, rawAllocators);
        for (const n of fn.cfg.nodes) {
          if (n.kind !== 'return' || !n.ast) continue;
          const v = n.ast.children[0];
          const k = v && keyOf(v, ff);
          if (k && dev.has(objectPath(k))) rawAllocators.set(fn.info.name, n.ast);
        }
      }
    }
    for (const fn of fns) {
      if (callbacks.has(fn.info.name) || fn.calls.some((c) => INIT.has(c.name))) continue;
      const dev = devicePages(fn, ff, rangeMaps, rawAllocators);
      if (!dev.size) continue;
      for (const c of fn.calls) {
        if (!REF_TAKERS.has(c.name) || !c.args[0]) continue;
        const k = keyOf(c.args[0], ff);
        const ev = k && dev.get(objectPath(k));
        if (!ev) continue;
        ctx.report({
          message: `${c.name}(${ff.t(c.args[0])}) hands out a device page by hand (${ev.why}). Since 6.1 a free device-private or coherent page sits at refcount 0 with no pgmap reference: ${c.name === 'lock_page' || c.name === 'folio_lock' || c.name === 'trylock_page' ? 'locking it without zone_device_page_init() leaves it at refcount 0, so the first put frees it while it is mapped' : 'taking a reference on it trips the zero-refcount check, and no pgmap reference is taken, so unbinding the driver tears the memmap down under a mapped page'}. Call zone_device_page_init(page) instead; it takes the pgmap reference, sets the refcount to 1 and locks the page.`,
          at: c.node,
          related: [rel(ev.at, 'this is why it is a device page')],
          functionName: fn.info.name,
          events: [{ op: 'device_page_alloc', span: { start: ev.at.start, end: ev.at.end }, args: { init: false } }, callEvent(c, c.name, { page: ff.t(c.args[0]) })],
        });
        break;
      }
    }
  },
};
