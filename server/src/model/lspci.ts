/**
 * Topologies from text: `lspci -tvnn` (the tree), `lspci -vvv` (port types,
 * ACS control, BARs, drivers) and the project's own JSON format
 * (docs/topology.md). Pure: text in, PciDeviceInput lists and a Topology out.
 *
 * The tree format is what pciutils' ls-tree.c prints:
 *
 *   -+-[0000:3a]-+-00.0-[3b]--+-00.0  Mellanox Technologies MT27800 Family [ConnectX-5] [15b3:1017]
 *    |           |            \-00.1  Mellanox Technologies MT27800 Family [ConnectX-5] [15b3:1017]
 *    |           +-05.0  Intel Corporation Sky Lake-E VT-d [8086:2034]
 *    \-[0000:00]-+-00.0  Intel Corporation Sky Lake-E DMI3 Registers [8086:2020]
 *
 * - show_tree_bridge() prints '-', then for the host bridge with one root
 *   bus "[dddd:bb]-", and for any bridge with several buses one
 *   "+-[dddd:bb]-" (last: "\-[dddd:bb]-") per bus, each on its own line at
 *   the same column. pciutils up to 3.7 keeps all domains under one host
 *   bridge and prepends each new bus, so root buses come out in descending
 *   order ("-+-[0000:d7]-" first, "\-[0000:00]-" last); 3.8 and later print
 *   one tree per domain, each from column 0, with buses in ascending order.
 *   Both are read.
 * - show_tree_bus() prints nothing for an empty bus, "--" and the device
 *   for a single device, else "+-" per device and "\-" for the last.
 * - show_tree_dev() prints "dd.f"; a bridge adds "-[ss]-" or "-[ss-uu]-"
 *   (secondary, subordinate) and its own subtree, and never its name; other
 *   devices add two spaces and the name ("Vendor Device [vvvv:dddd]" with
 *   -nn, "vvvv:dddd" with -n, nothing without -v). With -vv, BAR lines
 *   ("Region 0: Memory at ...") follow a device.
 * - After a line is printed every '+' and '|' in it becomes '|', every
 *   other character a space: that is the prefix of the following lines.
 *
 * So a line is read by columns: a sibling entry sits at the same column as
 * the "+-" that opened its bus.
 */
import {
  type Bar,
  type CpuKind,
  type IommuMode,
  type PciDeviceInput,
  type PortType,
  CPU_KINDS,
  IOMMU_MODES,
  PORT_TYPES,
  Topology,
  TopologyError,
  canonicalBdf,
  formatAcs,
  formatBdf,
  formatId,
  hex,
  parseAcs,
  parseBdf,
} from './pcie';

// ---------------------------------------------------------------------------
// lspci -tvnn

function lineError(line: number, message: string): TopologyError {
  return new TopologyError(`line ${line}: ${message}`);
}

/** Splits "Vendor Device [vvvv:dddd]" (or a bare "vvvv:dddd") into name and ids. */
export function splitNameAndIds(text: string): { name?: string; vendorId?: number; deviceId?: number } {
  const s = text.trim();
  const bare = /^([0-9a-f]{4}):([0-9a-f]{4})$/i.exec(s);
  if (bare) return { vendorId: parseInt(bare[1], 16), deviceId: parseInt(bare[2], 16) };
  const m = /^(.*?)\s*\[([0-9a-f]{4}):([0-9a-f]{4})\]$/i.exec(s);
  if (m) {
    const out: { name?: string; vendorId?: number; deviceId?: number } = {
      vendorId: parseInt(m[2], 16),
      deviceId: parseInt(m[3], 16),
    };
    if (m[1].length > 0) out.name = m[1];
    return out;
  }
  return s.length > 0 ? { name: s } : {};
}

const SIZE_UNITS: Record<string, bigint> = { '': 1n, K: 1n << 10n, M: 1n << 20n, G: 1n << 30n, T: 1n << 40n };

