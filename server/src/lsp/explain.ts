/**
 * The model's runs over the protocol: the `dmalens/explain` request and the
 * pieces the hover needs. A translator only: the run is whatever
 * model/explain.ts computes; this file finds the finding a request means,
 * and turns the run's offsets into LSP positions through LineIndex.
 *
 *   dmalens/explain {uri, rule, range}   the run of that document's finding
 *                                         (range: the diagnostic's range)
 *   dmalens/explain {rule}                the rule's reference run
 *   -> {run, lines} | null
 *
 * `lines[i]` is where step i happened (zero-based LSP line and character, and
 * that line's text), or null for steps that are not in the user's code.
 */
import type { Range } from 'vscode-languageserver/node';
import type { LineIndex } from '../core/positions';
import type { Finding, Span } from '../core/types';
import { explain, referenceRun } from '../model/explain';
import type { WorldOptions } from '../model/world';
import type { Run } from '../model/types';
import { withoutLocations } from '../view/runView';
import { toRange } from './translate';

export const ExplainRequest = 'dmalens/explain';

export interface ExplainParams {
  rule: string;
  uri?: string;
  range?: Range;
}

export interface StepLine {
  /** Zero-based line. */
  line: number;
  /** Zero-based UTF-16 character. */
  character: number;
  /** The text of that line (without its line break; long lines are cut). */
  text: string;
}

export interface ExplainResult {
  run: Run;
  /** Parallel to `run.steps`. */
  lines: (StepLine | null)[];
  /** The document version the run's locations refer to (absent for a reference run). */
  version?: number;
}

/** Custom request listing the rules the model can explain (for the client's quick pick). */
export const ModelRulesRequest = 'dmalens/modelRules';
export interface ModelRule {
  id: string;
  summary?: string;
  severity?: string;
}

const RULE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_LINE_TEXT = 400;

function isPosition(v: unknown): v is { line: number; character: number } {
  if (typeof v !== 'object' || v === null) return false;
  const p = v as Record<string, unknown>;
  return isIndex(p.line) && isIndex(p.character);
}

function isIndex(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
}

/** Validates the request's parameters; undefined when they are malformed. */
export function parseExplainParams(raw: unknown): ExplainParams | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const p = raw as Record<string, unknown>;
  if (typeof p.rule !== 'string' || !RULE_ID.test(p.rule)) return undefined;
  if (p.uri === undefined || p.uri === null) return { rule: p.rule };
  if (typeof p.uri !== 'string' || p.uri.length === 0) return undefined;
  const r = p.range as Record<string, unknown> | undefined;
  if (!r || typeof r !== 'object' || !isPosition(r.start) || !isPosition(r.end)) return undefined;
  return {
    rule: p.rule,
    uri: p.uri,
    range: { start: { line: r.start.line, character: r.start.character }, end: { line: r.end.line, character: r.end.character } },
  };
}

function sameRange(a: Range, b: Range): boolean {
  return (
    a.start.line === b.start.line &&
    a.start.character === b.start.character &&
    a.end.line === b.end.line &&
    a.end.character === b.end.character
  );
}

/**
 * The finding of `rule` a diagnostic's range means: the one with exactly that
 * range; else (the document changed since) the one covering the range's start;
 * else the nearest one of that rule.
 */
export function findingForRange(findings: readonly Finding[], index: LineIndex, rule: string, range: Range): Finding | undefined {
  const same = findings.filter((f) => f.rule === rule);
  if (same.length === 0) return undefined;
  const exact = same.find((f) => sameRange(toRange(index, f.span), range));
  if (exact) return exact;
  const at = index.offsetAt(range.start);
  const covering = same.filter((f) => f.span.start <= at && at <= Math.max(f.span.start, f.span.end));
  if (covering.length > 0) return covering.reduce((a, b) => (b.span.end - b.span.start < a.span.end - a.span.start ? b : a));
  return same.reduce((a, b) => (Math.abs(b.span.start - at) < Math.abs(a.span.start - at) ? b : a));
}

/** Where each step is, as LSP positions and line text. */
export function stepLines(run: Run, text: string, index: LineIndex): (StepLine | null)[] {
  return run.steps.map((s) => (s.location ? lineOf(s.location, text, index) : null));
}

function lineOf(span: Span, text: string, index: LineIndex): StepLine {
  const pos = index.position(span.start);
  let lineText = text.slice(index.lineStart(pos.line), index.lineEnd(pos.line));
  if (lineText.length > MAX_LINE_TEXT) lineText = lineText.slice(0, MAX_LINE_TEXT);
  return { line: pos.line, character: pos.character, text: lineText };
}

/** Runs the model for findings, once per finding object (a document version's findings are immutable). */
export class RunCache {
  private readonly runs = new WeakMap<Finding, Run | null>();

  constructor(private readonly onError: (rule: string, e: unknown) => void = () => undefined) {}

  runFor(f: Finding, world?: WorldOptions): Run | undefined {
    let r = this.runs.get(f);
    if (r === undefined) {
      try {
        r = explain(f, world) ?? null;
      } catch (e) {
        // A scenario that throws is a model bug: the finding still shows, without a run.
        this.onError(f.rule, e);
        r = null;
      }
      this.runs.set(f, r);
    }
    return r ?? undefined;
  }
}

/** The reference run of a rule, without locations (there is no file behind it). */
export function referenceResult(rule: string): ExplainResult | null {
  const run = referenceRun(rule);
  if (!run) return null;
  const clean = withoutLocations(run);
  return { run: clean, lines: clean.steps.map(() => null) };
}
