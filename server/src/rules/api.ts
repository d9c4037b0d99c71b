/**
 * What a rule is, and the context it runs in.
 */
import type { AstNode } from '../core/ast';
import type { FileFacts } from '../core/facts';
import type { CodeEvent, KernelVersion, RelatedSpan, RuleInfo, Severity, Span } from '../core/types';

export interface FindingInput {
  /** Defaults to the rule's own severity. */
  severity?: Severity;
  message: string;
  at: AstNode | Span;
  related?: RelatedSpan[];
  events?: CodeEvent[];
  functionName?: string;
}

export interface RuleContext {
  ff: FileFacts;
  /** The target kernel (the newest known when not given). */
  version: KernelVersion;
  /** Whether the target kernel is at least `major.minor`. */
  atLeast(major: number, minor: number): boolean;
  report(f: FindingInput): void;
  /** Shared, lazily computed analyses (lock states, summaries) keyed by name. */
  shared<T>(key: string, compute: () => T): T;
}

export interface Rule extends RuleInfo {
  /**
   * Identifiers that make a function worth analysing once the file matters
   * (lock wrappers, guards), without making the file matter by themselves.
   */
  context?: readonly string[];
  /**
   * Narrows `needs` when choosing the rules for a file (the file prefilter
   * still uses `needs` alone): unless the file holds one of `unlessAny`, it
   * must also hold one of `words`. A lock wrapper alone cannot make a user
   * fault under the lock; the faulting call must be in the file too.
   */
  alsoNeeds?: { words: readonly string[]; unlessAny: readonly string[] };
  check(ctx: RuleContext): void;
}

/** The newest kernel the rules know about; used when no version is given. */
export const NEWEST: KernelVersion = { major: 6, minor: 19 };

export function span(n: AstNode | Span): Span {
  return { start: n.start, end: n.end };
}

export function rel(n: AstNode | Span, message: string): RelatedSpan {
  return { start: n.start, end: n.end, message };
}
