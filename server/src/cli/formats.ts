/**
 * The command line's output formats: text (gcc style), JSON and SARIF 2.1.0,
 * and the rule list. Pure functions: no I/O, no terminal, no process state.
 *
 * Two steps, so that a run over a whole tree keeps memory flat:
 *  1. `locateFindings(findings, lineIndex)` turns one file's findings (spans in
 *     UTF-16 offsets) into line/column pairs while that file's text is still
 *     at hand. Conversion goes through LineIndex only (architecture invariant).
 *  2. The formatters take those located findings; the texts can be dropped.
 *
 * Columns: text and JSON use one-based byte columns (what gcc prints: UTF-8
 * bytes, or latin-1 bytes in a file that is not UTF-8);
 * SARIF uses one-based UTF-16 columns and says so with `columnKind`. End
 * columns are exclusive (the column just past the last character), as SARIF
 * defines them.
 */
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';
import type { LineIndex } from '../core/positions';
import type { Finding, RuleInfo, Severity } from '../core/types';
import type { Run } from '../model/types';
import { renderRunText } from '../view/runView';

/** One-based line and column. */
export interface Pos {
  line: number;
  column: number;
}

export interface LocatedSpan {
  start: Pos;
  end: Pos;
}

export interface LocatedRelated {
  message: string;
  /** UTF-8 byte columns (text, JSON). */
  bytes: LocatedSpan;
  /** UTF-16 columns (SARIF). */
  utf16: LocatedSpan;
}

export interface LocatedFinding {
  rule: string;
  severity: Severity;
  message: string;
  functionName?: string;
  /** UTF-8 byte columns (text, JSON). */
  bytes: LocatedSpan;
  /** UTF-16 columns (SARIF). */
  utf16: LocatedSpan;
  related: LocatedRelated[];
  /** The model's run (`check --explain`). */
  explanation?: LocatedExplanation;
  /** A finding in a patch (cli/patch.ts): where it is in the patched source file. */
  target?: { file: string; line: number };
  /** A finding in a patch: the patch's subject. */
  subject?: string;
  /** A finding in a patch (with --all): it was there before the patch. */
  existing?: boolean;
}

export interface FileFindings {
  /** The file's name as the user gave it (or joined from the directory they gave). */
  file: string;
  findings: LocatedFinding[];
}

/** A file that was not analysed (or not completely). */
export interface FileProblem {
  file: string;
  message: string;
  /** An I/O error (exit code 2), rather than a file skipped on purpose or a notice. */
  fatal: boolean;
}

/**
 * Converts one file's findings to line/column form, in source order.
 * `encoding` is the file's (core/text.ts decides it): byte columns count the
 * file's own bytes, so in a latin-1 file, where every character is one byte,
 * they are the UTF-16 columns.
 */
export function locateFindings(
  findings: readonly Finding[],
  index: LineIndex,
  encoding: 'utf-8' | 'latin-1' = 'utf-8',
  explain?: (f: Finding) => LocatedExplanation | undefined,
): LocatedFinding[] {
  const locateSpan = (start: number, end: number): { bytes: LocatedSpan; utf16: LocatedSpan } => {
    const utf16 = { start: index.utf16LineColumn(start), end: index.utf16LineColumn(end) };
    const bytes = { start: locateOffset(index, start, encoding), end: locateOffset(index, end, encoding) };
    return { bytes, utf16 };
  };
  const sorted = [...findings].sort(
    (a, b) =>
      a.span.start - b.span.start ||
      a.span.end - b.span.end ||
      compareStrings(a.rule, b.rule) ||
      compareStrings(a.message, b.message),
  );
  return sorted.map((f) => {
    const located: LocatedFinding = {
      rule: f.rule,
      severity: f.severity,
      message: f.message,
      ...locateSpan(f.span.start, f.span.end),
      related: f.related.map((r) => ({ message: r.message, ...locateSpan(r.start, r.end) })),
    };
    if (f.functionName) located.functionName = f.functionName;
    const explanation = explain?.(f);
    if (explanation) located.explanation = explanation;
    return located;
  });
}

/**
 * One offset as the text and JSON formats locate it: one-based line and byte
 * column (in a latin-1 file every character is one byte: the UTF-16 column).
 */
export function locateOffset(index: LineIndex, offset: number, encoding: 'utf-8' | 'latin-1' = 'utf-8'): Pos {
  return encoding === 'latin-1' ? index.utf16LineColumn(offset) : index.byteLineColumn(offset);
}

/** Code-unit order: the same on every machine and locale. */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Messages are one line in the text format (and on stderr). */
export function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, ' ').trim();
}

