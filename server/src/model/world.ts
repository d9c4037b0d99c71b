/**
 * Worlds: the machine a run happens on. The default is an x86 server with the
 * IOMMU on, a GPU with a VRAM BAR, a NIC and an NVMe drive with a controller
 * memory buffer. Options move the devices (behind one PCIe switch, under
 * different root ports of an allowlisted host bridge or not), change the CPU,
 * the IOMMU mode, and CONFIG_DMABUF_DEBUG.
 *
 * Peer-to-peer routing is delegated to the PCIe model (pcie.ts), which
 * computes map types and distances as drivers/pci/p2pdma.c does.
 */
import type { DeviceInfo, Fabric, IommuMode } from './dma';
import { Iommu } from './dma';
import { PhysMap, type Region } from './memory';
import { type CpuKind, defaultRoles, defaultTopology, p2pFabric, type Roles, type Topology } from './topology';

export { defaultTopology };
import type { TopologyPicture } from './types';

export interface WorldOptions {
  /** Where the NIC sits relative to the GPU and the NVMe drive. */
  p2pPath?: 'switch' | 'allowlisted' | 'unsupported';
  cpu?: CpuKind | 'arm64';
  iommu?: IommuMode;
  debug?: boolean;
  /** A user topology (from `lspci -tvnn` or JSON); the devices are then picked from it. */
  topology?: Topology;
  roles?: Roles;
}

export interface WorldFabric extends Fabric {
  distance(from: string, to: string): number;
  picture(from: string, to: string): TopologyPicture;
}

export interface World {
  summary: string;
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

export function buildWorld(o: WorldOptions = {}): World {
  const cpu = o.cpu ?? 'intel';
  const iommu = o.iommu ?? 'translated';
  const path = o.p2pPath ?? 'unsupported';
  const topo = o.topology ?? defaultTopology(path);
  const roles = { ...(o.topology ? pickRoles(o.topology) : defaultRoles(path)), ...o.roles };
  const gpuBdf = roles.gpu!;
  const nicBdf = roles.nic!;
  const nvmeBdf = roles.nvme!;
  const phys = new PhysMap();
  phys.add({ start: 0, size: 0x8000_0000, kind: 'ram', owner: 'System RAM' });
  phys.add({ start: 0x1_0000_0000, size: 0x3_0000_0000, kind: 'ram', owner: 'System RAM' });
  const gpuVram = phys.add({
    start: 0x380_0000_0000,
    size: 16 * 2 ** 30,
    kind: 'bar',
    owner: 'the GPU',
    // On x86 the bus address of a BAR equals its CPU address; on hosts with a bus offset they differ.
    bar: { bdf: gpuBdf, index: 2, busAddress: cpu === 'arm64' ? 0x80_0000_0000 : 0x380_0000_0000 },
  });
  const nvmeCmb = phys.add({
    start: 0xfb00_0000,
    size: 64 << 20,
    kind: 'bar',
    owner: 'the NVMe drive',
    bar: { bdf: nvmeBdf, index: 0, busAddress: cpu === 'arm64' ? 0x4000_0000 : 0xfb00_0000 },
  });
  const fabric = p2pFabric(topo, cpu === 'arm64' ? 'other' : cpu);
  const name = (bdf: string, fallback: string) => (o.topology ? topo.device(bdf)?.name ?? fallback : fallback);
  const where =
    path === 'switch' ? 'the NIC and the NVMe drive behind one PCIe switch' : path === 'allowlisted' ? 'the devices under different root ports of an allowlisted host bridge' : 'the devices under different root ports of a host bridge that is not on the p2pdma allowlist';
  return {
    summary: o.topology
      ? `your topology (${topo.devices.length} PCI functions; ${name(gpuBdf, 'GPU')} ${gpuBdf}, ${name(nicBdf, 'NIC')} ${nicBdf}, ${name(nvmeBdf, 'NVMe')} ${nvmeBdf}), CPU ${cpu}, IOMMU ${iommu}`
      : `${cpu === 'arm64' ? 'an arm64' : cpu === 'amd-zen' ? 'an AMD Zen' : 'an x86'} server, IOMMU ${iommu}, ${where}${o.debug ? ', CONFIG_DMABUF_DEBUG=y' : ''}`,
    cpu,
    phys,
    iommu: new Iommu(),
    fabric,
    gpu: { name: name(gpuBdf, 'the GPU'), bdf: gpuBdf, iommu },
    nic: { name: name(nicBdf, 'the NIC'), bdf: nicBdf, iommu },
    nvme: { name: name(nvmeBdf, 'the NVMe drive'), bdf: nvmeBdf, iommu },
    gpuVram,
    nvmeCmb,
    dmabufDebug: !!o.debug,
  };
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
