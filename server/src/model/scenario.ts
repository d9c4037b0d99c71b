/**
 * The shape of a rule's scenario and the helpers scenarios share. Each
 * family's scenarios live in scenarios/<family>.ts and are merged by
 * explain.ts.
 */
import type { CodeEvent, Span } from '../core/types';
import { DmaApi } from './dma';
import { DmaBuf } from './dmabuf';
import { hex, type Recorder } from './run';
import type { World, WorldOptions } from './world';

/** What a scenario needs from a finding: the rule, its events, its location. */
export interface Explainable {
  rule: string;
  events: CodeEvent[];
  span: Span;
  message?: string;
}

export type Scenario = (r: Recorder, w: World, f: Explainable) => void;

export interface RuleScenario {
  /** The default world for this rule (picked so the hazard shows). */
  world: WorldOptions;
  /** Events of the rule's reference case, for `dmalens explain RULE`. */
  reference: CodeEvent[];
  /** Worlds whose different outcome is worth a note. */
  variants?: Array<{ options: WorldOptions; label: string }>;
  run: Scenario;
}

/** The first event with this op, for its location. */
export function ev(f: Explainable, ...ops: string[]): CodeEvent | undefined {
  return f.events.find((e) => ops.includes(e.op));
}

/**
 * Where the first event with one of these ops is in the user's code. Only an
 * event the rule extracted, with its own span, has a location: a step the
 * model adds (or assumes, because the finding has no such event) has none,
 * rather than borrowing the finding's location.
 */
export function loc(f: Explainable, ...ops: string[]): Span | undefined {
  return ev(f, ...ops)?.span;
}

export function arg(f: Explainable, key: string): string | number | boolean | undefined {
  for (const e of f.events) if (e.args && key in e.args) return e.args[key];
  return undefined;
}


/** The GPU driver exports a buffer object living in VRAM (its VRAM BAR): the usual exporter in dma-buf runs. */
export function exportVramBuffer(r: Recorder, w: World, dma: DmaApi, opts: { placement?: 'VRAM' | 'SYSRAM' } = {}): DmaBuf {
  r.step('driver', `the GPU driver exports a 2 MiB buffer object that lives in VRAM (BAR${w.gpuVram.bar!.index} of ${w.gpu.name})`, { backing: 'VRAM' });
  return new DmaBuf(r, dma, {
    size: 2 << 20,
    placement: opts.placement ?? 'VRAM',
    vramPhys: w.gpuVram.start + (64 << 20),
    vramBus: w.gpuVram.bar!.busAddress + (64 << 20),
    sysramPhys: 0x1_2340_0000,
    exporter: w.gpu,
    debug: w.dmabufDebug,
  });
}

/** The orchestrator gives p2p memory of the NVMe drive to the NIC, which DMAs into it. */
export function p2pTransfer(r: Recorder, w: World, f: Explainable, o: { checked: boolean }): void {
  const dma = new DmaApi(r, w.phys, w.iommu, w.fabric);
  const off = 0x1000;
  const alloc = ev(f, 'pci_alloc_p2pmem', 'pci_p2pmem_alloc_sgl');
  r.at(alloc?.span, () => r.step('driver', `${alloc?.op ?? 'pci_alloc_p2pmem'}(${w.nvme.name}) returns 4 KiB of its CMB (BAR${w.nvmeCmb.bar!.index} at ${hex(w.nvmeCmb.start)}, bus ${hex(w.nvmeCmb.bar!.busAddress)})`, { provider: w.nvme.bdf }));
  if (!o.checked) r.step('driver', `no pci_p2pdma_distance() runs for the pair ${w.nvme.name} -> ${w.nic.name}`);
  r.topology = w.fabric.picture(w.nic.bdf, w.nvme.bdf);
  const viaDmaApi = !!ev(f, 'dma_map_p2p');
  const addr = r.at(loc(f, 'dma_map_p2p', 'hand_to_client'), () => {
    if (viaDmaApi) return dma.mapPeer(w.nic, w.nvmeCmb, off, `dma_map_sg() of the p2p memory for ${w.nic.name}`);
    const bus = w.nvmeCmb.bar!.busAddress + off;
    r.step('driver', `the driver programs ${w.nic.name} with pci_p2pmem_virt_to_bus() = ${hex(bus)}, the bus address`, { dma_addr: hex(bus) });
    return bus;
  });
  const landed = dma.deviceWrite(w.nic, addr, 'a received packet');
  r.step('device', `the packet lands in ${landed}`);
}
