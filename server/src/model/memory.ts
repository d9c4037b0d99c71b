/**
 * Physical memory, struct pages and dev_pagemaps.
 *
 * Mirrors mm/memremap.c (6.12): memremap_pages() validates the pgmap the way
 * the kernel does (nr_range, per-type ops and owner), and pagemap_range()
 * decides whether the pages get a kernel mapping: DEVICE_PRIVATE pages are
 * added with add_pages() and no linear map; P2PDMA is mapped uncached
 * (pgprot_noncached); the others get a normal write-back mapping.
 */
import { hex, type Recorder, terminal } from './run';

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;

export type MemoryType = 'PRIVATE' | 'COHERENT' | 'FS_DAX' | 'GENERIC' | 'P2PDMA';

export interface MemoryTypeTraits {
  /** The CPU can load/store the memory through a kernel mapping. */
  cpuAddressable: boolean;
  /** Kernel mapping created by memremap_pages(). */
  kernelMapping: 'WB' | 'UC_MMIO' | 'NONE';
  /** Another device may DMA-map the pages with the generic DMA API. */
  peerDmaMappable: boolean;
  /** GUP may return and pin these pages (FOLL_LONGTERM migrates COHERENT first). */
  gupPinnable: boolean;
  /** A CPU fault on a user mapping migrates the data back to RAM (migrate_to_ram). */
  migratesOnCpuFault: boolean;
  /** zone_device_data may be read only by the pgmap owner. */
  zoneDeviceDataOwnerOnly: boolean;
  /** Where the range must come from. */
  rangeSource: 'free physical range (request_free_mem_region)' | 'the BAR of the providing device' | 'real memory';
}

/** What each `enum memory_type` value allows (include/linux/memremap.h, mm/memremap.c, mm/gup.c). */
export const MEMORY_TYPES: Record<MemoryType, MemoryTypeTraits> = {
  PRIVATE: {
    cpuAddressable: false,
    kernelMapping: 'NONE',
    peerDmaMappable: false,
    gupPinnable: false,
    migratesOnCpuFault: true,
    zoneDeviceDataOwnerOnly: true,
    rangeSource: 'free physical range (request_free_mem_region)',
  },
  COHERENT: {
    cpuAddressable: true,
    kernelMapping: 'WB',
    peerDmaMappable: true,
    gupPinnable: true,
    migratesOnCpuFault: false,
    zoneDeviceDataOwnerOnly: true,
    rangeSource: 'real memory',
  },
  FS_DAX: {
    cpuAddressable: true,
    kernelMapping: 'WB',
    peerDmaMappable: true,
    gupPinnable: false,
    migratesOnCpuFault: false,
    zoneDeviceDataOwnerOnly: false,
    rangeSource: 'real memory',
  },
  GENERIC: {
    cpuAddressable: true,
    kernelMapping: 'WB',
    peerDmaMappable: true,
    gupPinnable: true,
    migratesOnCpuFault: false,
    zoneDeviceDataOwnerOnly: false,
    rangeSource: 'real memory',
  },
  P2PDMA: {
    cpuAddressable: true,
    kernelMapping: 'UC_MMIO',
    peerDmaMappable: true,
    gupPinnable: false,
    migratesOnCpuFault: false,
    zoneDeviceDataOwnerOnly: false,
    rangeSource: 'the BAR of the providing device',
  },
};

export type RegionKind = 'ram' | 'bar' | 'free';

export interface Region {
  start: number;
  size: number;
  kind: RegionKind;
  /** Owner: "System RAM", a device name for a BAR. */
  owner: string;
  /** For a BAR: the device's BDF and BAR index, and its bus address (may differ from the CPU address). */
  bar?: { bdf: string; index: number; busAddress: number };
}

/** The physical address space as the CPU sees it. */
export class PhysMap {
  readonly regions: Region[] = [];

  add(r: Region): Region {
    this.regions.push(r);
    this.regions.sort((a, b) => a.start - b.start);
    return r;
  }

  at(addr: number): Region | undefined {
    return this.regions.find((r) => addr >= r.start && addr < r.start + r.size);
  }

