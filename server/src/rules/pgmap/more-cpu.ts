/**
 * PGMAP-PRIVATE-CPU-ACCESS: the CPU reads or writes a device-private page
 * through its (non-existent) kernel mapping.
 */
import { type AstNode, unwrap } from '../../core/ast';
import { objectPath } from '../../core/facts';
import { type Rule } from '../api';
import { asCall, callEvent, keyOf } from '../util';
import { privateSources, solveTaint } from './more-common';

/** CPU-access sinks: call name -> indexes of the page (or folio) arguments. */
export const CPU_PAGE_SINKS: Record<string, number[]> = {
  page_address: [0],
  lowmem_page_address: [0],
  page_to_virt: [0],
  folio_address: [0],
  kmap: [0],
  kmap_atomic: [0],
  kmap_local_page: [0],
  kmap_local_folio: [0],
  kmap_local_page_try_from_panic: [0],
  memcpy_from_page: [1],
  memcpy_to_page: [0],
  memcpy_page: [0, 2],
  memcpy_from_folio: [1],
  memcpy_to_folio: [0],
  copy_highpage: [0, 1],
  copy_user_highpage: [0, 1],
  copy_mc_user_highpage: [0, 1],
  clear_highpage: [0],
  clear_user_highpage: [0],
  zero_user: [0],
  zero_user_segment: [0],
  zero_user_segments: [0],
  folio_zero_range: [0],
  folio_zero_segment: [0],
  folio_zero_segments: [0],
  flush_dcache_page: [0],
  flush_dcache_folio: [0],
};

export const cpuPrivateAccess: Rule = {
  id: 'PGMAP-PRIVATE-CPU-ACCESS',
  family: 'pgmap',
  severity: 'error',
  summary: 'the CPU maps, reads or writes a device-private page, which has no kernel mapping',
  needs: ['migrate_pfn_to_page', 'is_device_private_page', 'folio_is_device_private', 'migrate_to_ram', 'MEMORY_DEVICE_PRIVATE', 'dev_private_owner'],
  context: ['hmm_pfn_to_page', 'pfn_to_page', 'phys_to_page', 'migrate_device_range', 'page_free', 'folio_free'],
  check(ctx) {
    const { ff } = ctx;
    for (const info of ff.analysedFunctions()) {
      const fn = ff.fn(info.name);
      if (!fn || !fn.calls.some((c) => c.name in CPU_PAGE_SINKS)) continue;
      const src = privateSources(ctx, fn);
      if (!src.any) continue;
      const before = solveTaint(fn, ff, src.spec);
      for (const c of fn.calls) {
        const idxs = CPU_PAGE_SINKS[c.name];
        if (!idxs) continue;
        const s = before[c.cfgNode];
        if (!s) continue;
        for (const i of idxs) {
          const a = c.args[i];
          if (!a) continue;
          const k = pageKey(a, fn, ff);
          const why = k && s.get(k);
          if (!why) continue;
          const maybe = /may report/.test(why);
          ctx.report({
            severity: maybe ? 'warning' : undefined,
            message: `${c.name}() is given ${why}. The CPU cannot address device-private memory: memremap_pages() created its struct pages with add_pages() and no kernel mapping, and the PFN names a physical range nothing decodes. The address ${c.name}() computes points at unmapped space or at unrelated RAM. Copy the data with the device (its copy engine over a DMA-mapped system page), or bail out on is_device_private_page().`,
            at: c.node,
            functionName: fn.info.name,
            events: [{ op: 'device_private_page', args: { source: why } }, callEvent(c, 'cpu_access_page', { via: c.name })],
          });
          break;
        }
      }
    }
  },
};

/** Key of a page argument; `&folio->page` and `folio_page(f, 0)` stand for the folio. */
function pageKey(a: AstNode, fn: import('../../core/facts').FunctionFacts, ff: import('../../core/facts').FileFacts): string | undefined {
  const u = unwrap(a);
  if (u.type === 'pointer_expression' && u.op === '&') {
    const inner = keyOf(u.children[0], ff);
    if (inner && /\.page$/.test(objectPath(inner))) return objectPath(inner).slice(0, -'.page'.length);
  }
  const c = asCall(u, fn);
  if (c && (c.name === 'folio_page' || c.name === 'page_folio') && c.args[0]) {
    const k = keyOf(c.args[0], ff);
    return k ? objectPath(k) : undefined;
  }
  const k = keyOf(u, ff);
  return k ? objectPath(k) : undefined;
}
