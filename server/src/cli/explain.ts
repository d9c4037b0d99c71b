/**
 * The model's runs on the command line:
 *
 *   dmalens check --explain ...      each finding carries its run: an
 *                                    `explanation` object in JSON, the run
 *                                    printed under the finding in text
 *   dmalens explain RULE [--format text|json|html] [--world W] [--iommu M] [--cpu C] [--topology FILE]
 *                                    the rule's reference scenario in that world
 *   dmalens check --explain --topology FILE ...
 *                                    the findings' runs on that machine
 *
 * With --topology (lspci -tvnn or the JSON format) the runs happen on that
 * machine: its devices, BARs and IOMMU modes; the notes say how the rule's
 * own worlds end where that differs.
 *
 * Step locations are one-based lines and byte columns, converted by the same
 * code as the findings' (formats.ts `locateOffset`, through LineIndex).
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import type { LineIndex } from '../core/positions';
import type { Finding } from '../core/types';
import type { IommuMode } from '../model/dma';
import { explain, referenceRun, scenarioRules } from '../model/explain';
import { loadTopology } from '../model/lspci';
import { TopologyError } from '../model/pcie';
import type { Run } from '../model/types';
import { topologyWorld, type WorldOptions } from '../model/world';
import { ruleById } from '../rules/registry';
import { renderRunHtml, renderRunText, withoutLocations } from '../view/runView';
import { explanationJson, locateOffset, type LocatedExplanation, oneLine } from './formats';

/** Runs the model for a finding and locates its steps; undefined when the rule has no scenario. */
export function explainFinding(
  f: Finding,
  index: LineIndex,
  encoding: 'utf-8' | 'latin-1' = 'utf-8',
  onError: (e: unknown) => void = () => undefined,
  world?: WorldOptions,
): LocatedExplanation | undefined {
  let run: Run | undefined;
  try {
    run = explain(f, world);
  } catch (e) {
    // A scenario that throws is a bug in the model; the finding is still reported, without a run.
    onError(e);
    return undefined;
  }
  if (!run) return undefined;
  return { run, locations: run.steps.map((s) => (s.location ? locateOffset(index, s.location.start, encoding) : null)) };
}

// ---------------------------------------------------------------- dmalens explain

export const EXPLAIN_USAGE = `  dmalens explain RULE [--format text|json|html] [--world switch|allowlisted|unsupported]
                  [--iommu off|passthrough|translated] [--cpu intel|amd-zen|arm64] [--topology FILE]
                                     run the rule's reference scenario on the simulated machine
                                     (--topology: on your machine, from lspci -tvnn or a JSON topology;
                                     --iommu is then the mode of the devices that do not give their own)`;

/**
 * The world of a topology file (lspci -tvnn output or the JSON format): its
 * devices, BARs and IOMMU modes. `iommu` becomes the topology's global mode
 * (a device's own mode still wins), as in `dmalens p2p`. Unreadable or
 * invalid files are ExplainUsageError naming the file.
 */
export function topologyFileWorld(file: string, iommu?: IommuMode, command = 'explain'): WorldOptions {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOENT' ? 'no such file' : err.code === 'EISDIR' ? 'is a directory' : oneLine(err.message);
    throw new ExplainUsageError(`${command}: cannot read topology ${file}: ${why}`);
  }
  try {
    return topologyWorld(loadTopology({ topology: text, iommu }).topology);
  } catch (e) {
    if (e instanceof TopologyError) throw new ExplainUsageError(`${command}: ${file}: ${oneLine(e.message)}`);
    throw e;
  }
}

const WORLDS = ['switch', 'allowlisted', 'unsupported'] as const;
const IOMMUS = ['off', 'passthrough', 'translated'] as const;
const CPUS = ['intel', 'amd-zen', 'arm64'] as const;
const FORMATS = ['text', 'json', 'html'] as const;

function oneOf<T extends string>(name: string, value: string | undefined, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new ExplainUsageError(`--${name}: expected ${allowed.join(', ')}; got '${value}'`);
  return value as T;
}

/** A mistake on the command line; main.ts turns it into exit code 2 and one line. */
export class ExplainUsageError extends Error {}

/**
 * `dmalens explain RULE ...`. Writes the run to `out` and resolves to the exit
 * code (0). Throws ExplainUsageError for an unknown rule or option value;
 * util.parseArgs errors are left to the caller's handler.
 */
export function explainCommand(
  args: string[],
  out: (s: string) => void,
  parse: <R>(run: () => R) => R = (run) => run(),
): number {
  const { values, positionals } = parse(() =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: 'string', short: 'f' },
        world: { type: 'string' },
        iommu: { type: 'string' },
        cpu: { type: 'string' },
        topology: { type: 'string', short: 't' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    out(`Usage:\n${EXPLAIN_USAGE}\n`);
    return 0;
  }
  const format = oneOf('format', values.format, FORMATS) ?? 'text';
  const world = oneOf('world', values.world, WORLDS);
  const iommu = oneOf('iommu', values.iommu, IOMMUS);
  const cpu = oneOf('cpu', values.cpu, CPUS);
  if (positionals.length === 0) throw new ExplainUsageError(`explain: no rule given (see 'dmalens rules')`);
  if (positionals.length > 1) throw new ExplainUsageError(`explain: unexpected argument '${positionals[1]}'`);
  const rule = positionals[0];
  if (!scenarioRules().includes(rule)) {
    throw new ExplainUsageError(
      ruleById(rule)
        ? `explain: the model has no scenario for rule '${rule}' yet`
        : `explain: unknown rule '${rule}' (see 'dmalens rules')`,
    );
  }

  if (world && values.topology !== undefined) throw new ExplainUsageError('explain: --world places the devices of the model\'s own machine; a --topology has its own places');
  let override: WorldOptions = {};
  if (values.topology !== undefined) override = topologyFileWorld(values.topology, iommu);
  else if (iommu) override.iommu = iommu satisfies IommuMode;
  if (world) override.p2pPath = world;
  if (cpu) override.cpu = cpu;
  // Without world options the run also notes how the outcome changes in the rule's other worlds
  // (with a topology: how the rule's own worlds end where they differ from it).
  const raw = referenceRun(rule, Object.keys(override).length > 0 ? override : undefined);
  if (!raw) throw new ExplainUsageError(`explain: no model scenario for rule '${rule}'`);
  // A reference scenario has no file behind it: its steps have no locations.
  const run = withoutLocations(raw);

  if (format === 'json') {
    const doc: Record<string, unknown> = { rule, explanation: explanationJson(run) };
    if (run.topology) doc.topology = run.topology;
    out(JSON.stringify(doc, null, 2) + '\n');
  } else if (format === 'html') {
    out(
      renderRunHtml(run, {
        nonce: randomBytes(18).toString('base64'),
        cspSource: "'self'",
        title: `DMA Lens: ${rule} run`,
        subtitle: 'The rule\'s reference scenario on the simulated machine',
      }),
    );
  } else {
    out(`${rule}: reference scenario\n${renderRunText(run)}`);
  }
  return 0;
}