/** "256M", "16K", "4096" (lspci's [size=...]) to bytes. */
export function parseSize(text: string): bigint | undefined {
  const m = /^(\d+)([KMGT]?)$/.exec(text.trim());
  return m ? BigInt(m[1]) * SIZE_UNITS[m[2]] : undefined;
}

/**
 * One BAR line of lspci ("Region 2: Memory at 38bff0000000 (64-bit,
 * prefetchable) [size=32M]"); undefined for I/O ports, unassigned or
 * virtual BARs and anything else. lspci prints CPU addresses (sysfs
 * resources); the bus address is taken to be the same, which holds on x86.
 */
export function parseRegion(text: string, fallbackIndex: number): Bar | undefined {
  const m = /^\s*(?:Region (\d+): )?Memory at ([0-9a-f]+) \(([^,)]+), (non-)?prefetchable\)(.*)$/i.exec(text);
  if (!m) return undefined;
  const size = /\[size=(\d+[KMGT]?)\]/.exec(m[5]);
  if (!size) return undefined;
  const addr = BigInt(`0x${m[2]}`);
  return {
    index: m[1] !== undefined ? Number(m[1]) : fallbackIndex,
    cpu: addr,
    bus: addr,
    size: parseSize(size[1])!,
    prefetchable: m[4] === undefined,
  };
}

class TreeParser {
  private li = 0;
  readonly devices: PciDeviceInput[] = [];

  constructor(private readonly lines: readonly string[]) {}

  parse(): PciDeviceInput[] {
    if (this.lines.length === 0) throw new TopologyError('empty lspci -t output');
    if (!this.lines[0].startsWith('-')) {
      throw lineError(1, `expected lspci -tvnn output starting with '-[0000:00]-' or '-+-[0000:..]-', got '${this.lines[0].slice(0, 40)}'`);
    }
    // pciutils >= 3.8 prints one tree per PCI domain, each starting at column 0.
    while (this.li < this.lines.length) {
      if (!this.lines[this.li].startsWith('-')) {
        throw lineError(this.li + 1, `unexpected text '${this.lines[this.li].trim().slice(0, 40)}'`);
      }
      this.bridgeTail(0, undefined);
    }
    return this.devices;
  }

  private line(): string {
    if (this.li >= this.lines.length) {
      throw lineError(this.lines.length, "the tree ends in the middle of a bus (a '+-' entry without a last '\\-' one): is the text cut short?");
    }
    return this.lines[this.li];
  }

  /** Checks that a continuation line has only tree drawing before `col`. */
  private continuation(col: number): string | undefined {
    if (this.li >= this.lines.length) return undefined;
    const l = this.lines[this.li];
    if (!/^[ |]*$/.test(l.slice(0, col))) return undefined;
    const c = l[col];
    return (c === '+' || c === '\\') && l[col + 1] === '-' ? c : undefined;
  }

  /** show_tree_bridge(): at `col` there is '-'; `bridge` undefined for the host bridge. */
  private bridgeTail(col: number, bridge: { domain: number; secondary: number } | undefined): void {
    const l = this.line();
    if (l[col] !== '-') throw lineError(this.li + 1, `expected '-' at column ${col + 1}`);
    const c = col + 1;
    const header = /^\[([0-9a-f]{4,8}):([0-9a-f]{2})\]-/i;
    const single = header.exec(l.slice(c));
    if (single) {
      this.busList(c + single[0].length, parseInt(single[1], 16), parseInt(single[2], 16));
      return;
    }
    if ((l[c] === '+' || l[c] === '\\') && l[c + 1] === '-' && l[c + 2] === '[') {
      // Several buses under one bridge (root buses under the host bridge).
      for (;;) {
        const cur = this.line();
        const mark = cur[c];
        const m = header.exec(cur.slice(c + 2));
        if (!m) throw lineError(this.li + 1, `expected a bus like '[0000:00]' at column ${c + 3}`);
        this.busList(c + 2 + m[0].length, parseInt(m[1], 16), parseInt(m[2], 16));
        if (mark === '\\') return;
        const next = this.continuation(c);
        if (!next || this.lines[this.li][c + 2] !== '[') {
          throw lineError(this.li + 1, `expected the next bus ('+-[' or '\\-[') at column ${c + 1}`);
        }
      }
    }
    if (!bridge) throw lineError(this.li + 1, 'expected a root bus like -[0000:00]-');
    this.busList(c, bridge.domain, bridge.secondary);
  }

