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
