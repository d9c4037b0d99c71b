/**
 * The PCIe part of the simulated model: a topology (domains, host bridges,
 * root ports, switch ports, endpoints), and the kernel's peer-to-peer
 * decision over it, computed the way drivers/pci/p2pdma.c computes it.
 *
 * Checked against Debian's linux-source-6.12 (6.12.117). The functions ported
 * here are the same in 6.1 apart from comments and a GFP flag in the map-type
 * cache, which the model does not keep.
 *
 * Kernel function                     Here
 * ----------------------------------  ------------------------------------
 * pci_upstream_bridge()  (pci.h)      Topology.upstreamBridge
 * pci_find_host_bridge() (host-bridge.c) Topology.hostBridgeOf
 * pci_host_bridge_dev()               Topology.hostBridgeDevice
 * pci_bridge_has_acs_redir()          pciBridgeHasAcsRedir
 * cpu_supports_p2pdma()               cpuSupportsP2pdma
 * pci_p2pdma_whitelist[]              P2PDMA_WHITELIST
 * __host_bridge_whitelist()           hostBridgeAllowed
 * host_bridge_whitelist()             hostBridgeWhitelist
 * calc_map_type_and_dist()            calcMapTypeAndDist
 * pci_p2pdma_distance_many()          pciP2pdmaDistanceMany
 * pci_p2pdma_map_segment() and the    p2pDmaAddress, routeDmaWrite,
 *   P2P cases of dma_direct_map_sg()  p2pAddressing
 *   and iommu_dma_map_sg()
 *
 * Pure: no I/O, no process state. Errors in the input are TopologyError.
 */
import type { Outcome, TopoNode, TopologyPicture } from './types';

export class TopologyError extends Error {}

/** Who made the CPU, as far as cpu_supports_p2pdma() cares. */
export type CpuKind = 'amd-zen' | 'intel' | 'other';
export const CPU_KINDS: readonly CpuKind[] = ['amd-zen', 'intel', 'other'];

/** How the IOMMU treats a device's DMA: no IOMMU, identity domain, or a DMA domain with IOVAs. */
export type IommuMode = 'off' | 'passthrough' | 'translated';
export const IOMMU_MODES: readonly IommuMode[] = ['off', 'passthrough', 'translated'];

/** enum pci_p2pdma_map_type, without UNKNOWN (the cache's "not computed yet"). */
export type MapType = 'bus-address' | 'thru-host-bridge' | 'not-supported';

/**
 * The PCIe port type (PCI_EXP_TYPE_* from the Express capability), plus
 * `pci-bridge` and `pci-device` for conventional PCI functions, which have
 * no Express capability (pci_pcie_type() reads 0 for them).
 */
export type PortType =
  | 'endpoint' // PCI_EXP_TYPE_ENDPOINT
  | 'legacy-endpoint' // PCI_EXP_TYPE_LEG_END
  | 'rc-endpoint' // PCI_EXP_TYPE_RC_END
  | 'rc-event-collector' // PCI_EXP_TYPE_RC_EC
  | 'root-port' // PCI_EXP_TYPE_ROOT_PORT
  | 'switch-upstream' // PCI_EXP_TYPE_UPSTREAM
  | 'switch-downstream' // PCI_EXP_TYPE_DOWNSTREAM
  | 'pcie-to-pci-bridge' // PCI_EXP_TYPE_PCI_BRIDGE
  | 'pci-to-pcie-bridge' // PCI_EXP_TYPE_PCIE_BRIDGE
  | 'pci-bridge'
  | 'pci-device';
export const PORT_TYPES: readonly PortType[] = [
  'endpoint',
  'legacy-endpoint',
  'rc-endpoint',
  'rc-event-collector',
  'root-port',
  'switch-upstream',
  'switch-downstream',
  'pcie-to-pci-bridge',
  'pci-to-pcie-bridge',
  'pci-bridge',
  'pci-device',
];

const BRIDGE_TYPES: ReadonlySet<PortType> = new Set<PortType>([
  'root-port',
  'switch-upstream',
  'switch-downstream',
  'pcie-to-pci-bridge',
  'pci-to-pcie-bridge',
  'pci-bridge',
]);

// ACS control/capability bits (include/uapi/linux/pci_regs.h).
export const ACS_SV = 0x0001; // Source Validation
export const ACS_TB = 0x0002; // Translation Blocking
export const ACS_RR = 0x0004; // P2P Request Redirect
export const ACS_CR = 0x0008; // P2P Completion Redirect
export const ACS_UF = 0x0010; // Upstream Forwarding
export const ACS_EC = 0x0020; // P2P Egress Control
export const ACS_DT = 0x0040; // Direct Translated P2P
/** The bits pci_bridge_has_acs_redir() tests: PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC. */
export const ACS_REDIRECT_BITS = ACS_RR | ACS_CR | ACS_EC;

/** lspci's names for the ACS bits, in lspci's order. */
const ACS_NAMES: readonly (readonly [number, string])[] = [
  [ACS_SV, 'SrcValid'],
  [ACS_TB, 'TransBlk'],
  [ACS_RR, 'ReqRedir'],
  [ACS_CR, 'CmplRedir'],
  [ACS_UF, 'UpstreamFwd'],
  [ACS_EC, 'EgressCtrl'],
  [ACS_DT, 'DirectTrans'],
];

/** All seven bits, as lspci prints ACSCtl: "SrcValid+ TransBlk- ReqRedir+ ...". */
export function formatAcs(value: number): string {
  return ACS_NAMES.map(([bit, name]) => `${name}${value & bit ? '+' : '-'}`).join(' ');
}

/** Only the set redirect bits, for messages: "ReqRedir+ CmplRedir+". */
export function formatAcsRedirect(value: number): string {
  return ACS_NAMES.filter(([bit]) => bit & ACS_REDIRECT_BITS & value)
    .map(([, name]) => `${name}+`)
    .join(' ');
}

/**
 * Parses lspci's ACS notation ("SrcValid+ TransBlk- ReqRedir+ ..."): each
 * token is a bit name followed by + (set) or - (clear); bits not named are clear.
 */
export function parseAcs(text: string): number {
  let value = 0;
  for (const token of text.trim().split(/\s+/).filter((t) => t.length > 0)) {
    const m = /^([A-Za-z]+)([+-])$/.exec(token);
    const entry = m ? ACS_NAMES.find(([, name]) => name === m[1]) : undefined;
    if (!m || !entry) throw new TopologyError(`bad ACS flag '${token}' (expected e.g. ReqRedir+ or CmplRedir-)`);
    if (m[2] === '+') value |= entry[0];
  }
  return value;
}

/** A memory BAR: where the CPU sees it and where PCI sees it (they differ by the host bridge window offset). */
export interface Bar {
  index: number;
  /** CPU physical address (pci_resource_start()). */
  cpu: bigint;
  /** PCI bus address (pci_bus_address()); equal to `cpu` on most x86 machines. */
  bus: bigint;
  size: bigint;
  prefetchable?: boolean;
}

/** What a loader knows about one PCI function. Only `bdf` is required. */
export interface PciDeviceInput {
  /** "0000:03:00.0" or "03:00.0" (domain 0000). */
  bdf: string;
  vendorId?: number;
  deviceId?: number;
  name?: string;
  /** Explicit port type; inferred from the tree's shape when absent (see inferPortType). */
  portType?: PortType;
  /** Where an explicit port type came from. */
  portTypeFrom?: 'lspci-vvv' | 'json';
  /** For a bridge: its secondary bus (the bus its children sit on) and subordinate bus. */
  secondary?: number;
  subordinate?: number;
  /** The ACS capability: control register and, if known, capability register. Absent: no ACS capability. */
  acs?: { ctrl: number; cap?: number };
  bars?: Bar[];
  iommu?: IommuMode;
  /** For an SR-IOV virtual function: its physical function (pci_physfn()). */
  physfn?: string;
  /** The bound driver (pci_warn() prefixes messages with it; "pci" when none). */
  driver?: string;
  iommuGroup?: number;
}

