/**
 * The rule registry: every rule's public id, severity, summary and check.
 * (Filled in by the rule families; this first version only wires the types.)
 */
import type { ParsedFile } from '../core/parser';
import type { AnalysisResult, AnalyzeOptions, RuleInfo } from '../core/types';

export function ruleInfos(): RuleInfo[] {
  return [];
}

export function runRules(doc: ParsedFile, _options: AnalyzeOptions): AnalysisResult {
  return { findings: [], notices: [], errorNodes: doc.tree.rootNode.hasError ? 1 : 0 };
}
