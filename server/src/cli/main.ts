/**
 * `dmalens`, the command line. The only layer that knows the terminal: it
 * reads files, runs the analyzer over them one at a time and prints what the
 * formats (./formats.ts) make of the findings.
 *
 *   dmalens check [options] PATH...     analyse files and directories
 *   dmalens rules [--format text|json]  list the rules
 *   dmalens p2p --topology FILE PROVIDER CLIENT...   the kernel's P2PDMA decision on a topology (./p2p.ts)
 *   dmalens explain RULE [options]      the rule's reference run on the simulated machine (./explain.ts)
 *   dmalens fix [--dry-run] PATH...     apply the safe fixes in place, or print them as a diff (./fix.ts)
 *   dmalens help | --help | --version
 *
 * Exit codes: 0 no error-severity finding, 1 at least one, 2 usage or I/O
 * error (a one-line message on stderr; never a stack trace).
 */
// Options are parsed with node's built-in util.parseArgs: no dependency needed.
import { parseArgs } from 'node:util';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Analyzer } from '../core/analyzer';
import { LineIndex } from '../core/positions';
import type { AnalysisResult, AnalyzeOptions, Finding, KernelVersion, RuleInfo, Severity } from '../core/types';
import type { WorldOptions } from '../model/world';
import { loadWasm } from '../node/assets';
import { RuleDocs } from '../node/docs';
import { type Project, ProjectFiles } from '../node/project';
import { EXPLAIN_USAGE, explainCommand, explainFinding, ExplainUsageError, topologyFileWorld } from './explain';
import { BulkAnalysis, type Prepared } from './bulk';
import { collectFiles, readSource } from './files';
import { P2P_USAGE, p2pCommand, P2pUsageError } from './p2p';
import {
  checkPatchFile,
  formatTerse,
  isPatchInput,
  isStdin,
  PATCH_CHECK_OPTIONS,
  PatchCheck,
  patchCheckOptions,
  PatchUsageError,
  readStdin,
  REPLY_USAGE,
  replyCommand,
  STDIN_ARG,
  withStdin,
} from './patch';
import { FIX_USAGE, fixCommand, FixUsageError } from './fix';
import {
  compareStrings,
  formatJson,
  formatRulesJson,
  formatRulesText,
  formatSarif,
  formatText,
  locateFindings,
  oneLine,
  type FileFindings,
  type FileProblem,
} from './formats';

/** Where output goes; the process's streams by default, buffers in tests. */
export interface CliIO {
  out(s: string): void;
  err(s: string): void;
}

const processIO: CliIO = {
  out: (s) => void process.stdout.write(s),
  err: (s) => void process.stderr.write(s),
};

/** A mistake in the command line: exit code 2, one line on stderr. */
export class UsageError extends Error {}

export const DEFAULT_MAX_SIZE = 4_000_000;

export const USAGE = `Usage:
  dmalens check [options] PATH...   analyse C files, and .c/.h files under directories
  dmalens check [options] FILE.patch|FILE.mbx|FILE.eml|-
                                     review patches, patch mail and series (- reads standard input)
  dmalens rules [--format text|json] list the rules
${P2P_USAGE}
${EXPLAIN_USAGE}
${REPLY_USAGE}
${FIX_USAGE}
  dmalens help                       show this text
  dmalens --version                  print the version

Options for check:
  --format text|json|sarif   output format (default text: file:line:col: severity: message [RULE],
                             columns counted in bytes, as gcc does)
  --kernel X.Y               target kernel version, e.g. 6.12 (default: the newest the rules know)
  --disable RULE             do not run RULE (repeatable, or comma-separated)
  --severity RULE=LEVEL      report RULE as error, warning or info (repeatable)
  --max-size BYTES           skip files larger than this (default ${DEFAULT_MAX_SIZE})
  --summary                  print a summary line on stderr
  --explain                  add the model's run to each finding (JSON: "explanation"; text: under the finding)
  --topology FILE            with --explain: run the model on this machine (lspci -tvnn output or a JSON topology)
${PATCH_CHECK_OPTIONS}

Exit status: 0 no error-severity finding, 1 at least one, 2 usage or I/O error.
`;

/** Set by the esbuild bundle (scripts/build.js) from the root package.json. */
declare const __DMALENS_VERSION__: string | undefined;

/**
 * The version: the bundle's, else the extension's package.json (the root of
 * the repository), else the server package's.
 */