/**
 * gcc style, one line per finding:
 *   file:line:col: severity: message [RULE]
 * Related places are not printed here (JSON and SARIF carry them): one line
 * per finding keeps `grep`/`wc -l` and editors' problem matchers simple.
 */
export function formatText(file: string, findings: readonly LocatedFinding[]): string {
  let out = '';
  for (const f of findings) {
    const { line, column } = f.bytes.start;
    out += `${file}:${line}:${column}: ${f.severity}: ${oneLine(f.message)} [${f.rule}]\n`;
    // With --explain, the model's run follows, indented.
    if (f.explanation) out += explanationText(file, f.explanation);
  }
  return out;
}

export interface JsonFinding {
  file: string;
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
  rule: string;
  severity: Severity;
  message: string;
  function?: string;
  related?: { line: number; column: number; message: string }[];
  /** A finding in a patch: the place in the patched source (line one-based, in the file after the patch). */
  target?: { file: string; line: number };
  /** A finding in a patch: the patch's subject (without its `[PATCH ...]` prefix). */
  subject?: string;
  /** A finding in a patch, reported with `--all`: the tree had it before the patch. */
  existing?: boolean;
  /** With `check --explain`: the model's run. */
  explanation?: JsonExplanation;
}

/** The public JSON document. Field names are a public interface: keep them. */
export function jsonDocument(
  files: readonly FileFindings[],
  problems: readonly FileProblem[],
): { findings: JsonFinding[]; errors: { file: string; message: string }[] } {
  const findings: JsonFinding[] = [];
  for (const { file, findings: list } of files) {
    for (const f of list) {
      const j: JsonFinding = {
        file,
        line: f.bytes.start.line,
        column: f.bytes.start.column,
        endLine: f.bytes.end.line,
        endColumn: f.bytes.end.column,
        rule: f.rule,
        severity: f.severity,
        message: f.message,
      };
      if (f.functionName) j.function = f.functionName;
      if (f.related.length > 0) {
        j.related = f.related.map((r) => ({
          line: r.bytes.start.line,
          column: r.bytes.start.column,
          message: r.message,
        }));
      }
      if (f.target) j.target = { file: f.target.file, line: f.target.line };
      if (f.subject !== undefined) j.subject = f.subject;
      if (f.existing) j.existing = true;
      if (f.explanation) j.explanation = explanationJson(f.explanation.run, f.explanation.locations);
      findings.push(j);
    }
  }
  return { findings, errors: problems.map((p) => ({ file: p.file, message: p.message })) };
}

export function formatJson(files: readonly FileFindings[], problems: readonly FileProblem[]): string {
  return JSON.stringify(jsonDocument(files, problems), null, 2) + '\n';
}

// ---------------------------------------------------------------- the model's runs (--explain)

/** The `explanation` of a JSON finding (and of `dmalens explain RULE --format json`). */
export interface JsonExplanation {
  outcome: string;
  summary: string;
  target?: string;
  world: string;
  worldNotes?: string[];
  /** A run that ends OK on the given topology: a world the model tried where the same code fails. */
  failsIn?: { world: string; outcome: string; summary: string };
  steps: JsonStep[];
}

export interface JsonStep {
  actor: string;
  action: string;
  state?: Record<string, string>;
  /** One-based line and byte column, like the finding's. */
  location?: Pos;
}

/** A finding's run, located while the file's text is at hand. */
export interface LocatedExplanation {
  run: Run;
  /** Parallel to run.steps: where each step is (one-based line and byte column), or null. */
  locations: (Pos | null)[];
}

/** The JSON form of a run; `locations[i]` locates step i. */
export function explanationJson(run: Run, locations?: ReadonlyArray<Pos | null | undefined>): JsonExplanation {
  // Keys in the documented order: outcome, summary, target?, world, worldNotes?, failsIn?, steps.
  const j = { outcome: run.outcome.kind, summary: run.outcome.summary } as JsonExplanation;
  if (run.outcome.target !== undefined) j.target = run.outcome.target;
  j.world = run.world;
  if (run.worldNotes && run.worldNotes.length > 0) j.worldNotes = [...run.worldNotes];
  if (run.failsIn) j.failsIn = { world: run.failsIn.world, outcome: run.failsIn.outcome.kind, summary: run.failsIn.outcome.summary };
  j.steps = run.steps.map((s, i) => {
    const step: JsonStep = { actor: s.actor, action: s.action };
    if (s.state && Object.keys(s.state).length > 0) step.state = { ...s.state };
    const at = locations?.[i];
    if (at) step.location = { line: at.line, column: at.column };
    return step;
  });
  return j;
}