export interface PciDevice {
  /** pci_name(): "%04x:%02x:%02x.%d". */
  readonly bdf: string;
  readonly domain: number;
  readonly bus: number;
  readonly dev: number;
  readonly fn: number;
  readonly devfn: number;
  readonly vendorId?: number;
  readonly deviceId?: number;
  readonly name?: string;
  readonly portType: PortType;
  readonly portTypeFrom: 'lspci-vvv' | 'json' | 'inferred';
  /** A type 1 header (PCI-to-PCI bridge, root port, switch port). */
  readonly isBridge: boolean;
  readonly secondary?: number;
  readonly subordinate?: number;
  readonly acs?: { readonly ctrl: number; readonly cap?: number };
  readonly bars: readonly Bar[];
  readonly iommu?: IommuMode;
  readonly physfn?: string;
  readonly driver?: string;
  readonly iommuGroup?: number;
}

/** A root bus and its struct pci_host_bridge (one per root bus in Linux). */
export interface HostBridge {
  /** The root bus's name, "0000:17". */
  readonly name: string;
  readonly domain: number;
  readonly bus: number;
  /** Node id in pictures and paths: "hostbridge:0000:17". */
  readonly id: string;
}

export function hex(n: number | bigint, width = 0): string {
  return n.toString(16).padStart(width, '0');
}

export function formatBdf(domain: number, bus: number, dev: number, fn: number): string {
  return `${hex(domain, 4)}:${hex(bus, 2)}:${hex(dev, 2)}.${fn}`;
}

export function formatId(vendor?: number, device?: number): string | undefined {
  return vendor === undefined || device === undefined ? undefined : `${hex(vendor, 4)}:${hex(device, 4)}`;
}

/** Parses "0000:03:00.0" or "03:00.0" (domain 0); undefined if it is not a BDF. */
export function parseBdf(text: string): { domain: number; bus: number; dev: number; fn: number } | undefined {
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i.exec(text.trim());
  if (!m) return undefined;
  const dev = parseInt(m[3], 16);
  if (dev > 0x1f) return undefined;
  return { domain: m[1] ? parseInt(m[1], 16) : 0, bus: parseInt(m[2], 16), dev, fn: Number(m[4]) };
}

export function canonicalBdf(text: string): string | undefined {
  const b = parseBdf(text);
  return b && formatBdf(b.domain, b.bus, b.dev, b.fn);
}

function busKey(domain: number, bus: number): string {
  return `${hex(domain, 4)}:${hex(bus, 2)}`;
}

/**
 * A PCI hierarchy, with the links the kernel follows: `dev->bus->self`
 * (the bridge whose secondary bus a device sits on), root buses and their
 * host bridges. Build it with Topology.create.
 */
export class Topology {
  /** Every function, sorted by domain, bus, devfn. */
  readonly devices: readonly PciDevice[];
  /** Root buses, sorted by domain and bus. */
  readonly hostBridges: readonly HostBridge[];
  readonly cpu?: CpuKind;
  readonly iommu?: IommuMode;

  private readonly byBdf: ReadonlyMap<string, PciDevice>;
  /** bus -> the bridge whose secondary bus it is (bus->self). */
  private readonly busSelf: ReadonlyMap<string, PciDevice>;
  /** A bus inside a bridge's range that no bridge has as secondary (SR-IOV VF bus): the bridge. */
  private readonly virtualBusBridge: ReadonlyMap<string, PciDevice>;
  private readonly hostByBus: ReadonlyMap<string, HostBridge>;
  private readonly onBus: ReadonlyMap<string, readonly PciDevice[]>;
  private readonly childrenOf: ReadonlyMap<PciDevice, readonly PciDevice[]>;

  private constructor(
    devices: PciDevice[],
    links: {
      busSelf: Map<string, PciDevice>;
      virtualBusBridge: Map<string, PciDevice>;
    },
    opts: { cpu?: CpuKind; iommu?: IommuMode },
  ) {
    this.devices = devices;
    this.cpu = opts.cpu;
    this.iommu = opts.iommu;
    this.byBdf = new Map(devices.map((d) => [d.bdf, d]));
    this.busSelf = links.busSelf;
    this.virtualBusBridge = links.virtualBusBridge;
    const onBus = new Map<string, PciDevice[]>();
    for (const d of devices) {
      const k = busKey(d.domain, d.bus);
      const list = onBus.get(k) ?? [];
      list.push(d);
      onBus.set(k, list);
    }
    this.onBus = onBus;
    const hosts = new Map<string, HostBridge>();
    for (const d of devices) {
      const root = this.rootBusOf(d.domain, d.bus);
      if (!hosts.has(root.key)) {
        hosts.set(root.key, { name: root.key, domain: d.domain, bus: root.bus, id: `hostbridge:${root.key}` });
      }
    }
    this.hostByBus = hosts;
    this.hostBridges = [...hosts.values()].sort((a, b) => a.domain - b.domain || a.bus - b.bus);
    const children = new Map<PciDevice, PciDevice[]>();
    for (const d of devices) {
      const up = this.upstreamBridge(d);
      if (!up) continue;
      const list = children.get(up) ?? [];
      list.push(d);
      children.set(up, list);
    }
    this.childrenOf = children;
  }

