/**
 * The `dmalens.*` settings as the server sees them: read raw from the client
 * (workspace/configuration or didChangeConfiguration), validated here, turned
 * into the core's AnalyzeOptions. The schema lives in the root package.json
 * (contributes.configuration); the defaults below must match it (a test
 * checks that).
 */
import type { AnalyzeOptions, KernelVersion, Severity } from '../core/types';

export interface Settings {
  enable: boolean;
  /** "X.Y" parsed; undefined: the newest rules apply. */
  kernelVersion?: KernelVersion;
  disabledRules: string[];
  severity: Record<string, Severity>;
  /** Bytes (UTF-8). */
  maxFileSize: number;
  /** Topology file for the model's runs (lspci -tvnn or JSON), relative to the workspace folder. */
  topology?: string;
  /** `dmalens.patch.showExisting`: patch review also reports findings the patch does not add (default false). */
  patchShowExisting?: boolean;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  enable: true,
  kernelVersion: undefined,
  disabledRules: [],
  severity: {},
  maxFileSize: 4_000_000,
});

const SEVERITIES: readonly string[] = ['error', 'warning', 'info'];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validates the raw `dmalens` section. Anything malformed falls back to its
 * default and is reported in `problems` (the server logs them); never throws.
 * Accepts both the nested form ({rules: {disabled}}) VS Code sends for a
 * section and flat dotted keys ({"rules.disabled": ...}) some clients send.
 */
export function parseSettings(raw: unknown): { settings: Settings; problems: string[] } {
  const problems: string[] = [];
  const s: Settings = {
    enable: DEFAULT_SETTINGS.enable,
    kernelVersion: undefined,
    disabledRules: [],
    severity: {},
    maxFileSize: DEFAULT_SETTINGS.maxFileSize,
  };
  if (raw === undefined || raw === null) return { settings: s, problems };
  if (!isRecord(raw)) {
    problems.push(`dmalens settings: expected an object, got ${typeof raw}; using defaults`);
    return { settings: s, problems };
  }
  const rules = isRecord(raw.rules) ? raw.rules : {};
  const get = (nested: unknown, dotted: string): unknown => (nested !== undefined ? nested : raw[dotted]);

  const enable = raw.enable;
  if (typeof enable === 'boolean') s.enable = enable;
  else if (enable !== undefined) problems.push('dmalens.enable: expected true or false');

  const kv = raw.kernelVersion;
  if (typeof kv === 'string' && kv.trim() !== '') {
    const m = /^\s*(\d+)\.(\d+)\s*$/.exec(kv);
    if (m) s.kernelVersion = { major: Number(m[1]), minor: Number(m[2]) };
    else problems.push(`dmalens.kernelVersion: "${kv}" is not of the form X.Y (for example 6.12); ignored`);
  } else if (kv !== undefined && kv !== null && typeof kv !== 'string') {
    problems.push('dmalens.kernelVersion: expected a string such as "6.12"; ignored');
  }

  const disabled = get(rules.disabled, 'rules.disabled');
  if (Array.isArray(disabled)) {
    for (const id of disabled) {
      if (typeof id === 'string' && id.trim() !== '') s.disabledRules.push(id.trim());
      else problems.push('dmalens.rules.disabled: ignoring an entry that is not a rule id');
    }
  } else if (disabled !== undefined && disabled !== null) {
    problems.push('dmalens.rules.disabled: expected an array of rule ids');
  }

  const sev = get(rules.severity, 'rules.severity');
  if (isRecord(sev)) {
    for (const [id, v] of Object.entries(sev)) {
      if (typeof v === 'string' && SEVERITIES.includes(v)) s.severity[id] = v as Severity;
      else problems.push(`dmalens.rules.severity: "${id}": expected error, warning or info`);
    }
  } else if (sev !== undefined && sev !== null) {
    problems.push('dmalens.rules.severity: expected an object of rule id -> severity');
  }

  const topo = raw.topology;
  if (typeof topo === 'string' && topo.trim() !== '') s.topology = topo.trim();
  else if (topo !== undefined && topo !== null && typeof topo !== 'string') problems.push('dmalens.topology: expected a path (string)');

  const patch = isRecord(raw.patch) ? raw.patch : {};
  const showExisting = get(patch.showExisting, 'patch.showExisting');
  if (typeof showExisting === 'boolean') s.patchShowExisting = showExisting;
  else if (showExisting !== undefined && showExisting !== null) problems.push('dmalens.patch.showExisting: expected true or false');

  const max = raw.maxFileSize;
  if (typeof max === 'number' && Number.isFinite(max) && max >= 0) s.maxFileSize = max;
  else if (max !== undefined && max !== null) problems.push('dmalens.maxFileSize: expected a number of bytes');

  return { settings: s, problems };
}

/** The core's options for these settings (the layer translates; the core decides). */
export function analyzeOptions(s: Settings, path?: string): AnalyzeOptions {
  return {
    kernelVersion: s.kernelVersion,
    disabledRules: s.disabledRules,
    severity: s.severity,
    path,
  };
}

/** What the client says once, in `initialize` (initializationOptions). */
export interface InitOptions {
  /** Base URI of the rule pages (see docs.ts); passed on unchecked. */
  docsBaseUri?: unknown;
  /**
   * Whether hovers may carry `command:` links (`dmalens.showRun`). Only a
   * client that registers the command can run them: the VS Code extension sends
   * true; every other client (Neovim, Emacs, ...) gets hovers without them.
   */
  commandLinks: boolean;
  /** Whether the workspace is trusted (VS Code workspace trust); untrusted: project files are not read. */
  trusted: boolean;
}

/** Validates initializationOptions; never throws (malformed values are reported in `problems`). */
export function parseInitOptions(raw: unknown): { options: InitOptions; problems: string[] } {
  const problems: string[] = [];
  const options: InitOptions = { commandLinks: false, trusted: true };
  if (raw === undefined || raw === null) return { options, problems };
  if (!isRecord(raw)) {
    problems.push(`initializationOptions: expected an object, got ${typeof raw}; ignored`);
    return { options, problems };
  }
  if (raw.docsBaseUri !== undefined) options.docsBaseUri = raw.docsBaseUri;
  if (typeof raw.trusted === 'boolean') options.trusted = raw.trusted;
  else if (raw.trusted !== undefined && raw.trusted !== null) problems.push('initializationOptions.trusted: expected true or false; treated as trusted');
  if (typeof raw.commandLinks === 'boolean') options.commandLinks = raw.commandLinks;
  else if (raw.commandLinks !== undefined && raw.commandLinks !== null) {
    problems.push('initializationOptions.commandLinks: expected true or false; command links stay off');
  }
  return { options, problems };
}
