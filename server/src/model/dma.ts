/**
 * The DMA API and the IOMMU: how a driver's dma_map_*() turns a page or a
 * physical address into the address a device emits, and where that device's
 * write actually lands.
 *
 * - dma_map_page() takes page_to_phys(page) (kernel/dma/direct.c, or the
 *   IOMMU's iommu_dma_map_page): with the IOMMU off or in passthrough the
 *   device gets the physical address back; translated, it gets an IOVA mapped
 *   to that physical address. Neither path asks whether anything decodes it.
 * - A device write goes through its IOMMU domain (a miss is an IOMMU fault),
 *   then to the physical address: RAM, a BAR (routed over PCIe, which may not
 *   support the peer path), or nothing (unsupported request).
 */
import { memremapPages, type PgMap, type PhysMap, type Page, type Region } from './memory';
import { hex, type Recorder, terminal } from './run';

export type IommuMode = 'off' | 'passthrough' | 'translated';

export interface DeviceInfo {
  name: string;
  bdf: string;
  iommu: IommuMode;
}

/** Peer-to-peer routing between two PCI functions, as drivers/pci/p2pdma.c decides it. */
export interface Fabric {
  route(from: string, to: string): { mapType: 'bus-address' | 'thru-host-bridge' | 'not-supported'; reason: string };
  /** Whether the root complex forwards a peer write from `from` to `to` (after the IOMMU), and why. */
  viaHostBridge(from: string, to: string): { ok: boolean; reason: string };
}

interface Mapping {
  iova: number;
  phys: number;
  size: number;
}

export class Iommu {
  private readonly domains = new Map<string, Mapping[]>();
  private nextIova = 0xfff00000;

  map(dev: DeviceInfo, phys: number, size: number): number {
    const list = this.domains.get(dev.bdf) ?? [];
    const iova = (this.nextIova -= Math.max(size, 4096));
    list.push({ iova, phys, size });
    this.domains.set(dev.bdf, list);
    return iova;
  }

  /** A mapping at a chosen IOVA (VFIO maps guest-physical addresses 1:1 as IOVAs). */
  mapAt(dev: DeviceInfo, iova: number, phys: number, size: number): number {
    const list = this.domains.get(dev.bdf) ?? [];
    list.push({ iova, phys, size });
    this.domains.set(dev.bdf, list);
    return iova;
  }

  unmap(dev: DeviceInfo, iova: number): void {
    const list = this.domains.get(dev.bdf) ?? [];
    this.domains.set(dev.bdf, list.filter((m) => m.iova !== iova));
  }

  translate(dev: DeviceInfo, addr: number): number | undefined {
    for (const m of this.domains.get(dev.bdf) ?? []) if (addr >= m.iova && addr < m.iova + m.size) return m.phys + (addr - m.iova);
    return undefined;
  }
}

export class DmaApi {
  constructor(
    readonly r: Recorder,
    readonly phys: PhysMap,
    readonly iommu: Iommu,
    readonly fabric: Fabric,
  ) {}

  /** dma_map_page(dev, page): page_to_phys(), then the IOMMU if the device is translated. */
  mapPage(dev: DeviceInfo, page: Page, size = 4096): number {
    return this.mapPhys(dev, page.phys, size, `dma_map_page(${dev.name}, ${page.describe()})`);
  }

  mapPhys(dev: DeviceInfo, phys: number, size: number, what: string): number {
    if (dev.iommu === 'translated') {
      const iova = this.iommu.map(dev, phys, size);
      this.r.step('kernel', `${what} computes phys ${hex(phys)} and maps IOVA ${hex(iova)} to it in ${dev.name}'s IOMMU domain`, {
        dma_addr: hex(iova),
        'iommu mapping': `${hex(iova)} -> ${hex(phys)}`,
      });
      return iova;
    }
    this.r.step('kernel', `${what} returns the physical address ${hex(phys)} as the DMA address (IOMMU ${dev.iommu})`, { dma_addr: hex(phys) });
    return phys;
  }