  /**
   * Validates and links `inputs`. Port types not given are inferred from the
   * tree's shape (inferPortType). Throws TopologyError on duplicate BDFs, two
   * bridges claiming one bus, loops, or a physfn that is not there.
   */
  static create(inputs: readonly PciDeviceInput[], opts: { cpu?: CpuKind; iommu?: IommuMode } = {}): Topology {
    interface Raw {
      input: PciDeviceInput;
      bdf: string;
      domain: number;
      bus: number;
      dev: number;
      fn: number;
      isBridge: boolean;
      subordinate?: number;
    }
    const raws: Raw[] = [];
    const seen = new Set<string>();
    for (const input of inputs) {
      const b = parseBdf(input.bdf);
      if (!b) throw new TopologyError(`bad BDF '${input.bdf}' (expected e.g. 0000:03:00.0)`);
      const bdf = formatBdf(b.domain, b.bus, b.dev, b.fn);
      if (seen.has(bdf)) throw new TopologyError(`device ${bdf} is listed twice`);
      seen.add(bdf);
      for (const [field, v] of [
        ['secondary', input.secondary],
        ['subordinate', input.subordinate],
      ] as const) {
        if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 0xff)) {
          throw new TopologyError(`${bdf}: ${field} bus ${v} is not a bus number (0-ff)`);
        }
      }
      const isBridge = input.secondary !== undefined || (input.portType !== undefined && BRIDGE_TYPES.has(input.portType));
      raws.push({ input, bdf, ...b, isBridge, subordinate: input.subordinate });
    }
    raws.sort((x, y) => x.domain - y.domain || x.bus - y.bus || x.dev - y.dev || x.fn - y.fn);

    const bySecondary = new Map<string, Raw>();
    for (const r of raws) {
      if (r.input.secondary === undefined) continue;
      const k = busKey(r.domain, r.input.secondary);
      const other = bySecondary.get(k);
      if (other) throw new TopologyError(`bridges ${other.bdf} and ${r.bdf} both have secondary bus ${k}`);
      if (r.input.secondary === r.bus) throw new TopologyError(`bridge ${r.bdf} has its own bus ${hex(r.bus, 2)} as secondary bus`);
      bySecondary.set(k, r);
    }
    // Loops through bus->self: A on bus 2 with secondary 3, B on bus 3 with secondary 2.
    for (const r of raws) {
      const visited = new Set<string>();
      let k = busKey(r.domain, r.bus);
      for (let br = bySecondary.get(k); br; br = bySecondary.get(k)) {
        if (visited.has(br.bdf)) throw new TopologyError(`bridges loop through bus ${k}`);
        visited.add(br.bdf);
        k = busKey(br.domain, br.bus);
      }
    }
    // Subordinate bus numbers: given, else the highest bus below the bridge.
    const below = (r: Raw): number => {
      let max = r.input.secondary ?? r.bus;
      for (const c of raws) {
        if (c.domain !== r.domain || c.bus !== r.input.secondary || c === r) continue;
        max = Math.max(max, c.isBridge && c.input.secondary !== undefined ? below(c) : c.bus);
      }
      return Math.max(max, r.input.subordinate ?? 0);
    };
    for (const r of raws) if (r.input.secondary !== undefined) r.subordinate = below(r);

    // Buses nobody has as secondary but inside a bridge's range: SR-IOV virtual
    // buses (virtfn_add_bus(): bus->self is NULL, bus->parent the PF's bus).
    const virtualBus = new Map<string, Raw>();
    for (const r of raws) {
      const k = busKey(r.domain, r.bus);
      if (bySecondary.has(k) || virtualBus.has(k)) continue;
      let best: Raw | undefined;
      for (const br of raws) {
        if (br.domain !== r.domain || br.input.secondary === undefined || br.subordinate === undefined) continue;
        if (br.input.secondary < r.bus && r.bus <= br.subordinate) {
          if (!best || br.subordinate! - br.input.secondary < best.subordinate! - best.input.secondary!) best = br;
        }
      }
      if (best) virtualBus.set(k, best);
    }

    for (const r of raws) {
      if (r.input.physfn === undefined) continue;
      const pf = canonicalBdf(r.input.physfn);
      const pfRaw = pf ? raws.find((x) => x.bdf === pf) : undefined;
      if (!pfRaw) throw new TopologyError(`${r.bdf}: physfn ${r.input.physfn} is not in the topology`);
      if (pfRaw.input.physfn !== undefined || pfRaw === r) throw new TopologyError(`${r.bdf}: physfn ${pf} is itself a virtual function`);
    }

    // BARs: no empty ones, and no two overlapping in CPU address space within
    // a domain. (Across domains they may nest: a VMD endpoint's BAR holds the
    // BARs of the devices in the domain it creates.)
    const bars: { bdf: string; domain: number; bar: Bar }[] = [];
    for (const r of raws) {
      for (const bar of r.input.bars ?? []) {
        if (bar.size <= 0n) throw new TopologyError(`${r.bdf}: BAR${bar.index} has size 0`);
        for (const o of bars) {
          if (o.domain === r.domain && bar.cpu < o.bar.cpu + o.bar.size && o.bar.cpu < bar.cpu + bar.size) {
            throw new TopologyError(`${r.bdf}: BAR${bar.index} overlaps BAR${o.bar.index} of ${o.bdf}`);
          }
        }
        bars.push({ bdf: r.bdf, domain: r.domain, bar });
      }
    }

    // Port types: explicit ones first, then inference from the parents down.
    const types = new Map<Raw, { type: PortType; from: PciDevice['portTypeFrom'] }>();
    for (const r of raws) {
      if (r.input.portType) types.set(r, { type: r.input.portType, from: r.input.portTypeFrom ?? 'json' });
    }
    const parentOf = (r: Raw): Raw | undefined => {
      const src = r.input.physfn ? raws.find((x) => x.bdf === canonicalBdf(r.input.physfn!))! : r;
      const k = busKey(src.domain, src.bus);
      return bySecondary.get(k) ?? virtualBus.get(k);
    };
    const typeOf = (r: Raw, depth = 0): PortType => {
      const known = types.get(r);
      if (known) return known.type;
      if (depth > 300) throw new TopologyError(`bridges loop above ${r.bdf}`);
      const parent = parentOf(r);
      const parentType = parent ? typeOf(parent, depth + 1) : undefined;
      const hasBridgeChild =
        r.input.secondary !== undefined &&
        raws.some((c) => c.domain === r.domain && c.bus === r.input.secondary && c.isBridge);
      const t = inferPortType({ isBridge: r.isBridge, parentType, hasBridgeChild });
      types.set(r, { type: t, from: 'inferred' });
      return t;
    };
    for (const r of raws) typeOf(r);

    const devices: PciDevice[] = raws.map((r) => {
      const { type, from } = types.get(r)!;
      const i = r.input;
      const d: PciDevice = {
        bdf: r.bdf,
        domain: r.domain,
        bus: r.bus,
        dev: r.dev,
        fn: r.fn,
        devfn: (r.dev << 3) | r.fn,
        ...(i.vendorId !== undefined && { vendorId: i.vendorId }),
        ...(i.deviceId !== undefined && { deviceId: i.deviceId }),
        ...(i.name !== undefined && { name: i.name }),
        portType: type,
        portTypeFrom: from,
        isBridge: r.isBridge || BRIDGE_TYPES.has(type),
        ...(i.secondary !== undefined && { secondary: i.secondary, subordinate: r.subordinate }),
        ...(i.acs && { acs: { ...i.acs } }),
        bars: [...(i.bars ?? [])].sort((a, b) => a.index - b.index),
        ...(i.iommu && { iommu: i.iommu }),
        ...(i.physfn !== undefined && { physfn: canonicalBdf(i.physfn) }),
        ...(i.driver !== undefined && { driver: i.driver }),
        ...(i.iommuGroup !== undefined && { iommuGroup: i.iommuGroup }),
      };
      return d;
    });
    const byRaw = new Map(raws.map((r, i) => [r, devices[i]]));
    const busSelf = new Map([...bySecondary].map(([k, r]) => [k, byRaw.get(r)!]));
    const virtualBusBridge = new Map([...virtualBus].map(([k, r]) => [k, byRaw.get(r)!]));
    return new Topology(devices, { busSelf, virtualBusBridge }, opts);
  }

  /** The device with this BDF ("03:00.0" means domain 0000), or undefined. */
  device(bdf: string): PciDevice | undefined {
    const c = canonicalBdf(bdf);
    return c === undefined ? undefined : this.byBdf.get(c);
  }

  /** pci_is_root_bus(): a bus no bridge leads to. */
  isRootBus(domain: number, bus: number): boolean {
    const k = busKey(domain, bus);
    return !this.busSelf.has(k) && !this.virtualBusBridge.has(k);
  }

  /**
   * pci_upstream_bridge() (include/linux/pci.h):
   *
   *     dev = pci_physfn(dev);
   *     if (pci_is_root_bus(dev->bus)) return NULL;
   *     return dev->bus->self;
   *
   * So the upstream bridge of a root port, of the host bridge device and of
   * any other function on a root bus (an RCiEP) is NULL; of a device below a
   * root port or a switch downstream port it is that port; of a switch
   * upstream port it is the root port or downstream port above it. A virtual
   * function answers for its physical function. A device on an SR-IOV
   * virtual bus with no physfn given (an lspci listing cannot tell) is taken
   * to be a VF whose PF sits on the enclosing bridge's secondary bus, so the
   * answer is that bridge, as pci_physfn() would make it.
   */
  upstreamBridge(dev: PciDevice): PciDevice | null {
    const d = dev.physfn ? (this.byBdf.get(dev.physfn) ?? dev) : dev;
    const k = busKey(d.domain, d.bus);
    return this.busSelf.get(k) ?? this.virtualBusBridge.get(k) ?? null;
  }

  private rootBusOf(domain: number, bus: number): { key: string; bus: number } {
    let b = bus;
    for (let i = 0; i < 300; i++) {
      const k = busKey(domain, b);
      const up = this.busSelf.get(k) ?? this.virtualBusBridge.get(k);
      if (!up) return { key: k, bus: b };
      b = up.bus;
    }
    throw new TopologyError(`bridges loop above bus ${busKey(domain, bus)}`);
  }

  /** pci_find_host_bridge(dev->bus): the host bridge of the root bus above the device. */
  hostBridgeOf(dev: PciDevice): HostBridge {
    return this.hostByBus.get(this.rootBusOf(dev.domain, dev.bus).key)!;
  }

  /** The functions on a bus, in devfn order (virtual functions last, as they are added after the scan). */
  busDevices(domain: number, bus: number): readonly PciDevice[] {
    const list = [...(this.onBus.get(busKey(domain, bus)) ?? [])];
    return list.sort((a, b) => (a.physfn ? 1 : 0) - (b.physfn ? 1 : 0) || a.devfn - b.devfn);
  }

  /**
   * pci_host_bridge_dev() (drivers/pci/p2pdma.c): the first device on the
   * root bus's device list (lowest devfn: pci_scan_child_bus() scans devfn
   * upwards) if it is devfn 00.0 or a PCIe Root Port; otherwise NULL, and
   * then no allowlist entry can match.
   */
  hostBridgeDevice(host: HostBridge): PciDevice | null {
    const first = this.busDevices(host.domain, host.bus)[0];
    if (!first) return null;
    if (first.devfn === 0) return first;
    if (first.portType === 'root-port') return first;
    return null;
  }

  /** The first device on the root bus, whether or not pci_host_bridge_dev() accepts it. */
  firstDeviceOnRootBus(host: HostBridge): PciDevice | undefined {
    return this.busDevices(host.domain, host.bus)[0];
  }

  /** The functions whose upstream bridge is `dev`. */
  children(dev: PciDevice): readonly PciDevice[] {
    return this.childrenOf.get(dev) ?? [];
  }

  /** `dev` and everything below it. */
  subtree(dev: PciDevice): Set<PciDevice> {
    const out = new Set<PciDevice>([dev]);
    const walk = (d: PciDevice): void => {
      for (const c of this.children(d)) {
        if (!out.has(c)) {
          out.add(c);
          walk(c);
        }
      }
    };
    walk(dev);
    return out;
  }

  /** The device and its upstream bridges, bottom up (the chain calc_map_type_and_dist() walks). */
  upstreamChain(dev: PciDevice): PciDevice[] {
    const out: PciDevice[] = [];
    for (let d: PciDevice | null = dev; d; d = this.upstreamBridge(d)) out.push(d);
    return out;
  }

  /** The IOMMU mode for DMA from `dev`: its own, else the topology's default. */
  iommuOf(dev: PciDevice): IommuMode | undefined {
    return dev.iommu ?? this.iommu;
  }
}

