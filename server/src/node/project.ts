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
    const chain: string[] = [];
    let d = path.resolve(dir);
    let found: Project | null | undefined;
    for (let i = 0; i < 256; i++) {
      if (this.byDir.has(d)) {
        found = this.byDir.get(d);
        break;
      }
      chain.push(d);
      const file = path.join(d, PROJECT_FILE);
      let text: string | undefined;
      try {
        if (fs.statSync(file).isFile()) text = fs.readFileSync(file, 'utf8');
      } catch {
        text = undefined;
      }
      if (text !== undefined) {
        const { config, problems } = parseProjectConfig(text, this.knownRules);
        const index = new LineIndex(text);
        const problemLines = problems.map((p) => {
          const at = index.byteLineColumn(p.span.start);
          return `${file}:${at.line}:${at.column}: ${p.severity}: ${p.message}`;
        });
        found = { root: d, file, config, problems, problemLines };
        break;
      }
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
    for (const c of chain) this.byDir.set(c, found ?? null);
    return found ?? undefined;
  }

  /** The kernel tree `dir` sits in, with the version its Makefile gives. */
  kernelTree(dir: string): { root: string; version?: KernelVersion } | undefined {
    const chain: string[] = [];
    let d = path.resolve(dir);
    let found: { root: string; version?: KernelVersion } | null | undefined;
    for (let i = 0; i < 256; i++) {
      if (this.makefileByDir.has(d)) {
        found = this.makefileByDir.get(d);
        break;
      }
      chain.push(d);
      if (['MAINTAINERS', 'Kconfig', 'Makefile'].every((m) => exists(path.join(d, m)))) {
        let version: KernelVersion | undefined;
        try {
          const fd = fs.openSync(path.join(d, 'Makefile'), 'r');
          try {
            const buf = Buffer.alloc(4096);
            const n = fs.readSync(fd, buf, 0, buf.length, 0);
            version = kernelVersionFromMakefile(buf.subarray(0, n).toString('latin1'));
          } finally {
            fs.closeSync(fd);
          }
        } catch {
          version = undefined;
        }
        found = { root: d, version };
        break;
      }
      const up = path.dirname(d);
      if (up === d) break;
      d = up;
    }
    for (const c of chain) this.makefileByDir.set(c, found ?? null);
    return found ?? undefined;
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
