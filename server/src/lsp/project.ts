/**
 * What the server knows about the project a document belongs to: its root
 * (the workspace folder holding it, or the kernel tree it sits in), the
 * project file `.dmalens.json` there, the kernel version its Makefile
 * declares, and the topology named by `dmalens.topology` (the world the
 * model's runs use).
 *
 * Precedence: editor settings over `.dmalens.json` over the Makefile.
 * In an untrusted workspace none of these files is read: only the editor's
 * own settings apply (the extension declares limited support).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ConfigProblem, emptyConfig, isExcluded, parseProjectConfig, type ProjectConfig, rulesForPath } from '../core/config';
import type { AnalyzeOptions, KernelVersion } from '../core/types';
import { loadTopology } from '../model/lspci';
import type { Topology } from '../model/pcie';
import { readMakefileVersion } from '../node/project';
import { topologyWorld, type WorldOptions } from '../model/world';

export const CONFIG_FILE = '.dmalens.json';

export interface Project {
  root: string;
  config: ProjectConfig;
  configUri?: string;
  configProblems: ConfigProblem[];
  configText?: string;
  makefileVersion?: KernelVersion;
}

interface Cached<T> {
  mtimeMs: number;
  value: T;
}

export class Projects {
  private folders: string[] = [];
  private readonly configCache = new Map<string, Cached<{ config: ProjectConfig; problems: ConfigProblem[]; text: string }>>();
  private readonly makefileCache = new Map<string, Cached<KernelVersion | undefined>>();
  private readonly topologyCache = new Map<string, Cached<{ topology?: Topology; error?: string }>>();
  /** Texts of open `.dmalens.json` documents: they win over the file on disk. */
  private readonly openConfigs = new Map<string, string>();
  trusted = true;

  constructor(private readonly knownRules: () => ReadonlySet<string>) {}

  setWorkspaceFolders(uris: readonly string[]): void {
    this.folders = uris.map(toPath).filter((p): p is string => !!p).sort((a, b) => b.length - a.length);
  }

  setOpenConfig(uri: string, text: string | undefined): void {
    const p = toPath(uri);
    if (!p) return;
    if (text === undefined) this.openConfigs.delete(p);
    else this.openConfigs.set(p, text);
    this.configCache.delete(p);
  }

  invalidate(): void {
    this.configCache.clear();
    this.makefileCache.clear();
    this.topologyCache.clear();
  }

  /** The first workspace folder that is a kernel tree root (MAINTAINERS and Kbuild), if any. */
  kernelRoot(): string | undefined {
    return this.folders.find((f) => kernelRootAbove(f) === f);
  }

  /**
   * Where patch review reads the files a patch changes (whole-file mode):
   * the root of the patch document's project (the workspace folder holding
   * it, or the kernel tree above it), then every workspace folder, innermost
   * first. None in an untrusted workspace.
   */
  patchRoots(uri: string): string[] {
    if (!this.trusted) return [];
    const file = toPath(uri);
    const own = file ? (this.folders.find((f) => isInside(file, f)) ?? kernelRootAbove(path.dirname(file))) : undefined;
    return [...new Set([...(own ? [own] : []), ...this.folders])];
  }

  /** The project of a document: the innermost workspace folder holding it, else the kernel tree root above it. */
  projectFor(uri: string): Project | undefined {
    const file = toPath(uri);
    if (!file) return undefined;
    const root = this.folders.find((f) => isInside(file, f)) ?? kernelRootAbove(path.dirname(file));
    if (!root) return undefined;
    const project: Project = { root, config: emptyConfig(), configProblems: [] };
    if (!this.trusted) return project;
    const configPath = path.join(root, CONFIG_FILE);
    const c = this.readConfig(configPath);
    if (c) {
      project.config = c.config;
      project.configProblems = c.problems;
      project.configText = c.text;
      project.configUri = pathToFileURL(configPath).toString();
    }
    project.makefileVersion = this.readMakefile(path.join(root, 'Makefile'));
    return project;
  }

  /** Whether the document is excluded by the project file. */
  excluded(uri: string, project: Project | undefined): boolean {
    const file = toPath(uri);
    if (!file || !project || !project.config.exclude.length) return false;
    return isExcluded(path.relative(project.root, file).split(path.sep).join('/'), project.config.exclude);
  }

  /** The topology named by `dmalens.topology`, resolved inside the project; errors are returned, not thrown. */
  topology(setting: string | undefined, project: Project | undefined): { world?: WorldOptions; error?: string } {
    if (!setting || !project) return {};
    if (!this.trusted) return { error: 'dmalens.topology is ignored in an untrusted workspace' };
    const file = path.resolve(project.root, setting);
    if (!isInside(file, project.root)) return { error: `dmalens.topology must name a file inside the workspace (${setting} is outside it)` };
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return { error: `dmalens.topology: ${setting} does not exist` };
    }
    if (st.size > 4_000_000) return { error: `dmalens.topology: ${setting} is larger than 4 MB` };
    const cached = this.topologyCache.get(file);
    let value = cached && cached.mtimeMs === st.mtimeMs ? cached.value : undefined;
    if (!value) {
      try {
        const text = fs.readFileSync(file, 'utf8');
        const loaded = loadTopology({ topology: text });
        value = { topology: loaded.topology };
      } catch (e) {
        value = { error: `dmalens.topology: ${setting}: ${e instanceof Error ? e.message : String(e)}` };
      }
      this.topologyCache.set(file, { mtimeMs: st.mtimeMs, value });
    }
    if (value.error) return { error: value.error };
    // Its devices, BARs and IOMMU modes (per device, else the topology's global one) and its CPU.
    return { world: value.topology ? topologyWorld(value.topology) : undefined };
  }

  /** Settings and project merged into the core's options; with `uri`, the project's per-file overrides apply too. */
  merge(base: AnalyzeOptions, project: Project | undefined, uri?: string): AnalyzeOptions {
    if (!project) return base;
    const c = project.config;
    const file = uri ? toPath(uri) : undefined;
    const forFile = rulesForPath(c, file && isInside(file, project.root) ? path.relative(project.root, file).split(path.sep).join('/') : undefined);
    return {
      ...base,
      kernelVersion: base.kernelVersion ?? c.kernelVersion ?? project.makefileVersion,
      disabledRules: [...new Set([...forFile.disabledRules, ...(base.disabledRules ?? [])])],
      severity: { ...forFile.severity, ...base.severity },
      lockWrappers: c.lockWrappers,
      helpers: c.helpers,
    };
  }

  private readConfig(file: string): { config: ProjectConfig; problems: ConfigProblem[]; text: string } | undefined {
    const open = this.openConfigs.get(file);
    if (open !== undefined) {
      const r = parseProjectConfig(open, this.knownRules());
      return { ...r, text: open };
    }
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return undefined;
    }
    if (!st.isFile() || st.size > 1_000_000) return undefined;
    const cached = this.configCache.get(file);
    if (cached && cached.mtimeMs === st.mtimeMs) return cached.value;
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
    const value = { ...parseProjectConfig(text, this.knownRules()), text };
    this.configCache.set(file, { mtimeMs: st.mtimeMs, value });
    return value;
  }

  private readMakefile(file: string): KernelVersion | undefined {
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      return undefined;
    }
    const cached = this.makefileCache.get(file);
    if (cached && cached.mtimeMs === st.mtimeMs) return cached.value;
    const value = readMakefileVersion(file);
    this.makefileCache.set(file, { mtimeMs: st.mtimeMs, value });
    return value;
  }
}

export function isConfigUri(uri: string): boolean {
  return uri.startsWith('file:') && uri.endsWith('/' + CONFIG_FILE);
}

function toPath(uri: string): string | undefined {
  if (!uri.startsWith('file:')) return undefined;
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}

function isInside(file: string, dir: string): boolean {
  const rel = path.relative(dir, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function kernelRootAbove(dir: string): string | undefined {
  let d = dir;
  for (let i = 0; i < 40; i++) {
    try {
      if (fs.statSync(path.join(d, 'MAINTAINERS')).isFile() && fs.statSync(path.join(d, 'Kbuild')).isFile()) return d;
    } catch {
      /* keep looking */
    }
    const up = path.dirname(d);
    if (up === d) return undefined;
    d = up;
  }
  return undefined;
}
