/**
 * Analysis results -> LSP diagnostics. A translator only: which findings exist,
 * their severity and their text are decided by the core and the rules.
 * Offsets become positions through LineIndex (core/positions.ts), the one
 * place where that conversion lives.
 */
import {
  DiagnosticSeverity,
  type Diagnostic,
  type DiagnosticRelatedInformation,
  type Range,
} from 'vscode-languageserver/node';
import { LineIndex } from '../core/positions';
import type { AnalysisNotice, Finding, Severity, Span } from '../core/types';
import type { RuleDocs } from '../node/docs';

export const SOURCE = 'DMA Lens';

/** What a diagnostic carries for hovers and (later) code actions. */
export type DiagnosticData =
  | {
      kind: 'finding';
      rule: string;
      severity: Severity;
      /** Document version the finding was computed for. */
      version: number;
      /** The finding's span (UTF-16 offsets into that version's text). */
      span: Span;
      /** Index into the server's cached findings for that version. */
      index: number;
      functionName?: string;
    }
  | { kind: 'notice'; notice: AnalysisNotice['kind'] | 'disabled-language'; version: number };

export function toSeverity(s: Severity): DiagnosticSeverity {
  switch (s) {
    case 'error':
      return DiagnosticSeverity.Error;
    case 'warning':
      return DiagnosticSeverity.Warning;
    case 'info':
      return DiagnosticSeverity.Information;
    default:
      return DiagnosticSeverity.Warning;
  }
}

export function toRange(index: LineIndex, span: Span): Range {
  const start = index.position(span.start);
  const end = index.position(Math.max(span.start, span.end));
  return { start, end };
}

export function findingToDiagnostic(
  f: Finding,
  i: number,
  ctx: { uri: string; version: number; index: LineIndex; docs: RuleDocs },
): Diagnostic {
  const d: Diagnostic = {
    range: toRange(ctx.index, f.span),
    severity: toSeverity(f.severity),
    code: f.rule,
    source: SOURCE,
    message: f.message,
  };
  const href = ctx.docs.href(f.rule);
  if (href) d.codeDescription = { href };
  if (f.related.length > 0) {
    d.relatedInformation = f.related.map(
      (r): DiagnosticRelatedInformation => ({
        location: { uri: ctx.uri, range: toRange(ctx.index, r) },
        message: r.message,
      }),
    );
  }
  const data: DiagnosticData = {
    kind: 'finding',
    rule: f.rule,
    severity: f.severity,
    version: ctx.version,
    span: { start: f.span.start, end: f.span.end },
    index: i,
  };
  if (f.functionName !== undefined) data.functionName = f.functionName;
  d.data = data;
  return d;
}

/** Notices that the user should see (the file was not, or only partly, analysed). */
const SHOWN_NOTICES: ReadonlySet<AnalysisNotice['kind']> = new Set(['too-large', 'parse-timeout', 'not-text']);

export function isShownNotice(n: AnalysisNotice): boolean {
  return SHOWN_NOTICES.has(n.kind);
}

/**
 * An Information diagnostic saying why a file was not analysed: on the
 * notice's span when it has one, else on the first line.
 */
export function noticeToDiagnostic(
  n: { kind: AnalysisNotice['kind']; message: string; span?: Span },
  text: string,
  version: number,
  index?: LineIndex,
): Diagnostic {
  let range: Range;
  if (n.span && index) {
    range = toRange(index, n.span);
  } else {
    // Only the first line matters here; index a bounded prefix, not a huge file.
    const head = new LineIndex(text.slice(0, 4096));
    range = { start: head.position(0), end: head.position(head.lineEnd(0)) };
  }
  return {
    range,
    severity: DiagnosticSeverity.Information,
    source: SOURCE,
    message: n.message,
    data: { kind: 'notice', notice: n.kind, version } satisfies DiagnosticData,
  };
}