export function version(): string {
  if (typeof __DMALENS_VERSION__ === 'string') return __DMALENS_VERSION__;
  let fallback = 'unknown';
  for (let dir = __dirname, i = 0; i < 6; i++, dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
      if (pkg.name === 'dmalens') return String(pkg.version);
      if (pkg.name === '@dmalens/server' && fallback === 'unknown') fallback = String(pkg.version);
    } catch {
      /* keep looking */
    }
  }
  return fallback;
}

/** Runs util.parseArgs (inside `run`) with its errors turned into short usage errors. */
function parse<R>(run: () => R): R {
  try {
    return run();
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const opt = /'([^']+)'/.exec(err.message)?.[1] ?? '';
      throw new UsageError(`unknown option '${opt}' (see 'dmalens help')`);
    }
    if (typeof err.code === 'string' && err.code.startsWith('ERR_PARSE_ARGS')) {
      throw new UsageError(oneLine(err.message));
    }
    throw e;
  }
}

export function parseKernelVersion(s: string): KernelVersion {
  const m = /^(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) throw new UsageError(`--kernel: expected a version like 6.12, got '${s}'`);
  return { major: Number(m[1]), minor: Number(m[2]) };
}

function parseFormat<F extends string>(value: string | undefined, allowed: readonly F[]): F {
  const v = value ?? allowed[0];
  if (!(allowed as readonly string[]).includes(v)) {
    throw new UsageError(`--format: expected ${allowed.join(', ')}; got '${v}'`);
  }
  return v as F;
}

function parseMaxSize(value: string | undefined): number {
  if (value === undefined) return DEFAULT_MAX_SIZE;
  if (!/^\d+$/.test(value) || Number(value) <= 0) {
    throw new UsageError(`--max-size: expected a number of bytes, got '${value}'`);
  }
  return Number(value);
}

function parseSeverities(values: readonly string[]): Record<string, Severity> {
  const out: Record<string, Severity> = {};
  for (const v of values) {
    const m = /^([^=]+)=(error|warning|info)$/.exec(v.trim());
    if (!m) throw new UsageError(`--severity: expected RULE=error|warning|info, got '${v}'`);
    out[m[1].trim()] = m[2] as Severity;
  }
  return out;
}

async function createAnalyzer(): Promise<Analyzer> {
  return Analyzer.create(loadWasm());
}

function warnUnknownRules(ids: Iterable<string>, rules: readonly RuleInfo[], io: CliIO): void {
  // With no rules registered every id would look unknown: say nothing then.
  if (rules.length === 0) return;
  const known = new Set(rules.map((r) => r.id));
  for (const id of ids) {
    if (!known.has(id)) io.err(`dmalens: warning: unknown rule '${id}' (see 'dmalens rules')\n`);
  }
}