  /** request_free_mem_region(): a range that nothing decodes, above everything else. */
  requestFree(size: number, name: string): Region {
    const top = this.regions.reduce((m, r) => Math.max(m, r.start + r.size), 0);
    const align = 1 << 30;
    const start = Math.ceil((top + align) / align) * align;
    return this.add({ start, size, kind: 'free', owner: name });
  }

  /** Who decodes a physical address: RAM, a device BAR, or nobody. */
  describe(addr: number): string {
    const r = this.at(addr);
    if (!r) return `nothing (no RAM or BAR decodes ${hex(addr)})`;
    if (r.kind === 'free') return `nothing (${hex(addr)} lies in a free range handed out for ${r.owner}, which no device decodes)`;
    if (r.kind === 'bar') return `BAR${r.bar!.index} of ${r.owner} (${r.bar!.bdf})`;
    return `System RAM at ${hex(addr)}`;
  }
}

export interface PgMapSpec {
  type?: MemoryType;
  rangeStart?: number;
  rangeSize?: number;
  nrRange?: number;
  ops?: { migrateToRam?: boolean; pageFree?: boolean };
  owner?: string;
}

export class PgMap {
  ref: 'live' | 'dying' | 'dead' = 'live';
  pages: Page[] = [];
  constructor(readonly spec: Required<Pick<PgMapSpec, 'type' | 'rangeStart' | 'rangeSize'>> & PgMapSpec) {}
  get type(): MemoryType {
    return this.spec.type;
  }
}

export class Page {
  refcount = 0;
  locked = false;
  constructor(
    readonly pfn: number,
    readonly pgmap?: PgMap,
  ) {}

  get phys(): number {
    return this.pfn * PAGE_SIZE;
  }

  /** The kernel virtual address kind of this page. */
  get kva(): 'WB' | 'UC_MMIO' | 'NONE' {
    return this.pgmap ? MEMORY_TYPES[this.pgmap.type].kernelMapping : 'WB';
  }

  describe(): string {
    return this.pgmap ? `a MEMORY_DEVICE_${this.pgmap.type} page (pfn ${hex(this.pfn)})` : `a System RAM page (pfn ${hex(this.pfn)})`;
  }
}

/**
 * memremap_pages(): the validation of mm/memremap.c, then page creation.
 * Missing fields WARN and fail with -EINVAL, as the kernel does.
 */
export function memremapPages(r: Recorder, phys: PhysMap, spec: PgMapSpec): PgMap {
  const fail = (msg: string) => {
    r.step('kernel', `memremap_pages() WARNs "${msg}" and returns ERR_PTR(-EINVAL)`, { pgmap: 'rejected' });
    terminal('WARN', `memremap_pages() refuses the pgmap with a WARN ("${msg}"); the device memory is never registered`, 'the driver\'s probe');
  };
  if (!spec.nrRange) fail('nr_range must be specified');
  switch (spec.type) {
    case 'PRIVATE':
      if (!spec.ops?.migrateToRam) fail('Missing migrate_to_ram method');
      if (!spec.ops?.pageFree) fail('Missing page_free method');
      if (!spec.owner) fail('Missing owner');
      break;
    case 'COHERENT':
      if (!spec.ops?.pageFree) fail('Missing page_free method');
      if (!spec.owner) fail('Missing owner');
      break;
    case undefined:
      fail('Invalid pgmap type 0');
      break;
    default:
      break;
  }
  const start = spec.rangeStart ?? 0;
  const size = spec.rangeSize ?? PAGE_SIZE * 4;
  const region = phys.at(start);
  if (region?.kind === 'ram') fail(`attempted on System RAM region ${hex(start)}-${hex(start + size - 1)}`);
  const pgmap = new PgMap({ ...spec, type: spec.type!, rangeStart: start, rangeSize: size });
  const n = Math.min(4, Math.floor(size / PAGE_SIZE));
  for (let i = 0; i < n; i++) {
    const p = new Page(start / PAGE_SIZE + i, pgmap);
    pgmap.pages.push(p);
  }
  const t = MEMORY_TYPES[pgmap.type];
  r.step('kernel', `memremap_pages() creates struct pages for ${hex(start)}-${hex(start + size - 1)} as MEMORY_DEVICE_${pgmap.type}` +
    (t.kernelMapping === 'NONE' ? ' with add_pages(): no kernel mapping' : t.kernelMapping === 'UC_MMIO' ? ' mapped uncached (it is MMIO)' : ' with a write-back kernel mapping'), {
    pgmap: `MEMORY_DEVICE_${pgmap.type}`,
    range: `${hex(start)}+${hex(size)}`,
    backing: phys.describe(start),
  });
  return pgmap;
}