  /**
   * dma_map_sg()/dma_map_sgtable() of a P2PDMA page for `dev`: the map type
   * decides (pci_p2pdma_map_segment): a switch-local path gets the bus
   * address, a path through an allowlisted host bridge gets an IOMMU mapping,
   * an unsupported path makes the mapping fail (-EREMOTEIO).
   */
  mapPeer(dev: DeviceInfo, region: Region, offset: number, what: string): number {
    const route = this.fabric.route(dev.bdf, region.bar!.bdf);
    if (route.mapType === 'bus-address') {
      const bus = region.bar!.busAddress + offset;
      this.r.step('kernel', `${what}: PCI_P2PDMA_MAP_BUS_ADDR (${route.reason}), so the device gets the bus address ${hex(bus)}`, { dma_addr: hex(bus) });
      return bus;
    }
    if (route.mapType === 'thru-host-bridge') return this.mapPhys(dev, region.start + offset, 4096, `${what} (PCI_P2PDMA_MAP_THRU_HOST_BRIDGE)`);
    this.r.step('kernel', `${what}: PCI_P2PDMA_MAP_NOT_SUPPORTED (${route.reason})`, { mapping: 'refused' });
    terminal('IO_ERROR', `dma_map_sg() returns 0 (dma_map_sgtable() -EREMOTEIO): ${dev.name} can never reach ${region.owner}'s memory on this machine, so every such transfer fails`, 'the transfer');
  }

  /**
   * The device writes to `dmaAddr`. Returns where the write landed; reaches a
   * terminal state when the IOMMU or the fabric stops it.
   */
  deviceWrite(dev: DeviceInfo, dmaAddr: number, what = 'data'): string {
    // A switch routes by address: a peer BAR's bus address below a common switch never reaches the IOMMU.
    for (const region of this.phys.regions) {
      if (region.kind !== 'bar' || region.bar!.bdf === dev.bdf) continue;
      const bus = region.bar!.busAddress;
      if (dmaAddr < bus || dmaAddr >= bus + region.size) continue;
      const route = this.fabric.route(dev.bdf, region.bar!.bdf);
      if (route.mapType !== 'bus-address') continue;
      this.r.step('device', `${dev.name} writes ${what} to bus address ${hex(dmaAddr)}`, { initiator: dev.bdf });
      this.r.step('bus', `the PCIe switch routes the TLP straight to ${region.owner} (${route.reason}); the IOMMU never sees it`, { route: 'switch-local' });
      return `BAR${region.bar!.index} of ${region.owner} at bus ${hex(dmaAddr)}`;
    }
    let phys = dmaAddr;
    this.r.step('device', `${dev.name} writes ${what} to ${hex(dmaAddr)}${dev.iommu === 'translated' ? '' : ' (no IOMMU translation)'}`, { initiator: dev.bdf });
    if (dev.iommu === 'translated') {
      const t = this.iommu.translate(dev, dmaAddr);
      if (t === undefined) {
        terminal('IOMMU_FAULT', `${dev.name}'s IOMMU has no mapping for ${hex(dmaAddr)}: DMA write fault, the transfer is dropped`, `${dev.name}'s DMA`);
      }
      phys = t;
      this.r.step('iommu', `translates ${hex(dmaAddr)} to ${hex(phys)}`, { phys: hex(phys) });
    }
    const region = this.phys.at(phys);
    if (!region || region.kind === 'free') {
      terminal('UR_AER', `the write to ${hex(phys)} reaches ${this.phys.describe(phys)}: the root complex answers Unsupported Request and AER logs it; the data is lost`, this.phys.describe(phys));
    }
    if (region.kind === 'bar') {
      // The write went up to the root complex: it is peer-to-peer through the host bridge now.
      const hb = this.fabric.viaHostBridge(dev.bdf, region.bar!.bdf);
      this.r.step('bus', `the root complex must forward the write from ${dev.bdf} to ${region.owner} (${region.bar!.bdf}): ${hb.reason}`, {
        route: hb.ok ? 'thru-host-bridge' : 'not-supported',
      });
      if (!hb.ok) {
        terminal('UR_AER', `the root complex does not forward peer-to-peer traffic from ${dev.name} to ${region.owner} (${hb.reason}): Unsupported Request / completer abort, AER, data dropped`, `${region.owner}'s BAR`);
      }
      return `BAR${region.bar!.index} of ${region.owner} at ${hex(phys)}`;
    }
    return `System RAM at ${hex(phys)}`;
  }
}

