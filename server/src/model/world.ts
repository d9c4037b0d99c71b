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
import { type CpuKind, p2pFabric, type Topology } from './topology';
import type { TopologyPicture } from './types';

export interface WorldOptions {
  /** Where the NIC sits relative to the GPU and the NVMe drive. */
  p2pPath?: 'switch' | 'allowlisted' | 'unsupported';
  cpu?: CpuKind | 'arm64';
  iommu?: IommuMode;
  debug?: boolean;
  /** A user topology (from `lspci -tvnn` or JSON); the devices are then picked from it. */
  topology?: Topology;
  roles?: { gpu?: string; nic?: string; nvme?: string };
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
  const pick = (role: 'gpu' | 'nic' | 'nvme', fallback: string) => o.roles?.[role] ?? fallback;
  const gpuBdf = pick('gpu', topo.roles?.gpu ?? '0000:03:00.0');
  const nicBdf = pick('nic', topo.roles?.nic ?? '0000:05:00.0');
  const nvmeBdf = pick('nvme', topo.roles?.nvme ?? '0000:04:00.0');
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
  const name = (bdf: string, fallback: string) => topo.nodes.find((n) => n.bdf === bdf)?.label ?? fallback;
  const where =
    path === 'switch' ? 'the NIC and the NVMe drive behind one PCIe switch' : path === 'allowlisted' ? 'the devices under different root ports of an allowlisted host bridge' : 'the devices under different root ports of a host bridge that is not on the p2pdma allowlist';
  return {
    summary: o.topology
      ? `your topology (${topo.nodes.length} PCI functions), CPU ${cpu}, IOMMU ${iommu}`
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

/** The default machine, with the devices placed as `path` says. */
export function defaultTopology(path: 'switch' | 'allowlisted' | 'unsupported'): Topology {
  // Host bridge ids: 8086:2020 (Sky Lake-E) is on the 6.12 allowlist; 8086:0e00 (Ivy Bridge-EP) is not.
  const hb = path === 'allowlisted' ? { vendor: 0x8086, device: 0x2020, label: 'Intel Sky Lake-E host bridge [8086:2020]' } : { vendor: 0x8086, device: 0x0e00, label: 'Intel Xeon E5 v2 host bridge [8086:0e00]' };
  const nodes: Topology['nodes'] = [
    { bdf: '0000:00:00.0', kind: 'hostbridge', label: hb.label, vendor: hb.vendor, device: hb.device },
    { bdf: '0000:00:01.0', kind: 'rootport', label: 'root port A', parent: undefined },
    { bdf: '0000:00:02.0', kind: 'rootport', label: 'root port B' },
  ];
  if (path === 'switch') {
    nodes.push(
      { bdf: '0000:01:00.0', kind: 'switch-up', label: 'PCIe switch upstream port', parent: '0000:00:01.0' },
      { bdf: '0000:02:00.0', kind: 'switch-down', label: 'switch downstream port 0', parent: '0000:01:00.0' },
      { bdf: '0000:02:01.0', kind: 'switch-down', label: 'switch downstream port 1', parent: '0000:01:00.0' },
      { bdf: '0000:02:02.0', kind: 'switch-down', label: 'switch downstream port 2', parent: '0000:01:00.0' },
      { bdf: '0000:03:00.0', kind: 'endpoint', label: 'the GPU', parent: '0000:02:00.0' },
      { bdf: '0000:04:00.0', kind: 'endpoint', label: 'the NVMe drive', parent: '0000:02:01.0' },
      { bdf: '0000:05:00.0', kind: 'endpoint', label: 'the NIC', parent: '0000:02:02.0' },
    );
  } else {
    nodes.push(
      { bdf: '0000:01:00.0', kind: 'switch-up', label: 'PCIe switch upstream port', parent: '0000:00:01.0' },
      { bdf: '0000:02:00.0', kind: 'switch-down', label: 'switch downstream port 0', parent: '0000:01:00.0' },
      { bdf: '0000:02:01.0', kind: 'switch-down', label: 'switch downstream port 1', parent: '0000:01:00.0' },
      { bdf: '0000:03:00.0', kind: 'endpoint', label: 'the GPU', parent: '0000:02:00.0' },
      { bdf: '0000:04:00.0', kind: 'endpoint', label: 'the NVMe drive', parent: '0000:02:01.0' },
      { bdf: '0000:05:00.0', kind: 'endpoint', label: 'the NIC', parent: '0000:00:02.0' },
    );
  }
  return { nodes, roles: { gpu: '0000:03:00.0', nvme: '0000:04:00.0', nic: '0000:05:00.0' } };
}
