/**
 * The fix engine: for a finding of a parsed file, the fixes that remove it.
 *
 * Fixes are derived from the finding (its span, events, related spans and,
 * where nothing else says it, its message) and from the file itself, read
 * again with the core (FileFacts, the light AST, the lock and pgmap analyses
 * the rules use). Rules do not need to know about fixes.
 *
 *   const session = new FixSession(doc, options);
 *   const fixes = session.fixesFor(finding);        // Fix[]: at most one preferred
 *   const all = session.preferredEdits(findings);   // the safe fixes that do not collide
 *
 * Pure: no editor, protocol or system imports; never throws (a fixer that
 * fails gives no fix).
 */
import { type AstNode, walk } from '../core/ast';
import { FileFacts, type FunctionFacts } from '../core/facts';
import type { ParsedFile } from '../core/parser';
import type { Finding, KernelVersion, Span } from '../core/types';
import { NEWEST } from '../rules/api';
import { functionPattern } from '../rules/registry';
import { dmabufFixers } from './dmabuf';
import { p2pFixers } from './p2pdma';
import { pgmapFixers } from './pgmap';
import { normalizeEdits, Src } from './text';
import type { Fix, FixEdit, FixOptions } from './types';

/** What a rule's fixer gets. */
export interface FixContext {
  finding: Finding;
  src: Src;
  ff: FileFacts;
  options: FixOptions;
  version: KernelVersion;
  atLeast(major: number, minor: number): boolean;
  /** The function whose definition holds `offset`. */
  fnAt(offset: number): FunctionFacts | undefined;
  /** Nodes of `fn` whose span is exactly `span`, outermost first. */
  nodesAt(fn: FunctionFacts, span: Span): AstNode[];
  /** A fix from edits (normalised; undefined when they overlap or change nothing). */
  fix(title: string, edits: readonly FixEdit[] | undefined, preferred: boolean): Fix | undefined;
  /** Analyses computed once per file (lock states, pgmap objects). */
  shared<T>(key: string, compute: () => T): T;
}

export type Fixer = (ctx: FixContext) => Array<Fix | undefined>;

const FIXERS: Readonly<Record<string, Fixer>> = { ...dmabufFixers, ...pgmapFixers, ...p2pFixers };

/** Rule ids that have fixes. */
export function rulesWithFixes(): string[] {
  return Object.keys(FIXERS).sort();
}

function cmp(a: KernelVersion, b: KernelVersion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

/** Fixes for the findings of one parsed file. The file must stay alive (not deleted) while the session is used. */
export class FixSession {
  private ffCache: FileFacts | undefined;
  private readonly src: Src;
  private readonly cache = new Map<string, unknown>();

  constructor(
    readonly doc: ParsedFile,
    readonly options: FixOptions = {},
  ) {
    this.src = new Src(doc.text);
  }

  private get ff(): FileFacts {
    if (!this.ffCache) {
      // Every rule's functions (a fix may look at any of them), as the registry builds the pattern.
      const pattern = functionPattern(this.options);
      this.ffCache = new FileFacts(this.doc, pattern, { kernelVersion: this.options.kernelVersion, lockWrappers: this.options.lockWrappers, helpers: this.options.helpers });
    }
    return this.ffCache;
  }

  /** The fixes for one finding of this file (empty when there is none, or the finding is not of this text). */
  fixesFor(finding: Finding): Fix[] {
    const fixer = FIXERS[finding.rule];
    if (!fixer || this.doc.deleted || finding.span.end > this.src.text.length) return [];
    let out: Fix[] = [];
    try {
      const ctx = this.context(finding);
      out = fixer(ctx).filter((f): f is Fix => !!f);
    } catch {
      return [];
    }
    // At most one preferred fix, listed first.
    let seen = false;
    for (const f of out) {
      if (f.preferred && seen) f.preferred = false;
      if (f.preferred) seen = true;
    }
    return [...out.filter((f) => f.preferred), ...out.filter((f) => !f.preferred)];
  }

  /**
   * The preferred fixes of `findings`, as one list of non-overlapping edits
   * (a fix whose edits would collide with an earlier one is left for a
   * later pass), with the fixes used.
   */
  preferredEdits(findings: readonly Finding[], rule?: string): { edits: FixEdit[]; fixes: Fix[] } {
    const fixes: Fix[] = [];
    const edits: FixEdit[] = [];
    for (const f of findings) {
      if (rule !== undefined && f.rule !== rule) continue;
      const fix = this.fixesFor(f).find((x) => x.preferred);
      if (!fix) continue;
      if (fixes.some((g) => collide(g.edits, fix.edits))) continue;
      fixes.push(fix);
      edits.push(...fix.edits);
    }
    edits.sort((a, b) => a.start - b.start || a.end - b.end);
    return { edits, fixes };
  }

  private context(finding: Finding): FixContext {
    const version = this.options.kernelVersion ?? NEWEST;
    const ff = this.ff;
    return {
      finding,
      src: this.src,
      ff,
      options: this.options,
      version,
      atLeast: (major, minor) => cmp(version, { major, minor }) >= 0,
      fnAt: (offset) => {
        for (const info of ff.functions.values()) if (info.start <= offset && offset < info.end) return ff.fn(info.name);
        return undefined;
      },
      nodesAt: (fn, span) => {
        const out: AstNode[] = [];
        walk(fn.ast, (n) => {
          if (n.end < span.start || n.start > span.end) return false;
          if (n.start === span.start && n.end === span.end) out.push(n);
          return true;
        });
        return out;
      },
      fix: (title, edits, preferred) => {
        if (!edits || !edits.length) return undefined;
        const norm = normalizeEdits(edits);
        if (!norm || norm.every((e) => this.src.text.slice(e.start, e.end) === e.newText)) return undefined;
        return { title, ruleId: finding.rule, edits: norm, preferred, kind: 'quickfix' };
      },
      shared: <T>(key: string, compute: () => T): T => {
        if (!this.cache.has(key)) this.cache.set(key, compute());
        return this.cache.get(key) as T;
      },
    };
  }
}

/** Whether two edit lists touch the same text (or insert at the same point). */
export function collide(a: readonly FixEdit[], b: readonly FixEdit[]): boolean {
  for (const x of a)
    for (const y of b) {
      if (x.start === y.start) return true;
      if (x.start < y.end && y.start < x.end) return true;
      if (x.start === x.end && y.start < x.start && x.start < y.end) return true;
      if (y.start === y.end && x.start < y.start && y.start < x.end) return true;
    }
  return false;
}

/** The fixes for one finding (a session for a single question). */
export function fixesFor(finding: Finding, doc: ParsedFile, options: FixOptions = {}): Fix[] {
  return new FixSession(doc, options).fixesFor(finding);
}
