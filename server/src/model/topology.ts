/**
 * The worlds' view of a PCI topology, and the fabric that routes peer-to-peer
 * traffic over it with the PCIe model's distance computation.
 */
import type { WorldFabric } from './world';
import type { TopoNode, TopologyPicture } from './types';

export type CpuKind = 'intel' | 'amd-zen' | 'other';

export interface TopologyNode {
  bdf: string;
  kind: TopoNode['kind'];
  label: string;
  parent?: string;
  vendor?: number;
  device?: number;
  /** ACS redirect (ReqRedir, CmplRedir or EgressCtrl set) on this bridge. */
  acsRedirect?: boolean;
}

export interface Topology {
  nodes: TopologyNode[];
  /** Which functions play the GPU, the NIC and the NVMe drive in runs. */
  roles?: { gpu?: string; nic?: string; nvme?: string };
}

/** 6.12 drivers/pci/p2pdma.c pci_p2pdma_whitelist[]: vendor, device, same-host-bridge only. */
const ALLOWLIST: Array<[number, number, boolean]> = [
  [0x8086, 0x3c00, true],
  [0x8086, 0x3c01, true],
  [0x8086, 0x2f00, true],
  [0x8086, 0x2f01, true],
  [0x8086, 0x2030, false],
  [0x8086, 0x2031, false],
  [0x8086, 0x2032, false],
  [0x8086, 0x2033, false],
  [0x8086, 0x2020, false],
  [0x8086, 0x09a2, false],
];

export function p2pFabric(topo: Topology, cpu: CpuKind): WorldFabric {
  const byBdf = new Map(topo.nodes.map((n) => [n.bdf, n]));
  const domainOf = (bdf: string) => bdf.split(':')[0];
  /** pci_upstream_bridge(): the parent bridge; none above a root port or a root-bus device. */
  const up = (bdf: string): string | undefined => {
    const n = byBdf.get(bdf);
    return n?.parent && byBdf.get(n.parent)?.kind !== 'hostbridge' ? n.parent : undefined;
  };
  const hostBridgeOf = (bdf: string) =>
    topo.nodes.find((n) => n.kind === 'hostbridge' && domainOf(n.bdf) === domainOf(bdf) && n.bdf.split(':')[1] === rootBus(bdf));
  const rootBus = (bdf: string) => {
    let cur = bdf;
    for (let p = up(cur); p; p = up(cur)) cur = p;
    return cur.split(':')[1];
  };
  const allowed = (hb: TopologyNode | undefined, same: boolean) => {
    if (!hb) return false;
    const e = ALLOWLIST.find(([v, d]) => v === hb.vendor && d === hb.device);
    return !!e && (!e[2] || same);
  };

  const calc = (provider: string, client: string) => {
    // calc_map_type_and_dist(): walk a = provider up; for each, walk b = client up looking for a.
    let a: string | undefined = provider;
    let distA = 0;
    let distB = 0;
    const acs: string[] = [];
    let common: string | undefined;
    while (a) {
      distB = 0;
      if (byBdf.get(a)?.acsRedirect) acs.push(a);
      let bb: string | undefined = client;
      while (bb) {
        if (a === bb) {
          common = a;
          break;
        }
        bb = up(bb);
        distB++;
      }
      if (common) break;
      a = up(a);
      distA++;
    }
    if (common) {
      for (let bb: string | undefined = client; bb && bb !== common; bb = up(bb)) if (byBdf.get(bb)?.acsRedirect) acs.push(bb);
      if (!acs.length) {
        return { mapType: 'bus-address' as const, distance: distA + distB, reason: `common upstream bridge ${common} with no ACS redirect on the path`, common };
      }
    }
    const dist = distA + distB;
    const ha = hostBridgeOf(provider);
    const hb = hostBridgeOf(client);
    const same = ha === hb;
    const ok = cpu === 'amd-zen' || (same ? allowed(ha, true) : allowed(ha, false) && allowed(hb, false));
    const why = common ? `ACS redirect on ${acs.join(', ')} sends the traffic through the host bridge` : 'no common upstream bridge: the traffic goes through the host bridge';
    if (ok) return { mapType: 'thru-host-bridge' as const, distance: dist, reason: `${why}, which ${cpu === 'amd-zen' ? 'an AMD Zen CPU supports' : `is on the allowlist (${hex4(ha?.vendor)}:${hex4(ha?.device)})`}`, common };
    return { mapType: 'not-supported' as const, distance: dist, reason: `${why}, and host bridge ${hex4(ha?.vendor)}:${hex4(ha?.device)} is not on the p2pdma allowlist`, common };
  };

  const viaHost = (from: string, to: string) => {
    const ha = hostBridgeOf(to);
    const hb = hostBridgeOf(from);
    const same = ha === hb;
    const ok = cpu === 'amd-zen' || (same ? allowed(ha, true) : allowed(ha, false) && allowed(hb, false));
    const id = `${hex4(ha?.vendor)}:${hex4(ha?.device)}`;
    return { ok, reason: ok ? (cpu === 'amd-zen' ? 'an AMD Zen root complex forwards peer traffic' : `host bridge ${id} is on the p2pdma allowlist`) : `host bridge ${id} is not on the p2pdma allowlist` };
  };

  return {
    viaHostBridge: viaHost,
    route(from, to) {
      const r = calc(to, from);
      return { mapType: r.mapType, reason: r.reason };
    },
    distance(from, to) {
      const r = calc(to, from);
      return r.mapType === 'not-supported' ? -1 : r.distance;
    },
    picture(from, to): TopologyPicture {
      const r = calc(to, from);
      const nodes: TopoNode[] = topo.nodes.map((n) => ({ id: n.bdf, kind: n.kind, label: n.label, parent: n.parent, notes: [n.bdf, ...(n.vendor ? [`${hex4(n.vendor)}:${hex4(n.device)}`] : []), ...(n.acsRedirect ? ['ACS redirect'] : [])] }));
      const chain = (x: string) => {
        const out = [x];
        for (let p = byBdf.get(x)?.parent; p; p = byBdf.get(p)?.parent) out.push(p);
        return out;
      };
      const cf = chain(from);
      const ct = chain(to);
      const meet = cf.find((x) => ct.includes(x));
      const path = meet ? [...cf.slice(0, cf.indexOf(meet) + 1), ...ct.slice(0, ct.indexOf(meet)).reverse()] : [...cf, ...ct.reverse()];
      const pic: TopologyPicture = { nodes, path };
      if (r.mapType === 'not-supported') pic.breakAt = { node: meet ?? ct[ct.length - 1], reason: r.reason };
      return pic;
    },
  };
}

function hex4(n: number | undefined): string {
  return (n ?? 0).toString(16).padStart(4, '0');
}
