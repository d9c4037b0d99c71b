/**
 * Per-language analysers the document store plugs in by languageId. Each one
 * keeps whatever state it wants per open document (the C analyser: one parsed
 * tree, reparsed incrementally) and turns a document's text into an
 * AnalysisResult whose spans are offsets into that same text. The patch /
 * mail analyser (languageIds `diff`, `kernel-mail`, `plaintext`: ./patch.ts)
 * implements the same interface and maps its findings back to the patch text
 * itself.
 */
import type { Node } from 'web-tree-sitter';
import type { Analyzer, ParsedFile } from '../core/analyzer';
import { TOP_LEVEL_CONTAINERS } from '../core/facts';
import type { AnalysisResult, AnalyzeOptions, Severity, Span } from '../core/types';

/** What an analyser may want to know about the document besides its text. */
export interface AnalysisContext {
  uri: string;
  languageId?: string;
  /** Whole-file patch review: also report the findings the tree had before the patch (`dmalens.patch.showExisting`). */
  patchShowExisting?: boolean;
  /** Files larger than this many bytes are not read (`dmalens.maxFileSize`). */
  maxFileSize?: number;
}

/** A problem with the document itself that is not a finding (a broken hunk in a patch), shown as a diagnostic. */
export interface DocumentProblem {
  span: Span;
  message: string;
  severity: Severity;
}

export interface DocumentAnalyser<State = unknown> {
  /** Short name for logs. */
  readonly name: string;
  /** LSP languageIds this analyser handles. */
  readonly languageIds: readonly string[];
  /**
   * Analyses `text`. `state` is what the previous call returned for the same
   * document (undefined the first time, or after `dispose`); it is consumed.
   * Returns the new state to keep. May throw; then the analyser has already
   * freed everything, `state` included, and the caller just reports it.
   */
  analyze(
    text: string,
    state: State | undefined,
    options: AnalyzeOptions,
    context?: AnalysisContext,
  ): { result: AnalysisResult; state: State; problems?: DocumentProblem[] };
  /**
   * Whether the analyser takes a document with this text at all (the patch
   * analyser takes `plaintext` only when it looks like a patch). Absent:
   * every document of its languageIds. A document it does not take gets no
   * diagnostics, not even a notice.
   */
  accepts?(text: string, languageId: string): boolean;
  /**
   * The diagnostics of the analysis that returned `state` have been sent:
   * time for work that can wait until the user has them. True: analyse the
   * same text again (the answer may differ). Never throws.
   */
  published?(state: State): boolean | void;
  /** Frees a document's state (closed, or no longer analysed). Never throws. */
  dispose(state: State): void;
}

/**
 * Source characters whose trees the C analyser keeps between analyses. A
 * tree takes about 30 bytes of wasm memory per character of source, and wasm
 * memory never shrinks: 50 large files open would hold 0.8 GB. Past this
 * budget the least recently analysed documents lose their tree (the next
 * edit there parses the file afresh, 40 ms for 450 KB); the most recent one
 * always keeps it.
 */
export const TREE_BUDGET = 1_000_000;

/** Kernel C: one tree per document, reparsed incrementally; trees kept within TREE_BUDGET. */
export class CAnalyser implements DocumentAnalyser<ParsedFile | undefined> {
  readonly name = 'c';
  readonly languageIds = ['c'] as const;
  /** Documents' live trees, least recently analysed first. */
  private readonly kept: ParsedFile[] = [];

  constructor(
    private readonly analyzer: Analyzer,
    private readonly treeBudget = TREE_BUDGET,
  ) {}

