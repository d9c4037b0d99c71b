/**
 * Hover on a finding: the rule id, severity, the outcome of the model's run,
 * message, the rule's summary and a link to its doc page. Plain markdown: no
 * HTML, and every piece of text that may come from the file (or from the run,
 * which quotes it) is escaped. The only command link is `dmalens.showRun`,
 * with JSON arguments `[uri, rule, range]`, and only for clients that can run
 * commands (`commandLinks`); the VS Code client trusts that one command only.
 */
import { MarkupKind, type Hover, type Position } from 'vscode-languageserver/node';
import type { LineIndex } from '../core/positions';
import type { Finding, RuleInfo } from '../core/types';
import type { Run } from '../model/types';
import type { RuleDocs } from '../node/docs';
import { commandLinkTarget, escapeMarkdown, markdownLinkTarget } from './markdown';
import { patchHoverLines } from './patch';
import { toRange } from './translate';

/** The client command that opens a finding's run (arguments: uri, rule, range). */
export const SHOW_RUN_COMMAND = 'dmalens.showRun';

export interface HoverContext {
  rules: ReadonlyMap<string, RuleInfo>;
  docs: RuleDocs;
  index: LineIndex;
  /** The document, for the command link's arguments. */
  uri?: string;
  /** The model's run of a finding (omit: no outcome line). */
  explain?: (f: Finding) => Run | undefined;
  /** Whether the client runs `command:` links (VS Code does; Neovim does not). */
  commandLinks?: boolean;
}

const SEVERITY_LABEL: Record<string, string> = { error: 'error', warning: 'warning', info: 'info' };

/**
 * The run's outcome. A run that ends OK on the user's topology is not shown
 * as a bare OK when the same code fails in another world the model tried:
 * the line says it does not fail there, and what the failing world gives.
 */
export function outcomeLine(run: Run): string {
  const o = run.outcome;
  if (o.kind === 'OK' && run.failsIn) {
    const f = run.failsIn;
    return `**Outcome (model):** does not fail on your topology (OK); in ${escapeMarkdown(f.world)}: ${escapeMarkdown(f.outcome.kind)} — ${escapeMarkdown(f.outcome.summary)}`;
  }
  return `**Outcome (model):** ${escapeMarkdown(o.kind)} — ${escapeMarkdown(o.summary)}`;
}

/** Findings whose span contains `offset` (ends inclusive, so a hover at the last character counts). */
export function findingsAt(findings: readonly Finding[], offset: number): Finding[] {
  return findings.filter((f) => f.span.start <= offset && offset <= Math.max(f.span.start, f.span.end));
}

export function findingMarkdown(f: Finding, ctx: HoverContext): string {
  const lines: string[] = [];
  const sev = SEVERITY_LABEL[f.severity] ?? escapeMarkdown(String(f.severity));
  lines.push(`**${escapeMarkdown(f.rule)}** (${sev})`);
  const run = ctx.explain?.(f);
  if (run) {
    lines.push('');
    lines.push(outcomeLine(run));
    const target =
      ctx.commandLinks && ctx.uri !== undefined
        ? commandLinkTarget(SHOW_RUN_COMMAND, [ctx.uri, f.rule, toRange(ctx.index, f.span)])
        : undefined;
    if (target) {
      lines.push('');
      lines.push(`[Show the model's run](${target})`);
    }
  }
  lines.push('');
  lines.push(escapeMarkdown(f.message));
  if (f.functionName) {
    lines.push('');
    lines.push(`In function ${escapeMarkdown(f.functionName)}\\(\\)`);
  }
  // A finding in a patch: where it is in the patched file, and how it was judged.
  for (const l of patchHoverLines(f)) lines.push('', l);
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
export function hoverAt(findings: readonly Finding[], pos: Position, ctx: HoverContext): Hover | null {
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