// ---------------------------------------------------------------------------
// PCI P2PDMA providers (drivers/pci/p2pdma.c, lib/genalloc.c, 6.12): the
// per-provider gen_pool whose chunk owner is the pgmap's percpu_ref, the
// published flag, pci_alloc_p2pmem()/pci_free_p2pmem(), and memunmap_pages()
// waiting for the pgmap reference on unbind.

/** Kernel virtual addresses of the linear map, kept below 2^53 so they stay exact numbers. */
export const KVA_BASE = 0x10_0000_0000_0000;
const P2P_PAGE = 4096;

/**
 * A percpu_ref as a dev_pagemap uses it: created with one reference that
 * percpu_ref_kill() drops; tryget_live fails once killed; the pgmap's
 * `done` completes when the count reaches zero.
 */
export class PercpuRef {
  count = 1;
  live = true;
  constructor(
    readonly r: Recorder,
    readonly name: string,
  ) {}

  tryGetLive(): boolean {
    if (!this.live) return false;
    this.count++;
    return true;
  }

  get(): void {
    this.count++;
  }

  put(why?: string): void {
    this.count--;
    if (why) this.r.step('kernel', why, { [this.name]: this.count });
    if (this.count < 0) terminal('WARN', `percpu_ref_put() underflows ${this.name}: "percpu ref ... <= 0 after switching to atomic" WARN, and the pgmap can be torn down while still in use`, this.name);
  }

  /** percpu_ref_kill() then wait_for_completion(&pgmap->done), as memunmap_pages() does. */
  killAndWait(who: string): void {
    this.live = false;
    this.count--;
    this.r.step('kernel', `${who}: memunmap_pages() kills ${this.name} and waits for its count to reach 0`, { [this.name]: `${this.count} (dying)` });
    if (this.count > 0) terminal('HANG', `memunmap_pages() waits forever on ${this.name}: ${this.count} reference${this.count === 1 ? ' was' : 's were'} never dropped, so unbinding the provider (or removing the device) never finishes`, who);
  }
}

interface PoolChunk {
  start: number;
  size: number;
  phys: number;
  owner?: PercpuRef;
  /** Who holds each page of the chunk (undefined: free). */
  holder: Array<string | undefined>;
}

/** lib/genalloc.c with min_alloc_order PAGE_SHIFT (one bitmap bit per page), as pci_p2pdma_setup() creates it. */
export class GenPool {
  private readonly chunks: PoolChunk[] = [];
  constructor(
    readonly r: Recorder,
    readonly name: string,
  ) {}

  /** gen_pool_add_owner(): a chunk of virtual addresses [start, start+size) at physical (here: bus) address phys. */
  addOwner(start: number, phys: number, size: number, owner?: PercpuRef): void {
    this.chunks.push({ start, size, phys, owner, holder: new Array(Math.ceil(size / P2P_PAGE)).fill(undefined) });
  }

  get avail(): number {
    return this.chunks.reduce((n, c) => n + c.holder.filter((h) => h === undefined).length * P2P_PAGE, 0);
  }

  /** gen_pool_alloc_owner(): first fit; undefined when nothing fits. */
  alloc(size: number, who: string): { addr: number; owner?: PercpuRef } | undefined {
    const n = Math.ceil(size / P2P_PAGE);
    for (const c of this.chunks) {
      for (let i = 0; i + n <= c.holder.length; i++) {
        if (c.holder.slice(i, i + n).some((h) => h !== undefined)) continue;
        for (let j = i; j < i + n; j++) c.holder[j] = who;
        return { addr: c.start + i * P2P_PAGE, owner: c.owner };
      }
    }
    return undefined;
  }

  /** Who holds the page at `addr`. */
  holderAt(addr: number): string | undefined {
    const c = this.chunks.find((x) => addr >= x.start && addr < x.start + x.size);
    return c?.holder[Math.floor((addr - c.start) / P2P_PAGE)];
  }

