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
import type { PhysMap, Page, Region } from './memory';
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
