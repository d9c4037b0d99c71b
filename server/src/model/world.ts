/**
 * Worlds: the machine a run happens on. The default is an x86 server with the
 * IOMMU on, a GPU with a VRAM BAR, a NIC and an NVMe drive with a controller
 * memory buffer. Options move the devices (behind one PCIe switch, under
 * different root ports of an allowlisted host bridge or not), change the CPU,
 * the IOMMU mode, and CONFIG_DMABUF_DEBUG.
 *
 * With a user's topology the GPU, the NIC and the NVMe drive are picked from
 * it (pickRoles), and so are their IOMMU modes and, when it gives usable
 * ones, the BARs the runs use (the GPU's VRAM, the NVMe drive's CMB).
 *
 * Peer-to-peer routing is delegated to the PCIe model (pcie.ts), which
 * computes map types and distances as drivers/pci/p2pdma.c does.
 */
import type { DeviceInfo, Fabric, IommuMode } from './dma';
import { Iommu } from './dma';
import { PhysMap, type Region } from './memory';
import { defaultProviderBar } from './pcie';
import { type CpuKind, defaultRoles, defaultTopology, p2pFabric, type Roles, type Topology } from './topology';

export { defaultTopology };
import type { TopologyPicture } from './types';

export interface WorldOptions {
  /** Where the NIC sits relative to the GPU and the NVMe drive. */
  p2pPath?: 'switch' | 'allowlisted' | 'unsupported';
  cpu?: CpuKind | 'arm64';
  /**
   * The IOMMU mode of the devices. With a topology, a device's own mode
   * (its `iommu`, else the topology's global one) wins; this applies to the
   * devices the topology says nothing about.
   */
  iommu?: IommuMode;
  debug?: boolean;
  /** A user topology (from `lspci -tvnn` or JSON); the devices, their BARs and IOMMU modes are then taken from it. */
  topology?: Topology;
  roles?: Roles;
}

/**
 * The world options for a user's topology: its devices, BARs and IOMMU modes
 * (buildWorld reads them from the topology), and its CPU, taken to be Intel
 * when it does not say (lspci output never does); the CPU of the rule's own
 * world does not apply to the user's machine.
 */
export function topologyWorld(t: Topology): WorldOptions {
  return { topology: t, cpu: t.cpu ?? 'intel' };
}

export interface WorldFabric extends Fabric {
  distance(from: string, to: string): number;
  picture(from: string, to: string): TopologyPicture;
  /** Where `from` and `to` sit relative to each other, as the kernel's decision sees it: "behind one PCIe switch (...)". */
  placement(from: string, to: string): string;
}

export interface World {
  /**
   * The world in a sentence. Where the devices sit is described for the
   * pairs the run routed between, as the kernel's decision for each pair
   * sees it (so read it after the run); a run that routes nothing gets no
   * placement.
   */
  readonly summary: string;
  /** Where the devices of the pairs the run routed between sit ("" before any routing). */
  readonly where: string;
  /** The CPU and the IOMMU modes: "CPU intel, IOMMU off". */
  readonly settings: string;
  cpu: CpuKind | 'arm64';
  phys: PhysMap;
  iommu: Iommu;
  fabric: WorldFabric;
  gpu: DeviceInfo;
  nic: DeviceInfo;
  nvme: DeviceInfo;
  gpuVram: Region;
  nvmeCmb: Region;
  dmabufDebug: boolean;
}

/** The model's own BARs, used when a world has no topology, or the topology gives no usable one. */
const DEFAULT_VRAM = { start: 0x380_0000_0000, size: 16 * 2 ** 30, index: 2, arm64Bus: 0x80_0000_0000 };
const DEFAULT_CMB = { start: 0xfb00_0000, size: 64 << 20, index: 0, arm64Bus: 0x4000_0000 };
/** The smallest topology BARs the runs fit in (buffers sit up to 128 MiB + 2 MiB into the VRAM BAR). */
const MIN_VRAM = 256 << 20;
const MIN_CMB = 1 << 20;