  /**
   * gen_pool_free_owner(): clears the bits of `size` bytes at `addr`. An
   * address in no chunk is BUG(); a bit that is already clear is
   * BUG_ON(remain). Bits held by someone else are cleared silently.
   */
  free(addr: number, size: number, who: string): { owner?: PercpuRef; stolen: string[] } {
    const c = this.chunks.find((x) => addr >= x.start && addr < x.start + x.size);
    if (!c) terminal('CPU_FAULT', `kernel BUG at lib/genalloc.c: gen_pool_free_owner() finds ${hex(addr)} in no chunk of ${this.name} (BUG())`, 'the freeing task');
    const first = Math.floor((addr - c.start) / P2P_PAGE);
    const n = Math.ceil(size / P2P_PAGE);
    if (first + n > c.holder.length) terminal('CPU_FAULT', `kernel BUG at lib/genalloc.c: the range freed runs past the end of the chunk (BUG_ON(addr + size - 1 > chunk->end_addr))`, 'the freeing task');
    const bits = c.holder.slice(first, first + n);
    if (bits.some((h) => h === undefined)) terminal('CPU_FAULT', `kernel BUG at lib/genalloc.c: gen_pool_free_owner() clears ${n} page bit${n === 1 ? '' : 's'} at ${hex(addr)} but ${bits.filter((h) => h === undefined).length} of them ${bits.filter((h) => h === undefined).length === 1 ? 'is' : 'are'} already free (BUG_ON(remain))`, 'the freeing task');
    const stolen = [...new Set(bits.filter((h): h is string => h !== undefined && h !== who))];
    for (let j = first; j < first + n; j++) c.holder[j] = undefined;
    this.r.step('kernel', `gen_pool_free_owner(${hex(addr)}, ${n * P2P_PAGE}) clears ${n} page bit${n === 1 ? '' : 's'} in ${this.name}${stolen.length ? `, including ${stolen.join(', ')}'s` : ''}`, { [`${this.name} free`]: `${this.avail / P2P_PAGE} pages` });
    return { owner: c.owner, stolen };
  }

  virtToPhys(addr: number): number | undefined {
    const c = this.chunks.find((x) => addr >= x.start && addr < x.start + x.size);
    return c ? c.phys + (addr - c.start) : undefined;
  }

  /** gen_pool_destroy(): BUG_ON when a chunk still has allocated bits. */
  destroy(): void {
    for (const c of this.chunks) {
      const used = c.holder.filter((h) => h !== undefined);
      if (used.length) terminal('CPU_FAULT', `kernel BUG at lib/genalloc.c: gen_pool_destroy() finds ${used.length} page${used.length === 1 ? '' : 's'} of ${this.name} still allocated (${[...new Set(used)].join(', ')}) (BUG_ON(bit < end_bit))`, 'the unbinding task');
    }
  }
}

/** The p2pdma state of one PCI function: `pdev->p2pdma` and the pgmap of its registered BAR. */
export class P2pProvider {
  /** pdev->p2pdma: created by the first pci_p2pdma_add_resource() (pci_p2pdma_setup()). */
  p2pdma?: { pool: GenPool; published: boolean };
  pgmapRef?: PercpuRef;
  /** Offset of the registered range inside the BAR. */
  offset = 0;

  /** The MEMORY_DEVICE_PCI_P2PDMA pgmap devm_memremap_pages() created (its first pages). */
  pgmap?: PgMap;

  constructor(
    readonly r: Recorder,
    readonly dev: DeviceInfo,
    readonly bar: Region,
    /** The physical address space, for memremap_pages() of the range. */
    readonly phys?: PhysMap,
  ) {}