// ---------------------------------------------------------------------------
// Lifetimes, references and owners of ZONE_DEVICE pages (mm/memremap.c 6.12:
// memunmap_pages(), free_zone_device_folio(), zone_device_page_init(),
// get_dev_pagemap(); include/linux/memremap.h: pgmap->owner,
// page->zone_device_data). Additive: the state lives beside PgMap and Page.

/** SUBSECTION_SIZE: memremap_pages() adds and tracks memory in 2 MiB subsections. */
export const SUBSECTION_SIZE = 2 << 20;

export type PgmapStorage = 'heap' | 'stack' | 'static';

/** What the core and the driver know about one pgmap beyond its spec. */
export interface PgmapLife {
  storage: PgmapStorage;
  /** The memory holding the struct dev_pagemap is still the pgmap (not freed, frame not reused). */
  storageValid: boolean;
  /** The pgmap percpu ref: one per page handed out with zone_device_page_init(). */
  refs: number;
  /** percpu_ref_kill() has run. */
  dying: boolean;
  /** Still in the core's pgmap table (pgmap_array). */
  registered: boolean;
}

/** Per-page state beyond refcount and lock. */
export interface PageLife {
  /** The memmap of the page was torn down by memunmap_pages(). */
  memmapGone: boolean;
  /** The page holds a pgmap reference (taken by zone_device_page_init()). */
  holdsPgmapRef: boolean;
  /** page->zone_device_data: what the owning driver stores there. */
  zoneDeviceData?: { owner: string; type: string; fields: Record<string, number> };
  /** Mapped into a process (a device-private swap entry or a present PTE). */
  mappedInProcess: boolean;
}

const pgmapLives = new WeakMap<PgMap, PgmapLife>();
const pageLives = new WeakMap<Page, PageLife>();

export function pgmapLife(p: PgMap): PgmapLife {
  let l = pgmapLives.get(p);
  if (!l) pgmapLives.set(p, (l = { storage: 'heap', storageValid: true, refs: 0, dying: false, registered: true }));
  return l;
}

export function pageLife(p: Page): PageLife {
  let l = pageLives.get(p);
  if (!l) pageLives.set(p, (l = { memmapGone: false, holdsPgmapRef: false, mappedInProcess: false }));
  return l;
}

/** The pgmap table of the core (pgmap_array), with the subsection conflict check of pagemap_range(). */
export class PgmapTable {
  readonly maps: PgMap[] = [];

  /**
   * Registers a pgmap the way pagemap_range() does: refuses a range whose first
   * or last subsection already belongs to another pgmap.
   */
  register(r: Recorder, p: PgMap): void {
    const sub = (a: number) => Math.floor(a / SUBSECTION_SIZE);
    const first = sub(p.spec.rangeStart);
    const last = sub(p.spec.rangeStart + p.spec.rangeSize - 1);
    for (const o of this.maps) {
      if (!pgmapLife(o).registered) continue;
      const of = sub(o.spec.rangeStart);
      const ol = sub(o.spec.rangeStart + o.spec.rangeSize - 1);
      if (first <= ol && of <= last) {
        r.step('kernel', `pagemap_range(): get_dev_pagemap() finds another pgmap in subsection ${hex(Math.max(first, of) * SUBSECTION_SIZE)}: WARN "Conflicting mapping in same section", -ENOMEM`, { pgmap: 'rejected' });
        terminal('WARN', 'memremap_pages() refuses the second pgmap: two ranges share a 2 MiB subsection, so the device behind the second one never gets its pages', 'the second device\'s probe');
      }
    }
    this.maps.push(p);
    pgmapLife(p).registered = true;
  }

