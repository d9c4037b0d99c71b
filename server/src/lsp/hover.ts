/**
 * Hover on a finding: the rule id, severity, message, the rule's summary and a
 * link to its doc page. Plain markdown: no command links, no HTML, and every
 * piece of text that may come from the file is escaped.
 */
import { MarkupKind, type Hover, type Position } from 'vscode-languageserver/node';
import type { LineIndex } from '../core/positions';
import type { Finding, RuleInfo } from '../core/types';
import type { RuleDocs } from './docs';
import { escapeMarkdown, markdownLinkTarget } from './markdown';
import { toRange } from './translate';

const SEVERITY_LABEL: Record<string, string> = { error: 'error', warning: 'warning', info: 'info' };

/** Findings whose span contains `offset` (ends inclusive, so a hover at the last character counts). */
export function findingsAt(findings: readonly Finding[], offset: number): Finding[] {
  return findings.filter((f) => f.span.start <= offset && offset <= Math.max(f.span.start, f.span.end));
}

export function findingMarkdown(
  f: Finding,
  ctx: { rules: ReadonlyMap<string, RuleInfo>; docs: RuleDocs; index: LineIndex },
): string {
  const lines: string[] = [];
  const sev = SEVERITY_LABEL[f.severity] ?? escapeMarkdown(String(f.severity));
  lines.push(`**${escapeMarkdown(f.rule)}** (${sev})`);
  lines.push('');
  lines.push(escapeMarkdown(f.message));
  if (f.functionName) {
    lines.push('');
    lines.push(`In function ${escapeMarkdown(f.functionName)}\\(\\)`);
  }
  if (f.related.length > 0) {
    lines.push('');
    for (const r of f.related) {
      const line = ctx.index.position(r.start).line + 1;
      lines.push(`- line ${line}: ${escapeMarkdown(r.message)}`);
    }
  }
  const info = ctx.rules.get(f.rule);
  if (info?.summary) {
    lines.push('');
    lines.push(`*${escapeMarkdown(info.summary)}*`);
  }
  const href = ctx.docs.href(f.rule);
  const target = href ? markdownLinkTarget(href) : undefined;
  if (target) {
    lines.push('');
    lines.push(`[Documentation for ${escapeMarkdown(f.rule)}](${target})`);
  }
  return lines.join('\n');
}

/** The hover for `pos`, or null when no finding covers it. */
export function hoverAt(
  findings: readonly Finding[],
  pos: Position,
  ctx: { rules: ReadonlyMap<string, RuleInfo>; docs: RuleDocs; index: LineIndex },
): Hover | null {
  const offset = ctx.index.offsetAt(pos);
  const hits = findingsAt(findings, offset);
  if (hits.length === 0) return null;
  // The innermost finding decides the highlighted range.
  let inner = hits[0];
  for (const h of hits) if (h.span.end - h.span.start < inner.span.end - inner.span.start) inner = h;
  return {
    contents: {
      kind: MarkupKind.Markdown,
      value: hits.map((f) => findingMarkdown(f, ctx)).join('\n\n---\n\n'),
    },
    range: toRange(ctx.index, inner.span),
  };
}
