/**
 * `dmalens p2p`: the kernel's peer-to-peer decision for a provider and its
 * clients on a topology (server/src/model/pcie.ts), as text or JSON.
 *
 *   dmalens p2p --topology FILE [--acs FILE] [--override FILE]... [--cpu amd-zen|intel|other]
 *               [--iommu off|passthrough|translated] [--format text|json] PROVIDER CLIENT...
 *
 * A query: exit 0 whatever the answer; 2 on usage and I/O errors (unknown
 * BDF, unreadable or malformed file), with one line on stderr.
 *
 * JSON: {"distance": N, "clients": [{"bdf", "mapType", "distance", "reason", ...}], ...}.
 * Those four client fields and the two top-level ones are a public
 * interface: extend, never rename.
 */
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import {
  type CpuKind,
  type IommuMode,
  type P2pResult,
  type PciDevice,
  type Topology,
  CPU_KINDS,
  IOMMU_MODES,
  TopologyError,
  canonicalBdf,
  defaultProviderBar,
  formatId,
  p2pAddressing,
  p2pDmaAddress,
  pciP2pdmaDistanceMany,
} from '../model/pcie';
import { type LoadedTopology, loadTopology, parseLspciVerbose, parseTopologyJson } from '../model/lspci';

export const P2P_USAGE = `  dmalens p2p --topology FILE [--acs FILE] [--cpu amd-zen|intel|other] [--format text|json] PROVIDER CLIENT...
                                     what pci_p2pdma_distance_many() decides for PROVIDER and
                                     each CLIENT (PCI addresses: 0000:03:00.0, or 03:00.0)`;

const P2P_OPTIONS = `Options for p2p:
  --topology FILE            lspci -tvnn output, or a JSON topology (docs/topology.md)
  --acs FILE                 lspci -vvvnn output, run as root: ACS control, port types, ids, BARs
  --override FILE            a JSON topology whose devices replace or add to the others (repeatable)
  --cpu amd-zen|intel|other  the CPU cpu_supports_p2pdma() looks at (default: the topology's, else other)
  --iommu off|passthrough|translated
                             the clients' IOMMU mode, to say which DMA address they must use
  --format text|json         output format (default text)
`;

/** A mistake in the p2p command line or its inputs: exit code 2, one line. */
export class P2pUsageError extends Error {}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

function choice<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new P2pUsageError(`--${name}: expected ${allowed.join(', ')}; got '${value}'`);
  return value as T;
}

function readInput(what: string, file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : oneLine(err.message);
    throw new P2pUsageError(`p2p: cannot read ${what} ${file}: ${why}`);
  }
}

/** Runs `fn`; a TopologyError becomes a one-line usage error naming `file`. */
function blame<R>(file: string, fn: () => R): R {
  try {
    return fn();
  } catch (e) {
    if (e instanceof TopologyError) throw new P2pUsageError(`p2p: ${file}: ${oneLine(e.message)}`);
    throw e;
  }
}