  /** get_dev_pagemap(pfn): the pgmap covering the pfn, with a live reference. */
  lookup(r: Recorder, pfn: number): PgMap | undefined {
    const addr = pfn * PAGE_SIZE;
    const p = this.maps.find((m) => pgmapLife(m).registered && addr >= m.spec.rangeStart && addr < m.spec.rangeStart + m.spec.rangeSize);
    if (!p) return undefined;
    const l = pgmapLife(p);
    if (!l.storageValid) {
      r.step('kernel', `get_dev_pagemap(${hex(pfn)}) finds the pgmap in pgmap_array and calls percpu_ref_tryget_live(&pgmap->ref) on memory that is no longer a dev_pagemap`, { pgmap: 'freed' });
      terminal('UAF', 'get_dev_pagemap() dereferences a freed dev_pagemap: the percpu ref it "takes" is whatever now lives at that address', 'the freed dev_pagemap');
    }
    return p;
  }
}

/**
 * memremap_pages() that records a failure instead of ending the run (the
 * caller decides what happens next): the pgmap, or the error it returned.
 */
export function tryMemremapPages(r: Recorder, phys: PhysMap, spec: PgMapSpec, table?: PgmapTable): PgMap | { error: string } {
  try {
    const p = memremapPages(r, phys, spec);
    table?.register(r, p);
    return p;
  } catch (e) {
    if (e instanceof Error && 'outcome' in e) return { error: (e as { outcome: { summary: string } }).outcome.summary };
    throw e;
  }
}

/** zone_device_page_init(): a pgmap reference, refcount 1, page locked. */
export function zoneDevicePageInit(r: Recorder, page: Page): void {
  const p = page.pgmap!;
  const l = pgmapLife(p);
  if (l.dying) r.step('kernel', 'zone_device_page_init(): percpu_ref_tryget_live() fails on a dying pgmap: WARN_ON_ONCE', { pgmap: 'dying' });
  l.refs++;
  page.refcount = 1;
  page.locked = true;
  pageLife(page).holdsPgmapRef = true;
  r.step('kernel', 'zone_device_page_init() takes a pgmap reference, sets the refcount to 1 and locks the page', { 'page refcount': page.refcount, 'pgmap refs': l.refs, 'page locked': true });
}

/** get_page() on a page (no pgmap reference is taken). */
export function getPage(r: Recorder, page: Page, who = 'get_page()'): void {
  const from = page.refcount;
  page.refcount++;
  r.step('driver', `${who} raises the refcount from ${from} to ${page.refcount}${page.pgmap && from === 0 ? ' on a free device page: no pgmap reference is taken (with CONFIG_DEBUG_VM, VM_BUG_ON_PAGE on the zero refcount)' : ''}`, { 'page refcount': page.refcount });
}

/**
 * put_page(): drops a reference; at zero a ZONE_DEVICE page goes to
 * free_zone_device_folio(): ops->page_free(), then put_dev_pagemap() for
 * device-private and coherent pages. Returns what happened.
 */
export function putPage(r: Recorder, page: Page, who = 'put_page()'): 'dropped' | 'freed' | 'underflow' {
  page.refcount--;
  if (page.refcount > 0) {
    r.step('kernel', `${who} drops the refcount to ${page.refcount}`, { 'page refcount': page.refcount });
    return 'dropped';
  }
  if (page.refcount < 0) {
    r.step('kernel', `${who} drops the refcount below zero (${page.refcount}): the page is freed a second time`, { 'page refcount': page.refcount });
    return 'underflow';
  }
  const p = page.pgmap;
  if (!p) {
    r.step('kernel', `${who} drops the last reference: the page goes back to the buddy allocator`, { 'page refcount': 0 });
    return 'freed';
  }
  const l = pgmapLife(p);
  if (!l.storageValid) {
    r.step('kernel', `${who} drops the last reference: free_zone_device_folio() reads page->pgmap->ops->page_free from the dev_pagemap's memory, which is no longer a dev_pagemap`, { pgmap: 'freed' });
    terminal(l.storage === 'stack' ? 'CPU_FAULT' : 'UAF', l.storage === 'stack' ? 'the "ops" pointer read from the reused stack frame is garbage: the indirect call to page_free jumps into the weeds (oops, or worse, a controlled call)' : 'free_zone_device_folio() calls through a freed dev_pagemap', 'the page free path');
  }
  r.step('kernel', `${who} drops the last reference: free_zone_device_folio() calls the driver's page_free()${p.type === 'PRIVATE' || p.type === 'COHERENT' ? ' and put_dev_pagemap()' : ''}`, { 'page refcount': 0 });
  if (p.type === 'PRIVATE' || p.type === 'COHERENT') {
    l.refs--;
    pageLife(page).holdsPgmapRef = false;
    r.step('kernel', `the pgmap reference count drops to ${l.refs}`, { 'pgmap refs': l.refs });
  } else page.refcount = 1;
  return 'freed';
}