async function checkCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        format: { type: 'string', short: 'f' },
        kernel: { type: 'string' },
        disable: { type: 'string', multiple: true },
        severity: { type: 'string', multiple: true },
        'max-size': { type: 'string' },
        summary: { type: 'boolean' },
        explain: { type: 'boolean' },
        topology: { type: 'string' },
        tree: { type: 'string' },
        'no-tree': { type: 'boolean' },
        all: { type: 'boolean' },
        terse: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }),
  );
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  const format = parseFormat(values.format, ['text', 'json', 'sarif'] as const);
  const kernelVersion = values.kernel !== undefined ? parseKernelVersion(values.kernel) : undefined;
  const disabled = (values.disable ?? [])
    .flatMap((d) => d.split(','))
    .map((d) => d.trim())
    .filter((d) => d.length > 0);
  const severity = parseSeverities(values.severity ?? []);
  const maxSize = parseMaxSize(values['max-size']);
  if (positionals.length === 0) throw new UsageError(`check: no files or directories given (see 'dmalens help')`);
  const patchOptions = patchCheckOptions(values, format, maxSize);
  if (values.topology !== undefined && !values.explain) throw new UsageError(`check: --topology is the machine of the model's runs; add --explain`);
  let world: WorldOptions | undefined;
  try {
    world = values.topology !== undefined ? topologyFileWorld(values.topology, undefined, 'check') : undefined;
  } catch (e) {
    throw e instanceof ExplainUsageError ? new UsageError(e.message) : e;
  }

  const analyzer = await createAnalyzer();
  const rules = analyzer.rules();
  warnUnknownRules([...disabled, ...Object.keys(severity)], rules, io);

  const started = Date.now();
  const cli = { kernelVersion, disabledRules: disabled, severity };
  const projects = new ProjectFiles(new Set(rules.map((r) => r.id)));
  // The nearest .dmalens.json above each file applies; the command line wins (../node/project.ts). It is
  // looked up once per directory (a tree has a tenth as many as files).
  const projectOfDir = new Map<string, Project | undefined>();
  const projectIn = (dir: string): Project | undefined => {
    if (!projectOfDir.has(dir)) projectOfDir.set(dir, projects.find(path.resolve(dir)));
    return projectOfDir.get(dir);
  };
  // Many files: worker threads read, prefilter and analyse ahead of the loop below, in order (./bulk.ts),
  // starting while the walk still finds files. Those a project file may exclude are left to the loop.
  const bulk = BulkAnalysis.stream({ maxSize, options: cli });
  const { files, errors } = await collectFiles(
    positionals.filter((p) => p !== STDIN_ARG),
    (f) => {
      if (!projectIn(path.dirname(f))?.config.exclude.length) bulk.add(f);
    },
  );
  const inputs = withStdin(files, positionals);
  const problems: FileProblem[] = [];
  const report = (file: string, message: string, fatal: boolean): void => {
    problems.push({ file, message, fatal });
    io.err(`dmalens: ${file}: ${oneLine(message)}\n`);
  };
  for (const e of errors) report(e.file, e.message, true);

  const results: FileFindings[] = [];
  const counts: Record<Severity, number> = { error: 0, warning: 0, info: 0 };
  let analysed = 0;
  // A project's problems are printed the first time the loop's files meet it.
  const told = new Set<string>();
  // Standard input counts as a file in the working directory.
  const located = (file: string): string => (isStdin(file) ? path.join(process.cwd(), '-') : file);
  const projectOf = (file: string): Project | undefined => {
    const project = projectIn(path.dirname(located(file)));
    if (project && !told.has(project.file)) {
      told.add(project.file);
      for (const line of project.problemLines) io.err(`dmalens: ${line}\n`);
    }
    return project;
  };
  const optionsFor = (file: string): AnalyzeOptions | undefined => {
    projectOf(file);
    const o = projects.optionsFor(located(file), cli);
    return o && isStdin(file) ? { ...o, path: undefined } : o;
  };
  // Excluded by a project file: only files under a project with `exclude` patterns can be. The other
  // files' options are computed when the loop gets to a file that needs them (most are quiet).
  const fileOptionsOf = new Map<string, AnalyzeOptions | undefined>();
  for (const f of files) if (projectOf(f)?.config.exclude.length) fileOptionsOf.set(f, optionsFor(f));
  const excluded = new Set(files.filter((f) => fileOptionsOf.has(f) && fileOptionsOf.get(f) === undefined));
  bulk.end();
  for (const file of inputs) {
    if (excluded.has(file)) {
      analysed++;
      continue;
    }
    const read: Prepared = (await bulk.take(file)) ?? (isStdin(file) ? await readStdin(maxSize) : await readSource(file, maxSize));
    if ('skipped' in read) {
      report(file, read.fatal ? read.skipped : `skipped: ${read.skipped}`, read.fatal);
      continue;
    }
    if (read.quiet) {
      analysed++;
      continue;
    }
    const fileOptions = (fileOptionsOf.has(file) ? fileOptionsOf.get(file) : optionsFor(file)) ?? { ...cli };
    if (isPatchInput(file, read.text, isStdin(file))) {
      const found = checkPatchFile(
        new PatchCheck(analyzer, { ...patchOptions, world, kernelVersion: fileOptions.kernelVersion, disabled: [...(fileOptions.disabledRules ?? [])], severity: fileOptions.severity }),
        file,
        read,
        format,
        io.out,
        report,
      );
      analysed++;
      for (const f of found) counts[f.severity]++;
      if (format !== 'text') results.push({ file, findings: found });
      continue;
    }
    const options: AnalyzeOptions = fileOptions;
    let result: AnalysisResult;
    try {
      result = read.analysed ? read.analysed() : analyzer.analyzeText(read.text, options, { lazy: true });
    } catch (e) {
      // The core reports problems as notices; an exception is a bug: say which file, go on.
      report(file, `analysis failed: ${e instanceof Error ? e.message : String(e)}`, true);
      continue;
    }
    analysed++;
    for (const n of result.notices) report(file, n.message, false);
    if (result.findings.length === 0) continue;
    // Locate while the text is at hand; only the small located form is kept.
    const index = new LineIndex(read.text);
    const explain = values.explain
      ? (f: Finding) =>
          explainFinding(f, index, read.encoding, (e) =>
            report(file, `the model's ${f.rule} run failed: ${e instanceof Error ? e.message : String(e)}`, false),
            world,
          )
      : undefined;
    const findings = locateFindings(result.findings, index, read.encoding, explain);
    for (const f of findings) counts[f.severity]++;
    if (format === 'text') io.out(patchOptions.terse ? formatTerse(file, findings) : formatText(file, findings));
    else results.push({ file, findings });
  }
  await bulk.close();

  if (format === 'json') io.out(formatJson(results, problems));
  else if (format === 'sarif') {
    // helpUri: the rule pages installed with the package (docs/rules beside server/), as file: URLs.
    const docs = RuleDocs.create();
    io.out(formatSarif(results, problems, rules, version(), (id) => docs.href(id)));
  }

  if (values.summary) {
    const secs = ((Date.now() - started) / 1000).toFixed(2);
    const skipped = inputs.length - analysed;
    io.err(
      `dmalens: ${analysed} file${analysed === 1 ? '' : 's'} analysed` +
        (skipped ? `, ${skipped} skipped` : '') +
        `: ${counts.error} error${counts.error === 1 ? '' : 's'}, ` +
        `${counts.warning} warning${counts.warning === 1 ? '' : 's'}, ${counts.info} info (${secs} s)\n`,
    );
  }
  if (problems.some((p) => p.fatal)) return 2;
  return counts.error > 0 ? 1 : 0;
}