  analyze(text: string, state: ParsedFile | undefined, options: AnalyzeOptions): { result: AnalysisResult; state: ParsedFile | undefined } {
    let parsed: ParsedFile;
    // No rule runs on the text (it names nothing any enabled rule needs): nothing to parse or keep.
    // The next text that names something is parsed afresh (the common case: most kernel files).
    if (!this.analyzer.runsOn(text, options)) {
      if (state) this.dispose(state);
      return { result: { findings: [], notices: [], errorNodes: 0 }, state: undefined };
    }
    if (state) this.forget(state);
    // Room first: wasm memory keeps its high-water mark, so the trees kept and the
    // one being made must fit the budget together.
    this.trim(text.length);
    const previous = state && !state.deleted ? state : undefined;
    try {
      // A document parsed afresh (just opened, or its tree was trimmed) is parsed lazily for its first
      // diagnostics, and filled in once they are out (published): the bodies no rule looks into wait
      // until then.
      parsed = previous ? this.analyzer.parse(text, previous) : this.analyzer.parseLazily(text);
    } catch (e) {
      if (state && !state.deleted) this.dispose(state);
      throw e;
    }
    try {
      const result = this.analyzer.analyze(parsed, options);
      this.keep(parsed);
      return { result, state: parsed };
    } catch (e) {
      this.dispose(parsed);
      throw e;
    }
  }

  dispose(state: ParsedFile | undefined): void {
    if (!state) return;
    this.forget(state);
    try {
      state.delete();
    } catch {
      /* a tree that cannot be freed is leaked, not fatal */
    }
  }

  /**
   * Once the first diagnostics of a lazily parsed document are out: fills its
   * tree in, so that the next edit reparses incrementally (an edit that came
   * first has parsed afresh already; core/parser.ts). When the whole tree
   * does not have the same top-level items as the lazy one (tree-sitter
   * recovered from broken code across what was left out: core/skeleton.ts),
   * asks for the same text to be analysed again, on the whole tree (reused).
   */
  published(state: ParsedFile | undefined): boolean {
    if (!state || state.deleted || state.complete) return false;
    try {
      const lazy = topLevel(state.tree.rootNode);
      return state.fillIn() && topLevel(state.tree.rootNode) !== lazy;
    } catch {
      /* stays lazy: the next edit parses afresh */
      return false;
    }
  }

  /** Number of documents holding a tree, and their characters (for tests and logs). */
  keptTrees(): { documents: number; characters: number } {
    return { documents: this.kept.length, characters: this.kept.reduce((n, p) => n + p.text.length, 0) };
  }

  private keep(parsed: ParsedFile): void {
    this.kept.push(parsed);
    this.trim(0);
  }

  /** Frees the least recently analysed trees until `extra` more characters fit (the newest tree always stays). */
  private trim(extra: number): void {
    let total = extra;
    for (const p of this.kept) total += p.text.length;
    while (this.kept.length > (extra ? 0 : 1) && total > this.treeBudget) {
      const old = this.kept.shift()!;
      total -= old.text.length;
      try {
        old.delete();
      } catch {
        /* leaked, not fatal */
      }
    }
  }

  private forget(state: ParsedFile): void {
    const i = this.kept.indexOf(state);
    if (i >= 0) this.kept.splice(i, 1);
  }
}

export class AnalyserRegistry {
  private readonly byLanguage = new Map<string, DocumentAnalyser>();

  register(a: DocumentAnalyser<any>): void {
    for (const id of a.languageIds) this.byLanguage.set(id, a);
  }

  forLanguage(languageId: string): DocumentAnalyser | undefined {
    return this.byLanguage.get(languageId);
  }

  languages(): string[] {
    return [...this.byLanguage.keys()];
  }
}

/** The top-level items of a tree: type and range of each, containers opened. */
function topLevel(root: Node): string {
  const out: string[] = [];
  const visit = (n: Node): void => {
    for (const c of n.namedChildren) {
      if (!c || c.type === 'comment') continue;
      out.push(`${c.type}:${c.startIndex}:${c.endIndex}`);
      if (TOP_LEVEL_CONTAINERS.has(c.type)) visit(c);
    }
  };
  visit(root);
  return out.join(' ');
}
