/**
 * Public data types of the analysis core. Nothing here knows about the editor,
 * the protocol, the file system or the terminal.
 *
 * Offsets are indices into the JavaScript string that was analysed (UTF-16
 * code units), which is also what web-tree-sitter reports as `startIndex`.
 * Conversion to lines, LSP positions and byte columns lives in
 * core/positions.ts and nowhere else.
 */

export type Severity = 'error' | 'warning' | 'info';

export interface Span {
  /** Start offset (UTF-16 code units into the analysed text). */
  start: number;
  /** End offset, exclusive. */
  end: number;
}

/** A place in the user's code that explains a finding (where a lock was taken, an attachment made). */
export interface RelatedSpan extends Span {
  message: string;
}

/** Who performs a step of a model run. */
export type Actor = 'cpu' | 'driver' | 'kernel' | 'device' | 'iommu' | 'bus' | 'user';

/**
 * One event extracted from the user's code, in program order: the input a rule
 * hands to the model. `op` is a small vocabulary the model understands
 * (for example 'dma_resv_lock', 'dma_buf_map_attachment', 'sg_page').
 */
export interface CodeEvent {
  op: string;
  /** Source location of the event, when it comes from the user's code. */
  span?: Span;
  /** Facts that matter to the model: {dynamic: true, locked: false, pgmapType: 'PRIVATE', ...}. */
  args?: Record<string, string | number | boolean>;
}

export interface Finding {
  rule: string;
  severity: Severity;
  message: string;
  span: Span;
  related: RelatedSpan[];
  /** Events from the user's code that make the hazard, for the model. */
  events: CodeEvent[];
  /** Name of the enclosing function, when there is one. */
  functionName?: string;
}

export interface KernelVersion {
  major: number;
  minor: number;
}

import type { HelperSpec, LockWrapperSpec } from './config';

/**
 * Facts gathered across the workspace (other files), for inter-procedural
 * precision: lock summaries of functions defined elsewhere, and functions
 * whose every caller in the workspace holds a reservation lock.
 */
export interface WorkspaceFacts {
  /** Function name -> what it does to the reservation lock of an argument. */
  lockFns?: ReadonlyMap<string, { kind: 'acquire' | 'release' | 'assert' | 'try'; arg: number; conditional?: boolean; suffix?: string }>;
  /** Functions (non-static) that every call site in the workspace calls with a reservation lock held. */
  calledLocked?: ReadonlySet<string>;
}

export interface AnalyzeOptions {
  /** Target kernel; undefined means "the newest the rules know". */
  kernelVersion?: KernelVersion;
  /** Rule ids not to run. */
  disabledRules?: ReadonlySet<string> | readonly string[];
  /** Per-rule severity overrides. */
  severity?: Readonly<Record<string, Severity>>;
  /** Path of the file relative to the kernel tree root, when known (rules may rank by path). */
  path?: string;
  /** Project-specific lock wrappers (from .dmalens.json). */
  lockWrappers?: readonly LockWrapperSpec[];
  /** Project-specific helper summaries (from .dmalens.json). */
  helpers?: Readonly<Record<string, HelperSpec>>;
  /** Facts from the rest of the workspace. */
  workspace?: WorkspaceFacts;
  /**
   * For benchmarks: called with the milliseconds each stage of the analysis
   * took (`facts` for the file's functions and tables, `rule:ID` for each rule
   * run, including the per-function facts it was the first to ask for).
   */
  timing?: (stage: string, ms: number) => void;
}

/** A problem with the analysis itself (a rule that threw, a file too large), reported, never thrown. */
export interface AnalysisNotice {
  kind: 'rule-failed' | 'too-large' | 'parse-timeout' | 'not-text' | 'too-deep';
  message: string;
  rule?: string;
  span?: Span;
}

export interface AnalysisResult {
  findings: Finding[];
  notices: AnalysisNotice[];
  /** Number of ERROR/MISSING nodes left after sanitizing: a measure of how well the file parsed. */
  errorNodes: number;
}

export interface RuleInfo {
  id: string;
  severity: Severity;
  summary: string;
  /** Family: pgmap, hmm, p2pdma, dmabuf, netmem. */
  family: string;
  /** Kernel version range where the rule applies ([min, max], inclusive; undefined = open). */
  since?: KernelVersion;
  until?: KernelVersion;
  /** Identifiers the rule needs to see in a file before it can fire (feeds the prefilter). */
  needs: readonly string[];
}