/**
 * Port type from the tree's shape, for functions whose type nobody stated
 * (lspci -tvnn shows no port types; lspci -vvv and the JSON format can):
 *
 * - a bridge on a root bus is a root port;
 * - a bridge below a root port or switch downstream port is a switch
 *   upstream port if its secondary bus holds a bridge (the downstream
 *   ports), and a PCIe-to-PCI bridge otherwise (e.g. a BMC's AST1150);
 * - a bridge below a switch upstream port is a switch downstream port;
 * - a bridge below a PCI bridge is a PCI bridge;
 * - a non-bridge on a root bus is a root complex integrated endpoint (the
 *   host bridge device 00.0 included; pci_host_bridge_dev() takes devfn 00.0
 *   whatever its type), below a PCI bridge a conventional PCI device, and an
 *   endpoint anywhere else.
 *
 * Only one decision of the kernel reads the port type: whether the first
 * device of a root bus is a Root Port (pci_host_bridge_dev()). The others
 * only label pictures.
 */
export function inferPortType(where: { isBridge: boolean; parentType?: PortType; hasBridgeChild: boolean }): PortType {
  const { isBridge, parentType, hasBridgeChild } = where;
  const underPci = parentType === 'pcie-to-pci-bridge' || parentType === 'pci-bridge';
  if (isBridge) {
    if (parentType === undefined) return 'root-port';
    if (underPci) return 'pci-bridge';
    if (parentType === 'switch-upstream') return 'switch-downstream';
    return hasBridgeChild ? 'switch-upstream' : 'pcie-to-pci-bridge';
  }
  if (parentType === undefined) return 'rc-endpoint';
  if (underPci) return 'pci-device';
  return 'endpoint';
}

// ---------------------------------------------------------------------------
// The kernel's decision (drivers/pci/p2pdma.c, 6.12)

/**
 * pci_bridge_has_acs_redir(): true if the device has an ACS capability
 * (pdev->acs_cap, found by pci_acs_init() for every device, bridge or not)
 * whose control register has P2P Request Redirect, P2P Completion Redirect
 * or P2P Egress Control set. Nothing else counts: SrcValid, TransBlk,
 * UpstreamFwd and DirectTrans are ignored, and, despite the name, the
 * function does not check that the device is a bridge: a multi-function
 * endpoint with ReqRedir+ counts, on either end of the path.
 */
export function pciBridgeHasAcsRedir(dev: PciDevice): boolean {
  if (!dev.acs) return false; // pos = pdev->acs_cap; if (!pos) return 0;
  return (dev.acs.ctrl & ACS_REDIRECT_BITS) !== 0; // ctrl & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC)
}

/**
 * cpu_supports_p2pdma(): true only on x86 for an AMD CPU of family 0x17
 * (Zen) or newer; then any path through the host bridge is allowed and the
 * allowlist is not consulted. Intel and every other CPU: false.
 */
export function cpuSupportsP2pdma(cpu: CpuKind): boolean {
  return cpu === 'amd-zen';
}

export interface WhitelistEntry {
  vendor: number;
  device: number;
  /** REQ_SAME_HOST_BRIDGE: allowed only when provider and client share this host bridge. */
  sameHostBridgeOnly: boolean;
  comment: string;
}

/** pci_p2pdma_whitelist[] in drivers/pci/p2pdma.c (6.12; the same ids in 6.1). */
export const P2PDMA_WHITELIST: readonly WhitelistEntry[] = [
  { vendor: 0x8086, device: 0x3c00, sameHostBridgeOnly: true, comment: 'Intel Xeon E5/Core i7' },
  { vendor: 0x8086, device: 0x3c01, sameHostBridgeOnly: true, comment: 'Intel Xeon E5/Core i7' },
  { vendor: 0x8086, device: 0x2f00, sameHostBridgeOnly: true, comment: 'Intel Xeon E7 v3/Xeon E5 v3/Core i7' },
  { vendor: 0x8086, device: 0x2f01, sameHostBridgeOnly: true, comment: 'Intel Xeon E7 v3/Xeon E5 v3/Core i7' },
  { vendor: 0x8086, device: 0x2030, sameHostBridgeOnly: false, comment: 'Intel Skylake-E' },
  { vendor: 0x8086, device: 0x2031, sameHostBridgeOnly: false, comment: 'Intel Skylake-E' },
  { vendor: 0x8086, device: 0x2032, sameHostBridgeOnly: false, comment: 'Intel Skylake-E' },
  { vendor: 0x8086, device: 0x2033, sameHostBridgeOnly: false, comment: 'Intel Skylake-E' },
  { vendor: 0x8086, device: 0x2020, sameHostBridgeOnly: false, comment: 'Intel Skylake-E' },
  { vendor: 0x8086, device: 0x09a2, sameHostBridgeOnly: false, comment: 'Intel Skylake-E' },
];

/** The verdict of __host_bridge_whitelist() on one host bridge. */
export interface HostBridgeVerdict {
  hostBridge: HostBridge;
  /** pci_host_bridge_dev(): null when the root bus's first device is neither 00.0 nor a Root Port. */
  device: PciDevice | null;
  /** The first device on the root bus (whether or not it qualifies). */
  firstDevice?: PciDevice;
  entry?: WhitelistEntry;
  allowed: boolean;
  /** Why, in a phrase: "host bridge 8086:2020 is on the allowlist". */
  why: string;
}

function deviceLabel(d: PciDevice): string {
  const id = formatId(d.vendorId, d.deviceId);
  return id ? `${id} (${d.bdf})` : d.bdf;
}

/**
 * __host_bridge_whitelist(host, same_host_bridge, warn): takes
 * pci_host_bridge_dev(host); NULL → false. Looks its vendor:device up in
 * the allowlist; an entry with REQ_SAME_HOST_BRIDGE fails when the caller
 * says the bridges differ. No entry → false (and with `warn`, the kernel
 * prints "Host bridge not in P2PDMA whitelist: vvvv:dddd").
 */
export function hostBridgeAllowed(t: Topology, host: HostBridge, sameHostBridge: boolean): HostBridgeVerdict {
  const device = t.hostBridgeDevice(host);
  const firstDevice = t.firstDeviceOnRootBus(host);
  if (!device) {
    const why = firstDevice
      ? `host bridge ${host.name} has no host bridge device (its first device ${deviceLabel(firstDevice)} is neither devfn 00.0 nor a Root Port)`
      : `host bridge ${host.name} has no devices`;
    return { hostBridge: host, device, firstDevice, allowed: false, why };
  }
  const id = formatId(device.vendorId, device.deviceId);
  if (!id) {
    return {
      hostBridge: host,
      device,
      firstDevice,
      allowed: false,
      why: `host bridge device ${device.bdf} has no known vendor:device id, so no allowlist entry can match`,
    };
  }
  const entry = P2PDMA_WHITELIST.find((e) => e.vendor === device.vendorId && e.device === device.deviceId);
  if (!entry) {
    return { hostBridge: host, device, firstDevice, allowed: false, why: `host bridge ${id} (${device.bdf}) is not on the allowlist` };
  }
  if (entry.sameHostBridgeOnly && !sameHostBridge) {
    return {
      hostBridge: host,
      device,
      firstDevice,
      entry,
      allowed: false,
      why: `host bridge ${id} (${device.bdf}) is on the allowlist for peers under the same host bridge only`,
    };
  }
  return { hostBridge: host, device, firstDevice, entry, allowed: true, why: `host bridge ${id} (${device.bdf}) is on the allowlist` };
}