/** `dmalens p2p ARGS`: prints the report, returns the exit code (0); errors are P2pUsageError. */
export function p2pCommand(
  args: string[],
  io: { out(s: string): void; err(s: string): void },
  parse: <R>(run: () => R) => R = (run) => run(),
): number {
  const { values, positionals } = parse(() =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        topology: { type: 'string', short: 't' },
        acs: { type: 'string' },
        override: { type: 'string', multiple: true },
        cpu: { type: 'string' },
        iommu: { type: 'string' },
        format: { type: 'string', short: 'f' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.out(`Usage:\n${P2P_USAGE}\n\n${P2P_OPTIONS}`);
    return 0;
  }
  const format = choice('format', values.format, ['text', 'json'] as const) ?? 'text';
  const cpuOption = choice('cpu', values.cpu, CPU_KINDS);
  const iommuOption = choice('iommu', values.iommu, IOMMU_MODES);
  if (values.topology === undefined) throw new P2pUsageError(`p2p: --topology FILE is required (see 'dmalens p2p --help')`);
  if (positionals.length < 2) throw new P2pUsageError('p2p: expected a PROVIDER and at least one CLIENT (PCI addresses like 0000:03:00.0)');
  for (const a of positionals) {
    if (!canonicalBdf(a)) throw new P2pUsageError(`p2p: '${a}' is not a PCI address (expected e.g. 0000:03:00.0 or 03:00.0)`);
  }

  const topologyFile = values.topology;
  const topologyText = readInput('topology', topologyFile);
  const acsFile = values.acs;
  const acsText = acsFile !== undefined ? readInput('--acs file', acsFile) : undefined;
  const overrides = (values.override ?? []).map((f) => ({ file: f, text: readInput('--override file', f) }));
  // Each input on its own first, so that an error names the right file.
  blame(topologyFile, () => loadTopology({ topology: topologyText }));
  if (acsFile !== undefined && acsText !== undefined) blame(acsFile, () => parseLspciVerbose(acsText));
  for (const o of overrides) blame(o.file, () => parseTopologyJson(o.text));
  const loaded: LoadedTopology = blame(topologyFile, () =>
    loadTopology({
      topology: topologyText,
      verbose: acsText,
      overrides: overrides.map((o) => o.text),
      cpu: cpuOption,
      iommu: iommuOption,
    }),
  );
  for (const w of loaded.warnings) io.err(`dmalens: warning: ${oneLine(w)}\n`);

  const t = loaded.topology;
  const lookup = (a: string): PciDevice => {
    const d = t.device(a);
    if (!d) throw new P2pUsageError(`p2p: no device ${canonicalBdf(a)} in ${topologyFile}`);
    return d;
  };
  const [providerArg, ...clientArgs] = positionals;
  const provider = lookup(providerArg);
  const clients = clientArgs.map(lookup);
  const cpu: { kind: CpuKind; from: P2pReport['cpuFrom'] } =
    cpuOption !== undefined
      ? { kind: cpuOption, from: 'option' }
      : t.cpu !== undefined
        ? { kind: t.cpu, from: 'topology' }
        : { kind: 'other', from: 'default' };
  const report = p2pReport(t, provider, clients, cpu, loaded.acsSource);
  io.out(format === 'json' ? formatP2pJson(report) : formatP2pText(report));
  return 0;
}

export interface P2pReport {
  provider: PciDevice;
  cpu: CpuKind;
  cpuFrom: 'option' | 'topology' | 'default';
  distance: number;
  results: P2pResult[];
  notes: string[];
  topology: Topology;
}

/** Runs pci_p2pdma_distance_many() (verbose: every client evaluated) and collects notes. */
export function p2pReport(
  t: Topology,
  provider: PciDevice,
  clients: readonly PciDevice[],
  cpu: { kind: CpuKind; from: P2pReport['cpuFrom'] },
  acsSource: 'lspci-vvv' | 'json' | 'none',
): P2pReport {
  const { distance, clients: results } = pciP2pdmaDistanceMany(t, provider, clients, cpu.kind, true);
  const notes: string[] = [];
  if (acsSource === 'none' && results.some((r) => r.commonUpstream !== undefined)) {
    notes.push('no ACS data: every device is taken to have no ACS capability (give --acs with lspci -vvv output)');
  }
  if (cpu.from === 'default') {
    const amd = results.flatMap((r) => r.hostBridges.map((v) => v.device)).find((d) => d?.vendorId === 0x1022);
    if (amd && results.some((r) => r.hostBridgeConsulted)) {
      notes.push(
        `the host bridge is AMD (${formatId(amd.vendorId, amd.deviceId)} at ${amd.bdf}): on a Zen CPU (family 17h or later) pass --cpu amd-zen, which allows every path through the host bridge`,
      );
    }
  }
  const unnamed = new Set<string>();
  for (const r of results) {
    for (const v of r.hostBridges) {
      if (v.device && formatId(v.device.vendorId, v.device.deviceId) === undefined) unnamed.add(v.device.bdf);
    }
  }
  if (unnamed.size > 0) {
    notes.push(
      `no vendor:device id for ${[...unnamed].join(', ')} (lspci -t does not name bridges): give --acs with lspci -vvvnn output`,
    );
  }
  return { provider, cpu: cpu.kind, cpuFrom: cpu.from, distance, results, notes, topology: t };
}

function deviceText(d: PciDevice | undefined, bdf: string): string {
  const id = d && formatId(d.vendorId, d.deviceId);
  return id ? `${bdf} [${id}]` : bdf;
}

function iommuFor(t: Topology, bdf: string): IommuMode | undefined {
  const d = t.device(bdf);
  return d ? t.iommuOf(d) : undefined;
}

function dmaAddressJson(rep: P2pReport, r: P2pResult): Record<string, unknown> | undefined {
  const iommu = iommuFor(rep.topology, r.client);
  if (!iommu) return undefined;
  const bar = defaultProviderBar(rep.provider);
  const out: Record<string, unknown> = { iommu };
  if (!bar) {
    const a = p2pDmaAddress(r.mapType, iommu);
    out.kind = a.kind;
    out.api = a.api;
    return out;
  }
  const a = p2pAddressing(rep.topology, r, { cpu: rep.cpu, iommu, bar });
  out.kind = a.expected.kind;
  out.api = a.expected.api;
  out.bar = bar.index;
  if (a.expected.address !== undefined) out.address = `0x${a.expected.address.toString(16)}`;
  if (a.expected.mapsTo !== undefined) out.mapsTo = `0x${a.expected.mapsTo.toString(16)}`;
  out.wrongChoice = { uses: a.wrong.uses, how: a.wrong.how, outcome: a.wrong.route.outcome.kind, summary: a.wrong.route.outcome.summary };
  return out;
}

/** The public JSON document. */
export function p2pJson(rep: P2pReport): Record<string, unknown> {
  return {
    distance: rep.distance,
    clients: rep.results.map((r) => {
      const c: Record<string, unknown> = {
        bdf: r.client,
        mapType: r.mapType,
        distance: r.distance,
        reason: r.reason,
        hops: r.hops,
      };
      if (r.commonUpstream) c.commonUpstreamBridge = r.commonUpstream;
      if (r.acsRedirects.length > 0) c.acsRedirect = r.acsRedirects.map((a) => ({ bdf: a.bdf, bits: a.bits }));
      if (r.disableAcsRedir !== undefined) c.disableAcsRedir = r.disableAcsRedir;
      c.hostBridgeConsulted = r.hostBridgeConsulted;
      if (r.hostBridges.length > 0) {
        c.hostBridges = r.hostBridges.map((v) => ({
          hostBridge: v.hostBridge.name,
          device: v.device?.bdf ?? null,
          id: (v.device && formatId(v.device.vendorId, v.device.deviceId)) ?? null,
          allowed: v.allowed,
          why: v.why,
        }));
      }
      c.path = r.path;
      if (r.breakAt) c.breakAt = r.breakAt;
      c.kernelLog = r.kernelLog;
      const dma = dmaAddressJson(rep, r);
      if (dma) c.dmaAddress = dma;
      return c;
    }),
    provider: rep.provider.bdf,
    cpu: rep.cpu,
    notes: rep.notes,
  };
}

export function formatP2pJson(rep: P2pReport): string {
  return JSON.stringify(p2pJson(rep), null, 2) + '\n';
}

/**
 * Text: the provider, then per client the map type and distance, the
 * reason, the path, the kernel's messages and (when the IOMMU mode is
 * known) the DMA address to use; last the total.
 */
export function formatP2pText(rep: P2pReport): string {
  const t = rep.topology;
  const p = rep.provider;
  let out = `provider ${deviceText(p, p.bdf)}${p.name ? ` ${p.name}` : ''}\n`;
  out += `cpu: ${rep.cpu}${rep.cpuFrom === 'default' ? ' (default)' : ''}; cpu_supports_p2pdma() is ${rep.cpu === 'amd-zen'}\n`;
  for (const r of rep.results) {
    out += `client ${deviceText(t.device(r.client), r.client)}: ${r.mapType}, distance ${r.distance}\n`;
    out += `  ${r.reason}\n`;
    out += `  path: ${r.path.join(' > ')}${r.breakAt ? ` (breaks at ${r.breakAt.node})` : ''}\n`;
    if (r.disableAcsRedir !== undefined) out += `  to let ${r.commonUpstream} route it: pci=disable_acs_redir=${r.disableAcsRedir}\n`;
    const iommu = iommuFor(t, r.client);
    if (iommu) {
      const bar = defaultProviderBar(p);
      if (bar) {
        const a = p2pAddressing(t, r, { cpu: rep.cpu, iommu, bar });
        const value =
          a.expected.address !== undefined
            ? ` 0x${a.expected.address.toString(16)}`
            : a.expected.mapsTo !== undefined
              ? ` mapping 0x${a.expected.mapsTo.toString(16)}`
              : '';
        out += `  dma address (IOMMU ${iommu}, BAR${bar.index}): ${a.expected.kind}${value}\n`;
        out += `  with the ${a.wrong.uses === 'dma-api' ? 'DMA-API address' : 'raw bus address'} instead: ${a.wrong.route.outcome.summary}\n`;
      } else {
        out += `  dma address (IOMMU ${iommu}): ${p2pDmaAddress(r.mapType, iommu).kind}\n`;
      }
    }
    for (const l of r.kernelLog) out += `  kernel: ${l}\n`;
  }
  const failed = rep.results.filter((r) => r.mapType === 'not-supported').map((r) => r.client);
  out += `distance: ${rep.distance}${failed.length > 0 ? ` (not supported: ${failed.join(', ')})` : ''}\n`;
  for (const n of rep.notes) out += `note: ${n}\n`;
  return out;
}
