/**
 * The project file `.dmalens.json` (at the workspace or tree root) and the
 * kernel version a tree declares in its Makefile. Pure: the faces read the
 * files and hand the text in.
 *
 * JSON with comments is parsed with jsonc-parser (the parser VS Code uses for
 * its own settings files): it recovers from errors and reports each with an
 * offset, which is what diagnostics on the file need.
 *
 * {
 *   "kernelVersion": "6.12",
 *   "rules": { "disabled": ["P2P-CPU-MEMCPY"], "severity": { "DMABUF-LOCKING": "warning" } },
 *   "exclude": ["drivers/staging/**"],
 *   "overrides": [
 *     { "files": ["drivers/gpu/drm/acme/acme_dmabuf.c"], "disabled": ["DMABUF-LOCKING"] }
 *   ],
 *   "lockWrappers": [
 *     { "name": "acme_bo_lock", "kind": "acquire", "arg": 0, "conditional": true, "suffix": ".base.resv" },
 *     { "name": "acme_bo_unlock", "kind": "release", "arg": 0, "suffix": ".base.resv" },
 *     { "name": "acme_bo_assert_locked", "kind": "assert", "arg": 0 }
 *   ],
 *   "helpers": {
 *     "acme_vram_alloc_page": { "returns": "device-private-page" },
 *     "acme_get_cmb": { "returns": "p2pmem", "provider": 0 }
 *   }
 * }
 */
import { type Node, type ParseError, parseTree, printParseErrorCode } from 'jsonc-parser';
import type { KernelVersion, Severity, Span } from './types';

export interface LockWrapperSpec {
  name: string;
  kind: 'acquire' | 'release' | 'assert' | 'try';
  arg: number;
  conditional?: boolean;
  suffix?: string;
}

export interface HelperSpec {
  returns: 'device-private-page' | 'p2pmem' | 'imported-sgt' | 'errptr';
  /** For p2pmem: which argument is the providing device. */
  provider?: number;
}

/** Rule settings for some files of the project (globs relative to the project root, as in "exclude"). */
export interface OverrideSpec {
  files: string[];
  disabled: string[];
  severity: Record<string, Severity>;
}

export interface ProjectConfig {
  kernelVersion?: KernelVersion;
  disabledRules: string[];
  severity: Record<string, Severity>;
  exclude: string[];
  lockWrappers: LockWrapperSpec[];
  helpers: Record<string, HelperSpec>;
  /** Per-file rule settings, applied in order after "rules". */
  overrides: OverrideSpec[];
}

export interface ConfigProblem {
  span: Span;
  message: string;
  severity: 'error' | 'warning';
}

export function emptyConfig(): ProjectConfig {
  return { disabledRules: [], severity: {}, exclude: [], lockWrappers: [], helpers: {}, overrides: [] };
}

const TOP_KEYS = new Set(['kernelVersion', 'rules', 'exclude', 'lockWrappers', 'helpers', 'overrides', '$schema']);
const KINDS = new Set(['acquire', 'release', 'assert', 'try']);
const RETURNS = new Set(['device-private-page', 'p2pmem', 'imported-sgt', 'errptr']);
const IDENT = /^[A-Za-z_]\w*$/;

/**
 * Parses and validates the project file. Never throws: everything it cannot
 * use is a problem with the span of the offending text, and the rest applies.
 */