/**
 * memunmap_pages(): percpu_ref_kill(), wait until no page holds a pgmap
 * reference, then remove the memmap of every page.
 */
export function memunmapPages(r: Recorder, p: PgMap, table?: PgmapTable): void {
  const l = pgmapLife(p);
  l.dying = true;
  r.step('kernel', `memunmap_pages() kills the pgmap's percpu ref and waits for it to reach zero (${l.refs} page reference${l.refs === 1 ? '' : 's'} outstanding)`, { 'pgmap refs': l.refs });
  if (l.refs > 0) {
    r.step('kernel', 'wait_for_completion(&pgmap->done) sleeps until the last page is freed', { pgmap: 'dying' });
    terminal('HANG', 'memunmap_pages() waits forever: pages still hold references to the pgmap', 'the unbinding task');
  }
  for (const page of p.pages) pageLife(page).memmapGone = true;
  l.registered = false;
  if (table) table.maps.splice(table.maps.indexOf(p), 1);
  r.step('kernel', 'the percpu ref is dead: pageunmap_range() removes the struct pages and drops the range from pgmap_array', { pgmap: 'unmapped', memmap: 'removed' });
}

/** The memory that holds a pgmap is freed (kfree, devm release) or its stack frame is reused. */
export function invalidatePgmapStorage(r: Recorder, p: PgMap, how: string): void {
  const l = pgmapLife(p);
  l.storageValid = false;
  r.step('driver', how, { 'dev_pagemap memory': l.storage === 'stack' ? 'reused stack frame' : 'freed' });
}

/**
 * The CPU touches the data of a page through its kernel address
 * (page_address(), kmap_local_page(), copy_highpage()).
 */
export function cpuAccessPage(r: Recorder, phys: PhysMap, page: Page, what: string): void {
  const l = pageLife(page);
  if (l.memmapGone) terminal('UAF', `${what} uses a struct page whose memmap memunmap_pages() removed`, 'the removed memmap');
  const kva = page.kva;
  if (kva === 'NONE') {
    r.step('cpu', `${what}: page_address() computes __va(${hex(page.phys)}), but memremap_pages() gave device-private pages no kernel mapping (add_pages() only); the direct map has no PTE there`, { kva: 'unmapped' });
    terminal('CPU_FAULT', `the access through __va(${hex(page.phys)}) faults: "unable to handle page fault" in kernel mode, oops`, 'the calling task');
  }
  const region = phys.at(page.phys);
  if (!region || region.kind === 'free') {
    r.step('cpu', `${what}: the write-back kernel mapping of ${hex(page.phys)} points at ${phys.describe(page.phys)}`, { kva: kva });
    terminal('CPU_FAULT', `the CPU's load from ${hex(page.phys)} is answered by nobody: a machine check (x86) or synchronous external abort (arm64)`, 'the calling task');
  }
  if (region.kind === 'bar' && kva === 'WB') {
    r.step('cpu', `${what}: the page is a BAR of ${region.owner} mapped write-back: stores sit in the CPU cache and loads may come from it`, { kva: 'WB over MMIO' });
    terminal('SILENT_CORRUPTION', `writes to ${region.owner}'s registers or memory are delayed, merged or lost in the cache, and reads return stale lines`, `${region.owner}`);
  }
  r.step('cpu', `${what} reads and writes ${phys.describe(page.phys)} through the kernel mapping`);
}