export function buildWorld(o: WorldOptions = {}): World {
  const cpu = o.cpu ?? 'intel';
  const iommu = o.iommu ?? 'translated';
  const path = o.p2pPath ?? 'unsupported';
  const topo = o.topology ?? defaultTopology(path);
  const roles = { ...(o.topology ? pickRoles(o.topology) : defaultRoles(path)), ...o.roles };
  const gpuBdf = roles.gpu!;
  const nicBdf = roles.nic!;
  const nvmeBdf = roles.nvme!;
  const name = (bdf: string, fallback: string) => (o.topology ? topo.device(bdf)?.name ?? fallback : fallback);
  // A device's IOMMU mode: the topology's (the device's own, else its global one), else the world's.
  const modeOf = (bdf: string): IommuMode => {
    const d = o.topology ? topo.device(bdf) : undefined;
    return (d && topo.iommuOf(d)) ?? iommu;
  };
  const phys = new PhysMap();
  phys.add({ start: 0, size: 0x8000_0000, kind: 'ram', owner: 'System RAM' });
  phys.add({ start: 0x1_0000_0000, size: 0x3_0000_0000, kind: 'ram', owner: 'System RAM' });
  const assumed: string[] = [];
  const placeBar = (bdf: string, owner: string, def: typeof DEFAULT_VRAM, min: number, what: string): Region => {
    const given = o.topology ? usableBar(topo, bdf, min, phys) : undefined;
    if (given) return phys.add({ start: given.start, size: given.size, kind: 'bar', owner, bar: { bdf, index: given.index, busAddress: given.bus } });
    if (o.topology) assumed.push(what);
    let start = def.start;
    if (overlaps(phys, start, def.size)) {
      // The model's address is taken by a BAR of the topology: the next free 1 GiB-aligned range.
      const top = phys.regions.reduce((m, r) => Math.max(m, r.start + r.size), 0);
      start = Math.ceil(top / 2 ** 30) * 2 ** 30;
    }
    // On x86 the bus address of a BAR equals its CPU address; on hosts with a bus offset they differ.
    const busAddress = cpu === 'arm64' && start === def.start ? def.arm64Bus : start;
    return phys.add({ start, size: def.size, kind: 'bar', owner, bar: { bdf, index: def.index, busAddress } });
  };
  const gpuVram = placeBar(gpuBdf, name(gpuBdf, 'the GPU'), DEFAULT_VRAM, MIN_VRAM, "the GPU's VRAM BAR");
  const nvmeCmb = placeBar(nvmeBdf, name(nvmeBdf, 'the NVMe drive'), DEFAULT_CMB, MIN_CMB, "the NVMe drive's CMB BAR");
  const base = p2pFabric(topo, cpu === 'arm64' ? 'other' : cpu);
  // The pairs the run routes between, for the world's sentence.
  const routed: Array<[string, string]> = [];
  const seen = (from: string, to: string) => {
    if (from !== to && !routed.some(([a, b]) => (a === from && b === to) || (a === to && b === from))) routed.push([from, to]);
  };
  const fabric: WorldFabric = {
    route: (from, to) => (seen(from, to), base.route(from, to)),
    distance: (from, to) => (seen(from, to), base.distance(from, to)),
    viaHostBridge: (from, to) => (seen(from, to), base.viaHostBridge(from, to)),
    picture: (from, to) => (seen(from, to), base.picture(from, to)),
    placement: (from, to) => base.placement(from, to),
  };
  const gpu: DeviceInfo = { name: name(gpuBdf, 'the GPU'), bdf: gpuBdf, iommu: modeOf(gpuBdf) };
  const nic: DeviceInfo = { name: name(nicBdf, 'the NIC'), bdf: nicBdf, iommu: modeOf(nicBdf) };
  const nvme: DeviceInfo = { name: name(nvmeBdf, 'the NVMe drive'), bdf: nvmeBdf, iommu: modeOf(nvmeBdf) };
  const role = (bdf: string) => {
    const word = bdf === gpuBdf ? 'the GPU' : bdf === nicBdf ? 'the NIC' : bdf === nvmeBdf ? 'the NVMe drive' : (topo.device(bdf)?.name ?? 'a device');
    return o.topology ? `${word} ${bdf}` : word;
  };
  const where = (pairs: ReadonlyArray<[string, string]>): string => pairs.map(([a, b]) => `${role(a)} and ${role(b)} ${base.placement(a, b)}`).join('; ');
  // A run that routes nothing over this world's fabric does not depend on where the devices sit: no placement.
  const placed = (sep: string) => (routed.length > 0 ? sep + where(routed) : '');
  const modes = [gpu, nic, nvme].map((d) => d.iommu);
  const iommuText = modes.every((m) => m === modes[0])
    ? `IOMMU ${modes[0]}`
    : `IOMMU ${gpu.iommu} for the GPU, ${nic.iommu} for the NIC, ${nvme.iommu} for the NVMe drive`;
  return {
    get summary() {
      return o.topology
        ? `your topology (${topo.devices.length} PCI functions; ${name(gpuBdf, 'GPU')} ${gpuBdf}, ${name(nicBdf, 'NIC')} ${nicBdf}, ${name(nvmeBdf, 'NVMe')} ${nvmeBdf}), CPU ${cpu}, ${iommuText}${placed('; ')}${
            assumed.length ? `; not in the topology, so the model's: ${assumed.join(', ')}` : ''
          }`
        : `${cpu === 'arm64' ? 'an arm64' : cpu === 'amd-zen' ? 'an AMD Zen' : 'an x86'} server, ${iommuText}${placed(', ')}${o.debug ? ', CONFIG_DMABUF_DEBUG=y' : ''}`;
    },
    get where() {
      return where(routed);
    },
    settings: `CPU ${cpu}, ${iommuText}`,
    cpu,
    phys,
    iommu: new Iommu(),
    fabric,
    gpu,
    nic,
    nvme,
    gpuVram,
    nvmeCmb,
    dmabufDebug: !!o.debug,
  };
}

/**
 * The BAR of `bdf` in the topology the runs use: its largest memory BAR (what
 * a provider publishes), when it is at least `min` bytes, its addresses are
 * exact numbers, and it overlaps nothing already in the map.
 */
function usableBar(topo: Topology, bdf: string, min: number, phys: PhysMap): { start: number; size: number; bus: number; index: number } | undefined {
  const d = topo.device(bdf);
  const bar = d ? defaultProviderBar(d) : undefined;
  if (!bar || bar.size < BigInt(min)) return undefined;
  const limit = BigInt(Number.MAX_SAFE_INTEGER);
  if (bar.cpu + bar.size > limit || bar.bus + bar.size > limit) return undefined;
  const start = Number(bar.cpu);
  const size = Number(bar.size);
  if (overlaps(phys, start, size)) return undefined;
  return { start, size, bus: Number(bar.bus), index: bar.index };
}

function overlaps(phys: PhysMap, start: number, size: number): boolean {
  return phys.regions.some((r) => start < r.start + r.size && r.start < start + size);
}

/**
 * Roles in a user topology: endpoints picked by class from their names and
 * vendor ids (display/3D controllers for the GPU, Ethernet/InfiniBand for the
 * NIC, NVMe/non-volatile memory for the drive), else the first endpoints.
 */
export function pickRoles(t: Topology): Roles {
  const endpoints = t.devices.filter((d) => !d.isBridge && d.portType !== 'rc-endpoint');
  const find = (re: RegExp, vendors: number[]) => endpoints.find((d) => (d.name && re.test(d.name)) || (d.vendorId !== undefined && vendors.includes(d.vendorId)));
  const gpu = find(/VGA|3D|Display|GPU|Radeon|NVIDIA|GeForce|Instinct|Arc/i, [0x10de, 0x1002]);
  const nic = find(/Ethernet|Network|InfiniBand|ConnectX|NIC/i, [0x15b3, 0x8086 + 0x100000]);
  const nvme = find(/NVMe|Non-Volatile|SSD|Samsung|Solid State/i, [0x144d]);
  const rest = endpoints.filter((d) => d !== gpu && d !== nic && d !== nvme);
  const pick = (d: typeof gpu) => d?.bdf ?? rest.shift()?.bdf ?? endpoints[0]?.bdf;
  return { gpu: pick(gpu), nic: pick(nic), nvme: pick(nvme) };
}