export function parseProjectConfig(text: string, knownRules: ReadonlySet<string>): { config: ProjectConfig; problems: ConfigProblem[] } {
  const config = emptyConfig();
  const problems: ConfigProblem[] = [];
  const errors: ParseError[] = [];
  const root = parseTree(text, errors, { allowTrailingComma: true, disallowComments: false });
  for (const e of errors) problems.push({ span: { start: e.offset, end: e.offset + Math.max(1, e.length) }, message: `JSON: ${printParseErrorCode(e.error)}`, severity: 'error' });
  if (!root) return { config, problems };
  const at = (n: Node): Span => ({ start: n.offset, end: n.offset + n.length });
  const bad = (n: Node, message: string, severity: 'error' | 'warning' = 'error') => problems.push({ span: at(n), message, severity });
  if (root.type !== 'object') {
    bad(root, 'the project file must be a JSON object');
    return { config, problems };
  }
  for (const prop of root.children ?? []) {
    const [k, v] = prop.children ?? [];
    if (!k || !v) continue;
    const key = String(k.value);
    if (!TOP_KEYS.has(key)) {
      bad(k, `unknown key "${key}" (known: ${[...TOP_KEYS].filter((x) => x !== '$schema').join(', ')})`, 'warning');
      continue;
    }
    switch (key) {
      case 'kernelVersion': {
        const m = typeof v.value === 'string' ? /^(\d+)\.(\d+)$/.exec(v.value) : null;
        if (!m) bad(v, 'kernelVersion must be a string "X.Y", for example "6.12"');
        else config.kernelVersion = { major: Number(m[1]), minor: Number(m[2]) };
        break;
      }
      case 'rules': {
        if (v.type !== 'object') {
          bad(v, '"rules" must be an object with "disabled" and/or "severity"');
          break;
        }
        for (const rp of v.children ?? []) {
          const [rk, rv] = rp.children ?? [];
          if (!rk || !rv) continue;
          if (rk.value === 'disabled') {
            if (rv.type !== 'array') bad(rv, '"disabled" must be an array of rule ids');
            else
              for (const item of rv.children ?? []) {
                if (typeof item.value !== 'string') bad(item, 'a rule id must be a string');
                else if (!knownRules.has(item.value)) bad(item, `unknown rule id "${item.value}"`, 'warning');
                else config.disabledRules.push(item.value);
              }
          } else if (rk.value === 'severity') {
            if (rv.type !== 'object') bad(rv, '"severity" must map rule ids to "error", "warning" or "info"');
            else
              for (const sp of rv.children ?? []) {
                const [sk, sv] = sp.children ?? [];
                if (!sk || !sv) continue;
                if (!knownRules.has(String(sk.value))) bad(sk, `unknown rule id "${sk.value}"`, 'warning');
                else if (sv.value !== 'error' && sv.value !== 'warning' && sv.value !== 'info') bad(sv, 'severity must be "error", "warning" or "info"');
                else config.severity[String(sk.value)] = sv.value;
              }
          } else bad(rk, `unknown key "${rk.value}" in "rules" (known: disabled, severity)`, 'warning');
        }
        break;
      }
      case 'exclude': {
        if (v.type !== 'array') bad(v, '"exclude" must be an array of glob patterns relative to the project root');
        else
          for (const item of v.children ?? []) {
            if (typeof item.value !== 'string' || !item.value) bad(item, 'an exclude pattern must be a non-empty string');
            else if (item.value.startsWith('/') || item.value.split('/').includes('..')) bad(item, 'exclude patterns are relative to the project root and may not leave it');
            else config.exclude.push(item.value);
          }
        break;
      }
      case 'lockWrappers': {
        if (v.type !== 'array') {
          bad(v, '"lockWrappers" must be an array of {name, kind, arg}');
          break;
        }
        for (const item of v.children ?? []) {
          const o = objectOf(item);
          if (!o) {
            bad(item, 'a lock wrapper is an object {name, kind, arg, conditional?, suffix?}');
            continue;
          }
          const name = o.get('name')?.value;
          const kind = o.get('kind')?.value;
          const arg = o.get('arg')?.value ?? 0;
          if (typeof name !== 'string' || !IDENT.test(name)) {
            bad(o.get('name') ?? item, 'name must be a C identifier');
            continue;
          }
          if (typeof kind !== 'string' || !KINDS.has(kind)) {
            bad(o.get('kind') ?? item, 'kind must be "acquire", "release", "assert" or "try"');
            continue;
          }
          if (typeof arg !== 'number' || !Number.isInteger(arg) || arg < 0 || arg > 16) {
            bad(o.get('arg') ?? item, 'arg must be the index of the locked argument (0-16)');
            continue;
          }
          const suffix = o.get('suffix')?.value;
          if (suffix !== undefined && (typeof suffix !== 'string' || !/^(\.[A-Za-z_]\w*)+$/.test(suffix))) {
            bad(o.get('suffix')!, 'suffix must be a field path such as ".base.resv"');
            continue;
          }
          config.lockWrappers.push({ name, kind: kind as LockWrapperSpec['kind'], arg, conditional: o.get('conditional')?.value === true, suffix });
        }
        break;
      }
      case 'overrides': {
        if (v.type !== 'array') {
          bad(v, '"overrides" must be an array of {files, disabled?, severity?}');
          break;
        }
        for (const item of v.children ?? []) {
          const o = objectOf(item);
          if (!o) {
            bad(item, 'an override is an object {files: [globs], disabled?: [rule ids], severity?: {rule id: level}}');
            continue;
          }
          for (const [key, node] of o) if (key !== 'files' && key !== 'disabled' && key !== 'severity') bad(keyNodeOf(item, key) ?? node, `unknown key "${key}" in an override (known: files, disabled, severity)`, 'warning');
          const spec: OverrideSpec = { files: [], disabled: [], severity: {} };
          const files = o.get('files');
          if (!files || files.type !== 'array' || !files.children?.length) {
            bad(files ?? item, '"files" must be a non-empty array of paths or globs relative to the project root');
            continue;
          }
          for (const f of files.children) {
            if (typeof f.value !== 'string' || !f.value) bad(f, 'a file pattern must be a non-empty string');
            else if (f.value.startsWith('/') || f.value.split('/').includes('..')) bad(f, 'override file patterns are relative to the project root and may not leave it');
            else spec.files.push(f.value);
          }
          const disabled = o.get('disabled');
          if (disabled && disabled.type !== 'array') bad(disabled, '"disabled" must be an array of rule ids');
          else
            for (const r of disabled?.children ?? []) {
              if (typeof r.value !== 'string') bad(r, 'a rule id must be a string');
              else if (!knownRules.has(r.value)) bad(r, `unknown rule id "${r.value}"`, 'warning');
              else spec.disabled.push(r.value);
            }
          const sev = o.get('severity');
          if (sev && sev.type !== 'object') bad(sev, '"severity" must map rule ids to "error", "warning" or "info"');
          else
            for (const sp of sev?.children ?? []) {
              const [sk, sv] = sp.children ?? [];
              if (!sk || !sv) continue;
              if (!knownRules.has(String(sk.value))) bad(sk, `unknown rule id "${sk.value}"`, 'warning');
              else if (sv.value !== 'error' && sv.value !== 'warning' && sv.value !== 'info') bad(sv, 'severity must be "error", "warning" or "info"');
              else spec.severity[String(sk.value)] = sv.value;
            }
          if (spec.files.length) config.overrides.push(spec);
        }
        break;
      }
      case 'helpers': {
        if (v.type !== 'object') {
          bad(v, '"helpers" must map function names to {returns: ...}');
          break;
        }
        for (const hp of v.children ?? []) {
          const [hk, hv] = hp.children ?? [];
          if (!hk || !hv) continue;
          const name = String(hk.value);
          const o = objectOf(hv);
          if (!IDENT.test(name)) bad(hk, 'a helper name must be a C identifier');
          else if (!o || typeof o.get('returns')?.value !== 'string' || !RETURNS.has(o.get('returns')!.value)) bad(hv, `returns must be one of ${[...RETURNS].join(', ')}`);
          else {
            const provider = o.get('provider')?.value;
            config.helpers[name] = { returns: o.get('returns')!.value, ...(typeof provider === 'number' ? { provider } : {}) };
          }
        }
        break;
      }
    }
  }
  return { config, problems };
}