  /** show_tree_bus() at `col`. */
  private busList(col: number, domain: number, bus: number): void {
    const l = this.line();
    const rest = l.slice(col);
    if (rest.trim() === '') {
      this.li++; // empty bus
      return;
    }
    if (rest.startsWith('--')) {
      this.device(col + 2, domain, bus);
      return;
    }
    if (!rest.startsWith('+-')) throw lineError(this.li + 1, `expected '--', '+-' or the end of the line at column ${col + 1}`);
    for (;;) {
      const mark = this.line()[col];
      this.device(col + 2, domain, bus);
      if (mark === '\\') return;
      this.line(); // a "+-" entry with nothing after it: the text is cut short
      const next = this.continuation(col);
      if (!next) throw lineError(this.li + 1, `expected the next device ('+-' or '\\-') at column ${col + 1}`);
    }
  }

  /** show_tree_dev() at `col`: "dd.f" and the rest. */
  private device(col: number, domain: number, bus: number): void {
    const l = this.line();
    const lineNo = this.li + 1;
    const m = /^([0-9a-f]{2})\.([0-7])/i.exec(l.slice(col));
    if (!m) throw lineError(lineNo, `expected a device like '00.0' at column ${col + 1}`);
    const dev = parseInt(m[1], 16);
    const fn = Number(m[2]);
    if (dev > 0x1f) throw lineError(lineNo, `bad device number '${m[1]}'`);
    const bdf = formatBdf(domain, bus, dev, fn);
    const after = col + 4;
    const br = /^-\[([0-9a-f]{2})(?:-([0-9a-f]{2}))?\]-/i.exec(l.slice(after));
    if (br) {
      const secondary = parseInt(br[1], 16);
      const subordinate = br[2] !== undefined ? parseInt(br[2], 16) : secondary;
      this.devices.push({ bdf, secondary, subordinate });
      this.bridgeTail(after + br[0].length, { domain, secondary });
      return;
    }
    const rest = l.slice(after);
    const input: PciDeviceInput = { bdf };
    if (rest === '--') {
      // pciutils >= 3.8: a bridge whose secondary bus is 0 (not configured) prints "dd.f-" and an empty bus.
      this.li++;
      this.devices.push(input);
      return;
    }
    if (rest.trim() !== '') {
      if (!rest.startsWith('  ')) throw lineError(lineNo, `unexpected '${rest.trim().slice(0, 30)}' after ${m[0]}`);
      Object.assign(input, splitNameAndIds(rest));
    }
    this.li++;
    // lspci -tvv / -tvvv: BAR lines under the device.
    const bars: Bar[] = [];
    let next = 0;
    while (this.li < this.lines.length) {
      const bl = this.lines[this.li];
      const bm = /^[ |]*\s((?:Region \d+: )?(?:\[virtual\] |\[enhanced\] )?(?:Memory at|I\/O ports at) .*)$/.exec(bl);
      if (!bm) break;
      const bar = parseRegion(bm[1], next);
      if (bar) {
        bars.push(bar);
        next = bar.index + (/64-bit/.test(bm[1]) ? 2 : 1);
      } else next++;
      this.li++;
    }
    if (bars.length > 0) input.bars = bars;
    this.devices.push(input);
  }
}

/** Parses `lspci -tvnn` (also -t, -tv, -tvn, -tvv) into device inputs with their bus links. */
export function parseLspciTree(text: string): PciDeviceInput[] {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l, i, all) => l.length > 0 || all.slice(i).some((x) => x.trim().length > 0));
  while (lines.length > 0 && lines[0].trim() === '') lines.shift();
  return new TreeParser(lines).parse();
}

// ---------------------------------------------------------------------------
// lspci -vvv

