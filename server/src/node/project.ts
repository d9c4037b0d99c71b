/**
 * The project file `.dmalens.json` for command-line runs (`dmalens check`,
 * `dmalens fix`, the bulk workers): for each file, the nearest project file
 * above it applies, as the editor applies the one at the workspace root.
 *
 * Command-line options win over the project file, and the project file over
 * what the tree says: the kernel version is `--kernel`, else the project
 * file's `kernelVersion`, else VERSION/PATCHLEVEL from the Makefile of the
 * kernel tree the file sits in (a directory holding MAINTAINERS, Kconfig and
 * Makefile).
 *
 * Everything is looked up once per directory and cached; lookups are
 * synchronous stats (a few per directory of the tree).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { emptyConfig, isExcluded, kernelVersionFromMakefile, parseProjectConfig, type ConfigProblem, type ProjectConfig, rulesForPath } from '../core/config';
import { LineIndex } from '../core/positions';
import type { AnalyzeOptions, KernelVersion, Severity } from '../core/types';

export const PROJECT_FILE = '.dmalens.json';

export interface Project {
  /** The directory holding the project file. */
  root: string;
  /** Its path. */
  file: string;
  config: ProjectConfig;
  problems: ConfigProblem[];
  /** The problems as `FILE:LINE:COL: severity: message` lines. */
  problemLines: string[];
}

/** What the command line says; it wins over the project file. */
export interface CommandLineOptions {
  kernelVersion?: KernelVersion;
  disabledRules?: readonly string[] | ReadonlySet<string>;
  severity?: Readonly<Record<string, Severity>>;
}

/** The nearest `.dmalens.json` above a directory, parsed (cached per directory). */
export class ProjectFiles {
  private readonly byDir = new Map<string, Project | null>();
  private readonly makefileByDir = new Map<string, { root: string; version?: KernelVersion } | null>();

  constructor(private readonly knownRules: ReadonlySet<string>) {}

  /** The project whose file is nearest above `dir` (itself included), if any. */
  find(dir: string): Project | undefined {
    return nearest(dir, this.byDir, (d) => {
      const file = path.join(d, PROJECT_FILE);
      let text: string;
      try {
        if (!fs.statSync(file).isFile()) return undefined;
        text = fs.readFileSync(file, 'utf8');
      } catch {
        return undefined;
      }
      const { config, problems } = parseProjectConfig(text, this.knownRules);
      const index = new LineIndex(text);
      const problemLines = problems.map((p) => {
        const at = index.byteLineColumn(p.span.start);
        return `${file}:${at.line}:${at.column}: ${p.severity}: ${p.message}`;
      });
      return { root: d, file, config, problems, problemLines };
    });
  }

  /** The kernel tree `dir` sits in (a directory holding MAINTAINERS, Kconfig and Makefile), with the version its Makefile gives. */
  kernelTree(dir: string): { root: string; version?: KernelVersion } | undefined {
    return nearest(dir, this.makefileByDir, (d) =>
      ['MAINTAINERS', 'Kconfig', 'Makefile'].every((m) => exists(path.join(d, m)))
        ? { root: d, version: readMakefileVersion(path.join(d, 'Makefile')) }
        : undefined,
    );
  }

  /**
   * The analysis options for one file (`path` relative to the project root,
   * else to the kernel tree, else as given), or `undefined` when the project
   * file excludes it.
   */
  optionsFor(file: string, cli: CommandLineOptions): AnalyzeOptions | undefined {
    const abs = path.resolve(file);
    const dir = path.dirname(abs);
    const project = this.find(dir);
    const tree = this.kernelTree(dir);
    const projectRel = project ? toSlashes(path.relative(project.root, abs)) : undefined;
    if (project && projectRel !== undefined && project.config.exclude.length && isExcluded(projectRel, project.config.exclude)) return undefined;
    const config = project?.config ?? emptyConfig();
    const forFile = rulesForPath(config, projectRel);
    const rel = tree ? toSlashes(path.relative(tree.root, abs)) : projectRel ?? toSlashes(path.normalize(file));
    return {
      kernelVersion: cli.kernelVersion ?? config.kernelVersion ?? tree?.version,
      disabledRules: [...new Set([...forFile.disabledRules, ...(cli.disabledRules ?? [])])],
      severity: { ...forFile.severity, ...(cli.severity ?? {}) },
      lockWrappers: config.lockWrappers.length ? config.lockWrappers : undefined,
      helpers: Object.keys(config.helpers).length ? config.helpers : undefined,
      path: rel,
    };
  }
}

/**
 * The first answer of `probe` from `dir` upwards, caching the answer (or its
 * absence) for every directory on the way.
 */
function nearest<T>(dir: string, cache: Map<string, T | null>, probe: (d: string) => T | undefined): T | undefined {
  const chain: string[] = [];
  let d = path.resolve(dir);
  let found: T | null | undefined;
  for (let i = 0; i < 256; i++) {
    if (cache.has(d)) {
      found = cache.get(d);
      break;
    }
    chain.push(d);
    found = probe(d);
    if (found !== undefined) break;
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  for (const c of chain) cache.set(c, found ?? null);
  return found ?? undefined;
}

/** VERSION and PATCHLEVEL from the head of a kernel Makefile; undefined when unreadable or absent. */
export function readMakefileVersion(file: string): KernelVersion | undefined {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const buf = Buffer.alloc(4096);
      const n = fs.readSync(fd, buf, 0, buf.length, 0);
      return kernelVersionFromMakefile(buf.subarray(0, n).toString('latin1'));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
}

function exists(p: string): boolean {
  try {
    fs.accessSync(p);
    return true;
  } catch {
    return false;
  }
}

function toSlashes(p: string): string {
  return p.split(path.sep).join('/');
}