/** pci_warn()'s prefix: the bound driver's name (else the bus name, "pci") and pci_name(). */
export function kernelPrefix(d: PciDevice): string {
  return `${d.driver ?? 'pci'} ${d.bdf}`;
}

/**
 * host_bridge_whitelist(a, b, warn): the same host bridge → one call with
 * same_host_bridge = true; different host bridges → both must pass with
 * same_host_bridge = false (evaluated left to right: when a's fails, b's is
 * not looked at and prints nothing).
 */
export function hostBridgeWhitelist(
  t: Topology,
  a: PciDevice,
  b: PciDevice,
  warn: boolean,
): { allowed: boolean; same: boolean; verdicts: HostBridgeVerdict[]; log: string[] } {
  const hostA = t.hostBridgeOf(a);
  const hostB = t.hostBridgeOf(b);
  const log: string[] = [];
  const check = (host: HostBridge, same: boolean): HostBridgeVerdict => {
    const v = hostBridgeAllowed(t, host, same);
    // pci_warn(root, ...) only when there is a root device and no entry matched.
    if (warn && v.device && !v.entry && formatId(v.device.vendorId, v.device.deviceId)) {
      log.push(`${kernelPrefix(v.device)}: Host bridge not in P2PDMA whitelist: ${formatId(v.device.vendorId, v.device.deviceId)}`);
    }
    return v;
  };
  if (hostA === hostB) {
    const v = check(hostA, true);
    return { allowed: v.allowed, same: true, verdicts: [v], log };
  }
  const va = check(hostA, false);
  if (!va.allowed) return { allowed: false, same: false, verdicts: [va], log };
  const vb = check(hostB, false);
  return { allowed: vb.allowed, same: false, verdicts: [va, vb], log };
}

/** A device on the path whose ACS control redirects peer-to-peer traffic. */
export interface AcsRedirect {
  bdf: string;
  ctrl: number;
  /** The redirect bits that are set: "ReqRedir+ CmplRedir+". */
  bits: string;
}

/** One provider/client pair, as calc_map_type_and_dist() sees it. */
export interface P2pResult {
  provider: string;
  client: string;
  mapType: MapType;
  /** What pci_p2pdma_distance() returns for this pair: the hop count, or -1 when not supported. */
  distance: number;
  /** *dist as calc_map_type_and_dist() sets it (set even when the map type is not-supported). */
  hops: number;
  /** The first upstream device of the provider that is also upstream of the client (the loops' a == bb). */
  commonUpstream?: string;
  /**
   * With a common upstream device: the devices with ACS redirect, in the
   * kernel's order (provider up to and including the common device, then
   * client up to but excluding it).
   */
  acsRedirects: AcsRedirect[];
  /** The value the kernel suggests for pci=disable_acs_redir= (its 128-byte buffer and all). */
  disableAcsRedir?: string;
  cpuSupportsP2pdma: boolean;
  /** Whether host_bridge_whitelist() was called (not when the switch path is clean, nor on AMD Zen). */
  hostBridgeConsulted: boolean;
  /** The host bridge verdicts, in the order the kernel evaluated them. */
  hostBridges: HostBridgeVerdict[];
  /** A sentence: "common upstream bridge 0000:02:00.0 with no ACS redirect". */
  reason: string;
  /** What the kernel prints with verbose = true (pci_warn lines). */
  kernelLog: string[];
  /** The route a request takes, as node ids from the client to the provider. */
  path: string[];
  /** Where the path breaks (not-supported only). */
  breakAt?: { node: string; reason: string };
}

/**
 * The kernel's seq_buf of ACS devices: "%s;" per device into a 128-byte
 * buffer; on success the last ';' is dropped. When the names do not fit,
 * vsnprintf() truncates at 127 characters and seq_buf marks the overflow
 * (len = size + 1); the kernel then writes the NUL at buffer[len - 1],
 * one byte past the buffer, and prints the truncated text with its ';'.
 */
export function disableAcsRedirParam(bdfs: readonly string[]): string {
  const full = bdfs.map((b) => `${b};`).join('');
  return full.length <= 127 ? full.slice(0, -1) : full.slice(0, 127);
}

/**
 * calc_map_type_and_dist(provider, client, &dist, verbose = true).
 *
 * The outer loop walks a = provider, pci_upstream_bridge(a), ... counting
 * dist_a; before each inner walk it tests a for ACS redirect. The inner loop
 * walks bb = client upwards counting dist_b until bb == a. So:
 *  - a common upstream device exists: dist = dist_a + dist_b; ACS redirect
 *    is tested on the provider's chain up to and including the common device
 *    and on the client's chain up to but excluding it. None set → BUS_ADDR
 *    (done; the host bridge is never consulted). Some set → the kernel warns
 *    and lists them for pci=disable_acs_redir=, then falls through to the
 *    host-bridge test with warn = true.
 *  - none (different root ports, root buses or domains): dist = the length
 *    of the provider's chain + the length of the client's chain (both
 *    counting the device itself); ACS bits play no part; the host-bridge
 *    test runs with warn = false.
 * The host-bridge test: !cpu_supports_p2pdma() && !host_bridge_whitelist()
 * → NOT_SUPPORTED, else THRU_HOST_BRIDGE.
 */
export function calcMapTypeAndDist(t: Topology, provider: PciDevice, client: PciDevice, cpu: CpuKind): P2pResult {
  let a: PciDevice | null = provider;
  const b = client;
  let distA = 0;
  let distB = 0;
  const acsList: PciDevice[] = [];
  let common: PciDevice | null = null;

  outer: while (a) {
    distB = 0;
    if (pciBridgeHasAcsRedir(a)) acsList.push(a);
    let bb: PciDevice | null = b;
    while (bb) {
      if (a === bb) {
        common = a;
        break outer; // goto check_b_path_acs
      }
      bb = t.upstreamBridge(bb);
      distB++;
    }
    a = t.upstreamBridge(a);
    distA++;
  }

  const hops = distA + distB;
  const log: string[] = [];
  const base = {
    provider: provider.bdf,
    client: client.bdf,
    hops,
    cpuSupportsP2pdma: cpuSupportsP2pdma(cpu),
  };

  let acsRedirects: AcsRedirect[] = [];
  let disable: string | undefined;
  if (common) {
    // check_b_path_acs: client upwards, stopping at the common device.
    for (let bb: PciDevice | null = b; bb; bb = t.upstreamBridge(bb)) {
      if (bb === common) break;
      if (pciBridgeHasAcsRedir(bb)) acsList.push(bb);
    }
    acsRedirects = acsList.map((d) => ({ bdf: d.bdf, ctrl: d.acs!.ctrl, bits: formatAcsRedirect(d.acs!.ctrl) }));
    if (acsList.length === 0) {
      return {
        ...base,
        mapType: 'bus-address',
        distance: hops,
        commonUpstream: common.bdf,
        acsRedirects,
        hostBridgeConsulted: false,
        hostBridges: [],
        reason:
          provider === client
            ? `provider and client are the same function ${provider.bdf}, with no ACS redirect`
            : `common upstream bridge ${common.bdf} with no ACS redirect`,
        kernelLog: log,
        path: switchPath(t, provider, client, common),
      };
    }
    disable = disableAcsRedirParam(acsList.map((d) => d.bdf));
    log.push(`${kernelPrefix(client)}: ACS redirect is set between the client and provider (${provider.bdf})`);
    log.push(
      `${kernelPrefix(client)}: to disable ACS redirect for this path, add the kernel parameter: pci=disable_acs_redir=${disable}`,
    );
  }
  const acsRedirectsSet = common !== null; // acs_redirects = true only on the common-bridge path

  // map_through_host_bridge:
  let hostBridges: HostBridgeVerdict[] = [];
  let consulted = false;
  let supported = true;
  if (!base.cpuSupportsP2pdma) {
    consulted = true;
    const hb = hostBridgeWhitelist(t, provider, client, acsRedirectsSet);
    hostBridges = hb.verdicts;
    log.push(...hb.log);
    if (!hb.allowed) {
      supported = false;
      log.push(
        `${kernelPrefix(client)}: cannot be used for peer-to-peer DMA as the client and provider (${provider.bdf}) do not share an upstream bridge or whitelisted host bridge`,
      );
    }
  }

  const head = common
    ? provider === client
      ? `provider and client are the same function ${provider.bdf}, but ACS redirect is set on ${acsList.map(acsText).join(', ')}`
      : `common upstream bridge ${common.bdf}, but ACS redirect is set on ${acsList.map(acsText).join(', ')}`
    : 'no common upstream bridge';
  let tail: string;
  const hostP = t.hostBridgeOf(provider);
  const hostC = t.hostBridgeOf(client);
  if (base.cpuSupportsP2pdma) {
    tail = 'AMD Zen CPU: cpu_supports_p2pdma() allows any path through the host bridge';
  } else if (hostP === hostC) {
    tail = hostBridges[0].why;
  } else if (hostBridges.every((v) => v.allowed)) {
    tail = `host bridges ${hostP.name} and ${hostC.name} are both on the allowlist (${hostBridges.map(shortWhy).join('; ')})`;
  } else {
    tail = `different host bridges ${hostP.name} and ${hostC.name}; ${hostBridges.find((v) => !v.allowed)!.why}`;
  }
  const path = hostBridgePath(t, provider, client);
  const mapType: MapType = supported ? 'thru-host-bridge' : 'not-supported';
  const result: P2pResult = {
    ...base,
    mapType,
    distance: supported ? hops : -1,
    ...(common && { commonUpstream: common.bdf }),
    acsRedirects,
    ...(disable !== undefined && { disableAcsRedir: disable }),
    hostBridgeConsulted: consulted,
    hostBridges,
    reason: `${head}; ${tail}`,
    kernelLog: log,
    path,
  };
  if (!supported) {
    const failed = hostBridges.find((v) => !v.allowed) ?? hostBridges[hostBridges.length - 1];
    result.breakAt = { node: failed.hostBridge.id, reason: failed.why };
  }
  return result;
}

