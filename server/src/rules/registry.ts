/**
 * The rule registry: every rule's public id, severity and summary, and the
 * runner that applies them to a parsed file. A rule that throws is caught and
 * reported as a notice with its id; the others still run.
 */
import { FileFacts } from '../core/facts';
import type { ParsedFile } from '../core/parser';
import type { AnalysisNotice, AnalysisResult, AnalyzeOptions, Finding, KernelVersion, RuleInfo } from '../core/types';
import { NEWEST, type Rule, type RuleContext } from './api';
import { dmabufMoreRules } from './dmabuf/more';
import { dmabufRules } from './dmabuf/rules';
import { hmmRules } from './hmm/rules';
import { netmemRules } from './netmem/rules';
import { p2pMoreRules } from './p2pdma/more';
import { p2pRules } from './p2pdma/rules';
import { pgmapMoreRules } from './pgmap/more';
import { pgmapRules } from './pgmap/rules';

export const RULES: readonly Rule[] = [
  ...pgmapRules,
  ...pgmapMoreRules,
  ...hmmRules,
  ...p2pRules,
  ...p2pMoreRules,
  ...dmabufRules,
  ...dmabufMoreRules,
  ...netmemRules,
];

const byId = new Map(RULES.map((r) => [r.id, r]));

export function ruleInfos(): RuleInfo[] {
  return RULES.map(({ check: _check, context: _context, ...info }) => info);
}

export function ruleById(id: string): Rule | undefined {
  return byId.get(id);
}

/** Identifiers that make a function (or file) worth analysing: derived from the rules' needs. */
export function interestingPattern(rules: readonly Rule[] = RULES, withContext = false): RegExp {
  const words = new Set<string>();
  for (const r of rules) for (const n of r.needs) words.add(n);
  if (withContext) for (const r of rules) for (const n of r.context ?? []) words.add(n);
  const sorted = [...words].sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`\\b(?:${sorted.join('|')})\\b`);
}

/** Whether a file can matter at all. */
const PATTERN = interestingPattern();
/** Whether a function of a file that matters is worth analysing. */
const FUNCTION_PATTERN = interestingPattern(RULES, true);

/** The function pattern, widened by project helpers and lock wrappers. */
function functionPattern(options: AnalyzeOptions): RegExp {
  const extra = [...(options.lockWrappers ?? []).map((w) => w.name), ...Object.keys(options.helpers ?? {}), ...(options.workspace?.lockFns?.keys() ?? [])];
  if (!extra.length) return FUNCTION_PATTERN;
  return new RegExp(`${FUNCTION_PATTERN.source}|\\b(?:${extra.join('|')})\\b`);
}

/** Cheap test on raw text: can any rule fire on this file at all? */
export function mayMatter(text: string): boolean {
  return PATTERN.test(text);
}

function cmp(a: KernelVersion, b: KernelVersion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

export function runRules(doc: ParsedFile, options: AnalyzeOptions): AnalysisResult {
  const findings: Finding[] = [];
  const notices: AnalysisNotice[] = [];
  const errorNodes = countErrors(doc);
  if (doc.timedOut) {
    notices.push({ kind: 'parse-timeout', message: 'parsing took longer than its time budget; the file was not analysed' });
    return { findings, notices, errorNodes };
  }
  if (!mayMatter(doc.text)) return { findings, notices, errorNodes };

  const version = options.kernelVersion ?? NEWEST;
  const disabled = new Set(options.disabledRules ?? []);
  const ff = new FileFacts(doc, functionPattern(options), options);
  const cache = new Map<string, unknown>();
  for (const rule of RULES) {
    if (disabled.has(rule.id)) continue;
    if (rule.since && cmp(version, rule.since) < 0) continue;
    if (rule.until && cmp(version, rule.until) > 0) continue;
    const severityOverride = options.severity?.[rule.id];
    const ctx: RuleContext = {
      ff,
      version,
      atLeast: (major, minor) => cmp(version, { major, minor }) >= 0,
      shared: <T>(key: string, compute: () => T): T => {
        if (!cache.has(key)) cache.set(key, compute());
        return cache.get(key) as T;
      },
      report: (f) => {
        findings.push({
          rule: rule.id,
          severity: severityOverride ?? f.severity ?? rule.severity,
          message: f.message,
          span: { start: f.at.start, end: f.at.end },
          related: f.related ?? [],
          events: f.events ?? [],
          functionName: f.functionName,
        });
      },
    };
    try {
      rule.check(ctx);
    } catch (e) {
      notices.push({
        kind: 'rule-failed',
        rule: rule.id,
        message: `rule ${rule.id} failed: ${e instanceof Error ? e.message : String(e)}`,
      });
    }
  }
  notices.push(...ff.notices);
  findings.sort((a, b) => a.span.start - b.span.start || a.rule.localeCompare(b.rule));
  return { findings: dedupe(findings), notices, errorNodes };
}

function dedupe(findings: Finding[]): Finding[] {
  const seen = new Set<string>();
  return findings.filter((f) => {
    const k = `${f.rule}:${f.span.start}:${f.span.end}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function countErrors(doc: ParsedFile): number {
  const root = doc.tree.rootNode;
  if (!root.hasError) return 0;
  let n = 0;
  const cursor = root.walk();
  try {
    let descend = true;
    for (;;) {
      if (descend) {
        const node = cursor.currentNode;
        if (node.isError || node.isMissing) n++;
        if (node.hasError && cursor.gotoFirstChild()) continue;
      }
      if (cursor.gotoNextSibling()) {
        descend = true;
        continue;
      }
      if (!cursor.gotoParent()) break;
      descend = false;
    }
  } finally {
    cursor.delete();
  }
  return n;
}