export interface LspciVerboseDevice {
  bdf: string;
  className?: string;
  classCode?: number;
  name?: string;
  vendorId?: number;
  deviceId?: number;
  portType?: PortType;
  acs?: { ctrl: number; cap?: number };
  bars: Bar[];
  secondary?: number;
  subordinate?: number;
  driver?: string;
  iommuGroup?: number;
  /** "Capabilities: <access denied>": lspci ran without root and saw no capabilities. */
  capabilitiesHidden?: boolean;
}

const EXPRESS_TYPES: Record<string, PortType> = {
  Endpoint: 'endpoint',
  'Legacy Endpoint': 'legacy-endpoint',
  'Root Port': 'root-port',
  'Upstream Port': 'switch-upstream',
  'Downstream Port': 'switch-downstream',
  'PCI-Express to PCI/PCI-X Bridge': 'pcie-to-pci-bridge',
  'PCI/PCI-X to PCI-Express Bridge': 'pci-to-pcie-bridge',
  'Root Complex Integrated Endpoint': 'rc-endpoint',
  'Root Complex Event Collector': 'rc-event-collector',
};

/**
 * Parses `lspci -vvv` (better `lspci -vvvnn`, which adds the ids; run as
 * root, or the capabilities read "<access denied>"). Per device, keyed by
 * the header line's BDF: class, name and ids, the Express capability's port
 * type, ACSCtl/ACSCap, memory BARs, the Bus: line of bridges, the IOMMU
 * group and the bound driver.
 */
export function parseLspciVerbose(text: string): { devices: LspciVerboseDevice[]; warnings: string[] } {
  const devices: LspciVerboseDevice[] = [];
  const warnings: string[] = [];
  let cur: LspciVerboseDevice | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.trimEnd();
    if (line.trim() === '') return;
    if (/^\S/.test(line)) {
      const m = /^((?:[0-9a-f]{4,8}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\s+(.*)$/i.exec(line);
      if (!m) throw lineError(i + 1, `expected an lspci -vvv device line like '03:00.0 Ethernet controller: ...', got '${line.slice(0, 40)}'`);
      cur = { bdf: canonicalBdf(m[1])!, bars: [], ...parseHeader(m[2]) };
      devices.push(cur);
      return;
    }
    if (!cur) throw lineError(i + 1, 'indented text before the first device line');
    const t = line.trim();
    let m: RegExpExecArray | null;
    if ((m = /^Capabilities: \[[0-9a-f]+(?: v\d+)?\] Express \(v\d+\) (.*?)(?: \(Slot[+-]\))?, (?:MSI|IntMsgNum) /i.exec(t))) {
      const type = EXPRESS_TYPES[m[1]];
      if (type) cur.portType = type;
    } else if (/^Capabilities: <access denied>/.test(t)) {
      cur.capabilitiesHidden = true;
    } else if ((m = /^ACSCtl:\s*(.*)$/.exec(t))) {
      cur.acs = { ...(cur.acs ?? {}), ctrl: parseAcsLine(m[1], i + 1) };
    } else if ((m = /^ACSCap:\s*(.*)$/.exec(t))) {
      cur.acs = { ctrl: cur.acs?.ctrl ?? 0, cap: parseAcsLine(m[1], i + 1) };
    } else if ((m = /^Region (\d+): /.exec(t))) {
      const bar = parseRegion(t, Number(m[1]));
      if (bar) cur.bars.push(bar);
    } else if ((m = /^Bus: primary=([0-9a-f]{2}), secondary=([0-9a-f]{2}), subordinate=([0-9a-f]{2})/i.exec(t))) {
      cur.secondary = parseInt(m[2], 16);
      cur.subordinate = parseInt(m[3], 16);
    } else if ((m = /^IOMMU group: (\d+)/.exec(t))) {
      cur.iommuGroup = Number(m[1]);
    } else if ((m = /^Kernel driver in use: (\S+)/.exec(t))) {
      cur.driver = m[1];
    }
  });
  const hidden = devices.filter((d) => d.capabilitiesHidden).map((d) => d.bdf);
  if (hidden.length > 0) {
    warnings.push(
      `lspci -vvv ran without root: capabilities of ${hidden.length} device${hidden.length === 1 ? '' : 's'} read '<access denied>' (no port types, no ACS); run it with sudo`,
    );
  }
  return { devices, warnings };
}