function acsText(d: PciDevice): string {
  return `${d.bdf} (${formatAcsRedirect(d.acs!.ctrl)})`;
}

function shortWhy(v: HostBridgeVerdict): string {
  return v.device ? `${formatId(v.device.vendorId, v.device.deviceId)} at ${v.device.bdf}` : v.hostBridge.name;
}

/** Client up to the common device, then down to the provider (node ids). */
function switchPath(t: Topology, provider: PciDevice, client: PciDevice, common: PciDevice): string[] {
  const up: string[] = [];
  for (let d: PciDevice | null = client; d && d !== common; d = t.upstreamBridge(d)) up.push(d.bdf);
  const down: string[] = [];
  for (let d: PciDevice | null = provider; d && d !== common; d = t.upstreamBridge(d)) down.push(d.bdf);
  return [...up, common.bdf, ...down.reverse()];
}

/** Client up to its host bridge, across to the provider's if different, down to the provider. */
function hostBridgePath(t: Topology, provider: PciDevice, client: PciDevice): string[] {
  const up = t.upstreamChain(client).map((d) => d.bdf);
  const down = t.upstreamChain(provider).map((d) => d.bdf).reverse();
  const hc = t.hostBridgeOf(client);
  const hp = t.hostBridgeOf(provider);
  return [...up, hc.id, ...(hp === hc ? [] : [hp.id]), ...down];
}

/**
 * pci_p2pdma_distance_many(provider, clients, n, verbose): -1 for no
 * clients; otherwise calc_map_type_and_dist() per client, summing the
 * distances; any NOT_SUPPORTED makes the result -1. Without `verbose` the
 * kernel stops at the first unsupported client (the later ones are not
 * evaluated and are missing from `clients` here); with it, every client is
 * evaluated (and warned about).
 */
export function pciP2pdmaDistanceMany(
  t: Topology,
  provider: PciDevice,
  clients: readonly PciDevice[],
  cpu: CpuKind,
  verbose = true,
): { distance: number; clients: P2pResult[] } {
  if (clients.length === 0) return { distance: -1, clients: [] };
  let notSupported = false;
  let total = 0;
  const results: P2pResult[] = [];
  for (const c of clients) {
    const r = calcMapTypeAndDist(t, provider, c, cpu);
    results.push(r);
    if (r.mapType === 'not-supported') notSupported = true;
    if (notSupported && !verbose) break;
    total += r.hops;
  }
  return { distance: notSupported ? -1 : total, clients: results };
}

// ---------------------------------------------------------------------------
// Pictures

function nodeKind(d: PciDevice): TopoNode['kind'] {
  switch (d.portType) {
    case 'root-port':
      return 'rootport';
    case 'switch-upstream':
      return 'switch-up';
    case 'switch-downstream':
    case 'pcie-to-pci-bridge':
    case 'pci-to-pcie-bridge':
    case 'pci-bridge':
      return 'switch-down';
    default:
      return 'endpoint';
  }
}

const PORT_LABEL: Record<PortType, string> = {
  endpoint: 'Endpoint',
  'legacy-endpoint': 'Legacy Endpoint',
  'rc-endpoint': 'Root Complex Integrated Endpoint',
  'rc-event-collector': 'Root Complex Event Collector',
  'root-port': 'Root Port',
  'switch-upstream': 'Switch Upstream Port',
  'switch-downstream': 'Switch Downstream Port',
  'pcie-to-pci-bridge': 'PCIe-to-PCI bridge',
  'pci-to-pcie-bridge': 'PCI-to-PCIe bridge',
  'pci-bridge': 'PCI bridge',
  'pci-device': 'PCI device',
};

export function portTypeLabel(t: PortType): string {
  return PORT_LABEL[t];
}

/**
 * The drawing of a path: every node on it, their ancestors up to the host
 * bridges, and a CPU node above those ("iommu" in the path becomes an IOMMU
 * node under the CPU). Node ids are BDFs, "hostbridge:dddd:bb", "cpu" and
 * "iommu"; notes carry BDF, ids, port type, ACS, IOMMU mode and the host
 * bridge's allowlist status.
 */
export function topologyPicture(
  t: Topology,
  path: readonly string[],
  breakAt?: { node: string; reason: string },
  opts: { cpu?: CpuKind } = {},
): TopologyPicture {
  const nodes = new Map<string, TopoNode>();
  const cpu = opts.cpu ?? t.cpu;
  const addCpu = (): void => {
    if (!nodes.has('cpu')) nodes.set('cpu', { id: 'cpu', kind: 'cpu', label: cpu ? `CPU (${cpu})` : 'CPU' });
  };
  const addHost = (h: HostBridge): void => {
    if (nodes.has(h.id)) return;
    addCpu();
    const v = hostBridgeAllowed(t, h, true);
    const notes = [`root bus ${h.name}`];
    if (v.device) notes.push(`host bridge device ${deviceLabel(v.device)}`);
    notes.push(v.allowed ? (v.entry?.sameHostBridgeOnly ? 'allowlisted (same host bridge only)' : 'allowlisted') : v.why);
    nodes.set(h.id, { id: h.id, kind: 'hostbridge', label: `host bridge ${h.name}`, parent: 'cpu', notes });
  };
  const addDevice = (d: PciDevice): void => {
    if (nodes.has(d.bdf)) return;
    const up = t.upstreamBridge(d);
    if (up) addDevice(up);
    else addHost(t.hostBridgeOf(d));
    const notes = [d.bdf];
    const id = formatId(d.vendorId, d.deviceId);
    if (id) notes.push(id);
    notes.push(portTypeLabel(d.portType) + (d.portTypeFrom === 'inferred' ? ' (inferred)' : ''));
    if (d.acs) notes.push(`ACSCtl: ${formatAcs(d.acs.ctrl)}`);
    const iommu = t.iommuOf(d);
    if (iommu && !d.isBridge) notes.push(`IOMMU: ${iommu}`);
    nodes.set(d.bdf, {
      id: d.bdf,
      kind: nodeKind(d),
      label: d.name ?? `${portTypeLabel(d.portType)} ${d.bdf}`,
      parent: up ? up.bdf : t.hostBridgeOf(d).id,
      notes,
    });
  };
  for (const id of path) {
    if (id === 'cpu') addCpu();
    else if (id === 'iommu') {
      addCpu();
      if (!nodes.has('iommu')) nodes.set('iommu', { id: 'iommu', kind: 'iommu', label: 'IOMMU', parent: 'cpu' });
    } else if (id.startsWith('hostbridge:')) {
      const h = t.hostBridges.find((x) => x.id === id);
      if (!h) throw new TopologyError(`unknown node '${id}' in path`);
      addHost(h);
    } else {
      const d = t.device(id);
      if (!d) throw new TopologyError(`unknown node '${id}' in path`);
      addDevice(d);
    }
  }
  const picture: TopologyPicture = { nodes: [...nodes.values()], path: [...path] };
  if (breakAt) picture.breakAt = { ...breakAt };
  return picture;
}

