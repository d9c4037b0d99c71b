/**
 * The rule registry: every rule's public id, severity and summary, and the
 * runner that applies them to a parsed file. A rule that throws is caught and
 * reported as a notice with its id; the others still run.
 */
import { FileFacts } from '../core/facts';
import { MAX_TEXT_CHARS, type ParsedFile } from '../core/parser';
import { LineIndex } from '../core/positions';
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
import { WordFilter } from './prefilter';

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
  return wordsPattern(words);
}

/** `\b(?:w1|w2|...)\b`, longest word first, the words taken literally. */
function wordsPattern(words: Iterable<string>): RegExp {
  const sorted = [...words].sort((a, b) => b.length - a.length).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`\\b(?:${sorted.join('|')})\\b`);
}

/** Whether a file can matter at all: the words every rule needs (a file must hold one as a whole word). */
const FILTER = new WordFilter(RULES.flatMap((r) => r.needs));
const PATTERN = FILTER.pattern;

/**
 * Which functions of a file are worth analysing: those that mention a word
 * (a need or a context word) of the rules that will run, or a project helper
 * or lock wrapper. Built from the running rules only, so a file where one
 * rule is a candidate analyses the functions that rule can look at, not
 * every function that mentions `memcpy` (cached per rule set).
 */
const patternByRules = new Map<string, RegExp>();
export function functionPattern(options: Pick<AnalyzeOptions, 'lockWrappers' | 'helpers' | 'workspace'>, rules: readonly Rule[] = RULES): RegExp {
  const key = rules.map((r) => r.id).join(',');
  let base = patternByRules.get(key);
  if (!base) {
    base = interestingPattern(rules, true);
    if (patternByRules.size > 256) patternByRules.clear();
    patternByRules.set(key, base);
  }
  const extra = [...(options.lockWrappers ?? []).map((w) => w.name), ...Object.keys(options.helpers ?? {}), ...(options.workspace?.lockFns?.keys() ?? [])];
  if (!extra.length) return base;
  return new RegExp(`${base.source}|\\b(?:${extra.join('|')})\\b`);
}

/** Cheap test on raw text: can any rule fire on this file at all? */
export function mayMatter(text: string): boolean {
  return PATTERN.test(text);
}

/**
 * The same test on a file's bytes, before decoding (UTF-8 or latin-1: the
 * words are ASCII, so the answer is the one mayMatter gives on the text).
 * Runs at close to memory speed (rules/prefilter.ts).
 */
export function mayMatterBytes(bytes: Uint8Array): boolean {
  return FILTER.testBytes(bytes);
}

/**
 * The rules that can fire on `text`: those with one of their `needs` in it
 * (a rule that needs nothing runs on every file that matters). A rule whose
 * needs are absent is not run: on the 6.12 tree a file that matters holds
 * the needs of 2 of the 40 rules on average.
 */
export function rulesFor(text: string): Rule[] {
  // The editor asks twice for the same text (Analyzer.runsOn, then runRules): answer the second from the first.
  if (lastRules && lastRules.text === text) return lastRules.rules;
  const rules = computeRulesFor(text);
  lastRules = { text, rules };
  return rules;
}

let lastRules: { text: string; rules: Rule[] } | undefined;

function computeRulesFor(text: string): Rule[] {
  const present = FILTER.wordsIn(text);
  if (!present.size) return [];
  return RULES.filter(
    (r) =>
      (r.needs.length === 0 || r.needs.some((n) => present.has(n))) &&
      (!r.alsoNeeds || r.alsoNeeds.unlessAny.some((n) => present.has(n)) || alsoPattern(r).test(text)),
  );
}

const alsoPatterns = new Map<string, RegExp>();
function alsoPattern(r: Rule): RegExp {
  let re = alsoPatterns.get(r.id);
  if (!re) {
    re = wordsPattern(r.alsoNeeds?.words ?? []);
    alsoPatterns.set(r.id, re);
  }
  return re;
}

/** Of `rules`, those the options let run (not disabled, and made for the target kernel). */
function enabled(rules: readonly Rule[], options: AnalyzeOptions): Rule[] {
  const version = options.kernelVersion ?? NEWEST;
  const disabled = new Set(options.disabledRules ?? []);
  return rules.filter(
    (rule) => !disabled.has(rule.id) && !(rule.since && cmp(version, rule.since) < 0) && !(rule.until && cmp(version, rule.until) > 0),
  );
}

/** Whether any rule runs on `text` with `options` (runRules would find nothing to do otherwise). */
export function anyRuleRuns(text: string, options: AnalyzeOptions): boolean {
  return enabled(rulesFor(text), options).length > 0;
}

function cmp(a: KernelVersion, b: KernelVersion): number {
  return a.major !== b.major ? a.major - b.major : a.minor - b.minor;
}

/**
 * Runs the rules over a parsed file: by default those `rulesFor` its text;
 * `candidates` overrides the choice (the tests compare with every rule).
 */
export function runRules(doc: ParsedFile, options: AnalyzeOptions, candidates?: readonly Rule[]): AnalysisResult {
  const findings: Finding[] = [];
  const notices: AnalysisNotice[] = [];
  const errorNodes = countErrors(doc);
  if (doc.tooLarge) {
    notices.push({ kind: 'too-large', message: `the file is ${doc.text.length} characters long, over the ${MAX_TEXT_CHARS}-character limit of the analysis; it was not analysed` });
    return { findings, notices, errorNodes };
  }
  if (doc.timedOut) {
    notices.push({ kind: 'parse-timeout', message: 'parsing took longer than its time budget; the file was not analysed' });
    return { findings, notices, errorNodes };
  }
  // rulesFor finds no rule exactly when mayMatter is false (one pass over the text instead of two).
  const rules = candidates ?? rulesFor(doc.text);
  if (candidates ? !mayMatter(doc.text) : rules.length === 0) return { findings, notices, errorNodes };

  const running = enabled(rules, options);
  if (!running.length) return { findings, notices, errorNodes };
  const version = options.kernelVersion ?? NEWEST;
  const timing = options.timing;
  let t0 = timing ? performance.now() : 0;
  const ff = new FileFacts(doc, functionPattern(options, running), options);
  if (timing) timing('facts', performance.now() - t0);
  const cache = new Map<string, unknown>();
  for (const rule of running) {
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
    ff.current = undefined;
    if (timing) t0 = performance.now();
    try {
      rule.check(ctx);
      if (timing) timing(`rule:${rule.id}`, performance.now() - t0);
    } catch (e) {
      // Where: the function the rule was looking at last (the others' findings still come).
      const at: FileFacts['current'] = (ff as FileFacts).current;
      const where = at ? ` in ${at.name}() at line ${new LineIndex(doc.text).lineOf(at.nameSpan.start) + 1}` : '';
      notices.push({
        kind: 'rule-failed',
        rule: rule.id,
        message: `rule ${rule.id} failed${where}: ${e instanceof Error ? e.message : String(e)}`,
        ...(at ? { span: { ...at.nameSpan } } : {}),
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
