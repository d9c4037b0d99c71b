/**
 * The history of the ZONE_DEVICE API: identifiers removed, renamed or added by
 * kernel version. Shared by the PGMAP-API-DRIFT rule (which reports them) and
 * its model scenario (which replays what the old identifier meant).
 *
 * Checked against Debian's 6.1 and 6.12 trees (every "removed" identifier is
 * absent from both; every "added before 6.12" one is present in both) and,
 * for later changes, against mainline patches. Entries marked `approx` carry a
 * version that could not be pinned to a tagged release.
 */
import type { KernelVersion } from '../core/types';

export interface Drift {
  /** Identifier (or the field name, for the member forms). */
  name: string;
  kind: 'ident' | 'pagePgmap' | 'pgmapRes' | 'opsField';
  /** First version that lacks it. */
  removedIn?: KernelVersion;
  /** First version that has it. */
  addedIn?: KernelVersion;
  use: string;
  approx?: boolean;
}

export const V = (major: number, minor: number): KernelVersion => ({ major, minor });

export const DRIFT: Drift[] = [
  { name: 'MEMORY_DEVICE_PUBLIC', kind: 'ident', removedIn: V(5, 3), use: 'MEMORY_DEVICE_COHERENT (6.0+) for CPU-coherent device memory' },
  { name: 'is_device_public_page', kind: 'ident', removedIn: V(5, 3), use: 'is_device_coherent_page() (6.0+)' },
  { name: 'MEMORY_DEVICE_HOST', kind: 'ident', removedIn: V(5, 3), use: 'MEMORY_DEVICE_FS_DAX or MEMORY_DEVICE_GENERIC', approx: true },
  { name: 'dev_page_fault_t', kind: 'ident', removedIn: V(5, 3), use: 'a dev_pagemap_ops table with .migrate_to_ram' },
  { name: 'dev_page_free_t', kind: 'ident', removedIn: V(5, 3), use: 'a dev_pagemap_ops table with .page_free' },
  { name: 'hmm_devmem_add', kind: 'ident', removedIn: V(5, 3), use: 'devm_memremap_pages() with a MEMORY_DEVICE_PRIVATE pgmap' },
  { name: 'hmm_devmem_add_resource', kind: 'ident', removedIn: V(5, 3), use: 'devm_memremap_pages()' },
  { name: 'hmm_vma_alloc_locked_page', kind: 'ident', removedIn: V(5, 3), use: 'alloc_page_vma() and lock_page()' },
  { name: 'MEMORY_DEVICE_DEVDAX', kind: 'ident', addedIn: V(5, 3), removedIn: V(5, 10), use: 'MEMORY_DEVICE_GENERIC' },
  { name: 'res', kind: 'pgmapRes', removedIn: V(5, 10), use: 'pgmap->range (with nr_range = 1) or pgmap->ranges[]' },
  { name: 'MIGRATE_PFN_LOCKED', kind: 'ident', removedIn: V(5, 17), use: 'lock_page() (zone_device_page_init() on 6.1+) on the destination page, without the flag', approx: true },
  { name: 'MEMORY_DEVICE_GENERIC', kind: 'ident', addedIn: V(5, 10), use: 'MEMORY_DEVICE_DEVDAX' },
  { name: 'MEMORY_DEVICE_COHERENT', kind: 'ident', addedIn: V(6, 0), use: 'nothing: device-coherent memory cannot be registered before 6.0' },
  { name: 'is_device_coherent_page', kind: 'ident', addedIn: V(6, 0), use: 'nothing before 6.0' },
  { name: 'zone_device_page_init', kind: 'ident', addedIn: V(6, 1), use: 'get_page() and lock_page() (the pre-6.1 protocol)' },
  { name: 'pgmap', kind: 'pagePgmap', removedIn: V(6, 15), use: 'page_pgmap(page)' },
  { name: 'page_pgmap', kind: 'ident', addedIn: V(6, 15), use: 'page->pgmap' },
  { name: 'folio_pgmap', kind: 'ident', addedIn: V(6, 15), use: 'folio->page.pgmap', approx: true },
  { name: 'zone_device_folio_init', kind: 'ident', addedIn: V(6, 19), use: 'zone_device_page_init()', approx: true },
  { name: 'folio_free', kind: 'opsField', addedIn: V(6, 19), use: '.page_free (taking a struct page *)', approx: true },
  { name: 'page_free', kind: 'opsField', removedIn: V(6, 19), use: '.folio_free (taking a struct folio *)', approx: true },
];