function parseAcsLine(text: string, line: number): number {
  try {
    return parseAcs(text);
  } catch (e) {
    throw lineError(line, (e as Error).message);
  }
}

/** "Host bridge [0600]: Intel Corporation Sky Lake-E DMI3 Registers [8086:2020] (rev 04)". */
function parseHeader(text: string): Partial<LspciVerboseDevice> {
  const out: Partial<LspciVerboseDevice> = {};
  const m = /^(.*?)(?: \[([0-9a-f]{4})\])?: (.*)$/i.exec(text);
  if (!m) return out;
  out.className = m[1];
  if (m[2]) out.classCode = parseInt(m[2], 16);
  let rest = m[3];
  rest = rest.replace(/\s+\(prog-if [0-9a-f]{2}(?: \[[^\]]*\])?\)\s*$/i, '');
  rest = rest.replace(/\s+\(rev [0-9a-f]{2}\)\s*$/i, '');
  Object.assign(out, splitNameAndIds(rest));
  return out;
}

/**
 * Adds what `lspci -vvv` knows to devices from the tree: port types from
 * the Express capability (replacing inference), ACS, BARs, drivers, IOMMU
 * groups, and ids and names the tree lacks (it never names bridges).
 * Devices the tree does not have are reported, not added.
 */
export function mergeVerbose(
  devices: readonly PciDeviceInput[],
  verbose: readonly LspciVerboseDevice[],
): { devices: PciDeviceInput[]; warnings: string[] } {
  const warnings: string[] = [];
  const out = devices.map((d) => ({ ...d }));
  const index = new Map(out.map((d) => [canonicalBdf(d.bdf)!, d]));
  const missing: string[] = [];
  for (const v of verbose) {
    const d = index.get(v.bdf);
    if (!d) {
      missing.push(v.bdf);
      continue;
    }
    if (v.vendorId !== undefined && v.deviceId !== undefined) {
      if (d.vendorId !== undefined && (d.vendorId !== v.vendorId || d.deviceId !== v.deviceId)) {
        warnings.push(`${v.bdf}: the tree says ${formatId(d.vendorId, d.deviceId)}, lspci -vvv says ${formatId(v.vendorId, v.deviceId)}; using the latter`);
      }
      d.vendorId = v.vendorId;
      d.deviceId = v.deviceId;
    }
    if (v.name !== undefined && d.name === undefined) d.name = v.name;
    if (v.portType) {
      d.portType = v.portType;
      d.portTypeFrom = 'lspci-vvv';
    }
    if (v.acs) d.acs = { ...v.acs };
    if (v.bars.length > 0) d.bars = v.bars.map((b) => ({ ...b }));
    if (v.driver !== undefined) d.driver = v.driver;
    if (v.iommuGroup !== undefined) d.iommuGroup = v.iommuGroup;
    if (v.secondary !== undefined) {
      if (d.secondary === undefined) {
        if (out.some((o) => o !== d && o.secondary === v.secondary && parseBdf(o.bdf)!.domain === parseBdf(d.bdf)!.domain)) {
          warnings.push(`${v.bdf}: lspci -vvv gives secondary bus ${hex(v.secondary, 2)}, which another bridge has; ignored`);
        } else {
          d.secondary = v.secondary;
          d.subordinate = v.subordinate;
        }
      } else if (d.secondary !== v.secondary) {
        warnings.push(`${v.bdf}: the tree says secondary bus ${hex(d.secondary, 2)}, lspci -vvv says ${hex(v.secondary, 2)}; using the tree`);
      }
    }
  }
  if (missing.length > 0) {
    warnings.push(
      `lspci -vvv lists ${missing.length} device${missing.length === 1 ? '' : 's'} the topology does not have (${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', ...' : ''}); ignored`,
    );
  }
  return { devices: out, warnings };
}

// ---------------------------------------------------------------------------
// The JSON format (docs/topology.md)