async function rulesCommand(args: string[], io: CliIO): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: { format: { type: 'string', short: 'f' }, help: { type: 'boolean', short: 'h' } },
    }),
  );
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (positionals.length > 0) throw new UsageError(`rules: unexpected argument '${positionals[0]}'`);
  const format = parseFormat(values.format, ['text', 'json'] as const);
  const rules = [...(await createAnalyzer()).rules()].sort((a, b) => compareStrings(a.id, b.id));
  io.out(format === 'json' ? formatRulesJson(rules) : formatRulesText(rules));
  return 0;
}

/**
 * Runs the command line `argv` (the arguments after the program name) and
 * resolves to the exit code. Never throws: errors become `dmalens: message`
 * on stderr and exit code 2.
 */
export async function main(argv: readonly string[], io: CliIO = processIO): Promise<number> {
  try {
    const [command, ...rest] = argv;
    switch (command) {
      case 'check':
        return await checkCommand(rest, io);
      case 'rules':
        return await rulesCommand(rest, io);
      case 'p2p':
        try {
          return p2pCommand(rest, io, parse);
        } catch (e) {
          throw e instanceof P2pUsageError ? new UsageError(e.message) : e;
        }
      case 'reply':
        try {
          return await replyCommand(rest, io, { parse, analyzer: createAnalyzer, kernelVersion: parseKernelVersion, severities: parseSeverities, maxSize: DEFAULT_MAX_SIZE });
        } catch (e) {
          throw e instanceof PatchUsageError ? new UsageError(e.message) : e;
        }
      case 'fix':
        try {
          return await fixCommand(rest, io, parse, USAGE);
        } catch (e) {
          throw e instanceof FixUsageError ? new UsageError(e.message) : e;
        }
      case 'explain':
        try {
          return explainCommand(rest, io.out, parse);
        } catch (e) {
          throw e instanceof ExplainUsageError ? new UsageError(e.message) : e;
        }
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return 0;
      case 'version':
      case '--version':
        io.out(`dmalens ${version()}\n`);
        return 0;
      case undefined:
        io.err(USAGE);
        return 2;
      default:
        throw new UsageError(
          command.startsWith('-')
            ? `unknown option '${command}' (see 'dmalens help')`
            : `unknown command '${command}' (see 'dmalens help')`,
        );
    }
  } catch (e) {
    io.err(`dmalens: ${oneLine(e instanceof Error ? e.message : String(e))}\n`);
    if (process.env.DMALENS_DEBUG && e instanceof Error && !(e instanceof UsageError)) io.err(`${e.stack}\n`);
    return 2;
  }
}

/** Runs as the `dmalens` process: real argv, real streams, exit code set. */
export function runProcess(argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  // `dmalens check . | head`: a closed pipe ends the run quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
  return main(argv).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) void runProcess();