  /**
   * pci_p2pdma_add_resource(): pci_p2pdma_setup() (the pool and the sysfs
   * group), then devm_memremap_pages() of the range, then
   * gen_pool_add_owner() with the pgmap's percpu_ref as owner. `fail`
   * makes one step fail the way a driver's error path sees it.
   */
  addResource(o: { size?: number; offset?: number; fail?: 'memremap' | 'not-mem' } = {}): number {
    if (o.fail === 'not-mem') {
      this.r.step('kernel', `pci_p2pdma_add_resource(${this.dev.name}, BAR${this.bar.bar!.index}) returns -EINVAL: the BAR is not a memory BAR`, { result: '-EINVAL' });
      return -22;
    }
    if (!this.p2pdma) {
      this.p2pdma = { pool: new GenPool(this.r, `${this.dev.name}'s p2pdma pool`), published: false };
      this.r.step('kernel', `pci_p2pdma_setup() creates pdev->p2pdma for ${this.dev.name}: an empty gen_pool and the sysfs p2pmem/ group`, { 'pdev->p2pdma': 'set, pool empty' });
    }
    const offset = o.offset ?? 0;
    const size = o.size ?? this.bar.size - offset;
    if (o.fail === 'memremap') {
      this.r.step('kernel', `devm_memremap_pages() of BAR${this.bar.bar!.index}+${hex(offset)} fails (-ENOMEM): pci_p2pdma_add_resource() returns the error, but pdev->p2pdma stays, with an empty pool`, { result: '-ENOMEM', 'pool size': 0 });
      return -12;
    }
    this.offset = offset;
    if (this.phys) this.pgmap = memremapPages(this.r, this.phys, { type: 'P2PDMA', rangeStart: this.bar.start + offset, rangeSize: size, nrRange: 1 });
    this.pgmapRef = new PercpuRef(this.r, `${this.dev.name}'s pgmap->ref`);
    this.p2pdma.pool.addOwner(KVA_BASE + this.bar.start + offset, this.bar.bar!.busAddress + offset, size, this.pgmapRef);
    this.r.step('kernel', `pci_p2pdma_add_resource() creates MEMORY_DEVICE_PCI_P2PDMA pages for BAR${this.bar.bar!.index}+${hex(offset)} (${hex(size)} bytes) and adds them to the pool with the pgmap's percpu_ref as owner`, { 'pool size': hex(size), result: 0 });
    return 0;
  }

  /** pci_p2pmem_publish(): a no-op when pdev->p2pdma was never set up. */
  publish(on: boolean): void {
    if (!this.p2pdma) {
      this.r.step('kernel', `pci_p2pmem_publish(${this.dev.name}, ${on}) finds no pdev->p2pdma and does nothing`, { published: false });
      return;
    }
    this.p2pdma.published = on;
    this.r.step('kernel', `pci_p2pmem_publish(${this.dev.name}, ${on}): ${this.dev.name}'s p2p memory is ${on ? 'now offered to every orchestrator' : 'private again'}`, { published: on, 'pool size': hex(this.p2pdma.pool.avail) });
  }

  /** pci_alloc_p2pmem(): gen_pool_alloc_owner() and a pgmap reference; NULL (undefined) on failure. */
  alloc(size: number, who: string): number | undefined {
    if (!this.p2pdma) return undefined;
    const got = this.p2pdma.pool.alloc(size, who);
    if (!got) {
      this.r.step('kernel', `pci_alloc_p2pmem(${this.dev.name}, ${size}) for ${who} returns NULL: the pool has ${this.p2pdma.pool.avail} bytes free`, { result: 'NULL' });
      return undefined;
    }
    if (got.owner && !got.owner.tryGetLive()) {
      this.p2pdma.pool.free(got.addr, size, who);
      return undefined;
    }
    this.r.step('kernel', `pci_alloc_p2pmem(${this.dev.name}, ${size}) gives ${who} ${hex(got.addr)} (bus ${hex(this.p2pdma.pool.virtToPhys(got.addr)!)}) and takes a pgmap reference`, { kaddr: hex(got.addr), ...(got.owner ? { [got.owner.name]: got.owner.count } : {}) });
    return got.addr;
  }

  /** pci_free_p2pmem(): gen_pool_free_owner() and one pgmap reference dropped. A device without p2pdma dereferences NULL. */
  free(addr: number, size: number, who: string): { stolen: string[] } {
    if (!this.p2pdma) terminal('CPU_FAULT', `pci_free_p2pmem(${this.dev.name}, ...) dereferences ${this.dev.name}'s pdev->p2pdma, which is NULL (it has no p2p memory): kernel oops`, 'the freeing task');
    const { owner, stolen } = this.p2pdma.pool.free(addr, size, who);
    owner?.put(`pci_free_p2pmem() drops one pgmap reference`);
    return { stolen };
  }

  virtToBus(addr: number): number {
    return this.p2pdma?.pool.virtToPhys(addr) ?? 0;
  }