/** page->zone_device_data written by the owning driver. */
export function setZoneDeviceData(page: Page, data: { owner: string; type: string; fields: Record<string, number> }): void {
  pageLife(page).zoneDeviceData = data;
}

/**
 * A driver reads page->zone_device_data (or container_of() of the pgmap) as
 * its own `type`. Returns the field it wanted; another owner's data gives
 * whatever that owner stored at the same place.
 */
export function readZoneDeviceData(r: Recorder, page: Page, reader: { owner: string; type: string; field: string }): number {
  const zdd = pageLife(page).zoneDeviceData;
  const owner = page.pgmap?.spec.owner;
  if (!zdd) return 0;
  if (owner === reader.owner && zdd.type === reader.type) {
    r.step('driver', `${reader.owner} reads its own ${reader.type} from zone_device_data: ${reader.field} = ${hex(zdd.fields[reader.field] ?? 0)}`);
    return zdd.fields[reader.field] ?? 0;
  }
  const values = Object.values(zdd.fields);
  const garbage = values[0] ?? 0;
  r.step('driver', `${reader.owner} reads zone_device_data of a page whose pgmap belongs to ${owner ?? 'someone else'}: it holds a ${zdd.type}, read as a ${reader.type}, so ${reader.field} = ${hex(garbage)}`, {
    'page owner': owner ?? '?',
    reader: reader.owner,
    [reader.field]: hex(garbage),
  });
  return garbage;
}

/** The slab/devres view of allocations: freeing an address the allocator never returned. */
export class Allocations {
  private readonly live: Array<{ base: number; size: number; what: string; devm: boolean }> = [];
  // Kernel addresses without the 0xffff sign extension, so that they stay exact JavaScript numbers.
  private next = 0x8881_2000_0000;

  alloc(size: number, what: string, devm = false): number {
    const base = this.next;
    this.next += Math.ceil(size / 64) * 64 + 64;
    this.live.push({ base, size, what, devm });
    return base;
  }

  /** kfree()/devm_kfree() of `addr`. */
  free(r: Recorder, addr: number, how: 'kfree' | 'devm_kfree'): void {
    const a = this.live.find((x) => addr >= x.base && addr < x.base + x.size);
    if (!a) terminal('UAF', `${how}(${hex(addr)}) of memory that is not allocated`, 'the allocator');
    if (addr === a.base) {
      this.live.splice(this.live.indexOf(a), 1);
      r.step('kernel', `${how}() frees ${a.what}`, { [a.what]: 'freed' });
      return;
    }
    if (how === 'devm_kfree') {
      r.step('kernel', `devm_kfree(${hex(addr)}): devres_destroy() finds no devres whose data starts there (${a.what} starts at ${hex(a.base)}): WARN_ON(rc), nothing is freed`, { [a.what]: 'still allocated, no owner' });
      terminal('LEAK', `${a.what} is never freed (and a WARN fires on every failed probe)`, a.what);
    }
    r.step('kernel', `kfree(${hex(addr)}) is given an address ${addr - a.base} bytes into ${a.what}: the slab allocator puts a pointer that is not an object start on its freelist`, { slab: 'corrupted freelist' });
    terminal('SILENT_CORRUPTION', `the next allocation from that slab returns memory overlapping ${a.what}, which is still in use`, 'the slab cache');
  }
}

/**
 * pfn_to_page() on a device range and a use of the page: only pgmaps the
 * table holds have a memmap there.
 */
export function useDevicePfn(r: Recorder, table: PgmapTable, pfn: number, what: string): Page {
  const addr = pfn * PAGE_SIZE;
  const p = table.maps.find((m) => pgmapLife(m).registered && addr >= m.spec.rangeStart && addr < m.spec.rangeStart + m.spec.rangeSize);
  if (!p) {
    r.step('driver', `${what}: pfn_to_page(${hex(pfn)}) points into the vmemmap of a range that memremap_pages() never populated`, { memmap: 'absent' });
    terminal('CPU_FAULT', `the first access to that struct page faults (no vmemmap backing), or on a populated neighbouring section reads a page of something else`, 'the driver');
  }
  return p.pages[0];
}
