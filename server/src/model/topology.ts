/**
 * The worlds' PCI topologies and the fabric that routes peer-to-peer traffic
 * over them, using the exact port of drivers/pci/p2pdma.c in pcie.ts.
 */
import {
  calcMapTypeAndDist,
  type CpuKind,
  hostBridgeAllowed,
  p2pPicture,
  type P2pResult,
  type PciDeviceInput,
  Topology,
} from './pcie';
import type { TopologyPicture } from './types';
import type { WorldFabric } from './world';

export type { CpuKind, Topology };

/** Which functions play the GPU, the NIC and the NVMe drive in runs. */
export interface Roles {
  gpu?: string;
  nic?: string;
  nvme?: string;
}

export function p2pFabric(topo: Topology, cpu: CpuKind): WorldFabric {
  const dev = (bdf: string) => {
    const d = topo.device(bdf);
    if (!d) throw new Error(`the world has no PCI function ${bdf}`);
    return d;
  };
  const calc = (provider: string, client: string) => calcMapTypeAndDist(topo, dev(provider), dev(client), cpu);
  return {
    route(from, to) {
      const r = calc(to, from);
      return { mapType: r.mapType, reason: r.reason };
    },
    distance(from, to) {
      return calc(to, from).distance;
    },
    viaHostBridge(from, to) {
      // The write already went up through the root complex (after the IOMMU):
      // the host-bridge half of calc_map_type_and_dist() decides.
      if (cpu === 'amd-zen') return { ok: true, reason: 'an AMD Zen root complex forwards peer traffic (cpu_supports_p2pdma())' };
      const ha = topo.hostBridgeOf(dev(to));
      const hb = topo.hostBridgeOf(dev(from));
      const same = ha.id === hb.id;
      const va = hostBridgeAllowed(topo, ha, same);
      if (!va.allowed) return { ok: false, reason: va.why };
      if (same) return { ok: true, reason: va.why };
      const vb = hostBridgeAllowed(topo, hb, false);
      return vb.allowed ? { ok: true, reason: `${va.why}; ${vb.why}` } : { ok: false, reason: vb.why };
    },
    picture(from, to): TopologyPicture {
      return p2pPicture(topo, calc(to, from), cpu);
    },
    placement(from, to) {
      return placement(topo, calc(to, from));
    },
  };
}

/** Where a pair sits, from the kernel's decision for it: "behind one PCIe switch (common upstream bridge ...)". */
export function placement(topo: Topology, r: P2pResult): string {
  if (r.mapType === 'bus-address') {
    if (r.provider === r.client) return `are one function (${r.reason}): PCI_P2PDMA_MAP_BUS_ADDR`;
    const common = r.commonUpstream ? topo.device(r.commonUpstream) : undefined;
    const where =
      common?.portType === 'switch-upstream' || common?.portType === 'switch-downstream'
        ? 'behind one PCIe switch'
        : common?.portType === 'root-port'
          ? 'below one root port'
          : 'behind one bridge';
    return `${where} (${r.reason}): PCI_P2PDMA_MAP_BUS_ADDR`;
  }
  if (r.mapType === 'thru-host-bridge') return `reaching each other only through the host bridge (${r.reason}): PCI_P2PDMA_MAP_THRU_HOST_BRIDGE`;
  return `with no peer-to-peer path between them (${r.reason}): PCI_P2PDMA_MAP_NOT_SUPPORTED`;
}

/**
 * The default machine with the devices placed as `path` says: a GPU and an
 * NVMe drive behind a PCIe switch under root port A, and the NIC either
 * behind the same switch or under root port B. The host bridge device (00.0)
 * is 8086:2020 (Sky Lake-E, on the 6.12 allowlist) for `allowlisted`, and
 * 8086:0e00 (Ivy Bridge-EP, not on it) otherwise.
 */
export function defaultTopology(path: 'switch' | 'allowlisted' | 'unsupported'): Topology {
  return Topology.create(defaultTopologyInputs(path));
}

/** The default machine's functions, for worlds that change a few of them (ACS bits, ids). */
export function defaultTopologyInputs(path: 'switch' | 'allowlisted' | 'unsupported'): PciDeviceInput[] {
  const hostDevice = path === 'allowlisted' ? { vendorId: 0x8086, deviceId: 0x2020, name: 'Intel Sky Lake-E DMI3 Registers' } : { vendorId: 0x8086, deviceId: 0x0e00, name: 'Intel Xeon E7 v2/Xeon E5 v2/Core i7 DMI2' };
  const inputs: PciDeviceInput[] = [
    { bdf: '0000:00:00.0', ...hostDevice, portType: 'rc-endpoint' },
    { bdf: '0000:00:01.0', name: 'root port A', portType: 'root-port', secondary: 1, subordinate: path === 'switch' ? 5 : 4 },
    { bdf: '0000:01:00.0', name: 'PCIe switch upstream port', vendorId: 0x10b5, deviceId: 0x8747, portType: 'switch-upstream', secondary: 2, subordinate: path === 'switch' ? 5 : 4 },
    { bdf: '0000:02:00.0', name: 'switch downstream port 0', vendorId: 0x10b5, deviceId: 0x8747, portType: 'switch-downstream', secondary: 3, subordinate: 3 },
    { bdf: '0000:02:01.0', name: 'switch downstream port 1', vendorId: 0x10b5, deviceId: 0x8747, portType: 'switch-downstream', secondary: 4, subordinate: 4 },
    { bdf: '0000:03:00.0', name: 'the GPU', vendorId: 0x10de, deviceId: 0x20b0, portType: 'endpoint' },
    { bdf: '0000:04:00.0', name: 'the NVMe drive', vendorId: 0x144d, deviceId: 0xa824, portType: 'endpoint' },
  ];
  if (path === 'switch') {
    inputs.push(
      { bdf: '0000:02:02.0', name: 'switch downstream port 2', vendorId: 0x10b5, deviceId: 0x8747, portType: 'switch-downstream', secondary: 5, subordinate: 5 },
      { bdf: '0000:05:00.0', name: 'the NIC', vendorId: 0x15b3, deviceId: 0x101b, portType: 'endpoint' },
    );
  } else {
    inputs.push(
      { bdf: '0000:00:02.0', name: 'root port B', portType: 'root-port', secondary: 5, subordinate: 5 },
      { bdf: '0000:05:00.0', name: 'the NIC', vendorId: 0x15b3, deviceId: 0x101b, portType: 'endpoint' },
    );
  }
  return inputs;
}

export function defaultRoles(path: 'switch' | 'allowlisted' | 'unsupported'): Roles {
  void path;
  return { gpu: '0000:03:00.0', nvme: '0000:04:00.0', nic: '0000:05:00.0' };
}