/** The picture of one p2p decision. */
export function p2pPicture(t: Topology, r: P2pResult, cpu?: CpuKind): TopologyPicture {
  return topologyPicture(t, r.path, r.breakAt, { cpu });
}

// ---------------------------------------------------------------------------
// DMA addresses for a peer-to-peer transfer

/**
 * What the client must put in its DMA descriptors:
 *  - bus-address: the PCI bus address of the provider's BAR;
 *  - iova: an address the IOMMU maps to the BAR's CPU physical address;
 *  - cpu-physical: the BAR's CPU physical address (dma-direct; the model
 *    takes phys_to_dma() as the identity, as on x86);
 *  - none: there is no valid address: the mapping fails.
 */
export type DmaAddressKind = 'bus-address' | 'iova' | 'cpu-physical' | 'none';

export interface P2pDmaAddress {
  kind: DmaAddressKind;
  /** The value itself, for bus-address and cpu-physical, when the BAR is known. */
  address?: bigint;
  /** For an IOVA: the CPU physical address the IOMMU maps it to, when the BAR is known. */
  mapsTo?: bigint;
  /** How a driver obtains it. */
  api: string;
  /** The kernel code that decides it. */
  mirrors: string;
}

/**
 * The DMA address the DMA API gives a client for provider memory (6.12):
 *  - BUS_ADDR: pci_p2pdma_map_segment() sets sg->dma_address =
 *    sg_phys(sg) + bus_offset (pgmap bus_offset = pci_bus_address() -
 *    pci_resource_start()) and marks it a bus address; dma_direct_map_sg()
 *    and iommu_dma_map_sg() skip the segment. The IOMMU mode does not
 *    matter. pci_p2pmem_virt_to_bus() gives the same value.
 *  - THRU_HOST_BRIDGE: mapped like RAM: iommu_dma_map_sg() gives an IOVA
 *    (translated), dma_direct_map_page() the CPU physical address (IOMMU
 *    off, or an identity domain: passthrough uses dma-direct).
 *  - NOT_SUPPORTED: dma_map_sgtable() returns -EREMOTEIO (dma_map_sg() 0).
 */
export function p2pDmaAddress(
  mapType: MapType,
  iommu: IommuMode,
  target?: { bar: Bar; offset?: bigint },
): P2pDmaAddress {
  const off = target?.offset ?? 0n;
  switch (mapType) {
    case 'bus-address':
      return {
        kind: 'bus-address',
        ...(target && { address: target.bar.bus + off }),
        api: 'dma_map_sgtable() on the p2pdma pages (sg_dma_address()), or pci_p2pmem_virt_to_bus(): the PCI bus address',
        mirrors: 'pci_p2pdma_map_segment(): sg_phys() + bus_offset, marked as a bus address; the IOMMU is bypassed',
      };
    case 'thru-host-bridge':
      return iommu === 'translated'
        ? {
            kind: 'iova',
            ...(target && { mapsTo: target.bar.cpu + off }),
            api: "dma_map_sgtable() on the p2pdma pages: an IOVA the IOMMU maps to the BAR's CPU physical address",
            mirrors: 'iommu_dma_map_sg(): PCI_P2PDMA_MAP_THRU_HOST_BRIDGE segments get a regular IOVA',
          }
        : {
            kind: 'cpu-physical',
            ...(target && { address: target.bar.cpu + off }),
            api: "dma_map_sgtable() on the p2pdma pages: the BAR's CPU physical address",
            mirrors: `dma_direct_map_sg() -> dma_direct_map_page(): CPU physical address (IOMMU ${iommu})`,
          };
    case 'not-supported':
      return {
        kind: 'none',
        api: 'none: dma_map_sgtable() fails with -EREMOTEIO (dma_map_sg() returns 0)',
        mirrors: 'dma_direct_map_sg() / iommu_dma_map_sg(): PCI_P2PDMA_MAP_NOT_SUPPORTED -> -EREMOTEIO',
      };
  }
}

/** What a client puts on the wire. An IOVA is opaque: only the IOMMU knows where it points. */
export type EmittedAddress = { kind: 'address'; value: bigint } | { kind: 'iova'; mapsTo: bigint };

export interface DmaRoute {
  /** Node ids from the client to where the write ends (or breaks). */
  hops: string[];
  /** What happens, step by step. */
  steps: string[];
  outcome: Outcome;
  breakAt?: { node: string; reason: string };
}

interface BarHit {
  dev: PciDevice;
  bar: Bar;
  offset: bigint;
}

function hitByBus(devs: Iterable<PciDevice>, addr: bigint): BarHit | undefined {
  for (const dev of devs) {
    for (const bar of dev.bars) {
      if (addr >= bar.bus && addr < bar.bus + bar.size) return { dev, bar, offset: addr - bar.bus };
    }
  }
  return undefined;
}

/** The smallest BAR holding `addr` (a VMD endpoint's BAR holds its child devices' BARs). */
function hitByCpu(devs: Iterable<PciDevice>, addr: bigint): BarHit | undefined {
  let best: BarHit | undefined;
  for (const dev of devs) {
    for (const bar of dev.bars) {
      if (addr >= bar.cpu && addr < bar.cpu + bar.size && (!best || bar.size < best.bar.size)) {
        best = { dev, bar, offset: addr - bar.cpu };
      }
    }
  }
  return best;
}