  /** The driver unbinds: memunmap_pages() waits for the pgmap reference, then pci_p2pdma_release() destroys the pool. */
  unbind(): void {
    this.r.step('driver', `${this.dev.name} is unbound (driver unload, hot unplug, or a reset that re-probes)`);
    this.pgmapRef?.killAndWait(`unbinding ${this.dev.name}`);
    this.p2pdma?.pool.destroy();
    this.r.step('kernel', `${this.dev.name}'s p2p memory is torn down cleanly`);
  }
}

/** pci_p2pmem_find_many(): a published provider every client can reach (closest first), or none. */
export function p2pmemFind(r: Recorder, fabric: Fabric & { distance?(from: string, to: string): number }, providers: P2pProvider[], clients: DeviceInfo[]): P2pProvider | undefined {
  let best: { p: P2pProvider; d: number } | undefined;
  for (const p of providers) {
    if (!p.p2pdma?.published) continue;
    let total = 0;
    let ok = true;
    for (const c of clients) {
      const route = fabric.route(c.bdf, p.dev.bdf);
      if (route.mapType === 'not-supported') ok = false;
      total += fabric.distance ? Math.max(0, fabric.distance(c.bdf, p.dev.bdf)) : 0;
    }
    if (ok && (!best || total < best.d)) best = { p, d: total };
  }
  r.step('kernel', best ? `pci_p2pmem_find() picks ${best.p.dev.name} (published, distance ${best.d})` : 'pci_p2pmem_find() finds no published provider that every client can reach', { provider: best ? best.p.dev.bdf : 'none' });
  return best?.p;
}

/** Symbols of the p2pdma API a module can link against, by kernel version (checked against 6.1 and 6.12). */
export function p2pdmaExports(major: number, minor: number): Set<string> {
  const s = new Set([
    'pci_p2pdma_add_resource', 'pci_p2pdma_distance_many', 'pci_p2pmem_find_many', 'pci_alloc_p2pmem', 'pci_free_p2pmem',
    'pci_p2pmem_virt_to_bus', 'pci_p2pmem_alloc_sgl', 'pci_p2pmem_free_sgl', 'pci_p2pmem_publish', 'pci_has_p2pmem',
  ]);
  if (major < 6) for (const x of ['pci_p2pdma_map_sg_attrs', 'pci_p2pdma_unmap_sg_attrs']) s.add(x);
  void minor;
  return s;
}

export interface DmaApiP2p {
  /** dma_map_resource(): like a physical mapping, always through the IOMMU when it translates. */
  mapResource(dev: DeviceInfo, phys: number, size: number): number;
  /** dma_map_sg() of one p2p segment that returns 0 entries (not a terminal) when the path is not supported. */
  tryMapPeer(dev: DeviceInfo, region: Region, offset: number, what: string): number | undefined;
}

/** The additive DMA API operations the p2pdma scenarios need, on an existing DmaApi. */
export function p2pDma(dma: DmaApi): DmaApiP2p {
  return {
    mapResource: (dev, phys, size) => dma.mapPhys(dev, phys, size, `dma_map_resource(${dev.name}, ${hex(phys)})`),
    tryMapPeer: (dev, region, offset, what) => {
      const route = dma.fabric.route(dev.bdf, region.bar!.bdf);
      if (route.mapType === 'not-supported') {
        dma.r.step('kernel', `${what}: PCI_P2PDMA_MAP_NOT_SUPPORTED (${route.reason}): dma_map_sg() returns 0, no entry is mapped`, { nents: 0 });
        return undefined;
      }
      return dma.mapPeer(dev, region, offset, what);
    },
  };
}

/**
 * A write to a bridge's ACS Control register (pci_write_config_word(...,
 * pos + PCI_ACS_CTRL, ...)): redirect on or off for the topology the
 * fabric routes over.
 */
/** A driver rewrites a port's ACS control: request/completion redirect on or off (0x0004 | 0x0008). Rebuild the fabric afterwards. */
export function writeAcsCtrl(r: Recorder, node: { bdf: string; name?: string; acs?: { ctrl: number; cap?: number } }, redirect: boolean): void {
  const before = !!node.acs && (node.acs.ctrl & 0x000c) !== 0;
  const ctrl = node.acs?.ctrl ?? 0;
  node.acs = { ...node.acs, ctrl: redirect ? ctrl | 0x000c : ctrl & ~0x000c };
  r.step('driver', `pci_write_config_word(${node.name ?? 'port'} ${node.bdf}, ACS_CTRL): request/completion redirect ${redirect ? 'on' : 'off'}`, { [`ACS RR/CR ${node.bdf}`]: `${before ? 'on' : 'off'} -> ${redirect ? 'on' : 'off'}` });
}