export const TOPOLOGY_FORMAT = 'dmalens-topology/1';

export interface TopologyDocument {
  cpu?: CpuKind;
  iommu?: IommuMode;
  devices: PciDeviceInput[];
}

const DEVICE_FIELDS = new Set([
  'bdf',
  'id',
  'name',
  'type',
  'secondary',
  'subordinate',
  'acs',
  'acsCap',
  'bars',
  'iommu',
  'physfn',
  'driver',
  'comment',
]);
const TOP_FIELDS = new Set(['format', 'cpu', 'iommu', 'devices', 'comment']);
const BAR_FIELDS = new Set(['index', 'cpu', 'bus', 'size', 'prefetchable']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A bus number: a JSON number, or a hex string as in a BDF ("1a", "0x1a"). */
function busNumber(v: unknown, what: string): number {
  let n: number | undefined;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string' && /^(0x)?[0-9a-f]{1,2}$/i.test(v.trim())) n = parseInt(v.trim().replace(/^0x/i, ''), 16);
  if (n === undefined || !Number.isInteger(n) || n < 0 || n > 0xff) throw new TopologyError(`${what}: expected a bus number like "1a", got ${JSON.stringify(v)}`);
  return n;
}

/** An address or size: a hex string "0x...", a decimal string, a size like "256M", or a safe JSON integer. */
function bigNumber(v: unknown, what: string): bigint {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return BigInt(v);
  if (typeof v === 'string') {
    const s = v.trim().replace(/_/g, '');
    if (/^0x[0-9a-f]+$/i.test(s)) return BigInt(s);
    const size = parseSize(s);
    if (size !== undefined) return size;
  }
  throw new TopologyError(`${what}: expected a number like "0x38bff0000000" or "256M", got ${JSON.stringify(v)}`);
}

function acsValue(v: unknown, what: string): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff) return v;
  if (typeof v === 'string') {
    if (/^0x[0-9a-f]{1,4}$/i.test(v.trim())) return parseInt(v.trim(), 16);
    try {
      return parseAcs(v);
    } catch (e) {
      throw new TopologyError(`${what}: ${(e as Error).message}`);
    }
  }
  throw new TopologyError(`${what}: expected lspci flags like "ReqRedir+ CmplRedir+" or a register value, got ${JSON.stringify(v)}`);
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], what: string): T {
  if (typeof v === 'string' && (allowed as readonly string[]).includes(v)) return v as T;
  throw new TopologyError(`${what}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
}

function deviceFromJson(v: unknown, where: string): PciDeviceInput {
  if (!isObject(v)) throw new TopologyError(`${where}: expected an object`);
  for (const k of Object.keys(v)) if (!DEVICE_FIELDS.has(k)) throw new TopologyError(`${where}: unknown field '${k}'`);
  if (typeof v.bdf !== 'string' || !canonicalBdf(v.bdf)) throw new TopologyError(`${where}: 'bdf' must be like "0000:03:00.0"`);
  const bdf = canonicalBdf(v.bdf)!;
  const at = `device ${bdf}`;
  const d: PciDeviceInput = { bdf };
  if (v.id !== undefined) {
    const m = typeof v.id === 'string' ? /^([0-9a-f]{4}):([0-9a-f]{4})$/i.exec(v.id.trim()) : null;
    if (!m) throw new TopologyError(`${at}: 'id' must be "vvvv:dddd"`);
    d.vendorId = parseInt(m[1], 16);
    d.deviceId = parseInt(m[2], 16);
  }
  if (v.name !== undefined) {
    if (typeof v.name !== 'string') throw new TopologyError(`${at}: 'name' must be a string`);
    d.name = v.name;
  }
  if (v.type !== undefined) {
    d.portType = oneOf(v.type, PORT_TYPES, `${at}: 'type'`);
    d.portTypeFrom = 'json';
  }
  if (v.secondary !== undefined) d.secondary = busNumber(v.secondary, `${at}: 'secondary'`);
  if (v.subordinate !== undefined) d.subordinate = busNumber(v.subordinate, `${at}: 'subordinate'`);
  if (v.acs !== undefined && v.acs !== null) d.acs = { ctrl: acsValue(v.acs, `${at}: 'acs'`) };
  if (v.acsCap !== undefined) {
    if (!d.acs) throw new TopologyError(`${at}: 'acsCap' without 'acs'`);
    d.acs.cap = acsValue(v.acsCap, `${at}: 'acsCap'`);
  }
  if (v.bars !== undefined) {
    if (!Array.isArray(v.bars)) throw new TopologyError(`${at}: 'bars' must be a list`);
    d.bars = v.bars.map((b, i) => {
      const bw = `${at}: bars[${i}]`;
      if (!isObject(b)) throw new TopologyError(`${bw}: expected an object`);
      for (const k of Object.keys(b)) if (!BAR_FIELDS.has(k)) throw new TopologyError(`${bw}: unknown field '${k}'`);
      if (typeof b.index !== 'number' || !Number.isInteger(b.index) || b.index < 0 || b.index > 5) {
        throw new TopologyError(`${bw}: 'index' must be 0-5`);
      }
      const cpu = bigNumber(b.cpu, `${bw}: 'cpu'`);
      const bar: Bar = {
        index: b.index,
        cpu,
        bus: b.bus === undefined ? cpu : bigNumber(b.bus, `${bw}: 'bus'`),
        size: bigNumber(b.size, `${bw}: 'size'`),
      };
      if (bar.size === 0n) throw new TopologyError(`${bw}: 'size' must not be 0`);
      if (b.prefetchable !== undefined) bar.prefetchable = b.prefetchable === true;
      return bar;
    });
  }
  if (v.iommu !== undefined) d.iommu = oneOf(v.iommu, IOMMU_MODES, `${at}: 'iommu'`);
  if (v.physfn !== undefined) {
    if (typeof v.physfn !== 'string' || !canonicalBdf(v.physfn)) throw new TopologyError(`${at}: 'physfn' must be a BDF`);
    d.physfn = canonicalBdf(v.physfn);
  }
  if (v.driver !== undefined) {
    if (typeof v.driver !== 'string') throw new TopologyError(`${at}: 'driver' must be a string`);
    d.driver = v.driver;
  }
  return d;
}

/** Parses the JSON topology format (docs/topology.md). */
export function parseTopologyJson(text: string): TopologyDocument {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new TopologyError(`not valid JSON: ${(e as Error).message}`);
  }
  if (!isObject(doc)) throw new TopologyError('expected a JSON object with a "devices" list');
  for (const k of Object.keys(doc)) if (!TOP_FIELDS.has(k)) throw new TopologyError(`unknown top-level field '${k}'`);
  if (doc.format !== undefined && doc.format !== TOPOLOGY_FORMAT) {
    throw new TopologyError(`'format' must be "${TOPOLOGY_FORMAT}", got ${JSON.stringify(doc.format)}`);
  }
  if (!Array.isArray(doc.devices)) throw new TopologyError('expected a "devices" list');
  const out: TopologyDocument = { devices: doc.devices.map((d, i) => deviceFromJson(d, `devices[${i}]`)) };
  if (doc.cpu !== undefined) out.cpu = oneOf(doc.cpu, CPU_KINDS, "'cpu'");
  if (doc.iommu !== undefined) out.iommu = oneOf(doc.iommu, IOMMU_MODES, "'iommu'");
  return out;
}

/** Overrides: each device's given fields replace the base's; devices the base lacks are added. */
export function mergeDevices(base: readonly PciDeviceInput[], overrides: readonly PciDeviceInput[]): PciDeviceInput[] {
  const out = base.map((d) => ({ ...d }));
  const index = new Map(out.map((d) => [canonicalBdf(d.bdf)!, d]));
  for (const o of overrides) {
    const d = index.get(canonicalBdf(o.bdf)!);
    if (!d) {
      const added = { ...o };
      out.push(added);
      index.set(canonicalBdf(o.bdf)!, added);
      continue;
    }
    for (const [k, v] of Object.entries(o)) if (v !== undefined && k !== 'bdf') (d as unknown as Record<string, unknown>)[k] = v;
  }
  return out;
}

/** The JSON document for a topology (what docs/topology.md describes). */
export function topologyToJson(t: Topology): Record<string, unknown> {
  const doc: Record<string, unknown> = { format: TOPOLOGY_FORMAT };
  if (t.cpu) doc.cpu = t.cpu;
  if (t.iommu) doc.iommu = t.iommu;
  doc.devices = t.devices.map((d) => {
    const o: Record<string, unknown> = { bdf: d.bdf };
    const id = formatId(d.vendorId, d.deviceId);
    if (id) o.id = id;
    if (d.name) o.name = d.name;
    o.type = d.portType;
    if (d.secondary !== undefined) {
      o.secondary = hex(d.secondary, 2);
      o.subordinate = hex(d.subordinate ?? d.secondary, 2);
    }
    if (d.acs) {
      o.acs = formatAcs(d.acs.ctrl);
      if (d.acs.cap !== undefined) o.acsCap = formatAcs(d.acs.cap);
    }
    if (d.bars.length > 0) {
      o.bars = d.bars.map((b) => ({
        index: b.index,
        cpu: `0x${b.cpu.toString(16)}`,
        bus: `0x${b.bus.toString(16)}`,
        size: `0x${b.size.toString(16)}`,
        ...(b.prefetchable !== undefined && { prefetchable: b.prefetchable }),
      }));
    }
    if (d.iommu) o.iommu = d.iommu;
    if (d.physfn) o.physfn = d.physfn;
    if (d.driver) o.driver = d.driver;
    return o;
  });
  return doc;
}

// ---------------------------------------------------------------------------
// Putting it together

/** JSON if the text starts with '{', else lspci -t output. */
export function topologyTextKind(text: string): 'json' | 'lspci-tree' {
  return text.trimStart().startsWith('{') ? 'json' : 'lspci-tree';
}

export interface LoadedTopology {
  topology: Topology;
  format: 'json' | 'lspci-tree';
  /** Where ACS data came from; 'none' means every device is taken to have no ACS capability. */
  acsSource: 'lspci-vvv' | 'json' | 'none';
  warnings: string[];
}

/**
 * Builds a topology from a tree (lspci -tvnn, or the JSON format), an
 * optional lspci -vvv text and optional JSON override documents, applied in
 * that order. `cpu` and `iommu` given here win over the documents'.
 */
export function loadTopology(input: {
  topology: string;
  verbose?: string;
  overrides?: readonly string[];
  cpu?: CpuKind;
  iommu?: IommuMode;
}): LoadedTopology {
  const warnings: string[] = [];
  const format = topologyTextKind(input.topology);
  let devices: PciDeviceInput[];
  let cpu: CpuKind | undefined;
  let iommu: IommuMode | undefined;
  let acsSource: LoadedTopology['acsSource'] = 'none';
  if (format === 'json') {
    const doc = parseTopologyJson(input.topology);
    devices = doc.devices;
    cpu = doc.cpu;
    iommu = doc.iommu;
    if (devices.some((d) => d.acs)) acsSource = 'json';
  } else {
    devices = parseLspciTree(input.topology);
  }
  if (input.verbose !== undefined) {
    const v = parseLspciVerbose(input.verbose);
    warnings.push(...v.warnings);
    const merged = mergeVerbose(devices, v.devices);
    warnings.push(...merged.warnings);
    devices = merged.devices;
    if (v.devices.some((d) => !d.capabilitiesHidden)) acsSource = 'lspci-vvv';
  }
  for (const text of input.overrides ?? []) {
    const doc = parseTopologyJson(text);
    devices = mergeDevices(devices, doc.devices);
    cpu = doc.cpu ?? cpu;
    iommu = doc.iommu ?? iommu;
    if (doc.devices.some((d) => d.acs) && acsSource === 'none') acsSource = 'json';
  }
  const topology = Topology.create(devices, { cpu: input.cpu ?? cpu, iommu: input.iommu ?? iommu });
  return { topology, format, acsSource, warnings };
}