function hx(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function hitText(h: BarHit): string {
  return `BAR${h.bar.index} of ${h.dev.bdf} at offset ${hx(h.offset)}`;
}

/** Redirect of a posted write at an ingress port: ReqRedir, or EgressCtrl (its vector is not modelled). */
function redirectsRequests(d: PciDevice): boolean {
  return !!d.acs && (d.acs.ctrl & (ACS_RR | ACS_EC)) !== 0;
}

/**
 * Routes one memory write from `client` to the address it emits:
 *
 * 1. Inside the client's own multi-function device: an address in a sibling
 *    function's (or its own) BAR is delivered internally unless the client
 *    function's ACS redirects requests.
 * 2. Up the tree: at each bridge B above the client, the fabric above B
 *    (the parent's secondary bus: a switch's internal bus) routes by *bus*
 *    address to the BARs of the devices below the parent but outside B;
 *    ACS ReqRedir (or EgressCtrl) on B, the ingress port, sends the request
 *    upstream instead. The model uses BARs for bridge windows.
 * 3. At the root complex: a translating IOMMU looks the address up as an
 *    IOVA (a raw address was never mapped: fault; dma-iommu also keeps the
 *    client host bridge's windows out of the IOVA space:
 *    iova_reserve_pci_windows()); otherwise the address is taken as a CPU
 *    physical address. An address in a BAR is sent back down only where the
 *    root complex forwards peer-to-peer, which the model equates with what
 *    the kernel allows (cpu_supports_p2pdma() or host_bridge_whitelist());
 *    elsewhere it ends in an Unsupported Request.
 *
 * Completion redirect (CmplRedir) concerns reads, which this does not model.
 */
export function routeDmaWrite(
  t: Topology,
  client: PciDevice,
  emitted: EmittedAddress,
  opts: { cpu: CpuKind; iommu: IommuMode; intended?: { provider: PciDevice; bar: Bar; offset: bigint } },
): DmaRoute {
  const hops = [client.bdf];
  const steps: string[] = [];
  const value = emitted.kind === 'address' ? emitted.value : undefined;
  const shown = value !== undefined ? hx(value) : `an IOVA for ${hx((emitted as { mapsTo: bigint }).mapsTo)}`;
  steps.push(`${client.bdf} writes to ${shown}`);

  const arrive = (hit: BarHit, via: string): DmaRoute => {
    const i = opts.intended;
    if (!i || (hit.dev === i.provider && hit.bar.index === i.bar.index && hit.offset === i.offset)) {
      steps.push(`${via} delivers the write to ${hitText(hit)}`);
      return { hops, steps, outcome: { kind: 'OK', summary: `the write reaches ${hitText(hit)}` } };
    }
    steps.push(`${via} delivers the write to ${hitText(hit)}, not to the intended BAR${i.bar.index} of ${i.provider.bdf} at offset ${hx(i.offset)}`);
    return {
      hops,
      steps,
      outcome: { kind: 'SILENT_CORRUPTION', target: hitText(hit), summary: `the write lands in ${hitText(hit)} instead of the peer buffer` },
    };
  };
  const down = (from: PciDevice | null, to: PciDevice): void => {
    const chain: string[] = [];
    for (let d: PciDevice | null = to; d && d !== from; d = t.upstreamBridge(d)) chain.push(d.bdf);
    hops.push(...chain.reverse());
  };

  // 1. Inside the client's device.
  if (value !== undefined) {
    const functions = t.busDevices(client.domain, client.bus).filter((d) => d.dev === client.dev);
    const hit = hitByBus(functions, value);
    if (hit) {
      if (redirectsRequests(client)) {
        steps.push(`ACS ${formatAcsRedirect(client.acs!.ctrl)} on ${client.bdf} sends the request upstream instead of to ${hit.dev.bdf}`);
      } else {
        if (hit.dev !== client) hops.push(hit.dev.bdf);
        return arrive(hit, `the device itself (function ${client.bdf})`);
      }
    }
  }

  // 2. Up the tree.
  for (let cur: PciDevice = client; ; ) {
    const bridge = t.upstreamBridge(cur);
    if (!bridge) break;
    hops.push(bridge.bdf);
    const parent = t.upstreamBridge(bridge);
    if (parent && value !== undefined) {
      const inside = t.subtree(bridge);
      const peers = [...t.subtree(parent)].filter((d) => d !== parent && !inside.has(d));
      const hit = hitByBus(peers, value);
      if (hit) {
        if (redirectsRequests(bridge)) {
          steps.push(
            `${hx(value)} is ${hitText(hit)}, but ACS ${formatAcsRedirect(bridge.acs!.ctrl)} on ${bridge.bdf} redirects the request upstream`,
          );
        } else {
          hops.push(parent.bdf);
          down(parent, hit.dev);
          return arrive(hit, `the fabric at ${parent.bdf} (routing by bus address)`);
        }
      }
    }
    cur = bridge;
  }

  // 3. The root complex.
  const host = t.hostBridgeOf(client);
  hops.push(host.id);
  let phys: bigint;
  if (opts.iommu === 'translated') {
    hops.push('iommu');
    if (emitted.kind === 'iova') {
      phys = emitted.mapsTo;
      steps.push(`the IOMMU translates the IOVA to CPU physical ${hx(phys)}`);
    } else {
      const why = `the IOMMU looks ${hx(emitted.value)} up in ${client.bdf}'s I/O page table: nothing is mapped there`;
      steps.push(why);
      return {
        hops,
        steps,
        outcome: {
          kind: 'IOMMU_FAULT',
          target: `DMA write from ${client.bdf} to ${hx(emitted.value)}`,
          summary: `IOMMU fault: ${hx(emitted.value)} is a bus address, not an IOVA the driver mapped; the write is dropped`,
        },
        breakAt: { node: 'iommu', reason: 'no IOVA mapping for a raw bus address' },
      };
    }
  } else {
    phys = emitted.kind === 'iova' ? emitted.mapsTo : emitted.value;
    steps.push(`with the IOMMU ${opts.iommu}, the root complex takes ${hx(phys)} as a CPU physical address`);
  }
  const hit = hitByCpu(t.devices, phys);
  if (!hit) {
    steps.push(`no BAR holds CPU physical ${hx(phys)}`);
    return {
      hops,
      steps,
      outcome: {
        kind: 'SILENT_CORRUPTION',
        target: `CPU physical ${hx(phys)}`,
        summary: `the write goes to CPU physical ${hx(phys)}, which is no BAR: host RAM if there is any there, else an Unsupported Request`,
      },
    };
  }
  const allowed = cpuSupportsP2pdma(opts.cpu) || hostBridgeWhitelist(t, hit.dev, client, false).allowed;
  if (!allowed) {
    const why = hostBridgeWhitelist(t, hit.dev, client, false).verdicts.find((v) => !v.allowed)?.why ?? 'not allowlisted';
    steps.push(`the root complex does not forward peer-to-peer to ${hit.dev.bdf}: ${why}`);
    return {
      hops,
      steps,
      outcome: {
        kind: 'UR_AER',
        target: hitText(hit),
        summary: `the root complex does not route the write to ${hit.dev.bdf}: Unsupported Request (AER), or the write is dropped`,
      },
      breakAt: { node: host.id, reason: why },
    };
  }
  const targetHost = t.hostBridgeOf(hit.dev);
  if (targetHost !== host) hops.push(targetHost.id);
  down(null, hit.dev);
  return arrive(hit, `the root complex (${host.name}${targetHost !== host ? ` -> ${targetHost.name}` : ''})`);
}

export interface P2pAddressing {
  mapType: MapType;
  iommu: IommuMode;
  /** The address the DMA API gives, and where a write to it goes. */
  expected: P2pDmaAddress;
  expectedRoute?: DmaRoute;
  /** The other choice a driver can make, and where a write to it goes. */
  wrong: { uses: 'dma-api' | 'bus-address'; how: string; address: EmittedAddress; route: DmaRoute };
}

/**
 * Both addresses a client can use for provider memory at BAR `bar`,
 * `offset`, and what a write to each does:
 *  - bus-address path: the right one is the bus address; the wrong one is a
 *    DMA-API address of the BAR (dma_map_resource(): an IOVA when
 *    translated, the CPU address otherwise), which the switch cannot match
 *    (an IOVA never falls in the host bridge's windows), so it climbs to the
 *    root complex;
 *  - thru-host-bridge or not-supported: the wrong one is the raw bus
 *    address (pci_p2pmem_virt_to_bus()); through a translating IOMMU that
 *    is a fault; without one it works only where bus and CPU addresses
 *    coincide and the root complex forwards it.
 */
export function p2pAddressing(
  t: Topology,
  r: P2pResult,
  opts: { cpu: CpuKind; iommu: IommuMode; bar: Bar; offset?: bigint },
): P2pAddressing {
  const provider = t.device(r.provider)!;
  const client = t.device(r.client)!;
  const offset = opts.offset ?? 0n;
  const intended = { provider, bar: opts.bar, offset };
  const routeOpts = { cpu: opts.cpu, iommu: opts.iommu, intended };
  const expected = p2pDmaAddress(r.mapType, opts.iommu, { bar: opts.bar, offset });
  let expectedRoute: DmaRoute | undefined;
  if (expected.kind === 'iova') expectedRoute = routeDmaWrite(t, client, { kind: 'iova', mapsTo: expected.mapsTo! }, routeOpts);
  else if (expected.kind !== 'none') expectedRoute = routeDmaWrite(t, client, { kind: 'address', value: expected.address! }, routeOpts);

  let wrong: P2pAddressing['wrong'];
  if (r.mapType === 'bus-address') {
    const cpuAddr = opts.bar.cpu + offset;
    const address: EmittedAddress = opts.iommu === 'translated' ? { kind: 'iova', mapsTo: cpuAddr } : { kind: 'address', value: cpuAddr };
    wrong = {
      uses: 'dma-api',
      how: "dma_map_resource() on the BAR's CPU address (the IOMMU path, although the switch routes by bus address)",
      address,
      route: routeDmaWrite(t, client, address, routeOpts),
    };
  } else {
    const address: EmittedAddress = { kind: 'address', value: opts.bar.bus + offset };
    wrong = {
      uses: 'bus-address',
      how: 'pci_p2pmem_virt_to_bus(): the raw PCI bus address, bypassing the DMA API',
      address,
      route: routeDmaWrite(t, client, address, routeOpts),
    };
  }
  return { mapType: r.mapType, iommu: opts.iommu, expected, ...(expectedRoute && { expectedRoute }), wrong };
}

/** The BAR a provider most likely publishes: the largest memory BAR (NVMe CMB, GPU BAR1 style). */
export function defaultProviderBar(dev: PciDevice): Bar | undefined {
  let best: Bar | undefined;
  for (const b of dev.bars) if (!best || b.size > best.size) best = b;
  return best;
}