function keyNodeOf(obj: Node, key: string): Node | undefined {
  for (const p of obj.children ?? []) if (p.children?.[0]?.value === key) return p.children[0];
  return undefined;
}

function objectOf(n: Node): Map<string, Node> | undefined {
  if (n.type !== 'object') return undefined;
  const m = new Map<string, Node>();
  for (const p of n.children ?? []) {
    const [k, v] = p.children ?? [];
    if (k && v) m.set(String(k.value), v);
  }
  return m;
}

/** VERSION.PATCHLEVEL from a kernel tree's top-level Makefile. */
export function kernelVersionFromMakefile(text: string): KernelVersion | undefined {
  const major = /^VERSION\s*=\s*(\d+)\s*$/m.exec(text);
  const minor = /^PATCHLEVEL\s*=\s*(\d+)\s*$/m.exec(text);
  if (!major || !minor) return undefined;
  return { major: Number(major[1]), minor: Number(minor[1]) };
}

/**
 * The rule settings of the project for one file (its path relative to the
 * project root, forward slashes): "rules", then every override whose
 * "files" match, in order.
 */
export function rulesForPath(config: ProjectConfig, rel: string | undefined): { disabledRules: string[]; severity: Record<string, Severity> } {
  const disabled = new Set(config.disabledRules);
  const severity = { ...config.severity };
  if (rel !== undefined)
    for (const o of config.overrides) {
      if (!o.files.some((p) => globToRegExp(p).test(rel))) continue;
      for (const r of o.disabled) disabled.add(r);
      Object.assign(severity, o.severity);
    }
  return { disabledRules: [...disabled], severity };
}

/** Whether a path (relative to the project root, forward slashes) matches one of the exclude globs. */
export function isExcluded(rel: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => globToRegExp(p).test(rel));
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
        if (glob[i + 1] === '/') i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}(/.*)?$`);
}
