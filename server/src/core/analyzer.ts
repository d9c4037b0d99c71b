/**
 * The analysis entry point: text in, findings out. No I/O, no protocol.
 *
 *   const analyzer = await Analyzer.create({ runtime, language });
 *   const doc = analyzer.parse(text);                // ParsedFile, owns a tree
 *   const result = analyzer.analyze(doc, options);   // findings + notices
 *   const doc2 = analyzer.parse(newText, doc);       // incremental; doc is consumed
 *   doc2.delete();                                   // free the tree when dropped
 *   analyzer.analyzeText(text, options, { lazy: true }); // one shot; bodies parsed on demand
 */
import { Parser } from 'web-tree-sitter';
import { adoptRuntime, verifyRuntime } from './ast';
import { CParser, MAX_TEXT_CHARS, type ParsedFile, type WasmImages } from './parser';
import type { AnalysisResult, AnalyzeOptions, RuleInfo } from './types';
import { anyRuleRuns, mayMatter, runRules, ruleInfos } from '../rules/registry';
import { type FileLockFacts, fileLockFacts, lockAtCalls } from '../rules/workspace';

let runtimeReady: Promise<void> | undefined;

/**
 * Starts web-tree-sitter before CParser does (a second `Parser.init` reuses
 * the module): the options object handed to `Parser.init` becomes its
 * emscripten module, which the AST copy can call directly (core/ast.ts).
 */
async function initRuntime(runtime: Uint8Array): Promise<void> {
  const module = { wasmBinary: runtime };
  await Parser.init(module);
  adoptRuntime(module);
}

/** Errors, a MISSING node, fields, operators, comments: what the copy must get right. */
const RUNTIME_SAMPLE = `static int f(struct s *p, int n) /* c */ {
  int a = !p->x && n > 1 || -n; // c
  if ((a += 2)) return *p;
  x = (int)&y[3] << sizeof(long);
  g(a,;
  for (i = 0; i < n; i++) { h(i) }
}
int k( {
`;

export class Analyzer {
  private constructor(private readonly parser: CParser) {}

  static async create(wasm: WasmImages): Promise<Analyzer> {
    runtimeReady ??= initRuntime(wasm.runtime);
    await runtimeReady;
    const analyzer = new Analyzer(await CParser.load(wasm));
    // Once: the AST copy calls the cursor functions directly only if that copies this sample as TreeCursor does.
    const sample = analyzer.parse(RUNTIME_SAMPLE);
    try {
      verifyRuntime(sample.tree.rootNode);
    } finally {
      sample.delete();
    }
    return analyzer;
  }

  /** Parses `text`; with `previous`, incrementally (and `previous` is consumed). */
  parse(text: string, previous?: ParsedFile, budgetMs?: number): ParsedFile {
    return this.parser.parse(text, previous, budgetMs);
  }

  /** Parses `text` leaving out function bodies until the analysis needs them (one-shot: never a `previous`). */
  parseLazily(text: string, budgetMs?: number): ParsedFile {
    return this.parser.parseLazily(text, budgetMs);
  }

  /** Runs every enabled rule over a parsed file. Never throws. */
  analyze(doc: ParsedFile, options: AnalyzeOptions = {}): AnalysisResult {
    return runRules(doc, options);
  }

  /**
   * Parses, analyses and frees in one go (for the CLI). Text on which no rule
   * runs (it mentions nothing a rule needs, or only what disabled rules or
   * rules for other kernels need) is not even parsed; `errorNodes` is 0 then.
   * `lazy` (the command line): function bodies are parsed only when a rule
   * looks into them (CParser.parseLazily), with the same findings and notices
   * on real code (for grossly broken code see core/skeleton.ts); `errorNodes`
   * then counts the ERROR nodes outside the bodies left out.
   */
  analyzeText(text: string, options: AnalyzeOptions = {}, how: { lazy?: boolean } = {}): AnalysisResult {
    if (!this.runsOn(text, options)) return { findings: [], notices: [], errorNodes: 0 };
    const doc = how.lazy ? this.parseLazily(text) : this.parse(text);
    try {
      return this.analyze(doc, options);
    } finally {
      doc.delete();
    }
  }

  /** Whether any enabled rule runs on `text` (else analysing it finds nothing, and it need not be parsed). */
  runsOn(text: string, options: AnalyzeOptions = {}): boolean {
    return anyRuleRuns(text, options);
  }

  rules(): RuleInfo[] {
    return ruleInfos();
  }

  /** Workspace pass 1 for one file: functions that need their callers' lock, exported lock wrappers. */
  fileLockFacts(text: string, options: AnalyzeOptions = {}): FileLockFacts {
    if (!mayMatter(text)) return { needsCallerLock: [], exports: [] };
    const doc = this.parse(text);
    try {
      return fileLockFacts(doc, options);
    } finally {
      doc.delete();
    }
  }

  /** Workspace pass 2 for one file: the lock state at each call to one of `names`. */
  lockAtCalls(text: string, names: ReadonlySet<string>, options: AnalyzeOptions = {}): Array<{ callee: string; held: boolean; caller: string }> {
    const doc = this.parse(text);
    try {
      return lockAtCalls(doc, names, options);
    } finally {
      doc.delete();
    }
  }
}

export type { ParsedFile, WasmImages };