/** The run as indented text under a finding of `file`. */
export function explanationText(file: string, e: LocatedExplanation, indent = '    '): string {
  const text = renderRunText(
    e.run,
    e.locations.map((p) => (p ? { file, line: p.line } : null)),
  );
  return text
    .split('\n')
    .map((l) => (l.length > 0 ? indent + l : l))
    .join('\n');
}

export const SARIF_SCHEMA =
  'https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json';

export function sarifLevel(s: Severity): 'error' | 'warning' | 'note' {
  return s === 'info' ? 'note' : s;
}

/**
 * artifactLocation.uri: a relative path stays relative (forward slashes, each
 * segment percent-encoded); an absolute path becomes a file: URI.
 */
export function sarifUri(file: string): string {
  if (path.isAbsolute(file) || path.win32.isAbsolute(file)) return pathToFileURL(file).href;
  return file
    .replace(/\\/g, '/')
    .split('/')
    .map((seg) => (seg === '.' || seg === '..' ? seg : encodeURIComponent(seg)))
    .join('/');
}

function sarifRegion(s: LocatedSpan): Record<string, number> {
  return {
    startLine: s.start.line,
    startColumn: s.start.column,
    endLine: s.end.line,
    endColumn: s.end.column,
  };
}

/**
 * Builds the SARIF log as an object (see formatSarif for the string).
 * `helpUri(ruleId)` gives the URI of a rule's page, which SARIF 2.1.0
 * requires to be absolute; a rule without one has no helpUri.
 */
export function sarifLog(
  files: readonly FileFindings[],
  problems: readonly FileProblem[],
  rules: readonly RuleInfo[],
  toolVersion: string,
  helpUri: (ruleId: string) => string | undefined = () => undefined,
): Record<string, unknown> {
  const ruleIndex = new Map(rules.map((r, i) => [r.id, i]));
  const results: Record<string, unknown>[] = [];
  for (const { file, findings } of files) {
    const uri = sarifUri(file);
    for (const f of findings) {
      const location: Record<string, unknown> = {
        physicalLocation: { artifactLocation: { uri }, region: sarifRegion(f.utf16) },
      };
      if (f.functionName) location.logicalLocations = [{ name: f.functionName, kind: 'function' }];
      const result: Record<string, unknown> = { ruleId: f.rule };
      const idx = ruleIndex.get(f.rule);
      if (idx !== undefined) result.ruleIndex = idx;
      result.level = sarifLevel(f.severity);
      result.message = { text: f.message };
      result.locations = [location];
      if (f.related.length > 0) {
        result.relatedLocations = f.related.map((r, i) => ({
          id: i + 1,
          message: { text: r.message },
          physicalLocation: { artifactLocation: { uri }, region: sarifRegion(r.utf16) },
        }));
      }
      results.push(result);
    }
  }
  return {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'DMA Lens',
            version: toolVersion,
            rules: rules.map((r) => {
              const help = helpUri(r.id);
              return {
                id: r.id,
                shortDescription: { text: r.summary },
                ...(help !== undefined ? { helpUri: help } : {}),
                defaultConfiguration: { level: sarifLevel(r.severity) },
                properties: { tags: [r.family] },
              };
            }),
          },
        },
        columnKind: 'utf16CodeUnits',
        invocations: [
          {
            executionSuccessful: !problems.some((p) => p.fatal),
            toolExecutionNotifications: problems.map((p) => ({
              level: p.fatal ? 'error' : 'warning',
              message: { text: p.message },
              locations: [{ physicalLocation: { artifactLocation: { uri: sarifUri(p.file) } } }],
            })),
          },
        ],
        results,
      },
    ],
  };
}

export function formatSarif(
  files: readonly FileFindings[],
  problems: readonly FileProblem[],
  rules: readonly RuleInfo[],
  toolVersion: string,
  helpUri?: (ruleId: string) => string | undefined,
): string {
  return JSON.stringify(sarifLog(files, problems, rules, toolVersion, helpUri), null, 2) + '\n';
}

/** `dmalens rules`: an aligned table. */
export function formatRulesText(rules: readonly RuleInfo[]): string {
  const rows = [['RULE', 'SEVERITY', 'SUMMARY'], ...rules.map((r) => [r.id, r.severity, oneLine(r.summary)])];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  let out = rows.map((r) => `${r[0].padEnd(w0)}  ${r[1].padEnd(w1)}  ${r[2]}`.trimEnd() + '\n').join('');
  if (rules.length === 0) out += '(no rules)\n';
  return out;
}

/** `dmalens rules --format json`: {"rules": [{"id","severity","summary"}]}. */
export function formatRulesJson(rules: readonly RuleInfo[]): string {
  const doc = { rules: rules.map((r) => ({ id: r.id, severity: r.severity, summary: r.summary })) };
  return JSON.stringify(doc, null, 2) + '\n';
}
